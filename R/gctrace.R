# GC tracing: every collection R makes, as data.
#
# The C side (src/gctrace.c) gives two raw streams: the reports R prints with
# gcinfo(TRUE), caught through a pipe, and callbacks from a sentinel finalizer
# that run at the next safe point after a collection with the R call stack.
# This file owns the session state (the message sink, gcinfo(), gc.time()),
# nests traces as views over the one tracer, and joins the two streams into
# one row per collection.

the_gc <- new.env(parent = emptyenv())
the_gc$views <- list()
the_gc$next_id <- 0L

mega <- 1048576

#' Trace every garbage collection
#'
#' `gc_trace()` evaluates `expr` and records every garbage collection R makes
#' meanwhile: R's own collection number, when it happened, its level, the heap
#' in use after it, the trigger that the next collection waits for, its
#' duration where R measures one, whether it was an explicit [gc()] call, and
#' the R call stack that was running. `gc_trace_start()` and `gc_trace_stop()`
#' do the same over a stretch of a session.
#'
#' @section How it works:
#' While tracing, memkit turns on [gcinfo()] and points the message stream
#' at a pipe read by a background thread, so each report R prints after an
#' automatic collection becomes a row. R prints nothing for explicit [gc()]
#' calls, but its collection numbers have no gaps, so every collection is
#' accounted for: the gaps become rows with `seen = FALSE`, their levels
#' taken from R's per-level totals. A finalizer that R runs at the next safe
#' point after each collection records the call stack. Collections inside a
#' single call to C code (`paste0()` of millions of strings) reach that point
#' together and share one stack; `collapsed` says how many did.
#'
#' Each trace begins with a minor collection (`gc(full = FALSE)`), so that
#' R's collection count and exact triggers are known at its start. Its end
#' is usually read from R's last report; a second minor collection closes
#' it only when that is not enough: when the trace holds a level-2
#' collection (which moves the triggers), when an explicit [gc()] or an
#' unreported collection came after R's last report, or when other code
#' took the message stream. These marker collections are not among the
#' events. Besides them, a trace costs a millisecond or two to open, close
#' and join into rows, and each collection some tens of microseconds more
#' (R's report, the call stack).
#'
#' @section Messages, warnings and errors:
#' Messages, and warnings when `options(warn = 1)`, reach the user as they
#' happen, through the message sink that was in place before. Text that code
#' writes straight to the message stream (`cat(file = stderr())`, C code's
#' `REprintf()`) is held back and written when the next message is, or when
#' the trace stops: it keeps its order relative to other messages but may
#' come after output printed to the console meanwhile. If `expr` fails, the
#' error is signalled again with the trace so far in its `gc_trace` field:
#' `tryCatch(gc_trace(f()), error = function(e) e$gc_trace)`.
#'
#' @section Nesting:
#' Traces nest: a `gc_trace()` inside another, or inside
#' `gc_trace_start()`/`gc_trace_stop()`, records the collections of its own
#' stretch, and the outer trace still sees every collection. `gc_trace_stop()`
#' stops the most recent `gc_trace_start()`, or the one whose id it is given;
#' calling it for a trace with a `gc_trace()` expression still running inside
#' is an error of class `memkit_error_state`, as is calling it with no trace
#' running. [bench::mark()] inside a trace works: it captures
#' the reports of its own collections, which the trace then counts from the
#' gaps in R's numbering (`seen = FALSE`).
#'
#' @section Events:
#' `as.data.frame()` gives one row per collection, in order: a data frame
#' of class `gc_events` (its `print()` shows the first rows without the
#' `mono` and `stack` columns), with columns
#' \describe{
#'   \item{`gc`}{R's collection number.}
#'   \item{`time`}{Seconds since the trace started.}
#'   \item{`mono`}{The same moment on memkit's monotonic clock (absolute
#'     seconds), shared with memory profiles.}
#'   \item{`level`}{0 (new objects only), 1 (and the younger old generation)
#'     or 2 (everything).}
#'   \item{`ncells_used`, `vcells_used`}{Cons-cell and vector heap in use after
#'     the collection, as [mem_bytes()] (R reports them rounded up to 0.1 MB).}
#'   \item{`ncells_trigger`, `vcells_trigger`}{The heap size at which the next
#'     collection happens, as [mem_bytes()].}
#'   \item{`trigger_estimated`}{`TRUE` where the trigger is estimated from the
#'     percentage R prints, `FALSE` where it is exact (known from the ends of
#'     the trace: R only moves triggers after level-2 collections).}
#'   \item{`duration`}{Seconds, from [gc.time()], where one stack sample stands
#'     for one collection; `NA` otherwise. R measures to the millisecond.}
#'   \item{`collapsed`}{How many collections share this row's stack sample
#'     (collections inside C code arrive together); each row is still one
#'     collection, so `nrow()` counts collections.}
#'   \item{`explicit`}{`TRUE` for a [gc()] call.}
#'   \item{`seen`}{`TRUE` if R printed a report for it; `FALSE` for
#'     collections known only from the gaps in R's numbering (their heap
#'     figures are `NA`).}
#'   \item{`call`}{The innermost R call running, as text.}
#'   \item{`stack`}{The whole R call stack, a list of calls (large values in
#'     arguments replaced by `<value>`).}
#' }
#'
#' @param expr An expression to evaluate.
#' @return `gc_trace()` and `gc_trace_stop()`: a `gc_trace` object, a list
#'   with `events` (the data frame above), `value` (the value of `expr`;
#'   `NULL` for `gc_trace_stop()`), `elapsed`, `gc_time` (seconds spent in
#'   collections by [gc.time()]), `gc_start` and `gc_end` (R's collection
#'   count when the trace started and when it ended: the events are
#'   collections `gc_start + 1` to `gc_end`), `levels_start` and
#'   `levels_end` (R's totals per level at both ends), and `trigger_start`
#'   and `trigger_end` (the exact triggers at both ends).
#'   `gc_trace_start()`: invisibly, the trace's id (an integer) for
#'   `gc_trace_stop(id)`.
#' @seealso [gc_triggers()] for the triggers in force now.
#' @export
#' @examples
#' tr <- gc_trace({
#'   x <- 0
#'   for (i in 1:20) x <- x + sum(numeric(2e5))
#'   gc()
#'   x
#' })
#' tr
#' tr$value
#' head(as.data.frame(tr)[c("gc", "time", "level", "vcells_used", "explicit", "call")])
#' summary(tr)
#' plot(tr)
gc_trace <- function(expr) {
  # Stacks are recorded from the first call inside `expr`: drop this frame
  # and withCallingHandlers()'s.
  depth <- sys.nframe() + 1L
  id <- gctrace_begin("expr", depth = depth)
  on.exit(gctrace_abandon(id))
  value <- withCallingHandlers(
    expr,
    message = function(m) gctrace_relay_message(m),
    warning = function(w) gctrace_relay_warning(w),
    error = function(e) {
      e$call <- user_call(e$call)
      # Finishing the trace must not replace the user's error with another.
      tr <- tryCatch(gctrace_end(id, NULL), error = function(e2) NULL)
      # An inner gc_trace() has attached its own trace already.
      if (is.null(e$gc_trace)) e$gc_trace <- tr
      stop(e)
    }
  )
  tr <- gctrace_end(id, value)
  on.exit()
  if (is.null(tr)) {
    mk_abort("state", "This GC trace was stopped before its expression returned.")
  }
  tr
}

