package tracefs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNotFound is wrapped by errors for tracepoints that do not exist.
var ErrNotFound = errors.New("tracepoint not found")

// Kind classifies a field by how its bytes in a trace record are read.
type Kind int

const (
	// KindOther is a field with no better description: raw bytes.
	KindOther Kind = iota
	// KindInteger is a scalar of Size 1, 2, 4 or 8 bytes; Signed applies.
	KindInteger
	// KindPointer is a kernel address of Size bytes (type ends in '*').
	KindPointer
	// KindString is a fixed char array, e.g. char comm[16]: a NUL-padded
	// string of at most Size bytes. bpftrace reads these as strings.
	KindString
	// KindArray is any other fixed array: ArrayLen elements of ElemSize.
	KindArray
	// KindDynString is "__data_loc char[]" (or "__rel_loc char[]"): a u32
	// locating a string stored later in the record; see Field.DataLoc.
	KindDynString
	// KindDynArray is any other __data_loc/__rel_loc field, e.g.
	// "__data_loc u64[]" or "__data_loc cpumask_t".
	KindDynArray
)

var kindNames = [...]string{"other", "integer", "pointer", "string", "array", "dynamic string", "dynamic array"}

func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Field is one field of a tracepoint's record, as described by its format
// file.
type Field struct {
	// Name is the field name, e.g. "filename".
	Name string
	// Type is the C type with the name removed, spelled as the kernel
	// wrote it: "const char *", "int", "char[16]", "__data_loc char[]".
	Type string
	// Decl is the declaration exactly as in the format file, e.g.
	// "char prev_comm[16]"; `bpftrace -lv` prints it verbatim.
	Decl   string
	Offset int // bytes from the start of the record
	Size   int // bytes the field occupies in the record
	Signed bool
	Kind   Kind
	// ElemType is the element type of arrays and __data_loc fields: "char"
	// for both char comm[16] and __data_loc char[] name.
	ElemType string
	// ArrayLen is the element count of KindString and KindArray fields;
	// 0 for a flexible array such as "unsigned long args[]".
	ArrayLen int
	// ElemSize is the size of one element of KindString and KindArray
	// fields, 0 when the kernel gives no way to tell.
	ElemSize int
	// RelLoc marks __rel_loc fields, whose offset counts from the end of
	// the field instead of the start of the record.
	RelLoc bool
}

// DataLoc decodes the u32 value of a __data_loc or __rel_loc field into
// the payload's offset from the start of the record and its length in
// bytes. The kernel packs the offset in the low 16 bits and the length in
// the high 16 bits; for a dynamic string the length includes the NUL.
func (f *Field) DataLoc(v uint32) (offset, length int) {
	offset, length = int(v&0xffff), int(v>>16)
	if f.RelLoc {
		offset += f.Offset + f.Size
	}
	return offset, length
}

// Format is the parsed events/CATEGORY/NAME/format file of a tracepoint.
type Format struct {
	Category, Name string
	// ID is the trace event ID, the perf_event_attr config for
	// PERF_TYPE_TRACEPOINT.
	ID uint64
	// Common holds the common_* fields every record starts with; bpftrace
	// does not expose them as args.
	Common []Field
	// Fields holds the tracepoint's own fields, bpftrace's args, in
	// record order.
	Fields []Field
	// PrintFmt is the "print fmt:" line's text, unparsed.
	PrintFmt string
}

// Field returns the named field, looking at Fields before Common.
func (f *Format) Field(name string) (*Field, bool) {
	for _, fs := range [][]Field{f.Fields, f.Common} {
		for i := range fs {
			if fs[i].Name == name {
				return &fs[i], true
			}
		}
	}
	return nil, false
}

// ReadFormat reads and parses the format of tracepoint category:name.
// A missing tracepoint gives an error wrapping ErrNotFound.
func ReadFormat(category, name string) (*Format, error) {
	dir, err := eventsDir()
	if err != nil {
		return nil, err
	}
	return readFormat(dir, category, name)
}

