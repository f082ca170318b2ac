// libFuzzer target: the offline audit-log verifier (firmware/audit/audit_verify.h
// VerifyAuditContents, which reads files given as bytes) on hostile logs.
//
// The first byte picks the input's use:
//  * raw: the rest is the text of one or two log files, as found on disk;
//  * structured: the rest drives a genuine log (events, "recovered" lines and checkpoints signed
//    with the target's key, split over files named as the writer names them, in the writer's exact
//    JSON), then up to four tamperings (flip a byte, delete, duplicate or swap lines, rewrite a line
//    and re-chain everything after it, forge a line, tear or extend the tail, rename or reorder
//    files).
// Invariants:
//  * no crash, whatever the bytes;
//  * a genuine, untampered log is accepted, with every line and checkpoint counted;
//  * a log the verifier accepts really chains, by a second, simple check written here: consecutive
//    seq across files, prev = SHA-256 of the previous line, a zero prev exactly at seq 1, files
//    named for their first seq, every checkpoint's head = prev, key = the key's fingerprint, a
//    valid signature over the documented digest and the right record count;
//  * a log the verifier accepts has an authentic signed prefix: every line up to its last valid
//    checkpoint is the genuine line of that seq (a hash chain under a signature cannot be rewritten;
//    only the unsigned tail can, which the verifier reports as a warning).
// The key is RSA-512 with PKCS#1 v1.5, for speed (the verifier takes any key mbedTLS verifies with
// SHA-256; the appliance's is ECDSA P-256).
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/rsa.h>
#include <mbedtls/sha256.h>

#include <boost/json.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/encoding.h"
#include "firmware/audit/audit_log.h"
#include "firmware/audit/audit_verify.h"
#include "tests/fuzz/parsers/fuzz_input.h"

namespace {

namespace json = boost::json;
namespace audit = kms::firmware::audit;
using kms::Bytes;
using kms::ByteView;

// The checkpoint signer's key, made once per process from a fixed seed.
struct SigningKey {
  mbedtls_pk_context pk;
  mbedtls_ctr_drbg_context drbg;
  Bytes public_der;
  std::string key_id;

