#!/bin/sh
# fuzztest.sh GO test -fuzz=... : runs the command, and once more when it
# failed the way Go 1.26's fuzzing coordinator fails by itself
# (golang/go#75804, fixed in Go 1.27): "context deadline exceeded" as
# -fuzztime ends, with no failing input written. A real failure writes
# its input under testdata/fuzz, which the second run replays and fails
# on again.
out=$(mktemp) || exit 1
trap 'rm -f "$out"' EXIT
for try in 1 2; do
	"$@" >"$out" 2>&1
	rc=$?
	cat "$out"
	if [ $rc -eq 0 ]; then
		exit 0
	fi
	if grep -q 'Failing input written' "$out" || ! grep -q '^    context deadline exceeded$' "$out"; then
		exit $rc
	fi
	echo "fuzztest.sh: Go's fuzzing coordinator ran into its own deadline (golang/go#75804) and wrote no failing input: once more"
done
exit $rc
