# ---- ground truth -----------------------------------------------------------

# Cells that removing `names` from `envir` and a full collection free,
# measured in a forked child so the test process keeps its objects. The
# count keeps what it measures in a vector made beforehand and forces all it
# uses before the first collection; the JIT is off (compiling a function on
# its first calls would allocate between the counts). What the counting
# itself leaves alive is measured once, on an empty removal, and subtracted.
count_freed_cells <- function(nms, envir) {
  force(nms)
  rm(list = character(), envir = envir)
  cells <- numeric(4)
  first <- 1:2
  second <- 3:4
  cells[first] <- used_cells()
  rm(list = nms, envir = envir)
  cells[second] <- used_cells()
  cells[first] - cells[second]
}

# One full collection frees whatever the previous count left behind. (The
# child collects once before counting: after fork() it holds garbage with
# finalizers, which the first collection runs and the second frees.)
used_cells <- function() {
  g <- gc(full = TRUE)
  c(g[1L, 1L], g[2L, 1L])
}

in_fork <- function(expr) {
  job <- parallel::mcparallel(expr)
  res <- parallel::mccollect(job)[[1L]]
  if (inherits(res, "try-error")) stop(res)
  res
}

# A matrix (ncells, vcells by removal) of what each removal frees, done in
# turn in one forked child. `removals` is a list of list(names, envir); the
# environments must not share memory with one another. Two empty removals
# come first: one warms up, the other measures what the counting itself
# leaves alive, which is subtracted.
freed_in_child <- function(removals) {
  skip_on_os("windows")
  none <- list(names = character(), envir = new.env())
  all <- c(list(none, none), removals)
  res <- in_fork({
    compiler::enableJIT(0)
    gc(full = TRUE)
    vapply(all, function(r) count_freed_cells(r$names, r$envir), numeric(2))
  })
  out <- res[, -(1:2), drop = FALSE] - res[, 2L]
  rownames(out) <- c("ncells", "vcells")
  out
}

cells_of <- function(x) attr(x, "cells")

# ---- random object graphs ---------------------------------------------------

# An environment of `n` bindings whose values share memory in random ways:
# vectors of every size class, aliases, lists holding other values, nested
# environments (some holding themselves) and closures capturing them. Strings
# are random so that no symbol or other object in the session holds them.
random_graph <- function(seed, n = 8L) {
  withr::local_seed(seed)
  e <- new.env(parent = emptyenv())
  pool <- list()
  pick <- function() if (length(pool)) pool[[sample.int(length(pool), 1L)]] else runif(3)
  hex <- function(k) {
    vapply(seq_len(k), function(i) paste(sample(c(0:9, letters[1:6]), 12L, TRUE), collapse = ""),
           character(1))
  }
  for (i in seq_len(n)) {
    kind <- sample(c("vec", "vec", "str", "alias", "list", "env", "closure"), 1L)
    val <- switch(kind,
      vec = runif(sample(c(0L, 1L, 3L, 5L, 12L, 40L, 300L, 5000L), 1L)),
      str = hex(sample(1:20, 1L)),
      alias = pick(),
      list = {
        k <- sample(1:4, 1L)
        l <- lapply(seq_len(k), function(j) if (runif(1) < 0.6) pick() else runif(7))
        if (runif(1) < 0.5) names(l) <- hex(k)
        l
      },
      env = {
        inner <- new.env(parent = emptyenv())
        inner$a <- pick()
        if (runif(1) < 0.5) inner$self <- inner
        if (runif(1) < 0.3) inner$b <- runif(20)
        inner
      },
      closure = {
        inner <- new.env(parent = emptyenv())
        inner$v <- pick()
        f <- function() NULL
        environment(f) <- inner
        f
      }
    )
    if (runif(1) < 0.15 && is.atomic(val) && length(val)) attr(val, "tag") <- pick()
    nm <- sprintf("b%02d", i)
    assign(nm, val, envir = e)
    pool[[length(pool) + 1L]] <- val
  }
  e
}

random_subset <- function(e) {
  nms <- sort(ls(e))
  sample(nms, sample.int(length(nms), 1L))
}

