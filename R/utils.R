# Small internal helpers shared by several families.

# The process's resident memory now, as mem_bytes (NA where the system gives
# no figure).
rss_now <- function() new_mem_bytes(.Call(ffi_utils_rss))

# Seconds on the monotonic clock that every memkit timestamp uses.
mono_now <- function() .Call(ffi_utils_now)

# Seconds as "12.3 ms" or "1.23 s", for print() and summary() methods.
format_secs <- function(s) {
  if (is.na(s)) return("NA")
  if (s >= 1) sprintf("%.2f s", s) else sprintf("%.3g ms", s * 1000)
}

# Bytes per cons cell and per vector cell, as gc() and gcinfo() count them.
ncell_bytes <- 56
vcell_bytes <- 8

# Bytes per element of each vector type, defined here once: what C's
# sizeof() gives for int (logical, integer), double, Rcomplex and Rbyte.
# Vectors of other types (character, list, expression) hold pointers.
elt_sizes <- c(logical = 4, integer = 4, double = 8, complex = 16, raw = 1)

# The element size of each of `type` (names as typeof() gives them).
elt_size <- function(type) {
  size <- unname(elt_sizes[type])
  size[is.na(size)] <- .Machine$sizeof.pointer
  size
}
