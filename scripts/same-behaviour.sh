#!/usr/bin/env bash
# Compare the behaviour of two builds of certharvest: their reports, logs,
# summaries, exit statuses and certificate folders, byte for byte apart
# from times and durations. Exits 0 when they are the same, 1 with the
# first differences when not, 2 on a usage error.
#
# Usage: scripts/same-behaviour.sh OLD_BIN NEW_BIN
#
#   go build -o /tmp/old ./cmd/certharvest   # at the commit before a change
#   go build -o /tmp/new ./cmd/certharvest   # after it
#   scripts/same-behaviour.sh /tmp/old /tmp/new
#
# Both binaries run, one after the other, the same cases in folders laid
# out alike (so that the paths in reports and logs are the same):
#
#   scan-sample-w1   what `make run` does (--trust, --dkim-keys and --at of
#                    the sample), with --workers 1: order is deterministic
#   scan-sample      the same with the default workers
#   scan-mutated-w1  the sample and N mutated messages (scripts/mutate:
#                    damaged headers, MIME, base64, DER, DKIM...; messages
#                    signed again by the mutator's keys, which are added to
#                    the sample's in the keys file), --workers 1
#   scan-mutated     the same with the default workers, and a symbolic link
#                    where one address's certificate goes (store_refused,
#                    exit status 1)
#   serve-sample     serve --maildir on a spool holding the sample messages,
#   serve-mutated    and the mutated set, stopped by SIGTERM once every
#                    message is reported and archived
#
# Compared, after normalisation: report lines ("time", "duration_ms", and
# a "verified_at" that is neither --at nor zero, set to constants), log
# lines (time stamps, elapsed= values), the summary on standard output
# (duration, rate), standard error, the exit status, the certificate
# folder (names, link targets, checksums) and, for serve, the names in the
# spool's new/, cur/ (with their :2,S or :2,ST flags), tmp/ and
# quarantine/. Where the order is not deterministic (default workers,
# serve), lines are sorted, and which of several messages of an address
# stored its certificate and which found it unchanged is masked (the
# --workers 1 runs compare that exactly).
#
# Environment: N (default 1615) mutated messages, SEED (default 14) of the
# mutations, KEEP=1 to keep the work folder (it is always kept on a
# difference), SERVE_TIMEOUT (default 300) seconds for serve to finish.
# Needs the Go toolchain (to build scripts/mutate), and nothing else
# beyond POSIX tools.
set -euo pipefail

