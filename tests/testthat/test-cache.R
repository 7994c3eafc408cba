# mem_cache(): the cache interface memoise uses, a budget in memkit's sizes,
# eviction and spill.

test_that("mem_cache() has the cache interface", {
  cache <- mem_cache("1 MB")
  expect_s3_class(cache, "mem_cache")
  expect_true(all(c("get", "set", "exists", "remove", "reset", "keys", "size", "info") %in%
                    names(cache)))
  expect_s3_class(cache$get("a"), "key_missing")
  expect_identical(cache$get("a", missing = NA), NA)
  expect_false(cache$exists("a"))
  cache$set("a", 1:3)
  cache$set("b", letters)
  expect_identical(cache$get("a"), 1:3)
  # `missing` is not evaluated when the key is there.
  expect_identical(cache$get("b", missing = stop("evaluated")), letters)
  expect_true(cache$exists("b"))
  expect_identical(cache$size(), 2L)
  expect_setequal(cache$keys(), c("a", "b"))
  expect_equal(as.numeric(cache$bytes()), as.numeric(mem_size(1:3) + mem_size(letters)))
  expect_true(cache$remove("a"))
  expect_false(cache$remove("a"))
  expect_identical(cache$keys(), "b")
  cache$set("b", 1)     # replaced: counted once
  expect_equal(as.numeric(cache$bytes()), as.numeric(mem_size(1)))
  cache$reset()
  expect_identical(cache$size(), 0L)
  expect_equal(as.numeric(cache$bytes()), 0)
  i <- cache$info()
  expect_equal(as.numeric(i$max_size), 1e6)
  expect_identical(i$hits, 2)
  expect_identical(i$misses, 2)
})

test_that("mem_cache() checks its arguments and keys", {
  expect_error(mem_cache(-1), class = "memkit_error_argument")
  expect_error(mem_cache("a lot"), class = "memkit_error_argument")
  expect_error(mem_cache(evict = "random"), class = "memkit_error_argument")
  expect_error(mem_cache(compress = "zstd"), class = "memkit_error_argument")
  expect_error(mem_cache(spill = 1), class = "memkit_error_argument")
  cache <- mem_cache()
  expect_error(cache$set("a b", 1), class = "memkit_error_argument")
  expect_error(cache$get(NA_character_), class = "memkit_error_argument")
  expect_error(cache$exists(1), class = "memkit_error_argument")
  expect_error(cache$set(strrep("a", 201), 1), class = "memkit_error_argument")
})

test_that("memoise works with mem_cache()", {
  skip_if_not_installed("memoise")
  calls <- 0
  f <- function(x, y = 2) {
    calls <<- calls + 1
    x^y
  }
  cache <- mem_cache("1 MB")
  mf <- memoise::memoise(f, cache = cache)
  expect_identical(mf(3), 9)
  expect_identical(mf(3), 9)
  expect_identical(mf(3, 3), 27)
  expect_identical(calls, 2)
  expect_true(memoise::has_cache(mf)(3))
  expect_false(memoise::has_cache(mf)(4))
  expect_true(memoise::drop_cache(mf)(3))
  expect_identical(mf(3), 9)
  expect_identical(calls, 3)
  expect_identical(cache$info()$hits, 1)
  expect_true(memoise::forget(mf))
  expect_identical(cache$size(), 0L)
  # Invisible results stay invisible.
  g <- memoise::memoise(function() invisible(1), cache = mem_cache())
  expect_invisible(g())
  expect_invisible(g())
})

test_that("a 100 MB budget holds under 30 results of 10 MB, least recently used go first", {
  skip_if_not_installed("memoise")
  skip_on_cran()
  made <- character()
  f <- function(i) {
    made <<- c(made, as.character(i))
    rep(i + 0.5, 1.25e6)    # 10 MB, distinct for each i
  }
  cache <- mem_cache("100 MB")
  mf <- memoise::memoise(f, cache = cache)
  seen <- numeric()
  for (i in 1:30) {
    mf(i)
    if (i > 3) mf(1L)   # 1 stays recently used
    seen <- c(seen, as.numeric(cache$bytes()))
  }
  expect_true(all(seen <= 100e6))
  expect_gt(max(seen), 80e6)
  expect_identical(made, as.character(1:30))
  expect_gt(cache$info()$evictions, 0)
  # 1 is still there; the others kept are the most recent ones.
  n_kept <- cache$size()
  mf(1L)
  expect_identical(length(made), 30L)
  for (i in seq(30L, 30L - n_kept + 2L)) mf(i)
  expect_identical(length(made), 30L)
  mf(2L)   # long evicted: computed again
  expect_identical(length(made), 31L)
})

