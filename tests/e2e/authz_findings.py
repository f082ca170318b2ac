#!/usr/bin/python3
"""The authorization findings of a security review, replayed against a running kmsd as the
reviewer sent them: a user made by the administrator, with an access key and no permission on
anything, tries to take a key over, to decrypt what is not theirs and to squat an alias name. Every
attempt must be refused with the exact AWS error and change nothing the administrator can see."""
import json
import os

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from e2e_lib import admin_call as appliance
from e2e_lib import canary, check, client, ok, run, signed_call

ACCOUNT = "111122223333"
admin = client()


def parses_as_blob(c):
    """Whether `c` has the shape of this appliance's symmetric ciphertext blob (format 1, a
    version-4 UUID key id, a key version other than 0): docs/ciphertext-format.md."""
    return (len(c) >= 50 and c[0] == 1 and (c[1 + 6] >> 4) == 4 and (c[1 + 8] >> 6) == 2
            and c[17:21] != b"\0\0\0\0")


def main():
    user = appliance("CreateUser", {"UserName": "bob"})["User"]
    key = appliance("CreateAccessKey", {"UserName": "bob"})["AccessKey"]
    bob_id, bob_secret = key["AccessKeyId"], key["SecretAccessKey"]
    bob_arn = user["Arn"]

    def as_bob(op, body=None, raw_body=None):
        return signed_call("TrentService." + op, body or {}, bob_id, bob_secret, raw_body)

    def refused(op, body, exc, what, raw_body=None):
        status, answer = as_bob(op, body, raw_body)
        check(status == 400 and answer.get("__type") == exc,
              f"{what}: expected {exc}, got HTTP {status} {answer}")
        ok(f"{what} -> {exc}")
        return answer

    k = admin.create_key(Description="someone else's")["KeyMetadata"]
    kid, karn = k["KeyId"], k["Arn"]
    secret = canary("not bob's")
    blob = admin.encrypt(KeyId=kid, Plaintext=secret)["CiphertextBlob"]
    admin.create_alias(AliasName="alias/findings", TargetKeyId=kid)
    grant = admin.create_grant(KeyId=kid, GranteePrincipal=f"arn:aws:iam::{ACCOUNT}:root",
                               Operations=["Encrypt"])["GrantId"]
    policy_before = admin.get_key_policy(KeyId=kid, PolicyName="default")["Policy"]

    # 1. The reviewer's request: PutKeyPolicy with a GrantTokens member that does not parse.
    open_policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}]})
    answer = refused("PutKeyPolicy", {"KeyId": kid, "PolicyName": "default",
                                      "Policy": open_policy, "GrantTokens": "x"},
                     "AccessDeniedException", "PutKeyPolicy with GrantTokens \"x\"")
    check(answer["message"] == f"User: {bob_arn} is not authorized to perform: kms:PutKeyPolicy "
          f"on resource: {karn} because no resource-based policy allows the kms:PutKeyPolicy "
          "action", answer["message"])
    check(admin.get_key_policy(KeyId=kid, PolicyName="default")["Policy"] == policy_before,
          "the key policy is unchanged")
    import base64
    refused("Decrypt", {"CiphertextBlob": base64.b64encode(blob).decode()},
            "AccessDeniedException", "bob's next Decrypt")

    # The same trick on the other operations the reviewer named.
    for op, body in [
            ("UpdateAlias", {"AliasName": "alias/findings", "TargetKeyId": kid}),
            ("ScheduleKeyDeletion", {"KeyId": kid, "PendingWindowInDays": 7}),
            ("DisableKey", {"KeyId": kid}),
            ("RevokeGrant", {"KeyId": kid, "GrantId": grant}),
            ("GetKeyPolicy", {"KeyId": kid, "PolicyName": "default"}),
            ("ListGrants", {"KeyId": kid}),
            ("DeleteAlias", {"AliasName": "alias/findings"})]:
        refused(op, dict(body, GrantTokens="x"), "AccessDeniedException",
                f"{op} with GrantTokens \"x\"")
    meta = admin.describe_key(KeyId=kid)["KeyMetadata"]
    check(meta["KeyState"] == "Enabled", f"the key is still enabled: {meta['KeyState']}")
    check([g["GrantId"] for g in admin.list_grants(KeyId=kid)["Grants"]] == [grant],
          "the grant is still there")
    check(admin.describe_key(KeyId="alias/findings")["KeyMetadata"]["KeyId"] == kid,
          "the alias still names the key")
    ok("malformed GrantTokens skip no decision, and nothing changed")

    # 2. An RSA-OAEP ciphertext whose bytes happen to parse as a symmetric blob (about 1 in 16k),
    #    sent with KeyId naming the RSA key: decided on the RSA key, which does the decrypting.
    rsa = admin.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]
    public = serialization.load_der_public_key(admin.get_public_key(KeyId=rsa["KeyId"])["PublicKey"])
    rsa_secret = canary("rsa secret")
    # SoftHSM2 offers OAEP with SHA-1 only (the door answers InvalidKeyUsage for SHA-256 there).
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    for _ in range(400000):
        c = public.encrypt(rsa_secret, oaep)
        if parses_as_blob(c):
            break
    check(parses_as_blob(c), "found an OAEP ciphertext that parses as a blob")
    body = {"CiphertextBlob": base64.b64encode(c).decode(), "KeyId": rsa["KeyId"],
            "EncryptionAlgorithm": "RSAES_OAEP_SHA_1"}
    check(admin.decrypt(CiphertextBlob=c, KeyId=rsa["KeyId"],
                        EncryptionAlgorithm="RSAES_OAEP_SHA_1")["Plaintext"] == rsa_secret,
          "the administrator decrypts it")
    answer = refused("Decrypt", body, "AccessDeniedException", "bob's Decrypt of it")
    check(rsa_secret.decode(errors="replace") not in json.dumps(answer), "no plaintext in the answer")
    mine = admin.create_key(Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
         "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": bob_arn}, "Action": "kms:*",
         "Resource": "*"}]}))["KeyMetadata"]["KeyId"]
    refused("ReEncrypt", {"CiphertextBlob": body["CiphertextBlob"], "SourceKeyId": rsa["KeyId"],
                          "SourceEncryptionAlgorithm": "RSAES_OAEP_SHA_1",
                          "DestinationKeyId": mine},
            "AccessDeniedException", "bob's ReEncrypt of it to his own key")

    # 3. An alias name is a resource of its own: a key bob controls does not let him take a name.
    refused("CreateAlias", {"AliasName": "alias/payments", "TargetKeyId": mine},
            "AccessDeniedException", "bob squatting alias/payments")
    admin.create_alias(AliasName="alias/payments", TargetKeyId=kid)
    refused("UpdateAlias", {"AliasName": "alias/payments", "TargetKeyId": mine},
            "AccessDeniedException", "bob moving alias/payments to his key")
    check(admin.describe_key(KeyId="alias/payments")["KeyMetadata"]["KeyId"] == kid,
          "alias/payments names the administrator's key")
    ok("alias names are decided on their own")


run(main)
