package broker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/bpf/object"
	"github.com/tracebroker/tracebroker/bpf/uprobe"
	"github.com/tracebroker/tracebroker/broker/output"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/gatekeeper"
	"github.com/tracebroker/tracebroker/gatekeeper/abi"
	"github.com/tracebroker/tracebroker/internal/regfile"
)

// Object is a precompiled eBPF object to run instead of a script: the
// bytes that were verified, and what their signature covers.
type Object struct {
	// Name is what the object is called in messages, decisions and
	// attestations: its path.
	Name string
	// Data is the ELF object, read once: what was verified is what is
	// parsed and loaded.
	Data []byte
	// Digest is Data's hex SHA-256.
	Digest string
	// Covers is what the signature that verified covers (abi.Covers*),
	// 0 when nothing verified; Signature is that signature's identity
	// (Verified, Signer), or the refusal (Reason) of an unsigned object.
	Covers    uint8
	Signature attest.Identity
	// Note says why an object is unsigned (Covers 0), for -v and for a
	// denial.
	Note string
	// Vars set the object's global variables before it is loaded
	// (object.SetVariables): its parameters, as libbpf-tools' user
	// space sets its `const volatile` ones. The attestation records
	// them.
	Vars map[string]string
}

// unsignedReasons are the verification refusals that leave an object
// merely unsigned: no signature, or one by a key this host does not
// trust. Every other refusal (a digest that does not match, a bad
// signature, a malformed or unreadable envelope) says the object or its
// signature was tampered with, and refuses it whatever the policy.
var unsignedReasons = map[string]bool{string(attest.ReasonUnsigned): true, string(attest.ReasonUntrustedKey): true}

// OpenObject reads a program-only object and what signs it: its own
// signature (sigPath, "" for path.sig) for role program, or, when it has
// none, the index of the repository it is in (attest.FindRepository).
// An unsigned object, or one signed by an untrusted key, opens with
// Covers 0 for the gatekeeper to judge (Note says why); a signature
// that fails any other way is an error, as is a file that is not an ELF
// object.
func OpenObject(path, sigPath string, trust *attest.Trust) (*Object, error) {
	if sigPath == "" {
		if _, err := os.Lstat(path + attest.SigSuffix); errors.Is(err, fs.ErrNotExist) {
			if dir := attest.FindRepository(path); dir != "" {
				return openRepositoryObject(dir, path, trust)
			}
		}
	}
	data, id, err := attest.ReadSigned(path, sigPath, object.MaxSize, trust, attest.RoleProgram)
	if data == nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return signedObject(path, data, id, err)
}

// signedObject is an object as its own signature (id, and err the
// verification's refusal) makes it: covers program when the signature
// verified; unsigned, saying why, when there was none or its key is not
// trusted; refused for any other failure.
func signedObject(name string, data []byte, id attest.Identity, err error) (*Object, error) {
	o := &Object{Name: name, Data: data, Digest: id.Digest, Signature: id}
	switch {
	case err == nil:
		o.Covers = abi.CoversProgram
	case unsignedReasons[id.Reason]:
		o.Note = "its signature: " + err.Error()
	default:
		return nil, fmt.Errorf("%s: the signature does not verify: %w", name, err)
	}
	return o, o.checkELF()
}

// ObjectFromBytes is OpenObject for an object and its signature sent
// rather than read (the daemon's clients send them): sig is the
// envelope of OBJECT.sig, nil when the object came without one.
func ObjectFromBytes(name string, data, sig []byte, trust *attest.Trust) (*Object, error) {
	if len(data) > object.MaxSize {
		return nil, fmt.Errorf("%s: %d bytes, at most %d", name, len(data), object.MaxSize)
	}
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	if len(sig) == 0 {
		o := &Object{Name: name, Data: data, Digest: digest, Note: "it was sent without a signature",
			Signature: attest.Identity{Path: name, Digest: digest, Reason: string(attest.ReasonUnsigned)}}
		return o, o.checkELF()
	}
	id, err := attest.VerifyManifest(sig, digest, trust, attest.RoleProgram)
	id.Path = name
	return signedObject(name, data, id, err)
}

