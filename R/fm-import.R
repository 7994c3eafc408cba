#' Read a delimited text file into a file-backed matrix
#'
#' `fm_import()` reads a CSV, TSV or other delimited text file (plain or
#' compressed with gzip, bzip2 or xz) into a new file-backed matrix, a chunk
#' of rows at a time, so the memory it uses is bounded by the chunk and not
#' by the file: a file larger than memory becomes a matrix larger than
#' memory.
#'
#' The file is read twice: once to count its rows (the matrix is stored
#' column by column, so its size must be known before the first row is
#' written), then to parse it. The count is the cheap pass (it only looks
#' for line ends); a plain file is read by C without an R connection, and
#' the rows of a chunk are parsed in two threads (except on Windows, and
#' when a column is a factor) and written into the matrix's file as they
#' come. Numbers are converted exactly as [read.csv()]
#' converts them, so the matrix is identical to
#' `as.matrix(read.csv(file, check.names = FALSE))` for a file of numbers.
#' Blank lines are skipped, as `read.csv()` skips them. An empty field, and a
#' field equal to one of `na`, is `NA`; `NaN`, `Inf` and `-Inf` are read as
#' such; quoted fields are unquoted (`""` inside one stands for a quote) but
#' may not span lines.
#'
#' Every problem is an error that names the file and the line: a line with
#' more or fewer fields than the header (class `memkit_error_parse`), a field
#' that is not a number in a numeric column, for example an NA marker that is
#' not in `na` (`memkit_error_parse`), an unterminated quote
#' (`memkit_error_parse`). The condition has fields `path`, `line` and
#' `column`. A missing file is an error of class `memkit_error_file`. On any
#' error the new matrix is removed and nothing is left at `path`.
#'
#' @param file Path of the text file (`.gz`, `.bz2` and `.xz` files are
#'   decompressed as they are read, recognised by their content).
#' @param path Path of the new file-backed matrix.
#' @param sep The field separator, one character (`","`; `"\t"` for TSV).
#' @param header Whether the first line (after `skip`) holds the column
#'   names, which become the matrix's column names. If `FALSE` the columns
#'   are named `V1`, `V2`, ... as by `read.csv(header = FALSE)`.
#' @param col_types `NULL` (every column numeric), or a character vector of
#'   `"numeric"`, `"skip"` (the column is left out) or `"factor"` (the column
#'   holds strings, stored as the codes of their sorted levels, as
#'   [factor()] codes them); one per column, or named by column name (the
#'   columns not named are numeric). The levels of factor columns are kept
#'   next to the matrix, in `<path>.levels.rds`, and [fm_levels()] returns
#'   them.
#' @param skip Lines to skip before the header (or the data).
#' @param na Strings that mean `NA` (besides an empty field).
#' @param chunk_rows Rows parsed at a time. Memory use is about
#'   `chunk_rows * ncol * 8` bytes plus a few MB of text.
#' @param quote The quote character, or `""` for none.
#' @param overwrite If `TRUE`, an existing file at `path` is replaced once
#'   the new one is complete.
#' @return The matrix (type double), open in mode `"rw"`.
#' @seealso [fm_levels()], [fm_create()], [fm_append()]; `vignette("file-matrices")`.
#' @export
#' @examples
#' csv <- tempfile(fileext = ".csv")
#' write.csv(data.frame(x = c(1.5, 2, NA), y = 1:3, g = c("b", "a", "b")), csv,
#'           row.names = FALSE)
#' X <- fm_import(csv, tempfile(fileext = ".fm"), col_types = c(g = "factor"))
#' X
#' fm_levels(X)
#' unlink(c(csv, fm_info(X)$path, paste0(fm_info(X)$path, ".levels.rds")))
fm_import <- function(file, path, sep = ",", header = TRUE, col_types = NULL, skip = 0,
                      na = "NA", chunk_rows = 100000, quote = "\"", overwrite = FALSE) {
  check_string(file)
  check_string(path)
  check_string(sep)
  check_flag(header)
  check_flag(overwrite)
  check_string(quote)
  if (nchar(sep, "bytes") != 1L || sep %in% c("\n", "\r", "\"")) {
    mk_abort("argument", sprintf("`sep` must be one character other than a line end or a quote, not %s.",
                                 describe_value(sep)))
  }
  if (nchar(quote, "bytes") > 1L || identical(quote, sep)) {
    mk_abort("argument", "`quote` must be one character other than `sep`, or \"\" for none.")
  }
  check_scalar_number(skip, min = 0)
  check_scalar_number(chunk_rows, min = 1, max = .Machine$integer.max)
  if (!is.character(na) || anyNA(na)) {
    mk_abort("argument", sprintf("`na` must be a character vector without NA, not %s.", describe_value(na)))
  }
  file <- existing_file(file)
  chunk_rows <- floor(chunk_rows)

  # ---- the header and the columns ----
  rd <- text_reader(file, sep, quote)
  on.exit(rd$close(), add = TRUE)
  first <- rd$line(skip)
  if (is.null(first)) {
    mk_abort("parse", sprintf("'%s' has no lines after skipping %s.", file, format(skip)),
             path = file, line = skip + 1, column = NA_integer_)
  }
  nf <- length(first)
  names <- if (header) first else paste0("V", seq_len(nf))
  kinds <- import_kinds(col_types, names)
  data_line <- skip + if (header) 2 else 1
  if (!header) rd$restart(skip)

  # ---- pass 1: rows ----
  nrow <- rd$count()
  if (nrow > .Machine$integer.max) {
    mk_abort("argument", sprintf("'%s' has %s rows; a matrix holds at most %d.", file,
                                 format(nrow), .Machine$integer.max))
  }
  keep <- kinds != 0L
  ncol <- sum(keep)
  col_names <- names[keep]
  is_factor <- kinds[keep] == 2L
  levels <- rep(list(character()), sum(is_factor))
  names(levels) <- col_names[is_factor]

  # ---- pass 2: parse into the new file ----
  rd$restart(skip + if (header) 1 else 0)
  dn <- if (ncol > 0) list(NULL, enc2utf8(col_names)) else NULL
  check_dim(ncol, "the number of columns")
  levels_path <- paste0(path, ".levels.rds")
  X <- fm_new(path, nrow, as.double(ncol), "double", dn, overwrite, fill = function(out) {
    done <- 0
    line <- data_line
    steps <- max(1, ceiling(nrow / chunk_rows))
    with_progress(steps, "Importing", function(tick) {
      while (done < nrow) {
        res <- rd$parse(kinds, na, min(chunk_rows, nrow - done), line, out, done)
        if (!is.null(res$error)) import_error(res$error, file, names, kinds)
        k <- res$rows
        if (k == 0) {
          mk_abort("parse", sprintf("'%s' ended after %s rows; the first pass counted %s (did it change?).",
                                    file, format(done), format(nrow)),
                   path = file, line = line, column = NA_integer_)
        }
        vals <- res$values
        if (!is.null(vals) && any(is_factor)) {
          fcols <- which(is_factor)
          for (q in seq_along(fcols)) {
            s <- res$strings[[q]]
            lv <- levels[[q]]
            new <- unique(s[!is.na(s) & is.na(match(s, lv))])
            lv <- c(lv, new)
            levels[[q]] <<- lv
            vals[, fcols[[q]]] <- as.double(match(s, lv))
          }
        }
        # By descriptor, not through the mapping: the file's pages then do
        # not count in this process's resident memory.
        # (Without factor columns C wrote the rows already.)
        if (!is.null(vals)) for (j in seq_len(ncol)) {
          .Call(ffi_fm_pwrite, out, vals, (j - 1) * nrow + done, (j - 1) * k, k)
        }
        done <<- done + k
        line <<- line + res$lines
        tick()
      }
    })
    # Codes in order of first appearance become codes of the sorted levels.
    if (any(is_factor)) {
      fcols <- which(is_factor)
      for (q in seq_along(fcols)) {
        lv <- levels[[q]]
        sorted <- sort(lv)
        map <- match(lv, sorted)
        levels[[q]] <<- sorted
        if (!identical(map, seq_along(lv))) recode_column(out, fcols[[q]], nrow, as.double(map), chunk_rows)
      }
      saveRDS(levels, levels_path)
    }
  })
  if (!any(is_factor) && file.exists(levels_path)) unlink(levels_path)
  X
}

