// ApplianceConfig: kmsd's configuration, read from a TOML file (`kmsd --config kmsd.toml`) and
// checked in full before anything starts. `kmsd --dev` is a shortcut over the same structure: the
// defaults below are dev mode's, and command-line flags override the file.
//
//   mode = "dev"                       # or "production"
//   [server]   listen = "127.0.0.1:8200", workers = 4, max_body_bytes = 1048576,
//              max_connections_per_peer = 64
//   [server.tls] cert = "…", key = "…", client_ca = "…"      # HTTPS; client_ca requires client
//   certs [account]  region = "us-east-1", id = "111122223333" [hsm]      module =
//   "/usr/lib/softhsm/libsofthsm2.so", token_label = "kms", token_serial = "",
//              domain_key_label = "kms-domain-key", sessions = 2
//   [store]    path = "/var/lib/kms/kms.db"
//   [vault]    mounts = ["transit"], token_max_ttl_hours = 768
//   [log]      level = "info", requests = false
//   [dev]      state_dir = ".state"
//   [seal]     auto_unseal_file = "/etc/kms/unseal.shares"   # production; weaker, see below
//
// Contract:
//  * Every problem is InvalidArgument naming where it is and what is wrong, as
//    "<file>:<line>:<column>: <table.key>: <problem>" (no position for a key that is missing): a
//    TOML syntax error, an unknown table or key (a typo must not be ignored; the nearest known key
//    is suggested), a value of the wrong type, a value out of range, and rules across keys (TLS
//    cert and key together; dev mode on loopback only; production beyond loopback only with
//    [server.tls], with no opt-out; production needs [hsm] and [store]; [dev] only in dev mode;
//    [seal] only in production, its file readable by its owner only). A table of every table is
//    built; an unknown one is refused like an unknown key.
//  * `ValidateConfig` holds the rules across keys and the ranges, so a configuration changed by
//    command-line flags after loading is checked by the same code; LoadConfigFile calls it.
//  * The file holds no secrets: PINs come from the unseal ceremony, never from configuration. (It
//    may name a file of shares for auto-unseal; that file is the secret, and is checked to be
//    0600.)
//
// Thread-safety: plain functions over values.
#ifndef KMS_FIRMWARE_APP_APPLIANCE_CONFIG_H_
#define KMS_FIRMWARE_APP_APPLIANCE_CONFIG_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/log.h"
#include "base/status.h"

namespace kms::app {

enum class Mode { kDev, kProduction };

struct TlsConfig {
  std::string cert;       // PEM chain
  std::string key;        // PEM private key
  std::string client_ca;  // PEM CA bundle; non-empty requires client certificates
};

struct ApplianceConfig {
  Mode mode = Mode::kDev;
  std::string source = "defaults";  // the file the values came from, for messages

  // [server]
  std::string listen = "127.0.0.1:0";
  std::size_t workers = 4;
  std::size_t max_body_bytes = 1024 * 1024;
  // Open connections one remote IP address may hold (api/http/server.h), of 1024 in all.
  std::size_t max_connections_per_peer = 64;
  std::optional<TlsConfig> tls;

  // [account]
  std::string region = "us-east-1";
  std::string account_id = "111122223333";

  // [hsm] (production; dev mode makes its own token)
  std::string hsm_module;
  std::string token_label;
  std::string token_serial;
  std::string domain_key_label = "kms-domain-key";
  std::size_t hsm_sessions = 2;

  // [store] (production; dev mode keeps it under the state folder)
  std::string store_path;

  // [vault]
  std::vector<std::string> vault_mounts{"transit"};
  // The longest a renewable Vault token lives without an explicit max ttl (Vault's max_lease_ttl,
  // 768 h = 32 days by default), 1 h .. 100 years.
  std::size_t vault_token_max_ttl_hours = 768;

  // [audit]: the hash-chained audit log's folder ("" = "<dev.state_dir>/audit" in dev mode, the
  // store's folder + "/audit" in production) and records between signed checkpoints.
  std::string audit_dir;
  std::size_t audit_checkpoint_every = 1000;

  // [log]
  log::Level log_level = log::Level::kInfo;
  bool log_requests = false;

  // [dev]
  std::string state_dir = ".state";

  // [seal] (production): a file of custodian shares (one per line, a threshold of them) that kmsd
  // enters itself at start. WEAKER than custodians: whoever reads the file can unseal. For
  // unattended labs; kmsd logs a warning on every start that uses it.
  std::string auto_unseal_file;
};

// Parses TOML text (`source` names it in messages) over the defaults, then validates.
StatusOr<ApplianceConfig> ParseConfig(std::string_view toml, std::string_view source);
// Reads and parses a file; a file that cannot be read is InvalidArgument naming it.
StatusOr<ApplianceConfig> LoadConfigFile(const std::string& path);
// The ranges and the rules across keys (see the contract).
Status ValidateConfig(const ApplianceConfig& config);

// "host:port": an IPv4 literal, "localhost" (127.0.0.1) or a bracketed IPv6 literal, port 0-65535
// (0 picks a free port). `what` names the setting in the message.
StatusOr<std::pair<std::string, std::uint16_t>> ParseListenAddress(std::string_view listen,
                                                                   std::string_view what);
// An address literal in 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104; false for anything else,
// names and the wildcard addresses (0.0.0.0, ::) included.
bool IsLoopbackHost(std::string_view host);

}  // namespace kms::app

#endif  // KMS_FIRMWARE_APP_APPLIANCE_CONFIG_H_
