# What memkit cannot do on each platform: the one list that the functions'
# checks, the tests (tests/testthat/helper-memkit.R skips by it, and
# test-platforms.R checks that every test does) and the "Platforms" sections
# of the help follow. Names are exported functions; an OS absent here has
# everything.
platform_unsupported <- list(
  # No POSIX signal to interrupt R's main thread with (?with_mem_limit).
  windows = "with_mem_limit"
)

platform_os <- function() {
  if (.Platform$OS.type == "windows") "windows" else tolower(Sys.info()[["sysname"]])
}

platform_supports <- function(fun) !fun %in% platform_unsupported[[platform_os()]]
