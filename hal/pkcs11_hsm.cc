// The PKCS#11 backend of hal::Hsm. Contract in hal/pkcs11_hsm.h and hal/hsm.h; the measured
// SoftHSM2 behaviour this code defends against is in docs/softhsm2.md.
//
// Structure:
//  * Device: the shared state (module, slot, anchor session, session pool, domain key handle,
//    capabilities). KeyHandles keep it alive, so a key outliving the Hsm object can still destroy
//    its device objects.
//  * Locks: `mu_` (shared_mutex) is held shared by every operation and exclusively by
//  (re)connection, so
//    C_Finalize never runs under an operation. `anchor_mu_` serialises the anchor session,
//    `pool_mu_` the idle list. Order: mu_ -> anchor_mu_ / pool_mu_. No KeyHandle is ever released
//    under a lock. Pkcs11Hsm's `token_data_mu_` serialises token data writes and is taken before
//    any of them (token_data_mu_ -> mu_).
//  * Generations: Module::generation() changes on every re-initialisation; a key remembers the
//  generation
//    it was made in and answers Unavailable/kHandleStale after a change.
#include "hal/pkcs11_hsm.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "hal/internal/key_encoding.h"
#include "hal/pkcs11_hsm_functions.h"
#include "hal/pkcs11_policy.h"
#include "pkcs11/attributes.h"
#include "pkcs11/module.h"
#include "pkcs11/rv.h"
#include "pkcs11/session.h"
#include "pkcs11/token.h"

namespace kms::hal {
namespace {

using pkcs11::AttributeTemplate;
using pkcs11::RvClass;
using pkcs11::ScopedObject;
using pkcs11::Session;

constexpr std::size_t kMaxRandomBytes = 1 << 20;
// Token data (hal/hsm.h): CKO_DATA token objects tagged with our CKA_APPLICATION, so objects other
// software keeps on a shared token are never taken for ours.
constexpr std::size_t kMaxTokenDataLabel = 64;
constexpr std::size_t kMaxTokenDataValue = 1024;
constexpr std::string_view kTokenDataApplication = "kms-appliance";
constexpr std::uint8_t kRsaPublicExponent[] = {0x01, 0x00, 0x01};  // F4 = 65537

Status InvalidCiphertext(CK_RV rv) {
  // hal/hsm.h: no detail; the CK_RV stays in device_code for the log.
  return Status(StatusCode::kInvalidArgument, "invalid ciphertext", Reason::kInvalidCiphertext, rv);
}
Status InvalidSignature(CK_RV rv = CKR_OK) {
  return Status(StatusCode::kInvalidArgument, "invalid signature", Reason::kInvalidSignature, rv);
}
Status InvalidMac(CK_RV rv = CKR_OK) {
  return Status(StatusCode::kInvalidArgument, "invalid MAC", Reason::kInvalidMac, rv);
}
Status WrongUsage(std::string what) {
  return InvalidArgumentError(std::move(what), Reason::kInvalidKeyUsage);
}
Status Unsupported(std::string what) {
  return UnimplementedError(std::move(what) + " is not supported by the HSM",
                            Reason::kMechanismUnsupported);
}

// Failures of a decryption-like call that mean "the input is not authentic". SoftHSM2 says
// CKR_GENERAL_ERROR for a bad GCM tag or KWP integrity check; real HSMs say ENCRYPTED_DATA_INVALID
// or WRAPPED_KEY_INVALID (docs/softhsm2.md "GCM and unwrap").
bool IsAuthenticityFailure(CK_RV rv) {
  switch (rv) {
    case CKR_GENERAL_ERROR:
    case CKR_ENCRYPTED_DATA_INVALID:
    case CKR_ENCRYPTED_DATA_LEN_RANGE:
    case CKR_WRAPPED_KEY_INVALID:
    case CKR_WRAPPED_KEY_LEN_RANGE:
    case CKR_DATA_INVALID:
    case CKR_DATA_LEN_RANGE:
    case CKR_TEMPLATE_INCONSISTENT:
    case CKR_ATTRIBUTE_VALUE_INVALID:
      return true;
    default:
      return false;
  }
}

template <typename T>
StatusOr<T> AsInvalidCiphertext(StatusOr<T> r) {
  if (!r.has_value() && IsAuthenticityFailure(pkcs11::RvOf(r.error()))) {
    return InvalidCiphertext(pkcs11::RvOf(r.error()));
  }
  return r;
}

CK_MECHANISM_TYPE HashMechanism(HashAlgorithm h) {
  switch (h) {
    case HashAlgorithm::kSha1:
      return CKM_SHA_1;
    case HashAlgorithm::kSha224:
      return CKM_SHA224;
    case HashAlgorithm::kSha256:
      return CKM_SHA256;
    case HashAlgorithm::kSha384:
      return CKM_SHA384;
    case HashAlgorithm::kSha512:
      return CKM_SHA512;
  }
  return CKM_SHA256;
}

CK_RSA_PKCS_MGF_TYPE Mgf1(HashAlgorithm h) {
  switch (h) {
    case HashAlgorithm::kSha1:
      return CKG_MGF1_SHA1;
    case HashAlgorithm::kSha224:
      return CKG_MGF1_SHA224;
    case HashAlgorithm::kSha256:
      return CKG_MGF1_SHA256;
    case HashAlgorithm::kSha384:
      return CKG_MGF1_SHA384;
    case HashAlgorithm::kSha512:
      return CKG_MGF1_SHA512;
  }
  return CKG_MGF1_SHA256;
}

CK_MECHANISM_TYPE HmacMechanism(HashAlgorithm h) {
  switch (h) {
    case HashAlgorithm::kSha1:
      return CKM_SHA_1_HMAC;
    case HashAlgorithm::kSha224:
      return CKM_SHA224_HMAC;
    case HashAlgorithm::kSha256:
      return CKM_SHA256_HMAC;
    case HashAlgorithm::kSha384:
      return CKM_SHA384_HMAC;
    case HashAlgorithm::kSha512:
      return CKM_SHA512_HMAC;
  }
  return CKM_SHA256_HMAC;
}

bool IsPss(SignatureAlgorithm a) {
  return a == SignatureAlgorithm::kRsaPssSha256 || a == SignatureAlgorithm::kRsaPssSha384 ||
         a == SignatureAlgorithm::kRsaPssSha512;
}
bool IsEcdsa(SignatureAlgorithm a) {
  return a == SignatureAlgorithm::kEcdsaSha256 || a == SignatureAlgorithm::kEcdsaSha384 ||
         a == SignatureAlgorithm::kEcdsaSha512;
}

Bytes ToBytes(const SecretBytes& s) {
  ByteView v = s.ExposeSecret();
  return Bytes(v.begin(), v.end());
}

unsigned char* Mutable(ByteView v) { return const_cast<unsigned char*>(v.data()); }

Status CheckTokenDataLabel(std::string_view label) {
  if (label.empty() || label.size() > kMaxTokenDataLabel) {
    return InvalidArgumentError("token data label must be 1..64 bytes");
  }
  return Status();
}

// The session is logged in as the user. Login is per token and process (pkcs11/session.h), so a
// pool session that is not means the login was lost: USER_NOT_LOGGED_IN makes the Device log in
// again.
Status RequireUserSession(Session& s) {
  KMS_ASSIGN_OR_RETURN(CK_SESSION_INFO info, s.Info());
  if (info.state != CKS_RW_USER_FUNCTIONS) {
    return Status(StatusCode::kUnavailable, "HSM session is not logged in", Reason::kNone,
                  CKR_USER_NOT_LOGGED_IN);
  }
  return Status();
}

// Token data objects, and how a value is replaced.
//
// SoftHSM2 refuses C_SetAttributeValue(CKA_VALUE) on a data object (CKR_ATTRIBUTE_READ_ONLY): the
// data object table of PKCS#11 v2.40 §4.5 does not mark CKA_VALUE modifiable, so no module has to
// allow it. A value is therefore replaced by creating the new object and then destroying the old
// one. Deleting first would leave a window where a crash loses the watermark, which then reads as
// "never set" (fail open). Creating first leaves two objects if the process dies in between, so
// each object carries a generation in CKA_OBJECT_ID (8 bytes big-endian: our own convention;
// SoftHSM2 treats the attribute as an opaque byte array). Of two objects, the one whose generation
// follows the other's is the current value, and the next write destroys the other. Anything else
// (two objects from elsewhere, three objects) is not something this code leaves behind, and is
// refused rather than guessed at.
struct TokenDataObjects {
  CK_OBJECT_HANDLE current = CK_INVALID_HANDLE;  // CK_INVALID_HANDLE: nothing under the label
  std::uint64_t generation = 0;
  CK_OBJECT_HANDLE superseded = CK_INVALID_HANDLE;  // left behind by an interrupted replace
};

Bytes EncodeGeneration(std::uint64_t generation) {
  Bytes out(8);
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<std::uint8_t>(generation >> (8 * (out.size() - 1 - i)));
  }
  return out;
}

StatusOr<std::uint64_t> GenerationOf(Session& s, CK_OBJECT_HANDLE object) {
  const CK_ATTRIBUTE_TYPE types[] = {CKA_OBJECT_ID};
  KMS_ASSIGN_OR_RETURN(std::vector<pkcs11::AttributeValue> v, s.GetAttributes(object, types));
  const ByteView id = v[0].value.ExposeSecret();
  // 0: an object made by hand (pkcs11-tool), without a generation. Ours start at 1.
  if (!v[0].present || id.empty()) return std::uint64_t{0};
  if (id.size() != 8) return InternalError("token data object with a foreign CKA_OBJECT_ID");
  std::uint64_t generation = 0;
  for (std::uint8_t b : id) generation = (generation << 8) | b;
  return generation;
}

Status AmbiguousTokenData(std::string_view label) {
  return InternalError("more than one token data object labelled '" + std::string(label) + "'");
}

// What is stored under `label`. CKA_PRIVATE=TRUE is part of the search: anyone who can open a
// session can create public token objects without the PIN (PKCS#11, "permitted object accesses by
// sessions": a R/W public session), and such a plant must never be read as ours nor block a write.
StatusOr<TokenDataObjects> FindTokenData(Session& s, std::string_view label) {
  AttributeTemplate find;
  find.Ulong(CKA_CLASS, CKO_DATA)
      .Bool(CKA_TOKEN, true)
      .Bool(CKA_PRIVATE, true)
      .String(CKA_LABEL, label)
      .String(CKA_APPLICATION, kTokenDataApplication);
  KMS_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> found, s.FindObjects(find, 3));
  TokenDataObjects out;
  if (found.empty()) {
    // Private objects are invisible to a session that is not logged in (PKCS#11 v2.40 §4.4): an
    // empty search only means "absent" while the login holds.
    KMS_RETURN_IF_ERROR(RequireUserSession(s));
    return out;
  }
  if (found.size() > 2) return AmbiguousTokenData(label);
  KMS_ASSIGN_OR_RETURN(const std::uint64_t first, GenerationOf(s, found[0]));
  if (found.size() == 1) {
    out.current = found[0];
    out.generation = first;
    return out;
  }
  KMS_ASSIGN_OR_RETURN(const std::uint64_t second, GenerationOf(s, found[1]));
  // Generation 0 (none) is an object made elsewhere: its order against ours is unknown.
  if (first == 0 || second == 0) return AmbiguousTokenData(label);
  if (second == first + 1) {
    out = {found[1], second, found[0]};
  } else if (first == second + 1) {
    out = {found[0], first, found[1]};
  } else {
    return AmbiguousTokenData(label);
  }
  return out;
}

