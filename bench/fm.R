# File-backed matrices: memkit side by side with an in-memory matrix,
# bigmemory, ff and bigstatsr, in one R process, on a 2e6 x 100 double matrix
# (1.6 GB), page cache warm. Writes bench/results/fm.md.
#
#   flock /tmp/memkit-bench.lock Rscript bench/fm.R
#
# MEMKIT_BENCH_HUGE=only runs the larger-than-memory case instead: a file
# bigger than the machine's RAM (MEMKIT_BENCH_HUGE_GB, default 26; the disk
# needs that much free), colSums over it while a watcher samples the process's
# anonymous resident memory; the file is deleted afterwards. Its figures are
# kept in bench/results/fm-huge.txt and included in every later fm.md.
#
# MEMKIT_BENCH_PAIRED=only times memkit against an earlier build of itself
# (see run_paired() below) and writes bench/results/fm-paired.md.
if (dir.exists("bench/lib")) .libPaths(c("bench/lib", .libPaths()))
suppressPackageStartupMessages(library(memkit))
source(file.path("bench", "common.R"))
options(memkit.progress = FALSE)

nrow <- as.numeric(Sys.getenv("MEMKIT_BENCH_NROW", "2e6"))
ncol <- 100
reps <- 3L
dir <- Sys.getenv("MEMKIT_BENCH_DIR", file.path(tempdir(), "fm-bench"))
dir.create(dir, showWarnings = FALSE, recursive = TRUE)
out_md <- file.path("bench", "results", "fm.md")
huge_txt <- file.path("bench", "results", "fm-huge.txt")
dir.create(dirname(out_md), showWarnings = FALSE, recursive = TRUE)

have <- function(pkg) requireNamespace(pkg, quietly = TRUE)
peers <- c(bigmemory = have("bigmemory"), ff = have("ff"), bigstatsr = have("bigstatsr"))

rss_anon <- function(pid = Sys.getpid()) {
  line <- grep("^RssAnon:", readLines(sprintf("/proc/%d/status", pid)), value = TRUE)
  as.numeric(sub("^RssAnon:\\s*([0-9]+) kB.*$", "\\1", line)) * 1024
}

# Median elapsed seconds of `reps` runs; `setup` runs untimed before each.
timeit <- function(expr, setup = NULL, n = reps) {
  expr <- substitute(expr)
  setup <- substitute(setup)
  env <- parent.frame()
  t <- numeric(n)
  for (k in seq_len(n)) {
    if (!is.null(setup)) eval(setup, env)
    gc()
    t[k] <- system.time(eval(expr, env))[["elapsed"]]
  }
  stats::median(t)
}
try_time <- function(expr, setup = NULL) {
  tryCatch(eval.parent(substitute(timeit(expr, setup))), error = function(e) {
    message("  failed: ", conditionMessage(e))
    NA_real_
  })
}

rows <- list()
add <- function(op, tool, secs, base, note = "") {
  rows[[length(rows) + 1L]] <<- data.frame(op = op, tool = tool, secs = secs,
                                           ratio = secs / base, note = note)
  message(sprintf("%-26s %-22s %8.3f s  %6.2fx %s", op, tool, secs, secs / base, note))
}

