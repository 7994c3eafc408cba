# File-backed matrices given hostile files, references and neighbours (#13).
# Crash reproducers run in a child process: a failure there is a dead child,
# never a dead test run.

withr::local_options(memkit.progress = FALSE, .local_envir = testthat::teardown_env())

fm_path <- function(env = parent.frame()) withr::local_tempfile(fileext = ".fm", .local_envir = env)

# ---- helpers: bytes as memkit writes them -------------------------------------

# FNV-1a 64 of raw bytes, in four 16-bit limbs (R has no 64-bit integers), as
# 16 hex digits. The prime is 2^40 + 435.
fnv1a64 <- function(bytes, h = c(0x2325, 0x8422, 0x9ce4, 0xcbf2)) {
  for (b in as.integer(bytes)) {
    h[1] <- bitwXor(h[1], b)
    m <- h * 435
    s <- c(0, 0, bitwAnd(bitwShiftL(h[1], 8L), 0xFFFF),
           bitwOr(bitwAnd(bitwShiftL(h[2], 8L), 0xFFFF), bitwShiftR(h[1], 8L)))
    t <- m + s
    carry <- 0
    for (k in 1:4) {
      v <- t[k] + carry
      h[k] <- v %% 65536
      carry <- v %/% 65536
    }
  }
  h
}
fnv_hex <- function(h) sprintf("%04x%04x%04x%04x", h[4], h[3], h[2], h[1])
fnv_bytes <- function(h) writeBin(as.integer(h), raw(), size = 2, endian = "little")

u32 <- function(x) writeBin(as.integer(x), raw(), size = 4, endian = "little")
u64 <- function(x) c(u32(x %% 2^32), u32(x %/% 2^32))

# A memkit file written byte by byte: `version` 1 (the checksum covers bytes
# 0-71) or 2 (all but the checksum), with `dn` as the dimnames bytes.
write_fm_file <- function(path, data, nrow, ncol, dn = raw(), version = 2L) {
  offset <- ceiling((128 + length(dn)) / 4096) * 4096
  h <- c(charToRaw("MEMKITFM"), u32(version), u32(0x01020304), u32(1), u32(8),
         u64(nrow), u64(ncol), u64(offset), u64(length(dn)), as.raw(1:16))
  covered <- if (version >= 2L) c(h, raw(48)) else h
  sum <- fnv_bytes(fnv1a64(c(covered, dn)))
  bytes <- c(h, sum, raw(48), dn)
  bytes <- c(bytes, raw(offset - length(bytes)), writeBin(as.double(data), raw()))
  writeBin(bytes, path)
  invisible(path)
}

# The checksum memkit before #13 took of a headerless file (five doubles):
# a crafted reference carries it so that the old code would accept it.
old_headerless_sum <- function(type_code, nrow, ncol, offset, size) {
  fnv_hex(fnv1a64(writeBin(as.double(c(type_code, nrow, ncol, offset, size)), raw(),
                           endian = "little")))
}

# A saved reference as the lines of R's ascii serialization, which hold each
# field of the state on lines of their own.
ref_lines <- function(X) strsplit(rawToChar(serialize(X, NULL, ascii = TRUE)), "\n", fixed = TRUE)[[1]]
ref_raw <- function(lines) charToRaw(paste0(paste(lines, collapse = "\n"), "\n"))
# A scalar double field: its lines are "14", "1", value.
set_number <- function(lines, old, new) {
  k <- which(lines == "14" & c(lines[-1], "") == "1" & c(lines[-(1:2)], "", "") == old)
  stopifnot(length(k) == 1L)
  lines[k + 2L] <- new
  lines
}
num_lines <- function(x) c("14", "1", x)
str_lines <- function(x) c("16", "1", "262153", nchar(x, "bytes"), x)
# A string field: its last two lines are the byte count and the string.
set_string <- function(lines, old, new) {
  k <- which(lines == old)
  stopifnot(length(k) == 1L)
  lines[k - 1L] <- nchar(new, "bytes")
  lines[k] <- new
  lines
}

