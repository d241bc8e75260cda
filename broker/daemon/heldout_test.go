package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/broker/audit"
	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
	"github.com/tracebroker/tracebroker/broker/token"
	"github.com/tracebroker/tracebroker/internal/elfsym/elfsymtest"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
	"github.com/tracebroker/tracebroker/plugins"
)

// daemonSecret stands for what the daemon holds in its memory: its host
// key, its callers' tokens. The in-process test daemon is this process,
// so its address is one the daemon's memory holds it at.
var daemonSecret = []byte("the daemon's host key\x00")

// TestAttacksHeldOut: attacks of issue 15's items in forms the other
// attack tables do not make — other syntaxes for a read, a plugin's raw
// eBPF, hostile files behind a probe, floods from many addresses — each
// through the real daemon, refused or contained. Rows that were holes
// say so; the others are variants that were refused already.
func TestAttacksHeldOut(t *testing.T) {
	needKernel(t)
	pluginDir, pluginKey := signedPlugin(t, "hostile", "rawread")
	withPlugins := func(_ *testDaemon, c *Config) {
		c.Plugins = &plugins.Host{Dir: pluginDir, Trust: attest.NewTrust(pluginKey.Public()), StartTimeout: 30 * time.Second, CallTimeout: 30 * time.Second}
	}
	d := startDaemon(t, daemonOpts{configure: withPlugins})
	getcwd := "trace probe:tracepoint:syscalls:sys_enter_getcwd"

	// Item 1: a token grants probes, not the kernel.

	t.Run("item1/begin_reads_the_daemon_with_read_user", func(t *testing.T) {
		// Was a hole: BEGIN and END run in the daemon, so with
		// read:user a map value typed as a user pointer read the
		// daemon's own memory (its host key, other users' tokens).
		script := fmt.Sprintf("t:syscalls:sys_enter_getcwd { @p = args->buf; }\nBEGIN { printf(\"%%s\\n\", str(@p + %d)); exit(); }", uintptr(unsafe.Pointer(&daemonSecret[0])))
		tok := d.token(t, token.IssueOptions{Scope: getcwd + " read:user"})
		r := d.start(t, tok, &pb.TraceRequest{Name: "stdin", Source: []byte(script)})
		r.wait(t)
		runtime.KeepAlive(daemonSecret)
		if strings.Contains(r.stdout.String(), "host key") {
			t.Fatalf("the token holder read the daemon's memory: %q", r.stdout.String())
		}
		var ce *CallError
		if !errors.As(r.err, &ce) || ce.Code != "PermissionDenied" || !ce.Script ||
			!strings.Contains(ce.Message, `in BEGIN reads the broker's own memory: the token of "alice" needs scope read:kernel`) {
			t.Fatalf("err = %v, want a script refusal needing read:kernel", r.err)
		}
	})

	t.Run("item1/raw_begin_reads_the_daemon_with_read_user", func(t *testing.T) {
		// Was a hole: the same read as a plugin's raw BEGIN program,
		// judged by its helper (probe_read_user) as user memory alone.
		tok := d.token(t, token.IssueOptions{Scope: "trace gen:rawread read:user"})
		req := &pb.TraceRequest{Generator: "rawread", Params: map[string]string{"user": "true", "addr": fmt.Sprint(uintptr(unsafe.Pointer(&daemonSecret[0])))}}
		r := d.start(t, tok, req)
		r.wait(t)
		var ce *CallError
		if !errors.As(r.err, &ce) || ce.Code != "PermissionDenied" || !strings.Contains(ce.Message, `probe BEGIN reads kernel memory: the token of "alice" needs scope read:kernel`) {
			t.Errorf("err = %v, want a refusal needing read:kernel", r.err)
		}
	})

	t.Run("item1/raw_plugin_sends_signals", func(t *testing.T) {
		// Was a hole: a plugin's raw eBPF called bpf_send_signal, which
		// the compiler refuses scripts without --unsafe, and the
		// daemon ran it for a token with a probe scope: it could kill
		// any process its probe fires in, root's included. Here the
		// victim is this process, and the signal a harmless one.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGUSR2)
		defer signal.Stop(sig)
		tok := d.token(t, token.IssueOptions{Scope: getcwd + " gen:hostile"})
		req := &pb.TraceRequest{Generator: "hostile", Params: map[string]string{"do": "signal", "pid": fmt.Sprint(os.Getpid()), "sig": fmt.Sprint(int(syscall.SIGUSR2))}}
		before, _ := kerneltest.LoadedIDs(t)
		ce, _ := refusedUnlessItRuns(t, d, tok, req, func() {
			kerneltest.Syscalls(3, 0)
			select {
			case <-sig:
				t.Error("the raw program signalled a process")
			case <-time.After(5 * time.Second):
			}
		})
		if ce == nil || ce.Code != "PermissionDenied" || !strings.Contains(ce.Message, "calls bpf_send_signal, which may change the traced system") {
			t.Errorf("refusal %+v, want PermissionDenied for bpf_send_signal", ce)
		}
		if left := newSince(t, before); len(left) > 0 {
			t.Errorf("programs loaded: %v", left)
		}
	})

	t.Run("item1/raw_plugin_sees_the_daemon", func(t *testing.T) {
		// Was a hole: the daemon hid its own events only from compiled
		// scripts; a plugin's raw program counted the daemon's
		// syscalls (and with read:user read what it writes: other
		// sessions' output, the audit log). This daemon is a real one
		// in that respect: its own process is hidden.
		hd := startDaemon(t, daemonOpts{configure: func(td *testDaemon, c *Config) {
			withPlugins(td, c)
			c.TraceOwnProcess = false
		}})
		tok := hd.token(t, token.IssueOptions{Scope: getcwd + " gen:hostile"})
		count := func(pid int) *pb.TraceRequest {
			return &pb.TraceRequest{Generator: "hostile", Params: map[string]string{"do": "count", "pid": fmt.Sprint(pid)}}
		}
		r := hd.start(t, tok, count(os.Getpid()))
		hd.attached(t, 1, r)
		kerneltest.Syscalls(3, 0)
		close(r.interrupt)
		r.wait(t)
		if r.err != nil || calls(r.stdout.String()) != 0 {
			t.Errorf("counting the daemon's getcwd calls: err %v, stdout %q; want none counted", r.err, r.stdout.String())
		}
		// The same program counts another process's.
		pwd := exec.Command("/bin/sh", "-c", "read x; exec /bin/pwd")
		in, err := pwd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		pwd.Stdout = io.Discard
		if err := pwd.Start(); err != nil {
			t.Fatal(err)
		}
		r = hd.start(t, tok, count(pwd.Process.Pid))
		hd.attached(t, 1, r)
		in.Close()
		if err := pwd.Wait(); err != nil {
			t.Fatal(err)
		}
		close(r.interrupt)
		r.wait(t)
		if r.err != nil || calls(r.stdout.String()) < 1 {
			t.Errorf("counting pwd's getcwd calls: err %v, stdout %q", r.err, r.stdout.String())
		}
	})

	t.Run("item1/long_jump_past_the_daemon_check", func(t *testing.T) {
		// Was a hole: a jump's offset is 16 bits, and the generated
		// code's long jumps wrapped silently: in a probe of 70,000
		// instructions the check that skips the daemon's own events
		// jumped into the body instead of to its end, so a token
		// holder counted (or read) the daemon's events — and a
		// predicate was ignored the same way.
		hd := startDaemon(t, daemonOpts{configure: func(_ *testDaemon, c *Config) { c.TraceOwnProcess = false }})
		// 104 statements of 642 instructions and ten of two put the
		// daemon check's wrapped jump at the start of a statement, where
		// the verifier has nothing to object to.
		filler := strings.Repeat(`if (strcontains(comm, "zzzzzzzzzzzzzzz")) { @z = 1; } `, 104) + strings.Repeat("$x = 1; ", 10)
		req := &pb.TraceRequest{Name: "stdin", Source: []byte("t:syscalls:sys_enter_getcwd { " + filler + "@[pid] = count(); }")}
		ce, r := refusedUnlessItRuns(t, hd, hd.token(t, token.IssueOptions{Scope: getcwd}), req, func() { kerneltest.Syscalls(3, 0) })
		if r != nil && strings.Contains(r.stdout.String(), fmt.Sprintf("@[%d]: ", os.Getpid())) {
			t.Errorf("the daemon's own getcwd calls were counted: %q", r.stdout.String())
		}
		if ce == nil || !ce.Script || !strings.Contains(ce.Message, "more than a BPF jump reaches") {
			t.Errorf("refusal %+v, want a script error for the jump", ce)
		}
	})

	// Item 1's refusals in other syntaxes: each reads what only a
	// read: scope grants, and is refused with the scope it needs.
	for _, tt := range []struct {
		name, scopes, script, need string
	}{
		{"item1/ternary_of_an_integer", "trace", `BEGIN { printf("%s\n", str(nsecs ? 0xffff888000000000 : 0xffff888000001000)); exit(); }`, "read:kernel"},
		{"item1/join_of_an_integer", "trace", `BEGIN { join(0xffff888000000000); exit(); }`, "read:kernel"},
		{"item1/cast_of_a_user_pointer", getcwd, `t:syscalls:sys_enter_getcwd { printf("%s\n", str((uint64)args->buf)); }`, "read:kernel"},
		{"item1/argv_index_cast", "trace probe:tracepoint:syscalls:sys_enter_execve", `t:syscalls:sys_enter_execve { printf("%s\n", str(args->argv[(int8)15])); }`, "read:user"},
		{"item1/argv_index_sizeof", "trace probe:tracepoint:syscalls:sys_enter_execve", `t:syscalls:sys_enter_execve { printf("%s\n", str(args->argv[sizeof(uint64)])); }`, "read:user"},
		{"item1/kaddr_as_a_map_key", "trace", `BEGIN { @[kaddr("vfs_read")] = count(); exit(); }`, "read:kernel"},
		{"item1/ksym_of_a_literal", "trace", `BEGIN { printf("%s\n", ksym(0xffffffff81000000)); exit(); }`, "read:kernel"},
		{"item1/kstack_perf_printed", getcwd, `t:syscalls:sys_enter_getcwd { printf("%s\n", kstack(perf, 3)); }`, "read:kernel"},
		{"item1/raw_tracepoint_argument", "trace probe:rawtracepoint:sys_enter", `rawtracepoint:sys_enter { printf("%s\n", str(arg1)); }`, "read:kernel"},
		{"item1/tp_btf_kernel_pointer", "trace probe:tp_btf:sched_switch", `tp_btf:sched_switch { printf("%s\n", str(args.prev)); }`, "read:kernel"},
		{"item1/saved_pointer_read_in_end", getcwd + " read:user", "t:syscalls:sys_enter_getcwd { @p = args->buf; }\nEND { printf(\"%s\\n\", str(@p)); }", "read:kernel"},
		// bpftrace's pointer casts and a script's own struct
		// definitions (issue 18) read memory as str() does.
		{"issue18/pointer_cast_in_begin", "trace", `BEGIN { @ = *(uint64 *)0xffff888000000000; exit(); }`, "read:kernel"},
		{"issue18/pointer_cast_index", "trace", `BEGIN { @ = ((int8 *)0xffff888000000000)[7]; exit(); }`, "read:kernel"},
		{"issue18/script_struct_cast", "trace", `struct S { long a; char s[16]; } BEGIN { @ = ((struct S *)0xffff888000000000)->s; exit(); }`, "read:kernel"},
		{"issue18/script_struct_over_the_kernels", "trace", `struct task_struct { char secret[64]; } BEGIN { print(curtask->secret); exit(); }`, "read:kernel"},
		// cat() reads a file as the daemon reads it (root): as much
		// as reading the kernel's memory.
		{"issue18/cat_a_file", "trace", `BEGIN { cat("/etc/shadow"); exit(); }`, "read:kernel"},
		{"issue18/cat_a_formatted_path", "trace probe:interval:*", `i:ms:10 { cat("/proc/%d/environ", 1); exit(); }`, "read:kernel"},
		// cgroup_path() names the host's cgroup directories; macaddr()
		// reads where its pointer points.
		{"issue18/cgroup_path", "trace", `BEGIN { print(cgroup_path(cgroup)); exit(); }`, "read:kernel"},
		{"issue18/cgroup_path_as_a_map_key", "trace probe:interval:*", `i:ms:10 { @[cgroup_path(1, "unified")] = count(); exit(); }`, "read:kernel"},
		// ctx is the kernel's context pointer; the registers a perf
		// event interrupted are the kernel's when it ran.
		{"issue18/ctx_cast_to_a_script_struct", "trace probe:interval:*", `struct x { unsigned long x; } i:ms:10 { @ = ((struct x *)ctx)->x; exit(); }`, "read:kernel"},
		{"issue18/ctx_printed", "trace probe:interval:*", `i:ms:10 { printf("%p\n", ctx); exit(); }`, "read:kernel"},
		{"issue18/reg_ip_in_an_interval", "trace probe:interval:*", `i:ms:10 { printf("%lx\n", reg("ip")); exit(); }`, "read:kernel"},
		{"issue18/macaddr_of_a_kernel_address", "trace", `BEGIN { print(macaddr(0xffff888000000000)); exit(); }`, "read:kernel"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := d.start(t, d.token(t, token.IssueOptions{Scope: tt.scopes}), &pb.TraceRequest{Name: "stdin", Source: []byte(tt.script), DurationMs: 1000})
			r.wait(t)
			var ce *CallError
			if !errors.As(r.err, &ce) || ce.Code != "PermissionDenied" || !strings.Contains(ce.Message, "needs scope "+tt.need) {
				t.Errorf("err = %v, want a refusal needing %s; stdout %q, stderr %q", r.err, tt.need, r.stdout.String(), r.stderr.String())
			}
		})
	}

	// system() runs a command as the daemon: only under --unsafe, which
	// the daemon never sets, whoever asks (issue 18).
	t.Run("issue18/system_through_the_daemon", func(t *testing.T) {
		for _, tok := range []string{d.token(t, token.IssueOptions{Scope: "trace read:kernel read:user"}), ""} {
			r := d.start(t, tok, &pb.TraceRequest{Name: "stdin", Source: []byte(`BEGIN { system("id > /tmp/pwned"); exit(); }`), DurationMs: 1000})
			r.wait(t)
			var ee *ExitError
			if !errors.As(r.err, &ee) || !strings.Contains(r.stderr.String(), "system() is an unsafe function being used in safe mode") {
				t.Errorf("token %v: err = %v, stderr %q: want system() refused as unsafe", tok != "", r.err, r.stderr.String())
			}
		}
		if _, err := os.Stat("/tmp/pwned"); err == nil {
			t.Error("the command ran")
		}
	})

	// Item 2: no input kills or bloats the daemon.

	t.Run("item2/uprobe_target_name_bomb", func(t *testing.T) {
		// Was a hole: a file in a directory the token may probe whose
		// 20,000 symbols all name one 32 KiB string (a 0.5 MB file)
		// made the daemon copy the name for each: 640 MB, and a few
		// more symbols or a longer name kill it.
		dir := t.TempDir()
		bomb := filepath.Join(dir, "bomb")
		if err := os.WriteFile(bomb, elfsymtest.NameBomb(20000, 32<<10), 0o755); err != nil {
			t.Fatal(err)
		}
		tok := d.token(t, token.IssueOptions{Scope: "trace probe:uprobe:" + dir + "/*:*"})
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		r := d.start(t, tok, &pb.TraceRequest{Name: "stdin", Source: fmt.Appendf(nil, "uprobe:%s:* { @ = count(); }", bomb)})
		r.wait(t)
		runtime.ReadMemStats(&after)
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
			t.Errorf("a uprobe on a %d-byte file cost the daemon %d MB", 20000*24+32<<10, grew>>20)
		}
		var ee *ExitError
		if !errors.As(r.err, &ee) || !strings.Contains(r.stderr.String(), "stripped") {
			t.Errorf("err = %v, stderr %q: want the file refused as having no symbols", r.err, r.stderr.String())
		}
	})

	t.Run("item6/oversized_headers_before_auth", func(t *testing.T) {
		// Was a hole: gRPC's default header list is 16 MiB, held with
		// the call until its request comes (PreAuthTimeout), so one
		// connection of anyone in the socket's group held 16 calls of
		// 16 MiB each, 32 connections 8 GiB, before any token was
		// looked at. Here 16 calls of 2 MiB headers, and a PING whose
		// answer says the daemon has read them all.
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c := hugeHeaders(t, d.socket, 16, 2<<20)
		defer c.Close()
		runtime.ReadMemStats(&after)
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
			t.Errorf("16 calls of 2 MiB headers cost the daemon %d MB", grew>>20)
		}
		holderTraces(t, d, 0, token.IssueOptions{})
	})

	// Items 6 and 7 over TCP, from many loopback addresses: any local
	// user may connect from any of 127.0.0.0/8.
	cert, pool := selfSigned(t)
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}

	t.Run("item7/tcp_flood_from_loopback_aliases", func(t *testing.T) {
		// Was a hole: each address was a peer of its own, so 64
		// addresses made 64 times the per-peer bound of idle
		// connections, past the total, which the unix socket shared:
		// a valid token holder on the socket was refused.
		td := startDaemon(t, daemonOpts{shared: true, listen: "127.0.0.1:0", tls: tlsConfig, configure: func(_ *testDaemon, c *Config) {
			c.MaxConns, c.MaxConnsPerPeer, c.PreAuthTimeout = 64, 8, time.Minute
		}})
		addr := td.srv.TCPAddr().String()
		conns := idleFrom(t, addr, 64, 8)
		waitConns(t, td, func() bool { return td.srv.conns.byPeer["ip:loopback"] == 8 })
		td.srv.conns.mu.Lock()
		tcp := td.srv.conns.tcp
		td.srv.conns.mu.Unlock()
		if tcp != 8 {
			t.Errorf("%d of %d connections from 64 loopback addresses admitted, want the per-peer bound, 8", tcp, len(conns))
		}
		holderTraces(t, td, holderUID, token.IssueOptions{})
	})

	t.Run("item7/tcp_flood_leaves_the_socket_alone", func(t *testing.T) {
		// Was a hole: the total bound was shared, so connections over
		// TCP from as many addresses as it took (a remote party has
		// many) locked the unix socket's users out. Here one address
		// stands for many: the per-peer bound is the total's.
		td := startDaemon(t, daemonOpts{shared: true, listen: "127.0.0.1:0", tls: tlsConfig, configure: func(_ *testDaemon, c *Config) {
			c.MaxConns, c.MaxConnsPerPeer, c.PreAuthTimeout = 16, 64, time.Minute
		}})
		idleFrom(t, td.srv.TCPAddr().String(), 1, 32)
		waitConns(t, td, func() bool { return td.srv.conns.tcp == 16 })
		holderTraces(t, td, holderUID, token.IssueOptions{})
	})

	t.Run("item6/unrecorded_refusals_are_not_read", func(t *testing.T) {
		// Was a hole: every call's request was read before its token
		// was looked at, up to gRPC's 2 MiB, so a peer past its share
		// of refusal records still made the daemon take in 2 MiB a call
		// (16 calls on each of its 32 connections at once). A refusal that
		// is only counted now costs no read. The flooder is nobody, in
		// a process of its own, so that only the daemon's allocations
		// are counted here.
		td := startDaemon(t, daemonOpts{shared: true, listen: "127.0.0.1:0", tls: tlsConfig, configure: func(_ *testDaemon, c *Config) {
			c.RefusalBurst, c.RefusalRate = 1, 0.001
		}})
		dir := filepath.Dir(td.socket)
		ca := filepath.Join(dir, "ca.pem")
		if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o644); err != nil {
			t.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c := startChild(t, dir, flooderUID, "tcpflood", "TB_ADDR="+td.srv.TCPAddr().String(), "TB_CA="+ca, "TB_N=33", fmt.Sprintf("TB_NAME_SIZE=%d", 1<<20))
		if out, err := c.wait(t); err != nil || out != "Unauthenticated 33" {
			t.Fatalf("flooder: %v %q %s", err, out, c.stderr.String())
		}
		runtime.ReadMemStats(&after)
		// The one recorded refusal reads its request (about 8 MB of
		// allocations, decoded and bounded for the log); the others
		// none (42 MB in all before). The count is the whole test
		// process's, and the rest of it allocates too while the flood
		// lasts: 8-19 MB in all under stress-ng --cpu 2, so the bound
		// sits between that and the hole's 42.
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 30<<20 {
			t.Errorf("33 refusals of 1 MiB requests, 32 of them only counted, cost the daemon %d MB", grew>>20)
		}
		td.stop(t)
		recs := auditRecords(t, td.auditLog)
		if got := len(only(recs, audit.EventTraceRefused, nil)); got != 1 {
			t.Errorf("%d refusals recorded, want 1", got)
		}
		if got := sumHeld(recs, "ip:loopback", "refusals_unrecorded"); got != 32 {
			t.Errorf("%d refusals counted, want 32", got)
		}
	})

	t.Run("item6/refusals_from_loopback_aliases", func(t *testing.T) {
		// Was a hole: each address had its own share of refusal
		// records, so a local user cycling through 127.0.0.0/8 wrote
		// as many as it liked, and rotation deleted the history an
		// administrator needs.
		td := startDaemon(t, daemonOpts{listen: "127.0.0.1:0", tls: tlsConfig, configure: func(_ *testDaemon, c *Config) {
			c.RefusalBurst, c.RefusalRate = 2, 0.001
		}})
		addr := td.srv.TCPAddr().String()
		const n = 40
		for i := range n {
			refusedFrom(t, addr, pool, fmt.Sprintf("127.0.%d.%d", i/200, 2+i%200))
		}
		td.stop(t)
		recs := auditRecords(t, td.auditLog)
		if got := len(only(recs, audit.EventTraceRefused, nil)); got != 2 {
			t.Errorf("%d refusals from %d loopback addresses recorded, want the burst of one peer, 2", got, n)
		}
		if got := sumHeld(recs, "ip:loopback", "refusals_unrecorded"); got != n-2 {
			t.Errorf("%d refusals counted for ip:loopback, want %d", got, n-2)
		}
	})
}

