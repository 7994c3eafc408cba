#' Object sizes that count shared memory once
#'
#' `mem_size()` gives the memory used by all its arguments together, every
#' node counted once however many times it is referenced. `mem_sizes()` gives
#' each argument's own size. `mem_cells()` gives the cells that [gc()] counts.
#'
#' Sizes follow R's real allocation rules: a 56-byte node for each
#' non-vector object, a 48-byte header plus data in size classes of 8, 16,
#' 32, 64 or 128 bytes for small vectors and in 8-byte units for large ones,
#' the trailing NUL of every string. They include what an object keeps alive
#' that [object.size()] ignores: environments of closures and formulas (with
#' their bindings, cells and hash tables), promises (never forced), attributes,
#' bytecode, the protected value and tag of external pointers. Compact
#' ('ALTREP') vectors count as their node plus their internal data, and are
#' never expanded: `mem_size(1:1e6)` is a few hundred bytes.
#'
#' Never counted, because R never frees them: the global, base and empty
#' environments, namespaces, environments on the search path, symbols,
#' `NA_character_`, `""`, primitive functions, the shared `TRUE`, `FALSE` and
#' `NA` scalars, and the classes of compact vectors. Memory behind an external
#' pointer (a database connection, a file mapping) is invisible to R and not
#' counted. A namespace is an environment R's namespace registry holds; an
#' environment that merely looks like one (a `.__NAMESPACE__.` binding) is
#' measured like any other, and its bindings are never called.
#'
#' @section Across R versions:
#' memkit reads objects only through R's API. From R 4.6, that API hides a
#' few things, and sizes there are exact up to these bounds:
#' * a promise bound in an environment (an unevaluated argument, a
#'   `delayedAssign()`) is counted with its binding as one 56-byte node; if
#'   the same promise is also reached another way (a `...` list), it is
#'   counted twice (56 bytes more each time);
#' * the byte code of a promise's expression is counted as the expression;
#' * an attribute list shared between objects is counted for each of them
#'   (56 bytes per attribute).
#'
#' In every R, a number R keeps unboxed in a function's frame (a scalar
#' loop variable of byte-compiled code) is boxed by the first measurement of
#' that frame, as reading it through the API requires: the frame then holds
#' one 56-byte vector more, which the measurement counts. Reading an
#' environment's bindings through the API takes a lookup per binding (before
#' R 4.6, a large hash table's bindings are read in one pass instead), so an
#' environment without a hash table (a function's frame, `new.env(hash =
#' FALSE)`) takes time quadratic in its number of bindings.
#'
#' @param ... Objects to measure.
#' @return `mem_size()`: a single [mem_bytes]. `mem_sizes()`: a named
#'   [mem_bytes] vector, one element per argument. `mem_cells()`: a double
#'   vector `c(ncells = , vcells = )`: for an object whose whole graph was
#'   freshly allocated, the change in `gc()`'s "used" Ncells and Vcells when it
#'   is created or freed.
#' @seealso [mem_tree()] for where the memory is, [mem_by_type()] for what
#'   it is made of.
#' @export
#' @examples
#' x <- runif(1e4)
#' mem_size(x)
#' mem_size(list(x, x, x))          # x is counted once
#' mem_sizes(x, list(x, x), 1:1e6)  # 1:1e6 stays compact
#' mem_size(x, list(x, x))          # together: x once
#'
#' f <- local({
#'   big <- runif(1e5)
#'   function() length(big)
#' })
#' mem_size(f)                      # the captured environment counts
#'
#' mem_cells(x)
mem_size <- function(...) {
  new_mem_bytes(.Call(ffi_size_cells, list(...))[[3L]])
}

#' @rdname mem_size
#' @export
mem_sizes <- function(...) {
  objs <- list(...)
  out <- .Call(ffi_size_each, objs)
  names(out) <- dots_names(objs, substitute(list(...)))
  new_mem_bytes(out)
}

#' @rdname mem_size
#' @export
mem_cells <- function(...) {
  res <- .Call(ffi_size_cells, list(...))
  c(ncells = res[[1L]], vcells = res[[2L]])
}

