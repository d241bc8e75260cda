package daemon

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/tracebroker/tracebroker/internal/regfile"
)

// TokenEnv is the environment variable a client takes its token from
// when no file is given.
const TokenEnv = "TRACEBROKER_TOKEN"

// ErrTokenInArgs is the refusal of a token given on the command line.
var ErrTokenInArgs = errors.New("--token would put the token in this command's arguments, which every user of the host can read (ps, /proc/PID/cmdline): give it with --token-file FILE, --token-file - (stdin) or $" + TokenEnv)

// maxTokenFile bounds what is read for a token: a real one is well
// under 1 KiB, with room for white space around it.
const maxTokenFile = 16 << 10

// ReadToken takes a client's token from where no other user of the host
// can read it: the file path (a regular file, or "-" for stdin), or,
// without one, the environment variable TokenEnv (getenv). White space
// around it is not part of it. No path and no variable is no token ("",
// nil): local root needs none.
func ReadToken(path string, stdin io.Reader, getenv func(string) string) (string, error) {
	var b []byte
	switch path {
	case "":
		return strings.TrimSpace(getenv(TokenEnv)), nil
	case "-":
		var err error
		if b, err = io.ReadAll(io.LimitReader(stdin, maxTokenFile+1)); err != nil {
			return "", fmt.Errorf("--token-file -: reading stdin: %w", err)
		}
		if len(b) > maxTokenFile {
			return "", fmt.Errorf("--token-file -: stdin holds more than %d bytes; a token is well under that", maxTokenFile)
		}
	default:
		var err error
		if b, err = regfile.ReadFile(path, maxTokenFile); err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("--token-file %s: no token in it", path)
	}
	return tok, nil
}
