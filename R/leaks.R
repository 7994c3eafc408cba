# Leak checks: call a function many times and look for memory that stays.

#' Does a function leak memory?
#'
#' `mem_leaks()` calls `f()` `warmup + n` times, with a full garbage
#' collection after each call, and records the R heap (cons and vector cells
#' in use) and the process's resident memory after each. It fits a robust
#' straight line (Theil-Sen: the median of the slopes between all pairs of
#' runs) to each over the `n` runs after the warm-up, and gives a verdict:
#'
#' * `"R heap"`: R objects accumulate (say, a global list that grows, or a
#'   cache without a bound). Find the binding that holds them with
#'   `mem_ls()` (objects in an environment by size) and `mem_tree()` (what an
#'   object holds).
#' * `"native"`: resident memory grows while the R heap does not: memory
#'   allocated by compiled code and never freed. Run R under valgrind (see
#'   `vignette("gc-and-profiling", package = "memkit")`).
#' * `"none"`: neither grows once warmed up.
#'
#' A series is said to grow when its slope is at least `16 B` per call for
#' the R heap (measured exactly after each collection) or `1 KiB` per call
#' for resident memory (which moves in pages of 4 KiB and with the C
#' allocator's caching), and the Mann-Kendall test for an upward trend gives
#' p < 0.01. The warm-up runs are there for first-call costs that are not
#' leaks: byte compilation, caches that fill and then stay, lazy loading.
#'
#' Before each reading of resident memory the C allocator is asked to give
#' its free memory back to the system (as `mem_gc(trim = TRUE)` does), so that
#' resident memory follows what is in use: otherwise a native leak is served
#' from memory already resident and does not show. Under valgrind or a
#' sanitizer another allocator serves `malloc()`; there, rely on the tool's
#' own leak report.
#'
#' @param f A function, called with no arguments.
#' @param n Number of calls measured, from 5 to `1e6`.
#' @param warmup Number of calls made first and not measured, from 0 to
#'   `1e6`.
#' @return A `mem_leaks` object, a list with
#'   * `verdict`: `"R heap"`, `"native"` or `"none"`;
#'   * `bytes_per_call`: the growth per call of the series behind the verdict
#'     (the R heap, or resident memory; for `"none"`, the larger of the two
#'     slopes), [mem_bytes];
#'   * `confidence`: the share of all pairs of measured runs whose growth per
#'     call agrees with the verdict (at or above the threshold for a leak,
#'     below it for none), between 0 and 1;
#'   * `fits`: a data frame with one row per series (`heap`, `rss`): `slope`,
#'     `lower` and `upper` (95% interval, Sen's method), `p_value` and
#'     `grows`;
#'   * `runs`: a data frame with one row per call: `run`, `warmup`, `heap`,
#'     `rss` ([mem_bytes]), `ncells`, `vcells`;
#'   * `advice`: where to look next.
#'
#'   `summary()` gives the `fits` as a data frame of class
#'   `summary_mem_leaks`, printed as a table; `as.data.frame()` gives the
#'   `runs`; `plot()` draws both series with the fitted lines.
#' @export
#' @examples
#' cache <- new.env()
#' leaky <- function() cache[[as.character(length(cache) + 1)]] <- numeric(128)
#' mem_leaks(leaky, n = 8, warmup = 1)
#'
#' tidy <- function() invisible(numeric(1e5))
#' mem_leaks(tidy, n = 8, warmup = 1)
mem_leaks <- function(f, n = 100, warmup = 10) {
  if (!is.function(f)) {
    mk_abort("type", sprintf("`f` must be a function, not %s.", describe_value(f)))
  }
  # Bounded before any collection: each run is a full collection.
  check_scalar_number(n, min = 5, max = 1e6)
  check_scalar_number(warmup, min = 0, max = 1e6)
  n <- as.integer(n)
  warmup <- as.integer(warmup)
  total <- warmup + n

  heap <- rss <- ncells <- vcells <- numeric(total)
  show <- mk_progress_enabled()
  if (show) {
    cli::cli_progress_bar("Checking for leaks", total = total, clear = TRUE)
  }
  gc(full = TRUE)
  .Call(ffi_utils_trim)
  for (i in seq_len(total)) {
    f()
    g <- gc(full = TRUE)
    ncells[i] <- g[1L, 1L]
    vcells[i] <- g[2L, 1L]
    .Call(ffi_utils_trim)
    rss[i] <- as.numeric(rss_now())
    if (show) cli::cli_progress_update()
  }
  if (show) cli::cli_progress_done()
  heap <- ncells * ncell_bytes + vcells * vcell_bytes

  measured <- seq_len(total) > warmup
  thresholds <- c(heap = 16, rss = 1024)
  fits <- rbind(
    leak_fit(heap[measured], thresholds[["heap"]]),
    leak_fit(rss[measured], thresholds[["rss"]])
  )
  fits <- data.frame(series = c("heap", "rss"), fits, row.names = NULL)

  verdict <- if (fits$grows[[1L]]) "R heap" else if (fits$grows[[2L]]) "native" else "none"
  pick <- switch(verdict, "R heap" = 1L, "native" = 2L, which.max(fits$slope))
  confidence <- switch(verdict,
    "R heap" = fits$share_above[[1L]],
    "native" = fits$share_above[[2L]],
    min(1 - fits$share_above)
  )
  fits$share_above <- NULL
  fits$slope <- new_mem_bytes(fits$slope)
  fits$lower <- new_mem_bytes(fits$lower)
  fits$upper <- new_mem_bytes(fits$upper)

  runs <- data.frame(run = seq_len(total), warmup = !measured,
                     heap = new_mem_bytes(heap), rss = new_mem_bytes(rss),
                     ncells = ncells, vcells = vcells)
  structure(list(
    verdict = verdict,
    bytes_per_call = fits$slope[pick],
    confidence = confidence,
    fits = fits,
    runs = runs,
    n = n,
    warmup = warmup,
    advice = leak_advice(verdict, fits)
  ), class = "mem_leaks")
}

