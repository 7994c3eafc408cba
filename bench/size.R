# Object sizes: memkit::mem_size() against lobstr::obj_size() and
# utils::object.size(), side by side in one R process, on five workloads, and
# mem_ls()/mem_tree() of environments of closures that capture them.
# Writes bench/results/size.md. The machine is shared: run it under the lock,
#
#   flock /tmp/memkit-bench.lock Rscript bench/size.R
#
# memkit is taken from the first library that has it (install it first).
if (dir.exists(file.path("bench", "lib"))) .libPaths(c(file.path("bench", "lib"), .libPaths()))
lib <- Sys.getenv("R_LIBS")
if (nzchar(lib)) .libPaths(c(strsplit(lib, ":", fixed = TRUE)[[1L]], .libPaths()))
source(file.path("bench", "common.R"))
suppressPackageStartupMessages({
  library(memkit)
  library(lobstr)
})

# The tools run in rounds (rounds(), bench/common.R): each round every tool
# once in a rotated order; the ratio of two tools is the median of their
# per-round ratios.

set.seed(42)
message("building the workloads")
work <- list()
work$dbl_pairs <- list(
  what = "lapply(1:1e6, function(i) c(i, i + 1)): 1e6 double pairs",
  x = lapply(seq_len(1e6), function(i) c(i, i + 1)),
  comparable = TRUE
)
work$int_pairs <- list(
  what = "lapply(1:1e6, function(i) c(i, i)): 1e6 integer pairs",
  x = lapply(seq_len(1e6), function(i) c(i, i)),
  comparable = TRUE
)
n <- 1e7
work$df <- list(
  what = "data frame of 1e7 rows (character, double, integer)",
  x = data.frame(chr = sample(c("apple", "banana", "cherry", "durian"), n, TRUE),
                 dbl = runif(n), int = sample.int(1000L, n, TRUE)),
  comparable = TRUE
)
e <- new.env()
for (i in seq_len(1e5)) assign(paste0("v", i), runif(2), envir = e)
work$env <- list(
  what = "environment of 1e5 bindings",
  x = e,
  comparable = FALSE          # object.size() gives 56 bytes for any environment
)
rm(e)
nn <- 1e6
d <- data.frame(x = runif(nn), z = runif(nn))
d$y <- 2 * d$x - d$z + rnorm(nn)
work$lm <- list(
  what = "lm() fitted on 1e6 rows",
  x = lm(y ~ x + z, data = d),
  comparable = FALSE          # object.size() expands the row names and skips the formula's environment
)
rm(d)
invisible(gc())

# What the walker holds before it has seen anything (its struct, the first
# stack and set, the string cache): the part of its memory that does not grow.
fixed <- memkit:::walk_stats(NULL)[["bytes"]]

rows <- list()
for (nm in names(work)) {
  w <- work[[nm]]
  x <- w$x
  message("timing ", w$what)
  # object.size() expands the lm's deferred row names, which would change
  # what the others walk: it is timed apart, after them, where it is not
  # comparable anyway.
  fs <- list(memkit = function() mem_size(x), lobstr = function() obj_size(x))
  if (w$comparable) fs$object.size <- function() object.size(x)
  t <- rounds(fs)
  size_mk <- as.numeric(mem_size(x))
  size_lo <- as.numeric(obj_size(x))
  st <- memkit:::walk_stats(x)
  t_os <- if (w$comparable) t[, "object.size"] else rounds(list(object.size = function() object.size(x)), 3L)[, 1L]
  size_os <- as.numeric(object.size(x))
  rows[[nm]] <- data.frame(
    workload = w$what,
    memkit_s = stats::median(t[, "memkit"]), lobstr_s = stats::median(t[, "lobstr"]),
    object.size_s = stats::median(t_os),
    vs_lobstr = stats::median(t[, "lobstr"] / t[, "memkit"]),
    vs_object.size = if (w$comparable) stats::median(t[, "memkit"] / t[, "object.size"]) else NA_real_,
    comparable = w$comparable,
    memkit_bytes = size_mk, lobstr_bytes = size_lo, object.size_bytes = size_os,
    nodes = st[["nodes"]], walk_bytes = st[["bytes"]],
    walk_bytes_per_node = (st[["bytes"]] - fixed) / st[["nodes"]],
    stringsAsFactors = FALSE
  )
}
res <- do.call(rbind, rows)

