// kms_load: a native load generator for the AWS door (figures in docs/performance.md).
//
// N keep-alive connections spread over T threads, each thread one Asio io_context driving its
// connections as closed loops (send a request, wait for its response, send the next) on
// non-blocking sockets, plain HTTP or TLS 1.2 on mbedTLS (tools/kms_client/connection.h). Every
// request is signed with SigV4 when it is sent (its own X-Amz-Date, payload hash and signature; the
// signing key is derived once per day), exactly as an SDK would, so the door verifies a real
// signature each time.
//
// Operations: encrypt (1 KiB plaintext), decrypt (a 1 KiB ciphertext made at setup),
// generate-data-key (AES_256) and sign (ECDSA_SHA_256 over a 32-byte message, ECC_NIST_P256 key).
// Setup creates the keys it needs through the same endpoint before the clock starts, unless
// --key-id names an existing key (a key with its own policy and grants, tools/bench_authz.sh).
//
// Key management pairs of about the same cost, one that changes stored state and one that reads it
// (tools/bench_intent.sh: the door writes an audit intent before every state change): tag-resource
// (TagResource of the same tag, kms-load=1, every time: a store write that leaves the key as it
// was) beside list-resource-tags (ListResourceTags of that key, tagged once at setup), and
// update-key-description (the same Description every time) beside describe-key.
//
// Vault transit operations (the Vault door, /v1/, docs/vault-door.md): transit-encrypt
// (`PUT /v1/<mount>/encrypt/<key>` with a 1 KiB plaintext), transit-decrypt (a 1 KiB ciphertext made
// at setup) and transit-encrypt-batch100 (one request whose batch_input holds 100 such plaintexts).
// They authenticate with `X-Vault-Token` (--vault-token, else VAULT_TOKEN of the env file or the
// environment) instead of SigV4, and send the Go client's headers (`X-Vault-Request: true`, no
// Content-Type); the request bytes are the same every time, as a seal's would be. Setup creates a
// fresh aes256-gcm96 key through the door.
//
// Output: one line, `op=… tls=… connections=… threads=… seconds=… requests=… errors=… rps=…
// p50_ms=… p99_ms=… max_ms=… items_per_request=…` (100 for the batch operation, else 1). Any non-200 response or transport failure counts as an error (the
// first is printed); a run with errors is not a valid measurement and exits 1.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/encoding.h"
#include "base/secret_bytes.h"
#include "tools/kms_client/connection.h"
#include "tools/kms_client/env_file.h"
#include "tools/kms_client/kms_client.h"
#include "tools/kms_client/request_signer.h"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using kms::tools::Connection;

struct Workload {
  std::string target;  // "TrentService.Encrypt"
  std::string body;    // the same JSON body for every request
  std::string raw;     // Vault door: the whole request, sent as is (no per-request signature)
};

struct ThreadStats {
  std::vector<std::uint32_t> latencies_us;
  std::uint64_t errors = 0;
  std::string first_error;
};

// Content-Length framing (both doors always send it); header names compared case-insensitively.
// `header_end` is npos until the headers are complete.
bool ResponseComplete(const std::string& response, std::size_t& header_end,
                      std::size_t& content_length) {
  if (header_end == std::string::npos || header_end == 0) {
    const auto end = response.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    header_end = end + 4;
    content_length = 0;
    std::string lower = response.substr(0, end);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (const auto cl = lower.find("\r\ncontent-length:"); cl != std::string::npos) {
      content_length = std::strtoul(lower.c_str() + cl + 17, nullptr, 10);
    }
  }
  return response.size() >= header_end + content_length;
}

// A Vault-door request as Vault's Go client sends it: PUT, X-Vault-Token, X-Vault-Request, no
// Content-Type, the JSON body with json.Encoder's trailing newline.
std::string VaultRequest(const std::string& host, const std::string& token,
                         const std::string& path, const std::string& json_body) {
  const std::string body = json_body + "\n";
  std::string r = "PUT /v1/" + path + " HTTP/1.1\r\nHost: " + host +
                  "\r\nUser-Agent: kms_load\r\nX-Vault-Token: " + token +
                  "\r\nX-Vault-Request: true\r\nContent-Length: " + std::to_string(body.size()) +
                  "\r\n\r\n";
  return r + body;
}

