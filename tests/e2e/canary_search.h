// The canary search of the end-to-end suites (no audit record, log line or error body of
// the whole test suite contains a plaintext, data key or secret the tests used). FindCanary looks
// for each given secret, in every form a careless daemon could write it, in files read line by
// line (kmsd's stderr, every file of an audit folder) and in error-body files (the length-prefixed
// format of tests/e2e/e2e_lib.py), and names the first hit: file, line or body, what the secret
// was, and the form it was found in. Header-only, so any suite that starts a kmsd can search its
// files without linking the e2e harness; it only reads files. Thread-compatible (no shared state).
#ifndef KMS_TESTS_E2E_CANARY_SEARCH_H_
#define KMS_TESTS_E2E_CANARY_SEARCH_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace kms::e2e {

namespace fs = std::filesystem;

// One secret of a run.
struct Canary {
  std::string what;   // where it came from, for the report ("AWS_SECRET_ACCESS_KEY", ...)
  std::string value;  // the raw bytes
  // A fixed word the tests put into plaintexts only (the literal "canary"): searched as raw text
  // whatever its length, and in no other form (its encodings inside a longer value's encoding
  // depend on the neighbouring bytes).
  bool marker = false;
};

// Where to look.
struct CanaryPlaces {
  // Files searched line by line; a folder stands for every regular file below it. A path that
  // does not exist is a problem: the search would pass without having looked.
  std::vector<fs::path> line_files;
  // Error-body files as e2e_lib.py writes them: records of "<decimal length> <what>\n", then
  // exactly that many bytes of body, then "\n". A missing file means no error was recorded.
  std::vector<fs::path> error_bodies;
};

// Secrets shorter than this are not searched for: a value of a few bytes is too short to be a
// meaningful canary (the tests' 1-byte plaintexts, a 4-byte "ctx") and its forms would match by
// chance (3 printable bytes are common text, 4 hex digits occur in every hash of the audit chain).
// Eight bytes make the shortest needle 10 base64 characters (60 bits), which no run of the suite
// meets by chance.
inline constexpr std::size_t kMinCanaryBytes = 8;

