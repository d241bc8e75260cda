package lsmgate

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/gatekeeper"
)

// DefaultPinDir is where the gate pins its links and maps: on the
// bpffs, so that it outlives the command that enforced it.
const DefaultPinDir = "/sys/fs/bpf/tracebroker-gate"

// Options configure Enforce.
type Options struct {
	// PinDir is where the gate is pinned (DefaultPinDir if empty); its
	// parent must be on a bpffs.
	PinDir string
	// Trust holds the keys the gate's manifest and the loaders'
	// manifests must be signed by.
	Trust *attest.Trust
	// ManifestDir holds the gate's manifest, tb_gate.bpf.sig (role
	// gate), and loaders' manifests by name or digest.
	ManifestDir string
	// UnsignedGate loads the gate without its manifest: development
	// only; Info says so.
	UnsignedGate bool
	// Loaders are executables allowed to load guarded programs besides
	// the running one (the owner, always allowed).
	Loaders []string
	// Owners manage the gate as the running executable does (its maps,
	// its pins, release) and load as loaders do: the broker's other
	// build beside it, tracebroker-rpc, whose daemon drains the gate's
	// refusals. Each must verify as a loader must.
	Owners []string
	// AllowUnverified admits loaders whose manifest does not verify
	// (development builds): Info records each one's reason.
	AllowUnverified bool
	// Loose lets uid 0 load guarded programs with any loader (every
	// refusal is then of non-root callers and of the gate's own
	// objects); strict, the default, admits only the allowed loaders.
	Loose bool
	// DenyOthers refuses the unguarded program types (cgroup, socket,
	// XDP...) to loaders that are not allowed.
	DenyOthers bool
	// Version is the enforcing command's version, recorded in Info.
	Version string
	// Policy, a policy gatekeeper.LoadPolicyFile verified, decides the
	// guarded loads in the kernel where the kernel can run it (an
	// extension of the gate's tb_gate_policy): Info.Policy says whether
	// it does, and if not why; the gate then enforces the default (Loose
	// or strict) by loader identity. A policy the kernel can run but
	// refuses (its verifier) fails Enforce.
	Policy *gatekeeper.Policy
	// Platform fills the policy's Request (hvci, jit_available,
	// kernel_interpreter); nil: gatekeeper.DetectPlatform("auto").
	Platform *gatekeeper.Platform
}

// Loader is an executable in the allow map, as it was measured.
type Loader struct {
	Path     string `json:"path"`
	Dev      uint32 `json:"dev"` // kernel dev_t
	Ino      uint64 `json:"ino"`
	Digest   string `json:"digest"`
	Signer   string `json:"signer,omitempty"`
	Verified bool   `json:"verified"`
	Reason   string `json:"reason,omitempty"`
	Owner    bool   `json:"owner,omitempty"`
	// The file's ctime when it was measured: the gate refuses it once
	// the file changed (any write, chmod or link moves it).
	CtimeSec  int64  `json:"ctime_sec"`
	CtimeNsec uint32 `json:"ctime_nsec"`
}

// Info describes an enforcing gate: it is kept in the kernel beside it
// (the info map) and is what status shows.
type Info struct {
	Enforced   time.Time `json:"enforced"`
	Digest     string    `json:"digest"`
	Signer     string    `json:"signer,omitempty"`
	Unsigned   bool      `json:"unsigned,omitempty"`
	Default    string    `json:"default"` // strict or loose
	DenyOthers bool      `json:"deny_others,omitempty"`
	Guarded    []string  `json:"guarded"`
	Hooks      []string  `json:"hooks"`
	Loaders    []Loader  `json:"loaders"`
	PinDir     string    `json:"pin_dir"`
	Kernel     string    `json:"kernel"`
	Version    string    `json:"version,omitempty"`
	// Policy is the gatekeeper policy the gate was enforced with, nil
	// when none: Default decides.
	Policy *PolicyInfo `json:"policy,omitempty"`
}

// PolicyInfo says which policy decides and where.
type PolicyInfo struct {
	Name     string `json:"name"`
	Digest   string `json:"digest"`
	Signer   string `json:"signer,omitempty"`
	Unsigned bool   `json:"unsigned,omitempty"`
	// InKernel: the gate runs the policy on every guarded load. When
	// false, Why says why the kernel cannot, and the gate enforces
	// Info.Default by loader identity instead.
	InKernel bool   `json:"in_kernel"`
	Why      string `json:"why,omitempty"`
	// Platform is what the policy's Request says of the host.
	Platform gatekeeper.Platform `json:"platform"`
}

