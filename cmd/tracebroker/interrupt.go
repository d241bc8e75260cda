package main

import (
	"context"
	"errors"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/tracebroker/tracebroker/broker"
)

// exitStatus ends the command with that status and nothing more on
// stderr: what there was to say is said.
type exitStatus int

func (s exitStatus) Error() string { return "exit status " + strconv.Itoa(int(s)) }

// exitInterrupted is the exit status of a command that Ctrl-C cut short:
// 128+SIGINT, as a shell reports a command SIGINT killed, and nothing on
// stderr (the user knows they pressed it).
const exitInterrupted exitStatus = 130

// statusOf is the exit status err asks for, if it asks for one: ours,
// or one a daemon's trace ended with (its message already on stderr).
func statusOf(err error) (int, bool) {
	var s exitStatus
	if errors.As(err, &s) {
		return int(s), true
	}
	return rpcExitStatus(err)
}

// interrupted turns an error that only says the command was interrupted
// (its context cancelled by a signal, or a daemon call cut short) into
// exitInterrupted; other errors pass.
func interrupted(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case callInterrupted(err):
		return exitInterrupted
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, broker.ErrNotStarted)):
		return exitInterrupted
	}
	return err
}

// endingLine is what trace says on its first interrupt.
const endingLine = "tracebroker: ending the trace (interrupt again to leave at once)\n"

// twoInterrupts is trace's Ctrl-C: the first (or SIGTERM) closes
// interrupt, asking the daemon to end the trace as run's Ctrl-C does
// (END runs, the maps are printed); the second cancels ctx, leaving at
// once. Saying so after the first also tells a user that a second one
// will be heard: signals sent together arrive as one.
func twoInterrupts(stderr io.Writer) (ctx context.Context, interrupt <-chan struct{}, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan struct{})
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-sig:
		case <-done:
			return
		}
		close(ch)
		io.WriteString(stderr, endingLine)
		select {
		case <-sig:
			cancel()
		case <-done:
		}
	}()
	return ctx, ch, func() {
		signal.Stop(sig)
		close(done)
		cancel()
	}
}
