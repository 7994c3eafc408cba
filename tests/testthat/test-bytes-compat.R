# mem_bytes with vctrs and pillar (methods registered when they load), and
# without them.

test_that("vctrs combines mem_bytes with itself and with numbers into mem_bytes", {
  skip_if_not_installed("vctrs")
  x <- vctrs::vec_c(mem_bytes(1), 2)
  expect_s3_class(x, "mem_bytes")
  expect_identical(as.numeric(x), c(1, 2))
  y <- vctrs::vec_c(2L, mem_bytes("1 KiB"), mem_bytes(3))
  expect_s3_class(y, "mem_bytes")
  expect_identical(as.numeric(y), c(2, 1024, 3))
  expect_identical(vctrs::vec_ptype2(mem_bytes(1), 1), new_mem_bytes())
  expect_identical(vctrs::vec_ptype2(1L, mem_bytes(1)), new_mem_bytes())
  expect_identical(vctrs::vec_ptype_abbr(mem_bytes(1)), "bytes")
  expect_identical(vctrs::vec_cast(mem_bytes(c(5, NA)), double()), c(5, NA))
  expect_identical(vctrs::vec_cast(7, mem_bytes()), mem_bytes(7))
  expect_identical(vctrs::vec_cast(mem_bytes(2048), integer()), 2048L)
  expect_error(vctrs::vec_cast(mem_bytes(1.5), integer()), class = "memkit_error_type")
  # Data frames bind through the same methods.
  df <- vctrs::vec_rbind(data.frame(a = mem_bytes(1)), data.frame(a = 3))
  expect_s3_class(df$a, "mem_bytes")
  # Other classes are still refused.
  expect_error(vctrs::vec_c(mem_bytes(1), "a"), class = "vctrs_error_incompatible_type")
})

test_that("a tibble shows mem_bytes right-aligned with units, as <bytes>", {
  skip_if_not_installed("pillar")
  skip_if_not_installed("tibble")
  expect_identical(pillar::type_sum(mem_bytes(1)), "bytes")
  e <- new.env()
  e$big <- numeric(1e5)
  e$small <- 1
  e$mid <- numeric(200)
  sizes <- mem_ls(e)$size
  out <- withr::with_options(list(cli.num_colors = 1L, width = 80L),
                             capture.output(print(tibble::tibble(x = sizes))))
  head <- grep("<bytes>", out, fixed = TRUE)
  expect_length(head, 1L)
  rows <- out[-seq_len(head)]
  expect_length(rows, 3L)
  # Right-aligned: each row ends with a formatted size, all at one column.
  expect_true(all(endsWith(rows, format(sizes))))
  expect_length(unique(text_width(c(out[[head]], rows))), 1L)
  s <- pillar::pillar_shaft(mem_bytes(c(1, NA)))
  expect_identical(attr(s, "align"), "right")
})

test_that("loading memkit loads neither vctrs nor pillar; they get the methods when they load", {
  skip_if_not_installed("vctrs")
  skip_if_not_installed("pillar")
  res <- in_child(function() {
    library(memkit)
    before <- c("vctrs", "pillar") %in% loadedNamespaces()
    loadNamespace("vctrs")
    loadNamespace("pillar")
    list(before = before, combined = class(vctrs::vec_c(mem_bytes(1), 2)),
         type = pillar::type_sum(mem_bytes(1)))
  })
  expect_true(res$ok)
  expect_identical(res$value$before, c(FALSE, FALSE))
  expect_identical(res$value$combined, "mem_bytes")
  expect_identical(res$value$type, "bytes")
  # And the other way round: vctrs already loaded when memkit loads.
  res <- in_child(function() {
    loadNamespace("vctrs")
    library(memkit)
    class(vctrs::vec_c(mem_bytes(1), 2))
  })
  expect_true(res$ok)
  expect_identical(res$value, "mem_bytes")
})

test_that("without vctrs and pillar installed, mem_bytes works as before", {
  skip_on_cran()
  # A fresh R whose libraries hold memkit and cli but, where R's own set-up
  # allows, neither vctrs nor pillar.
  lib <- withr::local_tempdir()
  empty <- withr::local_tempdir()
  for (pkg in c("memkit", "cli")) {
    ok <- file.symlink(find.package(pkg), file.path(lib, pkg))
    skip_if_not(ok, "symbolic links not available")
  }
  out <- withr::local_tempfile(fileext = ".rds")
  script <- withr::local_tempfile(fileext = ".R")
  writeLines(c(
    "have <- vapply(c('vctrs', 'pillar'), requireNamespace, logical(1), quietly = TRUE)",
    "library(memkit)",
    "x <- c(mem_bytes(1), 2048)",
    "saveRDS(list(have = have, printed = utils::capture.output(print(x)), class = class(x),",
    "             df = utils::capture.output(print(data.frame(x = x)))), commandArgs(TRUE)[[1L]])"
  ), script)
  status <- system2(file.path(R.home("bin"), "Rscript"), c("--vanilla", shQuote(script), shQuote(out)),
                    env = c(sprintf("R_LIBS=%s", lib), sprintf("R_LIBS_SITE=%s", empty),
                            sprintf("R_LIBS_USER=%s", empty)),
                    stdout = FALSE, stderr = FALSE)
  expect_identical(status, 0L)
  res <- readRDS(out)
  skip_if(any(res$have), "vctrs or pillar is in a library R always searches")
  expect_identical(res$class, "mem_bytes")
  expect_identical(res$printed, capture.output(print(c(mem_bytes(1), 2048))))
  expect_identical(res$df, capture.output(print(data.frame(x = c(mem_bytes(1), 2048)))))
})
