package token

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"unicode"
)

// checkDuplicateKeys refuses a token whose header or claims hold a key
// twice. encoding/json, which the jwt library decodes with, keeps the
// last of two equal keys, and matches struct fields case-insensitively
// ("Scope" fills scope): another reader of the same bytes may take the
// first, so the token would grant one thing here and another there.
// Keys are compared as encoding/json compares them, after unescaping
// and case folding, at every depth. Segments that do not decode are
// left to the library, which says what is wrong with them.
func checkDuplicateKeys(raw string) error {
	parts := strings.SplitN(raw, ".", 3)
	if len(parts) != 3 {
		return nil
	}
	for i, what := range []string{"header", "claims"} {
		b, err := base64.RawURLEncoding.Strict().DecodeString(parts[i])
		if err != nil || !json.Valid(b) {
			continue
		}
		if key, ok := duplicateKey(b); ok {
			return invalid("token %s: the key %s appears more than once", what, quote(key))
		}
	}
	return nil
}

// duplicateKey finds a key that an object of the valid JSON b holds
// twice, folded as encoding/json folds keys.
func duplicateKey(b []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	// One set of keys per open object, nil for an array.
	var stack []map[string]bool
	expectKey := func() bool { return len(stack) > 0 && stack[len(stack)-1] != nil }
	afterKey := false // the last token was a key: the next is its value
	for {
		t, err := dec.Token()
		if err != nil {
			return "", false // the end, since b is valid
		}
		if d, ok := t.(json.Delim); ok {
			switch d {
			case '{':
				stack = append(stack, map[string]bool{})
			case '[':
				stack = append(stack, nil)
			default:
				stack = stack[:len(stack)-1]
			}
			afterKey = false
			continue
		}
		if expectKey() && !afterKey {
			k := t.(string)
			f := foldKey(k)
			if stack[len(stack)-1][f] {
				return k, true
			}
			stack[len(stack)-1][f] = true
			afterKey = true
			continue
		}
		afterKey = false
	}
}

// foldKey maps each character to the least of its case-folding set, as
// encoding/json does to match keys.
func foldKey(s string) string {
	var b strings.Builder
	for _, r := range s {
		for {
			r2 := unicode.SimpleFold(r)
			if r2 <= r {
				r = r2
				break
			}
			r = r2
		}
		b.WriteRune(r)
	}
	return b.String()
}
