# GC tracing: every collection R makes, as data.
#
# The C side (src/gctrace.c) gives two raw streams: the reports R prints with
# gcinfo(TRUE), caught through a pipe (a spool file on Windows), and callbacks from a sentinel finalizer
# that run at the next safe point after a collection with the R call stack.
# The R side is split by concern:
# - this file: the exported functions and the one tracer's state; traces nest
#   as views over it;
# - gctrace-capture.R: the session state a trace borrows (the message sink,
#   gcinfo(), gc.time()) and gives back, and the relay of messages;
# - gctrace-join.R: stopping a trace and joining the streams into rows;
# - gctrace-methods.R: print(), summary() and plot();
# - gctrace-triggers.R: gc_triggers().

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
#' at a pipe read by a background thread (both opened by the first trace of
#' the session and kept until memkit is unloaded; the message stream and
#' `gcinfo()` are given back after every trace), so each report R prints after an
#' automatic collection becomes a row. R prints nothing for explicit [gc()]
#' calls, but its collection numbers have no gaps, so every collection is
#' accounted for: the gaps become rows with `seen = FALSE`, their levels
#' taken from R's per-level totals. A finalizer that R runs at the next safe
#' point after each collection records the call stack. Collections inside a
#' single call to C code (`paste0()` of millions of strings) reach that point
#' together and share one stack; `collapsed` says how many did.
#'
#' A trace opens without a collection of its own, so it does not move
#' what it measures (a collection promotes what survives it). R shows its
#' count of collections only in the reports it prints after one, so the
#' count and per-level totals at the start are worked out from the trace's
#' first report, less the collections R did not report before it (each
#' known from its finalizer callback: an explicit [gc()] runs it at once).
#' That is exact unless other code took the message stream before the
#' trace's first report ([bench::mark()], `capture.output(type =
#' "message")`): collections made inside one call to C code then share one
#' callback and may be counted short, and their levels are `NA`. With
#' `exact = TRUE` a trace opens with a minor collection (`gc(full = FALSE)`)
#' whose report gives its start exactly in every case, at the cost of that
#' collection (about a millisecond on a small heap). A trace with no
#' collection has `NA` as its counts. The end is read from R's last report;
#' a minor collection closes the trace only when that is not enough: when
#' an explicit [gc()] or an unreported collection came after R's last
#' report, or when other code took the message stream. These marker
#' collections are not among the events. The exact triggers are known where
#' no level-2 collection happened since memkit last read them (at a marker
#' of this trace or an earlier one); elsewhere they are estimated from R's
#' reports. Besides the markers, a trace costs a few tenths of a
#' millisecond to open, close and join into rows, and each collection some
#' tens of microseconds more (R's report, the call stack).
#'
#' @section Messages, warnings and errors:
#' Messages, and warnings when `options(warn = 1)`, reach the user as they
#' happen, through the message sink that was in place before. Text that code
#' writes straight to the message stream (`cat(file = stderr())`, C code's
#' `REprintf()`) is held back and written when the next message is, or when
#' the trace stops: it keeps its order relative to other messages but may
#' come after output printed to the console meanwhile. After
#' `gc_trace_start()` messages and warnings are relayed by global calling
#' handlers (where R allows them: not from inside `tryCatch()` and the like),
#' errors print as they happen, and held text is written after each
#' top-level call. A message sink that code inside the trace sets
#' (`sink(con, type = "message")`) receives none of R's GC reports: they are
#' turned off while it is in place (reports of collections before the next
#' safe point may still reach it) and those collections are known from R's
#' numbering; the sink is left as that code set it. If `expr` fails, the
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
#' gaps in R's numbering (`seen = FALSE`); when it runs before the trace's
#' first report, open the trace with `exact = TRUE`.
#'
#' @section Forked children:
#' A trace records the collections of the process that started it. Children
#' forked inside a trace (by [parallel::mclapply()]) are not traced; their
#' message stream goes back to where it went before the trace, and a child
#' may open traces of its own. R's reports are turned off in the child as it
#' is forked, so that none reaches its standard error (they stay on if
#' `gcinfo(TRUE)` was set before the trace). This holds for forks made by
#' R's own thread, as [parallel::mclapply()] and [parallel::mcparallel()]
#' make them; a child forked by another thread of the process prints R's
#' report of its first collection.
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
#' @section Platforms:
#' Linux, macOS and Windows. On Linux and macOS R's reports go through a pipe
#' that R opens as a `file()` connection by name (`/dev/fd/N`). Windows has
#' no such name for a pipe: there they go to a spool file in [tempdir()]
#' (opened by R for appending, kept for the session like the pipe and
#' deleted when memkit is unloaded; a few hundred bytes per collection) that a background thread follows every 5 ms, so a
#' collection's `time` there can be up to 5 ms after it ended (sooner when
#' the collection's callback reads the file first). A forked child's view of
#' a trace (see "Forked children") applies only where R forks: not on
#' Windows.
#'
#' @param expr An expression to evaluate.
#' @param exact `TRUE` to open the trace with a minor collection of its own,
#'   so that R's count, per-level totals and triggers at its start are known
#'   exactly even when code in the trace takes the message stream before
#'   its first collection (see "How it works"). `FALSE` (the default) opens
#'   it without one.
#' @return `gc_trace()` and `gc_trace_stop()`: a `gc_trace` object, a list
#'   with `events` (the data frame above), `value` (the value of `expr`;
#'   `NULL` for `gc_trace_stop()`), `elapsed`, `gc_time` (seconds spent in
#'   collections by [gc.time()]), `gc_start` and `gc_end` (R's collection
#'   count when the trace started and when it ended: the events are
#'   collections `gc_start + 1` to `gc_end`; `NA` for a trace with no
#'   collection), `levels_start` and `levels_end` (R's totals per level at
#'   both ends; `NA` where unknown, see "How it works"), and `trigger_start`
#'   and `trigger_end` (the exact triggers at both ends where known, `NA`
#'   otherwise).
#'   `gc_trace_start()`: invisibly, the trace's id (an integer) for
#'   `gc_trace_stop(id)`.
#'
#'   `summary()` of a trace gives a `summary_gc_trace` object (a list:
#'   `collections`, `by_level`, `explicit`, `unseen`, `elapsed`, `gc_time`,
#'   `gc_share`, `heap_range`, `trigger_range`, `trigger_changes`,
#'   `trigger_start`, `trigger_end`, `trigger_first` and `trigger_last` (the
#'   triggers after the first and last collections, each a list of
#'   `trigger` and `estimated`), and `top_calls`, a data frame of the calls
#'   running at most collections) that prints as a few lines; `plot()` draws
#'   the heap after each collection and the triggers over time.
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
gc_trace <- function(expr, exact = FALSE) {
  if (!identical(exact, FALSE)) check_flag(exact)
  # Stacks are recorded from the first call inside `expr`: drop this frame
  # and withCallingHandlers()'s.
  depth <- sys.nframe() + 1L
  id <- gctrace_begin("expr", depth = depth, frames = depth - 2L, exact = exact)
  on.exit(gctrace_abandon(id))
  value <- withCallingHandlers(
    expr,
    message = function(m) gctrace_relay_message(m),
    warning = function(w) gctrace_relay_warning(w),
    error = function(e) {
      e$call <- user_call(e$call)
      # Finishing the trace must not replace the user's error with another.
      tr <- tryCatch(gctrace_end(id, NULL, frames = depth - 1L), error = function(e2) NULL)
      # An inner gc_trace() has attached its own trace already.
      if (is.null(e$gc_trace)) e$gc_trace <- tr
      stop(e)
    }
  )
  tr <- gctrace_end(id, value, frames = depth - 1L)
  on.exit()
  if (is.null(tr)) {
    mk_abort("state", "This GC trace was stopped before its expression returned.")
  }
  tr
}

#' @rdname gc_trace
#' @export
gc_trace_start <- function(exact = FALSE) {
  if (!identical(exact, FALSE)) check_flag(exact)
  id <- gctrace_begin("session", depth = 0L, frames = sys.nframe() - 1L, exact = exact)
  gctrace_session_handlers_on()
  invisible(id)
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
  gctrace_end(v$id, NULL, frames = sys.nframe() - 1L)
}

