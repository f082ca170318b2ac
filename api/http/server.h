// The HTTP/1.1 server every front door shares (the AWS door, the Vault door, the health pages).
//
// Shape (Boost.Beast advanced_server): listener -> session -> handler. Beast parses, but the session
// owns the bytes: it reads through a `Transport` (plain TCP or mbedTLS, api/tls/), feeds Beast's
// parser, and serialises the response itself, so each response leaves in ONE write on a TCP_NODELAY
// socket (docs/aws-kms-protocol.md "Framing": a split write costs a 40 ms delayed-ACK stall per
// request).
//
// Limits and timeouts, all in `ServerConfig`:
//  - every read is timed: the TLS handshake and the request header (also the keep-alive idle time)
//    by `header_timeout`, the body by `body_timeout` (the 100 Continue included), the response
//    write by `write_timeout`; on expiry the connection is closed;
//  - every byte a peer sends is bounded before it is buffered: the header, counted across every
//    read, by `header_limit` (431); the body by `body_limit` (413: against Content-Length before
//    the body is read, and against the sum of the chunks of a chunked body); a chunk-size line
//    with its extensions, and the trailer section, by `chunk_header_limit` (400). So the bytes a
//    connection holds unparsed never exceed max(header_limit, chunk_header_limit) plus one read
//    (16 KiB), and a request's body never exceeds body_limit;
//  - `max_connections` in all and `max_connections_per_peer` from one remote IP address (loopback
//    is a peer like any other): connections beyond either are accepted and closed at once, before
//    any byte is read or a TLS handshake is made (refusal, which clients retry);
//  - `max_in_flight`: requests beyond it get the overload fault without reaching a handler, except
//    on the probe and inline lanes (below), which a peer can fill only one request per connection.
// Each limit but max_in_flight, malformed HTTP and a framing refused below is answered with the
// fault response and the connection is closed (after an overload it stays open: the request was
// read whole, and the client retries on it). The fault responses come from a `FaultResponder`,
// given the request target as soon as the request line has arrived (empty before), so each door
// answers in its own format (kmsd: the Vault door's under /v1/, the AWS door's elsewhere:
// firmware/app/appliance.h).
//
// HTTP framing (RFC 9110, RFC 9112), whatever the client sends or the handler returns:
//  - an HTTP/1.1 request needs exactly one Host header (RFC 9112 §3.2); an HTTP/1.0 one may have
//    none (HTTP/1.0 had no Host) but not two. Otherwise 400;
//  - the only transfer coding is `chunked`, alone (any letter case): any other Transfer-Encoding,
//    one in an HTTP/1.0 request, or one beside Content-Length is 400 (RFC 9112 §6.1, §6.3: the
//    body's length cannot be trusted, so the connection is closed before a byte of it is used);
//  - `Expect: 100-continue` on an HTTP/1.1 request with a body still to come is answered with
//    `100 Continue` once the header has passed every check (RFC 9110 §10.1.1); a header that
//    fails one gets its final fault answer instead, and no 100;
//  - a handler's status outside 200-599 (a 1xx is never final, 0 or 600+ are not HTTP) or a header
//    with CR, LF or NUL, or a name that is not a token, cannot be framed: the server answers the
//    `kHandlerFailed` fault (500) instead and logs it (`logs`);
//  - Content-Length, Transfer-Encoding, Date and Connection are the server's: a handler's are
//    dropped. 204 and 304 go out with neither body nor Content-Length (RFC 9110 §15.3.5,
//    §15.4.5). An answer to HEAD never carries a body, on any path, faults included (§9.3.2); its
//    Content-Length is that of the body the handler built (a handler that builds its GET body for
//    HEAD gives GET's length), and it has none when the handler built no body, since GET's length
//    is then unknown and §8.6 forbids a wrong one (Go's net/http does the same).
//
// Request bytes are secrets (base64 plaintexts and data keys, tokens): every byte read is wiped
// once the parser has taken it; header storage and the body buffer are wiped when freed (and the
// body's old buffer each time it grows); the request's body and header values are wiped once the
// handler has returned, and the response buffer once it is written.
//
// Threads: `network_threads` run Asio (parsing, TLS, writes; never blocking); a handler runs on a
// separate pool of `worker_threads`, because handlers block on the HSM, unless the request's
// `Lane` (from the `LaneSelector`) says otherwise:
//  - kWorker (default): the worker pool, counted against `max_in_flight`;
//  - kProbe: the worker pool, not counted (health pages that do an HSM round trip must still
//    answer when the appliance is busy; they queue behind the work already on the pool);
//  - kInline: run at once on the network thread, not counted, no queue (liveness: it must answer
//    while every worker is blocked). The handler must not block and must be cheap.
// A handler must not throw; if it does, the server answers `kHandlerFailed` (500) and logs that it
// did (never the exception's text, which may echo request bytes).
//
// Tests and fuzz targets can also drive a session without a listener: `ServeConnection` serves one
// connection over a Transport they provide (an in-memory one, tests/support/memory_transport.h) on
// the calling thread, through the same session code, limits and handler dispatch as a connection
// the listener accepted.
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
#include "api/http/transport.h"
#include "api/tls/tls_context.h"
#include "base/log.h"
#include "base/status.h"

