# Ground truth is gc(): for an object whose whole graph is freshly allocated,
# mem_cells() must equal the change in gc()'s "used" Ncells and Vcells when the
# object is created and when it is dropped.

# Strings no other object in the session holds (a CHARSXP already in R's
# cache is shared, so gc() would not see it come and go).
uniq_env <- new.env()
uniq_env$n <- 0L
uniq <- function(n) {
  uniq_env$n <- uniq_env$n + 1L
  sprintf("memkit%d-%d", uniq_env$n, seq_len(n))
}

# The cells of a string that other objects in the session also hold (a class
# name such as "data.frame"): the object counts it, gc() never frees it.
string_cells <- function(s) mem_cells(s) - mem_cells(NA_character_)

# Ncells and Vcells in use after a full collection (one gc() is enough: its
# result is allocated after the count).
cells_now <- function() {
  g <- gc(full = TRUE)
  c(g[1L, 1L], g[2L, 1L])
}

# Cells gc() sees appear when make()'s value is bound and go when it is
# dropped, and mem_cells() of the value. The binding exists before and after,
# so only the value comes and goes.
measure <- function(make) {
  force(make)
  e <- new.env()
  e$x <- NULL
  m <- c(ncells = 0, vcells = 0)
  g0 <- cells_now()
  e$x <- make()
  m[] <- mem_cells(e$x)
  g1 <- cells_now()
  e$x <- NULL
  g2 <- cells_now()
  list(created = g1 - g0, freed = g1 - g2, mem = m)
}

# The same, less what the measurement itself leaves (the earlier counts, a
# value read from an immediate binding...), taken from measuring NULL right
# before. The byte-code compiler is off: compiling a function on its first
# call would add memory between two counts.
gc_delta <- function(make) {
  old <- compiler::enableJIT(0)
  on.exit(compiler::enableJIT(old))
  invisible(mem_cells(make()))  # load and cache whatever make() and measuring it need
  noise <- measure(function() NULL)
  d <- measure(make)
  list(created = d$created - noise$created, freed = d$freed - noise$freed, mem = d$mem)
}

# `shared`: cells of the object that the rest of the session also holds.
# `created = FALSE` checks only what gc() frees: making some objects also
# fills caches that stay (the string hash table, the RNG state, ...).
expect_cells_match_gc <- function(make, shared = c(0, 0), label = "object", created = TRUE) {
  d <- gc_delta(make)
  expect_equal(unname(d$freed), unname(d$mem - shared), label = paste(label, "freed by gc()"))
  if (created) {
    expect_equal(unname(d$created), unname(d$mem - shared), label = paste(label, "created per gc()"))
  }
}

vector_makers <- list(
  logical = function(n) runif(n) > 0.5,
  integer = function(n) sample.int(1000L, n, replace = TRUE),
  double = function(n) runif(n),
  complex = function(n) complex(real = runif(n), imaginary = 1),
  raw = function(n) as.raw(sample.int(255L, n, replace = TRUE)),
  character = function(n) uniq(n),
  list = function(n) lapply(seq_len(n), function(i) runif(1))
)

test_that("mem_cells() of vectors of every type, lengths 0 to 40 and large, equals gc()", {
  # All lengths of a type at once here (one gc() per step keeps this fast);
  # one length at a time in the heavy test below.
  lengths <- c(0:40, 1000, 12345)
  for (type in names(vector_makers)) {
    expect_cells_match_gc(function() lapply(lengths, vector_makers[[type]]),
                          label = paste(type, "vectors"), created = FALSE)
  }
})

test_that("mem_cells() of doubles at each size-class boundary equals gc()", {
  # 0 is a bare node; 1, 2, 4, 8, 16 doubles fill a small class; 17 is large.
  for (n in c(0, 1, 2, 3, 5, 9, 16, 17)) {
    expect_cells_match_gc(function() runif(n), label = sprintf("runif(%d)", n))
  }
})

