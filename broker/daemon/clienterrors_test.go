package daemon

import (
	"context"
	"crypto/x509"
	"errors"
	"io/fs"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// socketInfo is the stat of a socket owned by root and group gid.
type socketInfo struct{ gid uint32 }

func (s socketInfo) Name() string       { return "broker.sock" }
func (s socketInfo) Size() int64        { return 0 }
func (s socketInfo) Mode() fs.FileMode  { return fs.ModeSocket | 0o660 }
func (s socketInfo) ModTime() time.Time { return time.Time{} }
func (s socketInfo) IsDir() bool        { return false }
func (s socketInfo) Sys() any           { return &syscall.Stat_t{Uid: 0, Gid: s.gid} }

// fileInfo is a regular file's stat.
type fileInfo struct{ socketInfo }

func (fileInfo) Mode() fs.FileMode { return 0o644 }

// dirInfo is a directory's stat.
type dirInfo struct{ socketInfo }

func (dirInfo) Mode() fs.FileMode { return fs.ModeDir | 0o750 }

// dialFailed is a connect(2) error as net.Dialer returns it.
func dialFailed(errno syscall.Errno) error {
	return &net.OpError{Op: "dial", Net: "unix", Addr: &net.UnixAddr{Name: "/run/tracebroker/broker.sock", Net: "unix"}, Err: os.NewSyscallError("connect", errno)}
}

func alice(groups ...int) func() Identity {
	return func() Identity {
		return Identity{UID: 1000, User: "alice", Groups: groups, GroupName: func(gid int) string {
			return map[int]string{998: "tracebroker", 997: "evil\x1b]0;pwned\x07"}[gid]
		}}
	}
}

// TestClientErrors: every way a call fails before the daemon speaks
// reads as a sentence with the cause and the fix; the daemon's own
// refusals pass as they are.
func TestClientErrors(t *testing.T) {
	const sock = "/run/tracebroker/broker.sock"
	// gRPC's text for a failed dial: what a user must not read.
	unavailable := status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial unix /run/tracebroker/broker.sock: connect: permission denied"`)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithTimeout(context.Background(), 0)
	defer cancel2()
	<-expired.Done()
	for _, tt := range []struct {
		name string
		f    failure
		err  error
		want string // "" : the daemon's message, unchanged
	}{
		{"not_in_group", failure{target: sock, socket: true, dialErr: dialFailed(syscall.EACCES), sock: socketInfo{998}, who: alice(1000)}, unavailable,
			"cannot connect to /run/tracebroker/broker.sock: permission denied; you (uid 1000, user alice) are not in group tracebroker (the socket's group); ask an administrator to add you, then log in again"},
		{"directory_keeps_out", failure{target: sock, socket: true, dialErr: dialFailed(syscall.EACCES), sock: dirInfo{socketInfo{998}}, sockDir: "/run/tracebroker", who: alice(1000)}, unavailable,
			"cannot connect to /run/tracebroker/broker.sock: permission denied; you (uid 1000, user alice) are not in group tracebroker (the group of /run/tracebroker); ask an administrator to add you, then log in again"},
		{"group_without_name", failure{target: sock, socket: true, dialErr: dialFailed(syscall.EACCES), sock: socketInfo{4242}, who: alice(1000)}, unavailable,
			"cannot connect to /run/tracebroker/broker.sock: permission denied; you (uid 1000, user alice) are not in group 4242 (the socket's group); ask an administrator to add you, then log in again"},
		{"in_group_still_refused", failure{target: sock, socket: true, dialErr: dialFailed(syscall.EACCES), sock: socketInfo{998}, who: alice(1000, 998)}, unavailable,
			"cannot connect to /run/tracebroker/broker.sock: permission denied; you (uid 1000, user alice) may not open it (mode -rw-rw----, group tracebroker) or a directory on its path; ask an administrator to check `tracebroker serve --socket-group`"},
		{"permission_no_stat", failure{target: sock, socket: true, dialErr: dialFailed(syscall.EACCES), who: alice(1000)}, unavailable,
			"cannot connect to /run/tracebroker/broker.sock: permission denied; ask an administrator for access to the socket"},
		{"no_socket", failure{target: sock, socket: true, dialErr: dialFailed(syscall.ENOENT)}, unavailable,
			"cannot connect to /run/tracebroker/broker.sock: there is no socket there; is `tracebroker serve` running? (give --socket PATH if it listens elsewhere)"},
		{"stale_socket", failure{target: sock, socket: true, dialErr: dialFailed(syscall.ECONNREFUSED)}, unavailable,
			"cannot connect to /run/tracebroker/broker.sock: nothing listens on it (a daemon that stopped left it behind); is `tracebroker serve` running?"},
		{"not_a_socket", failure{target: sock, socket: true, dialErr: dialFailed(syscall.ENOTSOCK)}, unavailable,
			"cannot connect to /run/tracebroker/broker.sock: it is not a socket; give the daemon's --socket PATH"},
		{"other_errno", failure{target: sock, socket: true, dialErr: dialFailed(syscall.EMFILE)}, unavailable,
			"cannot connect to /run/tracebroker/broker.sock: too many open files; is `tracebroker serve` running?"},
		{"regular_file", failure{target: sock, socket: true, dialErr: dialFailed(syscall.ECONNREFUSED), sock: fileInfo{}}, unavailable,
			"cannot connect to /run/tracebroker/broker.sock: it is not a socket; give the daemon's --socket PATH"},
		{"unwritable_regular_file", failure{target: sock, socket: true, dialErr: dialFailed(syscall.EACCES), sock: fileInfo{}, who: alice(1000)}, unavailable,
			"cannot connect to /run/tracebroker/broker.sock: it is not a socket; give the daemon's --socket PATH"},
		{"tcp_refused", failure{target: "db-7:7443", dialErr: dialFailed(syscall.ECONNREFUSED)}, unavailable,
			"cannot connect to db-7:7443: connection refused; is `tracebroker serve --listen` running there?"},
		{"tcp_unknown_ca", failure{target: "db-7:7443", dialErr: &tlsVerifyError{x509.UnknownAuthorityError{}}}, unavailable,
			"cannot connect to db-7:7443: its certificate is not signed by an authority you trust; give the daemon's CA with --tls-ca PEM"},
		{"tcp_no_host", failure{target: "db-7:7443", dialErr: &net.DNSError{Err: "no such host", Name: "db-7", IsNotFound: true}}, unavailable,
			"cannot connect to db-7:7443: no such host (db-7)"},
		{"connection_lost", failure{target: sock, socket: true}, status.Error(codes.Unavailable, "error reading from server: EOF"),
			"lost the connection to the broker daemon at /run/tracebroker/broker.sock: did it stop or restart? (its log says why)"},
		{"daemon_shutting_down", failure{target: sock, socket: true, dialErr: dialFailed(syscall.ENOENT)}, status.Error(codes.Unavailable, "the broker is shutting down"), ""},
		{"interrupted", failure{target: sock, socket: true, ctxErr: ctx.Err()}, status.Error(codes.Canceled, "context canceled"), "interrupted"},
		{"deadline", failure{target: sock, socket: true, ctxErr: expired.Err()}, status.Error(codes.DeadlineExceeded, "context deadline exceeded"),
			"the broker daemon at /run/tracebroker/broker.sock did not answer in time"},
		{"daemon_deadline", failure{target: sock, socket: true}, status.Error(codes.DeadlineExceeded, "compiling took longer than 10s"), ""},
		{"older_daemon", failure{target: sock, socket: true}, status.Error(codes.Unimplemented, "unknown method ListSessions for service tracebroker.Broker"),
			"the broker daemon at /run/tracebroker/broker.sock does not know this request: it is an older tracebroker than this client (compare `tracebroker version` on both)"},
		{"too_large", failure{target: sock, socket: true}, status.Error(codes.ResourceExhausted, "grpc: received message larger than max (9000000 vs. 2097152)"),
			"the request is larger than the broker daemon takes (9000000 bytes; the limit is 2097152): make the script smaller"},
		{"unauthenticated", failure{target: sock, socket: true}, status.Error(codes.Unauthenticated, "invalid token: token expired"), ""},
		{"permission_denied", failure{target: sock, socket: true}, status.Error(codes.PermissionDenied, "only root on the unix socket may list sessions"), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := explain(tt.f, tt.err)
			if tt.want == "" {
				if got != nil {
					t.Fatalf("the daemon's message became %q", got)
				}
				return
			}
			var ce *CallError
			if !errors.As(got, &ce) {
				t.Fatalf("got %v, want a *CallError", got)
			}
			if ce.Message != tt.want {
				t.Errorf("got  %q\nwant %q", ce.Message, tt.want)
			}
			if ce.Interrupted != (tt.name == "interrupted") {
				t.Errorf("Interrupted %v", ce.Interrupted)
			}
			for _, raw := range []string{"transport:", "desc =", "rpc error", "context canceled", "grpc:"} {
				if strings.Contains(ce.Message, raw) {
					t.Errorf("%q shows gRPC's %q", ce.Message, raw)
				}
			}
		})
	}
}

