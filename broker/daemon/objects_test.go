package daemon

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/bpf"
	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
	"github.com/tracebroker/tracebroker/broker/token"
)

func readObjectFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../testdata/objects", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signedEnvelope signs data for role program as FILE.sig would.
func signedEnvelope(t *testing.T, key *attest.PrivateKey, data []byte) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.bpf.o")
	os.WriteFile(p, data, 0o644)
	sig, err := attest.SignArtifact(p, key, attest.ArtifactPredicate{Role: attest.RoleProgram})
	if err != nil {
		t.Fatal(err)
	}
	env, err := os.ReadFile(sig)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// TestObjectThroughDaemon: a token holder sends a precompiled object and
// its signature; the daemon verifies the signature against its own keys,
// checks every probe and every read against the token's scopes as for a
// script, and audits what signed it in the same words as for every form.
func TestObjectThroughDaemon(t *testing.T) {
	needKernel(t)
	vendor, stranger := testKey(t), testKey(t)
	d := startDaemon(t, daemonOpts{configure: func(_ *testDaemon, c *Config) { c.Trust = attest.NewTrust(vendor.Public()) }})
	obj := readObjectFixture(t, "opensnoop.bpf.o")
	sig := signedEnvelope(t, vendor, obj)
	dir, err := os.MkdirTemp("", "tbd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	file := filepath.Join(dir, "opened")
	os.WriteFile(file, nil, 0o644)
	opens := func(*testing.T) {
		for i := 0; i < 4; i++ {
			f, err := os.Open(file)
			if err != nil {
				t.Error(err)
				return
			}
			f.Close()
		}
	}
	const scopes = "trace probe:tracepoint:syscalls:sys_enter_openat"

	t.Run("signed, in scope", func(t *testing.T) {
		tok := d.token(t, token.IssueOptions{Scope: scopes + " read:user"})
		r := d.start(t, tok, &pb.TraceRequest{Name: "opensnoop.bpf.o", Object: obj, ObjectSignature: sig, Format: "json"})
		d.attached(t, 1, r)
		opens(t)
		close(r.interrupt)
		r.wait(t)
		if r.err != nil {
			t.Fatalf("trace: %v, %+v\n%s", r.err, r.res, r.stderr.String())
		}
		n := 0
		for _, line := range strings.Split(r.stdout.String(), "\n") {
			var rec struct {
				Type string
				Data struct {
					Value map[string]any
				}
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Type == "record" && rec.Data.Value["filename"] == file {
				n++
			}
		}
		if n != 4 {
			t.Errorf("%d records of the opens, want 4:\n%s", n, r.stdout.String())
		}
		var admitted map[string]any
		for _, a := range auditRecords(t, d.auditLog) {
			if a.Event == "trace.admitted" {
				admitted = a.Data
			}
		}
		if admitted["form"] != "bytecode" || admitted["covers"] != "program" || admitted["program_signer"] != vendor.ID {
			t.Errorf("admitted record %v: want form bytecode, covers program, program_signer %s", admitted, vendor.ID)
		}
	})

	for _, tc := range []struct {
		name, scopes string
		object, sig  []byte
		want         string
	}{
		// A helper that reads user memory at an address the program
		// chose is read:user, whatever the program is.
		{"reads beyond the token's scopes", scopes, obj, sig, "read:user"},
		{"a probe outside the token's scopes", "trace probe:tracepoint:sched:* read:user", obj, sig, "does not allow probe tracepoint:syscalls:sys_enter_openat"},
		{"a signature for other bytes", scopes + " read:user", obj, signedEnvelope(t, vendor, append([]byte(nil), append(obj, 0)...)), "digest mismatch"},
		{"a signature that is not one", scopes + " read:user", obj, []byte("{}"), "malformed"},
		// The uprobe's file is opened through the token's scope, and
		// refused without a word about what the path leads to.
		{"a uprobe on a file outside the scopes", "trace probe:uprobe:/usr/bin/*:* probe:rawtracepoint:* read:user", readObjectFixture(t, "libccount.bpf.o"), nil, "/lib/x86_64-linux-gnu/libc.so.6"},
		{"not an object", scopes, []byte("\x7fELF but not really"), nil, "unknown ELF class"},
		// Over a gigabyte of map: refused before anything is created.
		{"maps too large", scopes, readObjectFixture(t, "hugemap.bpf.o"), nil, "would take more than 64 MiB of kernel memory (huge alone: 1207959552 bytes)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := d.token(t, token.IssueOptions{Scope: tc.scopes})
			r := d.start(t, tok, &pb.TraceRequest{Name: "x.bpf.o", Object: tc.object, ObjectSignature: tc.sig})
			r.wait(t)
			// A refusal is the call's error; a failure to run, the
			// trace's exit status and its message on stderr.
			if r.err == nil || !strings.Contains(r.err.Error()+r.stderr.String(), tc.want) {
				t.Errorf("trace = %v (%s), want a refusal with %q", r.err, r.stderr.String(), tc.want)
			}
			if strings.Contains(r.stdout.String(), "Attaching") {
				t.Errorf("something was attached: %s", r.stdout.String())
			}
		})
	}

	t.Run("signed by a stranger, strict", func(t *testing.T) {
		ds := startDaemon(t, daemonOpts{def: "strict", configure: func(_ *testDaemon, c *Config) { c.Trust = attest.NewTrust(vendor.Public()) }})
		tok := ds.token(t, token.IssueOptions{Scope: scopes + " read:user"})
		r := ds.start(t, tok, &pb.TraceRequest{Name: "x.bpf.o", Object: obj, ObjectSignature: signedEnvelope(t, stranger, obj)})
		r.wait(t)
		if r.err == nil || !strings.Contains(r.err.Error(), "the gatekeeper denied") || !strings.Contains(r.err.Error(), "untrusted key") {
			t.Errorf("trace = %v, want the strict default's denial naming the untrusted key", r.err)
		}
	})

	t.Run("global variables set", func(t *testing.T) {
		tok := d.token(t, token.IssueOptions{Scope: scopes + " read:user"})
		r := d.start(t, tok, &pb.TraceRequest{Name: "opencount.bpf.o", Object: readObjectFixture(t, "opencount.bpf.o"),
			Params: map[string]string{"weight": "7"}, Format: "json"})
		d.attached(t, 1, r)
		opens(t)
		close(r.interrupt)
		r.wait(t)
		if r.err != nil {
			t.Fatalf("trace: %v\n%s", r.err, r.stderr.String())
		}
		want := fmt.Sprintf(`{"key": {"tgid": %d, "filename": %q}, "value": 28}`, os.Getpid(), file)
		if !strings.Contains(r.stdout.String(), want) {
			t.Errorf("output lacks %s:\n%s", want, r.stdout.String())
		}
		r = d.start(t, tok, &pb.TraceRequest{Name: "opencount.bpf.o", Object: readObjectFixture(t, "opencount.bpf.o"), Params: map[string]string{"nosuch": "1"}})
		r.wait(t)
		if r.err == nil || !strings.Contains(r.stderr.String(), `no global variable "nosuch" to set`) {
			t.Errorf("an unknown variable: %v\n%s", r.err, r.stderr.String())
		}
	})

	t.Run("an object goes alone", func(t *testing.T) {
		tok := d.token(t, token.IssueOptions{Scope: scopes})
		r := d.start(t, tok, &pb.TraceRequest{Name: "x.bpf.o", Object: obj, Source: []byte("BEGIN {}")})
		r.wait(t)
		if r.err == nil || !strings.Contains(r.err.Error(), "an eBPF object goes alone") {
			t.Errorf("trace = %v", r.err)
		}
	})
}

func testKey(t *testing.T) *attest.PrivateKey {
	t.Helper()
	k, err := attest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestObjectMapBytes: what each kind of map counts against a token
// holder's budget.
func TestObjectMapBytes(t *testing.T) {
	for _, tc := range []struct {
		m    ebpf.MapSpec
		want uint64
	}{
		{ebpf.MapSpec{Type: ebpf.Hash, KeySize: 8, ValueSize: 64, MaxEntries: 1 << 24}, 72 << 24},
		{ebpf.MapSpec{Type: ebpf.PerCPUHash, KeySize: 4, ValueSize: 12, MaxEntries: 100}, 100 * (4 + 4*16)},
		{ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: 1 << 20}, 1 << 20},
		{ebpf.MapSpec{Type: ebpf.PerfEventArray}, 4 * bpf.PerfBufferSize},
	} {
		if got := mapBytes(&tc.m, 4); got != tc.want {
			t.Errorf("%v: %d bytes, want %d", tc.m.Type, got, tc.want)
		}
	}
}
