// The audit log writer. See audit_log.h for the contract and the file format.
#include "firmware/audit/audit_log.h"

#include <fcntl.h>
#include <mbedtls/sha256.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <thread>
#include <utility>

#include "base/encoding.h"
#include "firmware/audit/audit_verify.h"

namespace kms::firmware::audit {
namespace {

namespace json = boost::json;

constexpr std::string_view kFilePrefix = "audit-";
constexpr std::string_view kFileSuffix = ".log";
constexpr std::size_t kSeqDigits = 20;  // UINT64_MAX has 20 digits
// Room for the writer's own fields in front of an event's fragment.
constexpr std::size_t kEventHeaderBytes = 128;

std::string Errno(int error) { return std::strerror(error); }

Status IoError(const std::string& path, int error) {
  return UnavailableError("audit log: " + path + ": " + Errno(error));
}

void AppendBe64(Bytes& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out.push_back(static_cast<std::uint8_t>(v >> shift));
  }
}

// pwrite until done; 0 or the errno. A short write (EFBIG at RLIMIT_FSIZE, ENOSPC mid-batch) is
// retried once more by the loop, which then gets the error itself.
int WriteAll(int fd, std::string_view data, std::uint64_t offset) {
  while (!data.empty()) {
    const ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;
    data.remove_prefix(static_cast<std::size_t>(n));
    offset += static_cast<std::uint64_t>(n);
  }
  return 0;
}

// pread exactly `size` bytes at `offset`; 0 or the errno (EIO for an early end of file).
int ReadAt(int fd, std::string& out, std::uint64_t offset, std::size_t size) {
  out.resize(size);
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n =
        ::pread(fd, out.data() + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;
    done += static_cast<std::size_t>(n);
  }
  return 0;
}

StatusOr<std::string> ReadFileAt(const std::string& path, int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return IoError(path, errno);
  std::string data;
  if (const int e = ReadAt(fd, data, 0, static_cast<std::size_t>(st.st_size)); e != 0) {
    return IoError(path, e);
  }
  return data;
}

StatusOr<std::string> ReadFileNamed(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return IoError(path, errno);
  auto data = ReadFileAt(path, fd);
  ::close(fd);
  return data;
}

// mkdir -p, each created level 0700 (the log is readable by the appliance's user only).
Status MakeFolder(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    return S_ISDIR(st.st_mode) ? Status::Ok() : IoError(path, ENOTDIR);
  }
  if (errno != ENOENT) return IoError(path, errno);
  const auto slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) {
    KMS_RETURN_IF_ERROR(MakeFolder(path.substr(0, slash)));
  }
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) return IoError(path, errno);
  return Status::Ok();
}

std::string BaseName(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The event's own fields, serialized by Boost.JSON (correct escaping), without the opening brace:
// the writer puts its fields in front under the I/O role, once seq and prev are known. Building
// this outside the role keeps the serialised section short.
std::string EventFragment(const AuditEvent& e, std::int64_t time_ms) {
  json::object o;
  o.reserve(14);
  o.emplace("time_ms", time_ms);
  o.emplace("request_id", PrintableUtf8(e.request_id));
  o.emplace("door", PrintableUtf8(e.door));
  o.emplace("operation", PrintableUtf8(e.operation));
  o.emplace("principal", PrintableUtf8(e.principal));
  o.emplace("credential_id", PrintableUtf8(e.credential_id));
  o.emplace("source_address", PrintableUtf8(e.source_address));
  o.emplace("key_arn", PrintableUtf8(e.key_arn));
  o.emplace("outcome", PrintableUtf8(e.outcome));
  o.emplace("error_message", PrintableUtf8(e.error_message));
  o.emplace("http_status", e.http_status);
  json::object context;
  for (const auto& [k, v] : e.encryption_context) {
    context.emplace(PrintableUtf8(k), PrintableUtf8(v));
  }
  o.emplace("encryption_context", std::move(context));
  o.emplace("grant_id", PrintableUtf8(e.grant_id));
  o.emplace("decision", PrintableUtf8(e.decision));
  std::string text = json::serialize(o);
  text.erase(0, 1);  // '{'
  return text;
}

// Exactly what json::serialize would write for the whole object (the verifier re-serialises and
// compares): no spaces, integers in decimal, a hex string that needs no escaping.
std::string EventLine(std::uint64_t seq, std::string_view prev_hex, std::string_view fragment) {
  std::string line;
  line.reserve(kEventHeaderBytes + fragment.size());
  line += R"({"v":1,"type":"event","seq":)";
  line += std::to_string(seq);
  line += R"(,"prev":")";
  line += prev_hex;
  line += "\",";
  line += fragment;
  return line;
}

}  // namespace

