#!/usr/bin/python3
"""Negative cases through boto3: each asserts the exception class a boto3 user catches and the HTTP
status (docs/aws-kms-protocol.md: "Request signing", "Errors", "Rules per operation", "Key
states"). SigV4 failures that boto3 cannot produce by itself (a stale clock, the wrong service, an
unsigned X-Amz-Target) are signed with botocore's own SigV4Auth on a hand-built request and sent
with urllib."""
import datetime
import json
import os
import ssl
import urllib.error
import urllib.request
from unittest import mock

import contextlib
import types

import botocore.auth
import botocore.credentials
try:
    import botocore.crt.auth as crt_auth  # with awscrt installed, botocore signs through the CRT
except ImportError:
    crt_auth = None
from botocore.awsrequest import AWSRequest

from e2e_lib import (CA_BUNDLE, ENDPOINT, REGION, canary, check, client, expect_error, ok,
                     record_error_body, record_fields, run)

kms = client()
CREDS = botocore.credentials.Credentials(os.environ["AWS_ACCESS_KEY_ID"],
                                         os.environ["AWS_SECRET_ACCESS_KEY"])


def key_errors():
    key = kms.create_key(Description="negative")["KeyMetadata"]
    kid = key["KeyId"]
    ctx = {"k": "v"}
    # Canary plaintexts (e2e_lib.canary) on the error paths: no error answer, audit record or log
    # line may carry them (the harness searches).
    blob = kms.encrypt(KeyId=kid, Plaintext=canary("negative"), EncryptionContext=ctx)[
        "CiphertextBlob"]
    e = expect_error(kms, "InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob,
                     EncryptionContext={"k": "other"})
    check(e.response["Error"]["Message"] == "", "wrong context must not explain itself")
    expect_error(kms, "InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob)
    for i in (len(blob) // 2, len(blob) - 1):
        tampered = bytearray(blob)
        tampered[i] ^= 0x01
        expect_error(kms, "InvalidCiphertextException", kms.decrypt,
                     CiphertextBlob=bytes(tampered), EncryptionContext=ctx)
    expect_error(kms, "InvalidCiphertextException", kms.decrypt, CiphertextBlob=b"\x01" * 40)
    other = kms.create_key()["KeyMetadata"]["KeyId"]
    expect_error(kms, "IncorrectKeyException", kms.decrypt, CiphertextBlob=blob,
                 EncryptionContext=ctx, KeyId=other)
    oversize = canary("oversize")
    expect_error(kms, "ValidationException", kms.encrypt, KeyId=kid,
                 Plaintext=oversize + b"-" * (4097 - len(oversize)))
    expect_error(kms, "ValidationException", kms.generate_random, NumberOfBytes=1025)
    expect_error(kms, "ValidationException", kms.generate_data_key, KeyId=kid)
    missing = "00000000-1111-2222-3333-444444444444"
    expect_error(kms, "NotFoundException", kms.encrypt, KeyId=missing, Plaintext=canary("missing"))
    expect_error(kms, "NotFoundException", kms.describe_key, KeyId=missing)
    expect_error(kms, "NotFoundException", kms.describe_key, KeyId="alias/e2e-no-such-alias")

    # Disabled key: DisabledException on cryptographic calls (docs/aws-kms-protocol.md "Key
    # states").
    kms.disable_key(KeyId=kid)
    expect_error(kms, "DisabledException", kms.encrypt, KeyId=kid, Plaintext=canary("disabled"))
    expect_error(kms, "DisabledException", kms.decrypt, CiphertextBlob=blob, EncryptionContext=ctx)
    expect_error(kms, "DisabledException", kms.generate_data_key, KeyId=kid, KeySpec="AES_256")
    kms.enable_key(KeyId=kid)

    # Pending deletion: KMSInvalidStateException (docs/aws-kms-protocol.md "Key states").
    kms.schedule_key_deletion(KeyId=kid, PendingWindowInDays=7)
    expect_error(kms, "KMSInvalidStateException", kms.encrypt, KeyId=kid,
                 Plaintext=canary("pending-deletion"))
    expect_error(kms, "KMSInvalidStateException", kms.decrypt, CiphertextBlob=blob,
                 EncryptionContext=ctx)
    expect_error(kms, "KMSInvalidStateException", kms.enable_key, KeyId=kid)
    expect_error(kms, "KMSInvalidStateException", kms.schedule_key_deletion, KeyId=kid)
    kms.cancel_key_deletion(KeyId=kid)
    expect_error(kms, "KMSInvalidStateException", kms.cancel_key_deletion, KeyId=kid)
    ok("ciphertext, key state, validation and lookup errors")


def usage_errors():
    sym = kms.create_key()["KeyMetadata"]["KeyId"]
    ec_key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    mac_key = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"][
        "KeyId"]
    expect_error(kms, "InvalidKeyUsageException", kms.encrypt, KeyId=ec_key,
                 Plaintext=canary("wrong-usage"))
    expect_error(kms, "InvalidKeyUsageException", kms.sign, KeyId=sym, Message=b"x",
                 SigningAlgorithm="ECDSA_SHA_256")
    expect_error(kms, "InvalidKeyUsageException", kms.generate_mac, KeyId=ec_key, Message=b"x",
                 MacAlgorithm="HMAC_SHA_256")
    expect_error(kms, "InvalidKeyUsageException", kms.generate_mac, KeyId=mac_key, Message=b"x",
                 MacAlgorithm="HMAC_SHA_384")
    expect_error(kms, "InvalidKeyUsageException", kms.sign, KeyId=ec_key, Message=b"x",
                 SigningAlgorithm="RSASSA_PSS_SHA_256")
    expect_error(kms, "ValidationException", kms.sign, KeyId=ec_key, Message=b"short",
                 MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")
    expect_error(kms, "UnsupportedOperationException", kms.get_public_key, KeyId=sym)
    expect_error(kms, "UnsupportedOperationException", kms.enable_key_rotation, KeyId=ec_key)

    sig = kms.sign(KeyId=ec_key, Message=b"signed", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    e = expect_error(kms, "KMSInvalidSignatureException", kms.verify, KeyId=ec_key,
                     Message=b"signed!", Signature=sig, SigningAlgorithm="ECDSA_SHA_256")
    check(isinstance(e, kms.exceptions.KMSInvalidSignatureException), "exception class")
    bad = bytearray(sig)
    bad[-1] ^= 0x01
    expect_error(kms, "KMSInvalidSignatureException", kms.verify, KeyId=ec_key, Message=b"signed",
                 Signature=bytes(bad), SigningAlgorithm="ECDSA_SHA_256")
    ok("key usage and signature errors")


@contextlib.contextmanager
def signing_clock(when):
    """Makes botocore's signers (pure Python and CRT) believe it is `when` (naive UTC)."""

    class Frozen(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return when

    fake = types.SimpleNamespace(**{n: getattr(datetime, n) for n in dir(datetime)
                                    if not n.startswith("__")})
    fake.datetime = Frozen
    with contextlib.ExitStack() as stack:
        for module in (botocore.auth, crt_auth):
            if module is not None:
                stack.enter_context(mock.patch.object(module, "datetime", fake))
        yield


# --- SigV4 ------------------------------------------------------------------------------------------
class UnsignedTargetAuth(botocore.auth.SigV4Auth):
    """botocore's signer with X-Amz-Target left out of SignedHeaders."""

    def headers_to_sign(self, request):
        headers = super().headers_to_sign(request)
        del headers["x-amz-target"]
        return headers


def raw_call(target, body, auth, when=None):
    """Signs POST / with `auth` (optionally at a fixed time) and sends it; returns (status, json)."""
    req = AWSRequest(method="POST", url=ENDPOINT + "/", data=json.dumps(body).encode(), headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService." + target})
    if when is None:
        auth.add_auth(req)
    else:
        with signing_clock(when):
            auth.add_auth(req)
    prepared = req.prepare()
    http_req = urllib.request.Request(prepared.url, data=prepared.body, method="POST",
                                      headers=dict(prepared.headers.items()))
    ctx = ssl.create_default_context(cafile=CA_BUNDLE) if CA_BUNDLE else None
    try:
        with urllib.request.urlopen(http_req, timeout=30, context=ctx) as resp:
            answer = json.loads(resp.read() or b"{}")
            record_fields(f"raw {target} response", answer)
            return resp.status, answer
    except urllib.error.HTTPError as e:
        check(e.headers.get("x-amzn-RequestId"), "error without x-amzn-RequestId")
        body = e.read()
        record_error_body(f"raw {target} HTTP {e.code}", body)
        return e.code, json.loads(body)


def expect_raw(what, exc_name, status_body, message_part=None):
    status, body = status_body
    check(status == 400 and body.get("__type") == exc_name,
          f"{what}: expected 400 {exc_name}, got {status} {body}")
    if message_part:
        check(message_part in body.get("message", ""), f"{what}: message {body}")
    ok(f"{what} -> {exc_name} (400)")


def sigv4_errors():
    now = datetime.datetime.utcnow()
    auth = botocore.auth.SigV4Auth(CREDS, "kms", REGION)
    # The raw path itself works when nothing is wrong.
    status, body = raw_call("GenerateRandom", {"NumberOfBytes": 8}, auth)
    check(status == 200 and "Plaintext" in body, f"raw signed call: {status} {body}")
    status, body = raw_call("GenerateRandom", {"NumberOfBytes": 8}, auth,
                            when=now - datetime.timedelta(minutes=4))
    check(status == 200, f"4 minutes of skew is inside the window: {status} {body}")
    ok("raw SigV4 calls (fresh and 4 minutes old) succeed")
    expect_raw("signed 6 minutes ago", "InvalidSignatureException",
               raw_call("GenerateRandom", {"NumberOfBytes": 8}, auth,
                        when=now - datetime.timedelta(minutes=6)), "Signature expired")
    expect_raw("signed 6 minutes ahead", "InvalidSignatureException",
               raw_call("GenerateRandom", {"NumberOfBytes": 8}, auth,
                        when=now + datetime.timedelta(minutes=6)), "Signature not yet current")
    expect_raw("service 's3' in the scope", "InvalidSignatureException",
               raw_call("GenerateRandom", {"NumberOfBytes": 8},
                        botocore.auth.SigV4Auth(CREDS, "s3", REGION)), "service")
    expect_raw("X-Amz-Target not signed", "IncompleteSignatureException",
               raw_call("GenerateRandom", {"NumberOfBytes": 8},
                        UnsignedTargetAuth(CREDS, "kms", REGION)), "x-amz-target")

    # The same failures as a boto3 user meets them.
    wrong_region = "eu-west-1" if REGION != "eu-west-1" else "us-west-2"
    bad = client(region_name=wrong_region)
    e = expect_error(bad, "InvalidSignatureException", bad.generate_random, NumberOfBytes=8)
    check("region" in e.response["Error"]["Message"], f"wrong region message: {e}")
    bad = client(aws_access_key_id="AKIAE2EUNKNOWNKEY000", aws_secret_access_key="x" * 40)
    expect_error(bad, "UnrecognizedClientException", bad.generate_random, NumberOfBytes=8)
    bad = client(aws_access_key_id=CREDS.access_key, aws_secret_access_key="wrong" * 8)
    expect_error(bad, "InvalidSignatureException", bad.generate_random, NumberOfBytes=8)
    stale = client()
    with signing_clock(now - datetime.timedelta(minutes=6)):
        e = expect_error(stale, "InvalidSignatureException", stale.generate_random,
                         NumberOfBytes=8)
    check("Signature expired" in e.response["Error"]["Message"], f"stale message: {e}")
    with signing_clock(now - datetime.timedelta(minutes=4)):
        check(len(stale.generate_random(NumberOfBytes=8)["Plaintext"]) == 8, "4 minutes old")
    ok("SigV4 failures: stale or future date, wrong region, service, access key, secret, "
       "unsigned target")


def main():
    key_errors()
    usage_errors()
    sigv4_errors()


if __name__ == "__main__":
    run(main)
