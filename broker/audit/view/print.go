package view

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/tracebroker/tracebroker/internal/escape"
)

// Every string printed below came from the log or an attestation, which
// requests wrote into: each goes through escape, so that none reaches
// the terminal as a control sequence or forges a line.

const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// maxSummary bounds the summary of one record on its line.
const maxSummary = 240

// PrintRecords writes one line per record.
func PrintRecords(w io.Writer, recs []Record) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tEVENT\tSESSION\tSUBJECT\tDETAILS")
	for _, r := range recs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", r.Seq, r.Time.UTC().Format(timeLayout), escape.String(r.Event),
			dash(escape.String(r.Session)), dash(escape.String(r.Subject)), escape.String(cut(summary(r), maxSummary)))
	}
	return tw.Flush()
}

// summary is what a record says, its main fields first.
func summary(r Record) string {
	d := decode(r.Data)
	var keys []string
	switch r.Event {
	case "trace.request":
		keys = []string{"name", "generator", "source_digest", "duration_ms", "token.scope", "token.jti"}
	case "trace.admitted":
		return fmt.Sprintf("mode=%s %s", str(d["mode"]), decisions(d["decisions"]))
	case "trace.refused":
		keys = []string{"stage", "code", "reason"}
	case "trace.end":
		keys = []string{"reason", "status", "elapsed_ms", "error", "abandoned", "phase"}
	}
	delete(d, "session")
	if keys == nil {
		for k := range d {
			keys = append(keys, k)
		}
		sort.Strings(keys)
	}
	var b strings.Builder
	for _, k := range keys {
		v, ok := lookup(d, k)
		if !ok || v == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%s", k, v)
	}
	return b.String()
}

// decisions is the gatekeeper's verdict per probe, short.
func decisions(v any) string {
	ds, _ := v.([]any)
	var parts []string
	for _, d := range ds {
		m, _ := d.(map[string]any)
		parts = append(parts, str(m["probe"])+":"+str(m["verdict"]))
	}
	return strings.Join(parts, " ")
}

func decode(data json.RawMessage) map[string]any {
	d := map[string]any{}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	dec.Decode(&d)
	return d
}

// lookup finds a key, or parent.child, as text.
func lookup(d map[string]any, key string) (string, bool) {
	parent, child, nested := strings.Cut(key, ".")
	v, ok := d[parent]
	if nested {
		m, _ := v.(map[string]any)
		v, ok = m[child]
	}
	if !ok || v == nil {
		return "", false
	}
	return str(v), true
}

