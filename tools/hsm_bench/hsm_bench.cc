// hsm_bench: HAL operations per second and latency against a raw PKCS#11 loop on the same module, in the
// same run, with 1 and 2 worker processes.
//
// Why processes: SoftHSM2 serialises much of its work on process-global mutexes, so throughput comes
// from several processes, each with its own C_Initialize (docs/softhsm2.md "Threads, processes and
// fork"). Workers are forked BEFORE any Cryptoki call in the parent (never fork after C_Initialize)
// and each opens the token itself.
//
// The two sides do the same work per operation: the raw loop draws its 12-byte IV with C_GenerateRandom
// as the HAL does, uses a session key with the HAL's template, and signs the same 32-byte digest; the
// HAL side adds only what the HAL adds (session checkout, policy checks, DER encoding of ECDSA
// signatures, handle lifetime).
//
// Machine load drifts on shared machines, so each cell alternates raw and HAL runs for --rounds rounds
// and reports the median of each side.
//
// With --metered a third side runs the HAL through hal::MeteredHsm (what kmsd does for /metrics), to
// show what counting and timing every call costs.
//
//   hsm_bench [--seconds S] [--rounds R] [--ops gcm_enc,gcm_dec,unwrap,ecdsa_sign,hmac] [--workers 1,2]
//             [--metered]
#include <dlfcn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/metrics.h"
#include "base/secret_bytes.h"
#include "base/status.h"
#include "hal/hsm.h"
#include "hal/metered_hsm.h"
#include "hal/pkcs11_hsm.h"
#include "pkcs11/pkcs11.h"
#include "provisioning/dev_token.h"

namespace {

using Clock = std::chrono::steady_clock;
using kms::Bytes;
using kms::ByteView;

struct Sample {
  std::uint64_t ops = 0;
  std::vector<float> latencies_us;  // every op (bounded by run length; a few MB at most)
};

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "hsm_bench: %s\n", what.c_str());
  std::_Exit(2);
}

void Check(CK_RV rv, const char* what) {
  if (rv != CKR_OK) Die(std::string(what) + " failed: rv=0x" + std::to_string(rv));
}
void Check(const kms::Status& s, const char* what) {
  if (!s.ok()) Die(std::string(what) + ": " + s.ToString());
}

// Runs `op` for `seconds`, timing each call.
Sample RunLoop(double seconds, const std::function<void()>& op) {
  Sample s;
  s.latencies_us.reserve(1 << 20);
  for (int i = 0; i < 200; ++i) op();  // warm-up
  auto end = Clock::now() + std::chrono::duration<double>(seconds);
  for (;;) {
    auto t0 = Clock::now();
    op();
    auto t1 = Clock::now();
    s.latencies_us.push_back(std::chrono::duration<float, std::micro>(t1 - t0).count());
    ++s.ops;
    if (t1 >= end) break;
  }
  return s;
}

