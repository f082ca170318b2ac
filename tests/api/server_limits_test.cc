// What one peer can make the server hold, and what the server keeps answering while it is busy,
// over loopback sockets against the real http::Server: bounded input buffers (chunk lines,
// chunked bodies), connections per peer, request bytes wiped once used, probes beside a full
// worker pool, and fault answers in the format of the door the request was for.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <future>
#include <latch>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "api/http/router.h"
#include "api/http/server.h"
#include "base/secret_bytes.h"
#include "tests/api/http_client.h"
#include "tests/api/test_server.h"

namespace kms::api::http {
namespace {

using testing::PostRequest;
using testing::RawClient;
using testing::Echo;


HttpResponse Text(std::string body) {
  HttpResponse r;
  r.headers.emplace_back("Content-Type", "text/plain");
  r.body = std::move(body);
  return r;
}

std::unique_ptr<Server> StartServer(ServerConfig cfg, Handler h,
                                    FaultResponder faults = DefaultFaultResponse,
                                    LaneSelector lanes = nullptr) {
  auto server = Server::Create(std::move(cfg), std::move(h), std::move(faults), std::move(lanes));
  REQUIRE(server.has_value());
  REQUIRE((*server)->Start().ok());
  return std::move(*server);
}

// Waits until the server has read every byte `c` sent: the client's send queue is empty (the
// server's kernel has them all) and the server's receive queue on this connection is empty (the
// server's read took them). From /proc/net/tcp: an event, not a guess at how long it takes.
void WaitUntilServerRead(const RawClient& c) {
  sockaddr_in local{}, remote{};
  socklen_t length = sizeof local;
  REQUIRE(::getsockname(c.fd(), reinterpret_cast<sockaddr*>(&local), &length) == 0);
  length = sizeof remote;
  REQUIRE(::getpeername(c.fd(), reinterpret_cast<sockaddr*>(&remote), &length) == 0);
  const unsigned client_port = ntohs(local.sin_port), server_port = ntohs(remote.sin_port);
  auto port_of = [](const std::string& address) {
    return static_cast<unsigned>(std::stoul(address.substr(address.find(':') + 1), nullptr, 16));
  };
  // A failsafe against a hang, not a timing assertion.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < give_up) {
    std::ifstream tcp("/proc/net/tcp");
    std::string line;
    std::getline(tcp, line);  // column names
    bool client_sent = false, server_read = false;
    while (std::getline(tcp, line)) {
      std::istringstream in(line);
      std::string slot, local_address, remote_address, state, queues;
      in >> slot >> local_address >> remote_address >> state >> queues;
      const auto colon = queues.find(':');
      const unsigned long tx = std::stoul(queues.substr(0, colon), nullptr, 16);
      const unsigned long rx = std::stoul(queues.substr(colon + 1), nullptr, 16);
      const unsigned from = port_of(local_address), to = port_of(remote_address);
      if (from == client_port && to == server_port) client_sent = tx == 0;
      if (from == server_port && to == client_port) server_read = rx == 0;
    }
    if (client_sent && server_read) return;
    std::this_thread::yield();
  }
  FAIL("the server did not read what was sent");
}

const std::string kChunkedHead =
    "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";

// ---- input buffers ----------------------------------------------------------------------------------

TEST_CASE("server: a header sent a line at a time is bounded by header_limit in all",
          "[unit][concurrency]") {
  ServerConfig cfg;
  cfg.header_limit = 1024;
  std::atomic<int> calls{0};
  auto server = StartServer(cfg, [&](const HttpRequest& r) {
    ++calls;
    return Echo(r);
  });
  RawClient c(server->port());
  // The parser takes each header line once the first byte of the next one has arrived, and limits
  // only what it holds back: lines read one at a time must still add up to header_limit. Each
  // send ends with the next line's first byte; the last send crosses the limit and ends the
  // header, so the server has read every byte when it answers.
  REQUIRE(c.Send("GET /a HTTP/1.1\r\n"));  // 17 bytes
  WaitUntilServerRead(c);
  REQUIRE(c.Send("Host: x\r\nX"));  // 27
  WaitUntilServerRead(c);
  const std::string fill = "-Fill: " + std::string(55, 'f') + "\r\n";  // "X" + this: 65 bytes
  for (int i = 0; i < 15; ++i) {                                        // 1,002 in all
    REQUIRE(c.Send(fill + "X"));
    WaitUntilServerRead(c);
  }
  auto r = c.RoundTrip(fill + "\r\n");  // 1,068
  REQUIRE(r.has_value());
  CHECK(r->status == 431);
  CHECK(r->body == "Request header exceeds 1024 bytes.\n");
  CHECK(c.WaitForClose());
  CHECK(calls == 0);
}

TEST_CASE("server: a chunk-size line longer than the limit is 400 and closes",
          "[unit][concurrency]") {
  auto server = StartServer({}, Echo);
  for (const std::string& line : {"1;" + std::string(8000, 'e'),             // a chunk extension
                                 std::string(8000, '0') + "1",               // a chunk size
                                 "0\r\nTrailer: " + std::string(8000, 't')}) {  // the trailer
    RawClient c(server->port());
    // One send, read whole by the server: the answer is not lost to a reset of unread bytes.
    auto r = c.RoundTrip(kChunkedHead + line);
    REQUIRE(r.has_value());
    CHECK(r->status == 400);
    CHECK(r->body == "Chunk header exceeds 4096 bytes.\n");
    CHECK(r->HasHeader("Connection: close"));
    CHECK(c.WaitForClose());
  }
}

TEST_CASE("server: a chunk line that never ends is not buffered without bound",
          "[unit][concurrency]") {
  auto server = StartServer({}, Echo);
  RawClient c(server->port());
  REQUIRE(c.Send(kChunkedHead + "1;"));
  // 64 MiB of one chunk extension. The socket buffers hold a few MiB at most: a server that kept
  // reading would take it all (and hold it); a bounded one stops reading and closes.
  const std::string flood(64u << 20, 'e');
  CHECK(c.SendUntilRefused(flood, 2000) < flood.size());
}

TEST_CASE("server: a chunked body is bounded by body_limit across all its chunks",
          "[unit][concurrency]") {
  ServerConfig cfg;
  cfg.body_limit = 100;
  auto server = StartServer(cfg, Echo);
  std::string chunks;
  for (int i = 0; i < 101; ++i) chunks += "1\r\nb\r\n";
  RawClient c(server->port());
  auto r = c.RoundTrip(kChunkedHead + chunks);
  REQUIRE(r.has_value());
  CHECK(r->status == 413);
  CHECK(r->body == "Request body exceeds 100 bytes.\n");
  CHECK(c.WaitForClose());
}

// ---- connections per peer ---------------------------------------------------------------------------

// Opens `n` connections from `source` and makes one request on each, so the server has admitted
// them all when this returns.
std::vector<std::unique_ptr<RawClient>> Admitted(std::uint16_t port, int n,
                                                 const char* source = nullptr) {
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < n; ++i) {
    clients.push_back(std::make_unique<RawClient>(port, 5000, source));
    auto r = clients.back()->RoundTrip(PostRequest("x"));
    REQUIRE(r.has_value());
    REQUIRE(r->status == 200);
  }
  return clients;
}

