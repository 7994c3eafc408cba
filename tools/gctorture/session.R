# Cases for src/retained.c.
session_env <- function() {
  e <- new.env(parent = emptyenv())
  e$a <- runif(10)
  e$b <- e$a
  e$c <- list(runif(3), "x")
  delayedAssign("p", stop("forced"), eval.env = emptyenv(), assign.env = e)
  makeActiveBinding("act", as.function(alist(stop("called")), envir = emptyenv()), e)
  e
}
cases$ffi_retained_size <- function() {
  e <- session_env()
  # Two binding cells and the 10-double vector (16 Vcells, its size class).
  r <- .Call(ns$ffi_retained_size, e, c("a", "b"), list(e))
  stopifnot(r[[1L]] == 3, r[[2L]] == 16, r[[3L]] == 2 * 56 + 48 + 8 * 16)
  r <- .Call(ns$ffi_retained_size, e, "a", list(e))
  stopifnot(r[[1L]] == 1, r[[2L]] == 0)
  expect_mk_error(.Call(ns$ffi_retained_size, baseenv(), "pi", list()), "argument")
}
cases$ffi_retained_ls <- function() {
  e <- session_env()
  r <- .Call(ns$ffi_retained_ls, e, list(e))
  nms <- r[[1L]]
  stopifnot(setequal(nms, c("a", "b", "c", "p", "act")),
            identical(r[[2L]][match(c("p", "act"), nms)], c("promise", "active")),
            length(r[[5L]]) == 1L,
            setequal(nms[r[[5L]][[1L]]], c("a", "b")),
            # cell, list and runif(3); "x" is the constant in this code.
            r[[4L]][match("c", nms), 1L] == 3)
}
cases$ffi_retained_hash <- function() {
  x <- runif(20)
  r <- .Call(ns$ffi_retained_hash, list(x, x + 0, 1:3 + 0L, x, 1:5, letters))
  g <- r[[1L]]
  stopifnot(g[[1L]] == g[[2L]], g[[1L]] == g[[4L]], g[[1L]] != g[[3L]], is.na(g[[5L]]),
            identical(r[[3L]][c(1L, 2L, 4L)], c(1L, 2L, 1L)), r[[2L]][[1L]] == 48 + 8 * 20)
}
cases$ffi_retained_vectors <- function() {
  e <- session_env()
  r <- .Call(ns$ffi_retained_vectors, e, 100)
  # e$a reached twice (a and b); promise and active binding never touched.
  stopifnot(length(r$vecs) == 2L, identical(r$vecs[[1L]], e$a),
            all(r$kind[r$path] == 4L), setequal(r$name[r$path], c("a", "b")))
}
