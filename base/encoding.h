// Text encodings of bytes: lowercase hex and standard base64 with padding (RFC 4648 §4), the forms the
// AWS and Vault wire protocols use. Decoders reject anything malformed rather than guessing.
#ifndef KMS_BASE_ENCODING_H_
#define KMS_BASE_ENCODING_H_

#include <string>
#include <string_view>

#include "base/bytes.h"
#include "base/secret_bytes.h"
#include "base/status.h"

namespace kms {

std::string HexEncode(ByteView bytes);
StatusOr<Bytes> HexDecode(std::string_view hex);

std::string Base64Encode(ByteView bytes);
StatusOr<Bytes> Base64Decode(std::string_view text);
// Decodes straight into wiped storage, for plaintexts and data keys arriving base64-encoded.
StatusOr<SecretBytes> Base64DecodeSecret(std::string_view text);

}  // namespace kms

#endif  // KMS_BASE_ENCODING_H_
