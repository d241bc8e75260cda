package attest

import (
	"testing"
)

// The cost attestation adds to a run: measuring the broker (hashing the
// executable once per process; later measurements hit the cache) and
// signing one attestation per program.
//
//	go test ./attest -run '^$' -bench . -benchmem

func BenchmarkMeasureSelfUncached(b *testing.B) {
	for b.Loop() {
		if _, err := NewMeasurer(MeasureOptions{}).Measure(0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMeasureSelfCached(b *testing.B) {
	m := NewMeasurer(MeasureOptions{})
	m.Measure(0)
	b.ResetTimer()
	for b.Loop() {
		if _, err := m.Measure(0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAttestProgram(b *testing.B) {
	k, _ := GenerateKey()
	p := ProgramPredicate{Program: ProgramInfo{Name: "tracepoint:syscalls:sys_enter_openat"}, Source: Source{Kind: "script", Text: "tracepoint:syscalls:sys_enter_openat { @[comm] = count(); }"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := AttestProgram(countProgram(), p, k); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyProgram(b *testing.B) {
	k, _ := GenerateKey()
	env, _, err := AttestProgram(countProgram(), ProgramPredicate{Program: ProgramInfo{Name: "x"}, Source: Source{Kind: "script"}}, k)
	if err != nil {
		b.Fatal(err)
	}
	trust := NewTrust(k.Public())
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := VerifyProgram(env, trust, nil); err != nil {
			b.Fatal(err)
		}
	}
}
