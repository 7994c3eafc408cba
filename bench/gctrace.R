# GC tracing: the cost of gc_trace() on allocation-heavy workloads, and what
# bench::mark()'s own GC counting sees of the same workloads.
#
#   flock /tmp/memkit-bench.lock Rscript bench/gctrace.R
#
# Writes bench/results/gctrace.md. Runs are paired (plain, traced) and
# interleaved in one process, the order inside each pair alternating, so that
# drift on a shared machine hits both sides alike, and both runs of a pair
# start from the same collector state (gc_align() below); the overhead is the
# median of the per-pair ratios, with a distribution-free 95% interval for it.
# MEMKIT_BENCH_PAIRS sets the number of pairs (default 80, at least 10): on a
# virtual machine where single runs of memory-bound code vary by 10-30%, ten
# pairs leave the median uncertain by several percent.
#
# Two workloads: a typical allocation-heavy one (data frames, split/apply,
# strings, many small lists; about a sixth of its time in GC), on which the
# goal is judged, and a GC-bound stress case (half its time in GC, a
# collection every few milliseconds), which shows the cost per collection.
.libPaths(c(file.path("bench", "lib"), Sys.getenv("R_LIBS"), .libPaths()))
suppressPackageStartupMessages(library(memkit))
has_bench <- requireNamespace("bench", quietly = TRUE)

typical <- function() {
  acc <- 0
  for (i in 1:250) {
    df <- data.frame(g = sample(letters, 5000, TRUE), x = runif(5000), y = rnorm(5000))
    df$z <- df$x * df$y
    s <- split(df$z, df$g)
    m <- vapply(s, mean, 0)
    lab <- paste(names(m), format(m, digits = 3))
    l <- lapply(seq_len(1000), function(j) list(id = j, v = df$z[[j]]))
    acc <- acc + sum(m) + length(lab) + length(l)
  }
  acc
}

# Large and small vectors, lists and strings, nothing kept.
gc_bound <- function() {
  acc <- 0
  for (i in 1:5000) {
    x <- numeric(1.5e5)
    l <- lapply(1:30, function(j) c(j, i))
    s <- paste0("k", i, "_", 1:10)
    acc <- acc + length(x) + length(l) + length(s)
  }
  acc
}

# A short allocation loop (about a quarter of a second here), on which the
# fixed cost of a trace weighs most.
short_loop <- function() {
  acc <- 0
  for (i in 1:600) {
    l <- lapply(1:200, function(j) numeric(20))
    acc <- acc + length(l)
  }
  acc
}

workloads <- list(
  short = list(
    f = short_loop, goal = TRUE, title = "Short allocation loop",
    what = "600 iterations each building a list of 200 vectors of 20 doubles; nothing kept"),
  typical = list(
    f = typical, goal = TRUE, title = "Typical allocation-heavy",
    what = paste("250 iterations each building a 5000-row data frame, splitting a column by group and",
                 "averaging it, formatting labels and building a list of 1000 small lists; nothing kept")),
  gc_bound = list(
    f = gc_bound, goal = FALSE, title = "GC-bound stress",
    what = paste("5000 iterations each allocating a 150,000-double vector, a list of 30 small",
                 "vectors and 10 strings; nothing kept"))
)

only <- Sys.getenv("MEMKIT_BENCH_WORKLOADS")   # e.g. "typical": a quick look, results not written
if (nzchar(only)) workloads <- workloads[intersect(strsplit(only, ",")[[1L]], names(workloads))]
pairs <- max(10L, as.integer(Sys.getenv("MEMKIT_BENCH_PAIRS", "80")))
goal <- 0.015
now <- function() memkit:::mono_now()
# Elapsed time, and CPU time of the whole process (the reader thread
# included).
cpu <- function() { p <- proc.time(); p[["user.self"]] + p[["sys.self"]] }

source(file.path("bench", "common.R"))

# R's collector makes a level-1 collection after every 20 level-0 ones and a
# level-2 after every 5 level-1 ones, by counters that a full gc() leaves
# alone. Whether a run holds one of these costlier collections (15 and 65 ms
# on the typical workload, against 3 ms for level 0) depends on where the
# counters stand when it starts, so the two runs of a pair would differ by
# chance. Each pair draws a phase instead, and both of its runs start from
# the same collector state: minor collections until R makes a level-2
# collection by its schedule (both counters then start over, and the heap is
# clean), then `phase` more. Over the pairs the phase covers the whole cycle,
# so the costlier collections fall where the traced run's own collection
# puts them, as they would in use.
gc_level <- function() {
  out <- character()
  con <- textConnection("out", "w", local = TRUE)
  sink(con, type = "message")
  on.exit({ sink(type = "message"); close(con) })
  gc(verbose = TRUE, full = FALSE)
  line <- grep("level [0-9]", out, value = TRUE)
  if (length(line)) as.integer(sub(".*level ([0-9]).*", "\\1", line[[1L]])) else NA_integer_
}
gc_align <- function(phase) {
  for (i in 1:400) if (identical(gc_level(), 2L)) break
  for (i in seq_len(phase)) gc(full = FALSE)
  invisible()
}
cycle <- 126L   # collections in one cycle of the two counters: 21 * 6

