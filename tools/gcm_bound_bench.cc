// gcm_bound_bench: measures the two ways of keeping every AES-GCM key under the NIST SP 800-38D §8.3
// invocation bound (docs/gcm-bound.md), on a throwaway SoftHSM2 dev token:
//
//  1. PKCS#11 level, one session, 32-byte plaintexts, 21-byte AAD:
//     - "counted":  C_GenerateRandom(IV) + C_EncryptInit(GCM) + C_Encrypt with a cached session key;
//     - "derived":  as above, but first C_DeriveKey(CKM_AES_ECB_ENCRYPT_DATA, 32-byte random nonce) of a
//                   per-request key from the version key and C_DestroyObject after (the only symmetric
//                   derivation SoftHSM2 has, docs/softhsm2.md "Mechanisms"; a real HSM would
//                   use SP 800-108).
//  2. Service level against the raw HAL with a cached handle, in the same run: Encrypt 32 B and 1 KiB,
//     Decrypt 1 KiB, GenerateDataKey (vs GenerateRandom + EncryptAesGcm), with the default durable
//     reservation batch (65536); and Encrypt with a durable counter write per invocation (batch 1).
//  Pairs are measured in alternating slices, five rounds, medians reported (the dev VM is shared).
//
// Usage: gcm_bound_bench [seconds-per-cell, default 2]. Prints one line per cell: ops/s and µs/op.
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <algorithm>
#include <functional>
#include <vector>
#include <string>

#include "firmware/clock.h"
#include "firmware/key_service.h"
#include "firmware/store/sqlite_store.h"
#include "hal/pkcs11_hsm.h"
#include "pkcs11/pkcs11.h"
#include "provisioning/dev_token.h"

