// `kmsctl audit verify`. See audit_verify_command.h.
#include "tools/kmsctl/audit_verify_command.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/encoding.h"
#include "base/status.h"
#include "firmware/audit/audit_verify.h"

namespace kms::tools {
namespace {

namespace audit = kms::firmware::audit;

constexpr int kExitIntact = 0;
constexpr int kExitBroken = 1;
constexpr int kExitUsage = 2;

struct AuditVerifyArgs {
  std::string public_key;
  std::vector<std::string> paths;
  bool require_signed_tail = false;
};

[[noreturn]] void Finish(int code, const std::string& message) {
  std::fprintf(stderr, "kmsctl: %s\n", message.c_str());
  std::exit(code);
}

// PEM ("-----BEGIN PUBLIC KEY-----" ... "-----END PUBLIC KEY-----") or raw DER. PEM is decoded as
// text, never re-encoded: the checkpoints name the key by the SHA-256 of these exact DER bytes.
StatusOr<Bytes> PublicKeyDer(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot read the public key " + path);
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  constexpr std::string_view kBegin = "-----BEGIN PUBLIC KEY-----";
  constexpr std::string_view kEnd = "-----END PUBLIC KEY-----";
  const auto begin = data.find(kBegin);
  if (begin == std::string::npos) {
    if (data.empty()) return InvalidArgumentError(path + " is empty");
    return ToBytes(data);
  }
  const auto end = data.find(kEnd, begin);
  if (end == std::string::npos) return InvalidArgumentError(path + ": PEM without an END line");
  std::string body;
  for (std::size_t i = begin + kBegin.size(); i < end; ++i) {
    if (data[i] != '\n' && data[i] != '\r' && data[i] != ' ' && data[i] != '\t') {
      body += data[i];
    }
  }
  auto der = Base64Decode(body);
  if (!der.has_value()) return InvalidArgumentError(path + ": the PEM body is not base64");
  return std::move(*der);
}

bool IsDirectory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

int Run(const AuditVerifyArgs& args) {
  auto key = PublicKeyDer(args.public_key);
  if (!key.has_value()) Finish(kExitUsage, key.error().message());
  StatusOr<audit::AuditVerifyReport> report = InternalError("not run");
  if (args.paths.size() == 1 && IsDirectory(args.paths[0])) {
    report = audit::VerifyAuditFolder(args.paths[0], *key);
  } else {
    for (const std::string& p : args.paths) {
      if (IsDirectory(p)) Finish(kExitUsage, "give one folder, or files: " + p + " is a folder");
    }
    report = audit::VerifyAuditLog(args.paths, *key);
  }
  if (!report.has_value()) Finish(kExitUsage, report.error().message());
  std::printf("%s\n", report->Verdict().c_str());
  for (const std::string& w : report->warnings)
    std::fprintf(stderr, "kmsctl: warning: %s\n", w.c_str());
  if (!report->ok) return kExitBroken;
  if (args.require_signed_tail && report->unsigned_tail > 0) {
    std::fprintf(stderr, "kmsctl: --require-signed-tail: %llu records after the last checkpoint\n",
                 static_cast<unsigned long long>(report->unsigned_tail));
    return kExitBroken;
  }
  return kExitIntact;
}

}  // namespace

void AddAuditCommands(CLI::App& app) {
  auto* audit_cmd = app.add_subcommand("audit", "the appliance's audit log (offline)");
  audit_cmd->require_subcommand(1);
  auto* verify = audit_cmd->add_subcommand(
      "verify",
      "check an audit log's hash chain and checkpoint signatures; exit 0 intact, 1 broken");
  // Owned by the callback, which outlives parsing.
  auto args = std::make_shared<AuditVerifyArgs>();
  verify
      ->add_option("--public-key", args->public_key,
                   "checkpoint public key file, PEM or DER (GetAuditPublicKey)")
      ->required();
  verify->add_flag("--require-signed-tail", args->require_signed_tail,
                   "fail (exit 1) when records follow the last checkpoint, e.g. for archived "
                   "files that must end signed");
  verify->add_option("PATH", args->paths, "the log folder, or its audit-*.log files in order")
      ->required();
  verify->callback([args] { std::exit(Run(*args)); });
}

}  // namespace kms::tools