// One connection's closed loop.
class LoadConnection : public std::enable_shared_from_this<LoadConnection> {
 public:
  LoadConnection(asio::io_context& io, std::unique_ptr<Connection> conn,
                 kms::tools::RequestSigner& signer, const Workload& work,
                 Clock::time_point deadline, ThreadStats& stats)
      : conn_(std::move(conn)),
        desc_(io, ::dup(conn_->fd())),
        signer_(signer),
        work_(work),
        deadline_(deadline),
        stats_(stats) {}

  void Next() {
    if (Clock::now() >= deadline_) return;
    if (work_.raw.empty()) {
      request_ = signer_.RawRequest(work_.target, work_.body, std::chrono::system_clock::now());
    } else {
      request_ = work_.raw;
    }
    written_ = 0;
    response_.clear();
    started_ = Clock::now();
    Write();
  }

 private:
  void Wait(bool write, void (LoadConnection::*next)()) {
    auto self = shared_from_this();
    desc_.async_wait(
        write ? asio::posix::descriptor_base::wait_write : asio::posix::descriptor_base::wait_read,
        [self, next](boost::system::error_code ec) {
          if (ec) return self->Fail("wait: " + ec.message());
          ((*self).*next)();
        });
  }

  void Write() {
    while (written_ < request_.size()) {
      auto n = conn_->Write(request_.data() + written_, request_.size() - written_);
      if (!n.has_value()) return Fail(n.error().message());
      if (*n == Connection::kWouldBlock) return Wait(conn_->wants_write(), &LoadConnection::Write);
      written_ += static_cast<std::size_t>(*n);
    }
    Read();
  }

  void Read() {
    for (;;) {
      auto n = conn_->Read(buf_, sizeof buf_);
      if (!n.has_value()) return Fail(n.error().message());
      if (*n == Connection::kWouldBlock) return Wait(conn_->wants_write(), &LoadConnection::Read);
      if (*n == 0) return Fail("the server closed the connection");
      response_.append(buf_, static_cast<std::size_t>(*n));
      if (Complete()) return Done();
    }
  }

  bool Complete() { return ResponseComplete(response_, header_end_, content_length_); }

  void Done() {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started_);
    const bool ok = response_.starts_with("HTTP/1.1 200");
    header_end_ = std::string::npos;
    if (!ok) {
      ++stats_.errors;
      if (stats_.first_error.empty()) stats_.first_error = response_.substr(0, 600);
    } else {
      stats_.latencies_us.push_back(static_cast<std::uint32_t>(us.count()));
    }
    Next();
  }

  void Fail(const std::string& why) {
    ++stats_.errors;
    if (stats_.first_error.empty()) stats_.first_error = why;
    // The connection is lost; it stops (the error count already invalidates the run).
  }

  std::unique_ptr<Connection> conn_;
  asio::posix::stream_descriptor desc_;
  kms::tools::RequestSigner& signer_;
  const Workload& work_;
  const Clock::time_point deadline_;
  ThreadStats& stats_;
  std::string request_;
  std::size_t written_ = 0;
  std::string response_;
  std::size_t header_end_ = std::string::npos;
  std::size_t content_length_ = 0;
  Clock::time_point started_;
  char buf_[16 * 1024];
};

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "kms_load: %s\n", message.c_str());
  std::exit(2);
}

