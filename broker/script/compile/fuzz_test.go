package compile

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// FuzzCompile: whatever parses, the compiler answers with a program or an
// error list, never a panic, and every error points into the source.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		`tracepoint:syscalls:sys_enter_openat /comm == "bash"/ { @[comm, pid] = count(); printf("%s %d\n", str(args->filename), args->flags); }`,
		`tracepoint:syscalls:sys_exit_openat { @h = hist(args->ret); @l = lhist(args->ret, 0, 100, 10); $x = args->ret > 0 ? "ok" : "fail"; @s[$x] = stats(args->ret); }`,
		`BEGIN { @a[1, "x"] = 1; print(@a); delete(@a[1, "x"]); clear(@a); exit(); } END { printf("%d\n", @b); @b = 2; }`,
		`tracepoint:sched:sched_switch { @[args->prev_comm] = max(args->prev_pid); if (args->next_pid == 0) { @idle = count(); } else { @busy = sum(1); } }`,
		`tracepoint:sched:sched_process_exec { printf("%s\n", str(args->filename)); @t[(pid, comm)] = avg(args->pid); }`,
		`interval:ms:10 { @n = @n + 1; @x += 2; if (@n > 3) { exit(); } }`,
		`tracepoint:syscalls:sys_enter_openat { printf("%c %s\n", *args->filename, str(args->filename, 4)); }`,
		`kfunc:vfs_re*ad, fentry:nf_tables:* { @[probe, func] = count(); } kretfunc:vmlinux:vfs_read /retval > 0/ { @h = hist(retval); @c = sum(*args->pos); }`,
		`BEGIN { printf("%d %s %d\n", curtask->real_parent->pid, curtask->comm, sizeof(struct task_struct)); @[((struct task_struct *)curtask)->se.on_rq] = count(); }`,
		`tp_btf:sched_switch { @[args->next->comm] = max(args->prev->in_execve + args.prev->wide); }`,
		`BEGIN { print(curtask->se); print(curtask->mask); print(curtask->weights[1].weight); print(comm); print(curtask); }`,
		`t:syscalls:sys_enter_openat { $t = curtask; if (pid > 1) { $t = $t->real_parent; } else { $t = (struct task_struct *)@m[tid]; } unroll(2) { $t = $t->real_parent; } @[$t->comm, str($t->filename), **$t->ppid] = count(); }`,
		`BEGIN { @ = offsetof(struct task_struct, se.load.inv_weight) + offsetof(*curtask, comm) + offsetof(curtask->se, on_rq); }`,
		`kfunc:vfs_read { $i = 0; $p = args->file; while ($i < 2) { $p = $p; $i++; } @[*args->pos, $p->f_flags, args->file->f_flags] = count(); }`,
		"struct T { int a; unsigned b:3, c:5; char s[4][2]; union { long l; void *p; }; struct T *next; };\nstruct C { struct T t[3]; }\nu:/bin/work:add_one { $c = (struct C *)arg0; @s[1] = *$c; printf(\"%d %d %s\\n\", $c->t[2].b, @s[1].t[1].a, $c->t[0].s[1]); @x = *((int32 *)arg1 + 3); @p = (uint16 **)arg2; @p += 2; }",
		`BEGIN { printf("%d %s %d\n", $1, str($2), $#); @ = *(uint8 *)($1 + 4); }`,
		"struct F { int m; int n; } struct A { int x[4]; }\nu:/bin/work:add_one { $t = (1, \"s\", ((int8)2, (3, comm)), *(struct F *)arg0, ((struct A *)arg1)->x); @t = $t; print($t); printf(\"%d %s %d\\n\", $t.2.1.0, @t.1, $t.3.m + @t.4[2]); @s = sizeof($t) + sizeof($t.2); @k[$t.2] = $t.3; }",
		`t:syscalls:sys_enter_openat { $p = args->filename; @f[tid] = $p; @g[tid] = @f[tid]; } t:syscalls:sys_exit_openat /@f[tid]/ { $q = pid > 1 ? @g[tid] : 0; $q = $q + 0; printf("%s %s %r\n", str(@f[tid]), str($q, 8), buf(@g[tid], 4)); @f[tid]++; delete(@f[tid]); }`,
		`u:/bin/work:add_one { @[args->c, *args->n, args.n[1], args->us] = count(); printf("%s %d %s\n", str(args->foo), args->foo->c[2], args->foo->b); @s = sizeof(args->c) + ((struct Foo *)arg0)->a; }`,
		// Issue 18's builtins: addresses, cgroup paths, the context, registers, enums.
		"enum E { AA = 1 } struct M { char mac[6]; struct task_struct t; }\ni:ms:1 { @[pton(\"::1\"), macaddr(((struct M *)0)->mac)] = count(); print(pton(\"1.2.3.4\")[1]); @c = cgroup_path(cgroup, \"uni*\"); printf(\"%s %s %d %d\\n\", ntop(pton(\"10.0.0.1\")), macaddr(reg(\"sp\")), ctx->sample_period, AA); }",
		`t:syscalls:sys_enter_nanosleep { @ = args->rqtp->tv_sec; } k:vfs_read { @r = reg("di") + ((struct task_struct *)ctx)->pid; }`,
		// A uprobe.multi probe, its names read by cookie (an even length: see UprobeMulti below).
		`u:/bin/work:add_* { @[probe, func] = count(); printf("%s %s\n", probe, func); } ur:/bin/work:add_* { @r[func] = sum(retval); }`,
	} {
		f.Add(s)
	}
	// Deep and wide: nesting at the parser's bound, long chains.
	for _, d := range deepForms {
		f.Add(d.src(syntax.MaxDepth - 4))
	}
	for _, op := range []string{" && ", " || ", " + ", " == "} {
		f.Add("BEGIN { @x = pid" + strings.Repeat(op+"pid", 300) + "; }")
	}
	types := newFakeTypes()
	f.Fuzz(func(t *testing.T, src string) {
		file, err := syntax.Parse("stdin", []byte(src))
		if err != nil {
			return
		}
		var warns syntax.ErrorList
		var prog *program.Program
		done := make(chan struct{})
		go func() {
			defer close(done)
			// Half the inputs (by their length) compile uprobe
			// wildcards to uprobe.multi probes, half one by one.
			prog, warns, err = Compile(file, Options{Tracepoints: fakeTracepoints{}, Funcs: fakeFuncs{}, BTFTracepoints: fakeBTF{}, Types: types, Uprobes: fakeUprobes{}, Debug: fakeDebug{}, UprobeMulti: len(src)%2 == 0})
		}()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			panic(fmt.Sprintf("Compile takes more than 3s on %q", src))
		}
		check := func(l syntax.ErrorList) {
			for _, e := range l {
				if e.From.Offset > len(src) || e.To.Offset > len(src) {
					t.Fatalf("error %q points outside the source (%d..%d of %d)", e.Msg, e.From.Offset, e.To.Offset, len(src))
				}
			}
			l.Format("stdin", []byte(src))
		}
		check(warns)
		if err == nil {
			// What interpreter mode's collector is told to read fits
			// it, and only a probe judged to read kernel memory reads
			// any.
			for _, p := range prog.Probes {
				if err := collector.CheckReads(p.KReads, p.CtxLen); err != nil {
					t.Fatalf("%s: reads %v: %v", p.Name, p.KReads, err)
				}
				if (len(p.KReads) > 0 || p.Task) && p.Reads&program.ReadsKernel == 0 {
					t.Fatalf("%s: kernel reads %v in a probe judged to read %s", p.Name, p.KReads, p.Reads)
				}
				if p.UprobeMulti() {
					if err := p.CheckName(); err != nil {
						t.Fatalf("a uprobe.multi probe the broker would refuse: %v", err)
					}
				}
			}
		}
		if err != nil {
			l, ok := err.(syntax.ErrorList)
			if !ok {
				t.Fatalf("error %T is not an ErrorList: %v", err, err)
			}
			check(l)
		}
	})
}
