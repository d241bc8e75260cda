package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/broker/audit"
)

// runAudit runs the audit command in-process, as root would with its
// errors left to the caller.
func runAudit(args ...string) (string, error) {
	cmd := newAuditCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	return out.String(), err
}

func TestAuditVerifyCLI(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l, err := audit.Open(path, audit.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var heads []audit.Head
	for i := 0; i < 5; i++ {
		h, err := l.Append(audit.EventTraceAdmitted, map[string]any{"n": i, "mode": "jit"})
		if err != nil {
			t.Fatal(err)
		}
		heads = append(heads, h)
	}
	l.Close()
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(good, []byte("\n"))
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	edit := bytes.Replace(good, []byte(`"n":2}`), []byte(`"n":7}`), 1)
	if bytes.Equal(edit, good) {
		t.Fatalf("no record to edit in\n%s", good)
	}
	edited := write("edited.log", edit)
	deleted := write("deleted.log", bytes.Join(append(append([][]byte{}, lines[:2]...), lines[3:]...), nil))
	cutEnd := write("cut.log", bytes.Join(lines[:4], nil))
	torn := write("torn.log", good[:len(good)-10])

	cases := []struct {
		name string
		args []string
		out  string // the whole of stdout
		err  string // the whole error
	}{
		{"ok", []string{"verify", path}, path + ": ok, 5 records, head " + heads[4].String() + "\n", ""},
		{"expected head", []string{"verify", "--expect-head", heads[4].String(), path}, path + ": ok, 5 records, head " + heads[4].String() + "\n", ""},
		{"edited", []string{"verify", edited}, "", edited + ": line 4: prev hash does not match line 3 (record edited, inserted or deleted)"},
		{"deleted", []string{"verify", deleted}, "", deleted + ": line 3: seq 4 after 2 (record deleted or reordered)"},
		{"torn", []string{"verify", torn}, torn + ": ok, 4 records, head " + heads[3].String() + "\nnote: last line (line 5, " + strconv.Itoa(len(lines[4])-10) + " bytes) is a record cut off by a crash; it was never complete\n", ""},
		// The chain cannot see the last record go; the anchor can.
		{"cut off the end", []string{"verify", cutEnd}, cutEnd + ": ok, 4 records, head " + heads[3].String() + "\n", ""},
		{"cut off the end, anchored", []string{"verify", "--expect-head", heads[4].String(), cutEnd}, "",
			cutEnd + ": head is " + heads[3].String() + ", expected " + heads[4].String() + " (records were cut off the end)"},
		{"older anchor", []string{"verify", "--expect-head", heads[3].String(), path}, "",
			path + ": head is " + heads[4].String() + ", expected " + heads[3].String() + " (records were written after the anchor, or this is another log)"},
		{"bad anchor", []string{"verify", "--expect-head", "5", path}, "", `--expect-head: head "5": want SEQ:HASH`},
		{"missing", []string{"verify", filepath.Join(dir, "none")}, "", "open " + filepath.Join(dir, "none") + ": no such file or directory"},
		{"directory", []string{"verify", dir}, "", dir + ": not a regular file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := runAudit(c.args...)
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if out != c.out || gotErr != c.err {
				t.Fatalf("audit %s\nstdout: %q\nerror:  %q\nwant stdout %q\nwant error  %q", strings.Join(c.args, " "), out, gotErr, c.out, c.err)
			}
		})
	}
}

// TestAuditVerifyRotatedCLI: verifying a log that rotated takes its
// rotated files with it, and names the file where the chain breaks.
func TestAuditVerifyRotatedCLI(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(path, audit.Options{Logger: slog.New(slog.DiscardHandler), MaxSize: audit.MinMaxSize, Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	var h audit.Head
	for i := 0; i < 600; i++ {
		if h, err = l.Append(audit.EventTraceRefused, map[string]any{"n": i, "reason": strings.Repeat("r", 900)}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	files, err := audit.Files(path)
	if err != nil || len(files) != 3 {
		t.Fatalf("files %v, %v", files, err)
	}
	out, err := runAudit("verify", "--expect-head", h.String(), path)
	if err != nil || !strings.HasPrefix(out, path+": ok, ") || !strings.Contains(out, " in 3 files (seq ") || !strings.HasSuffix(out, "head "+h.String()+"\n") {
		t.Errorf("verify of a rotated log: %q, %v", out, err)
	}
	// The same files named one by one, in any order.
	if out2, err := runAudit("verify", files[2], files[0], files[1]); err != nil || out2 != strings.Replace(out, path, files[1], 1) {
		t.Errorf("verify of the files by name: %q, %v", out2, err)
	}
	os.Remove(files[0])
	if _, err := runAudit("verify", path); err == nil || !strings.HasPrefix(err.Error(), files[1]+": line 1: the log begins at seq ") {
		t.Errorf("verify without the oldest kept file: %v", err)
	}
}
