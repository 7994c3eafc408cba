# Cases for src/size.c.
cases$ffi_size_cells <- function() {
  x <- list(runif(5), "memkit-gct", list(1:3))
  r <- .Call(ns$ffi_size_cells, list(x, x))
  # list 4 + runif 8 + STRSXP 1 + CHARSXP 2 + list 1 + compact 1:3 (data1: 3 doubles) 4
  stopifnot(is.double(r), length(r) == 4L, r[[1L]] == 7, r[[2L]] == 20)
  e <- new.env(parent = emptyenv())
  e$self <- e
  r <- .Call(ns$ffi_size_cells, list(e))
  stopifnot(r[[1L]] >= 3)
  # A large hash table (R < 4.6 reads its cells at once): an unboxed value
  # (the cells refused, then looked up and boxed), an active binding, a
  # promise; the same again once boxed, and a twin that never was unboxed.
  big <- function(unboxed) {
    e <- new.env(parent = emptyenv(), size = 300L)
    for (k in 1:20) assign(sprintf("v%d", k), k + 0.5, envir = e)
    assign("i", 0L, envir = e)
    if (unboxed) eval(compiler::compile(quote(for (i in 1:10) NULL)), e) else assign("i", 5L + 5L, envir = e)
    delayedAssign("p", stop("forced"), assign.env = e)
    makeActiveBinding("a", function() stop("called"), e)
    e
  }
  environment(big) <- globalenv()   # where walks stop: not this changing frame
  e1 <- big(TRUE)
  e2 <- big(FALSE)
  r1 <- .Call(ns$ffi_size_cells, list(e1))
  stopifnot(identical(r1, .Call(ns$ffi_size_cells, list(e1))),
            identical(r1, .Call(ns$ffi_size_cells, list(e2))), identical(e1$i, 10L))
}
cases$ffi_size_each <- function() {
  x <- runif(5)
  r <- .Call(ns$ffi_size_each, list(x, list(x, x), 1:1e6))
  stopifnot(identical(r, c(112, 112 + 48 + 16, 56 + 48 + 32)))
}
cases$ffi_size_stats <- function() {
  r <- .Call(ns$ffi_size_stats, list(list(1, 2, list(3))))
  stopifnot(is.double(r), length(r) == 3L, r[[1L]] == 5, r[[2L]] > 0)
}
cases$ffi_size_tree <- function() {
  x <- list(a = runif(10), b = list(c = "memkit-gct"), f = stats::as.formula("y ~ x", env = new.env(parent = emptyenv())))
  r <- .Call(ns$ffi_size_tree, x, 3L, 0)
  stopifnot(is.list(r), length(r$total) >= 5L, is.na(r$parent[[1L]]),
            r$total[[1L]] == .Call(ns$ffi_size_cells, list(x))[[3L]],
            all(r$self <= r$total))
}
cases$ffi_size_by_type <- function() {
  x <- list(a = runif(10), f = factor(c("memkit-u", "memkit-v")))
  r <- .Call(ns$ffi_size_by_type, x)
  stopifnot(sum(r$bytes) == .Call(ns$ffi_size_cells, list(x))[[3L]],
            "factor" %in% r$class, sum(r$count) == .Call(ns$ffi_size_cells, list(x))[[1L]])
}
