package output

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/tracebroker/tracebroker/broker/program"
)

// Spec is one conversion bpftrace 0.17 recognises in a printf format.
type Spec struct {
	// Start and End delimit the conversion in the format, '%' included.
	Start, End int
	// Verb is the length modifier and conversion, e.g. "d", "llu", "s".
	Verb string
}

// printfVerbs are the conversions bpftrace 0.17 accepts (its
// printf_format_types table): s, r, rx, rh, c and every length modifier of
// d, u, o, x, X and p. Note that %i, %e, %f, %ls, and any flag but '-'
// and '0' are missing, so bpftrace does not see them as conversions.
var printfVerbs = func() map[string]bool {
	v := map[string]bool{"s": true, "r": true, "rx": true, "rh": true, "c": true}
	for _, l := range []string{"", "hh", "h", "l", "ll", "j", "z", "t"} {
		for _, c := range []string{"d", "u", "o", "x", "X", "p"} {
			v[l+c] = true
		}
	}
	return v
}()

// ParseFormat finds the conversions of a printf format the way bpftrace
// 0.17 does, with the regex `%-?[0-9]*(\.[0-9]+)?(verbs)`: every match
// takes one argument, "%%" is not special (so "%%d" holds a %d), and a
// '%' that does not match is plain text. The compiler should check
// arguments against these.
func ParseFormat(format string) []Spec {
	var specs []Spec
	for i := 0; i < len(format); {
		if format[i] != '%' {
			i++
			continue
		}
		if end, verb := matchSpec(format, i); end > 0 {
			specs = append(specs, Spec{Start: i, End: end, Verb: verb})
			i = end
			continue
		}
		i++
	}
	return specs
}

