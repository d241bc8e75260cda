# tracebroker: see README.md. Targets that trace need root.
GO      ?= go
BIN     ?= bin/tracebroker
# The lean tracebroker (-tags norpc) hands serve, trace, sessions, plugins
# and --gen to this whole build beside it (cmd/tracebroker/rpccmds.go).
RPCBIN  := $(dir $(BIN))tracebroker-rpc
FUZZTIME ?= 30s
# Go 1.26 fails a fuzz run now and then by itself (internal/tools/fuzztest.sh).
FUZZTEST = ./internal/tools/fuzztest.sh $(GO) test
SCRIPT  ?= tracepoint:syscalls:sys_enter_openat { @[comm] = count(); }
# VERSION=v0.3.0 stamps a release build; unset, the binary names its VCS
# revision.
VERSION ?=
LDFLAGS := $(if $(VERSION),-X github.com/tracebroker/tracebroker/internal/version.Version=$(VERSION))

.PHONY: build run test fuzz bench sign release clean vmtest vmtest-ci vmtest-smoke vmtest-bench suite testobjects

build:
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=auto -ldflags '$(LDFLAGS)' -tags norpc -o $(BIN) ./cmd/tracebroker
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=auto -ldflags '$(LDFLAGS)' -o $(RPCBIN) ./cmd/tracebroker

# Sign the built broker with a release key, offline: writes $(BIN).sig
# and $(RPCBIN).sig, which ship beside the binaries. See README,
# "Releases and trust".
sign: build
	@test -n "$(KEY)" || { echo "usage: make sign KEY=path/to/release.key [VERSION=v0.3.0]" >&2; exit 2; }
	v="$$(./$(BIN) version --short)" && \
	./$(BIN) attest sign --key '$(KEY)' --role broker --name tracebroker --version "$$v" $(BIN) && \
	./$(BIN) attest sign --key '$(KEY)' --role broker --name tracebroker-rpc --version "$$v" $(RPCBIN)

# A release, built and signed offline with the release key, laid out as a
# host needs it (README, "Releases and trust"): bin/tracebroker and
# bin/tracebroker-rpc, the interpreter-mode collectors and the example
# plugins, each with its .sig, release.pub (PUB, default KEY's .pub beside it) and SHA256SUMS. A host
# installs it with one command:
#   dist/release/bin/tracebroker init --trust dist/release/release.pub
RELEASE ?= dist/release
PUB     ?= $(KEY:.key=.pub)
PLUGINS := execsnoop opensnoop syscount
TB      := $(abspath $(BIN))
release: build
	@test -n "$(KEY)" || { echo "usage: make release KEY=path/to/release.key [PUB=release.pub] [VERSION=v0.3.0]" >&2; exit 2; }
	@test -f "$(PUB)" || { echo "make release: no public key $(PUB) (PUB=path/to/release.pub)" >&2; exit 2; }
	rm -rf '$(RELEASE)'
	mkdir -p '$(RELEASE)/bin' '$(RELEASE)/plugins'
	cp $(TB) '$(RELEASE)/bin/tracebroker'
	cp $(abspath $(RPCBIN)) '$(RELEASE)/bin/tracebroker-rpc'
	cp '$(PUB)' '$(RELEASE)/release.pub'
	v="$$($(TB) version --short)" && \
	$(TB) attest sign --key '$(KEY)' --role broker --name tracebroker --version "$$v" '$(RELEASE)/bin/tracebroker' && \
	$(TB) attest sign --key '$(KEY)' --role broker --name tracebroker-rpc --version "$$v" '$(RELEASE)/bin/tracebroker-rpc' && \
	$(TB) collectors export '$(RELEASE)/collectors' >/dev/null && \
	for f in '$(RELEASE)'/collectors/*.bpf; do $(TB) attest sign --key '$(KEY)' --role collector --version "$$v" "$$f" || exit 1; done && \
	$(TB) gatekeeper export '$(RELEASE)/gate' >/dev/null && \
	$(TB) attest sign --key '$(KEY)' --role gate --version "$$v" '$(RELEASE)/gate/tb_gate.bpf' && \
	for p in $(PLUGINS); do \
		$(GO) build -trimpath -o '$(RELEASE)'/plugins/$$p ./plugins/examples/$$p && \
		$(TB) attest sign --key '$(KEY)' --role generator --version "$$v" '$(RELEASE)'/plugins/$$p || exit 1; \
	done
	cd '$(RELEASE)' && find . -type f ! -name SHA256SUMS | LC_ALL=C sort | xargs sha256sum > SHA256SUMS
	@du -sh '$(RELEASE)'

# A real 5-second trace: opens by process name. An idle machine opens
# little, so a few commands run meanwhile to give it something to see.
run: build
	@( sleep 1; for i in 1 2 3; do ls / >/dev/null; cat /etc/hostname >/dev/null; sleep 1; done ) &
	./$(BIN) run -d 5s -e '$(SCRIPT)'

# Unit tests everywhere; kernel tests run when root with BPF and tracefs,
# and skip with a reason otherwise. The plugin SDK is a module of its own:
# ./... stops at its go.mod.
test:
	$(GO) vet ./...
	$(GO) vet -tags norpc ./cmd/tracebroker
	cd plugins/sdk && $(GO) vet ./...
	$(GO) test -count=1 -timeout 10m ./...
	cd plugins/sdk && $(GO) test -count=1 ./...

# The kernel tests on Debian's 6.1 and 6.12 kernels under qemu (README,
# "Other kernels"): kernels fetched with apt-get download into
# $(VMTEST_CACHE) (default ~/.cache/tracebroker-vmtest), never installed;
# one VM per kernel, in parallel; results in vmtest-out/. Needs
# qemu-system-x86 and busybox-static. VMTEST_FLAGS='-kernels 6.1
# -pkgs ./bpf -run TestX' narrows it.
VMTEST_FLAGS ?=
vmtest:
	$(GO) run ./internal/tools/vmtest $(VMTEST_FLAGS)

# What CI runs in the VMs (.ci/run): the kernel end-to-end tables and
# the probe-type tests (internal/tools/vmtest/ci.go, the one list to
# extend), both kernels at once; a failure prints the failing logs' tails.
vmtest-ci:
	$(GO) run ./internal/tools/vmtest -ci -tails 40 $(VMTEST_FLAGS)

# The harness's own smoke test: boots each cached kernel, runs `true`.
vmtest-smoke:
	VMTEST_SMOKE=1 $(GO) test -count=1 -run TestSmoke -v ./internal/tools/vmtest

# What the kernel gate adds to a BPF_PROG_LOAD (BenchmarkProgLoad), on
# the kernels that run BPF LSM: vmtest-out/bench/KERNEL/bench.txt.
VMBENCH := $(abspath vmtest-out/bench)
vmtest-bench:
	mkdir -p '$(VMBENCH)'
	CGO_ENABLED=0 $(GO) test -c -o '$(VMBENCH)/lsmgate.test' ./gatekeeper/lsmgate
	$(GO) run ./internal/tools/vmtest -out '$(VMBENCH)' $(VMTEST_FLAGS) -cmd \
		'k=$$(uname -r | cut -d. -f1,2); cd $(CURDIR)/gatekeeper/lsmgate && $(VMBENCH)/lsmgate.test -test.run="^$$" -test.bench=BenchmarkProgLoad -test.benchtime=300x -test.count=5 >$(VMBENCH)/$$k/bench.txt 2>&1'
	@for f in '$(VMBENCH)'/*/bench.txt; do echo "$$f:"; grep Benchmark "$$f"; done

