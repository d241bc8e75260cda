package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
	"github.com/tracebroker/tracebroker/broker/token"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// stalledTrace submits req as a client that never reads its output: a
// raw gRPC stream on which Recv is never called. leave drops it.
func (d *testDaemon) stalledTrace(t *testing.T, tok string, req *pb.TraceRequest) (leave func()) {
	t.Helper()
	abs, err := filepath.Abs(d.socket)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("unix://"+abs, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if tok != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	}
	stream, err := pb.NewBrokerClient(conn).Trace(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.TraceInput{Input: &pb.TraceInput_Request{Request: req}}); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	leave = func() { once.Do(func() { cancel(); conn.Close() }) }
	t.Cleanup(leave)
	return leave
}

// storm is a child process making getcwd calls until stop, counted by
// the lines it prints, one per thousand: the events of the test's
// scripts, which filter on its pid. Another process's, since the
// daemon's interpreter mode skips the daemon's own events.
type storm struct {
	calls atomic.Int64
	pid   int
	c     *child
	done  chan struct{}
}

// startStorm starts a storm; dir is where the child's binary may be
// copied.
func startStorm(t *testing.T, dir string) *storm {
	c := startChild(t, dir, os.Getuid(), "storm")
	s := &storm{pid: c.cmd.Process.Pid, c: c, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for range c.lines {
			s.calls.Add(1000)
		}
	}()
	t.Cleanup(s.stop)
	// Under way before anything traces it, as a storm in this process
	// would have been.
	s.reach(t, 1000)
	return s
}

func (s *storm) stop() {
	s.c.stdin.Close()
	s.c.cmd.Process.Kill()
	<-s.done
}

