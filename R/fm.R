#' File-backed matrices
#'
#' A file-backed matrix is an ordinary R matrix whose data is a memory-mapped
#' file: `is.matrix()` is `TRUE`, `typeof()` is its storage type, and base R
#' functions (`colSums()`, `rowSums()`, `sum()`, `mean()`, `range()`, `%*%`,
#' `crossprod()`, `[`) read the file directly, without copying it into
#' memory. Only the pages in use occupy memory, and the operating system can
#' drop them again, so the matrix can be larger than the machine's memory.
#'
#' * `fm_create()` makes a new file, reserves all its disk space at once (a full
#'   disk is an error here, never a crash later), and returns the matrix open
#'   for writing. Its cells start as zero (`0`, `0L`, `FALSE`, `00`) unless
#'   `init` is given.
#' * `fm_open()` maps an existing file: a memkit file (its header says what it
#'   holds), or a headerless file of raw column-major data, such as a bigmemory
#'   backing file, a bigstatsr `.bk` file or a numpy array in Fortran order,
#'   given `type`, `nrow`, `ncol` and `offset`.
#' * `as_fm()` writes a matrix, a data frame or a vector (as one column) to a
#'   new file, block by block.
#'
#' @section Modes and copies:
#' In mode `"r"` the file is never modified. A change R makes to the matrix
#' (`X[1, 1] <- 0`) gives a private copy-on-write copy: only the pages written
#' cost memory, and the copy is saved by value (it is no longer the file).
#' Such a copy is not a snapshot: the pages it has not changed are still the
#' file's, so a later write to the file (through a matrix open in mode `"rw"`,
#' or by another program) shows in those cells of the copy, while the pages it
#' changed (4 KiB each, usually) keep its own values. This is how private
#' mappings (`MAP_PRIVATE`) work, as in numpy's copy-on-write mode; making
#' every copy a full snapshot would cost a copy of the whole file. For a
#' snapshot, read the data into memory with [fm_read()] or `X[, ]`.
#'
#' In mode `"rw"`, modifying the variable in place (`X[i, j] <- v` at top level,
#' when `X` is not shared with another variable) writes to the file.
#' [fm_write()] always writes to the file, also inside functions, where R's
#' rules would otherwise make a copy. A copy (`Y <- X; Y[1, 1] <- 0`) never
#' changes the file and never sees later writes to `X`: in mode `"rw"` it is an
#' ordinary in-memory copy, so avoid modifying copies of large matrices (memkit
#' warns when such a copy is larger than `getOption("memkit.copy_warn")` bytes,
#' 64 MiB by default). Whether R changes a variable in place depends on its
#' reference counts, and some environments (knitr, for one) keep extra
#' references, so code that must write the file should use [fm_write()].
#'
#' @section Saving and sending to workers:
#' `saveRDS()`, `serialize()` and parallel workers store a reference (the
#' absolute path, type, dims, mode and a checksum; a few hundred bytes), not
#' the data. Reading it back checks every field of the reference and reopens
#' the file, or signals an error of class `memkit_error_file` if the file is
#' missing or can't be opened, and `memkit_error_format` if the reference is
#' damaged or the file has changed. For a memkit file the checksum is the
#' header's, which every new file gets afresh (a random file id), so a file
#' made again at the same path is noticed; writes to the data are not
#' changes. For a headerless file it covers the file's size and 16 blocks of
#' 4 KiB spread over the data (all of the data when it is smaller), taken when
#' the reference is saved: a file rewritten with other data is noticed unless
#' every change falls between those blocks. Workers on other machines need
#' the same file at the same path.
#'
#' @section A file that changes under the matrix:
#' If another program truncates or shrinks the file while it is mapped, the
#' pages past its new end no longer exist. memkit turns this into an error of
#' class `memkit_error_format` instead of a crash: its own reads and writes of
#' the mapping (element access, `[`, [fm_read()], [fm_write()], [fm_apply()],
#' copies) catch the system's `SIGBUS`, and before it hands base R a pointer
#' to the data (for `sum()`, `colSums()`, `%*%` and the like) it checks the
#' file's size. What remains uncovered: base R code that already holds the
#' pointer while the file shrinks (a long `crossprod()` during which another
#' program truncates the file) still ends the R process, as it would for any
#' program reading a mapped file. The checks cost one `fstat()` per pointer
#' handed out and about a nanosecond per element read one at a time. An
#' element read that meets a missing page (base `[`, which reads one element
#' at a time) gets a page of zeros in its place before the error: from then
#' on every read of that matrix is an error, even if the file comes back, and
#' [fm_open()] maps it afresh.
#
#'
#' @section The file:
#' A memkit file starts with a header of at least 4 KiB: a magic string, the
#' format version, the type, dims, byte order, data offset, dimnames (as
#' UTF-8 strings with their lengths, never as serialized R objects) and a
#' checksum of all of it; then the elements in column-major order, in the
#' machine's byte order, exactly as R holds them in memory. Files written by
#' memkit before format 2 open as before when they have no dimnames; those
#' with dimnames are refused with an error that gives the `fm_open()` call
#' to open them as headerless files. Only regular files are opened: a FIFO,
#' socket or device is an error of class `memkit_error_file` at once. A file
#' shorter than its header says is an error; a longer one (an [fm_append()]
#' cut short before it rewrote the header) opens as the matrix its header
#' describes.
#'
#' @section Platforms:
#' Linux, macOS and Windows. Linux and macOS map the file with `mmap()`
#' (mode `"r"` privately, copy-on-write); Windows with `CreateFileMappingW()`
#' and `MapViewOfFile()` (`FILE_MAP_COPY` for mode `"r"`: writes to a
#' read-only matrix never reach the file). Differences on Windows:
#' * A mapped file cannot be truncated, replaced or deleted. Another program
#'   cannot shrink it under a matrix (so the `SIGBUS` case above does not
#'   arise), but `overwrite = TRUE` fails with an error of class
#'   `memkit_error_file` while this or another process still has a matrix on
#'   the file (memkit runs [gc()] once to let go of matrices no longer
#'   used); `unlink()` of such a file fails too.
#' * Windows charges a read-only (copy-on-write) mapping's whole size to the
#'   system's commit limit when it is mapped, where Linux and macOS charge
#'   only the pages written: a read-only matrix larger than memory plus page
#'   file cannot be opened there.
#' * Paths are converted from R's native encoding (UTF-8 in R 4.2 and later
#'   on Windows 10 and 11) to the UTF-16 Windows uses.
#'
#' @param path Path of the file.
#' @param nrow,ncol Numbers of rows and columns.
#' @param type Storage type: `"double"`, `"integer"`, `"logical"` or `"raw"`.
#' @param init `NULL` (zeros), or one value every cell starts with (e.g. `NA`).
#' @param dimnames `NULL` or a list of row and column names, stored in the
#'   file's header.
#' @param overwrite If `FALSE`, an existing file at `path` is an error. If
#'   `TRUE` it is replaced, only once the new file is complete.
#' @return A matrix of the given type whose data is the file. `fm_create()` and
#'   `as_fm()` return it open in mode `"rw"`.
#' @seealso [fm_write()], [fm_apply()], [fm_info()]; `vignette("file-matrices")`.
#' @importFrom cli cli_progress_bar cli_progress_update cli_progress_done
#' @importFrom parallel parLapply
#' @importFrom utils head
#' @export
#' @examples
#' path <- tempfile(fileext = ".fm")
#' X <- fm_create(path, nrow = 1000, ncol = 5)
#' fm_write(X, rnorm(1000), j = 2)   # written to the file
#' colSums(X)
#' is.matrix(X)
#'
#' Y <- fm_open(path)          # read-only, another view of the same file
#' identical(Y[, 2], X[, 2])
#' unlink(path)
fm_create <- function(path, nrow, ncol, type = c("double", "integer", "logical", "raw"),
                      init = NULL, dimnames = NULL, overwrite = FALSE) {
  check_string(path)
  nrow <- check_dim(nrow)
  ncol <- check_dim(ncol)
  type <- check_fm_type(type)
  check_flag(overwrite)
  check_dimnames(dimnames, nrow, ncol)
  if (!is.null(init)) init <- check_init(init, type)
  fm_new(path, nrow, ncol, type, dimnames, overwrite, fill = function(x) {
    if (!is.null(init) && !identical(init, vector(type, 1L))) fill_value(x, init)
  })
}

