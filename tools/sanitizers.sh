#!/usr/bin/env bash
# ASAN + UBSAN: builds memkit with the sanitizers and runs the tests under
# stock R with the sanitizer runtime preloaded. Fails on any test failure,
# any "runtime error:" (UBSAN) or any AddressSanitizer report.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
lib=$(mk_install "$MK_ROOT/tools/Makevars.asan") || { echo "sanitizers: FAILED (build)"; exit 1; }
log="$MK_WORK/sanitizers.log"
asan_rt=$(gcc -print-file-name=libasan.so)
ubsan_rt=$(gcc -print-file-name=libubsan.so)
# detect_leaks=0: R itself never frees some memory at exit.
ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allow_user_segv_handler=1" \
UBSAN_OPTIONS="print_stacktrace=1" \
LD_PRELOAD="$asan_rt $ubsan_rt" \
MK_ROOT="$MK_ROOT" R_LIBS="$lib" NOT_CRAN=true MEMKIT_SANITIZED=true \
  Rscript --vanilla -e '.libPaths(c(Sys.getenv("R_LIBS"), .libPaths())); source(file.path(Sys.getenv("MK_ROOT"), "tools/run-tests.R"))' >"$log" 2>&1
rc=$?
tail -n 5 "$log"
findings=$(grep -cE 'runtime error:|ERROR: AddressSanitizer|SUMMARY: (Address|UndefinedBehavior)Sanitizer' "$log")
if [ "$findings" -gt 0 ] || [ $rc -ne 0 ]; then
  grep -nE -A20 'runtime error:|ERROR: AddressSanitizer' "$log" | head -n 80
  # The failing tests, as testthat's summary reporter lists them.
  sed -n '/══ Failed/,/══ DONE/p' "$log" | head -n 120
  echo "sanitizers: FAILED ($findings sanitizer reports, exit $rc; log: $log)"
  exit 1
fi
echo "sanitizers: OK"
rm -rf "$lib" "$lib.install.log"
