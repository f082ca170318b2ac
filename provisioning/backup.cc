#include "provisioning/backup.h"

#include <fcntl.h>
#include <mbedtls/md.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>

#include "base/encoding.h"
#include "firmware/seal.h"
#include "firmware/store/metadata_store.h"
#include "firmware/store/sqlite_store.h"
#include "firmware/store_rollback.h"
#include "hal/hsm.h"
#include "hal/pkcs11_hsm.h"
#include "hal/pkcs11_policy.h"
#include "pkcs11/attributes.h"
#include "pkcs11/module.h"
#include "pkcs11/session.h"
#include "pkcs11/token.h"
#include "provisioning/token_init.h"

namespace kms::provisioning {
namespace {

namespace store = firmware::store;
namespace fs = std::filesystem;

constexpr std::size_t kMacSize = 32;
// RFC 5649 §4.1: a KWP blob of a multiple-of-8 key is the key plus one 8-byte block.
constexpr std::size_t kWrappedDomainKeySize = 32 + 8;
constexpr char kKekLabel[] = "kms-backup-kek";

Status WithPrefix(std::string_view prefix, const Status& status) {
  return Status(status.code(), std::string(prefix) + status.message(), status.reason(),
                status.device_code());
}
Status WithSuffix(const Status& status, std::string_view suffix) {
  return Status(status.code(), status.message() + std::string(suffix), status.reason(),
                status.device_code());
}

void PutU32(Bytes& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}
void PutU64(Bytes& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}
void PutBytes(Bytes& out, ByteView b) { out.insert(out.end(), b.begin(), b.end()); }

std::array<std::uint8_t, kMacSize> Hmac(const SecretBytes& key, ByteView data) {
  std::array<std::uint8_t, kMacSize> mac{};
  // mbedtls_md_hmac fails only on bad parameters, which these are not.
  (void)mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), key.ExposeSecret().data(),
                        key.size(), data.data(), data.size(), mac.data());
  return mac;
}

// Reads the file's fields in order; every read is bounds-checked (the MAC already holds, so a
// failure means a writer bug or a MAC key that leaked, never a typo: DataLoss).
class Reader {
 public:
  explicit Reader(ByteView in) : in_(in) {}
  StatusOr<ByteView> Take(std::size_t n, std::string_view what) {
    if (n > in_.size()) return DataLossError("backup: truncated " + std::string(what));
    ByteView out = in_.first(n);
    in_ = in_.subspan(n);
    return out;
  }
  StatusOr<std::uint64_t> Uint(std::size_t bytes, std::string_view what) {
    KMS_ASSIGN_OR_RETURN(ByteView b, Take(bytes, what));
    std::uint64_t v = 0;
    for (std::uint8_t c : b) v = (v << 8) | c;
    return v;
  }
  bool done() const { return in_.empty(); }

 private:
  ByteView in_;
};

// The header's "name=value\n" lines, in the fixed order EncodeBackup writes.
StatusOr<std::string> HeaderField(std::string_view& text, std::string_view name) {
  const std::string prefix = std::string(name) + "=";
  const auto end = text.find('\n');
  if (!text.starts_with(prefix) || end == std::string_view::npos) {
    return DataLossError("backup header lacks " + std::string(name));
  }
  std::string value(text.substr(prefix.size(), end - prefix.size()));
  text.remove_prefix(end + 1);
  return value;
}

StatusOr<std::uint64_t> DecimalField(std::string_view& text, std::string_view name,
                                     std::uint64_t max) {
  KMS_ASSIGN_OR_RETURN(std::string value, HeaderField(text, name));
  if (value.empty() || value.size() > 19 ||
      !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return DataLossError("backup header has a malformed " + std::string(name));
  }
  std::uint64_t v = 0;
  for (char c : value) v = v * 10 + static_cast<std::uint64_t>(c - '0');
  if (v > max) return DataLossError("backup header has an impossible " + std::string(name));
  return v;
}

std::string EncodeHeader(const BackupHeader& h) {
  return "token_label=" + h.token_label + "\ndomain_key_label=" + h.domain_key_label +
         "\nsplit_id=" + HexEncode(h.split_id) + "\nthreshold=" + std::to_string(h.threshold) +
         "\nshares=" + std::to_string(h.shares) + "\nstore_epoch=" + std::to_string(h.store_epoch) +
         "\ncreated=" + std::to_string(h.created) + "\n";
}

