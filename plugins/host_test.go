package plugins

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/attest"
)

// testPlugins are the main packages under testdata/plugins, built once
// by TestMain into testBin.
var testPlugins = []string{"good", "panics", "hangs", "noisy", "badscript", "raw", "crashes"}

var testBin string

// Environment of the helper process of TestHostKilledPluginDies.
const (
	envHelperDir   = "TB_PLUGINS_TEST_HELPER_DIR"
	envHelperTrust = "TB_PLUGINS_TEST_HELPER_TRUST"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(envHelperDir); dir != "" {
		os.Exit(hostHelper(dir, os.Getenv(envHelperTrust)))
	}
	// A fuzzing worker runs only the fuzz target, which needs no plugin:
	// building them in every worker would take all of -fuzztime.
	flag.Parse()
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "tracebroker-test-plugins")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := 1
	if err := buildTestPlugins(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		testBin = dir
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func buildTestPlugins(dir string) error {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	args := []string{"build", "-o", dir + "/"}
	for _, p := range testPlugins {
		args = append(args, "./testdata/plugins/"+p)
	}
	cmd := exec.Command(goTool, args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the test plugins: %v\n%s", err, out)
	}
	return nil
}

// hostHelper is the host that TestHostKilledPluginDies SIGKILLs: it runs
// the hanging plugin and waits for it.
func hostHelper(dir, trustPath string) int {
	trust, err := attest.LoadTrust(trustPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	h := &Host{Dir: dir, Trust: trust, CallTimeout: time.Minute}
	_, err = h.Generate(context.Background(), "hangs", nil)
	fmt.Fprintln(os.Stderr, "helper: Generate returned:", err)
	return 3
}

// syncBuffer is a log destination safe for concurrent writers (plugin
// output may be logged from go-plugin's goroutines).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fixture struct {
	t    *testing.T
	dir  string
	key  *attest.PrivateKey
	logs *syncBuffer
	host *Host
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	key, err := attest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, dir: t.TempDir(), key: key, logs: &syncBuffer{}}
	f.host = &Host{
		Dir:          f.dir,
		Trust:        attest.NewTrust(key.Public()),
		StartTimeout: 10 * time.Second,
		CallTimeout:  10 * time.Second,
		Logger:       slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("TB_PLUGINS_SHOW_LOG") != "" {
			t.Logf("host log:\n%s", f.logs)
		}
	})
	return f
}

// install copies test plugin bin into the plugin directory as name.
func (f *fixture) install(bin, name string) string {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(testBin, bin))
	if err != nil {
		f.t.Fatal(err)
	}
	path := filepath.Join(f.dir, name)
	if err := os.WriteFile(path, b, 0o755); err != nil {
		f.t.Fatal(err)
	}
	return path
}

func (f *fixture) sign(name string, key *attest.PrivateKey, role attest.Role) {
	f.t.Helper()
	if _, err := attest.SignArtifact(filepath.Join(f.dir, name), key, attest.ArtifactPredicate{Role: role, Version: "test"}); err != nil {
		f.t.Fatal(err)
	}
}

// add installs bin under its own name, signed for role generator by the
// trusted key.
func (f *fixture) add(bin string) string {
	path := f.install(bin, bin)
	f.sign(bin, f.key, attest.RoleGenerator)
	return path
}

// pid is the pid the plugin name wrote when it last started.
func (f *fixture) pid(name string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(f.dir, name+".pid"))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(string(b))
	if err != nil {
		f.t.Fatalf("%s.pid: %v", name, err)
	}
	return pid, true
}

func (f *fixture) neverRan(name string) {
	f.t.Helper()
	if pid, ok := f.pid(name); ok {
		f.t.Errorf("plugin %s ran (pid %d): it must not have been started", name, pid)
	}
}

// ranAndGone checks that the plugin ran and that its process is gone.
func (f *fixture) ranAndGone(name string) {
	f.t.Helper()
	pid, ok := f.pid(name)
	if !ok {
		f.t.Fatalf("plugin %s never started", name)
	}
	waitGone(f.t, pid, 2*time.Second)
}

// waitGone fails unless process pid is gone (or a zombie: dead, waiting
// for a parent that is not ours to reap it) within d.
func waitGone(t *testing.T, pid int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if processGone(pid) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin process %d is still running %s later", pid, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func processGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// pid (comm) state ...: comm may hold anything but ends at the last ')'.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z' || b[i+2] == 'X'
}

