# Room and limits: mem_limits(), mem_available(), mem_fits(), with_mem_limit().
#
# Linux's figures come from files read here: /proc/meminfo, /proc/self/status,
# the cgroup files found through /proc/self/cgroup and /proc/self/mountinfo.
# getrlimit() and the macOS and Windows figures come from src/limits.c. The
# watch behind with_mem_limit() runs in the sampler thread (src/watch.c).

# Limits at or above this many bytes mean "no limit" (cgroup v1 writes
# 2^63 less a page when none is set).
unlimited_bytes <- 2^60

# The directory standing for `/` when memkit reads /proc/meminfo,
# /proc/self/cgroup, /proc/self/mountinfo and the cgroup file systems: "" in
# real use; tests point it at a fabricated tree.
sys_root <- function() {
  root <- getOption("memkit.sysroot", "")
  if (!is.character(root) || length(root) != 1L || is.na(root)) {
    mk_abort("argument", sprintf("`options(memkit.sysroot)` must be a single string, not %s.",
                                 describe_value(root)), call = NULL)
  }
  root
}

sys_path <- function(root, path) if (nzchar(root)) file.path(root, sub("^/", "", path)) else path

# Lines of a file, or character() when it cannot be read.
read_lines_quietly <- function(path) {
  tryCatch(suppressWarnings(readLines(path, warn = FALSE)), error = function(e) character())
}

# The first number in a file (NA when unreadable), Inf for "max".
read_number_file <- function(path) {
  l <- read_lines_quietly(path)
  if (!length(l)) return(NA_real_)
  l <- trimws(l[[1L]])
  if (identical(l, "max")) return(Inf)
  v <- suppressWarnings(as.numeric(l))
  if (is.na(v) || v < 0) return(NA_real_)
  if (v >= unlimited_bytes) Inf else v
}

# "Key: 123 kB" files (/proc/meminfo, /proc/self/status) as a named vector
# of bytes.
read_kb_file <- function(path) {
  l <- read_lines_quietly(path)
  m <- regmatches(l, regexec("^([A-Za-z0-9_()]+):\\s+([0-9]+)(\\s+kB)?\\s*$", l))
  m <- m[lengths(m) == 4L]
  out <- vapply(m, function(x) as.numeric(x[[3L]]) * if (nzchar(x[[4L]])) 1024 else 1, 0)
  stats::setNames(out, vapply(m, `[[`, "", 2L))
}

# "key value" files (memory.stat) as a named vector.
read_stat_file <- function(path) {
  l <- read_lines_quietly(path)
  m <- regmatches(l, regexec("^([a-z_0-9]+) ([0-9]+)$", l))
  m <- m[lengths(m) == 3L]
  stats::setNames(vapply(m, function(x) as.numeric(x[[3L]]), 0), vapply(m, `[[`, "", 2L))
}

# ---- cgroups -------------------------------------------------------------------

# The memory cgroups of this process: a list with, for each version found,
# `dir` (the process's cgroup directory) and `top` (the mount point, where
# walking up stops).
cgroup_dirs <- function(root = sys_root()) {
  force(root)
  cg <- read_lines_quietly(sys_path(root, "/proc/self/cgroup"))
  mi <- read_lines_quietly(sys_path(root, "/proc/self/mountinfo"))
  if (!length(cg) || !length(mi)) return(list())
  # mountinfo: id parent dev root mountpoint options [optional...] - fstype source superoptions
  mounts <- lapply(strsplit(mi, " ", fixed = TRUE), function(f) {
    dash <- match("-", f)
    if (is.na(dash) || dash < 6L || length(f) < dash + 3L) return(NULL)
    list(root = f[[4L]], point = gsub("\\\\040", " ", f[[5L]]), type = f[[dash + 1L]],
         super = strsplit(f[[dash + 3L]], ",", fixed = TRUE)[[1L]])
  })
  mounts <- Filter(Negate(is.null), mounts)
  parts <- regmatches(cg, regexec("^([0-9]+):([^:]*):(.*)$", cg))
  parts <- parts[lengths(parts) == 4L]
  locate <- function(mount, path) {
    rel <- path
    if (mount$root != "/" && startsWith(path, mount$root)) rel <- substring(path, nchar(mount$root) + 1L)
    top <- sys_path(root, mount$point)
    dir <- file.path(top, sub("^/", "", rel))
    if (!dir.exists(dir)) dir <- top # a namespace that hides the path
    list(dir = sub("/$", "", dir), top = sub("/$", "", top))
  }
  out <- list()
  v2 <- Filter(function(p) p[[2L]] == "0" && p[[3L]] == "", parts)
  m2 <- Filter(function(m) m$type == "cgroup2", mounts)
  if (length(v2) && length(m2)) out$v2 <- locate(m2[[1L]], v2[[1L]][[4L]])
  v1 <- Filter(function(p) "memory" %in% strsplit(p[[3L]], ",", fixed = TRUE)[[1L]], parts)
  m1 <- Filter(function(m) m$type == "cgroup" && "memory" %in% m$super, mounts)
  if (length(v1) && length(m1)) out$v1 <- locate(m1[[1L]], v1[[1L]][[4L]])
  out
}

