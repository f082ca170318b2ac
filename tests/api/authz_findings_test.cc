// Authorization findings of a security review, each reproduced through AwsDoor::Handle as the
// reviewer sent it, with the store's contents compared before and after (tests/support/
// store_digest.h): every refused request must leave the store byte for byte as it was, and its
// audit record must name the caller, the key and the decision.
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <mbedtls/pk.h>
#include <mbedtls/rsa.h>

#include <random>

#include "firmware/ciphertext_blob.h"
#include "tests/api/authz_door_fixture.h"
#include "tests/support/store_digest.h"

namespace kms::api::aws {
namespace {

using namespace authz_test;

std::string StorePath(AuthzDoorFixture& f) { return (f.service.dir.path() / "kms.db").string(); }

// Everything the store holds now.
std::map<std::string, std::vector<std::string>> Contents(AuthzDoorFixture& f) {
  return kms::testing::StoreContents(StorePath(f));
}

// "Allow every principal everything": what a caller without rights would like a key policy to say.
std::string OpenPolicy() {
  return json::serialize(json::object{
      {"Version", "2012-10-17"},
      {"Statement", json::array{json::object{{"Effect", "Allow"},
                                             {"Principal", "*"},
                                             {"Action", "kms:*"},
                                             {"Resource", "*"}}}}});
}

int TestRandom(void* rng, unsigned char* out, std::size_t n) {
  auto& gen = *static_cast<std::mt19937_64*>(rng);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<unsigned char>(gen());
  return 0;
}

// A genuine RSAES-OAEP-SHA-256 ciphertext of `plaintext` under the public key `spki` whose bytes
// also parse as this appliance's symmetric ciphertext blob (about 1 in 16,384 do: format byte 1, a
// version-4 UUID, a key version other than 0). Such a blob names a key that does not exist.
Bytes OaepCiphertextThatParsesAsBlob(ByteView spki, std::string_view plaintext) {
  mbedtls_pk_context pk;
  mbedtls_pk_init(&pk);
  REQUIRE(mbedtls_pk_parse_public_key(&pk, spki.data(), spki.size()) == 0);
  mbedtls_rsa_context* rsa = mbedtls_pk_rsa(pk);
  mbedtls_rsa_set_padding(rsa, MBEDTLS_RSA_PKCS_V21, MBEDTLS_MD_SHA256);
  std::mt19937_64 rng(20261207);
  Bytes out(mbedtls_rsa_get_len(rsa));
  bool found = false;
  for (int attempt = 0; attempt < 400'000 && !found; ++attempt) {
    REQUIRE(mbedtls_rsa_rsaes_oaep_encrypt(
                rsa, TestRandom, &rng, MBEDTLS_RSA_PUBLIC, nullptr, 0, plaintext.size(),
                reinterpret_cast<const unsigned char*>(plaintext.data()), out.data()) == 0);
    found = firmware::ParseCiphertextBlob(out).has_value();
  }
  mbedtls_pk_free(&pk);
  REQUIRE(found);
  return out;
}

TEST_CASE("finding: a malformed GrantTokens member never skips the decision", "[unit][authz]") {
  AuthzDoorFixture f;
  RecordingAuditor auditor;
  f.Audit(auditor);
  const std::string key = f.NewKey("SYMMETRIC_DEFAULT");
  const auto secret = f.Ok(kAdmin, "Encrypt", {{"KeyId", key}, {"Plaintext", B64("payroll")}});
  const std::string alias = "alias/payroll";
  f.Ok(kAdmin, "CreateAlias", {{"AliasName", alias}, {"TargetKeyId", key}});
  const std::string grant = f.Grant(key, kBobArn, {"Encrypt"}).first;

  SECTION("the reviewer's PutKeyPolicy is refused and changes nothing") {
    const auto before = Contents(f);
    auditor.entries.clear();
    const json::object attack{{"KeyId", key},
                              {"PolicyName", "default"},
                              {"Policy", OpenPolicy()},
                              {"GrantTokens", "x"}};
    CHECK(f.Err(kAlice, "PutKeyPolicy", attack) ==
          AccessDenied(NoKeyPolicy("kms:PutKeyPolicy", key)));
    CHECK(kms::testing::ChangedTables(before, Contents(f)).empty());
    REQUIRE(auditor.entries.size() == 1);
    CHECK(auditor.entries[0].principal == kAliceArn);
    CHECK(auditor.entries[0].key_arn == KeyArn(key));
    CHECK(auditor.entries[0].decision == "deny:implicit");
    // Her next Decrypt of that key's ciphertexts is refused as before.
    CHECK(f.Err(kAlice, "Decrypt", {{"CiphertextBlob", secret.at("CiphertextBlob")}}) ==
          AccessDenied(NoKeyPolicy("kms:Decrypt", key)));
  }
  SECTION("every operation without GrantTokens in its model ignores the member and decides") {
    const std::pair<std::string, json::object> calls[] = {
        {"UpdateAlias", {{"AliasName", alias}, {"TargetKeyId", key}}},
        {"DeleteAlias", {{"AliasName", alias}}},
        {"ScheduleKeyDeletion", {{"KeyId", key}, {"PendingWindowInDays", 7}}},
        {"DisableKey", {{"KeyId", key}}},
        {"RevokeGrant", {{"KeyId", key}, {"GrantId", grant}}},
        {"GetKeyPolicy", {{"KeyId", key}}},
        {"ListGrants", {{"KeyId", key}}},
        {"TagResource", {{"KeyId", key}, {"Tags", json::array{json::object{{"TagKey", "a"},
                                                                           {"TagValue", "b"}}}}}},
        {"EnableKeyRotation", {{"KeyId", key}}},
        {"UpdateKeyDescription", {{"KeyId", key}, {"Description", "mine"}}},
    };
    for (const auto& [op, body] : calls) {
      for (const json::value& tokens :
           {json::value("x"), json::value(json::array{1}), json::value(json::array{""}),
            json::value(json::object{})}) {
        INFO(op << " GrantTokens=" << json::serialize(tokens));
        json::object sent = body;
        sent["GrantTokens"] = tokens;
        const auto before = Contents(f);
        auditor.entries.clear();
        const Error refused = f.Err(kAlice, op, sent);
        CHECK(refused.first == "AccessDeniedException");
        CHECK(kms::testing::ChangedTables(before, Contents(f)).empty());
        REQUIRE(auditor.entries.size() == 1);
        CHECK(auditor.entries[0].key_arn == KeyArn(key));
        CHECK(auditor.entries[0].decision.starts_with("deny:"));
      }
    }
  }
  SECTION("an operation a grant can allow refuses malformed tokens before deciding") {
    const auto before = Contents(f);
    auditor.entries.clear();
    CHECK(f.Err(kAlice, "Encrypt", {{"KeyId", key}, {"Plaintext", B64("x")}, {"GrantTokens", "x"}})
              .first == "SerializationException");
    CHECK(f.Err(kAlice, "Encrypt",
                {{"KeyId", key}, {"Plaintext", B64("x")}, {"GrantTokens", json::array{""}}})
              .first == "ValidationException");
    CHECK(f.Err(kAlice, "Encrypt",
                {{"KeyId", key}, {"Plaintext", B64("x")}, {"GrantTokens", json::array{"x"}}})
              .first == "InvalidGrantTokenException");
    CHECK(kms::testing::ChangedTables(before, Contents(f)).empty());
    REQUIRE(auditor.entries.size() == 3);
    for (const auto& e : auditor.entries) {
      CHECK(e.principal == kAliceArn);
      CHECK(e.decision == "refused:invalid-request");
    }
  }
}

TEST_CASE("finding: Decrypt is decided on the key that decrypts, whatever the blob looks like",
          "[unit][authz]") {
  AuthzDoorFixture f;
  RecordingAuditor auditor;
  f.Audit(auditor);
  const std::string rsa = f.NewKey("RSA_2048");
  // (RSA encryption keys: CreateKey with KeyUsage ENCRYPT_DECRYPT.)
  const auto pub = f.Ok(kAdmin, "GetPublicKey", {{"KeyId", rsa}});
  REQUIRE(pub.at("KeyUsage").as_string() == "ENCRYPT_DECRYPT");
  const auto spki = Base64Decode(pub.at("PublicKey").as_string());
  REQUIRE(spki.has_value());
  const std::string plaintext = "the rsa-protected secret";
  const Bytes ciphertext = OaepCiphertextThatParsesAsBlob(*spki, plaintext);
  const json::object decrypt{{"CiphertextBlob", Base64Encode(ciphertext)},
                             {"KeyId", rsa},
                             {"EncryptionAlgorithm", "RSAES_OAEP_SHA_256"}};
  // It is a real ciphertext: its key's owner decrypts it.
  CHECK(Base64Decode(f.Ok(kAdmin, "Decrypt", decrypt).at("Plaintext").as_string()) ==
        ToBytes(plaintext));

  SECTION("a caller without rights on the RSA key is refused, and the record names that key") {
    auditor.entries.clear();
    const auto before = Contents(f);
    CHECK(f.Err(kAlice, "Decrypt", decrypt) == AccessDenied(NoKeyPolicy("kms:Decrypt", rsa)));
    CHECK(kms::testing::ChangedTables(before, Contents(f)).empty());
    REQUIRE(auditor.entries.size() == 1);
    CHECK(auditor.entries[0].key_arn == KeyArn(rsa));
    CHECK(auditor.entries[0].decision == "deny:implicit");
  }
  SECTION("ReEncrypt decides the source the same way, and then the destination") {
    const std::string mine =
        f.NewKey("SYMMETRIC_DEFAULT", KeyPolicy({AliceStatement("Allow", "kms:*")}));
    json::object reencrypt{{"CiphertextBlob", Base64Encode(ciphertext)},
                           {"SourceKeyId", rsa},
                           {"SourceEncryptionAlgorithm", "RSAES_OAEP_SHA_256"},
                           {"DestinationKeyId", mine}};
    CHECK(f.Err(kAlice, "ReEncrypt", reencrypt) ==
          AccessDenied(NoKeyPolicy("kms:ReEncryptFrom", rsa)));
    // With ReEncryptFrom on the source but nothing on the destination, the destination refuses.
    const std::string source =
        f.NewKey("SYMMETRIC_DEFAULT", KeyPolicy({AliceStatement("Allow", "kms:*")}));
    const std::string other = f.NewKey("SYMMETRIC_DEFAULT");
    const auto blob = f.Ok(kAlice, "Encrypt", {{"KeyId", source}, {"Plaintext", B64("move me")}})
                          .at("CiphertextBlob");
    CHECK(f.Err(kAlice, "ReEncrypt", {{"CiphertextBlob", blob}, {"DestinationKeyId", other}}) ==
          AccessDenied(NoKeyPolicy("kms:ReEncryptTo", other)));
  }
  SECTION("a blob of a key she may use, with KeyId naming the RSA key, is decided on the RSA key") {
    const std::string mine =
        f.NewKey("SYMMETRIC_DEFAULT", KeyPolicy({AliceStatement("Allow", "kms:*")}));
    const auto blob = f.Ok(kAlice, "Encrypt", {{"KeyId", mine}, {"Plaintext", B64("mine")}})
                          .at("CiphertextBlob");
    auditor.entries.clear();
    CHECK(f.Err(kAlice, "Decrypt",
                {{"CiphertextBlob", blob},
                 {"KeyId", rsa},
                 {"EncryptionAlgorithm", "RSAES_OAEP_SHA_256"}}) ==
          AccessDenied(NoKeyPolicy("kms:Decrypt", rsa)));
    REQUIRE(auditor.entries.size() == 1);
    CHECK(auditor.entries[0].key_arn == KeyArn(rsa));
    // With KeyId naming her own key, the blob decrypts as before; naming another symmetric key
    // she may use, it is IncorrectKeyException.
    f.Ok(kAlice, "Decrypt", {{"CiphertextBlob", blob}, {"KeyId", mine}});
    const std::string also_mine =
        f.NewKey("SYMMETRIC_DEFAULT", KeyPolicy({AliceStatement("Allow", "kms:*")}));
    CHECK(f.Err(kAlice, "Decrypt", {{"CiphertextBlob", blob}, {"KeyId", also_mine}}).first ==
          "IncorrectKeyException");
  }
  SECTION("a blob that names no existing key, without KeyId, is InvalidCiphertextException") {
    auditor.entries.clear();
    CHECK(f.Err(kAlice, "Decrypt", {{"CiphertextBlob", Base64Encode(ciphertext)}}) ==
          Error{"InvalidCiphertextException", ""});
    CHECK(f.Err(kAlice, "Decrypt", {{"CiphertextBlob", B64("not a blob at all, just bytes")}}) ==
          Error{"InvalidCiphertextException", ""});
    REQUIRE(auditor.entries.size() == 2);
    for (const auto& e : auditor.entries) CHECK(e.decision == "refused:invalid-request");
  }
}

TEST_CASE("finding: every audit record carries a decision, refusals before one included",
          "[unit][authz]") {
  AuthzDoorFixture f;
  RecordingAuditor auditor;
  f.Audit(auditor);
  const std::string key = f.NewKey("SYMMETRIC_DEFAULT");
  auditor.entries.clear();
  // Unauthenticated: a wrong secret.
  {
    auto req = testing::KmsRequest("ListKeys", "{}");
    testing::SigningParams p;
    p.access_key_id = kAlice.id;
    p.secret = "not-alice's-secret-at-all-0000000000000";
    testing::SignRequest(req, p);
    CHECK(f.door->Handle(req).status == 400);
  }
  f.Err(kAlice, "NoSuchOperation", {});
  f.Err(kAlice, "ImportKeyMaterial", {{"KeyId", key}});
  f.Err(kAlice, "Encrypt", {{"KeyId", 5}});
  f.Err(kAlice, "Encrypt", {{"KeyId", "00000000-0000-4000-8000-000000000000"},
                            {"Plaintext", B64("x")}});
  f.Err(kAlice, "Encrypt", {{"KeyId", key}, {"Plaintext", B64("x")}});
  f.Err(kAlice, "KmsAppliance.ListAccessKeys", {});
  f.Ok(kAdmin, "Encrypt", {{"KeyId", key}, {"Plaintext", B64("x")}});
  const std::vector<std::string> expected = {
      "refused:unauthenticated", "refused:unsupported", "refused:unsupported",
      "refused:invalid-request", "refused:not-found",   "deny:implicit",
      "deny:not-administrator",  "allow:identity-policy"};
  REQUIRE(auditor.entries.size() == expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    INFO(i << " " << auditor.entries[i].operation << " " << auditor.entries[i].outcome);
    CHECK(auditor.entries[i].decision == expected[i]);
  }
  CHECK(auditor.entries[0].principal.empty());  // not authenticated: nobody to name
  for (std::size_t i = 1; i < expected.size() - 1; ++i) {
    CHECK(auditor.entries[i].principal == kAliceArn);
  }
}

TEST_CASE("finding: a state change is recorded before it commits", "[unit][authz]") {
  AuthzDoorFixture f;
  RecordingAuditor auditor;
  f.Audit(auditor);
  const std::string key = f.NewKey("SYMMETRIC_DEFAULT");

  SECTION("when the intent cannot be written, nothing changes and the answer is a 500") {
    const auto before = Contents(f);
    auditor.entries.clear();
    auditor.fail_intent = true;
    const auto r = f.Call(kAdmin, "DisableKey", {{"KeyId", key}});
    CHECK(r.status == 500);
    CHECK(json::parse(r.body).at("__type").as_string() == "KMSInternalException");
    CHECK(kms::testing::ChangedTables(before, Contents(f)).empty());
    REQUIRE(auditor.entries.size() == 2);
    CHECK(auditor.entries[0].outcome == "started");
    CHECK(auditor.entries[1].outcome == "KMSInternalException");
  }
  SECTION("a change whose final record fails still has its intent record") {
    auditor.entries.clear();
    auditor.fail_final = true;
    const auto r = f.Call(kAdmin, "DisableKey", {{"KeyId", key}});
    CHECK(r.status == 500);
    REQUIRE(auditor.entries.size() == 2);
    CHECK(auditor.entries[0].operation == "DisableKey");
    CHECK(auditor.entries[0].outcome == "started");
    CHECK(auditor.entries[0].key_arn == KeyArn(key));
    CHECK(auditor.entries[0].decision == "allow:identity-policy");
    CHECK(auditor.entries[0].principal == kAdminArn);
    // The change itself was made (the answer was lost, not the change).
    auditor.fail_final = false;
    auditor.ready = true;
    CHECK(f.Ok(kAdmin, "DescribeKey", {{"KeyId", key}}).at("KeyMetadata").at("KeyState") ==
          "Disabled");
  }
  SECTION("reads and cryptography write no intent") {
    auditor.entries.clear();
    f.Ok(kAdmin, "Encrypt", {{"KeyId", key}, {"Plaintext", B64("x")}});
    f.Ok(kAdmin, "DescribeKey", {{"KeyId", key}});
    CHECK(auditor.entries.size() == 2);
  }
}

TEST_CASE("finding: an empty EncryptionContextEquals is a constraint, kept and enforced",
          "[unit][authz]") {
  AuthzDoorFixture f;
  const std::string key = f.NewKey("SYMMETRIC_DEFAULT");
  const auto made = f.Ok(kAdmin, "CreateGrant",
                         {{"KeyId", key},
                          {"GranteePrincipal", kAliceArn},
                          {"Operations", json::array{"Encrypt"}},
                          {"Constraints", {{"EncryptionContextEquals", json::object{}}}}});
  const auto listed = f.Ok(kAdmin, "ListGrants", {{"KeyId", key}}).at("Grants").as_array();
  REQUIRE(listed.size() == 1);
  CHECK(listed[0].at("Constraints") ==
        json::value(json::object{{"EncryptionContextEquals", json::object{}}}));
  // Only a request without an encryption context passes.
  f.Ok(kAlice, "Encrypt", {{"KeyId", key}, {"Plaintext", B64("no context")}});
  CHECK(f.Err(kAlice, "Encrypt",
              {{"KeyId", key},
               {"Plaintext", B64("with context")},
               {"EncryptionContext", {{"app", "any"}}}}) ==
        AccessDenied(NoKeyPolicy("kms:Encrypt", key)));
  // An empty EncryptionContextSubset reads back as given too, and admits any context.
  const std::string other = f.NewKey("SYMMETRIC_DEFAULT");
  f.Ok(kAdmin, "CreateGrant",
       {{"KeyId", other},
        {"GranteePrincipal", kAliceArn},
        {"Operations", json::array{"Encrypt"}},
        {"Constraints", {{"EncryptionContextSubset", json::object{}}}}});
  CHECK(f.Ok(kAdmin, "ListGrants", {{"KeyId", other}}).at("Grants").as_array()[0].at(
            "Constraints") == json::value(json::object{{"EncryptionContextSubset", json::object{}}}));
  f.Ok(kAlice, "Encrypt",
       {{"KeyId", other}, {"Plaintext", B64("x")}, {"EncryptionContext", {{"app", "any"}}}});
  (void)made;
}

TEST_CASE("finding: a destroyed key takes its key policy and grants with it", "[unit][authz]") {
  AuthzDoorFixture f;
  const std::string doomed =
      f.NewKey("SYMMETRIC_DEFAULT", KeyPolicy({AliceStatement("Allow", "kms:Encrypt")}));
  const std::string kept =
      f.NewKey("SYMMETRIC_DEFAULT", KeyPolicy({AliceStatement("Allow", "kms:Encrypt")}));
  for (int i = 0; i < 3; ++i) {
    f.Grant(doomed, kBobArn, {"Encrypt"});
    f.Grant(kept, kBobArn, {"Encrypt"});
  }
  auto authz_records = [&](const std::string& key) {
    auto tx = f.service.store->Begin(firmware::store::TransactionMode::kReadOnly);
    REQUIRE(tx.has_value());
    std::size_t n = 0;
    for (const std::string& prefix : {std::string(authz::kKeyPolicyMetaPrefix) + key,
                                     std::string(authz::kGrantMetaPrefix) + key + "."}) {
      auto page = (*tx)->ListMeta(prefix, "", 1000);
      REQUIRE(page.has_value());
      n += page->items.size();
    }
    return n;
  };
  REQUIRE(authz_records(doomed) == 4);
  REQUIRE(authz_records(kept) == 4);
  f.Ok(kAdmin, "ScheduleKeyDeletion", {{"KeyId", doomed}, {"PendingWindowInDays", 7}});
  f.service.clock.Advance(8LL * 24 * 3600 * 1000);
  auto ran = f.service.svc().RunDue(f.service.clock.NowMs());
  REQUIRE(ran.has_value());
  CHECK(ran->keys_deleted == 1);
  CHECK(authz_records(doomed) == 0);
  CHECK(authz_records(kept) == 4);
  CHECK(f.Err(kAdmin, "DescribeKey", {{"KeyId", doomed}}).first == "NotFoundException");
}

}  // namespace
}  // namespace kms::api::aws
