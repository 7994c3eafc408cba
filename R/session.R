# The session: what removing objects would free, and a tidy gc().
#
# Retained size is computed by marking everything R keeps alive through other
# routes (src/retained.c) and summing what only the chosen bindings reach.

#' Memory that removing bindings would free
#'
#' `mem_retained()` answers "what would `rm()` give back?": the memory
#' reachable from the bindings `names` in `envir` and from nothing else R
#' keeps alive, that is, what removing these bindings and running a full
#' garbage collection would free. It counts the binding cells themselves too.
#'
#' Everything R keeps alive that R's API can reach is a root: the other
#' bindings of `envir`, the global environment and the search path, every
#' loaded namespace (and the base environment, which holds `.Last.value`,
#' the options and `last.warning`), the frames of the call stack with their
#' calls, functions and `on.exit()` expressions, and the environments all of
#' these reach. Promises are not forced and active bindings are not called.
#'
#' At the console, R keeps the value of the last command as `.Last.value`:
#' right after `x <- big_computation()`, the value of `x` is also held
#' there, so removing `x` in the next command frees only the binding (the
#' value goes once a further command has run). `mem_retained()` says so, as
#' `gc()` would.
#'
#' @section What it cannot see:
#' A few things keep memory alive without being reachable through R's API:
#' objects protected by running C code or kept by a package with
#' `R_PreserveObject()`, the byte-code interpreter's stack (for example the
#' vector a running `for` loop iterates over), registered finalizers and the
#' weak references R keeps for them, task callbacks, and the display lists of
#' graphics devices. Memory held only by these is counted as retained
#' although `gc()` would not free it; an object with a registered finalizer
#' is freed only after its finalizer has run, one collection later. A
#' string (`CHARSXP`) that is also the name of a symbol R knows about stays
#' alive with the symbol; memkit counts it as freed only if no symbol it
#' reaches has that name. A weak reference reachable from a root is
#' followed to its key, which R would not keep alive.
#'
#' @param names A character vector: names of bindings in `envir`.
#' @param envir The environment that holds them.
#' @return A [mem_bytes] number, with the cells that `gc()` counts as
#'   attribute `cells`: `c(ncells = , vcells = )`.
#' @seealso [mem_ls()] for every binding of an environment at once,
#'   [mem_rm()] to remove bindings and see what was freed.
#' @export
#' @examples
#' e <- new.env()
#' e$big <- runif(1e5)
#' e$alias <- e$big          # the same vector under another name
#' e$own <- runif(1e4)
#' mem_retained("big", e)    # little: `alias` keeps the vector alive
#' mem_retained(c("big", "alias"), e)
#' mem_retained("own", e)
mem_retained <- function(names, envir = parent.frame()) {
  check_env(envir)
  check_binding_names(names, envir)
  res <- .Call(ffi_retained_size, envir, unique(names), session_roots(envir))
  retained_bytes(res)
}

retained_bytes <- function(res) {
  structure(new_mem_bytes(res[[3L]]), cells = c(ncells = res[[1L]], vcells = res[[2L]]))
}

# Everything R keeps alive that the API reaches, beyond what C finds on its
# own (the global, base and empty environments): the loaded namespaces too.
# sys.function() of each frame, its call and its on.exit() expression are
# roots just as the frame is. The frames of memkit's own calls are included:
# they hold only names and environments.
session_roots <- function(envir) {
  frames <- sys.frames()
  calls <- sys.calls()
  funs <- lapply(seq_along(frames), sys.function)
  # The function itself in the call, so a local `sys.on.exit` cannot
  # shadow it.
  on_exit <- as.call(list(sys.on.exit))
  exits <- lapply(frames, function(f) eval(on_exit, f))
  namespaces <- lapply(loadedNamespaces(), getNamespace)
  list(envir, frames, calls, funs, exits, search_envs(), namespaces)
}

search_envs <- function() {
  lapply(seq_along(search()), as.environment)
}

check_env <- function(envir, arg = "envir", call = sys.call(-1L)) {
  if (!is.environment(envir)) {
    mk_abort("argument", sprintf("`%s` must be an environment, not %s.", arg,
                                 describe_value(envir)), call = call)
  }
  invisible(envir)
}

