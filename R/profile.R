# Memory over time: mem_profile(), mem_mark(), mem_peak().
#
# The timeline comes from a C thread (src/sampler.c) reading resident memory;
# the R heap after each collection from the GC tracer (R/gctrace.R); the peak
# from the kernel's high-water mark.

# The profiles and peak measurements running now, innermost last. Each is an
# environment (see peak_begin()).
profile_state <- new.env(parent = emptyenv())
profile_state$active <- list()

# Begin measuring a peak: reset the kernel's high-water mark where allowed and
# take the baseline. The reset is process-wide, so the current mark is first
# folded into every enclosing measurement: nested profiles lose nothing.
peak_begin <- function(profile = FALSE) {
  before <- .Call(ffi_sampler_peak)
  for (outer in profile_state$active) {
    outer$carry <- max(outer$carry, before$bytes, na.rm = TRUE)
  }
  st <- new.env(parent = emptyenv())
  st$carry <- -Inf
  st$source <- before$source
  st$reset <- identical(before$source, "VmHWM") && isTRUE(.Call(ffi_sampler_reset))
  st$start_mark <- if (st$reset) NA_real_ else before$bytes
  st$profile <- profile
  st$marks <- list()
  st$baseline <- rss_now()
  profile_state$active <- c(profile_state$active, st)
  st
}

# Stop tracking `st` (idempotent; also used on error).
peak_forget <- function(st) {
  keep <- !vapply(profile_state$active, identical, logical(1), st)
  profile_state$active <- profile_state$active[keep]
  invisible()
}

# The peak resident memory since peak_begin(): list(bytes, method).
# `sampled` is the sampler's largest reading (or -Inf), a lower bound.
peak_end <- function(st, sampled = -Inf) {
  peak_forget(st)
  after <- .Call(ffi_sampler_peak)
  hwm <- after$bytes
  if (st$reset && !is.na(hwm)) {
    list(bytes = max(hwm, st$carry, sampled), method = "VmHWM (reset)")
  } else if (!is.na(hwm) && !is.na(st$start_mark) && hwm > st$start_mark) {
    # The process's all-time peak was raised while `expr` ran, so it is the
    # peak of `expr`.
    list(bytes = max(hwm, sampled), method = after$source)
  } else if (is.finite(sampled)) {
    list(bytes = sampled, method = "sampled")
  } else {
    list(bytes = NA_real_, method = "none")
  }
}

peak_method_text <- function(method) {
  switch(method,
    "VmHWM (reset)" = "kernel high-water mark, reset at the start",
    "VmHWM" = "kernel high-water mark",
    "ru_maxrss" = "getrusage() peak",
    "resident_size_peak" = "task_info() peak since the start",
    "PeakWorkingSetSize" = "peak working set since the start",
    "sampled" = "largest sample; the kernel's peak was not usable",
    "none" = "not available",
    method
  )
}

