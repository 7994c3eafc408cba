# File-backed matrices (R/fm.R, src/fm.c, src/fm_altrep.c).

withr::local_options(memkit.progress = FALSE, .local_envir = testthat::teardown_env())

fm_path <- function(env = parent.frame()) withr::local_tempfile(fileext = ".fm", .local_envir = env)

# Anonymous resident memory of this process, in bytes (Linux only).
rss_anon <- function() {
  line <- grep("^RssAnon:", readLines("/proc/self/status"), value = TRUE)
  as.numeric(sub("^RssAnon:\\s*([0-9]+) kB.*$", "\\1", line)) * 1024
}

# The matrix's bytes as they are in the file right now.
file_doubles <- function(path, n, offset = 4096) {
  con <- file(path, "rb")
  on.exit(close(con))
  readBin(con, "raw", offset)
  readBin(con, "double", n)
}

scrub_path <- function(x) gsub("/[^' ]*", "<path>", x)

test_that("fm_create() gives an ordinary matrix of each type, zero-filled", {
  for (type in c("double", "integer", "logical", "raw")) {
    X <- fm_create(fm_path(), 3, 2, type = type)
    expect_true(is.matrix(X))
    expect_true(is_fm(X))
    expect_identical(typeof(X), type)
    expect_identical(dim(X), c(3L, 2L))
    expect_identical(X[, ], matrix(vector(type, 6), 3, 2))
  }
  expect_false(is_fm(matrix(0, 2, 2)))
})

test_that("fm_create() stores dimnames and an init value in the file", {
  path <- fm_path()
  dn <- list(c("a", "b"), c("x", "y", "z"))
  X <- fm_create(path, 2, 3, init = NA, dimnames = dn)
  expect_identical(dimnames(X), dn)
  expect_true(all(is.na(X[, ])))
  Y <- fm_open(path)
  expect_identical(dimnames(Y), dn)
  expect_identical(Y[, ], X[, ])
})

test_that("base R functions give the results of the in-memory matrix", {
  set.seed(1)
  M <- matrix(rnorm(2000), 200, 10)
  M[3, 4] <- NA
  X <- as_fm(M, fm_path())
  for (A in list(X, fm_open(fm_info(X)$path))) {
    expect_identical(colSums(A), colSums(M))
    expect_identical(rowSums(A), rowSums(M))
    expect_identical(colSums(A, na.rm = TRUE), colSums(M, na.rm = TRUE))
    expect_identical(sum(A, na.rm = TRUE), sum(M, na.rm = TRUE))
    expect_identical(mean(A), mean(M))
    expect_identical(range(A, na.rm = TRUE), range(M, na.rm = TRUE))
    v <- seq_len(10) / 3
    expect_identical(A %*% v, M %*% v)
    expect_identical(crossprod(A), crossprod(M))
    expect_identical(A[, 7], M[, 7])
    expect_identical(A[5, ], M[5, ])
    expect_identical(A[c(2, 9, 40), 3:5], M[c(2, 9, 40), 3:5])
    expect_identical(A[cbind(c(1, 200, 7), c(10, 1, 4))], M[cbind(c(1, 200, 7), c(10, 1, 4))])
    expect_identical(A[c(-1, -2), -10], M[c(-1, -2), -10])
    expect_identical(A[c(5, NA, 2001)], M[c(5, NA, 2001)])
    expect_identical(A[A[, 1] > 0, 1], M[M[, 1] > 0, 1])
    expect_identical(A[, ], M)
  }
  I <- matrix(sample(-50:50, 60, replace = TRUE), 6)
  XI <- as_fm(I, fm_path())
  expect_identical(typeof(XI), "integer")
  expect_identical(colSums(XI), colSums(I))
  expect_identical(XI %*% (1:10), I %*% (1:10))
  expect_identical(range(XI), range(I))
})

