#!/usr/bin/env bash
# bench_door.sh: the AWS door under load, in one run (measured, never asserted:
# docs/performance.md).
#
# Builds kmsd, kms_load and hsm_bench; starts kmsd in dev mode on loopback (plain HTTP, then HTTPS with
# a certificate made here); drives each operation with kms_load (closed loop, keep-alive, SigV4 signed
# per request); runs the raw HSM loop (hsm_bench gcm_enc, 1 worker) in the same run for comparison; and
# prints a markdown table. Everything binds 127.0.0.1 and every load is time-bounded.
#
# Besides requests/s, each row gives kmsd's own CPU time per request: utime + stime of all its
# threads (/proc/<pid>/stat) across the kms_load run, divided by the requests it answered. On a
# machine shared with other work that figure moves far less than the rates do (other processes
# take cores from kmsd, not CPU time per request). It includes kms_load's setup (one CreateKey, and
# for Decrypt one Encrypt), under 1% of a 5 s run; the clock ticks are 1/CLK_TCK s (10 ms), a
# 0.5% step on a 5 s run at one core.
#
#   tools/bench_door.sh [--build-dir DIR] [--seconds S] [--connections N] [--threads T]
#                       [--workers W] [--hsm-sessions H]
#
# Environment: nothing needed. Exit status 1 if any kms_load run had errors (not a valid run).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="$ROOT/build"
SECONDS_PER_OP=5
CONNECTIONS=32
THREADS=2
WORKERS=4
HSM_SESSIONS=2
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) BUILD="$(realpath -m "$2")"; shift 2 ;;
    --seconds) SECONDS_PER_OP="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --workers) WORKERS="$2"; shift 2 ;;
    --hsm-sessions) HSM_SESSIONS="$2"; shift 2 ;;
    *) echo "usage: $0 [--build-dir DIR] [--seconds S] [--connections N] [--threads T] [--workers W] [--hsm-sessions H]" >&2; exit 2 ;;
  esac
done

echo "== build ($BUILD)" >&2
[[ -f "$BUILD/build.ninja" ]] || cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >&2
ninja -C "$BUILD" -j2 kmsd kms_load hsm_bench >&2

WORK="$(mktemp -d /tmp/kms-bench-door-XXXXXX)"
KMSD_PID=""
cleanup() {
  if [[ -n "$KMSD_PID" ]] && kill -0 "$KMSD_PID" 2>/dev/null; then
    kill -TERM "$KMSD_PID"; wait "$KMSD_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# TLS: an EC CA and a server certificate naming 127.0.0.1 as an iPAddress subjectAltName (kms_load's
# client checks it itself: tools/kms_client/connection.cc).
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/ca.key" 2>/dev/null
openssl req -x509 -new -key "$WORK/ca.key" -out "$WORK/ca.pem" -days 1 -subj /CN=kms-bench-ca 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/server.key" 2>/dev/null
openssl req -new -key "$WORK/server.key" -out "$WORK/server.csr" -subj /CN=127.0.0.1 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > "$WORK/san.ext"
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial \
  -out "$WORK/server.pem" -days 1 -extfile "$WORK/san.ext" 2>/dev/null

start_kmsd() {  # $1 = state dir, rest = extra flags
  local state="$1"; shift
  rm -f "$state/dev.env"
  "$BUILD/firmware/kmsd" --dev --state-dir "$state" --listen 127.0.0.1:0 \
    --workers "$WORKERS" --hsm-sessions "$HSM_SESSIONS" "$@" >"$WORK/kmsd.out" 2>"$WORK/kmsd.err" &
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

ROWS=()
FAILED=0
run_load() {  # $1 = transport label, $2 = op, rest = extra kms_load flags
  local label="$1" op="$2"; shift 2
  local line ticks_before ticks_after
  ticks_before="$(kmsd_cpu_ticks)"
  if ! line="$("$BUILD/tools/kms_load" --env-file "$WORK/state/dev.env" --op "$op" \
        --seconds "$SECONDS_PER_OP" --connections "$CONNECTIONS" --threads "$THREADS" "$@")"; then
    FAILED=1
  fi
  ticks_after="$(kmsd_cpu_ticks)"
  echo "$label $line" >&2
  local rps p50 p99 errors requests cpu_us
  rps="$(sed -n 's/.* rps=\([0-9]*\).*/\1/p' <<<"$line")"
  p50="$(sed -n 's/.* p50_ms=\([0-9.]*\).*/\1/p' <<<"$line")"
  p99="$(sed -n 's/.* p99_ms=\([0-9.]*\).*/\1/p' <<<"$line")"
  errors="$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<<"$line")"
  requests="$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$line")"
  cpu_us="$(awk -v t=$((ticks_after - ticks_before)) -v hz="$CLK_TCK" -v n="${requests:-0}" \
    'BEGIN { if (n > 0) printf "%.0f", t * 1e6 / hz / n }')"
  ROWS+=("| $label | $op | $rps | $p50 | $p99 | $cpu_us | $errors |")
  if [[ "$op" == "encrypt" ]]; then eval "ENC_${label}=$rps"; fi
}

echo "== kmsd (HTTP), --workers $WORKERS --hsm-sessions $HSM_SESSIONS" >&2
start_kmsd "$WORK/state"
for op in encrypt decrypt generate-data-key sign; do run_load http "$op"; done
stop_kmsd

echo "== kmsd (HTTPS)" >&2
start_kmsd "$WORK/state" --tls-cert "$WORK/server.pem" --tls-key "$WORK/server.key"
for op in encrypt decrypt generate-data-key sign; do run_load https "$op" --ca-bundle "$WORK/ca.pem"; done
stop_kmsd

echo "== raw HSM loop (hsm_bench gcm_enc, 1 worker, 3 s)" >&2
HSM_OUT="$("$BUILD/tools/hsm_bench" --ops gcm_enc --workers 1 --seconds 3)"
echo "$HSM_OUT" >&2
RAW="$(awk -F'|' '/\| gcm_enc \| 1 \|/ {gsub(/ /,"",$4); print $4}' <<<"$HSM_OUT")"
HAL="$(awk -F'|' '/\| gcm_enc \| 1 \|/ {gsub(/ /,"",$7); print $7}' <<<"$HSM_OUT")"

echo
echo "kmsd --workers $WORKERS --hsm-sessions $HSM_SESSIONS; kms_load --connections $CONNECTIONS --threads $THREADS --seconds $SECONDS_PER_OP; $(nproc) cores shared by kmsd and kms_load"
echo
echo "| transport | operation | requests/s | p50 ms | p99 ms | kmsd CPU µs/request | errors |"
echo "|---|---|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
echo
echo "| comparison | ops/s |"
echo "|---|---:|"
echo "| raw PKCS#11 AES-GCM encrypt 1 KiB (hsm_bench, 1 worker) | $RAW |"
echo "| HAL AES-GCM encrypt 1 KiB (hsm_bench, 1 worker) | $HAL |"
echo "| door Encrypt 1 KiB over HTTP | ${ENC_http:-0} |"
echo "| door Encrypt 1 KiB over HTTPS | ${ENC_https:-0} |"
if [[ -n "$RAW" && "$RAW" -gt 0 ]]; then
  echo
  echo "HTTP door / raw HSM Encrypt: $(( 100 * ${ENC_http:-0} / RAW ))% (goal >= 30%); HTTPS: $(( 100 * ${ENC_https:-0} / RAW ))%"
  echo "HTTP door Encrypt vs 10,000/s goal: ${ENC_http:-0}/s ($([[ ${ENC_http:-0} -gt 10000 ]] && echo met || echo NOT met))"
fi
exit "$FAILED"
