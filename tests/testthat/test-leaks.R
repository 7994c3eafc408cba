quietly <- function(code) withr::with_options(list(memkit.progress = FALSE), code)

test_that("a list growing by 1 KB a call is an R-heap leak of about 1 KB a call", {
  res <- quietly(mem_leaks(fixture_heap_leak(), n = 30, warmup = 5))
  expect_s3_class(res, "mem_leaks")
  expect_identical(res$verdict, "R heap")
  # 1024 bytes of data, a vector header and one more list slot.
  expect_gte(as.numeric(res$bytes_per_call), 1024)
  expect_lt(as.numeric(res$bytes_per_call), 1300)
  expect_gt(res$confidence, 0.9)
})

test_that("a C routine that never frees is a native leak, with the R heap flat", {
  skip_if_other_allocator()
  f <- fixture_native_leak(10240)
  res <- quietly(mem_leaks(f, n = 30, warmup = 5))
  expect_identical(res$verdict, "native")
  expect_gt(as.numeric(res$bytes_per_call), 0.6 * 10240)
  expect_lt(as.numeric(res$bytes_per_call), 1.5 * 10240)
  expect_false(res$fits$grows[res$fits$series == "heap"])
  expect_lt(abs(as.numeric(res$fits$slope[res$fits$series == "heap"])), 16)
})

test_that("building and dropping 10 MB is not a leak", {
  skip_if_other_allocator()
  res <- quietly(mem_leaks(fixture_build_drop(), n = 30, warmup = 5))
  expect_identical(res$verdict, "none")
  expect_false(any(res$fits$grows))
})

test_that("a cache that fills during the warm-up is not a leak", {
  res <- quietly(mem_leaks(fixture_cache(), n = 30, warmup = 10))
  expect_identical(res$verdict, "none")
})

test_that("the runs are recorded, warm-up included", {
  res <- quietly(mem_leaks(function() NULL, n = 6, warmup = 2))
  runs <- as.data.frame(res)
  expect_identical(nrow(runs), 8L)
  expect_identical(runs$warmup, rep(c(TRUE, FALSE), c(2L, 6L)))
  expect_s3_class(runs$heap, "mem_bytes")
  expect_s3_class(runs$rss, "mem_bytes")
  expect_identical(summary(res)$series, c("heap", "rss"))
})

test_that("summary() is a summary_mem_leaks data frame that prints as a table", {
  res <- quietly(mem_leaks(function() NULL, n = 6, warmup = 1))
  s <- summary(res)
  expect_s3_class(s, c("summary_mem_leaks", "data.frame"), exact = TRUE)
  out <- capture.output(print(s))
  expect_length(out, 3L)
  expect_match(out[[1L]], "per call")
  expect_match(out[[2L]], "^ R heap ")
  expect_length(unique(text_width(out)), 1L)
  capture.output(value <- print(s))
  expect_identical(value, s)
})

test_that("the Theil-Sen fit finds the slope despite an outlier", {
  y <- c(seq(0, by = 100, length.out = 20))
  y[[7L]] <- 1e6
  fit <- leak_fit(y, threshold = 16)
  expect_equal(fit$slope, 100)
  expect_true(fit$grows)
  flat <- leak_fit(rep(5, 20), threshold = 16)
  expect_identical(flat$p_value, 1)
  expect_false(flat$grows)
})

test_that("the trend test gives the Mann-Kendall p-values, with and without ties", {
  # Mann-Kendall from its definition: S over all pairs, the variance
  # corrected for ties, a continuity correction, one-sided.
  mann_kendall <- function(y) {
    n <- length(y)
    s <- 0
    for (i in seq_len(n - 1L)) for (j in (i + 1L):n) s <- s + sign(y[[j]] - y[[i]])
    t <- as.numeric(table(y))
    v <- (n * (n - 1) * (2 * n + 5) - sum(t * (t - 1) * (2 * t + 5))) / 18
    if (v > 0) stats::pnorm((s - sign(s)) / sqrt(v), lower.tail = FALSE) else 1
  }
  set.seed(19)
  series <- list(
    runif(12), runif(40) + seq_len(40) / 40, rev(runif(25)),   # no ties
    round(runif(30) * 3 + seq_len(30) / 10),                   # many ties
    cumsum(sample(c(0, 0, 56), 50, TRUE)),                      # the R heap's steps
    1e8 + 4096 * sample(0:2, 60, TRUE),                         # resident pages
    c(rep(5, 9), 6)
  )
  for (y in series) {
    expect_equal(leak_fit(y, threshold = 16)$p_value, mann_kendall(y), tolerance = 1e-12)
  }
  expect_true(any(vapply(series, anyDuplicated, 1L) > 0L))
  expect_true(any(vapply(series, anyDuplicated, 1L) == 0L))
  expect_identical(leak_fit(c(1, 2, NA, 4, 5), threshold = 16)$p_value, NA_real_)
})