// calls is the count the hostile plugin's do=count printed (0 if none).
func calls(out string) int {
	n := 0
	if i := strings.Index(out, "@calls: "); i >= 0 {
		fmt.Sscanf(out[i:], "@calls: %d", &n)
	}
	return n
}

// refusedUnlessItRuns starts req and returns its refusal; if it attaches
// instead, attack runs with its probes attached (the test then says what
// the attack did), and the trace, ended, is returned.
func refusedUnlessItRuns(t *testing.T, d *testDaemon, tok string, req *pb.TraceRequest, attack func()) (*CallError, *traceRun) {
	t.Helper()
	r := d.start(t, tok, req)
	if d.attachedOrDone(t, r) {
		t.Errorf("the request was admitted and attached")
		attack()
		close(r.interrupt)
		r.wait(t)
		return nil, r
	}
	var ce *CallError
	var ee *ExitError
	switch {
	case errors.As(r.err, &ce):
	case errors.As(r.err, &ee): // a script error, on stderr
		ce = &CallError{Message: r.stderr.String(), Script: true}
	default:
		t.Fatalf("err = %v, want a refusal; stdout %q", r.err, r.stdout.String())
	}
	return ce, nil
}

// signedPlugin builds the test plugins plugins/testdata/plugins/NAME
// into a directory of their own and signs them with a key made for the
// test.
func signedPlugin(t *testing.T, names ...string) (string, *attest.PrivateKey) {
	t.Helper()
	dir := t.TempDir()
	key, err := attest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		bin := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-o", bin, "../../plugins/testdata/plugins/"+name)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		if _, err := attest.SignArtifact(bin, key, attest.ArtifactPredicate{Role: attest.RoleGenerator, Version: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	return dir, key
}