# ---- the larger-than-memory run (opt-in) --------------------------------------
# MEMKIT_BENCH_HUGE=only runs just this and updates the last section of fm.md.
run_huge <- function() {
  ram <- as.numeric(sub("^MemTotal:\\s*([0-9]+) kB.*$", "\\1",
                        grep("^MemTotal:", readLines("/proc/meminfo"), value = TRUE))) * 1024
  gb <- as.numeric(Sys.getenv("MEMKIT_BENCH_HUGE_GB", "26"))
  hn <- ceiling(gb * 1e9 / 8 / 100)
  hp <- file.path(dir, "huge.fm")
  t_make <- system.time({
    H <- fm_create(hp, hn, 100)
    for (j in 1:100) fm_write(H, as.double(j), j = j)
    fm_write(H, c(0.5, -0.25), i = c(1, hn), j = 100)
    fm_flush(H)
  })[["elapsed"]]
  rm(H); gc()
  H <- fm_open(hp)
  log <- file.path(dir, "anon.log")
  watcher <- sprintf("while kill -0 %d 2>/dev/null; do grep RssAnon /proc/%d/status; sleep 0.2; done > %s",
                     Sys.getpid(), Sys.getpid(), log)
  system(watcher, wait = FALSE)
  a0 <- rss_anon()
  t_cs <- system.time(cs <- colSums(H))[["elapsed"]]
  a1 <- rss_anon()
  Sys.sleep(0.5)
  peak <- max(as.numeric(sub("^RssAnon:\\s*([0-9]+) kB.*$", "\\1", readLines(log))) * 1024, a1)
  expected <- c(as.double(1:99) * hn, 100 * (hn - 2) + 0.25)
  ok <- isTRUE(all.equal(cs, expected))
  resident <- fm_info(H)$resident
  fsize <- fm_info(H)$file_size
  rm(H); gc()
  unlink(hp)
  writeLines(c(
    sprintf("Machine RAM: %s. File: %s x 100 doubles, %s on disk (%.2fx RAM).",
            format(mem_bytes(ram)), format(hn, big.mark = ",", scientific = FALSE), format(fsize), as.numeric(fsize) / ram),
    "",
    "| step | figure |", "|---|---|",
    sprintf("| create, fill 100 columns, fm_flush() | %.0f s |", t_make),
    sprintf("| colSums() over the whole file | %.0f s (%.0f MB/s) |", t_cs, as.numeric(fsize) / t_cs / 1e6),
    sprintf("| colSums() result correct | %s |", if (ok) "yes" else "**no**"),
    sprintf("| anonymous resident memory before / after colSums() | %s / %s |",
            format(mem_bytes(a0)), format(mem_bytes(a1))),
    sprintf("| peak anonymous resident memory during colSums() (sampled every 0.2 s) | %s |", format(mem_bytes(peak))),
    sprintf("| file resident in the page cache afterwards (fm_info()) | %s |", format(resident)),
    sprintf("| goal: colSums completes with anonymous memory under 1 GB | %s |",
            if (ok && peak < 1e9) "met" else "**not met**"),
    "",
    sprintf("Run on %s; the file was deleted afterwards.", format(Sys.time(), "%Y-%m-%d %H:%M UTC", tz = "UTC"))
  ), huge_txt)
}
huge_section <- function() {
  c("### Larger than memory", "",
    if (file.exists(huge_txt)) readLines(huge_txt) else
      "Not run yet: `MEMKIT_BENCH_HUGE=only flock /tmp/memkit-bench.lock Rscript bench/fm.R`.")
}
# ---- growing, importing, block-writing (opt-in; #18) ----------------------------
# MEMKIT_BENCH_GROW=only runs just this: fm_append() against a rewrite,
# fm_import() of a 2 GB CSV against data.table::fread() + as_fm() and
# bigstatsr::big_read(), fm_apply(out =) on a 1.6 GB matrix, and the future
# backend. Every measured run is a child R process (its own peak memory),
# interleaved with its peers. Figures go to bench/results/fm-grow.txt and
# into every later fm.md.
grow_txt <- file.path("bench", "results", "fm-grow.txt")
if (identical(Sys.getenv("MEMKIT_BENCH_GROW"), "only")) {
  source(file.path("bench", "fm-grow.R"), local = TRUE)
  old <- if (file.exists(out_md)) readLines(out_md) else "## File-backed matrices (`bench/fm.R`)"
  cut <- match("### Larger than memory", old)
  rest <- if (!is.na(cut)) old[cut:length(old)] else character()
  if (!is.na(cut)) old <- old[seq_len(cut - 1L)]
  cut <- match("### Growing, importing, writing results", old)
  if (!is.na(cut)) old <- old[seq_len(cut - 1L)]
  writeLines(c(old, c("### Growing, importing, writing results", "", readLines(grow_txt), ""), rest), out_md)
  message("wrote ", out_md)
  unlink(dir, recursive = TRUE)
  quit(save = "no")
}
grow_section <- function() {
  c("### Growing, importing, writing results", "",
    if (file.exists(grow_txt)) readLines(grow_txt) else
      "Not run yet: `MEMKIT_BENCH_GROW=only flock /tmp/memkit-bench.lock Rscript bench/fm.R`.", "")
}

if (identical(Sys.getenv("MEMKIT_BENCH_HUGE"), "only")) {
  run_huge()
  old <- if (file.exists(out_md)) readLines(out_md) else "## File-backed matrices (`bench/fm.R`)"
  cut <- match("### Larger than memory", old)
  if (!is.na(cut)) old <- old[seq_len(cut - 1L)]
  writeLines(c(old, huge_section()), out_md)
  message("wrote ", out_md)
  unlink(dir, recursive = TRUE)
  quit(save = "no")
}

