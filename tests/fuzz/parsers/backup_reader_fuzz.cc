// libFuzzer target: the backup file reader (provisioning/backup.h DecodeBackup, and RunRestore
// reading a backup file).
//
// The first byte picks how the rest is used:
//  * as a whole file, MAC included: refused with exactly the one MAC message (nobody without the
//    shares can make a MAC);
//  * as a file body that the target MACs with the right key (a writer bug, or a MAC key that
//    leaked): DecodeBackup agrees with a direct reading of the documented layout on acceptance and
//    on every field, refuses anything else with a DataLoss naming the field ("backup..."), and a
//    decoded backup encodes to a file that decodes equal;
//  * as that file on disk, restored with the custodians' shares by RunRestore: every hostile file
//    is refused, with DecodeBackup's error or the named split / domain-key checks, BEFORE the HSM
//    is touched. The configuration names an empty file as the PKCS#11 module, so reaching the HSM
//    shows as "cannot load PKCS#11 module": only a file that passes every check may get there.
// The backup reader speaks PKCS#11 directly (no hal::Hsm), so the module load is the first HSM
// call there is; nothing after it runs with such a module.
#include <mbedtls/md.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/encoding.h"
#include "base/secret_bytes.h"
#include "firmware/app/appliance_config.h"
#include "firmware/custodian_shares.h"
#include "firmware/seal.h"
#include "provisioning/backup.h"
#include "tests/fuzz/parsers/fuzz_input.h"

namespace {

using kms::Bytes;
using kms::ByteView;
using kms::SecretBytes;
using kms::provisioning::BackupContents;
using kms::provisioning::BackupHeader;

// One appliance's custodians, made once: a 2-of-3 split of a fixed secret.
struct Custodians {
  kms::fuzz::ProcessTempDir dir{"kms-fuzz-backup"};
  SecretBytes secret;
  std::vector<SecretBytes> shares;
  std::array<std::uint8_t, 8> split_id{};
  SecretBytes mac_key;
  kms::app::ApplianceConfig config;
  std::string backup_path;

  Custodians() {
    secret = SecretBytes(32);
    for (std::size_t i = 0; i < 32; ++i) {
      secret.ExposeSecretMutable()[i] = static_cast<std::uint8_t>(i * 7 + 1);
    }
    std::uint8_t counter = 0;
    auto random = [&counter](std::size_t n) -> kms::StatusOr<SecretBytes> {
      SecretBytes out(n);
      for (auto& b : out.ExposeSecretMutable()) b = static_cast<std::uint8_t>(++counter * 37);
      return out;
    };
    auto split = kms::firmware::SplitSecret(secret, 2, 3, random);
    if (!split) std::abort();
    shares = std::move(*split);
    auto first = kms::firmware::ParseShare(kms::AsStringView(shares[0].ExposeSecret()));
    if (!first) std::abort();
    split_id = first->split_id;
    mac_key = kms::firmware::BackupMacKeyFromUnsealSecret(secret);

    const std::string module = (dir.path() / "module.so").string();
    std::ofstream(module).close();  // empty: loading it is the first HSM step, and it fails
    config.mode = kms::app::Mode::kProduction;
    config.source = "fuzz.toml";
    config.hsm_module = module;
    config.token_label = "kms-restored";
    config.store_path = (dir.path() / "restored.db").string();
    backup_path = (dir.path() / "backup.kmsb").string();
  }
};

Custodians& TheCustodians() {
  static Custodians* c = new Custodians();  // never destroyed: libFuzzer exits without unwinding
  return *c;
}

Bytes Mac(const SecretBytes& key, ByteView body) {
  Bytes mac(32);
  mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), key.ExposeSecret().data(),
                  key.size(), body.data(), body.size(), mac.data());
  return mac;
}