#' Memory over time while an expression runs
#'
#' `mem_profile()` evaluates `expr` while a background thread records the
#' process's resident memory every `interval` seconds, the GC tracer
#' ([gc_trace()]) records the R heap after every collection, and
#' `mem_mark()` calls inside `expr` record labelled points. The peak is
#' exact: it is the kernel's high-water mark of resident memory, reset when
#' `expr` starts (Linux), so a spike shorter than the interval still counts.
#'
#' The sampler is a C thread that never calls into R: a reading takes about
#' a microsecond, and waking the thread for it some tens of microseconds more
#' on a virtual machine, well under 1% of one core at the default interval;
#' it does not slow `expr` down measurably. It is stopped, and its file
#' descriptor closed, when `mem_profile()` returns, also after an error or an
#' interrupt. If `expr` fails, the error is signalled again with the profile
#' so far in its `mem_profile` field.
#'
#' Profiles nest: a `mem_profile()` or [mem_peak()] inside another keeps the
#' outer peak exact, and [gc_trace()] works inside `mem_profile()` and around
#' it.
#'
#' With `children = TRUE` the child processes started while `expr` runs are
#' sampled too (Linux): R's descendants (`parallel::mclapply()` forks,
#' `callr` children, `system()` commands) and the processes of R's session
#' started while `expr` runs that were orphaned, which is how parallel's
#' PSOCK workers run ([parallel::makePSOCKcluster()]: R starts them through
#' a shell that exits at once, so they are not R's children). Descendants
#' started before `expr` and still running count as well; PSOCK workers
#' started before do not (make the cluster inside `expr`). Each
#' counts by its proportional set size (PSS, from `/proc/<pid>/smaps_rollup`):
#' every page divided by the number of processes that map it, so the pages a
#' fork shares with R are not counted twice; R's own PSS is read at the same
#' moments (twice, around the children, keeping the smaller, so that a child
#' starting or ending in between does not count shared pages twice). The
#' process table is scanned every `max(interval, 0.05)` seconds, or less
#' often when a scan takes long: reading a PSS walks the process's page
#' tables, some tens of milliseconds per gigabyte, and holds off R's own
#' `mmap()` calls meanwhile (R's own, not the children's), so scans are
#' spaced to take at most a fifth of the time. A child that lives shorter than the spacing may be missed.
#' Elsewhere `children = TRUE` is an error of class
#' `memkit_error_unsupported`.
#'
#' Resident memory is read from `/proc/self/statm` on Linux, with
#' `task_info()` on macOS and with `GetProcessMemoryInfo()` on Windows (see
#' Platforms).
#'
#' How the peak was found is in `$peak_method`:
#' * `"VmHWM (reset)"`: Linux's `VmHWM`, reset at the start by writing `5` to
#'   `/proc/self/clear_refs`. Exact.
#' * `"VmHWM"`, `"resident_size_peak"` (macOS), `"PeakWorkingSetSize"`
#'   (Windows) or `"ru_maxrss"`: the peak since the process started, where it
#'   could not be reset but was exceeded while `expr` ran. Exact.
#' * `"sampled"`: otherwise, the largest sample: a lower bound.
#'
#' @param expr An expression to evaluate.
#' @param interval Seconds between samples of resident memory, from `1e-4`
#'   to `86400` (a day); other values are an error of class
#'   `memkit_error_argument`.
#' @param children Also sample child processes (see above). Linux only.
#' @return `mem_profile()`: a `mem_profile` object, a list with
#'   * `samples`: a data frame of `time` (seconds since the start) and `rss`
#'     (resident memory, [mem_bytes]);
#'   * `gc`: the collections while `expr` ran, the events of [gc_trace()]
#'     with `time` in seconds since the start, plus `heap` and `trigger`: the
#'     cons and vector heaps in use after the collection, and the sum of their
#'     triggers ([mem_bytes]);
#'   * `marks`: a data frame of `label`, `time` and `rss`;
#'   * `baseline`, `peak`, `end`: resident memory at the start, at the peak and
#'     at the end, and `peak_method`;
#'   * `duration`, `gc_time` (seconds in collections, from [gc.time()]),
#'     `interval`, and `value`, the value of `expr`;
#'   * with `children = TRUE`, `children`: a data frame of `time`,
#'     `children` (the children's PSS summed), `self` (R's own PSS) and `n`
#'     (the number of children) at each scan, and `processes`: one row per
#'     child seen, with `pid`, `name`, `first` and `last` (seconds since the
#'     start) and `peak` (its largest PSS). `NULL` otherwise.
#'
#'   Its `summary()` gives the figures, a `summary_mem_profile` object (a
#'   list: `duration`, `samples`, `baseline`, `peak`, `peak_above`,
#'   `peak_method`, `end`, `net`, `heap_peak`, `collections`, `by_level`,
#'   `gc_time`, `gc_percent`) that prints one figure a line; `plot()` draws
#'   the timeline (resident memory, the R heap after each collection,
#'   collections as ticks coloured by level, the peak as a red dashed line
#'   and marks as labelled spans; with children, their PSS as a filled band
#'   with R's own PSS stacked on it) and `as.data.frame()` gives the samples.
#' @section Platforms:
#' Resident memory is `/proc/self/statm`'s resident set on Linux,
#' `task_info()`'s `resident_size` (`MACH_TASK_BASIC_INFO`) on macOS, and the
#' working set from `GetProcessMemoryInfo()` on Windows. The peak is exact on
#' Linux (`VmHWM`, reset at the start). macOS (`TASK_VM_INFO`'s
#' `resident_size_peak`) and Windows (`PeakWorkingSetSize`) keep only the
#' peak since the process started and cannot reset it: it is the answer when
#' `expr` raised it, and otherwise the largest sample is (`"sampled"`, a lower
#' bound that can miss a spike shorter than `interval`). See [gc_trace()]
#' for how the collections are read on each platform.
#' @seealso [mem_peak()] for the peak alone; [gc_trace()] for the
#'   collections alone; [mem_leaks()] for leak checks.
#' @importFrom graphics abline legend lines mtext par plot polygon rect segments text
#' @importFrom grDevices adjustcolor hcl.colors
#' @importFrom stats median pnorm qnorm setNames
#' @importFrom cli cli_progress_bar cli_progress_update cli_progress_done
#' @export
#' @examples
#' p <- mem_profile({
#'   mem_mark("allocate")
#'   x <- numeric(2e6)
#'   mem_mark("sum")
#'   s <- sum(x)
#'   rm(x)
#' })
#' p
#' summary(p)
#' plot(p)
mem_profile <- function(expr, interval = 0.01, children = FALSE) {
  # The upper bound keeps the sampler's deadline arithmetic exact; a day
  # between readings is already only the start and the stop.
  check_scalar_number(interval, min = 1e-4, max = 86400)
  check_flag(children)
  run <- new.env(parent = emptyenv())
  run$st <- peak_begin(profile = TRUE)
  on.exit({
    if (!is.null(run$sampler)) .Call(ffi_sampler_stop, run$sampler)
    if (!is.null(run$trace_id)) gctrace_abandon(run$trace_id)
    peak_forget(run$st)
  })
  run$trace_id <- profile_gc_start()
  run$sampler <- sampler_start(interval, children)
  run$start <- mono_now()
  value <- withCallingHandlers(expr, error = function(e) {
    # The error goes on with the profile so far attached, as gc_trace()'s
    # does: tryCatch(mem_profile(f()), error = function(e) e$mem_profile).
    if (is.null(run$sampler) || !is.null(e$mem_profile)) return()
    prof <- tryCatch(profile_finish(run, interval, NULL), error = function(e2) NULL)
    if (is.null(prof)) return()
    e$mem_profile <- prof
    stop(e)
  })
  profile_finish(run, interval, value)
}

