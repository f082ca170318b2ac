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
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/string_body.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iterator>
#include <limits>
#include <list>
#include <map>
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

HttpResponse DefaultFaultResponse(ServerFault fault, std::string_view detail,
                                  std::string_view /*target*/) {
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

bool IsTokenChar(char c) {
  // RFC 9110 §5.6.2 tchar.
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// Why `response` cannot go on the wire as it is, or null when it can.
const char* Unframeable(const HttpResponse& response) {
  // RFC 9110 §15.2: a 1xx is interim, never the final answer; 0 and 600+ are not HTTP statuses.
  if (response.status < 200 || response.status > 599) return "status outside 200-599";
  for (const auto& [name, value] : response.headers) {
    if (name.empty()) return "empty header name";
    for (const char c : name) {
      if (!IsTokenChar(c)) return "header name is not a token";
    }
    // A CR or LF would end the header early (response splitting); NUL is never allowed.
    if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
      return "header value with CR, LF or NUL";
    }
  }
  return nullptr;
}

// The headers the server writes itself: a handler's copies are dropped.
bool ServerOwnedHeader(std::string_view name) {
  return HeaderNameEquals(name, "content-length") || HeaderNameEquals(name, "connection") ||
         HeaderNameEquals(name, "date") || HeaderNameEquals(name, "transfer-encoding");
}

std::string_view Digits(std::uint64_t v, std::array<char, 24>& buf) {
  const auto end = std::to_chars(buf.data(), buf.data() + buf.size(), v).ptr;
  return std::string_view(buf.data(), static_cast<std::size_t>(end - buf.data()));
}

// Writes the whole response into `out` (cleared first), sized exactly beforehand so no
// reallocation leaves a partial copy of the body in freed memory. `head`: the request was HEAD.
void Serialize(const HttpResponse& response, bool close, bool head, std::string& out) {
  // RFC 9110 §15.3.5, §15.4.5, RFC 9112 §6.3: 204 and 304 end at the header, with no
  // Content-Length (§8.6: a 204 must not have one). An answer to HEAD ends there too (§9.3.2); it
  // keeps the Content-Length of the body the handler built, which is GET's, and has none when
  // the handler built none: GET's length is then unknown, and §8.6 forbids a wrong one.
  const bool no_content = response.status == 204 || response.status == 304;
  const bool send_body = !no_content && !head;
  const bool send_length = !no_content && !(head && response.body.empty());
  std::array<char, 24> status_buf;
  std::array<char, 24> length_buf;
  const std::string_view status = Digits(response.status, status_buf);
  const std::string_view length = Digits(response.body.size(), length_buf);
  const bhttp::status known = bhttp::int_to_status(response.status);
  const std::string_view reason = known == bhttp::status::unknown
                                      ? std::string_view()
                                      : std::string_view(bhttp::obsolete_reason(known));
  const std::string& date = HttpDate();
  using namespace std::string_view_literals;

  std::size_t size = "HTTP/1.1 "sv.size() + status.size() + 1 + reason.size() + 2;
  for (const auto& [n, v] : response.headers) {
    if (!ServerOwnedHeader(n)) size += n.size() + 2 + v.size() + 2;
  }
  size += "Date: "sv.size() + date.size() + 2;
  if (send_length) size += "Content-Length: "sv.size() + length.size() + 2;
  if (close) size += "Connection: close\r\n"sv.size();
  size += 2;
  if (send_body) size += response.body.size();

  out.clear();
  out.reserve(size);
  out += "HTTP/1.1 "sv;
  out += status;
  out += ' ';
  out += reason;
  out += "\r\n"sv;
  for (const auto& [n, v] : response.headers) {
    if (ServerOwnedHeader(n)) continue;
    out += n;
    out += ": "sv;
    out += v;
    out += "\r\n"sv;
  }
  out += "Date: "sv;
  out += date;
  out += "\r\n"sv;
  if (send_length) {
    out += "Content-Length: "sv;
    out += length;
    out += "\r\n"sv;
  }
  if (close) out += "Connection: close\r\n"sv;
  out += "\r\n"sv;
  if (send_body) out += response.body;
}

// Bytes read from one connection and not yet taken by the parser. Reads land in the free tail;
// the parser takes from the head; every byte it takes is wiped at once, and so is every place a
// byte leaves when the unread rest moves to the front. The storage's allocator wipes it when it
// grows or dies. Its size is bounded by the session's checks (see the contract in server.h).
class InputBuffer {
 public:
  static constexpr std::size_t kReadSize = 16 * 1024;

  std::string_view unread() const {
    return std::string_view(bytes_.data() + begin_, end_ - begin_);
  }
  std::size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }

  // The parser took the first `n` unread bytes.
  void Consume(std::size_t n) {
    SecureWipe(bytes_.data() + begin_, n);
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  // Room for one read of up to kReadSize bytes after the unread ones.
  asio::mutable_buffer Prepare() {
    if (begin_ > 0) {
      const std::size_t n = size();
      std::memmove(bytes_.data(), bytes_.data() + begin_, n);
      SecureWipe(bytes_.data() + n, end_ - n);  // what the move left behind
      begin_ = 0;
      end_ = n;
    }
    if (bytes_.size() < end_ + kReadSize) bytes_.resize(end_ + kReadSize);
    return asio::buffer(bytes_.data() + end_, kReadSize);
  }
  void Commit(std::size_t n) { end_ += n; }

 private:
  std::vector<char, ZeroizingAllocator<char>> bytes_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

// Beast's string_body, but a body that grows moves to its new buffer and wipes the old one:
// std::string's own growth would free the old bytes (base64 plaintexts) as they are. Content-Length
// bodies are reserved once, within body_limit (Beast checks the length against it first).
struct WipingStringBody {
  using value_type = std::string;
  static std::uint64_t size(const value_type& body) { return body.size(); }

  class reader {
   public:
    template <bool isRequest, class Fields>
    reader(bhttp::header<isRequest, Fields>&, value_type& body) : body_(body) {}

    void init(const boost::optional<std::uint64_t>& length, error_code& ec) {
      ec = {};
      if (length) Grow(static_cast<std::size_t>(*length));
    }
    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, error_code& ec) {
      ec = {};
      const std::size_t extra = beast::buffer_bytes(buffers);
      if (body_.size() + extra > body_.capacity()) {
        Grow(std::max(body_.size() + extra, 2 * body_.capacity()));
      }
      for (const auto b : beast::buffers_range_ref(buffers)) {
        body_.append(static_cast<const char*>(b.data()), b.size());
      }
      return extra;
    }
    void finish(error_code& ec) { ec = {}; }

   private:
    void Grow(std::size_t capacity) {
      if (capacity <= body_.capacity()) return;
      std::string bigger;
      bigger.reserve(capacity);
      bigger.append(body_);
      WipeString(body_);
      body_.swap(bigger);
    }
    value_type& body_;
  };
};

// Header storage (the parser's fields) is wiped when freed: X-Vault-Token and friends live there.
using RequestParser = bhttp::request_parser<WipingStringBody, ZeroizingAllocator<char>>;

void WipeRequest(HttpRequest& request) {
  WipeString(request.body);
  for (auto& header : request.headers) WipeString(header.second);
}

bool TokenEquals(std::string_view a, std::string_view b) { return HeaderNameEquals(a, b); }

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Counts the codings of one Transfer-Encoding value (RFC 9110 §5.6.1: empty list elements are
// skipped) and how many of them are exactly `chunked`.
void CountCodings(std::string_view value, std::size_t& codings, std::size_t& chunked) {
  while (true) {
    const auto comma = value.find(',');
    const std::string_view element = TrimOws(value.substr(0, comma));
    if (!element.empty()) {
      ++codings;
      if (TokenEquals(element, "chunked")) ++chunked;
    }
    if (comma == std::string_view::npos) return;
    value.remove_prefix(comma + 1);
  }
}

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

}  // namespace

// ---- State and Session --------------------------------------------------------------------------------

class Session;

class Server::State : public std::enable_shared_from_this<Server::State> {
 public:
  State(ServerConfig config, Handler handler, FaultResponder faults, LaneSelector lanes,
        std::shared_ptr<tls::TlsContext> tls)
      : config_(std::move(config)),
        handler_(std::move(handler)),
        faults_(std::move(faults)),
        lanes_(std::move(lanes)),
        tls_(std::move(tls)),
        workers_(config_.worker_threads),
        acceptor_(asio::make_strand(ioc_)) {}

  Status Start();
  void Stop();
  void Accept();
  void Accepted(tcp::socket socket);
  // Counts a connection from `peer` against max_connections and max_connections_per_peer; false
  // (and nothing counted) when either is reached.
  bool Admit(const asio::ip::address& peer);
  // Starts the session of an admitted connection.
  void Serve(std::unique_ptr<Transport> transport, const asio::ip::address& peer);

  void Register(const std::shared_ptr<Session>& s);
  void Unregister(const asio::ip::address& peer);

  // Runs the handler and returns what may go on the wire: its answer, or the kHandlerFailed fault
  // when it threw or answered something that cannot be framed.
  HttpResponse Run(const HttpRequest& request) const;

  ServerConfig config_;
  Handler handler_;
  FaultResponder faults_;
  LaneSelector lanes_;
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
  std::map<asio::ip::address, std::size_t> peers_;  // open connections per remote address
  std::list<std::weak_ptr<Session>> registry_;
};

HttpResponse Server::State::Run(const HttpRequest& request) const {
  HttpResponse response;
  try {
    response = handler_(request);
  } catch (...) {
    // Not the exception's text: it may echo request bytes.
    if (config_.logs != nullptr) config_.logs->Error("handler threw; answered 500");
    return faults_(ServerFault::kHandlerFailed, "Internal server error.", request.target);
  }
  if (const char* problem = Unframeable(response)) {
    if (config_.logs != nullptr) {
      config_.logs->Error("handler answer cannot be framed; answered 500",
                          {{"reason", problem}, {"status", response.status}});
    }
    WipeString(response.body);
    return faults_(ServerFault::kHandlerFailed, "Internal server error.", request.target);
  }
  return response;
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(std::shared_ptr<Server::State> state, std::unique_ptr<Transport> transport,
          asio::ip::address peer)
      : state_(std::move(state)),
        transport_(std::move(transport)),
        timer_(transport_->socket().get_executor()),
        peer_(peer),
        remote_address_(peer.to_string()) {}
  ~Session() {
    // A request cut short (a fault mid-body, a peer gone) leaves its partial body in the parser.
    if (parser_) WipeString(parser_->get().body());
    state_->Unregister(peer_);
  }

  void Start() {
    ArmTimer(state_->config_.header_timeout);
    transport_->AsyncHandshake([self = shared_from_this()](error_code ec) {
      if (ec) return self->Close();
      self->BeginRequest();
    });
  }

  // Posted onto the strand by Server::Stop.
  void OnStop() {
    if (idle_ && input_.empty()) Close();
  }
  void ForceClose() { Close(); }

  asio::any_io_executor executor() { return transport_->socket().get_executor(); }

 private:
  enum class Phase { kHeader, kBody };

  void BeginRequest() {
    if (state_->stopping_) return Close();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(state_->config_.header_limit));
    parser_->body_limit(state_->config_.body_limit);
    // Not eager while the header is parsed: the header checks (Host, Transfer-Encoding, Expect)
    // run before a byte of the body is taken.
    parser_->eager(false);
    phase_ = Phase::kHeader;
    header_bytes_ = 0;
    head_request_ = false;
    expect_continue_ = false;
    idle_ = input_.empty();
    ArmTimer(state_->config_.header_timeout);
    if (!input_.empty()) {
      Parse();
    } else {
      Read();
    }
  }

  void Read() {
    transport_->AsyncReadSome(input_.Prepare(),
                              [self = shared_from_this()](error_code ec, std::size_t n) {
                                if (ec) return self->Close();
                                self->idle_ = false;
                                self->input_.Commit(n);
                                self->Parse();
                              });
  }

  // Gives the parser the unread bytes; the bytes it takes are wiped.
  std::size_t Put(error_code& ec) {
    const std::string_view unread = input_.unread();
    const std::size_t used = parser_->put(asio::buffer(unread.data(), unread.size()), ec);
    input_.Consume(used);
    return used;
  }

  void Parse() {
    const ServerConfig& config = state_->config_;
    error_code ec;
    if (phase_ == Phase::kHeader) {
      // Beast takes the start line and whole header lines as they come and holds back the rest;
      // its header_limit applies to each call's bytes only, so the limit is counted here across
      // every read (a peer sending a line at a time would otherwise grow the header forever).
      header_bytes_ += Put(ec);
      if (ec == bhttp::error::need_more) {
        if (header_bytes_ + input_.size() > config.header_limit) {
          return Fault(bhttp::error::header_limit);
        }
        return Read();
      }
      if (!ec && header_bytes_ > config.header_limit) ec = bhttp::error::header_limit;
      if (ec) return Fault(ec);
      if (!CheckHeader()) return;
      phase_ = Phase::kBody;
      if (!parser_->is_done()) {
        ArmTimer(config.body_timeout);
        parser_->eager(true);
        // RFC 9110 §10.1.1: the client waits for 100 before it sends the body; one that already
        // sent some of it did not wait, and needs none.
        if (expect_continue_ && input_.empty()) return SendContinue();
      }
    }
    while (!parser_->is_done() && !input_.empty()) {
      const std::size_t used = Put(ec);
      if (ec == bhttp::error::need_more) break;
      if (ec) return Fault(ec);
      if (used == 0) break;
    }
    if (parser_->is_done()) {
      // Beast adds a chunked body's trailer fields to the header's, where the handler would take
      // them for header fields the client signed (a second Host, an X-Amz-Target). No client of
      // these doors sends trailers, and RFC 9110 §6.5.1 lets a recipient refuse them.
      if (FieldCount() != header_fields_) {
        return Fault(ServerFault::kBadRequest, "Trailer fields are not accepted.");
      }
      return Dispatch();
    }
    // In the body, Beast holds back only an unfinished chunk-size line (with its extensions) or
    // the trailer section, asking for more without limit: bound them here.
    if (input_.size() > config.chunk_header_limit) {
      return Fault(ServerFault::kBadRequest, "Chunk header exceeds " +
                                                 std::to_string(config.chunk_header_limit) +
                                                 " bytes.");
    }
    Read();
  }

  // The framing rules of RFC 9112 that Beast leaves to the server (see server.h). Answers the
  // fault itself and returns false when the header is refused.
  bool CheckHeader() {
    const auto& msg = parser_->get();
    head_request_ = msg.method() == bhttp::verb::head;
    std::size_t hosts = 0, transfer_encodings = 0, codings = 0, chunked = 0;
    bool content_length = false, expect_continue = false;
    for (const auto& field : msg) {
      switch (field.name()) {
        case bhttp::field::host: ++hosts; break;
        case bhttp::field::content_length: content_length = true; break;
        case bhttp::field::transfer_encoding:
          ++transfer_encodings;
          CountCodings(field.value(), codings, chunked);
          break;
        case bhttp::field::expect:
          expect_continue = TokenEquals(TrimOws(field.value()), "100-continue");
          break;
        default: break;
      }
    }
    const bool http11 = msg.version() >= 11;
    // RFC 9112 §3.2: exactly one Host in HTTP/1.1; HTTP/1.0 predates Host and may omit it.
    if (hosts > 1 || (http11 && hosts == 0)) {
      Fault(ServerFault::kBadRequest, "Exactly one Host header is required.");
      return false;
    }
    if (transfer_encodings > 0) {
      // RFC 9112 §6.1, §6.3: chunked must be the final coding (else 400), an unknown coding is
      // not understood (501, or 400), HTTP/1.0 has no transfer codings, and Transfer-Encoding
      // beside Content-Length is a smuggling attempt. All are 400 and close.
      if (content_length) {
        Fault(ServerFault::kBadRequest, "Content-Length and Transfer-Encoding together.");
        return false;
      }
      if (!http11 || codings != 1 || chunked != 1) {
        Fault(ServerFault::kBadRequest, "Transfer-Encoding other than chunked is not supported.");
        return false;
      }
    }
    // RFC 9110 §10.1.1: an HTTP/1.0 client's 100-continue is ignored.
    expect_continue_ = expect_continue && http11;
    header_fields_ = FieldCount();
    return true;
  }

  std::size_t FieldCount() const {
    const auto& msg = parser_->get();
    return static_cast<std::size_t>(std::distance(msg.begin(), msg.end()));
  }

  void SendContinue() {
    // The body timer already runs: it bounds this write and the body both.
    transport_->AsyncWrite(asio::buffer(kContinue.data(), kContinue.size()),
                           [self = shared_from_this()](error_code ec, std::size_t) {
                             if (ec) return self->Close();
                             self->Read();
                           });
  }

  void Fault(error_code ec) {
    const ServerConfig& config = state_->config_;
    if (ec == bhttp::error::header_limit) {
      return Fault(ServerFault::kHeaderTooLarge,
                   "Request header exceeds " + std::to_string(config.header_limit) + " bytes.");
    }
    if (ec == bhttp::error::body_limit) {
      return Fault(ServerFault::kBodyTooLarge,
                   "Request body exceeds " + std::to_string(config.body_limit) + " bytes.");
    }
    Fault(ServerFault::kBadRequest, "Malformed HTTP request.");
  }

  void Fault(ServerFault fault, std::string_view detail) {
    close_after_write_ = true;
    const auto [method, target] = KnownRequestLine();
    head_request_ = method == "HEAD";
    HttpResponse response = state_->faults_(fault, detail, target);
    Write(response);
  }

  // The method and target of the request being read, as far as they are known: from the parser
  // once it has taken the request line, else from the bytes of it that have arrived.
  std::pair<std::string_view, std::string_view> KnownRequestLine() const {
    if (parser_ && parser_->got_some() && !parser_->get().target().empty()) {
      const auto& msg = parser_->get();
      return {msg.method_string(), msg.target()};
    }
    std::string_view raw = input_.unread();
    const auto space = raw.find(' ');
    if (space == std::string_view::npos || space == 0) return {};
    const std::string_view method = raw.substr(0, space);
    raw.remove_prefix(space + 1);
    return {method, raw.substr(0, raw.find_first_of(" \r\n"))};
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
    WipeString(msg.body());  // a short body lives inside the string: the move copied it
    req.remote_address = remote_address_;
    close_after_write_ = !msg.keep_alive();

    const Lane lane = state_->lanes_ ? state_->lanes_(req) : Lane::kWorker;
    if (lane == Lane::kInline) {
      HttpResponse response = state_->Run(req);
      WipeRequest(req);
      return Write(response);
    }
    const bool counted = lane == Lane::kWorker;
    if (counted && state_->in_flight_.fetch_add(1) >= state_->config_.max_in_flight) {
      state_->in_flight_.fetch_sub(1);
      HttpResponse busy = state_->faults_(ServerFault::kOverloaded,
                                          "Too many requests in flight; retry later.", req.target);
      WipeRequest(req);
      return Write(busy);
    }
    // Handlers block on the HSM: run them on the worker pool, then come back to the strand.
    asio::post(state_->workers_,
               [self = shared_from_this(), req = std::move(req), counted]() mutable {
                 HttpResponse response = self->state_->Run(req);
                 // Bodies carry plaintexts and data keys (base64) in both directions, headers
                 // carry tokens: wipe our copies once they are no longer needed.
                 WipeRequest(req);
                 asio::post(self->executor(),
                            [self, counted, response = std::move(response)]() mutable {
                              if (counted) self->state_->in_flight_.fetch_sub(1);
                              self->Write(response);
                            });
               });
  }

  void Write(HttpResponse& response) {
    if (state_->stopping_) close_after_write_ = true;
    Serialize(response, close_after_write_, head_request_, outbuf_);
    WipeString(response.body);
    ArmTimer(state_->config_.write_timeout);
    transport_->AsyncWrite(asio::buffer(outbuf_),
                           [self = shared_from_this()](error_code ec, std::size_t) {
                             // Every byte past size() was wiped after an earlier write: wipe only
                             // this response, and keep the capacity for the next one.
                             SecureWipe(self->outbuf_.data(), self->outbuf_.size());
                             self->outbuf_.clear();
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
  const asio::ip::address peer_;
  InputBuffer input_;  // bytes read but not yet parsed (pipelining)
  std::optional<RequestParser> parser_;
  Phase phase_ = Phase::kHeader;
  std::size_t header_bytes_ = 0;  // header bytes the parser has taken for this request
  std::size_t header_fields_ = 0;  // fields in the header, before any trailer adds its own
  std::string outbuf_;
  const std::string remote_address_;  // peer IP, for logs and audit
  bool head_request_ = false;         // the answer being built is to a HEAD request
  bool expect_continue_ = false;
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

void Server::State::Unregister(const asio::ip::address& peer) {
  std::lock_guard lock(mu_);
  --sessions_;
  if (auto it = peers_.find(peer); it != peers_.end() && --it->second == 0) peers_.erase(it);
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
        if (!ec) self->Accepted(std::move(socket));
        self->Accept();
      });
}

bool Server::State::Admit(const asio::ip::address& peer) {
  std::lock_guard lock(mu_);
  const auto it = peers_.find(peer);
  const std::size_t from_peer = it == peers_.end() ? 0 : it->second;
  if (sessions_ >= config_.max_connections || from_peer >= config_.max_connections_per_peer) {
    return false;
  }
  ++sessions_;
  ++peers_[peer];
  return true;
}

void Server::State::Accepted(tcp::socket socket) {
  error_code ec;
  const auto remote = socket.remote_endpoint(ec);
  if (ec) {  // the peer is gone already
    socket.close(ec);
    return;
  }
  const asio::ip::address peer = remote.address();
  if (!Admit(peer)) {
    // Beyond max_connections or the peer's share: refuse by closing at once, before a byte is
    // read or a TLS handshake is paid for.
    socket.close(ec);
    return;
  }
  socket.set_option(tcp::no_delay(true), ec);
  std::unique_ptr<Transport> transport;
  if (tls_) {
    transport = std::make_unique<tls::TlsTransport>(std::move(socket), tls_);
  } else {
    transport = std::make_unique<PlainTransport>(std::move(socket));
  }
  Serve(std::move(transport), peer);
}

void Server::State::Serve(std::unique_ptr<Transport> transport, const asio::ip::address& peer) {
  auto session = std::make_shared<Session>(shared_from_this(), std::move(transport), peer);
  Register(session);
  session->Start();
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
                                                 FaultResponder faults, LaneSelector lanes) {
  if (!handler) return InvalidArgumentError("server needs a handler");
  if (!faults) faults = DefaultFaultResponse;
  if (config.network_threads == 0 || config.worker_threads == 0 || config.max_connections == 0 ||
      config.max_connections_per_peer == 0 || config.max_in_flight == 0 ||
      config.header_limit == 0 || config.chunk_header_limit == 0) {
    return InvalidArgumentError("thread counts and limits must be positive");
  }
  if (config.header_limit > std::numeric_limits<std::uint32_t>::max()) {
    return InvalidArgumentError("header_limit must fit in 32 bits");
  }
  std::shared_ptr<tls::TlsContext> tls;
  if (config.tls) {
    KMS_ASSIGN_OR_RETURN(tls, tls::TlsContext::Create(*config.tls));
  }
  auto state = std::make_shared<State>(std::move(config), std::move(handler), std::move(faults),
                                       std::move(lanes), std::move(tls));
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

Status Server::ServeConnection(std::unique_ptr<Transport> transport,
                               const asio::ip::address& peer) {
  State& state = *state_;
  if (state.started_) return FailedPreconditionError("ServeConnection on a started server");
  if (!state.Admit(peer)) {
    transport->Close();
    return Status::Ok();
  }
  // The session ends with its last pending operation; the guard keeps run_one waiting while a
  // handler is away on the worker pool. The session may be released on a worker thread, after
  // that thread's last post: the bounded wait notices it without a wake-up from there.
  const auto guard = asio::make_work_guard(state.ioc_);
  state.ioc_.restart();
  state.Serve(std::move(transport), peer);
  while (connection_count() > 0) state.ioc_.run_one_for(std::chrono::milliseconds(1));
  // Completions of the closed session that hold nothing (cancelled waits) run now, not on a later
  // connection's turn.
  state.ioc_.poll();
  return Status::Ok();
}

asio::any_io_executor Server::executor() const { return state_->ioc_.get_executor(); }

}  // namespace kms::api::http
