#include "tests/support/fake_hsm.h"

#include <mbedtls/aes.h>
#include <mbedtls/asn1.h>
#include <mbedtls/asn1write.h>
#include <mbedtls/bignum.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/gcm.h>
#include <mbedtls/md.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/rsa.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace kms::testing {

using hal::Capabilities;
using hal::ExportedKeyPair;
using hal::GcmCiphertext;
using hal::HashAlgorithm;
using hal::KeyAlgorithm;
using hal::KeyHandle;
using hal::KeyPurpose;
using hal::LoadedKey;
using hal::SignatureAlgorithm;
using hal::WrappedKey;

namespace {

constexpr std::size_t kAes256KeySize = 32;
constexpr std::size_t kMaxHmacKeySize = 512;  // SoftHSM2's bound (docs/softhsm2.md "Mechanisms")
constexpr std::size_t kMaxRandomSize = 1 << 20;
constexpr std::size_t kMaxTokenDataLabel = 64;  // hal/hsm.h, as hal/pkcs11_hsm.cc
constexpr std::size_t kMaxTokenDataValue = 1024;

std::atomic<std::uint64_t> g_next_instance_id{1};

// --- small RAII wrappers over mbedTLS contexts ---------------------------------------------------
struct Pk {
  mbedtls_pk_context ctx;
  Pk() { mbedtls_pk_init(&ctx); }
  ~Pk() { mbedtls_pk_free(&ctx); }
  Pk(const Pk&) = delete;
  Pk& operator=(const Pk&) = delete;
};
struct Mpi {
  mbedtls_mpi v;
  Mpi() { mbedtls_mpi_init(&v); }
  ~Mpi() { mbedtls_mpi_free(&v); }
  Mpi(const Mpi&) = delete;
  Mpi& operator=(const Mpi&) = delete;
};
struct Aes {
  mbedtls_aes_context ctx;
  Aes() { mbedtls_aes_init(&ctx); }
  ~Aes() { mbedtls_aes_free(&ctx); }
  Aes(const Aes&) = delete;
  Aes& operator=(const Aes&) = delete;
};
struct Gcm {
  mbedtls_gcm_context ctx;
  Gcm() { mbedtls_gcm_init(&ctx); }
  ~Gcm() { mbedtls_gcm_free(&ctx); }
  Gcm(const Gcm&) = delete;
  Gcm& operator=(const Gcm&) = delete;
};

Status UsageError(std::string m) {
  return InvalidArgumentError(std::move(m), Reason::kInvalidKeyUsage);
}
Status Unsupported(std::string m) {
  return UnimplementedError(std::move(m), Reason::kMechanismUnsupported);
}
Status BadCiphertext() {
  return InvalidArgumentError("invalid ciphertext", Reason::kInvalidCiphertext);
}
Status BadSignature() {
  return InvalidArgumentError("invalid signature", Reason::kInvalidSignature);
}
Status BadMac() { return InvalidArgumentError("invalid MAC", Reason::kInvalidMac); }
Status MbedError(const char* what, int rc) {
  return InternalError(std::string(what) + " failed (mbedTLS " + std::to_string(rc) + ")");
}

mbedtls_md_type_t MdType(HashAlgorithm h) {
  switch (h) {
    case HashAlgorithm::kSha1:
      return MBEDTLS_MD_SHA1;
    case HashAlgorithm::kSha224:
      return MBEDTLS_MD_SHA224;
    case HashAlgorithm::kSha256:
      return MBEDTLS_MD_SHA256;
    case HashAlgorithm::kSha384:
      return MBEDTLS_MD_SHA384;
    case HashAlgorithm::kSha512:
      return MBEDTLS_MD_SHA512;
  }
  return MBEDTLS_MD_NONE;
}

std::optional<mbedtls_ecp_group_id> CurveOf(KeyAlgorithm a) {
  switch (a) {
    case KeyAlgorithm::kEcP256:
      return MBEDTLS_ECP_DP_SECP256R1;
    case KeyAlgorithm::kEcP384:
      return MBEDTLS_ECP_DP_SECP384R1;
    case KeyAlgorithm::kEcP521:
      return MBEDTLS_ECP_DP_SECP521R1;
    case KeyAlgorithm::kEcSecp256k1:
      return MBEDTLS_ECP_DP_SECP256K1;
    default:
      return std::nullopt;
  }
}

unsigned RsaBits(KeyAlgorithm a) {
  switch (a) {
    case KeyAlgorithm::kRsa2048:
      return 2048;
    case KeyAlgorithm::kRsa3072:
      return 3072;
    case KeyAlgorithm::kRsa4096:
      return 4096;
    default:
      return 0;
  }
}

std::size_t HmacGeneratedKeySize(KeyAlgorithm a) {
  // hal/key_types.h: SHA-224 keys are 32 bytes (a multiple of 8, for SoftHSM's KWP), others the
  // digest.
  return a == KeyAlgorithm::kHmacSha224 ? 32 : hal::DigestSize(*hal::HmacHashOf(a));
}

bool IsEcdsa(SignatureAlgorithm s) {
  return s == SignatureAlgorithm::kEcdsaSha256 || s == SignatureAlgorithm::kEcdsaSha384 ||
         s == SignatureAlgorithm::kEcdsaSha512;
}
bool IsPss(SignatureAlgorithm s) {
  return s == SignatureAlgorithm::kRsaPssSha256 || s == SignatureAlgorithm::kRsaPssSha384 ||
         s == SignatureAlgorithm::kRsaPssSha512;
}

// Checks that a parsed pk matches the declared algorithm (type, curve, modulus size).
Status CheckPkMatches(mbedtls_pk_context* pk, KeyAlgorithm algorithm) {
  if (hal::IsRsa(algorithm)) {
    if (mbedtls_pk_get_type(pk) != MBEDTLS_PK_RSA) return InvalidArgumentError("not an RSA key");
    if (mbedtls_pk_get_bitlen(pk) != RsaBits(algorithm)) {
      return InvalidArgumentError("RSA modulus size does not match the key algorithm");
    }
    return Status::Ok();
  }
  auto curve = CurveOf(algorithm);
  if (!curve) return InvalidArgumentError("not an asymmetric key algorithm");
  if (mbedtls_pk_get_type(pk) != MBEDTLS_PK_ECKEY) return InvalidArgumentError("not an EC key");
  const mbedtls_ecp_keypair* ec = mbedtls_pk_ec(*pk);
  if (ec == nullptr || ec->grp.id != *curve) {
    return InvalidArgumentError("EC curve does not match the key algorithm");
  }
  return Status::Ok();
}

StatusOr<Bytes> WritePublicDer(mbedtls_pk_context* pk) {
  Bytes buf(4096);
  int n = mbedtls_pk_write_pubkey_der(pk, buf.data(), buf.size());
  if (n < 0) return MbedError("mbedtls_pk_write_pubkey_der", n);
  // mbedTLS writes at the end of the buffer.
  return Bytes(buf.end() - n, buf.end());
}

// DER PKCS#8 PrivateKeyInfo (RFC 5208 §5) around mbedTLS's PKCS#1 / SEC1 private key encoding:
//   SEQUENCE { INTEGER 0, AlgorithmIdentifier, OCTET STRING privateKey }
StatusOr<SecretBytes> WritePkcs8(mbedtls_pk_context* pk) {
  SecretBytes inner(8192);
  int n = mbedtls_pk_write_key_der(pk, inner.ExposeSecretMutable().data(), inner.size());
  if (n < 0) return MbedError("mbedtls_pk_write_key_der", n);
  auto inner_len = static_cast<std::size_t>(n);
  SecretBytes out(inner_len + 128);
  unsigned char* start = out.ExposeSecretMutable().data();
  unsigned char* p = start + out.size();
  std::size_t len = 0;
  auto add = [&len](int r) -> bool {
    if (r < 0) return false;
    len += static_cast<std::size_t>(r);
    return true;
  };
  const unsigned char* inner_begin = inner.ExposeSecret().data() + (inner.size() - inner_len);
  bool ok = add(mbedtls_asn1_write_raw_buffer(&p, start, inner_begin, inner_len)) &&
            add(mbedtls_asn1_write_len(&p, start, inner_len)) &&
            add(mbedtls_asn1_write_tag(&p, start, MBEDTLS_ASN1_OCTET_STRING));
  if (!ok) return InternalError("PKCS#8 encoding failed");
  const char* oid = nullptr;
  std::size_t oid_len = 0;
  std::size_t par_len = 0;
  if (mbedtls_pk_get_type(pk) == MBEDTLS_PK_RSA) {
    if (mbedtls_oid_get_oid_by_pk_alg(MBEDTLS_PK_RSA, &oid, &oid_len) != 0) {
      return InternalError("no RSA OID");
    }
  } else {
    const char* curve_oid = nullptr;
    std::size_t curve_oid_len = 0;
    if (mbedtls_oid_get_oid_by_ec_grp(mbedtls_pk_ec(*pk)->grp.id, &curve_oid, &curve_oid_len) !=
            0 ||
        mbedtls_oid_get_oid_by_pk_alg(MBEDTLS_PK_ECKEY, &oid, &oid_len) != 0) {
      return InternalError("no EC OID");
    }
    int r = mbedtls_asn1_write_oid(&p, start, curve_oid, curve_oid_len);
    if (r < 0) return InternalError("PKCS#8 encoding failed");
    par_len = static_cast<std::size_t>(r);
  }
  // Returns the length including the parameters already written (par_len), or writes NULL if 0.
  int alg_len = mbedtls_asn1_write_algorithm_identifier(&p, start, oid, oid_len, par_len);
  if (alg_len < 0) return InternalError("PKCS#8 encoding failed");
  len += static_cast<std::size_t>(alg_len);
  ok = add(mbedtls_asn1_write_int(&p, start, 0)) && add(mbedtls_asn1_write_len(&p, start, len)) &&
       add(mbedtls_asn1_write_tag(&p, start, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
  if (!ok) return InternalError("PKCS#8 encoding failed");
  return SecretBytes::CopyFrom(ByteView(p, len));
}

// --- strict DER for ECDSA signatures (X.690 §10.1: definite, minimal lengths) --------------------
bool ReadDerLength(ByteView in, std::size_t& pos, std::size_t& len) {
  if (pos >= in.size()) return false;
  std::uint8_t b = in[pos++];
  if (b < 0x80) {
    len = b;
    return true;
  }
  if (b == 0x81) {
    if (pos >= in.size() || in[pos] < 0x80) return false;  // short form was required
    len = in[pos++];
    return true;
  }
  if (b == 0x82) {
    if (pos + 1 >= in.size() || in[pos] == 0) return false;  // one length byte was enough
    len = (static_cast<std::size_t>(in[pos]) << 8) | in[pos + 1];
    pos += 2;
    return true;
  }
  return false;  // indefinite (0x80) or longer than any ECDSA signature
}

bool ReadDerPositiveInteger(ByteView in, std::size_t& pos, std::size_t end, mbedtls_mpi* out) {
  if (pos >= end || in[pos++] != MBEDTLS_ASN1_INTEGER) return false;
  std::size_t len = 0;
  if (!ReadDerLength(in, pos, len) || len == 0 || len > end - pos) return false;
  ByteView v = in.subspan(pos, len);
  if ((v[0] & 0x80) != 0) return false;                          // negative
  if (len > 1 && v[0] == 0 && (v[1] & 0x80) == 0) return false;  // non-minimal
  if (mbedtls_mpi_read_binary(out, v.data(), v.size()) != 0) return false;
  pos += len;
  return true;
}

// Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } (RFC 3279 §2.2.3), nothing before or after.
bool ParseDerEcdsaSignature(ByteView sig, mbedtls_mpi* r, mbedtls_mpi* s) {
  std::size_t pos = 0;
  if (sig.empty() || sig[pos++] != (MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)) return false;
  std::size_t len = 0;
  if (!ReadDerLength(sig, pos, len) || len != sig.size() - pos) return false;
  std::size_t end = sig.size();
  return ReadDerPositiveInteger(sig, pos, end, r) && ReadDerPositiveInteger(sig, pos, end, s) &&
         pos == end;
}

// --- RFC 5649 on AES-ECB -------------------------------------------------------------------------
constexpr std::array<std::uint8_t, 4> kKwpIvPrefix = {0xA6, 0x59, 0x59, 0xA6};  // RFC 5649 §3

bool AesKeySizeOk(std::size_t n) { return n == 16 || n == 24 || n == 32; }

}  // namespace

StatusOr<Bytes> AesKwpWrap(const SecretBytes& kek, const SecretBytes& plaintext) {
  if (!AesKeySizeOk(kek.size())) return InvalidArgumentError("KEK must be 16, 24 or 32 bytes");
  const std::size_t m = plaintext.size();
  if (m == 0 || m > 0xFFFFFFFFu)
    return InvalidArgumentError("KWP plaintext must be 1..2^32-1 bytes");
  const std::size_t n = (m + 7) / 8;
  Aes aes;
  if (mbedtls_aes_setkey_enc(&aes.ctx, kek.ExposeSecret().data(),
                             static_cast<unsigned>(kek.size() * 8)) != 0) {
    return InternalError("AES key setup failed");
  }
  // A = AIV (RFC 5649 §3: 0xA65959A6 || 32-bit big-endian MLI); R = P zero-padded to n blocks.
  std::array<std::uint8_t, 8> a{};
  std::memcpy(a.data(), kKwpIvPrefix.data(), 4);
  for (int i = 0; i < 4; ++i)
    a[static_cast<std::size_t>(3 - i) + 4] = static_cast<std::uint8_t>(m >> (8 * i));
  SecretBytes r(n * 8);
  std::memcpy(r.ExposeSecretMutable().data(), plaintext.ExposeSecret().data(), m);
  SecretBytes block(16);
  auto b = block.ExposeSecretMutable();
  Bytes out((n + 1) * 8);
  if (n == 1) {
    // RFC 5649 §4.1: a single block is encrypted with AES in ECB mode.
    std::memcpy(b.data(), a.data(), 8);
    std::memcpy(b.data() + 8, r.ExposeSecret().data(), 8);
    if (mbedtls_aes_crypt_ecb(&aes.ctx, MBEDTLS_AES_ENCRYPT, b.data(), out.data()) != 0) {
      return InternalError("AES failed");
    }
    return out;
  }
  // RFC 3394 §2.2.1 W() with the alternative initial value.
  auto rv = r.ExposeSecretMutable();
  for (std::uint64_t j = 0; j < 6; ++j) {
    for (std::size_t i = 0; i < n; ++i) {
      std::memcpy(b.data(), a.data(), 8);
      std::memcpy(b.data() + 8, rv.data() + 8 * i, 8);
      if (mbedtls_aes_crypt_ecb(&aes.ctx, MBEDTLS_AES_ENCRYPT, b.data(), b.data()) != 0) {
        return InternalError("AES failed");
      }
      std::uint64_t t = n * j + i + 1;
      for (int k = 0; k < 8; ++k) {
        a[static_cast<std::size_t>(k)] =
            b[static_cast<std::size_t>(k)] ^ static_cast<std::uint8_t>(t >> (8 * (7 - k)));
      }
      std::memcpy(rv.data() + 8 * i, b.data() + 8, 8);
    }
  }
  std::memcpy(out.data(), a.data(), 8);
  std::memcpy(out.data() + 8, rv.data(), n * 8);
  return out;
}

StatusOr<SecretBytes> AesKwpUnwrap(const SecretBytes& kek, ByteView wrapped) {
  if (!AesKeySizeOk(kek.size())) return InvalidArgumentError("KEK must be 16, 24 or 32 bytes");
  if (wrapped.size() < 16 || wrapped.size() % 8 != 0) return BadCiphertext();
  const std::size_t n = wrapped.size() / 8 - 1;
  Aes aes;
  if (mbedtls_aes_setkey_dec(&aes.ctx, kek.ExposeSecret().data(),
                             static_cast<unsigned>(kek.size() * 8)) != 0) {
    return InternalError("AES key setup failed");
  }
  std::array<std::uint8_t, 8> a{};
  SecretBytes r(n * 8);
  auto rv = r.ExposeSecretMutable();
  SecretBytes block(16);
  auto b = block.ExposeSecretMutable();
  if (n == 1) {
    if (mbedtls_aes_crypt_ecb(&aes.ctx, MBEDTLS_AES_DECRYPT, wrapped.data(), b.data()) != 0) {
      return InternalError("AES failed");
    }
    std::memcpy(a.data(), b.data(), 8);
    std::memcpy(rv.data(), b.data() + 8, 8);
  } else {
    // RFC 3394 §2.2.2 W^-1().
    std::memcpy(a.data(), wrapped.data(), 8);
    std::memcpy(rv.data(), wrapped.data() + 8, n * 8);
    for (std::uint64_t j = 6; j-- > 0;) {
      for (std::size_t i = n; i-- > 0;) {
        std::uint64_t t = n * j + i + 1;
        for (int k = 0; k < 8; ++k) {
          b[static_cast<std::size_t>(k)] =
              a[static_cast<std::size_t>(k)] ^ static_cast<std::uint8_t>(t >> (8 * (7 - k)));
        }
        std::memcpy(b.data() + 8, rv.data() + 8 * i, 8);
        if (mbedtls_aes_crypt_ecb(&aes.ctx, MBEDTLS_AES_DECRYPT, b.data(), b.data()) != 0) {
          return InternalError("AES failed");
        }
        std::memcpy(a.data(), b.data(), 8);
        std::memcpy(rv.data() + 8 * i, b.data() + 8, 8);
      }
    }
  }
  // RFC 5649 §3 integrity checks: the prefix, 8*(n-1) < MLI <= 8*n, and zero padding. All failures
  // look the same to the caller (no padding oracle).
  std::uint32_t mli = (std::uint32_t{a[4]} << 24) | (std::uint32_t{a[5]} << 16) |
                      (std::uint32_t{a[6]} << 8) | std::uint32_t{a[7]};
  bool ok = std::memcmp(a.data(), kKwpIvPrefix.data(), 4) == 0;  // not secret: the public AIV
  ok = ok && mli > 8 * (n - 1) && mli <= 8 * n;
  std::uint8_t pad_or = 0;
  for (std::size_t i = ok ? mli : n * 8; i < n * 8; ++i) pad_or |= rv[i];
  ok = ok && pad_or == 0;
  if (!ok) return BadCiphertext();
  r.resize(mli);
  return r;
}

// ---------------------------------------------------------------------------------------------------
// State shared by a fake and the keys it made.
struct FakeHsm::State {
  std::uint64_t instance_id = g_next_instance_id.fetch_add(1);
  std::atomic<std::uint64_t> generation{0};
  std::shared_ptr<std::atomic<std::size_t>> loaded_keys =
      std::make_shared<std::atomic<std::size_t>>(0);
  std::shared_ptr<const SecretBytes> domain_key;
  // The token's objects (ReadTokenData / WriteTokenData). They live on "the token", so siblings
  // (the same device after a restart) share them.
  struct TokenData {
    std::mutex mu;
    std::map<std::string, Bytes, std::less<>> values;
  };
  std::shared_ptr<TokenData> token_data = std::make_shared<TokenData>();

  // Injected failures (FakeHsm::InjectFailure): skip `fault_after` calls, then fail `fault_count`.
  std::mutex fault_mu;
  Status fault_status;
  std::size_t fault_after = 0;
  std::size_t fault_count = 0;

  Status TakeFault() {
    std::lock_guard<std::mutex> lock(fault_mu);
    if (fault_count == 0) return Status::Ok();
    if (fault_after > 0) {
      --fault_after;
      return Status::Ok();
    }
    --fault_count;
    return fault_status;
  }

  std::mutex rng_mu;
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;

  State() {
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
  }
  ~State() {
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
  }
  State(const State&) = delete;
  State& operator=(const State&) = delete;

  // The f_rng callback mbedTLS functions take; serialises the DRBG.
  static int Random(void* self, unsigned char* out, std::size_t len) {
    auto* st = static_cast<State*>(self);
    std::lock_guard<std::mutex> lock(st->rng_mu);
    return mbedtls_ctr_drbg_random(&st->drbg, out, len);
  }
};

namespace {

StatusOr<SecretBytes> RandomBytes(FakeHsm::State& st, std::size_t size) {
  if (size > kMaxRandomSize) return InvalidArgumentError("at most 1 MiB of random bytes per call");
  SecretBytes out(size);
  // CTR-DRBG caps a request at MBEDTLS_CTR_DRBG_MAX_REQUEST bytes.
  std::size_t done = 0;
  while (done < size) {
    std::size_t n = std::min<std::size_t>(size - done, MBEDTLS_CTR_DRBG_MAX_REQUEST);
    if (int rc = FakeHsm::State::Random(&st, out.ExposeSecretMutable().data() + done, n); rc != 0) {
      return MbedError("RNG", rc);
    }
    done += n;
  }
  return out;
}

// A key in the fake. Immutable once made, so operations need no lock.
class FakeKey final : public LoadedKey {
 public:
  FakeKey(KeyAlgorithm algorithm, KeyPurpose purpose, std::uint64_t owner, std::uint64_t generation,
          bool wrappable, SecretBytes secret, Bytes public_der,
          std::shared_ptr<std::atomic<std::size_t>> counter)
      : LoadedKey(algorithm, purpose),
        owner_(owner),
        generation_(generation),
        wrappable_(wrappable),
        secret_(std::move(secret)),
        public_der_(std::move(public_der)),
        counter_(std::move(counter)) {
    counter_->fetch_add(1);
  }
  ~FakeKey() override { counter_->fetch_sub(1); }

  std::uint64_t owner() const { return owner_; }
  std::uint64_t generation() const { return generation_; }
  bool wrappable() const { return wrappable_; }
  bool has_secret() const { return !secret_.empty(); }
  // Raw AES/HMAC bytes, or DER PKCS#8 for a private key; empty for a public-only key.
  const SecretBytes& secret() const { return secret_; }
  const Bytes& public_der() const { return public_der_; }

  // Parses the key into `pk` (private if present, else public).
  Status Load(Pk& pk) const {
    int rc = has_secret()
                 ? mbedtls_pk_parse_key(&pk.ctx, secret_.ExposeSecret().data(), secret_.size(),
                                        nullptr, 0)
                 : mbedtls_pk_parse_public_key(&pk.ctx, public_der_.data(), public_der_.size());
    if (rc != 0) return MbedError("loading a key", rc);
    return Status::Ok();
  }

 private:
  std::uint64_t owner_;
  std::uint64_t generation_;
  bool wrappable_;
  SecretBytes secret_;
  Bytes public_der_;
  std::shared_ptr<std::atomic<std::size_t>> counter_;
};

}  // namespace

namespace {

// Resolves a handle: ours, not stale, of the wanted purpose.
StatusOr<const FakeKey*> Resolve(const FakeHsm::State& st, const KeyHandle& handle) {
  if (!handle) return InvalidArgumentError("null key handle");
  const auto* key = dynamic_cast<const FakeKey*>(handle.get());
  if (key == nullptr || key->owner() != st.instance_id) {
    return InvalidArgumentError("key handle belongs to another HSM");
  }
  if (key->generation() != st.generation.load()) {
    return UnavailableError("key handle outlived a device re-initialisation", Reason::kHandleStale);
  }
  return key;
}

StatusOr<const FakeKey*> ResolveFor(const FakeHsm::State& st, const KeyHandle& handle,
                                    KeyPurpose purpose) {
  KMS_ASSIGN_OR_RETURN(const FakeKey* key, Resolve(st, handle));
  if (key->purpose() != purpose) {
    return UsageError("key purpose is " + std::string(hal::KeyPurposeName(key->purpose())) +
                      ", not " + std::string(hal::KeyPurposeName(purpose)));
  }
  return key;
}

}  // namespace

hal::Capabilities FakeHsmFullCapabilities() {
  Capabilities c;
  c.key_algorithms = {
      KeyAlgorithm::kAes256,     KeyAlgorithm::kHmacSha224, KeyAlgorithm::kHmacSha256,
      KeyAlgorithm::kHmacSha384, KeyAlgorithm::kHmacSha512, KeyAlgorithm::kRsa2048,
      KeyAlgorithm::kRsa3072,    KeyAlgorithm::kRsa4096,    KeyAlgorithm::kEcP256,
      KeyAlgorithm::kEcP384,     KeyAlgorithm::kEcP521,     KeyAlgorithm::kEcSecp256k1};
  c.signature_algorithms = {
      SignatureAlgorithm::kRsaPssSha256,   SignatureAlgorithm::kRsaPssSha384,
      SignatureAlgorithm::kRsaPssSha512,   SignatureAlgorithm::kRsaPkcs1Sha256,
      SignatureAlgorithm::kRsaPkcs1Sha384, SignatureAlgorithm::kRsaPkcs1Sha512,
      SignatureAlgorithm::kEcdsaSha256,    SignatureAlgorithm::kEcdsaSha384,
      SignatureAlgorithm::kEcdsaSha512};
  c.oaep_hashes = {HashAlgorithm::kSha1, HashAlgorithm::kSha224, HashAlgorithm::kSha256,
                   HashAlgorithm::kSha384, HashAlgorithm::kSha512};
  c.aes_gcm = true;
  c.key_wrap_pad = true;
  return c;
}

hal::Capabilities SoftHsm2LikeCapabilities() {
  Capabilities c = FakeHsmFullCapabilities();
  c.oaep_hashes = {HashAlgorithm::kSha1};  // CKM_RSA_PKCS_OAEP: SHA-1/MGF1-SHA1 only
  return c;
}

std::unique_ptr<FakeHsm> NewFakeHsm(FakeHsmOptions options) {
  return std::make_unique<FakeHsm>(std::move(options));
}

FakeHsm::FakeHsm(FakeHsmOptions options) : FakeHsm(std::move(options), nullptr) {}

FakeHsm::FakeHsm(FakeHsmOptions options, std::shared_ptr<const SecretBytes> domain_key)
    : capabilities_(std::move(options.capabilities)), state_(std::make_unique<State>()) {
  static constexpr char kPersonalisation[] = "kms fake hsm";
  int rc = mbedtls_ctr_drbg_seed(&state_->drbg, mbedtls_entropy_func, &state_->entropy,
                                 reinterpret_cast<const unsigned char*>(kPersonalisation),
                                 sizeof(kPersonalisation) - 1);
  if (rc != 0) std::abort();  // a test fixture without randomness is useless
  if (!domain_key) {
    SecretBytes dk(kAes256KeySize);
    if (State::Random(state_.get(), dk.ExposeSecretMutable().data(), dk.size()) != 0) std::abort();
    domain_key = std::make_shared<const SecretBytes>(std::move(dk));
  }
  state_->domain_key = std::move(domain_key);
}

FakeHsm::~FakeHsm() = default;

std::unique_ptr<FakeHsm> FakeHsm::NewSibling() const {
  FakeHsmOptions options;
  options.capabilities = capabilities_;
  auto sibling = std::unique_ptr<FakeHsm>(new FakeHsm(std::move(options), state_->domain_key));
  sibling->state_->token_data = state_->token_data;
  return sibling;
}

void FakeHsm::SimulateReinitialize() { state_->generation.fetch_add(1); }

std::size_t FakeHsm::LoadedKeyCount() const { return state_->loaded_keys->load(); }

const hal::Capabilities& FakeHsm::capabilities() const { return capabilities_; }

namespace {

KeyHandle MakeKey(FakeHsm::State& st, KeyAlgorithm algorithm, KeyPurpose purpose, bool wrappable,
                  SecretBytes secret, Bytes public_der) {
  return std::make_shared<const FakeKey>(algorithm, purpose, st.instance_id, st.generation.load(),
                                         wrappable, std::move(secret), std::move(public_der),
                                         st.loaded_keys);
}

// Makes a fresh asymmetric key pair: PKCS#8 private part and SPKI public part.
StatusOr<std::pair<SecretBytes, Bytes>> NewKeyPair(FakeHsm::State& st, KeyAlgorithm algorithm) {
  Pk pk;
  if (hal::IsRsa(algorithm)) {
    int rc = mbedtls_pk_setup(&pk.ctx, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA));
    if (rc == 0) {
      rc = mbedtls_rsa_gen_key(mbedtls_pk_rsa(pk.ctx), &FakeHsm::State::Random, &st,
                               RsaBits(algorithm), 65537);
    }
    if (rc != 0) return MbedError("RSA key generation", rc);
  } else {
    int rc = mbedtls_pk_setup(&pk.ctx, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
    if (rc == 0) {
      rc = mbedtls_ecp_gen_key(*CurveOf(algorithm), mbedtls_pk_ec(pk.ctx), &FakeHsm::State::Random,
                               &st);
    }
    if (rc != 0) return MbedError("EC key generation", rc);
  }
  KMS_ASSIGN_OR_RETURN(SecretBytes priv, WritePkcs8(&pk.ctx));
  KMS_ASSIGN_OR_RETURN(Bytes pub, WritePublicDer(&pk.ctx));
  return std::make_pair(std::move(priv), std::move(pub));
}

// Whether `der` is shaped as a PKCS#8 PrivateKeyInfo (RFC 5208 §5: SEQUENCE { INTEGER version,
// SEQUENCE AlgorithmIdentifier, ... }), not PKCS#1 RSAPrivateKey or SEC1 ECPrivateKey (whose second
// element is an INTEGER or an OCTET STRING), which mbedtls_pk_parse_key would also take.
bool LooksLikePkcs8(ByteView der) {
  auto* p = const_cast<unsigned char*>(der.data());
  const unsigned char* end = der.data() + der.size();
  std::size_t len = 0;
  if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0 ||
      static_cast<std::size_t>(end - p) != len) {
    return false;
  }
  int version = -1;
  if (mbedtls_asn1_get_int(&p, end, &version) != 0 || version != 0) return false;
  return mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) == 0;
}

// Parses PKCS#8 private key material for `algorithm`; returns the canonical PKCS#8 and the SPKI.
StatusOr<std::pair<SecretBytes, Bytes>> ParsePrivate(KeyAlgorithm algorithm, ByteView der,
                                                     Status on_error) {
  Pk pk;
  if (der.empty() || !LooksLikePkcs8(der) ||
      mbedtls_pk_parse_key(&pk.ctx, der.data(), der.size(), nullptr, 0) != 0) {
    return on_error;
  }
  if (!CheckPkMatches(&pk.ctx, algorithm).ok()) return on_error;
  KMS_ASSIGN_OR_RETURN(SecretBytes priv, WritePkcs8(&pk.ctx));
  KMS_ASSIGN_OR_RETURN(Bytes pub, WritePublicDer(&pk.ctx));
  return std::make_pair(std::move(priv), std::move(pub));
}

Status CheckSymmetricSize(KeyAlgorithm algorithm, std::size_t size) {
  if (algorithm == KeyAlgorithm::kAes256) {
    if (size != kAes256KeySize) return InvalidArgumentError("AES-256 keys are 32 bytes");
    return Status::Ok();
  }
  std::size_t min = hal::DigestSize(*hal::HmacHashOf(algorithm));
  if (size < min || size > kMaxHmacKeySize) {
    return InvalidArgumentError("HMAC key must be from " + std::to_string(min) + " to " +
                                std::to_string(kMaxHmacKeySize) + " bytes");
  }
  return Status::Ok();
}

}  // namespace

