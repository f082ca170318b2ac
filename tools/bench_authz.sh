#!/usr/bin/env bash
# bench_authz.sh: Encrypt under a 10-statement key policy and 100 grants beside the default policy, in
# one run (measured, never asserted: docs/performance.md).
#
# Builds kmsd, kms_load and kmsctl; starts one `kmsd --dev` on loopback (plain HTTP, audit log on);
# as the dev administrator (dev.env) creates, with kmsctl and boto3 ($PYTHON):
#   - key D with AWS's default key policy (the account root may do kms:*: identity policies decide);
#   - key P with a key policy of exactly 10 statements (root kms:*, a Deny outside the account, key
#     administrators, services with kms:EncryptionContext:app / kms:CallerAccount /
#     kms:EncryptionAlgorithm / kms:RequestAlias / kms:GrantIsForAWSResource conditions, an
#     auditors' Deny and Allow, and last the load user's Allow with three conditions), and 100
#     grants on P (97 to other users' ARNs with mixed Operations, EncryptionContextSubset/Equals
#     constraints, retiring principals and names; 3 to the grant-path user: Decrypt only, Encrypt
#     with a context constraint, Encrypt unconstrained);
#   - user `bench` (not an administrator): identity policy kms:Encrypt on D only; P's last statement
#     names it. User `bench-grantee` (not an administrator; identity policy kms:DescribeKey on D):
#     its only way to Encrypt with P is a grant. An access key for each.
# It checks the decisions once (bench on D and P, bench-grantee on P: allowed; bench-grantee on D:
# AccessDeniedException), then drives Encrypt (1 KiB, no encryption context) with kms_load --key-id in
# rounds (default 3; even rounds in reverse order) of D (bench, allow:identity-policy), P (bench,
# allow:key-policy) and P-grant (bench-grantee, allow:grant) on the same daemon with the same flags,
# and afterwards counts the audit log's records of each (principal, key, decision) against the
# requests kms_load made. Prints markdown tables.
# Everything binds 127.0.0.1 and every load is time-bounded.
#
#   tools/bench_authz.sh [--build-dir DIR] [--seconds S] [--connections N] [--threads T]
#                        [--workers W] [--hsm-sessions H] [--rounds R]
#
# Environment: PYTHON (default /usr/bin/python3, with boto3). Exit status 1 if any kms_load run had
# errors or the audit log's counts disagree (not a valid run).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="$ROOT/build"
PYTHON="${PYTHON:-/usr/bin/python3}"
SECONDS_PER_RUN=5
CONNECTIONS=32
THREADS=2
WORKERS=4
HSM_SESSIONS=2
ROUNDS=3
GRANTS=100
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) BUILD="$(realpath -m "$2")"; shift 2 ;;
    --seconds) SECONDS_PER_RUN="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --workers) WORKERS="$2"; shift 2 ;;
    --hsm-sessions) HSM_SESSIONS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    *) echo "usage: $0 [--build-dir DIR] [--seconds S] [--connections N] [--threads T] [--workers W] [--hsm-sessions H] [--rounds R]" >&2; exit 2 ;;
  esac
done

echo "== build ($BUILD)" >&2
# The build folder is shared with other engineers: every build step takes the machine's build lock.
[[ -f "$BUILD/build.ninja" ]] || flock /tmp/kms-build.lock \
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >&2
flock /tmp/kms-build.lock cmake --build "$BUILD" -j2 --target kmsd kms_load kmsctl >&2
KMSCTL="$BUILD/tools/kmsctl"

