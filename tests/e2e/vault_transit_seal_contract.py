#!/usr/bin/python3
"""Vault's `seal "transit"` against kmsd's Vault door: the EXACT request sequence of the wrapper
(go-kms-wrapping wrappers/transit; docs/vault-door.md, "How Vault uses a seal" and seal "transit"),
replayed with the Go client's headers (vault_lib.py), checking every field the seal reads and that
Go's api.Secret can decode each answer:

  renew-self {"increment":0}        -> auth.client_token / renewable / lease_duration
  encrypt "a" (SetConfig)           -> data.ciphertext, 3 ':'-fields, field 2 = key id "v1"
  encrypt root-key JSON, recovery key, "\\x00" (IsUpToDate), "Heartbeat NNN" (health check)
  decrypt each exact string         -> data.plaintext, standard base64 of the input
  the same with X-Vault-Namespace; rotate -> v2, every stored blob still decrypts (UpgradeKeys);
  a token scoped to the seal key; wrong / missing tokens; an expiring token renewed.
"""
import base64
import binascii
import os
import time
import uuid

from e2e_lib import check, ok, run
from vault_lib import (DENIED, VAULT_TOKEN, Vault, create_vault_token, expect_data, expect_error,
                       expect_secret, ok_200_or_204)

TAG = uuid.uuid4().hex[:8]
SEAL_KEY = "vault-unseal"
OTHER_KEY = f"not-the-seal-{TAG}"


def b64(b):
    return base64.b64encode(b).decode()


def seal_values():
    """What Vault encrypts through its seal, in order (docs/vault-door.md, "How Vault uses a seal";
    seal "transit" step 3)."""
    root_key = b'["' + b64(os.urandom(32)).encode() + b'"]'  # core/hsm/barrier-unseal-keys
    return [("SetConfig test 'a'", b"a"), ("root key JSON", root_key),
            ("recovery key", os.urandom(32)), ("IsUpToDate \\x00", b"\x00"),
            ("health check", b"Heartbeat 123")]


def renew_self(v, what, must_succeed):
    """Step 1 of seal "transit" (docs/vault-door.md). A failure only disables renewal in the
    wrapper (non-fatal); `must_succeed` for a renewable token."""
    r = v.write("auth/token/renew-self", {"increment": 0})
    if not must_succeed and r.status == 400:
        errs = expect_error(r, 400, f"{what}: renew-self")
        check(errs and all(isinstance(e, str) and e for e in errs), f"{what}: empty errors {r}")
        ok(f"{what}: renew-self -> 400 {errs} (non-expiring token; the wrapper disables renewal and "
           "continues, as with a Vault root token)")
        return None
    s = expect_secret(r, f"{what}: renew-self")
    auth = s.get("auth")
    check(isinstance(auth, dict), f"{what}: renew-self without an auth object: {s}")
    check(auth.get("client_token") == v.token, f"{what}: auth.client_token is not the token")
    check(isinstance(auth.get("renewable"), bool), f"{what}: auth.renewable: {auth}")
    check(isinstance(auth.get("lease_duration"), int) and not isinstance(auth["lease_duration"], bool),
          f"{what}: auth.lease_duration: {auth}")
    ok(f"{what}: renew-self -> auth.client_token = token, renewable={auth['renewable']}, "
       f"lease_duration={auth['lease_duration']}")
    return auth


def encrypt(v, key, plaintext, what):
    d = expect_data(v.write(f"transit/encrypt/{key}", {"plaintext": b64(plaintext)}),
                    f"encrypt {what}")
    ct = d.get("ciphertext")
    check(isinstance(ct, str), f"encrypt {what}: data.ciphertext is not a string: {d}")
    fields = ct.split(":")
    check(len(fields) == 3 and fields[0] == "vault", f"encrypt {what}: {ct!r} is not vault:vN:b64")
    check(fields[1].startswith("v") and fields[1][1:].isdigit(), f"encrypt {what}: version {ct!r}")
    try:
        base64.b64decode(fields[2], validate=True)
    except binascii.Error:
        raise AssertionError(f"encrypt {what}: payload is not standard base64: {ct!r}")
    return ct, fields[1]


