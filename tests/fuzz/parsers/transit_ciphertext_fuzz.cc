// libFuzzer target: Vault transit's value encodings (firmware/transit_wire.h) and the keyring paths
// that read them from a client (firmware/transit_keyring.h: Decrypt, VerifyHmac, Verify).
//
// The first byte picks a part; the rest drives it. Invariants:
//  * ParseVersioned agrees with a direct reading of Vault's rule ("vault:v", one split on ':', Go's
//    strconv.Atoi: one optional sign, then decimal digits, int64 range; v0 reads as v1) on
//    acceptance, version, payload and the exact message; VersionPrefix + payload parses back;
//  * base64url (no padding) and standard base64 decoders agree with simple table decoders on
//    acceptance and bytes, and decode(encode(x)) == x;
//  * ECDSA r||s -> DER -> r||s is the identity for every curve width, and a DER the reader accepts
//    survives DER -> r||s -> DER -> r||s; PublicKeyPem is 64-character base64 lines that decode to
//    the DER;
//  * through a real TransitKeyring (fake HSM, SQLite): a client's ciphertext, HMAC or signature
//    string either opens/verifies or fails with one of Vault's documented messages; a string the
//    fuzzer changed opens/verifies only when it still parses to the same version and bytes.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "base/encoding.h"
#include "base/secret_bytes.h"
#include "firmware/transit_keyring.h"
#include "firmware/transit_wire.h"
#include "tests/fuzz/parsers/fuzz_input.h"
#include "tests/fuzz/parsers/key_service_fixture.h"

namespace {

using kms::Bytes;
using kms::ByteView;
using kms::SecretBytes;
using kms::StatusOr;
namespace transit = kms::firmware::transit;

// ---- reference readers ----

struct RefVersioned {
  bool ok = false;
  std::string error;
  std::int64_t version = 0;
  std::string_view payload;
};

// Go's strconv.Atoi on a 64-bit platform.
std::optional<std::int64_t> GoAtoi(std::string_view s) {
  bool negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s.empty()) return std::nullopt;
  constexpr std::uint64_t kLimit = std::uint64_t{1} << 63;  // |INT64_MIN|
  std::uint64_t magnitude = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (magnitude > (kLimit - digit) / 10) return std::nullopt;
    magnitude = magnitude * 10 + digit;
  }
  if (!negative && magnitude == kLimit) return std::nullopt;
  return negative ? static_cast<std::int64_t>(0 - magnitude) : static_cast<std::int64_t>(magnitude);
}

RefVersioned ReferenceParse(std::string_view value, std::string_view what) {
  RefVersioned out;
  const std::string noun(what);
  if (value.substr(0, 7) != "vault:v") {
    out.error = "invalid " + noun + ": no prefix";
    return out;
  }
  value.remove_prefix(7);
  const std::size_t colon = value.find(':');
  if (colon == std::string_view::npos) {
    out.error = "invalid " + noun + ": wrong number of fields";
    return out;
  }
  auto n = GoAtoi(value.substr(0, colon));
  if (!n) {
    out.error = "invalid " + noun + ": version number could not be decoded";
    return out;
  }
  out.ok = true;
  out.version = *n == 0 ? 1 : *n;
  out.payload = value.substr(colon + 1);
  return out;
}

int Sextet(char c, bool url) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == (url ? '-' : '+')) return 62;
  if (c == (url ? '_' : '/')) return 63;
  return -1;
}

// Unpadded groups of sextets to bytes; a lone final sextet is no byte; trailing bits are ignored
// (Go's and this tree's decoders are not strict about them).
std::optional<Bytes> Sextets(std::string_view s, bool url) {
  if (s.size() % 4 == 1) return std::nullopt;
  Bytes out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    const int v = Sextet(c, url);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<std::uint8_t>(acc >> bits));
      acc &= (1u << bits) - 1;
    }
  }
  return out;
}

std::optional<Bytes> ReferenceBase64(std::string_view s) {
  if (s.size() % 4 != 0) return std::nullopt;
  std::size_t pad = 0;
  if (!s.empty() && s.back() == '=') pad = 1;
  if (s.size() >= 2 && s[s.size() - 2] == '=') {
    if (pad == 0) return std::nullopt;  // "x=y" inside the last group
    pad = 2;
  }
  return Sextets(s.substr(0, s.size() - pad), false);
}

std::string Mutate(std::string s, kms::fuzz::ByteReader& in) {
  const std::size_t edits = in.Range(1, 3);
  for (std::size_t i = 0; i < edits && !s.empty(); ++i) {
    const std::size_t at = in.Range(0, s.size() - 1);
    switch (in.Pick(4)) {
      case 0:
        s[at] = static_cast<char>(in.Byte());
        break;
      case 1:
        s.erase(at, 1);
        break;
      case 2:
        s.insert(at, 1, static_cast<char>(in.Byte()));
        break;
      default:
        s.resize(at);
        break;
    }
  }
  return s;
}

