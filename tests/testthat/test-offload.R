# mem_offload() and mem_restore(): bindings moved to files, reloaded lazily.

local_offload_dir <- function(env = parent.frame()) withr::local_tempdir(.local_envir = env)

# The offload record of a binding, read without forcing it (NULL when the
# binding is not an offloaded one waiting to load).
record_of <- function(name, envir) memkit:::offload_records(envir, name)[[1L]]

test_that("offloaded values come back identical on first use", {
  skip_on_os("windows")
  dir <- local_offload_dir()
  e <- new.env()
  vals <- list(
    m = matrix(runif(2e4), ncol = 20, dimnames = list(NULL, paste0("c", 1:20))),
    v = runif(1e4),
    i = sample.int(100L, 1e4, TRUE),
    b = runif(5e3) > 0.5,
    l = lapply(1:50, function(i) letters[i %% 26 + 1]),
    df = data.frame(x = 1:100, y = letters[rep(1:25, 4)]),
    named = c(a = 1, b = 2),
    f = factor(c("x", "y", "x")),
    compact = 1:1e6,
    s = "text"
  )
  list2env(vals, e)
  res <- mem_offload(names(vals), e, dir = dir)
  expect_s3_class(res, "mem_offload")
  expect_setequal(res$moved$name, names(vals))
  storage <- stats::setNames(res$moved$storage, res$moved$name)
  expect_identical(unname(storage[c("m", "v", "i", "b")]), rep("file-backed", 4L))
  expect_true(all(storage[c("l", "df", "named", "f", "compact", "s")] == "gzip"))
  for (nm in names(vals)) {
    expect_false(is.null(record_of(nm, e)), info = nm)
  }
  # Still compact once back (identical() below expands it).
  expect_lt(as.numeric(mem_size(e$compact)), 1000)
  for (nm in names(vals)) {
    expect_identical(get(nm, e), vals[[nm]], info = nm)
    expect_null(record_of(nm, e))
  }
  expect_true(is_fm(e$m))
  expect_true(is_fm(e$v))
  expect_null(dim(e$v))
  # Serialized files are gone once loaded; file-backed ones stay.
  files <- basename(list.files(dir))
  expect_true(all(grepl("[.]fm$", files)))
  expect_length(files, 4L)
})

test_that("every compression reloads the same list, and compresses", {
  dir <- local_offload_dir()
  l <- lapply(1:200, function(i) rep(c("alpha", "beta", "gamma"), 100) )
  l <- c(l, list(rep(1:10 + 0, 1e4)))
  plain <- file.path(dir, "plain.rds")
  saveRDS(l, plain, compress = FALSE)
  for (comp in c("gzip", "bzip2", "xz", "none")) {
    e <- new.env()
    e$l <- l
    res <- mem_offload("l", e, dir = dir, compress = comp)
    expect_identical(res$moved$storage, comp)
    expect_equal(as.numeric(res$disk), file.size(res$moved$path))
    if (comp == "none") {
      expect_equal(as.numeric(res$disk), file.size(plain))
    } else {
      expect_lt(as.numeric(res$disk), file.size(plain) / 5)
    }
    expect_identical(e$l, l)
  }
})

test_that("mem_offload() frees what mem_retained() predicts", {
  skip_on_os("windows")
  dir <- local_offload_dir()
  res <- in_child(function(dir) {
    library(memkit)
    e <- new.env()
    e$m <- matrix(runif(2e6), ncol = 20)
    e$l <- lapply(1:2000, function(i) runif(500))
    e$keep <- 1
    pred <- mem_retained(c("m", "l"), e)
    out <- mem_offload(c("m", "l"), e, dir = dir)
    list(pred = pred, out = out)
  }, args = list(dir = dir))
  expect_true(res$ok, info = if (!res$ok) conditionMessage(res$error))
  out <- res$value$out
  expect_equal(as.numeric(out$predicted), as.numeric(res$value$pred), tolerance = 0.01)
  expect_gt(as.numeric(out$predicted), 24e6)
  # Counted from gc() like mem_rm(): the promises and records are new cells.
  expect_lt(abs(as.numeric(out$freed) - as.numeric(out$predicted)),
            0.01 * as.numeric(out$predicted))
})

