# GC tracing, the session side: the message sink, gcinfo() and gc.time(),
# the marker collections that bracket a trace, and the relay of messages and
# warnings to the user's sink while R's reports go to memkit's pipe.


# `depth`: frames of the stack that are not the traced code's (dropped from
# each sample); `frames`: the caller's frames, all that a sample of a
# collection made before the trace started keeps.
gctrace_begin <- function(kind, depth, frames, exact = FALSE) {
  if (!platform_supports("gc_trace")) {
    mk_abort("unsupported", "GC tracing is not supported on this platform.", call = sys.call(-1L))
  }
  gctrace_forget_parent()
  opened <- !tracing_here()
  if (opened) gctrace_open()
  mark <- gctrace_start_point(frames, check = !opened, exact = exact)
  the_gc$next_id <- the_gc$next_id + 1L
  v <- c(list(id = the_gc$next_id, kind = kind, depth = depth), mark)
  the_gc$views[[length(the_gc$views) + 1L]] <- v
  v$id
}

# The pipe and its reader thread are opened by the first trace and kept for
# the session (closed when the package unloads: gctrace_shutdown()); each
# trace (the outermost of nested ones) takes the message sink, gcinfo() and
# gc.time() and gives them back when it ends (gctrace_close()).
gctrace_pipe <- function() {
  if (!is.null(the_gc$handle)) return(the_gc$handle)
  # Windows: R's reports go to a spool file the C side follows (a pipe there
  # has no name a file() connection can open).
  spool <- if (is_windows()) tempfile("memkit-gc-", fileext = ".txt")
  h <- .Call(ffi_gctrace_open, spool)
  the_gc$fd <- attr(h, "fd")
  the_gc$target <- if (is.null(spool)) sprintf("/dev/fd/%d", the_gc$fd) else spool
  the_gc$pid <- Sys.getpid()
  the_gc$handle <- h
  h
}

gctrace_open <- function() {
  h <- gctrace_pipe()
  .Call(ffi_gctrace_reset, h)
  # (A calling handler: it costs less than tryCatch() on every trace.)
  con <- withCallingHandlers(gctrace_connect(h), error = function(e) {
    gctrace_shutdown()
    mk_abort("system", sprintf("Can't open the GC report pipe: %s", conditionMessage(e)),
             call = NULL)
  })
  the_gc$con <- con
  the_gc$con_number <- as.integer(con)
  the_gc$prev_sink <- sink.number(type = "message")
  the_gc$window <- FALSE
  the_gc$quiet <- FALSE
  the_gc$window_nrec <- -1
  the_gc$attached <- TRUE
  # From here on every exit path must give back what was taken: on an error
  # (a full descriptor table, an interrupt) close everything again.
  ok <- FALSE
  on.exit(if (!ok) gctrace_close())
  sink(con, type = "message")
  the_gc$prev_gcinfo <- gcinfo(TRUE)
  # gc.time() has no query: reading it turns it on. Times still zero mean it
  # was off (the default), and it is turned off again at the end.
  the_gc$gctime_was_on <- any(gc.time(TRUE)[1:3] > 0)
  .Call(ffi_gctrace_arm, gctrace_check_sink, !isTRUE(the_gc$prev_gcinfo))
  ok <- TRUE
  invisible()
}

# A connection on the pipe's write end, and the descriptors R opened for it
# registered with the C side (closed on exec, pointed elsewhere in a fork).
# On Windows one appending to the spool file, in binary mode (no "\r\n").
gctrace_connect <- function(h) {
  con <- file(the_gc$target, open = if (is.null(the_gc$fd) || the_gc$fd < 0L) "ab" else "w",
              raw = TRUE)
  ok <- FALSE
  on.exit(if (!ok) close(con))
  .Call(ffi_gctrace_adopt, h)
  ok <- TRUE
  con
}

# A trace is running in this process (a child forked by
# parallel::mclapply() inherits the state but not the pipe's reader).
tracing_here <- function() {
  isTRUE(the_gc$attached) && !is.null(the_gc$handle) && identical(the_gc$pid, Sys.getpid())
}