WORK="$(mktemp -d /tmp/kms-bench-authz-XXXXXX)"  # mode 0700: the users' secrets live here for the run
KMSD_PID=""
cleanup() {
  if [[ -n "$KMSD_PID" ]] && kill -0 "$KMSD_PID" 2>/dev/null; then
    kill -TERM "$KMSD_PID"; wait "$KMSD_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

STATE="$WORK/state"
ADMIN_ENV="$STATE/dev.env"
"$BUILD/firmware/kmsd" --dev --state-dir "$STATE" --listen 127.0.0.1:0 \
  --workers "$WORKERS" --hsm-sessions "$HSM_SESSIONS" >"$WORK/kmsd.out" 2>"$WORK/kmsd.err" &
KMSD_PID=$!
for _ in $(seq 1 600); do
  [[ -f "$ADMIN_ENV" ]] && break
  kill -0 "$KMSD_PID" 2>/dev/null || { cat "$WORK/kmsd.err" >&2; exit 1; }
  sleep 0.1
done
[[ -f "$ADMIN_ENV" ]] || { echo "kmsd did not become ready" >&2; exit 1; }
echo "== kmsd --dev --workers $WORKERS --hsm-sessions $HSM_SESSIONS, $(grep '^KMS_ENDPOINT=' "$ADMIN_ENV")" >&2

# Setup through the AWS door with boto3: keys, P's policy and grants, identity policies, checks.
cat > "$WORK/setup.py" <<'PY'
import json
import sys

import boto3


def client(env_file):
    env = {}
    for line in open(env_file):
        line = line.strip()
        if line and not line.startswith('#') and '=' in line:
            k, v = line.split('=', 1)
            env[k] = v
    return boto3.client('kms', endpoint_url=env['KMS_ENDPOINT'], region_name='us-east-1',
                        aws_access_key_id=env['AWS_ACCESS_KEY_ID'],
                        aws_secret_access_key=env['AWS_SECRET_ACCESS_KEY'])


# Ten statements as a real key policy has them; the load user is allowed by the LAST one, so
# evaluation walks every statement (Deny statements are looked at in any case).
def key_policy(acct, load_user):
    u = lambda n: f'arn:aws:iam::{acct}:user/{n}'
    r = lambda n: f'arn:aws:iam::{acct}:role/{n}'
    use = ['kms:Encrypt', 'kms:Decrypt', 'kms:ReEncrypt*', 'kms:GenerateDataKey*',
           'kms:DescribeKey']
    st = [
        {'Sid': 'Enable IAM User Permissions', 'Effect': 'Allow',
         'Principal': {'AWS': f'arn:aws:iam::{acct}:root'}, 'Action': 'kms:*', 'Resource': '*'},
        {'Sid': 'DenyOutsideAccount', 'Effect': 'Deny', 'Principal': '*', 'Action': 'kms:*',
         'Resource': '*', 'Condition': {'StringNotEquals': {'kms:CallerAccount': acct}}},
        {'Sid': 'Allow access for Key Administrators', 'Effect': 'Allow',
         'Principal': {'AWS': [u('key-admin-1'), u('key-admin-2'), r('KeyAdmins')]},
         'Action': ['kms:Create*', 'kms:Describe*', 'kms:Enable*', 'kms:List*', 'kms:Put*',
                    'kms:Update*', 'kms:Revoke*', 'kms:Disable*', 'kms:Get*', 'kms:Delete*',
                    'kms:TagResource', 'kms:UntagResource', 'kms:ScheduleKeyDeletion',
                    'kms:CancelKeyDeletion', 'kms:RotateKeyOnDemand'],
         'Resource': '*'},
        {'Sid': 'OrdersServiceWithContext', 'Effect': 'Allow',
         'Principal': {'AWS': [u('app-orders'), r('orders-task')]}, 'Action': use,
         'Resource': '*',
         'Condition': {'StringEquals': {'kms:EncryptionContext:app': 'orders',
                                        'kms:CallerAccount': acct}}},
        {'Sid': 'BillingDecryptOnly', 'Effect': 'Allow',
         'Principal': {'AWS': u('app-billing')}, 'Action': 'kms:Decrypt', 'Resource': '*',
         'Condition': {'StringEquals': {'kms:EncryptionContext:app': ['billing', 'invoices']},
                       'StringEqualsIgnoreCase': {'kms:EncryptionAlgorithm': 'symmetric_default'}}},
        {'Sid': 'ReportsViaAlias', 'Effect': 'Allow',
         'Principal': {'AWS': [u('app-reports'), u('app-reports-batch')]},
         'Action': ['kms:Encrypt', 'kms:GenerateDataKey*'], 'Resource': '*',
         'Condition': {'StringLike': {'kms:RequestAlias': 'alias/reports-*'}}},
        {'Sid': 'Allow attachment of persistent resources', 'Effect': 'Allow',
         'Principal': {'AWS': [u(f'u{n}') for n in range(1, 6)]},
         'Action': ['kms:CreateGrant', 'kms:ListGrants', 'kms:RevokeGrant'], 'Resource': '*',
         'Condition': {'Bool': {'kms:GrantIsForAWSResource': 'true'}}},
        {'Sid': 'DenyPlaintextDataKeysToAuditors', 'Effect': 'Deny',
         'Principal': {'AWS': [u('auditor'), r('Auditors')]},
         'Action': ['kms:GenerateDataKey', 'kms:GenerateDataKeyPair', 'kms:Decrypt'],
         'Resource': '*'},
        {'Sid': 'AuditorsReadOnly', 'Effect': 'Allow',
         'Principal': {'AWS': [u('auditor'), r('Auditors')]},
         'Action': ['kms:Describe*', 'kms:Get*', 'kms:List*'], 'Resource': '*'},
        {'Sid': 'BenchLoadPrincipal', 'Effect': 'Allow', 'Principal': {'AWS': u(load_user)},
         'Action': ['kms:Encrypt', 'kms:Decrypt', 'kms:GenerateDataKey*', 'kms:DescribeKey'],
         'Resource': '*',
         'Condition': {'StringEquals': {'kms:CallerAccount': acct},
                       'StringEqualsIfExists': {'kms:EncryptionContext:app': 'bench'},
                       'StringLikeIfExists': {'kms:RequestAlias': 'alias/bench-*'}}},
    ]
    return {'Version': '2012-10-17', 'Id': 'bench-authz-10', 'Statement': st}


OPS = [['Encrypt', 'Decrypt'], ['Decrypt'], ['Encrypt', 'Decrypt', 'GenerateDataKey'],
       ['GenerateDataKey', 'GenerateDataKeyWithoutPlaintext', 'Decrypt'],
       ['Decrypt', 'ReEncryptFrom', 'ReEncryptTo', 'DescribeKey'],
       ['Encrypt', 'Decrypt', 'RetireGrant', 'DescribeKey', 'CreateGrant']]


def make_keys(admin_env, load_user, grant_user, n_grants):
    kms = client(admin_env)
    d = kms.create_key(Description='bench_authz D: default key policy')['KeyMetadata']
    acct = d['Arn'].split(':')[4]
    p = kms.create_key(Description='bench_authz P: 10-statement policy, grants',
                       Policy=json.dumps(key_policy(acct, load_user)))['KeyMetadata']
    got = json.loads(kms.get_key_policy(KeyId=p['KeyId'], PolicyName='default')['Policy'])
    u = lambda n: f'arn:aws:iam::{acct}:user/{n}'
    own = 3  # the last grants are the grant-path user's
    for i in range(n_grants):
        g = {'KeyId': p['KeyId']}
        if i >= n_grants - own:
            j = i - (n_grants - own)
            g['GranteePrincipal'] = u(grant_user)
            g['Operations'] = [['Decrypt'], ['Encrypt', 'GenerateDataKey'],
                               ['Encrypt', 'Decrypt', 'GenerateDataKey']][j]
            if j == 1:
                g['Constraints'] = {'EncryptionContextSubset': {'app': 'bench-constrained'}}
        else:
            g['GranteePrincipal'] = u(f'u{i % 60 + 1}')
            g['Operations'] = OPS[i % len(OPS)]
            if i % 3 == 0:
                g['Constraints'] = {'EncryptionContextSubset': {'app': f'orders-{i}',
                                                                'tenant': f't{i % 7}'}}
            elif i % 3 == 1:
                g['Constraints'] = {'EncryptionContextEquals': {'app': f'billing-{i}'}}
            if i % 4 == 0:
                g['RetiringPrincipal'] = u('grant-retirer')
            if i % 5 == 0:
                g['Name'] = f'bench-grant-{i}'
        kms.create_grant(**g)
    grants, marker = [], None
    while True:
        kw = {'KeyId': p['KeyId'], 'Limit': 100}
        if marker:
            kw['Marker'] = marker
        page = kms.list_grants(**kw)
        grants += page['Grants']
        if not page.get('Truncated'):
            break
        marker = page['NextMarker']
    if len(got['Statement']) != 10 or len(grants) != n_grants:
        sys.exit(f"P has {len(got['Statement'])} statements and {len(grants)} grants")
    print(f"D_ID={d['KeyId']}\nD_ARN={d['Arn']}\nP_ID={p['KeyId']}\nP_ARN={p['Arn']}\n"
          f"ACCOUNT={acct}\nP_STATEMENTS={len(got['Statement'])}\nP_GRANTS={len(grants)}")


def check(env_file, key_id, expected):
    kms = client(env_file)
    try:
        kms.encrypt(KeyId=key_id, Plaintext=b'x' * 1024)
        got = 'ok'
    except kms.exceptions.ClientError as e:
        got = e.response['Error']['Code']
    if got != expected:
        sys.exit(f'Encrypt as {env_file} with {key_id}: {got}, expected {expected}')
    print(f'check: Encrypt as {env_file.rsplit("/", 1)[-1]} with {key_id}: {got}')


cmd = sys.argv[1]
if cmd == 'keys':  # admin env, load user, grant-path user, number of grants
    make_keys(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
elif cmd == 'identity':  # resource ARN, actions...: an identity policy document
    print(json.dumps({'Version': '2012-10-17', 'Statement': [
        {'Sid': 'BenchIdentity', 'Effect': 'Allow', 'Action': sys.argv[3:],
         'Resource': sys.argv[2]}]}))
elif cmd == 'check':  # env file, key id, expected: ok | an error code
    check(sys.argv[2], sys.argv[3], sys.argv[4])
PY

"$KMSCTL" --env-file "$ADMIN_ENV" user create bench >&2
"$KMSCTL" --env-file "$ADMIN_ENV" user create bench-grantee >&2
"$PYTHON" "$WORK/setup.py" keys "$ADMIN_ENV" bench bench-grantee "$GRANTS" > "$WORK/keys.env"
# shellcheck disable=SC1091
. "$WORK/keys.env"  # D_ID D_ARN P_ID P_ARN ACCOUNT P_STATEMENTS P_GRANTS
echo "== D $D_ID (default policy); P $P_ID ($P_STATEMENTS statements, $P_GRANTS grants)" >&2
"$PYTHON" "$WORK/setup.py" identity "$D_ARN" kms:Encrypt > "$WORK/bench.json"
"$PYTHON" "$WORK/setup.py" identity "$D_ARN" kms:DescribeKey > "$WORK/bench-grantee.json"
for user in bench bench-grantee; do
  "$KMSCTL" --env-file "$ADMIN_ENV" user put-policy "$user" "$WORK/$user.json" >&2
  { "$KMSCTL" --env-file "$ADMIN_ENV" access-key create --user "$user" | grep '^AWS_'
    grep -E '^(KMS_ENDPOINT|AWS_DEFAULT_REGION)=' "$ADMIN_ENV"; } > "$WORK/$user.env"
done
"$PYTHON" "$WORK/setup.py" check "$WORK/bench.env" "$D_ID" ok >&2
"$PYTHON" "$WORK/setup.py" check "$WORK/bench.env" "$P_ID" ok >&2
"$PYTHON" "$WORK/setup.py" check "$WORK/bench-grantee.env" "$P_ID" ok >&2
"$PYTHON" "$WORK/setup.py" check "$WORK/bench-grantee.env" "$D_ID" AccessDeniedException >&2

# Per label: the caller, the key, the decision the audit log must show, the table's columns.
LABELS=(D P P-grant)
declare -A USER_OF=([D]=bench [P]=bench [P-grant]=bench-grantee)
declare -A KEY_OF=([D]="$D_ID" [P]="$P_ID" [P-grant]="$P_ID")
declare -A ARN_OF=([D]="$D_ARN" [P]="$P_ARN" [P-grant]="$P_ARN")
declare -A BASIS_OF=([D]=allow:identity-policy [P]=allow:key-policy [P-grant]=allow:grant)
declare -A POLICY_OF=([D]="default, 1 statement" [P]="$P_STATEMENTS statements"
                      [P-grant]="$P_STATEMENTS statements")
declare -A GRANTS_OF=([D]=0 [P]="$P_GRANTS" [P-grant]="$P_GRANTS")
declare -A SUM_RPS=() SUM_REQ=() RUNS=()
ROWS=()
FAILED=0

run_load() {  # $1 = round, $2 = label
  local round="$1" label="$2" line
  if ! line="$("$BUILD/tools/kms_load" --env-file "$WORK/${USER_OF[$label]}.env" --op encrypt \
        --key-id "${KEY_OF[$label]}" --seconds "$SECONDS_PER_RUN" --connections "$CONNECTIONS" \
        --threads "$THREADS")"; then
    FAILED=1
  fi
  echo "round $round $label: $line" >&2
  local rps p50 p99 errors requests
  rps="$(sed -n 's/.* rps=\([0-9]*\).*/\1/p' <<<"$line")"
  p50="$(sed -n 's/.* p50_ms=\([0-9.]*\).*/\1/p' <<<"$line")"
  p99="$(sed -n 's/.* p99_ms=\([0-9.]*\).*/\1/p' <<<"$line")"
  errors="$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<<"$line")"
  requests="$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$line")"
  [[ -n "$rps" && "$errors" == 0 ]] || FAILED=1
  ROWS+=("| $round | $label | ${USER_OF[$label]} | ${BASIS_OF[$label]} | ${POLICY_OF[$label]} | ${GRANTS_OF[$label]} | ${rps:-?} | ${p50:-?} | ${p99:-?} | ${errors:-?} |")
  SUM_RPS[$label]=$(( ${SUM_RPS[$label]:-0} + ${rps:-0} ))
  SUM_REQ[$label]=$(( ${SUM_REQ[$label]:-0} + ${requests:-0} ))
  RUNS[$label]=$(( ${RUNS[$label]:-0} + 1 ))
}

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
START_UTC="$(date -u '+%Y-%m-%d %H:%M:%S')"
# Odd rounds run D, P, P-grant; even rounds the reverse, so a drift of the shared machine (or of the
# growing audit log) during the run does not favour one key.
for round in $(seq 1 "$ROUNDS"); do
  order=("${LABELS[@]}")
  (( round % 2 == 0 )) && order=("${LABELS[2]}" "${LABELS[1]}" "${LABELS[0]}")
  for label in "${order[@]}"; do run_load "$round" "$label"; done
done
END_UTC="$(date -u '+%H:%M:%S')"
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

# Every request of the load must be in the audit log with the decision its row claims, plus the one
# check call per (caller, key) above. The log is written before each answer leaves, so it is complete.
AUDIT_ROWS=()
for label in "${LABELS[@]}"; do
  principal="arn:aws:iam::$ACCOUNT:user/${USER_OF[$label]}"
  count="$(cat "$STATE"/audit/*.log | grep -F "\"principal\":\"$principal\"," \
    | grep -F "\"key_arn\":\"${ARN_OF[$label]}\"," | grep -F '"outcome":"ok",' \
    | grep -cF "\"decision\":\"${BASIS_OF[$label]}\"" || true)"
  expected=$(( ${SUM_REQ[$label]:-0} + 1 ))
  [[ "$count" == "$expected" ]] || FAILED=1
  AUDIT_ROWS+=("| $label | ${USER_OF[$label]} | ${BASIS_OF[$label]} | $expected | $count |")