# Paired against an earlier build (bash bench/baseline.sh COMMIT installs it
# as memkitbase): the two alternate, 15 pairs per workload, and the ratio is
# the median of the pairs' ratios.
base <- NULL
built_here <- function(pkg) {
  b <- utils::packageDescription(pkg)$Built
  !is.null(b) && grepl(paste0("R ", getRversion(), ";"), b, fixed = TRUE)
}
if (nzchar(system.file(package = "memkitbase")) && built_here("memkitbase") &&
    requireNamespace("memkitbase", quietly = TRUE)) {
  base_commit <- readLines(system.file("COMMIT", package = "memkitbase"))
  base <- do.call(rbind, lapply(names(work), function(nm) {
    x <- work[[nm]]$x
    memkitbase::mem_size(x)
    mem_size(x)
    pairs <- vapply(seq_len(15L), function(i) {
      t0 <- memkit:::mono_now(); memkitbase::mem_size(x); t1 <- memkit:::mono_now()
      mem_size(x); t2 <- memkit:::mono_now()
      c(t1 - t0, t2 - t1)
    }, double(2))
    data.frame(workload = work[[nm]]$what, base_s = stats::median(pairs[1L, ]),
               memkit_s = stats::median(pairs[2L, ]),
               ratio = stats::median(pairs[2L, ] / pairs[1L, ]),
               same_size = isTRUE(all.equal(as.numeric(memkitbase::mem_size(x)),
                                            as.numeric(mem_size(x)))))
  }))
}

# ---- mem_ls() and mem_tree() of an environment of closures that capture it
closure_env <- function(n) {
  e <- new.env()
  for (i in seq_len(n)) {
    f <- function() NULL
    environment(f) <- e
    assign(sprintf("f%06d", i), f, envir = e)
  }
  e
}
closures <- do.call(rbind, lapply(c(1000, 2000, 4000, 1e5), function(n) {
  message("mem_ls() and mem_tree() of ", n, " closures")
  e <- closure_env(n)
  nr <- if (n > 1e4) 3L else 7L
  t <- rounds(list(mem_ls = function() mem_ls(e), mem_tree = function() mem_tree(e, max_depth = 1),
                   mem_size = function() mem_size(e)), nr)
  walk <- attr(mem_ls(e), "walk")
  data.frame(n = n, mem_ls_s = stats::median(t[, "mem_ls"]), mem_tree_s = stats::median(t[, "mem_tree"]),
             mem_size_s = stats::median(t[, "mem_size"]), sized = walk[["sized"]], steps = walk[["steps"]])
}))

fmt_s <- function(s) ifelse(s < 1, sprintf("%.1f ms", 1000 * s), sprintf("%.2f s", s))
fmt_b <- function(b) format(mem_bytes(b))
met <- function(ok) ifelse(ok, "met", "**not met**")

goal_lobstr <- res$vs_lobstr >= 20
goal_os <- ifelse(res$comparable, res$vs_object.size <= 1.2, NA)
# The goal is for graphs of a million nodes or more: on a few hundred
# nodes the walker's buffers, not the nodes, make its memory.
big_graph <- res$nodes >= 1e6
goal_mem <- res$walk_bytes_per_node <= 16

cpu <- tryCatch({
  l <- grep("^model name", readLines("/proc/cpuinfo"), value = TRUE)[1L]
  trimws(sub("^[^:]*:", "", l))
}, error = function(e) "unknown", warning = function(e) "unknown")
ver <- function(p) as.character(utils::packageVersion(p))
commit <- tryCatch(system2("git", c("rev-parse", "--short", "HEAD"), stdout = TRUE),
                   error = function(e) "unknown", warning = function(e) "unknown")
script_hash <- substr(unname(tools::md5sum(file.path("bench", "size.R"))), 1L, 8L)