// str is a value as text: a string as it is, anything else as JSON.
func str(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	if v == nil {
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// PrintSession tells a session: who asked for what, what the gatekeeper
// said, how it ended, and what ran, as its attestations say.
func PrintSession(w io.Writer, s *Session) error {
	e := escape.String
	fmt.Fprintf(w, "session %s\n", e(s.ID))
	if len(s.Records) == 0 {
		fmt.Fprintln(w, "  no records of it in the log")
	}
	req := decode(s.Request)
	if s.Request != nil {
		at := recordTime(s, "trace.request")
		fmt.Fprintf(w, "  requested  %s by %s", at, e(dash(s.Subject)))
		if v, ok := lookup(req, "token.jti"); ok {
			fmt.Fprintf(w, " (token %s, scope %q)", e(v), e(first(lookup(req, "token.scope"))))
		}
		if c, ok := req["caller"].(map[string]any); ok {
			if c["unix"] == true {
				fmt.Fprintf(w, " from uid %s pid %s", e(str(c["uid"])), e(str(c["pid"])))
			} else {
				fmt.Fprintf(w, " from %s", e(str(c["addr"])))
			}
		}
		fmt.Fprintln(w)
		if g, ok := lookup(req, "generator"); ok {
			fmt.Fprintf(w, "  program    generator %s, params %s\n", e(g), e(first(lookup(req, "params"))))
		} else {
			fmt.Fprintf(w, "  program    script %s (sha256:%s)\n", e(first(lookup(req, "name"))), e(first(lookup(req, "source_digest"))))
		}
	}
	if s.Admitted != nil {
		d := decode(s.Admitted)
		fmt.Fprintf(w, "  admitted   %s mode %s\n", recordTime(s, "trace.admitted"), e(str(d["mode"])))
		ds, _ := d["decisions"].([]any)
		for _, x := range ds {
			m, _ := x.(map[string]any)
			fmt.Fprintf(w, "    %s: %s (%s)\n", e(str(m["probe"])), e(str(m["verdict"])), e(str(m["reason"])))
		}
	}
	for _, st := range s.Stops {
		d := decode(st)
		fmt.Fprintf(w, "  stopped    by an administrator: %s\n", e(str(d["by"])))
	}
	if s.Refused != nil {
		d := decode(s.Refused)
		fmt.Fprintf(w, "  refused    %s at stage %s (%s): %s\n", recordTime(s, "trace.refused"), e(str(d["stage"])), e(str(d["code"])), e(str(d["reason"])))
	}
	if s.End != nil {
		d := decode(s.End)
		why := str(d["reason"])
		if why == "" {
			why = "its own end (exit(), -d or its command)"
		}
		fmt.Fprintf(w, "  ended      %s after %sms: %s, status %s", recordTime(s, "trace.end"), e(str(d["elapsed_ms"])), e(why), e(str(d["status"])))
		if er := str(d["error"]); er != "" {
			fmt.Fprintf(w, ", error %s", e(er))
		}
		fmt.Fprintln(w)
	} else if s.Refused == nil && len(s.Records) > 0 {
		fmt.Fprintln(w, "  ended      not recorded: running, or the daemon died")
	}
	if s.AttestError != "" {
		fmt.Fprintf(w, "  attestations: %s\n", e(s.AttestError))
		return nil
	}
	fmt.Fprintf(w, "  attestations (%d):\n", len(s.Attestations))
	var source, note string
	for _, a := range s.Attestations {
		if !a.Verified {
			fmt.Fprintf(w, "    %s: NOT VERIFIED: %s\n", e(a.File), e(a.Error))
			continue
		}
		p := a.Predicate
		fmt.Fprintf(w, "    %s: %d instructions, verdict %s, mode %s, signed by %s\n", e(p.Program.Name), p.Program.Insns, e(p.Decision.Verdict), e(p.Decision.Mode), e(a.Signer))
		fmt.Fprintf(w, "      generator %s %s (%s, sha256:%s verified=%v)\n", e(p.Generator.Name), e(p.Generator.Version), e(p.Generator.Identity.Path), e(short(p.Generator.Identity.Digest)), p.Generator.Identity.Verified)
		fmt.Fprintf(w, "      source    %s %s sha256:%s", e(p.Source.Kind), e(p.Source.Name), e(p.Source.Digest))
		if len(p.Source.Params) > 0 {
			b, _ := json.Marshal(p.Source.Params)
			fmt.Fprintf(w, " params %s", e(string(b)))
		}
		if len(p.Source.Args) > 0 {
			b, _ := json.Marshal(p.Source.Args)
			fmt.Fprintf(w, " args %s", e(string(b)))
		}
		fmt.Fprintln(w)
		if source == "" {
			source, note = a.Source, a.SourceNote
		}
	}
	if source != "" || note != "" {
		fmt.Fprintf(w, "  source (%s):\n", e(note))
		for _, line := range strings.Split(strings.TrimRight(source, "\n"), "\n") {
			if source != "" {
				fmt.Fprintf(w, "    | %s\n", escape.Text(line))
			}
		}
	}
	return nil
}

func recordTime(s *Session, event string) string {
	for _, r := range s.Records {
		if r.Event == event && r.Session == s.ID {
			return r.Time.UTC().Format(timeLayout)
		}
	}
	return "-"
}

func first(s string, _ bool) string { return s }

func short(h string) string {
	if len(h) > 16 {
		return h[:16]
	}
	return h
}
