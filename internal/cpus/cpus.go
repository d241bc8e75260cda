// Package cpus reads which CPUs the kernel has online: profile probes
// open one perf event on each.
package cpus

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Online reads /sys/devices/system/cpu/online ("0-3,5").
func Online() ([]int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return nil, err
	}
	return ParseList(strings.TrimSpace(string(b)))
}

// ParseList parses the kernel's CPU list format: ranges and single CPUs,
// comma-separated.
func ParseList(s string) ([]int, error) {
	var cpus []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("cpu list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("cpu list %q: bad range %q", s, part)
			}
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}