def decrypt(v, key, ct, expected, what):
    d = expect_data(v.write(f"transit/decrypt/{key}", {"ciphertext": ct}), f"decrypt {what}")
    pt = d.get("plaintext")
    check(isinstance(pt, str), f"decrypt {what}: data.plaintext is not a string: {d}")
    try:
        raw = base64.b64decode(pt, validate=True)  # the wrapper uses base64.StdEncoding
    except binascii.Error:
        raise AssertionError(f"decrypt {what}: plaintext {pt!r} is not standard base64")
    check(raw == expected, f"decrypt {what}: plaintext differs from what was encrypted")


def seal_sequence(v, label, expect_version, renewable):
    """One server start + init + health check of Vault on this token; returns the stored blobs."""
    renew_self(v, label, renewable)
    stored = []
    for what, pt in seal_values():
        ct, key_id = encrypt(v, SEAL_KEY, pt, f"{label} {what}")
        check(key_id == expect_version, f"{label} {what}: key id {key_id}, expected {expect_version}")
        ok(f"{label}: encrypt {what} ({len(pt)} B) -> vault:{key_id}:..., 3 fields, key id {key_id}")
        stored.append((what, pt, ct))
    for what, pt, ct in stored:
        decrypt(v, SEAL_KEY, ct, pt, f"{label} {what}")
    ok(f"{label}: decrypt of the {len(stored)} exact strings -> standard base64 of each input")
    return stored


