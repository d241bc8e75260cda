package main

import (
	"strings"
	"testing"
)

// TestStructAccessCLI runs the README's struct access commands
// literally: curtask's fields through BTF, and a field the struct does
// not have, as bpftrace words it.
func TestStructAccessCLI(t *testing.T) {
	require(t, needKernel)
	require(t, needBTF)
	// README: tracebroker run -e 'BEGIN { printf("%s %d %d\n", curtask->comm, curtask->tgid == pid, curtask->real_parent->tgid > 0); exit(); }'
	ok := `BEGIN { printf("%s %d %d\n", curtask->comm, curtask->tgid == pid, curtask->real_parent->tgid > 0); exit(); }`
	if r := tracebroker(t, "run", "-e", ok); r.code != 0 || r.stdout != "Attaching 1 probe...\ntracebroker 1 1\n\n\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// README: tracebroker run -e 'BEGIN { @ = curtask->nosuch; }'
	bad := `BEGIN { @ = curtask->nosuch; }`
	want := "stdin:1:13-28: ERROR: Struct/union of type 'struct task_struct' does not contain a field named 'nosuch'\n" +
		bad + "\n" + strings.Repeat(" ", 12) + "^" + strings.Repeat("~", 14) + "\n"
	if r := tracebroker(t, "run", "-e", bad); r.code != 1 || r.stdout != "" || r.stderr != want {
		t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit 1 and\n%s", r.code, r.stdout, r.stderr, want)
	}
}
