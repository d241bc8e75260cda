package gatekeeper

import (
	"encoding/binary"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/gatekeeper/abi"
)

func TestRequestMirrorsABI(t *testing.T) {
	if _, err := mirrorABI(reflect.TypeFor[Request]()); err != nil {
		t.Fatal(err)
	}
	type short struct {
		ABIVersion uint32 `json:"abi_version"`
	}
	if _, err := mirrorABI(reflect.TypeFor[short]()); err == nil {
		t.Error("a struct with one field mirrors the ABI")
	}
}

// decodeRequest reads an encoded Request back, field by field from
// abi.Fields: the inverse of Encode, written independently of it.
func decodeRequest(t *testing.T, b []byte) *Request {
	t.Helper()
	if len(b) != abi.Size {
		t.Fatalf("encoded request is %d bytes, want %d", len(b), abi.Size)
	}
	r := &Request{}
	v := reflect.ValueOf(r).Elem()
	for i, f := range abi.Fields {
		raw := b[f.Offset : f.Offset+f.Size]
		switch f.Kind {
		case abi.String:
			if raw[len(raw)-1] != 0 {
				t.Errorf("%s: last byte is not NUL", f.Name)
			}
			s, _, _ := strings.Cut(string(raw), "\x00")
			if strings.Trim(string(raw[len(s):]), "\x00") != "" {
				t.Errorf("%s: bytes after the NUL", f.Name)
			}
			v.Field(i).SetString(s)
		case abi.Bool:
			if raw[0] > 1 {
				t.Errorf("%s: boolean %d", f.Name, raw[0])
			}
			v.Field(i).SetBool(raw[0] == 1)
		case abi.Uint:
			var w [8]byte
			copy(w[:], raw)
			v.Field(i).SetUint(binary.LittleEndian.Uint64(w[:]))
		}
	}
	// Padding is zero.
	covered := make([]bool, abi.Size)
	for _, f := range abi.Fields {
		for i := f.Offset; i < f.Offset+f.Size; i++ {
			covered[i] = true
		}
	}
	for i, c := range covered {
		if !c && b[i] != 0 {
			t.Errorf("padding byte %d is %#x", i, b[i])
		}
	}
	return r
}

func TestEncode(t *testing.T) {
	r := &Request{
		ABIVersion: 0, Form: abi.FormBytecode, Covers: abi.CoversSourceOfProgram,
		HVCI: true, KernelInterpreter: true, TokenPresent: true,
		UID: 0xdeadbeef, GID: 7, InsnCount: 4096, TokenScope: 1<<63 | 5,
		Helpers0: 1, Helpers3: 1 << 63,
		ProgramType: "tracepoint", Attach: "tracepoint:syscalls:sys_enter_openat",
		ProgramSigner: releaseKey, Artifact: strings.Repeat("/", 255),
	}
	b := r.Encode()
	got := decodeRequest(t, b)
	want := *r
	want.ABIVersion = abi.Version
	if *got != want {
		t.Errorf("decode(Encode(r)) =\n%+v\nwant\n%+v", *got, want)
	}
	// Spot checks against the offsets a C policy uses.
	if binary.LittleEndian.Uint32(b[16:]) != 0xdeadbeef || b[4] != abi.FormBytecode || b[6] != 1 || b[7] != 0 {
		t.Errorf("fixed offsets: % x", b[:24])
	}
	if got := string(b[104 : 104+len(r.Attach)]); got != r.Attach {
		t.Errorf("attach at 104: %q", got)
	}
	// A string too long for its field is cut, and stays terminated.
	long := &Request{Attach: strings.Repeat("x", 300)}
	if got := decodeRequest(t, long.Encode()).Attach; got != strings.Repeat("x", 127) {
		t.Errorf("long attach encodes as %d bytes", len(got))
	}
}