#' @rdname fm_create
#' @param mode `"r"` (read-only; the default) or `"rw"` (read and write).
#' @param offset For a headerless file, the byte where the data starts: a
#'   multiple of the element size (8 for doubles, 4 for integers and
#'   logicals).
#' @export
#' @examples
#'
#' # A headerless file of raw doubles, e.g. written by another program
#' raw_path <- tempfile()
#' writeBin(as.double(1:12), raw_path)
#' fm_open(raw_path, type = "double", nrow = 3, ncol = 4)
#' unlink(raw_path)
fm_open <- function(path, mode = c("r", "rw"), type = NULL, nrow = NULL, ncol = NULL,
                    offset = 0) {
  check_string(path)
  mode <- check_choice(mode, c("r", "rw"), "mode")
  path <- existing_file(path)
  if (is.null(type) && is.null(nrow) && is.null(ncol)) {
    if (!identical(offset, 0)) {
      mk_abort("argument", "`offset` is only for headerless files (give `type`, `nrow` and `ncol`).")
    }
    # The dimnames come decoded and checked from C: never unserialize() of
    # bytes from the file.
    h <- .Call(ffi_fm_header, path)
    return(.Call(ffi_fm_open, path, mode, h$type, h$nrow, h$ncol, h$offset, TRUE,
                 h$checksum, h$dimnames))
  }
  if (is.null(type) || is.null(nrow)) {
    mk_abort("argument", "A headerless file needs `type` and `nrow` (and `ncol`, or it is taken from the file's size).")
  }
  type <- check_fm_type(type)
  nrow <- check_dim(nrow)
  check_scalar_number(offset, min = 0)
  if (offset != trunc(offset)) {
    mk_abort("argument", sprintf("`offset` must be a whole number of bytes, not %s.", describe_value(offset)))
  }
  # Elements at an offset that is not a multiple of their size would be
  # misaligned loads (slow, or a fault on some processors).
  if (offset %% elt_size(type) != 0) {
    mk_abort("argument", sprintf("`offset` must be a multiple of %d (the size of a %s element), not %s.",
                                 elt_size(type), type, format(offset)))
  }
  if (is.null(ncol)) {
    avail <- file.size(path) - offset
    cells <- avail / elt_size(type)
    ncol <- if (nrow > 0 && cells > 0) cells / nrow else 0
    if (ncol != trunc(ncol)) {
      mk_abort("format", sprintf(
        "'%s' holds %s bytes after the offset: not a whole number of %s columns of %s rows; give `ncol`.",
        path, format(avail), type, format(nrow)))
    }
  }
  ncol <- check_dim(ncol)
  .Call(ffi_fm_open, path, mode, type, nrow, ncol, as.double(offset), FALSE, NULL, NULL)
}