func readFormat(events, category, name string) (*Format, error) {
	tp := category + ":" + name
	// The names come from user scripts; keep them from walking out of
	// events/ or into a control file.
	if !validComponent(category) || !validComponent(name) {
		return nil, fmt.Errorf("invalid tracepoint name %q", tp)
	}
	dir := filepath.Join(events, category, name)
	data, err := os.ReadFile(filepath.Join(dir, "format"))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, tp)
	}
	if err != nil {
		return nil, fmt.Errorf("tracepoint %s: %w", tp, err)
	}
	f, err := ParseFormat(data)
	if err != nil {
		return nil, fmt.Errorf("tracepoint %s: %w", tp, err)
	}
	f.Category, f.Name = category, name
	if f.ID == 0 {
		// Every kernel we know prints "ID:" in the format file; the id file
		// is the documented source, so fall back to it rather than fail.
		id, err := os.ReadFile(filepath.Join(dir, "id"))
		if err != nil {
			return nil, fmt.Errorf("tracepoint %s: %w", tp, err)
		}
		if f.ID, err = strconv.ParseUint(strings.TrimSpace(string(id)), 10, 64); err != nil {
			return nil, fmt.Errorf("tracepoint %s: bad id file: %w", tp, err)
		}
	}
	return f, nil
}

func validComponent(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\x00")
}

// ParseFormat parses the text of a tracepoint format file. The input is
// treated as untrusted: malformed text gives an error, never a panic.
// Category and Name of the result are left empty; Name is taken from the
// file's "name:" line when present.
func ParseFormat(data []byte) (*Format, error) {
	f := &Format{}
	sawFormat := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20) // print fmt lines of a few KiB are common
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		trimmed := strings.TrimLeft(line, " \t")
		switch {
		case strings.HasPrefix(trimmed, "field:"):
			if !sawFormat {
				return nil, fmt.Errorf("line %d: field before \"format:\"", lineNo)
			}
			fld, err := parseField(trimmed)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", lineNo, err)
			}
			if strings.HasPrefix(fld.Name, "common_") {
				f.Common = append(f.Common, fld)
			} else {
				f.Fields = append(f.Fields, fld)
			}
		case strings.HasPrefix(line, "name:"):
			f.Name = strings.TrimSpace(line[len("name:"):])
		case strings.HasPrefix(line, "ID:"):
			id, err := strconv.ParseUint(strings.TrimSpace(line[len("ID:"):]), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: bad ID: %w", lineNo, err)
			}
			f.ID = id
		case strings.TrimSpace(line) == "format:":
			sawFormat = true
		case strings.HasPrefix(line, "print fmt:"):
			f.PrintFmt = strings.TrimSpace(line[len("print fmt:"):])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading format: %w", err)
	}
	if !sawFormat {
		return nil, errors.New(`not a tracepoint format: no "format:" line`)
	}
	return f, nil
}

// parseField parses one "field:DECL;\toffset:N;\tsize:N;\tsigned:N;" line.
func parseField(line string) (Field, error) {
	var fld Field
	var haveOffset, haveSize bool
	for i, part := range strings.Split(line, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		key, val, ok := strings.Cut(part, ":")
		if !ok {
			return fld, fmt.Errorf("malformed field attribute %q", part)
		}
		var err error
		switch {
		case i == 0 && key == "field":
			// Keep the text untrimmed: bpftrace -lv prints it as is.
			_, fld.Decl, _ = strings.Cut(strings.SplitN(line, ";", 2)[0], ":")
		case key == "offset":
			fld.Offset, err = parseSmallUint(val)
			haveOffset = true
		case key == "size":
			fld.Size, err = parseSmallUint(val)
			haveSize = true
		case key == "signed":
			var s int
			s, err = parseSmallUint(val)
			fld.Signed = s != 0
		}
		// Unknown attributes are skipped: the kernel may add more.
		if err != nil {
			return fld, fmt.Errorf("field %q: bad %s: %w", fld.Decl, key, err)
		}
	}
	if strings.TrimSpace(fld.Decl) == "" {
		return fld, errors.New("field with no declaration")
	}
	if !haveOffset || !haveSize {
		return fld, fmt.Errorf("field %q: missing offset or size", fld.Decl)
	}
	if err := classify(&fld); err != nil {
		return fld, fmt.Errorf("field %q: %w", fld.Decl, err)
	}
	return fld, nil
}

// parseSmallUint bounds values so that offset+size arithmetic by callers
// cannot overflow, whatever the input.
func parseSmallUint(s string) (int, error) {
	v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 31)
	return int(v), err
}

