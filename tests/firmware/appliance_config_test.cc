// kmsd's configuration file: defaults are dev mode's, a complete production file fills every field,
// and every problem (syntax, unknown key, wrong type, out of range, rules across keys, tables of
// features not built yet, an unreadable file) is refused with the exact message an operator sees,
// naming the file, line, column and key.
#include "firmware/app/appliance_config.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

namespace kms::app {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "kms-config-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~TempDir() { fs::remove_all(path); }
  std::string Write(const std::string& name, const std::string& content) const {
    std::ofstream(path / name) << content;
    return (path / name).string();
  }
};

std::string ErrorOf(std::string_view toml) {
  auto config = ParseConfig(toml, "kmsd.toml");
  REQUIRE_FALSE(config.has_value());
  CHECK(config.error().code() == StatusCode::kInvalidArgument);
  return config.error().message();
}

TEST_CASE("config: an empty file is dev mode with the defaults", "[unit]") {
  auto config = ParseConfig("", "kmsd.toml");
  REQUIRE(config.has_value());
  CHECK(config->mode == Mode::kDev);
  CHECK(config->listen == "127.0.0.1:0");
  CHECK(config->workers == 4);
  CHECK(config->max_body_bytes == 1024 * 1024);
  CHECK(config->max_connections_per_peer == 64);
  CHECK_FALSE(config->tls.has_value());
  CHECK(config->region == "us-east-1");
  CHECK(config->account_id == "111122223333");
  CHECK(config->hsm_sessions == 2);
  CHECK(config->vault_mounts == std::vector<std::string>{"transit"});
  CHECK(config->log_level == log::Level::kInfo);
  CHECK_FALSE(config->log_requests);
  CHECK(config->state_dir == ".state");
  CHECK(config->source == "kmsd.toml");
  // The defaults pass the same validation a loaded file does.
  CHECK(ValidateConfig(ApplianceConfig{}).ok());
}

TEST_CASE("config: a complete production file fills every field", "[unit]") {
  TempDir dir;
  const std::string module = dir.Write("module.so", "");
  const std::string cert = dir.Write("cert.pem", "x");
  const std::string key = dir.Write("key.pem", "x");
  const std::string ca = dir.Write("ca.pem", "x");
  const std::string path = dir.Write("kmsd.toml", R"(
mode = "production"
[server]
listen = "0.0.0.0:8443"
workers = 16
max_body_bytes = 2097152
max_connections_per_peer = 256
[server.tls]
cert = ")" + cert + R"("
key = ")" + key + R"("
client_ca = ")" + ca + R"("
[account]
region = "eu-west-3"
id = "444455556666"
[hsm]
module = ")" + module + R"("
token_label = "kms-prod"
token_serial = "abc123"
domain_key_label = "dk-1"
sessions = 8
[store]
path = "/var/lib/kms/kms.db"
[vault]
mounts = ["transit", "team-a/transit"]
[log]
level = "warn"
requests = true
)");
  auto config = LoadConfigFile(path);
  REQUIRE(config.has_value());
  CHECK(config->mode == Mode::kProduction);
  CHECK(config->listen == "0.0.0.0:8443");
  CHECK(config->workers == 16);
  CHECK(config->max_body_bytes == 2097152);
  CHECK(config->max_connections_per_peer == 256);
  REQUIRE(config->tls.has_value());
  CHECK(config->tls->cert == cert);
  CHECK(config->tls->key == key);
  CHECK(config->tls->client_ca == ca);
  CHECK(config->region == "eu-west-3");
  CHECK(config->account_id == "444455556666");
  CHECK(config->hsm_module == module);
  CHECK(config->token_label == "kms-prod");
  CHECK(config->token_serial == "abc123");
  CHECK(config->domain_key_label == "dk-1");
  CHECK(config->hsm_sessions == 8);
  CHECK(config->store_path == "/var/lib/kms/kms.db");
  CHECK(config->vault_mounts == std::vector<std::string>{"transit", "team-a/transit"});
  CHECK(config->log_level == log::Level::kWarn);
  CHECK(config->log_requests);
  CHECK(config->source == path);
}

TEST_CASE("config: a TOML syntax error names the line and column", "[unit]") {
  CHECK(ErrorOf("mode = \"dev\"\n[server\nworkers = 2\n").rfind("kmsd.toml:2:", 0) == 0);
  CHECK(ErrorOf("mode = \"dev\"\n[server\nworkers = 2\n").find(": not valid TOML: ") !=
        std::string::npos);
  CHECK(ErrorOf("workers = = 2").rfind("kmsd.toml:1:", 0) == 0);
}

