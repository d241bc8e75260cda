// Package detach closes a trace's attachments a bounded number at a time.
//
// Closing an attachment (a perf event carrying a program, a BPF link)
// waits in the kernel for RCU grace periods, tens of milliseconds, in a
// system call that holds an OS thread the whole time. Closing them
// concurrently overlaps the waits the kernel allows to overlap; one
// goroutine per attachment made a thread per attachment (360 for the
// syscall tracepoints), and Go aborts a process at 10,000 threads.
package detach

import "sync"

// Workers is how many attachments one call closes at once. Tracepoints
// take their grace periods one at a time under the kernel's event mutex,
// so more closers than this only add blocked threads (BenchmarkDetach360
// in bpf measures it).
const Workers = 8

// inFlight bounds the closes in flight in the whole process: a daemon
// whose sessions all end at once (SIGTERM) shares it between them.
var inFlight = make(chan struct{}, 4*Workers)

// All calls closeAt(i) for every i in [0, n), on at most Workers
// goroutines, and returns when every call has.
func All(n int, closeAt func(i int)) {
	workers := min(n, Workers)
	if workers == 0 {
		return
	}
	next := make(chan int)
	var wg sync.WaitGroup
	wg.Add(workers)
	for range workers {
		go func() {
			defer wg.Done()
			for i := range next {
				inFlight <- struct{}{}
				closeAt(i)
				<-inFlight
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
