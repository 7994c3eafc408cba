# Offloading bindings to disk: each value goes to a file and its binding
# becomes a promise (delayedAssign()) that reloads the value on first use.
#
# The promise's environment is the offload record: an environment of class
# "memkit_offload" whose parent is memkit's namespace, holding the file's
# path, how the value was stored and a checksum. mem_ls() and mem_restore()
# recognise an offloaded binding by that environment, read without forcing
# the promise (src/offload.c).

#' Move bindings to disk, reloaded on first use
#'
#' `mem_offload()` writes the values of the bindings `names` in `envir` to
#' files in `dir` and leaves in each binding's place a lazy binding (a
#' promise, as [delayedAssign()] makes) that reloads the value the first
#' time it is used. The memory the values held is freed at once (what
#' [mem_rm()] would free for the same bindings). `mem_restore()` loads
#' offloaded bindings back now.
#'
#' How values are stored:
#' * Numeric (double), integer and logical vectors and matrices with no
#'   attributes other than `dim` and `dimnames` go to file-backed storage
#'   (see [fm_create()]): they come back as memory-mapped objects, with no
#'   copy, whose pages are read from the file as they are used, so a large
#'   matrix of which only some columns are used costs only those columns.
#'   Their file stays as long as the value may be in use (see "Files").
#'   On Windows, where file-backed matrices are not supported, they are
#'   serialized like any other object.
#' * Every other object (lists, data frames, character vectors, objects
#'   with classes, compact vectors such as `1:1e9`, file-backed matrices
#'   themselves) is serialized with [saveRDS()] and compressed with
#'   `compress`; the file is deleted once the value is back in memory.
#'
#' Once reloaded, a binding holds its value as any other. [mem_ls()] lists
#' an offloaded binding that was not used yet with class `"<offloaded>"`
#' and its bytes on disk, without loading it.
#'
#' A binding that is already offloaded is left as it is. An active binding
#' cannot be offloaded (an error of class `memkit_error_type`), nor a
#' locked one (`memkit_error_state`). A promise that was not yet forced
#' (another `delayedAssign()`) is forced to get its value.
#'
#' @section Files:
#' `dir` defaults to a directory `memkit-offload` in the session's
#' [tempdir()], removed when R ends. Every file is written under a
#' temporary name and renamed when complete: a failed write (a full disk)
#' leaves no file, and then no binding is changed. The reload checks each
#' file before reading it (the MD5 sum of a serialized file, the header
#' checksum of a file-backed one): a file that was changed or removed is an
#' error of class `memkit_error_format` or `memkit_error_file` at first use
#' of the binding, and the binding stays offloaded: the next use tries
#' again (and R warns that it is "restarting interrupted promise
#' evaluation"). The file of a file-backed value is not deleted: the value maps
#' it. `mem_restore(in_memory = TRUE)` reads such values into memory and
#' deletes their files.
#'
#' @param names A character vector of binding names in `envir` (for
#'   `mem_restore()`, `NULL` for every offloaded binding of `envir`;
#'   bindings that are not offloaded, or were loaded since, are left as
#'   they are).
#' @param envir The environment that holds them.
#' @param dir The directory to write the files to.
#' @param compress Compression of serialized values: `"gzip"` (the default
#'   of [saveRDS()]), `"bzip2"`, `"xz"` (smallest, slowest) or `"none"`.
#' @return `mem_offload()`: a list of class `mem_offload` with `moved`, a
#'   data frame (`name`, `class`, `storage` ("file-backed" or the
#'   compression), `size` in memory as [mem_size()] gives it, `disk`: the
#'   file's bytes, and `path`); `predicted`, what [mem_retained()] said
#'   moving them would free, and `freed`, what a full collection freed (both
#'   [mem_bytes] with attribute `cells`, as [mem_rm()] gives them); and
#'   `disk`, the bytes of all the files.
#' @seealso [mem_ls()] to find the largest bindings.
#' @export
#' @examples
#' e <- new.env()
#' e$m <- matrix(runif(2e5), ncol = 20)
#' e$l <- lapply(1:100, function(i) rep(letters, 20))
#' res <- mem_offload(c("m", "l"), e)
#' res
#' mem_ls(e)                  # both on disk, not loaded
#' colSums(e$m)[1:3]          # reloads m, file-backed
#' mem_restore(envir = e)     # loads what is left (l)
mem_offload <- function(names, envir = parent.frame(), dir = NULL,
                        compress = c("gzip", "bzip2", "xz", "none")) {
  check_env(envir)
  check_binding_names(names, envir)
  compress <- check_choice(compress, c("gzip", "bzip2", "xz", "none"), "compress")
  names <- unique(names)
  dir <- offload_dir(dir)
  active <- vapply(names, bindingIsActive, logical(1), env = envir)
  if (any(active)) {
    mk_abort("type", sprintf("Can't offload active bindings: %s.",
                             paste0("\"", names[active], "\"", collapse = ", ")))
  }
  locked <- vapply(names, bindingIsLocked, logical(1), env = envir)
  if (any(locked)) {
    mk_abort("state", sprintf("Can't offload locked bindings: %s.",
                              paste0("\"", names[locked], "\"", collapse = ", ")))
  }
  names <- names[vapply(offload_records(envir, names), is.null, logical(1))]
  predicted <- if (length(names)) {
    .Call(ffi_retained_size, envir, names, session_roots(envir))
  } else c(0, 0, 0)

  # Write every file first; no binding changes unless all were written.
  recs <- list()
  done <- FALSE
  on.exit(if (!done) for (r in recs) unlink(r$path))
  for (nm in names) {
    recs[[nm]] <- offload_write(nm, envir, dir, compress)
  }
  done <- TRUE
  moved <- data.frame(
    name = names,
    class = vapply(recs, function(r) r$class, character(1), USE.NAMES = FALSE),
    storage = vapply(recs, function(r) r$storage, character(1), USE.NAMES = FALSE),
    stringsAsFactors = FALSE
  )
  moved$size <- new_mem_bytes(vapply(recs, function(r) r$size, double(1), USE.NAMES = FALSE))
  moved$disk <- new_mem_bytes(vapply(recs, function(r) r$disk, double(1), USE.NAMES = FALSE))
  moved$path <- vapply(recs, function(r) r$path, character(1), USE.NAMES = FALSE)

  # The swap, between two counts of the cells in use: everything the counts
  # keep alive exists before the first.
  rm(list = character(), envir = envir)
  cells <- numeric(4)
  first <- 1:2
  second <- 3:4
  cells[first] <- gc_used()
  for (nm in names) {
    delayedAssign(nm, offload_value(environment()), eval.env = recs[[nm]], assign.env = envir)
  }
  cells[second] <- gc_used()
  structure(
    list(
      moved = moved,
      predicted = gc_bytes(predicted[1:2]),
      freed = gc_bytes(cells[first] - cells[second]),
      disk = new_mem_bytes(sum(moved$disk))
    ),
    class = "mem_offload"
  )
}

