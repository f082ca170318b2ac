#!/usr/bin/env bash
# bench_intent.sh: what the audit intent costs a state-changing AWS operation, in one run.
#
# The AWS door writes, for every operation that changes stored state, an audit record with outcome
# "started" (the intent, fdatasync'd) before the operation runs, then the final record as for every
# request (api/aws/door.h). A read writes only the final record. This script drives, on one
# `kmsd --dev` (loopback HTTP, audit log on), two pairs of key management operations of about the
# same cost with kms_load (closed loop, keep-alive, SigV4 per request):
#   tag-resource (TagResource, the same tag every time)   beside list-resource-tags (ListResourceTags)
#   update-key-description (the same Description)         beside describe-key (DescribeKey)
# Each write commits a store transaction (SQLite, synchronous=FULL) as well; the reads do not, so
# the write/read gap is the store commit plus the intent. --baseline-kmsd runs a second daemon built
# from another commit (one that wrote only the final record) with the same flags and the same
# kms_load, alternating with this tree's kmsd round by round (odd rounds baseline first, even rounds
# this tree first; the operations in reverse order on even rounds), so the difference between the
# two sides' gaps is what the intent costs.
#
# Every daemon starts on a fresh state folder under --state-parent (default ${TMPDIR:-/var/tmp});
# the audit log is <state>/audit, so where that folder lives decides what an fdatasync costs: the
# script prints its filesystem. After each daemon stops it counts the audit log's lines per
# operation (intents and final records) against the requests kms_load made.
#
#   tools/bench_intent.sh [--build-dir DIR] [--baseline-kmsd PATH] [--seconds S] [--connections N]
#                         [--threads T] [--workers W] [--hsm-sessions H] [--rounds R]
#                         [--state-parent DIR]
#
# Per row: requests/s, p50/p99 latency, kmsd's CPU time per request (utime + stime of its threads
# across the kms_load run, /proc/<pid>/stat, including kms_load's setup of one CreateKey) and audit
# lines per request. Exit status 1 if any kms_load run had errors (not a valid run).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="$ROOT/build"
BASELINE_KMSD=""
SECONDS_PER_OP=5
CONNECTIONS=16
THREADS=2
WORKERS=4
HSM_SESSIONS=2
ROUNDS=3
STATE_PARENT="${TMPDIR:-/var/tmp}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) BUILD="$(realpath -m "$2")"; shift 2 ;;
    --baseline-kmsd) BASELINE_KMSD="$(realpath "$2")"; shift 2 ;;
    --seconds) SECONDS_PER_OP="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --workers) WORKERS="$2"; shift 2 ;;
    --hsm-sessions) HSM_SESSIONS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --state-parent) STATE_PARENT="$2"; shift 2 ;;
    *) echo "usage: $0 [--build-dir DIR] [--baseline-kmsd PATH] [--seconds S] [--connections N] [--threads T] [--workers W] [--hsm-sessions H] [--rounds R] [--state-parent DIR]" >&2; exit 2 ;;
  esac
done

echo "== build ($BUILD)" >&2
# The build folder may be shared with other engineers: every build step takes the machine's lock.
[[ -f "$BUILD/build.ninja" ]] || flock /tmp/kms-build.lock \
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >&2
flock /tmp/kms-build.lock cmake --build "$BUILD" -j2 --target kmsd kms_load >&2

