package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/broker"
	"github.com/tracebroker/tracebroker/broker/audit"
	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/token"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// readWorkload is what the read-scope attacks trace: this process's
// getcwd calls, and a copy of coreutils' true under a name of its own,
// run with a known argument, which calls libc's
// textdomain("coreutils") once per run.
type readWorkload struct {
	true string // the copy's path; its comm is its base name
	libc string // libc's real path, for uprobes
}

func newReadWorkload(t *testing.T) *readWorkload {
	t.Helper()
	// A short directory: str() reads at most 63 bytes of the path.
	dir, err := os.MkdirTemp("", "tbrd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	w := &readWorkload{true: filepath.Join(dir, "tbrdtrue")}
	b, err := os.ReadFile("/usr/bin/true")
	if err != nil {
		t.Skipf("no /usr/bin/true to run: %v", err)
	}
	if err := os.WriteFile(w.true, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if w.libc, err = filepath.EvalSymlinks("/lib/x86_64-linux-gnu/libc.so.6"); err != nil {
		t.Skipf("no libc to put a uprobe on: %v", err)
	}
	return w
}

// runTrue runs the copy n times as `tbrdtrue a`: with one argument,
// true looks for --help and --version, and so sets up its messages'
// textdomain first.
func (w *readWorkload) runTrue(t *testing.T, n int) {
	t.Helper()
	for range n {
		if out, err := exec.Command(w.true, "a").CombinedOutput(); err != nil {
			t.Fatalf("%s: %v %s", w.true, err, out)
		}
	}
}

// errorLine is the first line of the error the daemon refuses a script
// with: the expression at (its first occurrence), what it does, and the
// scope it needs.
func errorLine(script, at, what, scope string) string {
	i := strings.Index(script, at)
	line := 1 + strings.Count(script[:i], "\n")
	col := i - strings.LastIndexByte(script[:i], '\n')
	return fmt.Sprintf("stdin:%d:%d-%d: ERROR: %s: the token of \"alice\" needs scope %s\n", line, col, col+len(at), what, scope)
}

// TestAttacksReadScope: a token holder cannot read memory its scopes do
// not grant. Each attack of issue 15's item 1 is refused through the real
// daemon before anything is loaded, naming the expression and the scope
// it needs, and the refusal is audited; the same script runs with that
// scope; and the everyday reads of a probe's context and of the user
// memory its pointers reach run with probe scopes alone, with exact
// counts.
func TestAttacksReadScope(t *testing.T) {
	needKernel(t)
	d := startDaemon(t, daemonOpts{})
	w := newReadWorkload(t)
	pid := os.Getpid()
	getcwd := "trace probe:tracepoint:syscalls:sys_enter_getcwd"
	comm := filepath.Base(w.true)
	getcwdN := func(t *testing.T) { kerneltest.Syscalls(3, 0) }
	trueN := func(t *testing.T) { w.runTrue(t, 2) }
	exact := func(want string) func(string) error {
		return func(got string) error {
			if got != want {
				return fmt.Errorf("stdout %q, want %q", got, want)
			}
			return nil
		}
	}
	matches := func(re string) func(string) error {
		return func(got string) error {
			if !regexp.MustCompile(re).MatchString(got) {
				return fmt.Errorf("stdout %q does not match %s", got, re)
			}
			return nil
		}
	}
	const attach1, attach2 = "Attaching 1 probe...\n", "Attaching 2 probes...\n"
	// kernelCode is the first bytes of a kernel function, as buf()
	// read them: not the zeros of a read that failed.
	kernelCode := func(got string) error {
		if err := matches(`^Attaching 1 probe...\n(\\x[0-9a-f]{2}){4}\n\n\n$`)(got); err != nil {
			return err
		}
		if strings.Contains(got, `\x00\x00\x00\x00`) {
			return fmt.Errorf("stdout %q: the read failed", got)
		}
		return nil
	}
	type refusal struct{ at, what string }
	rows := []struct {
		name   string
		script string
		scopes string
		// need is the scope the script needs beyond scopes ("": none),
		// refused the expressions refusing it names, in order.
		need    string
		refused []refusal
		// work makes the events (nil: the script ends itself); out
		// checks what the run printed once it has the scope.
		work func(*testing.T)
		out  func(string) error
	}{
		{"item1/buf_of_kernel_address_in_begin", `BEGIN { printf("%rx\n", buf(0xffff888000000000, 16)); exit(); }`, "trace", "read:kernel",
			[]refusal{{"buf(0xffff888000000000, 16)", "buf() of an integer reads arbitrary kernel memory"}},
			nil, matches(`^Attaching 1 probe...\n(\\x[0-9a-f]{2}){16}\n\n\n$`)},
		{"item1/str_of_integer", `BEGIN { $s = str(0xffff888000000000); exit(); }`, "trace", "read:kernel",
			[]refusal{{"str(0xffff888000000000)", "str() of an integer reads arbitrary kernel memory"}},
			nil, exact(attach1 + "\n\n")},
		{"item1/buf_of_kaddr", `BEGIN { printf("%rx\n", buf(kaddr("vfs_read"), 4)); exit(); }`, "trace", "read:kernel",
			[]refusal{{`buf(kaddr("vfs_read"), 4)`, "buf() of kaddr() reads arbitrary kernel memory"}, {`kaddr("vfs_read")`, "kaddr() reveals a kernel address"}},
			nil, kernelCode},
		{"item1/kaddr_printed", `BEGIN { printf("%lx\n", kaddr("vfs_read")); exit(); }`, "trace", "read:kernel",
			[]refusal{{`kaddr("vfs_read")`, "kaddr() reveals a kernel address"}},
			nil, matches(`^Attaching 1 probe...\nffffffff[0-9a-f]{8}\n\n\n$`)},
		{"item1/kstack_perf", fmt.Sprintf(`tracepoint:syscalls:sys_enter_getcwd /pid == %d/ { @s = kstack(perf); @ = count(); }`, pid), getcwd, "read:kernel",
			[]refusal{{"kstack(perf)", "kstack(perf) prints raw kernel addresses"}},
			getcwdN, matches(`(?s)^Attaching 1 probe...\n.*\n@: 3\n.*\t[0-9a-f]{16} `)},
		{"item1/ksym_of_a_chosen_value", fmt.Sprintf(`tracepoint:syscalls:sys_enter_getcwd /pid == %d/ { @[ksym(args->size)] = count(); }`, pid), getcwd, "read:kernel",
			[]refusal{{"ksym(args->size)", "ksym() names any address it is given, which reveals where the kernel lies"}},
			getcwdN, matches(`^Attaching 1 probe...\n\n\n@\[.*\]: 3\n$`)},
		{"item1/kernel_pointer_field", fmt.Sprintf(`tracepoint:kmem:kmalloc /pid == %d/ { $b = buf(args->ptr, 8); @ = count(); }`, pid), "trace probe:tracepoint:kmem:kmalloc", "read:kernel",
			[]refusal{{"buf(args->ptr, 8)", "buf() of args->ptr, a kernel pointer, reads kernel memory"}},
			getcwdN, matches(`^Attaching 1 probe...\n\n\n(@: \d+\n)?$`)},
		{"item1/user_pointer_plus_offset", fmt.Sprintf(`tracepoint:syscalls:sys_enter_getcwd /pid == %d/ { $s = str(args->buf + 4096); @ = count(); }`, pid), getcwd, "read:user",
			[]refusal{{"str(args->buf + 4096)", "str() of pointer arithmetic reads arbitrary user memory"}},
			getcwdN, exact(attach1 + "\n\n@: 3\n")},
		{"item1/variable_index", fmt.Sprintf(`tracepoint:syscalls:sys_enter_getcwd /pid == %d/ { $i = 2; $c = args->buf[$i]; @ = count(); }`, pid), getcwd, "read:user",
			[]refusal{{"args->buf[$i]", "[] with an index that is not a constant from 0 to 15 reads arbitrary user memory"}},
			getcwdN, exact(attach1 + "\n\n@: 3\n")},
		{"item1/saved_pointer", fmt.Sprintf("tracepoint:syscalls:sys_enter_getcwd /pid == %d/ { @p[tid] = args->buf; }\ntracepoint:syscalls:sys_exit_getcwd /pid == %d/ { $s = str(@p[tid]); @ = count(); delete(@p[tid]); }", pid, pid),
			"trace probe:tracepoint:syscalls:sys_*_getcwd", "read:user",
			[]refusal{{"str(@p[tid])", "str() of a map value reads arbitrary user memory"}},
			getcwdN, exact(attach2 + "\n\n@: 3\n\n")},
		{"item1/uprobe_arg_plus_offset", fmt.Sprintf(`uprobe:%s:textdomain /comm == "%s"/ { printf("%%s\n", str(arg0 + 1)); }`, w.libc, comm), "trace probe:uprobe:" + w.libc + ":textdomain", "read:user",
			[]refusal{{"str(arg0 + 1)", "str() of a computed address reads arbitrary user memory"}},
			trueN, exact(attach1 + "oreutils\noreutils\n\n\n")},
		// Issue 17 item 5: struct access through BTF reads kernel
		// memory, and curtask is a kernel address.
		{"item5/curtask_struct_field", fmt.Sprintf(`tracepoint:syscalls:sys_enter_getcwd /pid == %d/ { @[curtask->tgid == pid, curtask->real_parent->tgid == %d] = count(); }`, pid, os.Getppid()), getcwd, "read:kernel",
			[]refusal{{"curtask->tgid", "field 'tgid' of struct task_struct, read through BTF, is kernel memory"}, {"curtask", "curtask reveals the current task's kernel address"}},
			getcwdN, exact(attach1 + "\n\n@[1, 1]: 3\n")},
		{"item5/cast_to_struct_pointer", `BEGIN { $p = ((struct task_struct *)0xffff888000000000)->pid; exit(); }`, "trace", "read:kernel",
			[]refusal{{"((struct task_struct *)0xffff888000000000)->pid", "field 'pid' of struct task_struct, read through BTF, is kernel memory"}},
			nil, exact(attach1 + "\n\n")},

		// Everyday scripts: the probe's context and what its user
		// pointers reach come with the probe.
		{"item1/everyday_str_filename", fmt.Sprintf(`tracepoint:syscalls:sys_enter_execve /str(args->filename) == "%s"/ { printf("%%s\n", str(args->filename)); }`, w.true), "trace probe:tracepoint:syscalls:sys_enter_execve", "", nil,
			trueN, exact(attach1 + w.true + "\n" + w.true + "\n\n\n")},
		{"item1/everyday_join_argv", fmt.Sprintf(`tracepoint:syscalls:sys_enter_execve /str(args->filename) == "%s"/ { join(args->argv); }`, w.true), "trace probe:tracepoint:syscalls:sys_enter_execve", "", nil,
			trueN, exact(attach1 + strings.Repeat(w.true+" a\n", 2) + "\n\n")},
		{"item1/everyday_argv_index", fmt.Sprintf(`tracepoint:syscalls:sys_enter_execve /str(args->filename) == "%s"/ { printf("%%s %%s\n", str(args->argv[1]), str(*args->argv)); }`, w.true), "trace probe:tracepoint:syscalls:sys_enter_execve", "", nil,
			trueN, exact(attach1 + strings.Repeat("a "+w.true+"\n", 2) + "\n\n")},
		{"item1/everyday_uprobe_str_arg0", fmt.Sprintf(`uprobe:%s:textdomain /comm == "%s"/ { printf("%%s\n", str(arg0)); }`, w.libc, comm), "trace probe:uprobe:" + w.libc + ":textdomain", "", nil,
			trueN, exact(attach1 + "coreutils\ncoreutils\n\n\n")},
		{"item1/everyday_user_buffer", fmt.Sprintf(`tracepoint:syscalls:sys_enter_getcwd /pid == %d/ { $s = str(args->buf); $c = args->buf[15]; @ = count(); }`, pid), getcwd, "", nil,
			getcwdN, exact(attach1 + "\n\n@: 3\n")},
	}
	attestations := func() int {
		files, _ := filepath.Glob(filepath.Join(d.attest, "*.dsse.json"))
		return len(files)
	}
	run := d.trace
	refusals, admissions := 0, 0
	for _, tt := range rows {
		t.Run(tt.name, func(t *testing.T) {
			if tt.need != "" {
				// Refused with the scopes it has: every expression that
				// needs what is missing named, nothing attested or loaded.
				before := attestations()
				r := run(t, d.token(t, token.IssueOptions{Scope: tt.scopes}), tt.script, nil)
				refusals++
				var ce *CallError
				if !errors.As(r.err, &ce) || ce.Code != "PermissionDenied" || !ce.Script {
					t.Fatalf("err = %v (%T %+v), want a PermissionDenied script refusal; stdout %q", r.err, r.err, ce, r.stdout.String())
				}
				var want []string
				for _, f := range tt.refused {
					want = append(want, errorLine(tt.script, f.at, f.what, tt.need))
				}
				if lines := firstLines(ce.Message); lines != strings.Join(want, "") {
					t.Errorf("refused with:\n%s\nwant errors:\n%s", ce.Message, strings.Join(want, ""))
				}
				if r.stdout.Len() > 0 {
					t.Errorf("stdout = %q", r.stdout.String())
				}
				if n := attestations(); n != before {
					t.Errorf("%d programs attested, want none", n-before)
				}
			}
			// With the scope, it runs.
			r := run(t, d.token(t, token.IssueOptions{Scope: strings.TrimSpace(tt.scopes + " " + tt.need)}), tt.script, tt.work)
			admissions++
			if r.err != nil {
				t.Fatalf("with %s: %v\n%s", tt.need, r.err, r.stderr.String())
			}
			if err := tt.out(r.stdout.String()); err != nil {
				t.Error(err)
			}
		})
	}
	// Root on the socket keeps bpftrace's freedom.
	t.Run("item1/administrator_unrestricted", func(t *testing.T) {
		r := run(t, "", `BEGIN { printf("%rx\n", buf(kaddr("vfs_read"), 4)); exit(); }`, nil)
		admissions++
		if r.err != nil {
			t.Fatalf("as root: %v\n%s", r.err, r.stderr.String())
		}
		if err := kernelCode(r.stdout.String()); err != nil {
			t.Error(err)
		}
	})
	d.stop(t)
	// Every refusal is audited with the scope it needed; every other run
	// was admitted.
	recs := auditRecords(t, d.auditLog)
	scoped, admitted := 0, 0
	for _, r := range recs {
		switch r.Event {
		case "trace.refused":
			if r.Data["stage"] != "scope" || !strings.Contains(fmt.Sprint(r.Data["reason"]), `the token of "alice" needs scope read:`) {
				t.Errorf("refusal %v", r.Data)
			}
			scoped++
		case "trace.admitted":
			admitted++
		}
	}
	if scoped != refusals || admitted != admissions {
		t.Errorf("audit: %d refusals, %d admissions; want %d, %d", scoped, admitted, refusals, admissions)
	}
}

// firstLines keeps the first line of each error of a script error's
// text (the line with the position), dropping source and caret lines.
func firstLines(text string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(text, "\n") {
		if strings.HasPrefix(l, "stdin:") {
			b.WriteString(l)
		}
	}
	return b.String()
}

// auditRecord is one record of the audit log, as tests read it.
type auditRecord struct {
	Event string         `json:"event"`
	Data  map[string]any `json:"data"`
	line  string
}

// auditRecords reads the audit log at path, all its files if it
// rotated, once they verify as one chain.
// trace runs script with token tok to its end: when work is given, it
// runs once the probe is attached, and then the trace is interrupted.
func (d *testDaemon) trace(t *testing.T, tok, script string, work func(*testing.T)) *traceRun {
	t.Helper()
	r := d.start(t, tok, &pb.TraceRequest{Name: "stdin", Source: []byte(script)})
	if work != nil {
		d.attached(t, 1, r)
		work(t)
		close(r.interrupt)
	}
	r.wait(t)
	return r
}

func auditRecords(t *testing.T, path string) []auditRecord {
	t.Helper()
	files, err := audit.Files(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.VerifyFiles(files); err != nil {
		t.Fatalf("audit log does not verify: %v", err)
	}
	var out []auditRecord
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			r := auditRecord{line: line}
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
	}
	return out
}

// TestAuthorizeReads: which classes each scope grants, the error for a
// program with no expressions to point at (raw eBPF), and no check
// without a token.
func TestAuthorizeReads(t *testing.T) {
	raw := func(reads program.Reads) *program.Program {
		return &program.Program{Probes: []*program.Probe{{Name: "BEGIN", Kind: program.Begin}, {Name: "tracepoint:a:b", Reads: reads}}}
	}
	const (
		ctx    = program.ReadsContext | program.ReadsUserContext
		user   = program.ReadsUser
		kernel = program.ReadsKernel
		kaddr  = program.ReadsKernelAddr
	)
	for _, tt := range []struct {
		scopes string // "": no token
		reads  program.Reads
		want   string
	}{
		{"", user | kernel | kaddr, ""},
		{"trace probe:**", ctx, ""},
		{"trace probe:**", user | ctx, `gen:x: ERROR: probe tracepoint:a:b reads arbitrary user memory: the token of "alice" needs scope read:user` + "\n"},
		{"trace probe:** read:user", user | ctx, ""},
		{"trace probe:** read:user", kernel, `gen:x: ERROR: probe tracepoint:a:b reads kernel memory: the token of "alice" needs scope read:kernel` + "\n"},
		{"trace probe:** read:kernel", kaddr | kernel, ""},
		{"trace probe:** read:kernel", user | kaddr, "needs scope read:user\n"},
		{"trace probe:**", kernel | kaddr, "reads kernel memory: the token of \"alice\" needs scope read:kernel\n" +
			`gen:x: ERROR: probe tracepoint:a:b reveals kernel addresses: the token of "alice" needs scope read:kernel` + "\n"},
	} {
		var tok *token.Token
		if tt.scopes != "" {
			sc, err := token.ParseScopes(tt.scopes)
			if err != nil {
				t.Fatal(err)
			}
			tok = &token.Token{Subject: "alice", Scopes: sc}
		}
		err := authorizeReads(tok, &broker.Request{Name: "gen:x"})(raw(tt.reads))
		var re *readError
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%q, %s: %v", tt.scopes, tt.reads, err)
		case tt.want != "" && (!errors.As(err, &re) || !strings.HasSuffix(re.Error(), tt.want)):
			t.Errorf("%q, %s: %v, want an error ending %q", tt.scopes, tt.reads, err, tt.want)
		}
	}
}
