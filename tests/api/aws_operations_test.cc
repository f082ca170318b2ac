// Every AWS operation of the door, end to end through AwsDoor::Handle (SigV4 + JSON framing + handler)
// into a real firmware::KeyService over the fake HSM and a SQLite store; signatures and public keys
// are checked with an independent library (mbedTLS's pk module). Each client-reachable error asserts
// the exact exception.
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <mbedtls/md.h>
#include <mbedtls/pk.h>

#include "api/aws/door.h"
#include "api/aws/key_service_operations.h"
#include "base/encoding.h"
#include "tests/api/door_authz_fixture.h"
#include "tests/api/sign_request.h"
#include "tests/firmware/key_service_fixture.h"

namespace kms::api::aws {
namespace {

namespace json = boost::json;

struct AwsFixture {
  firmware::testing::ServiceFixture service;
  testing::DoorAuthz authz{service};
  InMemoryAccessKeyStore keys;
  std::unique_ptr<AwsDoor> door;

  AwsFixture() {
    authz.AddExampleKey(keys);
    OperationTable ops;
    RegisterKeyServiceOperations(ops, service.svc(), authz.access);
    door = std::make_unique<AwsDoor>(AwsDoorConfig{}, keys, authz.authorizer, std::move(ops));
  }

  http::HttpResponse Raw(const std::string& op, const json::object& body) {
    auto req = testing::KmsRequest(op, json::serialize(body));
    testing::SignRequest(req, {});
    return door->Handle(req);
  }
  json::object Ok(const std::string& op, const json::object& body = {}) {
    const auto r = Raw(op, body);
    INFO(op << " -> " << r.status << " " << r.body);
    REQUIRE(r.status == 200);
    return json::parse(r.body).as_object();
  }
  // Returns "<__type>: <message>" of a failing call, after checking the status.
  std::pair<std::string, std::string> Err(const std::string& op, const json::object& body,
                                          unsigned status = 400) {
    const auto r = Raw(op, body);
    INFO(op << " -> " << r.status << " " << r.body);
    CHECK(r.status == status);
    const auto o = json::parse(r.body).as_object();
    return {std::string(o.at("__type").as_string()), std::string(o.at("message").as_string())};
  }
  std::string NewKey(const json::object& extra = {}) {
    return std::string(Ok("CreateKey", extra).at("KeyMetadata").at("KeyId").as_string());
  }
};

std::string B64(std::string_view s) { return Base64Encode(AsBytes(s)); }
Bytes Unb64(const json::value& v) { return Base64Decode(std::string_view(v.as_string())).value(); }

TEST_CASE("aws ops: CreateKey and DescribeKey by all four KeyId forms", "[unit]") {
  AwsFixture f;
  const auto created = f.Ok("CreateKey", {{"Description", "first"},
                                          {"Tags", json::array{{{"TagKey", "team"},
                                                                {"TagValue", "kms"}}}}});
  const auto& m = created.at("KeyMetadata").as_object();
  const std::string id(m.at("KeyId").as_string());
  const std::string arn = "arn:aws:kms:us-east-1:111122223333:key/" + id;
  CHECK(m.at("Arn").as_string() == arn);
  CHECK(m.at("AWSAccountId").as_string() == "111122223333");
  CHECK(m.at("KeySpec").as_string() == "SYMMETRIC_DEFAULT");
  CHECK(m.at("CustomerMasterKeySpec").as_string() == "SYMMETRIC_DEFAULT");
  CHECK(m.at("KeyUsage").as_string() == "ENCRYPT_DECRYPT");
  CHECK(m.at("KeyState").as_string() == "Enabled");
  CHECK(m.at("Enabled").as_bool());
  CHECK(m.at("Description").as_string() == "first");
  CHECK(m.at("Origin").as_string() == "AWS_KMS");
  CHECK(m.at("KeyManager").as_string() == "CUSTOMER");
  CHECK(m.at("MultiRegion").as_bool() == false);
  CHECK(m.at("CreationDate").is_number());
  CHECK(m.at("EncryptionAlgorithms").as_array() == json::array{"SYMMETRIC_DEFAULT"});

  f.Ok("CreateAlias", {{"AliasName", "alias/first"}, {"TargetKeyId", id}});
  for (const std::string& key_id :
       {id, arn, std::string("alias/first"),
        std::string("arn:aws:kms:us-east-1:111122223333:alias/first")}) {
    INFO(key_id);
    CHECK(f.Ok("DescribeKey", {{"KeyId", key_id}}).at("KeyMetadata").at("KeyId").as_string() == id);
  }
  CHECK(f.Err("DescribeKey", {{"KeyId", "alias/missing"}}).first == "NotFoundException");
  CHECK(f.Err("DescribeKey", {{"KeyId", "1234abcd-12ab-34cd-56ef-1234567890ab"}}).first ==
        "NotFoundException");
  CHECK(f.Err("DescribeKey", {}) ==
        std::pair<std::string, std::string>(
            "ValidationException",
            "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: "
            "Member must not be null"));
}

TEST_CASE("aws ops: CreateKey refuses what the appliance does not implement", "[unit]") {
  AwsFixture f;
  CHECK(f.Err("CreateKey", {{"Origin", "EXTERNAL"}}).first == "UnsupportedOperationException");
  CHECK(f.Err("CreateKey", {{"MultiRegion", true}}).first == "UnsupportedOperationException");
  CHECK(f.Err("CreateKey", {{"CustomKeyStoreId", "cks-1"}}).first ==
        "UnsupportedOperationException");
  CHECK(f.Err("CreateKey", {{"KeySpec", "NOT_A_SPEC"}}).first == "ValidationException");
  CHECK(f.Err("CreateKey", {{"KeySpec", 5}}).first == "SerializationException");
  // The deprecated CustomerMasterKeySpec still works.
  const auto m = f.Ok("CreateKey", {{"CustomerMasterKeySpec", "HMAC_256"},
                                    {"KeyUsage", "GENERATE_VERIFY_MAC"}})
                     .at("KeyMetadata");
  CHECK(m.at("KeySpec").as_string() == "HMAC_256");
  CHECK(m.at("MacAlgorithms").as_array() == json::array{"HMAC_SHA_256"});
}

TEST_CASE("aws ops: Encrypt, Decrypt without KeyId, context, tampering, limits", "[unit]") {
  AwsFixture f;
  const std::string id = f.NewKey();
  const json::object ctx{{"purpose", "test"}, {"app", "vault"}};
  const auto enc = f.Ok("Encrypt", {{"KeyId", id}, {"Plaintext", B64("hello")},
                                    {"EncryptionContext", ctx}});
  CHECK(enc.at("KeyId").as_string() == "arn:aws:kms:us-east-1:111122223333:key/" + id);
  CHECK(enc.at("EncryptionAlgorithm").as_string() == "SYMMETRIC_DEFAULT");
  const auto blob = enc.at("CiphertextBlob");

  const auto dec = f.Ok("Decrypt", {{"CiphertextBlob", blob}, {"EncryptionContext", ctx}});
  CHECK(dec.at("Plaintext").as_string() == B64("hello"));
  CHECK(dec.at("KeyId").as_string() == enc.at("KeyId").as_string());
  CHECK(dec.at("EncryptionAlgorithm").as_string() == "SYMMETRIC_DEFAULT");

  // Wrong or missing context, tampered blob: InvalidCiphertextException with an empty message.
  const std::pair<std::string, std::string> invalid{"InvalidCiphertextException", ""};
  CHECK(f.Err("Decrypt", {{"CiphertextBlob", blob}}) == invalid);
  CHECK(f.Err("Decrypt", {{"CiphertextBlob", blob},
                          {"EncryptionContext", json::object{{"purpose", "Test"}, {"app", "vault"}}}}) ==
        invalid);
  Bytes tampered = Unb64(blob);
  tampered.back() ^= 1;
  CHECK(f.Err("Decrypt", {{"CiphertextBlob", Base64Encode(tampered)}, {"EncryptionContext", ctx}}) ==
        invalid);
  // KeyId naming another key.
  const std::string other = f.NewKey();
  CHECK(f.Err("Decrypt", {{"CiphertextBlob", blob}, {"EncryptionContext", ctx}, {"KeyId", other}})
            .first == "IncorrectKeyException");

  CHECK(f.Err("Encrypt", {{"KeyId", id}, {"Plaintext", Base64Encode(Bytes(4097, 1))}}) ==
        std::pair<std::string, std::string>(
            "ValidationException",
            "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: "
            "Member must have length less than or equal to 4096"));
  CHECK(f.Err("Encrypt", {{"KeyId", id}, {"Plaintext", "not base64!"}}).first ==
        "SerializationException");
  CHECK(f.Err("Encrypt", {{"KeyId", id}, {"Plaintext", B64("x")}, {"DryRun", true}}).first ==
        "DryRunOperationException");
  CHECK(f.Err("Encrypt", {{"KeyId", id}, {"Plaintext", B64("x")},
                          {"GrantTokens", json::array{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j",
                                                      "k"}}})
            .first == "ValidationException");
  CHECK(f.Err("Decrypt", {{"CiphertextBlob", blob},
                          {"Recipient", json::object{{"KeyEncryptionAlgorithm", "RSAES_OAEP_SHA_256"}}}})
            .first == "UnsupportedOperationException");
  CHECK(f.Err("Encrypt", {{"KeyId", "alias/nope"}, {"Plaintext", B64("x")}}).first ==
        "NotFoundException");
}

TEST_CASE("aws ops: ReEncrypt moves a ciphertext to another key", "[unit]") {
  AwsFixture f;
  const std::string a = f.NewKey(), b = f.NewKey();
  const auto blob = f.Ok("Encrypt", {{"KeyId", a}, {"Plaintext", B64("move me")}}).at("CiphertextBlob");
  const auto re = f.Ok("ReEncrypt", {{"CiphertextBlob", blob},
                                     {"DestinationKeyId", b},
                                     {"DestinationEncryptionContext", json::object{{"k", "v"}}}});
  CHECK(re.at("SourceKeyId").as_string().ends_with(a));
  CHECK(re.at("KeyId").as_string().ends_with(b));
  CHECK(re.at("SourceEncryptionAlgorithm").as_string() == "SYMMETRIC_DEFAULT");
  CHECK(re.at("DestinationEncryptionAlgorithm").as_string() == "SYMMETRIC_DEFAULT");
  const auto dec = f.Ok("Decrypt", {{"CiphertextBlob", re.at("CiphertextBlob")},
                                    {"EncryptionContext", json::object{{"k", "v"}}}});
  CHECK(dec.at("Plaintext").as_string() == B64("move me"));
  CHECK(dec.at("KeyId").as_string().ends_with(b));
  CHECK(f.Err("ReEncrypt", {{"CiphertextBlob", blob}}).first == "ValidationException");
}

TEST_CASE("aws ops: GenerateDataKey (envelope encryption) and WithoutPlaintext", "[unit]") {
  AwsFixture f;
  const std::string id = f.NewKey();
  const auto dk = f.Ok("GenerateDataKey", {{"KeyId", id}, {"KeySpec", "AES_256"},
                                           {"EncryptionContext", json::object{{"file", "a.txt"}}}});
  CHECK(Unb64(dk.at("Plaintext")).size() == 32);
  const auto dec = f.Ok("Decrypt", {{"CiphertextBlob", dk.at("CiphertextBlob")},
                                    {"EncryptionContext", json::object{{"file", "a.txt"}}}});
  CHECK(dec.at("Plaintext") == dk.at("Plaintext"));
  CHECK(Unb64(f.Ok("GenerateDataKey", {{"KeyId", id}, {"NumberOfBytes", 17}}).at("Plaintext")).size() ==
        17);
  const auto np = f.Ok("GenerateDataKeyWithoutPlaintext", {{"KeyId", id}, {"KeySpec", "AES_128"}});
  CHECK_FALSE(np.contains("Plaintext"));
  CHECK(Unb64(f.Ok("Decrypt", {{"CiphertextBlob", np.at("CiphertextBlob")}}).at("Plaintext")).size() ==
        16);
  CHECK(f.Err("GenerateDataKey", {{"KeyId", id}}).first == "ValidationException");
  CHECK(f.Err("GenerateDataKey", {{"KeyId", id}, {"KeySpec", "AES_256"}, {"NumberOfBytes", 32}})
            .first == "ValidationException");
  CHECK(f.Err("GenerateDataKey", {{"KeyId", id}, {"NumberOfBytes", 1025}}).first ==
        "ValidationException");
  CHECK(f.Err("GenerateDataKey", {{"KeyId", id}, {"NumberOfBytes", "32"}}).first ==
        "SerializationException");
}

bool VerifyWithMbedtls(const Bytes& spki_der, std::string_view message, const Bytes& signature) {
  mbedtls_pk_context pk;
  mbedtls_pk_init(&pk);
  bool ok = mbedtls_pk_parse_public_key(&pk, spki_der.data(), spki_der.size()) == 0;
  unsigned char hash[32];
  ok = ok && mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256),
                        reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                        hash) == 0;
  ok = ok && mbedtls_pk_verify(&pk, MBEDTLS_MD_SHA256, hash, sizeof hash, signature.data(),
                               signature.size()) == 0;
  mbedtls_pk_free(&pk);
  return ok;
}

