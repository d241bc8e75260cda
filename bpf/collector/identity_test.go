package collector_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/broker/program"
)

// goldenDigests pin the collectors. A change here is a change of the
// code that runs in the kernel in interpreter mode: every installation
// must sign the new objects (collector.WriteObject, then tracebroker
// attest sign --role collector NAME.bpf) before it can load them. Update
// the digests only for such a deliberate change.
var goldenDigests = map[string]string{
	collector.TracepointName:         "70b1f028203e3c9e4e6aa1fd29834a7fb3a14a5c95c69a5759c7e4a6cbcab813",
	collector.RawTracepointName:      "cff1545006af3a4ba1128bc938982f986f16a6414dddfee48115bc5e05a3bfe1",
	collector.UprobeName:             "80c305c15a102b847525ca67453b1a056f08453c59001ffb4bab61f0618926d0",
	collector.PerfName:               "45241f4e3c1f2fa8b649f53895453fdfd8a148c1102deca228e6f9328c8f3f92",
	collector.KprobeName:             "50691896e922804e8f1f0fa59bef8e4f97fe341ef9c6889cdc3f52dd152e18d5",
	collector.RawTracepointIndexName: "b28bec299c59e7404bf4fbec9c60ce68be0931e9bc372859513501f46a1fbc01",
	collector.FentryName:             "6b4a11152698b5d36d5c0ce83f64e6e3920e4f98d61743d70598b29b3a87f22d",
	collector.FexitName:              "36e59fc9e1c758a708d25a102f9c7c41c926fa7b6f339a52f1b903de8111a2b4",
}

func TestGoldenDigests(t *testing.T) {
	specs := collector.Programs()
	if len(specs) != len(goldenDigests) {
		t.Fatalf("%d collectors, %d golden digests", len(specs), len(goldenDigests))
	}
	for _, s := range specs {
		if got, want := s.Digest(), goldenDigests[s.Name]; got != want {
			t.Errorf("collector %s: digest %s, golden %s: its code changed; if deliberately, update the golden digest and re-sign its object", s.Name, got, want)
		}
	}
}

// TestObject checks that WriteObject writes exactly what the digest is
// over, that building the collectors again gives the same bytes, and
// that the object names what matters.
func TestObject(t *testing.T) {
	again := collector.Programs()
	for i, s := range collector.Programs() {
		var b bytes.Buffer
		if err := collector.WriteObject(&b, s.Name); err != nil {
			t.Fatalf("WriteObject(%s): %v", s.Name, err)
		}
		sum := sha256.Sum256(b.Bytes())
		if hex.EncodeToString(sum[:]) != s.Digest() {
			t.Errorf("%s: the digest is not over the object's bytes", s.Name)
		}
		obj, err := again[i].Object()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(obj, b.Bytes()) {
			t.Errorf("%s: two builds differ", s.Name)
		}
		head, code, ok := bytes.Cut(b.Bytes(), []byte("\n\n"))
		if !ok {
			t.Fatalf("%s: no blank line after the header", s.Name)
		}
		for _, want := range []string{"tracebroker collector object v1\n", "name: " + s.Name + "\n", "license: GPL\n",
			"map 1: collector_config 2 BPF_MAP_TYPE_ARRAY key 4 value 720 entries session\n",
			"record: v1 header 64 context 512 strings 24x256 task reads 32x256 stacks 2x127\n"} {
			if !strings.Contains(string(head)+"\n", want) {
				t.Errorf("%s: header lacks %q:\n%s", s.Name, want, head)
			}
		}
		if len(code)%8 != 0 || len(code)/8 < len(s.Instructions) {
			t.Errorf("%s: %d bytes of code for %d instructions", s.Name, len(code), len(s.Instructions))
		}
		if !strings.Contains(string(head), "\ncode: "+strconv.Itoa(len(code)/8)) {
			t.Errorf("%s: header does not count %d instructions:\n%s", s.Name, len(code)/8, head)
		}
		// Every map load names its map by index, never by a descriptor.
		for off := 0; off+16 <= len(code); off += 8 {
			if code[off] == 0x18 {
				if src := code[off+1] >> 4; src != 5 && src != 0 {
					t.Errorf("%s: map load at %d with src %d, want BPF_PSEUDO_MAP_IDX", s.Name, off/8, src)
				}
				off += 8
			}
		}
	}
	if err := collector.WriteObject(&bytes.Buffer{}, "nosuch"); err == nil || !strings.Contains(err.Error(), `no collector "nosuch"`) {
		t.Errorf("WriteObject(nosuch) = %v", err)
	}
}

