// Package gatekeeper will decide, for every program, deny, interpreter or
// JIT: a policy that is itself an eBPF program, run by interp over a fixed
// Request struct. Not built yet: see the gatekeeper issue. Until then
// `tracebroker run` admits what root submits, as the loose default would.
package gatekeeper
