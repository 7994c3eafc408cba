# A byte-budget cache measured with memkit's own sizes, with the interface
# that memoise uses (the one cachem defines), without depending on cachem.

#' A cache with a memory budget measured by memkit's sizes
#'
#' `mem_cache()` makes an in-memory key-value cache that keeps the memory
#' its values take under `max_size`, measured with [mem_size()]: memory
#' shared inside a value counted once, compact vectors (`1:1e9`) as the
#' few bytes they take, environments of closures and formulas followed.
#' When a value would take the cache over its budget, entries are evicted:
#' the least recently used first (`evict = "lru"`) or the oldest first
#' (`"fifo"`). With `spill`, a directory, evicted entries are written there
#' (compressed) instead of dropped, and the next `get()` of their key brings
#' them back into memory.
#'
#' It has the interface that \pkg{memoise} expects of a cache, so
#' `memoise::memoise(f, cache = mem_cache("1 GB"))` works:
#'
#' * `$get(key, missing = )`: the value, or `missing` when the key is not
#'   there (by default a `key_missing` object, which memoise recognises).
#' * `$set(key, value)`, `$exists(key)`, `$remove(key)`, `$reset()`,
#'   `$keys()`, `$size()` (the number of entries), `$info()` (settings and
#'   counters), `$prune()` (evict down to the budget; `set()` does it).
#' * `$bytes()`: the bytes the values in memory take, as [mem_bytes].
#'
#' Keys are strings of letters, digits, `_` and `-` (at most 200
#' characters), as memoise's hashes are.
#'
#' @section What the budget counts:
#' Each value is measured alone, when it is set, and the budget holds the
#' sum. A value that shares memory with the session (a data frame whose
#' columns are also bound to variables) is counted with that memory: once
#' the session drops its variables, the cache alone keeps the memory alive,
#' and the budget must hold then too. Two entries that share a vector count
#' it twice for the same reason, so the budget is an upper bound on what
#' the cache keeps alive. A value larger than the whole budget is not kept
#' in memory: it goes straight to `spill`, or is not cached (an eviction).
#' cachem counts with [object.size()], which counts a vector shared inside
#' a value once per reference, expands compact vectors, and does not count
#' the environments of closures and formulas.
#'
#' @section Spilled entries:
#' An evicted entry is written with [saveRDS()] (compressed with `compress`)
#' to a file in a directory of the cache's own inside `spill`, and its
#' checksum is kept. Bringing it back checks the file's checksum first: a
#' changed or missing file is an error of class `memkit_error_format` or
#' `memkit_error_file`, and the entry is dropped. `reset()` deletes the
#' files, and so does the collection of the cache object (its directory is
#' removed too). Spilled entries have no budget of their own.
#'
#' @param max_size The budget: a number of bytes or a size such as
#'   `"512 MB"`.
#' @param evict `"lru"` (least recently used first) or `"fifo"` (oldest
#'   first).
#' @param spill `NULL`, or a directory to keep evicted entries in.
#' @param compress Compression of spilled entries: `"gzip"`, `"bzip2"`,
#'   `"xz"` or `"none"`.
#' @param missing The value `get()` returns for a key that is not there.
#' @return An object of class `mem_cache`: a list of functions (the
#'   methods above) sharing the cache's state. `print()` and `summary()`
#'   show its size, budget and counters: hits, misses, evictions, entries
#'   spilled, brought back, and bytes written to `spill`.
#' @seealso [mem_size()] for how values are measured.
#' @export
#' @examples
#' cache <- mem_cache("10 MB")
#' cache$set("a", runif(1e5))
#' cache$set("b", 1:1e8)         # compact: a few hundred bytes
#' cache$bytes()
#' cache$get("a")[1:3]
#' cache$get("nothing")
#' cache
#'
#' if (requireNamespace("memoise", quietly = TRUE)) {
#'   slow_sq <- function(x) { Sys.sleep(0.1); x^2 }
#'   fast_sq <- memoise::memoise(slow_sq, cache = mem_cache("1 MB"))
#'   fast_sq(3)
#'   fast_sq(3)   # from the cache
#' }
mem_cache <- function(max_size = "512 MB", evict = c("lru", "fifo"), spill = NULL,
                      compress = c("gzip", "bzip2", "xz", "none"),
                      missing = key_missing()) {
  max_size <- check_bytes_arg(max_size)
  evict <- check_choice(evict, c("lru", "fifo"), "evict")
  compress <- check_choice(compress, c("gzip", "bzip2", "xz", "none"), "compress")
  if (!is.null(spill)) {
    check_string(spill)
    if (!dir.exists(spill) && !dir.create(spill, recursive = TRUE, showWarnings = FALSE)) {
      mk_abort("file", sprintf("Can't create the directory `spill` = '%s'.", spill),
               path = spill)
    }
    spill <- tempfile("mem_cache-", tmpdir = normalizePath(spill, mustWork = TRUE))
    if (!dir.create(spill, showWarnings = FALSE)) {
      mk_abort("file", sprintf("Can't create a directory in '%s'.", dirname(spill)), path = spill)
    }
  }
  missing_default <- missing
  lru <- evict == "lru"
  rds_compress <- switch(compress, none = FALSE, compress)

  # Entries live in slots: idx maps a key to its slot; values_, sizes_ and
  # used_ (the tick of the last set or, for LRU, get) are indexed by slot.
  # Freed slots are reused.
  idx <- new.env(hash = TRUE, parent = emptyenv())
  keys_ <- character()
  values_ <- list()
  sizes_ <- numeric()
  used_ <- numeric()
  free_ <- integer()
  tick <- 0
  total <- 0
  n <- 0L
  # Spilled entries: key -> list(file, md5, bytes (on disk), size).
  spilled <- new.env(hash = TRUE, parent = emptyenv())
  # Counters, as separate numbers: each update is one assignment.
  n_hits <- n_misses <- n_sets <- n_evictions <- n_spilled <- n_reloads <- n_spill_bytes <- 0

  if (!is.null(spill)) {
    # The directory holds only this cache's files: it goes with the cache.
    reg.finalizer(idx, function(e) unlink(spill, recursive = TRUE), onexit = TRUE)
  }

  put <- function(key, value, size) {
    tick <<- tick + 1
    slot <- idx[[key]]
    if (is.null(slot)) {
      if (length(free_)) {
        slot <- free_[[length(free_)]]
        free_ <<- free_[-length(free_)]
      } else {
        slot <- length(keys_) + 1L
      }
      assign(key, slot, envir = idx)
      keys_[slot] <<- key
      n <<- n + 1L
    } else {
      total <<- total - sizes_[[slot]]
    }
    values_[slot] <<- list(value)
    sizes_[slot] <<- size
    used_[slot] <<- tick
    total <<- total + size
    invisible(TRUE)
  }

  drop_slot <- function(key, slot) {
    rm(list = key, envir = idx)
    total <<- total - sizes_[[slot]]
    keys_[slot] <<- NA_character_
    values_[slot] <<- list(NULL)
    sizes_[slot] <<- 0
    used_[slot] <<- Inf
    free_ <<- c(free_, slot)
    n <<- n - 1L
  }

  spill_write <- function(key, value, size) {
    file <- file.path(spill, paste0(key, ".rds"))
    tmp <- paste0(file, ".tmp")
    ok <- tryCatch({
      saveRDS(value, tmp, compress = rds_compress)
      TRUE
    }, error = function(e) {
      unlink(tmp)
      mk_warn("file", sprintf("Can't write evicted entry '%s' to '%s': %s", key, tmp,
                              conditionMessage(e)), path = tmp)
      FALSE
    })
    if (!ok || !file.rename(tmp, file)) {
      unlink(tmp)
      return(FALSE)
    }
    bytes <- file.size(file)
    assign(key, list(file = file, md5 = unname(tools::md5sum(file)), bytes = bytes,
                     size = size), envir = spilled)
    n_spilled <<- n_spilled + 1
    n_spill_bytes <<- n_spill_bytes + bytes
    TRUE
  }

  spill_drop <- function(key) {
    rec <- spilled[[key]]
    if (is.null(rec)) return(FALSE)
    unlink(rec$file)
    rm(list = key, envir = spilled)
    TRUE
  }

  evict_one <- function() {
    live <- which(!is.na(keys_))
    slot <- live[[which.min(used_[live])]]
    key <- keys_[[slot]]
    value <- values_[[slot]]
    size <- sizes_[[slot]]
    drop_slot(key, slot)
    n_evictions <<- n_evictions + 1
    if (!is.null(spill)) spill_write(key, value, size)
  }

  prune <- function() {
    while (total > max_size && n > 0L) evict_one()
    invisible(TRUE)
  }

  get <- function(key, missing = missing_default) {
    check_key(key)
    slot <- idx[[key]]
    if (!is.null(slot)) {
      n_hits <<- n_hits + 1
      if (lru) {
        tick <<- tick + 1
        used_[slot] <<- tick
      }
      return(values_[[slot]])
    }
    if (!is.null(spill) && !is.null(spilled[[key]])) {
      value <- reload(key)
      if (!inherits(value, "key_missing")) {
        n_hits <<- n_hits + 1
        return(value)
      }
    }
    n_misses <<- n_misses + 1
    missing
  }

  # Brings a spilled entry back: checked, read, and set again (which may
  # evict, and spill, others). A file that is gone, changed or unreadable
  # gives a warning and a miss: the entry is dropped.
  reload <- function(key) {
    rec <- spilled[[key]]
    rm(list = key, envir = spilled)
    on.exit(unlink(rec$file))
    problem <- if (!file.exists(rec$file)) {
      c("file", sprintf("the file '%s' no longer exists", rec$file))
    } else if (!identical(unname(tools::md5sum(rec$file)), rec$md5)) {
      c("format", sprintf("the file '%s' was changed since it was written", rec$file))
    }
    value <- if (is.null(problem)) {
      tryCatch(readRDS(rec$file), error = function(e) {
        problem <<- c("format", sprintf("'%s' can't be read: %s", rec$file, conditionMessage(e)))
        NULL
      })
    }
    if (!is.null(problem)) {
      mk_warn(problem[[1L]], sprintf("The spilled entry '%s' is dropped: %s.", key, problem[[2L]]),
              path = rec$file, call = NULL)
      return(key_missing())
    }
    n_reloads <<- n_reloads + 1
    if (rec$size <= max_size) {
      put(key, value, rec$size)
      prune()
    } else {
      spill_write(key, value, rec$size)
      on.exit()
    }
    value
  }

  set <- function(key, value) {
    check_key(key)
    size <- .Call(ffi_size_cells, list(value))[[3L]]
    n_sets <<- n_sets + 1
    if (!is.null(spill) && !is.null(spilled[[key]])) spill_drop(key)
    if (size > max_size) {
      # Too large for the budget: never in memory.
      slot <- idx[[key]]
      if (!is.null(slot)) drop_slot(key, slot)
      n_evictions <<- n_evictions + 1
      if (!is.null(spill)) spill_write(key, value, size)
      return(invisible(FALSE))
    }
    put(key, value, size)
    prune()
  }

  exists <- function(key) {
    check_key(key)
    !is.null(idx[[key]]) || (!is.null(spill) && !is.null(spilled[[key]]))
  }

  remove <- function(key) {
    check_key(key)
    slot <- idx[[key]]
    found <- !is.null(slot)
    if (found) drop_slot(key, slot)
    if (!is.null(spill)) found <- spill_drop(key) || found
    invisible(found)
  }

  reset <- function() {
    for (k in ls(spilled, all.names = TRUE)) spill_drop(k)
    rm(list = ls(idx, all.names = TRUE), envir = idx)
    keys_ <<- character()
    values_ <<- list()
    sizes_ <<- numeric()
    used_ <<- numeric()
    free_ <<- integer()
    total <<- 0
    n <<- 0L
    invisible(TRUE)
  }

  keys <- function() {
    live <- which(!is.na(keys_))
    k <- keys_[live][order(used_[live])]
    c(k, sort(ls(spilled, all.names = TRUE)))
  }

  size <- function() n + length(ls(spilled, all.names = TRUE))

  bytes <- function() new_mem_bytes(total)

  info <- function() {
    list(max_size = new_mem_bytes(max_size), evict = evict, spill = spill,
         compress = compress, missing = missing_default, n = n,
         n_spilled = length(ls(spilled, all.names = TRUE)), bytes = new_mem_bytes(total),
         hits = n_hits, misses = n_misses, sets = n_sets,
         evictions = n_evictions, spilled = n_spilled,
         reloads = n_reloads, spill_bytes = new_mem_bytes(n_spill_bytes))
  }

  structure(
    list(get = get, set = set, exists = exists, remove = remove, reset = reset, keys = keys,
         size = size, bytes = bytes, info = info, prune = prune),
    class = "mem_cache"
  )
}