TEST_CASE("aws ops: Sign, Verify and GetPublicKey checked with mbedTLS", "[unit]") {
  AwsFixture f;
  const std::string id = f.NewKey({{"KeySpec", "ECC_NIST_P256"}, {"KeyUsage", "SIGN_VERIFY"}});
  const auto pub = f.Ok("GetPublicKey", {{"KeyId", id}});
  CHECK(pub.at("KeySpec").as_string() == "ECC_NIST_P256");
  CHECK(pub.at("KeyUsage").as_string() == "SIGN_VERIFY");
  CHECK(pub.at("SigningAlgorithms").as_array().size() == 1);
  const auto sig = f.Ok("Sign", {{"KeyId", id}, {"Message", B64("sign me")},
                                 {"SigningAlgorithm", "ECDSA_SHA_256"}});
  CHECK(sig.at("SigningAlgorithm").as_string() == "ECDSA_SHA_256");
  CHECK(VerifyWithMbedtls(Unb64(pub.at("PublicKey")), "sign me", Unb64(sig.at("Signature"))));
  const auto ver = f.Ok("Verify", {{"KeyId", id}, {"Message", B64("sign me")},
                                   {"Signature", sig.at("Signature")},
                                   {"SigningAlgorithm", "ECDSA_SHA_256"}});
  CHECK(ver.at("SignatureValid").as_bool());
  CHECK(f.Err("Verify", {{"KeyId", id}, {"Message", B64("other")}, {"Signature", sig.at("Signature")},
                         {"SigningAlgorithm", "ECDSA_SHA_256"}}) ==
        std::pair<std::string, std::string>("KMSInvalidSignatureException", ""));
  CHECK(f.Err("Sign", {{"KeyId", id}, {"Message", B64("m")}}).first == "ValidationException");
  CHECK(f.Err("Sign", {{"KeyId", id}, {"Message", B64("m")}, {"SigningAlgorithm", "ECDSA_SHA_256"},
                       {"MessageType", "DIGEST"}})
            .first == "ValidationException");
  // Wrong usage both ways.
  const std::string sym = f.NewKey();
  CHECK(f.Err("Sign", {{"KeyId", sym}, {"Message", B64("m")}, {"SigningAlgorithm", "ECDSA_SHA_256"}})
            .first == "InvalidKeyUsageException");
  CHECK(f.Err("Encrypt", {{"KeyId", id}, {"Plaintext", B64("m")}}).first ==
        "InvalidKeyUsageException");
  CHECK(f.Err("GetPublicKey", {{"KeyId", sym}}).first == "UnsupportedOperationException");
}