test_that("colSums, sum and %*% do not copy the matrix into memory", {
  skip_if_not_linux()
  skip_on_covr()
  # 40 MB; 5% of it is 2 MB.
  path <- fm_path()
  X <- fm_create(path, 1e5, 50)
  fm_write(X, as.double(seq_len(1e5)), j = 1:50)
  for (A in list(X, fm_open(path))) {
    size <- 1e5 * 50 * 8
    v <- rep(1, 50)
    gc()
    before <- rss_anon()
    s <- colSums(A)
    t <- sum(A)
    p <- A %*% v
    grown <- rss_anon() - before
    expect_lt(grown, 0.05 * size)
    expect_identical(s, rep(sum(as.double(seq_len(1e5))), 50))
    expect_identical(t, sum(s))
    expect_identical(p[, 1], as.double(seq_len(1e5)) * 50)
  }
})

test_that("mode r: a change R makes is a private copy and never reaches the file", {
  path <- fm_path()
  X <- as_fm(matrix(as.double(1:12), 3), path)
  fm_flush(X)
  before <- file_doubles(path, 12)
  R <- fm_open(path)
  R[2, 2] <- 100
  expect_identical(R[2, 2], 100)
  expect_identical(file_doubles(path, 12), before)
  expect_identical(fm_info(R)$mode, "copy")
  # The copy is saved by value: reading it back gives the changed matrix.
  expect_identical(unserialize(serialize(R, NULL))[, ], R[, ])
  # dim<- and other copies of a read-only matrix do not touch the file either.
  R2 <- fm_open(path)
  dim(R2) <- c(4, 3)
  expect_identical(as.vector(R2), as.double(1:12))
  expect_error(fm_write(fm_open(path), 1, 1, 1), class = "memkit_error_state")
})

test_that("mode r: a private copy costs only the pages written", {
  skip_if_not_linux()
  path <- fm_path()
  fm_create(path, 1e5, 50)
  R <- fm_open(path)
  gc()
  before <- rss_anon()
  R[1, 1] <- 1
  expect_lt(rss_anon() - before, 4e6)
  expect_identical(R[1, 1], 1)
})

test_that("mode rw: in-place assignment and fm_write() write the file", {
  path <- fm_path()
  X <- fm_create(path, 3, 4)
  X[2, 3] <- 5
  expect_identical(file_doubles(path, 12)[8], 5)
  f <- function(M) fm_write(M, c(7, 8), i = c(1, 3), j = 4)
  f(X)
  expect_identical(file_doubles(path, 12)[c(10, 12)], c(7, 8))
  expect_identical(X[c(1, 3), 4], c(7, 8))
  fm_write(X, 1:3, j = 1)
  expect_identical(X[, 1], c(1, 2, 3))
  fm_write(X, 9, i = c(TRUE, FALSE, FALSE))
  expect_identical(X[1, ], rep(9, 4))
})

test_that("mode rw: a copy never changes the file and never sees later writes", {
  path <- fm_path()
  X <- fm_create(path, 3, 4)
  Y <- X
  Y[1, 1] <- -1
  expect_identical(X[1, 1], 0)
  expect_identical(file_doubles(path, 12)[1], 0)
  fm_write(X, 42, 2, 2)
  expect_identical(X[2, 2], 42)
  expect_identical(Y[2, 2], 0)
  expect_identical(Y[1, 1], -1)
})

test_that("mode rw: a large copy warns that the file is not written", {
  X <- fm_create(fm_path(), 100, 10)
  Y <- X
  withr::local_options(memkit.copy_warn = 4000)
  expect_warning(Y[1, 1] <- 1, "fm_write", class = "memkit_warning_memory")
  withr::local_options(memkit.copy_warn = 1e6)
  Z <- X
  expect_no_warning(Z[1, 1] <- 1)
  expect_identical(X[1, 1], 0)
})

test_that("fm_flush() puts every write on disk for a new process", {
  path <- fm_path()
  X <- fm_create(path, 10, 3)
  fm_write(X, as.double(1:30))
  fm_flush(X)
  res <- in_child(function(path) {
    library(memkit)
    fm_open(path)[, ]
  }, list(path = path))
  expect_true(res$ok)
  expect_identical(res$value, X[, ])
})

