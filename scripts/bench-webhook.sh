#!/usr/bin/env bash
# Benchmark the SparkPost relay webhook of `certharvest serve`: a service on a
# loopback port with a temporary Maildir (the sample's trust bundle and DKIM
# keys, --at), loaded by scripts/loadgen-webhook with single-message payloads
# of about 10 KB from CONC connections for DURATION. Then it waits for the
# pipeline to drain new/ and checks that every acknowledged message has its
# report line (source webhook).
#
# Usage: scripts/bench-webhook.sh            # 32 connections, 10 s
#        CONC=64 DURATION=30s scripts/bench-webhook.sh
#        RATE=500 CONC=256 scripts/bench-webhook.sh
# RATE makes the load an open loop (loadgen-webhook -rate): RATE requests a
# second whatever the answers, on up to CONC connections, each latency
# counted from when its request was due. Without it, a closed loop: CONC
# connections back to back, which finds the saturation rate; then RATE at
# half of it measures the latency a service has to spare.
# BENCH_DIR picks where the Maildir lives: its file system's speed at fsync
# and at creating files is much of the result. By default a new folder under
# /var/tmp/certharvest-bench, kept afterwards (delete
# /var/tmp/certharvest-bench/webhook-* when done): deleting thousands of files
# makes the next creations on ext4 without a journal crawl for minutes (the
# allocator skips recently freed inodes one by one), which the next run
# would measure.
set -euo pipefail
cd "$(dirname "$0")/.."
conc=${CONC:-32}
duration=${DURATION:-10s}
rate=${RATE:-}
case $rate in *[!0-9.]*) echo "$0: RATE must be a number of requests per second" >&2; exit 2 ;; esac
work=${BENCH_DIR:-$(mkdir -p /var/tmp/certharvest-bench && mktemp -d /var/tmp/certharvest-bench/webhook-XXXXXX)}
mkdir -p "$work"
sample=testdata/sample

go build -o "$work/certharvest" ./cmd/certharvest
go build -o "$work/loadgen" ./scripts/loadgen-webhook

rm -rf "$work/Maildir" "$work/certs" "$work/report.jsonl" "$work/serve.log"
"$work/certharvest" serve --maildir "$work/Maildir" --certs "$work/certs" \
	--report "$work/report.jsonl" --log "$work/serve.log" --http 127.0.0.1:0 \
	--trust "$sample/trust.pem" --dkim-keys "$sample/dkim-keys.txt" --at 2026-06-01T00:00:00Z &
pid=$!
cleanup() {
	kill "$pid" 2>/dev/null && wait "$pid" || true
	echo "outputs kept in $work"
}
trap cleanup EXIT

addr=
for _ in $(seq 200); do
	addr=$(sed -n 's/.*webhook listening on \([^ ]*\).*/\1/p' "$work/serve.log" 2>/dev/null | head -1 || true)
	[ -n "$addr" ] && break
	sleep 0.05
done
[ -n "$addr" ] || { echo "serve did not start:"; cat "$work/serve.log"; exit 1; }

echo "machine: $(nproc) cores, $(go version | cut -d' ' -f3), Maildir on $(df -T "$work" | awk 'NR==2 {print $2}')"
"$work/loadgen" -url "http://$addr/" -c "$conc" -d "$duration" -sample "$sample" ${rate:+-rate "$rate"} | tee "$work/loadgen.out"
ack=$(sed -n 's/^result .*acknowledged=\([0-9]*\).*/\1/p' "$work/loadgen.out")

backlog=$(find "$work/Maildir/new" -type f | wc -l)
t0=$(date +%s.%N)
while [ "$(find "$work/Maildir/new" -type f | wc -l)" -gt 0 ]; do
	if (($(echo "$(date +%s.%N) - $t0 > 600" | bc))); then
		echo "new/ not drained after 10 minutes"
		exit 1
	fi
	sleep 0.1
done
drain=$(echo "$(date +%s.%N) - $t0" | bc)
kill -TERM "$pid"
wait "$pid"

reported=$(grep -c '"source":"webhook"' "$work/report.jsonl" || true)
accepted=$(grep -c '"outcome":"accepted"' "$work/report.jsonl" || true)
printf 'pipeline:      %d messages left in new/ when the load stopped, drained in %.1fs\n' "$backlog" "$drain"
echo "reported:      $reported webhook report lines ($accepted accepted) for $ack acknowledged requests"
if [ "$reported" -ne "$ack" ]; then
	echo "FAIL: acknowledged and reported differ"
	exit 1
fi
echo "OK: every acknowledged message was reported"
