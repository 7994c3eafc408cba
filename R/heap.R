# The C allocator's view: its heap (mallinfo2()) and its knobs (mallopt()).

heap_fields <- c("heap", "in_use", "free", "free_chunks", "fastbin_free", "mmapped",
                 "mmapped_blocks", "releasable")
heap_sources <- c("none", "mallinfo", "mallinfo2", "malloc_zone_statistics")

#' The C allocator's heap: memory freed but still held
#'
#' R gets its memory from the C library's allocator (`malloc()`). When R
#' frees objects, the allocator usually keeps the memory for later use
#' instead of returning it to the operating system, so the process's
#' resident memory stays high after `rm()` and `gc()`. `mem_heap()` asks the
#' allocator itself (the GNU C library's `mallinfo2()`) what it holds: the
#' heap it obtained from the system, what of it is in use, what is free
#' (and in how many pieces), what is in separately mapped large blocks, and
#' what could be released from the top of the heap at once.
#'
#' Free memory inside the heap is of two kinds. Free pages that are still
#' resident cost real memory: they are what `free_held` counts, and
#' `fragmentation` is their share of the process's resident memory, in one
#' number. Free pages that were already handed back with `madvise()` (which
#' [mem_gc()]`(trim = TRUE)` does through `malloc_trim()`) stay part of the
#' heap's address range but no longer cost memory. On Linux, `free_held` is
#' the resident part of the main heap (from `/proc/self/smaps`) less what is
#' in use, at most `free`; elsewhere it is `free`. Memory of the
#' allocator's other arenas (used by threads other than R's) is in `heap`,
#' `in_use` and `free` but not in `heap_resident`.
#'
#' What to do about a high figure: `mem_gc(trim = TRUE)` returns free pages
#' to the system now; for a long-running process (a Shiny or plumber
#' server) that builds and drops many objects, [mem_allocator()] can lower
#' `trim_threshold` (the free memory at the top of the heap that is kept
#' rather than released) and `mmap_threshold` (allocations at least this
#' large get their own mapping, which goes back to the system as soon as it
#' is freed). A heap whose free memory sits between objects still in use
#' cannot shrink until those objects are freed: R cannot move its objects.
#'
#' @section Platforms:
#' GNU C library (Linux) 2.33 or later: every field, from `mallinfo2()`.
#' Older GNU C libraries: from `mallinfo()`, whose counters wrap at 4 GiB.
#' macOS: `heap` (bytes the allocator's zones obtained), `in_use` and
#' `free` from `malloc_zone_statistics()`; the other fields are `NA`.
#' Windows and other systems: every allocator field is `NA` (their
#' allocators offer no such summary through a portable call), and so are
#' `free_held` and `fragmentation`. The same holds, with `source` `"none"`,
#' in a process whose `malloc()` was replaced (by a sanitizer, or jemalloc
#' through `LD_PRELOAD`): glibc's counters then see an empty heap.
#'
#' @return A list of class `mem_heap` with [mem_bytes] `heap`, `in_use`,
#'   `free`, `fastbin_free` (free in the allocator's small-chunk bins, part
#'   of `free`), `mmapped`, `releasable` (free at the top of the main heap),
#'   `rss` (the process's resident memory), `heap_resident` and `free_held`;
#'   the counts `free_chunks` and `mmapped_blocks`; `fragmentation`, a share
#'   between 0 and 1; and `source`, the call the figures come from
#'   (`"mallinfo2"`, `"mallinfo"`, `"malloc_zone_statistics"` or `"none"`).
#' @seealso [mem_gc()] with `trim = TRUE`, [mem_allocator()].
#' @export
#' @examples
#' mem_heap()
#' x <- lapply(1:1e5, function(i) c(i, i))
#' rm(x)
#' invisible(gc())
#' h <- mem_heap()
#' h$free_held
#' h$fragmentation
mem_heap <- function() {
  v <- heap_info()
  source <- heap_sources[[v[[9L]] + 1L]]
  out <- as.list(stats::setNames(v[1:8], heap_fields))
  rss <- as.numeric(rss_now())
  heap_res <- heap_resident()
  free_held <- if (!is.na(heap_res) && !is.na(out$in_use)) {
    min(max(0, heap_res - out$in_use), out$free)
  } else {
    out$free
  }
  out$rss <- rss
  out$heap_resident <- heap_res
  out$free_held <- free_held
  bytes <- c("heap", "in_use", "free", "fastbin_free", "mmapped", "releasable", "rss",
             "heap_resident", "free_held")
  out[bytes] <- lapply(out[bytes], new_mem_bytes)
  out$fragmentation <- if (!is.na(free_held) && !is.na(rss) && rss > 0) {
    min(1, free_held / rss)
  } else {
    NA_real_
  }
  out$source <- source
  structure(out, class = "mem_heap")
}