# The directories from `dir` up to `top`, innermost first.
cgroup_chain <- function(dir, top) {
  out <- dir
  while (nchar(dir) > nchar(top) && startsWith(dir, top)) {
    dir <- dirname(dir)
    out <- c(out, dir)
  }
  unique(out)
}

# Rows of the limits table for cgroup v2: memory.max and memory.high at
# every level that has the memory controller, usage less inactive file
# cache (what the kernel reclaims before it kills).
cgroup_v2_rows <- function(loc) {
  rows <- list()
  for (d in cgroup_chain(loc$dir, loc$top)) {
    cur <- read_number_file(file.path(d, "memory.current"))
    if (is.na(cur)) next
    st <- read_stat_file(file.path(d, "memory.stat"))
    used <- cur - min(cur, if (is.na(st["inactive_file"])) 0 else st[["inactive_file"]])
    rel <- sub(paste0("^", loc$top), "", d)
    if (!nzchar(rel)) rel <- "/"
    for (f in c("memory.max", "memory.high")) {
      lim <- read_number_file(file.path(d, f))
      if (is.na(lim)) next
      # The process's own cgroup is shown even without a limit; ancestors
      # only when they set one.
      if (is.infinite(lim) && d != loc$dir) next
      rows[[length(rows) + 1L]] <- limit_row(
        sprintf("cgroup v2 %s", f),
        sprintf("%s of cgroup %s (%s)", f, rel,
                if (f == "memory.max") "the OOM killer acts above it" else "reclaimed and throttled above it"),
        lim, used, path = d
      )
    }
  }
  rows
}

cgroup_v1_rows <- function(loc) {
  rows <- list()
  for (d in cgroup_chain(loc$dir, loc$top)) {
    usage <- read_number_file(file.path(d, "memory.usage_in_bytes"))
    if (is.na(usage)) next
    st <- read_stat_file(file.path(d, "memory.stat"))
    inactive <- if (!is.na(st["total_inactive_file"])) st[["total_inactive_file"]] else
      if (!is.na(st["inactive_file"])) st[["inactive_file"]] else 0
    used <- usage - min(usage, inactive)
    rel <- sub(paste0("^", loc$top), "", d)
    if (!nzchar(rel)) rel <- "/"
    lim <- read_number_file(file.path(d, "memory.limit_in_bytes"))
    if (!is.na(lim) && (is.finite(lim) || d == loc$dir)) {
      rows[[length(rows) + 1L]] <- limit_row(
        "cgroup v1 memory.limit_in_bytes",
        sprintf("memory.limit_in_bytes of cgroup %s (the OOM killer acts above it)", rel),
        lim, used, path = d)
    }
    sw <- read_number_file(file.path(d, "memory.memsw.limit_in_bytes"))
    swu <- read_number_file(file.path(d, "memory.memsw.usage_in_bytes"))
    if (!is.na(sw) && is.finite(sw) && !is.na(swu)) {
      rows[[length(rows) + 1L]] <- limit_row(
        "cgroup v1 memory.memsw.limit_in_bytes",
        sprintf("memory and swap of cgroup %s", rel), sw, swu - min(swu, inactive), path = d)
    }
  }
  rows
}

# ---- the table ------------------------------------------------------------------