// Setup through the Vault door on a blocking connection: the response body of a 200, else Die.
json::object MustVault(const kms::tools::Endpoint& endpoint,
                       std::shared_ptr<kms::tools::TlsClientContext> tls, const std::string& token,
                       const std::string& path, const json::object& body) {
  auto conn = Connection::Open(endpoint, std::move(tls), /*non_blocking=*/false);
  if (!conn) Die("setup " + path + ": " + conn.error().message());
  const std::string req = VaultRequest(endpoint.HostHeader(), token, path, json::serialize(body));
  for (std::size_t off = 0; off < req.size();) {
    auto n = (*conn)->Write(req.data() + off, req.size() - off);
    if (!n || *n <= 0) Die("setup " + path + ": write failed");
    off += static_cast<std::size_t>(*n);
  }
  std::string resp;
  std::size_t header_end = std::string::npos, content_length = 0;
  char buf[16 * 1024];
  while (!ResponseComplete(resp, header_end, content_length)) {
    auto n = (*conn)->Read(buf, sizeof buf);
    if (!n || *n <= 0) Die("setup " + path + ": the server closed the connection");
    resp.append(buf, static_cast<std::size_t>(*n));
  }
  if (!resp.starts_with("HTTP/1.1 200")) Die("setup " + path + ": " + resp.substr(0, 600));
  return json::parse(resp.substr(header_end, content_length)).as_object();
}

