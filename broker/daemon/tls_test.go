package daemon

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
	"github.com/tracebroker/tracebroker/broker/token"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// selfSigned is a server certificate for 127.0.0.1 and the pool that
// trusts it.
func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tracebroker test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// TestTLS: over TCP nobody is an administrator and everyone needs a
// token; a token holder traces as over the socket.
func TestTLS(t *testing.T) {
	needKernel(t)
	cert, pool := selfSigned(t)
	d := startDaemon(t, daemonOpts{listen: "127.0.0.1:0", tls: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}})
	addr := d.srv.TCPAddr().String()
	dial := func(tok string) *Client {
		c, err := Dial(Target{Addr: addr, TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}, Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	var ce *CallError
	_, err := dial("").Trace(context.Background(), nil, &pb.TraceRequest{Source: getcwdScript()}, &strings.Builder{}, &strings.Builder{})
	if !errors.As(err, &ce) || ce.Code != "Unauthenticated" || !strings.Contains(ce.Message, "a token is required") || !strings.Contains(ce.Message, "tcp 127.0.0.1:") {
		t.Errorf("no token over TCP: %v", err)
	}
	tok := d.token(t, token.IssueOptions{Scope: "trace probe:tracepoint:syscalls:sys_enter_getcwd"})
	if _, err := dial(tok).Sessions(context.Background()); !errors.As(err, &ce) || ce.Code != "PermissionDenied" {
		t.Errorf("sessions over TCP: %v", err)
	}
	// A client that does not trust the certificate gets nowhere.
	c, _ := Dial(Target{Addr: addr, TLS: &tls.Config{MinVersion: tls.VersionTLS13}, Token: tok})
	if _, err := c.Sessions(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted certificate: %v", err)
	}
	c.Close()

	before, _ := kerneltest.LoadedIDs(t)
	var out, errb strings.Builder
	interrupt := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := dial(tok).Trace(context.Background(), interrupt, &pb.TraceRequest{Source: getcwdScript()}, &out, &errb)
		done <- err
	}()
	d.attached(t, 1)
	kerneltest.Syscalls(6, 0)
	close(interrupt)
	if err := <-done; err != nil || out.String() != "Attaching 1 probe...\n\n\n@: 6\n" {
		t.Errorf("trace over TLS: %v, stdout %q, stderr %q", err, out.String(), errb.String())
	}
	if left := newSince(t, before); len(left) > 0 {
		t.Errorf("programs left loaded: %v", left)
	}
}
