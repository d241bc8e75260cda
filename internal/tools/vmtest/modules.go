package main

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// guestModules are what the guest needs before it can mount the host's
// root: 9p over virtio-pci and overlayfs. Their dependencies (netfs,
// 9pnet, virtio_ring …) are found from each module's depends=, since
// Debian ships no modules.dep in the package.
var guestModules = []string{"virtio_pci", "9pnet_virtio", "9p", "overlay"}

// modName is a module's name as the kernel spells it: '-' and '_' are the
// same in module names, and the file name carries .ko and a compression
// suffix.
func modName(file string) string {
	base := filepath.Base(file)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

// kmodTree is what the guest needs to know of an unpacked kernel's
// modules: the file of each loadable one and the names built in.
type kmodTree struct {
	files   map[string]string // name -> path of .ko or .ko.xz
	builtin map[string]bool
}

func readModTree(modDir string) (*kmodTree, error) {
	t := &kmodTree{files: map[string]string{}, builtin: map[string]bool{}}
	err := filepath.WalkDir(filepath.Join(modDir, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.Contains(d.Name(), ".ko") {
			t.files[modName(p)] = p
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(modDir, "modules.builtin"))
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	for _, line := range strings.Fields(string(b)) {
		t.builtin[modName(line)] = true
	}
	return t, nil
}

// moduleBytes is the module's ELF, decompressed: the initramfs holds it
// so, since busybox insmod has no xz.
func moduleBytes(path string) ([]byte, error) {
	switch {
	case strings.HasSuffix(path, ".ko"):
		return os.ReadFile(path)
	case strings.HasSuffix(path, ".ko.xz"):
		out, err := exec.Command("xz", "-dc", path).Output()
		if err != nil {
			return nil, fmt.Errorf("xz -dc %s: %w", path, err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: unknown module compression", path)
}

// modDepends reads depends= from the module's .modinfo section, as
// `modinfo -F depends` prints it.
func modDepends(ko []byte) ([]string, error) {
	f, err := elf.NewFile(bytes.NewReader(ko))
	if err != nil {
		return nil, err
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("no .modinfo section")
	}
	data, err := sec.Data()
	if err != nil {
		return nil, err
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			return parseDepends(string(v)), nil
		}
	}
	return nil, nil
}

// parseDepends splits a depends= value ("netfs,9pnet" or "").
func parseDepends(v string) []string {
	var deps []string
	for _, d := range strings.Split(strings.TrimSpace(v), ",") {
		if d = strings.TrimSpace(d); d != "" {
			deps = append(deps, strings.ReplaceAll(d, "-", "_"))
		}
	}
	return deps
}

// loadOrder is the order to insmod the wanted modules and everything
// they depend on, dependencies first; a module built into the kernel is
// left out, one neither built in nor loadable is an error. deps answers a
// module's depends=. Ties are broken by name so the init script is the
// same from one run to the next.
func loadOrder(want []string, loadable, builtin func(string) bool, deps func(string) ([]string, error)) ([]string, error) {
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string, chain []string) error
	visit = func(name string, chain []string) error {
		switch state[name] {
		case 2:
			return nil
		case 1:
			return fmt.Errorf("module dependency cycle: %s", strings.Join(append(chain, name), " -> "))
		}
		if !loadable(name) {
			if builtin(name) {
				state[name] = 2
				return nil
			}
			return fmt.Errorf("module %s (wanted by %s) is neither built in nor in the kernel package", name, strings.Join(chain, " -> "))
		}
		state[name] = 1
		ds, err := deps(name)
		if err != nil {
			return fmt.Errorf("module %s: %w", name, err)
		}
		ds = append([]string(nil), ds...)
		sort.Strings(ds)
		for _, d := range ds {
			if err := visit(d, append(chain, name)); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, name)
		return nil
	}
	for _, w := range want {
		if err := visit(w, []string{"guest"}); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// resolveModules returns the modules to load in order, each decompressed.
func resolveModules(modDir string, want []string) ([]string, map[string][]byte, error) {
	t, err := readModTree(modDir)
	if err != nil {
		return nil, nil, err
	}
	bodies := map[string][]byte{}
	order, err := loadOrder(want,
		func(n string) bool { _, ok := t.files[n]; return ok },
		func(n string) bool { return t.builtin[n] },
		func(n string) ([]string, error) {
			b, err := moduleBytes(t.files[n])
			if err != nil {
				return nil, err
			}
			bodies[n] = b
			return modDepends(b)
		})
	return order, bodies, err
}
