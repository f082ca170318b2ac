// libFuzzer target: the Vault door (api/vault/vault_door.h): paths, verbs, query strings and
// bodies, through the real door over a TransitKeyring and the VaultTokenRegistry, key policies
// consulted, on the fake HSM and a SQLite store (DoorStack, tests/fuzz/door_stack.h).
//
// Input: byte 0 chooses the token (low 3 bits: 0 an administrator token, 1 one scoped to
// transit/app-* for encrypt and decrypt, 2 one whose pattern matches no key, 3 none, 4 a token
// that does not exist; bit 3: sent as `Authorization: Bearer` instead of `X-Vault-Token`), byte 1
// the method (GET, PUT, POST, DELETE, LIST, HEAD, PATCH, OPTIONS), then the path after "/v1/"
// (query string included) up to a NUL byte, then the body. `$VBLOB` (a transit ciphertext of the
// canary) and `$ACCESSOR` are replaced by the state's values.
//
// Oracles (abort with the invariant's name):
//  - Vault-shaped answers: no body on 204; otherwise (an empty answer to HEAD aside: the server
//    drops any body of a HEAD answer) a JSON object, which for a status of 400 or more is
//    `{"errors": [strings]}` unless the caller chose that status (sys/health's codes, a batch's
//    partial_failure_response_code: the status's digits are in the request) or it is the
//    envelope of a batch with a failed item (Vault answers those 400 with every item's result);
//    never a 5xx the caller did not choose, but the documented 501 of a Vault endpoint the
//    appliance does not implement;
//  - no state change without a decision to allow it: a change comes with a 2xx answer (or the
//    status of a partly failed batch) and an "allow:*" decision (cryptography
//    may write the durable GCM invocation reservation, so no intent record is asked for here);
//    without a live token, or with the token that matches no key, nothing changes except that
//    token's own renew-self or revoke-self, and a 2xx is only a public route's (or, for that
//    token, its own auth/token route's);
//  - no secret in an answer: no access key secret, no token but the caller's own (lookup-self
//    returns it, as Vault does), and the canary plaintext only in the 200 of a decrypt that
//    a token allowed to decrypt asked for.
#include <boost/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tests/fuzz/door_stack.h"

namespace {

using kms::fuzz::DoorStack;
using kms::fuzz::Violated;

constexpr const char* kName = "vault_door";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  DoorStack& stack = DoorStack::Get();
  if (size < 2) return 0;
  const unsigned who = (data[0] & 7) % 5;
  const bool bearer = (data[0] & 8) != 0;
  static constexpr const char* kMethods[] = {"GET", "PUT", "POST", "DELETE",
                                             "LIST", "HEAD", "PATCH", "OPTIONS"};
  const std::string method = kMethods[data[1] % 8];
  const std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  const auto nul = rest.find('\0');
  const std::string path = stack.Substitute(rest.substr(0, nul));
  const std::string body =
      nul == std::string_view::npos ? std::string() : stack.Substitute(rest.substr(nul + 1));
  // Paths travel in a request line: no CR, LF, space or NUL can reach the door.
  if (path.find_first_of(std::string_view("\r\n \0", 4)) != std::string::npos) return 0;

  std::string token;
  switch (who) {
    case 0: token = stack.admin_token(); break;
    case 1: token = stack.scoped_token(); break;
    case 2: token = stack.powerless_token(); break;
    case 3: break;
    default: token = "hvs.CAESIJfuzzNoSuchTokenAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"; break;
  }
  kms::api::http::HttpRequest req;
  req.method = method;
  req.target = "/v1/" + path;
  req.headers = {{"Host", "127.0.0.1:8200"}, {"X-Vault-Request", "true"}};
  if (!token.empty()) {
    if (bearer) {
      req.headers.emplace_back("Authorization", "Bearer " + token);
    } else {
      req.headers.emplace_back("X-Vault-Token", token);
    }
  }
  req.body = body;
  req.remote_address = "192.0.2.1";

