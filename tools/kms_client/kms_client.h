// A blocking KMS client for the operator tools: one keep-alive connection (plain or TLS,
// tools/kms_client/connection.h), requests signed with SigV4 (request_signer.h), HTTP/1.1 framing
// by Boost.Beast's synchronous read/write over the connection.
//
// `Call` answers the HTTP status and body of any response, including AWS JSON errors (the caller
// decides what a non-200 means); transport failures are a Status (Unavailable for an endpoint that
// cannot be reached, with the reason). A connection the server closed is reopened once.
//
// Thread-safety: none; one client per thread.
#ifndef KMS_TOOLS_KMS_CLIENT_KMS_CLIENT_H_
#define KMS_TOOLS_KMS_CLIENT_KMS_CLIENT_H_

#include <memory>
#include <string>
#include <string_view>

#include "base/secret_bytes.h"
#include "base/status.h"
#include "tools/kms_client/connection.h"
#include "tools/kms_client/request_signer.h"

namespace kms::tools {

struct ClientConfig {
  Endpoint endpoint;
  std::string access_key_id;
  SecretBytes secret;
  std::string region = "us-east-1";
  std::string ca_file;  // https only; empty = $AWS_CA_BUNDLE or the system bundle
};

struct CallResult {
  unsigned status = 0;
  std::string body;
  // For a non-200 AWS JSON error: `__type` (after any '#', before any ':') and `message`.
  std::string error_type;
  std::string error_message;
};

// One unsigned HTTP request on a fresh connection, for the Vault door's sys/ paths (seal-status,
// unseal, seal), which a sealed appliance answers without SigV4 credentials. `vault_token`, when
// non-empty, is sent as X-Vault-Token. The status and body come back as they are.
struct PlainResult {
  unsigned status = 0;
  std::string body;
};
StatusOr<PlainResult> SendPlain(const Endpoint& endpoint, const std::string& ca_file,
                                std::string_view method, std::string_view target,
                                std::string_view body, std::string_view vault_token = {});

class KmsClient {
 public:
  static StatusOr<std::unique_ptr<KmsClient>> Create(ClientConfig config);

  // POST / with X-Amz-Target: `target` (e.g. "TrentService.Encrypt") and a JSON body.
  StatusOr<CallResult> Call(std::string_view target, std::string_view json_body);

  const Endpoint& endpoint() const { return endpoint_; }

 private:
  KmsClient(Endpoint endpoint, RequestSigner signer, std::shared_ptr<TlsClientContext> tls)
      : endpoint_(std::move(endpoint)), signer_(std::move(signer)), tls_(std::move(tls)) {}
  StatusOr<CallResult> CallOnce(std::string_view target, std::string_view json_body);

  Endpoint endpoint_;
  RequestSigner signer_;
  std::shared_ptr<TlsClientContext> tls_;
  std::unique_ptr<Connection> connection_;
};

}  // namespace kms::tools

#endif  // KMS_TOOLS_KMS_CLIENT_KMS_CLIENT_H_
