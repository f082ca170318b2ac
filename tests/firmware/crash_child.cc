// The crash-test child (tests/firmware/key_service_softhsm_test.cc, "crash test"): a kmsd-like process
// that opens the SoftHSM2 dev token and the SQLite store (reconciling what the previous, killed child
// left), then loops creating keys, encrypting under them, generating data keys and rotating, and appends
// to a report file one line per result the service RETURNED to it, each line in one write(2):
//
//   KEY <key-id>
//   CT <key-id> <hex ciphertext blob> <hex plaintext>
//   ROT <key-id> <version now current>
//
// The parent SIGKILLs it at a random moment and then checks every reported line against the store.
// Usage: firmware_crash_child <token-dir> <db-path> <report-path> <seed>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "base/encoding.h"
#include "firmware/clock.h"
#include "firmware/key_service.h"
#include "firmware/store/sqlite_store.h"
#include "hal/pkcs11_hsm.h"
#include "provisioning/dev_token.h"

namespace {

int Fail(const kms::Status& s, const char* what) {
  std::fprintf(stderr, "crash child: %s: %s\n", what, s.ToString().c_str());
  return 2;
}

bool Report(int fd, const std::string& line) {
  std::string l = line + "\n";
  return write(fd, l.data(), l.size()) == static_cast<ssize_t>(l.size());
}

}  // namespace

int main(int argc, char** argv) {
  using namespace kms;
  using namespace kms::firmware;
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s <token-dir> <db-path> <report-path> <seed>\n", argv[0]);
    return 2;
  }
  auto token = provisioning::OpenDevToken(argv[1]);
  if (!token) return Fail(token.error(), "open dev token");
  hal::Pkcs11HsmConfig config;
  config.module_path = token->module_path;
  config.token_label = token->token_label;
  config.token_serial = token->token_serial;
  config.user_pin = token->user_pin.Clone();
  config.domain_key_label = token->domain_key_label;
  auto hsm = hal::OpenPkcs11Hsm(std::move(config));
  if (!hsm) return Fail(hsm.error(), "open hsm");
  store::SqliteStoreOptions options;
  options.path = argv[2];
  auto db = store::OpenSqliteStore(options);
  if (!db) return Fail(db.error(), "open store");
  SystemClock clock;
  auto service = KeyService::Open(**hsm, **db, clock);
  if (!service) return Fail(service.error(), "open service");
  int fd = open(argv[3], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return 2;
  std::mt19937_64 rng(std::strtoull(argv[4], nullptr, 10));
  std::string last_key;
  for (std::uint64_t i = 0;; ++i) {
    const auto action = rng() % 4;
    if (action == 0 || last_key.empty()) {
      auto made = (*service)->CreateKey({});
      if (!made) return Fail(made.error(), "CreateKey");
      last_key = made->key_metadata.key_id;
      if (!Report(fd, "KEY " + last_key)) return 2;
    } else if (action == 1) {
      EncryptRequest r;
      r.key_id = last_key;
      std::string text = "plaintext-" + std::to_string(i);
      r.plaintext = SecretBytes::CopyFrom(AsBytes(text));
      auto ct = (*service)->Encrypt(r);
      if (!ct) return Fail(ct.error(), "Encrypt");
      if (!Report(fd, "CT " + last_key + " " + HexEncode(ct->ciphertext_blob) + " " +
                          HexEncode(AsBytes(text)))) {
        return 2;
      }
    } else if (action == 2) {
      GenerateDataKeyRequest r;
      r.key_id = last_key;
      r.number_of_bytes = 32;
      auto dk = (*service)->GenerateDataKey(r);
      if (!dk) return Fail(dk.error(), "GenerateDataKey");
      if (!Report(fd, "CT " + last_key + " " + HexEncode(dk->ciphertext_blob) + " " +
                          HexEncode(dk->plaintext.ExposeSecret()))) {
        return 2;
      }
    } else {
      auto rot = (*service)->RotateKeyOnDemand({last_key});
      if (!rot) {
        if (rot.error().reason() == Reason::kLimitExceeded) {
          last_key.clear();
          continue;
        }
        return Fail(rot.error(), "RotateKeyOnDemand");
      }
      auto d = (*service)->DescribeKey({last_key});
      if (!d) return Fail(d.error(), "DescribeKey");
      if (!Report(fd, "ROT " + last_key + " " + d->key_metadata.current_key_material_id)) return 2;
    }
  }
}