test_that("mem_cells() of every vector type and length equals gc(), one at a time (heavy)", {
  skip_on_cran()
  skip_if_not(Sys.getenv("MEMKIT_HEAVY_TESTS") == "true", "MEMKIT_HEAVY_TESTS is not true")
  for (type in names(vector_makers)) {
    for (n in c(0:40, 1000, 12345)) {
      expect_cells_match_gc(function() vector_makers[[type]](n), label = sprintf("%s(%d)", type, n))
    }
  }
})

test_that("mem_cells() of lists, data frames and factors equals gc()", {
  expect_cells_match_gc(function() list(runif(3), list(uniq(2), list())), label = "nested list")
  make_df <- function() {
    df <- data.frame(a = runif(10), b = uniq(10), c = 1:10 + 0L)
    names(df) <- uniq(3)
    df
  }
  # data.frame() sets its class from a constant in its own code: the class
  # vector is shared with data.frame() itself.
  expect_cells_match_gc(make_df, shared = mem_cells(attr(make_df(), "class")), label = "data frame")
  expect_cells_match_gc(function() factor(uniq(5)[c(1:5, 1:5)]),
                        shared = string_cells("factor"), label = "factor")
})

test_that("mem_cells() of a long list mixing repeats, plain and other elements equals gc() (#14)", {
  # A list's plain elements are counted in a loop that keeps the visited
  # set's current entry in registers; repeats of earlier elements, logical
  # and ALTREP vectors, vectors with attributes and nested lists go through
  # the set in between, and must neither be counted twice nor missed.
  make <- function() {
    n <- 6000L
    base <- lapply(seq_len(n), function(i) c(i, i + 1))
    out <- vector("list", 3L * n)
    for (i in seq_len(n)) {
      out[[3L * i - 2L]] <- base[[i]]
      out[[3L * i - 1L]] <- switch(i %% 5L + 1L,
        base[[max(1L, i - 7L)]],
        runif(3) > 0.5,
        seq_len(10L + i),
        structure(runif(2), tag = i),
        list(base[[i]], runif(1)))
      out[[3L * i]] <- if (i %% 7L == 0L) character() else runif(i %% 3L)
    }
    out
  }
  expect_cells_match_gc(make, label = "mixed long list", created = FALSE)
})

test_that("mem_cells() of closures, environments and formulas equals gc()", {
  make_closure <- function() {
    env <- new.env(parent = emptyenv())
    env$a <- runif(20)
    f <- eval(call("function", as.pairlist(alist(x = )), call("+", as.name("x"), as.name("a"))))
    environment(f) <- env
    f
  }
  expect_cells_match_gc(make_closure, label = "closure with a local environment")
  # Parents are followed (an environment keeps its parent alive) up to the
  # global environment: these hang off it directly.
  make_env <- function() {
    e <- new.env(parent = globalenv())
    e$a <- runif(100)
    e$b <- uniq(3)
    e$self <- e
    e
  }
  expect_cells_match_gc(make_env, label = "environment")
  make_formula <- function() {
    env <- new.env(parent = globalenv())
    env$big <- runif(1000)
    eval(call("~", as.name("y"), as.name("x")), env)
  }
  expect_cells_match_gc(make_formula, shared = string_cells("formula"), label = "formula")
})

test_that("mem_cells() of compact sequences equals gc() and stays small", {
  n <- 1e6
  expect_cells_match_gc(function() seq_len(n), label = "seq_len(1e6)")
  expect_lt(as.numeric(mem_size(seq_len(n))), 200)
})

test_that("mem_cells() of S4 objects equals gc(), the class attribute aside", {
  skip_if_not_installed("methods")
  gen <- methods::setClass("memkitTestZ", representation(x = "numeric", y = "character"),
                           where = environment())
  on.exit(methods::removeClass("memkitTestZ", where = environment()))
  # new() copies the prototype's attributes, but the class attribute itself
  # (with its "package" attribute) is the one the class definition holds.
  shared <- mem_cells(attr(gen(), "class"))
  expect_cells_match_gc(function() gen(x = runif(10), y = uniq(2)), shared = shared, label = "S4 object")
})

