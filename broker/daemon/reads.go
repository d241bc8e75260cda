package daemon

import (
	"fmt"
	"os"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tracebroker/tracebroker/broker"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
	"github.com/tracebroker/tracebroker/broker/token"
)

// A token's probe: scopes grant the probes' context and the user memory
// its user pointers reach. What else a program reads (program.Reads)
// needs a scope of its own: any other user memory read:user, kernel
// memory and kernel addresses read:kernel. BEGIN and END read the
// broker's own process and the kernel, so they are held to the same.

// readScopes is the scope each class of reads needs.
var readScopes = []struct {
	class program.Reads
	scope string
	has   func(token.Scopes) bool
	// what the class is, for a program without source positions.
	what string
}{
	{program.ReadsUser, "read:user", func(s token.Scopes) bool { return s.ReadUser }, "reads arbitrary user memory"},
	{program.ReadsKernel, "read:kernel", func(s token.Scopes) bool { return s.ReadKernel }, "reads kernel memory"},
	{program.ReadsKernelAddr, "read:kernel", func(s token.Scopes) bool { return s.ReadKernel }, "reveals kernel addresses"},
}

// readError is a token holder's program that reads memory its token's
// scopes do not grant: a script error, each expression with its place.
type readError struct{ err *broker.ScriptError }

func (e *readError) Error() string { return e.err.Error() }

// scriptErrorReason marks a refusal whose message is a script error's
// lines (position, source line, caret), which the client prints as it
// is, as bpftrace prints errors.
const scriptErrorReason = "SCRIPT_ERROR"

// status is the refusal the client gets: PermissionDenied, its message
// the error as the CLI prints it.
func (e *readError) status() error {
	st := status.New(codes.PermissionDenied, e.err.Error())
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: scriptErrorReason, Domain: "tracebroker"}); err == nil {
		st = d
	}
	return st.Err()
}

// authorizeReads refuses a program that reads memory tok's scopes do not
// grant, naming for each missing scope the expression that needs it.
// Without a token (root on the socket) anything goes, as with run. The
// program's name is read when it is judged: a generator renames the
// request after brokerRequest made it.
func authorizeReads(tok *token.Token, req *broker.Request) func(*program.Program) error {
	return func(p *program.Program) error {
		if tok == nil {
			return nil
		}
		reads, sites := p.Reads()
		var errs syntax.ErrorList
		for _, rs := range readScopes {
			if reads&rs.class == 0 || rs.has(tok.Scopes) {
				continue
			}
			need := fmt.Sprintf("the token of %q needs scope %s", tok.Subject, rs.scope)
			e := &syntax.Error{Msg: fmt.Sprintf("%s %s: %s", firstProbe(p, rs.class), rs.what, need)}
			for _, s := range sites {
				if s.Class == rs.class {
					e = &syntax.Error{From: syntaxPos(s.From), To: syntaxPos(s.To), Msg: s.What + ": " + need}
				}
			}
			errs = append(errs, e)
		}
		if len(errs) == 0 {
			return nil
		}
		return &readError{&broker.ScriptError{Name: req.Name, Src: []byte(p.Source), List: errs}}
	}
}

// firstProbe names the first probe whose reads include class, for an
// error with no expression to point at (a raw program's).
func firstProbe(p *program.Program, class program.Reads) string {
	for _, pr := range p.Probes {
		if pr.Reads&class != 0 {
			return "probe " + pr.Name
		}
	}
	return "the program"
}

func syntaxPos(p program.Pos) syntax.Pos {
	return syntax.Pos{Offset: p.Offset, Line: p.Line, Col: p.Col}
}

// hidePID is the process whose events token holders' probes never see:
// this one. The daemon writes every session's output, its audit log and
// its attestations; a holder of syscall scopes would otherwise read
// through them what other sessions see. Its children (plugins) are not
// hidden.
func (s *Server) hidePID() int {
	if s.cfg.TraceOwnProcess {
		return 0
	}
	return os.Getpid()
}