#' @rdname fm_create
#' @param x For `as_fm()`: a matrix, a data frame of numeric or logical
#'   columns (a matrix column gives one column per column of its own, named
#'   as [as.matrix()] names them), or a vector (which becomes one column).
#' @param block_bytes Bytes copied per block (the progress bar advances per
#'   block). `getOption("memkit.block_bytes")` or 64 MiB by default.
#' @export
#' @examples
#'
#' m <- as_fm(as.matrix(mtcars), tempfile(fileext = ".fm"))
#' all.equal(colMeans(m), colMeans(mtcars))
#' unlink(fm_info(m)$path)
as_fm <- function(x, path, type = NULL, dimnames = NULL, overwrite = FALSE,
                  block_bytes = getOption("memkit.block_bytes", 64 * 2^20)) {
  check_string(path)
  check_flag(overwrite)
  block_bytes <- check_block_bytes(block_bytes)
  if (is.data.frame(x)) {
    ok <- vapply(x, function(col) (is.numeric(col) || is.logical(col)) && !is.factor(col) &&
                   (is.null(dim(col)) || length(dim(col)) == 2L), logical(1))
    if (!all(ok)) {
      mk_abort("type", sprintf(
        "`x` must have only numeric or logical columns; column `%s` is %s.",
        names(x)[!ok][1L], describe_value(x[[which(!ok)[1L]]])))
    }
    # A matrix column (`df$m <- matrix(...)`) is several columns of the result,
    # named as as.matrix() names them.
    cols <- df_columns(x)
    dims <- c(nrow(x), length(cols))
    dn <- list(if (.row_names_info(x) > 0L) row.names(x), names(cols))
    default_type <- if (all(vapply(cols, is.logical, logical(1)))) "logical" else
      if (all(vapply(cols, function(v) is.integer(v) && !is.factor(v), logical(1)))) "integer" else "double"
  } else if (is.atomic(x) && typeof(x) %in% c("double", "integer", "logical", "raw") &&
             (is.null(dim(x)) || length(dim(x)) == 2L) && !is.factor(x)) {
    dims <- if (is.matrix(x)) dim(x) else c(length(x), 1L)
    dn <- if (is.matrix(x)) dimnames(x) else if (!is.null(names(x))) list(names(x), NULL)
    default_type <- typeof(x)
    cols <- NULL
  } else {
    mk_abort("type", sprintf(
      "`x` must be a matrix, a data frame or a vector of numbers, logicals or raw bytes, not %s.",
      describe_value(x)))
  }
  type <- if (is.null(type)) default_type else check_fm_type(type)
  if (!is.null(dimnames)) dn <- dimnames
  if (!is.null(dn) && all(vapply(dn, is.null, logical(1)))) dn <- NULL
  if (!is.null(dn)) dn <- lapply(dn, function(v) if (!is.null(v)) as.character(v))
  check_dimnames(dn, dims[[1L]], dims[[2L]])
  nrow <- as.double(dims[[1L]])
  fm_new(path, nrow, as.double(dims[[2L]]), type, dn, overwrite, fill = function(out) {
    elt <- elt_size(type)
    if (is.null(cols)) {
      src <- if (typeof(x) == type) x else as_type(x, type)
      total <- as.double(length(src))
      step <- max(1, floor(block_bytes / elt))
      starts <- seq(0, max(total - 1, 0), by = step)
      with_progress(length(starts), "Writing", function(tick) {
        for (s in starts) {
          .Call(ffi_fm_fill, out, src, s, s, min(step, total - s))
          tick()
        }
      })
    } else {
      with_progress(length(cols), "Writing", function(tick) {
        for (k in seq_along(cols)) {
          v <- as_type(cols[[k]], type)
          .Call(ffi_fm_fill, out, v, (k - 1) * nrow, 0, nrow)
          tick()
        }
      })
    }
  })
}

#' Write into a file-backed matrix
#'
#' `fm_write(X, value, i, j)` is `X[i, j] <- value` written straight into the
#' file, whatever R's copying rules would do: it works inside functions and on
#' matrices that other variables share, and never copies the matrix. `fm_flush()`
#' makes sure every write is on disk: a new R process that opens the file then
#' sees them all.
#'
#' @param x A file-backed matrix open in mode `"rw"` (from [fm_create()],
#'   [as_fm()] or `fm_open(mode = "rw")`).
#' @param value Values, recycled over the cells as `[<-` recycles them. Coerced
#'   to the matrix's type.
#' @param i,j Rows and columns: positive numbers, logical vectors, names, or
#'   `NULL` for all.
#' @return `x`, invisibly.
#' @export
#' @examples
#' path <- tempfile(fileext = ".fm")
#' X <- fm_create(path, 4, 3)
#' scale_col <- function(M, j) fm_write(M, M[, j] * 10 + 1, j = j)
#' scale_col(X, 2)
#' X
#' fm_flush(X)
#' unlink(path)
fm_write <- function(x, value, i = NULL, j = NULL) {
  check_is_fm(x)
  type <- typeof(x)
  d <- dim(x)
  dn <- dimnames(x)
  i <- index_arg(i, d[[1L]], dn[[1L]], "i")
  j <- index_arg(j, d[[2L]], dn[[2L]], "j")
  if (!(is.numeric(value) || is.logical(value) || is.raw(value)) || is.factor(value)) {
    mk_abort("type", sprintf("`value` must be numbers, logicals or raw bytes, not %s.", describe_value(value)))
  }
  value <- as_type(value, type)
  cells <- (if (is.null(i)) d[[1L]] else length(i)) * (if (is.null(j)) d[[2L]] else length(j))
  if (cells > 0 && (length(value) == 0L || cells %% length(value) != 0)) {
    mk_abort("argument", sprintf(
      "`value` has %s elements, which does not divide the %s cells written.",
      format(length(value)), format(cells)))
  }
  .Call(ffi_fm_write, x, value, i, j)
  invisible(x)
}

#' @rdname fm_write
#' @section Platforms:
#' `fm_flush()` writes the pages with `msync()` and the file with `fsync()`
#' on Linux and macOS, and with `FlushViewOfFile()` and `FlushFileBuffers()`
#' on Windows: when it returns, another process that opens the file sees every
#' write, on every platform.
#' @export
fm_flush <- function(x) {
  check_is_fm(x)
  .Call(ffi_fm_flush, x)
  invisible(x)
}