StatusOr<BackupHeader> DecodeHeader(std::string_view text) {
  BackupHeader h;
  KMS_ASSIGN_OR_RETURN(h.token_label, HeaderField(text, "token_label"));
  KMS_ASSIGN_OR_RETURN(h.domain_key_label, HeaderField(text, "domain_key_label"));
  KMS_ASSIGN_OR_RETURN(std::string split, HeaderField(text, "split_id"));
  auto split_bytes = HexDecode(split);
  if (!split_bytes.has_value() || split_bytes->size() != firmware::kSplitIdSize) {
    return DataLossError("backup header has a malformed split_id");
  }
  std::copy(split_bytes->begin(), split_bytes->end(), h.split_id.begin());
  KMS_ASSIGN_OR_RETURN(std::uint64_t threshold,
                       DecimalField(text, "threshold", firmware::kMaxShares));
  KMS_ASSIGN_OR_RETURN(std::uint64_t shares, DecimalField(text, "shares", firmware::kMaxShares));
  if (threshold < 1 || shares < threshold) {
    return DataLossError("backup header has an impossible threshold");
  }
  h.threshold = static_cast<std::uint8_t>(threshold);
  h.shares = static_cast<std::uint8_t>(shares);
  KMS_ASSIGN_OR_RETURN(h.store_epoch,
                       DecimalField(text, "store_epoch", std::numeric_limits<std::int64_t>::max()));
  KMS_ASSIGN_OR_RETURN(std::uint64_t created,
                       DecimalField(text, "created", std::numeric_limits<std::int64_t>::max()));
  h.created = static_cast<std::int64_t>(created);
  if (!text.empty()) return DataLossError("backup header has unknown fields");
  return h;
}

// The unseal secret from the custodians' shares, every one of them checked by a combiner bound to
// the store's seal descriptor (its split, threshold and share count), so a share of another split
// is refused instead of mixing in; then checked against the descriptor's verifier when it has one,
// before anything logs in with it.
StatusOr<SecretBytes> RebuildSecret(const std::vector<SecretBytes>& shares,
                                    const firmware::SealDescriptor& descriptor) {
  firmware::ShareCombiner combiner(firmware::ExpectedShares(descriptor));
  for (std::size_t i = 0; i < shares.size() && !combiner.secret().has_value(); ++i) {
    Status added = combiner.Add(AsStringView(shares[i].ExposeSecret()));
    if (!added.ok()) {
      return InvalidArgumentError("share " + std::to_string(i + 1) + " of " +
                                  std::to_string(shares.size()) + " entered: " + added.message());
    }
  }
  if (!combiner.secret().has_value()) {
    const auto p = combiner.progress();
    return InvalidArgumentError("not enough shares: " + std::to_string(p.entered) + " of the " +
                                std::to_string(p.threshold) + " needed");
  }
  // A v1 descriptor has no verifier: the user login of the backup decides, as it did before.
  if (descriptor.verifier.has_value() &&
      !firmware::VerifyUnsealSecret(descriptor, *combiner.secret())) {
    return InvalidArgumentError("the shares do not rebuild this appliance's unseal secret");
  }
  return combiner.secret()->Clone();
}

StatusOr<SecretBytes> RebuildSecret(const std::vector<SecretBytes>& shares) {
  std::vector<std::string_view> texts;
  for (const SecretBytes& s : shares) texts.push_back(AsStringView(s.ExposeSecret()));
  return firmware::CombineShares(texts);
}