# The value get() returns for a missing key, as memoise recognises it
# (cachem's key_missing() makes the same object).
key_missing <- function() structure(list(), class = "key_missing")

check_key <- function(key, call = sys.call(-1L)) {
  if (!is.character(key) || length(key) != 1L || is.na(key) ||
      nchar(key, "bytes") > 200L || !grepl("^[A-Za-z0-9_-]+$", key)) {
    mk_abort("argument", sprintf(
      "`key` must be a string of 1 to 200 letters, digits, `_` or `-`, not %s.",
      describe_value(key)), call = call)
  }
}

#' @export
print.mem_cache <- function(x, ...) {
  i <- x$info()
  cat(sprintf("<mem_cache> %d entr%s, %s of %s (%s)%s\n", i$n, if (i$n == 1L) "y" else "ies",
              format(i$bytes), format(i$max_size), i$evict,
              if (is.null(i$spill)) "" else sprintf("; %d spilled", i$n_spilled)))
  cat(sprintf("hits %s, misses %s, evictions %s", format(i$hits), format(i$misses),
              format(i$evictions)))
  if (!is.null(i$spill)) {
    cat(sprintf(", spilled %s (%s written), brought back %s", format(i$spilled),
                format(i$spill_bytes), format(i$reloads)))
  }
  cat("\n")
  invisible(x)
}