#' @rdname gc_trace
#' @export
gc_trace_start <- function() {
  invisible(gctrace_begin("session", depth = 0L))
}

#' @rdname gc_trace
#' @param id The value `gc_trace_start()` returned, to stop that trace
#'   (and any started after it and still running) rather than the most
#'   recent one. Code that starts a trace for its own use should pass it.
#' @export
gc_trace_stop <- function(id = NULL) {
  if (!is.null(id) && (!is.numeric(id) || length(id) != 1L || is.na(id))) {
    mk_abort("argument", sprintf(
      "`id` must be NULL or the value `gc_trace_start()` returned, not %s.", describe_value(id)))
  }
  gctrace_forget_parent()
  views <- the_gc$views
  if (length(views) == 0L) {
    mk_abort("state", "No GC trace is running; start one with `gc_trace_start()`.")
  }
  ids <- vapply(views, `[[`, integer(1), "id")
  if (is.null(id)) {
    k <- length(views)
  } else {
    k <- match(as.integer(id), ids)
    if (is.na(k)) {
      mk_abort("state", sprintf("GC trace %s is not running.", format(id)))
    }
  }
  v <- views[[k]]
  if (v$kind != "session") {
    mk_abort("state", paste0(
      "The innermost GC trace belongs to a running `gc_trace()` expression; ",
      "it stops when that expression returns."
    ))
  }
  if (k < length(views) && any(vapply(views[-seq_len(k)], `[[`, "", "kind") != "session")) {
    mk_abort("state", "A `gc_trace()` expression started after this trace is still running.")
  }
  gctrace_end(v$id, NULL)
}

# ---- session state --------------------------------------------------------

gctrace_begin <- function(kind, depth) {
  if (.Platform$OS.type == "windows") {
    mk_abort("unsupported", "GC tracing needs a Unix-alike (it reads R's reports through a pipe).",
             call = sys.call(-1L))
  }
  gctrace_forget_parent()
  if (is.null(the_gc$handle)) gctrace_open()
  mark <- gctrace_mark_point()
  the_gc$next_id <- the_gc$next_id + 1L
  v <- c(list(id = the_gc$next_id, kind = kind, depth = depth), mark)
  the_gc$views[[length(the_gc$views) + 1L]] <- v
  v$id
}

gctrace_open <- function() {
  h <- .Call(ffi_gctrace_open)
  fd <- attr(h, "fd")
  con <- tryCatch(
    file(sprintf("/dev/fd/%d", fd), open = "w", raw = TRUE),
    error = function(e) {
      .Call(ffi_gctrace_close, h)
      mk_abort("system", sprintf("Can't open the GC report pipe: %s", conditionMessage(e)),
               call = NULL)
    }
  )
  .Call(ffi_gctrace_adopt, h)
  the_gc$pid <- Sys.getpid()
  the_gc$handle <- h
  the_gc$con <- con
  the_gc$con_number <- as.integer(con)
  the_gc$prev_sink <- sink.number(type = "message")
  sink(con, type = "message")
  the_gc$prev_gcinfo <- gcinfo(TRUE)
  # gc.time() has no query: reading it turns it on. Times still zero mean it
  # was off (the default), and it is turned off again at the end.
  the_gc$gctime_was_on <- any(gc.time(TRUE)[1:3] > 0)
  the_gc$window <- FALSE
  the_gc$window_nrec <- -1
  .Call(ffi_gctrace_arm, gctrace_check_sink)
  invisible()
}

# A trace is running in this process (a child forked by
# parallel::mclapply() inherits the state but not the pipe's reader).
tracing_here <- function() {
  !is.null(the_gc$handle) && identical(the_gc$pid, Sys.getpid())
}

# In a forked child, the parent's traces are not ours to stop or extend:
# forget them (the C side has already let go of the pipe).
gctrace_forget_parent <- function() {
  if (is.null(the_gc$handle) || tracing_here()) return(invisible())
  try(.Call(ffi_gctrace_disarm), silent = TRUE)
  the_gc$handle <- NULL
  the_gc$con <- NULL
  the_gc$views <- list()
  invisible()
}

# Run from each GC callback and before each marker: code inside the traced
# expression that resets the message sink (bench::mark() does on exit) would
# send R's reports to the console; point the sink back at the pipe. A sink
# set by such code and still in place (bench::mark()'s own) is left alone.
gctrace_check_sink <- function() {
  con <- the_gc$con
  if (!tracing_here() || isTRUE(the_gc$window)) return(invisible())
  if (sink.number(type = "message") == 2L) {
    # The connection may have been closed under us (closeAllConnections()).
    try(sink(con, type = "message"), silent = TRUE)
  }
  invisible()
}