# The sampler thread, sampling child processes too when asked (every
# max(interval, 50 ms): a scan of the process table costs more than a
# reading of resident memory).
sampler_start <- function(interval, children = FALSE) {
  if (!children) return(.Call(ffi_sampler_start, interval))
  .Call(ffi_sampler_start_ex, interval, NULL, max(interval, 0.05))
}

# Stop the sampler and the trace of a running profile and build the result.
profile_finish <- function(run, interval, value) {
  end_time <- mono_now()
  kids <- .Call(ffi_sampler_halt, run$sampler)$children
  readings <- .Call(ffi_sampler_stop, run$sampler)
  run$sampler <- NULL
  trace <- profile_gc_stop(run$trace_id)
  run$trace_id <- NULL
  end_rss <- rss_now()
  st <- run$st
  start <- run$start

  sampled <- if (length(readings$rss)) max(readings$rss, na.rm = TRUE) else -Inf
  peak <- peak_end(st, sampled)
  samples <- data.frame(time = readings$time - start,
                        rss = new_mem_bytes(readings$rss))
  gc_events <- trace$events
  gc_events$time <- gc_events$mono - start
  gc_events$heap <- gc_events$ncells_used + gc_events$vcells_used
  gc_events$trigger <- gc_events$ncells_trigger + gc_events$vcells_trigger
  marks <- st$marks
  marks <- data.frame(
    label = vapply(marks, `[[`, "", "label"),
    time = vapply(marks, `[[`, 0, "mono") - start,
    rss = new_mem_bytes(vapply(marks, `[[`, 0, "rss")),
    stringsAsFactors = FALSE
  )
  if (isTRUE(readings$truncated)) {
    mk_warn("memory", "The sampler ran out of memory; later samples were dropped.", call = NULL)
  }
  structure(list(
    samples = samples,
    gc = gc_events,
    marks = marks,
    baseline = st$baseline,
    peak = new_mem_bytes(peak$bytes),
    peak_method = peak$method,
    end = end_rss,
    duration = end_time - start,
    gc_time = trace$gc_time,
    interval = interval,
    value = value,
    children = kids_frame(kids, start),
    processes = kids_processes(kids, start)
  ), class = "mem_profile")
}