check_binding_names <- function(names, envir, arg = "names", call = sys.call(-1L)) {
  if (!is.character(names) || anyNA(names)) {
    mk_abort("argument", sprintf("`%s` must be a character vector of names, not %s.",
                                 arg, describe_value(names)), call = call)
  }
  if (!all(nzchar(names))) {
    mk_abort("argument", sprintf(
      "`%s` must name bindings, not hold the empty string \"\" (element %s).", arg,
      paste(which(!nzchar(names)), collapse = ", ")
    ), call = call)
  }
  bound <- vapply(names, exists, logical(1), envir = envir, inherits = FALSE)
  if (!all(bound)) {
    bad <- names[!bound]
    mk_abort("argument", sprintf(
      "`%s` must name bindings in %s; %s %s not bound there.", arg,
      format_env(envir), paste0("\"", bad, "\"", collapse = ", "),
      if (length(bad) == 1L) "is" else "are"
    ), call = call)
  }
  invisible(names)
}

format_env <- function(envir) {
  if (identical(envir, globalenv())) return("the global environment")
  nm <- environmentName(envir)
  if (nzchar(nm)) return(sprintf("environment %s", nm))
  "`envir`"
}

#' Collect garbage and see what it gave back
#'
#' `mem_gc()` runs a garbage collection, as [gc()] does, and returns what it
#' did as a small data frame: for R's cons cells (`Ncells`), its vector heap
#' (`Vcells`) and the process's resident memory (`RSS`), the figure before
#' and after, what was freed, and (for the cells) the collection trigger and
#' the peak, all as [mem_bytes].
#'
#' R frees the memory of dead objects, but the C library often keeps the
#' pages for later use, so the resident memory the operating system sees
#' barely moves after a large object is removed. With `trim = TRUE`,
#' `mem_gc()` then asks the C library to return free heap pages to the
#' operating system (see Platforms), and adds a row `RSS (trim)` with the
#' resident memory before and after that call.
#'
#' How the figures are obtained: R has no way to read the cells in use
#' without collecting, but it records them as its peak ("max used") at the
#' start of every collection. `mem_gc()` therefore collects, reads the peak,
#' and collects again resetting the peak (as `gc(reset = TRUE)` does), so the
#' next call starts from a clean peak. `before` is exact when no other
#' collection ran since the previous `mem_gc()` or `gc(reset = TRUE)`, and
#' otherwise the highest use since then (then `freed` is an upper bound).
#' `max_used` is that peak. Bytes are 56 per cell for `Ncells` (as `gc()`
#' reports; vector headers are in fact 48) and 8 per cell for `Vcells`.
#'
#' @section Platforms:
#' `trim` calls `malloc_trim(0)` with the GNU C library (Linux),
#' `malloc_zone_pressure_relief()` on macOS and `_heapmin()` on Windows
#' (which tells only whether it succeeded, not whether memory was released).
#' With other C libraries it does nothing and `trimmed` is `NA`. `RSS` is the
#' resident set on Linux and macOS and the working set on Windows.
#' @param full `TRUE` for a full collection (all generations), as in [gc()].
#' @param trim `TRUE` to return free heap memory to the operating system
#'   after collecting.
#' @return A data frame of class `mem_gc` with one row per `what`
#'   (`"Ncells"`, `"Vcells"`, `"RSS"`, and `"RSS (trim)"` when `trim = TRUE`)
#'   and columns `before`, `after`, `freed`, `trigger`, `max_used` (all
#'   [mem_bytes]; `NA` where a figure does not apply), and `cells` with the
#'   cell counts after the collection. Attribute `trimmed` is `TRUE` when
#'   the trim released memory, `FALSE` when it found none, `NA` when it was
#'   not called or has no way to.
#' @export
#' @examples
#' local({
#'   x <- runif(1e6)
#'   rm(x)
#'   mem_gc()
#' })
#' mem_gc(trim = TRUE)
mem_gc <- function(full = TRUE, trim = FALSE) {
  check_flag(full)
  check_flag(trim)
  rss0 <- rss_now()
  g1 <- gc(full = full)
  g2 <- gc(full = full, reset = TRUE)
  rss1 <- rss_now()
  trimmed <- NA
  if (trim) {
    trimmed <- .Call(ffi_utils_trim)
    rss2 <- rss_now()
  }
  cell_bytes <- c(ncell_bytes, vcell_bytes)
  before <- g1[1:2, "max used"] * cell_bytes
  after <- g2[1:2, "used"] * cell_bytes
  out <- data.frame(
    what = c("Ncells", "Vcells", "RSS"),
    before = new_mem_bytes(c(before, rss0)),
    after = new_mem_bytes(c(after, rss1)),
    freed = new_mem_bytes(c(before - after, rss0 - rss1)),
    trigger = new_mem_bytes(c(g2[1:2, "gc trigger"] * cell_bytes, NA)),
    max_used = new_mem_bytes(c(before, NA)),
    cells = c(g2[1:2, "used"], NA),
    stringsAsFactors = FALSE
  )
  if (trim) {
    out <- rbind(out, data.frame(
      what = "RSS (trim)", before = rss1, after = rss2, freed = rss1 - rss2,
      trigger = new_mem_bytes(NA), max_used = new_mem_bytes(NA), cells = NA,
      stringsAsFactors = FALSE
    ))
  }
  structure(out, class = c("mem_gc", "data.frame"), trimmed = trimmed)
}

