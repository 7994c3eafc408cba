#' Add columns or rows to a file-backed matrix
#'
#' `fm_append(X, cols = )` grows the file in place: the matrix is stored
#' column by column, so new columns go after the last one, and only their
#' bytes are written, whatever the size of `X`. `fm_append(X, rows = )`
#' writes a new file with the rows added (every column moves), under a
#' temporary name next to the old one, and renames it into place when it is
#' complete.
#'
#' Either way the old matrix stays readable at every moment, also if the
#' process is killed in the middle or the disk fills: new columns are written
#' past the end of the old data and the file's header, which says how many
#' columns it holds, is rewritten last, in one write; a new file for rows
#' replaces the old one only once it is complete (a killed process may leave
#' the temporary file, named `.<name>.tmp-*`, behind). Another process that
#' has the file open keeps seeing the old matrix (its dimensions and data);
#' one that opens the file while the header is being written gets an error of
#' class `memkit_error_format` and can simply open it again.
#'
#' Column names: when `X` or the new part has names, the result has them, as
#' [cbind()] and [rbind()] give them (`""` for the unnamed ones). New column
#' names must fit in the room left in the file's header (about 4 KiB in all,
#' more if the file was created with long names); if they do not, the file is
#' rewritten as for rows, which takes longer but gives the same result.
#'
#' @param x A file-backed matrix open in mode `"rw"` (from [fm_create()],
#'   [as_fm()], [fm_import()] or `fm_open(mode = "rw")`), of a memkit file
#'   (headerless files can't grow).
#' @param cols New columns: a matrix (ordinary or file-backed) with
#'   `nrow(x)` rows, or a vector of `nrow(x)` values (one column). Coerced to
#'   the type of `x`.
#' @param rows New rows: a matrix with `ncol(x)` columns, or a vector of
#'   `ncol(x)` values (one row). Give `cols` or `rows`, not both.
#' @return The grown matrix, open in mode `"rw"`. Use it from now on: after a
#'   row append the old object still maps the old file, which is no longer at
#'   `path`.
#' @seealso [fm_create()], [fm_import()]; `vignette("file-matrices")`.
#' @export
#' @examples
#' path <- tempfile(fileext = ".fm")
#' X <- as_fm(matrix(1:6, 3, dimnames = list(NULL, c("a", "b"))), path)
#' X <- fm_append(X, cols = cbind(c = 7:9))
#' X <- fm_append(X, rows = c(0L, 0L, 0L))
#' X
#' unlink(path)
fm_append <- function(x, cols = NULL, rows = NULL) {
  check_is_fm(x)
  info <- fm_info(x)
  if (info$mode != "rw") {
    mk_abort("state", sprintf(
      "The matrix in '%s' is %s; open it with `mode = \"rw\"` to grow the file.", info$path,
      if (info$mode == "r") "open read-only" else "a private copy, not the file"))
  }
  if (!info$header) {
    mk_abort("argument", sprintf(
      "'%s' is a headerless file; only memkit files grow. Convert it first with as_fm().", info$path))
  }
  if (is.null(cols) == is.null(rows)) {
    mk_abort("argument", "Give either `cols` or `rows` (one of them, not both).")
  }
  type <- info$type
  n <- info$nrow
  p <- info$ncol
  dn <- dimnames(x)
  if (!is.null(cols)) {
    cols <- append_part(cols, n, "cols", "rows", "nrow(x)", type, by_col = TRUE)
    k <- as.double(ncol(cols))
    if (k == 0) return(x)
    new_dn <- grown_dimnames(dn, dimnames(cols), 2L, p, k)
    check_dim(p + k, "ncol(x) + ncol(cols)")
    out <- fm_grow_cols(x, cols, info, new_dn)
    if (!is.null(out)) return(out)
    # The new names do not fit in the header's room: a new file.
    return(fm_rewrite(x, info, n, p + k, new_dn, function(out, tick) {
      step <- max(1, floor(getOption("memkit.block_bytes", 64 * 2^20) / elt_size(type)))
      for (s in seq(0, max(n * p - 1, 0), by = step)) {
        if (n * p > 0) .Call(ffi_fm_fill, out, x, s, s, min(step, n * p - s))
      }
      tick()
      fill_cols(out, cols, n * p, n, k, tick)
    }, steps = k + 1))
  }
  rows <- append_part(rows, p, "rows", "columns", "ncol(x)", type, by_col = FALSE)
  k <- as.double(nrow(rows))
  if (k == 0) return(x)
  check_dim(n + k, "nrow(x) + nrow(rows)")
  new_dn <- grown_dimnames(dn, dimnames(rows), 1L, n, k)
  fm_rewrite(x, info, n + k, p, new_dn, function(out, tick) {
    for (j in seq_len(p)) {
      fm_append_column(out, x, rows, j, n, k)
      tick()
    }
  }, steps = p)
}

