# bench/manage.R: managing memory. mem_cache() get/set beside
# cachem::cache_mem() on the same keys and values, and mem_offload() /
# first use beside saveRDS() / readRDS() of the same objects. Writes
# bench/results/manage.md. Run under the benchmark lock:
#   flock /tmp/memkit-bench.lock Rscript bench/manage.R
.libPaths(c(file.path("bench", "lib"), .libPaths()))
suppressPackageStartupMessages(library(memkit))
source(file.path("bench", "common.R"))
if (!requireNamespace("cachem", quietly = TRUE)) stop("bench/manage.R needs cachem")
ver <- function(p) as.character(utils::packageVersion(p))

# ---- cache: get and set per operation ---------------------------------------
# Keys as memoise makes them (hashes); values of three kinds. Each round
# times one pass of n operations with each cache, the order alternating.
set.seed(1)
n <- 2000L
keys <- vapply(seq_len(n), function(i) paste(sample(c(letters[1:6], 0:9), 32, TRUE), collapse = ""),
               character(1))
value_sets <- list(
  "small vectors (runif(10))" = lapply(seq_len(n), function(i) runif(10)),
  "data frames (100 rows)" = lapply(seq_len(n), function(i) data.frame(x = runif(100), y = i)),
  "lists of 50 vectors" = lapply(seq_len(n), function(i) lapply(1:50, function(j) runif(20)))
)
rounds <- 15L

per_op <- function(expr_fun) {
  gc()
  t <- system.time(expr_fun())
  (t[["user.self"]] + t[["sys.self"]]) / n
}

cache_rows <- list()
for (vs in names(value_sets)) {
  vals <- value_sets[[vs]]
  total <- sum(vapply(vals, function(v) as.numeric(mem_size(v)), double(1)))
  for (budget in c("no eviction", "budget of half")) {
    max_size <- if (budget == "no eviction") 1e12 else total / 2
    res <- matrix(NA_real_, rounds, 4L, dimnames = list(NULL, c("mk_set", "cm_set", "mk_get", "cm_get")))
    for (r in seq_len(rounds)) {
      mk <- mem_cache(max_size)
      cm <- cachem::cache_mem(max_size = max_size)
      run <- function(cache, what) {
        if (what == "set") {
          function() for (i in seq_len(n)) cache$set(keys[[i]], vals[[i]])
        } else {
          function() for (i in seq_len(n)) cache$get(keys[[i]])
        }
      }
      if (r %% 2L == 1L) {
        res[r, "mk_set"] <- per_op(run(mk, "set"))
        res[r, "cm_set"] <- per_op(run(cm, "set"))
        res[r, "mk_get"] <- per_op(run(mk, "get"))
        res[r, "cm_get"] <- per_op(run(cm, "get"))
      } else {
        res[r, "cm_set"] <- per_op(run(cm, "set"))
        res[r, "mk_set"] <- per_op(run(mk, "set"))
        res[r, "cm_get"] <- per_op(run(cm, "get"))
        res[r, "mk_get"] <- per_op(run(mk, "get"))
      }
    }
    # Sizes each counts for the same values.
    mk <- mem_cache(1e12)
    cm <- cachem::cache_mem(max_size = 1e12)
    for (i in seq_len(n)) { mk$set(keys[[i]], vals[[i]]); cm$set(keys[[i]], vals[[i]]) }
    counted_cm <- environment(cm$set)$total_size_
    for (op in c("set", "get")) {
      a <- res[, paste0("mk_", op)]
      b <- res[, paste0("cm_", op)]
      ratio <- a / b
      cache_rows[[length(cache_rows) + 1L]] <- data.frame(
        values = vs, budget = budget, op = op,
        mk_us = stats::median(a) * 1e6, cm_us = stats::median(b) * 1e6,
        ratio = stats::median(ratio), lo = median_ci(ratio)[[1L]], hi = median_ci(ratio)[[2L]],
        mk_bytes = as.numeric(mk$bytes()), cm_bytes = counted_cm,
        stringsAsFactors = FALSE
      )
    }
  }
}
cache_tab <- do.call(rbind, cache_rows)
print(cache_tab)

# ---- offload and reload ------------------------------------------------------
dir <- tempfile("bench-manage-")
dir.create(dir)
m <- matrix(runif(5e7), ncol = 100)                                   # 400 MB
l <- lapply(1:2000, function(i) c(rep(i + 0.5, 5000), runif(5000)))   # 160 MB, half compressible
objs <- list(matrix = m, list = l)
reps <- 3L
off_rows <- list()
for (nm in names(objs)) {
  x <- objs[[nm]]
  t <- matrix(NA_real_, reps, 6L, dimnames = list(NULL, c("offload", "first_use", "full_use",
                                                            "saveRDS", "readRDS", "saveRDS_none")))
  for (r in seq_len(reps)) {
    e <- new.env()
    # Its own copy, so offloading frees it.
    e$x <- if (is.list(x)) lapply(x, function(v) v + 0) else x + 0
    gc()
    t[r, "offload"] <- system.time(out <- mem_offload("x", e, dir = dir))[["elapsed"]]
    t[r, "first_use"] <- system.time(y <- e$x)[["elapsed"]]
    t[r, "full_use"] <- system.time(s <- if (is.list(y)) sum(vapply(y, sum, 0)) else sum(y))[["elapsed"]]
    disk <- as.numeric(out$disk)
    storage <- out$moved$storage
    rm(y, e)
    f <- file.path(dir, "x.rds")
    t[r, "saveRDS"] <- system.time(saveRDS(x, f))[["elapsed"]]
    rds_size <- file.size(f)
    t[r, "readRDS"] <- system.time(y <- readRDS(f))[["elapsed"]]
    rm(y)
    t[r, "saveRDS_none"] <- system.time(saveRDS(x, f, compress = FALSE))[["elapsed"]]
    none_size <- file.size(f)
    unlink(list.files(dir, full.names = TRUE))
  }
  med <- apply(t, 2L, stats::median)
  off_rows[[nm]] <- list(size = as.numeric(mem_size(x)), storage = storage, med = med, disk = disk,
                         rds = rds_size, none = none_size)
}
unlink(dir, recursive = TRUE)