// ReadObjectFiles reads an object and its signature (sigPath, "" for
// path.sig; none there is no signature) to send them to a daemon, the
// object at most limit bytes. The daemon verifies them, not the sender.
func ReadObjectFiles(path, sigPath string, limit int64) (data, sig []byte, err error) {
	if data, err = regfile.ReadFile(path, limit); err != nil {
		return nil, nil, err
	}
	explicit := sigPath != ""
	if !explicit {
		sigPath = path + attest.SigSuffix
	}
	sig, err = regfile.ReadFile(sigPath, attest.MaxEnvelopeSize)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return data, nil, nil
	}
	return data, sig, err
}

func (o *Object) checkELF() error {
	if !object.IsELF(o.Data) {
		return fmt.Errorf("%s: not an ELF object", o.Name)
	}
	return nil
}

// openRepositoryObject reads an object from the repository in dir,
// checked against its index as it is read.
func openRepositoryObject(dir, path string, trust *attest.Trust) (*Object, error) {
	repo, err := attest.OpenRepository(dir, trust)
	if repo == nil {
		return nil, fmt.Errorf("%s: the index of the repository %s does not verify: %w", path, dir, err)
	}
	// The object read as any unsigned one, and why: its Signature is
	// the repository's refusal (sig), or else its own absent one.
	unsigned := func(sig *attest.Identity, why string) (*Object, error) {
		data, id, rerr := attest.ReadSigned(path, "", object.MaxSize, trust, attest.RoleProgram)
		if data == nil {
			return nil, fmt.Errorf("%s: %w", path, rerr)
		}
		o := &Object{Name: path, Data: data, Digest: id.Digest, Signature: id, Note: "it has no signature of its own, and the index of its repository " + dir + why}
		if sig != nil {
			o.Signature = *sig
			o.Signature.Verified = false
		}
		return o, o.checkELF()
	}
	if err != nil {
		// Unsigned or untrusted: the repository vouches for nothing.
		return unsigned(&repo.Identity, ": "+err.Error())
	}
	data, m, err := repo.Read(path, object.MaxSize)
	switch {
	case errors.Is(err, attest.ErrNotIndexed):
		return unsigned(nil, " does not name it")
	case err != nil:
		return nil, fmt.Errorf("%s: the repository %s refuses it: %w", path, dir, err)
	}
	o := &Object{Name: path, Data: data, Digest: m.Digest, Covers: abi.CoversRepository, Signature: repo.Identity}
	return o, o.checkELF()
}

// OpenPackageObject reads the package at pkgPath (a tar file or a
// directory) and its signature (sigPath, "" for its own), and the
// member to run: member, or the package's only eBPF object. A package
// any member of which does not match its signature is refused whole;
// unsigned or signed by an untrusted key, its member opens with Covers 0.
func OpenPackageObject(pkgPath, sigPath, member string, trust *attest.Trust) (*Object, error) {
	pkg, err := attest.OpenPackage(pkgPath, sigPath, trust)
	if pkg == nil {
		return nil, fmt.Errorf("%s: %w", pkgPath, err)
	}
	if err != nil && !unsignedReasons[pkg.Identity.Reason] {
		return nil, fmt.Errorf("%s: the package does not verify: %w", pkgPath, err)
	}
	var objs []string
	for _, m := range pkg.Members {
		if object.IsELF(m.Data) {
			objs = append(objs, m.Name)
		}
	}
	if member == "" {
		if len(objs) != 1 {
			return nil, fmt.Errorf("%s: the package has %d eBPF objects (%s): name the one to run", pkgPath, len(objs), strings.Join(objs, ", "))
		}
		member = objs[0]
	}
	m, ok := pkg.Member(member)
	if !ok {
		return nil, fmt.Errorf("%s: no member %s (eBPF objects: %s)", pkgPath, member, strings.Join(objs, ", "))
	}
	o := &Object{Name: pkgPath + ":" + m.Name, Data: m.Data, Digest: m.Digest, Signature: pkg.Identity}
	if pkg.Identity.Verified {
		o.Covers = abi.CoversPackage
	} else {
		o.Note = "its package's signature: " + err.Error()
	}
	return o, o.checkELF()
}

