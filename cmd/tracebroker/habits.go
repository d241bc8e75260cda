package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tracebroker/tracebroker/internal/version"
)

// A bpftrace user types bpftrace's command lines: `tracebroker -e
// '...'`, `tracebroker script.bt`, `tracebroker -l 'tracepoint:*'`,
// `tracebroker -V`. They mean what bpftrace means by them, so they are
// taken as the commands that do it (run, list, version) rather than
// answered with cobra's "unknown flag".

// bpftraceArgs turns bpftrace's top-level forms into tracebroker's
// commands, and refuses a value flag that would swallow the next flag
// (`run -d -e '...'`). Anything else is returned as it is, for cobra.
func bpftraceArgs(root *cobra.Command, args []string) ([]string, error) {
	args = topLevel(args)
	if err := checkSwallowed(root, args); err != nil {
		return nil, err
	}
	return args, nil
}

// isListFlag says whether a is bpftrace's -l, alone or with -v in one
// word (-lv, -vl): a dash, then l's and v's with an l among them. It is
// asked of every command line, so it is no regexp compiled at start.
func isListFlag(a string) bool {
	if len(a) < 2 || a[0] != '-' || !strings.Contains(a, "l") {
		return false
	}
	return strings.Trim(a[1:], "lv") == ""
}

func topLevel(args []string) []string {
	if len(args) == 0 {
		return args
	}
	first := args[0]
	switch {
	case first == "-V" || first == "--version":
		return append([]string{"version"}, args[1:]...)
	case first == "--info":
		return append([]string{"info"}, args[1:]...)
	case isListFlag(first):
		return listArgs(first, args[1:])
	case first == "list" && len(args) > 1 && isListFlag(args[1]):
		// `list -lv`: the -l is list itself.
		return listArgs(args[1], args[2:])
	case isCommand(first):
		return args
	case first == "-h" || first == "--help" || first == "--":
		return args
	case strings.HasPrefix(first, "-"):
		// Flags before any command are bpftrace's: run takes them (and
		// says which it does not know).
		for _, a := range args {
			if a == "--" {
				break
			}
			if isListFlag(a) {
				// bpftrace -v -l: list, with what else was given.
				return listArgs(a, without(args, a))
			}
		}
		return append([]string{"run"}, args...)
	case strings.HasSuffix(first, ".bt") || isFile(first):
		return append([]string{"run"}, args...)
	}
	return args
}

// listArgs is `list` for bpftrace's -l word and what follows it.
func listArgs(word string, rest []string) []string {
	out := []string{"list"}
	if strings.Contains(word, "v") {
		out = append(out, "-v")
	}
	return append(out, rest...)
}

func without(args []string, word string) []string {
	var out []string
	for _, a := range args {
		if a != word {
			out = append(out, a)
		}
	}
	return out
}

func isCommand(name string) bool {
	switch name {
	case "help", cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd, "completion":
		return true
	}
	for _, c := range subcommands {
		if c.name == name {
			return true
		}
	}
	return false
}

func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// checkSwallowed refuses a flag that takes a value given a flag as its
// value: pflag takes the word after -d as -d's whatever it is, so `run
// -d -e PROGRAM` ran PROGRAM as a file name. A value that starts with
// '-' is taken only in the -dVALUE and --duration=VALUE forms, where it
// cannot be a mistake, or when it is a number, a duration or '-' alone.
func checkSwallowed(root *cobra.Command, args []string) error {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == nil {
		return nil // cobra says what is wrong
	}
	flags := pflag.NewFlagSet(cmd.Name(), pflag.ContinueOnError)
	flags.AddFlagSet(cmd.LocalFlags())
	flags.AddFlagSet(cmd.InheritedFlags())
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return nil
		}
		var f *pflag.Flag
		var spelt string
		switch {
		case strings.HasPrefix(a, "--"):
			name, _, hasValue := strings.Cut(a[2:], "=")
			if hasValue {
				continue
			}
			f, spelt = flags.Lookup(name), "--"+name
		case strings.HasPrefix(a, "-") && len(a) > 1:
			// A cluster of shorthands: the first that takes a value
			// takes the rest of the word, or the next word.
			for j := 1; j < len(a); j++ {
				g := flags.ShorthandLookup(a[j : j+1])
				if g == nil || g.NoOptDefVal != "" {
					continue
				}
				if j == len(a)-1 {
					f, spelt = g, "-"+a[j:j+1]
				}
				break
			}
		}
		if f == nil || f.NoOptDefVal != "" || i+1 >= len(args) {
			continue
		}
		i++
		if v := args[i]; looksLikeFlag(v) {
			return swallowedError(cmd, f, spelt, v)
		}
	}
	return nil
}

func looksLikeFlag(v string) bool {
	if len(v) < 2 || v[0] != '-' {
		return false
	}
	// A negative number or duration is a value (a wrong one, which
	// the flag's own check refuses), not a flag.
	if _, err := strconv.ParseFloat(v, 64); err == nil {
		return false
	}
	if _, err := time.ParseDuration(v); err == nil {
		return false
	}
	return true
}

// swallowedError says what the flag needs, with its usage line.
func swallowedError(cmd *cobra.Command, f *pflag.Flag, spelt, got string) error {
	varname, usage := pflag.UnquoteUsage(f)
	need := "a value"
	switch {
	case f.Name == "duration" || f.Value.Type() == "duration":
		need = "a duration such as 5s"
	case varname != "" && varname != "string" && varname != "int" && varname != "int32":
		need = "a " + varname
	}
	line := "  "
	if f.Shorthand != "" {
		line += "-" + f.Shorthand + ", "
	}
	line += "--" + f.Name
	if varname != "" {
		line += " " + varname
	}
	return fmt.Errorf("%s needs %s; got %q\nusage: %s\n%s   %s\nsee `%s --help`", spelt, need, got, cmd.UseLine(), line, usage, cmd.CommandPath())
}