# Agreement with lobstr where lobstr is right ---------------------------------

test_that("mem_size() agrees with lobstr::obj_size() on lobstr's own cases", {
  skip_if_not_installed("lobstr")
  same <- function(x) expect_equal(as.numeric(mem_size(x)), as.numeric(lobstr::obj_size(x)))
  same(1)
  same(1L)
  same("abc")
  same(paste(rep("banana", 100), collapse = ""))
  same(charToRaw("a"))
  same(5 + 1i)
  same(c(1:1000) + 0L)
  same(as.list(1:2))
  same(list(list(list(list(list(1))))))
  same(pairlist(1, 2, 3, 4))
  same(c("banana", "banana", "banana"))
  f <- function() NULL
  attributes(f) <- NULL
  environment(f) <- emptyenv()
  same(f)
  x <- runif(1e3)
  expect_equal(mem_size(list(x, x, x)), mem_size(x) + mem_size(vector("list", 3)))
  xn <- as.pairlist(rep(1, 1e5))
  expect_equal(mem_size(xn), 1e5 * mem_size(pairlist(1)))
  e <- new.env(parent = emptyenv())
  same(e)
  expect_equal(mem_size(new.env(parent = e)), 2 * mem_size(e))
})

test_that("mem_size() differs from lobstr::obj_size() where lobstr is wrong", {
  skip_if_not_installed("lobstr")
  # R has had no 48-byte size class since 3.1.0: 5 doubles take 64 bytes.
  expect_equal(as.numeric(mem_size(runif(5))) - as.numeric(lobstr::obj_size(runif(5))), 16)
  # A length-0 vector is a bare 56-byte node, not a 48-byte header.
  expect_equal(as.numeric(mem_size(numeric())), 56)
  # Symbols, NA_STRING, the ALTREP class object are never freed: not counted
  # (lobstr counts the symbol `names` in the attribute list of c(x = 1)).
  expect_equal(mem_size(quote(x)), mem_bytes(0))
  expect_equal(as.numeric(lobstr::obj_size(c(x = 1))) - as.numeric(mem_size(c(x = 1))), 56)
  expect_equal(as.numeric(mem_size(c(NA_character_, NA_character_))), 64)
  expect_lt(as.numeric(mem_size(1:1e6)), as.numeric(lobstr::obj_size(1:1e6)))
  # Environments on the search path and namespaces are global.
  expect_equal(mem_size(as.environment("package:stats")), mem_bytes(0))
  expect_equal(mem_size(asNamespace("stats"), globalenv(), baseenv(), emptyenv()), mem_bytes(0))
})

test_that("mem_size() follows parents that lobstr leaves out", {
  # lobstr stops at the caller's environment; but a formula made in a function
  # keeps that function's whole frame, and its parents, alive.
  outer <- function() {
    big <- runif(1e4)
    inner <- function() y ~ x
    inner()
  }
  expect_gt(as.numeric(mem_size(outer())), 8e4)
})

# What is shared, what is global -------------------------------------------------

test_that("mem_size() counts shared memory once, mem_sizes() each argument alone", {
  x <- runif(1e4)
  expect_equal(mem_size(x, x), mem_size(x))
  expect_equal(mem_size(list(x, x)), mem_size(x) + mem_size(vector("list", 2)))
  s <- mem_sizes(a = x, list(x, x), 1:10)
  expect_s3_class(s, "mem_bytes")
  expect_named(s, c("a", "list(x, x)", "1:10"))
  expect_equal(s[["a"]], mem_size(x))
  expect_equal(s[[2]], mem_size(list(x, x)))
  expect_equal(mem_cells(x, x), mem_cells(x))
  expect_named(mem_cells(x), c("ncells", "vcells"))
})