// UnavailableError says why this kernel cannot run the gate and what
// would change that.
type UnavailableError struct {
	Why, Fix string
	Err      error
}

func (e *UnavailableError) Error() string {
	s := "the kernel gate is unavailable: " + e.Why
	if e.Fix != "" {
		s += "; " + e.Fix
	}
	return s
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// Probe says whether this kernel can run the gate: BPF LSM active and
// LSM programs accepted. nil means it can.
func Probe() error {
	lsms, err := activeLSMs()
	if err != nil {
		return err
	}
	if !slices.Contains(lsms, "bpf") {
		fix := fmt.Sprintf("boot with lsm=%s,bpf on the kernel command line", strings.Join(lsms, ","))
		if set, known := gatekeeper.KernelConfig("CONFIG_BPF_LSM"); known && !set {
			fix = "this kernel is built without CONFIG_BPF_LSM: use one built with it (Debian's are), then " + fix
		}
		return &UnavailableError{Why: fmt.Sprintf("BPF LSM is not active (the active LSMs are %s)", strings.Join(lsms, ",")), Fix: fix}
	}
	// bpf is active: a trivial program on the bpf hook says whether
	// LSM programs load here (a sandbox or lockdown may still refuse).
	spec := &ebpf.ProgramSpec{
		Name: "tb_gate_probe", Type: ebpf.LSM, AttachType: ebpf.AttachLSMMac, AttachTo: "bpf",
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	}
	p, err := ebpf.NewProgram(spec)
	if err != nil {
		msg := strings.TrimSuffix(firstLine(err.Error()), " (MEMLOCK may be too low, consider rlimit.RemoveMemlock)")
		return &UnavailableError{Why: "this kernel refuses BPF LSM programs although bpf is among its active LSMs: " + msg, Fix: "a sandbox or a security policy forbids them; run on a host that allows BPF LSM programs", Err: err}
	}
	p.Close()
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

const lsmFile = "/sys/kernel/security/lsm"

func activeLSMs() ([]string, error) {
	b, err := os.ReadFile(lsmFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &UnavailableError{Why: lsmFile + " does not exist", Fix: "mount securityfs (mount -t securityfs securityfs /sys/kernel/security) or use a kernel built with CONFIG_SECURITY", Err: err}
	}
	if err != nil {
		return nil, &UnavailableError{Why: "reading " + lsmFile + ": " + err.Error(), Err: err}
	}
	return strings.Split(strings.TrimSpace(string(b)), ","), nil
}

// Enforce loads the gate, attaches it to its hooks and pins it in
// opts.PinDir. The gate's manifest is verified first (role gate), every
// loader is measured and verified, and the running executable becomes
// the gate's owner. Anything that fails leaves nothing loaded, attached
// or pinned.
func Enforce(opts Options) (*Info, error) {
	if opts.PinDir == "" {
		opts.PinDir = DefaultPinDir
	}
	if err := Probe(); err != nil {
		return nil, err
	}
	info := &Info{Enforced: time.Now().UTC(), Digest: Digest(), PinDir: opts.PinDir, Kernel: gatekeeper.KernelRelease(), Version: opts.Version, Default: "strict", DenyOthers: opts.DenyOthers}
	if opts.Loose {
		info.Default = "loose"
	}
	for _, t := range defaultGuarded {
		info.Guarded = append(info.Guarded, t.String())
	}
	for _, h := range hooks {
		info.Hooks = append(info.Hooks, "lsm/"+h.hook)
	}
	if p := opts.Policy; p != nil {
		info.Policy = &PolicyInfo{Name: p.Name(), Digest: p.Digest(), Signer: p.Signer(), Unsigned: p.Unsigned()}
		if opts.Platform != nil {
			info.Policy.Platform = *opts.Platform
		} else {
			pl, err := gatekeeper.DetectPlatform("auto")
			if err != nil {
				return nil, err
			}
			info.Policy.Platform = pl
		}
	}
	if opts.UnsignedGate {
		info.Unsigned = true
	} else {
		id, err := verifyGate(opts.Trust, opts.ManifestDir)
		if err != nil {
			return nil, err
		}
		info.Signer = id.Signer
	}
	if _, err := os.Stat(opts.PinDir); err == nil {
		return nil, fmt.Errorf("a gate is already pinned in %s: see tracebroker gatekeeper status, or release it first", opts.PinDir)
	}
	parent := filepath.Dir(opts.PinDir)
	var sfs unix.Statfs_t
	if err := unix.Statfs(parent, &sfs); err != nil {
		return nil, fmt.Errorf("gate pins: %s: %w", parent, err)
	}
	if uint32(sfs.Type) != unix.BPF_FS_MAGIC {
		return nil, fmt.Errorf("gate pins: %s is not a bpffs (mount -t bpf bpf %s)", parent, parent)
	}

	measure := attest.NewMeasurer(attest.MeasureOptions{Trust: opts.Trust, ManifestDir: opts.ManifestDir, Role: attest.RoleBroker})
	self, err := selfPath()
	if err != nil {
		return nil, err
	}
	paths := append(append([]string{self}, opts.Owners...), opts.Loaders...)
	seen := map[allowKey]bool{}
	for i, p := range paths {
		l, key, err := measureLoader(measure, p, opts.AllowUnverified)
		if err != nil {
			return nil, err
		}
		l.Owner = i <= len(opts.Owners)
		if i == 0 {
			// The owner is the file this process runs, not whatever
			// its path names by now.
			var st unix.Stat_t
			if err := unix.Stat("/proc/self/exe", &st); err != nil {
				return nil, err
			}
			if kernelDev(uint64(st.Dev)) != key.Dev || st.Ino != key.Ino {
				return nil, fmt.Errorf("this executable, %s, was replaced while it runs: run the one installed there", self)
			}
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		info.Loaders = append(info.Loaders, l)
	}

	kspec, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, &UnavailableError{Why: "no kernel BTF: " + err.Error(), Fix: "use a kernel built with CONFIG_DEBUG_INFO_BTF", Err: err}
	}
	offs, err := kernelOffsets(kspec)
	if err != nil {
		return nil, fmt.Errorf("the gate cannot read this kernel: %w", err)
	}
	return info, load(opts, info, offs)
}

// selfPath is the path of the executable this process runs.
func selfPath() (string, error) {
	p, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return "", err
	}
	if strings.HasSuffix(p, " (deleted)") {
		return "", fmt.Errorf("this executable, %s, was removed while it runs: run the one installed now", p)
	}
	return p, nil
}

// measureLoader measures an executable for the allow map. It refuses
// what the gate could not tell from another file: a dynamically linked
// executable (LD_PRELOAD would run anyone's code as it) and one on an
// overlayfs (the kernel identifies it by an inode stat does not show).
func measureLoader(m *attest.Measurer, path string, unverified bool) (Loader, allowKey, error) {
	id, st, err := m.MeasureFile(path)
	if err != nil {
		return Loader{}, allowKey{}, err
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(path, &sfs); err == nil && sfs.Type == unix.OVERLAYFS_SUPER_MAGIC {
		return Loader{}, allowKey{}, fmt.Errorf("loader %s is on an overlayfs, whose files the kernel knows by inodes stat does not report: install it on the host's own file system", id.Path)
	}
	if f, err := elf.Open(path); err == nil {
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				f.Close()
				return Loader{}, allowKey{}, fmt.Errorf("loader %s is dynamically linked: LD_PRELOAD would let anyone's code load programs as it; build it static (CGO_ENABLED=0, as make build does)", id.Path)
			}
		}
		f.Close()
	}
	if !id.Verified && !unverified {
		return Loader{}, allowKey{}, fmt.Errorf("loader %s (sha256 %s) does not verify as a broker: %s; sign it (tracebroker attest sign --role broker) and put the manifest beside it or in the manifest directory", id.Path, id.Digest, id.Reason)
	}
	l := Loader{Path: id.Path, Dev: kernelDev(uint64(st.Dev)), Ino: st.Ino, Digest: id.Digest, Signer: id.Signer, Verified: id.Verified,
		CtimeSec: st.Ctim.Sec, CtimeNsec: uint32(st.Ctim.Nsec)}
	if !id.Verified {
		l.Reason = string(id.Reason)
	}
	return l, allowKey{Dev: l.Dev, Ino: l.Ino}, nil
}

