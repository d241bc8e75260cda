package main

// --json of the listing commands (list, sessions list, plugins list,
// collectors list): each prints one JSON array of objects, [] for none,
// with the fields documented on the types below. Strings are JSON's:
// control characters that a plugin or a token holder put in them are
// \u escapes, never raw bytes on a terminal.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/internal/escape"
)

// writeJSONList writes list as a JSON array, [] when empty, with one
// object per line: jq reads it, and so do grep and a diff.
func writeJSONList[T any](w io.Writer, list []T) error {
	var b bytes.Buffer
	b.WriteByte('[')
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	for i, v := range list {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
		if err := enc.Encode(v); err != nil {
			return err
		}
		b.Truncate(b.Len() - 1) // Encode's newline
	}
	if len(list) > 0 {
		b.WriteByte('\n')
	}
	b.WriteString("]\n")
	_, err := w.Write(escapeJSON(b.Bytes()))
	return err
}

// escapeJSON writes as \u escapes what encoding/json leaves raw but a
// terminal may act on (internal/escape): C1 controls (U+0080-U+009F,
// 8-bit CSI among them) and the bidirectional overrides. Outside
// strings JSON is ASCII, so the result is the same JSON.
func escapeJSON(b []byte) []byte {
	if !bytes.ContainsFunc(b, escape.Unicode) {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	for _, r := range string(b) {
		if escape.Unicode(r) {
			out = fmt.Appendf(out, `\u%04x`, r)
		} else {
			out = utf8.AppendRune(out, r)
		}
	}
	return out
}

// probeJSON is a probe of `list --json`.
type probeJSON struct {
	Probe string `json:"probe"` // as a script names it: tracepoint:syscalls:sys_enter_openat
	// Args, with -v, are a tracepoint's fields (a tp_btf probe's
	// arguments) as C declarations.
	Args []string `json:"args,omitempty"`
}

// probesJSON turns the listing that bpftrace -l prints (a probe per
// line, with -v its fields below it, indented) into probeJSON.
func probesJSON(r io.Reader) ([]probeJSON, error) {
	var out []probeJSON
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
		case line[0] == ' ' || line[0] == '\t':
			if len(out) == 0 {
				return nil, errors.New("list: a field before any probe")
			}
			p := &out[len(out)-1]
			p.Args = append(p.Args, strings.TrimSpace(line))
		default:
			out = append(out, probeJSON{Probe: line})
		}
	}
	return out, sc.Err()
}

// collectorJSON is a collector of `collectors list --json`.
type collectorJSON struct {
	Name   string `json:"name"`
	Type   string `json:"type"` // the BPF program type
	Digest string `json:"sha256"`
	// Status is verified (Signer signed its manifest) or refused
	// (Reason).
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
	Signer string `json:"signer,omitempty"`
}

func writeCollectorsJSON(w io.Writer, ct collector.Trust) error {
	var out []collectorJSON
	for _, s := range collector.Programs() {
		j := collectorJSON{Name: s.Name, Type: s.Type.String(), Digest: s.Digest()}
		if ids, err := ct.Verify(s); err != nil {
			j.Status, j.Reason = "refused", err.Error()
		} else {
			j.Status, j.Signer = "verified", ids[0].Signer
		}
		out = append(out, j)
	}
	return writeJSONList(w, out)
}

// listJSON is `list --json`: the listing, whole, then as JSON, so that
// an error leaves no half array.
func listJSON(w io.Writer, pattern string, verbose bool, pid int) error {
	var b bytes.Buffer
	if err := listProbes(&b, pattern, verbose, pid); err != nil {
		return err
	}
	ps, err := probesJSON(&b)
	if err != nil {
		return err
	}
	return writeJSONList(w, ps)
}
