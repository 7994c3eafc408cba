# mem_heap() and mem_allocator(): the C allocator's view and knobs. Anything
# that changes the allocator's settings or builds a fragmented heap runs in
# a child process.

# glibc's allocator, not a replacement (a sanitizer's) that glibc's
# counters do not see.
glibc <- function() memkit:::heap_info()[[9L]] %in% 1:2

test_that("mem_heap() gives the allocator's figures as bytes", {
  h <- mem_heap()
  expect_s3_class(h, "mem_heap")
  for (f in c("heap", "in_use", "free", "fastbin_free", "mmapped", "releasable", "rss",
              "heap_resident", "free_held")) {
    expect_s3_class(h[[f]], "mem_bytes")
  }
  expect_true(h$source %in% c("mallinfo2", "mallinfo", "malloc_zone_statistics", "none"))
  skip_if_not(glibc(), "not the GNU C library")
  expect_gt(as.numeric(h$heap), 0)
  expect_gt(as.numeric(h$in_use), 0)
  expect_lte(as.numeric(h$in_use) + as.numeric(h$free), as.numeric(h$heap) + 1)
  expect_lte(as.numeric(h$free_held), as.numeric(h$free))
  expect_true(h$fragmentation >= 0 && h$fragmentation <= 1)
})

test_that("mem_heap() sees freed small vectors held, and the trim gives them back", {
  skip_if_not(glibc(), "not the GNU C library")
  skip_on_cran()
  res <- in_child(function() {
    library(memkit)
    h0 <- mem_heap()
    x <- lapply(1:1e6, function(i) c(i, i))
    # A few survivors spread over the heap keep it from shrinking at the top.
    keep <- x[seq(1, 1e6, by = 1000)]
    rm(x)
    invisible(gc())
    h1 <- mem_heap()
    mem_gc(trim = TRUE)
    h2 <- mem_heap()
    list(h0 = unclass(h0), h1 = unclass(h1), h2 = unclass(h2), n = length(keep))
  })
  expect_true(res$ok, info = if (!res$ok) conditionMessage(res$error))
  h0 <- res$value$h0
  h1 <- res$value$h1
  h2 <- res$value$h2
  # 1e6 vectors of two doubles take about 56 MB of R's pages; freed, most
  # of them stay in the heap.
  expect_gt(as.numeric(h1$free_held) - as.numeric(h0$free_held), 30e6)
  expect_gt(h1$fragmentation, h0$fragmentation + 0.2)
  expect_lt(h2$fragmentation, h1$fragmentation / 2)
  expect_lt(as.numeric(h2$rss), as.numeric(h1$rss) - 30e6)
})

test_that("mem_allocator() sets glibc's knobs and gives back what it set", {
  skip_if_not(glibc(), "not the GNU C library")
  res <- in_child(function() {
    library(memkit)
    first <- mem_allocator()
    old <- mem_allocator(arena_max = 2, trim_threshold = "4 MB", mmap_threshold = 262144)
    now <- mem_allocator()
    again <- mem_allocator(trim_threshold = 1048576)
    back <- do.call(mem_allocator, again)
    final <- mem_allocator()
    list(first = first, old = old, now = now, again = again, final = final)
  })
  expect_true(res$ok, info = if (!res$ok) conditionMessage(res$error))
  v <- res$value
  expect_true(all(is.na(unlist(v$first))))
  expect_identical(unclass(v$old), unclass(v$first))
  expect_equal(unlist(unclass(v$now)),
               c(arena_max = 2, trim_threshold = 4e6, mmap_threshold = 262144))
  expect_identical(unname(attr(v$now, "source")), rep("set by mem_allocator()", 3L))
  expect_equal(v$again$trim_threshold, 4e6)
  expect_equal(unlist(unclass(v$final)), unlist(unclass(v$now)))
})

test_that("mem_allocator() reads the environment variables glibc read at start-up", {
  skip_if_not(glibc(), "not the GNU C library")
  skip_if_not_installed("callr")
  v <- callr::r(function() unclass(memkit::mem_allocator()),
                env = c(callr::rcmd_safe_env(), MALLOC_ARENA_MAX = "3",
                        MALLOC_MMAP_THRESHOLD_ = "0x20000"),
                libpath = .libPaths())
  expect_equal(v$arena_max, 3)
  expect_equal(v$mmap_threshold, 131072)
  expect_true(is.na(v$trim_threshold))
  expect_match(attr(v, "source")[["arena_max"]], "MALLOC_ARENA_MAX")
})

test_that("mem_allocator() checks its arguments", {
  expect_error(mem_allocator(arena_max = 0), class = "memkit_error_argument")
  expect_error(mem_allocator(arena_max = 1.5), class = "memkit_error_argument")
  expect_error(mem_allocator(trim_threshold = -1), class = "memkit_error_argument")
  expect_error(mem_allocator(trim_threshold = "lots"), class = "memkit_error_argument")
  expect_error(mem_allocator(mmap_threshold = "3 GB"), class = "memkit_error_argument")
  skip_if(glibc(), "glibc's allocator is in use")
  expect_error(mem_allocator(trim_threshold = 1e6), class = "memkit_error_unsupported")
  expect_true(all(is.na(unlist(mem_allocator()))))
})

test_that("mem_heap() and mem_allocator() print", {
  out <- capture.output(print(mem_heap()))
  expect_match(out[[1L]], "^<mem_heap> from ")
  out <- capture.output(print(mem_allocator()))
  expect_identical(out[[1L]], "<mem_allocator>")
  expect_length(out, 5L)
  expect_true(all(c("arena_max", "trim_threshold", "mmap_threshold") %in%
                    sub("^ *(\\S+).*", "\\1", out[-(1:2)])))
})
