# Leak fixtures for test-leaks.R (and bench/profile.R mirrors them).

# An R-heap leak: each call appends 1 KB to a list that outlives it.
fixture_heap_leak <- function() {
  store <- new.env()
  store$items <- list()
  function() {
    store$items[[length(store$items) + 1L]] <- raw(1024)
    invisible()
  }
}

# No leak: a 10 MB vector built and dropped.
fixture_build_drop <- function() {
  function() {
    x <- numeric(1.25e6)
    x[[1L]] <- 1
    invisible()
  }
}

# No leak after warm-up: a cache that fills over the first 5 calls.
fixture_cache <- function() {
  cache <- new.env()
  function() {
    if (length(cache) < 5L) assign(sprintf("k%d", length(cache)), numeric(1e4), envir = cache)
    invisible()
  }
}

# A native leak of `bytes` per call from a C routine compiled now (skips
# when there is no compiler). Returns a function of no arguments.
fixture_native_leak <- function(bytes = 10240) {
  skip_on_cran()
  dir <- file.path(tempdir(), "memkit-leak-fixture")
  so <- file.path(dir, paste0("leakfixture", .Platform$dynlib.ext))
  if (!file.exists(so)) {
    dir.create(dir, showWarnings = FALSE)
    src <- file.path(dir, "leakfixture.c")
    file.copy(test_path("leak-fixture.c"), src, overwrite = TRUE)
    out <- suppressWarnings(system2(file.path(R.home("bin"), "R"),
                                    c("CMD", "SHLIB", "-o", shQuote(so), shQuote(src)),
                                    stdout = TRUE, stderr = TRUE))
    if (!file.exists(so)) skip(paste("cannot compile the leak fixture:", paste(out, collapse = "\n")))
  }
  dll <- dyn.load(so)
  sym <- getNativeSymbolInfo("leak_native", dll)
  function() .Call(sym, bytes)
}

# Resident memory measures the C allocator's behaviour as much as the
# program's: under valgrind or AddressSanitizer another allocator (with a
# quarantine of freed blocks) serves malloc(), and the verdicts that rest on
# resident memory are that allocator's.
skip_if_other_allocator <- function() {
  skip_if(nzchar(Sys.getenv("MEMKIT_SANITIZED")) || nzchar(Sys.getenv("MEMKIT_VALGRIND")),
          "malloc() is served by the sanitizer's or valgrind's allocator")
}
