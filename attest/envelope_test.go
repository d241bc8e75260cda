package attest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

var (
	testDigestA = testHex("artifact a")
	testDigestB = testHex("artifact b")
)

func testHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

type testPredicate struct {
	Name  string `json:"name"`
	Count uint64 `json:"count"`
}

const testPredicateType = "https://tracebroker.dev/test/v1"

func testSignEnvelope(t testing.TB, key *PrivateKey) []byte {
	t.Helper()
	env, err := Sign([]Subject{{Name: "a", Digest: testDigestA}}, testPredicateType, testPredicate{Name: "x", Count: 7}, key)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// rawEnvelope signs any payload (well-formed or not) the DSSE way, to
// build envelopes Sign would refuse to make.
func testRawEnvelope(t testing.TB, key *PrivateKey, payloadType string, payload []byte) []byte {
	t.Helper()
	sig := ed25519.Sign(key.Key, dsse.PAE(payloadType, payload))
	b, err := json.Marshal(dsse.Envelope{
		PayloadType: payloadType,
		Payload:     base64.StdEncoding.EncodeToString(payload),
		Signatures:  []dsse.Signature{{KeyID: key.ID, Sig: base64.StdEncoding.EncodeToString(sig)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testDecodeEnv(t testing.TB, b []byte) dsse.Envelope {
	t.Helper()
	var e dsse.Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	return e
}

func testEncodeEnv(t testing.TB, e dsse.Envelope) []byte {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testPayloadOf(t testing.TB, env []byte) []byte {
	t.Helper()
	p, err := base64.StdEncoding.DecodeString(testDecodeEnv(t, env).Payload)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func testReason(err error) Reason {
	var ve *VerifyError
	if errors.As(err, &ve) {
		return ve.Reason
	}
	return ""
}

func TestSignVerifyRoundTrip(t *testing.T) {
	k := testSeedKey(t, 10)
	env, err := Sign([]Subject{{Name: "a", Digest: testDigestA}, {Name: "b", Digest: testDigestB}}, testPredicateType,
		testPredicate{Name: "x", Count: math.MaxUint64}, k)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(env, []byte("\n")) != 1 || env[len(env)-1] != '\n' {
		t.Errorf("envelope is not one line: %q", env)
	}
	var p testPredicate
	subjects, signer, err := Verify(env, NewTrust(k.Public()), testPredicateType, &p)
	if err != nil {
		t.Fatal(err)
	}
	if signer != k.ID {
		t.Errorf("signer %s, want %s", signer, k.ID)
	}
	if len(subjects) != 2 || subjects[0] != (Subject{"a", testDigestA}) || subjects[1] != (Subject{"b", testDigestB}) {
		t.Errorf("subjects %v", subjects)
	}
	// An integer above 2^53 survives: the predicate is not routed
	// through structpb's float64.
	if p != (testPredicate{Name: "x", Count: math.MaxUint64}) {
		t.Errorf("predicate %+v", p)
	}
	// Deterministic.
	again, _ := Sign([]Subject{{Name: "a", Digest: testDigestA}, {Name: "b", Digest: testDigestB}}, testPredicateType,
		testPredicate{Name: "x", Count: math.MaxUint64}, k)
	if !bytes.Equal(env, again) {
		t.Error("Sign is not deterministic")
	}
	// predicate nil: checked, not decoded.
	if _, _, err := Verify(env, NewTrust(k.Public()), testPredicateType, nil); err != nil {
		t.Error(err)
	}
	// Also verifies with a larger trust set.
	if _, _, err := Verify(env, NewTrust(testSeedKey(t, 11).Public(), k.Public()), testPredicateType, nil); err != nil {
		t.Error(err)
	}
	// HTML characters are not escaped in the statement.
	env2, _ := Sign([]Subject{{Name: "a", Digest: testDigestA}}, testPredicateType, testPredicate{Name: "<&>"}, k)
	if !bytes.Contains(testPayloadOf(t, env2), []byte(`"<&>"`)) {
		t.Errorf("payload %s", testPayloadOf(t, env2))
	}
}

// The statement has exactly the in-toto v1 field names, read with a
// hand-written struct (not this package's or the library's types).
func TestStatementWireFormat(t *testing.T) {
	k := testSeedKey(t, 12)
	env := testSignEnvelope(t, k)
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(env, &outer); err != nil {
		t.Fatal(err)
	}
	if len(outer) != 3 || outer["payloadType"] == nil || outer["payload"] == nil || outer["signatures"] == nil {
		t.Fatalf("envelope fields: %s", env)
	}
	e := testDecodeEnv(t, env)
	if e.PayloadType != "application/vnd.in-toto+json" || len(e.Signatures) != 1 || e.Signatures[0].KeyID != k.ID {
		t.Fatalf("envelope %+v", e)
	}
	payload := testPayloadOf(t, env)
	var st struct {
		Type    string `json:"_type"`
		Subject []struct {
			Name   string `json:"name"`
			Digest struct {
				SHA256 string `json:"sha256"`
			} `json:"digest"`
		} `json:"subject"`
		PredicateType string          `json:"predicateType"`
		Predicate     json.RawMessage `json:"predicate"`
	}
	d := json.NewDecoder(bytes.NewReader(payload))
	d.DisallowUnknownFields()
	if err := d.Decode(&st); err != nil {
		t.Fatalf("%v: %s", err, payload)
	}
	var keys map[string]json.RawMessage
	json.Unmarshal(payload, &keys)
	for _, k := range []string{"_type", "subject", "predicateType", "predicate"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("statement has no %q: %s", k, payload)
		}
	}
	if st.Type != "https://in-toto.io/Statement/v1" || len(st.Subject) != 1 || st.Subject[0].Name != "a" ||
		st.Subject[0].Digest.SHA256 != testDigestA || st.PredicateType != testPredicateType ||
		string(st.Predicate) != `{"name":"x","count":7}` {
		t.Fatalf("statement %s", payload)
	}
}

func TestVerifyRefusals(t *testing.T) {
	k, other := testSeedKey(t, 13), testSeedKey(t, 14)
	trust := NewTrust(k.Public())
	good := testSignEnvelope(t, k)
	goodEnv := testDecodeEnv(t, good)
	payload := testPayloadOf(t, good)
	sig, _ := base64.StdEncoding.DecodeString(goodEnv.Signatures[0].Sig)

	mutate := func(f func(e *dsse.Envelope)) []byte {
		e := testDecodeEnv(t, good)
		f(&e)
		return testEncodeEnv(t, e)
	}
	statement := func(s string) []byte { return testRawEnvelope(t, k, PayloadType, []byte(s)) }
	subj := `"subject":[{"name":"a","digest":{"sha256":"` + testDigestA + `"}}]`
	pt := `"predicateType":"` + testPredicateType + `"`

	cases := []struct {
		name string
		env  []byte
		want Reason
	}{
		{"flipped payload byte", mutate(func(e *dsse.Envelope) {
			p := bytes.Clone(payload)
			p[len(p)/2] ^= 1
			e.Payload = base64.StdEncoding.EncodeToString(p)
		}), ReasonBadSignature},
		{"flipped signature byte", mutate(func(e *dsse.Envelope) {
			s := bytes.Clone(sig)
			s[10] ^= 0x80
			e.Signatures[0].Sig = base64.StdEncoding.EncodeToString(s)
		}), ReasonBadSignature},
		{"short signature", mutate(func(e *dsse.Envelope) {
			e.Signatures[0].Sig = base64.StdEncoding.EncodeToString(sig[:63])
		}), ReasonBadSignature},
		{"payload type changed (PAE covers it)", mutate(func(e *dsse.Envelope) {
			e.PayloadType = "application/vnd.in-toto+JSON"
		}), ReasonMalformed},
		{"another key", testSignEnvelope(t, other), ReasonUntrustedKey},
		{"trusted keyid, another key's signature", mutate(func(e *dsse.Envelope) {
			e.Signatures[0].Sig = testDecodeEnv(t, testSignEnvelope(t, other)).Signatures[0].Sig
		}), ReasonBadSignature},
		{"garbage keyid", mutate(func(e *dsse.Envelope) { e.Signatures[0].KeyID = "garbage" }), ReasonUntrustedKey},
		{"empty keyid", mutate(func(e *dsse.Envelope) { e.Signatures[0].KeyID = "" }), ReasonUntrustedKey},
		{"duplicate keyid", mutate(func(e *dsse.Envelope) { e.Signatures = append(e.Signatures, e.Signatures[0]) }), ReasonMalformed},
		{"empty signatures", mutate(func(e *dsse.Envelope) { e.Signatures = []dsse.Signature{} }), ReasonMalformed},
		{"null signatures", mutate(func(e *dsse.Envelope) { e.Signatures = nil }), ReasonMalformed},
		{"empty sig", mutate(func(e *dsse.Envelope) { e.Signatures[0].Sig = "" }), ReasonMalformed},
		{"sig not base64", mutate(func(e *dsse.Envelope) { e.Signatures[0].Sig = "!!!!" }), ReasonMalformed},
		{"payload not base64", mutate(func(e *dsse.Envelope) { e.Payload = e.Payload[1:] }), ReasonMalformed},
		{"payload with line break", mutate(func(e *dsse.Envelope) { e.Payload = e.Payload[:8] + "\n" + e.Payload[8:] }), ReasonMalformed},
		{"empty payload", testRawEnvelope(t, k, PayloadType, nil), ReasonMalformed},
		{"wrong payloadType, validly signed", testRawEnvelope(t, k, "application/json", payload), ReasonMalformed},
		{"truncated", good[:len(good)/2], ReasonMalformed},
		{"empty", nil, ReasonMalformed},
		{"two envelopes", append(bytes.Clone(good), good...), ReasonMalformed},
		{"unknown envelope field", bytes.Replace(good, []byte(`{"payloadType"`), []byte(`{"extra":1,"payloadType"`), 1), ReasonMalformed},
		{"duplicate envelope field", bytes.Replace(good, []byte(`{"payloadType"`), []byte(`{"payload":"e30=","payloadType"`), 1), ReasonMalformed},
		{"envelope field case", bytes.Replace(good, []byte(`"payloadType"`), []byte(`"PayloadType"`), 1), ReasonMalformed},
		{"invalid UTF-8", bytes.Replace(good, []byte(`{"payloadType"`), []byte("{\"k\xff\":1,\"payloadType\""), 1), ReasonMalformed},
		{"not an object", []byte(`[]`), ReasonMalformed},
		{"oversized", append(bytes.Clone(good), bytes.Repeat([]byte(" "), MaxEnvelopeSize)...), ReasonTooLarge},
		{"wrong predicate type", func() []byte {
			e, _ := Sign([]Subject{{Name: "a", Digest: testDigestA}}, ArtifactPredicateType, testPredicate{}, k)
			return e
		}(), ReasonWrongType},
		// Statements, validly signed, that are not what Verify accepts.
		{"statement v0.1", statement(`{"_type":"https://in-toto.io/Statement/v0.1",` + subj + `,` + pt + `,"predicate":{}}`), ReasonMalformed},
		{"statement no _type", statement(`{` + subj + `,` + pt + `,"predicate":{}}`), ReasonMalformed},
		{"statement proto name type", statement(`{"type":"` + StatementType + `",` + subj + `,` + pt + `,"predicate":{}}`), ReasonMalformed},
		{"statement proto name predicate_type", statement(`{"_type":"` + StatementType + `",` + subj + `,"predicate_type":"` + testPredicateType + `","predicate":{}}`), ReasonMalformed},
		{"statement duplicate _type", statement(`{"_type":"x","_type":"` + StatementType + `",` + subj + `,` + pt + `,"predicate":{}}`), ReasonMalformed},
		{"statement unknown field", statement(`{"_type":"` + StatementType + `","x":1,` + subj + `,` + pt + `,"predicate":{}}`), ReasonMalformed},
		{"no subject", statement(`{"_type":"` + StatementType + `","subject":[],` + pt + `,"predicate":{}}`), ReasonMalformed},
		{"subject without sha256", statement(`{"_type":"` + StatementType + `","subject":[{"name":"a","digest":{"sha512":"` + strings.Repeat("ab", 64) + `"}}],` + pt + `,"predicate":{}}`), ReasonMalformed},
		{"subject short digest", statement(`{"_type":"` + StatementType + `","subject":[{"name":"a","digest":{"sha256":"abcd"}}],` + pt + `,"predicate":{}}`), ReasonMalformed},
		{"subject uppercase digest", statement(`{"_type":"` + StatementType + `","subject":[{"name":"a","digest":{"sha256":"` + strings.ToUpper(testDigestA) + `"}}],` + pt + `,"predicate":{}}`), ReasonMalformed},
		{"no predicateType", statement(`{"_type":"` + StatementType + `",` + subj + `,"predicate":{}}`), ReasonMalformed},
		{"no predicate", statement(`{"_type":"` + StatementType + `",` + subj + `,` + pt + `}`), ReasonMalformed},
		{"predicate not an object", statement(`{"_type":"` + StatementType + `",` + subj + `,` + pt + `,"predicate":[1]}`), ReasonMalformed},
		{"predicate unknown field", statement(`{"_type":"` + StatementType + `",` + subj + `,` + pt + `,"predicate":{"name":"x","count":1,"extra":true}}`), ReasonMalformed},
		{"predicate duplicate field", statement(`{"_type":"` + StatementType + `",` + subj + `,` + pt + `,"predicate":{"name":"x","name":"y"}}`), ReasonMalformed},
		{"predicate wrong type", statement(`{"_type":"` + StatementType + `",` + subj + `,` + pt + `,"predicate":{"count":"many"}}`), ReasonMalformed},
		{"statement not JSON", statement(`hello`), ReasonMalformed},
		{"statement trailing data", statement(`{"_type":"` + StatementType + `",` + subj + `,` + pt + `,"predicate":{}} {}`), ReasonMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var p testPredicate
			subjects, signer, err := Verify(tc.env, trust, testPredicateType, &p)
			var ve *VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v (%T), want a *VerifyError %q", err, err, tc.want)
			}
			if ve.Reason != tc.want {
				t.Fatalf("reason %q (%v), want %q", ve.Reason, err, tc.want)
			}
			if subjects != nil || signer != "" {
				t.Fatalf("refusal returned subjects %v signer %q", subjects, signer)
			}
		})
	}
	// The control: the unmodified envelope and a well-formed hand-built
	// statement verify, so the refusals above are the modifications'.
	if _, _, err := Verify(good, trust, testPredicateType, &testPredicate{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Verify(statement(`{"_type":"`+StatementType+`",`+subj+`,`+pt+`,"predicate":{"name":"x"}}`), trust, testPredicateType, &testPredicate{}); err != nil {
		t.Fatal(err)
	}
	// Nothing is trusted by nil or empty trust.
	for _, tr := range []*Trust{nil, NewTrust()} {
		if _, _, err := Verify(good, tr, testPredicateType, nil); testReason(err) != ReasonUntrustedKey {
			t.Errorf("trust %v: err = %v", tr, err)
		}
	}
}

// Every single-bit flip of the payload or of the signature is caught.
func TestVerifyEveryFlip(t *testing.T) {
	k := testSeedKey(t, 15)
	trust := NewTrust(k.Public())
	good := testSignEnvelope(t, k)
	e := testDecodeEnv(t, good)
	payload := testPayloadOf(t, good)
	sig, _ := base64.StdEncoding.DecodeString(e.Signatures[0].Sig)
	for i := range payload {
		p := bytes.Clone(payload)
		p[i] ^= 1 << (i % 8)
		m := e
		m.Payload = base64.StdEncoding.EncodeToString(p)
		if _, _, err := Verify(testEncodeEnv(t, m), trust, testPredicateType, nil); testReason(err) != ReasonBadSignature {
			t.Fatalf("payload byte %d flipped: err = %v", i, err)
		}
	}
	for i := range sig {
		s := bytes.Clone(sig)
		s[i] ^= 1 << (i % 8)
		m := e
		m.Signatures = []dsse.Signature{{KeyID: k.ID, Sig: base64.StdEncoding.EncodeToString(s)}}
		if _, _, err := Verify(testEncodeEnv(t, m), trust, testPredicateType, nil); testReason(err) != ReasonBadSignature {
			t.Fatalf("signature byte %d flipped: err = %v", i, err)
		}
	}
	// Every truncation (short of dropping only the final newline) is
	// malformed.
	trimmed := bytes.TrimSuffix(good, []byte("\n"))
	for i := 0; i < len(trimmed); i++ {
		if _, _, err := Verify(trimmed[:i], trust, testPredicateType, nil); testReason(err) != ReasonMalformed {
			t.Fatalf("truncated to %d: err = %v", i, err)
		}
	}
	if _, _, err := Verify(trimmed, trust, testPredicateType, nil); err != nil {
		t.Fatalf("without the final newline: %v", err)
	}
}

func TestVerifySignatureSets(t *testing.T) {
	k, other, third := testSeedKey(t, 16), testSeedKey(t, 17), testSeedKey(t, 18)
	good := testDecodeEnv(t, testSignEnvelope(t, k))
	byOther := testDecodeEnv(t, testSignEnvelope(t, other)).Signatures[0]
	badSig := byOther
	badSig.KeyID = third.ID // third's id, other's signature

	withSigs := func(sigs ...dsse.Signature) []byte {
		e := good
		e.Signatures = sigs
		return testEncodeEnv(t, e)
	}
	for _, tc := range []struct {
		name   string
		env    []byte
		trust  *Trust
		want   Reason
		signer string
	}{
		{"untrusted co-signer ignored", withSigs(byOther, good.Signatures[0]), NewTrust(k.Public()), "", k.ID},
		{"two trusted, both good", withSigs(good.Signatures[0], byOther), NewTrust(k.Public(), other.Public()), "", k.ID},
		{"two trusted, one bad", withSigs(good.Signatures[0], badSig), NewTrust(k.Public(), third.Public()), ReasonBadSignature, ""},
		{"bad one first", withSigs(badSig, good.Signatures[0]), NewTrust(k.Public(), third.Public()), ReasonBadSignature, ""},
		{"only untrusted", withSigs(byOther, badSig), NewTrust(k.Public()), ReasonUntrustedKey, ""},
		// A key carried in the envelope is never used: the keyid names a
		// trusted key, the signature is checked with that key only.
		{"keyid of trusted key, signed by other", withSigs(dsse.Signature{KeyID: k.ID, Sig: byOther.Sig}), NewTrust(k.Public()), ReasonBadSignature, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, signer, err := Verify(tc.env, tc.trust, testPredicateType, nil)
			if testReason(err) != tc.want || (tc.want == "" && err != nil) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if signer != tc.signer {
				t.Fatalf("signer %q, want %q", signer, tc.signer)
			}
		})
	}
}

func TestVerifyAcceptsURLSafeBase64(t *testing.T) {
	k := testSeedKey(t, 19)
	// Find a payload whose standard base64 has '+' or '/', so the
	// URL-safe form differs.
	for n := 0; n < 200; n++ {
		env, err := Sign([]Subject{{Name: "a", Digest: testDigestA}}, testPredicateType, testPredicate{Name: strings.Repeat("?", n)}, k)
		if err != nil {
			t.Fatal(err)
		}
		e := testDecodeEnv(t, env)
		if !strings.ContainsAny(e.Payload, "+/") {
			continue
		}
		e.Payload = strings.NewReplacer("+", "-", "/", "_").Replace(e.Payload)
		if _, _, err := Verify(testEncodeEnv(t, e), NewTrust(k.Public()), testPredicateType, nil); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatal("no payload with + or / in its base64")
}

func TestSignRefusals(t *testing.T) {
	k := testSeedKey(t, 20)
	sub := []Subject{{Name: "a", Digest: testDigestA}}
	for _, tc := range []struct {
		name     string
		subjects []Subject
		ptype    string
		pred     any
		key      *PrivateKey
	}{
		{"no key", sub, testPredicateType, testPredicate{}, nil},
		{"empty key", sub, testPredicateType, testPredicate{}, &PrivateKey{}},
		{"stale key id", sub, testPredicateType, testPredicate{}, &PrivateKey{Key: k.Key, ID: testSeedKey(t, 21).ID}},
		{"no subjects", nil, testPredicateType, testPredicate{}, k},
		{"short digest", []Subject{{Name: "a", Digest: "abcd"}}, testPredicateType, testPredicate{}, k},
		{"uppercase digest", []Subject{{Name: "a", Digest: strings.ToUpper(testDigestA)}}, testPredicateType, testPredicate{}, k},
		{"no predicate type", sub, "", testPredicate{}, k},
		{"nil predicate", sub, testPredicateType, nil, k},
		{"array predicate", sub, testPredicateType, []int{1}, k},
		{"string predicate", sub, testPredicateType, "x", k},
		{"unmarshalable predicate", sub, testPredicateType, map[string]any{"f": func() {}}, k},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if env, err := Sign(tc.subjects, tc.ptype, tc.pred, tc.key); err == nil {
				t.Fatalf("signed: %s", env)
			}
		})
	}
	// A key with an empty ID signs under its computed id.
	env, err := Sign(sub, testPredicateType, testPredicate{}, &PrivateKey{Key: k.Key})
	if err != nil {
		t.Fatal(err)
	}
	if _, signer, err := Verify(env, NewTrust(k.Public()), testPredicateType, nil); err != nil || signer != k.ID {
		t.Fatalf("signer %q, err %v", signer, err)
	}
}

// ProgramPredicate, with its time and nested identities, survives the
// strict predicate decoding.
func TestVerifyProgramShapedPredicate(t *testing.T) {
	k := testSeedKey(t, 22)
	p := ProgramPredicate{
		Program: ProgramInfo{Name: "tracepoint:x", Insns: 2, Code: "00", Maps: []MapInfo{{Name: "m", Type: "Hash", MaxEntries: math.MaxUint32}}},
		Source:  Source{Kind: "plugin", Digest: testDigestA, Params: map[string]string{"a": "<b>"}},
		Broker:  Identity{Path: "/usr/bin/tracebroker", Digest: testDigestB, Verified: true},
		Time:    time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	env, err := Sign([]Subject{{Name: "p", Digest: testDigestA}}, ProgramPredicateType, p, k)
	if err != nil {
		t.Fatal(err)
	}
	var got ProgramPredicate
	if _, _, err := Verify(env, NewTrust(k.Public()), ProgramPredicateType, &got); err != nil {
		t.Fatal(err)
	}
	if !got.Time.Equal(p.Time) || got.Program.Maps[0] != p.Program.Maps[0] || got.Source.Params["a"] != "<b>" || got.Broker != p.Broker {
		t.Fatalf("got %+v", got)
	}
}

func TestParseStatementOwnOutput(t *testing.T) {
	k := testSeedKey(t, 23)
	st, err := ParseStatement(testPayloadOf(t, testSignEnvelope(t, k)))
	if err != nil {
		t.Fatal(err)
	}
	if st.PredicateType != testPredicateType || len(st.Subjects) != 1 || st.Subjects[0].Digest != testDigestA ||
		string(st.Predicate) != `{"name":"x","count":7}` {
		t.Fatalf("%+v", st)
	}
}