// testKey is a 0600 copy of attest's test-only release key (a git
// checkout does not keep the mode attest insists on).
func testKey(t *testing.T) (*attest.PrivateKey, *attest.Trust) {
	t.Helper()
	data, err := os.ReadFile("../../attest/testdata/test-only-release.key")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "test-only-release.key")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := attest.LoadPrivateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := attest.LoadPublicKey("../../attest/testdata/test-only-release.pub")
	if err != nil {
		t.Fatal(err)
	}
	return k, attest.NewTrust(pub)
}

// signObject writes the collector's object into dir and signs it as an
// administrator would, leaving dir/NAME.bpf.sig.
func signObject(t *testing.T, dir, name string, role attest.Role, key *attest.PrivateKey, tamper bool) {
	t.Helper()
	var b bytes.Buffer
	if err := collector.WriteObject(&b, name); err != nil {
		t.Fatal(err)
	}
	obj := b.Bytes()
	if tamper {
		obj[len(obj)-9] ^= 1 // a bit of the last instruction's immediate
	}
	path := filepath.Join(dir, collector.ObjectFile(name))
	if err := os.WriteFile(path, obj, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := attest.SignArtifact(path, key, attest.ArtifactPredicate{Role: role, Version: "test"}); err != nil {
		t.Fatal(err)
	}
}

func TestVerify(t *testing.T) {
	key, trust := testKey(t)
	other, err := attest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	tp, _ := collector.Lookup(collector.TracepointName)
	tests := []struct {
		name    string
		sign    func(t *testing.T, dir string)
		trust   func(dir string) collector.Trust
		wantErr string
	}{
		{name: "signed", sign: func(t *testing.T, dir string) { signObject(t, dir, tp.Name, attest.RoleCollector, key, false) }},
		{name: "unsigned", wantErr: "collector tb_coll_tp: not signed (no DIR/tb_coll_tp.bpf.sig): install a release's manifests (tracebroker init --trust release.pub, from make release), or export it (tracebroker collectors export OUT), sign OUT/tb_coll_tp.bpf (sha256 " + tp.Digest() + ") for role collector"},
		{name: "signed for the wrong role", sign: func(t *testing.T, dir string) { signObject(t, dir, tp.Name, attest.RolePolicy, key, false) },
			wantErr: "collector tb_coll_tp: manifest DIR/tb_coll_tp.bpf.sig: wrong role: signed as policy, wanted collector"},
		{name: "signed by an untrusted key", sign: func(t *testing.T, dir string) { signObject(t, dir, tp.Name, attest.RoleCollector, other, false) },
			wantErr: "collector tb_coll_tp: manifest DIR/tb_coll_tp.bpf.sig: untrusted key"},
		{name: "no keys trusted", sign: func(t *testing.T, dir string) { signObject(t, dir, tp.Name, attest.RoleCollector, key, false) },
			trust:   func(dir string) collector.Trust { return collector.Trust{ManifestDir: dir} },
			wantErr: "untrusted key"},
		{name: "a tampered object signed", sign: func(t *testing.T, dir string) { signObject(t, dir, tp.Name, attest.RoleCollector, key, true) },
			wantErr: "collector tb_coll_tp: manifest DIR/tb_coll_tp.bpf.sig: digest mismatch"},
		{name: "another collector's manifest", sign: func(t *testing.T, dir string) {
			signObject(t, dir, collector.UprobeName, attest.RoleCollector, key, false)
			os.Rename(filepath.Join(dir, "tb_coll_uprobe.bpf.sig"), filepath.Join(dir, "tb_coll_tp.bpf.sig"))
		}, wantErr: "digest mismatch"},
		{name: "garbage manifest", sign: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "tb_coll_tp.bpf.sig"), []byte("{}"), 0o644)
		}, wantErr: "malformed envelope"},
		{name: "no manifest directory", trust: func(string) collector.Trust { return collector.Trust{Keys: trust} },
			wantErr: "collector tb_coll_tp: no manifest directory configured"},
		{name: "unsigned, allowed for development", trust: func(string) collector.Trust { return collector.Trust{Unsigned: true} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.sign != nil {
				tc.sign(t, dir)
			}
			tr := collector.Trust{Keys: trust, ManifestDir: dir}
			if tc.trust != nil {
				tr = tc.trust(dir)
			}
			ids, err := tr.Verify(tp)
			if tc.wantErr != "" {
				want := strings.ReplaceAll(tc.wantErr, "DIR", dir)
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("Verify = %v, want an error containing %q", err, want)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("a multi-line error: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if len(ids) != 1 || ids[0].Digest != tp.Digest() {
				t.Fatalf("identities %+v", ids)
			}
			if tr.Unsigned {
				if ids[0].Verified || ids[0].Reason != collector.ReasonUnsignedAllowed {
					t.Errorf("unsigned identity %+v", ids[0])
				}
				return
			}
			if !ids[0].Verified || ids[0].Signer != key.ID || ids[0].Role != attest.RoleCollector || ids[0].Name != "tb_coll_tp.bpf" {
				t.Errorf("identity %+v", ids[0])
			}
		})
	}
}

