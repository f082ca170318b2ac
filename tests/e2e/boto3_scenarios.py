#!/usr/bin/python3
"""Every implemented KMS operation through boto3, against a kmsd started by the e2e harness, with
results checked independently (cryptography for signatures, data keys and key pairs)."""
import os
import uuid

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from e2e_lib import (CURVES, SIGN_SPECS, canary, check, check_key_pair, client, digest,
                     expect_error, ok, run, verify_locally)

kms = client()
TAG = uuid.uuid4().hex[:8]


def create(**kw):
    meta = kms.create_key(**kw)["KeyMetadata"]
    check(meta["KeyState"] == "Enabled" and meta["Enabled"], f"create_key {kw}: {meta}")
    check(meta["Arn"] == f"arn:aws:kms:{os.environ['AWS_DEFAULT_REGION']}:{meta['AWSAccountId']}"
          f":key/{meta['KeyId']}", f"ARN {meta['Arn']}")
    check(hasattr(meta["CreationDate"], "year"), "CreationDate is not a timestamp")
    return meta


def create_keys():
    specs = {}
    sym = create(Description="e2e symmetric")
    check(sym["KeySpec"] == "SYMMETRIC_DEFAULT" and sym["KeyUsage"] == "ENCRYPT_DECRYPT"
          and sym["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"], f"symmetric defaults: {sym}")
    specs["SYMMETRIC_DEFAULT"] = sym
    rsa_enc = create(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")
    algs = set(rsa_enc["EncryptionAlgorithms"])
    check("RSAES_OAEP_SHA_1" in algs and algs <= {"RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"},
          f"RSA encryption algorithms: {rsa_enc}")
    specs["RSA_2048/ENCRYPT_DECRYPT"] = rsa_enc
    for spec, algs in SIGN_SPECS.items():
        meta = create(KeySpec=spec, KeyUsage="SIGN_VERIFY")
        check(set(algs) <= set(meta["SigningAlgorithms"]), f"{spec} signing algorithms: {meta}")
        specs[spec] = meta
    for bits in ("224", "256", "384", "512"):
        meta = create(KeySpec=f"HMAC_{bits}", KeyUsage="GENERATE_VERIFY_MAC")
        check(meta["MacAlgorithms"] == [f"HMAC_SHA_{bits}"], f"HMAC_{bits}: {meta}")
        specs[f"HMAC_{bits}"] = meta
    tagged = create(Description="tagged at creation", Tags=[{"TagKey": "team", "TagValue": "h"}])
    check(kms.list_resource_tags(KeyId=tagged["KeyId"])["Tags"] == [{"TagKey": "team",
                                                                       "TagValue": "h"}],
          "tags given at creation")
    ok(f"create_key: {len(specs) + 1} keys, every key spec")
    return specs


def describe_and_aliases(sym, other):
    kid, arn = sym["KeyId"], sym["Arn"]
    alias = f"alias/e2e-{TAG}"
    alias_arn = arn.split(":key/")[0] + ":" + alias
    kms.create_alias(AliasName=alias, TargetKeyId=kid)
    for form in (kid, arn, alias, alias_arn):
        meta = kms.describe_key(KeyId=form)["KeyMetadata"]
        check(meta["KeyId"] == kid and meta["Arn"] == arn, f"describe_key({form}): {meta}")
    ok("describe_key by id, ARN, alias, alias ARN")
    # Cryptographic calls accept the alias forms too.
    for form in (alias, alias_arn):
        blob = kms.encrypt(KeyId=form, Plaintext=b"via alias")["CiphertextBlob"]
        check(kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"via alias", "alias encrypt")
    aliases = kms.list_aliases(KeyId=kid)["Aliases"]
    check([a["AliasName"] for a in aliases] == [alias] and aliases[0]["TargetKeyId"] == kid
          and aliases[0]["AliasArn"] == alias_arn, f"list_aliases(KeyId): {aliases}")
    # Paging over all aliases: make a few more, walk with Limit=2.
    extra = [f"alias/e2e-{TAG}-{i}" for i in range(3)]
    for name in extra:
        kms.create_alias(AliasName=name, TargetKeyId=other["KeyId"])
    seen, marker, pages = [], None, 0
    while True:
        page = kms.list_aliases(Limit=2, **({"Marker": marker} if marker else {}))
        pages += 1
        check(len(page["Aliases"]) <= 2, "list_aliases page over Limit")
        seen += [a["AliasName"] for a in page["Aliases"]]
        if not page["Truncated"]:
            check("NextMarker" not in page, "last alias page has a NextMarker")
            break
        marker = page["NextMarker"]
    check(len(seen) == len(set(seen)) and {alias, *extra} <= set(seen) and pages >= 2,
          f"list_aliases paging: {seen}")
    kms.update_alias(AliasName=alias, TargetKeyId=other["KeyId"])
    check(kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"] == other["KeyId"], "update_alias")
    kms.update_alias(AliasName=alias, TargetKeyId=kid)
    expect_error(kms, "AlreadyExistsException", kms.create_alias, AliasName=alias, TargetKeyId=kid)
    for name in extra:
        kms.delete_alias(AliasName=name)
    check(not kms.list_aliases(KeyId=other["KeyId"])["Aliases"], "delete_alias")
    expect_error(kms, "NotFoundException", kms.describe_key, KeyId=extra[0])
    ok("aliases: create, update, delete, list with paging")
    return alias


def list_keys_paging(created):
    seen, marker, pages = [], None, 0
    while True:
        page = kms.list_keys(Limit=3, **({"Marker": marker} if marker else {}))
        pages += 1
        check(len(page["Keys"]) <= 3, "list_keys page over Limit")
        for k in page["Keys"]:
            check(k["KeyArn"].endswith("/" + k["KeyId"]), f"list_keys entry {k}")
        seen += [k["KeyId"] for k in page["Keys"]]
        if not page["Truncated"]:
            check("NextMarker" not in page, "last page carries a NextMarker")
            break
        check(page.get("NextMarker"), "truncated page without NextMarker")
        marker = page["NextMarker"]
    check(len(seen) == len(set(seen)), "list_keys paging repeated a key")
    check({m["KeyId"] for m in created} <= set(seen), "list_keys paging missed a key")
    everything = [k["KeyId"] for k in kms.list_keys(Limit=1000)["Keys"]]
    check(sorted(everything) == sorted(seen), "paged and unpaged listings differ")
    # botocore's paginator drives Marker/NextMarker/Truncated itself.
    paged = [k["KeyId"] for p in kms.get_paginator("list_keys").paginate(PaginationConfig={
        "PageSize": 4}) for k in p["Keys"]]
    check(sorted(paged) == sorted(seen), "list_keys paginator")
    expect_error(kms, "InvalidMarkerException", kms.list_keys, Marker="not-a-marker")
    ok(f"list_keys paging: {len(seen)} keys over {pages} pages")


def encrypt_decrypt(sym, rsa_enc):
    kid, arn = sym["KeyId"], sym["Arn"]
    algs = set(rsa_enc["EncryptionAlgorithms"])
    # Canary plaintexts (e2e_lib.canary) are found by a raw search if they leak anywhere.
    for plaintext in (b"x", canary("encrypt"), os.urandom(4096)):
        enc = kms.encrypt(KeyId=kid, Plaintext=plaintext)
        check(enc["KeyId"] == arn and enc["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT", str(enc))
        dec = kms.decrypt(CiphertextBlob=enc["CiphertextBlob"])
        check(dec["Plaintext"] == plaintext and dec["KeyId"] == arn, "decrypt without KeyId")
        dec = kms.decrypt(CiphertextBlob=enc["CiphertextBlob"], KeyId=kid)
        check(dec["Plaintext"] == plaintext, "decrypt with KeyId")
    ctx = {"tenant": "h", "purpose": "e2e"}
    with_ctx = canary("context")
    blob = kms.encrypt(KeyId=kid, Plaintext=with_ctx, EncryptionContext=ctx)["CiphertextBlob"]
    check(kms.decrypt(CiphertextBlob=blob, EncryptionContext=dict(reversed(ctx.items())))
          ["Plaintext"] == with_ctx, "decrypt with the same context (other order)")
    expect_error(kms, "InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob,
                 EncryptionContext={"tenant": "other"})
    ok("encrypt/decrypt with and without encryption context")
    # RSA OAEP: the server's ciphertext decrypts there; a locally made ciphertext decrypts there too.
    pub = serialization.load_der_public_key(
        kms.get_public_key(KeyId=rsa_enc["KeyId"])["PublicKey"])
    for alg, h in (("RSAES_OAEP_SHA_1", hashes.SHA1), ("RSAES_OAEP_SHA_256", hashes.SHA256)):
        if alg not in algs:
            expect_error(kms, "InvalidKeyUsageException", kms.encrypt, KeyId=rsa_enc["KeyId"],
                         Plaintext=b"rsa", EncryptionAlgorithm=alg)
            continue
        if alg != "RSAES_OAEP_SHA_1":
            # SoftHSM2 2.6 implements OAEP with SHA-1 only; the HAL probes the token and the key
            # service answers UnsupportedOperationException for the hashes the token lacks.
            try:
                kms.encrypt(KeyId=rsa_enc["KeyId"], Plaintext=b"rsa", EncryptionAlgorithm=alg)
            except kms.exceptions.UnsupportedOperationException:
                print(f"note: {alg} unsupported by this HSM token", flush=True)
                continue
        blob = kms.encrypt(KeyId=rsa_enc["KeyId"], Plaintext=b"rsa", EncryptionAlgorithm=alg)[
            "CiphertextBlob"]
        dec = kms.decrypt(KeyId=rsa_enc["KeyId"], CiphertextBlob=blob, EncryptionAlgorithm=alg)
        check(dec["Plaintext"] == b"rsa" and dec["EncryptionAlgorithm"] == alg, f"RSA {alg}")
        local = pub.encrypt(b"local", padding.OAEP(padding.MGF1(h()), h(), None))
        check(kms.decrypt(KeyId=rsa_enc["KeyId"], CiphertextBlob=local, EncryptionAlgorithm=alg)
              ["Plaintext"] == b"local", f"RSA {alg} of a local ciphertext")
    ok("RSA OAEP encrypt/decrypt, checked against a local encryption")


def data_keys(sym):
    kid, arn = sym["KeyId"], sym["Arn"]
    ctx = {"file": "e2e.bin"}
    for kw, size in (({"KeySpec": "AES_256"}, 32), ({"KeySpec": "AES_128"}, 16),
                     ({"NumberOfBytes": 64}, 64)):
        dk = kms.generate_data_key(KeyId=kid, EncryptionContext=ctx, **kw)
        check(len(dk["Plaintext"]) == size and dk["KeyId"] == arn, f"generate_data_key {kw}")
        if size in (16, 32):  # envelope encryption: use the data key locally, drop it, recover it
            nonce = os.urandom(12)
            sealed = AESGCM(dk["Plaintext"]).encrypt(nonce, b"envelope payload", None)
            recovered = kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=ctx)
            check(recovered["KeyId"] == arn, "envelope decrypt KeyId")
            check(AESGCM(recovered["Plaintext"]).decrypt(nonce, sealed, None) == b"envelope payload",
                  "envelope decrypt")
        else:
            check(kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=ctx)
                  ["Plaintext"] == dk["Plaintext"], "data key blob decrypts")
    wp = kms.generate_data_key_without_plaintext(KeyId=kid, KeySpec="AES_256")
    check("Plaintext" not in wp and wp["KeyId"] == arn, f"without plaintext: {wp.keys()}")
    check(len(kms.decrypt(CiphertextBlob=wp["CiphertextBlob"])["Plaintext"]) == 32,
          "generate_data_key_without_plaintext blob decrypts to 32 bytes")
    ok("envelope encryption (generate_data_key, AES-GCM locally, decrypt without KeyId)")
    for spec in ("ECC_NIST_P256", "ECC_SECG_P256K1", "RSA_2048"):
        pair = kms.generate_data_key_pair(KeyId=kid, KeyPairSpec=spec, EncryptionContext=ctx)
        check(pair["KeyPairSpec"] == spec and pair["KeyId"] == arn, f"pair {spec}")
        priv = check_key_pair(pair["PrivateKeyPlaintext"], pair["PublicKey"], spec)
        if spec in CURVES:
            check(isinstance(priv.curve, CURVES[spec]), f"{spec}: curve {priv.curve.name}")
        check(kms.decrypt(CiphertextBlob=pair["PrivateKeyCiphertextBlob"], EncryptionContext=ctx)
              ["Plaintext"] == pair["PrivateKeyPlaintext"], f"{spec}: private key blob")
        wp = kms.generate_data_key_pair_without_plaintext(KeyId=kid, KeyPairSpec=spec)
        check("PrivateKeyPlaintext" not in wp and wp["KeyPairSpec"] == spec, f"pair w/o pt {spec}")
        check_key_pair(kms.decrypt(CiphertextBlob=wp["PrivateKeyCiphertextBlob"])["Plaintext"],
                       wp["PublicKey"], spec + " without plaintext")
    ok("generate_data_key_pair(+without_plaintext): private keys match public keys")


def re_encrypt(sym, other):
    ctx = {"a": "1"}
    moved = canary("re-encrypt")
    blob = kms.encrypt(KeyId=sym["KeyId"], Plaintext=moved, EncryptionContext=ctx)[
        "CiphertextBlob"]
    out = kms.re_encrypt(CiphertextBlob=blob, SourceEncryptionContext=ctx,
                         DestinationKeyId=other["KeyId"], DestinationEncryptionContext={"b": "2"})
    check(out["SourceKeyId"] == sym["Arn"] and out["KeyId"] == other["Arn"], f"re_encrypt {out}")
    dec = kms.decrypt(CiphertextBlob=out["CiphertextBlob"], EncryptionContext={"b": "2"})
    check(dec["Plaintext"] == moved and dec["KeyId"] == other["Arn"], "re-encrypted blob")
    ok("re_encrypt to another key and context")


def rotation(sym):
    kid = sym["KeyId"]
    status = kms.get_key_rotation_status(KeyId=kid)
    check(status["KeyRotationEnabled"] is False, f"fresh key rotation status {status}")
    before = kms.encrypt(KeyId=kid, Plaintext=b"before rotation")["CiphertextBlob"]
    kms.enable_key_rotation(KeyId=kid, RotationPeriodInDays=90)
    status = kms.get_key_rotation_status(KeyId=kid)
    check(status["KeyRotationEnabled"] is True and status["RotationPeriodInDays"] == 90
          and "NextRotationDate" in status, f"rotation enabled {status}")
    check(kms.rotate_key_on_demand(KeyId=kid)["KeyId"] in (kid, sym["Arn"]), "rotate_key_on_demand")
    rotations = kms.list_key_rotations(KeyId=kid)["Rotations"]
    check(len(rotations) == 1 and rotations[0]["RotationType"] == "ON_DEMAND"
          and rotations[0]["KeyId"] in (kid, sym["Arn"]), f"list_key_rotations {rotations}")
    kms.rotate_key_on_demand(KeyId=kid)
    page = kms.list_key_rotations(KeyId=kid, Limit=1)
    check(len(page["Rotations"]) == 1 and page["Truncated"] and page["NextMarker"], "rotations page")
    page2 = kms.list_key_rotations(KeyId=kid, Limit=1, Marker=page["NextMarker"])
    check(len(page2["Rotations"]) == 1 and not page2["Truncated"], "rotations page 2")
    after = kms.encrypt(KeyId=kid, Plaintext=b"after rotation")["CiphertextBlob"]
    check(kms.decrypt(CiphertextBlob=before)["Plaintext"] == b"before rotation",
          "a ciphertext from before the rotation decrypts")
    check(kms.decrypt(CiphertextBlob=after)["Plaintext"] == b"after rotation", "after rotation")
    re = kms.re_encrypt(CiphertextBlob=before, DestinationKeyId=kid)["CiphertextBlob"]
    check(kms.decrypt(CiphertextBlob=re)["Plaintext"] == b"before rotation", "re_encrypt after rot")
    kms.disable_key_rotation(KeyId=kid)
    check(kms.get_key_rotation_status(KeyId=kid)["KeyRotationEnabled"] is False, "rotation off")
    ok("rotation: enable, status, on demand, list with paging, old ciphertexts decrypt, disable")


def sign_verify(specs):
    message = b"sign me " * 40
    count = 0
    for spec, algs in SIGN_SPECS.items():
        key = specs[spec]
        pub = kms.get_public_key(KeyId=key["KeyId"])
        check(pub["KeySpec"] == spec and pub["KeyUsage"] == "SIGN_VERIFY"
              and set(algs) <= set(pub["SigningAlgorithms"]), f"get_public_key {spec}: {pub}")
        for alg in algs:
            for mtype, msg in (("RAW", message), ("DIGEST", digest(alg, message))):
                sig = kms.sign(KeyId=key["KeyId"], Message=msg, MessageType=mtype,
                               SigningAlgorithm=alg)
                check(sig["KeyId"] == key["Arn"] and sig["SigningAlgorithm"] == alg, str(sig))
                verify_locally(pub["PublicKey"], alg, msg, mtype, sig["Signature"])
                v = kms.verify(KeyId=key["KeyId"], Message=msg, MessageType=mtype,
                               Signature=sig["Signature"], SigningAlgorithm=alg)
                check(v["SignatureValid"] is True, f"verify {spec} {alg} {mtype}")
                count += 1
        # A RAW signature verifies as DIGEST of the same hash: both sides hash identically.
        alg = algs[0]
        sig = kms.sign(KeyId=key["KeyId"], Message=message, SigningAlgorithm=alg)["Signature"]
        check(kms.verify(KeyId=key["KeyId"], Message=digest(alg, message), MessageType="DIGEST",
                         Signature=sig, SigningAlgorithm=alg)["SignatureValid"], "RAW vs DIGEST")
    ok(f"sign/verify: {count} signatures (ECDSA, RSA-PSS, RSA-PKCS1; RAW and DIGEST) checked by "
       "cryptography")


def macs(specs):
    for bits in ("224", "256", "384", "512"):
        key = specs[f"HMAC_{bits}"]
        alg = f"HMAC_SHA_{bits}"
        mac = kms.generate_mac(KeyId=key["KeyId"], Message=b"mac me", MacAlgorithm=alg)
        check(len(mac["Mac"]) == int(bits) // 8 and mac["MacAlgorithm"] == alg
              and mac["KeyId"] == key["Arn"], f"generate_mac {alg}")
        again = kms.generate_mac(KeyId=key["KeyId"], Message=b"mac me", MacAlgorithm=alg)["Mac"]
        check(again == mac["Mac"], "HMAC is deterministic")
        v = kms.verify_mac(KeyId=key["KeyId"], Message=b"mac me", MacAlgorithm=alg, Mac=mac["Mac"])
        check(v["MacValid"] is True and v["KeyId"] == key["Arn"], f"verify_mac {alg}")
        expect_error(kms, "KMSInvalidMacException", kms.verify_mac, KeyId=key["KeyId"],
                     Message=b"mac me!", MacAlgorithm=alg, Mac=mac["Mac"])
    ok("generate_mac/verify_mac for HMAC_224/256/384/512")


def random_bytes():
    a = kms.generate_random(NumberOfBytes=32)["Plaintext"]
    b = kms.generate_random(NumberOfBytes=1024)["Plaintext"]
    check(len(a) == 32 and len(b) == 1024 and a != b[:32], "generate_random")
    ok("generate_random")


def tags_and_description(sym):
    kid = sym["KeyId"]
    kms.tag_resource(KeyId=kid, Tags=[{"TagKey": "env", "TagValue": "e2e"},
                                      {"TagKey": "owner", "TagValue": "h"}])
    kms.tag_resource(KeyId=kid, Tags=[{"TagKey": "env", "TagValue": "e2e-2"}])  # overwrite
    tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=kid)["Tags"]}
    check(tags == {"env": "e2e-2", "owner": "h"}, f"list_resource_tags {tags}")
    page = kms.list_resource_tags(KeyId=kid, Limit=1)
    check(len(page["Tags"]) == 1 and page["Truncated"], "list_resource_tags paging")
    kms.untag_resource(KeyId=kid, TagKeys=["env"])
    check(kms.list_resource_tags(KeyId=kid)["Tags"] == [{"TagKey": "owner", "TagValue": "h"}],
          "untag_resource")
    kms.update_key_description(KeyId=kid, Description="new words")
    check(kms.describe_key(KeyId=kid)["KeyMetadata"]["Description"] == "new words",
          "update_key_description")
    ok("tags (tag, overwrite, list with paging, untag) and update_key_description")