// Objects made in the device for one key, before they become a KeyHandle.
struct RawKey {
  CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;  // secret or private key; invalid for public-only keys
  CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE;  // public key object of asymmetric keys
  Bytes public_der;
  std::size_t modulus_bytes = 0;  // RSA
  std::uint64_t generation = 0;
};

class Device;

class Pkcs11Key final : public LoadedKey {
 public:
  Pkcs11Key(KeyAlgorithm algorithm, KeyPurpose purpose, KeyOrigin origin,
            std::shared_ptr<Device> device, RawKey raw)
      : LoadedKey(algorithm, purpose),
        origin_(origin),
        device_(std::move(device)),
        raw_(std::move(raw)) {}
  ~Pkcs11Key() override;

  KeyOrigin origin() const { return origin_; }
  const Device* device() const { return device_.get(); }
  const RawKey& raw() const { return raw_; }

 private:
  KeyOrigin origin_;
  std::shared_ptr<Device> device_;
  RawKey raw_;
};

class Device {
 public:
  Device(Pkcs11HsmConfig config, std::unique_ptr<pkcs11::Module> module)
      : config_(std::move(config)), module_(std::move(module)) {}

  ~Device() {
    std::unique_lock lock(mu_);
    DropSessionsLocked(/*close=*/true);
  }

  // First connection, then capability discovery.
  Status Open() {
    std::unique_lock lock(mu_);
    KMS_RETURN_IF_ERROR(ConnectLocked());
    return DiscoverCapabilitiesLocked();
  }

  const Capabilities& capabilities() const { return capabilities_; }
  CK_OBJECT_HANDLE domain_key() const { return domain_key_; }
  std::uint64_t generation() const { return module_->generation(); }

  // Whether `key` is still backed by live objects (hal/hsm.h: kHandleStale after
  // re-initialisation).
  Status Fresh(const RawKey& key) const {
    if (key.generation != module_->generation()) {
      return UnavailableError("key handle outlived an HSM re-initialisation; load it again",
                              Reason::kHandleStale);
    }
    return Status();
  }

  // Runs `f(Session&)` on a pool session checked out for this thread alone.
  template <typename F>
  auto OnPool(F&& f) -> std::invoke_result_t<F&, Session&> {
    return Run(/*anchor=*/false, std::forward<F>(f));
  }
  // Runs `f(Session&)` on the anchor session: everything that creates or destroys session objects.
  template <typename F>
  auto OnAnchor(F&& f) -> std::invoke_result_t<F&, Session&> {
    return Run(/*anchor=*/true, std::forward<F>(f));
  }

  // Destroys a key's objects, unless they already died with an older generation.
  void Destroy(const RawKey& key) noexcept {
    std::shared_lock lock(mu_);
    if (!connected_ || key.generation != module_->generation()) return;
    std::lock_guard anchor_lock(anchor_mu_);
    if (key.key != CK_INVALID_HANDLE) (void)anchor_->DestroyObject(key.key);
    if (key.pub != CK_INVALID_HANDLE) (void)anchor_->DestroyObject(key.pub);
  }

 private:
  template <typename F>
  auto Run(bool anchor, F&& f) -> std::invoke_result_t<F&, Session&> {
    using R = std::invoke_result_t<F&, Session&>;
    if (!connected_.load(std::memory_order_acquire)) {
      KMS_RETURN_IF_ERROR(Recover(module_->generation()));
    }
    Status failure;
    std::uint64_t generation = 0;
    {
      std::shared_lock lock(mu_);
      if (!connected_) return UnavailableError("HSM unavailable: reconnecting");
      generation = module_->generation();
      if (anchor) {
        std::lock_guard anchor_lock(anchor_mu_);
        R result = f(*anchor_);
        failure = StatusOf(result);
        if (failure.ok() || !NeedsRecovery(failure, /*anchor=*/true)) return result;
      } else {
        StatusOr<Session> session = Checkout();
        if (!session.has_value()) {
          failure = session.error();
        } else {
          R result = f(*session);
          failure = StatusOf(result);
          Return(std::move(*session), pkcs11::ClassOf(failure));
          if (failure.ok() || !NeedsRecovery(failure, /*anchor=*/false)) return result;
        }
        if (!NeedsRecovery(failure, false)) return failure;
      }
    }
    // The failing call reports its error; recovery makes the next call work.
    (void)Recover(generation);
    return failure;
  }

  static bool NeedsRecovery(const Status& s, bool anchor) {
    switch (pkcs11::ClassOf(s)) {
      case RvClass::kDevice:
      case RvClass::kObjectLost:  // our objects are gone (logout, lost anchor): reload everything
        return true;
      case RvClass::kSessionLost:
        return anchor;  // the anchor's session objects died with it
      case RvClass::kAuth:
        return pkcs11::RvOf(s) == CKR_USER_NOT_LOGGED_IN;
      default:
        return false;
    }
  }

  // Called with mu_ held shared.
  StatusOr<Session> Checkout() {
    std::unique_lock lock(pool_mu_);
    pool_cv_.wait(lock, [this] { return !idle_.empty() || open_ < config_.session_pool_size; });
    if (!idle_.empty()) {
      Session s = std::move(idle_.back());
      idle_.pop_back();
      return s;
    }
    ++open_;
    lock.unlock();
    StatusOr<Session> s = Session::Open(*module_, slot_, /*read_write=*/true);
    if (!s.has_value()) {
      lock.lock();
      --open_;
      pool_cv_.notify_one();
    }
    return s;
  }