# The allocator's figures (src/heap.c). A process whose malloc() was
# replaced (a sanitizer's allocator, jemalloc through LD_PRELOAD) still has
# glibc's mallinfo2(), which then sees an empty heap: that is no figure at
# all, so it reads as "none".
heap_info <- function() {
  v <- .Call(ffi_heap_info)
  if (v[[9L]] %in% 1:2 && all(v[c(1L, 2L, 6L)] == 0)) {
    v[1:8] <- NA_real_
    v[[9L]] <- 0
  }
  v
}

# Resident bytes of the main heap (the "[heap]" mapping that brk() grows),
# from /proc/self/smaps; NA elsewhere or when there is no such mapping.
heap_resident <- function() {
  if (Sys.info()[["sysname"]] != "Linux") return(NA_real_)
  lines <- tryCatch(readLines("/proc/self/smaps", warn = FALSE), error = function(e) character())
  at <- which(endsWith(lines, "[heap]"))
  if (length(at) == 0L) return(NA_real_)
  total <- 0
  for (a in at) {
    # The fields of a mapping follow its header line, up to the next one.
    rest <- lines[seq.int(a + 1L, min(length(lines), a + 30L))]
    rss <- grep("^Rss:", rest, value = TRUE)[1L]
    if (is.na(rss)) return(NA_real_)
    total <- total + as.numeric(gsub("[^0-9]", "", rss)) * 1024
  }
  total
}

#' @export
print.mem_heap <- function(x, ...) {
  cat(sprintf("<mem_heap> from %s()\n", x$source))
  if (identical(x$source, "none")) {
    cat("This C library offers no summary of its heap; only resident memory is known: ",
        format(x$rss), "\n", sep = "")
    return(invisible(x))
  }
  row <- function(label, value, note = "") {
    if (is.na(value)) return(NULL)
    data.frame(what = label, bytes = format(value), note = note, stringsAsFactors = FALSE)
  }
  cnt <- function(n) if (is.na(n)) "" else sprintf("in %s chunks", format(n, big.mark = ","))
  df <- rbind(
    row("heap from the system", x$heap),
    row("  in use", x$in_use),
    row("  free", x$free, cnt(x$free_chunks)),
    row("  free at the top", x$releasable, "releasable at once"),
    row("mmapped blocks", x$mmapped, if (is.na(x$mmapped_blocks)) "" else
      sprintf("%s blocks", format(x$mmapped_blocks, big.mark = ","))),
    row("resident (process)", x$rss),
    row("free but held", x$free_held, if (is.na(x$fragmentation)) "" else
      sprintf("%.1f%% of resident memory", 100 * x$fragmentation))
  )
  print(df, right = FALSE, row.names = FALSE)
  if (!is.na(x$fragmentation) && x$fragmentation >= 0.1) {
    cat("The allocator holds freed memory. mem_gc(trim = TRUE) returns free pages to the\n",
        "system now; for a long-running process see mem_allocator() (trim_threshold,\n",
        "mmap_threshold).\n", sep = "")
  }
  invisible(x)
}