# Names for the arguments of mem_sizes(): the given name, else the
# expression, deparsed short.
dots_names <- function(objs, exprs) {
  nms <- names(objs)
  if (is.null(nms)) nms <- rep("", length(objs))
  exprs <- as.list(exprs)[-1L]
  for (i in which(nms == "")) {
    nms[[i]] <- paste(deparse(exprs[[i]], width.cutoff = 60L, nlines = 1L), collapse = "")
  }
  nms
}

#' Where the memory of an object is
#'
#' `mem_tree()` breaks an object down into its components (list elements,
#' attributes, S4 slots, closure parts, environment bindings) down to
#' `max_depth` levels, each with the R code that reaches it, its own size and
#' its total size (the component and everything it holds). `print()` draws an
#' indented tree, largest first; `plot()` draws it as nested bars.
#'
#' A component's `total` is what [mem_size()] reports for it. Parts of an
#' object can share memory (the terms of a model sit both in the fit and in
#' its model frame); such components are flagged `shared`, and the totals of
#' the children of a node then add up to more than the node's own total.
#' `self` is what the component holds apart from the components below it:
#' its own node, and structure such as an environment's binding cells and
#' hash table or a vector's strings.
#'
#' @param x Any R object.
#' @param max_depth Levels of components to show below `x`.
#' @param min_bytes Components smaller than this (a number of bytes or a
#'   string such as `"1 MB"`) are left out, with everything below them.
#' @return A data frame of class `mem_tree`, one row per component in
#'   depth-first order, largest first among siblings: `path` (R code that
#'   reaches the component from `x`), `depth`, `parent` (row of the parent),
#'   `type` ([typeof()]), `class` (first class, or `NA`), `self` and `total`
#'   ([mem_bytes]), `share` (`total` as a fraction of the whole), `shared`,
#'   `note` and `label` (the last step of the path, as printed). `note` marks
#'   compact vectors, external pointers (the memory behind them is unknown),
#'   active bindings (never called) and promises ("not forced" or
#'   "evaluated"; measuring never forces them). Attributes `total` (the
#'   size of `x`) and `components` (the number of rows): a subset of the rows
#'   prints as "3 of 40 components of 1.2 MiB"; a subset of the columns as a
#'   plain data frame. `plot()` draws only whole trees: a subset of the rows
#'   or columns is an error of kind `argument`.
#' @seealso [mem_size()], [mem_by_type()].
#' @export
#' @examples
#' fit <- lm(mpg ~ wt + qsec, data = mtcars)
#' tree <- mem_tree(fit, max_depth = 2)
#' tree
#' head(as.data.frame(tree))
#'
#' # A formula keeps the environment it was made in alive.
#' make_formula <- function() {
#'   big <- runif(1e5)
#'   y ~ x
#' }
#' mem_tree(make_formula())
#' plot(mem_tree(fit))
mem_tree <- function(x, max_depth = 4, min_bytes = 0) {
  check_scalar_number(max_depth, min = 0)
  min_bytes <- check_bytes_arg(min_bytes)
  root <- substitute(x)
  root <- if (is.symbol(root)) as.character(root) else "x"
  res <- .Call(ffi_size_tree, x, as.integer(min(max_depth, 1e6)), as.double(min_bytes))
  n <- length(res$parent)
  # `x$a` reaches only the first of two elements named "a": index the others.
  key <- paste(res$parent, res$kind, res$name)
  dup <- res$kind == 1L & (duplicated(key) | duplicated(key, fromLast = TRUE))
  step <- tree_steps(res$kind, ifelse(dup, NA_character_, res$name), res$index, res$type[res$parent])
  # Paths level by level: a parent is always one level up.
  path <- character(n)
  path[res$depth == 0L] <- root
  for (d in seq_len(max(c(0L, res$depth)))) {
    at <- which(res$depth == d)
    path[at] <- paste0(step$pre[at], path[res$parent[at]], step$post[at])
  }
  label <- ifelse(is.na(res$parent), root, paste0(step$pre, ifelse(nzchar(step$pre), "*", ""), step$post))
  total <- res$total
  whole <- if (n) total[[1L]] else 0
  if (n) res$shared[[1L]] <- FALSE # the whole object: nothing outside it here
  notes <- c("", "compact", "external memory unknown", "active binding, not called",
             "not forced", "evaluated")
  out <- data.frame(
    path = path, depth = res$depth, parent = res$parent, type = res$type,
    class = res$class, self = new_mem_bytes(res$self), total = new_mem_bytes(total),
    share = if (whole > 0) total / whole else rep(NA_real_, n), shared = res$shared,
    note = notes[res$note + 1L], stringsAsFactors = FALSE
  )
  out$label <- label
  structure(out, class = c("mem_tree", "data.frame"), max_depth = max_depth,
            total = new_mem_bytes(whole), components = n)
}

