# GC tracing (R/gctrace*.R, src/gctrace.c).

skip_if_unsupported("gc_trace")

# Ground truth is R's own collection counter: a gcinfo report captured from
# gc(verbose = TRUE) gives R's collection number and per-level totals.
gc_report <- function() {
  f <- tempfile()
  con <- file(f, "w")
  prev <- sink.number(type = "message")
  sink(con, type = "message")
  gc(verbose = TRUE, full = FALSE)
  if (prev == 2L) sink(type = "message") else sink(getConnection(prev), type = "message")
  close(con)
  line <- grep("^Garbage collection", readLines(f), value = TRUE)
  unlink(f)
  m <- regmatches(line, regexec("Garbage collection ([0-9]+) = ([0-9]+)\\+([0-9]+)\\+([0-9]+) \\(level ([0-9])\\)", line))[[1L]]
  v <- as.integer(m[-1L])
  list(gc = v[[1L]], levels = v[2:4], level = v[[5L]])
}

# Every collection between the trace's two ends is one row, in order, and
# the rows per level equal R's own per-level totals. A trace with no
# collection has no row, and R's count at its ends is unknown (NA) unless
# a marker closed it.
expect_numbered <- function(tr) {
  ev <- as.data.frame(tr)
  if (nrow(ev) == 0L && is.na(tr$gc_start)) {
    expect_identical(c(tr$gc_start, tr$gc_end), c(NA_integer_, NA_integer_))
    return(invisible(ev))
  }
  expect_identical(ev$gc, seq.int(tr$gc_start + 1L, length.out = tr$gc_end - tr$gc_start))
  if (anyNA(tr$levels_start)) {
    # Collections R did not report before the trace's first report (other
    # code held the message stream) have no known level, and then neither
    # have R's totals at the start; every other row has its level.
    first <- match(TRUE, ev$seen, nomatch = nrow(ev) + 1L)
    expect_true(all(!is.na(ev$level[seq_len(nrow(ev)) >= first])))
    expect_true(all(!ev$seen[is.na(ev$level)]))
  } else {
    expect_identical(tabulate(ev$level + 1L, 3L), tr$levels_end - tr$levels_start)
  }
  invisible(ev)
}

# A trace opens without a collection of its own: it starts at or after the
# collection before it (`before`, R's report of a gc() of the test's own)
# and ends before the one after it.
expect_complete <- function(tr, before, after) {
  ev <- expect_numbered(tr)
  if (is.na(tr$gc_start)) return(invisible(ev))
  expect_gte(tr$gc_start, before$gc)
  expect_lt(tr$gc_end, after$gc)
  expect_gte(after$gc - before$gc - 1L, nrow(ev))
  invisible(ev)
}

session_state <- function() {
  list(
    sink = sink.number(type = "message"),
    gcinfo = { g <- gcinfo(FALSE); gcinfo(g); g },
    connections = rownames(showConnections(all = TRUE)),
    fds = if (dir.exists("/proc/self/fd")) length(list.files("/proc/self/fd")) else NA,
    threads = if (requireNamespace("ps", quietly = TRUE)) ps::ps_num_threads() else NA
  )
}

# The pipe and its reader thread are opened by the first trace and kept for
# the session: the state compared around a trace is the state after that.
invisible(gc_trace(NULL))

test_that("a pure-R allocation loop: every collection, per-level counts equal", {
  # 20000 vectors of 80 KB: over 1.5 GB allocated, more than any trigger.
  f <- function(n) { s <- 0; for (i in seq_len(n)) s <- s + length(numeric(1e4)); s }
  before <- gc_report()
  tr <- gc_trace(f(20000))
  after <- gc_report()
  ev <- expect_complete(tr, before, after)
  expect_gt(nrow(ev), 0L)
  expect_identical(tr$value, 2e8)
  expect_true(all(ev$seen))
  expect_false(any(ev$explicit))
})

test_that("C-heavy allocation: collections inside C code arrive together", {
  before <- gc_report()
  tr <- gc_trace({
    s <- paste0("a", 1:2e6)
    for (k in 1:6) z <- numeric(5e7)
    length(s)
  })
  after <- gc_report()
  ev <- expect_complete(tr, before, after)
  expect_gt(nrow(ev), 1L)
  expect_true(any(ev$collapsed > 1L))
  rm(z)
})

test_that("explicit gc() calls are rows with explicit = TRUE, known from the gaps", {
  before <- gc_report()
  tr <- gc_trace({ x <- lapply(1:2e4, function(i) numeric(20)); gc(); gc(); gc(); length(x) })
  after <- gc_report()
  ev <- expect_complete(tr, before, after)
  expect_identical(sum(ev$explicit), 3L)
  expect_true(all(!ev$seen[ev$explicit]))
  expect_identical(ev$call[ev$explicit], rep("gc()", 3L))
})

