# Classed conditions: the one taxonomy of memkit's errors and warnings,
# documented in ?memkit_errors. Every error memkit raises has class
# c("memkit_error_<kind>", "memkit_error", "error", "condition"); every
# warning c("memkit_warning_<kind>", "memkit_warning", "warning", "condition").

#' The errors and warnings memkit signals
#'
#' Every error memkit raises is a condition of class
#' `c("memkit_error_<kind>", "memkit_error", "error", "condition")`, and every
#' warning one of class
#' `c("memkit_warning_<kind>", "memkit_warning", "warning", "condition")`,
#' so code can catch one kind with `tryCatch(..., memkit_error_file = )` or
#' all of them with `memkit_error`. The kinds:
#'
#' \describe{
#'   \item{`argument`}{An argument has a bad value: wrong length, out of
#'     range, a name that is not bound. The message names the argument and
#'     the value.}
#'   \item{`type`}{An object is of the wrong type or class, such as a list
#'     where a numeric matrix is needed.}
#'   \item{`file`}{The operating system refused a file operation (open,
#'     create, map, rename, resize). The condition has fields `errno` (the
#'     system's error number) and `path`.}
#'   \item{`disk`}{No room is left on the disk (or the file system's limit
#'     on file sizes was reached) for a file memkit creates or grows;
#'     fields `errno` and `path`. The file is left as it was.}
#'   \item{`format`}{A file or a saved reference is not what memkit wrote, or
#'     was changed since: a bad header, a checksum that does not match, a
#'     size that disagrees with the file, a file that shrank under a
#'     mapping. Field `path` where one is known.}
#'   \item{`parse`}{A text file being imported ([fm_import()]) has a line
#'     memkit can't read: more or fewer fields than the header, a field that
#'     is not a number in a numeric column, an unterminated quote. Fields
#'     `path`, `line` (the line's number in the file) and `column` (`NA` when
#'     the whole line is at fault).}
#'   \item{`memory`}{memkit could not allocate the memory it needs for its
#'     own work (the walk of an object graph, a buffer).}
#'   \item{`memory_limit`}{The expression given to [with_mem_limit()] passed
#'     its limit and was stopped. Fields `limit`, `of` (`"process"` or
#'     `"cgroup"`), `value` (the reading that passed the limit), `peak` (the
#'     peak resident memory) and `profile` (a [mem_profile()] result of the
#'     run up to the stop).}
#'   \item{`state`}{An object or the session is in the wrong state for the
#'     call: a closed matrix, a trace that is not running, a locked
#'     environment.}
#'   \item{`system`}{Another call to the operating system failed (a thread,
#'     a pipe, a clock); fields `errno` and `path` (`NA` when no path is
#'     involved).}
#'   \item{`unsupported`}{This platform or this R lacks what the call needs.}
#'   \item{`internal`}{A bug in memkit: please report it.}
#' }
#'
#' Warnings use the same kinds, for example `memkit_warning_memory` when the
#' sampler drops samples for want of memory.
#'
#' @name memkit_errors
#' @aliases memkit_error memkit_warning
#' @keywords internal
#' @examples
#' tryCatch(mem_retained("no_such_binding", new.env()),
#'          memkit_error_argument = function(e) conditionMessage(e))
NULL

mk_error_kinds <- c("argument", "type", "file", "disk", "format", "parse", "memory",
                    "memory_limit", "state", "system", "unsupported", "internal")

mk_condition <- function(kind, message, call = NULL, ...) {
  structure(
    class = c(paste0("memkit_error_", kind), "memkit_error", "error", "condition"),
    list(message = message, call = call, ...)
  )
}

# Signal a memkit error from R code. `call` defaults to the caller's call so
# the user sees the exported function they called.
mk_abort <- function(kind, message, ..., call = sys.call(-1L)) {
  stop(mk_condition(kind, message, call = call, ...))
}

# Signal a classed memkit warning.
mk_warn <- function(kind, message, ..., call = sys.call(-1L)) {
  warning(structure(
    class = c(paste0("memkit_warning_", kind), "memkit_warning", "warning", "condition"),
    list(message = message, call = call, ...)
  ))
}

# Called from C (src/errors.c) with the message already formatted.
# sys.call(-1) is the R function that made the .Call.
mk_c_error <- function(kind, message, errno = NA_integer_, path = NA_character_) {
  call <- sys.call(-1L)
  if (is.na(errno)) {
    stop(mk_condition(kind, message, call = call))
  }
  stop(mk_condition(kind, message, call = call, errno = errno, path = path))
}

# Argument checks used across the package (validate in R, trust types in C).
check_scalar_number <- function(x, arg = deparse(substitute(x)),
                                min = -Inf, max = Inf, call = sys.call(-1L)) {
  if (!is.numeric(x) || length(x) != 1L || is.na(x) || x < min || x > max) {
    range <- if (is.finite(min) && is.finite(max)) {
      sprintf(" between %s and %s", format(min), format(max))
    } else if (is.finite(min)) {
      sprintf(" of at least %s", format(min))
    } else if (is.finite(max)) {
      sprintf(" of at most %s", format(max))
    } else ""
    mk_abort("argument", sprintf(
      "`%s` must be a single number%s, not %s.", arg, range, describe_value(x)
    ), call = call)
  }
  invisible(x)
}

check_flag <- function(x, arg = deparse(substitute(x)), call = sys.call(-1L)) {
  if (!is.logical(x) || length(x) != 1L || is.na(x)) {
    mk_abort("argument", sprintf(
      "`%s` must be TRUE or FALSE, not %s.", arg, describe_value(x)
    ), call = call)
  }
  invisible(x)
}

check_string <- function(x, arg = deparse(substitute(x)), call = sys.call(-1L)) {
  if (!is.character(x) || length(x) != 1L || is.na(x)) {
    mk_abort("argument", sprintf(
      "`%s` must be a single string, not %s.", arg, describe_value(x)
    ), call = call)
  }
  invisible(x)
}

# A short description of a value for error messages: `NA`, `a character
# vector of length 3`, `the number -1`.
describe_value <- function(x) {
  if (is.null(x)) return("NULL")
  if (length(x) == 1L && is.atomic(x)) {
    if (is.na(x)) return(sprintf("`%s`", format(x)))
    if (is.character(x)) return(sprintf("the string \"%s\"", x))
    if (is.numeric(x)) return(sprintf("the number %s", format(x)))
    return(sprintf("`%s`", format(x)))
  }
  sprintf("%s %s of length %d", if (is.object(x)) "an object of class" else "a",
          if (is.object(x)) class(x)[1L] else paste(typeof(x), "vector"), length(x))
}

# Progress bars are on unless turned off.
mk_progress_enabled <- function() {
  isTRUE(getOption("memkit.progress", interactive()))
}
