#!/usr/bin/env bash
# Benchmark `certharvest serve` on a Maildir: N generated messages (default
# 5000) dropped into new/ of a running service, timed until the last report
# line. Usage:
#   scripts/bench-serve.sh [--store folder|postgres|both] [--lookups N] [N] [runs]
# --store postgres runs serve on a private PostgreSQL cluster started on this
# machine (fsync on); --store both alternates the folder and PostgreSQL, run
# by run, and prints their ratio. --lookups N times N lookup API requests
# after each run (p50, p99). SERVE_ARGS adds flags to serve's command line
# (SERVE_ARGS="--authserv-id none": archive without the stamped copy).
set -euo pipefail
cd "$(dirname "$0")/.."
store=folder
lookups=0
while [ $# -gt 0 ]; do
	case "$1" in
	--store) store=$2; shift 2 ;;
	--lookups) lookups=$2; shift 2 ;;
	*) break ;;
	esac
done
n=${1:-5000}
runs=${2:-3}
corpus=${BENCH_CORPUS:-/tmp/certharvest-bench-$n}
go build -o bin/certharvest ./cmd/certharvest
if [ ! -f "$corpus/dkim-keys.txt" ]; then
	echo "generating $n messages in $corpus (once)..."
	go run ./scripts/gencorpus -bench "$n" -out "$corpus"
fi
echo "machine: $(nproc) cores, $(go version)"
go run ./scripts/benchserve -bin bin/certharvest -corpus "$corpus" -runs "$runs" -store "$store" -lookups "$lookups" -serve-args "${SERVE_ARGS:-}"
