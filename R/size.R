#' Object sizes that count shared memory once
#'
#' `mem_size()` gives the memory used by all its arguments together, every
#' node counted once however many times it is referenced. `mem_sizes()` gives
#' each argument's own size. `mem_cells()` gives the cells that [gc()] counts.
#'
#' Sizes follow R's real allocation rules: a 56-byte node for each
#' non-vector object, a 48-byte header plus data in size classes of 8, 16,
#' 32, 64 or 128 bytes for small vectors and in 8-byte units for large ones,
#' the trailing NUL of every string. They include what an object keeps alive
#' that [object.size()] ignores: environments of closures and formulas (with
#' their bindings, cells and hash tables), promises (never forced), attributes,
#' bytecode, the protected value and tag of external pointers. Compact
#' ('ALTREP') vectors count as their node plus their internal data, and are
#' never expanded: `mem_size(1:1e6)` is a few hundred bytes.
#'
#' Never counted, because R never frees them: the global, base and empty
#' environments, namespaces, environments on the search path, symbols,
#' `NA_character_`, `""`, primitive functions, the shared `TRUE`, `FALSE` and
#' `NA` scalars, and the classes of compact vectors. Memory behind an external
#' pointer (a database connection, a file mapping) is invisible to R and not
#' counted.
#'
#' @param ... Objects to measure.
#' @return `mem_size()`: a single [mem_bytes]. `mem_sizes()`: a named
#'   [mem_bytes] vector, one element per argument. `mem_cells()`: a double
#'   vector `c(ncells = , vcells = )`: for an object whose whole graph was
#'   freshly allocated, the change in `gc()`'s "used" Ncells and Vcells when it
#'   is created or freed.
#' @seealso [mem_tree()] for where the memory is, [mem_by_type()] for what
#'   it is made of.
#' @export
#' @examples
#' x <- runif(1e4)
#' mem_size(x)
#' mem_size(list(x, x, x))          # x is counted once
#' mem_sizes(x, list(x, x), 1:1e6)  # 1:1e6 stays compact
#' mem_size(x, list(x, x))          # together: x once
#'
#' f <- local({
#'   big <- runif(1e5)
#'   function() length(big)
#' })
#' mem_size(f)                      # the captured environment counts
#'
#' mem_cells(x)
mem_size <- function(...) {
  new_mem_bytes(.Call(ffi_size_cells, list(...))[[3L]])
}

#' @rdname mem_size
#' @export
mem_sizes <- function(...) {
  objs <- list(...)
  out <- .Call(ffi_size_each, objs)
  names(out) <- dots_names(objs, substitute(list(...)))
  new_mem_bytes(out)
}

#' @rdname mem_size
#' @export
mem_cells <- function(...) {
  res <- .Call(ffi_size_cells, list(...))
  c(ncells = res[[1L]], vcells = res[[2L]])
}

# Names for the arguments of mem_sizes(): the given name, else the
# expression, deparsed short.
dots_names <- function(objs, exprs) {
  nms <- names(objs)
  if (is.null(nms)) nms <- rep("", length(objs))
  exprs <- as.list(exprs)[-1L]
  for (i in which(nms == "")) {
    nms[[i]] <- paste(deparse(exprs[[i]], width.cutoff = 60L, nlines = 1L), collapse = "")
  }
  nms
}