# Theil-Sen slope with Sen's 95% interval, the one-sided Mann-Kendall test for
# an upward trend (stats::cor.test()) and the share of pairwise slopes at or
# above `threshold`.
leak_fit <- function(y, threshold) {
  n <- length(y)
  x <- seq_len(n)
  pairs <- leak_pairs(n)
  slopes <- (y[pairs$j] - y[pairs$i]) / (x[pairs$j] - x[pairs$i])
  slope <- stats::median(slopes)

  # The Mann-Kendall test for an upward trend is Kendall's tau between the run
  # number and the series, one-sided, with the normal approximation, the
  # variance corrected for ties and a continuity correction. The variance of
  # its S (ties in y only: the runs are distinct) also sets Sen's interval.
  ties <- table(y)
  ties <- as.numeric(ties[ties > 1L])
  var_s <- (n * (n - 1) * (2 * n + 5) - sum(ties * (ties - 1) * (2 * ties + 5))) / 18
  p <- if (anyNA(y)) {
    NA_real_
  } else if (var_s > 0) {
    stats::cor.test(x, y, method = "kendall", alternative = "greater",
                    exact = FALSE, continuity = TRUE)$p.value
  } else {
    1 # a flat series: no trend
  }

  # Sen's interval: ranks of the sorted pairwise slopes.
  sorted <- sort(slopes)
  m <- length(sorted)
  half <- stats::qnorm(0.975) * sqrt(var_s) * m / (n * (n - 1) / 2)
  lo <- max(1L, floor((m - half) / 2))
  hi <- min(m, ceiling((m + half) / 2) + 1L)
  data.frame(slope = slope, lower = sorted[[lo]], upper = sorted[[hi]],
             p_value = p, grows = slope >= threshold && p < 0.01,
             share_above = mean(slopes >= threshold))
}

# Pairs of runs (i < j) for the slopes: all of them up to 1000 runs; beyond,
# every run paired with runs at 500 evenly spread distances.
leak_pairs <- function(n) {
  lags <- if (n <= 1000L) seq_len(n - 1L) else unique(round(seq(1, n - 1L, length.out = 500L)))
  i <- unlist(lapply(lags, function(k) seq_len(n - k)))
  j <- i + rep(lags, n - lags)
  list(i = i, j = j)
}

leak_advice <- function(verdict, fits) {
  switch(verdict,
    "R heap" = c(
      "R objects are piling up: something keeps a reference to what each call makes.",
      "Look for bindings that grow: global variables, environments captured by closures,",
      "caches in package namespaces, options(), attributes. mem_ls() lists the objects in an",
      "environment by size and mem_tree() shows what one holds; compare them before and after",
      "a few calls."
    ),
    "native" = c(
      "Resident memory grows while the R heap stays flat: compiled code allocates and never frees.",
      "Run the calls under valgrind and read the 'definitely lost' records:",
      "  R -d \"valgrind --leak-check=full\" --vanilla -f script.R"
    ),
    "none" = "Neither the R heap nor resident memory grows once warmed up."
  )
}