# ---- paired against an earlier build (opt-in) ---------------------------------
# MEMKIT_BENCH_PAIRED=only: memkit against memkitbase (memkit at an earlier
# commit, installed by `bash bench/baseline.sh COMMIT`), each operation on
# both alternately, 15 pairs (MEMKIT_BENCH_PAIRS), the ratio the median of the pairs' ratios. On a
# matrix of MEMKIT_BENCH_PAIRED_NROW x 100 doubles (default 250,000: 200 MB),
# so it stays quick on a shared machine. Writes bench/results/fm-paired.md.
run_paired <- function() {
  built_here <- function(pkg) {
    b <- utils::packageDescription(pkg)$Built
    !is.null(b) && grepl(paste0("R ", getRversion(), ";"), b, fixed = TRUE)
  }
  if (!nzchar(system.file(package = "memkitbase")) || !built_here("memkitbase") ||
      !requireNamespace("memkitbase", quietly = TRUE)) {
    stop("memkitbase is not installed for this R: run `bash bench/baseline.sh COMMIT` first")
  }
  base_commit <- readLines(system.file("COMMIT", package = "memkitbase"))
  pn <- as.numeric(Sys.getenv("MEMKIT_BENCH_PAIRED_NROW", "250000"))
  npairs <- max(5L, as.integer(Sys.getenv("MEMKIT_BENCH_PAIRS", "15")))
  set.seed(2)
  M <- matrix(rnorm(pn * 100), pn, 100)
  idx <- sample(length(M), 1e5)
  pkgs <- list(new = asNamespace("memkit"), old = asNamespace("memkitbase"))
  paths <- c(new = file.path(dir, "new.fm"), old = file.path(dir, "old.fm"))
  X <- list(new = pkgs$new$as_fm(M, paths[["new"]]), old = pkgs$old$as_fm(M, paths[["old"]]))
  R <- list(new = pkgs$new$fm_open(paths[["new"]]), old = pkgs$old$fm_open(paths[["old"]]))
  stopifnot(identical(colSums(X$new), colSums(X$old)))
  ops <- list(
    "create + fill (as_fm())" = function(k) {
      p <- file.path(dir, paste0(k, "-c.fm")); unlink(p)
      x <- pkgs[[k]]$as_fm(M, p); rm(x); gc(FALSE); unlink(p)
    },
    "fm_open() + fm_info()" = function(k) pkgs[[k]]$fm_info(pkgs[[k]]$fm_open(paths[[k]])),
    "colSums (data pointer)" = function(k) colSums(R[[k]]),
    "1e5 random elements" = function(k) R[[k]][idx],
    "X[, 51:60] (base [, per element)" = function(k) R[[k]][, 51:60],
    "fm_read(j = 51:60)" = function(k) pkgs[[k]]$fm_read(R[[k]], j = 51:60),
    "fm_write() a column + fm_flush()" = function(k) {
      pkgs[[k]]$fm_write(X[[k]], M[, 7], j = 7); pkgs[[k]]$fm_flush(X[[k]])
    }
  )
  rows <- lapply(names(ops), function(op) {
    f <- ops[[op]]
    f("old"); f("new")
    pairs <- vapply(seq_len(npairs), function(i) {
      first <- if (i %% 2L) "old" else "new"
      second <- setdiff(c("old", "new"), first)
      t <- c(old = 0, new = 0)
      for (k in c(first, second)) t[[k]] <- system.time(f(k), gcFirst = FALSE)[["elapsed"]]
      t
    }, double(2))
    ratios <- pairs["new", ] / pmax(pairs["old", ], 1e-6)
    ci <- median_ci(ratios)
    data.frame(operation = op, base = stats::median(pairs["old", ]), memkit = stats::median(pairs["new", ]),
               ratio = stats::median(ratios), lo = ci[[1L]], hi = ci[[2L]])
  })
  res <- do.call(rbind, rows)
  rm(X, R); gc()
  commit <- tryCatch(system2("git", c("rev-parse", "--short", "HEAD"), stdout = TRUE),
                     error = function(e) "unknown", warning = function(e) "unknown")
  script_hash <- substr(unname(tools::md5sum(file.path("bench", "fm.R"))), 1L, 8L)
  fmt <- function(s) sprintf("%.1f ms", 1000 * s)
  out <- file.path("bench", "results", "fm-paired.md")
  writeLines(c(
    "## File-backed matrices against an earlier build (`bench/fm.R`, paired)",
    "",
    bench_stamp("bench/fm.R"),
    "",
    sprintf("%s, %d cores (shared); %s. memkit %s (commit %s, bench/fm.R %s) against memkit at %s (`bash bench/baseline.sh %s`), run %s.",
            utils::sessionInfo()$running, parallel::detectCores(), R.version.string,
            as.character(utils::packageVersion("memkit")), commit, script_hash, base_commit, base_commit,
            format(Sys.time(), "%Y-%m-%d %H:%M UTC", tz = "UTC")),
    sprintf("Matrix: %s x 100 doubles (%s), page cache warm; %d alternating pairs per operation, the ratio",
            format(pn, big.mark = ",", scientific = FALSE), format(mem_bytes(pn * 800)), npairs),
    "is the median of the pairs' ratios (memkit / earlier build) with a 95% interval.",
    "",
    "| operation | earlier build | memkit | ratio | 95% interval | within 5% |",
    "|---|---|---|---|---|---|",
    sprintf("| %s | %s | %s | %.3f | %.3f-%.3f | %s |", res$operation, fmt(res$base), fmt(res$memkit),
            res$ratio, res$lo, res$hi, ifelse(res$ratio <= 1.05, "yes", "**no**"))
  ), out)
  message("wrote ", out)
  print(res)
}
if (identical(Sys.getenv("MEMKIT_BENCH_PAIRED"), "only")) {
  run_paired()
  unlink(dir, recursive = TRUE)
  quit(save = "no")
}

