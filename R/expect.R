# testthat expectations on memory: expect_mem_peak(), expect_no_leak().
# testthat is only suggested: these check for it when called.

#' Expectations on memory for testthat
#'
#' `expect_mem_peak()` evaluates `expr` with [mem_peak()] and fails when
#' its peak resident memory, above the level at the start, passes `max`.
#' `expect_no_leak()` runs [mem_leaks()] on `f` and fails unless the verdict
#' is `"none"`. Both are [testthat](https://testthat.r-lib.org)
#' expectations (testthat >= 3.0.0 must be installed): use them inside
#' `test_that()`. Their failure messages give the measurement (the peak and
#' how it was found, the R heap's peak; the leak verdict, the growth per
#' call and its interval) and where to look next.
#'
#' The peak is resident memory, which includes what the C allocator keeps
#' and R's own tables: allow some megabytes above what `expr` needs. A leak
#' check makes `warmup + n` calls, each followed by a full collection: keep
#' `f` quick.
#'
#' @param expr An expression to evaluate.
#' @param max The largest peak allowed: a number of bytes or a string such
#'   as `"100 MB"`.
#' @param children Also count child processes started by `expr` (see
#'   [mem_peak()]; Linux): the expectation is then on R's peak plus the
#'   children's peak PSS.
#' @return `expect_mem_peak()`: invisibly, the [mem_peak()] result.
#'   `expect_no_leak()`: invisibly, the [mem_leaks()] result.
#' @seealso [mem_peak()], [mem_leaks()].
#' @export
#' @examples
#' \donttest{
#' if (requireNamespace("testthat", quietly = TRUE)) {
#'   testthat::test_that("a small allocation stays small", {
#'     expect_mem_peak(x <- numeric(1e5), max = "50 MB")
#'   })
#'   testthat::test_that("a function that only builds and drops does not leak", {
#'     expect_no_leak(function() invisible(numeric(1e4)), n = 5, warmup = 1)
#'   })
#' }
#' }
expect_mem_peak <- function(expr, max, children = FALSE) {
  check_testthat()
  label <- gsub("\\s+", " ", paste(deparse(substitute(expr), width.cutoff = 60L), collapse = " "))
  if (nchar(label) > 60L) label <- paste0(substr(label, 1L, 57L), "...")
  max <- check_bytes_arg(max)
  check_flag(children)
  pk <- mem_peak(expr, children = children)
  measured <- if (children) pk + attr(pk, "children") else pk
  ok <- !is.na(measured) && as.numeric(measured) <= max
  msg <- if (is.na(measured)) {
    sprintf("The peak of `%s` could not be measured on this system.", label)
  } else {
    c(sprintf("`%s` peaked at %s above its start, more than the %s allowed.",
              label, format(new_mem_bytes(as.numeric(measured))), format(new_mem_bytes(max))),
      sprintf("Resident memory: baseline %s, peak %s (%s).", format(attr(pk, "baseline")),
              format(attr(pk, "peak")), peak_method_text(attr(pk, "method"))),
      if (!is.na(attr(pk, "heap"))) sprintf("R heap: peak %s above the start.", format(attr(pk, "heap"))),
      if (children) sprintf("Children: peak %s (PSS).", format(attr(pk, "children"))),
      "Next: mem_profile() of the expression shows when memory rose (add mem_mark() calls),",
      "gc_trace() which calls allocated, and mem_tree() what the results hold.")
  }
  testthat::expect(ok, paste(msg, collapse = "\n"))
  invisible(pk)
}

#' @rdname expect_mem_peak
#' @param f A function of no arguments, as [mem_leaks()] takes it.
#' @param n,warmup Calls measured and calls made first, as in [mem_leaks()].
#' @export
expect_no_leak <- function(f, n = 30, warmup = 5) {
  check_testthat()
  label <- gsub("\\s+", " ", paste(deparse(substitute(f), width.cutoff = 60L), collapse = " "))
  if (nchar(label) > 60L) label <- paste0(substr(label, 1L, 57L), "...")
  res <- mem_leaks(f, n = n, warmup = warmup)
  fit <- res$fits[res$fits$series == if (res$verdict == "native") "rss" else "heap", ]
  msg <- c(
    sprintf("`%s` leaks: %s verdict, %s per call (95%%: %s to %s) over %d calls after %d warm-up.",
            label, res$verdict, format(res$bytes_per_call), format(fit$lower), format(fit$upper),
            res$n, res$warmup),
    sprintf("Confidence: %.0f%% of pairs of runs agree.", 100 * res$confidence),
    res$advice
  )
  testthat::expect(identical(res$verdict, "none"), paste(msg, collapse = "\n"))
  invisible(res)
}

check_testthat <- function(call = sys.call(-1L)) {
  if (!requireNamespace("testthat", quietly = TRUE)) {
    mk_abort("unsupported", "The expectations need the testthat package; install it first.",
             call = call)
  }
}
