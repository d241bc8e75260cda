package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// MaxField bounds each string of a record's data, keys included, in
// bytes of UTF-8: a longer one is cut (see BoundString). A requester
// controls many of them (a script's name, a generator's parameters, the
// errors that quote them), and each record is fsynced: what one request
// costs the disk must not be what it chooses.
const MaxField = 1024

// TruncatedKey is the key Append adds to a record's data when the data
// was over MaxData: its value says how long the data was, its SHA-256,
// and how many values were left out to bring it under.
const TruncatedKey = "audit.truncated"

// boundReserve is kept free under MaxData while values are copied: room
// for the last key and value let in (each at most a MaxField string,
// escaped), the closing brackets and TruncatedKey's value.
const boundReserve = 16 << 10

// BoundString returns s if it is at most MaxField bytes, or else its
// first MaxField bytes (cut at a character boundary) followed by
// "…(sha256:HEX, N bytes)", the SHA-256 and the length of the whole of
// s, so that the record still identifies what was sent. Append applies
// it to every string of every record; the daemon uses it for its log
// lines too.
func BoundString(s string) string {
	if len(s) <= MaxField {
		return s
	}
	cut := MaxField
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	sum := sha256.Sum256([]byte(s))
	return s[:cut] + "…(sha256:" + hex.EncodeToString(sum[:]) + ", " + strconv.Itoa(len(s)) + " bytes)"
}

// boundData bounds a record's data, a JSON object as encoding/json
// writes it: every string (key or value) through BoundString, and the
// whole under MaxData by leaving values out (cutData).
func boundData(body []byte) ([]byte, error) {
	b, err := boundStrings(body)
	if err != nil || len(b) <= MaxData {
		return b, err
	}
	return cutData(b)
}

// boundStrings passes every string of the compact JSON body, as
// encoding/json writes it, through BoundString, leaving every other
// byte as it is. A string whose escaped form is at most MaxField bytes
// is no longer than that unescaped, so only longer ones are decoded.
func boundStrings(body []byte) ([]byte, error) {
	var out []byte // nil until something changes
	last := 0
	for i := 0; i < len(body); i++ {
		if body[i] != '"' {
			continue
		}
		start := i
		for i++; i < len(body) && body[i] != '"'; i++ {
			if body[i] == '\\' {
				i++
			}
		}
		if i >= len(body) {
			return nil, errors.New("audit: data: unterminated string")
		}
		if i-start-1 <= MaxField {
			continue
		}
		var str string
		if err := json.Unmarshal(body[start:i+1], &str); err != nil {
			return nil, fmt.Errorf("audit: data: %w", err)
		}
		if len(str) <= MaxField {
			continue
		}
		out = append(out, body[last:start]...)
		out = appendString(out, BoundString(str))
		last = i + 1
	}
	if out == nil {
		return body, nil
	}
	return append(out, body[last:]...), nil
}

// cutData brings data whose strings are bounded under MaxData by
// leaving values out, with TruncatedKey added to say so. The top
// level's scalars (the session, the stage, the reason) are kept before
// any of its objects and arrays, which are cut in their order, so that
// what identifies a record survives a cut; keys keep their order.
func cutData(body []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	type member struct {
		key string
		raw json.RawMessage
		enc []byte
	}
	var members []member
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("audit: data is not an object")
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("audit: bounding data: %w", err)
		}
		m := member{key: t.(string)}
		if err := dec.Decode(&m.raw); err != nil {
			return nil, fmt.Errorf("audit: bounding data: %w", err)
		}
		members = append(members, m)
	}
	used, dropped := 2, 0
	for _, scalars := range []bool{true, false} {
		for i := range members {
			m := &members[i]
			if c := m.raw[0]; (c != '{' && c != '[') != scalars {
				continue
			}
			b := &bounder{dec: json.NewDecoder(bytes.NewReader(m.raw)), limit: MaxData - boundReserve - used}
			b.dec.UseNumber()
			b.out = appendString(b.out, BoundString(m.key))
			b.out = append(b.out, ':')
			if b.full() {
				dropped++
				continue
			}
			if err := b.value(); err != nil {
				return nil, fmt.Errorf("audit: bounding data: %w", err)
			}
			m.enc, dropped, used = b.out, dropped+b.dropped, used+len(b.out)+1
		}
	}
	out := make([]byte, 0, used+256)
	out = append(out, '{')
	for _, m := range members {
		if m.enc == nil {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, m.enc...)
	}
	if dropped > 0 {
		sum := sha256.Sum256(body)
		mark, _ := json.Marshal(map[string]any{"bytes": len(body), "sha256": hex.EncodeToString(sum[:]), "values_dropped": dropped})
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = appendString(out, TruncatedKey)
		out = append(out, ':')
		out = append(out, mark...)
	}
	out = append(out, '}')
	if len(out) > MaxData {
		return nil, errors.New("audit: data still over MaxData after bounding") // unreachable: boundReserve covers it
	}
	return out, nil
}

// bounder copies one JSON value, leaving out the members of its objects
// and arrays that come once the output is past limit.
type bounder struct {
	dec     *json.Decoder
	out     []byte
	limit   int
	dropped int
}

func (b *bounder) full() bool { return len(b.out) > b.limit }

// value copies the next JSON value.
func (b *bounder) value() error {
	t, err := b.dec.Token()
	if err != nil {
		return err
	}
	switch t := t.(type) {
	case json.Delim:
		return b.container(t)
	case string:
		b.out = appendString(b.out, BoundString(t))
	case json.Number:
		b.out = append(b.out, t...)
	case bool:
		b.out = strconv.AppendBool(b.out, t)
	case nil:
		b.out = append(b.out, "null"...)
	default:
		return fmt.Errorf("unexpected token %v", t)
	}
	return nil
}

// container copies an object or an array whose opening d was just read.
func (b *bounder) container(d json.Delim) error {
	obj := d == '{'
	b.out = append(b.out, byte(d))
	n := 0
	for b.dec.More() {
		var key string
		if obj {
			t, err := b.dec.Token()
			if err != nil {
				return err
			}
			key, _ = t.(string)
		}
		if b.full() {
			var skip json.RawMessage
			if err := b.dec.Decode(&skip); err != nil {
				return err
			}
			b.dropped++
			continue
		}
		if n > 0 {
			b.out = append(b.out, ',')
		}
		n++
		if obj {
			b.out = appendString(b.out, BoundString(key))
			b.out = append(b.out, ':')
		}
		if err := b.value(); err != nil {
			return err
		}
	}
	end, err := b.dec.Token()
	if err != nil {
		return err
	}
	if obj && end != json.Delim('}') || !obj && end != json.Delim(']') {
		return fmt.Errorf("unbalanced %v", end)
	}
	b.out = append(b.out, byte(end.(json.Delim)))
	return nil
}

// appendString writes s as encoding/json does (HTML characters escaped),
// so that a bounded record reads like one that needed no bounding.
func appendString(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q...)
}