#' @rdname fm_import
#' @param x A matrix made by `fm_import()`.
#' @return `fm_levels()`: a named list with the levels of each factor
#'   column (code `k` stands for level `k`), or an empty list.
#' @export
fm_levels <- function(x) {
  check_is_fm(x)
  p <- paste0(fm_info(x)$path, ".levels.rds")
  if (!file.exists(p)) return(list())
  readRDS(p)
}

# Column j's codes through `map` (code k becomes map[k]), a chunk at a time.
recode_column <- function(out, j, nrow, map, chunk_rows) {
  for (s in seq(1, max(nrow, 1), by = chunk_rows)) {
    if (nrow == 0) break
    i <- seq.int(s, min(nrow, s + chunk_rows - 1))
    fm_write(out, map[out[i, j]], i = i, j = j)
  }
}

import_kinds <- function(col_types, names, call = sys.call(-1L)) {
  nf <- length(names)
  kinds <- rep(1L, nf)
  if (is.null(col_types)) return(kinds)
  allowed <- c("numeric", "double", "skip", "factor")
  if (!is.character(col_types) || anyNA(col_types) || !all(col_types %in% allowed)) {
    mk_abort("argument", sprintf(
      "`col_types` must be NULL or a character vector of \"numeric\", \"skip\" or \"factor\", not %s.",
      describe_value(col_types)), call = call)
  }
  code <- c(numeric = 1L, double = 1L, skip = 0L, factor = 2L)[col_types]
  if (is.null(names(col_types))) {
    if (length(col_types) != nf) {
      mk_abort("argument", sprintf("`col_types` has %d types for %d columns; name them, or give one per column.",
                                   length(col_types), nf), call = call)
    }
    return(unname(code))
  }
  pos <- match(names(col_types), names)
  if (anyNA(pos)) {
    mk_abort("argument", sprintf("`col_types` names columns the file does not have: %s.",
                                 paste0("`", names(col_types)[is.na(pos)], "`", collapse = ", ")), call = call)
  }
  kinds[pos] <- unname(code)
  kinds
}

