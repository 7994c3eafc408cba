# Small internal helpers shared by several families.

# The process's resident memory now, as mem_bytes (NA where the system gives
# no figure).
rss_now <- function() new_mem_bytes(.Call(ffi_utils_rss))

# Seconds on the monotonic clock that every memkit timestamp uses.
mono_now <- function() .Call(ffi_utils_now)