# ---- the ground truth itself ------------------------------------------------

test_that("the fork-based ground truth counts what removal frees", {
  skip_if_not_linux()
  graph <- function() {
    e <- new.env(parent = emptyenv())
    e$big <- runif(1e5)
    e$alias <- e$big
    e$own <- runif(1e4)
    e
  }
  cases <- list(
    list(names = "own", envir = graph()),
    list(names = "big", envir = graph()),
    list(names = c("big", "alias"), envir = graph()),
    list(names = character(), envir = graph())
  )
  # A binding cell is one Ncell; a vector of 1e4 doubles 1 + 1e4 cells.
  expect_equal(freed_in_child(cases), cbind(
    c(ncells = 2, vcells = 1e4), c(1, 0), c(3, 1e5), c(0, 0)
  ))
})

# ---- mem_retained() ---------------------------------------------------------

test_that("mem_retained() counts only what no other binding reaches", {
  e <- new.env(parent = emptyenv())
  e$big <- runif(1e5)
  e$alias <- e$big
  e$own <- runif(1e4)
  expect_equal(cells_of(mem_retained("big", e)), c(ncells = 1, vcells = 0))
  expect_equal(cells_of(mem_retained(c("big", "alias"), e)), c(ncells = 3, vcells = 1e5))
  r <- mem_retained("own", e)
  expect_s3_class(r, "mem_bytes")
  expect_equal(as.numeric(r), 56 + 48 + 8e4)
})

test_that("mem_retained() sees values held by the call stack", {
  e <- new.env(parent = emptyenv())
  e$x <- runif(1e4)
  held <- function(v) {
    force(v)
    mem_retained("x", e)
  }
  # The argument is a promise in held()'s frame whose value is e$x.
  expect_equal(cells_of(held(e$x)), c(ncells = 1, vcells = 0))
  expect_equal(cells_of(mem_retained("x", e)), c(ncells = 2, vcells = 1e4))
})

test_that("mem_retained() works in the caller's frame and never forces promises", {
  f <- function() {
    x <- runif(1e4)
    delayedAssign("p", stop("forced"))
    list(x = mem_retained("x"), p = mem_retained("p"))
  }
  res <- f()
  expect_equal(cells_of(res$x), c(ncells = 2, vcells = 1e4))
  expect_gt(as.numeric(res$p), 0)
})

test_that("mem_retained() equals what removal frees on random graphs", {
  skip_if_not_linux()
  skip_on_cran()
  # Fewer under valgrind, which runs everything some 30 times slower.
  n <- if (identical(Sys.getenv("MEMKIT_VALGRIND"), "true")) 10L else 50L
  graphs <- lapply(seq_len(n), random_graph)
  subsets <- lapply(graphs, random_subset)
  predicted <- mapply(function(g, s) cells_of(mem_retained(s, g)), graphs, subsets)
  freed <- freed_in_child(Map(function(g, s) list(names = s, envir = g), graphs, subsets))
  for (i in seq_along(graphs)) {
    expect_equal(freed[, i], predicted[, i],
                 label = sprintf("freed (seed %d: %s)", i, paste(subsets[[i]], collapse = " ")))
  }
})

test_that("mem_rm() predicts what it frees on random graphs", {
  skip_if_not_linux()
  skip_on_cran()
  warm <- new.env()
  warm$w <- 1
  mem_rm(list = "w", envir = warm)
  graphs <- lapply(51:55, random_graph)
  subsets <- lapply(graphs, random_subset)
  res <- in_fork({
    compiler::enableJIT(0)
    Map(function(g, s) {
      r <- mem_rm(list = s, envir = g)
      list(cells_of(r$predicted), cells_of(r$freed), any(vapply(s, exists, NA, envir = g)))
    }, graphs, subsets)
  })
  for (i in seq_along(res)) {
    expect_equal(res[[i]][[2L]], res[[i]][[1L]], label = sprintf("freed (seed %d)", 50 + i))
    expect_false(res[[i]][[3L]])
  }
})