#' Apply a function to blocks of a file-backed matrix
#'
#' `fm_apply()` reads the matrix in blocks of whole columns (`margin = 2`) or
#' whole rows (`margin = 1`) that fit in `block_bytes`, calls `FUN` on each
#' block (an ordinary in-memory matrix), and combines the results, or writes
#' them into a file-backed matrix `out` as they come.
#'
#' Results are combined with `c()` when every block gives a vector without
#' dimensions (such as `colSums`), with `cbind()` (margin 2) or `rbind()`
#' (margin 1) when every block gives a matrix, and returned as a list (one
#' element per block) otherwise.
#'
#' @section Results larger than memory:
#' With `out`, each block's result is written into the file-backed matrix
#' `out` as soon as it is computed, and nothing is kept in memory: the
#' result can be as large as the disk. For `margin = 2` a block of `k`
#' columns must give `k` columns (a matrix of `k` columns, or a vector of `k`
#' values, one row) and they go to the same columns of `out`; for
#' `margin = 1` a block of `k` rows must give `k` rows. `out` is a matrix
#' open in mode `"rw"` of the right size, or a path, where a new matrix is
#' created with the size and type the first block's result implies. Workers
#' write their blocks into `out` themselves ([fm_write()]), so results never
#' travel back either.
#'
#' @section Backends:
#' `backend` says where blocks are computed:
#' * `NULL`: here, one block after another (with a progress bar).
#' * a cluster from [parallel::makeCluster()] (as `cl`).
#' * `"future"`: [future.apply::future_lapply()] with whatever
#'   [future::plan()] is set: `multisession` on this machine, `cluster` on
#'   machines that share the file system, or `future.batchtools` on a Slurm,
#'   SGE or other scheduler (see `vignette("file-matrices")`).
#' * a function used as [lapply()], called as `backend(tasks, fun)` and
#'   returning a list, for example
#'   `function(X, FUN) mirai::mirai_map(X, FUN)[]`.
#'
#' Whatever the backend, only references travel: each task is the block's
#' first index and length, a reference to `x` (and to `out`) of a few
#' hundred bytes, and `FUN` with `...`; each worker maps the file where it
#' runs. Workers on other machines need the file at the same path and memkit
#' installed. Large objects in `...` or in `FUN`'s environment travel with
#' every task: keep them out.
#'
#' @param x A file-backed matrix (or any matrix).
#' @param FUN A function of a block; `...` are passed on to it.
#' @param ... Further arguments to `FUN`.
#' @param margin `2` for blocks of columns, `1` for blocks of rows.
#' @param block_bytes The most bytes of `x` in one block. The memory
#'   `fm_apply()` uses is a few times this: the block, `FUN`'s result and
#'   whatever `FUN` allocates on the way. `getOption("memkit.block_bytes")`
#'   or 16 MiB by default.
#' @param cl `NULL`, or a cluster from [parallel::makeCluster()] (the same
#'   as `backend = cl`).
#' @param out `NULL` (results are returned), a file-backed matrix open in
#'   mode `"rw"`, or the path of a new one (see "Results larger than
#'   memory").
#' @param backend `NULL`, a cluster, `"future"`, or an `lapply`-like
#'   function (see "Backends").
#' @return The combined results; with `out`, the matrix `out`.
#' @export
#' @examples
#' X <- as_fm(matrix(runif(2000), 100), tempfile(fileext = ".fm"))
#' all.equal(fm_apply(X, colSums, block_bytes = 4000), colSums(X))
#' fm_apply(X, function(b) range(b), margin = 1, block_bytes = 8000)
#'
#' # A result as large as X, written block by block into a new file
#' Z <- fm_apply(X, function(b) b * 2, out = tempfile(fileext = ".fm"), block_bytes = 4000)
#' all.equal(Z[, ], X[, ] * 2)
#'
#' # Any lapply-like function distributes the blocks
#' all.equal(fm_apply(X, colSums, backend = lapply), colSums(X))
#' unlink(c(fm_info(X)$path, fm_info(Z)$path))
fm_apply <- function(x, FUN, ..., margin = 2, block_bytes = getOption("memkit.block_bytes", 16 * 2^20),
                     cl = NULL, out = NULL, backend = NULL) {
  if (!is.matrix(x)) {
    mk_abort("type", sprintf("`x` must be a matrix, not %s.", describe_value(x)))
  }
  FUN <- match.fun(FUN)
  if (!identical(margin, 1) && !identical(margin, 2) && !identical(margin, 1L) && !identical(margin, 2L)) {
    mk_abort("argument", sprintf("`margin` must be 1 (rows) or 2 (columns), not %s.", describe_value(margin)))
  }
  margin <- as.integer(margin)
  block_bytes <- check_block_bytes(block_bytes)
  if (!is.null(cl) && !inherits(cl, "cluster")) {
    mk_abort("argument", sprintf("`cl` must be NULL or a cluster from parallel::makeCluster(), not %s.",
                                 describe_value(cl)))
  }
  if (!is.null(cl) && !is.null(backend)) mk_abort("argument", "Give `cl` or `backend`, not both.")
  if (!is.null(cl)) backend <- cl
  run <- apply_backend(backend)
  if (!is.null(out) && !(is.character(out) && length(out) == 1L && !is.na(out)) && !is_fm(out)) {
    mk_abort("argument", sprintf("`out` must be NULL, a file-backed matrix or a path, not %s.",
                                 describe_matrix(out)))
  }
  d <- dim(x)
  n <- d[[margin]]
  other <- d[[3L - margin]]
  per <- max(1, floor(block_bytes / max(1, other * elt_size(typeof(x)))))
  # Each block is a range c(first, count), 1-based: no index vector per row or
  # column, so the bookkeeping costs nothing next to the data.
  starts <- if (n == 0) numeric() else seq(1, n, by = per)
  blocks <- lapply(starts, function(s) c(s, min(per, n - s + 1)))
  if (!is.null(out)) {
    if (is.character(out)) {
      if (length(blocks) == 0L) mk_abort("argument", "`x` has no blocks, so `out` can't be sized from them.")
      # The first block here: its result gives the size and type of `out`.
      first <- FUN(fm_block(x, blocks[[1L]], margin), ...)
      out <- new_out(out, first, margin, n, blocks[[1L]][[2L]])
      write_block(out, first, blocks[[1L]], margin)
      blocks <- blocks[-1L]
    } else {
      check_out(out, margin, n)
    }
  }
  dots <- list(...)
  if (is.null(run)) {
    res <- vector("list", length(blocks))
    with_progress(length(blocks), "Applying", function(tick) {
      for (b in seq_along(blocks)) {
        r <- fm_apply_task(blocks[[b]], x, FUN, margin, out, dots)
        if (!is.null(r)) res[[b]] <<- r
        tick()
      }
    })
  } else {
    res <- run(blocks, apply_task(x, FUN, margin, out, dots))
  }
  if (!is.null(out)) {
    fm_flush(out)
    return(invisible(out))
  }
  combine_blocks(res, margin)
}

