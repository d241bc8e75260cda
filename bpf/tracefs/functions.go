package tracefs

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Function is one line of available_filter_functions: a function ftrace
// can patch, so one kprobes and fentry programs may attach to.
type Function struct {
	Name   string
	Module string // "" for the kernel image
}

// maxFunctionLine bounds one line of available_filter_functions.
const maxFunctionLine = 4096

// ParseFunctions reads available_filter_functions: "NAME" or
// "NAME [MODULE]" a line (a tab and more after NAME, as the _addrs
// variant has, is left out). kprobes and kfuncs both list from it, so
// that the two agree on what the kernel can patch.
func ParseFunctions(r io.Reader, each func(Function)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), maxFunctionLine)
	for sc.Scan() {
		name, mod, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if i := strings.IndexByte(name, '\t'); i >= 0 {
			name = name[:i]
		}
		if name == "" {
			continue
		}
		each(Function{Name: name, Module: strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(mod), "["), "]")})
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading available_filter_functions: %w", err)
	}
	return nil
}
