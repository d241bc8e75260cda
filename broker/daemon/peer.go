package daemon

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// RemoteUID is the uid the gatekeeper sees for a caller over TCP: its
// uid on its own host means nothing here, and it must never read as 0.
const RemoteUID = math.MaxUint32

// Caller is who sent a request, as the transport proves it: the kernel's
// SO_PEERCRED on the unix socket, or a TLS connection from Addr.
type Caller struct {
	Unix bool   `json:"unix"`
	UID  uint32 `json:"uid"`
	GID  uint32 `json:"gid"`
	PID  int32  `json:"pid,omitempty"`
	Addr string `json:"addr,omitempty"` // TCP: the peer's address
}

func (c Caller) String() string {
	if c.Unix {
		return fmt.Sprintf("uid %d (pid %d)", c.UID, c.PID)
	}
	return "tcp " + c.Addr
}

// admin is a local root caller: without a token it may do anything, as
// root may with `tracebroker run`.
func (c Caller) admin() bool { return c.Unix && c.UID == 0 }

// peerCredInfo is the AuthInfo of a unix socket connection.
type peerCredInfo struct {
	credentials.CommonAuthInfo
	cred unix.Ucred
	conn *trackedConn // nil if the listener does not bound connections
}

func (peerCredInfo) AuthType() string { return "peercred" }

// peerCreds are transport credentials for the unix socket: no
// encryption (the kernel carries the bytes), and the peer's uid, gid and
// pid read with SO_PEERCRED when it connects. The kernel records them at
// connect(2), so a descriptor passed to another process keeps the
// credentials of the one that connected.
type peerCreds struct{}

func (peerCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	// The kernel carries the bytes between two processes of this host:
	// nothing on the wire to protect.
	info := peerCredInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}
	if tc, ok := conn.(*trackedConn); ok && tc.cred != nil {
		info.cred, info.conn = *tc.cred, tc
		return conn, info, nil
	}
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return nil, nil, fmt.Errorf("peer credentials need a unix socket, not %T", conn)
	}
	cred, err := peerCred(uc)
	if err != nil {
		return nil, nil, err
	}
	info.cred = *cred
	return conn, info, nil
}

// peerCred reads the credentials the kernel recorded when the peer
// connected.
func peerCred(uc *net.UnixConn) (*unix.Ucred, error) {
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	if credErr != nil {
		return nil, fmt.Errorf("SO_PEERCRED: %w", credErr)
	}
	return cred, nil
}

func (peerCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("peer credentials are for the server side")
}

func (peerCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "peercred"}
}

func (p peerCreds) Clone() credentials.TransportCredentials { return p }

func (peerCreds) OverrideServerName(string) error { return nil }

// callerOf reads the caller from a request's context. Anything but a
// unix peer with credentials or a TLS peer is refused: there is no third
// way in.
func callerOf(ctx context.Context) (Caller, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Caller{}, errors.New("no peer")
	}
	switch ai := p.AuthInfo.(type) {
	case peerCredInfo:
		return Caller{Unix: true, UID: ai.cred.Uid, GID: ai.cred.Gid, PID: ai.cred.Pid}, nil
	case credentials.TLSInfo, tlsAuthInfo:
		return Caller{UID: RemoteUID, GID: RemoteUID, Addr: p.Addr.String()}, nil
	}
	return Caller{}, fmt.Errorf("unauthenticated transport %T", p.AuthInfo)
}
