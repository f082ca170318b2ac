// Crash safety of the SQLite store (the store side of the key service's crash safety,
// docs/key-service.md): a child process commits multi-record transactions in a loop and reports
// each one only after Commit returned; it is killed with SIGKILL at a random moment. Every reported
// transaction must be there whole, no transaction may be there in part, and the database must pass
// the integrity check.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "firmware/store/sqlite_store.h"
#include "tests/firmware/store/store_test_util.h"

namespace kms::firmware::store {
namespace {

using testing::BeginOrDie;
using testing::MakeAlias;
using testing::MakeKey;
using testing::MakeVersion;
using testing::OpenOrDie;
using testing::TempDir;

// The child: never returns. Each transaction makes a key the way CreateKey will (intent, key, version,
// alias) and, every third key, rotates the previous one (version 2) and drops the intent.
[[noreturn]] void WriterChild(const std::string& path, int report_fd, int first) {
  SqliteStoreOptions options;
  options.path = path;
  auto store = OpenSqliteStore(options);
  if (!store.has_value()) _exit(2);
  for (int i = first;; ++i) {
    const std::string id = "key-" + std::to_string(i);
    auto txn = (*store)->Begin();
    if (!txn.has_value()) _exit(3);
    IntentRecord intent;
    intent.set_intent_id("intent-" + id);
    intent.set_kind(records::INTENT_KIND_CREATE_KEY);
    intent.set_key_id(id);
    bool ok = (*txn)->InsertIntent(intent).ok() && (*txn)->InsertKey(MakeKey(id)).ok() &&
              (*txn)->InsertKeyVersion(MakeVersion(id, 1)).ok() &&
              (*txn)->InsertAlias(MakeAlias("alias/" + id, id)).ok() &&
              (*txn)->DeleteIntent(intent.intent_id()).ok();
    if (ok && i % 3 == 0 && i > first) {
      const std::string prev = "key-" + std::to_string(i - 1);
      KeyRecord k = MakeKey(prev);
      k.set_current_version(2);
      ok = (*txn)->InsertKeyVersion(MakeVersion(prev, 2)).ok() && (*txn)->UpdateKey(k).ok();
    }
    if (!ok || !(*txn)->Commit().ok()) _exit(4);
    // Reported only after Commit returned: from here on the key must survive any crash.
    const std::string line = std::to_string(i) + "\n";
    if (write(report_fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) _exit(5);
  }
}

TEST_CASE("crash: SIGKILL at random moments loses no committed transaction and tears none",
          "[unit][store]") {
  TempDir dir;
  const std::string path = dir.File("kms.db");
  std::mt19937 rng(std::random_device{}());
  std::set<int> reported;
  int next_first = 0;
  constexpr int kRuns = 6;
  for (int run = 0; run < kRuns; ++run) {
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      close(fds[0]);
      WriterChild(path, fds[1], next_first);
    }
    close(fds[1]);
    // Wait for the first committed key (so every run does work however slow the disk is), then let
    // the child run on for a random while and kill it in the middle of whatever it is doing.
    std::string text;
    char buf[4096];
    while (text.find('\n') == std::string::npos) {
      const ssize_t n = read(fds[0], buf, sizeof buf);
      if (n <= 0) break;  // the child died on its own: caught by the WIFSIGNALED check below
      text.append(buf, static_cast<size_t>(n));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 200));
    REQUIRE(kill(pid, SIGKILL) == 0);
    int wstatus = 0;
    REQUIRE(waitpid(pid, &wstatus, 0) == pid);
    // Killed by us, not exited on an error of its own.
    REQUIRE(WIFSIGNALED(wstatus));
    CHECK(WTERMSIG(wstatus) == SIGKILL);
    // Everything the child reported is in the pipe (the kernel keeps it after the writer dies).
    for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) {
      text.append(buf, static_cast<size_t>(n));
    }
    close(fds[0]);
    int max_seen = next_first - 1;
    for (std::size_t pos = 0; pos < text.size();) {
      const std::size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) break;  // a torn report line: the key may or may not be there
      const int i = std::stoi(text.substr(pos, nl - pos));
      reported.insert(i);
      max_seen = std::max(max_seen, i);
      pos = nl + 1;
    }
    // The next child starts after every key this one may have committed (reported or not).
    next_first = max_seen + 10;

    auto store = OpenOrDie(path);
    KMS_REQUIRE_OK(store->CheckIntegrity());
    auto txn = BeginOrDie(*store, TransactionMode::kReadOnly);
    for (int i : reported) {
      const std::string id = "key-" + std::to_string(i);
      INFO(id);
      auto key = txn->GetKey(id);
      KMS_REQUIRE_OK(key);
      KMS_REQUIRE_OK(txn->GetKeyVersion(id, 1));
      KMS_REQUIRE_OK(txn->GetAlias("alias/" + id));
    }
    // No torn transaction anywhere: every key has its alias and version 1, every rotated key (current
    // version 2) has version 2, and no intent is left (each was deleted in its own transaction).
    std::string after;
    for (;;) {
      auto page = txn->ListKeys(after, 1000);
      KMS_REQUIRE_OK(page);
      for (const auto& k : page->items) {
        INFO(k.key_id());
        KMS_REQUIRE_OK(txn->GetAlias("alias/" + k.key_id()));
        auto versions = txn->ListKeyVersions(k.key_id());
        KMS_REQUIRE_OK(versions);
        REQUIRE(versions->size() == k.current_version());
      }
      if (!page->truncated) break;
      after = page->next_marker;
    }
    CHECK(txn->ListIntents()->empty());
  }
  // The test means something only if the children got work done before dying.
  CHECK(reported.size() >= static_cast<std::size_t>(kRuns));
}

}  // namespace
}  // namespace kms::firmware::store