test_that("mem_retained() rejects what it cannot answer", {
  e <- new.env()
  e$a <- 1
  expect_error(mem_retained("zz", e), class = "memkit_error_argument")
})

# ---- mem_ls() -----------------------------------------------------------------

test_that("mem_ls() lists sizes, retained sizes and shares", {
  e <- new.env(parent = emptyenv())
  e$x <- runif(1e5)
  e$y <- list(e$x, runif(10))
  e$z <- rnorm(5e4)
  delayedAssign("lazy", stop("never forced"), eval.env = emptyenv(), assign.env = e)
  # Made without source references, whose size depends on this file.
  act <- as.function(alist(stop("never called")), envir = emptyenv())
  makeActiveBinding("act", act, e)
  res <- mem_ls(e)
  expect_s3_class(res, c("mem_ls", "data.frame"))
  expect_setequal(res$name, c("x", "y", "z", "lazy", "act"))
  expect_identical(res$name[[1L]], "z")
  expect_identical(res$shares[[match("x", res$name)]], "y")
  expect_identical(res$shares[[match("y", res$name)]], "x")
  expect_identical(res$class[match(c("lazy", "act"), res$name)], c("<promise>", "<active>"))
  for (nm in res$name) {
    expect_equal(res$retained[[match(nm, res$name)]], mem_retained(nm, e), ignore_attr = TRUE)
  }
  expect_equal(attr(res, "total_retained"), mem_retained(res$name, e))
})

test_that("mem_ls() lists a function's missing arguments without touching them", {
  f <- function(a, b) mem_ls()
  one <- 1
  res <- f(one)
  expect_identical(res$class[match(c("a", "b"), res$name)], c("<promise>", "<missing>"))
})


# Do two bindings share memory? Together they are smaller than apart. (A
# function, so that no frame of the test keeps the values alive.)
share_memory <- function(a, b, envir) {
  a <- get(a, envir = envir)
  b <- get(b, envir = envir)
  as.numeric(mem_size(a, b)) < as.numeric(mem_size(a) + mem_size(b))
}

test_that("mem_ls() on random graphs: retained as mem_retained(), shares real", {
  for (seed in 1:3) {
    e <- random_graph(seed, n = 10L)
    res <- mem_ls(e)
    expect_lte(sum(res$retained), attr(res, "total_retained"))
    expect_equal(attr(res, "total_retained"), mem_retained(res$name, e))
    for (i in seq_len(nrow(res))) {
      expect_equal(res$retained[[i]], mem_retained(res$name[[i]], e), ignore_attr = TRUE,
                   label = sprintf("retained (seed %d, %s)", seed, res$name[[i]]))
      for (other in res$shares[[i]]) {
        expect_true(share_memory(res$name[[i]], other, e))
      }
    }
  }
})

test_that("mem_ls() on 1,000 bindings sharing memory at random", {
  withr::local_seed(1)
  e <- new.env()
  base <- lapply(1:200, function(i) runif(sample(1:2000, 1L)))
  for (i in 1:1000) {
    k <- sample(0:3, 1L)
    val <- if (k == 0L) runif(sample(1:500, 1L)) else base[sample.int(200L, k)]
    assign(sprintf("v%04d", i), val, envir = e)
  }
  rm(base)
  # Every pair that shares anything, however little.
  res <- mem_ls(e, min_shared = 0)
  expect_equal(nrow(res), 1000L)
  # By default, only pairs that share 1 KiB or more: fewer.
  by_default <- mem_ls(e)
  expect_identical(by_default$name, res$name)
  expect_true(all(mapply(function(a, b) all(a %in% b), by_default$shares, res$shares)))
  expect_lte(sum(res$retained), attr(res, "total_retained"))
  # Every share listed is real: the two bindings hold a vector in common.
  held <- lapply(mget(res$name, envir = e), function(v) if (is.list(v)) v else list(v))
  for (i in sample(which(lengths(res$shares) > 0L), 50L)) {
    mine <- held[[res$name[[i]]]]
    for (other in res$shares[[i]]) {
      theirs <- held[[other]]
      expect_true(any(vapply(mine, function(a) any(vapply(theirs, identical, logical(1), a)),
                             logical(1))))
    }
  }
  # ... and every sharing pair is listed.
  unshared <- res$name[lengths(res$shares) == 0L]
  for (nm in sample(unshared, min(50L, length(unshared)))) {
    expect_equal(res$retained[[match(nm, res$name)]], mem_size(get(nm, envir = e)) + 56,
                 ignore_attr = TRUE)
  }
})

