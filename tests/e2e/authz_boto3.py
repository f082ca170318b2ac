#!/usr/bin/python3
"""Who may do what, through boto3: a user with no rights is refused with the exact
AccessDeniedException; a key policy statement, a grant and a grant token each let it through; an
explicit deny beats an allow; an encryption-context condition admits the right context only; a
revoked or retired grant stops at once; malformed and self-locking policies are refused with
MalformedPolicyDocumentException. The admin (the daemon's dev key) makes a user and its access key
through the admin API (KmsAppliance.*, e2e_lib.admin_call)."""
import json

from e2e_lib import admin_call as appliance
from e2e_lib import canary, check, client, expect_error, ok, run

ACCOUNT = "111122223333"
admin = client()


def denied(kms, fn, action, resource, **kw):
    e = expect_error(kms, "AccessDeniedException", fn, **kw)
    msg = e.response["Error"]["Message"]
    want = (f"User: arn:aws:iam::{ACCOUNT}:user/alice is not authorized to perform: {action} "
            f"on resource: {resource} ")
    check(msg.startswith(want), f"{fn.__name__}: message {msg!r}")
    return msg


def main():
    user = appliance("CreateUser", {"UserName": "alice"})["User"]
    check(user["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/alice", str(user))
    key = appliance("CreateAccessKey", {"UserName": "alice"})["AccessKey"]
    alice = client(aws_access_key_id=key["AccessKeyId"],
                   aws_secret_access_key=key["SecretAccessKey"])
    alice_arn = user["Arn"]

    # 1. Default key policy, no identity policy: every operation refused, naming action and key.
    k = admin.create_key(Description="authz")["KeyMetadata"]
    kid, karn = k["KeyId"], k["Arn"]
    for_alice = canary("for-alice")
    blob = admin.encrypt(KeyId=kid, Plaintext=for_alice, EncryptionContext={"app": "ok"})
    blob = blob["CiphertextBlob"]
    # A refused Encrypt carries a canary plaintext: the denial's message, audit record and log
    # line must not (the harness searches).
    msg = denied(alice, alice.encrypt, "kms:Encrypt", karn, KeyId=kid,
                 Plaintext=canary("denied"))
    check(msg.endswith("because no resource-based policy allows the kms:Encrypt action"), msg)
    denied(alice, alice.decrypt, "kms:Decrypt", karn, CiphertextBlob=blob,
           EncryptionContext={"app": "ok"})
    denied(alice, alice.describe_key, "kms:DescribeKey", karn, KeyId=kid)
    denied(alice, alice.disable_key, "kms:DisableKey", karn, KeyId=kid)
    denied(alice, alice.get_key_policy, "kms:GetKeyPolicy", karn, KeyId=kid, PolicyName="default")
    denied(alice, alice.create_grant, "kms:CreateGrant", karn, KeyId=kid,
           GranteePrincipal=alice_arn, Operations=["Encrypt"])
    denied(alice, alice.create_key, "kms:CreateKey", "*")
    denied(alice, alice.list_keys, "kms:ListKeys", "*")
    denied(alice, alice.generate_random, "kms:GenerateRandom", "*", NumberOfBytes=8)
    admin.create_alias(AliasName="alias/authz-e2e", TargetKeyId=kid)
    denied(alice, alice.encrypt, "kms:Encrypt", karn, KeyId="alias/authz-e2e", Plaintext=b"x")
    ok("a principal without permission gets AccessDeniedException")

    # 2. Key policy: alice may Encrypt and Decrypt only with EncryptionContext app=ok.
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "AliceUse", "Effect": "Allow", "Principal": {"AWS": alice_arn},
             "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*",
             "Condition": {"StringEquals": {"kms:EncryptionContext:app": "ok"}}},
        ],
    }
    admin.put_key_policy(KeyId=kid, PolicyName="default", Policy=json.dumps(policy))
    got = json.loads(admin.get_key_policy(KeyId=kid, PolicyName="default")["Policy"])
    check(got == policy, "GetKeyPolicy answers the policy put")
    check(admin.list_key_policies(KeyId=kid)["PolicyNames"] == ["default"], "ListKeyPolicies")
    c = alice.encrypt(KeyId=kid, Plaintext=b"x", EncryptionContext={"app": "ok"})
    check(c["KeyId"] == karn, str(c))
    alice.encrypt(KeyId="alias/authz-e2e", Plaintext=b"x", EncryptionContext={"app": "ok"})
    check(alice.decrypt(CiphertextBlob=blob, EncryptionContext={"app": "ok"})["Plaintext"] ==
          for_alice, "decrypt allowed by the key policy")
    denied(alice, alice.encrypt, "kms:Encrypt", karn, KeyId=kid, Plaintext=canary("condition"),
           EncryptionContext={"app": "other"})
    denied(alice, alice.encrypt, "kms:Encrypt", karn, KeyId=kid, Plaintext=b"x")
    denied(alice, alice.generate_data_key, "kms:GenerateDataKey", karn, KeyId=kid,
           KeySpec="AES_256", EncryptionContext={"app": "ok"})
    ok("the key policy allows, and its encryption-context condition admits only app=ok")

    # 3. An explicit deny beats the allow.
    policy["Statement"].append({"Sid": "NoDecrypt", "Effect": "Deny",
                                "Principal": {"AWS": alice_arn}, "Action": "kms:Decrypt",
                                "Resource": "*"})
    admin.put_key_policy(KeyId=kid, PolicyName="default", Policy=json.dumps(policy))
    msg = denied(alice, alice.decrypt, "kms:Decrypt", karn, CiphertextBlob=blob,
                 EncryptionContext={"app": "ok"})
    check(msg.endswith("with an explicit deny in a resource-based policy"), msg)
    alice.encrypt(KeyId=kid, Plaintext=b"x", EncryptionContext={"app": "ok"})
    ok("an explicit deny beats an allow")

    # 4. Malformed and self-locking policies.
    for bad, part in [("{", "JSON"), (json.dumps({"Statement": []}), ""),
                      (json.dumps({"Statement": [{"Effect": "allow", "Principal": "*",
                                                   "Action": "kms:*", "Resource": "*"}]}), "")]:
        e = expect_error(admin, "MalformedPolicyDocumentException", admin.put_key_policy,
                         KeyId=kid, PolicyName="default", Policy=bad)
        check(e.response["Error"]["Message"], "a malformed policy is explained")
    lock = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": alice_arn},
                           "Action": "kms:Encrypt", "Resource": "*"}]}
    e = expect_error(admin, "MalformedPolicyDocumentException", admin.put_key_policy, KeyId=kid,
                     PolicyName="default", Policy=json.dumps(lock))
    check(e.response["Error"]["Message"] ==
          "The new key policy will not allow you to update the key policy in the future.",
          str(e))
    expect_error(admin, "MalformedPolicyDocumentException", admin.create_key,
                 Policy=json.dumps(lock))
    ok("malformed and self-locking policies give MalformedPolicyDocumentException")

    # 5. Grants on a second key with the default policy.
    k2 = admin.create_key(Description="authz-grants")["KeyMetadata"]
    k2id, k2arn = k2["KeyId"], k2["Arn"]
    denied(alice, alice.encrypt, "kms:Encrypt", k2arn, KeyId=k2id, Plaintext=b"x")
    g = admin.create_grant(KeyId=k2id, GranteePrincipal=alice_arn, Operations=["Encrypt"],
                           Constraints={"EncryptionContextSubset": {"tenant": "a"}},
                           Name="alice-encrypt")
    again = admin.create_grant(KeyId=k2id, GranteePrincipal=alice_arn, Operations=["Encrypt"],
                               Constraints={"EncryptionContextSubset": {"tenant": "a"}},
                               Name="alice-encrypt")
    check(again["GrantId"] == g["GrantId"], "CreateGrant with the same Name is idempotent")
    alice.encrypt(KeyId=k2id, Plaintext=b"x", EncryptionContext={"tenant": "a", "more": "1"})
    alice.encrypt(KeyId=k2id, Plaintext=b"x", EncryptionContext={"tenant": "a"},
                  GrantTokens=[g["GrantToken"]])
    denied(alice, alice.encrypt, "kms:Encrypt", k2arn, KeyId=k2id, Plaintext=b"x",
           EncryptionContext={"tenant": "b"})
    denied(alice, alice.decrypt, "kms:Decrypt", k2arn,
           CiphertextBlob=admin.encrypt(KeyId=k2id, Plaintext=b"y",
                                        EncryptionContext={"tenant": "a"})["CiphertextBlob"],
           EncryptionContext={"tenant": "a"})
    listed = admin.list_grants(KeyId=k2id)["Grants"]
    check([x["GrantId"] for x in listed] == [g["GrantId"]], str(listed))
    check(listed[0]["GranteePrincipal"] == alice_arn and listed[0]["Operations"] == ["Encrypt"] and
          listed[0]["Constraints"] == {"EncryptionContextSubset": {"tenant": "a"}}, str(listed))
    expect_error(alice, "InvalidGrantTokenException", alice.encrypt, KeyId=k2id, Plaintext=b"x",
                 EncryptionContext={"tenant": "a"}, GrantTokens=["not-a-grant-token"])
    admin.revoke_grant(KeyId=k2id, GrantId=g["GrantId"])
    denied(alice, alice.encrypt, "kms:Encrypt", k2arn, KeyId=k2id, Plaintext=b"x",
           EncryptionContext={"tenant": "a"})
    denied(alice, alice.encrypt, "kms:Encrypt", k2arn, KeyId=k2id, Plaintext=b"x",
           EncryptionContext={"tenant": "a"}, GrantTokens=[g["GrantToken"]])
    expect_error(admin, "NotFoundException", admin.revoke_grant, KeyId=k2id, GrantId=g["GrantId"])
    expect_error(admin, "InvalidGrantIdException", admin.revoke_grant, KeyId=k2id, GrantId="x")
    ok("a grant and a grant token let alice encrypt, within its constraints; revoked, at once not")

    # 6. Retire: alice as retiring principal retires a grant by its token; it stops at once.
    g2 = admin.create_grant(KeyId=k2id, GranteePrincipal=alice_arn, RetiringPrincipal=alice_arn,
                            Operations=["Encrypt", "DescribeKey"])
    alice.describe_key(KeyId=k2id)
    retirable = admin.list_retirable_grants(RetiringPrincipal=alice_arn)["Grants"]
    check([x["GrantId"] for x in retirable] == [g2["GrantId"]], str(retirable))
    alice.retire_grant(GrantToken=g2["GrantToken"])
    denied(alice, alice.describe_key, "kms:DescribeKey", k2arn, KeyId=k2id)
    check(admin.list_grants(KeyId=k2id)["Grants"] == [], "no grants left")
    ok("a retired grant stops working at once")


run(main)
