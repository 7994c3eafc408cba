# Cases for src/utils.c.
cases$ffi_utils_error <- function() {
  e <- expect_mk_error(.Call(ns$ffi_utils_error, "file", "x", 2L, "/p"), "file")
  stopifnot(identical(e$errno, 2L), identical(e$path, "/p"))
  expect_mk_error(.Call(ns$ffi_utils_error, "type", "y", NA_integer_, NA_character_), "type")
}
cases$ffi_utils_now <- function() {
  a <- .Call(ns$ffi_utils_now)
  b <- .Call(ns$ffi_utils_now)
  stopifnot(is.double(a), length(a) == 1L, b >= a)
}
cases$ffi_utils_rss <- function() {
  r <- .Call(ns$ffi_utils_rss)
  stopifnot(is.double(r), length(r) == 1L, is.na(r) || r > 0)
}
cases$ffi_utils_trim <- function() {
  r <- .Call(ns$ffi_utils_trim)
  stopifnot(is.logical(r), length(r) == 1L)
}