TEST_CASE("server: one peer gets at most 64 connections by default, loopback included",
          "[unit][concurrency]") {
  auto server = StartServer({}, Echo);
  auto held = Admitted(server->port(), 64);
  RawClient refused(server->port(), 3000);
  CHECK(refused.WaitForClose());
  held.pop_back();
  while (server->connection_count() != 63) std::this_thread::yield();
  RawClient again(server->port());
  auto r = again.RoundTrip(PostRequest("back"));
  REQUIRE(r.has_value());
  CHECK(r->status == 200);
}

TEST_CASE("server: max_connections_per_peer is per remote address and configurable",
          "[unit][concurrency]") {
  ServerConfig cfg;
  cfg.max_connections_per_peer = 2;
  auto server = StartServer(cfg, Echo);
  auto held = Admitted(server->port(), 2, "127.0.0.1");
  RawClient refused(server->port(), 3000, "127.0.0.1");
  CHECK(refused.WaitForClose());
  // Another address on the loopback network is another peer: it is still served.
  auto other = Admitted(server->port(), 2, "127.0.0.2");
  RawClient refused_too(server->port(), 3000, "127.0.0.2");
  CHECK(refused_too.WaitForClose());
  auto still = held.front()->RoundTrip(PostRequest("still"));
  REQUIRE(still.has_value());
  CHECK(still->body == "POST /echo still");

  ServerConfig zero;
  zero.max_connections_per_peer = 0;
  CHECK(Server::Create(zero, Echo).error().code() == StatusCode::kInvalidArgument);
}

