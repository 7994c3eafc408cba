# with_mem_limit(): how far past the limit a runaway allocation gets before it
# is stopped (20 fresh R processes), and what the watch costs an expression
# that stays under its limit (paired, interleaved runs in one process).
#
#   flock /tmp/memkit-bench.lock Rscript bench/limits.R
#
# Writes bench/results/limits.md. Run from the package root, with memkit
# installed (the first library in .libPaths() or R_LIBS). MEMKIT_BENCH_PAIRS
# sets the number of paired rounds of the overhead part (default 30);
# MEMKIT_BENCH_PARTS picks parts ("runaway,overhead", the default: both; with
# one, the results are printed and not written).
if (dir.exists("bench/lib")) .libPaths(c("bench/lib", .libPaths()))
if (nzchar(Sys.getenv("R_LIBS"))) .libPaths(c(strsplit(Sys.getenv("R_LIBS"), ":")[[1L]], .libPaths()))
suppressPackageStartupMessages(library(memkit))
options(memkit.progress = FALSE)
source(file.path("bench", "common.R"))
out <- character()
say <- function(...) out <<- c(out, paste0(...))
pct <- function(r) sprintf("%+.2f%%", 100 * (r - 1))

cpu <- tryCatch({
  l <- grep("^model name", readLines("/proc/cpuinfo"), value = TRUE)
  sprintf("%s x %d", sub("^model name\\s*:\\s*", "", l[[1L]]), length(l))
}, error = function(e) "unknown")
commit <- tryCatch(system2("git", c("rev-parse", "--short", "HEAD"), stdout = TRUE),
                   error = function(e) "unknown")
script_hash <- substr(unname(tools::md5sum(file.path("bench", "limits.R"))), 1L, 8L)
say("## Limits: with_mem_limit() (`bench/limits.R`)")
say("")
say(bench_stamp(file.path("bench", "limits.R")))
say("")
say(sprintf("Machine: %s, %s; %s. memkit %s (commit %s, bench/limits.R %s), run %s.",
            cpu, utils::sessionInfo()$running, R.version.string, utils::packageVersion("memkit"),
            commit, script_hash, format(Sys.time(), "%Y-%m-%d %H:%M UTC", tz = "UTC")))
say("")

# ---- a runaway allocation, 20 times --------------------------------------------
child <- tempfile(fileext = ".R")
writeLines(c(
  sprintf(".libPaths(c(%s))", paste(deparse(.libPaths()), collapse = "")),
  "nt <- function() length(list.files('/proc/self/task'))",
  "nf <- function() length(list.files('/proc/self/fd'))",
  "loadNamespace('memkit')",
  "before <- c(nt(), nf())",
  "t0 <- proc.time()[['elapsed']]",
  "e <- tryCatch(memkit::with_mem_limit(x <- lapply(1:1e4, function(i) numeric(1e5)), '500 MB'),",
  "              error = function(e) e)",
  "secs <- proc.time()[['elapsed']] - t0",
  "hwm <- as.numeric(sub('\\\\D*(\\\\d+).*', '\\\\1', grep('^VmHWM', readLines('/proc/self/status'), value = TRUE))) * 1024",
  "after <- c(nt(), nf())",
  "y <- numeric(5e7); y[] <- 1; ok <- sum(y) == 5e7",
  "for (i in 1:2e6) NULL",
  "cat(class(e)[[1L]], as.numeric(e$value), hwm, secs, identical(before, after), ok, exists('x'), '\\n')"
), child)
parts <- strsplit(Sys.getenv("MEMKIT_BENCH_PARTS", "runaway,overhead"), ",")[[1L]]
if ("runaway" %in% parts) {
say("### A runaway allocation")
say("")
say("`with_mem_limit(x <- lapply(1:1e4, function(i) numeric(1e5)), \"500 MB\")` (8 GB if it ran to the end),")
say("each run in a fresh R process. \"Peak\" is the process's `VmHWM` after the stop: all it ever held,")
say("R's own start-up memory included. Goal: the classed error, at most 600 MB, every time; then the")
say("session allocates 400 MB and runs a loop with its threads and descriptors as before.")
say("")
say("| run | condition | reading that passed | peak (VmHWM) | seconds | threads, fds as before | session goes on | `x` assigned |")
say("|---|---|---|---|---|---|---|---|")
res <- list()
for (i in 1:20) {
  message("runaway: run ", i)
  line <- system2(file.path(R.home("bin"), "Rscript"), c("--vanilla", child), stdout = TRUE, stderr = FALSE)
  f <- strsplit(trimws(line[length(line)]), " ")[[1L]]
  res[[i]] <- f
  say(sprintf("| %d | %s | %.1f MB | %.1f MB | %.2f | %s | %s | %s |", i, f[[1L]], as.numeric(f[[2L]]) / 1e6,
              as.numeric(f[[3L]]) / 1e6, as.numeric(f[[4L]]), f[[5L]], f[[6L]], f[[7L]]))
}
cls <- vapply(res, `[[`, "", 1L)
hwm <- vapply(res, function(f) as.numeric(f[[3L]]), 0)
same <- vapply(res, `[[`, "", 5L) == "TRUE"
goes_on <- vapply(res, `[[`, "", 6L) == "TRUE"
met <- all(cls == "memkit_error_memory_limit") && all(hwm <= 6e8) && all(same) && all(goes_on)
say("")
say(sprintf("* %d of 20 runs stopped with `memkit_error_memory_limit`; peak %.1f to %.1f MB (median %.1f MB); threads and descriptors as before in %d of 20; the session went on in %d of 20 (goal: all 20, at most 600 MB: %s).",
            sum(cls == "memkit_error_memory_limit"), min(hwm) / 1e6, max(hwm) / 1e6, stats::median(hwm) / 1e6,
            sum(same), sum(goes_on), if (met) "met" else "NOT met"))
say("")
}

