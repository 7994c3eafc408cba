#' The collector's triggers and growth settings
#'
#' R collects garbage when the cons cells in use reach their trigger or a new
#' vector would not fit under the vector trigger. After each full (level 2)
#' collection it moves the triggers: up when the heap is more than the growth
#' fraction full, down when it is less than 30% full, never below the startup
#' sizes or above the limits. `gc_triggers()` shows the triggers in force,
#' the limits ([mem.maxVSize()], [mem.maxNSize()]) and the growth settings
#' (the `R_GC_MEM_GROW` family of environment variables, read at startup).
#'
#' Reading the triggers needs [gc()]; `gc_triggers()` uses a minor collection
#' (`gc(full = FALSE)`), which frees only young garbage.
#'
#' @return A `gc_triggers` object: a list with `heap`, a data frame with one
#'   row per heap (`ncells`, `vcells`): cells and bytes in use, the trigger and
#'   the limit; and `settings`, the growth settings in force with where each
#'   came from.
#' @export
#' @examples
#' gc_triggers()
#' gc_triggers()$heap
gc_triggers <- function() {
  g <- gc(full = FALSE)
  maxv <- mem.maxVSize()
  maxn <- mem.maxNSize()
  heap <- data.frame(
    heap = c("ncells", "vcells"),
    used_cells = c(g[1L, 1L], g[2L, 1L]),
    trigger_cells = c(g[1L, 3L], g[2L, 3L]),
    stringsAsFactors = FALSE
  )
  heap$used <- new_mem_bytes(heap$used_cells * c(ncell_bytes, vcell_bytes))
  heap$trigger <- new_mem_bytes(heap$trigger_cells * c(ncell_bytes, vcell_bytes))
  heap$limit <- new_mem_bytes(c(maxn * ncell_bytes, maxv * mega))
  heap$free <- heap$trigger - heap$used
  structure(list(heap = heap, settings = gc_growth_settings()), class = "gc_triggers")
}

gc_growth_settings <- function() {
  env <- Sys.getenv(c("R_GC_MEM_GROW", "R_GC_GROWFRAC", "R_GC_GROWINCRFRAC",
                      "R_GC_NGROWINCRFRAC", "R_GC_VGROWINCRFRAC"), unset = NA)
  num <- suppressWarnings(as.numeric(env))
  names(num) <- names(env)
  grow <- c(n = 0.70, v = 0.70)
  incr <- c(n = 0.2, v = 0.2)
  src_grow <- src_incr <- c(n = "default", v = "default")
  mg <- num[["R_GC_MEM_GROW"]]
  if (!is.na(mg)) {
    w <- trunc(mg)
    if (w == 0) { incr[] <- 0; src_incr[] <- "R_GC_MEM_GROW=0" }
    if (w == 2) { incr[] <- 0.3; src_incr[] <- "R_GC_MEM_GROW=2" }
    if (w == 3) {
      incr[] <- 0.4; grow[] <- 0.5
      src_incr[] <- src_grow[] <- "R_GC_MEM_GROW=3"
    }
  }
  f <- num[["R_GC_GROWFRAC"]]
  if (!is.na(f) && f >= 0.35 && f <= 0.75) { grow[] <- f; src_grow[] <- "R_GC_GROWFRAC" }
  f <- num[["R_GC_GROWINCRFRAC"]]
  if (!is.na(f) && f >= 0.05 && f <= 0.80) { incr[] <- f; src_incr[] <- "R_GC_GROWINCRFRAC" }
  f <- num[["R_GC_NGROWINCRFRAC"]]
  if (!is.na(f) && f >= 0.05 && f <= 0.80) { incr[["n"]] <- f; src_incr[["n"]] <- "R_GC_NGROWINCRFRAC" }
  f <- num[["R_GC_VGROWINCRFRAC"]]
  if (!is.na(f) && f >= 0.05 && f <= 0.80) { incr[["v"]] <- f; src_incr[["v"]] <- "R_GC_VGROWINCRFRAC" }
  data.frame(
    heap = c("ncells", "vcells"),
    grow_frac = unname(grow),
    grow_frac_from = unname(src_grow),
    grow_incr_frac = unname(incr),
    grow_incr_frac_from = unname(src_incr),
    grow_incr_min_cells = c(40000, 80000),
    shrink_frac = c(0.30, 0.30),
    stringsAsFactors = FALSE
  )
}

#' @export
print.gc_triggers <- function(x, ...) {
  h <- x$heap
  s <- x$settings
  cat("<gc_triggers>\n")
  for (i in 1:2) {
    what <- if (i == 1L) "Cons cells (object headers, pairlists, environments)" else "Vector heap (vector data)"
    lim <- if (is.finite(h$limit[[i]])) format(h$limit[i]) else "no limit"
    cat(sprintf("%s: %s in use; next collection at %s (%s free); limit: %s\n",
                what, format(h$used[i]), format(h$trigger[i]), format(h$free[i]), lim))
  }
  for (i in 1:2) {
    nm <- if (i == 1L) "cons cells" else "vectors"
    cat(sprintf(paste0(
      "After a full collection the %s trigger grows when the heap is over %g%% full ",
      "(%s), by %s cells plus %g%% of its size (%s); it shrinks when under %g%% full.\n"),
      nm, 100 * s$grow_frac[[i]], s$grow_frac_from[[i]],
      format(s$grow_incr_min_cells[[i]], big.mark = ","), 100 * s$grow_incr_frac[[i]],
      s$grow_incr_frac_from[[i]], 100 * s$shrink_frac[[i]]))
  }
  invisible(x)
}
