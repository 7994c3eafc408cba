# The tests themselves: every test that calls a function documented
# unsupported on some OS (R/platforms.R) skips there, in its block or at the
# top of its file, so R CMD check passes on every platform CRAN checks.

# The names of every function called in an expression; not those inside
# expect_error(class = "memkit_error_unsupported"), the test of the error
# an unsupported function gives.
called <- function(e) {
  if (is.call(e)) {
    head <- e[[1L]]
    if (identical(head, as.name("expect_error")) && "memkit_error_unsupported" %in% as.list(e)[-1L]) {
      return("expect_error")
    }
    out <- if (is.symbol(head)) as.character(head) else called(head)
    for (a in as.list(e)[-1L]) if (!missing(a)) out <- c(out, called(a))
    return(unique(out))
  }
  if (is.expression(e) || is.list(e) || is.pairlist(e)) {
    return(unique(unlist(lapply(as.list(e), function(a) if (missing(a)) NULL else called(a)))))
  }
  character()
}

# The OSes that skip calls in `e`: skip_on_os(), skip_if_not_linux(), and
# skip_if_unsupported(f) (the OSes where f is unsupported).
skipped_on <- function(e, unsupported) {
  out <- character()
  walk <- function(e) {
    if (!is.call(e)) return()
    f <- e[[1L]]
    name <- if (is.symbol(f)) as.character(f) else ""
    if (name == "skip_on_os") out <<- c(out, tryCatch(eval(e[[2L]], baseenv()), error = function(err) ""))
    if (name == "skip_if_not_linux") out <<- c(out, setdiff(names(unsupported), "linux"))
    if (name == "skip_if_unsupported" && is.character(e[[2L]])) {
      out <<- c(out, names(unsupported)[vapply(unsupported, function(u) e[[2L]] %in% u, logical(1))])
    }
    for (a in as.list(e)[-1L]) if (!missing(a)) walk(a)
  }
  walk(e)
  unique(out)
}

# "file: test name: f() (OS)" for every test block that calls a function
# unsupported on an OS it does not skip.
unskipped_calls <- function(exprs, file, unsupported) {
  top <- Filter(function(e) !(is.call(e) && identical(e[[1L]], as.name("test_that"))), exprs)
  file_skips <- unlist(lapply(top, skipped_on, unsupported = unsupported))
  out <- character()
  for (e in exprs) {
    if (!(is.call(e) && identical(e[[1L]], as.name("test_that")))) next
    body <- e[[3L]]
    calls <- called(body)
    skips <- c(file_skips, skipped_on(body, unsupported))
    for (os in names(unsupported)) {
      bad <- intersect(calls, unsupported[[os]])
      if (length(bad) && !os %in% skips) {
        out <- c(out, sprintf("%s: %s: %s() (%s)", file, e[[2L]], paste(bad, collapse = "(), "), os))
      }
    }
  }
  out
}

test_that("the checker finds an unskipped call and accepts the skips", {
  u <- list(windows = c("gc_trace"), sunos = "fm_open")
  code <- parse(text = c(
    'test_that("a", { x <- gc_trace(f()) })',
    'test_that("b", { skip_if_unsupported("gc_trace"); gc_trace(1) })',
    'test_that("c", { skip_on_os(c("windows", "solaris")); lapply(1, function(i) fm_open(i)) })',
    'test_that("d", { skip_if_not_linux(); fm_open(gc_trace(1)) })',
    'test_that("e", { expect_error(gc_trace(1), class = "memkit_error_unsupported") })',
    'test_that("f", { expect_error(gc_trace(1), class = "memkit_error_argument") })'
  ), keep.source = FALSE)
  expect_identical(unskipped_calls(code, "t.R", u),
                   c("t.R: a: gc_trace() (windows)", "t.R: c: fm_open() (sunos)",
                     "t.R: f: gc_trace() (windows)"))
  top <- parse(text = c('skip_if_unsupported("gc_trace")', 'test_that("a", gc_trace(1))'),
               keep.source = FALSE)
  expect_identical(unskipped_calls(top, "t.R", u), character())
})

test_that("no test calls a function unsupported on an OS without skipping there", {
  unsupported <- memkit:::platform_unsupported
  files <- list.files(test_path(), pattern = "^test-.*\\.R$", full.names = TRUE)
  expect_true(length(files) > 5)
  bad <- unlist(lapply(files, function(f) {
    unskipped_calls(parse(f, keep.source = FALSE), basename(f), unsupported)
  }))
  expect_identical(bad, character())
})
