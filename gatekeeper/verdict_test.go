package gatekeeper

import (
	"testing"

	"github.com/tracebroker/tracebroker/gatekeeper/abi"
)

func TestSelectMode(t *testing.T) {
	tests := []struct {
		v     Verdict
		plat  Platform
		final Verdict
		mode  string
		why   string
	}{
		{Deny, jitOn, Deny, "", ""},
		{Deny, hvciJIT, Deny, "", ""},
		{Any, jitOn, Any, ModeJIT, "JIT available"},
		{Any, jitOff, Any, ModeInterpreter, "the kernel JIT is not available: interpreter"},
		{Any, hvciJIT, Any, ModeInterpreter, "HVCI on: interpreter"},
		{Any, hvciNoJIT, Any, ModeInterpreter, "HVCI on: interpreter"},
		{JIT, jitOn, JIT, ModeJIT, "JIT available"},
		{JIT, jitOff, Deny, "", "the kernel JIT is not available"},
		{JIT, hvciJIT, Deny, "", "HVCI forbids JIT-compiled code"},
		{JIT, hvciNoJIT, Deny, "", "HVCI forbids JIT-compiled code"},
		{Interpreter, jitOn, Interpreter, ModeInterpreter, "interpreter"},
		{Interpreter, jitOff, Interpreter, ModeInterpreter, "interpreter"},
		{Interpreter, hvciJIT, Interpreter, ModeInterpreter, "interpreter"},
		{Interpreter, hvciNoJIT, Interpreter, ModeInterpreter, "interpreter"},
		{Verdict(7), jitOn, Deny, "", ""},
	}
	for _, tt := range tests {
		final, mode, why := selectMode(tt.v, tt.plat)
		if final != tt.final || mode != tt.mode || why != tt.why {
			t.Errorf("selectMode(%v, %+v) = %v, %q, %q; want %v, %q, %q", tt.v, tt.plat, final, mode, why, tt.final, tt.mode, tt.why)
		}
	}
}

func TestVerdictNames(t *testing.T) {
	for name, n := range abi.VerdictNames {
		v := Verdict(n)
		if v.String() != name {
			t.Errorf("Verdict(%d).String() = %q, want %q", n, v, name)
		}
		var back Verdict
		if err := back.UnmarshalText([]byte(name)); err != nil || back != v {
			t.Errorf("UnmarshalText(%q) = %v, %v", name, back, err)
		}
	}
	if s := Verdict(9).String(); s != "verdict(9)" {
		t.Errorf("Verdict(9) = %q", s)
	}
	if _, err := Verdict(4).MarshalText(); err == nil {
		t.Error("MarshalText of 4 succeeds")
	}
	var v Verdict
	if err := v.UnmarshalText([]byte("allow")); err == nil {
		t.Error(`UnmarshalText("allow") succeeds`)
	}
}
