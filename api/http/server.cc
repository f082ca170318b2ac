#include "api/http/server.h"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <list>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "api/http/transport.h"
#include "api/tls/tls_transport.h"
#include "base/secret_bytes.h"

namespace kms::api::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

// ---- PlainTransport ---------------------------------------------------------------------------------

void PlainTransport::AsyncHandshake(HandshakeCallback done) {
  asio::post(socket_.get_executor(), [done = std::move(done)] { done(error_code()); });
}
void PlainTransport::AsyncReadSome(asio::mutable_buffer buffer, IoCallback done) {
  socket_.async_read_some(buffer, std::move(done));
}
void PlainTransport::AsyncWrite(asio::const_buffer buffer, IoCallback done) {
  asio::async_write(socket_, buffer, std::move(done));
}
void PlainTransport::Close() {
  error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
}

// ---- fault responses --------------------------------------------------------------------------------

HttpResponse DefaultFaultResponse(ServerFault fault, std::string_view detail) {
  HttpResponse r;
  switch (fault) {
    case ServerFault::kBadRequest: r.status = 400; break;
    case ServerFault::kHeaderTooLarge: r.status = 431; break;
    case ServerFault::kBodyTooLarge: r.status = 413; break;
    case ServerFault::kOverloaded: r.status = 503; break;
    case ServerFault::kHandlerFailed: r.status = 500; break;
  }
  r.headers.emplace_back("Content-Type", "text/plain");
  r.body = std::string(detail) + "\n";
  return r;
}

namespace {

// RFC 7231 §7.1.1.2: an origin server with a clock sends Date (IMF-fixdate). SDKs also use it to
// detect clock skew. Formatted once per second per thread.
const std::string& HttpDate() {
  thread_local std::time_t cached_at = 0;
  thread_local std::string cached;
  const std::time_t now = std::time(nullptr);
  if (now != cached_at) {
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cached = buf;
    cached_at = now;
  }
  return cached;
}

std::string Serialize(const HttpResponse& response, bool close) {
  std::string out;
  out.reserve(128 + response.body.size() + 64 * response.headers.size());
  out += "HTTP/1.1 ";
  out += std::to_string(response.status);
  out += ' ';
  out += std::string_view(bhttp::obsolete_reason(bhttp::int_to_status(response.status)));
  out += "\r\n";
  for (const auto& [n, v] : response.headers) {
    if (HeaderNameEquals(n, "content-length") || HeaderNameEquals(n, "connection") ||
        HeaderNameEquals(n, "date")) {
      continue;
    }
    out += n;
    out += ": ";
    out += v;
    out += "\r\n";
  }
  out += "Date: ";
  out += HttpDate();
  out += "\r\n";
  out += "Content-Length: ";
  out += std::to_string(response.body.size());
  out += "\r\n";
  if (close) out += "Connection: close\r\n";
  out += "\r\n";
  out += response.body;
  return out;
}

}  // namespace

// ---- State and Session --------------------------------------------------------------------------------

class Session;

class Server::State : public std::enable_shared_from_this<Server::State> {
 public:
  State(ServerConfig config, Handler handler, FaultResponder faults,
        std::shared_ptr<tls::TlsContext> tls)
      : config_(std::move(config)),
        handler_(std::move(handler)),
        faults_(std::move(faults)),
        tls_(std::move(tls)),
        workers_(config_.worker_threads),
        acceptor_(asio::make_strand(ioc_)) {}

  Status Start();
  void Stop();
  void Accept();

  void Register(const std::shared_ptr<Session>& s);
  void Unregister();

  ServerConfig config_;
  Handler handler_;
  FaultResponder faults_;
  std::shared_ptr<tls::TlsContext> tls_;
  asio::io_context ioc_;
  // Keeps the network threads running while a request is away on the worker pool and no socket
  // operation is pending (otherwise io_context::run would return and the response would never go out).
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  asio::thread_pool workers_;
  tcp::acceptor acceptor_;
  std::vector<std::thread> threads_;
  std::atomic<std::uint16_t> port_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<std::size_t> in_flight_{0};
  bool started_ = false;
  bool stopped_ = false;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::size_t sessions_ = 0;
  std::list<std::weak_ptr<Session>> registry_;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(std::shared_ptr<Server::State> state, std::unique_ptr<Transport> transport)
      : state_(std::move(state)),
        transport_(std::move(transport)),
        timer_(transport_->socket().get_executor()) {}
  ~Session() { state_->Unregister(); }

