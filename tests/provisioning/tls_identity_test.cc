// `kms-provision tls` (provisioning/tls_identity.h): the key, the self-signed certificate and the
// CSR it writes, checked with mbedTLS's own parser, with the openssl CLI (an independent X.509
// implementation) and by a real TLS handshake against kmsd's HTTP server, whose client (openssl
// s_client) trusts only the new certificate and verifies it for a DNS name and for an IP address.
// Refusals are checked with the exact message, in-process and through the binary (exit 2).
#include "provisioning/tls_identity.h"

#include <mbedtls/asn1.h>
#include <mbedtls/ecp.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>
#include <mbedtls/x509_csr.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <array>
#include <catch2/catch.hpp>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "api/http/server.h"
#include "api/tls/tls_context.h"
#include "tests/support/shell.h"

namespace kms::provisioning {
namespace {

namespace fs = std::filesystem;
namespace http = kms::api::http;
namespace tls = kms::api::tls;

struct TempDir {
  fs::path path;
  TempDir() {
    std::string templ = (fs::temp_directory_path() / "kms-tls-XXXXXX").string();
    REQUIRE(::mkdtemp(templ.data()) != nullptr);
    path = templ;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

using Run = kms::testing::ShellRun;
using kms::testing::Shell;

bool HaveOpenssl() {
  if (Shell("openssl version").exit_code != 0) {
    WARN("openssl CLI unavailable: its checks are skipped");
    return false;
  }
  return true;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

unsigned Mode(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return static_cast<unsigned>(st.st_mode & 07777);
}

TlsIdentityRequest Request(const TempDir& dir) {
  TlsIdentityRequest r;
  r.dns_names = {"kms.example.internal", "kms"};
  r.ip_addresses = {"127.0.0.1", "10.1.2.3", "::1", "fd00::5"};
  r.key_out = dir / "key.pem";
  r.cert_out = dir / "cert.pem";
  return r;
}

struct ParsedCert {
  mbedtls_x509_crt crt;
  ParsedCert() { mbedtls_x509_crt_init(&crt); }
  ~ParsedCert() { mbedtls_x509_crt_free(&crt); }
};
struct ParsedKey {
  mbedtls_pk_context pk;
  ParsedKey() { mbedtls_pk_init(&pk); }
  ~ParsedKey() { mbedtls_pk_free(&pk); }
};

std::time_t ToTime(const mbedtls_x509_time& t) {
  std::tm tm{};
  tm.tm_year = t.year - 1900;
  tm.tm_mon = t.mon - 1;
  tm.tm_mday = t.day;
  tm.tm_hour = t.hour;
  tm.tm_min = t.min;
  tm.tm_sec = t.sec;
  return ::timegm(&tm);
}

TEST_CASE("tls identity: a P-256 key (0600) and a self-signed certificate for it", "[unit]") {
  TempDir dir;
  TlsIdentityRequest request = Request(dir);
  request.days = 30;
  const std::time_t before = std::time(nullptr);
  auto result = CreateTlsIdentity(request);
  REQUIRE(result.has_value());
  const std::time_t after = std::time(nullptr);

  CHECK(Mode(request.key_out) == 0600);
  CHECK(Mode(request.cert_out) == 0644);
  ParsedKey key;
  REQUIRE(mbedtls_pk_parse_keyfile(&key.pk, request.key_out.c_str(), nullptr) == 0);
  REQUIRE(mbedtls_pk_get_type(&key.pk) == MBEDTLS_PK_ECKEY);
  CHECK(mbedtls_pk_ec(key.pk)->grp.id == MBEDTLS_ECP_DP_SECP256R1);

  ParsedCert cert;
  REQUIRE(mbedtls_x509_crt_parse_file(&cert.crt, request.cert_out.c_str()) == 0);
  CHECK(cert.crt.version == 3);
  CHECK(mbedtls_pk_check_pair(&cert.crt.pk, &key.pk) == 0);  // the certificate's key is this key
  CHECK(cert.crt.sig_md == MBEDTLS_MD_SHA256);
  CHECK(cert.crt.sig_pk == MBEDTLS_PK_ECDSA);
  // Self-signed: issuer = subject, and the signature verifies under the certificate's own key.
  CHECK(cert.crt.issuer_raw.len == cert.crt.subject_raw.len);
  std::array<char, 256> subject{};
  REQUIRE(mbedtls_x509_dn_gets(subject.data(), subject.size(), &cert.crt.subject) > 0);
  CHECK(std::string(subject.data()) == "CN=kms.example.internal");
  // Serial: 16 bytes, positive.
  CHECK(cert.crt.serial.len == 16);
  CHECK((cert.crt.serial.p[0] & 0x80) == 0);

  // CA:FALSE, digitalSignature, serverAuth.
  CHECK((cert.crt.ext_types & MBEDTLS_X509_EXT_BASIC_CONSTRAINTS) != 0);
  CHECK(cert.crt.ca_istrue == 0);
  CHECK(cert.crt.key_usage == MBEDTLS_X509_KU_DIGITAL_SIGNATURE);
  CHECK(mbedtls_x509_crt_check_extended_key_usage(&cert.crt, MBEDTLS_OID_SERVER_AUTH,
                                                  MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)) == 0);

  // Validity: from five minutes ago for `days` days.
  const std::time_t from = ToTime(cert.crt.valid_from);
  const std::time_t to = ToTime(cert.crt.valid_to);
  CHECK(from >= before - 300);
  CHECK(from <= after - 300);
  CHECK(to - from == 30 * 24 * 3600 + 300);
  CHECK(mbedtls_x509_time_is_past(&cert.crt.valid_from) == 1);
  CHECK(mbedtls_x509_time_is_future(&cert.crt.valid_to) == 1);

  // mbedTLS's own reading of the SAN: every dNSName, in order.
  std::vector<std::string> dns;
  for (const mbedtls_x509_sequence* s = &cert.crt.subject_alt_names; s != nullptr && s->buf.p;
       s = s->next) {
    if (s->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_DNS_NAME)) {
      dns.emplace_back(reinterpret_cast<const char*>(s->buf.p), s->buf.len);
    }
  }
  CHECK(dns == request.dns_names);

  // mbedTLS trusts it (as a locally trusted end-entity certificate) for each DNS name only.
  uint32_t flags = 0;
  CHECK(mbedtls_x509_crt_verify(&cert.crt, &cert.crt, nullptr, "kms", &flags, nullptr, nullptr) ==
        0);
  CHECK(mbedtls_x509_crt_verify(&cert.crt, &cert.crt, nullptr, "other.example", &flags, nullptr,
                                nullptr) != 0);
  CHECK((flags & MBEDTLS_X509_BADCERT_CN_MISMATCH) != 0);

  CHECK(result->subject_alt_names == std::vector<std::string>{"DNS:kms.example.internal", "DNS:kms",
                                                              "IP:127.0.0.1", "IP:10.1.2.3",
                                                              "IP:::1", "IP:fd00::5"});
  CHECK(result->sha256_fingerprint.size() == 32 * 3 - 1);

  if (!HaveOpenssl()) return;
  // openssl's reading: every DNS name and every address (IPv6 in its long uppercase form).
  const Run san = Shell("openssl x509 -noout -ext subjectAltName -in '" + request.cert_out + "'");
  INFO(san.output);
  REQUIRE(san.exit_code == 0);
  CHECK(san.output.find("DNS:kms.example.internal, DNS:kms, IP Address:127.0.0.1, "
                        "IP Address:10.1.2.3, IP Address:0:0:0:0:0:0:0:1, "
                        "IP Address:FD00:0:0:0:0:0:0:5\n") != std::string::npos);
  const Run ext =
      Shell("openssl x509 -noout -ext basicConstraints,keyUsage,extendedKeyUsage -in '" +
            request.cert_out + "'");
  INFO(ext.output);
  CHECK(ext.output.find("CA:FALSE") != std::string::npos);
  CHECK(ext.output.find("Key Usage: critical\n    Digital Signature") != std::string::npos);
  CHECK(ext.output.find("TLS Web Server Authentication") != std::string::npos);
  // The fingerprint printed is openssl's SHA-256 fingerprint of the certificate.
  const Run fp = Shell("openssl x509 -noout -fingerprint -sha256 -in '" + request.cert_out + "'");
  CHECK(fp.output == "sha256 Fingerprint=" + result->sha256_fingerprint + "\n");
  // The key is P-256 for openssl too, and never in the summary.
  const Run pkey = Shell("openssl pkey -noout -text -in '" + request.key_out + "'");
  CHECK(pkey.output.find("NIST CURVE: P-256") != std::string::npos);
  const std::string summary = FormatTlsIdentityText(request, *result);
  CHECK(summary.find("PRIVATE KEY") == std::string::npos);
  CHECK(summary.find(result->sha256_fingerprint) != std::string::npos);
}

TEST_CASE("tls identity: the default validity is 397 days and the maximum 825", "[unit]") {
  for (const int days : {kTlsDefaultDays, kTlsMaxDays}) {
    TempDir dir;
    TlsIdentityRequest request = Request(dir);
    request.days = days;
    REQUIRE(CreateTlsIdentity(request).has_value());
    ParsedCert cert;
    REQUIRE(mbedtls_x509_crt_parse_file(&cert.crt, request.cert_out.c_str()) == 0);
    CHECK(ToTime(cert.crt.valid_to) - ToTime(cert.crt.valid_from) ==
          static_cast<std::time_t>(days) * 24 * 3600 + 300);
  }
  CHECK(TlsIdentityRequest{}.days == 397);
}

TEST_CASE("tls identity: the CSR carries the subject and the SAN, signed by the same key",
          "[unit]") {
  TempDir dir;
  TlsIdentityRequest request = Request(dir);
  request.csr_out = dir / "request.csr";
  REQUIRE(CreateTlsIdentity(request).has_value());
  CHECK(Mode(request.csr_out) == 0644);
  mbedtls_x509_csr csr;
  mbedtls_x509_csr_init(&csr);
  REQUIRE(mbedtls_x509_csr_parse_file(&csr, request.csr_out.c_str()) == 0);
  ParsedKey key;
  REQUIRE(mbedtls_pk_parse_keyfile(&key.pk, request.key_out.c_str(), nullptr) == 0);
  CHECK(mbedtls_pk_check_pair(&csr.pk, &key.pk) == 0);
  std::array<char, 256> subject{};
  REQUIRE(mbedtls_x509_dn_gets(subject.data(), subject.size(), &csr.subject) > 0);
  CHECK(std::string(subject.data()) == "CN=kms.example.internal");
  mbedtls_x509_csr_free(&csr);
  if (!HaveOpenssl()) return;
  const Run req = Shell("openssl req -noout -verify -text -in '" + request.csr_out + "'");
  INFO(req.output);
  REQUIRE(req.exit_code == 0);
  CHECK(req.output.find("verify OK") != std::string::npos);
  CHECK(req.output.find("DNS:kms.example.internal, DNS:kms, IP Address:127.0.0.1, "
                        "IP Address:10.1.2.3, IP Address:0:0:0:0:0:0:0:1, "
                        "IP Address:FD00:0:0:0:0:0:0:5") != std::string::npos);
}

http::HttpResponse Hello(const http::HttpRequest&) {
  http::HttpResponse r;
  r.body = "hello";
  return r;
}

TEST_CASE("tls identity: kmsd's server presents it and a client trusting it verifies name and IP",
          "[unit]") {
  if (!HaveOpenssl()) return;
  TempDir dir;
  const TlsIdentityRequest request = Request(dir);
  REQUIRE(CreateTlsIdentity(request).has_value());
  http::ServerConfig cfg;
  cfg.tls = tls::TlsOptions{request.cert_out, request.key_out, ""};
  auto server = http::Server::Create(std::move(cfg), Hello);
  REQUIRE(server.has_value());
  REQUIRE((*server)->Start().ok());
  const std::string base =
      "openssl s_client -connect 127.0.0.1:" + std::to_string((*server)->port()) + " -CAfile '" +
      request.cert_out + "' -verify_return_error ";
  const auto connect = [&](const std::string& args) { return Shell(base + args + " </dev/null"); };

  for (const std::string name : {"kms.example.internal", "kms"}) {
    const Run run = connect("-servername " + name + " -verify_hostname " + name);
    INFO(run.output);
    CHECK(run.exit_code == 0);
    CHECK(run.output.find("Verify return code: 0 (ok)") != std::string::npos);
    CHECK(run.output.find("Protocol  : TLSv1.2") != std::string::npos);
  }
  for (const std::string ip : {"127.0.0.1", "::1"}) {
    const Run run = connect("-verify_ip " + ip);
    INFO(run.output);
    CHECK(run.exit_code == 0);
    CHECK(run.output.find("Verify return code: 0 (ok)") != std::string::npos);
  }
  // The same client refuses a name or address the certificate does not hold.
  const Run wrong_name = connect("-servername other.example -verify_hostname other.example");
  INFO(wrong_name.output);
  CHECK(wrong_name.exit_code != 0);
  CHECK(wrong_name.output.find("hostname mismatch") != std::string::npos);
  const Run wrong_ip = connect("-verify_ip 10.9.9.9");
  INFO(wrong_ip.output);
  CHECK(wrong_ip.exit_code != 0);
  CHECK(wrong_ip.output.find("IP address mismatch") != std::string::npos);
  (*server)->Stop();
}

TEST_CASE("tls identity: existing outputs are refused and left untouched", "[unit]") {
  TempDir dir;
  TlsIdentityRequest request = Request(dir);
  request.csr_out = dir / "request.csr";
  for (const std::string* existing : {&request.key_out, &request.cert_out, &request.csr_out}) {
    TempDir d;
    TlsIdentityRequest r = Request(d);
    r.csr_out = d / "request.csr";
    const std::string* target = existing == &request.key_out    ? &r.key_out
                                : existing == &request.cert_out ? &r.cert_out
                                                                : &r.csr_out;
    { std::ofstream(*target) << "keep me"; }
    auto result = CreateTlsIdentity(r);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().code() == StatusCode::kAlreadyExists);
    const std::string option = target == &r.key_out    ? "--key-out"
                               : target == &r.cert_out ? "--cert-out"
                                                       : "--csr-out";
    CHECK(result.error().message() ==
          "tls: " + option + " '" + *target + "': already exists (never overwritten)");
    CHECK(ReadFile(*target) == "keep me");
    // Nothing else was written.
    std::size_t files = 0;
    for (const auto& e : fs::directory_iterator(d.path))
      if (e.is_regular_file()) ++files;
    CHECK(files == 1);
  }
  // A second run over the first one's files is refused too.
  REQUIRE(CreateTlsIdentity(request).has_value());
  const std::string key = ReadFile(request.key_out);
  REQUIRE_FALSE(CreateTlsIdentity(request).has_value());
  CHECK(ReadFile(request.key_out) == key);
}

TEST_CASE("tls identity: bad requests are refused with the exact message", "[unit]") {
  TempDir dir;
  struct Case {
    const char* what;
    std::vector<std::string> dns;
    std::vector<std::string> ips;
    int days;
    std::string message;
  };
  const std::string bad_dns =
      "': not a valid DNS name (dot-separated labels of letters, digits and '-', 1 to 63 "
      "characters each, not starting or ending with '-', 253 characters in all; no wildcards)";
  const std::vector<Case> cases = {
      {"no dns",
       {},
       {},
       397,
       "tls: at least one --dns name is needed (the first is the subject CN)"},
      {"underscore", {"bad_name.example"}, {}, 397, "tls: --dns 'bad_name.example" + bad_dns},
      {"wildcard", {"*.example"}, {}, 397, "tls: --dns '*.example" + bad_dns},
      {"empty label", {"a..example"}, {}, 397, "tls: --dns 'a..example" + bad_dns},
      {"trailing dot", {"kms.example."}, {}, 397, "tls: --dns 'kms.example." + bad_dns},
      {"leading hyphen", {"-kms.example"}, {}, 397, "tls: --dns '-kms.example" + bad_dns},
      {"label of 64",
       {std::string(64, 'a')},
       {},
       397,
       "tls: --dns '" + std::string(64, 'a') + bad_dns},
      {"ip as dns",
       {"10.0.0.1"},
       {},
       397,
       "tls: --dns '10.0.0.1': an IP address; give it with --ip"},
      {"short ip", {"kms"}, {"10.0.0"}, 397, "tls: --ip '10.0.0': not an IPv4 or IPv6 address"},
      {"bad v6",
       {"kms"},
       {"fd00::1::2"},
       397,
       "tls: --ip 'fd00::1::2': not an IPv4 or IPv6 address"},
      {"name as ip",
       {"kms"},
       {"kms.example"},
       397,
       "tls: --ip 'kms.example': not an IPv4 or IPv6 address"},
      {"zero days", {"kms"}, {}, 0, "tls: --days 0: must be 1 to 825"},
      {"too many days", {"kms"}, {}, 826, "tls: --days 826: must be 1 to 825"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    TlsIdentityRequest r;
    r.dns_names = c.dns;
    r.ip_addresses = c.ips;
    r.days = c.days;
    r.key_out = dir / "key.pem";
    r.cert_out = dir / "cert.pem";
    auto result = CreateTlsIdentity(r);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().code() == StatusCode::kInvalidArgument);
    CHECK(result.error().message() == c.message);
  }
  TlsIdentityRequest same = Request(dir);
  same.cert_out = same.key_out;
  CHECK(CreateTlsIdentity(same).error().message() ==
        "tls: --key-out, --cert-out and --csr-out must be different files");
  CHECK(fs::is_empty(dir.path));
}

TEST_CASE("tls identity: the subjectAltName DER, short and long lengths", "[unit]") {
  // SEQUENCE { [2] "a", [7] 0A 00 00 01, [7] ::1 }
  auto short_form = EncodeSubjectAltNames({"a"}, {"10.0.0.1", "::1"});
  REQUIRE(short_form.has_value());
  std::vector<std::uint8_t> expected = {0x30, 0x1b, 0x82, 0x01, 'a',  0x87, 0x04,
                                        0x0a, 0x00, 0x00, 0x01, 0x87, 0x10};
  expected.insert(expected.end(), std::size_t{15}, std::uint8_t{0});
  expected.push_back(0x01);
  CHECK(*short_form == expected);
  // A 253-character name: its own length in the 0x81 form, two of them push the SEQUENCE to 0x82.
  const std::string longest = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                              std::string(63, 'c') + "." + std::string(61, 'd');
  REQUIRE(longest.size() == 253);
  auto long_form = EncodeSubjectAltNames({longest, longest}, {});
  REQUIRE(long_form.has_value());
  REQUIRE(long_form->size() == 4 + 2 * (3 + 253));
  CHECK(std::vector<std::uint8_t>(long_form->begin(), long_form->begin() + 7) ==
        std::vector<std::uint8_t>{0x30, 0x82, 0x02, 0x00, 0x82, 0x81, 0xfd});
  // And a certificate holding them parses in mbedTLS and shows them in openssl.
  TempDir dir;
  TlsIdentityRequest request = Request(dir);
  request.dns_names = {longest, "kms"};
  REQUIRE(CreateTlsIdentity(request).has_value());
  ParsedCert cert;
  REQUIRE(mbedtls_x509_crt_parse_file(&cert.crt, request.cert_out.c_str()) == 0);
  uint32_t flags = 0;
  CHECK(mbedtls_x509_crt_verify(&cert.crt, &cert.crt, nullptr, longest.c_str(), &flags, nullptr,
                                nullptr) == 0);
  if (!HaveOpenssl()) return;
  const Run san = Shell("openssl x509 -noout -ext subjectAltName -in '" + request.cert_out + "'");
  CHECK(san.output.find("DNS:" + longest + ", DNS:kms, IP Address:127.0.0.1") != std::string::npos);
}

TEST_CASE("tls identity: kms-provision tls prints the fingerprint and SANs, exit 2 on refusals",
          "[unit]") {
  TempDir dir;
  const std::string bin = KMS_PROVISION_PATH;
  const std::string key = dir / "key.pem", cert = dir / "cert.pem";
  const Run ok = Shell(bin + " tls --key-out '" + key + "' --cert-out '" + cert +
                       "' --dns kms.example --dns kms --ip 127.0.0.1 --ip ::1 --days 90");
  INFO(ok.output);
  REQUIRE(ok.exit_code == 0);
  CHECK(ok.output.find("sha256 fingerprint: ") != std::string::npos);
  CHECK(ok.output.find(
            "subject alternative names: DNS:kms.example, DNS:kms, IP:127.0.0.1, IP:::1\n") !=
        std::string::npos);
  CHECK(ok.output.find("PRIVATE KEY") == std::string::npos);
  CHECK(Mode(key) == 0600);

  const Run again = Shell(bin + " tls --key-out '" + key + "' --cert-out '" + dir / "c2.pem" +
                          "' --dns kms.example");
  CHECK(again.exit_code == 2);
  CHECK(again.output ==
        "kms-provision: tls: --key-out '" + key + "': already exists (never overwritten)\n");
  const Run no_dns =
      Shell(bin + " tls --key-out '" + dir / "k2.pem" + "' --cert-out '" + dir / "c2.pem" + "'");
  CHECK(no_dns.exit_code == 2);
  CHECK(no_dns.output ==
        "kms-provision: tls: at least one --dns name is needed (the first is the subject CN)\n");
  const Run bad_ip = Shell(bin + " tls --key-out '" + dir / "k2.pem" + "' --cert-out '" +
                           dir / "c2.pem" + "' --dns kms --ip 300.1.1.1");
  CHECK(bad_ip.exit_code == 2);
  CHECK(bad_ip.output == "kms-provision: tls: --ip '300.1.1.1': not an IPv4 or IPv6 address\n");
  const Run days = Shell(bin + " tls --key-out '" + dir / "k2.pem" + "' --cert-out '" +
                         dir / "c2.pem" + "' --dns kms --days 1000");
  CHECK(days.exit_code == 2);
  CHECK(days.output == "kms-provision: tls: --days 1000: must be 1 to 825\n");
  CHECK_FALSE(fs::exists(dir / "k2.pem"));
  CHECK_FALSE(fs::exists(dir / "c2.pem"));
}

}  // namespace
}  // namespace kms::provisioning