#' @export
summary.mem_cache <- function(object, ...) {
  i <- object$info()
  lookups <- i$hits + i$misses
  structure(
    list(entries = i$n, spilled_entries = i$n_spilled, bytes = i$bytes, max_size = i$max_size,
         used = if (i$max_size > 0) as.numeric(i$bytes) / as.numeric(i$max_size) else NA_real_,
         evict = i$evict, spill = i$spill, hits = i$hits, misses = i$misses,
         hit_rate = if (lookups > 0) i$hits / lookups else NA_real_, sets = i$sets,
         evictions = i$evictions, spilled = i$spilled, reloads = i$reloads,
         spill_bytes = i$spill_bytes),
    class = "summary.mem_cache"
  )
}

#' @export
print.summary.mem_cache <- function(x, ...) {
  cat("<mem_cache> summary\n")
  cat(sprintf("  entries in memory: %d (%s of %s, %.1f%% of the budget)\n", x$entries,
              format(x$bytes), format(x$max_size), 100 * x$used))
  cat(sprintf("  eviction: %s; spill: %s\n", x$evict,
              if (is.null(x$spill)) "none" else sprintf("%s (%d entr%s)", x$spill, x$spilled_entries, if (x$spilled_entries == 1L) "y" else "ies")))
  cat(sprintf("  lookups: %s hits, %s misses (hit rate %s)\n", format(x$hits), format(x$misses),
              if (is.na(x$hit_rate)) "NA" else sprintf("%.1f%%", 100 * x$hit_rate)))
  cat(sprintf("  sets: %s; evictions: %s\n", format(x$sets), format(x$evictions)))
  if (!is.null(x$spill)) {
    cat(sprintf("  spilled: %s entries, %s written; brought back: %s\n", format(x$spilled),
                format(x$spill_bytes), format(x$reloads)))
  }
  invisible(x)
}
