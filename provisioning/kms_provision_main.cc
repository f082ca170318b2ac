// kms-provision: the operator's tool holding the HSM's SO rights, apart from kmsd, which never has
// them (docs/architecture.md "Layers and targets").
//
//   kms-provision init --config /etc/kms/kmsd.toml --shares 5 --threshold 3 [--format text|json]
//   kms-provision backup --config kmsd.toml --out FILE [--shares-from FILE] [--format text|json]
//   kms-provision restore --config kmsd.toml --backup FILE [--shares-from FILE] [--format ...]
//   kms-provision tls --key-out FILE --cert-out FILE --dns NAME [--dns NAME...] [--ip ADDR...]
//                     [--days N] [--csr-out FILE]
//
// `init` runs the provisioning ceremony (provisioning/ceremony.h) on a production configuration and
// prints its secrets once, on stdout: the token label and serial, the SO PIN, the custodian shares,
// the threshold and the bootstrap administrator access key; `--format json` prints one JSON object
// instead. Nothing of it is written to any file. Warnings go to stderr, so stdout stays exactly the
// text or the JSON object.
//
// `backup` and `restore` (provisioning/backup.h) take the custodian shares one per line from stdin,
// or from --shares-from (for drills and tests). `backup` needs the token's SO PIN: from the
// environment variable KMS_SO_PIN, else asked for on the terminal without echo. `restore` prints
// the new token's SO PIN once, as `init` does.
//
// `tls` (provisioning/tls_identity.h) makes kmsd's TLS identity: a P-256 key (0600), a self-signed
// server certificate and optionally a CSR; it prints the certificate's SHA-256 fingerprint and
// SANs, never the key. It needs no configuration and no HSM.
//
// Exit status: 0 done; 2 usage or configuration error (nothing was touched); 1 the ceremony failed
// (one line on stderr saying why, and whether the token must be cleared before a retry).
#include <fcntl.h>
#include <sys/resource.h>
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <optional>
#include <utility>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/secret_bytes.h"
#include "base/status.h"
#include "firmware/app/appliance_config.h"
#include "provisioning/backup.h"
#include "provisioning/ceremony.h"
#include "provisioning/tls_identity.h"

namespace {

void Error(const std::string& message) {
  std::fprintf(stderr, "kms-provision: %s\n", message.c_str());
}

// write(2) straight from the wiped buffer: stdio would keep a copy in its own buffer, which nobody
// wipes.
bool WriteAll(int fd, kms::ByteView bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    bytes = bytes.subspan(static_cast<std::size_t>(n));
  }
  return true;
}

int RunInit(const std::string& config_path, const kms::provisioning::CeremonyOptions& options,
            bool json) {
  auto config = kms::app::LoadConfigFile(config_path);
  if (!config.has_value()) {
    Error(config.error().message());
    return 2;
  }
  if (kms::Status request = kms::provisioning::CheckCeremonyRequest(*config, options);
      !request.ok()) {
    Error(request.message());
    return 2;
  }
  auto result = kms::provisioning::RunInitCeremony(*config, options);
  if (!result.has_value()) {
    Error(result.error().message());
    return 1;
  }
  for (const std::string& warning : result->warnings) Error("warning: " + warning);
  kms::SecretBytes output = json ? kms::provisioning::FormatCeremonyJson(*result)
                                 : kms::provisioning::FormatCeremonyText(*result);
  const bool written = WriteAll(STDOUT_FILENO, output.ExposeSecret());
  output.clear();
  if (!written) {
    // The token and store are made but the operator has seen nothing: the shares are lost.
    Error("cannot write the ceremony's output to stdout: the shares are lost; delete token '" +
          result->token_label + "' and " + config->store_path + " and run the ceremony again");
    return 1;
  }
  return 0;
}

// Everything `fd` holds, into wiped storage (shares are secret; stdio would keep a copy).
bool ReadAllSecret(int fd, kms::SecretBytes& out) {
  std::uint8_t buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      kms::SecureWipe(buf, sizeof buf);
      return false;
    }
    if (n == 0) break;
    out.Append(kms::ByteView(buf, static_cast<std::size_t>(n)));
  }
  kms::SecureWipe(buf, sizeof buf);
  return true;
}

