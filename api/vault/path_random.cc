// random(/<source>)(/<bytes>) (write): Vault's path_random.go, from the HSM's RNG.
#include <charconv>

#include "api/vault/internal/endpoint.h"
#include "base/encoding.h"

namespace kms::api::vault::internal {

namespace {
bool IsSource(std::string_view s) { return s == "platform" || s == "seal" || s == "all"; }
}  // namespace

Reply PathRandom(const Call& call, const Decision&) {
  // random/<bytes>, random/<source>, random/<source>/<bytes>; path parameters win over the body's.
  FieldReader f(call.body);
  std::string source = f.String("source").value_or("");
  std::string_view url_bytes;
  if (!call.arg2.empty()) {
    source = call.arg;
    url_bytes = call.arg2;
  } else if (IsSource(call.arg)) {
    source = call.arg;
  } else if (!call.arg.empty()) {
    // Vault's order (sdk/helper/random): a known source, else a byte count.
    url_bytes = call.arg;
  }
  if (source.empty()) source = "platform";
  // Every source is the HSM's RNG: "platform" is the appliance's own, and the HSM is also what
  // Vault Enterprise's "seal" entropy would come from here.
  if (!IsSource(source)) {
    return ErrorReply(400, "unsupported entropy source \"" + source +
                               "\"; must be \"platform\" or \"seal\", or \"all\"");
  }
  std::int64_t bytes = f.Int("bytes").value_or(32);
  if (!url_bytes.empty()) {
    auto [p, ec] = std::from_chars(url_bytes.data(), url_bytes.data() + url_bytes.size(), bytes);
    if (ec != std::errc() || p != url_bytes.data() + url_bytes.size()) {
      return ErrorReply(400, "error parsing url-set byte count");
    }
  }
  const std::string format = f.String("format").value_or("base64");
  if (f.error()) return ErrorReply(400, *f.error());
  if (format != "base64" && format != "hex") {
    return ErrorReply(
        400, "unsupported encoding format \"" + format + "\"; must be \"hex\" or \"base64\"");
  }
  auto random = call.keyring->Random(bytes);
  if (!random) return StatusReply(random.error());
  // Callers use these bytes as keys: the text copies are wiped like plaintexts.
  std::string encoded =
      format == "hex" ? HexEncode(random->ExposeSecret()) : Base64Encode(random->ExposeSecret());
  json::object data{{"random_bytes", encoded}};
  WipeString(encoded);
  return DataReply(std::move(data));
}

}  // namespace kms::api::vault::internal
