# GC tracing, the results: print(), summary() and plot() of traces and events.

#' @export
as.data.frame.gc_trace <- function(x, ...) x$events

#' @export
print.gc_events <- function(x, n = 10L, ...) {
  cat(sprintf("<gc_events> %d collection%s\n", nrow(x), if (nrow(x) == 1L) "" else "s"))
  y <- x
  class(y) <- "data.frame"
  drop <- intersect(c("mono", "stack"), names(y))
  y <- y[setdiff(names(y), drop)]
  if ("time" %in% names(y)) y$time <- round(y$time, 3L)
  if (ncol(y) == 0L || nrow(y) == 0L) return(invisible(x))
  shown <- format(utils::head(y, n), ...)
  cat(table_lines(shown, align = "right", row_names = rownames(shown)), sep = "\n")
  if (nrow(y) > n) cat(sprintf("# ... %d more rows\n", nrow(y) - n))
  invisible(x)
}

#' @export
print.gc_trace <- function(x, ...) {
  ev <- x$events
  n <- nrow(ev)
  lv <- tabulate(ev$level + 1L, nbins = 3L)
  cat(sprintf("<gc_trace> %d collection%s in %s\n", n, if (n == 1L) "" else "s",
              format_secs(x$elapsed)))
  if (n > 0L) {
    cat(sprintf("  levels 0/1/2: %d/%d/%d%s\n", lv[[1L]], lv[[2L]], lv[[3L]],
                if (any(ev$explicit)) sprintf("; %d explicit gc()", sum(ev$explicit)) else ""))
    cat(sprintf("  time in GC: %s (%s of elapsed)\n", format_secs(x$gc_time),
                format_pct(x$gc_time / x$elapsed)))
    used <- ev$ncells_used + ev$vcells_used
    if (any(!is.na(used))) {
      cat(sprintf("  heap after GC: %s to %s\n", format(min(used, na.rm = TRUE)),
                  format(max(used, na.rm = TRUE))))
    }
  }
  invisible(x)
}

format_pct <- function(p) {
  if (!is.finite(p)) return("NA")
  sprintf("%.1f%%", 100 * p)
}

#' @export
summary.gc_trace <- function(object, ...) {
  ev <- object$events
  lv <- tabulate(ev$level + 1L, nbins = 3L)
  by_level <- data.frame(level = 0:2, collections = lv)
  used <- ev$ncells_used + ev$vcells_used
  trig <- ev$ncells_trigger + ev$vcells_trigger
  tv <- ev$vcells_trigger[!is.na(ev$vcells_trigger)]
  tn <- ev$ncells_trigger[!is.na(ev$ncells_trigger)]
  calls <- ev$call
  calls[is.na(calls)] <- "(none sampled)"
  tab <- sort(table(calls), decreasing = TRUE)
  top <- data.frame(call = names(tab), collections = as.integer(tab),
                    stringsAsFactors = FALSE)
  rownames(top) <- NULL
  structure(list(
    collections = nrow(ev),
    by_level = by_level,
    explicit = sum(ev$explicit),
    unseen = sum(!ev$seen),
    elapsed = object$elapsed,
    gc_time = object$gc_time,
    gc_share = object$gc_time / object$elapsed,
    heap_range = if (any(!is.na(used))) range(used, na.rm = TRUE) else new_mem_bytes(c(NA, NA)),
    trigger_range = if (any(!is.na(trig))) range(trig, na.rm = TRUE) else new_mem_bytes(c(NA, NA)),
    trigger_changes = c(ncells = count_changes(tn), vcells = count_changes(tv)),
    trigger_start = object$trigger_start,
    trigger_end = object$trigger_end,
    trigger_first = trigger_row(ev, 1L),
    trigger_last = trigger_row(ev, nrow(ev)),
    top_calls = utils::head(top, 10L)
  ), class = "summary_gc_trace")
}

# The triggers after event `i` (NA without one), and whether estimated.
trigger_row <- function(ev, i) {
  if (i < 1L || i > nrow(ev)) {
    return(list(trigger = new_mem_bytes(c(ncells = NA, vcells = NA)), estimated = NA))
  }
  list(trigger = new_mem_bytes(c(ncells = ev$ncells_trigger[[i]], vcells = ev$vcells_trigger[[i]])),
       estimated = ev$trigger_estimated[[i]])
}

