package lsmgate

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// Status is what an enforcing gate says about itself.
type Status struct {
	// Enforcing: the gate's pins exist. When its maps cannot be read,
	// Info is nil and Err says why.
	Enforcing bool
	Info      *Info
	// Counts are the refusals since the gate was enforced, by reason.
	Counts map[uint32]uint64
	// Hooks are the hooks whose links are pinned, and Missing those
	// that are not (a gate that lost a link enforces less).
	Hooks, Missing []string
	Err            error
}

// ReadStatus reads the gate pinned in pinDir ("" is DefaultPinDir):
// anyone may, through read-only descriptors.
func ReadStatus(pinDir string) (*Status, error) {
	if pinDir == "" {
		pinDir = DefaultPinDir
	}
	if _, err := os.Stat(pinDir); errors.Is(err, fs.ErrNotExist) {
		return &Status{}, nil
	} else if err != nil {
		return nil, err
	}
	st := &Status{Enforcing: true}
	for _, h := range hooks {
		if _, err := os.Stat(filepath.Join(pinDir, linkPin(h.hook))); err == nil {
			st.Hooks = append(st.Hooks, "lsm/"+h.hook)
		} else {
			st.Missing = append(st.Missing, "lsm/"+h.hook)
		}
	}
	info, err := openPinned(pinDir, mapInfo, false)
	if err != nil {
		st.Err = err
		return st, nil
	}
	defer info.Close()
	var v []byte
	if err := info.Lookup(uint32(0), &v); err != nil {
		st.Err = fmt.Errorf("gate info: %w", err)
		return st, nil
	}
	n := binary.LittleEndian.Uint32(v)
	if int(n) > len(v)-4 {
		st.Err = fmt.Errorf("gate info: length %d of %d bytes", n, len(v))
		return st, nil
	}
	st.Info = &Info{}
	if err := json.Unmarshal(v[4:4+n], st.Info); err != nil {
		st.Err = fmt.Errorf("gate info: %w", err)
		return st, nil
	}
	if pol := st.Info.Policy; pol != nil && pol.InKernel {
		// The policy's extension is a link like the hooks': without it
		// the gate refuses every guarded load (VerdictNoPolicy).
		if _, err := os.Stat(filepath.Join(pinDir, policyLinkPin)); err == nil {
			st.Hooks = append(st.Hooks, policyHook)
		} else {
			st.Missing = append(st.Missing, policyHook)
		}
	}
	counts, err := openPinned(pinDir, mapCounts, false)
	if err != nil {
		st.Err = err
		return st, nil
	}
	defer counts.Close()
	st.Counts = map[uint32]uint64{}
	for r := uint32(0); r < numReasons; r++ {
		var c uint64
		if err := counts.Lookup(r, &c); err != nil {
			st.Err = fmt.Errorf("gate counts: %w", err)
			return st, nil
		}
		if c != 0 {
			st.Counts[r] = c
		}
	}
	return st, nil
}

// openPinned opens one of the gate's pinned maps, read-only unless
// write: the gate refuses a writable one (EPERM) to anyone but its
// owner.
func openPinned(pinDir, name string, write bool) (*ebpf.Map, error) {
	m, err := ebpf.LoadPinnedMap(filepath.Join(pinDir, mapPin(name)), &ebpf.LoadPinOptions{ReadOnly: !write})
	if errors.Is(err, os.ErrPermission) {
		return nil, fmt.Errorf("the gate refuses its maps to this executable: only its owners, the executable that enforced it and the broker build beside it, may read them (%w)", err)
	}
	return m, err
}

// Release removes the gate pinned in pinDir: its links go with their
// pins, and it stops enforcing. Only the gate's owner may (the gate
// refuses everyone else's unlink). It returns what the gate was.
func Release(pinDir string) (*Status, error) {
	if pinDir == "" {
		pinDir = DefaultPinDir
	}
	st, err := ReadStatus(pinDir)
	if err != nil {
		return nil, err
	}
	if !st.Enforcing {
		return st, fmt.Errorf("no gate is pinned in %s", pinDir)
	}
	ents, err := os.ReadDir(pinDir)
	if err != nil {
		return st, err
	}
	// Links first: once one is gone the gate is partly off, so the
	// maps it reads go last.
	var first, last []string
	for _, e := range ents {
		p := filepath.Join(pinDir, e.Name())
		if strings.HasPrefix(e.Name(), linkPinPrefix) {
			first = append(first, p)
		} else {
			last = append(last, p)
		}
	}
	// The links' programs, to wait for below. The gate gives its links
	// to its owner only; anyone else's Remove fails first anyway.
	var progs []ebpf.ProgramID
	for _, p := range first {
		if l, err := link.LoadPinnedLink(p, nil); err == nil {
			if li, err := l.Info(); err == nil {
				progs = append(progs, li.Program)
			}
			l.Close()
		}
	}
	for _, p := range append(first, last...) {
		if err := os.Remove(p); err != nil {
			if errors.Is(err, os.ErrPermission) {
				return st, fmt.Errorf("the gate refuses to be released by this executable: only its owners, the executable that enforced it and the broker build beside it, may (%w)", err)
			}
			return st, err
		}
	}
	if err := os.Remove(pinDir); err != nil {
		return st, err
	}
	return st, waitGone(progs)
}

