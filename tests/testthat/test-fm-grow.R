# Growing, importing and block-writing file-backed matrices (#18):
# R/fm-append.R, R/fm-import.R, fm_apply(out =, backend =) in R/fm.R,
# src/fm_append.c, src/fm_import.c.

skip_on_os("windows")
withr::local_options(memkit.progress = FALSE, .local_envir = testthat::teardown_env())

fm_path <- function(env = parent.frame()) withr::local_tempfile(fileext = ".fm", .local_envir = env)
csv_path <- function(env = parent.frame(), ext = ".csv") withr::local_tempfile(fileext = ext, .local_envir = env)

# ---- fm_append() ----------------------------------------------------------------

test_that("fm_append(cols =) grows the file in place by the new columns' bytes", {
  set.seed(2)
  M <- matrix(rnorm(300), 30, 10, dimnames = list(NULL, paste0("c", 1:10)))
  path <- fm_path()
  X <- as_fm(M, path)
  size0 <- file.size(path)
  ino0 <- file.info(path, extra_cols = TRUE)$inode
  new <- matrix(runif(90), 30, 3, dimnames = list(NULL, c("n1", "n2", "n3")))
  X2 <- fm_append(X, cols = new)
  expect_identical(X2[, ], cbind(M, new))
  expect_identical(fm_open(path)[, ], cbind(M, new))
  expect_identical(file.size(path) - size0, 30 * 3 * 8)
  # The same file (inode): nothing was rewritten.
  expect_identical(file.info(path, extra_cols = TRUE)$inode, ino0)
  # One vector is one column; unnamed new columns get "" as cbind() gives them.
  X3 <- fm_append(X2, cols = 1:30)
  expect_identical(X3[, ], cbind(M, new, 1:30))
  expect_identical(colnames(X3)[14], "")
})

test_that("fm_append(rows =) rewrites into a new file, as rbind() would", {
  M <- matrix(1:12, 4, dimnames = list(letters[1:4], NULL))
  path <- fm_path()
  X <- as_fm(M, path)
  X2 <- fm_append(X, rows = matrix(21:26, 2, dimnames = list(c("y", "z"), NULL)))
  expect_identical(X2[, ], rbind(M, matrix(21:26, 2, dimnames = list(c("y", "z"), NULL))))
  expect_identical(fm_open(path)[, ], X2[, ])
  expect_identical(X[, ], M)   # the old object maps the old file
  X3 <- fm_append(X2, rows = c(-1L, -2L, -3L))
  expect_identical(X3[7, ], c(-1L, -2L, -3L))
  expect_identical(rownames(X3)[7], "")
  # No temporary file is left next to it.
  expect_identical(list.files(dirname(path), all.files = TRUE, pattern = basename(path)), basename(path))
})

test_that("column names too long for the header's room give the same result by a rewrite", {
  path <- fm_path()
  X <- as_fm(matrix(0, 2, 2), path)
  long <- strrep(c("x", "y"), 3000)
  X2 <- fm_append(X, cols = matrix(1, 2, 2, dimnames = list(NULL, long)))
  expect_identical(colnames(fm_open(path)), c("", "", long))
  expect_identical(fm_open(path)[, ], unname(cbind(matrix(0, 2, 2), matrix(1, 2, 2))), ignore_attr = TRUE)
})

test_that("a process that has the file open keeps seeing the old matrix", {
  M <- matrix(as.double(1:20), 5)
  path <- fm_path()
  X <- as_fm(M, path)
  R <- fm_open(path)
  X2 <- fm_append(X, cols = matrix(0, 5, 2))
  expect_identical(dim(R), c(5L, 4L))
  expect_identical(R[, ], M)
  expect_identical(colSums(R), colSums(M))
  X3 <- fm_append(X2, rows = matrix(9, 1, 6))
  expect_identical(R[, ], M)
  expect_identical(dim(fm_open(path)), c(6L, 6L))
})

