# Helpers shared by the bench scripts (sourced by them; not a benchmark).

# A distribution-free 95% interval for a median: order statistics k and
# n + 1 - k, with k from the binomial(n, 1/2) quantile.
median_ci <- function(x) {
  n <- length(x)
  k <- max(1L, as.integer(stats::qbinom(0.025, n, 0.5)))
  sort(x)[c(k, n + 1L - k)]
}

# The line under each section's heading that says where its figures came
# from: the commit measured (and whether the tree had uncommitted changes,
# bench/ itself aside) and the script that measured them, by hash. Run from
# the package root.
bench_stamp <- function(script) {
  git <- function(...) tryCatch(suppressWarnings(system2("git", shQuote(c(...)), stdout = TRUE, stderr = FALSE)),
                                error = function(e) character())
  # The commit the measured build came from, when it was installed from a
  # commit other than the checkout's (MEMKIT_BENCH_COMMIT).
  commit <- Sys.getenv("MEMKIT_BENCH_COMMIT")
  dirty <- character()
  if (!nzchar(commit)) {
    commit <- git("rev-parse", "--short", "HEAD")
    if (!length(commit)) commit <- "unknown"
    dirty <- git("status", "--porcelain", "--", ".", ":(exclude)bench")
  }
  hash <- substr(unname(tools::md5sum(script)), 1L, 12L)
  sprintf("Stamp: commit `%s`%s; script `%s` (md5 `%s`); run %s.", commit,
          if (length(dirty)) " with uncommitted changes" else "", script, hash,
          format(Sys.time(), "%Y-%m-%d %H:%M %Z"))
}

# Times the functions `fs` (named) in `n` rounds, each round every function
# once in a rotated order, after one warm-up call each, so that whatever else
# the machine does falls on all of them alike. Returns an n x length(fs)
# matrix of seconds; the ratio of two is the median of their per-round
# ratios. Needs memkit attached or loaded (its monotonic clock).
rounds <- function(fs, n = 11L) {
  for (f in fs) f()
  k <- length(fs)
  now <- memkit:::mono_now
  t <- matrix(NA_real_, n, k, dimnames = list(NULL, names(fs)))
  for (r in seq_len(n)) {
    for (j in (seq_len(k) + r - 2L) %% k + 1L) {
      t0 <- now()
      fs[[j]]()
      t[r, j] <- now() - t0
    }
  }
  t
}

# The allocation-heavy workload of bench/profile.R and bench/limits.R:
# 8000 short-lived vectors of 160 kB built, summed and dropped, and a list
# of strings refilled; about 1 s a run.
alloc_workload <- function() {
  acc <- 0
  keep <- vector("list", 2000L)
  for (i in 1:8000) {
    v <- numeric(2e4) + i
    acc <- acc + sum(v)
    keep[[(i %% 2000L) + 1L]] <- as.character(i)
  }
  acc
}