// ---- the raw side: Cryptoki calls straight through the function list ----------------------------------
class RawToken {
 public:
  explicit RawToken(const kms::provisioning::DevToken& token) {
    lib_ = dlopen(token.module_path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib_ == nullptr) Die("dlopen failed");
    auto get = reinterpret_cast<CK_C_GetFunctionList>(dlsym(lib_, "C_GetFunctionList"));
    if (get == nullptr) Die("no C_GetFunctionList");
    Check(get(&f_), "C_GetFunctionList");
    CK_C_INITIALIZE_ARGS args{};
    args.flags = CKF_OS_LOCKING_OK;
    Check(f_->C_Initialize(&args), "C_Initialize");
    CK_ULONG count = 0;
    Check(f_->C_GetSlotList(CK_TRUE, nullptr, &count), "C_GetSlotList");
    std::vector<CK_SLOT_ID> slots(count);
    Check(f_->C_GetSlotList(CK_TRUE, slots.data(), &count), "C_GetSlotList");
    for (CK_SLOT_ID slot : slots) {
      CK_TOKEN_INFO info;
      // SoftHSM2 rewrites token.object at every C_Login; a second process starting at that moment reads
      // a half-written file (CKR_GENERAL_ERROR). Retry briefly, as the HAL's callers do.
      CK_RV rv = CKR_GENERAL_ERROR;
      for (int attempt = 0; attempt < 50 && rv != CKR_OK; ++attempt) {
        rv = f_->C_GetTokenInfo(slot, &info);
        if (rv != CKR_OK) usleep(20'000);
      }
      Check(rv, "C_GetTokenInfo");
      std::string label(reinterpret_cast<char*>(info.label), sizeof(info.label));
      label.erase(label.find_last_not_of(' ') + 1);
      if (label == token.token_label) slot_ = slot;
    }
    Check(f_->C_OpenSession(slot_, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &session_),
          "C_OpenSession");
    auto pin = token.user_pin.ExposeSecret();
    CK_RV login = CKR_GENERAL_ERROR;
    for (int attempt = 0; attempt < 50; ++attempt) {
      login = f_->C_Login(session_, CKU_USER, const_cast<CK_BYTE*>(pin.data()), pin.size());
      if (login == CKR_OK || login == CKR_USER_ALREADY_LOGGED_IN) break;
      usleep(20'000);
    }
    if (login != CKR_USER_ALREADY_LOGGED_IN) Check(login, "C_Login");
    // The domain key, by label.
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_ATTRIBUTE find[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_LABEL, const_cast<char*>(token.domain_key_label.data()), token.domain_key_label.size()}};
    Check(f_->C_FindObjectsInit(session_, find, 2), "C_FindObjectsInit");
    CK_ULONG found = 0;
    Check(f_->C_FindObjects(session_, &domain_key_, 1, &found), "C_FindObjects");
    f_->C_FindObjectsFinal(session_);
    if (found != 1) Die("domain key not found");
  }
  ~RawToken() {
    f_->C_CloseAllSessions(slot_);
    f_->C_Finalize(nullptr);
    dlclose(lib_);
  }

  CK_FUNCTION_LIST* f() const { return f_; }
  CK_SESSION_HANDLE session() const { return session_; }
  CK_OBJECT_HANDLE domain_key() const { return domain_key_; }

  // An AES-256 session key with the HAL's generated-key template (sensitive, private, extractable so
  // the domain key can wrap it, encrypt/decrypt only).
  CK_OBJECT_HANDLE AesKey() {
    CK_MECHANISM mech{CKM_AES_KEY_GEN, nullptr, 0};
    CK_BBOOL t = CK_TRUE, fa = CK_FALSE;
    CK_ULONG len = 32;
    CK_ATTRIBUTE tmpl[] = {{CKA_TOKEN, &fa, 1},     {CKA_PRIVATE, &t, 1},   {CKA_SENSITIVE, &t, 1},
                           {CKA_EXTRACTABLE, &t, 1}, {CKA_ENCRYPT, &t, 1},   {CKA_DECRYPT, &t, 1},
                           {CKA_WRAP, &fa, 1},       {CKA_UNWRAP, &fa, 1},   {CKA_SIGN, &fa, 1},
                           {CKA_VERIFY, &fa, 1},     {CKA_MODIFIABLE, &fa, 1}, {CKA_VALUE_LEN, &len, sizeof(len)}};
    CK_OBJECT_HANDLE key;
    Check(f_->C_GenerateKey(session_, &mech, tmpl, sizeof(tmpl) / sizeof(tmpl[0]), &key), "AES keygen");
    return key;
  }
  CK_OBJECT_HANDLE HmacKey() {
    CK_MECHANISM mech{CKM_GENERIC_SECRET_KEY_GEN, nullptr, 0};
    CK_BBOOL t = CK_TRUE, fa = CK_FALSE;
    CK_ULONG len = 32;
    CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
    CK_ATTRIBUTE tmpl[] = {{CKA_TOKEN, &fa, 1},   {CKA_PRIVATE, &t, 1}, {CKA_SENSITIVE, &t, 1},
                           {CKA_EXTRACTABLE, &fa, 1}, {CKA_SIGN, &t, 1}, {CKA_VERIFY, &t, 1},
                           {CKA_ENCRYPT, &fa, 1}, {CKA_DECRYPT, &fa, 1}, {CKA_KEY_TYPE, &kt, sizeof(kt)},
                           {CKA_VALUE_LEN, &len, sizeof(len)}};
    CK_OBJECT_HANDLE key;
    Check(f_->C_GenerateKey(session_, &mech, tmpl, sizeof(tmpl) / sizeof(tmpl[0]), &key), "HMAC keygen");
    return key;
  }
  CK_OBJECT_HANDLE EcP256PrivateKey() {
    static const CK_BYTE kP256Oid[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
    CK_MECHANISM mech{CKM_EC_KEY_PAIR_GEN, nullptr, 0};
    CK_BBOOL t = CK_TRUE, fa = CK_FALSE;
    CK_ATTRIBUTE pub[] = {{CKA_TOKEN, &fa, 1}, {CKA_VERIFY, &t, 1},
                          {CKA_EC_PARAMS, const_cast<CK_BYTE*>(kP256Oid), sizeof(kP256Oid)}};
    CK_ATTRIBUTE priv[] = {{CKA_TOKEN, &fa, 1}, {CKA_PRIVATE, &t, 1}, {CKA_SENSITIVE, &t, 1},
                           {CKA_EXTRACTABLE, &t, 1}, {CKA_SIGN, &t, 1}, {CKA_DECRYPT, &fa, 1}};
    CK_OBJECT_HANDLE pub_key, priv_key;
    Check(f_->C_GenerateKeyPair(session_, &mech, pub, 3, priv, 6, &pub_key, &priv_key), "EC keygen");
    return priv_key;
  }

 private:
  void* lib_ = nullptr;
  CK_FUNCTION_LIST* f_ = nullptr;
  CK_SLOT_ID slot_ = 0;
  CK_SESSION_HANDLE session_ = 0;
  CK_OBJECT_HANDLE domain_key_ = 0;
};

Sample RunRaw(const std::string& op, double seconds, const kms::provisioning::DevToken& token) {
  RawToken raw(token);
  CK_FUNCTION_LIST* f = raw.f();
  CK_SESSION_HANDLE s = raw.session();
  std::vector<CK_BYTE> message(1024, 0x5a), out(2048);
  CK_BYTE iv[12];
  if (op == "gcm_enc" || op == "gcm_dec") {
    CK_OBJECT_HANDLE key = raw.AesKey();
    CK_GCM_PARAMS params{iv, sizeof(iv), 96, nullptr, 0, 128};
    CK_MECHANISM mech{CKM_AES_GCM, &params, sizeof(params)};
    auto encrypt = [&] {
      Check(f->C_GenerateRandom(s, iv, sizeof(iv)), "C_GenerateRandom");
      Check(f->C_EncryptInit(s, &mech, key), "C_EncryptInit");
      CK_ULONG n = out.size();
      Check(f->C_Encrypt(s, message.data(), message.size(), out.data(), &n), "C_Encrypt");
      return n;
    };
    if (op == "gcm_enc") return RunLoop(seconds, encrypt);
    std::vector<CK_BYTE> ct(out.begin(), out.begin() + static_cast<long>(encrypt()));
    return RunLoop(seconds, [&] {
      Check(f->C_DecryptInit(s, &mech, key), "C_DecryptInit");
      CK_ULONG n = out.size();
      Check(f->C_Decrypt(s, ct.data(), ct.size(), out.data(), &n), "C_Decrypt");
    });
  }
  if (op == "unwrap") {
    CK_OBJECT_HANDLE key = raw.AesKey();
    CK_MECHANISM kwp{CKM_AES_KEY_WRAP_PAD, nullptr, 0};
    CK_ULONG n = out.size();
    Check(f->C_WrapKey(s, &kwp, raw.domain_key(), key, out.data(), &n), "C_WrapKey");
    std::vector<CK_BYTE> wrapped(out.begin(), out.begin() + static_cast<long>(n));
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_AES;
    CK_BBOOL t = CK_TRUE, fa = CK_FALSE;
    CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_KEY_TYPE, &kt, sizeof(kt)},
                           {CKA_TOKEN, &fa, 1},  {CKA_PRIVATE, &t, 1},  {CKA_SENSITIVE, &t, 1},
                           {CKA_EXTRACTABLE, &fa, 1}, {CKA_ENCRYPT, &t, 1}, {CKA_DECRYPT, &t, 1},
                           {CKA_WRAP, &fa, 1}, {CKA_UNWRAP, &fa, 1}, {CKA_MODIFIABLE, &fa, 1}};
    return RunLoop(seconds, [&] {
      CK_OBJECT_HANDLE k;
      Check(f->C_UnwrapKey(s, &kwp, raw.domain_key(), wrapped.data(), wrapped.size(), tmpl,
                           sizeof(tmpl) / sizeof(tmpl[0]), &k),
            "C_UnwrapKey");
      Check(f->C_DestroyObject(s, k), "C_DestroyObject");
    });
  }
  if (op == "ecdsa_sign") {
    CK_OBJECT_HANDLE key = raw.EcP256PrivateKey();
    CK_MECHANISM mech{CKM_ECDSA, nullptr, 0};
    std::vector<CK_BYTE> digest(32, 0x11);
    return RunLoop(seconds, [&] {
      Check(f->C_SignInit(s, &mech, key), "C_SignInit");
      CK_ULONG n = out.size();
      Check(f->C_Sign(s, digest.data(), digest.size(), out.data(), &n), "C_Sign");
    });
  }
  if (op == "hmac") {
    CK_OBJECT_HANDLE key = raw.HmacKey();
    CK_MECHANISM mech{CKM_SHA256_HMAC, nullptr, 0};
    return RunLoop(seconds, [&] {
      Check(f->C_SignInit(s, &mech, key), "C_SignInit");
      CK_ULONG n = out.size();
      Check(f->C_Sign(s, message.data(), message.size(), out.data(), &n), "C_Sign");
    });
  }
  Die("unknown op " + op);
}

