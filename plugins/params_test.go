package plugins

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/plugins/sdk"
)

func TestCheckParams(t *testing.T) {
	info := sdk.Info{Name: "p", Params: []sdk.Param{
		{Name: "path", Type: sdk.String, Required: true, Help: "the file"},
		{Name: "n", Type: sdk.Int, Default: "0x10"},
		{Name: "every", Type: sdk.Duration},
		{Name: "quiet", Type: sdk.Bool, Default: "false", Required: true},
		{Name: "untyped"},
	}}
	got, err := checkParams("p", info, map[string]string{"path": "/tmp", "every": "1m", "untyped": "anything"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "map[every:1m n:0x10 path:/tmp quiet:false untyped:anything]"; fmt.Sprint(got) != want {
		t.Errorf("params %v, want %s", got, want)
	}
	_, err = checkParams("p", info, map[string]string{"n": "1.5", "zz": "1", "aa": "2"})
	for _, want := range []string{
		`plugin p: no parameters "aa", "zz" (its parameters: every, n, path, quiet, untyped)`,
		`parameter n: "1.5" is not an integer`,
		"parameter path is required: the file",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want one containing %q", err, want)
		}
	}
	_, err = checkParams("q", sdk.Info{Name: "q"}, map[string]string{"x": "1"})
	if want := `plugin q: no parameter "x" (it takes no parameters)`; err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
}

func TestCheckInfo(t *testing.T) {
	if err := checkInfo("p", sdk.Info{Name: "p", Params: []sdk.Param{{Name: "a", Type: sdk.Int, Default: "3"}}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		params []sdk.Param
		want   string
	}{
		{[]sdk.Param{{Name: "a"}, {Name: "a"}}, "parameter a is declared twice"},
		{[]sdk.Param{{Name: "a b"}}, `parameter name "a b" is not an identifier`},
		{[]sdk.Param{{Name: "a=b"}}, `parameter name "a=b"`},
		{[]sdk.Param{{Name: ""}}, `parameter name ""`},
		{[]sdk.Param{{Name: "a", Type: "float"}}, `parameter a has unknown type "float"`},
		{[]sdk.Param{{Name: "a", Type: sdk.Duration, Default: "5"}}, `its default: parameter a: "5" is not a duration`},
	} {
		err := checkInfo("p", sdk.Info{Name: "p", Params: tc.params})
		if err == nil || !strings.Contains(err.Error(), "plugin p: bad description: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one containing %q", tc.params, err, tc.want)
		}
	}
}
