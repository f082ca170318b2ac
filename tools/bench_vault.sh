#!/usr/bin/env bash
# bench_vault.sh: the Vault door beside the AWS door, in one run (figures in docs/performance.md).
#
# Builds kmsd and kms_load (under the shared build lock); starts kmsd in dev mode on loopback (plain
# HTTP, then HTTPS with a certificate made here unless --http-only); drives, on the same daemon and
# key store, the AWS door's Encrypt and Decrypt (SigV4 per request) and the Vault door's transit
# encrypt, decrypt and batch encrypt of 100 items (X-Vault-Token, dev.env's VAULT_TOKEN) with
# kms_load (closed loop, keep-alive, 1 KiB plaintexts); prints a markdown table. Everything binds
# 127.0.0.1 and every load is time-bounded. Each row also gives kmsd's CPU time per request (utime +
# stime across the kms_load run, /proc/<pid>/stat, over the requests answered; includes kms_load's
# setup, as tools/bench_door.sh says).
#
#   tools/bench_vault.sh [--build-dir DIR] [--seconds S] [--connections N] [--threads T]
#                        [--workers W] [--hsm-sessions H] [--http-only]
#
# Exit status 1 if any kms_load run had errors (not a valid run).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="$ROOT/build"
SECONDS_PER_OP=5
CONNECTIONS=32
THREADS=2
WORKERS=4
HSM_SESSIONS=2
HTTPS=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) BUILD="$(realpath -m "$2")"; shift 2 ;;
    --seconds) SECONDS_PER_OP="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --workers) WORKERS="$2"; shift 2 ;;
    --hsm-sessions) HSM_SESSIONS="$2"; shift 2 ;;
    --http-only) HTTPS=0; shift ;;
    *) echo "usage: $0 [--build-dir DIR] [--seconds S] [--connections N] [--threads T] [--workers W] [--hsm-sessions H] [--http-only]" >&2; exit 2 ;;
  esac
done

echo "== build ($BUILD)" >&2
[[ -f "$BUILD/build.ninja" ]] || cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >&2
flock /tmp/kms-build.lock cmake --build "$BUILD" -j2 --target kmsd kms_load >&2

WORK="$(mktemp -d /tmp/kms-bench-vault-XXXXXX)"
KMSD_PID=""
cleanup() {
  if [[ -n "$KMSD_PID" ]] && kill -0 "$KMSD_PID" 2>/dev/null; then
    kill -TERM "$KMSD_PID"; wait "$KMSD_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# TLS as tools/bench_door.sh: an EC CA and a server certificate with IP:127.0.0.1.
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
    [[ -f "$state/dev.env" ]] && grep -q '^VAULT_TOKEN=' "$state/dev.env" && return 0
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
run_load() {  # $1 = transport label, $2 = door label, $3 = op, rest = extra kms_load flags
  local label="$1" door="$2" op="$3"; shift 3
  local line ticks_before ticks_after
  ticks_before="$(kmsd_cpu_ticks)"
  if ! line="$("$BUILD/tools/kms_load" --env-file "$WORK/state/dev.env" --op "$op" \
        --seconds "$SECONDS_PER_OP" --connections "$CONNECTIONS" --threads "$THREADS" "$@")"; then
    FAILED=1
  fi
  ticks_after="$(kmsd_cpu_ticks)"
  echo "$label $line" >&2
  local rps p50 p99 errors items requests cpu_us
  rps="$(sed -n 's/.* rps=\([0-9]*\).*/\1/p' <<<"$line")"
  p50="$(sed -n 's/.* p50_ms=\([0-9.]*\).*/\1/p' <<<"$line")"
  p99="$(sed -n 's/.* p99_ms=\([0-9.]*\).*/\1/p' <<<"$line")"
  errors="$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<<"$line")"
  items="$(sed -n 's/.* items_per_request=\([0-9]*\).*/\1/p' <<<"$line")"
  requests="$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$line")"
  cpu_us="$(awk -v t=$((ticks_after - ticks_before)) -v hz="$CLK_TCK" -v n="${requests:-0}" \
    'BEGIN { if (n > 0) printf "%.0f", t * 1e6 / hz / n }')"
  ROWS+=("| $label | $door | $op | ${rps:-0} | $(( ${rps:-0} * ${items:-1} )) | $p50 | $p99 | $cpu_us | $errors |")
}

run_all() {  # $1 = transport label, rest = extra kms_load flags
  local label="$1"; shift
  for op in encrypt decrypt; do run_load "$label" "AWS (SigV4)" "$op" "$@"; done
  for op in transit-encrypt transit-decrypt transit-encrypt-batch100; do
    run_load "$label" "Vault (X-Vault-Token)" "$op" "$@"
  done
}

echo "== kmsd (HTTP), --workers $WORKERS --hsm-sessions $HSM_SESSIONS" >&2
start_kmsd "$WORK/state"
run_all http
stop_kmsd

if [[ "$HTTPS" == 1 ]]; then
  echo "== kmsd (HTTPS)" >&2
  start_kmsd "$WORK/state" --tls-cert "$WORK/server.pem" --tls-key "$WORK/server.key"
  run_all https --ca-bundle "$WORK/ca.pem"
  stop_kmsd
fi

echo
echo "kmsd --workers $WORKERS --hsm-sessions $HSM_SESSIONS; kms_load --connections $CONNECTIONS --threads $THREADS --seconds $SECONDS_PER_OP; 1 KiB plaintexts; $(nproc) cores shared by kmsd and kms_load"
echo
echo "| transport | door | operation | requests/s | items/s | p50 ms | p99 ms | kmsd CPU µs/request | errors |"
echo "|---|---|---|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
exit "$FAILED"