// matchSpec matches the bpftrace conversion regex at format[i] == '%'.
func matchSpec(format string, i int) (end int, verb string) {
	j := i + 1
	if j < len(format) && format[j] == '-' {
		j++
	}
	for j < len(format) && isDigit(format[j]) {
		j++
	}
	if j+1 < len(format) && format[j] == '.' && isDigit(format[j+1]) {
		j += 2
		for j < len(format) && isDigit(format[j]) {
			j++
		}
	}
	// The longest verb wins: bpftrace prints "%rx" as hex, not as %r
	// followed by an "x".
	for n := 3; n >= 1; n-- {
		if j+n <= len(format) && printfVerbs[format[j:j+n]] {
			return j + n, format[j : j+n]
		}
	}
	return 0, ""
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// Sprintf formats a printf() call as bpftrace 0.17 does. bpftrace cuts the
// format after each conversion and hands every piece, with the literal text
// before it, to the C library's snprintf with one argument; the text after
// the last conversion is copied verbatim. So:
//   - "%%" becomes "%" only in the text before a conversion: "%d%%" prints
//     "5%%", "%%%d" prints "%5", and a format without arguments is printed
//     as is ("100%%" stays "100%%");
//   - integers are passed as 64-bit values, so %d, %u, %x, %o and %c print
//     the low 32 bits (C's int), %hd the low 16 and %ld all 64;
//   - a piece's output ends at its first NUL byte, so %c of 0 prints
//     nothing.
//
// Text the C library would read a second argument for (a stray "%i" or
// "%+d" before a real conversion) makes bpftrace print garbage; Sprintf
// prints such conversions as if the argument were 0. It never panics.
func Sprintf(format string, args []program.Value) string {
	return string(NewFormat(format).Append(nil, args))
}

// Format is a printf format parsed once, for a format printed at every
// event: ParseFormat was a third of what an event cost.
type Format struct {
	format string
	specs  []Spec
}

// NewFormat parses format as Sprintf does.
func NewFormat(format string) *Format {
	return &Format{format: format, specs: ParseFormat(format)}
}

// Append appends what Sprintf(format, args) returns to out.
func (f *Format) Append(out []byte, args []program.Value) []byte {
	if len(args) == 0 || len(f.specs) == 0 {
		return append(out, f.format...)
	}
	last := 0
	for k, sp := range f.specs {
		if k >= len(args) {
			break
		}
		start := len(out)
		out = appendPiece(out, f.format[last:sp.End], sp, args[k])
		if i := bytes.IndexByte(out[start:], 0); i >= 0 {
			out = out[:start+i]
		}
		last = sp.End
	}
	return append(out, f.format[last:]...)
}

// appendPiece runs one piece through the C formatter with its argument.
func appendPiece(out []byte, piece string, sp Spec, arg program.Value) []byte {
	if sp.Verb == "r" || sp.Verb == "rx" || sp.Verb == "rh" {
		// bpftrace renders buffers itself and prints them with %s; a width
		// or precision ("%5r") leaves an unknown conversion, which the C
		// library prints literally.
		if sp.End-sp.Start == 1+len(sp.Verb) {
			raw := []byte(argString(arg))
			if arg.Type.Kind == program.Buffer {
				raw = arg.BufferBytes()
			}
			text := program.Escape(raw, sp.Verb == "rx")
			if sp.Verb == "rh" {
				text = hexBytes(raw)
			}
			return appendC(out, piece[:len(piece)-len(sp.Verb)]+"s", []program.Value{strValue(text)})
		}
	}
	one := [1]program.Value{arg}
	return appendC(out, piece, one[:])
}

// hexBytes is %rh: each byte as two hex digits, space-separated.
func hexBytes(b []byte) string {
	var s strings.Builder
	for i, c := range b {
		if i > 0 {
			s.WriteByte(' ')
		}
		const hex = "0123456789abcdef"
		s.WriteByte(hex[c>>4])
		s.WriteByte(hex[c&15])
	}
	return s.String()
}

func strValue(s string) program.Value {
	return program.Value{Type: program.Type{Kind: program.String, Size: len(s) + 1}, Str: s}
}

// argString is what %s prints: the string, or for a non-string argument
// (which bpftrace's compiler rejects) its text form rather than the
// pointer dereference C would attempt.
func argString(v program.Value) string {
	switch v.Type.Kind {
	case program.String:
		return v.Str
	case program.KStack, program.UStack:
		return v.StackText("        ")
	case program.Tuple:
		// Only print(TUPLE) gets here: it prints the tuple as a map's
		// value is printed, "(1, { .m = 2 })".
		return v.ValueString()
	}
	return v.String()
}

// argInt is what an integer conversion reads: the 64-bit value, or 0 for
// a string or tuple (a pointer in C).
func argInt(v program.Value) uint64 {
	if v.Type.Kind == program.Int {
		return v.Int
	}
	return 0
}

// appendC appends to out what a glibc snprintf prints for integer,
// character and string arguments. Conversions past the given arguments
// read 0.
func appendC(out []byte, f string, args []program.Value) []byte {
	k := 0
	next := func() program.Value {
		if k >= len(args) {
			return program.Value{Type: program.Type{Kind: program.Int, Size: 8}}
		}
		k++
		return args[k-1]
	}
	for i := 0; i < len(f); {
		c := f[i]
		if c != '%' {
			out = append(out, c)
			i++
			continue
		}
		start := i
		i++
		var cs convSpec
	flags:
		for ; i < len(f); i++ {
			switch f[i] {
			case '-':
				cs.minus = true
			case '+':
				cs.plus = true
			case ' ':
				cs.space = true
			case '#':
				cs.alt = true
			case '0':
				cs.zero = true
			case '\'', 'I':
			default:
				break flags
			}
		}
		if i < len(f) && f[i] == '*' {
			w := int64(int32(argInt(next())))
			if w < 0 {
				cs.minus = true
				w = -w
			}
			cs.width = int(min(w, maxPad))
			i++
		} else {
			cs.width, i = atoi(f, i)
		}
		if i < len(f) && f[i] == '.' {
			i++
			cs.hasPrec = true
			if i < len(f) && f[i] == '*' {
				p := int64(int32(argInt(next())))
				if p < 0 {
					cs.hasPrec = false
				} else {
					cs.prec = int(min(p, maxPad))
				}
				i++
			} else {
				cs.prec, i = atoi(f, i)
			}
		}
		lenStart := i
		for i < len(f) && strings.IndexByte("hlLqjzZt", f[i]) >= 0 {
			i++
		}
		cs.length = f[lenStart:i]
		if i >= len(f) {
			// A lone '%' at the end: glibc prints it as is.
			out = append(out, f[start:]...)
			break
		}
		conv := f[i]
		i++
		switch conv {
		case '%':
			out = append(out, '%')
		case 'd', 'i':
			out = cs.signed(out, argInt(next()))
		case 'u', 'o', 'x', 'X':
			out = cs.unsigned(out, argInt(next()), conv)
		case 'c':
			out = cs.pad(out, string([]byte{byte(argInt(next()))}), false)
		case 's':
			s := argString(next())
			if cs.hasPrec && cs.prec < len(s) {
				s = s[:cs.prec]
			}
			out = cs.pad(out, s, false)
		case 'p':
			out = cs.pointer(out, argInt(next()))
		case 'n':
			next()
		case 'm':
			out = cs.pad(out, "Success", false)
		case 'e', 'E', 'f', 'F', 'g', 'G', 'a', 'A':
			// Doubles travel in other registers than integers, so these
			// take no argument from the list; what C reads is undefined.
			out = cs.pad(out, cFloatZero(conv, cs), cs.zero && !cs.minus)
		default:
			out = append(out, f[start:i]...)
		}
	}
	return out
}

// maxPad bounds widths and precisions, so that a hostile format cannot
// make us allocate gigabytes; bpftrace formats into a buffer it grows to
// fit, so real widths up to this print as in C.
const maxPad = 1 << 20

func atoi(f string, i int) (int, int) {
	n := 0
	for i < len(f) && isDigit(f[i]) {
		if n < maxPad {
			n = n*10 + int(f[i]-'0')
		}
		i++
	}
	return min(n, maxPad), i
}

type convSpec struct {
	minus, plus, space, alt, zero bool
	width                         int
	hasPrec                       bool
	prec                          int
	length                        string
}

// bits is the width the length modifier reads the argument at.
func (cs convSpec) bits() uint {
	switch cs.length {
	case "hh":
		return 8
	case "h":
		return 16
	case "":
		return 32
	}
	return 64
}

func (cs convSpec) signed(out []byte, v uint64) []byte {
	n := cs.bits()
	x := int64(v<<(64-n)) >> (64 - n)
	sign := ""
	switch {
	case x < 0:
		sign = "-"
	case cs.plus:
		sign = "+"
	case cs.space:
		sign = " "
	}
	mag := uint64(x)
	if x < 0 {
		mag = -mag
	}
	var buf [24]byte
	return cs.number(out, sign, "", strconv.AppendUint(buf[:0], mag, 10), mag == 0, false)
}

func (cs convSpec) unsigned(out []byte, v uint64, conv byte) []byte {
	n := cs.bits()
	x := v << (64 - n) >> (64 - n)
	var buf [24]byte
	var digits []byte
	prefix := ""
	switch conv {
	case 'o':
		digits = strconv.AppendUint(buf[:0], x, 8)
		if cs.alt {
			return cs.number(out, "", "", digits, x == 0, true)
		}
	case 'x', 'X':
		digits = strconv.AppendUint(buf[:0], x, 16)
		if conv == 'X' {
			for i, c := range digits {
				if c >= 'a' {
					digits[i] = c - 'a' + 'A'
				}
			}
		}
		if cs.alt && x != 0 {
			prefix = "0x"
			if conv == 'X' {
				prefix = "0X"
			}
		}
	default:
		digits = strconv.AppendUint(buf[:0], x, 10)
	}
	return cs.number(out, "", prefix, digits, x == 0, false)
}

// number lays out sign, prefix and digits with C's precision and width
// rules: precision is a minimum digit count (0 prints no digit for 0) and
// disables the '0' flag, which pads between prefix and digits. altOctal
// is %#o: the first digit must be a 0, even for 0 at precision 0.
func (cs convSpec) number(out []byte, sign, prefix string, digits []byte, zero, altOctal bool) []byte {
	lead := 0 // zeros before the digits
	if cs.hasPrec {
		if cs.prec == 0 && zero {
			digits = nil
		}
		if len(digits) < cs.prec {
			lead = cs.prec - len(digits)
		}
	}
	if altOctal && lead == 0 && (len(digits) == 0 || digits[0] != '0') {
		lead = 1
	}
	body := len(sign) + len(prefix) + lead + len(digits)
	fill := cs.width - body
	switch {
	case fill <= 0:
		out = append(out, sign...)
		out = append(out, prefix...)
	case cs.minus:
		out = append(out, sign...)
		out = append(out, prefix...)
		out = appendRepeat(out, '0', lead)
		out = append(out, digits...)
		return appendRepeat(out, ' ', fill)
	case cs.zero && !cs.hasPrec:
		out = append(out, sign...)
		out = append(out, prefix...)
		out = appendRepeat(out, '0', fill)
	default:
		out = appendRepeat(out, ' ', fill)
		out = append(out, sign...)
		out = append(out, prefix...)
	}
	out = appendRepeat(out, '0', lead)
	return append(out, digits...)
}

// pointer prints like glibc: "(nil)" for 0, padded with spaces only;
// otherwise %#lx, so the '0' flag and precision apply after the "0x".
func (cs convSpec) pointer(out []byte, v uint64) []byte {
	if v == 0 {
		return cs.pad(out, "(nil)", false)
	}
	sign := ""
	switch {
	case cs.plus:
		sign = "+"
	case cs.space:
		sign = " "
	}
	var buf [24]byte
	return cs.number(out, sign, "0x", strconv.AppendUint(buf[:0], v, 16), false, false)
}

// pad applies the width to an already formatted field; glibc pads %s and
// %c with spaces even under the '0' flag.
func (cs convSpec) pad(out []byte, s string, zeros bool) []byte {
	fill := cs.width - len(s)
	switch {
	case fill <= 0:
		return append(out, s...)
	case cs.minus:
		out = append(out, s...)
		return appendRepeat(out, ' ', fill)
	case zeros:
		out = appendRepeat(out, '0', fill)
		return append(out, s...)
	}
	out = appendRepeat(out, ' ', fill)
	return append(out, s...)
}

func cFloatZero(conv byte, cs convSpec) string {
	prec := 6
	if cs.hasPrec {
		prec = cs.prec
	}
	var s string
	switch conv {
	case 'e', 'E':
		s = strconv.FormatFloat(0, 'e', prec, 64)
	case 'f', 'F':
		s = strconv.FormatFloat(0, 'f', prec, 64)
	case 'a', 'A':
		s = "0x0p+0"
	default:
		s = "0"
	}
	if conv >= 'A' && conv <= 'Z' {
		s = strings.ToUpper(s)
	}
	return s
}

func appendRepeat(b []byte, c byte, n int) []byte {
	for ; n > 0; n-- {
		b = append(b, c)
	}
	return b
}