func TestEncodeAllocs(t *testing.T) {
	r := benchRequest()
	buf := make([]byte, abi.Size)
	if n := testing.AllocsPerRun(100, func() { r.encodeInto(buf) }); n > 0 && !raceEnabled {
		t.Errorf("encodeInto allocates %.1f times", n)
	}
}

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    *Request
		wantErr string
	}{
		{"empty object", `{}`, &Request{}, ""},
		{"whitespace around", " \n{ } \n\t", &Request{}, ""},
		{"every kind", `{"abi_version":1,"form":1,"covers":4,"uid":1000,"token_scope":18446744073709551615,"broker_verified":true,"attach":"tracepoint:a:b"}`,
			&Request{ABIVersion: 1, Form: 1, Covers: 4, UID: 1000, TokenScope: 1<<64 - 1, BrokerVerified: true, Attach: "tracepoint:a:b"}, ""},
		{"form and covers by name", `{"form":"bytecode","covers":"source-of-program"}`, &Request{Form: 2, Covers: 4}, ""},
		{"every form name", `{"form":"native","covers":"repository"}`, &Request{Form: 4, Covers: 3}, ""},
		{"longest string", `{"program_type":"` + strings.Repeat("p", 31) + `"}`, &Request{ProgramType: strings.Repeat("p", 31)}, ""},
		{"escapes", `{"token_subject":"a\u00e9\"\\"}`, &Request{TokenSubject: "aé\"\\"}, ""},
		{"max u32", `{"gid":4294967295}`, &Request{GID: 1<<32 - 1}, ""},
		{"platform claims parse (Decide overwrites them)", `{"hvci":true,"jit_available":false}`, &Request{HVCI: true}, ""},

		{"unknown field", `{"uid":0,"root":true}`, nil, `unknown field "root"`},
		{"field in the wrong case", `{"UID":0}`, nil, `unknown field "UID"`},
		{"repeated field", `{"uid":0,"uid":1}`, nil, `field "uid" given twice`},
		{"string too long", `{"program_type":"` + strings.Repeat("p", 32) + `"}`, nil, `field "program_type": 32 bytes, longer than the field (at most 31)`},
		{"multibyte string too long", `{"generator":"` + strings.Repeat("é", 32) + `"}`, nil, `field "generator": 64 bytes`},
		{"NUL in a string", `{"attach":"a\u0000b"}`, nil, `field "attach": contains a NUL byte`},
		{"u8 out of range", `{"form":256}`, nil, `field "form": 256 is out of range (1 bytes)`},
		{"form out of range", `{"form":5}`, nil, `field "form": 5 is out of range (0-4, or source|bytecode|pic|native)`},
		{"covers unknown name", `{"covers":"everything"}`, nil, `field "covers": unknown covers "everything" (program|package|repository|source-of-program)`},
		{"u32 out of range", `{"uid":4294967296}`, nil, `field "uid": 4294967296 is out of range (4 bytes)`},
		{"u64 out of range", `{"token_scope":18446744073709551616}`, nil, `field "token_scope": 18446744073709551616 is out of range (8 bytes)`},
		{"negative", `{"uid":-1}`, nil, `field "uid": -1 is negative`},
		{"fraction", `{"uid":1.0}`, nil, `field "uid": want an unsigned integer, not 1.0`},
		{"exponent", `{"uid":1e3}`, nil, `want an unsigned integer, not 1e3`},
		{"number as string", `{"uid":"0"}`, nil, `want an unsigned integer, not "0"`},
		{"bool as number", `{"broker_verified":1}`, nil, `field "broker_verified": want true or false, not 1`},
		{"string as number", `{"attach":1}`, nil, `field "attach": want a string, not 1`},
		{"null", `{"uid":null}`, nil, `field "uid": null is not a value here`},
		{"another ABI version", `{"abi_version":2}`, nil, `version 2: this gatekeeper speaks ABI version 1`},
		{"trailing object", `{}{}`, nil, `trailing data after the object`},
		{"trailing garbage", `{} x`, nil, `trailing data after the object`},
		{"not an object", `[]`, nil, `want a JSON object, not "["`},
		{"a string", `"uid"`, nil, `want a JSON object, not a string`},
		{"empty", ``, nil, `unexpected end of JSON`},
		{"truncated", `{"uid":1`, nil, `unexpected end of JSON`},
		{"nested object", `{"uid":{}}`, nil, `field "uid": want an unsigned integer`},
		{"too large", `{"attach":"` + strings.Repeat(" ", MaxRequestSize) + `"}`, nil, `bytes, at most 65536`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequest([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseRequest = %+v, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *got != *tt.want {
				t.Errorf("ParseRequest =\n%+v\nwant\n%+v", *got, *tt.want)
			}
		})
	}
}

func FuzzParseRequest(f *testing.F) {
	seeds := []string{
		`{}`,
		`{"abi_version":1,"form":"source","covers":"source-of-program","uid":0,"broker_verified":true}`,
		`{"attach":"tracepoint:syscalls:sys_enter_openat","program_signer":"` + releaseKey + `","token_scope":7}`,
		`{"uid":4294967295,"helpers3":18446744073709551615,"form":4,"covers":0}`,
		`{"attach":"\u00ff\ud800"}`,
		`{"uid":1,"uid":2}`,
		`{"x":1}`,
		`{} {}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRequest(data)
		if err != nil {
			if r != nil {
				t.Fatal("a request and an error")
			}
			return
		}
		b := r.Encode()
		if len(b) != abi.Size {
			t.Fatalf("Encode: %d bytes", len(b))
		}
		dec := decodeRequest(t, b)
		want := *r
		want.ABIVersion = abi.Version
		if *dec != want {
			t.Fatalf("decode(Encode) =\n%+v\nwant\n%+v", *dec, want)
		}
		if err := r.validate(); err != nil {
			t.Fatalf("parsed request is invalid: %v", err)
		}
		j, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseRequest(j)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", j, err)
		}
		if *back != *r {
			t.Fatalf("JSON round trip:\n%+v\n%+v", *back, *r)
		}
	})
}
