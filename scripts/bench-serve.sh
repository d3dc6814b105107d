#!/usr/bin/env bash
# Benchmark `certharvest serve` on a Maildir: N generated messages (default
# 5000) dropped into new/ of a running service, timed until the last report
# line. Usage: scripts/bench-serve.sh [N] [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-5000}
runs=${2:-3}
corpus=${BENCH_CORPUS:-/tmp/certharvest-bench-$n}
go build -o bin/certharvest ./cmd/certharvest
if [ ! -f "$corpus/dkim-keys.txt" ]; then
	echo "generating $n messages in $corpus (once)..."
	go run ./scripts/gencorpus -bench "$n" -out "$corpus"
fi
echo "machine: $(nproc) cores, $(go version)"
go run ./scripts/benchserve -bin bin/certharvest -corpus "$corpus" -runs "$runs"