#' @export
print.mem_gc <- function(x, ...) {
  # A subset prints what it has: the byte columns left, by `what`; without
  # `what` (or any byte column), it is a plain data frame.
  cols <- c(before = "before", after = "after", freed = "freed", trigger = "trigger",
            `max used` = "max_used")
  cols <- cols[cols %in% names(x)]
  if (!"what" %in% names(x) || length(cols) == 0L) return(NextMethod())
  cat("<mem_gc>\n")
  df <- lapply(cols, function(col) {
    s <- format(mem_bytes(x[[col]]))
    ifelse(s == "NA", "", s)
  })
  cat(table_lines(df, align = "right", row_names = make.unique(as.character(x$what))), sep = "\n")
  trimmed <- attr(x, "trimmed")
  if (!is.null(trimmed) && !is.na(trimmed) && any(x$what == "RSS (trim)")) {
    cat(if (trimmed) "malloc_trim() returned free heap pages to the system.\n"
        else "malloc_trim() found no free heap pages to return.\n")
  }
  invisible(x)
}

#' Every binding of an environment with its size and retained size
#'
#' `mem_ls()` is `ls()` with the memory each binding holds: one row per
#' binding of `envir` with its class, its size (as [mem_size()] gives it,
#' shared memory included), its retained size (what removing only this
#' binding would free, as [mem_retained()] gives it) and the other bindings
#' it shares memory with (see "Shared memory" below). Rows are sorted by
#' retained size, largest first; the printed table ends with a total row:
#' the combined size of all the bindings (shared memory counted once) and
#' what removing all of them would free, which is at least the sum of the
#' retained column (memory shared by two bindings is retained by neither
#' alone).
#'
#' The result is a data frame to filter and sort as any other. A subset of
#' its rows (`res[res$size > 1e6, ]`) prints without the total row, and says
#' so: the sizes of bindings that share memory do not add up, and what
#' removing just those bindings would free is a question for
#' [mem_retained()] (`mem_retained(res$name, envir)`). A subset of its
#' columns prints as a plain data frame.
#'
#' Promises (for example the arguments of a function not yet used, or
#' bindings made with [delayedAssign()]) are not forced and active bindings
#' are not called: their class reads `<promise>` or `<active>`, and their
#' sizes are those of the promise or the binding's function. A function's
#' argument that was given no value reads `<missing>`. A binding that
#' [mem_offload()] moved to disk and that was not used since reads
#' `<offloaded>`: it is not loaded to be listed, its size is that of the
#' lazy binding, and attribute `offloaded` (printed below the table) gives
#' its class, storage and bytes on disk.
#'
#' All retained sizes come from one walk of the session (see
#' [mem_retained()] for the roots and what cannot be seen) and one walk of
#' the memory only the bindings reach; all the `size`s from one graph of what
#' the bindings reach, so bindings that reach the same memory (closures
#' that capture the environment holding them) do not walk it again.
#'
#' @section Shared memory:
#' Two bindings share memory when some of the memory they hold is reachable
#' from both (and from nothing outside `envir`): it is in neither one's
#' retained size, only in the total. `shares` lists, for each binding, the
#' other bindings it shares at least `min_shared` bytes with (1 KiB by
#' default), adding up every node the two hold in common. Smaller sharing
#' is left out of `shares` because it is not shared data but bookkeeping: a
#' result of arithmetic on a matrix keeps the matrix's 56-byte `dim`
#' vector, a copy with new values keeps the `names` of the original. Such
#' memory still counts in neither binding's retained size. `min_shared = 0`
#' lists every pair that shares anything.
#'
#' @param envir The environment to list.
#' @param min_shared The bytes two bindings must hold in common to be
#'   listed in each other's `shares`: a number of bytes or a size such as
#'   `"1 MB"`.
#' @return A data frame of class `mem_ls` with columns `name`, `class`,
#'   `size` and `retained` ([mem_bytes]), and `shares`, a list of the names
#'   of the other bindings each one shares at least `min_shared` bytes
#'   with. Attributes `bindings` (the names of all the bindings listed),
#'   `total` (their combined size), `total_retained` (what removing every binding would
#'   free, with its `cells`) and `walk`: the nodes marked as reachable from
#'   elsewhere, the nodes reachable only from the bindings, the bytes the
#'   walks used, the nodes of the sizes' graph (`sized`) and the steps its
#'   queries took (`steps`, about one per binding where memory is shared in
#'   the usual ways). When some bindings are offloaded, attribute
#'   `offloaded`: a data frame of their `name`, `class`, `storage`, `disk`
#'   ([mem_bytes]) and `path`.
#' @export
#' @examples
#' e <- new.env()
#' e$x <- runif(1e5)
#' e$y <- list(e$x, runif(10))   # shares x's vector
#' e$z <- rnorm(5e4)
#' delayedAssign("lazy", stop("never forced"), assign.env = e)
#' mem_ls(e)
mem_ls <- function(envir = parent.frame(), min_shared = 1024) {
  check_env(envir)
  min_shared <- check_bytes_arg(min_shared)
  res <- .Call(ffi_retained_ls, envir, session_roots(envir))
  nms <- res[[1L]]
  kind <- res[[2L]]
  n <- length(nms)
  cls <- c(promise = "<promise>", active = "<active>", missing = "<missing>")[kind]
  val <- which(kind == "value")
  # Values only: reading them forces no promise and calls no binding.
  cls[val] <- vapply(mget(nms[val], envir = envir, inherits = FALSE),
                     function(v) class(v)[[1L]], "", USE.NAMES = FALSE)
  cls <- unname(cls)
  shares <- shares_of(res[[5L]], res[[7L]], nms, min_shared)
  ret <- res[[4L]]
  out <- data.frame(name = nms, class = cls, stringsAsFactors = FALSE)
  out$size <- new_mem_bytes(res[[3L]])
  out$retained <- new_mem_bytes(ret[, 3L])
  out$shares <- shares
  ord <- order(-ret[, 3L], -res[[3L]], nms, method = "radix")
  out <- out[ord, , drop = FALSE]
  rownames(out) <- NULL
  # Bindings mem_offload() left lazy read "<offloaded>" (R/offload.R).
  out <- offload_mark_ls(out, envir)
  totals <- res[[6L]]
  structure(
    out,
    class = c("mem_ls", "data.frame"),
    bindings = nms,
    total = new_mem_bytes(totals[[1L]]),
    total_retained = retained_bytes(totals[2:4]),
    walk = c(marked = totals[[5L]], walked = totals[[6L]], bytes = totals[[7L]],
             sized = totals[[8L]], steps = totals[[9L]])
  )
}