# The marker collections a trace made, as an outer trace sees them:
# explicit collections inside memkit's gctrace_mark().
marker_rows <- function(outer) {
  ev <- as.data.frame(outer)
  in_mark <- vapply(ev$stack, function(s) {
    any(vapply(s, function(call) is.call(call) && identical(call[[1L]], quote(gctrace_mark)), NA))
  }, NA)
  ev[ev$explicit & in_mark, , drop = FALSE]
}

# Traces `expr` inside an outer trace, each checked against R's numbering.
traced_twice <- function(expr) {
  before <- gc_report()
  outer <- gc_trace(gc_trace(expr))
  after <- gc_report()
  outer_ev <- expect_complete(outer, before, after)
  inner <- outer$value
  inner_ev <- expect_numbered(inner)
  expect_true(all(inner_ev$gc %in% outer_ev$gc))
  list(inner = inner, inner_ev = inner_ev, markers = marker_rows(outer))
}

test_that("a trace opens with no collection, and ends without one when R's last report says all (#14)", {
  f <- function(n) { s <- 0; for (i in seq_len(n)) s <- s + length(numeric(1e4)); s }
  for (n in c(10, 30000)) {
    r <- traced_twice(f(n))
    # The outer trace saw no collection of memkit's.
    expect_identical(nrow(r$markers), 0L)
    # Without a level-2 collection the triggers stay where they were.
    if (!any(r$inner_ev$level == 2L)) {
      expect_identical(r$inner$trigger_end, r$inner$trigger_start)
    }
  }
  expect_gt(nrow(r$inner_ev), 0L)
  # No collection at all: no rows, no marker, and R's count unknown.
  r <- traced_twice(NULL)
  expect_identical(nrow(r$inner_ev), 0L)
  expect_identical(nrow(r$markers), 0L)
  expect_identical(c(r$inner$gc_start, r$inner$gc_end), c(NA_integer_, NA_integer_))
  # Where the trace starts is known from its first report, even after
  # explicit gc() calls that R did not report.
  r <- traced_twice({ gc(); gc(); f(3000) })
  expect_identical(r$inner_ev$explicit[1:2], c(TRUE, TRUE))
  expect_identical(r$inner_ev$level[1:2], c(2L, 2L))
  expect_identical(r$inner_ev$call[1:2], c("gc()", "gc()"))
})

test_that("a trace ends with a marker when its end is not known from R's reports", {
  f <- function(n) { s <- 0; for (i in seq_len(n)) s <- s + length(numeric(1e4)); s }
  # A silent gc() after R's last report.
  r <- traced_twice({ f(3000); gc() })
  expect_identical(nrow(r$markers), 1L)
  expect_identical(r$markers$gc[[1L]], r$inner$gc_end + 1L)
  last <- r$inner_ev[nrow(r$inner_ev), ]
  expect_true(last$explicit)
  expect_false(last$seen)
  # A message relayed after R's last report (gcinfo() is off meanwhile).
  expect_message(r <- traced_twice({ f(3000); message("done") }), "done")
  expect_identical(nrow(r$markers), 1L)
  # Collections reported into another sink (capture.output()) at the end.
  r <- traced_twice({ f(10); utils::capture.output(x <- f(30000), type = "message") })
  expect_identical(nrow(r$markers), 1L)
  expect_true(any(!r$inner_ev$seen))
  # The outer trace knows the inner one's markers printed their reports.
  expect_true(all(r$markers$seen))
})

test_that("an error halfway reaches the user with the events so far", {
  before <- gc_report()
  state <- session_state()
  err <- tryCatch(
    gc_trace({ x <- lapply(1:3e4, function(i) numeric(20)); gc(); stop("halfway") }),
    error = function(e) e
  )
  after <- gc_report()
  expect_identical(conditionMessage(err), "halfway")
  expect_s3_class(err$gc_trace, "gc_trace")
  ev <- expect_complete(err$gc_trace, before, after)
  expect_identical(sum(ev$explicit), 1L)
  expect_identical(session_state(), state)
})

test_that("the session is left as found", {
  state <- session_state()
  tr <- gc_trace(for (i in 1:5) x <- numeric(1e6))
  expect_identical(session_state(), state)
})

test_that("columns follow the events contract", {
  tr <- gc_trace(for (i in 1:20) x <- numeric(5e5))
  ev <- as.data.frame(tr)
  expect_named(ev, c("gc", "time", "mono", "level", "ncells_used", "vcells_used",
                     "ncells_trigger", "vcells_trigger", "trigger_estimated",
                     "duration", "collapsed", "explicit", "seen", "call", "stack"))
  expect_s3_class(ev$vcells_used, "mem_bytes")
  expect_s3_class(ev$ncells_trigger, "mem_bytes")
  expect_type(ev$stack, "list")
  expect_true(all(ev$mono >= tr$mono_start))
  expect_true(all(ev$level %in% 0:2))
})

test_that("gc_trace_stop() with no trace running is a state error", {
  expect_error(gc_trace_stop(), class = "memkit_error_state")
})