# Short fuzzing of every parser of untrusted input (signed envelopes and
# statements, gatekeeper requests, access tokens and their scopes, identity
# providers' JWKS files and tokens, audit logs, collector records and recordings, kallsyms and /proc maps, uprobe
# paths through planted symlinks and a plugin's probe names among them, a
# plugin's description of itself), of
# the daemon's request path up to the kernel (deep and wide scripts: no
# panic, no stack overflow, bounded time), of terminal escaping, of
# policy bytecode, of the interpreter
# (arbitrary bytecode: no panic, no hang, no escape), of the compiler (no
# panic on anything that parses) and of code generation (the kernel's
# verifier accepts every program the compiler accepts; needs root).
fuzz:
	$(FUZZTEST) -run='^$$' -fuzz=FuzzParse -fuzztime=$(FUZZTIME) ./broker/script/syntax/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzCompile -fuzztime=$(FUZZTIME) -fuzzminimizetime=3s ./broker/script/compile/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzReadClasses -fuzztime=$(FUZZTIME) ./broker/script/compile/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzVerifier -fuzztime=$(FUZZTIME) ./bpf/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzSprintf -fuzztime=$(FUZZTIME) ./broker/output/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzMap -fuzztime=$(FUZZTIME) ./broker/output/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzJSON -fuzztime=$(FUZZTIME) ./broker/output/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzParseFormat -fuzztime=$(FUZZTIME) ./bpf/tracefs/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzFunctions -fuzztime=$(FUZZTIME) -fuzzminimizetime=3s ./bpf/uprobe/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzOpenTarget -fuzztime=$(FUZZTIME) ./bpf/uprobe/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzCheckName -fuzztime=$(FUZZTIME) ./broker/program/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzKprobeName -fuzztime=$(FUZZTIME) ./broker/program/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzUprobeMultiName -fuzztime=$(FUZZTIME) ./broker/program/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzRun -fuzztime=$(FUZZTIME) ./interp/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzInsn -fuzztime=$(FUZZTIME) ./interp/disasm/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzParseEnvelope -fuzztime=$(FUZZTIME) ./attest/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzParseStatement -fuzztime=$(FUZZTIME) ./attest/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzVerify -fuzztime=$(FUZZTIME) -fuzzminimizetime=3s ./attest/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzParseKallsyms -fuzztime=$(FUZZTIME) ./internal/symbols/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzParseMaps -fuzztime=$(FUZZTIME) ./internal/symbols/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzParsePerfMap -fuzztime=$(FUZZTIME) ./internal/symbols/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzReadFileSyms -fuzztime=$(FUZZTIME) ./internal/symbols/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzParseRequest -fuzztime=$(FUZZTIME) ./gatekeeper/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzPolicyBytecode -fuzztime=$(FUZZTIME) ./gatekeeper/
	$(FUZZTEST) -run='^$$' -fuzz='^FuzzVerify$$' -fuzztime=$(FUZZTIME) ./broker/token/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzParseScopes -fuzztime=$(FUZZTIME) ./broker/token/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzCheckScopes -fuzztime=$(FUZZTIME) ./broker/token/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzMatch -fuzztime=$(FUZZTIME) ./broker/token/
	$(FUZZTEST) -run='^$$' -fuzz='^FuzzVerify$$' -fuzztime=$(FUZZTIME) ./broker/audit/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzAppendVerify -fuzztime=$(FUZZTIME) ./broker/audit/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzBoundData -fuzztime=$(FUZZTIME) ./broker/audit/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzShow -fuzztime=$(FUZZTIME) ./broker/audit/view/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzDuplicateKey -fuzztime=$(FUZZTIME) ./broker/token/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzParseJWKS -fuzztime=$(FUZZTIME) ./broker/token/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzVerifyOIDC -fuzztime=$(FUZZTIME) ./broker/token/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzDecode -fuzztime=$(FUZZTIME) ./bpf/collector/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzReader -fuzztime=$(FUZZTIME) ./broker/recording/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzTypes -fuzztime=$(FUZZTIME) ./broker/recording/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzRequest -fuzztime=$(FUZZTIME) -fuzzminimizetime=3s ./broker/daemon/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzText -fuzztime=$(FUZZTIME) ./internal/escape/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzParse -fuzztime=$(FUZZTIME) ./internal/btsuite/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzParse -fuzztime=$(FUZZTIME) ./broker/script/ctypes/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzParseNotes -fuzztime=$(FUZZTIME) ./bpf/usdt/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzParseArgs -fuzztime=$(FUZZTIME) ./bpf/usdt/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzProcess -fuzztime=$(FUZZTIME) ./broker/script/cpp/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzSplitSpec -fuzztime=$(FUZZTIME) ./broker/script/syntax/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzGlob -fuzztime=$(FUZZTIME) ./bpf/uprobe/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzCgroupRoots -fuzztime=$(FUZZTIME) ./broker/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzLoad -fuzztime=$(FUZZTIME) -fuzzminimizetime=1s ./internal/dwarfargs/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzQuote -fuzztime=$(FUZZTIME) ./plugins/examples/internal/script/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzDescribe -fuzztime=$(FUZZTIME) ./plugins/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzParse -fuzztime=$(FUZZTIME) -fuzzminimizetime=3s ./bpf/object/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzDecode -fuzztime=$(FUZZTIME) ./broker/output/
	$(FUZZTEST) -run='^$$' -fuzz=FuzzReadTar -fuzztime=$(FUZZTIME) ./attest/

