#' Numbers of bytes
#'
#' Every size memkit reports is a `mem_bytes`: a double vector of bytes that
#' prints with unambiguous units and otherwise behaves like a number. It sums,
#' compares and does arithmetic like the bytes it holds; `as.numeric()` gives
#' the bytes.
#'
#' By default sizes print in binary (IEC) units: `B`, `KiB`, `MiB`, `GiB`,
#' `TiB`, `PiB`, each 1024 times the last. Decimal (SI) units, `kB`, `MB`,
#' `GB`, ... (powers of 1000), are used with `standard = "SI"` or
#' `options(memkit.units = "SI")`.
#'
#' `mem_bytes()` also reads sizes written as strings: `"512"`, `"64 MB"`,
#' `"1.5 GiB"`, `"2G"`. A unit with `i` (`KiB`, `MiB`, ...) or a bare letter
#' (`K`, `M`, `G`, as in `ulimit`) is binary; `kB`, `MB`, `GB`, ... are
#' decimal. Comparisons accept such strings on either side:
#' `mem_size(x) > "1 GB"`.
#'
#' Arithmetic keeps the class where the result is still a number of bytes:
#' bytes plus or minus bytes, bytes times or divided by a plain number,
#' `sum()`, `min()`, `max()`, `range()`, `abs()`, `round()`, `cumsum()`.
#' Bytes divided by bytes is a plain ratio.
#'
#' @section In tibbles and vctrs:
#' When the vctrs and pillar packages are installed (neither is needed),
#' memkit gives them methods as they load: `vctrs::vec_c()`,
#' `vctrs::vec_rbind()` and friends combine `mem_bytes` with `mem_bytes`
#' and with plain numbers into `mem_bytes`, and casts to and from double
#' work; a tibble shows a `mem_bytes` column as `<bytes>`, right-aligned,
#' each value with its unit.
#'
#' @param x A numeric vector of bytes, or a character vector of sizes with
#'   units.
#' @return `mem_bytes()`: a `mem_bytes` vector. `format()`: a character
#'   vector. `is_mem_bytes()`: `TRUE` or `FALSE`.
#' @export
#' @examples
#' x <- mem_bytes(c(0, 56, 1536, 8e6, 3 * 2^30))
#' x
#' format(x, units = "MiB")
#' format(x, standard = "SI")
#' sum(x)
#' x > "1 MB"
#' as.numeric(x)
#' mem_bytes("64 MiB")
#' if (requireNamespace("tibble", quietly = TRUE)) {
#'   tibble::tibble(size = x)
#' }
mem_bytes <- function(x = double()) {
  if (is_mem_bytes(x)) return(x)
  if (is.character(x)) {
    x <- parse_bytes(x)
  } else if (!(is.numeric(x) || is.logical(x) && all(is.na(x)))) {
    mk_abort("type", sprintf(
      "`x` must be a number of bytes or a string such as \"64 MB\", not %s.",
      describe_value(x)
    ))
  }
  new_mem_bytes(x)
}

# Low-level constructor: keeps names, no checks.
new_mem_bytes <- function(x = double()) {
  nms <- names(x)
  x <- as.double(x)
  if (!is.null(nms)) names(x) <- nms
  class(x) <- "mem_bytes"
  x
}

# A size argument: a number of bytes, or a string such as "1 MB". Returns
# the bytes as a double.
check_bytes_arg <- function(x, arg = deparse(substitute(x)), call = sys.call(-1L)) {
  if (is.character(x) && length(x) == 1L && !is.na(x)) {
    x <- tryCatch(as.numeric(parse_bytes(x)), memkit_error = function(e) {
      mk_abort("argument", sprintf(
        "`%s` must be a number of bytes or a size such as \"1 MB\", not %s.",
        arg, describe_value(x)), call = call)
    })
  }
  check_scalar_number(x, arg = arg, min = 0, call = call)
  as.double(x)
}

#' @rdname mem_bytes
#' @export
is_mem_bytes <- function(x) inherits(x, "mem_bytes")

