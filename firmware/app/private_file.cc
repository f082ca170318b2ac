#include "firmware/app/private_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace kms::app {
namespace {

// `err` is errno, read by the caller right after the failing call.
Status Failed(const std::string& what, std::string_view step, int err = errno) {
  return UnavailableError(what + ": " + std::string(step) + ": " + std::strerror(err));
}

Status WriteAll(int fd, std::string_view content, const std::string& tmp) {
  while (!content.empty()) {
    const ssize_t n = ::write(fd, content.data(), content.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Failed(tmp, "cannot write");
    }
    content.remove_prefix(static_cast<std::size_t>(n));
  }
  return Status();
}

// Everything between creation and rename, on the open descriptor; closes it in every case.
Status FillAndClose(int fd, std::string_view content, const std::string& tmp,
                    const std::function<void(const std::string& created)>& after_create) {
  Status status;
  // The umask may have removed bits from 0600 (never added any): make it exactly 0600.
  if (::fchmod(fd, 0600) != 0) status = Failed(tmp, "cannot set mode 0600");
  if (status.ok() && after_create) after_create(tmp);
  if (status.ok()) status = WriteAll(fd, content, tmp);
  if (status.ok() && ::fsync(fd) != 0) status = Failed(tmp, "cannot fsync");
  if (::close(fd) != 0 && status.ok()) status = Failed(tmp, "cannot close");
  return status;
}

}  // namespace

Status WritePrivateFile(const std::string& path, std::string_view content,
                        const std::function<void(const std::string& created)>& after_create) {
  const std::string tmp = path + ".tmp";
  // A temporary file left by a crash (or anything else at that name) goes first: O_EXCL below
  // refuses to open an existing name, a symlink included, so nothing is ever followed.
  if (::unlink(tmp.c_str()) != 0 && errno != ENOENT) {
    return Failed(tmp, "cannot remove a stale temporary file");
  }
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return Failed(tmp, "cannot create");
  if (Status filled = FillAndClose(fd, content, tmp, after_create); !filled.ok()) {
    ::unlink(tmp.c_str());
    return filled;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    const Status renamed = Failed(path, "cannot rename " + tmp + " over it", err);
    ::unlink(tmp.c_str());
    return renamed;
  }
  // The rename is durable once the folder is.
  std::string folder = std::filesystem::path(path).parent_path().string();
  if (folder.empty()) folder = ".";
  const int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return Failed(folder, "cannot open the folder");
  Status synced;
  if (::fsync(dir) != 0) synced = Failed(folder, "cannot fsync the folder");
  ::close(dir);
  return synced;
}

}  // namespace kms::app
