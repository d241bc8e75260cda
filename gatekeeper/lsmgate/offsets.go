package lsmgate

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf/btf"
)

// Offsets are where the running kernel keeps what the gate reads, from
// its BTF: they are the config's data, never the gate's code.
type Offsets struct {
	TaskMM, MMExeFile, FileInode, InodeIno, InodeSB, SBDev uint32
	InodeCtimeSec, InodeCtimeNsec                          uint32
	TaskFiles, FilesFdt, FdtMaxFds, FdtFd, FilePrivate     uint32
	LinkID, MapID, DentryInode, MntSB                      uint32
}

// kernelOffsets reads Offsets from a kernel's BTF. A field the gate
// needs and the kernel lacks is an error naming it: the gate is not
// loaded with a guess.
func kernelOffsets(spec *btf.Spec) (Offsets, error) {
	var o Offsets
	var errs []error
	get := func(dst *uint32, typ string, names ...string) {
		off, err := fieldOffset(spec, typ, names...)
		if err != nil {
			errs = append(errs, err)
			return
		}
		*dst = off
	}
	get(&o.TaskMM, "task_struct", "mm")
	get(&o.MMExeFile, "mm_struct", "exe_file")
	get(&o.FileInode, "file", "f_inode")
	get(&o.FilePrivate, "file", "private_data")
	get(&o.InodeIno, "inode", "i_ino")
	get(&o.InodeSB, "inode", "i_sb")
	get(&o.SBDev, "super_block", "s_dev")
	get(&o.TaskFiles, "task_struct", "files")
	get(&o.FilesFdt, "files_struct", "fdt")
	get(&o.FdtMaxFds, "fdtable", "max_fds")
	get(&o.FdtFd, "fdtable", "fd")
	get(&o.LinkID, "bpf_link", "id")
	get(&o.MapID, "bpf_map", "id")
	get(&o.DentryInode, "dentry", "d_inode")
	get(&o.MntSB, "vfsmount", "mnt_sb")
	// An inode's ctime: i_ctime_sec and i_ctime_nsec since 6.11, a
	// struct timespec64 (tv_sec, then tv_nsec) named __i_ctime in 6.6
	// to 6.10 and i_ctime before.
	if sec, err := fieldOffset(spec, "inode", "i_ctime_sec"); err == nil {
		nsec, err := fieldOffset(spec, "inode", "i_ctime_nsec")
		if err != nil {
			errs = append(errs, err)
		}
		o.InodeCtimeSec, o.InodeCtimeNsec = sec, nsec
	} else if ts, err := fieldOffset(spec, "inode", "__i_ctime", "i_ctime"); err == nil {
		o.InodeCtimeSec, o.InodeCtimeNsec = ts, ts+8
	} else {
		errs = append(errs, err)
	}
	return o, errors.Join(errs...)
}

// fieldOffset is the byte offset of the first of names found in struct
// typ, looking through anonymous structs and unions (mm_struct keeps
// its fields in one).
func fieldOffset(spec *btf.Spec, typ string, names ...string) (uint32, error) {
	var s *btf.Struct
	if err := spec.TypeByName(typ, &s); err != nil {
		return 0, fmt.Errorf("kernel BTF: struct %s: %w", typ, err)
	}
	for _, n := range names {
		if off, ok := findMember(s.Members, n, 0); ok {
			return off, nil
		}
	}
	return 0, fmt.Errorf("kernel BTF: struct %s has no field %s", typ, names[0])
}

func findMember(ms []btf.Member, name string, base uint32) (uint32, bool) {
	for _, m := range ms {
		off := base + uint32(m.Offset.Bytes())
		if m.Name == name {
			if m.BitfieldSize != 0 {
				return 0, false
			}
			return off, true
		}
		if m.Name != "" {
			continue
		}
		switch t := btf.UnderlyingType(m.Type).(type) {
		case *btf.Struct:
			if o, ok := findMember(t.Members, name, off); ok {
				return o, true
			}
		case *btf.Union:
			if o, ok := findMember(t.Members, name, off); ok {
				return o, true
			}
		}
	}
	return 0, false
}