# Issue 21's cases side by side with bpftrace 0.17 (apt-get install
# bpftrace) in one run, tracebroker JIT and interpreted
# (internal/tools/scalebench: a one-liner's start-up, maps of 10^4 to
# 10^6 keys printed at exit, 360 to 1,708 probes attached and detached,
# the cost per event in the traced process, a printf storm; medians of
# alternated runs), then the Go micro-benchmarks. Needs root; scalebench
# took 50 minutes on this 2-core shared machine, most of it bpftrace
# attaching and detaching probes.
# BENCH_FLAGS='-cases maps -keys 10^4 -heavy-runs 1' narrows it
# (go run ./internal/tools/scalebench -h lists the flags).
BENCH_FLAGS ?=
bench: build
	$(GO) run ./internal/tools/scalebench -bin ./$(BIN) $(BENCH_FLAGS)
	$(GO) test -run='^$$' -bench=. -benchmem ./broker/... ./bpf/... ./interp/... ./attest/... ./gatekeeper/... ./internal/symbols/...

clean:
	rm -rf bin

# bpftrace 0.17's own runtime test suite against bin/tracebroker: every
# test, pass, fail or skip with why (make test runs those on
# testdata/bpftrace-0.17.pass). SUITE='call.*' narrows it.
SUITE ?= *
suite: build
	$(GO) run ./internal/tools/btsuite -bin $(BIN) -filter '$(SUITE)'

# The clang-built eBPF objects the tests run (testdata/objects), rebuilt
# from their sources; committed, so that tests need no clang. Needs clang
# and libbpf-dev. Debug info is stripped (BTF stays) and paths are
# relative, so a rebuild with the same clang gives the same bytes.
OBJECT_SRCS := $(wildcard testdata/objects/*.bpf.c)
testobjects: $(OBJECT_SRCS:.c=.o)
testdata/objects/%.bpf.o: testdata/objects/%.bpf.c
	clang -target bpf -O2 -g -I/usr/include/$$(uname -m)-linux-gnu -fdebug-prefix-map=$(CURDIR)=. -c $< -o $@
	llvm-strip -g $@