  SigningKey() {
    mbedtls_pk_init(&pk);
    mbedtls_ctr_drbg_init(&drbg);
    static const unsigned char kSeed[] = "kms audit verifier fuzz target";
    auto fixed_entropy = [](void*, unsigned char* out, std::size_t n) {
      for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<unsigned char>(i * 131 + 7);
      return 0;
    };
    if (mbedtls_ctr_drbg_seed(&drbg, fixed_entropy, nullptr, kSeed, sizeof kSeed) != 0 ||
        mbedtls_pk_setup(&pk, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)) != 0 ||
        mbedtls_rsa_gen_key(mbedtls_pk_rsa(pk), mbedtls_ctr_drbg_random, &drbg, 512, 65537) != 0) {
      std::abort();
    }
    unsigned char buf[512];
    const int n = mbedtls_pk_write_pubkey_der(&pk, buf, sizeof buf);
    if (n <= 0) std::abort();
    public_der.assign(buf + sizeof buf - n, buf + sizeof buf);
    key_id = kms::HexEncode(audit::AuditLineHash(kms::AsStringView(public_der)));
  }
  std::string Sign(ByteView digest) {
    unsigned char sig[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
    std::size_t len = 0;
    if (mbedtls_pk_sign(&pk, MBEDTLS_MD_SHA256, digest.data(), digest.size(), sig, &len,
                        mbedtls_ctr_drbg_random, &drbg) != 0) {
      std::abort();
    }
    return kms::Base64Encode(ByteView(sig, len));
  }
  bool Verify(ByteView digest, ByteView sig) {
    return mbedtls_pk_verify(&pk, MBEDTLS_MD_SHA256, digest.data(), digest.size(), sig.data(),
                             sig.size()) == 0;
  }
};

SigningKey& Key() {
  static SigningKey* k = new SigningKey();  // never destroyed: libFuzzer exits without unwinding
  return *k;
}

std::string HexSha256(std::string_view line) { return kms::HexEncode(audit::AuditLineHash(line)); }

const std::string kZero(64, '0');

// ---- the genuine log ----

struct Log {
  std::vector<std::string> lines;                // in order
  std::map<std::uint64_t, std::string> genuine;  // seq -> line, as written
  std::vector<std::size_t> file_starts;          // index of each file's first line
  std::vector<std::string> names;                // each file's name
};

std::string Field(kms::fuzz::ByteReader& in) { return kms::PrintableUtf8(in.String(12)); }

Log MakeLog(kms::fuzz::ByteReader& in) {
  Log log;
  const std::uint64_t first_seq = in.Bool() ? 1 : in.Range(2, 5000);
  std::string prev = first_seq == 1 ? kZero : HexSha256(in.String(8));
  std::uint64_t records = first_seq == 1 ? 0 : in.Range(0, 100);
  const std::size_t count = in.Range(1, 12);
  std::size_t checkpoints = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint64_t seq = first_seq + i;
    json::object o;
    o.emplace("v", 1);
    const std::size_t kind = in.Pick(16);
    const auto time_ms = static_cast<std::int64_t>(in.U32()) - 1000;
    if (kind == 0 && checkpoints < 2) {  // signing is most of the cost of an input: seldom
      ++checkpoints;
      const Bytes head = *kms::HexDecode(prev);
      const auto digest = audit::CheckpointDigest(seq, head, records, time_ms);
      o.emplace("type", "checkpoint");
      o.emplace("seq", seq);
      o.emplace("prev", prev);
      o.emplace("head", prev);
      o.emplace("records", records);
      o.emplace("time_ms", time_ms);
      o.emplace("key", Key().key_id);
      o.emplace("sig", Key().Sign(digest));
    } else if (kind == 1) {
      o.emplace("type", "recovered");
      o.emplace("seq", seq);
      o.emplace("prev", prev);
      o.emplace("time_ms", time_ms);
      o.emplace("truncated_bytes", in.Range(0, 4096));
    } else {
      ++records;
      o.emplace("type", "event");
      o.emplace("seq", seq);
      o.emplace("prev", prev);
      o.emplace("time_ms", time_ms);
      for (const char* name : {"request_id", "door", "operation", "principal", "credential_id",
                               "source_address", "key_arn", "outcome", "error_message"}) {
        o.emplace(name, Field(in));
      }
      o.emplace("http_status", static_cast<int>(in.Range(100, 599)));
      json::object context;
      const std::size_t pairs = in.Range(0, 2);
      for (std::size_t p = 0; p < pairs; ++p) context.emplace(Field(in), Field(in));
      o.emplace("encryption_context", std::move(context));
      o.emplace("grant_id", Field(in));
      o.emplace("decision", Field(in));
    }
    std::string line = json::serialize(o);
    prev = HexSha256(line);
    log.genuine[seq] = line;
    log.lines.push_back(std::move(line));
  }
  // Files: one to three, split at points the input chooses, named for their first seq.
  log.file_starts.push_back(0);
  const std::size_t splits = in.Range(0, 2);
  for (std::size_t s = 0; s < splits; ++s) {
    const std::size_t at = in.Range(1, count);
    if (at < count && at > log.file_starts.back()) log.file_starts.push_back(at);
  }
  for (std::size_t start : log.file_starts) {
    log.names.push_back(audit::AuditFileName(first_seq + start));
  }
  return log;
}

std::vector<audit::AuditLogFile> Files(const Log& log) {
  std::vector<audit::AuditLogFile> files;
  for (std::size_t f = 0; f < log.file_starts.size(); ++f) {
    const std::size_t end =
        f + 1 < log.file_starts.size() ? log.file_starts[f + 1] : log.lines.size();
    audit::AuditLogFile file{log.names[f], ""};
    for (std::size_t i = log.file_starts[f]; i < end; ++i) file.contents += log.lines[i] + "\n";
    files.push_back(std::move(file));
  }
  return files;
}