test_that("serialize() stores a reference under 1 KB and reopens the file", {
  path <- fm_path()
  X <- fm_create(path, 1000, 100)
  fm_write(X, as.double(1:1000), j = 1)
  s <- serialize(X, NULL)
  R <- fm_open(path)
  expect_lt(length(s), 1024)
  expect_lt(length(serialize(R, NULL)), 1024)
  X2 <- unserialize(s)
  expect_true(is_fm(X2))
  expect_identical(X2[, ], X[, ])
  expect_identical(fm_info(X2)$mode, "rw")
  rds <- withr::local_tempfile(fileext = ".rds")
  saveRDS(R, rds)
  expect_lt(file.size(rds), 1024)
  R2 <- readRDS(rds)
  expect_identical(fm_info(R2)$mode, "r")
  expect_identical(R2[, ], X[, ])
})

test_that("a saved matrix whose file is missing or changed gives a classed error", {
  path <- fm_path()
  X <- fm_create(path, 4, 2)
  s <- serialize(X, NULL)
  rm(X)
  gc()
  # Same dims and type, but a new file: the checksum tells them apart.
  fm_create(path, 4, 2, overwrite = TRUE)
  expect_error(unserialize(s), class = "memkit_error_format")
  unlink(path)
  err <- expect_error(unserialize(s), class = "memkit_error_file")
  expect_identical(err$errno, 2L) # ENOENT
})

test_that("a PSOCK cluster of 2 gets only the reference", {
  skip_on_cran()
  path <- fm_path()
  M <- matrix(runif(4000), 200, 20)
  X <- as_fm(M, path)
  cl <- parallel::makePSOCKcluster(2)
  on.exit(parallel::stopCluster(cl), add = TRUE)
  # Functions sent to workers must not carry this test's environment (it holds X).
  set_lib <- function(p) invisible(.libPaths(p))
  environment(set_lib) <- globalenv()
  parallel::clusterCall(cl, set_lib, .libPaths())
  cols <- split(seq_len(20), rep(1:4, each = 5))
  worker <- utils::removeSource(function(j, A) colSums(A[, j, drop = FALSE]))
  environment(worker) <- globalenv()
  got <- unlist(parallel::parLapply(cl, cols, worker, A = X), use.names = FALSE)
  expect_identical(got, colSums(M))
  # What parLapply sends for each task: the function, the indices and the matrix.
  payload <- vapply(cols, function(j) length(serialize(list(worker, j, X), NULL)), numeric(1))
  expect_true(all(payload < 1024))
  expect_identical(fm_apply(X, colSums, block_bytes = 200 * 8 * 3, cl = cl), colSums(M))
})

test_that("fm_apply() gives the results of base R by blocks of columns or rows", {
  M <- matrix(as.double(1:600), 30, 20, dimnames = list(NULL, paste0("c", 1:20)))
  X <- as_fm(M, fm_path())
  expect_identical(fm_apply(X, colSums, block_bytes = 30 * 8 * 3), colSums(M))
  expect_identical(fm_apply(X, rowSums, margin = 1, block_bytes = 20 * 8 * 4), rowSums(M))
  expect_identical(fm_apply(X, function(b) b * 2, block_bytes = 1000), M * 2)
  expect_identical(fm_apply(X, function(b, k) b + k, k = 1, margin = 1, block_bytes = 1000), M + 1)
  expect_identical(fm_apply(M, colSums, block_bytes = 1000), colSums(M))
  expect_length(fm_apply(X, function(b) list(ncol(b)), block_bytes = 30 * 8 * 10), 2)
})

test_that("fm_read() is X[i, j, drop = FALSE]", {
  M <- matrix(1:24, 4, dimnames = list(letters[1:4], LETTERS[1:6]))
  X <- as_fm(M, fm_path())
  expect_identical(fm_read(X), M)
  expect_identical(fm_read(X, j = 2:3), M[, 2:3])
  expect_identical(fm_read(X, i = c(4, 1), j = "F"), M[c(4, 1), "F", drop = FALSE])
})