StatusOr<KeyHandle> FakeHsm::GenerateKey(KeyAlgorithm algorithm, KeyPurpose purpose) {
  KMS_RETURN_IF_ERROR(state_->TakeFault());
  if (!hal::PurposeAllowed(algorithm, purpose)) {
    return UsageError(std::string(hal::KeyAlgorithmName(algorithm)) + " keys cannot be used for " +
                      std::string(hal::KeyPurposeName(purpose)));
  }
  if (!capabilities_.key_algorithms.contains(algorithm)) {
    return Unsupported(std::string(hal::KeyAlgorithmName(algorithm)) + " is not supported");
  }
  if (hal::IsSymmetric(algorithm)) {
    std::size_t size =
        algorithm == KeyAlgorithm::kAes256 ? kAes256KeySize : HmacGeneratedKeySize(algorithm);
    KMS_ASSIGN_OR_RETURN(SecretBytes secret, RandomBytes(*state_, size));
    return MakeKey(*state_, algorithm, purpose, /*wrappable=*/true, std::move(secret), Bytes());
  }
  KMS_ASSIGN_OR_RETURN(auto pair, NewKeyPair(*state_, algorithm));
  return MakeKey(*state_, algorithm, purpose, /*wrappable=*/true, std::move(pair.first),
                 std::move(pair.second));
}

