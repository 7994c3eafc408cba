# Shared shell helpers for the tools/ scripts. Source it; do not run it.
MK_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MK_WORK="${MK_WORK:-$MK_ROOT/check}"
# The R to build and check with: R on the PATH unless MK_R names another
# (tools/r-devel.sh sets it to R-devel's).
MK_R="${MK_R:-R}"
mkdir -p "$MK_WORK"

# Install memkit from the source tree into a private library with the given
# user Makevars (or none) and print the library's path.
mk_install() {
  local makevars="${1:-}" lib
  lib="$(mktemp -d "$MK_WORK/lib.XXXXXX")"
  if [ -n "$makevars" ]; then
    R_MAKEVARS_USER="$makevars" "$MK_R" CMD INSTALL --preclean --no-test-load \
      --library="$lib" "$MK_ROOT" >"$lib.install.log" 2>&1 || { cat "$lib.install.log" >&2; return 1; }
  else
    "$MK_R" CMD INSTALL --preclean --library="$lib" "$MK_ROOT" >"$lib.install.log" 2>&1 ||
      { cat "$lib.install.log" >&2; return 1; }
  fi
  # Leave the source tree clean for the next build.
  rm -f "$MK_ROOT"/src/*.o "$MK_ROOT"/src/*.so
  echo "$lib"
}