# ---- report ------------------------------------------------------------------
commit <- tryCatch(system2("git", c("rev-parse", "--short", "HEAD"), stdout = TRUE),
                   error = function(e) "unknown")
script_hash <- substr(unname(tools::md5sum(file.path("bench", "manage.R"))), 1L, 8L)
si <- utils::sessionInfo()
cpu <- tryCatch({
  l <- grep("^model name", readLines("/proc/cpuinfo"), value = TRUE)[1]
  trimws(sub(".*:", "", l))
}, error = function(e) "unknown", warning = function(e) "unknown")
mb <- function(b) format(mem_bytes(b))
worst <- max(cache_tab$ratio)
cache_lines <- sprintf("| %s | %s | %s | %.1f | %.1f | %.2f (%.2f-%.2f) | %s | %s |",
                       cache_tab$values, cache_tab$budget, cache_tab$op, cache_tab$mk_us,
                       cache_tab$cm_us, cache_tab$ratio, cache_tab$lo, cache_tab$hi,
                       vapply(cache_tab$mk_bytes, mb, ""), vapply(cache_tab$cm_bytes, mb, ""))
off_lines <- unlist(lapply(names(off_rows), function(nm) {
  o <- off_rows[[nm]]
  s <- o$med
  c(sprintf("| %s (%s) | `mem_offload()` (%s) | %.2f s | %.0f MB/s | %s |", nm, mb(o$size), o$storage,
            s[["offload"]], o$size / s[["offload"]] / 1e6, mb(o$disk)),
    sprintf("| %s | `saveRDS()` (gzip) | %.2f s | %.0f MB/s | %s |", nm, s[["saveRDS"]],
            o$size / s[["saveRDS"]] / 1e6, mb(o$rds)),
    sprintf("| %s | `saveRDS(compress = FALSE)` | %.2f s | %.0f MB/s | %s |", nm, s[["saveRDS_none"]],
            o$size / s[["saveRDS_none"]] / 1e6, mb(o$none)),
    sprintf("| %s | first use after `mem_offload()` | %.3f s | %s | |", nm, s[["first_use"]],
            if (s[["first_use"]] > 0) sprintf("%.0f MB/s", o$size / s[["first_use"]] / 1e6) else "instant"),
    sprintf("| %s | first use, then every element read | %.2f s | %.0f MB/s | |", nm,
            s[["first_use"]] + s[["full_use"]], o$size / (s[["first_use"]] + s[["full_use"]]) / 1e6),
    sprintf("| %s | `readRDS()` (gzip) | %.2f s | %.0f MB/s | |", nm, s[["readRDS"]],
            o$size / s[["readRDS"]] / 1e6))
}))
out <- c(
  "## manage: mem_cache() beside cachem, mem_offload() beside saveRDS() (`bench/manage.R`)",
  "",
  bench_stamp(file.path("bench", "manage.R")),
  "",
  sprintf("Machine: %s, %d cores; %s; %s. memkit %s (commit %s, bench/manage.R %s), cachem %s, run %s.",
          cpu, parallel::detectCores(), si$running, R.version.string, ver("memkit"), commit,
          script_hash, ver("cachem"), format(Sys.time(), "%Y-%m-%d %H:%M %Z")),
  "",
  "### Goals",
  "",
  "| goal | measured | status |",
  "|---|---|---|",
  sprintf("| `mem_cache()` get and set <= 1.5x `cachem::cache_mem()` per operation | worst %.2fx | %s |",
          worst, if (worst <= 1.5) "met" else "**not met**"),
  "",
  sprintf("### Cache operations (%d keys, %d rounds, CPU time per operation, order alternating)", n, rounds),
  "",
  "Both caches get the same keys (32 hex characters, as memoise's hashes) and values. \"budget of half\":",
  "`max_size` is half of what the values take, so every set past the first half evicts. The last two",
  "columns are what each cache counts for all the values (memkit: `mem_size()` of each; cachem:",
  "`object.size()` of each); the ratio's 95% interval is over the rounds.",
  "",
  "| values | budget | op | mem_cache (µs) | cache_mem (µs) | ratio | mem_cache counts | cachem counts |",
  "|---|---|---|---|---|---|---|---|",
  cache_lines,
  "",
  sprintf("### Offload and reload (median of %d, elapsed seconds, page cache warm)", reps),
  "",
  "The matrix goes to file-backed storage: its first use maps the file (no read), and the pages are",
  "read as they are used; the list is serialized with gzip, as `saveRDS()` does by default. Throughput",
  "is the object's size in memory over the time.",
  "",
  "| object | operation | time | throughput | on disk |",
  "|---|---|---|---|---|",
  off_lines,
  ""
)
dir.create(file.path("bench", "results"), showWarnings = FALSE)
writeLines(out, file.path("bench", "results", "manage.md"))
message("wrote bench/results/manage.md")
