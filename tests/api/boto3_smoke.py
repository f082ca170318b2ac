#!/usr/bin/python3
"""Drives the AWS door with boto3 (tests/api/aws_server_test.cc). Reads KMS_ENDPOINT, AWS_* and
optionally AWS_CA_BUNDLE from the environment. Prints one line per check; exit 1 on the first failure."""
import base64
import os
import sys

import boto3
import botocore.config
from botocore.exceptions import ClientError


def fail(msg):
    print("FAIL", msg)
    sys.exit(1)


def expect_error(code, fn, **kw):
    try:
        fn(**kw)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        if got != code:
            fail(f"{fn.__name__}: expected {code}, got {got}: {e}")
        if not e.response["ResponseMetadata"].get("RequestId"):
            fail("error without x-amzn-RequestId")
        print("ok error", code)
        return e
    fail(f"{fn.__name__}: expected {code}, call succeeded")


def main():
    cfg = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"})
    kms = boto3.client("kms", endpoint_url=os.environ["KMS_ENDPOINT"], config=cfg,
                       verify=os.environ.get("AWS_CA_BUNDLE", True))
    key = kms.create_key(Description="boto3")["KeyMetadata"]
    if key["KeyState"] != "Enabled" or not key["Arn"].startswith("arn:aws:kms:"):
        fail(f"create_key: {key}")
    # botocore parsed CreationDate (epoch seconds) into a datetime.
    if not hasattr(key["CreationDate"], "year"):
        fail("CreationDate not parsed as a timestamp")
    kid = key["KeyId"]
    print("ok create_key", kid)

    ctx = {"purpose": "test"}
    enc = kms.encrypt(KeyId=kid, Plaintext=b"hello", EncryptionContext=ctx)
    dec = kms.decrypt(CiphertextBlob=enc["CiphertextBlob"], EncryptionContext=ctx)
    if dec["Plaintext"] != b"hello" or dec["KeyId"] != key["Arn"]:
        fail(f"decrypt: {dec}")
    print("ok encrypt/decrypt")

    dk = kms.generate_data_key(KeyId=kid, KeySpec="AES_256")
    if len(dk["Plaintext"]) != 32 or kms.decrypt(CiphertextBlob=dk["CiphertextBlob"])["Plaintext"] != dk["Plaintext"]:
        fail("generate_data_key")
    print("ok generate_data_key")

    kms.create_alias(AliasName="alias/boto3", TargetKeyId=kid)
    if kms.describe_key(KeyId="alias/boto3")["KeyMetadata"]["KeyId"] != kid:
        fail("describe_key by alias")
    print("ok alias")

    for _ in range(3):
        kms.create_key()
    pages = list(kms.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 2}))
    if len(pages) < 2 or sum(len(p["Keys"]) for p in pages) != 4:
        fail(f"list_keys paging: {pages}")
    print("ok list_keys paging", len(pages))

    expect_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=enc["CiphertextBlob"],
                 EncryptionContext={"purpose": "other"})
    expect_error("NotFoundException", kms.describe_key, KeyId="alias/missing")
    expect_error("ValidationException", kms.encrypt, KeyId=kid, Plaintext=b"x" * 4097)
    kms.disable_key(KeyId=kid)
    expect_error("DisabledException", kms.encrypt, KeyId=kid, Plaintext=b"x")
    kms.enable_key(KeyId=kid)
    expect_error("UnsupportedOperationException", kms.get_parameters_for_import, KeyId=kid,
                 WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")
    # The modelled exception classes work too.
    try:
        kms.describe_key(KeyId="alias/missing")
    except kms.exceptions.NotFoundException:
        print("ok modelled exception class")

    bad = boto3.client("kms", endpoint_url=os.environ["KMS_ENDPOINT"], config=cfg,
                       verify=os.environ.get("AWS_CA_BUNDLE", True),
                       aws_access_key_id="AKIDUNKNOWN0000000000", aws_secret_access_key="x" * 40)
    expect_error("UnrecognizedClientException", bad.list_keys)
    wrong = boto3.client("kms", endpoint_url=os.environ["KMS_ENDPOINT"], config=cfg,
                         verify=os.environ.get("AWS_CA_BUNDLE", True), region_name="eu-west-1")
    expect_error("InvalidSignatureException", wrong.list_keys)
    print("ALL OK")


if __name__ == "__main__":
    main()
