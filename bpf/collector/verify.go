package collector

import (
	"fmt"
	"path/filepath"

	"github.com/tracebroker/tracebroker/attest"
)

// Trust says which collectors may be loaded: those whose manifest,
// ManifestDir/NAME.bpf.sig, verifies for the collector's digest with
// role collector by a key in Keys.
type Trust struct {
	Keys        *attest.Trust
	ManifestDir string
	// Unsigned loads the collectors without looking for manifests: for
	// development only. The identities say so.
	Unsigned bool
}

// ManifestPath is where t looks for the manifest of the collector named
// name.
func (t Trust) ManifestPath(name string) string {
	return filepath.Join(t.ManifestDir, ObjectFile(name)+attest.SigSuffix)
}

// ReasonUnsignedAllowed is the Reason of a collector's identity when
// Trust.Unsigned skipped the verification.
const ReasonUnsignedAllowed = "unsigned, allowed for development"

// Verify checks each collector's manifest and returns their identities,
// in order; it fails closed, on the first collector that does not
// verify, with an error naming it and what to do. The digest checked is
// that of the instructions in this binary, the very ones Open loads.
func (t Trust) Verify(specs ...Spec) ([]attest.Identity, error) {
	ids := make([]attest.Identity, 0, len(specs))
	for _, s := range specs {
		digest := s.Digest()
		if t.Unsigned {
			ids = append(ids, attest.Identity{Name: s.Name, Digest: digest, Role: attest.RoleCollector, Reason: ReasonUnsignedAllowed})
			continue
		}
		id, err := t.verify(s.Name, digest)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func (t Trust) verify(name, digest string) (attest.Identity, error) {
	howto := fmt.Sprintf("install a release's manifests (tracebroker init --trust release.pub, from make release), or export it (tracebroker collectors export OUT), sign OUT/%s (sha256 %s) for role %s (tracebroker attest sign --role %s), and put the .sig in the manifest directory; or load collectors unsigned for development (--unsigned-collectors)",
		ObjectFile(name), digest, attest.RoleCollector, attest.RoleCollector)
	return attest.VerifyBuiltIn("collector "+name, t.ManifestDir, ObjectFile(name)+attest.SigSuffix, digest, t.Keys, attest.RoleCollector, howto)
}
