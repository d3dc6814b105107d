#!/usr/bin/env bash
# Run every fuzz target for a while (default 10m each), two at a time, at
# low priority. Crashers are written to PKG/testdata/fuzz/TARGET/ by go test;
# commit them: they then run as regression tests in `make test`.
#
# MINIMIZE (default 10s) bounds the minimisation of each new input: go
# test's default, 60s, spent most of a 10-minute run of the targets whose
# inputs are whole messages or signatures of a few KB minimising them, with
# the execution count standing still (FuzzCMSFastPath: 66 executions in
# 4.5 minutes).
# Usage: [MINIMIZE=10s] scripts/fuzz.sh [duration] [log-dir]
set -uo pipefail
cd "$(dirname "$0")/.."
dur=${1:-10m}
logs=${2:-/tmp/certharvest-fuzz}
mkdir -p "$logs"
targets=()
for pkg in ./verify ./internal/dkimfast ./output ./ingest ./ingest/maildir ./cmd/certharvest; do
	for t in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz'); do
		targets+=("$pkg:$t")
	done
done
echo "fuzzing ${#targets[@]} targets for $dur each; logs in $logs"
run() {
	local pkg=${1%%:*} t=${1##*:} rc
	nice -n 19 go test -run '^$' -fuzz "^$t\$" -fuzztime "$dur" -fuzzminimizetime "${MINIMIZE:-10s}" -parallel 1 "$pkg" >"$logs/$t.log" 2>&1
	rc=$?
	echo "$t: exit $rc $(grep -E 'elapsed.*execs' "$logs/$t.log" | tail -1)"
	return $rc
}
status=0
for ((i = 0; i < ${#targets[@]}; i += 2)); do
	pids=()
	run "${targets[i]}" &
	pids+=($!)
	if ((i + 1 < ${#targets[@]})); then
		run "${targets[i+1]}" &
		pids+=($!)
	fi
	for pid in "${pids[@]}"; do
		wait "$pid" || status=1
	done
done
grep -l -- '--- FAIL' "$logs"/*.log && status=1
exit $status