# A headerless 3 x 4 double file with its data at byte 24.
headerless_file <- function(env = parent.frame()) {
  p <- withr::local_tempfile(.local_envir = env)
  writeBin(c(as.raw(1:24), writeBin(as.double(1:12), raw())), p)
  p
}

# The first class of each error `exprs` gives in a child process.
child_error_classes <- function(fun, args = list()) {
  res <- in_child(fun, args, timeout = 60)
  expect_true(res$ok, info = if (!res$ok) conditionMessage(res$error))
  res$value
}

test_that("the R FNV-1a helper agrees with the checksum of a file memkit wrote", {
  path <- fm_path()
  fm_create(path, 2, 3, dimnames = list(c("a", "b"), NULL))
  bytes <- readBin(path, "raw", 4096)
  dn_len <- readBin(bytes[49:52], "integer", size = 4, endian = "little")
  expect_identical(fnv_bytes(fnv1a64(c(bytes[1:72], bytes[81:128], bytes[128 + seq_len(dn_len)]))),
                   bytes[73:80])
  write_fm_file(path, 1:6, 2, 3)
  expect_identical(fm_open(path)[, ], matrix(as.double(1:6), 2))
})

# ---- 1. references ---------------------------------------------------------------

test_that("a crafted reference (offset -8, checksum recomputed) is a format error, not a crash", {
  p <- headerless_file()
  X <- fm_open(p, type = "double", nrow = 3, ncol = 4, offset = 24)
  lines <- ref_lines(X)
  old <- lines[grep("^[0-9a-f]{16}$", lines)]
  crafted <- function(...) {
    l <- lines
    edits <- list(...)
    for (e in edits) l <- e(l)
    ref_raw(l)
  }
  with_sum <- function(nrow, ncol, offset) {
    function(l) set_string(l, old, old_headerless_sum(1, nrow, ncol, offset, 24 + 96))
  }
  refs <- list(
    offset_neg = crafted(function(l) set_number(l, "24", "-8"), with_sum(3, 4, -8)),
    offset_odd = crafted(function(l) set_number(l, "24", "3"), with_sum(3, 4, 3)),
    offset_huge = crafted(function(l) set_number(l, "24", "1e300")),
    offset_na = crafted(function(l) set_number(l, "24", "NA")),
    nrow_neg = crafted(function(l) set_number(l, "3", "-1")),
    nrow_frac = crafted(function(l) set_number(l, "3", "2.5")),
    nrow_big = crafted(function(l) set_number(l, "3", "2147483648")),
    nrow_past_file = crafted(function(l) set_number(l, "3", "300"), with_sum(300, 4, 24)),
    nrow_string = crafted(function(l) {
      k <- which(l == "14" & c(l[-1], "") == "1" & c(l[-(1:2)], "", "") == "3")
      c(l[seq_len(k - 1L)], str_lines("3"), l[-seq_len(k + 2L)])
    }),
    type = crafted(function(l) set_string(l, "double", "complex")),
    mode_copy = crafted(function(l) set_string(l, "r", "copy")),
    path_relative = crafted(function(l) set_string(l, p, "x.fm")),
    checksum = crafted(function(l) set_string(l, old, "zz")),
    header_na = crafted(function(l) {
      k <- which(l == "10" & c(l[-1], "") == "1")
      l[k + 2L] <- "NA"
      l
    })
  )
  got <- child_error_classes(function(refs) {
    library(memkit)
    vapply(refs, function(s) tryCatch({
      x <- unserialize(s)
      sum(x) # a crafted reference that restored must still not crash
      "restored"
    }, error = function(e) class(e)[[1L]]), character(1))
  }, list(refs = refs))
  expect_identical(got, setNames(rep("memkit_error_format", length(refs)), names(refs)))
})

test_that("a reference to a memkit file whose offset disagrees with the header is refused", {
  path <- fm_path()
  X <- fm_create(path, 3, 2)
  l <- set_number(ref_lines(X), "4096", "8192")
  expect_error(unserialize(ref_raw(l)), class = "memkit_error_format")
  expect_identical(unserialize(serialize(X, NULL))[, ], X[, ])
})

# ---- 2. dimnames never unserialized ------------------------------------------------

