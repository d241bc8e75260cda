package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestLoadOrder(t *testing.T) {
	// depends= as Debian's 6.1 and 6.12 modules have them (modinfo -F depends).
	deps61 := map[string]string{
		"virtio_pci":            "virtio_pci_modern_dev,virtio_pci_legacy_dev,virtio,virtio_ring",
		"virtio_pci_modern_dev": "",
		"virtio_pci_legacy_dev": "",
		"virtio":                "",
		"virtio_ring":           "virtio",
		"9pnet_virtio":          "virtio,virtio_ring,9pnet",
		"9pnet":                 "",
		"9p":                    "9pnet,fscache,netfs",
		"fscache":               "netfs",
		"netfs":                 "",
		"overlay":               "",
	}
	for _, tc := range []struct {
		name    string
		deps    map[string]string
		builtin []string
		want    []string
		err     string
	}{
		{name: "6.1", deps: deps61,
			want: []string{"virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_ring", "virtio_pci", "9pnet", "9pnet_virtio", "netfs", "fscache", "9p", "overlay"}},
		{name: "6.12 virtio built in", builtin: []string{"virtio", "virtio_ring", "virtio_pci", "virtio_pci_modern_dev", "virtio_pci_legacy_dev"},
			deps: map[string]string{"9pnet_virtio": "9pnet,virtio_ring,virtio", "9pnet": "", "9p": "netfs,9pnet", "netfs": "", "overlay": ""},
			want: []string{"9pnet", "9pnet_virtio", "netfs", "9p", "overlay"}},
		{name: "missing", deps: map[string]string{"9pnet_virtio": "9pnet", "9p": "", "overlay": "", "virtio_pci": ""},
			err: "module 9pnet (wanted by guest -> 9pnet_virtio) is neither built in nor in the kernel package"},
		{name: "cycle", deps: map[string]string{"virtio_pci": "a", "a": "b", "b": "a"},
			err: "module dependency cycle: guest -> virtio_pci -> a -> b -> a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			builtin := map[string]bool{}
			for _, b := range tc.builtin {
				builtin[b] = true
			}
			got, err := loadOrder(guestModules,
				func(n string) bool { _, ok := tc.deps[n]; return ok },
				func(n string) bool { return builtin[n] },
				func(n string) ([]string, error) { return parseDepends(tc.deps[n]), nil })
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("order = %v\nwant    %v", got, tc.want)
			}
		})
	}
}

func TestModName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/fs/9p/9p.ko.xz":                   "9p",
		"kernel/net/9p/9pnet_virtio.ko":           "9pnet_virtio",
		"kernel/drivers/virtio/virtio-pci.ko.zst": "virtio_pci",
	} {
		if got := modName(in); got != want {
			t.Errorf("modName(%q) = %q, want %q", in, got, want)
		}
	}
	if got := parseDepends(" netfs,9pnet-x,\n"); !reflect.DeepEqual(got, []string{"netfs", "9pnet_x"}) {
		t.Errorf("parseDepends = %q", got)
	}
	if got := parseDepends(""); got != nil {
		t.Errorf("parseDepends(\"\") = %q", got)
	}
}

