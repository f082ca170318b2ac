// libFuzzer target: HTTP/1.1 request framing through the real server (api/http/server.{h,cc}): the
// request line and header, Host, Transfer-Encoding, chunked bodies and trailers, Content-Length,
// Expect: 100-continue, HEAD, pipelining, the header/body/chunk limits and the answers a handler
// may or may not frame. One connection per input, served from memory by
// http::Server::ServeConnection over a MemoryTransport (tests/support/memory_transport.h).
//
// Input: byte 0 chooses the server (bit 0: the handler runs inline rather than on the worker pool;
// bit 1: small limits, so 431, 413 and the chunk-line limit are reached by short inputs); byte 1
// is the read size (0: whole reads; n: the peer's bytes arrive n at a time); the rest is what the
// peer sends, then end of stream. The handler answers from the request it got: `X-Status: <n>`
// sets the status (any number, unframeable ones included), `X-Name`/`X-Value` add a header as
// given (CR, LF, NUL, non-token names included), `X-Throw` makes it throw, `X-Empty` gives an
// empty body; otherwise the body echoes the request's.
//
// Oracles (abort with the invariant's name):
//  - every byte written parses as a sequence of HTTP/1.1 responses: `HTTP/1.1 NNN reason`, header
//    lines `name: value` with token names and no CR/LF/NUL in values, one Date, at most one
//    Content-Length, no Transfer-Encoding, `Connection: close` only on the last one, interim
//    `100 Continue` only when the peer asked for it;
//  - each handler call gets exactly one answer, in order: its status and body, or the 500 fault
//    when the handler threw or its answer cannot be framed; no body (and no Content-Length) on
//    204 and 304; no body on HEAD, whose Content-Length is the handler's body length, or absent
//    when that is empty; otherwise Content-Length equals the body sent;
//  - an answer the server gave on its own (a refused request) is the last one, closes the
//    connection and carries its whole body (none, if it may answer a HEAD);
//  - no handler sees a request whose framing the server must refuse: two Host headers, a
//    Transfer-Encoding other than a lone `chunked` or one beside Content-Length, a body over the
//    limit or one whose length disagrees with Content-Length, a header over the limit;
//  - the session keeps the Transport contract and ends by itself once the input is exhausted
//    (no read after end of stream, a bounded number of reads and writes).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ip/address.hpp>

#include "api/http/message.h"
#include "api/http/server.h"
#include "tests/support/memory_transport.h"

