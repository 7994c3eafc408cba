#' memkit: see and manage the memory R uses
#'
#' memkit extends the `object.size()`, `rm()` and `gc()` workflows:
#'
#' * **Sizes** that are right: `mem_size()` and friends count shared memory
#'   once, never expand compact (ALTREP) vectors and match `gc()`'s cell
#'   counts.
#' * **The session**: what removing objects would free, and a tidy `gc()`.
#' * **File-backed matrices**: data larger than memory in a memory-mapped file
#'   that base R functions use without copying.
#' * **The collector**: a trace of every garbage collection, a memory timeline
#'   with its peak, and leak checks.
#'
#' Every size is a [mem_bytes] number. Every error memkit raises has class
#' `memkit_error_<kind>` and `memkit_error`, so it can be caught precisely.
#'
#' @section Options:
#' Every option memkit reads (`memkit.units`, `memkit.progress`,
#' `memkit.block_bytes`, `memkit.copy_warn`) is listed with its default in
#' [memkit_options].
#'
#' @section Summaries:
#' `summary()` of a memkit result of class `<class>` gives an object of class
#' `summary_<class>` (`summary_gc_trace`, `summary_mem_profile`,
#' `summary_mem_leaks`) with a `print()` method of its own; where the
#' summary is a table it is also a data frame.
#'
#' @keywords internal
#' @useDynLib memkit, .registration = TRUE
"_PACKAGE"

.onLoad <- function(libname, pkgname) {
  # Methods for vctrs' and pillar's generics, when those packages load
  # (R/bytes-compat.R).
  register_bytes_methods()
}

# Process-wide state each family must release before the library goes.
.onUnload <- function(libpath) {
  unregister_bytes_hooks()
  gctrace_unload()
}
