// kmsctl: the operator CLI of the appliance. It speaks to kmsd's endpoint with
// SigV4 credentials, like any AWS client, for what AWS clients cannot do (the appliance admin API,
// `KmsAppliance.*`: access keys, Vault door tokens and status; api/aws/appliance_operations.h) and
// for the common
// data-plane calls (`TrentService.*`).
//
// Credentials and endpoint: KMS_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
// AWS_DEFAULT_REGION from the environment, overridden by `--env-file <state>/dev.env` (kmsd dev
// mode writes it), overridden by `--endpoint`. `--ca-bundle` (or AWS_CA_BUNDLE) names the CA for
// https.
//
// Exit status: 0 success; 1 the service answered an error (printed as "<Exception>: <message>");
// 2 usage or local input errors; 3 the endpoint could not be reached (with a hint).
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/encoding.h"
#include "base/secret_bytes.h"
#include "tools/kms_client/env_file.h"
#include "tools/kms_client/kms_client.h"
#include "tools/kmsctl/audit_verify_command.h"

namespace {

namespace json = boost::json;
using kms::tools::CallResult;
using kms::tools::KmsClient;

constexpr int kExitServiceError = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;

struct Settings {
  std::string env_file;
  std::string endpoint;
  std::string ca_bundle;
  std::string region;
};

// Exits the process with a message: the CLI's one error path.
[[noreturn]] void Die(int code, const std::string& message) {
  std::fprintf(stderr, "kmsctl: %s\n", message.c_str());
  std::exit(code);
}

class Cli {
 public:
  explicit Cli(const Settings& s) {
    auto env = kms::tools::EnvSettings::Load(s.env_file);
    if (!env) Die(kExitUsage, env.error().message());
    auto get = [&](const std::string& name) { return env->Get(name); };
    endpoint_text_ = s.endpoint.empty() ? get("KMS_ENDPOINT") : s.endpoint;
    if (endpoint_text_.empty()) {
      Die(kExitUsage,
          "no endpoint: set KMS_ENDPOINT, or pass --endpoint or --env-file <state>/dev.env");
    }
    auto endpoint = kms::tools::Endpoint::Parse(endpoint_text_);
    if (!endpoint) Die(kExitUsage, endpoint.error().message());
    kms::tools::ClientConfig config;
    config.endpoint = *endpoint;
    config.access_key_id = get("AWS_ACCESS_KEY_ID");
    std::string secret = get("AWS_SECRET_ACCESS_KEY");
    if (config.access_key_id.empty() || secret.empty()) {
      Die(kExitUsage,
          "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or pass --env-file");
    }
    config.secret = kms::SecretBytes::CopyFrom(kms::AsBytes(secret));
    kms::WipeString(secret);
    config.region = !s.region.empty() ? s.region : get("AWS_DEFAULT_REGION");
    if (config.region.empty()) config.region = get("AWS_REGION");
    if (config.region.empty()) config.region = "us-east-1";
    config.ca_file = s.ca_bundle;
    auto client = KmsClient::Create(std::move(config));
    if (!client) Die(kExitUsage, client.error().message());
    client_ = std::move(*client);
  }

  // The response object of a successful call; any failure ends the process with a helpful message.
  json::object Call(const std::string& target, const json::object& body) {
    auto r = client_->Call(target, json::serialize(body));
    if (!r.has_value()) {
      std::string msg =
          "cannot reach " + client_->endpoint().ToString() + ": " + r.error().message();
      if (r.error().message().find("refused") != std::string::npos) {
        msg += "\n  Is kmsd running? The endpoint comes from " +
               std::string("--endpoint, --env-file or KMS_ENDPOINT (now ") + endpoint_text_ +
               "); `kmsd --dev --state-dir DIR` writes DIR/dev.env with the current one.";
      }
      Die(kExitUnreachable, msg);
    }
    if (r->status != 200) {
      std::string msg =
          r->error_type + ": " + (r->error_message.empty() ? "(no message)" : r->error_message);
      if (r->error_type == "UnrecognizedClientException") {
        msg += "\n  The access key is unknown or disabled.";
      } else if (r->error_type == "InvalidCiphertextException") {
        msg += "\n  Wrong encryption context (--context), wrong key, or a damaged blob.";
      } else if (r->error_type == "AccessDeniedException") {
        msg += "\n  This command needs an administrator access key (access-key create --admin).";
      }
      Die(kExitServiceError, msg);
    }
    boost::system::error_code ec;
    auto v = json::parse(r->body, ec);
    if (ec || !v.is_object()) Die(kExitServiceError, "the server's response is not a JSON object");
    return std::move(v.get_object());
  }

