package attest

// The envelope and statement, and where the libraries are not used.
//
// Signing builds the DSSE envelope with go-securesystemslib's dsse
// (EnvelopeSigner, PAE), and every statement, signed or verified, must be
// accepted by the in-toto attestation library (protojson into
// in_toto_attestation.v1.Statement, then its Validate). Two parts are
// hand-written, on purpose:
//
//   - The statement's JSON bytes are written with encoding/json from a
//     struct with the in-toto v1 field names, not with protojson from the
//     library's Statement. Its predicate is a structpb.Struct, which holds
//     every number as a float64: an integer above 2^53 in a predicate
//     would be signed altered. protojson's output also varies its
//     whitespace on purpose; encoding/json gives the same bytes for the
//     same statement. The bytes are then parsed back by ParseStatement
//     (and so by the library) before they are signed: nothing is signed
//     that would not verify.
//   - Verification does not use dsse.EnvelopeVerifier. It would try a key
//     against a signature without a keyid, accepts base64 leniently,
//     names keys by SSH fingerprint, prints to stdout, and returns one
//     opaque error where a refusal must say whether the key was untrusted
//     or the signature bad. Verify looks the key up in the trust set by
//     keyid (never a key carried in the envelope), computes dsse.PAE, and
//     checks it with crypto/ed25519.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"

	intoto "github.com/in-toto/attestation/go/v1"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"google.golang.org/protobuf/encoding/protojson"
)

// Subject is what a statement is about: a name and the hex SHA-256 of
// its bytes. The digest is the identity; the name is a label (a file may
// be renamed when installed).
type Subject struct {
	Name   string
	Digest string // lowercase hex SHA-256
}

// Statement is an in-toto Statement v1 as verified: its subjects, its
// predicate type, and the predicate's JSON exactly as it was signed (so
// it is decoded from the signed bytes, not from a float64 rendering).
type Statement struct {
	Subjects      []Subject
	PredicateType string
	Predicate     json.RawMessage
}

// wireStatement is the in-toto Statement v1 on the wire.
type wireStatement struct {
	Type          string          `json:"_type"`
	Subject       []wireSubject   `json:"subject"`
	PredicateType string          `json:"predicateType"`
	Predicate     json.RawMessage `json:"predicate"`
}

type wireSubject struct {
	Name   string            `json:"name,omitempty"`
	Digest map[string]string `json:"digest"`
}

// The field names each JSON object may have; a nil *schema below a field
// allows anything (still without duplicate keys).
type schema struct {
	fields map[string]*schema // also the schema of each element of an array
}

var envelopeSchema = &schema{fields: map[string]*schema{
	"payloadType": nil,
	"payload":     nil,
	"signatures": {fields: map[string]*schema{
		"keyid": nil,
		"sig":   nil,
	}},
}}

var statementSchema = &schema{fields: map[string]*schema{
	"_type": nil,
	"subject": {fields: map[string]*schema{ // in-toto ResourceDescriptor
		"name":             nil,
		"uri":              nil,
		"digest":           nil,
		"content":          nil,
		"downloadLocation": nil,
		"mediaType":        nil,
		"annotations":      nil,
	}},
	"predicateType": nil,
	"predicate":     nil,
}}

const maxJSONDepth = 64

// checkJSON admits exactly one JSON value, valid UTF-8, no key twice in
// an object (parsers disagree on which one wins, and a verifier must see
// what every other verifier sees), only the field names s allows, and no
// deeper nesting than maxJSONDepth.
func checkJSON(b []byte, s *schema) error {
	if !utf8.Valid(b) {
		return errors.New("not valid UTF-8")
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := walkJSON(d, s, 0); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

func walkJSON(d *json.Decoder, s *schema, depth int) error {
	if depth > maxJSONDepth {
		return errors.New("JSON nested too deep")
	}
	tok, err := d.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := make(map[string]bool)
		for d.More() {
			kt, err := d.Token()
			if err != nil {
				return err
			}
			k, ok := kt.(string)
			if !ok {
				return errors.New("object key is not a string")
			}
			if seen[k] {
				return fmt.Errorf("duplicate key %q", k)
			}
			seen[k] = true
			var sub *schema
			if s != nil {
				var known bool
				if sub, known = s.fields[k]; !known {
					return fmt.Errorf("unknown field %q", k)
				}
			}
			if err := walkJSON(d, sub, depth+1); err != nil {
				return err
			}
		}
		if _, err := d.Token(); err != nil { // '}'
			return err
		}
	case json.Delim('['):
		for d.More() {
			if err := walkJSON(d, s, depth+1); err != nil {
				return err
			}
		}
		if _, err := d.Token(); err != nil { // ']'
			return err
		}
	}
	return nil
}

// decodeB64 takes the standard or the URL-safe alphabet (DSSE allows
// both), padded, strictly: no line breaks, no stray padding bits.
func decodeB64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("line break in base64")
	}
	if b, err := base64.StdEncoding.Strict().DecodeString(s); err == nil {
		return b, nil
	}
	b, err := base64.URLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, errors.New("not base64")
	}
	return b, nil
}

