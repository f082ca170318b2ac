// The provisioning ceremony: what `kms-provision init` does, once per appliance,
// with the HSM's SO rights, to turn a production configuration (firmware/app/appliance_config.h)
// into a sealed appliance whose secrets exist only on paper.
//
// `RunInitCeremony` checks the request (`CheckCeremonyRequest`: a production configuration with a
// token label and no token serial, a threshold and share count SplitSecret accepts), loads the
// PKCS#11 module at hsm.module, refuses when a token labelled hsm.token_label already exists, picks
// the first uninitialised token, and opens (creating if missing) the store at store.path, refusing
// one that is already provisioned (it has a seal descriptor) or not empty (it holds keys, access
// keys or Vault records, all bound to another domain key). Every refusal comes before the first
// irreversible step. Then: the token is initialised with a fresh SO PIN, the 32-byte unseal secret
// is drawn from the module's RNG while the SO is logged in, the user PIN is set to
// firmware::TokenPinFromUnsealSecret(secret) and the domain key made, all through the sequence dev
// tokens use (provisioning/token_init.h); the secret is split with firmware::SplitSecret drawing
// from the module's RNG, and checked to rebuild; the seal descriptor (threshold, shares, split id,
// the shares' commitment and the secret's verifier, firmware/seal.h) is written to the store; the
// HAL is opened on the new token with the derived PIN (which proves the PIN and the domain key) and
// the bootstrap administrator access key is created.
//
// Secrets: the SO PIN, the shares and the administrator's secret are returned once, in SecretBytes,
// for the caller to print (`FormatCeremonyText`/`FormatCeremonyJson` build the output in
// SecretBytes too); the unseal secret and the user PIN are wiped before RunInitCeremony returns.
// Nothing secret is written to any file: the store receives only the public seal descriptor and the
// access key's sealed secret.
//
// Errors: InvalidArgument from CheckCeremonyRequest (a usage or configuration problem: nothing was
// touched). Before the token is initialised: AlreadyExists for an existing token label or a
// provisioned store, FailedPrecondition for a store that is not empty or a module without a free
// token, and whatever loading the module or opening the store reports. After it, any failure keeps
// its code and its message ends with a note that the token (and perhaps the store) must be cleared
// before the ceremony is run again: PKCS#11 cannot un-initialise a token, and retrying on top of a
// half-made one must not silently succeed.
//
// SoftHSM2 (docs/softhsm2.md "The token's files"): the module rewrites token.object in place on
// every login, and a process killed at that moment loses the token. dev tokens keep a backup in the
// folder they own; the ceremony does not own the production token directory and writes nothing
// there, so when the token is a SoftHSM2 one it returns a warning telling the operator to back the
// directory up. SOFTHSM2_CONF is read by the module when it initialises, as for every process of
// the appliance.
//
// Thread-safety: not thread-safe; loads and finalises the module, so nothing else in the process
// may use it meanwhile.
#ifndef KMS_PROVISIONING_CEREMONY_H_
#define KMS_PROVISIONING_CEREMONY_H_

#include <cstddef>
#include <string>
#include <vector>

#include "base/secret_bytes.h"
#include "base/status.h"
#include "firmware/app/appliance_config.h"

namespace kms::provisioning {

struct CeremonyOptions {
  std::size_t threshold = 0;              // shares needed to unseal
  std::size_t shares = 0;                 // shares made, one per custodian
  std::string admin_principal = "admin";  // IAM user name of the bootstrap administrator key
};

struct CeremonyResult {
  std::string token_label;
  std::string token_serial;
  SecretBytes so_pin;
  std::size_t threshold = 0;
  std::vector<SecretBytes> shares;  // text form ("kms1-..."), share x = 1..N in order
  std::string split_id;             // 16 lowercase hex characters, as the seal descriptor holds it
  std::string access_key_id;
  SecretBytes secret_access_key;
  std::string region;
  std::string account_id;
  std::vector<std::string> warnings;  // for the operator's eyes; never secret
};

// InvalidArgument naming the configuration file when the request cannot be run (see the contract).
Status CheckCeremonyRequest(const app::ApplianceConfig& config, const CeremonyOptions& options);

StatusOr<CeremonyResult> RunInitCeremony(const app::ApplianceConfig& config,
                                         const CeremonyOptions& options);

// What `kms-provision init` prints: the token, the SO PIN, the numbered shares, the threshold, the
// administrator key and the warning that none of it is stored.
SecretBytes FormatCeremonyText(const CeremonyResult& result);
// One JSON object: {"token_label", "token_serial", "so_pin", "threshold", "shares": [...],
// "split_id", "access_key_id", "secret_access_key", "region", "account_id"}, then a newline.
SecretBytes FormatCeremonyJson(const CeremonyResult& result);

}  // namespace kms::provisioning

#endif  // KMS_PROVISIONING_CEREMONY_H_
