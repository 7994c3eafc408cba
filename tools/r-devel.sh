#!/usr/bin/env bash
# The checks under R-devel: installs memkit with an R-devel that is already
# on this machine, runs R CMD check --as-cran with the whole test suite
# (NOT_CRAN=true, heavy tests included) and the symbol scan against
# R-devel's lists. Nothing here builds R: R-devel is found at
# $MEMKIT_R_DEVEL (default /opt/R-devel); without it this says so and
# exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."
rdevel="${MEMKIT_R_DEVEL:-/opt/R-devel}"
if [ ! -x "$rdevel/bin/R" ]; then
  echo "r-devel: no R-devel at $rdevel (set MEMKIT_R_DEVEL); R-devel checks not run"
  exit 0
fi
export MK_R="$rdevel/bin/R"
export MK_WORK="$PWD/check/r-devel"
mkdir -p "$MK_WORK"
echo "r-devel: $("$MK_R" --version | head -n 1)"

# What the checks need, from the repositories the system R is set up with.
repos=$(Rscript --no-echo --vanilla -e 'cat(getOption("repos")[["CRAN"]])' 2>/dev/null)
MK_REPOS="$repos" "$rdevel/bin/Rscript" --vanilla -e '
  need <- c("cli", "testthat", "withr", "callr", "ps", "processx", "knitr", "rmarkdown", "lobstr")
  miss <- setdiff(need, rownames(installed.packages()))
  if (length(miss)) install.packages(miss, repos = Sys.getenv("MK_REPOS"), Ncpus = 2L)
  miss <- setdiff(need, rownames(installed.packages()))
  if (length(miss)) stop("cannot install: ", paste(miss, collapse = ", "))
' || { echo "r-devel: FAILED (packages for the checks)"; exit 1; }

status=0
# Suggested packages this R-devel may lack are skipped by the tests. The
# vignettes draw SVG figures, which need cairo: an R-devel built without it
# checks everything but the vignettes (R 4.2's check builds them).
vig=""
if ! "$rdevel/bin/Rscript" --vanilla -e 'quit(status = !capabilities("cairo"))'; then
  echo "r-devel: this R-devel has no cairo; vignettes not built here"
  vig=1
fi
MEMKIT_HEAVY_TESTS="${MEMKIT_HEAVY_TESTS:-true}" _R_CHECK_FORCE_SUGGESTS_=false \
  MK_BUILD_ARGS="${vig:+--no-build-vignettes}" MK_CHECK_ARGS="${vig:+--ignore-vignettes}" \
  bash tools/check.sh || status=1
bash tools/symbols.sh || status=1
if [ $status -eq 0 ]; then echo "r-devel: OK"; else echo "r-devel: FAILED"; fi
exit $status
