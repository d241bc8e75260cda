package view

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/attest/store"
	"github.com/tracebroker/tracebroker/broker/audit"
)

// writeLog writes records with the audit package, as the daemon does.
func writeLog(t *testing.T, recs ...any) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(recs); i += 2 {
		if _, err := l.Append(recs[i].(string), recs[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	return path
}

type m = map[string]any

func sessionLog(t *testing.T) string {
	return writeLog(t,
		"daemon.start", m{"pid": 1},
		"trace.request", m{"session": "aaaa", "caller": m{"unix": true, "uid": 65534, "pid": 7}, "token": m{"sub": "alice", "jti": "j1", "scope": "trace probe:**"}, "name": "stdin", "source_digest": "ab"},
		"trace.request", m{"session": "bbbb", "caller": m{"unix": true, "uid": 0, "pid": 8}, "name": "x.bt"},
		"trace.admitted", m{"session": "aaaa", "mode": "jit", "decisions": []m{{"probe": "BEGIN", "verdict": "ALLOW_JIT", "reason": "loose"}}},
		"trace.refused", m{"session": "bbbb", "stage": "scope", "code": "PermissionDenied", "reason": "no"},
		"trace.end", m{"session": "aaaa", "stage": "end", "status": 0, "reason": "interrupted", "elapsed_ms": 12},
	)
}

func events(recs []Record) string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Event+"/"+r.Session+"/"+r.Subject)
	}
	return strings.Join(out, " ")
}

func TestRead(t *testing.T) {
	log := sessionLog(t)
	for _, c := range []struct {
		name string
		f    Filter
		max  int
		want string
	}{
		{"all", Filter{}, 0, "daemon.start// trace.request/aaaa/alice trace.request/bbbb/uid:0 trace.admitted/aaaa/alice trace.refused/bbbb/uid:0 trace.end/aaaa/alice"},
		{"session", Filter{Session: "aaaa"}, 0, "trace.request/aaaa/alice trace.admitted/aaaa/alice trace.end/aaaa/alice"},
		{"subject", Filter{Subject: "uid:0"}, 0, "trace.request/bbbb/uid:0 trace.refused/bbbb/uid:0"},
		{"event", Filter{Events: []string{"trace.refused", "trace.end"}}, 0, "trace.refused/bbbb/uid:0 trace.end/aaaa/alice"},
		{"until", Filter{Until: time.Now().Add(-time.Hour)}, 0, ""},
		{"since", Filter{Since: time.Now().Add(-time.Hour), Session: "bbbb"}, 0, "trace.request/bbbb/uid:0 trace.refused/bbbb/uid:0"},
		{"newest kept", Filter{}, 2, "trace.refused/bbbb/uid:0 trace.end/aaaa/alice"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := Read([]string{log}, c.f, c.max)
			if err != nil {
				t.Fatal(err)
			}
			if got := events(res.Records); got != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
			if c.max == 2 && res.Dropped != 4 {
				t.Errorf("dropped %d, want 4", res.Dropped)
			}
		})
	}
}

func TestPrintSession(t *testing.T) {
	res, err := Read([]string{sessionLog(t)}, Filter{Session: "aaaa"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	PrintSession(&b, Tell("aaaa", res.Records, "", nil))
	for _, want := range []string{
		"session aaaa\n",
		" by alice (token j1, scope \"trace probe:**\") from uid 65534 pid 7\n",
		"  program    script stdin (sha256:ab)\n",
		" mode jit\n    BEGIN: ALLOW_JIT (loose)\n",
		" after 12ms: interrupted, status 0\n",
		"  attestations: no attestation directory given\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in\n%s", want, b.String())
		}
	}
}

