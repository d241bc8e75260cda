package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// mapsScript counts each size a getcwd of the -c child asks for: the
// child asks for N distinct sizes, so the map has N keys at exit.
const mapsScript = `tracepoint:syscalls:sys_enter_getcwd /pid == cpid/ { @[args->size] = count(); }`

// smallKeys is the map size whose peak RSS is subtracted to give the
// RSS per key of the larger maps.
const smallKeys = 100

func (b *bench) maps() error {
	fmt.Printf("script: %s\n", mapsScript)
	fmt.Printf("a -c child calls getcwd(buf, k) for k = 1..N, writes the time and exits; the tool prints N lines @[k]: 1.\n")
	fmt.Printf("map capacity max(N, 4096) for both (--max-map-keys, BPFTRACE_MAP_KEYS_MAX); output to a file; runs: %d per tool, medians.\n", b.heavyRuns)
	fmt.Printf("\"at exit\": from the child's last getcwd to the tool's return (printing the map); B/key: (peak RSS at N - at %d keys) / N.\n", smallKeys)
	rssSmall := map[string]float64{}
	for _, n := range append([]int{smallKeys}, b.keys...) {
		wall, atExit, rss := series{}, series{}, series{}
		lost := map[string][]uint64{}
		bad := map[string][]string{}      // runs whose output is not the expected map
		digest := map[string]lineDigest{} // of the first run
		stamp := filepath.Join(b.tmp, "sizes.stamp")
		err := b.alternate(b.heavyRuns, false, func(t tool, round int) error {
			// The first run's output is kept, to show how it differs
			// from bpftrace's if it does.
			out := b.firstOut(n, t)
			if round > 0 {
				out = filepath.Join(b.tmp, "maps.out")
				defer os.Remove(out)
			}
			argv, env := t.command(mapsScript, opts{child: workloadCmd(b.self, "sizes", fmt.Sprint(n), stamp), keys: max(n, 4096)})
			kc := newKeyChecker(n)
			var d lineDigest
			s, err := runJob(job{path: t.path, argv: argv, env: env, stdoutFile: out, timeout: b.timeout,
				onLine: func(l string) { kc.add(l); d.add(l) }})
			if err != nil {
				return err
			}
			childEnd, err := readInt(stamp)
			if err != nil {
				return fmt.Errorf("%s: the child's time: %v", t.name, err)
			}
			wall.add(t, float64(s.wall))
			atExit.add(t, float64(s.endMono-childEnd))
			rss.add(t, float64(s.rss))
			lost[t.name] = append(lost[t.name], s.lost)
			if c := kc.result(); !c.ok(n) {
				bad[t.name] = append(bad[t.name], fmt.Sprintf("run %d: %v", round+1, c))
			}
			if round == 0 {
				digest[t.name] = d
			}
			return nil
		})
		if err != nil {
			return err
		}
		if n == smallKeys {
			for _, t := range b.tools {
				rssSmall[t.name] = rss.med(t.name)
			}
			fmt.Printf("\nbaseline, N = %d: peak RSS", n)
			for _, t := range b.tools {
				fmt.Printf(", %s %s", t.name, mib(int64(rss.med(t.name))))
			}
			fmt.Println()
			continue
		}
		fmt.Printf("\nN = %d keys\n", n)
		rows := [][]string{{"tool", "wall", "at exit", "peak RSS", "B/key", "lost (per run)", "output", "wall / bpftrace", "at exit / bpftrace"}}
		for _, t := range b.tools {
			perKey := (rss.med(t.name) - rssSmall[t.name]) * 1024 / float64(n)
			output := "ok"
			if len(bad[t.name]) > 0 {
				output = fmt.Sprintf("WRONG in %d runs", len(bad[t.name]))
			}
			rows = append(rows, []string{t.name, secs(time.Duration(wall.med(t.name))), secs(time.Duration(atExit.med(t.name))),
				mib(int64(rss.med(t.name))), fmt.Sprintf("%.0f", perKey), fmt.Sprint(lost[t.name]), output,
				ratio(wall.med(t.name), wall.med("bpftrace")), ratio(atExit.med(t.name), atExit.med("bpftrace"))})
		}
		fmt.Print(table(rows))
		for _, t := range b.tools {
			for _, why := range bad[t.name] {
				fmt.Printf("!!! %s, N = %d: output is not the expected %d lines @[k]: 1: %s\n", t.name, n, n, why)
			}
		}
		if ref, ok := digest["bpftrace"]; ok {
			for _, t := range b.tools {
				if t.isBpftrace() {
					continue
				}
				if digest[t.name] == ref {
					fmt.Printf("%s's output = bpftrace's (first runs, lines sorted)\n", t.name)
					continue
				}
				// Sorting 10^6 lines takes memory this process must not
				// hold (lowerPeak): a workload does it.
				diff, _ := exec.Command(b.self, "workload", "compare", b.firstOut(n, t), b.firstOut(n, tool{name: "bpftrace"})).CombinedOutput()
				fmt.Printf("!!! MISMATCH %s vs bpftrace, N = %d (first runs, lines sorted): %s\n", t.name, n, strings.TrimSpace(string(diff)))
			}
		}
		for _, t := range b.tools {
			os.Remove(b.firstOut(n, t))
		}
		if n == 1000000 && b.bpftrace {
			for _, t := range b.tools {
				if t.isBpftrace() {
					continue
				}
				perKey := (rss.med(t.name) - rssSmall[t.name]) * 1024 / float64(n)
				rssGoal := "met"
				if perKey > 200 {
					rssGoal = "NOT met"
				}
				fmt.Printf("goal (issue 21), %s at 10^6 keys: wall %s, at exit %s; %.0f B per key: %s (<= 200 B)\n", t.name,
					goal(wall.med(t.name), wall.med("bpftrace"), 0.5), goal(atExit.med(t.name), atExit.med("bpftrace"), 0.5), perKey, rssGoal)
			}
		}
	}
	return nil
}

// firstOut is where t's first run at n keys writes its output.
func (b *bench) firstOut(n int, t tool) string {
	return filepath.Join(b.tmp, fmt.Sprintf("maps-%d-%s.out", n, strings.ReplaceAll(t.name, " ", "-")))
}
