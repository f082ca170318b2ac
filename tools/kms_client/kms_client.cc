#include "tools/kms_client/kms_client.h"

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>
#include <chrono>

namespace kms::tools {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

namespace {

// Boost.Beast's SyncReadStream/SyncWriteStream over a blocking Connection.
class SyncStream {
 public:
  explicit SyncStream(Connection& c) : c_(c) {}

  template <typename MutableBufferSequence>
  std::size_t read_some(const MutableBufferSequence& buffers, boost::system::error_code& ec) {
    ec = {};
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers); ++it) {
      boost::asio::mutable_buffer b = *it;
      if (b.size() == 0) continue;
      for (;;) {
        auto n = c_.Read(static_cast<char*>(b.data()), b.size());
        if (!n.has_value()) {
          ec = boost::asio::error::connection_reset;
          return 0;
        }
        if (*n == Connection::kWouldBlock) continue;  // TLS record in progress (blocking socket)
        if (*n == 0) {
          ec = boost::asio::error::eof;
          return 0;
        }
        return static_cast<std::size_t>(*n);
      }
    }
    return 0;
  }
  template <typename MutableBufferSequence>
  std::size_t read_some(const MutableBufferSequence& buffers) {
    boost::system::error_code ec;
    const std::size_t n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }
  template <typename ConstBufferSequence>
  std::size_t write_some(const ConstBufferSequence& buffers, boost::system::error_code& ec) {
    ec = {};
    std::size_t total = 0;
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers); ++it) {
      boost::asio::const_buffer b = *it;
      std::size_t off = 0;
      while (off < b.size()) {
        auto n = c_.Write(static_cast<const char*>(b.data()) + off, b.size() - off);
        if (!n.has_value()) {
          ec = boost::asio::error::broken_pipe;
          return total;
        }
        if (*n == Connection::kWouldBlock) continue;
        off += static_cast<std::size_t>(*n);
        total += static_cast<std::size_t>(*n);
      }
    }
    return total;
  }
  template <typename ConstBufferSequence>
  std::size_t write_some(const ConstBufferSequence& buffers) {
    boost::system::error_code ec;
    const std::size_t n = write_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

 private:
  Connection& c_;
};

void ParseError(CallResult& r) {
  boost::system::error_code ec;
  auto v = boost::json::parse(r.body, ec);
  if (ec || !v.is_object()) {
    r.error_type = "HTTP " + std::to_string(r.status);
    r.error_message = r.body;
    return;
  }
  const auto& o = v.get_object();
  if (const auto* t = o.if_contains("__type"); t && t->is_string()) {
    // docs/aws-kms-protocol.md "Errors": botocore keeps the text after the last '#' and before ':'.
    std::string type(t->get_string());
    if (auto hash = type.rfind('#'); hash != std::string::npos) type = type.substr(hash + 1);
    if (auto colon = type.find(':'); colon != std::string::npos) type = type.substr(0, colon);
    r.error_type = type;
  } else {
    r.error_type = "HTTP " + std::to_string(r.status);
  }
  for (const char* name : {"message", "Message"}) {
    if (const auto* m = o.if_contains(name); m && m->is_string()) {
      r.error_message = std::string(m->get_string());
    }
  }
}

}  // namespace

StatusOr<PlainResult> SendPlain(const Endpoint& endpoint, const std::string& ca_file,
                                std::string_view method, std::string_view target,
                                std::string_view body, std::string_view vault_token) {
  std::shared_ptr<TlsClientContext> tls;
  if (endpoint.tls) {
    KMS_ASSIGN_OR_RETURN(tls, TlsClientContext::Create(ca_file));
  }
  KMS_ASSIGN_OR_RETURN(auto connection, Connection::Open(endpoint, tls, /*non_blocking=*/false));
  bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(method), std::string(target), 11};
  req.set(bhttp::field::host, endpoint.HostHeader());
  req.set(bhttp::field::user_agent, "kmsctl/0.1");
  if (!vault_token.empty()) req.set("X-Vault-Token", vault_token);
  if (!body.empty()) req.set(bhttp::field::content_type, "application/json");
  req.body() = std::string(body);
  req.prepare_payload();
  SyncStream stream(*connection);
  boost::system::error_code ec;
  bhttp::write(stream, req, ec);
  if (ec) return UnavailableError("sending to " + endpoint.ToString() + ": " + ec.message());
  // The request carried a share or a token: wipe our copy.
  WipeString(req.body());
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(1024 * 1024);
  bhttp::read(stream, buffer, parser, ec);
  if (ec) return UnavailableError("reading from " + endpoint.ToString() + ": " + ec.message());
  auto res = parser.release();
  return PlainResult{res.result_int(), std::move(res.body())};
}

StatusOr<std::unique_ptr<KmsClient>> KmsClient::Create(ClientConfig config) {
  std::shared_ptr<TlsClientContext> tls;
  if (config.endpoint.tls) {
    KMS_ASSIGN_OR_RETURN(tls, TlsClientContext::Create(config.ca_file));
  }
  RequestSigner signer(config.access_key_id, std::move(config.secret), config.region,
                       config.endpoint.HostHeader());
  return std::unique_ptr<KmsClient>(
      new KmsClient(std::move(config.endpoint), std::move(signer), std::move(tls)));
}

StatusOr<CallResult> KmsClient::Call(std::string_view target, std::string_view json_body) {
  const bool reused = connection_ != nullptr;
  auto r = CallOnce(target, json_body);
  if (!r.has_value() && reused) {
    connection_.reset();  // the server may have closed an idle keep-alive connection
    r = CallOnce(target, json_body);
  }
  return r;
}

StatusOr<CallResult> KmsClient::CallOnce(std::string_view target, std::string_view json_body) {
  if (!connection_) {
    KMS_ASSIGN_OR_RETURN(connection_, Connection::Open(endpoint_, tls_, /*non_blocking=*/false));
  }
  const SignedHeaders signed_headers =
      signer_.Sign(target, json_body, std::chrono::system_clock::now());
  bhttp::request<bhttp::string_body> req{bhttp::verb::post, "/", 11};
  req.set(bhttp::field::host, signer_.host_header());
  req.set(bhttp::field::content_type, kKmsContentType);
  req.set("X-Amz-Target", target);
  req.set("X-Amz-Date", signed_headers.amz_date);
  req.set(bhttp::field::authorization, signed_headers.authorization);
  req.set(bhttp::field::user_agent, "kmsctl/0.1");
  req.body() = std::string(json_body);
  req.prepare_payload();
  SyncStream stream(*connection_);
  boost::system::error_code ec;
  bhttp::write(stream, req, ec);
  if (ec) {
    connection_.reset();
    return UnavailableError("sending to " + endpoint_.ToString() + ": " + ec.message());
  }
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(16 * 1024 * 1024);
  bhttp::read(stream, buffer, parser, ec);
  if (ec) {
    connection_.reset();
    return UnavailableError("reading from " + endpoint_.ToString() + ": " + ec.message());
  }
  auto res = parser.release();
  CallResult out;
  out.status = res.result_int();
  out.body = std::move(res.body());
  if (out.status != 200) ParseError(out);
  if (!res.keep_alive()) connection_.reset();
  return out;
}

}  // namespace kms::tools