# Restore everything gctrace_open() changed. Each step runs even if an
# earlier one fails, so the session is left as found.
gctrace_close <- function() {
  h <- the_gc$handle
  if (is.null(h)) return(invisible())
  the_gc$handle <- NULL
  text <- ""
  try(.Call(ffi_gctrace_disarm), silent = TRUE)
  try(gcinfo(the_gc$prev_gcinfo), silent = TRUE)
  try(gctrace_restore_sink(), silent = TRUE)
  try(close(the_gc$con), silent = TRUE)
  text <- tryCatch(.Call(ffi_gctrace_text), error = function(e) "")
  dropped <- tryCatch(attr(.Call(ffi_gctrace_records, .Machine$integer.max), "dropped"),
                      error = function(e) 0)
  try(.Call(ffi_gctrace_close, h), silent = TRUE)
  if (!isTRUE(the_gc$gctime_was_on)) try(gc.time(FALSE), silent = TRUE)
  the_gc$con <- NULL
  the_gc$views <- list()
  if (nzchar(text)) cat(text, file = stderr())
  if (isTRUE(dropped > 0)) {
    warning(sprintf(paste0(
      "The GC trace ran out of memory for %s bytes of messages or reports; ",
      "text written straight to the message stream may be missing."), format(dropped)),
      call. = FALSE)
  }
  invisible()
}

gctrace_restore_sink <- function() {
  if (sink.number(type = "message") != the_gc$con_number) return()
  prev <- the_gc$prev_sink
  con <- if (prev != 2L) tryCatch(getConnection(prev), error = function(e) NULL)
  if (is.null(con)) sink(type = "message") else sink(con, type = "message")
}

# Run `code` with the message stream back where it was before tracing
# (and gcinfo() off, so no report lands there); first hand over the text held
# back so far, so that it keeps its order.
gctrace_with_user_sink <- function(code) {
  if (!tracing_here() || sink.number(type = "message") != the_gc$con_number) {
    return(code)
  }
  text <- .Call(ffi_gctrace_text)
  the_gc$window <- TRUE
  gcinfo(FALSE)
  gctrace_restore_sink()
  on.exit({
    sink(the_gc$con, type = "message")
    gcinfo(TRUE)
    the_gc$window <- FALSE
    # Collections meanwhile went unreported: the end of a trace with no
    # report since must be marked (gctrace_tail_known()).
    the_gc$window_nrec <- gctrace_nrec()
  })
  if (nzchar(text)) cat(text, file = stderr())
  code
}

# Calling handlers: signal the condition again from here, with the user's
# sink in place, so outer handlers see it once and the default handler
# prints it where it belongs; then muffle the original.
gctrace_relay_message <- function(m) {
  if (!tracing_here()) return()
  gctrace_with_user_sink(message(m))
  invokeRestart("muffleMessage")
}

gctrace_relay_warning <- function(w) {
  if (!tracing_here()) return()
  call <- user_call(w$call)
  if (getOption("warn", 0) < 1 && identical(call, w$call)) return()
  w$call <- call
  gctrace_with_user_sink(warning(w))
  invokeRestart("muffleWarning")
}

# A condition signalled by code at the top of `expr` names gc_trace()'s
# withCallingHandlers() as its call; the user wrote no such call.
user_call <- function(call) {
  if (is.call(call) && identical(call[[1L]], quote(withCallingHandlers)) &&
      length(call) > 1L && identical(call[[2L]], quote(expr))) {
    return(NULL)
  }
  call
}

# How many reports the tracer has read (all R has printed so far) and how
# many callbacks it has recorded.
gctrace_nrec <- function() attr(.Call(ffi_gctrace_records, .Machine$integer.max), "total")
gctrace_ncb <- function() attr(.Call(ffi_gctrace_callbacks, .Machine$integer.max), "total")

# A collection whose report and exact figures bracket a trace.
gctrace_mark <- function() gc(verbose = TRUE, full = FALSE)

gctrace_mark_point <- function() {
  cb0 <- gctrace_ncb()
  nrec0 <- gctrace_nrec()
  gctrace_check_sink()
  gct_before <- gc.time()[[3L]]
  mono_before <- .Call(ffi_utils_now)
  m <- gctrace_mark()
  gct <- gc.time()[[3L]]
  mono <- .Call(ffi_utils_now)
  cbs <- .Call(ffi_gctrace_callbacks, cb0)
  nrec <- gctrace_nrec()
  # The callback that ran inside gctrace_mark()'s gc() had drained every
  # report printed before it: the marker's is the last of those.
  mine <- which(vapply(cbs$stack, is_mark_stack, logical(1)))
  rec <- if (length(mine)) cbs$nrec[[mine[[1L]]]] else nrec
  if (rec <= nrec0) rec <- nrec
  # A trace starts after its first marker and ends before its last: the
  # markers' own time is not part of it.
  list(
    rec = rec,
    cb = cb0 + if (length(mine)) mine[[1L]] else length(cbs$nrec),
    mono = mono, gctime = gct,
    mono_before = mono_before, gctime_before = gct_before,
    trigger = c(ncells = m[1L, 3L] * ncell_bytes, vcells = m[2L, 3L] * vcell_bytes)
  )
}

call_name <- function(call) {
  if (!is.call(call)) return("")
  f <- call[[1L]]
  if (is.symbol(f)) return(as.character(f))
  if (is.call(f) && length(f) == 3L && as.character(f[[1L]]) %in% c("::", ":::")) {
    return(as.character(f[[3L]]))
  }
  ""
}

is_gc_stack <- function(stack) {
  n <- length(stack)
  n > 0L && call_name(stack[[n]]) == "gc"
}

is_mark_stack <- function(stack) {
  n <- length(stack)
  n > 1L && call_name(stack[[n]]) == "gc" && call_name(stack[[n - 1L]]) == "gctrace_mark"
}