# The children's readings as a data frame (NULL without children).
kids_frame <- function(kids, start) {
  if (is.null(kids)) return(NULL)
  data.frame(time = kids$time - start, children = new_mem_bytes(kids$children),
             self = new_mem_bytes(kids$self), n = kids$n)
}

kids_processes <- function(kids, start) {
  if (is.null(kids)) return(NULL)
  p <- kids$procs
  data.frame(pid = p$pid, name = p$name, first = p$first - start, last = p$last - start,
             peak = new_mem_bytes(p$peak), stringsAsFactors = FALSE)
}

#' @rdname mem_profile
#' @param label A string naming the point in `expr`: the span from this mark
#'   to the next (or to the end) is drawn with this label.
#' @return `mem_mark()`: invisibly, the resident memory at the mark. Outside
#'   `mem_profile()` it records nothing, so marks can stay in code.
#' @export
mem_mark <- function(label) {
  check_string(label)
  rss <- rss_now()
  now <- mono_now()
  for (st in profile_state$active) {
    if (st$profile) {
      st$marks[[length(st$marks) + 1L]] <- list(label = label, mono = now, rss = as.numeric(rss))
    }
  }
  invisible(rss)
}

# ---- GC events ----------------------------------------------------------------

# The GC part of a profile is a trace (R/gctrace.R) over the same stretch:
# one more view on the one tracer, so gc_trace() inside mem_profile() and
# mem_profile() inside gc_trace() both work. It is stopped by its id, so a
# gc_trace_start() left running inside `expr` cannot take its place.
profile_gc_start <- function() {
  tryCatch(gc_trace_start(), memkit_error_unsupported = function(e) NULL)
}

profile_gc_stop <- function(id) {
  trace <- if (!is.null(id)) gc_trace_stop(id)
  if (is.null(trace)) trace <- list(events = empty_events(), gc_time = NA_real_)
  trace
}

# ---- methods --------------------------------------------------------------------

#' @export
print.mem_profile <- function(x, ...) {
  s <- summary(x)
  cat(sprintf("<mem_profile> %s, %d samples every %s\n", format_secs(s$duration),
              nrow(x$samples), format_secs(x$interval)))
  cat(sprintf("Resident: baseline %s, peak %s (%s above), end %s\n",
              format(s$baseline), format(s$peak), format(s$peak_above), format(s$end)))
  cat(sprintf("R heap: %s\n", format_collections(s)))
  if (!is.null(x$children)) cat(sprintf("Children: %s\n", format_children(s)))
  if (nrow(x$marks)) {
    cat(sprintf("Marks: %s\n", paste(x$marks$label, collapse = ", ")))
  }
  invisible(x)
}

format_children <- function(s) {
  if (s$children_n == 0L) return("none seen")
  sprintf("%d process%s, peak %s (PSS); with R's own PSS, peak %s", s$children_n,
          if (s$children_n == 1L) "" else "es", format(s$children_peak), format(s$total_peak))
}

format_collections <- function(s) {
  if (s$collections == 0L) return("no collections")
  by_level <- paste(sprintf("%d at level %s", s$by_level, names(s$by_level)), collapse = ", ")
  sprintf("%d collection%s (%s), %s in GC", s$collections,
          if (s$collections == 1L) "" else "s", by_level, format_secs(s$gc_time))
}

