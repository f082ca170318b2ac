#!/usr/bin/env bash
# The test of tools/lint: on a copy of the tree it passes, and each kind of line it bans, planted in
# the copy, makes it fail and name the file. Run by CTest (label unit) with the source root as $1.
set -uo pipefail
root="$1"
copy="$(mktemp -d)"
trap 'rm -rf "$copy"' EXIT
# The tracked files and the untracked ones git does not ignore (what the lint reads in a checkout),
# without .git: the copy exercises the lint's plain-folder reading.
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$root" && git ls-files -z --cached --others --exclude-standard |
     tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | (cd "$copy" && tar -xf -)
else
  (cd "$root" && tar --exclude='./build*' --exclude=./.git -cf - .) | (cd "$copy" && tar -xf -)
fi
failures=0
fail() { echo "FAIL: $1"; failures=$((failures + 1)); }

if ! out=$("$copy/tools/lint" 2>&1); then fail "the tree as it is: $out"; fi

# expect_refused FILE LINE WHAT: plants LINE in FILE (new), expects exit 1 naming FILE and WHAT.
expect_refused() {
  local file="$1" line="$2" what="$3" out status
  mkdir -p "$(dirname "$copy/$file")"
  printf '%s\n' "$line" >"$copy/$file"
  out=$("$copy/tools/lint" 2>&1); status=$?
  if [ "$status" -ne 1 ]; then fail "$file: exit $status, expected 1"
  elif ! grep -q "$what" <<<"$out"; then fail "$file: no '$what' in: $out"
  elif ! grep -q "$file" <<<"$out"; then fail "$file: not named in: $out"
  fi
  rm -f "$copy/$file"
}
# Each banned line is assembled from two parts, so this file does not hold it whole.
up='#include "api/'
expect_refused hal/planted_up.cc "${up}http/server.h\"" "points up a layer"
expect_refused base/planted_up.h "#include \"firmware/key_service.h\"" "points up a layer"
expect_refused firmware/planted_up.cc "#include \"pkcs11/session.h\"" "points up a layer"
expect_refused firmware/planted_memcmp.cc "int f(){ return mem""cmp(a, b, 1); }" "memcmp is banned"
ref='shared/refe'
expect_refused docs/planted.md "see ../${ref}rence/aws-kms.md" "citation of notes"
expect_refused api/planted.cc "// as iss""ue 12 said" "issue number"

if ! out=$("$copy/tools/lint" 2>&1); then fail "the copy after removing the planted files: $out"; fi
[ "$failures" -eq 0 ] && echo "lint test: all cases passed"
exit $((failures > 0))
