# Classed conditions. Every error memkit raises has class
# c("memkit_error_<kind>", "memkit_error", "error", "condition").

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
