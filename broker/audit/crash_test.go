package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
)

// appenderEnv makes TestHelperAppender, run as a child process, append
// to the log it names until it is killed.
const appenderEnv = "TRACEBROKER_AUDIT_TEST_APPENDER"

func TestHelperAppender(t *testing.T) {
	path := os.Getenv(appenderEnv)
	if path == "" {
		return // only as TestKill9's child
	}
	l, err := Open(path, Options{Logger: quiet})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(time.Now().UnixNano())))
	for i := 0; ; i++ {
		// Up to most of MaxData: a write that spans many pages can be
		// stopped between pages by SIGKILL, which is how a real torn
		// record comes about.
		// Strings are bounded one by one (MaxField), so the bulk is
		// many of them.
		pad := make([]string, rng.IntN(60))
		for j := range pad {
			pad[j] = strings.Repeat("x", MaxField)
		}
		if _, err := l.Append(EventTraceEnd, map[string]any{"i": i, "pad": pad}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(4)
		}
	}
}

// TestKill9 kills a process appending as fast as it can, at random
// moments, and checks that each time the log verifies (a torn tail
// allowed) and that the next Open continues the chain.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes; not in -short")
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	var before Result
	torn := 0
	// At least 8 rounds; more, for a while, until one kill has landed in
	// the middle of a write(2), which only some do.
	start := time.Now()
	round := 0
	for ; round < 8 || torn == 0 && round < 40 && time.Since(start) < 10*time.Second; round++ {
		size := fileSize(path)
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperAppender$", "-test.count=1")
		cmd.Env = append(os.Environ(), appenderEnv+"="+path)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// A whole record first: the file grows a page at a time as a
		// record is written, and a kill before the first one is whole
		// (a slow child on a busy machine) leaves no new record to
		// check. The kill that follows lands anywhere after it.
		deadline := time.Now().Add(30 * time.Second)
		for !recordSince(path, size) {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("round %d: the child wrote nothing\n%s", round, stderr.String())
			}
			time.Sleep(100 * time.Microsecond)
		}
		time.Sleep(time.Duration(rng.IntN(40000)) * time.Microsecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child ended with %v, not killed\n%s", round, err, stderr.String())
		}

		res := verifyFile(t, path)
		if res.Records <= before.Records {
			t.Fatalf("round %d: %d records after the kill, %d before", round, res.Records, before.Records)
		}
		if res.TornTail {
			torn++
		}
		l := open(t, path)
		h := appendOK(t, l, EventDaemonStart, map[string]int{"round": round})
		l.Close()
		want := uint64(res.Records) + 1
		if res.TornTail {
			want++ // the audit.recovered record
		}
		before = verifyFile(t, path)
		if h.Seq != want || before.Head != h || before.TornTail {
			t.Fatalf("round %d: killed with %+v; then appended %v; now %+v", round, res, h, before)
		}
	}
	t.Logf("%d rounds, %d records, %d killed mid-record", round, before.Records, torn)
}

// recordSince reports whether the log at path holds a whole record (a
// line) past its first size bytes.
func recordSince(path string, size int64) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for off := max(size, 0); ; {
		n, err := f.ReadAt(buf, off)
		if bytes.IndexByte(buf[:n], '\n') >= 0 {
			return true
		}
		if err != nil {
			return false
		}
		off += int64(n)
	}
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return fi.Size()
}

func seedLog(n int) []byte {
	var buf bytes.Buffer
	l := memLog(&buf)
	for i := 0; i < n; i++ {
		d := data[i%len(data)]
		if _, err := l.Append(d.event, d.data); err != nil {
			panic(err)
		}
	}
	return buf.Bytes()
}

func FuzzVerify(f *testing.F) {
	valid := seedLog(6)
	f.Add([]byte{})
	f.Add(valid)
	f.Add(valid[:len(valid)-7])
	f.Add(bytes.Replace(valid, []byte(`"seq":3`), []byte(`"seq":4`), 1))
	f.Add(bytes.Replace(valid, []byte(`"sub"`), []byte(`"Sub"`), 1))
	f.Add([]byte("{}\n"))
	f.Add([]byte("{\"v\":1}\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := Verify(bytes.NewReader(b))
		if err != nil {
			var ve *VerifyError
			if !errors.As(err, &ve) || ve.Line < 1 || res.Records != ve.Line-1 {
				t.Fatalf("Verify = %+v, %v", res, err)
			}
			return
		}
		complete := b[:len(b)-res.TornBytes]
		if res.TornTail != (res.TornBytes > 0) || bytes.IndexByte(b[len(complete):], '\n') >= 0 ||
			len(complete) > 0 && complete[len(complete)-1] != '\n' || bytes.Count(complete, []byte("\n")) != res.Records {
			t.Fatalf("Verify = %+v for %d bytes", res, len(b))
		}
		if again, err := Verify(bytes.NewReader(complete)); err != nil || again != (Result{Records: res.Records, Head: res.Head}) {
			t.Fatalf("without the torn tail: %+v, %v; before %+v", again, err, res)
		}
		// Whatever verifies can be continued from its head, as Open does.
		buf := bytes.NewBuffer(append([]byte{}, complete...))
		l := memLog(buf)
		l.head = res.Head
		h := appendOK(t, l, EventDaemonStart, nil)
		if next, err := Verify(bytes.NewReader(buf.Bytes())); err != nil || next != (Result{Records: res.Records + 1, Head: h}) {
			t.Fatalf("continued: %+v, %v", next, err)
		}
	})
}

// FuzzAppendVerify: whatever Append accepts, Verify passes, and the data
// reads back.
func FuzzAppendVerify(f *testing.F) {
	f.Add("trace.request", "sub", "alice", uint8(3), int64(0))
	f.Add("trace.refused", "why", "\n\"<\u2028\x00", uint8(1), int64(-1))
	f.Add("a", "", "\xff", uint8(16), int64(1<<62))
	f.Fuzz(func(t *testing.T, event, key, value string, n uint8, nanos int64) {
		var buf bytes.Buffer
		l := memLog(&buf)
		l.now = func() time.Time { return time.Unix(0, nanos) }
		records := int(n%16) + 1
		for i := 0; i < records; i++ {
			_, err := l.Append(event, map[string]any{key: value, "i": i})
			if err != nil {
				if validEvent(event) == nil && !strings.HasPrefix(event, "audit.") {
					t.Fatalf("Append(%q): %v", event, err)
				}
				return
			}
		}
		res, err := Verify(bytes.NewReader(buf.Bytes()))
		if err != nil || res != (Result{Records: records, Head: l.Head()}) {
			t.Fatalf("Verify = %+v, %v; want %d records, head %v", res, err, records, l.Head())
		}
		if !utf8.ValidString(key) || !utf8.ValidString(value) {
			return // encoding/json writes U+FFFD for invalid UTF-8
		}
		for _, line := range bytes.Split(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n")) {
			var rec struct {
				Time  time.Time
				Event string
				Data  map[string]any
			}
			if err := json.Unmarshal(line, &rec); err != nil {
				t.Fatal(err)
			}
			if rec.Event != event || !rec.Time.Equal(time.Unix(0, nanos)) || key != "i" && rec.Data[BoundString(key)] != BoundString(value) {
				t.Fatalf("read back %+v from %s", rec, line)
			}
		}
	})
}