  // Called with mu_ held shared. A session whose call failed is not trusted again, unless the data
  // was at fault (bad signature, bad length: PKCS#11 v2.40 §5.2, such a return ends the operation):
  // after any other failure the module may have left an operation active on it (an injected or
  // partial failure), and opening another session costs under 1 us.
  void Return(Session session, RvClass failure) {
    const bool keep =
        (failure == RvClass::kNone || failure == RvClass::kInvalidData) && !session.stale();
    if (!keep) {
      if (failure == RvClass::kDevice || session.stale()) {
        session.Abandon();  // the module is being re-initialised: C_Finalize closes everything
      } else {
        // Also for CKR_SESSION_HANDLE_INVALID/CLOSED: closing a handle the module already dropped
        // is harmless, and closing one it still holds (a spurious report) is what prevents a leak.
        // Only this HAL opens sessions on the module, so a reused number could only be another pool
        // session, which then fails with SESSION_HANDLE_INVALID and is replaced the same way.
        (void)session.Close();
      }
    }
    std::lock_guard lock(pool_mu_);
    if (keep) {
      idle_.push_back(std::move(session));
    } else {
      --open_;
    }
    pool_cv_.notify_one();
  }

  Status Recover(std::uint64_t seen_generation) {
    std::unique_lock lock(mu_);
    if (connected_ && module_->generation() != seen_generation) return Status();  // done by another
    DropSessionsLocked(/*close=*/false);
    KMS_RETURN_IF_ERROR(module_->Reinitialize());
    return ConnectLocked();
  }

  void DropSessionsLocked(bool close) {
    connected_ = false;
    std::lock_guard pool_lock(pool_mu_);
    for (Session& s : idle_) {
      if (close) {
        (void)s.Close();
      } else {
        s.Abandon();
      }
    }
    idle_.clear();
    open_ = 0;
    if (anchor_.has_value()) {
      if (!close) anchor_->Abandon();
      anchor_.reset();
    }
    pool_cv_.notify_all();
  }

  // With mu_ held exclusively: find the token, open the anchor, log in, find and check the domain
  // key.
  Status ConnectLocked() {
    KMS_ASSIGN_OR_RETURN(slot_, module_->FindToken(config_.token_label, config_.token_serial));
    KMS_ASSIGN_OR_RETURN(Session anchor, Session::Open(*module_, slot_, /*read_write=*/true));
    // One login for the whole token and process, never a per-session logout (pkcs11/session.h).
    KMS_RETURN_IF_ERROR(pkcs11::Login::User(anchor, config_.user_pin));
    AttributeTemplate find;
    find.Ulong(CKA_CLASS, CKO_SECRET_KEY)
        .Bool(CKA_TOKEN, true)
        .String(CKA_LABEL, config_.domain_key_label);
    KMS_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> found, anchor.FindObjects(find, 2));
    if (found.empty()) {
      return FailedPreconditionError("domain key '" + config_.domain_key_label +
                                     "' not found on the token");
    }
    if (found.size() > 1) {
      return FailedPreconditionError("more than one domain key labelled '" +
                                     config_.domain_key_label + "'");
    }
    KMS_RETURN_IF_ERROR(CheckDomainKeyPolicy(anchor, found[0]));
    domain_key_ = found[0];
    anchor_.emplace(std::move(anchor));
    connected_ = true;
    return Status();
  }

  bool Has(const std::vector<CK_MECHANISM_TYPE>& list, CK_MECHANISM_TYPE m, CK_FLAGS flags,
           CK_MECHANISM_INFO* info_out = nullptr) const {
    if (std::find(list.begin(), list.end(), m) == list.end()) return false;
    StatusOr<CK_MECHANISM_INFO> info = module_->MechanismInfo(slot_, m);
    if (!info.has_value() || (info->flags & flags) != flags) return false;
    if (info_out != nullptr) *info_out = *info;
    return true;
  }

  // Asked of the module, not assumed: a module may list a mechanism it cannot perform. Called once
  // at open, mu_ held exclusively.
  Status DiscoverCapabilitiesLocked() {
    KMS_ASSIGN_OR_RETURN(std::vector<CK_MECHANISM_TYPE> mechs, module_->Mechanisms(slot_));
    Capabilities caps;
    caps.aes_gcm = Has(mechs, CKM_AES_GCM, CKF_ENCRYPT | CKF_DECRYPT);
    caps.key_wrap_pad = Has(mechs, CKM_AES_KEY_WRAP_PAD, CKF_WRAP | CKF_UNWRAP);
    CK_MECHANISM_INFO info{};
    if (Has(mechs, CKM_AES_KEY_GEN, CKF_GENERATE, &info) && info.ulMaxKeySize >= 32) {
      caps.key_algorithms.insert(KeyAlgorithm::kAes256);
    }
    if (Has(mechs, CKM_GENERIC_SECRET_KEY_GEN, CKF_GENERATE)) {
      for (KeyAlgorithm a : {KeyAlgorithm::kHmacSha224, KeyAlgorithm::kHmacSha256,
                             KeyAlgorithm::kHmacSha384, KeyAlgorithm::kHmacSha512}) {
        if (Has(mechs, HmacMechanism(*HmacHashOf(a)), CKF_SIGN | CKF_VERIFY)) {
          caps.key_algorithms.insert(a);
        }
      }
    }
    bool any_rsa = false;
    if (Has(mechs, CKM_RSA_PKCS_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR, &info)) {
      for (KeyAlgorithm a :
           {KeyAlgorithm::kRsa2048, KeyAlgorithm::kRsa3072, KeyAlgorithm::kRsa4096}) {
        CK_ULONG bits = internal::RsaBits(a);
        if (info.ulMinKeySize <= bits && bits <= info.ulMaxKeySize) {
          caps.key_algorithms.insert(a);
          any_rsa = true;
        }
      }
    }
    bool any_ec = false;
    if (Has(mechs, CKM_EC_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR)) {
      // The mechanism info gives a bit range, not the curves: generate a throwaway pair per curve.
      for (KeyAlgorithm a : {KeyAlgorithm::kEcP256, KeyAlgorithm::kEcP384, KeyAlgorithm::kEcP521,
                             KeyAlgorithm::kEcSecp256k1}) {
        if (ProbeCurveLocked(*internal::CurveOf(a))) {
          caps.key_algorithms.insert(a);
          any_ec = true;
        }
      }
    }
    if (any_rsa && Has(mechs, CKM_RSA_PKCS_PSS, CKF_SIGN | CKF_VERIFY)) {
      caps.signature_algorithms.insert({SignatureAlgorithm::kRsaPssSha256,
                                        SignatureAlgorithm::kRsaPssSha384,
                                        SignatureAlgorithm::kRsaPssSha512});
    }
    if (any_rsa && Has(mechs, CKM_RSA_PKCS, CKF_SIGN | CKF_VERIFY)) {
      caps.signature_algorithms.insert({SignatureAlgorithm::kRsaPkcs1Sha256,
                                        SignatureAlgorithm::kRsaPkcs1Sha384,
                                        SignatureAlgorithm::kRsaPkcs1Sha512});
    }
    if (any_ec && Has(mechs, CKM_ECDSA, CKF_SIGN | CKF_VERIFY)) {
      caps.signature_algorithms.insert({SignatureAlgorithm::kEcdsaSha256,
                                        SignatureAlgorithm::kEcdsaSha384,
                                        SignatureAlgorithm::kEcdsaSha512});
    }
    if (any_rsa && Has(mechs, CKM_RSA_PKCS_OAEP, CKF_ENCRYPT | CKF_DECRYPT)) {
      // SoftHSM2 lists OAEP but only does it with SHA-1 (docs/softhsm2.md "Mechanisms"): try each
      // hash.
      ProbeOaepLocked(caps.oaep_hashes);
    }
    capabilities_ = std::move(caps);
    return Status();
  }

  bool ProbeCurveLocked(const internal::CurveInfo& curve) {
    CK_MECHANISM mech{CKM_EC_KEY_PAIR_GEN, nullptr, 0};
    AttributeTemplate pub;
    pub.Bool(CKA_TOKEN, false).Bool(CKA_VERIFY, true).Bytes(CKA_EC_PARAMS, curve.ec_params);
    AttributeTemplate priv;
    priv.Bool(CKA_TOKEN, false)
        .Bool(CKA_PRIVATE, true)
        .Bool(CKA_SENSITIVE, true)
        .Bool(CKA_SIGN, true);
    auto pair = anchor_->GenerateKeyPair(mech, pub, priv);
    if (!pair.has_value()) return false;
    (void)anchor_->DestroyObject(pair->first);
    (void)anchor_->DestroyObject(pair->second);
    return true;
  }

  void ProbeOaepLocked(std::set<HashAlgorithm>& hashes) {
    // Any odd 2048-bit modulus serves for a public-key encryption probe; no private key is needed.
    Bytes modulus(256, 0xFF);
    AttributeTemplate t;
    t.Ulong(CKA_CLASS, CKO_PUBLIC_KEY)
        .Ulong(CKA_KEY_TYPE, CKK_RSA)
        .Bool(CKA_TOKEN, false)
        .Bool(CKA_ENCRYPT, true)
        .Bytes(CKA_MODULUS, modulus)
        .Bytes(CKA_PUBLIC_EXPONENT, kRsaPublicExponent);
    auto key = anchor_->CreateObject(t);
    if (!key.has_value()) return;
    ScopedObject guard(*anchor_, *key);
    for (HashAlgorithm h : {HashAlgorithm::kSha1, HashAlgorithm::kSha224, HashAlgorithm::kSha256,
                            HashAlgorithm::kSha384, HashAlgorithm::kSha512}) {
      CK_RSA_PKCS_OAEP_PARAMS params{HashMechanism(h), Mgf1(h), CKZ_DATA_SPECIFIED, nullptr, 0};
      CK_MECHANISM mech{CKM_RSA_PKCS_OAEP, &params, sizeof(params)};
      const std::uint8_t probe[] = {0x2A};
      if (anchor_->Encrypt(mech, *key, probe, 256).has_value()) hashes.insert(h);
    }
  }

  Pkcs11HsmConfig config_;
  std::unique_ptr<pkcs11::Module> module_;
  CK_SLOT_ID slot_ = 0;
  CK_OBJECT_HANDLE domain_key_ = CK_INVALID_HANDLE;
  Capabilities capabilities_;
  std::atomic<bool> connected_{false};

  std::shared_mutex mu_;
  std::mutex anchor_mu_;
  std::optional<Session> anchor_;
  std::mutex pool_mu_;
  std::condition_variable pool_cv_;
  std::vector<Session> idle_;
  std::size_t open_ = 0;
};