// The shares, one per line (blank lines and surrounding blanks ignored), from `path` or stdin.
bool ReadShares(const std::string& path, std::vector<kms::SecretBytes>& shares) {
  const int fd = path.empty() ? STDIN_FILENO : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    Error("cannot open " + path);
    return false;
  }
  kms::SecretBytes all;
  const bool read = ReadAllSecret(fd, all);
  if (!path.empty()) ::close(fd);
  if (!read) {
    Error("cannot read the shares from " + (path.empty() ? std::string("stdin") : path));
    return false;
  }
  std::string_view text = kms::AsStringView(all.ExposeSecret());
  while (!text.empty()) {
    const auto end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string_view::npos) continue;
    line = line.substr(first, line.find_last_not_of(" \t\r") - first + 1);
    shares.push_back(kms::SecretBytes::CopyFrom(kms::AsBytes(line)));
  }
  if (shares.empty()) {
    Error("no custodian shares given (one per line on stdin, or --shares-from)");
    return false;
  }
  return true;
}

// The SO PIN from KMS_SO_PIN, else from the terminal without echo.
bool ReadSoPin(kms::SecretBytes& pin) {
  if (const char* env = std::getenv("KMS_SO_PIN"); env != nullptr && *env != '\0') {
    pin = kms::SecretBytes::CopyFrom(kms::AsBytes(std::string_view(env)));
    return true;
  }
  const int tty = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
  if (tty < 0) {
    Error("the SO PIN is needed: set KMS_SO_PIN or run on a terminal");
    return false;
  }
  termios saved{};
  const bool is_tty = ::tcgetattr(tty, &saved) == 0;
  if (is_tty) {
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(tty, TCSAFLUSH, &quiet);
  }
  constexpr std::string_view kPrompt = "SO PIN of the token: ";
  (void)WriteAll(tty, kms::AsBytes(kPrompt));
  std::uint8_t c = 0;
  while (::read(tty, &c, 1) == 1 && c != '\n') {
    if (c != '\r') pin.Append(kms::ByteView(&c, 1));
  }
  c = 0;
  if (is_tty) ::tcsetattr(tty, TCSAFLUSH, &saved);
  (void)WriteAll(tty, kms::AsBytes(std::string_view("\n")));
  ::close(tty);
  if (pin.empty()) {
    Error("no SO PIN entered");
    return false;
  }
  return true;
}

// The configuration of backup/restore; nullopt (after one line on stderr) when it is unusable.
std::optional<kms::app::ApplianceConfig> LoadBackupConfig(const std::string& path) {
  auto config = kms::app::LoadConfigFile(path);
  if (!config.has_value()) {
    Error(config.error().message());
    return std::nullopt;
  }
  if (kms::Status checked = kms::provisioning::CheckBackupConfig(*config); !checked.ok()) {
    Error(checked.message());
    return std::nullopt;
  }
  return std::move(*config);
}

int RunBackup(const std::string& config_path, const std::string& out, const std::string& shares_from,
              bool json) {
  auto config = LoadBackupConfig(config_path);
  if (!config) return 2;
  kms::provisioning::BackupOptions options;
  options.out_path = out;
  if (!ReadShares(shares_from, options.shares)) return 2;
  if (!ReadSoPin(options.so_pin)) return 2;
  auto result = kms::provisioning::RunBackup(*config, options);
  if (!result.has_value()) {
    Error(result.error().message());
    return 1;
  }
  const std::string summary = json ? kms::provisioning::FormatBackupJson(*result)
                                   : kms::provisioning::FormatBackupText(*result);
  return WriteAll(STDOUT_FILENO, kms::AsBytes(summary)) ? 0 : 1;
}

int RunRestore(const std::string& config_path, const std::string& backup,
               const std::string& shares_from, bool json) {
  auto config = LoadBackupConfig(config_path);
  if (!config) return 2;
  kms::provisioning::RestoreOptions options;
  options.backup_path = backup;
  if (!ReadShares(shares_from, options.shares)) return 2;
  auto result = kms::provisioning::RunRestore(*config, options);
  if (!result.has_value()) {
    Error(result.error().message());
    return 1;
  }
  for (const std::string& warning : result->warnings) Error("warning: " + warning);
  kms::SecretBytes output = json ? kms::provisioning::FormatRestoreJson(*result)
                                 : kms::provisioning::FormatRestoreText(*result);
  const bool written = WriteAll(STDOUT_FILENO, output.ExposeSecret());
  output.clear();
  if (!written) {
    Error("cannot write the restore's output to stdout: the new SO PIN is lost");
    return 1;
  }
  return 0;
}