// classify splits fld.Decl into name and type and works out the Kind.
func classify(fld *Field) error {
	decl := strings.TrimSpace(fld.Decl)
	base, arr, isArray := decl, "", false
	if strings.HasSuffix(decl, "]") {
		lb := strings.LastIndexByte(decl, '[')
		if lb < 0 {
			return errors.New("unbalanced ']'")
		}
		base, arr, isArray = strings.TrimRight(decl[:lb], " \t"), decl[lb+1:len(decl)-1], true
	}
	n := len(base)
	for n > 0 && isIdentByte(base[n-1]) {
		n--
	}
	fld.Name = base[n:]
	base = strings.TrimRight(base[:n], " \t")
	if fld.Name == "" || base == "" || isDigit(fld.Name[0]) {
		return errors.New("cannot split declaration into type and name")
	}

	if loc, ok := dataLocPrefix(base); ok {
		if isArray {
			return errors.New("array of __data_loc")
		}
		// The u32 is the only encoding the kernel has ever used; anything
		// else would make DataLoc silently wrong.
		if fld.Size != 4 {
			return fmt.Errorf("%s field of size %d, want 4", loc, fld.Size)
		}
		fld.RelLoc = loc == "__rel_loc"
		fld.Type = base
		elem := strings.TrimSpace(base[len(loc):])
		elem = strings.TrimSpace(strings.TrimSuffix(elem, "[]"))
		fld.ElemType = elem
		fld.Kind = KindDynArray
		if isChar(elem) {
			fld.Kind = KindDynString
		}
		return nil
	}

	if isArray {
		fld.Type = base + "[" + arr + "]"
		fld.ElemType = base
		elemSize := cTypeSize(base)
		switch {
		case arr == "":
			// Flexible array member: the data runs to the end of the record.
			fld.ArrayLen, fld.ElemSize = 0, elemSize
		default:
			n, err := strconv.ParseUint(strings.TrimSpace(arr), 10, 31)
			switch {
			case err == nil && n > 0:
				if fld.Size%int(n) != 0 {
					return fmt.Errorf("size %d is not a multiple of array length %d", fld.Size, n)
				}
				fld.ArrayLen, fld.ElemSize = int(n), fld.Size/int(n)
			case err == nil:
				fld.ArrayLen, fld.ElemSize = 0, elemSize
			case elemSize > 0 && fld.Size%elemSize == 0:
				// Older kernels print the length unevaluated, e.g.
				// [TASK_COMM_LEN]; the size still tells the count.
				fld.ArrayLen, fld.ElemSize = fld.Size/elemSize, elemSize
			default:
				return fmt.Errorf("unsupported array length %q", arr)
			}
		}
		fld.Kind = KindArray
		if isChar(base) {
			fld.Kind = KindString
		}
		return nil
	}

	fld.Type = base
	switch {
	case strings.HasSuffix(base, "*"):
		fld.Kind = KindPointer
	case fld.Size == 1 || fld.Size == 2 || fld.Size == 4 || fld.Size == 8:
		fld.Kind = KindInteger
	default:
		fld.Kind = KindOther
	}
	return nil
}

func dataLocPrefix(base string) (string, bool) {
	for _, p := range []string{"__data_loc", "__rel_loc"} {
		if base == p || strings.HasPrefix(base, p+" ") || strings.HasPrefix(base, p+"\t") {
			return p, true
		}
	}
	return "", false
}

// isChar matches bpftrace, which turns only plain char arrays into
// strings; unsigned char and u8 arrays (addresses, hashes) stay arrays.
func isChar(t string) bool {
	return t == "char" || t == "const char"
}

func isIdentByte(c byte) bool {
	return c == '_' || isDigit(c) || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// cTypeSize knows the element types seen in kernel array fields, for the
// cases where the format file does not spell out the length.
func cTypeSize(t string) int {
	t = strings.TrimPrefix(t, "const ")
	switch t {
	case "char", "signed char", "unsigned char", "u8", "s8", "__u8", "__s8", "bool":
		return 1
	case "short", "unsigned short", "u16", "s16", "__u16", "__s16", "__le16", "__be16":
		return 2
	case "int", "unsigned int", "unsigned", "u32", "s32", "__u32", "__s32", "__le32", "__be32", "pid_t":
		return 4
	case "u64", "s64", "__u64", "__s64", "long long", "unsigned long long", "__le64", "__be64":
		return 8
	case "long", "unsigned long", "size_t", "ssize_t":
		return strconv.IntSize / 8 // C long matches Go int on Linux (LP64 and ILP32)
	}
	if strings.HasSuffix(t, "*") {
		return strconv.IntSize / 8
	}
	return 0
}