# Called from .onUnload(): the sentinel's finalizer lives in memkit's
# library, which must not be unloaded with a sentinel pending.
gctrace_unload <- function() {
  if (!is.null(the_gc$handle)) gctrace_close()
  invisible()
}

# ---- stopping -------------------------------------------------------------

# Called from on.exit() when gc_trace() is left by an error or an interrupt
# before it could finish: drop this view and everything opened inside it.
gctrace_abandon <- function(id) {
  ids <- vapply(the_gc$views, `[[`, integer(1), "id")
  k <- match(id, ids)
  if (is.na(k)) return(invisible())
  the_gc$views <- the_gc$views[seq_len(k - 1L)]
  if (length(the_gc$views) == 0L) gctrace_close()
  invisible()
}

gctrace_end <- function(id, value) {
  ids <- vapply(the_gc$views, `[[`, integer(1), "id")
  k <- match(id, ids)
  if (is.na(k)) return(NULL)
  v <- the_gc$views[[k]]
  gct <- gc.time()[[3L]]
  mono <- .Call(ffi_utils_now)
  recs <- .Call(ffi_gctrace_records, v$rec - 1L)
  cbs <- .Call(ffi_gctrace_callbacks, v$cb)
  if (gctrace_tail_known(v, recs, cbs)) {
    end <- list(rec = attr(recs, "total"), cb = attr(cbs, "total"), marked = FALSE,
                mono = mono, gctime = gct, mono_before = mono, gctime_before = gct,
                trigger = v$trigger)
  } else {
    end <- gctrace_mark_point()
    end$marked <- TRUE
    end$mono_before <- mono
    end$gctime_before <- gct
    recs <- .Call(ffi_gctrace_records, v$rec - 1L)
    cbs <- .Call(ffi_gctrace_callbacks, v$cb)
    # Keep the callbacks up to the end marker's own: it stands for the
    # collections since the last safe point (e.g. in C code at the very end
    # of `expr`), though its stack is memkit's, not the user's.
    ncb <- max(0L, end$cb - v$cb)
    cbs <- lapply(cbs, function(x) x[seq_len(min(ncb, length(x)))])
    if (ncb > 0L && length(cbs$stack) == ncb && is_mark_stack(cbs$stack[[ncb]])) {
      cbs$stack[ncb] <- list(NULL)
      cbs$gctime[[ncb]] <- NA_real_
    }
  }
  # Views opened inside this one and never stopped end with it.
  the_gc$views <- the_gc$views[seq_len(k - 1L)]
  if (length(the_gc$views) == 0L) gctrace_close()
  nrec <- end$rec - v$rec + 1L
  recs <- lapply(recs, function(x) x[seq_len(min(nrec, length(x)))])
  events <- gctrace_events(recs, cbs, v, end)
  new_gc_trace(events, value, v, end, recs)
}

# Can the end of a trace be read from R's reports and the callbacks alone,
# without a marker collection of memkit's own? Yes when nothing can have
# happened since R's last report that the numbering would not show:
# - no callback after the one that brought that report, and that one not
#   inside gc() (a silent gc() may have followed the report);
# - with no report in the trace, no callback at all (no collection);
# - no relay of a message since that report (gcinfo() is off meanwhile);
# - the message sink still the pipe and gcinfo() still on (code that takes
#   the message stream, such as capture.output() or bench::mark(), leaves
#   the sink reset when it is done);
# - no level-2 collection in the trace, so that the exact trigger at its
#   start still holds (R moves the triggers only then), and the last report
#   agrees with it.
# Otherwise a marker closes the trace as one opened it.
gctrace_tail_known <- function(v, recs, cbs) {
  if (!tracing_here() || isTRUE(the_gc$window)) return(FALSE)
  if (sink.number(type = "message") != the_gc$con_number) return(FALSE)
  if (!isTRUE(gcinfo(TRUE))) return(FALSE)
  K <- length(recs$gc)
  if (K == 0L) return(FALSE)
  total <- attr(recs, "total")
  if (isTRUE(the_gc$window_nrec >= total)) return(FALSE)
  ncb <- length(cbs$nrec)
  if (K == 1L) return(ncb == 0L)
  j <- match(total, cbs$nrec)
  if (!is.na(j) && (j < ncb || is_gc_stack(cbs$stack[[j]]))) return(FALSE)
  if (recs$level2[[K]] != recs$level2[[1L]]) return(FALSE)
  isTRUE(trigger_agrees(recs$ncells_mb[[K]], recs$ncells_pct[[K]], v$trigger[["ncells"]]) &&
         trigger_agrees(recs$vcells_mb[[K]], recs$vcells_pct[[K]], v$trigger[["vcells"]]))
}

# ---- joining the streams --------------------------------------------------

