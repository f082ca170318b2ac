#!/usr/bin/python3
"""One pass of every implemented KMS operation through aws-cli v2 (/usr/bin/aws), checked with
`cryptography` where there is something to check. Blobs go in with fileb:// and come back base64."""
import base64
import json
import concurrent.futures
import os
import shutil
import tempfile
import uuid

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from e2e_lib import aws, canary, check, check_key_pair, digest, run, verify_locally

TMP = tempfile.mkdtemp(prefix="kms-e2e-cli-")
TAG = uuid.uuid4().hex[:8]


def blob_file(data, name):
    path = os.path.join(TMP, f"{name}-{uuid.uuid4().hex}")  # groups run concurrently
    with open(path, "wb") as f:
        f.write(data)
    return "fileb://" + path


def b64(text):
    return base64.b64decode(text)


def create_keys():
    """CreateKey across the kinds of key, concurrently."""
    def create(*args):
        return aws("create-key", *args)["KeyMetadata"]
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(create, *args) for args in (
            ("--description", "cli symmetric"), ("--tags", "TagKey=made-by,TagValue=cli"),
            ("--key-spec", "RSA_2048", "--key-usage", "SIGN_VERIFY"),
            ("--key-spec", "RSA_2048", "--key-usage", "ENCRYPT_DECRYPT"),
            ("--key-spec", "ECC_NIST_P384", "--key-usage", "SIGN_VERIFY"),
            ("--key-spec", "HMAC_256", "--key-usage", "GENERATE_VERIFY_MAC"))]
        return [f.result() for f in futures]