  void Start() {
    // The peer of a connection does not change: ask the kernel once (getpeername), not per request.
    error_code peer_ec;
    const auto remote = transport_->socket().remote_endpoint(peer_ec);
    if (!peer_ec) remote_address_ = remote.address().to_string();
    ArmTimer(state_->config_.header_timeout);
    transport_->AsyncHandshake([self = shared_from_this()](error_code ec) {
      if (ec) return self->Close();
      self->BeginRequest();
    });
  }

  // Posted onto the strand by Server::Stop.
  void OnStop() {
    if (idle_ && pending_.empty()) Close();
  }
  void ForceClose() { Close(); }

  asio::any_io_executor executor() { return transport_->socket().get_executor(); }

 private:
  void BeginRequest() {
    if (state_->stopping_) return Close();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(state_->config_.header_limit));
    parser_->body_limit(state_->config_.body_limit);
    parser_->eager(true);
    body_phase_ = false;
    idle_ = pending_.empty();
    ArmTimer(state_->config_.header_timeout);
    if (!pending_.empty()) {
      Parse();
    } else {
      Read();
    }
  }

  void Read() {
    transport_->AsyncReadSome(asio::buffer(readbuf_),
                              [self = shared_from_this()](error_code ec, std::size_t n) {
                                if (ec) return self->Close();
                                self->idle_ = false;
                                self->pending_.append(self->readbuf_.data(), n);
                                self->Parse();
                              });
  }

  void Parse() {
    while (!pending_.empty() && !parser_->is_done()) {
      error_code ec;
      const std::size_t used = parser_->put(asio::buffer(pending_), ec);
      pending_.erase(0, used);
      if (ec == bhttp::error::need_more) break;
      if (ec) return Fault(ec);
      if (used == 0) break;
    }
    if (parser_->is_header_done() && !body_phase_ && !parser_->is_done()) {
      body_phase_ = true;
      ArmTimer(state_->config_.body_timeout);
    }
    if (parser_->is_done()) return Dispatch();
    // Beast needs the whole header in one buffer; stop a peer from growing it without bound.
    if (!parser_->is_header_done() && pending_.size() > state_->config_.header_limit) {
      return Fault(bhttp::error::header_limit);
    }
    Read();
  }

  void Fault(error_code ec) {
    ServerFault fault = ServerFault::kBadRequest;
    std::string detail = "Malformed HTTP request.";
    if (ec == bhttp::error::header_limit) {
      fault = ServerFault::kHeaderTooLarge;
      detail = "Request header exceeds " + std::to_string(state_->config_.header_limit) + " bytes.";
    } else if (ec == bhttp::error::body_limit) {
      fault = ServerFault::kBodyTooLarge;
      detail = "Request body exceeds " + std::to_string(state_->config_.body_limit) + " bytes.";
    }
    close_after_write_ = true;
    HttpResponse response = state_->faults_(fault, detail);
    Write(response);
  }

  void Dispatch() {
    CancelTimer();
    auto msg = parser_->release();
    HttpRequest req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    for (const auto& field : msg) {
      req.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    req.body = std::move(msg.body());
    req.remote_address = remote_address_;
    close_after_write_ = !msg.keep_alive();

    if (state_->in_flight_.fetch_add(1) >= state_->config_.max_in_flight) {
      state_->in_flight_.fetch_sub(1);
      HttpResponse busy =
          state_->faults_(ServerFault::kOverloaded, "Too many requests in flight; retry later.");
      return Write(busy);
    }
    // Handlers block on the HSM: run them on the worker pool, then come back to the strand.
    asio::post(state_->workers_, [self = shared_from_this(), req = std::move(req)]() mutable {
      HttpResponse response;
      try {
        response = self->state_->handler_(req);
      } catch (...) {
        response = self->state_->faults_(ServerFault::kHandlerFailed, "Internal server error.");
      }
      // Bodies carry plaintexts and data keys (base64) in both directions: wipe our copies once
      // they are no longer needed (CONVENTIONS.md "Secrets").
      WipeString(req.body);
      asio::post(self->executor(), [self, response = std::move(response)]() mutable {
        self->state_->in_flight_.fetch_sub(1);
        self->Write(response);
      });
    });
  }

  void Write(HttpResponse& response) {
    if (state_->stopping_) close_after_write_ = true;
    outbuf_ = Serialize(response, close_after_write_);
    WipeString(response.body);
    ArmTimer(state_->config_.write_timeout);
    transport_->AsyncWrite(asio::buffer(outbuf_),
                           [self = shared_from_this()](error_code ec, std::size_t) {
                             WipeString(self->outbuf_);
                             if (ec || self->close_after_write_) return self->Close();
                             self->BeginRequest();
                           });
  }

  // One deadline per connection, enforced lazily: arming only moves `deadline_` (two per request),
  // and the Asio timer is re-programmed only when the new deadline is earlier than the pending
  // wait.
  // When the wait ends, a deadline that has moved later is waited for again; a passed one closes.
  void ArmTimer(std::chrono::milliseconds d) {
    deadline_ = std::chrono::steady_clock::now() + d;
    if (timer_waiting_ && deadline_ >= timer_.expiry()) return;
    StartTimerWait();
  }
  void StartTimerWait() {
    const std::uint64_t gen = ++timer_gen_;
    timer_waiting_ = true;
    timer_.expires_at(deadline_);
    timer_.async_wait([self = shared_from_this(), gen](error_code ec) {
      if (ec || gen != self->timer_gen_ || self->closed_) return;  // superseded or closed
      self->timer_waiting_ = false;
      if (self->deadline_ == kDisarmed) return;  // a handler is running; re-armed when it answers
      if (std::chrono::steady_clock::now() < self->deadline_) return self->StartTimerWait();
      self->Close();
    });
  }
  void CancelTimer() { deadline_ = kDisarmed; }
  void Close() {
    if (closed_) return;
    closed_ = true;
    CancelTimer();
    ++timer_gen_;
    timer_.cancel();
    transport_->Close();
  }

  std::shared_ptr<Server::State> state_;
  std::unique_ptr<Transport> transport_;
  static constexpr std::chrono::steady_clock::time_point kDisarmed =
      std::chrono::steady_clock::time_point::max();
  asio::steady_timer timer_;
  std::uint64_t timer_gen_ = 0;  // identifies the current wait; older completions are ignored
  std::chrono::steady_clock::time_point deadline_ = kDisarmed;
  bool timer_waiting_ = false;  // an async_wait of generation timer_gen_ is pending
  std::array<char, 16 * 1024> readbuf_{};
  std::string pending_;  // bytes read but not yet parsed (pipelining)
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::string outbuf_;
  std::string remote_address_;  // peer IP, empty if the kernel could not say
  bool body_phase_ = false;
  bool idle_ = true;
  bool close_after_write_ = false;
  bool closed_ = false;
};