TEST_CASE("aws ops: GenerateDataKeyPair and WithoutPlaintext", "[unit]") {
  AwsFixture f;
  const std::string id = f.NewKey();
  const auto pair = f.Ok("GenerateDataKeyPair", {{"KeyId", id}, {"KeyPairSpec", "ECC_NIST_P256"}});
  CHECK(pair.at("KeyPairSpec").as_string() == "ECC_NIST_P256");
  CHECK(!Unb64(pair.at("PublicKey")).empty());
  const auto dec = f.Ok("Decrypt", {{"CiphertextBlob", pair.at("PrivateKeyCiphertextBlob")}});
  CHECK(dec.at("Plaintext") == pair.at("PrivateKeyPlaintext"));
  const auto np =
      f.Ok("GenerateDataKeyPairWithoutPlaintext", {{"KeyId", id}, {"KeyPairSpec", "ECC_NIST_P256"}});
  CHECK_FALSE(np.contains("PrivateKeyPlaintext"));
  CHECK(np.contains("PrivateKeyCiphertextBlob"));
  CHECK(f.Err("GenerateDataKeyPair", {{"KeyId", id}}).first == "ValidationException");
}

TEST_CASE("aws ops: GenerateMac, VerifyMac, GenerateRandom", "[unit]") {
  AwsFixture f;
  const std::string id = f.NewKey({{"KeySpec", "HMAC_256"}, {"KeyUsage", "GENERATE_VERIFY_MAC"}});
  const auto mac = f.Ok("GenerateMac", {{"KeyId", id}, {"Message", B64("data")},
                                        {"MacAlgorithm", "HMAC_SHA_256"}});
  CHECK(Unb64(mac.at("Mac")).size() == 32);
  CHECK(mac.at("MacAlgorithm").as_string() == "HMAC_SHA_256");
  const auto ok = f.Ok("VerifyMac", {{"KeyId", id}, {"Message", B64("data")},
                                     {"MacAlgorithm", "HMAC_SHA_256"}, {"Mac", mac.at("Mac")}});
  CHECK(ok.at("MacValid").as_bool());
  CHECK(f.Err("VerifyMac", {{"KeyId", id}, {"Message", B64("datA")}, {"MacAlgorithm", "HMAC_SHA_256"},
                            {"Mac", mac.at("Mac")}}) ==
        std::pair<std::string, std::string>("KMSInvalidMacException", ""));
  CHECK(f.Err("GenerateMac", {{"KeyId", id}, {"Message", B64("d")}, {"MacAlgorithm", "HMAC_SHA_384"}})
            .first == "InvalidKeyUsageException");

  CHECK(Unb64(f.Ok("GenerateRandom", {{"NumberOfBytes", 32}}).at("Plaintext")).size() == 32);
  CHECK(f.Err("GenerateRandom", {}).first == "ValidationException");
  CHECK(f.Err("GenerateRandom", {{"NumberOfBytes", 0}}).first == "ValidationException");
  CHECK(f.Err("GenerateRandom", {{"NumberOfBytes", 8}, {"CustomKeyStoreId", "x"}}).first ==
        "UnsupportedOperationException");
}