namespace kms::api::http {

struct ServerConfig {
  std::string bind_address = "127.0.0.1";
  std::uint16_t port = 0;  // 0 picks a free port; see Server::port()
  std::size_t network_threads = 1;
  std::size_t worker_threads = 4;
  std::size_t max_connections = 1024;
  // One remote IP address's share of max_connections: a single client (a runaway pool, or a peer
  // holding connections half-open) cannot shut every other out.
  std::size_t max_connections_per_peer = 64;
  std::size_t max_in_flight = 256;
  std::size_t header_limit = 8 * 1024;
  std::size_t body_limit = 64 * 1024;
  // A chunk-size line with its extensions, or the trailer section (HTTP clients send a few bytes).
  std::size_t chunk_header_limit = 4 * 1024;
  std::chrono::milliseconds header_timeout{15'000};
  std::chrono::milliseconds body_timeout{15'000};
  std::chrono::milliseconds write_timeout{15'000};
  std::chrono::milliseconds drain_timeout{10'000};
  // TLS when set; plain HTTP only when explicitly left unset (dev mode on loopback).
  std::optional<tls::TlsOptions> tls;
  // Where answers the server had to replace (a handler that threw or returned an unframeable
  // answer) are logged; null logs nothing. Must outlive the server.
  const log::Logger* logs = nullptr;
};

// Failures the server answers itself, before (or instead of) a handler.
enum class ServerFault {
  kBadRequest,      // 400: malformed HTTP, or framing the server refuses (Host, Transfer-Encoding)
  kHeaderTooLarge,  // 431
  kBodyTooLarge,    // 413
  kOverloaded,      // max_in_flight reached
  kHandlerFailed,   // the handler threw
};

// Where a request's handler runs (see the contract above).
enum class Lane {
  kWorker,  // the worker pool, counted against max_in_flight
  kProbe,   // the worker pool, not counted against max_in_flight
  kInline,  // the network thread, at once: must not block
};

// Runs on a worker thread (or inline, see Lane); must not throw.
using Handler = std::function<HttpResponse(const HttpRequest&)>;
// Builds the response for a fault; runs on a network or worker thread, must be cheap and must not
// throw. `target` is the request-target as far as it has arrived (empty before the request line
// has): for choosing the door's format only, never to be echoed (it is the peer's bytes).
using FaultResponder = std::function<HttpResponse(ServerFault fault, std::string_view detail,
                                                  std::string_view target)>;
// Chooses a request's lane once its header is parsed; runs on a network thread, must be cheap and
// must not throw. Null: every request on kWorker.
using LaneSelector = std::function<Lane(const HttpRequest&)>;

// The default fault responses: plain-text bodies (`detail`) with 400/431/413/503/500.
HttpResponse DefaultFaultResponse(ServerFault fault, std::string_view detail,
                                  std::string_view target = {});

class Server {
 public:
  // Validates the config and loads TLS material; binds nothing yet.
  static StatusOr<std::unique_ptr<Server>> Create(ServerConfig config, Handler handler,
                                                  FaultResponder faults = DefaultFaultResponse,
                                                  LaneSelector lanes = nullptr);
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

  // Serves one connection whose bytes come from `transport` instead of the listener, running the
  // server's I/O on the calling thread, and returns once the connection has closed (its handlers
  // still run where their Lane says). For tests and fuzz targets: no socket, no network thread.
  // Only on a server that was never started (FailedPrecondition otherwise); `transport` must
  // complete its operations on `executor()`. The connection counts against the limits like one
  // the listener accepted from `peer` (a refused one is closed at once, and Ok is returned).
  Status ServeConnection(std::unique_ptr<Transport> transport, const boost::asio::ip::address& peer);
  // The executor of the server's I/O: what a transport given to ServeConnection must use.
  boost::asio::any_io_executor executor() const;

  class State;

 private:
  explicit Server(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

}  // namespace kms::api::http

#endif  // KMS_API_HTTP_SERVER_H_
