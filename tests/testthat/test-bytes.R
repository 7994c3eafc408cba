test_that("mem_bytes() keeps bytes as doubles with a class", {
  x <- mem_bytes(c(a = 1, b = 2048))
  expect_s3_class(x, "mem_bytes")
  expect_type(x, "double")
  expect_identical(names(x), c("a", "b"))
  expect_identical(as.numeric(x), c(1, 2048))
  expect_true(is_mem_bytes(x))
  expect_false(is_mem_bytes(1))
  expect_identical(mem_bytes(x), x)
  expect_identical(as.numeric(mem_bytes(5L)), 5)
})

test_that("sizes with units are read from strings", {
  expect_identical(as.numeric(mem_bytes("512")), 512)
  expect_identical(as.numeric(mem_bytes("64 MB")), 64e6)
  expect_identical(as.numeric(mem_bytes("64 MiB")), 64 * 2^20)
  expect_identical(as.numeric(mem_bytes("1.5GiB")), 1.5 * 2^30)
  expect_identical(as.numeric(mem_bytes("2G")), 2 * 2^30)
  expect_identical(as.numeric(mem_bytes("3 kB")), 3000)
  expect_identical(as.numeric(mem_bytes("3 KiB")), 3072)
  expect_identical(as.numeric(mem_bytes("1e3 B")), 1000)
  expect_identical(as.numeric(mem_bytes(NA)), NA_real_)
  expect_error(mem_bytes("lots"), class = "memkit_error_argument")
  expect_error(mem_bytes("3 parsecs"), class = "memkit_error_argument")
  expect_error(mem_bytes(list(1)), class = "memkit_error_type")
})

test_that("format() picks one unit per element", {
  x <- mem_bytes(c(0, 1, 56, 1023, 1024, 1536, 2^20, 1.5 * 2^30, 2^40, NA, -2048))
  expect_identical(
    format(x),
    c("0 B", "1 B", "56 B", "1023 B", "1 KiB", "1.5 KiB", "1 MiB", "1.5 GiB",
      "1 TiB", "NA", "-2 KiB")
  )
  expect_identical(format(mem_bytes(1e6), standard = "SI"), "1 MB")
  expect_identical(format(mem_bytes(1e6), units = "KiB"), "977 KiB")
  expect_identical(format(mem_bytes(2^20 - 1)), "1 MiB")
  expect_error(format(x, units = "furlongs"), class = "memkit_error_argument")
})

test_that("the units option switches to SI", {
  withr::local_options(memkit.units = "SI")
  expect_identical(format(mem_bytes(c(999, 1000, 1.5e9))), c("999 B", "1 kB", "1.5 GB"))
})

test_that("printing is stable", {
  expect_snapshot({
    mem_bytes(c(0, 56, 1536, 8e6, 3 * 2^30, NA))
    mem_bytes(c(rss = 1.2e9, heap = 3.4e8))
    mem_bytes()
    print(mem_bytes(123456789), standard = "SI")
    data.frame(what = c("a", "b"), size = mem_bytes(c(100, 2e6)))
  })
})

test_that("arithmetic behaves like numbers and keeps the class where it makes sense", {
  a <- mem_bytes(1024)
  b <- mem_bytes(512)
  expect_s3_class(a + b, "mem_bytes")
  expect_s3_class(a - b, "mem_bytes")
  expect_s3_class(a * 2, "mem_bytes")
  expect_s3_class(2 * a, "mem_bytes")
  expect_s3_class(a / 2, "mem_bytes")
  expect_s3_class(-a, "mem_bytes")
  expect_false(is_mem_bytes(a / b))
  expect_identical(a / b, 2)
  expect_false(is_mem_bytes(a * b))
  expect_identical(as.numeric(a + 1), 1025)
  expect_true(a > b)
  expect_true(a == 1024)
  expect_true(a < "1 MB")
  expect_true("2 KiB" > a)
  expect_identical(mem_bytes(c(1, 5, 3)) >= 3, c(FALSE, TRUE, TRUE))
})

test_that("summaries and math keep bytes", {
  x <- mem_bytes(c(1, 5, 3, NA))
  expect_identical(sum(x, na.rm = TRUE), mem_bytes(9))
  expect_identical(max(x, na.rm = TRUE), mem_bytes(5))
  expect_identical(range(x, na.rm = TRUE), mem_bytes(c(1, 5)))
  expect_identical(sum(mem_bytes(1), 2), mem_bytes(3))
  expect_identical(mean(x[1:3]), mem_bytes(3))
  expect_identical(cumsum(x[1:3]), mem_bytes(c(1, 6, 9)))
  expect_identical(round(mem_bytes(1.6)), mem_bytes(2))
  expect_false(is_mem_bytes(log(x)))
  expect_identical(any(x > 4, na.rm = TRUE), TRUE)
})

test_that("subsetting, combining and sorting keep bytes", {
  x <- mem_bytes(c(a = 3, b = 1, c = 2))
  expect_identical(x[2:3], mem_bytes(c(b = 1, c = 2)))
  expect_identical(x[["a"]], mem_bytes(3))
  expect_identical(c(x[1], mem_bytes(10)), mem_bytes(c(a = 3, 10)))
  expect_identical(sort(x), mem_bytes(c(b = 1, c = 2, a = 3)))
  expect_identical(rev(x), mem_bytes(c(c = 2, b = 1, a = 3)))
  expect_identical(rep(mem_bytes(1), 2), mem_bytes(c(1, 1)))
  x[2] <- "1 KiB"
  expect_identical(as.numeric(x[2]), 1024)
  expect_identical(order(x), c(3L, 1L, 2L))
})