import_error <- function(e, file, names, kinds, call = sys.call(-1L)) {
  line <- e[[1L]]
  col <- e[[2L]]
  text <- e[[4L]]
  colname <- function(j) if (j >= 1L && j <= length(names)) sprintf("column %d (`%s`)", j, names[[j]]) else
    sprintf("column %d", j)
  msg <- switch(
    e[[3L]],
    sprintf("'%s', line %s: %d fields, but the header has %d (a ragged row).", file, format(line),
            col, length(names)),
    sprintf("'%s', line %s, %s: \"%s\" is not a number. If it marks a missing value, add it to `na`; if the column is not numeric, give it a type in `col_types` (\"factor\" or \"skip\").",
            file, format(line), colname(col), text),
    sprintf("'%s', line %s, %s: a quote is not closed on this line (quoted fields can't span lines).",
            file, format(line), colname(col)),
    sprintf("'%s', line %s, %s: a NUL byte (is the file text?).", file, format(line), colname(col)))
  mk_abort("parse", msg, path = file, line = line, column = if (e[[3L]] == 1L) NA_integer_ else col,
           call = call)
}

# Reads `file` (plain or compressed) in blocks of bytes for the parser. The
# bytes not parsed yet are in a reader that C owns (src/fm_import.c): C reads
# a plain file itself; a compressed one is read here through gzfile() and its
# blocks handed over.
text_reader <- function(file, sep, quote, block = 8 * 2^20) {
  con <- NULL
  st <- NULL
  eof <- FALSE
  close_con <- function() {
    if (!is.null(st)) { .Call(ffi_fm_import_close, st); st <<- NULL }
    if (!is.null(con)) { close(con); con <<- NULL }
  }
  open_con <- function() {
    close_con()
    # gzfile() reads gzip, bzip2 and xz.
    magic <- readBin(file, "raw", 6L)
    compressed <- (length(magic) >= 2L && identical(magic[1:2], as.raw(c(0x1f, 0x8b)))) ||
      (length(magic) >= 3L && identical(magic[1:3], charToRaw("BZh"))) ||
      (length(magic) == 6L && identical(magic, as.raw(c(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00))))
    st <<- .Call(ffi_fm_import_open, file, compressed)
    if (compressed) con <<- gzfile(file, "rb")
    eof <<- FALSE
  }
  # More bytes into the reader; FALSE at the end of the file.
  fill <- function() {
    if (eof) return(FALSE)
    more <- if (is.null(con)) NULL else readBin(con, "raw", block)
    eof <<- .Call(ffi_fm_import_fill, st, more, !is.null(more) && length(more) < block, block)
    TRUE
  }
  # The fields of the line after `skip` more lines (and moves past it); NULL
  # when the file ends first.
  line <- function(skip) {
    repeat {
      r <- .Call(ffi_fm_import_line, st, skip, sep, quote)
      if (!is.null(r)) break
      fill()
    }
    if (isFALSE(r)) NULL else r
  }
  open_con()
  list(
    close = close_con,
    line = line,
    # Back to the start of the file, then past `skip` lines.
    restart = function(skip) {
      open_con()
      while (skip > 0) {
        step <- min(skip, 1e6)
        if (is.null(line(step - 1))) break
        skip <- skip - step
      }
    },
    # Lines with content from here to the end of the file (C reads a plain
    # file to its end itself).
    count = function() {
      n <- .Call(ffi_fm_import_count, st)
      while (!is.null(con) && fill()) n <- n + .Call(ffi_fm_import_count, st)
      eof <<- TRUE
      n
    },
    # Up to max_rows rows from here; `lines` in the result counts every line
    # consumed, blank ones included. With `out` (and no factor columns) C
    # writes the rows into it at row `at` (0-based) and `values` is NULL.
    parse = function(kinds, na, max_rows, first_line, out = NULL, at = 0) {
      skipped <- 0
      repeat {
        r <- .Call(ffi_fm_import_parse, st, kinds, sep, quote, na, max_rows, first_line + skipped,
                   out, at)
        if (r[[3L]] > 0 || !is.null(r[[5L]]) || eof) break
        # No complete row in the buffer (only blank lines, or part of a line).
        skipped <- skipped + r[[4L]]
        fill()
      }
      list(values = r[[1L]], strings = r[[2L]], rows = r[[3L]], lines = skipped + r[[4L]],
           error = r[[5L]])
    }
  )
}