// The backup KEK as a public session object the SO installs (see the header for why public and
// session). `wrap` chooses its one use: WRAP for a backup, UNWRAP for a restore.
StatusOr<CK_OBJECT_HANDLE> InstallTrustedKek(pkcs11::Session& so_session, const SecretBytes& kek,
                                             bool wrap) {
  pkcs11::AttributeTemplate t;
  const CK_MECHANISM_TYPE kwp[] = {CKM_AES_KEY_WRAP_PAD};
  t.Ulong(CKA_CLASS, CKO_SECRET_KEY)
      .Ulong(CKA_KEY_TYPE, CKK_AES)
      .Bool(CKA_TOKEN, false)
      .Bool(CKA_PRIVATE, false)
      .Bool(CKA_SENSITIVE, true)
      .Bool(CKA_EXTRACTABLE, false)
      .Bool(CKA_ENCRYPT, false)
      .Bool(CKA_DECRYPT, false)
      .Bool(CKA_SIGN, false)
      .Bool(CKA_VERIFY, false)
      .Bool(CKA_DERIVE, false)
      .Bool(CKA_COPYABLE, false)
      .Bool(CKA_WRAP, wrap)
      .Bool(CKA_UNWRAP, !wrap)
      .Bool(CKA_TRUSTED, true)
      .Mechanisms(CKA_ALLOWED_MECHANISMS, kwp)
      .String(CKA_LABEL, kKekLabel)
      .Secret(CKA_VALUE, kek)
      // Last: SoftHSM2 2.6 makes the attributes after CKA_MODIFIABLE=FALSE read-only
      // (hal/pkcs11_policy.h).
      .Bool(CKA_MODIFIABLE, false);
  auto made = so_session.CreateObject(t);
  if (!made.has_value()) return WithPrefix("installing the backup KEK as SO: ", made.error());
  return *made;
}

// A consistent image of the SQLite database at `path` through the online backup API: one read
// transaction on the source, so kmsd may keep writing meanwhile. `epoch` is read from the image
// itself, so it names exactly the state the image holds.
StatusOr<Bytes> SnapshotStore(const std::string& path, std::uint64_t& epoch) {
  struct Db {
    sqlite3* db = nullptr;
    ~Db() { sqlite3_close_v2(db); }
  } src, dst;
  // READWRITE without CREATE: a missing file is an error, not a new empty store, and a WAL
  // database can be read even when its -shm has to be made.
  if (sqlite3_open_v2(path.c_str(), &src.db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    return UnavailableError("store " + path + ": cannot open: " + sqlite3_errmsg(src.db));
  }
  sqlite3_busy_timeout(src.db, 5000);
  if (sqlite3_open(":memory:", &dst.db) != SQLITE_OK)
    return InternalError("sqlite3_open(:memory:)");
  sqlite3_backup* backup = sqlite3_backup_init(dst.db, "main", src.db, "main");
  if (backup == nullptr) {
    return UnavailableError("store " + path + ": backup: " + sqlite3_errmsg(dst.db));
  }
  // -1: every page in one step, hence one read transaction and one consistent snapshot.
  const int step = sqlite3_backup_step(backup, -1);
  const int finish = sqlite3_backup_finish(backup);
  if (step != SQLITE_DONE || finish != SQLITE_OK) {
    return UnavailableError("store " + path +
                            ": backup: " + sqlite3_errstr(step != SQLITE_DONE ? step : finish));
  }
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(dst.db, "SELECT value FROM counters WHERE name = 'store.epoch'", -1, &stmt,
                         nullptr) != SQLITE_OK) {
    return FailedPreconditionError("store " + path +
                                   " is not a kms store: " + sqlite3_errmsg(dst.db));
  }
  epoch = 0;  // no committed write yet
  if (sqlite3_step(stmt) == SQLITE_ROW) {
    epoch = static_cast<std::uint64_t>(sqlite3_column_int64(stmt, 0));
  }
  sqlite3_finalize(stmt);
  sqlite3_int64 size = 0;
  unsigned char* image = sqlite3_serialize(dst.db, "main", &size, 0);
  if (image == nullptr) return InternalError("store " + path + ": sqlite3_serialize failed");
  Bytes out(image, image + size);
  sqlite3_free(image);
  return out;
}

Status WriteAllFd(int fd, ByteView bytes, const std::string& what) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return UnavailableError(what + ": write: " + std::strerror(errno));
    }
    bytes = bytes.subspan(static_cast<std::size_t>(n));
  }
  return Status();
}

// Writes `bytes` to `path` (which must not exist) with mode 0600: a temporary file beside it,
// fsynced, then renamed and the folder fsynced, so a crash leaves the old state or the whole file.
Status WriteFileAtomically(const std::string& path, ByteView bytes) {
  std::error_code ec;
  if (fs::exists(path, ec)) return AlreadyExistsError(path + " exists: refusing to overwrite it");
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return UnavailableError(tmp + ": " + std::strerror(errno));
  Status written = WriteAllFd(fd, bytes, tmp);
  if (written.ok() && ::fsync(fd) != 0) {
    written = UnavailableError(tmp + ": fsync: " + std::strerror(errno));
  }
  ::close(fd);
  if (written.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    written = UnavailableError(path + ": rename: " + std::strerror(errno));
  }
  if (!written.ok()) {
    ::unlink(tmp.c_str());
    return written;
  }
  const std::string dir = fs::path(path).parent_path().empty()
                              ? std::string(".")
                              : fs::path(path).parent_path().string();
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
  return Status();
}