test_that("measuring never forces promises, calls active bindings or expands strings", {
  e <- new.env(parent = emptyenv())
  delayedAssign("p", stop("forced"), assign.env = e)
  makeActiveBinding("a", function() stop("called"), e)
  expect_gt(as.numeric(mem_size(e)), 0)
  expect_s3_class(mem_tree(e), "mem_tree")
  expect_s3_class(mem_by_type(e), "mem_by_type")

  d <- as.character(seq_len(1e5))
  before <- mem_size(d)
  g0 <- cells_now()
  mem_size(d)
  mem_tree(d)
  mem_by_type(d)
  g1 <- cells_now()
  expect_lt(as.numeric(before), 1000)
  expect_equal(mem_size(d), before)
  # Expanding would have made 1e5 strings (about 3e5 Vcells).
  expect_lt(g1[[2]] - g0[[2]], 1000)
})

test_that("a large environment's bindings are read without calling, forcing or misreading any", {
  # Large environments are read from their cells in one go (R < 4.6); an
  # active binding or a promise among hundreds of plain values must still be
  # told apart, never called or forced.
  for (n in c(10, 400)) {
    e <- new.env(parent = emptyenv())
    for (k in seq_len(n)) assign(sprintf("v%d", k), runif(2), envir = e)
    delayedAssign("p", stop("forced"), assign.env = e)
    makeActiveBinding("a", function() stop("called"), e)
    if (n > 10) lockBinding("v1", e)
    ls_e <- mem_ls(e)
    expect_s3_class(ls_e, "mem_ls")
    expect_identical(nrow(ls_e), as.integer(n + 2))
    cls <- as.data.frame(ls_e)$class[match(c("a", "p", "v2"), as.data.frame(ls_e)$name)]
    expect_identical(cls, c("<active>", "<promise>", "numeric"), label = paste(n, "bindings"))
    tr <- as.data.frame(mem_tree(e))
    expect_identical(tr$note[tr$path == "e$a"], "active binding, not called")
    expect_identical(tr$note[tr$path == "e$p"], "not forced")
    # Each double pair is a 64-byte vector: the values alone.
    expect_gte(as.numeric(mem_size(e)), 64 * n)
  }
})

test_that("a large environment holding an unboxed value is measured exactly, before and after", {
  # A byte-compiled loop keeps its variable unboxed in an existing binding
  # cell, here in a hashed environment of 300 bindings: reading it boxes it,
  # and the measurement counts the box (?mem_size).
  loop <- compiler::compile(quote(for (i in 1:10) NULL))
  make <- function(unboxed) {
    e <- new.env(parent = globalenv())
    for (k in 1:300) assign(sprintf("v%d", k), runif(2), envir = e)
    assign("i", 0L, envir = e)
    # (5L + 5L: a fresh integer, not the constant of this code)
    if (unboxed) eval(loop, e) else assign("i", 5L + 5L, envir = e)
    e
  }
  e1 <- make(TRUE)
  e2 <- make(FALSE)
  first <- mem_cells(e1)
  expect_equal(first, mem_cells(e2))
  expect_equal(mem_cells(e1), first)
  expect_identical(e1$i, 10L)
  expect_cells_match_gc(function() make(TRUE), label = "hashed environment with an unboxed value")
  expect_cells_match_gc(function() make(FALSE), label = "hashed environment of 302 bindings")
})

test_that("a partly expanded deferred string counts what is expanded", {
  d <- as.character(seq_len(1e5))
  small <- mem_size(d)
  invisible(d[[5]])
  expect_gt(as.numeric(mem_size(d)), 8e5)
})

test_that("a closure from a byte-compiled factory with a loop can be measured", {
  factory <- compiler::cmpfun(function() {
    s <- 0
    for (i in 1:10) s <- s + i
    function() s
  })
  g <- factory()
  expect_gt(as.numeric(mem_size(g)), 0)
  expect_s3_class(mem_tree(g), "mem_tree")
})