// bpftraceOnly are bpftrace's flags that tracebroker has no use for, and
// what to do instead.
var bpftraceOnly = map[string]string{
	"B":           "bpftrace's output buffering: tracebroker writes each line as it comes",
	"I":           "bpftrace's include path: tracebroker scripts have no #include",
	"include":     "bpftrace's #include: tracebroker scripts have no #include",
	"k":           "bpftrace's helper error warnings",
	"info":        "bpftrace's kernel feature report: tracebroker probes for what it needs and says what is missing",
	"no-warnings": "bpftrace's warning switch",
	"emit-elf":    "bpftrace's ELF output: tracebroker run -v shows what it loads",
	"emit-llvm":   "bpftrace's LLVM IR: tracebroker does not use LLVM; run -v shows what it loads",
}

var (
	unknownFlag      = lazyRegexp(`^unknown flag: --([^ =]+)`)
	unknownShorthand = lazyRegexp(`^unknown shorthand flag: '(.)' in (-\S+)`)
)

// flagError answers cobra's "unknown flag" with what the flag is and
// where to look.
func flagError(cmd *cobra.Command, err error) error {
	msg := err.Error()
	if m := invalidArgument().FindStringSubmatch(msg); m != nil {
		return errors.New(m[1])
	}
	var name, spelt string
	if m := unknownFlag().FindStringSubmatch(msg); m != nil {
		name, spelt = m[1], "--"+m[1]
	} else if m := unknownShorthand().FindStringSubmatch(msg); m != nil {
		name, spelt = m[1], "-"+m[1]
	} else {
		return fmt.Errorf("%w\nsee `%s --help`", err, cmd.CommandPath())
	}
	if asBpftrace {
		// bpftrace answers a flag it does not know with its usage.
		return fmt.Errorf("%s\n%s", msg, bpftraceUsage)
	}
	if what, ok := bpftraceOnly[name]; ok {
		return fmt.Errorf("`%s` has no %s (%s)\nsee `%s --help`", cmd.CommandPath(), spelt, what, cmd.CommandPath())
	}
	return fmt.Errorf("`%s` has no flag %s\nsee `%s --help`", cmd.CommandPath(), spelt, cmd.CommandPath())
}

// maxPID is the largest pid bpftrace accepts (the kernel's PID_MAX_LIMIT).
const maxPID = 4194304

// pidValue is -p PID checked as bpftrace checks it, with its words: a
// decimal number from 1 to 4194304.
type pidValue[T int | int32] struct{ p *T }

func (v pidValue[T]) String() string {
	if v.p == nil || *v.p == 0 {
		return "0"
	}
	return strconv.Itoa(int(*v.p))
}

func (v pidValue[T]) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	switch {
	case err != nil && errors.Is(err, strconv.ErrRange), err == nil && (n < 1 || n > maxPID):
		return &pidError{fmt.Sprintf("pid '%s' out of valid pid range [1,%d]", s, maxPID)}
	case err != nil:
		return &pidError{fmt.Sprintf("pid '%s' is not a valid decimal number", s)}
	}
	*v.p = T(n)
	return nil
}

func (v pidValue[T]) Type() string { return "int" }

// pidError is said as it is, without pflag's "invalid argument"
// wrapping: the words bpftrace users know.
type pidError struct{ msg string }

func (e *pidError) Error() string { return e.msg }

var invalidArgument = lazyRegexp(`^invalid argument ".*" for "-p, --pid" flag: (pid '.*)$`)

// lazyRegexp compiles expr when first used: an error's regexps are not
// every command's start-up work.
func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

// asBpftrace is true when this binary runs as bpftrace, through a link of
// that name (ln -s tracebroker bpftrace): scripts and tools that run
// `bpftrace --version` or `bpftrace -h` get bpftrace's answers.
var asBpftrace = filepath.Base(os.Args[0]) == "bpftrace"

// bpftraceUsage is bpftrace 0.17's usage, for the options tracebroker
// takes in that form.
const bpftraceUsage = `USAGE:
    bpftrace [options] filename
    bpftrace [options] - <stdin input>
    bpftrace [options] -e 'program'

OPTIONS:
    -c 'CMD'       run CMD and enable cpid builtin
    -e 'program'   execute this program
    -f FORMAT      output format ('text', 'json')
    -h, --help     show this help message
    -l [search]    list probes
    -o file        redirect bpftrace output to file
    -p PID         stop when process PID exits
    -q             keep messages quiet
    --unsafe       allow unsafe builtin functions
    -v             verbose messages
    -V, --version  bpftrace version

This is tracebroker, run as bpftrace: 'tracebroker --help' shows its own
commands and flags (--mode, --duration, the daemon, attestations).
`

// bpftraceVersion is what --version says when run as bpftrace: the
// version of bpftrace whose language and output tracebroker follows.
func bpftraceVersion() string {
	return fmt.Sprintf("bpftrace v0.17.0 (tracebroker %s)", version.String())
}

// asBpftraceAnswer answers, run as bpftrace, what bpftrace answers
// without tracing: its version and its usage. ok is false otherwise.
func asBpftraceAnswer(args []string) (out string, ok bool) {
	if !asBpftrace {
		return "", false
	}
	if len(args) == 0 {
		return bpftraceUsage, true
	}
	switch args[0] {
	case "-V", "--version":
		return bpftraceVersion() + "\n", true
	case "-h", "--help":
		return bpftraceUsage, true
	}
	return "", false
}
