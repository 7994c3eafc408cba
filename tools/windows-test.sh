#!/usr/bin/env bash
# The Windows platform layers without R: cross-compiles src/fm_map_win.c
# (file mapping of fm_*), src/procmem_win.c (the sampler's readings) and
# src/gctrace_spool_win.c (where the GC trace reads R's reports) with
# tools/windows-test.c for 64-bit Windows and runs the program under wine.
# It checks creation and preallocation, write-through in "rw", copy-on-write
# in "r" never reaching the file, flush then a second process seeing the
# data, reopening with the size, growing and remapping, offsets past 4 GB (a
# sparse file), the refusal of short files, directories and pipes, and the
# working set and its peak, and the GC report spool read while a C runtime
# FILE appends to it, as R's file() connection does.
#
#   bash tools/windows-test.sh
#
# Needs mingw-w64 and wine64 (tools/deps.txt). Exit 0 when every check passes.
set -euo pipefail
cd "$(dirname "$0")/.."

cc=x86_64-w64-mingw32-gcc
wine=$(command -v wine64 || command -v wine || true)
[ -z "$wine" ] && [ -x /usr/lib/wine/wine64 ] && wine=/usr/lib/wine/wine64
if ! command -v "$cc" >/dev/null || [ -z "$wine" ]; then
  echo "windows-test: needs mingw-w64 and wine64 (bash tools/setup.sh --deps-only)"; exit 1
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
$cc -std=gnu11 -O2 -Wall -Wextra -Werror -Isrc -o "$out/windows-test.exe" \
  tools/windows-test.c src/fm_map_win.c src/procmem_win.c src/gctrace_spool_win.c -lpsapi -static

# A prefix of its own, kept between runs (creating one takes a while).
export WINEPREFIX=${MEMKIT_WINEPREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/memkit-wine}
export WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
mkdir -p "$WINEPREFIX"
"$wine" "$out/windows-test.exe" 2>"$out/wine.err" | tr -d '\r' | tee "$out/result.txt" || true
if ! grep -qE "windows-test: [0-9]+ checks, 0 failed" "$out/result.txt"; then
  tail -n 20 "$out/wine.err"
  echo "windows-test: FAILED"
  exit 1
fi
