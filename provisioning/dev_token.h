// A development/test SoftHSM2 token in a folder of its own: config, token, PINs and domain key.
//
// `CreateDevToken(dir)` writes `dir/softhsm2.conf` (token directory `dir/tokens`, file object
// store, log level ERROR, library.reset_on_fork = true), points SOFTHSM2_CONF at it, initialises a
// token with a random SO PIN (C_InitToken), sets a random user PIN (C_InitPIN), logs in as the user
// and creates the domain key with the policy template of hal/pkcs11_policy.h (the sequence the
// production ceremony shares, provisioning/token_init.h). PINs are drawn from the module's RNG (the
// very first SO PIN, needed before any session can exist, comes from getrandom(2) and is replaced at
// once by one from the module through C_SetPIN) and are only held in SecretBytes.
//
// SOFTHSM2_CONF is PROCESS-GLOBAL and SoftHSM2 reads it when the module initialises (C_Initialize):
// Create/OpenDevToken set it, so call them before any Pkcs11Hsm is opened in the process, and do
// not use two dev tokens in one process at the same time. (Each Catch2 test case runs in its own
// process under CTest, so one token per test is fine.)
//
// DEV MODE ONLY: so that a dev appliance keeps its keys across restarts, the folder also holds
// `dev-token.state` (mode 0600) with the module path, token label/serial, domain key label and the
// USER PIN in hex. A PIN in a file is acceptable for a throwaway dev token and never for a
// production token, whose PIN comes from the unseal ceremony. The SO PIN is not persisted: dev mode
// never needs it.
//
// Crash safety: SoftHSM2 rewrites the token's token.object in place on every successful login, so a
// process killed at that moment leaves it empty and the token vanishes (measured; see
// dev_token.cc). CreateDevToken keeps a copy (`token.object.backup`, 0600) and OpenDevToken puts it
// back when the file is empty or missing. A production SoftHSM2 token has the same hazard and needs
// its token directory backed up; a real HSM does not.
//
// Thread-safety: not thread-safe (environment and module initialisation are process-wide).
#ifndef KMS_PROVISIONING_DEV_TOKEN_H_
#define KMS_PROVISIONING_DEV_TOKEN_H_

#include <string>

#include "base/secret_bytes.h"
#include "base/status.h"

namespace kms::provisioning {

inline constexpr char kSoftHsmModulePath[] = "/usr/lib/softhsm/libsofthsm2.so";

struct DevTokenOptions {
  std::string module_path = kSoftHsmModulePath;
  std::string token_label = "kms-dev";
  std::string domain_key_label = "kms-domain-key";
};

struct DevToken {
  std::string dir;
  std::string conf_path;  // dir/softhsm2.conf
  std::string module_path;
  std::string token_label;
  std::string token_serial;
  SecretBytes so_pin;  // empty when reopened (never persisted)
  SecretBytes user_pin;
  std::string domain_key_label;
};

// Creates the folder (mode 0700) if needed. AlreadyExists if it already holds a dev token.
StatusOr<DevToken> CreateDevToken(const std::string& dir, const DevTokenOptions& options = {});
// Reopens a folder made by CreateDevToken: reads dev-token.state and sets SOFTHSM2_CONF. NotFound
// if the folder holds no dev token.
StatusOr<DevToken> OpenDevToken(const std::string& dir);
// OpenDevToken if `dir` holds a dev token, CreateDevToken otherwise (dev mode start-up).
StatusOr<DevToken> OpenOrCreateDevToken(const std::string& dir,
                                        const DevTokenOptions& options = {});

}  // namespace kms::provisioning

#endif  // KMS_PROVISIONING_DEV_TOKEN_H_
