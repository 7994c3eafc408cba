# README.md is rendered from README.Rmd; this script renders it and checks
# that it is not stale.
#
#   Rscript tools/readme.R           # render README.Rmd -> README.md (memkit
#                                    # as installed in the first library)
#   Rscript tools/readme.R --check   # exit 1 when README.md is not the
#                                    # rendering of README.Rmd as it is now
#
# tools/readme.sh installs memkit from the checkout first and then renders.
# The rendering records README.Rmd's MD5 sum in README.md's "generated from"
# line; the check compares that with README.Rmd's sum, so a README.Rmd edited
# since its last rendering, a README.md edited by hand and a README.md from
# before README.Rmd existed all fail, with the command that fixes them.
args <- commandArgs(trailingOnly = TRUE)
root <- normalizePath(Sys.getenv("MK_ROOT", "."))
rmd <- file.path(root, "README.Rmd")
md <- file.path(root, "README.md")
stamp_re <- "^<!-- README.md is generated from README.Rmd \\(md5 ([0-9a-f]{32})\\)"
stamp_line <- function(sum) {
  sprintf(paste0("<!-- README.md is generated from README.Rmd (md5 %s): edit README.Rmd, ",
                 "then run `bash tools/readme.sh`. -->"), sum)
}
rmd_sum <- unname(tools::md5sum(rmd))

if ("--check" %in% args) {
  lines <- if (file.exists(md)) readLines(md, warn = FALSE) else character()
  hit <- regmatches(lines, regexec(stamp_re, lines))
  sums <- unlist(lapply(hit, function(h) if (length(h) == 2L) h[[2L]]))
  problem <- if (length(sums) != 1L) {
    "README.md has no 'generated from README.Rmd' line: it was not rendered from README.Rmd."
  } else if (!identical(sums, rmd_sum)) {
    sprintf("README.md is stale: it was rendered from a README.Rmd with MD5 %s; README.Rmd's is now %s.",
            sums, rmd_sum)
  }
  # Figures the README shows must be there.
  figs <- unlist(regmatches(lines, gregexpr("man/figures/README-[A-Za-z0-9_.-]+", lines)))
  missing <- figs[!file.exists(file.path(root, figs))]
  if (length(missing)) {
    problem <- c(problem, sprintf("README.md shows %s, which does not exist.", missing))
  }
  if (length(problem)) {
    cat(problem, "Render it again: bash tools/readme.sh", sep = "\n")
    quit(status = 1L)
  }
  cat("README.md is the rendering of README.Rmd as it is now.\n")
  quit(status = 0L)
}

# Render. Old figures go first, so that only those the README shows remain.
unlink(Sys.glob(file.path(root, "man", "figures", "README-*")))
# knitr alone (no pandoc): the Markdown around the chunks is kept as written.
# The chunks run in the global environment, as a user's code would (a
# closure's or formula's environment there is not followed by mem_size()).
readme <- list(root = root, rmd = rmd, md = md, sum = rmd_sum, stamp_line = stamp_line)
rm(list = setdiff(ls(globalenv()), "readme"), envir = globalenv())
owd <- setwd(readme$root)
knitr::knit(readme$rmd, readme$md, envir = globalenv(), quiet = TRUE, encoding = "UTF-8")
setwd(owd)
out <- readLines(readme$md, warn = FALSE, encoding = "UTF-8")
# Lines of blanks left by indented chunks become empty, runs of empty lines
# one, and the set-up chunk's empty lines above the title go.
out[grepl("^\\s*$", out)] <- ""
out <- out[!(out == "" & c(TRUE, utils::head(out, -1L) == ""))]
at <- grep("^<!-- README.md is generated from README.Rmd", out)
if (length(at) != 1L) stop("README.Rmd must have one 'README.md is generated from README.Rmd' line")
out[[at]] <- readme$stamp_line(readme$sum)
writeLines(out, readme$md, useBytes = TRUE)
cat(sprintf("README.md rendered from README.Rmd (md5 %s) with memkit %s from %s\n", readme$sum,
            utils::packageVersion("memkit"), dirname(find.package("memkit"))))
