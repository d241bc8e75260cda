//go:build !norpc

package main

// --json of the listings that speak RPC: sessions list (the daemon's)
// and plugins list (go-plugin). writeJSONList's rules hold.

import (
	"io"
	"time"

	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
	"github.com/tracebroker/tracebroker/plugins"
)

// sessionJSON is a session of `sessions list --json`.
type sessionJSON struct {
	ID        string   `json:"id"`
	Subject   string   `json:"subject"`            // the token's sub, or uid:N for root without one
	TokenID   string   `json:"token_id,omitempty"` // the token's jti
	UID       uint32   `json:"uid"`
	ClientPID int32    `json:"client_pid"` // 0 over TCP
	Name      string   `json:"name"`       // the script's name, or gen:NAME
	Mode      string   `json:"mode"`       // jit or interpreter once attached, "" before
	Probes    []string `json:"probes"`
	// Started and Ends are RFC 3339 times; Ends is null without a
	// duration.
	Started time.Time  `json:"started"`
	Ends    *time.Time `json:"ends"`
}

func writeSessionsJSON(w io.Writer, ss []*pb.Session) error {
	out := make([]sessionJSON, 0, len(ss))
	for _, s := range ss {
		j := sessionJSON{ID: s.Id, Subject: s.Subject, TokenID: s.TokenId, UID: s.Uid, ClientPID: s.ClientPid, Name: s.Name, Mode: s.Mode,
			Probes: s.Probes, Started: time.UnixMilli(s.StartedUnixMs).UTC()}
		if j.Probes == nil {
			j.Probes = []string{}
		}
		if s.DeadlineUnixMs != 0 {
			t := time.UnixMilli(s.DeadlineUnixMs).UTC()
			j.Ends = &t
		}
		out = append(out, j)
	}
	return writeJSONList(w, out)
}

// pluginJSON is a plugin of `plugins list --json`.
type pluginJSON struct {
	Name   string `json:"name"` // what --gen NAME and gen:NAME scopes use
	Path   string `json:"path"`
	Digest string `json:"sha256"`
	// Status is verified (and described itself), refused (its manifest
	// did not verify: Reason says why; it was never run) or failed
	// (verified, but it did not start or describe itself: Reason).
	Status      string `json:"status"`
	Reason      string `json:"reason,omitempty"`
	Signer      string `json:"signer,omitempty"` // the key id that signed its manifest
	Version     string `json:"version,omitempty"`
	Description string `json:"description,omitempty"`
}

func writePluginsJSON(w io.Writer, list []plugins.Plugin) error {
	out := make([]pluginJSON, 0, len(list))
	for _, p := range list {
		j := pluginJSON{Name: p.Name, Path: p.Path, Digest: p.Identity.Digest, Signer: p.Identity.Signer, Status: "verified"}
		switch {
		case !p.Identity.Verified:
			j.Status, j.Reason = "refused", p.Identity.Reason
		case p.Err != nil:
			j.Status, j.Reason = "failed", p.Err.Error()
		}
		if p.Info != nil {
			j.Version, j.Description = p.Info.Version, p.Info.Description
		}
		out = append(out, j)
	}
	return writeJSONList(w, out)
}