// ---- request bytes are wiped ------------------------------------------------------------------------

// Whether `needle` occurs anywhere in this process's writable memory (heap, thread stacks, static
// data), read through /proc/self/mem so a region unmapped meanwhile cannot fault. The needle is
// held XOR-masked, and so is each block read, so neither leaves a plain copy of what is sought.
bool InProcessMemory(const std::vector<char>& masked_needle) {
  constexpr char kMask = 0x5a;
  std::ifstream maps("/proc/self/maps");
  const int mem = ::open("/proc/self/mem", O_RDONLY);
  REQUIRE(mem >= 0);
  std::vector<char> block(1 << 20);
  std::string line;
  bool found = false;
  while (!found && std::getline(maps, line)) {
    std::istringstream in(line);
    std::string range, perms;
    in >> range >> perms;
    if (perms.size() < 2 || perms[0] != 'r' || perms[1] != 'w') continue;
    const auto dash = range.find('-');
    std::uint64_t begin = std::stoull(range.substr(0, dash), nullptr, 16);
    const std::uint64_t end = std::stoull(range.substr(dash + 1), nullptr, 16);
    // A sanitizer's shadow memory (ASan, TSan) is a read-write reservation of terabytes, almost
    // all of it never touched: it holds no program data, and reading it page by page would take
    // hours. No mapping of the program's own data comes near 64 GiB.
    if (end - begin > (std::uint64_t{64} << 30)) continue;
    while (!found && begin < end) {
      // Overlap blocks by the needle's length so a copy across a boundary is seen.
      const std::size_t want =
          static_cast<std::size_t>(std::min<std::uint64_t>(block.size(), end - begin));
      const ssize_t n = ::pread(mem, block.data(), want, static_cast<off_t>(begin));
      if (n <= 0) break;
      // Eight bytes at a time: a sanitizer checks every access of this loop, and byte by byte the
      // scan of a TSan build takes over 15 s.
      std::size_t i = 0;
      for (; i + 8 <= static_cast<std::size_t>(n); i += 8) {
        std::uint64_t word;
        std::memcpy(&word, block.data() + i, 8);
        word ^= 0x5a5a5a5a5a5a5a5aULL;
        std::memcpy(block.data() + i, &word, 8);
      }
      for (; i < static_cast<std::size_t>(n); ++i) block[i] ^= kMask;
      found = memmem(block.data(), static_cast<std::size_t>(n), masked_needle.data(),
                     masked_needle.size()) != nullptr;
      SecureWipe(block.data(), block.size());
      if (static_cast<std::size_t>(n) <= masked_needle.size()) break;
      begin += static_cast<std::uint64_t>(n) - masked_needle.size();
    }
  }
  ::close(mem);
  return found;
}

