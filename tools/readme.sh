#!/usr/bin/env bash
# Renders README.Rmd to README.md with memkit installed from this checkout,
# so every output the README shows is what this code prints.
#   bash tools/readme.sh           # render
#   bash tools/readme.sh --check   # fail when README.md is stale (CI)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$MK_ROOT"
if [ "${1:-}" = "--check" ]; then
  exec "$MK_R" --vanilla --slave -f tools/readme.R --args --check
fi
lib="$(mk_install)"
R_LIBS="$lib${R_LIBS:+:$R_LIBS}" MK_ROOT="$MK_ROOT" "$MK_R" --vanilla --slave -f tools/readme.R