test_that("external pointers count their protected value and tag", {
  p <- methods::new("externalptr")
  expect_equal(as.numeric(mem_size(p)), 56)
  tree <- mem_tree(list(p))
  expect_match(tree$note[[2]], "external memory unknown")
})

# mem_tree() and mem_by_type() -----------------------------------------------

test_that("mem_tree() gives paths that reach each component", {
  # Made away from the test's own frame, which would hold `x` and the tree.
  make_formula <- local(function() {
    big <- runif(1e4)
    y ~ x
  }, envir = new.env(parent = globalenv()))
  x <- list(coef = runif(3), f = make_formula(), list(1:10 + 0L))
  tree <- mem_tree(x)
  expect_true(all(c("x$coef", "environment(x$f)", "environment(x$f)$big", "x[[3]]",
                    "attr(x, \"names\")") %in% tree$path))
  for (i in seq_len(nrow(tree))) {
    if (tree$note[[i]] == "") {
      expect_equal(mem_size(eval(parse(text = tree$path[[i]]))), tree$total[[i]],
                   label = tree$path[[i]])
    }
  }
  expect_equal(tree$total[[1]], mem_size(x))
  expect_true(all(tree$self <= tree$total))
})

test_that("mem_tree() flags shared components and lists largest first", {
  v <- runif(1000)
  x <- list(small = 1, a = v, b = v)
  tree <- mem_tree(x)
  expect_equal(tree$path[2:3], c("x$a", "x$b"))
  expect_true(all(tree$shared[tree$path %in% c("x$a", "x$b")]))
  expect_false(tree$shared[tree$path == "x$small"])
  expect_equal(nrow(mem_tree(x, max_depth = 0)), 1L)
  expect_equal(nrow(mem_tree(x, min_bytes = "1 KiB")), 3L)
})

test_that("mem_tree() shows S4 slots and closure parts", {
  skip_if_not_installed("methods")
  gen <- methods::setClass("memkitTestY", representation(x = "numeric"), where = environment())
  on.exit(methods::removeClass("memkitTestY", where = environment()))
  z <- gen(x = runif(10))
  expect_true("z@x" %in% mem_tree(z)$path)
  f <- local(function(a) a + 1, envir = new.env(parent = globalenv()))
  expect_true(all(c("formals(f)", "body(f)") %in% mem_tree(f)$path))
})

test_that("mem_by_type() adds up to mem_size() and splits by class", {
  df <- data.frame(when = Sys.Date() + 0:99, what = factor(rep(c("u", "v"), 50)))
  bt <- mem_by_type(df)
  expect_equal(sum(bt$bytes), mem_size(df))
  expect_equal(c(sum(bt$ncells), sum(bt$vcells)), unname(mem_cells(df)))
  expect_true(all(c("factor", "Date", "data.frame") %in% bt$class))
  expect_equal(bt$bytes, sort(bt$bytes, decreasing = TRUE))
  # Every node is one of the count, binding and attribute cells included.
  e <- local({
    e <- new.env(parent = globalenv())
    e$a <- structure(runif(3), u = 1, v = 2)
    e$b <- letters
    e
  })
  bt <- mem_by_type(e)
  expect_equal(sum(bt$count), unname(mem_cells(e)[["ncells"]]))
  expect_equal(sum(bt$bytes), mem_size(e))
})

test_that("printed trees and type tables read well", {
  withr::local_options(width = 80)
  x <- list(a = c(1, 2, 3), b = list(c = "memkit"), f = quote(g(x)))
  expect_output(print(mem_tree(x)), "mem_tree")
  expect_output(print(mem_by_type(x)), "mem_by_type")
})

