package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
)

// The cost a probe adds to each event of the traced process, as
// broker's BenchmarkProbeOverhead measures it, but for a -c child and
// each tool: the child's own CPU time (user+sys, getrusage around its
// loop) per getcwd, less the same loop's untraced.
var eventScripts = []struct{ name, script string }{
	{"count", `tracepoint:syscalls:sys_enter_getcwd /pid == cpid/ { @[comm] = count(); }`},
	{"hist", `tracepoint:syscalls:sys_enter_getcwd /pid == cpid/ { @ = hist(args->size); }`},
	{"printf", `tracepoint:syscalls:sys_enter_getcwd /pid == cpid/ { printf("%d %s\n", pid, comm); }`},
}

func (b *bench) perEvent() error {
	fmt.Printf("a -c child calls getcwd %d times; its CPU time (user+sys) per call, less the untraced loop's; runs: %d per tool and script, medians;\noutput to /dev/null\n", b.events, b.eventRuns)
	for _, s := range eventScripts {
		fmt.Printf("  %-7s %s\n", s.name, s.script)
	}
	result := filepath.Join(b.tmp, "loop.cpu")
	child := workloadCmd(b.self, "loop", fmt.Sprint(b.events), result)
	var base []float64
	perCall := map[string]series{}
	lost := map[string]map[string][]uint64{}
	for _, s := range eventScripts {
		perCall[s.name] = series{}
		lost[s.name] = map[string][]uint64{}
	}
	for round := -1; round < b.eventRuns; round++ {
		// The untraced loop, then each script with each tool.
		if err := exec.Command(b.self, "workload", "loop", fmt.Sprint(b.events), result).Run(); err != nil {
			return fmt.Errorf("untraced loop: %v", err)
		}
		cpu, err := readInt(result)
		if err != nil {
			return err
		}
		if round >= 0 {
			base = append(base, float64(cpu)/float64(b.events))
		}
		for _, sc := range eventScripts {
			for _, t := range b.tools {
				os.Remove(result)
				argv, env := t.command(sc.script, opts{child: child})
				s, err := runJob(job{path: t.path, argv: argv, env: env, stdoutFile: os.DevNull, timeout: b.timeout})
				if err != nil {
					return err
				}
				cpu, err := readInt(result)
				if err != nil {
					return fmt.Errorf("%s %s: the child's CPU time: %v", t.name, sc.name, err)
				}
				if round >= 0 {
					perCall[sc.name].add(t, float64(cpu)/float64(b.events))
					lost[sc.name][t.name] = append(lost[sc.name][t.name], s.lost)
				}
			}
		}
	}
	b0 := median(base)
	fmt.Printf("\nuntraced: %.0f ns per getcwd (runs: %.0f .. %.0f)\n", b0, slices.Min(base), slices.Max(base))
	for _, sc := range eventScripts {
		fmt.Printf("\n%s\n", sc.name)
		rows := [][]string{{"tool", "ns per call", "added", "added / bpftrace's", "added / JIT's", "lost (per run)"}}
		added := func(name string) float64 {
			if len(perCall[sc.name][name]) == 0 {
				return math.NaN()
			}
			return perCall[sc.name].med(name) - b0
		}
		for _, t := range b.tools {
			n := t.name
			rows = append(rows, []string{n, fmt.Sprintf("%.0f", perCall[sc.name].med(n)), fmt.Sprintf("%+.0f ns", added(n)),
				ratio(added(n), added("bpftrace")), ratio(added(n), added("tracebroker jit")), fmt.Sprint(lost[sc.name][n])})
		}
		fmt.Print(table(rows))
		if g := goal(added("tracebroker interp"), added("tracebroker jit"), 1.5); g != "-" {
			fmt.Printf("goal (issue 21), interp's added per event: %s of JIT's\n", g)
		}
	}
	return nil
}