# The function each task runs, made here so that its environment holds only
# what the task needs: every backend serializes the function with its
# environment. File-backed matrices go as compact references (fm_ref(): the
# path, dims and checksum, about 150 bytes) that the worker opens, and the
# body is one call into the namespace (sent as a reference): the whole
# function is well under 1 KB, and each task adds only its block's range.
apply_task <- function(x, FUN, margin, out, dots) {
  xr <- fm_ref(x)
  outr <- fm_ref(out)
  # Plain values, not the promises of the arguments (a promise is sent with
  # its expression). A function's source references would send the whole
  # file it was read from.
  FUN <- if (typeof(FUN) == "closure") utils::removeSource(FUN) else FUN
  dots <- dots
  margin <- margin
  rm(x, out)
  f <- function(range) NULL
  # A new, uncompiled body (byte code would double what is sent), with the
  # margin in it and the rest in the environment.
  body(f) <- bquote(fm_apply_task(range, xr, FUN, .(margin), outr, dots, TRUE))
  rm(margin)
  f
}

fm_apply_task <- function(range, x, FUN, margin, out, dots, remote = FALSE) {
  x <- fm_deref(x)
  r <- do.call(FUN, c(list(fm_block(x, range, margin)), dots))
  if (is.null(out)) return(r)
  out <- fm_deref(out)
  write_block(out, r, range, margin)
  # A worker, perhaps on another machine: its writes on disk before it reports.
  if (remote) fm_flush(out)
  NULL
}

# A file-backed matrix as what it takes to open it again (other objects as
# they are): list(c(path, mode, type, checksum), c(nrow, ncol, offset,
# header)), smaller than its serialized form.
fm_ref <- function(x) {
  if (!is_fm(x)) return(x)
  i <- fm_info(x)
  if (i$mode == "copy") return(x)
  structure(list(c(i$path, i$mode, i$type, i$checksum), c(i$nrow, i$ncol, i$offset, i$header)),
            class = "memkit_fm_ref")
}

fm_deref <- function(r) {
  if (!inherits(r, "memkit_fm_ref")) return(r)
  s <- r[[1L]]
  n <- r[[2L]]
  dn <- NULL
  if (n[[4L]] == 1) {
    h <- .Call(ffi_fm_header, s[[1L]])
    dn <- h$dimnames
  }
  # ffi_fm_open checks the checksum against the file: a file replaced since
  # is a format error.
  .Call(ffi_fm_open, s[[1L]], s[[2L]], s[[3L]], n[[1L]], n[[2L]], n[[3L]], n[[4L]] == 1, s[[4L]], dn)
}

# How a backend runs tasks: NULL (here, in a loop) or function(tasks, fun).
apply_backend <- function(backend, call = sys.call(-1L)) {
  force(call)
  if (is.null(backend)) return(NULL)
  if (inherits(backend, "cluster")) {
    return(function(tasks, fun) parallel::parLapply(backend, tasks, fun))
  }
  if (identical(backend, "future")) {
    if (!requireNamespace("future.apply", quietly = TRUE)) {
      mk_abort("unsupported", "`backend = \"future\"` needs the future.apply package; install it.", call = call)
    }
    # The task function carries what it needs in its environment; no search
    # for globals (which would send memkit's internal functions by value).
    return(function(tasks, fun) {
      future.apply::future_lapply(tasks, fun, future.globals = FALSE, future.packages = "memkit",
                                  future.seed = TRUE)
    })
  }
  if (is.function(backend)) {
    return(function(tasks, fun) {
      r <- backend(tasks, fun)
      if (!is.list(r) || length(r) != length(tasks)) {
        mk_abort("type", sprintf(
          "`backend` must return a list with one result per task (%d), like lapply(); it returned %s.",
          length(tasks), describe_value(r)), call = call)
      }
      r
    })
  }
  mk_abort("argument", sprintf(
    "`backend` must be NULL, a cluster, \"future\" or an lapply-like function, not %s.",
    describe_value(backend)), call = call)
}