test_that("a format-1 file whose dimnames are a reference into the file is refused, not run", {
  path <- fm_path()
  write_fm_file(path, 1:12, 3, 4) # a placeholder, so the path exists
  path <- normalizePath(path)
  size <- 4096 + 12 * 8
  # The dimnames blob: list(<reference>, NULL) in R's format, the reference
  # pointing at this very file, headerless, 3 x 1 at offset -8, with the old
  # checksum made to match. The old fm_open() unserialize()d it and read the
  # row names from before the mapping.
  p <- headerless_file()
  X <- fm_open(p, type = "double", nrow = 3, ncol = 4, offset = 24)
  l <- ref_lines(list(X, NULL))
  old <- l[grep("^[0-9a-f]{16}$", l)]
  l <- set_string(l, p, path)
  l <- set_number(l, "4", "1")
  l <- set_number(l, "24", "-8")
  l <- set_string(l, old, old_headerless_sum(1, 3, 1, -8, size))
  write_fm_file(path, 1:12, 3, 4, dn = ref_raw(l), version = 1L)
  expect_identical(file.size(path), size)
  res <- child_error_classes(function(path) {
    library(memkit)
    tryCatch({ Y <- fm_open(path); nchar(dimnames(Y)[[1]]); c("opened", "") },
             error = function(e) c(class(e)[[1L]], conditionMessage(e)))
  }, list(path = path))
  expect_identical(res[[1L]], "memkit_error_format")
  # The message says how to open the file anyway.
  expect_match(res[[2L]], "older memkit (format 1)", fixed = TRUE)
  expect_match(res[[2L]], 'fm_open(path, type = "double", nrow = 3, ncol = 4, offset = 4096)', fixed = TRUE)
})

test_that("a format-1 file without dimnames still opens", {
  path <- fm_path()
  write_fm_file(path, 1:6, 3, 2, version = 1L)
  expect_identical(fm_open(path)[, ], matrix(as.double(1:6), 3))
})

test_that("dimnames round-trip through the file, NA, UTF-8 and names included", {
  path <- fm_path()
  dn <- list(rows = c("a", NA, "\u00e9t\u00e9"), cols = c("x", "y"))
  X <- fm_create(path, 3, 2, dimnames = dn)
  expect_identical(dimnames(fm_open(path)), dn)
  path2 <- fm_path()
  fm_create(path2, 2, 2, dimnames = list(NULL, c("p", "q")))
  expect_identical(dimnames(fm_open(path2)), list(NULL, c("p", "q")))
  expect_error(fm_create(fm_path(), 1, 1, dimnames = list(NULL, `Encoding<-`("\xff", "bytes"))),
               class = "memkit_error_argument")
})

test_that("damaged dimnames with a valid checksum are a format error", {
  path <- fm_path()
  enc <- function(v) if (is.null(v)) u32(-1) else c(u32(length(v)), unlist(lapply(v, function(s) c(u32(nchar(s, "bytes")), charToRaw(s)))))
  good <- c(enc(NULL), enc(c("a", "b")), enc(NULL))
  write_fm_file(path, 1:4, 2, 2, dn = good)
  expect_identical(dimnames(fm_open(path)), list(c("a", "b"), NULL))
  bad <- list(
    count = c(enc(NULL), enc(c("a", "b", "c")), enc(NULL)),
    too_long = c(enc(NULL), u32(2), u32(1000), charToRaw("a"), enc(NULL)),
    huge_count = c(enc(NULL), u32(2^31 - 1), enc(NULL)),
    trailing = c(good, as.raw(0)),
    truncated = good[1:9],
    bad_utf8 = c(enc(NULL), u32(2), u32(1), as.raw(0xff), u32(1), charToRaw("b"), enc(NULL)),
    nul = c(enc(NULL), u32(2), u32(1), as.raw(0), u32(1), charToRaw("b"), enc(NULL))
  )
  for (b in names(bad)) {
    write_fm_file(path, 1:4, 2, 2, dn = bad[[b]])
    expect_error(fm_open(path), class = "memkit_error_format", info = b)
  }
})

# ---- 3. SIGBUS ------------------------------------------------------------------------

