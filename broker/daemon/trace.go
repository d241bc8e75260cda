package daemon

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/broker"
	"github.com/tracebroker/tracebroker/broker/audit"
	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
	"github.com/tracebroker/tracebroker/broker/token"
	"github.com/tracebroker/tracebroker/gatekeeper"
	"github.com/tracebroker/tracebroker/gatekeeper/lsmgate"
)

// Bounds on what a request may carry (and limits.go); maxRequestSize
// is also what a client receives at most.
const (
	maxRequestSize = 2 << 20
	maxTokenSize   = 8 << 10
	maxChunk       = 1 << 20
)

// errInterrupted is a session its client asked to end.
var errInterrupted = errors.New("interrupted")

// endReason is the Exit reason of a session ended from outside, by its
// context's cause ("" for another cause). A list, not a map: a cause of
// an incomparable type would make a map lookup panic.
func endReason(cause error) string {
	for _, r := range []struct {
		err    error
		reason string
	}{
		{errShutdown, "shutdown"},
		{errStopped, "stopped"},
		{errInterrupted, "interrupted"},
		{errExpired, "token_expired"},
		{errRevoked, "token_revoked"},
	} {
		if cause == r.err {
			return r.reason
		}
	}
	return ""
}

// Trace runs one trace for its caller.
func (s *Server) Trace(stream pb.Broker_TraceServer) error {
	ctx := stream.Context()
	id := newID()
	c, err := callerOf(ctx)
	if err != nil {
		return status.Error(codes.Unauthenticated, err.Error())
	}
	// The token comes with the call's headers. A call refused for it
	// claims its refusal record before its request, up to gRPC's whole
	// message limit, is read, and one whose refusal is only counted is
	// refused unread: past its share of records, a peer's calls cost
	// no read, however many it makes at once.
	tok, authErr := s.authenticate(ctx, c)
	var claim *earlyClaim
	if authErr != nil {
		cl := s.claimEarly(c)
		if !cl.record {
			return authErr
		}
		claim = &cl
	}
	in, err := s.firstMessage(stream)
	if err != nil {
		return err
	}
	req := in.GetRequest()
	if req == nil {
		return status.Error(codes.InvalidArgument, "the first message must be the trace request")
	}
	rec := map[string]any{
		"session": id, "caller": c, "name": req.GetName(), "format": req.GetFormat(),
		"duration_ms": req.GetDurationMs(), "pid": req.GetPid(),
	}
	if len(req.GetSource()) > 0 {
		rec["source_digest"] = attest.SourceDigest(req.GetSource())
	}
	if len(req.GetArgs()) > 0 {
		// They change the program as much as the source does.
		rec["args"] = req.GetArgs()
	}
	if req.GetGenerator() != "" {
		rec["generator"], rec["params"] = req.GetGenerator(), req.GetParams()
	}
	if len(req.GetObject()) > 0 {
		rec["object_digest"] = attest.SourceDigest(req.GetObject())
		rec["object_signed"] = len(req.GetObjectSignature()) > 0
	}
	if err := validateNumbers(req); err != nil {
		return s.refuseEarly(c, rec, "request", err, claim)
	}
	if authErr != nil {
		return s.refuseEarly(c, rec, "token", authErr, claim)
	}
	markAuthenticated(ctx)
	if tok != nil {
		rec["token"] = tokenRecord(tok)
	}
	if aerr := s.record(audit.EventTraceRequest, rec); aerr != nil {
		return s.auditFailed(aerr)
	}
	refuse := func(stage string, err error) error {
		st := status.Convert(err)
		if !s.sessions.claimEnd(id) {
			return err // shutdown recorded its end
		}
		s.metrics.refused(stage)
		if aerr := s.record(audit.EventTraceRefused, map[string]any{"session": id, "stage": stage, "code": st.Code().String(), "reason": st.Message()}); aerr != nil {
			return s.auditFailed(aerr)
		}
		s.log.Info("trace refused", "session", id, "caller", c.String(), "stage", stage, "code", st.Code().String(), "reason", audit.BoundString(st.Message()))
		return err
	}
	if err := s.authorizeRequest(c, tok, req); err != nil {
		return refuse("request", err)
	}

	subject := fmt.Sprintf("uid:%d", c.UID)
	if !c.Unix {
		subject = "tcp:" + c.Addr
	}
	if tok != nil {
		subject = tok.Subject
	}
	info := &pb.Session{Id: id, Subject: subject, Uid: c.UID, ClientPid: c.PID, Name: req.GetName(), StartedUnixMs: time.Now().UnixMilli()}
	if tok != nil {
		info.TokenId = tok.ID
	}
	if req.GetGenerator() != "" {
		info.Name = "gen:" + req.GetGenerator()
	}
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s.hook(func(h *testHooks) func() { return h.verified })
	done, err := s.sessions.add(info, tok == nil && c.admin(), cancel)
	if err != nil {
		return refuse(addRefusal(err))
	}
	defer done()
	if tok != nil {
		// A session lives no longer than its token.
		expire := time.AfterFunc(time.Until(tok.Expires), func() { cancel(errExpired) })
		defer expire.Stop()
	}
	phase := phaseCompile
	if req.GetGenerator() != "" {
		phase = phaseGenerate
	}
	s.enter(sctx, id, phase)
	go func() {
		// Anything after the request is an interrupt; the end of the
		// client's side (EOF or an error) is not: its leaving shows in
		// ctx.
		for {
			in, err := stream.Recv()
			if err != nil {
				return
			}
			if in.GetInterrupt() != nil {
				cancel(errInterrupted)
			}
		}
	}()

	out := newOutput(stream, s.cfg.OutputQueue)
	defer out.close(ctx)
	br, capped := s.brokerRequest(id, c, tok, req, out)
	if br.Duration > 0 {
		s.sessions.update(id, func(p *pb.Session) { p.DeadlineUnixMs = time.Now().Add(br.Duration).UnixMilli() })
	}
	var adm *broker.Admission
	br.Admitted = func(a *broker.Admission) {
		adm = a
		s.metrics.admitted(a.Mode)
		ds := make([]map[string]any, len(a.Decisions))
		for i, d := range a.Decisions {
			ds[i] = map[string]any{"probe": a.Probes[i], "verdict": d.Verdict.String(), "reason": d.Reason, "policy": d.Policy, "policy_digest": d.PolicyDigest}
		}
		// Run goes on whatever this returns: a record that cannot be
		// written stops the session right after it attaches.
		// What the programs are and what signs them, in the same words
		// for every form of signing.
		admitted := map[string]any{"session": id, "mode": a.Mode, "decisions": ds,
			"form": gatekeeper.FormName(a.Form), "covers": gatekeeper.CoversName(a.Covers)}
		if a.Signer != "" {
			admitted["program_signer"] = a.Signer
		}
		if err := s.record(audit.EventTraceAdmitted, admitted); err != nil {
			cancel(fmt.Errorf("audit log: %w", err))
		}
		s.enter(sctx, id, phaseLoad)
	}
	br.Attached = func(a *broker.Admission) {
		// In phase run before anyone can see the session attached (its
		// mode in sessions list, Started): a scrape of the metrics
		// between the two counted it still loading.
		s.enter(sctx, id, phaseRun)
		s.sessions.update(id, func(p *pb.Session) { p.Probes, p.Mode = a.Probes, a.Mode })
		out.send(&pb.TraceEvent{Event: &pb.TraceEvent_Started{Started: &pb.Started{SessionId: id, Mode: a.Mode}}})
		s.log.Info("session started", "session", id, "subject", subject, "caller", c.String(), "probes", len(a.Probes), "mode", a.Mode)
	}
	br.Stopping = func() {
		out.finalize()
		s.enter(sctx, id, phaseEnding)
	}
	if req.GetGenerator() != "" {
		if s.cfg.Plugins == nil {
			return refuse("generator", status.Error(codes.FailedPrecondition, "this broker runs no generator plugins"))
		}
		if err := s.cfg.Plugins.GenerateRequest(sctx, req.GetGenerator(), req.GetParams(), br); err != nil && sctx.Err() == nil {
			return refuse("generator", status.Error(codes.InvalidArgument, err.Error()))
		}
		s.enter(sctx, id, phaseCompile)
	}

	if obj := req.GetObject(); len(obj) > 0 {
		o, err := broker.ObjectFromBytes(br.Name, obj, req.GetObjectSignature(), s.cfg.Trust)
		if err != nil {
			return refuse("signature", status.Error(codes.PermissionDenied, err.Error()))
		}
		// An object's params are its global variables (run --set).
		o.Vars = req.GetParams()
		br.Object = o
	}

	t0 := time.Now()
	var runErr error
	if err := sctx.Err(); err != nil {
		// Ended while its plugin generated: it ends, not refused.
		runErr = fmt.Errorf("%w: %w", broker.ErrNotStarted, context.Cause(sctx))
	} else {
		runErr = broker.Run(sctx, *br)
	}
	elapsed := time.Since(t0)
	out.finalize()

	var denied *broker.DeniedError
	var scope *scopeError
	var misnamed *program.NameError
	var reads *readError
	switch {
	case errors.As(runErr, &denied):
		s.metrics.denied()
		return refuse("gatekeeper", status.Error(codes.PermissionDenied, runErr.Error()))
	case errors.As(runErr, &scope):
		return refuse("scope", status.Error(codes.PermissionDenied, runErr.Error()))
	case errors.As(runErr, &misnamed):
		return refuse("generator", status.Error(codes.InvalidArgument, runErr.Error()))
	case errors.As(runErr, &reads):
		return refuse("scope", reads.status())
	}
	exit := &pb.Exit{}
	cause := context.Cause(sctx)
	switch reason := endReason(cause); {
	case reason != "":
		exit.Reason = reason
	case ctx.Err() != nil:
		exit.Reason = "client"
	case cause != nil && cause != context.Canceled:
		exit.Reason = cause.Error()
	case capped && elapsed >= br.Duration:
		exit.Reason = "max_duration"
	}
	if runErr != nil {
		exit.Status, exit.Error = 1, broker.ErrorText(runErr)
	}
	stage := "end"
	if adm == nil && runErr != nil {
		stage = "compile"
	}
	endRec := map[string]any{"session": id, "stage": stage, "status": exit.Status, "reason": exit.Reason, "elapsed_ms": elapsed.Milliseconds()}
	if runErr != nil {
		endRec["error"] = runErr.Error()
	}
	if d := out.drops(); d.bytes > 0 {
		endRec["output_dropped_lines"], endRec["output_dropped_bytes"] = d.lines, d.bytes
	}
	if s.sessions.claimEnd(id) {
		s.metrics.ended(exit.Reason, exit.Status != 0)
		if err := s.record(audit.EventTraceEnd, endRec); err != nil {
			s.log.Error("audit log", "err", err)
		}
	}
	// The trace is over: it leaves the table (and its limits) now, while
	// its client takes the rest of its output.
	done()
	s.log.Info("session ended", "session", id, "status", exit.Status, "reason", exit.Reason, "elapsed_ms", elapsed.Milliseconds(), "error", runErr)
	out.send(&pb.TraceEvent{Event: &pb.TraceEvent_Exit{Exit: exit}})
	return nil
}