StatusOr<WrappedKey> FakeHsm::WrapKey(const KeyHandle& handle) {
  KMS_RETURN_IF_ERROR(state_->TakeFault());
  KMS_ASSIGN_OR_RETURN(const FakeKey* key, Resolve(*state_, handle));
  if (!capabilities_.key_wrap_pad) return Unsupported("AES key wrap with padding is not supported");
  // Imported keys and public keys are not extractable (hal/hsm.h: ImportKey "cannot be wrapped").
  if (!key->wrappable() || !key->has_secret()) {
    return FailedPreconditionError("key is not wrappable", Reason::kPolicyViolation);
  }
  KMS_ASSIGN_OR_RETURN(Bytes blob, AesKwpWrap(*state_->domain_key, key->secret()));
  WrappedKey out;
  out.algorithm = key->algorithm();
  out.purpose = key->purpose();
  out.wrapped = std::move(blob);
  out.public_key_der = key->public_der();
  return out;
}

StatusOr<KeyHandle> FakeHsm::UnwrapKey(const WrappedKey& wrapped) {
  KMS_RETURN_IF_ERROR(state_->TakeFault());
  if (!hal::PurposeAllowed(wrapped.algorithm, wrapped.purpose)) {
    return UsageError("wrapped key has a purpose its algorithm does not allow");
  }
  if (!capabilities_.key_wrap_pad) return Unsupported("AES key wrap with padding is not supported");
  if (!capabilities_.key_algorithms.contains(wrapped.algorithm)) {
    return Unsupported(std::string(hal::KeyAlgorithmName(wrapped.algorithm)) + " is not supported");
  }
  KMS_ASSIGN_OR_RETURN(SecretBytes material, AesKwpUnwrap(*state_->domain_key, wrapped.wrapped));
  if (hal::IsSymmetric(wrapped.algorithm)) {
    // The blob authenticated but holds a key of another kind: refuse it the same way as tampering.
    std::size_t expected = wrapped.algorithm == KeyAlgorithm::kAes256
                               ? kAes256KeySize
                               : HmacGeneratedKeySize(wrapped.algorithm);
    if (material.size() != expected) return BadCiphertext();
    // hal/hsm.h: an unwrapped key is a non-extractable session key, so it cannot be wrapped again.
    return MakeKey(*state_, wrapped.algorithm, wrapped.purpose, /*wrappable=*/false,
                   std::move(material), Bytes());
  }
  KMS_ASSIGN_OR_RETURN(auto pair,
                       ParsePrivate(wrapped.algorithm, material.ExposeSecret(), BadCiphertext()));
  if (!wrapped.public_key_der.empty() && wrapped.public_key_der != pair.second) {
    return BadCiphertext();  // the stored public key is not the wrapped private key's
  }
  return MakeKey(*state_, wrapped.algorithm, wrapped.purpose, /*wrappable=*/false,
                 std::move(pair.first), std::move(pair.second));
}

