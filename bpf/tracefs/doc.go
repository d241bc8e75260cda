// Package tracefs finds and describes kernel tracepoints through tracefs.
//
// It answers the questions a bpftrace-compatible front end asks before it
// can attach a tracepoint program: which tracepoints exist (Tracepoints,
// List), what their records look like (ReadFormat), and which perf event ID
// to open (Format.ID). Listing output follows bpftrace 0.17's `-l`/`-lv`
// byte for byte so scripts and muscle memory carry over.
package tracefs