# How each component is reached from its parent: the text before and after
# the parent's path (`attr(` p `, "names")`, `` p `$coef`).
tree_steps <- function(kind, name, index, parent_type) {
  n <- length(kind)
  pre <- rep("", n)
  post <- rep("", n)
  has_name <- !is.na(name) & nzchar(name)
  # Each piece is built only for the rows of its kind: a tree of an
  # environment with 1e5 bindings has 1e5 rows.
  named <- which(has_name & kind >= 1L & kind <= 4L)
  nm <- name[named]
  syn <- make.names(nm) == nm
  syntactic <- quoted_name <- rep(NA, n)
  syntactic[named] <- syn
  # Only names that are not syntactic are written quoted.
  quoted_name[named[!syn]] <- encodeString(nm[!syn], quote = "\"")
  k <- which(kind >= 5L & kind <= 8L)
  pre[k] <- c("formals(", "body(", "environment(", "parent.env(")[kind[k] - 4L]
  post[k] <- ")"
  # Elements: by name in lists where the name is usable, else by index.
  el <- which(kind == 1L)
  in_list <- parent_type[el] %in% c("list", "expression")
  by_name <- in_list & has_name[el]
  post[el] <- paste0("[[", sprintf("%.0f", index[el]), "]]")
  nel <- el[by_name]
  post[nel] <- ifelse(syntactic[nel], paste0("$", name[nel]), paste0("[[", quoted_name[nel], "]]"))
  # Attributes: attr(x, "name"), environment(x) for a formula's.
  at <- which(kind == 2L)
  env_attr <- has_name[at] & name[at] %in% ".Environment"
  pre[at] <- ifelse(env_attr, "environment(", "attr(")
  qa <- ifelse(syntactic[at] %in% TRUE, paste0("\"", name[at], "\""), quoted_name[at])
  post[at] <- ifelse(env_attr, ")", paste0(", ", ifelse(has_name[at], qa, ""), ")"))
  sl <- which(kind == 3L)
  post[sl] <- paste0("@", ifelse(syntactic[sl] %in% TRUE, name[sl],
                                 paste0("`", ifelse(has_name[sl], name[sl], ""), "`")))
  bd <- which(kind == 4L)
  post[bd] <- ifelse(syntactic[bd] %in% TRUE, paste0("$", name[bd]),
                     paste0("[[", ifelse(has_name[bd], quoted_name[bd], ""), "]]"))
  list(pre = pre, post = post)
}

#' @export
as.data.frame.mem_tree <- function(x, ...) {
  class(x) <- "data.frame"
  x
}

#' @export
as.data.frame.mem_by_type <- function(x, ...) {
  class(x) <- "data.frame"
  x
}

