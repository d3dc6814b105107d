#!/usr/bin/env bash
# Benchmark the SMTP listener: `certharvest serve --smtp` on loopback with a
# temporary Maildir (sample trust and DKIM keys, --at), loaded by
# scripts/loadgen-smtp (32 sessions, several messages per session, the 12
# accepted sample messages in turn) for a fixed time. Prints the rate of 250
# replies (each one durable in the spool before it was sent), then waits for
# the service to drain new/ and checks that every queued message has a
# report line with source smtp.
#
# Usage: scripts/bench-smtp.sh [duration] [sessions] [messages-per-session]
#   e.g. scripts/bench-smtp.sh 10s 32 100
# SERVE_FLAGS adds flags to serve (e.g. "--workers 1"), LOADGEN_FLAGS to the
# load generator (e.g. "-rset" for an RSET and a new EHLO before each message
# after the first of a session); TMPDIR chooses the file system (default
# /var/tmp/certharvest-bench). The run's folder is kept (delete
# $TMPDIR/certharvest-bench-smtp.* when done): deleting thousands of files
# makes the next creations on ext4 without a journal crawl for minutes (the
# allocator skips recently freed inodes one by one), which the next run
# would measure.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10s}
sessions=${2:-32}
per=${3:-100}

go build -o bin/certharvest ./cmd/certharvest
go build -o bin/loadgen-smtp ./scripts/loadgen-smtp
mkdir -p "${TMPDIR:=/var/tmp/certharvest-bench}"
work=$(mktemp -d "$TMPDIR/certharvest-bench-smtp.XXXXXX")
pid=
cleanup() {
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	echo "outputs kept in $work"
}
trap cleanup EXIT

# shellcheck disable=SC2086
bin/certharvest serve --maildir "$work/Maildir" --certs "$work/certs" --report "$work/report.jsonl" --log "$work/serve.log" \
	--trust testdata/sample/trust.pem --dkim-keys testdata/sample/dkim-keys.txt --at 2026-06-01T00:00:00Z \
	--smtp 127.0.0.1:0 --smtp-domain inbound.example.org --smtp-max-conns $((sessions + 16)) \
	--smtp-max-conns-per-ip $((sessions + 16)) ${SERVE_FLAGS:-} &
pid=$!
addr=
for _ in $(seq 100); do
	[ -f "$work/serve.log" ] && addr=$(sed -n 's/.*SMTP listening on \([^ ]*\).*/\1/p' "$work/serve.log" | head -1)
	[ -n "$addr" ] && break
	sleep 0.1
done
[ -n "$addr" ] || { echo "serve did not start:"; cat "$work/serve.log"; exit 1; }

echo "machine: $(nproc) cores, $(go version | cut -d' ' -f3-), $(df -T "$work" | awk 'NR==2 {print $2}') file system"
echo "command: ${TMPDIR:+TMPDIR=$TMPDIR }${SERVE_FLAGS:+SERVE_FLAGS=\"$SERVE_FLAGS\" }${LOADGEN_FLAGS:+LOADGEN_FLAGS=\"$LOADGEN_FLAGS\" }scripts/bench-smtp.sh $duration $sessions $per"
# shellcheck disable=SC2086
bin/loadgen-smtp -addr "$addr" -sessions "$sessions" -per-session "$per" -duration "$duration" -queued "$work/queued.txt" ${LOADGEN_FLAGS:-}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
load_end=$(date +%s.%N)
load_cpu=$(cpu_ticks)

# Drain: every queued message leaves new/ once reported.
for _ in $(seq 1200); do
	[ -z "$(ls -A "$work/Maildir/new")" ] && break
	sleep 0.1
done
drain_end=$(date +%s.%N)
left=$(ls -A "$work/Maildir/new" | wc -l)
total_cpu=$(cpu_ticks)
kill -TERM "$pid"
wait "$pid" || true
pid=

queued=$(grep -c . "$work/queued.txt" || true)
reported=$(grep -c '"source":"smtp"' "$work/report.jsonl" || true)
accepted=$(grep '"source":"smtp"' "$work/report.jsonl" | grep -c '"outcome":"accepted"' || true)
missing=$(comm -23 <(sort "$work/queued.txt" | grep .) \
	<(grep -o '"path":"[^"]*"' "$work/report.jsonl" | sed 's/.*\/new\///; s/"$//' | sort))
hz=$(getconf CLK_TCK)
awk -v a="$load_end" -v b="$drain_end" -v l="$load_cpu" -v t="$total_cpu" -v hz="$hz" 'BEGIN {
	printf "serve: drained new/ %.1fs after the load ended; CPU %.1fs during the load, %.1fs in all\n", b - a, l / hz, t / hz }'
echo "report: $reported lines with source smtp ($accepted accepted) for $queued messages queued; $left left in new/"
if [ -n "$missing" ] || [ "$left" -ne 0 ]; then
	echo "FAIL: $(printf '%s\n' "$missing" | grep -c .) queued messages have no report line"
	exit 1
fi
echo "OK: every message that got 250 was reported"
