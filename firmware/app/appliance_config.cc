#include "firmware/app/appliance_config.h"

// toml++ reports parse errors through a result value instead of throwing, as the rest of the tree
// does with Status. This is the only translation unit that includes it.
#define TOML_EXCEPTIONS 0
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <set>
#include <sstream>
#include <system_error>

namespace kms::app {
namespace {

namespace fs = std::filesystem;

struct TableSchema {
  std::string_view name;  // "" for the top level
  std::vector<std::string_view> keys;
};

// Every table and key the file may hold.
const std::vector<TableSchema>& Schema() {
  static const std::vector<TableSchema> schema = {
      {"", {"mode", "server", "account", "hsm", "store", "vault", "log", "dev", "seal", "audit"}},
      {"server", {"listen", "workers", "max_body_bytes", "max_connections_per_peer", "tls"}},
      {"server.tls", {"cert", "key", "client_ca"}},
      {"account", {"region", "id"}},
      {"hsm", {"module", "token_label", "token_serial", "domain_key_label", "sessions"}},
      {"store", {"path"}},
      {"vault", {"mounts", "token_max_ttl_hours"}},
      {"log", {"level", "requests"}},
      {"dev", {"state_dir"}},
      {"seal", {"auto_unseal_file"}},
      {"audit", {"dir", "checkpoint_every"}},
  };
  return schema;
}

std::size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string Join(std::string_view table, std::string_view key) {
  return table.empty() ? std::string(key) : std::string(table) + "." + std::string(key);
}

// toml++ 3.3.0 (Debian 12's libtomlplusplus-dev) reaches __builtin_unreachable(), undefined
// behaviour, when it asks whether some non-ASCII characters are whitespace: U+00A1..U+0499,
// U+2C3E..U+3037 and U+FB06..U+FEFE, U+3000 excepted (its lookup covers U+00A0..U+FEFF in 64 blocks
// of 0x3FA code points and forgets three of them; marzer/tomlplusplus#190, fixed upstream after
// 3.3.0 by answering "not whitespace"). It asks wherever whitespace may stand, which for a hostile
// file is almost anywhere. So the text toml++ reads has each of these characters moved to
// kShieldBase + c, in the Supplementary Private Use Area, which toml++ classifies correctly as a
// plain non-whitespace character (what the fixed version answers for the original), and every
// string read back out is moved back. A file that already holds one of those private-use
// characters is refused, so the move is exact both ways.
constexpr char32_t kShieldBase = 0xF0000;

bool TomlReaderMisreads(char32_t c) {
  if (c < 0xA0 || c > 0xFEFF || c == 0xA0 || c == 0x3000 || c == 0xFEFF) return false;
  const std::uint64_t block = (c - 0xA0) / 0x3FA;
  if (((std::uint64_t{1} << block) & 0x7FFFFFFFFFFFF75Eull) != 0) return false;
  return block != 5 && block != 7;  // the two blocks its lookup's switch handles
}

// The code point of the UTF-8 sequence at text[at], and its length; 0 when it is not valid UTF-8
// (left to toml++, which reports it).
std::size_t DecodeUtf8(std::string_view text, std::size_t at, char32_t& c) {
  const auto b = static_cast<unsigned char>(text[at]);
  const std::size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || at + n > text.size()) return 0;
  c = n == 1 ? b : n == 2 ? (b & 0x1Fu) : n == 3 ? (b & 0x0Fu) : (b & 0x07u);
  for (std::size_t k = 1; k < n; ++k) {
    const auto next = static_cast<unsigned char>(text[at + k]);
    if ((next & 0xC0) != 0x80) return 0;
    c = (c << 6) | (next & 0x3Fu);
  }
  return n;
}

void AppendUtf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

// The text toml++ may read safely (see above).
StatusOr<std::string> ShieldFromTomlReader(std::string_view text, const std::string& source) {
  std::string out;
  out.reserve(text.size());
  std::size_t line = 1, column = 1;
  for (std::size_t i = 0; i < text.size();) {
    char32_t c = 0;
    const std::size_t n = DecodeUtf8(text, i, c);
    if (n == 0) {  // not UTF-8: copied for toml++ to refuse
      out += text[i++];
      ++column;
      continue;
    }
    if (c >= kShieldBase && TomlReaderMisreads(c - kShieldBase)) {
      char hex[16];
      std::snprintf(hex, sizeof hex, "%05X", static_cast<unsigned>(c));
      return InvalidArgumentError(source + ":" + std::to_string(line) + ":" +
                                  std::to_string(column) + ": not valid TOML: private-use character U+" +
                                  hex + " is not supported in this file");
    }
    if (TomlReaderMisreads(c)) {
      AppendUtf8(out, kShieldBase + c);
    } else {
      out.append(text.substr(i, n));
    }
    i += n;
    if (c == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return out;
}

// A string read out of the shielded text, as the file wrote it.
std::string Unshield(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    char32_t c = 0;
    const std::size_t n = DecodeUtf8(s, i, c);
    if (n == 4 && c >= kShieldBase && TomlReaderMisreads(c - kShieldBase)) {
      AppendUtf8(out, c - kShieldBase);
    } else {
      out.append(s.substr(i, n == 0 ? 1 : n));
    }
    i += n == 0 ? 1 : n;
  }
  return out;
}

class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  Status Problem(const toml::node* node, std::string_view key, const std::string& what) const {
    std::string where = source_;
    if (node != nullptr && node->source().begin.line != 0) {
      where += ":" + std::to_string(node->source().begin.line) + ":" +
               std::to_string(node->source().begin.column);
    }
    return InvalidArgumentError(where + ": " + std::string(key) + ": " + what);
  }

  // Unknown keys anywhere in `table` (named `name`) are errors, with the nearest known key offered.
  Status CheckKeys(const toml::table& table, std::string_view name) const {
    const TableSchema* schema = nullptr;
    for (const TableSchema& s : Schema()) {
      if (s.name == name) schema = &s;
    }
    for (auto&& [key, node] : table) {
      const std::string_view k = key.str();
      if (std::find(schema->keys.begin(), schema->keys.end(), k) != schema->keys.end()) continue;
      std::string message = "unknown key";
      std::string_view best;
      std::size_t best_distance = 3;
      for (std::string_view known : schema->keys) {
        const std::size_t d = EditDistance(k, known);
        if (d < best_distance) {
          best = known;
          best_distance = d;
        }
      }
      if (!best.empty()) message += " (did you mean '" + Join(name, best) + "'?)";
      return Problem(&node, Join(name, Unshield(k)), message);
    }
    return Status();
  }

  // The sub-table `key` of `parent`, checked; nullptr when absent.
  StatusOr<const toml::table*> Table(const toml::table& parent, std::string_view parent_name,
                                     std::string_view key) const {
    const toml::node* node = parent.get(key);
    const std::string name = Join(parent_name, key);
    if (node == nullptr) return static_cast<const toml::table*>(nullptr);
    if (!node->is_table()) return Problem(node, name, "must be a table ([" + name + "])");
    KMS_RETURN_IF_ERROR(CheckKeys(*node->as_table(), name));
    return node->as_table();
  }

  Status String(const toml::table* table, std::string_view table_name, std::string_view key,
                std::string& out) const {
    if (table == nullptr) return Status();
    const toml::node* node = table->get(key);
    if (node == nullptr) return Status();
    if (!node->is_string()) {
      return Problem(node, Join(table_name, key), "must be a string, got " + TypeName(*node));
    }
    out = Unshield(node->as_string()->get());
    return Status();
  }

  Status Size(const toml::table* table, std::string_view table_name, std::string_view key,
              std::size_t min, std::size_t max, std::size_t& out) const {
    if (table == nullptr) return Status();
    const toml::node* node = table->get(key);
    if (node == nullptr) return Status();
    const std::string name = Join(table_name, key);
    if (!node->is_integer())
      return Problem(node, name, "must be an integer, got " + TypeName(*node));
    const std::int64_t v = node->as_integer()->get();
    if (v < static_cast<std::int64_t>(min) || v > static_cast<std::int64_t>(max)) {
      return Problem(node, name,
                     "must be " + std::to_string(min) + " to " + std::to_string(max) + ", got " +
                         std::to_string(v));
    }
    out = static_cast<std::size_t>(v);
    return Status();
  }

  Status Bool(const toml::table* table, std::string_view table_name, std::string_view key,
              bool& out) const {
    if (table == nullptr) return Status();
    const toml::node* node = table->get(key);
    if (node == nullptr) return Status();
    if (!node->is_boolean()) {
      return Problem(node, Join(table_name, key), "must be true or false, got " + TypeName(*node));
    }
    out = node->as_boolean()->get();
    return Status();
  }

  Status Strings(const toml::table* table, std::string_view table_name, std::string_view key,
                 std::vector<std::string>& out) const {
    if (table == nullptr) return Status();
    const toml::node* node = table->get(key);
    if (node == nullptr) return Status();
    const std::string name = Join(table_name, key);
    if (!node->is_array()) {
      return Problem(node, name, "must be an array of strings, got " + TypeName(*node));
    }
    std::vector<std::string> values;
    for (const toml::node& item : *node->as_array()) {
      if (!item.is_string()) {
        return Problem(&item, name,
                       "must be an array of strings, got an element of type " + TypeName(item));
      }
      values.push_back(Unshield(item.as_string()->get()));
    }
    out = std::move(values);
    return Status();
  }

  static std::string TypeName(const toml::node& node) {
    switch (node.type()) {
      case toml::node_type::string:
        return "a string";
      case toml::node_type::integer:
        return "an integer";
      case toml::node_type::floating_point:
        return "a float";
      case toml::node_type::boolean:
        return "a boolean";
      case toml::node_type::array:
        return "an array";
      case toml::node_type::table:
        return "a table";
      default:
        return "a date or time";
    }
  }

  const std::string& source() const { return source_; }

 private:
  std::string source_;
};

Status CheckReadable(const ApplianceConfig& config, std::string_view key, const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return InvalidArgumentError(config.source + ": " + std::string(key) + ": cannot read '" + path +
                                "': " + std::strerror(errno));
  }
  return Status();
}

