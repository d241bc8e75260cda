package usdt

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/tracebroker/tracebroker/bpf/uprobe"
	"github.com/tracebroker/tracebroker/internal/regfile"
	"github.com/tracebroker/tracebroker/internal/symbols"
)

// File is a file a process maps: Path as the process names it, Open
// where this process opens it (through /proc/PID/root when the process
// sees another root, a container's).
type File struct{ Path, Open string }

// MaxMappedFiles bounds the files of one process searched for probes.
const MaxMappedFiles = 4096

// ProcessFiles are the files process pid maps executable (its program
// and libraries, where its probes are), each once, in the order of its
// maps, read with the symbolizer's maps parser.
func ProcessFiles(pid int) ([]File, error) {
	dir := "/proc/" + strconv.Itoa(pid)
	data, err := os.ReadFile(dir + "/maps")
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	root, sameRoot := uprobe.ProcessRoot(pid)
	var out []File
	for _, p := range symbols.MappedFiles(string(data)) {
		if strings.HasSuffix(p, " (deleted)") {
			continue
		}
		open := p
		if !sameRoot {
			open = root + p
		}
		out = append(out, File{Path: p, Open: open})
		if len(out) > MaxMappedFiles {
			return nil, fmt.Errorf("process %d maps more than %d files", pid, MaxMappedFiles)
		}
	}
	return out, nil
}

// ErrNoMatch is the error of a file pattern that matches no file.
var ErrNoMatch = errors.New("no file matches")

// Spec is a usdt probe spec's parts, as bpftrace reads them:
// PATH:PROVIDER:NAME, PATH:NAME (any provider), or with a process NAME
// alone; PATH and PROVIDER may be empty or wildcards.
type Spec struct{ Path, Provider, Name string }

// ParseSpec reads what follows "usdt:" in a probe or a listing pattern.
func ParseSpec(s string) (Spec, error) {
	parts := strings.Split(s, ":")
	var sp Spec
	switch len(parts) {
	case 1:
		sp = Spec{Provider: "*", Name: parts[0]}
	case 2:
		sp = Spec{Path: parts[0], Provider: "*", Name: parts[1]}
	case 3:
		sp = Spec{Path: parts[0], Provider: parts[1], Name: parts[2]}
	default:
		return Spec{}, fmt.Errorf("usdt probe must be usdt:PATH:[PROVIDER:]NAME, not usdt:%s", s)
	}
	if sp.Provider == "" {
		sp.Provider = "*"
	}
	if sp.Name == "" {
		sp.Name = "*"
	}
	return sp, nil
}

// Files are the files a spec's PATH names: the file, the files a glob
// matches, or (empty or "*", with a process) the files pid maps.
func (sp Spec) Files(pid int) ([]File, error) {
	switch {
	case pid > 0 && (sp.Path == "" || sp.Path == "*"):
		return ProcessFiles(pid)
	case sp.Path == "":
		return nil, fmt.Errorf("a usdt probe without a file needs -p PID, whose files are searched: usdt:PATH:PROVIDER:NAME")
	case strings.ContainsAny(sp.Path, "*?["):
		// Bounded: a pattern cannot make us read a million files.
		m, err := uprobe.Glob(sp.Path)
		if err != nil {
			return nil, err
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("%w %q", ErrNoMatch, sp.Path)
		}
		// Glob keeps the pattern's spelling (./x stays ./x), as
		// bpftrace prints it.
		out := make([]File, len(m))
		for i, p := range m {
			out[i] = File{Path: p, Open: p}
		}
		return out, nil
	}
	return []File{{Path: sp.Path, Open: sp.Path}}, nil
}

// List writes the USDT probes the spec (what follows "usdt:") matches,
// one per provider and name, as bpftrace -l lists them:
// usdt:PATH:PROVIDER:NAME, sorted. The files of a process (-p, with no
// PATH) are named as bpftrace names them, through its root:
// /proc/PID/root/PATH. Files of a process that are not ELF files, or are
// gone, are skipped.
func List(w io.Writer, spec string, pid int, match func(pattern, name string) bool) error {
	sp, err := ParseSpec(spec)
	if err != nil {
		return err
	}
	files, err := sp.Files(pid)
	if err != nil {
		return err
	}
	fromProcess := pid > 0 && (sp.Path == "" || sp.Path == "*")
	var lines []string
	for _, f := range files {
		probes, err := readFile(f.Open)
		if err != nil {
			if pid > 0 {
				continue
			}
			return fmt.Errorf("%s: %w", f.Path, err)
		}
		name := f.Path
		if fromProcess {
			name = "/proc/" + strconv.Itoa(pid) + "/root" + f.Path
		}
		for _, p := range probes {
			if !match(sp.Provider, p.Provider) || !match(sp.Name, p.Name) {
				continue
			}
			lines = append(lines, "usdt:"+name+":"+p.Provider+":"+p.Name+"\n")
		}
	}
	// bpftrace's matches are a set: sorted, each once.
	slices.Sort(lines)
	bw := bufio.NewWriter(w)
	for _, l := range slices.Compact(lines) {
		bw.WriteString(l)
	}
	return bw.Flush()
}

func readFile(path string) ([]Probe, error) {
	// Not os.Open: a FIFO at the path would block.
	f, _, err := regfile.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Read(f)
}
