package gatekeeper

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/gatekeeper/abi"
)

// The defaults' names, as Decision.Policy and Config.Default say them.
const (
	DefaultStrict = "strict"
	DefaultLoose  = "loose"
)

// Config configures a Gatekeeper.
type Config struct {
	// Default decides while no policy is loaded: "strict" admits programs
	// signed by a key with the release role, or generated from source by
	// a verified broker; "loose" admits uid 0.
	Default string
	// Platform is what DetectPlatform measured; it overwrites the
	// platform flags of every Request and drives mode selection.
	Platform Platform
	// Trust and Roles are the keys the strict default accepts a
	// program's signer from: Roles (key id -> abi.Role* bits) if set,
	// else every key in Trust with every role.
	Trust *attest.Trust
	Roles map[string]uint64
	// PolicyConfigured says a policy is configured but not loaded yet.
	// Under loose, that denies everything until it is: the loose default
	// must not serve requests meant for a stricter policy.
	PolicyConfigured bool
}

// Gatekeeper decides requests with the loaded policy, or the default.
// Decide and Load may be called from any number of goroutines.
type Gatekeeper struct {
	loose      bool
	platform   Platform
	roles      map[string]uint64
	configured bool
	active     atomic.Pointer[active]
	bufs       sync.Pool // *[]byte of abi.Size
}

// active is a loaded policy with its decisions made in advance: the
// decision for a verdict depends only on the verdict, the policy and the
// platform, all fixed, so Decide only picks one.
type active struct {
	p         *Policy
	decisions [Any + 1]Decision
}

// New checks cfg and makes a Gatekeeper with no policy loaded.
func New(cfg Config) (*Gatekeeper, error) {
	g := &Gatekeeper{platform: cfg.Platform, configured: cfg.PolicyConfigured}
	switch cfg.Default {
	case DefaultStrict:
	case DefaultLoose:
		g.loose = true
	default:
		return nil, fmt.Errorf("gatekeeper: default %q: want %s or %s", cfg.Default, DefaultStrict, DefaultLoose)
	}
	roles, err := effectiveRoles(cfg.Trust, cfg.Roles)
	if err != nil {
		return nil, fmt.Errorf("gatekeeper: %w", err)
	}
	g.roles = roles
	g.bufs.New = func() any {
		b := make([]byte, abi.Size)
		return &b
	}
	return g, nil
}

// Platform is the platform every Request is judged on.
func (g *Gatekeeper) Platform() Platform { return g.platform }

// Policy is the loaded policy, nil when a default decides.
func (g *Gatekeeper) Policy() *Policy {
	if a := g.active.Load(); a != nil {
		return a.p
	}
	return nil
}

// Load makes p the policy for every Decide that starts after it; one
// already running finishes with the policy it started with. nil unloads
// the policy and the default decides again.
func (g *Gatekeeper) Load(p *Policy) {
	if p == nil {
		g.active.Store(nil)
		return
	}
	a := &active{p: p}
	for v := Deny; v <= Any; v++ {
		a.decisions[v] = g.decide(v, "policy "+p.name+" returned "+v.String(), p)
	}
	g.active.Store(a)
}

// decide applies mode selection to verdict v and explains it: what
// decided, then what the platform made of it.
func (g *Gatekeeper) decide(v Verdict, why string, p *Policy) Decision {
	final, mode, how := selectMode(v, g.platform)
	d := Decision{Verdict: final, Mode: mode, Reason: why}
	if how != "" {
		d.Reason += "; " + how
	}
	g.attribute(&d, p)
	return d
}

// attribute says which policy (or default) made d.
func (g *Gatekeeper) attribute(d *Decision, p *Policy) {
	switch {
	case p != nil:
		d.Policy, d.PolicyDigest = p.name, p.digest
		if p.unsigned {
			d.Reason += "; " + reasonUnsigned
		}
	case g.loose:
		d.Policy = "loose default"
	default:
		d.Policy = "strict default"
	}
}

func (g *Gatekeeper) deny(reason string, p *Policy) Decision {
	d := Decision{Verdict: Deny, Reason: reason}
	g.attribute(&d, p)
	return d
}

// Decide judges one request. It first overwrites the request's platform
// flags (hvci, jit_available, kernel_interpreter) with Config.Platform,
// in the caller's struct, so what is audited is what was judged; the
// caller must not share req with another goroutine meanwhile. Every
// failure denies: an invalid request, a policy that faults, runs out of
// budget or returns a non-verdict.
func (g *Gatekeeper) Decide(req *Request) Decision {
	a := g.active.Load()
	var p *Policy
	if a != nil {
		p = a.p
	}
	if req == nil {
		return g.deny("no request", p)
	}
	req.HVCI = g.platform.HVCI
	req.JITAvailable = g.platform.JITAvailable
	req.KernelInterpreter = g.platform.KernelInterpreter
	if err := req.validate(); err != nil {
		return g.deny("invalid request: "+err.Error(), p)
	}
	if a == nil {
		return g.byDefault(req)
	}
	buf := g.bufs.Get().(*[]byte)
	req.encodeInto(*buf)
	v, err := p.Run(*buf)
	g.bufs.Put(buf)
	if err != nil {
		return g.deny("policy error: "+err.Error(), p)
	}
	return a.decisions[v]
}