namespace {

double g_seconds = 2.0;

double Measure(const char* name, const std::function<bool()>& op) {
  // Warm-up, then count whole operations until the time is up.
  for (int i = 0; i < 100; ++i) {
    if (!op()) {
      std::fprintf(stderr, "%s: operation failed\n", name);
      std::exit(1);
    }
  }
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + std::chrono::duration<double>(g_seconds);
  std::uint64_t n = 0;
  auto now = start;
  while (now < end) {
    for (int i = 0; i < 64; ++i) {
      if (!op()) {
        std::fprintf(stderr, "%s: operation failed\n", name);
        std::exit(1);
      }
    }
    n += 64;
    now = std::chrono::steady_clock::now();
  }
  const double secs = std::chrono::duration<double>(now - start).count();
  const double rate = static_cast<double>(n) / secs;
  std::printf("%-58s %10.0f ops/s %8.1f us/op\n", name, rate, 1e6 / rate);
  std::fflush(stdout);
  return rate;
}

// Runs `a` and `b` in alternating slices (5 rounds) and reports each one's median rate and the
// ratio b/a: on a shared, noisy machine alternation keeps both exposed to the same load.
void Compare(const char* name_a, const std::function<bool()>& a, const char* name_b,
             const std::function<bool()>& b) {
  const double saved = g_seconds;
  g_seconds = saved / 5;
  std::vector<double> ra, rb;
  for (int round = 0; round < 5; ++round) {
    ra.push_back(Measure(name_a, a));
    rb.push_back(Measure(name_b, b));
  }
  g_seconds = saved;
  std::sort(ra.begin(), ra.end());
  std::sort(rb.begin(), rb.end());
  std::printf("MEDIAN %-40s %10.0f ops/s | %-40s %10.0f ops/s | ratio %.2f\n", name_a, ra[2], name_b,
              rb[2], rb[2] / ra[2]);
  std::fflush(stdout);
}

#define CK_OK(call)                                                          \
  do {                                                                       \
    CK_RV rv_ = (call);                                                      \
    if (rv_ != CKR_OK) {                                                     \
      std::fprintf(stderr, "%s failed: 0x%lx\n", #call, static_cast<unsigned long>(rv_)); \
      std::exit(1);                                                          \
    }                                                                        \
  } while (0)

void Pkcs11Level(const kms::provisioning::DevToken& token) {
  void* lib = dlopen(token.module_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) std::exit(1);
  auto get = reinterpret_cast<CK_C_GetFunctionList>(dlsym(lib, "C_GetFunctionList"));
  CK_FUNCTION_LIST* f = nullptr;
  CK_OK(get(&f));
  CK_C_INITIALIZE_ARGS init{};
  init.flags = CKF_OS_LOCKING_OK;
  CK_OK(f->C_Initialize(&init));
  CK_ULONG nslots = 16;
  CK_SLOT_ID slots[16];
  CK_OK(f->C_GetSlotList(CK_TRUE, slots, &nslots));
  CK_SLOT_ID slot = 0;
  bool found = false;
  for (CK_ULONG i = 0; i < nslots && !found; ++i) {
    CK_TOKEN_INFO info;
    CK_OK(f->C_GetTokenInfo(slots[i], &info));
    std::string label(reinterpret_cast<const char*>(info.label), sizeof info.label);
    if (label.starts_with(token.token_label)) {
      slot = slots[i];
      found = true;
    }
  }
  if (!found) std::exit(1);
  CK_SESSION_HANDLE s = 0;
  CK_OK(f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s));
  auto pin = token.user_pin.ExposeSecret();
  CK_OK(f->C_Login(s, CKU_USER, const_cast<CK_UTF8CHAR*>(pin.data()), pin.size()));

  CK_OBJECT_CLASS secret = CKO_SECRET_KEY;
  CK_KEY_TYPE aes = CKK_AES;
  CK_ULONG len = 32;
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  CK_ATTRIBUTE base_tpl[] = {{CKA_CLASS, &secret, sizeof secret}, {CKA_KEY_TYPE, &aes, sizeof aes},
                             {CKA_VALUE_LEN, &len, sizeof len},   {CKA_TOKEN, &no, sizeof no},
                             {CKA_PRIVATE, &yes, sizeof yes},     {CKA_SENSITIVE, &yes, sizeof yes},
                             {CKA_ENCRYPT, &yes, sizeof yes},     {CKA_DERIVE, &yes, sizeof yes}};
  CK_MECHANISM gen{CKM_AES_KEY_GEN, nullptr, 0};
  CK_OBJECT_HANDLE key = 0;
  CK_OK(f->C_GenerateKey(s, &gen, base_tpl, 8, &key));

  unsigned char plaintext[32] = {1}, aad[21] = {2}, out[64];
  auto gcm_encrypt = [&](CK_OBJECT_HANDLE k) {
    unsigned char iv[12];
    if (f->C_GenerateRandom(s, iv, sizeof iv) != CKR_OK) return false;
    CK_GCM_PARAMS params{iv, sizeof iv, 96, aad, sizeof aad, 128};
    CK_MECHANISM mech{CKM_AES_GCM, &params, sizeof params};
    if (f->C_EncryptInit(s, &mech, k) != CKR_OK) return false;
    CK_ULONG out_len = sizeof out;
    return f->C_Encrypt(s, plaintext, sizeof plaintext, out, &out_len) == CKR_OK;
  };
  CK_ATTRIBUTE derived_tpl[] = {{CKA_CLASS, &secret, sizeof secret}, {CKA_KEY_TYPE, &aes, sizeof aes},
                                {CKA_VALUE_LEN, &len, sizeof len},   {CKA_TOKEN, &no, sizeof no},
                                {CKA_PRIVATE, &yes, sizeof yes},     {CKA_SENSITIVE, &yes, sizeof yes},
                                {CKA_ENCRYPT, &yes, sizeof yes}};
  Compare("pkcs11: counted (cached key, RNG IV, GCM 32 B)", [&] { return gcm_encrypt(key); },
          "pkcs11: derived (DeriveKey+GCM 32 B+Destroy)", [&] {
    unsigned char nonce[32];
    if (f->C_GenerateRandom(s, nonce, sizeof nonce) != CKR_OK) return false;
    CK_KEY_DERIVATION_STRING_DATA data{nonce, sizeof nonce};
    CK_MECHANISM mech{CKM_AES_ECB_ENCRYPT_DATA, &data, sizeof data};
    CK_OBJECT_HANDLE k = 0;
    if (f->C_DeriveKey(s, &mech, key, derived_tpl, 7, &k) != CKR_OK) return false;
    bool ok = gcm_encrypt(k);
    return f->C_DestroyObject(s, k) == CKR_OK && ok;
  });
  CK_OK(f->C_DestroyObject(s, key));
  CK_OK(f->C_CloseSession(s));
  CK_OK(f->C_Finalize(nullptr));
  dlclose(lib);
}

void ServiceLevel(const kms::provisioning::DevToken& token, const std::string& dir) {
  using namespace kms;
  using namespace kms::firmware;
  hal::Pkcs11HsmConfig config;
  config.module_path = token.module_path;
  config.token_label = token.token_label;
  config.token_serial = token.token_serial;
  config.user_pin = token.user_pin.Clone();
  config.domain_key_label = token.domain_key_label;
  auto hsm = hal::OpenPkcs11Hsm(std::move(config));
  if (!hsm) {
    std::fprintf(stderr, "open hsm: %s\n", hsm.error().ToString().c_str());
    std::exit(1);
  }
  auto raw_key = (*hsm)->GenerateKey(hal::KeyAlgorithm::kAes256, hal::KeyPurpose::kEncryptDecrypt);
  if (!raw_key) std::exit(1);
  Bytes aad(25, 3);
  Bytes small(32, 1), kib(1024, 1);
  auto sealed = (*hsm)->EncryptAesGcm(*raw_key, kib, aad);
  if (!sealed) std::exit(1);

  for (std::uint64_t batch : {std::uint64_t{65536}, std::uint64_t{1}}) {
    store::SqliteStoreOptions options;
    options.path = dir + "/bench-" + std::to_string(batch) + ".db";
    auto db = store::OpenSqliteStore(options);
    if (!db) std::exit(1);
    SystemClock clock;
    KeyServiceConfig sc;
    sc.gcm_reservation_batch = batch;
    auto service = KeyService::Open(**hsm, **db, clock, sc);
    if (!service) std::exit(1);
    auto key = (*service)->CreateKey({});
    if (!key) std::exit(1);
    EncryptRequest r;
    r.key_id = key->key_metadata.key_id;
    r.plaintext = SecretBytes::CopyFrom(small);
    if (batch == 1) {
      Measure("service: Encrypt 32 B, durable counter write per invocation",
              [&] { return (*service)->Encrypt(r).has_value(); });
      continue;
    }
    Compare("hal: EncryptAesGcm 32 B", [&] {
      return (*hsm)->EncryptAesGcm(*raw_key, small, aad).has_value();
    }, "service: Encrypt 32 B", [&] { return (*service)->Encrypt(r).has_value(); });
    EncryptRequest r1k;
    r1k.key_id = r.key_id;
    r1k.plaintext = SecretBytes::CopyFrom(kib);
    Compare("hal: EncryptAesGcm 1 KiB", [&] {
      return (*hsm)->EncryptAesGcm(*raw_key, kib, aad).has_value();
    }, "service: Encrypt 1 KiB", [&] { return (*service)->Encrypt(r1k).has_value(); });
    auto blob = (*service)->Encrypt(r1k);
    DecryptRequest d;
    d.ciphertext_blob = blob->ciphertext_blob;
    Compare("hal: DecryptAesGcm 1 KiB", [&] {
      return (*hsm)->DecryptAesGcm(*raw_key, sealed->iv, sealed->ciphertext, sealed->tag, aad)
          .has_value();
    }, "service: Decrypt 1 KiB", [&] { return (*service)->Decrypt(d).has_value(); });
    GenerateDataKeyRequest g;
    g.key_id = r.key_id;
    g.key_spec = DataKeySpec::kAes256;
    Compare("hal: GenerateRandom 32 + EncryptAesGcm", [&] {
      auto k = (*hsm)->GenerateRandom(32);
      return k && (*hsm)->EncryptAesGcm(*raw_key, k->ExposeSecret(), aad).has_value();
    }, "service: GenerateDataKey AES_256", [&] { return (*service)->GenerateDataKey(g).has_value(); });
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) g_seconds = std::atof(argv[1]);
  std::string tmpl = (std::filesystem::temp_directory_path() / "gcm-bench-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) return 1;
  const std::string dir = tmpl;
  {
    auto token = kms::provisioning::CreateDevToken(dir + "/token");
    if (!token) {
      std::fprintf(stderr, "dev token: %s\n", token.error().ToString().c_str());
      return 1;
    }
    Pkcs11Level(*token);
    ServiceLevel(*token, dir);
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}
