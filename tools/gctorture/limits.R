# Cases for src/limits.c, src/watch.c, src/children.c and the sampler's
# extensions in src/sampler.c.
cases$ffi_sampler_start_ex <- function() {
  # A watch that never fires, and child processes, on a running sampler.
  kids <- if (Sys.info()[["sysname"]] == "Linux") 0.01 else NULL
  s <- .Call(ns$ffi_sampler_start_ex, 0.001, list(1e15, NULL, NULL), kids)
  Sys.sleep(0.05)
  h <- .Call(ns$ffi_sampler_halt, s)
  stopifnot(identical(h$watch$fired, FALSE), h$watch$peak > 0)
  if (!is.null(kids)) {
    stopifnot(length(h$children$time) >= 1L, is.data.frame(as.data.frame(h$children$procs)))
  }
  r <- .Call(ns$ffi_sampler_stop, s)
  stopifnot(length(r$time) >= 1L)
  # Bad watch files are file errors; the half-built sampler is finalized.
  expect_mk_error(.Call(ns$ffi_sampler_start_ex, 0.01, list(1, "/nonexistent/memory.current", NULL), NULL),
                  "file")
  gc()
}
cases$ffi_sampler_halt <- function() {
  s <- .Call(ns$ffi_sampler_start, 0.001)
  h <- .Call(ns$ffi_sampler_halt, s)
  stopifnot(is.null(h$watch), is.null(h$children))
  h <- .Call(ns$ffi_sampler_halt, s) # twice is fine
  .Call(ns$ffi_sampler_stop, s)
  expect_mk_error(.Call(ns$ffi_sampler_halt, s), "state")
  expect_mk_error(.Call(ns$ffi_sampler_halt, 1), "type")
}
cases$ffi_watch_drain <- function() {
  stopifnot(is.null(.Call(ns$ffi_watch_drain)))
}
cases$ffi_limits_rlimit <- function() {
  r <- .Call(ns$ffi_limits_rlimit)
  stopifnot(identical(names(r), c("as", "data")), is.double(r))
}
cases$ffi_limits_system <- function() {
  r <- .Call(ns$ffi_limits_system)
  stopifnot(identical(names(r), c("total", "available", "swap_total", "swap_free", "job_limit", "job_used")))
}