#' @export
summary.mem_profile <- function(object, ...) {
  g <- object$gc
  levels <- table(factor(g$level, levels = 0:2))
  levels <- stats::setNames(as.integer(levels), names(levels))
  gc_time <- object$gc_time
  out <- list(
    duration = object$duration,
    samples = nrow(object$samples),
    baseline = object$baseline,
    peak = object$peak,
    peak_above = object$peak - object$baseline,
    peak_method = object$peak_method,
    end = object$end,
    net = object$end - object$baseline,
    heap_peak = if (any(!is.na(g$heap))) max(g$heap, na.rm = TRUE) else new_mem_bytes(NA_real_),
    collections = nrow(g),
    by_level = levels[levels > 0L],
    gc_time = gc_time,
    gc_percent = if (object$duration > 0) 100 * gc_time / object$duration else NA_real_
  )
  k <- object$children
  if (!is.null(k)) {
    total <- as.numeric(k$children) + as.numeric(k$self)
    out$children_n <- nrow(object$processes)
    out$children_peak <- if (nrow(k)) max(k$children) else new_mem_bytes(0)
    out$total_peak <- new_mem_bytes(if (any(!is.na(total))) max(total, na.rm = TRUE) else NA_real_)
  }
  structure(out, class = "summary_mem_profile")
}

#' @export
print.summary_mem_profile <- function(x, ...) {
  rows <- c(
    "Duration" = format_secs(x$duration),
    "Baseline" = format(x$baseline),
    "Peak resident" = sprintf("%s (%s above baseline; %s)", format(x$peak),
                              format(x$peak_above), peak_method_text(x$peak_method)),
    "Peak R heap" = if (is.na(x$heap_peak)) "no collections" else
      sprintf("%s (largest after a collection)", format(x$heap_peak)),
    "Net change" = format(x$net),
    "Collections" = if (x$collections == 0L) "none" else format_collections(x),
    "Time in GC" = sprintf("%s (%.1f%%)", format_secs(x$gc_time), x$gc_percent),
    "Samples" = format(x$samples)
  )
  if (!is.null(x$children_n)) rows <- c(rows, "Children" = format_children(x))
  cat(paste0(pad_text(names(rows)), "  ", rows), sep = "\n")
  invisible(x)
}

#' @export
as.data.frame.mem_profile <- function(x, ...) x$samples