# What mem_allocator() set in this session (glibc gives no way to read the
# knobs back).
allocator_state <- new.env(parent = emptyenv())

allocator_knobs <- c(arena_max = 1L, trim_threshold = 2L, mmap_threshold = 3L)
allocator_env_vars <- c(arena_max = "MALLOC_ARENA_MAX", trim_threshold = "MALLOC_TRIM_THRESHOLD_",
                        mmap_threshold = "MALLOC_MMAP_THRESHOLD_")
allocator_tunables <- c(arena_max = "glibc.malloc.arena_max",
                        trim_threshold = "glibc.malloc.trim_threshold",
                        mmap_threshold = "glibc.malloc.mmap_threshold")

#' Read and set the C allocator's knobs
#'
#' The GNU C library's allocator has settings that matter for long-running R
#' processes (Shiny and plumber servers, workers), usually set through
#' environment variables before R starts (`MALLOC_ARENA_MAX`,
#' `MALLOC_TRIM_THRESHOLD_`, `MALLOC_MMAP_THRESHOLD_`). `mem_allocator()`
#' sets them from R, for the rest of the process, with `mallopt()`:
#'
#' * `arena_max`: the most arenas (separate heaps for threads) the
#'   allocator creates. Fewer arenas mean less memory held per thread.
#' * `trim_threshold`: free memory at the top of the heap beyond this many
#'   bytes is given back to the system when memory is freed.
#' * `mmap_threshold`: allocations of at least this many bytes get their
#'   own mapping, returned to the system as soon as they are freed. (Older
#'   glibc versions refuse values above 32 MiB on 64-bit systems: an error
#'   of class `memkit_error_argument`.)
#'
#' Setting a threshold turns off glibc's own adjustment of both thresholds
#' (by default glibc raises them as large blocks are freed).
#'
#' @section Reading the settings back:
#' glibc has no call that reads these settings (`mallopt()` only sets
#' them), and memkit does not read the allocator's private structures. So
#' the values reported are those known for certain: what `mem_allocator()`
#' set in this process, or else what the environment variable or
#' `GLIBC_TUNABLES` entry gave when the process started; otherwise `NA`,
#' with `source` saying that glibc's default is in force (`arena_max`: 8
#' per core on 64-bit systems; both thresholds start at 128 KiB and glibc
#' raises them as it runs). A setting that another package changed with
#' `mallopt()` is not seen. For the same reason, a setting cannot be put
#' back to glibc's self-adjusting default once set: passing `NA` (as the
#' previous value of a setting never set is) leaves it as it is.
#'
#' @section Platforms:
#' GNU C library only (and its allocator: not when `malloc()` was
#' replaced, see [mem_heap()]). Elsewhere reading gives `NA` for every
#' setting and setting one is an error of class `memkit_error_unsupported`.
#'
#' @param arena_max The most arenas, a whole number of at least 1.
#' @param trim_threshold,mmap_threshold A number of bytes or a size such as
#'   `"1 MB"`.
#' @return The settings before the call, invisibly when something was set:
#'   a list of class `mem_allocator` with `arena_max`, `trim_threshold` and
#'   `mmap_threshold` (`NA` where unknown) and attribute `source` (where
#'   each value comes from). It can be passed back:
#'   `do.call(mem_allocator, old)`.
#' @seealso [mem_heap()] for what the allocator holds.
#' @export
#' @examples
#' mem_allocator()
#' \dontrun{
#' # A server that builds and drops large objects:
#' old <- mem_allocator(trim_threshold = "16 MB", mmap_threshold = "4 MB")
#' do.call(mem_allocator, old)   # back to the earlier values where known
#' }
mem_allocator <- function(arena_max = NULL, trim_threshold = NULL, mmap_threshold = NULL) {
  new <- list(arena_max = arena_max, trim_threshold = trim_threshold,
              mmap_threshold = mmap_threshold)
  new <- new[!vapply(new, is.null, logical(1))]
  # NA leaves a setting as it is (see "Reading the settings back").
  new <- new[!vapply(new, function(v) length(v) == 1L && is.atomic(v) && is.na(v), logical(1))]
  if (!is.null(new$arena_max)) {
    check_scalar_number(new$arena_max, "arena_max", min = 1, max = 2147483647)
    if (new$arena_max != trunc(new$arena_max)) {
      mk_abort("argument", sprintf("`arena_max` must be a whole number, not %s.",
                                   describe_value(new$arena_max)))
    }
  }
  for (k in intersect(c("trim_threshold", "mmap_threshold"), names(new))) {
    new[[k]] <- as.numeric(check_bytes_arg(new[[k]], arg = k))
    if (new[[k]] > 2147483647 || new[[k]] != trunc(new[[k]])) {
      mk_abort("argument", sprintf("`%s` must be a whole number of bytes below 2 GiB, not %s.",
                                   k, describe_value(new[[k]])))
    }
  }
  old <- allocator_read()
  if (length(new) == 0L) return(old)
  if (!heap_info()[[9L]] %in% 1:2) {
    mk_abort("unsupported", "Allocator settings need the GNU C library's allocator (mallopt()).")
  }
  for (k in names(new)) {
    ok <- .Call(ffi_heap_mallopt, allocator_knobs[[k]], as.double(new[[k]]))
    if (!isTRUE(ok)) {
      mk_abort("argument", sprintf("The allocator refused `%s = %s`.", k, format(new[[k]])))
    }
    allocator_state[[k]] <- as.numeric(new[[k]])
  }
  invisible(old)
}

