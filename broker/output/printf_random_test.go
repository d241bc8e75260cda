package output

import (
	"os"
	"strconv"
	"strings"
	"testing"

	p "github.com/tracebroker/tracebroker/broker/program"
)

func init() {
	goldenCases["printf_random"] = func(out Printer) {
		calls, err := parsePrintfScript("testdata/printf_random.bt")
		if err != nil {
			panic(err)
		}
		out.AttachedProbes(1)
		for _, c := range calls {
			out.Printf(Sprintf(c.format, c.args))
		}
		out.Exit(nil)
	}
}

type printfCall struct {
	format string
	args   []p.Value
}

// parsePrintfScript reads the `printf("fmt", args);` lines that
// gen_printf_random.py writes: integer literals (int64, as bpftrace types
// them) and string literals without commas or quotes.
func parsePrintfScript(path string) ([]printfCall, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var calls []printfCall
	for _, line := range strings.Split(string(src), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "printf(") {
			continue
		}
		body := strings.TrimSuffix(strings.TrimPrefix(line, "printf("), ");")
		end := strings.Index(body[1:], `"`) + 1
		for body[end-1] == '\\' {
			end = strings.Index(body[end+1:], `"`) + end + 1
		}
		format, err := strconv.Unquote(body[:end+1])
		if err != nil {
			return nil, err
		}
		c := printfCall{format: format}
		for _, a := range strings.Split(body[end+1:], ",")[1:] {
			a = strings.TrimSpace(a)
			if strings.HasPrefix(a, `"`) {
				s, err := strconv.Unquote(a)
				if err != nil {
					return nil, err
				}
				c.args = append(c.args, S(s))
				continue
			}
			n, err := strconv.ParseInt(a, 10, 64)
			if err != nil {
				return nil, err
			}
			c.args = append(c.args, I(n))
		}
		calls = append(calls, c)
	}
	return calls, nil
}

func TestParsePrintfScript(t *testing.T) {
	calls, err := parsePrintfScript("testdata/printf_random.bt")
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 150 {
		t.Fatalf("parsed %d calls, want 150", len(calls))
	}
	for _, c := range calls {
		if n := len(ParseFormat(c.format)); n != len(c.args) {
			t.Errorf("%q: %d conversions for %d arguments", c.format, n, len(c.args))
		}
	}
}
