package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
	"github.com/tracebroker/tracebroker/internal/escape"
)

// Target is where a daemon listens and how to present oneself.
type Target struct {
	Socket string // unix socket path
	Addr   string // or host:port over TLS
	TLS    *tls.Config
	// Token is the bearer token; empty sends none (local root only).
	Token string
}

// Client talks to a daemon.
type Client struct {
	conn   *grpc.ClientConn
	api    pb.BrokerClient
	token  string
	target Target
	dials  *dialRecord
}

// Dial makes a client. It does not connect yet: the first call does.
func Dial(t Target) (*Client, error) {
	var target string
	var creds credentials.TransportCredentials
	dials := &dialRecord{}
	var dialer func(context.Context, string) (net.Conn, error)
	switch {
	case t.Socket != "" && t.Addr != "":
		return nil, errors.New("give a socket or an address, not both")
	case t.Socket != "":
		abs, err := filepath.Abs(t.Socket)
		if err != nil {
			return nil, err
		}
		target, creds = "unix://"+abs, insecure.NewCredentials()
		dialer = dials.dialer("unix", abs)
	case t.Addr != "":
		if t.TLS == nil {
			return nil, errors.New("a TCP address needs TLS")
		}
		// passthrough: the dialer resolves the name, so that a name
		// that does not resolve is a *net.DNSError of its own.
		target, creds = "passthrough:///"+t.Addr, recordingCreds{credentials.NewTLS(t.TLS), dials}
		dialer = dials.dialer("tcp", "")
	default:
		return nil, errors.New("no daemon to talk to: give a socket or an address")
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds), grpc.WithContextDialer(dialer),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRequestSize)))
	if err != nil {
		return nil, err
	}
	return &Client{conn: conn, api: pb.NewBrokerClient(conn), token: t.Token, target: t, dials: dials}, nil
}

func (c *Client) Close() error { return c.conn.Close() }

func (c *Client) ctx(ctx context.Context) context.Context {
	if c.token == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.token)
}

// ExitError is a trace that ran, or was refused, and did not end well:
// Status is the exit status the CLI returns, with Message (as `run`
// prints it) already written to stderr.
type ExitError struct {
	Status  int
	Message string
}

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Status) }

// TraceResult is how a trace ended.
type TraceResult struct {
	SessionID string
	Mode      string
	// Reason is what ended it, if not itself (see Exit.reason).
	Reason string
}

// Trace submits req and copies its output to stdout and stderr as it
// comes. Cancelling interrupt ends the trace as Ctrl-C ends `run`: END
// runs and the maps are printed. Cancelling ctx drops the connection,
// and the daemon detaches the probes. A trace that failed is an
// *ExitError; a refused request, an error with the daemon's reason.
func (c *Client) Trace(ctx context.Context, interrupt <-chan struct{}, req *pb.TraceRequest, stdout, stderr io.Writer) (TraceResult, error) {
	var res TraceResult
	stream, err := c.api.Trace(c.ctx(ctx))
	if err != nil {
		return res, c.callError(ctx, err)
	}
	if err := stream.Send(&pb.TraceInput{Input: &pb.TraceInput_Request{Request: req}}); err != nil {
		// The daemon's reason comes with the stream's end.
		if _, rerr := stream.Recv(); rerr != nil && rerr != io.EOF {
			return res, c.callError(ctx, rerr)
		}
		return res, c.callError(ctx, err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-interrupt:
			stream.Send(&pb.TraceInput{Input: &pb.TraceInput_Interrupt{Interrupt: &pb.Interrupt{}}})
		case <-stop:
		}
	}()
	for {
		ev, err := stream.Recv()
		if err == io.EOF {
			return res, errors.New("the daemon ended the trace without saying how")
		}
		if err != nil {
			return res, c.callError(ctx, err)
		}
		switch e := ev.Event.(type) {
		case *pb.TraceEvent_Started:
			res.SessionID, res.Mode = e.Started.GetSessionId(), e.Started.GetMode()
		case *pb.TraceEvent_Stdout:
			if _, err := stdout.Write(e.Stdout); err != nil {
				return res, err
			}
		case *pb.TraceEvent_Stderr:
			stderr.Write(e.Stderr)
		case *pb.TraceEvent_Exit:
			res.Reason = e.Exit.GetReason()
			if e.Exit.GetStatus() != 0 {
				io.WriteString(stderr, escape.Text(e.Exit.GetError()))
				return res, &ExitError{Status: int(e.Exit.GetStatus()), Message: e.Exit.GetError()}
			}
			return res, nil
		}
	}
}

// Sessions lists the running sessions (administrators).
func (c *Client) Sessions(ctx context.Context) ([]*pb.Session, error) {
	r, err := c.api.ListSessions(c.ctx(ctx), &pb.ListSessionsRequest{})
	if err != nil {
		return nil, c.callError(ctx, err)
	}
	return r.GetSessions(), nil
}

// Stop ends a session as -d would (administrators).
func (c *Client) Stop(ctx context.Context, id string) error {
	_, err := c.api.StopSession(c.ctx(ctx), &pb.StopSessionRequest{Id: id})
	return c.callError(ctx, err)
}

// CallError is the daemon's refusal: its gRPC code and its reason.
type CallError struct {
	Code    string
	Message string
	// Script says Message is a script error's lines (position, source
	// line, caret), to print as they are.
	Script bool
	// Interrupted says the call ended because its context was cancelled
	// (Ctrl-C), not because of the daemon.
	Interrupted bool
}

func (e *CallError) Error() string { return e.Message }

// ScriptText is Message when it is a script error's lines, which
// broker.ErrorText prints as they are.
func (e *CallError) ScriptText() (string, bool) { return e.Message, e.Script }

// callError turns a gRPC status into the daemon's own words, or, when
// the daemon said nothing, into a sentence of explain's: the code is for
// programs, the message for people.
func (c *Client) callError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	f := failure{target: c.target.Addr, ctxErr: ctx.Err(), dialErr: c.dials.get(), who: CurrentIdentity}
	if c.target.Socket != "" {
		f.target, f.socket = c.target.Socket, true
		if errors.Is(f.dialErr, syscall.EACCES) || errors.Is(f.dialErr, syscall.ECONNREFUSED) {
			var serr error
			if f.sock, serr = os.Stat(c.target.Socket); serr != nil && errors.Is(f.dialErr, syscall.EACCES) {
				// The directory keeps them out: its group is the one
				// to be in.
				dir := filepath.Dir(c.target.Socket)
				if f.sock, _ = os.Stat(dir); f.sock != nil {
					f.sockDir = dir
				}
			}
		}
	}
	if e := explain(f, err); e != nil {
		return e
	}
	ce := &CallError{Code: st.Code().String(), Message: st.Message()}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == scriptErrorReason {
			ce.Script = true
		}
	}
	return ce
}

// isDaemonMessage tells the daemon's own UNAVAILABLE reasons from the
// transport's.
func isDaemonMessage(msg string) bool {
	for _, p := range []string{"the broker is shutting down", "the broker cannot write its audit log"} {
		if len(msg) >= len(p) && msg[:len(p)] == p {
			return true
		}
	}
	return false
}