// isDigest is a lowercase hex SHA-256: the form FileDigest produces and
// comparisons rely on.
func isDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// ParseEnvelope is strict where DSSE lets a parser be lenient, so that
// what is refused here is refused by every reader: one JSON object with
// only the DSSE fields, no duplicate keys, this package's payload type, a
// non-empty payload and signatures in strict base64, at least one
// signature, no keyid twice. It checks no signature. Errors are
// *VerifyError.
func ParseEnvelope(b []byte) (*dsse.Envelope, error) {
	if len(b) > MaxEnvelopeSize {
		return nil, refuse(ReasonTooLarge, "%d bytes, the limit is %d", len(b), MaxEnvelopeSize)
	}
	if err := checkJSON(b, envelopeSchema); err != nil {
		return nil, refuse(ReasonMalformed, "envelope: %v", err)
	}
	var env dsse.Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, refuse(ReasonMalformed, "envelope: %v", err)
	}
	if env.PayloadType != PayloadType {
		return nil, refuse(ReasonMalformed, "payloadType %q, want %q", env.PayloadType, PayloadType)
	}
	body, err := decodeB64(env.Payload)
	if err != nil {
		return nil, refuse(ReasonMalformed, "payload: %v", err)
	}
	if len(body) == 0 {
		return nil, refuse(ReasonMalformed, "empty payload")
	}
	if len(env.Signatures) == 0 {
		return nil, refuse(ReasonMalformed, "no signatures")
	}
	seen := make(map[string]bool, len(env.Signatures))
	for i, s := range env.Signatures {
		if seen[s.KeyID] {
			return nil, refuse(ReasonMalformed, "keyid %q signs twice", s.KeyID)
		}
		seen[s.KeyID] = true
		sig, err := decodeB64(s.Sig)
		if err != nil {
			return nil, refuse(ReasonMalformed, "signature %d: %v", i, err)
		}
		if len(sig) == 0 {
			return nil, refuse(ReasonMalformed, "signature %d is empty", i)
		}
	}
	return &env, nil
}

// ParseStatement reads an in-toto Statement v1 as this package requires
// it: the exact field names (checked before the in-toto library, which
// would also take the proto names such as "type"), no duplicate keys,
// accepted by the library's parser and Validate, _type exactly v1 (the
// library also takes v0.1), every subject with a sha256 digest in
// lowercase hex, a predicate type, and a predicate that is an object.
// Errors are *VerifyError.
func ParseStatement(payload []byte) (*Statement, error) {
	if len(payload) > MaxEnvelopeSize {
		return nil, refuse(ReasonTooLarge, "statement of %d bytes, the limit is %d", len(payload), MaxEnvelopeSize)
	}
	if err := checkJSON(payload, statementSchema); err != nil {
		return nil, refuse(ReasonMalformed, "statement: %v", err)
	}
	var w wireStatement
	if err := json.Unmarshal(payload, &w); err != nil {
		return nil, refuse(ReasonMalformed, "statement: %v", err)
	}
	var lib intoto.Statement
	if err := protojson.Unmarshal(payload, &lib); err != nil {
		return nil, refuse(ReasonMalformed, "statement (in-toto): %v", err)
	}
	if err := lib.Validate(); err != nil {
		return nil, refuse(ReasonMalformed, "statement (in-toto): %v", err)
	}
	if w.Type != StatementType {
		return nil, refuse(ReasonMalformed, "statement _type %q, want %q", w.Type, StatementType)
	}
	if len(w.Subject) == 0 {
		return nil, refuse(ReasonMalformed, "statement has no subject")
	}
	st := &Statement{PredicateType: w.PredicateType, Predicate: w.Predicate}
	for i, s := range w.Subject {
		d, ok := s.Digest["sha256"]
		if !ok {
			return nil, refuse(ReasonMalformed, "subject %d has no sha256 digest", i)
		}
		if !isDigest(d) {
			return nil, refuse(ReasonMalformed, "subject %d: sha256 digest %q is not 64 lowercase hex digits", i, d)
		}
		st.Subjects = append(st.Subjects, Subject{Name: s.Name, Digest: d})
	}
	if w.PredicateType == "" {
		return nil, refuse(ReasonMalformed, "statement has no predicateType")
	}
	if len(w.Predicate) == 0 || w.Predicate[0] != '{' {
		return nil, refuse(ReasonMalformed, "predicate is not a JSON object")
	}
	return st, nil
}

// ed25519Signer is the dsse.Signer of a PrivateKey.
type ed25519Signer struct {
	key ed25519.PrivateKey
	id  string
}

func (s ed25519Signer) Sign(_ context.Context, data []byte) ([]byte, error) {
	return ed25519.Sign(s.key, data), nil
}

func (s ed25519Signer) KeyID() (string, error) { return s.id, nil }