test_that("fm_append() refuses what it can't grow, with classed errors", {
  path <- fm_path()
  X <- as_fm(matrix(1, 3, 2), path)
  expect_error(fm_append(fm_open(path), cols = 1:3), class = "memkit_error_state")
  expect_error(fm_append(X), class = "memkit_error_argument")
  expect_error(fm_append(X, cols = 1:3, rows = 1:2), class = "memkit_error_argument")
  expect_error(fm_append(X, cols = 1:4), class = "memkit_error_argument")
  expect_error(fm_append(X, rows = 1:3), class = "memkit_error_argument")
  expect_error(fm_append(X, cols = letters[1:3]), class = "memkit_error_type")
  expect_error(fm_append(matrix(1, 2, 2), cols = 1:2), class = "memkit_error_type")
  raw_path <- fm_path()
  writeBin(as.double(1:6), raw_path)
  H <- fm_open(raw_path, mode = "rw", type = "double", nrow = 3)
  expect_error(fm_append(H, cols = 1:3), class = "memkit_error_argument")
  # A matrix whose file was replaced since it was opened.
  X2 <- fm_append(X, cols = 1:3)
  expect_error(fm_append(X, cols = 1:3), class = "memkit_error_format")
  expect_identical(dim(fm_open(path)), c(3L, 3L))
})

test_that("a file longer than its header says (an append cut short) opens as the old matrix", {
  M <- matrix(as.double(1:6), 3)
  path <- fm_path()
  as_fm(M, path)
  con <- file(path, "ab")
  writeBin(rep(99, 7), con)
  close(con)
  expect_identical(fm_open(path)[, ], M)
  # The next append starts from the header's size, not the file's.
  X2 <- fm_append(fm_open(path, mode = "rw"), cols = c(7, 8, 9))
  expect_identical(X2[, ], cbind(M, c(7, 8, 9)))
  expect_identical(file.size(path), 4096 + 9 * 8)
})

test_that("SIGKILL halfway through an append leaves the original readable and identical", {
  skip_on_cran()
  skip_if_not_installed("callr")
  set.seed(3)
  M <- matrix(rnorm(200 * 40), 200, 40)
  for (what in c("rows", "cols")) {
    path <- fm_path()
    as_fm(M, path)
    # The child stops itself with SIGKILL: halfway through the copy of the
    # columns (rows), or after the new columns are written and before the
    # header (cols).
    res <- in_child(function(path, what) {
      library(memkit)
      options(memkit.progress = FALSE)
      ns <- asNamespace("memkit")
      kill <- quote(tools::pskill(Sys.getpid(), tools::SIGKILL))
      if (what == "rows") {
        trace("fm_append_column", tracer = bquote(if (j == 20) .(kill)), where = ns, print = FALSE)
        fm_append(fm_open(path, mode = "rw"), rows = matrix(0, 5, 40))
      } else {
        trace("fm_grow_commit_step", tracer = kill, where = ns, print = FALSE)
        fm_append(fm_open(path, mode = "rw"), cols = matrix(0, 200, 10))
      }
      "not killed"
    }, args = list(path = path, what = what))
    expect_false(res$ok)
    X <- fm_open(path)
    expect_identical(dim(X), c(200L, 40L))
    expect_identical(X[, ], M)
    # and it still grows afterwards
    X2 <- fm_append(fm_open(path, mode = "rw"), cols = matrix(1, 200, 1))
    expect_identical(X2[, 1:40], M)
  }
})

# ---- fm_import() ------------------------------------------------------------------

test_that("fm_import() gives what read.csv() gives, in chunks, from plain and gzip files", {
  set.seed(4)
  n <- 2500
  df <- as.data.frame(matrix(rnorm(n * 6) * 10^sample(-8:8, n * 6, TRUE), n))
  names(df) <- c("a", "b c", "d", "e", "f", "g")
  df$d[c(3, 77)] <- NA
  df$e <- sample(-5:5, n, TRUE)
  df$f[5] <- Inf
  df$g[6] <- NaN
  csv <- csv_path()
  write.csv(df, csv, row.names = FALSE)
  ref <- as.matrix(read.csv(csv, check.names = FALSE))
  X <- fm_import(csv, fm_path(), chunk_rows = 300)
  expect_identical(X[, ], ref)
  expect_identical(dim(fm_open(fm_info(X)$path)), dim(ref))
  gz <- csv_path(ext = ".csv.gz")
  con <- gzfile(gz, "w")
  writeLines(readLines(csv), con)
  close(con)
  expect_identical(fm_import(gz, fm_path())[, ], ref)
  # TSV without a header, skipping a comment line, blank lines and CRLF.
  tsv <- csv_path(ext = ".tsv")
  writeBin(charToRaw("comment\r\n1\t2.5\r\n\r\n3\t-4e-3\r\n"), tsv)
  Y <- fm_import(tsv, fm_path(), sep = "\t", header = FALSE, skip = 1)
  expect_identical(Y[, ], as.matrix(read.delim(tsv, header = FALSE, skip = 1)))
})