test_that("mem_ls() leaves small shared attributes out of `shares`", {
  # Made in a function, whose frame is gone by the time mem_ls() looks.
  make <- function() {
    e <- new.env(parent = emptyenv())
    e$m <- matrix(runif(1e4), 100)
    e$m2 <- e$m * 2            # holds m's 56-byte dim vector, nothing more
    e$v <- runif(1e3)
    e$w <- list(e$v)           # holds v's 8 KB of data
    e$s <- 1:3 + 0L
    e$t <- e$s                 # one 64-byte vector under two names
    a <- runif(70)             # 608 bytes each
    b <- runif(70)
    e$p <- list(a, b)
    e$q <- list(a, b)          # 1,216 bytes in common with p, in one set
    e$r <- list(a)             # 608 bytes in common with p and q
    e
  }
  e <- make()
  res <- mem_ls(e)
  sh <- setNames(res$shares, res$name)
  expect_identical(sh$m, character())
  expect_identical(sh$m2, character())
  expect_identical(sh$v, "w")
  expect_identical(sh$w, "v")
  expect_identical(sh$s, character())
  expect_identical(sh$p, "q")
  expect_identical(sh$q, "p")
  expect_identical(sh$r, character())
  # Still shared: the dim vector is in neither one's retained size.
  expect_equal(res$retained[[match("m", res$name)]], res$size[[match("m", res$name)]])
  # All sharing on request, none beyond a threshold given as a size.
  all_sharing <- mem_ls(e, min_shared = 0)
  sh0 <- setNames(all_sharing$shares, all_sharing$name)
  expect_identical(sh0$m, "m2")
  expect_identical(sh0$s, "t")
  expect_identical(sh0$r, c("p", "q"))
  sh_big <- setNames(mem_ls(e, min_shared = "10 KB")$shares, res$name)
  expect_true(all(lengths(sh_big) == 0L))
  expect_error(mem_ls(e, min_shared = -1), class = "memkit_error_argument")
  expect_error(mem_ls(e, min_shared = "lots"), class = "memkit_error_argument")
})

test_that("a subset of mem_ls()'s rows prints without a stale total", {
  e <- new.env(parent = emptyenv())
  e$x <- runif(1e5)
  e$y <- list(e$x, runif(10))
  e$z <- rnorm(5e4)
  res <- mem_ls(e)
  big <- res[res$size > 500e3, ]
  expect_identical(sort(big$name), c("x", "y"))
  out <- capture.output(print(big))
  expect_identical(out[[1L]], "<mem_ls> 2 of 3 bindings")
  expect_false(any(grepl("(total)", out, fixed = TRUE)))
  # Every row, in another order, is still the whole environment.
  out <- capture.output(print(res[order(res$name), ]))
  expect_identical(out[[1L]], "<mem_ls> 3 bindings")
  expect_true(any(grepl("(total)", out, fixed = TRUE)))
  # The same binding twice is not the whole environment either.
  expect_false(any(grepl("(total)", capture.output(print(res[c(1, 1, 2), ])), fixed = TRUE)))
})

test_that("a subset of mem_ls()'s columns prints as a data frame", {
  e <- new.env(parent = emptyenv())
  e$x <- runif(1e5)
  e$z <- rnorm(5e4)
  res <- mem_ls(e)
  for (cols in list(c("name", "size"), "name", c("name", "class", "size", "retained"))) {
    out <- capture.output(print(res[cols]))
    expect_false(any(grepl("NULL|(total)", out)), label = paste(cols, collapse = ", "))
    expect_false(any(grepl("<mem_ls>", out, fixed = TRUE)))
  }
})

# ---- mem_rm() -------------------------------------------------------------------