measure <- function(workload) {
  workload()                      # warm up: byte-compile, grow the heap once
  invisible(gc_trace(workload()))
  plain <- traced <- plain_cpu <- traced_cpu <- n_gc <- numeric(pairs)
  phases <- sample(rep_len(sample(0:(cycle - 1L)), pairs))
  # The collector's state is set outside the timing, in both arms (the
  # traced arm's own marker collection stays inside its timing).
  run_plain <- function(phase) {
    gc_align(phase)
    c0 <- cpu(); t0 <- now()
    workload()
    c(now() - t0, cpu() - c0, NA)
  }
  run_traced <- function(phase) {
    gc_align(phase)
    c0 <- cpu(); t0 <- now()
    tr <- gc_trace(workload())
    c(now() - t0, cpu() - c0, nrow(as.data.frame(tr)))
  }
  for (r in seq_len(pairs)) {
    if (r %% 2L == 1L) {
      p <- run_plain(phases[[r]]); q <- run_traced(phases[[r]])
    } else {
      q <- run_traced(phases[[r]]); p <- run_plain(phases[[r]])
    }
    plain[[r]] <- p[[1L]]; plain_cpu[[r]] <- p[[2L]]
    traced[[r]] <- q[[1L]]; traced_cpu[[r]] <- q[[2L]]; n_gc[[r]] <- q[[3L]]
  }
  tr <- gc_trace(workload())
  bm <- if (has_bench) {
    bench::mark(workload(), iterations = 10L, check = FALSE, filter_gc = FALSE)
  }
  list(plain = plain, traced = traced, plain_cpu = plain_cpu, traced_cpu = traced_cpu,
       n_gc = n_gc, ratio = traced / plain, ratio_cpu = traced_cpu / plain_cpu,
       tr = tr, bm = bm)
}

# The fixed cost per trace: the sink, gcinfo() and gc.time() switches, the
# run of pending finalizers and the join (no collection: a trace opens
# without one). Each gc_trace(NULL) follows a minor collection (outside the
# timing), as does each with exact = TRUE, whose marker would otherwise also
# collect garbage left by earlier code.
fixed_cost <- function(n = 41L) {
  t <- vapply(seq_len(n), function(i) {
    gc(full = FALSE)
    t0 <- now(); gc_trace(NULL); t1 <- now()
    # Back to back: the next trace right after this one.
    gc_trace(NULL); t2 <- now()
    gc(full = FALSE)
    # The marker alone: the minor collection exact = TRUE opens with.
    t3 <- now(); gc(verbose = FALSE, full = FALSE); t4 <- now()
    gc(full = FALSE)
    t5 <- now(); gc_trace(NULL, exact = TRUE); t6 <- now()
    c(t1 - t0, t2 - t1, t4 - t3, t6 - t5)
  }, double(4))
  apply(t, 1L, stats::median)
}
fixed_goal <- 0.5e-3

res <- lapply(workloads, function(w) measure(w$f))
fixed <- fixed_cost()

fmt <- function(x, d = 3) formatC(x, digits = d, format = "fg", flag = "#")
si <- utils::sessionInfo()
cpu_model <- tryCatch({
  l <- grep("^model name", readLines("/proc/cpuinfo"), value = TRUE)[1L]
  trimws(sub("^model name\\s*:", "", l))
}, error = function(e) NA_character_)

out <- c(
  "## GC tracing (`gc_trace()`)",
  "",
  bench_stamp(file.path("bench", "gctrace.R")),
  "",
  sprintf("Machine: %s, %d cores, %s; %s. memkit %s%s.",
          cpu_model, parallel::detectCores(), si$running, R.version.string,
          utils::packageVersion("memkit"),
          if (has_bench) sprintf(", bench %s", utils::packageVersion("bench")) else ""),
  sprintf(paste("Each workload: %d paired runs (plain, traced) interleaved in one process, the order alternating.",
                "Both runs of a pair start from the same collector state, set outside the timing: a clean heap and",
                "R's level-1 and level-2 counters at the same point of their cycle, a point drawn for each pair so",
                "that the pairs cover the whole cycle. The overhead is the median of the per-pair ratios, with a",
                "distribution-free 95%% interval (order statistics)."), pairs),
  ""
)

