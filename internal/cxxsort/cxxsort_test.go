package cxxsort

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// sortProgram sorts (key, id) pairs by key alone with std::sort, or
// with std::partial_sort(first, last, last) (the heapsort std::sort falls
// back to) when argv[1] is "heap", and prints the ids in the result's
// order.
const sortProgram = `#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>
struct E { unsigned long long key; int id; bool operator<(const E &o) const { return key < o.key; } };
int main(int argc, char **argv) {
	bool heap = argc > 1 && !strcmp(argv[1], "heap");
	int cases;
	if (scanf("%d", &cases) != 1) return 1;
	while (cases--) {
		int n;
		if (scanf("%d", &n) != 1) return 1;
		std::vector<E> v(n);
		for (int i = 0; i < n; i++) { if (scanf("%llu", &v[i].key) != 1) return 1; v[i].id = i; }
		if (heap) std::partial_sort(v.begin(), v.end(), v.end()); else std::sort(v.begin(), v.end());
		for (int i = 0; i < n; i++) printf("%d ", v[i].id);
		printf("\n");
	}
	return 0;
}
`

// TestSortMatchesLibstdcxx checks Sort against g++'s std::sort on
// inputs full of equal keys, where the two only agree if the algorithm is
// the same step for step.
func TestSortMatchesLibstdcxx(t *testing.T) {
	if _, err := exec.LookPath("g++"); err != nil {
		t.Skip("skipping: g++ is not installed")
	}
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "sort.cc"), filepath.Join(dir, "sort")
	if err := os.WriteFile(src, []byte(sortProgram), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("g++", "-O1", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("g++: %v\n%s", err, out)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var inputs [][]uint64
	for n := 0; n <= 70; n++ {
		inputs = append(inputs, randomKeys(rng, n, 1+n/3))
	}
	for _, n := range []int{100, 257, 1000, 4096, 20000, 130000} {
		for _, distinct := range []int{1, 3, n / 10, n} {
			inputs = append(inputs, randomKeys(rng, n, max(distinct, 1)))
		}
		// Sorted, reversed and organ-pipe inputs, with duplicates.
		k := randomKeys(rng, n, n/4+1)
		slices.Sort(k)
		inputs = append(inputs, k, reversed(k), append(slices.Clone(k[:n/2]), reversed(k[n/2:])...))
	}
	for _, mode := range []string{"sort", "heap"} {
		var in bytes.Buffer
		fmt.Fprintln(&in, len(inputs))
		for _, keys := range inputs {
			fmt.Fprint(&in, len(keys))
			for _, k := range keys {
				fmt.Fprint(&in, " ", k)
			}
			fmt.Fprintln(&in)
		}
		cmd := exec.Command(bin, mode)
		cmd.Stdin = &in
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", bin, err)
		}
		lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
		if len(lines) != len(inputs) {
			t.Fatalf("%s: %d results for %d inputs", mode, len(lines), len(inputs))
		}
		for i, keys := range inputs {
			type e struct {
				key uint64
				id  int
			}
			v := make([]e, len(keys))
			for j, k := range keys {
				v[j] = e{k, j}
			}
			less := func(a, b *e) bool { return a.key < b.key }
			if mode == "heap" {
				c := sorter[e]{s: v, less: less}
				c.heapSort(0, len(v))
			} else {
				Sort(v, less)
			}
			var got strings.Builder
			for _, x := range v {
				got.WriteString(strconv.Itoa(x.id) + " ")
			}
			if got.String() != lines[i] {
				t.Errorf("%s of %d keys (%d distinct): order differs from libstdc++", mode, len(keys), len(slices.Compact(slices.Sorted(slices.Values(keys)))))
			}
		}
	}
}

// TestSortSorts checks that Sort and its heapsort sort, for sizes around
// the insertion sort's threshold and with many or few equal elements.
func TestSortSorts(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 0))
	less := func(a, b *int) bool { return *a < *b }
	for _, n := range []int{0, 1, 2, 15, 16, 17, 33, 100, 1000} {
		for _, spread := range []int{1, 3, 1000} {
			s := make([]int, n)
			for i := range s {
				s[i] = rnd.IntN(spread)
			}
			want := slices.Sorted(slices.Values(s))
			Sort(s, less)
			if !slices.Equal(s, want) {
				t.Fatalf("n=%d spread=%d: not sorted", n, spread)
			}
		}
	}
	s := rnd.Perm(300)
	c := sorter[int]{s: s, less: less}
	c.heapSort(0, len(s))
	if !slices.IsSorted(s) {
		t.Fatal("heapSort: not sorted")
	}
}

func randomKeys(rng *rand.Rand, n, distinct int) []uint64 {
	k := make([]uint64, n)
	for i := range k {
		k[i] = uint64(rng.IntN(distinct)) * 16
	}
	return k
}

func reversed(k []uint64) []uint64 {
	r := slices.Clone(k)
	slices.Reverse(r)
	return r
}
