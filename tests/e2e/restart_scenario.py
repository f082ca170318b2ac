#!/usr/bin/python3
"""Restart: `before FILE` makes keys of every kind and material that depends on them (ciphertexts
from before and after a rotation, signatures, MACs, an alias, tags, a disabled key) and records them
in FILE; `after FILE`, run against a second kmsd on the same state folder, checks that every key is
still there, unchanged, and that every old ciphertext, signature and MAC still works."""
import base64
import json
import sys
import uuid

from e2e_lib import check, client, ok, run, verify_locally

kms = client()


def enc(b):
    return base64.b64encode(b).decode()


def dec(s):
    return base64.b64decode(s)


def before(path):
    state = {"keys": {}, "blobs": [], "signatures": [], "macs": []}
    sym = kms.create_key(Description="restart symmetric")["KeyMetadata"]
    state["keys"]["sym"] = sym["KeyId"]
    ctx = {"restart": "yes"}
    blob = kms.encrypt(KeyId=sym["KeyId"], Plaintext=b"before rotation",
                       EncryptionContext=ctx)["CiphertextBlob"]
    state["blobs"].append([enc(blob), enc(b"before rotation"), ctx])
    kms.enable_key_rotation(KeyId=sym["KeyId"])
    kms.rotate_key_on_demand(KeyId=sym["KeyId"])
    blob = kms.encrypt(KeyId=sym["KeyId"], Plaintext=b"after rotation")["CiphertextBlob"]
    state["blobs"].append([enc(blob), enc(b"after rotation"), {}])
    dk = kms.generate_data_key(KeyId=sym["KeyId"], KeySpec="AES_256")
    state["blobs"].append([enc(dk["CiphertextBlob"]), enc(dk["Plaintext"]), {}])
    for spec, alg in (("ECC_NIST_P256", "ECDSA_SHA_256"), ("ECC_SECG_P256K1", "ECDSA_SHA_256"),
                      ("RSA_2048", "RSASSA_PSS_SHA_256")):
        kid = kms.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
        state["keys"][spec] = kid
        sig = kms.sign(KeyId=kid, Message=b"restart", SigningAlgorithm=alg)["Signature"]
        pub = kms.get_public_key(KeyId=kid)["PublicKey"]
        state["signatures"].append([kid, alg, enc(sig), enc(pub)])
    mac_key = kms.create_key(KeySpec="HMAC_384", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    mac = kms.generate_mac(KeyId=mac_key["KeyId"], Message=b"restart",
                           MacAlgorithm="HMAC_SHA_384")["Mac"]
    state["keys"]["HMAC_384"] = mac_key["KeyId"]
    state["macs"].append([mac_key["KeyId"], enc(mac)])
    rsa_enc = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]
    state["keys"]["RSA_2048/ENCRYPT_DECRYPT"] = rsa_enc["KeyId"]
    blob = kms.encrypt(KeyId=rsa_enc["KeyId"], Plaintext=b"oaep",
                       EncryptionAlgorithm="RSAES_OAEP_SHA_1")["CiphertextBlob"]
    state["rsa_blob"] = [rsa_enc["KeyId"], enc(blob)]
    disabled = kms.create_key(Description="restart disabled")["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=disabled)
    state["keys"]["disabled"] = disabled
    state["alias"] = f"alias/restart-{uuid.uuid4().hex[:8]}"
    kms.create_alias(AliasName=state["alias"], TargetKeyId=sym["KeyId"])
    kms.tag_resource(KeyId=sym["KeyId"], Tags=[{"TagKey": "kept", "TagValue": "across restart"}])
    state["metadata"] = {}
    for name, kid in state["keys"].items():
        m = kms.describe_key(KeyId=kid)["KeyMetadata"]
        m["CreationDate"] = m["CreationDate"].timestamp()
        state["metadata"][name] = m
    state["rotations"] = len(kms.list_key_rotations(KeyId=sym["KeyId"])["Rotations"])
    with open(path, "w") as f:
        json.dump(state, f)
    ok(f"before restart: {len(state['keys'])} keys recorded")


def after(path):
    with open(path) as f:
        state = json.load(f)
    listed = {k["KeyId"] for p in kms.get_paginator("list_keys").paginate() for k in p["Keys"]}
    check(set(state["keys"].values()) <= listed, "list_keys after restart misses a key")
    for name, kid in state["keys"].items():
        m = kms.describe_key(KeyId=kid)["KeyMetadata"]
        m["CreationDate"] = m["CreationDate"].timestamp()
        check(m == state["metadata"][name], f"{name} metadata changed: {state['metadata'][name]}"
              f" -> {m}")
    ok("every key is listed with unchanged metadata")
    for blob, plaintext, ctx in state["blobs"]:
        out = kms.decrypt(CiphertextBlob=dec(blob), EncryptionContext=ctx)
        check(out["Plaintext"] == dec(plaintext), "old ciphertext after restart")
    kid, blob = state["rsa_blob"]
    check(kms.decrypt(KeyId=kid, CiphertextBlob=dec(blob), EncryptionAlgorithm="RSAES_OAEP_SHA_1")
          ["Plaintext"] == b"oaep", "RSA ciphertext after restart")
    ok("old ciphertexts (before and after a rotation, data key, RSA) decrypt")
    for kid, alg, sig, pub in state["signatures"]:
        check(kms.get_public_key(KeyId=kid)["PublicKey"] == dec(pub), "public key changed")
        check(kms.verify(KeyId=kid, Message=b"restart", Signature=dec(sig), SigningAlgorithm=alg)
              ["SignatureValid"], "old signature verifies")
        new = kms.sign(KeyId=kid, Message=b"restart", SigningAlgorithm=alg)["Signature"]
        verify_locally(dec(pub), alg, b"restart", "RAW", new)
    for kid, mac in state["macs"]:
        check(kms.generate_mac(KeyId=kid, Message=b"restart", MacAlgorithm="HMAC_SHA_384")["Mac"]
              == dec(mac), "HMAC key changed")
    ok("signing keys keep their public keys; HMAC keys give the same MACs")
    sym = state["keys"]["sym"]
    check(kms.describe_key(KeyId=state["alias"])["KeyMetadata"]["KeyId"] == sym, "alias kept")
    check(kms.list_resource_tags(KeyId=sym)["Tags"] == [{"TagKey": "kept",
                                                         "TagValue": "across restart"}],
          "tags kept")
    check(kms.get_key_rotation_status(KeyId=sym)["KeyRotationEnabled"], "rotation setting kept")
    check(len(kms.list_key_rotations(KeyId=sym)["Rotations"]) == state["rotations"],
          "rotation history kept")
    try:
        kms.encrypt(KeyId=state["keys"]["disabled"], Plaintext=b"x")
        check(False, "the disabled key encrypted after restart")
    except kms.exceptions.DisabledException:
        pass
    blob = kms.encrypt(KeyId=sym, Plaintext=b"new")["CiphertextBlob"]
    check(kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"new", "new work after restart")
    ok("aliases, tags, rotation state and key states survive the restart")


if __name__ == "__main__":
    phase, path = sys.argv[1], sys.argv[2]
    run(lambda: before(path) if phase == "before" else after(path))
