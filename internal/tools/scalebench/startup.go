package main

import (
	"fmt"
	"os"
	"time"
)

// The one-liner: what attaching and exiting at once costs.
const startupScript = `tracepoint:syscalls:sys_enter_openat { @[comm] = count(); } BEGIN { exit(); }`

// series collects one figure per tool over the runs.
type series map[string][]float64

func (s series) add(t tool, v float64) { s[t.name] = append(s[t.name], v) }
func (s series) med(name string) float64 {
	return median(s[name])
}

// alternate runs each tool once per round, rounds times, after one
// untimed run each if warm: the tools take turns, so that what the
// shared machine does meanwhile falls on all of them.
func (b *bench) alternate(rounds int, warm bool, run func(t tool, round int) error) error {
	if warm {
		for _, t := range b.tools {
			if err := run(t, -1); err != nil {
				return err
			}
		}
	}
	for i := range rounds {
		for _, t := range b.tools {
			if err := run(t, i); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *bench) startup() error {
	fmt.Printf("script: %s\nruns: %d per tool after one to warm the page cache, medians; output to /dev/null\n\n", startupScript, b.runs)
	wall, detached, rss := series{}, series{}, series{}
	err := b.alternate(b.runs, true, func(t tool, round int) error {
		argv, env := t.command(startupScript, opts{})
		s, err := runJob(job{path: t.path, argv: argv, env: env, stdoutFile: os.DevNull, timeout: b.timeout})
		if err != nil {
			return err
		}
		if round >= 0 {
			wall.add(t, float64(s.wall))
			detached.add(t, float64(s.detached))
			rss.add(t, float64(s.rss))
		}
		return nil
	})
	if err != nil {
		return err
	}
	rows := [][]string{{"tool", "wall", "until detached", "peak RSS", "wall / bpftrace", "RSS / bpftrace"}}
	for _, t := range b.tools {
		rows = append(rows, []string{t.name,
			ms(time.Duration(wall.med(t.name))), ms(time.Duration(detached.med(t.name))), mib(int64(rss.med(t.name))),
			ratio(wall.med(t.name), wall.med("bpftrace")), ratio(rss.med(t.name), rss.med("bpftrace"))})
	}
	fmt.Print(table(rows))
	fmt.Println("\"until detached\": until tracebroker's detach helper has exited too (bpftrace detaches before it exits).")
	if bt := wall.med("bpftrace"); bt > 0 {
		for _, t := range b.tools {
			if t.isBpftrace() {
				continue
			}
			fmt.Printf("goal (issue 21), %s: wall %s, peak RSS %s\n", t.name,
				goal(wall.med(t.name), bt, 0.05), goal(rss.med(t.name), rss.med("bpftrace"), 0.15))
		}
	}
	return nil
}