TEST_CASE("config: non-ASCII characters toml++ 3.3.0 cannot classify are read as written",
          "[unit]") {
  // U+00E9 is one of the characters whose whitespace test is undefined behaviour in toml++ 3.3.0;
  // U+3000 and U+FEFF are ones it classifies. After a line-ending backslash the parser asks
  // whether the next line's first character is whitespace.
  auto config = ParseConfig("[dev]\nstate_dir = \"\"\"a\\\n  \xc3\xa9\"\"\"\n", "kmsd.toml");
  REQUIRE(config.has_value());
  CHECK(config->state_dir == "a\xc3\xa9");
  config = ParseConfig("[dev]\nstate_dir = \"caf\xc3\xa9 \xe3\x80\x80 \xef\xbb\xbf\"\n", "kmsd.toml");
  REQUIRE(config.has_value());
  CHECK(config->state_dir == "caf\xc3\xa9 \xe3\x80\x80 \xef\xbb\xbf");
  // Where whitespace may stand, such a character is a syntax error that names it.
  CHECK(ErrorOf("mode = \"dev\" \xc3\xa9\n") ==
        "kmsd.toml:1:14: not valid TOML: Error while parsing key-value pair: expected a comment "
        "or whitespace, saw '\xc3\xa9'");
  CHECK(ErrorOf("\xcf\xba") ==
        "kmsd.toml:1:1: not valid TOML: Error while parsing root table: expected keys, tables, "
        "whitespace or comments, saw '\xcf\xba'");
  CHECK(ErrorOf("\"k\xc3\xa9y\" = 1\n") == "kmsd.toml:1:9: k\xc3\xa9y: unknown key");
  // The private-use characters they are moved to while toml++ reads the text are refused.
  CHECK(ErrorOf("[dev]\nstate_dir = \"\xf3\xb0\x83\xa9\"\n") ==
        "kmsd.toml:2:14: not valid TOML: private-use character U+F00E9 is not supported in this "
        "file");
}

TEST_CASE("config: an unknown key or table is refused with the nearest known key", "[unit]") {
  CHECK(ErrorOf("[server]\nworker = 2\n") ==
        "kmsd.toml:2:10: server.worker: unknown key (did you mean 'server.workers'?)");
  CHECK(ErrorOf("[servr]\n") == "kmsd.toml:1:1: servr: unknown key (did you mean 'server'?)");
  CHECK(ErrorOf("[server.tls]\nkey_file = \"k\"\n") ==
        "kmsd.toml:2:12: server.tls.key_file: unknown key");
  CHECK(ErrorOf("listen = \"127.0.0.1:1\"\n") == "kmsd.toml:1:10: listen: unknown key");
}

TEST_CASE("config: a value of the wrong type names the key and both types", "[unit]") {
  CHECK(ErrorOf("[server]\nworkers = \"4\"\n") ==
        "kmsd.toml:2:11: server.workers: must be an integer, got a string");
  CHECK(ErrorOf("[server]\nlisten = 8200\n") ==
        "kmsd.toml:2:10: server.listen: must be a string, got an integer");
  CHECK(ErrorOf("[log]\nrequests = \"yes\"\n") ==
        "kmsd.toml:2:12: log.requests: must be true or false, got a string");
  CHECK(ErrorOf("[vault]\nmounts = \"transit\"\n") ==
        "kmsd.toml:2:10: vault.mounts: must be an array of strings, got a string");
  CHECK(ErrorOf("[vault]\nmounts = [\"transit\", 2]\n") ==
        "kmsd.toml:2:22: vault.mounts: must be an array of strings, got an element of type an "
        "integer");
  CHECK(ErrorOf("server = 1\n") == "kmsd.toml:1:10: server: must be a table ([server])");
  CHECK(ErrorOf("mode = 1\n") == "kmsd.toml:1:8: mode: must be a string, got an integer");
}

