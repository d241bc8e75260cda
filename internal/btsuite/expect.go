package btsuite

import (
	"fmt"
	"regexp"
	"strings"
)

// A matcher is an EXPECT compiled: it says whether the output has it.
type matcher func(output string) bool

// notLine is the one Python construct of the suite that RE2 lacks: a
// negative lookahead, spelt ^((?!X).)*$ — "a line without X".
var notLine = regexp.MustCompile(`^\^\(\(\?!(.+)\)\.\)\*\$$`)

// compileExpect compiles an EXPECT as runner.py searches it: re.search
// with re.M (multiline) when the command ended, without it when the test
// timed out. Python's $ without re.M also matches before a final
// newline, which Go's does not: the output is tried without it too.
func compileExpect(pattern string, multiline bool) (matcher, error) {
	if m := notLine.FindStringSubmatch(pattern); m != nil {
		x, err := regexp.Compile(m[1])
		if err != nil {
			return nil, fmt.Errorf("EXPECT %q: %v", pattern, err)
		}
		return func(out string) bool {
			if !multiline {
				out = strings.TrimSuffix(out, "\n")
				return !strings.Contains(out, "\n") && !x.MatchString(out)
			}
			// With re.M, ^ matches after every newline: each line, and
			// the empty one after a final newline, is a candidate.
			for _, l := range strings.Split(out, "\n") {
				if !x.MatchString(l) {
					return true
				}
			}
			return false
		}, nil
	}
	flags := ""
	if multiline {
		flags = "(?m)"
	}
	re, err := regexp.Compile(flags + pattern)
	if err != nil {
		return nil, fmt.Errorf("EXPECT %q: %v", pattern, err)
	}
	return func(out string) bool {
		if re.MatchString(out) {
			return true
		}
		return !multiline && strings.HasSuffix(out, "\n") && re.MatchString(out[:len(out)-1])
	}, nil
}
