#!/usr/bin/env bash
# The whole test suite: builds the tarball (with its vignettes) and runs
# R CMD check --as-cran on it, offline. Exits non-zero on any ERROR or WARNING
# (which includes any failing test). Prints the testthat counts at the end.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$MK_WORK" || exit 1
rm -rf memkit.Rcheck memkit_*.tar.gz

# MK_BUILD_ARGS / MK_CHECK_ARGS: extra flags (tools/r-devel.sh uses them).
"$MK_R" CMD build ${MK_BUILD_ARGS:-} "$MK_ROOT" || { echo "R CMD build failed"; exit 1; }
tarball=$(ls memkit_*.tar.gz)

export _R_CHECK_CRAN_INCOMING_REMOTE_=false
export _R_CHECK_FUTURE_FILE_TIMESTAMPS_=false
export _R_CHECK_SYSTEM_CLOCK_=false
# Run the snapshot tests too (testthat skips them when NOT_CRAN is unset).
export NOT_CRAN=${NOT_CRAN:-true}
export _R_CHECK_CRAN_INCOMING_=${_R_CHECK_CRAN_INCOMING_:-true}
# The manual needs a LaTeX installation the machine does not have; the Rd
# files are still checked (cran-comments.md).
"$MK_R" CMD check --as-cran --no-manual ${MK_CHECK_ARGS:-} "$tarball"
rc=$?

log=memkit.Rcheck/00check.log
status=$(grep -E '^Status:' "$log" 2>/dev/null || echo "Status: no log")
echo "check: $status"

# testthat's own counts, from the test output the check kept.
out=$(ls memkit.Rcheck/tests/testthat.Rout* 2>/dev/null | head -n 1)
summary=$(grep -E '^\[ FAIL [0-9]+ \| WARN [0-9]+ \| SKIP [0-9]+ \| PASS [0-9]+ \]' "$out" 2>/dev/null | tail -n 1)
echo "tests: ${summary:-no testthat summary found}"
echo "$summary" > "$MK_WORK/testthat-summary.txt"

if grep -qE '^Status:.*(ERROR|WARNING)' "$log" 2>/dev/null || [ $rc -ne 0 ]; then
  exit 1
fi
exit 0