TEST_CASE("config: a value out of range names the key and the range", "[unit]") {
  CHECK(ErrorOf("[server]\nworkers = 0\n") ==
        "kmsd.toml:2:11: server.workers: must be 1 to 256, got 0");
  CHECK(ErrorOf("[server]\nmax_body_bytes = 1\n") ==
        "kmsd.toml:2:18: server.max_body_bytes: must be 4096 to 67108864, got 1");
  CHECK(ErrorOf("[server]\nmax_connections_per_peer = 0\n") ==
        "kmsd.toml:2:28: server.max_connections_per_peer: must be 1 to 1024, got 0");
  CHECK(ErrorOf("[hsm]\nsessions = 1000\n") ==
        "kmsd.toml:2:12: hsm.sessions: must be 1 to 256, got 1000");
  CHECK(ErrorOf("mode = \"prod\"\n") ==
        "kmsd.toml:1:8: mode: must be \"dev\" or \"production\", got \"prod\"");
  CHECK(ErrorOf("[log]\nlevel = \"verbose\"\n") ==
        "kmsd.toml:2:9: log.level: must be debug, info, warn or error, got \"verbose\"");
  CHECK(ErrorOf("[server]\nlisten = \"127.0.0.1\"\n") ==
        "kmsd.toml: server.listen: server.listen must be HOST:PORT, got '127.0.0.1'");
  CHECK(ErrorOf("[server]\nlisten = \"127.0.0.1:99999\"\n") ==
        "kmsd.toml: server.listen: server.listen port must be 0-65535, got '99999'");
  CHECK(
      ErrorOf("[account]\nregion = \"US East\"\n") ==
      "kmsd.toml: account.region: must be lowercase letters, digits and '-' (like us-east-1), got "
      "'US East'");
  CHECK(ErrorOf("[account]\nid = \"1234\"\n") ==
        "kmsd.toml: account.id: must be 12 digits, like an AWS account id, got '1234'");
  CHECK(ErrorOf("[vault]\nmounts = []\n") ==
        "kmsd.toml: vault.mounts: must name at least one mount");
  CHECK(ErrorOf("[vault]\nmounts = [\"sys\"]\n") ==
        "kmsd.toml: vault.mounts: 'sys' is not a mount path (letters, digits, '-', '_' in "
        "'/'-separated segments; not sys/ or auth/)");
  CHECK(ErrorOf("[vault]\nmounts = [\"a//b\"]\n").find("'a//b' is not a mount path") !=
        std::string::npos);
  CHECK(ErrorOf("[vault]\nmounts = [\"t\", \"t\"]\n") ==
        "kmsd.toml: vault.mounts: 't' is listed twice");
}

TEST_CASE("config: rules across keys", "[unit]") {
  CHECK(ErrorOf("[server]\nlisten = \"0.0.0.0:8200\"\n") ==
        "kmsd.toml: server.listen: dev mode listens on loopback only (127.0.0.0/8 or ::1), not "
        "'0.0.0.0'");
  CHECK(ErrorOf("[server.tls]\ncert = \"/etc/hostname\"\n") ==
        "kmsd.toml: server.tls.key: server.tls.cert and server.tls.key go together");
  CHECK(ErrorOf("[server.tls]\ncert = \"/no/such/cert.pem\"\nkey = \"/no/such/key.pem\"\n") ==
        "kmsd.toml: server.tls.cert: cannot read '/no/such/cert.pem': No such file or directory");
  CHECK(ErrorOf("[store]\npath = \"/tmp/x.db\"\n") ==
        "kmsd.toml:1:1: store: dev mode keeps its store under dev.state_dir; [store] is for mode = "
        "\"production\"");
  CHECK(
      ErrorOf("[hsm]\nmodule = \"/x.so\"\n") ==
      "kmsd.toml:2:10: hsm.module: dev mode makes its own SoftHSM2 token under dev.state_dir; this "
      "key is for mode = \"production\"");
  // hsm.sessions applies to dev mode's token too.
  auto sessions = ParseConfig("[hsm]\nsessions = 6\n", "kmsd.toml");
  REQUIRE(sessions.has_value());
  CHECK(sessions->hsm_sessions == 6);

  const std::string production = "mode = \"production\"\n";
  CHECK(ErrorOf(production) ==
        "kmsd.toml: hsm.module: production mode needs the PKCS#11 module's path");
  CHECK(ErrorOf(production + "[hsm]\nmodule = \"/no/such/module.so\"\n") ==
        "kmsd.toml: hsm.module: no such file '/no/such/module.so'");
  // A path the system refuses to look at (longer than PATH_MAX) is no such file, not an exception
  // that ends kmsd.
  const std::string long_path = "/" + std::string(5000, 'm') + ".so";
  CHECK(ErrorOf(production + "[hsm]\nmodule = \"" + long_path + "\"\n") ==
        "kmsd.toml: hsm.module: no such file '" + long_path + "'");
  TempDir dir;
  const std::string module = dir.Write("module.so", "");
  const std::string with_module = production + "[hsm]\nmodule = \"" + module + "\"\n";
  CHECK(ErrorOf(with_module) ==
        "kmsd.toml: hsm.token_label: production mode needs the token's label or serial");
  const std::string with_token = with_module + "token_label = \"kms\"\n";
  CHECK(ErrorOf(with_token) ==
        "kmsd.toml: store.path: production mode needs the store's absolute path, got ''");
  CHECK(ErrorOf(with_token + "[store]\npath = \"kms.db\"\n") ==
        "kmsd.toml: store.path: production mode needs the store's absolute path, got 'kms.db'");
  CHECK(
      ErrorOf(with_token + "[store]\npath = \"/var/lib/kms/kms.db\"\n[dev]\nstate_dir = \"s\"\n") ==
      "kmsd.toml:7:1: dev: only for mode = \"dev\"");
  auto ok = ParseConfig(with_token + "[store]\npath = \"/var/lib/kms/kms.db\"\n", "kmsd.toml");
  REQUIRE(ok.has_value());  // production on the default loopback address, without TLS
  CHECK(ok->listen == "127.0.0.1:0");
}