#' @param n Rows to print.
#' @param width Width of the printed lines.
#' @param ... Not used.
#' @rdname mem_tree
#' @export
print.mem_tree <- function(x, n = 30, width = getOption("width"), ...) {
  if (!all(c("label", "depth", "total", "share", "type", "class", "shared", "note") %in% names(x))) {
    return(NextMethod())
  }
  rows <- nrow(x)
  # The whole object's total, whichever rows are left after subsetting.
  whole <- attr(x, "total")
  all_rows <- attr(x, "components")
  if (is.null(whole) || is.null(all_rows)) {
    whole <- if (rows) x$total[[1L]] else mem_bytes(0)
    all_rows <- rows
  }
  if (rows == all_rows) {
    cat(sprintf("<mem_tree> %s in %d component%s\n", format(mem_bytes(whole)),
                rows, if (rows == 1L) "" else "s"))
  } else {
    cat(sprintf("<mem_tree> %d of %d components of %s\n", rows, all_rows,
                format(mem_bytes(whole))))
  }
  if (rows == 0L) return(invisible(x))
  show <- seq_len(min(n, rows))
  utf8 <- use_unicode()
  indent <- vapply(x$depth[show], function(d) strrep("  ", d), "")
  lab <- paste0(indent, x$label[show])
  lab <- ifelse(text_width(lab) > 40, paste0(trim_text(lab, 39), if (utf8) "\u2026" else "~"), lab)
  size <- format(x$total[show])
  share <- x$share[show]
  bar_width <- 10
  bars <- vapply(share, function(s) {
    if (is.na(s)) return(strrep(" ", bar_width))
    k <- max(0, min(bar_width, round(s * bar_width)))
    paste0(strrep(if (utf8) "\u2588" else "#", k), strrep(" ", bar_width - k))
  }, "")
  what <- ifelse(is.na(x$class[show]), x$type[show], paste0(x$type[show], " <", x$class[show], ">"))
  flag <- ifelse(x$shared[show], "*", " ")
  note <- ifelse(nzchar(x$note[show]), paste0("  (", x$note[show], ")"), "")
  line <- paste0(pad_text(lab), " ", pad_text(size, 10L, "right"), flag, " ", bars, " ",
                 pad_text(sprintf("%.0f%%", 100 * share), 5L, "right"), "  ", what, note)
  cat(trim_text(line, width), sep = "\n")
  if (rows > length(show)) cat(sprintf("# ... %d more components: print(x, n = %d)\n", rows - length(show), rows))
  if (any(x$shared[show])) cat("# * shares memory with other parts of the object; totals overlap\n")
  invisible(x)
}

#' @param labels Whether to label the components wide enough to hold one.
#' @param main Title of the plot.
#' @importFrom graphics plot.new plot.window rect text title legend par
#' @importFrom grDevices hcl.colors
#' @rdname mem_tree
#' @export
plot.mem_tree <- function(x, labels = TRUE, main = NULL, ...) {
  # The layout follows `parent`, row numbers of the whole tree: a subset
  # would be drawn wrong, so it is refused.
  need <- c("depth", "parent", "type", "total", "label")
  all_rows <- attr(x, "components")
  whole <- all(need %in% names(x)) && (is.null(all_rows) || nrow(x) == all_rows) &&
    identical(as.integer(rownames(x)), seq_len(nrow(x)))
  if (!whole) {
    mk_abort("argument", sprintf(paste0(
      "`x` must be a whole tree from mem_tree(), not a subset of one (%s); ",
      "leave parts out with mem_tree()'s `max_depth` and `min_bytes`."),
      if (!all(need %in% names(x))) "columns left out" else
        sprintf("%d of %d components", nrow(x), if (is.null(all_rows)) NA else all_rows)))
  }
  n <- nrow(x)
  if (n == 0L) {
    plot.new()
    return(invisible(x))
  }
  total <- as.numeric(x$total)
  x0 <- x1 <- numeric(n)
  x1[[1L]] <- 1
  kids_sum <- numeric(n)
  if (n > 1L) {
    s <- tapply(total[-1L], x$parent[-1L], sum)
    kids_sum[as.integer(names(s))] <- s
  }
  cursor <- x0
  for (i in seq_len(n)[-1L]) {
    p <- x$parent[[i]]
    scale <- (x1[[p]] - x0[[p]]) / max(total[[p]], kids_sum[[p]], 1)
    if (cursor[[p]] < x0[[p]]) cursor[[p]] <- x0[[p]]
    x0[[i]] <- cursor[[p]]
    x1[[i]] <- x0[[i]] + total[[i]] * scale
    cursor[[p]] <- x1[[i]]
  }
  cursor[] <- 0
  depth <- x$depth
  types <- unique(x$type)
  cols <- hcl.colors(max(length(types), 2L), "Set 2")[match(x$type, types)]
  op <- par(mar = c(2, 1, 3, 1))
  on.exit(par(op))
  plot.new()
  plot.window(xlim = c(0, 1), ylim = c(max(depth) + 1, 0))
  rect(x0, depth, x1, depth + 1, col = cols, border = "white")
  if (labels) {
    lab <- paste(x$label, format(x$total), sep = "\n")
    wide <- (x1 - x0) > 0.08
    text((x0 + x1)[wide] / 2, depth[wide] + 0.5, lab[wide], cex = 0.7)
  }
  if (is.null(main)) main <- sprintf("%s: %s", x$label[[1L]], format(x$total[[1L]]))
  title(main = main)
  legend("bottom", legend = types, fill = hcl.colors(max(length(types), 2L), "Set 2")[seq_along(types)],
         horiz = TRUE, bty = "n", cex = 0.7, xpd = TRUE, inset = c(0, -0.08))
  invisible(x)
}

