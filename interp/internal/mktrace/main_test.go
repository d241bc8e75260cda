package main

import (
	"bytes"
	"os"
	"testing"
)

// TestUpToDate fails when vm.go changed and vm_trace.go was not
// regenerated: the traced loop must be the same loop.
func TestUpToDate(t *testing.T) {
	src, err := os.ReadFile("../../vm.go")
	if err != nil {
		t.Fatal(err)
	}
	want, err := generate(src)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../vm_trace.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("vm_trace.go is stale: run go generate ./interp")
	}
}
