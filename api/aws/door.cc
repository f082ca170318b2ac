#include "api/aws/door.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>


#include "api/aws/authorization.h"
#include "base/encoding.h"
#include "base/secret_bytes.h"

namespace kms::api::aws {

namespace json = boost::json;

namespace {

constexpr std::string_view kContentType = "application/x-amz-json-1.1";
constexpr std::string_view kTargetPrefix = "TrentService.";
constexpr std::string_view kApplianceTargetPrefix = "KmsAppliance.";

bool AcceptableContentType(std::string_view ct) {
  ct = ct.substr(0, ct.find(';'));
  while (!ct.empty() && ct.back() == ' ') ct.remove_suffix(1);
  return http::HeaderNameEquals(ct, "application/x-amz-json-1.1") ||
         http::HeaderNameEquals(ct, "application/x-amz-json-1.0");
}

// Members that carry plaintexts, messages or private keys (the model's `sensitive` blobs), in requests
// and responses. Their JSON copies are wiped once used (docs/conventions.md "Secrets"); SecretBytes
// holds the decoded values.
AwsError AuditFailure() {
  return AwsError{"KMSInternalException", 500,
                  "The request was not completed: the appliance could not write its audit "
                  "record. Retry the request."};
}

void WipeSensitiveMembers(json::object& o) {
  static constexpr std::string_view kSensitive[] = {"Plaintext", "Message", "PrivateKeyPlaintext",
                                                    "SharedSecret", "SecretAccessKey", "Token"};
  for (const auto name : kSensitive) {
    if (json::value* v = o.if_contains(name); v && v->is_string()) {
      json::string& str = v->get_string();
      SecureWipe(str.data(), str.size());
    }
  }
  // KmsAppliance.CreateAccessKey answers the new secret inside {"AccessKey": {...}}.
  if (json::value* v = o.if_contains("AccessKey"); v && v->is_object()) {
    WipeSensitiveMembers(v->get_object());
  }
  // ...and CreateVaultToken the new Vault token inside {"VaultToken": {...}}.
  if (json::value* v = o.if_contains("VaultToken"); v && v->is_object()) {
    WipeSensitiveMembers(v->get_object());
  }
}

}  // namespace

void OperationTable::Add(std::string name, OperationSpec spec) {
  ops_.insert_or_assign(std::move(name), std::move(spec));
}

const OperationSpec* OperationTable::Find(std::string_view name) const {
  auto it = ops_.find(name);
  return it == ops_.end() ? nullptr : &it->second;
}

std::vector<std::string> OperationTable::Names() const {
  std::vector<std::string> names;
  names.reserve(ops_.size());
  for (const auto& [name, spec] : ops_) names.push_back(name);
  return names;
}

namespace {
sigv4::VerifierConfig VerifierConfigFor(const AwsDoorConfig& c) {
  sigv4::VerifierConfig v;
  v.region = c.region;
  v.service = "kms";
  v.required_signed_headers = {"host", "x-amz-target"};
  v.max_skew = c.max_skew;
  v.clock = c.clock;
  return v;
}
}  // namespace

AwsDoor::AwsDoor(AwsDoorConfig config, const AccessKeyStore& keys, const KeyAuthorizer& authorizer,
                 OperationTable operations, OperationTable appliance_operations)
    : config_(std::move(config)),
      verifier_(VerifierConfigFor(config_), keys),
      authorizer_(authorizer),
      operations_(std::move(operations)),
      appliance_operations_(std::move(appliance_operations)),
      recorder_(config_.observers) {}

http::HttpResponse AwsDoor::ErrorResponse(const AwsError& error, std::string_view request_id) {
  http::HttpResponse r;
  r.status = error.http_status;
  r.headers.emplace_back("x-amzn-RequestId", std::string(request_id));
  r.headers.emplace_back("Content-Type", std::string(kContentType));
  json::object body;
  body["__type"] = error.type;
  // Messages may echo header bytes (Authorization components, X-Amz-Date, the operation name),
  // which are not necessarily UTF-8; JSON must be (found by fuzzing the door).
  body["message"] = PrintableUtf8(error.message);
  r.body = json::serialize(body);
  return r;
}

http::HttpResponse AwsDoor::FaultResponse(http::ServerFault fault, std::string_view detail,
                                        std::string_view /*target*/) {
  AwsError e;
  switch (fault) {
    case http::ServerFault::kBodyTooLarge:
      e = AwsError{"RequestEntityTooLargeException", 413, std::string(detail)};
      break;
    case http::ServerFault::kHeaderTooLarge:
      e = AwsError{"RequestHeaderFieldsTooLargeException", 431, std::string(detail)};
      break;
    case http::ServerFault::kBadRequest:
      e = AwsError{"SerializationException", 400, std::string(detail)};
      break;
    case http::ServerFault::kOverloaded:
      e = ClientError("ThrottlingException",
                      "You have exceeded the rate at which you may call KMS. Reduce the frequency "
                      "of your calls.");
      break;
    case http::ServerFault::kHandlerFailed:
      e = AwsError{"KMSInternalException", 500, "An internal error occurred; retry the request."};
      break;
  }
  return ErrorResponse(e, NewRequestId());
}

AwsResult<json::object> AwsDoor::Dispatch(const http::HttpRequest& request,
                                          std::string_view request_id, RequestNote& note,
                                          sigv4::Caller& who) const {
  // Every way out before the authorizer decides names the stage that refused the request.
  auto refuse = [&note](std::string_view stage, AwsError error) -> AwsResult<json::object> {
    note.decision = "refused:" + std::string(stage);
    return std::unexpected(std::move(error));
  };
  auto caller = verifier_.Verify(request);
  if (!caller) return refuse("unauthenticated", std::move(caller).error());
  who = *caller;

  // docs/aws-kms-protocol.md "Framing": POST /, operation in X-Amz-Target.
  const auto target = request.Header("x-amz-target");
  const bool appliance = target && target->starts_with(kApplianceTargetPrefix);
  if (request.method != "POST" || request.Path() != "/" || !target ||
      !(target->starts_with(kTargetPrefix) || appliance)) {
    return refuse("unsupported",
                  ClientError("UnknownOperationException",
                              "Requests must be POST / with X-Amz-Target: TrentService.<Operation>."));
  }
  // The admin API manages the credentials themselves: administrators only, checked before the
  // operation name is looked at so other callers learn nothing about the table. (The authorizer
  // decides the same again for every admin operation: this early answer only hides the table.)
  if (appliance && !caller->administrator) {
    note.decision = "deny:not-administrator";
    return std::unexpected(ClientError(
        "AccessDeniedException",
        "User: " + caller->principal + " is not authorized to perform: " + std::string(*target) +
            " (appliance administration needs an administrator access key)"));
  }
  const std::string_view op_name =
      target->substr(appliance ? kApplianceTargetPrefix.size() : kTargetPrefix.size());
  const OperationSpec* spec =
      appliance ? appliance_operations_.Find(op_name) : operations_.Find(op_name);
  if (!spec) {
    return refuse("unsupported",
                  ClientError("UnknownOperationException",
                              "Operation '" + std::string(op_name) + "' is not known to this service."));
  }
  const auto content_type = request.Header("content-type");
  if (!content_type || !AcceptableContentType(*content_type)) {
    return refuse("invalid-request",
                  ClientError("SerializationException",
                              "Content-Type must be application/x-amz-json-1.1."));
  }

  json::object body;
  if (!request.body.empty()) {
    boost::system::error_code ec;
    json::value parsed = json::parse(request.body, ec);
    if (ec) {
      return refuse("invalid-request",
                    ClientError("SerializationException", "The request body is not valid JSON."));
    }
    if (!parsed.is_object()) {
      return refuse("invalid-request", ClientError("SerializationException",
                                                   "The request body must be a JSON object."));
    }
    body = std::move(parsed.get_object());
  }
  // The members that may hold secrets are wiped on every way out from here.
  struct Wiper {
    json::object& o;
    ~Wiper() { WipeSensitiveMembers(o); }
  } wiper{body};
  if (!spec->run) {
    return refuse("unsupported",
                  ClientError("UnsupportedOperationException",
                              std::string(op_name) + " is not supported by this appliance."));
  }
  const OperationContext ctx{*caller, request_id, &note, request.remote_address};
  auto authorization = authorizer_.Authorize(op_name, spec->rule, ctx, body);
  if (!authorization) {
    if (note.decision.empty()) {
      note.decision = authorization.error().type == "NotFoundException"
                          ? "refused:not-found"
                          : "refused:invalid-request";
    }
    return std::unexpected(std::move(authorization).error());
  }
  if (spec->mutating && config_.observers.audit != nullptr) {
    // The intent: no state change may exist without a record, so the record that it is about to
    // happen is durable before the operation commits anything.
    const std::string_view door = appliance ? "appliance" : "aws";
    const http::AuditedRequest intent{
        .door = door,
        .operation = op_name,
        .request_id = request_id,
        .principal = caller->principal,
        .credential_id = caller->access_key_id,
        .source_address = request.remote_address,
        .key_arn = note.key_arn,
        .outcome = http::kAuditOutcomeStarted,
        .error_message = {},
        .status = 0,
        .grant_id = note.grant_id,
        .decision = note.decision,
        .encryption_context = &note.encryption_context,
    };
    if (!config_.observers.audit->Record(intent).ok()) return std::unexpected(AuditFailure());
  }
  return spec->run(ctx, *authorization, body);
}

std::pair<std::string_view, std::string_view> AwsDoor::MetricLabels(
    const http::HttpRequest& request) const {
  const auto target = request.Header("x-amz-target");
  if (target && target->starts_with(kApplianceTargetPrefix)) {
    const std::string_view name = target->substr(kApplianceTargetPrefix.size());
    return {"appliance", appliance_operations_.Find(name) ? name : "unknown"};
  }
  if (target && target->starts_with(kTargetPrefix)) {
    const std::string_view name = target->substr(kTargetPrefix.size());
    return {"aws", operations_.Find(name) ? name : "unknown"};
  }
  return {"aws", "unknown"};
}

http::HttpResponse AwsDoor::Handle(const http::HttpRequest& request) const {
  const auto started = std::chrono::steady_clock::now();
  const std::string request_id = NewRequestId();
  http::RequestAuditor* const audit = config_.observers.audit;
  RequestNote note;
  sigv4::Caller who;
  AwsResult<json::object> result;
  if (audit != nullptr && !audit->Ready()) {
    // The audit log failed its last write: perform nothing it could not record (fail closed).
    note.decision = "refused:audit";
    result = std::unexpected(AuditFailure());
  } else {
    try {
      result = Dispatch(request, request_id, note, who);
    } catch (...) {
      // Boundary catch (docs/conventions.md "Errors"): nothing escapes to the server.
      result = std::unexpected(
          AwsError{"KMSInternalException", 500, "An internal error occurred; retry the request."});
    }
  }
  http::HttpResponse r;
  if (!result) {
    r = ErrorResponse(result.error(), request_id);
  } else {
    r.status = 200;
    r.headers.emplace_back("x-amzn-RequestId", request_id);
    r.headers.emplace_back("Content-Type", std::string(kContentType));
    r.body = json::serialize(*result);
    WipeSensitiveMembers(*result);
  }
  const auto [door, operation] = MetricLabels(request);
  // Only a throw before any stage could name itself leaves the decision empty.
  if (note.decision.empty()) note.decision = "refused:internal";
  if (audit != nullptr) {
    const http::AuditedRequest record{
        .door = door,
        .operation = operation,
        .request_id = request_id,
        .principal = who.principal,
        .credential_id = who.access_key_id,
        .source_address = request.remote_address,
        .key_arn = note.key_arn,
        .outcome = result ? std::string_view("ok") : std::string_view(result.error().type),
        .error_message = result ? std::string_view() : std::string_view(result.error().message),
        .status = r.status,
        .grant_id = note.grant_id,
        .decision = note.decision,
        .encryption_context = &note.encryption_context,
    };
    if (Status recorded = audit->Record(record); !recorded.ok()) {
      // No record, no answer: the client sees a server error (its SDK retries), never the result.
      WipeString(r.body);
      result = std::unexpected(AuditFailure());
      r = ErrorResponse(result.error(), request_id);
    }
  }
  recorder_.Record({door, operation, result ? std::string_view("ok") : result.error().type,
                    r.status, request_id, request.remote_address,
                    std::chrono::steady_clock::now() - started});
  return r;
}

}  // namespace kms::api::aws