test_that("FIFO evicts the oldest, whatever was used since", {
  cache <- mem_cache(3.5 * 8048, evict = "fifo")   # room for 3 vectors of 1000 doubles
  for (k in c("a", "b", "c")) cache$set(k, runif(1000))
  cache$get("a")
  cache$set("d", runif(1000))
  expect_setequal(cache$keys(), c("b", "c", "d"))
  lru <- mem_cache(3.5 * 8048)
  for (k in c("a", "b", "c")) lru$set(k, runif(1000))
  lru$get("a")
  lru$set("d", runif(1000))
  expect_setequal(lru$keys(), c("a", "c", "d"))
})

test_that("with spill, every evicted result comes back identical", {
  skip_if_not_installed("memoise")
  skip_on_cran()
  dir <- withr::local_tempdir()
  calls <- 0
  f <- function(i) {
    calls <<- calls + 1
    rep(i + 0.5, 1.25e6)
  }
  cache <- mem_cache("100 MB", spill = dir)
  mf <- memoise::memoise(f, cache = cache)
  for (i in 1:30) {
    mf(i)
    expect_lte(as.numeric(cache$bytes()), 100e6)
  }
  i <- cache$info()
  expect_gt(i$spilled, 15)
  expect_identical(cache$size(), 30L)
  # Compressed: these repeat one value, so the files are far smaller.
  expect_lt(as.numeric(i$spill_bytes), i$spilled * 1e6)
  for (k in 1:30) {
    expect_identical(mf(k), rep(k + 0.5, 1.25e6))
    expect_lte(as.numeric(cache$bytes()), 100e6)
  }
  expect_identical(calls, 30)
  expect_gt(cache$info()$reloads, 15)
  expect_identical(cache$info()$misses, 30)   # the first call of each
})

test_that("spilled files are checked, and go with the cache", {
  dir <- withr::local_tempdir()
  cache <- mem_cache(10000, spill = dir)
  cache$set("a", runif(1000))
  cache$set("b", runif(1000))    # evicts a to disk
  files <- list.files(dir, recursive = TRUE, full.names = TRUE)
  expect_length(files, 1L)
  expect_true(cache$exists("a"))
  writeBin(as.raw(1:10), files[[1L]])
  expect_warning(res <- cache$get("a"), class = "memkit_warning_format")
  expect_s3_class(res, "key_missing")
  expect_false(cache$exists("a"))
  # Too large for the budget: straight to disk.
  big <- runif(5000)
  expect_false(cache$set("big", big))
  expect_identical(cache$get("big"), big)
  rm(cache)
  gc()
  expect_length(list.files(dir, recursive = TRUE, include.dirs = TRUE), 0L)
})

test_that("a value sharing memory counts as mem_size() says, not as object.size()", {
  x <- runif(50e6 / 8)                       # 50 MB, also bound in the session
  value <- list(a = x, b = x, n = 1:1e7)     # x twice; a compact sequence
  cache <- mem_cache("1 GB")
  cache$set("k", value)
  expect_equal(as.numeric(cache$bytes()), as.numeric(mem_size(value)))
  expect_lt(as.numeric(cache$bytes()), 51e6)
  skip_if_not_installed("cachem")
  cm <- cachem::cache_mem(max_size = 1e9)
  cm$set("k", value)
  counted <- environment(cm$set)$total_size_
  skip_if(is.null(counted), "this cachem keeps its count elsewhere")
  expect_equal(counted, as.numeric(utils::object.size(value)))
  # cachem counts x twice and the sequence expanded: 140 MB.
  expect_gt(counted, 2.5 * as.numeric(cache$bytes()))
})

test_that("print() and summary() of a cache", {
  local_reproducible_output()
  dir <- withr::local_tempdir()
  cache <- mem_cache(20000, spill = dir)
  cache$set("a", 1:10 + 0L)
  cache$set("b", rep(1, 1000))
  cache$set("c", rep(2, 1500))
  cache$get("a")
  cache$get("zz")
  s <- summary(cache)
  expect_identical(s$hits, 1)
  expect_identical(s$misses, 1)
  # c evicts a to disk; bringing a back evicts b.
  expect_identical(s$spilled, 2)
  expect_identical(s$reloads, 1)
  out <- capture.output(print(s))
  out <- sub("spill: .* \\(", "spill: <dir> (", out)
  expect_true(any(grepl("[0-9]+ B written", out)))
  # The bytes a spilled file takes depend on R's serialization format and
  # compression: the same count of bytes is not promised across R versions.
  written <- function(x) gsub("[0-9]+ B written", "<n> B written", x)
  expect_snapshot(print(cache), transform = written)
  expect_snapshot(cat(out, sep = "\n"), transform = written)
})