json::object MustCall(kms::tools::KmsClient& client, const std::string& op,
                      const json::object& body) {
  auto r = client.Call("TrentService." + op, json::serialize(body));
  if (!r.has_value()) Die("setup " + op + ": " + r.error().message());
  if (r->status != 200) Die("setup " + op + ": " + r->error_type + ": " + r->error_message);
  return json::parse(r->body).as_object();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kms_load: closed-loop load on a KMS endpoint with SigV4-signed requests"};
  std::string env_file, endpoint_text, ca_bundle, op = "encrypt", vault_token, vault_mount = "transit";
  std::string kms_key;  // --key-id: "" = create one at setup
  std::size_t connections = 32, threads = 2;
  double seconds = 5;
  app.add_option("--env-file", env_file, "KMS_ENDPOINT and AWS_* credentials (kmsd dev.env)");
  app.add_option("--endpoint", endpoint_text, "endpoint URL (default $KMS_ENDPOINT)");
  app.add_option("--ca-bundle", ca_bundle, "PEM CA for https (default $AWS_CA_BUNDLE)");
  app.add_option("--op", op,
                 "encrypt | decrypt | generate-data-key | sign | tag-resource | list-resource-tags "
                 "| update-key-description | describe-key | transit-encrypt | transit-decrypt "
                 "| transit-encrypt-batch100")
      ->check(CLI::IsMember({"encrypt", "decrypt", "generate-data-key", "sign", "tag-resource",
                             "list-resource-tags", "update-key-description", "describe-key",
                             "transit-encrypt", "transit-decrypt", "transit-encrypt-batch100"}))
      ->capture_default_str();
  app.add_option("--key-id", kms_key,
                 "existing KeyId (id or ARN; an alias too for encrypt, decrypt, generate-data-key, "
                 "sign and describe-key); default: create a key at setup");
  app.add_option("--vault-token", vault_token, "X-Vault-Token for transit-* (default $VAULT_TOKEN)");
  app.add_option("--vault-mount", vault_mount, "transit mount path")->capture_default_str();
  app.add_option("--connections", connections, "keep-alive connections")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  app.add_option("--threads", threads, "client threads")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--seconds", seconds, "measured duration")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  auto env = kms::tools::EnvSettings::Load(env_file);
  if (!env) Die(env.error().message());
  if (endpoint_text.empty()) endpoint_text = env->Get("KMS_ENDPOINT");
  auto endpoint = kms::tools::Endpoint::Parse(endpoint_text);
  if (!endpoint) Die(endpoint.error().message());
  const std::string key_id = env->Get("AWS_ACCESS_KEY_ID");
  std::string secret = env->Get("AWS_SECRET_ACCESS_KEY");
  std::string region = env->Get("AWS_DEFAULT_REGION");
  if (region.empty()) region = "us-east-1";
  const bool transit = op.starts_with("transit-");
  if (transit && vault_token.empty()) vault_token = env->Get("VAULT_TOKEN");
  if (transit && vault_token.empty()) Die("no Vault token (--vault-token, VAULT_TOKEN or --env-file)");
  if (!transit && (key_id.empty() || secret.empty()))
    Die("no credentials (AWS_ACCESS_KEY_ID/SECRET or --env-file)");

  std::shared_ptr<kms::tools::TlsClientContext> tls;
  if (endpoint->tls) {
    auto made = kms::tools::TlsClientContext::Create(ca_bundle);
    if (!made) Die(made.error().message());
    tls = *made;
  }

  // Setup through a blocking client: the keys and, for decrypt, one ciphertext.
  kms::tools::ClientConfig cc;
  cc.endpoint = *endpoint;
  cc.access_key_id = key_id;
  cc.secret = kms::SecretBytes::CopyFrom(kms::AsBytes(secret));
  cc.region = region;
  cc.ca_file = ca_bundle;
  Workload work;
  std::size_t items_per_request = 1;
  std::string plaintext(1024, '\0');
  for (std::size_t i = 0; i < plaintext.size(); ++i) plaintext[i] = static_cast<char>(i * 131 + 7);
  const std::string pt_b64 = kms::Base64Encode(kms::AsBytes(plaintext));
  auto setup = transit ? kms::StatusOr<std::unique_ptr<kms::tools::KmsClient>>(nullptr)
                       : kms::tools::KmsClient::Create(std::move(cc));
  if (!setup) Die(setup.error().message());
  if (transit) {
    const std::string key = "kms-load-" + std::to_string(::getpid()) + "-" + op;
    const std::string host = endpoint->HostHeader();
    (void)MustVault(*endpoint, tls, vault_token, vault_mount + "/keys/" + key, json::object{});
    const std::string encrypt_path = vault_mount + "/encrypt/" + key;
    if (op == "transit-encrypt") {
      work.raw = VaultRequest(host, vault_token, encrypt_path,
                              json::serialize(json::object{{"plaintext", pt_b64}}));
    } else if (op == "transit-decrypt") {
      const auto ct = MustVault(*endpoint, tls, vault_token, encrypt_path, {{"plaintext", pt_b64}});
      work.raw = VaultRequest(
          host, vault_token, vault_mount + "/decrypt/" + key,
          json::serialize(json::object{{"ciphertext", ct.at("data").at("ciphertext")}}));
    } else {
      items_per_request = 100;
      json::array items;
      for (std::size_t i = 0; i < items_per_request; ++i) {
        items.push_back(json::object{{"plaintext", pt_b64}});
      }
      work.raw = VaultRequest(host, vault_token, encrypt_path,
                              json::serialize(json::object{{"batch_input", std::move(items)}}));
    }
    kms::WipeString(vault_token);
  } else if (op == "sign") {
    const std::string id =
        !kms_key.empty()
            ? kms_key
            : std::string(MustCall(**setup, "CreateKey",
                                   {{"KeySpec", "ECC_NIST_P256"},
                                    {"KeyUsage", "SIGN_VERIFY"},
                                    {"Description", "kms_load sign"}})
                              .at("KeyMetadata")
                              .at("KeyId")
                              .as_string());
    work = {"TrentService.Sign",
            json::serialize(
                json::object{{"KeyId", id},
                             {"Message", kms::Base64Encode(kms::AsBytes(plaintext.substr(0, 32)))},
                             {"SigningAlgorithm", "ECDSA_SHA_256"}}), ""};
  } else {
    const std::string id =
        !kms_key.empty()
            ? kms_key
            : std::string(MustCall(**setup, "CreateKey", {{"Description", "kms_load " + op}})
                              .at("KeyMetadata")
                              .at("KeyId")
                              .as_string());
    if (op == "encrypt") {
      work = {"TrentService.Encrypt",
              json::serialize(json::object{{"KeyId", id}, {"Plaintext", pt_b64}}), ""};
    } else if (op == "decrypt") {
      const auto ct = MustCall(**setup, "Encrypt", {{"KeyId", id}, {"Plaintext", pt_b64}});
      work = {"TrentService.Decrypt",
              json::serialize(json::object{{"CiphertextBlob", ct.at("CiphertextBlob")}}), ""};
    } else if (op == "generate-data-key") {
      work = {"TrentService.GenerateDataKey",
              json::serialize(json::object{{"KeyId", id}, {"KeySpec", "AES_256"}}), ""};
    } else {
      // The key management pairs: the writes send the same values every time, so every request
      // commits a store transaction and, from the first on, the key (and the reads' answers) stay
      // the same.
      const json::array tags{json::object{{"TagKey", "kms-load"}, {"TagValue", "1"}}};
      if (op == "tag-resource") {
        work = {"TrentService.TagResource",
                json::serialize(json::object{{"KeyId", id}, {"Tags", tags}}), ""};
      } else if (op == "list-resource-tags") {
        (void)MustCall(**setup, "TagResource", {{"KeyId", id}, {"Tags", tags}});
        work = {"TrentService.ListResourceTags", json::serialize(json::object{{"KeyId", id}}), ""};
      } else if (op == "update-key-description") {
        work = {"TrentService.UpdateKeyDescription",
                json::serialize(json::object{{"KeyId", id}, {"Description", "kms_load " + op}}),
                ""};
      } else {
        work = {"TrentService.DescribeKey", json::serialize(json::object{{"KeyId", id}}), ""};
      }
    }
  }
  setup->reset();
  threads = std::min(threads, connections);
  struct PerThread {
    asio::io_context io{1};
    std::unique_ptr<kms::tools::RequestSigner> signer;
    std::vector<std::unique_ptr<Connection>> conns;
    ThreadStats stats;
  };
  std::vector<std::unique_ptr<PerThread>> per_thread;
  for (std::size_t t = 0; t < threads; ++t) {
    auto p = std::make_unique<PerThread>();
    p->signer = std::make_unique<kms::tools::RequestSigner>(
        key_id, kms::SecretBytes::CopyFrom(kms::AsBytes(secret)), region, endpoint->HostHeader());
    per_thread.push_back(std::move(p));
  }
  kms::WipeString(secret);
  // Connect (and handshake) every connection before the clock starts.
  for (std::size_t c = 0; c < connections; ++c) {
    auto conn = Connection::Open(*endpoint, tls, /*non_blocking=*/true);
    if (!conn) Die("connection " + std::to_string(c) + ": " + conn.error().message());
    per_thread[c % threads]->conns.push_back(std::move(*conn));
  }

  const auto start = Clock::now();
  const auto deadline =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::vector<std::thread> workers;
  for (auto& p : per_thread) {
    for (auto& conn : p->conns) {
      auto lc = std::make_shared<LoadConnection>(p->io, std::move(conn), *p->signer, work, deadline,
                                                 p->stats);
      asio::post(p->io, [lc] { lc->Next(); });
    }
    workers.emplace_back([io = &p->io] { io->run(); });
  }
  for (auto& w : workers) w.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();

  std::vector<std::uint32_t> all;
  std::uint64_t errors = 0;
  std::string first_error;
  for (auto& p : per_thread) {
    all.insert(all.end(), p->stats.latencies_us.begin(), p->stats.latencies_us.end());
    errors += p->stats.errors;
    if (first_error.empty()) first_error = p->stats.first_error;
  }
  std::sort(all.begin(), all.end());
  auto pct = [&](double q) {
    if (all.empty()) return 0.0;
    const auto i = static_cast<std::size_t>(q * static_cast<double>(all.size() - 1));
    return all[i] / 1000.0;
  };
  std::printf(
      "op=%s tls=%d connections=%zu threads=%zu seconds=%.2f requests=%zu errors=%llu rps=%.0f "
      "p50_ms=%.2f p99_ms=%.2f max_ms=%.2f items_per_request=%zu\n",
      op.c_str(), endpoint->tls ? 1 : 0, connections, threads, elapsed, all.size(),
      static_cast<unsigned long long>(errors), static_cast<double>(all.size()) / elapsed, pct(0.50),
      pct(0.99), all.empty() ? 0.0 : all.back() / 1000.0, items_per_request);
  if (errors != 0) {
    std::fprintf(stderr, "kms_load: %llu errors; first: %s\n",
                 static_cast<unsigned long long>(errors), first_error.c_str());
    return 1;
  }
  return 0;
}