// kernelDev converts stat's st_dev to the kernel's dev_t (major << 20 |
// minor), which the gate reads from super_block.s_dev.
func kernelDev(dev uint64) uint32 {
	return unix.Major(dev)<<20 | unix.Minor(dev)
}

// ManifestPath is where the gate's manifest is looked for in dir.
func ManifestPath(dir string) string { return filepath.Join(dir, ObjectFile+attest.SigSuffix) }

func verifyGate(trust *attest.Trust, dir string) (attest.Identity, error) {
	digest := Digest()
	howto := fmt.Sprintf("export the gate (tracebroker gatekeeper export DIR), sign DIR/%s (sha256 %s) for role %s, and put the .sig in the manifest directory", ObjectFile, digest, attest.RoleGate)
	return attest.VerifyBuiltIn("gate", dir, ObjectFile+attest.SigSuffix, digest, trust, attest.RoleGate, howto)
}

// Pins' names in PinDir.
func mapPin(name string) string  { return strings.TrimPrefix(name, "gate_") }
func linkPin(hook string) string { return linkPinPrefix + hook }

// linkPinPrefix begins the name of every link pin, the policy's too.
const linkPinPrefix = "link_"

// policyLinkPin is the pin of the policy's extension link.
const policyLinkPin = linkPinPrefix + "policy"