limit_row <- function(limit, what, value, used, counts = TRUE, path = NA_character_) {
  room <- if (is.infinite(value)) Inf else if (is.na(used)) NA_real_ else max(0, value - used)
  data.frame(limit = limit, what = what, value = value, used = used, room = room,
             counts = counts, path = path, stringsAsFactors = FALSE)
}

limits_rows <- function(root = sys_root()) {
  force(root) # checked here, not inside a reader that swallows errors
  rows <- list()
  sysname <- Sys.info()[["sysname"]]
  linux <- sysname == "Linux" || nzchar(root)
  swap <- NULL
  if (linux) {
    mi <- read_kb_file(sys_path(root, "/proc/meminfo"))
    if (!is.na(mi["MemTotal"])) {
      avail <- if (!is.na(mi["MemAvailable"])) mi[["MemAvailable"]] else
        sum(mi[intersect(c("MemFree", "Buffers", "Cached"), names(mi))])
      rows[[length(rows) + 1L]] <- limit_row(
        "MemAvailable", "the system's available memory (MemAvailable)",
        mi[["MemTotal"]], mi[["MemTotal"]] - avail)
    }
    if (!is.na(mi["SwapTotal"])) swap <- c(total = mi[["SwapTotal"]], free = mi[["SwapFree"]])
    cg <- cgroup_dirs(root)
    if (!is.null(cg$v2)) rows <- c(rows, cgroup_v2_rows(cg$v2))
    if (!is.null(cg$v1)) rows <- c(rows, cgroup_v1_rows(cg$v1))
  } else {
    s <- .Call(ffi_limits_system)
    if (!is.na(s[["total"]])) {
      rows[[length(rows) + 1L]] <- limit_row(
        "system", if (sysname == "Darwin") "the system's memory (free, inactive and purgeable pages)"
        else "the system's physical memory (available)",
        s[["total"]], s[["total"]] - s[["available"]])
    }
    if (!is.na(s[["swap_total"]])) swap <- c(total = s[["swap_total"]], free = s[["swap_free"]])
    if (!is.na(s[["job_limit"]])) {
      rows[[length(rows) + 1L]] <- limit_row(
        "job object", "the memory limit of the Windows job object the process runs in",
        s[["job_limit"]], s[["job_used"]])
    }
  }
  # The process's own limits (live, whatever the root).
  rl <- .Call(ffi_limits_rlimit)
  st <- if (sysname == "Linux") read_kb_file("/proc/self/status") else numeric()
  vm <- function(key) if (!is.na(st[key])) st[[key]] else NA_real_
  if (!is.na(rl[["as"]])) {
    rows[[length(rows) + 1L]] <- limit_row(
      "RLIMIT_AS", "address space of the process (ulimit -v), against its virtual size",
      rl[["as"]], vm("VmSize"))
  }
  if (!is.na(rl[["data"]])) {
    rows[[length(rows) + 1L]] <- limit_row(
      "RLIMIT_DATA", "data segments of the process (ulimit -d), against its data size",
      rl[["data"]], vm("VmData"))
  }
  # R's own limits; measuring R's heap takes a collection, so only when one
  # is set.
  vmax <- mem.maxVSize() * 2^20
  nmax <- mem.maxNSize() * ncell_bytes
  vused <- nused <- NA_real_
  if (is.finite(vmax) || is.finite(nmax)) {
    g <- gc()
    nused <- g[1L, 1L] * ncell_bytes
    vused <- g[2L, 1L] * vcell_bytes
  }
  rows[[length(rows) + 1L]] <- limit_row(
    "mem.maxVSize()", "R's vector heap (R_MAX_VSIZE, mem.maxVSize())", vmax, vused)
  rows[[length(rows) + 1L]] <- limit_row(
    "mem.maxNSize()", "R's cons cells (mem.maxNSize()), at 56 bytes a cell", nmax, nused)
  if (!is.null(swap)) {
    rows[[length(rows) + 1L]] <- limit_row(
      "swap", "swap space (not counted in the room)", swap[["total"]],
      swap[["total"]] - swap[["free"]], counts = FALSE)
  }
  out <- do.call(rbind, rows)
  out$binds <- FALSE
  cand <- which(out$counts & !is.na(out$room))
  if (length(cand)) out$binds[cand[which.min(out$room[cand])]] <- TRUE
  for (col in c("value", "used", "room")) out[[col]] <- new_mem_bytes(out[[col]])
  out
}

