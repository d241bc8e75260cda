package btsuite

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// ReadDiffers reads the list of tests that bpftrace 0.17 passes and
// tracebroker fails on purpose, because what the test expects is one of
// bpftrace's bugs: a line per test, its ID, a tab and why; '#' lines are
// comments. A test named twice, or without a reason, is an error.
func ReadDiffers(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, why, ok := strings.Cut(line, "\t")
		if !ok || strings.TrimSpace(why) == "" {
			return nil, fmt.Errorf("%s:%d: want TEST<tab>why", path, n)
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("%s:%d: %s named twice", path, n, id)
		}
		out[id] = strings.TrimSpace(why)
	}
	return out, sc.Err()
}