test_that("fm_import() reads as many rows as the file has, with small read blocks too", {
  csv <- csv_path()
  writeLines(c("x,y", sprintf("%d,%d", 1:1000, 1001:2000)), csv)
  X <- fm_import(csv, fm_path(), chunk_rows = 7)
  expect_identical(X[, ], cbind(x = as.double(1:1000), y = as.double(1001:2000)))
  # A last line without a newline counts.
  writeBin(charToRaw("x\n1\n2"), csv)
  expect_identical(fm_import(csv, fm_path())[, 1], c(1, 2))
})

test_that("numbers are read to the bit as read.csv() reads them, whatever their form", {
  set.seed(18)
  n <- 25000
  digits <- function(k) vapply(k, function(m) paste(sample(0:9, m, TRUE), collapse = ""), "")
  one <- function(n) {
    int <- digits(sample(0:22, n, TRUE, prob = c(1, rep(3, 15), rep(1, 7))))
    frac <- digits(sample(0:22, n, TRUE, prob = c(2, rep(3, 15), rep(1, 7))))
    lead <- strrep("0", sample(0:3, n, TRUE, prob = c(6, 1, 1, 1)))
    trail <- strrep("0", sample(0:3, n, TRUE, prob = c(6, 1, 1, 1)))
    x <- ifelse(nchar(frac) > 0 | runif(n) < 0.1, paste0(lead, int, ".", frac, trail), paste0(lead, int))
    x[x %in% c(".", "")] <- "0"
    sign <- sample(c("", "-", "+"), n, TRUE, prob = c(5, 4, 1))
    e <- ifelse(runif(n) < 0.3, paste0(sample(c("e", "E"), n, TRUE), sample(c("", "-", "+"), n, TRUE),
                                      sample(c(0:30, 280:330), n, TRUE)), "")
    paste0(sign, x, e)
  }
  cols <- replicate(4, one(n), simplify = FALSE)
  cols[[1]][1:12] <- c("0", "-0", "1e-320", "4.9e-324", "1.7976931348623157e308", "1e309", "-1e309",
                       "12345678901234567890123", "0.1", "9007199254740993", "999999999999999999",
                       "1000000000000000000")
  cols[[2]][sample(n, 50)] <- "NA"
  csv <- csv_path()
  writeLines(c("a,b,c,d", do.call(paste, c(cols, sep = ","))), csv)
  ref <- as.matrix(read.csv(csv, colClasses = "numeric"))
  X <- fm_import(csv, fm_path())
  expect_identical(X[, ], ref)
  # The same numbers one at a time, as type.convert() reads them.
  expect_identical(X[, 1], type.convert(cols[[1]], as.is = TRUE))
})

test_that("tiny read blocks (lines cut anywhere) give the same matrix, plain and gzip", {
  csv <- csv_path()
  writeBin(charToRaw(paste0("# note\r\n\"a\",b,\"c d\"\r\n1.5,2,3\r\n\r\n  \n-4,\"5\",6e2\r\n",
                            paste(sprintf("%d,%d.25,%de-1", 1:200, 200:1, 1:200), collapse = "\n"), "\n7,8,9")),
           csv)
  ref <- fm_import(csv, fm_path(), skip = 1)[, ]
  gz <- csv_path(ext = ".csv.gz")
  con <- gzfile(gz, "wb")
  writeBin(readBin(csv, "raw", file.size(csv)), con)
  close(con)
  reader <- text_reader
  for (b in c(1, 2, 3, 7, 64)) {
    local_mocked_bindings(text_reader = function(file, sep, quote, block) reader(file, sep, quote, block = b))
    expect_identical(fm_import(csv, fm_path(), skip = 1, chunk_rows = 9)[, ], ref)
    expect_identical(fm_import(gz, fm_path(), skip = 1)[, ], ref)
  }
  expect_identical(dim(ref), c(203L, 3L))
  expect_identical(unname(ref[c(1, 2, 203), 3]), c(3, 600, 9))
  expect_identical(colnames(ref), c("a", "b", "c d"))
})

