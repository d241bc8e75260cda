// Package mark is shared by the test plugins of package plugins: each
// writes its pid beside its binary (EXE.pid) the moment it starts, so a
// test can prove that a refused plugin never ran and that a plugin that
// ran is gone afterwards.
package mark

import (
	"os"
	"strconv"
)

// Started writes EXE.pid.
func Started() {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	if err := os.WriteFile(exe+".pid", []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		panic(err)
	}
}

// Note writes EXE.NAME, e.g. "generating" once Generate runs.
func Note(name string) {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	if err := os.WriteFile(exe+"."+name, nil, 0o644); err != nil {
		panic(err)
	}
}