func (s *Server) auditFailed(err error) error {
	s.log.Error("audit log: refusing requests", "err", err)
	return status.Errorf(codes.Unavailable, "the broker cannot write its audit log, so it runs nothing: %v", err)
}

// authenticate verifies the caller's token, if it sent one. No token is
// fine for local root (an administrator) and nobody else.
func (s *Server) authenticate(ctx context.Context, c Caller) (*token.Token, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		if c.admin() {
			return nil, nil
		}
		s.metrics.token("none")
		return nil, status.Errorf(codes.Unauthenticated, "a token is required: only root on the unix socket may trace without one (you are %s)", c)
	}
	if len(vals) > 1 {
		s.metrics.token("malformed")
		return nil, status.Error(codes.Unauthenticated, "more than one authorization header")
	}
	raw, ok := strings.CutPrefix(vals[0], "Bearer ")
	if !ok {
		s.metrics.token("malformed")
		return nil, status.Error(codes.Unauthenticated, `authorization is not "Bearer <token>"`)
	}
	if len(raw) > maxTokenSize {
		s.metrics.token("malformed")
		return nil, status.Errorf(codes.Unauthenticated, "token of %d bytes is too long", len(raw))
	}
	if s.cfg.Tokens == nil {
		s.metrics.token("no_issuer")
		return nil, status.Error(codes.Unauthenticated, "this broker accepts no tokens: it has no issuer keys")
	}
	tok, err := s.cfg.Tokens.Verify(strings.TrimSpace(raw))
	if err != nil {
		s.metrics.token("invalid")
		return nil, status.Errorf(codes.Unauthenticated, "invalid token: %v", err)
	}
	s.metrics.token("valid")
	return tok, nil
}

