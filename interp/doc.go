// Package interp will be the eBPF interpreter: the full RFC 9669 ISA
// behind a verifier, for hosts where no new native code may be created
// and for running gatekeeper policies. Not built yet: see the interp issue.
package interp
