// `kmsctl audit verify`: the offline check of an audit log (firmware/audit/audit_verify.h). It
// needs no endpoint, credentials or running appliance: only the log files and the checkpoint public
// key (PEM "PUBLIC KEY" or DER SubjectPublicKeyInfo, as the appliance's GetAuditPublicKey gives
// it).
//
//   kmsctl audit verify --public-key audit.pub [--require-signed-tail] FOLDER | FILE...
//
// Prints one verdict line on stdout ("audit log intact: ..." or "audit log BROKEN at <file> line
// <n> (seq <s>): <reason>") and warnings on stderr. Exit status: 0 intact (an unsigned tail is a
// warning unless --require-signed-tail), 1 broken (the first broken record named), 2 usage or local
// input errors (unreadable key or files, no audit files).
#ifndef KMS_TOOLS_KMSCTL_AUDIT_VERIFY_COMMAND_H_
#define KMS_TOOLS_KMSCTL_AUDIT_VERIFY_COMMAND_H_

#include <CLI/CLI.hpp>

namespace kms::tools {

// Adds `audit verify` to `app`. The command runs from its CLI11 callback once the command line has
// parsed, and ends the process with its exit status, so the caller needs no dispatch code.
void AddAuditCommands(CLI::App& app);

}  // namespace kms::tools

#endif  // KMS_TOOLS_KMSCTL_AUDIT_VERIFY_COMMAND_H_