TEST_CASE("server: request bytes are wiped once used, while the connection stays open",
          "[unit][concurrency]") {
  constexpr char kMask = 0x5a;
  // A 48-character base64-like canary, held only masked by the test.
  std::vector<char> masked(48);
  std::random_device rd;
  const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (char& c : masked) c = static_cast<char>(alphabet[rd() % 64] ^ kMask);

  std::atomic<std::size_t> seen{0};
  // The connection must stay open while the test scans its memory, however long a scan takes (a
  // sanitizer build's scan is slow): the keep-alive idle time is header_timeout.
  ServerConfig cfg;
  cfg.header_timeout = std::chrono::minutes(10);
  auto server = StartServer(cfg, [&](const HttpRequest& req) {
    seen = req.body.size();  // the handler reads the body; it makes no copy
    return Text("ok");
  });
  RawClient c(server->port());
  for (const bool chunked : {false, true}) {
    INFO((chunked ? "chunked" : "Content-Length"));
    // The wire bytes are built in a buffer sized once (no reallocation leaves a copy), sent and
    // wiped. The kernel's socket buffers are not this process's memory.
    const std::string head =
        chunked ? "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n30\r\n"
                : "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 48\r\n\r\n";
    const std::string tail = chunked ? "\r\n0\r\n\r\n" : "";
    std::vector<char> wire(head.size() + masked.size() + tail.size());
    std::memcpy(wire.data(), head.data(), head.size());
    for (std::size_t i = 0; i < masked.size(); ++i) wire[head.size() + i] = masked[i] ^ kMask;
    std::memcpy(wire.data() + head.size() + masked.size(), tail.data(), tail.size());
    const bool sent = ::send(c.fd(), wire.data(), wire.size(), MSG_NOSIGNAL) ==
                      static_cast<ssize_t>(wire.size());
    SecureWipe(wire.data(), wire.size());
    REQUIRE(sent);
    auto r = c.Read();
    REQUIRE(r.has_value());
    REQUIRE(r->status == 200);
    CHECK(seen == 48);
    // The response went out after the handler returned; the connection is idle and open.
    CHECK_FALSE(InProcessMemory(masked));
  }
}

// ---- probes beside a busy worker pool ---------------------------------------------------------------

// Blocks every request to /block until released; `entered` counts them in.
struct Blocker {
  explicit Blocker(std::ptrdiff_t n) : entered(n) {}
  std::latch entered;
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
};

TEST_CASE("server: /livez answers while every worker is blocked in a handler",
          "[unit][concurrency]") {
  ServerConfig cfg;
  cfg.worker_threads = 2;
  Blocker blocker(2);
  Router router;
  router.Exact("/block", [&](const HttpRequest& r) {
    blocker.entered.count_down();
    blocker.gate.wait();
    return Echo(r);
  });
  router.Exact("/livez", [](const HttpRequest&) { return Text("ok\n"); }, Lane::kInline);
  auto server = StartServer(
      cfg, [&](const HttpRequest& r) { return router(r); }, DefaultFaultResponse,
      [&](const HttpRequest& r) { return router.LaneOf(r); });
  RawClient a(server->port()), b(server->port());
  REQUIRE(a.Send("GET /block HTTP/1.1\r\nHost: x\r\n\r\n"));
  REQUIRE(b.Send("GET /block HTTP/1.1\r\nHost: x\r\n\r\n"));
  blocker.entered.wait();  // both workers are now inside a handler

  RawClient probe(server->port());
  auto r = probe.RoundTrip("GET /livez HTTP/1.1\r\nHost: x\r\n\r\n");
  blocker.release.set_value();
  REQUIRE(r.has_value());
  CHECK(r->status == 200);
  CHECK(r->body == "ok\n");
  REQUIRE(a.Read().has_value());
  REQUIRE(b.Read().has_value());
}

