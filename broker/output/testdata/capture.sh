#!/bin/sh
# Regenerates the golden outputs from the real bpftrace 0.17 (run as root):
# for every NAME.bt, NAME.txt is `bpftrace NAME.bt` and NAME.json is
# `bpftrace -f json NAME.bt`, stdout only (stderr carries warnings).
# lost.txt and lost.json are not regenerated here: see lost.README.
set -e
cd "$(dirname "$0")"
for bt in *.bt; do
	name=${bt%.bt}
	bpftrace "$bt" >"$name.txt" 2>/dev/null
	bpftrace -f json "$bt" >"$name.json" 2>/dev/null
done
