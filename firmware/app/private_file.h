// WritePrivateFile: a file that holds a credential (kmsd --dev's dev.env: the dev administrator's
// secret access key and Vault token), written so that no other user can read it at any moment.
//
// The content goes to `<path>.tmp`, created by open(2) with O_CREAT|O_EXCL|O_NOFOLLOW and mode
// 0600 (so the umask can only remove bits from it, never add any), set to exactly 0600 with
// fchmod, written, fsynced and renamed over `path`; then the folder is fsynced. A stale `.tmp`
// from a crash is removed first (O_EXCL then refuses anything planted in its place, a symlink
// included). Every step's error is returned, naming the file and the step; on an error the
// temporary file is removed and `path` is left as it was.
//
// `after_create`, when set, is called with the temporary file's path right after it was created
// and before anything is written to it: tests check its mode at that moment.
//
// Thread-safety: plain function; two writers of the same path at once are not supported.
#ifndef KMS_FIRMWARE_APP_PRIVATE_FILE_H_
#define KMS_FIRMWARE_APP_PRIVATE_FILE_H_

#include <functional>
#include <string>
#include <string_view>

#include "base/status.h"

namespace kms::app {

Status WritePrivateFile(const std::string& path, std::string_view content,
                        const std::function<void(const std::string& created)>& after_create = {});

}  // namespace kms::app

#endif  // KMS_FIRMWARE_APP_PRIVATE_FILE_H_
