#!/usr/bin/env bash
# bench_instructions.sh: kmsd's user-space instructions per request under callgrind, optionally beside
# a kmsd built from another commit.
#
# On the shared 2-core VM requests/s moves by 2x with other people's builds and even kmsd's CPU time
# per request by ±5-10%; an instruction count does not move with the machine's load (the same build
# and workload repeat within about 0.5%), so a request-path change of a few percent shows here
# when it cannot show in tools/bench_door.sh. It counts user space only: system calls (network,
# fdatasync) and waiting are not in it, so it says what the code costs, not what a request costs.
#
# For each side: `kmsd --dev` under `valgrind --tool=callgrind --instr-atstart=no` on a fresh state
# folder, plain HTTP on loopback; one symmetric and one ECC_NIST_P256 signing key made with the AWS
# CLI ($AWS); then per operation a 1 s kms_load warm-up on the same key (caches, first-use paths),
# then instrumentation on, `kms_load --op <op> --key-id <key> --seconds S --connections N`,
# instrumentation off and one dump. Instructions per request = the dump's total / the requests
# kms_load counted (requests still in flight at its deadline are counted by kmsd, not by kms_load:
# at most N in ~1,000, hence ±0.5%). transit-* operations make their own key through the Vault door
# inside the window (about 1 million instructions, under 0.5% of a run). The same kms_load (this
# tree's) drives both sides.
#
#   tools/bench_instructions.sh [--build-dir DIR] [--baseline-build-dir DIR] [--ops "OP ..."]
#                               [--seconds S] [--connections N]
#
# Default operations: encrypt decrypt generate-data-key sign describe-key list-resource-tags
# tag-resource update-key-description transit-encrypt transit-decrypt. Needs valgrind and the AWS
# CLI (AWS, default /usr/bin/aws). Slow: kmsd runs ~50x slower under callgrind (about 2 minutes a side).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="$ROOT/build"
BASELINE_BUILD=""
OPS="encrypt decrypt generate-data-key sign describe-key list-resource-tags tag-resource update-key-description transit-encrypt transit-decrypt"
SECONDS_PER_OP=4
CONNECTIONS=4
AWS="${AWS:-/usr/bin/aws}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) BUILD="$(realpath -m "$2")"; shift 2 ;;
    --baseline-build-dir) BASELINE_BUILD="$(realpath -m "$2")"; shift 2 ;;
    --ops) OPS="$2"; shift 2 ;;
    --seconds) SECONDS_PER_OP="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    *) echo "usage: $0 [--build-dir DIR] [--baseline-build-dir DIR] [--ops \"OP ...\"] [--seconds S] [--connections N]" >&2; exit 2 ;;
  esac
done

echo "== build" >&2
for b in "$BUILD" ${BASELINE_BUILD:+"$BASELINE_BUILD"}; do
  [[ -f "$b/build.ninja" ]] || { echo "$b: not a configured build folder" >&2; exit 2; }
  flock /tmp/kms-build.lock cmake --build "$b" -j2 --target kmsd >&2
done
flock /tmp/kms-build.lock cmake --build "$BUILD" -j2 --target kms_load >&2
LOAD="$BUILD/tools/kms_load"

WORK="$(mktemp -d "${TMPDIR:-/var/tmp}/kms-bench-instructions-XXXXXX")"
VPID=""
cleanup() {
  if [[ -n "$VPID" ]] && kill -0 "$VPID" 2>/dev/null; then
    kill -TERM "$VPID"; wait "$VPID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

declare -A PER_REQUEST=()
FAILED=0
run_side() {  # $1 = side label, $2 = build folder
  local side="$1" build="$2" dir="$WORK/$1"
  mkdir -p "$dir"
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$dir/callgrind.out" \
    "$build/firmware/kmsd" --dev --state-dir "$dir/state" --listen 127.0.0.1:0 \
    --workers 4 --hsm-sessions 2 >"$dir/kmsd.out" 2>"$dir/kmsd.err" &
  VPID=$!
  for _ in $(seq 1 1200); do
    [[ -f "$dir/state/dev.env" ]] && grep -q '^VAULT_TOKEN=' "$dir/state/dev.env" && break
    kill -0 "$VPID" 2>/dev/null || { cat "$dir/kmsd.err" >&2; return 1; }
    sleep 0.5
  done
  # The credentials reach the CLI through its environment, never its command line.
  aws_kms() { (set -a; . "$dir/state/dev.env"; set +a; "$AWS" --endpoint-url "$KMS_ENDPOINT" kms "$@"); }
  local key sign_key
  key="$(aws_kms create-key --query KeyMetadata.KeyId --output text)"
  sign_key="$(aws_kms create-key --key-spec ECC_NIST_P256 --key-usage SIGN_VERIFY \
    --query KeyMetadata.KeyId --output text)"
  local op n=0 args line requests dump total
  for op in $OPS; do
    n=$((n + 1))
    args=(--env-file "$dir/state/dev.env" --op "$op" --connections "$CONNECTIONS")
    case "$op" in
      transit-*) ;;
      sign) args+=(--key-id "$sign_key") ;;
      *) args+=(--key-id "$key") ;;
    esac
    "$LOAD" "${args[@]}" --seconds 1 >/dev/null || FAILED=1
    callgrind_control -z "$VPID" >/dev/null 2>&1
    callgrind_control -i on "$VPID" >/dev/null 2>&1
    line="$("$LOAD" "${args[@]}" --seconds "$SECONDS_PER_OP")" || FAILED=1
    callgrind_control -i off "$VPID" >/dev/null 2>&1
    callgrind_control -d "$op" "$VPID" >/dev/null 2>&1
    echo "$side $line" >&2
    requests="$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$line")"
    dump="$(grep -l "^desc: Trigger: dump $op\$" "$dir"/callgrind.out.* | head -n 1)"
    total="$(sed -n 's/^totals: //p' "$dump")"
    PER_REQUEST[$side:$op]=$(( ${requests:-0} > 0 ? total / requests : 0 ))
  done
  kill -TERM "$VPID"; wait "$VPID" 2>/dev/null || true; VPID=""
}

[[ -n "$BASELINE_BUILD" ]] && run_side baseline "$BASELINE_BUILD"
run_side this "$BUILD"

echo
echo "kmsd --workers 4 --hsm-sessions 2 under callgrind; kms_load --connections $CONNECTIONS --seconds $SECONDS_PER_OP; HTTP"
echo "this: $BUILD${BASELINE_BUILD:+; baseline: $BASELINE_BUILD}"
echo
if [[ -n "$BASELINE_BUILD" ]]; then
  echo "| operation | baseline instructions/request | this instructions/request | this − baseline | this / baseline |"
  echo "|---|---:|---:|---:|---:|"
  for op in $OPS; do
    awk -v op="$op" -v b="${PER_REQUEST[baseline:$op]}" -v t="${PER_REQUEST[this:$op]}" \
      'BEGIN { printf "| %s | %d | %d | %+d | %s |\n", op, b, t, t - b, (b > 0 ? sprintf("%+.1f%%", 100 * (t / b - 1)) : "") }'
  done
else
  echo "| operation | instructions/request |"
  echo "|---|---:|"
  for op in $OPS; do echo "| $op | ${PER_REQUEST[this:$op]} |"; done
fi
exit "$FAILED"
