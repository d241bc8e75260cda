package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/internal/escape"
	"github.com/tracebroker/tracebroker/internal/regfile"
)

func newAttestCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "attest",
		Short: "Keys, signed manifests, measured identities and program attestations",
		Long: `Sign and verify what tracebroker trusts. Release keys sign the broker, generator
plugins, static collectors and gatekeeper policies offline (FILE.sig, a DSSE
envelope around an in-toto statement); a running process's identity is
measured from the file it executes; and every program the broker generates
gets an attestation signed by the host key (tracebroker init).`,
	}
	cmd.AddCommand(newKeygenCmd(), newSignCmd(), newVerifyCmd(), newMeasureCmd(), newVerifyProgramCmd())
	return cmd
}

// defaultServeConfig is the daemon config init writes: serve's defaults,
// spelled out so that an administrator sees what there is to change.
const defaultServeConfig = `{
  "socket": "` + DefaultSocket + `",
  "socket-group": "",
  "default": "loose",
  "hvci": "auto",
  "max-sessions": 128,
  "max-sessions-per-subject": 8,
  "issuer": "tracebroker",
  "audience": "tracebroker",
  "token-max-lifetime": "24h",
  "max-conns": 1024,
  "max-conns-per-peer": 32,
  "preauth-timeout": "10s",
  "refusal-audit-burst": 20,
  "refusal-audit-rate": 0.05,
  "audit-max-mib": 32,
  "audit-keep": 8,
  "max-script-bytes": 262144,
  "log-format": "text",
  "log-level": "info"
}
`

func newKeygenCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen --out PREFIX",
		Short: "Create an Ed25519 key pair: PREFIX.key (PKCS#8, 0600) and PREFIX.pub (PKIX)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("--out PREFIX is required")
			}
			k, err := attest.GenerateKey()
			if err != nil {
				return err
			}
			if err := attest.WriteKeyPair(out, k); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s.key %s.pub\nkey id: %s\n", out, out, k.ID)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "write `PREFIX`.key and PREFIX.pub")
	return cmd
}

