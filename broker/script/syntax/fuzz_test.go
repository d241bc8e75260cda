package syntax

import (
	"errors"
	"sort"
	"testing"
	"time"
)

var fuzzSeeds = []string{
	`BEGIN { printf("Tracing... Hit Ctrl-C to end.\n"); }`,
	`tracepoint:syscalls:sys_enter_openat /comm == "bash"/ { printf("%s %s\n", comm, str(args->filename)); }`,
	`kprobe:do_nanosleep { @start[tid] = nsecs; }
kretprobe:do_nanosleep /@start[tid]/ { @ns = hist(nsecs - @start[tid]); delete(@start[tid]); }
END { clear(@start); }`,
	`t:syscalls:sys_enter_read/pid==1/{@bytes[comm] = sum(args->count)}`,
	`uprobe:/bin/bash:readline { @calls = count(); } uretprobe:/bin/bash:readline { printf("%s\n", str(retval)); }`,
	`interval:s:1 { time("%H:%M:%S\n"); print(@); clear(@); if (@x > 10) { exit(); } else if (@x) { @x++ } else { @x = 1 } }`,
	`profile:hz:99 /pid/ { @[kstack, ustack, comm] = count(); }`,
	`BEGIN { $i = 0; while ($i < 10) { $i += 1; @a[$i] = $i * 2 % 3 << 1; } unroll(4) { $i--; } }`,
	`BEGIN { $t = (1, "two", (3, 4)); print($t.2.0); @x = (uint8)-1; @y = $t.0 ? 0x1f : 1_000 + 1e3; }`,
	"#!/usr/bin/env bpftrace\n// comment\n/* block\ncomment */\nk:vfs_read,\nk:vfs_write\n{ @[probe] = count(); }",
	`gatekeeper { if (uid == 0 || comm != "sshd") { return 1; } return 0 }`,
	`BEGIN { @s = "\x41\101\t\n\\\"\0"; @m[1, 2] |= ~3 & !4 ^ 5; $p = *&$q; $q = $p->a.b[0]; }`,
	"BEGIN { @x = \"unterminated }",
	"BEGIN /* unterminated",
	"BEGIN { @x = (((((1)))) }",
	`uprobe:/bin/bash:"echo_builtin"+0, usdt:./p:test:"\"probe1\"", u:lib:"a:b" { exit() }`,
	"uprobe:lib:\"unterminated { }",
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	// Deep and wide inputs, at and past the bounds.
	for _, tt := range nested {
		f.Add(tt.src(MaxDepth - 3))
		f.Add(tt.src(MaxDepth + 1))
	}
	for _, tt := range wide {
		f.Add(tt.src(MaxNodes / 4))
	}
	f.Fuzz(func(t *testing.T, src string) {
		start := time.Now()
		file, err := Parse("fuzz", []byte(src))
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("Parse took %v", d)
		}
		if err != nil {
			if file != nil {
				t.Fatalf("Parse returned both a File and an error")
			}
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error %T %v is not a non-empty ErrorList", err, err)
			}
			for _, e := range list {
				checkPos(t, src, e.From, "error From")
				checkPos(t, src, e.To, "error To")
				if e.To.Offset < e.From.Offset {
					t.Fatalf("error %q: To %v before From %v", e.Msg, e.To, e.From)
				}
				_ = FormatError("fuzz", []byte(src), e)
			}
			_ = list.Format("fuzz", []byte(src))
			return
		}
		checkTree(t, src, file)
	})
}

// checkTree verifies that every node's range is well formed, lies within
// the source and within its parent's range.
func checkTree(t *testing.T, src string, f *File) {
	t.Helper()
	for _, p := range f.Probes {
		walk(p, nil, func(n, parent Node) {
			pos, end := n.Pos(), n.End()
			checkPos(t, src, pos, "Pos")
			checkPos(t, src, end, "End")
			if pos.Offset > end.Offset {
				t.Fatalf("%T %s: Pos %v after End %v", n, Dump(n), pos, end)
			}
			if parent != nil && (pos.Offset < parent.Pos().Offset || end.Offset > parent.End().Offset) {
				t.Fatalf("%T %s [%v,%v) is outside its parent %T [%v,%v)",
					n, Dump(n), pos, end, parent, parent.Pos(), parent.End())
			}
		})
	}
}

// checkPos verifies that p is valid, within src and that its Line and Col
// agree with its Offset.
func checkPos(t *testing.T, src string, p Pos, what string) {
	t.Helper()
	if !p.IsValid() || p.Offset < 0 || p.Offset > len(src) {
		t.Fatalf("%s %+v out of range (len %d)", what, p, len(src))
	}
	starts := lineStarts(src)
	line := sort.SearchInts(starts, p.Offset+1) // lines starting at or before Offset
	col := p.Offset - starts[line-1] + 1
	if p.Line != line || p.Col != col {
		t.Fatalf("%s %+v: offset %d is at %d:%d", what, p, p.Offset, line, col)
	}
}

// lineStarts are the offsets where src's lines start, kept for the last
// src asked: the wide seeds have thousands of nodes.
func lineStarts(src string) []int {
	if src != lastSrc || lastStarts == nil {
		lastSrc, lastStarts = src, []int{0}
		for i := 0; i < len(src); i++ {
			if src[i] == '\n' {
				lastStarts = append(lastStarts, i+1)
			}
		}
	}
	return lastStarts
}

var (
	lastSrc    string
	lastStarts []int
)