# One column of a row append: the old column, then its new rows. A function
# of its own so that tests can stop a process in the middle of the copy.
fm_append_column <- function(out, x, rows, j, n, k) {
  at <- (j - 1) * (n + k)
  if (n > 0) .Call(ffi_fm_fill, out, x, at, (j - 1) * n, n)
  .Call(ffi_fm_fill, out, rows, at + n, (j - 1) * k, k)
}

# `part` as a matrix of `type` whose rows (by_col) or columns match `n`.
append_part <- function(part, n, arg, what, want, type, by_col, call = sys.call(-1L)) {
  if (!(is.numeric(part) || is.logical(part) || is.raw(part)) || is.factor(part) ||
      (!is.null(dim(part)) && length(dim(part)) != 2L)) {
    mk_abort("type", sprintf("`%s` must be a matrix or a vector of numbers, logicals or raw bytes, not %s.",
                             arg, describe_value(part)), call = call)
  }
  if (is.null(dim(part))) {
    nm <- names(part)
    part <- if (by_col) matrix(part, ncol = 1L, dimnames = list(nm, NULL)) else
      matrix(part, nrow = 1L, dimnames = list(NULL, nm))
  }
  have <- if (by_col) nrow(part) else ncol(part)
  if (have != n) {
    mk_abort("argument", sprintf("`%s` must have %s = %s %s, not %s.", arg, want, format(n), what,
                                 format(have)), call = call)
  }
  # A file-backed part of the right type is read straight from its file.
  if (typeof(part) != type) {
    d <- dim(part)
    dn <- dimnames(part)
    part <- as_type(part, type)
    dim(part) <- d
    dimnames(part) <- dn
  }
  part
}

# The dimnames of x grown by k rows (margin 1) or columns (margin 2), as
# rbind()/cbind() would name them; NULL when nothing is named.
grown_dimnames <- function(dn, part_dn, margin, n, k) {
  old <- dn[[margin]]
  new <- part_dn[[margin]]
  names_along <- if (is.null(old) && is.null(new)) NULL else
    c(if (is.null(old)) rep("", n) else old, if (is.null(new)) rep("", k) else new)
  out <- if (is.null(dn)) list(NULL, NULL) else dn
  out[margin] <- list(names_along)
  if (all(vapply(out, is.null, logical(1))) && is.null(names(out))) NULL else out
}

# Columns in place (see src/fm_append.c); NULL when the names do not fit.
fm_grow_cols <- function(x, cols, info, new_dn) {
  n <- info$nrow
  p <- info$ncol
  k <- as.double(ncol(cols))
  h <- .Call(ffi_fm_grow_begin, x, as.double(p + k), new_dn)
  if (is.null(h)) return(NULL)
  ok <- FALSE
  on.exit(if (!ok) .Call(ffi_fm_grow_abort, h), add = TRUE)
  with_progress(k, "Appending", function(tick) fill_cols(h, cols, n * p, n, k, tick, grow = TRUE))
  fm_grow_commit_step(h, new_dn)
  ok <- TRUE
  fm_open(info$path, mode = "rw")
}

# The header write, a function of its own so that tests can stop a process
# just before it.
fm_grow_commit_step <- function(h, new_dn) {
  .Call(ffi_fm_grow_commit, h, new_dn)
}

# Write the k columns of `cols` (n rows) at element `at` of `out` (a new
# matrix, or a grow handle), a block of whole columns at a time.
fill_cols <- function(out, cols, at, n, k, tick, grow = FALSE) {
  for (j in seq_len(k)) {
    if (n > 0) {
      if (grow) .Call(ffi_fm_grow_write, out, cols, at + (j - 1) * n, (j - 1) * n, n)
      else .Call(ffi_fm_fill, out, cols, at + (j - 1) * n, (j - 1) * n, n)
    }
    tick()
  }
}

# A new file at x's path with `nrow` x `ncol`, filled by fill(out, tick),
# renamed into place when complete (fm_new()).
fm_rewrite <- function(x, info, nrow, ncol, dn, fill, steps) {
  fm_new(info$path, as.double(nrow), as.double(ncol), info$type, dn, overwrite = TRUE,
         fill = function(out) {
           with_progress(steps, "Rewriting", function(tick) fill(out, tick))
         })
}