// Production beyond loopback carries tokens, plaintexts, data keys and unseal shares: only over
// TLS, and the refusal names the settings. Loopback stays open to a TLS proxy on the box.
TEST_CASE("config: production listens beyond loopback only with TLS", "[unit]") {
  TempDir dir;
  const std::string module = dir.Write("module.so", "");
  const std::string cert = dir.Write("cert.pem", "x");
  const std::string key = dir.Write("key.pem", "x");
  const std::string production =
      "mode = \"production\"\n[hsm]\nmodule = \"" + module +
      "\"\ntoken_label = \"kms\"\n[store]\npath = \"/var/lib/kms/kms.db\"\n";
  auto listening = [&](const std::string& listen) {
    return production + "[server]\nlisten = \"" + listen + "\"\n";
  };
  for (const std::string listen : {"0.0.0.0:8200", "10.0.0.5:8443", "[::]:8200", "[fe80::1]:1",
                                   "127.0.0.1.example:80", "kms.example:8443"}) {
    CAPTURE(listen);
    CHECK(ErrorOf(listening(listen)) ==
          "kmsd.toml: server.tls: production mode needs TLS to listen beyond loopback, and "
          "server.listen is '" +
              listen +
              "': set server.tls.cert and server.tls.key (or --tls-cert and --tls-key), or listen "
              "on 127.0.0.1 or [::1] behind a TLS proxy; without TLS, tokens, plaintexts, data "
              "keys and unseal shares would cross the network in clear");
  }
  for (const std::string listen :
       {"127.0.0.1:8200", "127.8.9.10:1", "localhost:8200", "[::1]:8200", "[::ffff:127.0.0.1]:1"}) {
    CAPTURE(listen);
    CHECK(ParseConfig(listening(listen), "kmsd.toml").has_value());
  }
  const std::string tls = "[server.tls]\ncert = \"" + cert + "\"\nkey = \"" + key + "\"\n";
  auto with_tls = ParseConfig(listening("0.0.0.0:8443") + tls, "kmsd.toml");
  REQUIRE(with_tls.has_value());
  CHECK(with_tls->listen == "0.0.0.0:8443");

  // The same rule after flags changed a loaded file (kmsd applies --listen, then validates).
  auto loaded = ParseConfig(production, "kmsd.toml");
  REQUIRE(loaded.has_value());
  loaded->listen = "0.0.0.0:8200";
  const Status flagged = ValidateConfig(*loaded);
  REQUIRE_FALSE(flagged.ok());
  CHECK(flagged.message().rfind(
            "kmsd.toml: server.tls: production mode needs TLS to listen beyond loopback, and "
            "server.listen is '0.0.0.0:8200': ",
            0) == 0);
  loaded->tls = TlsConfig{cert, key, ""};
  CHECK(ValidateConfig(*loaded).ok());
}

TEST_CASE("config: the audit table sets the folder and checkpoint interval", "[unit]") {
  auto config =
      ParseConfig("[audit]\ndir = \"/var/log/kms\"\ncheckpoint_every = 50\n", "kmsd.toml");
  REQUIRE(config.has_value());
  CHECK(config->audit_dir == "/var/log/kms");
  CHECK(config->audit_checkpoint_every == 50);
  auto bad = ParseConfig("[audit]\npath = \"/var/log/kms\"\n", "kmsd.toml");
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().message().find("audit.path") != std::string::npos);
  auto zero = ParseConfig("[audit]\ncheckpoint_every = 0\n", "kmsd.toml");
  REQUIRE_FALSE(zero.has_value());
}

