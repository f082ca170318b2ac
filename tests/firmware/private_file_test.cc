// WritePrivateFile (firmware/app/private_file.h), the writer of kmsd --dev's dev.env: under the
// most permissive umask the file is 0600 from the moment it exists (checked through the function's
// own creation hook, before a byte is written), an older file readable by others is replaced by a
// private one, a symlink planted at the temporary name is not followed, and a failing step is
// returned with the file and the step named, leaving nothing behind.
#include "firmware/app/private_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace kms::app {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "kms-private-file-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~TempDir() { fs::remove_all(path); }
};

// Sets the umask for the scope, and puts the previous one back.
struct ScopedUmask {
  mode_t previous;
  explicit ScopedUmask(mode_t mask) : previous(::umask(mask)) {}
  ~ScopedUmask() { ::umask(previous); }
};

unsigned ModeOf(const std::string& path) {
  struct stat st {};
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return static_cast<unsigned>(st.st_mode & 07777);
}

std::string Read(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

constexpr std::string_view kContent = "AWS_SECRET_ACCESS_KEY=not-a-real-secret\n";

TEST_CASE("private file: 0600 from its creation under umask 000, before a byte is written",
          "[unit]") {
  TempDir dir;
  const std::string path = (dir.path / "dev.env").string();
  ScopedUmask permissive(0);
  std::string created;
  unsigned mode_at_creation = 0;
  std::uintmax_t size_at_creation = 1;
  const Status written = WritePrivateFile(path, kContent, [&](const std::string& p) {
    created = p;
    mode_at_creation = ModeOf(p);
    size_at_creation = fs::file_size(p);
  });
  REQUIRE(written.ok());
  CHECK(created == path + ".tmp");
  CHECK(size_at_creation == 0);  // the hook ran before the secret was written
  CHECK(mode_at_creation == 0600);
  CHECK(ModeOf(path) == 0600);
  CHECK(Read(path) == kContent);
  CHECK_FALSE(fs::exists(path + ".tmp"));
}

TEST_CASE("private file: an older file readable by others is replaced by a 0600 one", "[unit]") {
  TempDir dir;
  const std::string path = (dir.path / "dev.env").string();
  ScopedUmask permissive(0);
  std::ofstream(path) << "old\n";
  fs::permissions(path, fs::perms::all, fs::perm_options::replace);
  REQUIRE(ModeOf(path) == 0777);
  REQUIRE(WritePrivateFile(path, kContent).ok());
  CHECK(ModeOf(path) == 0600);
  CHECK(Read(path) == kContent);
}

TEST_CASE("private file: a symlink at the temporary name is not followed", "[unit]") {
  TempDir dir;
  const std::string path = (dir.path / "dev.env").string();
  const fs::path victim = dir.path / "victim";
  std::ofstream(victim) << "untouched\n";
  fs::permissions(victim, fs::perms::owner_all | fs::perms::group_read | fs::perms::others_read,
                  fs::perm_options::replace);
  fs::create_symlink(victim, path + ".tmp");
  REQUIRE(WritePrivateFile(path, kContent).ok());
  CHECK(Read(victim) == "untouched\n");
  CHECK(ModeOf(victim.string()) == 0744);
  CHECK(ModeOf(path) == 0600);
  CHECK(Read(path) == kContent);
  CHECK_FALSE(fs::exists(fs::symlink_status(path + ".tmp")));
}

TEST_CASE("private file: a failing step is named and leaves nothing behind", "[unit]") {
  TempDir dir;
  const std::string missing = (dir.path / "no-such-folder" / "dev.env").string();
  const Status no_folder = WritePrivateFile(missing, kContent);
  CHECK(no_folder.code() == StatusCode::kUnavailable);
  CHECK(no_folder.message() == missing + ".tmp: cannot create: No such file or directory");

  // The final name is a folder with something in it: rename(2) cannot replace it.
  const std::string path = (dir.path / "dev.env").string();
  fs::create_directory(path);
  std::ofstream(fs::path(path) / "keep") << "x";
  const Status over_folder = WritePrivateFile(path, kContent);
  CHECK(over_folder.code() == StatusCode::kUnavailable);
  CHECK(over_folder.message() == path + ": cannot rename " + path + ".tmp over it: Is a directory");
  CHECK_FALSE(fs::exists(path + ".tmp"));
  CHECK(fs::is_directory(path));
}

}  // namespace
}  // namespace kms::app