test_that("as_fm() takes matrices, data frames and vectors", {
  df <- data.frame(a = 1:3, b = c(0.5, NA, 2))
  X <- as_fm(df, fm_path())
  expect_identical(X[, ], as.matrix(df))
  expect_identical(as_fm(1:5, fm_path())[, 1], 1:5)
  L <- as_fm(matrix(c(TRUE, NA, FALSE, TRUE), 2), fm_path())
  expect_identical(typeof(L), "logical")
  expect_identical(L[, ], matrix(c(TRUE, NA, FALSE, TRUE), 2))
  B <- as_fm(as.raw(0:255), fm_path())
  expect_identical(B[, 1], as.raw(0:255))
  # In several blocks.
  M <- matrix(as.double(1:1000), 100)
  expect_identical(as_fm(M, fm_path(), block_bytes = 800)[, ], M)
  expect_identical(as_fm(M, fm_path(), type = "integer")[, ], matrix(1:1000, 100))
  expect_error(as_fm(list(1), fm_path()), class = "memkit_error_type")
  expect_error(as_fm(data.frame(a = "x"), fm_path()), class = "memkit_error_type")
})

test_that("fm_info() prints what the matrix is", {
  path <- fm_path()
  X <- fm_create(path, 100, 10)
  info <- fm_info(X)
  expect_identical(info$path, normalizePath(path))
  expect_identical(as.numeric(info$file_size), 4096 + 8000)
  expect_s3_class(info$resident, "mem_bytes")
  expect_true(info$resident <= info$file_size)
  expect_output(print(info), "100 x 10 double, read-write")
})

test_that("fm_info() counts resident pages", {
  skip_if_not_linux()
  path <- fm_path()
  X <- fm_create(path, 1e5, 10)
  fm_flush(X)
  expect_gt(as.numeric(fm_info(X)$resident), 0)
})

test_that("a headerless file opens with type, nrow, ncol and offset", {
  raw_path <- withr::local_tempfile()
  con <- file(raw_path, "wb")
  writeBin(as.raw(1:16), con)
  writeBin(as.double(1:12), con)
  close(con)
  X <- fm_open(raw_path, type = "double", nrow = 3, ncol = 4, offset = 16)
  expect_identical(X[, ], matrix(as.double(1:12), 3))
  expect_identical(fm_open(raw_path, type = "double", nrow = 3, offset = 16)[, ], X[, ])
  expect_identical(unserialize(serialize(X, NULL))[, ], X[, ])
  expect_error(fm_open(raw_path, type = "double", nrow = 3, ncol = 5, offset = 16),
               class = "memkit_error_format")
})

test_that("a bigmemory backing file reads as the same matrix", {
  skip_if_not_installed("bigmemory")
  dir <- withr::local_tempdir()
  M <- matrix(rnorm(300), 30, 10)
  bm <- bigmemory::as.big.matrix(M, type = "double", backingfile = "bm.bin",
                                 descriptorfile = "bm.desc", backingpath = dir)
  bigmemory::flush(bm)
  X <- fm_open(file.path(dir, "bm.bin"), type = "double", nrow = 30, ncol = 10)
  expect_identical(X[, ], bm[, ])
  expect_identical(X[, ], M)
})

test_that("bad arguments give classed errors", {
  path <- fm_path()
  expect_error(fm_create(path, -1, 2), class = "memkit_error_argument")
  expect_error(fm_create(path, 2, 2, type = "complex"), class = "memkit_error_type")
  expect_error(fm_create(path, 2, 2, dimnames = list("a", NULL)), class = "memkit_error_argument")
  expect_error(fm_open(path, mode = "w"), class = "memkit_error_argument")
  expect_error(fm_write(matrix(0, 2, 2), 1), class = "memkit_error_type")
  # No failed call left a file behind.
  expect_false(file.exists(path))
  X <- fm_create(path, 2, 2)
  expect_error(fm_write(X, 1:3), class = "memkit_error_argument")
  expect_error(fm_write(X, "a"), class = "memkit_error_type")
  expect_error(fm_write(X, 1, i = 3), class = "memkit_error_argument")
  # ... and no failed write changed the matrix.
  expect_identical(X[, ], matrix(0, 2, 2))
})