void Server::State::Register(const std::shared_ptr<Session>& s) {
  std::lock_guard lock(mu_);
  // Drop entries of finished sessions as we go, so the list stays as long as the live set.
  for (auto it = registry_.begin(); it != registry_.end();) {
    it = it->expired() ? registry_.erase(it) : std::next(it);
  }
  registry_.push_back(s);
}

void Server::State::Unregister() {
  std::lock_guard lock(mu_);
  --sessions_;
  cv_.notify_all();
}

Status Server::State::Start() {
  error_code ec;
  const auto address = asio::ip::make_address(config_.bind_address, ec);
  if (ec) return InvalidArgumentError("invalid bind address '" + config_.bind_address + "'");
  const tcp::endpoint endpoint(address, config_.port);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return UnavailableError("cannot listen on " + config_.bind_address + ":" +
                            std::to_string(config_.port) + ": " + ec.message());
  }
  port_ = acceptor_.local_endpoint().port();
  work_.emplace(ioc_.get_executor());
  asio::dispatch(acceptor_.get_executor(), [self = shared_from_this()] { self->Accept(); });
  for (std::size_t i = 0; i < config_.network_threads; ++i) {
    threads_.emplace_back([self = shared_from_this()] { self->ioc_.run(); });
  }
  return Status::Ok();
}

