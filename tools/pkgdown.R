# Builds the pkgdown site into docs/ (git-ignored; nothing is deployed) with
# the memkit installed in the first library (tools/pkgdown.sh installs it
# from the checkout). Fails when an exported function is missing from
# _pkgdown.yml's reference index, and on any warning while building.
root <- normalizePath(Sys.getenv("MK_ROOT", "."))
setwd(root)

# Every export named in the index: the site lists each by name.
exports <- sort(getNamespaceExports("memkit"))
cfg <- yaml::read_yaml("_pkgdown.yml")
listed <- unlist(lapply(cfg$reference, function(s) s$contents))
missing <- setdiff(exports, listed)
unknown <- setdiff(listed, c(exports, sub("[.]Rd$", "", list.files("man", "[.]Rd$"))))
if (length(missing) || length(unknown)) {
  if (length(missing)) {
    cat("Exported functions missing from _pkgdown.yml's reference index:\n",
        paste0("  - ", missing, "\n"), sep = "")
  }
  if (length(unknown)) {
    cat("Names in _pkgdown.yml's reference index that are neither exports nor help pages:\n",
        paste0("  - ", unknown, "\n"), sep = "")
  }
  quit(status = 1L)
}
cat(sprintf("reference index: all %d exported functions listed\n", length(exports)))

# Offline: memkit is not on CRAN or Bioconductor, and nothing is fetched.
options(pkgdown.internet = FALSE)
# downlit looks up packages that are not installed (bigstatsr, mirai,
# future.batchtools, named in the vignettes) on CRAN to link them; offline,
# they are left unlinked instead of failing the build.
if (!isTRUE(as.logical(Sys.getenv("MEMKIT_PKGDOWN_ONLINE", "false")))) {
  utils::assignInNamespace("remote_metadata", function(package) NULL, "downlit")
  utils::assignInNamespace("CRAN_urls", function() data.frame(Package = character(), URL = character()),
                           "downlit")
}
warnings_seen <- character()
withCallingHandlers(
  pkgdown::build_site(root, preview = FALSE, new_process = FALSE, install = FALSE),
  warning = function(w) {
    warnings_seen <<- c(warnings_seen, conditionMessage(w))
  }
)
if (length(warnings_seen)) {
  cat(sprintf("pkgdown: %d warning(s):\n", length(warnings_seen)),
      paste0("  ", warnings_seen, "\n"), sep = "")
  quit(status = 1L)
}
cat(sprintf("pkgdown: site built in %s without warnings\n", file.path(root, "docs")))