test_that("mem_rm() removes and reports", {
  e <- new.env()
  e$x <- runif(1e5)
  e$y <- 1
  res <- mem_rm(x, envir = e)
  expect_false(exists("x", envir = e))
  expect_true(exists("y", envir = e))
  expect_identical(res$names, "x")
  expect_equal(cells_of(res$predicted), c(ncells = 2, vcells = 1e5))
  expect_error(mem_rm(nope, envir = e), class = "memkit_error_argument")
})

test_that("mem_retained() and mem_rm() reject empty names and bad lists, classed", {
  e <- new.env()
  e$a <- 1
  expect_error(mem_retained("", e), class = "memkit_error_argument")
  expect_error(mem_retained(c("a", ""), e), class = "memkit_error_argument")
  expect_error(mem_rm(list = "", envir = e), class = "memkit_error_argument")
  expect_error(mem_rm("", envir = e), class = "memkit_error_argument")
  expect_error(mem_rm(list = 1, envir = e), class = "memkit_error_argument")
  expect_true(exists("a", envir = e, inherits = FALSE))
})

test_that("mem_rm() in a locked environment is a state error, raised before collecting", {
  locked <- new.env()
  locked$a <- runif(10)
  locked$b <- 1
  lockBinding("b", locked)
  lockEnvironment(locked)
  local({
    # Nothing may be collected or removed before the error.
    local_mocked_bindings(count_freed = function(...) stop("collected"), gc_used = function() stop("collected"))
    expect_error(mem_rm(a, envir = locked), class = "memkit_error_state")
    expect_error(mem_rm(list = c("a", "b"), envir = locked), class = "memkit_error_state")
  })
  expect_true(all(c("a", "b") %in% ls(locked)))
})

test_that("mem_rm() removes a locked binding of an unlocked environment, as rm() does", {
  e <- new.env()
  e$b <- runif(10)
  lockBinding("b", e)
  res <- mem_rm(b, envir = e)
  expect_false(exists("b", envir = e, inherits = FALSE))
  expect_identical(res$names, "b")
})

# ---- mem_gc() -------------------------------------------------------------------

test_that("mem_gc() reports before, after and freed", {
  res <- mem_gc()
  expect_s3_class(res, c("mem_gc", "data.frame"))
  expect_identical(res$what, c("Ncells", "Vcells", "RSS"))
  expect_s3_class(res$freed, "mem_bytes")
  expect_true(all(res$before[1:2] >= res$after[1:2]))
  # Garbage made after one mem_gc() is freed by the next.
  x <- runif(1e6)
  rm(x)
  res <- mem_gc()
  expect_gte(as.numeric(res$freed[[2L]]), 8e6)
  # Figures vary from run to run, and so do the column widths they set.
})

test_that("subsets of a mem_gc() result print what they have", {
  res <- mem_gc()
  out <- capture.output(print(res[c("what", "freed")]))
  expect_identical(out[[1L]], "<mem_gc>")
  expect_match(out[[2L]], "^ +freed$")
  expect_false(any(grepl("NULL", out)))
  out <- capture.output(print(res[res$what != "RSS", ]))
  expect_length(out, 4L)
  expect_false(any(grepl("RSS", out)))
  # Without `what`, a plain data frame.
  out <- capture.output(print(res[c("before", "after")]))
  expect_false(any(grepl("NULL|<mem_gc>", out)))
  expect_length(out, 4L)
})

test_that("mem_gc(trim = TRUE) adds the trim row", {
  res <- mem_gc(trim = TRUE)
  expect_identical(res$what, c("Ncells", "Vcells", "RSS", "RSS (trim)"))
  expect_type(attr(res, "trimmed"), "logical")
  expect_error(mem_gc(full = NA), class = "memkit_error_argument")
  expect_error(mem_gc(trim = "yes"), class = "memkit_error_argument")
})