StatusOr<Bytes> ReadWholeFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NotFoundError(path + ": " + std::strerror(errno));
  Bytes out;
  std::uint8_t buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return UnavailableError(path + ": " + std::strerror(err));
    }
    if (n == 0) break;
    out.insert(out.end(), buf, buf + n);
  }
  ::close(fd);
  return out;
}

std::string JsonString(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// The DK on the token, found by label among the token's secret keys, and checked against the
// policy before it is wrapped: a look-alike object is never backed up.
StatusOr<CK_OBJECT_HANDLE> FindDomainKey(pkcs11::Session& session, const std::string& label) {
  pkcs11::AttributeTemplate find;
  find.Ulong(CKA_CLASS, CKO_SECRET_KEY).Bool(CKA_TOKEN, true).String(CKA_LABEL, label);
  KMS_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> found, session.FindObjects(find, 2));
  if (found.empty()) return NotFoundError("domain key '" + label + "' not found on the token");
  if (found.size() > 1) {
    return FailedPreconditionError("more than one domain key labelled '" + label + "'");
  }
  KMS_RETURN_IF_ERROR(hal::CheckDomainKeyPolicy(session, found[0]));
  return found[0];
}

// The domain key's policy template (hal/pkcs11_policy.h DomainKeySpec) for C_UnwrapKey: less
// CKA_VALUE_LEN (see the caller), and with the label *before* CKA_UNWRAP and CKA_MODIFIABLE=FALSE,
// in TemplateOf's order, since SoftHSM2 2.6 makes every attribute after CKA_MODIFIABLE=FALSE
// read-only in C_UnwrapKey (CKR_ATTRIBUTE_READ_ONLY; DomainKeyTemplate appends the label last,
// which only C_GenerateKey tolerates).
pkcs11::AttributeTemplate DomainKeyUnwrapTemplate(const std::string& label) {
  const hal::KeySpec spec = hal::DomainKeySpec();
  pkcs11::AttributeTemplate t;
  t.Ulong(CKA_CLASS, spec.object_class).Ulong(CKA_KEY_TYPE, spec.key_type);
  auto is_late = [](CK_ATTRIBUTE_TYPE a) { return a == CKA_UNWRAP || a == CKA_MODIFIABLE; };
  for (const auto& [type, value] : spec.flags) {
    if (!is_late(type)) t.Bool(type, value);
  }
  t.Mechanisms(CKA_ALLOWED_MECHANISMS, spec.allowed_mechanisms);
  t.String(CKA_LABEL, label);
  for (CK_ATTRIBUTE_TYPE late : {CKA_UNWRAP, CKA_MODIFIABLE}) {
    for (const auto& [type, value] : spec.flags) {
      if (type == late) t.Bool(type, value);
    }
  }
  return t;
}

// Token steps of a backup: SO installs the KEK, the user wraps the DK under it.
StatusOr<Bytes> WrapDomainKey(const app::ApplianceConfig& config, const SecretBytes& so_pin,
                              const SecretBytes& secret) {
  KMS_ASSIGN_OR_RETURN(std::unique_ptr<pkcs11::Module> module,
                       pkcs11::Module::Load(config.hsm_module));
  KMS_ASSIGN_OR_RETURN(CK_SLOT_ID slot, module->FindToken(config.token_label, config.token_serial));
  KMS_ASSIGN_OR_RETURN(pkcs11::Session session, pkcs11::Session::Open(*module, slot, true));
  if (Status so = pkcs11::Login::SecurityOfficer(session, so_pin); !so.ok()) {
    return WithPrefix("SO login: ", so);
  }
  const SecretBytes kek = firmware::BackupKekFromUnsealSecret(secret);
  KMS_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE kek_handle, InstallTrustedKek(session, kek, true));
  // Destroyed on every path out, and at the latest when the session closes (a session object).
  pkcs11::ScopedObject kek_object(session, kek_handle);
  KMS_RETURN_IF_ERROR(pkcs11::Login::Logout(session));
  if (Status user = pkcs11::Login::User(session, firmware::TokenPinFromUnsealSecret(secret));
      !user.ok()) {
    return WithPrefix("user login with the PIN the shares derive: ", user);
  }
  KMS_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE dk, FindDomainKey(session, config.domain_key_label));
  CK_MECHANISM kwp{CKM_AES_KEY_WRAP_PAD, nullptr, 0};
  auto wrapped = session.WrapKey(kwp, kek_object.get(), dk);
  if (!wrapped.has_value()) return WithPrefix("wrapping the domain key: ", wrapped.error());
  if (wrapped->size() != kWrappedDomainKeySize) {
    return InternalError("the wrapped domain key has " + std::to_string(wrapped->size()) +
                         " bytes, not " + std::to_string(kWrappedDomainKeySize));
  }
  kek_object.Reset();
  KMS_RETURN_IF_ERROR(session.Close());  // ends the user's login too
  return std::move(*wrapped);
}