int RunTls(const kms::provisioning::TlsIdentityRequest& request) {
  auto result = kms::provisioning::CreateTlsIdentity(request);
  if (!result.has_value()) {
    Error(result.error().message());
    const kms::StatusCode code = result.error().code();
    return code == kms::StatusCode::kInvalidArgument || code == kms::StatusCode::kAlreadyExists ? 2
                                                                                                : 1;
  }
  const std::string summary = kms::provisioning::FormatTlsIdentityText(request, *result);
  return WriteAll(STDOUT_FILENO, kms::AsBytes(summary)) ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  // No core dumps: a dump of this process would hold the SO PIN, the unseal secret and the shares.
  struct rlimit no_core {
    0, 0
  };
  setrlimit(RLIMIT_CORE, &no_core);

  CLI::App app{"kms-provision: provisioning of the KMS appliance's HSM (SO rights)"};
  app.require_subcommand(1);
  CLI::App* init = app.add_subcommand(
      "init",
      "provisioning ceremony: initialise the token, split the unseal secret into custodian "
      "shares, seal the store, make the bootstrap administrator key");
  std::string config_path;
  kms::provisioning::CeremonyOptions options;
  std::string format = "text";
  init->add_option("--config", config_path, "kmsd's production configuration (kmsd.toml)")
      ->required();
  init->add_option("--shares", options.shares, "custodian shares to make (1..255)")->required();
  init->add_option("--threshold", options.threshold, "shares needed to unseal")->required();
  init->add_option("--format", format, "output: text (default) or json")
      ->check(CLI::IsMember({"text", "json"}));

  std::string out_path, backup_path, shares_from;
  CLI::App* backup = app.add_subcommand(
      "backup",
      "back up the domain key (wrapped under a KEK only the custodians' shares derive) and a "
      "snapshot of the store into one file");
  backup->add_option("--config", config_path, "kmsd's production configuration")->required();
  backup->add_option("--out", out_path, "the backup file to write (must not exist)")->required();
  backup->add_option("--shares-from", shares_from, "read the shares from this file, not stdin");
  backup->add_option("--format", format, "output: text (default) or json")
      ->check(CLI::IsMember({"text", "json"}));
  CLI::App* restore = app.add_subcommand(
      "restore", "restore a backup onto a new token and a new store, with the same shares");
  restore->add_option("--config", config_path, "kmsd's production configuration")->required();
  restore->add_option("--backup", backup_path, "the backup file")->required();
  restore->add_option("--shares-from", shares_from, "read the shares from this file, not stdin");
  restore->add_option("--format", format, "output: text (default) or json")
      ->check(CLI::IsMember({"text", "json"}));
  kms::provisioning::TlsIdentityRequest tls_request;
  CLI::App* tls = app.add_subcommand(
      "tls", "make kmsd's TLS identity: a P-256 key, a self-signed server certificate, a CSR");
  tls->add_option("--key-out", tls_request.key_out, "the private key's PEM file (must not exist)")
      ->required();
  tls->add_option("--cert-out", tls_request.cert_out, "the certificate's PEM file (must not exist)")
      ->required();
  tls->add_option("--dns", tls_request.dns_names, "a DNS name (repeatable; the first is the CN)")
      ->take_all();
  tls->add_option("--ip", tls_request.ip_addresses, "an IPv4 or IPv6 address (repeatable)")
      ->take_all();
  tls->add_option("--days", tls_request.days, "validity in days, 1..825 (default 397)");
  tls->add_option("--csr-out", tls_request.csr_out, "also write a PKCS#10 CSR here");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    Error(std::string(e.what()) + " (see kms-provision --help)");
    return 2;
  }
  if (tls->parsed()) return RunTls(tls_request);
  const bool json = format == "json";
  if (backup->parsed()) return RunBackup(config_path, out_path, shares_from, json);
  if (restore->parsed()) return RunRestore(config_path, backup_path, shares_from, json);
  return RunInit(config_path, options, json);
}
