# Runs memkit's testthat suite against the memkit installed in the first
# library of .libPaths(). Used by the sanitizer and valgrind scripts.
# Exits non-zero if any test fails. MEMKIT_TEST_FILTER narrows the files.
library(testthat)
library(memkit)
filter <- Sys.getenv("MEMKIT_TEST_FILTER", "")
res <- testthat::test_dir(
  file.path(Sys.getenv("MK_ROOT"), "tests", "testthat"),
  package = "memkit", load_package = "installed",
  filter = if (nzchar(filter)) filter else NULL,
  reporter = testthat::SummaryReporter$new(show_praise = FALSE),
  stop_on_failure = FALSE
)
df <- as.data.frame(res)
failed <- sum(df$failed) + sum(df$error)
cat(sprintf("test blocks: %d of %d ran to the end (not skipped)\n", sum(!df$skipped), nrow(df)))
cat(sprintf("tests: %d passed, %d failed\n", sum(df$passed), failed))
quit(status = if (failed > 0) 1L else 0L)