test_that("subsets of mem_tree() and mem_by_type() results print", {
  x <- list(a = runif(1e3), b = letters, c = list(d = runif(10)))
  tree <- mem_tree(x)
  n <- nrow(tree)
  whole <- format(tree$total[[1L]])
  out <- capture.output(print(tree[tree$depth > 0, ]))
  # The header gives the whole object's size, not the first row shown's.
  expect_identical(out[[1L]], sprintf("<mem_tree> %d of %d components of %s", n - 1L, n, whole))
  expect_identical(capture.output(print(tree))[[1L]], sprintf("<mem_tree> %s in %d components", whole, n))
  out <- capture.output(print(tree[c("path", "total")]))
  expect_false(any(grepl("<mem_tree>|NULL", out)))
  expect_length(out, n + 1L)

  types <- mem_by_type(x)
  strings <- types[types$type %in% c("char", "character"), ]
  out <- capture.output(print(strings))
  expect_match(out[[1L]], sprintf("^<mem_by_type> %s in %d nodes$",
                                  format(sum(strings$bytes)), sum(strings$count)))
  expect_length(out, nrow(strings) + 1L)
  out <- capture.output(print(types[c("type", "bytes")]))
  expect_false(any(grepl("<mem_by_type>|NULL", out)))
})

test_that("plot() of a subset of a tree is a classed error, not a wrong picture", {
  tree <- mem_tree(list(a = runif(1e3), b = letters, c = list(d = runif(10))))
  grDevices::pdf(NULL)
  withr::defer(grDevices::dev.off())
  expect_error(plot(tree[tree$depth > 0, ]), class = "memkit_error_argument")
  expect_error(plot(tree[tree$depth < 2, ]), class = "memkit_error_argument")
  expect_error(plot(tree[c("path", "total")]), class = "memkit_error_argument")
  expect_no_error(plot(tree[order(seq_len(nrow(tree))), ]))
})

test_that("plot() draws a tree", {
  path <- withr::local_tempfile(fileext = ".pdf")
  grDevices::pdf(path)
  on.exit(grDevices::dev.off(), add = TRUE)
  expect_invisible(plot(mem_tree(lm(mpg ~ wt, mtcars))))
})

test_that("bad arguments give classed errors", {
  expect_error(mem_tree(1, max_depth = -1), class = "memkit_error_argument")
  expect_error(mem_tree(1, max_depth = "a"), class = "memkit_error_argument")
  expect_error(mem_tree(1, min_bytes = NA), class = "memkit_error_argument")
  expect_error(mem_tree(1, min_bytes = "lots"), class = "memkit_error_argument")
})

# Robustness, in a child process -------------------------------------------------

test_that("a list nested 1e6 deep gives its size", {
  res <- in_child(function() {
    x <- list()
    for (i in 1:1e6) x <- list(x)
    as.numeric(memkit::mem_size(x))
  })
  expect_true(res$ok)
  # Each level is a list of one element: a 48-byte header and 8 bytes of data;
  # the innermost list() is a bare 56-byte node.
  expect_equal(res$value, 56 * (1e6 + 1))
})

