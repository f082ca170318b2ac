// The key service against an HSM and a real SQLite store: every operation, key spec, state transition
// and client-visible error. Compiled twice: against the fake HSM (unit) and,
// with KMS_TEST_HSM_SOFTHSM, against a real SoftHSM2 token through the PKCS#11 HAL (softhsm).
#include "firmware/key_service.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "firmware/key_scheduler.h"
#include "firmware/store/metadata_store.h"
#include "tests/firmware/key_service_fixture.h"

// The two builds of this file are separate CTest suites: their test names must differ (CTest keys
// properties such as LABELS by name).
#if defined(KMS_TEST_HSM_SOFTHSM)
#define KMS_SUITE_PREFIX "softhsm: "
#define KMS_SUITE_TAG "[softhsm]"
#else
#define KMS_SUITE_PREFIX ""
#define KMS_SUITE_TAG "[unit]"
#endif

namespace kms::firmware {
namespace {

using testing::Secret;
using testing::ServiceFixture;

template <typename T>
Status ErrorOf(const StatusOr<T>& r) {
  REQUIRE_FALSE(r.has_value());
  return r.error();
}
Status ErrorOf(const Status& s) {
  REQUIRE_FALSE(s.ok());
  return s;
}

void ExpectInvalidCiphertext(const Status& s) {
  CHECK(s.code() == StatusCode::kInvalidArgument);
  CHECK(s.reason() == Reason::kInvalidCiphertext);
  CHECK(s.message().empty());
}

EncryptResponse MustEncrypt(KeyService& svc, const std::string& key, std::string_view text,
                            EncryptionContext ctx = {}) {
  EncryptRequest r;
  r.key_id = key;
  r.plaintext = Secret(text);
  r.encryption_context = std::move(ctx);
  auto out = svc.Encrypt(r);
  if (!out) FAIL(out.error().ToString());
  return std::move(*out);
}

StatusOr<DecryptResponse> DoDecrypt(KeyService& svc, const Bytes& blob, EncryptionContext ctx = {},
                                    std::optional<std::string> key = std::nullopt) {
  DecryptRequest r;
  r.ciphertext_blob = blob;
  r.encryption_context = std::move(ctx);
  r.key_id = std::move(key);
  return svc.Decrypt(r);
}

std::string Text(const SecretBytes& s) { return ToString(s.ExposeSecret()); }

// AWS's encryption algorithms of a key (docs/aws-kms-protocol.md "Key specs and algorithms") less
// the RSA-OAEP hashes `hsm` cannot perform: what the service must advertise.
std::vector<EncryptionAlgorithm> PerformableEncryptionAlgorithms(const hal::Hsm& hsm, KeySpec spec,
                                                                 KeyUsage usage) {
  std::vector<EncryptionAlgorithm> out;
  for (EncryptionAlgorithm a : EncryptionAlgorithmsFor(spec, usage)) {
    std::optional<hal::HashAlgorithm> hash = OaepHashOf(a);
    if (!hash || hsm.capabilities().oaep_hashes.contains(*hash)) out.push_back(a);
  }
  return out;
}

std::uint32_t BlobVersion(const Bytes& blob) {
  auto parsed = ParseCiphertextBlob(blob);
  REQUIRE(parsed.has_value());
  return parsed->key_version;
}

// ---------------------------------------------------------------------------------------------------
TEST_CASE(KMS_SUITE_PREFIX "CreateKey makes every key spec with AWS's metadata", KMS_SUITE_TAG) {
  ServiceFixture f;
  struct Case {
    KeySpec spec;
    KeyUsage usage;
  };
  for (Case c : {Case{KeySpec::kSymmetricDefault, KeyUsage::kEncryptDecrypt},
                 Case{KeySpec::kRsa2048, KeyUsage::kEncryptDecrypt},
                 Case{KeySpec::kRsa2048, KeyUsage::kSignVerify},
                 Case{KeySpec::kRsa3072, KeyUsage::kSignVerify},
                 Case{KeySpec::kRsa4096, KeyUsage::kEncryptDecrypt},
                 Case{KeySpec::kEccNistP256, KeyUsage::kSignVerify},
                 Case{KeySpec::kEccNistP384, KeyUsage::kSignVerify},
                 Case{KeySpec::kEccNistP521, KeyUsage::kSignVerify},
                 Case{KeySpec::kEccSecgP256k1, KeyUsage::kSignVerify},
                 Case{KeySpec::kHmac224, KeyUsage::kGenerateVerifyMac},
                 Case{KeySpec::kHmac256, KeyUsage::kGenerateVerifyMac},
                 Case{KeySpec::kHmac384, KeyUsage::kGenerateVerifyMac},
                 Case{KeySpec::kHmac512, KeyUsage::kGenerateVerifyMac}}) {
    INFO(KeySpecName(c.spec));
    KeyMetadata m = f.Create(c.spec, c.usage);
    CHECK(ParseKeyId(m.key_id).has_value());
    CHECK(m.arn == "arn:aws:kms:us-east-1:111122223333:key/" + m.key_id);
    CHECK(m.aws_account_id == "111122223333");
    CHECK(m.key_spec == c.spec);
    CHECK(m.key_usage == c.usage);
    CHECK(m.key_state == KeyState::kEnabled);
    CHECK(m.enabled);
    CHECK(m.creation_date_ms == testing::kStartMs);
    CHECK(m.current_key_material_id.size() == 64);
    CHECK(m.encryption_algorithms == PerformableEncryptionAlgorithms(f.Hsm(), c.spec, c.usage));
    CHECK(m.signing_algorithms == SigningAlgorithmsFor(c.spec, c.usage));
    CHECK(m.mac_algorithms == MacAlgorithmsFor(c.spec, c.usage));
    CHECK_FALSE(m.deletion_date_ms.has_value());
    auto d = f.svc().DescribeKey({m.key_id});
    REQUIRE(d.has_value());
    CHECK(d->key_metadata.current_key_material_id == m.current_key_material_id);
    CHECK(d->key_metadata.key_spec == c.spec);
  }
}

TEST_CASE(KMS_SUITE_PREFIX "CreateKey defaults and validation", KMS_SUITE_TAG) {
  ServiceFixture f;
  auto plain = f.svc().CreateKey({});
  REQUIRE(plain.has_value());
  CHECK(plain->key_metadata.key_spec == KeySpec::kSymmetricDefault);
  CHECK(plain->key_metadata.key_usage == KeyUsage::kEncryptDecrypt);
  CHECK(plain->key_metadata.description.empty());

  CreateKeyRequest no_usage;
  no_usage.key_spec = KeySpec::kRsa2048;
  CHECK(ErrorOf(f.svc().CreateKey(no_usage)) ==
        InvalidArgumentError("You must specify a KeyUsage value for all KMS keys except for "
                             "symmetric encryption keys."));

  CreateKeyRequest bad_combo;
  bad_combo.key_spec = KeySpec::kEccNistP256;
  bad_combo.key_usage = KeyUsage::kEncryptDecrypt;
  CHECK(ErrorOf(f.svc().CreateKey(bad_combo)) ==
        InvalidArgumentError("KeyUsage ENCRYPT_DECRYPT is not compatible with KeySpec ECC_NIST_P256"));

  CreateKeyRequest long_desc;
  long_desc.description = std::string(8193, 'd');
  CHECK(ErrorOf(f.svc().CreateKey(long_desc)) ==
        InvalidArgumentError("1 validation error detected: Value at 'description' failed to satisfy "
                             "constraint: Member must have length less than or equal to 8192"));
  long_desc.description = std::string(8192, 'd');
  CHECK(f.svc().CreateKey(long_desc).has_value());

  CreateKeyRequest tagged;
  tagged.description = "with tags";
  tagged.tags = {{"team", "core"}, {"env", ""}};
  auto made = f.svc().CreateKey(tagged);
  REQUIRE(made.has_value());
  CHECK(made->key_metadata.description == "with tags");
  auto tags = f.svc().ListResourceTags({made->key_metadata.key_id, {}, {}});
  REQUIRE(tags.has_value());
  CHECK(tags->tags == std::vector<Tag>{{"env", ""}, {"team", "core"}});

  CreateKeyRequest reserved;
  reserved.tags = {{"aws:x", "1"}};
  CHECK(ErrorOf(f.svc().CreateKey(reserved)) ==
        InvalidArgumentError("Tags beginning with aws: are reserved", Reason::kTag));
}

#if !defined(KMS_TEST_HSM_SOFTHSM)  // needs the fake's capability knob
TEST_CASE(KMS_SUITE_PREFIX "CreateKey of a spec the HSM lacks is UnsupportedOperation", KMS_SUITE_TAG) {
  kms::testing::FakeHsmOptions options;
  options.capabilities.key_algorithms.erase(hal::KeyAlgorithm::kEcSecp256k1);
  ServiceFixture f({}, options);
  CreateKeyRequest r;
  r.key_spec = KeySpec::kEccSecgP256k1;
  r.key_usage = KeyUsage::kSignVerify;
  Status s = ErrorOf(f.svc().CreateKey(r));
  CHECK(s.code() == StatusCode::kUnimplemented);
  CHECK(s.reason() == Reason::kUnsupportedOperation);
  CHECK(s.message() == "KeySpec ECC_SECG_P256K1 is not supported by this key store.");
}
#endif

TEST_CASE(KMS_SUITE_PREFIX "the key quota is LimitExceeded", KMS_SUITE_TAG) {
  KeyServiceConfig config;
  config.max_keys = 2;
  ServiceFixture f(config);
  KeyMetadata first = f.Create();
  f.Create();
  Status s = ErrorOf(f.svc().CreateKey({}));
  CHECK(s.code() == StatusCode::kResourceExhausted);
  CHECK(s.reason() == Reason::kLimitExceeded);
  // A destroyed key frees its slot (also across a restart).
  REQUIRE(f.svc().ScheduleKeyDeletion({first.key_id, 7}).has_value());
  CHECK(ErrorOf(f.svc().CreateKey({})).reason() == Reason::kLimitExceeded);  // pending still counts
  f.clock.AdvanceDays(8);
  REQUIRE(f.svc().RunDue(f.clock.NowMs())->keys_deleted == 1);
  f.Restart();
  CHECK(f.svc().CreateKey({}).has_value());
  CHECK(ErrorOf(f.svc().CreateKey({})).reason() == Reason::kLimitExceeded);
}

TEST_CASE(KMS_SUITE_PREFIX "KeyId resolves in all four forms where AWS accepts them", KMS_SUITE_TAG) {
  ServiceFixture f;
  KeyMetadata m = f.Create();
  REQUIRE(f.svc().CreateAlias({"alias/app", m.key_id}).ok());
  const std::string alias_arn = "arn:aws:kms:us-east-1:111122223333:alias/app";
  for (const std::string& form : {m.key_id, m.arn, std::string("alias/app"), alias_arn}) {
    INFO(form);
    auto d = f.svc().DescribeKey({form});
    REQUIRE(d.has_value());
    CHECK(d->key_metadata.key_id == m.key_id);
    EncryptResponse e = MustEncrypt(f.svc(), form, "hi");
    CHECK(e.key_id == m.arn);  // crypto responses carry the key ARN
  }
  // Management operations take only the key id or ARN.
  CHECK(f.svc().DisableKey({m.arn}).ok());
  CHECK(f.svc().EnableKey({m.key_id}).ok());
  CHECK(ErrorOf(f.svc().DisableKey({"alias/app"})) == NotFoundError("Invalid keyId 'alias/app'"));
  CHECK(ErrorOf(f.svc().TagResource({alias_arn, {{"a", "b"}}})) ==
        NotFoundError("Invalid keyId '" + alias_arn + "'"));
}

TEST_CASE(KMS_SUITE_PREFIX "unknown keys are NotFound with AWS's messages", KMS_SUITE_TAG) {
  ServiceFixture f;
  CHECK(ErrorOf(f.svc().DescribeKey({"fake-key-id"})) == NotFoundError("Invalid keyId 'fake-key-id'"));
  const std::string absent = "0b1c2d3e-4f50-4a6b-8c7d-8e9fa0b1c2d3";
  CHECK(ErrorOf(f.svc().DescribeKey({absent})) ==
        NotFoundError("Key 'arn:aws:kms:us-east-1:111122223333:key/" + absent + "' does not exist"));
  CHECK(ErrorOf(f.svc().DescribeKey({"alias/none"})) ==
        NotFoundError("Alias arn:aws:kms:us-east-1:111122223333:alias/none is not found."));
  KeyMetadata m = f.Create();
  const std::string other_region = "arn:aws:kms:eu-west-1:111122223333:key/" + m.key_id;
  CHECK(ErrorOf(f.svc().DescribeKey({other_region})) ==
        NotFoundError("Key '" + other_region + "' does not exist"));
  CHECK(ErrorOf(f.svc().DescribeKey({"arn:aws:kms:us-east-1:111122223333:thing/x"})) ==
        NotFoundError("Invalid keyId 'arn:aws:kms:us-east-1:111122223333:thing/x'"));
  CHECK(ErrorOf(f.svc().DescribeKey({""})).code() == StatusCode::kInvalidArgument);
  CHECK(ErrorOf(f.svc().DescribeKey({std::string(2049, 'a')})).code() == StatusCode::kInvalidArgument);
}

TEST_CASE(KMS_SUITE_PREFIX "ListKeys pages with opaque markers", KMS_SUITE_TAG) {
  ServiceFixture f;
  std::set<std::string> made;
  for (int i = 0; i < 5; ++i) made.insert(f.Create().key_id);
  std::set<std::string> seen;
  std::optional<std::string> marker;
  int pages = 0;
  for (;;) {
    auto page = f.svc().ListKeys({2, marker});
    REQUIRE(page.has_value());
    ++pages;
    for (const auto& k : page->keys) {
      seen.insert(k.key_id);
      CHECK(k.key_arn == f.svc().KeyArn(k.key_id));
    }
    if (!page->truncated) {
      CHECK_FALSE(page->next_marker.has_value());
      break;
    }
    marker = page->next_marker;
  }
  CHECK(seen == made);
  CHECK(pages == 3);
  CHECK(ErrorOf(f.svc().ListKeys({{}, std::string("garbage")})) ==
        InvalidArgumentError("Invalid marker", Reason::kInvalidMarker));
  CHECK(ErrorOf(f.svc().ListKeys({0, {}})) ==
        InvalidArgumentError("1 validation error detected: Value '0' at 'limit' failed to satisfy "
                             "constraint: Member must have value greater than or equal to 1"));
  CHECK(ErrorOf(f.svc().ListKeys({1001, {}})).code() == StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------------
TEST_CASE(KMS_SUITE_PREFIX "Encrypt and Decrypt round-trip with the context as AAD", KMS_SUITE_TAG) {
  ServiceFixture f;
  KeyMetadata m = f.Create();
  EncryptionContext ctx{{"purpose", "test"}, {"app", "vault"}};
  EncryptResponse e = MustEncrypt(f.svc(), m.key_id, "hello world", ctx);
  CHECK(e.encryption_algorithm == EncryptionAlgorithm::kSymmetricDefault);
  CHECK(e.ciphertext_blob.size() == 11 + kCiphertextOverhead);
  EncryptionContext reordered;
  reordered["app"] = "vault";
  reordered["purpose"] = "test";
  auto d = DoDecrypt(f.svc(), e.ciphertext_blob, reordered);
  REQUIRE(d.has_value());
  CHECK(Text(d->plaintext) == "hello world");
  CHECK(d->key_id == m.arn);
  CHECK(d->key_material_id == m.current_key_material_id);
  // With the right KeyId in any form.
  CHECK(DoDecrypt(f.svc(), e.ciphertext_blob, ctx, m.arn).has_value());
  // Random IVs: the same plaintext never gives the same blob.
  CHECK(MustEncrypt(f.svc(), m.key_id, "hello world", ctx).ciphertext_blob != e.ciphertext_blob);
}

TEST_CASE(KMS_SUITE_PREFIX "tampered, truncated or re-contexted blobs give one empty InvalidCiphertext", KMS_SUITE_TAG) {
  ServiceFixture f;
  KeyMetadata m = f.Create();
  EncryptionContext ctx{{"k", "v"}};
  Bytes blob = MustEncrypt(f.svc(), m.key_id, "secret data", ctx).ciphertext_blob;
  REQUIRE(DoDecrypt(f.svc(), blob, ctx).has_value());
  std::vector<Status> errors;
  errors.push_back(ErrorOf(DoDecrypt(f.svc(), blob, {})));                  // context missing
  errors.push_back(ErrorOf(DoDecrypt(f.svc(), blob, {{"k", "V"}})));        // case differs
  errors.push_back(ErrorOf(DoDecrypt(f.svc(), blob, {{"k", "v"}, {"x", "y"}})));  // extra pair
  for (std::size_t i = 0; i < blob.size(); ++i) {
    Bytes t = blob;
    t[i] ^= 0x01;  // every byte: format, key id, version, iv, ciphertext, tag
    errors.push_back(ErrorOf(DoDecrypt(f.svc(), t, ctx)));
  }
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{21}, std::size_t{49},
                        blob.size() - 1}) {
    Bytes t(blob.begin(), blob.begin() + static_cast<std::ptrdiff_t>(n));
    if (n == 0) {
      errors.push_back(Status(StatusCode::kInvalidArgument, "", Reason::kInvalidCiphertext));
      continue;  // an empty blob is a ValidationException at the length check (below)
    }
    errors.push_back(ErrorOf(DoDecrypt(f.svc(), t, ctx)));
  }
  Bytes longer = blob;
  longer.push_back(0);
  errors.push_back(ErrorOf(DoDecrypt(f.svc(), longer, ctx)));
  for (const Status& s : errors) ExpectInvalidCiphertext(s);
  CHECK(ErrorOf(DoDecrypt(f.svc(), Bytes{}, ctx)) ==
        InvalidArgumentError("1 validation error detected: Value at 'ciphertextBlob' failed to "
                             "satisfy constraint: Member must have length greater than or equal to 1"));
}

TEST_CASE(KMS_SUITE_PREFIX "Decrypt with another key's id is IncorrectKey", KMS_SUITE_TAG) {
  ServiceFixture f;
  KeyMetadata a = f.Create();
  KeyMetadata b = f.Create();
  Bytes blob = MustEncrypt(f.svc(), a.key_id, "x").ciphertext_blob;
  Status s = ErrorOf(DoDecrypt(f.svc(), blob, {}, b.key_id));
  CHECK(s == InvalidArgumentError(
                 "The key ID in the request does not identify a CMK that can perform this operation.",
                 Reason::kIncorrectKey));
}

TEST_CASE(KMS_SUITE_PREFIX "Encrypt limits and usage errors", KMS_SUITE_TAG) {
  ServiceFixture f;
  KeyMetadata m = f.Create();
  EncryptRequest r;
  r.key_id = m.key_id;
  r.plaintext = SecretBytes(4097);
  CHECK(ErrorOf(f.svc().Encrypt(r)) ==
        InvalidArgumentError("1 validation error detected: Value at 'plaintext' failed to satisfy "
                             "constraint: Member must have length less than or equal to 4096"));
  r.plaintext = SecretBytes();
  CHECK(ErrorOf(f.svc().Encrypt(r)) ==
        InvalidArgumentError("1 validation error detected: Value at 'plaintext' failed to satisfy "
                             "constraint: Member must have length greater than or equal to 1"));
  r.plaintext = SecretBytes(4096);
  CHECK(f.svc().Encrypt(r).has_value());
  r.encryption_context = {{"", "v"}};
  CHECK(ErrorOf(f.svc().Encrypt(r)).code() == StatusCode::kInvalidArgument);
  r.encryption_context = {{"k", std::string(8192, 'v')}};
  CHECK(ErrorOf(f.svc().Encrypt(r)).code() == StatusCode::kInvalidArgument);
  r.encryption_context = {};
  r.encryption_algorithm = EncryptionAlgorithm::kRsaesOaepSha256;
  CHECK(ErrorOf(f.svc().Encrypt(r)) ==
        InvalidArgumentError("Algorithm RSAES_OAEP_SHA_256 is incompatible with key spec "
                             "SYMMETRIC_DEFAULT.",
                             Reason::kInvalidKeyUsage));

  KeyMetadata signer = f.Create(KeySpec::kEccNistP256);
  EncryptRequest s;
  s.key_id = signer.key_id;
  s.plaintext = Secret("x");
  CHECK(ErrorOf(f.svc().Encrypt(s)) ==
        InvalidArgumentError(signer.arn + " key usage is SIGN_VERIFY which is not valid for Encrypt.",
                             Reason::kInvalidKeyUsage));
}

TEST_CASE(KMS_SUITE_PREFIX "DryRun answers DryRunOperation only for valid requests and does no work", KMS_SUITE_TAG) {
  ServiceFixture f;
  KeyMetadata m = f.Create();
  EncryptRequest r;
  r.key_id = m.key_id;
  r.plaintext = Secret("x");
  r.dry_run = true;
  CHECK(ErrorOf(f.svc().Encrypt(r)) ==
        Status(StatusCode::kFailedPrecondition,
               "The request would have succeeded, but the DryRun option is set.",
               Reason::kDryRunOperation));
  r.plaintext = SecretBytes();
  CHECK(ErrorOf(f.svc().Encrypt(r)).reason() == Reason::kNone);  // validation comes first
  GenerateDataKeyRequest g;
  g.key_id = m.key_id;
  g.number_of_bytes = 32;
  g.dry_run = true;
  CHECK(ErrorOf(f.svc().GenerateDataKey(g)).reason() == Reason::kDryRunOperation);
  Bytes blob = MustEncrypt(f.svc(), m.key_id, "y").ciphertext_blob;
  DecryptRequest d;
  d.ciphertext_blob = blob;
  d.dry_run = true;
  CHECK(ErrorOf(f.svc().Decrypt(d)).reason() == Reason::kDryRunOperation);
  d.ciphertext_blob[40] ^= 1;
  ExpectInvalidCiphertext(ErrorOf(f.svc().Decrypt(d)));
}

TEST_CASE(KMS_SUITE_PREFIX "ReEncrypt moves a ciphertext to another key and context", KMS_SUITE_TAG) {
  ServiceFixture f;
  KeyMetadata a = f.Create();
  KeyMetadata b = f.Create();
  Bytes blob = MustEncrypt(f.svc(), a.key_id, "move me", {{"from", "a"}}).ciphertext_blob;
  ReEncryptRequest r;
  r.ciphertext_blob = blob;
  r.source_encryption_context = {{"from", "a"}};
  r.destination_key_id = b.arn;
  r.destination_encryption_context = {{"to", "b"}};
  auto out = f.svc().ReEncrypt(r);
  REQUIRE(out.has_value());
  CHECK(out->source_key_id == a.arn);
  CHECK(out->key_id == b.arn);
  auto d = DoDecrypt(f.svc(), out->ciphertext_blob, {{"to", "b"}});
  REQUIRE(d.has_value());
  CHECK(Text(d->plaintext) == "move me");
  CHECK(d->key_id == b.arn);
  // Wrong source context: the one InvalidCiphertext.
  r.source_encryption_context = {};
  ExpectInvalidCiphertext(ErrorOf(f.svc().ReEncrypt(r)));
  // Wrong source key id: IncorrectKey.
  r.source_encryption_context = {{"from", "a"}};
  r.source_key_id = b.key_id;
  CHECK(ErrorOf(f.svc().ReEncrypt(r)).reason() == Reason::kIncorrectKey);
  // A disabled destination.
  r.source_key_id.reset();
  REQUIRE(f.svc().DisableKey({b.key_id}).ok());
  CHECK(ErrorOf(f.svc().ReEncrypt(r)) ==
        FailedPreconditionError(b.arn + " is disabled.", Reason::kKeyDisabled));
  // A signing destination.
  KeyMetadata signer = f.Create(KeySpec::kEccNistP256);
  r.destination_key_id = signer.key_id;
  CHECK(ErrorOf(f.svc().ReEncrypt(r)) ==
        InvalidArgumentError(signer.arn + " key usage is SIGN_VERIFY which is not valid for ReEncrypt.",
                             Reason::kInvalidKeyUsage));
}

// ---------------------------------------------------------------------------------------------------
TEST_CASE(KMS_SUITE_PREFIX "GenerateDataKey and WithoutPlaintext give Decrypt-able blobs", KMS_SUITE_TAG) {
  ServiceFixture f;
  KeyMetadata m = f.Create();
  GenerateDataKeyRequest r;
  r.key_id = "alias/none";
  r.key_spec = DataKeySpec::kAes256;
  CHECK(ErrorOf(f.svc().GenerateDataKey(r)).code() == StatusCode::kNotFound);
  r.key_id = m.key_id;
  r.encryption_context = {{"bucket", "b1"}};
  auto dk = f.svc().GenerateDataKey(r);
  REQUIRE(dk.has_value());
  CHECK(dk->plaintext.size() == 32);
  CHECK(dk->ciphertext_blob.size() < 190);
  CHECK(dk->key_id == m.arn);
  auto d = DoDecrypt(f.svc(), dk->ciphertext_blob, r.encryption_context);
  REQUIRE(d.has_value());
  CHECK(d->plaintext == dk->plaintext);

  r.key_spec = DataKeySpec::kAes128;
  CHECK(f.svc().GenerateDataKey(r)->plaintext.size() == 16);
  r.key_spec.reset();
  r.number_of_bytes = 1024;
  CHECK(f.svc().GenerateDataKey(r)->plaintext.size() == 1024);
  r.number_of_bytes = 1;
  auto wp = f.svc().GenerateDataKeyWithoutPlaintext(r);
  REQUIRE(wp.has_value());
  auto wd = DoDecrypt(f.svc(), wp->ciphertext_blob, r.encryption_context);
  REQUIRE(wd.has_value());
  CHECK(wd->plaintext.size() == 1);

  r.number_of_bytes = 0;
  CHECK(ErrorOf(f.svc().GenerateDataKey(r)) ==
        InvalidArgumentError("1 validation error detected: Value '0' at 'numberOfBytes' failed to "
                             "satisfy constraint: Member must have value greater than or equal to 1"));
  r.number_of_bytes = 1025;
  CHECK(ErrorOf(f.svc().GenerateDataKeyWithoutPlaintext(r)) ==
        InvalidArgumentError("1 validation error detected: Value '1025' at 'numberOfBytes' failed to "
                             "satisfy constraint: Member must have value less than or equal to 1024"));
  r.key_spec = DataKeySpec::kAes256;
  r.number_of_bytes = 32;
  CHECK(ErrorOf(f.svc().GenerateDataKey(r)) ==
        InvalidArgumentError("Please specify either number of bytes or key spec."));
  r.key_spec.reset();
  r.number_of_bytes.reset();
  CHECK(ErrorOf(f.svc().GenerateDataKey(r)) ==
        InvalidArgumentError("Please specify either number of bytes or key spec."));

  KeyMetadata rsa = f.Create(KeySpec::kRsa2048, KeyUsage::kEncryptDecrypt);
  r.key_id = rsa.key_id;
  r.number_of_bytes = 32;
  CHECK(ErrorOf(f.svc().GenerateDataKey(r)) ==
        InvalidArgumentError(rsa.arn +
                                 " key usage is ENCRYPT_DECRYPT which is not valid for GenerateDataKey.",
                             Reason::kInvalidKeyUsage));
}

TEST_CASE(KMS_SUITE_PREFIX "GenerateDataKeyPair returns a pair whose private key Decrypt recovers", KMS_SUITE_TAG) {
  ServiceFixture f;
  KeyMetadata m = f.Create();
  for (KeySpec spec : {KeySpec::kEccNistP256, KeySpec::kEccNistP384, KeySpec::kEccNistP521,
                       KeySpec::kEccSecgP256k1, KeySpec::kRsa2048}) {
    INFO(KeySpecName(spec));
    GenerateDataKeyPairRequest r;
    r.key_id = m.key_id;
    r.key_pair_spec = spec;
    r.encryption_context = {{"pair", "1"}};
    auto out = f.svc().GenerateDataKeyPair(r);
    REQUIRE(out.has_value());
    CHECK(out->key_pair_spec == spec);
    CHECK_FALSE(out->public_key.empty());
    auto d = DoDecrypt(f.svc(), out->private_key_ciphertext_blob, r.encryption_context);
    REQUIRE(d.has_value());
    CHECK(d->plaintext == out->private_key_plaintext);
    auto wp = f.svc().GenerateDataKeyPairWithoutPlaintext(r);
    REQUIRE(wp.has_value());
    CHECK(DoDecrypt(f.svc(), wp->private_key_ciphertext_blob, r.encryption_context).has_value());
  }
  GenerateDataKeyPairRequest bad;
  bad.key_id = m.key_id;
  bad.key_pair_spec = KeySpec::kHmac256;
  CHECK(ErrorOf(f.svc().GenerateDataKeyPair(bad)).code() == StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------------
TEST_CASE(KMS_SUITE_PREFIX "Sign and Verify with every signing key spec and algorithm, RAW and DIGEST", KMS_SUITE_TAG) {
  ServiceFixture f;
  for (KeySpec spec : {KeySpec::kRsa2048, KeySpec::kRsa3072, KeySpec::kRsa4096, KeySpec::kEccNistP256,
                       KeySpec::kEccNistP384, KeySpec::kEccNistP521, KeySpec::kEccSecgP256k1}) {
    KeyMetadata m = f.Create(spec, KeyUsage::kSignVerify);
    for (SigningAlgorithm alg : m.signing_algorithms) {
      INFO(std::string(KeySpecName(spec)) + " " + std::string(SigningAlgorithmName(alg)));
      SignRequest s;
      s.key_id = m.key_id;
      s.message = Secret("message to sign");
      s.signing_algorithm = alg;
      auto sig = f.svc().Sign(s);
      REQUIRE(sig.has_value());
      CHECK(sig->key_id == m.arn);
      VerifyRequest v;
      v.key_id = m.arn;
      v.message = Secret("message to sign");
      v.signature = sig->signature;
      v.signing_algorithm = alg;
      auto ok = f.svc().Verify(v);
      REQUIRE(ok.has_value());
      CHECK(ok->signature_valid);
      // DIGEST of the same message verifies the RAW signature.
      const std::size_t n = hal::DigestSize(hal::DigestOf(ToHalSignature(alg)));
      VerifyRequest vd;
      vd.key_id = m.key_id;
      vd.message_type = MessageType::kDigest;
      vd.signing_algorithm = alg;
      vd.signature = sig->signature;
      vd.message = SecretBytes(n);
      // A wrong digest: the empty KMSInvalidSignature.
      CHECK(ErrorOf(f.svc().Verify(vd)) == InvalidArgumentError("", Reason::kInvalidSignature));
      SignRequest sd;
      sd.key_id = m.key_id;
      sd.message_type = MessageType::kDigest;
      sd.signing_algorithm = alg;
      sd.message = SecretBytes(n);
      auto dsig = f.svc().Sign(sd);
      REQUIRE(dsig.has_value());
      vd.signature = dsig->signature;
      CHECK(f.svc().Verify(vd).has_value());
      sd.message = SecretBytes(n + 1);
      CHECK(ErrorOf(f.svc().Sign(sd)) ==
            InvalidArgumentError("Digest is invalid length for algorithm " +
                                 std::string(SigningAlgorithmName(alg)) + "."));
    }
  }
}

TEST_CASE(KMS_SUITE_PREFIX "Sign and Verify errors", KMS_SUITE_TAG) {
  ServiceFixture f;
  KeyMetadata p256 = f.Create(KeySpec::kEccNistP256);
  SignRequest s;
  s.key_id = p256.key_id;
  s.message = Secret("m");
  s.signing_algorithm = SigningAlgorithm::kEcdsaSha384;
  CHECK(ErrorOf(f.svc().Sign(s)) ==
        InvalidArgumentError("Algorithm ECDSA_SHA_384 is incompatible with key spec ECC_NIST_P256.",
                             Reason::kInvalidKeyUsage));
  s.signing_algorithm = SigningAlgorithm::kEcdsaSha256;
  s.message = SecretBytes(4097);
  CHECK(ErrorOf(f.svc().Sign(s)).code() == StatusCode::kInvalidArgument);
  KeyMetadata aes = f.Create();
  s.key_id = aes.key_id;
  s.message = Secret("m");
  CHECK(ErrorOf(f.svc().Sign(s)) ==
        InvalidArgumentError(aes.arn + " key usage is ENCRYPT_DECRYPT which is not valid for Sign.",
                             Reason::kInvalidKeyUsage));
  VerifyRequest v;
  v.key_id = p256.key_id;
  v.message = Secret("m");
  v.signature = Bytes{0x30, 0x00};  // malformed DER
  CHECK(ErrorOf(f.svc().Verify(v)) == InvalidArgumentError("", Reason::kInvalidSignature));
  v.signature = {};
  CHECK(ErrorOf(f.svc().Verify(v)).reason() == Reason::kNone);
}

TEST_CASE(KMS_SUITE_PREFIX "RSA encryption keys: OAEP Encrypt and Decrypt with KeyId", KMS_SUITE_TAG) {
  ServiceFixture f;
  KeyMetadata rsa = f.Create(KeySpec::kRsa2048, KeyUsage::kEncryptDecrypt);
  for (EncryptionAlgorithm alg :
       {EncryptionAlgorithm::kRsaesOaepSha1, EncryptionAlgorithm::kRsaesOaepSha256}) {
    INFO(EncryptionAlgorithmName(alg));
    EncryptRequest e;
    e.key_id = rsa.key_id;
    e.plaintext = Secret("rsa secret");
    e.encryption_algorithm = alg;
    if (!f.Hsm().capabilities().oaep_hashes.contains(*OaepHashOf(alg))) {
      // SoftHSM2 offers OAEP with SHA-1 only (docs/softhsm2.md "Mechanisms"): the key does not
      // advertise the algorithm, so it is refused as incompatible, as SYMMETRIC_DEFAULT is below.
      CHECK(std::ranges::find(rsa.encryption_algorithms, alg) == rsa.encryption_algorithms.end());
      CHECK(ErrorOf(f.svc().Encrypt(e)) ==
            InvalidArgumentError("Algorithm " + std::string(EncryptionAlgorithmName(alg)) +
                                     " is incompatible with key spec RSA_2048.",
                                 Reason::kInvalidKeyUsage));
      continue;
    }
    CHECK(std::ranges::find(rsa.encryption_algorithms, alg) != rsa.encryption_algorithms.end());
    auto ct = f.svc().Encrypt(e);
    REQUIRE(ct.has_value());
    CHECK(ct->ciphertext_blob.size() == 256);
    DecryptRequest d;
    d.ciphertext_blob = ct->ciphertext_blob;
    d.key_id = rsa.arn;
    d.encryption_algorithm = alg;
    auto pt = f.svc().Decrypt(d);
    REQUIRE(pt.has_value());
    CHECK(Text(pt->plaintext) == "rsa secret");
    CHECK(pt->encryption_algorithm == alg);
    // Without KeyId the blob is not one of ours.
    d.key_id.reset();
    ExpectInvalidCiphertext(ErrorOf(f.svc().Decrypt(d)));
    // Tampered.
    d.key_id = rsa.key_id;
    d.ciphertext_blob[10] ^= 1;
    ExpectInvalidCiphertext(ErrorOf(f.svc().Decrypt(d)));
    // Too long for the key.
    e.plaintext = SecretBytes(MaxRsaOaepPlaintext(KeySpec::kRsa2048, alg) + 1);
    CHECK(ErrorOf(f.svc().Encrypt(e)) ==
          InvalidArgumentError("Algorithm " + std::string(EncryptionAlgorithmName(alg)) +
                               " and key spec RSA_2048 cannot encrypt data larger than " +
                               std::to_string(MaxRsaOaepPlaintext(KeySpec::kRsa2048, alg)) +
                               " bytes."));
  }
  EncryptRequest sym;
  sym.key_id = rsa.key_id;
  sym.plaintext = Secret("x");
  CHECK(ErrorOf(f.svc().Encrypt(sym)) ==
        InvalidArgumentError("Algorithm SYMMETRIC_DEFAULT is incompatible with key spec RSA_2048.",
                             Reason::kInvalidKeyUsage));
  sym.encryption_algorithm = EncryptionAlgorithm::kRsaesOaepSha1;
  sym.encryption_context = {{"a", "b"}};
  CHECK(ErrorOf(f.svc().Encrypt(sym)) ==
        InvalidArgumentError("EncryptionContext is not supported with asymmetric KMS keys."));
}

TEST_CASE(KMS_SUITE_PREFIX "GetPublicKey for asymmetric keys only", KMS_SUITE_TAG) {
  ServiceFixture f;
  KeyMetadata ec = f.Create(KeySpec::kEccNistP384);
  auto pk = f.svc().GetPublicKey({ec.key_id});
  REQUIRE(pk.has_value());
  CHECK(pk->key_id == ec.arn);
  CHECK(pk->key_spec == KeySpec::kEccNistP384);
  CHECK(pk->key_usage == KeyUsage::kSignVerify);
  CHECK(pk->signing_algorithms == std::vector{SigningAlgorithm::kEcdsaSha384});
  CHECK(pk->public_key.size() > 90);
  CHECK(pk->public_key[0] == 0x30);
  KeyMetadata aes = f.Create();
  CHECK(ErrorOf(f.svc().GetPublicKey({aes.key_id})) ==
        Status(StatusCode::kUnimplemented, aes.arn + " key spec SYMMETRIC_DEFAULT has no public key.",
               Reason::kUnsupportedOperation));
  KeyMetadata rsa = f.Create(KeySpec::kRsa3072, KeyUsage::kEncryptDecrypt);
  auto rpk = f.svc().GetPublicKey({rsa.key_id});
  REQUIRE(rpk.has_value());
  CHECK(rpk->encryption_algorithms ==
        PerformableEncryptionAlgorithms(f.Hsm(), KeySpec::kRsa3072, KeyUsage::kEncryptDecrypt));
  CHECK_FALSE(rpk->encryption_algorithms.empty());
}

#if !defined(KMS_TEST_HSM_SOFTHSM)
TEST_CASE(KMS_SUITE_PREFIX "an RSA key advertises and accepts only the OAEP hashes the HSM performs",
          KMS_SUITE_TAG) {
  kms::testing::FakeHsmOptions options;
  options.capabilities = kms::testing::SoftHsm2LikeCapabilities();
  ServiceFixture f({}, options);
  KeyMetadata rsa = f.Create(KeySpec::kRsa2048, KeyUsage::kEncryptDecrypt);
  const std::vector<EncryptionAlgorithm> sha1_only{EncryptionAlgorithm::kRsaesOaepSha1};
  CHECK(rsa.encryption_algorithms == sha1_only);
  auto described = f.svc().DescribeKey({rsa.key_id});
  REQUIRE(described.has_value());
  CHECK(described->key_metadata.encryption_algorithms == sha1_only);
  auto pk = f.svc().GetPublicKey({rsa.key_id});
  REQUIRE(pk.has_value());
  CHECK(pk->encryption_algorithms == sha1_only);

  const Status incompatible = InvalidArgumentError(
      "Algorithm RSAES_OAEP_SHA_256 is incompatible with key spec RSA_2048.",
      Reason::kInvalidKeyUsage);
  EncryptRequest e;
  e.key_id = rsa.key_id;
  e.plaintext = Secret("rsa secret");
  e.encryption_algorithm = EncryptionAlgorithm::kRsaesOaepSha256;
  CHECK(ErrorOf(f.svc().Encrypt(e)) == incompatible);
  // The refusal comes before the DryRun answer, as for any incompatible algorithm.
  e.dry_run = true;
  CHECK(ErrorOf(f.svc().Encrypt(e)) == incompatible);
  e.dry_run = false;

  // SHA-1 still works, and its ciphertext cannot be decrypted naming SHA-256.
  e.encryption_algorithm = EncryptionAlgorithm::kRsaesOaepSha1;
  auto ct = f.svc().Encrypt(e);
  REQUIRE(ct.has_value());
  DecryptRequest d;
  d.ciphertext_blob = ct->ciphertext_blob;
  d.key_id = rsa.key_id;
  d.encryption_algorithm = EncryptionAlgorithm::kRsaesOaepSha1;
  auto pt = f.svc().Decrypt(d);
  REQUIRE(pt.has_value());
  CHECK(Text(pt->plaintext) == "rsa secret");
  d.encryption_algorithm = EncryptionAlgorithm::kRsaesOaepSha256;
  CHECK(ErrorOf(f.svc().Decrypt(d)) == incompatible);

  // ReEncrypt applies the same rule to its destination.
  KeyMetadata sym = f.Create();
  ReEncryptRequest re;
  re.ciphertext_blob = MustEncrypt(f.svc(), sym.key_id, "moved").ciphertext_blob;
  re.destination_key_id = rsa.key_id;
  re.destination_encryption_algorithm = EncryptionAlgorithm::kRsaesOaepSha256;
  CHECK(ErrorOf(f.svc().ReEncrypt(re)) == incompatible);
}

TEST_CASE(KMS_SUITE_PREFIX "an RSA key on an HSM with OAEP SHA-256 advertises and performs both",
          KMS_SUITE_TAG) {
  ServiceFixture f;  // the fake with full capabilities
  KeyMetadata rsa = f.Create(KeySpec::kRsa2048, KeyUsage::kEncryptDecrypt);
  const std::vector<EncryptionAlgorithm> both{EncryptionAlgorithm::kRsaesOaepSha1,
                                              EncryptionAlgorithm::kRsaesOaepSha256};
  CHECK(rsa.encryption_algorithms == both);
  auto described = f.svc().DescribeKey({rsa.key_id});
  REQUIRE(described.has_value());
  CHECK(described->key_metadata.encryption_algorithms == both);
  auto pk = f.svc().GetPublicKey({rsa.key_id});
  REQUIRE(pk.has_value());
  CHECK(pk->encryption_algorithms == both);
  for (EncryptionAlgorithm alg : both) {
    INFO(EncryptionAlgorithmName(alg));
    EncryptRequest e;
    e.key_id = rsa.key_id;
    e.plaintext = Secret("rsa secret");
    e.encryption_algorithm = alg;
    auto ct = f.svc().Encrypt(e);
    REQUIRE(ct.has_value());
    CHECK(ct->encryption_algorithm == alg);
    DecryptRequest d;
    d.ciphertext_blob = ct->ciphertext_blob;
    d.key_id = rsa.key_id;
    d.encryption_algorithm = alg;
    auto pt = f.svc().Decrypt(d);
    REQUIRE(pt.has_value());
    CHECK(Text(pt->plaintext) == "rsa secret");
    CHECK(pt->encryption_algorithm == alg);
  }
}
#endif

TEST_CASE(KMS_SUITE_PREFIX "GenerateMac and VerifyMac with every HMAC spec", KMS_SUITE_TAG) {
  ServiceFixture f;
  for (KeySpec spec : {KeySpec::kHmac224, KeySpec::kHmac256, KeySpec::kHmac384, KeySpec::kHmac512}) {
    KeyMetadata m = f.Create(spec);
    MacAlgorithm alg = *MacAlgorithmOf(spec);
    GenerateMacRequest g;
    g.key_id = m.key_id;
    g.message = Secret("mac me");
    g.mac_algorithm = alg;
    auto mac = f.svc().GenerateMac(g);
    REQUIRE(mac.has_value());
    CHECK(mac->mac.size() == hal::DigestSize(MacHashOf(alg)));
    VerifyMacRequest v;
    v.key_id = m.arn;
    v.message = Secret("mac me");
    v.mac_algorithm = alg;
    v.mac = mac->mac;
    auto ok = f.svc().VerifyMac(v);
    REQUIRE(ok.has_value());
    CHECK(ok->mac_valid);
    v.mac[0] ^= 1;
    CHECK(ErrorOf(f.svc().VerifyMac(v)) == InvalidArgumentError("", Reason::kInvalidMac));
    v.mac.pop_back();
    CHECK(ErrorOf(f.svc().VerifyMac(v)) == InvalidArgumentError("", Reason::kInvalidMac));
  }
  KeyMetadata h224 = f.Create(KeySpec::kHmac224);
  GenerateMacRequest g;
  g.key_id = h224.key_id;
  g.message = Secret("m");
  g.mac_algorithm = MacAlgorithm::kHmacSha256;
  CHECK(ErrorOf(f.svc().GenerateMac(g)) ==
        InvalidArgumentError("Algorithm HMAC_SHA_256 is incompatible with key spec HMAC_224.",
                             Reason::kInvalidKeyUsage));
  KeyMetadata aes = f.Create();
  g.key_id = aes.key_id;
  CHECK(ErrorOf(f.svc().GenerateMac(g)) ==
        InvalidArgumentError(aes.arn +
                                 " key usage is ENCRYPT_DECRYPT which is not valid for GenerateMac.",
                             Reason::kInvalidKeyUsage));
}

TEST_CASE(KMS_SUITE_PREFIX "GenerateRandom", KMS_SUITE_TAG) {
  ServiceFixture f;
  CHECK(f.svc().GenerateRandom({32})->plaintext.size() == 32);
  CHECK(f.svc().GenerateRandom({1024})->plaintext.size() == 1024);
  CHECK(ErrorOf(f.svc().GenerateRandom({})) == InvalidArgumentError("NumberOfBytes is required."));
  CHECK(ErrorOf(f.svc().GenerateRandom({0})) ==
        InvalidArgumentError("1 validation error detected: Value '0' at 'numberOfBytes' failed to "
                             "satisfy constraint: Member must have value greater than or equal to 1"));
  CHECK(ErrorOf(f.svc().GenerateRandom({1025})).code() == StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------------
TEST_CASE(KMS_SUITE_PREFIX "aliases: create, update, delete, list", KMS_SUITE_TAG) {
  ServiceFixture f;
  KeyMetadata a = f.Create();
  KeyMetadata b = f.Create();
  REQUIRE(f.svc().CreateAlias({"alias/one", a.key_id}).ok());
  REQUIRE(f.svc().CreateAlias({"alias/two", a.arn}).ok());
  REQUIRE(f.svc().CreateAlias({"alias/b/x_y-z", b.key_id}).ok());
  CHECK(ErrorOf(f.svc().CreateAlias({"alias/one", b.key_id})) ==
        AlreadyExistsError("An alias with the name arn:aws:kms:us-east-1:111122223333:alias/one "
                           "already exists"));
  auto all = f.svc().ListAliases({});
  REQUIRE(all.has_value());
  REQUIRE(all->aliases.size() == 3);
  CHECK(all->aliases[0].alias_name == "alias/b/x_y-z");
  CHECK(all->aliases[0].alias_arn == "arn:aws:kms:us-east-1:111122223333:alias/b/x_y-z");
  CHECK(all->aliases[0].target_key_id == b.key_id);
  auto of_a = f.svc().ListAliases({a.arn, 1, {}});
  REQUIRE(of_a.has_value());
  CHECK(of_a->aliases.size() == 1);
  CHECK(of_a->truncated);
  auto next = f.svc().ListAliases({a.key_id, 1, of_a->next_marker});
  REQUIRE(next.has_value());
  CHECK(next->aliases.size() == 1);
  CHECK(next->aliases[0].alias_name == "alias/two");
  CHECK_FALSE(next->truncated);
  CHECK(ErrorOf(f.svc().ListAliases({{}, 101, {}})).code() == StatusCode::kInvalidArgument);

  f.clock.Advance(1000);
  REQUIRE(f.svc().UpdateAlias({"alias/one", b.key_id}).ok());
  CHECK(f.svc().DescribeKey({"alias/one"})->key_metadata.key_id == b.key_id);
  auto listed = f.svc().ListAliases({b.key_id, {}, {}});
  REQUIRE(listed.has_value());
  bool found = false;
  for (const auto& e : listed->aliases) {
    if (e.alias_name == "alias/one") {
      found = true;
      CHECK(e.last_updated_date_ms == e.creation_date_ms + 1000);
    }
  }
  CHECK(found);
  CHECK(ErrorOf(f.svc().UpdateAlias({"alias/nope", b.key_id})) ==
        NotFoundError("Alias arn:aws:kms:us-east-1:111122223333:alias/nope is not found."));
  KeyMetadata signer = f.Create(KeySpec::kEccNistP256);
  CHECK(ErrorOf(f.svc().UpdateAlias({"alias/one", signer.key_id})).code() ==
        StatusCode::kInvalidArgument);

  REQUIRE(f.svc().DeleteAlias({"alias/one"}).ok());
  CHECK(ErrorOf(f.svc().DeleteAlias({"alias/one"})) ==
        NotFoundError("Alias arn:aws:kms:us-east-1:111122223333:alias/one is not found."));
  CHECK(ErrorOf(f.svc().DescribeKey({"alias/one"})).code() == StatusCode::kNotFound);
}

TEST_CASE(KMS_SUITE_PREFIX "alias name and target rules", KMS_SUITE_TAG) {
  ServiceFixture f;
  KeyMetadata a = f.Create();
  const std::string prefix_msg =
      "Alias must start with the prefix \"alias/\". Please see "
      "https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html";
  CHECK(ErrorOf(f.svc().CreateAlias({"myalias", a.key_id})) == InvalidArgumentError(prefix_msg));
  CHECK(ErrorOf(f.svc().CreateAlias({"alias/", a.key_id})) == InvalidArgumentError(prefix_msg));
  CHECK(ErrorOf(f.svc().CreateAlias({"alias/a b", a.key_id})) ==
        InvalidArgumentError("1 validation error detected: Value 'alias/a b' at 'aliasName' failed "
                             "to satisfy constraint: Member must satisfy regular expression pattern: "
                             "^[a-zA-Z0-9:/_-]+$"));
  CHECK(ErrorOf(f.svc().CreateAlias({"alias/" + std::string(251, 'x'), a.key_id})).code() ==
        StatusCode::kInvalidArgument);
  CHECK(ErrorOf(f.svc().CreateAlias({"alias/aws/ebs", a.key_id})).code() ==
        StatusCode::kInvalidArgument);
  REQUIRE(f.svc().CreateAlias({"alias/x", a.key_id}).ok());
  CHECK(ErrorOf(f.svc().CreateAlias({"alias/y", "alias/x"})) ==
        InvalidArgumentError("Aliases must refer to keys. Not aliases"));
  CHECK(ErrorOf(f.svc().CreateAlias({"alias/y", "0b1c2d3e-4f50-4a6b-8c7d-8e9fa0b1c2d3"})).code() ==
        StatusCode::kNotFound);
}

TEST_CASE(KMS_SUITE_PREFIX "a key holds at most 50 aliases", KMS_SUITE_TAG) {
  ServiceFixture f;
  KeyMetadata a = f.Create();
  for (int i = 0; i < 50; ++i) REQUIRE(f.svc().CreateAlias({"alias/n" + std::to_string(i), a.key_id}).ok());
  Status s = ErrorOf(f.svc().CreateAlias({"alias/n50", a.key_id}));
  CHECK(s.code() == StatusCode::kResourceExhausted);
  CHECK(s.reason() == Reason::kLimitExceeded);
}

TEST_CASE(KMS_SUITE_PREFIX "tags: set, overwrite, list in pages, remove, and their limits", KMS_SUITE_TAG) {
  ServiceFixture f;
  KeyMetadata m = f.Create();
  REQUIRE(f.svc().TagResource({m.key_id, {{"b", "1"}, {"a", "2"}, {"c", "3"}}}).ok());
  REQUIRE(f.svc().TagResource({m.arn, {{"b", "new"}}}).ok());
  auto page = f.svc().ListResourceTags({m.key_id, 2, {}});
  REQUIRE(page.has_value());
  CHECK(page->tags == std::vector<Tag>{{"a", "2"}, {"b", "new"}});
  CHECK(page->truncated);
  auto rest = f.svc().ListResourceTags({m.key_id, 2, page->next_marker});
  REQUIRE(rest.has_value());
  CHECK(rest->tags == std::vector<Tag>{{"c", "3"}});
  CHECK_FALSE(rest->truncated);
  REQUIRE(f.svc().UntagResource({m.key_id, {"a", "absent"}}).ok());
  CHECK(f.svc().ListResourceTags({m.key_id, {}, {}})->tags.size() == 2);

  CHECK(ErrorOf(f.svc().TagResource({m.key_id, {{"x", "1"}, {"x", "2"}}})) ==
        InvalidArgumentError("Duplicate tag keys", Reason::kTag));
  CHECK(ErrorOf(f.svc().TagResource({m.key_id, {{"aws:cost", "1"}}})) ==
        InvalidArgumentError("Tags beginning with aws: are reserved", Reason::kTag));
  CHECK(ErrorOf(f.svc().UntagResource({m.key_id, {"aws:cost"}})) ==
        InvalidArgumentError("Tags beginning with aws: are reserved", Reason::kTag));
  CHECK(ErrorOf(f.svc().TagResource({m.key_id, {{std::string(129, 'k'), "1"}}})) ==
        InvalidArgumentError("1 validation error detected: Value at 'tags.1.member.tagKey' failed to "
                             "satisfy constraint: Member must have length less than or equal to 128"));
  CHECK(ErrorOf(f.svc().TagResource({m.key_id, {{"k", std::string(257, 'v')}}})).code() ==
        StatusCode::kInvalidArgument);
  CHECK(ErrorOf(f.svc().TagResource({m.key_id, {{"", "v"}}})).code() == StatusCode::kInvalidArgument);
  std::vector<Tag> many;
  for (int i = 0; i < 48; ++i) many.push_back({"t" + std::to_string(i), "v"});
  REQUIRE(f.svc().TagResource({m.key_id, many}).ok());  // 2 + 48 = 50
  CHECK(ErrorOf(f.svc().TagResource({m.key_id, {{"one-more", "v"}}})) ==
        InvalidArgumentError("Too many tags", Reason::kTag));
  CHECK(f.svc().TagResource({m.key_id, {{"t0", "overwrite is fine"}}}).ok());
  CHECK(ErrorOf(f.svc().ListResourceTags({m.key_id, 51, {}})).code() == StatusCode::kInvalidArgument);
  CHECK(ErrorOf(f.svc().ListResourceTags({m.key_id, {}, std::string("m1.zz")})).reason() ==
        Reason::kInvalidMarker);
}

// ---------------------------------------------------------------------------------------------------
TEST_CASE(KMS_SUITE_PREFIX "Enabled <-> Disabled, and what a disabled key refuses", KMS_SUITE_TAG) {
  ServiceFixture f;
  KeyMetadata m = f.Create();
  KeyMetadata signer = f.Create(KeySpec::kEccNistP256);
  KeyMetadata mac = f.Create(KeySpec::kHmac256);
  Bytes blob = MustEncrypt(f.svc(), m.key_id, "before").ciphertext_blob;
  REQUIRE(f.svc().DisableKey({m.key_id}).ok());
  REQUIRE(f.svc().DisableKey({m.key_id}).ok());  // idempotent
  REQUIRE(f.svc().DisableKey({signer.key_id}).ok());
  REQUIRE(f.svc().DisableKey({mac.key_id}).ok());
  auto d = f.svc().DescribeKey({m.key_id});
  CHECK(d->key_metadata.key_state == KeyState::kDisabled);
  CHECK_FALSE(d->key_metadata.enabled);

  const Status disabled = FailedPreconditionError(m.arn + " is disabled.", Reason::kKeyDisabled);
  EncryptRequest e;
  e.key_id = m.key_id;
  e.plaintext = Secret("x");
  CHECK(ErrorOf(f.svc().Encrypt(e)) == disabled);
  CHECK(ErrorOf(DoDecrypt(f.svc(), blob)) == disabled);
  GenerateDataKeyRequest g;
  g.key_id = m.key_id;
  g.number_of_bytes = 16;
  CHECK(ErrorOf(f.svc().GenerateDataKey(g)) == disabled);
  CHECK(ErrorOf(f.svc().GenerateDataKeyWithoutPlaintext(g)) == disabled);
  GenerateDataKeyPairRequest p;
  p.key_id = m.key_id;
  CHECK(ErrorOf(f.svc().GenerateDataKeyPair(p)) == disabled);
  CHECK(ErrorOf(f.svc().GenerateDataKeyPairWithoutPlaintext(p)) == disabled);
  ReEncryptRequest re;
  re.ciphertext_blob = blob;
  re.destination_key_id = f.Create().key_id;
  CHECK(ErrorOf(f.svc().ReEncrypt(re)) == disabled);
  CHECK(ErrorOf(f.svc().EnableKeyRotation({m.key_id, {}})) == disabled);
  CHECK(ErrorOf(f.svc().DisableKeyRotation({m.key_id})) == disabled);
  CHECK(ErrorOf(f.svc().RotateKeyOnDemand({m.key_id})) == disabled);
  SignRequest s;
  s.key_id = signer.key_id;
  s.message = Secret("m");
  CHECK(ErrorOf(f.svc().Sign(s)) ==
        FailedPreconditionError(signer.arn + " is disabled.", Reason::kKeyDisabled));
  VerifyRequest v;
  v.key_id = signer.key_id;
  v.message = Secret("m");
  v.signature = Bytes{1};
  CHECK(ErrorOf(f.svc().Verify(v)).reason() == Reason::kKeyDisabled);
  CHECK(ErrorOf(f.svc().GetPublicKey({signer.key_id})).reason() == Reason::kKeyDisabled);
  GenerateMacRequest gm;
  gm.key_id = mac.key_id;
  gm.message = Secret("m");
  CHECK(ErrorOf(f.svc().GenerateMac(gm)).reason() == Reason::kKeyDisabled);
  VerifyMacRequest vm;
  vm.key_id = mac.key_id;
  vm.message = Secret("m");
  vm.mac = Bytes{1};
  CHECK(ErrorOf(f.svc().VerifyMac(vm)).reason() == Reason::kKeyDisabled);
  // Metadata operations still work (docs/aws-kms-protocol.md "Key states").
  CHECK(f.svc().UpdateKeyDescription({m.key_id, "still editable"}).ok());
  CHECK(f.svc().TagResource({m.key_id, {{"t", "v"}}}).ok());
  CHECK(f.svc().UntagResource({m.key_id, {"t"}}).ok());
  CHECK(f.svc().CreateAlias({"alias/disabled", m.key_id}).ok());
  CHECK(f.svc().GetKeyRotationStatus({m.key_id}).has_value());
  CHECK(f.svc().ListKeyRotations({m.key_id, {}, {}}).has_value());

  REQUIRE(f.svc().EnableKey({m.key_id}).ok());
  REQUIRE(f.svc().EnableKey({m.key_id}).ok());
  auto back = DoDecrypt(f.svc(), blob);
  REQUIRE(back.has_value());
  CHECK(Text(back->plaintext) == "before");
  CHECK(f.svc().DescribeKey({m.key_id})->key_metadata.description == "still editable");
}

TEST_CASE(KMS_SUITE_PREFIX "PendingDeletion: schedule, what it refuses, cancel back to Disabled", KMS_SUITE_TAG) {
  ServiceFixture f;
  KeyMetadata m = f.Create();
  REQUIRE(f.svc().CreateAlias({"alias/doomed", m.key_id}).ok());
  Bytes blob = MustEncrypt(f.svc(), m.key_id, "data").ciphertext_blob;
  CHECK(ErrorOf(f.svc().ScheduleKeyDeletion({m.key_id, 6})) ==
        InvalidArgumentError("1 validation error detected: Value '6' at 'pendingWindowInDays' failed "
                             "to satisfy constraint: Member must have value greater than or equal to 7"));
  CHECK(ErrorOf(f.svc().ScheduleKeyDeletion({m.key_id, 31})).code() == StatusCode::kInvalidArgument);
  auto sched = f.svc().ScheduleKeyDeletion({m.arn, {}});
  REQUIRE(sched.has_value());
  CHECK(sched->key_id == m.arn);
  CHECK(sched->pending_window_in_days == 30);
  CHECK(sched->key_state == KeyState::kPendingDeletion);
  CHECK(sched->deletion_date_ms == testing::kStartMs + 30 * kMsPerDay);
  auto d = f.svc().DescribeKey({"alias/doomed"});
  REQUIRE(d.has_value());
  CHECK(d->key_metadata.key_state == KeyState::kPendingDeletion);
  CHECK_FALSE(d->key_metadata.enabled);
  CHECK(d->key_metadata.deletion_date_ms == sched->deletion_date_ms);
  CHECK(d->key_metadata.pending_deletion_window_in_days == 30u);

  const Status pending =
      FailedPreconditionError(m.arn + " is pending deletion.", Reason::kKeyInvalidState);
  CHECK(ErrorOf(f.svc().ScheduleKeyDeletion({m.key_id, 7})) == pending);
  EncryptRequest e;
  e.key_id = m.key_id;
  e.plaintext = Secret("x");
  CHECK(ErrorOf(f.svc().Encrypt(e)) == pending);
  CHECK(ErrorOf(DoDecrypt(f.svc(), blob)) == pending);
  GenerateDataKeyRequest g;
  g.key_id = m.key_id;
  g.number_of_bytes = 16;
  CHECK(ErrorOf(f.svc().GenerateDataKey(g)) == pending);
  CHECK(ErrorOf(f.svc().EnableKey({m.key_id})) == pending);
  CHECK(ErrorOf(f.svc().DisableKey({m.key_id})) == pending);
  CHECK(ErrorOf(f.svc().UpdateKeyDescription({m.key_id, "x"})) == pending);
  CHECK(ErrorOf(f.svc().TagResource({m.key_id, {{"a", "b"}}})) == pending);
  CHECK(ErrorOf(f.svc().UntagResource({m.key_id, {"a"}})) == pending);
  CHECK(ErrorOf(f.svc().CreateAlias({"alias/more", m.key_id})) == pending);
  CHECK(ErrorOf(f.svc().EnableKeyRotation({m.key_id, {}})) == pending);
  CHECK(ErrorOf(f.svc().DisableKeyRotation({m.key_id})) == pending);
  CHECK(ErrorOf(f.svc().RotateKeyOnDemand({m.key_id})) == pending);
  // UpdateAlias: the source may be pending deletion, the destination may not
  // (docs/aws-kms-protocol.md "Key states").
  KeyMetadata other = f.Create();
  REQUIRE(f.svc().CreateAlias({"alias/other", other.key_id}).ok());
  CHECK(ErrorOf(f.svc().UpdateAlias({"alias/other", m.key_id})) == pending);
  CHECK(f.svc().UpdateAlias({"alias/doomed", other.key_id}).ok());
  REQUIRE(f.svc().UpdateAlias({"alias/doomed", other.key_id}).ok());
  // Allowed while pending.
  CHECK(f.svc().ListResourceTags({m.key_id, {}, {}}).has_value());
  CHECK(f.svc().GetKeyRotationStatus({m.key_id}).has_value());
  CHECK(f.svc().ListAliases({m.key_id, {}, {}}).has_value());

  auto cancel = f.svc().CancelKeyDeletion({m.key_id});
  REQUIRE(cancel.has_value());
  CHECK(cancel->key_id == m.arn);
  auto after = f.svc().DescribeKey({m.key_id});
  CHECK(after->key_metadata.key_state == KeyState::kDisabled);  // never straight back to Enabled
  CHECK_FALSE(after->key_metadata.deletion_date_ms.has_value());
  CHECK(ErrorOf(f.svc().CancelKeyDeletion({m.key_id})) ==
        FailedPreconditionError(m.arn + " is not pending deletion.", Reason::kKeyInvalidState));
  KeyMetadata enabled = f.Create();
  CHECK(ErrorOf(f.svc().CancelKeyDeletion({enabled.key_id})).reason() == Reason::kKeyInvalidState);
  // A disabled key can be scheduled too.
  CHECK(f.svc().ScheduleKeyDeletion({m.key_id, 7}).has_value());
}

TEST_CASE(KMS_SUITE_PREFIX "deletion destroys the key when its window ends, also after a restart", KMS_SUITE_TAG) {
  ServiceFixture f;
  KeyMetadata doomed = f.Create();
  KeyMetadata keeper = f.Create();
  REQUIRE(f.svc().CreateAlias({"alias/doomed", doomed.key_id}).ok());
  REQUIRE(f.svc().TagResource({doomed.key_id, {{"a", "b"}}}).ok());
  Bytes blob = MustEncrypt(f.svc(), doomed.key_id, "gone soon").ciphertext_blob;
  REQUIRE(f.svc().ScheduleKeyDeletion({doomed.key_id, 7}).has_value());
  KeyLifecycleScheduler scheduler(f.svc(), f.clock);
  f.clock.AdvanceDays(6);
  auto early = scheduler.RunDue();
  REQUIRE(early.has_value());
  CHECK(early->keys_deleted == 0);
  CHECK(f.svc().DescribeKey({doomed.key_id}).has_value());
  // Restart while due: the next pass after the restart does it.
  f.clock.AdvanceDays(2);
  f.Restart();
  KeyLifecycleScheduler after_restart(f.svc(), f.clock);
  auto pass = after_restart.RunDue();
  REQUIRE(pass.has_value());
  CHECK(pass->keys_deleted == 1);
  CHECK(ErrorOf(f.svc().DescribeKey({doomed.key_id})).code() == StatusCode::kNotFound);
  CHECK(ErrorOf(f.svc().DescribeKey({"alias/doomed"})).code() == StatusCode::kNotFound);
  ExpectInvalidCiphertext(ErrorOf(DoDecrypt(f.svc(), blob)));
  // The wrapped material is gone from the store.
  auto tx = f.store->Begin(store::TransactionMode::kReadOnly);
  REQUIRE(tx.has_value());
  CHECK((*tx)->ListKeyVersions(doomed.key_id)->empty());
  CHECK((*tx)->ListTags(doomed.key_id)->empty());
  CHECK(f.svc().DescribeKey({keeper.key_id}).has_value());
  CHECK(after_restart.RunDue()->keys_deleted == 0);
}

TEST_CASE(KMS_SUITE_PREFIX "the scheduler thread performs due work",
          KMS_SUITE_TAG "[concurrency]") {
  ServiceFixture f;
  KeyMetadata doomed = f.Create();
  REQUIRE(f.svc().ScheduleKeyDeletion({doomed.key_id, 7}).has_value());
  f.clock.AdvanceDays(8);
  KeyLifecycleScheduler scheduler(f.svc(), f.clock);
  scheduler.Start(std::chrono::milliseconds(10));
  CHECK(scheduler.running());
  bool gone = false;
  for (int i = 0; i < 500 && !gone; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    gone = !f.svc().DescribeKey({doomed.key_id}).has_value();
  }
  scheduler.Stop();
  CHECK_FALSE(scheduler.running());
  CHECK(gone);
}

// ---------------------------------------------------------------------------------------------------
TEST_CASE(KMS_SUITE_PREFIX "rotation settings and their errors", KMS_SUITE_TAG) {
  ServiceFixture f;
  KeyMetadata m = f.Create();
  auto st = f.svc().GetKeyRotationStatus({m.key_id});
  REQUIRE(st.has_value());
  CHECK_FALSE(st->key_rotation_enabled);
  CHECK_FALSE(st->rotation_period_in_days.has_value());
  CHECK(st->key_id == m.arn);
  REQUIRE(f.svc().EnableKeyRotation({m.key_id, {}}).ok());
  st = f.svc().GetKeyRotationStatus({m.arn});
  CHECK(st->key_rotation_enabled);
  CHECK(st->rotation_period_in_days == 365u);
  CHECK(st->next_rotation_date_ms == testing::kStartMs + 365 * kMsPerDay);
  REQUIRE(f.svc().EnableKeyRotation({m.key_id, 90}).ok());
  CHECK(f.svc().GetKeyRotationStatus({m.key_id})->rotation_period_in_days == 90u);
  CHECK(ErrorOf(f.svc().EnableKeyRotation({m.key_id, 89})) ==
        InvalidArgumentError("1 validation error detected: Value '89' at 'rotationPeriodInDays' "
                             "failed to satisfy constraint: Member must have value greater than or "
                             "equal to 90"));
  CHECK(ErrorOf(f.svc().EnableKeyRotation({m.key_id, 2561})).code() == StatusCode::kInvalidArgument);
  REQUIRE(f.svc().DisableKeyRotation({m.key_id}).ok());
  CHECK_FALSE(f.svc().GetKeyRotationStatus({m.key_id})->key_rotation_enabled);

  KeyMetadata rsa = f.Create(KeySpec::kRsa2048, KeyUsage::kSignVerify);
  const Status unsupported(StatusCode::kUnimplemented,
                           rsa.arn + " key spec RSA_2048 does not support key rotation.",
                           Reason::kUnsupportedOperation);
  CHECK(ErrorOf(f.svc().EnableKeyRotation({rsa.key_id, {}})) == unsupported);
  CHECK(ErrorOf(f.svc().DisableKeyRotation({rsa.key_id})) == unsupported);
  CHECK(ErrorOf(f.svc().GetKeyRotationStatus({rsa.key_id})) == unsupported);
  CHECK(ErrorOf(f.svc().RotateKeyOnDemand({rsa.key_id})) == unsupported);
  CHECK(ErrorOf(f.svc().ListKeyRotations({rsa.key_id, {}, {}})) == unsupported);
  KeyMetadata hmac = f.Create(KeySpec::kHmac256);
  CHECK(ErrorOf(f.svc().EnableKeyRotation({hmac.key_id, {}})).reason() == Reason::kUnsupportedOperation);
}

TEST_CASE(KMS_SUITE_PREFIX "rotation keeps the key id, old ciphertexts decrypt after rotation and restart", KMS_SUITE_TAG) {
  ServiceFixture f;
  KeyMetadata m = f.Create();
  EncryptionContext ctx{{"c", "1"}};
  Bytes v1 = MustEncrypt(f.svc(), m.key_id, "version one", ctx).ciphertext_blob;
  CHECK(BlobVersion(v1) == 1);
  f.clock.Advance(5000);
  auto r = f.svc().RotateKeyOnDemand({"" + m.arn});
  REQUIRE(r.has_value());
  CHECK(r->key_id == m.key_id);
  Bytes v2 = MustEncrypt(f.svc(), m.key_id, "version two", ctx).ciphertext_blob;
  CHECK(BlobVersion(v2) == 2);  // new encryptions use the newest version
  auto d = f.svc().DescribeKey({m.key_id});
  CHECK(d->key_metadata.key_id == m.key_id);
  CHECK(d->key_metadata.current_key_material_id != m.current_key_material_id);
  auto st = f.svc().GetKeyRotationStatus({m.key_id});
  CHECK(st->on_demand_rotation_start_date_ms == testing::kStartMs + 5000);
  auto rotations = f.svc().ListKeyRotations({m.key_id, {}, {}});
  REQUIRE(rotations.has_value());
  REQUIRE(rotations->rotations.size() == 1);
  CHECK(rotations->rotations[0].rotation_type == RotationType::kOnDemand);
  CHECK(rotations->rotations[0].rotation_date_ms == testing::kStartMs + 5000);
  CHECK(rotations->rotations[0].key_material_id == d->key_metadata.current_key_material_id);

  auto d1 = DoDecrypt(f.svc(), v1, ctx);
  REQUIRE(d1.has_value());
  CHECK(Text(d1->plaintext) == "version one");
  CHECK(d1->key_material_id == m.current_key_material_id);
  f.Restart();
  for (const auto& [blob, text] : {std::pair{v1, "version one"}, std::pair{v2, "version two"}}) {
    auto after = DoDecrypt(f.svc(), blob, ctx);
    REQUIRE(after.has_value());
    CHECK(Text(after->plaintext) == text);
  }
  CHECK(BlobVersion(MustEncrypt(f.svc(), m.key_id, "three").ciphertext_blob) == 2);
}

TEST_CASE(KMS_SUITE_PREFIX "on-demand rotation is limited to 25 per key", KMS_SUITE_TAG) {
  ServiceFixture f;
  KeyMetadata m = f.Create();
  for (int i = 0; i < 25; ++i) REQUIRE(f.svc().RotateKeyOnDemand({m.key_id}).has_value());
  CHECK(ErrorOf(f.svc().RotateKeyOnDemand({m.key_id})) ==
        Status(StatusCode::kResourceExhausted,
               "The on-demand rotations limit has been reached for the given keyId. No more on-demand "
               "rotations can be performed for this key: " + m.arn,
               Reason::kLimitExceeded));
  auto page = f.svc().ListKeyRotations({m.key_id, 10, {}});
  REQUIRE(page.has_value());
  CHECK(page->rotations.size() == 10);
  CHECK(page->truncated);
  std::size_t total = page->rotations.size();
  auto marker = page->next_marker;
  while (marker) {
    auto next = f.svc().ListKeyRotations({m.key_id, 10, marker});
    REQUIRE(next.has_value());
    total += next->rotations.size();
    marker = next->next_marker;
  }
  CHECK(total == 25);
  CHECK(ErrorOf(f.svc().ListKeyRotations({m.key_id, {}, std::string("bogus")})).reason() ==
        Reason::kInvalidMarker);
}

TEST_CASE(KMS_SUITE_PREFIX "automatic rotation happens when due, also after a restart, and not when disabled", KMS_SUITE_TAG) {
  ServiceFixture f;
  KeyMetadata m = f.Create();
  KeyMetadata off = f.Create();
  REQUIRE(f.svc().EnableKeyRotation({m.key_id, 90}).ok());
  REQUIRE(f.svc().EnableKeyRotation({off.key_id, 90}).ok());
  REQUIRE(f.svc().DisableKey({off.key_id}).ok());
  Bytes before = MustEncrypt(f.svc(), m.key_id, "pre").ciphertext_blob;
  f.clock.AdvanceDays(89);
  CHECK(f.svc().RunDue(f.clock.NowMs())->keys_rotated == 0);
  f.clock.AdvanceDays(2);
  f.Restart();
  auto pass = f.svc().RunDue(f.clock.NowMs());
  REQUIRE(pass.has_value());
  CHECK(pass->keys_rotated == 1);
  CHECK(BlobVersion(MustEncrypt(f.svc(), m.key_id, "post").ciphertext_blob) == 2);
  CHECK(Text(DoDecrypt(f.svc(), before)->plaintext) == "pre");
  auto rotations = f.svc().ListKeyRotations({m.key_id, {}, {}});
  REQUIRE(rotations->rotations.size() == 1);
  CHECK(rotations->rotations[0].rotation_type == RotationType::kAutomatic);
  auto st = f.svc().GetKeyRotationStatus({m.key_id});
  CHECK(st->next_rotation_date_ms == f.clock.NowMs() + 90 * kMsPerDay);
  // The disabled key did not rotate; its schedule moved on.
  REQUIRE(f.svc().EnableKey({off.key_id}).ok());
  CHECK(BlobVersion(MustEncrypt(f.svc(), off.key_id, "x").ciphertext_blob) == 1);
  CHECK(f.svc().RunDue(f.clock.NowMs())->keys_rotated == 0);
}

// ---------------------------------------------------------------------------------------------------
TEST_CASE(KMS_SUITE_PREFIX "the GCM bound forces a rotation before a version exceeds it", KMS_SUITE_TAG) {
  KeyServiceConfig config;
  config.gcm_invocation_limit = 5;
  config.gcm_reservation_batch = 2;
  ServiceFixture f(config);
  KeyMetadata m = f.Create();
  std::vector<Bytes> blobs;
  for (int i = 0; i < 12; ++i) {
    blobs.push_back(MustEncrypt(f.svc(), m.key_id, "n" + std::to_string(i)).ciphertext_blob);
  }
  // 5 invocations per version: versions 1,1,1,1,1,2,2,2,2,2,3,3.
  for (int i = 0; i < 12; ++i) CHECK(BlobVersion(blobs[static_cast<std::size_t>(i)]) == static_cast<std::uint32_t>(1 + i / 5));
  for (int i = 0; i < 12; ++i) {
    CHECK(Text(DoDecrypt(f.svc(), blobs[static_cast<std::size_t>(i)])->plaintext) ==
          "n" + std::to_string(i));
  }
  // The counter is durable: after a restart the reservation is not handed out twice.
  f.Restart();
  auto tx = f.store->Begin(store::TransactionMode::kReadOnly);
  REQUIRE(tx.has_value());
  auto v3 = (*tx)->GetKeyVersion(m.key_id, 3);
  REQUIRE(v3.has_value());
  CHECK(v3->invocation_count() == 2);
  tx->reset();
  std::vector<std::uint32_t> versions;
  for (int i = 0; i < 4; ++i) versions.push_back(BlobVersion(MustEncrypt(f.svc(), m.key_id, "r").ciphertext_blob));
  // Version 3 had 2 durably reserved (both used); 3 more fit, then version 4.
  CHECK(versions == std::vector<std::uint32_t>{3, 3, 3, 4});
  auto rotations = f.svc().ListKeyRotations({m.key_id, {}, {}});
  CHECK(rotations->rotations.size() == 3);
  // Data keys count as well.
  GenerateDataKeyRequest g;
  g.key_id = m.key_id;
  g.number_of_bytes = 32;
  for (int i = 0; i < 5; ++i) REQUIRE(f.svc().GenerateDataKey(g).has_value());
  CHECK(BlobVersion(f.svc().GenerateDataKey(g)->ciphertext_blob) == 5);
}

#if !defined(KMS_TEST_HSM_SOFTHSM)  // the fake's re-initialisation and loaded-key knobs
TEST_CASE(KMS_SUITE_PREFIX "a stale HSM handle is evicted and the call retried", KMS_SUITE_TAG) {
  ServiceFixture f;
  KeyMetadata m = f.Create();
  Bytes blob = MustEncrypt(f.svc(), m.key_id, "warm").ciphertext_blob;
  CHECK(f.svc().cache().size() == 1);
  f.hsm->SimulateReinitialize();
  auto d = DoDecrypt(f.svc(), blob);
  REQUIRE(d.has_value());
  CHECK(Text(d->plaintext) == "warm");
  CHECK(MustEncrypt(f.svc(), m.key_id, "again").ciphertext_blob.size() > 0);
}

TEST_CASE(KMS_SUITE_PREFIX "an HSM failure at any step of CreateKey leaves no key and no intent", KMS_SUITE_TAG) {
  ServiceFixture f;
  // CreateKey's HSM calls: GenerateRandom (key id), GenerateRandom (intent id), GenerateKey, WrapKey.
  for (std::size_t step = 0; step < 4; ++step) {
    INFO("failing HSM call #" << step);
    f.hsm->InjectFailure(UnavailableError("device gone"), step, 1);
    Status s = ErrorOf(f.svc().CreateKey({}));
    CHECK(s == UnavailableError("device gone"));
    CHECK(f.svc().ListKeys({})->keys.empty());
    auto tx = f.store->Begin(store::TransactionMode::kReadOnly);
    REQUIRE(tx.has_value());
    CHECK((*tx)->ListIntents()->empty());
    CHECK((*tx)->ListKeys("", 10)->items.empty());
  }
  f.hsm->InjectFailure(Status(), 0, 0);
  CHECK(f.svc().CreateKey({}).has_value());
}

TEST_CASE(KMS_SUITE_PREFIX "an HSM failure during rotation leaves the key as it was", KMS_SUITE_TAG) {
  ServiceFixture f;
  KeyMetadata m = f.Create();
  Bytes blob = MustEncrypt(f.svc(), m.key_id, "kept").ciphertext_blob;
  // RotateKeyOnDemand's HSM calls: GenerateRandom (intent id), GenerateKey, WrapKey.
  for (std::size_t step = 0; step < 3; ++step) {
    INFO("failing HSM call #" << step);
    f.hsm->InjectFailure(UnavailableError("device gone"), step, 1);
    CHECK(ErrorOf(f.svc().RotateKeyOnDemand({m.key_id})) == UnavailableError("device gone"));
    auto d = f.svc().DescribeKey({m.key_id});
    CHECK(d->key_metadata.current_key_material_id == m.current_key_material_id);
    CHECK(f.svc().ListKeyRotations({m.key_id, {}, {}})->rotations.empty());
    CHECK_FALSE(f.svc().GetKeyRotationStatus({m.key_id})->on_demand_rotation_start_date_ms.has_value());
    auto tx = f.store->Begin(store::TransactionMode::kReadOnly);
    REQUIRE(tx.has_value());
    CHECK((*tx)->ListIntents()->empty());
  }
  f.hsm->InjectFailure(Status(), 0, 0);
  CHECK(Text(DoDecrypt(f.svc(), blob)->plaintext) == "kept");
  CHECK(f.svc().RotateKeyOnDemand({m.key_id}).has_value());
}

TEST_CASE(KMS_SUITE_PREFIX "HSM errors on cryptographic calls reach the caller, a stale handle is retried only once",
          KMS_SUITE_TAG) {
  ServiceFixture f;
  KeyMetadata m = f.Create();
  Bytes blob = MustEncrypt(f.svc(), m.key_id, "x").ciphertext_blob;
  f.hsm->InjectFailure(UnavailableError("device busy"), 0, 1);
  EncryptRequest e;
  e.key_id = m.key_id;
  e.plaintext = Secret("y");
  CHECK(ErrorOf(f.svc().Encrypt(e)) == UnavailableError("device busy"));
  // Stale twice in a row: the one retry also fails, and the caller sees Unavailable (not a ciphertext
  // error, not a crash).
  f.hsm->InjectFailure(UnavailableError("stale", Reason::kHandleStale), 0, 3);
  Status s = ErrorOf(DoDecrypt(f.svc(), blob));
  CHECK(s.code() == StatusCode::kUnavailable);
  f.hsm->InjectFailure(Status(), 0, 0);
  CHECK(DoDecrypt(f.svc(), blob).has_value());
}

TEST_CASE(KMS_SUITE_PREFIX "the handle cache is bounded and makes hot keys cost no unwrap", KMS_SUITE_TAG) {
  KeyServiceConfig config;
  config.cache_capacity = 3;
  ServiceFixture f(config);
  std::vector<KeyMetadata> keys;
  for (int i = 0; i < 5; ++i) keys.push_back(f.Create());
  for (const auto& k : keys) MustEncrypt(f.svc(), k.key_id, "x");
  CHECK(f.svc().cache().size() == 3);
  CHECK(f.hsm->LoadedKeyCount() <= 3);
  std::uint64_t misses = f.svc().cache().misses();
  for (int i = 0; i < 10; ++i) MustEncrypt(f.svc(), keys.back().key_id, "hot");
  CHECK(f.svc().cache().misses() == misses);
}
#endif

TEST_CASE(KMS_SUITE_PREFIX "startup reconciliation removes half-made keys and finishes decided deletions", KMS_SUITE_TAG) {
  ServiceFixture f;
  KeyMetadata whole = f.Create();
  KeyMetadata deleting = f.Create();
  const std::string half = "11111111-2222-4333-8444-555555555555";
  {
    auto tx = f.store->Begin();
    REQUIRE(tx.has_value());
    records::KeyRecord k;
    k.set_key_id(half);
    k.set_key_spec(records::KEY_SPEC_SYMMETRIC_DEFAULT);
    k.set_key_usage(records::KEY_USAGE_ENCRYPT_DECRYPT);
    k.set_state(records::KEY_STATE_PENDING_CREATION);
    k.set_current_version(1);
    REQUIRE((*tx)->InsertKey(k).ok());
    REQUIRE((*tx)->IncrementCounter("key_service.keys_created", 1).has_value());  // as CreateKey does
    records::IntentRecord create;
    create.set_intent_id("i-create");
    create.set_kind(records::INTENT_KIND_CREATE_KEY);
    create.set_key_id(half);
    REQUIRE((*tx)->InsertIntent(create).ok());
    records::IntentRecord rotate;
    rotate.set_intent_id("i-rotate");
    rotate.set_kind(records::INTENT_KIND_ROTATE_KEY);
    rotate.set_key_id(whole.key_id);
    rotate.set_version(2);
    REQUIRE((*tx)->InsertIntent(rotate).ok());
    auto dk = (*tx)->GetKey(deleting.key_id);
    REQUIRE(dk.has_value());
    dk->set_state(records::KEY_STATE_PENDING_DELETION);
    dk->set_deletion_time_ms(1);
    REQUIRE((*tx)->UpdateKey(*dk).ok());
    records::IntentRecord del;
    del.set_intent_id("i-delete");
    del.set_kind(records::INTENT_KIND_DELETE_KEY);
    del.set_key_id(deleting.key_id);
    REQUIRE((*tx)->InsertIntent(del).ok());
    REQUIRE((*tx)->Commit().ok());
  }
  // The half-made key is invisible even before reconciliation.
  CHECK(ErrorOf(f.svc().DescribeKey({half})).code() == StatusCode::kNotFound);
  auto listed = f.svc().ListKeys({});
  for (const auto& k : listed->keys) CHECK(k.key_id != half);
  f.Restart();
  auto tx = f.store->Begin(store::TransactionMode::kReadOnly);
  REQUIRE(tx.has_value());
  CHECK((*tx)->ListIntents()->empty());
  CHECK((*tx)->GetKey(half).error().code() == StatusCode::kNotFound);
  CHECK((*tx)->GetKey(deleting.key_id).error().code() == StatusCode::kNotFound);
  CHECK((*tx)->GetKey(whole.key_id)->current_version() == 1);
  tx->reset();
  CHECK(BlobVersion(MustEncrypt(f.svc(), whole.key_id, "ok").ciphertext_blob) == 1);
}

TEST_CASE(KMS_SUITE_PREFIX "UpdateKeyDescription", KMS_SUITE_TAG) {
  ServiceFixture f;
  KeyMetadata m = f.Create();
  REQUIRE(f.svc().UpdateKeyDescription({m.arn, "new words"}).ok());
  CHECK(f.svc().DescribeKey({m.key_id})->key_metadata.description == "new words");
  CHECK(ErrorOf(f.svc().UpdateKeyDescription({m.key_id, std::string(8193, 'x')})).code() ==
        StatusCode::kInvalidArgument);
  CHECK(ErrorOf(f.svc().UpdateKeyDescription({"alias/x", "d"})).code() == StatusCode::kNotFound);
}

TEST_CASE(KMS_SUITE_PREFIX "ARNs follow the configured region and account", KMS_SUITE_TAG) {
  KeyServiceConfig config;
  config.region = "eu-central-1";
  config.account_id = "000000000042";
  ServiceFixture f(config);
  KeyMetadata m = f.Create();
  CHECK(m.arn == "arn:aws:kms:eu-central-1:000000000042:key/" + m.key_id);
  CHECK(m.aws_account_id == "000000000042");
  CHECK(f.svc().DescribeKey({m.arn}).has_value());
  CHECK(ErrorOf(f.svc().DescribeKey({"arn:aws:kms:us-east-1:111122223333:key/" + m.key_id})).code() ==
        StatusCode::kNotFound);
}

}  // namespace
}  // namespace kms::firmware

namespace kms::firmware {
namespace {

TEST_CASE(KMS_SUITE_PREFIX "record cache: own writes take effect at once, another process's within the TTL", KMS_SUITE_TAG) {
  KeyServiceConfig config;
  config.record_cache_ttl_ms = 300;
  ServiceFixture f(config);
  KeyMetadata m = f.Create();
  // A second service on the same store and HSM: another worker process of the appliance.
  auto other = KeyService::Open(f.Hsm(), *f.store, f.clock, config);
  REQUIRE(other.has_value());
  MustEncrypt(f.svc(), m.key_id, "warm the cache");
  REQUIRE((*other)->DisableKey({m.key_id}).ok());
  // The other process's own view changes at once.
  EncryptRequest r;
  r.key_id = m.key_id;
  r.plaintext = Secret("x");
  CHECK(ErrorOf((*other)->Encrypt(r)).reason() == Reason::kKeyDisabled);
  // This one sees it within the TTL.
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  CHECK(ErrorOf(f.svc().Encrypt(r)).reason() == Reason::kKeyDisabled);
  // Own writes: immediate.
  REQUIRE(f.svc().EnableKey({m.key_id}).ok());
  CHECK(f.svc().Encrypt(r).has_value());
  REQUIRE(f.svc().DisableKey({m.key_id}).ok());
  CHECK(ErrorOf(f.svc().Encrypt(r)).reason() == Reason::kKeyDisabled);
}

TEST_CASE(KMS_SUITE_PREFIX "record cache: Decrypt naming its KeyId reads the key as Decrypt without one does", KMS_SUITE_TAG) {
  // The AWS door always names the key it authorized (from IdentifyKey, served by the cache), so a
  // Decrypt with a KeyId is the common call: it must not take a store snapshot of its own per
  // request, and it must see the same records as the decision and as a Decrypt without KeyId.
  KeyServiceConfig config;
  config.record_cache_ttl_ms = 600'000;  // no entry expires during the test
  ServiceFixture f(config);
  KeyMetadata m = f.Create();
  auto other = KeyService::Open(f.Hsm(), *f.store, f.clock, config);
  REQUIRE(other.has_value());
  const Bytes blob = MustEncrypt(f.svc(), m.key_id, "x").ciphertext_blob;
  REQUIRE(DoDecrypt(f.svc(), blob, {}, m.arn).has_value());
  REQUIRE(DoDecrypt(f.svc(), blob, {}, m.key_id).has_value());
  REQUIRE(f.svc().IdentifyKey(m.arn, true).has_value());
  // Another process disables the key: this service sees it when its entries expire, whichever way
  // the key is named (before, a KeyId read the store on every call and saw it at once).
  REQUIRE((*other)->DisableKey({m.key_id}).ok());
  CHECK(f.svc().IdentifyKey(m.arn, true)->key_state == KeyState::kEnabled);
  CHECK(Text(DoDecrypt(f.svc(), blob)->plaintext) == "x");
  auto by_arn = DoDecrypt(f.svc(), blob, {}, m.arn);
  REQUIRE(by_arn.has_value());
  CHECK(Text(by_arn->plaintext) == "x");
  auto by_id = DoDecrypt(f.svc(), blob, {}, m.key_id);
  REQUIRE(by_id.has_value());
  CHECK(by_id->key_id == m.arn);
  // Its own writes take effect at once on both ways.
  REQUIRE(f.svc().DisableKey({m.key_id}).ok());
  CHECK(ErrorOf(DoDecrypt(f.svc(), blob)).reason() == Reason::kKeyDisabled);
  CHECK(ErrorOf(DoDecrypt(f.svc(), blob, {}, m.arn)).reason() == Reason::kKeyDisabled);
  REQUIRE(f.svc().EnableKey({m.key_id}).ok());
  // A KeyId naming another key is still IncorrectKeyException, from the cache as well.
  KeyMetadata n = f.Create();
  CHECK(ErrorOf(DoDecrypt(f.svc(), blob, {}, n.arn)).reason() == Reason::kIncorrectKey);
  CHECK(ErrorOf(DoDecrypt(f.svc(), blob, {}, n.arn)).reason() == Reason::kIncorrectKey);
}

TEST_CASE(KMS_SUITE_PREFIX "record cache off: every call reads the store", KMS_SUITE_TAG) {
  KeyServiceConfig config;
  config.record_cache_ttl_ms = 0;
  ServiceFixture f(config);
  KeyMetadata m = f.Create();
  auto other = KeyService::Open(f.Hsm(), *f.store, f.clock, config);
  REQUIRE(other.has_value());
  Bytes blob = MustEncrypt(f.svc(), m.key_id, "x").ciphertext_blob;
  REQUIRE((*other)->DisableKey({m.key_id}).ok());
  CHECK(ErrorOf(DoDecrypt(f.svc(), blob)).reason() == Reason::kKeyDisabled);
}

// The GCM bound's retry loop (spent version -> rotate -> reload) must not reload this process's
// cached view of a version the store has already moved past: when the store says another rotation
// got there first, the cache is stale, and reading it again retries the same spent version until
// the loop gives up. Another process rotating is the plain case; in one process the same happens
// while the thread that committed a rotation has not yet dropped the cache.
TEST_CASE(KMS_SUITE_PREFIX "record cache: a version another process spent and rotated is left",
          KMS_SUITE_TAG) {
  KeyServiceConfig config;
  config.gcm_invocation_limit = 4;
  config.gcm_reservation_batch = 1;
  config.record_cache_ttl_ms = 600'000;  // this process's view stays cached for the whole test
  ServiceFixture f(config);
  KeyMetadata m = f.Create();
  auto other = KeyService::Open(f.Hsm(), *f.store, f.clock, config);
  REQUIRE(other.has_value());
  CHECK(BlobVersion(MustEncrypt(f.svc(), m.key_id, "caches version 1").ciphertext_blob) == 1);
  // The other process takes the rest of version 1 and rotates past it.
  for (int i = 0; i < 3; ++i) MustEncrypt(**other, m.key_id, "spends version 1");
  CHECK(BlobVersion(MustEncrypt(**other, m.key_id, "rotates").ciphertext_blob) == 2);
  // This process still holds version 1 as current: it finds version 2, and rotates no further.
  EncryptRequest r;
  r.key_id = m.key_id;
  r.plaintext = Secret("after");
  auto out = f.svc().Encrypt(r);
  if (!out) FAIL(out.error().ToString());
  CHECK(BlobVersion(out->ciphertext_blob) == 2);
  auto tx = f.store->Begin(store::TransactionMode::kReadOnly);
  REQUIRE(tx.has_value());
  CHECK((*tx)->GetKey(m.key_id)->current_version() == 2u);
}

}  // namespace
}  // namespace kms::firmware

namespace kms::firmware {
namespace {

TEST_CASE(KMS_SUITE_PREFIX "concurrent callers never exceed the GCM bound and every blob decrypts",
          KMS_SUITE_TAG "[concurrency]") {
  KeyServiceConfig config;
  config.gcm_invocation_limit = 10;
  config.gcm_reservation_batch = 3;
  ServiceFixture f(config);
  KeyMetadata m = f.Create();
  constexpr int kThreads = 4, kPerThread = 40;
  std::vector<std::vector<Bytes>> blobs(kThreads);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  std::mutex errors_mu;
  std::vector<std::string> errors;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        EncryptRequest r;
        r.key_id = m.key_id;
        r.plaintext = Secret("t" + std::to_string(t) + "-" + std::to_string(i));
        auto out = f.svc().Encrypt(r);
        if (!out) {
          ++failures;
          std::lock_guard lock(errors_mu);
          errors.push_back(out.error().ToString());
          continue;
        }
        blobs[static_cast<std::size_t>(t)].push_back(std::move(out->ciphertext_blob));
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& e : errors) INFO(e);
  CHECK(failures == 0);
  if (!errors.empty()) FAIL(errors.front());
  std::map<std::uint32_t, int> per_version;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < static_cast<int>(blobs[static_cast<std::size_t>(t)].size()); ++i) {
      const Bytes& b = blobs[static_cast<std::size_t>(t)][static_cast<std::size_t>(i)];
      ++per_version[BlobVersion(b)];
      auto d = DoDecrypt(f.svc(), b);
      REQUIRE(d.has_value());
      CHECK(Text(d->plaintext) == "t" + std::to_string(t) + "-" + std::to_string(i));
    }
  }
  for (const auto& [version, n] : per_version) {
    INFO("version " << version);
    CHECK(n <= 10);
  }
  // 160 encryptions at 10 per version: at least 16 versions, and the stored counts cover them all.
  CHECK(per_version.size() >= 16);
  auto tx = f.store->Begin(store::TransactionMode::kReadOnly);
  REQUIRE(tx.has_value());
  auto versions = (*tx)->ListKeyVersions(m.key_id);
  REQUIRE(versions.has_value());
  for (const auto& v : *versions) {
    CHECK(v.invocation_count() <= 10);
    CHECK(static_cast<int>(v.invocation_count()) >= per_version[v.version()]);
  }
}


TEST_CASE(KMS_SUITE_PREFIX "a stored key state this firmware does not know fails closed",
          KMS_SUITE_TAG) {
  KeyServiceConfig config;
  config.record_cache_ttl_ms = 0;
  ServiceFixture f(config);
  auto made = f.svc().CreateKey({});
  REQUIRE(made.has_value());
  const std::string id = made->key_metadata.key_id;
  const std::string arn = made->key_metadata.arn;
  // A state written by newer firmware (or an unset one): not Enabled, whatever it is.
  for (const int state : {0, 77}) {  // (4, pending creation, is not found at all)
    INFO("state " << state);
    {
      auto tx = f.store->Begin(store::TransactionMode::kReadWrite);
      REQUIRE(tx.has_value());
      auto key = (*tx)->GetKey(id);
      REQUIRE(key.has_value());
      key->set_state(static_cast<records::KeyState>(state));
      REQUIRE((*tx)->UpdateKey(*key).ok());
      REQUIRE((*tx)->Commit().ok());
    }
    const Status unavailable =
        FailedPreconditionError(arn + " is unavailable.", Reason::kKeyInvalidState);
    EncryptRequest enc;
    enc.key_id = id;
    enc.plaintext = SecretBytes::CopyFrom(AsBytes("x"));
    CHECK(ErrorOf(f.svc().Encrypt(enc)) == unavailable);
    GenerateDataKeyRequest gdk;
    gdk.key_id = id;
    gdk.number_of_bytes = 32;
    CHECK(ErrorOf(f.svc().GenerateDataKey(gdk)) == unavailable);
    // Nothing may change it either: enabling it would hand out a key its writer kept unusable.
    CHECK(ErrorOf(f.svc().EnableKey({id})) == unavailable);
    CHECK(ErrorOf(f.svc().DisableKey({id})) == unavailable);
    CHECK(ErrorOf(f.svc().ScheduleKeyDeletion({id, 7})) == unavailable);
    auto described = f.svc().DescribeKey({id});
    REQUIRE(described.has_value());
    CHECK(described->key_metadata.key_state == KeyState::kUnavailable);
    CHECK_FALSE(described->key_metadata.enabled);
  }
}

}  // namespace
}  // namespace kms::firmware
