package gatekeeper

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Platform is what the host allows, measured once at start-up. It is
// copied into every Request (hvci, jit_available, kernel_interpreter) so
// a policy judges the machine it runs on, and it drives mode selection.
type Platform struct {
	// HVCI: code integrity forbids creating native code at run time, so
	// the JIT is never used.
	HVCI bool
	// JITAvailable: the kernel's eBPF JIT is enabled.
	JITAvailable bool
	// KernelInterpreter: the kernel still has its own eBPF interpreter
	// (it is compiled out by CONFIG_BPF_JIT_ALWAYS_ON). Informational for
	// policies: tracebroker's interpreter mode runs in user space and
	// needs no kernel interpreter.
	KernelInterpreter bool
}

// DetectPlatform measures the host. hvci is "auto" (or ""), "on" or "off"; "on"
// and "off" are the administrator's word (to test a policy, or on a
// hypervisor the broker cannot query).
//
// HVCI (hypervisor-enforced code integrity) is a Windows feature; on
// Linux "auto" means off. A Windows port would read it from WMI,
// Win32_DeviceGuard (namespace root\Microsoft\Windows\DeviceGuard):
// HVCI runs when SecurityServicesRunning contains 2; or, without WMI,
// from the registry value
// HKLM\SYSTEM\CurrentControlSet\Control\DeviceGuard\Scenarios\HypervisorEnforcedCodeIntegrity\Enabled
// (1 = on), which says it is configured rather than running.
//
// The JIT is available when /proc/sys/net/core/bpf_jit_enable is 1 or 2
// (2 also dumps JIT images to the kernel log); a missing file means a
// kernel without the JIT.
//
// The kernel interpreter is absent when the kernel was built with
// CONFIG_BPF_JIT_ALWAYS_ON, read from /proc/config.gz, else from
// /boot/config-$(uname -r). When neither is readable it is inferred:
// kernels with JIT_ALWAYS_ON pin bpf_jit_enable to 1, and before Linux
// 5.3 they also made the sysctl read-only (mode 0444); so bpf_jit_enable
// = 1 with no write permission in its mode means always on. Later
// kernels keep the mode 0644 and refuse a write of 0 instead, and
// writing to find out would turn the JIT off on a kernel that allows it,
// so there the heuristic cannot tell and reports the interpreter present.
func DetectPlatform(hvci string) (Platform, error) {
	return detectPlatform(hvci, "/", KernelRelease())
}

// KernelRelease is the running kernel's release (uname -r), "" when
// uname fails.
func KernelRelease() string {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return ""
	}
	return unix.ByteSliceToString(uts.Release[:])
}

// KernelConfig reads option from the running kernel's config
// (/proc/config.gz, else /boot/config-RELEASE): whether it is =y, and
// whether a config was found to say.
func KernelConfig(option string) (set, known bool) {
	return kernelConfig("/", KernelRelease(), option)
}

// detectPlatform is DetectPlatform with the file system rooted at root,
// so tests can fake /proc and /boot.
func detectPlatform(hvci, root, release string) (Platform, error) {
	var p Platform
	switch hvci {
	case "on":
		p.HVCI = true
	case "off":
	case "auto", "": // Linux has no HVCI
	default:
		return p, fmt.Errorf("gatekeeper: hvci %q: want auto, on or off", hvci)
	}

	sysctl := filepath.Join(root, "proc/sys/net/core/bpf_jit_enable")
	jit := -1 // no JIT compiled in
	switch b, err := os.ReadFile(sysctl); {
	case err == nil:
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return p, fmt.Errorf("gatekeeper: %s: %q is not a number", sysctl, bytes.TrimSpace(b))
		}
		jit = n
	case !errors.Is(err, fs.ErrNotExist):
		return p, fmt.Errorf("gatekeeper: JIT availability: %w", err)
	}
	p.JITAvailable = jit == 1 || jit == 2

	alwaysOn, known := kernelConfig(root, release, "CONFIG_BPF_JIT_ALWAYS_ON")
	if !known {
		alwaysOn = false
		if fi, err := os.Stat(sysctl); err == nil && jit == 1 && fi.Mode().Perm()&0o222 == 0 {
			alwaysOn = true
		}
	}
	p.KernelInterpreter = !alwaysOn
	return p, nil
}

// kernelConfig reports whether option is =y in the running kernel's
// build configuration, and whether a configuration could be read at all.
func kernelConfig(root, release, option string) (set, known bool) {
	try := func(path string, gz bool) (bool, bool) {
		f, err := os.Open(path)
		if err != nil {
			return false, false
		}
		defer f.Close()
		var r io.Reader = f
		if gz {
			z, err := gzip.NewReader(f)
			if err != nil {
				return false, false
			}
			defer z.Close()
			r = z
		}
		sc := bufio.NewScanner(io.LimitReader(r, 64<<20))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), "="); ok && k == option {
				return v == "y", true
			}
		}
		if sc.Err() != nil {
			return false, false
		}
		return false, true // "# CONFIG_X is not set", or absent: not set
	}
	if set, ok := try(filepath.Join(root, "proc/config.gz"), true); ok {
		return set, true
	}
	if release != "" && !strings.ContainsAny(release, "/") {
		if set, ok := try(filepath.Join(root, "boot", "config-"+release), false); ok {
			return set, true
		}
	}
	return false, false
}