#' How much memory is left, and which limit decides
#'
#' `mem_limits()` lists every limit on the memory this R process can use,
#' with its value, what is in use against it and the room left, and marks
#' the one that binds (the least room). `mem_available()` is that least
#' room: the memory the process can still use now. `mem_fits()` says whether
#' an allocation of a given size fits in it.
#'
#' The limits, where the system has them:
#' * the system's memory: `MemAvailable` of `/proc/meminfo` on Linux (free
#'   memory and the cache the kernel can drop); free, inactive and purgeable
#'   pages on macOS (`host_statistics64()`); available physical memory on
#'   Windows (`GlobalMemoryStatusEx()`);
#' * the memory cgroup (containers, Kubernetes pods, Slurm jobs, systemd
#'   units): version 2's `memory.max` and `memory.high`, of the process's
#'   cgroup and of every ancestor that sets one, against `memory.current`;
#'   version 1's `memory.limit_in_bytes` (and `memory.memsw.limit_in_bytes`,
#'   memory and swap) against `memory.usage_in_bytes`. Usage is counted
#'   without the inactive file cache (`inactive_file` of `memory.stat`),
#'   which the kernel reclaims before the OOM killer acts, as
#'   `docker stats` counts it. The process's own cgroup is listed even
#'   without a limit, with its usage;
#' * a Windows job object's process or job memory limit, against the
#'   process's committed memory;
#' * `RLIMIT_AS` (`ulimit -v`) against the process's virtual size and
#'   `RLIMIT_DATA` (`ulimit -d`) against its data size (`VmSize`, `VmData`;
#'   Linux; on macOS the limits are listed without usage);
#' * R's own limits, [mem.maxVSize()] and [mem.maxNSize()] (`R_MAX_VSIZE`,
#'   `--max-nsize`), against R's heap. Measuring the heap takes a
#'   collection, so it is done only when one of them is set.
#'
#' Swap is listed (size and use) but not counted in the room: memory that
#' would be swapped out is not memory a computation should plan on.
#'
#' @section Platforms:
#' The cgroup rows, `MemAvailable` and the virtual and data sizes are read
#' from Linux's `/proc` and `/sys/fs/cgroup`. On macOS the system's memory
#' comes from `host_statistics64()` and `sysctl()`, and the `RLIMIT_*`
#' limits have no usage (`NA`); on Windows from `GlobalMemoryStatusEx()`
#' and the job object, with no `RLIMIT_*` rows. Where a figure is unknown
#' it is `NA` and its row never binds.
#'
#' Tests can point memkit at a fabricated tree with
#' `options(memkit.sysroot = dir)`: `dir` then stands for `/` when reading
#' `/proc/meminfo`, `/proc/self/cgroup`, `/proc/self/mountinfo` and the
#' cgroup file systems (the process's own `/proc/self/status` and limits are
#' still its own). memkit never writes to these files.
#'
#' @return `mem_limits()`: a data frame of class `mem_limits` with one row
#'   per limit: `limit` (its name), `what` (in plain words), `value`, `used`
#'   and `room` ([mem_bytes]; `Inf` where nothing is set), `counts` (whether
#'   it counts toward the room: `FALSE` for swap), `path` (the cgroup
#'   directory, `NA` for others) and `binds` (`TRUE` for the one limit that
#'   leaves the least room). It prints as a table in plain words.
#' @seealso [with_mem_limit()] to stop a computation that passes a limit of
#'   your own; [fm_create()] for matrices larger than the room.
#' @export
#' @examples
#' mem_limits()
#' mem_available()
#' mem_fits("1 GB")
#' mem_fits(nrow = 1e5, ncol = 100)
mem_limits <- function() {
  structure(limits_rows(), class = c("mem_limits", "data.frame"))
}

