// Shell: runs a command line for a test (openssl, python3, the project's binaries) and returns its
// exit status and its stdout and stderr, interleaved. Test support only.
#ifndef KMS_TESTS_SUPPORT_SHELL_H_
#define KMS_TESTS_SUPPORT_SHELL_H_

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace kms::testing {

struct ShellRun {
  int exit_code = -1;  // -1: could not start, or killed by a signal
  std::string output;  // stdout and stderr
};

inline ShellRun Shell(const std::string& cmd) {
  ShellRun run;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return run;
  std::array<char, 512> buf{};
  while (std::fgets(buf.data(), static_cast<int>(buf.size()), p)) run.output += buf.data();
  const int status = ::pclose(p);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

}  // namespace kms::testing

#endif  // KMS_TESTS_SUPPORT_SHELL_H_
