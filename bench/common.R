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
  git <- function(...) tryCatch(suppressWarnings(system2("git", c(...), stdout = TRUE, stderr = FALSE)),
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