test_that("gc_trace_start() and gc_trace_stop() trace a stretch of a session", {
  state <- session_state()
  before <- gc_report()
  gc_trace_start()
  # 240 MB allocated: collections however high the triggers are by now.
  for (i in 1:3000) x <- numeric(1e4)
  tr <- gc_trace_stop()
  after <- gc_report()
  expect_s3_class(tr, "gc_trace")
  expect_null(tr$value)
  expect_complete(tr, before, after)
  expect_identical(session_state(), state)
})

test_that("five gc() calls in a row give five callbacks (sentinel re-arming)", {
  # Objects with R finalizers dying in the same collections exercise the
  # weak-reference list around the sentinel.
  tr <- gc_trace({
    for (i in 1:5) {
      e <- new.env()
      reg.finalizer(e, function(e) NULL)
      rm(e)
      gc()
    }
  })
  ev <- as.data.frame(tr)
  expect_identical(sum(ev$explicit), 5L)
  expect_identical(ev$call[ev$explicit], rep("gc()", 5L))
})

test_that("the stack starts inside the traced expression", {
  # Many evaluations per collection, so that R reaches safe points (where
  # the stack is sampled) while inner() is still running.
  inner <- function() for (i in 1:20000) x <- numeric(1e4)
  outer <- function() inner()
  tr <- gc_trace(outer())
  ev <- as.data.frame(tr)
  stacks <- Filter(function(s) length(s) >= 2L, ev$stack)
  expect_gt(length(stacks), 0L)
  firsts <- vapply(stacks, function(s) paste(deparse(s[[1L]]), deparse(s[[2L]])), "")
  expect_true(all(firsts == "outer() inner()"))
  expect_true(all(ev$call[lengths(ev$stack) >= 2L] %in% c("inner()", "numeric(10000)")))
})

test_that("nested traces: the inner one holds its stretch, the outer one everything", {
  before <- gc_report()
  tr <- gc_trace({
    for (i in 1:3000) a <- numeric(1e4)
    inner <- gc_trace(for (i in 1:3000) a <- numeric(1e4))
    inner
  })
  after <- gc_report()
  outer_ev <- expect_complete(tr, before, after)
  inner_ev <- as.data.frame(tr$value)
  expect_true(all(inner_ev$gc %in% outer_ev$gc))
  # The inner trace opened with no collection; its end marker, if it took
  # one, is an explicit collection in the outer trace.
  expect_false(tr$value$gc_start %in% outer_ev$gc[outer_ev$explicit])
  expect_identical(inner_ev$gc, seq.int(tr$value$gc_start + 1L, length.out = nrow(inner_ev)))
  # (Parenthesised: `+` binds looser than `%in%`.)
  expect_true((tr$value$gc_end + 1L) %in% outer_ev$gc[outer_ev$explicit] ||
                !any(outer_ev$gc > tr$value$gc_end & outer_ev$explicit))
})

test_that("gc_trace_stop() inside a gc_trace() expression is a state error", {
  state <- session_state()
  expect_error(gc_trace(gc_trace_stop()), class = "memkit_error_state")
  expect_identical(session_state(), state)
})

test_that("bench::mark() inside gc_trace() works and leaves the session as found", {
  skip_if_not_installed("bench")
  state <- session_state()
  before <- gc_report()
  tr <- gc_trace(bench::mark(numeric(1e6), iterations = 30, check = FALSE), exact = TRUE)
  after <- gc_report()
  ev <- expect_complete(tr, before, after)
  # bench::mark() captured the reports of its own collections: the trace
  # knows them from the gaps in R's numbering, counted from the report of
  # the collection `exact = TRUE` opened it with.
  expect_false(anyNA(tr$levels_start))
  expect_gte(sum(!ev$seen), sum(tr$value$n_gc))
  expect_identical(session_state(), state)
  # Without it the trace is still numbered consistently, from the callbacks
  # of the collections before its first report.
  tr <- gc_trace(bench::mark(numeric(1e6), iterations = 30, check = FALSE))
  ev <- expect_numbered(tr)
  expect_gt(sum(!ev$seen), 0L)
  expect_identical(session_state(), state)
})

test_that("collections made just before a trace starts are not the trace's (#14)", {
  # The collections inside paste0() reach their safe point (where their
  # callback runs) later; gc_trace() runs it as it starts, so they fall
  # before the inner trace, in the outer one.
  f <- function(k) {
    # New strings each time (strings already in R's cache cost nothing).
    s <- paste0("a", k, "_", 1:3e6)
    gc_trace(NULL)
  }
  # (Where R's safe points fall varies: four tries.)
  for (k in 1:4) {
    outer <- gc_trace(f(k))
    expect_identical(nrow(as.data.frame(outer$value)), 0L)
    ev <- expect_numbered(outer)
    expect_gte(nrow(ev), 1L)
  }
})

