package compile

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/bpf/usdt"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// fakeUSDT knows /bin/app with prov:reg (two register arguments),
// prov:mem (one in memory, one constant) and other:sem (a semaphore),
// at two places for prov:reg.
type fakeUSDT struct{}

func (fakeUSDT) ResolveUSDT(path, provider, name string) ([]USDTTarget, error) {
	if path != "/bin/app" && path != "" {
		return nil, fmt.Errorf("no file %s", path)
	}
	regs, _ := usdt.ParseArgs("-4@%edi 8@%rdx")
	mem, _ := usdt.ParseArgs("-8@-16(%rbp,%rax,4) 2@$-3")
	all := []USDTTarget{
		{Provider: "prov", Name: "reg", Addr: 0x401100, Offset: 0x1100, Args: regs},
		{Provider: "prov", Name: "reg", Addr: 0x401200, Offset: 0x1200, Args: regs},
		{Provider: "prov", Name: "mem", Addr: 0x401300, Offset: 0x1300, Args: mem},
		{Provider: "other", Name: "sem", Addr: 0x401400, Offset: 0x1400, RefCtr: 0x3010},
	}
	var out []USDTTarget
	for _, t := range all {
		if (provider == "*" || provider == t.Provider) && (name == "*" || name == t.Name || strings.HasSuffix(name, "*") && strings.HasPrefix(t.Name, strings.TrimSuffix(name, "*"))) {
			t.Path, t.Written = "/bin/app", "/bin/app"
			out = append(out, t)
		}
	}
	return out, nil
}

func compileUSDT(t *testing.T, src string) (*program.Program, error) {
	t.Helper()
	f, err := syntax.Parse("stdin", []byte(src))
	if err != nil {
		return nil, err
	}
	prog, _, err := Compile(f, Options{USDT: fakeUSDT{}})
	return prog, err
}

func TestUSDT(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		probes    []string // name@offset+refctr
		userReads []string // probe_read_user size@+off
		interp    bool     // interpreter mode runs it
		err       string
	}{
		{name: "a site at each place", src: `usdt:/bin/app:prov:reg { @[probe] = sum(arg0); }`,
			probes: []string{"uprobe:/bin/app:0x401100@0x1100+0x0", "uprobe:/bin/app:0x401200@0x1200+0x0"}, interp: true},
		{name: "any provider", src: `usdt:/bin/app:sem { @ = count(); }`, probes: []string{"uprobe:/bin/app:0x401400@0x1400+0x3010"}, interp: true},
		{name: "wildcard", src: `usdt:/bin/app:prov:* { @ = count(); }`, probes: []string{"uprobe:/bin/app:0x401100@0x1100+0x0", "uprobe:/bin/app:0x401200@0x1200+0x0", "uprobe:/bin/app:0x401300@0x1300+0x0"}, interp: true},
		{name: "register string", src: `usdt:/bin/app:prov:reg { printf("%s\n", str(arg1)); }`, probes: []string{"uprobe:/bin/app:0x401100@0x1100+0x0", "uprobe:/bin/app:0x401200@0x1200+0x0"}, interp: true},
		{name: "memory argument", src: `usdt:/bin/app:prov:mem { @ = arg0 + arg1; }`, probes: []string{"uprobe:/bin/app:0x401300@0x1300+0x0"}, userReads: []string{"8@+0"}},
		{name: "no such argument", src: `usdt:/bin/app:prov:reg { @ = arg2; }`, err: "usdt probe prov:reg has 2 arguments: arg2 is not one"},
		{name: "no such probe", src: `usdt:/bin/app:prov:nosuch { @ = 1; }`, err: "No probes matched usdt:/bin/app:prov:nosuch"},
		{name: "too many parts", src: `usdt:/bin/app:a:b:c { @ = 1; }`, err: "usdt probe must be usdt:PATH:[PROVIDER:]NAME"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prog, err := compileUSDT(t, tc.src)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range prog.Probes {
				if p.Kind != program.Uprobe {
					t.Errorf("%s: kind %s", p.Name, p.Kind)
				}
				if err := p.CheckName(); err != nil {
					t.Error(err)
				}
				got = append(got, fmt.Sprintf("%s@%#x+%#x", p.Name, p.Offset, p.RefCtrOffset))
				if (p.KernelOnly == "") != tc.interp {
					t.Errorf("%s: interpreter mode refuses it: %q", p.Name, p.KernelOnly)
				}
				if r := helperReads(p.Insns, asm.FnProbeReadUser); strings.Join(r, " ") != strings.Join(tc.userReads, " ") {
					t.Errorf("%s: user reads %v, want %v", p.Name, r, tc.userReads)
				}
			}
			if strings.Join(got, " ") != strings.Join(tc.probes, " ") {
				t.Errorf("probes %v, want %v", got, tc.probes)
			}
		})
	}
}
