# Every .Call entry point under gctorture. Each file in tools/gctorture/
# adds cases to `cases`: a named list, one function per entry point (the
# name is the routine's), which calls it on small inputs and checks the
# result with stopifnot(). A case for an entry point that signals an error by
# design wraps the call in expect_mk_error().
.libPaths(c(Sys.getenv("R_LIBS"), .libPaths()))
suppressPackageStartupMessages(library(memkit))
ns <- asNamespace("memkit")
cases <- list()
expect_mk_error <- function(expr, kind) {
  cond <- tryCatch({ expr; NULL }, memkit_error = identity)
  if (is.null(cond) || !inherits(cond, paste0("memkit_error_", kind))) {
    stop("expected a memkit_error_", kind)
  }
  invisible(cond)
}
for (f in sort(list.files(file.path(Sys.getenv("MK_ROOT"), "tools", "gctorture"),
                          pattern = "[.]R$", full.names = TRUE))) {
  sys.source(f, envir = environment())
}
registered <- names(getDLLRegisteredRoutines("memkit")$.Call)
missing <- setdiff(registered, names(cases))
if (length(missing)) {
  cat("entry points without a gctorture case:", missing, sep = "\n  ")
  quit(status = 1L)
}
# MEMKIT_GCT_ONLY, a regular expression, runs only the entry points it matches.
only <- Sys.getenv("MEMKIT_GCT_ONLY", "")
if (nzchar(only)) registered <- grep(only, registered, value = TRUE)
step <- as.integer(Sys.getenv("MEMKIT_GCT_STEP", "1"))
failed <- character()
for (nm in registered) {
  t0 <- proc.time()[["elapsed"]]
  gctorture2(step)
  ok <- tryCatch({ cases[[nm]](); TRUE },
                 error = function(e) { gctorture(FALSE); message(nm, ": ", conditionMessage(e)); FALSE })
  gctorture(FALSE)
  cat(sprintf("%-32s %s (%.1fs)\n", nm, if (ok) "ok" else "FAILED", proc.time()[["elapsed"]] - t0))
  if (!ok) failed <- c(failed, nm)
}
if (length(failed)) quit(status = 1L)
