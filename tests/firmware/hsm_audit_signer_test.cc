// HsmAuditSigner on the fake HSM and a real SQLite store: the key is made once and stored only
// wrapped (as a KeyVersionRecord under "audit.signing_key.1"), a restart reuses it, two processes
// racing on a new store make one, signatures verify with mbedTLS under the stored public key, a
// stale handle reloads, and every bad stored state is DataLoss with its exact message.
#include "firmware/audit/hsm_audit_signer.h"

#include <mbedtls/pk.h>

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <thread>

#include "base/encoding.h"
#include "firmware/audit/audit_log.h"
#include "firmware/store/metadata_store.h"
#include "firmware/store/sqlite_store.h"
#include "tests/firmware/audit_test_support.h"
#include "tests/support/fake_hsm.h"

namespace kms::firmware::audit {
namespace {

using testing::TempDir;

std::unique_ptr<store::MetadataStore> OpenStore(const std::string& path) {
  store::SqliteStoreOptions options;
  options.path = path;
  auto opened = store::OpenSqliteStore(options);
  if (!opened) FAIL(opened.error().ToString());
  return std::move(*opened);
}

std::string Meta(store::MetadataStore& s, std::string_view name) {
  auto txn = s.Begin(store::TransactionMode::kReadOnly);
  REQUIRE(txn.has_value());
  auto v = (*txn)->GetMeta(name);
  if (!v) FAIL(v.error().ToString());
  return *v;
}

void PutMeta(store::MetadataStore& s, std::string_view name, const std::string& value) {
  auto txn = s.Begin();
  REQUIRE(txn.has_value());
  KMS_AUDIT_REQUIRE_OK((*txn)->PutMeta(name, value));
  KMS_AUDIT_REQUIRE_OK((*txn)->Commit());
}

bool Verifies(const Bytes& spki, ByteView digest, const Bytes& sig) {
  mbedtls_pk_context pk;
  mbedtls_pk_init(&pk);
  const bool ok = mbedtls_pk_parse_public_key(&pk, spki.data(), spki.size()) == 0 &&
                  mbedtls_pk_can_do(&pk, MBEDTLS_PK_ECDSA) &&
                  mbedtls_pk_verify(&pk, MBEDTLS_MD_SHA256, digest.data(), digest.size(),
                                    sig.data(), sig.size()) == 0;
  mbedtls_pk_free(&pk);
  return ok;
}

std::unique_ptr<HsmAuditSigner> OpenSigner(hal::Hsm& hsm, store::MetadataStore& s) {
  auto signer = HsmAuditSigner::Open(hsm, s);
  if (!signer) FAIL(signer.error().ToString());
  return std::move(*signer);
}

TEST_CASE("audit signer: an ECDSA P-256 key made once, stored only wrapped", "[unit][audit]") {
  TempDir dir;
  auto hsm = kms::testing::NewFakeHsm();
  auto s = OpenStore(dir.File("kms.db"));
  auto signer = OpenSigner(*hsm, *s);
  const Bytes spki = signer->public_key_der();
  REQUIRE_FALSE(spki.empty());

  const auto digest = AuditLineHash("some checkpoint");
  auto sig = signer->SignDigest(digest);
  KMS_AUDIT_REQUIRE_OK(sig);
  CHECK(Verifies(spki, digest, *sig));
  const auto other = AuditLineHash("another checkpoint");
  CHECK_FALSE(Verifies(spki, other, *sig));

  records::KeyVersionRecord record;
  REQUIRE(record.ParseFromString(Meta(*s, kAuditSigningKeyMeta)));
  CHECK(record.record_version() == store::kRecordVersion);
  CHECK(record.key_id() == "audit");
  CHECK(record.version() == 1);
  CHECK(record.algorithm() == records::HAL_ALGORITHM_EC_P256);
  CHECK(record.purpose() == records::HAL_PURPOSE_SIGN_VERIFY);
  CHECK(record.state() == records::KEY_VERSION_STATE_CURRENT);
  CHECK(record.public_key_der() == ToString(spki));
  CHECK(record.key_material_id() == HexEncode(AuditLineHash(ToString(spki))));
  CHECK_FALSE(record.wrapped().empty());
  CHECK(record.creation_time_ms() > 0);

  // A restarted appliance (same domain key, nothing loaded) gets the same key.
  auto restarted = hsm->NewSibling();
  auto again = OpenSigner(*restarted, *s);
  CHECK(again->public_key_der() == spki);
  auto sig2 = again->SignDigest(digest);
  KMS_AUDIT_REQUIRE_OK(sig2);
  CHECK(Verifies(spki, digest, *sig2));

  // A digest that is not SHA-256 sized is refused before the HSM sees it.
  const Bytes short_digest(20, 1);
  auto refused = signer->SignDigest(short_digest);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().code() == StatusCode::kInvalidArgument);
  CHECK(refused.error().message() == "audit signer: the digest must be 32 bytes (SHA-256)");
}

TEST_CASE("audit signer: a stale handle is reloaded and HSM failures pass through",
          "[unit][audit]") {
  TempDir dir;
  auto hsm = kms::testing::NewFakeHsm();
  auto s = OpenStore(dir.File("kms.db"));
  auto signer = OpenSigner(*hsm, *s);
  const auto digest = AuditLineHash("x");
  hsm->SimulateReinitialize();
  auto sig = signer->SignDigest(digest);
  KMS_AUDIT_REQUIRE_OK(sig);
  CHECK(Verifies(signer->public_key_der(), digest, *sig));

  hsm->InjectFailure(UnavailableError("device gone"));
  auto failed = signer->SignDigest(digest);
  REQUIRE_FALSE(failed.has_value());
  CHECK(failed.error().code() == StatusCode::kUnavailable);
  CHECK(failed.error().message() == "device gone");
}

TEST_CASE("audit signer: two processes opening a new store at once make one key",
          "[unit][audit][concurrency]") {
  TempDir dir;
  auto hsm1 = kms::testing::NewFakeHsm();
  auto hsm2 = hsm1->NewSibling();
  auto s1 = OpenStore(dir.File("kms.db"));
  auto s2 = OpenStore(dir.File("kms.db"));
  StatusOr<std::unique_ptr<HsmAuditSigner>> a = InternalError("not run");
  StatusOr<std::unique_ptr<HsmAuditSigner>> b = InternalError("not run");
  std::thread t1([&] { a = HsmAuditSigner::Open(*hsm1, *s1); });
  std::thread t2([&] { b = HsmAuditSigner::Open(*hsm2, *s2); });
  t1.join();
  t2.join();
  KMS_AUDIT_REQUIRE_OK(a);
  KMS_AUDIT_REQUIRE_OK(b);
  CHECK((*a)->public_key_der() == (*b)->public_key_der());
}

TEST_CASE("audit signer: bad stored keys are DataLoss", "[unit][audit]") {
  TempDir dir;
  auto hsm = kms::testing::NewFakeHsm();
  auto s = OpenStore(dir.File("kms.db"));
  (void)OpenSigner(*hsm, *s);
  records::KeyVersionRecord good;
  REQUIRE(good.ParseFromString(Meta(*s, kAuditSigningKeyMeta)));
  auto expect = [&](const std::string& stored, StatusCode code, const std::string& message,
                    hal::Hsm* with = nullptr) {
    PutMeta(*s, kAuditSigningKeyMeta, stored);
    auto r = HsmAuditSigner::Open(with != nullptr ? *with : *hsm, *s);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == code);
    CHECK(r.error().message() == message);
  };

