# Sourced by bench/fm.R when MEMKIT_BENCH_GROW=only (not a family of its own:
# bench/run.R skips it). Writes bench/results/fm-grow.txt.
#
#   MEMKIT_BENCH_GROW=only flock /tmp/memkit-bench.lock Rscript bench/fm.R
#
# Sizes: MEMKIT_BENCH_CSV_ROWS (default 1e7 rows x 20 columns, about 2 GB of
# text), MEMKIT_BENCH_APPLY_ROWS (default 2e6 x 100 doubles, 1.6 GB).
stopifnot(requireNamespace("callr", quietly = TRUE))
libs <- .libPaths()
csv_rows <- as.numeric(Sys.getenv("MEMKIT_BENCH_CSV_ROWS", "1e7"))
apply_rows <- as.numeric(Sys.getenv("MEMKIT_BENCH_APPLY_ROWS", "2e6"))
append_rows <- as.numeric(Sys.getenv("MEMKIT_BENCH_APPEND_ROWS", "1e6"))
grow_reps <- 3L
commit <- tryCatch(system2("git", c("rev-parse", "--short", "HEAD"), stdout = TRUE), error = function(e) "?")
script_hash <- substr(unname(tools::md5sum(file.path("bench", "fm-grow.R"))), 1L, 8L)
fmt_mb <- function(b) format(mem_bytes(b))
out <- character()
say <- function(...) { line <- sprintf(...); message(line); out <<- c(out, line) }

# Runs `fun(args)` in a fresh R process; returns its value plus the elapsed
# seconds of the call, the process's peak resident set (VmHWM, which counts
# mapped file pages too) and its peak anonymous resident memory, sampled
# every 50 ms by a watcher (RssAnon: what the process itself allocated).
in_child <- function(fun, args = list()) {
  callr::r(function(fun, args) {
    status <- function() readLines("/proc/self/status")
    kb <- function(key, lines) as.numeric(sub(sprintf("^%s:\\s*([0-9]+) kB.*$", key), "\\1",
                                               grep(sprintf("^%s:", key), lines, value = TRUE))) * 1024
    log <- tempfile()
    pid <- Sys.getpid()
    system(sprintf("while kill -0 %d 2>/dev/null; do grep RssAnon /proc/%d/status; sleep 0.05; done > %s",
                   pid, pid, log), wait = FALSE)
    Sys.sleep(0.2)
    anon0 <- kb("RssAnon", status())
    t <- system.time(value <- do.call(fun, args))[["elapsed"]]
    st <- status()
    Sys.sleep(0.2)
    samples <- suppressWarnings(as.numeric(sub("^RssAnon:\\s*([0-9]+) kB.*$", "\\1", readLines(log))) * 1024)
    list(value = value, secs = t, hwm = kb("VmHWM", st), anon0 = anon0,
         anon_peak = max(c(samples, kb("RssAnon", st)), na.rm = TRUE))
  }, args = list(fun = fun, args = args), libpath = libs)
}

say("Run %s on %s (memkit commit %s, bench/fm-grow.R %s); load average before: %s.",
    format(Sys.time(), "%Y-%m-%d %H:%M UTC", tz = "UTC"), Sys.info()[["nodename"]], commit, script_hash,
    paste(readLines("/proc/loadavg"), collapse = ""))
say("")

# ---- A. fm_append(): 10 columns onto 1e6 x 100 -------------------------------------
say("#### fm_append(): 10 columns onto a %s x 100 double matrix (%s)",
    format(append_rows, big.mark = ",", scientific = FALSE), fmt_mb(append_rows * 800))
