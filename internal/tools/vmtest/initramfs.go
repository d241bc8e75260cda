package main

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/template"
)

// exitMarker starts the console line the init script prints last: the
// command's exit status, read by the host when the results share has
// none (it is the fallback, the status file is the record).
const exitMarker = "VMTEST-EXIT:"

// initConfig is what the guest's /init does.
type initConfig struct {
	Modules    []string // insmod order, files /lib/modules/NAME.ko
	ResultsDir string   // host path, shared writable as tag "results", mounted at the same path in the guest
	Command    string   // run by the host's /bin/sh inside the guest's root
	// Shown are host directories the command needs (the checkout, the
	// test binaries) that the guest's own /tmp would hide: each one
	// under /tmp gets a throwaway overlay of its own on top of it.
	Shown []string
}

// Hidden are the Shown directories under /tmp, with the name of each
// one's writable layer in the guest's tmpfs.
func (c initConfig) Hidden() []struct{ Path, Layer string } {
	var out []struct{ Path, Layer string }
	for i, p := range c.Shown {
		if p == "/tmp" || strings.HasPrefix(p, "/tmp/") {
			out = append(out, struct{ Path, Layer string }{p, fmt.Sprintf("/rw/shown%d", i)})
		}
	}
	return out
}

// The init runs in busybox until the host's root is mounted, then
// chroots into it. The host's root is the lower layer of an overlay with
// a tmpfs upper, so the guest writes (test temp files, /tmp locks) go
// nowhere. Any step that fails powers off with the marker and a status
// of its own (99), so the host tells a broken guest from a failed test.
var initTemplate = template.Must(template.New("init").Parse(`#!/bin/sh
export PATH=/bin
fail() { echo "vmtest: $*"; echo "` + exitMarker + `99"; sync; poweroff -f; }
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "vmtest: guest kernel $(uname -r)"
{{range .Modules}}insmod /lib/modules/{{.}}.ko || fail "insmod {{.}}"
{{end}}mkdir -p /lower /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 hostroot /lower || fail "mount hostroot over 9p"
mount -t tmpfs -o size=1536m rw /rw || fail "mount tmpfs"
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot || fail "mount overlay"
mount -t proc proc /newroot/proc
mount -t sysfs sys /newroot/sys
mount -t devtmpfs dev /newroot/dev
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts
mount -t tmpfs shm /newroot/dev/shm
mount -t tmpfs tmp /newroot/tmp
{{range .Hidden}}mkdir -p /newroot{{.Path}} {{.Layer}}/upper {{.Layer}}/work
mount -t overlay -o lowerdir=/lower{{.Path}},upperdir={{.Layer}}/upper,workdir={{.Layer}}/work overlay /newroot{{.Path}} || fail "mount {{.Path}}"
{{end}}mount -t tmpfs run /newroot/run
mount -t debugfs debugfs /newroot/sys/kernel/debug
mount -t tracefs tracefs /newroot/sys/kernel/tracing
mount -t bpf bpf /newroot/sys/fs/bpf
mount -t securityfs securityfs /newroot/sys/kernel/security
mount -t cgroup2 cgroup2 /newroot/sys/fs/cgroup || fail "mount cgroup2"
mkdir -p /newroot{{.ResultsDir}}
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 results /newroot{{.ResultsDir}} || fail "mount results"
ip link set lo up
echo "vmtest: running {{.ResultsDir}}"
chroot /newroot /bin/sh -c {{.Quoted}}
rc=$?
echo $rc > /newroot{{.ResultsDir}}/status
sync
echo "` + exitMarker + `$rc"
poweroff -f
`))

// Quoted is the command single-quoted for sh.
func (c initConfig) Quoted() string {
	return "'" + strings.ReplaceAll(c.Command, "'", `'\''`) + "'"
}