done

echo
echo "kmsd --dev --workers $WORKERS --hsm-sessions $HSM_SESSIONS (audit log on); kms_load --op encrypt (1 KiB, no encryption context) --connections $CONNECTIONS --threads $THREADS --seconds $SECONDS_PER_RUN; $ROUNDS rounds of ${LABELS[*]} (even rounds reversed); $(nproc) cores shared by kmsd and kms_load; $START_UTC-$END_UTC UTC; load average $LOAD_BEFORE before, $LOAD_AFTER after"
echo
echo "| round | key | caller | decision | key policy | grants on key | requests/s | p50 ms | p99 ms | errors |"
echo "|---:|---|---|---|---|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
echo
echo "| key | decision | mean requests/s | / D |"
echo "|---|---|---:|---:|"
MEAN_D=$(( ${SUM_RPS[D]:-0} / ${RUNS[D]:-1} ))
for label in "${LABELS[@]}"; do
  mean=$(( ${SUM_RPS[$label]:-0} / ${RUNS[$label]:-1} ))
  ratio="$(awk -v a="$mean" -v b="$MEAN_D" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }')"
  echo "| $label | ${BASIS_OF[$label]} | $mean | $ratio |"
done
echo
echo "| key | caller | audit decision | requests + 1 check | audit records |"
echo "|---|---|---|---:|---:|"
printf '%s\n' "${AUDIT_ROWS[@]}"
[[ "$FAILED" == 0 ]] || echo "NOT A VALID RUN: a load had errors or the audit counts disagree" >&2
exit "$FAILED"