test_that("mem_gc(trim = TRUE) gives a large freed list back to the system", {
  skip_if_not_linux()
  skip_on_cran()
  skip_if_not(Sys.getenv("MEMKIT_HEAVY_TESTS") == "true", "set MEMKIT_HEAVY_TESTS=true")
  res <- in_fork({
    mem_gc(trim = TRUE)
    before <- rss_now()
    x <- lapply(1:1e7, function(i) c(i, i))
    made <- rss_now()
    rm(x)
    plain <- mem_gc()
    trimmed <- mem_gc(trim = TRUE)
    list(before = before, made = made, plain = plain, trimmed = trimmed)
  })
  after <- res$trimmed$after[[4L]]
  message(sprintf("RSS before %s, with the list %s, after rm + gc %s, after trim %s",
                  format(res$before), format(res$made), format(res$plain$after[[3L]]), format(after)))
  expect_gt(as.numeric(res$plain$after[[3L]]), 1.5 * as.numeric(res$before))
  expect_lt(abs(as.numeric(after) - as.numeric(res$before)), 0.1 * as.numeric(res$before))
})

# ---- mem_dupes() ----------------------------------------------------------------

test_that("mem_dupes() finds copies, not shared vectors", {
  a <- runif(1e4)
  x <- list(a = a, b = a + 0, c = a, d = runif(1e4), e = list(f = a + 0))
  res <- mem_dupes(x)
  expect_s3_class(res, c("mem_dupes", "data.frame"))
  expect_equal(nrow(res), 1L)
  expect_identical(res$copies, 3L)
  expect_equal(as.numeric(res$wasted), 2 * (48 + 8e4))
  expect_setequal(res$paths[[1L]], c("x$a", "x$b", "x$c", "x$e$f"))
})

test_that("subsets of a mem_dupes() result print", {
  a <- runif(1e4)
  x <- list(a = a, b = a + 0, c = a, d = runif(2e3), e = list(f = a + 0), g = 1:3e3 + 0L)
  x$h <- x$g + 0L
  res <- mem_dupes(x)
  expect_equal(nrow(res), 2L)
  for (cols in list(c("type", "copies"), "paths", c("type", "length", "size", "copies", "wasted"))) {
    expect_no_error(out <- capture.output(print(res[cols])))
    expect_false(any(grepl("<mem_dupes>", out, fixed = TRUE)))
  }
  # Rows filtered: the header adds up the rows shown.
  out <- capture.output(print(res[res$type == "integer", ]))
  expect_identical(out[[1L]], "<mem_dupes> 1 group of identical vectors, 11.8 KiB wasted")
  expect_identical(capture.output(print(res[res$copies > 5, ])),
                   "<mem_dupes> 0 groups of identical vectors, 0 B wasted")
})

test_that("mem_dupes() walks environments, attributes and closures without forcing", {
  e <- new.env()
  e$v <- 1:1e4 + 0L
  e$w <- structure(1:3, extra = 1:1e4 + 0L)
  e$f <- local({ inner <- 1:1e4 + 0L; function() inner })
  e$self <- e
  delayedAssign("p", stop("forced"), assign.env = e)
  makeActiveBinding("act", function() stop("called"), e)
  res <- mem_dupes(e)
  expect_equal(nrow(res), 1L)
  expect_setequal(res$paths[[1L]], c("e$v", "attr(e$w, \"extra\")", "environment(e$f)$inner"))
  expect_equal(nrow(mem_dupes(e, min_bytes = 1e6)), 0L)
})

test_that("mem_dupes() tells apart vectors that differ in type or one element", {
  a <- runif(1e4)
  b <- a
  b[5000] <- 0
  x <- list(a, b, as.integer(a * 1e6), as.integer(a * 1e6), letters, letters[26:1])
  res <- mem_dupes(x, min_bytes = 0)
  expect_equal(nrow(res), 1L)
  expect_identical(res$type, "integer")
  expect_error(mem_dupes(x, min_bytes = -1), class = "memkit_error_argument")
})

test_that("mem_dupes() handles deep nesting and leaves compact vectors compact", {
  x <- list()
  for (i in 1:1e4) x <- list(x)
  expect_equal(nrow(mem_dupes(x)), 0L)
  y <- list(1:1e6, 1:1e6)
  expect_equal(nrow(mem_dupes(y)), 0L)
})

