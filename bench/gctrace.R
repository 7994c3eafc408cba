# GC tracing: the cost of gc_trace() on an allocation-heavy workload, and
# what bench::mark()'s own GC counting sees of the same workload.
#
#   flock /tmp/memkit-bench.lock Rscript bench/gctrace.R
#
# Writes bench/results/gctrace.md. Runs are paired (plain, traced) and
# interleaved in one process, the order inside each pair alternating, so that
# drift on a shared machine hits both sides alike; the overhead is the median
# of the per-pair ratios.
.libPaths(c(file.path("bench", "lib"), Sys.getenv("R_LIBS"), .libPaths()))
suppressPackageStartupMessages(library(memkit))
has_bench <- requireNamespace("bench", quietly = TRUE)

# Large and small vectors, lists and strings, nothing kept: about a hundred
# collections per run at every level, each run a second or two.
workload <- function() {
  acc <- 0
  for (i in 1:5000) {
    x <- numeric(1.5e5)
    l <- lapply(1:30, function(j) c(j, i))
    s <- paste0("k", i, "_", 1:10)
    acc <- acc + length(x) + length(l) + length(s)
  }
  acc
}

pairs <- 10L
now <- function() memkit:::mono_now()
workload()                      # warm up: byte-compile, grow the heap once
invisible(gc_trace(workload()))

# Elapsed time, and CPU time of the whole process (the reader thread
# included), which other work on the machine disturbs less.
cpu <- function() { p <- proc.time(); p[["user.self"]] + p[["sys.self"]] }
plain <- traced <- plain_cpu <- traced_cpu <- n_gc <- numeric(pairs)
for (r in seq_len(pairs)) {
  # Each run starts from the same heap: a full collection first, outside the
  # timing, in both arms (the traced arm's own bracketing collections stay
  # inside its timing).
  run_plain <- function() {
    gc(full = TRUE)
    c0 <- cpu(); t0 <- now()
    workload()
    c(now() - t0, cpu() - c0)
  }
  run_traced <- function() {
    gc(full = TRUE)
    c0 <- cpu(); t0 <- now()
    tr <- gc_trace(workload())
    out <- c(now() - t0, cpu() - c0)
    n_gc[[r]] <<- nrow(as.data.frame(tr))
    out
  }
  if (r %% 2L == 1L) {
    p <- run_plain(); q <- run_traced()
  } else {
    q <- run_traced(); p <- run_plain()
  }
  plain[[r]] <- p[[1L]]; plain_cpu[[r]] <- p[[2L]]
  traced[[r]] <- q[[1L]]; traced_cpu[[r]] <- q[[2L]]
}
ratio <- traced / plain
overhead <- stats::median(ratio) - 1
ratio_cpu <- traced_cpu / plain_cpu
overhead_cpu <- stats::median(ratio_cpu) - 1
goal <- 0.03

# One traced run in detail, for the levels.
tr <- gc_trace(workload())
ev <- as.data.frame(tr)
lv <- tabulate(ev$level + 1L, 3L)

# bench::mark()'s own GC counting on the same workload.
bm <- NULL
if (has_bench) {
  bm <- bench::mark(workload(), iterations = pairs, check = FALSE, filter_gc = FALSE)
  bgc <- bm$gc[[1L]]
}