#' @export
print.mem_limits <- function(x, ...) {
  fmt <- function(b) ifelse(is.infinite(as.numeric(b)), "none", ifelse(is.na(b), "-", format(b)))
  counted <- x$counts
  cat(sprintf("<mem_limits> %d limits on this process's memory\n", sum(counted)))
  if (any(counted)) {
    y <- x[counted, , drop = FALSE]
    tab <- data.frame(
      " " = ifelse(y$binds, "*", " "),
      limit = y$limit, value = fmt(y$value), used = fmt(y$used), room = fmt(y$room),
      check.names = FALSE, stringsAsFactors = FALSE)
    print(tab, row.names = FALSE, right = FALSE)
  }
  cg <- x[counted & grepl("^cgroup", x$limit), , drop = FALSE]
  if (nrow(cg)) cat(paste0("Cgroup: ", cg$what, "\n"), sep = "")
  b <- x[x$binds, , drop = FALSE]
  if (nrow(b)) {
    cat(sprintf("Room left: %s, decided by %s.\n", format(b$room), b$what))
  }
  sw <- x[x$limit == "swap", , drop = FALSE]
  if (nrow(sw)) {
    cat(if (as.numeric(sw$value) > 0) sprintf("Swap: %s in use of %s (%s free; not counted in the room).\n",
                                           format(sw$used), format(sw$value), format(sw$room))
        else "Swap: none.\n")
  }
  invisible(x)
}

#' @rdname mem_limits
#' @return `mem_available()`: the room left under the binding limit, a
#'   [mem_bytes] of class `mem_available` with attributes `limit` (the
#'   binding limit's name) and `what` (in words). It is never more than any
#'   listed limit's room. `NA` when no figure is known.
#' @export
mem_available <- function() {
  new_available(limits_rows())
}

new_available <- function(rows) {
  b <- rows[rows$binds, , drop = FALSE]
  if (!nrow(b)) {
    return(structure(new_mem_bytes(NA_real_), limit = NA_character_, what = NA_character_,
                     class = c("mem_available", "mem_bytes")))
  }
  structure(new_mem_bytes(as.numeric(b$room)), limit = b$limit, what = b$what,
            class = c("mem_available", "mem_bytes"))
}

#' @export
print.mem_available <- function(x, ...) {
  if (is.na(x)) {
    cat("Available memory: unknown on this system\n")
  } else {
    cat(sprintf("%s available (decided by %s)\n", format(x), attr(x, "what")))
  }
  invisible(x)
}

#' @export
format.mem_available <- function(x, ...) format(new_mem_bytes(as.numeric(x)), ...)

#' @rdname mem_limits
#' @param x A size: a number of bytes or a string such as `"12 GB"`.
#' @param nrow,ncol,type Instead of `x`: the size of a matrix of `nrow` by
#'   `ncol` elements of `type` (`"double"`, `"integer"`, `"logical"`,
#'   `"complex"` or `"raw"`), as [fm_create()] takes them.
#' @return `mem_fits()`: `TRUE` or `FALSE`, of class `mem_fits`, with
#'   attributes `need` (the bytes asked for), `room` (the binding room),
#'   `headroom` (room less need: negative when it does not fit), `limit`
#'   and `what` (the limit that decides).
#' @export
mem_fits <- function(x, nrow, ncol, type = "double") {
  if (!missing(x)) {
    if (!missing(nrow) || !missing(ncol)) {
      mk_abort("argument", "Give either `x` or `nrow` and `ncol`, not both.")
    }
    need <- check_bytes_arg(x)
  } else {
    if (missing(nrow) || missing(ncol)) {
      mk_abort("argument", "Give a size `x`, or both `nrow` and `ncol`.")
    }
    check_scalar_number(nrow, min = 0)
    check_scalar_number(ncol, min = 0)
    check_string(type)
    if (!type %in% names(elt_sizes)) {
      mk_abort("argument", sprintf("`type` must be one of %s, not %s.",
                                   paste0("\"", names(elt_sizes), "\"", collapse = ", "),
                                   describe_value(type)))
    }
    need <- as.double(nrow) * as.double(ncol) * elt_size(type)
  }
  room <- mem_available()
  fits <- !is.na(room) && need <= as.numeric(room)
  structure(fits, need = new_mem_bytes(need), room = new_mem_bytes(as.numeric(room)),
            headroom = new_mem_bytes(as.numeric(room) - need),
            limit = attr(room, "limit"), what = attr(room, "what"), class = "mem_fits")
}

