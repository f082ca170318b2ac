"""sys/unseal against someone who is not a custodian (docs/operations.md, "Unseal: what decides").

sys/unseal is unauthenticated, as in Vault: whoever reaches the port may send shares. This script
provisions a 3-of-5 appliance with kms-provision, then plays that caller with shares it forges
itself (valid checksum, chosen threshold, split, number, commitment and secret):

  1. a forged threshold-1 share (the real split id), a share of another split, a share numbered
     beyond the 5 made, a share with its own commitment: each is refused with one message that
     names no split id and no share byte, the custodian's share entered before is kept, and kmsd
     never tries a login (no "unseal failed" in its log); the custodians then unseal;
  2. a store whose seal verifier does not match the custodians' secret: the third real share is
     refused before any login, progress back to 0;
  3. auto-unseal from a file whose first line is a forged threshold-1 share: kmsd stays sealed
     without a login, and the custodians unseal it;
  4. a store provisioned before verifiers existed (its descriptor rewritten to the v1 form): the
     weaker window, where a forged full set of shares reaches the HSM login; three failed
     combinations lock the gate (429 for the next share), a restart clears the count, the
     custodians unseal, the verifier is written into the descriptor, and after the next restart
     the same forgery is refused share by share, before any login.

kmsd's log must never hold a share (real or forged) or a split id, and every error body is kept
for the canary search. Run by tests/e2e/kmsd_e2e_test.cc with KMS_E2E_KMSD, KMS_E2E_KMSCTL,
KMS_E2E_PROVISION and KMS_E2E_CANARY_DIR.
"""
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from production_lib import SOFTHSM_MODULE, free_port, own_softhsm, write

KMSD = os.environ["KMS_E2E_KMSD"]
KMSCTL = os.environ["KMS_E2E_KMSCTL"]
PROVISION = os.environ["KMS_E2E_PROVISION"]
MODULE = SOFTHSM_MODULE

WORK = tempfile.mkdtemp(prefix="kms-unseal-hostile-")
STORE = os.path.join(WORK, "kms.db")
LOG = os.path.join(WORK, "kmsd.stderr")

FOREIGN = ("the share does not belong to this appliance (a foreign split, or another threshold or "
           "number of shares): it was refused, and the shares entered so far are kept")
WRONG_SECRET = ("the shares do not rebuild this appliance's unseal secret: every share entered "
                "was forgotten, start again")
LOGIN_REFUSED = ("unseal failed: the shares rebuilt the secret, but the appliance could not open "
                 "the HSM with it (the appliance log says why); enter the shares again")


own_softhsm(WORK)
PORT = free_port()
CONFIG = os.path.join(WORK, "kmsd.toml")
BASE_CONFIG = f"""mode = "production"
[server]
listen = "127.0.0.1:{PORT}"
[hsm]
module = "{MODULE}"
token_label = "kms-hostile"
[store]
path = "{STORE}"
"""
write(CONFIG, BASE_CONFIG)

ceremony = subprocess.run([PROVISION, "init", "--config", CONFIG, "--shares", "5", "--threshold",
                           "3", "--format", "json"], capture_output=True, text=True, timeout=120)
if ceremony.returncode != 0:
    print("FAIL kms-provision:", ceremony.stderr, flush=True)
    sys.exit(1)
CEREMONY = json.loads(ceremony.stdout)
SHARES = CEREMONY["shares"]
SPLIT = bytes.fromhex(CEREMONY["split_id"])

ENDPOINT = f"http://127.0.0.1:{PORT}"
os.environ.update(KMS_ENDPOINT=ENDPOINT, AWS_DEFAULT_REGION=CEREMONY["region"],
                  AWS_ACCESS_KEY_ID=CEREMONY["access_key_id"],
                  AWS_SECRET_ACCESS_KEY=CEREMONY["secret_access_key"])
for name in ("VAULT_TOKEN", "VAULT_ADDR", "AWS_CA_BUNDLE"):
    os.environ.pop(name, None)

import e2e_lib as lib  # noqa: E402  (reads KMS_ENDPOINT at import)
from e2e_lib import check, ok  # noqa: E402

for _n, _share in enumerate(SHARES, 1):
    lib.record_secret(f"custodian share {_n}", _share)
    lib.record_secret(f"custodian share {_n} without dashes", _share.replace("-", ""))
