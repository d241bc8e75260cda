package main

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/tracebroker/tracebroker/bpf/object"
)

// pluginFlags are where plugins live and whom to trust for them.
type pluginFlags struct {
	dir   string
	gen   string
	param []string
}

func (p *pluginFlags) register(f *pflag.FlagSet, withGen bool) {
	f.StringVar(&p.dir, "plugin-dir", "", "generator plugins' `DIR` (default: STATE/plugins)")
	if withGen {
		f.StringVar(&p.gen, "gen", "", "run the program that generator plugin `NAME` generates")
		f.StringArrayVar(&p.param, "param", nil, "a generator parameter, `KEY=VALUE` (repeatable)")
	}
}

// params parses --param KEY=VALUE.
func (p *pluginFlags) params() (map[string]string, error) { return keyValues("--param", p.param) }

// keyValues reads a repeatable KEY=VALUE flag; a key given twice is an
// error, not a silent override.
func keyValues(flag string, list []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s %q: want KEY=VALUE", flag, kv)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("%s %s given twice", flag, k)
		}
		out[k] = v
	}
	return out, nil
}

// object is FILE when it is an eBPF object rather than a script (ELF,
// and neither -e nor --gen given), or "". An object takes no positional
// parameters: words after it are an error.
func (p *pluginFlags) object(program string, args []string) (string, error) {
	if program != "" || p.gen != "" || len(args) == 0 || !object.IsFile(args[0]) {
		return "", nil
	}
	if len(args) > 1 {
		return "", fmt.Errorf("%s is an eBPF object: it takes no positional parameters", args[0])
	}
	return args[0], nil
}

// script is the program that -e PROGRAM, FILE or --gen NAME give: its
// name in messages and its text, none for --gen.
func (p *pluginFlags) script(program string, args []string) (name string, src []byte, params []string, err error) {
	switch {
	case p.gen != "" && (program != "" || len(args) > 0):
		return "", nil, nil, fmt.Errorf("give a program (-e PROGRAM or FILE) or --gen NAME, not both")
	case p.gen != "":
		return "", nil, nil, nil
	case len(p.param) > 0:
		return "", nil, nil, fmt.Errorf("--param goes with --gen NAME")
	case program != "":
		// bpftrace's words after the program are its positional
		// parameters, $1, $2, ...
		return "stdin", []byte(program), args, nil
	case len(args) >= 1:
		src, err := readScript(args[0])
		name = args[0]
		if name == "-" {
			name = "stdin"
		}
		return name, src, args[1:], err
	}
	return "", nil, nil, fmt.Errorf("no program given: use -e PROGRAM, FILE or --gen NAME")
}
