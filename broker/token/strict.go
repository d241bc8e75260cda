package token

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"unicode"
	"unicode/utf8"
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
// twice, folded as encoding/json folds keys. It walks the bytes (b is
// valid, so strings, objects and arrays are well formed) and decodes
// only keys that hold an escape.
func duplicateKey(b []byte) (string, bool) {
	type frame struct {
		obj, wantKey bool
		keys         map[string]bool
	}
	var stack []frame
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '{':
			stack = append(stack, frame{obj: true, wantKey: true})
		case '[':
			stack = append(stack, frame{})
		case '}', ']':
			stack = stack[:len(stack)-1]
		case ',':
			if top := &stack[len(stack)-1]; top.obj {
				top.wantKey = true
			}
		case '"':
			start, escaped := i, false
			for i++; b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
					escaped = true
				}
			}
			if len(stack) == 0 || !stack[len(stack)-1].wantKey {
				continue
			}
			top := &stack[len(stack)-1]
			top.wantKey = false
			key := string(b[start+1 : i])
			if escaped {
				json.Unmarshal(b[start:i+1], &key)
			}
			f := foldKey(key)
			if top.keys[f] {
				return key, true
			}
			if top.keys == nil {
				top.keys = map[string]bool{}
			}
			top.keys[f] = true
		}
	}
	return "", false
}

// foldKey maps each character to the least of its case-folding set, as
// encoding/json does to match keys (for ASCII letters, the upper case).
func foldKey(s string) string {
	ascii := true
	for i := 0; i < len(s) && ascii; i++ {
		ascii = s[i] < utf8.RuneSelf
	}
	if ascii {
		return strings.ToUpper(s)
	}
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