 private:
  std::string endpoint_text_;
  std::unique_ptr<KmsClient> client_;
};

std::string Str(const json::value& v) {
  if (v.is_string()) return std::string(v.get_string());
  return json::serialize(v);
}

void PrintObject(const json::object& o) { std::cout << json::serialize(o) << "\n"; }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Die(kExitUsage, "cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteFile(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) Die(kExitUsage, "cannot write " + path);
}

json::object Context(const std::vector<std::string>& pairs) {
  json::object ctx;
  for (const auto& p : pairs) {
    const auto eq = p.find('=');
    if (eq == std::string::npos || eq == 0)
      Die(kExitUsage, "--context takes KEY=VALUE, got '" + p + "'");
    ctx[p.substr(0, eq)] = p.substr(eq + 1);
  }
  return ctx;
}

std::string FormatTime(const json::value& v) {
  if (!v.is_number()) return "-";
  const auto seconds = static_cast<std::time_t>(v.to_number<double>());
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// "90", "90s", "30m", "24h", "7d" -> seconds (Vault's duration shorthand, whole units only).
std::int64_t DurationSeconds(const std::string& text, const std::string& option) {
  std::size_t used = 0;
  long long n = -1;
  try {
    n = std::stoll(text, &used);
  } catch (const std::exception&) {
    n = -1;
  }
  const std::string unit = used < text.size() ? text.substr(used) : "s";
  const std::map<std::string, std::int64_t> units{{"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}};
  const auto it = units.find(unit);
  // Bounded so the product cannot overflow; the appliance range-checks the value itself.
  if (n < 0 || n > 1'000'000'000 || it == units.end() || text.empty() || text[0] == '+') {
    Die(kExitUsage,
        option + " takes a duration such as 3600, 90s, 30m, 24h or 7d, got '" + text + "'");
  }
  return static_cast<std::int64_t>(n) * it->second;
}

std::string Joined(const json::value& v) {
  std::string out;
  for (const auto& item : v.as_array()) {
    if (!out.empty()) out += ",";
    out += Str(item);
  }
  return out;
}

// One line from stdin; on a terminal, without echo (as `vault operator unseal` prompts).
std::string ReadShareFromStdin() {
  const bool tty = isatty(STDIN_FILENO) != 0;
  termios saved{};
  if (tty && tcgetattr(STDIN_FILENO, &saved) == 0) {
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    std::fprintf(stderr, "Unseal key (will be hidden): ");  // lint-ok: a prompt, no value
  }
  std::string line;
  std::getline(std::cin, line);
  if (tty) {
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
    std::fprintf(stderr, "\n");
  }
  return line;
}

// seal-status, unseal and seal. Prints sys/seal-status's JSON (or "sealed" after a seal).
int SealCommand(const Settings& s, const std::string& what, std::string share, bool reset,
                std::string vault_token) {
  auto env = kms::tools::EnvSettings::Load(s.env_file);
  if (!env) Die(kExitUsage, env.error().message());
  std::string url = !s.endpoint.empty() ? s.endpoint : env->Get("KMS_ENDPOINT");
  if (url.empty()) url = env->Get("VAULT_ADDR");
  if (url.empty()) Die(kExitUsage, "no endpoint: set KMS_ENDPOINT, or pass --endpoint");
  auto endpoint = kms::tools::Endpoint::Parse(url);
  if (!endpoint) Die(kExitUsage, endpoint.error().message());
  const std::string ca = !s.ca_bundle.empty() ? s.ca_bundle : env->Get("AWS_CA_BUNDLE");

  std::string method = "GET", target = "/v1/sys/seal-status", body;
  if (what == "unseal") {
    if (!reset && share.empty()) {
      share = ReadShareFromStdin();
    }
    if (!reset && share.empty()) Die(kExitUsage, "no share given (argument or stdin)");
    method = "PUT";
    target = "/v1/sys/unseal";
    body = reset ? json::serialize(json::object{{"reset", true}})
                 : json::serialize(json::object{{"key", share}});
    kms::WipeString(share);
  } else if (what == "seal") {
    if (vault_token.empty()) vault_token = env->Get("VAULT_TOKEN");
    if (vault_token.empty()) Die(kExitUsage, "no token: pass --vault-token or set VAULT_TOKEN");
    method = "PUT";
    target = "/v1/sys/seal";
  }
  auto r = kms::tools::SendPlain(*endpoint, ca, method, target, body, vault_token);
  kms::WipeString(body);
  kms::WipeString(vault_token);
  if (!r)
    Die(kExitUnreachable, "cannot reach " + endpoint->ToString() + ": " + r.error().message());
  if (r->status == 204 && what == "seal") {
    std::cout << "sealed\n";
    return 0;
  }
  boost::system::error_code ec;
  auto v = json::parse(r->body, ec);
  if (r->status != 200) {
    std::string message = r->body;
    if (!ec && v.is_object() && v.get_object().contains("errors")) {
      message.clear();
      for (const auto& e : v.get_object().at("errors").as_array()) {
        if (!message.empty()) message += "; ";
        message += Str(e);
      }
    }
    Die(kExitServiceError, "HTTP " + std::to_string(r->status) + ": " + message);
  }
  if (ec || !v.is_object()) Die(kExitServiceError, "the server's response is not a JSON object");
  PrintObject(v.get_object());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "kmsctl: operate a KMS appliance (access keys, Vault tokens, status) and call its KMS API"};
  app.require_subcommand(1);
  Settings s;
  app.add_option("--env-file", s.env_file,
                 "read KMS_ENDPOINT and AWS_* from this file (kmsd dev.env)");
  app.add_option("--endpoint", s.endpoint, "endpoint URL (default $KMS_ENDPOINT)");
  app.add_option("--ca-bundle", s.ca_bundle, "PEM CA bundle for https (default $AWS_CA_BUNDLE)");
  app.add_option("--region", s.region, "SigV4 region (default $AWS_DEFAULT_REGION)");

  auto* status = app.add_subcommand("status", "appliance status (administrator)");

  auto* user = app.add_subcommand("user", "manage the users access keys act for (administrator)");
  user->require_subcommand(1);
  std::string user_name, user_policy_file;
  bool user_admin = false;
  auto* user_create = user->add_subcommand("create", "new user");
  user_create->add_option("NAME", user_name)->required();
  user_create->add_flag("--admin", user_admin, "full rights over keys and the admin API");
  user_create->add_option("--policy-file", user_policy_file, "identity policy (IAM JSON) file");
  auto* user_list = user->add_subcommand("list", "list users");
  auto* user_put_policy = user->add_subcommand("put-policy", "replace a user's identity policy");
  user_put_policy->add_option("NAME", user_name)->required();
  user_put_policy->add_option("POLICY_FILE", user_policy_file)->required();
  auto* user_delete = user->add_subcommand("delete", "delete a user (after its access keys)");
  user_delete->add_option("NAME", user_name)->required();

  auto* ak = app.add_subcommand("access-key", "manage SigV4 access keys (administrator)");
  ak->require_subcommand(1);
  std::string ak_user;
  bool ak_admin = false;
  auto* ak_create = ak->add_subcommand("create", "new access key; prints its secret once");
  ak_create->add_option("--user", ak_user, "IAM-style user name the key acts for")->required();
  ak_create->add_flag("--admin", ak_admin, "the key may call the admin API");
  auto* ak_list = ak->add_subcommand("list", "list access keys");
  std::string ak_id;
  auto* ak_disable = ak->add_subcommand("disable", "deactivate a key");
  ak_disable->add_option("ID", ak_id)->required();
  auto* ak_enable = ak->add_subcommand("enable", "reactivate a key");
  ak_enable->add_option("ID", ak_id)->required();
  auto* ak_delete = ak->add_subcommand("delete", "delete a key for good");
  ak_delete->add_option("ID", ak_id)->required();

  auto* vt = app.add_subcommand("vault-token", "manage the Vault door's tokens (administrator)");
  vt->require_subcommand(1);
  std::string vt_name, vt_ttl, vt_max_ttl, vt_accessor;
  std::vector<std::string> vt_keys, vt_operations, vt_policies;
  bool vt_admin = false;
  bool vt_no_renewable = false;
  auto* vt_create = vt->add_subcommand("create", "new X-Vault-Token; prints it once");
  vt_create->add_option("--name", vt_name, "display name")->required();
  vt_create->add_option("--key", vt_keys,
                        "transit key pattern [<mount>/]<key>: <key> a name, a prefix ending in *, "
                        "or *; <mount> a mount path or * for every mount, default transit "
                        "(repeatable; default transit/*)");
  vt_create->add_option("--operation", vt_operations,
                        "encrypt, decrypt, rewrap, datakey, hmac, sign, verify, read, manage, "
                        "random, hash or * (repeatable; default *)");
  vt_create->add_flag("--admin", vt_admin, "administrator token (every key and operation)");
  vt_create->add_option("--ttl", vt_ttl, "lease, e.g. 24h (default: never expires)");
  vt_create->add_option("--explicit-max-ttl", vt_max_ttl, "renewals never pass creation + this");
  vt_create->add_flag("--no-renewable", vt_no_renewable, "the token cannot be renewed");
  vt_create->add_option("--policy", vt_policies,
                        "policy name echoed to Vault clients (repeatable)");
  auto* vt_list = vt->add_subcommand("list", "list live tokens (by accessor; never the tokens)");
  auto* vt_revoke = vt->add_subcommand("revoke", "revoke a token by its accessor");
  vt_revoke->add_option("ACCESSOR", vt_accessor)->required();

  auto* key = app.add_subcommand("key", "KMS keys");
  key->require_subcommand(1);
  std::string spec, usage, description, key_id;
  auto* key_create = key->add_subcommand("create", "CreateKey");
  key_create->add_option("--spec", spec,
                         "KeySpec (SYMMETRIC_DEFAULT, ECC_NIST_P256, HMAC_256, ...)");
  key_create->add_option("--usage", usage,
                         "KeyUsage (ENCRYPT_DECRYPT, SIGN_VERIFY, GENERATE_VERIFY_MAC)");
  key_create->add_option("--description", description, "Description");
  auto* key_list = key->add_subcommand("list", "ListKeys (all pages)");
  auto* key_describe = key->add_subcommand("describe", "DescribeKey");
  key_describe->add_option("ID", key_id, "key id, ARN, alias name or alias ARN")->required();

  std::vector<std::string> context;
  std::string plaintext, in_file, out_file, blob;
  auto* encrypt = app.add_subcommand("encrypt", "Encrypt; prints the ciphertext blob in base64");
  encrypt->add_option("--key", key_id, "KeyId")->required();
  encrypt->add_option("--context", context, "encryption context KEY=VALUE (repeatable)");
  auto* pt_group = encrypt->add_option_group("plaintext");
  pt_group->add_option("--plaintext", plaintext, "plaintext text");
  pt_group->add_option("--in", in_file, "read the plaintext from FILE");
  pt_group->require_option(1);
  encrypt->add_option("--out", out_file, "write the raw ciphertext blob to FILE instead");

  auto* decrypt = app.add_subcommand("decrypt", "Decrypt; prints the plaintext");
  auto* blob_group = decrypt->add_option_group("ciphertext");
  blob_group->add_option("--blob", blob, "ciphertext blob in base64");
  blob_group->add_option("--in", in_file, "read the raw ciphertext blob from FILE");
  blob_group->require_option(1);
  decrypt->add_option("--context", context, "encryption context KEY=VALUE (repeatable)");
  decrypt->add_option("--key", key_id, "KeyId (optional for symmetric keys)");
  decrypt->add_option("--out", out_file, "write the plaintext to FILE instead");

  auto* data_key = app.add_subcommand("data-key", "GenerateDataKey (AES_256); prints JSON");
  data_key->add_option("--key", key_id, "KeyId")->required();
  data_key->add_option("--context", context, "encryption context KEY=VALUE (repeatable)");

  auto* rotate = app.add_subcommand("rotate", "RotateKeyOnDemand");
  rotate->add_option("ID", key_id)->required();

  // The seal, through the Vault door's sys/ paths (no SigV4 credentials: a sealed appliance has
  // none to check). As `vault operator unseal`: one share per call, progress reported.
  auto* seal_status = app.add_subcommand("seal-status", "sealed or not, and unseal progress");
  auto* unseal = app.add_subcommand(
      "unseal",
      "enter one custodian share (read from stdin when not given: keeps it out of shell "
      "history)");
  std::string share;
  bool unseal_reset = false;
  unseal->add_option("SHARE", share, "the share, kms1-...");
  unseal->add_flag("--reset", unseal_reset, "forget the shares entered so far");
  auto* seal = app.add_subcommand("seal", "seal the appliance (administrator Vault token)");
  std::string vault_token;
  seal->add_option("--vault-token", vault_token, "X-Vault-Token (default $VAULT_TOKEN)");

  // `audit verify`: offline, needs no endpoint; it runs from its parse callback and exits
  // (tools/kmsctl/audit_verify_command.h).
  kms::tools::AddAuditCommands(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kExitUsage;
  }

  if (seal_status->parsed() || unseal->parsed() || seal->parsed()) {
    return SealCommand(s,
                       seal_status->parsed() ? "status"
                       : unseal->parsed()    ? "unseal"
                                             : "seal",
                       share, unseal_reset, vault_token);
  }

  Cli cli(s);
  auto admin = [&](const std::string& op, const json::object& body = {}) {
    return cli.Call("KmsAppliance." + op, body);
  };
  auto trent = [&](const std::string& op, const json::object& body = {}) {
    return cli.Call("TrentService." + op, body);
  };

  if (status->parsed()) {
    const auto o = admin("GetApplianceStatus");
    for (const auto& [name, value] : o) std::cout << name << ": " << Str(value) << "\n";
  } else if (user_create->parsed() || user_put_policy->parsed()) {
    std::string policy;
    if (!user_policy_file.empty()) {
      std::ifstream in(user_policy_file);
      if (!in) throw std::runtime_error("cannot read " + user_policy_file);
      policy.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    if (user_create->parsed()) {
      json::object body{{"UserName", user_name}};
      if (user_admin) body["Administrator"] = true;
      if (!policy.empty()) body["Policy"] = policy;
      const auto o = admin("CreateUser", body);
      std::cout << Str(o.at("User").as_object().at("Arn")) << "\n";
    } else {
      admin("PutUserPolicy", {{"UserName", user_name}, {"Policy", policy}});
      std::cout << user_name << " policy replaced\n";
    }
  } else if (user_list->parsed()) {
    json::object req{{"Limit", 1000}};
    std::printf("%-24s %-6s %-7s %s\n", "USER", "ADMIN", "POLICY", "ARN");
    for (;;) {
      const auto page = admin("ListUsers", req);
      for (const auto& v : page.at("Users").as_array()) {
        const auto& u = v.as_object();
        std::printf("%-24s %-6s %-7s %s\n", Str(u.at("UserName")).c_str(),
                    u.at("Administrator").as_bool() ? "yes" : "no",
                    u.at("HasPolicy").as_bool() ? "yes" : "no", Str(u.at("Arn")).c_str());
      }
      if (!page.at("Truncated").as_bool()) break;
      req["Marker"] = page.at("NextMarker");
    }
  } else if (user_delete->parsed()) {
    admin("DeleteUser", {{"UserName", user_name}});
    std::cout << user_name << " deleted\n";
  } else if (ak_create->parsed()) {
    json::object body{{"UserName", ak_user}};
    if (ak_admin) body["Administrator"] = true;
    auto o = admin("CreateAccessKey", body);
    const auto& k = o.at("AccessKey").as_object();
    // lint-ok: the new secret is shown once, to the operator who made it (as aws iam
    // create-access-key does); the appliance keeps it only sealed.
    std::cout << "AWS_ACCESS_KEY_ID=" << Str(k.at("AccessKeyId")) << "\n"
              << "AWS_SECRET_ACCESS_KEY=" << Str(k.at("SecretAccessKey")) << "\n"
              << "# user " << Str(k.at("UserName")) << (ak_admin ? ", administrator" : "")
              << "; the secret is shown only this once\n";
    json::string& secret = o.at("AccessKey").as_object().at("SecretAccessKey").as_string();
    kms::SecureWipe(secret.data(), secret.size());
  } else if (ak_list->parsed()) {
    json::object req{{"Limit", 1000}};
    std::printf("%-22s %-20s %-9s %-6s %s\n", "ACCESS KEY ID", "USER", "STATUS", "ADMIN",
                "CREATED");
    for (;;) {
      const auto page = admin("ListAccessKeys", req);
      for (const auto& v : page.at("AccessKeyMetadata").as_array()) {
        const auto& k = v.as_object();
        std::printf("%-22s %-20s %-9s %-6s %s\n", Str(k.at("AccessKeyId")).c_str(),
                    Str(k.at("UserName")).c_str(), Str(k.at("Status")).c_str(),
                    k.at("Administrator").as_bool() ? "yes" : "no",
                    FormatTime(k.at("CreateDate")).c_str());
      }
      if (!page.at("Truncated").as_bool()) break;
      req["Marker"] = page.at("NextMarker");
    }
  } else if (ak_disable->parsed() || ak_enable->parsed()) {
    admin("UpdateAccessKey",
          {{"AccessKeyId", ak_id}, {"Status", ak_enable->parsed() ? "Active" : "Inactive"}});
    std::cout << ak_id << (ak_enable->parsed() ? " enabled" : " disabled") << "\n";
  } else if (ak_delete->parsed()) {
    admin("DeleteAccessKey", {{"AccessKeyId", ak_id}});
    std::cout << ak_id << " deleted\n";
  } else if (vt_create->parsed()) {
    auto strings = [](const std::vector<std::string>& v, const char* fallback) {
      json::array a;
      for (const auto& item : v) a.emplace_back(item);
      if (a.empty() && fallback != nullptr) a.emplace_back(fallback);
      return a;
    };
    json::object body{{"DisplayName", vt_name},
                      {"KeyPatterns", strings(vt_keys, "*")},
                      {"Operations", strings(vt_operations, "*")}};
    if (vt_admin) body["Administrator"] = true;
    if (!vt_ttl.empty()) body["TtlSeconds"] = DurationSeconds(vt_ttl, "--ttl");
    if (!vt_max_ttl.empty()) {
      body["ExplicitMaxTtlSeconds"] = DurationSeconds(vt_max_ttl, "--explicit-max-ttl");
    }
    if (vt_no_renewable) body["Renewable"] = false;
    if (!vt_policies.empty()) body["Policies"] = strings(vt_policies, nullptr);
    auto o = admin("CreateVaultToken", body);
    json::object& t = o.at("VaultToken").as_object();
    // lint-ok: the new token is shown once, to the operator who made it (as `vault token create`
    // does); the appliance keeps only its hash.
    std::cout << "VAULT_TOKEN=" << Str(t.at("Token")) << "\n"
              << "# accessor " << Str(t.at("Accessor")) << "; keys " << Joined(t.at("KeyPatterns"))
              << "; operations " << Joined(t.at("Operations"))
              << (t.at("Administrator").as_bool() ? "; administrator" : "") << "; expires "
              << (t.contains("ExpireDate") ? FormatTime(t.at("ExpireDate")) : "never")
              << "; the token is shown only this once\n";
    json::string& token = t.at("Token").as_string();
    kms::SecureWipe(token.data(), token.size());
  } else if (vt_list->parsed()) {
    json::object req{{"Limit", 1000}};
    std::printf("%-30s %-20s %-6s %-20s %-20s %s\n", "ACCESSOR", "NAME", "ADMIN", "CREATED",
                "EXPIRES", "KEYS / OPERATIONS");
    for (;;) {
      const auto page = admin("ListVaultTokens", req);
      for (const auto& v : page.at("VaultTokens").as_array()) {
        const auto& t = v.as_object();
        const std::string expires =
            t.contains("ExpireDate") ? FormatTime(t.at("ExpireDate")) : std::string("never");
        std::printf("%-30s %-20s %-6s %-20s %-20s %s / %s\n", Str(t.at("Accessor")).c_str(),
                    Str(t.at("DisplayName")).c_str(),
                    t.at("Administrator").as_bool() ? "yes" : "no",
                    FormatTime(t.at("CreateDate")).c_str(), expires.c_str(),
                    Joined(t.at("KeyPatterns")).c_str(), Joined(t.at("Operations")).c_str());
      }
      if (!page.at("Truncated").as_bool()) break;
      req["Marker"] = page.at("NextMarker");
    }
  } else if (vt_revoke->parsed()) {
    admin("RevokeVaultToken", {{"Accessor", vt_accessor}});
    std::cout << vt_accessor << " revoked\n";
  } else if (key_create->parsed()) {
    json::object body;
    if (!spec.empty()) body["KeySpec"] = spec;
    if (!usage.empty())
      body["KeyUsage"] = usage;
    else if (!spec.empty() && spec.starts_with("ECC_"))
      body["KeyUsage"] = "SIGN_VERIFY";
    else if (!spec.empty() && spec.starts_with("HMAC_"))
      body["KeyUsage"] = "GENERATE_VERIFY_MAC";
    if (!description.empty()) body["Description"] = description;
    PrintObject(trent("CreateKey", body).at("KeyMetadata").as_object());
  } else if (key_list->parsed()) {
    json::object req{{"Limit", 1000}};
    for (;;) {
      const auto page = trent("ListKeys", req);
      for (const auto& v : page.at("Keys").as_array()) {
        std::cout << Str(v.at("KeyId")) << "  " << Str(v.at("KeyArn")) << "\n";
      }
      if (!page.at("Truncated").as_bool()) break;
      req["Marker"] = page.at("NextMarker");
    }
  } else if (key_describe->parsed()) {
    PrintObject(trent("DescribeKey", {{"KeyId", key_id}}).at("KeyMetadata").as_object());
  } else if (encrypt->parsed()) {
    std::string pt = in_file.empty() ? plaintext : ReadFile(in_file);
    json::object body{{"KeyId", key_id}, {"Plaintext", kms::Base64Encode(kms::AsBytes(pt))}};
    kms::WipeString(pt);
    if (!context.empty()) body["EncryptionContext"] = Context(context);
    const auto o = trent("Encrypt", body);
    const std::string b64 = Str(o.at("CiphertextBlob"));
    if (out_file.empty()) {
      std::cout << b64 << "\n";
    } else {
      auto raw = kms::Base64Decode(b64);
      if (!raw) Die(kExitServiceError, "the server's CiphertextBlob is not base64");
      WriteFile(out_file, kms::AsStringView(*raw));
    }
  } else if (decrypt->parsed()) {
    std::string b64 = blob;
    if (!in_file.empty())
      b64 = kms::Base64Encode(kms::AsBytes(ReadFile(in_file)));
    else if (!kms::Base64Decode(b64))
      Die(kExitUsage, "--blob is not valid base64");
    json::object body{{"CiphertextBlob", b64}};
    if (!key_id.empty()) body["KeyId"] = key_id;
    if (!context.empty()) body["EncryptionContext"] = Context(context);
    const auto o = trent("Decrypt", body);
    auto pt = kms::Base64DecodeSecret(Str(o.at("Plaintext")));
    if (!pt) Die(kExitServiceError, "the server's Plaintext is not base64");
    const std::string_view text = kms::AsStringView(pt->ExposeSecret());
    if (out_file.empty()) {
      std::cout << text << std::flush;
      if (isatty(1)) std::cout << "\n";
    } else {
      WriteFile(out_file, text);
    }
  } else if (data_key->parsed()) {
    json::object body{{"KeyId", key_id}, {"KeySpec", "AES_256"}};
    if (!context.empty()) body["EncryptionContext"] = Context(context);
    PrintObject(trent("GenerateDataKey", body));
  } else if (rotate->parsed()) {
    PrintObject(trent("RotateKeyOnDemand", {{"KeyId", key_id}}));
  }
  return 0;
}
