# Profiling benchmarks: mem_profile()'s sampler overhead, the peaks memkit,
# peakRAM and bench::bench_memory() report on the same workloads, and the
# hit rates of mem_leaks() on the four leak fixtures.
#
#   flock /tmp/memkit-bench.lock Rscript bench/profile.R
#
# Writes bench/results/profile.md. Run from the package root, with memkit
# installed (the first library in .libPaths() or R_LIBS).
#
# MEMKIT_BENCH_PARTS picks parts ("overhead,peaks,leaks", the default: all);
# with only some, the results are printed and not written. The leak part
# takes about half an hour. MEMKIT_BENCH_PAIRS sets the number of paired
# rounds of the overhead part (default 30, at least 10): on a virtual machine
# where single runs of memory-bound code vary by 10-30%, ten rounds leave the
# median uncertain by several percent.
if (dir.exists("bench/lib")) .libPaths(c("bench/lib", .libPaths()))
if (nzchar(Sys.getenv("R_LIBS"))) .libPaths(c(strsplit(Sys.getenv("R_LIBS"), ":")[[1L]], .libPaths()))
suppressPackageStartupMessages(library(memkit))
options(memkit.progress = FALSE)
has <- function(pkg) requireNamespace(pkg, quietly = TRUE)
out <- character()
say <- function(...) out <<- c(out, paste0(...))
mib <- function(b) sprintf("%.1f MiB", as.numeric(b) / 2^20)
pct <- function(r) sprintf("%+.2f%%", 100 * (r - 1))
ns <- asNamespace("memkit")
parts <- strsplit(Sys.getenv("MEMKIT_BENCH_PARTS", "overhead,peaks,leaks"), ",")[[1L]]
all_parts <- all(c("overhead", "peaks", "leaks") %in% parts)
source(file.path("bench", "common.R"))

# ---- the machine ------------------------------------------------------------
si <- utils::sessionInfo()
cpu <- tryCatch({
  l <- grep("^model name", readLines("/proc/cpuinfo"), value = TRUE)
  sprintf("%s x %d", sub("^model name\\s*:\\s*", "", l[[1L]]), length(l))
}, error = function(e) "unknown")
ver <- function(p) if (has(p)) as.character(utils::packageVersion(p)) else "not installed"
say("## Profiling: mem_profile(), mem_peak(), mem_leaks()")
say("")
say(bench_stamp(file.path("bench", "profile.R")))
say("")
say(sprintf("Machine: %s, %s; %s. memkit %s, peakRAM %s, bench %s. %s.",
            cpu, si$running, R.version.string, ver("memkit"), ver("peakRAM"), ver("bench"),
            format(Sys.time(), "%Y-%m-%d %H:%M UTC", tz = "UTC")))
say("The machine is shared with other work, so timings are noisy; every comparison is")
say("paired and interleaved in one process, and the median of the paired ratios is reported.")
say("")

# ---- overhead -----------------------------------------------------------------
# Allocation-heavy: many short-lived vectors and a growing list, ~1 s a run.
workload <- alloc_workload   # bench/common.R