test_that("bad arguments give classed errors naming them", {
  expect_error(mem_leaks("f"), class = "memkit_error_type")
  expect_error(mem_leaks(identity, n = 2), class = "memkit_error_argument")
  expect_error(mem_leaks(identity, warmup = -1), class = "memkit_error_argument")
  expect_error(mem_leaks(identity, n = "a"), class = "memkit_error_argument")
})

test_that("mem_leaks(n = Inf) is an argument error before any collection (#13)", {
  skip_if_unsupported("gc_trace")
  tr <- gc_trace(err <- tryCatch(mem_leaks(function() NULL, n = Inf), error = identity))
  expect_s3_class(err, "memkit_error_argument")
  expect_match(conditionMessage(err), "`n`")
  expect_identical(sum(as.data.frame(tr)$explicit), 0L)
  expect_error(mem_leaks(function() NULL, warmup = Inf), class = "memkit_error_argument")
})

test_that("print() states the verdict, the fits and where to look", {
  res <- quietly(mem_leaks(fixture_heap_leak(), n = 10, warmup = 2))
  expect_output(print(res), "leak")
})

test_that("plot() draws both series", {
  res <- quietly(mem_leaks(function() NULL, n = 6, warmup = 1))
  grDevices::pdf(NULL)
  on.exit(grDevices::dev.off())
  expect_identical(plot(res), res)
})

test_that("a progress bar shows the runs unless turned off", {
  withr::local_options(memkit.progress = TRUE, cli.progress_show_after = 0,
                       cli.dynamic = FALSE)
  msgs <- capture_messages(mem_leaks(function() NULL, n = 5, warmup = 0))
  expect_match(paste(msgs, collapse = ""), "Checking for leaks")
  withr::local_options(memkit.progress = FALSE)
  expect_silent(mem_leaks(function() NULL, n = 5, warmup = 0))
})

test_that("every fixture gets the right verdict 20 times in a row", {
  skip_on_cran()
  skip_if_not(Sys.getenv("MEMKIT_HEAVY_TESTS") == "true", "MEMKIT_HEAVY_TESTS is not true")
  skip_if_other_allocator()
  native <- fixture_native_leak(10240)
  verdicts <- function(make, want) {
    got <- vapply(1:20, function(i) quietly(mem_leaks(make(), n = 100, warmup = 10))$verdict, "")
    expect_identical(got, rep(want, 20L))
  }
  verdicts(fixture_heap_leak, "R heap")
  verdicts(function() native, "native")
  verdicts(fixture_build_drop, "none")
  verdicts(fixture_cache, "none")
})

# Printed output and error messages, in one block: snapshots skip on CRAN,
# and a skip ends its block, so the checks above stay out of it.
test_that("printed output and error messages read well (snapshots)", {
  expect_snapshot(error = TRUE, cnd_class = TRUE, {
    mem_leaks(1)
    mem_leaks(function() NULL, n = 0)
    mem_leaks(function() NULL, warmup = -1)
    mem_leaks(function() NULL, n = "a")
  })
  res <- quietly(mem_leaks(fixture_heap_leak(), n = 10, warmup = 2))
  expect_snapshot(print(res), transform = function(x) {
    x <- gsub("[0-9.]+ (B|KiB|MiB)", "<size>", x)
    x <- gsub("Confidence: [0-9]+%", "Confidence: <pct>", x)
    gsub("p = .*$", "p = <p>", x)
  })
})