TEST_CASE("server: probes are not refused by max_in_flight", "[unit][concurrency]") {
  ServerConfig cfg;
  cfg.max_in_flight = 1;
  cfg.worker_threads = 2;
  Blocker blocker(1);
  Router router;
  router.Exact("/block", [&](const HttpRequest& r) {
    blocker.entered.count_down();
    blocker.gate.wait();
    return Echo(r);
  });
  router.Exact("/health", [](const HttpRequest&) { return Text("healthy\n"); }, Lane::kProbe);
  router.Exact("/livez", [](const HttpRequest&) { return Text("ok\n"); }, Lane::kInline);
  router.Prefix("/", Echo);
  auto server = StartServer(
      cfg, [&](const HttpRequest& r) { return router(r); }, DefaultFaultResponse,
      [&](const HttpRequest& r) { return router.LaneOf(r); });
  RawClient blocked(server->port());
  REQUIRE(blocked.Send("GET /block HTTP/1.1\r\nHost: x\r\n\r\n"));
  blocker.entered.wait();  // the one in-flight slot is taken

  RawClient c(server->port());
  auto busy = c.RoundTrip(PostRequest("work"));
  REQUIRE(busy.has_value());
  CHECK(busy->status == 503);
  auto health = c.RoundTrip("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  REQUIRE(health.has_value());
  CHECK(health->status == 200);
  CHECK(health->body == "healthy\n");
  auto live = c.RoundTrip("GET /livez HTTP/1.1\r\nHost: x\r\n\r\n");
  REQUIRE(live.has_value());
  CHECK(live->status == 200);
  blocker.release.set_value();
  REQUIRE(blocked.Read().has_value());
}

// ---- fault answers know their door ------------------------------------------------------------------

// Answers every fault with its status and, as the body, the target the server passed.
HttpResponse TargetEcho(ServerFault fault, std::string_view detail, std::string_view target) {
  HttpResponse r = DefaultFaultResponse(fault, detail);
  r.body = "target=" + std::string(target);
  return r;
}

TEST_CASE("server: the fault responder is given the request target once it has arrived",
          "[unit][concurrency]") {
  ServerConfig cfg;
  cfg.header_limit = 1024;
  cfg.body_limit = 10;
  cfg.max_in_flight = 1;
  Blocker blocker(1);
  auto server = StartServer(
      cfg,
      [&](const HttpRequest& r) -> HttpResponse {
        if (r.target == "/v1/block") {
          blocker.entered.count_down();
          blocker.gate.wait();
        }
        if (r.target == "/v1/throw") throw std::runtime_error("boom");
        return Echo(r);
      },
      TargetEcho);
  struct Case {
    std::string request;
    unsigned status;
    std::string body;
  };
  for (const Case& k : std::vector<Case>{
           // The request line alone has arrived, and is too long: read from the raw bytes.
           {"GET /v1/" + std::string(2000, 'a'), 431, "target=/v1/" + std::string(2000, 'a')},
           // The request line was parsed, the header is too long.
           {"GET /v1/h HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(2000, 'h') + "\r\n\r\n",
            431, "target=/v1/h"},
           {"POST /v1/b HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n", 413,
            "target=/v1/b"},
           {"GET /v1/m HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400, "target=/v1/m"},
           {"GET /v1/n HTTP/1.1\r\n\r\n", 400, "target=/v1/n"},
           {"POST /v1/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;" +
                std::string(5000, 'e'),
            400, "target=/v1/c"},
           {"\r\n\r\n", 400, "target="},
           {"GET /v1/throw HTTP/1.1\r\nHost: x\r\n\r\n", 500, "target=/v1/throw"},
       }) {
    INFO(k.request.substr(0, 40));
    RawClient c(server->port());
    auto r = c.RoundTrip(k.request);
    REQUIRE(r.has_value());
    CHECK(r->status == k.status);
    CHECK(r->body == k.body);
  }
  RawClient blocked(server->port());
  REQUIRE(blocked.Send("GET /v1/block HTTP/1.1\r\nHost: x\r\n\r\n"));
  blocker.entered.wait();
  RawClient c(server->port());
  auto busy = c.RoundTrip("GET /v1/busy HTTP/1.1\r\nHost: x\r\n\r\n");
  blocker.release.set_value();
  REQUIRE(busy.has_value());
  CHECK(busy->status == 503);
  CHECK(busy->body == "target=/v1/busy");
  REQUIRE(blocked.Read().has_value());
}

}  // namespace
}  // namespace kms::api::http
