// What the HTTP server's tests share: an echo handler, a started server on a free loopback port,
// and reading back what a test logger wrote to a temporary file.
//
// Thread-safety: Echo may run on any worker; the rest belongs to the test's thread.
#ifndef KMS_TESTS_API_TEST_SERVER_H_
#define KMS_TESTS_API_TEST_SERVER_H_

#include <catch2/catch.hpp>

#include <cstdio>
#include <memory>
#include <string>

#include "api/http/server.h"

namespace kms::api::testing {

// Answers "<method> <target> <body>" as text/plain.
inline http::HttpResponse Echo(const http::HttpRequest& req) {
  http::HttpResponse r;
  r.headers.emplace_back("Content-Type", "text/plain");
  r.body = req.method + " " + req.target + " " + req.body;
  return r;
}

// A server made from `cfg` and `h`, started on its port (127.0.0.1, port 0 = any free one).
inline std::unique_ptr<http::Server> StartServer(http::ServerConfig cfg, http::Handler h) {
  auto server = http::Server::Create(std::move(cfg), std::move(h));
  REQUIRE(server.has_value());
  REQUIRE((*server)->Start().ok());
  REQUIRE((*server)->port() != 0);
  return std::move(*server);
}

// Everything written to `f` so far (a std::tmpfile a log::Logger writes to).
inline std::string ReadAll(std::FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::string out;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
  return out;
}

}  // namespace kms::api::testing

#endif  // KMS_TESTS_API_TEST_SERVER_H_