# `recs`: the reports from the start marker (first) to the end: the last
# collection of the trace, or the end marker if there is one (last, not an
# event). `cbs`: the callbacks in between; cbs$nrec counts reports from the
# start of the whole tracer, so subtract v$rec - 1 to index `recs`.
gctrace_events <- function(recs, cbs, v, end) {
  K <- length(recs$gc)
  last <- if (end$marked) K - 1L else K   # the last report that is an event
  if (K < 2L) return(empty_events())
  N <- recs$gc
  L <- cbind(recs$level0, recs$level1, recs$level2)
  lev <- recs$level

  seen_idx <- if (last >= 2L) 2:last else integer()
  gap <- N[-1L] - N[-K] - 1L              # gap[i]: collections between reports i and i + 1
  gap[gap < 0L] <- 0L
  # Without an end marker nothing follows the last report (gctrace_tail_known()).
  if (!end$marked) gap <- c(gap, 0L)
  rec_group <- rep(NA_integer_, K)

  ncb <- length(cbs$nrec)
  cb_rel <- pmin(cbs$nrec - (v$rec - 1L), last)
  # A callback inside gc() follows an explicit collection (gc() runs the
  # finalizers at once). Nested traces' markers are explicit gc() calls too.
  cb_explicit <- vapply(cbs$stack, is_gc_stack, logical(1))
  # memkit's own markers (of nested traces) are gc(verbose = TRUE): each
  # printed its report.
  cb_mark <- cb_explicit
  cb_mark[cb_explicit] <- vapply(cbs$stack[cb_explicit], is_mark_stack, logical(1))
  claims <- vector("list", last)          # callbacks claiming slots of each gap
  seen_explicit <- rep(FALSE, K)
  prev <- 1L
  for (k in seq_len(ncb)) {
    r <- max(cb_rel[[k]], 1L)
    new <- if (r > prev) (prev + 1L):r else integer()
    new <- new[new >= 2L & new <= last]
    rec_group[new] <- k
    free_slot <- length(claims[[r]]) < gap[[r]]
    if (cb_mark[[k]] && length(new)) {
      seen_explicit[[r]] <- TRUE
    } else if (cb_explicit[[k]]) {
      # A silent gc() left a gap; gc(verbose = TRUE) printed the last report.
      if (free_slot) claims[[r]] <- c(claims[[r]], k)
      else if (length(new)) seen_explicit[[r]] <- TRUE
    } else if (length(new) == 0L && free_slot) {
      # Nothing printed since the last callback: a collection R did not report.
      claims[[r]] <- c(claims[[r]], k)
    }
    prev <- max(prev, r)
  }

  # Rows: reports 2..last, then the gap slots.
  rows_gc <- N[seen_idx]
  rows_rec <- seen_idx
  rows_group <- rec_group[seen_idx]
  rows_level <- lev[seen_idx]
  rows_explicit <- seen_explicit[seen_idx]
  rows_mono <- recs$mono[seen_idx]
  rows_seen <- rep(TRUE, length(seen_idx))
  for (i in seq_len(K - 1L)) {
    g <- gap[[i]]
    if (g == 0L) next
    cl <- claims[[i]]
    nextgroup <- if (i + 1L <= last) rec_group[[i + 1L]] else NA_integer_
    grp <- c(cl, rep(nextgroup, g - length(cl)))
    expl <- c(cb_explicit[cl], rep(FALSE, g - length(cl)))
    # Levels: R's per-level totals say how many of each the gap holds.
    d <- L[i + 1L, ] - L[i, ]
    d[lev[[i + 1L]] + 1L] <- d[lev[[i + 1L]] + 1L] - 1L
    lv <- rep(NA_integer_, g)
    if (all(d >= 0L) && sum(d) == g) {
      pool <- rep(0:2, d)
      for (j in which(expl)) {
        if (2L %in% pool) { lv[[j]] <- 2L; pool <- pool[-match(2L, pool)] }
      }
      lv[is.na(lv)] <- pool
    }
    mono <- ifelse(is.na(grp), recs$mono[[i + 1L]], cbs$mono[pmax(grp, 1L)])
    if (ncb == 0L) mono <- rep(recs$mono[[i + 1L]], g)
    rows_gc <- c(rows_gc, N[[i]] + seq_len(g))
    rows_rec <- c(rows_rec, rep(NA_integer_, g))
    rows_group <- c(rows_group, grp)
    rows_level <- c(rows_level, lv)
    rows_explicit <- c(rows_explicit, expl)
    rows_mono <- c(rows_mono, mono)
    rows_seen <- c(rows_seen, rep(FALSE, g))
  }
  o <- order(rows_gc)
  rows_gc <- rows_gc[o]; rows_rec <- rows_rec[o]; rows_group <- rows_group[o]
  rows_level <- rows_level[o]; rows_explicit <- rows_explicit[o]
  rows_mono <- rows_mono[o]; rows_seen <- rows_seen[o]
  n <- length(rows_gc)

  # Stack samples: group sizes and durations.
  size <- tabulate(rows_group[!is.na(rows_group)], nbins = ncb)
  collapsed <- ifelse(is.na(rows_group), 1L, size[pmax(rows_group, 1L)])
  gct <- c(v$gctime, cbs$gctime)
  delta <- diff(gct)
  duration <- ifelse(!is.na(rows_group) & collapsed == 1L, delta[pmax(rows_group, 1L)], NA_real_)
  if (ncb == 0L) duration <- rep(NA_real_, n)

  stacks <- lapply(seq_len(n), function(j) {
    g <- rows_group[[j]]
    if (is.na(g) || ncb == 0L) return(list())
    s <- cbs$stack[[g]]
    if (is.null(s)) return(list())
    # Automatic collections sampled inside a later gc() call happened before
    # it: the gc() frame is not theirs.
    if (cb_explicit[[g]] && !rows_explicit[[j]]) s <- s[-length(s)]
    if (v$depth > 0L) s <- s[-seq_len(min(v$depth, length(s)))]
    s
  })
  call <- call_texts(lapply(stacks, function(s) if (length(s)) s[[length(s)]]))

  # Heap after each reported collection.
  nused <- recs$ncells_mb[rows_rec] * mega
  vused <- recs$vcells_mb[rows_rec] * mega
  trig <- gctrace_triggers(recs, rows_rec, v, end)

  # Built as a list: data.frame() and `$<-` cost more than the join itself.
  out <- list(
    gc = rows_gc,
    time = rows_mono - v$mono,
    mono = rows_mono,
    level = rows_level,
    ncells_used = new_mem_bytes(nused),
    vcells_used = new_mem_bytes(vused),
    ncells_trigger = new_mem_bytes(trig$ncells),
    vcells_trigger = new_mem_bytes(trig$vcells),
    trigger_estimated = trig$estimated,
    duration = duration,
    collapsed = as.integer(collapsed),
    explicit = rows_explicit,
    seen = rows_seen,
    call = call,
    stack = stacks
  )
  attr(out, "row.names") <- .set_row_names(n)
  new_gc_events(out)
}

new_gc_events <- function(df) {
  class(df) <- c("gc_events", "data.frame")
  df
}