if [ $# -ne 2 ]; then
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
fi
for b in "$1" "$2"; do
	[ -f "$b" ] && [ -x "$b" ] || { echo "same-behaviour: $b is not an executable" >&2; exit 2; }
done
abs() { (cd "$(dirname "$1")" && printf '%s/%s\n' "$(pwd -P)" "$(basename "$1")"); }
old=$(abs "$1")
new=$(abs "$2")
repo=$(cd "$(dirname "$0")/.." && pwd -P)
N=${N:-1615}
SEED=${SEED:-14}
SERVE_TIMEOUT=${SERVE_TIMEOUT:-300}
AT=2026-06-01T00:00:00Z
export LC_ALL=C

work=$(mktemp -d "${TMPDIR:-/tmp}/same-behaviour.XXXXXX")
keep=${KEEP:-}
serve_pid=
cleanup() {
	if [ -n "$serve_pid" ]; then kill -KILL "$serve_pid" 2>/dev/null || true; fi
	if [ -z "$keep" ]; then rm -rf "$work"; else echo "same-behaviour: work folder kept: $work" >&2; fi
}
trap cleanup EXIT

# Inputs, shared by both binaries: $work/in, seen from a run folder as
# testdata/ (a link), as `make run` sees the repository's testdata/.
in=$work/in
mkdir -p "$in/sample" "$in/mutated"
cp -R "$repo/testdata/sample/messages" "$repo/testdata/sample/trust.pem" "$repo/testdata/sample/dkim-keys.txt" "$in/sample/"
(cd "$repo" && go build -o "$work/mutate" ./scripts/mutate)
"$work/mutate" -in "$in/sample/messages" -out "$in/mutated/messages" -n "$N" -seed "$SEED" \
	-keys "$in/sample/dkim-keys.txt" -keys-out "$in/mutated/dkim-keys.txt"

# Spools for serve: every message under a name that starts with the time
# now (its delivery time, so that the archive keeps it), written long ago
# (so that no file waits to settle, empty ones included).
stamp=$(date +%s)
for set in sample mutated; do
	mkdir -p "$in/spool-$set/new" "$in/spool-$set/cur" "$in/spool-$set/tmp"
	for f in "$in/$set/messages"/*.eml; do
		cp -P "$f" "$in/spool-$set/new/$stamp.$(basename "$f")"
	done
	find "$in/spool-$set/new" -type f -exec touch -t 202001010000 {} +
done

# run_scan BIN DIR SET [FLAG...]: a scan as `make run` does it, in DIR.
run_scan() {
	local bin=$1 dir=$2 set=$3
	shift 3
	mkdir -p "$dir"
	ln -s ../../in "$dir/testdata"
	local rc=0
	(cd "$dir" && "$bin" scan --trust testdata/sample/trust.pem --dkim-keys "testdata/$set/dkim-keys.txt" \
		--at "$AT" --certs ./certs --report ./report.jsonl --log ./certharvest.log "$@" "testdata/$set/messages" \
		>stdout 2>stderr) || rc=$?
	echo "$rc" >"$dir/rc"
}

# run_serve BIN DIR SET: serve over a copy of the set's spool until every
# message is reported and out of new/, then SIGTERM.
run_serve() {
	local bin=$1 dir=$2 set=$3
	mkdir -p "$dir"
	ln -s ../../in "$dir/testdata"
	cp -RPp "$in/spool-$set" "$dir/spool"
	local want
	want=$(find "$dir/spool/new" ! -type d | wc -l)
	(cd "$dir" && exec "$bin" serve --maildir spool --trust testdata/sample/trust.pem \
		--dkim-keys "testdata/$set/dkim-keys.txt" --at "$AT" --certs ./certs --report ./report.jsonl \
		--log ./certharvest.log >stdout 2>stderr) &
	serve_pid=$!
	local waited=0 lines left
	while :; do
		lines=0
		[ -f "$dir/report.jsonl" ] && lines=$(wc -l <"$dir/report.jsonl")
		left=$(find "$dir/spool/new" ! -type d | wc -l)
		if [ "$lines" -ge "$want" ] && [ "$left" -eq 0 ]; then
			break
		fi
		if ! kill -0 "$serve_pid" 2>/dev/null; then
			echo "serve exited early: $lines of $want reported, $left left in new/" | tee "$dir/incomplete" >&2
			break
		fi
		if [ $((waited += 1)) -gt $((SERVE_TIMEOUT * 5)) ]; then
			echo "$lines of $want reported, $left left in new/ after ${SERVE_TIMEOUT}s" | tee "$dir/incomplete" >&2
			break
		fi
		sleep 0.2
	done
	kill -TERM "$serve_pid" 2>/dev/null || true
	local rc=0
	wait "$serve_pid" || rc=$?
	serve_pid=
	echo "$rc" >"$dir/rc"
}

# The lines of a log or report whose order depends on which worker
# finished first: which message of an address stored its certificate.
mask_store='s/"action":"(stored|unchanged|kept_existing)"/"action":"STORE"/; s/"detail":"certificate (stored|unchanged|kept_existing) for /"detail":"certificate STORE for /; s/\| written file ([^ ]*),bytes=[0-9]*,ok=True$/| STORE \1/; s/\| file ([^ ]*) already holds this certificate: unchanged$/| STORE \1/; s/\| file ([^ ]*) holds a certificate as new or newer \(NotBefore\): kept it$/| STORE \1/; s/accepted: certificate (stored|unchanged|kept_existing) for (.*) action=(stored|unchanged|kept_existing)$/accepted: certificate STORE for \2 action=STORE/'

# normalise DIR SORTED: DIR.norm/ with what is compared.
normalise() {
	local dir=$1 sorted=$2 out=$1.norm
	mkdir -p "$out"
	local order=cat mask=
	if [ "$sorted" = sorted ]; then order=sort mask=$mask_store; fi
	touch "$dir/report.jsonl" "$dir/certharvest.log"
	# verified_at is --at, or the zero time (scan's read errors), or the
	# time now (serve's): the last is a time like "time".
	sed -E 's/^\{"time":"[^"]*",/{"time":"TIME",/; s/,"duration_ms":[-+.0-9eE]+\}$/,"duration_ms":0}/
		s/"verified_at":"('"$AT"'|0001-01-01T00:00:00Z)"/"verified_at":<\1>/; s/"verified_at":"[^"]*"/"verified_at":"NOW"/
		s/"verified_at":<([^>]*)>/"verified_at":"\1"/' "$dir/report.jsonl" |
		sed -E "$mask" | $order >"$out/report"
	sed -E 's/^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z /TIME /; s/ (elapsed)=[^ ]+/ \1=DURATION/g' \
		"$dir/certharvest.log" | sed -E "$mask" | $order >"$out/log"
	sed -E 's/^([0-9]+ messages?) in [^ ]+ \([^)]*\)/\1 in DURATION (RATE)/' "$dir/stdout" >"$out/stdout"
	$order "$dir/stderr" >"$out/stderr"
	cp "$dir/rc" "$out/rc"
	: >"$out/certs"
	if [ -d "$dir/certs" ]; then
		(cd "$dir/certs" && find . | sort | while IFS= read -r f; do
			if [ -L "$f" ]; then
				echo "$f -> $(readlink "$f")"
			elif [ -f "$f" ]; then
				echo "$f $(cksum <"$f")"
			else
				echo "$f/"
			fi
		done) >"$out/certs"
	fi
	if [ -d "$dir/spool" ]; then
		for sub in new cur tmp quarantine; do
			if [ -d "$dir/spool/$sub" ]; then
				(cd "$dir/spool/$sub" && find . ! -name . | sort) >"$out/spool-$sub"
			fi
		done
	fi
}

cases="scan-sample-w1 scan-sample scan-mutated-w1 scan-mutated serve-sample serve-mutated"
for side in old new; do
	bin=$old
	[ "$side" = new ] && bin=$new
	echo "same-behaviour: running $side ($bin)" >&2
	d=$work/$side
	run_scan "$bin" "$d/scan-sample-w1" sample --workers 1
	run_scan "$bin" "$d/scan-sample" sample
	run_scan "$bin" "$d/scan-mutated-w1" mutated --workers 1
	mkdir -p "$d/scan-mutated/certs"
	ln -s nowhere "$d/scan-mutated/certs/opaque@example.com.crt"
	run_scan "$bin" "$d/scan-mutated" mutated
	run_serve "$bin" "$d/serve-sample" sample
	run_serve "$bin" "$d/serve-mutated" mutated
	for c in $cases; do
		case $c in
		*-w1) normalise "$d/$c" exact ;;
		*) normalise "$d/$c" sorted ;;
		esac
	done
done

echo "same-behaviour: the reasons the old binary gave:" >&2
for c in scan-mutated-w1 scan-mutated serve-mutated; do
	grep -o '"reason":"[^"]*"' "$work/old/$c/report.jsonl" | cut -d'"' -f4 | sort | uniq -c | sort -rn |
		awk -v c="$c" '{ s = s " " $2 "=" $1; n++ } END { print "  " c " (" n " reasons):" s }' >&2
done

status=0
for c in $cases; do
	same=1
	for name in $( (ls "$work/old/$c.norm"; ls "$work/new/$c.norm") | sort -u); do
		f=$work/old/$c.norm/$name g=$work/new/$c.norm/$name
		if [ ! -e "$f" ] || [ ! -e "$g" ]; then
			echo "DIFFERENT $c/$name: only one of the two has it"
			same=
		elif ! cmp -s "$f" "$g"; then
			echo "DIFFERENT $c/$name (- old, + new):"
			diff -u "$f" "$g" | sed -n '3,24p' || true
			same=
		fi
	done
	if [ -n "$same" ]; then
		echo "same $c: $(wc -l <"$work/old/$c.norm/report") report lines, $(wc -l <"$work/old/$c.norm/log") log lines, exit status $(cat "$work/old/$c.norm/rc")"
	else
		status=1
	fi
done
for f in "$work"/*/serve-*/incomplete; do
	if [ -e "$f" ]; then
		echo "INCOMPLETE ${f#"$work"/}: $(cat "$f")"
		status=1
	fi
done
if [ "$status" -ne 0 ]; then
	keep=1
	echo "same-behaviour: DIFFERENT (outputs in $work/old and $work/new, normalised in *.norm)"
	exit 1
fi
echo "same-behaviour: the same"
