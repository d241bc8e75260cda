package lsmgate

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/tracebroker/tracebroker/gatekeeper/abi"
	"github.com/tracebroker/tracebroker/internal/golden"
)

// The code reads the config, allow values and records at constant
// offsets; the Go structs that write and read them must agree.
func TestLayouts(t *testing.T) {
	offsets := func(v any) map[string]uintptr {
		m := map[string]uintptr{}
		var walk func(t reflect.Type, base uintptr)
		walk = func(t reflect.Type, base uintptr) {
			for i := 0; i < t.NumField(); i++ {
				f := t.Field(i)
				if f.Type.Kind() == reflect.Struct {
					walk(f.Type, base+f.Offset)
					continue
				}
				m[f.Name] = base + f.Offset
			}
		}
		walk(reflect.TypeOf(v), 0)
		return m
	}
	cfg := offsets(config{})
	for _, c := range []struct {
		field string
		off   int
	}{
		{"Flags", cfgFlags}, {"Guarded", cfgGuarded}, {"TaskMM", cfgTaskMM}, {"MMExeFile", cfgMMExeFile},
		{"FileInode", cfgFileInode}, {"InodeIno", cfgInodeIno}, {"InodeSB", cfgInodeSB}, {"SBDev", cfgSBDev},
		{"InodeCtimeSec", cfgInodeCtimeSec}, {"InodeCtimeNsec", cfgInodeCtimeNsec}, {"TaskFiles", cfgTaskFiles},
		{"FilesFdt", cfgFilesFdt}, {"FdtMaxFds", cfgFdtMaxFds}, {"FdtFd", cfgFdtFd}, {"FilePrivate", cfgFilePrivate},
		{"LinkID", cfgLinkID}, {"MapID", cfgMapID}, {"DentryInode", cfgDentryInode}, {"MntSB", cfgMntSB},
		{"PinDev", cfgPinDev}, {"MapIDs", cfgMapIDs}, {"LinkIDs", cfgLinkIDs},
	} {
		if got := cfg[c.field]; got != uintptr(c.off) {
			t.Errorf("config.%s at %d, the code reads %d", c.field, got, c.off)
		}
	}
	if n := binary.Size(config{}); n != configSize {
		t.Errorf("config is %d bytes, the map's value %d", n, configSize)
	}
	av := offsets(allowValue{})
	for f, off := range map[string]int{"Flags": allowFlags, "Verified": allowVerified, "CtimeSec": allowCtimeSec, "CtimeNsec": allowCtimeNsec, "Digest": allowDigest, "Signer": allowSigner} {
		if av[f] != uintptr(off) {
			t.Errorf("allowValue.%s at %d, the code reads %d", f, av[f], off)
		}
	}
	if binary.Size(allowValue{}) != allowSize || binary.Size(allowKey{}) != 16 {
		t.Errorf("allow value %d bytes (want %d), key %d", binary.Size(allowValue{}), allowSize, binary.Size(allowKey{}))
	}
	// The identity is copied into the Request's fields whole.
	for name, size := range map[string]int{"broker_digest": digestSize, "broker_signer": abi.KeyIDSize, "program_type": programTypeSize} {
		if f, ok := abi.Lookup(name); !ok || f.Size != size {
			t.Errorf("Request field %s: %+v, the gate copies %d bytes", name, f, size)
		}
	}
	if f, _ := abi.Lookup("broker_verified"); f.Size != 1 {
		t.Errorf("broker_verified is %d bytes, the gate writes 1", f.Size)
	}
	if requestSize != abi.Size || abi.Version != 1 {
		t.Errorf("the gate builds a %d-byte Request of ABI version 1, abi's is %d bytes, version %d", requestSize, abi.Size, abi.Version)
	}
	rec := offsets(Record{})
	for f, off := range map[string]int{"TimeNs": recTime, "Reason": recReason, "PID": recPID, "UID": recUID, "Cmd": recCmd, "Arg": recArg, "Dev": recDev, "Ino": recIno, "Flags": recFlags, "Verdict": recVerdict, "Comm": recComm} {
		if rec[f] != uintptr(off) {
			t.Errorf("Record.%s at %d, the code writes %d", f, rec[f], off)
		}
	}
	if n := binary.Size(Record{}); n != RecordSize {
		t.Errorf("Record is %d bytes, the code sends %d", n, RecordSize)
	}
	// Stack regions must not overlap, and fit in 512 bytes.
	regions := []struct {
		name      string
		off, size int
	}{{"args", stArgs, 48}, {"ident", stIdent, 32}, {"read", stRead, 8}, {"saved", stSaved, 8}, {"prot", stProt, 16}, {"key", stKey, 4}, {"record", stRecord, RecordSize}, {"type", stType, 8}}
	for i, a := range regions {
		if a.off+a.size > 0 || a.off < -512 {
			t.Errorf("stack region %s [%d,%d) outside the frame", a.name, a.off, a.off+a.size)
		}
		for _, b := range regions[i+1:] {
			if a.off < b.off+b.size && b.off < a.off+a.size {
				t.Errorf("stack regions %s and %s overlap", a.name, b.name)
			}
		}
	}
}

