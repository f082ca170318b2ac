#include "api/aws/aws_server.h"

#include "api/aws/key_service_operations.h"

namespace kms::api::aws {

StatusOr<std::unique_ptr<AwsServer>> AwsServer::Create(AwsServerConfig config,
                                                       const AccessKeyStore& keys,
                                                       firmware::KeyService& service,
                                                       firmware::AccessKeyRegistry* registry,
                                                       firmware::VaultTokenRegistry* vault_tokens) {
  std::unique_ptr<AwsServer> s(new AwsServer());
  OperationTable ops;
  RegisterKeyServiceOperations(ops, service);
  OperationTable appliance_ops;
  if (registry != nullptr) {
    RegisterApplianceOperations(appliance_ops, *registry, service, config.appliance, vault_tokens);
  }
  s->door_ = std::make_unique<AwsDoor>(config.door, keys, std::move(ops), std::move(appliance_ops));
  s->router_ = std::make_unique<http::Router>();
  const AwsDoor* door = s->door_.get();
  s->router_->Exact("/", [door](const http::HttpRequest& r) { return door->Handle(r); });
  // Anything else speaks AWS JSON too, so SDK users see a parseable error.
  s->router_->NotFound([door](const http::HttpRequest& r) { return door->Handle(r); });
  const http::Router* router = s->router_.get();
  KMS_ASSIGN_OR_RETURN(s->server_,
                       http::Server::Create(
                           std::move(config.server),
                           [router](const http::HttpRequest& r) { return (*router)(r); },
                           AwsDoor::FaultResponse));
  return s;
}

AwsServer::~AwsServer() {
  if (server_) server_->Stop();
}

}  // namespace kms::api::aws