// ---- format helpers -----------------------------------------------------------------------------

std::array<std::uint8_t, 32> AuditLineHash(std::string_view line) {
  std::array<std::uint8_t, 32> digest{};
  (void)mbedtls_sha256_ret(reinterpret_cast<const unsigned char*>(line.data()), line.size(),
                           digest.data(), 0);
  return digest;
}

std::array<std::uint8_t, 32> CheckpointDigest(std::uint64_t seq, ByteView head,
                                              std::uint64_t records, std::int64_t time_ms) {
  Bytes message(kCheckpointDomain.begin(), kCheckpointDomain.end());
  message.push_back(0);  // the label ends here, whatever follows
  AppendBe64(message, seq);
  message.insert(message.end(), head.begin(), head.end());
  AppendBe64(message, records);
  AppendBe64(message, static_cast<std::uint64_t>(time_ms));
  std::array<std::uint8_t, 32> digest{};
  (void)mbedtls_sha256_ret(message.data(), message.size(), digest.data(), 0);
  return digest;
}

std::string AuditFileName(std::uint64_t first_seq) {
  char digits[kSeqDigits + 1];
  std::snprintf(digits, sizeof digits, "%020llu", static_cast<unsigned long long>(first_seq));
  return std::string(kFilePrefix) + digits + std::string(kFileSuffix);
}

std::optional<std::uint64_t> ParseAuditFileName(std::string_view name) {
  if (name.size() != kFilePrefix.size() + kSeqDigits + kFileSuffix.size() ||
      !name.starts_with(kFilePrefix) || !name.ends_with(kFileSuffix)) {
    return std::nullopt;
  }
  const std::string_view digits = name.substr(kFilePrefix.size(), kSeqDigits);
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  std::uint64_t seq = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), seq);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return seq;
}

// ---- AuditLog ----------------------------------------------------------------------------------

AuditLog::AuditLog(AuditLogOptions options, AuditSigner& signer, int folder_fd)
    : options_(std::move(options)),
      signer_(signer),
      key_id_(HexEncode(AuditLineHash(AsStringView(signer.public_key_der())))),
      pending_(std::make_shared<Batch>()),
      folder_fd_(folder_fd) {}

AuditLog::~AuditLog() {
  (void)Close();
  if (folder_fd_ >= 0) ::close(folder_fd_);
}

StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(AuditLogOptions options, AuditSigner& signer) {
  if (options.folder.empty()) return InvalidArgumentError("audit log: no folder");
  if (options.checkpoint_every == 0) {
    return InvalidArgumentError("audit log: checkpoint_every must be at least 1");
  }
  if (options.max_file_bytes == 0) {
    return InvalidArgumentError("audit log: max_file_bytes must be at least 1");
  }
  if (options.checkpoint_interval.count() <= 0) {
    return InvalidArgumentError("audit log: checkpoint_interval must be positive");
  }
  if (signer.public_key_der().empty()) {
    return InvalidArgumentError("audit log: the signer has no public key");
  }
  while (options.folder.size() > 1 && options.folder.ends_with('/')) options.folder.pop_back();
  KMS_RETURN_IF_ERROR(MakeFolder(options.folder));
  const int folder_fd = ::open(options.folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (folder_fd < 0) return IoError(options.folder, errno);
  // Two writers on one folder would fork the chain.
  if (::flock(folder_fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    ::close(folder_fd);
    if (error == EWOULDBLOCK) {
      return FailedPreconditionError("audit log: " + options.folder +
                                     " is in use by another writer");
    }
    return IoError(options.folder, error);
  }
  const std::string folder = options.folder;
  std::unique_ptr<AuditLog> log(new AuditLog(std::move(options), signer, folder_fd));
  auto files = ListAuditFiles(folder);
  log->chain_.last_checkpoint_ms = log->Now();
  const Status opened = !files.has_value() ? files.error()
                        : files->empty()   ? log->StartFile(1)
                                           : log->OpenExisting(*files);
  if (!opened.ok()) {
    log->Abandon();
    return opened;
  }
  return log;
}

Status AuditLog::OpenExisting(const std::vector<std::string>& files) {
  const std::string& newest = files.back();
  const int fd = ::open(newest.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return IoError(newest, errno);
  fd_ = fd;
  io_path_ = newest;
  {
    std::lock_guard lock(mu_);
    path_ = newest;
  }
  KMS_ASSIGN_OR_RETURN(std::string content, ReadFileAt(newest, fd));

  // A line without its '\n' was being written when the process died; it was never acknowledged.
  std::uint64_t torn = 0;
  if (!content.empty() && content.back() != '\n') {
    const auto last_nl = content.rfind('\n');
    const std::size_t keep = last_nl == std::string::npos ? 0 : last_nl + 1;
    torn = content.size() - keep;
    if (::ftruncate(fd, static_cast<off_t>(keep)) != 0 || ::fdatasync(fd) != 0) {
      return IoError(newest, errno);
    }
    content.resize(keep);
  }
  offset_ = content.size();

  // The chain head is the last line; the record count comes from the last checkpoint plus the
  // events after it, so scan back to it (normally within the newest file, or the previous file's
  // last line: rotation ends every file with a checkpoint).
  bool have_last = false;
  bool have_checkpoint = false;
  std::uint64_t events_after = 0;
  std::uint64_t lines_after = 0;
  for (std::size_t i = files.size(); i-- > 0 && !have_checkpoint;) {
    std::string older;
    if (i + 1 != files.size()) {
      KMS_ASSIGN_OR_RETURN(older, ReadFileNamed(files[i]));
    }
    const std::string_view text = i + 1 == files.size() ? std::string_view(content) : older;
    std::size_t end = text.size();  // one past the '\n' of the line being looked at
    if (end > 0 && text[end - 1] != '\n') {
      return DataLossError("audit log: " + files[i] + " ends in an incomplete line");
    }
    while (end > 0 && !have_checkpoint) {
      const std::size_t start_nl = end >= 2 ? text.rfind('\n', end - 2) : std::string_view::npos;
      const std::size_t start = start_nl == std::string_view::npos ? 0 : start_nl + 1;
      const std::string_view line = text.substr(start, end - 1 - start);
      end = start;
      auto parsed = ParseAuditLine(line);
      if (!parsed.has_value()) {
        return DataLossError("audit log: " + files[i] + ": a record near its end does not parse (" +
                             parsed.error().message() +
                             "); check the log with kmsctl audit verify before writing to it");
      }
      if (!have_last) {
        have_last = true;
        chain_.seq = parsed->seq;
        chain_.head = AuditLineHash(line);
        chain_.last_is_checkpoint = parsed->type == "checkpoint";
      }
      if (parsed->type == "checkpoint") {
        have_checkpoint = true;
        chain_.records = parsed->records + events_after;
        chain_.since_checkpoint = lines_after;
      } else {
        ++lines_after;
        if (parsed->type == "event") ++events_after;
      }
    }
  }
  if (!have_checkpoint) {
    chain_.records = events_after;
    chain_.since_checkpoint = lines_after;
  }
  // An empty newest file (made by a rotation just before a crash) must be named for what follows.
  if (offset_ == 0) {
    const auto named = ParseAuditFileName(BaseName(newest));
    if (!named.has_value() || *named != chain_.seq + 1) {
      return DataLossError("audit log: " + newest + " is empty but not named for seq " +
                           std::to_string(chain_.seq + 1));
    }
  }
  last_seq_.store(chain_.seq);

  if (torn > 0) {
    Chain next = chain_;
    std::string buffer;
    json::object o;
    o.emplace("v", kAuditFormatVersion);
    o.emplace("type", "recovered");
    o.emplace("seq", next.seq + 1);
    o.emplace("prev", HexEncode(next.head));
    o.emplace("time_ms", Now());
    o.emplace("truncated_bytes", torn);
    AddLine(next, buffer, json::serialize(o), LineKind::kRecovered);
    KMS_RETURN_IF_ERROR(Commit(next, buffer));
  }
  // A previous run that died (or whose signer failed) left records unsigned: sign them now.
  if (chain_.since_checkpoint > 0) {
    Chain next = chain_;
    std::string buffer;
    KMS_RETURN_IF_ERROR(AddCheckpoint(next, buffer));
    KMS_RETURN_IF_ERROR(Commit(next, buffer));
  }
  return Status::Ok();
}

std::int64_t AuditLog::Now() const {
  if (options_.now_ms) return options_.now_ms();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void AuditLog::AcquireIo(std::unique_lock<std::mutex>& lock) {
  cv_.wait(lock, [this] { return !io_busy_; });
  io_busy_ = true;
}

void AuditLog::ReleaseIo(std::unique_lock<std::mutex>& lock) {
  (void)lock;
  io_busy_ = false;
  cv_.notify_all();
}

Status AuditLog::Append(const AuditEvent& event) {
  std::string fragment = EventFragment(event, event.time_ms != 0 ? event.time_ms : Now());
  if (fragment.size() + kEventHeaderBytes > kMaxAuditLineBytes) {
    return InvalidArgumentError("audit log: a record of " + std::to_string(fragment.size()) +
                                " bytes exceeds the " + std::to_string(kMaxAuditLineBytes) +
                                "-byte limit");
  }
  std::unique_lock lock(mu_);
  if (closed_) return FailedPreconditionError("audit log: closed");
  const std::shared_ptr<Batch> mine = pending_;
  mine->fragments.push_back(std::move(fragment));
  // Group commit: whoever finds the I/O role free writes everything queued so far, including
  // records that arrive while the previous batch is being synced.
  while (!mine->done) {
    if (io_busy_) {
      cv_.wait(lock);
      continue;
    }
    io_busy_ = true;
    if (pending_->fragments.size() < last_batch_size_) {
      // The appenders of the last batch are coming back with their next records: without this
      // pause the first of them would sync alone and the rest together (batches of 1, n-1, ...).
      lock.unlock();
      std::this_thread::yield();
      lock.lock();
    }
    const std::shared_ptr<Batch> batch = std::move(pending_);
    pending_ = std::make_shared<Batch>();
    last_batch_size_ = batch->fragments.size();
    lock.unlock();
    Status status = WriteEvents(batch->fragments);
    lock.lock();
    batch->status = std::move(status);
    batch->done = true;
    ReleaseIo(lock);
  }
  return mine->status;
}

Status AuditLog::Tick() {
  std::unique_lock lock(mu_);
  if (closed_) return FailedPreconditionError("audit log: closed");
  AcquireIo(lock);
  lock.unlock();
  Status status = TickIo();
  lock.lock();
  ReleaseIo(lock);
  return status;
}

void AuditLog::Abandon() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (folder_fd_ >= 0) ::close(folder_fd_);
  folder_fd_ = -1;
  std::lock_guard lock(mu_);
  closed_ = true;
}

Status AuditLog::Close() {
  std::unique_lock lock(mu_);
  if (closed_) {
    cv_.wait(lock, [this] { return !io_busy_; });
    return Status::Ok();
  }
  closed_ = true;
  // Records queued before the close are written first.
  cv_.wait(lock, [this] { return !io_busy_ && pending_->fragments.empty(); });
  io_busy_ = true;
  lock.unlock();
  Status status = CloseIo();
  lock.lock();
  ReleaseIo(lock);
  return status;
}

Bytes AuditLog::public_key_der() const { return signer_.public_key_der(); }

AuditLogStats AuditLog::stats() const {
  return AuditLogStats{stat_lines_.load(), stat_batches_.load(), stat_syncs_.load(),
                       stat_failures_.load()};
}

std::string AuditLog::current_file() const {
  std::lock_guard lock(mu_);
  return path_;
}

// ---- the I/O role -------------------------------------------------------------------------------

Status AuditLog::WriteEvents(const std::vector<std::string>& fragments) {
  KMS_RETURN_IF_ERROR(PrepareFile());
  Chain next = chain_;
  std::string buffer;
  bool sign_failed = false;  // one signing attempt per batch while the signer fails
  for (const std::string& fragment : fragments) {
    AddLine(next, buffer, EventLine(next.seq + 1, HexEncode(next.head), fragment),
            LineKind::kEvent);
    if (!sign_failed && next.since_checkpoint >= options_.checkpoint_every) {
      sign_failed = !AddCheckpoint(next, buffer).ok();
    }
  }
  if (!sign_failed && next.since_checkpoint > 0 &&
      Now() - next.last_checkpoint_ms >= options_.checkpoint_interval.count()) {
    (void)AddCheckpoint(next, buffer);
  }
  KMS_RETURN_IF_ERROR(Commit(next, buffer));
  stat_batches_.fetch_add(1);
  return Status::Ok();
}

Status AuditLog::TickIo() {
  // While unhealthy, a checkpoint is the probe that finds out whether the disk takes writes again
  // (a door refusing work would otherwise never Append, and health would never come back).
  const bool probe = !healthy_.load() || broken_ || fd_ < 0;
  KMS_RETURN_IF_ERROR(PrepareFile());
  const bool due = chain_.since_checkpoint > 0 &&
                   Now() - chain_.last_checkpoint_ms >= options_.checkpoint_interval.count();
  if (!due && !probe) return Status::Ok();
  Chain next = chain_;
  std::string buffer;
  KMS_RETURN_IF_ERROR(AddCheckpoint(next, buffer));
  return Commit(next, buffer);
}

Status AuditLog::CloseIo() {
  Status status;
  if (broken_) status = Recover();
  if (status.ok() && fd_ >= 0 && chain_.since_checkpoint > 0) {
    Chain next = chain_;
    std::string buffer;
    status = AddCheckpoint(next, buffer);
    if (status.ok()) status = Commit(next, buffer);
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (folder_fd_ >= 0) ::close(folder_fd_);  // releases the flock: the folder may be re-opened
  folder_fd_ = -1;
  return status;
}

Status AuditLog::PrepareFile() {
  if (broken_) KMS_RETURN_IF_ERROR(Recover());
  if (fd_ < 0) return StartFile(chain_.seq + 1);
  if (offset_ >= options_.max_file_bytes) return Rotate();
  return Status::Ok();
}

// Back to the last state known durable: the failed batch's bytes cut off, synced, and the file's
// last line still the chain head. Anything else means the file changed under the writer, and it
// keeps failing (broken_ stays set) until the log is re-opened.
Status AuditLog::Recover() {
  if (fd_ >= 0) {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return IoError(io_path_, errno);
    // Fail already cut the batch off; redo it if that did not happen or was not synced (a special
    // file such as /dev/full has no size to cut and no data to sync).
    if (static_cast<std::uint64_t>(st.st_size) != offset_ ||
        (!truncate_synced_ && S_ISREG(st.st_mode))) {
      if (::ftruncate(fd_, static_cast<off_t>(offset_)) != 0) return IoError(io_path_, errno);
      if (::fdatasync(fd_) != 0) return IoError(io_path_, errno);
      if (::fstat(fd_, &st) != 0) return IoError(io_path_, errno);
    }
    bool intact = static_cast<std::uint64_t>(st.st_size) == offset_;
    if (intact && offset_ > 0) {
      const std::size_t n =
          static_cast<std::size_t>(std::min<std::uint64_t>(offset_, kMaxAuditLineBytes + 1));
      std::string tail;
      if (const int e = ReadAt(fd_, tail, offset_ - n, n); e != 0) return IoError(io_path_, e);
      const auto nl = tail.size() >= 2 ? tail.rfind('\n', tail.size() - 2) : std::string::npos;
      const std::size_t start = nl == std::string::npos ? 0 : nl + 1;
      const std::string_view line = std::string_view(tail).substr(start, tail.size() - 1 - start);
      intact = tail.back() == '\n' && AuditLineHash(line) == chain_.head;
    }
    if (!intact) {
      return UnavailableError("audit log: " + io_path_ +
                              ": the file changed under the writer (its last record is not the "
                              "chain head); re-open the log");
    }
  }
  broken_ = false;
  return Status::Ok();
}

Status AuditLog::Rotate() {
  if (!chain_.last_is_checkpoint && chain_.seq > 0) {
    Chain next = chain_;
    std::string buffer;
    // A signer failure does not stop the rotation: the next checkpoint covers these records.
    if (AddCheckpoint(next, buffer).ok()) KMS_RETURN_IF_ERROR(Commit(next, buffer));
  }
  ::close(fd_);
  fd_ = -1;
  return StartFile(chain_.seq + 1);
}

Status AuditLog::StartFile(std::uint64_t first_seq) {
  const std::string path = options_.folder + "/" + AuditFileName(first_seq);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 && errno == EEXIST) {
    // Made by an earlier attempt whose directory sync failed: reuse it if it is still empty.
    fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    struct stat st {};
    if (fd >= 0 && (::fstat(fd, &st) != 0 || st.st_size != 0 || !S_ISREG(st.st_mode))) {
      ::close(fd);
      fd = -1;
      errno = EEXIST;
    }
  }
  if (fd < 0) return Fail(path, errno);
  // The new directory entry must be durable before records in the file are acknowledged.
  if (::fsync(folder_fd_) != 0) {
    const int error = errno;
    ::close(fd);
    return Fail(options_.folder, error);
  }
  stat_syncs_.fetch_add(1);
  fd_ = fd;
  offset_ = 0;
  io_path_ = path;
  std::lock_guard lock(mu_);
  path_ = path;
  return Status::Ok();
}

void AuditLog::AddLine(Chain& next, std::string& buffer, std::string line, LineKind kind) {
  next.seq += 1;
  next.head = AuditLineHash(line);
  next.last_is_checkpoint = kind == LineKind::kCheckpoint;
  if (kind == LineKind::kCheckpoint) {
    next.since_checkpoint = 0;
  } else {
    next.since_checkpoint += 1;
    if (kind == LineKind::kEvent) next.records += 1;
  }
  buffer += line;
  buffer += '\n';
}

Status AuditLog::AddCheckpoint(Chain& next, std::string& buffer) {
  const std::uint64_t seq = next.seq + 1;
  const std::int64_t now = Now();
  const auto digest = CheckpointDigest(seq, next.head, next.records, now);
  KMS_ASSIGN_OR_RETURN(Bytes sig, signer_.SignDigest(digest));
  const std::string head = HexEncode(next.head);
  json::object o;
  o.reserve(9);
  o.emplace("v", kAuditFormatVersion);
  o.emplace("type", "checkpoint");
  o.emplace("seq", seq);
  o.emplace("prev", head);
  o.emplace("head", head);
  o.emplace("records", next.records);
  o.emplace("time_ms", now);
  o.emplace("key", key_id_);
  o.emplace("sig", Base64Encode(sig));
  AddLine(next, buffer, json::serialize(o), LineKind::kCheckpoint);
  next.last_checkpoint_ms = now;
  return Status::Ok();
}

Status AuditLog::Commit(const Chain& next, const std::string& buffer) {
  if (fd_ < 0) return UnavailableError("audit log: no file open");
  if (const int e = WriteAll(fd_, buffer, offset_); e != 0) return Fail(io_path_, e);
  if (::fdatasync(fd_) != 0) return Fail(io_path_, errno);
  offset_ += buffer.size();
  chain_ = next;
  last_seq_.store(chain_.seq);
  healthy_.store(true);
  stat_syncs_.fetch_add(1);
  stat_lines_.fetch_add(static_cast<std::uint64_t>(std::count(buffer.begin(), buffer.end(), '\n')));
  return Status::Ok();
}

Status AuditLog::Fail(std::string_view what, int error) {
  stat_failures_.fetch_add(1);
  healthy_.store(false);
  if (fd_ >= 0) {
    broken_ = true;
    // Take back whatever part of the batch reached the file; Recover re-checks before the next
    // write, since this may fail too.
    truncate_synced_ = ::ftruncate(fd_, static_cast<off_t>(offset_)) == 0 && ::fdatasync(fd_) == 0;
  }
  return UnavailableError("audit log: " + std::string(what) + ": " + Errno(error));
}

}  // namespace kms::firmware::audit
