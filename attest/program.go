package attest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/cilium/ebpf/asm"
)

// ProgramPredicate is the predicate of a source-of-program attestation:
// what a generated program is, what it was generated from and by whom,
// who asked for it, and what the gatekeeper decided.
type ProgramPredicate struct {
	Program   ProgramInfo `json:"program"`
	Source    Source      `json:"source"`
	Generator Generator   `json:"generator"`
	Broker    Identity    `json:"broker"`
	Requester Requester   `json:"requester"`
	Decision  Decision    `json:"decision"`
	Time      time.Time   `json:"time"`
}

// ProgramInfo describes the program itself. Code is its canonical form
// (see CanonicalCode) in hex, so the attestation alone says exactly what
// ran: an auditor can disassemble it offline.
type ProgramInfo struct {
	Name  string    `json:"name"` // the attach point, e.g. tracepoint:syscalls:sys_enter_openat
	Insns int       `json:"insns"`
	Code  string    `json:"code"`
	Maps  []MapInfo `json:"maps,omitempty"`
	// Attach, for a probe on many functions (a kprobe.multi probe, whose
	// Name is a pattern), names each attach point as its own probe
	// would be named (kprobe:vfs_read, ...).
	Attach []string `json:"attach,omitempty"`
}

// MapInfo is a map the program uses, as created.
type MapInfo struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	KeySize    uint32 `json:"key_size"`
	ValueSize  uint32 `json:"value_size"`
	MaxEntries uint32 `json:"max_entries"`
}

// Source is what a program was generated from: a script (Text and its
// Digest) or a generator plugin's parameters.
type Source struct {
	Kind string `json:"kind"` // "script" or "plugin"
	Name string `json:"name,omitempty"`
	// Text is the script, when the attestation carries it. A store
	// keeps it once beside the attestations of a trace instead, at
	// TextRef (sources/sha256-DIGEST, relative to the attestation's
	// directory): Digest, which the signature covers, says what it is.
	Text    string            `json:"text,omitempty"`
	TextRef string            `json:"text_ref,omitempty"`
	Digest  string            `json:"digest"` // hex SHA-256 of the text, or of the canonical JSON of Params
	Params  map[string]string `json:"params,omitempty"`
	// Args are a script's positional parameters ($1, $2, ...): the same
	// text compiles to another program with others (`uprobe:$1:f`,
	// `/pid == $1/`), so they are part of what the program came from.
	Args []string `json:"args,omitempty"`
}

// Generator is what produced the program: the broker's built-in script
// compiler or a plugin, with its measured identity.
type Generator struct {
	Name     string   `json:"name"`
	Version  string   `json:"version,omitempty"`
	Identity Identity `json:"identity"`
}

// Requester is who asked: the local user, and the token when the request
// came with one.
type Requester struct {
	UID          int    `json:"uid"`
	TokenSubject string `json:"token_subject,omitempty"`
	TokenID      string `json:"token_jti,omitempty"`
	TokenScope   string `json:"token_scope,omitempty"`
}

// Decision is the gatekeeper's verdict on the program: empty until a
// gatekeeper runs.
type Decision struct {
	Verdict      string `json:"verdict,omitempty"`
	Mode         string `json:"mode,omitempty"`
	PolicyDigest string `json:"policy_digest,omitempty"`
	Reason       string `json:"reason,omitempty"`
	// KernelGate is the kernel gate's state when the program was
	// admitted (gatekeeper/lsmgate): enforcing, with its default and
	// digest, or absent and why.
	KernelGate string `json:"kernel_gate,omitempty"`
}

// CanonicalCode is the canonical form of a program, the bytes its
// attestation's subject digest covers: the instructions as the kernel
// receives them (8-byte little-endian slots), with the imm field of each
// map load's first slot set to zero. That field holds a map's file
// descriptor (or index), which differs on every load and every host; the
// rest, including a direct value load's offset in the second slot, is
// the program. Which maps a program uses is recorded beside it
// (ProgramInfo.Maps).
func CanonicalCode(insns asm.Instructions) ([]byte, error) {
	insns = append(asm.Instructions(nil), insns...) // Marshal rewrites map loads
	for i := range insns {
		if insns[i].IsLoadFromMap() {
			if err := insns[i].AssociateMap(zeroFD{}); err != nil {
				return nil, err
			}
		}
	}
	var b bytes.Buffer
	if err := insns.Marshal(&b, binary.LittleEndian); err != nil {
		return nil, fmt.Errorf("attest: encoding the program: %w", err)
	}
	return Canonicalize(b.Bytes())
}

type zeroFD struct{}

