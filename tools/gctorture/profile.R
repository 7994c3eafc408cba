# Cases for src/sampler.c.
cases$ffi_sampler_start <- function() {
  s <- .Call(ns$ffi_sampler_start, 0.001)
  stopifnot(typeof(s) == "externalptr")
  r <- .Call(ns$ffi_sampler_stop, s)
  stopifnot(is.double(r$time), length(r$time) >= 1L, identical(r$truncated, FALSE))
  expect_mk_error(.Call(ns$ffi_sampler_start, -1), "argument")
}
cases$ffi_sampler_stop <- function() {
  s <- .Call(ns$ffi_sampler_start, 0.005)
  r <- .Call(ns$ffi_sampler_stop, s)
  stopifnot(identical(names(r), c("time", "rss", "truncated")),
            length(r$time) == length(r$rss), all(diff(r$time) >= 0),
            all(is.na(r$rss) | r$rss > 0))
  expect_mk_error(.Call(ns$ffi_sampler_stop, s), "state")
  expect_mk_error(.Call(ns$ffi_sampler_stop, 1), "type")
  # A sampler never stopped is finalized by the collector.
  s <- .Call(ns$ffi_sampler_start, 0.001)
  rm(s)
  gc()
}
cases$ffi_sampler_peak <- function() {
  p <- .Call(ns$ffi_sampler_peak)
  stopifnot(identical(names(p), c("bytes", "source")), is.double(p$bytes),
            is.na(p$bytes) || p$bytes > 0, p$source %in% c("VmHWM", "ru_maxrss", NA))
}
cases$ffi_sampler_reset <- function() {
  ok <- .Call(ns$ffi_sampler_reset)
  stopifnot(is.logical(ok), length(ok) == 1L, !is.na(ok))
}