# In a forked child, the parent's traces are not ours to stop or extend:
# forget them (the C side has already let go of the pipe). The child's
# message stream goes back where it went before the parent traced, and R's
# reports stop.
gctrace_forget_parent <- function() {
  if (is.null(the_gc$handle) || identical(the_gc$pid, Sys.getpid())) return(invisible())
  if (isTRUE(the_gc$attached)) {
    try(.Call(ffi_gctrace_disarm), silent = TRUE)
    try(gcinfo(isTRUE(the_gc$prev_gcinfo)), silent = TRUE)
    try(gctrace_restore_sink(), silent = TRUE)
  }
  the_gc$handle <- NULL
  the_gc$attached <- FALSE
  the_gc$con <- NULL
  the_gc$views <- list()
  invisible()
}

# Is our connection still the open one on the pipe? closeAllConnections()
# closes it under us, and its number may then be reused.
gctrace_con_ok <- function() {
  con <- the_gc$con
  !is.null(con) && isTRUE(tryCatch(
    isOpen(con) && identical(summary(con)$description, the_gc$target),
    error = function(e) FALSE))
}

in_close_all <- function() {
  n <- sys.nframe()
  for (i in seq_len(n)) {
    if (identical(sys.function(i), base::closeAllConnections)) return(TRUE)
  }
  FALSE
}

# Run from GC callbacks (those with no report since the last one), before
# each marker and after each top-level call. R's reports must go to the
# pipe and nowhere else:
# - the sink back where it was before the trace (2, or the user's sink of
#   then), as bench::mark() and capture.output() leave it: point it at the
#   pipe again (reopened if closeAllConnections() closed it) and turn the
#   reports on;
# - any other sink (the user's own sink(con, type = "message") inside the
#   trace, bench::mark()'s file): turn the reports off while it is in place,
#   so that none lands in the user's file; the collections meanwhile are
#   known from the gaps in R's numbering;
# - inside closeAllConnections(), which calls gc() between taking the sink
#   back and closing every connection: keep out of its way (reports off).
gctrace_check_sink <- function() {
  if (!tracing_here()) {
    gctrace_forget_parent()
    return(invisible())
  }
  if (isTRUE(the_gc$window)) return(invisible())
  n <- sink.number(type = "message")
  if (n == the_gc$con_number && gctrace_con_ok()) {
    if (isTRUE(the_gc$quiet)) gctrace_loud()
    return(invisible())
  }
  if ((n == 2L || n == the_gc$prev_sink) && !in_close_all()) {
    if (!gctrace_con_ok() && !gctrace_reconnect()) {
      gctrace_quiet()
      return(invisible())
    }
    sink(the_gc$con, type = "message")
    gctrace_loud()
  } else {
    gctrace_quiet()
  }
  invisible()
}

gctrace_quiet <- function() {
  if (!isTRUE(the_gc$quiet)) {
    the_gc$quiet <- TRUE
    gcinfo(FALSE)
  }
}

gctrace_loud <- function() {
  if (isTRUE(the_gc$quiet)) {
    the_gc$quiet <- FALSE
    gcinfo(TRUE)
    # Collections meanwhile went unreported: the end of a trace with no
    # report since must be marked (gctrace_tail_known()).
    the_gc$window_nrec <- gctrace_nrec()
  }
}

# closeAllConnections() closed our connection: open another on the pipe,
# which the C side still holds. FALSE if that fails (the trace then goes on
# from R's numbering alone and says so when it ends).
gctrace_reconnect <- function() {
  con <- tryCatch(gctrace_connect(the_gc$handle), error = function(e) NULL)
  if (is.null(con)) {
    the_gc$lost <- TRUE
    return(FALSE)
  }
  the_gc$con <- con
  the_gc$con_number <- as.integer(con)
  TRUE
}

# Borrow the message sink for one of memkit's own reports (a marker) when
# other code's sink is in place: the report goes to the pipe, not into the
# user's file. Returns the sink to give back, or NULL.
gctrace_borrow_sink <- function() {
  n <- sink.number(type = "message")
  if (n == the_gc$con_number && gctrace_con_ok()) return(NULL)
  if (!gctrace_con_ok()) return(NULL)
  sink(the_gc$con, type = "message")
  n
}

gctrace_return_sink <- function(n) {
  if (is.null(n)) return()
  con <- if (n != 2L) tryCatch(getConnection(n), error = function(e) NULL)
  if (is.null(con)) sink(type = "message") else sink(con, type = "message")
}