say("")
base_ncols <- c(50, 100, 200)
bases <- list()
for (p in base_ncols) {
  bp <- file.path(dir, sprintf("base%d.fm", p))
  B <- fm_create(bp, append_rows, p, overwrite = TRUE)
  for (j in seq_len(p)) fm_write(B, as.double(j), j = j)
  fm_flush(B)
  bases[[as.character(p)]] <- bp
  rm(B)
}
new_cols <- matrix(-1, append_rows, 10)
work <- file.path(dir, "work.fm")
# A fresh copy of the base, on disk before the timing starts (an append
# ends with fsync(), which would otherwise also write out the copy).
fresh <- function(p) { unlink(work); file.copy(bases[[as.character(p)]], work); system2("sync"); invisible(gc()) }
ap <- list(inplace = list(), rewrite = list(), bigstatsr = list())
have_bs <- have("bigstatsr")
for (r in seq_len(grow_reps)) {
  for (p in base_ncols) {
    fresh(p)
    X <- fm_open(work, mode = "rw")
    ap$inplace[[as.character(p)]] <- c(ap$inplace[[as.character(p)]],
                                        system.time(X <- fm_append(X, cols = new_cols))[["elapsed"]])
    stopifnot(ncol(X) == p + 10, X[append_rows, p + 10] == -1, X[1, p] == p)
    rm(X)
    if (p == 100) {
      # The rewrite: what growing costs without an in-place append (a new
      # file with every column copied, renamed into place).
      fresh(p)
      X <- fm_open(work, mode = "rw")
      info <- fm_info(X)
      ap$rewrite[["t"]] <- c(ap$rewrite[["t"]], system.time({
        Y <- memkit:::fm_rewrite(X, info, append_rows, p + 10, NULL, function(o, tick) {
          .Call(memkit:::ffi_fm_fill, o, X, 0, 0, append_rows * p)
          memkit:::fill_cols(o, new_cols, append_rows * p, append_rows, 10, tick)
        }, steps = 1)
      })[["elapsed"]])
      stopifnot(ncol(Y) == p + 10, Y[append_rows, p + 10] == -1)
      rm(X, Y)
      if (have_bs) {
        unlink(file.path(dir, c("fbm.bk", "fbm.rds")))
        fbm <- bigstatsr::FBM(append_rows, p, backingfile = file.path(dir, "fbm"))
        ap$bigstatsr[["t"]] <- c(ap$bigstatsr[["t"]], system.time({
          fbm$add_columns(10)
          fbm[, (p + 1):(p + 10)] <- new_cols
        })[["elapsed"]])
        rm(fbm)
      }
    }
  }
}
invisible(gc())
med <- function(x) stats::median(x)
say("| operation | median seconds (%d runs, interleaved) | ratio to in-place |", grow_reps)
say("|---|---|---|")
t_in <- med(ap$inplace[["100"]])
for (p in base_ncols) say("| fm_append(cols = 10 columns), base %d columns | %.3f | %.2f |", p, med(ap$inplace[[as.character(p)]]),
                          med(ap$inplace[[as.character(p)]]) / t_in)
say("| rewrite into a new 110-column file (memkit's fallback), base 100 columns | %.3f | %.2f |", med(ap$rewrite[["t"]]),
    med(ap$rewrite[["t"]]) / t_in)
if (have_bs) say("| bigstatsr FBM$add_columns(10) + writing them, base 100 columns | %.3f | %.2f |",
                 med(ap$bigstatsr[["t"]]), med(ap$bigstatsr[["t"]]) / t_in)
ratio_scale <- med(ap$inplace[["200"]]) / med(ap$inplace[["50"]])
say("")
say("Goal: time proportional to the new columns only. A base 4x as wide (200 vs 50 columns) takes %.2fx the time; the rewrite takes %.1fx the in-place append: %s.",
    ratio_scale, med(ap$rewrite[["t"]]) / t_in, if (ratio_scale < 1.5 && med(ap$rewrite[["t"]]) / t_in > 3) "met" else "**not met**")
say("")
unlink(c(unlist(bases), work, file.path(dir, c("fbm.bk", "fbm.rds"))))
rm(new_cols)

# ---- B. fm_import() of a 2 GB CSV ------------------------------------------------------
say("#### fm_import(): a %s x 20 CSV of numbers", format(csv_rows, big.mark = ",", scientific = FALSE))
say("")
csv <- file.path(dir, "big.csv")
local({
  set.seed(7)
  step <- 1e6
  hdr <- TRUE
  for (s in seq(1, csv_rows, by = step)) {
    k <- min(step, csv_rows - s + 1)
    blk <- matrix(round(runif(k * 20) * 2000 - 1000, 6), k, 20, dimnames = list(NULL, paste0("x", 1:20)))
    if (have("data.table")) data.table::fwrite(data.table::as.data.table(blk), csv, append = !hdr)
    else utils::write.table(blk, csv, sep = ",", row.names = FALSE, col.names = hdr, append = !hdr)
    hdr <- FALSE
  }
})
csv_size <- file.size(csv)
say("File: %s (%s lines of 20 numbers of up to 11 characters, written by %s).", fmt_mb(csv_size),
    format(csv_rows, big.mark = ",", scientific = FALSE), if (have("data.table")) "data.table::fwrite()" else "write.table()")
