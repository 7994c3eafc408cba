# ?memkit_options lists every option memkit reads, with its default.

options_read_by_r <- function() {
  ns <- asNamespace("memkit")
  code <- unlist(lapply(ls(ns, all.names = TRUE), function(nm) {
    f <- get(nm, envir = ns)
    if (is.function(f)) deparse(f) else character()
  }))
  hits <- regmatches(code, gregexpr("getOption\\(\"memkit\\.[A-Za-z0-9_.]+\"", code))
  unique(sub("getOption\\(\"", "", sub("\"$", "", unlist(hits))))
}

test_that("?memkit_options names every option with its default", {
  found <- options_read_by_r()
  # The scan finds the options the R code reads (a check that it works).
  expect_true(all(c("memkit.units", "memkit.progress", "memkit.block_bytes") %in% found))
  # memkit.copy_warn is read by the C code (src/fm_altrep.c).
  opts <- union(found, "memkit.copy_warn")
  rd <- tools::Rd_db("memkit")[["memkit_options.Rd"]]
  skip_if(is.null(rd), "help pages not installed")
  text <- paste(as.character(rd), collapse = "")
  # Each option is an item of the list that starts with its default.
  for (o in opts) {
    expect_true(grepl(sprintf("\\item{\\code{%s}}{Default ", o), text, fixed = TRUE), label = o)
  }
})
