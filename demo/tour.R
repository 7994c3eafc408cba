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
