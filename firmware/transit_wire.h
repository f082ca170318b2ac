// The text and byte encodings of Vault's transit values (reference: docs/vault-door.md), as
// TransitKeyring writes and reads them:
//  * "vault:v<N>:<payload>" (ciphertexts, HMACs, signatures): VersionPrefix writes the prefix;
//    ParseVersioned reads it the way Vault's policy.Decrypt does (strip "vault:v", split once on
//    ':', Go's Atoi on the version, "v0" meaning v1) and leaves the payload undecoded. Its messages
//    are Vault's: "invalid <what>: no prefix", "... wrong number of fields", "... version number
//    could not be decoded".
//  * base64url without padding (RFC 4648 §5, Vault's jws marshaling): Base64UrlEncode /
//    Base64UrlDecode. The decoder refuses '+', '/', '=' and impossible lengths.
//  * ECDSA signatures: DER Ecdsa-Sig-Value (what the key service returns, SEC 1 §C.8) to JWS's
//    fixed-width r||s (RFC 7518 §3.4) and back, for a curve whose field is `n` bytes. DerToRaw reads
//    the HSM's output (an error is Internal); RawToDer reads a client's signature (nullopt: not a
//    signature of this width, which then simply does not verify).
//  * PublicKeyPem: a DER SubjectPublicKeyInfo as RFC 7468 "PUBLIC KEY" PEM, 64-character lines.
//
// Pure functions, in their own file so that the fuzz target of these encodings
// (tests/fuzz/parsers/transit_ciphertext_fuzz.cc) reaches them without a keyring.
// Thread-safety: pure functions.
#ifndef KMS_FIRMWARE_TRANSIT_WIRE_H_
#define KMS_FIRMWARE_TRANSIT_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/bytes.h"
#include "base/status.h"

namespace kms::firmware::transit {

std::string VersionPrefix(std::uint32_t version);

struct VersionedValue {
  std::int64_t version = 0;
  std::string_view payload;  // still encoded; a view into the parsed text
};

// `what` is "ciphertext", "signature" or "HMAC", for the messages.
StatusOr<VersionedValue> ParseVersioned(std::string_view value, std::string_view what);

std::string Base64UrlEncode(ByteView bytes);
StatusOr<Bytes> Base64UrlDecode(std::string_view text);

StatusOr<Bytes> DerToRaw(ByteView der, std::size_t n);
std::optional<Bytes> RawToDer(ByteView raw, std::size_t n);

std::string PublicKeyPem(ByteView der);

}  // namespace kms::firmware::transit

#endif  // KMS_FIRMWARE_TRANSIT_WIRE_H_