// authorizeRequest checks what can be checked before compiling: the
// trace scope, a generator's gen: scope.
func (s *Server) authorizeRequest(c Caller, tok *token.Token, req *pb.TraceRequest) error {
	if err := s.cfg.Limits.check(req); err != nil {
		return err
	}
	obj := len(req.GetObject()) > 0
	switch {
	case req.GetGenerator() == "" && len(req.GetSource()) == 0 && !obj:
		return status.Error(codes.InvalidArgument, "no program: send a script, a generator or an eBPF object")
	case req.GetGenerator() != "" && len(req.GetSource()) > 0:
		return status.Error(codes.InvalidArgument, "send a script or a generator, not both")
	case obj && (req.GetGenerator() != "" || len(req.GetSource()) > 0 || len(req.GetArgs()) > 0):
		return status.Error(codes.InvalidArgument, "an eBPF object goes alone: no script, generator or positional parameters with it")
	case !obj && len(req.GetObjectSignature()) > 0:
		return status.Error(codes.InvalidArgument, "an object signature without an object")
	case req.GetGenerator() != "" && len(req.GetArgs()) > 0:
		return status.Error(codes.InvalidArgument, "positional parameters go with a script; a generator takes params")
	}
	if tok == nil {
		return nil
	}
	if !tok.Scopes.Trace {
		return status.Errorf(codes.PermissionDenied, "the token of %q has no trace scope", tok.Subject)
	}
	if g := req.GetGenerator(); g != "" && !tok.Scopes.AllowsGen(g) {
		return status.Errorf(codes.PermissionDenied, "the token of %q does not allow generator %s (no gen:%s scope)", tok.Subject, g, g)
	}
	return precheckUprobes(tok, req)
}

