// hash(/<algorithm>) (write): Vault's path_hash.go. No key is involved; the token needs "hash".
#include "api/vault/internal/endpoint.h"
#include "base/encoding.h"

namespace kms::api::vault::internal {

Reply PathHash(const Call& call, const Decision&) {
  FieldReader f(call.body);
  std::string algorithm(call.arg);
  if (algorithm.empty()) algorithm = f.String("algorithm").value_or("sha2-256");
  const std::string format = f.String("format").value_or("hex");
  SecretBytes input = f.SecretBase64("input");
  if (f.error()) return ErrorReply(400, *f.error());
  if (format != "hex" && format != "base64") {
    return ErrorReply(400,
                      "unsupported encoding format " + format + "; must be \"hex\" or \"base64\"");
  }
  auto sum = firmware::transit::TransitKeyring::Hash(algorithm, input.ExposeSecret());
  if (!sum) return StatusReply(sum.error());
  return DataReply(json::object{{"sum", format == "hex" ? HexEncode(*sum) : Base64Encode(*sum)}});
}

}  // namespace kms::api::vault::internal