test_that("a file truncated under its mapping gives classed errors, not SIGBUS", {
  skip_on_os("windows") # a mapped file can't be truncated there (?fm_open, Platforms)
  path <- fm_path()
  fm_create(path, 1000, 100, init = 1)
  got <- child_error_classes(function(path) {
    library(memkit)
    catch <- function(expr) tryCatch({ expr; "no error" }, error = function(e) class(e)[[1L]])
    Y <- fm_open(path)
    W <- fm_open(path, mode = "rw")
    C <- Y
    C[1, 1] <- 5 # a private copy, made before the truncation
    close(file(path, "w")) # another program truncates the file
    c(sum = catch(sum(Y)), colSums = catch(colSums(Y)), elt = catch(Y[500, 50]),
      subset = catch(Y[c(1, 99999)]), fm_read = catch(fm_read(Y)),
      copy = catch({ Z <- Y; Z[1, 1] <- 2 }),
      fm_write = catch(fm_write(W, 1, 1000, 100)), assign = catch(W[1000, 100] <- 3),
      copy_old = catch(sum(C)), copy_elt = catch(C[1000, 100]))
  }, list(path = path))
  expect_true(all(got == "memkit_error_format"), info = paste(names(got), got, collapse = ", "))
  expect_length(got, 10L)
})

test_that("base `[` on a truncated file errors, and the mapping stays unusable after the file comes back", {
  skip_on_os("windows") # a mapped file can't be truncated there (?fm_open, Platforms)
  path <- fm_path()
  M <- matrix(as.double(seq_len(4096 * 8)), 4096, 8) # 32 pages of data
  as_fm(M, path)
  got <- child_error_classes(function(path) {
    library(memkit)
    catch <- function(expr) tryCatch({ expr; "no error" }, error = function(e) class(e)[[1L]])
    Y <- fm_open(path)
    full <- readBin(path, "raw", file.size(path))
    before <- Y[, 1]
    # Another program cuts the file in half: base `[` reads element by
    # element (ALTREP Elt) and meets the missing pages.
    writeBin(full[seq_len(length(full) %/% 2)], path)
    cut <- catch(Y[, 8])
    # The file comes back whole: the pages read while it was cut are not the
    # file's any more in this mapping, so every read stays an error.
    writeBin(full, path)
    c(first_column_read = identical(before, as.double(1:4096)),
      cut = cut, after_elt = catch(Y[4096, 8]), after_first = catch(Y[1, 1]),
      after_sum = catch(sum(Y)), after_read = catch(fm_read(Y, j = 8)),
      reopened = identical(fm_open(path)[4096, 8], 4096 * 8))
  }, list(path = path))
  expect_identical(got[["first_column_read"]], "TRUE")
  expect_identical(unname(got[c("cut", "after_elt", "after_first", "after_sum", "after_read")]),
                   rep("memkit_error_format", 5L))
  expect_identical(got[["reopened"]], "TRUE")
})

# ---- 4. FIFO ----------------------------------------------------------------------------

test_that("fm_open() of a FIFO is a file error at once, not a hang", {
  skip_if(Sys.which("mkfifo") == "", "no mkfifo")
  dir <- withr::local_tempdir()
  f <- file.path(dir, "pipe")
  expect_identical(system2("mkfifo", f), 0L)
  # And a saved reference whose file was replaced by a FIFO (C's own check).
  p <- file.path(dir, "m.bin")
  writeBin(as.double(1:4), p)
  s <- serialize(fm_open(p, type = "double", nrow = 2), NULL)
  got <- child_error_classes(function(f, p, s) {
    library(memkit)
    a <- tryCatch(fm_open(f), error = function(e) class(e)[[1L]])
    unlink(p)
    system2("mkfifo", p)
    b <- tryCatch(unserialize(s), error = function(e) class(e)[[1L]])
    c(a, b)
  }, list(f = f, p = p, s = s))
  expect_identical(got, c("memkit_error_file", "memkit_error_file"))
})

# ---- 5. dims R sees ------------------------------------------------------------------------

