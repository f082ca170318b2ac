// http::Server::ServeConnection: the real session driven from memory (tests/support/
// memory_transport.h), as the http_framing fuzz target drives it.
#include <catch2/catch.hpp>

#include <memory>
#include <string>

#include <boost/asio/ip/address.hpp>

#include "api/http/server.h"
#include "tests/support/memory_transport.h"

namespace kms::api::http {
namespace {

using kms::testing::MemoryTransport;
using kms::testing::MemoryTransportLog;

const auto kPeer = boost::asio::ip::make_address("192.0.2.1");

HttpResponse Echo(const HttpRequest& req) {
  HttpResponse r;
  r.headers.emplace_back("Content-Type", "text/plain");
  r.body = req.method + " " + req.target + " " + req.body;
  return r;
}

// The bytes after the Date header line (its value changes every second).
std::string WithoutDates(std::string s) {
  for (auto at = s.find("Date: "); at != std::string::npos; at = s.find("Date: ", at)) {
    s.erase(at, s.find("\r\n", at) + 2 - at);
  }
  return s;
}

TEST_CASE("server from memory: pipelined requests are answered in order, then the session ends",
          "[unit]") {
  for (const Lane lane : {Lane::kWorker, Lane::kInline}) {
    for (const std::size_t read_size : {std::size_t{0}, std::size_t{1}, std::size_t{7}}) {
      INFO("lane " << static_cast<int>(lane) << " read size " << read_size);
      auto server = Server::Create({}, Echo, DefaultFaultResponse,
                                   [lane](const HttpRequest&) { return lane; });
      REQUIRE(server.has_value());
      auto log = std::make_shared<MemoryTransportLog>();
      const std::string input =
          "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
          "POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
      REQUIRE((*server)
                  ->ServeConnection(std::make_unique<MemoryTransport>((*server)->executor(), input,
                                                                      log, read_size),
                                    kPeer)
                  .ok());
      CHECK(WithoutDates(log->written) ==
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n\r\nGET /a "
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nPOST /b abc");
      CHECK(log->eof_delivered);
      CHECK(log->closed);
      CHECK(log->misuse == 0);
      CHECK((*server)->connection_count() == 0);
    }
  }
}

TEST_CASE("server from memory: a refused request gets its fault and the connection closes",
          "[unit]") {
  int calls = 0;
  auto server = Server::Create({}, [&](const HttpRequest& r) {
    ++calls;
    return Echo(r);
  });
  REQUIRE(server.has_value());
  auto log = std::make_shared<MemoryTransportLog>();
  const std::string input =
      "GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
  REQUIRE((*server)
              ->ServeConnection(
                  std::make_unique<MemoryTransport>((*server)->executor(), input, log), kPeer)
              .ok());
  CHECK(WithoutDates(log->written) ==
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 37\r\n"
        "Connection: close\r\n\r\nExactly one Host header is required.\n");
  CHECK(calls == 0);
  CHECK(!log->eof_delivered);  // closed after the fault, before reading to the end
  CHECK(log->closed);
}

TEST_CASE("server from memory: only on a server that was never started", "[unit]") {
  auto server = Server::Create({}, Echo);
  REQUIRE(server.has_value());
  REQUIRE((*server)->Start().ok());
  auto log = std::make_shared<MemoryTransportLog>();
  const Status s = (*server)->ServeConnection(
      std::make_unique<MemoryTransport>((*server)->executor(), "", log), kPeer);
  CHECK(s.code() == StatusCode::kFailedPrecondition);
  CHECK(log->written.empty());
}

}  // namespace
}  // namespace kms::api::http
