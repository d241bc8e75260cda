// Package racetest runs, for tests, the filesystem races that attack a
// check of a path followed by a use of it.
package racetest

import (
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// Exchange swaps the names a and b (renameat2 RENAME_EXCHANGE, atomic:
// each name always exists) over and over, until stop is called or the
// test ends.
func Exchange(t testing.TB, a, b string) (stop func()) {
	t.Helper()
	var done atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !done.Load() {
			if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err != nil {
				t.Errorf("renameat2(%s, %s, RENAME_EXCHANGE): %v", a, b, err)
				return
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { done.Store(true); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}