test_that("an error far into the file, after chunks were written, leaves nothing behind", {
  dir <- withr::local_tempdir()
  csv <- file.path(dir, "in.csv")
  l <- c("a,b", sprintf("%d,%d", 1:60000, 60000:1))
  l[55001] <- "1,2,3"
  writeLines(l, csv)
  out <- file.path(dir, "out.fm")
  e <- expect_error(fm_import(csv, out, chunk_rows = 10000), class = "memkit_error_parse")
  expect_identical(e$line, 55001)
  expect_identical(list.files(dir, all.files = TRUE, no.. = TRUE), "in.csv")
  # And an existing matrix at `path` stays as it was.
  old <- as_fm(matrix(1:4 + 0.5, 2), out)
  expect_error(fm_import(csv, out, overwrite = TRUE, chunk_rows = 10000), class = "memkit_error_parse")
  expect_identical(fm_open(out)[, ], matrix(1:4 + 0.5, 2))
  expect_identical(sort(list.files(dir, all.files = TRUE, no.. = TRUE)), c("in.csv", "out.fm"))
})

test_that("errors name the right line when the rows are parsed in two halves", {
  csv <- csv_path()
  l <- c("a,b", sprintf("%d,%d", 1:30000, 30000:1))
  l[c(100, 20000)] <- ""
  l[25001] <- "5,x"
  writeLines(l, csv)
  e <- expect_error(fm_import(csv, fm_path()), class = "memkit_error_parse")
  expect_identical(c(e$line, e$column), c(25001, 2))
  l[25001] <- "5,5"
  l[12001] <- "7"
  writeLines(l, csv)
  e <- expect_error(fm_import(csv, fm_path()), class = "memkit_error_parse")
  expect_identical(e$line, 12001)
  l[12001] <- "7,7"
  writeLines(l, csv)
  X <- fm_import(csv, fm_path())
  ref <- as.matrix(read.csv(csv))
  storage.mode(ref) <- "double"
  expect_identical(X[, ], ref)
})

test_that("col_types skips columns and stores factor codes with their levels", {
  csv <- csv_path()
  writeLines(c("id,g,v,note", "1,b,0.5,x", "2,a,1.5,\"y, z\"", "3,,2.5,w", "4,b,NA,\"\"", "5,NA,3,q"), csv)
  X <- fm_import(csv, fm_path(), col_types = c(g = "factor", note = "skip"))
  ref <- read.csv(csv, stringsAsFactors = TRUE)
  expect_identical(colnames(X), c("id", "g", "v"))
  expect_identical(X[, "g"], as.double(as.integer(ref$g)))
  expect_identical(fm_levels(X), list(g = levels(ref$g)))
  expect_identical(fm_levels(fm_open(fm_info(X)$path)), list(g = levels(ref$g)))
  expect_identical(X[, "v"], ref$v)
  expect_identical(fm_levels(as_fm(matrix(1), fm_path())), list())
  Y <- fm_import(csv, fm_path(), col_types = c("numeric", "skip", "numeric", "skip"))
  expect_identical(unname(Y[, ]), unname(as.matrix(ref[, c("id", "v")])))
})

test_that("bad lines give classed errors that name the line and leave no file", {
  csv <- csv_path()
  out <- fm_path()
  writeLines(c("a,b", "1,2", "3", "5,6"), csv)
  e <- expect_error(fm_import(csv, out), class = "memkit_error_parse")
  expect_identical(e$line, 3)
  expect_false(file.exists(out))
  writeLines(c("a,b", "1,2", "3,4,5"), csv)
  e <- expect_error(fm_import(csv, out), class = "memkit_error_parse")
  expect_identical(e$line, 3)
  writeLines(c("a,b", "1,2", "", "3,N/A"), csv)
  e <- expect_error(fm_import(csv, out), class = "memkit_error_parse")
  expect_identical(c(e$line, e$column), c(4, 2))
  expect_identical(fm_import(csv, out, na = c("NA", "N/A"))[, "b"], c(2, NA))
  writeLines(c("a,b", "1,\"2", "3,4"), csv)
  e <- expect_error(fm_import(csv, fm_path()), class = "memkit_error_parse")
  expect_identical(e$line, 2)
  writeLines(c("a,b", "1,x"), csv)
  expect_error(fm_import(csv, fm_path()), class = "memkit_error_parse")
  # A quoted field with a doubled quote inside: the message quotes the line's text.
  writeLines(c("a,b", "1,\"2\"\"x\""), csv)
  e <- expect_error(fm_import(csv, fm_path()), class = "memkit_error_parse")
  expect_match(conditionMessage(e), "2\"\"x", fixed = TRUE)
  expect_error(fm_import(file.path(tempdir(), "no-such.csv"), fm_path()), class = "memkit_error_file")
  expect_error(fm_import(csv, fm_path(), sep = ";;"), class = "memkit_error_argument")
  expect_error(fm_import(csv, fm_path(), col_types = c(zz = "factor")), class = "memkit_error_argument")
  expect_error(fm_import(csv, fm_path(), col_types = "text"), class = "memkit_error_argument")
  empty <- csv_path()
  file.create(empty)
  expect_error(fm_import(empty, fm_path()), class = "memkit_error_parse")
})