// load creates the gate's maps and programs, fills them, attaches the
// programs and pins everything; on any error it undoes what it did.
func load(opts Options, info *Info, offs Offsets) (err error) {
	coll, err := ebpf.NewCollection(collectionSpec())
	if err != nil {
		return fmt.Errorf("loading the gate: %w", err)
	}
	defer coll.Close()
	var links []link.Link
	var policyLink link.Link
	defer func() {
		for _, l := range links {
			l.Close()
		}
	}()
	var pins []string
	defer func() {
		if err != nil {
			for i := len(pins) - 1; i >= 0; i-- {
				os.Remove(pins[i])
			}
		}
	}()

	cfg := config{Version: configVersion, Guarded: guardedMask(defaultGuarded), Offsets: offs}
	if opts.Loose {
		cfg.Flags |= FlagLoose
	}
	if opts.DenyOthers {
		cfg.Flags |= FlagDenyOthers
	}
	for _, l := range info.Loaders {
		v, err := loaderValue(l)
		if err != nil {
			return err
		}
		if err := coll.Maps[mapAllow].Put(allowKey{Dev: l.Dev, Ino: l.Ino}, v); err != nil {
			return fmt.Errorf("gate allow map: %w", err)
		}
	}
	for _, t := range programTypes {
		var name [programTypeSize]byte
		copy(name[:], t.Name)
		if err := coll.Maps[mapTypes].Put(typeKey{Type: uint32(t.Type), Attach: t.Attach}, name); err != nil {
			return fmt.Errorf("gate types map: %w", err)
		}
	}
	var platform gatekeeper.Platform
	if info.Policy != nil {
		platform = info.Policy.Platform
	}
	if err := coll.Maps[mapTemplate].Put(uint32(0), requestTemplate(platform)); err != nil {
		return fmt.Errorf("gate request template: %w", err)
	}
	var ids []uint32
	for _, m := range mapSpecs() {
		id, err := mapID(coll.Maps[m.Name])
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}

	// The policy is attached before the gate's hooks are, so that no
	// load is judged by the stub.
	if opts.Policy != nil {
		kp, err := loadPolicy(coll.Programs[policyTarget], opts.Policy)
		var unsupported *policyUnsupportedError
		switch {
		case errors.As(err, &unsupported):
			info.Policy.Why = unsupported.Error()
		case err != nil:
			return err
		default:
			// The link goes with the others; the program and its maps
			// stay loaded while it is attached (and pinned).
			defer kp.coll.Close()
			links = append(links, kp.link)
			policyLink = kp.link
			info.Policy.InKernel = true
			cfg.Flags |= FlagPolicy
			for _, m := range kp.maps {
				id, err := mapID(m)
				if err != nil {
					return err
				}
				ids = append(ids, id)
			}
		}
	}
	if len(ids) > maxIDs {
		return fmt.Errorf("gate: %d maps, and it protects at most %d", len(ids), maxIDs)
	}
	copy(cfg.MapIDs[:], ids)
	ib, err := json.Marshal(info)
	if err != nil {
		return err
	}
	if len(ib)+4 > infoSize {
		return fmt.Errorf("gate: %d loaders do not fit its info (%d bytes)", len(info.Loaders), infoSize)
	}
	iv := make([]byte, infoSize)
	binary.LittleEndian.PutUint32(iv, uint32(len(ib)))
	copy(iv[4:], ib)
	if err := coll.Maps[mapInfo].Put(uint32(0), iv); err != nil {
		return err
	}
	if err := putConfig(coll.Maps[mapConfig], &cfg); err != nil {
		return err
	}

	if err := os.Mkdir(opts.PinDir, 0o700); err != nil {
		return fmt.Errorf("gate pins: %w", err)
	}
	pins = append(pins, opts.PinDir)
	for _, m := range mapSpecs() {
		p := filepath.Join(opts.PinDir, mapPin(m.Name))
		if err := coll.Maps[m.Name].Pin(p); err != nil {
			return fmt.Errorf("gate pins: %w", err)
		}
		pins = append(pins, p)
	}
	if policyLink != nil {
		id, err := linkID(policyLink)
		if err != nil {
			return err
		}
		cfg.LinkIDs[len(hooks)] = id
		p := filepath.Join(opts.PinDir, policyLinkPin)
		if err := policyLink.Pin(p); err != nil {
			return fmt.Errorf("gate pins: %w", err)
		}
		pins = append(pins, p)
	}
	for i, h := range hooks {
		l, err := link.AttachLSM(link.LSMOptions{Program: coll.Programs[h.prog]})
		if err != nil {
			return fmt.Errorf("attaching the gate to lsm/%s: %w", h.hook, err)
		}
		links = append(links, l)
		id, err := linkID(l)
		if err != nil {
			return err
		}
		cfg.LinkIDs[i] = id
		p := filepath.Join(opts.PinDir, linkPin(h.hook))
		if err := l.Pin(p); err != nil {
			return fmt.Errorf("gate pins: %w", err)
		}
		pins = append(pins, p)
	}
	// The pins are protected from here on: everything the gate needs
	// to know about itself goes in last.
	for _, p := range pins {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			return err
		}
		k := allowKey{Dev: kernelDev(uint64(st.Dev)), Ino: st.Ino}
		if err := coll.Maps[mapProtect].Put(k, uint32(1)); err != nil {
			return fmt.Errorf("gate protect map: %w", err)
		}
		cfg.PinDev = k.Dev
	}
	if err := putConfig(coll.Maps[mapConfig], &cfg); err != nil {
		return err
	}
	runtime.KeepAlive(coll)
	return nil
}

