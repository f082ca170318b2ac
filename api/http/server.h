// The HTTP/1.1 server every front door shares (AWS JSON 1.1 today, Vault transit next).
//
// Shape (Boost.Beast advanced_server): listener -> session -> handler. Beast parses, but the session
// owns the bytes: it reads through a `Transport` (plain TCP or mbedTLS, api/tls/), feeds Beast's
// parser, and serialises the response itself, so each response leaves in ONE write on a TCP_NODELAY
// socket (AWS KMS reference §4.2: a split write costs a 40 ms delayed-ACK stall per request).
//
// Limits and timeouts, all in `ServerConfig`:
//  - every read is timed: the TLS handshake and the request header (also the keep-alive idle time)
//    by `header_timeout`, the body by `body_timeout`, the response write by `write_timeout`; on expiry
//    the connection is closed;
//  - `header_limit` (431) and `body_limit` (413, checked against Content-Length before the body is
//    read); malformed HTTP gives 400; each closes the connection;
//  - `max_connections`: connections beyond it are accepted and closed at once (refusal);
//  - `max_in_flight`: requests beyond it get the overload response (503 by default; the AWS door
//    answers ThrottlingException, which SDKs retry) without reaching a handler.
// The body of those fault responses comes from a `FaultResponder`, so each door can speak its own
// error format.
//
// Threads: `network_threads` run Asio (parsing, TLS, writes; never blocking); the handler runs on a
// separate pool of `worker_threads`, because handlers block on the HSM. A handler must not throw; if it
// does, the server answers `kHandlerFailed` (500) and logs nothing secret.
//
// Lifetime: Create -> Start -> Stop. `Stop()` is graceful: stop accepting, close idle keep-alive
// connections, let in-flight requests finish and their responses go out (with `Connection: close`),
// wait up to `drain_timeout`, then close what is left and join every thread. It is idempotent and
// safe to call from any thread except the server's own (main wires SIGTERM to it).
//
// Thread-safety: Start/Stop/port from any single controlling thread.
#ifndef KMS_API_HTTP_SERVER_H_
#define KMS_API_HTTP_SERVER_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "api/http/message.h"
#include "api/tls/tls_context.h"
#include "base/status.h"

namespace kms::api::http {

struct ServerConfig {
  std::string bind_address = "127.0.0.1";
  std::uint16_t port = 0;  // 0 picks a free port; see Server::port()
  std::size_t network_threads = 1;
  std::size_t worker_threads = 4;
  std::size_t max_connections = 1024;
  std::size_t max_in_flight = 256;
  std::size_t header_limit = 8 * 1024;
  std::size_t body_limit = 64 * 1024;
  std::chrono::milliseconds header_timeout{15'000};
  std::chrono::milliseconds body_timeout{15'000};
  std::chrono::milliseconds write_timeout{15'000};
  std::chrono::milliseconds drain_timeout{10'000};
  // TLS when set; plain HTTP only when explicitly left unset (dev mode on loopback).
  std::optional<tls::TlsOptions> tls;
};

// Failures the server answers itself, before (or instead of) a handler.
enum class ServerFault {
  kBadRequest,      // 400: malformed HTTP
  kHeaderTooLarge,  // 431
  kBodyTooLarge,    // 413
  kOverloaded,      // max_in_flight reached
  kHandlerFailed,   // the handler threw
};

// Runs on a worker thread; must not throw.
using Handler = std::function<HttpResponse(const HttpRequest&)>;
// Builds the response for a fault; runs on a network thread, must be cheap and must not throw.
using FaultResponder = std::function<HttpResponse(ServerFault fault, std::string_view detail)>;

// The default fault responses: plain-text bodies with 400/431/413/503/500.
HttpResponse DefaultFaultResponse(ServerFault fault, std::string_view detail);

class Server {
 public:
  // Validates the config and loads TLS material; binds nothing yet.
  static StatusOr<std::unique_ptr<Server>> Create(ServerConfig config, Handler handler,
                                                  FaultResponder faults = DefaultFaultResponse);
  ~Server();  // Stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds, listens and starts the threads. Unavailable if the address cannot be bound.
  Status Start();
  // Graceful shutdown (see above). Idempotent.
  void Stop();
  // The bound port (useful with port 0); 0 before Start.
  std::uint16_t port() const;
  // Open connections right now (for tests and /health).
  std::size_t connection_count() const;

  class State;

 private:
  explicit Server(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

}  // namespace kms::api::http

#endif  // KMS_API_HTTP_SERVER_H_
