// KmsAppliance.CreateUser, GetUser, ListUsers, PutUserPolicy, DeleteUser: the principals access keys
// act for (firmware/authz/principals.h), and CreateAccessKey's check that its user exists
// (api/aws/appliance_operations.h).
#include "api/aws/internal/appliance_support.h"

namespace kms::api::aws::internal {

namespace {

boost::json::object UserJson(const firmware::authz::UserInfo& u, bool with_policy) {
  boost::json::object o;
  o["UserName"] = u.name;
  o["Arn"] = u.arn;
  o["Administrator"] = u.administrator;
  PutTimestamp(o, "CreateDate", u.creation_time_ms);
  o["HasPolicy"] = !u.identity_policy.empty();
  if (with_policy && !u.identity_policy.empty()) o["Policy"] = u.identity_policy;
  return o;
}

// The principal registry's InvalidArgument for a policy is a malformed policy document.
AwsError PolicyError(const Status& s) {
  if (s.code() == StatusCode::kInvalidArgument && s.message().find("user name") == std::string::npos) {
    return ClientError("MalformedPolicyDocumentException", s.message());
  }
  return ErrorFromStatus(s);
}

}  // namespace

OpResult CreateUser(firmware::authz::PrincipalRegistry& users, const boost::json::object& body) {
  RequestReader r(body);
  const std::string name = r.RequiredString("UserName", 1, 64);
  const bool administrator = r.Boolean("Administrator");
  const std::string policy = r.String("Policy", 1, 131072).value_or("");
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  auto made = users.CreateUser(name, administrator, policy);
  if (!made) return std::unexpected(PolicyError(made.error()));
  boost::json::object out;
  out["User"] = UserJson(*made, false);
  return out;
}

OpResult GetUser(firmware::authz::PrincipalRegistry& users, const boost::json::object& body) {
  RequestReader r(body);
  const std::string name = r.RequiredString("UserName", 1, 64);
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  KMS_AWS_ASSIGN_OR_FAIL(auto user, users.GetUser(name));
  boost::json::object out;
  out["User"] = UserJson(user, true);
  return out;
}

OpResult ListUsers(firmware::authz::PrincipalRegistry& users, const boost::json::object& body) {
  RequestReader r(body);
  const auto marker = r.String("Marker", 1, 64);
  const auto limit = r.Integer("Limit");
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  if (limit && (*limit < 1 || *limit > 1000)) {
    return std::unexpected(ValidationError("Value '" + std::to_string(*limit) +
                                           "' at 'limit' failed to satisfy constraint: Member "
                                           "must have value between 1 and 1000"));
  }
  KMS_AWS_ASSIGN_OR_FAIL(auto page, users.ListUsers(marker.value_or(""),
                                                    static_cast<std::size_t>(limit.value_or(100))));
  boost::json::array list;
  for (const auto& u : page.items) list.emplace_back(UserJson(u, false));
  boost::json::object out;
  out["Users"] = std::move(list);
  out["Truncated"] = page.truncated;
  if (page.truncated) out["NextMarker"] = page.next_marker;
  return out;
}

OpResult PutUserPolicy(firmware::authz::PrincipalRegistry& users, const boost::json::object& body) {
  RequestReader r(body);
  const std::string name = r.RequiredString("UserName", 1, 64);
  const std::string policy = r.RequiredString("Policy", 0, 131072);
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  if (Status s = users.PutUserPolicy(name, policy); !s.ok()) {
    return std::unexpected(PolicyError(s));
  }
  return boost::json::object();
}

OpResult DeleteUser(firmware::authz::PrincipalRegistry& users,
                    firmware::AccessKeyRegistry& access_keys, const boost::json::object& body) {
  RequestReader r(body);
  const std::string name = r.RequiredString("UserName", 1, 64);
  KMS_AWS_RETURN_IF_READ_ERROR(r);
  KMS_AWS_ASSIGN_OR_FAIL(auto user, users.GetUser(name));
  // As IAM: a user that still owns access keys is not deleted (its keys would act for nobody).
  std::string after;
  for (;;) {
    KMS_AWS_ASSIGN_OR_FAIL(auto page, access_keys.List(after, 1000));
    for (const auto& k : page.items) {
      if (k.principal == user.name) {
        return std::unexpected(ClientError(
            "DeleteConflictException",
            "Cannot delete user " + user.name + ": it still owns access key " + k.access_key_id +
                "; delete its access keys first."));
      }
    }
    if (!page.truncated) break;
    after = page.next_marker;
  }
  KMS_AWS_RETURN_IF_ERROR(users.DeleteUser(name));
  return boost::json::object();
}

std::optional<AwsError> CheckAccessKeyOwner(firmware::authz::PrincipalRegistry& users,
                                            const boost::json::object& body) {
  RequestReader r(body);
  const auto name = r.String("UserName", 1, 64);
  const bool administrator = r.Boolean("Administrator");
  if (r.error() || !name) return std::nullopt;  // CreateAccessKey gives the validation error
  auto user = users.GetUser(*name);
  if (!user) return ErrorFromStatus(user.error());
  if (administrator && !user->administrator) {
    return ValidationError("Administrator access keys belong to administrator users; " + *name +
                           " is not one");
  }
  return std::nullopt;
}

}  // namespace kms::api::aws::internal