test_that("a file-backed value comes back without reading the whole file", {
  skip_if_not_linux()
  skip_on_cran()
  dir <- local_offload_dir()
  res <- in_child(function(dir) {
    library(memkit)
    e <- new.env()
    e$m <- matrix(runif(2e7), ncol = 100)    # 160 MB
    first <- e$m[, 1]
    mem_offload("m", e, dir = dir)
    mem_gc(trim = TRUE)
    before <- as.numeric(memkit:::rss_now())
    s <- sum(e$m[, 1])                       # one column of 100
    after <- as.numeric(memkit:::rss_now())
    list(grew = after - before, same = identical(e$m[, 1], first), fm = is_fm(e$m))
  }, args = list(dir = dir))
  expect_true(res$ok, info = if (!res$ok) conditionMessage(res$error))
  expect_true(res$value$same)
  expect_true(res$value$fm)
  expect_lt(res$value$grew, 20e6)
})

test_that("mem_ls() lists offloaded bindings without loading them", {
  dir <- local_offload_dir()
  e <- new.env()
  e$big <- lapply(1:100, function(i) runif(100))
  e$small <- 1:3 + 0L
  res <- mem_offload("big", e, dir = dir)
  ls1 <- mem_ls(e)
  expect_identical(ls1$class[ls1$name == "big"], "<offloaded>")
  off <- attr(ls1, "offloaded")
  expect_identical(off$name, "big")
  expect_identical(off$class, "list")
  expect_equal(as.numeric(off$disk), as.numeric(res$disk))
  expect_lt(as.numeric(ls1$size[ls1$name == "big"]), 10000)
  # Still not loaded: the record says so and the file is there.
  expect_false(is.null(record_of("big", e)))
  expect_true(file.exists(res$moved$path))
  out <- capture.output(print(ls1))
  expect_true(any(grepl("# <offloaded>: on disk, not loaded", out, fixed = TRUE)))
  # Once used, it is a list again.
  n <- length(e$big)
  ls2 <- mem_ls(e)
  expect_identical(ls2$class[ls2$name == "big"], "list")
  expect_null(attr(ls2, "offloaded"))
})

test_that("mem_restore() loads offloaded bindings now", {
  skip_on_os("windows")
  dir <- local_offload_dir()
  e <- new.env()
  m <- matrix(runif(1000), 100)
  l <- list(1, "a")
  e$m <- m
  e$l <- l
  e$other <- 2
  mem_offload(c("m", "l"), e, dir = dir)
  r <- mem_restore("l", e)
  expect_identical(r$name, "l")
  expect_null(record_of("l", e))
  expect_false(is.null(record_of("m", e)))
  r <- mem_restore(envir = e, in_memory = TRUE)
  expect_identical(r$name, "m")
  expect_false(is_fm(e$m))
  expect_identical(e$m, m)
  expect_length(list.files(dir), 0L)
  expect_identical(nrow(mem_restore(envir = e)), 0L)
})

test_that("mem_offload() refuses what it can't move, and changes nothing then", {
  dir <- local_offload_dir()
  e <- new.env()
  e$x <- runif(10)
  makeActiveBinding("act", function() 1, e)
  e$locked <- 1
  lockBinding("locked", e)
  expect_error(mem_offload("nope", e, dir = dir), class = "memkit_error_argument")
  expect_error(mem_offload(1, e, dir = dir), class = "memkit_error_argument")
  expect_error(mem_offload("x", e, dir = dir, compress = "zip"), class = "memkit_error_argument")
  expect_error(mem_offload("x", envir = list(), dir = dir), class = "memkit_error_argument")
  expect_error(mem_offload(c("x", "act"), e, dir = dir), class = "memkit_error_type")
  expect_error(mem_offload(c("x", "locked"), e, dir = dir), class = "memkit_error_state")
  expect_length(list.files(dir), 0L)
  expect_null(record_of("x", e))
  expect_error(mem_restore(envir = e, in_memory = NA), class = "memkit_error_argument")
  # Offloading twice leaves the binding as it is.
  mem_offload("x", e, dir = dir)
  res <- mem_offload("x", e, dir = dir)
  expect_identical(nrow(res$moved), 0L)
  expect_length(list.files(dir), 1L)
})

test_that("a failed write leaves no file and no binding changed", {
  skip_on_os("windows")
  skip_if(identical(unname(Sys.info()[["user"]]), "root"), "root writes anywhere")
  dir <- local_offload_dir()
  ro <- file.path(dir, "ro")
  dir.create(ro)
  Sys.chmod(ro, "0555")
  withr::defer(Sys.chmod(ro, "0755"))
  e <- new.env()
  e$a <- list(1, 2)
  e$b <- runif(100)
  expect_error(mem_offload(c("a", "b"), e, dir = ro), class = "memkit_error_file")
  expect_length(list.files(ro), 0L)
  expect_null(record_of("a", e))
  expect_identical(e$a, list(1, 2))
})