// Rewrites line i's fields (or replaces it) and re-chains every later line, checkpoints included
// (their head follows; their signature cannot).
void RewriteAndRechain(std::vector<std::string>& lines, std::size_t i, kms::fuzz::ByteReader& in) {
  json::error_code ec;
  json::value v = json::parse(lines[i], ec);
  if (ec || !v.is_object()) return;
  json::object& o = v.get_object();
  if (o.contains("time_ms")) o["time_ms"] = static_cast<std::int64_t>(in.U32());
  if (o.contains("outcome")) o["outcome"] = Field(in);
  if (o.contains("records") && in.Bool()) o["records"] = static_cast<std::uint64_t>(in.Range(0, 99));
  lines[i] = json::serialize(v);
  for (std::size_t j = i + 1; j < lines.size(); ++j) {
    json::value w = json::parse(lines[j], ec);
    if (ec || !w.is_object()) return;
    json::object& p = w.get_object();
    const std::string prev = HexSha256(lines[j - 1]);
    p["prev"] = prev;
    if (p.contains("head")) p["head"] = prev;
    lines[j] = json::serialize(w);
  }
}

// Returns false when nothing was changed.
bool Tamper(std::vector<audit::AuditLogFile>& files, kms::fuzz::ByteReader& in) {
  // Work on lines (with their file) for the line-level operations.
  struct Line {
    std::size_t file;
    std::string text;
  };
  std::vector<Line> lines;
  std::vector<std::string> tails(files.size());
  for (std::size_t f = 0; f < files.size(); ++f) {
    std::string_view c = files[f].contents;
    std::size_t pos = 0;
    while (pos < c.size()) {
      const std::size_t nl = c.find('\n', pos);
      if (nl == std::string_view::npos) {
        tails[f] = std::string(c.substr(pos));
        break;
      }
      lines.push_back({f, std::string(c.substr(pos, nl - pos))});
      pos = nl + 1;
    }
  }
  bool changed = false;
  const std::size_t op = in.Pick(10);
  if (lines.empty() && op < 6) return false;
  const std::size_t i = lines.empty() ? 0 : in.Range(0, lines.size() - 1);
  const std::size_t j = lines.empty() ? 0 : in.Range(0, lines.size() - 1);
  switch (op) {
    case 0:  // flip a byte
      if (!lines[i].text.empty()) {
        lines[i].text[in.Range(0, lines[i].text.size() - 1)] ^=
            static_cast<char>(in.Range(1, 255));
        changed = true;
      }
      break;
    case 1:  // delete a line
      lines.erase(lines.begin() + static_cast<std::ptrdiff_t>(i));
      changed = true;
      break;
    case 2:  // duplicate a line
      lines.insert(lines.begin() + static_cast<std::ptrdiff_t>(i), lines[i]);
      changed = true;
      break;
    case 3:  // swap two lines
      if (lines[i].text != lines[j].text) {
        std::swap(lines[i].text, lines[j].text);
        changed = true;
      }
      break;
    case 4: {  // rewrite and re-chain
      std::vector<std::string> texts;
      for (const Line& l : lines) texts.push_back(l.text);
      const std::vector<std::string> before = texts;
      RewriteAndRechain(texts, i, in);
      for (std::size_t k = 0; k < lines.size(); ++k) lines[k].text = texts[k];
      changed = texts != before;
      break;
    }
    case 5:  // forge a line from the input
      lines.insert(lines.begin() + static_cast<std::ptrdiff_t>(i), {lines[i].file, in.String(200)});
      changed = true;
      break;
    case 6: {  // tear or extend the last file's tail
      audit::AuditLogFile& last = files.back();
      if (in.Bool() && !last.contents.empty()) {
        const std::size_t keep = in.Range(0, last.contents.size() - 1);
        last.contents.resize(keep);
      } else {
        last.contents += in.String(100);
      }
      return true;
    }
    case 7: {  // rename a file
      audit::AuditLogFile& f = files[in.Range(0, files.size() - 1)];
      const std::string name = in.Bool() ? audit::AuditFileName(in.Range(0, 20)) : in.String(30);
      changed = name != f.name;
      f.name = name;
      return changed;
    }
    case 8:  // reorder files
      if (files.size() > 1) {
        std::swap(files[0], files[files.size() - 1]);
        return true;
      }
      return false;
    default:  // a file's bytes replaced by the input's
      files[in.Range(0, files.size() - 1)].contents = in.String(255);
      return true;
  }
  for (audit::AuditLogFile& f : files) f.contents.clear();
  for (const Line& l : lines) files[l.file].contents += l.text + "\n";
  for (std::size_t f = 0; f < files.size(); ++f) files[f].contents += tails[f];
  return changed;
}