# For each binding, the other bindings it shares at least `min_shared` bytes
# with. `sets` are the sets of bindings (numbers) that reach a node nothing
# outside reaches, `bytes` what the nodes of each set take: two bindings
# share the bytes of every set that holds both.
shares_of <- function(sets, bytes, nms, min_shared) {
  n <- length(nms)
  shares <- rep(list(character()), n)
  if (length(sets) == 0L) return(shares)
  k <- lengths(sets)
  from <- unlist(lapply(sets, function(s) rep(s, each = length(s))))
  to <- unlist(lapply(sets, function(s) rep(s, times = length(s))))
  b <- rep(bytes, k * k)
  other <- from != to
  pair <- (from[other] - 1) * n + to[other]
  common <- rowsum(b[other], pair, reorder = FALSE)
  keep <- common[, 1L] >= min_shared
  pair <- as.double(rownames(common))[keep]
  from <- (pair - 1) %/% n + 1
  to <- (pair - 1) %% n + 1
  found <- split(nms[to], factor(from, levels = seq_len(n)))
  unname(lapply(found, function(s) sort(unname(s))))
}

#' @export
print.mem_ls <- function(x, ...) {
  if (!all(c("name", "class", "size", "retained", "shares") %in% names(x))) {
    return(NextMethod())
  }
  n <- nrow(x)
  # The total is that of all the bindings: it is shown only while every one
  # of them is, since sizes of bindings that share memory do not add up.
  all_names <- attr(x, "bindings")
  total <- attr(x, "total")
  total_retained <- attr(x, "total_retained")
  complete <- !is.null(all_names) && n == length(all_names) && setequal(x$name, all_names)
  if (is.null(all_names) || complete) {
    cat(sprintf("<mem_ls> %d binding%s\n", n, if (n == 1L) "" else "s"))
  } else {
    cat(sprintf("<mem_ls> %d of %d bindings\n", n, length(all_names)))
  }
  if (n == 0L) return(invisible(x))
  with_total <- complete && !is.null(total) && !is.null(total_retained)
  shares <- vapply(x$shares, function(s) {
    if (length(s) > 3L) s <- c(s[1:3], sprintf("+%d more", length(s) - 3L))
    paste(s, collapse = ", ")
  }, character(1))
  df <- data.frame(
    name = x$name, class = x$class, size = format(mem_bytes(x$size)),
    retained = format(mem_bytes(x$retained)), shares = shares, stringsAsFactors = FALSE
  )
  if (with_total) {
    df <- rbind(df, data.frame(name = "(total)", class = "", size = format(total),
                               retained = format(total_retained), shares = "",
                               stringsAsFactors = FALSE))
  }
  cat(table_lines(df, align = "left"), sep = "\n")
  offload_ls_footer(x)
  if (!complete && !is.null(all_names)) {
    cat("# No total row for a subset: shared memory makes sizes not add up.\n",
        "# mem_retained(x$name, envir) gives what removing these bindings would free.\n",
        sep = "")
  }
  invisible(x)
}