# `first`, the result of the first block (`count` rows or columns), as a
# matrix of out's orientation: r x count (margin 2) or count x r (margin 1).
as_block_result <- function(r, margin, count, call = sys.call(-1L)) {
  if (!(is.numeric(r) || is.logical(r) || is.raw(r)) || is.factor(r) ||
      (!is.null(dim(r)) && length(dim(r)) != 2L)) {
    mk_abort("type", sprintf("With `out`, `FUN` must return a matrix or a vector of numbers, not %s.",
                             describe_value(r)), call = call)
  }
  if (is.null(dim(r))) {
    if (count == 0 || length(r) %% count != 0) {
      mk_abort("argument", sprintf(
        "With `out`, `FUN` must return one %s per %s of the block: %d for this block; it returned %d values.",
        if (margin == 2L) "column" else "row", if (margin == 2L) "column" else "row", count, length(r)),
        call = call)
    }
    r <- if (margin == 2L) matrix(r, ncol = count) else matrix(r, nrow = count)
  }
  have <- dim(r)[[margin]]
  if (have != count) {
    mk_abort("argument", sprintf(
      "With `out`, `FUN` must return one %s per %s of the block: %d for this block, not %d.",
      if (margin == 2L) "column" else "row", if (margin == 2L) "column" else "row", count, have), call = call)
  }
  r
}

new_out <- function(path, first, margin, n, count, call = sys.call(-1L)) {
  r <- as_block_result(first, margin, count, call = call)
  other <- dim(r)[[3L - margin]]
  type <- typeof(r)
  if (!type %in% fm_types) type <- "double"
  dims <- if (margin == 2L) c(other, n) else c(n, other)
  fm_create(path, dims[[1L]], dims[[2L]], type = type)
}

check_out <- function(out, margin, n, call = sys.call(-1L)) {
  if (fm_info(out)$mode != "rw") {
    mk_abort("state", "`out` must be open in mode \"rw\" (from fm_create() or fm_open(mode = \"rw\")).",
             call = call)
  }
  if (dim(out)[[margin]] != n) {
    mk_abort("argument", sprintf("`out` must have %d %s, as `x` has; it has %d.", n,
                                 if (margin == 2L) "columns" else "rows", dim(out)[[margin]]), call = call)
  }
}

write_block <- function(out, r, range, margin) {
  r <- as_block_result(r, margin, range[[2L]])
  other <- dim(out)[[3L - margin]]
  if (dim(r)[[3L - margin]] != other) {
    mk_abort("argument", sprintf("A block's result has %d %s; `out` has %d.", dim(r)[[3L - margin]],
                                 if (margin == 2L) "rows" else "columns", other))
  }
  idx <- seq.int(range[[1L]], length.out = range[[2L]])
  if (margin == 2L) fm_write(out, r, j = idx) else fm_write(out, r, i = idx)
}

# The block `range` = c(first, count) of rows (margin 1) or columns (margin 2).
fm_block <- function(x, range, margin) {
  idx <- seq.int(range[[1L]], length.out = range[[2L]])
  if (is_fm(x)) {
    b <- .Call(ffi_fm_read_block, x, as.integer(margin), as.double(range[[1L]] - 1), as.double(range[[2L]]))
    dn <- dimnames(x)
    if (!is.null(dn)) {
      if (!is.null(dn[[margin]])) dn[[margin]] <- dn[[margin]][idx]
      dimnames(b) <- dn
    }
    b
  } else if (margin == 2) {
    x[, idx, drop = FALSE]
  } else {
    x[idx, , drop = FALSE]
  }
}

combine_blocks <- function(out, margin) {
  if (length(out) == 0L) return(out)
  is_vec <- vapply(out, function(r) is.atomic(r) && is.null(dim(r)), logical(1))
  if (all(is_vec)) return(do.call(c, out))
  is_mat <- vapply(out, is.matrix, logical(1))
  if (all(is_mat)) return(do.call(if (margin == 2) cbind else rbind, out))
  out
}

#' Columns of a file-backed matrix, fast
#'
#' `fm_read(X, i, j)` is `X[i, j, drop = FALSE]`, read with one block copy per
#' column. Base R's `[` reads a file-backed matrix one element at a time
#' through the ALTREP interface (R has no bulk path for matrix subsetting), so
#' for blocks of whole columns `fm_read()` is several times faster.
#'
#' @param x A file-backed matrix.
#' @param i,j Rows and columns: positive numbers, logical vectors, names, or
#'   `NULL` for all.
#' @return An ordinary in-memory matrix.
#' @export
#' @examples
#' X <- as_fm(matrix(1:20, 4), tempfile(fileext = ".fm"))
#' fm_read(X, j = 2:3)
#' identical(fm_read(X, j = 2:3), X[, 2:3])
#' unlink(fm_info(X)$path)
fm_read <- function(x, i = NULL, j = NULL) {
  check_is_fm(x)
  d <- dim(x)
  dn <- dimnames(x)
  i <- index_arg(i, d[[1L]], dn[[1L]], "i")
  j <- index_arg(j, d[[2L]], dn[[2L]], "j")
  out <- .Call(ffi_fm_read, x, i, j)
  if (!is.null(dn)) {
    if (!is.null(i) && !is.null(dn[[1L]])) dn[[1L]] <- dn[[1L]][i]
    if (!is.null(j) && !is.null(dn[[2L]])) dn[[2L]] <- dn[[2L]][j]
    dimnames(out) <- dn
  }
  out
}