test_that("exact = TRUE opens a trace with a collection whose report gives its start (#14)", {
  expect_error(gc_trace(NULL, exact = NA), class = "memkit_error_argument")
  f <- function(n) { s <- 0; for (i in seq_len(n)) s <- s + length(numeric(1e4)); s }
  outer <- gc_trace(gc_trace(f(3000), exact = TRUE))
  inner <- outer$value
  inner_ev <- expect_numbered(inner)
  ev <- as.data.frame(outer)
  # The marker is an explicit collection of the outer trace, numbered
  # where the inner one starts; its exact triggers hold for every report
  # of the inner trace before a level-2 collection.
  marker <- ev[ev$explicit & vapply(ev$stack, function(s) {
    any(vapply(s, function(call) is.call(call) && identical(call[[1L]], quote(gctrace_mark)), NA))
  }, NA), ]
  expect_identical(marker$gc, inner$gc_start)
  expect_false(anyNA(inner$trigger_start))
  before_l2 <- cumsum(inner_ev$level == 2L) == 0L
  expect_false(any(inner_ev$trigger_estimated[before_l2 & inner_ev$seen]))
})

test_that("messages and warnings reach outer handlers once, in order", {
  withr::local_options(warn = 0)
  expect_message(expect_message(gc_trace({ message("a"); message("b") }), "a"), "b")
  expect_silent(suppressMessages(gc_trace(message("hidden"))))
  # Interleaving with cat() output: in the snapshot block at the end.
})

# Run an R script in a fresh Rscript with this session's libraries: its exit
# status and the lines it printed (standard error merged into standard output).
run_rscript <- function(script) {
  res <- processx::run(file.path(R.home("bin"), "Rscript"), script,
                       env = c("current", R_LIBS = paste(.libPaths(), collapse = ":")),
                       stderr_to_stdout = TRUE, error_on_status = FALSE)
  list(status = res$status, lines = strsplit(res$stdout, "\n")[[1L]])
}

test_that("text written straight to the message stream is kept in order (Rscript)", {
  skip_if_not_installed("processx")
  script <- withr::local_tempfile(fileext = ".R")
  writeLines(c(
    "library(memkit)",
    "tr <- gc_trace({",
    "  cat('1\\n'); message('2'); cat('3\\n', file = stderr()); message('4')",
    "  x <- lapply(1:2e5, function(i) numeric(10)); cat('5\\n', file = stderr())",
    "  length(x)",
    "})",
    "cat('6\\n')",
    "stopifnot(nrow(as.data.frame(tr)) == tr$gc_end - tr$gc_start)",
    "cat('ok', sink.number(type = 'message'), gcinfo(FALSE), '\\n')"
  ), script)
  res <- run_rscript(script)
  expect_identical(res$status, 0L)
  lines <- res$lines
  expect_identical(lines, c(as.character(1:6), "ok 2 FALSE "))
})

test_that("works in a callr::r() child", {
  res <- in_child(function() {
    tr <- memkit::gc_trace(lapply(1:1e5, function(i) numeric(10)))
    ev <- as.data.frame(tr)
    list(n = nrow(ev), span = tr$gc_end - tr$gc_start,
         sink = sink.number(type = "message"), gcinfo = gcinfo(FALSE))
  })
  expect_true(res$ok)
  expect_identical(res$value$n, res$value$span)
  expect_identical(res$value$sink, 2L)
  expect_false(res$value$gcinfo)
})

test_that("an interrupt leaves the session as found", {
  skip_if_interrupts_ignored()
  res <- in_child(function() {
    st <- function() list(sink.number(type = "message"), gcinfo(FALSE),
                          rownames(showConnections(all = TRUE)),
                          length(dir("/proc/self/fd")), ps::ps_num_threads())
    # Loading memkit loads cli, whose timer thread is not the tracer's; the
    # first trace opens the pipe and thread kept for the session.
    loadNamespace("memkit")
    invisible(memkit::gc_trace(NULL))
    gcinfo(FALSE)
    before <- st()
    r <- tryCatch(
      memkit::gc_trace({
        x <- lapply(1:5e4, function(i) numeric(10))
        tools::pskill(Sys.getpid(), tools::SIGINT)
        Sys.sleep(5)
        "not interrupted"
      }),
      interrupt = function(i) "interrupted"
    )
    list(r = r, same = identical(st(), before))
  })
  skip_if_not_installed("ps")
  skip_if_not_linux()
  expect_true(res$ok)
  expect_identical(res$value$r, "interrupted")
  expect_true(res$value$same)
})

