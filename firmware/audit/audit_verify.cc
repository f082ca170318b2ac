// The offline audit log verifier. See audit_verify.h for the contract, audit_log.h for the format.
#include "firmware/audit/audit_verify.h"

#include <dirent.h>
#include <fcntl.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <cerrno>
#include <cstring>
#include <limits>
#include <string>
#include <utility>

#include "base/encoding.h"
#include "firmware/audit/audit_log.h"

namespace kms::firmware::audit {
namespace {

namespace json = boost::json;

constexpr std::string_view kZeroHash =
    "0000000000000000000000000000000000000000000000000000000000000000";

// The fields of each record type, in the order the writer puts them.
constexpr std::array<std::string_view, 18> kEventFields = {"v",
                                                           "type",
                                                           "seq",
                                                           "prev",
                                                           "time_ms",
                                                           "request_id",
                                                           "door",
                                                           "operation",
                                                           "principal",
                                                           "credential_id",
                                                           "source_address",
                                                           "key_arn",
                                                           "outcome",
                                                           "error_message",
                                                           "http_status",
                                                           "encryption_context",
                                                           "grant_id",
                                                           "decision"};
constexpr std::array<std::string_view, 9> kCheckpointFields = {
    "v", "type", "seq", "prev", "head", "records", "time_ms", "key", "sig"};
constexpr std::array<std::string_view, 6> kRecoveredFields = {"v",    "type",    "seq",
                                                              "prev", "time_ms", "truncated_bytes"};

Status Bad(std::string reason) { return InvalidArgumentError(std::move(reason)); }

std::string Quoted(std::string_view s) { return "\"" + PrintableUtf8(s) + "\""; }

bool IsHash(std::string_view s) {
  if (s.size() != 64) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

template <std::size_t N>
Status CheckFields(const json::object& o, const std::array<std::string_view, N>& expected) {
  for (const auto& kv : o) {
    if (std::find(expected.begin(), expected.end(), std::string_view(kv.key())) == expected.end()) {
      return Bad("unknown field " + Quoted(kv.key()));
    }
  }
  for (const std::string_view name : expected) {
    if (!o.contains(name)) return Bad("missing field " + Quoted(name));
  }
  // Same set and, since the canonical check rules out duplicates, the same size: now the order.
  std::size_t i = 0;
  for (const auto& kv : o) {
    if (std::string_view(kv.key()) != expected[i++]) return Bad("fields out of order");
  }
  return Status::Ok();
}

StatusOr<std::string> GetString(const json::object& o, std::string_view name) {
  const json::value& v = o.at(name);
  if (!v.is_string()) return Bad("field " + Quoted(name) + " is not a string");
  return std::string(v.get_string());
}

StatusOr<std::string> GetHash(const json::object& o, std::string_view name) {
  KMS_ASSIGN_OR_RETURN(std::string s, GetString(o, name));
  if (!IsHash(s)) return Bad("field " + Quoted(name) + " is not 64 lowercase hex characters");
  return s;
}

// Boost.JSON parses a non-negative integer as int64 when it fits, else as uint64.
StatusOr<std::uint64_t> GetUnsigned(const json::object& o, std::string_view name, bool positive) {
  const json::value& v = o.at(name);
  std::uint64_t n = 0;
  if (v.is_int64() && v.get_int64() >= 0) {
    n = static_cast<std::uint64_t>(v.get_int64());
  } else if (v.is_uint64()) {
    n = v.get_uint64();
  } else {
    return Bad("field " + Quoted(name) + " is not a non-negative integer");
  }
  if (positive && n == 0) return Bad("field " + Quoted(name) + " is not a positive integer");
  return n;
}

StatusOr<std::int64_t> GetSigned(const json::object& o, std::string_view name) {
  const json::value& v = o.at(name);
  if (!v.is_int64()) return Bad("field " + Quoted(name) + " is not an integer");
  return v.get_int64();
}

// The public key, parsed once per verification.
class PublicKey {
 public:
  PublicKey() { mbedtls_pk_init(&pk_); }
  ~PublicKey() { mbedtls_pk_free(&pk_); }
  PublicKey(const PublicKey&) = delete;
  PublicKey& operator=(const PublicKey&) = delete;

  Status Parse(ByteView der) {
    if (der.empty() || mbedtls_pk_parse_public_key(&pk_, der.data(), der.size()) != 0) {
      return InvalidArgumentError("audit verify: the public key is not a DER SubjectPublicKeyInfo");
    }
    return Status::Ok();
  }
  bool Verify(ByteView digest, ByteView sig) {
    // mbedtls_pk_verify answers SIG_LEN_MISMATCH for a valid signature followed by trailing
    // bytes: anything but 0 is a failure here, so a signature has exactly one accepted encoding.
    return mbedtls_pk_verify(&pk_, MBEDTLS_MD_SHA256, digest.data(), digest.size(), sig.data(),
                             sig.size()) == 0;
  }

 private:
  mbedtls_pk_context pk_;
};

std::string HexSha256(ByteView data) {
  std::array<std::uint8_t, 32> digest{};
  (void)mbedtls_sha256_ret(data.data(), data.size(), digest.data(), 0);
  return HexEncode(digest);
}

std::string BaseName(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

StatusOr<std::string> ReadWholeFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    return NotFoundError("audit verify: cannot read " + path + ": " + std::strerror(error));
  }
  std::string data;
  std::array<char, 1 << 16> chunk{};
  for (;;) {
    const ssize_t n = ::read(fd, chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      return UnavailableError("audit verify: cannot read " + path + ": " + std::strerror(error));
    }
    if (n == 0) break;
    data.append(chunk.data(), static_cast<std::size_t>(n));
  }
  ::close(fd);
  return data;
}

// Where the verifier is and what it has seen so far.
struct Walk {
  AuditVerifyReport report;
  bool have_prev = false;
  std::string prev_hash;  // hex
  std::uint64_t prev_seq = 0;
  std::size_t prev_file = 0;
  std::uint64_t prev_line = 0;
  std::uint64_t events = 0;  // event lines seen
  // Relative record count for a log that does not start at seq 1: records at the first checkpoint
  // minus the events seen before it.
  std::optional<std::uint64_t> records_base;
};

}  // namespace

StatusOr<AuditLine> ParseAuditLine(std::string_view line) {
  if (line.size() > kMaxAuditLineBytes) {
    return Bad("line longer than the " + std::to_string(kMaxAuditLineBytes) + "-byte limit");
  }
  boost::system::error_code ec;
  json::value value = json::parse(line, ec);
  if (ec) return Bad("not JSON");
  if (!value.is_object()) return Bad("not a JSON object");
  // The writer's exact bytes are what the chain hashes; accepting other spellings of the same
  // object (spaces, escapes, duplicate keys, 1.0 for 1) would let two texts share a meaning.
  if (json::serialize(value) != line) return Bad("not in canonical form");
  const json::object& o = value.get_object();
  const json::value* v = o.if_contains("v");
  if (v == nullptr) return Bad("missing field \"v\"");
  if (!v->is_int64() || v->get_int64() != kAuditFormatVersion) {
    return Bad("unsupported format version");
  }
  const json::value* type = o.if_contains("type");
  if (type == nullptr) return Bad("missing field \"type\"");
  if (!type->is_string()) return Bad("field \"type\" is not a string");
  AuditLine out;
  out.type = std::string(type->get_string());
  if (out.type == "event") {
    KMS_RETURN_IF_ERROR(CheckFields(o, kEventFields));
    for (const std::string_view name :
         {"request_id", "door", "operation", "principal", "credential_id", "source_address",
          "key_arn", "outcome", "error_message", "grant_id", "decision"}) {
      KMS_RETURN_IF_ERROR(StatusOf(GetString(o, name)));
    }
    KMS_RETURN_IF_ERROR(StatusOf(GetSigned(o, "http_status")));
    const json::value& ctx = o.at("encryption_context");
    if (!ctx.is_object()) return Bad("field \"encryption_context\" is not an object");
    for (const auto& kv : ctx.get_object()) {
      if (!kv.value().is_string()) {
        return Bad("encryption_context value " + Quoted(kv.key()) + " is not a string");
      }
    }
  } else if (out.type == "checkpoint") {
    KMS_RETURN_IF_ERROR(CheckFields(o, kCheckpointFields));
    KMS_ASSIGN_OR_RETURN(out.head, GetHash(o, "head"));
    KMS_ASSIGN_OR_RETURN(out.records, GetUnsigned(o, "records", false));
    KMS_ASSIGN_OR_RETURN(out.key, GetHash(o, "key"));
    KMS_ASSIGN_OR_RETURN(out.sig, GetString(o, "sig"));
  } else if (out.type == "recovered") {
    KMS_RETURN_IF_ERROR(CheckFields(o, kRecoveredFields));
    KMS_ASSIGN_OR_RETURN(out.truncated_bytes, GetUnsigned(o, "truncated_bytes", false));
  } else {
    return Bad("unknown record type " + Quoted(out.type));
  }
  KMS_ASSIGN_OR_RETURN(out.seq, GetUnsigned(o, "seq", true));
  KMS_ASSIGN_OR_RETURN(out.prev, GetHash(o, "prev"));
  KMS_ASSIGN_OR_RETURN(out.time_ms, GetSigned(o, "time_ms"));
  return out;
}

std::string AuditVerifyReport::Verdict() const {
  if (!ok) {
    std::string s = "audit log BROKEN at " + broken_file + " line " + std::to_string(broken_line);
    if (broken_seq.has_value()) s += " (seq " + std::to_string(*broken_seq) + ")";
    return s + ": " + reason;
  }
  std::string s = "audit log intact: " + std::to_string(records) + " records, " +
                  std::to_string(lines) + " lines";
  if (lines > 0) s += ", seq " + std::to_string(first_seq) + ".." + std::to_string(last_seq);
  s += " in " + std::to_string(files) + (files == 1 ? " file, " : " files, ") +
       std::to_string(checkpoints) + " signed checkpoints";
  if (unsigned_tail > 0) {
    s += "; " + std::to_string(unsigned_tail) + " unsigned after the last checkpoint";
  }
  return s;
}

StatusOr<AuditVerifyReport> VerifyAuditContents(const std::vector<AuditLogFile>& files,
                                                ByteView public_key_der) {
  PublicKey key;
  KMS_RETURN_IF_ERROR(key.Parse(public_key_der));
  const std::string key_id = HexSha256(public_key_der);

  Walk w;
  AuditVerifyReport& r = w.report;
  r.files = files.size();

  for (std::size_t fi = 0; fi < files.size(); ++fi) {
    const AuditLogFile& file = files[fi];
    const std::string_view data = file.contents;
    const std::optional<std::uint64_t> named_seq = ParseAuditFileName(BaseName(file.name));
    std::uint64_t line_no = 0;
    bool first_in_file = true;
    std::size_t pos = 0;
    while (pos < data.size()) {
      const std::size_t nl = data.find('\n', pos);
      auto broken = [&](std::optional<std::uint64_t> seq, std::string reason) {
        r.ok = false;
        r.broken_file = file.name;
        r.broken_line = line_no;
        r.broken_seq = seq;
        r.reason = std::move(reason);
        return r;
      };
      if (nl == std::string_view::npos) {
        ++line_no;
        if (fi + 1 == files.size()) {
          r.torn_bytes = data.size() - pos;
          break;
        }
        return broken(std::nullopt, "incomplete line (no newline) before the next file");
      }
      const std::string_view line = data.substr(pos, nl - pos);
      pos = nl + 1;
      ++line_no;

      auto parsed = ParseAuditLine(line);
      if (!parsed.has_value()) return broken(std::nullopt, parsed.error().message());
      const AuditLine& l = *parsed;

      // Order: the sequence first (a deleted, duplicated or moved record shows as a gap or a
      // repeat at once), then the file's name, then the link to the previous line.
      if (w.have_prev && l.seq != w.prev_seq + 1) {
        return broken(l.seq,
                      "seq " + std::to_string(l.seq) + " follows " + std::to_string(w.prev_seq));
      }
      if (first_in_file && named_seq.has_value() && l.seq != *named_seq) {
        return broken(l.seq, "seq " + std::to_string(l.seq) + " starts a file named for seq " +
                                 std::to_string(*named_seq));
      }
      const bool zero_prev = l.prev == kZeroHash;
      if (l.seq == 1 && !zero_prev) {
        return broken(l.seq, "a log's first record (seq 1) must have a zero prev");
      }
      if (l.seq != 1 && zero_prev) {
        return broken(l.seq, "zero prev (a log's start) at seq " + std::to_string(l.seq));
      }
      if (w.have_prev && l.prev != w.prev_hash) {
        std::string where = "line " + std::to_string(w.prev_line);
        if (w.prev_file != fi) where += " of " + files[w.prev_file].name;
        return broken(l.seq, "prev hash does not match " + where);
      }
      if (!w.have_prev) {
        r.first_seq = l.seq;
        r.from_log_start = l.seq == 1;
      }

      if (l.type == "checkpoint") {
        if (l.head != l.prev) return broken(l.seq, "checkpoint head does not match its prev");
        if (l.key != key_id) return broken(l.seq, "checkpoint signed by another key " + l.key);
        auto sig = Base64Decode(l.sig);
        if (!sig.has_value()) return broken(l.seq, "checkpoint signature is not base64");
        auto head = HexDecode(l.head);
        const auto digest = CheckpointDigest(l.seq, *head, l.records, l.time_ms);
        if (!key.Verify(digest, *sig)) return broken(l.seq, "checkpoint signature invalid");
        // The signature vouches for the count; the count must also be what precedes it here.
        std::uint64_t expected = w.events;
        if (!r.from_log_start) {
          if (!w.records_base.has_value() && l.records >= w.events) {
            w.records_base = l.records - w.events;
          }
          expected += w.records_base.value_or(0);
        }
        if (l.records != expected) {
          return broken(l.seq, "checkpoint counts " + std::to_string(l.records) + " records but " +
                                   std::to_string(expected) + " precede it");
        }
        ++r.checkpoints;
        r.last_checkpoint_seq = l.seq;
        r.unsigned_tail = 0;
      } else {
        if (l.type == "event") {
          ++w.events;
          ++r.records;
        } else {
          ++r.recoveries;
        }
        ++r.unsigned_tail;
      }
      ++r.lines;
      r.last_seq = l.seq;
      w.have_prev = true;
      w.prev_hash = HexEncode(AuditLineHash(line));
      w.prev_seq = l.seq;
      w.prev_file = fi;
      w.prev_line = line_no;
      first_in_file = false;
    }
  }

  r.ok = true;
  if (r.lines > 0 && !r.from_log_start) {
    r.warnings.push_back("the log starts at seq " + std::to_string(r.first_seq) +
                         " (earlier files absent): its first prev is not checked");
  }
  if (r.recoveries > 0) {
    r.warnings.push_back("the writer recovered from a crash " + std::to_string(r.recoveries) +
                         " time(s) (\"recovered\" records)");
  }
  if (r.torn_bytes > 0) {
    r.warnings.push_back("the final line (" + std::to_string(r.torn_bytes) +
                         " bytes) is incomplete, from a crash mid-write, and was ignored; the "
                         "writer truncates it when it reopens the log");
  }
  if (r.unsigned_tail > 0) {
    r.warnings.push_back(std::to_string(r.unsigned_tail) +
                         (r.last_checkpoint_seq == 0
                              ? " records and no checkpoint: nothing is signed"
                              : " records after the last checkpoint (seq " +
                                    std::to_string(r.last_checkpoint_seq) + ") are not signed") +
                         "; removing them (truncating the tail) could not be detected");
  }
  return r;
}

StatusOr<AuditVerifyReport> VerifyAuditLog(const std::vector<std::string>& files_in_order,
                                           ByteView public_key_der) {
  if (files_in_order.empty()) return InvalidArgumentError("audit verify: no files given");
  std::vector<AuditLogFile> files;
  files.reserve(files_in_order.size());
  for (const std::string& path : files_in_order) {
    KMS_ASSIGN_OR_RETURN(std::string contents, ReadWholeFile(path));
    files.push_back(AuditLogFile{path, std::move(contents)});
  }
  return VerifyAuditContents(files, public_key_der);
}

StatusOr<std::vector<std::string>> ListAuditFiles(const std::string& folder) {
  DIR* dir = ::opendir(folder.c_str());
  if (dir == nullptr) {
    const int error = errno;
    const std::string message = "audit log: " + folder + ": " + std::strerror(error);
    return error == ENOENT ? NotFoundError(message) : UnavailableError(message);
  }
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(dir)) {
    if (ParseAuditFileName(e->d_name).has_value()) names.emplace_back(e->d_name);
  }
  ::closedir(dir);
  // Zero-padded to 20 digits: name order is seq order.
  std::sort(names.begin(), names.end());
  std::vector<std::string> paths;
  paths.reserve(names.size());
  const std::string prefix = folder.ends_with('/') ? folder : folder + "/";
  for (const std::string& n : names) paths.push_back(prefix + n);
  return paths;
}

StatusOr<AuditVerifyReport> VerifyAuditFolder(const std::string& folder, ByteView public_key_der) {
  KMS_ASSIGN_OR_RETURN(std::vector<std::string> paths, ListAuditFiles(folder));
  if (paths.empty()) return NotFoundError("audit verify: no audit-*.log files in " + folder);
  return VerifyAuditLog(paths, public_key_der);
}

}  // namespace kms::firmware::audit
