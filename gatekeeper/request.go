package gatekeeper

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"

	"github.com/tracebroker/tracebroker/gatekeeper/abi"
)

// Request is what the gatekeeper judges, one Go field per abi.Fields
// entry with the same name as its JSON tag, so the daemon API, the audit
// log and the policy's context all say the same thing. Encode lays it out
// as the policy sees it.
//
// HVCI, JITAvailable and KernelInterpreter are facts the gatekeeper
// measures: Decide overwrites whatever the caller put there.
type Request struct {
	ABIVersion        uint32 `json:"abi_version"`
	Form              uint8  `json:"form"`
	Covers            uint8  `json:"covers"`
	HVCI              bool   `json:"hvci"`
	JITAvailable      bool   `json:"jit_available"`
	KernelInterpreter bool   `json:"kernel_interpreter"`
	ProgramSigned     bool   `json:"program_signed"`
	BrokerVerified    bool   `json:"broker_verified"`
	GeneratorVerified bool   `json:"generator_verified"`
	TokenPresent      bool   `json:"token_present"`
	UID               uint32 `json:"uid"`
	GID               uint32 `json:"gid"`
	InsnCount         uint32 `json:"insn_count"`
	TokenScope        uint64 `json:"token_scope"`
	Helpers0          uint64 `json:"helpers0"`
	Helpers1          uint64 `json:"helpers1"`
	Helpers2          uint64 `json:"helpers2"`
	Helpers3          uint64 `json:"helpers3"`
	ProgramType       string `json:"program_type"`
	Attach            string `json:"attach"`
	ProgramSigner     string `json:"program_signer"`
	BrokerDigest      string `json:"broker_digest"`
	BrokerSigner      string `json:"broker_signer"`
	GeneratorDigest   string `json:"generator_digest"`
	GeneratorSigner   string `json:"generator_signer"`
	Generator         string `json:"generator"`
	TokenSubject      string `json:"token_subject"`
	Artifact          string `json:"artifact"`
	Reads             uint64 `json:"reads"`
}

// MaxRequestSize bounds a JSON request: every field at its longest is
// well under 4 KiB, so anything near this is not a request.
const MaxRequestSize = 64 << 10

// formNames and coversNames are the names JSON may use instead of the
// numbers of form and covers (abi.Form*, abi.Covers*).
var (
	formNames = map[string]uint8{
		"source": abi.FormSource, "bytecode": abi.FormBytecode, "pic": abi.FormPIC, "native": abi.FormNative,
	}
	coversNames = map[string]uint8{
		"program": abi.CoversProgram, "package": abi.CoversPackage,
		"repository": abi.CoversRepository, "source-of-program": abi.CoversSourceOfProgram,
	}
)

// requestField ties an abi.Field to the Request member that holds it.
type requestField struct {
	abi.Field
	index int // in Request
}

// requestFields is abi.Fields with their Request members, found by JSON
// tag once, so that neither encoding nor parsing can name a field the
// ABI does not have. A mismatch is a build error in all but name: the
// package refuses to start (and TestRequestMirrorsABI says why).
var requestFields, requestFieldByName = func() ([]requestField, map[string]requestField) {
	fs, err := mirrorABI(reflect.TypeFor[Request]())
	if err != nil {
		panic("gatekeeper: " + err.Error())
	}
	by := make(map[string]requestField, len(fs))
	for _, f := range fs {
		by[f.Name] = f
	}
	return fs, by
}()

// mirrorABI checks t has exactly one member per abi field, in order, of
// the matching Go type.
func mirrorABI(t reflect.Type) ([]requestField, error) {
	if t.NumField() != len(abi.Fields) {
		return nil, fmt.Errorf("Request has %d fields, abi.Fields %d", t.NumField(), len(abi.Fields))
	}
	fs := make([]requestField, len(abi.Fields))
	for i, af := range abi.Fields {
		sf := t.Field(i)
		if tag, _, _ := strings.Cut(sf.Tag.Get("json"), ","); tag != af.Name {
			return nil, fmt.Errorf("Request field %d (%s) has JSON name %q, abi field %d is %q", i, sf.Name, tag, i, af.Name)
		}
		var want reflect.Kind
		switch af.Kind {
		case abi.Bool:
			want = reflect.Bool
		case abi.String:
			want = reflect.String
		case abi.Uint:
			want = map[int]reflect.Kind{1: reflect.Uint8, 2: reflect.Uint16, 4: reflect.Uint32, 8: reflect.Uint64}[af.Size]
		}
		if want == reflect.Invalid || sf.Type.Kind() != want {
			return nil, fmt.Errorf("Request.%s is %v, abi field %s (%d bytes) needs %v", sf.Name, sf.Type, af.Name, af.Size, want)
		}
		fs[i] = requestField{Field: af, index: i}
	}
	return fs, nil
}