test_that("works in an interactive session (driven through tmux)", {
  skip_on_cran()
  skip_if(Sys.which("tmux") == "", "tmux is missing")
  out <- withr::local_tempfile(fileext = ".rds")
  session <- paste0("memkit-gctrace-", Sys.getpid())
  lib <- paste(.libPaths(), collapse = ":")
  system2("tmux", c("new-session", "-d", "-s", session, "-x", "200", "-y", "50",
                    shQuote(paste0("env R_LIBS=", lib, " ", file.path(R.home("bin"), "R"),
                                   " --vanilla --quiet"))))
  on.exit(system2("tmux", c("kill-session", "-t", session), stderr = FALSE), add = TRUE)
  code <- sprintf(paste0(
    "library(memkit); tr <- gc_trace({message('hello'); x <- lapply(1:1e5, function(i) numeric(10)); 1}); ",
    "saveRDS(list(interactive = interactive(), n = nrow(as.data.frame(tr)), ",
    "span = tr$gc_end - tr$gc_start, sink = sink.number(type = 'message'), ",
    "gcinfo = gcinfo(FALSE)), '%s')"), out)
  Sys.sleep(1)
  system2("tmux", c("send-keys", "-t", session, shQuote(code), "Enter"))
  for (i in 1:120) {
    if (file.exists(out) && file.size(out) > 0) break
    Sys.sleep(0.25)
  }
  Sys.sleep(0.5)
  screen <- system2("tmux", c("capture-pane", "-p", "-t", session), stdout = TRUE)
  res <- readRDS(out)
  expect_true(res$interactive)
  expect_identical(res$n, res$span)
  expect_identical(res$sink, 2L)
  expect_false(res$gcinfo)
  expect_true(any(screen == "hello"))
  expect_false(any(grepl("Garbage collection", screen)))
})

test_that("print() and summary() are short", {
  tr <- gc_trace({ for (i in 1:30) x <- numeric(5e5); gc(); 1 })
  s <- summary(tr)
  expect_s3_class(s, "summary_gc_trace", exact = TRUE)
  expect_identical(s$by_level$collections, tabulate(as.data.frame(tr)$level + 1L, 3L))
  expect_identical(s$explicit, 1L)
  expect_identical(sum(s$top_calls$collections), nrow(as.data.frame(tr)))
  expect_true("gc()" %in% s$top_calls$call)
  expect_output(print(tr), "gc_trace")
  # The triggers printed: exact at the ends where known, else those after
  # the first and last collections, "~" where estimated.
  ev <- as.data.frame(tr)
  n <- nrow(ev)
  expect_identical(s$trigger_first$trigger[["vcells"]], ev$vcells_trigger[[1L]])
  expect_identical(s$trigger_last$estimated, ev$trigger_estimated[[n]])
  line <- grep("^Triggers", capture.output(print(s)), value = TRUE)
  first <- if (anyNA(s$trigger_start)) {
    paste0(if (isTRUE(ev$trigger_estimated[[1L]])) "~", format(ev$ncells_trigger[1L]))
  } else format(s$trigger_start[1L])
  expect_true(startsWith(line, paste("Triggers: cons cells", first, "->")))
  # No collection: nothing to show.
  expect_output(print(summary(gc_trace(NULL))), "Triggers: not read (no collection)", fixed = TRUE)
})

test_that("plot() draws in base graphics", {
  # Twice the vector trigger in 4 MB vectors: collections whatever the
  # triggers are by now.
  n <- ceiling(2 * as.double(gc_triggers()$heap$trigger[[2L]]) / 4e6)
  tr <- gc_trace(for (i in seq_len(n)) x <- numeric(5e5))
  expect_gt(nrow(as.data.frame(tr)), 0L)
  f <- withr::local_tempfile(fileext = ".pdf")
  grDevices::pdf(f)
  on.exit(grDevices::dev.off(), add = TRUE)
  expect_identical(plot(tr), tr)
  # A trace with no collection draws its empty axes.
  tr <- gc_trace(NULL)
  expect_identical(plot(tr), tr)
})

test_that("gc_triggers() gives gc()'s triggers and the growth settings", {
  tg <- gc_triggers()
  g <- gc(full = FALSE)
  expect_s3_class(tg$heap$trigger, "mem_bytes")
  expect_identical(tg$heap$trigger_cells, unname(g[, 3L]))
  expect_identical(tg$settings$grow_frac, c(0.7, 0.7))
  withr::local_envvar(R_GC_MEM_GROW = "3")
  expect_output(print(gc_triggers()), "3")
})

test_that("the pipe and its reader thread are opened once, and closed when memkit unloads (#14)", {
  skip_if_not_linux()
  skip_if_not_installed("ps")
  res <- in_child(function() {
    st <- function() c(fds = length(dir("/proc/self/fd")), threads = ps::ps_num_threads())
    loadNamespace("memkit")
    before <- st()
    invisible(memkit::gc_trace(NULL))
    first <- st()
    for (i in 1:5) invisible(memkit::gc_trace(lapply(1:2e4, function(j) numeric(10))))
    later <- st()
    unloadNamespace("memkit")
    list(before = before, first = first, later = later, unloaded = st())
  })
  expect_true(res$ok)
  v <- res$value
  expect_identical(v$first[["threads"]], v$before[["threads"]] + 1L)
  expect_gt(v$first[["fds"]], v$before[["fds"]])
  expect_identical(v$later, v$first)
  expect_identical(v$unloaded, v$before)
})