namespace canary_internal {

inline constexpr char kBase64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

inline std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// A substring to look for, and what it stands for.
struct Needle {
  std::string bytes;
  std::size_t canary;  // index into the canaries
  std::string form;    // "raw", "base64", "hex", ...
};

inline std::uint64_t Prefix(const char* p) {
  std::uint64_t v = 0;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace canary_internal

// RFC 4648 §4 base64 with padding; §5 base64url (no padding) when `url`.
inline std::string Base64(std::string_view bytes, bool url = false) {
  std::string out;
  for (std::size_t i = 0; i < bytes.size(); i += 3) {
    const std::size_t n = std::min<std::size_t>(3, bytes.size() - i);
    std::uint32_t v = 0;
    for (std::size_t k = 0; k < 3; ++k) {
      v = (v << 8) | (k < n ? static_cast<unsigned char>(bytes[i + k]) : 0u);
    }
    for (std::size_t k = 0; k < 4; ++k) {
      if (k <= n) {
        out += canary_internal::kBase64[(v >> (18 - 6 * k)) & 0x3f];
      } else if (!url) {
        out += '=';
      }
    }
  }
  if (url) {
    std::replace(out.begin(), out.end(), '+', '-');
    std::replace(out.begin(), out.end(), '/', '_');
  }
  return out;
}

// Standard padded base64 (what Python's base64.b64encode writes); nullopt when malformed.
inline std::optional<std::string> DecodeBase64(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  for (std::size_t i = 0; i < text.size(); i += 4) {
    std::uint32_t v = 0;
    int pad = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      const char c = text[i + k];
      const char* at = std::strchr(canary_internal::kBase64, c);
      if (c == '=' && i + 4 == text.size() && k >= 2) {
        ++pad;
        v <<= 6;
      } else if (c != '\0' && at != nullptr && pad == 0) {
        v = (v << 6) | static_cast<std::uint32_t>(at - canary_internal::kBase64);
      } else {
        return std::nullopt;
      }
    }
    for (int k = 0; k < 3 - pad; ++k) out += static_cast<char>((v >> (16 - 8 * k)) & 0xff);
  }
  return out;
}

inline std::string Hex(std::string_view bytes, bool upper = false) {
  const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  std::string out;
  for (const char c : bytes) {
    const auto byte = static_cast<unsigned char>(c);
    out += {digits[byte >> 4], digits[byte & 0xf]};
  }
  return out;
}

// Every form in which `value` is searched for (value at least kMinCanaryBytes long):
//  - raw, when every byte is printable ASCII (binary bytes cannot sit in a JSON line as they are),
//    and JSON-escaped when that differs (a '"' or '\' in the value);
//  - base64 and base64url at each of the 3 alignments the value can have inside a longer encoded
//    string, keeping only the characters that depend on the value's bytes alone (so a data key
//    is found inside the base64 of a whole request body, and the exact encoding is found too);
//  - lowercase and uppercase hex.
inline std::vector<std::pair<std::string, std::string>> CanaryForms(std::string_view value) {
  std::vector<std::pair<std::string, std::string>> forms;
  const bool printable = std::all_of(value.begin(), value.end(), [](char c) {
    return static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x7f;
  });
  if (printable) {
    forms.emplace_back("raw", std::string(value));
    std::string escaped;
    for (const char c : value) {
      if (c == '"' || c == '\\') escaped += '\\';
      escaped += c;
    }
    if (escaped != value) forms.emplace_back("JSON-escaped", escaped);
  }
  for (const bool url : {false, true}) {
    for (std::size_t lead = 0; lead < 3; ++lead) {
      // `lead` bytes before the value: the first ceil(lead*8/6) characters depend on them; after
      // the value, a character holding a partial 6-bit group depends on what follows.
      const std::string full = Base64(std::string(lead, '\0') + std::string(value), url);
      const std::size_t skip = (lead * 8 + 5) / 6;
      const std::size_t keep = ((lead + value.size()) * 8) / 6 - skip;
      forms.emplace_back(std::string(url ? "base64url" : "base64") +
                             (lead == 0 ? "" : " at offset " + std::to_string(lead)),
                         full.substr(skip, keep));
    }
  }
  forms.emplace_back("hex", Hex(value));
  forms.emplace_back("uppercase hex", Hex(value, true));
  // base64url equals base64 without '+' and '/', hex is one case for digits only: one of each.
  std::vector<std::pair<std::string, std::string>> unique;
  for (auto& form : forms) {
    const bool seen = std::any_of(unique.begin(), unique.end(),
                                  [&](const auto& u) { return u.second == form.second; });
    if (!seen) unique.push_back(std::move(form));
  }
  return unique;
}

// The first place in `places` that holds one of `canaries`, as "<file>:<line> holds <what>
// (<form>): <excerpt>" or "<file> error body <n> (<its what>) holds ...", or a problem that kept
// the search from looking ("<path> does not exist", a malformed error-body file); "" when every
// place is clean.
inline std::string FindCanary(const std::vector<Canary>& canaries, const CanaryPlaces& places) {
  using canary_internal::Needle;
  std::vector<Needle> needles;
  std::vector<std::size_t> markers;
  for (std::size_t i = 0; i < canaries.size(); ++i) {
    if (canaries[i].marker) {
      if (!canaries[i].value.empty()) markers.push_back(i);
      continue;
    }
    if (canaries[i].value.size() < kMinCanaryBytes) continue;
    for (auto& [form, bytes] : CanaryForms(canaries[i].value)) {
      needles.push_back(Needle{std::move(bytes), i, std::move(form)});
    }
  }
  // Every needle is at least 8 bytes (10 base64 characters, 16 hex digits, 8 raw bytes), so an
  // index on the first 8 bytes makes the search one hash lookup per position of the text,
  // whatever the number of secrets (thousands in a run).
  std::unordered_multimap<std::uint64_t, std::size_t> by_prefix;
  for (std::size_t n = 0; n < needles.size(); ++n) {
    by_prefix.emplace(canary_internal::Prefix(needles[n].bytes.data()), n);
  }
  // "<what> (<form>): <text around the hit>", or "" when `text` holds no canary.
  auto search = [&](std::string_view text) -> std::string {
    std::string hit;
    std::size_t hit_at = 0;
    for (std::size_t at = 0; hit.empty() && at + 8 <= text.size(); ++at) {
      const auto [first, last] = by_prefix.equal_range(canary_internal::Prefix(text.data() + at));
      for (auto it = first; it != last; ++it) {
        const Needle& needle = needles[it->second];
        if (text.substr(at, needle.bytes.size()) == needle.bytes) {
          hit = canaries[needle.canary].what + " (" + needle.form + ")";
          hit_at = at;
          break;
        }
      }
    }
    // Markers last: a recorded secret that holds the marker is named as itself.
    for (std::size_t k = 0; hit.empty() && k < markers.size(); ++k) {
      if (const auto at = text.find(canaries[markers[k]].value); at != std::string_view::npos) {
        hit = canaries[markers[k]].what + " (marker)";
        hit_at = at;
      }
    }
    if (hit.empty()) return hit;
    const std::size_t from = hit_at > 80 ? hit_at - 80 : 0;
    std::string excerpt(text.substr(from, 240));
    for (char& c : excerpt) {
      if (static_cast<unsigned char>(c) < 0x20) c = ' ';
    }
    return hit + ": " + (from > 0 ? "..." : "") + excerpt + (from + 240 < text.size() ? "..." : "");
  };

  for (const auto& place : places.line_files) {
    std::error_code ec;
    if (!fs::exists(place, ec)) return place.string() + " does not exist: nothing was searched";
    std::vector<fs::path> files;
    if (fs::is_directory(place, ec)) {
      for (const auto& entry : fs::recursive_directory_iterator(place, ec)) {
        if (entry.is_regular_file()) files.push_back(entry.path());
      }
      std::sort(files.begin(), files.end());
    } else {
      files.push_back(place);
    }
    for (const auto& file : files) {
      const std::string text = canary_internal::ReadAll(file);
      std::size_t line_no = 0;
      for (std::size_t start = 0; start < text.size();) {
        std::size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        ++line_no;
        const std::string hit = search(std::string_view(text).substr(start, end - start));
        if (!hit.empty()) return file.string() + ":" + std::to_string(line_no) + " holds " + hit;
        start = end + 1;
      }
    }
  }
  for (const auto& file : places.error_bodies) {
    std::error_code ec;
    if (!fs::exists(file, ec)) continue;  // no error answer was recorded
    const std::string text = canary_internal::ReadAll(file);
    std::size_t at = 0;
    for (std::size_t n = 1; at < text.size(); ++n) {
      const std::string where = file.string() + " error body " + std::to_string(n);
      const std::size_t eol = text.find('\n', at);
      const std::size_t space = text.find(' ', at);
      std::size_t length = 0;
      bool ok = eol != std::string::npos && space < eol && space > at;
      for (std::size_t i = at; ok && i < space; ++i) {
        ok = text[i] >= '0' && text[i] <= '9' && length < (std::size_t{1} << 40);
        length = length * 10 + static_cast<std::size_t>(text[i] - '0');
      }
      ok = ok && eol + 1 + length < text.size() && text[eol + 1 + length] == '\n';
      if (!ok) return where + ": malformed record at byte " + std::to_string(at);
      const std::string what = text.substr(space + 1, eol - space - 1);
      const std::string hit = search(std::string_view(text).substr(eol + 1, length));
      if (!hit.empty()) return where + " (" + what + ") holds " + hit;
      at = eol + 1 + length + 1;
    }
  }
  return "";
}

}  // namespace kms::e2e

#endif  // KMS_TESTS_E2E_CANARY_SEARCH_H_
