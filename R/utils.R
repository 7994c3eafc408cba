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