// The layout read straight from the header comment of provisioning/backup.h.
std::optional<BackupContents> ReferenceDecode(ByteView body) {
  std::size_t pos = 0;
  auto take = [&](std::size_t n, ByteView& out) {
    if (body.size() - pos < n) return false;
    out = body.subspan(pos, n);
    pos += n;
    return true;
  };
  auto uint = [&](std::size_t n, std::uint64_t& out) {
    ByteView b;
    if (!take(n, b)) return false;
    out = 0;
    for (std::uint8_t c : b) out = (out << 8) | c;
    return true;
  };
  ByteView magic;
  if (!take(10, magic) || kms::AsStringView(magic) != "KMSBACKUP1") return std::nullopt;
  std::uint64_t header_size = 0;
  ByteView header;
  if (!uint(4, header_size) || !take(header_size, header)) return std::nullopt;
  std::string_view text = kms::AsStringView(header);
  auto field = [&text](std::string_view name, std::string& value) {
    const std::string prefix = std::string(name) + "=";
    const std::size_t nl = text.find('\n');
    if (text.substr(0, prefix.size()) != prefix || nl == std::string_view::npos) return false;
    value = std::string(text.substr(prefix.size(), nl - prefix.size()));
    text.remove_prefix(nl + 1);
    return true;
  };
  auto decimal = [&field](std::string_view name, std::uint64_t max, std::uint64_t& out) {
    std::string v;
    if (!field(name, v) || v.empty() || v.size() > 19) return false;
    out = 0;
    for (char c : v) {
      if (c < '0' || c > '9') return false;
      out = out * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return out <= max;
  };
  BackupContents c;
  std::string split;
  std::uint64_t threshold = 0, shares = 0, epoch = 0, created = 0;
  if (!field("token_label", c.header.token_label) ||
      !field("domain_key_label", c.header.domain_key_label) || !field("split_id", split)) {
    return std::nullopt;
  }
  auto split_bytes = kms::HexDecode(split);
  if (!split_bytes || split_bytes->size() != 8) return std::nullopt;
  std::copy(split_bytes->begin(), split_bytes->end(), c.header.split_id.begin());
  if (!decimal("threshold", 255, threshold) || !decimal("shares", 255, shares)) return std::nullopt;
  if (threshold < 1 || shares < threshold) return std::nullopt;
  if (!decimal("store_epoch", INT64_MAX, epoch) || !decimal("created", INT64_MAX, created)) {
    return std::nullopt;
  }
  if (!text.empty()) return std::nullopt;
  c.header.threshold = static_cast<std::uint8_t>(threshold);
  c.header.shares = static_cast<std::uint8_t>(shares);
  c.header.store_epoch = epoch;
  c.header.created = static_cast<std::int64_t>(created);
  std::uint64_t n = 0;
  ByteView dk, store;
  if (!uint(4, n) || !take(n, dk)) return std::nullopt;
  c.wrapped_domain_key.assign(dk.begin(), dk.end());
  if (!uint(8, n) || !take(n, store)) return std::nullopt;
  c.store_image.assign(store.begin(), store.end());
  if (pos != body.size()) return std::nullopt;
  return c;
}

bool SameHeader(const BackupHeader& a, const BackupHeader& b) {
  return a.token_label == b.token_label && a.domain_key_label == b.domain_key_label &&
         a.split_id == b.split_id && a.threshold == b.threshold && a.shares == b.shares &&
         a.store_epoch == b.store_epoch && a.created == b.created;
}

bool Same(const BackupContents& a, const BackupContents& b) {
  return SameHeader(a.header, b.header) && a.wrapped_domain_key == b.wrapped_domain_key &&
         a.store_image == b.store_image;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Custodians& c = TheCustodians();
  if (size == 0) return 0;
  const std::uint8_t mode = data[0];
  const ByteView rest(data + 1, size - 1);

  if (mode % 4 == 0) {
    auto decoded = kms::provisioning::DecodeBackup(rest, c.mac_key);
    KMS_FUZZ_CHECK(!decoded && decoded.error().code() == kms::StatusCode::kInvalidArgument &&
                       decoded.error().message() == kms::provisioning::kBackupMacMismatch,
                   "a file without the right MAC gets exactly the one MAC message");
    return 0;
  }

  Bytes file(rest.begin(), rest.end());
  const Bytes mac = Mac(c.mac_key, rest);
  file.insert(file.end(), mac.begin(), mac.end());
  auto decoded = kms::provisioning::DecodeBackup(file, c.mac_key);
  const auto want = ReferenceDecode(rest);
  KMS_FUZZ_CHECK_DETAIL(decoded.has_value() == want.has_value(),
                        "DecodeBackup accepts exactly the documented layout",
                        decoded ? "accepted" : decoded.error().ToString());
  if (decoded) {
    KMS_FUZZ_CHECK(Same(*decoded, *want), "DecodeBackup reads every field as documented");
    const Bytes again = kms::provisioning::EncodeBackup(*decoded, c.mac_key);
    auto redecoded = kms::provisioning::DecodeBackup(again, c.mac_key);
    KMS_FUZZ_CHECK(redecoded && Same(*redecoded, *decoded), "encode(decode(file)) decodes equal");
  } else {
    KMS_FUZZ_CHECK_DETAIL(decoded.error().code() == kms::StatusCode::kDataLoss &&
                              decoded.error().message().starts_with("backup"),
                          "a file that fails to parse under a valid MAC is a named DataLoss",
                          decoded.error().ToString());
  }

  if (mode % 4 != 1) return 0;
  // ---- RunRestore on the file ----
  {
    // A new file each time: truncating a written one makes ext4 flush it on close (auto_da_alloc),
    // which would cost milliseconds per input.
    std::remove(c.backup_path.c_str());
    std::ofstream out(c.backup_path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(file.data()), static_cast<std::streamsize>(file.size()));
  }
  kms::provisioning::RestoreOptions options;
  options.backup_path = c.backup_path;
  options.shares.push_back(c.shares[std::size_t{mode} % 3].Clone());
  options.shares.push_back(c.shares[(std::size_t{mode} + 1) % 3].Clone());
  auto restored = kms::provisioning::RunRestore(c.config, options);
  KMS_FUZZ_CHECK(!restored.has_value(), "no restore completes without an HSM");
  const std::string& message = restored.error().message();
  const bool reached_hsm = message.starts_with("cannot load PKCS#11 module ");
  const bool acceptable = want.has_value() && want->header.split_id == c.split_id &&
                          want->wrapped_domain_key.size() == 40;
  KMS_FUZZ_CHECK_DETAIL(reached_hsm == acceptable,
                        "only a backup that passes every check reaches the HSM", message);
  if (!acceptable && !decoded) {
    KMS_FUZZ_CHECK_DETAIL(restored.error() == decoded.error(),
                          "RunRestore refuses a file with DecodeBackup's error", message);
  }
  return 0;
}