func initScript(c initConfig) (string, error) {
	if !strings.HasPrefix(c.ResultsDir, "/") || strings.ContainsAny(c.ResultsDir, " \t\n'\"$`\\;&|<>*?") {
		return "", fmt.Errorf("results dir %q: want an absolute path without shell metacharacters", c.ResultsDir)
	}
	for _, p := range c.Shown {
		if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, " \t\n'\"$`\\;&|<>*?,:") {
			return "", fmt.Errorf("directory %q: want an absolute path without shell metacharacters, commas or colons", p)
		}
	}
	for _, m := range c.Modules {
		if strings.ContainsAny(m, " \t\n'\"$`\\;&|<>*?/") {
			return "", fmt.Errorf("module name %q", m)
		}
	}
	var b strings.Builder
	if err := initTemplate.Execute(&b, c); err != nil {
		return "", err
	}
	return b.String(), nil
}

// cpioFile is one entry of the initramfs.
type cpioFile struct {
	name  string
	mode  uint32 // type and permission bits, as in stat
	data  []byte // contents, or a symlink's target
	major uint32 // of a device node
	minor uint32
}

const (
	sIFDIR = 0o040000
	sIFREG = 0o100000
	sIFLNK = 0o120000
	sIFCHR = 0o020000
)

// writeCpio writes files as a gzip'd "newc" archive, the format the
// kernel unpacks as its initramfs.
func writeCpio(w io.Writer, files []cpioFile) error {
	zw := gzip.NewWriter(w)
	var buf bytes.Buffer
	pad := func() {
		for buf.Len()%4 != 0 {
			buf.WriteByte(0)
		}
	}
	entry := func(ino int, f cpioFile) {
		fmt.Fprintf(&buf, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, f.mode, 0, 0, 1, 0, len(f.data), 0, 0, f.major, f.minor, len(f.name)+1, 0)
		buf.WriteString(f.name)
		buf.WriteByte(0)
		pad()
		buf.Write(f.data)
		pad()
	}
	sorted := append([]cpioFile(nil), files...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	for i, f := range sorted {
		entry(i+1, f)
	}
	entry(0, cpioFile{name: "TRAILER!!!"})
	if _, err := zw.Write(buf.Bytes()); err != nil {
		return err
	}
	return zw.Close()
}

// busyboxApplets are linked to /bin/busybox in the initramfs: what the
// init script calls.
var busyboxApplets = []string{"sh", "mount", "mkdir", "insmod", "uname", "chroot", "poweroff", "sync", "ip", "echo"}

// initramfsFiles lays out the guest's first root: busybox, /init, the
// modules and /dev/console (the kernel opens it for init's stdio before
// devtmpfs is mounted).
func initramfsFiles(busybox []byte, init string, order []string, modules map[string][]byte) ([]cpioFile, error) {
	if err := checkStatic(busybox); err != nil {
		return nil, err
	}
	files := []cpioFile{
		{name: "bin", mode: sIFDIR | 0o755},
		{name: "dev", mode: sIFDIR | 0o755},
		{name: "proc", mode: sIFDIR | 0o755},
		{name: "sys", mode: sIFDIR | 0o755},
		{name: "lib", mode: sIFDIR | 0o755},
		{name: "lib/modules", mode: sIFDIR | 0o755},
		{name: "dev/console", mode: sIFCHR | 0o600, major: 5, minor: 1},
		{name: "bin/busybox", mode: sIFREG | 0o755, data: busybox},
		{name: "init", mode: sIFREG | 0o755, data: []byte(init)},
	}
	for _, a := range busyboxApplets {
		files = append(files, cpioFile{name: "bin/" + a, mode: sIFLNK | 0o777, data: []byte("busybox")})
	}
	for _, m := range order {
		b, ok := modules[m]
		if !ok {
			return nil, fmt.Errorf("module %s: not read", m)
		}
		files = append(files, cpioFile{name: "lib/modules/" + m + ".ko", mode: sIFREG | 0o644, data: b})
	}
	return files, nil
}

// checkStatic refuses a dynamically linked busybox: the initramfs has no
// libc (Debian's busybox-static package has the static one).
func checkStatic(b []byte) error {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("busybox: %w", err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("busybox is dynamically linked: install busybox-static")
		}
	}
	return nil
}
