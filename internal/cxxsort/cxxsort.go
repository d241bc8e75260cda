// Package cxxsort sorts as libstdc++'s std::sort does, step for step, so
// that elements that compare equal end up in the order they have in a C++
// program: std::sort is not stable, and which of several equal elements
// comes first depends on the algorithm and the whole input.
//
// Two parts of bpftrace 0.17 depend on that order. bcc 0.26 sorts both its
// kernel and its user symbol tables with std::sort on the address alone,
// so among symbols at the same address (aliases such as __getpid and
// getpid, or __x64_sys_getpid and __ia32_sys_getpid) the one it reports is
// wherever std::sort happens to leave it: not the first nor the last of
// the input, and different for a different input size (internal/symbols).
// bpftrace sorts hist, lhist, avg and stats entries with std::sort by
// value starting from an order that can be rebuilt (its std::map, by key
// bytes), so replaying the algorithm reproduces its order of ties too
// (broker/output). A stable or any other sort gives other results; only
// the same algorithm on the same input reproduces bpftrace's. The tests
// check it against g++.
package cxxsort

import "math/bits"

// Sort sorts s in place with the algorithm of libstdc++'s std::sort (GCC
// 12, which built Debian's bpftrace 0.17): introsort with median-of-three
// pivots down to runs of 16, a heapsort past a depth of 2*log2(n), then a
// final insertion sort. less reports whether *a orders before *b; it is
// given pointers into s (or to the element being moved) so that large
// elements are not copied for each comparison.
func Sort[T any](s []T, less func(a, b *T) bool) {
	if len(s) < 2 {
		return
	}
	c := sorter[T]{s: s, less: less}
	c.introsortLoop(0, len(s), 2*(bits.Len(uint(len(s)))-1))
	c.finalInsertionSort(0, len(s))
}

// threshold is libstdc++'s _S_threshold.
const threshold = 16

type sorter[T any] struct {
	s    []T
	less func(a, b *T) bool
	v    T // the element being moved, here so that &v does not escape per call
}

func (c *sorter[T]) lt(i, j int) bool { return c.less(&c.s[i], &c.s[j]) }

// introsortLoop is std::__introsort_loop.
func (c *sorter[T]) introsortLoop(first, last, depth int) {
	for last-first > threshold {
		if depth == 0 {
			c.heapSort(first, last) // std::__partial_sort(first, last, last)
			return
		}
		depth--
		cut := c.partitionPivot(first, last)
		c.introsortLoop(cut, last, depth)
		last = cut
	}
}

// partitionPivot is std::__unguarded_partition_pivot.
func (c *sorter[T]) partitionPivot(first, last int) int {
	mid := first + (last-first)/2
	c.moveMedianToFirst(first, first+1, mid, last-1)
	return c.unguardedPartition(first+1, last, first)
}

// moveMedianToFirst is std::__move_median_to_first.
func (c *sorter[T]) moveMedianToFirst(result, a, b, m int) {
	s := c.s
	switch {
	case c.lt(a, b):
		switch {
		case c.lt(b, m):
			s[result], s[b] = s[b], s[result]
		case c.lt(a, m):
			s[result], s[m] = s[m], s[result]
		default:
			s[result], s[a] = s[a], s[result]
		}
	case c.lt(a, m):
		s[result], s[a] = s[a], s[result]
	case c.lt(b, m):
		s[result], s[m] = s[m], s[result]
	default:
		s[result], s[b] = s[b], s[result]
	}
}

// unguardedPartition is std::__unguarded_partition.
func (c *sorter[T]) unguardedPartition(first, last, pivot int) int {
	s := c.s
	for {
		for c.lt(first, pivot) {
			first++
		}
		last--
		for c.lt(pivot, last) {
			last--
		}
		if first >= last {
			return first
		}
		s[first], s[last] = s[last], s[first]
		first++
	}
}

// finalInsertionSort is std::__final_insertion_sort.
func (c *sorter[T]) finalInsertionSort(first, last int) {
	if last-first > threshold {
		c.insertionSort(first, first+threshold)
		for i := first + threshold; i < last; i++ {
			c.unguardedLinearInsert(i)
		}
		return
	}
	c.insertionSort(first, last)
}

// insertionSort is std::__insertion_sort.
func (c *sorter[T]) insertionSort(first, last int) {
	s := c.s
	for i := first + 1; i < last; i++ {
		if c.lt(i, first) {
			c.v = s[i]
			copy(s[first+1:i+1], s[first:i])
			s[first] = c.v
		} else {
			c.unguardedLinearInsert(i)
		}
	}
}

// unguardedLinearInsert is std::__unguarded_linear_insert. The partitions
// guarantee an element no greater than s[i] before it, so the scan needs
// no bound; the check on j only keeps a broken invariant from indexing
// out of range.
func (c *sorter[T]) unguardedLinearInsert(i int) {
	s := c.s
	c.v = s[i]
	j := i - 1
	for j >= 0 && c.less(&c.v, &s[j]) {
		s[j+1] = s[j]
		j--
	}
	s[j+1] = c.v
}

// heapSort is std::__partial_sort(first, last, last): std::__make_heap
// then std::__sort_heap, with libstdc++'s hole-moving __adjust_heap.
func (c *sorter[T]) heapSort(first, last int) {
	n := last - first
	if n < 2 {
		return
	}
	for parent := (n - 2) / 2; ; parent-- {
		c.v = c.s[first+parent]
		c.adjustHeap(first, parent, n)
		if parent == 0 {
			break
		}
	}
	for last-first > 1 {
		last--
		c.v = c.s[last]
		c.s[last] = c.s[first]
		c.adjustHeap(first, 0, last-first)
	}
}

// adjustHeap is std::__adjust_heap followed by std::__push_heap, moving
// c.v into the hole.
func (c *sorter[T]) adjustHeap(first, hole, n int) {
	s := c.s[first:]
	top := hole
	child := hole
	for child < (n-1)/2 {
		child = 2 * (child + 1)
		if c.less(&s[child], &s[child-1]) {
			child--
		}
		s[hole] = s[child]
		hole = child
	}
	if n&1 == 0 && child == (n-2)/2 {
		child = 2 * (child + 1)
		s[hole] = s[child-1]
		hole = child - 1
	}
	parent := (hole - 1) / 2
	for hole > top && c.less(&s[parent], &c.v) {
		s[hole] = s[parent]
		hole = parent
		parent = (hole - 1) / 2
	}
	s[hole] = c.v
}
