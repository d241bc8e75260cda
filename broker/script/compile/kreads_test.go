package compile

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// kreadsOf compiles src with the fake kernel of these tests: types,
// tracepoints, BTF tracepoints and kernel functions.
func kreadsOf(t *testing.T, src string) *program.Probe {
	t.Helper()
	f, err := syntax.Parse("stdin", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	prog, _, err := Compile(f, Options{Tracepoints: readsTracepoints{}, BTFTracepoints: readsBTF{}, Funcs: fakeFuncs{}, Types: newFakeTypes()})
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	return prog.Probes[len(prog.Probes)-1]
}

// spell writes reads as "task+16+8:4", "ctx24+0:8", "task+152:64s".
func spell(rs []program.KRead) string {
	var out []string
	for _, r := range rs {
		var b strings.Builder
		if r.Task {
			b.WriteString("task")
		} else {
			fmt.Fprintf(&b, "ctx%d", r.Ctx)
		}
		for _, o := range r.Offs {
			fmt.Fprintf(&b, "+%d", o)
		}
		fmt.Fprintf(&b, ":%d", r.Size)
		if r.Str {
			b.WriteString("s")
		}
		out = append(out, b.String())
	}
	return strings.Join(out, " ")
}

// TestKReads: what interpreter mode's collector is told to read for a
// probe, against the fake task_struct (pid at 8, tgid 12, real_parent
// 16, comm 24, se 40, filename 152) and kernel functions; and the probes
// whose reads cannot be made ahead, refused by name.
func TestKReads(t *testing.T) {
	const tp = "t:syscalls:sys_enter_openat "
	for _, tc := range []struct {
		src, reads, kernelOnly string
		task                   bool
	}{
		{tp + `/curtask->pid == 1/ { @ = count(); }`, "task+8:4", "", true},
		{tp + `{ @ = curtask->real_parent->pid; }`, "task+16+8:4", "", true},
		{tp + `{ @ = curtask->real_parent; @b = curtask->real_parent->tgid; @c = curtask->real_parent->pid; }`, "task+16+12:4 task+16+8:4", "", true},
		{tp + `{ @ = curtask->pid; @b = curtask->pid; }`, "task+8:4", "", true},
		{tp + `{ $t = (struct task_struct *)curtask; @[$t->comm] = count(); }`, "task+24:16", "", true},
		{tp + `{ $t = curtask->real_parent; if (pid > 1) { $t = curtask; } @ = $t->tgid; }`, "task+16+12:4 task+12:4", "", true},
		{tp + `{ @ = curtask->se.load.inv_weight; }`, "task+48:4", "", true},
		{tp + `{ @ = curtask->in_iowait; }`, "task+68:1", "", true},
		{tp + `{ @[str(curtask->filename)] = count(); }`, "task+152+0:64s", "", true},
		{tp + `{ @ = *curtask->ppid[0]; }`, "task+128+0+0:4", "", true},
		{tp + `{ @ = **curtask->ppid; }`, "task+128+0+0:4", "", true},
		// A user pointer cast to a struct points into the traced
		// process (issue 18): no collector copies it.
		{tp + `{ @ = ((struct task_struct *)args->filename)->pid; }`, "", "a struct field (a struct in the traced process's memory)", false},
		{tp + `{ @ = curtask; }`, "", "", true},
		{`tp_btf:sched_switch { @[args->next->comm] = count(); }`, "ctx16+24:16", "", false},
		{`tp_btf:sched_switch { @ = args->prev->pid + args.next->tgid; }`, "ctx8+8:4 ctx16+12:4", "", false},
		{`kfunc:vfs_read { @ = *args->pos; }`, "ctx24+0:8", "", false},
		{`kretfunc:vfs_read / *args->pos == 1 / { @ = retval; }`, "ctx24+0:8", "", false},
		{`kfunc:vfs_read { @ = args->file->f_flags; }`, "ctx0+8:4", "", false},
		{`kfunc:vfs_read { @ = args->count; }`, "", "", false},
		// A tracepoint's struct pointer field (issue 18): the kernel's
		// is followed from the context; a syscall's points into the
		// process.
		{`t:filelock:fake_file { @ = args->file->f_flags; }`, "ctx8+8:4", "", false},
		{`t:syscalls:sys_enter_fake { @ = args->f->f_flags; }`, "", "args->f->f_flags (a struct in the traced process's memory)", false},
		{`kfunc:do_sys_openat2 { @[str(args->filename)] = count(); }`, "", "", false},

		// Pointers the collector cannot compute at the event.
		{tp + `{ @t[tid] = curtask; } ` + tp + `{ @ = ((struct task_struct *)@t[tid])->pid; }`, "", "((struct task_struct *)@t[tid])->pid (through a map value)", false},
		{tp + `{ $t = curtask; $t += 8; @ = ((struct task_struct *)$t)->pid; }`, "", "((struct task_struct *)$t)->pid (through $t, which is computed)", true},
		{`kfunc:vfs_read { @ = *(args->pos + 1); }`, "", "*(args->pos + 1) (through pointer arithmetic)", false},
		{`kfunc:vfs_read { $i = 1; @ = args->pos[$i]; }`, "", "args->pos[$i] (with an index that is not a constant)", false},
		{tp + `{ @ = ((struct task_struct *)(curtask->pid + 1))->pid; }`, "", "a read of kernel memory (through a computed address)", true},
		{tp + `{ $a = curtask; $b = $a; $a = $b; @ = $a->pid; }`, "task+8:4", "", true},
		{tp + `{ $t = curtask; if (pid > 1) { $t = $t->real_parent; } @ = $t->tgid; }`, "task+12:4 task+16+12:4", "", true},
		{tp + `{ $t = curtask; if (pid > 1) { $t = $t->real_parent; } else { $t = $t->real_parent->real_parent; } @ = $t->tgid; }`, "task+16+16+12:4 task+16+12:4", "", true},
		{tp + `{ $t = curtask; unroll(3) { $t = $t->real_parent; } @ = $t->pid; }`, "task+16+16+16+8:4", "", true},
		{tp + `{ $t = curtask; $i = 0; while ($i < 3) { $t = $t->real_parent; $i++; } @ = $t->pid; }`, "", "$t->real_parent (through $t, which a while loop assigns)", true},
		{tp + `{ $t = curtask; $i = 0; while ($i < 3) { @ = $t->pid; $t = $t->real_parent; $i++; } }`, "", "$t->pid (through $t, which a while loop assigns)", true},
		{tp + `{ $t = curtask; $t = 0; @ = ((struct task_struct *)$t)->pid; }`, "", "((struct task_struct *)$t)->pid (through an integer)", true},
		{`BEGIN { @ = curtask->pid; }`, "", "curtask->pid (in BEGIN, which interpreter mode runs with no event)", false},
		{`END { @ = curtask; }`, "", "curtask (in END, which interpreter mode runs with no event)", false},
	} {
		p := kreadsOf(t, tc.src)
		if got := spell(p.KReads); got != tc.reads {
			t.Errorf("%s: reads %q, want %q", tc.src, got, tc.reads)
		}
		if p.KernelOnly != tc.kernelOnly {
			t.Errorf("%s: KernelOnly %q, want %q", tc.src, p.KernelOnly, tc.kernelOnly)
		}
		if p.Task != tc.task {
			t.Errorf("%s: Task %v, want %v", tc.src, p.Task, tc.task)
		}
		// The collector reads kernel memory, or hands out the task's
		// address, only for a probe judged as reading kernel memory:
		// a token without read:kernel never gets either.
		if (len(p.KReads) > 0 || p.Task) && p.Reads&program.ReadsKernel == 0 {
			t.Errorf("%s: kernel reads %s (task %v) in a probe judged to read %s", tc.src, spell(p.KReads), p.Task, p.Reads)
		}
	}
}

// TestKReadsBounded: a probe that reads more than the collector makes at
// each event is refused by name, and a chain through thousands of
// variables or fields costs its length.
func TestKReadsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("t:syscalls:sys_enter_openat { ")
	for i := range 8 {
		fmt.Fprintf(&b, "@a%d = curtask%s->pid; ", i, strings.Repeat("->real_parent", i))
	}
	b.WriteString("}")
	p := kreadsOf(t, b.String())
	if p.KReads != nil || p.KernelOnly != "its reads of kernel memory (36 reads at each event, more than the 32 interpreter mode's collector makes)" {
		t.Errorf("8 chains: KReads %s, KernelOnly %q", spell(p.KReads), p.KernelOnly)
	}

	// A chain through 40 variables is followed; one through 40
	// conditional steps is as many chains, too many.
	b.Reset()
	b.WriteString("t:syscalls:sys_enter_openat { $v0 = curtask; ")
	for i := 1; i < 40; i++ {
		fmt.Fprintf(&b, "$v%d = $v%d; ", i, i-1)
	}
	b.WriteString("@ = $v39->pid; }")
	if p := kreadsOf(t, b.String()); spell(p.KReads) != "task+8:4" || p.KernelOnly != "" {
		t.Errorf("40 variables: KReads %s, KernelOnly %q", spell(p.KReads), p.KernelOnly)
	}
	for n, want := range map[int]string{
		10: "its reads of kernel memory (66 reads at each event, more than the 32 interpreter mode's collector makes)",
		40: "$t->real_parent (through too many pointers to follow)",
	} {
		b.Reset()
		b.WriteString("t:syscalls:sys_enter_openat { $t = curtask; ")
		for i := range n {
			fmt.Fprintf(&b, "if (pid > %d) { $t = $t->real_parent; } ", i)
		}
		b.WriteString("@ = $t->pid; }")
		if p := kreadsOf(t, b.String()); p.KReads != nil || p.KernelOnly != want {
			t.Errorf("%d conditional steps: KReads %s, KernelOnly %q, want %q", n, spell(p.KReads), p.KernelOnly, want)
		}
	}
}

