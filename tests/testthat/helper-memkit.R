# Shared test helpers.

# Cells in use after a full collection, as reported by gc(). Called twice
# because the first call's own result is garbage that the second frees.
gc_cells <- function() {
  gc(full = TRUE)
  g <- gc(full = TRUE)
  c(ncells = g[1L, 1L], vcells = g[2L, 1L])
}

skip_if_not_linux <- function() {
  skip_if_not(Sys.info()[["sysname"]] == "Linux", "Linux only")
}

# Skip where `fun` is documented unsupported (R/platforms.R), and only there.
# test-platforms.R checks that every test calling such a function has this
# skip, in its block or at the top of its file.
skip_if_unsupported <- function(fun) {
  skip_if(!memkit:::platform_supports(fun),
          sprintf("%s() is not supported on %s", fun, memkit:::platform_os()))
}

# callr's process library replaces R's SIGCHLD handler while its child runs;
# told to pass each signal on to the handler it replaced, parallel (which
# these tests also use, through mclapply()) still learns that its forked
# children ended. Otherwise R waits 10 s on exit from the test process and
# prints "Error while shutting down parallel: unable to terminate some child
# processes". Read each time the handler is installed.
Sys.setenv(PROCESSX_NOTIFY_OLD_SIGCHLD = "true")

# Run `fun` in a fresh R process and return its value (crash paths are tested
# there, never in the test process). Returns a list(ok, value, error, status).
in_child <- function(fun, args = list(), timeout = 120) {
  skip_if_not_installed("callr")
  res <- tryCatch(
    list(ok = TRUE, value = callr::r(fun, args = args, timeout = timeout,
                                     libpath = .libPaths())),
    error = function(e) list(ok = FALSE, error = e,
                             status = if (!is.null(e$status)) e$status else NA)
  )
  res
}

# Under valgrind the process's resident memory includes valgrind's shadow of
# every allocation: sizes measured from it are not the program's.
skip_if_valgrind <- function() {
  skip_if(nzchar(Sys.getenv("MEMKIT_VALGRIND")), "resident sizes are valgrind's under valgrind")
}

# Interrupts reach R only where R handles SIGINT: a process started with
# SIGINT ignored (a background job of a non-interactive shell, some batch
# systems) never gets one, and with_mem_limit() says so with an
# `unsupported` error. Tests of interrupts skip there.
skip_if_interrupts_ignored <- function() {
  skip_on_os("windows")
  handled <- tryCatch({
    with_mem_limit(NULL, 1e15)
    TRUE
  }, memkit_error_unsupported = function(e) FALSE)
  skip_if_not(handled, "SIGINT is ignored in this process: no interrupt can reach R")
}