TEST_CASE("config: vault.token_max_ttl_hours bounds renewable Vault tokens", "[unit]") {
  auto defaults = ParseConfig("", "kmsd.toml");
  REQUIRE(defaults.has_value());
  CHECK(defaults->vault_token_max_ttl_hours == 768);  // Vault's max_lease_ttl, 32 days
  auto config = ParseConfig("[vault]\ntoken_max_ttl_hours = 24\n", "kmsd.toml");
  REQUIRE(config.has_value());
  CHECK(config->vault_token_max_ttl_hours == 24);
  auto zero = ParseConfig("[vault]\ntoken_max_ttl_hours = 0\n", "kmsd.toml");
  REQUIRE_FALSE(zero.has_value());
  CHECK(zero.error().message() ==
        "kmsd.toml:2:23: vault.token_max_ttl_hours: must be 1 to 878400, got 0");
}

TEST_CASE("config: seal.auto_unseal_file is for production and must be the owner's alone",
          "[unit]") {
  TempDir dir;
  const std::string module = dir.Write("module.so", "");
  const std::string shares = dir.Write("unseal.shares", "kms1-...\n");
  const std::string base = "mode = \"production\"\n[hsm]\nmodule = \"" + module +
                           "\"\ntoken_label = \"kms\"\n[store]\npath = \"/var/lib/kms/kms.db\"\n";
  fs::permissions(shares, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read,
                  fs::perm_options::replace);
  CHECK(ErrorOf(base + "[seal]\nauto_unseal_file = \"" + shares + "\"\n") ==
        "kmsd.toml: seal.auto_unseal_file: must be readable by its owner only (chmod 600), got "
        "0640");
  fs::permissions(shares, fs::perms::owner_read | fs::perms::owner_write,
                  fs::perm_options::replace);
  auto ok = ParseConfig(base + "[seal]\nauto_unseal_file = \"" + shares + "\"\n", "kmsd.toml");
  REQUIRE(ok.has_value());
  CHECK(ok->auto_unseal_file == shares);
  CHECK(ErrorOf(base + "[seal]\nauto_unseal_file = \"/no/such/shares\"\n") ==
        "kmsd.toml: seal.auto_unseal_file: no such file '/no/such/shares'");
  CHECK(ErrorOf(base + "[seal]\nauto_unseal_fil = 1\n") ==
        "kmsd.toml:8:19: seal.auto_unseal_fil: unknown key (did you mean 'seal.auto_unseal_file'?)");
  CHECK(ErrorOf("[seal]\nauto_unseal_file = \"" + shares + "\"\n") ==
        "kmsd.toml:1:1: seal: only for mode = \"production\" (dev mode unseals itself)");
}

TEST_CASE("config: a file that cannot be read is named", "[unit]") {
  auto config = LoadConfigFile("/no/such/kmsd.toml");
  REQUIRE_FALSE(config.has_value());
  CHECK(config.error().message() ==
        "cannot read configuration file '/no/such/kmsd.toml': No such file or directory");
}

TEST_CASE("config: listen addresses", "[unit]") {
  auto v4 = ParseListenAddress("127.0.0.1:8200", "--listen");
  REQUIRE(v4.has_value());
  CHECK(v4->first == "127.0.0.1");
  CHECK(v4->second == 8200);
  auto v6 = ParseListenAddress("[::1]:0", "--listen");
  REQUIRE(v6.has_value());
  CHECK(v6->first == "::1");
  CHECK(v6->second == 0);
  auto local = ParseListenAddress("localhost:1", "--listen");
  REQUIRE(local.has_value());
  CHECK(local->first == "127.0.0.1");
  CHECK(ParseListenAddress(":80", "--listen").error().message() ==
        "--listen must be HOST:PORT, got ':80'");
  CHECK(ParseListenAddress("h:-1", "--listen").error().message() ==
        "--listen port must be 0-65535, got '-1'");
  CHECK(ParseListenAddress("h:", "--listen").error().message() ==
        "--listen port must be 0-65535, got ''");
  CHECK(IsLoopbackHost("127.9.9.9"));
  CHECK(IsLoopbackHost("::1"));
  CHECK(IsLoopbackHost("::ffff:127.0.0.1"));
  CHECK_FALSE(IsLoopbackHost("10.0.0.1"));
  CHECK_FALSE(IsLoopbackHost("0.0.0.0"));
  CHECK_FALSE(IsLoopbackHost("::"));
  CHECK_FALSE(IsLoopbackHost("127.0.0.1.example"));  // a name, not the loopback address
  CHECK_FALSE(IsLoopbackHost("::ffff:10.0.0.1"));
}

}  // namespace
}  // namespace kms::app