func mapID(m *ebpf.Map) (uint32, error) {
	mi, err := m.Info()
	if err != nil {
		return 0, err
	}
	id, _ := mi.ID()
	return uint32(id), nil
}

func linkID(l link.Link) (uint32, error) {
	li, err := l.Info()
	if err != nil {
		return 0, err
	}
	return uint32(li.ID), nil
}

// loaderValue is l's allow entry: what the gate needs to tell it from
// another file, and its identity for the policy's Request.
func loaderValue(l Loader) (allowValue, error) {
	v := allowValue{Flags: AllowLoad, CtimeSec: l.CtimeSec, CtimeNsec: l.CtimeNsec}
	if l.Owner {
		v.Flags |= AllowManage
	}
	if l.Verified {
		v.Verified = 1
	}
	// Strings keep a NUL at their end, as in every Request.
	digest := "sha256:" + l.Digest
	if len(digest) >= len(v.Digest) || len(l.Signer) >= len(v.Signer) {
		return v, fmt.Errorf("loader %s: digest %q or signer %q does not fit the policy's Request", l.Path, digest, l.Signer)
	}
	copy(v.Digest[:], digest)
	copy(v.Signer[:], l.Signer)
	return v, nil
}

func putConfig(m *ebpf.Map, c *config) error {
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, c); err != nil {
		return err
	}
	if b.Len() != configSize {
		return fmt.Errorf("gate config is %d bytes, the code reads %d", b.Len(), configSize)
	}
	if err := m.Put(uint32(0), b.Bytes()); err != nil {
		return fmt.Errorf("gate config: %w", err)
	}
	return nil
}