func newSignCmd() *cobra.Command {
	var (
		keyPath string
		p       attest.ArtifactPredicate
		role    string
	)
	cmd := &cobra.Command{
		Use:   "sign --key KEY --role ROLE [--name N] [--version V] FILE|DIR",
		Short: "Sign FILE for a role (FILE.sig), a package's members, or a repository's index",
		Long: `Sign what tracebroker is to trust, offline, with a release key:

  broker, generator, collector, policy  a binary or policy object: FILE.sig
  program     a precompiled eBPF object: FILE.sig covers its bytes
  package     every member of a package, a tar file (FILE.sig) or a directory
              (DIR/package.sig): one statement, one subject per member
  repository  the index of a directory of programs (DIR/repository.sig): every
              file under DIR with its digest (and its fs-verity digest where
              the file system has fs-verity enabled for it)`,
		Example: `  tracebroker attest sign --key release.key --role broker --version v0.3.0 bin/tracebroker
  tracebroker attest sign --key release.key --role policy policy.o
  tracebroker attest sign --key vendor.key --role program opensnoop.bpf.o
  tracebroker attest sign --key vendor.key --role package --version 1.2 tools.tar
  tracebroker attest sign --key site.key --role repository /opt/bpf-tools`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyPath == "" {
				return fmt.Errorf("--key is required")
			}
			r, err := parseRole(role, false)
			if err != nil {
				return err
			}
			k, err := attest.LoadPrivateKey(keyPath)
			if err != nil {
				return err
			}
			var sig string
			switch r {
			case attest.RolePackage, attest.RoleRepository:
				// One statement over many files: a package's members,
				// a repository's index.
				bp := attest.BundlePredicate{Name: p.Name, Version: p.Version}
				if r == attest.RolePackage {
					sig, err = attest.SignPackage(args[0], k, bp)
				} else {
					sig, err = attest.SignRepository(args[0], k, bp)
				}
			default:
				p.Role = r
				sig, err = attest.SignArtifact(args[0], k, p)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s (key %s)\n", sig, k.ID)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyPath, "key", "", "the signing key (`PATH` to a PKCS#8 PEM)")
	f.StringVar(&role, "role", "", "broker, generator, collector, policy, program, package or repository")
	f.StringVar(&p.Name, "name", "", "the artifact's name (default: the file's base name)")
	f.StringVar(&p.Version, "version", "", "the artifact's version")
	return cmd
}

func parseRole(s string, optional bool) (attest.Role, error) {
	if s == "" && optional {
		return "", nil
	}
	all := append(slices.Clone(attest.Roles), attest.BundleRoles...)
	for _, r := range all {
		if string(r) == s {
			return r, nil
		}
	}
	names := make([]string, len(all))
	for i, r := range all {
		names[i] = string(r)
	}
	return "", fmt.Errorf("--role %q: want one of %s", s, strings.Join(names, ", "))
}

// loadTrust reads --trust PUB[,PUB...]; empty means the state
// directory's trust/*.pub.
func loadTrust(list []string, state string) (*attest.Trust, error) {
	if len(list) == 0 {
		return attest.StateTrust(state)
	}
	return attest.LoadTrust(list...)
}

func newVerifyCmd() *cobra.Command {
	var (
		trust   []string
		role    string
		sigPath string
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "verify --trust PUB[,PUB...] [--role ROLE] FILE|DIR",
		Short: "Verify what signs FILE or DIR against trusted keys; say what the signature covers",
		Long: `Verify FILE or DIR against what signs it, with one of the trusted keys, and say
which form of signing it is and what the signature covers:

  artifact         FILE.sig (or --sig) over FILE alone: a binary, a policy, or an
                   eBPF object (role program)
  package          FILE.sig over every member of a tar file, or DIR/package.sig
                   over every file of a directory: all must match
  repository       DIR/repository.sig, the index of the files under DIR: each
                   is checked against it
  repository file  a FILE with no signature of its own, in a repository: the
                   index of the nearest DIR above it with a repository.sig

Prints the identity and exits 0, or exits 1 with the reason: digest mismatch,
bad signature, untrusted key, wrong role, malformed envelope, unsigned.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(trust) == 0 {
				return fmt.Errorf("--trust is required")
			}
			t, err := attest.LoadTrust(trust...)
			if err != nil {
				return err
			}
			r, err := parseRole(role, true)
			if err != nil {
				return err
			}
			v, verr := attest.VerifyAny(args[0], sigPath, t, r)
			if verr != nil {
				return fmt.Errorf("%s: %w", args[0], verr)
			}
			return printVerification(cmd.OutOrStdout(), v, asJSON)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&trust, "trust", nil, "trusted public keys (`PUB`[,PUB...])")
	f.StringVar(&role, "role", "", "require this role")
	f.StringVar(&sigPath, "sig", "", "the manifest (default FILE.sig)")
	f.BoolVar(&asJSON, "json", false, "print the identity as JSON")
	return cmd
}

// printVerification is printIdentity with the form and what the
// signature covers.
func printVerification(w io.Writer, v *attest.Verification, asJSON bool) error {
	if asJSON {
		type subject struct {
			Name   string `json:"name"`
			Digest string `json:"digest"`
		}
		out := struct {
			attest.Identity
			Form     string    `json:"form"`
			Covers   string    `json:"covers"`
			Subjects []subject `json:"subjects"`
		}{Identity: v.Identity, Form: v.Form, Covers: v.Covers}
		for _, s := range v.Subjects {
			out.Subjects = append(out.Subjects, subject{s.Name, "sha256:" + s.Digest})
		}
		b, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	if v.Form == "package" || v.Form == "repository" {
		// Many files: the digest that identifies them is the signed
		// statement's, each file's is listed below.
		id := v.Identity
		fmt.Fprintf(w, "path:     %s\nstatement: sha256:%s\nverified: yes\nsigner:   %s\nrole:     %s\nname:     %s\n", id.Path, id.Digest, id.Signer, id.Role, id.Name)
		if id.Version != "" {
			fmt.Fprintf(w, "version:  %s\n", id.Version)
		}
	} else if err := printIdentity(w, v.Identity, false); err != nil {
		return err
	}
	fmt.Fprintf(w, "form:     %s\ncovers:   %s\n", v.Form, v.Covers)
	if v.Form == "package" || v.Form == "repository" {
		for _, s := range v.Subjects {
			fmt.Fprintf(w, "  sha256:%s  %s\n", s.Digest, escape.Text(s.Name))
		}
	}
	return nil
}

func printIdentity(w io.Writer, id attest.Identity, asJSON bool) error {
	if asJSON {
		b, err := json.MarshalIndent(id, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	verified := "yes"
	if !id.Verified {
		verified = "no: " + id.Reason
	}
	fmt.Fprintf(w, "path:     %s\ndigest:   sha256:%s\nverified: %s\n", id.Path, id.Digest, verified)
	if id.Verified {
		fmt.Fprintf(w, "signer:   %s\nrole:     %s\nname:     %s\n", id.Signer, id.Role, id.Name)
		if id.Version != "" {
			fmt.Fprintf(w, "version:  %s\n", id.Version)
		}
	}
	return nil
}

func newMeasureCmd() *cobra.Command {
	var (
		trust  []string
		state  string
		dir    string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "measure [PID]",
		Short: "Measure a running process: hash what it executes, verify its manifest",
		Long: `Measure a process (this one by default): hash the file it is actually
executing (/proc/PID/exe), find its manifest (EXE.sig beside it, else in the
manifest directory) and verify it against the trusted keys (--trust, default
the state directory's trust/*.pub). An unsigned build is reported as such;
that is a fact, not an error.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pid := 0
			if len(args) == 1 {
				if _, err := fmt.Sscanf(args[0], "%d", &pid); err != nil || pid <= 0 {
					return fmt.Errorf("invalid pid %q", args[0])
				}
			}
			t, err := loadTrust(trust, state)
			if err != nil {
				return err
			}
			if dir == "" {
				dir = attest.StateManifestDir(state)
			}
			id, err := attest.Measure(pid, attest.MeasureOptions{Trust: t, ManifestDir: dir})
			if err != nil {
				return err
			}
			return printIdentity(cmd.OutOrStdout(), id, asJSON)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&trust, "trust", nil, "trusted public keys (`PUB`[,PUB...]; default: STATE/trust/*.pub)")
	f.StringVar(&state, "state", attest.DefaultStateDir, "state `DIR`")
	f.StringVar(&dir, "manifests", "", "manifest `DIR` (default: STATE/manifests)")
	f.BoolVar(&asJSON, "json", false, "print the identity as JSON")
	return cmd
}

func newVerifyProgramCmd() *cobra.Command {
	var (
		trust   []string
		program string
		source  string
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "verify-program --trust HOSTPUB FILE [--program HEX] [--source FILE]",
		Short: "Verify a program attestation offline",
		Long: `Verify a source-of-program attestation written by tracebroker run --attest-dir:
signed by a trusted host key, and its subject digest matching the program it
carries and, with --program, the bytecode given (hex; map fds are ignored).
The script it was generated from is kept once beside the attestations of its
trace (sources/sha256-DIGEST); when it is there, or given with --source, it
must be the one whose digest was signed. Prints what the program is, where
it came from and who asked.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(trust) == 0 {
				return fmt.Errorf("--trust is required")
			}
			t, err := attest.LoadTrust(trust...)
			if err != nil {
				return err
			}
			env, err := readBounded(args[0], "attestation", attest.MaxEnvelopeSize)
			if err != nil {
				return err
			}
			var code []byte
			if program != "" {
				if code, err = parseHex(program); err != nil {
					return fmt.Errorf("--program: %w", err)
				}
			}
			p, signer, err := attest.VerifyProgram(env, t, code)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			text, err := sourceText(args[0], source, p)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				b, err := json.MarshalIndent(p, "", "  ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(w, "%s\n", b)
				return err
			}
			// What the attestation holds came from requests (a script's
			// name, a token's subject): every field is shown escaped, so
			// that none can forge a line or reach the terminal.
			e := escape.String
			digest, _ := programDigestHex(p.Program.Code)
			fmt.Fprintf(w, "program:   %s (%d instructions, sha256:%s)\n", e(p.Program.Name), p.Program.Insns, e(digest))
			fmt.Fprintf(w, "signed by: %s\n", e(signer))
			fmt.Fprintf(w, "source:    %s %s (sha256:%s)\n", e(p.Source.Kind), e(p.Source.Name), e(p.Source.Digest))
			if len(p.Source.Args) > 0 {
				b, _ := json.Marshal(p.Source.Args)
				fmt.Fprintf(w, "args:      %s\n", e(string(b)))
			}
			if len(p.Source.Params) > 0 {
				b, _ := json.Marshal(p.Source.Params) // keys sorted
				fmt.Fprintf(w, "params:    %s\n", e(string(b)))
			}
			if text != "" {
				fmt.Fprintf(w, "text:      %s\n", e(text))
			}
			fmt.Fprintf(w, "generator: %s %s\n", e(p.Generator.Name), e(p.Generator.Version))
			if p.Source.Kind == "object" {
				// What signed the object: itself, its package or its
				// repository (the identity's role), or nothing.
				g := p.Generator.Identity
				if g.Verified {
					fmt.Fprintf(w, "signed:    %s %s by %s\n", e(string(g.Role)), e(g.Name), e(g.Signer))
				} else {
					fmt.Fprintf(w, "signed:    no (%s)\n", e(orNone(g.Reason)))
				}
			}
			fmt.Fprintf(w, "broker:    %s sha256:%s verified=%v %s\n", e(p.Broker.Path), e(p.Broker.Digest), p.Broker.Verified, e(p.Broker.Reason))
			fmt.Fprintf(w, "requester: uid %d", p.Requester.UID)
			if p.Requester.TokenSubject != "" {
				fmt.Fprintf(w, ", token %s (jti %s)", e(p.Requester.TokenSubject), e(p.Requester.TokenID))
			}
			fmt.Fprintf(w, "\ndecision:  %s\ntime:      %s\n", e(orNone(p.Decision.Verdict)), p.Time.Format("2006-01-02T15:04:05Z07:00"))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&trust, "trust", nil, "trusted host public keys (`HOSTPUB`[,...])")
	f.StringVar(&program, "program", "", "also check this bytecode (`HEX`) is the attested program")
	f.StringVar(&source, "source", "", "check this `FILE` is the attested source (default: the kept one beside the attestation, if there)")
	f.BoolVar(&asJSON, "json", false, "print the whole predicate as JSON")
	return cmd
}

// maxSourceFile bounds a source file read to check it.
const maxSourceFile = 64 << 20

// sourceText checks the attestation's source text where there is one to
// check — carried (VerifyProgram checked it), given, or kept beside the
// attestation — and says which it was.
func sourceText(attestation, given string, p *attest.ProgramPredicate) (string, error) {
	path := given
	switch {
	case path == "" && p.Source.Text != "":
		return "carried in the attestation, matches its digest", nil
	case path == "" && p.Source.TextRef != "":
		path = filepath.Join(filepath.Dir(attestation), filepath.FromSlash(p.Source.TextRef))
	case path == "":
		return "", nil
	}
	b, err := readBounded(path, "source", maxSourceFile)
	if errors.Is(err, fs.ErrNotExist) && given == "" {
		return "not at hand (" + path + ")", nil
	}
	if err != nil {
		return "", err
	}
	if err := attest.VerifySource(p, b); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return path + ", matches its digest", nil
}

func programDigestHex(code string) (string, error) {
	b, err := hex.DecodeString(code)
	if err != nil {
		return "", err
	}
	return attest.ProgramDigest(b)
}

func orNone(s string) string {
	if s == "" {
		return "(none: no gatekeeper ran)"
	}
	return s
}

// readBounded reads a file of at most max bytes; what names the file's
// kind in the error.
func readBounded(path, what string, max int64) ([]byte, error) {
	// Not os.Open: a FIFO planted at the path would block it.
	f, _, err := regfile.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: %s is larger than %d bytes", path, what, max)
	}
	return b, nil
}