void Server::State::Accept() {
  acceptor_.async_accept(
      asio::make_strand(ioc_), [self = shared_from_this()](error_code ec, tcp::socket socket) {
        if (self->stopping_ || !self->acceptor_.is_open()) return;
        if (!ec) {
          bool admit = false;
          {
            std::lock_guard lock(self->mu_);
            if (self->sessions_ < self->config_.max_connections) {
              ++self->sessions_;
              admit = true;
            }
          }
          if (!admit) {
            // Beyond max_connections: refuse by closing at once.
            error_code ignored;
            socket.close(ignored);
          } else {
            error_code ignored;
            socket.set_option(tcp::no_delay(true), ignored);
            std::unique_ptr<Transport> transport;
            if (self->tls_) {
              transport = std::make_unique<tls::TlsTransport>(std::move(socket), self->tls_);
            } else {
              transport = std::make_unique<PlainTransport>(std::move(socket));
            }
            auto session = std::make_shared<Session>(self, std::move(transport));
            self->Register(session);
            session->Start();
          }
        }
        self->Accept();
      });
}

void Server::State::Stop() {
  if (!started_ || stopped_) return;
  stopped_ = true;
  stopping_ = true;
  // 1. Stop accepting.
  asio::post(acceptor_.get_executor(), [self = shared_from_this()] {
    error_code ignored;
    self->acceptor_.close(ignored);
  });
  // 2. Close idle keep-alive connections; busy ones close after their response.
  std::vector<std::shared_ptr<Session>> live;
  {
    std::lock_guard lock(mu_);
    for (auto& w : registry_) {
      if (auto s = w.lock()) live.push_back(std::move(s));
    }
  }
  for (auto& s : live) asio::post(s->executor(), [s] { s->OnStop(); });
  live.clear();
  // 3. Drain.
  {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, config_.drain_timeout, [&] { return sessions_ == 0; });
    for (auto& w : registry_) {
      if (auto s = w.lock()) live.push_back(std::move(s));
    }
  }
  // 4. Whatever is left after the drain deadline is closed.
  for (auto& s : live) asio::post(s->executor(), [s] { s->ForceClose(); });
  live.clear();
  {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(2), [&] { return sessions_ == 0; });
  }
  workers_.join();
  work_.reset();
  ioc_.stop();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
  // Every socket and timer is closed by now; run their cancelled completions so the handlers (and
  // the sessions and state they hold) are released rather than left in the queue.
  ioc_.restart();
  ioc_.poll();
}

// ---- Server -----------------------------------------------------------------------------------------

Server::Server(std::shared_ptr<State> state) : state_(std::move(state)) {}

Server::~Server() { Stop(); }

StatusOr<std::unique_ptr<Server>> Server::Create(ServerConfig config, Handler handler,
                                                 FaultResponder faults) {
  if (!handler) return InvalidArgumentError("server needs a handler");
  if (!faults) faults = DefaultFaultResponse;
  if (config.network_threads == 0 || config.worker_threads == 0 || config.max_connections == 0 ||
      config.max_in_flight == 0) {
    return InvalidArgumentError("thread counts and limits must be positive");
  }
  std::shared_ptr<tls::TlsContext> tls;
  if (config.tls) {
    KMS_ASSIGN_OR_RETURN(tls, tls::TlsContext::Create(*config.tls));
  }
  auto state = std::make_shared<State>(std::move(config), std::move(handler), std::move(faults),
                                       std::move(tls));
  return std::unique_ptr<Server>(new Server(std::move(state)));
}

Status Server::Start() {
  if (state_->started_) return FailedPreconditionError("server already started");
  KMS_RETURN_IF_ERROR(state_->Start());
  state_->started_ = true;
  return Status::Ok();
}

void Server::Stop() { state_->Stop(); }

std::uint16_t Server::port() const { return state_->port_; }

std::size_t Server::connection_count() const {
  std::lock_guard lock(state_->mu_);
  return state_->sessions_;
}

}  // namespace kms::api::http
