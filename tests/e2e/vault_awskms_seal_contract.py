#!/usr/bin/python3
"""Vault's `seal "awskms"` against kmsd's AWS door (go-kms-wrapping wrappers/awskms, v2 on
aws-sdk-go v1 as Vault imports it and v4 on aws-sdk-go-v2; docs/vault-door.md, seal "awskms"),
through boto3, which sends the SDKs' wire format (POST /, application/x-amz-json-1.1, X-Amz-Target,
SigV4):

  SetConfig: DescribeKey(KeyId = alias / alias ARN / ARN / id) -> KeyMetadata.KeyId (v2), .Arn (v4)
  Encrypt:   random 32-byte DEK + 12-byte IV, AES-256-GCM of the value locally (no AAD), then
             Encrypt(KeyId = configured, Plaintext = DEK) -> KeyId (dereferenced), CiphertextBlob
  Decrypt:   Decrypt(CiphertextBlob) WITHOUT KeyId -> Plaintext = DEK, then AES-GCM open locally
  Rotation:  RotateKeyOnDemand keeps the ARN (Vault's stored key_id) and old blobs decrypt.
"""
import os
import uuid

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from e2e_lib import check, client, expect_error, ok, run

kms = client()
TAG = uuid.uuid4().hex[:8]


def seal_values():
    import base64
    root_key = b'["' + base64.b64encode(os.urandom(32)) + b'"]'
    return [("root key JSON", root_key), ("recovery key", os.urandom(32)),
            ("IsUpToDate \\x00", b"\x00"), ("health check", b"Heartbeat 123")]


def wrap(configured, value):
    """awskms Wrapper.Encrypt in envelope mode: what becomes BlobInfo."""
    dek, iv = os.urandom(32), os.urandom(12)
    ct = AESGCM(dek).encrypt(iv, value, None)
    out = kms.encrypt(KeyId=configured, Plaintext=dek)
    check(isinstance(out.get("KeyId"), str) and out["KeyId"], f"Encrypt({configured}): no KeyId")
    check(isinstance(out.get("CiphertextBlob"), bytes) and len(out["CiphertextBlob"]) <= 6144,
          f"Encrypt({configured}): CiphertextBlob")
    check(out.get("EncryptionAlgorithm") == "SYMMETRIC_DEFAULT", f"Encrypt: {out}")
    return {"ciphertext": ct, "iv": iv, "key_id": out["KeyId"], "wrapped_key": out["CiphertextBlob"]}


def unwrap(blob):
    """awskms Wrapper.Decrypt: Decrypt without KeyId, then AES-GCM open."""
    out = kms.decrypt(CiphertextBlob=blob["wrapped_key"])
    check(len(out["Plaintext"]) == 32, "Decrypt: DEK is not 32 bytes")
    check(out.get("EncryptionAlgorithm") == "SYMMETRIC_DEFAULT", f"Decrypt: {out}")
    return out["KeyId"], AESGCM(out["Plaintext"]).decrypt(blob["iv"], blob["ciphertext"], None)


def main():
    meta = kms.create_key(Description=f"vault awskms seal {TAG}")["KeyMetadata"]
    kid, arn = meta["KeyId"], meta["Arn"]
    alias = f"alias/vault-unseal-{TAG}"
    kms.create_alias(AliasName=alias, TargetKeyId=kid)
    alias_arn = arn.split(":key/")[0] + ":" + alias
    forms = {"alias": alias, "alias ARN": alias_arn, "key ARN": arn, "key id": kid}
    ok(f"create_key {kid} and {alias}")

    for label, configured in forms.items():
        m = kms.describe_key(KeyId=configured)["KeyMetadata"]
        check(m.get("KeyId") == kid, f"DescribeKey({label}): KeyId {m.get('KeyId')}")  # v2 wrapper
        check(m.get("Arn") == arn, f"DescribeKey({label}): Arn {m.get('Arn')}")  # v4 wrapper
        check(m["Enabled"] and m["KeyState"] == "Enabled" and m["KeyUsage"] == "ENCRYPT_DECRYPT"
              and m["KeySpec"] == "SYMMETRIC_DEFAULT", f"DescribeKey({label}): {m}")
    ok("SetConfig: DescribeKey by alias, alias ARN, ARN, id -> KeyMetadata.KeyId and .Arn")

    stored = []
    for label, configured in forms.items():
        for what, value in seal_values():
            blob = wrap(configured, value)
            check(blob["key_id"] == arn, f"Encrypt(KeyId={label}): KeyId {blob['key_id']} is not "
                  f"the key ARN {arn}")
            stored.append((f"{label}/{what}", value, blob))
    ok(f"Encrypt of a random 32-byte DEK with KeyId = each form: {len(stored)} envelopes, "
       "response KeyId = key ARN")
    for what, value, blob in stored:
        key_id, opened = unwrap(blob)
        check(key_id == arn, f"Decrypt {what}: KeyId {key_id}")
        check(opened == value, f"Decrypt {what}: the local AES-GCM open gives other bytes")
    ok(f"Decrypt WITHOUT KeyId: {len(stored)} DEKs back, KeyId = key ARN, root/recovery keys open")

    # Rotation keeps Vault's stored key_id (the ARN) and every blob stored before.
    kms.rotate_key_on_demand(KeyId=kid)
    rotations = kms.list_key_rotations(KeyId=kid)["Rotations"]
    check(len(rotations) == 1 and rotations[0]["RotationType"] == "ON_DEMAND", f"{rotations}")
    ok("RotateKeyOnDemand, ListKeyRotations shows one ON_DEMAND rotation")
    m = kms.describe_key(KeyId=alias)["KeyMetadata"]
    check(m["KeyId"] == kid and m["Arn"] == arn, f"DescribeKey after rotation: {m}")
    after = wrap(alias, b"Heartbeat 456")
    check(after["key_id"] == arn, f"Encrypt after rotation: KeyId {after['key_id']}")
    check(after["wrapped_key"] != stored[0][2]["wrapped_key"], "new blob equals an old one")
    check(unwrap(after) == (arn, b"Heartbeat 456"), "post-rotation envelope")
    ok("after rotation: DescribeKey and Encrypt keep KeyId = same ARN (no rewrap by Vault)")
    for what, value, blob in stored:
        check(unwrap(blob) == (arn, value), f"pre-rotation {what}")
    ok(f"after rotation: all {len(stored)} envelopes stored before still decrypt, KeyId = ARN")

    # What Vault sees when the blob or the key is wrong (the seal surfaces the error text).
    bad = bytearray(stored[0][2]["wrapped_key"])
    bad[-1] ^= 1
    expect_error(kms, "InvalidCiphertextException", kms.decrypt, CiphertextBlob=bytes(bad))
    expect_error(kms, "NotFoundException", kms.describe_key, KeyId=f"alias/vault-missing-{TAG}")
    kms.disable_key(KeyId=kid)
    expect_error(kms, "DisabledException", kms.encrypt, KeyId=alias, Plaintext=os.urandom(32))
    expect_error(kms, "DisabledException", kms.decrypt, CiphertextBlob=stored[0][2]["wrapped_key"])
    kms.enable_key(KeyId=kid)
    check(unwrap(stored[0][2]) == (arn, stored[0][1]), "after enable")
    ok("disable/enable: Vault gets DisabledException meanwhile, the same blobs open after")


if __name__ == "__main__":
    run(main)
