package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// flavours are the kernels of the matrix, each the newest package apt
// offers that matches: Debian's generic -amd64 flavour (-cloud-amd64 has
// no 9p), unsigned (the same kernel as the signed one, without the shim
// wrapping).
var flavours = map[string]*regexp.Regexp{
	"6.1":  regexp.MustCompile(`^linux-image-6\.1\.0-(\d+)-amd64-unsigned$`),
	"6.12": regexp.MustCompile(`^linux-image-6\.12\.(\d+)\+deb\d+-amd64-unsigned$`),
}

// newestPackage picks from apt's package names the newest that re
// matches, by the number it captures (the ABI or the stable release).
func newestPackage(names []string, re *regexp.Regexp) (string, error) {
	best, bestN := "", -1
	for _, n := range names {
		m := re.FindStringSubmatch(strings.TrimSpace(n))
		if m == nil {
			continue
		}
		v, err := strconv.Atoi(m[1])
		if err != nil {
			continue
		}
		if v > bestN {
			best, bestN = m[0], v
		}
	}
	if best == "" {
		return "", fmt.Errorf("apt offers no package matching %s (apt-get update?)", re)
	}
	return best, nil
}

// kernel is an unpacked kernel package.
type kernel struct {
	name    string // matrix name: 6.1, 6.12
	pkg     string
	vmlinuz string
	modDir  string // lib/modules/VERSION
	release string
}

// fetchKernel downloads the newest package of the flavour into cache
// (apt-get download: nothing is installed on the host) and unpacks it
// once with dpkg-deb -x; a second run finds it there.
func fetchKernel(cache, name string) (*kernel, error) {
	re, ok := flavours[name]
	if !ok {
		return nil, fmt.Errorf("unknown kernel %q (have 6.1, 6.12)", name)
	}
	prefix := re.String()[1:strings.Index(re.String(), `\`)] // "linux-image-6"
	out, err := exec.Command("apt-cache", "pkgnames", prefix).Output()
	if err != nil {
		return nil, fmt.Errorf("apt-cache pkgnames: %w", err)
	}
	pkg, err := newestPackage(strings.Split(string(out), "\n"), re)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cache, pkg)
	if _, err := os.Stat(filepath.Join(dir, "boot")); err != nil {
		if err := os.MkdirAll(cache, 0o755); err != nil {
			return nil, err
		}
		tmp, err := os.MkdirTemp(cache, ".fetch-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		dl := exec.Command("apt-get", "download", pkg)
		dl.Dir = tmp
		if b, err := dl.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("apt-get download %s: %w\n%s", pkg, err, b)
		}
		debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
		if len(debs) != 1 {
			return nil, fmt.Errorf("apt-get download %s: want one .deb, got %d", pkg, len(debs))
		}
		x := filepath.Join(tmp, "x")
		if b, err := exec.Command("dpkg-deb", "-x", debs[0], x).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("dpkg-deb -x: %w\n%s", err, b)
		}
		if err := os.Rename(x, dir); err != nil {
			return nil, err
		}
	}
	return unpackedKernel(name, pkg, dir)
}

func unpackedKernel(name, pkg, dir string) (*kernel, error) {
	vm, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	mods, _ := filepath.Glob(filepath.Join(dir, "lib", "modules", "*"))
	if len(vm) != 1 || len(mods) != 1 {
		return nil, fmt.Errorf("%s: want one boot/vmlinuz-* and one lib/modules/*, got %d and %d", dir, len(vm), len(mods))
	}
	return &kernel{name: name, pkg: pkg, vmlinuz: vm[0], modDir: mods[0], release: filepath.Base(mods[0])}, nil
}