set.seed(1)
M <- matrix(rnorm(nrow * ncol), nrow, ncol)
bytes <- nrow * ncol * 8
v <- rnorm(ncol)
idx <- sample(length(M), 1e6)
cols <- 51:60

# ---- create and fill from the in-memory matrix --------------------------------
p_bin <- file.path(dir, "m.bin")
p_fm <- file.path(dir, "m.fm")
Mv <- as.vector(M) # writeBin() takes vectors only: the same bytes without dim
t_wb <- timeit(writeBin(Mv, p_bin), setup = unlink(p_bin))
rm(Mv)
unlink(p_bin)
add("create + fill", "writeBin()", t_wb, t_wb)
t_fm <- timeit(X <- as_fm(M, p_fm), setup = { X <- NULL; gc(); unlink(p_fm) })
add("create + fill", "memkit as_fm()", t_fm, t_wb)
if (peers[["bigmemory"]]) {
  t_bm <- try_time(bm <- bigmemory::as.big.matrix(M, type = "double", backingfile = "bm.bin",
                                                   descriptorfile = "bm.desc", backingpath = dir),
                   setup = { bm <- NULL; gc(); unlink(file.path(dir, c("bm.bin", "bm.desc"))) })
  add("create + fill", "bigmemory", t_bm, t_wb)
}
if (peers[["ff"]]) {
  t_ff <- try_time(f <- ff::as.ff(M, filename = file.path(dir, "m.ff"), overwrite = TRUE),
                   setup = { if (exists("f") && !is.null(f)) ff::delete(f); f <- NULL; gc() })
  add("create + fill", "ff", t_ff, t_wb)
}
if (peers[["bigstatsr"]]) {
  t_bs <- try_time(fbm <- bigstatsr::as_FBM(M, backingfile = file.path(dir, "fbm")),
                   setup = { fbm <- NULL; gc(); unlink(file.path(dir, c("fbm.bk", "fbm.rds"))) })
  add("create + fill", "bigstatsr", t_bs, t_wb)
}

X <- fm_open(p_fm)            # read-only, as an analysis would use it
invisible(colSums(X))         # page cache warm

# ---- colSums ------------------------------------------------------------------
t_mem <- timeit(colSums(M))
add("colSums", "in-memory", t_mem, t_mem)
add("colSums", "memkit", timeit(colSums(X)), t_mem)
if (peers[["bigmemory"]]) add("colSums", "bigmemory colSums(bm[,])", try_time(colSums(bm[, ])), t_mem, "full copy")
if (peers[["ff"]]) add("colSums", "ff ffcolapply", try_time(
  ff::ffcolapply(colSums(f[, i1:i2, drop = FALSE]), X = f, RETURN = TRUE, CFUN = "c")), t_mem)
if (peers[["bigstatsr"]]) add("colSums", "bigstatsr big_colstats", try_time(bigstatsr::big_colstats(fbm)$sum), t_mem)

