# Helpers shared by the bench scripts (sourced by them; not a benchmark).

# A distribution-free 95% interval for a median: order statistics k and
# n + 1 - k, with k from the binomial(n, 1/2) quantile.
median_ci <- function(x) {
  n <- length(x)
  k <- max(1L, as.integer(stats::qbinom(0.025, n, 0.5)))
  sort(x)[c(k, n + 1L - k)]
}