# Restore everything gctrace_open() changed. Each step runs even if an
# earlier one fails, so the session is left as found. `sink`: the message
# sink's number where the caller has just read it (sink.number() costs as
# much as the rest of a step).
gctrace_close <- function(sink = NULL) {
  h <- the_gc$handle
  if (is.null(h) || !isTRUE(the_gc$attached)) return(invisible())
  the_gc$attached <- FALSE
  text <- ""
  dropped <- 0
  steps <- list(
    function() gctrace_session_handlers_off(),
    function() .Call(ffi_gctrace_disarm),
    function() gcinfo(the_gc$prev_gcinfo),
    function() gctrace_restore_sink(sink),
    function() close(the_gc$con),
    function() text <<- .Call(ffi_gctrace_text),
    function() dropped <<- attr(.Call(ffi_gctrace_records, .Machine$integer.max), "dropped"),
    function() .Call(ffi_gctrace_reset, h),
    function() if (!isTRUE(the_gc$gctime_was_on)) gc.time(FALSE)
  )
  # One step after another; one that fails is skipped and the rest still
  # run (one tryCatch() for them all unless a step fails).
  i <- 0L
  while (i < length(steps)) {
    tryCatch(while (i < length(steps)) {
      i <- i + 1L
      steps[[i]]()
    }, error = function(e) NULL)
  }
  the_gc$con <- NULL
  the_gc$views <- list()
  the_gc$window <- FALSE
  the_gc$quiet <- FALSE
  lost <- isTRUE(the_gc$lost)
  the_gc$lost <- FALSE
  if (nzchar(text)) cat(text, file = stderr())
  if (isTRUE(dropped > 0)) {
    mk_warn("memory", sprintf(paste0(
      "The GC trace ran out of memory for %s bytes of messages or reports; ",
      "text written straight to the message stream may be missing."), format(dropped)),
      call = NULL)
  }
  if (lost) {
    mk_warn("system", paste0(
      "The GC trace lost its pipe (closeAllConnections()?) and could not reopen it; ",
      "later collections are known only from R's numbering."), call = NULL)
  }
  invisible()
}

gctrace_restore_sink <- function(n = NULL) {
  if (is.null(n)) n <- sink.number(type = "message")
  if (n != the_gc$con_number) return()
  gctrace_return_sink(the_gc$prev_sink)
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
    the_gc$window <- FALSE
    # `code` may have ended the trace (a warning turned into an error by
    # options(warn = 2) reaches gc_trace()'s error handler, which stops it):
    # then there is nothing to point back at, and gcinfo() is the user's.
    if (tracing_here()) {
      sink(the_gc$con, type = "message")
      gcinfo(TRUE)
      # Collections meanwhile went unreported: the end of a trace with no
      # report since must be marked (gctrace_tail_known()).
      the_gc$window_nrec <- gctrace_nrec()
    }
  })
  if (nzchar(text)) cat(text, file = stderr())
  code
}

# Calling handlers: signal the condition again from here, with the user's
# sink in place, so outer handlers see it once and the default handler
# prints it where it belongs; then muffle the original.
gctrace_relay_message <- function(m) {
  if (!tracing_here()) return(gctrace_forget_parent())
  gctrace_with_user_sink(message(m))
  invokeRestart("muffleMessage")
}

gctrace_relay_warning <- function(w) {
  if (!tracing_here()) return(gctrace_forget_parent())
  call <- user_call(w$call)
  if (getOption("warn", 0) < 1 && identical(call, w$call)) return()
  w$call <- call
  gctrace_with_user_sink(warning(w))
  invokeRestart("muffleWarning")
}

# A session trace (gc_trace_start()) has no expression to wrap in calling
# handlers: messages and warnings are relayed by global calling handlers
# where R allows them (not with handlers on the stack, e.g. inside
# tryCatch()), and after each top-level call the text held back so far is
# handed over (this is also where warnings deferred by options(warn = 0)
# arrive). An error lends the sink back to the user before R prints it; the
# next check takes it again.
gctrace_session_handlers_on <- function() {
  if (is.null(the_gc$task)) {
    the_gc$task <- addTaskCallback(function(...) {
      gctrace_after_toplevel()
      TRUE
    }, name = "memkit_gc_trace")
  }
  if (!isTRUE(the_gc$global)) {
    the_gc$global <- tryCatch({
      globalCallingHandlers(message = gctrace_relay_message,
                            warning = gctrace_relay_warning,
                            error = gctrace_relay_error)
      TRUE
    }, error = function(e) FALSE)
  }
  invisible()
}