StatusOr<KeyHandle> FakeHsm::ImportKey(KeyAlgorithm algorithm, KeyPurpose purpose,
                                       const SecretBytes& material) {
  KMS_RETURN_IF_ERROR(state_->TakeFault());
  if (!hal::PurposeAllowed(algorithm, purpose)) {
    return UsageError(std::string(hal::KeyAlgorithmName(algorithm)) + " keys cannot be used for " +
                      std::string(hal::KeyPurposeName(purpose)));
  }
  if (!capabilities_.key_algorithms.contains(algorithm)) {
    return Unsupported(std::string(hal::KeyAlgorithmName(algorithm)) + " is not supported");
  }
  if (hal::IsSymmetric(algorithm)) {
    KMS_RETURN_IF_ERROR(CheckSymmetricSize(algorithm, material.size()));
    return MakeKey(*state_, algorithm, purpose, /*wrappable=*/false, material.Clone(), Bytes());
  }
  KMS_ASSIGN_OR_RETURN(
      auto pair,
      ParsePrivate(algorithm, material.ExposeSecret(),
                   InvalidArgumentError("key material is not a DER PKCS#8 " +
                                        std::string(hal::KeyAlgorithmName(algorithm)) + " key")));
  return MakeKey(*state_, algorithm, purpose, /*wrappable=*/false, std::move(pair.first),
                 std::move(pair.second));
}