// TestOpenRefusesUnverified checks that Open verifies before it loads:
// without a manifest, nothing reaches the kernel (this runs without
// privileges too).
func TestOpenRefusesUnverified(t *testing.T) {
	_, err := collector.Open(collector.Options{
		Probes: []collector.Probe{{Kind: program.Tracepoint, Category: "syscalls", Event: "sys_enter_getcwd", CtxLen: 24}},
		Trust:  collector.Trust{Keys: attest.NewTrust(), ManifestDir: t.TempDir()},
	})
	if err == nil || !strings.Contains(err.Error(), "collector tb_coll_tp: not signed") {
		t.Fatalf("Open = %v", err)
	}
}

// TestOpenChecksProbes checks the probe errors, which come before
// anything is verified or loaded.
func TestOpenChecksProbes(t *testing.T) {
	tp := func(ctxLen int, strs ...collector.StringSpec) collector.Probe {
		return collector.Probe{Kind: program.Tracepoint, Category: "syscalls", Event: "sys_enter_openat", CtxLen: ctxLen, Strings: strs}
	}
	tests := []struct {
		name    string
		probes  []collector.Probe
		size    int
		wantErr string
	}{
		{name: "none", wantErr: "collector: no probes"},
		{name: "only BEGIN", probes: []collector.Probe{{Kind: program.Begin}}, wantErr: "no probe needs a collector"},
		{name: "string past the context", probes: []collector.Probe{tp(48, collector.StringSpec{CtxOff: 44})},
			wantErr: "collector: probe 0 (tracepoint:syscalls:sys_enter_openat): string 0: its pointer at offset 44 is not within the 48 bytes of context"},
		{name: "array past the context", probes: []collector.Probe{tp(48, collector.StringSpec{CtxOff: 8}, collector.StringSpec{CtxOff: 48, Array: true})},
			wantErr: "string 1: its pointer at offset 48 is not within the 48 bytes of context"},
		{name: "negative offset", probes: []collector.Probe{tp(48, collector.StringSpec{CtxOff: -8})}, wantErr: "offset -8 is not within"},
		{name: "too many strings", probes: []collector.Probe{tp(48, make([]collector.StringSpec, collector.MaxStrings+1)...)}, wantErr: "25 strings, at most 24"},
		{name: "raw tracepoint context", probes: []collector.Probe{{Kind: program.RawTracepoint, Name: "sys_enter", CtxLen: 12}},
			wantErr: "probe 0 (rawtracepoint:sys_enter): context length 12: a raw tracepoint's context is its arguments, 8 bytes each, at most 12"},
		{name: "uprobe context", probes: []collector.Probe{{Kind: program.Uprobe, Path: "/bin/sh", Offset: 0x100, CtxLen: 64}},
			wantErr: "probe 0 (uprobe:/bin/sh:0x100): context length 64: the context is struct pt_regs, 168 bytes, always copied whole"},
		{name: "uprobe without offset", probes: []collector.Probe{{Kind: program.Uretprobe, Path: "/bin/sh"}}, wantErr: "probe 0 (uretprobe:/bin/sh:0x0): a uprobe needs a file and a non-zero offset"},
		{name: "interval without period", probes: []collector.Probe{{Kind: program.Interval}}, wantErr: "probe 0 (interval:ns:0): no period"},
		{name: "tp_btf is a raw tracepoint", probes: []collector.Probe{tp(8), {Kind: program.TpBTF, CtxLen: 8}}, wantErr: "probe 1 (tp_btf:): a raw tracepoint needs a name"},
		{name: "gatekeeper", probes: []collector.Probe{{Kind: program.Gatekeeper}}, wantErr: "no collector serves gatekeeper probes"},
		{name: "strings in BEGIN", probes: []collector.Probe{{Kind: program.Begin, Strings: []collector.StringSpec{{}}}}, wantErr: "BEGIN and END have no context"},
		{name: "stacks in END", probes: []collector.Probe{{Kind: program.End, UStack: true}}, wantErr: "BEGIN and END have no event to take a stack of"},
		{name: "ring buffer size", probes: []collector.Probe{tp(8)}, size: 5000, wantErr: "ring buffer size 5000 is not a power of two"},
		{name: "too many probes", probes: make([]collector.Probe, 1<<16+1), wantErr: "65537 probes, at most 65536"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Unverifiable on purpose: an error about the probes must
			// come first.
			_, err := collector.Open(collector.Options{Probes: tc.probes, BufferSize: tc.size, Trust: collector.Trust{ManifestDir: t.TempDir()}})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Open = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// TestOpenSigned loads collectors signed as an administrator would sign
// them, and reports who signed each.
func TestOpenSigned(t *testing.T) {
	needKernel(t)
	key, trust := testKey(t)
	dir := t.TempDir()
	for _, s := range collector.Programs() {
		signObject(t, dir, s.Name, attest.RoleCollector, key, false)
	}
	s, err := collector.Open(collector.Options{
		Probes: []collector.Probe{
			{Kind: program.Begin},
			{Kind: program.Tracepoint, Category: "syscalls", Event: "sys_enter_getcwd", CtxLen: 16},
			{Kind: program.Interval, PeriodNs: 1e9},
		},
		Trust: collector.Trust{Keys: trust, ManifestDir: dir},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var names []string
	for _, id := range s.Collectors() {
		if !id.Verified || id.Signer != key.ID || id.Role != attest.RoleCollector {
			t.Errorf("identity %+v", id)
		}
		names = append(names, id.Name)
	}
	if want := []string{"tb_coll_tp.bpf", "tb_coll_perf.bpf"}; !slices.Equal(names, want) {
		t.Errorf("collectors %v, want %v: only those the probes need", names, want)
	}
	if n := len(s.Programs()); n != 2 {
		t.Errorf("%d programs loaded", n)
	}
}