// The gate's object is what its manifest signs: the same bytes on every
// build. A change to the code changes testdata/tb_gate.bpf.sha256, and
// every release's gate manifest with it.
func TestObjectStable(t *testing.T) {
	a, err := Object()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Object()
	if !bytes.Equal(a, b) {
		t.Fatal("two encodings differ")
	}
	if !bytes.HasPrefix(a, []byte("tracebroker gate object v1\n")) {
		t.Errorf("header: %q", a[:40])
	}
	for _, h := range hooks {
		if !bytes.Contains(a, []byte(fmt.Sprintf("program %s lsm/%s: ", h.prog, h.hook))) {
			t.Errorf("object lacks %s", h.prog)
		}
	}
	golden.Check(t, "testdata/tb_gate.bpf.sha256", []byte(Digest()+"\n"))
}

// Every program must at least assemble, jumps resolved, within the
// kernel's limits; the kernel's verifier is the VMs' job.
func TestProgramsAssemble(t *testing.T) {
	for _, h := range hooks {
		insns := h.code()
		var buf bytes.Buffer
		if err := insns.Marshal(&buf, binary.LittleEndian); err != nil {
			t.Errorf("%s: %v", h.prog, err)
		}
		if n := buf.Len() / 8; n > 4096 {
			t.Errorf("%s: %d instructions", h.prog, n)
		}
	}
}

// kernelOffsets on this kernel's BTF, and on BTF built by hand for the
// layouts the gate must tell apart.
func TestKernelOffsets(t *testing.T) {
	if spec, err := btf.LoadKernelSpec(); err == nil {
		o, err := kernelOffsets(spec)
		if err != nil {
			t.Fatalf("this kernel: %v", err)
		}
		if o.InodeCtimeNsec == 0 || o.FileInode == 0 || o.MMExeFile == 0 {
			t.Errorf("this kernel: %+v", o)
		}
	}
	u64 := &btf.Int{Name: "u64", Size: 8}
	u32 := &btf.Int{Name: "u32", Size: 4}
	ptr := &btf.Pointer{Target: &btf.Void{}}
	member := func(name string, typ btf.Type, off int) btf.Member {
		return btf.Member{Name: name, Type: typ, Offset: btf.Bits(off * 8)}
	}
	ts := &btf.Struct{Name: "timespec64", Size: 16, Members: []btf.Member{member("tv_sec", u64, 0), member("tv_nsec", u64, 8)}}
	base := func(inode btf.Member, more ...btf.Member) []btf.Type {
		return []btf.Type{
			&btf.Struct{Name: "task_struct", Size: 64, Members: []btf.Member{member("mm", ptr, 8), member("files", ptr, 16)}},
			// mm_struct's fields are inside an anonymous struct.
			&btf.Struct{Name: "mm_struct", Size: 128, Members: []btf.Member{member("", &btf.Struct{Size: 100, Members: []btf.Member{member("exe_file", ptr, 40)}}, 16)}},
			&btf.Struct{Name: "file", Size: 64, Members: []btf.Member{member("f_inode", ptr, 32), member("private_data", ptr, 48)}},
			&btf.Struct{Name: "inode", Size: 128, Members: append([]btf.Member{member("i_ino", u64, 64), member("i_sb", ptr, 40), inode}, more...)},
			&btf.Struct{Name: "super_block", Size: 64, Members: []btf.Member{member("s_dev", u32, 16)}},
			&btf.Struct{Name: "files_struct", Size: 64, Members: []btf.Member{member("fdt", ptr, 32)}},
			&btf.Struct{Name: "fdtable", Size: 64, Members: []btf.Member{member("max_fds", u32, 0), member("fd", ptr, 8)}},
			&btf.Struct{Name: "bpf_link", Size: 64, Members: []btf.Member{member("id", u32, 8)}},
			&btf.Struct{Name: "bpf_map", Size: 64, Members: []btf.Member{member("id", u32, 52)}},
			&btf.Struct{Name: "dentry", Size: 64, Members: []btf.Member{member("d_inode", ptr, 48)}},
			&btf.Struct{Name: "vfsmount", Size: 64, Members: []btf.Member{member("mnt_sb", ptr, 8)}},
		}
	}
	for _, c := range []struct {
		name       string
		types      []btf.Type
		sec, nsec  uint32
		wantErrSub string
	}{
		{"6.1 i_ctime", base(member("i_ctime", ts, 96)), 96, 104, ""},
		{"6.6 __i_ctime", base(member("__i_ctime", ts, 80)), 80, 88, ""},
		{"6.11 i_ctime_sec", base(member("i_ctime_sec", u64, 72), member("i_ctime_nsec", u32, 100)), 72, 100, ""},
		{"no ctime", base(member("i_mtime", ts, 80)), 0, 0, "no field __i_ctime"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := btf.NewBuilder(c.types, nil)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := b.Marshal(nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			spec, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			o, err := kernelOffsets(spec)
			if c.wantErrSub != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErrSub) {
					t.Fatalf("err %v, want %q", err, c.wantErrSub)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := Offsets{TaskMM: 8, MMExeFile: 56, FileInode: 32, InodeIno: 64, InodeSB: 40, SBDev: 16, InodeCtimeSec: c.sec, InodeCtimeNsec: c.nsec,
				TaskFiles: 16, FilesFdt: 32, FdtMaxFds: 0, FdtFd: 8, FilePrivate: 48, LinkID: 8, MapID: 52, DentryInode: 48, MntSB: 8}
			if o != want {
				t.Errorf("got %+v\nwant %+v", o, want)
			}
		})
	}
}

func TestReasonTexts(t *testing.T) {
	for r := uint32(1); r < numReasons; r++ {
		if s := ReasonText(r); r <= ReasonPolicy || r == ReasonLost {
			if strings.HasPrefix(s, "reason ") {
				t.Errorf("reason %d has no text", r)
			}
		}
	}
}