if ("overhead" %in% parts) {
  sampler_only <- function(interval) {
    s <- .Call(ns$ffi_sampler_start, interval)
    on.exit(.Call(ns$ffi_sampler_stop, s))
    workload()
  }
  variants <- list(
    "plain" = function() workload(),
    "sampler 10 ms" = function() sampler_only(0.01),
    "sampler 1 ms" = function() sampler_only(0.001),
    "mem_profile() 10 ms" = function() mem_profile(workload(), interval = 0.01),
    "mem_profile() 1 ms" = function() mem_profile(workload(), interval = 0.001)
  )
  if (has("peakRAM")) variants[["peakRAM::peakRAM()"]] <- function() peakRAM::peakRAM(workload())
  if (has("bench")) variants[["bench::bench_memory()"]] <- function() bench::bench_memory(workload())

  runs <- max(10L, as.integer(Sys.getenv("MEMKIT_BENCH_PAIRS", "30")))
  load_at_start <- tryCatch(paste(strsplit(readLines("/proc/loadavg"), " ")[[1L]][1:3], collapse = " "),
                            error = function(e) "unknown")
  invisible(workload()); invisible(workload()) # warm up: byte compilation, heap growth
  times <- matrix(NA_real_, runs, length(variants), dimnames = list(NULL, names(variants)))
  cpu <- times
  cpu_now <- function() { p <- proc.time(); p[["user.self"]] + p[["sys.self"]] }
  for (r in seq_len(runs)) {
    message("overhead: round ", r, " of ", runs)
    # Rotate the order in each round so no variant always runs first.
    ord <- ((seq_along(variants) + r - 2L) %% length(variants)) + 1L
    for (k in ord) {
      invisible(gc())
      c0 <- cpu_now()
      t0 <- memkit:::mono_now()
      invisible(variants[[k]]())
      times[r, k] <- memkit:::mono_now() - t0
      cpu[r, k] <- cpu_now() - c0
    }
  }
  ratios <- times / times[, "plain"]
  med <- apply(ratios, 2L, stats::median)
  cpu_med <- apply(cpu / cpu[, "plain"], 2L, stats::median)
  goal <- c("sampler 10 ms" = 1.01, "sampler 1 ms" = 1.03)
  say("### Overhead")
  say("")
  say(sprintf("Workload: 8000 vectors of 160 kB built, summed and dropped, and a list of strings refilled; %d paired runs, median plain run %.2f s.",
              runs, stats::median(times[, "plain"])))
  say("\"sampler\" is the C sampler thread alone (what the goal is about); \"mem_profile()\" adds the GC")
  say("tracer, the exact peak and the result object. The goal is the slowdown of the workload: its")
  say("elapsed time, what a user waits. CPU time (user + system, all threads of the process) adds the")
  say("sampler thread's own work on the other core (each timed wake-up costs tens of microseconds of")
  say("CPU on a virtual machine; the reading itself about one), shown alongside.")
  say("")
  say(sprintf("Load average when the runs started: %s.", load_at_start))
  say("")
  say("| variant | median elapsed (s) | elapsed ratio (median of pairs) | median CPU (s) | CPU ratio (median of pairs) | goal |")
  say("|---|---|---|---|---|---|")
  for (v in names(variants)) {
    g <- if (v %in% names(goal)) {
      sprintf("elapsed <= %s: %s", pct(goal[[v]]), if (med[[v]] <= goal[[v]]) "met" else "NOT met")
    } else ""
    say(sprintf("| %s | %.3f | %.4f (%s) | %.3f | %.4f (%s) | %s |", v, stats::median(times[, v]),
                med[[v]], pct(med[[v]]), stats::median(cpu[, v]), cpu_med[[v]], pct(cpu_med[[v]]), g))
  }
  say("")
  for (v in names(goal)) {
    ci_e <- median_ci(ratios[, v])
    ci_c <- median_ci(cpu[, v] / cpu[, "plain"])
    say(sprintf("* %s: 95%% interval for the median ratio, elapsed %s to %s, CPU %s to %s.",
                v, pct(ci_e[[1L]]), pct(ci_e[[2L]]), pct(ci_c[[1L]]), pct(ci_c[[2L]])))
  }
  if (!has("peakRAM")) say("\npeakRAM is not installed: its rows are missing.")
  if (!has("bench")) say("\nbench is not installed: its rows are missing.")
  say("")
}

# ---- what each reports ------------------------------------------------------------
if ("peaks" %in% parts) {
  big <- function() {
    x <- numeric(6.25e7) # 500 MB, written (zero-filled)
    rm(x)
    invisible(NULL)
  }
  spike <- function() {
    x <- numeric(2.5e7) # 200 MB for a fraction of a second
    rm(x)
    invisible(gc())
  }
  report <- function(name, expr_fun) {
    invisible(gc())
    pk <- mem_peak(expr_fun())
    invisible(gc())
    p10 <- mem_profile(expr_fun(), interval = 0.01)
    invisible(gc())
    p1s <- mem_profile(expr_fun(), interval = 1)
    pr <- if (has("peakRAM")) {
      invisible(gc())
      r <- peakRAM::peakRAM(expr_fun())
      sprintf("%.1f MiB", r$Peak_RAM_Used_MiB)
    } else "not installed"
    bm <- if (has("bench")) {
      invisible(gc())
      m <- bench::bench_memory(expr_fun())
      sprintf("%.1f MiB", as.numeric(m$mem_alloc) / 2^20)
    } else "not installed"
    smax <- function(p) max(as.numeric(p$samples$rss)) - as.numeric(p$baseline)
    say(sprintf("| %s | %s | %s (%s) | %s / %s | %s / %s | %s | %s |", name, mib(pk),
                mib(attr(pk, "heap")), attr(pk, "method"),
                mib(p10$peak - p10$baseline), mib(smax(p10)),
                mib(p1s$peak - p1s$baseline), mib(smax(p1s)), pr, bm))
    list(pk = pk, p10 = p10, p1s = p1s)
  }
  message("peaks")
  say("### Peaks: what each tool reports")
  say("")
  say("`mem_peak()` is resident memory above the baseline by the kernel's high-water mark, with the R heap's")
  say("peak alongside; `mem_profile()` gives the same exact peak and its largest sample; peakRAM reports the")
  say("R heap's \"max used\" (after forcing collections); `bench::bench_memory()` the bytes R allocated for")
  say("large vectors.")
  say("")
  say("| workload | mem_peak() | its R heap (method) | mem_profile(10 ms): exact / largest sample | mem_profile(1 s): exact / largest sample | peakRAM | bench_memory() |")
  say("|---|---|---|---|---|---|---|")
  r_big <- report("allocate and write 500 MB, free it", big)
  r_spike <- report("200 MB for a fraction of a second", spike)
  r_work <- report("the overhead workload", workload)
  say("")
  err <- abs(as.numeric(r_big$pk) / 5e8 - 1)
  say(sprintf("* 500 MB: `mem_peak()` = %s, %.2f%% from 500 MB (goal within 5%%: %s).",
              mib(r_big$pk), 100 * err, if (err <= 0.05) "met" else "NOT met"))
  sampled <- max(as.numeric(r_spike$p1s$samples$rss)) - as.numeric(r_spike$p1s$baseline)
  exact <- as.numeric(r_spike$p1s$peak - r_spike$p1s$baseline)
  say(sprintf("* A 200 MB spike inside one 1 s interval: exact peak %s, largest sample %s (goal: the spike shows in the exact peak: %s).",
              mib(exact), mib(sampled), if (exact > 1.9e8) "met" else "NOT met"))
}

