# Reads valgrind logs and prints the error records that involve memkit's
# code: invalid reads/writes, uninitialised values, bad frees, and definite
# leaks whose allocation stack passes through memkit.so.
logs <- commandArgs(trailingOnly = TRUE)
kinds <- "Invalid (read|write|free)|uninitialised|Mismatched free|definitely lost|Source and destination overlap|Syscall param"
for (f in logs) {
  lines <- readLines(f, warn = FALSE)
  body <- sub("^==[0-9]+== ?", "", lines)
  # Records are separated by blank lines.
  grp <- cumsum(body == "")
  for (rec in split(body, grp)) {
    rec <- rec[rec != ""]
    if (!length(rec)) next
    if (grepl(kinds, rec[[1L]]) && any(grepl("memkit\\.so|/memkit/src/", rec))) {
      cat(sprintf("--- %s\n", basename(f)), rec, sep = "\n")
    }
  }
}
