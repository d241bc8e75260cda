package policyelf

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/cilium/ebpf/btf"
	"github.com/tracebroker/tracebroker/gatekeeper/abi"
	"github.com/tracebroker/tracebroker/interp"
)

// The clang-built example policy and its source. The .o is committed, so
// only TestClangExampleBuilds needs clang.
const (
	exampleDir    = "../../testdata/gatekeeper"
	examplePath   = exampleDir + "/example_policy.o"
	exampleSource = exampleDir + "/example_policy.c"
)

// verdictCases run the example policy's branches. Before each, the
// trusted_keys map holds releaseKey with the release role (and policy)
// and brokerKey with the broker role alone.
var verdictCases = []struct {
	name   string
	fields map[string]any
	want   uint64
}{
	{"root is admitted whatever it submits", map[string]any{"uid": uint64(0)}, abi.Any},
	{"root, even with an unknown signer", map[string]any{"uid": uint64(0), "program_signed": true, "program_signer": otherKey}, abi.Any},
	{"verified broker, source-of-program", map[string]any{"uid": uint64(1000), "broker_verified": true, "covers": uint64(abi.CoversSourceOfProgram)}, abi.Interpreter},
	{"verified broker, signature covers the program only", map[string]any{"uid": uint64(1000), "broker_verified": true, "covers": uint64(abi.CoversProgram)}, abi.Deny},
	{"source-of-program, broker not verified", map[string]any{"uid": uint64(1000), "covers": uint64(abi.CoversSourceOfProgram)}, abi.Deny},
	{"signed by a release key", map[string]any{"uid": uint64(1000), "program_signed": true, "program_signer": releaseKey}, abi.Any},
	{"signed by a trusted key without the release role", map[string]any{"uid": uint64(1000), "program_signed": true, "program_signer": brokerKey}, abi.Deny},
	{"signed by an unknown key", map[string]any{"uid": uint64(1000), "program_signed": true, "program_signer": otherKey}, abi.Deny},
	{"release key named, signature did not verify", map[string]any{"uid": uint64(1000), "program_signer": releaseKey}, abi.Deny},
	{"the interpreter branch comes first", map[string]any{"uid": uint64(1000), "broker_verified": true, "covers": uint64(abi.CoversSourceOfProgram), "program_signed": true, "program_signer": releaseKey}, abi.Interpreter},
	{"nothing", map[string]any{"uid": uint64(1000)}, abi.Deny},
}

