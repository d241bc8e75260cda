// Package oidctest mints identity providers' access tokens for tests
// with an independent implementation, Python's cryptography
// (testdata/oidc/mint.py), so that what the Go verifier accepts is not
// only what the Go signer it shares a library with produces.
package oidctest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// Spec is what mint.py makes (see its doc string): keys by name and
// kind, JWKS files of them in Dir, tokens signed with them.
type Spec struct {
	Dir    string                      `json:"dir"`
	Keys   map[string]string           `json:"keys"`
	JWKS   map[string][]map[string]any `json:"jwks"`
	Tokens map[string]Token            `json:"tokens"`
}

// Token is one token to mint: Key signs Header (alg from Alg unless the
// header has one) and Claims; HMACPEMOf signs with HS256 keyed by that
// key's public PEM; Unsigned leaves the signature empty.
type Token struct {
	Key       string         `json:"key,omitempty"`
	Alg       string         `json:"alg,omitempty"`
	Header    map[string]any `json:"header,omitempty"`
	Claims    map[string]any `json:"claims"`
	HMACPEMOf string         `json:"hmac_pem_of,omitempty"`
	Unsigned  bool           `json:"unsigned,omitempty"`
}

// Script is mint.py's path.
func Script() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "oidc", "mint.py")
}

// python is the first interpreter that has cryptography: the one on
// PATH (a pyenv's, say) or Debian's, where .ci/run installs
// python3-cryptography.
var python = sync.OnceValues(func() (string, error) {
	var last error
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		out, err := exec.Command(p, "-c", "import cryptography").CombinedOutput()
		if err == nil {
			return p, nil
		}
		last = fmt.Errorf("%s: %v %s", p, err, bytes.TrimSpace(out))
	}
	return "", last
})

// Need skips t without python3 and its cryptography package.
func Need(t testing.TB) {
	t.Helper()
	if _, err := python(); err != nil {
		t.Skipf("python3 with cryptography is needed to mint tokens independently (apt-get install python3-cryptography): %v", err)
	}
}

// Mint runs mint.py on s, writing s.JWKS into s.Dir, and returns the
// tokens by name.
func Mint(t testing.TB, s Spec) map[string]string {
	t.Helper()
	Need(t)
	in, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	py, _ := python()
	cmd := exec.Command(py, Script())
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mint.py: %v\n%s", err, stderr.String())
	}
	var res struct {
		Tokens map[string]string `json:"tokens"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("mint.py output: %v", err)
	}
	return res.Tokens
}
