#!/usr/bin/env bash
# Installs memkit as it was at COMMIT, renamed memkitbase, into bench/lib, so
# that a benchmark can time it paired with the current memkit in one process.
#
#   bash bench/baseline.sh HEAD~3
set -euo pipefail
cd "$(dirname "$0")/.."
commit=$(git rev-parse --short "${1:?usage: bash bench/baseline.sh COMMIT}")
lib="$PWD/bench/lib"
mkdir -p "$lib"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git archive "$commit" | tar -x -C "$tmp"
(
  cd "$tmp"
  sed -i 's/^Package: memkit$/Package: memkitbase/' DESCRIPTION
  sed -i 's/useDynLib(memkit,/useDynLib(memkitbase,/' NAMESPACE
  sed -i 's/R_init_memkit(/R_init_memkitbase(/' src/init.c
  # The namespace the C code and R code look themselves up by.
  sed -i 's/"memkit"/"memkitbase"/g' src/*.c R/*.R
  R CMD INSTALL --no-test-load --library="$lib" . >/dev/null
)
echo "$commit" > "$lib/memkitbase/COMMIT"
echo "memkitbase: memkit at $commit, in $lib"
