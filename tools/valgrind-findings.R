# Reads valgrind logs and prints the error records that involve memkit's
# code: invalid reads/writes, uninitialised values, bad frees, and definite
# leaks whose allocation stack passes through memkit.so.
logs <- commandArgs(trailingOnly = TRUE)
# A frame is memkit's when it is in memkit.so or in one of its source files.
src <- list.files(file.path(Sys.getenv("MK_ROOT"), "src"), pattern = "[.][ch]$")
ours <- paste0("memkit\\.so|\\((", paste(gsub(".", "\\.", src, fixed = TRUE), collapse = "|"), "):[0-9]+\\)")
kinds <- "Invalid (read|write|free)|uninitialised|Mismatched free|definitely lost|Source and destination overlap|Syscall param"
for (f in logs) {
  lines <- readLines(f, warn = FALSE)
  body <- sub("^==[0-9]+== ?", "", lines)
  # Records are separated by blank lines.
  grp <- cumsum(body == "")
  for (rec in split(body, grp)) {
    rec <- rec[rec != ""]
    if (!length(rec)) next
    if (grepl(kinds, rec[[1L]]) && any(grepl(ours, rec))) {
      cat(sprintf("--- %s\n", basename(f)), rec, sep = "\n")
    }
  }
}
