#!/usr/bin/env bash
# Set-up and demo: installs everything memkit and its checks need, installs
# memkit from source and runs the tour of its main jobs.
#
#   bash tools/setup.sh              # deps + install + demo
#   bash tools/setup.sh --deps-only  # only the dependencies (used by .ci/run)
#
# Idempotent: packages already installed are not fetched again.
set -euo pipefail
cd "$(dirname "$0")/.."

deps_only=false
[ "${1:-}" = "--deps-only" ] && deps_only=true

sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi

missing=()
while read -r pkg; do
  case "$pkg" in ''|'#'*) continue ;; esac
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done < tools/deps.txt

if [ "${#missing[@]}" -gt 0 ]; then
  echo "Installing: ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "All dependencies are installed."
fi

# Debian's testthat (3.1.6) writes condition snapshots in an older format
# than current testthat, the one R-devel needs: the same testthat for both.
Rscript -e 'if (packageVersion("testthat") < "3.3.0") install.packages("testthat", Ncpus = 2L)'
Rscript -e 'stopifnot(packageVersion("testthat") >= "3.3.0")' || { echo "testthat >= 3.3.0 is needed"; exit 1; }

$deps_only && exit 0

Rscript -e 'install.packages(".", repos = NULL, type = "source")'
# Plots go to a PDF in the session's temporary directory, not the checkout.
Rscript -e 'pdf(file.path(tempdir(), "tour.pdf")); demo("tour", package = "memkit", ask = FALSE, echo = TRUE)'