# The innermost calls as text. Most collections of a trace happen in a few
# calls, and deparse() costs ten times an identical(): the last few distinct
# calls and their text are kept at hand.
call_texts <- function(calls) {
  out <- rep(NA_character_, length(calls))
  seen <- vector("list", 8L)
  seen_text <- character(8L)
  nseen <- 0L
  for (j in seq_along(calls)) {
    x <- calls[[j]]
    if (is.null(x)) next
    hit <- 0L
    for (k in seq_len(nseen)) {
      if (identical(seen[[k]], x)) { hit <- k; break }
    }
    if (hit == 0L) {
      # Newest first; the oldest falls out.
      hit <- 1L
      seen[2:8] <- seen[1:7]
      seen_text[2:8] <- seen_text[1:7]
      seen[1L] <- list(x)
      seen_text[[1L]] <- deparse_call(x)
      nseen <- min(nseen + 1L, 8L)
    }
    out[[j]] <- seen_text[[hit]]
  }
  out
}

deparse_call <- function(x) {
  # `backtick` given: its default costs as much as the deparsing.
  s <- deparse(x, width.cutoff = 60L, backtick = TRUE, nlines = 1L)
  if (length(s) == 0L) NA_character_ else s
}

# Triggers. R prints the heap in use rounded up to 0.1 MB and its share of
# the trigger rounded to a percent, so trigger ~ used / share. R moves the
# triggers only after level-2 collections (AdjustHeapSize()), so reports with
# as many level-2 collections behind them as the start marker share its exact
# trigger, and likewise for the end marker if there is one (unless it was
# level 2 itself). An exact value is used only where it agrees with the
# printed percentage.
trigger_agrees <- function(mb, pct, trig) {
  !is.na(trig) & !is.na(pct) &
    abs(100 * mb * mega / trig - pct) <= 1 + 100 * 0.1 * mega / trig
}

gctrace_triggers <- function(recs, rows_rec, v, end) {
  n <- length(rows_rec)
  est_n <- recs$ncells_mb * mega * 100 / recs$ncells_pct
  est_v <- recs$vcells_mb * mega * 100 / recs$vcells_pct
  est_n[!is.finite(est_n)] <- NA
  est_v[!is.finite(est_v)] <- NA
  K <- length(recs$gc)
  l2 <- recs$level2
  exact_n <- rep(NA_real_, K)
  exact_v <- rep(NA_real_, K)
  first <- l2 == l2[[1L]]
  exact_n[first] <- v$trigger[["ncells"]]
  exact_v[first] <- v$trigger[["vcells"]]
  last <- l2 == l2[[K]] & !first
  exact_n[last] <- end$trigger[["ncells"]]
  exact_v[last] <- end$trigger[["vcells"]]
  ok <- trigger_agrees(recs$ncells_mb, recs$ncells_pct, exact_n) &
    trigger_agrees(recs$vcells_mb, recs$vcells_pct, exact_v)
  tn <- ifelse(ok, exact_n, est_n)
  tv <- ifelse(ok, exact_v, est_v)
  list(
    ncells = if (n) tn[rows_rec] else double(),
    vcells = if (n) tv[rows_rec] else double(),
    estimated = if (n) ifelse(is.na(rows_rec), NA, !ok[rows_rec]) else logical()
  )
}

empty_events <- function() {
  out <- data.frame(gc = integer(), time = double(), mono = double(), level = integer())
  out$ncells_used <- new_mem_bytes()
  out$vcells_used <- new_mem_bytes()
  out$ncells_trigger <- new_mem_bytes()
  out$vcells_trigger <- new_mem_bytes()
  out$trigger_estimated <- logical()
  out$duration <- double()
  out$collapsed <- integer()
  out$explicit <- logical()
  out$seen <- logical()
  out$call <- character()
  out$stack <- list()
  new_gc_events(out)
}

# R's collection count and per-level totals at both ends: the start marker's
# report (the marker is before the trace); at the end, the last report, less
# the end marker itself if there is one.
new_gc_trace <- function(events, value, v, end, recs) {
  K <- length(recs$gc)
  gc_end <- recs$gc[[K]]
  levels_end <- c(recs$level0[[K]], recs$level1[[K]], recs$level2[[K]])
  if (end$marked) {
    gc_end <- gc_end - 1L
    levels_end[[recs$level[[K]] + 1L]] <- levels_end[[recs$level[[K]] + 1L]] - 1L
  }
  structure(list(
    events = events,
    value = value,
    elapsed = end$mono_before - v$mono,
    gc_time = end$gctime_before - v$gctime,
    gc_start = recs$gc[[1L]],
    gc_end = gc_end,
    levels_start = c(recs$level0[[1L]], recs$level1[[1L]], recs$level2[[1L]]),
    levels_end = levels_end,
    trigger_start = new_mem_bytes(v$trigger),
    trigger_end = new_mem_bytes(end$trigger),
    mono_start = v$mono
  ), class = "gc_trace")
}

# ---- methods --------------------------------------------------------------

#' @export
as.data.frame.gc_trace <- function(x, ...) x$events

#' @export
print.gc_events <- function(x, n = 10L, ...) {
  cat(sprintf("<gc_events> %d collection%s\n", nrow(x), if (nrow(x) == 1L) "" else "s"))
  y <- x
  class(y) <- "data.frame"
  drop <- intersect(c("mono", "stack"), names(y))
  y <- y[setdiff(names(y), drop)]
  if ("time" %in% names(y)) y$time <- round(y$time, 3L)
  if (ncol(y) == 0L || nrow(y) == 0L) return(invisible(x))
  print(utils::head(y, n), ...)
  if (nrow(y) > n) cat(sprintf("# ... %d more rows\n", nrow(y) - n))
  invisible(x)
}

