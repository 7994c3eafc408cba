#!/usr/bin/env bash
# Runs every registered .Call entry point on small inputs under
# gctorture(TRUE) in a fresh R process. Fails if an entry point has no case
# in tools/gctorture/*.R, if a case gives a wrong result, or if R crashes.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
lib=$(mk_install "$MK_ROOT/tools/Makevars.valgrind") || { echo "gctorture: FAILED (build)"; exit 1; }
MK_ROOT="$MK_ROOT" R_LIBS="$lib" Rscript --vanilla "$MK_ROOT/tools/gctorture.R"
rc=$?
rm -rf "$lib" "$lib.install.log"
if [ $rc -ne 0 ]; then echo "gctorture: FAILED (exit $rc)"; exit 1; fi
echo "gctorture: OK"
