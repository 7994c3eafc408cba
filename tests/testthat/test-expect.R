# expect_mem_peak(), expect_no_leak().

test_that("expect_mem_peak() passes under the limit and fails over it, with the peak in the message", {
  skip_if_valgrind()
  skip_on_os("windows")
  expect_success(expect_mem_peak(x <- numeric(1e5), max = "100 MB"))
  pk <- expect_mem_peak(numeric(1e3), max = 1e9)
  expect_s3_class(pk, "mem_peak")
  skip_if_not_linux()
  skip_on_cran()
  expect_failure(expect_mem_peak({ y <- numeric(2.5e7); y[] <- 1 }, max = "50 MB"),
                 "peaked at [0-9.]+ MiB above its start, more than the 47.7 MiB allowed")
  expect_failure(expect_mem_peak({ y <- numeric(2.5e7); y[] <- 1 }, max = "50 MB"),
                 "mem_profile\\(\\)")
})

test_that("expect_mem_peak() checks its arguments", {
  expect_error(expect_mem_peak(1, max = "lots"), class = "memkit_error_argument")
  expect_error(expect_mem_peak(1, max = "1 GB", children = NA), class = "memkit_error_argument")
})

test_that("expect_no_leak() fails on an R-heap leak and says where to look", {
  expect_failure(expect_no_leak(fixture_heap_leak(), n = 20, warmup = 2),
                 "R heap verdict, 1[0-9.]* KiB per call")
  expect_failure(expect_no_leak(fixture_heap_leak(), n = 20, warmup = 2),
                 "mem_ls\\(\\)")
})

test_that("expect_no_leak() passes where nothing leaks", {
  skip_if_other_allocator()
  expect_success(expect_no_leak(fixture_build_drop(), n = 20, warmup = 2))
  res <- expect_no_leak(fixture_cache(), n = 20, warmup = 6)
  expect_s3_class(res, "mem_leaks")
})

test_that("expect_no_leak() fails on a native leak", {
  skip_if_other_allocator()
  skip_on_cran()
  expect_failure(expect_no_leak(fixture_native_leak(), n = 20, warmup = 2), "native verdict")
})