test_that("a write that fails halfway removes the files written before it", {
  skip_on_os("windows")
  dir <- local_offload_dir()
  e <- new.env()
  e$a <- runif(100)
  e$b <- list(1, 2)
  real <- memkit:::offload_write
  local_mocked_bindings(offload_write = function(nm, ...) {
    if (nm == "b") memkit:::mk_abort("disk", "No space left on device", call = NULL)
    real(nm, ...)
  })
  expect_error(mem_offload(c("a", "b"), e, dir = dir), class = "memkit_error_disk")
  expect_length(list.files(dir), 0L)
  expect_null(record_of("a", e))
  expect_false(is_fm(e$a))
})

test_that("a changed or missing file is an error at first use, and the binding waits", {
  dir <- local_offload_dir()
  e <- new.env()
  e$l <- list(1, "a")
  res <- mem_offload("l", e, dir = dir)
  path <- res$moved$path
  saved <- readBin(path, "raw", file.size(path))
  writeBin(rev(saved), path)
  expect_error(e$l, class = "memkit_error_format")
  expect_false(is.null(record_of("l", e)))
  unlink(path)
  # R warns that it restarts a promise whose evaluation failed.
  suppressWarnings(expect_error(e$l, class = "memkit_error_file"))
  writeBin(saved, path)
  expect_identical(suppressWarnings(e$l), list(1, "a"))
  skip_on_os("windows")
  e$m <- matrix(1:6 + 0, 2)
  res <- mem_offload("m", e, dir = dir)
  unlink(res$moved$path)
  as_fm(matrix(0, 2, 3), res$moved$path)    # a new file at the same path
  expect_error(e$m, class = "memkit_error_format")
})

test_that("offloading a 1 GB matrix and a 300 MB list frees what mem_retained() predicts (heavy)", {
  skip_if_not_linux()
  skip_on_cran()
  skip_if_not(Sys.getenv("MEMKIT_HEAVY_TESTS") == "true", "set MEMKIT_HEAVY_TESTS=true")
  dir <- local_offload_dir()
  res <- in_child(function(dir) {
    library(memkit)
    rss <- function() as.numeric(memkit:::rss_now())
    e <- new.env()
    e$m <- matrix(runif(1.25e8), ncol = 125)                     # 1 GB
    e$l <- lapply(1:3000, function(i) rep(i + 0.5, 12500))       # 300 MB, compressible
    m_col <- e$m[, 7]
    l_17 <- e$l[[17]]
    plain <- file.path(dir, "plain.rds")
    saveRDS(e$l, plain, compress = FALSE)
    mem_gc(trim = TRUE)
    pred <- as.numeric(mem_retained(c("m", "l"), e))
    before <- rss()
    out <- mem_offload(c("m", "l"), e, dir = dir)
    mem_gc(trim = TRUE)
    after <- rss()
    s <- sum(e$m[, 7])
    touched <- rss()
    list(pred = pred, dropped = before - after, grew = touched - after,
         col = identical(e$m[, 7], m_col), fm = is_fm(e$m), l = identical(e$l[[17]], l_17),
         disk = out$moved$disk, plain = file.size(plain))
  }, args = list(dir = dir), timeout = 600)
  expect_true(res$ok, info = if (!res$ok) conditionMessage(res$error))
  v <- res$value
  message(sprintf("predicted %.1f MB, resident memory dropped %.1f MB; one column touched: +%.1f MB",
                  v$pred / 1e6, v$dropped / 1e6, v$grew / 1e6))
  expect_lt(abs(v$dropped - v$pred), 0.05 * v$pred)
  expect_true(v$col)
  expect_true(v$fm)
  expect_true(v$l)
  expect_lt(v$grew, 0.05 * 1e9)
  expect_lt(as.numeric(v$disk[[2L]]), v$plain)
})

test_that("print() of a mem_offload() result", {
  local_reproducible_output()
  dir <- local_offload_dir()
  e <- new.env()
  e$l <- as.list(1:10)
  res <- mem_offload("l", e, dir = dir, compress = "none")
  res$freed <- res$predicted    # the collector's count varies
  expect_snapshot(print(res))
})