# ---- X %*% v --------------------------------------------------------------------
t_mem <- timeit(M %*% v)
add("X %*% v", "in-memory", t_mem, t_mem)
add("X %*% v", "memkit", timeit(X %*% v), t_mem)
old <- options(matprod = "blas")
t_mem_blas <- timeit(M %*% v)
add("X %*% v (matprod = \"blas\")", "in-memory", t_mem_blas, t_mem_blas)
add("X %*% v (matprod = \"blas\")", "memkit", timeit(X %*% v), t_mem_blas)
options(old)
if (peers[["bigmemory"]]) add("X %*% v", "bigmemory bm[,] %*% v", try_time(bm[, ] %*% v), t_mem, "full copy")
if (peers[["ff"]]) add("X %*% v", "ff ffrowapply", try_time(
  ff::ffrowapply(f[i1:i2, , drop = FALSE] %*% v, X = f, RETURN = TRUE, RETCOL = 1)), t_mem)
if (peers[["bigstatsr"]]) add("X %*% v", "bigstatsr big_prodVec", try_time(bigstatsr::big_prodVec(fbm, v)), t_mem)

# ---- sum, crossprod -------------------------------------------------------------
t_mem <- timeit(sum(M))
add("sum", "in-memory", t_mem, t_mem)
add("sum", "memkit", timeit(sum(X)), t_mem)

# ---- a block of 10 columns ----------------------------------------------------
# In-memory and memkit's two ways interleaved in rounds (each round every way
# once, in a rotated order): the medians, taken in the same conditions.
t_blk <- rounds(list(mem = function() M[, cols], base = function() X[, cols],
                     read = function() fm_read(X, j = cols)), n = 11L)
t_mem <- stats::median(t_blk[, "mem"])
add("X[, 51:60]", "in-memory", t_mem, t_mem, "11 interleaved rounds")
add("X[, 51:60]", "memkit base `[`", stats::median(t_blk[, "base"]), t_mem, "11 interleaved rounds")
add("X[, 51:60]", "memkit fm_read()", stats::median(t_blk[, "read"]), t_mem, "11 interleaved rounds")
if (peers[["bigmemory"]]) add("X[, 51:60]", "bigmemory", try_time(bm[, cols]), t_mem)
if (peers[["ff"]]) add("X[, 51:60]", "ff", try_time(f[, cols]), t_mem)
if (peers[["bigstatsr"]]) add("X[, 51:60]", "bigstatsr", try_time(fbm[, cols]), t_mem)

# ---- 1e6 random elements ------------------------------------------------------
t_mem <- timeit(M[idx], n = 5L)
add("1e6 random elements", "in-memory", t_mem, t_mem)
add("1e6 random elements", "memkit", timeit(X[idx], n = 5L), t_mem)
ij <- arrayInd(idx, dim(M))
if (peers[["bigmemory"]]) add("1e6 random elements", "bigmemory bm[cbind(i, j)]", try_time(bm[ij]), t_mem)
if (peers[["ff"]]) add("1e6 random elements", "ff f[cbind(i, j)]", try_time(f[ij]), t_mem)
if (peers[["bigstatsr"]]) add("1e6 random elements", "bigstatsr fbm[cbind(i, j)]", try_time(fbm[ij]), t_mem)

stopifnot(identical(colSums(X), colSums(M)), identical(X %*% v, M %*% v),
          identical(X[, cols], M[, cols]), identical(X[idx], M[idx]))

# ---- anonymous memory while memkit computes -------------------------------------
invisible(gc())
a0 <- rss_anon()
invisible(colSums(X)); invisible(sum(X)); invisible(X %*% v)
anon_growth <- rss_anon() - a0

