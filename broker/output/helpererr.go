package output

import "strconv"

// HelperErrorPrinter prints a helper call that failed (bpftrace's -k):
// text is the warning with the script's line and caret, which the text
// format prints; JSON prints bpftrace's helper_error object.
type HelperErrorPrinter interface {
	HelperError(text, helper string, retcode int64, line, col int)
}

// HelperError implements HelperErrorPrinter.
func (p *printer) HelperError(text, helper string, retcode int64, line, col int) {
	p.emit(func(b []byte) []byte {
		if _, ok := p.f.(jsonFormat); !ok {
			return append(b, text...)
		}
		b = append(b, `{"type": "helper_error", "helper": `...)
		b = strconv.AppendQuote(b, helper)
		b = append(b, `, "retcode": `...)
		b = strconv.AppendInt(b, retcode, 10)
		b = append(b, `, "line": `...)
		b = strconv.AppendInt(b, int64(line), 10)
		b = append(b, `, "col": `...)
		b = strconv.AppendInt(b, int64(col), 10)
		return append(b, "}\n"...)
	})
}