offload_dir <- function(dir, call = sys.call(-1L)) {
  if (is.null(dir)) dir <- file.path(tempdir(), "memkit-offload")
  check_string(dir, "dir", call = call)
  if (!dir.exists(dir) && !dir.create(dir, recursive = TRUE, showWarnings = FALSE)) {
    mk_abort("file", sprintf("Can't create the directory `dir` = '%s'.", dir), path = dir,
             call = call)
  }
  normalizePath(dir, mustWork = TRUE)
}

# Writes one binding's value and returns its record (an environment; the
# promise's environment once the binding is swapped).
offload_write <- function(nm, envir, dir, compress) {
  value <- get(nm, envir = envir, inherits = FALSE)
  rec <- new.env(parent = asNamespace("memkit"))
  class(rec) <- "memkit_offload"
  rec$name <- nm
  rec$class <- class(value)[[1L]]
  rec$size <- .Call(ffi_size_cells, list(value))[[3L]]
  stem <- gsub("[^A-Za-z0-9_.-]", "_", substr(nm, 1L, 40L))
  if (offload_as_fm(value, rec$size)) {
    rec$storage <- "file-backed"
    rec$path <- tempfile(paste0(stem, "-"), tmpdir = dir, fileext = ".fm")
    # as_fm() writes under a temporary name and renames when complete.
    fm <- as_fm(value, rec$path)
    rec$vector <- is.null(dim(value))
    rec$checksum <- .Call(ffi_fm_header, rec$path)$checksum
    rm(fm)
  } else {
    rec$storage <- compress
    rec$path <- tempfile(paste0(stem, "-"), tmpdir = dir, fileext = ".rds")
    tmp <- paste0(rec$path, ".tmp")
    tryCatch(
      saveRDS(value, tmp, compress = switch(compress, none = FALSE, compress)),
      error = function(e) {
        unlink(tmp)
        mk_abort("file", sprintf("Can't write the value of `%s` to '%s': %s", nm, tmp,
                                 conditionMessage(e)), path = tmp, call = NULL)
      }
    )
    if (!file.rename(tmp, rec$path)) {
      unlink(tmp)
      mk_abort("file", sprintf("Can't rename '%s' to '%s'.", tmp, rec$path),
               path = rec$path, call = NULL)
    }
    rec$md5 <- unname(tools::md5sum(rec$path))
  }
  rec$disk <- file.size(rec$path)
  rec$loaded <- FALSE
  rec
}