say("")
invisible(readBin(csv, "raw", 1))   # the file is in the page cache after writing
imp_tools <- list(
  "memkit fm_import()" = function(csv, out) {
    library(memkit); options(memkit.progress = FALSE)
    X <- fm_import(csv, out, overwrite = TRUE)
    c(dim(X), X[nrow(X), 20])
  },
  "data.table::fread() + as_fm()" = function(csv, out) {
    library(memkit); options(memkit.progress = FALSE)
    d <- data.table::fread(csv, showProgress = FALSE)
    X <- as_fm(as.data.frame(d), out, overwrite = TRUE)
    c(dim(X), X[nrow(X), 20])
  },
  "data.table::fread() alone (in memory)" = function(csv, out) {
    d <- data.table::fread(csv, showProgress = FALSE)
    c(dim(d), d[[20]][nrow(d)])
  },
  "bigstatsr::big_read()" = function(csv, out) {
    unlink(paste0(out, c(".bk", ".rds")))
    X <- bigstatsr::big_read(csv, select = 1:20, backingfile = out, progress = FALSE)
    c(dim(X), X[nrow(X), 20])
  }
)
avail <- c(TRUE, have("data.table"), have("data.table"), have("bigstatsr") && have("bigreadr"))
skipped <- names(imp_tools)[!avail]
imp_tools <- imp_tools[avail]
imp <- list()
imp_reps <- 2L
for (r in seq_len(imp_reps)) {
  ord <- if (r %% 2 == 1) seq_along(imp_tools) else rev(seq_along(imp_tools))
  for (k in ord) {
    nm <- names(imp_tools)[k]
    # big_read() is several times slower than the others: one run.
    if (r > 1 && nm == "bigstatsr::big_read()") next
    out_p <- file.path(dir, sprintf("imp%d", k))
    res <- tryCatch(in_child(imp_tools[[k]], list(csv = csv, out = out_p)), error = function(e) {
      message("  ", nm, " failed: ", conditionMessage(e)); NULL })
    unlink(c(out_p, paste0(out_p, c(".bk", ".rds"))))
    if (!is.null(res)) {
      stopifnot(res$value[[1]] == csv_rows, res$value[[2]] == 20)
      imp[[nm]] <- rbind(imp[[nm]], c(secs = res$secs, hwm = res$hwm, anon = res$anon_peak))
      message(sprintf("  %-40s %7.1f s  VmHWM %s  peak RssAnon %s", nm, res$secs, fmt_mb(res$hwm), fmt_mb(res$anon_peak)))
    }
  }
}
say("| tool | median seconds (%d runs, interleaved; big_read() one run) | peak resident (VmHWM) | peak anonymous (RssAnon) |", imp_reps)
say("|---|---|---|---|")
for (nm in names(imp)) {
  m <- imp[[nm]]
  say("| %s | %.1f | %s | %s |", nm, med(m[, "secs"]), fmt_mb(max(m[, "hwm"])), fmt_mb(max(m[, "anon"])))
}
if (length(skipped)) say("\nNot installed, so skipped: %s.", paste(skipped, collapse = ", "))
say("")
# Identical to read.csv() on a 1e6-row slice.
slice <- file.path(dir, "slice.csv")
local({
  con <- file(csv, "r"); on.exit(close(con))
  writeLines(readLines(con, n = 1e6 + 1), slice)
})
t_rc <- system.time(ref <- as.matrix(utils::read.csv(slice)))[["elapsed"]]
S <- fm_import(slice, file.path(dir, "slice.fm"), overwrite = TRUE)
same <- identical(S[, ], ref)
rm(ref, S); invisible(gc())
unlink(c(slice, file.path(dir, "slice.fm")))
fm_m <- imp[["memkit fm_import()"]]
peers_t <- vapply(setdiff(names(imp), c("memkit fm_import()", "data.table::fread() alone (in memory)")),
                  function(nm) med(imp[[nm]][, "secs"]), 1)
fastest <- if (length(peers_t)) names(peers_t)[which.min(peers_t)] else NA
fread_hwm <- if (!is.null(imp[["data.table::fread() + as_fm()"]])) max(imp[["data.table::fread() + as_fm()"]][, "hwm"]) else NA
say("Identical to `as.matrix(read.csv())` on the first 1e6 rows (read.csv() took %.0f s): %s.", t_rc,
    if (same) "yes" else "**no**")
