# GC tracing, the session side: the message sink, gcinfo() and gc.time(),
# the marker collections that bracket a trace, and the relay of messages and
# warnings to the user's sink while R's reports go to memkit's pipe.


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