  stack.BeginInput();
  const auto r = stack.CallVault(req);
  const bool changed = stack.EndInput();
  const std::string& decision = stack.auditor().decision;
  const std::string detail = method + " /v1/" + path + " token " + std::to_string(who) + " -> " +
                             std::to_string(r.status) + " " + r.body.substr(0, 200) +
                             " decision " + decision;
  const std::string_view route = std::string_view(path).substr(0, path.find('?'));
  const bool own_token_route = route.starts_with("auth/token/");
  const bool live_token = who <= 2;
  const bool chosen_status =
      std::string_view(reinterpret_cast<const char*>(data), size).find(std::to_string(r.status)) !=
      std::string_view::npos;
  const bool ok = r.status >= 200 && r.status < 300;

  // Shape.
  // 501 is the door's documented answer for a Vault endpoint it does not implement.
  const bool unimplemented = r.status == 501 && decision == "refused:not-found";
  if (r.status >= 500 && !chosen_status && !unimplemented) Violated(kName, "a 5xx answer", detail);
  // The server sends no body to HEAD whatever the door built (api/http/server.h); a door's
  // HEAD answer with a body is still checked as the GET one would be.
  bool batch = false;  // the envelope of a batch, which answers 400 when an item failed
  if (r.status == 204 || (method == "HEAD" && r.body.empty())) {
    if (!r.body.empty()) Violated(kName, "a body on 204", detail);
  } else {
    boost::system::error_code ec;
    const boost::json::value v = boost::json::parse(r.body, ec);
    if (ec || !v.is_object()) Violated(kName, "an answer that is not a JSON object", detail);
    const auto* envelope_data = v.as_object().if_contains("data");
    batch = v.as_object().contains("request_id") && envelope_data != nullptr &&
            envelope_data->is_object() && envelope_data->as_object().contains("batch_results") &&
            envelope_data->as_object().at("batch_results").is_array();
    if (r.status >= 400 && !chosen_status && !batch) {
      const auto* errors = v.as_object().if_contains("errors");
      if (errors == nullptr || !errors->is_array()) Violated(kName, "an error without errors[]", detail);
      for (const auto& e : errors->as_array()) {
        if (!e.is_string()) Violated(kName, "an errors[] entry that is not a string", detail);
      }
    }
  }
  // State and rights.
  if (changed) {
    // A batch that partly failed answers 400 or the caller's partial_failure_response_code.
    if (!(ok || chosen_status || batch) || !decision.starts_with("allow:")) {
      Violated(kName, "the store changed without an allowed success", detail);
    }
    if (who >= 2 && !(who == 2 && own_token_route)) {
      Violated(kName, "a token without rights changed the store", detail);
    }
  }
  if (ok && !live_token && decision != "allow:public") {
    Violated(kName, "a 2xx without a live token on a non-public route", detail);
  }
  if (ok && who == 2 && decision != "allow:public" && !own_token_route) {
    Violated(kName, "a 2xx for the token that matches no key", detail);
  }
  // Secrets.
  const std::string_view raw(reinterpret_cast<const char*>(data), size);
  for (const std::string& secret : stack.secrets()) {
    if (r.body.find(secret) == std::string::npos) continue;
    // A secret the request itself carried (in its bytes, or formed in its path or body by a
    // placeholder's substitution) may come back to the same client, as a 404 echoes its path.
    if (raw.find(secret) != std::string_view::npos || body.find(secret) != std::string::npos ||
        path.find(secret) != std::string::npos) {
      continue;
    }
    // lookup-self answers the caller's own token (its "id"), with or without a trailing slash.
    if (secret == token && (route == "auth/token/lookup-self" || route == "auth/token/lookup-self/")) {
      continue;
    }
    const bool canary =
        secret == kms::fuzz::kCanary || secret == DoorStack::CanaryBase64();
    if (canary && r.status == 200 && (who == 0 || who == 1) &&
        route.find("decrypt") != std::string_view::npos) {
      continue;
    }
    Violated(kName, "a secret of the run in an answer", detail);
  }
  return 0;
}
