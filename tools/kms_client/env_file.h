// dev.env-style files (`KEY=VALUE` lines, `#` comments, optional `export ` and quotes), as kmsd dev
// mode writes <state>/dev.env, and the tools' lookup order: the file first, then the environment.
//
// Thread-safety: value type; `Get` reads the process environment (getenv).
#ifndef KMS_TOOLS_KMS_CLIENT_ENV_FILE_H_
#define KMS_TOOLS_KMS_CLIENT_ENV_FILE_H_

#include <map>
#include <string>

#include "base/status.h"

namespace kms::tools {

class EnvSettings {
 public:
  // `path` empty: the environment only. NotFound if the file cannot be read.
  static StatusOr<EnvSettings> Load(const std::string& path);
  // The file's value, else the environment's, else "".
  std::string Get(const std::string& name) const;

 private:
  std::map<std::string, std::string> file_;
};

}  // namespace kms::tools

#endif  // KMS_TOOLS_KMS_CLIENT_ENV_FILE_H_
