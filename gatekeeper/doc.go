// Package gatekeeper decides, for every program the broker is asked to
// run, whether it may run at all and how: deny, the interpreter (no new
// native code anywhere) or the kernel JIT.
//
// The decision is made by a policy that is itself an eBPF program, run by
// interp over the Request encoded as the fixed little-endian struct of
// gatekeeper/abi (see ABI.md), so that policy is code an administrator
// signs and trust is data: the trusted keys and their roles are a map the
// policy looks up (trusted_keys), filled by the gatekeeper, not compiled
// in. With no policy loaded a hard-coded default decides: strict (signed
// by a release key, or generated from source by a verified broker) or
// loose (uid 0, or a token with the trace scope that the daemon verified).
//
// The gatekeeper judges facts, never claims: the platform flags of every
// Request (HVCI, JIT available, kernel interpreter) are overwritten with
// what DetectPlatform measured before the policy sees them, and the
// final mode is chosen here, not by the policy: a policy says what it
// allows (jit, interpreter or any) and mode selection picks what the
// platform permits, denying when nothing is left.
//
// Everything fails closed. A policy that cannot be verified, loaded or
// signature-checked is an error at load; a policy that faults, runs out
// of its instruction budget or returns something that is not a verdict
// denies.
//
//	p, err := gatekeeper.LoadPolicyFile("/etc/tracebroker/policy.o", gatekeeper.PolicyOptions{Trust: trust})
//	g, err := gatekeeper.New(gatekeeper.Config{Default: "strict", Platform: plat, Trust: trust})
//	g.Load(p)
//	d := g.Decide(&gatekeeper.Request{Form: abi.FormSource, Covers: abi.CoversSourceOfProgram, BrokerVerified: true})
package gatekeeper