# The settings as far as they can be known, with where each comes from.
allocator_read <- function() {
  glibc <- heap_info()[[9L]] %in% 1:2
  vals <- list(arena_max = NA_real_, trim_threshold = NA_real_, mmap_threshold = NA_real_)
  src <- stats::setNames(rep(if (glibc) "glibc default (not readable)" else
    "not the GNU C library", 3L), names(vals))
  if (glibc) {
    tunables <- strsplit(Sys.getenv("GLIBC_TUNABLES"), ":", fixed = TRUE)[[1L]]
    for (k in names(vals)) {
      env <- Sys.getenv(allocator_env_vars[[k]])
      tun <- grep(paste0("^", allocator_tunables[[k]], "="), tunables, value = TRUE)
      if (length(tun)) {
        vals[[k]] <- parse_c_number(sub("^[^=]*=", "", tun[[length(tun)]]))
        src[[k]] <- "GLIBC_TUNABLES at start-up"
      } else if (nzchar(env)) {
        vals[[k]] <- parse_c_number(env)
        src[[k]] <- paste(allocator_env_vars[[k]], "at start-up")
      }
      if (!is.null(allocator_state[[k]])) {
        vals[[k]] <- allocator_state[[k]]
        src[[k]] <- "set by mem_allocator()"
      }
    }
  }
  structure(vals, class = "mem_allocator", source = src)
}

# A number as glibc's getenv parsing reads it (decimal, or 0x hexadecimal);
# NA when it is not one.
parse_c_number <- function(s) {
  s <- trimws(s)
  v <- if (grepl("^0[xX][0-9a-fA-F]+$", s)) strtoi(s, 16L) else
    if (grepl("^[0-9]+$", s)) as.numeric(s) else NA_real_
  as.numeric(v)
}

#' @export
print.mem_allocator <- function(x, ...) {
  src <- attr(x, "source")
  cat("<mem_allocator>\n")
  vals <- vapply(names(x), function(k) {
    v <- x[[k]]
    if (is.na(v)) "NA" else if (k == "arena_max") format(v) else format(mem_bytes(v))
  }, character(1))
  df <- data.frame(setting = names(x), value = vals, source = unname(src[names(x)]),
                   stringsAsFactors = FALSE)
  print(df, right = FALSE, row.names = FALSE)
  invisible(x)
}