def lifecycle():
    key = create(Description="lifecycle")
    kid = key["KeyId"]
    blob = kms.encrypt(KeyId=kid, Plaintext=b"life")["CiphertextBlob"]
    kms.disable_key(KeyId=kid)
    check(kms.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"] == "Disabled", "disabled")
    kms.disable_key(KeyId=kid)  # idempotent
    kms.enable_key(KeyId=kid)
    check(kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"life", "enabled again")
    out = kms.schedule_key_deletion(KeyId=kid, PendingWindowInDays=7)
    check(out["KeyState"] == "PendingDeletion" and out["PendingWindowInDays"] == 7
          and hasattr(out["DeletionDate"], "year"), f"schedule_key_deletion {out}")
    meta = kms.describe_key(KeyId=kid)["KeyMetadata"]
    check(meta["KeyState"] == "PendingDeletion" and "DeletionDate" in meta, f"pending: {meta}")
    check(kms.cancel_key_deletion(KeyId=kid)["KeyId"] in (kid, key["Arn"]), "cancel_key_deletion")
    check(kms.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"] == "Disabled",
          "cancelled deletion leaves the key Disabled")
    kms.enable_key(KeyId=kid)
    check(kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"life", "usable after cancel")
    ok("enable/disable, schedule_key_deletion/cancel_key_deletion")


def main():
    specs = create_keys()
    sym = specs["SYMMETRIC_DEFAULT"]
    other = create(Description="second symmetric")
    describe_and_aliases(sym, other)
    list_keys_paging(list(specs.values()) + [other])
    encrypt_decrypt(sym, specs["RSA_2048/ENCRYPT_DECRYPT"])
    data_keys(sym)
    re_encrypt(sym, other)
    rotation(other)
    sign_verify(specs)
    macs(specs)
    random_bytes()
    tags_and_description(sym)
    lifecycle()


if __name__ == "__main__":
    run(main)