// ---- the keyring ----

struct Keyring : kms::fuzz::FuzzKeyService {
  std::unique_ptr<transit::TransitKeyring> keyring;

  Keyring() : FuzzKeyService("kms-fuzz-transit") {
    keyring = std::make_unique<transit::TransitKeyring>(*service, *store, clock, "transit");
    Make("aes", transit::TransitKeyType::kAes256Gcm96, false);
    Make("derived", transit::TransitKeyType::kAes256Gcm96, true);
    Make("hmac", transit::TransitKeyType::kHmac, false);
    Make("ecdsa", transit::TransitKeyType::kEcdsaP256, false);
    // A second version, so "too new" and old versions are both reachable.
    if (!keyring->Rotate("aes")) std::abort();
  }
  void Make(std::string_view name, transit::TransitKeyType type, bool derived) {
    transit::CreateTransitKeyOptions o;
    o.type = type;
    o.derived = derived;
    if (!keyring->CreateKey(name, o)) std::abort();
  }
};

Keyring& TheKeyring() {
  static Keyring* k = new Keyring();  // never destroyed: libFuzzer exits without unwinding
  return *k;
}

// Vault's messages for a value of kind `noun` that does not parse or is out of range.
std::set<std::string> ParseMessages(const std::string& noun) {
  return {"invalid " + noun + ": no prefix", "invalid " + noun + ": wrong number of fields",
          "invalid " + noun + ": version number could not be decoded",
          "invalid " + noun + ": version is too new",
          "ciphertext or signature version is disallowed by policy (too old)"};
}

// The version and bytes a value stands for, by the reference readers (nullopt: does not parse).
std::optional<std::pair<std::int64_t, Bytes>> Meaning(std::string_view value, bool url) {
  RefVersioned v = ReferenceParse(value, "x");
  if (!v.ok) return std::nullopt;
  auto bytes = url ? Sextets(v.payload, true) : ReferenceBase64(v.payload);
  if (!bytes) return std::nullopt;
  return std::make_pair(v.version, std::move(*bytes));
}

// Values made once, at the first keyring input: a ciphertext of each AES key, an HMAC and both
// signature encodings of one message. Signing and verifying ECDSA costs milliseconds under the
// sanitizers, so the fuzzer works on strings derived from these, and only one input in eight also
// makes a fresh value of its own.
struct Made {
  std::string plaintext = "fuzz message";
  Bytes context = kms::ToBytes("fuzz context");
  std::string aes, derived, hmac, asn1, jws;
};

const Made& TheMade() {
  static const Made* made = [] {
    auto* m = new Made();
    transit::TransitKeyring& ring = *TheKeyring().keyring;
    const SecretBytes secret = SecretBytes::CopyFrom(kms::AsBytes(m->plaintext));
    transit::EncryptInput e;
    e.plaintext = secret.Clone();
    auto aes = ring.Encrypt("aes", e);
    e.context = m->context;
    auto derived = ring.Encrypt("derived", e);
    auto hmac = ring.Hmac("hmac", secret, "", std::nullopt);
    transit::SignOptions o;
    auto asn1 = ring.Sign("ecdsa", secret, o);
    o.marshaling_algorithm = "jws";
    auto jws = ring.Sign("ecdsa", secret, o);
    if (!aes || !derived || !hmac || !asn1 || !jws) std::abort();
    m->aes = aes->ciphertext;
    m->derived = derived->ciphertext;
    m->hmac = *hmac;
    m->asn1 = asn1->signature;
    m->jws = jws->signature;
    return m;
  }();
  return *made;
}

