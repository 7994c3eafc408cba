# mem_profile(children = TRUE), mem_peak(children = TRUE).

test_that("children = TRUE is a flag, and unsupported off Linux", {
  expect_error(mem_profile(1, children = NA), class = "memkit_error_argument")
  expect_error(mem_peak(1, children = "yes"), class = "memkit_error_argument")
  skip_if(Sys.info()[["sysname"]] == "Linux")
  expect_error(mem_profile(1, children = TRUE), class = "memkit_error_unsupported")
})

test_that("without children the profile has none", {
  skip_on_os("windows")
  p <- mem_profile(1)
  expect_null(p$children)
  expect_null(p$processes)
})

test_that("a system() child is found and counted; the result has its columns", {
  skip_if_not_linux()
  skip_on_cran()
  p <- mem_profile(system("sleep 0.5"), interval = 0.01, children = TRUE)
  expect_named(p$children, c("time", "children", "self", "n"))
  expect_named(p$processes, c("pid", "name", "first", "last", "peak"))
  expect_true("sleep" %in% p$processes$name)
  expect_true(all(p$processes$pid > 0))
  expect_s3_class(p$children$children, "mem_bytes")
  expect_gt(max(p$children$n), 0L)
  expect_gt(as.numeric(max(p$children$self, na.rm = TRUE)), 0)
  expect_output(print(p), "Children: [0-9]+ process")
  pdf(NULL)
  on.exit(grDevices::dev.off())
  expect_identical(plot(p), p)
})

test_that("a PSOCK cluster of 2 workers holding 300 MB each: the children's peak is 600 MB within 10%", {
  skip_if_other_allocator() # resident sizes are the sanitizer's
  skip_if_not_linux()
  skip_on_cran()
  skip_if_valgrind()
  res <- in_child(function() {
    p <- memkit::mem_profile({
      cl <- parallel::makePSOCKcluster(2)
      pids <- unlist(parallel::clusterEvalQ(cl, Sys.getpid()))
      Sys.sleep(0.5) # a scan of the idle workers
      memkit::mem_mark("allocate")
      parallel::clusterEvalQ(cl, { x <- numeric(300e6 / 8); Sys.sleep(2); NULL })
      memkit::mem_mark("free")
      parallel::stopCluster(cl)
      pids
    }, children = TRUE)
    k <- p$children
    idle <- k$children[max(which(k$time <= p$marks$time[[1L]]))]
    list(pids = p$value, seen = p$processes$pid, peak = as.numeric(max(k$children)),
         idle = as.numeric(idle))
  }, timeout = 180)
  expect_true(res$ok)
  v <- res$value
  expect_true(all(v$pids %in% v$seen))
  # What the workers hold: the peak above the idle workers' own footprint.
  expect_lt(abs((v$peak - v$idle) / 6e8 - 1), 0.10)
  # The whole of it, R's own footprint in each worker included.
  expect_gt(v$peak, 6e8)
  expect_lt(v$peak, 6e8 + 2 * 1.5e8)
})

test_that("an mclapply() fork that only reads the parent's 500 MB adds well under 500 MB", {
  skip_if_other_allocator() # resident sizes are the sanitizer's
  skip_if_not_linux()
  skip_on_cran()
  skip_if_valgrind()
  res <- in_child(function() {
    v <- numeric(500e6 / 8)
    v[] <- 1
    invisible(gc())
    p <- memkit::mem_profile(parallel::mclapply(1:2, function(i) {
      s <- sum(v)
      Sys.sleep(1.5)
      s
    }, mc.cores = 2), children = TRUE)
    k <- p$children
    list(value = unlist(p$value), baseline = as.numeric(p$baseline),
         total = max(as.numeric(k$children) + as.numeric(k$self), na.rm = TRUE),
         kids = as.numeric(max(k$children)), n = max(k$n))
  }, timeout = 180)
  expect_true(res$ok)
  v <- res$value
  expect_equal(v$value, c(5e8 / 8, 5e8 / 8))
  expect_identical(v$n, 2L)
  # Each fork's PSS holds a third of the shared pages...
  expect_gt(v$kids, 2e8)
  # ...and R plus the forks hold about what R held alone.
  expect_lt(v$total - v$baseline, 1e8)
})

test_that("mem_peak(children = TRUE) gives the children's peak", {
  skip_if_not_linux()
  skip_on_cran()
  skip_if_valgrind()
  pk <- mem_peak(system("sleep 0.3"), children = TRUE)
  expect_s3_class(attr(pk, "children"), "mem_bytes")
  expect_gt(as.numeric(attr(pk, "children")), 0)
  expect_gte(as.numeric(attr(pk, "total")), as.numeric(attr(pk, "children")))
  expect_output(print(pk), "Children: peak")
})