test_that("the tricky objects of the research note are measured without error", {
  skip_on_cran()
  res <- in_child(function() {
    library(memkit)
    big <- runif(1e6)
    setClass("Z", representation(x = "numeric"))
    fn <- compiler::cmpfun(function() { s <- 0; for (i in 1:10) s <- s + i; function() s })
    x1 <- 1:1e6; x2 <- 1:1e6; x2 <- pmax(x2, 1L)
    d <- as.character(1:1e5)
    dp <- as.character(1:1e5); invisible(dp[[5]])
    v <- runif(1e5)
    y <- big; attr(y, "foo") <- 1
    self <- new.env(parent = emptyenv()); assign("self", self, self)
    e10 <- new.env(); for (i in 1:1e4) assign(paste0("v", i), i, e10)
    r6 <- new.env(); attr(r6, "me") <- r6
    gr <- runif(1e5); gr[1e5 + 1] <- 1
    deep <- list(); for (i in 1:1e5) deep <- list(deep)
    objs <- list(
      x1, x2, d, dp, list(v, v), list(big, big), y, self, e10, r6,
      data.frame(a = rep(c("apple", "banana"), 5e4)), paste0("uniqstr_", 1:1e5),
      c(NA_character_, NA_character_), runif(5), local({ b <- runif(1e6); function() b }),
      local({ b <- runif(1e6); y ~ x }), eval(parse(text = "function(x) {\n  x + 1\n}", keep.source = TRUE)),
      compiler::cmpfun(function(x) x + 1), new("Z", x = runif(1e3)), methods::new("externalptr"),
      fn(), lm(mpg ~ wt, mtcars), gr, deep, stats::sd
    )
    out <- vapply(objs, function(o) {
      t <- mem_tree(o, max_depth = 2)
      b <- mem_by_type(o)
      stopifnot(sum(b$bytes) == mem_size(o), nrow(t) == 0 || t$total[[1]] == mem_size(o))
      as.numeric(mem_size(o))
    }, 0)
    list(sizes = out, gr = mem_cells(gr))
  })
  expect_true(res$ok)
  expect_length(res$value$sizes, 25)
  # A growable vector counts its capacity: R over-allocated on gr[n + 1] <- 1.
  expect_gt(res$value$gr[["vcells"]], 1e5 + 1)
})

test_that("mem_tree() indexes elements whose names are not unique", {
  x <- list(a = 1, a = 2, `b c` = 3, 4)
  expect_setequal(mem_tree(x)$path,
                  c("x", "attr(x, \"names\")", "x[[1]]", "x[[2]]", "x[[\"b c\"]]", "x[[4]]"))
})

# Namespaces ----------------------------------------------------------------------

# An environment that looks like a namespace: `.__NAMESPACE__.` holding an
# environment with `spec`. Only environments R's registry holds are
# namespaces (and so never counted).
look_alike <- function(spec) {
  e <- new.env(parent = emptyenv())
  info <- new.env(parent = emptyenv())
  spec(info)
  assign(".__NAMESPACE__.", info, envir = e)
  e$big <- runif(1e4)
  e
}

test_that("a namespace look-alike's active binding is never called", {
  calls <- 0L
  e <- look_alike(function(info) {
    makeActiveBinding("spec", function() {
      calls <<- calls + 1L
      c(name = "stats", version = "1.0")
    }, info)
  })
  expect_gt(as.numeric(mem_size(e)), 8e4)
  expect_s3_class(mem_tree(e), "mem_tree")
  expect_s3_class(mem_by_type(e), "mem_by_type")
  expect_identical(calls, 0L)
})

test_that("a namespace look-alike is measured like any environment", {
  # Its spec names a namespace that is loaded, but the registry holds
  # another environment under that name.
  e <- look_alike(function(info) assign("spec", c(name = "stats", version = "1.0"), info))
  expect_gt(as.numeric(mem_size(e)), 8e4)
  # e$big is inside e: listing both adds only the list (48 + 2 * 8 bytes).
  expect_equal(as.numeric(mem_size(list(e, e$big))) - as.numeric(mem_size(e)), 64)
  # A real namespace stays opaque: a function of stats costs its own nodes only.
  expect_lt(as.numeric(mem_size(asNamespace("stats"))), 1)
  expect_lt(as.numeric(mem_size(stats::sd)), 1e4)
})

test_that("a look-alike whose active binding changes the graph does not crash", {
  res <- in_child(function() {
    e <- new.env(parent = emptyenv())
    info <- new.env(parent = emptyenv())
    makeActiveBinding("spec", function() {
      # Drop the object being measured and collect: a walker that called
      # this would then read freed memory.
      rm("big", envir = e)
      gc()
      "stats"
    }, info)
    assign(".__NAMESPACE__.", info, envir = e)
    e$big <- lapply(1:1e4, function(i) runif(2))
    c(as.numeric(memkit::mem_size(e)), exists("big", envir = e))
  })
  expect_true(res$ok)
  expect_gt(res$value[[1L]], 1e4 * 56)
  expect_identical(res$value[[2L]], 1)
})

