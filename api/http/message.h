// Plain HTTP/1.1 request and response values passed between the server and the doors.
//
// The server (api/http/server.h) parses the wire with Beast and hands handlers an `HttpRequest` that
// keeps every header exactly as received: wire order, original name case, duplicates kept, raw values.
// SigV4 (api/aws/sigv4.h) needs exactly that (AWS SigV4: "keep the raw header values"), and the doors
// stay free of Beast types, so they can be unit-tested without a socket. Handlers return an
// `HttpResponse`; the server serialises it into one buffer and writes it in one call.
//
// Thread-safety: value types.
#ifndef KMS_API_HTTP_MESSAGE_H_
#define KMS_API_HTTP_MESSAGE_H_

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kms::api::http {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// ASCII case-insensitive equality, for header names.
bool HeaderNameEquals(std::string_view a, std::string_view b);

struct HttpRequest {
  std::string method;   // "POST"
  std::string target;   // request-target as received: path plus optional "?query"
  HeaderList headers;   // wire order, raw names and values
  std::string body;
  std::string remote_address;  // peer IP, for logs and audit

  std::string_view Path() const;
  std::string_view Query() const;  // without '?', empty when absent
  // The first header with this name (case-insensitive), or nullopt.
  std::optional<std::string_view> Header(std::string_view name) const;
  // How many headers carry this name.
  std::size_t HeaderCount(std::string_view name) const;
};

struct HttpResponse {
  unsigned status = 200;
  HeaderList headers;  // Content-Length, Date and Connection are added by the server
  std::string body;

  void SetHeader(std::string name, std::string value);
};

}  // namespace kms::api::http

#endif  // KMS_API_HTTP_MESSAGE_H_