#' Remove bindings and see what was freed
#'
#' `mem_rm()` is [rm()] that says what it freed: before removing, it
#' predicts the memory that will be freed ([mem_retained()]); after
#' removing, it runs a full garbage collection and measures what was
#' actually freed from `gc()`'s cell counts.
#'
#' Both figures are reported as `gc()` counts them: 56 bytes per cell for
#' cons cells (vector headers are really 48) and 8 bytes per vector cell, so
#' they can be compared; the cells are in attribute `cells` of each. They
#' differ when something outside R's API keeps memory alive (see
#' [mem_retained()]), or when a finalizer allocates or frees during the
#' collection.
#'
#' @param ... Names of the bindings to remove, as names or strings (as in
#'   [rm()]).
#' @param list A character vector of further names.
#' @param envir The environment to remove them from. It must not be locked
#'   ([lockEnvironment()]): that is an error of kind `state` (see
#'   [memkit_errors]), raised before anything is collected. A locked binding
#'   in an environment that is not locked is removed, as [rm()] removes it.
#' @return A list of class `mem_rm` with `names` (removed), `predicted` and
#'   `freed` ([mem_bytes], each with attribute `cells`).
#' @export
#' @examples
#' local({
#'   x <- runif(1e6)
#'   y <- x                # shares x's memory
#'   z <- rnorm(1e5)
#'   print(mem_rm(x))      # y keeps the vector: little is freed
#'   mem_rm(y, list = "z")
#' })
mem_rm <- function(..., list = character(), envir = parent.frame()) {
  dots <- match.call(expand.dots = FALSE)$...
  ok <- vapply(dots, function(d) is.symbol(d) || is.character(d) && length(d) == 1L, logical(1))
  if (!all(ok)) {
    mk_abort("argument", "`...` must contain names or strings, as in rm().")
  }
  check_env(envir)
  if (is.null(list)) list <- character()
  if (!is.character(list) || anyNA(list)) {
    mk_abort("argument", sprintf("`list` must be a character vector of names, not %s.",
                                 describe_value(list)))
  }
  names <- unique(c(vapply(dots, as.character, character(1)), list))
  check_binding_names(names, envir, arg = if (length(dots)) "..." else "list")
  # Checked here, before any collection: rm() would fail only after the
  # prediction and two full collections.
  if (environmentIsLocked(envir)) {
    mk_abort("state", sprintf(
      "Can't remove bindings from %s: it is locked (see lockEnvironment()).",
      format_env(envir)
    ))
  }
  predicted <- .Call(ffi_retained_size, envir, names, session_roots(envir))
  if (is.null(session_state$warm)) {
    # The first run of the counting code in a session allocates a cell for
    # good (between its counts): run it once on nothing.
    count_freed(character(), envir)
    session_state$warm <- TRUE
  }
  freed <- count_freed(names, envir)
  structure(
    list(
      names = names,
      predicted = gc_bytes(predicted[1:2]),
      freed = gc_bytes(freed)
    ),
    class = "mem_rm"
  )
}

