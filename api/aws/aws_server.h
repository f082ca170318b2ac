// The AWS KMS endpoint in one object, for the composition root (kmsd): an http::Server whose router
// serves the AwsDoor at "/" with every KeyService operation registered, faults answered in AWS
// JSON.
//
//   kms::api::aws::AwsServerConfig cfg;
//   cfg.server.bind_address = "127.0.0.1";  cfg.server.port = 0;         // port 0: any free port
//   cfg.server.tls = kms::api::tls::TlsOptions{"cert.pem", "key.pem", ""};  // unset = plain HTTP
//   cfg.door.region = "us-east-1";  cfg.door.account_id = "111122223333";
//   kms::api::aws::KeyAuthorizer authorizer(key_service, access_control);
//   auto server = kms::api::aws::AwsServer::Create(cfg, access_keys, authorizer);
//   (*server)->router().Exact("/health", health_handler);   // optional, before Start
//   KMS_RETURN_IF_ERROR((*server)->Start());
//   ... (*server)->port() ...;  on SIGTERM: (*server)->Stop();   // drains, then returns
//
// With an AccessKeyRegistry, the door also serves the appliance admin API (`KmsAppliance.<Op>`,
// administrators only; api/aws/appliance_operations.h), described by `config.appliance`; with a
// VaultTokenRegistry as well, the admin API also manages the Vault door's tokens.
//
// Lifetime: `keys`, `authorizer` (and its service and access control), `registry`,
// `vault_tokens` and `principals` must outlive the AwsServer.
// Thread-safety: as http::Server.
#ifndef KMS_API_AWS_AWS_SERVER_H_
#define KMS_API_AWS_AWS_SERVER_H_

#include <cstdint>
#include <memory>
#include <string_view>

#include "api/aws/access_key_store.h"
#include "api/aws/appliance_operations.h"
#include "api/aws/door.h"
#include "api/http/router.h"
#include "api/http/server.h"
#include "base/status.h"

namespace kms::firmware {
class AccessKeyRegistry;
class KeyService;
class VaultTokenRegistry;
namespace authz {
class PrincipalRegistry;
}  // namespace authz
}  // namespace kms::firmware

namespace kms::api::aws {

class KeyAuthorizer;

struct AwsServerConfig {
  http::ServerConfig server;  // bind address, port, TLS, threads, limits, timeouts
  AwsDoorConfig door;         // region, account id, clock skew
  ApplianceInfo appliance;    // what GetApplianceStatus reports (admin API only)
};

// The door with every KeyService operation registered (and the admin API with a registry), for a
// composition root that owns its server and swaps routes (kmsd serves a sealed appliance first).
// Same lifetimes as AwsServer::Create.
// Every operation is decided by `authorizer` (api/aws/authorization.h) over its key service and
// access control: there is no door without one.
std::unique_ptr<AwsDoor> MakeAwsDoor(const AwsServerConfig& config, const AccessKeyStore& keys,
                                     const KeyAuthorizer& authorizer,
                                     firmware::AccessKeyRegistry* registry = nullptr,
                                     firmware::VaultTokenRegistry* vault_tokens = nullptr,
                                     firmware::authz::PrincipalRegistry* principals = nullptr);
// Serves `door` at "/" and, so SDK users see a parseable error, for every path no other route
// takes.
void RouteAwsDoor(http::Router& router, const AwsDoor& door);
// What a sealed appliance answers on the AWS door: 503 DependencyTimeoutException, which every SDK
// retries, with a message saying the appliance is sealed. Nothing is authenticated (the access keys
// are sealed too) and nothing else is revealed.
http::HttpResponse SealedAwsResponse(const http::HttpRequest& request);
inline constexpr std::string_view kSealedMessage =
    "The KMS appliance is sealed: its custodians must unseal it (kmsctl unseal) before it serves "
    "requests.";

class AwsServer {
 public:
  static StatusOr<std::unique_ptr<AwsServer>> Create(
      AwsServerConfig config, const AccessKeyStore& keys, const KeyAuthorizer& authorizer,
      firmware::AccessKeyRegistry* registry = nullptr,
      firmware::VaultTokenRegistry* vault_tokens = nullptr,
      firmware::authz::PrincipalRegistry* principals = nullptr);
  ~AwsServer();  // Stop()

  // Add further routes (health, other doors) before Start.
  http::Router& router() { return *router_; }
  Status Start() { return server_->Start(); }
  void Stop() { server_->Stop(); }
  std::uint16_t port() const { return server_->port(); }
  std::size_t connection_count() const { return server_->connection_count(); }
  const AwsDoor& door() const { return *door_; }

 private:
  AwsServer() = default;
  std::unique_ptr<AwsDoor> door_;
  std::unique_ptr<http::Router> router_;
  std::unique_ptr<http::Server> server_;
};

}  // namespace kms::api::aws

#endif  // KMS_API_AWS_AWS_SERVER_H_
