// key_service_bench: the key-service figures of docs/performance.md, on a throwaway SoftHSM2 dev token.
//
//  1. CreateKey per second with the store on disk (durable: WAL + synchronous=FULL, three commits per key).
//  2. Population: `keys` symmetric keys created through the service (store in `--store-dir`, default the
//     temp folder), each with one 32-byte ciphertext, then Decrypt of every ciphertext once in random
//     order: every call misses the handle cache (capacity 1024) and unwraps, and with more keys than the
//     record cache holds, reads the store.
//  3. Store size (database + WAL) and process memory (VmRSS, VmHWM) at `keys` keys.
//  4. Optionally (`--bulk N`), N more keys inserted straight into the store in transactions of 10,000
//     (records copied from a real key under new ids: the service's CreateKey path is not involved) to
//     measure the store size and a cold DescribeKey/Decrypt-path lookup at N keys.
//
// Usage: key_service_bench [--keys 100000] [--durable-keys 2000] [--bulk 0] [--store-dir DIR]
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "firmware/clock.h"
#include "firmware/key_service.h"
#include "firmware/store/metadata_store.h"
#include "firmware/store/sqlite_store.h"
#include "hal/pkcs11_hsm.h"
#include "provisioning/dev_token.h"

namespace {

using namespace kms;
using namespace kms::firmware;
using Steady = std::chrono::steady_clock;

double Seconds(Steady::time_point since) {
  return std::chrono::duration<double>(Steady::now() - since).count();
}

std::string ProcStatus(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(field)) return line.substr(std::strlen(field) + 1);
  }
  return "?";
}

std::uintmax_t StoreBytes(const std::string& db) {
  std::uintmax_t total = 0;
  for (const char* suffix : {"", "-wal"}) {
    std::error_code ec;
    auto n = std::filesystem::file_size(db + suffix, ec);
    if (!ec) total += n;
  }
  return total;
}