# R-devel's figures go to a section of their own.
devel <- grepl("devel", R.version$status, ignore.case = TRUE)
md <- c(
  if (devel) "## Object sizes under R-devel (`bench/size.R`)" else "## Object sizes (`bench/size.R`)",
  "",
  bench_stamp(file.path("bench", "size.R")),
  "",
  sprintf("Machine: %s, %d cores, %s; %s. memkit %s (commit %s, bench/size.R %s), lobstr %s, run %s.",
          cpu, parallel::detectCores(), utils::sessionInfo()$running, R.version.string,
          ver("memkit"), commit, script_hash, ver("lobstr"), format(Sys.time(), "%Y-%m-%d %H:%M %Z")),
  "The machine is shared with other work, so absolute times move; the ratios are",
  "taken in one process, one workload at a time, the tools interleaved in 11 rounds (each round",
  "every tool once, in a rotated order); a ratio is the median of the per-round ratios.",
  "",
  "| workload | mem_size() | lobstr::obj_size() | object.size() | lobstr / memkit | memkit / object.size | sizes: memkit, lobstr, object.size |",
  "|---|---|---|---|---|---|---|",
  sprintf("| %s | %s | %s | %s | %.1fx | %s | %s, %s, %s |",
          res$workload, fmt_s(res$memkit_s), fmt_s(res$lobstr_s), fmt_s(res$object.size_s),
          res$vs_lobstr,
          ifelse(res$comparable, sprintf("%.2fx", res$vs_object.size), "not comparable"),
          fmt_b(res$memkit_bytes), fmt_b(res$lobstr_bytes), fmt_b(res$object.size_bytes)),
  "",
  "Goals:",
  "",
  sprintf("- At least 20x faster than lobstr: %s.",
          paste(sprintf("%s %.1fx (%s)", names(work), res$vs_lobstr, met(goal_lobstr)), collapse = "; ")),
  sprintf("- No more than 1.2x the time of object.size() where it gives a comparable answer: %s.",
          paste(sprintf("%s %.2fx (%s)", names(work)[res$comparable], res$vs_object.size[res$comparable],
                        met(goal_os[res$comparable])), collapse = "; ")),
  sprintf("- The walk's own memory at most 16 bytes per node on graphs of 1e6 nodes or more: %s.",
          paste(sprintf("%s %.1f B per node over %s nodes, %s in all (%s)", names(work),
                        res$walk_bytes_per_node, formatC(res$nodes, format = "d", big.mark = ","),
                        fmt_b(res$walk_bytes),
                        ifelse(big_graph, met(goal_mem), "a smaller graph: no goal")), collapse = "; ")),
  "",
  sprintf(paste("Walk memory is the pointer set, the explicit stack and the walker itself at the",
                "end of the walk; per node, less the %s the walker holds before it has seen",
                "anything. The set has one 16-byte entry per 2048-byte chunk of memory that holds",
                "a node (a bitmap of the chunk's 64 positions of 32 bytes), at most 3/4 full: nodes R",
                "allocated together share entries. An environment's binding cells and hash table",
                "are counted without entering the set."), fmt_b(fixed)),
  "",
  "`mem_ls(e)` and `mem_tree(e, max_depth = 1)` of an environment `e` holding n closures that",
  "capture `e` (an R6 object, a Shiny module), interleaved with `mem_size(e)`; `sized` is the",
  "number of nodes of the graph the sizes come from, `steps` the steps its queries took (both",
  "linear in n: a walk per binding would take n steps per binding). Goal: n = 1e5 in under 1 s.",
  "",
  "| n | mem_ls() | mem_tree() | mem_size() | graph nodes | query steps |",
  "|---|---|---|---|---|---|",
  sprintf("| %s | %s | %s | %s | %s | %s |", format(closures$n, big.mark = ",", scientific = FALSE),
          fmt_s(closures$mem_ls_s), fmt_s(closures$mem_tree_s), fmt_s(closures$mem_size_s),
          format(closures$sized, big.mark = ","), format(closures$steps, big.mark = ",")),
  "",
  "object.size() is not comparable on the environment (it reports 56 bytes for any",
  "environment) nor on the lm (it counts shared vectors once per reference, skips",
  "the formula's environment and expands the deferred row names it meets: it is",
  "timed after the others for that reason).",
  if (!is.null(base)) c(
    "",
    sprintf("Against memkit at %s (`bash bench/baseline.sh %s`), 15 alternating pairs per workload, median of the ratios:",
            base_commit, base_commit),
    "",
    "| workload | earlier build | this build | this / earlier | same size |",
    "|---|---|---|---|---|",
    sprintf("| %s | %s | %s | %.2fx | %s |", base$workload, fmt_s(base$base_s), fmt_s(base$memkit_s),
            base$ratio, ifelse(base$same_size, "yes", "**no**"))
  )
)
dir.create(file.path("bench", "results"), showWarnings = FALSE, recursive = TRUE)
out <- file.path("bench", "results", if (devel) "size-r-devel.md" else "size.md")
writeLines(md, out)
message("wrote ", out)
print(res[, c("workload", "memkit_s", "lobstr_s", "object.size_s", "vs_lobstr", "vs_object.size", "walk_bytes_per_node")])
