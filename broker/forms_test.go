package broker

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/bpf/object"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/compile"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
	"github.com/tracebroker/tracebroker/gatekeeper"
)

// formsPolicy is the example policy shipped for the four forms.
const formsPolicy = "../dist/policies/forms.bt"

// The signer of a form in TestSigningForms.
const (
	signTrusted   = "trusted"
	signUntrusted = "untrusted"
	signTampered  = "tampered" // signed by the trusted key, then changed
	signNone      = "unsigned"
)

// formFixture builds one form of signing over opensnoop.bpf.o, signed as
// signer says, and returns the Request and Program the gatekeeper judges
// (or the error that refuses the form before it gets there).
func formFixture(t *testing.T, form, signer string, trusted, stranger *attest.PrivateKey, trust *attest.Trust) (*Request, *program.Program, attest.Identity, error) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(objectsDir, "opensnoop.bpf.o"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	key := trusted
	if signer == signUntrusted {
		key = stranger
	}
	var o *Object
	switch form {
	case "program":
		obj := filepath.Join(dir, "opensnoop.bpf.o")
		os.WriteFile(obj, data, 0o644)
		if signer != signNone {
			signObject(t, obj, key, attest.RoleProgram)
		}
		if signer == signTampered {
			appendByte(t, obj)
		}
		o, err = OpenObject(obj, "", trust)
	case "package":
		pkg := filepath.Join(dir, "tools.tar")
		writeTestTar(t, pkg, map[string][]byte{"opensnoop.bpf.o": data, "app.json": []byte(`{}`)})
		if signer != signNone {
			if _, err := attest.SignPackage(pkg, key, attest.BundlePredicate{}); err != nil {
				t.Fatal(err)
			}
		}
		if signer == signTampered {
			writeTestTar(t, pkg, map[string][]byte{"opensnoop.bpf.o": data, "app.json": []byte(`{"changed": 1}`)})
		}
		o, err = OpenPackageObject(pkg, "", "", trust)
	case "repository":
		obj := filepath.Join(dir, "net", "opensnoop.bpf.o")
		os.MkdirAll(filepath.Dir(obj), 0o755)
		os.WriteFile(obj, data, 0o644)
		if signer != signNone {
			if _, err := attest.SignRepository(dir, key, attest.BundlePredicate{}); err != nil {
				t.Fatal(err)
			}
		}
		if signer == signTampered {
			appendByte(t, obj)
		}
		o, err = OpenObject(obj, "", trust)
	case "source":
		// The broker's own identity is the signature: measured, not
		// read from a file here.
		id := attest.Identity{Digest: fmt.Sprintf("%064x", 1)}
		switch signer {
		case signTrusted:
			id.Verified, id.Signer = true, trusted.ID
		case signUntrusted:
			id.Reason = string(attest.ReasonUntrustedKey)
		case signTampered:
			id.Reason = string(attest.ReasonDigestMismatch)
		case signNone:
			id.Reason = string(attest.ReasonUnsigned)
		}
		prog := &program.Program{Probes: []*program.Probe{{Kind: program.Begin, Name: "BEGIN",
			Insns: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}, Reads: program.ReadsContext}}}
		return &Request{Name: "stdin", Source: []byte("BEGIN { }")}, prog, id, nil
	}
	if err != nil {
		return nil, nil, attest.Identity{}, err
	}
	// Whatever signs it, the object is named by its own digest.
	if sum := sha256.Sum256(data); o.Digest != hex.EncodeToString(sum[:]) {
		t.Fatalf("object digest %s, want its bytes' %x", o.Digest, sum)
	}
	prog, err := object.Parse(o.Name, o.Data)
	if err != nil {
		t.Fatal(err)
	}
	return &Request{Object: o}, prog, attest.Identity{}, nil
}

