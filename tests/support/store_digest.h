// Everything a SQLite metadata store holds, as one canonical text: every table (sorted by name),
// every row (each column as its type and bytes, rows sorted). Two dumps are equal exactly when the
// store's contents are, so a test can assert that a refused request changed nothing at all, and
// name the table that did change when one did.
//
// Reads through its own read-only connection, which sees every committed transaction (WAL).
// Thread-safety: a free function; the store may be in use by the code under test.
#ifndef KMS_TESTS_SUPPORT_STORE_DIGEST_H_
#define KMS_TESTS_SUPPORT_STORE_DIGEST_H_

#include <sqlite3.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

namespace kms::testing {

// table name -> its rows, canonical; {"<error>": [message]} when the file cannot be read.
inline std::map<std::string, std::vector<std::string>> StoreContents(const std::string& path) {
  std::map<std::string, std::vector<std::string>> out;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    out["<error>"] = {db ? sqlite3_errmsg(db) : "cannot open"};
    sqlite3_close(db);
    return out;
  }
  std::vector<std::string> tables;
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name", -1,
                     &st, nullptr);
  while (st && sqlite3_step(st) == SQLITE_ROW) {
    tables.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
  }
  sqlite3_finalize(st);
  for (const auto& table : tables) {
    std::vector<std::string>& rows = out[table];
    const std::string sql = "SELECT * FROM \"" + table + "\"";
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      rows.push_back(std::string("<error> ") + sqlite3_errmsg(db));
      continue;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
      std::string row;
      for (int c = 0; c < sqlite3_column_count(st); ++c) {
        const int type = sqlite3_column_type(st, c);
        row += std::to_string(type) + ":";
        if (type != SQLITE_NULL) {
          const auto* bytes = static_cast<const char*>(sqlite3_column_blob(st, c));
          const int n = sqlite3_column_bytes(st, c);
          row += std::to_string(n) + ":";
          if (bytes != nullptr) row.append(bytes, static_cast<std::size_t>(n));
        }
        row += "|";
      }
      rows.push_back(std::move(row));
    }
    sqlite3_finalize(st);
    std::sort(rows.begin(), rows.end());
  }
  sqlite3_close(db);
  return out;
}

// The names of the tables whose rows differ between two dumps.
inline std::vector<std::string> ChangedTables(
    const std::map<std::string, std::vector<std::string>>& before,
    const std::map<std::string, std::vector<std::string>>& after) {
  std::vector<std::string> changed;
  for (const auto& [table, rows] : after) {
    auto it = before.find(table);
    if (it == before.end() || it->second != rows) changed.push_back(table);
  }
  for (const auto& [table, rows] : before) {
    if (!after.contains(table)) changed.push_back(table);
  }
  return changed;
}

}  // namespace kms::testing

#endif  // KMS_TESTS_SUPPORT_STORE_DIGEST_H_
