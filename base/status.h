// One status vocabulary for the whole tree.
//
// A `Status` is a canonical code (the gRPC/Abseil set) plus, where the domain needs finer grain than the
// canonical code gives, a `Reason` (a disabled key, an invalid ciphertext, ...), a human message, and an
// optional numeric `device_code` that the layer which produced the error may use to keep its native code
// (pkcs11/ stores the CK_RV there so the HAL can classify a failure without parsing text).
// `StatusOr<T>` is `std::expected<T, Status>`. Errors travel as values; exceptions are caught only at
// the boundaries (request handler wrapper, main).
//
// Messages may reach clients through the API's error table, so they must never carry secrets, key
// material or internal detail that a client must not see; callers that need a detail for the log put it
// in the log, not in the message.
//
// Thread-safety: value types, no shared state.
#ifndef KMS_BASE_STATUS_H_
#define KMS_BASE_STATUS_H_

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace kms {

enum class StatusCode : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

// Domain refinements of a canonical code. The API's single error table maps (code, reason) to the
// exception a client expects; a reason never changes what the canonical code means.
enum class Reason : int {
  kNone = 0,
  kKeyDisabled,            // FailedPrecondition: DisabledException
  kKeyInvalidState,        // FailedPrecondition: KMSInvalidStateException (pending deletion, ...)
  kInvalidCiphertext,      // InvalidArgument: InvalidCiphertextException, never with detail
  kIncorrectKey,           // InvalidArgument: IncorrectKeyException
  kInvalidKeyUsage,        // InvalidArgument: InvalidKeyUsageException
  kInvalidSignature,       // InvalidArgument: KMSInvalidSignatureException
  kInvalidMac,             // InvalidArgument: KMSInvalidMacException
  kUnsupportedOperation,   // FailedPrecondition/Unimplemented: UnsupportedOperationException
  kLimitExceeded,          // ResourceExhausted: LimitExceededException
  kInvalidMarker,          // InvalidArgument: InvalidMarkerException
  kTag,                    // InvalidArgument: TagException
  kSealed,                 // Unavailable: the appliance is sealed
  kKeyStoreReadOnly,       // Unavailable: the HSM's store refuses writes
  kHandleStale,            // Unavailable: a loaded key outlived a device re-initialisation; reload it
  kMechanismUnsupported,   // Unimplemented: the module does not offer a mechanism
  kPolicyViolation,        // FailedPrecondition: a key's attributes break the HAL's crypto policy
  kDryRunOperation,        // FailedPrecondition: DryRunOperationException (DryRun set, call would succeed)
  kMalformedPolicy,        // InvalidArgument: MalformedPolicyDocumentException
  kInvalidGrantToken,      // InvalidArgument: InvalidGrantTokenException
  kInvalidGrantId,         // InvalidArgument: InvalidGrantIdException
  kInvalidArn,             // InvalidArgument: InvalidArnException
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message, Reason reason = Reason::kNone,
         std::uint64_t device_code = 0)
      : code_(code), reason_(reason), device_code_(device_code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  Reason reason() const { return reason_; }
  std::uint64_t device_code() const { return device_code_; }
  const std::string& message() const { return message_; }

  // "CODE: message" for logs and test output.
  std::string ToString() const;

  // Lets `return SomeError(...);` work in a function returning StatusOr<T>.
  template <typename T>
  operator std::expected<T, Status>() const& {  // NOLINT(google-explicit-constructor)
    return std::unexpected<Status>(*this);
  }
  template <typename T>
  operator std::expected<T, Status>() && {  // NOLINT(google-explicit-constructor)
    return std::unexpected<Status>(std::move(*this));
  }

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.reason_ == b.reason_ && a.message_ == b.message_;
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  Reason reason_ = Reason::kNone;
  std::uint64_t device_code_ = 0;
  std::string message_;
};

template <typename T>
using StatusOr = std::expected<T, Status>;

// The status of a Status or a StatusOr, for generic code and the macros below.
inline const Status& StatusOf(const Status& s) { return s; }
template <typename T>
Status StatusOf(const StatusOr<T>& s) {
  return s.has_value() ? Status() : s.error();
}

inline Status InvalidArgumentError(std::string m, Reason r = Reason::kNone) {
  return Status(StatusCode::kInvalidArgument, std::move(m), r);
}
inline Status NotFoundError(std::string m) { return Status(StatusCode::kNotFound, std::move(m)); }
inline Status AlreadyExistsError(std::string m) {
  return Status(StatusCode::kAlreadyExists, std::move(m));
}
inline Status FailedPreconditionError(std::string m, Reason r = Reason::kNone) {
  return Status(StatusCode::kFailedPrecondition, std::move(m), r);
}
inline Status PermissionDeniedError(std::string m) {
  return Status(StatusCode::kPermissionDenied, std::move(m));
}
inline Status UnauthenticatedError(std::string m) {
  return Status(StatusCode::kUnauthenticated, std::move(m));
}
inline Status ResourceExhaustedError(std::string m, Reason r = Reason::kNone) {
  return Status(StatusCode::kResourceExhausted, std::move(m), r);
}
inline Status UnavailableError(std::string m, Reason r = Reason::kNone) {
  return Status(StatusCode::kUnavailable, std::move(m), r);
}
inline Status InternalError(std::string m) { return Status(StatusCode::kInternal, std::move(m)); }
inline Status UnimplementedError(std::string m, Reason r = Reason::kNone) {
  return Status(StatusCode::kUnimplemented, std::move(m), r);
}
inline Status DataLossError(std::string m) { return Status(StatusCode::kDataLoss, std::move(m)); }
inline Status OutOfRangeError(std::string m) { return Status(StatusCode::kOutOfRange, std::move(m)); }
// A concurrent change made the operation's premise false; the caller may retry it.
inline Status AbortedError(std::string m) { return Status(StatusCode::kAborted, std::move(m)); }

}  // namespace kms

#define KMS_STATUS_CONCAT_INNER_(a, b) a##b
#define KMS_STATUS_CONCAT_(a, b) KMS_STATUS_CONCAT_INNER_(a, b)

// Returns the error of `expr` (a Status or StatusOr) from the enclosing function.
#define KMS_RETURN_IF_ERROR(expr)                                         \
  do {                                                                    \
    if (auto kms_status_ = ::kms::StatusOf(expr); !kms_status_.ok()) {    \
      return kms_status_;                                                 \
    }                                                                     \
  } while (0)

// `KMS_ASSIGN_OR_RETURN(auto x, MakeX());` declares x from the value or returns the error.
#define KMS_ASSIGN_OR_RETURN(lhs, expr) \
  KMS_ASSIGN_OR_RETURN_IMPL_(KMS_STATUS_CONCAT_(kms_statusor_, __LINE__), lhs, expr)
#define KMS_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.has_value()) return std::move(tmp).error(); \
  lhs = std::move(*tmp)

#endif  // KMS_BASE_STATUS_H_
