# What memkit cannot do on each platform: the one list that the functions'
# checks, the tests (tests/testthat/helper-memkit.R skips by it, and
# test-platforms.R checks that every test does) and the "Platforms" sections
# of the help follow. Names are exported functions; an OS absent here has
# everything.
platform_unsupported <- list(
  # R's GC reports are read through a pipe that a file() connection opens
  # by name (/dev/fd/N): Windows has no such name for a pipe.
  windows = c("gc_trace", "gc_trace_start", "gc_trace_stop")
)

platform_os <- function() {
  if (.Platform$OS.type == "windows") "windows" else tolower(Sys.info()[["sysname"]])
}

platform_supports <- function(fun) !fun %in% platform_unsupported[[platform_os()]]
