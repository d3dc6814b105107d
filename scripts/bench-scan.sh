#!/usr/bin/env bash
# bench-scan.sh: end-to-end throughput of `certharvest scan`.
#
#   scripts/bench-scan.sh [N]        # N messages, default 2000
#
# Builds bin/certharvest, generates N valid RSA-2048 messages from distinct
# addresses (go run ./scripts/gencorpus -bench N; cached per N), then runs
# `certharvest scan` on them RUNS times, each into a fresh certificate folder
# and report, with the log written to a file. For each run it prints the wall
# time of the scan alone, messages per second, the CPU time (user and system,
# and per message) and the peak RSS, then the medians. Every run must accept
# every message and store every certificate, or the script fails.
#
# Environment:
#   RUNS=5                  scans to run (the median is reported)
#   WORKERS=                --workers for scan (default: scan's own, all cores)
#   BENCH_DIR=/var/tmp/certharvest-bench
#                           corpus cache and scan output. Not /tmp by default:
#                           on some machines /tmp is much slower to create
#                           files in, which would be measured instead.
#   CERTHARVEST=            a certharvest binary to measure instead of building
#                           bin/certharvest (to compare two builds)
#   SCAN_ARGS=              extra scan flags, e.g. "--log-level warn"
#   SENDERS=                the N messages come from this many senders, each
#                           with one certificate (gencorpus -senders): the
#                           common case of a sender already known
#   KNOWN=                  with SENDERS: 1 stores every sender's certificate
#                           before each timed run (an untimed scan of the first
#                           SENDERS messages), so that every certificate is
#                           known and unchanged, as on a re-scan of an archive
#   PROFILE=                strict, multipurpose or legacy: every certificate
#                           claims that S/MIME BR profile, so that each new one
#                           is linted by zlint (gencorpus -profile; cached apart)
#   REVOCATION=             soft or hard: scan with --revocation and a warm cache.
#                           The corpus's certificates then name an OCSP responder
#                           and CRLs on 127.0.0.1:REVOCATION_PORT (8788), which
#                           scripts/benchocsp serves while the script runs; one
#                           untimed scan fills the cache (--revocation-cache, in
#                           the outputs), which the timed runs read. "corpus": the
#                           same corpus and responder without the flags, for a
#                           build that has none (to compare with the same messages).
#                           Not with SENDERS or PROFILE.
#
# The outputs of the runs are kept ($BENCH_DIR/out-*; delete them when done):
# on ext4 without a journal, as here, creating files is much slower for one
# to six minutes after thousands were deleted nearby (the allocator skips
# recently deleted inodes one by one), and a benchmark that deleted its last
# output would measure that. On a shared machine, look at the CPU per message
# as well as the wall time: the load average is printed before and after.
#
# Peak RSS needs GNU time (/usr/bin/time -v; Debian/Ubuntu: apt-get install
# time); without it only the wall time is reported.
set -euo pipefail

N=${1:-2000}
RUNS=${RUNS:-5}
BENCH_DIR=${BENCH_DIR:-/var/tmp/certharvest-bench}
AT=2026-06-01T00:00:00Z # the corpus's verification time (testcorpus.At)

cd "$(dirname "$0")/.."
case $N in '' | *[!0-9]* | 0) echo "usage: $0 [N]" >&2; exit 2 ;; esac

if [[ -z ${CERTHARVEST:-} ]]; then
	echo "building bin/certharvest" >&2
	go build -o bin/certharvest ./cmd/certharvest
	CERTHARVEST=bin/certharvest
fi