# Decimals that give `digits` significant digits without ever dropping integer
# digits: 1.23, 12.3, 123, 1023.
decimals_for <- function(val, digits) {
  a <- abs(val)
  a[!is.finite(a)] <- 0
  as.integer(pmax(0, digits - 1L - floor(log10(pmax(a, 1e-300)))) * (a >= 1) +
    (a < 1) * (digits - 1L))
}

units_iec <- c("B", "KiB", "MiB", "GiB", "TiB", "PiB")
units_si <- c("B", "kB", "MB", "GB", "TB", "PB")

parse_bytes <- function(x) {
  s <- trimws(x)
  m <- regmatches(s, regexec("^([-+]?[0-9]*\\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\\s*([A-Za-z]*)$", s, perl = TRUE))
  out <- rep(NA_real_, length(s))
  for (i in seq_along(s)) {
    if (is.na(s[[i]]) || toupper(s[[i]]) == "NA") next
    if (length(m[[i]]) != 3L) {
      mk_abort("argument", sprintf("Can't read \"%s\" as a number of bytes.", x[[i]]),
               call = sys.call(-2L))
    }
    value <- as.double(m[[i]][[2L]])
    unit <- m[[i]][[3L]]
    mult <- unit_multiplier(unit)
    if (is.na(mult)) {
      mk_abort("argument", sprintf(
        "Unknown unit \"%s\" in \"%s\"; use B, KiB, MiB, GiB, TiB or kB, MB, GB, TB.",
        unit, x[[i]]
      ), call = sys.call(-2L))
    }
    out[[i]] <- value * mult
  }
  names(out) <- names(x)
  out
}

unit_multiplier <- function(unit) {
  if (unit %in% c("", "B", "b")) return(1)
  u <- toupper(unit)
  letters6 <- c("K", "M", "G", "T", "P")
  pow <- match(substr(u, 1L, 1L), letters6)
  if (is.na(pow)) return(NA_real_)
  rest <- substring(u, 2L)
  if (rest %in% c("", "IB", "I")) return(1024^pow)
  if (rest == "B") return(1000^pow)
  NA_real_
}

#' @rdname mem_bytes
#' @param units `"auto"` (the largest unit that keeps the number at or above
#'   one, chosen for each element), or one unit for all elements: one of `B`,
#'   `KiB`, `MiB`, `GiB`, `TiB`, `PiB` or `kB`, `MB`, `GB`, `TB`, `PB`.
#' @param standard `"IEC"` (powers of 1024) or `"SI"` (powers of 1000); used
#'   with `units = "auto"`.
#' @param digits Significant digits.
#' @param ... Not used.
#' @export
format.mem_bytes <- function(x, units = "auto",
                             standard = getOption("memkit.units", "IEC"),
                             digits = 3L, ...) {
  v <- unclass(x)
  attributes(v) <- NULL
  if (length(v) == 0L) return(character())
  if (is.null(digits)) digits <- 3L # format.data.frame() passes digits = NULL
  standard <- match.arg(toupper(standard), c("IEC", "SI"))
  if (!identical(units, "auto")) {
    mult <- if (is.character(units) && length(units) == 1L) unit_multiplier(units) else NA
    if (is.na(mult)) {
      mk_abort("argument", sprintf(
        "`units` must be \"auto\" or one of %s, not %s.",
        paste(c(units_iec, units_si[-1L]), collapse = ", "), describe_value(units)
      ))
    }
    val <- v / mult
    lab <- rep(units, length(v))
  } else {
    base <- if (standard == "IEC") 1024 else 1000
    labs <- if (standard == "IEC") units_iec else units_si
    pow <- ifelse(is.finite(v) & abs(v) >= 1,
                  pmin(floor(log(abs(v), base) + 1e-9), length(labs) - 1L), 0)
    val <- v / base^pow
    # Rounding may reach the next unit (1023.99 KiB -> 1024 KiB): step up.
    up <- is.finite(val) & round(abs(val), decimals_for(val, digits)) >= base &
      pow < length(labs) - 1L
    pow[up] <- pow[up] + 1
    val[up] <- val[up] / base
    lab <- labs[pow + 1L]
  }
  dec <- ifelse(lab == "B" & abs(val - round(val)) < 1e-9, 0L, decimals_for(val, digits))
  num <- vapply(seq_along(val), function(i) {
    if (!is.finite(val[[i]])) return(format(val[[i]]))
    s <- formatC(round(val[[i]], dec[[i]]), format = "f", digits = dec[[i]])
    if (dec[[i]] > 0L) s <- sub("\\.?0+$", "", s)
    if (s == "-0") "0" else s
  }, character(1))
  out <- ifelse(is.na(v), "NA", paste(num, lab))
  names(out) <- names(x)
  out
}

