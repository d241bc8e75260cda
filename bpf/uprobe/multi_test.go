package uprobe

import (
	"errors"
	"io"
	"slices"
	"testing"
)

type closer struct{ closed *int }

func (c closer) Close() error { *c.closed++; return nil }

// TestFirstFailing: the search finds the first function that cannot take
// the link, with its own error, and closes every link it made on the
// way; it gives up (-1) where no function fails alone.
func TestFirstFailing(t *testing.T) {
	errBad := errors.New("bad instruction")
	for _, tt := range []struct {
		name string
		n    int
		bad  []int // the functions that fail, alone or among others
		pair bool  // only all of them together fail
		want int
	}{
		{"the only one", 1, []int{0}, false, 0},
		{"the first", 1710, []int{0}, false, 0},
		{"the last", 1710, []int{1709}, false, 1709},
		{"in the middle", 1017, []int{500}, false, 500},
		{"the first of several", 1710, []int{1200, 333, 1500}, false, 333},
		{"two", 2, []int{1}, false, 1},
		{"none alone", 64, []int{3, 40}, true, -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			offsets, cookies := make([]uint64, tt.n), make([]uint64, tt.n)
			for i := range offsets {
				offsets[i], cookies[i] = uint64(0x1000+i), uint64(i)
			}
			tries, made, closed := 0, 0, 0
			attach := func(offs, cks []uint64) (io.Closer, error) {
				tries++
				if len(offs) != len(cks) {
					t.Fatalf("%d offsets, %d cookies", len(offs), len(cks))
				}
				in := 0
				for _, b := range tt.bad {
					if slices.Contains(offs, uint64(0x1000+b)) {
						in++
					}
				}
				if in > 0 && (!tt.pair || in == len(tt.bad)) {
					return nil, errBad
				}
				made++
				return closer{&closed}, nil
			}
			i, err := firstFailing(offsets, cookies, attach)
			if i != tt.want || (i >= 0) != errors.Is(err, errBad) {
				t.Errorf("firstFailing = %d, %v; want %d", i, err, tt.want)
			}
			if made != closed {
				t.Errorf("%d links made, %d closed", made, closed)
			}
			if limit := 2 + 2*bitsLen(tt.n); tries > limit {
				t.Errorf("%d attaches for %d functions, more than %d", tries, tt.n, limit)
			}
		})
	}
}

func bitsLen(n int) int {
	b := 0
	for ; n > 0; n >>= 1 {
		b++
	}
	return b
}

// TestHaveMultiEnv: NoMultiEnv=1 turns the links off on any kernel.
func TestHaveMultiEnv(t *testing.T) {
	t.Setenv(NoMultiEnv, "1")
	if HaveMulti() {
		t.Errorf("%s=1: HaveMulti() = true", NoMultiEnv)
	}
}
