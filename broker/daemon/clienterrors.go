package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/tracebroker/tracebroker/internal/escape"
)

// This file owns what a client user reads when talking to the daemon
// fails: gRPC's own strings ("connection error: desc = ...transport:
// Error while dialing...") name its internals, not the cause or the
// fix. Failures of the connection are recorded where they happen (the
// dialer, the TLS handshake) as Go errors, so they are told apart by
// errno and type rather than by gRPC's wording; what the daemon itself
// says is its own sentence and is passed on.

// dialRecord keeps the last error of dialing the daemon and of the TLS
// handshake, which gRPC reports only as text.
type dialRecord struct {
	mu  sync.Mutex
	err error
}

func (r *dialRecord) set(err error) {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
}

func (r *dialRecord) get() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// dialer connects to the socket or to the address gRPC resolved,
// keeping the error.
func (r *dialRecord) dialer(network, socket string) func(context.Context, string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		if socket != "" {
			addr = socket
		}
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		r.set(err)
		return c, err
	}
}

// recordingCreds keeps the TLS handshake's error.
type recordingCreds struct {
	credentials.TransportCredentials
	rec *dialRecord
}

func (c recordingCreds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	nc, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, conn)
	c.rec.set(err)
	return nc, info, err
}

func (c recordingCreds) Clone() credentials.TransportCredentials {
	return recordingCreds{c.TransportCredentials.Clone(), c.rec}
}

// Identity is who runs the client, for saying why the socket refused
// them.
type Identity struct {
	UID    int
	User   string // "" when it has no name
	Groups []int  // the process's groups: primary and supplementary
	// GroupName names a gid ("" when it has none).
	GroupName func(gid int) string
}

// CurrentIdentity is this process's.
func CurrentIdentity() Identity {
	id := Identity{UID: os.Getuid(), GroupName: func(gid int) string {
		g, err := user.LookupGroupId(strconv.Itoa(gid))
		if err != nil {
			return ""
		}
		return g.Name
	}}
	if u, err := user.LookupId(strconv.Itoa(id.UID)); err == nil {
		id.User = u.Username
	}
	id.Groups, _ = os.Getgroups()
	id.Groups = append(id.Groups, os.Getgid(), os.Getegid())
	return id
}

// failure is what explain needs to know of a failed call.
type failure struct {
	target  string // the socket path or host:port, as the user gave it
	socket  bool
	dialErr error           // the last dial or handshake error, if any
	ctxErr  error           // the call's context's error, if it ended
	sock    fs.FileInfo     // the socket's, when connecting was refused
	sockDir string          // set when sock is this directory's: the socket's could not be read
	who     func() Identity // looked up only when needed
}

// explain turns a failed call into a sentence that names the cause and
// the fix. err is the gRPC error of the call.
func explain(f failure, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	code, msg := st.Code(), st.Message()
	switch {
	case f.ctxErr != nil && (code == codes.Canceled || code == codes.DeadlineExceeded):
		// The client's own context: an interrupt, or a deadline the
		// caller set.
		if errors.Is(f.ctxErr, context.DeadlineExceeded) {
			return &CallError{Code: code.String(), Message: fmt.Sprintf("the broker daemon at %s did not answer in time", f.target)}
		}
		return &CallError{Code: code.String(), Message: "interrupted", Interrupted: true}
	case code == codes.Unavailable && isDaemonMessage(msg):
		return nil
	case code == codes.Unavailable && f.dialErr != nil:
		return &CallError{Code: code.String(), Message: dialSentence(f)}
	case code == codes.Unavailable:
		// Connected once, then lost: the daemon stopped or restarted
		// (a trace's probes go with its session).
		return &CallError{Code: code.String(), Message: fmt.Sprintf("lost the connection to the broker daemon at %s: did it stop or restart? (its log says why)", f.target)}
	case code == codes.Unimplemented && (strings.HasPrefix(msg, "unknown service ") || strings.HasPrefix(msg, "unknown method ")):
		return &CallError{Code: code.String(), Message: fmt.Sprintf("the broker daemon at %s does not know this request: it is an older tracebroker than this client (compare `tracebroker version` on both)", f.target)}
	case code == codes.ResourceExhausted && strings.HasPrefix(msg, "grpc: "):
		// gRPC's size limit, the same on both sides; what grows is a
		// request (a script, its parameters), the daemon's answers are
		// small.
		size := ""
		if m := grpcSizes().FindStringSubmatch(msg); m != nil {
			size = fmt.Sprintf(" (%s bytes; the limit is %s)", m[1], m[2])
		}
		return &CallError{Code: code.String(), Message: "the request is larger than the broker daemon takes" + size + ": make the script smaller"}
	case code == codes.Internal || code == codes.Unknown:
		return &CallError{Code: code.String(), Message: "the broker daemon failed on this request: " + escape.String(msg) + " (its log says more)"}
	}
	// The daemon's own refusals (Unauthenticated, PermissionDenied,
	// InvalidArgument...) are already sentences for people.
	return nil
}

