#!/usr/bin/env bash
# Builds the pkgdown site locally (docs/, git-ignored; no deployment) with
# Debian's r-cran-pkgdown and memkit installed from this checkout. Exits
# non-zero when an exported function is missing from _pkgdown.yml's
# reference index or pkgdown warns.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$MK_ROOT"
"$MK_R" --vanilla --slave -e 'if (!requireNamespace("pkgdown", quietly = TRUE)) quit(status = 1L)' ||
  { echo "pkgdown is not installed: sudo apt-get install -y r-cran-pkgdown (tools/deps.txt)"; exit 1; }
lib="$(mk_install)"
R_LIBS="$lib${R_LIBS:+:$R_LIBS}" MK_ROOT="$MK_ROOT" "$MK_R" --vanilla --slave -f tools/pkgdown.R