fmt <- function(x, d = 3) formatC(x, digits = d, format = "fg", flag = "#")
si <- utils::sessionInfo()
cpu_model <- tryCatch({
  l <- grep("^model name", readLines("/proc/cpuinfo"), value = TRUE)[1L]
  trimws(sub("^model name\\s*:", "", l))
}, error = function(e) NA_character_)
out <- c(
  "## GC tracing (`gc_trace()`)",
  "",
  sprintf("Machine: %s, %d cores, %s; %s. memkit %s%s.",
          cpu_model, parallel::detectCores(), si$running, R.version.string,
          utils::packageVersion("memkit"),
          if (has_bench) sprintf(", bench %s", utils::packageVersion("bench")) else ""),
  "Figures are medians of paired runs; each run starts after a full collection (outside the timing).",
  "",
  sprintf("Workload: 5000 iterations each allocating a 150,000-double vector, a list of 30 small vectors and 10 strings, nothing kept; %d to %d collections per run.",
          as.integer(min(n_gc)), as.integer(max(n_gc))),
  "",
  sprintf("%d paired runs, interleaved in one process (order alternating):", pairs),
  "",
  "| | elapsed median (s) | min | max | CPU median (s) | min | max |",
  "|---|---|---|---|---|---|---|",
  sprintf("| plain `workload()` | %s | %s | %s | %s | %s | %s |", fmt(stats::median(plain)), fmt(min(plain)), fmt(max(plain)),
          fmt(stats::median(plain_cpu)), fmt(min(plain_cpu)), fmt(max(plain_cpu))),
  sprintf("| `gc_trace(workload())` | %s | %s | %s | %s | %s | %s |", fmt(stats::median(traced)), fmt(min(traced)), fmt(max(traced)),
          fmt(stats::median(traced_cpu)), fmt(min(traced_cpu)), fmt(max(traced_cpu))),
  "",
  sprintf("Per-pair ratios traced/plain, elapsed: %s.", paste(fmt(ratio, 4), collapse = ", ")),
  sprintf("Per-pair ratios traced/plain, CPU: %s.", paste(fmt(ratio_cpu, 4), collapse = ", ")),
  "",
  sprintf("**Median overhead, elapsed: %+.1f%%** (ratio %s); goal <= %.0f%%: **%s**. CPU time: %+.1f%% (ratio %s).",
          100 * overhead, fmt(1 + overhead, 4), 100 * goal,
          if (overhead <= goal) "met" else "not met",
          100 * overhead_cpu, fmt(1 + overhead_cpu, 4)),
  if (stats::median(plain) > 1.2 * stats::median(plain_cpu)) {
    sprintf(paste0("Other work on the machine dominated the elapsed times (runs waited for a core; per-pair ratios span %s to %s): ",
                   "the CPU-time ratio, which waiting for a core does not inflate, is the more reliable figure ",
                   "(goal on CPU time: **%s**)."),
            fmt(min(ratio), 3), fmt(max(ratio), 3), if (overhead_cpu <= goal) "met" else "not met")
  } else character(),
  "The overhead per trace is fixed (two minor collections that bracket it, a pipe and a thread) plus a few",
  "microseconds per collection, so it is a smaller share of longer traces.",
  "",
  sprintf("One traced run: %d collections (levels 0/1/2: %d/%d/%d), every one accounted for (R's numbering %d to %d); %.1f%% of the run in GC by `gc.time()`.",
          nrow(ev), lv[[1L]], lv[[2L]], lv[[3L]], tr$gc_start, tr$gc_end,
          100 * tr$gc_time / tr$elapsed),
  ""
)
if (!is.null(bm)) {
  out <- c(out,
    sprintf("`bench::mark()` on the same workload (%d iterations) counts, per iteration, %s collections (level 0/1/2 in total: %d/%d/%d); median %s s per iteration. It sees only counts and levels per iteration: no times, heap sizes, triggers, stacks or explicit `gc()` calls, and it swallows the expression's messages.",
            nrow(bgc), paste(range(rowSums(bgc)), collapse = " to "),
            sum(bgc$level0), sum(bgc$level1), sum(bgc$level2), fmt(as.double(bm$median))),
    "")
} else {
  out <- c(out, "bench is not installed: `bench::mark()`'s GC counting was not run.", "")
}
dir.create(file.path("bench", "results"), showWarnings = FALSE, recursive = TRUE)
writeLines(out, file.path("bench", "results", "gctrace.md"))
cat(out, sep = "\n")