# ---- fm_apply(out =, backend =) --------------------------------------------------

test_that("fm_apply(out =) writes each block's result into the matrix", {
  set.seed(5)
  M <- matrix(rnorm(3000), 100, 30)
  X <- as_fm(M, fm_path())
  Z <- fm_apply(X, function(b) b * 2, out = fm_path(), block_bytes = 100 * 8 * 4)
  expect_true(is_fm(Z))
  expect_identical(Z[, ], M * 2)
  Z1 <- fm_apply(X, function(b) b - 1, margin = 1, out = fm_path(), block_bytes = 30 * 8 * 7)
  expect_identical(Z1[, ], M - 1)
  O <- fm_create(fm_path(), 2, 30)
  res <- fm_apply(X, function(b) rbind(colSums(b), colMeans(b)), out = O, block_bytes = 100 * 8 * 4)
  expect_identical(res[, ], rbind(colSums(M), colMeans(M)))
  S <- fm_apply(X, colSums, out = fm_path(), block_bytes = 100 * 8 * 4)
  expect_identical(S[1, ], colSums(M))
  expect_error(fm_apply(X, function(b) b[, 1], out = fm_path(), block_bytes = 100 * 8 * 4),
               class = "memkit_error_argument")
  expect_error(fm_apply(X, colSums, out = fm_create(fm_path(), 1, 3)), class = "memkit_error_argument")
  expect_error(fm_apply(X, colSums, out = 3), class = "memkit_error_argument")
})

test_that("a user's lapply-like backend gets tasks under 1 KB and gives the serial result", {
  M <- matrix(as.double(1:4000), 100)
  X <- as_fm(M, fm_path())
  sizes <- numeric()
  recorder <- function(X, FUN) {
    sizes <<- vapply(X, function(el) length(serialize(list(el, FUN), NULL)), numeric(1))
    lapply(X, FUN)
  }
  # A function written here carries its source references and this
  # environment; memkit sends it without the source, the environment is the
  # user's to keep small.
  f <- function(b) b + 1
  environment(f) <- globalenv()
  Z <- fm_apply(X, f, out = fm_path(), backend = recorder, block_bytes = 100 * 8 * 5)
  expect_identical(Z[, ], M + 1)
  expect_length(sizes, 7)    # the first block of a new `out` is computed here
  expect_lt(max(sizes), 1024)
  expect_identical(fm_apply(X, colSums, backend = lapply, block_bytes = 100 * 8 * 5), colSums(M))
  expect_error(fm_apply(X, colSums, backend = function(X, FUN) 1), class = "memkit_error_type")
  expect_error(fm_apply(X, colSums, backend = "nope"), class = "memkit_error_argument")
})

test_that("backend = \"future\" with two multisession workers gives the serial result", {
  skip_on_cran()
  skip_if_not_installed("future")
  skip_if_not_installed("future.apply")
  M <- matrix(as.double(1:6000), 100)
  X <- as_fm(M, fm_path())
  old <- future::plan(future::multisession, workers = 2)
  on.exit(future::plan(old), add = TRUE)
  f <- function(b) sqrt(b)
  environment(f) <- globalenv()
  Z <- fm_apply(X, f, out = fm_path(), backend = "future", block_bytes = 100 * 8 * 6)
  expect_identical(Z[, ], sqrt(M))
  expect_identical(fm_apply(X, colSums, backend = "future", block_bytes = 100 * 8 * 6), colSums(M))
})