// reach waits until the storm has made n calls.
func (s *storm) reach(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for s.calls.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the storm made %d calls in 60s", s.calls.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

// waitSessions lists the sessions until until says yes, and returns
// that list; what says what is awaited, for the failure.
func (d *testDaemon) waitSessions(t *testing.T, what string, until func([]*pb.Session) bool) []*pb.Session {
	t.Helper()
	c := d.client(t, "")
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ss, err := c.Sessions(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if until(ss) {
			return ss
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not in 30s: %v", what, ss)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// sessionByName waits until a session named name is listed (with its
// probes attached when attached) and returns it.
func (d *testDaemon) sessionByName(t *testing.T, name string, attached bool) *pb.Session {
	t.Helper()
	var found *pb.Session
	d.waitSessions(t, "session "+name, func(ss []*pb.Session) bool {
		for _, s := range ss {
			if s.Name == name && (!attached || s.Mode != "") {
				found = s
			}
		}
		return found != nil
	})
	return found
}

// gone waits until session id has left the table — its trace has ended,
// its probes are detached and its end record written — and says when.
func (d *testDaemon) gone(t *testing.T, id string) time.Time {
	t.Helper()
	d.waitSessions(t, "the end of session "+id, func(ss []*pb.Session) bool {
		for _, s := range ss {
			if s.Id == id {
				return false
			}
		}
		return true
	})
	return time.Now()
}

// ends are the trace.end records of session id.
func ends(recs []auditRecord, id string) []map[string]any {
	var out []map[string]any
	for _, r := range recs {
		if r.Event == "trace.end" && r.Data["session"] == id {
			out = append(out, r.Data)
		}
	}
	return out
}

// printfStorm prints a line per getcwd call of process pid (a storm's):
// output far faster than a client that does not read takes it.
func printfStorm(pid int) []byte {
	return fmt.Appendf(nil, `tracepoint:syscalls:sys_enter_getcwd /pid == %d/ { @ = count(); printf("%%s %%s %%s %%s %%d\n", comm, comm, comm, comm, nsecs); }`, pid)
}

// mapsOnlyStorm only updates maps, and runs long enough per event (a
// 300-turn loop) that the storm outruns the interpreter.
func mapsOnlyStorm(pid int) []byte {
	return fmt.Appendf(nil, `tracepoint:syscalls:sys_enter_getcwd /pid == %d/ { @ = count(); $i = 0; while ($i < 300) { $i++; } }`, pid)
}

// TestAttacksLifetimes (item 8): a token holder cannot make a session
// outlive its end. A client that stops reading a storm of output, then
// leaves, and a script that only updates maps while events keep coming
// (in the interpreter, where the gatekeeper sends it), each end within
// a second of their stop, max_duration, token expiry or the client's
// leaving: the session leaves the table with its trace.end record
// written and its probes detached. The 2 s bound asserted is a liveness
// check; the lateness is logged.
func TestAttacksLifetimes(t *testing.T) {
	needKernelAlone(t) // storms of getcwd calls
	jit := startDaemon(t, daemonOpts{})
	interp := startDaemon(t, daemonOpts{hvci: true})
	for _, tt := range []struct {
		name   string
		d      *testDaemon
		script func(pid int) []byte
		prog   string // the kernel's name for what the session loads
		end    string // stop, max_duration, token_expiry, leaves
		reason string
		drops  bool // the session dropped output for its client
	}{
		{"item8/stalled_client_stop", jit, printfStorm, getcwdProg, "stop", "stopped", true},
		{"item8/stalled_client_max_duration", jit, printfStorm, getcwdProg, "max_duration", "max_duration", true},
		{"item8/stalled_client_token_expiry", jit, printfStorm, getcwdProg, "token_expiry", "token_expired", true},
		{"item8/stalled_client_leaves", jit, printfStorm, getcwdProg, "leaves", "client", true},
		{"item8/interp_maps_only_stop", interp, mapsOnlyStorm, "tb_coll_tp", "stop", "stopped", false},
		{"item8/interp_maps_only_max_duration", interp, mapsOnlyStorm, "tb_coll_tp", "max_duration", "max_duration", false},
		{"item8/interp_maps_only_token_expiry", interp, mapsOnlyStorm, "tb_coll_tp", "token_expiry", "token_expired", false},
		{"item8/interp_maps_only_client_leaves", interp, mapsOnlyStorm, "tb_coll_tp", "leaves", "client", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.d
			before, _ := kerneltest.LoadedIDs(t)
			opts := token.IssueOptions{Scope: "trace probe:tracepoint:syscalls:sys_enter_getcwd"}
			switch tt.end {
			case "max_duration":
				opts.MaxDuration = 2 * time.Second
			case "token_expiry":
				opts.TTL = 4 * time.Second
			}
			tok := d.token(t, opts)
			name := strings.ReplaceAll(tt.name, "/", "_")
			s := startStorm(t, filepath.Dir(d.socket))
			leave := d.stalledTrace(t, tok, &pb.TraceRequest{Name: name, Source: tt.script(s.pid)})
			sess := d.sessionByName(t, name, true)
			var due time.Time
			switch tt.end {
			case "stop", "leaves":
				// Well past what the client's buffers and the queue
				// hold: a run loop that waited for the client would be
				// stuck by now.
				s.reach(t, 300_000)
				due = time.Now()
				if tt.end == "stop" {
					admin := d.client(t, "")
					defer admin.Close()
					if err := admin.Stop(context.Background(), sess.Id); err != nil {
						t.Fatal(err)
					}
				} else {
					leave()
				}
			case "max_duration":
				due = time.UnixMilli(sess.DeadlineUnixMs)
			case "token_expiry":
				v, err := d.srv.cfg.Tokens.Verify(tok)
				if err != nil {
					t.Fatal(err)
				}
				due = v.Expires
			}
			end := d.gone(t, sess.Id)
			late := end.Sub(due)
			t.Logf("ended %v after its end was due; the storm made %d calls", late.Round(time.Millisecond), s.calls.Load())
			if late > 2*time.Second {
				t.Errorf("ended %v after its end was due", late)
			}
			if left := kerneltest.LeftLoaded(t, before, tt.prog, time.Second); len(left) > 0 {
				t.Errorf("left loaded when the session had ended: %v", left)
			}
			e := ends(auditRecords(t, d.auditLog), sess.Id)
			if len(e) != 1 {
				t.Fatalf("%d trace.end records, want 1: %v", len(e), e)
			}
			if e[0]["reason"] != tt.reason {
				t.Errorf("trace.end %v, want reason %s", e[0], tt.reason)
			}
			if dropped, _ := e[0]["output_dropped_bytes"].(float64); (dropped > 0) != tt.drops {
				t.Errorf("trace.end %v: dropped output %v, want %v", e[0], dropped, tt.drops)
			}
		})
	}
}

// TestAttacksLifetimesShutdown (item 8): SIGTERM writes exactly one
// trace.end record for every session, whatever its phase: compiling,
// loading, running for a client that does not read, or whose client has
// just gone; one stuck past the shutdown timeout gets its record from
// shutdown itself, naming its phase, and writes none of its own when it
// comes unstuck. Nothing is left loaded.
func TestAttacksLifetimesShutdown(t *testing.T) {
	needKernelAlone(t) // storms of getcwd calls
	for _, mode := range []struct {
		name   string
		hvci   bool
		script func(pid int) []byte
		prog   string
	}{
		{"item8/sigterm_every_phase_jit", false, printfStorm, getcwdProg},
		{"item8/sigterm_every_phase_interp", true, mapsOnlyStorm, "tb_coll_tp"},
	} {
		t.Run(mode.name, func(t *testing.T) {
			before, _ := kerneltest.LoadedIDs(t)
			unstick := make(chan struct{})
			var d *testDaemon
			nameOf := func(id string) string {
				d.srv.sessions.mu.Lock()
				defer d.srv.sessions.mu.Unlock()
				if s := d.srv.sessions.byID[id]; s != nil {
					return s.info.Name
				}
				return ""
			}
			hook := func(ctx context.Context, id, phase string) {
				switch name := nameOf(id); {
				case name == "stuck-compiling" && phase == phaseCompile:
					<-unstick // past the shutdown timeout
				case name == "loading" && phase == phaseLoad:
					<-ctx.Done() // until SIGTERM reaches it
				}
			}
			d = startDaemon(t, daemonOpts{hvci: mode.hvci, configure: func(_ *testDaemon, c *Config) {
				c.ShutdownTimeout, c.hooks = 3*time.Second, &testHooks{phase: hook}
			}})
			tok := d.token(t, token.IssueOptions{Scope: "trace probe:tracepoint:syscalls:sys_enter_getcwd"})
			script := mode.script(startStorm(t, filepath.Dir(d.socket)).pid)
			d.stalledTrace(t, tok, &pb.TraceRequest{Name: "stuck-compiling", Source: script})
			d.stalledTrace(t, tok, &pb.TraceRequest{Name: "loading", Source: script})
			d.stalledTrace(t, tok, &pb.TraceRequest{Name: "running-unread", Source: script})
			gone := d.start(t, tok, &pb.TraceRequest{Name: "client-gone", Source: script})
			ids := map[string]string{}
			for _, n := range []string{"stuck-compiling", "loading"} {
				ids[n] = d.sessionByName(t, n, false).Id
			}
			for _, n := range []string{"running-unread", "client-gone"} {
				ids[n] = d.sessionByName(t, n, true).Id
			}
			gone.cancel()
			start := time.Now()
			d.stop(t) // SIGTERM
			t.Logf("shut down in %v", time.Since(start).Round(time.Millisecond))

			recs := auditRecords(t, d.auditLog)
			want := map[string]string{"stuck-compiling": "shutdown", "loading": "shutdown", "running-unread": "shutdown", "client-gone": ""}
			for n, id := range ids {
				e := ends(recs, id)
				if len(e) != 1 {
					t.Errorf("%s: %d trace.end records, want 1: %v", n, len(e), e)
					continue
				}
				t.Logf("%s: %v", n, e[0])
				if r := want[n]; r != "" && e[0]["reason"] != r {
					t.Errorf("%s: trace.end %v, want reason %s", n, e[0], r)
				}
			}
			if e := ends(recs, ids["stuck-compiling"]); len(e) == 1 && (e[0]["abandoned"] != true || e[0]["phase"] != phaseCompile) {
				t.Errorf("stuck-compiling: %v, want shutdown's record of a session abandoned in phase compile", e[0])
			}
			if left := kerneltest.LeftLoaded(t, before, mode.prog, 2*time.Second); len(left) > 0 {
				t.Errorf("left loaded: %v", left)
			}
			// Unstuck, its handler finds its end recorded and writes none.
			close(unstick)
			for deadline := time.Now().Add(30 * time.Second); nameOf(ids["stuck-compiling"]) != ""; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the stuck session never ended")
				}
			}
			if e := ends(auditRecords(t, d.auditLog), ids["stuck-compiling"]); len(e) != 1 {
				t.Errorf("stuck-compiling, once unstuck: %d trace.end records, want 1", len(e))
			}
		})
	}
}
