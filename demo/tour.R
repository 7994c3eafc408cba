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
