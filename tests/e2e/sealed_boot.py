"""The production boot end to end: kms-provision makes a fresh SoftHSM2 token with 5
custodian shares and threshold 3; kmsd starts sealed and refuses every key operation on both doors;
kmsctl enters shares (a corrupted one is named, a duplicate refused, 2 do not unseal, a reset
forgets them); 3 unseal it and it serves; `kmsctl seal` seals it again and shares unseal it once
more, with every ciphertext and signing key as before. Then rollback: an older copy of the store
put back is refused at unseal until kmsd is started with --accept-store-rollback. Then the backup
drill: kms-provision backup while kmsd serves, a changed byte refused, token and store destroyed,
restore onto a new token, unseal, every key back. Then auto-unseal from a 0600 file. The daemons' log
must be JSON lines without a share, a PIN, a secret access key or a plaintext of the run.

Run by tests/e2e/kmsd_e2e_test.cc with KMS_E2E_KMSD, KMS_E2E_KMSCTL and KMS_E2E_PROVISION naming
the binaries. Everything lives in a temporary folder; nothing is left behind, except that with
KMS_E2E_CANARY_DIR set (the canary search, e2e_lib.py) the ceremony's shares, PINs, secret and
tokens are recorded there, and the daemons' stderr and audit folder are copied there as
kmsd.stderr and audit/ for the harness to search.
"""
import json
import os
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

WORK = tempfile.mkdtemp(prefix="kms-sealed-")


# --- The appliance's own SoftHSM2 and configuration ------------------------------------------------
own_softhsm(WORK)
PORT = free_port()
CONFIG = os.path.join(WORK, "kmsd.toml")
write(CONFIG, f"""mode = "production"
[server]
listen = "127.0.0.1:{PORT}"
[hsm]
module = "{MODULE}"
token_label = "kms-e2e"
[store]
path = "{WORK}/kms.db"
[log]
requests = true
""")

ceremony = subprocess.run([PROVISION, "init", "--config", CONFIG, "--shares", "5", "--threshold",
                           "3", "--format", "json"], capture_output=True, text=True, timeout=120)
if ceremony.returncode != 0:
    print("FAIL kms-provision:", ceremony.stderr, flush=True)
    sys.exit(1)
CEREMONY = json.loads(ceremony.stdout)
SHARES = CEREMONY["shares"]

ENDPOINT = f"http://127.0.0.1:{PORT}"
os.environ.update(KMS_ENDPOINT=ENDPOINT, AWS_DEFAULT_REGION=CEREMONY["region"],
                  AWS_ACCESS_KEY_ID=CEREMONY["access_key_id"],
                  AWS_SECRET_ACCESS_KEY=CEREMONY["secret_access_key"])
for name in ("VAULT_TOKEN", "VAULT_ADDR", "AWS_CA_BUNDLE"):
    os.environ.pop(name, None)

import e2e_lib as lib  # noqa: E402  (reads KMS_ENDPOINT at import)
from e2e_lib import check, ok  # noqa: E402

LOG = os.path.join(WORK, "kmsd.stderr")
CANARY = b"canary: sealed-boot plaintext 7f3a"
for _n, _share in enumerate(SHARES, 1):
    lib.record_secret(f"custodian share {_n}", _share)
    lib.record_secret(f"custodian share {_n} without dashes", _share.replace("-", ""))
lib.record_secret("the SO PIN", CEREMONY["so_pin"])
lib.record_secret("canary plaintext sealed-boot", CANARY)


def kmsd_log():
    with open(LOG, errors="replace") as f:
        return f.read()


