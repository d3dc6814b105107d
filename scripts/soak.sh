#!/usr/bin/env bash
# Soak test of the running service: the webhook and the SMTP listener under
# load together for DURATION (default 3m), bounded. Every 10 s it samples the
# service's resident memory (/proc) and goroutines (/metrics); at the end it
# checks that memory and goroutines stayed flat (the last sample within 1.5×
# memory and +50 goroutines of the first sample after warm-up) and that every
# acknowledged message was reported.
#
# Usage: scripts/soak.sh [DURATION]        e.g. scripts/soak.sh 5m
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-3m}
work=$(mktemp -d -t certharvest-soak.XXXXXX)
sample=testdata/sample
go build -o "$work/certharvest" ./cmd/certharvest
go build -o "$work/loadgen-webhook" ./scripts/loadgen-webhook
go build -o "$work/loadgen-smtp" ./scripts/loadgen-smtp

"$work/certharvest" serve --maildir "$work/Maildir" --certs "$work/certs" \
	--report "$work/report.jsonl" --log "$work/serve.log" \
	--http 127.0.0.1:0 --smtp 127.0.0.1:0 --smtp-domain inbound.example.org --metrics 127.0.0.1:0 \
	--trust "$sample/trust.pem" --dkim-keys "$sample/dkim-keys.txt" --at 2026-06-01T00:00:00Z &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 200); do
	http=$(sed -n 's/.*webhook listening on \([^ ]*\).*/\1/p' "$work/serve.log" 2>/dev/null | head -1 || true)
	smtp=$(sed -n 's/.*SMTP listening on \([^ ]*\).*/\1/p' "$work/serve.log" 2>/dev/null | head -1 || true)
	metrics=$(sed -n 's/.*metrics listening on \([^ ]*\).*/\1/p' "$work/serve.log" 2>/dev/null | head -1 || true)
	[ -n "$http" ] && [ -n "$smtp" ] && [ -n "$metrics" ] && break
	sleep 0.05
done
[ -n "$http" ] && [ -n "$smtp" ] && [ -n "$metrics" ] || { echo "serve did not start"; cat "$work/serve.log"; exit 1; }
echo "soak: $duration of webhook (8 connections) and SMTP (8 sessions) load on $http and $smtp"

sample_once() {
	local rss gor
	rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
	gor=$(curl -s "http://$metrics/metrics" 2>/dev/null | awk '/^go_goroutines / {print $2}')
	echo "$(date +%s) ${rss:-0} ${gor:-0}" >>"$work/samples"
	echo "  $(date +%T) rss=${rss}kB goroutines=${gor:-?} new/=$(ls "$work/Maildir/new" | wc -l)"
}
"$work/loadgen-webhook" -url "http://$http/" -c 8 -d "$duration" -sample "$sample" >"$work/webhook.out" &
wl=$!
"$work/loadgen-smtp" -addr "$smtp" -sessions 8 -per-session 50 -duration "$duration" \
	-to harvest@inbound.example.org -queued "$work/queued.txt" >"$work/smtp.out" &
sl=$!
while kill -0 $wl 2>/dev/null || kill -0 $sl 2>/dev/null; do
	sample_once
	sleep 10
done
wait $wl $sl
for _ in $(seq 3000); do
	[ -z "$(ls -A "$work/Maildir/new")" ] && break
	sleep 0.2
done
sample_once
kill -TERM $pid
wait $pid

ack=$(sed -n 's/^result .*acknowledged=\([0-9]*\).*/\1/p' "$work/webhook.out")
queued=$(grep -c . "$work/queued.txt" || true)
webhook=$(grep -c '"source":"webhook"' "$work/report.jsonl" || true)
smtpr=$(grep -c '"source":"smtp"' "$work/report.jsonl" || true)
echo "webhook: $ack acknowledged, $webhook reported; SMTP: $queued queued, $smtpr reported"
fail=0
[ "$ack" -eq "$webhook" ] || { echo "FAIL: webhook acknowledged and reported differ"; fail=1; }
[ "$queued" -eq "$smtpr" ] || { echo "FAIL: SMTP queued and reported differ"; fail=1; }
# Flat: compare the last sample with the second (after warm-up).
read -r _ rss1 gor1 < <(sed -n 2p "$work/samples")
read -r _ rss2 gor2 < <(tail -1 "$work/samples")
echo "memory: ${rss1}kB after warm-up, ${rss2}kB at the end; goroutines: $gor1 -> $gor2"
if [ "$rss2" -gt $((rss1 * 3 / 2)) ]; then echo "FAIL: memory grew"; fail=1; fi
if [ "$gor1" != 0 ] && [ "$gor2" -gt $((gor1 + 50)) ]; then echo "FAIL: goroutines grew"; fail=1; fi
[ $fail -eq 0 ] && echo "OK: soak passed"
exit $fail
