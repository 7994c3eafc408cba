#!/usr/bin/env bash
# Strict build: every warning of -Wall -Wextra -pedantic is an error.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
if lib=$(mk_install "$MK_ROOT/tools/Makevars.strict"); then
  grep -E 'warning:' "$lib.install.log" && { echo "strict build: FAILED (warnings)"; exit 1; }
  echo "strict build: OK"
  rm -rf "$lib" "$lib.install.log"
else
  echo "strict build: FAILED"
  exit 1
fi
