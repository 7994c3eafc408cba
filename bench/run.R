# Runs every benchmark script in bench/ and assembles bench/RESULTS.md from
# the sections they write to bench/results/<family>.md.
#
#   Rscript bench/run.R            # all families
#   Rscript bench/run.R size fm    # only these
#   Rscript bench/run.R --no-run   # only reassemble RESULTS.md from the sections
#
# Each bench/<family>.R can also be run on its own; it rewrites its section.
args <- commandArgs(trailingOnly = TRUE)
here <- "bench"
scripts <- setdiff(sub("[.]R$", "", list.files(here, pattern = "[.]R$")), c("run", "install", "common", "fm-grow"))
if ("--no-run" %in% args) scripts <- character() else if (length(args)) scripts <- intersect(scripts, args)
for (s in scripts) {
  message("== bench/", s, ".R")
  status <- system2(file.path(R.home("bin"), "Rscript"), c("--vanilla", file.path(here, paste0(s, ".R"))))
  if (status != 0) message("bench/", s, ".R failed with status ", status)
}
sections <- sort(list.files(file.path(here, "results"), pattern = "[.]md$", full.names = TRUE))
# Every section says which commit and which version of its script it came
# from (bench_stamp() in bench/common.R); one that does not is out of date.
unstamped <- sections[!vapply(sections, function(f) any(startsWith(readLines(f), "Stamp: commit")), logical(1))]
if (length(unstamped)) {
  message("sections without a stamp (rerun their scripts): ", paste(basename(unstamped), collapse = ", "))
}
si <- utils::sessionInfo()
header <- c(
  "# memkit benchmarks",
  "",
  "Written by `Rscript bench/run.R`; each section by its own `bench/<family>.R`.",
  "Every figure is measured side by side with the peers in one R process and",
  "reported as a ratio. Each section names its machine and package versions,",
  "and its `Stamp:` line the commit and the script (by hash) it came from.",
  ""
)
writeLines(c(header, unlist(lapply(sections, function(f) c(readLines(f), "")))),
           file.path(here, "RESULTS.md"))
message("wrote bench/RESULTS.md")