gctrace_session_handlers_off <- function() {
  if (!is.null(the_gc$task)) {
    try(removeTaskCallback(the_gc$task), silent = TRUE)
    the_gc$task <- NULL
  }
  if (isTRUE(the_gc$global)) {
    h <- globalCallingHandlers()
    mine <- vapply(h, function(f) {
      identical(f, gctrace_relay_message) || identical(f, gctrace_relay_warning) ||
        identical(f, gctrace_relay_error)
    }, NA)
    # Removing needs an empty handler stack too; where R refuses, the
    # handlers stay and do nothing while no trace runs.
    done <- tryCatch({
      globalCallingHandlers(NULL)
      if (any(!mine)) do.call(globalCallingHandlers, h[!mine])
      TRUE
    }, error = function(e) FALSE)
    if (done) the_gc$global <- FALSE
  }
  invisible()
}

gctrace_after_toplevel <- function() {
  if (!tracing_here()) return(gctrace_forget_parent())
  gctrace_check_sink()
  gctrace_with_user_sink(NULL)
  invisible()
}

gctrace_relay_error <- function(e) {
  if (!tracing_here()) return(gctrace_forget_parent())
  if (isTRUE(the_gc$window) || sink.number(type = "message") != the_gc$con_number) return()
  text <- .Call(ffi_gctrace_text)
  gctrace_quiet()
  gctrace_restore_sink()
  if (nzchar(text)) cat(text, file = stderr())
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

# Where a trace starts: no collection of memkit's own. Collections made
# since the last safe point have their callbacks run now, so every
# collection before this point is among the reports and callbacks recorded
# so far, and every later one comes after them. R's collection count is
# not known here (R shows it only in the reports it prints after a
# collection): gctrace_start_row() works it out from the trace's first
# report. The exact triggers are known only if no level-2 collection
# happened since memkit last read them (the_gc$known).
#
# `exact`: open with a marker collection of memkit's own all the same, so
# that the last report before the trace (`start`) gives R's count, totals
# and triggers exactly, whatever the trace's code does with the message
# stream.
gctrace_start_point <- function(frames, check = TRUE, exact = FALSE) {
  if (exact) {
    m <- gctrace_mark_point()
    r <- .Call(ffi_gctrace_records, m$rec - 1L)
    if (length(r$gc)) the_gc$known <- list(level2 = r$level2[[1L]], trigger = m$trigger)
  } else if (check) {
    # (Not needed when gctrace_open() has just pointed the sink at the pipe.)
    gctrace_check_sink()
  }
  s <- .Call(ffi_gctrace_sync, frames)
  start <- NULL
  if (exact && s[[1L]] >= 1) {
    r <- .Call(ffi_gctrace_records, s[[1L]] - 1)
    start <- lapply(r, `[`, 1L)
  }
  list(rec0 = s[[1L]], cb = s[[2L]], mono = .Call(ffi_utils_now), gctime = gc.time()[[3L]],
       known = the_gc$known, start = start)
}

# A collection whose report and exact figures close a trace when its end is
# not known from R's reports (gctrace_tail_known()).
gctrace_mark <- function() gc(verbose = TRUE, full = FALSE)

gctrace_mark_point <- function() {
  cb0 <- gctrace_ncb()
  nrec0 <- gctrace_nrec()
  gctrace_check_sink()
  gct_before <- gc.time()[[3L]]
  mono_before <- .Call(ffi_utils_now)
  # The marker's report goes to the pipe even while other code's sink is in
  # place: it is memkit's, not theirs.
  lent <- gctrace_borrow_sink()
  m <- tryCatch(gctrace_mark(), finally = gctrace_return_sink(lent))
  gct <- gc.time()[[3L]]
  mono <- .Call(ffi_utils_now)
  cbs <- .Call(ffi_gctrace_callbacks, cb0)
  nrec <- gctrace_nrec()
  # The callback that ran inside gctrace_mark()'s gc() had drained every
  # report printed before it: the marker's is the last of those.
  mine <- which(vapply(cbs$stack, is_mark_stack, logical(1)))
  rec <- if (length(mine)) cbs$nrec[[mine[[1L]]]] else nrec
  if (rec <= nrec0) rec <- nrec
  # A trace ends before its marker: the marker's own time is not part of it.
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
  gctrace_shutdown()
  invisible()
}

# Close the session's pipe and reader thread (ending a trace first).
gctrace_shutdown <- function() {
  h <- the_gc$handle
  if (is.null(h)) return(invisible())
  gctrace_close()
  the_gc$handle <- NULL
  try(.Call(ffi_gctrace_close, h), silent = TRUE)
  invisible()
}

