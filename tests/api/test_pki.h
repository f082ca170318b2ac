// Test PKI for TLS tests: a CA, a server certificate for 127.0.0.1 and a client certificate (all
// ECDSA P-256), plus an unrelated self-signed pair, made once per process with the openssl CLI in a
// temporary folder. `ok` is false when openssl is unavailable; tests then skip with a message.
#ifndef KMS_TESTS_API_TEST_PKI_H_
#define KMS_TESTS_API_TEST_PKI_H_

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace kms::api::testing {

namespace fs = std::filesystem;

// Creates a CA, a server certificate for 127.0.0.1 and a client certificate, once per process.
struct TestPki {
  fs::path dir;
  bool ok = false;

  TestPki() {
    if (std::system("command -v openssl >/dev/null 2>&1") != 0) return;
    dir = fs::temp_directory_path() / ("kms-tls-test-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    const std::string d = dir.string();
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    const std::string script =
        "set -e; cd '" + d + "';"
        "openssl req -x509" + ec + " -keyout ca.key -out ca.pem -days 1 -subj /CN=kms-test-ca;"
        "printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext;"
        "openssl req" + ec + " -keyout server.key -out server.csr -subj /CN=127.0.0.1;"
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1"
        " -extfile san.ext -out server.pem;"
        "openssl req" + ec + " -keyout client.key -out client.csr -subj /CN=kms-test-client;"
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1"
        " -out client.pem;"
        "openssl req -x509" + ec + " -keyout other.key -out other.pem -days 1 -subj /CN=other;";
    ok = std::system(("(" + script + ") >/dev/null 2>&1").c_str()) == 0;
  }
  ~TestPki() {
    std::error_code ignored;
    if (!dir.empty()) fs::remove_all(dir, ignored);
  }
  std::string Path(const char* name) const { return (dir / name).string(); }
};

inline const TestPki& Pki() {
  static TestPki pki;
  return pki;
}

}  // namespace kms::api::testing

#endif  // KMS_TESTS_API_TEST_PKI_H_