func mustContain(t *testing.T, err error, subs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", subs)
	}
	for _, s := range subs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q\ndoes not contain %q", err, s)
		}
	}
}

func TestGenerateScriptWithDefaults(t *testing.T) {
	f := newFixture(t)
	f.add("good")
	g, err := f.host.Generate(context.Background(), "good", map[string]string{"pid": "42", "verbose": "true"})
	if err != nil {
		t.Fatal(err)
	}
	f.ranAndGone("good")
	want := "// comm=bash interval=5s pid=42 verbose=true\ntracepoint:syscalls:sys_enter_openat /pid == 42/ { @[comm] = count(); }\n"
	if g.Output.Script != want || g.Output.Program != nil {
		t.Errorf("output %+v, want script %q", g.Output, want)
	}
	wantParams := map[string]string{"pid": "42", "verbose": "true", "comm": "bash", "interval": "5s"}
	if fmt.Sprint(g.Params) != fmt.Sprint(wantParams) {
		t.Errorf("params %v, want %v", g.Params, wantParams)
	}
	if g.Info.Name != "good" || g.Info.Version != "1.2.3" || len(g.Info.Params) != 4 {
		t.Errorf("info %+v", g.Info)
	}
	id := g.Plugin.Identity
	if !id.Verified || id.Signer != f.key.ID || id.Role != attest.RoleGenerator || id.Name != "good" || len(id.Digest) != 64 {
		t.Errorf("identity %+v", id)
	}
	if g.Plugin.Name != "good" || g.Plugin.Path != filepath.Join(f.dir, "good") || g.Plugin.Info == nil || g.Plugin.Err != nil {
		t.Errorf("plugin %+v", g.Plugin)
	}
	if _, err := g.RawProgram(); err == nil {
		t.Error("RawProgram of a script output did not fail")
	}
}

func TestGenerateParamErrors(t *testing.T) {
	f := newFixture(t)
	f.add("good")
	for _, tc := range []struct {
		params map[string]string
		want   []string
	}{
		{map[string]string{"bogus": "1", "pid": "1"}, []string{`plugin good: no parameter "bogus" (its parameters: comm, interval, pid, verbose)`}},
		{map[string]string{"pid": "forty-two"}, []string{`parameter pid: "forty-two" is not an integer`}},
		{map[string]string{"verbose": "yes", "interval": "5"}, []string{`parameter interval: "5" is not a duration`, `parameter verbose: "yes" is not a boolean`}},
	} {
		_, err := f.host.Generate(context.Background(), "good", tc.params)
		mustContain(t, err, tc.want...)
		f.ranAndGone("good")
	}
}

func TestList(t *testing.T) {
	f := newFixture(t)
	f.add("good")
	f.add("raw")
	f.add("noisy")
	f.install("good", "unsigned")
	f.install("good", "untrusted")
	other, err := attest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	f.sign("untrusted", other, attest.RoleGenerator)
	f.install("good", "policy")
	f.sign("policy", f.key, attest.RolePolicy)
	tampered := f.add("panics")
	appendByte(t, tampered)
	if err := os.WriteFile(filepath.Join(f.dir, "README"), []byte("not a plugin"), 0o644); err != nil {
		t.Fatal(err)
	}
	list, err := f.host.List()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Plugin{}
	var names []string
	for _, p := range list {
		got[p.Name] = p
		names = append(names, p.Name)
	}
	if want := "good noisy panics policy raw unsigned untrusted"; strings.Join(names, " ") != want {
		t.Fatalf("listed %v, want %s", names, want)
	}
	for _, name := range []string{"good", "raw"} {
		p := got[name]
		if !p.Identity.Verified || p.Identity.Signer != f.key.ID || p.Err != nil || p.Info == nil || p.Info.Name != name {
			t.Errorf("%s: %+v (info %+v)", name, p, p.Info)
		}
		f.ranAndGone(name)
	}
	if p := got["noisy"]; !p.Identity.Verified || p.Info != nil || p.Err == nil || !strings.Contains(p.Err.Error(), "not the go-plugin handshake") {
		t.Errorf("noisy: %+v, want verified but failed", p)
	}
	f.ranAndGone("noisy")
	if p := got["good"]; p.Info.Version != "1.2.3" || p.Info.Description != "counts opens" || len(p.Info.Params) != 4 {
		t.Errorf("good's info: %+v", p.Info)
	}
	for name, reason := range map[string]attest.Reason{
		"unsigned":  attest.ReasonUnsigned,
		"untrusted": attest.ReasonUntrustedKey,
		"policy":    attest.ReasonWrongRole,
		"panics":    attest.ReasonDigestMismatch,
	} {
		p := got[name]
		var ve *attest.VerifyError
		if p.Identity.Verified || p.Identity.Reason != string(reason) || p.Info != nil || !errors.As(p.Err, &ve) || ve.Reason != reason {
			t.Errorf("%s: %+v, want refused: %s", name, p, reason)
		}
		f.neverRan(name)
	}
}

