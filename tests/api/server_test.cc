// The HTTP server over loopback sockets: keep-alive, pipelining, limits, timeouts, overload,
// worker-pool isolation and graceful shutdown.
#include "api/http/server.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "api/http/router.h"
#include "tests/api/http_client.h"
#include "tests/api/test_server.h"

namespace kms::api::http {
namespace {

using namespace std::chrono_literals;
using testing::PostRequest;
using testing::RawClient;
using testing::Echo;
using testing::StartServer;



TEST_CASE("server: port 0, keep-alive and one response per request", "[unit][concurrency]") {
  auto server = StartServer({}, Echo);
  RawClient c(server->port());
  REQUIRE(c.connected());
  for (int i = 0; i < 3; ++i) {
    auto r = c.RoundTrip(PostRequest("hello" + std::to_string(i)));
    REQUIRE(r.has_value());
    CHECK(r->status == 200);
    CHECK(r->body == "POST /echo hello" + std::to_string(i));
    CHECK_FALSE(r->HasHeader("Connection: close"));
    CHECK(r->HasHeader(" GMT\r\n"));  // Date: <IMF-fixdate>
    CHECK(r->HasHeader("Content-Length: " + std::to_string(r->body.size()) + "\r\n"));
  }
  CHECK(server->connection_count() == 1);
}

TEST_CASE("server: pipelined requests are answered in order", "[unit][concurrency]") {
  auto server = StartServer({}, Echo);
  RawClient c(server->port());
  REQUIRE(c.Send(PostRequest("one") + PostRequest("two")));
  auto a = c.Read();
  auto b = c.Read();
  REQUIRE(a.has_value());
  REQUIRE(b.has_value());
  CHECK(a->body == "POST /echo one");
  CHECK(b->body == "POST /echo two");
}

TEST_CASE("server: Connection: close is honoured", "[unit][concurrency]") {
  auto server = StartServer({}, Echo);
  RawClient c(server->port());
  auto r = c.RoundTrip(PostRequest("x", "Connection: close\r\n"));
  REQUIRE(r.has_value());
  CHECK(r->HasHeader("Connection: close"));
  CHECK(c.WaitForClose());
}

TEST_CASE("server: body over the limit is 413 before the body is read", "[unit][concurrency]") {
  ServerConfig cfg;
  cfg.body_limit = 1024;
  auto server = StartServer(cfg, Echo);
  RawClient c(server->port());
  // Only the header is sent: the declared length alone must trigger the refusal.
  auto r = c.RoundTrip("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n");
  REQUIRE(r.has_value());
  CHECK(r->status == 413);
  CHECK(r->HasHeader("Connection: close"));
  CHECK(c.WaitForClose());

  RawClient ok(server->port());
  auto fine = ok.RoundTrip(PostRequest(std::string(1024, 'a')));
  REQUIRE(fine.has_value());
  CHECK(fine->status == 200);
}

TEST_CASE("server: chunked body over the limit is 413", "[unit][concurrency]") {
  ServerConfig cfg;
  cfg.body_limit = 100;
  auto server = StartServer(cfg, Echo);
  RawClient c(server->port());
  const std::string chunk(200, 'b');
  auto r = c.RoundTrip("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nc8\r\n" +
                       chunk + "\r\n0\r\n\r\n");
  REQUIRE(r.has_value());
  CHECK(r->status == 413);
}

TEST_CASE("server: header over the limit is 431", "[unit][concurrency]") {
  ServerConfig cfg;
  cfg.header_limit = 1024;
  auto server = StartServer(cfg, Echo);
  RawClient c(server->port());
  auto r = c.RoundTrip("POST /echo HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4000, 'h') +
                       "\r\nContent-Length: 0\r\n\r\n");
  REQUIRE(r.has_value());
  CHECK(r->status == 431);
  CHECK(c.WaitForClose());
}

TEST_CASE("server: malformed HTTP is 400 and closes", "[unit][concurrency]") {
  auto server = StartServer({}, Echo);
  RawClient c(server->port());
  auto r = c.RoundTrip("THIS IS NOT HTTP\r\n\r\n");
  REQUIRE(r.has_value());
  CHECK(r->status == 400);
  CHECK(c.WaitForClose());
}

TEST_CASE("server: a slow client is cut off by the header and body timeouts",
          "[unit][concurrency]") {
  ServerConfig cfg;
  cfg.header_timeout = 200ms;
  cfg.body_timeout = 200ms;
  auto server = StartServer(cfg, Echo);
  {
    RawClient c(server->port(), 3000);
    REQUIRE(c.Send("POST /echo HTTP/1.1\r\nHost:"));  // never finishes the header
    CHECK(c.WaitForClose());  // within the client's 3 s receive timeout, so the 200 ms timer fired
  }
  {
    RawClient c(server->port(), 3000);
    REQUIRE(c.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"));
    CHECK(c.WaitForClose());
  }
  {
    RawClient idle(server->port(), 3000);  // keep-alive idle connections are closed too
    CHECK(idle.WaitForClose());
  }
}

TEST_CASE("server: each request restarts the idle timeout and an idle keep-alive connection closes",
          "[unit][concurrency]") {
  ServerConfig cfg;
  cfg.header_timeout = 300ms;
  auto server = StartServer(cfg, Echo);
  RawClient c(server->port(), 3000);
  const std::string request = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi";
  // Four requests 200 ms apart span 600 ms, past the first deadline: each response re-arms it.
  for (int i = 0; i < 4; ++i) {
    auto r = c.RoundTrip(request);
    REQUIRE(r.has_value());
    CHECK(r->status == 200);
    std::this_thread::sleep_for(200ms);
  }
  const auto idle_from = std::chrono::steady_clock::now();
  CHECK(c.WaitForClose());
  CHECK(std::chrono::steady_clock::now() - idle_from < 2s);
}

TEST_CASE("server: blocking handlers run off the network threads", "[unit][concurrency]") {
  ServerConfig cfg;
  cfg.network_threads = 1;
  cfg.worker_threads = 2;
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  auto server = StartServer(cfg, [gate](const HttpRequest& req) {
    if (req.body == "block") gate.wait();
    return Echo(req);
  });
  RawClient blocked(server->port());
  REQUIRE(blocked.Send(PostRequest("block")));
  std::this_thread::sleep_for(50ms);
  // The single network thread must still serve another connection.
  RawClient other(server->port());
  auto r = other.RoundTrip(PostRequest("quick"));
  REQUIRE(r.has_value());
  CHECK(r->body == "POST /echo quick");
  release.set_value();
  auto b = blocked.Read();
  REQUIRE(b.has_value());
  CHECK(b->body == "POST /echo block");
}

TEST_CASE("server: requests beyond max_in_flight get the overload response",
          "[unit][concurrency]") {
  ServerConfig cfg;
  cfg.max_in_flight = 1;
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  auto server = StartServer(cfg, [gate](const HttpRequest& req) {
    if (req.body == "block") gate.wait();
    return Echo(req);
  });
  RawClient blocked(server->port());
  REQUIRE(blocked.Send(PostRequest("block")));
  std::this_thread::sleep_for(100ms);
  RawClient other(server->port());
  auto r = other.RoundTrip(PostRequest("quick"));
  REQUIRE(r.has_value());
  CHECK(r->status == 503);
  release.set_value();
  REQUIRE(blocked.Read().has_value());
  auto again = other.RoundTrip(PostRequest("quick"));  // capacity is back
  REQUIRE(again.has_value());
  CHECK(again->status == 200);
}

TEST_CASE("server: connections beyond max_connections are refused", "[unit][concurrency]") {
  ServerConfig cfg;
  cfg.max_connections = 1;
  auto server = StartServer(cfg, Echo);
  RawClient first(server->port());
  REQUIRE(first.RoundTrip(PostRequest("a")).has_value());
  RawClient second(server->port(), 2000);
  CHECK(second.WaitForClose());
  auto still = first.RoundTrip(PostRequest("b"));
  REQUIRE(still.has_value());
  CHECK(still->status == 200);
}

TEST_CASE("server: a throwing handler gives 500, the server survives", "[unit][concurrency]") {
  auto server = StartServer({}, [](const HttpRequest& req) -> HttpResponse {
    if (req.body == "throw") throw std::runtime_error("boom");
    return Echo(req);
  });
  RawClient c(server->port());
  auto r = c.RoundTrip(PostRequest("throw"));
  REQUIRE(r.has_value());
  CHECK(r->status == 500);
  auto ok = c.RoundTrip(PostRequest("fine"));
  REQUIRE(ok.has_value());
  CHECK(ok->status == 200);
}

TEST_CASE("server: Stop drains in-flight requests, closes idle ones, refuses new ones",
          "[unit][concurrency]") {
  std::atomic<bool> entered{false};
  auto server = StartServer({}, [&](const HttpRequest& req) {
    entered = true;
    std::this_thread::sleep_for(300ms);
    return Echo(req);
  });
  const auto port = server->port();
  RawClient idle(port);
  RawClient busy(port);
  REQUIRE(busy.Send(PostRequest("work")));
  while (!entered) std::this_thread::sleep_for(5ms);
  server->Stop();  // returns after the in-flight response went out
  auto r = busy.Read();
  REQUIRE(r.has_value());
  CHECK(r->status == 200);
  CHECK(r->body == "POST /echo work");
  CHECK(r->HasHeader("Connection: close"));
  CHECK(idle.WaitForClose());
  RawClient late(port, 500);
  CHECK_FALSE(late.connected());
  server->Stop();  // idempotent
}

TEST_CASE("server: bind failures and bad config are reported", "[unit][concurrency]") {
  auto first = StartServer({}, Echo);
  ServerConfig same;
  same.port = first->port();
  auto second = Server::Create(same, Echo);
  REQUIRE(second.has_value());
  const Status s = (*second)->Start();
  CHECK(s.code() == StatusCode::kUnavailable);

  ServerConfig bad;
  bad.bind_address = "not-an-address";
  auto third = Server::Create(bad, Echo);
  REQUIRE(third.has_value());
  CHECK((*third)->Start().code() == StatusCode::kInvalidArgument);

  ServerConfig zero;
  zero.worker_threads = 0;
  CHECK(Server::Create(zero, Echo).error().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("router: exact beats prefix, longest prefix wins, 404 otherwise", "[unit]") {
  Router router;
  auto tag = [](std::string t) {
    return [t](const HttpRequest&) {
      HttpResponse r;
      r.body = t;
      return r;
    };
  };
  router.Exact("/", tag("aws"));
  router.Prefix("/v1/", tag("vault"));
  router.Prefix("/v1/sys/", tag("sys"));
  HttpRequest req;
  req.target = "/?x=1";
  CHECK(router(req).body == "aws");
  req.target = "/v1/transit/encrypt/k";
  CHECK(router(req).body == "vault");
  req.target = "/v1/sys/health";
  CHECK(router(req).body == "sys");
  req.target = "/nothing";
  CHECK(router(req).status == 404);
}

TEST_CASE("router: an exact path carries its lane, everything else is kWorker", "[unit]") {
  Router router;
  router.Exact("/livez", Echo, Lane::kInline);
  router.Exact("/health", Echo, Lane::kProbe);
  router.Exact("/", Echo);
  router.Prefix("/v1/", Echo);
  HttpRequest req;
  for (const auto& [target, lane] : std::vector<std::pair<std::string, Lane>>{
           {"/livez", Lane::kInline},
           {"/livez?verbose=1", Lane::kInline},
           {"/health", Lane::kProbe},
           {"/health/", Lane::kWorker},
           {"/", Lane::kWorker},
           {"/v1/sys/health", Lane::kWorker},
           {"/nothing", Lane::kWorker}}) {
    INFO(target);
    req.target = target;
    CHECK(router.LaneOf(req) == lane);
  }
}

}  // namespace
}  // namespace kms::api::http