#' @export
print.gc_trace <- function(x, ...) {
  ev <- x$events
  n <- nrow(ev)
  lv <- tabulate(ev$level + 1L, nbins = 3L)
  cat(sprintf("<gc_trace> %d collection%s in %s\n", n, if (n == 1L) "" else "s",
              format_secs(x$elapsed)))
  if (n > 0L) {
    cat(sprintf("  levels 0/1/2: %d/%d/%d%s\n", lv[[1L]], lv[[2L]], lv[[3L]],
                if (any(ev$explicit)) sprintf("; %d explicit gc()", sum(ev$explicit)) else ""))
    cat(sprintf("  time in GC: %s (%s of elapsed)\n", format_secs(x$gc_time),
                format_pct(x$gc_time / x$elapsed)))
    used <- ev$ncells_used + ev$vcells_used
    if (any(!is.na(used))) {
      cat(sprintf("  heap after GC: %s to %s\n", format(min(used, na.rm = TRUE)),
                  format(max(used, na.rm = TRUE))))
    }
  }
  invisible(x)
}

format_pct <- function(p) {
  if (!is.finite(p)) return("NA")
  sprintf("%.1f%%", 100 * p)
}

#' @export
summary.gc_trace <- function(object, ...) {
  ev <- object$events
  lv <- tabulate(ev$level + 1L, nbins = 3L)
  by_level <- data.frame(level = 0:2, collections = lv)
  used <- ev$ncells_used + ev$vcells_used
  trig <- ev$ncells_trigger + ev$vcells_trigger
  tv <- ev$vcells_trigger[!is.na(ev$vcells_trigger)]
  tn <- ev$ncells_trigger[!is.na(ev$ncells_trigger)]
  calls <- ev$call
  calls[is.na(calls)] <- "(none sampled)"
  tab <- sort(table(calls), decreasing = TRUE)
  top <- data.frame(call = names(tab), collections = as.integer(tab),
                    stringsAsFactors = FALSE)
  rownames(top) <- NULL
  structure(list(
    collections = nrow(ev),
    by_level = by_level,
    explicit = sum(ev$explicit),
    unseen = sum(!ev$seen),
    elapsed = object$elapsed,
    gc_time = object$gc_time,
    gc_share = object$gc_time / object$elapsed,
    heap_range = if (any(!is.na(used))) range(used, na.rm = TRUE) else new_mem_bytes(c(NA, NA)),
    trigger_range = if (any(!is.na(trig))) range(trig, na.rm = TRUE) else new_mem_bytes(c(NA, NA)),
    trigger_changes = c(ncells = count_changes(tn), vcells = count_changes(tv)),
    trigger_start = object$trigger_start,
    trigger_end = object$trigger_end,
    top_calls = utils::head(top, 10L)
  ), class = "summary.gc_trace")
}

# Estimated triggers jitter with R's rounding: count moves of more than 2%.
count_changes <- function(x) {
  x <- as.double(x)
  if (length(x) < 2L) return(0L)
  sum(abs(diff(x)) > 0.02 * pmax(x[-1L], x[-length(x)]))
}

#' @export
print.summary.gc_trace <- function(x, ...) {
  cat(sprintf("%d collections in %s; %s in GC (%s)\n", x$collections,
              format_secs(x$elapsed), format_secs(x$gc_time), format_pct(x$gc_share)))
  cat(sprintf("By level: 0: %d, 1: %d, 2: %d; explicit gc(): %d; known only from R's numbering: %d\n",
              x$by_level$collections[[1L]], x$by_level$collections[[2L]],
              x$by_level$collections[[3L]], x$explicit, x$unseen))
  cat(sprintf("Heap after GC: %s to %s\n", format(x$heap_range[[1L]]), format(x$heap_range[[2L]])))
  cat(sprintf("Triggers: cons cells %s -> %s, vectors %s -> %s (%d and %d changes)\n",
              format(x$trigger_start[[1L]]), format(x$trigger_end[[1L]]),
              format(x$trigger_start[[2L]]), format(x$trigger_end[[2L]]),
              x$trigger_changes[["ncells"]], x$trigger_changes[["vcells"]]))
  if (nrow(x$top_calls)) {
    cat("Calls running at most collections:\n")
    top <- utils::head(x$top_calls, 5L)
    w <- max(nchar(top$collections))
    for (i in seq_len(nrow(top))) {
      cat(sprintf("  %*d  %s\n", w, top$collections[[i]], top$call[[i]]))
    }
  }
  invisible(x)
}

#' @export
plot.gc_trace <- function(x, ...) {
  ev <- x$events
  t <- ev$time
  vu <- as.double(ev$vcells_used) / mega
  nu <- as.double(ev$ncells_used) / mega
  vt <- as.double(ev$vcells_trigger) / mega
  nt <- as.double(ev$ncells_trigger) / mega
  ylim <- range(c(0, vu, nu, vt, nt), na.rm = TRUE, finite = TRUE)
  if (!all(is.finite(ylim)) || diff(ylim) == 0) ylim <- c(0, max(1, ylim[[2L]]))
  xlim <- range(c(0, t, x$elapsed), na.rm = TRUE, finite = TRUE)
  level_cols <- c("#1b9e77", "#d95f02", "#7570b3")
  graphics::plot(NA, xlim = xlim, ylim = ylim, xlab = "seconds since the trace started",
                 ylab = "MiB after each collection",
                 main = sprintf("%d garbage collections", nrow(ev)), ...)
  series <- function(used, trig, col) {
    ok <- !is.na(trig)
    if (any(ok)) graphics::lines(t[ok], trig[ok], type = "s", lty = 2, col = col)
    ok <- !is.na(used)
    if (any(ok)) graphics::lines(t[ok], used[ok], type = "o", pch = 20, cex = 0.6, col = col)
  }
  series(vu, vt, "black")
  series(nu, nt, "#3182bd")
  tick <- diff(ylim) * 0.03
  lv <- ev$level
  graphics::segments(t, ylim[[1L]], t, ylim[[1L]] + tick,
                     col = ifelse(is.na(lv), "grey60", level_cols[lv + 1L]), lwd = 2)
  graphics::legend("topleft", bty = "n", cex = 0.8, ncol = 2,
                   legend = c("vectors in use", "vector trigger", "cons cells in use",
                              "cons cell trigger", "level 0", "level 1", "level 2"),
                   lty = c(1, 2, 1, 2, 1, 1, 1), lwd = c(1, 1, 1, 1, 2, 2, 2),
                   col = c("black", "black", "#3182bd", "#3182bd", level_cols))
  invisible(x)
}

