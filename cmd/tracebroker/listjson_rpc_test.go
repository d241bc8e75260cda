//go:build !norpc

package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
)

// TestSessionsJSON: sessions list --json, as TestListJSON checks the
// other listings (the daemon's sessions need a daemon: written here
// from the daemon's answer).
func TestSessionsJSON(t *testing.T) {
	start := time.Date(2026, 12, 5, 21, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	err := writeSessionsJSON(&b, []*pb.Session{
		{Id: "a1b2c3d4e5f6", Subject: "alice\x1b[2J", TokenId: "jti-1", Uid: 65534, ClientPid: 4242, Name: "stdin", Mode: "jit",
			Probes: []string{"tracepoint:syscalls:sys_enter_getcwd"}, StartedUnixMs: start.UnixMilli(), DeadlineUnixMs: start.Add(time.Minute).UnixMilli()},
		{Id: "0f0f0f0f0f0f", Subject: "uid:0", Name: "gen:syscount\u009b2J\u202e", StartedUnixMs: start.UnixMilli()},
	})
	if err != nil {
		t.Fatal(err)
	}
	goldenJSON(t, "sessions.json", b.String(), "")
	if strings.ContainsAny(b.String(), "\x1b\u009b\u202e") {
		t.Errorf("a control character in the JSON, raw: %q", b.String())
	}
	b.Reset()
	writeSessionsJSON(&b, nil)
	if b.String() != "[]\n" {
		t.Errorf("no sessions: %q, want []", b.String())
	}
}
