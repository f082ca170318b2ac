#include "tools/kms_client/env_file.h"

#include <cstdlib>
#include <fstream>

namespace kms::tools {

StatusOr<EnvSettings> EnvSettings::Load(const std::string& path) {
  EnvSettings s;
  if (path.empty()) return s;
  std::ifstream in(path);
  if (!in) return NotFoundError("cannot read env file " + path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line.starts_with("export ")) line = line.substr(7);
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string value = line.substr(eq + 1);
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
        value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    }
    s.file_[line.substr(0, eq)] = std::move(value);
  }
  return s;
}

std::string EnvSettings::Get(const std::string& name) const {
  if (auto it = file_.find(name); it != file_.end()) return it->second;
  const char* v = std::getenv(name.c_str());
  return v ? v : "";
}

}  // namespace kms::tools
