# Cases for src/gctrace.c. The pipe is fed by hand with text in the format
# R's gcinfo() reports use, so the parser is checked without a real trace.
gct_report <- c(
  "Garbage collection 12 = 8+3+1 (level 1) ... ",
  "18.3 Mbytes of cons cells used (52%)",
  "40.1 Mbytes of vectors used (61%)"
)
# The session's pipe (kept by a trace run earlier in this process) first, so
# that a case can open one of its own.
gct_open <- function() {
  ns$gctrace_shutdown()
  .Call(ns$ffi_gctrace_open, NULL)
}
gct_feed <- function(h, lines) {
  con <- file(sprintf("/dev/fd/%d", attr(h, "fd")), "w", raw = TRUE)
  on.exit(close(con))
  writeLines(lines, con)
}
cases$ffi_gctrace_open <- function() {
  h <- gct_open()
  on.exit(.Call(ns$ffi_gctrace_close, h))
  stopifnot(is.integer(attr(h, "fd")), attr(h, "fd") > 2L)
  expect_mk_error(.Call(ns$ffi_gctrace_open, NULL), "state")
}
cases$ffi_gctrace_close <- function() {
  h <- gct_open()
  stopifnot(is.null(.Call(ns$ffi_gctrace_close, h)))
  stopifnot(is.null(.Call(ns$ffi_gctrace_close, h)))   # idempotent
  expect_mk_error(.Call(ns$ffi_gctrace_close, 1L), "type")
}
cases$ffi_gctrace_records <- function() {
  h <- gct_open()
  on.exit(.Call(ns$ffi_gctrace_close, h))
  gct_feed(h, c("before", gct_report, "after"))
  r <- .Call(ns$ffi_gctrace_records, 0)
  stopifnot(identical(r$gc, 12L), identical(r$level, 1L), identical(r$level0, 8L),
            identical(r$ncells_mb, 18.3), identical(r$vcells_pct, 61L),
            attr(r, "total") == 1)
  stopifnot(length(.Call(ns$ffi_gctrace_records, 1)$gc) == 0L)
}
cases$ffi_gctrace_text <- function() {
  h <- gct_open()
  on.exit(.Call(ns$ffi_gctrace_close, h))
  gct_feed(h, c("before", gct_report, "after"))
  stopifnot(identical(.Call(ns$ffi_gctrace_text), "before\nafter\n"))
  stopifnot(identical(.Call(ns$ffi_gctrace_text), ""))
}
cases$ffi_gctrace_reset <- function() {
  h <- gct_open()
  on.exit(.Call(ns$ffi_gctrace_close, h))
  gct_feed(h, c("before", gct_report, "after"))
  stopifnot(isTRUE(.Call(ns$ffi_gctrace_reset, h)))
  stopifnot(attr(.Call(ns$ffi_gctrace_records, 0), "total") == 0,
            identical(.Call(ns$ffi_gctrace_text), ""))
  gct_feed(h, gct_report)
  stopifnot(attr(.Call(ns$ffi_gctrace_records, 0), "total") == 1)
  expect_mk_error(.Call(ns$ffi_gctrace_reset, 1L), "type")
}
cases$ffi_gctrace_arm <- function() {
  .Call(ns$ffi_gctrace_arm, NULL, TRUE)
  on.exit(.Call(ns$ffi_gctrace_disarm))
  expect_mk_error(.Call(ns$ffi_gctrace_arm, NULL, TRUE), "state")
  f <- function() gc(full = FALSE)
  f()
  cb <- .Call(ns$ffi_gctrace_callbacks, 0)
  stopifnot(attr(cb, "total") >= 1)
}
cases$ffi_gctrace_callbacks <- function() {
  .Call(ns$ffi_gctrace_arm, NULL, TRUE)
  on.exit(.Call(ns$ffi_gctrace_disarm))
  f <- function() gc(full = FALSE)
  f()
  cb <- .Call(ns$ffi_gctrace_callbacks, 0)
  n <- length(cb$stack)
  stopifnot(n >= 1L, is.list(cb$stack), is.double(cb$mono),
            identical(cb$stack[[1L]][[length(cb$stack[[1L]])]], quote(gc(full = FALSE))))
}
cases$ffi_gctrace_disarm <- function() {
  .Call(ns$ffi_gctrace_arm, NULL, TRUE)
  stopifnot(is.null(.Call(ns$ffi_gctrace_disarm)))
  stopifnot(is.null(.Call(ns$ffi_gctrace_disarm)))   # idempotent
  gc(full = FALSE)
  stopifnot(length(.Call(ns$ffi_gctrace_callbacks, 0)$stack) == 0L)
}
cases$ffi_gctrace_adopt <- function() {
  h <- gct_open()
  on.exit(.Call(ns$ffi_gctrace_close, h))
  con <- file(sprintf("/dev/fd/%d", attr(h, "fd")), "w", raw = TRUE)
  on.exit(close(con), add = TRUE, after = FALSE)
  stopifnot(identical(.Call(ns$ffi_gctrace_adopt, h), 1L))
  expect_mk_error(.Call(ns$ffi_gctrace_adopt, 1L), "type")
}
cases$ffi_gctrace_sync <- function() {
  .Call(ns$ffi_gctrace_arm, NULL, TRUE)
  on.exit(.Call(ns$ffi_gctrace_disarm))
  s0 <- .Call(ns$ffi_gctrace_sync, 0L)
  # Collections made in g() (every allocation collects under gctorture)
  # have their callbacks run by the sync, each stack cut to its first frame.
  g <- function() {
    x <- numeric(10)
    .Call(ns$ffi_gctrace_sync, 1L)
  }
  f <- function() g()
  s <- f()
  cb <- .Call(ns$ffi_gctrace_callbacks, s0[[2L]])
  n <- length(cb$stack)
  stopifnot(is.double(s), length(s) == 2L, s[[2L]] == attr(cb, "total"), n >= 1L,
            length(cb$stack[[n]]) <= 1L)
}