// byDefault is the hard-coded policy for when none is loaded.
func (g *Gatekeeper) byDefault(req *Request) Decision {
	if g.loose {
		switch {
		case g.configured:
			return g.deny("gatekeeper not ready: the configured policy is not loaded yet", nil)
		case req.UID == 0:
			return g.decide(Any, "loose default: uid 0 may run any program", nil)
		case req.TokenPresent && req.TokenScope&abi.ScopeTrace != 0:
			// Only the daemon sets token_present, after verifying the
			// token and checking every probe against its scopes. It
			// refuses reads beyond them too; this is the second lock.
			if beyond := readsBeyondScopes(req.Reads, req.TokenScope); beyond != "" {
				return g.deny(fmt.Sprintf("the loose default admits a token's program only within its scopes: it reads %s (the token of %q)", beyond, req.TokenSubject), nil)
			}
			return g.decide(Any, fmt.Sprintf("loose default: token of %q with the trace scope", req.TokenSubject), nil)
		case req.TokenPresent:
			return g.deny(fmt.Sprintf("the loose default admits only uid 0 or a token with the trace scope (the token of %q has no trace scope)", req.TokenSubject), nil)
		}
		return g.deny(fmt.Sprintf("the loose default admits only uid 0 or a token with the trace scope (the request is from uid %d, without a token)", req.UID), nil)
	}
	signed, sigWhy := g.releaseSigned(req)
	if signed {
		return g.decide(Any, "strict default: "+sigWhy, nil)
	}
	var srcWhy string
	switch {
	case req.Covers != abi.CoversSourceOfProgram:
		srcWhy = fmt.Sprintf("its signature does not cover its source (covers is %s, not source-of-program)", coversName(req.Covers))
	case !req.BrokerVerified:
		srcWhy = "the broker that generated it is not verified"
	case req.GeneratorDigest != "" && req.GeneratorDigest != req.BrokerDigest && !req.GeneratorVerified:
		// A generator other than the broker itself (a plugin) wrote
		// this program: the broker's signature does not vouch for it.
		srcWhy = fmt.Sprintf("its generator %q is not verified", req.Generator)
	default:
		return g.decide(Any, "strict default: generated from source by a verified broker", nil)
	}
	return g.deny("the strict default admits only programs signed by a release key or generated by a verified broker: "+sigWhy+", and "+srcWhy, nil)
}

// readsBeyondScopes says what of reads (abi.Read* bits) the token_scope
// bits do not grant, and which scope would: "" when they grant it all.
func readsBeyondScopes(reads, scope uint64) string {
	var out []string
	for _, r := range []struct {
		read, scope uint64
		what, name  string
	}{
		{abi.ReadUser, abi.ScopeReadUser, "arbitrary user memory", "read:user"},
		{abi.ReadKernel, abi.ScopeReadKernel, "kernel memory", "read:kernel"},
		{abi.ReadKernelAddr, abi.ScopeReadKernel, "kernel addresses", "read:kernel"},
	} {
		if reads&r.read != 0 && scope&r.scope == 0 {
			out = append(out, r.what+", which needs "+r.name)
		}
	}
	return strings.Join(out, ", and ")
}

// releaseSigned is the strict default's first condition, with why it
// holds or which part fails.
func (g *Gatekeeper) releaseSigned(req *Request) (bool, string) {
	// What signed it must have the role for what the signature covers:
	// the release role vouches for all three forms.
	need, role := uint64(abi.RoleRelease), "release"
	switch req.Covers {
	case abi.CoversPackage:
		need, role = need|abi.RolePackage, "release or package"
	case abi.CoversRepository:
		need, role = need|abi.RoleRepository, "release or repository"
	}
	switch bits, trusted := g.roles[req.ProgramSigner]; {
	case !req.ProgramSigned:
		return false, "the program is not signed"
	case req.ProgramSigner == "" || !trusted:
		return false, fmt.Sprintf("its signer %q is not a trusted key", req.ProgramSigner)
	case bits&need == 0:
		return false, fmt.Sprintf("its signer %s does not have the %s role", req.ProgramSigner, role)
	}
	return true, fmt.Sprintf("%s signed by trusted key %s", coversWhat(req.Covers), req.ProgramSigner)
}

func coversName(c uint8) string {
	for name, n := range coversNames {
		if n == c {
			return name
		}
	}
	if c == 0 {
		return "0 (unsigned)"
	}
	return fmt.Sprint(c)
}

// coversWhat says what a signature that covers c signed.
func coversWhat(c uint8) string {
	switch c {
	case abi.CoversPackage:
		return "its package is"
	case abi.CoversRepository:
		return "its repository's index is"
	}
	return "the program is"
}
