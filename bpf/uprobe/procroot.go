package uprobe

import (
	"os"
	"strconv"
)

// ProcessRoot is where this process reaches the files process pid sees:
// /proc/PID/root, and whether that is our own "/" (the same mount
// namespace and the same root), so that the process's paths are ours.
// A process we may not inspect (ptrace's rights, which the kernel checks
// on these links) is taken as not sharing our root: its files are then
// reached through /proc/PID/root, whose open the kernel refuses alike.
func ProcessRoot(pid int) (root string, same bool) {
	dir := "/proc/" + strconv.Itoa(pid)
	root = dir + "/root"
	a, err := os.Stat(root)
	if err != nil {
		return root, false
	}
	b, err := os.Stat("/")
	if err != nil || !os.SameFile(a, b) {
		return root, false
	}
	mine, err1 := os.Readlink("/proc/self/ns/mnt")
	theirs, err2 := os.Readlink(dir + "/ns/mnt")
	return root, err1 == nil && err2 == nil && mine == theirs
}