test_that("fm_read() and fm_apply() use the dim attribute R sees", {
  M <- matrix(as.double(1:12), 4, 3)
  Y <- fm_open(fm_info(as_fm(M, fm_path()))$path)
  dim(Y) <- c(12L, 1L)
  expect_identical(fm_apply(Y, colSums), colSums(Y))
  expect_identical(fm_apply(Y, colSums), 78)
  expect_identical(fm_apply(Y, rowSums, margin = 1, block_bytes = 32), as.double(1:12))
  expect_identical(fm_read(Y), matrix(as.double(1:12), 12, 1))
  expect_identical(fm_read(Y, i = 12), matrix(12, 1, 1))
})

# ---- 6. copies of mode "r" --------------------------------------------------------------------

test_that("a private copy sees later writes only on pages it has not changed (as documented)", {
  path <- fm_path()
  fm_create(path, 2048, 4) # 16 pages of data
  S <- fm_open(path)
  Y <- S
  Y[1, 1] <- -1 # Y gets its own copy of the first page only
  snap <- fm_read(Y)
  W <- fm_open(path, mode = "rw")
  fm_write(W, 7, i = 2, j = 1)    # on the page Y changed
  fm_write(W, 9, i = 1000, j = 4) # on a page Y never changed
  expect_identical(Y[2, 1], 0)    # not seen: Y's own page
  expect_identical(Y[1000, 4], 9) # seen: documented in ?fm_open
  expect_identical(S[2, 1], 7)    # the read-only view sees every write
  expect_identical(snap[1000, 4], 0) # fm_read() gives a snapshot
  expect_identical(fm_info(Y)$mode, "copy")
})

# ---- 7. data frames with matrix columns ------------------------------------------------------

test_that("as_fm() of a data frame keeps every column of a matrix column", {
  df <- data.frame(a = 1:3)
  df$m <- matrix(as.double(1:6), 3)
  df$n <- I(matrix(7:9, 3, dimnames = list(NULL, "z")))
  X <- as_fm(df, fm_path())
  expect_identical(dim(X), c(3L, 4L))
  expect_identical(X[, ], as.matrix(df))
  expect_error(as_fm(data.frame(a = 1:2, f = factor(c("u", "v"))), fm_path()),
               class = "memkit_error_type")
})

# ---- 8. headerless files rewritten -------------------------------------------------------------

test_that("readRDS() of a headerless reference notices data rewritten at the same size", {
  p <- withr::local_tempfile()
  writeBin(as.double(1:1e5), p)
  rds <- withr::local_tempfile(fileext = ".rds")
  saveRDS(fm_open(p, type = "double", nrow = 1e3), rds)
  expect_identical(readRDS(rds)[5, 1], 5)
  writeBin(as.double(1e5:1), p) # same size, other data
  err <- expect_error(readRDS(rds), class = "memkit_error_format")
  expect_match(conditionMessage(err), "changed")
  # Writes through a matrix open in mode "rw" are in the reference saved after them.
  W <- fm_open(p, mode = "rw", type = "double", nrow = 1e3)
  fm_write(W, 0, j = 1)
  saveRDS(W, rds)
  expect_identical(readRDS(rds)[1, 1], 0)
})

# ---- 9. fm_apply() proportional to the data --------------------------------------------------

test_that("fm_apply() of a 1-row raw matrix allocates about the data, not an index per column", {
  X <- fm_create(fm_path(), 1, 2e6, type = "raw", init = as.raw(1))
  before <- gc(reset = TRUE)[2, 2]
  n <- fm_apply(X, length)
  peak <- gc()[2, 6] - before
  expect_equal(sum(n), 2e6)
  expect_lt(peak, 20) # MB; splitting 1:2e6 by column took about 80
  expect_equal(fm_apply(X, function(b) ncol(b), block_bytes = 5e5), rep(5e5, 4))
})

# ---- 10. C gaps --------------------------------------------------------------------------------

test_that("a headerless offset that is not a multiple of the element size is refused", {
  p <- headerless_file()
  expect_error(fm_open(p, type = "double", nrow = 3, ncol = 4, offset = 20),
               class = "memkit_error_argument")
  expect_identical(fm_open(p, type = "raw", nrow = 4, ncol = 1, offset = 3)[, 1], as.raw(4:7))
})