test_that("bad files give classed errors and leave nothing behind", {
  dir <- withr::local_tempdir()
  path <- file.path(dir, "m.fm")
  expect_error(fm_open(path), class = "memkit_error_file")
  expect_error(fm_open(dir), class = "memkit_error_file")
  expect_error(fm_create(file.path(dir, "no", "m.fm"), 2, 2), class = "memkit_error_file")
  writeBin(as.raw(1:10), path)
  expect_error(fm_open(path), class = "memkit_error_format")
  writeBin(as.raw(rep(1, 200)), path)
  expect_error(fm_open(path), class = "memkit_error_format")
  expect_error(fm_create(path, 2, 2), class = "memkit_error_file")
  expect_identical(readBin(path, "raw", 300), as.raw(rep(1, 200)))
  expect_error(fm_create(dir, 2, 2, overwrite = TRUE), class = "memkit_error_file")
  # A truncated memkit file, and one with a damaged header.
  good <- file.path(dir, "g.fm")
  fm_create(good, 10, 10)
  bytes <- readBin(good, "raw", 5000)
  writeBin(bytes[1:4500], path)
  expect_error(fm_open(path), class = "memkit_error_format")
  damaged <- bytes
  damaged[30] <- as.raw(7)
  writeBin(damaged, path)
  expect_error(fm_open(path), class = "memkit_error_format")
  # Reserved header bytes are covered by the checksum too.
  damaged <- bytes
  damaged[100] <- as.raw(1)
  writeBin(damaged, path)
  expect_error(fm_open(path), class = "memkit_error_format")
  writeBin(bytes[1:4500], path)
  expect_setequal(list.files(dir, all.files = TRUE, no.. = TRUE), c("g.fm", "m.fm"))
})

test_that("no permission gives a classed error", {
  skip_on_os("windows")
  skip_if(identical(unname(Sys.info()[["effective_user"]]), "root"), "root ignores permissions")
  path <- fm_path()
  fm_create(path, 2, 2)
  Sys.chmod(path, "000")
  expect_error(fm_open(path), class = "memkit_error_file")
})

test_that("overwrite = TRUE replaces a file only once the new one is made", {
  path <- fm_path()
  X <- fm_create(path, 2, 2, init = 1)
  Y <- fm_create(path, 3, 3, init = 2, overwrite = TRUE)
  expect_identical(fm_open(path)[, ], matrix(2, 3, 3))
  expect_identical(X[, ], matrix(1, 2, 2))
})

test_that("a file truncated while mapped is a classed error in the process that reads it", {
  skip_on_os("windows") # a mapped file can't be truncated there (?fm_open, Platforms)
  path <- fm_path()
  fm_create(path, 1000, 100, init = 1)
  res <- in_child(function(path) {
    library(memkit)
    X <- fm_open(path)
    close(file(path, "wb")) # truncate to 0 bytes while X is mapped
    tryCatch(sum(X), error = function(e) class(e)[[1L]])
  }, list(path = path))
  expect_true(res$ok)
  expect_identical(res$value, "memkit_error_format")
  # The file is now refused cleanly, and other matrices are unaffected.
  expect_identical(file.size(path), 0)
  expect_error(fm_open(path), class = "memkit_error_format")
  Z <- as_fm(matrix(1:4, 2), fm_path())
  expect_identical(sum(Z), 10L)
})

test_that("a full disk at creation is a classed error and leaves no file", {
  skip_if_not_linux()
  skip_on_cran()
  skip_if_not(identical(unname(Sys.info()[["effective_user"]]), "root"), "needs root to mount a tmpfs")
  dir <- withr::local_tempdir()
  ok <- system2("mount", c("-t", "tmpfs", "-o", "size=1m", "tmpfs", shQuote(dir)),
                stdout = FALSE, stderr = FALSE) == 0
  skip_if_not(ok, "can't mount a tmpfs")
  # Unmount once every mapping of a file there is gone.
  withr::defer({
    gc()
    system2("umount", shQuote(dir))
  })
  err <- expect_error(fm_create(file.path(dir, "big.fm"), 1000, 1000), class = "memkit_error_disk")
  expect_identical(err$errno, 28L) # ENOSPC
  expect_length(list.files(dir, all.files = TRUE, no.. = TRUE), 0)
  expect_identical(sum(fm_create(file.path(dir, "small.fm"), 10, 10)), 0)
  expect_snapshot(fm_create(file.path(dir, "big.fm"), 1000, 1000), error = TRUE, cnd_class = TRUE,
                  transform = function(x) gsub(dir, "<dir>", x, fixed = TRUE))
})

