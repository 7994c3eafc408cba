#!/usr/bin/env bash
# The tests under valgrind (memcheck). Fails on any invalid read or write,
# use of uninitialised memory, or definite leak whose stack passes through
# memkit's code, and on any failing test. MEMKIT_TEST_FILTER narrows the
# test files (a regular expression, as in testthat::test_dir()).
set -uo pipefail
source "$(dirname "$0")/lib.sh"
lib=$(mk_install "$MK_ROOT/tools/Makevars.valgrind") || { echo "valgrind: FAILED (build)"; exit 1; }
log="$MK_WORK/valgrind.log"
out="$MK_WORK/valgrind.out"
rm -f "$log".*
MK_ROOT="$MK_ROOT" R_LIBS="$lib" NOT_CRAN=true MEMKIT_VALGRIND=true \
  R -d "valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite --track-origins=yes --num-callers=30 --log-file=$log.%p" \
    --vanilla --no-echo -e '.libPaths(c(Sys.getenv("R_LIBS"), .libPaths())); source(file.path(Sys.getenv("MK_ROOT"), "tools/run-tests.R"))' >"$out" 2>&1
rc=$?
tail -n 3 "$out"
# One log per process (tests start children). Keep the error blocks that
# mention memkit; R's own startup noise is not ours to fix.
findings=$(MK_ROOT="$MK_ROOT" Rscript --vanilla "$MK_ROOT/tools/valgrind-findings.R" "$log".*)
rm -rf "$lib" "$lib.install.log"
if [ -n "$findings" ] || [ $rc -ne 0 ]; then
  echo "$findings" | head -n 120
  sed -n '/══ Failed/,/══ DONE/p' "$out" | head -n 120
  echo "valgrind: FAILED (exit $rc; logs: $log.*)"
  exit 1
fi
echo "valgrind: OK"
