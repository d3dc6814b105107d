#!/usr/bin/env bash
# bench-callgrind.sh: instructions per message of `certharvest scan`, counted
# by valgrind's callgrind: the same on a loaded machine as on a quiet one
# (two runs of one build differ by well under 0.1 %), where wall and CPU
# times vary by tens of percent. It counts the instructions the process
# runs in user space (the kernel's work for its system calls is not
# counted), one thread at a time.
#
#   scripts/bench-callgrind.sh [-n N] BIN...    # e.g. /tmp/old /tmp/new
#
# For each binary, alternately, RUNS times: a scan of the first N messages
# (default 300) of the benchmark corpus of scripts/bench-scan.sh (2,000
# RSA-2048 messages from distinct addresses, generated once into
# $BENCH_DIR/corpus-2000) and a scan of its first message alone, each into
# a fresh certificate folder, with the log written to a file, --workers 1
# and GOMAXPROCS=1. The instructions per message are the difference of the
# two, divided by N-1: the start-up (reading the trust and keys) is left
# out. Every message must be accepted. The callgrind profiles are kept
# ($BENCH_DIR/callgrind/profiles/I-NAME.RUN.out, I the binary's place
# in the arguments): `callgrind_annotate FILE` shows
# where the instructions went.
#
# Environment:
#   RUNS=1          runs per binary (the counts hardly vary)
#   SCAN_ARGS=      extra scan flags, e.g. "--log-level warn"
#   BENCH_DIR=/var/tmp/certharvest-bench
#   SENDERS=        the corpus of bench-scan.sh's SENDERS (2,000 messages from
#                   this many senders, each with one certificate), and the
#                   second scan is of its first SENDERS messages instead of
#                   one: the instructions per message are then those of a
#                   sender already known (certificate stored and unchanged),
#                   (instr(N) - instr(SENDERS)) / (N - SENDERS)
#
# Go under valgrind 3.19 needs two runtime settings, set here: no RDTSCP
# (GODEBUG=cpu.rdtscp=off; valgrind cannot decode it) and no asynchronous
# preemption (asyncpreemptoff=1; callgrind asserts on its signals).
set -euo pipefail

N=300
if [[ ${1:-} == -n ]]; then
	N=$2
	shift 2
fi
if [[ $# -eq 0 ]]; then
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
fi
case $N in '' | *[!0-9]* | 0 | 1) echo "$0: N must be a number above 1" >&2; exit 2 ;; esac
((N <= 2000)) || { echo "$0: N is at most 2000 (the corpus)" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "$0: valgrind not found (apt-get install valgrind)" >&2; exit 2; }
RUNS=${RUNS:-1}
BENCH_DIR=${BENCH_DIR:-/var/tmp/certharvest-bench}
AT=2026-06-01T00:00:00Z # the corpus's verification time (testcorpus.At)
repo=$(cd "$(dirname "$0")/.." && pwd -P)

SENDERS=${SENDERS:-}
case $SENDERS in *[!0-9]* | 0) echo "$0: SENDERS must be a positive number" >&2; exit 2 ;; esac
base=${SENDERS:-1}
((N > base)) || { echo "$0: N must be above SENDERS" >&2; exit 2; }

corpus=$BENCH_DIR/corpus-2000
sets=$BENCH_DIR/callgrind
if [[ -n $SENDERS ]]; then
	corpus=$corpus-senders-$SENDERS
	sets=$sets-senders-$SENDERS
fi
if [[ ! -f $corpus/.complete ]]; then
	echo "generating 2000 messages into $corpus (once; cached)" >&2
	rm -rf "$corpus"
	mkdir -p "$corpus"
	(cd "$repo" && go run ./scripts/gencorpus -bench 2000 ${SENDERS:+-senders "$SENDERS"} -out "$corpus" >&2)
	touch "$corpus/.complete"
fi
for n in "$base" "$N"; do
	if [[ ! -d $sets/set-$n ]]; then
		rm -rf "$sets/set-$n.tmp"
		mkdir -p "$sets/set-$n.tmp"
		files=()
		for ((i = 0; i < n; i++)); do
			files+=("$corpus/messages/$(printf 'bench-%06d.eml' "$i")")
		done
		cp "${files[@]}" "$sets/set-$n.tmp/"
		mv "$sets/set-$n.tmp" "$sets/set-$n"
	fi
done

# shellcheck disable=SC2206 # SCAN_ARGS is split on purpose
extra=(${SCAN_ARGS:-})
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-callgrind.XXXXXX")
trap 'rm -rf "$work"' EXIT

# count BIN N OUT: the instructions of a scan of set-N.
count() {
	local bin=$1 n=$2 out=$3 dir
	dir=$work/run
	rm -rf "$dir"
	mkdir -p "$dir"
	GODEBUG=cpu.rdtscp=off,asyncpreemptoff=1 GOMAXPROCS=1 valgrind --tool=callgrind --callgrind-out-file="$out" \
		"$bin" scan --quiet --trust "$corpus/trust.pem" --dkim-keys "$corpus/dkim-keys.txt" --at "$AT" \
		--certs "$dir/certs" --report "$dir/report.jsonl" --log "$dir/scan.log" --workers 1 "${extra[@]}" \
		"$sets/set-$n" >"$dir/valgrind.txt" 2>&1 || { cat "$dir/valgrind.txt" >&2; return 1; }
	local accepted
	accepted=$(grep -c '"outcome":"accepted"' "$dir/report.jsonl" || true)
	[[ $accepted == "$n" ]] || { echo "$bin: $accepted of $n messages accepted" >&2; return 1; }
	sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$dir/valgrind.txt"
}

echo "certharvest scan under callgrind: $N messages${SENDERS:+ from $SENDERS senders}, $RUNS run(s) per binary${SCAN_ARGS:+, $SCAN_ARGS}"
printf '%-4s %-40s %15s %15s %12s\n' run binary "instr(N)" "instr($base)" instr/msg
for run in $(seq 1 "$RUNS"); do
	i=0
	for bin in "$@"; do
		i=$((i + 1))
		mkdir -p "$sets/profiles"
		all=$(count "$bin" "$N" "$sets/profiles/$i-$(basename "$bin").$run.out")
		one=$(count "$bin" "$base" "$work/one.out")
		printf '%-4s %-40s %15s %15s %12s\n' "$run" "$bin" "$all" "$one" "$(((all - one) / (N - base)))"
	done
done
echo "profiles: $sets/profiles/"
