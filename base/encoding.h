// Text encodings of bytes: lowercase hex and standard base64 with padding (RFC 4648 §4), the forms the
// AWS and Vault wire protocols use. Decoders reject anything malformed rather than guessing. And one
// text guard: `PrintableUtf8` for echoing untrusted bytes into JSON error bodies and log lines.
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

// `in` with every invalid UTF-8 sequence (overlongs, surrogates, above U+10FFFF) and every control
// character (below 0x20, and 0x7f) replaced by '?', so the result is valid UTF-8 on one line.
std::string PrintableUtf8(std::string_view in);

}  // namespace kms

#endif  // KMS_BASE_ENCODING_H_