#' @export
print.mem_fits <- function(x, ...) {
  need <- attr(x, "need")
  if (is.na(attr(x, "room"))) {
    cat(sprintf("FALSE: %s asked for; the room left is unknown on this system\n", format(need)))
  } else if (isTRUE(unclass(x))) {
    cat(sprintf("TRUE: %s fits, leaving %s (decided by %s)\n", format(need),
                format(attr(x, "headroom")), attr(x, "what")))
  } else {
    cat(sprintf("FALSE: %s does not fit in %s, %s short (decided by %s)\n", format(need),
                format(attr(x, "room")), format(-attr(x, "headroom")), attr(x, "what")))
  }
  invisible(x)
}

# ---- with_mem_limit() ----------------------------------------------------------------

#' Stop a computation that passes a memory limit
#'
#' `with_mem_limit()` evaluates `expr` while the sampler thread of
#' [mem_profile()] watches the process's resident memory (or, with
#' `of = "cgroup"`, the usage of its memory cgroup, as the kernel's OOM
#' killer in a container sees it). When the reading passes `limit`, `expr`
#' is interrupted and `with_mem_limit()` signals an error of class
#' `memkit_error_memory_limit` (see [memkit_errors]) instead of the process
#' being killed, or the machine swapping, later.
#'
#' @section How it interrupts:
#' The thread never calls into R. It sends `SIGINT` to R's main thread,
#' once, as a Ctrl-C would; R's own handler marks an interrupt as pending
#' and R raises it at its next check, and `with_mem_limit()` turns the
#' `interrupt` condition into the classed error. Everything outside `expr`
#' goes on as it was: a user's Ctrl-C during `expr` stays an interrupt,
#' nested `with_mem_limit()` calls each react to their own limit only, and
#' a limit passed just as `expr` returns is still reported, never left to
#' interrupt later code. The error carries `limit`, `value` (the reading
#' that passed it), `peak` (the peak resident memory, exact on Linux) and
#' `profile`, a [mem_profile()] result of the run so far (samples only:
#' there is no GC trace, to keep the watch cheap).
#'
#' Memory rises between two readings (every `interval` seconds) and until R
#' checks for interrupts, so `expr` stops a little above `limit`: some
#' megabytes for R code that allocates as fast as it can. Compiled code
#' that allocates in one long call without checking for interrupts (for
#' example one huge allocation) cannot be stopped before it returns; code
#' inside `expr` that catches interrupts (`tryCatch(interrupt = )`) swallows
#' the stop, but `with_mem_limit()` still signals the error when `expr`
#' returns.
#'
#' @section Platforms:
#' Linux and macOS (the process's resident memory); `of = "cgroup"` on Linux
#' only. On Windows, and in programs that embed R without R's `SIGINT`
#' handler, the call is an error of class `memkit_error_unsupported`.
#'
#' @param expr An expression to evaluate.
#' @param limit The limit: a number of bytes or a string such as
#'   `"500 MB"`.
#' @param of What is compared with `limit`: `"process"`, this process's
#'   resident memory, or `"cgroup"`, its memory cgroup's usage without the
#'   inactive file cache (version 2's `memory.current` or version 1's
#'   `memory.usage_in_bytes`).
#' @param interval Seconds between readings, from `1e-4` to `60`.
#' @return The value of `expr` (visible or not, as `expr` left it).
#' @seealso [mem_limits()] for the limits the system sets; [mem_peak()] to
#'   measure first.
#' @export
#' @examples
#' # Where R cannot be interrupted (Windows, or SIGINT ignored) it says so.
#' tryCatch(with_mem_limit(sum(numeric(1e6)), "2 GB"),
#'          memkit_error_unsupported = function(e) conditionMessage(e))
#'
#' \donttest{
#' if (.Platform$OS.type == "unix") {
#'   e <- tryCatch(
#'     with_mem_limit(x <- lapply(1:1e4, function(i) numeric(1e5)), "300 MB"),
#'     memkit_error_memory_limit = function(e) e,
#'     memkit_error_unsupported = function(e) e
#'   )
#'   conditionMessage(e)
#'   e$peak
#'   exists("x") # the assignment never happened
#' }
#' }
with_mem_limit <- function(expr, limit, of = c("process", "cgroup"), interval = 0.01) {
  # Messages give the limit in the units it was given in.
  standard <- if (is.character(limit) && length(limit) == 1L && grepl("[kKMGTP]B$", trimws(limit))) "SI" else
    getOption("memkit.units", "IEC")
  limit <- check_bytes_arg(limit)
  if (!is.character(of) || !length(of) || !of[[1L]] %in% c("process", "cgroup")) {
    mk_abort("argument", sprintf("`of` must be \"process\" or \"cgroup\", not %s.", describe_value(of)))
  }
  of <- of[[1L]]
  check_scalar_number(interval, min = 1e-4, max = 60)
  if (.Platform$OS.type == "windows") {
    mk_abort("unsupported", "with_mem_limit() is not available on Windows.")
  }
  watch <- list(limit, NULL, NULL)
  if (of == "cgroup") watch[2:3] <- cgroup_usage_files()
  call <- sys.call()
  run <- new.env(parent = emptyenv())
  run$st <- peak_begin(profile = FALSE)
  on.exit(limit_cleanup(run))
  res <- withCallingHandlers({
    run$start <- mono_now()
    run$sampler <- .Call(ffi_sampler_start_ex, interval, watch, NULL)
    res <- withVisible(expr)
    if (limit_halt(run)$fired) {
      # The limit was passed: raise the interrupt that may still be pending
      # now, inside the handler below; if code in `expr` swallowed it, say
      # so all the same.
      .Call(ffi_watch_drain)
      limit_error(run, limit, of, interval, call, standard)
    }
    res
  }, interrupt = function(cond) {
    if (is.null(run$sampler)) return()
    if (!limit_halt(run)$fired) return() # a user's interrupt, or another watch's
    limit_error(run, limit, of, interval, call, standard)
  })
  if (res$visible) res$value else invisible(res$value)
}

