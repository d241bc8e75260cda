package broker

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/attest/store"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/internal/version"
)

// Attest configures source-of-program attestations: with it, Run signs
// one for every program it generated, before loading any, and a trace
// whose programs cannot all be attested does not run.
type Attest struct {
	Dir       string             // one file per program is written here
	Key       *attest.PrivateKey // the host attestation key
	Broker    attest.Identity    // this broker's measured identity
	Requester attest.Requester
	// Session, when set, goes into the file names: a daemon attests
	// many traces a second.
	Session string
	// Store, when set, keeps the attestations in Dir within its limits
	// (a daemon's); nil writes them to Dir unbounded.
	Store *store.Store
	// Subject is whom the store charges (default: the requester).
	Subject string
}

// ScriptGenerator names the broker's built-in generator, the script
// compiler, in attestations.
const ScriptGenerator = "tracebroker-script"

// attestPrograms writes the attestation of every probe's program, the
// source once beside them (store.SourceRef), and returns the files
// written. On an error nothing is left.
func attestPrograms(a *Attest, req *Request, prog *program.Program, adm *Admission) ([]string, error) {
	st := a.Store
	if st == nil {
		var err error
		if st, err = store.Open(a.Dir, store.Options{}); err != nil {
			return nil, err
		}
	}
	specs := map[string]attest.MapInfo{}
	for _, m := range prog.Maps {
		specs[m.Name] = attest.MapInfo{Name: m.Name, Type: m.Type.String(), KeySize: m.KeySize, ValueSize: m.ValueSize, MaxEntries: m.MaxEntries}
	}
	now := time.Now().UTC().Truncate(time.Second)
	stamp := fmt.Sprintf("%s-%d", now.Format("20060102T150405Z"), os.Getpid())
	if a.Session != "" {
		stamp += "-" + a.Session
	}
	// The source: the script (the user's, or a plugin's), stored once
	// by its digest, which each attestation signs; a plugin's eBPF has
	// its parameters for a source, small enough to carry.
	src := attest.Source{Kind: "script", Name: req.Name, Digest: attest.SourceDigest(req.Source), TextRef: attest.SourceRef(attest.SourceDigest(req.Source)), Args: req.Args}
	text := req.Source
	gen := attest.Generator{Name: ScriptGenerator, Version: version.String(), Identity: a.Broker}
	if g := req.Generator; g != nil {
		src.Kind, src.Name, src.Params = "plugin", g.Name, g.Params
		if g.Program != nil {
			canon, _ := json.Marshal(g.Params) // keys sorted
			src.Digest, src.TextRef, text = attest.SourceDigest(canon), "", nil
		}
		gen = attest.Generator{Name: g.Name, Version: g.Version, Identity: g.Identity}
	}
	if o := req.Object; o != nil {
		// A precompiled object is its own source: its digest, which
		// its signature (when it has one) covers, and who signed it.
		src = attest.Source{Kind: "object", Name: o.Name, Digest: o.Digest, Params: o.Vars}
		text = nil
		gen = attest.Generator{Name: ObjectGenerator, Identity: o.Signature}
	}
	specs = mapInfos(prog, specs)
	envs := make([]store.Envelope, len(prog.Probes))
	for i, probe := range prog.Probes {
		var maps []attest.MapInfo
		seen := map[string]bool{}
		for _, ins := range probe.Insns {
			if name := ins.Reference(); ins.IsLoadFromMap() && !seen[name] {
				seen[name] = true
				maps = append(maps, specs[name])
			}
		}
		p := attest.ProgramPredicate{
			Program:   attest.ProgramInfo{Name: probe.Name, Maps: maps, Attach: multiAttach(probe)},
			Source:    src,
			Generator: gen,
			Broker:    a.Broker,
			Requester: a.Requester,
			Time:      now,
		}
		if adm != nil && i < len(adm.Decisions) {
			d := adm.Decisions[i]
			p.Decision = attest.Decision{Verdict: d.Verdict.String(), Mode: adm.Mode, PolicyDigest: d.PolicyDigest, Reason: d.Reason, KernelGate: adm.KernelGate}
		}
		env, _, err := attest.AttestProgram(probe.Insns, p, a.Key)
		if err != nil {
			return nil, fmt.Errorf("attesting %s: %w", probe.Name, err)
		}
		envs[i] = store.Envelope{Probe: probe.Name, Data: env}
	}
	subject := a.Subject
	if subject == "" {
		subject = requesterSubject(a.Requester)
	}
	return st.Add(subject, stamp, text, envs)
}

// requesterSubject is whom a store charges for a requester's traces.
func requesterSubject(r attest.Requester) string {
	if r.TokenSubject != "" {
		return r.TokenSubject
	}
	return fmt.Sprintf("uid:%d", r.UID)
}

// mapInfos adds a precompiled object's maps, which its Program's Maps do
// not list, to specs.
func mapInfos(prog *program.Program, specs map[string]attest.MapInfo) map[string]attest.MapInfo {
	if prog.Object == nil {
		return specs
	}
	for _, m := range prog.Object.Spec.Maps {
		specs[m.Name] = attest.MapInfo{Name: m.Name, Type: m.Type.String(), KeySize: m.KeySize, ValueSize: m.ValueSize, MaxEntries: m.MaxEntries}
	}
	return specs
}