# ---- threads and descriptors --------------------------------------------------------
if ("peaks" %in% parts) {
  nt <- function() length(list.files("/proc/self/task"))
  nf <- function() length(list.files("/proc/self/fd"))
  before <- c(nt(), nf())
  during <- NULL
  invisible(mem_profile(during <- c(nt(), nf())))
  after_ok <- c(nt(), nf())
  try(mem_profile(stop("boom")), silent = TRUE)
  after_err <- c(nt(), nf())
  say(sprintf("* Threads / open descriptors: %d / %d before, %d / %d during (sampler and GC tracer), %d / %d after, %d / %d after an error (goal: back to before: %s).",
              before[1], before[2], during[1], during[2], after_ok[1], after_ok[2], after_err[1], after_err[2],
              if (identical(before, after_ok) && identical(before, after_err)) "met" else "NOT met"))
  say("")
}

# ---- leak fixtures ------------------------------------------------------------------
if ("leaks" %in% parts) {
  say("### Leak checks: the four fixtures, 20 times each")
  say("")
  so <- NULL
  src <- "tests/testthat/leak-fixture.c"
  if (file.exists(src)) {
    dir <- tempfile("leakfixture")
    dir.create(dir)
    file.copy(src, file.path(dir, "leakfixture.c"))
    so <- file.path(dir, paste0("leakfixture", .Platform$dynlib.ext))
    system2(file.path(R.home("bin"), "R"), c("CMD", "SHLIB", "-o", shQuote(so),
                                              shQuote(file.path(dir, "leakfixture.c"))),
            stdout = FALSE, stderr = FALSE)
    if (!file.exists(so)) so <- NULL
  }
  fixtures <- list(
    "global list growing 1 KB a call" = list(want = "R heap", make = function() {
      store <- new.env(); store$items <- list()
      function() { store$items[[length(store$items) + 1L]] <- raw(1024); invisible() }
    }),
    "C routine leaking 10 KB a call" = list(want = "native", make = if (!is.null(so)) {
      sym <- getNativeSymbolInfo("leak_native", dyn.load(so))
      function() function() .Call(sym, 10240)
    }),
    "10 MB built and dropped" = list(want = "none", make = function() {
      function() { x <- numeric(1.25e6); x[[1L]] <- 1; invisible() }
    }),
    "cache filling over 5 calls, then flat" = list(want = "none", make = function() {
      cache <- new.env()
      function() {
        if (length(cache) < 5L) assign(sprintf("k%d", length(cache)), numeric(1e4), envir = cache)
        invisible()
      }
    })
  )
  say("`mem_leaks(f, n = 100, warmup = 10)` on a fresh fixture each time.")
  say("")
  say("| fixture | expected | hits / 20 | bytes per call (median, range) | confidence (min) | seconds per check |")
  say("|---|---|---|---|---|---|")
  for (nm in names(fixtures)) {
    message("leak fixture: ", nm)
    fx <- fixtures[[nm]]
    if (is.null(fx$make)) {
      say(sprintf("| %s | %s | skipped: no C compiler | | | |", nm, fx$want))
      next
    }
    res <- lapply(1:20, function(i) {
      t0 <- memkit:::mono_now()
      r <- mem_leaks(fx$make(), n = 100, warmup = 10)
      list(verdict = r$verdict, bpc = as.numeric(r$bytes_per_call), conf = r$confidence,
           secs = memkit:::mono_now() - t0)
    })
    verdicts <- vapply(res, `[[`, "", "verdict")
    bpc <- vapply(res, `[[`, 0, "bpc")
    say(sprintf("| %s | %s | %d | %s (%s to %s) | %.2f | %.1f |", nm, fx$want, sum(verdicts == fx$want),
                format(mem_bytes(stats::median(bpc))), format(mem_bytes(min(bpc))),
                format(mem_bytes(max(bpc))), min(vapply(res, `[[`, 0, "conf")),
                stats::median(vapply(res, `[[`, 0, "secs"))))
    if (any(verdicts != fx$want)) {
      say(sprintf("|  | misses: %s | | | | |", paste(unique(verdicts[verdicts != fx$want]), collapse = ", ")))
    }
  }
  say("")
}

if (all_parts) {
  dir.create("bench/results", showWarnings = FALSE, recursive = TRUE)
  writeLines(out, "bench/results/profile.md")
}
cat(out, sep = "\n")