// ---- the HAL side ------------------------------------------------------------------------------------
Sample RunHal(const std::string& op, double seconds, const kms::provisioning::DevToken& token,
             bool metered) {
  auto config = [&token] {
    kms::hal::Pkcs11HsmConfig c;
    c.module_path = token.module_path;
    c.token_label = token.token_label;
    c.token_serial = token.token_serial;
    c.user_pin = token.user_pin.Clone();
    c.domain_key_label = token.domain_key_label;
    c.session_pool_size = 1;  // one thread per process, as the raw loop
    return c;
  };
  // Retried for the same SoftHSM2 token.object race as the raw side (see RawToken).
  auto opened = kms::hal::OpenPkcs11Hsm(config());
  for (int attempt = 0; attempt < 50 && !opened.has_value(); ++attempt) {
    usleep(20'000);
    opened = kms::hal::OpenPkcs11Hsm(config());
  }
  if (!opened.has_value()) Die("OpenPkcs11Hsm: " + opened.error().ToString());
  kms::metrics::MetricsRegistry registry;
  kms::hal::MeteredHsm metered_hsm(**opened, registry);
  kms::hal::Hsm& hsm = metered ? static_cast<kms::hal::Hsm&>(metered_hsm) : **opened;
  Bytes message(1024, 0x5a);
  using kms::hal::KeyAlgorithm;
  using kms::hal::KeyPurpose;
  if (op == "gcm_enc" || op == "gcm_dec") {
    auto key = hsm.GenerateKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt);
    Check(kms::StatusOf(key), "GenerateKey");
    if (op == "gcm_enc") {
      return RunLoop(seconds, [&] {
        Check(kms::StatusOf(hsm.EncryptAesGcm(*key, message, {})), "EncryptAesGcm");
      });
    }
    auto ct = hsm.EncryptAesGcm(*key, message, {});
    Check(kms::StatusOf(ct), "EncryptAesGcm");
    return RunLoop(seconds, [&] {
      Check(kms::StatusOf(hsm.DecryptAesGcm(*key, ct->iv, ct->ciphertext, ct->tag, {})),
            "DecryptAesGcm");
    });
  }
  if (op == "unwrap") {
    auto key = hsm.GenerateKey(KeyAlgorithm::kAes256, KeyPurpose::kEncryptDecrypt);
    Check(kms::StatusOf(key), "GenerateKey");
    auto wrapped = hsm.WrapKey(*key);
    Check(kms::StatusOf(wrapped), "WrapKey");
    return RunLoop(seconds, [&] {
      auto k = hsm.UnwrapKey(*wrapped);  // destroyed when `k` goes, as the raw loop's C_DestroyObject
      Check(kms::StatusOf(k), "UnwrapKey");
    });
  }
  if (op == "ecdsa_sign") {
    auto key = hsm.GenerateKey(KeyAlgorithm::kEcP256, KeyPurpose::kSignVerify);
    Check(kms::StatusOf(key), "GenerateKey");
    Bytes digest(32, 0x11);
    return RunLoop(seconds, [&] {
      Check(kms::StatusOf(hsm.SignDigest(*key, kms::hal::SignatureAlgorithm::kEcdsaSha256, digest)),
            "SignDigest");
    });
  }
  if (op == "hmac") {
    auto key = hsm.GenerateKey(KeyAlgorithm::kHmacSha256, KeyPurpose::kMac);
    Check(kms::StatusOf(key), "GenerateKey");
    return RunLoop(seconds, [&] { Check(kms::StatusOf(hsm.ComputeMac(*key, message)), "ComputeMac"); });
  }
  Die("unknown op " + op);
}

