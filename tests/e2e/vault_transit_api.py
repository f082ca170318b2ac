#!/usr/bin/python3
"""A broader pass over the transit endpoints of kmsd's Vault door (docs/vault-door.md "Transit
keys") with a Vault-style client (vault_lib.py: the Go client's headers, PUT, no Content-Type): LIST
and ?list=true, batch encrypt/decrypt of 100 items, datakey, hmac, ecdsa-p256 sign/verify checked
independently with `cryptography` (DER over SHA-256 of the input), hash, random, the exact decrypt
errors, a key policy Deny put through the AWS door refusing the Vault door, mount-aware token
patterns, and caller-chosen status codes that could not carry a body refused."""
import base64
import hashlib
import json
import os
import uuid

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from e2e_lib import canary, check, client, ok, run
from vault_lib import Vault, create_vault_token, expect_data, expect_error, ok_200_or_204

TAG = uuid.uuid4().hex[:8]
v = Vault()


def b64(b):
    return base64.b64encode(b).decode()


def unb64(s):
    return base64.b64decode(s, validate=True)


def keys_and_list():
    names = [f"api-{TAG}-aes", f"api-{TAG}-ec", f"api-{TAG}-hmac"]
    for name, typ in zip(names, ("aes256-gcm96", "ecdsa-p256", "hmac")):
        ok_200_or_204(v.write(f"transit/keys/{name}", {"type": typ}), f"create {typ}")
        info = expect_data(v.read(f"transit/keys/{name}"), f"read {name}")
        check(info.get("name") == name and info.get("type") == typ, f"read {name}: {info}")
        check(info.get("latest_version") == 1 and "1" in info.get("keys", {}), f"{name}: {info}")
    ok("create + read aes256-gcm96, ecdsa-p256, hmac keys")
    for how, r in (("LIST", v.request("LIST", "transit/keys")),
                   ("GET ?list=true", v.read("transit/keys?list=true"))):
        listed = expect_data(r, how).get("keys")
        check(isinstance(listed, list) and set(names) <= set(listed), f"{how}: {listed}")
    ok("LIST transit/keys and GET ?list=true name every key")
    expect_error(v.read(f"transit/keys/missing-{TAG}"), 404, "read a missing key")
    ok("read a missing key -> 404")
    return names


def batch(aes):
    # A canary plaintext (e2e_lib.canary) first: it is also the good item of the 400 below.
    items = [canary("transit-batch")] + [os.urandom(i % 97 + 1) for i in range(1, 100)]
    d = expect_data(v.write(f"transit/encrypt/{aes}", {"batch_input": [
        {"plaintext": b64(p), "reference": f"r{i}"} for i, p in enumerate(items)]}), "batch encrypt")
    res = d.get("batch_results")
    check(isinstance(res, list) and len(res) == 100, f"batch encrypt: {len(res or [])} results")
    for i, r in enumerate(res):
        check(r.get("reference") == f"r{i}" and r.get("ciphertext", "").startswith("vault:v1:")
              and "error" not in r, f"batch encrypt item {i}: {r}")
    d = expect_data(v.write(f"transit/decrypt/{aes}", {"batch_input": [
        {"ciphertext": r["ciphertext"], "reference": r["reference"]} for r in res]}), "batch decrypt")
    out = d.get("batch_results")
    check(len(out) == 100, "batch decrypt count")
    for i, r in enumerate(out):
        check(r.get("reference") == f"r{i}" and unb64(r["plaintext"]) == items[i],
              f"batch decrypt item {i}")
    ok("batch encrypt of 100 items, order and references kept; batch decrypt gives each back")
    # One bad item: 400 with every result, the good ones intact (docs/vault-door.md "Transit keys",
    # batches).
    r = v.write(f"transit/decrypt/{aes}", {"batch_input": [
        {"ciphertext": res[0]["ciphertext"]}, {"ciphertext": "vault:v1:AAAA"}]})
    check(r.status == 400 and isinstance(r.json, dict), f"batch with a bad item: {r}")
    results = r.json.get("data", {}).get("batch_results", [])
    check(len(results) == 2 and unb64(results[0]["plaintext"]) == items[0]
          and results[1].get("error"), f"batch with a bad item: {r.json}")
    ok("batch decrypt with one bad item -> 400 with both results")


