package token

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/attest"
)

func TestTokenRevocations(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "revoked", "# revoked tokens\n\nabc123\n  def456  # bob's laptop\n\tabc123\n")
	r, err := LoadRevocations(p)
	if err != nil {
		t.Fatal(err)
	}
	if r.Len() != 2 {
		t.Errorf("Len = %d, want 2", r.Len())
	}
	check := func(jti string, want bool, wantErr string) {
		t.Helper()
		got, err := r.Revoked(jti)
		switch {
		case wantErr == "" && err != nil:
			t.Errorf("Revoked(%q): %v", jti, err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("Revoked(%q): error %v, want %q", jti, err, wantErr)
		case got != want:
			t.Errorf("Revoked(%q) = %v", jti, got)
		}
	}
	check("abc123", true, "")
	check("def456", true, "")
	check("ghi789", false, "")
	check("# revoked tokens", false, "")

	// Reload picks up a new revocation.
	writeFile(t, dir, "revoked", "abc123\nghi789\n")
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	check("ghi789", true, "")
	check("def456", false, "")

	// A broken file fails every check closed, the last good list
	// notwithstanding, until a reload succeeds.
	writeFile(t, dir, "revoked", "abc123\nthis line has spaces\n")
	if err := r.Reload(); err == nil || !strings.Contains(err.Error(), ":2:") {
		t.Fatalf("reload of a malformed list: %v", err)
	}
	check("abc123", false, "revocation list is broken")
	check("unrelated", false, "revocation list is broken")
	os.Remove(p)
	if err := r.Reload(); err == nil {
		t.Fatal("reload of a missing list succeeded")
	}
	check("unrelated", false, "refusing all tokens")

	// And Verify refuses every token meanwhile.
	k := genKey(t)
	v, err := NewVerifier(Config{Keys: []*attest.PublicKey{k.Public()}, Revoked: r, Now: fixed(t0)})
	if err != nil {
		t.Fatal(err)
	}
	raw := craft(k.Key, goodHeader(k), goodClaims())
	if _, err := v.Verify(raw); err == nil || !strings.Contains(err.Error(), "cannot check revocation") {
		t.Errorf("verify with a broken list: %v", err)
	}

	writeFile(t, dir, "revoked", "zzz\n")
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	check("abc123", false, "")
	check("zzz", true, "")
	if r.Len() != 1 {
		t.Errorf("Len = %d after recovery", r.Len())
	}
	if _, err := v.Verify(raw); err != nil {
		t.Errorf("verify after recovery: %v", err)
	}
}

func TestTokenLoadRevocationsRefuses(t *testing.T) {
	dir := t.TempDir()
	k := genKey(t)
	raw, err := Issue(k, IssueOptions{Subject: "a", Scope: "trace", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, want string }{
		{"missing", filepath.Join(dir, "nope"), "no such file"},
		{"directory", dir, "not a regular file"},
		{"fifo", fifo, "not a regular file"},
		{"too large", writeFile(t, dir, "big", strings.Repeat("a\n", MaxRevocationsFileSize/2+1)), "larger than"},
		{"whole token pasted", writeFile(t, dir, "tok", raw+"\n"), "a whole token?"},
		{"control character", writeFile(t, dir, "ctl", "a\x01b\n"), "printable ASCII"},
	} {
		if _, err := LoadRevocations(tc.path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	var nilR *Revocations
	if ok, err := nilR.Revoked("x"); ok || err != nil || nilR.Len() != 0 || nilR.Reload() != nil {
		t.Error("nil Revocations is not an empty list")
	}
}

func TestTokenRevocationsConcurrent(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "revoked", "a\n")
	r, err := LoadRevocations(p)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				r.Revoked("a")
				r.Len()
			}
		}()
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				r.Reload()
			}
		}()
	}
	wg.Wait()
}