StatusOr<KeyHandle> FakeHsm::ImportPublicKey(KeyAlgorithm algorithm, KeyPurpose purpose,
                                             ByteView public_key_der) {
  KMS_RETURN_IF_ERROR(state_->TakeFault());
  if (hal::IsSymmetric(algorithm)) return UsageError("symmetric keys have no public key");
  if (!hal::PurposeAllowed(algorithm, purpose)) {
    return UsageError(std::string(hal::KeyAlgorithmName(algorithm)) + " keys cannot be used for " +
                      std::string(hal::KeyPurposeName(purpose)));
  }
  if (!capabilities_.key_algorithms.contains(algorithm)) {
    return Unsupported(std::string(hal::KeyAlgorithmName(algorithm)) + " is not supported");
  }
  Pk pk;
  if (public_key_der.empty() ||
      mbedtls_pk_parse_public_key(&pk.ctx, public_key_der.data(), public_key_der.size()) != 0) {
    return InvalidArgumentError("not a DER SubjectPublicKeyInfo");
  }
  KMS_RETURN_IF_ERROR(CheckPkMatches(&pk.ctx, algorithm));
  KMS_ASSIGN_OR_RETURN(Bytes canonical, WritePublicDer(&pk.ctx));
  return MakeKey(*state_, algorithm, purpose, /*wrappable=*/false, SecretBytes(),
                 std::move(canonical));
}