#' @param x A `mem_profile` object.
#' @param units The unit of the memory axis: one of `B`, `KiB`, `MiB`,
#'   `GiB`, `TiB`, `PiB` or `kB`, `MB`, `GB`, `TB`, `PB` (see [mem_bytes]).
#' @param main Title of the plot.
#' @param ... Passed on to [plot()] for the resident memory line.
#' @rdname mem_profile
#' @export
plot.mem_profile <- function(x, units = "MiB", main = "Memory over time", ...) {
  div <- unit_multiplier(units)
  if (is.na(div)) {
    mk_abort("argument", sprintf("`units` must be a unit such as \"MiB\" or \"MB\", not %s.",
                                 describe_value(units)))
  }
  s <- x$samples
  g <- x$gc
  rss <- as.numeric(s$rss) / div
  heap <- as.numeric(g$heap) / div
  trig <- as.numeric(g$trigger) / div
  known <- !is.na(heap)
  peak <- as.numeric(x$peak) / div
  k <- x$children
  stacked <- !is.null(k) && nrow(k) > 0L && any(as.numeric(k$children) > 0)
  kid <- self <- numeric()
  if (stacked) {
    kid <- as.numeric(k$children) / div
    self <- as.numeric(k$self) / div
    self[is.na(self)] <- 0
  }
  ymax <- max(c(rss, heap, trig, peak, kid + self, 1e-9), na.rm = TRUE) * 1.3
  xmax <- max(c(x$duration, s$time, 1e-9), na.rm = TRUE)
  graphics::plot(s$time, rss, type = "l", lwd = 1.5, xlim = c(0, xmax), ylim = c(0, ymax),
                 xlab = "time (s)", ylab = sprintf("memory (%s)", units), main = main, ...)
  if (stacked) {
    # The children's PSS at the bottom, R's own PSS stacked on it: the top
    # edge is the whole family's memory.
    # Scans are sparse: each reading holds until the next (or the end).
    t <- k$time
    t_end <- c(t[-1L], max(x$duration, t))
    xs <- c(rbind(t, t_end))
    low <- rep(kid, each = 2L)
    high <- rep(kid + self, each = 2L)
    graphics::polygon(c(xs, rev(xs)), c(low, rep(0, length(xs))), border = NA,
                      col = grDevices::adjustcolor("darkorange", 0.45))
    graphics::polygon(c(xs, rev(xs)), c(high, rev(low)), border = NA,
                      col = grDevices::adjustcolor("grey50", 0.25))
    graphics::lines(s$time, rss, lwd = 1.5)
  }
  graphics::abline(h = as.numeric(x$baseline) / div, col = "grey60", lty = 3)
  if (nrow(g)) {
    graphics::lines(g$time[known], trig[known], type = "s", col = "steelblue", lty = 2)
    graphics::lines(g$time[known], heap[known], type = "o", pch = 20, cex = 0.5, col = "steelblue")
    cols <- c("grey50", "darkorange", "red3", "grey80")[ifelse(is.na(g$level), 4L, g$level + 1L)]
    graphics::segments(g$time, 0, g$time, ymax * 0.03, col = cols)
  }
  if (!is.na(peak)) {
    graphics::abline(h = peak, col = "red", lty = 2)
    if (length(rss) && any(!is.na(rss))) {
      graphics::abline(v = s$time[which.max(rss)], col = "red", lty = 2)
    }
    graphics::text(0, peak, sprintf("peak %s", format(x$peak)), adj = c(0, -0.4),
                   col = "red", cex = 0.8)
  }
  m <- x$marks
  if (nrow(m)) {
    ends <- c(m$time[-1L], xmax)
    pal <- grDevices::hcl.colors(max(3L, nrow(m)), "Set 2")
    top <- ymax * c(0.93, 0.99)
    graphics::rect(m$time, top[1L], ends, top[2L], border = NA,
                   col = grDevices::adjustcolor(pal[seq_len(nrow(m))], 0.5))
    graphics::abline(v = m$time, col = "grey70", lty = 3)
    graphics::text((m$time + ends) / 2, mean(top), m$label, cex = 0.75)
  }
  leg <- list(legend = c("resident", "R heap after GC", "GC trigger", "peak"),
              col = c("black", "steelblue", "steelblue", "red"), lty = c(1, 1, 2, 2),
              fill = rep(NA, 4L), border = rep(NA, 4L))
  if (stacked) {
    leg$legend <- c(leg$legend, "children (PSS)", "R (PSS), stacked")
    leg$col <- c(leg$col, NA, NA)
    leg$lty <- c(leg$lty, NA, NA)
    leg$fill <- c(leg$fill, grDevices::adjustcolor("darkorange", 0.45), grDevices::adjustcolor("grey50", 0.25))
    leg$border <- c(leg$border, NA, NA)
  }
  graphics::legend("topright", inset = c(0.01, 0.11), bg = "white", box.col = NA, cex = 0.75,
                   legend = leg$legend, col = leg$col, lty = leg$lty, fill = leg$fill,
                   border = leg$border)
  invisible(x)
}