res <- do.call(rbind, rows)
ratio <- function(op, tool) res$ratio[res$op == op & res$tool == tool]
secs <- function(op, tool) res$secs[res$op == op & res$tool == tool]
goal <- function(ok) if (isTRUE(ok)) "met" else if (is.na(ok)) "not measured" else "**not met**"
bm_create <- if (peers[["bigmemory"]]) secs("create + fill", "bigmemory") / secs("create + fill", "memkit as_fm()") else NA
goals <- data.frame(
  goal = c("create + fill <= 1.5x writeBin()",
           "create + fill >= 5x faster than bigmemory",
           "colSums <= 1.1x in-memory",
           "X %*% v <= 1.1x in-memory",
           "10-column block <= 2x in-memory (base `[`)",
           "10-column block <= 2x in-memory (fm_read())",
           "1e6 random elements <= 1.5x in-memory",
           "anonymous memory growth during colSums/sum/%*% < 5% of the matrix"),
  measured = c(sprintf("%.2fx", ratio("create + fill", "memkit as_fm()")),
               sprintf("%.1fx faster", bm_create),
               sprintf("%.2fx", ratio("colSums", "memkit")),
               sprintf("%.2fx (default matprod), %.2fx (matprod = \"blas\")", ratio("X %*% v", "memkit"),
                       ratio("X %*% v (matprod = \"blas\")", "memkit")),
               sprintf("%.2fx", ratio("X[, 51:60]", "memkit base `[`")),
               sprintf("%.2fx", ratio("X[, 51:60]", "memkit fm_read()")),
               sprintf("%.2fx", ratio("1e6 random elements", "memkit")),
               sprintf("%s (%.2f%%)", format(mem_bytes(anon_growth)), 100 * anon_growth / bytes)),
  status = c(goal(ratio("create + fill", "memkit as_fm()") <= 1.5),
             goal(bm_create >= 5),
             goal(ratio("colSums", "memkit") <= 1.1),
             goal(ratio("X %*% v", "memkit") <= 1.1),
             goal(ratio("X[, 51:60]", "memkit base `[`") <= 2),
             goal(ratio("X[, 51:60]", "memkit fm_read()") <= 2),
             goal(ratio("1e6 random elements", "memkit") <= 1.5),
             goal(anon_growth < 0.05 * bytes))
)

# ---- write the section --------------------------------------------------------
cpu <- tryCatch(sub(".*: ", "", grep("model name", readLines("/proc/cpuinfo"), value = TRUE)[1]),
                error = function(e) NA)
ver <- function(p) if (have(p)) as.character(utils::packageVersion(p)) else "not installed"
fmt_table <- function(df) {
  c(paste0("| ", paste(names(df), collapse = " | "), " |"),
    paste0("|", paste(rep("---", ncol(df)), collapse = "|"), "|"),
    apply(df, 1, function(r) paste0("| ", paste(r, collapse = " | "), " |")))
}
tab <- res
tab$secs <- sprintf("%.3f", tab$secs)
tab$ratio <- sprintf("%.2f", tab$ratio)
names(tab) <- c("operation", "tool", "seconds (median of 3-5)", "ratio to baseline", "note")
lines <- c(
  "## File-backed matrices (`bench/fm.R`)",
  "",
  bench_stamp(file.path("bench", "fm.R")),
  "",
  sprintf("Machine: %s, %d cores, %s RAM (shared); %s; R %s.", cpu, parallel::detectCores(),
          format(mem_bytes(as.numeric(sub("^MemTotal:\\s*([0-9]+) kB.*$", "\\1",
                 grep("^MemTotal:", readLines("/proc/meminfo"), value = TRUE))) * 1024)),
          utils::sessionInfo()$running, paste(R.version$major, R.version$minor, sep = ".")),
  sprintf("Packages: memkit %s, bigmemory %s, ff %s, bigstatsr %s.", ver("memkit"), ver("bigmemory"),
          ver("ff"), ver("bigstatsr")),
  sprintf("Matrix: %s x %d doubles (%s), page cache warm, all tools in one R process. The baseline of each",
          format(nrow, big.mark = ",", scientific = FALSE), ncol, format(mem_bytes(bytes))),
  "operation is the first row (writeBin() for creation, the in-memory matrix otherwise).",
  if (any(!peers)) sprintf("Not installed, so skipped: %s.", paste(names(peers)[!peers], collapse = ", ")),
  "",
  "### Goals", "",
  fmt_table(goals), "",
  "### Timings", "",
  fmt_table(tab), "",
  "Notes: R's default `%*%` (`matprod = \"default\"`) scans both operands for NaN and Inf before calling",
  "BLAS, one more pass over the file; `options(matprod = \"blas\")` skips it. Base `[` reads a",
  "file-backed matrix one element at a time through ALTREP (R 4.2 has no bulk path in matrix",
  "subsetting); `fm_read()` copies whole columns. bigmemory has no colSums or product of its own here",
  "(biganalytics is a separate package), so its rows copy the matrix into memory first, as users do.",
  "",
  grow_section(),
  huge_section()
)
writeLines(lines, out_md)
message("wrote ", out_md)
if (peers[["ff"]] && exists("f") && !is.null(f)) try(ff::delete(f), silent = TRUE)
unlink(dir, recursive = TRUE)