StatusOr<Bytes> FakeHsm::PublicKeyDer(const KeyHandle& handle) {
  KMS_RETURN_IF_ERROR(state_->TakeFault());
  KMS_ASSIGN_OR_RETURN(const FakeKey* key, Resolve(*state_, handle));
  if (hal::IsSymmetric(key->algorithm())) return UsageError("symmetric keys have no public key");
  return key->public_der();
}

StatusOr<ExportedKeyPair> FakeHsm::GenerateExportableKeyPair(KeyAlgorithm algorithm) {
  KMS_RETURN_IF_ERROR(state_->TakeFault());
  if (hal::IsSymmetric(algorithm)) {
    return InvalidArgumentError("exportable key pairs are RSA or EC, not " +
                                std::string(hal::KeyAlgorithmName(algorithm)));
  }
  if (!capabilities_.key_algorithms.contains(algorithm)) {
    return Unsupported(std::string(hal::KeyAlgorithmName(algorithm)) + " is not supported");
  }
  KMS_ASSIGN_OR_RETURN(auto pair, NewKeyPair(*state_, algorithm));
  ExportedKeyPair out;
  out.private_key_pkcs8 = std::move(pair.first);
  out.public_key_der = std::move(pair.second);
  return out;
}

StatusOr<GcmCiphertext> FakeHsm::EncryptAesGcm(const KeyHandle& handle, ByteView plaintext,
                                               ByteView aad) {
  KMS_RETURN_IF_ERROR(state_->TakeFault());
  KMS_ASSIGN_OR_RETURN(const FakeKey* key,
                       ResolveFor(*state_, handle, KeyPurpose::kEncryptDecrypt));
  if (key->algorithm() != KeyAlgorithm::kAes256) return UsageError("AES-GCM needs an AES-256 key");
  if (!capabilities_.aes_gcm) return Unsupported("AES-GCM is not supported");
  GcmCiphertext out;
  out.iv.resize(hal::kGcmIvSize);
  out.tag.resize(hal::kGcmTagSize);
  out.ciphertext.resize(plaintext.size());
  if (int rc = State::Random(state_.get(), out.iv.data(), out.iv.size()); rc != 0) {
    return MbedError("RNG", rc);
  }
  Gcm gcm;
  int rc =
      mbedtls_gcm_setkey(&gcm.ctx, MBEDTLS_CIPHER_ID_AES, key->secret().ExposeSecret().data(), 256);
  if (rc == 0) {
    rc = mbedtls_gcm_crypt_and_tag(&gcm.ctx, MBEDTLS_GCM_ENCRYPT, plaintext.size(), out.iv.data(),
                                   out.iv.size(), aad.data(), aad.size(), plaintext.data(),
                                   out.ciphertext.data(), out.tag.size(), out.tag.data());
  }
  if (rc != 0) return MbedError("AES-GCM encrypt", rc);
  return out;
}

