// `kmsctl audit verify` as an operator runs it, offline: a log written by AuditLog with
// HsmAuditSigner (fake HSM + SQLite), its public key as PEM and as DER, then the verdicts and exit
// statuses for an intact log, a tampered one, the wrong key, an unsigned tail, and usage errors.
// The binary path comes from tests/CMakeLists.txt (KMS_KMSCTL_PATH).
#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "base/encoding.h"
#include "firmware/audit/audit_log.h"
#include "tests/firmware/audit_test_support.h"
#include "tests/support/shell.h"

namespace kms::firmware::audit {
namespace {

namespace fs = std::filesystem;
using kms::testing::Shell;
using testing::Lines;
using testing::MakeEvent;
using testing::OpenLog;
using testing::ReadLog;
using testing::ReadText;
using testing::SignerFixture;
using testing::TempDir;
using testing::WriteText;

std::string Pem(const Bytes& der) {
  const std::string b64 = Base64Encode(der);
  std::string pem = "-----BEGIN PUBLIC KEY-----\n";
  for (std::size_t i = 0; i < b64.size(); i += 64) pem += b64.substr(i, 64) + "\n";
  return pem + "-----END PUBLIC KEY-----\n";
}

std::string Kmsctl(const std::string& args) { return std::string(KMS_KMSCTL_PATH) + " " + args; }

struct Fixture {
  Fixture() : signer(dir.File("kms.db")) {
    folder = dir.File("audit");
    AuditLogOptions options;
    options.folder = folder;
    options.max_file_bytes = 16 * 1024;
    options.checkpoint_every = 25;
    auto log = OpenLog(options, *signer.signer);
    for (int i = 0; i < 120; ++i) KMS_AUDIT_REQUIRE_OK(log->Append(MakeEvent(i)));
    KMS_AUDIT_REQUIRE_OK(log->Close());
    pem = dir.File("audit.pem");
    der = dir.File("audit.der");
    WriteText(pem, Pem(signer.signer->public_key_der()));
    WriteText(der, ToString(signer.signer->public_key_der()));
  }
  TempDir dir;
  SignerFixture signer;
  std::string folder, pem, der;
};

TEST_CASE("kmsctl audit verify: an intact log exits 0 with a one-line verdict",
          "[unit][audit][kmsctl]") {
  Fixture f;
  const auto files = ReadLog(f.folder);
  REQUIRE(files.size() >= 2);
  std::uint64_t lines = 0;
  for (const auto& file : files) lines += Lines(file.contents).size();
  const std::string verdict = "audit log intact: 120 records, " + std::to_string(lines) +
                              " lines, seq 1.." + std::to_string(lines) + " in " +
                              std::to_string(files.size()) + " files, " +
                              std::to_string(lines - 120) + " signed checkpoints\n";

  auto run = Shell(Kmsctl("audit verify --public-key " + f.pem + " " + f.folder));
  INFO(run.output);
  CHECK(run.exit_code == 0);
  CHECK(run.output == verdict);

  // DER key, files listed explicitly.
  std::string paths;
  for (const auto& file : files) paths += " " + f.folder + "/" + file.name;
  run = Shell(Kmsctl("audit verify --public-key " + f.der + paths));
  INFO(run.output);
  CHECK(run.exit_code == 0);
  CHECK(run.output == verdict);
}

TEST_CASE("kmsctl audit verify: a tampered log exits 1 naming the first broken record",
          "[unit][audit][kmsctl]") {
  Fixture f;
  const auto files = ReadLog(f.folder);
  const std::string path = f.folder + "/" + files[0].name;
  std::string text = ReadText(path);
  const auto at = text.find("\"request_id\":\"req-7\"");
  REQUIRE(at != std::string::npos);
  text[at + 14] = 'X';  // req-7 -> Xeq-7: the record is still well formed
  WriteText(path, text);
  auto run = Shell(Kmsctl("audit verify --public-key " + f.pem + " " + f.folder));
  INFO(run.output);
  CHECK(run.exit_code == 1);
  CHECK(run.output ==
        "audit log BROKEN at " + path + " line 9 (seq 9): prev hash does not match line 8\n");
}

TEST_CASE("kmsctl audit verify: the wrong key exits 1", "[unit][audit][kmsctl]") {
  Fixture f;
  SignerFixture other(f.dir.File("other.db"));
  const std::string other_pem = f.dir.File("other.pem");
  WriteText(other_pem, Pem(other.signer->public_key_der()));
  const std::string fp = HexEncode(AuditLineHash(ToString(f.signer.signer->public_key_der())));
  auto run = Shell(Kmsctl("audit verify --public-key " + other_pem + " " + f.folder));
  INFO(run.output);
  CHECK(run.exit_code == 1);
  CHECK(run.output == "audit log BROKEN at " + f.folder + "/" + AuditFileName(1) +
                          " line 26 (seq 26): checkpoint signed by another key " + fp + "\n");
}

TEST_CASE("kmsctl audit verify: an unsigned tail warns, or fails with --require-signed-tail",
          "[unit][audit][kmsctl]") {
  Fixture f;
  const auto files = ReadLog(f.folder);
  const std::string path = f.folder + "/" + files.back().name;
  auto lines = Lines(files.back().contents);
  lines.pop_back();  // Close's checkpoint: the tail is now unsigned
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  WriteText(path, text);
  auto run = Shell(Kmsctl("audit verify --public-key " + f.pem + " " + f.folder));
  INFO(run.output);
  CHECK(run.exit_code == 0);
  CHECK(run.output.find("unsigned after the last checkpoint\n") != std::string::npos);
  CHECK(run.output.find("kmsctl: warning: ") != std::string::npos);
  CHECK(run.output.find("are not signed; removing them (truncating the tail) could not be "
                        "detected") != std::string::npos);
  run = Shell(Kmsctl("audit verify --require-signed-tail --public-key " + f.pem + " " + f.folder));
  INFO(run.output);
  CHECK(run.exit_code == 1);
  CHECK(run.output.find("kmsctl: --require-signed-tail: ") != std::string::npos);
}

TEST_CASE("kmsctl audit verify: usage and input errors exit 2", "[unit][audit][kmsctl]") {
  Fixture f;
  auto run = Shell(Kmsctl("audit verify " + f.folder));  // no --public-key
  CHECK(run.exit_code == 2);
  CHECK(run.output.find("--public-key is required") != std::string::npos);
  run = Shell(Kmsctl("audit verify --public-key " + f.pem));  // no path
  CHECK(run.exit_code == 2);
  run = Shell(Kmsctl("audit verify --public-key " + f.dir.File("missing.pem") + " " + f.folder));
  CHECK(run.exit_code == 2);
  CHECK(run.output == "kmsctl: cannot read the public key " + f.dir.File("missing.pem") + "\n");
  run = Shell(Kmsctl("audit verify --public-key " + f.pem + " " + f.dir.File("nowhere")));
  CHECK(run.exit_code == 2);
  CHECK(run.output.starts_with("kmsctl: audit verify: cannot read " + f.dir.File("nowhere")));
  fs::create_directory(f.dir.File("empty"));
  run = Shell(Kmsctl("audit verify --public-key " + f.pem + " " + f.dir.File("empty")));
  CHECK(run.exit_code == 2);
  CHECK(run.output ==
        "kmsctl: audit verify: no audit-*.log files in " + f.dir.File("empty") + "\n");
  WriteText(f.dir.File("junk.pem"), "not a key");
  run = Shell(Kmsctl("audit verify --public-key " + f.dir.File("junk.pem") + " " + f.folder));
  CHECK(run.exit_code == 2);
  CHECK(run.output == "kmsctl: audit verify: the public key is not a DER SubjectPublicKeyInfo\n");
  run = Shell(Kmsctl("audit verify --help"));
  CHECK(run.exit_code == 0);
  CHECK(run.output.find("--require-signed-tail") != std::string::npos);
}

}  // namespace
}  // namespace kms::firmware::audit