WORK="$(mktemp -d "$STATE_PARENT/kms-bench-intent-XXXXXX")"
KMSD_PID=""
cleanup() {
  if [[ -n "$KMSD_PID" ]] && kill -0 "$KMSD_PID" 2>/dev/null; then
    kill -TERM "$KMSD_PID"; wait "$KMSD_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
FS="$(findmnt -n -o FSTYPE,SOURCE,TARGET -T "$WORK" | tr -s " ")"

start_kmsd() {  # $1 = kmsd binary, $2 = state dir
  local kmsd="$1" state="$2"
  "$kmsd" --dev --state-dir "$state" --listen 127.0.0.1:0 \
    --workers "$WORKERS" --hsm-sessions "$HSM_SESSIONS" >"$WORK/kmsd.out" 2>"$WORK/kmsd.err" &
  KMSD_PID=$!
  for _ in $(seq 1 600); do
    [[ -f "$state/dev.env" ]] && return 0
    kill -0 "$KMSD_PID" 2>/dev/null || { cat "$WORK/kmsd.err" >&2; return 1; }
    sleep 0.1
  done
  echo "kmsd did not become ready" >&2; return 1
}
stop_kmsd() {
  kill -TERM "$KMSD_PID"; wait "$KMSD_PID" || true; KMSD_PID=""
}
CLK_TCK="$(getconf CLK_TCK)"
kmsd_cpu_ticks() {  # utime + stime of kmsd's threads: fields 14 and 15 of /proc/<pid>/stat
  sed 's/.*) //' "/proc/$KMSD_PID/stat" | awk '{print $12 + $13}'
}

declare -A OPERATION=([tag-resource]=TagResource [list-resource-tags]=ListResourceTags
                      [update-key-description]=UpdateKeyDescription [describe-key]=DescribeKey)
declare -A WRITES=([tag-resource]=yes [list-resource-tags]=no [update-key-description]=yes
                   [describe-key]=no)
OPS=(tag-resource list-resource-tags update-key-description describe-key)

ROWS=()
RESULTS="$WORK/results"  # side op rps p50 p99 cpu_us
FAILED=0
run_side() {  # $1 = round, $2 = side label, $3 = kmsd binary, rest = operations in order
  local round="$1" side="$2" kmsd="$3"; shift 3
  local state="$WORK/state-$round-$side"
  start_kmsd "$kmsd" "$state"
  local -A requests_of=() row_of=()
  local op line ticks_before ticks_after rps p50 p99 errors requests cpu_us
  for op in "$@"; do
    ticks_before="$(kmsd_cpu_ticks)"
    if ! line="$("$BUILD/tools/kms_load" --env-file "$state/dev.env" --op "$op" \
          --seconds "$SECONDS_PER_OP" --connections "$CONNECTIONS" --threads "$THREADS")"; then
      FAILED=1
    fi
    ticks_after="$(kmsd_cpu_ticks)"
    echo "round $round $side $line" >&2
    rps="$(sed -n 's/.* rps=\([0-9]*\).*/\1/p' <<<"$line")"
    p50="$(sed -n 's/.* p50_ms=\([0-9.]*\).*/\1/p' <<<"$line")"
    p99="$(sed -n 's/.* p99_ms=\([0-9.]*\).*/\1/p' <<<"$line")"
    errors="$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<<"$line")"
    requests="$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$line")"
    cpu_us="$(awk -v t=$((ticks_after - ticks_before)) -v hz="$CLK_TCK" -v n="${requests:-0}" \
      'BEGIN { if (n > 0) printf "%.0f", t * 1e6 / hz / n }')"
    requests_of[$op]="${requests:-0}"
    row_of[$op]="| ${rps:-0} | $p50 | $p99 | $cpu_us"
    echo "$side $op ${rps:-0} $p50 $p99 $cpu_us" >>"$RESULTS"
    [[ "${errors:-1}" == 0 ]] || FAILED=1
  done
  stop_kmsd
  # The audit log after the daemon closed it: lines per operation, intents among them. Setup adds
  # one or two lines (list-resource-tags tags the key once), so a write with an intent shows ~2.00.
  local logs=("$state"/audit/audit-*.log) name lines intents
  for op in "$@"; do
    name="${OPERATION[$op]}"
    lines="$(cat "${logs[@]}" | grep -c "\"operation\":\"$name\"" || true)"
    intents="$(cat "${logs[@]}" | grep "\"operation\":\"$name\"" | grep -c '"outcome":"started"' || true)"
    ROWS+=("| $round | $side | $name | ${WRITES[$op]} ${row_of[$op]} | $(awk -v l="$lines" -v n="${requests_of[$op]}" 'BEGIN { if (n > 0) printf "%.2f", l / n }') | $intents |")
  done
  rm -rf "$state"
}

