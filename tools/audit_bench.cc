// audit_bench: AuditLog::Append throughput on a given disk, one appender and N concurrent ones
// (group commit: one write + one fdatasync per batch). Checkpoints are signed in software (an
// mbedTLS ECDSA P-256 key made per run), so the figure is the log's, not an HSM's; with the
// default cadence a checkpoint costs one signature per 1000 records.
//
//   audit_bench FOLDER [RECORDS] [THREADS...]   e.g. audit_bench /dev/shm 20000 1 8
//
// Each run writes RECORDS records into a fresh folder under FOLDER (removed afterwards) and prints
// records/s, batches, records per batch and fsyncs per batch.
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <stdlib.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "firmware/audit/audit_log.h"

namespace {

using kms::firmware::audit::AuditEvent;
using kms::firmware::audit::AuditLog;
using kms::firmware::audit::AuditLogOptions;

class SoftwareSigner final : public kms::firmware::audit::AuditSigner {
 public:
  SoftwareSigner() {
    mbedtls_pk_init(&pk_);
    mbedtls_entropy_init(&entropy_);
    mbedtls_ctr_drbg_init(&drbg_);
    ok_ = mbedtls_ctr_drbg_seed(&drbg_, mbedtls_entropy_func, &entropy_, nullptr, 0) == 0 &&
          mbedtls_pk_setup(&pk_, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) == 0 &&
          mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(pk_), mbedtls_ctr_drbg_random,
                              &drbg_) == 0;
    std::array<unsigned char, 256> buf{};
    const int n = ok_ ? mbedtls_pk_write_pubkey_der(&pk_, buf.data(), buf.size()) : -1;
    ok_ = ok_ && n > 0;
    if (ok_) der_.assign(buf.end() - n, buf.end());  // written at the end of the buffer
  }
  ~SoftwareSigner() override {
    mbedtls_pk_free(&pk_);
    mbedtls_ctr_drbg_free(&drbg_);
    mbedtls_entropy_free(&entropy_);
  }
  bool ok() const { return ok_; }

  kms::StatusOr<kms::Bytes> SignDigest(kms::ByteView digest) override {
    std::lock_guard lock(mu_);
    std::array<unsigned char, MBEDTLS_ECDSA_MAX_LEN> sig{};
    std::size_t len = 0;
    if (mbedtls_pk_sign(&pk_, MBEDTLS_MD_SHA256, digest.data(), digest.size(), sig.data(), &len,
                        mbedtls_ctr_drbg_random, &drbg_) != 0) {
      return kms::InternalError("bench signer failed");
    }
    return kms::Bytes(sig.begin(), sig.begin() + static_cast<std::ptrdiff_t>(len));
  }
  const kms::Bytes& public_key_der() const override { return der_; }

 private:
  std::mutex mu_;
  mbedtls_pk_context pk_;
  mbedtls_entropy_context entropy_;
  mbedtls_ctr_drbg_context drbg_;
  kms::Bytes der_;
  bool ok_ = false;
};

AuditEvent Event(int thread, int i) {
  AuditEvent e;
  e.request_id = "t" + std::to_string(thread) + "-" + std::to_string(i);
  e.door = "aws";
  e.operation = "Encrypt";
  e.principal = "arn:aws:iam::111122223333:user/bench";
  e.credential_id = "AKMSBENCHBENCHBENCH0";
  e.source_address = "192.0.2.10";
  e.key_arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
  e.outcome = "ok";
  e.encryption_context = {{"app", "bench"}};
  e.decision = "allow:key-policy";
  return e;
}

int Run(SoftwareSigner& signer, const std::string& base, int records, int threads) {
  std::string tmpl = base + "/audit-bench-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    std::fprintf(stderr, "audit_bench: cannot make a folder under %s\n", base.c_str());
    return 1;
  }
  AuditLogOptions options;
  options.folder = tmpl + "/audit";
  auto log = AuditLog::Open(options, signer);
  if (!log) {
    std::fprintf(stderr, "audit_bench: %s\n", log.error().ToString().c_str());
    return 1;
  }
  std::atomic<int> failed{0};
  const int per_thread = records / threads;
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        if (!(*log)->Append(Event(t, i)).ok()) ++failed;
      }
    });
  }
  for (auto& th : pool) th.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto stats = (*log)->stats();
  (void)(*log)->Close();
  log->reset();
  std::error_code ec;
  std::filesystem::remove_all(tmpl, ec);
  const double total = static_cast<double>(per_thread) * threads;
  std::printf(
      "%-24s threads %2d  records %7.0f  %9.0f records/s  %6.1f us/record  batches %7llu  "
      "records/batch %6.2f  fsyncs/batch %.3f  failures %d\n",
      base.c_str(), threads, total, total / seconds, seconds * 1e6 / total,
      static_cast<unsigned long long>(stats.batches),
      total / static_cast<double>(stats.batches ? stats.batches : 1),
      static_cast<double>(stats.syncs) / static_cast<double>(stats.batches ? stats.batches : 1),
      failed.load());
  return failed.load() == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: audit_bench FOLDER [RECORDS] [THREADS...]\n");
    return 2;
  }
  const std::string base = argv[1];
  const int records = argc > 2 ? std::atoi(argv[2]) : 20000;
  std::vector<int> thread_counts;
  for (int i = 3; i < argc; ++i) thread_counts.push_back(std::atoi(argv[i]));
  if (thread_counts.empty()) thread_counts = {1, 8};
  SoftwareSigner signer;
  if (!signer.ok()) {
    std::fprintf(stderr, "audit_bench: cannot make the signing key\n");
    return 1;
  }
  int status = 0;
  for (const int t : thread_counts) {
    if (t < 1 || records < t) return 2;
    status |= Run(signer, base, records, t);
  }
  return status;
}