TEST_CASE("aws ops: aliases", "[unit]") {
  AwsFixture f;
  const std::string a = f.NewKey(), b = f.NewKey();
  f.Ok("CreateAlias", {{"AliasName", "alias/app"}, {"TargetKeyId", a}});
  CHECK(f.Err("CreateAlias", {{"AliasName", "alias/app"}, {"TargetKeyId", b}}).first ==
        "AlreadyExistsException");
  CHECK(f.Err("CreateAlias", {{"AliasName", "noprefix"}, {"TargetKeyId", b}}).first ==
        "ValidationException");
  auto list = f.Ok("ListAliases", {{"KeyId", a}});
  REQUIRE(list.at("Aliases").as_array().size() == 1);
  const auto& entry = list.at("Aliases").as_array()[0].as_object();
  CHECK(entry.at("AliasName").as_string() == "alias/app");
  CHECK(entry.at("AliasArn").as_string() == "arn:aws:kms:us-east-1:111122223333:alias/app");
  CHECK(entry.at("TargetKeyId").as_string() == a);
  CHECK(entry.at("CreationDate").is_number());
  CHECK(list.at("Truncated").as_bool() == false);
  f.Ok("UpdateAlias", {{"AliasName", "alias/app"}, {"TargetKeyId", b}});
  CHECK(f.Ok("DescribeKey", {{"KeyId", "alias/app"}}).at("KeyMetadata").at("KeyId").as_string() == b);
  f.Ok("DeleteAlias", {{"AliasName", "alias/app"}});
  CHECK(f.Err("DeleteAlias", {{"AliasName", "alias/app"}}).first == "NotFoundException");
}