// Everything a restore does from C_InitToken on.
StatusOr<RestoreResult> RestoreOntoNewToken(const app::ApplianceConfig& config,
                                            const BackupContents& backup, const SecretBytes& secret,
                                            std::unique_ptr<pkcs11::Module> module,
                                            CK_SLOT_ID slot) {
  const SecretBytes kek = firmware::BackupKekFromUnsealSecret(secret);
  CK_OBJECT_HANDLE kek_handle = CK_INVALID_HANDLE;
  TokenInitRequest request;
  request.token_label = config.token_label;
  request.domain_key_label = config.domain_key_label;
  request.user_pin = [&secret](pkcs11::Session&) -> StatusOr<SecretBytes> {
    return firmware::TokenPinFromUnsealSecret(secret);
  };
  request.while_so = [&](pkcs11::Session& so_session) -> Status {
    KMS_ASSIGN_OR_RETURN(kek_handle, InstallTrustedKek(so_session, kek, false));
    return Status();
  };
  request.domain_key = [&](pkcs11::Session& user_session) -> StatusOr<CK_OBJECT_HANDLE> {
    pkcs11::ScopedObject kek_object(user_session, kek_handle);
    // The DK's own policy template, less CKA_VALUE_LEN: the length of an unwrapped key comes from
    // the blob, and SoftHSM2 2.6 refuses the attribute in C_UnwrapKey (CKR_ATTRIBUTE_READ_ONLY,
    // measured); the blob was checked to be 40 bytes, an AES-256 key (RFC 5649 §4.1).
    pkcs11::AttributeTemplate t = DomainKeyUnwrapTemplate(config.domain_key_label);
    CK_MECHANISM kwp{CKM_AES_KEY_WRAP_PAD, nullptr, 0};
    auto dk = user_session.UnwrapKey(kwp, kek_object.get(), backup.wrapped_domain_key, t);
    if (!dk.has_value()) return WithPrefix("unwrapping the domain key: ", dk.error());
    return *dk;  // the KEK is destroyed here, with kek_object
  };
  KMS_ASSIGN_OR_RETURN(InitializedToken token, InitTokenWithDomainKey(*module, slot, request));
  module.reset();  // one Cryptoki initialisation per process: the HAL loads it again below

  KMS_RETURN_IF_ERROR(WriteFileAtomically(config.store_path, backup.store_image));
  store::SqliteStoreOptions store_options;
  store_options.path = config.store_path;
  auto opened = store::OpenSqliteStore(store_options);
  if (!opened.has_value()) {
    return WithPrefix("store " + config.store_path + ": ", opened.error());
  }
  std::unique_ptr<store::MetadataStore> metadata = std::move(*opened);
  KMS_ASSIGN_OR_RETURN(std::optional<firmware::SealDescriptor> descriptor,
                       firmware::ReadSealDescriptor(*metadata));
  if (!descriptor.has_value() || descriptor->split_id != backup.header.split_id) {
    return DataLossError("the restored store's seal descriptor does not match the backup's split");
  }
  // The backup's MAC proved the secret: a store backed up before verifiers existed gets its
  // verifier now, and one that has a verifier must agree with the shares.
  auto completed = firmware::CompleteSealDescriptor(*metadata, secret);
  if (!completed.has_value()) {
    return WithPrefix("store " + config.store_path + ": ", completed.error());
  }

  // The HAL with the derived PIN: it logs in and checks the restored DK against the policy, as
  // kmsd will at unseal. Then the store's epoch becomes the new token's rollback watermark.
  hal::Pkcs11HsmConfig hsm_config;
  hsm_config.module_path = config.hsm_module;
  hsm_config.token_label = config.token_label;
  hsm_config.token_serial = token.serial;
  hsm_config.user_pin = std::move(token.user_pin);
  hsm_config.domain_key_label = config.domain_key_label;
  hsm_config.session_pool_size = 1;
  KMS_ASSIGN_OR_RETURN(std::unique_ptr<hal::Hsm> hsm, hal::OpenPkcs11Hsm(std::move(hsm_config)));
  if (auto raised = firmware::RaiseWatermark(*hsm, *metadata); !raised.has_value()) {
    return WithPrefix("anchoring the store's epoch on the token: ", raised.error());
  }

  RestoreResult result;
  {
    auto txn = metadata->Begin(store::TransactionMode::kReadOnly);
    if (!txn.has_value()) return txn.error();
    KMS_ASSIGN_OR_RETURN(result.keys, (*txn)->CountKeys());
  }
  result.header = backup.header;
  result.token_label = config.token_label;
  result.token_serial = token.serial;
  result.so_pin = std::move(token.so_pin);
  result.store_path = config.store_path;
  if (!config.token_serial.empty() && config.token_serial != token.serial) {
    result.warnings.push_back(config.source + ": hsm.token_serial is " + config.token_serial +
                              ", the token restored has serial " + token.serial +
                              ": set hsm.token_serial to it before starting kmsd");
  }
  return result;
}

}  // namespace