#' @export
as.character.mem_bytes <- function(x, ...) format(x, ...)

#' @export
print.mem_bytes <- function(x, ...) {
  if (length(x) == 0L) {
    cat("<mem_bytes[0]>\n")
  } else {
    print(format(x, ...), quote = FALSE)
  }
  invisible(x)
}

#' @export
`[.mem_bytes` <- function(x, i, ...) new_mem_bytes(NextMethod())

#' @export
`[[.mem_bytes` <- function(x, i, ...) new_mem_bytes(NextMethod())

#' @export
`[<-.mem_bytes` <- function(x, i, ..., value) {
  new_mem_bytes(NextMethod(value = as.double(mem_bytes(value))))
}

#' @export
c.mem_bytes <- function(...) {
  new_mem_bytes(unlist(lapply(list(...), function(e) unclass(mem_bytes(e)))))
}

#' @export
rep.mem_bytes <- function(x, ...) new_mem_bytes(NextMethod())

#' @export
unique.mem_bytes <- function(x, ...) new_mem_bytes(NextMethod())

#' @export
as.data.frame.mem_bytes <- function(x, ...) as.data.frame.vector(x, ...)

#' @export
mean.mem_bytes <- function(x, ...) new_mem_bytes(mean(unclass(x), ...))

#' @export
Ops.mem_bytes <- function(e1, e2) {
  # Strings on either side are sizes with units ("1 GB").
  if (is.character(e1)) e1 <- parse_bytes(e1)
  if (!missing(e2) && is.character(e2)) e2 <- parse_bytes(e2)
  bytes1 <- is_mem_bytes(e1)
  bytes2 <- !missing(e2) && is_mem_bytes(e2)
  v1 <- strip_bytes(e1)
  if (missing(e2)) {
    res <- get(.Generic)(v1)
    return(if (.Generic %in% c("-", "+")) new_mem_bytes(res) else res)
  }
  v2 <- strip_bytes(e2)
  res <- get(.Generic)(v1, v2)
  keep <- switch(.Generic,
    "+" = , "-" = , "%%" = TRUE,
    "*" = xor(bytes1, bytes2),
    "/" = bytes1 && !bytes2,
    FALSE
  )
  if (keep) new_mem_bytes(res) else res
}

strip_bytes <- function(x) {
  if (is_mem_bytes(x)) {
    nms <- names(x)
    x <- as.double(unclass(x))
    names(x) <- nms
  }
  x
}

#' @export
Summary.mem_bytes <- function(..., na.rm = FALSE) {
  args <- lapply(list(...), function(e) strip_bytes(mem_bytes(e)))
  res <- do.call(.Generic, c(args, na.rm = na.rm))
  if (.Generic %in% c("sum", "min", "max", "range")) new_mem_bytes(res) else res
}

#' @export
Math.mem_bytes <- function(x, ...) {
  res <- get(.Generic)(strip_bytes(x), ...)
  keep <- c("abs", "sign", "floor", "ceiling", "trunc", "round", "signif",
            "cumsum", "cummax", "cummin")
  if (.Generic %in% keep && .Generic != "sign") new_mem_bytes(res) else res
}
