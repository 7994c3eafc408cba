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
# the rows per level equal R's own per-level totals.
expect_complete <- function(tr, before, after) {
  ev <- as.data.frame(tr)
  expect_gt(tr$gc_start, before$gc)
  expect_lt(tr$gc_end, after$gc)
  expect_identical(ev$gc, seq.int(tr$gc_start + 1L, length.out = tr$gc_end - tr$gc_start - 1L))
  end_level <- which(tr$levels_end - tr$levels_start - tabulate(ev$level + 1L, 3L) == 1L)
  expect_length(end_level, 1L)
  expected <- tr$levels_end - tr$levels_start
  expected[end_level] <- expected[end_level] - 1L
  expect_identical(tabulate(ev$level + 1L, 3L), expected)
  # The bracket saw at least as many collections as the trace holds.
  expect_gte(after$gc - before$gc - 1L, nrow(ev) + 2L)
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

test_that("a pure-R allocation loop: every collection, per-level counts equal", {
  f <- function(n) { x <- list(); for (i in seq_len(n)) x[[i]] <- numeric(50); length(x) }
  before <- gc_report()
  tr <- gc_trace(f(30000))
  after <- gc_report()
  ev <- expect_complete(tr, before, after)
  expect_gt(nrow(ev), 0L)
  expect_identical(tr$value, 30000L)
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
  expect_snapshot(gc_trace_stop(), error = TRUE)
  expect_error(gc_trace_stop(), class = "memkit_error_state")
})

test_that("gc_trace_start() and gc_trace_stop() trace a stretch of a session", {
  state <- session_state()
  before <- gc_report()
  gc_trace_start()
  x <- lapply(1:2e4, function(i) numeric(30))
  tr <- gc_trace_stop()
  after <- gc_report()
  expect_s3_class(tr, "gc_trace")
  expect_null(tr$value)
  expect_complete(tr, before, after)
  expect_identical(session_state(), state)
})
