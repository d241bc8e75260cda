package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/plugins/sdk"
	generatorpb "github.com/tracebroker/tracebroker/plugins/sdk/proto"
)

func TestDescriptionText(t *testing.T) {
	d := Plugin{Name: "opensnoop", Identity: attest.Identity{Signer: "0123456789abcdef0123", Verified: true}, Info: &sdk.Info{
		Name: "opensnoop", Version: "1.0.0", Description: "trace openat() calls",
		Params: []sdk.Param{
			{Name: "pid", Type: sdk.Int, Help: "only this process"},
			{Name: "path", Required: true, Help: "only paths starting with this prefix"},
			{Name: "failed", Type: sdk.Bool, Default: "false", Required: true},
		},
	}}.Describe()
	var b bytes.Buffer
	if err := d.WriteText(&b, "tracebroker run"); err != nil {
		t.Fatal(err)
	}
	want := `opensnoop 1.0.0 (signed by 0123456789abcdef)
trace openat() calls

PARAMETER  TYPE    REQUIRED  DEFAULT  HELP
pid        int     no        -        only this process
path       string  yes       -        only paths starting with this prefix
failed     bool    yes       false    

Usage:
  tracebroker run --gen opensnoop [--param pid=INT] --param path=STRING [--param failed=BOOL]
`
	if b.String() != want {
		t.Errorf("text:\n%s\nwant:\n%s", b.String(), want)
	}
	j, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON := `{"name":"opensnoop","version":"1.0.0","description":"trace openat() calls","signer":"0123456789abcdef0123","params":[{"name":"pid","type":"int","required":false,"help":"only this process"},{"name":"path","type":"string","required":true,"help":"only paths starting with this prefix"},{"name":"failed","type":"bool","required":true,"default":"false"}]}`
	if string(j) != wantJSON {
		t.Errorf("json:\n%s\nwant:\n%s", j, wantJSON)
	}
}

// TestAttacksPluginDescribe: a plugin's description is its author's
// word. What a signed plugin says about itself must not exhaust the
// host, drive the terminal of whoever describes it, or name parameters
// that --param cannot give.
func TestAttacksPluginDescribe(t *testing.T) {
	many := make([]sdk.Param, maxParams+1)
	for i := range many {
		many[i] = sdk.Param{Name: "p" + strings.Repeat("x", i%10) + string(rune('a'+i%26)) + string(rune('a'+i/26))}
	}
	for _, tc := range []struct {
		name    string
		info    sdk.Info
		refused string // "" accepted
	}{
		{"item3/huge_param_list", sdk.Info{Name: "p", Params: many}, "65 parameters (at most 64)"},
		{"item3/name_not_identifier", sdk.Info{Name: "p", Params: []sdk.Param{{Name: "a\x1b[2J"}}}, `parameter name "a\x1b[2J" is not an identifier`},
		{"item3/name_starts_with_digit", sdk.Info{Name: "p", Params: []sdk.Param{{Name: "1a"}}}, "is not an identifier"},
		{"item3/name_too_long", sdk.Info{Name: "p", Params: []sdk.Param{{Name: strings.Repeat("a", maxParamName+1)}}}, "is not an identifier"},
		{"item3/help_too_long", sdk.Info{Name: "p", Params: []sdk.Param{{Name: "a", Help: strings.Repeat("h", maxDescription+1)}}}, "parameter a: its help or default is too long"},
		{"item3/description_too_long", sdk.Info{Name: "p", Description: strings.Repeat("d", maxDescription+1)}, "its version or description is too long"},
		{"item3/type_with_controls", sdk.Info{Name: "p", Params: []sdk.Param{{Name: "a", Type: "\x1b]0;x\a"}}}, `unknown type "\x1b]0;x\a"`},
		{"item3/misnamed_huge", sdk.Info{Name: strings.Repeat("n", 1<<20)}, "describes itself as"},
		// Accepted, and shown escaped.
		{"item3/control_chars_in_help", sdk.Info{Name: "p", Description: "\x1b[31mred\u202e", Params: []sdk.Param{{Name: "a", Help: "line\nbreak\x1b]0;title\a", Default: "x\ty"}}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkInfo("p", tc.info)
			if tc.refused != "" {
				if err == nil || !strings.Contains(err.Error(), tc.refused) {
					t.Fatalf("error %v, want one containing %q", err, tc.refused)
				}
				if len(err.Error()) > 16<<10 {
					t.Errorf("error of %d bytes: not bounded", len(err.Error()))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkShown(t, Plugin{Name: "p", Info: &tc.info}.Describe(), len(tc.info.Params))
		})
	}
}

// checkShown fails when d's text has a control character other than its
// own newlines, or more lines than its parameters make.
func checkShown(t *testing.T, d Description, params int) {
	t.Helper()
	var b bytes.Buffer
	if err := d.WriteText(&b, "tracebroker run"); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if i := strings.IndexFunc(out, func(r rune) bool {
		return r != '\n' && (r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069))
	}); i >= 0 {
		t.Errorf("control character at %d of the text: %q", i, out)
	}
	if n, most := strings.Count(out, "\n"), params+7; n > most {
		t.Errorf("%d lines, at most %d for %d parameters:\n%s", n, most, params, out)
	}
}

// FuzzDescribe decodes a plugin's Describe answer as the host does and
// shows what it accepts: no panic, and every accepted description within
// its bounds and shown without control characters.
func FuzzDescribe(f *testing.F) {
	for _, i := range []*generatorpb.Info{
		{Name: "p", Version: "1", Description: "d", Params: []*generatorpb.Param{{Name: "a", Type: "int", Default: "3", Help: "h\x1b"}}},
		{Name: "p", Params: []*generatorpb.Param{{Name: "a b"}, {Name: "a", Type: "float"}}},
		{Name: "q"},
	} {
		b, err := proto.Marshal(i)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var pb generatorpb.Info
		if proto.Unmarshal(b, &pb) != nil {
			return
		}
		info := infoFromProto(&pb)
		if checkInfo("p", info) != nil {
			return
		}
		if len(info.Params) > maxParams || len(info.Description) > maxDescription {
			t.Fatalf("accepted beyond the bounds: %d params, %d bytes of description", len(info.Params), len(info.Description))
		}
		for _, p := range info.Params {
			if !isIdentifier(p.Name) {
				t.Fatalf("accepted parameter name %q", p.Name)
			}
		}
		checkShown(t, Plugin{Name: "p", Info: &info}.Describe(), len(info.Params))
	})
}