// ---- processes ---------------------------------------------------------------------------------------
struct Result {
  double ops_per_s = 0;
  double p50 = 0, p99 = 0;
};

bool WriteAll(int fd, const void* p, std::size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w <= 0) return false;
    c += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}
bool ReadAll(int fd, void* p, std::size_t n) {
  char* c = static_cast<char*>(p);
  while (n > 0) {
    ssize_t r = read(fd, c, n);
    if (r <= 0) return false;
    c += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

Result RunWorkers(int workers, double seconds, const std::string& state_dir,
                  const std::function<Sample(const kms::provisioning::DevToken&)>& body) {
  std::vector<int> fds;
  std::vector<pid_t> pids;
  for (int w = 0; w < workers; ++w) {
    int p[2];
    if (pipe(p) != 0) Die("pipe");
    pid_t pid = fork();
    if (pid == 0) {
      close(p[0]);
      auto token = kms::provisioning::OpenDevToken(state_dir);
      if (!token.has_value()) Die("OpenDevToken: " + token.error().ToString());
      Sample s = body(*token);
      std::uint64_t n = s.latencies_us.size();
      WriteAll(p[1], &s.ops, sizeof(s.ops));
      WriteAll(p[1], &n, sizeof(n));
      WriteAll(p[1], s.latencies_us.data(), n * sizeof(float));
      close(p[1]);
      std::_Exit(0);
    }
    close(p[1]);
    fds.push_back(p[0]);
    pids.push_back(pid);
  }
  std::uint64_t total_ops = 0;
  std::vector<float> all;
  for (int fd : fds) {
    std::uint64_t ops = 0, n = 0;
    if (!ReadAll(fd, &ops, sizeof(ops)) || !ReadAll(fd, &n, sizeof(n))) Die("worker failed");
    std::vector<float> lat(n);
    if (!ReadAll(fd, lat.data(), n * sizeof(float))) Die("worker failed");
    total_ops += ops;
    all.insert(all.end(), lat.begin(), lat.end());
    close(fd);
  }
  for (pid_t pid : pids) {
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) Die("worker exited abnormally");
  }
  Result r;
  r.ops_per_s = static_cast<double>(total_ops) / seconds;
  std::sort(all.begin(), all.end());
  if (!all.empty()) {
    r.p50 = all[all.size() / 2];
    r.p99 = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  }
  return r;
}

// Per field median across rounds.
Result Median(std::vector<Result> results) {
  auto median_of = [&results](double Result::*field) {
    std::vector<double> v;
    for (const auto& r : results) v.push_back(r.*field);
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  Result m;
  m.ops_per_s = median_of(&Result::ops_per_s);
  m.p50 = median_of(&Result::p50);
  m.p99 = median_of(&Result::p99);
  return m;
}

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    std::size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    if (comma > start) out.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 2.0;
  int rounds = 3;
  std::vector<std::string> ops = {"gcm_enc", "gcm_dec", "unwrap", "ecdsa_sign", "hmac"};
  std::vector<int> worker_counts = {1, 2};
  bool metered = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--seconds" && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else if (a == "--rounds" && i + 1 < argc) {
      rounds = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--ops" && i + 1 < argc) {
      ops = Split(argv[++i]);
    } else if (a == "--workers" && i + 1 < argc) {
      worker_counts.clear();
      for (const auto& w : Split(argv[++i])) worker_counts.push_back(std::atoi(w.c_str()));
    } else if (a == "--metered") {
      metered = true;
    } else {
      std::fprintf(stderr,
                   "usage: hsm_bench [--seconds S] [--rounds R] [--ops a,b] [--workers 1,2] "
                   "[--metered]\n");
      return 2;
    }
  }

  char tmpl[] = "/tmp/kms-hsm-bench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) Die("mkdtemp");
  std::string dir = std::string(tmpl) + "/token";
  // Make the token in a child so this process never initialises Cryptoki (workers fork from it).
  pid_t maker = fork();
  if (maker == 0) {
    auto t = kms::provisioning::CreateDevToken(dir);
    if (!t.has_value()) Die("CreateDevToken: " + t.error().ToString());
    std::_Exit(0);
  }
  int status = 0;
  waitpid(maker, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) Die("token creation failed");

  std::printf("| operation | workers | raw PKCS#11 ops/s | raw p50 µs | raw p99 µs | HAL ops/s | HAL p50 µs "
              "| HAL p99 µs | HAL/raw |%s\n|---|---:|---:|---:|---:|---:|---:|---:|---:|%s\n",
              metered ? " metered HAL ops/s | metered p50 µs | metered p99 µs | metered/HAL |" : "",
              metered ? "---:|---:|---:|---:|" : "");
  for (const auto& op : ops) {
    for (int workers : worker_counts) {
      std::vector<Result> raws, hals, metereds;
      for (int r = 0; r < rounds; ++r) {
        raws.push_back(
            RunWorkers(workers, seconds, dir, [&](const auto& t) { return RunRaw(op, seconds, t); }));
        hals.push_back(RunWorkers(workers, seconds, dir,
                                  [&](const auto& t) { return RunHal(op, seconds, t, false); }));
        if (metered) {
          metereds.push_back(RunWorkers(
              workers, seconds, dir, [&](const auto& t) { return RunHal(op, seconds, t, true); }));
        }
      }
      Result raw = Median(raws);
      Result hal = Median(hals);
      std::printf("| %s | %d | %.0f | %.1f | %.1f | %.0f | %.1f | %.1f | %.1f%% |", op.c_str(), workers,
                  raw.ops_per_s, raw.p50, raw.p99, hal.ops_per_s, hal.p50, hal.p99,
                  100.0 * hal.ops_per_s / raw.ops_per_s);
      if (metered) {
        Result m = Median(metereds);
        std::printf(" %.0f | %.1f | %.1f | %.1f%% |", m.ops_per_s, m.p50, m.p99,
                    100.0 * m.ops_per_s / hal.ops_per_s);
      }
      std::printf("\n");
      std::fflush(stdout);
    }
  }
  std::filesystem::remove_all(tmpl);
  return 0;
}