test_that("the report parser separates R's reports from other text", {
  skip_if_not_linux()
  # The session's pipe first, so that this test can open one of its own.
  memkit:::gctrace_shutdown()
  h <- .Call(memkit:::ffi_gctrace_open, NULL)
  on.exit(.Call(memkit:::ffi_gctrace_close, h))
  on.exit(invisible(gc_trace(NULL)), add = TRUE) # the session's pipe again, for the tests below
  con <- file(sprintf("/dev/fd/%d", attr(h, "fd")), "w", raw = TRUE)
  # Text without a newline, then a report on the same line, as happens when
  # code writes a partial line to stderr just before a collection.
  cat("partial", "Garbage collection 7 = 5+1+1 (level 2) ... ",
      "\n3.2 Mbytes of cons cells used (41%)\n",
      "9.0 Mbytes of vectors used (14%)\n", "tail", sep = "", file = con)
  flush(con)
  close(con)
  r <- .Call(memkit:::ffi_gctrace_records, 0)
  expect_identical(r$gc, 7L)
  expect_identical(c(r$level0, r$level1, r$level2, r$level), c(5L, 1L, 1L, 2L))
  expect_identical(c(r$ncells_mb, r$vcells_mb), c(3.2, 9))
  expect_identical(c(r$ncells_pct, r$vcells_pct), c(41L, 14L))
  expect_identical(.Call(memkit:::ffi_gctrace_text), "partialtail")
})

test_that("forked children (parallel::mclapply) do not disturb the trace", {
  skip_if_not_linux()
  state <- session_state()
  before <- gc_report()
  tr <- gc_trace({
    r <- parallel::mclapply(1:2, function(i) length(lapply(1:5e4, function(j) numeric(10))),
                            mc.cores = 2)
    x <- lapply(1:5e4, function(j) numeric(10))
    unlist(r)
  })
  after <- gc_report()
  expect_identical(tr$value, c(5e4L, 5e4L))
  expect_complete(tr, before, after)
  expect_identical(session_state(), state)
})

test_that("forked children print no GC reports (#13)", {
  skip_if_not_linux()
  skip_if_not_installed("callr")
  # R prints a collection's report before anything of memkit's runs in the
  # child: the children must have had the reports turned off as they forked.
  # Their messages still reach their stderr.
  err <- tempfile()
  on.exit(unlink(err))
  value <- callr::r(function() {
    library(memkit)
    tr <- gc_trace(parallel::mclapply(1:2, function(i) {
      message("child message ", i)
      x <- lapply(1:2e5, function(j) numeric(10))
      gc()
      length(x)
    }, mc.cores = 2))
    list(value = unlist(tr$value), gcinfo = gcinfo(FALSE))
  }, stderr = err, libpath = .libPaths(), timeout = 120)
  text <- readLines(err)
  expect_identical(value$value, c(2e5L, 2e5L))
  expect_false(value$gcinfo)
  expect_false(any(grepl("Garbage collection", text)), info = paste(text, collapse = "\n"))
  expect_setequal(grep("^child message", text, value = TRUE), c("child message 1", "child message 2"))

  # A child's reports are off from its first instruction, and stay on in
  # children of a session that had them on (gcinfo(TRUE)) before the trace.
  on_in_children <- function(before) {
    callr::r(function(before) {
      library(memkit)
      gcinfo(before)
      tr <- gc_trace(parallel::mclapply(1:2, function(i) {
        on <- gcinfo(FALSE)
        gcinfo(on)
        on
      }, mc.cores = 2))
      gcinfo(FALSE)
      unlist(tr$value)
    }, args = list(before = before), libpath = .libPaths(), timeout = 120)
  }
  expect_identical(on_in_children(FALSE), c(FALSE, FALSE))
  expect_identical(on_in_children(TRUE), c(TRUE, TRUE))
})

test_that("forked workers trace while the parent traces (#13)", {
  skip_if_not_linux()
  # Each worker opens a trace of its own inside the parent's. The parent's
  # handle, inherited and then dropped in the worker, used to close the
  # worker's new pipe when collected ("ignoring SIGPIPE signal").
  res <- in_child(function() {
    library(memkit)
    tr <- gc_trace(parallel::mclapply(1:2, function(i) {
      inner <- try(gc_trace({ x <- lapply(1:5e4, function(j) numeric(10)); gc(); length(x) }),
                   silent = TRUE)
      if (inherits(inner, "try-error")) return(as.character(inner))
      c(inner$value, nrow(as.data.frame(inner)))
    }, mc.cores = 2))
    tr$value
  })
  expect_true(res$ok)
  expect_length(res$value, 2L)
  for (w in res$value) {
    expect_type(w, "integer")
    expect_identical(w[[1L]], 50000L)
    expect_gte(w[[2L]], 1)
  }
})

