package attest

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// fuzzSeeds are real envelopes and a few near misses.
func fuzzSeeds(t testing.TB, k *PrivateKey) [][]byte {
	env := testSignEnvelope(t, k)
	manifest, err := Sign([]Subject{{Name: "tracebroker", Digest: testDigestA}}, ArtifactPredicateType,
		ArtifactPredicate{Role: RoleBroker, Name: "tracebroker", Version: "1", SignedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, k)
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{
		env,
		manifest,
		bytes.TrimSpace(manifest[:len(manifest)/2]),
		[]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"","sig":"AA=="}]}`),
		[]byte(`{}`),
		[]byte(`[]`),
		nil,
	}
}

func FuzzParseEnvelope(f *testing.F) {
	for _, s := range fuzzSeeds(f, testSeedKey(f, 50)) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := ParseEnvelope(b)
		if err != nil {
			var ve *VerifyError
			if !errors.As(err, &ve) || (ve.Reason != ReasonMalformed && ve.Reason != ReasonTooLarge) {
				t.Fatalf("error %v (%T) is not a malformed/too-large refusal", err, err)
			}
			if env != nil {
				t.Fatal("an envelope with an error")
			}
			return
		}
		if env.PayloadType != PayloadType || len(env.Signatures) == 0 {
			t.Fatalf("accepted %+v", env)
		}
		if p, err := decodeB64(env.Payload); err != nil || len(p) == 0 {
			t.Fatalf("accepted payload %q: %v", env.Payload, err)
		}
		// What is accepted, re-encoded, is accepted again, the same.
		again, err := json.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		env2, err := ParseEnvelope(again)
		if err != nil {
			t.Fatalf("re-encoded envelope refused: %v\n%s", err, again)
		}
		if env2.Payload != env.Payload || len(env2.Signatures) != len(env.Signatures) {
			t.Fatal("re-encoding changed the envelope")
		}
	})
}

func FuzzParseStatement(f *testing.F) {
	k := testSeedKey(f, 51)
	for _, s := range fuzzSeeds(f, k) {
		if e, err := ParseEnvelope(s); err == nil {
			p, _ := decodeB64(e.Payload)
			f.Add(p)
		}
		f.Add(s)
	}
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"` + testDigestA + `"}}],"predicateType":"x","predicate":{}}`))
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha256":"` + testDigestA + `","sha512":"00"}}],"predicateType":"x","predicate":{"a":[1,2,{"b":null}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseStatement(b)
		if err != nil {
			var ve *VerifyError
			if !errors.As(err, &ve) || (ve.Reason != ReasonMalformed && ve.Reason != ReasonTooLarge) {
				t.Fatalf("error %v (%T) is not a malformed/too-large refusal", err, err)
			}
			return
		}
		if len(st.Subjects) == 0 || st.PredicateType == "" || len(st.Predicate) == 0 || st.Predicate[0] != '{' {
			t.Fatalf("accepted %+v", st)
		}
		for _, s := range st.Subjects {
			if !isDigest(s.Digest) {
				t.Fatalf("accepted digest %q", s.Digest)
			}
		}
		if !json.Valid(st.Predicate) {
			t.Fatalf("predicate is not JSON: %q", st.Predicate)
		}
	})
}

func FuzzVerify(f *testing.F) {
	k := testSeedKey(f, 52)
	trust := NewTrust(k.Public(), testSeedKey(f, 53).Public())
	for _, s := range fuzzSeeds(f, k) {
		f.Add(s)
	}
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha256":"` + testDigestA + `"}}],"predicateType":"https://tracebroker.dev/artifact/v1","predicate":{"role":"broker","name":"x","signed_at":"2026-01-01T00:00:00Z"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		// b as an envelope, and b as a statement validly signed by a
		// trusted key, so the fuzzer reaches past the signature check.
		for _, pt := range []string{ArtifactPredicateType, testPredicateType} {
			checkVerify(t, b, trust, pt)
			checkVerify(t, testRawEnvelope(t, k, PayloadType, b), trust, pt)
		}
	})
}

// checkVerify: every error is a *VerifyError with no result beside it;
// whatever verifies has a trusted signer and a subject, and gives
// VerifyManifest an Identity or a refusal, never a panic.
func checkVerify(t *testing.T, b []byte, trust *Trust, pt string) {
	var p ArtifactPredicate
	subjects, signer, err := Verify(b, trust, pt, &p)
	if err != nil {
		var ve *VerifyError
		if !errors.As(err, &ve) {
			t.Fatalf("error %v is a %T, not a *VerifyError", err, err)
		}
		if subjects != nil || signer != "" {
			t.Fatal("a refusal returned a result")
		}
		return
	}
	if _, ok := trust.Lookup(signer); !ok || len(subjects) == 0 {
		t.Fatalf("accepted: signer %q, subjects %v", signer, subjects)
	}
	id, err := VerifyManifest(b, subjects[0].Digest, trust, "")
	if err != nil {
		var ve *VerifyError
		if !errors.As(err, &ve) || id.Verified || id.Reason != string(ve.Reason) {
			t.Fatalf("VerifyManifest: %+v, %v", id, err)
		}
	} else if !id.Verified || !validRole(id.Role) || id.Name == "" {
		t.Fatalf("VerifyManifest accepted %+v", id)
	}
}