def wait_for_log(text, since=0, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in kmsd_log()[since:]:
            return
        if DAEMON.poll() is not None:
            raise lib.CheckFailed(f"kmsd exited ({DAEMON.returncode}) before '{text}':\n{kmsd_log()}")
        time.sleep(0.05)
    raise lib.CheckFailed(f"kmsd did not log '{text}' in {timeout} s:\n{kmsd_log()}")


def http(method, path, body=None, token=None):
    req = urllib.request.Request(ENDPOINT + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    if token:
        req.add_header("X-Vault-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        body = e.read()
        lib.record_error_body(f"{method} {path} HTTP {e.code}", body)
        return e.code, body.decode()


def kmsctl(*args, stdin=None, expect_ok=True):
    proc = subprocess.run([KMSCTL, *args], input=stdin, capture_output=True, text=True, timeout=60)
    if expect_ok and proc.returncode != 0:
        raise lib.CheckFailed(f"kmsctl {args[0]} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def unseal(share):
    started = time.monotonic()
    out = json.loads(kmsctl("unseal", share).stdout)
    ms = (time.monotonic() - started) * 1000
    ok(f"kmsctl unseal -> progress {out['progress']}, sealed {out['sealed']} ({ms:.0f} ms)")
    return out


def unseal_with(shares, what):
    for share in shares:
        last = unseal(share)
    check(last["sealed"] is False, f"unseal {what}: {last}")


def keys_survive(kms, blob, signer, public, what):
    check(kms.decrypt(CiphertextBlob=blob)["Plaintext"] == CANARY, f"{what}: old ciphertext")
    check(kms.get_public_key(KeyId=signer)["PublicKey"] == public, f"{what}: same public key")
    sig = kms.sign(KeyId=signer, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    check(kms.verify(KeyId=signer, Message=b"m", Signature=sig,
                     SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"], f"{what}: signature")
    ok(f"{what}: the old ciphertext decrypts, the signing key signs with the same public key")


def refused_while_sealed(kms, what):
    for fn, kw in ((kms.list_keys, {}),
                   (kms.create_key, {}),
                   (kms.encrypt, {"KeyId": "alias/anything", "Plaintext": CANARY}),
                   (kms.decrypt, {"CiphertextBlob": b"\x01" * 64}),
                   (kms.generate_data_key, {"KeyId": "alias/anything", "KeySpec": "AES_256"})):
        e = lib.expect_error(kms, "DependencyTimeoutException", fn, status=503, **kw)
        check(e.response["Error"]["Message"] ==
              "The KMS appliance is sealed: its custodians must unseal it (kmsctl unseal) before "
              "it serves requests.", f"sealed message: {e}")
    status, body = http("PUT", "/v1/transit/encrypt/k", {"plaintext": "eA=="}, token="any")
    check(status == 503 and json.loads(body) == {"errors": ["Vault is sealed"]},
          f"transit while sealed: {status} {body}")
    status, body = http("GET", "/health")
    check(status == 503 and json.loads(body)["sealed"] is True, f"/health while sealed: {body}")
    ok(f"{what}: every key operation refused on both doors, /health 503 sealed")


def main():
    kms = lib.client()

    # 1. Sealed at start: nothing served, the state reported.
    wait_for_log("sealed: waiting for custodian shares")
    refused_while_sealed(kms, "sealed start")
    status = json.loads(kmsctl("seal-status").stdout)
    check((status["sealed"], status["t"], status["n"], status["progress"], status["type"]) ==
          (True, 3, 5, 0, "shamir"), f"seal-status: {status}")
    ok("kmsctl seal-status: sealed, 3 of 5, progress 0")

    # 2. Shares one at a time: damaged, duplicate, too few, reset.
    check(unseal(SHARES[0])["progress"] == 1, "first share counted")
    damaged = list(SHARES[1])
    damaged[20] = "0" if damaged[20] != "0" else "1"
    bad = kmsctl("unseal", "".join(damaged), expect_ok=False)
    check(bad.returncode == 1 and "checksum does not match" in bad.stderr,
          f"damaged share: {bad.returncode} {bad.stderr}")
    ok("a damaged share is named: " + bad.stderr.strip())
    dup = kmsctl("unseal", SHARES[0], expect_ok=False)
    check(dup.returncode == 1 and "share 1 was already entered" in dup.stderr, f"dup: {dup.stderr}")
    ok("a share entered twice is refused by number")
    # The share from stdin, as a custodian types it (kept out of shell history and ps).
    two = json.loads(kmsctl("unseal", stdin=SHARES[1] + "\n").stdout)
    check(two["progress"] == 2 and two["sealed"] is True, f"two shares: {two}")
    refused_while_sealed(kms, "2 of 3 shares")
    reset = json.loads(kmsctl("unseal", "--reset").stdout)
    check(reset["progress"] == 0 and reset["sealed"], f"reset: {reset}")
    ok("kmsctl unseal --reset forgets the shares")

    # 3. Three shares unseal it, and it serves.
    unseal(SHARES[4])
    unseal(SHARES[2])
    done = unseal(SHARES[0])
    check(done["sealed"] is False, f"3 shares: {done}")
    status, body = http("GET", "/health")
    check(status == 200 and json.loads(body)["mode"] == "production", f"/health: {status} {body}")
    ok("unsealed: /health 200, mode production")
    key = kms.create_key(Description="sealed-boot")["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key, Plaintext=CANARY)["CiphertextBlob"]
    check(kms.decrypt(CiphertextBlob=blob)["Plaintext"] == CANARY, "decrypt after unseal")
    # An online copy of the store as it is now, for the rollback check at the end.
    old_store = os.path.join(WORK, "old.db")
    subprocess.run(["sqlite3", STORE, f".backup {old_store}"], check=True, timeout=30)
    signer = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    public = kms.get_public_key(KeyId=signer)["PublicKey"]
    ok("unsealed: create, encrypt, decrypt and a signing key with the ceremony's admin key")

    # 4. Seal on command (an administrator Vault token), then unseal again with other shares.
    made = kmsctl("vault-token", "create", "--name", "seal-operator", "--admin").stdout
    token = next(line.split("=", 1)[1] for line in made.splitlines()
                 if line.startswith("VAULT_TOKEN="))
    lib.record_secret("kmsctl vault-token create --admin", token)
    before = len(kmsd_log())
    check(kmsctl("seal", "--vault-token", token).stdout.strip() == "sealed", "kmsctl seal")
    wait_for_log("sealed: waiting for custodian shares", since=before)
    refused_while_sealed(kms, "after kmsctl seal")
    unseal_with(SHARES[2:5], "after seal")
    keys_survive(kms, blob, signer, public, "after seal and unseal")

    # 5. Rollback: a clean stop leaves the token's watermark at the store's last epoch; the older
    # copy put in its place is refused when the custodians unseal, until an operator accepts it.
    stop_daemon()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(STORE + suffix):
            os.remove(STORE + suffix)
    shutil.copy(old_store, STORE)
    start_daemon()
    wait_for_log("sealed: waiting for custodian shares", since=log_start())
    unseal(SHARES[0])
    unseal(SHARES[1])
    refused = kmsctl("unseal", SHARES[2], expect_ok=False)
    check(refused.returncode == 1 and "the store is older than this HSM has seen" in refused.stderr
          and "--accept-store-rollback" in refused.stderr, f"rollback: {refused.stderr}")
    ok("an older copy of the store is refused at unseal: " + refused.stderr.strip()[:110] + "...")
    check(json.loads(kmsctl("seal-status").stdout)["sealed"] is True, "still sealed")
    refused_while_sealed(kms, "rollback refused")
    stop_daemon()
    start_daemon("--accept-store-rollback")
    wait_for_log("sealed: waiting for custodian shares", since=log_start())
    for share in SHARES[1:4]:
        last = unseal(share)
    check(last["sealed"] is False, f"unseal with the rollback accepted: {last}")
    check(kms.decrypt(CiphertextBlob=blob)["Plaintext"] == CANARY, "the old key decrypts")
    lib.expect_error(kms, "NotFoundException", kms.describe_key, KeyId=signer)
    check("store rollback accepted by the operator" in kmsd_log(), "the override is logged")
    ok("--accept-store-rollback: the old store serves, keys made after the copy are gone, logged")

    # 6. Backup drill: a backup taken while kmsd serves, a changed byte refused, the
    # token and the store destroyed, restored onto a new token, and every key is back.
    signer = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    public = kms.get_public_key(KeyId=signer)["PublicKey"]
    shares_file = os.path.join(WORK, "three-shares")
    write(shares_file, "\n".join([SHARES[4], SHARES[0], SHARES[3]]) + "\n")
    backup = os.path.join(WORK, "kms.backup")
    so_env = dict(os.environ, KMS_SO_PIN=CEREMONY["so_pin"])
    made = subprocess.run([PROVISION, "backup", "--config", CONFIG, "--out", backup,
                           "--shares-from", shares_file], env=so_env, capture_output=True,
                          text=True, timeout=120)
    check(made.returncode == 0, f"kms-provision backup: {made.returncode} {made.stderr}")
    with open(backup, "rb") as f:
        image = f.read()
    for secret in SHARES + [CEREMONY["so_pin"], CEREMONY["secret_access_key"]]:
        check(secret.encode() not in image, "the backup holds a share or a secret")
    check(CANARY not in image, "the backup holds a plaintext")
    ok(f"kms-provision backup while kmsd serves: {len(image)} bytes, no share, secret or plaintext")
    stop_daemon()
    damaged = os.path.join(WORK, "damaged.backup")
    with open(damaged, "wb") as f:
        f.write(image[:len(image) // 2] + bytes([image[len(image) // 2] ^ 1]) + image[len(image) // 2 + 1:])
    refused = subprocess.run([PROVISION, "restore", "--config", CONFIG, "--backup", damaged,
                              "--shares-from", shares_file], capture_output=True, text=True,
                             timeout=120)
    check(refused.returncode == 1 and "MAC does not match" in refused.stderr,
          f"a damaged backup: {refused.returncode} {refused.stderr}")
    ok("a backup with one byte changed is refused: " + refused.stderr.strip())
    shutil.rmtree(os.path.join(WORK, "tokens"))
    os.mkdir(os.path.join(WORK, "tokens"), 0o700)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(STORE + suffix):
            os.remove(STORE + suffix)
    restored = subprocess.run([PROVISION, "restore", "--config", CONFIG, "--backup", backup,
                               "--shares-from", shares_file], capture_output=True, text=True,
                              timeout=120)
    check(restored.returncode == 0, f"kms-provision restore: {restored.returncode} {restored.stderr}")
    ok("token and store destroyed, restored onto a new token")
    start_daemon()
    wait_for_log("sealed: waiting for custodian shares", since=log_start())
    unseal_with((SHARES[1], SHARES[2], SHARES[4]), "after restore")
    keys_survive(kms, blob, signer, public, "after restore")

    # 7. Auto-unseal from a file ([seal] auto_unseal_file), for unattended labs: refused unless
    # the file is its owner's alone; then kmsd unseals itself at start, with a warning.
    stop_daemon()
    auto = os.path.join(WORK, "unseal.shares")
    write(auto, "\n".join([SHARES[2], SHARES[3], SHARES[0]]) + "\n")
    os.chmod(auto, 0o644)
    with open(CONFIG, "a") as f:
        f.write(f'[seal]\nauto_unseal_file = "{auto}"\n')
    loose = subprocess.run([KMSD, "--config", CONFIG], capture_output=True, text=True, timeout=30)
    check(loose.returncode == 2 and "must be readable by its owner only (chmod 600), got 0644"
          in loose.stderr, f"a 0644 share file: {loose.returncode} {loose.stderr}")
    ok("an auto-unseal file readable by others is refused at start")
    os.chmod(auto, 0o600)
    start_daemon()
    wait_for_log('"msg":"unsealed"', since=log_start())
    check(kms.decrypt(CiphertextBlob=blob)["Plaintext"] == CANARY, "decrypt after auto-unseal")
    check("auto-unseal from a file: whoever can read it can unseal" in kmsd_log()[log_start():],
          "the weaker mode is logged")
    ok("auto-unseal from a 0600 file: serving at start, with a warning in the log")

    # 8. Stop, and the log of every start.
    stop_daemon()
    log = kmsd_log()
    for n, line in enumerate(log.splitlines(), 1):
        record = json.loads(line)
        check({"time", "level", "msg"} <= record.keys(), f"log line {n}: {line}")
    secrets = [s for s in SHARES] + [s.replace("-", "") for s in SHARES] + [
        CEREMONY["so_pin"], CEREMONY["secret_access_key"], token, CANARY.decode()]
    for s in secrets:
        check(s not in log, f"the log holds a secret of the run: {s[:12]}...")
    check('"msg":"unseal share refused"' in log, "a refused share is logged (without the share)")
    ok(f"kmsd stopped with 0; {len(log.splitlines())} log lines, all JSON, no share, PIN, "
       "secret or plaintext")


STORE = os.path.join(WORK, "kms.db")
DAEMON = None
_LOG_START = [0]


def log_start():
    return _LOG_START[0]


def start_daemon(*extra):
    global DAEMON
    _LOG_START[0] = len(kmsd_log()) if os.path.exists(LOG) else 0
    DAEMON = subprocess.Popen([KMSD, "--config", CONFIG, *extra], stdout=subprocess.DEVNULL,
                              stderr=open(LOG, "a"))


def stop_daemon():
    DAEMON.send_signal(signal.SIGTERM)
    check(DAEMON.wait(timeout=30) == 0, f"kmsd exit status {DAEMON.returncode}")


start_daemon()
try:
    lib.run(main)
finally:
    if DAEMON.poll() is None:
        DAEMON.kill()
        DAEMON.wait()
    if lib.CANARY_DIR:  # what the harness's canary search reads (the daemons' stderr and audit)
        if os.path.exists(LOG):
            shutil.copy(LOG, os.path.join(lib.CANARY_DIR, "kmsd.stderr"))
        if os.path.isdir(os.path.join(WORK, "audit")):
            shutil.copytree(os.path.join(WORK, "audit"), os.path.join(lib.CANARY_DIR, "audit"))
    shutil.rmtree(WORK, ignore_errors=True)
