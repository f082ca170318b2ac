// libFuzzer target: kmsd's TOML configuration (firmware/app/appliance_config.h, toml++).
//
// The input is the file's text. Invariants:
//  * any input gives a configuration or an InvalidArgument, never a crash or an escaping
//    exception;
//  * every error names where it is: "<file>:<line>:<column>: <what>" with a line inside the input,
//    or "<file>: <table.key>: <what>";
//  * round trip: a configuration the parser accepts, printed back as TOML by the simple printer
//    below, parses again to an equal configuration (the parser reads every value as written:
//    escapes, numbers, arrays, defaults).
// The parser checks that files named by a production configuration exist; such checks only read.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/log.h"
#include "base/status.h"
#include "firmware/app/appliance_config.h"
#include "tests/fuzz/parsers/fuzz_input.h"

namespace {

using kms::app::ApplianceConfig;
using kms::app::Mode;

constexpr std::string_view kSource = "fuzz.toml";

// A TOML basic string (TOML 1.0 §String): quotes, backslashes and control characters escaped.
std::string Quote(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out = "\"";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string_view LevelName(kms::log::Level level) {
  switch (level) {
    case kms::log::Level::kDebug:
      return "debug";
    case kms::log::Level::kInfo:
      return "info";
    case kms::log::Level::kWarn:
      return "warn";
    case kms::log::Level::kError:
      return "error";
  }
  return "info";
}

std::string Print(const ApplianceConfig& c) {
  const bool production = c.mode == Mode::kProduction;
  std::string t;
  t += "mode = " + Quote(production ? "production" : "dev") + "\n";
  t += "[server]\nlisten = " + Quote(c.listen) + "\nworkers = " + std::to_string(c.workers) +
       "\nmax_body_bytes = " + std::to_string(c.max_body_bytes) +
       "\nmax_connections_per_peer = " + std::to_string(c.max_connections_per_peer) + "\n";
  if (c.tls) {
    t += "[server.tls]\ncert = " + Quote(c.tls->cert) + "\nkey = " + Quote(c.tls->key) +
         "\nclient_ca = " + Quote(c.tls->client_ca) + "\n";
  }
  t += "[account]\nregion = " + Quote(c.region) + "\nid = " + Quote(c.account_id) + "\n";
  t += "[hsm]\nsessions = " + std::to_string(c.hsm_sessions) + "\n";
  if (production) {
    t += "module = " + Quote(c.hsm_module) + "\ntoken_label = " + Quote(c.token_label) +
         "\ntoken_serial = " + Quote(c.token_serial) +
         "\ndomain_key_label = " + Quote(c.domain_key_label) + "\n";
    t += "[store]\npath = " + Quote(c.store_path) + "\n";
    t += "[seal]\nauto_unseal_file = " + Quote(c.auto_unseal_file) + "\n";
  } else {
    t += "[dev]\nstate_dir = " + Quote(c.state_dir) + "\n";
  }
  t += "[vault]\nmounts = [";
  for (std::size_t i = 0; i < c.vault_mounts.size(); ++i) {
    t += (i ? ", " : "") + Quote(c.vault_mounts[i]);
  }
  t += "]\ntoken_max_ttl_hours = " + std::to_string(c.vault_token_max_ttl_hours) + "\n";
  t += "[audit]\ndir = " + Quote(c.audit_dir) +
       "\ncheckpoint_every = " + std::to_string(c.audit_checkpoint_every) + "\n";
  t += "[log]\nlevel = " + Quote(LevelName(c.log_level)) +
       "\nrequests = " + (c.log_requests ? "true" : "false") + "\n";
  return t;
}

bool SameTls(const ApplianceConfig& a, const ApplianceConfig& b) {
  if (a.tls.has_value() != b.tls.has_value()) return false;
  if (!a.tls) return true;
  return a.tls->cert == b.tls->cert && a.tls->key == b.tls->key &&
         a.tls->client_ca == b.tls->client_ca;
}

bool Same(const ApplianceConfig& a, const ApplianceConfig& b) {
  return a.mode == b.mode && a.source == b.source && a.listen == b.listen &&
         a.workers == b.workers && a.max_body_bytes == b.max_body_bytes &&
         a.max_connections_per_peer == b.max_connections_per_peer && SameTls(a, b) &&
         a.region == b.region && a.account_id == b.account_id && a.hsm_module == b.hsm_module &&
         a.token_label == b.token_label && a.token_serial == b.token_serial &&
         a.domain_key_label == b.domain_key_label && a.hsm_sessions == b.hsm_sessions &&
         a.store_path == b.store_path && a.vault_mounts == b.vault_mounts &&
         a.vault_token_max_ttl_hours == b.vault_token_max_ttl_hours &&
         a.audit_dir == b.audit_dir && a.audit_checkpoint_every == b.audit_checkpoint_every &&
         a.log_level == b.log_level && a.log_requests == b.log_requests &&
         a.state_dir == b.state_dir && a.auto_unseal_file == b.auto_unseal_file;
}

// "<file>:<line>:<column>: <what>" (line within the text) or "<file>: <what>".
bool NamesWhere(const std::string& message, std::string_view text) {
  std::string_view m = message;
  if (!m.starts_with(kSource)) return false;
  m.remove_prefix(kSource.size());
  if (m.starts_with(": ")) return m.size() > 2;
  auto number = [&m](std::size_t& out) {
    if (m.empty() || m[0] != ':') return false;
    m.remove_prefix(1);
    std::size_t digits = 0;
    out = 0;
    while (digits < m.size() && m[digits] >= '0' && m[digits] <= '9') {
      out = out * 10 + static_cast<std::size_t>(m[digits] - '0');
      ++digits;
    }
    m.remove_prefix(digits);
    return digits > 0 && out > 0;
  };
  std::size_t line = 0, column = 0;
  if (!number(line) || !number(column)) return false;
  std::size_t lines = 1;
  for (char c : text) lines += c == '\n' ? 1 : 0;
  return line <= lines && m.starts_with(": ") && m.size() > 2;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = kms::app::ParseConfig(text, kSource);
  if (!parsed) {
    KMS_FUZZ_CHECK(parsed.error().code() == kms::StatusCode::kInvalidArgument,
                   "every refusal is InvalidArgument");
    KMS_FUZZ_CHECK_DETAIL(NamesWhere(parsed.error().message(), text),
                          "every refusal names the file and the line/column or key",
                          parsed.error().message());
    return 0;
  }
  const std::string printed = Print(*parsed);
  auto again = kms::app::ParseConfig(printed, kSource);
  KMS_FUZZ_CHECK_DETAIL(again.has_value(), "a configuration printed back parses again",
                        again ? printed : again.error().message() + "\n" + printed);
  KMS_FUZZ_CHECK_DETAIL(Same(*parsed, *again), "a configuration printed back parses equal", printed);
  return 0;
}