// precheckUprobes refuses, before the compiler reads any file, a uprobe
// on a binary no probe: scope could allow: compiling opens the binaries a
// script names, and a token holder must not learn through its errors what
// files exist outside its scopes. It is a first filter; every probe of
// the compiled program is checked exactly afterwards.
func precheckUprobes(tok *token.Token, req *pb.TraceRequest) error {
	// With the request's positional parameters: $1 in a probe's spec is
	// replaced by its text, so `uprobe:$1:f` names the file they give.
	f, err := syntax.ParseArgs(req.GetName(), req.GetSource(), req.GetArgs())
	if err != nil {
		return nil // the compiler reports it, with its position
	}
	for _, p := range f.Probes {
		for _, spec := range p.Specs {
			var kind string
			switch spec.Provider {
			case "uprobe", "u":
				kind = "uprobe"
			case "uretprobe", "ur":
				kind = "uretprobe"
			default:
				continue
			}
			if len(spec.Parts) < 2 {
				continue
			}
			path, fn := spec.Parts[0], spec.Parts[len(spec.Parts)-1]
			if !filepath.IsAbs(path) {
				return status.Errorf(codes.PermissionDenied, "%s: the broker daemon needs an absolute path for a uprobe", spec.Raw)
			}
			if !couldAllow(tok, kind, filepath.Clean(path), fn) {
				return status.Error(codes.PermissionDenied, uprobeRefusal(tok, kind, path).Error())
			}
		}
	}
	return nil
}

// couldAllow says whether some probe: scope may allow a uprobe on path,
// for the function fn (which may be a wildcard).
func couldAllow(tok *token.Token, kind, path, fn string) bool {
	literal := strings.Map(func(r rune) rune {
		if strings.ContainsRune("*?[]\\", r) {
			return 'x'
		}
		return r
	}, fn)
	for _, pat := range tok.Scopes.Probes {
		if ok, _ := token.Match(pat, kind+":"+path+":"+literal); ok {
			return true
		}
		// A wildcard function: the pattern's path part decides.
		if i := strings.LastIndexByte(pat, ':'); i > 0 && literal != fn {
			if ok, _ := token.Match(pat[:i], kind+":"+path); ok {
				return true
			}
		}
	}
	return false
}