func writeTestTar(t *testing.T, p string, files map[string][]byte) {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, name := range []string{"app.json", "opensnoop.bpf.o"} {
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Size: int64(len(files[name])), Mode: 0o644})
		tw.Write(files[name])
	}
	tw.Close()
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSigningForms judges each form of signing (a program-only object, a
// package's member, a repository's file, a program generated from
// source) signed each way (by a trusted key, by a key nobody trusts,
// tampered with after signing, not at all) under the strict and loose
// defaults and the example policy, with HVCI off and on: the exact
// verdict and mode, or the refusal that stops a tampered form before the
// gatekeeper.
func TestSigningForms(t *testing.T) {
	trusted, stranger := testKey(t), testKey(t)
	trust := attest.NewTrust(trusted.Public())
	policy := loadFormsPolicy(t, trust)
	// want: "VERDICT/MODE" with HVCI off, then on; "refused" before the
	// gatekeeper.
	type want [2]string
	const refused = "refused"
	tests := []struct {
		gate, form, signer string
		want               want
	}{
		// strict (uid 1000): signed by a trusted key, whatever the form;
		// from source, by a verified broker.
		{"strict", "program", signTrusted, want{"any/jit", "any/interpreter"}},
		{"strict", "program", signUntrusted, want{"deny/", "deny/"}},
		{"strict", "program", signTampered, want{refused, refused}},
		{"strict", "program", signNone, want{"deny/", "deny/"}},
		{"strict", "package", signTrusted, want{"any/jit", "any/interpreter"}},
		{"strict", "package", signUntrusted, want{"deny/", "deny/"}},
		{"strict", "package", signTampered, want{refused, refused}},
		{"strict", "package", signNone, want{"deny/", "deny/"}},
		{"strict", "repository", signTrusted, want{"any/jit", "any/interpreter"}},
		{"strict", "repository", signUntrusted, want{"deny/", "deny/"}},
		{"strict", "repository", signTampered, want{refused, refused}},
		{"strict", "repository", signNone, want{"deny/", "deny/"}},
		{"strict", "source", signTrusted, want{"any/jit", "any/interpreter"}},
		{"strict", "source", signUntrusted, want{"deny/", "deny/"}},
		{"strict", "source", signTampered, want{"deny/", "deny/"}},
		{"strict", "source", signNone, want{"deny/", "deny/"}},
		// loose (uid 0): anything root submits, but what was tampered
		// with is refused whatever the policy.
		{"loose", "program", signTrusted, want{"any/jit", "any/interpreter"}},
		{"loose", "program", signUntrusted, want{"any/jit", "any/interpreter"}},
		{"loose", "program", signTampered, want{refused, refused}},
		{"loose", "program", signNone, want{"any/jit", "any/interpreter"}},
		{"loose", "package", signTrusted, want{"any/jit", "any/interpreter"}},
		{"loose", "package", signUntrusted, want{"any/jit", "any/interpreter"}},
		{"loose", "package", signTampered, want{refused, refused}},
		{"loose", "package", signNone, want{"any/jit", "any/interpreter"}},
		{"loose", "repository", signTrusted, want{"any/jit", "any/interpreter"}},
		{"loose", "repository", signUntrusted, want{"any/jit", "any/interpreter"}},
		{"loose", "repository", signTampered, want{refused, refused}},
		{"loose", "repository", signNone, want{"any/jit", "any/interpreter"}},
		{"loose", "source", signTrusted, want{"any/jit", "any/interpreter"}},
		{"loose", "source", signTampered, want{"any/jit", "any/interpreter"}},
		// forms.bt (uid 1000): vendor JIT, repository interpreted,
		// source only from a verified broker.
		{"forms.bt", "program", signTrusted, want{"jit/jit", "deny/"}},
		{"forms.bt", "program", signUntrusted, want{"deny/", "deny/"}},
		{"forms.bt", "program", signTampered, want{refused, refused}},
		{"forms.bt", "program", signNone, want{"deny/", "deny/"}},
		{"forms.bt", "package", signTrusted, want{"jit/jit", "deny/"}},
		{"forms.bt", "package", signUntrusted, want{"deny/", "deny/"}},
		{"forms.bt", "package", signTampered, want{refused, refused}},
		{"forms.bt", "package", signNone, want{"deny/", "deny/"}},
		{"forms.bt", "repository", signTrusted, want{"interpreter/interpreter", "interpreter/interpreter"}},
		{"forms.bt", "repository", signUntrusted, want{"deny/", "deny/"}},
		{"forms.bt", "repository", signTampered, want{refused, refused}},
		{"forms.bt", "repository", signNone, want{"deny/", "deny/"}},
		{"forms.bt", "source", signTrusted, want{"any/jit", "any/interpreter"}},
		{"forms.bt", "source", signUntrusted, want{"deny/", "deny/"}},
		{"forms.bt", "source", signTampered, want{"deny/", "deny/"}},
		{"forms.bt", "source", signNone, want{"deny/", "deny/"}},
	}
	for _, tc := range tests {
		for i, hvci := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/%s/%s/hvci=%v", tc.gate, tc.form, tc.signer, hvci), func(t *testing.T) {
				req, prog, broker, err := formFixture(t, tc.form, tc.signer, trusted, stranger, trust)
				if tc.want[i] == refused {
					if err == nil {
						t.Fatalf("opened, want a refusal before the gatekeeper")
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				def := gatekeeper.DefaultStrict
				if tc.gate == "loose" {
					def = gatekeeper.DefaultLoose
				}
				k, err := gatekeeper.New(gatekeeper.Config{Default: def, Trust: trust,
					Platform: gatekeeper.Platform{HVCI: hvci, JITAvailable: true}})
				if err != nil {
					t.Fatal(err)
				}
				if tc.gate == "forms.bt" {
					k.Load(policy)
				}
				g := &Gate{Keeper: k, Request: RequesterRequest(broker)}
				g.Request.UID = 1000
				if tc.gate == "loose" {
					g.Request.UID = 0
				}
				got := ""
				adm, err := admit(g, req, prog)
				var de *DeniedError
				switch {
				case errors.As(err, &de):
					got = "deny/"
				case err != nil:
					t.Fatal(err)
				default:
					got = adm.Decisions[0].Verdict.String() + "/" + adm.Mode
				}
				if got != tc.want[i] {
					reason := ""
					if adm != nil {
						reason = adm.Decisions[0].Reason
					} else if de != nil {
						reason = de.Decision.Reason
					}
					t.Errorf("%s, want %s (%s)", got, tc.want[i], reason)
				}
			})
		}
	}
}

