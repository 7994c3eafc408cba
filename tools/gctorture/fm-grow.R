# Cases for src/fm_append.c and src/fm_import.c (#18). Each makes small files
# in tempdir() and removes them.
grow_small <- function() {
  path <- tempfile(fileext = ".fm")
  x <- memkit::as_fm(matrix(as.double(1:6), 2, 3, dimnames = list(NULL, c("a", "b", "c"))), path)
  list(x = x, path = path)
}
cases$ffi_fm_grow_begin <- function() {
  s <- grow_small()
  dn <- list(NULL, c("a", "b", "c", "d"))
  h <- .Call(ns$ffi_fm_grow_begin, s$x, 4, dn)
  stopifnot(typeof(h) == "externalptr", file.size(s$path) == 4096 + 8 * 8)
  .Call(ns$ffi_fm_grow_abort, h)
  stopifnot(file.size(s$path) == 4096 + 6 * 8)
  expect_mk_error(.Call(ns$ffi_fm_grow_begin, s$x, 4, list(NULL, "a")), "argument")
  expect_mk_error(.Call(ns$ffi_fm_grow_begin, s$x, 2, NULL), "argument")
  stopifnot(is.null(.Call(ns$ffi_fm_grow_begin, s$x, 4, list(NULL, c("a", "b", "c", strrep("d", 5000))))))
  unlink(s$path)
}
cases$ffi_fm_grow_write <- function() {
  s <- grow_small()
  h <- .Call(ns$ffi_fm_grow_begin, s$x, 4, NULL)
  .Call(ns$ffi_fm_grow_write, h, c(7, 8), 6, 0, 2)
  expect_mk_error(.Call(ns$ffi_fm_grow_write, h, c(7, 8), 0, 0, 2), "argument")
  expect_mk_error(.Call(ns$ffi_fm_grow_write, h, 1:2, 6, 0, 2), "type")
  .Call(ns$ffi_fm_grow_abort, h)
  expect_mk_error(.Call(ns$ffi_fm_grow_write, h, c(7, 8), 6, 0, 2), "state")
  unlink(s$path)
}
cases$ffi_fm_grow_commit <- function() {
  s <- grow_small()
  dn <- list(NULL, c("a", "b", "c", "d"))
  h <- .Call(ns$ffi_fm_grow_begin, s$x, 4, dn)
  .Call(ns$ffi_fm_grow_write, h, c(7, 8), 6, 0, 2)
  sum <- .Call(ns$ffi_fm_grow_commit, h, dn)
  stopifnot(is.character(sum), nchar(sum) == 16)
  y <- memkit::fm_open(s$path)
  stopifnot(identical(y[, 4], c(7, 8)), identical(colnames(y), dn[[2]]))
  expect_mk_error(.Call(ns$ffi_fm_grow_commit, h, dn), "state")
  unlink(s$path)
}
cases$ffi_fm_grow_abort <- function() {
  stopifnot(is.null(.Call(ns$ffi_fm_grow_abort, NULL)))
}
cases$ffi_fm_pwrite <- function() {
  s <- grow_small()
  .Call(ns$ffi_fm_pwrite, s$x, c(9, 10), 4, 0, 2)
  stopifnot(identical(as.vector(memkit::fm_open(s$path)[, 3]), c(9, 10)))
  expect_mk_error(.Call(ns$ffi_fm_pwrite, s$x, c(9, 10), 5, 0, 2), "argument")
  expect_mk_error(.Call(ns$ffi_fm_pwrite, memkit::fm_open(s$path), c(9, 10), 0, 0, 2), "state")
  unlink(s$path)
}
imp_raw <- function(lines) charToRaw(paste0(paste(lines, collapse = "\n"), "\n"))
cases$ffi_fm_import_line <- function() {
  b <- imp_raw(c("skip me", "a,\"b c\",d", "1,2,3"))
  r <- .Call(ns$ffi_fm_import_line, b, 0, 1, TRUE, ",", "\"")
  stopifnot(identical(r[[1]], c("a", "b c", "d")), r[[2]] == 18)
  stopifnot(is.null(.Call(ns$ffi_fm_import_line, charToRaw("a,b"), 0, 0, FALSE, ",", "\"")))
  expect_mk_error(.Call(ns$ffi_fm_import_line, b, 0, 0, TRUE, ",,", "\""), "argument")
}
cases$ffi_fm_import_count <- function() {
  state <- 0L
  n <- .Call(ns$ffi_fm_import_count, imp_raw(c("1,2", "", "3,4")), state, FALSE) +
    .Call(ns$ffi_fm_import_count, charToRaw("5,6"), state, TRUE)
  stopifnot(n == 3)
}
cases$ffi_fm_import_join <- function() {
  stopifnot(identical(.Call(ns$ffi_fm_import_join, as.raw(1:5), 3, as.raw(9)), as.raw(c(4, 5, 9))))
  expect_mk_error(.Call(ns$ffi_fm_import_join, as.raw(1:5), 9, raw()), "argument")
}
cases$ffi_fm_import_parse <- function() {
  b <- imp_raw(c("1,x,2.5", "", "NA,\"y\",-1e3", "3,z,inf"))
  r <- .Call(ns$ffi_fm_import_parse, b, 0, TRUE, c(1L, 2L, 1L), ",", "\"", "NA", 10, 2)
  stopifnot(r[[3]] == 3, r[[5]] == 4, is.null(r[[6]]),
            identical(r[[1]][, 1], c(1, NA, 3)), identical(r[[1]][, 3], c(2.5, -1000, Inf)),
            identical(r[[2]][[1]], c("x", "y", "z")))
  bad <- .Call(ns$ffi_fm_import_parse, imp_raw(c("1,2", "3,q")), 0, TRUE, c(1L, 1L), ",", "\"", "NA", 10, 2)
  stopifnot(identical(bad[[6]][[1]], 3), identical(bad[[6]][[2]], 2L))
  # Two threads (rows >= 20000).
  many <- imp_raw(sprintf("%d,%d", 1:20001, 1:20001))
  r2 <- .Call(ns$ffi_fm_import_parse, many, 0, TRUE, c(1L, 1L), ",", "\"", "NA", 1e5, 1)
  stopifnot(r2[[3]] == 20001, identical(r2[[1]][20001, 2], 20001))
  expect_mk_error(.Call(ns$ffi_fm_import_parse, b, 0, TRUE, c(5L), ",", "\"", "NA", 10, 2), "argument")
}