test_that("gc_trace_stop(id) stops that trace and the ones started after it", {
  state <- session_state()
  outer <- gc_trace_start()
  inner <- gc_trace_start()
  x <- lapply(1:2e4, function(i) numeric(20))
  tr <- gc_trace_stop(outer)
  expect_s3_class(tr, "gc_trace")
  expect_error(gc_trace_stop(inner), class = "memkit_error_state")
  expect_error(gc_trace_stop("a"), class = "memkit_error_argument")
  expect_identical(session_state(), state)
})

test_that("the tracer survives gctorture() (heavy)", {
  skip_on_cran()
  skip_if_not(Sys.getenv("MEMKIT_HEAVY_TESTS") == "true")
  res <- in_child(function() {
    gctorture(TRUE)
    tr <- memkit::gc_trace({ x <- lapply(1:5, function(i) numeric(10)); gc(); length(x) })
    gctorture(FALSE)
    ev <- as.data.frame(tr)
    list(value = tr$value, n = nrow(ev), span = tr$gc_end - tr$gc_start,
         consecutive = identical(ev$gc, seq.int(tr$gc_start + 1L, length.out = nrow(ev))),
         explicit = sum(ev$explicit), sink = sink.number(type = "message"))
  }, timeout = 900)
  expect_true(res$ok)
  expect_identical(res$value$value, 5L)
  expect_gt(res$value$n, 100L)
  expect_identical(res$value$n, res$value$span)
  expect_true(res$value$consecutive)
  expect_gte(res$value$explicit, 1L)
  expect_identical(res$value$sink, 2L)
})

test_that("unloading memkit after (or during) a trace leaves nothing pointing into it", {
  res <- in_child(function() {
    library(memkit)
    tr <- gc_trace(lapply(1:1e4, function(i) numeric(10)))
    gc_trace_start()
    dll <- getLoadedDLLs()[["memkit"]][["path"]]
    unloadNamespace("memkit")
    dyn.unload(dll)
    invisible(gc())
    x <- lapply(1:2e5, function(i) numeric(10))
    r <- if (.Platform$OS.type == "unix") unlist(parallel::mclapply(1:2, function(i) i, mc.cores = 2)) else 1:2
    list(r = r, sink = sink.number(type = "message"), gcinfo = gcinfo(FALSE))
  })
  expect_true(res$ok)
  expect_identical(res$value$r, 1:2)
  expect_identical(res$value$sink, 2L)
  expect_false(res$value$gcinfo)
})

test_that("call texts are each call deparsed, however often calls repeat", {
  calls <- c(list(quote(f(1L)), quote(f(1)), NULL, quote(`my fun`(a, b = "x"))),
             lapply(1:12, function(i) call("g", i)), list(quote(f(1L))),
             lapply(12:1, function(i) call("g", i)), list(quote(f(1)), NULL))
  expected <- vapply(calls, function(x) {
    if (is.null(x)) NA_character_ else deparse(x, width.cutoff = 60L, backtick = TRUE, nlines = 1L)
  }, character(1))
  expect_identical(call_texts(calls), expected)
  expect_identical(call_texts(list()), character())
})

test_that("a message sink set inside the trace gets none of R's reports and stays (#13)", {
  f <- withr::local_tempfile()
  con <- file(f, "w")
  before <- gc_report()
  tr <- gc_trace({
    sink(con, type = "message")
    gc(); gc(); gc()
    message("mine")
    1
  })
  expect_identical(sink.number(type = "message"), as.integer(con))
  sink(type = "message")
  close(con)
  after <- gc_report()
  expect_identical(readLines(f), "mine")
  ev <- expect_complete(tr, before, after)
  expect_gte(tr$gc_end, tr$gc_start)
  expect_identical(sum(ev$explicit), 3L)
  expect_false(gcinfo(FALSE))
})

test_that("options(warn = 2) and an error in a relayed warning leave the session as found (#13)", {
  state <- session_state()
  withr::with_options(list(warn = 2), {
    expect_error(gc_trace(warning("w")), "converted from warning")
  })
  expect_identical(session_state(), state)
  expect_error(gc_trace(message(structure(class = c("boom", "message", "condition"),
                                          list(message = "m\n", call = NULL)))), NA)
  withr::with_options(list(warn = 2), {
    expect_error(gc_trace({ x <- lapply(1:2e4, function(i) numeric(20)); warning("w") }))
  })
  expect_identical(session_state(), state)
})

test_that("closeAllConnections() inside a trace: the trace goes on, no error (#13)", {
  res <- in_child(function() {
    tr <- memkit::gc_trace({
      closeAllConnections()
      x <- lapply(1:1e5, function(i) numeric(10))
      length(x)
    })
    ev <- as.data.frame(tr)
    list(value = tr$value, n = nrow(ev), span = tr$gc_end - tr$gc_start,
         seen = sum(ev$seen), sink = sink.number(type = "message"), gcinfo = gcinfo(FALSE))
  })
  expect_true(res$ok)
  expect_identical(res$value$value, 1e5L)
  expect_identical(res$value$n, res$value$span)
  expect_gt(res$value$seen, 0L)
  expect_identical(res$value$sink, 2L)
  expect_false(res$value$gcinfo)
})

