package tracefs

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
)

// Probe providers as bpftrace 0.17 knows them, with their short aliases.
// Only tracepoint, software and hardware produce output here; the rest are
// accepted so that "kprobe:*" lists nothing instead of failing.
var providerAliases = map[string]string{
	"t": "tracepoint", "s": "software", "h": "hardware",
	"k": "kprobe", "kr": "kretprobe", "u": "uprobe", "ur": "uretprobe",
	"U": "usdt", "p": "profile", "i": "interval", "f": "kfunc",
	"fr": "kretfunc", "w": "watchpoint", "aw": "asyncwatchpoint", "it": "iter",
}

var providers = []string{
	"BEGIN", "END", "asyncwatchpoint", "hardware", "interval", "iter",
	"kfunc", "kprobe", "kretfunc", "kretprobe", "profile", "software",
	"tracepoint", "uprobe", "uretprobe", "usdt", "watchpoint",
}

// listedProviders are those a wildcard provider expands to, in the order
// bpftrace prints them (it walks a sorted set of provider names).
var listedProviders = []string{"hardware", "software", "tracepoint"}

// perf event names bpftrace 0.17 accepts, aliases included.
var (
	softwareEvents = []string{
		"alignment-faults", "bpf-output", "context-switches", "cs",
		"cpu-clock", "cpu", "cpu-migrations", "dummy", "emulation-faults",
		"major-faults", "minor-faults", "page-faults", "faults", "task-clock",
	}
	hardwareEvents = []string{
		"backend-stalls", "branch-instructions", "branches", "branch-misses",
		"bus-cycles", "cache-misses", "cache-references", "cpu-cycles",
		"cycles", "frontend-stalls", "instructions", "ref-cycles",
	}
)

// List writes what `bpftrace -l PATTERN` (or `bpftrace -lv PATTERN` when
// verbose) prints for tracepoint, software and hardware probes.
//
// The pattern is one or more comma-separated probe specs such as
// "tracepoint:syscalls:sys_enter_open*", "t:sched:*", "tracepoint:*openat"
// or "*"; empty means everything. A spec without a provider ("*openat")
// searches every provider, as bpftrace does. Specs bpftrace rejects, such as
// "syscalls:*" or "tracepoint:syscalls", give an error and no output.
// Providers other than the three above (kprobe, uprobe, iter, ...) are
// accepted and list nothing.
//
// Like bpftrace 0.17, software and hardware specs echo the spec itself
// ("software:*:") rather than enumerating events. With verbose, each
// tracepoint is followed by its non-common fields, indented four spaces,
// as declared in its format file.
func List(w io.Writer, pattern string, verbose bool) error {
	return list(w, eventsDir, pattern, verbose)
}

// list is List with the events directory lookup injected for tests; it is
// called only when a tracepoint spec needs it, so "software:*" works
// without tracefs.
func list(w io.Writer, eventsDir func() (string, error), pattern string, verbose bool) error {
	specs, err := parseListPattern(pattern)
	if err != nil {
		return err
	}
	var events string
	bw := bufio.NewWriter(w)
	for _, s := range specs {
		switch s.provider {
		case "software", "hardware":
			fmt.Fprintf(bw, "%s:%s:\n", s.provider, s.target)
		case "tracepoint":
			if events == "" {
				if events, err = eventsDir(); err != nil {
					bw.Flush()
					return err
				}
			}
			if err := listTracepointSpec(bw, events, s.target, verbose); err != nil {
				bw.Flush()
				return err
			}
		}
	}
	return bw.Flush()
}

func listTracepointSpec(w *bufio.Writer, events, pattern string, verbose bool) error {
	tps, err := listTracepoints(events, pattern)
	if err != nil {
		return err
	}
	for _, tp := range tps {
		w.WriteString("tracepoint:")
		w.WriteString(tp.Category)
		w.WriteByte(':')
		w.WriteString(tp.Name)
		w.WriteByte('\n')
		if !verbose {
			continue
		}
		f, err := readFormat(events, tp.Category, tp.Name)
		if err != nil {
			return err
		}
		for _, fld := range f.Fields {
			w.WriteString("    ")
			w.WriteString(fld.Decl)
			w.WriteByte('\n')
		}
	}
	return nil
}

// listSpec is one probe spec resolved to a provider that produces output.
type listSpec struct {
	provider string
	target   string // for tracepoint, a Tracepoints pattern
}

// parseListPattern checks the whole pattern before anything is printed,
// since bpftrace parses the program first and prints nothing on error.
func parseListPattern(pattern string) ([]listSpec, error) {
	if strings.TrimSpace(pattern) == "" {
		pattern = "*:*"
	}
	var specs []listSpec
	for _, raw := range strings.Split(pattern, ",") {
		spec := strings.TrimSpace(raw)
		if spec == "" {
			return nil, fmt.Errorf("empty probe in %q", pattern)
		}
		provider, target, ok := strings.Cut(spec, ":")
		if !ok && hasMeta(spec) {
			// bpftrace reads a bare "*openat" as "*:*openat".
			provider, target = "*", spec
		}
		if hasMeta(provider) {
			for _, p := range listedProviders {
				m, err := path.Match(provider, p)
				if err != nil {
					return nil, fmt.Errorf("%s: bad probe type pattern: %w", spec, err)
				}
				if !m {
					continue
				}
				// An expansion that does not fit one provider's syntax
				// just yields nothing for it.
				if s, err := resolveSpec(p, target, spec); err == nil && s != nil {
					specs = append(specs, *s)
				}
			}
			continue
		}
		if full, ok := providerAliases[provider]; ok {
			provider = full
		}
		if !slices.Contains(providers, provider) {
			return nil, fmt.Errorf("%s: invalid probe type %q", spec, provider)
		}
		if !ok {
			return nil, fmt.Errorf("%s: %s probe type requires arguments", spec, provider)
		}
		s, err := resolveSpec(provider, target, spec)
		if err != nil {
			return nil, err
		}
		if s != nil {
			specs = append(specs, *s)
		}
	}
	return specs, nil
}

// resolveSpec validates target for provider the way bpftrace's parser
// does and returns nil for providers that list nothing here.
func resolveSpec(provider, target, spec string) (*listSpec, error) {
	parts := strings.Split(target, ":")
	switch provider {
	case "tracepoint":
		switch {
		case len(parts) == 1 && parts[0] != "" && hasMeta(parts[0]):
			// One wildcard part is a name in any category:
			// "tracepoint:*openat" (listTracepoints adds the "*:").
		case len(parts) == 2 && (parts[0] == "" || parts[1] == ""):
			return nil, fmt.Errorf("%s: tracepoint probe must have a target", spec)
		case len(parts) != 2:
			return nil, fmt.Errorf("%s: tracepoint probe type requires 2 arguments", spec)
		}
		if err := checkPattern(target); err != nil {
			return nil, fmt.Errorf("%s: %w", spec, err)
		}
		return &listSpec{provider, target}, nil
	case "software", "hardware":
		if len(parts) > 2 {
			return nil, fmt.Errorf("%s: %s probe type requires 1 or 2 arguments", spec, provider)
		}
		name := parts[0]
		if name == "" {
			return nil, fmt.Errorf("%s: %s probe must have a %s event name", spec, provider, provider)
		}
		known := softwareEvents
		if provider == "hardware" {
			known = hardwareEvents
		}
		if !hasMeta(name) && !slices.Contains(known, name) {
			return nil, fmt.Errorf("%s: %s is not a %s probe", spec, name, provider)
		}
		return &listSpec{provider, name}, nil
	}
	return nil, nil
}
