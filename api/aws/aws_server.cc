#include "api/aws/aws_server.h"

#include "api/aws/authorization.h"
#include "api/aws/key_service_operations.h"

namespace kms::api::aws {

std::unique_ptr<AwsDoor> MakeAwsDoor(const AwsServerConfig& config, const AccessKeyStore& keys,
                                     const KeyAuthorizer& authorizer,
                                     firmware::AccessKeyRegistry* registry,
                                     firmware::VaultTokenRegistry* vault_tokens,
                                     firmware::authz::PrincipalRegistry* principals) {
  OperationTable ops;
  RegisterKeyServiceOperations(ops, authorizer.service(), authorizer.access());
  OperationTable appliance_ops;
  if (registry != nullptr) {
    RegisterApplianceOperations(appliance_ops, *registry, authorizer.service(), config.appliance,
                                vault_tokens, principals);
  }
  return std::make_unique<AwsDoor>(config.door, keys, authorizer, std::move(ops),
                                   std::move(appliance_ops));
}

void RouteAwsDoor(http::Router& router, const AwsDoor& door) {
  const AwsDoor* d = &door;
  router.Exact("/", [d](const http::HttpRequest& r) { return d->Handle(r); });
  router.NotFound([d](const http::HttpRequest& r) { return d->Handle(r); });
}

http::HttpResponse SealedAwsResponse(const http::HttpRequest& /*request*/) {
  return AwsDoor::ErrorResponse(
      AwsError{"DependencyTimeoutException", 503, std::string(kSealedMessage)}, NewRequestId());
}

StatusOr<std::unique_ptr<AwsServer>> AwsServer::Create(AwsServerConfig config,
                                                       const AccessKeyStore& keys,
                                                       const KeyAuthorizer& authorizer,
                                                       firmware::AccessKeyRegistry* registry,
                                                       firmware::VaultTokenRegistry* vault_tokens,
                                                       firmware::authz::PrincipalRegistry* principals) {
  std::unique_ptr<AwsServer> s(new AwsServer());
  s->door_ = MakeAwsDoor(config, keys, authorizer, registry, vault_tokens, principals);
  s->router_ = std::make_unique<http::Router>();
  RouteAwsDoor(*s->router_, *s->door_);
  const http::Router* router = s->router_.get();
  KMS_ASSIGN_OR_RETURN(
      s->server_,
      http::Server::Create(
          std::move(config.server), [router](const http::HttpRequest& r) { return (*router)(r); },
          AwsDoor::FaultResponse));
  return s;
}

AwsServer::~AwsServer() {
  if (server_) server_->Stop();
}

}  // namespace kms::api::aws