say("Goal: peak resident memory under 300 MB: %s (VmHWM %s, RssAnon %s).",
    if (max(fm_m[, "hwm"]) < 300e6) "met" else "**not met**", fmt_mb(max(fm_m[, "hwm"])), fmt_mb(max(fm_m[, "anon"])))
if (!is.na(fastest)) {
  say("Goal: at least the speed of the fastest peer (%s, %.1f s) with a tenth of fread()'s memory: %.2fx its time, %.2fx fread()'s peak memory: %s.",
      fastest, peers_t[[fastest]], med(fm_m[, "secs"]) / peers_t[[fastest]], max(fm_m[, "hwm"]) / fread_hwm,
      if (med(fm_m[, "secs"]) <= peers_t[[fastest]] && max(fm_m[, "hwm"]) <= fread_hwm / 10) "met" else "**not met**")
}
say("")
unlink(csv)

# ---- C. fm_apply(out =) on a 1.6 GB matrix ------------------------------------------------
say("#### fm_apply(out =): a result as large as a %s x 100 double matrix (%s)",
    format(apply_rows, big.mark = ",", scientific = FALSE), fmt_mb(apply_rows * 100 * 8))
say("")
src <- file.path(dir, "src.fm")
A <- fm_create(src, apply_rows, 100, overwrite = TRUE)
for (j in 1:100) fm_write(A, as.double(j) + seq_len(apply_rows) / apply_rows, j = j)
fm_flush(A)
rm(A); invisible(gc())
ap_res <- in_child(function(src, dst) {
  library(memkit); options(memkit.progress = FALSE)
  X <- fm_open(src)
  Z <- fm_apply(X, function(b) sqrt(b) * 2, out = dst)
  c(Z[1, 1] == sqrt(X[1, 1]) * 2, Z[nrow(Z), 100] == sqrt(X[nrow(X), 100]) * 2)
}, list(src = src, dst = file.path(dir, "dst.fm")))
say("| step | figure |")
say("|---|---|")
say("| fm_apply(X, function(b) sqrt(b) * 2, out = path), default blocks (16 MiB) | %.1f s |", ap_res$secs)
say("| result checked (first and last cell) | %s |", if (all(ap_res$value)) "yes" else "**no**")
say("| anonymous resident memory (RssAnon) before / peak (sampled every 50 ms) | %s / %s |",
    fmt_mb(ap_res$anon0), fmt_mb(ap_res$anon_peak))
say("| peak resident set (VmHWM, mapped file pages included) | %s |", fmt_mb(ap_res$hwm))
say("")
say("Goal: RssAnon under 200 MB: %s.", if (ap_res$anon_peak < 200e6) "met" else "**not met**")
say("")

# ---- D. the future backend -------------------------------------------------------------
if (have("future") && have("future.apply")) {
  fut <- in_child(function(src) {
    library(memkit); options(memkit.progress = FALSE)
    X <- fm_open(src)
    f <- function(b) colSums(sqrt(b))
    environment(f) <- globalenv()
    t_serial <- system.time(s1 <- fm_apply(X, f))[["elapsed"]]
    future::plan(future::multisession, workers = 2)
    invisible(fm_apply(X, f, block_bytes = 8e6, backend = "future"))   # workers started
    t_future <- system.time(s2 <- fm_apply(X, f, backend = "future"))[["elapsed"]]
    sizes <- numeric()
    rec <- function(X, FUN) { sizes <<- vapply(X, function(el) length(serialize(list(el, FUN), NULL)), 1); lapply(X, FUN) }
    s3 <- fm_apply(X, f, backend = rec)
    future::plan(future::sequential)
    c(identical(s1, s2), identical(s1, s3), t_serial, t_future, max(sizes))
  }, list(src = src))
  say("#### fm_apply(backend = \"future\"), plan(multisession, workers = 2), colSums(sqrt(b)) over the same matrix")
  say("")
  say("Serial %.1f s, future %.1f s (%.2fx); same result as serial: %s; the largest task serialized (the task function with the references and `FUN`, plus its block's range): %.0f bytes.",
      fut$value[[3]], fut$value[[4]], fut$value[[4]] / fut$value[[3]],
      if (fut$value[[1]] == 1 && fut$value[[2]] == 1) "yes" else "**no**", fut$value[[5]])
  say("")
}
unlink(c(src, file.path(dir, "dst.fm")))
writeLines(out, grow_txt)
