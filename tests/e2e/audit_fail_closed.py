#!/usr/bin/python3
"""Fail closed (no audit record, no answer): kmsd's audit log cannot be written (the harness made
its first audit file a symlink to /dev/full, whose writes fail with ENOSPC: a full disk), so no
request may be answered as if it had been audited. Both doors answer a server error with their exact
body, the health pages report the appliance unready, and the failures are counted.

The first request is answered with the error after it ran (the record is written after the work,
before the answer); from then on the doors refuse before doing any work, so the key operations
here never reach a key."""
import base64
import json
import os
import urllib.request

from e2e_lib import ENDPOINT, check, client, expect_error, ok, run
from vault_lib import Vault
from vault_lib import expect_error as vault_error

AWS_AUDIT_ERROR = ("The request was not completed: the appliance could not write its audit "
                   "record. Retry the request.")
VAULT_AUDIT_ERROR = ["internal error: the audit log cannot be written"]
KEY = "arn:aws:kms:us-east-1:111122223333:key/00000000-0000-4000-8000-000000000000"


def get(path):
    try:
        with urllib.request.urlopen(ENDPOINT + path, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def main():
    kms = client()
    plaintext = b"canary-plaintext-fail-closed"

    def audit_refused(fn, **kw):
        e = expect_error(kms, "KMSInternalException", fn, status=500, **kw)
        check(e.response["Error"]["Message"] == AWS_AUDIT_ERROR,
              f"{fn.__name__}: message {e.response['Error']['Message']!r}")

    # The request that finds the log broken.
    audit_refused(kms.list_keys)
    # Every key operation after it, crypto first.
    audit_refused(kms.encrypt, KeyId=KEY, Plaintext=plaintext)
    audit_refused(kms.decrypt, CiphertextBlob=b"\x01" * 64)
    audit_refused(kms.generate_data_key, KeyId=KEY, KeySpec="AES_256")
    audit_refused(kms.re_encrypt, CiphertextBlob=b"\x01" * 64, DestinationKeyId=KEY)
    audit_refused(kms.sign, KeyId=KEY, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")
    audit_refused(kms.generate_mac, KeyId=KEY, Message=b"m", MacAlgorithm="HMAC_SHA_256")
    audit_refused(kms.generate_random, NumberOfBytes=32)
    audit_refused(kms.create_key)
    ok("the AWS door refuses every operation with KMSInternalException (500) and its message")

    vault = Vault()
    b64 = base64.b64encode(plaintext).decode()
    vault_error(vault.write("transit/encrypt/app", {"plaintext": b64}), 500, "transit encrypt",
                VAULT_AUDIT_ERROR)
    vault_error(vault.write("transit/decrypt/app", {"ciphertext": "vault:v1:AAAA"}), 500,
                "transit decrypt", VAULT_AUDIT_ERROR)
    vault_error(vault.write("transit/datakey/plaintext/app", {}), 500, "transit datakey",
                VAULT_AUDIT_ERROR)
    vault_error(vault.write("transit/keys/app", {}), 500, "transit create key", VAULT_AUDIT_ERROR)
    ok("the Vault door refuses with 500 and its error body")

    status, body = get("/health")
    check(status == 503, f"/health -> {status} {body}")
    health = json.loads(body)
    check(health["audit"] == "failing" and health["hsm"] == "ok" and not health["sealed"],
          f"/health body {body}")
    check(get("/readyz") == (503, "audit log failing\n"), f"/readyz -> {get('/readyz')}")
    check(get("/livez") == (200, "ok\n"), "/livez")
    ok("/health 503 with audit failing, /readyz 503 'audit log failing', /livez 200")

    status, metrics = get("/metrics")
    check(status == 200, f"/metrics -> {status}")
    failures = [line for line in metrics.splitlines()
                if line.startswith("kms_audit_write_failures_total")]
    check(len(failures) == 1, f"kms_audit_write_failures_total lines: {failures}")
    # Only the requests that tried to write count; the refused ones did no work to record.
    check(float(failures[0].split()[-1]) >= 1, f"no audit write failure counted: {failures}")
    ok(f"audit write failures counted ({failures[0]})")


run(main)