Bytes EncodeBackup(const BackupContents& c, const SecretBytes& mac_key) {
  Bytes out;
  const std::string header = EncodeHeader(c.header);
  out.reserve(kBackupMagic.size() + 16 + header.size() + c.wrapped_domain_key.size() +
              c.store_image.size() + kMacSize);
  PutBytes(out, AsBytes(kBackupMagic));
  PutU32(out, static_cast<std::uint32_t>(header.size()));
  PutBytes(out, AsBytes(header));
  PutU32(out, static_cast<std::uint32_t>(c.wrapped_domain_key.size()));
  PutBytes(out, c.wrapped_domain_key);
  PutU64(out, c.store_image.size());
  PutBytes(out, c.store_image);
  const auto mac = Hmac(mac_key, out);
  PutBytes(out, mac);
  return out;
}

StatusOr<BackupContents> DecodeBackup(ByteView file, const SecretBytes& mac_key) {
  // The MAC before any field: nothing unauthenticated is parsed, and every kind of damage gets the
  // same answer.
  if (file.size() < kMacSize) return InvalidArgumentError(std::string(kBackupMacMismatch));
  const ByteView body = file.first(file.size() - kMacSize);
  const auto mac = Hmac(mac_key, body);
  if (!ConstantTimeEquals(mac, file.last(kMacSize))) {
    return InvalidArgumentError(std::string(kBackupMacMismatch));
  }
  Reader in(body);
  KMS_ASSIGN_OR_RETURN(ByteView magic, in.Take(kBackupMagic.size(), "magic"));
  if (AsStringView(magic) != kBackupMagic) return DataLossError("backup: unknown format");
  BackupContents c;
  KMS_ASSIGN_OR_RETURN(std::uint64_t header_size, in.Uint(4, "header length"));
  KMS_ASSIGN_OR_RETURN(ByteView header, in.Take(header_size, "header"));
  KMS_ASSIGN_OR_RETURN(c.header, DecodeHeader(AsStringView(header)));
  KMS_ASSIGN_OR_RETURN(std::uint64_t dk_size, in.Uint(4, "wrapped domain key length"));
  KMS_ASSIGN_OR_RETURN(ByteView dk, in.Take(dk_size, "wrapped domain key"));
  c.wrapped_domain_key.assign(dk.begin(), dk.end());
  KMS_ASSIGN_OR_RETURN(std::uint64_t store_size, in.Uint(8, "store length"));
  KMS_ASSIGN_OR_RETURN(ByteView image, in.Take(store_size, "store"));
  c.store_image.assign(image.begin(), image.end());
  if (!in.done()) return DataLossError("backup: bytes after the store");
  return c;
}