func appendByte(t *testing.T, path string) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestGenerateRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(f *fixture)
		reason attest.Reason
		want   string
	}{
		{"appended", func(f *fixture) { appendByte(t, f.add("good")) }, attest.ReasonDigestMismatch, "digest mismatch: the manifest is for good"},
		{"no-sig", func(f *fixture) { f.install("good", "good") }, attest.ReasonUnsigned, "unsigned: no manifest"},
		{"untrusted-key", func(f *fixture) {
			other, err := attest.GenerateKey()
			if err != nil {
				t.Fatal(err)
			}
			f.install("good", "good")
			f.sign("good", other, attest.RoleGenerator)
		}, attest.ReasonUntrustedKey, "untrusted key: signed by " + "" /* the key id follows */},
		{"wrong-role", func(f *fixture) {
			f.install("good", "good")
			f.sign("good", f.key, attest.RolePolicy)
		}, attest.ReasonWrongRole, "wrong role: signed as policy, wanted generator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tc.setup(f)
			g, err := f.host.Generate(context.Background(), "good", nil)
			if g != nil {
				t.Errorf("generated %+v", g)
			}
			mustContain(t, err, "plugin good: refused, not started: ", tc.want)
			var ve *attest.VerifyError
			if !errors.As(err, &ve) || ve.Reason != tc.reason {
				t.Errorf("error %v: want an *attest.VerifyError with reason %s", err, tc.reason)
			}
			f.neverRan("good")
		})
	}
}

func TestSwappedAfterVerification(t *testing.T) {
	f := newFixture(t)
	path := f.add("good")
	f.host.beforeStart = func(p string) {
		if p != path {
			t.Errorf("starting %s, want %s", p, path)
		}
		// Another binary, renamed over the verified one.
		swap := f.install("panics", ".swap")
		if err := os.Rename(swap, path); err != nil {
			t.Fatal(err)
		}
	}
	_, err := f.host.Generate(context.Background(), "good", nil)
	mustContain(t, err, "plugin good: refused at start, not run", "checksum mismatch")
	f.neverRan("good")
}

func TestPanicInGenerate(t *testing.T) {
	f := newFixture(t)
	f.add("panics")
	_, err := f.host.Generate(context.Background(), "panics", nil)
	onePanicLine(t, f, err, `plugin panics panicked: assignment to entry in nil map \(in Generate at main\.panics\.Generate \S+/main\.go:\d+; stack at debug level\)`)
	f.ranAndGone("panics")
}

func TestCrashInGenerate(t *testing.T) {
	f := newFixture(t)
	f.add("crashes")
	_, err := f.host.Generate(context.Background(), "crashes", nil)
	onePanicLine(t, f, err, `plugin crashes panicked: crashed in a goroutine \(stack at debug level\)`)
	f.ranAndGone("crashes")
}

// onePanicLine checks that a plugin's panic came back as the one-line
// error want (a regexp), and that its goroutine dump went to the log at
// Debug only, none of it at Info or above.
func onePanicLine(t *testing.T, f *fixture, err error, want string) {
	t.Helper()
	if err == nil || !regexp.MustCompile(`^`+want+`$`).MatchString(err.Error()) {
		t.Fatalf("error %q, want %s", err, want)
	}
	var debug int
	for _, line := range strings.Split(f.logs.String(), "\n") {
		if !strings.Contains(line, "stream=stderr") && !strings.Contains(line, "stream=panic") {
			continue
		}
		if !strings.HasPrefix(line, "time=") || !strings.Contains(line, " level=DEBUG ") {
			t.Errorf("a line of the plugin's panic above Debug: %s", line)
			continue
		}
		if strings.Contains(line, `msg="goroutine `) {
			debug++
		}
	}
	if debug == 0 {
		t.Errorf("no goroutine dump at Debug in the log:\n%s", f.logs)
	}
}