  SECTION("garbage") {
    expect("\xff\xff\xff", StatusCode::kDataLoss,
           "audit signer: the stored signing key does not parse");
  }
  SECTION("newer firmware") {
    records::KeyVersionRecord r = good;
    r.set_record_version(store::kRecordVersion + 1);
    expect(r.SerializeAsString(), StatusCode::kFailedPrecondition,
           "audit signer: the stored signing key was written by newer firmware");
  }
  SECTION("the wrong algorithm") {
    records::KeyVersionRecord r = good;
    r.set_algorithm(records::HAL_ALGORITHM_RSA_2048);
    expect(r.SerializeAsString(), StatusCode::kDataLoss,
           "audit signer: the stored signing key is malformed");
  }
  SECTION("a fingerprint that does not match the public key") {
    records::KeyVersionRecord r = good;
    r.set_key_material_id(std::string(64, 'a'));
    expect(r.SerializeAsString(), StatusCode::kDataLoss,
           "audit signer: the stored signing key is malformed");
  }
  SECTION("another appliance's domain key") {
    auto foreign = kms::testing::NewFakeHsm();
    expect(good.SerializeAsString(), StatusCode::kDataLoss,
           "audit signer: the stored signing key does not unwrap under this domain key",
           foreign.get());
  }
  SECTION("a public key swapped for another valid one") {
    // Another key's public half with its own fingerprint: it parses, but the probe signature made
    // with the wrapped private key does not verify under it.
    auto other_hsm = kms::testing::NewFakeHsm();
    auto other_store = OpenStore(dir.File("other.db"));
    auto other = OpenSigner(*other_hsm, *other_store);
    records::KeyVersionRecord r = good;
    r.set_public_key_der(ToString(other->public_key_der()));
    r.set_key_material_id(HexEncode(AuditLineHash(ToString(other->public_key_der()))));
    PutMeta(*s, kAuditSigningKeyMeta, r.SerializeAsString());
    auto opened = HsmAuditSigner::Open(*hsm, *s);
    REQUIRE_FALSE(opened.has_value());
    // The fake refuses an unwrap whose public key does not belong to the private key, or (if it
    // accepted it) the probe fails: either way the signer never starts.
    CHECK(opened.error().code() == StatusCode::kDataLoss);
  }
}

}  // namespace
}  // namespace kms::firmware::audit
