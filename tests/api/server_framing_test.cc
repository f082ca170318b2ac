// HTTP/1.1 framing rules the server enforces whatever the client sends or the handler returns,
// over loopback sockets against the real http::Server: Host (RFC 9112 §3.2), Transfer-Encoding
// (§6.1, §6.3), Expect: 100-continue (RFC 9110 §10.1.1), HEAD (§9.3.2) and the statuses that
// carry no body (§15.2, §15.3.5, §15.4.5).
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "api/http/server.h"
#include "tests/api/http_client.h"
#include "tests/api/test_server.h"

namespace kms::api::http {
namespace {

using testing::PostRequest;
using testing::RawClient;
using testing::Echo;
using testing::StartServer;
using testing::ReadAll;




// A request that follows the one under test on the same connection: its answer must parse as the
// next response, so no stray body byte was left between the two.
const std::string kNext = "GET /next HTTP/1.1\r\nHost: x\r\n\r\n";

void ExpectNextAnswered(RawClient& c) {
  auto next = c.Read();
  REQUIRE(next.has_value());
  CHECK(next->status == 200);
  CHECK(next->body == "GET /next ");
}

// ---- Host -------------------------------------------------------------------------------------------

TEST_CASE("server: an HTTP/1.1 request without Host, or with two, is 400 and closes",
          "[unit][concurrency]") {
  std::atomic<int> calls{0};
  auto server = StartServer({}, [&](const HttpRequest& r) {
    ++calls;
    return Echo(r);
  });
  for (const std::string request :
       {"GET /a HTTP/1.1\r\n\r\n", "GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
        "GET /a HTTP/1.0\r\nHost: x\r\nHost: x\r\n\r\n"}) {
    INFO(request);
    RawClient c(server->port());
    auto r = c.RoundTrip(request);
    REQUIRE(r.has_value());
    CHECK(r->status == 400);
    CHECK(r->body == "Exactly one Host header is required.\n");
    CHECK(r->HasHeader("Connection: close"));
    CHECK(c.WaitForClose());
  }
  CHECK(calls == 0);
}

TEST_CASE("server: HTTP/1.0 may omit Host, and an empty Host is a Host", "[unit][concurrency]") {
  auto server = StartServer({}, Echo);
  RawClient old(server->port());
  auto r = old.RoundTrip("GET /a HTTP/1.0\r\n\r\n");
  REQUIRE(r.has_value());
  CHECK(r->status == 200);
  CHECK(r->body == "GET /a ");
  RawClient empty(server->port());
  auto e = empty.RoundTrip("GET /b HTTP/1.1\r\nHost:\r\n\r\n");
  REQUIRE(e.has_value());
  CHECK(e->status == 200);
  CHECK(e->body == "GET /b ");
}

// ---- Transfer-Encoding ------------------------------------------------------------------------------

TEST_CASE("server: a Transfer-Encoding other than chunked alone is 400, closes, and its body never "
          "runs as a request",
          "[unit][concurrency]") {
  std::atomic<int> calls{0};
  auto server = StartServer({}, [&](const HttpRequest& r) {
    ++calls;
    return Echo(r);
  });
  // The body is a whole request: a server that took the body as empty would run it next.
  const std::string smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
  for (const std::string coding : {"gzip", "identity", "xchunked", "chunked, gzip", "gzip, chunked",
                                   "chunked, chunked", "chunked;x=1", ""}) {
    INFO("Transfer-Encoding: " << coding);
    RawClient c(server->port());
    auto r = c.RoundTrip("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + coding +
                         "\r\n\r\n" + smuggled);
    REQUIRE(r.has_value());
    CHECK(r->status == 400);
    CHECK(r->body == "Transfer-Encoding other than chunked is not supported.\n");
    CHECK(r->HasHeader("Connection: close"));
    CHECK(c.WaitForClose());
  }
  SECTION("two Transfer-Encoding fields are one list") {
    RawClient c(server->port());
    auto r = c.RoundTrip(
        "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n"
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" +
        smuggled);
    REQUIRE(r.has_value());
    CHECK(r->status == 400);
    CHECK(c.WaitForClose());
  }
  SECTION("HTTP/1.0 has no transfer codings (RFC 9112 §6.1: faulty framing)") {
    RawClient c(server->port());
    auto r = c.RoundTrip("POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    REQUIRE(r.has_value());
    CHECK(r->status == 400);
    CHECK(r->body == "Transfer-Encoding other than chunked is not supported.\n");
    CHECK(c.WaitForClose());
  }
  CHECK(calls == 0);
}

TEST_CASE("server: Content-Length with Transfer-Encoding is 400 and closes, in either order",
          "[unit][concurrency]") {
  std::atomic<int> calls{0};
  auto server = StartServer({}, [&](const HttpRequest& r) {
    ++calls;
    return Echo(r);
  });
  // The parser refuses the field that comes second when the first framed the body; the server
  // refuses the pair whatever the order.
  const std::string parser = "Malformed HTTP request.\n";
  const std::string server_check = "Content-Length and Transfer-Encoding together.\n";
  for (const auto& [fields, body] : std::vector<std::pair<std::string, std::string>>{
           {"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", parser},
           {"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", parser},
           {"Content-Length: 5\r\nTransfer-Encoding: gzip\r\n", parser},
           {"Transfer-Encoding: gzip\r\nContent-Length: 5\r\n", server_check},
           {"Transfer-Encoding: identity\r\nContent-Length: 5\r\n", server_check}}) {
    INFO(fields);
    RawClient c(server->port());
    auto r = c.RoundTrip("POST /a HTTP/1.1\r\nHost: x\r\n" + fields + "\r\n0\r\n\r\n");
    REQUIRE(r.has_value());
    CHECK(r->status == 400);
    CHECK(r->body == body);
    CHECK(r->HasHeader("Connection: close"));
    CHECK(c.WaitForClose());
  }
  CHECK(calls == 0);
}

TEST_CASE("server: chunked, in any letter case, is read to its last chunk", "[unit][concurrency]") {
  auto server = StartServer({}, Echo);
  RawClient c(server->port());
  REQUIRE(c.Send("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ChUnKeD\r\n\r\n"
                 "3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n" + kNext));
  auto r = c.Read();
  REQUIRE(r.has_value());
  CHECK(r->status == 200);
  CHECK(r->body == "POST /a abcde");
  ExpectNextAnswered(c);
}

TEST_CASE("server: a chunked request with trailer fields is 400 and closes, and no handler sees "
          "them as header fields",
          "[unit]") {
  std::atomic<int> calls{0};
  auto server = StartServer({}, [&](const HttpRequest& r) {
    ++calls;
    return Echo(r);
  });
  for (const std::string trailer : {"Host: y\r\n", "X-Amz-Target: TrentService.Decrypt\r\n",
                                    "Trailer: \xff\xff\r\nX-Other: 1\r\n"}) {
    INFO(trailer);
    RawClient c(server->port());
    auto r = c.RoundTrip("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "3\r\nabc\r\n0\r\n" + trailer + "\r\n" + kNext);
    REQUIRE(r.has_value());
    CHECK(r->status == 400);
    CHECK(r->body == "Trailer fields are not accepted.\n");
    CHECK(r->HasHeader("Connection: close"));
    CHECK(c.WaitForClose());
  }
  CHECK(calls == 0);
}

// ---- Expect: 100-continue ---------------------------------------------------------------------------

TEST_CASE("server: Expect: 100-continue gets 100 before any body byte is sent",
          "[unit][concurrency]") {
  auto server = StartServer({}, Echo);
  RawClient c(server->port());
  REQUIRE(c.Send(
      "POST /a HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n"));
  auto interim = c.ReadHead();  // the body has not been sent: only the server can move on
  REQUIRE(interim.has_value());
  CHECK(interim->head == "HTTP/1.1 100 Continue\r\n");
  CHECK(c.unread().empty());
  REQUIRE(c.Send("hello"));
  auto r = c.Read();
  REQUIRE(r.has_value());
  CHECK(r->status == 200);
  CHECK(r->body == "POST /a hello");

  SECTION("chunked") {
    REQUIRE(c.Send("POST /b HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n"));
    auto interim2 = c.ReadHead();
    REQUIRE(interim2.has_value());
    CHECK(interim2->status == 100);
    REQUIRE(c.Send("2\r\nhi\r\n0\r\n\r\n"));
    auto r2 = c.Read();
    REQUIRE(r2.has_value());
    CHECK(r2->body == "POST /b hi");
  }
}

TEST_CASE("server: Expect: 100-continue over a limit gets the final answer and no 100",
          "[unit][concurrency]") {
  ServerConfig cfg;
  cfg.body_limit = 1024;
  auto server = StartServer(cfg, Echo);
  RawClient c(server->port());
  auto r = c.RoundTrip(
      "POST /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 70000\r\n\r\n");
  REQUIRE(r.has_value());
  CHECK(r->status == 413);
  CHECK(r->body == "Request body exceeds 1024 bytes.\n");
  CHECK(c.WaitForClose());
}

TEST_CASE("server: no 100 when there is no body to wait for, or for HTTP/1.0",
          "[unit][concurrency]") {
  auto server = StartServer({}, Echo);
  RawClient c(server->port());
  // Nothing to send: the final answer comes at once (RFC 9110 §10.1.1).
  auto r = c.RoundTrip(
      "POST /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n");
  REQUIRE(r.has_value());
  CHECK(r->status == 200);
  // An HTTP/1.0 client does not know 100: the expectation is ignored (RFC 9110 §10.1.1).
  RawClient old(server->port());
  auto o = old.RoundTrip("POST /b HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi");
  REQUIRE(o.has_value());
  CHECK(o->status == 200);
  CHECK(o->body == "POST /b hi");
}

// ---- HEAD -------------------------------------------------------------------------------------------

TEST_CASE(
    "server: HEAD never gets a body, its Content-Length is that of the body the handler built",
    "[unit][concurrency]") {
  auto server = StartServer({}, Echo);
  RawClient c(server->port());
  REQUIRE(c.Send("HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n" + kNext));
  auto head = c.ReadHead();
  REQUIRE(head.has_value());
  CHECK(head->status == 200);
  CHECK(head->HasHeader("Content-Length: 8\r\n"));  // "HEAD /a "
  ExpectNextAnswered(c);

  SECTION("no body built, no Content-Length: GET's length is unknown (RFC 9110 §8.6)") {
    auto empty = StartServer({}, [](const HttpRequest& req) {
      if (req.target == "/next") return Echo(req);
      HttpResponse r;
      r.headers.emplace_back("Content-Type", "text/plain");
      return r;  // as the health pages and Vault's sys/health answer HEAD
    });
    RawClient e(empty->port());
    REQUIRE(e.Send("HEAD /livez HTTP/1.1\r\nHost: x\r\n\r\n" + kNext));
    auto h = e.ReadHead();
    REQUIRE(h.has_value());
    CHECK(h->status == 200);
    CHECK_FALSE(h->HasHeader("Content-Length"));
    ExpectNextAnswered(e);
  }
  SECTION("fault answers to HEAD carry no body either") {
    ServerConfig cfg;
    cfg.body_limit = 10;
    auto limited = StartServer(cfg, Echo);
    RawClient l(limited->port());
    REQUIRE(l.Send("HEAD /a HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n"));
    auto fault = l.ReadHead();
    REQUIRE(fault.has_value());
    CHECK(fault->status == 413);
    CHECK(fault->HasHeader("Connection: close"));
    CHECK(l.WaitForClose());
    CHECK(l.unread().empty());
  }
}

// ---- what a handler may return ----------------------------------------------------------------------

TEST_CASE("server: 204 and 304 from a handler go out without a body or Content-Length",
          "[unit][concurrency]") {
  auto server = StartServer({}, [](const HttpRequest& req) {
    if (req.target == "/next") return Echo(req);
    HttpResponse r;
    r.status = req.target == "/204" ? 204 : 304;
    r.headers.emplace_back("Content-Length", "99");  // framing is the server's, not the handler's
    r.headers.emplace_back("Transfer-Encoding", "chunked");
    r.body = "a body the status does not allow";
    return r;
  });
  for (const std::string status : {"204", "304"}) {
    INFO(status);
    RawClient c(server->port());
    REQUIRE(c.Send("GET /" + status + " HTTP/1.1\r\nHost: x\r\n\r\n" + kNext));
    auto r = c.ReadHead();
    REQUIRE(r.has_value());
    CHECK(r->status == std::stoul(status));
    CHECK_FALSE(r->HasHeader("Content-Length"));
    CHECK_FALSE(r->HasHeader("Transfer-Encoding"));
    ExpectNextAnswered(c);
  }
}

TEST_CASE("server: a status outside 200-599 from a handler becomes 500, logged",
          "[unit][concurrency]") {
  std::FILE* log_file = std::tmpfile();
  const log::Logger logs(log_file);
  ServerConfig cfg;
  cfg.logs = &logs;
  auto server = StartServer(cfg, [](const HttpRequest& req) {
    if (req.target == "/next") return Echo(req);
    HttpResponse r;
    r.status = static_cast<unsigned>(std::stoul(req.target.substr(1)));
    r.body = "x";
    return r;
  });
  for (const std::string status : {"100", "101", "199", "0", "600", "99"}) {
    INFO(status);
    RawClient c(server->port());
    REQUIRE(c.Send("GET /" + status + " HTTP/1.1\r\nHost: x\r\n\r\n" + kNext));
    auto r = c.Read();
    REQUIRE(r.has_value());
    CHECK(r->status == 500);
    CHECK(r->body == "Internal server error.\n");
    ExpectNextAnswered(c);
  }
  server->Stop();
  const std::string log = ReadAll(log_file);
  std::fclose(log_file);
  for (const std::string status : {"100", "101", "199", "0", "600", "99"}) {
    CHECK(log.find(R"("msg":"handler answer cannot be framed; answered 500","reason":"status )"
                   R"(outside 200-599","status":)" + status + "}") != std::string::npos);
  }
}

TEST_CASE("server: a handler header that would split the response becomes 500, logged",
          "[unit][concurrency]") {
  std::FILE* log_file = std::tmpfile();
  const log::Logger logs(log_file);
  ServerConfig cfg;
  cfg.logs = &logs;
  auto server = StartServer(cfg, [](const HttpRequest& req) {
    if (req.target == "/next") return Echo(req);
    HttpResponse r;
    if (req.target == "/value") r.headers.emplace_back("X-A", "1\r\nSet-Cookie: evil=1");
    if (req.target == "/nul") r.headers.emplace_back("X-A", std::string("1\0", 2));
    if (req.target == "/name") r.headers.emplace_back("X A", "1");
    if (req.target == "/empty") r.headers.emplace_back("", "1");
    if (req.target == "/throw") throw std::runtime_error("canary-exception-text");
    r.body = "x";
    return r;
  });
  for (const std::string target : {"/value", "/nul", "/name", "/empty", "/throw"}) {
    INFO(target);
    RawClient c(server->port());
    REQUIRE(c.Send("GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n" + kNext));
    auto r = c.Read();
    REQUIRE(r.has_value());
    CHECK(r->status == 500);
    CHECK(r->body == "Internal server error.\n");
    CHECK_FALSE(r->HasHeader("evil"));
    ExpectNextAnswered(c);
  }
  server->Stop();
  const std::string log = ReadAll(log_file);
  std::fclose(log_file);
  CHECK(log.find(R"("reason":"header value with CR, LF or NUL","status":200})") !=
        std::string::npos);
  CHECK(log.find(R"("reason":"header name is not a token","status":200})") != std::string::npos);
  CHECK(log.find(R"("reason":"empty header name","status":200})") != std::string::npos);
  CHECK(log.find(R"("msg":"handler threw; answered 500"})") != std::string::npos);
  CHECK(log.find("canary-exception-text") == std::string::npos);
}

}  // namespace
}  // namespace kms::api::http