Status CheckBackupConfig(const app::ApplianceConfig& config) {
  const std::string& file = config.source;
  if (config.mode != app::Mode::kProduction) {
    return InvalidArgumentError(file +
                                ": backup and restore are for production configurations "
                                "(mode = \"production\"); this one is in dev mode");
  }
  KMS_RETURN_IF_ERROR(app::ValidateConfig(config));
  if (config.token_label.empty()) {
    return InvalidArgumentError(file +
                                ": hsm.token_label: backup and restore need the token label");
  }
  if (Status label = CheckTokenLabel(config.token_label); !label.ok()) {
    return WithPrefix(file + ": hsm.token_label: ", label);
  }
  return Status();
}

StatusOr<BackupResult> RunBackup(const app::ApplianceConfig& config, const BackupOptions& options) {
  KMS_RETURN_IF_ERROR(CheckBackupConfig(config));
  std::error_code ec;
  if (!fs::exists(config.store_path, ec)) {
    return NotFoundError("store " + config.store_path + " not found");
  }
  if (fs::exists(options.out_path, ec)) {
    return AlreadyExistsError(options.out_path + " exists: refusing to overwrite it");
  }
  // The seal descriptor names the split the shares must come from.
  firmware::SealDescriptor descriptor;
  {
    store::SqliteStoreOptions store_options;
    store_options.path = config.store_path;
    auto opened = store::OpenSqliteStore(store_options);
    if (!opened.has_value()) return WithPrefix("store " + config.store_path + ": ", opened.error());
    auto read = firmware::ReadSealDescriptor(**opened);
    if (!read.has_value()) return WithPrefix("store " + config.store_path + ": ", read.error());
    if (!read->has_value()) {
      return FailedPreconditionError("store " + config.store_path +
                                     " was never provisioned (it has no seal descriptor)");
    }
    descriptor = **read;
  }
  KMS_ASSIGN_OR_RETURN(SecretBytes secret, RebuildSecret(options.shares, descriptor));

  BackupContents c;
  KMS_ASSIGN_OR_RETURN(c.wrapped_domain_key, WrapDomainKey(config, options.so_pin, secret));
  KMS_ASSIGN_OR_RETURN(c.store_image, SnapshotStore(config.store_path, c.header.store_epoch));
  c.header.token_label = config.token_label;
  c.header.domain_key_label = config.domain_key_label;
  c.header.split_id = descriptor.split_id;
  c.header.threshold = descriptor.threshold;
  c.header.shares = descriptor.shares;
  c.header.created = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  const Bytes file = EncodeBackup(c, firmware::BackupMacKeyFromUnsealSecret(secret));
  KMS_RETURN_IF_ERROR(WriteFileAtomically(options.out_path, file));

  BackupResult result;
  result.path = options.out_path;
  result.header = c.header;
  result.file_size = file.size();
  result.store_size = c.store_image.size();
  return result;
}

StatusOr<RestoreResult> RunRestore(const app::ApplianceConfig& config,
                                   const RestoreOptions& options) {
  KMS_RETURN_IF_ERROR(CheckBackupConfig(config));
  KMS_ASSIGN_OR_RETURN(Bytes file, ReadWholeFile(options.backup_path));
  KMS_ASSIGN_OR_RETURN(SecretBytes secret, RebuildSecret(options.shares));
  KMS_ASSIGN_OR_RETURN(BackupContents backup,
                       DecodeBackup(file, firmware::BackupMacKeyFromUnsealSecret(secret)));
  // With the MAC holding, the secret is the one the backup was made with; the split id is checked
  // too, so shares of a re-split of the same secret (never made today) would still be named.
  KMS_ASSIGN_OR_RETURN(firmware::CustodianShare first,
                       firmware::ParseShare(AsStringView(options.shares.front().ExposeSecret())));
  if (first.split_id != backup.header.split_id) {
    return InvalidArgumentError("the shares are of split " + HexEncode(first.split_id) +
                                ", the backup of split " + HexEncode(backup.header.split_id));
  }
  if (backup.wrapped_domain_key.size() != kWrappedDomainKeySize) {
    return DataLossError("backup: the wrapped domain key has " +
                         std::to_string(backup.wrapped_domain_key.size()) + " bytes, not " +
                         std::to_string(kWrappedDomainKeySize));
  }
  // Every refusal before anything changes: a fresh store path, then a fresh token.
  std::error_code ec;
  if (fs::exists(config.store_path, ec)) {
    return AlreadyExistsError("store " + config.store_path +
                              " exists: restore writes a new store, refusing to replace it");
  }
  KMS_ASSIGN_OR_RETURN(std::unique_ptr<pkcs11::Module> module,
                       pkcs11::Module::Load(config.hsm_module));
  KMS_ASSIGN_OR_RETURN(CK_SLOT_ID slot, FindSlotForNewToken(*module, config.token_label));
  auto result = RestoreOntoNewToken(config, backup, secret, std::move(module), slot);
  if (!result.has_value()) {
    return WithSuffix(result.error(), " (the restore stopped after it began initialising token '" +
                                          config.token_label + "': delete that token and " +
                                          config.store_path + " before running it again)");
  }
  return result;
}