// checkVerdicts loads a policy object as the gatekeeper would and runs it
// over verdictCases.
func checkVerdicts(t *testing.T, obj []byte) {
	t.Helper()
	p, err := interp.LoadELFReader(bytes.NewReader(obj), ProgramName, interp.Options{})
	if err != nil {
		t.Fatalf("LoadELFReader: %v", err)
	}
	keys := mapByName(t, p, "trusted_keys")
	for id, roles := range map[string]uint64{releaseKey: abi.RoleRelease | abi.RolePolicy, brokerKey: abi.RoleBroker} {
		if err := keys.Update(keyID(id), le64(roles), 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range verdictCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := p.Run(&interp.Env{}, request(t, tc.fields))
			if err != nil || got != tc.want {
				t.Errorf("verdict %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func le64(v uint64) []byte {
	b := make([]byte, 8)
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
	return b
}

// TestClangExample runs the committed clang-built policy, loaded by the
// same call as the policies Write produces.
func TestClangExample(t *testing.T) {
	obj, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	checkVerdicts(t, obj)
	// The only program: found without its name too.
	if _, err := interp.LoadELFReader(bytes.NewReader(obj), "", interp.Options{}); err != nil {
		t.Errorf("LoadELFReader with no name: %v", err)
	}
}

// TestWrittenPolicy runs the same policy written with asm and Write:
// the same verdicts as the clang build.
func TestWrittenPolicy(t *testing.T) {
	checkVerdicts(t, write(t, policyProgram(t), trustedKeys()))
}

var (
	offsetAssert = regexp.MustCompile(`(?m)^_Static_assert\(offsetof\(struct gatekeeper_request, (\w+)\) == (\d+),`)
	sizeAssert   = regexp.MustCompile(`(?m)^_Static_assert\(sizeof\(struct gatekeeper_request\) == (\d+),`)
)

// TestClangExampleLayout checks the C Request against abi.Fields twice:
// the offsets the .c asserts (which clang checked when it built it), and
// every member's offset and size in the BTF of the committed object. The
// example was written for the first layout: fields appended since (see
// ABI.md's versioning) are not in it, and need not be, which is the
// promise this checks: its struct is the Request's first fields as they
// are, and it loads and judges as before (TestClangExample).
func TestClangExampleLayout(t *testing.T) {
	src, err := os.ReadFile(exampleSource)
	if err != nil {
		t.Fatal(err)
	}
	asserts := offsetAssert.FindAllSubmatch(src, -1)
	if len(asserts) < 5 {
		t.Fatalf("found %d offset asserts in %s, want several", len(asserts), exampleSource)
	}
	for _, m := range asserts {
		name, off := string(m[1]), string(m[2])
		f, ok := abi.Lookup(name)
		if !ok {
			t.Errorf("%s asserts the offset of %s, which abi does not have", exampleSource, name)
		} else if off != strconv.Itoa(f.Offset) {
			t.Errorf("%s asserts offsetof(%s) == %s; abi has %d", exampleSource, name, off, f.Offset)
		}
	}
	if m := sizeAssert.FindSubmatch(src); m == nil {
		t.Errorf("%s asserts no sizeof(struct gatekeeper_request)", exampleSource)
	} else if n, _ := strconv.Atoi(string(m[1])); !isLayoutSize(n) {
		t.Errorf("%s asserts sizeof == %s, which is no layout of abi.Fields (now %d bytes)", exampleSource, m[1], abi.Size)
	}

	spec, err := btf.LoadSpec(examplePath)
	if err != nil {
		t.Fatalf("BTF of %s: %v", examplePath, err)
	}
	var req *btf.Struct
	if err := spec.TypeByName("gatekeeper_request", &req); err != nil {
		t.Fatal(err)
	}
	if len(req.Members) > len(abi.Fields) || int(req.Size) != layoutSize(len(req.Members)) {
		t.Errorf("BTF: struct gatekeeper_request has %d members in %d bytes; abi's first %d fields take %d bytes (all %d: %d)",
			len(req.Members), req.Size, len(req.Members), layoutSize(len(req.Members)), len(abi.Fields), abi.Size)
	}
	for i, f := range abi.Fields {
		if i >= len(req.Members) {
			break
		}
		m := req.Members[i]
		size, err := btf.Sizeof(m.Type)
		if err != nil {
			t.Fatal(err)
		}
		if m.Name != f.Name || int(m.Offset.Bytes()) != f.Offset || size != f.Size {
			t.Errorf("member %d: %s at %d, %d bytes; abi has %s at %d, %d bytes", i, m.Name, m.Offset.Bytes(), size, f.Name, f.Offset, f.Size)
		}
	}
}

// TestClangExampleBuilds builds the example from source with the command
// in its header (which checks its _Static_asserts) and runs the fresh
// object over the verdict cases: the committed .o is not stale in any way
// that matters.
func TestClangExampleBuilds(t *testing.T) {
	clang, err := exec.LookPath("clang")
	if err != nil {
		t.Skip("clang is not installed")
	}
	out := filepath.Join(t.TempDir(), "example_policy.o")
	cmd := exec.Command(clang, "-O2", "-g", "-target", "bpf", "-c", "example_policy.c", "-o", out)
	cmd.Dir = exampleDir
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd, err, msg)
	}
	obj, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	checkVerdicts(t, obj)
}

// layoutSize is the size of a Request of abi's first n fields: a layout
// a policy may have been written for.
func layoutSize(n int) int {
	if n < 1 || n > len(abi.Fields) {
		return -1
	}
	last := abi.Fields[n-1]
	return (last.Offset + last.Size + 7) &^ 7
}

func isLayoutSize(size int) bool {
	for n := 1; n <= len(abi.Fields); n++ {
		if layoutSize(n) == size {
			return true
		}
	}
	return false
}