TEST_CASE("aws ops: tags", "[unit]") {
  AwsFixture f;
  const std::string id = f.NewKey();
  f.Ok("TagResource", {{"KeyId", id},
                       {"Tags", json::array{{{"TagKey", "a"}, {"TagValue", "1"}},
                                            {{"TagKey", "b"}, {"TagValue", ""}}}}});
  auto tags = f.Ok("ListResourceTags", {{"KeyId", id}});
  CHECK(tags.at("Tags").as_array().size() == 2);
  CHECK(tags.at("Truncated").as_bool() == false);
  f.Ok("UntagResource", {{"KeyId", id}, {"TagKeys", json::array{"a"}}});
  tags = f.Ok("ListResourceTags", {{"KeyId", id}});
  REQUIRE(tags.at("Tags").as_array().size() == 1);
  CHECK(tags.at("Tags").as_array()[0].at("TagKey").as_string() == "b");
  CHECK(f.Err("TagResource", {{"KeyId", id},
                              {"Tags", json::array{{{"TagKey", "aws:x"}, {"TagValue", "1"}}}}})
            .first == "TagException");
  CHECK(f.Err("TagResource", {{"KeyId", id}, {"Tags", json::array{{{"TagValue", "1"}}}}}).first ==
        "ValidationException");
  CHECK(f.Err("TagResource", {{"KeyId", id}, {"Tags", json::array{"notanobject"}}}).first ==
        "SerializationException");
  CHECK(f.Err("UntagResource", {{"KeyId", id}}).first == "ValidationException");
}