std::string FormatBackupText(const BackupResult& r) {
  return "kms-provision: backup written to " + r.path + " (" + std::to_string(r.file_size) +
         " bytes)\n  token:   " + r.header.token_label +
         "\n  split:   " + HexEncode(r.header.split_id) + " (threshold " +
         std::to_string(r.header.threshold) + " of " + std::to_string(r.header.shares) +
         ": the same shares open it)\n  store:   epoch " + std::to_string(r.header.store_epoch) +
         ", " + std::to_string(r.store_size) + " bytes\n";
}

std::string FormatBackupJson(const BackupResult& r) {
  return "{\"path\":" + JsonString(r.path) + ",\"bytes\":" + std::to_string(r.file_size) +
         ",\"token_label\":" + JsonString(r.header.token_label) +
         ",\"split_id\":" + JsonString(HexEncode(r.header.split_id)) +
         ",\"threshold\":" + std::to_string(r.header.threshold) +
         ",\"shares\":" + std::to_string(r.header.shares) +
         ",\"store_epoch\":" + std::to_string(r.header.store_epoch) +
         ",\"store_bytes\":" + std::to_string(r.store_size) +
         ",\"created\":" + std::to_string(r.header.created) + "}\n";
}

SecretBytes FormatRestoreText(const RestoreResult& r) {
  SecretBytes out;
  auto put = [&out](std::string_view s) { out.Append(AsBytes(s)); };
  put("kms-provision: restored onto a new token; the appliance is sealed.\n\nHSM token\n  label:  "
      " ");
  put(r.token_label);
  put("\n  serial:  ");
  put(r.token_serial);
  put("   (set hsm.token_serial to it)\n  SO PIN:  ");
  out.Append(r.so_pin.ExposeSecret());
  put("\n           the NEW token's Security Officer PIN, shown ONCE and stored NOWHERE\n\n"
      "Store\n  path:    ");
  put(r.store_path);
  put("\n  epoch:   ");
  put(std::to_string(r.header.store_epoch));
  put(" (backup of " + std::to_string(r.header.created) + ", Unix seconds)\n  keys:    ");
  put(std::to_string(r.keys));
  put("\n\nThe same custodian shares unseal it: any " + std::to_string(r.header.threshold) +
      " of the " + std::to_string(r.header.shares) + " of split " + HexEncode(r.header.split_id) +
      ".\n");
  return out;
}

SecretBytes FormatRestoreJson(const RestoreResult& r) {
  SecretBytes out;
  auto put = [&out](std::string_view s) { out.Append(AsBytes(s)); };
  put("{\"token_label\":" + JsonString(r.token_label) +
      ",\"token_serial\":" + JsonString(r.token_serial) + ",\"so_pin\":\"");
  out.Append(r.so_pin.ExposeSecret());  // lowercase hex: nothing to escape
  put("\",\"store_path\":" + JsonString(r.store_path) + ",\"store_epoch\":" +
      std::to_string(r.header.store_epoch) + ",\"keys\":" + std::to_string(r.keys) +
      ",\"split_id\":" + JsonString(HexEncode(r.header.split_id)) + ",\"threshold\":" +
      std::to_string(r.header.threshold) + ",\"shares\":" + std::to_string(r.header.shares) +
      ",\"created\":" + std::to_string(r.header.created) + "}\n");
  return out;
}

}  // namespace kms::provisioning
