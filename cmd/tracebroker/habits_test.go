package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestBpftraceArgs: bpftrace's top-level forms become the tracebroker
// commands that do what bpftrace does with them; a value flag given a
// flag as its value is refused with what it needs.
func TestBpftraceArgs(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "opens") // a script without .bt
	if err := os.WriteFile(script, []byte("BEGIN { exit(); }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const prog = `BEGIN { printf("hi\n"); exit(); }`
	for _, tt := range []struct {
		name string
		in   []string
		want []string // nil: an error
		err  string
	}{
		{"item2/-e", []string{"-e", prog}, []string{"run", "-e", prog}, ""},
		{"item2/-e_with_flags", []string{"-q", "-f", "json", "-e", prog}, []string{"run", "-q", "-f", "json", "-e", prog}, ""},
		{"item2/file_bt", []string{"trace.bt"}, []string{"run", "trace.bt"}, ""},
		{"item2/file_without_bt", []string{script}, []string{"run", script}, ""},
		{"item2/-l", []string{"-l"}, []string{"list"}, ""},
		{"item2/-l_pattern", []string{"-l", "tracepoint:syscalls:*"}, []string{"list", "tracepoint:syscalls:*"}, ""},
		{"item2/-lv", []string{"-lv", "tracepoint:syscalls:sys_enter_openat"}, []string{"list", "-v", "tracepoint:syscalls:sys_enter_openat"}, ""},
		{"item2/-vl", []string{"-vl"}, []string{"list", "-v"}, ""},
		{"item2/-v_-l", []string{"-v", "-l", "tracepoint:*"}, []string{"list", "-v", "tracepoint:*"}, ""},
		{"item2/list_-lv", []string{"list", "-lv", "tracepoint:*"}, []string{"list", "-v", "tracepoint:*"}, ""},
		{"item2/list_-l", []string{"list", "-l"}, []string{"list"}, ""},
		{"item2/-V", []string{"-V"}, []string{"version"}, ""},
		{"item2/--version", []string{"--version"}, []string{"version"}, ""},
		{"item18/--info", []string{"--info"}, []string{"info"}, ""},
		{"commands_pass", []string{"list", "-v"}, []string{"list", "-v"}, ""},
		{"help_passes", []string{"--help"}, []string{"--help"}, ""},
		{"typo_left_to_cobra", []string{"trac"}, []string{"trac"}, ""},
		{"completion_passes", []string{"__complete", "run", "-"}, []string{"__complete", "run", "-"}, ""},
		{"item2/run_-d_-e", []string{"run", "-d", "-e", prog}, nil, `-d needs a duration such as 5s; got "-e"` + "\nusage: tracebroker run [flags] [FILE | -e PROGRAM | --gen NAME | OBJECT.bpf.o | --package PKG [MEMBER]] [ARG...]\n  -d, --duration DURATION   stop after DURATION (5s, 1m, or seconds)\nsee `tracebroker run --help`"},
		{"item2/-d_-e", []string{"-d", "-e", prog}, nil, `-d needs a duration such as 5s; got "-e"`},
		{"item2/cluster_-qd_-e", []string{"run", "-qd", "-e", prog}, nil, `-d needs a duration such as 5s; got "-e"`},
		{"item2/--duration_-e", []string{"run", "--duration", "-e", prog}, nil, `--duration needs a duration such as 5s; got "-e"`},
		{"item2/trace_-p_-e", []string{"trace", "-p", "-e", prog}, nil, `-p needs a PID; got "-e"`},
		{"item2/run_-o_-e", []string{"run", "-o", "-e", prog}, nil, `-o needs a FILE; got "-e"`},
		{"item2/token_--sub_--scope", []string{"token", "issue", "--sub", "--scope", "trace"}, nil, `--sub needs a NAME; got "--scope"`},
		{"item2/sessions_--socket_persistent", []string{"sessions", "list", "--socket", "--json"}, nil, `--socket needs a PATH; got "--json"`},
		{"value_attached", []string{"run", "-d-5s", "-e", prog}, []string{"run", "-d-5s", "-e", prog}, ""},
		{"value_with_equals", []string{"run", "--duration=-e", "-e", prog}, []string{"run", "--duration=-e", "-e", prog}, ""},
		{"negative_duration_is_a_value", []string{"token", "issue", "--ttl", "-5m"}, []string{"token", "issue", "--ttl", "-5m"}, ""},
		{"negative_number_is_a_value", []string{"run", "-p", "-1", "-e", prog}, []string{"run", "-p", "-1", "-e", prog}, ""},
		{"dash_is_a_value", []string{"run", "-o", "-", "-e", prog}, []string{"run", "-o", "-", "-e", prog}, ""},
		{"after_--", []string{"run", "-e", prog, "--", "-d", "-e"}, []string{"run", "-e", prog, "--", "-d", "-e"}, ""},
		{"bool_flag", []string{"run", "-v", "-e", prog}, []string{"run", "-v", "-e", prog}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := bpftraceArgs(newRootCmd(), tt.in)
			if tt.want == nil {
				if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
					t.Fatalf("got %q, %v; want the error %q", got, err, tt.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestBpftraceHabits runs the binary as a bpftrace user would: each
// form does what it does in bpftrace, or says what to use, and never
// answers "unknown flag".
func TestBpftraceHabits(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.bt")
	if err := os.WriteFile(bad, []byte("BEGIN { @x = ; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		need   need
		args   []string
		code   int
		stdout string // prefix
		stderr string // prefix
	}{
		{"item2/-V", needNothing, []string{"-V"}, 0, "tracebroker ", ""},
		{"item2/--version", needNothing, []string{"--version"}, 0, "tracebroker ", ""},
		{"item18/--info", needNothing, []string{"--info"}, 0, "System\n  OS: Linux ", ""},
		// A header that does not exist: clang's words, which bpftrace shows.
		{"item18/include_not_found", needNothing, []string{"-e", "#include <lol/no.h>\nBEGIN { exit(); }"}, 1, "", "stdin:1:10-20: ERROR: 'lol/no.h' file not found"},
		{"item18/--include_not_found", needNothing, []string{"--include", "lol.h", "-e", "BEGIN { exit(); }"}, 1, "", "stdin: ERROR: 'lol.h' file not found"},
		{"item2/-l", needTracefs, []string{"-l", "tracepoint:syscalls:sys_enter_openat"}, 0, "tracepoint:syscalls:sys_enter_openat\n", ""},
		{"item2/-lv", needTracefs, []string{"-lv", "tracepoint:syscalls:sys_enter_openat"}, 0, "tracepoint:syscalls:sys_enter_openat\n    int __syscall_nr\n", ""},
		{"item2/list_-lv", needTracefs, []string{"list", "-lv", "tracepoint:syscalls:sys_enter_openat"}, 0, "tracepoint:syscalls:sys_enter_openat\n    int __syscall_nr\n", ""},
		// A script error is run's: the program went to run.
		{"item2/-e", needNothing, []string{"-e", "BEGIN { @x = ; }"}, 1, "", "stdin:1:14-15: ERROR: syntax error"},
		{"item2/file", needNothing, []string{bad}, 1, "", bad + ":1:14-15: ERROR: syntax error"},
		{"item2/run_-d_-e", needNothing, []string{"run", "-d", "-e", "BEGIN { exit(); }"}, 1, "", "ERROR: -d needs a duration such as 5s; got \"-e\"\nusage: tracebroker run "},
		{"item2/bpftrace_only_flag", needNothing, []string{"-B", "none", "-e", "BEGIN { exit(); }"}, 1, "",
			"ERROR: `tracebroker run` has no -B (bpftrace's output buffering: tracebroker writes each line as it comes)\nsee `tracebroker run --help`\n"},
		{"item2/unknown_flag", needNothing, []string{"list", "--nosuch"}, 1, "", "ERROR: `tracebroker list` has no flag --nosuch\nsee `tracebroker list --help`\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			require(t, tt.need)
			r := tracebroker(t, tt.args...)
			if r.code != tt.code || !strings.HasPrefix(r.stdout, tt.stdout) || !strings.HasPrefix(r.stderr, tt.stderr) || strings.Contains(r.stderr, "unknown flag") {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stdout %q..., stderr %q...", r.code, r.stdout, r.stderr, tt.code, tt.stdout, tt.stderr)
			}
		})
	}
}