test_that("gc_trace_start(): messages and errors arrive as they happen (Rscript, #13)", {
  skip_if_not_installed("processx")
  script <- withr::local_tempfile(fileext = ".R")
  writeLines(c(
    "library(memkit)",
    "invisible(gc_trace_start())",
    "message('1')",
    "cat('2\\n')",
    "cat('3\\n', file = stderr())",
    "cat('4\\n')",
    "x <- lapply(1:2e5, function(i) numeric(10))",
    "try(stop('5'))",
    "cat('6\\n')",
    "message('7')",
    "tr <- gc_trace_stop()",
    "cat('8\\n')",
    "stopifnot(nrow(as.data.frame(tr)) == tr$gc_end - tr$gc_start)",
    "cat('ok', sink.number(type = 'message'), gcinfo(FALSE), '\\n')"
  ), script)
  res <- run_rscript(script)
  expect_identical(res$status, 0L)
  lines <- res$lines
  lines <- sub("^Error in try\\(stop\\(\"5\"\\)\\) : ", "", lines)
  expect_identical(lines, c(as.character(1:8), "ok 2 FALSE "))
})

# Work, not time: the bytes R allocates to join a trace grow in proportion
# to its collections (a join that grows vectors one element at a time, as
# before, allocates in proportion to their square).
test_that("joining a trace is linear in its collections (#13)", {
  skip_if_not(capabilities("profmem"), "R was built without memory profiling")
  join_bytes <- function(n) {
    gc_trace_start()
    for (i in seq_len(n)) gc(full = FALSE)
    f <- withr::local_tempfile()
    utils::Rprofmem(f, threshold = 0)
    tr <- gc_trace_stop()
    utils::Rprofmem(NULL)
    expect_identical(nrow(as.data.frame(tr)), tr$gc_end - tr$gc_start)
    lines <- readLines(f)
    sum(as.numeric(sub(" :.*", "", grep("^[0-9]+ :", lines, value = TRUE))))
  }
  small <- join_bytes(500)
  large <- join_bytes(2000)
  expect_lt(large / small, 6)
})

# Printed output, messages and error messages, in one block: snapshots skip
# on CRAN, and a skip ends its block, so the checks above stay out of it.
test_that("gc_events print their first rows as print.data.frame() would, and how many more", {
  tr <- gc_trace(for (i in 1:6) gc())
  ev <- as.data.frame(tr)
  expect_gte(nrow(ev), 6L)
  out <- capture.output(print(ev, n = 3L))
  y <- ev
  class(y) <- "data.frame"
  y <- y[setdiff(names(y), c("mono", "stack"))]
  y$time <- round(y$time, 3L)
  expect_identical(out, c(sprintf("<gc_events> %d collections", nrow(ev)),
                          capture.output(print(utils::head(y, 3L))),
                          sprintf("# ... %d more rows", nrow(ev) - 3L)))
})

test_that("printed output and messages read well (snapshots)", {
  expect_snapshot(gc_trace_stop(), error = TRUE, cnd_class = TRUE)
  expect_snapshot(gc_trace(gc_trace_stop()), error = TRUE, cnd_class = TRUE)
  expect_snapshot(gc_trace_stop("a"), error = TRUE, cnd_class = TRUE)
  withr::local_options(warn = 0)
  expect_snapshot({
    tr <- gc_trace({
      cat("one\n")
      message("two")
      cat("three\n")
      warning("four")
      message("five")
      6
    })
    tr$value
  })
  # Twice the vector trigger in 4 MB vectors: automatic collections (seen,
  # with their heap), and gc() calls, whatever the triggers are by now.
  n <- ceiling(2 * as.double(gc_triggers()$heap$trigger[[2L]]) / 4e6)
  tr <- gc_trace({ for (i in seq_len(n)) x <- numeric(5e5); gc(); gc(); 1 })
  scrub <- function(x) {
    x <- gsub("[0-9]+(\\.[0-9]+)? m?s\\b", "<time>", x)
    # "~": a trigger estimated from R's report, which depends on the state
    # earlier traces left.
    x <- gsub("~", "", x, fixed = TRUE)
    gsub("[0-9]+(\\.[0-9]+)?", "#", x)
  }
  expect_snapshot(print(tr), transform = scrub)
  # The calls listed after the first four lines depend on where R's safe
  # points fall; they are checked above, not snapshotted.
  expect_snapshot(writeLines(utils::head(capture.output(summary(tr)), 5L)), transform = scrub)
  withr::local_envvar(R_GC_MEM_GROW = "3")
  expect_snapshot(print(gc_triggers()), transform = function(x) gsub("[0-9]+(\\.[0-9]+)? [KMG]?i?B", "# B", x))
})