#' What an object is made of
#'
#' `mem_by_type()` walks an object like [mem_size()] and sums its memory by
#' the type of each node ([typeof()]), and by class where a node has one
#' (the columns of a data frame are split into `integer <factor>`, `double
#' <Date>`, ...). Strings are the `char` rows; the cells that hold attributes
#' and environment bindings are `pairlist`.
#'
#' @param x Any R object.
#' @return A data frame of class `mem_by_type`, one row per type and class,
#'   largest first: `type`, `class` (or `NA`), `count` (nodes), `bytes`
#'   ([mem_bytes]), `share` of the total, and `ncells`, `vcells` (the cells
#'   [gc()] counts).
#' @seealso [mem_tree()] for where the memory is.
#' @export
#' @examples
#' df <- data.frame(id = 1:1000, when = Sys.Date() + 0:999,
#'                  what = factor(sample(c("a", "b"), 1000, TRUE)),
#'                  label = sprintf("item %d", 1:1000))
#' mem_by_type(df)
mem_by_type <- function(x) {
  res <- .Call(ffi_size_by_type, x)
  out <- data.frame(type = res$type, class = res$class, count = res$count,
                    bytes = new_mem_bytes(res$bytes), stringsAsFactors = FALSE)
  total <- sum(res$bytes)
  out$share <- if (total > 0) res$bytes / total else numeric(nrow(out))
  out$ncells <- res$ncells
  out$vcells <- res$vcells
  out <- out[order(-res$bytes, out$type), , drop = FALSE]
  rownames(out) <- NULL
  structure(out, class = c("mem_by_type", "data.frame"))
}

#' @export
print.mem_by_type <- function(x, ...) {
  if (!all(c("type", "class", "count", "bytes", "share") %in% names(x))) return(NextMethod())
  cat(sprintf("<mem_by_type> %s in %s nodes\n", format(sum(x$bytes)),
              format(sum(x$count), big.mark = ",", scientific = FALSE)))
  if (nrow(x) == 0L) return(invisible(x))
  utf8 <- use_unicode()
  what <- ifelse(is.na(x$class), x$type, paste0(x$type, " <", x$class, ">"))
  bars <- vapply(x$share, function(s) {
    k <- max(0, min(10, round(s * 10)))
    paste0(strrep(if (utf8) "\u2588" else "#", k), strrep(" ", 10 - k))
  }, "")
  line <- paste(pad_text(what),
                 pad_text(format(x$count, big.mark = ",", scientific = FALSE), 12L, "right"),
                 pad_text(format(x$bytes), 10L, "right"), bars,
                 pad_text(sprintf("%.0f%%", 100 * x$share), 5L, "right"))
  cat(line, sep = "\n")
  invisible(x)
}

# Bars and ellipses in Unicode where the console can show them; the cli.unicode
# option (which testthat sets) decides when given.
use_unicode <- function() {
  isTRUE(getOption("cli.unicode", l10n_info()[["UTF-8"]]))
}

# What walking x costs the walker itself: nodes counted, bytes the walker holds
# at the end (pointer set, stack), deepest stack. Used by bench/size.R.
walk_stats <- function(x) {
  r <- .Call(ffi_size_stats, list(x))
  c(nodes = r[[1L]], bytes = r[[2L]], depth = r[[3L]])
}
