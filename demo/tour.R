# A short tour of memkit. Run with demo("tour", package = "memkit").
library(memkit)

# ---- Numbers of bytes ------------------------------------------------------
# Every size memkit reports is a mem_bytes: it prints with units and computes
# like a number.
sizes <- mem_bytes(c(vector_header = 48, node = 56, page = 4096, big = 8e6))
sizes
sum(sizes)
format(sizes, standard = "SI")
sizes > "1 MB"

# ---- Object sizes ------------------------------------------------------------
# Shared memory counted once, compact vectors left compact, environments
# followed: mem_size() says what an object really holds.
x <- runif(1e5)
object.size(list(x, x))
mem_size(list(x, x))
mem_size(1:1e6)
mem_cells(x)                  # what gc() counts for it
fit <- lm(mpg ~ wt + qsec, data = mtcars)
mem_tree(fit, max_depth = 1)  # where the memory is, largest first
mem_by_type(fit)              # what it is made of

# ---- The session: what removing objects would free ---------------------------
# mem_ls() lists bindings with their size and retained size (what removing
# only that binding frees); y shares x's vector, so each retains little.
session <- local({
  x <- runif(1e6)
  y <- list(x, runif(10))
  z <- rnorm(5e5)
  environment()
})
mem_ls(session)
mem_retained(c("x", "y"), session)  # together they hold the vector
mem_rm(z, envir = session)          # removes z: predicted and freed
mem_dupes(list(a = session$x, b = session$x + 0))
mem_gc(trim = TRUE)

# ---- File-backed matrices ---------------------------------------------------
# An ordinary matrix whose data is a file: base R uses it without copying.
if (.Platform$OS.type != "windows") {
  path <- tempfile(fileext = ".fm")
  X <- fm_create(path, nrow = 10000, ncol = 5)
  for (j in 1:5) fm_write(X, rnorm(10000, mean = j), j = j)
  print(round(colMeans(X), 2))
  print(fm_info(X))
  length(serialize(X, NULL))   # what a worker receives: a reference, not data
  unlink(path)
}

# ---- Garbage collections ---------------------------------------------------
# Every collection R makes while an expression runs, as data: its level, the
# heap after it, and the R call that was running.
grow <- function(n) { out <- c(); for (i in seq_len(n)) out <- c(out, i); out }
tr <- gc_trace({ x <- grow(1e4); gc(); length(x) })
tr
head(as.data.frame(tr)[c("gc", "time", "level", "vcells_used", "explicit", "call")])
summary(tr)
gc_triggers()

# ---- Memory over time, peaks and leaks ------------------------------------
# mem_profile() samples resident memory from a C thread, records the R heap
# after each collection and the exact peak from the kernel.
p <- mem_profile({
  mem_mark("build")
  x <- numeric(2e7)
  mem_mark("sum")
  s <- sum(x)
  rm(x)
})
p
summary(p)
plot(p)
# The peak alone, above the baseline:
mem_peak(y <- numeric(1e7))
# Does a function keep memory it should not?
store <- new.env()
remember <- function() store[[as.character(length(store))]] <- numeric(128)
mem_leaks(remember, n = 30, warmup = 3)