#' @export
print.mem_leaks <- function(x, ...) {
  what <- switch(x$verdict,
    "R heap" = "R-heap leak",
    "native" = "native leak",
    "none" = "no leak"
  )
  if (x$verdict == "none") {
    cat(sprintf("<mem_leaks> %s over %d calls (after %d warm-up)\n", what, x$n, x$warmup))
  } else {
    cat(sprintf("<mem_leaks> %s: %s per call over %d calls (after %d warm-up)\n",
                what, format(x$bytes_per_call), x$n, x$warmup))
  }
  f <- x$fits
  cat(sprintf("  %s %s per call (95%%: %s to %s), p = %s\n",
              pad_text(c("R heap", "resident"), 9L), format(f$slope), format(f$lower),
              format(f$upper), format.pval(f$p_value, digits = 2, eps = 1e-4)), sep = "")
  cat(sprintf("Confidence: %.0f%% of pairs of runs agree\n", 100 * x$confidence))
  cat(x$advice, sep = "\n")
  invisible(x)
}

#' @export
summary.mem_leaks <- function(object, ...) {
  structure(object$fits, class = c("summary_mem_leaks", "data.frame"))
}

#' @export
print.summary_mem_leaks <- function(x, ...) {
  if (!all(c("series", "slope", "lower", "upper", "p_value", "grows") %in% names(x))) {
    return(NextMethod())
  }
  series <- c(heap = "R heap", rss = "resident")[x$series]
  cols <- list(
    series = ifelse(is.na(series), x$series, series),
    `per call` = format(mem_bytes(x$slope)),
    `95% from` = format(mem_bytes(x$lower)),
    to = format(mem_bytes(x$upper)),
    p = format.pval(x$p_value, digits = 2, eps = 1e-4),
    grows = ifelse(x$grows, "yes", "no")
  )
  cat(table_lines(cols, align = c("left", rep("right", 5L))), sep = "\n")
  invisible(x)
}

#' @export
as.data.frame.mem_leaks <- function(x, ...) x$runs

#' @param x A `mem_leaks` object.
#' @param units The unit of the change in memory on the vertical axes: one of
#'   `B`, `KiB`, `MiB`, `GiB`, `TiB`, `PiB` or `kB`, `MB`, `GB`, `TB`, `PB`
#'   (see [mem_bytes]).
#' @param ... Passed on to [plot()] for each series.
#' @rdname mem_leaks
#' @export
plot.mem_leaks <- function(x, units = "KiB", ...) {
  div <- unit_multiplier(units)
  if (is.na(div)) {
    mk_abort("argument", sprintf("`units` must be a unit such as \"KiB\" or \"MB\", not %s.",
                                 describe_value(units)))
  }
  r <- x$runs
  old <- graphics::par(mfrow = c(1L, 2L))
  on.exit(graphics::par(old))
  for (k in 1:2) {
    series <- c("heap", "rss")[[k]]
    y <- as.numeric(r[[series]])
    base <- y[!r$warmup][[1L]]
    y <- (y - base) / div
    # Scaled to the measured runs: the first warm-up calls can sit far off.
    lim <- range(c(0, y[!r$warmup]), na.rm = TRUE)
    lim <- lim + c(-1, 1) * max(diff(lim) * 0.08, 1e-9)
    graphics::plot(r$run, y, pch = ifelse(r$warmup, 1, 20), col = ifelse(r$warmup, "grey60", "black"),
                   ylim = lim, xlab = "call", ylab = sprintf("change (%s)", units),
                   main = c("R heap after GC", "resident memory")[[k]], ...)
    fit <- x$fits[x$fits$series == series, ]
    xs <- r$run[!r$warmup]
    mid <- stats::median(y[!r$warmup] - as.numeric(fit$slope) / div * (xs - xs[[1L]]))
    graphics::lines(xs, mid + as.numeric(fit$slope) / div * (xs - xs[[1L]]),
                    col = if (fit$grows) "red" else "steelblue", lwd = 2)
    graphics::mtext(sprintf("%s per call", format(fit$slope)), side = 3, line = 0.25, cex = 0.8)
  }
  invisible(x)
}