test_that("an unboxed loop variable is boxed by the first measurement and counted, as documented", {
  # Byte-compiled loops keep their variable unboxed in the frame's binding
  # cell; R's API reads it only by boxing it (?mem_size, "Across R versions").
  # The frame's parent is the global environment, where sizes stop.
  factory <- compiler::cmpfun(eval(quote(function() {
    for (i in 1:10) NULL
    environment()
  }), globalenv()))
  e <- factory()
  first <- mem_cells(e)
  # The frame, the binding cell of `i`, and the boxed integer (1 Ncell, 1 Vcell).
  expect_equal(unname(first), c(3, 1))
  expect_equal(mem_cells(e), first)
  expect_identical(e$i, 10L)
})

# Printed output and error messages, in one block: snapshots skip on CRAN,
# and a skip ends its block, so the checks above stay out of it.
test_that("mem_tree() totals are each component's mem_size(), cycles and sharing included", {
  set.seed(12)
  for (trial in 1:10) {
    envs <- replicate(3, new.env(parent = emptyenv()), simplify = FALSE)
    shared <- runif(100)
    for (k in 1:20) {
      obj <- switch(sample(4, 1),
        runif(sample(40, 1)),
        list(shared, runif(3)),
        envs[[sample(3, 1)]],
        local({
          f <- function() NULL
          environment(f) <- envs[[sample(3, 1)]]
          f
        }))
      assign(paste0("b", k), obj, envir = envs[[sample(3, 1)]])
    }
    x <- list(a = envs[[1]], b = envs[[2]], c = list(shared, envs[[3]]))
    tree <- mem_tree(x, max_depth = 2)
    expect_equal(as.numeric(tree$total[[1]]), as.numeric(mem_size(x)))
    for (j in which(tree$depth >= 1)) {
      part <- eval(parse(text = tree$path[[j]]))
      expect_equal(as.numeric(tree$total[[j]]), as.numeric(mem_size(part)), label = tree$path[[j]])
    }
  }
})

test_that("mem_tree() of an environment of closures that capture it is not quadratic", {
  e <- new.env()
  for (i in 1:3000) {
    f <- function() NULL
    environment(f) <- e
    assign(sprintf("f%04d", i), f, envir = e)
  }
  parent.env(e) <- globalenv()
  tree <- mem_tree(e, max_depth = 1)
  fs <- grepl("^e\\$f[0-9]{4}$", tree$path)
  expect_equal(sum(fs), 3000L)
  # Each closure reaches all of e: the same total as e, shared.
  expect_true(all(tree$total[fs] == tree$total[[1]]))
  expect_true(all(tree$shared[fs]))
})

test_that("printed trees, type tables and error messages read well (snapshots)", {
  withr::local_options(width = 80)
  x <- list(a = c(1, 2, 3), b = list(c = "memkit"), f = quote(g(x)))
  expect_snapshot({
    mem_tree(x)
    mem_by_type(x)
    mem_tree(NULL)
  })
  expect_snapshot(error = TRUE, cnd_class = TRUE, {
    mem_tree(1, max_depth = -1)
    mem_tree(1, max_depth = "a")
    mem_tree(1, min_bytes = NA)
    mem_tree(1, min_bytes = "lots")
  })
  sub <- mem_tree(list(a = runif(1e3), b = letters, c = list(d = runif(10))))
  expect_snapshot({
    print(sub[sub$depth > 0, ])
    print(sub[c("path", "total")])
  })
  grDevices::pdf(NULL)
  withr::defer(grDevices::dev.off())
  expect_snapshot(error = TRUE, cnd_class = TRUE, {
    plot(sub[sub$depth > 0, ])
    plot(sub[c("path", "total")])
  })
})