// grpcSizes are the sizes in gRPC's "larger than max (N vs. LIMIT)".
var grpcSizes = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\((\d+) vs\. (\d+)\)`) })

// dialSentence says why the daemon could not be reached, and what to
// do.
func dialSentence(f failure) string {
	err := f.dialErr
	prefix := "cannot connect to " + f.target
	serve := "is `tracebroker serve` running?"
	if !f.socket {
		serve = "is `tracebroker serve --listen` running there?"
		var unknownCA x509.UnknownAuthorityError
		var hostErr x509.HostnameError
		var invalid x509.CertificateInvalidError
		var dnsErr *net.DNSError
		switch {
		case errors.As(err, &unknownCA):
			return prefix + ": its certificate is not signed by an authority you trust; give the daemon's CA with --tls-ca PEM"
		case errors.As(err, &hostErr):
			return prefix + ": its certificate is not for that name (" + escape.String(hostErr.Error()) + "); connect by a name it holds, or give --tls-server-name NAME"
		case errors.As(err, &invalid):
			return prefix + ": its certificate is not valid (" + escape.String(invalid.Error()) + ")"
		case errors.As(err, new(tls.AlertError)), errors.As(err, new(*tls.CertificateVerificationError)), errors.As(err, new(tls.RecordHeaderError)):
			return prefix + ": the TLS handshake failed (" + escape.String(err.Error()) + "); is it a tracebroker daemon's --listen address?"
		case errors.As(err, &dnsErr):
			return prefix + ": no such host (" + escape.String(dnsErr.Name) + ")"
		}
	}
	switch {
	case errors.Is(err, syscall.ENOENT):
		return fmt.Sprintf("%s: there is no socket there; %s (give --socket PATH if it listens elsewhere)", prefix, serve)
	case f.socket && f.sock != nil && f.sockDir == "" && f.sock.Mode().Type() != fs.ModeSocket:
		// connect(2) on another file fails with ECONNREFUSED, or EACCES
		// when it is not writable.
		return fmt.Sprintf("%s: it is not a socket; give the daemon's --socket PATH", prefix)
	case errors.Is(err, syscall.ECONNREFUSED):
		if f.socket {
			return fmt.Sprintf("%s: nothing listens on it (a daemon that stopped left it behind); %s", prefix, serve)
		}
		return fmt.Sprintf("%s: connection refused; %s", prefix, serve)
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return prefix + ": permission denied; " + permissionFix(f)
	case errors.Is(err, syscall.ENOTSOCK), errors.Is(err, syscall.ENOTDIR):
		return fmt.Sprintf("%s: it is not a socket; give the daemon's --socket PATH", prefix)
	case errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Sprintf("%s: timed out; %s", prefix, serve)
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return fmt.Sprintf("%s: the host cannot be reached from here", prefix)
	}
	return fmt.Sprintf("%s: %s; %s", prefix, plainError(err), serve)
}

// permissionFix says who may connect to the socket and what to do about
// it. The daemon gives the socket to the group of --socket-group, mode
// 0660: a user outside it is refused by the kernel before the daemon
// hears of them.
func permissionFix(f failure) string {
	if f.sock == nil || f.who == nil {
		return "ask an administrator for access to the socket"
	}
	st, ok := f.sock.Sys().(*syscall.Stat_t)
	if !ok {
		return "ask an administrator for access to the socket"
	}
	who := f.who()
	you := fmt.Sprintf("uid %d", who.UID)
	if who.User != "" {
		you += ", user " + escape.String(who.User)
	}
	gid := int(st.Gid)
	group := strconv.Itoa(gid)
	if who.GroupName != nil {
		if n := who.GroupName(gid); n != "" {
			group = escape.String(n)
		}
	}
	whose := "the socket's group"
	if f.sockDir != "" {
		whose = "the group of " + f.sockDir
	}
	if !slices.Contains(who.Groups, gid) && int(st.Uid) != who.UID {
		return fmt.Sprintf("you (%s) are not in group %s (%s); ask an administrator to add you, then log in again", you, group, whose)
	}
	// In the group, or the owner, and still refused: the mode, or a
	// directory on the way.
	return fmt.Sprintf("you (%s) may not open it (mode %v, group %s) or a directory on its path; ask an administrator to check `tracebroker serve --socket-group`", you, f.sock.Mode().Perm(), group)
}

// plainError is a Go error without the operation and address net puts
// before the cause ("dial unix /p: connect: " ...), which the sentence
// already names.
func plainError(err error) string {
	var sys *os.SyscallError
	if errors.As(err, &sys) {
		return escape.String(sys.Err.Error())
	}
	return escape.String(err.Error())
}