def main():
    admin = Vault()
    # The operator creates the seal key (Vault's docs: `vault write -f transit/keys/vault-unseal`).
    ok_200_or_204(admin.write(f"transit/keys/{SEAL_KEY}", {}), "create the seal key")
    ok_200_or_204(admin.write(f"transit/keys/{OTHER_KEY}", {}), "create another key")
    ok(f"PUT transit/keys/{SEAL_KEY} and {OTHER_KEY} (no Content-Type, X-Vault-Request: true)")
    # A fresh daemon starts at v1; a rerun on one that already rotated the key starts later.
    base = expect_data(admin.read(f"transit/keys/{SEAL_KEY}"), "read the seal key")["latest_version"]
    cur, nxt = f"v{base}", f"v{base + 1}"

    stored = seal_sequence(admin, "admin token", cur, renewable=False)
    ns = Vault(namespace="ns1/")
    stored += seal_sequence(ns, "admin token + X-Vault-Namespace ns1/", cur, renewable=False)

    # A token scoped as Vault's docs tell operators: encrypt + decrypt on the seal key only.
    seal_token = create_vault_token(f"vault-seal-{TAG}", [SEAL_KEY], ["encrypt", "decrypt"],
                                    ttl_seconds=3600, renewable=True)
    seal = Vault(token=seal_token)
    stored += seal_sequence(seal, "scoped seal token", cur, renewable=True)
    for path, body in ((f"transit/encrypt/{OTHER_KEY}", {"plaintext": "YQ=="}),
                       (f"transit/decrypt/{OTHER_KEY}", {"ciphertext": stored[0][2]}),
                       (f"transit/keys/{SEAL_KEY}/rotate", {}),
                       (f"transit/keys/{SEAL_KEY}-2", {})):
        expect_error(seal.write(path, body), 403, f"scoped token: PUT {path}", DENIED["errors"])
    ok("scoped token: another key, rotate and key creation -> 403 {\"errors\":[\"permission denied\"]}")
    for label, tok in (("wrong token", "hvs." + "A" * 32), ("malformed token", "not-a-token"),
                       ("no token", None)):
        w = Vault(token=tok)
        expect_error(w.write(f"transit/encrypt/{SEAL_KEY}", {"plaintext": "YQ=="}), 403,
                     f"{label}: encrypt", DENIED["errors"])
        expect_error(w.write("auth/token/renew-self", {"increment": 0}), 403,
                     f"{label}: renew-self", DENIED["errors"])
    ok("wrong, malformed and missing tokens -> 403 {\"errors\":[\"permission denied\"]}")

    # Rotation (docs/vault-door.md, seal "transit"): encrypt now answers v2 and a stable key id;
    # everything stored before still decrypts until Vault's next unseal rewraps it (UpgradeKeys:
    # decrypt + encrypt).
    ok_200_or_204(admin.write(f"transit/keys/{SEAL_KEY}/rotate", {}), "rotate")
    ok(f"PUT transit/keys/{SEAL_KEY}/rotate")
    stored_after = seal_sequence(seal, "after rotation", nxt, renewable=True)
    for what, pt, ct in stored:
        check(ct.startswith(f"vault:{cur}:"), f"{what}: stored before rotation but {ct[:9]}")
        decrypt(seal, SEAL_KEY, ct, pt, f"pre-rotation {what}")
    ok(f"after rotation: all {len(stored)} blobs stored before rotation (vault:{cur}:) still decrypt")
    for what, pt, ct in stored[:2]:  # UpgradeKeys: decrypt the old blob, encrypt it again
        decrypt(seal, SEAL_KEY, ct, pt, f"rewrap {what}")
        new_ct, key_id = encrypt(seal, SEAL_KEY, pt, f"rewrap {what}")
        check(key_id == nxt, f"rewrap {what}: {key_id}")
        decrypt(seal, SEAL_KEY, new_ct, pt, f"rewrapped {what}")
    ok(f"UpgradeKeys: {cur} blobs decrypted and encrypted again as {nxt}, stable key id {nxt}")
    check(all(ct.startswith(f"vault:{nxt}:") for _, _, ct in stored_after), "new-version blobs")

    # An expiring token: lookup-self shows its ttl; renew-self {"increment":0} restores it (what the
    # LifetimeWatcher does at 2/3 of lease_duration, with auth.client_token of the last answer).
    short = create_vault_token(f"vault-seal-short-{TAG}", [SEAL_KEY], ["encrypt", "decrypt"],
                               ttl_seconds=60, renewable=True)
    sv = Vault(token=short)
    d = expect_data(sv.read("auth/token/lookup-self"), "lookup-self")
    check(isinstance(d.get("ttl"), int) and 0 < d["ttl"] <= 60, f"lookup-self ttl: {d}")
    check(d.get("renewable") is True, f"lookup-self renewable: {d}")
    check(d.get("id") == short, "lookup-self id is not the token")
    check(d.get("expire_time") is not None, f"lookup-self expire_time of an expiring token: {d}")
    ok(f"expiring token: lookup-self ttl={d['ttl']} (<= 60), renewable, expire_time {d['expire_time']}")
    time.sleep(2)
    before = expect_data(sv.read("auth/token/lookup-self"), "lookup-self")["ttl"]
    auth = renew_self(sv, "expiring token", must_succeed=True)
    check(auth["renewable"] is True and 0 < auth["lease_duration"] <= 60,
          f"renew-self of a 60 s token: {auth}")
    check(auth["lease_duration"] >= before, f"renewal did not extend: {before} -> {auth}")
    sv.token = auth["client_token"]  # the watcher renews with what came back
    auth2 = renew_self(sv, "expiring token, second renewal", must_succeed=True)
    check(auth2["lease_duration"] > 0, f"second renewal: {auth2}")
    after = expect_data(sv.read("auth/token/lookup-self"), "lookup-self")["ttl"]
    check(after >= before and after <= 60, f"lookup-self ttl after renew: {before} -> {after}")
    ok(f"expiring token: ttl {before} -> renewed to {after} (lease_duration {auth['lease_duration']})")
    seal_sequence(sv, "expiring token", nxt, renewable=True)
    gone = Vault(token=create_vault_token(f"vault-seal-1s-{TAG}", [SEAL_KEY], ["encrypt", "decrypt"],
                                          ttl_seconds=1, renewable=True))
    time.sleep(2.5)
    expect_error(gone.write(f"transit/encrypt/{SEAL_KEY}", {"plaintext": "YQ=="}), 403,
                 "expired token: encrypt", DENIED["errors"])
    expect_error(gone.write("auth/token/renew-self", {"increment": 0}), 403,
                 "expired token: renew-self", DENIED["errors"])
    ok("a token past its ttl: encrypt and renew-self -> 403 {\"errors\":[\"permission denied\"]}")

    # A write-only Vault header set: POST is a synonym of PUT, Bearer a synonym of X-Vault-Token.
    r = admin.request("POST", f"transit/encrypt/{SEAL_KEY}", {"plaintext": "YQ=="})
    check(expect_data(r, "POST encrypt")["ciphertext"].startswith(f"vault:{nxt}:"), "POST")
    bearer = Vault(token=None)
    r = bearer.write(f"transit/encrypt/{SEAL_KEY}", {"plaintext": "YQ=="},
                     headers={"Authorization": "Bearer " + VAULT_TOKEN})
    check(expect_data(r, "Bearer encrypt")["ciphertext"].startswith(f"vault:{nxt}:"), "Bearer")
    ok("POST = PUT; Authorization: Bearer = X-Vault-Token")


if __name__ == "__main__":
    run(main)