// idleFrom opens perAddr idle TCP connections to addr from each of n
// loopback addresses (127.0.1.1 on), and returns those the daemon
// accepted; they close with the test.
func idleFrom(t *testing.T, addr string, n, perAddr int) []net.Conn {
	t.Helper()
	var out []net.Conn
	for i := range n {
		src := &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(1+i))}
		for range perAddr {
			c, err := (&net.Dialer{LocalAddr: src}).Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			out = append(out, c)
		}
	}
	return out
}

// refusedFrom makes one trace request without a token to addr, over TLS
// from the local address src, and checks that it is refused.
func refusedFrom(t *testing.T, addr string, pool *x509.CertPool, src string) {
	t.Helper()
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13})),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return dialer.DialContext(ctx, "tcp", a) }))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := pb.NewBrokerClient(conn).Trace(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	stream.Send(&pb.TraceInput{Input: &pb.TraceInput_Request{Request: &pb.TraceRequest{Source: []byte("BEGIN { exit(); }")}}})
	if _, err := stream.Recv(); err == nil || !strings.Contains(err.Error(), "a token is required") {
		t.Fatalf("from %s: %v, want a refusal", src, err)
	}
}

// hugeHeaders opens an HTTP/2 connection to the daemon's socket and
// starts calls with headers of size bytes each, then waits for the
// answer to a PING sent after them: the daemon has read every frame
// before it. The connection stays open.
func hugeHeaders(t *testing.T, socket string, calls, size int) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	fr.WriteSettings()
	pong := make(chan struct{})
	go func() {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				close(pong)
				return
			}
			if p, ok := f.(*http2.PingFrame); ok && p.IsAck() {
				close(pong)
				io.Copy(io.Discard, c)
				return
			}
		}
	}()
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for i := range calls {
		block.Reset()
		for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/tracebroker.broker.v1.Broker/Trace"},
			{":authority", "localhost"}, {"content-type", "application/grpc"}, {"te", "trailers"}, {"x-pad", strings.Repeat("a", size)}} {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		b, id := block.Bytes(), uint32(2*i+1)
		n := min(len(b), 16<<10)
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: b[:n], EndHeaders: n == len(b)}); err != nil {
			break // the daemon hung up: it refused them
		}
		for b = b[n:]; len(b) > 0; b = b[n:] {
			n = min(len(b), 16<<10)
			if err := fr.WriteContinuation(id, n == len(b), b[:n]); err != nil {
				break
			}
		}
	}
	fr.WritePing(false, [8]byte{1})
	select {
	case <-pong:
	case <-time.After(30 * time.Second):
		t.Fatal("no answer to the PING")
	}
	return c
}

// childTCPFlood is childFlood over TLS to addr, trusting the certificate
// in the PEM file ca.
func childTCPFlood(addr, ca string, n, nameSize int) error {
	b, err := os.ReadFile(ca)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return fmt.Errorf("%s: no certificate", ca)
	}
	c, err := Dial(Target{Addr: addr, TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}})
	if err != nil {
		return err
	}
	defer c.Close()
	return flood(c, n, nameSize)
}