func (zeroFD) FD() int { return 0 }

// Canonicalize turns raw bytecode into its canonical form (see
// CanonicalCode).
func Canonicalize(code []byte) ([]byte, error) {
	if len(code) == 0 || len(code)%8 != 0 {
		return nil, fmt.Errorf("attest: program is %d bytes, not a whole number of 8-byte instructions", len(code))
	}
	out := bytes.Clone(code)
	for i := 0; i+8 <= len(out); i += 8 {
		if out[i] != 0x18 { // BPF_LD | BPF_IMM | BPF_DW
			continue
		}
		switch out[i+1] >> 4 {
		case 1, 2, 5, 6: // map fd, map value, map index, map index value
			clear(out[i+4 : i+8])
		}
		i += 8 // the second slot is data, never an opcode
	}
	return out, nil
}

// ProgramDigest is the hex SHA-256 of code's canonical form.
func ProgramDigest(code []byte) (string, error) {
	c, err := Canonicalize(code)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(c)
	return hex.EncodeToString(sum[:]), nil
}

// SourceDigest is the digest Source.Digest holds for a script.
func SourceDigest(text []byte) string {
	sum := sha256.Sum256(text)
	return hex.EncodeToString(sum[:])
}

// SourceRef is where a store keeps the source of a digest, relative to
// the directory of its attestations: Source.TextRef.
func SourceRef(digest string) string { return "sources/sha256-" + digest }

// VerifySource checks that text is the source p was generated from.
func VerifySource(p *ProgramPredicate, text []byte) error {
	if d := SourceDigest(text); d != p.Source.Digest {
		return refuse(ReasonDigestMismatch, "the source given hashes to %s, the attestation's is %s", d, p.Source.Digest)
	}
	return nil
}

// AttestProgram signs the attestation of one program: subject is the
// program (name, canonical digest), the predicate p with p.Program.Code
// and Insns filled from insns. It returns the envelope and the digest.
func AttestProgram(insns asm.Instructions, p ProgramPredicate, key *PrivateKey) ([]byte, string, error) {
	code, err := CanonicalCode(insns)
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(code)
	digest := hex.EncodeToString(sum[:])
	p.Program.Code = hex.EncodeToString(code)
	p.Program.Insns = len(code) / 8
	if p.Time.IsZero() {
		p.Time = time.Now().UTC().Truncate(time.Second)
	}
	env, err := Sign([]Subject{{Name: p.Program.Name, Digest: digest}}, ProgramPredicateType, p, key)
	if err != nil {
		return nil, "", err
	}
	return env, digest, nil
}

// VerifyProgram checks a program attestation offline: signed by a key in
// trust, of the source-of-program type, with a subject digest matching
// the code it carries and, when code is given (raw bytecode, canonical or
// not), matching that code too.
func VerifyProgram(envelope []byte, trust *Trust, code []byte) (*ProgramPredicate, string, error) {
	var p ProgramPredicate
	subjects, signer, err := Verify(envelope, trust, ProgramPredicateType, &p)
	if err != nil {
		return nil, "", err
	}
	if len(subjects) != 1 {
		return nil, "", refuse(ReasonMalformed, "a program attestation has one subject, this has %d", len(subjects))
	}
	carried, err := hex.DecodeString(p.Program.Code)
	if err != nil {
		return nil, "", refuse(ReasonMalformed, "program code is not hex: %v", err)
	}
	d, err := ProgramDigest(carried)
	if err != nil {
		return nil, "", refuse(ReasonMalformed, "program code: %v", err)
	}
	if d != subjects[0].Digest {
		return nil, "", refuse(ReasonDigestMismatch, "the code carried hashes to %s, the subject is %s", d, subjects[0].Digest)
	}
	// The source, when carried, is the one signed for; a kept one is
	// named by its digest and nothing else.
	if p.Source.Text != "" {
		if err := VerifySource(&p, []byte(p.Source.Text)); err != nil {
			return nil, "", err
		}
	}
	if p.Source.TextRef != "" && p.Source.TextRef != SourceRef(p.Source.Digest) {
		return nil, "", refuse(ReasonMalformed, "the source is kept at %q, not where its digest says (%s)", p.Source.TextRef, SourceRef(p.Source.Digest))
	}
	if code != nil {
		d, err := ProgramDigest(code)
		if err != nil {
			return nil, "", refuse(ReasonMalformed, "%v", err)
		}
		if d != subjects[0].Digest {
			return nil, "", refuse(ReasonDigestMismatch, "the program given hashes to %s, the attestation is for %s", d, subjects[0].Digest)
		}
	}
	return &p, signer, nil
}
