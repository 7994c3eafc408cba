# Printed tables pad and cut by display width: non-ASCII letters take one
# column, CJK ideographs two.

skip_if_not_utf8 <- function() {
  skip_if_not(isTRUE(l10n_info()[["UTF-8"]]), "needs a UTF-8 locale")
}

wide <- "\u6570\u636e"           # two ideographs, four columns
umlauts <- "\u00f6\u00e4"        # two letters, two columns

test_that("text_width() counts columns, not bytes or characters", {
  skip_if_not_utf8()
  expect_identical(text_width(c(wide, umlauts, "ab", NA, "")), c(4L, 2L, 2L, 2L, 0L))
  expect_identical(nchar(wide, type = "bytes"), 6L)
  expect_identical(text_width(character()), integer())
})

test_that("pad_text() and trim_text() work in columns", {
  skip_if_not_utf8()
  p <- pad_text(c(wide, umlauts, "a"))
  expect_identical(text_width(p), c(4L, 4L, 4L))
  expect_identical(p[[2L]], paste0(umlauts, "  "))
  r <- pad_text(c(wide, "a"), 6L, "right")
  expect_identical(r, c(paste0("  ", wide), "     a"))
  # Wider than asked: left as it is.
  expect_identical(pad_text(wide, 2L), wide)
  expect_identical(trim_text(paste0(wide, "xyz"), 5L), paste0(wide, "x"))
  expect_identical(trim_text(c("abcdef", NA), 3L, ellipsis = "~"), c("ab~", NA))
  expect_identical(pad_text(character()), character())
})

test_that("table_lines() lays out a table as print.data.frame() does", {
  df <- data.frame(name = c("x", "longer"), size = c("1 B", "10 KiB"), stringsAsFactors = FALSE)
  expect_identical(table_lines(df), capture.output(print(df, right = FALSE, row.names = FALSE)))
  expect_identical(table_lines(df, align = "right", row_names = c("a", "bb")),
                   capture.output(print(`rownames<-`(df, c("a", "bb")), right = TRUE)))
  expect_identical(table_lines(df, header = FALSE)[[1L]], " x      1 B   ")
  # Too wide for the console: further blocks of columns, as print() makes.
  wide_df <- data.frame(a = strrep("a", 30), b = strrep("b", 30), c = strrep("c", 30),
                        stringsAsFactors = FALSE)
  for (w in c(40L, 70L, 100L)) {
    expect_identical(table_lines(wide_df, align = "right", row_names = "1", width = w),
                     withr::with_options(list(width = w), capture.output(print(wide_df))))
  }
})

test_that("rows with non-ASCII and wide names stay in line", {
  skip_if_not_utf8()
  e <- new.env()
  assign(umlauts, numeric(1000), e)
  assign(wide, numeric(10), e)
  assign("ab", 1:3 + 0, e)
  out <- capture.output(print(mem_ls(e)))[-1L]
  # The last column is padded too: every line is as wide as the header.
  expect_length(unique(text_width(out)), 1L)
  # The size column starts at the same column on every line.
  starts <- vapply(out[-1L], function(l) text_width(sub(" [0-9.]+ [KMG]?i?B .*$", "", l)), 1L)
  expect_length(unique(starts), 1L)

  x <- list(1, 2)
  names(x) <- c(wide, umlauts)
  out <- capture.output(print(mem_tree(x)))[-1L]
  expect_length(unique(text_width(sub("%.*$", "", out))), 1L)

  df <- data.frame(a = 1:3)
  df[[wide]] <- structure(1:3, class = paste0(wide, "_class"))
  out <- capture.output(print(mem_by_type(df)))[-1L]
  expect_length(unique(text_width(out)), 1L)
})

test_that("a long wide name is cut by columns, with room for the rest", {
  skip_if_not_utf8()
  x <- list(1)
  names(x) <- strrep(wide, 15L)   # 60 columns
  out <- capture.output(print(mem_tree(x), width = 60))
  expect_true(all(text_width(out) <= 60L))
  lab <- sub(" +[0-9.]+ [KMG]?i?B.*$", "", out[[3L]])
  expect_lte(text_width(lab), 40L)
})

test_that("tables with non-ASCII and wide names align (snapshots)", {
  skip_if_not_utf8()
  e <- new.env()
  assign(umlauts, numeric(1000), e)
  assign(wide, numeric(10), e)
  assign(paste0("\u5927", wide), list(e[[umlauts]], 1), e)
  assign("plain", 1:3 + 0, e)
  x <- list(1, "a", list(2), structure(1:2, class = paste0(wide, "_", umlauts)))
  names(x) <- c(wide, umlauts, "\u00e9t\u00e9", "k")
  names(x[[3L]]) <- paste0(wide, "\u8868")
  dup <- list(numeric(300), numeric(300))
  names(dup) <- c(wide, umlauts)
  expect_snapshot({
    mem_ls(e)
    mem_tree(x)
    mem_by_type(x)
    mem_dupes(dup, min_bytes = 0)
  })
})