StatusOr<SecretBytes> FakeHsm::DecryptAesGcm(const KeyHandle& handle, ByteView iv,
                                             ByteView ciphertext, ByteView tag, ByteView aad) {
  KMS_RETURN_IF_ERROR(state_->TakeFault());
  KMS_ASSIGN_OR_RETURN(const FakeKey* key,
                       ResolveFor(*state_, handle, KeyPurpose::kEncryptDecrypt));
  if (key->algorithm() != KeyAlgorithm::kAes256) return UsageError("AES-GCM needs an AES-256 key");
  if (!capabilities_.aes_gcm) return Unsupported("AES-GCM is not supported");
  // NIST SP 800-38D §5.2.1.1/§5.2.1.2: the HAL's policy is a 96-bit IV and a 128-bit tag, both
  // ways.
  if (iv.size() != hal::kGcmIvSize) return InvalidArgumentError("AES-GCM IV must be 12 bytes");
  if (tag.size() != hal::kGcmTagSize) return InvalidArgumentError("AES-GCM tag must be 16 bytes");
  SecretBytes plaintext(ciphertext.size());
  Gcm gcm;
  int rc =
      mbedtls_gcm_setkey(&gcm.ctx, MBEDTLS_CIPHER_ID_AES, key->secret().ExposeSecret().data(), 256);
  if (rc != 0) return MbedError("AES-GCM key setup", rc);
  rc = mbedtls_gcm_auth_decrypt(&gcm.ctx, ciphertext.size(), iv.data(), iv.size(), aad.data(),
                                aad.size(), tag.data(), tag.size(), ciphertext.data(),
                                plaintext.ExposeSecretMutable().data());
  if (rc == MBEDTLS_ERR_GCM_AUTH_FAILED)
    return BadCiphertext();  // mbedTLS already wiped the output
  if (rc != 0) return MbedError("AES-GCM decrypt", rc);
  return plaintext;
}

StatusOr<Bytes> FakeHsm::SignDigest(const KeyHandle& handle, SignatureAlgorithm algorithm,
                                    ByteView digest) {
  KMS_RETURN_IF_ERROR(state_->TakeFault());
  KMS_ASSIGN_OR_RETURN(const FakeKey* key, ResolveFor(*state_, handle, KeyPurpose::kSignVerify));
  if (!hal::SignatureAllowed(key->algorithm(), algorithm)) {
    return UsageError(std::string(hal::SignatureAlgorithmName(algorithm)) +
                      " needs another key type");
  }
  if (!capabilities_.signature_algorithms.contains(algorithm)) {
    return Unsupported(std::string(hal::SignatureAlgorithmName(algorithm)) + " is not supported");
  }
  HashAlgorithm hash = hal::DigestOf(algorithm);
  if (digest.size() != hal::DigestSize(hash)) {
    return InvalidArgumentError("digest must be " + std::to_string(hal::DigestSize(hash)) +
                                " bytes");
  }
  if (!key->has_secret()) return UsageError("a public key cannot sign");
  Pk pk;
  KMS_RETURN_IF_ERROR(key->Load(pk));
  if (IsEcdsa(algorithm)) {
    Bytes sig(MBEDTLS_ECDSA_MAX_LEN);
    std::size_t len = 0;
    int rc = mbedtls_ecdsa_write_signature(mbedtls_pk_ec(pk.ctx), MdType(hash), digest.data(),
                                           digest.size(), sig.data(), &len, &State::Random,
                                           state_.get());
    if (rc != 0) return MbedError("ECDSA sign", rc);
    sig.resize(len);
    return sig;
  }
  mbedtls_rsa_context* rsa = mbedtls_pk_rsa(pk.ctx);
  Bytes sig(mbedtls_rsa_get_len(rsa));
  int rc = 0;
  if (IsPss(algorithm)) {
    // RFC 8017 §9.1 with MGF1 over the same hash and a salt as long as the digest (as AWS KMS
    // does).
    mbedtls_rsa_set_padding(rsa, MBEDTLS_RSA_PKCS_V21, MdType(hash));
    rc = mbedtls_rsa_rsassa_pss_sign_ext(rsa, &State::Random, state_.get(), MdType(hash),
                                         static_cast<unsigned>(digest.size()), digest.data(),
                                         static_cast<int>(digest.size()), sig.data());
  } else {
    mbedtls_rsa_set_padding(rsa, MBEDTLS_RSA_PKCS_V15, MBEDTLS_MD_NONE);
    rc = mbedtls_rsa_rsassa_pkcs1_v15_sign(rsa, &State::Random, state_.get(), MBEDTLS_RSA_PRIVATE,
                                           MdType(hash), static_cast<unsigned>(digest.size()),
                                           digest.data(), sig.data());
  }
  if (rc != 0) return MbedError("RSA sign", rc);
  return sig;
}

Status FakeHsm::VerifyDigest(const KeyHandle& handle, SignatureAlgorithm algorithm, ByteView digest,
                             ByteView signature) {
  KMS_RETURN_IF_ERROR(state_->TakeFault());
  KMS_ASSIGN_OR_RETURN(const FakeKey* key, ResolveFor(*state_, handle, KeyPurpose::kSignVerify));
  if (!hal::SignatureAllowed(key->algorithm(), algorithm)) {
    return UsageError(std::string(hal::SignatureAlgorithmName(algorithm)) +
                      " needs another key type");
  }
  if (!capabilities_.signature_algorithms.contains(algorithm)) {
    return Unsupported(std::string(hal::SignatureAlgorithmName(algorithm)) + " is not supported");
  }
  HashAlgorithm hash = hal::DigestOf(algorithm);
  if (digest.size() != hal::DigestSize(hash)) {
    return InvalidArgumentError("digest must be " + std::to_string(hal::DigestSize(hash)) +
                                " bytes");
  }
  Pk pk;
  KMS_RETURN_IF_ERROR(key->Load(pk));
  if (IsEcdsa(algorithm)) {
    Mpi r;
    Mpi s;
    if (!ParseDerEcdsaSignature(signature, &r.v, &s.v)) return BadSignature();
    mbedtls_ecp_keypair* ec = mbedtls_pk_ec(pk.ctx);
    // mbedtls_ecdsa_verify checks 1 <= r, s < n (SEC 1 §4.1.4 step 1) and truncates the digest.
    if (mbedtls_ecdsa_verify(&ec->grp, digest.data(), digest.size(), &ec->Q, &r.v, &s.v) != 0) {
      return BadSignature();
    }
    return Status::Ok();
  }
  mbedtls_rsa_context* rsa = mbedtls_pk_rsa(pk.ctx);
  // RFC 8017 §8.1.2/§8.2.2 step 1: the signature is exactly k octets (mbedTLS reads k bytes
  // blindly).
  if (signature.size() != mbedtls_rsa_get_len(rsa)) return BadSignature();
  int rc = 0;
  if (IsPss(algorithm)) {
    rc = mbedtls_rsa_rsassa_pss_verify_ext(rsa, nullptr, nullptr, MBEDTLS_RSA_PUBLIC, MdType(hash),
                                           static_cast<unsigned>(digest.size()), digest.data(),
                                           MdType(hash), static_cast<int>(digest.size()),
                                           signature.data());
  } else {
    rc = mbedtls_rsa_rsassa_pkcs1_v15_verify(rsa, nullptr, nullptr, MBEDTLS_RSA_PUBLIC,
                                             MdType(hash), static_cast<unsigned>(digest.size()),
                                             digest.data(), signature.data());
  }
  if (rc != 0) return BadSignature();
  return Status::Ok();
}

