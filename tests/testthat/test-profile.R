
# Threads and open file descriptors of this process (Linux).
n_threads <- function() length(list.files("/proc/self/task"))
n_fds <- function() length(list.files("/proc/self/fd"))
# A profile's GC part is a trace: the tracer's pipe and thread, opened by the
# first trace, stay for the session. Counts are compared after that.
invisible(gc_trace(NULL))

test_that("mem_profile() records samples, marks and the value of expr", {
  p <- mem_profile({
    mem_mark("alloc")
    x <- numeric(1e6)
    mem_mark("sum")
    s <- sum(x)
    Sys.sleep(0.05)
    s + 1
  }, interval = 0.005)
  expect_s3_class(p, "mem_profile")
  expect_identical(p$value, 1)
  # 50 ms at 5 ms: the start and stop readings alone would be 2.
  expect_gte(nrow(p$samples), 5L)
  expect_s3_class(p$samples$rss, "mem_bytes")
  expect_true(all(diff(p$samples$time) >= 0))
  expect_identical(p$marks$label, c("alloc", "sum"))
  expect_true(all(p$marks$time >= 0 & p$marks$time <= p$duration))
  expect_gte(as.numeric(p$peak), as.numeric(p$baseline))
  expect_gte(as.numeric(p$peak), max(as.numeric(p$samples$rss)))
  expect_identical(as.data.frame(p), p$samples)
})

test_that("the exact peak sees a spike shorter than the sampling interval", {
  skip_if_valgrind()
  skip_if_not_linux()
  skip_on_cran()
  p <- mem_profile({
    x <- numeric(2.5e7) # 200 MB, written
    rm(x)
    gc()
  }, interval = 30)
  expect_identical(p$peak_method, "VmHWM (reset)")
  expect_gt(as.numeric(p$peak - p$baseline), 0.9 * 2e8)
  # The sampler read only at the start and at the stop: it missed the spike.
  # (A sanitizer's allocator keeps freed memory in quarantine, resident at
  # the stop: there the stop's reading holds the spike.)
  skip_if_other_allocator()
  expect_lt(max(as.numeric(p$samples$rss)) - as.numeric(p$baseline), 0.5 * 2e8)
})

test_that("mem_peak() measures an allocation of 200 MB within 5%", {
  skip_if_valgrind()
  skip_if_not_linux()
  skip_on_cran()
  pk <- mem_peak({
    x <- numeric(2.5e7)
    rm(x)
  })
  expect_s3_class(pk, c("mem_peak", "mem_bytes"))
  expect_lt(abs(as.numeric(pk) / 2e8 - 1), 0.05)
  expect_lt(abs(as.numeric(attr(pk, "heap")) / 2e8 - 1), 0.05)
  expect_identical(attr(pk, "method"), "VmHWM (reset)")
  expect_true(is.na(attr(mem_peak(NULL, heap = FALSE), "heap")))
})

test_that("nested profiles keep the outer peak exact", {
  skip_if_valgrind()
  skip_if_not_linux()
  skip_on_cran()
  inner <- NULL
  outer <- mem_profile({
    x <- numeric(2.5e7)
    rm(x)
    gc()
    # The inner profile resets the kernel's mark; the outer keeps its spike.
    inner <- mem_profile(sum(1:10))
    inner_peak <- mem_peak(NULL)
  })
  expect_s3_class(inner, "mem_profile")
  expect_lt(as.numeric(inner$peak - inner$baseline), 0.5 * 2e8)
  expect_gt(as.numeric(outer$peak - outer$baseline), 0.9 * 2e8)
  expect_length(profile_state$active, 0L)
})

test_that("marks go to the enclosing profiles only", {
  expect_s3_class(mem_mark("outside"), "mem_bytes")
  outer <- mem_profile({
    mem_mark("a")
    inner <- mem_profile(mem_mark("b"))
  })
  expect_identical(outer$marks$label, c("a", "b"))
  expect_identical(inner$marks$label, "b")
})

test_that("the sampler's thread and file descriptor are gone on return and after an error", {
  skip_if_not_linux()
  threads <- n_threads()
  fds <- n_fds()
  during <- NULL
  p <- mem_profile(during <- c(n_threads(), n_fds()))
  # The sampler's thread and /proc/self/statm.
  expect_true(all(during > c(threads, fds)))
  expect_identical(c(n_threads(), n_fds()), c(threads, fds))
  expect_error(mem_profile(stop("boom")), "boom")
  expect_identical(c(n_threads(), n_fds()), c(threads, fds))
  expect_length(profile_state$active, 0L)
})

test_that("an error carries the profile so far", {
  err <- tryCatch(mem_profile({
    mem_mark("before")
    stop("boom")
  }), error = identity)
  expect_identical(conditionMessage(err), "boom")
  expect_s3_class(err$mem_profile, "mem_profile")
  expect_identical(err$mem_profile$marks$label, "before")
  expect_null(err$mem_profile$value)
  # Nested: the innermost profile is attached, and every sampler stops.
  threads <- n_threads()
  err <- tryCatch(mem_profile(mem_profile(stop("deep"), interval = 0.002)), error = identity)
  expect_identical(err$mem_profile$interval, 0.002)
  expect_identical(n_threads(), threads)
  expect_length(profile_state$active, 0L)
})