// BenchmarkKReadsBranches: the cost of following pointers through a
// probe of as many branches as variables, each branch assigning one
// (copy on write makes each if cost what it assigns, plus the join).
func BenchmarkKReadsBranches(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("t:syscalls:sys_enter_openat { $t = curtask; ")
	const n = 1000
	for i := range n {
		fmt.Fprintf(&sb, "$v%d = 1; ", i)
	}
	for i := range n {
		fmt.Fprintf(&sb, "if (pid > %d) { $v%d = 2; } ", i, i)
	}
	sb.WriteString("@ = $t->pid; }")
	f, err := syntax.Parse("stdin", []byte(sb.String()))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		Compile(f, Options{Tracepoints: readsTracepoints{}, Types: newFakeTypes()})
	}
}

// TestStoreRecords: a struct, union or array value stored whole in a map
// (value or key) or a variable is copied once from the kernel — one read
// interpreter mode's collector makes too — and read from the copy after;
// its layout is the output's (program.Record). What can not be printed,
// or is too large to copy, is refused by name.
func TestStoreRecords(t *testing.T) {
	const tp = "t:syscalls:sys_enter_openat "
	for _, tc := range []struct {
		src, reads string
	}{
		{tp + `{ @x = curtask->se.load; }`, "task+40:16"},
		{tp + `{ @x = curtask->se; }`, "task+40:24"},
		{tp + `{ $x = curtask->se; @w = $x.load.inv_weight; @y = $x; }`, "task+40:24"},
		{tp + `{ @[curtask->mask] = count(); }`, "task+96:32"},
		{tp + `{ @x = *curtask->real_parent->sched_entity_ptr; }`, "task+16+136+0:24"},
	} {
		p := kreadsOf(t, tc.src)
		if got := spell(p.KReads); got != tc.reads || p.KernelOnly != "" {
			t.Errorf("%s: reads %q (%s), want %q", tc.src, got, p.KernelOnly, tc.reads)
		}
	}
	for src, want := range map[string]string{
		tp + `{ @x = *curtask; }`:                           "struct task_struct can not be stored: a field has type 'double', which can not be printed",
		tp + `{ $x = curtask->se; $x = curtask->se.load; }`: "Type mismatch for $x: trying to assign value of type 'struct load_weight' when variable already contains a value of type 'struct sched_entity'",
		tp + `{ @x = curtask->se; @x = curtask->se.load; }`: "Type mismatch for @x: trying to assign value of type 'struct load_weight' when map already contains a value of type 'struct sched_entity'",
	} {
		f, err := syntax.Parse("stdin", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = Compile(f, Options{Tracepoints: readsTracepoints{}, Types: newFakeTypes()})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", src, err, want)
		}
	}
}