SENDERS=${SENDERS:-}
KNOWN=${KNOWN:-}
case $SENDERS in *[!0-9]* | 0) echo "$0: SENDERS must be a positive number" >&2; exit 2 ;; esac
[[ -n $KNOWN && -z $SENDERS ]] && { echo "$0: KNOWN needs SENDERS" >&2; exit 2; }
corpus=$BENCH_DIR/corpus-$N${SENDERS:+-senders-$SENDERS}
profile=()
case ${PROFILE:-} in
'') ;;
strict | multipurpose | legacy) corpus=$corpus-$PROFILE profile=(-profile "$PROFILE") ;;
*) echo "PROFILE: want strict, multipurpose or legacy" >&2; exit 2 ;;
esac
gen=()
REVOCATION=${REVOCATION:-}
REVOCATION_PORT=${REVOCATION_PORT:-8788}
case $REVOCATION in
'') ;;
soft | hard | corpus)
	[[ -n $SENDERS || -n ${PROFILE:-} ]] && { echo "$0: REVOCATION cannot be combined with SENDERS or PROFILE" >&2; exit 2; }
	corpus=$corpus-revocation-$REVOCATION_PORT
	gen=(-revocation "http://127.0.0.1:$REVOCATION_PORT")
	;;
*) echo "REVOCATION=$REVOCATION: want soft, hard or corpus" >&2; exit 2 ;;
esac
# The cache is kept per version of the corpus generator, so that a corpus
# minted by an older one (signing-only leaves, say) is not measured as if
# it were today's.
corpus=$corpus-gen-$(git rev-parse --short HEAD:internal/testcorpus 2>/dev/null || echo unknown)-$(git rev-parse --short HEAD:scripts/gencorpus 2>/dev/null || echo unknown)
if [[ ! -f $corpus/.complete ]]; then
	echo "generating $N messages into $corpus (once; cached)" >&2
	rm -rf "$corpus"
	mkdir -p "$corpus"
	go run ./scripts/gencorpus -bench "$N" ${SENDERS:+-senders "$SENDERS"} "${profile[@]}" "${gen[@]}" -out "$corpus" >&2
	touch "$corpus/.complete"
fi

gnutime=
if /usr/bin/time -v true >/dev/null 2>&1; then
	gnutime=/usr/bin/time
else
	echo "note: GNU time not found (apt-get install time): no CPU time or peak RSS" >&2
fi

out=$BENCH_DIR/out-$(date +%Y%m%d-%H%M%S)-$$
workers=()
[[ -n ${WORKERS:-} ]] && workers=(--workers "$WORKERS")
# shellcheck disable=SC2206 # SCAN_ARGS is split on purpose
extra=(${SCAN_ARGS:-})

median() { sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

# The responder of the revocation corpus, stopped (by its process id) when
# the script ends; with soft or hard, a cache filled by one untimed scan.
responder=
stop_responder() { [[ -n $responder ]] && kill "$responder" 2>/dev/null && wait "$responder" 2>/dev/null; true; }
trap stop_responder EXIT
if [[ -n $REVOCATION ]]; then
	mkdir -p "$out/warm"
	go build -o "$BENCH_DIR/benchocsp" ./scripts/benchocsp
	"$BENCH_DIR/benchocsp" -cas "$corpus/revocation-cas.pem" -listen "127.0.0.1:$REVOCATION_PORT" 2>"$out/responder.log" &
	responder=$!
	for _ in $(seq 50); do
		grep -q answering "$out/responder.log" && break
		sleep 0.1
	done
	if [[ $REVOCATION != corpus ]]; then
		extra+=(--revocation "$REVOCATION" --revocation-cache "$out/revocation-cache")
		echo "warming the revocation cache: one untimed scan" >&2
		"$CERTHARVEST" scan --quiet --trust "$corpus/trust.pem" --dkim-keys "$corpus/dkim-keys.txt" --at "$AT" \
			--certs "$out/warm/certs" --report "$out/warm/report.jsonl" --log "$out/warm/scan.log" \
			"${workers[@]}" "${extra[@]}" "$corpus/messages"
	fi
fi

echo "certharvest scan: $N messages${SENDERS:+ from $SENDERS senders}${KNOWN:+, all known}${PROFILE:+ (S/MIME BR $PROFILE)}, $RUNS runs, $(nproc) cores, $(go version | cut -d' ' -f3)${WORKERS:+, --workers $WORKERS}${REVOCATION:+, revocation $REVOCATION}"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
printf '%-6s %8s %10s %8s %8s %11s %10s\n' run wall_s msgs_per_s user_s sys_s cpu_us_msg maxrss_kB
rates=() walls=() rsss=() users=() syss=() cpus=()
for run in $(seq 1 "$RUNS"); do
	dir=$out/run-$run
	mkdir -p "$dir"
	if [[ -n $KNOWN ]]; then
		mkdir -p "$dir/known"
		for ((i = 0; i < SENDERS; i++)); do
			cp "$corpus/messages/$(printf 'bench-%06d.eml' "$i")" "$dir/known/"
		done
		"$CERTHARVEST" scan --quiet --trust "$corpus/trust.pem" --dkim-keys "$corpus/dkim-keys.txt" \
			--at "$AT" --certs "$dir/certs" --report /dev/null --log /dev/null "$dir/known"
	fi
	sync # let earlier writes settle so that they are not timed here
	cmd=("$CERTHARVEST" scan --quiet --trust "$corpus/trust.pem" --dkim-keys "$corpus/dkim-keys.txt"
		--at "$AT" --certs "$dir/certs" --report "$dir/report.jsonl" --log "$dir/scan.log"
		"${workers[@]}" "${extra[@]}" "$corpus/messages")
	start=$EPOCHREALTIME
	if [[ -n $gnutime ]]; then
		$gnutime -v -o "$dir/time.txt" "${cmd[@]}"
	else
		"${cmd[@]}"
	fi
	end=$EPOCHREALTIME
	wall=$(awk -v s="$start" -v e="$end" 'BEGIN {printf "%.3f", e - s}')
	accepted=$(grep -c '"outcome":"accepted"' "$dir/report.jsonl" || true)
	stored=$(find "$dir/certs" -maxdepth 1 -name '*.crt' | wc -l)
	if [[ $accepted != "$N" || $stored != "${SENDERS:-$N}" ]]; then
		echo "run $run: $accepted of $N messages accepted, $stored certificates stored; see $dir" >&2
		exit 1
	fi
	rate=$(awk -v n="$N" -v w="$wall" 'BEGIN {printf "%.0f", n / w}')
	user=- sys=- rss=- cpu=-
	if [[ -n $gnutime ]]; then
		user=$(awk -F': ' '/User time/ {print $2}' "$dir/time.txt")
		sys=$(awk -F': ' '/System time/ {print $2}' "$dir/time.txt")
		rss=$(awk -F': ' '/Maximum resident/ {print $2}' "$dir/time.txt")
		cpu=$(awk -v u="$user" -v s="$sys" -v n="$N" 'BEGIN {printf "%.0f", (u + s) / n * 1e6}')
		users+=("$user") syss+=("$sys") rsss+=("$rss") cpus+=("$cpu")
	fi
	rates+=("$rate") walls+=("$wall")
	printf '%-6s %8s %10s %8s %8s %11s %10s\n' "$run" "$wall" "$rate" "$user" "$sys" "$cpu" "$rss"
done
printf '%-6s %8s %10s' median "$(printf '%s\n' "${walls[@]}" | median)" "$(printf '%s\n' "${rates[@]}" | median)"
if [[ -n $gnutime ]]; then
	printf ' %8s %8s %11s %10s' "$(printf '%s\n' "${users[@]}" | median)" "$(printf '%s\n' "${syss[@]}" | median)" \
		"$(printf '%s\n' "${cpus[@]}" | median)" "$(printf '%s\n' "${rsss[@]}" | median)"
fi
printf '\n'
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
echo "log of the last run: $(wc -l <"$dir/scan.log") lines, report: $(wc -l <"$dir/report.jsonl") lines"
if [[ -n $responder ]]; then
	stop_responder
	responder=
	echo "responder: $(tail -n 1 "$out/responder.log")"
fi
echo "outputs: $out ($(du -sh "$out" | cut -f1)); when done: rm -rf $BENCH_DIR/out-*"
