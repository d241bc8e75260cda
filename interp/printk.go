package interp

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

var errPrintkFormat = errors.New("unsupported trace_printk format")

// formatPrintk implements the subset of printf the kernel accepts in
// bpf_trace_printk (bpf_bprintf_prepare): flags "0+- ", a width, an
// optional l or ll, and d i u x X c s p px pK; at most three arguments.
// Anything else is -EINVAL, as in the kernel.
func formatPrintk(c Call, f []byte, args [3]uint64) (string, error) {
	var out strings.Builder
	next := 0
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			out.WriteByte(f[i])
			continue
		}
		i++
		if i < len(f) && f[i] == '%' {
			out.WriteByte('%')
			continue
		}
		if next == len(args) {
			return "", errPrintkFormat
		}
		arg := args[next]
		next++
		spec := []byte{'%'}
		for i < len(f) && bytes.IndexByte([]byte("0+- "), f[i]) >= 0 {
			spec = append(spec, f[i])
			i++
		}
		for i < len(f) && f[i] >= '0' && f[i] <= '9' {
			spec = append(spec, f[i])
			i++
		}
		long := 0
		for i < len(f) && f[i] == 'l' && long < 2 {
			long++
			i++
		}
		if i >= len(f) {
			return "", errPrintkFormat
		}
		switch verb := f[i]; verb {
		case 'd', 'i':
			v := int64(int32(arg))
			if long > 0 {
				v = int64(arg)
			}
			fmt.Fprintf(&out, string(append(spec, 'd')), v)
		case 'u', 'x', 'X':
			v := uint64(uint32(arg))
			if long > 0 {
				v = arg
			}
			if verb == 'u' {
				verb = 'd'
			}
			fmt.Fprintf(&out, string(append(spec, verb)), v)
		case 'c':
			if long > 0 {
				return "", errPrintkFormat
			}
			fmt.Fprintf(&out, string(append(spec, 'c')), rune(byte(arg)))
		case 's':
			if long > 0 {
				return "", errPrintkFormat
			}
			s := c.readable(arg, 1024)
			if n := bytes.IndexByte(s, 0); n >= 0 {
				s = s[:n]
			}
			fmt.Fprintf(&out, string(append(spec, 's')), s)
		case 'p':
			if long > 0 {
				return "", errPrintkFormat
			}
			if i+1 < len(f) && (f[i+1] == 'x' || f[i+1] == 'K') {
				i++
			} else if i+1 < len(f) && isAlnum(f[i+1]) {
				return "", errPrintkFormat // %pI4, %pks and friends
			}
			fmt.Fprintf(&out, "%016x", arg)
		default:
			return "", errPrintkFormat
		}
	}
	return out.String(), nil
}

func isAlnum(b byte) bool {
	return b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
}
