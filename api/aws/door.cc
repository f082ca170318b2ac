#include "api/aws/door.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <array>
#include <cstdio>
#include <random>

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
// and responses. Their JSON copies are wiped once used (CONVENTIONS.md "Secrets"); SecretBytes holds
// the decoded values.
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

std::string NewRequestId() {
  // Request ids are correlation handles, not secrets; a per-thread PRNG seeded once is enough.
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::array<std::uint8_t, 16> b{};
  for (std::size_t i = 0; i < b.size(); i += 8) {
    const std::uint64_t r = rng();
    for (std::size_t j = 0; j < 8; ++j) b[i + j] = static_cast<std::uint8_t>(r >> (8 * j));
  }
  b[6] = static_cast<std::uint8_t>((b[6] & 0x0f) | 0x40);  // RFC 4122 §4.4: version 4
  b[8] = static_cast<std::uint8_t>((b[8] & 0x3f) | 0x80);  // variant 10
  char out[37];
  std::snprintf(out, sizeof out,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
                b[15]);
  return out;
}

void OperationTable::Add(std::string name, Operation operation) {
  ops_.insert_or_assign(std::move(name), std::move(operation));
}

const Operation* OperationTable::Find(std::string_view name) const {
  auto it = ops_.find(name);
  return it == ops_.end() ? nullptr : &it->second;
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

AwsDoor::AwsDoor(AwsDoorConfig config, const AccessKeyStore& keys, OperationTable operations)
    : config_(std::move(config)),
      verifier_(VerifierConfigFor(config_), keys),
      operations_(std::move(operations)),
      recorder_(config_.observers) {}

AwsDoor::AwsDoor(AwsDoorConfig config, const AccessKeyStore& keys, OperationTable operations,
                 OperationTable appliance_operations)
    : config_(std::move(config)),
      verifier_(VerifierConfigFor(config_), keys),
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
  // which are not necessarily UTF-8; JSON must be (found by tests/api/fuzz/aws_door_fuzz.cc).
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
  auto caller = verifier_.Verify(request);
  if (!caller) return std::unexpected(std::move(caller).error());
  who = *caller;

  // Reference §1.1: POST /, operation in X-Amz-Target.
  const auto target = request.Header("x-amz-target");
  const bool appliance = target && target->starts_with(kApplianceTargetPrefix);
  if (request.method != "POST" || request.Path() != "/" || !target ||
      !(target->starts_with(kTargetPrefix) || appliance)) {
    return std::unexpected(ClientError(
        "UnknownOperationException",
        "Requests must be POST / with X-Amz-Target: TrentService.<Operation>."));
  }
  // The admin API manages the credentials themselves: administrators only, checked before the
  // operation name is looked at so other callers learn nothing about the table.
  if (appliance && !caller->administrator) {
    return std::unexpected(ClientError(
        "AccessDeniedException",
        "User: " + caller->principal + " is not authorized to perform: " + std::string(*target) +
            " (appliance administration needs an administrator access key)"));
  }
  const std::string_view op_name =
      target->substr(appliance ? kApplianceTargetPrefix.size() : kTargetPrefix.size());
  const Operation* op = appliance ? appliance_operations_.Find(op_name) : operations_.Find(op_name);
  if (!op) {
    return std::unexpected(
        ClientError("UnknownOperationException",
                    "Operation '" + std::string(op_name) + "' is not known to this service."));
  }
  const auto content_type = request.Header("content-type");
  if (!content_type || !AcceptableContentType(*content_type)) {
    return std::unexpected(ClientError(
        "SerializationException", "Content-Type must be application/x-amz-json-1.1."));
  }

  json::object body;
  if (!request.body.empty()) {
    boost::system::error_code ec;
    json::value parsed = json::parse(request.body, ec);
    if (ec) {
      return std::unexpected(
          ClientError("SerializationException", "The request body is not valid JSON."));
    }
    if (!parsed.is_object()) {
      return std::unexpected(ClientError("SerializationException",
                                         "The request body must be a JSON object."));
    }
    body = std::move(parsed.get_object());
  }
  const OperationContext ctx{*caller, request_id, &note, request.remote_address};
  auto result = (*op)(ctx, body);
  WipeSensitiveMembers(body);
  return result;
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
    result = std::unexpected(AuditFailure());
  } else {
    try {
      result = Dispatch(request, request_id, note, who);
    } catch (...) {
      // Boundary catch (CONVENTIONS.md "Errors"): nothing escapes to the server.
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