// TestModDepends reads depends= from a module of the cached 6.1 kernel,
// compared with modinfo's answer when kmod is installed.
func TestModDepends(t *testing.T) {
	mods, _ := filepath.Glob(filepath.Join(cacheDir(), "linux-image-6.1.0-*", "lib", "modules", "*", "kernel", "fs", "9p", "9p.ko*"))
	if len(mods) == 0 {
		t.Skip("no cached Debian 6.1 kernel (make vmtest fetches it)")
	}
	b, err := moduleBytes(mods[0])
	if err != nil {
		t.Fatal(err)
	}
	got, err := modDepends(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || !contains(got, "9pnet") {
		t.Fatalf("9p depends = %q, want 9pnet among them", got)
	}
	if _, err := exec.LookPath("modinfo"); err == nil {
		out, err := exec.Command("modinfo", "-F", "depends", mods[0]).Output()
		if err != nil {
			t.Fatal(err)
		}
		if want := parseDepends(string(out)); !reflect.DeepEqual(got, want) {
			t.Fatalf("depends = %q, modinfo says %q", got, want)
		}
	}
	if _, err := modDepends([]byte("not an ELF")); err == nil {
		t.Fatal("modDepends of garbage: no error")
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

func TestInitScript(t *testing.T) {
	s, err := initScript(initConfig{Modules: []string{"netfs", "9pnet", "9p"}, ResultsDir: "/work/out/6.1", Command: "echo 'it''s'; exit 3",
		Shown: []string{"/work/repo", "/tmp/ci/repo", "/tmp/out/bin"}})
	if err != nil {
		t.Fatal(err)
	}
	// insmods in the given order, before the host's root is mounted; the
	// results share after the last tmpfs of the new root (else /tmp
	// would hide a results dir under /tmp); the command's status last.
	order := []string{
		"insmod /lib/modules/netfs.ko ||",
		"insmod /lib/modules/9pnet.ko ||",
		"insmod /lib/modules/9p.ko ||",
		"mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 hostroot /lower",
		"mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot",
		"mount -t tmpfs tmp /newroot/tmp",
		// Directories under /tmp the guest's tmpfs hides are shown again
		// (a fresh clone in /tmp, -out /tmp/x); /work/repo needs nothing.
		"mkdir -p /newroot/tmp/ci/repo /rw/shown1/upper /rw/shown1/work",
		"mount -t overlay -o lowerdir=/lower/tmp/ci/repo,upperdir=/rw/shown1/upper,workdir=/rw/shown1/work overlay /newroot/tmp/ci/repo",
		"mount -t overlay -o lowerdir=/lower/tmp/out/bin,upperdir=/rw/shown2/upper,workdir=/rw/shown2/work overlay /newroot/tmp/out/bin",
		"mount -t tracefs tracefs /newroot/sys/kernel/tracing",
		"mount -t bpf bpf /newroot/sys/fs/bpf",
		"mount -t cgroup2 cgroup2 /newroot/sys/fs/cgroup",
		"mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 results /newroot/work/out/6.1",
		`chroot /newroot /bin/sh -c 'echo '\''it'\'''\''s'\''; exit 3'`,
		"echo $rc > /newroot/work/out/6.1/status",
		"echo \"VMTEST-EXIT:$rc\"",
		"poweroff -f",
	}
	at := 0
	for _, o := range order {
		i := strings.Index(s[at:], o)
		if i < 0 {
			t.Fatalf("init lacks %q after offset %d:\n%s", o, at, s)
		}
		at += i + len(o)
	}
	if strings.Contains(s, "/newroot/work/repo") {
		t.Errorf("init mounts over /work/repo, which the guest's /tmp does not hide:\n%s", s)
	}
	// The command, quoted, comes back as it was through sh.
	sh := exec.Command("/bin/sh", "-c", "printf %s "+initConfig{Command: "echo 'it''s'; exit 3"}.Quoted())
	if out, err := sh.Output(); err != nil || string(out) != "echo 'it''s'; exit 3" {
		t.Fatalf("quoted command through sh = %q, %v", out, err)
	}
	for _, bad := range []initConfig{
		{ResultsDir: "relative/dir"},
		{ResultsDir: "/tmp/x; reboot"},
		{ResultsDir: "/tmp/$(id)"},
		{ResultsDir: "/tmp/ok", Modules: []string{"9p; reboot"}},
		{ResultsDir: "/tmp/ok", Modules: []string{"../../bin/sh"}},
		{ResultsDir: "/tmp/ok", Shown: []string{"/tmp/a,upperdir=/x"}},
		{ResultsDir: "/tmp/ok", Shown: []string{"tmp/rel"}},
	} {
		if _, err := initScript(bad); err == nil {
			t.Errorf("initScript(%+v): no error", bad)
		}
	}
}

// readCpio reads back a gzip'd newc archive: name -> entry.
func readCpio(t *testing.T, b []byte) map[string]cpioFile {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]cpioFile{}
	align := func(n int) int { return (n + 3) &^ 3 }
	for off := 0; ; {
		h := raw[off : off+110]
		if string(h[:6]) != "070701" {
			t.Fatalf("bad magic at %d: %q", off, h[:6])
		}
		field := func(i int) int {
			v, err := strconv.ParseUint(string(h[6+8*i:14+8*i]), 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return int(v)
		}
		mode, size, rmaj, rmin, nsize := field(1), field(6), field(9), field(10), field(11)
		name := string(raw[off+110 : off+110+nsize-1])
		data := align(off + 110 + nsize)
		if name == "TRAILER!!!" {
			return files
		}
		files[name] = cpioFile{name: name, mode: uint32(mode), data: raw[data : data+size], major: uint32(rmaj), minor: uint32(rmin)}
		off = align(data + size)
	}
}

func TestInitramfs(t *testing.T) {
	self, err := os.ReadFile("/proc/self/exe") // a test binary: static unless cgo is on
	if err != nil {
		t.Fatal(err)
	}
	if checkStatic(self) != nil {
		t.Skip("this test binary is dynamically linked (cgo); it stands for busybox-static")
	}
	files, err := initramfsFiles(self, "#!/bin/sh\n", []string{"9pnet", "9p"}, map[string][]byte{"9pnet": []byte("A"), "9p": []byte("BCDEF")})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := writeCpio(&buf, files); err != nil {
		t.Fatal(err)
	}
	got := readCpio(t, buf.Bytes())
	for name, want := range map[string]cpioFile{
		"init":                 {mode: sIFREG | 0o755, data: []byte("#!/bin/sh\n")},
		"bin/sh":               {mode: sIFLNK | 0o777, data: []byte("busybox")},
		"dev/console":          {mode: sIFCHR | 0o600, data: []byte{}, major: 5, minor: 1},
		"lib/modules/9p.ko":    {mode: sIFREG | 0o644, data: []byte("BCDEF")},
		"lib/modules/9pnet.ko": {mode: sIFREG | 0o644, data: []byte("A")},
	} {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		if g.mode != want.mode || !bytes.Equal(g.data, want.data) || g.major != want.major || g.minor != want.minor {
			t.Errorf("%s = mode %o %q dev %d:%d, want mode %o %q dev %d:%d", name, g.mode, g.data, g.major, g.minor, want.mode, want.data, want.major, want.minor)
		}
	}
	if !bytes.Equal(got["bin/busybox"].data, self) {
		t.Error("bin/busybox differs from what was given")
	}
	if _, err := initramfsFiles(self, "", []string{"9p"}, nil); err == nil {
		t.Error("a module not read: no error")
	}
	sh, err := os.ReadFile("/bin/sh")
	if err == nil && checkStatic(sh) == nil {
		t.Skip("/bin/sh is static here; no dynamic binary to refuse")
	}
	if _, err := initramfsFiles(sh, "", nil, nil); err == nil || !strings.Contains(err.Error(), "busybox-static") {
		t.Errorf("dynamic busybox: err = %v", err)
	}
}

func TestNewestPackage(t *testing.T) {
	names := []string{
		"linux-image-6.1.0-9-amd64-unsigned",
		"linux-image-6.1.0-57-amd64-unsigned",
		"linux-image-6.1.0-57-cloud-amd64-unsigned",
		"linux-image-6.1.0-100-rt-amd64-unsigned",
		"linux-image-6.12.9+deb12-amd64-unsigned",
		"linux-image-6.12.118+deb12-amd64-unsigned",
		"linux-image-6.12.118+deb12-cloud-amd64-unsigned",
		"linux-image-6.12.57+deb12-amd64-unsigned",
	}
	for k, want := range map[string]string{"6.1": "linux-image-6.1.0-57-amd64-unsigned", "6.12": "linux-image-6.12.118+deb12-amd64-unsigned"} {
		if got, err := newestPackage(names, flavours[k]); err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", k, got, err, want)
		}
	}
	if _, err := newestPackage(nil, flavours["6.1"]); err == nil {
		t.Error("no packages: no error")
	}
}

// events is a test2json stream as `go tool test2json -t` writes it.
func events(lines ...string) string {
	var b strings.Builder
	for _, l := range lines {
		f := strings.SplitN(l, "|", 3)
		fmt.Fprintf(&b, `{"Action":%q,"Test":%q,"Output":%q}`+"\n", f[0], f[1], f[2])
	}
	return b.String()
}

func TestParseEvents(t *testing.T) {
	stream := events(
		"run|TestA|",
		"output|TestA|=== RUN   TestA\n",
		"pass|TestA|",
		"run|TestB|",
		"output|TestB|=== RUN   TestB\n",
		"output|TestB|    b_test.go:9: no tracefs\n",
		"skip|TestB|",
		"run|TestE2E|",
		"run|TestE2E/printf|",
		"output|TestE2E/printf|=== RUN   TestE2E/printf\n",
		"output|TestE2E/printf|    e2e_test.go:42: load: program x: BPF_LDX uses reserved fields\n",
		"output|TestE2E/printf|    e2e_test.go:43: second line\n",
		"run|TestCollector|",
		"output|TestCollector|    session_test.go:594: Open: the kernel verifier rejected a collector: invalid argument\n",
		"output|TestCollector|        11: (85) call bpf_get_attach_cookie#174\n",
		"output|TestCollector|        unknown func bpf_get_attach_cookie#174\n",
		"output|TestCollector|        processed 11 insns (limit 1000000) max_states_per_insn 0\n",
		"fail|TestCollector|",
		"output|TestE2E/printf|--- FAIL: TestE2E/printf (1.00s)\n",
		"fail|TestE2E/printf|",
		"run|TestE2E/count|",
		"pass|TestE2E/count|",
		"fail|TestE2E|",
		"run|TestOutput|",
		"output|TestOutput|    e2e_test.go:231: output:\n",
		"output|TestOutput|        \n",
		"output|TestOutput|        got 3 lines, want 4\n",
		"fail|TestOutput|",
		"run|TestPanic|",
		"output|TestPanic|panic: boom\n",
		"fail|TestPanic|",
		"output||FAIL\n",
		"fail||",
	)
	r, err := parseEvents(strings.NewReader(stream), 1)
	if err != nil {
		t.Fatal(err)
	}
	want := []failure{
		{Test: "TestCollector", First: "session_test.go:594: Open: the kernel verifier rejected a collector: invalid argument … unknown func bpf_get_attach_cookie#174"},
		{Test: "TestE2E/printf", First: "e2e_test.go:42: load: program x: BPF_LDX uses reserved fields"},
		{Test: "TestOutput", First: "e2e_test.go:231: output: got 3 lines, want 4"},
		{Test: "TestPanic", First: "panic: boom"},
	}
	if r.Status != "FAIL" || r.Passed != 1 || r.Skipped != 1 || !reflect.DeepEqual(r.Failures, want) {
		t.Fatalf("got %s passed %d skipped %d %+v", r.Status, r.Passed, r.Skipped, r.Failures)
	}
	r.Elapsed = 75 * time.Second
	if got := r.cell(); got != "FAIL 4 (1 ok, 1 skip) 1m15s" {
		t.Errorf("cell = %q", got)
	}
	for _, tc := range []struct {
		stream string
		rc     int
		want   string
	}{
		{events("run|TestB|", "skip|TestB|"), 0, "skip"},
		{events("run|TestA|", "pass|TestA|", "run|TestB|", "skip|TestB|"), 0, "ok"},
		{events("run|TestA|", "pass|TestA|"), 2, "FAIL"}, // a test binary killed by -test.timeout after the last event
	} {
		r, err := parseEvents(strings.NewReader(tc.stream), tc.rc)
		if err != nil || r.Status != tc.want {
			t.Errorf("status = %q, %v; want %q", r.Status, err, tc.want)
		}
	}
	if _, err := parseEvents(strings.NewReader("not json\n"), 0); err == nil {
		t.Error("garbage: no error")
	}
}

func TestConsoleStatus(t *testing.T) {
	for _, tc := range []struct {
		console string
		rc      int
		ok      bool
	}{
		{"boot\r\nVMTEST-EXIT:0\r\n[ 3.8] reboot: Power down\r\n", 0, true},
		{"echo \"VMTEST-EXIT:$rc\"\nVMTEST-EXIT:3\n", 3, true},
		{"vmtest: insmod 9p\r\nVMTEST-EXIT:99\r\n", 99, true},
		{"Kernel panic - not syncing: softlockup: hung tasks\r\n", 0, false},
	} {
		rc, ok := consoleStatus(tc.console)
		if rc != tc.rc || ok != tc.ok {
			t.Errorf("consoleStatus(%q) = %d %v, want %d %v", tc.console, rc, ok, tc.rc, tc.ok)
		}
	}
}

func TestGuestScript(t *testing.T) {
	s := guestScript("/repo", "/out/bin", "/out/6.1", []string{"./bpf", "./bpf/collector"}, map[string]string{"./bpf": "TestE2E|TestProbe"}, 40*time.Minute, "/usr/bin:/bin")
	for _, want := range []string{
		"export PATH='/usr/bin:/bin' HOME=/root TRACEBROKER_SLOW=10\n",
		"cd '/repo/bpf' && s=$(date +%s) && { '/out/bin/bpf.test' '-test.v=test2json' '-test.timeout=40m0s' '-test.count=1' '-test.run=TestE2E|TestProbe' >'/out/6.1/bpf.json.raw' 2>&1; echo \"$? $(( $(date +%s) - s ))\" >'/out/6.1/bpf.rc'; }\n",
		"cd '/repo/bpf/collector' &&",
		"'/out/bin/bpf_collector.test'",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q:\n%s", want, s)
		}
	}
	// The script runs here as in the guest: a package's rc file holds its
	// binary's exit status and seconds.
	dir := t.TempDir()
	for _, d := range []string{"repo/p", "bin", "res"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	os.WriteFile(filepath.Join(dir, "bin", "p.test"), []byte("#!/bin/sh\necho \"$@\"; exit 7\n"), 0o755)
	s = guestScript(filepath.Join(dir, "repo"), filepath.Join(dir, "bin"), filepath.Join(dir, "res"), []string{"./p"}, nil, time.Minute, os.Getenv("PATH"))
	if out, err := exec.Command("/bin/sh", "-c", s).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	rc, _ := os.ReadFile(filepath.Join(dir, "res", "p.rc"))
	if !regexp.MustCompile(`^7 \d+\n$`).Match(rc) {
		t.Errorf("p.rc = %q, want \"7 SECONDS\"", rc)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "res", "p.json.raw"))
	if string(raw) != "-test.v=test2json -test.timeout=1m0s -test.count=1\n" {
		t.Errorf("p.json.raw = %q", raw)
	}
}

// TestSmoke boots each cached kernel four times: `true`; writes to the
// overlay and the tracing mounts, then `exit 3`; a kernel panic; a hang
// past the timeout. About a minute a kernel, so it runs only with
// VMTEST_SMOKE=1 (make vmtest-smoke), not in make test.
func TestSmoke(t *testing.T) {
	if os.Getenv("VMTEST_SMOKE") != "1" {
		t.Skip("boots qemu: set VMTEST_SMOKE=1 (make vmtest-smoke)")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("no qemu-system-x86_64 (apt-get install qemu-system-x86)")
	}
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil || checkStatic(busybox) != nil {
		t.Skip("no static /bin/busybox (apt-get install busybox-static)")
	}
	ran := 0
	for name, re := range flavours {
		dirs, _ := filepath.Glob(filepath.Join(cacheDir(), "linux-image-*"))
		var pkgs []string
		for _, d := range dirs {
			pkgs = append(pkgs, filepath.Base(d))
		}
		pkg, err := newestPackage(pkgs, re)
		if err != nil {
			t.Logf("%s: no cached kernel (make vmtest fetches it)", name)
			continue
		}
		k, err := unpackedKernel(name, pkg, filepath.Join(cacheDir(), pkg))
		if err != nil {
			t.Fatal(err)
		}
		// What the guest's command did comes back as its status; a guest
		// that panics or hangs is an error with the console in it.
		for _, tc := range []struct {
			cmd     string
			timeout time.Duration
			rc      int
			err     string
		}{
			{cmd: "true", timeout: 2 * time.Minute},
			{cmd: "touch /usr/bin/vmtest-overlay && test -w /sys/kernel/tracing/trace_marker && test -d /sys/fs/bpf; exit 3", timeout: 2 * time.Minute, rc: 3},
			{cmd: "echo c > /proc/sysrq-trigger; sleep 600", timeout: 2 * time.Minute, err: "the guest stopped without an exit status (panic, lockup or crash)\nconsole (last lines):\n"},
			{cmd: "sleep 600", timeout: 40 * time.Second, err: "timeout: the guest ran past 40s\nconsole (last lines):\n"},
		} {
			res := t.TempDir()
			rc, err := bootAndRun(t.Context(), k, busybox, res, tc.cmd, nil, tc.timeout)
			switch {
			case tc.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.err)):
				t.Errorf("%s: %q: err %v, want %q…", name, tc.cmd, err, tc.err)
			case tc.err != "" && tc.cmd[0] == 'e' && !strings.Contains(err.Error(), "sysrq"):
				t.Errorf("%s: %q: the panic is not in the console's tail:\n%v", name, tc.cmd, err)
			case tc.err == "" && (err != nil || rc != tc.rc):
				t.Errorf("%s: %q: rc %d, %v; want %d", name, tc.cmd, rc, err, tc.rc)
			}
		}
		ran++
	}
	if ran == 0 {
		t.Skip("no cached kernel: run make vmtest first")
	}
}