[[noreturn]] void Die(const Status& s, const char* what) {
  std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t keys = 100'000, durable_keys = 2'000, bulk = 0;
  std::string store_dir;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--keys") keys = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--durable-keys") durable_keys = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--bulk") bulk = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--store-dir") store_dir = argv[i + 1];
  }
  std::string tmpl = (std::filesystem::temp_directory_path() / "ks-bench-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) return 1;
  const std::string dir = tmpl;
  if (store_dir.empty()) store_dir = dir;
  auto token = provisioning::CreateDevToken(dir + "/token");
  if (!token) Die(token.error(), "dev token");
  hal::Pkcs11HsmConfig config;
  config.module_path = token->module_path;
  config.token_label = token->token_label;
  config.token_serial = token->token_serial;
  config.user_pin = token->user_pin.Clone();
  config.domain_key_label = token->domain_key_label;
  auto hsm = hal::OpenPkcs11Hsm(std::move(config));
  if (!hsm) Die(hsm.error(), "open hsm");
  SystemClock clock;
  std::printf("start: VmRSS %s\n", ProcStatus("VmRSS:").c_str());

  {  // 1. durable CreateKey rate, store on disk in the temp folder
    store::SqliteStoreOptions options;
    options.path = dir + "/durable.db";
    auto db = store::OpenSqliteStore(options);
    if (!db) Die(db.error(), "open store");
    auto service = KeyService::Open(**hsm, **db, clock);
    if (!service) Die(service.error(), "open service");
    auto start = Steady::now();
    for (std::size_t i = 0; i < durable_keys; ++i) {
      auto k = (*service)->CreateKey({});
      if (!k) Die(k.error(), "CreateKey");
    }
    std::printf("CreateKey (durable store on %s): %zu keys, %.0f keys/s\n", dir.c_str(), durable_keys,
                static_cast<double>(durable_keys) / Seconds(start));
  }

  store::SqliteStoreOptions options;
  options.path = store_dir + "/population-" + std::to_string(getpid()) + ".db";
  auto db = store::OpenSqliteStore(options);
  if (!db) Die(db.error(), "open store");
  auto service = KeyService::Open(**hsm, **db, clock);
  if (!service) Die(service.error(), "open service");
  KeyService& svc = **service;

  // 2. population and cold decrypts
  std::vector<Bytes> blobs;
  blobs.reserve(keys);
  std::string some_key;
  auto start = Steady::now();
  for (std::size_t i = 0; i < keys; ++i) {
    auto k = svc.CreateKey({});
    if (!k) Die(k.error(), "CreateKey");
    EncryptRequest e;
    e.key_id = k->key_metadata.key_id;
    e.plaintext = SecretBytes(32);
    auto ct = svc.Encrypt(e);
    if (!ct) Die(ct.error(), "Encrypt");
    blobs.push_back(std::move(ct->ciphertext_blob));
    some_key = k->key_metadata.key_id;
    if ((i + 1) % 20000 == 0) {
      std::printf("  populated %zu keys (%.0f CreateKey+Encrypt/s)\n", i + 1,
                  static_cast<double>(i + 1) / Seconds(start));
      std::fflush(stdout);
    }
  }
  std::printf("CreateKey + one Encrypt (store in %s): %zu keys, %.0f keys/s\n", store_dir.c_str(), keys,
              static_cast<double>(keys) / Seconds(start));
  std::mt19937_64 rng(42);
  std::shuffle(blobs.begin(), blobs.end(), rng);
  start = Steady::now();
  for (const Bytes& b : blobs) {
    DecryptRequest d;
    d.ciphertext_blob = b;
    auto p = svc.Decrypt(d);
    if (!p) Die(p.error(), "Decrypt");
  }
  std::printf("Decrypt across %zu distinct keys (handle cache 1024: every call unwraps): %.0f ops/s\n",
              keys, static_cast<double>(keys) / Seconds(start));
  std::printf("handle cache: %llu hits, %llu misses\n",
              static_cast<unsigned long long>(svc.cache().hits()),
              static_cast<unsigned long long>(svc.cache().misses()));
  // 3. sizes
  std::printf("at %zu keys: store %.1f MiB (db+wal), VmRSS %s, VmHWM %s\n", keys,
              static_cast<double>(StoreBytes(options.path)) / (1024.0 * 1024.0),
              ProcStatus("VmRSS:").c_str(), ProcStatus("VmHWM:").c_str());

  // 4. bulk records to N keys
  if (bulk > 0) {
    records::KeyRecord key;
    records::KeyVersionRecord version;
    {
      auto tx = (*db)->Begin(store::TransactionMode::kReadOnly);
      if (!tx) Die(tx.error(), "begin");
      auto k = (*tx)->GetKey(some_key);
      auto v = (*tx)->GetKeyVersion(some_key, 1);
      if (!k || !v) return 1;
      key = *k;
      version = *v;
    }
    start = Steady::now();
    for (std::size_t done = 0; done < bulk;) {
      auto tx = (*db)->Begin();
      if (!tx) Die(tx.error(), "begin");
      for (std::size_t j = 0; j < 10'000 && done < bulk; ++j, ++done) {
        Bytes r(16);
        for (auto& b : r) b = static_cast<std::uint8_t>(rng());
        std::string id = FormatKeyId(KeyIdFromRandom(r));
        key.set_key_id(id);
        version.set_key_id(id);
        Status s = (*tx)->InsertKey(key);
        if (s.ok()) s = (*tx)->InsertKeyVersion(version);
        if (!s.ok()) Die(s, "bulk insert");
      }
      Status c = (*tx)->Commit();
      if (!c.ok()) Die(c, "commit");
    }
    std::printf("bulk-inserted %zu more keys in %.1f s\n", bulk, Seconds(start));
    start = Steady::now();
    for (int i = 0; i < 1000; ++i) {
      DecryptRequest d;
      d.ciphertext_blob = blobs[static_cast<std::size_t>(i) % blobs.size()];
      if (!svc.Decrypt(d)) return 1;
    }
    std::printf("at %zu keys: store %.1f MiB (db+wal), VmRSS %s; Decrypt of 1000 earlier blobs (cold handles) %.0f ops/s\n",
                keys + bulk, static_cast<double>(StoreBytes(options.path)) / (1024.0 * 1024.0),
                ProcStatus("VmRSS:").c_str(), 1000.0 / Seconds(start));
  }
  service->reset();
  db->reset();
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(options.path + suffix, ec);
  std::filesystem::remove_all(dir, ec);
  return 0;
}