namespace {

using kms::api::http::HttpRequest;
using kms::api::http::HttpResponse;
using kms::api::http::Lane;
using kms::api::http::Server;
using kms::api::http::ServerConfig;
using kms::api::http::ServerFault;

[[noreturn]] void Violated(const char* invariant, std::string_view detail = {}) {
  std::fprintf(stderr, "http_framing invariant violated: %s %.*s\n", invariant,
               static_cast<int>(std::min<std::size_t>(detail.size(), 200)), detail.data());
  std::abort();
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return kms::api::http::HeaderNameEquals(a, b);
}

bool ContainsIgnoreCase(std::string_view haystack, std::string_view needle) {
  if (needle.size() > haystack.size()) return false;
  for (std::size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
    if (EqualsIgnoreCase(haystack.substr(i, needle.size()), needle)) return true;
  }
  return false;
}

bool IsTchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The two server configurations an input chooses between.
ServerConfig Config(bool small_limits) {
  ServerConfig c;
  c.network_threads = 1;
  c.worker_threads = 1;
  if (small_limits) {
    c.header_limit = 256;
    c.body_limit = 64;
    c.chunk_header_limit = 32;
  }
  return c;
}

// What the handler was given and what it answered.
struct Call {
  std::string method;
  HttpResponse answer;  // as returned (before the server's checks)
  bool threw = false;
};

struct Run {
  const ServerConfig* config = nullptr;
  std::vector<Call> calls;
};

// The input being served. The handler reads it on a worker thread or inline; ServeConnection's
// posts order those accesses after the write here and before the reads after it returns.
Run* current = nullptr;

// The framing rules a request that reached a handler must satisfy (server.h's contract).
void CheckAdmitted(const HttpRequest& r, const ServerConfig& config) {
  std::size_t hosts = 0, transfer_encodings = 0, content_lengths = 0;
  std::string codings;
  std::size_t header_bytes = r.method.size() + r.target.size();
  for (const auto& [name, value] : r.headers) {
    header_bytes += name.size() + value.size();
    if (EqualsIgnoreCase(name, "host")) ++hosts;
    if (EqualsIgnoreCase(name, "transfer-encoding")) {
      ++transfer_encodings;
      codings += std::string(value) + ",";
    }
    if (EqualsIgnoreCase(name, "content-length")) {
      ++content_lengths;
      const std::string_view v = Trim(value);
      std::size_t n = 0;
      bool digits = !v.empty();
      for (char c : v) {
        if (c < '0' || c > '9' || n > (1u << 30)) {
          digits = false;
          break;
        }
        n = n * 10 + static_cast<std::size_t>(c - '0');
      }
      if (!digits || n != r.body.size()) Violated("handler saw a body that disagrees with Content-Length", value);
    }
  }
  if (hosts > 1) Violated("handler saw two Host headers");
  if (transfer_encodings > 0) {
    if (content_lengths > 0) Violated("handler saw Transfer-Encoding beside Content-Length");
    std::size_t elements = 0, chunked = 0;
    std::string_view rest = codings;
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      const std::string_view e = Trim(rest.substr(0, comma));
      if (!e.empty()) {
        ++elements;
        if (EqualsIgnoreCase(e, "chunked")) ++chunked;
      }
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
    if (elements != 1 || chunked != 1) Violated("handler saw a transfer coding other than chunked", codings);
  } else if (content_lengths == 0 && !r.body.empty()) {
    Violated("handler saw a body with neither Content-Length nor chunked");
  }
  if (r.body.size() > config.body_limit) Violated("handler saw a body over body_limit");
  if (header_bytes > config.header_limit) Violated("handler saw a header over header_limit");
}

HttpResponse Handle(const HttpRequest& r) {
  Run& run = *current;
  CheckAdmitted(r, *run.config);
  Call call;
  call.method = r.method;
  HttpResponse& a = call.answer;
  a.headers.emplace_back("X-Fuzz-Call", std::to_string(run.calls.size()));
  std::optional<std::string_view> name;
  std::optional<std::string_view> value;
  bool empty = false;
  bool do_throw = false;
  for (const auto& [n, v] : r.headers) {
    if (EqualsIgnoreCase(n, "x-status")) {
      unsigned status = 0;
      for (char c : v) {
        if (c < '0' || c > '9') break;
        status = status * 10 + static_cast<unsigned>(c - '0');
        if (status > 100000) break;
      }
      a.status = status;
    } else if (EqualsIgnoreCase(n, "x-name")) {
      name = v;
    } else if (EqualsIgnoreCase(n, "x-value")) {
      value = v;
    } else if (EqualsIgnoreCase(n, "x-empty")) {
      empty = true;
    } else if (EqualsIgnoreCase(n, "x-throw")) {
      do_throw = true;
    }
  }
  // A header the server owns (Content-Length, Connection, ...) is dropped; others go out as
  // given, or make the answer unframeable.
  if (name || value) {
    std::string n(name.value_or("X-Fuzz"));
    // The oracle's own markers are not the peer's to set.
    if (ContainsIgnoreCase(n, "x-fuzz-")) n = "X-Renamed";
    a.headers.emplace_back(std::move(n), std::string(value.value_or("")));
  }
  if (!empty) a.body = "body:" + r.body;
  call.threw = do_throw;
  run.calls.push_back(call);
  if (do_throw) throw std::runtime_error("handler asked to throw");
  return a;
}

HttpResponse Fault(ServerFault fault, std::string_view detail, std::string_view target) {
  HttpResponse r = kms::api::http::DefaultFaultResponse(fault, detail, target);
  r.headers.emplace_back("X-Fuzz-Fault", std::to_string(static_cast<int>(fault)));
  return r;
}

// Whether the server's checks let a handler's answer out as it is (server.h: statuses 200-599,
// token header names, no CR, LF or NUL in values).
bool Frameable(const HttpResponse& r) {
  if (r.status < 200 || r.status > 599) return false;
  for (const auto& [n, v] : r.headers) {
    if (n.empty()) return false;
    for (char c : n) {
      if (!IsTchar(c)) return false;
    }
    if (v.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) return false;
  }
  return true;
}

bool ServerOwned(std::string_view n) {
  return EqualsIgnoreCase(n, "content-length") || EqualsIgnoreCase(n, "connection") ||
         EqualsIgnoreCase(n, "date") || EqualsIgnoreCase(n, "transfer-encoding");
}

struct Parsed {
  unsigned status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::optional<std::size_t> content_length;
  bool close = false;
  std::optional<std::size_t> call;  // X-Fuzz-Call
  std::optional<int> fault;         // X-Fuzz-Fault
  std::size_t body_at = 0;          // offset of the first byte after the header
};

// Parses the status line and header at `at`; advances `at` past them.
Parsed ParseHead(std::string_view out, std::size_t& at) {
  Parsed p;
  auto line = [&]() -> std::string_view {
    const auto end = out.find("\r\n", at);
    if (end == std::string_view::npos) Violated("response line without CRLF");
    const std::string_view l = out.substr(at, end - at);
    at = end + 2;
    return l;
  };
  const std::string_view status_line = line();
  if (!status_line.starts_with("HTTP/1.1 ") || status_line.size() < 13 || status_line[12] != ' ') {
    Violated("malformed status line", status_line);
  }
  for (std::size_t i = 9; i < 12; ++i) {
    if (status_line[i] < '0' || status_line[i] > '9') Violated("status is not three digits", status_line);
    p.status = p.status * 10 + static_cast<unsigned>(status_line[i] - '0');
  }
  if (status_line.find('\0') != std::string_view::npos) Violated("NUL in status line");
  std::size_t dates = 0, lengths = 0;
  for (std::string_view l = line(); !l.empty(); l = line()) {
    const auto colon = l.find(": ");
    if (colon == std::string_view::npos || colon == 0) Violated("header line is not 'name: value'", l);
    const std::string_view n = l.substr(0, colon), v = l.substr(colon + 2);
    for (char c : n) {
      if (!IsTchar(c)) Violated("header name is not a token", n);
    }
    if (v.find('\0') != std::string_view::npos || v.find('\r') != std::string_view::npos ||
        v.find('\n') != std::string_view::npos) {
      Violated("header value with CR, LF or NUL");
    }
    if (EqualsIgnoreCase(n, "date")) ++dates;
    if (EqualsIgnoreCase(n, "transfer-encoding")) Violated("Transfer-Encoding in a response");
    if (EqualsIgnoreCase(n, "content-length")) {
      ++lengths;
      std::size_t len = 0;
      if (v.empty() || v.size() > 12) Violated("bad Content-Length", v);
      for (char c : v) {
        if (c < '0' || c > '9') Violated("bad Content-Length", v);
        len = len * 10 + static_cast<std::size_t>(c - '0');
      }
      p.content_length = len;
    }
    if (EqualsIgnoreCase(n, "connection")) {
      if (v != "close") Violated("Connection other than close", v);
      p.close = true;
    }
    if (n == "X-Fuzz-Call") p.call = static_cast<std::size_t>(std::strtoul(std::string(v).c_str(), nullptr, 10));
    if (n == "X-Fuzz-Fault") p.fault = std::atoi(std::string(v).c_str());
    p.headers.emplace_back(n, v);
  }
  if (p.status != 100 && dates != 1) Violated("a response needs exactly one Date");
  if (lengths > 1) Violated("two Content-Length headers");
  p.body_at = at;
  return p;
}

void CheckResponses(std::string_view input, std::string_view out, const std::vector<Call>& calls) {
  const bool asked_continue = ContainsIgnoreCase(input, "100-continue");
  const bool maybe_head = input.find("HEAD") != std::string_view::npos;
  std::size_t at = 0;
  std::size_t next_call = 0;
  bool closed = false;
  while (at < out.size()) {
    if (closed) Violated("bytes after a response that closed the connection");
    Parsed p = ParseHead(out, at);
    if (p.status == 100) {
      if (!asked_continue) Violated("100 Continue nobody asked for");
      if (!p.headers.empty()) Violated("100 Continue with headers");
      continue;
    }
    if (p.status < 200 || p.status > 599) Violated("final status outside 200-599");
    closed = p.close;
    const bool handler_failed =
        p.fault && *p.fault == static_cast<int>(ServerFault::kHandlerFailed);
    if (p.call || handler_failed) {
      // The answer to handler call `next_call`.
      if (next_call >= calls.size()) Violated("an answer to a call that never happened");
      const Call& call = calls[next_call];
      if (p.call && *p.call != next_call) Violated("answers out of order");
      const bool frameable = !call.threw && Frameable(call.answer);
      if (frameable != !handler_failed) Violated("handler answer replaced (or not) against the rules");
      ++next_call;
      const bool head = call.method == "HEAD";
      if (frameable) {
        if (p.status != call.answer.status) Violated("status differs from the handler's");
        for (const auto& [n, v] : call.answer.headers) {
          if (ServerOwned(n)) continue;
          bool found = false;
          for (const auto& h : p.headers) found = found || (h.first == n && h.second == v);
          if (!found) Violated("a handler header went missing", n);
        }
      } else if (p.status != 500) {
        Violated("handler failure is not 500");
      }
      const std::size_t body_size = frameable ? call.answer.body.size() : 0;
      if (p.status == 204 || p.status == 304) {
        if (p.content_length) Violated("Content-Length on 204/304");
      } else if (head) {
        if (frameable) {
          if (body_size == 0 ? p.content_length.has_value()
                             : p.content_length != body_size) {
            Violated("HEAD answer's Content-Length is not the handler's body length");
          }
        }
      } else {
        if (!p.content_length) Violated("no Content-Length");
        if (frameable && *p.content_length != body_size) Violated("Content-Length is not the body's");
        if (at + *p.content_length > out.size()) Violated("body shorter than Content-Length");
        if (frameable && out.substr(at, body_size) != call.answer.body) Violated("body differs");
        at += *p.content_length;
      }
      continue;
    }
    if (!p.fault) Violated("an answer from neither the handler nor the server");
    // A framing fault: the last answer, it closes, with its whole body (or none to a HEAD).
    if (*p.fault == static_cast<int>(ServerFault::kOverloaded)) Violated("overloaded on one connection");
    if (!p.close) Violated("a refused request's answer keeps the connection");
    if (!p.content_length) Violated("fault without Content-Length");
    const std::size_t rest = out.size() - at;
    if (rest == *p.content_length) {
      at = out.size();
    } else if (!(rest == 0 && maybe_head)) {
      Violated("fault body does not match its Content-Length");
    }
  }
  if (next_call != calls.size()) Violated("a handler call got no answer");
}

struct Servers {
  std::unique_ptr<Server> server[2][2];  // [inline][small]
  ServerConfig config[2];
  Servers() {
    for (int small = 0; small < 2; ++small) {
      config[small] = Config(small != 0);
      for (int inl = 0; inl < 2; ++inl) {
        kms::api::http::LaneSelector lanes;
        if (inl != 0) lanes = [](const HttpRequest&) { return Lane::kInline; };
        auto made = Server::Create(config[small], Handle, Fault, lanes);
        if (!made) Violated("server create", made.error().ToString());
        server[inl][small] = std::move(*made);
      }
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Servers* servers = new Servers();  // never destroyed: worker threads outlive main's exit
  if (size < 2) return 0;
  const bool inline_lane = (data[0] & 1) != 0;
  const bool small = (data[0] & 2) != 0;
  const std::size_t read_size = data[1];
  const std::string input(reinterpret_cast<const char*>(data) + 2, size - 2);

  Run run;
  run.config = &servers->config[small ? 1 : 0];
  current = &run;
  Server& server = *servers->server[inline_lane ? 1 : 0][small ? 1 : 0];
  auto log = std::make_shared<kms::testing::MemoryTransportLog>();
  auto transport = std::make_unique<kms::testing::MemoryTransport>(server.executor(), input, log,
                                                                   read_size);
  const auto served = server.ServeConnection(std::move(transport),
                                             boost::asio::ip::make_address("192.0.2.1"));
  if (!served.ok()) Violated("ServeConnection failed", served.ToString());
  current = nullptr;
  if (server.connection_count() != 0) Violated("session still open");
  if (log->misuse != 0) Violated("session broke the Transport contract");
  if (!log->closed) Violated("session ended without closing its transport");
  // Every read but the last delivers at least one byte, and the shortest request is 16 bytes
  // ("GET / HTTP/1.0\r\n\r\n" less two): more answers than that were not asked for.
  if (log->reads > input.size() + 1 || log->writes > 2 * (input.size() / 16 + 1)) {
    Violated("session did more I/O than its input explains");
  }
  CheckResponses(input, log->written, run.calls);
  return 0;
}