def main():
    sym, other, rsa_sign, rsa_enc, ec, mac = create_keys()
    check(sym["KeySpec"] == "SYMMETRIC_DEFAULT" and sym["KeyState"] == "Enabled", str(sym))
    check(rsa_enc["EncryptionAlgorithms"] and mac["MacAlgorithms"] == ["HMAC_SHA_256"],
          "asymmetric and HMAC metadata")
    kid, arn = sym["KeyId"], sym["Arn"]
    alias = f"alias/cli-{TAG}"
    aws("create-alias", "--alias-name", alias, "--target-key-id", kid)
    alias_arn = arn.split(":key/")[0] + ":" + alias

    # aws-cli v2 costs about a second per call here, so independent groups of calls run
    # concurrently. Each group is sequential and changes nothing another group relies on.
    def describe_and_list():
        for form in (kid, arn, alias, alias_arn):
            check(aws("describe-key", "--key-id", form)["KeyMetadata"]["Arn"] == arn,
                  f"describe-key {form}")
        # ListKeys: one page by hand (Limit, Truncated, NextMarker, Marker), then the paginator.
        page = aws("list-keys", "--no-paginate", "--limit", "2")
        check(len(page["Keys"]) == 2 and page["Truncated"] and page["NextMarker"], f"page {page}")
        page2 = aws("list-keys", "--no-paginate", "--limit", "2", "--marker", page["NextMarker"])
        first = {k["KeyId"] for k in page["Keys"]}
        check(page2["Keys"] and not first & {k["KeyId"] for k in page2["Keys"]}, "page 2")
        ids = [k["KeyId"] for k in aws("list-keys", "--page-size", "3")["Keys"]]
        check(len(ids) == len(set(ids)) and {kid, other["KeyId"], mac["KeyId"]} <= set(ids),
              "list-keys paginated by the CLI")

    def encrypt_reencrypt_rotate():
        # Encrypt/Decrypt with and without context (Decrypt without KeyId), ReEncrypt, rotation
        # with a ciphertext from before the rotation.
        # A canary plaintext (e2e_lib.canary): a raw search finds it wherever it leaks.
        secret = canary("cli")
        enc = aws("encrypt", "--key-id", alias, "--plaintext", blob_file(secret, "pt"),
                  "--encryption-context", "app=e2e,tier=cli")
        check(enc["KeyId"] == arn, "encrypt KeyId is the ARN")
        ct = blob_file(b64(enc["CiphertextBlob"]), "ct")
        dec = aws("decrypt", "--ciphertext-blob", ct, "--encryption-context", "tier=cli,app=e2e")
        check(b64(dec["Plaintext"]) == secret and dec["KeyId"] == arn, "decrypt")
        aws("decrypt", "--ciphertext-blob", ct, "--encryption-context", "app=other",
            expect_code="InvalidCiphertextException")
        enc = aws("encrypt", "--key-id", kid, "--plaintext", blob_file(b"no context", "pt"))
        check(b64(aws("decrypt", "--key-id", arn, "--ciphertext-blob",
                      blob_file(b64(enc["CiphertextBlob"]), "ct"))["Plaintext"]) == b"no context",
              "decrypt without context")
        re = aws("re-encrypt", "--ciphertext-blob", ct, "--source-encryption-context",
                 "app=e2e,tier=cli", "--destination-key-id", other["KeyId"])
        check(re["SourceKeyId"] == arn and re["KeyId"] == other["Arn"], "re-encrypt")
        aws("enable-key-rotation", "--key-id", kid, "--rotation-period-in-days", "180")
        st = aws("get-key-rotation-status", "--key-id", kid)
        check(st["KeyRotationEnabled"] and st["RotationPeriodInDays"] == 180, f"rotation {st}")
        aws("rotate-key-on-demand", "--key-id", kid)
        rots = aws("list-key-rotations", "--key-id", kid)["Rotations"]
        check(len(rots) == 1 and rots[0]["RotationType"] == "ON_DEMAND", f"rotations {rots}")
        check(b64(aws("decrypt", "--ciphertext-blob", ct, "--encryption-context",
                      "app=e2e,tier=cli")["Plaintext"]) == secret, "old ciphertext")
        aws("disable-key-rotation", "--key-id", kid)
        check(not aws("get-key-rotation-status", "--key-id", kid)["KeyRotationEnabled"], "off")

    def rsa_and_data_keys():
        rsa_ct = aws("encrypt", "--key-id", rsa_enc["KeyId"], "--plaintext",
                     blob_file(b"oaep", "pt"), "--encryption-algorithm",
                     "RSAES_OAEP_SHA_1")["CiphertextBlob"]
        check(b64(aws("decrypt", "--key-id", rsa_enc["KeyId"], "--encryption-algorithm",
                      "RSAES_OAEP_SHA_1", "--ciphertext-blob", blob_file(b64(rsa_ct), "ct"))
                  ["Plaintext"]) == b"oaep", "RSA OAEP through the CLI")
        # Envelope encryption.
        dk = aws("generate-data-key", "--key-id", kid, "--key-spec", "AES_256",
                 "--encryption-context", "file=x")
        nonce = os.urandom(12)
        sealed = AESGCM(b64(dk["Plaintext"])).encrypt(nonce, b"envelope", None)
        back = b64(aws("decrypt", "--ciphertext-blob", blob_file(b64(dk["CiphertextBlob"]), "dk"),
                       "--encryption-context", "file=x")["Plaintext"])
        check(AESGCM(back).decrypt(nonce, sealed, None) == b"envelope", "envelope via the CLI")
        wp = aws("generate-data-key-without-plaintext", "--key-id", kid, "--number-of-bytes", "24")
        check("Plaintext" not in wp and len(b64(aws("decrypt", "--ciphertext-blob", blob_file(
            b64(wp["CiphertextBlob"]), "wp"))["Plaintext"])) == 24, "data key without plaintext")
        pair = aws("generate-data-key-pair", "--key-id", kid, "--key-pair-spec", "ECC_NIST_P256")
        check_key_pair(b64(pair["PrivateKeyPlaintext"]), b64(pair["PublicKey"]), "CLI key pair")
        wpp = aws("generate-data-key-pair-without-plaintext", "--key-id", kid, "--key-pair-spec",
                  "RSA_2048")
        check_key_pair(b64(aws("decrypt", "--ciphertext-blob", blob_file(
            b64(wpp["PrivateKeyCiphertextBlob"]), "pk"))["Plaintext"]), b64(wpp["PublicKey"]),
            "CLI key pair without plaintext")

    def sign_ecdsa():
        sign_and_verify(ec, [("ECDSA_SHA_384", "RAW"), ("ECDSA_SHA_384", "DIGEST")],
                        bad_signature_check=True)

    def sign_rsa():
        sign_and_verify(rsa_sign, [("RSASSA_PSS_SHA_256", "DIGEST"),
                                   ("RSASSA_PKCS1_V1_5_SHA_512", "RAW")])

    def macs_random_tags():
        m = aws("generate-mac", "--key-id", mac["KeyId"], "--message", blob_file(b"mac", "mm"),
                "--mac-algorithm", "HMAC_SHA_256")["Mac"]
        check(aws("verify-mac", "--key-id", mac["KeyId"], "--message", blob_file(b"mac", "mm"),
                  "--mac-algorithm", "HMAC_SHA_256", "--mac", blob_file(b64(m), "mac"))
              ["MacValid"], "verify-mac")
        check(len(b64(aws("generate-random", "--number-of-bytes", "48")["Plaintext"])) == 48,
              "random")
        aws("tag-resource", "--key-id", kid, "--tags", "TagKey=a,TagValue=1",
            "TagKey=b,TagValue=2")
        aws("untag-resource", "--key-id", kid, "--tag-keys", "a")
        check(aws("list-resource-tags", "--key-id", kid)["Tags"] == [{"TagKey": "b",
                                                                     "TagValue": "2"}], "tags")
        aws("update-key-description", "--key-id", kid, "--description", "cli renamed")
        check(aws("describe-key", "--key-id", kid)["KeyMetadata"]["Description"] == "cli renamed",
              "description")

    groups = [describe_and_list, encrypt_reencrypt_rotate, rsa_and_data_keys, sign_ecdsa,
              sign_rsa, macs_random_tags]
    with concurrent.futures.ThreadPoolExecutor(len(groups)) as pool:
        for future in [pool.submit(g) for g in groups]:
            future.result()  # re-raises the group's failure

    # Aliases and key states last: they change what the groups above used.
    aws("update-alias", "--alias-name", alias, "--target-key-id", other["KeyId"])
    listed = aws("list-aliases", "--key-id", other["KeyId"])["Aliases"]
    check([a["AliasName"] for a in listed] == [alias], f"list-aliases {listed}")
    aws("delete-alias", "--alias-name", alias)
    aws("describe-key", "--key-id", alias, expect_code="NotFoundException")
    aws("disable-key", "--key-id", kid)
    aws("encrypt", "--key-id", kid, "--plaintext", blob_file(canary("cli-disabled"), "x"),
        expect_code="DisabledException")
    aws("enable-key", "--key-id", kid)
    sched = aws("schedule-key-deletion", "--key-id", kid, "--pending-window-in-days", "7")
    check(sched["KeyState"] == "PendingDeletion" and sched["PendingWindowInDays"] == 7, str(sched))
    aws("encrypt", "--key-id", kid, "--plaintext", blob_file(b"x", "x"),
        expect_code="KMSInvalidStateException")
    aws("cancel-key-deletion", "--key-id", kid)
    check(aws("describe-key", "--key-id", kid)["KeyMetadata"]["KeyState"] == "Disabled",
          "cancelled deletion leaves the key Disabled")
    policy = json.loads(aws("get-key-policy", "--key-id", kid, "--policy-name", "default")["Policy"])
    check(policy["Statement"][0]["Principal"] == {"AWS": "arn:aws:iam::111122223333:root"},
          "the default key policy delegates to the account")


def sign_and_verify(key, cases, bad_signature_check=False):
    """GetPublicKey, then Sign/Verify per (algorithm, message type), each signature also checked
    by cryptography against the public key."""
    message = b"cli message"
    pub = b64(aws("get-public-key", "--key-id", key["KeyId"])["PublicKey"])
    for alg, mtype in cases:
        msg = message if mtype == "RAW" else digest(alg, message)
        sig = aws("sign", "--key-id", key["KeyId"], "--message", blob_file(msg, "m"),
                  "--message-type", mtype, "--signing-algorithm", alg)["Signature"]
        verify_locally(pub, alg, msg, mtype, b64(sig))
        check(aws("verify", "--key-id", key["KeyId"], "--message", blob_file(msg, "m"),
                  "--message-type", mtype, "--signing-algorithm", alg,
                  "--signature", blob_file(b64(sig), "s"))["SignatureValid"] is True, "verify")
        if bad_signature_check and mtype == "RAW":
            aws("verify", "--key-id", key["KeyId"], "--message", blob_file(b"other", "m"),
                "--signing-algorithm", alg, "--signature", blob_file(b64(sig), "s"),
                expect_code="KMSInvalidSignatureException")


if __name__ == "__main__":
    try:
        run(main)
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