func TestHostDescribe(t *testing.T) {
	f := newFixture(t)
	f.add("good")
	p, err := f.host.Describe(context.Background(), "good")
	if err != nil {
		t.Fatal(err)
	}
	if p.Info == nil || p.Info.Version != "1.2.3" || len(p.Info.Params) != 4 || !p.Identity.Verified {
		t.Errorf("described %+v, info %+v", p, p.Info)
	}
	f.ranAndGone("good")

	// Only a plugin that verifies is started to describe it.
	f.install("good", "unsigned")
	_, err = f.host.Describe(context.Background(), "unsigned")
	mustContain(t, err, "plugin unsigned: refused, not started")
	f.install("panics", "copy")
	f.sign("copy", f.key, attest.RolePolicy)
	_, err = f.host.Describe(context.Background(), "copy")
	mustContain(t, err, "plugin copy: refused, not started")
	f.neverRan("copy")
	_, err = f.host.Describe(context.Background(), "../good")
	mustContain(t, err, "not a plugin name")
}

// BenchmarkDescribe is what describing a plugin costs (run --gen X
// --help, plugins describe): verify, start, Describe, kill and reap.
func BenchmarkDescribe(b *testing.B) {
	dir := b.TempDir()
	key, err := attest.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	bin, err := os.ReadFile(filepath.Join(testBin, "good"))
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "good"), bin, 0o755); err != nil {
		b.Fatal(err)
	}
	if _, err := attest.SignArtifact(filepath.Join(dir, "good"), key, attest.ArtifactPredicate{Role: attest.RoleGenerator, Version: "test"}); err != nil {
		b.Fatal(err)
	}
	h := &Host{Dir: dir, Trust: attest.NewTrust(key.Public()), Logger: slog.New(slog.DiscardHandler)}
	for b.Loop() {
		if _, err := h.Describe(context.Background(), "good"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPanicFilter is the cost the panic filter adds to each line a
// plugin writes to stderr.
func BenchmarkPanicFilter(b *testing.B) {
	lines := []string{"an ordinary line of the plugin's own", "\t/src/main.go:12 +0x1d", "main.f({0x1, 0x2})"}
	var f panicFilter
	for i := 0; b.Loop(); i++ {
		f.stackLine(lines[i%len(lines)])
	}
}
