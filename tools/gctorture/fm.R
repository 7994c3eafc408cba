# Cases for src/fm.c and src/fm_altrep.c (file-backed matrices). Each makes a
# small file in tempdir() and removes it.
fm_tmp <- function() tempfile(fileext = ".fm")
fm_small <- function(path = fm_tmp()) {
  x <- memkit::as_fm(matrix(as.double(1:6), 2, 3), path)
  list(x = x, path = path)
}
cases$ffi_fm_create <- function() {
  path <- fm_tmp()
  tmp <- paste0(path, ".tmp")
  dn <- list(c("a", "b"), NULL)
  x <- .Call(ns$ffi_fm_create, path, tmp, "integer", 2, 3, dn)
  stopifnot(is.matrix(x), identical(typeof(x), "integer"), identical(dim(x), c(2L, 3L)),
            identical(dimnames(x), dn), all(x == 0L))
  # The ALTREP methods: Duplicate (private copy and in-memory copy),
  # serialization, Extract_subset, Get_region.
  y <- x
  y[1, 1] <- 5L
  stopifnot(identical(x[2, 1], c(b = 0L)), identical(y[1, 1], c(a = 5L)),
            identical(x[c(1, 6)], c(0L, 0L)))
  file.rename(tmp, path)
  z <- unserialize(serialize(x, NULL))
  stopifnot(identical(z[, ], x[, ]))
  r <- memkit::fm_open(path)
  r2 <- r
  r2[2, 2] <- 1L
  stopifnot(identical(r2[2, 2], c(b = 1L)), identical(r[2, 2], c(b = 0L)),
            identical(unserialize(serialize(r2, NULL))[, ], r2[, ]))
  unlink(path)
  expect_mk_error(.Call(ns$ffi_fm_create, path, tmp, "complex", 2, 3, NULL), "type")
}
cases$ffi_fm_header <- function() {
  s <- fm_small()
  h <- .Call(ns$ffi_fm_header, s$path)
  stopifnot(identical(h$type, "double"), h$nrow == 2, h$ncol == 3, h$offset == 4096)
  unlink(s$path)
  expect_mk_error(.Call(ns$ffi_fm_header, s$path), "file")
}
cases$ffi_fm_open <- function() {
  s <- fm_small()
  h <- .Call(ns$ffi_fm_header, s$path)
  x <- .Call(ns$ffi_fm_open, s$path, "r", "double", 2, 3, h$offset, TRUE, h$checksum, NULL)
  stopifnot(identical(x[, ], matrix(as.double(1:6), 2, 3)))
  y <- .Call(ns$ffi_fm_open, s$path, "r", "double", 2, 3, 4096, FALSE, NULL, list(NULL, c("a", "b", "c")))
  stopifnot(identical(colnames(y), c("a", "b", "c")), identical(sum(y), 21))
  expect_mk_error(.Call(ns$ffi_fm_open, s$path, "r", "double", 2, 3, h$offset, TRUE, "0", NULL), "format")
  unlink(s$path)
}
cases$ffi_fm_fill <- function() {
  s <- fm_small()
  .Call(ns$ffi_fm_fill, s$x, 9, 2, 0, 3)
  .Call(ns$ffi_fm_fill, s$x, c(7, 8), 0, 0, 2)
  stopifnot(identical(as.vector(s$x[, ]), c(7, 8, 9, 9, 9, 6)))
  expect_mk_error(.Call(ns$ffi_fm_fill, s$x, 1, 6, 0, 1), "argument")
  unlink(s$path)
}
cases$ffi_fm_write <- function() {
  s <- fm_small()
  .Call(ns$ffi_fm_write, s$x, c(0, -1), c(2, 1), 3)
  .Call(ns$ffi_fm_write, s$x, c(5, 6), NULL, 1)
  stopifnot(identical(as.vector(s$x[, ]), c(5, 6, 3, 4, -1, 0)))
  expect_mk_error(.Call(ns$ffi_fm_write, s$x, 1, 3, NULL), "argument")
  unlink(s$path)
}
cases$ffi_fm_read <- function() {
  s <- fm_small()
  stopifnot(identical(.Call(ns$ffi_fm_read, s$x, NULL, c(3, 1)), matrix(c(5, 6, 1, 2), 2)),
            identical(.Call(ns$ffi_fm_read, s$x, 2, NULL), matrix(c(2, 4, 6), 1)))
  expect_mk_error(.Call(ns$ffi_fm_read, matrix(0), NULL, NULL), "type")
  unlink(s$path)
}
cases$ffi_fm_read_block <- function() {
  s <- fm_small()
  stopifnot(identical(.Call(ns$ffi_fm_read_block, s$x, 2L, 1, 2), matrix(c(3, 4, 5, 6), 2)),
            identical(.Call(ns$ffi_fm_read_block, s$x, 1L, 1, 1), matrix(c(2, 4, 6), 1)))
  unlink(s$path)
}
cases$ffi_fm_flush <- function() {
  s <- fm_small()
  stopifnot(isTRUE(.Call(ns$ffi_fm_flush, s$x)),
            isFALSE(.Call(ns$ffi_fm_flush, memkit::fm_open(s$path))))
  unlink(s$path)
}
cases$ffi_fm_info <- function() {
  s <- fm_small()
  i <- .Call(ns$ffi_fm_info, s$x)
  stopifnot(identical(i$state$path, normalizePath(s$path)), i$file_size == 4096 + 48,
            i$resident >= 0)
  unlink(s$path)
}
cases$ffi_fm_is <- function() {
  s <- fm_small()
  stopifnot(isTRUE(.Call(ns$ffi_fm_is, s$x)), isFALSE(.Call(ns$ffi_fm_is, 1)))
  unlink(s$path)
}
