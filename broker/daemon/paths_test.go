package daemon

import (
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/attest/store"
	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
	"github.com/tracebroker/tracebroker/broker/token"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
	"github.com/tracebroker/tracebroker/internal/racetest"
	"github.com/tracebroker/tracebroker/plugins"
)

// pathsWorkload is the traced program of the path attacks: add_one is
// called exactly argv[1] times, secret_fn never.
const pathsWorkload = `#include <stdlib.h>
__attribute__((noinline)) int add_one(int x) { __asm__ volatile(""); return x + 1; }
__attribute__((noinline)) int add_two(int x) { __asm__ volatile(""); return x + 2; }
__attribute__((noinline)) int secret_fn(int x) { __asm__ volatile(""); return x * 3; }
int main(int argc, char **argv) {
	int n = argc > 1 ? atoi(argv[1]) : 1, s = 0;
	for (int i = 0; i < n; i++)
		s = add_one(s);
	if (argc > 2)
		s = secret_fn(add_two(s));
	return s == n - 1000000;
}
`

// pathsEnv is a directory a token may probe (allowed, in its scopes)
// beside one it may not (private, 0700 as /root's files are): a copy of
// the workload in each, and what else an attacker could point at.
type pathsEnv struct {
	allowed, private string
	prog, secret     string // the workload, in scope and out of it
}

func newPathsEnv(t *testing.T) *pathsEnv {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("the path attacks' workload is built with gcc, which is not installed")
	}
	root := t.TempDir()
	e := &pathsEnv{allowed: filepath.Join(root, "allowed"), private: filepath.Join(root, "private")}
	if err := os.Mkdir(e.allowed, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(e.private, 0o700); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(root, "work.c")
	if err := os.WriteFile(src, []byte(pathsWorkload), 0o644); err != nil {
		t.Fatal(err)
	}
	e.prog, e.secret = filepath.Join(e.allowed, "prog"), filepath.Join(e.private, "secret")
	for _, out := range []string{e.prog, e.secret} {
		if b, err := exec.Command(gcc, "-O0", "-o", out, src).CombinedOutput(); err != nil {
			t.Fatalf("gcc: %v\n%s", err, b)
		}
	}
	return e
}

// symbolOffset is a function's file offset in bin, read with debug/elf
// (independently of bpf/uprobe).
func symbolOffset(t *testing.T, bin, name string) uint64 {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, _ := f.Symbols()
	for _, s := range syms {
		if s.Name != name {
			continue
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && s.Value >= p.Vaddr && s.Value < p.Vaddr+p.Filesz {
				return s.Value - p.Vaddr + p.Off
			}
		}
	}
	t.Fatalf("%s not in %s", name, bin)
	return 0
}

// refusal runs req and returns the refusal's code and message, failing
// the test if it ran.
func (d *testDaemon) refusal(t *testing.T, tok string, req *pb.TraceRequest) (string, string) {
	t.Helper()
	r := d.start(t, tok, req)
	r.wait(t)
	var ce *CallError
	if !errors.As(r.err, &ce) {
		t.Fatalf("err = %v (%T), want a refusal; stdout %q stderr %q", r.err, r.err, r.stdout.String(), r.stderr.String())
	}
	return ce.Code, ce.Message
}

