# Cases for src/heap.c and src/offload.c.
cases$ffi_heap_info <- function() {
  h <- .Call(ns$ffi_heap_info)
  stopifnot(is.double(h), length(h) == 9L, h[[9L]] %in% 0:3)
}
cases$ffi_heap_mallopt <- function() {
  if (.Call(ns$ffi_heap_info)[[9L]] %in% 1:2) {
    stopifnot(isTRUE(.Call(ns$ffi_heap_mallopt, 2L, 131072)))
    expect_mk_error(.Call(ns$ffi_heap_mallopt, 2L, -1), "argument")
  } else {
    expect_mk_error(.Call(ns$ffi_heap_mallopt, 2L, 131072), "unsupported")
  }
}
cases$ffi_offload_probe <- function() {
  e <- new.env()
  marker <- new.env()
  delayedAssign("lazy", stop("never forced"), eval.env = marker, assign.env = e)
  e$plain <- 1:3
  res <- .Call(ns$ffi_offload_probe, e, c("plain", "lazy", "absent"))
  stopifnot(is.list(res), length(res) == 3L, is.null(res[[1L]]),
            identical(res[[2L]], marker), is.null(res[[3L]]))
}
