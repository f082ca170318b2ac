// Shared pieces of the per-operation files (api/aws/op_*.cc): the declarations of every operation
// function, the KeyMetadata writer, and the glue from a core Status to the AWS error table.
// Internal to api/aws: the doors' public surface is api/aws/key_service_operations.h.
//
// Thread-safety: operation functions are as thread-safe as firmware::KeyService (fully).
#ifndef KMS_API_AWS_INTERNAL_OPERATION_SUPPORT_H_
#define KMS_API_AWS_INTERNAL_OPERATION_SUPPORT_H_

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <string_view>
#include <vector>

#include "api/aws/aws_error.h"
#include "api/aws/error_table.h"
#include "api/aws/json_codec.h"
#include "api/aws/operation.h"
#include "firmware/key_service.h"
#include "firmware/key_spec.h"

namespace kms::api::aws::internal {

using OpResult = AwsResult<boost::json::object>;

inline std::unexpected<AwsError> Fail(const Status& status) {
  return std::unexpected(ErrorFromStatus(status));
}

// GrantTokens: up to 10 of 1-8192 characters (docs/aws-kms-protocol.md "Limits"), read by the
// authorization step (api/aws/authorization.h) for the operations a grant can allow; empty after a
// read error.
std::vector<std::string> ReadGrantTokens(RequestReader& reader);
// Tag list members ("Tags"): TagKey 1-128, TagValue 0-256 (docs/aws-kms-protocol.md "Limits").
std::vector<firmware::Tag> ReadTags(RequestReader& reader, std::string_view name, bool required);
boost::json::object KeyMetadataJson(const firmware::KeyMetadata& m);

template <typename T, typename NameFn>
boost::json::array EnumList(const std::vector<T>& values, NameFn name) {
  boost::json::array a;
  for (const auto& v : values) a.emplace_back(name(v));
  return a;
}

// One function per AWS operation, one file each (api/aws/op_<operation>.cc). Each runs under the
// Authorization its request was given (api/aws/operation.h) and acts on the keys it names.
#define KMS_AWS_OPERATION(Name)                                                   \
  OpResult Name(firmware::KeyService& service, const Authorization& authorization, \
                const boost::json::object& body)
KMS_AWS_OPERATION(DescribeKey);
KMS_AWS_OPERATION(ListKeys);
KMS_AWS_OPERATION(UpdateKeyDescription);
KMS_AWS_OPERATION(EnableKey);
KMS_AWS_OPERATION(DisableKey);
KMS_AWS_OPERATION(ScheduleKeyDeletion);
KMS_AWS_OPERATION(CancelKeyDeletion);
KMS_AWS_OPERATION(Encrypt);
KMS_AWS_OPERATION(Decrypt);
KMS_AWS_OPERATION(ReEncrypt);
KMS_AWS_OPERATION(GenerateDataKey);
KMS_AWS_OPERATION(GenerateDataKeyWithoutPlaintext);
KMS_AWS_OPERATION(GenerateDataKeyPair);
KMS_AWS_OPERATION(GenerateDataKeyPairWithoutPlaintext);
KMS_AWS_OPERATION(Sign);
KMS_AWS_OPERATION(Verify);
KMS_AWS_OPERATION(GetPublicKey);
KMS_AWS_OPERATION(GenerateMac);
KMS_AWS_OPERATION(VerifyMac);
KMS_AWS_OPERATION(GenerateRandom);
KMS_AWS_OPERATION(CreateAlias);
KMS_AWS_OPERATION(UpdateAlias);
KMS_AWS_OPERATION(DeleteAlias);
KMS_AWS_OPERATION(ListAliases);
KMS_AWS_OPERATION(TagResource);
KMS_AWS_OPERATION(UntagResource);
KMS_AWS_OPERATION(ListResourceTags);
KMS_AWS_OPERATION(EnableKeyRotation);
KMS_AWS_OPERATION(DisableKeyRotation);
KMS_AWS_OPERATION(GetKeyRotationStatus);
KMS_AWS_OPERATION(RotateKeyOnDemand);
KMS_AWS_OPERATION(ListKeyRotations);
#undef KMS_AWS_OPERATION

}  // namespace kms::api::aws::internal

// Evaluates a StatusOr from the core; on error returns the table's AwsError from the operation.
#define KMS_AWS_ASSIGN_OR_FAIL(lhs, expr) \
  KMS_AWS_ASSIGN_OR_FAIL_IMPL_(KMS_STATUS_CONCAT_(kms_aws_result_, __LINE__), lhs, expr)
#define KMS_AWS_ASSIGN_OR_FAIL_IMPL_(tmp, lhs, expr)                         \
  auto tmp = (expr);                                                         \
  if (!tmp.has_value()) return ::kms::api::aws::internal::Fail(tmp.error()); \
  lhs = std::move(*tmp)
#define KMS_AWS_RETURN_IF_ERROR(expr)                                                  \
  do {                                                                                 \
    if (::kms::Status kms_aws_status_ = (expr); !kms_aws_status_.ok()) {              \
      return ::kms::api::aws::internal::Fail(kms_aws_status_);                        \
    }                                                                                  \
  } while (0)
// Returns the reader's first error, if any.
#define KMS_AWS_RETURN_IF_READ_ERROR(reader) \
  do {                                       \
    if ((reader).error()) return std::unexpected(*(reader).error()); \
  } while (0)

#endif  // KMS_API_AWS_INTERNAL_OPERATION_SUPPORT_H_