// TestAttacksPaths: a token holder's uprobes reach only the files its
// scopes allow, through any symlink and any race, and a refusal says
// nothing of what lies outside; attestations cannot fill the disk; a
// plugin cannot name its probes other than where they attach.
func TestAttacksPaths(t *testing.T) {
	needKernel(t)
	e := newPathsEnv(t)
	pluginDir, pluginKey := misnamedPlugin(t)
	d := startDaemon(t, daemonOpts{configure: func(_ *testDaemon, c *Config) {
		c.Plugins = &plugins.Host{Dir: pluginDir, Trust: attest.NewTrust(pluginKey.Public()), StartTimeout: 30 * time.Second, CallTimeout: 30 * time.Second}
		// item9/source_stored_once sends a script of 1 MB, past the
		// default limit.
		c.Limits.MaxSource = 2 << 20
	}})
	scope := "trace probe:uprobe:" + e.allowed + "/*:*"
	tok := d.token(t, token.IssueOptions{Subject: "mallory", Scope: scope})
	uprobe := func(path, fn string) *pb.TraceRequest {
		return &pb.TraceRequest{Source: fmt.Appendf(nil, "uprobe:%s:%s { @ = count(); }", path, fn)}
	}

	t.Run("item3/symlink_out_of_scope_tells_nothing", func(t *testing.T) {
		// What /root/private/x could be: missing, not ELF, stripped, an
		// ELF file with the function asked for, or without it. The
		// token holder plants a symlink to it in a directory its scope
		// allows; every answer must be the same.
		stripped := filepath.Join(e.private, "stripped")
		if b, err := exec.Command("strip", "-o", stripped, e.secret).CombinedOutput(); err != nil {
			t.Fatalf("strip: %v %s", err, b)
		}
		text := filepath.Join(e.private, "text")
		os.WriteFile(text, []byte("#!/bin/sh\n"), 0o700)
		link := filepath.Join(e.allowed, "x")
		var first string
		for _, target := range []string{filepath.Join(e.private, "nosuch"), text, stripped, e.secret} {
			for _, fn := range []string{"secret_fn", "no_such_fn", "secret*", "*"} {
				os.Remove(link)
				if err := os.Symlink(target, link); err != nil {
					t.Fatal(err)
				}
				code, msg := d.refusal(t, tok, uprobe(link, fn))
				got := code + ": " + msg
				if first == "" {
					first = got
					t.Logf("the one refusal: %s", got)
				}
				if got != first || strings.Contains(msg, e.private) {
					t.Errorf("symlink to %s, function %s: %s; the other refusals are %s", target, fn, got, first)
				}
			}
		}
		if want := fmt.Sprintf(`PermissionDenied: the token of "mallory" does not allow uprobes on %s (its probe scopes: probe:uprobe:%s/*:*)`, link, e.allowed); first != want {
			t.Errorf("refusal %q, want %q", first, want)
		}
		// So is one through a symlinked directory, and a relative link.
		tok2 := d.token(t, token.IssueOptions{Subject: "mallory", Scope: "trace probe:uprobe:" + e.allowed + "/**"})
		os.Symlink(e.private, filepath.Join(e.allowed, "dir"))
		os.Symlink("../private/secret", filepath.Join(e.allowed, "rel"))
		for _, p := range []string{filepath.Join(e.allowed, "dir", "secret"), filepath.Join(e.allowed, "dir", "nosuch"), filepath.Join(e.allowed, "rel")} {
			if code, msg := d.refusal(t, tok2, uprobe(p, "add_one")); code != "PermissionDenied" || !strings.HasPrefix(msg, `the token of "mallory" does not allow uprobes on `+p+" (") {
				t.Errorf("%s: %s %s", p, code, msg)
			}
		}
	})

	t.Run("item3/real_path_is_what_is_judged", func(t *testing.T) {
		// A symlink within the scope leads to the file it names: the
		// probe, its attestation, its audit record and the session list
		// all name the real path, and it counts that file's calls.
		link := filepath.Join(e.allowed, "in-scope-link")
		os.Symlink("prog", link)
		r := d.start(t, tok, &pb.TraceRequest{Source: fmt.Appendf(nil, "uprobe:%s:add_one { @ = count(); }", link), DurationMs: 60_000})
		ss := d.attached(t, 1, r)
		want := "uprobe:" + e.prog + ":add_one"
		if len(ss) != 1 || len(ss[0].Probes) != 1 || ss[0].Probes[0] != want {
			t.Errorf("sessions list: %v, want the probe %s", ss, want)
		}
		if err := exec.Command(e.prog, "6").Run(); err != nil {
			t.Fatal(err)
		}
		close(r.interrupt)
		r.wait(t)
		if r.err != nil || !strings.HasSuffix(r.stdout.String(), "@: 6\n") {
			t.Errorf("err %v, stdout %q", r.err, r.stdout.String())
		}
		files, _ := filepath.Glob(filepath.Join(d.attest, "*"+r.res.SessionID+"*.dsse.json"))
		if len(files) != 1 {
			t.Fatalf("attestations: %v", files)
		}
		b, _ := os.ReadFile(files[0])
		var st struct {
			Predicate attest.ProgramPredicate `json:"predicate"`
		}
		json.Unmarshal(decodeDSSE(t, b), &st)
		if st.Predicate.Program.Name != want {
			t.Errorf("attested %q, want %q", st.Predicate.Program.Name, want)
		}
		audit, _ := os.ReadFile(d.auditLog)
		if !strings.Contains(string(audit), `"probe":"`+want+`"`) {
			t.Errorf("the audit log's admission does not name %s", want)
		}
	})

	t.Run("item3/rename_exchange_race", func(t *testing.T) {
		// In an allowed directory, a copy of the workload and a symlink
		// to the one outside the scope trade places (renameat2
		// RENAME_EXCHANGE) all along, while the token holder asks for
		// probes on both names. A probe that attaches must be on the
		// allowed copy: it counts the calls made through a name that is
		// not swapped (.keep) and never the secret binary's.
		swapFile := filepath.Join(e.allowed, "swap-file")
		swapLink := filepath.Join(e.allowed, "swap-link")
		keep := filepath.Join(e.allowed, ".keep")
		b, _ := os.ReadFile(e.prog)
		os.WriteFile(swapFile, b, 0o755)
		if err := os.Link(swapFile, keep); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(e.secret, swapLink); err != nil {
			t.Fatal(err)
		}
		racetest.Exchange(t, swapFile, swapLink)
		attached, refused := 0, 0
		for i := 0; i < 80 && (attached < 4 || refused < 4); i++ {
			name := []string{swapFile, swapLink}[i%2]
			r := d.start(t, tok, &pb.TraceRequest{Source: fmt.Appendf(nil, "uprobe:%s:add_one { @ = count(); }", name), DurationMs: 60_000})
			if !d.attachedOrDone(t, r) {
				var ce *CallError
				if !errors.As(r.err, &ce) || ce.Code != "PermissionDenied" || ce.Message != fmt.Sprintf(`the token of "mallory" does not allow uprobes on %s (its probe scopes: probe:uprobe:%s/*:*)`, name, e.allowed) {
					t.Errorf("attempt %d: %v; stderr %q", i, r.err, r.stderr.String())
				}
				refused++
				continue
			}
			attached++
			for _, run := range [][]string{{e.secret, "5", "x"}, {keep, "2"}, {e.secret, "3"}} {
				if err := exec.Command(run[0], run[1:]...).Run(); err != nil {
					t.Fatal(err)
				}
			}
			close(r.interrupt)
			r.wait(t)
			if r.err != nil || !strings.HasSuffix(r.stdout.String(), "\n@: 2\n") {
				t.Errorf("attempt %d on %s: err %v, stdout %q: the probe is not (only) on the allowed file", i, name, r.err, r.stdout.String())
			}
		}
		t.Logf("%d attached on the allowed file, %d refused", attached, refused)
		if attached == 0 || refused == 0 {
			t.Errorf("the race was not run: %d attached, %d refused", attached, refused)
		}
	})

	t.Run("item13/raced_readlink", func(t *testing.T) {
		// A name that is a symlink one moment and a file the next, both
		// in scope: every request attaches; none fails with the bare
		// "invalid argument" of a readlink that lost the race.
		a, b := filepath.Join(e.allowed, "flip-a"), filepath.Join(e.allowed, "flip-b")
		data, _ := os.ReadFile(e.prog)
		os.WriteFile(a, data, 0o755)
		os.Symlink("prog", b)
		racetest.Exchange(t, a, b)
		for i := range 16 {
			r := d.start(t, tok, &pb.TraceRequest{Source: fmt.Appendf(nil, "uprobe:%s:add_one { @ = count(); }", []string{a, b}[i%2]), DurationMs: 1})
			r.wait(t)
			if r.err != nil {
				t.Errorf("attempt %d: %v %s", i, r.err, r.stderr.String())
			}
		}
	})

	t.Run("item9/source_stored_once", func(t *testing.T) {
		// 20 probes and a script of 1 MB of comments: the source is
		// written once, not once per program (26 MiB before).
		var probes []string
		for _, sc := range []string{"getcwd", "getpid", "getppid", "getuid", "geteuid", "getgid", "getegid", "gettid", "getpgrp", "getpgid",
			"getsid", "getpriority", "getrlimit", "getrusage", "getitimer", "getcpu", "getgroups", "getresuid", "getresgid", "gettimeofday"} {
			probes = append(probes, "tracepoint:syscalls:sys_enter_"+sc)
		}
		script := strings.Repeat("// a comment of the kind that fills a megabyte\n", 1_000_000/48) +
			strings.Join(probes, ",\n") + " { @[probe] = count(); }\n"
		tok := d.token(t, token.IssueOptions{Subject: "bulky", Scope: "trace probe:tracepoint:syscalls:sys_enter_get*"})
		before := dirBytes(t, d.attest)
		r := d.start(t, tok, &pb.TraceRequest{Source: []byte(script), DurationMs: 200})
		r.wait(t)
		if r.err != nil {
			t.Fatalf("trace: %v %+v %s", r.err, r.res, r.stderr.String())
		}
		files, _ := filepath.Glob(filepath.Join(d.attest, "*"+r.res.SessionID+"*.dsse.json"))
		srcs, _ := filepath.Glob(filepath.Join(d.attest, store.SourcesDir, "sha256-"+attest.SourceDigest([]byte(script))))
		written := dirBytes(t, d.attest) - before
		t.Logf("%d attestations and %d source of %d bytes: %d bytes written", len(files), len(srcs), len(script), written)
		if len(files) != 20 || len(srcs) != 1 {
			t.Fatalf("%d attestations, %d sources; want 20 and 1", len(files), len(srcs))
		}
		if written > int64(len(script))+20*16<<10 {
			t.Errorf("%d bytes written for a %d-byte script", written, len(script))
		}
	})

	t.Run("item9/flood_cannot_evict_others", func(t *testing.T) {
		// A store of 120 KB, 110 KB a subject, each trace about 13 KB:
		// bob attests three traces, alice floods. The store fills, and
		// alice's oldest go, each with an audit record; bob's stay.
		f := startDaemon(t, daemonOpts{configure: func(_ *testDaemon, c *Config) { c.AttestMaxBytes, c.AttestMaxBytesPerSubject = 120_000, 110_000 }})
		trace := func(tok string, i int) string {
			t.Helper()
			r := f.start(t, tok, &pb.TraceRequest{Source: fmt.Appendf(nil, "// %s %d %s\nBEGIN { exit(); }", tok[len(tok)-16:], i, strings.Repeat("x", 10_000))})
			r.wait(t)
			if r.err != nil {
				t.Fatalf("trace %d: %v", i, r.err)
			}
			return r.res.SessionID
		}
		bob := f.token(t, token.IssueOptions{Subject: "bob", Scope: "trace"})
		alice := f.token(t, token.IssueOptions{Subject: "alice", Scope: "trace"})
		var bobs []string
		for i := range 3 {
			bobs = append(bobs, trace(bob, i))
		}
		for i := range 40 {
			trace(alice, i)
		}
		for _, id := range bobs {
			if files, _ := filepath.Glob(filepath.Join(f.attest, "*"+id+"*")); len(files) != 1 {
				t.Errorf("bob's session %s: attestations %v", id, files)
			}
		}
		a, total := storeUsage(t, f, "alice")
		b, _ := storeUsage(t, f, "bob")
		t.Logf("alice holds %d bytes, bob %d, the store %d", a, b, total)
		if total > 120_000 || a > 120_000-b || a < 120_000-b-15_000 {
			t.Errorf("alice holds %d bytes, bob %d, the store %d (limit 120000)", a, b, total)
		}
		f.stop(t)
		auditEvents(t, f.auditLog) // verifies the chain
		log, _ := os.ReadFile(f.auditLog)
		rotated := 0
		for _, line := range strings.Split(string(log), "\n") {
			var rec struct {
				Event string
				Data  struct{ Subject, Reason string }
			}
			if json.Unmarshal([]byte(line), &rec) != nil || rec.Event != eventAttestRotated {
				continue
			}
			rotated++
			if rec.Data.Subject != "alice" || rec.Data.Reason != "store limit" {
				t.Errorf("rotation %s", line)
			}
		}
		if rotated == 0 {
			t.Error("no rotation in the audit log")
		}
	})

	gen := d.token(t, token.IssueOptions{Subject: "mallory", Scope: "trace gen:misnamed probe:tracepoint:syscalls:sys_enter_getcwd " + strings.TrimPrefix(scope, "trace ")})
	for _, tt := range []struct {
		name   string
		params map[string]string
		code   string
		reason string
		prog   string // the kernel's name of the program, were it loaded
	}{
		{"item10/tracepoint_named_getcwd_attaching_getppid",
			map[string]string{"name": "tracepoint:syscalls:sys_enter_getcwd", "category": "syscalls", "event": "sys_enter_getppid"},
			"InvalidArgument", `probe "tracepoint:syscalls:sys_enter_getcwd" is not what it attaches to: tracepoint:syscalls:sys_enter_getppid`, "sys_enter_getpp"},
		{"item10/honestly_named_is_judged_by_its_scope",
			map[string]string{"name": "tracepoint:syscalls:sys_enter_getppid", "category": "syscalls", "event": "sys_enter_getppid"},
			"PermissionDenied", `does not allow probe tracepoint:syscalls:sys_enter_getppid`, "sys_enter_getpp"},
		{"item10/uprobe_named_in_scope_attaching_outside",
			map[string]string{"kind": "uprobe", "name": "uprobe:" + e.prog + ":add_one", "path": e.secret, "offset": fmt.Sprint(symbolOffset(t, e.secret, "add_one"))},
			"InvalidArgument", `is not what it attaches to: uprobe at offset`, "uprobe__tmp_Tes"},
		{"item10/uprobe_outside_honestly_named",
			map[string]string{"kind": "uprobe", "name": "uprobe:" + e.secret + ":add_one", "path": e.secret, "offset": fmt.Sprint(symbolOffset(t, e.secret, "add_one"))},
			"PermissionDenied", `does not allow uprobes on ` + e.secret, "uprobe__tmp_Tes"},
		{"item10/uprobe_named_add_one_at_secret_fn",
			map[string]string{"kind": "uprobe", "name": "uprobe:" + e.prog + ":add_one", "path": e.prog, "offset": fmt.Sprint(symbolOffset(t, e.prog, "secret_fn"))},
			"InvalidArgument", fmt.Sprintf(`is not what it attaches to: uprobe at offset %#x of %s`, symbolOffset(t, e.prog, "secret_fn"), e.prog), "uprobe__tmp_Tes"},
		{"item10/interval_of_a_microsecond_named_a_second",
			map[string]string{"kind": "interval", "name": "interval:s:1", "period": "1000"},
			"InvalidArgument", `probe "interval:s:1" is not what it attaches to: interval every 1000 ns`, "interval_s_1"},
		{"item10/rawtracepoint",
			map[string]string{"kind": "rawtracepoint", "name": "rawtracepoint:sys_enter", "event": "sys_exit"},
			"InvalidArgument", `is not what it attaches to: rawtracepoint:sys_exit`, "rawtracepoint_s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := kerneltest.LoadedIDs(t)
			code, msg := d.refusal(t, gen, &pb.TraceRequest{Generator: "misnamed", Params: tt.params})
			t.Logf("%s: %s", code, msg)
			if code != tt.code || !strings.Contains(msg, tt.reason) {
				t.Errorf("refused with %s %q, want %s containing %q", code, msg, tt.code, tt.reason)
			}
			if left := kerneltest.LeftLoaded(t, before, tt.prog, 0); len(left) > 0 {
				t.Errorf("programs loaded: %v", left)
			}
		})
	}
	t.Run("item10/honest_plugin_runs", func(t *testing.T) {
		r := d.start(t, gen, &pb.TraceRequest{Generator: "misnamed", DurationMs: 100,
			Params: map[string]string{"name": "tracepoint:syscalls:sys_enter_getcwd", "category": "syscalls", "event": "sys_enter_getcwd"}})
		r.wait(t)
		if r.err != nil {
			t.Errorf("the honest program: %v %+v %s", r.err, r.res, r.stderr.String())
		}
	})
}

// attachedOrDone waits until r's session is attached (true) or r ended
// (false).
func (d *testDaemon) attachedOrDone(t *testing.T, r *traceRun) bool {
	t.Helper()
	c := d.client(t, "")
	defer c.Close()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		select {
		case <-r.done:
			return false
		default:
		}
		ss, err := c.Sessions(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range ss {
			if s.Mode != "" {
				return true
			}
		}
	}
	t.Fatal("the session neither attached nor ended")
	return false
}

// storeUsage is what the daemon's attestation store charges subject,
// and its total.
func storeUsage(t *testing.T, d *testDaemon, subject string) (int64, int64) {
	t.Helper()
	a, total, err := d.srv.attest.Usage(subject)
	if err != nil {
		t.Fatal(err)
	}
	return a, total
}

// dirBytes is the size of the files under dir.
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	filepath.WalkDir(dir, func(p string, de os.DirEntry, err error) error {
		if err == nil && de.Type().IsRegular() {
			if fi, err := de.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// misnamedPlugin builds plugins/testdata/plugins/misnamed into a plugin
// directory, signed for role generator by a key it returns.
func misnamedPlugin(t *testing.T) (string, *attest.PrivateKey) {
	t.Helper()
	return signedPlugin(t, "misnamed")
}
