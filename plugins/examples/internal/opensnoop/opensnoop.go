// Package opensnoop is the opensnoop generator: one line per file opened,
// with its pid, comm, file descriptor (or -1), errno and path, as
// bpftrace's and bcc's opensnoop print them.
package opensnoop

import (
	"context"
	"fmt"
	"strings"

	"github.com/tracebroker/tracebroker/plugins/examples/internal/script"
	"github.com/tracebroker/tracebroker/plugins/sdk"
)

// Generator generates opensnoop scripts.
type Generator struct{}

// Describe implements sdk.Generator.
func (Generator) Describe() (sdk.Info, error) {
	return sdk.Info{
		Name:        "opensnoop",
		Version:     "1.0.0",
		Description: "trace openat() calls: pid, comm, fd, errno and path",
		Params: []sdk.Param{
			{Name: "pid", Type: sdk.Int, Help: "only this process"},
			{Name: "comm", Type: sdk.String, Help: "only processes with this name (at most 15 bytes)"},
			{Name: "path", Type: sdk.String, Help: "only paths starting with this prefix (at most 63 bytes)"},
			{Name: "failed", Type: sdk.Bool, Default: "false", Help: "only opens that failed"},
		},
	}, nil
}

// Generate implements sdk.Generator. The path is read on entry, where
// the filename pointer comes straight from the context: a token's probe:
// scopes grant that read, where reading a pointer saved in a map on exit,
// as bcc's and bpftrace's opensnoop do, would need read:user (a saved
// pointer can be read in another address space). So the pid and comm
// filters act on entry, and the path and failure filters on exit, on
// the path kept. Only openat is traced: glibc, musl and Go open through it, and
// open(2) does not exist on arm64, where a script naming it would not
// compile.
func (Generator) Generate(_ context.Context, p sdk.Params) (sdk.Output, error) {
	var enter, exit []string
	if pid, ok, err := p.Int("pid"); err != nil {
		return sdk.Output{}, err
	} else if ok {
		if err := script.CheckPID("pid", pid); err != nil {
			return sdk.Output{}, err
		}
		enter = append(enter, fmt.Sprintf("pid == %d", pid))
	}
	if comm, ok := p.String("comm"); ok {
		if err := script.CheckString("comm", comm, script.CommLen); err != nil {
			return sdk.Output{}, err
		}
		enter = append(enter, "comm == "+script.Quote(comm))
	}
	if failed, err := p.Bool("failed"); err != nil {
		return sdk.Output{}, err
	} else if failed {
		exit = append(exit, "$ret < 0")
	}
	if path, ok := p.String("path"); ok {
		if err := script.CheckString("path", path, script.StrLen); err != nil {
			return sdk.Output{}, err
		}
		exit = append(exit, fmt.Sprintf("strncmp(@filename[tid], %s, %d) == 0", script.Quote(path), len(path)))
	}

	var b strings.Builder
	b.WriteString(`BEGIN
{
	printf("%-6s %-16s %4s %3s %s\n", "PID", "COMM", "FD", "ERR", "PATH");
}

tracepoint:syscalls:sys_enter_openat
`)
	if len(enter) > 0 {
		fmt.Fprintf(&b, "/%s/\n", strings.Join(enter, " && "))
	}
	b.WriteString(`{
	@filename[tid] = str(args->filename);
}

tracepoint:syscalls:sys_exit_openat
/has_key(@filename, tid)/
{
	$ret = args->ret;
	$fd = $ret >= 0 ? $ret : -1;
	$errno = $ret >= 0 ? 0 : -$ret;
`)
	// Every exit deletes its entry, printed or not, so the map holds
	// only the opens in flight.
	line := "printf(\"%-6d %-16s %4d %3d %s\\n\", pid, comm, $fd, $errno, @filename[tid]);\n"
	if len(exit) > 0 {
		fmt.Fprintf(&b, "\tif (%s) {\n\t\t%s\t}\n", strings.Join(exit, " && "), line)
	} else {
		b.WriteString("\t" + line)
	}
	// END clears what is in flight, which would otherwise be printed at
	// exit.
	b.WriteString(`	delete(@filename[tid]);
}

END
{
	clear(@filename);
}
`)
	return sdk.Output{Script: b.String()}, nil
}