// describe says what signs the object, for -v.
func (o *Object) describe() string {
	switch o.Covers {
	case abi.CoversProgram:
		return "its own signature, by " + o.Signature.Signer
	case abi.CoversPackage:
		return fmt.Sprintf("the signature of its package %s, by %s", o.Signature.Name, o.Signature.Signer)
	case abi.CoversRepository:
		return fmt.Sprintf("the index of its repository %s, by %s", o.Signature.Name, o.Signature.Signer)
	}
	return "unsigned: " + o.Note
}

// signedFacts are the Request fields that say what an object's
// signature covers and who signed it.
func (o *Object) signedFacts(r *gatekeeper.Request) {
	r.Form = abi.FormBytecode
	r.Covers = o.Covers
	r.ProgramSigned = o.Covers != 0 && o.Signature.Verified
	r.ProgramSigner = ""
	if r.ProgramSigned {
		r.ProgramSigner = o.Signature.Signer
	}
	// Nothing generated it here: the generator fields are empty, the
	// broker's stay (it is what loads the object).
	r.Generator, r.GeneratorDigest, r.GeneratorSigner, r.GeneratorVerified = ObjectGenerator, "", "", false
	r.Artifact = o.Name
}

// ObjectGenerator is the generator name of a program-only object's
// programs, in Requests and attestations: nothing generated them here.
const ObjectGenerator = "object"

// resolveObjectUprobes opens each uprobe's file once, through scope when
// there is one (a token holder's: a file it may not probe is refused
// without a word about it), and turns its function into the file offset,
// as libbpf does for uprobe/PATH:FUNC sections. The probe attaches to the
// file opened here, whatever has its name by then.
func resolveObjectUprobes(prog *program.Program, scope *uprobe.Scope) error {
	opened := map[string]*uprobe.Target{}
	for _, p := range prog.Probes {
		if p.Kind != program.Uprobe && p.Kind != program.Uretprobe {
			continue
		}
		t, ok := opened[p.Path]
		if !ok {
			var err error
			if t, err = uprobe.OpenTarget(p.Path, scope); err != nil {
				return fmt.Errorf("%s: %w", p.Name, err)
			}
			opened[p.Path] = t
		}
		p.Binary = t
		fn := p.Event
		if p.Offset != 0 {
			fn += "+" + strconv.FormatUint(p.Offset, 10)
		}
		off, err := t.FuncOffset(fn)
		if err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
		// Named by the file as opened: under a scope, its real path,
		// which is what the scope judges.
		p.Offset, p.Path = off, t.Path()
		p.Name = p.Kind.String() + ":" + t.Path() + ":" + fn
	}
	return nil
}