#' The peak memory of an expression
#'
#' `mem_peak()` evaluates `expr` and returns the peak resident memory of the
#' process above its level at the start: on Linux exact, by the kernel's
#' high-water mark (`VmHWM`, reset at the start by writing `5` to
#' `/proc/self/clear_refs`), so it needs no sampling and costs nothing while
#' `expr` runs. Where the mark cannot be reset, the peak since the process
#' started is used if `expr` raised it, and otherwise a sampler thread's
#' largest reading; `attr(, "method")` says which (see [mem_profile()]).
#'
#' Unlike `peakRAM::peakRAM()`, which reports the R heap's "max used" only,
#' this counts everything the process holds: memory allocated by compiled
#' code, R's own tables, and what the C allocator keeps. The R heap's peak is
#' alongside.
#'
#' @param expr An expression to evaluate.
#' @param heap Also measure the peak of the R heap. This forces a full
#'   collection before and after `expr` (R records its heap's high-water mark
#'   only at collections, so this is the only exact way).
#' @param children Also measure the peak of the child processes started
#'   while `expr` runs, by their proportional set size, sampled every 50 ms
#'   (Linux; see [mem_profile()]).
#' @return The peak resident memory above the baseline, a [mem_bytes] of
#'   class `mem_peak` with attributes `baseline`, `peak` (absolute), `method`
#'   and `heap` (the R heap's peak above its size at the start, or `NA` with
#'   `heap = FALSE`), and with `children = TRUE` `children` (the children's
#'   peak PSS, summed) and `total` (the peak of R's own PSS and the
#'   children's together). The value of `expr` is dropped. It computes and compares
#'   like any [mem_bytes]: `mem_peak(f()) < "1 GB"`.
#' @section Platforms:
#' Exact on Linux. On macOS and Windows the system's peak cannot be reset, so
#' the peak since the process started is used when `expr` raised it, and
#' otherwise a sampler's largest reading every 10 ms (a lower bound; the
#' method says which). See [mem_profile()].
#' @seealso [mem_profile()] for memory over time.
#' @export
#' @examples
#' mem_peak(x <- numeric(1e7))
#' mem_peak(sum(numeric(1e7)), heap = FALSE)
#' mem_peak(numeric(1e6)) < "100 MB"
mem_peak <- function(expr, heap = TRUE, children = FALSE) {
  check_flag(heap)
  check_flag(children)
  if (heap) {
    g <- gc(reset = TRUE)
    heap_start <- sum(g[, 1L] * c(ncell_bytes, vcell_bytes))
  }
  st <- peak_begin(profile = FALSE)
  sampler <- NULL
  on.exit({
    if (!is.null(sampler)) .Call(ffi_sampler_stop, sampler)
    peak_forget(st)
  })
  # Without a resettable high-water mark, sample as a fallback.
  if (children) {
    sampler <- sampler_start(0.05, children = TRUE)
  } else if (!st$reset) {
    sampler <- tryCatch(.Call(ffi_sampler_start, 0.01),
                        memkit_error_unsupported = function(e) NULL)
  }
  force(expr)
  sampled <- -Inf
  kids <- NULL
  if (!is.null(sampler)) {
    if (children) kids <- .Call(ffi_sampler_halt, sampler)$children
    readings <- .Call(ffi_sampler_stop, sampler)
    sampler <- NULL
    if (length(readings$rss)) sampled <- max(readings$rss, na.rm = TRUE)
  }
  peak <- peak_end(st, sampled)
  heap_peak <- NA_real_
  if (heap) {
    g <- gc()
    heap_peak <- sum(g[, 5L] * c(ncell_bytes, vcell_bytes)) - heap_start
  }
  out <- structure(new_mem_bytes(peak$bytes - as.numeric(st$baseline)),
                   baseline = st$baseline,
                   peak = new_mem_bytes(peak$bytes),
                   method = peak$method,
                   heap = new_mem_bytes(heap_peak),
                   class = c("mem_peak", "mem_bytes"))
  if (children) {
    total <- kids$children + kids$self
    attr(out, "children") <- new_mem_bytes(if (length(kids$children)) max(kids$children) else 0)
    attr(out, "total") <- new_mem_bytes(if (any(!is.na(total))) max(total, na.rm = TRUE) else NA_real_)
  }
  out
}

#' @export
print.mem_peak <- function(x, ...) {
  cat(sprintf("%s above a baseline of %s (%s)\n", format(x),
              format(attr(x, "baseline")), peak_method_text(attr(x, "method"))))
  h <- attr(x, "heap")
  if (!is.na(h)) cat(sprintf("R heap: peak %s above the start\n", format(h)))
  k <- attr(x, "children")
  if (!is.null(k)) {
    cat(sprintf("Children: peak %s (PSS); with R's own PSS, peak %s\n", format(k),
                format(attr(x, "total"))))
  }
  invisible(x)
}

#' @export
format.mem_peak <- function(x, ...) {
  format(new_mem_bytes(as.numeric(x)), ...)
}