// releaseWait bounds how long Release waits for the gate's programs to
// go once their links are unpinned.
const releaseWait = 30 * time.Second

// waitGone waits until none of progs is loaded. On 6.12 (not on 6.1)
// the kernel drops a link's last reference in a work queue, so the gate
// went on refusing for a moment after its pins were gone (a load, or
// unmounting the bpffs, right after Release failed); Release returns
// once it no longer runs.
func waitGone(progs []ebpf.ProgramID) error {
	deadline := time.Now().Add(releaseWait)
	for _, id := range progs {
		for {
			p, err := ebpf.NewProgramFromID(id)
			if errors.Is(err, os.ErrNotExist) {
				break
			}
			if err == nil {
				p.Close()
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the gate's program %d is still loaded %v after its pins were removed", id, releaseWait)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// Events reads the gate's refusal records. One reader at a time: the
// daemon drains them into its audit log.
type Events struct {
	m *ebpf.Map
	r *ringbuf.Reader
}

// OpenEvents opens the events of the gate pinned in pinDir.
func OpenEvents(pinDir string) (*Events, error) {
	if pinDir == "" {
		pinDir = DefaultPinDir
	}
	m, err := openPinned(pinDir, mapEvents, true)
	if err != nil {
		return nil, err
	}
	r, err := ringbuf.NewReader(m)
	if err != nil {
		m.Close()
		return nil, err
	}
	return &Events{m: m, r: r}, nil
}

// Read blocks for the next record (until Close, or the deadline set
// with SetDeadline: then os.ErrDeadlineExceeded).
func (e *Events) Read() (Record, error) {
	var rec Record
	raw, err := e.r.Read()
	if err != nil {
		return rec, err
	}
	if len(raw.RawSample) < RecordSize {
		return rec, fmt.Errorf("gate record of %d bytes", len(raw.RawSample))
	}
	err = binary.Read(bytes.NewReader(raw.RawSample[:RecordSize]), binary.LittleEndian, &rec)
	return rec, err
}

// SetDeadline bounds Read.
func (e *Events) SetDeadline(t time.Time) { e.r.SetDeadline(t) }

// Close stops reading.
func (e *Events) Close() error {
	err := e.r.Close()
	e.m.Close()
	return err
}

// Describe says in one line whether the kernel gate enforces, cheaply
// enough for every trace (a stat, a small read): what run -v and every
// attestation say about it. Anyone may read what it names (read-only
// descriptors of the gate's maps).
func Describe(pinDir string) string {
	if pinDir == "" {
		pinDir = DefaultPinDir
	}
	if _, err := os.Stat(pinDir); err == nil {
		st, err := ReadStatus(pinDir)
		if err != nil || st.Info == nil {
			return "enforcing (" + pinDir + ")"
		}
		s := fmt.Sprintf("enforcing, %s, tb_gate sha256:%s", st.Info.Default, st.Info.Digest)
		if st.Info.Signer != "" {
			s += " signed by " + st.Info.Signer
		} else if st.Info.Unsigned {
			s += " unsigned"
		}
		if len(st.Missing) > 0 {
			s += fmt.Sprintf(", %d of %d hooks missing", len(st.Missing), len(hooks))
		}
		return s
	}
	lsms, err := activeLSMs()
	if err != nil {
		return "absent: " + err.Error()
	}
	if !slices.Contains(lsms, "bpf") {
		return fmt.Sprintf("absent: BPF LSM is not active (lsm=%s; boot with lsm=%s,bpf)", strings.Join(lsms, ","), strings.Join(lsms, ","))
	}
	return "absent: not enforced (tracebroker gatekeeper enforce)"
}

// Data is a record as the audit log keeps it.
func (r Record) Data() map[string]any {
	return map[string]any{
		"reason": ReasonText(r.Reason), "reason_code": r.Reason,
		"op": OpName(r.Cmd), "arg": r.Arg,
		"pid": r.PID, "uid": r.UID, "comm": unix.ByteSliceToString(r.Comm[:]),
		"exe_dev": fmt.Sprintf("%d:%d", r.Dev>>20, r.Dev&(1<<20-1)), "exe_ino": r.Ino,
		"modified":     r.Flags&flagModified != 0,
		"monotonic_ns": r.TimeNs,
	}
}