test_that("an interrupt stops the sampler too", {
  skip_if_interrupts_ignored()
  skip_if_not_linux()
  skip_on_cran()
  res <- in_child(function() {
    library(memkit)
    invisible(gc_trace(NULL)) # the GC tracer's thread, kept for the session
    before <- length(list.files("/proc/self/task"))
    caught <- tryCatch(mem_profile({
      tools::pskill(Sys.getpid(), tools::SIGINT)
      Sys.sleep(5)
    }), interrupt = function(e) "interrupted")
    c(caught, before, length(list.files("/proc/self/task")))
  })
  expect_true(res$ok)
  expect_identical(res$value[[1L]], "interrupted")
  expect_identical(res$value[[2L]], res$value[[3L]])
})

test_that("a sampler dropped without stopping is finalized", {
  skip_if_not_linux()
  threads <- n_threads()
  local({
    s <- .Call(ffi_sampler_start, 0.01)
    expect_identical(n_threads(), threads + 1L)
  })
  gc()
  expect_identical(n_threads(), threads)
  s <- .Call(ffi_sampler_start, 0.01)
  .Call(ffi_sampler_stop, s)
  expect_error(.Call(ffi_sampler_stop, s), class = "memkit_error_state")
  expect_error(.Call(ffi_sampler_stop, 1), class = "memkit_error_type")
})

test_that("bad arguments give classed errors naming them", {
  expect_error(mem_profile(1, interval = 0), class = "memkit_error_argument")
  expect_error(mem_profile(1, interval = -1), class = "memkit_error_argument")
  expect_error(mem_profile(1, interval = "fast"), class = "memkit_error_argument")
  expect_error(mem_profile(1, interval = 1e10), class = "memkit_error_argument")
  expect_error(mem_mark(c("a", "b")), class = "memkit_error_argument")
  expect_error(mem_peak(1, heap = NA), class = "memkit_error_argument")
})

test_that("the sampler's deadlines do not overflow for huge intervals (#13)", {
  # Before: 1e10 s * 1e9 overflowed to a deadline in the past, and the thread
  # read without pause (millions of readings in a fraction of a second).
  s <- .Call(ffi_sampler_start, 1e10)
  Sys.sleep(0.2)
  r <- .Call(ffi_sampler_stop, s)
  expect_lte(length(r$rss), 3L)
})

test_that("print() and summary() are short and name the figures", {
  p <- mem_profile({
    mem_mark("work")
    x <- numeric(1e5)
  })
  expect_output(print(p), "work")
  expect_output(print(summary(p)), "Peak resident")
  expect_output(print(mem_peak(NULL)), "[0-9]")
})

test_that("plot() draws the timeline", {
  p <- mem_profile({
    mem_mark("a")
    x <- numeric(1e6)
    mem_mark("b")
  }, interval = 0.001)
  grDevices::pdf(NULL)
  on.exit(grDevices::dev.off())
  expect_identical(plot(p), p)
  expect_error(plot(p, units = "parsecs"), class = "memkit_error_argument")
})

test_that("an allocation of 500 MB peaks within 5% of 500 MB", {
  skip_if_valgrind()
  skip_on_cran()
  skip_if_not_linux()
  skip_if_not(Sys.getenv("MEMKIT_HEAVY_TESTS") == "true", "MEMKIT_HEAVY_TESTS is not true")
  pk <- mem_peak({
    x <- numeric(6.25e7)
    rm(x)
  })
  expect_lt(abs(as.numeric(pk) / 5e8 - 1), 0.05)
})

test_that("forked children can profile while the parent does", {
  skip_if_not_linux()
  skip_on_cran()
  threads <- n_threads()
  p <- mem_profile(
    r <- parallel::mclapply(1:2, function(i) class(mem_profile(sum(1:10)))[[1L]], mc.cores = 2L)
  )
  expect_identical(unlist(r), c("mem_profile", "mem_profile"))
  expect_identical(n_threads(), threads)
})

# Printed output and error messages, in one block: snapshots skip on CRAN,
# and a skip ends its block, so the checks above stay out of it.
test_that("printed output and error messages read well (snapshots)", {
  expect_snapshot(error = TRUE, cnd_class = TRUE, {
    mem_profile(1, interval = -1)
    mem_profile(1, interval = "fast")
    mem_profile(1, interval = 1e10)
    mem_mark(c("a", "b"))
    mem_peak(1, heap = NA)
  })
  p <- mem_profile({
    mem_mark("work")
    x <- numeric(1e5)
  })
  scrub <- function(x) {
    x <- gsub("[0-9.]+ (B|KiB|MiB|GiB|ms|s)\\b", "<n>", x)
    x <- gsub("[0-9]+ samples", "<k> samples", x)
    x <- gsub("\\([0-9.]+%\\)", "(<pct>)", x)
    x <- gsub("^(R heap:|Collections|Peak R heap) .*", "\\1 <gc>", x)
    gsub("^Samples +[0-9]+", "Samples <k>", x)
  }
  expect_snapshot(print(p), transform = scrub)
  expect_snapshot(print(summary(p)), transform = scrub)
  pk <- mem_peak(NULL)
  expect_snapshot(print(pk), transform = scrub)
})