TEST_CASE("aws ops: rotation keeps old ciphertexts decrypting", "[unit]") {
  AwsFixture f;
  const std::string id = f.NewKey();
  const auto old_blob = f.Ok("Encrypt", {{"KeyId", id}, {"Plaintext", B64("v1")}}).at("CiphertextBlob");
  f.Ok("EnableKeyRotation", {{"KeyId", id}, {"RotationPeriodInDays", 90}});
  auto status = f.Ok("GetKeyRotationStatus", {{"KeyId", id}});
  CHECK(status.at("KeyRotationEnabled").as_bool());
  CHECK(status.at("RotationPeriodInDays").as_int64() == 90);
  CHECK(status.at("NextRotationDate").is_number());
  CHECK(f.Ok("RotateKeyOnDemand", {{"KeyId", id}}).at("KeyId").as_string() == id);
  const auto rotations = f.Ok("ListKeyRotations", {{"KeyId", id}});
  REQUIRE(rotations.at("Rotations").as_array().size() == 1);
  CHECK(rotations.at("Rotations").as_array()[0].at("RotationType").as_string() == "ON_DEMAND");
  CHECK(rotations.at("Rotations").as_array()[0].at("KeyMaterialId").as_string().size() == 64);
  CHECK(f.Ok("Decrypt", {{"CiphertextBlob", old_blob}}).at("Plaintext").as_string() == B64("v1"));
  f.Ok("DisableKeyRotation", {{"KeyId", id}});
  CHECK(f.Ok("GetKeyRotationStatus", {{"KeyId", id}}).at("KeyRotationEnabled").as_bool() == false);
  CHECK(f.Err("EnableKeyRotation", {{"KeyId", id}, {"RotationPeriodInDays", 10}}).first ==
        "ValidationException");
  CHECK(f.Err("ListKeyRotations", {{"KeyId", id}, {"IncludeKeyMaterial", "SOME"}}).first ==
        "ValidationException");
}

