# README.md is rendered from README.Rmd; this script renders it and checks
# that it is not stale.
#
#   Rscript tools/readme.R           # render README.Rmd -> README.md (memkit
#                                    # as installed in the first library)
#   Rscript tools/readme.R --check   # exit 1 when README.md is not the
#                                    # rendering of README.Rmd as it is now
#
# tools/readme.sh installs memkit from the checkout first and then renders.
# The rendering records README.Rmd's MD5 sum, README.md's own (without that
# line) and one of memkit's code in README.md's "generated from" line; the
# check recomputes them, so a README.Rmd edited since its last rendering, a
# README.md edited by hand and a README.md from before README.Rmd existed all
# fail, with the command that fixes them. Code changed since the rendering is
# reported as a note.
args <- commandArgs(trailingOnly = TRUE)
root <- normalizePath(Sys.getenv("MK_ROOT", "."))
rmd <- file.path(root, "README.Rmd")
md <- file.path(root, "README.md")
stamp_re <- paste0("^<!-- README.md is generated from README.Rmd \\(md5 ([0-9a-f]{32})\\); ",
                   "this file's md5 ([0-9a-f]{32}), memkit's code ([0-9a-f]{32})")
stamp_line <- function(rmd_sum, md_sum, code_sum) {
  sprintf(paste0("<!-- README.md is generated from README.Rmd (md5 %s); this file's md5 %s, ",
                 "memkit's code %s (R/, src/). Edit README.Rmd, then run `bash tools/readme.sh`. -->"),
          rmd_sum, md_sum, code_sum)
}
md5_text <- function(lines) {
  f <- tempfile()
  on.exit(unlink(f))
  writeLines(lines, f, useBytes = TRUE)
  unname(tools::md5sum(f))
}
# README.md's own sum leaves out the line that holds it.
md_sum <- function(lines) md5_text(lines[!grepl("^<!-- README.md is generated from README.Rmd", lines)])
code_sum <- function() {
  files <- sort(list.files(file.path(root, c("R", "src")), pattern = "[.](R|c|h)$", full.names = TRUE))
  md5_text(unname(tools::md5sum(files)))
}
rmd_sum <- unname(tools::md5sum(rmd))

if ("--check" %in% args) {
  lines <- if (file.exists(md)) readLines(md, warn = FALSE) else character()
  hit <- Filter(function(h) length(h) == 4L, regmatches(lines, regexec(stamp_re, lines)))
  problem <- if (length(hit) != 1L) {
    "README.md has no 'generated from README.Rmd' line: it was not rendered from README.Rmd."
  } else if (!identical(hit[[1L]][[2L]], rmd_sum)) {
    sprintf("README.md is stale: it was rendered from a README.Rmd with MD5 %s; README.Rmd's is now %s.",
            hit[[1L]][[2L]], rmd_sum)
  } else if (!identical(hit[[1L]][[3L]], md_sum(lines))) {
    "README.md was edited after it was rendered: make the change in README.Rmd."
  }
  # Code changed since the rendering: the outputs may be out of date. Said,
  # not failed on (every change to R/ or src/ would need a new rendering).
  if (length(hit) == 1L && !identical(hit[[1L]][[4L]], code_sum())) {
    cat("Note: memkit's code (R/, src/) changed since README.md was rendered;",
        "render it again before a release: bash tools/readme.sh\n")
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
readme <- list(root = root, rmd = rmd, md = md, sum = rmd_sum, stamp_line = stamp_line,
               md_sum = md_sum, code_sum = code_sum)
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
out[[at]] <- readme$stamp_line(readme$sum, readme$md_sum(out), readme$code_sum())
writeLines(out, readme$md, useBytes = TRUE)
cat(sprintf("README.md rendered from README.Rmd (md5 %s) with memkit %s from %s\n", readme$sum,
            utils::packageVersion("memkit"), dirname(find.package("memkit"))))