def datakey(aes):
    d = expect_data(v.write(f"transit/datakey/plaintext/{aes}", {}), "datakey plaintext")
    pt = unb64(d["plaintext"])
    check(len(pt) == 32 and d["ciphertext"].startswith("vault:v1:"), f"datakey: {len(pt)} bytes")
    back = expect_data(v.write(f"transit/decrypt/{aes}", {"ciphertext": d["ciphertext"]}), "dk")
    check(unb64(back["plaintext"]) == pt, "datakey ciphertext does not decrypt to its plaintext")
    d = expect_data(v.write(f"transit/datakey/wrapped/{aes}", {"bits": 512}), "datakey wrapped")
    check("plaintext" not in d or not d["plaintext"], f"wrapped datakey shows a plaintext: {d}")
    back = expect_data(v.write(f"transit/decrypt/{aes}", {"ciphertext": d["ciphertext"]}), "dk512")
    check(len(unb64(back["plaintext"])) == 64, "512-bit data key")
    ok("datakey plaintext (256) and wrapped (512): ciphertexts decrypt to the key")


def hmac(hk):
    msg = b64(b"the quick brown fox")
    mac = expect_data(v.write(f"transit/hmac/{hk}", {"input": msg}), "hmac")["hmac"]
    check(mac.startswith("vault:v1:") and len(unb64(mac.split(":")[2])) == 32, f"hmac {mac}")
    again = expect_data(v.write(f"transit/hmac/{hk}/sha2-256", {"input": msg}), "hmac")["hmac"]
    check(again == mac, "HMAC is not deterministic")
    good = expect_data(v.write(f"transit/verify/{hk}", {"input": msg, "hmac": mac}), "verify")
    bad = expect_data(v.write(f"transit/verify/{hk}", {"input": b64(b"other"), "hmac": mac}), "v")
    check(good.get("valid") is True and bad.get("valid") is False, f"verify hmac {good} {bad}")
    ok("hmac sha2-256 (32-byte MAC, deterministic), verify true / false")


def sign(ec_key):
    info = expect_data(v.read(f"transit/keys/{ec_key}"), "read ec key")
    pem = info["keys"]["1"]["public_key"]
    pub = serialization.load_pem_public_key(pem.encode())
    check(isinstance(pub, ec.EllipticCurvePublicKey) and pub.curve.name == "secp256r1", "P-256")
    msg = b"sign me " + os.urandom(16)
    for path in (f"transit/sign/{ec_key}", f"transit/sign/{ec_key}/sha2-256"):
        sig = expect_data(v.write(path, {"input": b64(msg)}), path)["signature"]
        check(sig.startswith("vault:v1:"), f"{path}: {sig}")
        der = unb64(sig.split(":")[2])
        pub.verify(der, msg, ec.ECDSA(hashes.SHA256()))  # raises InvalidSignature
        try:
            pub.verify(der, msg + b"x", ec.ECDSA(hashes.SHA256()))
            check(False, "signature verified over another message")
        except InvalidSignature:
            pass
        vd = expect_data(v.write(f"transit/verify/{ec_key}", {"input": b64(msg), "signature": sig}),
                         "verify")
        check(vd.get("valid") is True, f"verify: {vd}")
    vd = expect_data(v.write(f"transit/verify/{ec_key}", {"input": b64(b"x"), "signature": sig}),
                     "verify other")
    check(vd.get("valid") is False, f"verify of another input: {vd}")
    ok("ecdsa-p256 sign (DER over SHA-256) verified by cryptography with keys/<name>'s PEM; "
       "verify true / false")


def hash_and_random():
    data = os.urandom(100)
    d = expect_data(v.write("transit/hash", {"input": b64(data)}), "hash")
    check(d["sum"] == hashlib.sha256(data).hexdigest(), "hash sha2-256 hex")
    d = expect_data(v.write("transit/hash/sha2-512", {"input": b64(data), "format": "base64"}),
                    "hash 512")
    check(unb64(d["sum"]) == hashlib.sha512(data).digest(), "hash sha2-512 base64")
    ok("hash: sha2-256 hex (default) and sha2-512 base64 equal hashlib's")
    a = unb64(expect_data(v.write("transit/random/32", {}), "random")["random_bytes"])
    b = unb64(expect_data(v.write("transit/random", {"bytes": 32}), "random")["random_bytes"])
    check(len(a) == 32 and len(b) == 32 and a != b, "random 32 bytes")
    h = expect_data(v.write("transit/random", {"bytes": 16, "format": "hex"}), "hex")["random_bytes"]
    check(len(h) == 32 and all(c in "0123456789abcdef" for c in h), f"random hex {h}")
    ok("random: 32 bytes via path and body, hex format")


