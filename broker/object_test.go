package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/bpf/object"
	"github.com/tracebroker/tracebroker/gatekeeper"
	"github.com/tracebroker/tracebroker/gatekeeper/abi"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// objectsDir holds the clang-built objects the tests run (make
// testobjects) and the C workload they trace.
const objectsDir = "../testdata/objects"

// buildObjectWorkload compiles testdata/objects/workload.c with gcc.
func buildObjectWorkload(t *testing.T) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("the object workload is built with gcc, which is not installed")
	}
	exe := filepath.Join(t.TempDir(), "workload")
	if out, err := exec.Command(gcc, "-O1", "-o", exe, filepath.Join(objectsDir, "workload.c")).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return exe
}

// objectLine is one line of an object's JSON output.
type objectLine struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

type objectRecord struct {
	Map   string         `json:"map"`
	Value map[string]any `json:"value"`
}

type objectMap struct {
	Name    string `json:"name"`
	Entries []struct {
		Key   any `json:"key"`
		Value any `json:"value"`
	} `json:"entries"`
}

// objectOutput is an object run's JSON output, parsed.
type objectOutput struct {
	attached int
	records  []objectRecord
	maps     map[string]objectMap
}

func parseObjectOutput(t *testing.T, out string) objectOutput {
	t.Helper()
	o := objectOutput{maps: map[string]objectMap{}}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var l objectLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("output line %q: %v", line, err)
		}
		switch l.Type {
		case "attached_probes":
			var d struct{ Probes int }
			json.Unmarshal(l.Data, &d)
			o.attached = d.Probes
		case "record":
			var r objectRecord
			if err := json.Unmarshal(l.Data, &r); err != nil {
				t.Fatalf("record %s: %v", l.Data, err)
			}
			o.records = append(o.records, r)
		case "map":
			var m objectMap
			if err := json.Unmarshal(l.Data, &m); err != nil {
				t.Fatalf("map %s: %v", l.Data, err)
			}
			o.maps[m.Name] = m
		default:
			t.Fatalf("unexpected output line %s", line)
		}
	}
	return o
}

// runObjectWhile runs the object in JSON until work, started once the
// probes are attached, has returned: what the trace saw of it is exact.
func runObjectWhile(t *testing.T, req Request, work func() int) (objectOutput, int, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	req.Stdout, req.Stderr, req.Format = &stdout, &stderr, "json"
	ctx, cancel := context.WithTimeout(context.Background(), kerneltest.Slow(30*time.Second))
	defer cancel()
	var pid int
	var wg sync.WaitGroup
	req.Attached = func(*Admission) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel()
			pid = work()
		}()
	}
	err := Run(ctx, req)
	wg.Wait()
	if err != nil {
		return objectOutput{}, 0, err
	}
	if stderr.Len() > 0 {
		t.Logf("stderr: %s", stderr.String())
	}
	return parseObjectOutput(t, stdout.String()), pid, nil
}

// runWorkload runs the object workload with args and returns its pid.
func runWorkload(t *testing.T, exe string, args ...string) int {
	cmd := exec.Command(exe, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("workload %v: %v\n%s", args, err, out)
	}
	return cmd.Process.Pid
}

