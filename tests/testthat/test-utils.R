test_that("errors raised in C are classed and carry errno and path", {
  f <- function() .Call(memkit:::ffi_utils_error, "file", "cannot open '/nope'", 2L, "/nope")
  err <- tryCatch(f(), error = identity)
  expect_s3_class(err, c("memkit_error_file", "memkit_error", "error", "condition"))
  expect_identical(err$errno, 2L)
  expect_identical(err$path, "/nope")
  expect_match(conditionMessage(err), "cannot open '/nope': No such file or directory", fixed = TRUE)
  expect_identical(err$call, quote(f()))
})

test_that("errors without errno have no system fields", {
  err <- tryCatch(.Call(memkit:::ffi_utils_error, "type", "bad type", NA_integer_, NA_character_),
                  error = identity)
  expect_s3_class(err, "memkit_error_type")
  expect_null(err$errno)
  expect_identical(conditionMessage(err), "bad type")
})

test_that("argument checks name the argument and the value", {
  f <- function(n) check_scalar_number(n, min = 0)
  expect_snapshot(error = TRUE, cnd_class = TRUE, {
    f(-1)
    f("a")
    f(c(1, 2))
    check_flag(NA, "verbose")
    check_string(1, "path")
  })
})

test_that("the monotonic clock moves forward", {
  a <- .Call(memkit:::ffi_utils_now)
  Sys.sleep(0.01)
  b <- .Call(memkit:::ffi_utils_now)
  expect_gt(b - a, 0.005)
})

test_that("resident memory agrees with the kernel's VmRSS", {
  skip_if_not_linux()
  vmrss <- function() {
    line <- grep("^VmRSS:", readLines("/proc/self/status"), value = TRUE)
    as.numeric(gsub("[^0-9]", "", line)) * 1024
  }
  a <- vmrss()
  r <- as.numeric(rss_now())
  b <- vmrss()
  expect_gte(r, min(a, b) - 1e6)
  expect_lte(r, max(a, b) + 1e6)
})

test_that("resident memory follows a large touched allocation", {
  skip_if_not_linux()
  # AddressSanitizer's allocator can serve it from freed memory it still
  # holds resident (its quarantine).
  skip_if(nzchar(Sys.getenv("MEMKIT_SANITIZED")), "another allocator serves malloc()")
  before <- as.numeric(rss_now())
  x <- numeric(5e7) + 1 # 400 MB, touched
  after <- as.numeric(rss_now())
  expect_gt(after - before, 0.9 * 4e8)
  rm(x)
})

test_that("element sizes, defined once, are what R stores for every vector type", {
  types <- c("logical", "integer", "double", "complex", "raw", "character", "list")
  # A long vector is a 48-byte header and its elements (memkit counts
  # neither "" nor NULL, which R never frees).
  for (type in types) {
    expect_equal(as.numeric(mem_size(vector(type, 1e4))), 48 + 1e4 * elt_size(type),
                 label = sprintf("mem_size(vector(\"%s\", 1e4))", type))
  }
  expect_identical(elt_size(c("raw", "double", "list")), c(1, 8, .Machine$sizeof.pointer))
})