Status ConfigProblem(const ApplianceConfig& config, std::string_view key, const std::string& what) {
  return InvalidArgumentError(config.source + ": " + std::string(key) + ": " + what);
}

bool IsRegion(std::string_view region) {
  return !region.empty() && region.size() <= 32 && region.front() != '-' && region.back() != '-' &&
         std::all_of(region.begin(), region.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
         });
}

// A mount is one or more path segments of letters, digits, '-' and '_', like Vault's mount paths;
// "sys" and "auth" are Vault's own.
bool IsMount(std::string_view mount) {
  if (mount.empty() || mount.front() == '/' || mount.back() == '/') return false;
  if (mount.find("//") != std::string_view::npos) return false;
  const std::string_view first = mount.substr(0, mount.find('/'));
  if (first == "sys" || first == "auth") return false;
  return std::all_of(mount.begin(), mount.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '/';
  });
}

}  // namespace

StatusOr<std::pair<std::string, std::uint16_t>> ParseListenAddress(std::string_view listen,
                                                                   std::string_view what) {
  const auto colon = listen.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return InvalidArgumentError(std::string(what) + " must be HOST:PORT, got '" +
                                std::string(listen) + "'");
  }
  std::string host(listen.substr(0, colon));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost") host = "127.0.0.1";
  const std::string port_text(listen.substr(colon + 1));
  char* end = nullptr;
  errno = 0;
  const unsigned long port = std::strtoul(port_text.c_str(), &end, 10);
  if (port_text.empty() || port_text.front() == '-' || *end != '\0' || errno != 0 || port > 65535) {
    return InvalidArgumentError(std::string(what) + " port must be 0-65535, got '" + port_text +
                                "'");
  }
  return std::make_pair(host, static_cast<std::uint16_t>(port));
}