for (nm in names(workloads)) {
  w <- workloads[[nm]]
  r <- res[[nm]]
  overhead <- stats::median(r$ratio) - 1
  overhead_cpu <- stats::median(r$ratio_cpu) - 1
  ci <- median_ci(r$ratio) - 1
  ci_cpu <- median_ci(r$ratio_cpu) - 1
  ev <- as.data.frame(r$tr)
  lv <- tabulate(ev$level + 1L, 3L)
  gc_share <- r$tr$gc_time / r$tr$elapsed
  out <- c(out,
    sprintf("### %s workload", w$title),
    "",
    sprintf("%s: %d to %d collections per run, %.0f%% of the run in GC by `gc.time()`, %.0f collections a second.",
            w$what, as.integer(min(r$n_gc)), as.integer(max(r$n_gc)), 100 * gc_share,
            nrow(ev) / r$tr$elapsed),
    "",
    "| | elapsed median (s) | min | max | CPU median (s) | min | max |",
    "|---|---|---|---|---|---|---|",
    sprintf("| plain | %s | %s | %s | %s | %s | %s |", fmt(stats::median(r$plain)), fmt(min(r$plain)), fmt(max(r$plain)),
            fmt(stats::median(r$plain_cpu)), fmt(min(r$plain_cpu)), fmt(max(r$plain_cpu))),
    sprintf("| `gc_trace()` | %s | %s | %s | %s | %s | %s |", fmt(stats::median(r$traced)), fmt(min(r$traced)), fmt(max(r$traced)),
            fmt(stats::median(r$traced_cpu)), fmt(min(r$traced_cpu)), fmt(max(r$traced_cpu))),
    "",
    sprintf("Per-pair ratios traced/plain, elapsed: %s.", paste(fmt(r$ratio, 4), collapse = ", ")),
    "",
    sprintf("**Median overhead, elapsed: %+.1f%%** (95%% interval %+.1f%% to %+.1f%%)%s. CPU time (both threads): %+.1f%% (95%% interval %+.1f%% to %+.1f%%).",
            100 * overhead, 100 * ci[[1L]], 100 * ci[[2L]],
            if (w$goal) sprintf("; goal <= %.1f%%: **%s**", 100 * goal, if (overhead <= goal) "met" else "not met") else "",
            100 * overhead_cpu, 100 * ci_cpu[[1L]], 100 * ci_cpu[[2L]]),
    "",
    sprintf("One traced run: %d collections (levels 0/1/2: %d/%d/%d), every one accounted for (R's numbering %d to %d).",
            nrow(ev), lv[[1L]], lv[[2L]], lv[[3L]], r$tr$gc_start + 1L, r$tr$gc_end),
    ""
  )
  if (!is.null(r$bm)) {
    bgc <- r$bm$gc[[1L]]
    out <- c(out,
      sprintf("`bench::mark()` on the same workload (%d iterations) counts, per iteration, %s collections (level 0/1/2 in total: %d/%d/%d); median %s s per iteration. It sees only counts and levels per iteration: no times, heap sizes, triggers, stacks or explicit `gc()` calls, and it swallows the expression's messages.",
              nrow(bgc), paste(range(rowSums(bgc)), collapse = " to "),
              sum(bgc$level0), sum(bgc$level1), sum(bgc$level2), fmt(as.double(r$bm$median))),
      "")
  } else {
    out <- c(out, "bench is not installed: `bench::mark()`'s GC counting was not run.", "")
  }
}

out <- c(out,
  "### Where the cost goes",
  "",
  sprintf(paste("A fixed %.2f ms per trace (median of 41 `gc_trace(NULL)`, each after a minor collection; %.2f ms",
                "for a trace right after another; goal <= %.1f ms: **%s**): the sink, `gcinfo()` and `gc.time()`",
                "switches, the run of pending finalizers that tells which collections came before the trace,",
                "and the join (the pipe and its reader thread are opened by the first trace and kept for the",
                "session). A trace opens without a collection of its own: R's count at its start is worked out",
                "from its first report. With `exact = TRUE` it opens with a minor collection, whose report gives",
                "the start exactly even when other code takes the message stream first: %.2f ms per trace, of",
                "which %.2f ms is that collection (`gc(full = FALSE)` alone, the median of 41 in the same rounds).",
                "A collection closes the trace only when R's reports cannot tell where it ends. Per collection:",
                "R printing its report into the pipe, the reader thread waking to parse it, the callback on R's",
                "thread (re-arming the sentinel, `sys.calls()`, `gc.time()`), and at the end joining one row per",
                "collection (tens of microseconds each). The fixed part is a smaller share of longer traces.",
                "Single runs on this machine vary by 10-30%%, more than the cost measured: the intervals above,",
                "not the last digit of the medians, say how well the overhead is known."),
          1000 * fixed[[1L]], 1000 * fixed[[2L]], 1000 * fixed_goal,
          if (fixed[[1L]] <= fixed_goal) "met" else "not met", 1000 * fixed[[4L]], 1000 * fixed[[3L]]),
  ""
)

if (!nzchar(only)) {
  dir.create(file.path("bench", "results"), showWarnings = FALSE, recursive = TRUE)
  writeLines(out, file.path("bench", "results", "gctrace.md"))
}
cat(out, sep = "\n")