TEST_CASE("aws ops: enable, disable, description, deletion scheduling and cancelling", "[unit]") {
  AwsFixture f;
  const std::string id = f.NewKey();
  f.Ok("UpdateKeyDescription", {{"KeyId", id}, {"Description", "new text"}});
  CHECK(f.Ok("DescribeKey", {{"KeyId", id}}).at("KeyMetadata").at("Description").as_string() ==
        "new text");
  f.Ok("DisableKey", {{"KeyId", id}});
  const auto disabled = f.Err("Encrypt", {{"KeyId", id}, {"Plaintext", B64("x")}});
  CHECK(disabled.first == "DisabledException");
  CHECK(disabled.second == "arn:aws:kms:us-east-1:111122223333:key/" + id + " is disabled.");
  f.Ok("EnableKey", {{"KeyId", id}});
  f.Ok("Encrypt", {{"KeyId", id}, {"Plaintext", B64("x")}});

  const auto sched = f.Ok("ScheduleKeyDeletion", {{"KeyId", id}, {"PendingWindowInDays", 7}});
  CHECK(sched.at("KeyState").as_string() == "PendingDeletion");
  CHECK(sched.at("PendingWindowInDays").as_int64() == 7);
  CHECK(sched.at("DeletionDate").is_number());
  CHECK(f.Err("Encrypt", {{"KeyId", id}, {"Plaintext", B64("x")}}).first ==
        "KMSInvalidStateException");
  CHECK(f.Ok("DescribeKey", {{"KeyId", id}}).at("KeyMetadata").at("KeyState").as_string() ==
        "PendingDeletion");
  CHECK(f.Err("ScheduleKeyDeletion", {{"KeyId", id}}).first == "KMSInvalidStateException");
  CHECK(f.Ok("CancelKeyDeletion", {{"KeyId", id}}).at("KeyId").as_string().ends_with(id));
  CHECK(f.Ok("DescribeKey", {{"KeyId", id}}).at("KeyMetadata").at("KeyState").as_string() ==
        "Disabled");
  CHECK(f.Err("ScheduleKeyDeletion", {{"KeyId", id}, {"PendingWindowInDays", 3}}).first ==
        "ValidationException");
}

TEST_CASE("aws ops: ListKeys paging with Limit, Marker, Truncated, NextMarker", "[unit]") {
  AwsFixture f;
  std::set<std::string> made;
  for (int i = 0; i < 5; ++i) made.insert(f.NewKey());
  std::set<std::string> seen;
  json::object req{{"Limit", 2}};
  int pages = 0;
  for (;;) {
    const auto page = f.Ok("ListKeys", req);
    ++pages;
    for (const auto& k : page.at("Keys").as_array()) {
      seen.insert(std::string(k.at("KeyId").as_string()));
      CHECK(k.at("KeyArn").as_string().starts_with("arn:aws:kms:us-east-1:111122223333:key/"));
    }
    if (!page.at("Truncated").as_bool()) {
      CHECK_FALSE(page.contains("NextMarker"));
      break;
    }
    req["Marker"] = page.at("NextMarker");
  }
  CHECK(pages == 3);
  CHECK(seen == made);
  CHECK(f.Err("ListKeys", {{"Marker", "garbage"}}).first == "InvalidMarkerException");
  CHECK(f.Err("ListKeys", {{"Limit", 0}}).first == "ValidationException");
}

}  // namespace
}  // namespace kms::api::aws