# ---- gc_triggers ------------------------------------------------------------

#' The collector's triggers and growth settings
#'
#' R collects garbage when the cons cells in use reach their trigger or a new
#' vector would not fit under the vector trigger. After each full (level 2)
#' collection it moves the triggers: up when the heap is more than the growth
#' fraction full, down when it is less than 30% full, never below the startup
#' sizes or above the limits. `gc_triggers()` shows the triggers in force,
#' the limits ([mem.maxVSize()], [mem.maxNSize()]) and the growth settings
#' (the `R_GC_MEM_GROW` family of environment variables, read at startup).
#'
#' Reading the triggers needs [gc()]; `gc_triggers()` uses a minor collection
#' (`gc(full = FALSE)`), which frees only young garbage.
#'
#' @return A `gc_triggers` object: a list with `heap`, a data frame with one
#'   row per heap (`ncells`, `vcells`): cells and bytes in use, the trigger and
#'   the limit; and `settings`, the growth settings in force with where each
#'   came from.
#' @export
#' @examples
#' gc_triggers()
#' gc_triggers()$heap
gc_triggers <- function() {
  g <- gc(full = FALSE)
  maxv <- mem.maxVSize()
  maxn <- mem.maxNSize()
  heap <- data.frame(
    heap = c("ncells", "vcells"),
    used_cells = c(g[1L, 1L], g[2L, 1L]),
    trigger_cells = c(g[1L, 3L], g[2L, 3L]),
    stringsAsFactors = FALSE
  )
  heap$used <- new_mem_bytes(heap$used_cells * c(ncell_bytes, vcell_bytes))
  heap$trigger <- new_mem_bytes(heap$trigger_cells * c(ncell_bytes, vcell_bytes))
  heap$limit <- new_mem_bytes(c(maxn * ncell_bytes, maxv * mega))
  heap$free <- heap$trigger - heap$used
  structure(list(heap = heap, settings = gc_growth_settings()), class = "gc_triggers")
}

gc_growth_settings <- function() {
  env <- Sys.getenv(c("R_GC_MEM_GROW", "R_GC_GROWFRAC", "R_GC_GROWINCRFRAC",
                      "R_GC_NGROWINCRFRAC", "R_GC_VGROWINCRFRAC"), unset = NA)
  num <- suppressWarnings(as.numeric(env))
  names(num) <- names(env)
  grow <- c(n = 0.70, v = 0.70)
  incr <- c(n = 0.2, v = 0.2)
  src_grow <- src_incr <- c(n = "default", v = "default")
  mg <- num[["R_GC_MEM_GROW"]]
  if (!is.na(mg)) {
    w <- trunc(mg)
    if (w == 0) { incr[] <- 0; src_incr[] <- "R_GC_MEM_GROW=0" }
    if (w == 2) { incr[] <- 0.3; src_incr[] <- "R_GC_MEM_GROW=2" }
    if (w == 3) {
      incr[] <- 0.4; grow[] <- 0.5
      src_incr[] <- src_grow[] <- "R_GC_MEM_GROW=3"
    }
  }
  f <- num[["R_GC_GROWFRAC"]]
  if (!is.na(f) && f >= 0.35 && f <= 0.75) { grow[] <- f; src_grow[] <- "R_GC_GROWFRAC" }
  f <- num[["R_GC_GROWINCRFRAC"]]
  if (!is.na(f) && f >= 0.05 && f <= 0.80) { incr[] <- f; src_incr[] <- "R_GC_GROWINCRFRAC" }
  f <- num[["R_GC_NGROWINCRFRAC"]]
  if (!is.na(f) && f >= 0.05 && f <= 0.80) { incr[["n"]] <- f; src_incr[["n"]] <- "R_GC_NGROWINCRFRAC" }
  f <- num[["R_GC_VGROWINCRFRAC"]]
  if (!is.na(f) && f >= 0.05 && f <= 0.80) { incr[["v"]] <- f; src_incr[["v"]] <- "R_GC_VGROWINCRFRAC" }
  data.frame(
    heap = c("ncells", "vcells"),
    grow_frac = unname(grow),
    grow_frac_from = unname(src_grow),
    grow_incr_frac = unname(incr),
    grow_incr_frac_from = unname(src_incr),
    grow_incr_min_cells = c(40000, 80000),
    shrink_frac = c(0.30, 0.30),
    stringsAsFactors = FALSE
  )
}

#' @export
print.gc_triggers <- function(x, ...) {
  h <- x$heap
  s <- x$settings
  cat("<gc_triggers>\n")
  for (i in 1:2) {
    what <- if (i == 1L) "Cons cells (object headers, pairlists, environments)" else "Vector heap (vector data)"
    lim <- if (is.finite(h$limit[[i]])) format(h$limit[i]) else "no limit"
    cat(sprintf("%s: %s in use; next collection at %s (%s free); limit: %s\n",
                what, format(h$used[i]), format(h$trigger[i]), format(h$free[i]), lim))
  }
  for (i in 1:2) {
    nm <- if (i == 1L) "cons cells" else "vectors"
    cat(sprintf(paste0(
      "After a full collection the %s trigger grows when the heap is over %g%% full ",
      "(%s), by %s cells plus %g%% of its size (%s); it shrinks when under %g%% full.\n"),
      nm, 100 * s$grow_frac[[i]], s$grow_frac_from[[i]],
      format(s$grow_incr_min_cells[[i]], big.mark = ","), 100 * s$grow_incr_frac[[i]],
      s$grow_incr_frac_from[[i]], 100 * s$shrink_frac[[i]]))
  }
  invisible(x)
}