// ---- the second, simple check of an accepted log ----

struct Checked {
  std::uint64_t last_checkpoint_seq = 0;
  std::vector<std::pair<std::uint64_t, std::string>> lines;  // seq, line
};

Checked IndependentCheck(const std::vector<audit::AuditLogFile>& files) {
  Checked out;
  std::optional<std::uint64_t> prev_seq;
  std::string prev_line;
  std::uint64_t events = 0;
  std::optional<std::uint64_t> base;  // records before the log's first line, when not from seq 1
  bool from_start = false;
  for (std::size_t f = 0; f < files.size(); ++f) {
    std::string_view c = files[f].contents;
    bool first_in_file = true;
    while (!c.empty()) {
      const std::size_t nl = c.find('\n');
      if (nl == std::string_view::npos) {
        KMS_FUZZ_CHECK(f + 1 == files.size(), "only the last file may end in a torn line");
        break;
      }
      const std::string line(c.substr(0, nl));
      c.remove_prefix(nl + 1);
      json::error_code ec;
      json::value v = json::parse(line, ec);
      KMS_FUZZ_CHECK(!ec && v.is_object(), "every accepted line is a JSON object");
      KMS_FUZZ_CHECK(json::serialize(v) == line, "every accepted line is canonical JSON");
      const json::object& o = v.get_object();
      const std::uint64_t seq = o.at("seq").to_number<std::uint64_t>();
      const std::string prev(o.at("prev").as_string());
      const std::string type(o.at("type").as_string());
      if (prev_seq) {
        KMS_FUZZ_CHECK(seq == *prev_seq + 1, "accepted seqs are consecutive");
        KMS_FUZZ_CHECK(prev == HexSha256(prev_line), "accepted prev is the previous line's hash");
      } else {
        from_start = seq == 1;
      }
      KMS_FUZZ_CHECK((prev == kZero) == (seq == 1), "a zero prev exactly at seq 1");
      const std::string_view name = files[f].name;
      const std::string_view base_name = name.substr(name.find_last_of('/') + 1);
      if (first_in_file && audit::ParseAuditFileName(base_name)) {
        KMS_FUZZ_CHECK(*audit::ParseAuditFileName(base_name) == seq,
                       "an accepted file is named for its first seq");
      }
      if (type == "checkpoint") {
        const std::string head(o.at("head").as_string());
        const auto records = o.at("records").to_number<std::uint64_t>();
        const auto time_ms = o.at("time_ms").to_number<std::int64_t>();
        KMS_FUZZ_CHECK(head == prev, "an accepted checkpoint's head is its prev");
        KMS_FUZZ_CHECK(std::string(o.at("key").as_string()) == Key().key_id,
                       "an accepted checkpoint names the key");
        auto sig = kms::Base64Decode(std::string(o.at("sig").as_string()));
        KMS_FUZZ_CHECK(sig.has_value(), "an accepted checkpoint's signature is base64");
        // The documented digest, built here byte by byte.
        Bytes message(std::string_view("kms.audit.checkpoint.v1").begin(),
                      std::string_view("kms.audit.checkpoint.v1").end());
        message.push_back(0);
        auto be64 = [&message](std::uint64_t x) {
          for (int s = 56; s >= 0; s -= 8) message.push_back(static_cast<std::uint8_t>(x >> s));
        };
        be64(seq);
        const Bytes head_bytes = *kms::HexDecode(head);
        message.insert(message.end(), head_bytes.begin(), head_bytes.end());
        be64(records);
        be64(static_cast<std::uint64_t>(time_ms));
        std::uint8_t digest[32];
        mbedtls_sha256_ret(message.data(), message.size(), digest, 0);
        KMS_FUZZ_CHECK(Key().Verify(ByteView(digest, 32), *sig),
                       "an accepted checkpoint's signature verifies");
        if (from_start) {
          KMS_FUZZ_CHECK(records == events, "an accepted checkpoint counts the events before it");
        } else {
          if (!base && records >= events) base = records - events;
          KMS_FUZZ_CHECK(records == events + base.value_or(0),
                         "an accepted checkpoint counts the events before it");
        }
        out.last_checkpoint_seq = seq;
      } else if (type == "event") {
        ++events;
      }
      out.lines.emplace_back(seq, line);
      prev_seq = seq;
      prev_line = line;
      first_in_file = false;
    }
  }
  return out;
}