namespace {

StatusOr<Bytes> Mac(const FakeHsm::State& st, const KeyHandle& handle, ByteView message) {
  KMS_ASSIGN_OR_RETURN(const FakeKey* key, ResolveFor(st, handle, KeyPurpose::kMac));
  const mbedtls_md_info_t* md =
      mbedtls_md_info_from_type(MdType(*hal::HmacHashOf(key->algorithm())));
  Bytes mac(mbedtls_md_get_size(md));
  int rc = mbedtls_md_hmac(md, key->secret().ExposeSecret().data(), key->secret().size(),
                           message.data(), message.size(), mac.data());
  if (rc != 0) return MbedError("HMAC", rc);
  return mac;
}

}  // namespace

StatusOr<Bytes> FakeHsm::ComputeMac(const KeyHandle& handle, ByteView message) {
  KMS_RETURN_IF_ERROR(state_->TakeFault());
  return Mac(*state_, handle, message);
}

Status FakeHsm::VerifyMac(const KeyHandle& handle, ByteView message, ByteView mac) {
  KMS_RETURN_IF_ERROR(state_->TakeFault());
  KMS_ASSIGN_OR_RETURN(Bytes expected, Mac(*state_, handle, message));
  // Full-length tags only (hal/hsm.h); lengths are public, the comparison is constant-time.
  if (!ConstantTimeEquals(expected, mac)) return BadMac();
  return Status::Ok();
}

StatusOr<Bytes> FakeHsm::EncryptRsaOaep(const KeyHandle& handle, HashAlgorithm hash,
                                        ByteView plaintext) {
  KMS_RETURN_IF_ERROR(state_->TakeFault());
  KMS_ASSIGN_OR_RETURN(const FakeKey* key,
                       ResolveFor(*state_, handle, KeyPurpose::kEncryptDecrypt));
  if (!hal::IsRsa(key->algorithm())) return UsageError("RSA-OAEP needs an RSA key");
  if (!capabilities_.oaep_hashes.contains(hash)) {
    return Unsupported("RSA-OAEP with " + std::string(hal::HashAlgorithmName(hash)) +
                       " is not supported");
  }
  Pk pk;
  KMS_RETURN_IF_ERROR(key->Load(pk));
  mbedtls_rsa_context* rsa = mbedtls_pk_rsa(pk.ctx);
  std::size_t k = mbedtls_rsa_get_len(rsa);
  // RFC 8017 §7.1.1 step 1b: mLen <= k - 2hLen - 2.
  std::size_t h = hal::DigestSize(hash);
  if (plaintext.size() + 2 * h + 2 > k)
    return InvalidArgumentError("plaintext too long for RSA-OAEP");
  mbedtls_rsa_set_padding(rsa, MBEDTLS_RSA_PKCS_V21, MdType(hash));
  Bytes out(k);
  int rc =
      mbedtls_rsa_rsaes_oaep_encrypt(rsa, &State::Random, state_.get(), MBEDTLS_RSA_PUBLIC, nullptr,
                                     0, plaintext.size(), plaintext.data(), out.data());
  if (rc != 0) return MbedError("RSA-OAEP encrypt", rc);
  return out;
}

StatusOr<SecretBytes> FakeHsm::DecryptRsaOaep(const KeyHandle& handle, HashAlgorithm hash,
                                              ByteView ciphertext) {
  KMS_RETURN_IF_ERROR(state_->TakeFault());
  KMS_ASSIGN_OR_RETURN(const FakeKey* key,
                       ResolveFor(*state_, handle, KeyPurpose::kEncryptDecrypt));
  if (!hal::IsRsa(key->algorithm())) return UsageError("RSA-OAEP needs an RSA key");
  if (!capabilities_.oaep_hashes.contains(hash)) {
    return Unsupported("RSA-OAEP with " + std::string(hal::HashAlgorithmName(hash)) +
                       " is not supported");
  }
  if (!key->has_secret()) return UsageError("a public key cannot decrypt");
  Pk pk;
  KMS_RETURN_IF_ERROR(key->Load(pk));
  mbedtls_rsa_context* rsa = mbedtls_pk_rsa(pk.ctx);
  std::size_t k = mbedtls_rsa_get_len(rsa);
  if (ciphertext.size() != k) return BadCiphertext();  // RFC 8017 §7.1.2 step 1b
  mbedtls_rsa_set_padding(rsa, MBEDTLS_RSA_PKCS_V21, MdType(hash));
  SecretBytes out(k);
  std::size_t olen = 0;
  int rc = mbedtls_rsa_rsaes_oaep_decrypt(rsa, &State::Random, state_.get(), MBEDTLS_RSA_PRIVATE,
                                          nullptr, 0, &olen, ciphertext.data(),
                                          out.ExposeSecretMutable().data(), out.size());
  if (rc != 0) return BadCiphertext();  // one answer for every cause (RFC 8017 §7.1.2 note)
  out.resize(olen);
  return out;
}

StatusOr<SecretBytes> FakeHsm::GenerateRandom(std::size_t size) {
  KMS_RETURN_IF_ERROR(state_->TakeFault());
  return RandomBytes(*state_, size);
}

Status FakeHsm::CheckHealth() { return state_->TakeFault(); }

namespace {

Status CheckTokenDataLabel(std::string_view label) {
  if (label.empty() || label.size() > kMaxTokenDataLabel) {
    return InvalidArgumentError("token data label must be 1..64 bytes");
  }
  return Status::Ok();
}

}  // namespace

StatusOr<Bytes> FakeHsm::ReadTokenData(std::string_view label) {
  KMS_RETURN_IF_ERROR(state_->TakeFault());
  KMS_RETURN_IF_ERROR(CheckTokenDataLabel(label));
  State::TokenData& data = *state_->token_data;
  std::lock_guard<std::mutex> lock(data.mu);
  auto it = data.values.find(label);
  if (it == data.values.end()) {
    return NotFoundError("no token data labelled '" + std::string(label) + "'");
  }
  return it->second;
}

Status FakeHsm::WriteTokenData(std::string_view label, ByteView value) {
  KMS_RETURN_IF_ERROR(state_->TakeFault());
  KMS_RETURN_IF_ERROR(CheckTokenDataLabel(label));
  if (value.empty() || value.size() > kMaxTokenDataValue) {
    return InvalidArgumentError("token data value must be 1..1024 bytes");
  }
  State::TokenData& data = *state_->token_data;
  std::lock_guard<std::mutex> lock(data.mu);
  data.values.insert_or_assign(std::string(label), Bytes(value.begin(), value.end()));
  return Status::Ok();
}

void FakeHsm::InjectFailure(Status status, std::size_t after_calls, std::size_t count) {
  std::lock_guard<std::mutex> lock(state_->fault_mu);
  state_->fault_status = std::move(status);
  state_->fault_after = after_calls;
  state_->fault_count = count;
}

}  // namespace kms::testing
