#include "provisioning/dev_token.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "pkcs11/module.h"
#include "pkcs11/pkcs11.h"
#include "provisioning/token_init.h"

namespace kms::provisioning {
namespace {

namespace fs = std::filesystem;

constexpr char kStateFile[] = "dev-token.state";
constexpr char kConfFile[] = "softhsm2.conf";
constexpr char kTokenObjectBackup[] = "token.object.backup";

// Writes `content` to a new file of mode 0600 (never readable by others, not even briefly).
Status WritePrivateFile(const fs::path& path, std::string_view content) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Status(StatusCode::kFailedPrecondition,
                  "cannot create " + path.string() + ": " + std::strerror(errno));
  }
  const char* p = content.data();
  std::size_t left = content.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      return InternalError("cannot write " + path.string());
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) return InternalError("cannot write " + path.string());
  return Status();
}

Status MakePrivateDir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return FailedPreconditionError("cannot create " + dir.string() + ": " + ec.message());
  if (::chmod(dir.c_str(), 0700) != 0) {
    return FailedPreconditionError("cannot restrict " + dir.string());
  }
  return Status();
}

StatusOr<std::string> ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot read " + path.string());
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

// The token.object of the (only) token under dir/tokens.
StatusOr<fs::path> TokenObjectPath(const fs::path& root) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root / "tokens", ec)) {
    if (entry.is_directory()) return entry.path() / "token.object";
  }
  return NotFoundError("no token directory under " + (root / "tokens").string());
}

// SoftHSM2 2.6 rewrites token.object in place (ftruncate, then write) on every successful C_Login
// (measured with strace: it stores the token flags each time). A process killed between the two
// leaves an empty file, and the token then silently disappears from the slot list. The file only
// changes on PIN or flag changes, which a dev token never makes after creation, so the copy taken
// at creation is put back, atomically (write aside, rename).
Status RepairTokenObject(const fs::path& root) {
  KMS_ASSIGN_OR_RETURN(fs::path object, TokenObjectPath(root));
  std::error_code ec;
  const bool damaged = !fs::exists(object, ec) || fs::file_size(object, ec) == 0;
  if (!damaged) return Status();
  KMS_ASSIGN_OR_RETURN(std::string backup, ReadFile(root / kTokenObjectBackup));
  if (backup.empty()) return DataLossError("dev token backup is empty");
  fs::path aside = object;
  aside += ".restore";
  fs::remove(aside, ec);
  KMS_RETURN_IF_ERROR(WritePrivateFile(aside, backup));
  fs::rename(aside, object, ec);
  if (ec) return InternalError("cannot restore " + object.string() + ": " + ec.message());
  return Status();
}

Status SetConfEnv(const std::string& conf_path) {
  // Process-global; SoftHSM2 reads it in C_Initialize (see the header).
  if (::setenv("SOFTHSM2_CONF", conf_path.c_str(), 1) != 0) {
    return InternalError("cannot set SOFTHSM2_CONF");
  }
  return Status();
}

}  // namespace

