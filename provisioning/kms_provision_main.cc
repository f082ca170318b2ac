// kms-provision: the operator's tool holding the HSM's SO rights (DESIGN.md, provisioning/), apart
// from kmsd, which never has them.
//
//   kms-provision init --config /etc/kms/kmsd.toml --shares 5 --threshold 3 [--format text|json]
//
// `init` runs the provisioning ceremony (provisioning/ceremony.h) on a production configuration and
// prints its secrets once, on stdout: the token label and serial, the SO PIN, the custodian shares,
// the threshold and the bootstrap administrator access key; `--format json` prints one JSON object
// instead. Nothing of it is written to any file. Warnings go to stderr, so stdout stays exactly the
// text or the JSON object.
//
// Exit status: 0 done; 2 usage or configuration error (nothing was touched); 1 the ceremony failed
// (one line on stderr saying why, and whether the token must be cleared before a retry).
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <string>

#include "base/bytes.h"
#include "base/secret_bytes.h"
#include "base/status.h"
#include "firmware/app/appliance_config.h"
#include "provisioning/ceremony.h"

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
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    Error(std::string(e.what()) + " (see kms-provision init --help)");
    return 2;
  }
  return RunInit(config_path, options, format == "json");
}