// attestSession writes a session's attestation into a store as the
// daemon does, signed by key, and returns the store's directory.
func attestSession(t *testing.T, key *attest.PrivateKey, session string, src []byte) string {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := attest.SourceDigest(src)
	p := attest.ProgramPredicate{
		Program:   attest.ProgramInfo{Name: "BEGIN"},
		Source:    attest.Source{Kind: "script", Name: "stdin", Digest: d, TextRef: attest.SourceRef(d)},
		Generator: attest.Generator{Name: "tracebroker-script"},
		Decision:  attest.Decision{Verdict: "ALLOW_JIT", Mode: "jit"},
	}
	env, _, err := attest.AttestProgram(asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}, p, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Add("alice", "20261205T210000Z-1-"+session, src, []store.Envelope{{Probe: "BEGIN", Data: env}}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func tell(t *testing.T, dir string, trust *attest.Trust) string {
	t.Helper()
	res, err := Read([]string{sessionLog(t)}, Filter{Session: "aaaa"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	PrintSession(&b, Tell("aaaa", res.Records, dir, trust))
	return b.String()
}

func TestTellAttestations(t *testing.T) {
	host, _ := attest.GenerateKey()
	src := []byte("BEGIN { printf(\"hi\\n\"); exit(); }\n")
	got := tell(t, attestSession(t, host, "aaaa", src), attest.NewTrust(host.Public()))
	for _, want := range []string{
		"  attestations (1):\n    BEGIN: 2 instructions, verdict ALLOW_JIT, mode jit, signed by " + host.ID,
		"  source (kept, matches the signed digest):\n    | BEGIN { printf(\"hi\\n\"); exit(); }\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in\n%s", want, got)
		}
	}
}

// TestAttacksAuditShow: what whoever wrote into the log or the
// attestation directory can make audit show do.
func TestAttacksAuditShow(t *testing.T) {
	host, _ := attest.GenerateKey()
	other, _ := attest.GenerateKey()
	t.Run("item5/audit_show_escape", func(t *testing.T) {
		evil := "x\x1b]0;owned\x07\n9999 2026 trace.end forged\u202e"
		log := writeLog(t, "trace.request", m{"session": "cccc", "caller": m{"unix": true}, "token": m{"sub": evil}, "name": evil})
		res, err := Read([]string{log}, Filter{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		PrintRecords(&b, res.Records)
		PrintSession(&b, Tell("cccc", res.Records, "", nil))
		if strings.ContainsAny(b.String(), "\x1b\x07\u202e") {
			t.Errorf("a control character reached the output:\n%q", b.String())
		}
		if strings.Contains(b.String(), "\n9999") || strings.Count(b.String(), "\n") != 7 {
			t.Errorf("a record forged a line:\n%s", b.String())
		}
	})
	t.Run("item5/audit_show_huge_log", func(t *testing.T) {
		log := sessionLog(t)
		f, err := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		// A line past audit's limit, then many records: the long line is
		// skipped unread, the records kept are bounded.
		f.Write(append(bytes.Repeat([]byte("A"), 3<<20), '\n'))
		for i := range 5000 {
			f.WriteString(`{"v":1,"seq":` + strconv.Itoa(100+i) + `,"time":"2026-12-05T21:00:00Z","prev":"x","event":"trace.end","data":{"session":"dddd"}}` + "\n")
		}
		f.Close()
		res, err := Read([]string{log}, Filter{}, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Records) != 100 || res.Dropped != 5006-100 || res.Unreadable != 1 {
			t.Errorf("kept %d, dropped %d, unreadable %d; want 100, %d, 1", len(res.Records), res.Dropped, res.Unreadable, 5006-100)
		}
		if res.Records[99].Seq != 5099 {
			t.Errorf("last kept seq %d, want the newest, 5099", res.Records[99].Seq)
		}
	})
	t.Run("item5/audit_show_fifo", func(t *testing.T) {
		fifo := filepath.Join(t.TempDir(), "audit.log")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Skip(err)
		}
		if _, err := Read([]string{fifo}, Filter{}, 0); err == nil {
			t.Error("read a FIFO")
		}
	})
	t.Run("item5/audit_show_session_glob", func(t *testing.T) {
		dir := attestSession(t, host, "aaaa", []byte("BEGIN {}"))
		for _, id := range []string{"*", "aa*", "../x", "aaaa+", ""} {
			s := Tell(id, nil, dir, attest.NewTrust(host.Public()))
			if len(s.Attestations) != 0 || ValidSessionID(id) == nil {
				t.Errorf("session %q: %d attestations shown", id, len(s.Attestations))
			}
		}
	})
	t.Run("item5/attestation_forged", func(t *testing.T) {
		got := tell(t, attestSession(t, other, "aaaa", []byte("BEGIN { forged }")), attest.NewTrust(host.Public()))
		if !strings.Contains(got, "NOT VERIFIED") || strings.Contains(got, "forged }") || strings.Contains(got, "instructions") {
			t.Errorf("a forged attestation was shown:\n%s", got)
		}
		if got := tell(t, attestSession(t, host, "aaaa", []byte("BEGIN {}")), nil); !strings.Contains(got, "NOT VERIFIED: no host key") {
			t.Errorf("an attestation shown with no key to verify it:\n%s", got)
		}
	})
	t.Run("item5/source_swapped", func(t *testing.T) {
		src := []byte("BEGIN { signed }")
		dir := attestSession(t, host, "aaaa", src)
		kept := filepath.Join(dir, store.SourcesDir, "sha256-"+attest.SourceDigest(src))
		if err := os.WriteFile(kept, []byte("BEGIN { swapped }"), 0o640); err != nil {
			t.Fatal(err)
		}
		got := tell(t, dir, attest.NewTrust(host.Public()))
		if strings.Contains(got, "{ swapped }") || !strings.Contains(got, "does not match the signed digest") {
			t.Errorf("a swapped source was shown:\n%s", got)
		}
	})
}

// BenchmarkRead is audit show's reading of a log of 100,000 records
// (about 30 MB), filtered by one session: per record, and its memory.
func BenchmarkRead(b *testing.B) {
	path := filepath.Join(b.TempDir(), "audit.log")
	var buf bytes.Buffer
	for i := range 100000 {
		buf.WriteString(`{"v":1,"seq":` + strconv.Itoa(i+1) + `,"time":"2026-12-05T21:00:00.123456789Z","prev":"0000000000000000000000000000000000000000000000000000000000000000","event":"trace.request","data":{"session":"` + strconv.Itoa(i%5000) + `","caller":{"unix":true,"uid":65534,"gid":65534,"pid":4242},"token":{"sub":"alice","jti":"j1","scope":"trace probe:tracepoint:syscalls:*"},"name":"stdin","source_digest":"f644f8455b508e0173b27e85e42e70f5ccd4ff3c6ecfaf65f6f4e1d72f46c3b2"}}` + "\n")
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		f    Filter
		want int
	}{{"session", Filter{Session: "42"}, 20}, {"all", Filter{}, DefaultMaxRecords}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(buf.Len()))
			b.ReportAllocs()
			for b.Loop() {
				res, err := Read([]string{path}, c.f, 0)
				if err != nil || len(res.Records) != c.want {
					b.Fatal(err, len(res.Records))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100000, "ns/record")
		})
	}
}