// brokerRequest is the trace to run. capped says the token's
// max_duration set its duration.
func (s *Server) brokerRequest(id string, c Caller, tok *token.Token, req *pb.TraceRequest, out *output) (*broker.Request, bool) {
	br := &broker.Request{
		Name:            req.GetName(),
		Source:          req.GetSource(),
		Args:            req.GetArgs(),
		Format:          req.GetFormat(),
		Duration:        time.Duration(req.GetDurationMs()) * time.Millisecond,
		PID:             int(req.GetPid()),
		Quiet:           req.GetQuiet(),
		Verbose:         req.GetVerbose(),
		MaxMapKeys:      s.cfg.MaxMapKeys,
		EventBufferSize: s.cfg.EventBufferSize,
		Stdout:          out.writer(stdout),
		Stderr:          out.writer(stderr),
		Logger:          s.log,
	}
	if br.Name == "" {
		br.Name = "stdin"
	}
	if tok != nil {
		// As many uprobes as a token attached one by one before
		// uprobe.multi links: a faster attach is no licence to
		// break into more functions.
		br.MaxUprobes = program.MaxTokenUprobes
	}
	capped := false
	if tok != nil && tok.MaxDuration > 0 && (br.Duration == 0 || br.Duration > tok.MaxDuration) {
		br.Duration, capped = tok.MaxDuration, true
	}
	gr := broker.RequesterRequest(s.cfg.Broker)
	gr.UID, gr.GID = c.UID, c.GID
	requester := attest.Requester{UID: int(c.UID)}
	if tok != nil {
		gr.TokenPresent, gr.TokenScope, gr.TokenSubject = true, tok.Scopes.Bits(), tok.Subject
		requester.TokenSubject, requester.TokenID, requester.TokenScope = tok.Subject, tok.ID, tok.Scopes.String()
	}
	br.Gate = &broker.Gate{Keeper: s.cfg.Keeper, Request: gr}
	if s.cfg.GatePinDir != "" && (br.Verbose || s.cfg.HostKey != nil) {
		// Looked up for what shows or records it, as run does.
		br.Gate.Kernel = lsmgate.Describe(s.cfg.GatePinDir)
	}
	br.Collectors = s.cfg.Collectors
	if s.metrics != nil {
		br.Events, br.Lost = s.metrics.counters()
	}
	if s.cfg.HostKey != nil {
		br.Attest = &broker.Attest{Dir: s.cfg.AttestDir, Key: s.cfg.HostKey, Broker: s.cfg.Broker, Requester: requester, Session: id, Store: s.attest}
	}
	br.UprobeScope = uprobeScope(tok)
	probes, effects, reads, maps := authorizeProbes(tok), authorizeEffects(tok), authorizeReads(tok, br), authorizeObjectMaps(tok)
	if tok != nil {
		br.HidePID = s.hidePID()
	}
	br.Authorize = func(p *program.Program) error {
		if err := probes(p); err != nil {
			return err
		}
		if err := effects(p); err != nil {
			return err
		}
		if err := maps(p); err != nil {
			return err
		}
		return reads(p)
	}
	return br, capped
}

// scopeError is a probe the token does not allow.
type scopeError struct{ msg string }

func (e *scopeError) Error() string { return e.msg }

// authorizeProbes checks every probe of the compiled program against the
// token's probe: scopes, by its name, which is where it attaches
// (Probe.CheckName); a uprobe's names the real path of the file it
// attaches through, opened once (uprobeScope).
func authorizeProbes(tok *token.Token) func(*program.Program) error {
	return func(p *program.Program) error {
		if err := p.CheckKprobeFuncs(); err != nil {
			return &scopeError{err.Error()}
		}
		maxUprobes := program.MaxUprobeFuncs
		if tok != nil {
			maxUprobes = program.MaxTokenUprobes
		}
		if err := p.CheckUprobes(maxUprobes); err != nil {
			return &scopeError{err.Error()}
		}
		for _, pr := range p.Probes {
			if err := checkUprobe(pr); err != nil {
				return err
			}
			if tok == nil || pr.Kind == program.Begin || pr.Kind == program.End {
				continue
			}
			// A probe on many functions (kprobe.multi, uprobe.multi)
			// is allowed only if each function's own probe would be.
			for _, name := range pr.AttachNames() {
				if !tok.Scopes.AllowsProbe(name) {
					return &scopeError{fmt.Sprintf("the token of %q does not allow probe %s (its probe scopes: %s)", tok.Subject, name, probeScopes(tok))}
				}
			}
		}
		return nil
	}
}

func probeScopes(tok *token.Token) string {
	if len(tok.Scopes.Probes) == 0 {
		return "none"
	}
	return "probe:" + strings.Join(tok.Scopes.Probes, " probe:")
}

func tokenRecord(t *token.Token) map[string]any {
	return map[string]any{"sub": t.Subject, "jti": t.ID, "iss": t.Issuer, "kid": t.KeyID, "scope": t.Scopes.String(), "exp": t.Expires.UTC(), "max_duration_s": int64(t.MaxDuration / time.Second)}
}