// ParseRequest reads a request as the daemon API and `tracebroker
// gatekeeper decide` take it: one JSON object whose members are the
// abi field names. It is strict because the request is what a policy
// judges: an unknown or repeated member, a value of the wrong type, out
// of range (form and covers 0-4, abi_version 0 or abi.Version), a
// string longer than its field or holding a NUL, null, or anything after
// the object is an error rather than something silently dropped or
// truncated. Absent members are zero. form and covers may be given by
// number or by name: form source|bytecode|pic|native, covers
// program|package|repository|source-of-program.
func ParseRequest(data []byte) (*Request, error) {
	if len(data) > MaxRequestSize {
		return nil, fmt.Errorf("gatekeeper: request is %d bytes, at most %d", len(data), MaxRequestSize)
	}
	fail := func(format string, args ...any) (*Request, error) {
		return nil, fmt.Errorf("gatekeeper: request: "+format, args...)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return fail("%v", jsonErr(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fail("want a JSON object, not %s", describeToken(tok))
	}
	r := &Request{}
	v := reflect.ValueOf(r).Elem()
	seen := make([]bool, len(requestFields))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fail("%v", jsonErr(err))
		}
		name, _ := tok.(string) // inside an object, Token yields keys as strings
		f, ok := requestFieldByName[name]
		if !ok {
			return fail("unknown field %q", name)
		}
		if seen[f.index] {
			return fail("field %q given twice", name)
		}
		seen[f.index] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fail("field %q: %v", name, jsonErr(err))
		}
		if err := setField(v.Field(f.index), f.Field, raw); err != nil {
			return fail("field %q: %v", name, err)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return fail("%v", jsonErr(err))
	}
	if tok, err := dec.Token(); err != io.EOF {
		if err != nil {
			return fail("trailing data after the object: %v", jsonErr(err))
		}
		return fail("trailing data after the object: %s", describeToken(tok))
	}
	return r, nil
}

// jsonErr turns io.ErrUnexpectedEOF, which says nothing to a user, into
// what happened.
func jsonErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("unexpected end of JSON")
	}
	return err
}

func describeToken(tok any) string {
	switch t := tok.(type) {
	case json.Delim:
		return fmt.Sprintf("%q", string(t))
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}

// setField stores one JSON value into its Request member.
func setField(dst reflect.Value, f abi.Field, raw json.RawMessage) error {
	if string(raw) == "null" {
		return errors.New("null is not a value here: leave the field out for zero")
	}
	switch f.Kind {
	case abi.Bool:
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return fmt.Errorf("want true or false, not %s", raw)
		}
		dst.SetBool(b)
	case abi.String:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return fmt.Errorf("want a string, not %s", raw)
		}
		if err := checkString(f, s); err != nil {
			return err
		}
		dst.SetString(s)
	case abi.Uint:
		n, err := parseUint(f, raw)
		if err != nil {
			return err
		}
		dst.SetUint(n)
	}
	return nil
}