#' What a file-backed matrix is
#'
#' `fm_info()` tells where a file-backed matrix lives and how much of it is in
#' memory now: the path, type, dims, mode, the file's size, and the bytes of
#' the file resident in the page cache (from `mincore()`), which is what the
#' matrix costs in memory at the moment and what the system can reclaim.
#' `is_fm()` tells whether an object is a file-backed matrix.
#'
#' @section Platforms:
#' `resident` comes from `mincore()` on Linux and macOS: pages of the mapping
#' in the page cache. On Windows it comes from `QueryWorkingSetEx()`: pages of
#' the mapping in this process's working set, which leaves out pages Windows
#' still caches for the file but has taken out of the working set, so it can
#' be lower than on the other systems for the same use. `NA` where the system
#' does not tell.
#'
#' @param x An object.
#' @return `fm_info()`: a list of class `fm_info` with `path`, `type`, `nrow`,
#'   `ncol`, `mode` (`"r"`, `"rw"`, or `"copy"` for a private copy of a
#'   read-only matrix), `header`, `offset`, `checksum`, and the sizes
#'   `file_size`, `data_size` and `resident` as [mem_bytes]. `is_fm()`: `TRUE`
#'   or `FALSE`.
#' @export
#' @examples
#' X <- fm_create(tempfile(fileext = ".fm"), 1000, 10)
#' fm_info(X)
#' is_fm(X)
#' is_fm(matrix(0, 2, 2))
#' unlink(fm_info(X)$path)
fm_info <- function(x) {
  check_is_fm(x)
  r <- .Call(ffi_fm_info, x)
  st <- r$state
  structure(list(
    path = st$path, type = st$type, nrow = st$nrow, ncol = st$ncol, mode = st$mode,
    header = st$header, offset = st$offset, checksum = st$checksum,
    file_size = new_mem_bytes(r$file_size),
    data_size = new_mem_bytes(st$nrow * st$ncol * elt_size(st$type)),
    resident = new_mem_bytes(r$resident)
  ), class = "fm_info")
}

#' @export
print.fm_info <- function(x, ...) {
  mode <- switch(x$mode, r = "read-only", rw = "read-write", copy = "private copy of the file")
  pct <- if (is.finite(x$file_size) && x$file_size > 0) {
    sprintf(" (%.0f%%)", 100 * as.numeric(x$resident) / as.numeric(x$file_size))
  } else ""
  cat("<fm_info> ", x$path, "\n", sep = "")
  cat(sprintf("  %-9s %s x %s %s, %s\n", "matrix", format(x$nrow, big.mark = ",", scientific = FALSE),
              format(x$ncol, big.mark = ",", scientific = FALSE), x$type, mode))
  cat(sprintf("  %-9s %s (data %s; %s)\n", "file", format(x$file_size), format(x$data_size),
              if (x$header) "memkit header" else sprintf("headerless, offset %s", format(x$offset))))
  cat(sprintf("  %-9s %s%s of the file in memory now\n", "resident", format(x$resident), pct))
  invisible(x)
}

#' @rdname fm_info
#' @export
is_fm <- function(x) .Call(ffi_fm_is, x)

# ---- internal helpers ---------------------------------------------------------

fm_types <- c("double", "integer", "logical", "raw")

check_fm_type <- function(type, call = sys.call(-1L)) {
  if (identical(type, fm_types)) return("double")
  if (!is.character(type) || length(type) != 1L || is.na(type) || !type %in% fm_types) {
    mk_abort("type", sprintf(
      "`type` must be one of \"double\", \"integer\", \"logical\" or \"raw\", not %s.",
      describe_value(type)), call = call)
  }
  type
}

check_choice <- function(x, choices, arg, call = sys.call(-1L)) {
  if (identical(x, choices)) return(choices[[1L]])
  if (!is.character(x) || length(x) != 1L || is.na(x) || !x %in% choices) {
    mk_abort("argument", sprintf("`%s` must be one of %s, not %s.", arg,
                                 paste0("\"", choices, "\"", collapse = " or "), describe_value(x)),
             call = call)
  }
  x
}

check_dim <- function(x, arg = deparse(substitute(x)), call = sys.call(-1L)) {
  if (!is.numeric(x) || length(x) != 1L || is.na(x) || x < 0 || x != trunc(x) ||
      x > .Machine$integer.max) {
    mk_abort("argument", sprintf(
      "`%s` must be a whole number between 0 and %d, not %s.", arg,
      .Machine$integer.max, describe_value(x)), call = call)
  }
  as.double(x)
}

check_dimnames <- function(dn, nrow, ncol, call = sys.call(-1L)) {
  if (is.null(dn)) return(invisible())
  ok <- is.list(dn) && length(dn) == 2L &&
    (is.null(dn[[1L]]) || is.character(dn[[1L]]) && length(dn[[1L]]) == nrow) &&
    (is.null(dn[[2L]]) || is.character(dn[[2L]]) && length(dn[[2L]]) == ncol)
  if (!ok) {
    mk_abort("argument", sprintf(
      "`dimnames` must be NULL or a list of two: NULL or %s row names, NULL or %s column names.",
      format(nrow), format(ncol)), call = call)
  }
  invisible()
}

check_init <- function(init, type, call = sys.call(-1L)) {
  if (length(init) != 1L || !(is.numeric(init) || is.logical(init) || is.raw(init))) {
    mk_abort("argument", sprintf("`init` must be NULL or a single value, not %s.",
                                 describe_value(init)), call = call)
  }
  as_type(init, type)
}

check_block_bytes <- function(x, call = sys.call(-1L)) {
  x <- as.numeric(mem_bytes(x))
  if (length(x) != 1L || is.na(x) || x < 1) {
    mk_abort("argument", "`block_bytes` must be a positive number of bytes.", call = call)
  }
  x
}

check_is_fm <- function(x, call = sys.call(-1L)) {
  if (!is_fm(x)) {
    mk_abort("type", sprintf("`x` must be a file-backed matrix, not %s.",
                             describe_matrix(x)), call = call)
  }
}

describe_matrix <- function(x) {
  if (is.matrix(x)) sprintf("an in-memory %s matrix", typeof(x)) else describe_value(x)
}

as_type <- function(x, type) {
  out <- switch(type, double = as.double(x), integer = as.integer(x),
                logical = as.logical(x), raw = as.raw(x))
  out
}