lib.record_secret("the SO PIN", CEREMONY["so_pin"])


# --- Forging shares: the format of firmware/custodian_shares.h, with the 0x11d field -------------
def gf_mul(a, b):
    product = 0
    for _ in range(8):
        if b & 1:
            product ^= a
        carry = a & 0x80
        a = (a << 1) & 0xFF
        if carry:
            a ^= 0x1D
        b >>= 1
    return product


def commitment(split, threshold, secret):
    return hashlib.sha256(b"kms custodian share commitment v1" + split + bytes([threshold]) +
                          secret).digest()[:8]


def share_text(split, threshold, x, commit, y):
    record = bytes([1]) + split + bytes([threshold, x]) + commit + y
    record += hashlib.sha256(record).digest()[:4]
    digits = record.hex()
    text = "kms1-" + "-".join(digits[i:i + 8] for i in range(0, len(digits), 8))
    lib.record_secret("a forged share", text)
    lib.record_secret("a forged share without dashes", text.replace("-", ""))
    return text


def forge_split(secret, split, threshold, xs):
    """Shares x in `xs` of a split of `secret` the forger chose, consistent among themselves."""
    coefficients = [secrets.token_bytes(len(secret)) for _ in range(threshold - 1)]
    commit = commitment(split, threshold, secret)
    out = []
    for x in xs:
        y = bytearray(secret)
        power = 1
        for c in coefficients:
            power = gf_mul(power, x)
            for i in range(len(y)):
                y[i] ^= gf_mul(c[i], power)
        out.append(share_text(split, threshold, x, commit, bytes(y)))
    return out


# --- The daemon ------------------------------------------------------------------------------------
DAEMON = None
_LOG_START = [0]


def kmsd_log():
    with open(LOG, errors="replace") as f:
        return f.read()


def this_run():
    return kmsd_log()[_LOG_START[0]:]


def start_daemon():
    global DAEMON
    _LOG_START[0] = len(kmsd_log()) if os.path.exists(LOG) else 0
    DAEMON = subprocess.Popen([KMSD, "--config", CONFIG], stdout=subprocess.DEVNULL,
                              stderr=open(LOG, "a"))


def stop_daemon():
    DAEMON.send_signal(signal.SIGTERM)
    check(DAEMON.wait(timeout=30) == 0, f"kmsd exit status {DAEMON.returncode}")