StatusOr<DevToken> CreateDevToken(const std::string& dir, const DevTokenOptions& options) {
  KMS_RETURN_IF_ERROR(CheckTokenLabel(options.token_label));  // before anything is written
  const fs::path root = fs::absolute(dir);
  KMS_RETURN_IF_ERROR(MakePrivateDir(root));
  if (fs::exists(root / kStateFile)) {
    return AlreadyExistsError("a dev token already exists in " + root.string());
  }
  const fs::path tokens = root / "tokens";
  KMS_RETURN_IF_ERROR(MakePrivateDir(tokens));
  const fs::path conf = root / kConfFile;
  std::ostringstream conf_text;
  conf_text
      << "# SoftHSM2 configuration of a KMS dev token (written by provisioning/dev_token.cc)\n"
      << "directories.tokendir = " << tokens.string() << "\n"
      << "objectstore.backend = file\n"
      << "log.level = ERROR\n"
      << "slots.removable = false\n"
      // A child must never reuse the parent's state (docs/softhsm2.md "Threads, processes and
      // fork").
      << "library.reset_on_fork = true\n";
  std::error_code ec;
  fs::remove(conf, ec);
  KMS_RETURN_IF_ERROR(WritePrivateFile(conf, conf_text.str()));
  KMS_RETURN_IF_ERROR(SetConfEnv(conf.string()));

  KMS_ASSIGN_OR_RETURN(std::unique_ptr<pkcs11::Module> module,
                       pkcs11::Module::Load(options.module_path));
  KMS_ASSIGN_OR_RETURN(CK_SLOT_ID free_slot, FindSlotForNewToken(*module, options.token_label));
  TokenInitRequest request;
  request.token_label = options.token_label;
  request.domain_key_label = options.domain_key_label;  // user PIN: random, from the module RNG
  KMS_ASSIGN_OR_RETURN(InitializedToken initialized,
                       InitTokenWithDomainKey(*module, free_slot, request));
  // Done with the module: every write to the token files has happened once it is finalised.
  module.reset();
  KMS_ASSIGN_OR_RETURN(fs::path token_object, TokenObjectPath(root));
  KMS_ASSIGN_OR_RETURN(std::string token_object_copy, ReadFile(token_object));
  KMS_RETURN_IF_ERROR(WritePrivateFile(root / kTokenObjectBackup, token_object_copy));

  DevToken token;
  token.dir = root.string();
  token.conf_path = conf.string();
  token.module_path = options.module_path;
  token.token_label = options.token_label;
  token.token_serial = initialized.serial;
  token.so_pin = std::move(initialized.so_pin);
  token.user_pin = std::move(initialized.user_pin);
  token.domain_key_label = options.domain_key_label;

  // DEV MODE ONLY (see the header): the user PIN in a 0600 file so dev restarts keep their keys.
  std::string state = "# KMS dev token state. DEV MODE ONLY: holds the user PIN in clear.\n";
  state += "module_path=" + token.module_path + "\n";
  state += "token_label=" + token.token_label + "\n";
  state += "token_serial=" + token.token_serial + "\n";
  state += "domain_key_label=" + token.domain_key_label + "\n";
  state += "user_pin=";
  state.append(AsStringView(token.user_pin.ExposeSecret()));
  state += "\n";
  Status written = WritePrivateFile(root / kStateFile, state);
  WipeString(state);
  KMS_RETURN_IF_ERROR(written);
  return token;
}

StatusOr<DevToken> OpenDevToken(const std::string& dir) {
  const fs::path root = fs::absolute(dir);
  const fs::path state_path = root / kStateFile;
  std::ifstream in(state_path);
  if (!in) return NotFoundError("no dev token in " + root.string());
  DevToken token;
  token.dir = root.string();
  token.conf_path = (root / kConfFile).string();
  std::string line;
  line.reserve(4096);  // no reallocation while reading, so no unwiped copy of the PIN line is freed
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = line.substr(0, eq);
    std::string value = line.substr(eq + 1);
    if (key == "module_path") token.module_path = value;
    if (key == "token_label") token.token_label = value;
    if (key == "token_serial") token.token_serial = value;
    if (key == "domain_key_label") token.domain_key_label = value;
    if (key == "user_pin") token.user_pin = SecretBytes::TakeFrom(value);
    WipeString(line);
  }
  if (token.module_path.empty() || token.token_label.empty() || token.user_pin.empty() ||
      token.domain_key_label.empty()) {
    return DataLossError("dev token state in " + root.string() + " is incomplete");
  }
  if (!fs::exists(token.conf_path)) return DataLossError("dev token config missing");
  KMS_RETURN_IF_ERROR(RepairTokenObject(root));
  KMS_RETURN_IF_ERROR(SetConfEnv(token.conf_path));
  return token;
}

StatusOr<DevToken> OpenOrCreateDevToken(const std::string& dir, const DevTokenOptions& options) {
  if (fs::exists(fs::path(dir) / kStateFile)) return OpenDevToken(dir);
  return CreateDevToken(dir, options);
}

}  // namespace kms::provisioning
