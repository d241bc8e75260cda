package attest

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"
)

// countProgram loads map "counts" and bumps key 0: a program with a map
// load whose fd the canonical form must not depend on.
func countProgram() asm.Instructions {
	return asm.Instructions{
		asm.StoreImm(asm.R10, -4, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference("counts"),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.Mov.Imm(asm.R1, 1),
		asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
		asm.Return(),
	}
}

type fd int

func (f fd) FD() int { return int(f) }

// rawWithFD marshals the program as it is loaded with the map at fd n.
func rawWithFD(t *testing.T, insns asm.Instructions, n int) []byte {
	t.Helper()
	insns = append(asm.Instructions(nil), insns...)
	for i := range insns {
		if insns[i].IsLoadFromMap() {
			insns[i].AssociateMap(fd(n))
		}
	}
	var b bytes.Buffer
	if err := insns.Marshal(&b, binary.LittleEndian); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestCanonicalForm: the digest ignores map file descriptors and nothing
// else.
func TestCanonicalForm(t *testing.T) {
	insns := countProgram()
	canon, err := CanonicalCode(insns)
	if err != nil {
		t.Fatal(err)
	}
	d3, _ := ProgramDigest(rawWithFD(t, insns, 3))
	d77, _ := ProgramDigest(rawWithFD(t, insns, 77))
	dc, _ := ProgramDigest(canon)
	if d3 != d77 || d3 != dc {
		t.Fatalf("digests differ with the map fd: %s %s %s", d3, d77, dc)
	}
	// The map load's imm is zero in the canonical form, and only there.
	raw := rawWithFD(t, insns, 3)
	if diff := byteDiffs(raw, canon); len(diff) != 1 || diff[0] != 1*8+4 {
		t.Fatalf("canonical form differs from the fd-3 program at bytes %v, want [12]", diff)
	}
	changed := append(asm.Instructions(nil), insns...)
	changed[6] = asm.Mov.Imm(asm.R1, 2)
	d2, _ := CanonicalCode(changed)
	if bytes.Equal(d2, canon) {
		t.Fatal("a different program has the same canonical form")
	}
	if _, err := Canonicalize([]byte{1, 2, 3}); err == nil {
		t.Fatal("3 bytes canonicalised")
	}
}

func byteDiffs(a, b []byte) []int {
	var out []int
	for i := range a {
		if a[i] != b[i] {
			out = append(out, i)
		}
	}
	return out
}

// TestProgramAttestation: signed, verified offline with the host key,
// bound to the program it carries and to the program given; tampering or
// another key is refused with the reason.
func TestProgramAttestation(t *testing.T) {
	host, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := GenerateKey()
	trust := NewTrust(host.Public())
	src := []byte("tracepoint:syscalls:sys_enter_openat { @[comm] = count(); }")
	p := ProgramPredicate{
		Program:   ProgramInfo{Name: "tracepoint:syscalls:sys_enter_openat", Maps: []MapInfo{{Name: "counts", Type: "Array", KeySize: 4, ValueSize: 8, MaxEntries: 1}}},
		Source:    Source{Kind: "script", Name: "stdin", Text: string(src), Digest: SourceDigest(src)},
		Generator: Generator{Name: "tracebroker-script", Version: "test"},
		Broker:    Identity{Path: "/usr/bin/tracebroker", Digest: strings.Repeat("ab", 32), Reason: "unsigned"},
		Requester: Requester{UID: 1000, TokenSubject: "alice", TokenID: "j1"},
	}
	env, digest, err := AttestProgram(countProgram(), p, host)
	if err != nil {
		t.Fatal(err)
	}
	got, signer, err := VerifyProgram(env, trust, rawWithFD(t, countProgram(), 9))
	if err != nil {
		t.Fatal(err)
	}
	if signer != host.ID || got.Requester != p.Requester || !reflect.DeepEqual(got.Source, p.Source) || got.Program.Insns != 11 || got.Time.IsZero() {
		t.Fatalf("verified predicate %+v signer %s", got, signer)
	}
	if d, _ := ProgramDigest(mustHex(t, got.Program.Code)); d != digest {
		t.Fatalf("carried code digest %s, subject %s", d, digest)
	}

	other2 := append(asm.Instructions(nil), countProgram()...)
	other2[6] = asm.Mov.Imm(asm.R1, 2)
	if _, _, err := VerifyProgram(env, trust, rawWithFD(t, other2, 9)); reasonOf(err) != ReasonDigestMismatch {
		t.Fatalf("another program: %v", err)
	}
	if _, _, err := VerifyProgram(env, NewTrust(other.Public()), nil); reasonOf(err) != ReasonUntrustedKey {
		t.Fatalf("another key: %v", err)
	}
	forged, _, _ := AttestProgram(countProgram(), p, other)
	if _, _, err := VerifyProgram(forged, trust, nil); reasonOf(err) != ReasonUntrustedKey {
		t.Fatalf("signed by another key: %v", err)
	}
	// An artifact manifest is not a program attestation.
	manifest, err := Sign([]Subject{{Name: "x", Digest: digest}}, ArtifactPredicateType, ArtifactPredicate{Role: RolePolicy, Name: "x"}, host)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := VerifyProgram(manifest, trust, nil); reasonOf(err) != ReasonWrongType {
		t.Fatalf("a manifest as an attestation: %v", err)
	}
	// A statement whose subject does not match the code it carries.
	p.Program.Name = "swapped"
	swapped, err := Sign([]Subject{{Name: "swapped", Digest: strings.Repeat("00", 32)}}, ProgramPredicateType, ProgramPredicate{Program: ProgramInfo{Name: "x", Code: got.Program.Code}}, host)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := VerifyProgram(swapped, trust, nil); reasonOf(err) != ReasonDigestMismatch {
		t.Fatalf("subject and code disagree: %v", err)
	}
}

func reasonOf(err error) Reason {
	var ve *VerifyError
	if errors.As(err, &ve) {
		return ve.Reason
	}
	return Reason("not a VerifyError: " + errString(err))
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWriteNew: an attestation file is written whole and never replaced.
func TestWriteNew(t *testing.T) {
	path := t.TempDir() + "/a.dsse.json"
	if err := WriteNew(path, []byte("first\n")); err != nil {
		t.Fatal(err)
	}
	if err := WriteNew(path, []byte("second\n")); err == nil {
		t.Fatal("an existing attestation was overwritten")
	}
	if b, _ := os.ReadFile(path); string(b) != "first\n" {
		t.Fatalf("file holds %q", b)
	}
	if left, _ := filepath.Glob(filepath.Dir(path) + "/.*"); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}
