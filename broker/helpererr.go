package broker

import (
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/broker/output"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/cpp"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// helperSitesAt moves the compiled program's helper sites (-k) from
// the preprocessed text to the script's, where the user reads them.
func helperSitesAt(prog *program.Program, pre *cpp.Result) {
	for i := range prog.Schema.HelperSites {
		s := &prog.Schema.HelperSites[i]
		from := pre.Pos(syntax.Pos{Offset: s.Offset, Line: s.Line, Col: s.Col}, false)
		to := pre.Pos(syntax.Pos{Offset: s.EndOffset, Line: s.EndLine, Col: s.EndCol}, true)
		s.Offset, s.Line, s.Col = from.Offset, from.Line, from.Col
		s.EndOffset, s.EndLine, s.EndCol = to.Offset, to.Line, to.Col
	}
}

// helperError prints a failed helper call (-k) as bpftrace does: a
// warning with the script's line and a caret under the call in text,
// a helper_error object in JSON.
func (r *runner) helperError(site uint64, ret int32) {
	if site >= uint64(len(r.prog.Schema.HelperSites)) {
		return
	}
	s := r.prog.Schema.HelperSites[site]
	if (s.Helper == "probe_read" || s.Helper == "probe_read_str") && ret == -int32(unix.ERANGE) {
		// A read where bpftrace calls bpf_probe_read is made here with
		// bpf_probe_read_kernel, which refuses a user address with
		// -ERANGE; bpf_probe_read, the helper named, fails it with
		// -EFAULT, which bpftrace shows.
		ret = -int32(unix.EFAULT)
	}
	msg := "Failed to " + s.Helper + ": "
	if ret < 0 {
		msg += program.StrerrorText(int64(-ret)) + " (" + strconv.FormatInt(int64(ret), 10) + ")"
	} else {
		msg += strconv.FormatInt(int64(ret), 10)
	}
	text := syntax.FormatError(r.req.Name, r.req.Source, &syntax.Error{
		From:    syntax.Pos{Offset: s.Offset, Line: s.Line, Col: s.Col},
		To:      syntax.Pos{Offset: s.EndOffset, Line: s.EndLine, Col: s.EndCol},
		Msg:     msg,
		Warning: true,
	}) + "\n"
	if h, ok := r.out.(output.HelperErrorPrinter); ok {
		h.HelperError(text, s.Helper, int64(ret), s.Line, s.Col)
	}
}