session_state <- new.env(parent = emptyenv())

# Cells that removing `names` from envir and a full collection free.
# Everything the counting keeps alive (`cells` and its indices) exists
# before the first count, so nothing is alive at the second count that was
# not at the first. rm() runs once before, removing nothing: the first call
# of rm() in a session allocates for good (base R is lazy-loaded), and that
# must not fall between the counts.
count_freed <- function(names, envir) {
  force(names)
  rm(list = character(), envir = envir)
  cells <- numeric(4) # not c(0, 0, 0, 0): the compiler makes that a constant
  first <- 1:2
  second <- 3:4
  cells[first] <- gc_used()
  rm(list = names, envir = envir)
  cells[second] <- gc_used()
  cells[first] - cells[second]
}

# Ncells and Vcells in use after a full collection. The second collection
# frees the first one's result.
gc_used <- function() {
  gc(full = TRUE)
  g <- gc(full = TRUE)
  c(g[1L, 1L], g[2L, 1L])
}

gc_bytes <- function(cells) {
  cells <- c(ncells = cells[[1L]], vcells = cells[[2L]])
  structure(new_mem_bytes(cells[[1L]] * ncell_bytes + cells[[2L]] * vcell_bytes), cells = cells)
}

#' @export
print.mem_rm <- function(x, ...) {
  cat(sprintf("<mem_rm> removed %s\n", paste(x$names, collapse = ", ")))
  fmt <- function(b) {
    cells <- attr(b, "cells")
    sprintf("%s (%s Ncells, %s Vcells)", format(b),
            format(cells[[1L]], big.mark = ",", scientific = FALSE),
            format(cells[[2L]], big.mark = ",", scientific = FALSE))
  }
  cat("predicted: ", fmt(x$predicted), "\n", sep = "")
  cat("freed:     ", fmt(x$freed), "\n", sep = "")
  invisible(x)
}