// runObject is Run for a program-only object: parsed, judged by the
// gatekeeper as any program is, attested, loaded and attached as the
// object declares; its records are printed as they come and its maps at
// the end, decoded by their BTF types.
func runObject(ctx context.Context, req *Request) error {
	o := req.Object
	prog, err := object.Parse(o.Name, o.Data)
	if err != nil {
		return err
	}
	defer prog.Close()
	if err := object.SetVariables(prog.Object, o.Vars); err != nil {
		return fmt.Errorf("%s: %w", o.Name, err)
	}
	if err := resolveObjectUprobes(prog, req.UprobeScope); err != nil {
		return err
	}
	if req.Authorize != nil {
		if err := req.Authorize(prog); err != nil {
			return err
		}
	}
	if req.Verbose {
		fmt.Fprintf(req.Stderr, "Object %s (sha256:%s): %s\n", o.Name, o.Digest, o.describe())
		for _, name := range slices.Sorted(maps.Keys(o.Vars)) {
			fmt.Fprintf(req.Stderr, "Set %s = %q\n", name, o.Vars[name])
		}
	}
	adm, err := judge(ctx, req, prog, func(mode string) error {
		if mode == gatekeeper.ModeJIT {
			return nil
		}
		// Refused before anything is attested or loaded.
		return objectInterpCapable(prog)
	})
	var de *DeniedError
	if errors.As(err, &de) && o.Note != "" {
		return fmt.Errorf("%w (%s: %s)", err, o.Name, o.Note)
	}
	if err != nil {
		return err
	}
	mode := adm.Mode
	t0 := time.Now()
	var sess objectExecutor
	if mode == gatekeeper.ModeJIT {
		js, err := bpf.LoadObject(prog, bpf.Options{PID: req.PID})
		if err != nil {
			return err
		}
		if req.Verbose {
			for i, p := range js.Programs() {
				info, _ := p.Info()
				id, _ := info.ID()
				fmt.Fprintf(req.Stderr, "Program %s (%s): %d instructions, id %d\n", prog.Probes[i].Name, prog.Object.Progs[i], len(prog.Probes[i].Insns), id)
			}
		}
		sess = js
	} else {
		is, err := openObjectInterp(prog, req)
		if err != nil {
			return err
		}
		sess = is
	}
	defer sess.Close()
	reportLoaded(req, len(prog.Probes), len(prog.Object.Spec.Maps), t0, mode)
	err = executeObject(ctx, req, prog, sess, adm)
	if is, ok := sess.(*objectInterp); ok {
		for _, w := range is.warnings() {
			fmt.Fprintln(req.Stderr, w)
		}
	}
	return err
}

// executeObject runs a loaded object to its end: attach, print records
// until a signal, -d, -c's or -p's process ends it, then detach, print
// what is left and the maps.
func executeObject(ctx context.Context, req *Request, prog *program.Program, sess objectExecutor, adm *Admission) (err error) {
	var kid *child
	if req.Command != "" {
		if kid, err = startChild(req.Command); err != nil {
			return err
		}
		defer kid.kill()
	}
	obj := prog.Object
	p := output.NewObjectPrinter(req.Stdout, req.Format == "json", len(obj.Records))
	if !req.Quiet {
		p.AttachedProbes(len(prog.Probes))
	}
	if err := sess.Attach(ctx); err != nil {
		return err
	}
	if kid != nil {
		if err := kid.start(); err != nil {
			return fmt.Errorf("start child: %w", err)
		}
	}
	if req.Attached != nil {
		req.Attached(adm)
	}
	stop := make(chan struct{})
	type result struct {
		lost uint64
		err  error
	}
	done := make(chan result, 1)
	go func() {
		lost, err := sess.ReadRecords(stop, func(r bpf.Record) { p.Record(r.Map, obj.Records[r.Map], r.Data) })
		done <- result{lost, err}
	}()
	var timeout <-chan time.Time
	if req.Duration > 0 {
		t := time.NewTimer(req.Duration)
		defer t.Stop()
		timeout = t.C
	}
	var kidDone <-chan struct{}
	if kid != nil {
		kidDone = kid.done
	}
	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	pidGone := watchPID(watchCtx, req.PID)
	// The readers return before stop only when one fails.
	var res result
	read := false
	select {
	case <-ctx.Done():
	case <-timeout:
	case <-kidDone:
	case <-pidGone:
	case res = <-done:
		read = true
	}
	// The probes go first, so what is printed next is final.
	sess.Detach()
	if req.Stopping != nil {
		req.Stopping()
	}
	close(stop)
	if !read {
		res = <-done
	}
	if res.lost > 0 {
		p.Lost(res.lost)
	}
	if res.err != nil {
		return res.err
	}
	// The maps, as bpftrace prints its maps when the trace ends.
	for _, name := range obj.Printed {
		entries, err := sess.Dump(name)
		if err != nil {
			return err
		}
		spec := obj.Spec.Maps[name]
		p.Map(name, spec.Key, spec.Value, entries)
	}
	if err := p.Err(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}