void Check(const std::vector<audit::AuditLogFile>& files, const Log* genuine, bool tampered) {
  auto report = audit::VerifyAuditContents(files, Key().public_der);
  KMS_FUZZ_CHECK(report.has_value(), "the check runs on any bytes");
  if (genuine != nullptr && !tampered) {
    KMS_FUZZ_CHECK_DETAIL(report->ok, "a genuine log is accepted", report->Verdict());
    KMS_FUZZ_CHECK(report->lines == genuine->lines.size(), "a genuine log's lines are counted");
  }
  if (!report->ok) return;
  const Checked checked = IndependentCheck(files);
  KMS_FUZZ_CHECK(checked.lines.size() == report->lines, "the verifier counts the lines it checked");
  KMS_FUZZ_CHECK(checked.last_checkpoint_seq == report->last_checkpoint_seq,
                 "the verifier names the last checkpoint");
  if (genuine != nullptr) {
    for (const auto& [seq, line] : checked.lines) {
      if (seq > checked.last_checkpoint_seq) break;
      auto it = genuine->genuine.find(seq);
      KMS_FUZZ_CHECK(it != genuine->genuine.end() && it->second == line,
                     "every line under an accepted checkpoint is the genuine one");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  kms::fuzz::ByteReader in(data, size);
  if (in.Byte() % 4 == 0) {
    // Raw: one or two files, split at the first NUL.
    std::string rest = in.Rest();
    std::vector<audit::AuditLogFile> files;
    const std::size_t nul = rest.find('\0');
    files.push_back({audit::AuditFileName(1), rest.substr(0, nul)});
    if (nul != std::string::npos) files.push_back({"audit-x.log", rest.substr(nul + 1)});
    for (const auto& f : files) {
      std::string_view c = f.contents;
      std::size_t pos = 0;
      while (pos < c.size()) {
        const std::size_t nl = c.find('\n', pos);
        (void)audit::ParseAuditLine(c.substr(pos, nl == std::string_view::npos ? nl : nl - pos));
        if (nl == std::string_view::npos) break;
        pos = nl + 1;
      }
    }
    Check(files, nullptr, true);
    return 0;
  }
  const Log log = MakeLog(in);
  std::vector<audit::AuditLogFile> files = Files(log);
  bool tampered = false;
  const std::size_t rounds = in.Range(0, 4);
  for (std::size_t r = 0; r < rounds; ++r) tampered = Tamper(files, in) || tampered;
  Check(files, &log, tampered);
  return 0;
}