#' Identical vectors stored more than once
#'
#' `mem_dupes()` finds vectors inside `x` (an object, or every binding of an
#' environment) whose contents are identical but which are stored
#' separately: each copy takes its own memory, and all but one are waste
#' that sharing one copy would save. Contents are hashed in C and only
#' vectors with equal hashes are compared, so the search takes time in
#' proportion to the data, not to the number of pairs.
#'
#' Vectors of the same type and length with the same data are duplicates,
#' whatever their attributes (two columns of different data frames, or a
#' vector and a copy with new names). The same vector reached along two
#' paths is shared, not duplicated. The search follows list elements,
#' attributes, closures' environments and environments' bindings (not the
#' global environment, namespaces or package environments unless `x` is
#' one); promises are not forced and active bindings are not called.
#' Compact (ALTREP) vectors are skipped: their data are not stored.
#'
#' @param x An object or an environment.
#' @param min_bytes Vectors smaller than this many bytes are not reported.
#' @return A data frame of class `mem_dupes`, one row per group of
#'   identical vectors, largest waste first: `type`, `length`, `size` (of one
#'   copy), `copies`, `wasted` (`size * (copies - 1)`, [mem_bytes]) and
#'   `paths` (a list: the R code that reaches each copy).
#' @export
#' @examples
#' a <- runif(1e4)
#' x <- list(a = a, b = a + 0, c = a, d = runif(1e4))
#' mem_dupes(x)   # x$b is a copy of x$a; x$c is the same vector
mem_dupes <- function(x, min_bytes = 1e4) {
  check_scalar_number(min_bytes, min = 0)
  label <- deparse(substitute(x), width.cutoff = 60L, nlines = 1L)
  if (!grepl("^[A-Za-z.][A-Za-z0-9._]*$", label)) label <- "x"
  found <- .Call(ffi_retained_vectors, x, as.double(min_bytes))
  h <- .Call(ffi_retained_hash, found$vecs)
  group <- h[[1L]]
  keep <- !is.na(group) & h[[2L]] >= min_bytes
  ids <- h[[3L]]
  rows <- split(which(keep), group[keep])
  rows <- rows[vapply(rows, function(r) length(unique(ids[r])) > 1L, logical(1))]
  first <- vapply(rows, function(r) r[[1L]], integer(1))
  size <- h[[2L]][first]
  copies <- vapply(rows, function(r) length(unique(ids[r])), integer(1))
  out <- data.frame(
    type = vapply(found$vecs[first], typeof, character(1)),
    length = as.double(lengths(found$vecs[first])),
    stringsAsFactors = FALSE
  )
  out$size <- new_mem_bytes(size)
  out$copies <- copies
  out$wasted <- new_mem_bytes(size * (copies - 1L))
  out$paths <- lapply(rows, function(r) walk_paths(found, found$path[r], label))
  out <- out[order(-size * (copies - 1L)), , drop = FALSE]
  rownames(out) <- NULL
  structure(out, class = c("mem_dupes", "data.frame"))
}

# R code that reaches each node, from the walker's path records (src/walk.h:
# a record per edge, with its parent record, kind, name and index). The edge
# kinds 1 to 8 are mem_tree()'s, so tree_steps() turns each into R code.
walk_paths <- function(found, ids, label) {
  vapply(ids, function(id) {
    steps <- integer(64L)
    n <- 0L
    while (!is.na(id)) {
      n <- n + 1L
      if (n > length(steps)) length(steps) <- 2L * length(steps)
      steps[[n]] <- id
      id <- found$parent[[id]]
    }
    steps <- rev(steps[seq_len(n)])
    kind <- found$kind[steps]
    index <- found$index[steps]
    # A pairlist's element (index 0) is reached through the cells before
    # it (kind 11): its position is one more than their number.
    cells <- 0
    for (j in seq_len(n)) {
      if (kind[[j]] == 1L && index[[j]] == 0) index[[j]] <- cells + 1
      cells <- if (kind[[j]] == 11L) cells + 1 else 0
    }
    parent_type <- ifelse(kind == 1L & found$index[steps] > 0, "list", "pairlist")
    st <- tree_steps(kind, found$name[steps], index, parent_type)
    paste0(paste(rev(st$pre), collapse = ""), label, paste(st$post, collapse = ""))
  }, character(1))
}

#' @export
print.mem_dupes <- function(x, ...) {
  # A subset without the columns the table needs is a plain data frame.
  if (!all(c("type", "length", "size", "copies", "wasted", "paths") %in% names(x))) {
    return(NextMethod())
  }
  n <- nrow(x)
  cat(sprintf("<mem_dupes> %d group%s of identical vectors, %s wasted\n", n,
              if (n == 1L) "" else "s", format(sum(mem_bytes(x$wasted)))))
  if (n == 0L) return(invisible(x))
  df <- data.frame(
    type = x$type, length = format(x$length, big.mark = ",", scientific = FALSE),
    size = format(x$size), copies = x$copies, wasted = format(x$wasted),
    paths = "", stringsAsFactors = FALSE
  )
  # The paths take what is left of the line.
  room <- getOption("width", 80L) - sum(vapply(df[-6L], function(col) {
    max(text_width(c(col, "length")))
  }, numeric(1))) - 7L
  df$paths <- vapply(x$paths, function(p) {
    s <- paste(p, collapse = ", ")
    if (text_width(s) <= room) return(s)
    more <- sprintf(" +%d more", length(p) - 1L)
    paste0(trim_text(p[[1L]], max(10L, room - text_width(more) - 3L)),
           if (text_width(p[[1L]]) > room - text_width(more)) "...", more)
  }, character(1))
  cat(table_lines(df, align = "left"), sep = "\n")
  invisible(x)
}

