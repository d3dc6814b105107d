#!/usr/bin/env bash
# bench-mbox.sh: scan the same signed messages as .eml files and as one mbox,
# alternately, to compare their speed and memory (issue 17).
#
#   scripts/bench-mbox.sh N [PAD]     # N messages, each about PAD bytes longer (default 0)
#
# Builds bin/certharvest, generates N valid messages with
# `go run ./scripts/gencorpus -bench N -pad PAD -mbox` (cached per N and PAD:
# messages/*.eml and corpus.mbox, the same messages in the same order), then
# runs `certharvest scan` RUNS times on each, alternating (eml, mbox, eml,
# mbox...), each into a fresh certificate folder and report, the log to a
# file. For each run it prints the wall time, messages per second, the CPU
# time (user and system, and per message) and the peak RSS (GNU time), then
# the medians of each kind. Every run must accept every message and store
# every certificate, or the script fails.
#
# With SIZES="250M 1G" (sizes for head -c, in the mbox's bytes) it also
# scans the first messages of corpus.mbox up to each size, once each, for
# the peak RSS as the file grows.
#
# Environment: RUNS=3, WORKERS=, BENCH_DIR=/var/tmp/certharvest-bench,
# CERTHARVEST=, SCAN_ARGS=, as for scripts/bench-scan.sh, whose notes apply.
set -euo pipefail

N=${1:-}
PAD=${2:-0}
RUNS=${RUNS:-3}
BENCH_DIR=${BENCH_DIR:-/var/tmp/certharvest-bench}
AT=2026-06-01T00:00:00Z # the corpus's verification time (testcorpus.At)

cd "$(dirname "$0")/.."
case $N in '' | *[!0-9]* | 0) echo "usage: $0 N [PAD]" >&2; exit 2 ;; esac
case $PAD in *[!0-9]*) echo "usage: $0 N [PAD]" >&2; exit 2 ;; esac

if [[ -z ${CERTHARVEST:-} ]]; then
	echo "building bin/certharvest" >&2
	go build -o bin/certharvest ./cmd/certharvest
	CERTHARVEST=bin/certharvest
fi

corpus=$BENCH_DIR/mbox-corpus-$N-$PAD
if [[ ! -f $corpus/.complete ]]; then
	echo "generating $N messages into $corpus (once; cached)" >&2
	rm -rf "$corpus"
	mkdir -p "$corpus"
	go run ./scripts/gencorpus -bench "$N" -pad "$PAD" -mbox -out "$corpus" >&2
	touch "$corpus/.complete"
fi
if ! /usr/bin/time -v true >/dev/null 2>&1; then
	echo "GNU time is needed (apt-get install time)" >&2
	exit 1
fi

out=$BENCH_DIR/out-mbox-$(date +%Y%m%d-%H%M%S)-$$
workers=()
[[ -n ${WORKERS:-} ]] && workers=(--workers "$WORKERS")
# shellcheck disable=SC2206 # SCAN_ARGS is split on purpose
extra=(${SCAN_ARGS:-})
median() { sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

# scan KIND DIR PATH N: one scan of PATH (N messages) into DIR; prints a row.
scan() {
	local kind=$1 dir=$2 path=$3 n=$4
	mkdir -p "$dir"
	sync
	local start end wall accepted stored user sys rss cpu rate
	start=$EPOCHREALTIME
	/usr/bin/time -v -o "$dir/time.txt" "$CERTHARVEST" scan --quiet --trust "$corpus/trust.pem" \
		--dkim-keys "$corpus/dkim-keys.txt" --at "$AT" --certs "$dir/certs" --report "$dir/report.jsonl" \
		--log "$dir/scan.log" "${workers[@]}" "${extra[@]}" "$path"
	end=$EPOCHREALTIME
	wall=$(awk -v s="$start" -v e="$end" 'BEGIN {printf "%.3f", e - s}')
	accepted=$(grep -c '"outcome":"accepted"' "$dir/report.jsonl" || true)
	stored=$(find "$dir/certs" -maxdepth 1 -name '*.crt' | wc -l)
	if [[ $accepted != "$n" || $stored != "$n" ]]; then
		echo "$kind: $accepted of $n messages accepted, $stored certificates stored; see $dir" >&2
		exit 1
	fi
	user=$(awk -F': ' '/User time/ {print $2}' "$dir/time.txt")
	sys=$(awk -F': ' '/System time/ {print $2}' "$dir/time.txt")
	rss=$(awk -F': ' '/Maximum resident/ {print $2}' "$dir/time.txt")
	cpu=$(awk -v u="$user" -v s="$sys" -v n="$n" 'BEGIN {printf "%.0f", (u + s) / n * 1e6}')
	rate=$(awk -v n="$n" -v w="$wall" 'BEGIN {printf "%.0f", n / w}')
	printf '%-10s %8s %10s %8s %8s %11s %10s\n' "$kind" "$wall" "$rate" "$user" "$sys" "$cpu" "$rss"
}

size=$(stat -c %s "$corpus/corpus.mbox")
echo "certharvest scan: $N messages ($size bytes as mbox), $RUNS runs of each, alternating, $(nproc) cores, $(go version | cut -d' ' -f3)${WORKERS:+, --workers $WORKERS}"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-10s %8s %10s %8s %8s %11s %10s\n' kind wall_s msgs_per_s user_s sys_s cpu_us_msg maxrss_kB
rows=$out/rows.txt
mkdir -p "$out"
for run in $(seq 1 "$RUNS"); do
	scan eml "$out/eml-$run" "$corpus/messages" "$N" | tee -a "$rows"
	scan mbox "$out/mbox-$run" "$corpus/corpus.mbox" "$N" | tee -a "$rows"
done
med() { awk -v k="$1" -v c="$2" '$1 == k {print $c}' "$rows" | median; }
for kind in eml mbox; do
	printf '%-10s %8s %10s %8s %8s %11s %10s\n' "median-$kind" "$(med $kind 2)" "$(med $kind 3)" \
		"$(med $kind 4)" "$(med $kind 5)" "$(med $kind 6)" "$(med $kind 7)"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# The peak RSS as the mbox grows: its first messages, up to each size.
for s in ${SIZES:-}; do
	part=$out/part-$s.mbox
	head -c "$s" "$corpus/corpus.mbox" >"$part.tmp"
	# Cut at the last message's "From " line: whole messages only.
	cut=$(grep -b -a '^From gencorpus@example.org ' "$part.tmp" | tail -1 | cut -d: -f1)
	head -c "$cut" "$part.tmp" >"$part"
	rm "$part.tmp"
	n=$(grep -c -a '^From gencorpus@example.org ' "$part")
	scan "mbox-$s" "$out/mbox-$s" "$part" "$n"
	rm "$part"
done
echo "outputs: $out ($(du -sh "$out" | cut -f1)); when done: rm -rf $BENCH_DIR/out-*"