def errors(aes):
    for ct, msg in (("garbage", "invalid ciphertext: no prefix"),
                    ("vault:v1", "invalid ciphertext: wrong number of fields"),
                    ("vault:vX:AAAA", "invalid ciphertext: version number could not be decoded"),
                    ("vault:v9:AAAA", "invalid ciphertext: version is too new"),
                    ("vault:v1:!!!", "invalid ciphertext: could not decode base64"),
                    ("vault:v1:" + b64(os.urandom(80)), "cipher: message authentication failed")):
        expect_error(v.write(f"transit/decrypt/{aes}", {"ciphertext": ct}), 400, f"decrypt {ct}",
                     [msg])
    ok("decrypt of malformed ciphertexts -> 400 with Vault's exact messages")
    expect_error(v.request("PUT", f"transit/encrypt/{aes}", raw=b"{not json"), 400, "bad JSON")
    ok("malformed JSON body -> 400")
    # A plaintext that is not base64: the error names the field, never the value.
    expect_error(v.write(f"transit/encrypt/{aes}", {"plaintext": canary("not-base64").decode()}),
                 400, "plaintext not base64", ["failed to base64-decode plaintext"])
    ok("a plaintext that is not base64 -> 400 naming the field, not the value")


def key_policy_deny():
    """One key store, two doors: a Deny in the key policy of the key behind a transit key, put
    through the AWS door, refuses Vault callers (every token, the administrator's too)."""
    name = f"deny-{TAG}"
    ok_200_or_204(v.write(f"transit/keys/{name}", {}), "create the key to deny")
    ct = expect_data(v.write(f"transit/encrypt/{name}", {"plaintext": b64(b"deny")}), "encrypt")
    ct = ct["ciphertext"]
    kms = client()
    meta = kms.describe_key(KeyId=f"alias/vault/transit/{name}")["KeyMetadata"]
    account = meta["AWSAccountId"]
    policy = {"Version": "2012-10-17", "Statement": [
        {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
         "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "kms:*", "Resource": "*"},
        {"Sid": "NoVaultDecrypt", "Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt",
         "Resource": "*", "Condition": {"ArnLike": {
             "aws:PrincipalArn": f"arn:aws:iam::{account}:user/vault-token/*"}}}]}
    # PutKeyPolicy takes a key id or ARN, not an alias (as AWS).
    kms.put_key_policy(KeyId=meta["KeyId"], PolicyName="default",
                       Policy=json.dumps(policy))
    expect_error(v.write(f"transit/decrypt/{name}", {"ciphertext": ct}), 403,
                 "decrypt under an explicit Deny", ["permission denied"])
    expect_data(v.write(f"transit/encrypt/{name}", {"plaintext": b64(b"x")}), "encrypt, not denied")
    ok("a key policy Deny of kms:Decrypt put through the AWS door -> the Vault door's decrypt 403, "
       "encrypt still allowed")


def mount_aware_patterns(aes):
    """A token for "<name>" on the default mount; a pattern naming a mount that does not hold the
    key reaches nothing."""
    here = Vault(token=create_vault_token(f"here-{TAG}", [aes], ["encrypt"]))
    expect_data(here.write(f"transit/encrypt/{aes}", {"plaintext": b64(b"m")}), "default mount")
    there = Vault(token=create_vault_token(f"there-{TAG}", [f"other/{aes}"], ["encrypt"]))
    expect_error(there.write(f"transit/encrypt/{aes}", {"plaintext": b64(b"m")}), 403,
                 "a pattern of another mount", ["permission denied"])
    here.close()
    there.close()
    ok("key patterns name their mount: transit/<key> reaches it, other/<key> does not")


def status_codes(aes):
    for query in ("activecode=101", "activecode=204", "activecode=304", "standbycode=100",
                  "sealedcode=600", "standbyok=maybe"):
        r = v.read(f"sys/health?{query}")
        check(r.status == 400 and r.json == {"errors": []}, f"sys/health?{query}: {r}")
    check(v.read("sys/health?activecode=299").status == 299, "sys/health?activecode=299")
    ok("sys/health codes that cannot carry the body -> 400 {\"errors\":[]}; 299 is taken")
    r = v.write(f"transit/encrypt/{aes}", {"partial_failure_response_code": 204, "batch_input": [
        {"plaintext": b64(b"a")}, {"plaintext": "%%%"}]})
    check(r.status == 400 and isinstance(r.json, dict) and r.json.get("warnings") == [
        "invalid HTTP response code override from partial_failure_response_code, reverting to 400"],
        f"partial_failure_response_code 204: {r}")
    ok("partial_failure_response_code 204 -> Vault's warning, 400 with the batch results")


def main():
    aes, ec_key, hk = keys_and_list()
    key_policy_deny()
    mount_aware_patterns(aes)
    status_codes(aes)
    batch(aes)
    datakey(aes)
    hmac(hk)
    sign(ec_key)
    hash_and_random()
    errors(aes)


if __name__ == "__main__":
    run(main)