# ---- the cost under the limit -------------------------------------------------------
if ("overhead" %in% parts) {
workload <- alloc_workload   # bench/common.R
variants <- list(
  "plain" = function() workload(),
  "with_mem_limit(, \"20 GB\")" = function() with_mem_limit(workload(), "20 GB")
)
runs <- max(10L, as.integer(Sys.getenv("MEMKIT_BENCH_PAIRS", "30")))
# CPU time of R's main thread in seconds (Linux: the first field of
# schedstat, nanoseconds on a CPU), and of the whole process.
main_cpu <- function() {
  f <- sprintf("/proc/self/task/%d/schedstat", Sys.getpid())
  as.numeric(strsplit(readLines(f), " ")[[1L]][[1L]]) / 1e9
}
proc_cpu <- function() { p <- proc.time(); p[["user.self"]] + p[["sys.self"]] }
load_at_start <- tryCatch(paste(strsplit(readLines("/proc/loadavg"), " ")[[1L]][1:3], collapse = " "),
                          error = function(e) "unknown")
invisible(workload()); invisible(workload())
times <- matrix(NA_real_, runs, length(variants), dimnames = list(NULL, names(variants)))
mcpu <- pcpu <- times
for (r in seq_len(runs)) {
  message("overhead: round ", r, " of ", runs)
  ord <- ((seq_along(variants) + r - 2L) %% length(variants)) + 1L
  for (k in ord) {
    invisible(gc())
    m0 <- main_cpu()
    p0 <- proc_cpu()
    t0 <- memkit:::mono_now()
    invisible(variants[[k]]())
    times[r, k] <- memkit:::mono_now() - t0
    mcpu[r, k] <- main_cpu() - m0
    pcpu[r, k] <- proc_cpu() - p0
  }
}
ratios <- times / times[, "plain"]
med <- apply(ratios, 2L, stats::median)
mratios <- mcpu / mcpu[, "plain"]
mmed <- apply(mratios, 2L, stats::median)
pratios <- pcpu / pcpu[, "plain"]
pmed <- apply(pratios, 2L, stats::median)
say("### The cost under the limit")
say("")
say(sprintf("Workload: 8000 vectors of 160 kB built, summed and dropped, and a list of strings refilled (as in `bench/profile.R`); %d paired, interleaved rounds, median plain run %.2f s. Load average at the start: %s.",
            runs, stats::median(times[, "plain"]), load_at_start))
say("")
say("The expression runs on R's main thread; the watch runs on the sampler thread, on the other core.")
say("\"Main thread CPU\" is the time R's thread spent on a CPU (`schedstat`), what the expression costs")
say("whatever else the machine is doing; \"elapsed\" is what a user waits, and on a shared, loaded")
say("machine it moves by more than the effect measured; \"process CPU\" adds the sampler thread's own work.")
say("The goal (<= +1%) is judged on main-thread CPU.")
say("")
say("| variant | median elapsed (s) | elapsed ratio (median of pairs, 95% interval) | main thread CPU ratio (95% interval) | process CPU ratio (95% interval) | goal |")
say("|---|---|---|---|---|---|")
for (v in names(variants)) {
  ci <- median_ci(ratios[, v])
  mci <- median_ci(mratios[, v])
  pci <- median_ci(pratios[, v])
  goal <- if (v == names(variants)[[2L]]) sprintf("main thread <= +1%%: %s", if (mmed[[v]] <= 1.01) "met" else "NOT met") else ""
  say(sprintf("| %s | %.3f | %s (%s to %s) | %s (%s to %s) | %s (%s to %s) | %s |", v, stats::median(times[, v]),
              pct(med[[v]]), pct(ci[[1L]]), pct(ci[[2L]]), pct(mmed[[v]]), pct(mci[[1L]]), pct(mci[[2L]]),
              pct(pmed[[v]]), pct(pci[[1L]]), pct(pci[[2L]]), goal))
}
say("")

}

if (all(c("runaway", "overhead") %in% parts)) {
  dir.create("bench/results", showWarnings = FALSE, recursive = TRUE)
  writeLines(out, "bench/results/limits.md")
}
cat(out, sep = "\n")