existing_file <- function(path, call = sys.call(-1L)) {
  if (!file.exists(path)) {
    mk_abort("file", sprintf("Can't open '%s': no such file.", path), call = call,
             path = path)
  }
  if (dir.exists(path)) {
    mk_abort("file", sprintf("'%s' is a directory, not a file.", path), call = call, path = path)
  }
  # A FIFO, socket or device: refused before C opens it (C checks again).
  if (!utils::file_test("-f", path)) {
    mk_abort("file", sprintf("'%s' is not a regular file (a FIFO, socket or device?).", path),
             call = call, path = path)
  }
  normalizePath(path, mustWork = TRUE)
}

# The columns of a data frame as a named list of vectors, a matrix column `m`
# giving one vector per column of its own, named `m.1`, `m.2` (or `m.<its
# colname>`; just `m` for a single column) as as.matrix() names them.
df_columns <- function(x) {
  out <- list()
  nms <- character()
  for (k in seq_along(x)) {
    col <- x[[k]]
    if (is.matrix(col)) {
      cn <- colnames(col)
      if (is.null(cn)) cn <- seq_len(ncol(col))
      for (q in seq_len(ncol(col))) out[[length(out) + 1L]] <- unclass(col)[, q]
      nms <- c(nms, if (ncol(col) > 1L) paste0(names(x)[[k]], ".", cn) else
        if (ncol(col) == 1L) names(x)[[k]])
    } else {
      out[[length(out) + 1L]] <- col
      nms <- c(nms, names(x)[[k]])
    }
  }
  names(out) <- nms
  out
}

# Positive 1-based indices as a double vector (or NULL for all).
index_arg <- function(ix, n, names, arg, call = sys.call(-1L)) {
  if (is.null(ix)) return(NULL)
  if (is.logical(ix)) {
    if (anyNA(ix) || (length(ix) != n && length(ix) != 1L)) {
      mk_abort("argument", sprintf("`%s` as a logical must have length 1 or %s, with no NA.",
                                   arg, format(n)), call = call)
    }
    return(as.double(which(rep_len(ix, n))))
  }
  if (is.character(ix)) {
    pos <- match(ix, names)
    if (anyNA(pos)) {
      mk_abort("argument", sprintf("`%s` has names that are not in the matrix: %s.", arg,
                                   paste0("\"", utils::head(ix[is.na(pos)], 3L), "\"", collapse = ", ")),
               call = call)
    }
    return(as.double(pos))
  }
  if (!is.numeric(ix) || anyNA(ix) || any(ix < 1) || any(ix > n) || any(ix != trunc(ix))) {
    mk_abort("argument", sprintf("`%s` must be whole numbers between 1 and %s.", arg, format(n)),
             call = call)
  }
  as.double(ix)
}

# Create at a temporary name next to `path`, fill, then rename: a failure at any
# point leaves no file at `path` (and an existing file there untouched).
fm_new <- function(path, nrow, ncol, type, dimnames, overwrite, fill, call = sys.call(-1L)) {
  dir <- dirname(path)
  if (!dir.exists(dir)) {
    mk_abort("file", sprintf("Can't create '%s': the directory '%s' does not exist.", path, dir),
             call = call, path = path)
  }
  path <- file.path(normalizePath(dir, mustWork = TRUE), basename(path))
  if (dir.exists(path)) {
    mk_abort("file", sprintf("'%s' is a directory, not a file.", path), call = call, path = path)
  }
  if (file.exists(path) && !overwrite) {
    mk_abort("file", sprintf("'%s' already exists; use `overwrite = TRUE` to replace it.", path),
             call = call, path = path)
  }
  tmp <- file.path(dirname(path), paste0(".", basename(path), basename(tempfile(".tmp-"))))
  done <- FALSE
  x <- NULL
  on.exit(if (!done) {
    # Windows deletes no mapped file: the new matrix goes first.
    if (is_windows()) { x <- NULL; gc(verbose = FALSE) }
    unlink(tmp)
  }, add = TRUE)
  x <- .Call(ffi_fm_create, path, tmp, type, nrow, ncol, dimnames)
  fill(x)
  if (!fm_rename(tmp, path)) {
    why <- if (is_windows() && file.exists(path)) {
      "it is open or mapped by this or another process (Windows can't replace a file in use); close the matrices on it (remove them and run gc()) or the program holding it"
    } else {
      "renaming the new file into place failed"
    }
    mk_abort("file", sprintf("Can't create '%s': %s.", path, why), call = call, path = path)
  }
  done <- TRUE
  x
}

# file.rename(), and on Windows, where a file mapped by a matrix nobody uses
# any more can't be replaced until the matrix is collected, once more after
# a collection.
fm_rename <- function(from, to) {
  if (!is_windows()) return(file.rename(from, to))
  if (suppressWarnings(file.rename(from, to))) return(TRUE)
  gc(verbose = FALSE)
  suppressWarnings(file.rename(from, to))
}

is_windows <- function() .Platform$OS.type == "windows"

fill_value <- function(x, value) {
  total <- as.double(length(x))
  step <- max(1, floor(getOption("memkit.block_bytes", 64 * 2^20) / elt_size(typeof(x))))
  starts <- seq(0, max(total - 1, 0), by = step)
  with_progress(length(starts), "Filling", function(tick) {
    for (s in starts) {
      .Call(ffi_fm_fill, x, value, s, 0, min(step, total - s))
      tick()
    }
  })
}

# Runs body(tick) with a cli progress bar over `n` steps when there is more
# than one step and progress is on.
with_progress <- function(n, what, body) {
  if (n > 1L && mk_progress_enabled()) {
    id <- cli::cli_progress_bar(what, total = n, .envir = environment())
    body(function() cli::cli_progress_update(id = id, .envir = environment()))
    cli::cli_progress_done(id = id)
  } else {
    body(function() NULL)
  }
  invisible()
}