func TestHangPastCallTimeout(t *testing.T) {
	f := newFixture(t)
	f.add("hangs")
	f.host.CallTimeout = 300 * time.Millisecond
	start := time.Now()
	_, err := f.host.Generate(context.Background(), "hangs", nil)
	mustContain(t, err, "plugin hangs: Generate did not return within 300ms")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Generate returned after %s", d)
	}
	f.ranAndGone("hangs")
}

func TestCallerCancels(t *testing.T) {
	f := newFixture(t)
	f.add("hangs")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := f.host.Generate(ctx, "hangs", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want the caller's deadline", err)
	}
	f.ranAndGone("hangs")
}

func TestStdoutNoiseBeforeHandshake(t *testing.T) {
	f := newFixture(t)
	f.add("noisy")
	_, err := f.host.Generate(context.Background(), "noisy", nil)
	mustContain(t, err, "plugin noisy wrote to stdout something that is not the go-plugin handshake", `"noisy: starting up, version 0"`)
	f.ranAndGone("noisy")
}

func TestScriptThatDoesNotCompile(t *testing.T) {
	f := newFixture(t)
	f.add("badscript")
	g, err := f.host.Generate(context.Background(), "badscript", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := "tracepoint:syscalls:sys_enter_openat { @[comm] = count( }\n"; g.Output.Script != want {
		t.Errorf("script %q, want %q", g.Output.Script, want)
	}
	f.ranAndGone("badscript")
}

func TestNameMustMatchInfo(t *testing.T) {
	f := newFixture(t)
	f.install("good", "renamed")
	f.sign("renamed", f.key, attest.RoleGenerator)
	_, err := f.host.Generate(context.Background(), "renamed", nil)
	mustContain(t, err, `plugin renamed describes itself as "good"`)
	f.ranAndGone("renamed")
}

func TestNoSuchPlugin(t *testing.T) {
	f := newFixture(t)
	f.add("good")
	_, err := f.host.Generate(context.Background(), "nope", nil)
	mustContain(t, err, `no generator plugin "nope" in `, "(plugins: good)")
	for _, name := range []string{"", "..", "../good", "good.sig", ".hidden"} {
		_, err := f.host.Generate(context.Background(), name, nil)
		mustContain(t, err, "not a plugin name")
	}
	f.neverRan("good")
}

// A plugin started by hand says what it is and exits 1 (go-plugin's
// message: no magic cookie in its environment).
func TestPluginRunByHand(t *testing.T) {
	cmd := exec.Command(filepath.Join(t.TempDir(), "good"))
	b, err := os.ReadFile(filepath.Join(testBin, "good"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cmd.Path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("exit: %v, want status 1", err)
	}
	if !strings.Contains(stderr.String(), "This binary is a plugin. These are not meant to be executed directly.") || stdout.Len() != 0 {
		t.Errorf("stdout %q, stderr %q", &stdout, &stderr)
	}
}

// The host dies by SIGKILL while its plugin hangs in Generate: the
// parent-death signal takes the plugin down too.
func TestHostKilledPluginDies(t *testing.T) {
	f := newFixture(t)
	f.add("hangs")
	pub, err := attest.MarshalPublicKeyPEM(f.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	trust := filepath.Join(t.TempDir(), "trust.pub")
	if err := os.WriteFile(trust, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	helper := exec.Command(os.Args[0], "-test.run=^$")
	// TMPDIR: the killed helper cannot remove its launch's socket directory.
	helper.Env = append(os.Environ(), envHelperDir+"="+f.dir, envHelperTrust+"="+trust, "TMPDIR="+t.TempDir())
	var stderr syncBuffer
	helper.Stdout, helper.Stderr = io.Discard, &stderr
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { helper.Wait(); close(exited) }()
	defer func() { helper.Process.Kill(); <-exited }()

	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(f.dir, "hangs.generating")); err == nil {
			break
		}
		select {
		case <-exited:
			t.Fatalf("helper exited: %s", stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the plugin did not reach Generate; helper: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	pid, ok := f.pid("hangs")
	if !ok || processGone(pid) {
		t.Fatalf("plugin pid %d (%v) is not running", pid, ok)
	}
	if err := helper.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	waitGone(t, pid, 2*time.Second)
}

func TestStartErrors(t *testing.T) {
	long := strings.Repeat("x", 1000)
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errors.New("Unrecognized remote plugin message: " + long + "\nThis usually means\n..."),
			`plugin p wrote to stdout something that is not the go-plugin handshake (a generator must not print to stdout before sdk.Serve): "` + long[:noiseLine] + `…"`},
		{errors.New("Unrecognized remote plugin message: \nFailed to read any lines from plugin's stdout\nThis usually means"),
			"plugin p exited before the go-plugin handshake, without writing anything to stdout"},
		{errors.New(`error parsing core protocol version: strconv.Atoi: parsing "a": invalid syntax`),
			`plugin p wrote to stdout something that is not the go-plugin handshake (a generator must not print to stdout before sdk.Serve): error parsing core protocol version`},
		{errors.New("incompatible API version with plugin. Plugin version: 2, Client versions: [1]"),
			"plugin p speaks another version of the generator protocol than this host (1)"},
		{errors.New(`unsupported plugin protocol "netrpc". Supported: [grpc]`), "plugin p does not speak gRPC"},
		{errors.New("timeout while waiting for plugin to start"), "plugin p did not complete the go-plugin handshake within 1s"},
		{errors.New("plugin exited before we could connect"), "plugin p exited before the go-plugin handshake"},
	} {
		err := startError("p", time.Second, tc.err)
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\ngot  %q\nwant %q", tc.err, err, tc.want)
		}
	}
}

func TestNoTrustVerifiesNothing(t *testing.T) {
	f := newFixture(t)
	f.add("good")
	f.host.Trust = nil
	_, err := f.host.Generate(context.Background(), "good", nil)
	mustContain(t, err, "plugin good: refused, not started: untrusted key")
	f.neverRan("good")
}

// TestSwapRaceBeforeExec: go-plugin hashes Cmd.Path (SecureConfig) and
// then executes Cmd.Path, two lookups of one name. Whoever can write the
// plugin directory can rename another binary over the verified one
// between them, and that binary runs as the host's user. Here NAME is a
// symbolic link flipped as fast as possible between the signed plugin
// and a script; the script must never run, however the flips fall.
func TestSwapRaceBeforeExec(t *testing.T) {
	if testing.Short() {
		t.Skip("races many launches")
	}
	f := newFixture(t)
	realDir, evilDir := filepath.Join(f.dir, ".real"), filepath.Join(f.dir, ".evil")
	for _, d := range []string{realDir, evilDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	good := filepath.Join(realDir, "good")
	b, err := os.ReadFile(filepath.Join(testBin, "good"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(good, b, 0o755); err != nil {
		t.Fatal(err)
	}
	sig, err := attest.SignArtifact(good, f.key, attest.ArtifactPredicate{Role: attest.RoleGenerator, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(sig, filepath.Join(f.dir, "good"+attest.SigSuffix)); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(f.dir, "evil-ran")
	evil := filepath.Join(evilDir, "good")
	if err := os.WriteFile(evil, []byte("#!/bin/sh\ntouch '"+marker+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	name, tmp := filepath.Join(f.dir, "good"), filepath.Join(f.dir, ".flip")
	if err := os.Symlink(good, name); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	flipped := make(chan struct{})
	go func() {
		defer close(flipped)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			target := good
			if i%2 == 1 {
				target = evil
			}
			os.Remove(tmp)
			if os.Symlink(target, tmp) == nil {
				os.Rename(tmp, name)
			}
		}
	}()
	defer func() { close(stop); <-flipped }()
	deadline := time.Now().Add(20 * time.Second)
	ran := 0
	for i := 0; i < 400 && time.Now().Before(deadline); i++ {
		if _, err := f.host.Generate(context.Background(), "good", nil); err == nil {
			ran++
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("attempt %d: a binary other than the verified one was executed", i)
		}
	}
	t.Logf("the verified plugin ran %d times", ran)
}
