# Installs the peers the benchmarks compare against into bench/lib (not the
# package's dependencies). Debian's packages first; CRAN for the rest.
lib <- file.path("bench", "lib")
dir.create(lib, showWarnings = FALSE, recursive = TRUE)
.libPaths(c(lib, .libPaths()))
want <- c("lobstr", "bigmemory", "ff", "bigstatsr", "bigreadr", "data.table", "bench", "peakRAM")
have <- rownames(installed.packages())
need <- setdiff(want, have)
if (length(need)) {
  # The CRAN mirror is the one the machine is set up with (getOption("repos")).
  install.packages(need, lib = lib)
}
still <- setdiff(want, rownames(installed.packages()))
if (length(still)) message("not installed (their benchmarks are skipped): ", paste(still, collapse = ", "))
