package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// event is one line of `go tool test2json` output.
type event struct {
	Action  string
	Test    string
	Output  string
	Elapsed float64
}

// pkgResult is what one test binary did in one guest.
type pkgResult struct {
	Status   string // ok, skip (every test skipped), FAIL, or "no result" when the guest never wrote one
	Elapsed  time.Duration
	Passed   int
	Skipped  int
	Failures []failure // failing tests, innermost (leaf) ones only
	Text     string    // the output, test2json's framing taken off
}

type failure struct {
	Test  string
	First string // first error line (file.go:N: message), or the first output line
}

var errLine = regexp.MustCompile(`^\s+\S+\.go:\d+: `)

// parseEvents reads test2json events and sums them up. A test counts as
// passed or skipped at the top level only (subtests are the tables' rows);
// failures are reported at the leaves, where the error lines are.
func parseEvents(r io.Reader, rc int) (pkgResult, error) {
	res := pkgResult{}
	out := map[string][]string{}
	failed := map[string]bool{}
	var text strings.Builder
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return res, fmt.Errorf("test2json: %w", err)
		}
		switch e.Action {
		case "output":
			text.WriteString(e.Output)
			if e.Test != "" {
				out[e.Test] = append(out[e.Test], strings.TrimRight(e.Output, "\n"))
			}
		case "pass":
			if e.Test != "" && !strings.Contains(e.Test, "/") {
				res.Passed++
			}
		case "skip":
			if e.Test != "" && !strings.Contains(e.Test, "/") {
				res.Skipped++
			}
		case "fail":
			if e.Test != "" {
				failed[e.Test] = true
			}
		}
	}
	if err := sc.Err(); err != nil {
		return res, err
	}
	var names []string
	for n := range failed {
		if !failed[n] {
			continue
		}
		leaf := true
		for m := range failed {
			if strings.HasPrefix(m, n+"/") {
				leaf = false
				break
			}
		}
		if leaf {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		res.Failures = append(res.Failures, failure{Test: n, First: firstError(out[n])})
	}
	res.Text = text.String()
	switch {
	case rc != 0 || len(names) > 0:
		res.Status = "FAIL"
	case res.Passed == 0 && res.Skipped > 0:
		res.Status = "skip"
	default:
		res.Status = "ok"
	}
	return res, nil
}

var verifierEnd = regexp.MustCompile(`^\s+processed \d+ insns`)

// firstError is the first error line of a test's output, else its first
// line that is not the test's own === / --- framing. When the output holds
// a verifier log, its last message (the line before "processed N insns")
// is added: that, not the test's wrapper, says what the kernel refused.
// An error line that ends in ':' gets the line after it.
func firstError(lines []string) string {
	for j, l := range lines {
		if errLine.MatchString(l) {
			first := strings.TrimSpace(l)
			// "output:" and the like: what was said is on the next line.
			if strings.HasSuffix(first, ":") {
				for _, next := range lines[j+1:] {
					if n := strings.TrimSpace(next); n != "" {
						first += " " + n
						break
					}
				}
			}
			for i := 1; i < len(lines); i++ {
				if verifierEnd.MatchString(lines[i]) {
					if v := strings.TrimSpace(lines[i-1]); v != "" && !strings.Contains(first, v) {
						first += " … " + v
					}
					break
				}
			}
			return first
		}
	}
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t != "" && !strings.HasPrefix(t, "=== ") && !strings.HasPrefix(t, "--- ") {
			return t
		}
	}
	return "(no output)"
}

// cell is a package's entry in the summary table.
func (r pkgResult) cell() string {
	switch r.Status {
	case "no result", "":
		return "no result"
	case "FAIL":
		return fmt.Sprintf("FAIL %d (%d ok, %d skip) %s", len(r.Failures), r.Passed, r.Skipped, r.Elapsed.Round(time.Second))
	case "skip":
		return fmt.Sprintf("skip %s", r.Elapsed.Round(time.Second))
	}
	if r.Skipped > 0 {
		return fmt.Sprintf("ok (%d skip) %s", r.Skipped, r.Elapsed.Round(time.Second))
	}
	return fmt.Sprintf("ok %s", r.Elapsed.Round(time.Second))
}

// vmResult is one guest's run.
type vmResult struct {
	kernel  *kernel
	guest   string // "" when the command ran and powered off; else why not (timeout, panic …)
	status  int    // the command's exit status when guest == ""
	elapsed time.Duration
	pkgs    map[string]pkgResult
}

// summary writes the matrix as a Markdown table (package × kernel), then
// each failure with its first error line. ok is false when anything
// failed or a guest did not finish.
func summary(w io.Writer, pkgs []string, vms []*vmResult) (ok bool) {
	ok = true
	fmt.Fprintf(w, "| package |")
	for _, v := range vms {
		fmt.Fprintf(w, " %s (%s) |", v.kernel.name, v.kernel.release)
	}
	fmt.Fprintf(w, "\n| --- |%s\n", strings.Repeat(" --- |", len(vms)))
	for _, p := range pkgs {
		fmt.Fprintf(w, "| %s |", p)
		for _, v := range vms {
			r := v.pkgs[p]
			if r.Status != "ok" && r.Status != "skip" {
				ok = false
			}
			fmt.Fprintf(w, " %s |", r.cell())
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "| guest |")
	for _, v := range vms {
		g := "powered off"
		if v.guest != "" {
			g, ok = v.guest, false
		}
		fmt.Fprintf(w, " %s, %s |", g, v.elapsed.Round(time.Second))
	}
	fmt.Fprintln(w)
	for _, v := range vms {
		for _, p := range pkgs {
			for _, f := range v.pkgs[p].Failures {
				fmt.Fprintf(w, "\n- %s %s %s: %s", v.kernel.name, p, f.Test, f.First)
			}
		}
	}
	fmt.Fprintln(w)
	return ok
}

// printTails prints the last n lines of each failing package's log and
// of each failed guest's console: what CI's log shows of a failure
// without the results directory.
func printTails(w io.Writer, out string, pkgs []string, vms []*vmResult, n int) {
	tail := func(title, path string) {
		b, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(w, "\n==== %s: %v\n", title, err)
			return
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(w, "\n==== %s (%s), last %d lines\n%s\n", title, path, len(lines), strings.Join(lines, "\n"))
	}
	for _, v := range vms {
		dir := filepath.Join(out, v.kernel.name)
		if v.guest != "" {
			tail(v.kernel.name+" guest: "+v.guest, filepath.Join(dir, "console.log"))
		}
		for _, p := range pkgs {
			if r := v.pkgs[p]; r.Status != "ok" && r.Status != "skip" {
				tail(v.kernel.name+" "+p+": "+r.Status, filepath.Join(dir, binName(p)+".log"))
			}
		}
	}
}