test_that("error messages and printed output read well", {
  # Every snapshot of this file is here: snapshots skip on CRAN, and a skip
  # ends its block, so the behaviour tests above are kept free of them.
  path <- fm_path()
  X <- fm_create(path, 4, 2)
  s <- serialize(X, NULL)
  rm(X)
  gc()
  fm_create(path, 4, 2, overwrite = TRUE)
  expect_snapshot(unserialize(s), error = TRUE, cnd_class = TRUE, transform = scrub_path)
  unlink(path)
  expect_snapshot(unserialize(s), error = TRUE, cnd_class = TRUE, transform = scrub_path)

  expect_snapshot(as_fm(list(1), fm_path()), error = TRUE, cnd_class = TRUE)
  expect_snapshot(as_fm(data.frame(a = "x"), fm_path()), error = TRUE, cnd_class = TRUE)

  info <- fm_info(fm_create(fm_path(), 100, 10))
  expect_snapshot(print(info), transform = function(x) {
    x <- scrub_path(x)
    sub("resident .*", "resident <bytes> of the file in memory now", x)
  })

  raw_path <- withr::local_tempfile()
  writeBin(c(as.raw(1:16), writeBin(as.double(1:12), raw())), raw_path)
  expect_snapshot(fm_open(raw_path, type = "double", nrow = 3, ncol = 5, offset = 16),
                  error = TRUE, cnd_class = TRUE, transform = scrub_path)

  path <- fm_path()
  X <- fm_create(fm_path(), 2, 2)
  expect_snapshot(error = TRUE, cnd_class = TRUE, {
    fm_create(path, -1, 2)
    fm_create(path, NA, 2)
    fm_create(path, 2.5, 2)
    fm_create(path, 2^31, 2)
    fm_create(path, 2, 2, type = "complex")
    fm_create(path, 2, 2, dimnames = list("a", NULL))
    fm_create(path, 2, 2, init = 1:2)
    fm_open(path, mode = "w")
    fm_write(matrix(0, 2, 2), 1)
    fm_write(X, 1:3)
    fm_write(X, "a")
    fm_write(X, 1, i = 3)
  })

  dir <- withr::local_tempdir()
  path <- file.path(dir, "m.fm")
  good <- file.path(dir, "g.fm")
  fm_create(good, 10, 10)
  writeBin(readBin(good, "raw", 4500), path)
  expect_snapshot(error = TRUE, cnd_class = TRUE, transform = scrub_path, {
    fm_open(path)
    fm_open(dir)
    fm_create(good, 2, 2)
  })
})

test_that("long vectors (more than 2^31 - 1 elements) work", {
  skip_on_cran()
  skip_if_not(Sys.getenv("MEMKIT_HEAVY_TESTS") == "true", "set MEMKIT_HEAVY_TESTS=true")
  path <- fm_path()
  nr <- 2^16
  nc <- 2^15 + 1
  X <- fm_create(path, nr, nc, type = "raw")
  n <- length(X)
  expect_gt(n, .Machine$integer.max)
  fm_write(X, as.raw(0:255), j = nc)
  X[nr, nc - 1] <- as.raw(9)
  expect_identical(X[n], as.raw(255))
  expect_identical(X[nr, nc - 1], as.raw(9))
  expect_identical(X[c(n - nr, n - nr + 2)], as.raw(c(9, 1)))
  expect_identical(fm_read(X, j = nc)[, 1], rep_len(as.raw(0:255), nr))
  Y <- unserialize(serialize(X, NULL))
  expect_identical(length(Y), n)
  expect_identical(Y[nr, nc], X[nr, nc])
  expect_equal(sum(fm_read(X, j = nc) != as.raw(0)), nr - nr / 256)
  expect_identical(sum(fm_read(X, j = nc - 1) != as.raw(0)), 1L)
})