test_that("mem_dupes() takes NULL, NULL bindings and environments with a format() method", {
  expect_equal(nrow(mem_dupes(NULL)), 0L)
  e <- new.env()
  e$nothing <- NULL
  e$v <- runif(2e3)
  e$w <- e$v + 0
  expect_equal(nrow(mem_dupes(e)), 1L)
  # Two environments that format() alike (as R6 objects do) are still two.
  a <- structure(new.env(), class = "memkitTestR6")
  b <- structure(new.env(), class = "memkitTestR6")
  registerS3method("format", "memkitTestR6", function(x, ...) "<memkitTestR6>")
  a$x <- runif(2e3)
  b$x <- a$x + 0
  res <- mem_dupes(list(a = a, b = b))
  expect_equal(nrow(res), 1L)
  expect_setequal(res$paths[[1L]], c("x$a$x", "x$b$x"))
})

test_that("mem_dupes() survives a list nested 3e5 deep", {
  skip_on_cran()
  res <- in_child(function() {
    x <- list(runif(2e3), runif(2e3))
    x[[2]][] <- x[[1]]
    for (i in 1:3e5) x <- list(x)
    nrow(memkit::mem_dupes(x))
  })
  expect_true(res$ok)
  expect_identical(res$value, 1L)
})

# Printed output and error messages, in one block: snapshots skip on CRAN,
# and a skip ends its block, so the checks above stay out of it.
# Closures that capture the environment holding them all (an R6 object, a
# Shiny module): every binding reaches the whole environment.
closure_env <- function(n) {
  e <- new.env()
  for (i in seq_len(n)) {
    f <- function() NULL
    environment(f) <- e
    assign(sprintf("f%05d", i), f, envir = e)
  }
  e
}

test_that("mem_ls() sizes every binding from one graph: work grows linearly", {
  small <- attr(mem_ls(closure_env(200)), "walk")
  big <- attr(mem_ls(closure_env(2000)), "walk")
  # The graph holds each node once; queries take about one step a binding
  # (a walk per binding would take n steps each: n^2 in all).
  expect_lte(big[["sized"]], 10.5 * small[["sized"]])
  expect_lte(big[["steps"]], 10.5 * small[["steps"]])
  expect_lte(big[["steps"]], 2 * 2000)
  e <- closure_env(300)
  res <- mem_ls(e)
  expect_equal(as.numeric(res$size), rep(as.numeric(mem_size(e$f00001)), 300))
})

test_that("mem_ls() sizes match mem_size() on graphs with shared parts and cycles", {
  set.seed(11)
  for (trial in 1:15) {
    pool <- list(runif(50), 1:10, letters, list(1, "a"))
    envs <- replicate(4, new.env(parent = emptyenv()), simplify = FALSE)
    for (k in 1:25) {
      obj <- switch(sample(6, 1),
        runif(sample(30, 1)),
        pool[[sample(length(pool), 1)]],
        list(pool[[sample(length(pool), 1)]], pool[[sample(length(pool), 1)]]),
        envs[[sample(4, 1)]],
        local({
          f <- function() NULL
          environment(f) <- envs[[sample(4, 1)]]
          f
        }),
        structure(list(envs[[sample(4, 1)]]), class = "memkit_test"))
      pool[[length(pool) + 1L]] <- obj
      assign(paste0("b", k), obj, envir = envs[[sample(4, 1)]])
    }
    e <- envs[[1]]
    res <- mem_ls(e)
    want <- vapply(res$name, function(nm) as.numeric(mem_size(get(nm, envir = e))), 0)
    expect_equal(as.numeric(res$size), unname(want))
    expect_equal(as.numeric(attr(res, "total")),
                 as.numeric(do.call(mem_size, mget(res$name, envir = e))))
  }
})