def wait_for_log(text, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in this_run():
            return
        if DAEMON.poll() is not None:
            raise lib.CheckFailed(f"kmsd exited ({DAEMON.returncode}) before '{text}':\n{kmsd_log()}")
        time.sleep(0.05)
    raise lib.CheckFailed(f"kmsd did not log '{text}' in {timeout} s:\n{kmsd_log()}")


def restart():
    stop_daemon()
    start_daemon()
    wait_for_log("sealed: waiting for custodian shares")


def put_unseal(key):
    """PUT sys/unseal as any HTTP client (Vault's `vault operator unseal` sends this)."""
    req = urllib.request.Request(ENDPOINT + "/v1/sys/unseal", method="PUT",
                                 data=json.dumps({"key": key}).encode())
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        body = e.read()
        lib.record_error_body(f"PUT /v1/sys/unseal HTTP {e.code}", body)
        return e.code, json.loads(body)


def kmsctl(*args):
    proc = subprocess.run([KMSCTL, *args], capture_output=True, text=True, timeout=60)
    lib.record_error_body(f"kmsctl {args[0]} stderr", proc.stderr)
    return proc


def unseal(share):
    proc = kmsctl("unseal", share)
    if proc.returncode != 0:
        raise lib.CheckFailed(f"kmsctl unseal failed ({proc.returncode}): {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def progress():
    return json.loads(kmsctl("seal-status").stdout)


def refused(share, status, message, what):
    """The share is refused with exactly `message`, through kmsctl and as a raw Vault request."""
    proc = kmsctl("unseal", share)
    check(proc.returncode == 1 and proc.stderr == f"kmsctl: HTTP {status}: {message}\n",
          f"{what}: kmsctl {proc.returncode} {proc.stderr!r}")
    ok(f"{what}: kmsctl unseal exits 1 with '{proc.stderr.strip()[:100]}...'")


def refused_raw(share, status, message, what):
    code, body = put_unseal(share)
    check((code, body) == (status, {"errors": [message]}), f"{what}: {code} {body}")
    text = json.dumps(body)
    check(SPLIT.hex() not in text, f"{what}: the answer names the split id")
    ok(f"{what}: PUT /v1/sys/unseal {code} {{\"errors\": [...]}}, no split id, no share")


def no_login_attempted(what):
    check('"msg":"unseal failed"' not in this_run(), f"{what}: kmsd tried the HSM:\n{this_run()}")


def descriptor():
    return subprocess.run(["sqlite3", STORE, "SELECT value FROM meta WHERE name='seal.descriptor'"],
                          capture_output=True, text=True, check=True, timeout=30).stdout.strip()


def set_descriptor(text):
    subprocess.run(["sqlite3", STORE, f"UPDATE meta SET value='{text}' WHERE "
                    "name='seal.descriptor'"], check=True, timeout=30)


def main():
    kms = lib.client()
    wait_for_log("sealed: waiting for custodian shares")
    stored = descriptor()
    check(re.fullmatch(r"v2 threshold=3 shares=5 split=[0-9a-f]{16} commitment=[0-9a-f]{16} "
                       r"verifier=[0-9a-f]{64}", stored) is not None, f"descriptor: {stored}")
    check(f"split={SPLIT.hex()}" in stored, "the descriptor's split is the ceremony's")
    ok("kms-provision init wrote a v2 seal descriptor: split, commitment and verifier")

    # 1. Forged single shares: refused, the custodian's progress kept, no login.
    chosen = secrets.token_bytes(32)  # the secret, hence the PIN, the forger wants tried
    threshold_one = share_text(SPLIT, 1, 1, commitment(SPLIT, 1, chosen), chosen)
    refused(threshold_one, 400, FOREIGN, "a forged threshold-1 share as the first share")
    no_login_attempted("a forged threshold-1 share as the first share")
    check(unseal(SHARES[0])["progress"] == 1, "a custodian's first share")
    refused(threshold_one, 400, FOREIGN, "a forged threshold-1 share after a custodian's")
    refused_raw(threshold_one, 400, FOREIGN, "the same share as a Vault client sends it")
    other_split = secrets.token_bytes(8)
    refused(forge_split(chosen, other_split, 3, [2])[0], 400, FOREIGN, "a share of another split")
    refused(forge_split(chosen, SPLIT, 3, [9])[0], 400, FOREIGN, "share 9 of a 5-share appliance")
    own = forge_split(chosen, SPLIT, 3, [4, 5])
    refused(own[0], 400, FOREIGN, "a share of the real split with its own commitment")
    refused(forge_split(chosen, SPLIT, 2, [4])[0], 400, FOREIGN, "a share made for threshold 2")
    status = progress()
    check((status["sealed"], status["progress"]) == (True, 1), f"after the forgeries: {status}")
    no_login_attempted("forged single shares")
    ok("after 7 forged shares: still sealed, the custodian's share still counted, no login tried")
    unseal(SHARES[3])
    check(unseal(SHARES[4])["sealed"] is False, "the custodians unseal")
    kms.list_keys()
    ok("the custodians' shares 1, 4 and 5 unseal it: it serves")
    log = kmsd_log()
    check(SPLIT.hex() not in log and other_split.hex() not in log, "a split id in the log")
    check(log.count('"msg":"unseal share refused"') >= 7, "every refused share is logged")
    ok("every refusal logged as a warning, without a split id or a share")

    # 2. A verifier that does not match: the custodians' shares are refused before any login.
    stop_daemon()
    set_descriptor(re.sub(r"verifier=[0-9a-f]{64}", "verifier=" + "00" * 32, stored))
    start_daemon()
    wait_for_log("sealed: waiting for custodian shares")
    unseal(SHARES[0])
    unseal(SHARES[1])
    refused(SHARES[2], 400, WRONG_SECRET, "3 real shares against another verifier")
    check(progress()["progress"] == 0, "the shares are forgotten")
    no_login_attempted("a secret the verifier refuses")
    check('"msg":"unseal attempt failed"' in this_run(), "the failed combination is logged")
    ok("the verifier decides: no login with a secret it refuses, the failure logged")
    stop_daemon()
    set_descriptor(stored)

    # 3. Auto-unseal: the file's shares pass the same gate.
    auto = os.path.join(WORK, "unseal.shares")
    write(auto, "\n".join([threshold_one, SHARES[2], SHARES[3], SHARES[4]]) + "\n")
    os.chmod(auto, 0o600)
    write(CONFIG, BASE_CONFIG + f'[seal]\nauto_unseal_file = "{auto}"\n')
    start_daemon()
    wait_for_log('"msg":"auto-unseal failed: staying sealed"')
    check(FOREIGN in this_run(), f"auto-unseal reason:\n{this_run()}")
    no_login_attempted("a forged share in the auto-unseal file")
    check(progress()["sealed"] is True, "auto-unseal with a forged first line stays sealed")
    ok("auto-unseal: a forged threshold-1 line is refused like any share, no login, still sealed")
    for share in SHARES[:3]:
        last = unseal(share)
    check(last["sealed"] is False, "the custodians unseal after a failed auto-unseal")
    stop_daemon()
    write(CONFIG, BASE_CONFIG)

    # 4. A store made before verifiers: the login decides until the verifier is written.
    legacy = f"v1 threshold=3 shares=5 split={SPLIT.hex()}"
    set_descriptor(legacy)
    start_daemon()
    wait_for_log("sealed: waiting for custodian shares")
    refused(threshold_one, 400, FOREIGN, "a forged threshold-1 share on a v1 store")
    no_login_attempted("a forged threshold-1 share on a v1 store")
    for attempt in (1, 2, 3):
        forged = forge_split(secrets.token_bytes(32), SPLIT, 3, [1, 2, 3])
        unseal(forged[0])
        unseal(forged[1])
        expected = LOGIN_REFUSED
        if attempt == 3:
            expected += " (3 failed attempts in a row: shares are refused for the next 60 s)"
        refused(forged[2], 400, expected, f"a forged full set on a v1 store, attempt {attempt}")
    check(this_run().count('"msg":"unseal attempt failed"') == 3, "3 failed attempts logged")
    locked = kmsctl("unseal", SHARES[0])
    check(locked.returncode == 1 and re.fullmatch(
        r"kmsctl: HTTP 429: too many failed unseal attempts \(3 in a row\): shares are refused for "
        r"another ([1-9]|[1-5][0-9]|60) s\n", locked.stderr) is not None,
        f"locked: {locked.returncode} {locked.stderr!r}")
    ok("3 failed combinations lock the gate: " + locked.stderr.strip())
    check(progress()["progress"] == 0, "nothing entered while locked")
    check(descriptor() == legacy, "a failed login writes no verifier")
    restart()  # the count lives in memory: only the operator's restart clears it
    for share in SHARES[1:4]:
        last = unseal(share)
    check(last["sealed"] is False, "the custodians unseal the v1 store")
    wait_for_log("seal descriptor completed with the unseal secret's verifier")
    check(descriptor() == stored, f"the verifier written is the ceremony's: {descriptor()}")
    ok("a v1 store unseals with the custodians' shares, and its descriptor becomes the v2 one")
    restart()
    forged = forge_split(secrets.token_bytes(32), SPLIT, 3, [1, 2, 3])
    refused(forged[0], 400, FOREIGN, "the same forgery after the verifier was written")
    no_login_attempted("a forgery against the completed descriptor")
    for share in SHARES[2:5]:
        last = unseal(share)
    check(last["sealed"] is False, "unsealed again")
    stop_daemon()

    log = kmsd_log()
    for n, line in enumerate(log.splitlines(), 1):
        record = json.loads(line)
        check({"time", "level", "msg"} <= record.keys(), f"log line {n}: {line}")
    check(SPLIT.hex() not in log, "the split id is in the log")
    for share in SHARES:
        check(share not in log and share.replace("-", "") not in log, "a share is in the log")
    ok(f"{len(log.splitlines())} log lines, all JSON, no share and no split id")


start_daemon()
try:
    lib.run(main)
finally:
    if DAEMON.poll() is None:
        DAEMON.kill()
        DAEMON.wait()
    if lib.CANARY_DIR:
        if os.path.exists(LOG):
            shutil.copy(LOG, os.path.join(lib.CANARY_DIR, "kmsd.stderr"))
        if os.path.isdir(os.path.join(WORK, "audit")):
            shutil.copytree(os.path.join(WORK, "audit"), os.path.join(lib.CANARY_DIR, "audit"))
    shutil.rmtree(WORK, ignore_errors=True)
