# Base `[` on a file-backed matrix: what it costs per element, and the floor
# R's own matrix subsetting puts under any ALTREP matrix.
#
#   flock /tmp/memkit-bench.lock Rscript bench/fm-subset.R
#
# Writes bench/results/fm-subset.md. R's matrix subsetting (MatrixSubset()
# in R's subset.c, R 4.2 to R-devel) reads an ALTREP matrix one element at a
# time through its Elt method: one method dispatch per element, whatever the
# class does. The floor is measured with R's own cheapest ALTREP class, the
# wrapper (`.Internal(wrap_meta())`, whose Elt reads the ordinary vector it
# wraps): no class can do less per element. Four ways to take 10 whole
# columns, interleaved in rounds in one process (each round every way once,
# the order rotating), ratios the medians of the per-round ratios.
.libPaths(c(file.path("bench", "lib"), Sys.getenv("R_LIBS"), .libPaths()))
source(file.path("bench", "common.R"))
suppressPackageStartupMessages(library(memkit))

nr <- as.integer(Sys.getenv("MEMKIT_BENCH_NROW", "2000000"))
nc <- 20L
cols <- 11:20
nrounds <- as.integer(Sys.getenv("MEMKIT_BENCH_ROUNDS", "21"))

set.seed(1)
M <- matrix(runif(nr * nc), nr, nc)
path <- tempfile(fileext = ".fm")
X <- as_fm(M, path)
# R's wrapper class around the same data: an ALTREP matrix whose Elt does
# nothing but read an ordinary vector.
W <- .Internal(wrap_meta(M, 0L, 0L))
stopifnot(identical(W[, cols], M[, cols]), identical(X[, cols], M[, cols]))

ways <- list(
  `in-memory matrix, base [` = function() M[, cols],
  `R's wrapper ALTREP (the floor), base [` = function() W[, cols],
  `memkit file-backed, base [` = function() X[, cols],
  `memkit file-backed, fm_read()` = function() fm_read(X, j = cols)
)
t <- rounds(ways, nrounds)
n_el <- nr * length(cols)
ratio <- function(a, b) stats::median(t[, a] / t[, b])
base_col <- names(ways)[[1L]]
rows <- vapply(names(ways), function(w) {
  sprintf("| %s | %.1f | %.2f | %.2fx | %.2fx |", w, 1000 * stats::median(t[, w]),
          1e9 * stats::median(t[, w]) / n_el, ratio(w, base_col), ratio(w, names(ways)[[2L]]))
}, "")
floor_ns <- 1e9 * stats::median(t[, 2L] - t[, 1L]) / n_el
ours_ns <- 1e9 * stats::median(t[, 3L] - t[, 1L]) / n_el
si <- utils::sessionInfo()
out <- c(
  "## Base `[` on a file-backed matrix (`bench/fm-subset.R`)",
  "",
  bench_stamp("bench/fm-subset.R"),
  "",
  sprintf("Machine: %s, %d cores; %s. memkit %s.",
          tryCatch(sub(".*: ", "", grep("model name", readLines("/proc/cpuinfo"), value = TRUE)[[1L]]),
                   error = function(e) "unknown CPU"),
          parallel::detectCores(), si$R.version$version.string, utils::packageVersion("memkit")),
  sprintf(paste("A %s x %d double matrix (%.0f MiB), page cache warm; `[, %d:%d]` takes %s elements.",
                "%d rounds, each way once per round in a rotated order; medians, and ratios as medians",
                "of the per-round ratios."),
          format(nr, big.mark = ","), nc, nr * nc * 8 / 2^20, min(cols), max(cols),
          format(n_el, big.mark = ","), nrounds),
  "",
  "| way | ms | ns per element | to in-memory | to R's wrapper ALTREP |",
  "|---|---|---|---|---|",
  rows,
  "",
  sprintf(paste("R's matrix subsetting reads any ALTREP matrix through one Elt call per element;",
                "with R's own cheapest class that costs %.1f ns per element more than an ordinary",
                "matrix, so the floor for base `[` on any ALTREP matrix here is %.2fx in-memory. memkit's",
                "Elt (the mapping's address, a per-thread mark either side of the read against a file",
                "that shrinks under the mapping) costs %.1f ns per element over in-memory: %.2fx R's floor.",
                "Whole columns without that floor: `fm_read()` (%.2fx in-memory)."),
          floor_ns, ratio(2L, 1L), ours_ns, ratio(3L, 2L), ratio(4L, 1L))
)
dir.create(file.path("bench", "results"), showWarnings = FALSE)
writeLines(out, file.path("bench", "results", "fm-subset.md"))
cat(out, sep = "\n")
