#!/usr/bin/env bash
# Every check in one go, in the order CI runs them, then the slow ones.
#   bash tools/full-check.sh          # check, sanitizers, symbols, Windows under wine, R-devel
#   bash tools/full-check.sh --slow   # also strict build, valgrind, gctorture
set -uo pipefail
dir="$(dirname "$0")"
status=0
for s in check sanitizers symbols windows-test r-devel; do bash "$dir/$s.sh" || status=1; done
if [ "${1:-}" = "--slow" ]; then
  for s in strict valgrind gctorture; do bash "$dir/$s.sh" || status=1; done
fi
exit $status
