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
imp_file <- function(lines) {
  f <- tempfile(fileext = ".csv")
  writeBin(charToRaw(paste0(paste(lines, collapse = "\n"), "\n")), f)
  f
}
# A reader over a plain file (C reads it) or one fed by R (compressed = TRUE).
imp_reader <- function(lines, fed = FALSE) {
  f <- imp_file(lines)
  st <- .Call(ns$ffi_fm_import_open, f, fed)
  if (fed) {
    .Call(ns$ffi_fm_import_fill, st, readBin(f, "raw", file.size(f)), TRUE, 1)
  } else {
    .Call(ns$ffi_fm_import_fill, st, NULL, FALSE, 1e6)
  }
  unlink(f)
  st
}
cases$ffi_fm_import_open <- function() {
  st <- imp_reader(c("a,b", "1,2"))
  stopifnot(typeof(st) == "externalptr")
  expect_mk_error(.Call(ns$ffi_fm_import_open, file.path(tempdir(), "no-such.csv"), FALSE), "file")
  expect_mk_error(.Call(ns$ffi_fm_import_open, 1, FALSE), "argument")
}
cases$ffi_fm_import_close <- function() {
  st <- imp_reader(c("a,b", "1,2"))
  .Call(ns$ffi_fm_import_close, st)
  expect_mk_error(.Call(ns$ffi_fm_import_count, st), "state")
}
cases$ffi_fm_import_fill <- function() {
  f <- imp_file(c("a,b", "1,2"))
  st <- .Call(ns$ffi_fm_import_open, f, FALSE)
  stopifnot(isFALSE(.Call(ns$ffi_fm_import_fill, st, NULL, FALSE, 2)),
            isTRUE(.Call(ns$ffi_fm_import_fill, st, NULL, FALSE, 100)))
  fed <- .Call(ns$ffi_fm_import_open, f, TRUE)
  stopifnot(isFALSE(.Call(ns$ffi_fm_import_fill, fed, charToRaw("a,"), FALSE, 1)))
  expect_mk_error(.Call(ns$ffi_fm_import_fill, fed, 1, FALSE, 1), "argument")
  unlink(f)
}
cases$ffi_fm_import_line <- function() {
  st <- imp_reader(c("skip me", "a,\"b c\",d", "1,2,3"))
  stopifnot(identical(.Call(ns$ffi_fm_import_line, st, 1, ",", "\""), c("a", "b c", "d")))
  stopifnot(isFALSE(.Call(ns$ffi_fm_import_line, st, 1, ",", "\"")))
  part <- .Call(ns$ffi_fm_import_open, tempfile(), TRUE)
  .Call(ns$ffi_fm_import_fill, part, charToRaw("a,b"), FALSE, 1)
  stopifnot(is.null(.Call(ns$ffi_fm_import_line, part, 0, ",", "\"")))
  expect_mk_error(.Call(ns$ffi_fm_import_line, st, 0, ",,", "\""), "argument")
}
cases$ffi_fm_import_count <- function() {
  stopifnot(.Call(ns$ffi_fm_import_count, imp_reader(c("1,2", "", "3,4", "5,6"))) == 3)
  fed <- .Call(ns$ffi_fm_import_open, tempfile(), TRUE)
  .Call(ns$ffi_fm_import_fill, fed, charToRaw("1,2\n\n3,"), FALSE, 1)
  n <- .Call(ns$ffi_fm_import_count, fed)
  .Call(ns$ffi_fm_import_fill, fed, charToRaw("4"), TRUE, 1)
  stopifnot(n + .Call(ns$ffi_fm_import_count, fed) == 2)
}
cases$ffi_fm_import_parse <- function() {
  lines <- c("1,x,2.5", "", "NA,\"y\",-1e3", "3,z,inf")
  for (fed in c(FALSE, TRUE)) {
    r <- .Call(ns$ffi_fm_import_parse, imp_reader(lines, fed), c(1L, 2L, 1L), ",", "\"", "NA", 10, 2,
               NULL, 0)
    stopifnot(r[[3]] == 3, r[[4]] == 4, is.null(r[[5]]),
              identical(r[[1]][, 1], c(1, NA, 3)), identical(r[[1]][, 3], c(2.5, -1000, Inf)),
              identical(r[[2]][[1]], c("x", "y", "z")))
  }
  bad <- .Call(ns$ffi_fm_import_parse, imp_reader(c("1,2", "3,q")), c(1L, 1L), ",", "\"", "NA", 10, 2,
               NULL, 0)
  stopifnot(identical(bad[[5]][[1]], 3), identical(bad[[5]][[2]], 2L))
  # Two threads (rows >= 20000), written into a matrix.
  path <- tempfile(fileext = ".fm")
  out <- memkit::fm_create(path, 20003, 2)
  r2 <- .Call(ns$ffi_fm_import_parse, imp_reader(sprintf("%d,%d", 1:20001, 1:20001)), c(1L, 1L), ",",
              "\"", "NA", 1e5, 1, out, 2)
  stopifnot(r2[[3]] == 20001, is.null(r2[[1]]), identical(out[20003, 2], 20001), identical(out[3, 1], 1))
  expect_mk_error(.Call(ns$ffi_fm_import_parse, imp_reader(lines), c(1L, 1L), ",", "\"", "NA", 1e5, 1,
                        out, 20002), "argument")
  expect_mk_error(.Call(ns$ffi_fm_import_parse, imp_reader(lines), c(5L), ",", "\"", "NA", 10, 2,
                        NULL, 0), "argument")
  rm(out)
  unlink(path)
}
