package main

import (
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// probeSet is a number of probes attached at once, each counted by name,
// and the run exits as soon as they are attached.
type probeSet struct {
	name, spec, about string
	uprobe            bool // spec has LIBC for the library
}

var probeSets = []probeSet{
	{name: "tp360", spec: "tracepoint:syscalls:sys_enter_*", about: "every syscall entry tracepoint (360 on 6.18)"},
	{name: "tp720", spec: "tracepoint:syscalls:sys_*", about: "every syscall tracepoint, entry and exit (720 on 6.18)"},
	{name: "up1017", spec: "uprobe:LIBC:*y*", uprobe: true,
		about: "libc's functions with a y in their name (1,017 in Debian 12's glibc 2.36): as many as the compiler's 1,024 probes let tracebroker attach one uprobe per function (on kernels without uprobe.multi links)"},
	{name: "up1708", spec: "uprobe:LIBC:*te*, uprobe:LIBC:*en*", uprobe: true,
		about: "libc's functions with te in their name, then those with en (980 + 728 = 1,708 in the same, 124 of them in both): near the issue's 1,670, two wildcards (two uprobe.multi links), and none of glibc's AVX2 string functions, whose first instruction the kernel will not probe in a file that is mapped (*et* has __memset_avx2_unaligned: with -real-libc it fails in every tool)"},
}

// issueSet is the probe set issue 21's uprobe goal is judged at: 1,670
// uprobes fully detached in at most half bpftrace's time.
const issueSet = "up1708"

func probeSetNames() []string {
	var out []string
	for _, p := range probeSets {
		out = append(out, p.name)
	}
	return out
}

func findProbeSet(name string) (probeSet, bool) {
	for _, p := range probeSets {
		if p.name == name {
			return p, true
		}
	}
	return probeSet{}, false
}

func (b *bench) usesUprobes() bool {
	for _, n := range b.probeSets {
		if p, _ := findProbeSet(n); p.uprobe {
			return true
		}
	}
	return false
}

func (b *bench) probeScript(p probeSet, end string) string {
	spec := p.spec
	if p.uprobe {
		spec = strings.ReplaceAll(spec, "LIBC", b.libc)
	}
	return spec + ` { @[probe] = count(); } ` + end
}

// exitAtOnce ends a run as soon as it is attached; busyEnd lets the
// probes count for a while first (both tools stop their probes when
// BEGIN exits, before any event is counted).
const (
	exitAtOnce = `BEGIN { exit(); }`
	busyEnd    = `interval:s:2 { exit(); }`
)

func (b *bench) probes() error {
	fmt.Printf("script: SPEC { @[probe] = count(); } BEGIN { exit(); }; output through a pipe; runs: %d per tool, medians\n", b.heavyRuns)
	if b.usesUprobes() {
		fmt.Printf("uprobes attach to %s\n", b.libc)
	}
	fmt.Println(`"Attaching": until the "Attaching N probes..." line, which both tools print when their programs are loaded, before attaching;`)
	fmt.Println(`"returned": until the command returns; "detached": until it and every process it left behind (tracebroker's detach helper) have exited.`)
	fmt.Println(`threads: peak of the tool's, and of its helper's (sampled every 5 ms); peak RSS: the tool's / the helper's.`)
	for _, name := range b.probeSets {
		p, _ := findProbeSet(name)
		script := b.probeScript(p, exitAtOnce)
		fmt.Printf("\n%s: %s\n  %s\n", p.name, p.about, script)
		attach, wall, detached, rss, hrss, thr, hthr := series{}, series{}, series{}, series{}, series{}, series{}, series{}
		probes := map[string]int{}
		failed := map[string]string{}
		err := b.alternate(b.heavyRuns, false, func(t tool, _ int) error {
			if failed[t.name] != "" {
				return nil
			}
			argv, env := t.command(script, opts{})
			s, err := runJob(job{path: t.path, argv: argv, env: env, threads: true, timeout: b.timeout})
			if err != nil {
				failed[t.name] = err.Error()
				return nil
			}
			probes[t.name] = s.attaching
			attach.add(t, float64(s.attach))
			wall.add(t, float64(s.wall))
			detached.add(t, float64(s.detached))
			rss.add(t, float64(s.rss))
			hrss.add(t, float64(s.helperRSS))
			thr.add(t, float64(s.threads))
			hthr.add(t, float64(s.helperThreads))
			return nil
		})
		if err != nil {
			return err
		}
		rows := [][]string{{"tool", "probes", "Attaching", "returned", "detached", "threads", "peak RSS", "detached / bpftrace"}}
		for _, t := range b.tools {
			if failed[t.name] != "" {
				rows = append(rows, []string{t.name, "FAILED", "-", "-", "-", "-", "-", "-"})
				continue
			}
			n := t.name
			rows = append(rows, []string{n, fmt.Sprint(probes[n]), secs(time.Duration(attach.med(n))), secs(time.Duration(wall.med(n))),
				secs(time.Duration(detached.med(n))), fmt.Sprintf("%.0f + %.0f", thr.med(n), hthr.med(n)),
				mib(int64(rss.med(n))) + " / " + mib(int64(hrss.med(n))), ratio(detached.med(n), detached.med("bpftrace"))})
		}
		fmt.Print(table(rows))
		for _, t := range b.tools {
			if why := failed[t.name]; why != "" {
				fmt.Printf("!!! %s FAILED: %s\n", t.name, why)
			}
		}
		if (p.name == "tp360" || p.name == issueSet) && b.bpftrace && failed["bpftrace"] == "" {
			for _, t := range b.tools {
				if t.isBpftrace() {
					continue
				}
				g := "not measured (it failed)"
				if failed[t.name] == "" {
					g = goal(detached.med(t.name), detached.med("bpftrace"), 0.5)
				}
				fmt.Printf("goal (issue 21), %s: detached %s, with a handful of threads\n", t.name, g)
			}
		}
	}
	if b.busySet != "" {
		return b.probesBusy()
	}
	return nil
}

// probesBusy attaches the busy set once per tool while a workload makes
// syscalls as fast as it can, and reports the events each lost.
func (b *bench) probesBusy() error {
	p, _ := findProbeSet(b.busySet)
	script := b.probeScript(p, busyEnd)
	fmt.Printf("\nlost events: %s attached once per tool while a workload makes syscalls of 5 kinds in a loop (one run each)\n  %s\n", p.name, script)
	busy := exec.Command(b.self, "workload", "busy")
	if err := busy.Start(); err != nil {
		return err
	}
	defer func() {
		busy.Process.Kill()
		busy.Wait()
	}()
	time.Sleep(100 * time.Millisecond)
	rows := [][]string{{"tool", "probes", "returned", "detached", "events counted", "lost"}}
	for _, t := range b.tools {
		argv, env := t.command(script, opts{})
		var total int64
		s, err := runJob(job{path: t.path, argv: argv, env: env, exclude: []int{busy.Process.Pid}, timeout: b.timeout, onLine: func(l string) {
			if v, ok := mapValue(l); ok {
				total += v
			}
		}})
		if err != nil {
			rows = append(rows, []string{t.name, "FAILED: " + err.Error()})
			continue
		}
		lost := fmt.Sprint(s.lost)
		if s.lost > 0 {
			lost += " !!!"
		}
		rows = append(rows, []string{t.name, fmt.Sprint(s.attaching), secs(s.wall), secs(s.detached), fmt.Sprint(total), lost})
	}
	fmt.Print(table(rows))
	fmt.Println("events counted: the sum of @[probe], from the first probe attached to 2 s after the last: it depends on how long attaching took.")
	return nil
}