# The files the watch reads for of = "cgroup": list(usage, stat).
cgroup_usage_files <- function() {
  cg <- cgroup_dirs()
  if (!is.null(cg$v2) && file.exists(file.path(cg$v2$dir, "memory.current"))) {
    return(list(file.path(cg$v2$dir, "memory.current"), file.path(cg$v2$dir, "memory.stat")))
  }
  if (!is.null(cg$v1) && file.exists(file.path(cg$v1$dir, "memory.usage_in_bytes"))) {
    return(list(file.path(cg$v1$dir, "memory.usage_in_bytes"), file.path(cg$v1$dir, "memory.stat")))
  }
  mk_abort("unsupported", "This process is in no memory cgroup that reports its usage.",
           call = sys.call(-2L))
}

# Stop the sampler thread (once) and return the watch's state.
limit_halt <- function(run) {
  if (is.null(run$halted)) run$halted <- .Call(ffi_sampler_halt, run$sampler)$watch
  run$halted
}

limit_error <- function(run, limit, of, interval, call, standard) {
  w <- limit_halt(run)
  run$reported <- TRUE
  prof <- profile_finish(run, interval, NULL)
  value <- new_mem_bytes(w$value)
  peak <- max(prof$peak, value, na.rm = TRUE)
  what <- if (of == "process") "resident memory" else "the cgroup's memory usage"
  fmt <- function(b) format(b, standard = standard)
  msg <- sprintf("Memory limit of %s passed: %s reached %s, and the evaluation was stopped (peak resident memory %s).",
                 fmt(new_mem_bytes(limit)), what, fmt(value), fmt(prof$peak))
  stop(mk_condition("memory_limit", msg, call = call, limit = new_mem_bytes(limit), of = of,
                    value = value, peak = prof$peak, profile = prof))
}

# On exit: stop the thread and give back an interrupt the watch sent but no
# handler saw (an error in `expr` came first), so that it cannot stop code
# after with_mem_limit().
limit_cleanup <- function(run) {
  if (!is.null(run$sampler)) {
    fired <- isTRUE(limit_halt(run)$fired)
    .Call(ffi_sampler_stop, run$sampler)
    run$sampler <- NULL
    if (fired && !isTRUE(run$reported)) {
      tryCatch(.Call(ffi_watch_drain), interrupt = function(e) NULL)
    }
  }
  peak_forget(run$st)
}
