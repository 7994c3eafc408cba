# What memkit cannot do on each platform: the one list that the functions'
# checks, the tests (tests/testthat/helper-memkit.R skips by it, and
# test-platforms.R checks that every test does) and the "Platforms" sections
# of the help follow. Names are exported functions; an OS absent here has
# everything.
platform_unsupported <- list(
  # No POSIX signal to interrupt R's main thread with (?with_mem_limit).
  windows = "with_mem_limit"
)

# The OS, read once per session (Sys.info() costs tens of microseconds, and
# gc_trace() asks on every call).
the_platform <- new.env(parent = emptyenv())

platform_os <- function() {
  os <- the_platform$os
  if (is.null(os)) {
    os <- if (.Platform$OS.type == "windows") "windows" else tolower(Sys.info()[["sysname"]])
    the_platform$os <- os
  }
  os
}

platform_supports <- function(fun) is.na(match(fun, platform_unsupported[[platform_os()]]))