SIDES=("this:$BUILD/firmware/kmsd")
[[ -n "$BASELINE_KMSD" ]] && SIDES=("baseline:$BASELINE_KMSD" "${SIDES[@]}")
UPTIME_BEFORE="$(uptime)"
for round in $(seq 1 "$ROUNDS"); do
  order=("${SIDES[@]}") ops=("${OPS[@]}")
  if (( round % 2 == 0 )); then
    order=(); for ((i = ${#SIDES[@]} - 1; i >= 0; i--)); do order+=("${SIDES[$i]}"); done
    ops=(); for ((i = ${#OPS[@]} - 1; i >= 0; i--)); do ops+=("${OPS[$i]}"); done
  fi
  for s in "${order[@]}"; do
    echo "== round $round: ${s%%:*} (${s#*:})" >&2
    run_side "$round" "${s%%:*}" "${s#*:}" "${ops[@]}"
  done
done
UPTIME_AFTER="$(uptime)"

echo
echo "kmsd --workers $WORKERS --hsm-sessions $HSM_SESSIONS; kms_load --connections $CONNECTIONS --threads $THREADS --seconds $SECONDS_PER_OP; $(nproc) cores shared by kmsd and kms_load"
echo "this: $BUILD/firmware/kmsd${BASELINE_KMSD:+; baseline: $BASELINE_KMSD}"
echo "state and audit log under $STATE_PARENT ($FS)"
echo "uptime before: $UPTIME_BEFORE"
echo "uptime after:  $UPTIME_AFTER"
echo
echo "| round | kmsd | operation | writes | requests/s | p50 ms | p99 ms | kmsd CPU µs/request | audit lines/request | intents |"
echo "|---:|---|---|---|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
echo
echo "Medians over $ROUNDS rounds; write / read: the write's requests/s over its read's, and the"
echo "difference of their p50 and of their CPU per request."
echo
echo "| kmsd | write | read | write req/s | read req/s | write / read | write p50 ms | read p50 ms | p50 write − read ms | write p99 ms | read p99 ms | CPU write − read µs |"
echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
median() {  # $1 = side, $2 = op, $3 = column (3 rps, 4 p50, 5 p99, 6 cpu)
  awk -v s="$1" -v o="$2" -v c="$3" '$1 == s && $2 == o { print $c }' "$RESULTS" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR > 0) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
for s in "${SIDES[@]}"; do
  side="${s%%:*}"
  for pair in "tag-resource list-resource-tags" "update-key-description describe-key"; do
    read -r w r <<<"$pair"
    wr="$(median "$side" "$w" 3)" rr="$(median "$side" "$r" 3)"
    w50="$(median "$side" "$w" 4)" r50="$(median "$side" "$r" 4)"
    w99="$(median "$side" "$w" 5)" r99="$(median "$side" "$r" 5)"
    wc="$(median "$side" "$w" 6)" rc="$(median "$side" "$r" 6)"
    awk -v side="$side" -v wn="${OPERATION[$w]}" -v rn="${OPERATION[$r]}" -v wr="$wr" -v rr="$rr" \
        -v w50="$w50" -v r50="$r50" -v w99="$w99" -v r99="$r99" -v wc="$wc" -v rc="$rc" \
      'BEGIN { printf "| %s | %s | %s | %.0f | %.0f | %.3f | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f |\n",
               side, wn, rn, wr, rr, (rr > 0 ? wr / rr : 0), w50, r50, w50 - r50, w99, r99, wc - rc }'
  done
done
exit "$FAILED"