test_that("mem_ls() of long character vectors sharing their strings: sizes and retained sizes exact", {
  # Long character columns take a table of their own in mem_ls()'s walks
  # (each string once per binding) and in its graph (each edge once): the
  # results must be those of mem_size() and mem_retained(), which walk
  # without either.
  set.seed(5)
  words <- sprintf("memkit-long-%d", 1:3000)
  e <- new.env(parent = emptyenv())
  e$a <- sample(words, 1e5, TRUE)
  e$b <- e$a                                  # the same vector
  e$c <- sample(words[1:1500], 8e4, TRUE)     # half the strings, its own vector
  e$d <- list(e$c, sample(words, 7e4, TRUE))  # c again, and another vector
  e$own <- sprintf("memkit-own-%d", 1:7e4)    # strings no one else holds
  res <- mem_ls(e)
  expect_s3_class(res, "mem_ls")
  size_want <- vapply(res$name, function(nm) as.numeric(mem_size(get(nm, envir = e))), 0)
  expect_equal(as.numeric(res$size), unname(size_want))
  for (i in seq_len(nrow(res))) {
    expect_equal(res$retained[[i]], mem_retained(res$name[[i]], e), ignore_attr = TRUE,
                 label = paste("retained of", res$name[[i]]))
  }
  expect_equal(attr(res, "total_retained"), mem_retained(res$name, e))
  # own's strings are its alone; a, b, c and d share theirs.
  expect_gt(as.numeric(res$retained[res$name == "own"]), 70000 * 56)
  expect_true("b" %in% res$shares[[which(res$name == "a")]])
})

test_that("printed output and error messages read well (snapshots)", {
  e <- new.env()
  e$a <- 1
  expect_snapshot(error = TRUE, cnd_class = TRUE, {
    mem_retained("zz", e)
    mem_retained(c("a", "zz", "yy"), e)
    mem_retained(1, e)
    mem_retained("a", list())
    mem_retained("pi", baseenv())
    mem_retained("", e)
    mem_rm(nope, envir = e)
    mem_rm(f(x), envir = e)
    mem_rm(list = c("a", ""), envir = e)
    mem_rm(list = 1, envir = e)
    mem_rm(list = NA_character_, envir = e)
    mem_ls(e, min_shared = -1)
    mem_ls(e, min_shared = "lots")
    mem_gc(full = NA)
    mem_gc(trim = "yes")
    mem_dupes(list(), min_bytes = -1)
  })
  locked <- new.env()
  locked$a <- runif(10)
  lockEnvironment(locked)
  expect_snapshot(error = TRUE, cnd_class = TRUE, mem_rm(a, envir = locked))

  e <- new.env(parent = emptyenv())
  e$x <- runif(1e5)
  e$y <- list(e$x, runif(10))
  e$z <- rnorm(5e4)
  delayedAssign("lazy", stop("never forced"), eval.env = emptyenv(), assign.env = e)
  # Made without source references, whose size depends on this file.
  act <- as.function(alist(stop("never called")), envir = emptyenv())
  makeActiveBinding("act", act, e)
  res <- mem_ls(e)
  expect_snapshot(print(res))
  expect_snapshot(print(res[res$size > 500e3, ]))
  expect_snapshot(print(res[c("name", "size")]))
  expect_snapshot(mem_ls(new.env()))

  e <- new.env()
  e$x <- runif(1e5)
  e$y <- 1
  rmres <- mem_rm(x, envir = e)
  expect_snapshot(print(rmres), transform = function(x) gsub("-?[0-9][0-9.,]* ?[KMG]?i?B|-?[0-9][0-9,]*", "<n>", x))

  # Figures vary from run to run, and so do the column widths they set.
  scrub <- function(x) gsub(" +", " ", gsub(" *-?[0-9][0-9.]* ?[KMG]?i?B", " <n>", x))
  gcres <- mem_gc()
  expect_snapshot(print(gcres), transform = scrub)
  expect_snapshot(print(gcres[c("what", "freed")]), transform = scrub)

  a <- runif(1e4)
  x <- list(a = a, b = a + 0, c = a, d = runif(2e3), e = list(f = a + 0), g = 1:3e3 + 0L)
  x$h <- x$g + 0L
  dres <- mem_dupes(x)
  expect_snapshot({
    print(dres)
    print(dres[c("type", "copies")])
    print(dres[dres$type == "integer", ])
  })
})
