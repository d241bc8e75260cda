package view

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzShow: any log, however edited, is read without a panic and shown
// with no control character and no line but the records' own.
func FuzzShow(f *testing.F) {
	f.Add([]byte(`{"v":1,"seq":1,"time":"2026-12-05T21:00:00Z","prev":"0","event":"trace.request","data":{"session":"ab","token":{"sub":"a\u001b"},"name":"x"}}` + "\n"))
	f.Add([]byte(`{"v":1,"seq":2,"time":"2026-12-05T21:00:00Z","prev":"0","event":"trace.admitted","data":{"session":"ab","decisions":[{"probe":"\n"},1,null]}}`))
	f.Add([]byte("{}\n\n\x00\xff"))
	path := filepath.Join(f.TempDir(), "audit.log")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		res, err := Read([]string{path}, Filter{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		PrintRecords(&b, res.Records)
		if n := strings.Count(b.String(), "\n"); n != len(res.Records)+1 {
			t.Errorf("%d lines for %d records", n, len(res.Records))
		}
		for _, r := range res.Records {
			PrintSession(&b, Tell(r.Session, res.Records, "", nil))
		}
		if strings.ContainsAny(b.String(), "\x1b\x07\x00\u202e\u009b") {
			t.Errorf("a control character in the output: %q", b.String())
		}
	})
}
