package broker

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tracebroker/tracebroker/attest"
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
}

// ScriptGenerator names the broker's built-in generator, the script
// compiler, in attestations.
const ScriptGenerator = "tracebroker-script"

// attestPrograms writes the attestation of every probe's program and
// returns the files written. On an error it removes what it wrote.
func attestPrograms(a *Attest, req *Request, prog *program.Program, adm *Admission) (files []string, err error) {
	if err := os.MkdirAll(a.Dir, 0o755); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			for _, f := range files {
				os.Remove(f)
			}
			files = nil
		}
	}()
	specs := map[string]attest.MapInfo{}
	for _, m := range prog.Maps {
		specs[m.Name] = attest.MapInfo{Name: m.Name, Type: m.Type.String(), KeySize: m.KeySize, ValueSize: m.ValueSize, MaxEntries: m.MaxEntries}
	}
	now := time.Now().UTC().Truncate(time.Second)
	stamp := fmt.Sprintf("%s-%d", now.Format("20060102T150405Z"), os.Getpid())
	if a.Session != "" {
		stamp += "-" + fileSafe(a.Session)
	}
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
			Program: attest.ProgramInfo{Name: probe.Name, Maps: maps},
			Source: attest.Source{
				Kind:   "script",
				Name:   req.Name,
				Text:   string(req.Source),
				Digest: attest.SourceDigest(req.Source),
			},
			Generator: attest.Generator{Name: ScriptGenerator, Version: version.String(), Identity: a.Broker},
			Broker:    a.Broker,
			Requester: a.Requester,
			Time:      now,
		}
		if gen := req.Generator; gen != nil {
			p.Source.Kind, p.Source.Name, p.Source.Params = "plugin", gen.Name, gen.Params
			if gen.Program != nil {
				// No text: the parameters are what the source was.
				canon, _ := json.Marshal(gen.Params) // keys sorted
				p.Source.Text, p.Source.Digest = "", attest.SourceDigest(canon)
			}
			p.Generator = attest.Generator{Name: gen.Name, Version: gen.Version, Identity: gen.Identity}
		}
		if adm != nil && i < len(adm.Decisions) {
			d := adm.Decisions[i]
			p.Decision = attest.Decision{Verdict: d.Verdict.String(), Mode: adm.Mode, PolicyDigest: d.PolicyDigest, Reason: d.Reason}
		}
		env, _, err := attest.AttestProgram(probe.Insns, p, a.Key)
		if err != nil {
			return files, fmt.Errorf("attesting %s: %w", probe.Name, err)
		}
		path := filepath.Join(a.Dir, fmt.Sprintf("%s-%02d-%s.dsse.json", stamp, i, fileSafe(probe.Name)))
		if err := attest.WriteNew(path, env); err != nil {
			return files, err
		}
		files = append(files, path)
	}
	return files, nil
}

// fileSafe turns a probe name into a file name part.
func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}
