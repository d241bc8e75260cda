package recording

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Info is what a recording holds, for replay --info.
type Info struct {
	File    string `json:"file"`
	Size    int64  `json:"size"`
	Version int    `json:"version"`
	Broker  string `json:"broker,omitempty"`
	Host    string `json:"host,omitempty"`
	Kernel  string `json:"kernel,omitempty"`
	CPUs    int    `json:"cpus"`
	Cpid    int    `json:"cpid,omitempty"`
	Script  Script `json:"script"`
	// Start is when recording started; End when it ended (cut short:
	// its last whole event), by the recording host's clocks.
	Start      time.Time   `json:"start"`
	End        time.Time   `json:"end"`
	DurationNs int64       `json:"duration_ns"`
	Events     int         `json:"events"`
	Chunks     int         `json:"chunks,omitempty"`
	Lost       uint64      `json:"lost_events"`
	Probes     []ProbeInfo `json:"probes"`
	// Complete says the recorder finished the file; CutShort says where
	// and why it ends before that.
	Complete bool   `json:"complete"`
	CutShort string `json:"cut_short,omitempty"`
}

type ProbeInfo struct {
	Name   string `json:"name"`
	Events int    `json:"events"`
}

// Inspect reads the recording at name to its end.
func Inspect(name string) (*Info, error) {
	r, c, err := Open(name)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	h := r.Header()
	in := &Info{File: name, Version: r.version, Broker: h.Broker, Host: h.Host, Kernel: h.Kernel, CPUs: h.CPUs, Cpid: h.Cpid, Script: h.Script, Start: h.Created}
	in.Probes = make([]ProbeInfo, len(h.Probes))
	for i, p := range h.Probes {
		in.Probes[i].Name = p.Name
	}
	for {
		_, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		in.Probes[r.probe].Events++
	}
	if fi, err := c.(*os.File).Stat(); err == nil {
		in.Size = fi.Size()
	}
	in.Events, in.Chunks, in.Lost, in.Complete, in.CutShort = r.events, r.chunks, r.lost, r.end, r.CutShort()
	d := r.Elapsed()
	if r.endMono > h.StartNs {
		d = time.Duration(r.endMono - h.StartNs)
	}
	in.DurationNs = int64(d)
	if !in.Start.IsZero() {
		in.End = in.Start.Add(d)
	}
	return in, nil
}

// WriteText prints in for a terminal.
func (in *Info) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s:\t"+format+"\n", append([]any{k}, a...)...) }
	p("file", "%s (%s)", in.File, plural(int(in.Size), "byte"))
	format := fmt.Sprintf("version %d", in.Version)
	if in.Broker != "" {
		format += ", recorded by tracebroker " + in.Broker
	}
	p("format", "%s", format)
	host := in.Host
	if in.Kernel != "" {
		host += ", Linux " + in.Kernel
	}
	p("host", "%s, %s", strings.TrimPrefix(host, ", "), plural(in.CPUs, "CPU"))
	if in.Cpid != 0 {
		p("cpid", "%d", in.Cpid)
	}
	const stamp = "2006-01-02 15:04:05.000 MST"
	if !in.Start.IsZero() {
		p("start", "%s", in.Start.UTC().Format(stamp))
		p("end", "%s", in.End.UTC().Format(stamp))
	}
	p("duration", "%s", time.Duration(in.DurationNs).Round(time.Millisecond))
	p("events", "%d, %d lost", in.Events, in.Lost)
	if in.Complete {
		p("status", "complete")
	} else {
		p("status", "%s", in.CutShort)
	}
	fmt.Fprintf(tw, "\nPROBE\tEVENTS\n")
	for _, pr := range in.Probes {
		fmt.Fprintf(tw, "%s\t%d\n", pr.Name, pr.Events)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, "\nThe script, %s:\n%s\n", in.Script.Name, strings.TrimRight(in.Script.Source, "\n")); err != nil {
		return err
	}
	if len(in.Script.Args) > 0 {
		// Quoted: an argument may hold blanks, or be empty.
		q := make([]string, len(in.Script.Args))
		for i, a := range in.Script.Args {
			q[i] = strconv.Quote(a)
		}
		_, err := fmt.Fprintf(w, "Its positional parameters: %s\n", strings.Join(q, " "))
		return err
	}
	return nil
}

func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