// loadFormsPolicy compiles the example policy, its trusted keys those of
// trust.
func loadFormsPolicy(t *testing.T, trust *attest.Trust) *gatekeeper.Policy {
	t.Helper()
	src, err := os.ReadFile(formsPolicy)
	if err != nil {
		t.Fatal(err)
	}
	f, err := syntax.Parse(formsPolicy, src)
	if err != nil {
		t.Fatal(err)
	}
	pp, err := compile.Policy(f)
	if err != nil {
		t.Fatal(err)
	}
	policy, err := gatekeeper.NewPolicy("forms.bt", pp.Probes[0].Insns, gatekeeper.PolicyOptions{Trust: trust})
	if err != nil {
		t.Fatal(err)
	}
	return policy
}

// TestFixedBytecodePlugin: a plugin that ships fixed bytecode is judged
// as a package signed by the plugin's signer; one that generates its
// program, as a program generated from source.
func TestFixedBytecodePlugin(t *testing.T) {
	key := testKey(t)
	trust := attest.NewTrust(key.Public())
	prog := &program.Program{Probes: []*program.Probe{{Kind: program.Begin, Name: "BEGIN",
		Insns: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}, Reads: program.ReadsContext}}}
	k, err := gatekeeper.New(gatekeeper.Config{Default: gatekeeper.DefaultStrict, Trust: trust, Platform: gatekeeper.Platform{JITAvailable: true}})
	if err != nil {
		t.Fatal(err)
	}
	// The broker itself is unverified: only the plugin's signature can
	// admit its program.
	g := &Gate{Keeper: k, Request: RequesterRequest(attest.Identity{Digest: fmt.Sprintf("%064x", 7)})}
	for _, tc := range []struct {
		fixed, verified bool
		want            string // the reason's words, or "" for a denial
	}{
		{true, true, "strict default: its package is signed by trusted key " + key.ID},
		{true, false, ""},
		{false, true, ""}, // a generator verified, but the broker that runs it is not
	} {
		t.Run(fmt.Sprintf("fixed=%v,verified=%v", tc.fixed, tc.verified), func(t *testing.T) {
			id := attest.Identity{Path: "/plugins/opensnoop", Digest: fmt.Sprintf("%064x", 9), Verified: tc.verified}
			if tc.verified {
				id.Signer = key.ID
			}
			req := &Request{Name: "gen:opensnoop", Generator: &Generator{Name: "opensnoop", Identity: id, Program: prog, Fixed: tc.fixed}}
			adm, err := admit(g, req, prog)
			var de *DeniedError
			switch {
			case tc.want == "" && !errors.As(err, &de):
				t.Fatalf("admit = %+v, %v; want a denial", adm, err)
			case tc.want != "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && !bytes.Contains([]byte(adm.Decisions[0].Reason), []byte(tc.want)):
				t.Errorf("reason %q, want %q", adm.Decisions[0].Reason, tc.want)
			}
		})
	}
}
