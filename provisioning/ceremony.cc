#include "provisioning/ceremony.h"

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string_view>
#include <utility>

#include "base/encoding.h"
#include "firmware/access_keys.h"
#include "firmware/authz/principals.h"
#include "firmware/clock.h"
#include "firmware/custodian_shares.h"
#include "firmware/seal.h"
#include "firmware/store/metadata_store.h"
#include "firmware/store/sqlite_store.h"
#include "hal/hsm.h"
#include "hal/pkcs11_hsm.h"
#include "pkcs11/module.h"
#include "pkcs11/session.h"
#include "provisioning/token_init.h"

namespace kms::provisioning {
namespace {

namespace store = firmware::store;

constexpr char kDefaultSoftHsmConf[] = "/etc/softhsm/softhsm2.conf";

// The same status with `suffix` appended to its message.
Status WithSuffix(const Status& status, std::string_view suffix) {
  return Status(status.code(), status.message() + std::string(suffix), status.reason(),
                status.device_code());
}
Status WithPrefix(std::string_view prefix, const Status& status) {
  return Status(status.code(), std::string(prefix) + status.message(), status.reason(),
                status.device_code());
}

// Opens the store at `path` (SQLite creates it when missing) and refuses one that a ceremony
// already sealed, or that holds anything at all: keys, access keys and Vault records are bound to
// the domain key of another token and would fail (DataLoss) under the new one.
StatusOr<std::unique_ptr<store::MetadataStore>> OpenNewOrEmptyStore(const std::string& path) {
  store::SqliteStoreOptions options;
  options.path = path;
  auto opened = store::OpenSqliteStore(options);
  if (!opened.has_value()) return WithPrefix("store " + path + ": ", opened.error());
  std::unique_ptr<store::MetadataStore> metadata = std::move(*opened);
  auto descriptor = firmware::ReadSealDescriptor(*metadata);
  if (!descriptor.has_value()) return WithPrefix("store " + path + ": ", descriptor.error());
  if (descriptor->has_value())
    return AlreadyExistsError("store " + path + " is already provisioned");
  bool holds_records = false;
  {
    // Scoped: every transaction ends before its store may be destroyed.
    auto txn = metadata->Begin(store::TransactionMode::kReadOnly);
    if (!txn.has_value()) return WithPrefix("store " + path + ": ", txn.error());
    auto keys = (*txn)->CountKeys();
    if (!keys.has_value()) return WithPrefix("store " + path + ": ", keys.error());
    auto access_keys = (*txn)->ListAccessKeys("", 1);
    if (!access_keys.has_value()) return WithPrefix("store " + path + ": ", access_keys.error());
    holds_records = *keys > 0 || !access_keys->items.empty();
    // The access keys' sealing key, Vault tokens and transit keys live in the meta table.
    for (std::string_view prefix : {"access_keys.", "vault."}) {
      auto meta = (*txn)->ListMeta(prefix, "", 1);
      if (!meta.has_value()) return WithPrefix("store " + path + ": ", meta.error());
      holds_records = holds_records || !meta->items.empty();
    }
  }
  if (holds_records) {
    return FailedPreconditionError("store " + path +
                                   " is not empty (it holds keys, access keys or Vault records): "
                                   "the ceremony needs a new or empty store");
  }
  return metadata;
}

// directories.tokendir of a SoftHSM2 configuration file; empty when it cannot be read.
std::string SoftHsmTokenDir(const std::string& conf_path) {
  std::ifstream in(conf_path);
  std::string line;
  while (std::getline(in, line)) {
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = line.substr(first, eq - first);
    key.erase(key.find_last_not_of(" \t") + 1);
    if (key != "directories.tokendir") continue;
    std::string value = line.substr(eq + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    value.erase(value.find_last_not_of(" \t\r") + 1);
    return value;
  }
  return "";
}

// See the header: the ceremony writes no backup into a directory it was not given.
std::string SoftHsmBackupWarning() {
  const char* env = std::getenv("SOFTHSM2_CONF");
  const std::string conf = env != nullptr && *env != '\0' ? env : kDefaultSoftHsmConf;
  const std::string dir = SoftHsmTokenDir(conf);
  const std::string where =
      dir.empty() ? "the token directory (directories.tokendir of " + conf + ")" : dir;
  return "the token is a SoftHSM2 token: SoftHSM2 rewrites its token.object in place on every "
         "login, and a crash at that moment loses the token and every key under it. Back up " +
         where +
         " now, and again after every PIN change, to storage as protected as the token itself "
         "(kms-provision writes nothing there).";
}

// A split the custodians could not rebuild would be found out only at the first unseal, when the
// secret is gone: check two different subsets now, while it still exists.
Status CheckSharesRebuild(const std::vector<SecretBytes>& shares, std::size_t threshold,
                          const SecretBytes& secret) {
  std::vector<std::string_view> first, last;
  for (std::size_t i = 0; i < threshold; ++i) {
    first.push_back(AsStringView(shares[i].ExposeSecret()));
    last.push_back(AsStringView(shares[shares.size() - threshold + i].ExposeSecret()));
  }
  for (const auto* subset : {&first, &last}) {
    KMS_ASSIGN_OR_RETURN(SecretBytes rebuilt, firmware::CombineShares(*subset));
    if (!(rebuilt == secret))
      return InternalError("the custodian shares do not rebuild the secret");
  }
  return Status();
}

// Everything from C_InitToken on. `module` is released before the HAL loads it again (one Cryptoki
// initialisation per process, pkcs11/module.h).
StatusOr<CeremonyResult> SealNewToken(const app::ApplianceConfig& config,
                                      const CeremonyOptions& options,
                                      std::unique_ptr<pkcs11::Module> module, CK_SLOT_ID slot,
                                      store::MetadataStore& metadata) {
  // 1. The token, its PINs and the domain key. The unseal secret is drawn while the SO is logged in
  // (the user PIN is derived from it, so it must exist before C_InitPIN).
  SecretBytes unseal_secret;
  TokenInitRequest request;
  request.token_label = config.token_label;
  request.domain_key_label = config.domain_key_label;
  request.user_pin = [&unseal_secret](pkcs11::Session& so_session) -> StatusOr<SecretBytes> {
    KMS_ASSIGN_OR_RETURN(unseal_secret, so_session.GenerateRandom(firmware::kUnsealSecretSize));
    if (unseal_secret.size() != firmware::kUnsealSecretSize) {
      return InternalError("the module's RNG returned the wrong number of bytes");
    }
    return firmware::TokenPinFromUnsealSecret(unseal_secret);
  };
  KMS_ASSIGN_OR_RETURN(InitializedToken token, InitTokenWithDomainKey(*module, slot, request));

  // 2. The custodian shares, with the module's RNG behind SplitSecret's coefficients and split id.
  std::vector<SecretBytes> shares;
  {
    KMS_ASSIGN_OR_RETURN(pkcs11::Session rng, pkcs11::Session::Open(*module, token.slot, false));
    const firmware::RandomSource random = [&rng](std::size_t size) {
      return rng.GenerateRandom(size);
    };
    KMS_ASSIGN_OR_RETURN(
        shares, firmware::SplitSecret(unseal_secret, options.threshold, options.shares, random));
    KMS_RETURN_IF_ERROR(rng.Close());
  }
  KMS_RETURN_IF_ERROR(CheckSharesRebuild(shares, options.threshold, unseal_secret));

  // 3. The seal descriptor: what the sealed appliance knows before any share is entered, with the
  // verifier that lets it judge a rebuilt secret before it tries a login with it.
  KMS_ASSIGN_OR_RETURN(firmware::CustodianShare first,
                       firmware::ParseShare(AsStringView(shares.front().ExposeSecret())));
  const firmware::SealDescriptor descriptor =
      firmware::MakeSealDescriptor(first.split_id, static_cast<std::uint8_t>(options.threshold),
                                   static_cast<std::uint8_t>(options.shares), unseal_secret);
  unseal_secret.clear();  // from here on only the shares can rebuild it
  module.reset();
  if (Status written = firmware::WriteSealDescriptor(metadata, descriptor); !written.ok()) {
    // Another ceremony sealed the store since it was checked.
    if (written.code() == StatusCode::kAlreadyExists) {
      return AlreadyExistsError("store " + config.store_path + " is already provisioned");
    }
    return WithPrefix("store " + config.store_path + ": ", written);
  }

  // 4. The HAL on the new token, with the PIN the custodians' shares will rebuild: opening it logs
  // in with that PIN and checks the domain key against the policy, so a wrong derivation or a
  // broken key is found now. Then the bootstrap administrator key.
  hal::Pkcs11HsmConfig hsm_config;
  hsm_config.module_path = config.hsm_module;
  hsm_config.token_label = config.token_label;
  hsm_config.token_serial = token.serial;  // exactly the token just made
  hsm_config.user_pin = std::move(token.user_pin);
  hsm_config.domain_key_label = config.domain_key_label;
  hsm_config.session_pool_size = 1;
  KMS_ASSIGN_OR_RETURN(std::unique_ptr<hal::Hsm> hsm, hal::OpenPkcs11Hsm(std::move(hsm_config)));
  firmware::SystemClock clock;
  // Create, not EnsureBootstrapAdmin + RevealSecret: the store was checked empty (no key to find),
  // and Create is the production way to see a secret, once (RevealSecret is dev-mode only).
  firmware::AccessKeyRegistry registry(*hsm, metadata, clock, {.secret_cache_capacity = 0});
  KMS_ASSIGN_OR_RETURN(firmware::CreatedAccessKey admin,
                       registry.Create(options.admin_principal, /*administrator=*/true));
  // The one administrator principal the appliance starts with, owner of that key.
  firmware::authz::PrincipalRegistry principals(metadata, clock, config.account_id);
  KMS_RETURN_IF_ERROR(principals.EnsureAdministrator(options.admin_principal));

  CeremonyResult result;
  result.token_label = config.token_label;
  result.token_serial = token.serial;
  result.so_pin = std::move(token.so_pin);
  result.threshold = options.threshold;
  result.shares = std::move(shares);
  result.split_id = HexEncode(first.split_id);
  result.access_key_id = admin.access_key_id;
  result.secret_access_key = std::move(admin.secret);
  result.region = config.region;
  result.account_id = config.account_id;
  if (token.model.find("SoftHSM") != std::string::npos) {
    result.warnings.push_back(SoftHsmBackupWarning());
  }
  return result;
}

// Output built straight into wiped storage: secrets never pass through a std::string.
class SecretText {
 public:
  SecretText& operator<<(std::string_view text) {
    out_.Append(AsBytes(text));
    return *this;
  }
  SecretText& operator<<(const SecretBytes& secret) {
    out_.Append(secret.ExposeSecret());
    return *this;
  }
  // A JSON string (RFC 8259 §7): quotes, backslashes and control characters escaped. Bytes from
  // 0x80 up pass as they are (the label is UTF-8, as toml++ checked).
  SecretText& JsonString(ByteView text) {
    static constexpr char kHex[] = "0123456789abcdef";
    *this << "\"";
    for (std::uint8_t c : text) {
      if (c == '"' || c == '\\') {
        const char escaped[2] = {'\\', static_cast<char>(c)};
        *this << std::string_view(escaped, 2);
      } else if (c < 0x20) {
        const char escaped[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
        *this << std::string_view(escaped, 6);
      } else {
        out_.Append(ByteView(&c, 1));
      }
    }
    *this << "\"";
    return *this;
  }
  SecretText& JsonString(std::string_view text) { return JsonString(AsBytes(text)); }
  SecretText& JsonString(const SecretBytes& secret) { return JsonString(secret.ExposeSecret()); }

  SecretBytes Take() { return std::move(out_); }

 private:
  SecretBytes out_;
};

}  // namespace

Status CheckCeremonyRequest(const app::ApplianceConfig& config, const CeremonyOptions& options) {
  const std::string& file = config.source;
  if (config.mode != app::Mode::kProduction) {
    return InvalidArgumentError(file +
                                ": the provisioning ceremony is for production configurations "
                                "(mode = \"production\"); this one is in dev mode");
  }
  // A configuration built in code gets the checks a loaded file had.
  KMS_RETURN_IF_ERROR(app::ValidateConfig(config));
  if (config.token_label.empty()) {
    return InvalidArgumentError(file +
                                ": hsm.token_label: the ceremony needs the label of the token it "
                                "makes");
  }
  if (Status label = CheckTokenLabel(config.token_label); !label.ok()) {
    return WithPrefix(file + ": hsm.token_label: ", label);
  }
  if (!config.token_serial.empty()) {
    return InvalidArgumentError(file +
                                ": hsm.token_serial: the module picks the serial of the token the "
                                "ceremony makes; leave it out and add the serial printed at the "
                                "end afterwards");
  }
  // SplitSecret's own checks, run now on a zero secret with a zero "random" source (nothing secret
  // either way): the operator gets exactly its message, before anything is touched.
  const SecretBytes probe(firmware::kUnsealSecretSize);
  auto shape = firmware::SplitSecret(
      probe, options.threshold, options.shares,
      [](std::size_t size) -> StatusOr<SecretBytes> { return SecretBytes(size); });
  if (!shape.has_value()) return shape.error();
  return Status();
}

StatusOr<CeremonyResult> RunInitCeremony(const app::ApplianceConfig& config,
                                         const CeremonyOptions& options) {
  KMS_RETURN_IF_ERROR(CheckCeremonyRequest(config, options));
  // Every refusal before anything changes: the module and a free token, then the store.
  KMS_ASSIGN_OR_RETURN(std::unique_ptr<pkcs11::Module> module,
                       pkcs11::Module::Load(config.hsm_module));
  KMS_ASSIGN_OR_RETURN(CK_SLOT_ID slot, FindSlotForNewToken(*module, config.token_label));
  KMS_ASSIGN_OR_RETURN(std::unique_ptr<store::MetadataStore> metadata,
                       OpenNewOrEmptyStore(config.store_path));
  auto result = SealNewToken(config, options, std::move(module), slot, *metadata);
  if (!result.has_value()) {
    return WithSuffix(result.error(), " (the ceremony stopped after it began initialising token '" +
                                          config.token_label + "': delete that token and " +
                                          config.store_path + " before running it again)");
  }
  return result;
}

SecretBytes FormatCeremonyText(const CeremonyResult& r) {
  const std::string threshold = std::to_string(r.threshold);
  const std::string count = std::to_string(r.shares.size());
  SecretText out;
  out << "kms-provision: the appliance is provisioned and sealed.\n"
      << "Everything below is shown ONCE and stored NOWHERE: copy it now.\n\n"
      << "HSM token\n"
      << "  label:   " << r.token_label << "\n"
      << "  serial:  " << r.token_serial << "   (set hsm.token_serial to it)\n"
      << "  SO PIN:  " << r.so_pin << "\n"
      << "           the token's Security Officer PIN: keep it sealed, apart from every share\n\n"
      << "Custodian shares: any " << threshold << " of these " << count
      << " unseal the appliance (threshold " << threshold << ", split " << r.split_id << ")\n";
  for (std::size_t i = 0; i < r.shares.size(); ++i) {
    out << "  share " << std::to_string(i + 1) << ": " << r.shares[i] << "\n";
  }
  out << "\nBootstrap administrator access key (region " << r.region << ", account " << r.account_id
      << ")\n"
      << "  AWS_ACCESS_KEY_ID=" << r.access_key_id << "\n"
      << "  AWS_SECRET_ACCESS_KEY=" << r.secret_access_key << "\n\n"
      << "WARNING: nothing of this is stored: not the SO PIN, not the shares, not the secret\n"
      << "access key. Give each share to one custodian, and no custodian more than one: fewer\n"
      << "than " << threshold << " shares can never unseal the appliance, and a lost share "
      << "cannot be printed again.\n";
  return out.Take();
}

SecretBytes FormatCeremonyJson(const CeremonyResult& r) {
  SecretText out;
  out << "{\"token_label\":";
  out.JsonString(r.token_label) << ",\"token_serial\":";
  out.JsonString(r.token_serial) << ",\"so_pin\":";
  out.JsonString(r.so_pin) << ",\"threshold\":" << std::to_string(r.threshold) << ",\"shares\":[";
  for (std::size_t i = 0; i < r.shares.size(); ++i) {
    if (i > 0) out << ",";
    out.JsonString(r.shares[i]);
  }
  out << "],\"split_id\":";
  out.JsonString(r.split_id) << ",\"access_key_id\":";
  out.JsonString(r.access_key_id) << ",\"secret_access_key\":";
  out.JsonString(r.secret_access_key) << ",\"region\":";
  out.JsonString(r.region) << ",\"account_id\":";
  out.JsonString(r.account_id) << "}\n";
  return out.Take();
}

}  // namespace kms::provisioning