# File-backed storage for plain double, integer and logical vectors and
# matrices whose data is stored (not compact: those serialize small).
offload_as_fm <- function(value, size) {
  if (.Platform$OS.type == "windows") return(FALSE)
  if (!typeof(value) %in% c("double", "integer", "logical") || is.object(value) || is_fm(value)) {
    return(FALSE)
  }
  a <- names(attributes(value))
  if (length(setdiff(a, c("dim", "dimnames")))) return(FALSE)
  if (!is.null(dim(value)) && length(dim(value)) != 2L) return(FALSE)
  if (is.null(dim(value)) && length(a)) return(FALSE)
  size >= length(value) * elt_size(typeof(value))
}

# The promise's code: reload the value described by `rec`, after checking
# its file.
offload_value <- function(rec) {
  path <- rec$path
  if (!file.exists(path)) {
    mk_abort("file", sprintf("Can't reload `%s`: its file '%s' no longer exists.", rec$name, path),
             path = path, call = NULL)
  }
  if (identical(rec$storage, "file-backed")) {
    h <- tryCatch(.Call(ffi_fm_header, path), memkit_error = function(e) NULL)
    if (is.null(h) || !identical(h$checksum, rec$checksum)) {
      mk_abort("format", sprintf("Can't reload `%s`: its file '%s' was replaced or damaged.",
                                 rec$name, path), path = path, call = NULL)
    }
    value <- fm_open(path)
    if (isTRUE(rec$vector)) dim(value) <- NULL
  } else {
    if (!identical(unname(tools::md5sum(path)), rec$md5)) {
      mk_abort("format", sprintf("Can't reload `%s`: its file '%s' was changed since it was written.",
                                 rec$name, path), path = path, call = NULL)
    }
    value <- readRDS(path)
    unlink(path)
  }
  rec$loaded <- TRUE
  value
}

# The offload record of each of `names` in envir that is offloaded and not
# yet loaded, or NULL.
offload_records <- function(envir, names) {
  if (length(names) == 0L) return(list())
  envs <- .Call(ffi_offload_probe, envir, names)
  lapply(envs, function(e) {
    if (is.environment(e) && inherits(e, "memkit_offload") &&
        identical(parent.env(e), asNamespace("memkit")) && !isTRUE(e$loaded)) e
  })
}

