#!/usr/bin/python3
"""A few calls that give the canary recorder (e2e_lib.py) one of each kind of secret, for the
harness's test that the canary search finds what it must: a canary plaintext, a data key, a data
key pair's private key, a Vault transit data key, and error answers of both doors."""
from e2e_lib import canary, check, client, expect_error, ok, run
from vault_lib import Vault, expect_data, expect_error as expect_vault_error

kms = client()


def main():
    kid = kms.create_key(Description="probe")["KeyMetadata"]["KeyId"]
    secret = canary("probe")
    blob = kms.encrypt(KeyId=kid, Plaintext=secret)["CiphertextBlob"]
    check(kms.decrypt(CiphertextBlob=blob)["Plaintext"] == secret, "decrypt")
    expect_error(kms, "InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob,
                 EncryptionContext={"wrong": "context"})
    check(len(kms.generate_data_key(KeyId=kid, KeySpec="AES_256")["Plaintext"]) == 32, "data key")
    pair = kms.generate_data_key_pair(KeyId=kid, KeyPairSpec="ECC_NIST_P256")
    check(pair["PrivateKeyPlaintext"], "data key pair")
    ok("AWS door: canary plaintext, data key, data key pair, an InvalidCiphertextException")
    v = Vault()
    v.write("transit/keys/probe-key", {})
    d = expect_data(v.write("transit/datakey/plaintext/probe-key", {}), "datakey")
    check(d["plaintext"], "transit data key")
    expect_vault_error(v.write("transit/decrypt/probe-key", {"ciphertext": "garbage"}), 400,
                       "decrypt garbage")
    ok("Vault door: transit data key, a 400")


if __name__ == "__main__":
    run(main)
