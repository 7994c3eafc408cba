#!/usr/bin/env bash
# Symbol scan of the built memkit.so: fails on any non-API R entry point or
# variable, and on calls an R package must never make. The library built by
# each R is checked against that R's own lists (tools:::nonAPI); the one
# built by R >= 4.6 also against tools/nonapi.txt, R-devel's lists
# (regenerate it with tools/nonapi.R). Set MK_R to scan another R's build.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
lib=$(mk_install) || { echo "symbols: FAILED (build)"; exit 1; }
so="$lib/memkit/libs/memkit.so"
undef=$(nm -D --undefined-only "$so" | awk '{print $2}' | sed 's/@.*//')
rversion=$("$MK_R" --no-echo --vanilla -e 'cat(as.character(getRversion()))')
nonapi=$("$MK_R" --no-echo --vanilla -e 'cat(tools:::nonAPI, sep = "\n")')
if "$MK_R" --no-echo --vanilla -e 'quit(status = getRversion() < "4.6.0")'; then
  nonapi=$(printf '%s\n%s\n' "$nonapi" "$(grep -vE '^\s*(#|$)' "$MK_ROOT/tools/nonapi.txt" | sed 's/ *#.*//')")
fi
bad_api=$(comm -12 <(echo "$undef" | sort -u) <(echo "$nonapi" | sort -u))
forbidden="abort exit _exit printf __printf_chk vprintf puts putchar rand srand random srandom"
bad_sys=$(comm -12 <(echo "$undef" | sort -u) <(echo "$forbidden" | tr ' ' '\n' | sort -u))
# Exported symbols: only R_init_memkit and R_unload_memkit (R looks both up) may be visible.
visible=$(nm -D --defined-only "$so" | awk '$2 ~ /^[TDB]$/ {print $3}' | grep -vE '^(R_init_memkit|R_unload_memkit|_init|_fini|__bss_start|_edata|_end)$')
rm -rf "$lib" "$lib.install.log"
status=0
if [ -n "$bad_api" ]; then echo "non-API R entry points used:"; echo "$bad_api" | sed 's/^/  /'; status=1; fi
if [ -n "$bad_sys" ]; then echo "forbidden calls:"; echo "$bad_sys" | sed 's/^/  /'; status=1; fi
if [ -n "$visible" ]; then echo "symbols visible beyond R_init_memkit and R_unload_memkit:"; echo "$visible" | sed 's/^/  /'; status=1; fi
if [ $status -eq 0 ]; then
  echo "symbols: OK (R $rversion: $(echo "$undef" | wc -l) undefined symbols scanned against $(echo "$nonapi" | sort -u | wc -l) non-API names)"
else
  echo "symbols: FAILED (R $rversion)"
fi
exit $status