bool IsLoopbackHost(std::string_view host) {
  // Parsed, not matched by prefix: "127.0.0.1.example.com" is a name, and only an address literal
  // tells where the socket will be bound.
  const std::string text(host);
  in_addr v4{};
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;  // ::ffff:127.x.y.z
  }
  return false;
}

Status ValidateConfig(const ApplianceConfig& config) {
  auto listen = ParseListenAddress(config.listen, "server.listen");
  if (!listen.has_value()) return ConfigProblem(config, "server.listen", listen.error().message());
  if (config.mode == Mode::kDev && !IsLoopbackHost(listen->first)) {
    return ConfigProblem(
        config, "server.listen",
        "dev mode listens on loopback only (127.0.0.0/8 or ::1), not '" + listen->first + "'");
  }
  if (config.workers < 1 || config.workers > 256) {
    return ConfigProblem(config, "server.workers",
                         "must be 1 to 256, got " + std::to_string(config.workers));
  }
  if (config.max_connections_per_peer < 1 || config.max_connections_per_peer > 1024) {
    return ConfigProblem(
        config, "server.max_connections_per_peer",
        "must be 1 to 1024, got " + std::to_string(config.max_connections_per_peer));
  }
  if (config.hsm_sessions < 1 || config.hsm_sessions > 256) {
    return ConfigProblem(config, "hsm.sessions",
                         "must be 1 to 256, got " + std::to_string(config.hsm_sessions));
  }
  if (config.tls.has_value()) {
    const TlsConfig& tls = *config.tls;
    if (tls.cert.empty() || tls.key.empty()) {
      return ConfigProblem(config, tls.cert.empty() ? "server.tls.cert" : "server.tls.key",
                           "server.tls.cert and server.tls.key go together");
    }
    KMS_RETURN_IF_ERROR(CheckReadable(config, "server.tls.cert", tls.cert));
    KMS_RETURN_IF_ERROR(CheckReadable(config, "server.tls.key", tls.key));
    if (!tls.client_ca.empty()) {
      KMS_RETURN_IF_ERROR(CheckReadable(config, "server.tls.client_ca", tls.client_ca));
    }
  }
  if (!IsRegion(config.region)) {
    return ConfigProblem(
        config, "account.region",
        "must be lowercase letters, digits and '-' (like us-east-1), got '" + config.region + "'");
  }
  if (config.account_id.size() != 12 ||
      !std::all_of(config.account_id.begin(), config.account_id.end(),
                   [](char c) { return c >= '0' && c <= '9'; })) {
    return ConfigProblem(
        config, "account.id",
        "must be 12 digits, like an AWS account id, got '" + config.account_id + "'");
  }
  if (config.vault_mounts.empty()) {
    return ConfigProblem(config, "vault.mounts", "must name at least one mount");
  }
  std::set<std::string> seen;
  for (const std::string& mount : config.vault_mounts) {
    if (!IsMount(mount)) {
      return ConfigProblem(config, "vault.mounts",
                           "'" + mount +
                               "' is not a mount path (letters, digits, '-', '_' in '/'-separated "
                               "segments; not sys/ or auth/)");
    }
    if (!seen.insert(mount).second) {
      return ConfigProblem(config, "vault.mounts", "'" + mount + "' is listed twice");
    }
  }
  if (config.mode == Mode::kProduction && !config.tls.has_value() &&
      !IsLoopbackHost(listen->first)) {
    // Tokens, plaintexts, data keys and unseal shares would cross the network in clear. On
    // loopback, a TLS-terminating proxy on the same machine is the only peer that can connect.
    return ConfigProblem(
        config, "server.tls",
        "production mode needs TLS to listen beyond loopback, and server.listen is '" +
            config.listen +
            "': set server.tls.cert and server.tls.key (or --tls-cert and --tls-key), or listen "
            "on 127.0.0.1 or [::1] behind a TLS proxy; without TLS, tokens, plaintexts, data keys "
            "and unseal shares would cross the network in clear");
  }
  if (config.mode == Mode::kProduction) {
    if (config.hsm_module.empty()) {
      return ConfigProblem(config, "hsm.module", "production mode needs the PKCS#11 module's path");
    }
    // The error_code form: the throwing one ends the process on a path the system refuses
    // (longer than PATH_MAX, for one), which is as much "no such file" as a missing one.
    std::error_code ec;
    if (!fs::is_regular_file(config.hsm_module, ec)) {
      return ConfigProblem(config, "hsm.module", "no such file '" + config.hsm_module + "'");
    }
    if (config.token_label.empty() && config.token_serial.empty()) {
      return ConfigProblem(config, "hsm.token_label",
                           "production mode needs the token's label or serial");
    }
    if (config.domain_key_label.empty()) {
      return ConfigProblem(config, "hsm.domain_key_label", "must not be empty");
    }
    if (!config.auto_unseal_file.empty()) {
      struct stat st {};
      if (::stat(config.auto_unseal_file.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
        return ConfigProblem(config, "seal.auto_unseal_file",
                             "no such file '" + config.auto_unseal_file + "'");
      }
      // The file holds a threshold of shares: the whole unseal secret.
      if ((st.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        return ConfigProblem(
            config, "seal.auto_unseal_file",
            "must be readable by its owner only (chmod 600), got " + std::string(mode));
      }
    }
    if (config.store_path.empty() || !fs::path(config.store_path).is_absolute()) {
      return ConfigProblem(
          config, "store.path",
          "production mode needs the store's absolute path, got '" + config.store_path + "'");
    }
  }
  return Status();
}

StatusOr<ApplianceConfig> ParseConfig(std::string_view text, std::string_view source) {
  ApplianceConfig config;
  config.source = std::string(source);
  const Reader r{std::string(source)};

  KMS_ASSIGN_OR_RETURN(const std::string shielded, ShieldFromTomlReader(text, config.source));
  toml::parse_result parsed = toml::parse(shielded, source);
  if (!parsed) {
    const toml::parse_error& error = parsed.error();
    return InvalidArgumentError(config.source + ":" + std::to_string(error.source().begin.line) +
                                ":" + std::to_string(error.source().begin.column) +
                                ": not valid TOML: " + Unshield(error.description()));
  }
  const toml::table& root = parsed.table();
  KMS_RETURN_IF_ERROR(r.CheckKeys(root, ""));

  std::string mode = "dev";
  KMS_RETURN_IF_ERROR(r.String(&root, "", "mode", mode));
  if (mode == "production") {
    config.mode = Mode::kProduction;
  } else if (mode != "dev") {
    return r.Problem(root.get("mode"), "mode",
                     "must be \"dev\" or \"production\", got \"" + mode + "\"");
  }

  KMS_ASSIGN_OR_RETURN(const toml::table* server, r.Table(root, "", "server"));
  KMS_RETURN_IF_ERROR(r.String(server, "server", "listen", config.listen));
  KMS_RETURN_IF_ERROR(r.Size(server, "server", "workers", 1, 256, config.workers));
  KMS_RETURN_IF_ERROR(
      r.Size(server, "server", "max_body_bytes", 4096, 64 * 1024 * 1024, config.max_body_bytes));
  KMS_RETURN_IF_ERROR(r.Size(server, "server", "max_connections_per_peer", 1, 1024,
                             config.max_connections_per_peer));
  if (server != nullptr) {
    KMS_ASSIGN_OR_RETURN(const toml::table* tls, r.Table(*server, "server", "tls"));
    if (tls != nullptr) {
      TlsConfig t;
      KMS_RETURN_IF_ERROR(r.String(tls, "server.tls", "cert", t.cert));
      KMS_RETURN_IF_ERROR(r.String(tls, "server.tls", "key", t.key));
      KMS_RETURN_IF_ERROR(r.String(tls, "server.tls", "client_ca", t.client_ca));
      config.tls = std::move(t);
    }
  }

  KMS_ASSIGN_OR_RETURN(const toml::table* account, r.Table(root, "", "account"));
  KMS_RETURN_IF_ERROR(r.String(account, "account", "region", config.region));
  KMS_RETURN_IF_ERROR(r.String(account, "account", "id", config.account_id));

  KMS_ASSIGN_OR_RETURN(const toml::table* hsm, r.Table(root, "", "hsm"));
  KMS_RETURN_IF_ERROR(r.String(hsm, "hsm", "module", config.hsm_module));
  KMS_RETURN_IF_ERROR(r.String(hsm, "hsm", "token_label", config.token_label));
  KMS_RETURN_IF_ERROR(r.String(hsm, "hsm", "token_serial", config.token_serial));
  KMS_RETURN_IF_ERROR(r.String(hsm, "hsm", "domain_key_label", config.domain_key_label));
  KMS_RETURN_IF_ERROR(r.Size(hsm, "hsm", "sessions", 1, 256, config.hsm_sessions));

  KMS_ASSIGN_OR_RETURN(const toml::table* store, r.Table(root, "", "store"));
  KMS_RETURN_IF_ERROR(r.String(store, "store", "path", config.store_path));

  KMS_ASSIGN_OR_RETURN(const toml::table* vault, r.Table(root, "", "vault"));
  KMS_RETURN_IF_ERROR(r.Strings(vault, "vault", "mounts", config.vault_mounts));
  KMS_RETURN_IF_ERROR(r.Size(vault, "vault", "token_max_ttl_hours", 1, 100 * 8784,
                             config.vault_token_max_ttl_hours));

  KMS_ASSIGN_OR_RETURN(const toml::table* audit, r.Table(root, "", "audit"));
  KMS_RETURN_IF_ERROR(r.String(audit, "audit", "dir", config.audit_dir));
  KMS_RETURN_IF_ERROR(
      r.Size(audit, "audit", "checkpoint_every", 1, 1'000'000, config.audit_checkpoint_every));
  KMS_ASSIGN_OR_RETURN(const toml::table* logs, r.Table(root, "", "log"));
  std::string level = "info";
  KMS_RETURN_IF_ERROR(r.String(logs, "log", "level", level));
  if (!log::ParseLevel(level, config.log_level)) {
    return r.Problem(logs->get("level"), "log.level",
                     "must be debug, info, warn or error, got \"" + level + "\"");
  }
  KMS_RETURN_IF_ERROR(r.Bool(logs, "log", "requests", config.log_requests));

  KMS_ASSIGN_OR_RETURN(const toml::table* seal, r.Table(root, "", "seal"));
  if (seal != nullptr && config.mode != Mode::kProduction) {
    return r.Problem(root.get("seal"), "seal",
                     "only for mode = \"production\" (dev mode unseals itself)");
  }
  KMS_RETURN_IF_ERROR(r.String(seal, "seal", "auto_unseal_file", config.auto_unseal_file));

  KMS_ASSIGN_OR_RETURN(const toml::table* dev, r.Table(root, "", "dev"));
  if (dev != nullptr && config.mode != Mode::kDev) {
    return r.Problem(root.get("dev"), "dev", "only for mode = \"dev\"");
  }
  KMS_RETURN_IF_ERROR(r.String(dev, "dev", "state_dir", config.state_dir));
  // Dev mode makes its own token and store: only the session count applies to it.
  if (config.mode == Mode::kDev) {
    if (store != nullptr) {
      return r.Problem(root.get("store"), "store",
                       "dev mode keeps its store under dev.state_dir; [store] is for mode = "
                       "\"production\"");
    }
    for (std::string_view key : {"module", "token_label", "token_serial", "domain_key_label"}) {
      if (hsm != nullptr && hsm->get(key) != nullptr) {
        return r.Problem(
            hsm->get(key), Join("hsm", key),
            "dev mode makes its own SoftHSM2 token under dev.state_dir; this key is for "
            "mode = \"production\"");
      }
    }
  }

  KMS_RETURN_IF_ERROR(ValidateConfig(config));
  return config;
}

StatusOr<ApplianceConfig> LoadConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return InvalidArgumentError("cannot read configuration file '" + path +
                                "': " + std::strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return ParseConfig(text.str(), path);
}

}  // namespace kms::app