func openObject(t *testing.T, name string) *Object {
	t.Helper()
	o, err := OpenObject(filepath.Join(objectsDir, name), "", attest.NewTrust())
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestObjectTracepoint runs a clang-built object's tracepoint program:
// each of the workload's opens is one record, decoded by its BTF type,
// and one count in a hash map whose key is a struct.
func TestObjectTracepoint(t *testing.T) {
	needKernel(t)
	lockKernel(t)
	exe := buildObjectWorkload(t)
	for _, mode := range []Mode{ModeJIT, ModeInterp} {
		t.Run(string(mode), func(t *testing.T) { testObjectTracepoint(t, exe, mode) })
	}
}

func testObjectTracepoint(t *testing.T, exe string, mode Mode) {
	leaks := newLeakCheck(t)
	// The object reads 63 characters of a name: keep it short.
	dir, err := os.MkdirTemp("", "tbo")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	file := filepath.Join(dir, "opened")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	const n = 7
	out, pid, err := runObjectWhile(t, Request{Object: openObject(t, "opensnoop.bpf.o"), Mode: mode, Collectors: testCollectors(t)}, func() int {
		return runWorkload(t, exe, "open", file, "7")
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.attached != 1 {
		t.Errorf("attached %d probes, want 1", out.attached)
	}
	got := 0
	for _, r := range out.records {
		if r.Value["filename"] != file {
			continue
		}
		got++
		if r.Map != "events" || r.Value["tgid"] != float64(pid) || r.Value["pid"] != float64(pid) || r.Value["comm"] != "workload" {
			t.Errorf("record %+v, want map events, pid and tgid %d, comm workload", r, pid)
		}
	}
	if got != n {
		t.Errorf("%d records of %s, want %d", got, file, n)
	}
	count := -1.0
	for _, e := range out.maps["opens"].Entries {
		k, _ := e.Key.(map[string]any)
		if k["filename"] == file {
			if k["tgid"] != float64(pid) || count != -1 {
				t.Errorf("opens entry %+v: want one, for tgid %d", e, pid)
			}
			count, _ = e.Value.(float64)
		}
	}
	if count != n {
		t.Errorf("@opens[%d, %s] = %v, want %d", pid, file, count, n)
	}
	leaks.expectReleased(t, false)
}

// TestObjectUprobeRawTracepoint runs the uprobe, uretprobe and raw
// tracepoint programs of an object, with a perf event array's records
// and a per-CPU map, summed over CPUs as bpftrace sums its counts.
func TestObjectUprobeRawTracepoint(t *testing.T) {
	needKernel(t)
	lockKernel(t)
	const libc = "/lib/x86_64-linux-gnu/libc.so.6"
	if _, err := os.Stat(libc); err != nil {
		t.Skipf("libccount.bpf.o probes %s: %v", libc, err)
	}
	exe := buildObjectWorkload(t)
	for _, mode := range []Mode{ModeJIT, ModeInterp} {
		t.Run(string(mode), func(t *testing.T) { testObjectUprobeRawTracepoint(t, exe, mode) })
	}
}

func testObjectUprobeRawTracepoint(t *testing.T, exe string, mode Mode) {
	leaks := newLeakCheck(t)
	var calls, getppids int
	out, _, err := runObjectWhile(t, Request{Object: openObject(t, "libccount.bpf.o"), Mode: mode, Collectors: testCollectors(t)}, func() int {
		calls = runWorkload(t, exe, "strverscmp", "5")
		getppids = runWorkload(t, exe, "getppid", "9")
		return 0
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.attached != 3 {
		t.Errorf("attached %d probes, want 3", out.attached)
	}
	value := func(m string, pid int) any {
		for _, e := range out.maps[m].Entries {
			if e.Key == float64(pid) {
				return e.Value
			}
		}
		return nil
	}
	if v := value("calls", calls); v != float64(5) {
		t.Errorf("@calls[%d] = %v, want 5", calls, v)
	}
	if v := value("getppids", getppids); v != float64(9) {
		t.Errorf("@getppids[%d] = %v, want 9", getppids, v)
	}
	rets, args := 0, 0
	for _, r := range out.records {
		switch {
		case r.Value["tgid"] != float64(calls):
		case r.Map == "returns":
			rets++
			if r.Value["result"] != float64(-1) { // strverscmp("a1", "a2")
				t.Errorf("record %+v: result want -1", r)
			}
		case r.Map == "args":
			// A string behind an argument: in interpreter mode, the
			// collectors' copy of it.
			args++
			if r.Value["s1"] != "a1" {
				t.Errorf("record %+v: s1 want a1", r)
			}
		}
	}
	if rets != 5 || args != 5 {
		t.Errorf("%d returns and %d args records of %d, want 5 each", rets, args, calls)
	}
	leaks.expectReleased(t, false)
}

// TestObjectText checks the text form of an object's output: records one
// per line, maps at the end as bpftrace prints its maps.
func TestObjectText(t *testing.T) {
	needKernel(t)
	lockKernel(t)
	exe := buildObjectWorkload(t)
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), kerneltest.Slow(30*time.Second))
	defer cancel()
	var pid int
	done := make(chan struct{})
	err := Run(ctx, Request{Object: openObject(t, "libccount.bpf.o"), Stdout: &stdout, Stderr: &stderr,
		Attached: func(*Admission) {
			go func() {
				defer close(done)
				defer cancel()
				pid = runWorkload(t, exe, "getppid", "3")
			}()
		}})
	<-done
	if err != nil {
		t.Fatal(err)
	}
	out := stdout.String()
	if !strings.HasPrefix(out, "Attaching 3 probes...\n") {
		t.Errorf("output starts %q", out[:min(len(out), 40)])
	}
	if want := "\n@getppids[" + strconv.Itoa(pid) + "]: 3\n"; !strings.Contains(out, want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
	if !strings.Contains(out, "\n\n@calls[") && !strings.Contains(out, "\n\n@getppids[") {
		t.Errorf("maps are not printed after a blank line:\n%s", out)
	}
}

// TestObjectRefused: what an object may not do is refused before
// anything is loaded.
func TestObjectRefused(t *testing.T) {
	o := openObject(t, "refused.bpf.o")
	err := Run(context.Background(), Request{Object: o, Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}})
	if err == nil || !strings.Contains(err.Error(), "pinned by name") {
		t.Errorf("Run = %v, want a refusal of the pinned map", err)
	}
}

// TestOpenObjectSignatures: what an object's signature makes of it.
// Unsigned, or signed by a key nobody trusts, it is a fact for the
// gatekeeper (covers 0); signed by a trusted key, covers program; a
// signature that fails otherwise refuses it at once, whatever the policy.
func TestOpenObjectSignatures(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(objectsDir, "opensnoop.bpf.o"))
	if err != nil {
		t.Fatal(err)
	}
	key, other := testKey(t), testKey(t)
	trust := attest.NewTrust(key.Public())
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, obj string)
		covers  uint8
		signer  string
		err     string
	}{
		{"unsigned", func(*testing.T, string) {}, 0, "", ""},
		{"trusted", func(t *testing.T, obj string) { signObject(t, obj, key, attest.RoleProgram) }, abi.CoversProgram, key.ID, ""},
		{"untrusted key", func(t *testing.T, obj string) { signObject(t, obj, other, attest.RoleProgram) }, 0, "", ""},
		{"tampered", func(t *testing.T, obj string) {
			signObject(t, obj, key, attest.RoleProgram)
			appendByte(t, obj)
		}, 0, "", "digest mismatch"},
		{"wrong role", func(t *testing.T, obj string) { signObject(t, obj, key, attest.RolePolicy) }, 0, "", "wrong role"},
		{"garbage signature", func(t *testing.T, obj string) {
			if err := os.WriteFile(obj+".sig", []byte("{}"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, 0, "", "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := filepath.Join(t.TempDir(), "opensnoop.bpf.o")
			if err := os.WriteFile(obj, data, 0o644); err != nil {
				t.Fatal(err)
			}
			tc.prepare(t, obj)
			o, err := OpenObject(obj, "", trust)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("OpenObject = %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var r gatekeeper.Request
			o.signedFacts(&r)
			if r.Covers != tc.covers || r.ProgramSigner != tc.signer || r.ProgramSigned != (tc.signer != "") || r.Form != abi.FormBytecode {
				t.Errorf("request covers %d signer %q signed %v form %d, want covers %d signer %q", r.Covers, r.ProgramSigner, r.ProgramSigned, r.Form, tc.covers, tc.signer)
			}
		})
	}
}

func signObject(t *testing.T, path string, key *attest.PrivateKey, role attest.Role) {
	t.Helper()
	if _, err := attest.SignArtifact(path, key, attest.ArtifactPredicate{Role: role}); err != nil {
		t.Fatal(err)
	}
}

func appendByte(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0})
	f.Close()
}

func testKey(t *testing.T) *attest.PrivateKey {
	t.Helper()
	k, err := attest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestObjectInterpRefused: what interpreter mode cannot run of an
// object is refused before anything is loaded.
func TestObjectInterpRefused(t *testing.T) {
	err := Run(context.Background(), Request{Object: openObject(t, "kopens.bpf.o"), Mode: ModeInterp, Collectors: testCollectors(t),
		Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}})
	if err == nil || !strings.Contains(err.Error(), "follows kernel pointers in its typed arguments") {
		t.Errorf("Run = %v, want a refusal of kfunc in interpreter mode", err)
	}
}

// TestObjectFormsTraced runs real traces from a signed package's member
// and a signed repository's file under the example policy (forms.bt):
// the package's program JIT-compiled, the repository's interpreted, each
// counting the workload's opens exactly, and each attested with what
// signed it.
func TestObjectFormsTraced(t *testing.T) {
	needKernel(t)
	lockKernel(t)
	exe := buildObjectWorkload(t)
	key := testKey(t)
	trust := attest.NewTrust(key.Public())
	policy := loadFormsPolicy(t, trust)
	data, err := os.ReadFile(filepath.Join(objectsDir, "opensnoop.bpf.o"))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "tbf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	pkg := filepath.Join(dir, "tools.tar")
	writeTestTar(t, pkg, map[string][]byte{"opensnoop.bpf.o": data, "app.json": []byte(`{}`)})
	if _, err := attest.SignPackage(pkg, key, attest.BundlePredicate{}); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(dir, "repo")
	os.MkdirAll(repo, 0o755)
	os.WriteFile(filepath.Join(repo, "opensnoop.bpf.o"), data, 0o644)
	if _, err := attest.SignRepository(repo, key, attest.BundlePredicate{}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "opened")
	os.WriteFile(file, nil, 0o644)
	hostKey := testKey(t)
	for _, tc := range []struct {
		name, mode, signer string
		covers             uint8
		open               func() (*Object, error)
	}{
		{"package", gatekeeper.ModeJIT, key.ID, abi.CoversPackage, func() (*Object, error) { return OpenPackageObject(pkg, "", "", trust) }},
		{"repository", gatekeeper.ModeInterpreter, key.ID, abi.CoversRepository, func() (*Object, error) {
			return OpenObject(filepath.Join(repo, "opensnoop.bpf.o"), "", trust)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leaks := newLeakCheck(t)
			o, err := tc.open()
			if err != nil {
				t.Fatal(err)
			}
			k, err := gatekeeper.New(gatekeeper.Config{Default: gatekeeper.DefaultStrict, Trust: trust,
				Platform: gatekeeper.Platform{JITAvailable: true}})
			if err != nil {
				t.Fatal(err)
			}
			k.Load(policy)
			attDir := t.TempDir()
			var mode string
			req := Request{Object: o, Collectors: testCollectors(t),
				Gate:     &Gate{Keeper: k, Request: RequesterRequest(attest.Identity{})},
				Attest:   &Attest{Dir: attDir, Key: hostKey},
				Admitted: func(a *Admission) { mode = a.Mode }}
			out, pid, err := runObjectWhile(t, req, func() int { return runWorkload(t, exe, "open", file, "5") })
			if err != nil {
				t.Fatal(err)
			}
			if mode != tc.mode {
				t.Errorf("ran in %s mode, want %s", mode, tc.mode)
			}
			n := 0
			for _, r := range out.records {
				if r.Value["filename"] == file && r.Value["tgid"] == float64(pid) {
					n++
				}
			}
			if n != 5 {
				t.Errorf("%d records of the workload's opens, want 5", n)
			}
			envs, _ := filepath.Glob(filepath.Join(attDir, "*.json"))
			if len(envs) != 1 {
				t.Fatalf("attestations %v, want one", envs)
			}
			env, _ := os.ReadFile(envs[0])
			p, _, err := attest.VerifyProgram(env, attest.NewTrust(hostKey.Public()), nil)
			if err != nil {
				t.Fatal(err)
			}
			if p.Source.Kind != "object" || p.Source.Digest != o.Digest || p.Generator.Identity.Signer != tc.signer ||
				p.Decision.Mode != tc.mode || p.Program.Name != "tracepoint:syscalls:sys_enter_openat" {
				t.Errorf("attestation %+v", p)
			}
			leaks.expectReleased(t, false)
		})
	}
}

// TestObjectKernelFunctions runs an object's kprobe and fentry programs
// on the same kernel function (the kernel matrix's guests have both;
// this host neither): each counts the workload's opens of its file
// exactly.
func TestObjectKernelFunctions(t *testing.T) {
	needKprobes(t)
	needFentry(t)
	lockKernel(t)
	leaks := newLeakCheck(t)
	exe := buildObjectWorkload(t)
	dir, err := os.MkdirTemp("", "tbk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	file := filepath.Join(dir, "opened")
	os.WriteFile(file, nil, 0o644)
	out, pid, err := runObjectWhile(t, Request{Object: openObject(t, "kopens.bpf.o"), Mode: ModeJIT}, func() int {
		return runWorkload(t, exe, "open", file, "6")
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.attached != 2 {
		t.Errorf("attached %d probes, want 2", out.attached)
	}
	for _, m := range []string{"kprobe_opens", "fentry_opens"} {
		got := -1.0
		for _, e := range out.maps[m].Entries {
			if k, _ := e.Key.(map[string]any); k["filename"] == file && k["tgid"] == float64(pid) {
				got, _ = e.Value.(float64)
			}
		}
		if got != 6 {
			t.Errorf("@%s[%d, %s] = %v, want 6", m, pid, file, got)
		}
	}
	leaks.expectReleased(t, false)
}

// BenchmarkOpenObject: what run does with a signed object before the
// gatekeeper: read it once, verify its signature over those bytes, and
// parse it into probes.
func BenchmarkOpenObject(b *testing.B) {
	key, err := attest.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	trust := attest.NewTrust(key.Public())
	data, err := os.ReadFile(filepath.Join(objectsDir, "libccount.bpf.o"))
	if err != nil {
		b.Fatal(err)
	}
	obj := filepath.Join(b.TempDir(), "libccount.bpf.o")
	os.WriteFile(obj, data, 0o644)
	if _, err := attest.SignArtifact(obj, key, attest.ArtifactPredicate{Role: attest.RoleProgram}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		o, err := OpenObject(obj, "", trust)
		if err != nil || o.Covers == 0 {
			b.Fatal(err)
		}
		if _, err := object.Parse(o.Name, o.Data); err != nil {
			b.Fatal(err)
		}
	}
}

// TestObjectMapsOnly runs an object whose only output is its maps (no
// ring buffer, no perf event array): it runs until it is stopped, and
// prints its maps then.
func TestObjectMapsOnly(t *testing.T) {
	needKernel(t)
	lockKernel(t)
	exe := buildObjectWorkload(t)
	dir, err := os.MkdirTemp("", "tbm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	file := filepath.Join(dir, "opened")
	os.WriteFile(file, nil, 0o644)
	for _, mode := range []Mode{ModeJIT, ModeInterp} {
		t.Run(string(mode), func(t *testing.T) {
			leaks := newLeakCheck(t)
			out, pid, err := runObjectWhile(t, Request{Object: openObject(t, "opencount.bpf.o"), Mode: mode, Collectors: testCollectors(t)}, func() int {
				return runWorkload(t, exe, "open", file, "3")
			})
			if err != nil {
				t.Fatal(err)
			}
			got := -1.0
			for _, e := range out.maps["opens"].Entries {
				if k, _ := e.Key.(map[string]any); k["filename"] == file && k["tgid"] == float64(pid) {
					got, _ = e.Value.(float64)
				}
			}
			if got != 3 {
				t.Errorf("@opens[%d, %s] = %v, want 3", pid, file, got)
			}
			if e := out.maps["total"].Entries; len(e) != 1 || e[0].Key != float64(0) || e[0].Value.(float64) < 3 {
				t.Errorf("@total = %+v, want one element of at least 3", e)
			}
			leaks.expectReleased(t, false)
		})
	}
}

// TestObjectVariables sets an object's `const volatile` parameters before
// it is loaded, in both modes: only the command named is counted, each
// open weight times, and the attestation records what was set.
func TestObjectVariables(t *testing.T) {
	needKernel(t)
	lockKernel(t)
	exe := buildObjectWorkload(t)
	dir, err := os.MkdirTemp("", "tbv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	file := filepath.Join(dir, "opened")
	os.WriteFile(file, nil, 0o644)
	hostKey := testKey(t)
	vars := map[string]string{"targ_comm": "workload", "weight": "10"}
	for _, mode := range []Mode{ModeJIT, ModeInterp} {
		t.Run(string(mode), func(t *testing.T) {
			leaks := newLeakCheck(t)
			o := openObject(t, "opencount.bpf.o")
			o.Vars = vars
			attDir := t.TempDir()
			out, pid, err := runObjectWhile(t, Request{Object: o, Mode: mode, Collectors: testCollectors(t), Attest: &Attest{Dir: attDir, Key: hostKey}}, func() int {
				return runWorkload(t, exe, "open", file, "3")
			})
			if err != nil {
				t.Fatal(err)
			}
			got := -1.0
			for _, e := range out.maps["opens"].Entries {
				k, _ := e.Key.(map[string]any)
				if k["tgid"] != float64(pid) {
					t.Errorf("an open by another command than the workload: %+v", e)
				}
				if k["filename"] == file {
					got, _ = e.Value.(float64)
				}
			}
			if got != 30 {
				t.Errorf("@opens[%d, %s] = %v, want 30 (3 opens of weight 10)", pid, file, got)
			}
			envs, _ := filepath.Glob(filepath.Join(attDir, "*.json"))
			if len(envs) != 1 {
				t.Fatalf("attestations %v", envs)
			}
			env, _ := os.ReadFile(envs[0])
			p, _, err := attest.VerifyProgram(env, attest.NewTrust(hostKey.Public()), nil)
			if err != nil {
				t.Fatal(err)
			}
			if p.Source.Params["targ_comm"] != "workload" || p.Source.Params["weight"] != "10" {
				t.Errorf("attested params %v, want %v", p.Source.Params, vars)
			}
			// The sections the variables live in are released with the
			// rest, not when the garbage collector gets to them.
			leaks.expectReleased(t, false)
		})
	}
}