// parseUint reads an integer field, or a form/covers name.
func parseUint(f abi.Field, raw json.RawMessage) (uint64, error) {
	var names map[string]uint8
	switch f.Name {
	case "form":
		names = formNames
	case "covers":
		names = coversNames
	}
	if names != nil && len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, err
		}
		n, ok := names[s]
		if !ok {
			return 0, fmt.Errorf("unknown %s %q (%s)", f.Name, s, nameList(names))
		}
		return uint64(n), nil
	}
	n, err := strconv.ParseUint(string(raw), 10, 64)
	if err != nil {
		switch {
		case len(raw) > 0 && raw[0] == '-':
			return 0, fmt.Errorf("%s is negative", raw)
		case errors.Is(err, strconv.ErrRange):
			return 0, fmt.Errorf("%s is out of range (%d bytes)", raw, f.Size)
		case names != nil:
			return 0, fmt.Errorf("want a number or one of %s, not %s", nameList(names), raw)
		}
		return 0, fmt.Errorf("want an unsigned integer, not %s", raw)
	}
	if f.Size < 8 && n >= 1<<(8*f.Size) {
		return 0, fmt.Errorf("%d is out of range (%d bytes)", n, f.Size)
	}
	switch {
	case names != nil && n > 4:
		return 0, fmt.Errorf("%d is out of range (0-4, or %s)", n, nameList(names))
	case f.Name == "abi_version" && n != 0 && n != abi.Version:
		return 0, fmt.Errorf("version %d: this gatekeeper speaks ABI version %d", n, abi.Version)
	}
	return n, nil
}

func nameList(names map[string]uint8) string {
	byNum := make([]string, 5)
	for s, n := range names {
		byNum[n] = s
	}
	return strings.Join(byNum[1:], "|")
}

// checkString refuses what the policy would see differently from the
// caller: a string cut short by its field, or by a NUL inside it.
func checkString(f abi.Field, s string) error {
	if len(s) > f.Size-1 {
		return fmt.Errorf("%d bytes, longer than the field (at most %d)", len(s), f.Size-1)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return errors.New("contains a NUL byte")
	}
	return nil
}

// validate is ParseRequest's checks for a Request built in Go, which
// Decide runs so that what the policy reads is what the caller meant.
func (r *Request) validate() error {
	v := reflect.ValueOf(r).Elem()
	for _, f := range requestFields {
		switch f.Kind {
		case abi.String:
			if err := checkString(f.Field, v.Field(f.index).String()); err != nil {
				return fmt.Errorf("%s: %v", f.Name, err)
			}
		}
	}
	switch {
	case r.Form > 4:
		return fmt.Errorf("form %d is out of range (0-4)", r.Form)
	case r.Covers > 4:
		return fmt.Errorf("covers %d is out of range (0-4)", r.Covers)
	case r.ABIVersion != 0 && r.ABIVersion != abi.Version:
		return fmt.Errorf("abi_version %d: this gatekeeper speaks version %d", r.ABIVersion, abi.Version)
	}
	return nil
}

// Encode lays the request out as a policy reads it: abi.Size bytes,
// abi_version always abi.Version whatever the field says. A string
// longer than its field is cut so its last byte stays NUL (Decide
// refuses such a request before it gets here).
func (r *Request) Encode() []byte {
	buf := make([]byte, abi.Size)
	r.encodeInto(buf)
	return buf
}

// encodeInto is Encode into a buffer of abi.Size bytes, which Decide
// takes from a pool.
func (r *Request) encodeInto(buf []byte) {
	clear(buf)
	v := reflect.ValueOf(r).Elem()
	for _, f := range requestFields {
		fv := v.Field(f.index)
		var err error
		switch f.Kind {
		case abi.Uint:
			n := fv.Uint()
			if f.Name == "abi_version" {
				n = abi.Version
			}
			err = abi.Put(buf, f.Field, n)
		case abi.Bool:
			err = abi.Put(buf, f.Field, fv.Bool())
		case abi.String:
			err = abi.Put(buf, f.Field, fv.String())
		}
		if err != nil {
			// mirrorABI proved every Go type fits its field.
			panic("gatekeeper: " + err.Error())
		}
	}
}

// FormName and CoversName name a form and what a signature covers as
// JSON and ABI.md name them (abi.Form*, abi.Covers*); "unsigned" for
// covers 0, the number for a value out of range.
func FormName(f uint8) string { return constName(formNames, f, "") }

func CoversName(c uint8) string { return constName(coversNames, c, "unsigned") }

func constName(names map[string]uint8, v uint8, zero string) string {
	for name, n := range names {
		if n == v {
			return name
		}
	}
	if v == 0 && zero != "" {
		return zero
	}
	return fmt.Sprint(v)
}