Pkcs11Key::~Pkcs11Key() { device_->Destroy(raw_); }

class Pkcs11Hsm final : public Hsm {
 public:
  explicit Pkcs11Hsm(std::shared_ptr<Device> device) : device_(std::move(device)) {}

  const Capabilities& capabilities() const override { return device_->capabilities(); }

  StatusOr<KeyHandle> GenerateKey(KeyAlgorithm algorithm, KeyPurpose purpose) override {
    KMS_RETURN_IF_ERROR(CheckKeyKind(algorithm, purpose));
    const KeySpec spec = SecretOrPrivateKeySpec(algorithm, purpose, KeyOrigin::kGenerated);
    KMS_ASSIGN_OR_RETURN(RawKey raw, device_->OnAnchor([&](Session& s) -> StatusOr<RawKey> {
      RawKey raw;
      raw.generation = device_->generation();
      if (IsSymmetric(algorithm)) {
        CK_MECHANISM mech{
            algorithm == KeyAlgorithm::kAes256 ? CKM_AES_KEY_GEN : CKM_GENERIC_SECRET_KEY_GEN,
            nullptr, 0};
        AttributeTemplate t = TemplateOf(spec, /*with_value_len=*/true);
        KMS_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE key, s.GenerateKey(mech, t));
        ScopedObject guard(s, key);
        KMS_RETURN_IF_ERROR(CheckKeyPolicy(s, key, spec));
        raw.key = guard.Release();
        return raw;
      }
      const KeySpec pub_spec = PublicKeySpec(algorithm, purpose);
      AttributeTemplate pub = TemplateOf(pub_spec, false);
      AttributeTemplate priv = TemplateOf(spec, false);
      CK_MECHANISM mech{CKM_EC_KEY_PAIR_GEN, nullptr, 0};
      if (IsRsa(algorithm)) {
        mech.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
        pub.Ulong(CKA_MODULUS_BITS, internal::RsaBits(algorithm))
            .Bytes(CKA_PUBLIC_EXPONENT, kRsaPublicExponent);
      } else {
        pub.Bytes(CKA_EC_PARAMS, internal::CurveOf(algorithm)->ec_params);
      }
      KMS_ASSIGN_OR_RETURN(auto pair, s.GenerateKeyPair(mech, pub, priv));
      ScopedObject pub_guard(s, pair.first), priv_guard(s, pair.second);
      KMS_RETURN_IF_ERROR(CheckKeyPolicy(s, pair.second, spec));
      KMS_RETURN_IF_ERROR(CheckKeyPolicy(s, pair.first, pub_spec));
      KMS_RETURN_IF_ERROR(ReadPublicKey(s, pair.first, algorithm, raw));
      raw.pub = pub_guard.Release();
      raw.key = priv_guard.Release();
      return raw;
    }));
    return MakeKey(algorithm, purpose, KeyOrigin::kGenerated, std::move(raw));
  }

  StatusOr<WrappedKey> WrapKey(const KeyHandle& key) override {
    KMS_ASSIGN_OR_RETURN(const Pkcs11Key* k, Own(key));
    if (!device_->capabilities().key_wrap_pad) return Unsupported("CKM_AES_KEY_WRAP_PAD");
    if (k->origin() != KeyOrigin::kGenerated || k->raw().key == CK_INVALID_HANDLE) {
      return FailedPreconditionError("only keys made by GenerateKey can be wrapped",
                                     Reason::kPolicyViolation);
    }
    KMS_ASSIGN_OR_RETURN(Bytes blob, device_->OnPool([&](Session& s) -> StatusOr<Bytes> {
      KMS_RETURN_IF_ERROR(device_->Fresh(k->raw()));
      // RFC 5649 via PKCS#11 v2.40 curr. mech. §2.14.5; no IV parameter (SoftHSM2 refuses one).
      CK_MECHANISM mech{CKM_AES_KEY_WRAP_PAD, nullptr, 0};
      return s.WrapKey(mech, device_->domain_key(), k->raw().key);
    }));
    WrappedKey out;
    out.algorithm = k->algorithm();
    out.purpose = k->purpose();
    out.wrapped = std::move(blob);
    out.public_key_der = k->raw().public_der;
    return out;
  }

  StatusOr<KeyHandle> UnwrapKey(const WrappedKey& wrapped) override {
    const KeyAlgorithm algorithm = wrapped.algorithm;
    const KeyPurpose purpose = wrapped.purpose;
    KMS_RETURN_IF_ERROR(CheckKeyKind(algorithm, purpose));
    if (!device_->capabilities().key_wrap_pad) return Unsupported("CKM_AES_KEY_WRAP_PAD");
    if (wrapped.wrapped.empty()) return InvalidCiphertext(CKR_OK);
    internal::PublicKeyParts pub_parts;
    const KeySpec spec = SecretOrPrivateKeySpec(algorithm, purpose, KeyOrigin::kUnwrapped);
    if (IsSymmetric(algorithm)) {
      if (!wrapped.public_key_der.empty()) return InvalidCiphertext(CKR_OK);
      // The module may not report the unwrapped length (pkcs11_policy.h): the blob size fixes it.
      if (wrapped.wrapped.size() != *spec.value_len + 8) return InvalidCiphertext(CKR_OK);
    } else {
      auto parts = internal::ParseSpki(wrapped.public_key_der);
      if (!parts.has_value() || !MatchesAlgorithm(*parts, algorithm)) {
        return InvalidCiphertext(CKR_OK);
      }
      pub_parts = std::move(*parts);
    }
    KMS_ASSIGN_OR_RETURN(RawKey raw, device_->OnAnchor([&](Session& s) -> StatusOr<RawKey> {
      RawKey raw;
      raw.generation = device_->generation();
      CK_MECHANISM mech{CKM_AES_KEY_WRAP_PAD, nullptr, 0};
      AttributeTemplate t = TemplateOf(spec, /*with_value_len=*/false);
      KMS_ASSIGN_OR_RETURN(
          CK_OBJECT_HANDLE key,
          AsInvalidCiphertext(s.UnwrapKey(mech, device_->domain_key(), wrapped.wrapped, t)));
      ScopedObject guard(s, key);
      // The blob decides what came out: a key of another length or type is not this key.
      Status policy = CheckKeyPolicy(s, key, spec);
      if (!policy.ok()) {
        if (policy.reason() == Reason::kPolicyViolation) return InvalidCiphertext(CKR_OK);
        return policy;
      }
      if (!IsSymmetric(algorithm)) {
        KMS_RETURN_IF_ERROR(CheckPrivateMatchesPublic(s, key, pub_parts));
        KMS_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE pub,
                             CreatePublicObject(s, algorithm, purpose, pub_parts));
        raw.pub = pub;
        raw.public_der = wrapped.public_key_der;
        raw.modulus_bytes = pub_parts.modulus.size();
      }
      raw.key = guard.Release();
      return raw;
    }));
    KMS_ASSIGN_OR_RETURN(KeyHandle handle,
                         MakeKey(algorithm, purpose, KeyOrigin::kUnwrapped, std::move(raw)));
    // An EC private key object does not carry its public point: a sign/verify round trip proves the
    // pair. Run on a pool session, never the anchor: an operation cut short there could leave it
    // with an active operation, and the anchor cannot be replaced without losing every loaded key.
    if (IsEc(algorithm))
      KMS_RETURN_IF_ERROR(CheckEcPair(*static_cast<const Pkcs11Key*>(handle.get())));
    return handle;
  }

  StatusOr<KeyHandle> ImportKey(KeyAlgorithm algorithm, KeyPurpose purpose,
                                const SecretBytes& material) override {
    if (!PurposeAllowed(algorithm, purpose)) {
      return WrongUsage(std::string(KeyPurposeName(purpose)) + " is not a use of " +
                        std::string(KeyAlgorithmName(algorithm)));
    }
    KeySpec spec = SecretOrPrivateKeySpec(algorithm, purpose, KeyOrigin::kImported);
    if (IsSymmetric(algorithm)) {
      if (algorithm == KeyAlgorithm::kAes256 && material.size() != 32) {
        return InvalidArgumentError("an AES-256 key is 32 bytes");
      }
      if (material.empty()) return InvalidArgumentError("empty key material");
      if (std::optional<HashAlgorithm> hash = HmacHashOf(algorithm);
          hash.has_value() && material.size() < DigestSize(*hash)) {
        // RFC 2104 §3: keys shorter than the digest are "strongly discouraged"; the HAL refuses
        // them on every backend (and SoftHSM2 would refuse them at use, CKR_KEY_SIZE_RANGE).
        return InvalidArgumentError("an HMAC key must be at least as long as its digest");
      }
      const SecretBytes& value = material;
      spec.value_len = value.size();
      KMS_ASSIGN_OR_RETURN(RawKey raw, device_->OnAnchor([&](Session& s) -> StatusOr<RawKey> {
        RawKey raw;
        raw.generation = device_->generation();
        AttributeTemplate t = TemplateOf(spec, /*with_value_len=*/false);
        t.Secret(CKA_VALUE, value);
        KMS_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE key, s.CreateObject(t));
        ScopedObject guard(s, key);
        KMS_RETURN_IF_ERROR(CheckKeyPolicy(s, key, spec));
        raw.key = guard.Release();
        return raw;
      }));
      return MakeKey(algorithm, purpose, KeyOrigin::kImported, std::move(raw));
    }
    KMS_ASSIGN_OR_RETURN(internal::PrivateKeyParts parts, internal::ParsePkcs8(material));
    if (!MatchesAlgorithm(parts.pub, algorithm)) {
      return InvalidArgumentError("private key does not match " +
                                  std::string(KeyAlgorithmName(algorithm)));
    }
    KMS_ASSIGN_OR_RETURN(Bytes spki, EncodeSpki(parts.pub));
    KMS_ASSIGN_OR_RETURN(RawKey raw, device_->OnAnchor([&](Session& s) -> StatusOr<RawKey> {
      RawKey raw;
      raw.generation = device_->generation();
      AttributeTemplate t = TemplateOf(spec, false);
      if (parts.pub.rsa) {
        t.Bytes(CKA_MODULUS, parts.pub.modulus)
            .Bytes(CKA_PUBLIC_EXPONENT, parts.pub.public_exponent)
            .Secret(CKA_PRIVATE_EXPONENT, parts.private_exponent)
            .Secret(CKA_PRIME_1, parts.prime1)
            .Secret(CKA_PRIME_2, parts.prime2)
            .Secret(CKA_EXPONENT_1, parts.exponent1)
            .Secret(CKA_EXPONENT_2, parts.exponent2)
            .Secret(CKA_COEFFICIENT, parts.coefficient);
      } else {
        t.Bytes(CKA_EC_PARAMS, parts.pub.curve->ec_params).Secret(CKA_VALUE, parts.scalar);
      }
      KMS_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE key, s.CreateObject(t));
      ScopedObject guard(s, key);
      KMS_RETURN_IF_ERROR(CheckKeyPolicy(s, key, spec));
      KMS_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE pub,
                           CreatePublicObject(s, algorithm, purpose, parts.pub));
      raw.pub = pub;
      raw.key = guard.Release();
      raw.public_der = spki;
      raw.modulus_bytes = parts.pub.modulus.size();
      return raw;
    }));
    return MakeKey(algorithm, purpose, KeyOrigin::kImported, std::move(raw));
  }

  StatusOr<KeyHandle> ImportPublicKey(KeyAlgorithm algorithm, KeyPurpose purpose,
                                      ByteView public_key_der) override {
    if (IsSymmetric(algorithm)) return WrongUsage("symmetric keys have no public key");
    if (!PurposeAllowed(algorithm, purpose)) {
      return WrongUsage(std::string(KeyPurposeName(purpose)) + " is not a use of " +
                        std::string(KeyAlgorithmName(algorithm)));
    }
    KMS_ASSIGN_OR_RETURN(internal::PublicKeyParts parts, internal::ParseSpki(public_key_der));
    if (!MatchesAlgorithm(parts, algorithm)) {
      return InvalidArgumentError("public key does not match " +
                                  std::string(KeyAlgorithmName(algorithm)));
    }
    KMS_ASSIGN_OR_RETURN(RawKey raw, device_->OnAnchor([&](Session& s) -> StatusOr<RawKey> {
      RawKey raw;
      raw.generation = device_->generation();
      KMS_ASSIGN_OR_RETURN(raw.pub, CreatePublicObject(s, algorithm, purpose, parts));
      raw.public_der.assign(public_key_der.begin(), public_key_der.end());
      raw.modulus_bytes = parts.modulus.size();
      return raw;
    }));
    return MakeKey(algorithm, purpose, KeyOrigin::kImported, std::move(raw));
  }

  StatusOr<Bytes> PublicKeyDer(const KeyHandle& key) override {
    KMS_ASSIGN_OR_RETURN(const Pkcs11Key* k, Own(key));
    if (IsSymmetric(k->algorithm())) return WrongUsage("symmetric keys have no public key");
    return k->raw().public_der;
  }

  StatusOr<ExportedKeyPair> GenerateExportableKeyPair(KeyAlgorithm algorithm) override {
    if (IsSymmetric(algorithm)) return InvalidArgumentError("not a key pair algorithm");
    if (!device_->capabilities().key_algorithms.contains(algorithm)) {
      return Unsupported(std::string(KeyAlgorithmName(algorithm)));
    }
    return device_->OnAnchor([&](Session& s) -> StatusOr<ExportedKeyPair> {
      // The one key pair whose private part leaves the device (AWS GenerateDataKeyPair): generated
      // non-sensitive and extractable, read out, and destroyed before returning.
      AttributeTemplate pub;
      pub.Bool(CKA_TOKEN, false)
          .Bool(CKA_VERIFY, true)
          .Bool(CKA_ENCRYPT, false)
          .Bool(CKA_WRAP, false);
      AttributeTemplate priv;
      priv.Bool(CKA_TOKEN, false)
          .Bool(CKA_PRIVATE, true)
          .Bool(CKA_SENSITIVE, false)
          .Bool(CKA_EXTRACTABLE, true)
          .Bool(CKA_SIGN, true)
          .Bool(CKA_DECRYPT, false)
          .Bool(CKA_UNWRAP, false)
          .Bool(CKA_DERIVE, false)
          .Bool(CKA_MODIFIABLE, false);
      CK_MECHANISM mech{CKM_EC_KEY_PAIR_GEN, nullptr, 0};
      if (IsRsa(algorithm)) {
        mech.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
        pub.Ulong(CKA_MODULUS_BITS, internal::RsaBits(algorithm))
            .Bytes(CKA_PUBLIC_EXPONENT, kRsaPublicExponent);
      } else {
        pub.Bytes(CKA_EC_PARAMS, internal::CurveOf(algorithm)->ec_params);
      }
      KMS_ASSIGN_OR_RETURN(auto pair, s.GenerateKeyPair(mech, pub, priv));
      ScopedObject pub_guard(s, pair.first), priv_guard(s, pair.second);
      RawKey info;
      KMS_RETURN_IF_ERROR(ReadPublicKey(s, pair.first, algorithm, info));
      ExportedKeyPair out;
      out.public_key_der = std::move(info.public_der);
      if (IsRsa(algorithm)) {
        const CK_ATTRIBUTE_TYPE types[] = {CKA_MODULUS, CKA_PUBLIC_EXPONENT, CKA_PRIVATE_EXPONENT,
                                           CKA_PRIME_1, CKA_PRIME_2};
        KMS_ASSIGN_OR_RETURN(auto v, s.GetAttributes(pair.second, types));
        for (const auto& a : v) {
          if (!a.present) return InternalError("device withheld an RSA key component");
        }
        KMS_ASSIGN_OR_RETURN(
            out.private_key_pkcs8,
            internal::RsaPkcs8(v[0].AsBytes(), v[1].AsBytes(), v[2].value, v[3].value, v[4].value));
      } else {
        KMS_ASSIGN_OR_RETURN(pkcs11::AttributeValue d, s.GetAttribute(pair.second, CKA_VALUE));
        KMS_ASSIGN_OR_RETURN(internal::PublicKeyParts parts,
                             internal::ParseSpki(out.public_key_der));
        const internal::CurveInfo& curve = *internal::CurveOf(algorithm);
        // CKA_VALUE may come without leading zeros; SEC 1 wants the scalar at the order's size.
        SecretBytes scalar(curve.order_bytes);
        ByteView dv = d.value.ExposeSecret();
        if (dv.size() > curve.order_bytes) return InternalError("device returned a bad EC scalar");
        std::memcpy(scalar.ExposeSecretMutable().data() + (curve.order_bytes - dv.size()),
                    dv.data(), dv.size());
        KMS_ASSIGN_OR_RETURN(out.private_key_pkcs8, internal::EcPkcs8(curve, scalar, parts.point));
      }
      return out;
    });
  }

  StatusOr<GcmCiphertext> EncryptAesGcm(const KeyHandle& key, ByteView plaintext,
                                        ByteView aad) override {
    KMS_ASSIGN_OR_RETURN(const Pkcs11Key* k, Own(key));
    KMS_RETURN_IF_ERROR(RequireGcmKey(*k));
    return device_->OnPool([&](Session& s) -> StatusOr<GcmCiphertext> {
      KMS_RETURN_IF_ERROR(device_->Fresh(k->raw()));
      // NIST SP 800-38D §8.2.2: a random 96-bit IV from the device RNG; the module is never asked
      // to pick one (SoftHSM2 would silently use a fixed IV, docs/softhsm2.md "GCM and unwrap").
      KMS_ASSIGN_OR_RETURN(SecretBytes iv, s.GenerateRandom(kGcmIvSize));
      CK_GCM_PARAMS params = GcmParams(iv.ExposeSecret(), aad);
      CK_MECHANISM mech{CKM_AES_GCM, &params, sizeof(params)};
      KMS_ASSIGN_OR_RETURN(
          Bytes out, s.Encrypt(mech, k->raw().key, plaintext, plaintext.size() + kGcmTagSize));
      if (out.size() != plaintext.size() + kGcmTagSize) {
        return InternalError("AES-GCM output has the wrong length");
      }
      GcmCiphertext c;
      c.iv = ToBytes(iv);
      c.tag.assign(out.end() - static_cast<std::ptrdiff_t>(kGcmTagSize), out.end());
      out.resize(plaintext.size());
      c.ciphertext = std::move(out);
      return c;
    });
  }

  StatusOr<SecretBytes> DecryptAesGcm(const KeyHandle& key, ByteView iv, ByteView ciphertext,
                                      ByteView tag, ByteView aad) override {
    KMS_ASSIGN_OR_RETURN(const Pkcs11Key* k, Own(key));
    KMS_RETURN_IF_ERROR(RequireGcmKey(*k));
    // hal/key_types.h: nothing but 96-bit IVs and 128-bit tags, whatever the module would accept.
    if (iv.size() != kGcmIvSize) return InvalidArgumentError("AES-GCM IV must be 12 bytes");
    if (tag.size() != kGcmTagSize) return InvalidArgumentError("AES-GCM tag must be 16 bytes");
    Bytes input(ciphertext.begin(), ciphertext.end());
    input.insert(input.end(), tag.begin(), tag.end());
    return device_->OnPool([&](Session& s) -> StatusOr<SecretBytes> {
      KMS_RETURN_IF_ERROR(device_->Fresh(k->raw()));
      CK_GCM_PARAMS params = GcmParams(iv, aad);
      CK_MECHANISM mech{CKM_AES_GCM, &params, sizeof(params)};
      StatusOr<SecretBytes> out =
          AsInvalidCiphertext(s.Decrypt(mech, k->raw().key, input, input.size()));
      if (out.has_value() && out->size() != ciphertext.size()) {
        return InternalError("AES-GCM output has the wrong length");
      }
      return out;
    });
  }

  StatusOr<Bytes> SignDigest(const KeyHandle& key, SignatureAlgorithm algorithm,
                             ByteView digest) override {
    KMS_ASSIGN_OR_RETURN(const Pkcs11Key* k, Own(key));
    KMS_RETURN_IF_ERROR(CheckSignature(*k, algorithm, digest));
    if (k->raw().key == CK_INVALID_HANDLE) return WrongUsage("a public key cannot sign");
    if (IsEcdsa(algorithm)) {
      const internal::CurveInfo& curve = *internal::CurveOf(k->algorithm());
      KMS_ASSIGN_OR_RETURN(Bytes raw, device_->OnPool([&](Session& s) -> StatusOr<Bytes> {
        KMS_RETURN_IF_ERROR(device_->Fresh(k->raw()));
        // SoftHSM2 lacks CKM_ECDSA_SHA*: the caller hashed, the device signs the digest.
        CK_MECHANISM mech{CKM_ECDSA, nullptr, 0};
        return s.Sign(mech, k->raw().key, digest, 2 * curve.order_bytes);
      }));
      return internal::EcdsaRawToDer(raw);
    }
    const HashAlgorithm hash = DigestOf(algorithm);
    return device_->OnPool([&](Session& s) -> StatusOr<Bytes> {
      KMS_RETURN_IF_ERROR(device_->Fresh(k->raw()));
      if (IsPss(algorithm)) {
        // RFC 8017 §9.1 with MGF1 over the same hash and a salt as long as the digest (the AWS and
        // common default).
        CK_RSA_PKCS_PSS_PARAMS params{HashMechanism(hash), Mgf1(hash), digest.size()};
        CK_MECHANISM mech{CKM_RSA_PKCS_PSS, &params, sizeof(params)};
        return s.Sign(mech, k->raw().key, digest, k->raw().modulus_bytes);
      }
      CK_MECHANISM mech{CKM_RSA_PKCS, nullptr, 0};
      return s.Sign(mech, k->raw().key, internal::Pkcs1DigestInfo(hash, digest),
                    k->raw().modulus_bytes);
    });
  }

  Status VerifyDigest(const KeyHandle& key, SignatureAlgorithm algorithm, ByteView digest,
                      ByteView signature) override {
    KMS_ASSIGN_OR_RETURN(const Pkcs11Key* k, Own(key));
    KMS_RETURN_IF_ERROR(CheckSignature(*k, algorithm, digest));
    const HashAlgorithm hash = DigestOf(algorithm);
    Bytes raw_signature;
    if (IsEcdsa(algorithm)) {
      KMS_ASSIGN_OR_RETURN(raw_signature,
                           internal::EcdsaDerToRaw(*internal::CurveOf(k->algorithm()), signature));
    } else {
      // RFC 8017 §8.1.2 step 1 / §8.2.2 step 1: a signature is exactly k octets.
      if (signature.size() != k->raw().modulus_bytes) return InvalidSignature();
      raw_signature.assign(signature.begin(), signature.end());
    }
    Status s = device_->OnPool([&](Session& session) -> Status {
      KMS_RETURN_IF_ERROR(device_->Fresh(k->raw()));
      if (IsEcdsa(algorithm)) {
        CK_MECHANISM mech{CKM_ECDSA, nullptr, 0};
        return session.Verify(mech, k->raw().pub, digest, raw_signature);
      }
      if (IsPss(algorithm)) {
        CK_RSA_PKCS_PSS_PARAMS params{HashMechanism(hash), Mgf1(hash), digest.size()};
        CK_MECHANISM mech{CKM_RSA_PKCS_PSS, &params, sizeof(params)};
        return session.Verify(mech, k->raw().pub, digest, raw_signature);
      }
      CK_MECHANISM mech{CKM_RSA_PKCS, nullptr, 0};
      return session.Verify(mech, k->raw().pub, internal::Pkcs1DigestInfo(hash, digest),
                            raw_signature);
    });
    if (IsSignatureFailure(s)) return InvalidSignature(pkcs11::RvOf(s));
    return s;
  }

  StatusOr<Bytes> ComputeMac(const KeyHandle& key, ByteView message) override {
    KMS_ASSIGN_OR_RETURN(const Pkcs11Key* k, Own(key));
    KMS_ASSIGN_OR_RETURN(HashAlgorithm hash, RequireMacKey(*k));
    return device_->OnPool([&](Session& s) -> StatusOr<Bytes> {
      KMS_RETURN_IF_ERROR(device_->Fresh(k->raw()));
      CK_MECHANISM mech{HmacMechanism(hash), nullptr, 0};
      return s.Sign(mech, k->raw().key, message, DigestSize(hash));
    });
  }

  Status VerifyMac(const KeyHandle& key, ByteView message, ByteView mac) override {
    KMS_ASSIGN_OR_RETURN(const Pkcs11Key* k, Own(key));
    KMS_ASSIGN_OR_RETURN(HashAlgorithm hash, RequireMacKey(*k));
    // Full-length MACs only (hal/hsm.h): a truncated MAC is not a weaker match, it is no match.
    if (mac.size() != DigestSize(hash)) return InvalidMac();
    Status s = device_->OnPool([&](Session& session) -> Status {
      KMS_RETURN_IF_ERROR(device_->Fresh(k->raw()));
      CK_MECHANISM mech{HmacMechanism(hash), nullptr, 0};
      return session.Verify(mech, k->raw().key, message, mac);
    });
    if (IsSignatureFailure(s)) return InvalidMac(pkcs11::RvOf(s));
    return s;
  }

  StatusOr<Bytes> EncryptRsaOaep(const KeyHandle& key, HashAlgorithm hash,
                                 ByteView plaintext) override {
    KMS_ASSIGN_OR_RETURN(const Pkcs11Key* k, Own(key));
    KMS_RETURN_IF_ERROR(RequireOaep(*k, hash));
    // RFC 8017 §7.1.1 step 1b, checked here: SoftHSM2 answers CKR_GENERAL_ERROR instead.
    if (plaintext.size() + 2 * DigestSize(hash) + 2 > k->raw().modulus_bytes) {
      return InvalidArgumentError("plaintext too long for RSA-OAEP with this key");
    }
    return device_->OnPool([&](Session& s) -> StatusOr<Bytes> {
      KMS_RETURN_IF_ERROR(device_->Fresh(k->raw()));
      CK_RSA_PKCS_OAEP_PARAMS params{HashMechanism(hash), Mgf1(hash), CKZ_DATA_SPECIFIED, nullptr,
                                     0};
      CK_MECHANISM mech{CKM_RSA_PKCS_OAEP, &params, sizeof(params)};
      return s.Encrypt(mech, k->raw().pub, plaintext, k->raw().modulus_bytes);
    });
  }

  StatusOr<SecretBytes> DecryptRsaOaep(const KeyHandle& key, HashAlgorithm hash,
                                       ByteView ciphertext) override {
    KMS_ASSIGN_OR_RETURN(const Pkcs11Key* k, Own(key));
    KMS_RETURN_IF_ERROR(RequireOaep(*k, hash));
    if (k->raw().key == CK_INVALID_HANDLE) return WrongUsage("a public key cannot decrypt");
    return device_->OnPool([&](Session& s) -> StatusOr<SecretBytes> {
      KMS_RETURN_IF_ERROR(device_->Fresh(k->raw()));
      CK_RSA_PKCS_OAEP_PARAMS params{HashMechanism(hash), Mgf1(hash), CKZ_DATA_SPECIFIED, nullptr,
                                     0};
      CK_MECHANISM mech{CKM_RSA_PKCS_OAEP, &params, sizeof(params)};
      return AsInvalidCiphertext(s.Decrypt(mech, k->raw().key, ciphertext, k->raw().modulus_bytes));
    });
  }

  StatusOr<SecretBytes> GenerateRandom(std::size_t size) override {
    if (size > kMaxRandomBytes)
      return InvalidArgumentError("at most 1 MiB of random bytes per call");
    return device_->OnPool([&](Session& s) { return s.GenerateRandom(size); });
  }

  Status CheckHealth() override {
    return device_->OnPool([&](Session& s) { return RequireUserSession(s); });
  }

  // Token objects belong to the token, not to a session, so both run on the pool: the anchor only
  // creates what must die with it (session objects).
  StatusOr<Bytes> ReadTokenData(std::string_view label) override {
    KMS_RETURN_IF_ERROR(CheckTokenDataLabel(label));
    return device_->OnPool([&](Session& s) -> StatusOr<Bytes> {
      KMS_ASSIGN_OR_RETURN(const TokenDataObjects stored, FindTokenData(s, label));
      if (stored.current == CK_INVALID_HANDLE) {
        return NotFoundError("no token data labelled '" + std::string(label) + "'");
      }
      // PKCS#11 v2.40 §5.7: the length query and the read (pkcs11/session.h sizes values over 64
      // bytes with a second call).
      KMS_ASSIGN_OR_RETURN(pkcs11::AttributeValue value, s.GetAttribute(stored.current, CKA_VALUE));
      return value.AsBytes();
    });
  }

  // A failed write may or may not have replaced the value (the new object can be on the token when
  // destroying the old one fails); either way the token is left readable, as above.
  Status WriteTokenData(std::string_view label, ByteView value) override {
    KMS_RETURN_IF_ERROR(CheckTokenDataLabel(label));
    if (value.empty() || value.size() > kMaxTokenDataValue) {
      return InvalidArgumentError("token data value must be 1..1024 bytes");
    }
    // Find-then-create is not atomic: two pool sessions writing one label at once could both
    // create the next generation, which every later call would refuse. Writes are rare (a SoftHSM2
    // token write costs ~9 ms), so one lock for all labels costs nothing.
    std::lock_guard lock(token_data_mu_);
    return device_->OnPool([&](Session& s) -> Status {
      KMS_ASSIGN_OR_RETURN(const TokenDataObjects stored, FindTokenData(s, label));
      // The leftover of an interrupted replace goes first, so a label never has more than two
      // objects.
      if (stored.superseded != CK_INVALID_HANDLE) {
        KMS_RETURN_IF_ERROR(s.DestroyObject(stored.superseded));
      }
      const bool replacing = stored.current != CK_INVALID_HANDLE;
      if (stored.generation == std::numeric_limits<std::uint64_t>::max()) {
        return InternalError("token data generation exhausted");
      }
      // A complete template (docs/softhsm2.md "Key attributes and templates"): private, so the
      // value is stored encrypted under the user PIN's key and only the logged-in user sees or
      // changes it.
      AttributeTemplate t;
      t.Ulong(CKA_CLASS, CKO_DATA)
          .Bool(CKA_TOKEN, true)
          .Bool(CKA_PRIVATE, true)
          .Bool(CKA_MODIFIABLE, true)
          .String(CKA_LABEL, label)
          .String(CKA_APPLICATION, kTokenDataApplication)
          .Bytes(CKA_OBJECT_ID, EncodeGeneration(replacing ? stored.generation + 1 : 1))
          .Bytes(CKA_VALUE, value);
      KMS_RETURN_IF_ERROR(StatusOf(s.CreateObject(t)));
      if (replacing) return s.DestroyObject(stored.current);
      return Status();
    });
  }

 private:
  StatusOr<const Pkcs11Key*> Own(const KeyHandle& key) const {
    const auto* k = dynamic_cast<const Pkcs11Key*>(key.get());
    if (k == nullptr || k->device() != device_.get()) {
      return InvalidArgumentError("key was not loaded by this HSM");
    }
    return k;
  }

  StatusOr<KeyHandle> MakeKey(KeyAlgorithm algorithm, KeyPurpose purpose, KeyOrigin origin,
                              RawKey raw) {
    return KeyHandle(
        std::make_shared<Pkcs11Key>(algorithm, purpose, origin, device_, std::move(raw)));
  }

  Status CheckKeyKind(KeyAlgorithm algorithm, KeyPurpose purpose) const {
    if (!PurposeAllowed(algorithm, purpose)) {
      return WrongUsage(std::string(KeyPurposeName(purpose)) + " is not a use of " +
                        std::string(KeyAlgorithmName(algorithm)));
    }
    if (!device_->capabilities().key_algorithms.contains(algorithm)) {
      return Unsupported(std::string(KeyAlgorithmName(algorithm)));
    }
    return Status();
  }

  static bool MatchesAlgorithm(const internal::PublicKeyParts& parts, KeyAlgorithm algorithm) {
    if (IsRsa(algorithm)) return parts.rsa && parts.rsa_bits == internal::RsaBits(algorithm);
    return !parts.rsa && parts.curve != nullptr && parts.curve->algorithm == algorithm;
  }

  static StatusOr<Bytes> EncodeSpki(const internal::PublicKeyParts& parts) {
    if (parts.rsa) return internal::RsaSpki(parts.modulus, parts.public_exponent);
    return internal::EcSpki(*parts.curve, parts.point);
  }

  // Reads the public key object into `raw.public_der` (and the modulus size for RSA).
  static Status ReadPublicKey(Session& s, CK_OBJECT_HANDLE pub, KeyAlgorithm algorithm,
                              RawKey& raw) {
    if (IsRsa(algorithm)) {
      const CK_ATTRIBUTE_TYPE types[] = {CKA_MODULUS, CKA_PUBLIC_EXPONENT};
      KMS_ASSIGN_OR_RETURN(auto v, s.GetAttributes(pub, types));
      if (!v[0].present || !v[1].present) return InternalError("RSA public key unreadable");
      Bytes modulus = v[0].AsBytes();
      while (!modulus.empty() && modulus.front() == 0) modulus.erase(modulus.begin());
      raw.modulus_bytes = modulus.size();
      KMS_ASSIGN_OR_RETURN(raw.public_der, internal::RsaSpki(modulus, v[1].AsBytes()));
      return Status();
    }
    KMS_ASSIGN_OR_RETURN(pkcs11::AttributeValue point, s.GetAttribute(pub, CKA_EC_POINT));
    // PKCS#11 v2.40 §2.3.3: CKA_EC_POINT is DER OCTET STRING(point); tolerate a bare point too.
    Bytes raw_point = point.AsBytes();
    if (auto inner = internal::ParseDerOctetString(raw_point); inner.has_value()) {
      raw_point = std::move(*inner);
    }
    KMS_ASSIGN_OR_RETURN(raw.public_der,
                         internal::EcSpki(*internal::CurveOf(algorithm), raw_point));
    return Status();
  }

  static StatusOr<CK_OBJECT_HANDLE> CreatePublicObject(Session& s, KeyAlgorithm algorithm,
                                                       KeyPurpose purpose,
                                                       const internal::PublicKeyParts& parts) {
    const KeySpec spec = PublicKeySpec(algorithm, purpose);
    AttributeTemplate t = TemplateOf(spec, false);
    if (parts.rsa) {
      t.Bytes(CKA_MODULUS, parts.modulus).Bytes(CKA_PUBLIC_EXPONENT, parts.public_exponent);
    } else {
      t.Bytes(CKA_EC_PARAMS, parts.curve->ec_params)
          .Bytes(CKA_EC_POINT, internal::DerOctetString(parts.point));
    }
    KMS_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE pub, s.CreateObject(t));
    ScopedObject guard(s, pub);
    KMS_RETURN_IF_ERROR(CheckKeyPolicy(s, pub, spec));
    return guard.Release();
  }

  // The public key stored beside a wrapped blob is not covered by the wrap's integrity: check that
  // it belongs to the private key that came out.
  static Status CheckPrivateMatchesPublic(Session& s, CK_OBJECT_HANDLE priv,
                                          const internal::PublicKeyParts& parts) {
    if (parts.rsa) {
      KMS_ASSIGN_OR_RETURN(pkcs11::AttributeValue n, s.GetAttribute(priv, CKA_MODULUS));
      Bytes modulus = n.AsBytes();
      while (!modulus.empty() && modulus.front() == 0) modulus.erase(modulus.begin());
      if (modulus != parts.modulus) return InvalidCiphertext(CKR_OK);
      return Status();
    }
    KMS_ASSIGN_OR_RETURN(pkcs11::AttributeValue params, s.GetAttribute(priv, CKA_EC_PARAMS));
    ByteView expected = parts.curve->ec_params;
    if (!std::equal(expected.begin(), expected.end(), params.value.ExposeSecret().begin(),
                    params.value.ExposeSecret().end())) {
      return InvalidCiphertext(CKR_OK);
    }
    return Status();
  }

  Status CheckEcPair(const Pkcs11Key& k) {
    const std::size_t order = internal::CurveOf(k.algorithm())->order_bytes;
    return device_->OnPool([&](Session& s) -> Status {
      KMS_RETURN_IF_ERROR(device_->Fresh(k.raw()));
      const Bytes digest(32, 0x5A);
      CK_MECHANISM mech{CKM_ECDSA, nullptr, 0};
      KMS_ASSIGN_OR_RETURN(Bytes sig, s.Sign(mech, k.raw().key, digest, 2 * order));
      Status ok = s.Verify(mech, k.raw().pub, digest, sig);
      if (pkcs11::RvOf(ok) == CKR_SIGNATURE_INVALID) return InvalidCiphertext(CKR_OK);
      return ok;
    });
  }

  Status RequireGcmKey(const Pkcs11Key& k) const {
    if (k.algorithm() != KeyAlgorithm::kAes256 || k.purpose() != KeyPurpose::kEncryptDecrypt) {
      return WrongUsage("AES-GCM needs an AES-256 encryption key");
    }
    if (!device_->capabilities().aes_gcm) return Unsupported("CKM_AES_GCM");
    return Status();
  }

  StatusOr<HashAlgorithm> RequireMacKey(const Pkcs11Key& k) const {
    std::optional<HashAlgorithm> hash = HmacHashOf(k.algorithm());
    if (!hash.has_value() || k.purpose() != KeyPurpose::kMac) return WrongUsage("not an HMAC key");
    return *hash;
  }

  Status CheckSignature(const Pkcs11Key& k, SignatureAlgorithm algorithm, ByteView digest) const {
    if (k.purpose() != KeyPurpose::kSignVerify || !SignatureAllowed(k.algorithm(), algorithm)) {
      return WrongUsage(std::string(SignatureAlgorithmName(algorithm)) +
                        " is not a use of this key");
    }
    if (!device_->capabilities().signature_algorithms.contains(algorithm)) {
      return Unsupported(std::string(SignatureAlgorithmName(algorithm)));
    }
    if (digest.size() != DigestSize(DigestOf(algorithm))) {
      return InvalidArgumentError("digest length does not match " +
                                  std::string(SignatureAlgorithmName(algorithm)));
    }
    return Status();
  }

  Status RequireOaep(const Pkcs11Key& k, HashAlgorithm hash) const {
    if (!IsRsa(k.algorithm()) || k.purpose() != KeyPurpose::kEncryptDecrypt) {
      return WrongUsage("RSA-OAEP needs an RSA encryption key");
    }
    if (!device_->capabilities().oaep_hashes.contains(hash)) {
      return Unsupported("RSA-OAEP with " + std::string(HashAlgorithmName(hash)));
    }
    return Status();
  }

  static bool IsSignatureFailure(const Status& s) {
    switch (pkcs11::RvOf(s)) {
      case CKR_SIGNATURE_INVALID:
      case CKR_SIGNATURE_LEN_RANGE:
      case CKR_DATA_LEN_RANGE:
      case CKR_DATA_INVALID:
      case CKR_ENCRYPTED_DATA_INVALID:
        return true;
      default:
        return false;
    }
  }

  static CK_GCM_PARAMS GcmParams(ByteView iv, ByteView aad) {
    // PKCS#11 v2.40 curr. mech. §2.12.3, 48-byte layout with ulIvBits (SoftHSM2 2.6 reads this
    // one).
    CK_GCM_PARAMS p{};
    p.pIv = Mutable(iv);
    p.ulIvLen = iv.size();
    p.ulIvBits = iv.size() * 8;
    p.pAAD = aad.empty() ? nullptr : Mutable(aad);
    p.ulAADLen = aad.size();
    p.ulTagBits = kGcmTagSize * 8;
    return p;
  }

  std::shared_ptr<Device> device_;
  std::mutex token_data_mu_;
};

StatusOr<std::unique_ptr<Hsm>> OpenOn(Pkcs11HsmConfig config,
                                      std::unique_ptr<pkcs11::Module> module) {
  if (config.session_pool_size == 0) return InvalidArgumentError("session_pool_size must be >= 1");
  auto device = std::make_shared<Device>(std::move(config), std::move(module));
  KMS_RETURN_IF_ERROR(device->Open());
  return std::unique_ptr<Hsm>(new Pkcs11Hsm(std::move(device)));
}

}  // namespace

StatusOr<std::unique_ptr<Hsm>> OpenPkcs11Hsm(Pkcs11HsmConfig config) {
  KMS_ASSIGN_OR_RETURN(std::unique_ptr<pkcs11::Module> module,
                       pkcs11::Module::Load(config.module_path));
  return OpenOn(std::move(config), std::move(module));
}

StatusOr<std::unique_ptr<Hsm>> OpenPkcs11Hsm(Pkcs11HsmConfig config, CK_FUNCTION_LIST* functions) {
  KMS_ASSIGN_OR_RETURN(std::unique_ptr<pkcs11::Module> module, pkcs11::Module::Adopt(functions));
  return OpenOn(std::move(config), std::move(module));
}

}  // namespace kms::hal