# Estimated triggers jitter with R's rounding: count moves of more than 2%.
count_changes <- function(x) {
  x <- as.double(x)
  if (length(x) < 2L) return(0L)
  sum(abs(diff(x)) > 0.02 * pmax(x[-1L], x[-length(x)]))
}

#' @export
print.summary_gc_trace <- function(x, ...) {
  cat(sprintf("%d collections in %s; %s in GC (%s)\n", x$collections,
              format_secs(x$elapsed), format_secs(x$gc_time), format_pct(x$gc_share)))
  cat(sprintf("By level: 0: %d, 1: %d, 2: %d; explicit gc(): %d; known only from R's numbering: %d\n",
              x$by_level$collections[[1L]], x$by_level$collections[[2L]],
              x$by_level$collections[[3L]], x$explicit, x$unseen))
  cat(sprintf("Heap after GC: %s to %s\n", format(x$heap_range[[1L]]), format(x$heap_range[[2L]])))
  # The exact triggers at the ends where known; otherwise those after the
  # first and last collections, "~" where estimated from R's reports.
  ends <- lapply(list(list(x$trigger_start, x$trigger_first), list(x$trigger_end, x$trigger_last)),
                 function(e) {
    if (!anyNA(e[[1L]])) return(format(e[[1L]]))
    out <- format(e[[2L]]$trigger)
    if (isTRUE(e[[2L]]$estimated)) out <- paste0("~", out)
    out
  })
  if (anyNA(x$trigger_first$trigger) && anyNA(x$trigger_start)) {
    cat("Triggers: not read (no collection)\n")
  } else {
    cat(sprintf("Triggers: cons cells %s -> %s, vectors %s -> %s (%d and %d changes)\n",
                ends[[1L]][[1L]], ends[[2L]][[1L]], ends[[1L]][[2L]], ends[[2L]][[2L]],
                x$trigger_changes[["ncells"]], x$trigger_changes[["vcells"]]))
  }
  if (nrow(x$top_calls)) {
    cat("Calls running at most collections:\n")
    top <- utils::head(x$top_calls, 5L)
    w <- max(nchar(top$collections))
    for (i in seq_len(nrow(top))) {
      cat(sprintf("  %*d  %s\n", w, top$collections[[i]], top$call[[i]]))
    }
  }
  invisible(x)
}

#' @export
plot.gc_trace <- function(x, ...) {
  ev <- x$events
  t <- ev$time
  vu <- as.double(ev$vcells_used) / mega
  nu <- as.double(ev$ncells_used) / mega
  vt <- as.double(ev$vcells_trigger) / mega
  nt <- as.double(ev$ncells_trigger) / mega
  ylim <- range(c(0, vu, nu, vt, nt), na.rm = TRUE, finite = TRUE)
  if (!all(is.finite(ylim)) || diff(ylim) == 0) ylim <- c(0, max(1, ylim[[2L]]))
  xlim <- range(c(0, t, x$elapsed), na.rm = TRUE, finite = TRUE)
  level_cols <- c("#1b9e77", "#d95f02", "#7570b3")
  graphics::plot(NA, xlim = xlim, ylim = ylim, xlab = "seconds since the trace started",
                 ylab = "MiB after each collection",
                 main = sprintf("%d garbage collections", nrow(ev)), ...)
  series <- function(used, trig, col) {
    ok <- !is.na(trig)
    if (any(ok)) graphics::lines(t[ok], trig[ok], type = "s", lty = 2, col = col)
    ok <- !is.na(used)
    if (any(ok)) graphics::lines(t[ok], used[ok], type = "o", pch = 20, cex = 0.6, col = col)
  }
  series(vu, vt, "black")
  series(nu, nt, "#3182bd")
  tick <- diff(ylim) * 0.03
  lv <- ev$level
  if (length(t)) {
    graphics::segments(t, ylim[[1L]], t, ylim[[1L]] + tick,
                       col = ifelse(is.na(lv), "grey60", level_cols[lv + 1L]), lwd = 2)
  }
  graphics::legend("topleft", bty = "n", cex = 0.8, ncol = 2,
                   legend = c("vectors in use", "vector trigger", "cons cells in use",
                              "cons cell trigger", "level 0", "level 1", "level 2"),
                   lty = c(1, 2, 1, 2, 1, 1, 1), lwd = c(1, 1, 1, 1, 2, 2, 2),
                   col = c("black", "black", "#3182bd", "#3182bd", level_cols))
  invisible(x)
}

