# bench/session.R: mem_ls() of a large session: 20 packages' namespaces
# loaded and about 2 GB of user objects in the global environment. Writes
# bench/results/session.md. Run under the benchmark lock:
#   flock /tmp/memkit-bench.lock Rscript bench/session.R
.libPaths(c(file.path("bench", "lib"), .libPaths()))
suppressPackageStartupMessages(library(memkit))
source(file.path("bench", "common.R"))

pkgs <- c("Matrix", "MASS", "lattice", "nlme", "mgcv", "survival", "boot", "cluster",
          "rpart", "nnet", "tibble", "shiny", "knitr", "rmarkdown", "stringr", "purrr",
          "jsonlite", "httr", "xml2", "future")
pkgs <- pkgs[vapply(pkgs, requireNamespace, logical(1), quietly = TRUE)]
for (p in pkgs) suppressPackageStartupMessages(loadNamespace(p))

# ---- about 2 GB of user objects ---------------------------------------------
set.seed(1)
n <- 1e7
words <- sprintf("w%06d", 1:1e5)
df <- data.frame(x = runif(n), y = sample.int(1000L, n, TRUE),
                 g = factor(sample(letters[1:10], n, TRUE)), s = sample(words, n, TRUE))
df2 <- df                                   # shares every column with df
df2$z <- df$x * 2                           # ... plus one of its own
m <- matrix(runif(1.1e8), ncol = 100)       # 880 MB
small <- lapply(1:1e6, function(i) runif(8)) # a million small vectors
env <- new.env()
for (i in 1:1e5) assign(sprintf("k%05d", i), i + 0, envir = env)
fit <- lm(x ~ y, data = df[1:1e6, ])
f <- local({ big <- runif(2e7); function() length(big) })
copy <- m + 0                               # a copy of m, not shared
rm(i, n)
invisible(gc())
user_bytes <- mem_size(df, df2, m, small, env, fit, f, copy)
nms <- ls(globalenv()) # before the script adds its own bindings

# ---- measurements -----------------------------------------------------------
# Median elapsed and CPU (user + system) seconds. The machine is shared:
# the CPU time is the steadier figure when others are busy.
time_of <- function(expr, reps = 3L) {
  expr <- substitute(expr)
  env <- parent.frame()
  t <- vapply(seq_len(reps), function(i) {
    gc()
    st <- system.time(eval(expr, env))
    c(st[["elapsed"]], st[["user.self"]] + st[["sys.self"]])
  }, double(2))
  c(elapsed = stats::median(t[1L, ]), cpu = stats::median(t[2L, ]))
}
res <- mem_ls(globalenv())
t_ls <- time_of(mem_ls(globalenv()))
walk <- attr(res, "walk")
t_ret <- time_of(mem_retained("df"))
t_objsize <- time_of(vapply(nms, function(nm) as.numeric(object.size(get(nm))), double(1)))
has_lobstr <- requireNamespace("lobstr", quietly = TRUE)
t_lobstr <- if (has_lobstr) {
  time_of(vapply(nms, function(nm) as.numeric(lobstr::obj_size(get(nm))), double(1)))
} else c(elapsed = NA_real_, cpu = NA_real_)
t_dupes <- time_of(mem_dupes(globalenv(), min_bytes = 1e6), reps = 1L)
dupes <- mem_dupes(globalenv(), min_bytes = 1e6)

# ---- report -----------------------------------------------------------------
fmt_s <- function(s) sprintf("%.2f s (CPU %.2f s)", s[["elapsed"]], s[["cpu"]])
ratio <- function(a, b) a[["cpu"]] / b[["cpu"]]
load <- tryCatch(scan("/proc/loadavg", what = "", n = 1L, quiet = TRUE), error = function(e) "unknown")
si <- utils::sessionInfo()
cpu <- tryCatch({
  l <- grep("^model name", readLines("/proc/cpuinfo"), value = TRUE)[1]
  trimws(sub(".*:", "", l))
}, error = function(e) "unknown", warning = function(e) "unknown")
ver <- function(p) as.character(utils::packageVersion(p))
printed <- utils::capture.output(print(utils::head(res, 8)))
out <- c(
  "## session: mem_ls() of a large session",
  "",
  bench_stamp(file.path("bench", "session.R")),
  "",
  sprintf("Machine: %s, %d cores, %.0f GiB RAM (shared); %s; %s.", cpu, parallel::detectCores(),
          as.numeric(system("awk '/MemTotal/ {print $2}' /proc/meminfo", intern = TRUE)) / 2^20,
          si$running, R.version.string),
  sprintf("Packages: memkit %s%s.", ver("memkit"),
          if (has_lobstr) sprintf(", lobstr %s", ver("lobstr")) else ""),
  "",
  sprintf("The session: %d namespaces loaded (%s, and their imports); %d user bindings in the",
          length(loadedNamespaces()), paste(pkgs, collapse = ", "), length(nms)),
  sprintf("global environment taking %s (shared memory counted once): a data frame of 1e7 rows, a",
          format(user_bytes)),
  "second one sharing its columns, a 880 MB matrix and a copy of it, a list of 1e6 small vectors,",
  "an environment of 1e5 bindings, a fitted `lm` on 1e6 rows, and a closure capturing 160 MB.",
  "",
  "Times are medians of 3 runs (1 for `mem_dupes()`). The machine is shared by several jobs",
  sprintf("(load average %s when the report was written), so elapsed time runs well above CPU time.", load),
  "",
  "| what | time | notes |",
  "|---|---|---|",
  sprintf("| `mem_ls(globalenv())` | %s | every binding's size, retained size and shares |", fmt_s(t_ls)),
  sprintf("| `mem_retained(\"df\")` | %s | one binding |", fmt_s(t_ret)),
  sprintf("| `object.size()` of each binding | %s | sizes only, shared memory counted again; %.2fx the CPU time of `mem_ls()` |",
          fmt_s(t_objsize), ratio(t_objsize, t_ls)),
  if (has_lobstr) sprintf("| `lobstr::obj_size()` of each binding | %s | sizes only; %.2fx the CPU time of `mem_ls()` |",
                          fmt_s(t_lobstr), ratio(t_lobstr, t_ls)),
  sprintf("| `mem_dupes(globalenv(), min_bytes = 1e6)` | %s | %d group(s), %s wasted |",
          fmt_s(t_dupes), nrow(dupes), format(sum(dupes$wasted))),
  "",
  sprintf("The walk of `mem_ls()`: %s nodes marked as reachable from the session's other roots,",
          format(walk[["marked"]], big.mark = ",")),
  sprintf("%s nodes reachable only from the user's bindings; the walk's own memory (pointer set, map,",
          format(walk[["walked"]], big.mark = ",")),
  sprintf("stacks) was %s, %.1f bytes per node.", format(mem_bytes(walk[["bytes"]])),
          walk[["bytes"]] / (walk[["marked"]] + walk[["walked"]])),
  "",
  "```",
  printed,
  "```",
  ""
)
dir.create(file.path("bench", "results"), showWarnings = FALSE)
writeLines(out, file.path("bench", "results", "session.md"))
message("wrote bench/results/session.md")
