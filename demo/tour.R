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