void FuzzKeyring(kms::fuzz::ByteReader& in) {
  transit::TransitKeyring& ring = *TheKeyring().keyring;
  const Made& made = TheMade();
  const std::size_t part = in.Pick(5);
  const bool fresh = in.Pick(8) == 0;
  const std::string plaintext = fresh ? "p" + in.String(64) : made.plaintext;
  const SecretBytes secret = SecretBytes::CopyFrom(kms::AsBytes(plaintext));
  if (part == 0 || part == 1) {
    // Ciphertexts: the made one (or a fresh one), then the fuzzer's change of it (or its own
    // string).
    const bool derived = part == 1;
    const std::string name = derived ? "derived" : "aes";
    const Bytes context = fresh ? kms::ToBytes(in.String(8)) : made.context;
    std::string ciphertext = derived ? made.derived : made.aes;
    if (fresh) {
      transit::EncryptInput e;
      e.plaintext = secret.Clone();
      e.context = context;
      auto sealed = ring.Encrypt(name, e);
      if (derived && context.empty()) {
        KMS_FUZZ_CHECK(!sealed, "a derived key refuses to encrypt without a context");
        return;
      }
      KMS_FUZZ_CHECK(sealed.has_value(), "a valid plaintext encrypts");
      ciphertext = sealed->ciphertext;
      transit::DecryptInput d;
      d.context = context;
      d.ciphertext = ciphertext;
      auto opened = ring.Decrypt(name, d);
      KMS_FUZZ_CHECK(opened.has_value() && opened->ExposeSecret().size() == plaintext.size(),
                     "a fresh ciphertext decrypts");
    }
    transit::DecryptInput d;
    d.context = context;
    d.ciphertext = in.Bool() ? Mutate(ciphertext, in) : in.Rest();
    auto reopened = ring.Decrypt(name, d);
    if (reopened) {
      KMS_FUZZ_CHECK(Meaning(d.ciphertext, false) == Meaning(ciphertext, false),
                     "only a string meaning the same version and bytes decrypts");
    } else {
      std::set<std::string> allowed = ParseMessages("ciphertext");
      allowed.insert("invalid ciphertext: could not decode base64");
      allowed.insert("cipher: message authentication failed");
      KMS_FUZZ_CHECK_DETAIL(reopened.error().code() == kms::StatusCode::kInvalidArgument &&
                                allowed.count(reopened.error().message()) == 1,
                            "a refused ciphertext gets one of Vault's messages",
                            reopened.error().ToString());
    }
    return;
  }
  if (part == 2) {
    std::string mac = made.hmac;
    if (fresh) {
      auto made_mac = ring.Hmac("hmac", secret, "", std::nullopt);
      KMS_FUZZ_CHECK(made_mac.has_value(), "hmac of a valid input");
      auto ok = ring.VerifyHmac("hmac", secret, *made_mac, "");
      KMS_FUZZ_CHECK(ok.has_value() && *ok, "a fresh HMAC verifies");
      mac = *made_mac;
    }
    const std::string other = in.Bool() ? Mutate(mac, in) : in.Rest();
    auto verified = ring.VerifyHmac("hmac", secret, other, "");
    if (verified) {
      if (*verified) {
        KMS_FUZZ_CHECK(Meaning(other, false) == Meaning(mac, false),
                       "only an HMAC string meaning the same bytes verifies");
      }
    } else {
      std::set<std::string> allowed = ParseMessages("HMAC");
      allowed.insert("invalid HMAC: could not decode base64");
      KMS_FUZZ_CHECK_DETAIL(allowed.count(verified.error().message()) == 1,
                            "a refused HMAC gets one of Vault's messages",
                            verified.error().ToString());
    }
    return;
  }
  // Signatures (ECDSA P-256), asn1 or jws, over the made message.
  const SecretBytes message = SecretBytes::CopyFrom(kms::AsBytes(made.plaintext));
  transit::SignOptions options;
  const bool jws = part == 4;
  options.marshaling_algorithm = jws ? "jws" : "asn1";
  const std::string& signature = jws ? made.jws : made.asn1;
  const std::string other = in.Bool() ? Mutate(signature, in) : in.Rest();
  auto verified = ring.Verify("ecdsa", message, other, options);
  if (verified) {
    if (*verified) {
      KMS_FUZZ_CHECK(Meaning(other, jws) == Meaning(signature, jws),
                     "only a signature string meaning the same bytes verifies");
    }
  } else {
    std::set<std::string> allowed = ParseMessages("signature");
    allowed.insert("invalid base64 signature value");
    KMS_FUZZ_CHECK_DETAIL(allowed.count(verified.error().message()) == 1,
                          "a refused signature gets one of Vault's messages",
                          verified.error().ToString());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  kms::fuzz::ByteReader in(data, size);
  const std::uint8_t part = in.Byte();
  const std::string rest_text(reinterpret_cast<const char*>(data + (size > 0 ? 1 : 0)),
                              size > 0 ? size - 1 : 0);
  const ByteView rest(reinterpret_cast<const std::uint8_t*>(rest_text.data()), rest_text.size());
  switch (part % 8) {
    case 0:
    case 1: {
      // "vault:vN:" strings, for each noun.
      static constexpr const char* kNouns[] = {"ciphertext", "signature", "HMAC"};
      const std::string noun = kNouns[part % 3];
      auto got = transit::ParseVersioned(rest_text, noun);
      const RefVersioned want = ReferenceParse(rest_text, noun);
      KMS_FUZZ_CHECK_DETAIL(got.has_value() == want.ok, "ParseVersioned accepts what Vault accepts",
                            got ? "accepted" : got.error().message());
      if (got) {
        KMS_FUZZ_CHECK(got->version == want.version && got->payload == want.payload,
                       "ParseVersioned reads Vault's version and payload");
        if (got->version >= 1 && got->version <= UINT32_MAX) {
          const std::string again =
              transit::VersionPrefix(static_cast<std::uint32_t>(got->version)) +
              std::string(got->payload);
          auto back = transit::ParseVersioned(again, noun);
          KMS_FUZZ_CHECK(back && back->version == got->version && back->payload == got->payload,
                         "VersionPrefix + payload parses back");
        }
      } else {
        KMS_FUZZ_CHECK(got.error().code() == kms::StatusCode::kInvalidArgument &&
                           got.error().message() == want.error,
                       "ParseVersioned refuses with Vault's message");
      }
      break;
    }
    case 2: {
      auto got = transit::Base64UrlDecode(rest_text);
      auto want = Sextets(rest_text, true);
      KMS_FUZZ_CHECK(got.has_value() == want.has_value(), "base64url accepts the RFC 4648 §5 text");
      if (got) KMS_FUZZ_CHECK(*got == *want, "base64url decodes the RFC 4648 §5 bytes");
      const std::string encoded = transit::Base64UrlEncode(rest);
      KMS_FUZZ_CHECK(encoded.find_first_of("+/=") == std::string::npos,
                     "base64url output has no '+', '/' or '='");
      auto back = transit::Base64UrlDecode(encoded);
      KMS_FUZZ_CHECK(back && *back == Bytes(rest.begin(), rest.end()),
                     "base64url decode(encode(x)) == x");
      auto got_std = kms::Base64Decode(rest_text);
      auto want_std = ReferenceBase64(rest_text);
      KMS_FUZZ_CHECK(got_std.has_value() == want_std.has_value(),
                     "base64 accepts the RFC 4648 §4 text");
      if (got_std) KMS_FUZZ_CHECK(*got_std == *want_std, "base64 decodes the RFC 4648 §4 bytes");
      auto back_std = kms::Base64Decode(kms::Base64Encode(rest));
      KMS_FUZZ_CHECK(back_std && *back_std == Bytes(rest.begin(), rest.end()),
                     "base64 decode(encode(x)) == x");
      break;
    }
    case 3: {
      static constexpr std::size_t kWidths[] = {32, 48, 66};
      for (const std::size_t n : kWidths) {
        Bytes raw(2 * n, 0);
        for (std::size_t i = 0; i < raw.size() && i < rest.size(); ++i) raw[i] = rest[i];
        auto der = transit::RawToDer(raw, n);
        KMS_FUZZ_CHECK(der.has_value(), "every r||s of the curve's width has a DER form");
        auto back = transit::DerToRaw(*der, n);
        KMS_FUZZ_CHECK(back && *back == raw, "r||s -> DER -> r||s is the identity");
        if (auto read = transit::DerToRaw(rest, n); read.has_value()) {
          KMS_FUZZ_CHECK(read->size() == 2 * n, "DerToRaw gives two halves of the width");
          auto again = transit::RawToDer(*read, n);
          KMS_FUZZ_CHECK(again.has_value(), "what DerToRaw reads has a DER form");
          auto twice = transit::DerToRaw(*again, n);
          KMS_FUZZ_CHECK(twice && *twice == *read, "DER -> r||s -> DER -> r||s is stable");
        }
        KMS_FUZZ_CHECK(!transit::RawToDer(rest, n).has_value() || rest.size() == 2 * n,
                       "RawToDer takes exactly two halves of the width");
      }
      const std::string pem = transit::PublicKeyPem(rest);
      const std::string head = "-----BEGIN PUBLIC KEY-----\n";
      const std::string tail = "-----END PUBLIC KEY-----\n";
      KMS_FUZZ_CHECK(pem.starts_with(head) && pem.ends_with(tail), "PEM header and footer");
      std::string body = pem.substr(head.size(), pem.size() - head.size() - tail.size());
      std::string joined;
      std::size_t pos = 0;
      while (pos < body.size()) {
        const std::size_t nl = body.find('\n', pos);
        KMS_FUZZ_CHECK(nl != std::string::npos && nl - pos <= 64 && nl > pos,
                       "PEM lines are 1..64 characters, each ended by a newline");
        joined += body.substr(pos, nl - pos);
        pos = nl + 1;
      }
      auto decoded = kms::Base64Decode(joined);
      KMS_FUZZ_CHECK(decoded && *decoded == Bytes(rest.begin(), rest.end()),
                     "PEM decodes to the DER it wraps");
      break;
    }
    default:
      FuzzKeyring(in);
      break;
  }
  return 0;
}
