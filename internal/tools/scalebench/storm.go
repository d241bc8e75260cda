package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// stormScript prints one line per getcwd of the -c child.
const stormScript = `tracepoint:syscalls:sys_enter_getcwd /pid == cpid/ { printf("%d %s\n", pid, comm); }`

const stormEvents = 200000

func (b *bench) storm() error {
	child := workloadCmd(b.self, "storm", fmt.Sprint(stormEvents))
	fmt.Printf("script: %s\n%d printf events of a -c child, output to /dev/null; runs: %d per tool, medians;\nthen one run each with the output to a file, counted\n\n",
		stormScript, stormEvents, b.heavyRuns)
	wall, rss := series{}, series{}
	err := b.alternate(b.heavyRuns, false, func(t tool, _ int) error {
		argv, env := t.command(stormScript, opts{child: child})
		s, err := runJob(job{path: t.path, argv: argv, env: env, stdoutFile: os.DevNull, timeout: b.timeout})
		if err != nil {
			return err
		}
		wall.add(t, float64(s.wall))
		rss.add(t, float64(s.rss))
		return nil
	})
	if err != nil {
		return err
	}
	comm := filepath.Base(b.self)
	if len(comm) > 15 {
		comm = comm[:15]
	}
	rows := [][]string{{"tool", "wall", "peak RSS", "wall / bpftrace", "printed", "lost"}}
	for _, t := range b.tools {
		argv, env := t.command(stormScript, opts{child: child})
		out := filepath.Join(b.tmp, "storm.out")
		printed := 0
		s, err := runJob(job{path: t.path, argv: argv, env: env, stdoutFile: out, timeout: b.timeout, onLine: func(l string) {
			if strings.HasSuffix(l, " "+comm) {
				printed++
			}
		}})
		if err != nil {
			return err
		}
		os.Remove(out)
		rows = append(rows, []string{t.name, ms(time.Duration(wall.med(t.name))), mib(int64(rss.med(t.name))),
			ratio(wall.med(t.name), wall.med("bpftrace")), fmt.Sprintf("%d of %d", printed, stormEvents), fmt.Sprint(s.lost)})
	}
	fmt.Print(table(rows))
	return nil
}