// tlsVerifyError wraps a certificate error as crypto/tls does.
type tlsVerifyError struct{ err error }

func (e *tlsVerifyError) Error() string { return "tls: failed to verify certificate: " + e.err.Error() }
func (e *tlsVerifyError) Unwrap() error { return e.err }

// TestAttacksClientErrors: what others named — a socket's group, a
// user's name, a daemon's message — cannot write control characters to
// the terminal of the user reading the error.
func TestAttacksClientErrors(t *testing.T) {
	const sock = "/run/tracebroker/broker.sock"
	unavailable := status.Error(codes.Unavailable, "connection error")
	for _, tt := range []struct {
		name string
		f    failure
		err  error
		want string
	}{
		{"item2/socket_group_control_chars", failure{target: sock, socket: true, dialErr: dialFailed(syscall.EACCES), sock: socketInfo{997}, who: alice(1000)}, unavailable,
			`not in group evil\x1b]0;pwned\x07 (the socket's group)`},
		{"item2/user_name_control_chars", failure{target: sock, socket: true, dialErr: dialFailed(syscall.EACCES), sock: socketInfo{998}, who: func() Identity {
			return Identity{UID: 1001, User: "bob\r\x1b[2Kroot", Groups: nil, GroupName: func(int) string { return "tracebroker" }}
		}}, unavailable, `you (uid 1001, user bob\r\x1b[2Kroot) are not in group tracebroker`},
		{"item2/server_internal_control_chars", failure{target: sock, socket: true}, status.Error(codes.Internal, "boom\x1b[2J"),
			`the broker daemon failed on this request: boom\x1b[2J (its log says more)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var ce *CallError
			if got := explain(tt.f, tt.err); !errors.As(got, &ce) || !strings.Contains(ce.Message, tt.want) {
				t.Fatalf("got %v, want it to hold %q", got, tt.want)
			}
		})
	}
}