// Sign returns the envelope as compact JSON and a final newline, one
// line, the same bytes for the same inputs (Ed25519 is deterministic and
// the statement's encoding is fixed). The statement it signs is one that
// Verify (and the in-toto library) accepts, or Sign fails.
func Sign(subjects []Subject, predicateType string, predicate any, key *PrivateKey) ([]byte, error) {
	if key == nil {
		return nil, errors.New("attest: sign: no key")
	}
	id, err := key.signingID()
	if err != nil {
		return nil, err
	}
	if len(subjects) == 0 {
		return nil, errors.New("attest: sign: no subject")
	}
	if predicateType == "" {
		return nil, errors.New("attest: sign: no predicate type")
	}
	w := wireStatement{Type: StatementType, PredicateType: predicateType}
	for _, s := range subjects {
		if !isDigest(s.Digest) {
			return nil, fmt.Errorf("attest: sign: subject %q: digest %q is not a lowercase hex SHA-256", s.Name, s.Digest)
		}
		w.Subject = append(w.Subject, wireSubject{Name: s.Name, Digest: map[string]string{"sha256": s.Digest}})
	}
	pred, err := marshalJSON(predicate)
	if err != nil {
		return nil, fmt.Errorf("attest: sign: predicate: %w", err)
	}
	w.Predicate = pred
	payload, err := marshalJSON(w)
	if err != nil {
		return nil, fmt.Errorf("attest: sign: statement: %w", err)
	}
	if _, err := ParseStatement(payload); err != nil {
		return nil, fmt.Errorf("attest: sign: the statement would not verify: %w", err)
	}
	signer, err := dsse.NewEnvelopeSigner(ed25519Signer{key: key.Key, id: id})
	if err != nil {
		return nil, fmt.Errorf("attest: sign: %w", err)
	}
	env, err := signer.SignPayload(context.Background(), PayloadType, payload)
	if err != nil {
		return nil, fmt.Errorf("attest: sign: %w", err)
	}
	out, err := marshalJSON(env)
	if err != nil {
		return nil, fmt.Errorf("attest: sign: envelope: %w", err)
	}
	if len(out) > MaxEnvelopeSize {
		return nil, fmt.Errorf("attest: sign: envelope of %d bytes is over the %d a verifier reads", len(out), MaxEnvelopeSize)
	}
	return append(out, '\n'), nil
}

// marshalJSON is compact JSON without HTML escaping (a script in a
// predicate stays readable when the payload is decoded).
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Verify fails closed, and every error is a *VerifyError. Order: size;
// strict envelope parse (ParseEnvelope); signatures, before the payload
// is read as a statement; the statement (ParseStatement); its predicate
// type; the predicate.
//
// Signatures: those whose keyid is not in trust are ignored (a co-signer
// the verifier does not know changes nothing); every signature whose
// keyid is trusted must verify with the trusted key over the DSSE PAE
// (one failing is ReasonBadSignature, even if another verifies); at
// least one must exist (else ReasonUntrustedKey). signer is the key id of
// the first trusted signature.
//
// The predicate, when predicate is non-nil, is decoded from the signed
// bytes with unknown fields refused (ReasonMalformed): a claim this
// version does not know, such as a restriction added later, must not be
// silently dropped by an older verifier.
func Verify(envelope []byte, trust *Trust, predicateType string, predicate any) (subjects []Subject, signer string, err error) {
	env, err := ParseEnvelope(envelope)
	if err != nil {
		return nil, "", err
	}
	body, err := decodeB64(env.Payload)
	if err != nil { // ParseEnvelope checked it
		return nil, "", refuse(ReasonMalformed, "payload: %v", err)
	}
	pae := dsse.PAE(env.PayloadType, body)
	var seen []string
	for _, s := range env.Signatures {
		seen = append(seen, fmt.Sprintf("%q", s.KeyID))
		k, ok := trust.Lookup(s.KeyID)
		if !ok {
			continue
		}
		sig, err := decodeB64(s.Sig)
		if err != nil {
			return nil, "", refuse(ReasonMalformed, "signature by %s: %v", s.KeyID, err)
		}
		if len(sig) != ed25519.SignatureSize || !ed25519.Verify(k.Key, pae, sig) {
			return nil, "", refuse(ReasonBadSignature, "the signature by trusted key %s does not verify", s.KeyID)
		}
		if signer == "" {
			signer = k.ID
		}
	}
	if signer == "" {
		trusted := "none"
		if ids := trust.IDs(); len(ids) > 0 {
			trusted = strings.Join(ids, ", ")
		}
		sort.Strings(seen)
		return nil, "", refuse(ReasonUntrustedKey, "signed by %s; trusted: %s", strings.Join(seen, ", "), trusted)
	}
	st, err := ParseStatement(body)
	if err != nil {
		return nil, "", err
	}
	if st.PredicateType != predicateType {
		return nil, "", refuse(ReasonWrongType, "predicateType %q, want %q", st.PredicateType, predicateType)
	}
	if predicate != nil {
		if err := decodePredicate(st.Predicate, predicate); err != nil {
			return nil, "", refuse(ReasonMalformed, "predicate: %v", err)
		}
	}
	return st.Subjects, signer, nil
}

func decodePredicate(raw json.RawMessage, v any) error {
	if err := checkJSON(raw, nil); err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("data after the predicate")
	}
	return nil
}