#' @rdname mem_offload
#' @param in_memory `FALSE` to bring file-backed values back as they come
#'   back on first use (memory-mapped); `TRUE` to read them into memory and
#'   delete their files.
#' @return `mem_restore()`: invisibly, a data frame with the `name`,
#'   `class` and `storage` of each binding loaded back.
#' @export
mem_restore <- function(names = NULL, envir = parent.frame(), in_memory = FALSE) {
  check_env(envir)
  check_flag(in_memory)
  if (is.null(names)) {
    names <- ls(envir, all.names = TRUE, sorted = TRUE)
  } else {
    check_binding_names(names, envir)
    names <- unique(names)
  }
  recs <- offload_records(envir, names)
  keep <- !vapply(recs, is.null, logical(1))
  names <- names[keep]
  recs <- recs[keep]
  for (i in seq_along(names)) {
    value <- get(names[[i]], envir = envir, inherits = FALSE)
    if (in_memory && identical(recs[[i]]$storage, "file-backed")) {
      d <- dim(value)
      value <- fm_read(if (is.null(d)) matrix(value, ncol = 1L) else value)
      if (is.null(d)) dim(value) <- NULL
      assign(names[[i]], value, envir = envir)
      rm(value)
      unlink(recs[[i]]$path)
    } else {
      # A plain binding in place of the forced promise.
      assign(names[[i]], value, envir = envir)
      rm(value)
    }
  }
  invisible(data.frame(
    name = names,
    class = vapply(recs, function(r) r$class, character(1), USE.NAMES = FALSE),
    storage = vapply(recs, function(r) r$storage, character(1), USE.NAMES = FALSE),
    stringsAsFactors = FALSE
  ))
}

#' @export
print.mem_offload <- function(x, ...) {
  n <- nrow(x$moved)
  cat(sprintf("<mem_offload> %d binding%s moved to disk\n", n, if (n == 1L) "" else "s"))
  if (n > 0L) {
    df <- data.frame(name = x$moved$name, class = x$moved$class, storage = x$moved$storage,
                     size = format(x$moved$size), disk = format(x$moved$disk),
                     stringsAsFactors = FALSE)
    print(df, right = FALSE, row.names = FALSE)
  }
  cat(sprintf("predicted: %s; freed: %s; on disk: %s\n", format(x$predicted),
              format(x$freed), format(x$disk)))
  invisible(x)
}

# mem_ls(): offloaded bindings not yet loaded read "<offloaded>"; their
# class, storage and bytes on disk go in attribute "offloaded".
offload_mark_ls <- function(out, envir) {
  lazy <- out$name[out$class == "<promise>"]
  recs <- offload_records(envir, lazy)
  hit <- !vapply(recs, is.null, logical(1))
  if (!any(hit)) return(out)
  recs <- recs[hit]
  out$class[match(lazy[hit], out$name)] <- "<offloaded>"
  off <- data.frame(
    name = lazy[hit],
    class = vapply(recs, function(r) r$class, character(1), USE.NAMES = FALSE),
    storage = vapply(recs, function(r) r$storage, character(1), USE.NAMES = FALSE),
    stringsAsFactors = FALSE
  )
  off$disk <- new_mem_bytes(vapply(recs, function(r) r$disk, double(1), USE.NAMES = FALSE))
  off$path <- vapply(recs, function(r) r$path, character(1), USE.NAMES = FALSE)
  attr(out, "offloaded") <- off
  out
}

# The footer print.mem_ls() adds for the offloaded rows it shows.
offload_ls_footer <- function(x) {
  off <- attr(x, "offloaded")
  if (is.null(off)) return(invisible())
  off <- off[off$name %in% x$name[x$class == "<offloaded>"], , drop = FALSE]
  if (nrow(off) == 0L) return(invisible())
  items <- sprintf("%s (%s, %s on disk, %s)", off$name, off$class, format(off$disk),
                   off$storage)
  cat("# <offloaded>: on disk, not loaded (first use reloads): ",
      paste(items, collapse = "; "), "\n", sep = "")
  invisible()
}
