# GC tracing, the joining side: stopping a trace and turning the two raw
# streams of src/gctrace.c (R's reports and the sentinel's callbacks) into one
# row per collection.

# ---- stopping -------------------------------------------------------------

# Called from on.exit() when gc_trace() is left by an error or an interrupt
# before it could finish: drop this view and everything opened inside it.
gctrace_abandon <- function(id) {
  ids <- vapply(the_gc$views, `[[`, integer(1), "id")
  k <- match(id, ids)
  if (is.na(k)) return(invisible())
  the_gc$views <- the_gc$views[seq_len(k - 1L)]
  if (length(the_gc$views) == 0L) gctrace_close()
  invisible()
}

# `frames`: the caller's frames, all that a sample of a collection made
# since the last safe point keeps (gctrace_start_point()).
gctrace_end <- function(id, value, frames) {
  ids <- vapply(the_gc$views, `[[`, integer(1), "id")
  k <- match(id, ids)
  if (is.na(k)) return(NULL)
  v <- the_gc$views[[k]]
  # The callbacks of collections since the last safe point, now: after this
  # every collection of the trace is among the reports and callbacks.
  if (tracing_here()) .Call(ffi_gctrace_sync, frames)
  gct <- gc.time()[[3L]]
  mono <- .Call(ffi_utils_now)
  recs <- .Call(ffi_gctrace_records, v$rec0)
  cbs <- .Call(ffi_gctrace_callbacks, v$cb)
  known <- gctrace_tail_known(recs, cbs)
  if (known) {
    end <- list(rec = attr(recs, "total"), cb = attr(cbs, "total"), marked = FALSE,
                mono = mono, gctime = gct, mono_before = mono, gctime_before = gct,
                trigger = NULL)
  } else {
    end <- gctrace_mark_point()
    end$marked <- TRUE
    end$mono_before <- mono
    end$gctime_before <- gct
    recs <- .Call(ffi_gctrace_records, v$rec0)
    cbs <- .Call(ffi_gctrace_callbacks, v$cb)
    # Keep the callbacks up to the end marker's own: it stands for the
    # collections since the last safe point (e.g. in C code at the very end
    # of `expr`), though its stack is memkit's, not the user's.
    ncb <- max(0L, end$cb - v$cb)
    cbs <- lapply(cbs, function(x) x[seq_len(min(ncb, length(x)))])
    if (ncb > 0L && length(cbs$stack) == ncb && is_mark_stack(cbs$stack[[ncb]])) {
      cbs$stack[ncb] <- list(NULL)
      cbs$gctime[[ncb]] <- NA_real_
    }
  }
  # Views opened inside this one and never stopped end with it.
  the_gc$views <- the_gc$views[seq_len(k - 1L)]
  # (gctrace_tail_known() has just seen the sink on the pipe.)
  if (length(the_gc$views) == 0L) gctrace_close(sink = if (known) the_gc$con_number)
  if (known && length(recs$gc) == 0L && is.null(v$start)) {
    # No collection: nothing to join.
    return(new_gc_trace(empty_events(), value, v, end, NULL))
  }
  nrec <- end$rec - v$rec0
  recs <- lapply(recs, function(x) x[seq_len(min(nrec, length(x)))])
  recs <- gctrace_start_row(recs, cbs, v)
  if (end$marked) {
    # The marker's report gives the exact triggers until the next level-2
    # collection: later traces use them.
    K <- length(recs$gc)
    if (!is.na(recs$level2[[K]])) the_gc$known <- list(level2 = recs$level2[[K]], trigger = end$trigger)
  }
  events <- gctrace_events(recs, cbs, v, end)
  new_gc_trace(events, value, v, end, recs)
}

# Can the end of a trace be read from R's reports and the callbacks alone,
# without a marker collection of memkit's own? `recs`: the trace's reports;
# `cbs`: its callbacks, all of them in (gctrace_end() has run the pending
# ones). Yes when nothing can have happened since R's last report that the
# numbering would not show:
# - no callback after the one that brought that report, and that one not
#   inside gc() (a silent gc() may have followed the report);
# - with no report in the trace, no callback at all (no collection);
# - no relay of a message since that report (gcinfo() is off meanwhile);
# - the message sink still the pipe and gcinfo() still on (code that takes
#   the message stream, such as capture.output() or bench::mark(), leaves
#   the sink reset when it is done).
# Otherwise a marker closes the trace.
gctrace_tail_known <- function(recs, cbs) {
  if (!tracing_here() || isTRUE(the_gc$window)) return(FALSE)
  if (sink.number(type = "message") != the_gc$con_number) return(FALSE)
  if (!isTRUE(gcinfo(TRUE))) return(FALSE)
  K <- length(recs$gc)
  total <- attr(recs, "total")
  if (isTRUE(the_gc$window_nrec >= total)) return(FALSE)
  ncb <- length(cbs$nrec)
  if (K == 0L) return(ncb == 0L)
  j <- match(total, cbs$nrec)
  !(!is.na(j) && (j < ncb || is_gc_stack(cbs$stack[[j]])))
}

# The trace's start as a first row of `recs` (the reports of the trace, the
# end marker's last): R's collection count and per-level totals then. No
# report shows them (a trace opens without a collection), so they are
# worked out backwards from the first report: the collections before it
# that R did not report are the callbacks before it, each one collection
# (an explicit gc() runs its callback at once; an automatic collection R
# did not report, because other code held the message stream, may share
# its callback with others made inside the same call to C code, the one
# case where the count can come out short). Their levels are known when
# each was a full gc() (level 2); otherwise the totals at the start are NA.
# With no report at all (no collection) everything at the start is NA.
# A trace opened with `exact = TRUE` starts at the report of its marker
# (v$start) instead.
gctrace_start_row <- function(recs, cbs, v) {
  start <- if (is.null(v$start)) gctrace_worked_start(recs, cbs, v) else v$start
  start$mono <- v$mono
  for (nm in names(recs)) recs[[nm]] <- c(start[[nm]], recs[[nm]])
  recs
}

gctrace_worked_start <- function(recs, cbs, v) {
  K <- length(recs$gc)
  before <- which(cbs$nrec <= v$rec0)
  g0 <- length(before)
  gc0 <- NA_integer_
  lv0 <- c(NA_integer_, NA_integer_, NA_integer_)
  if (K > 0L) {
    gc0 <- recs$gc[[1L]] - 1L - g0
    lv1 <- c(recs$level0[[1L]], recs$level1[[1L]], recs$level2[[1L]])
    lv1[[recs$level[[1L]] + 1L]] <- lv1[[recs$level[[1L]] + 1L]] - 1L
    lv <- vapply(cbs$stack[before], explicit_level, integer(1))
    if (!anyNA(lv)) lv0 <- lv1 - tabulate(lv + 1L, nbins = 3L)
  }
  list(gc = gc0, level0 = lv0[[1L]], level1 = lv0[[2L]], level2 = lv0[[3L]],
       level = NA_integer_, ncells_mb = NA_real_, ncells_pct = NA_integer_,
       vcells_mb = NA_real_, vcells_pct = NA_integer_)
}

# The level of the collection a callback stands for, where it is certain: a
# gc() call that is a full collection (its default). NA otherwise.
explicit_level <- function(stack) {
  if (!is_gc_stack(stack)) return(NA_integer_)
  call <- stack[[length(stack)]]
  full <- tryCatch(match.call(base::gc, call)$full, error = function(e) NA)
  if (is.null(full) || isTRUE(full)) 2L else NA_integer_
}

# ---- joining the streams --------------------------------------------------

# `recs`: the trace's start (first, gctrace_start_row()), then its reports
# to the end: the last collection of the trace, or the end marker if there
# is one (last, not an event). `cbs`: the callbacks in between; cbs$nrec
# counts reports from the start of the whole tracer, so subtract v$rec0 - 1
# to index `recs`.
gctrace_events <- function(recs, cbs, v, end) {
  K <- length(recs$gc)
  last <- if (end$marked) K - 1L else K   # the last report that is an event
  if (K < 2L) return(empty_events())
  N <- recs$gc
  L <- cbind(recs$level0, recs$level1, recs$level2)
  lev <- recs$level

  seen_idx <- if (last >= 2L) 2:last else integer()
  gap <- N[-1L] - N[-K] - 1L              # gap[i]: collections between reports i and i + 1
  gap[gap < 0L] <- 0L
  # Without an end marker nothing follows the last report (gctrace_tail_known()).
  if (!end$marked) gap <- c(gap, 0L)
  rec_group <- rep(NA_integer_, K)

  ncb <- length(cbs$nrec)
  cb_rel <- pmin(cbs$nrec - (v$rec0 - 1L), last)
  # A callback inside gc() follows an explicit collection (gc() runs the
  # finalizers at once). Nested traces' markers are explicit gc() calls too.
  cb_explicit <- vapply(cbs$stack, is_gc_stack, logical(1))
  # memkit's own markers (of nested traces) are gc(verbose = TRUE): each
  # printed its report.
  cb_mark <- cb_explicit
  cb_mark[cb_explicit] <- vapply(cbs$stack[cb_explicit], is_mark_stack, logical(1))
  # Every step below is linear in the number of collections and callbacks:
  # a trace of 1e5 collections joins in about a second. Slots claimed per gap
  # are counted, not grown, and the rows of all gaps are gathered in lists
  # and joined once.
  nclaim <- integer(last)                 # slots of each gap claimed so far
  claim_gap <- integer(ncb)               # the gap each callback claims a slot of, or 0
  seen_explicit <- rep(FALSE, K)
  prev <- 1L
  for (k in seq_len(ncb)) {
    r <- max(cb_rel[[k]], 1L)
    new <- if (r > prev) (prev + 1L):r else integer()
    new <- new[new >= 2L & new <= last]
    rec_group[new] <- k
    free_slot <- nclaim[[r]] < gap[[r]]
    claim <- FALSE
    if (cb_mark[[k]] && length(new)) {
      seen_explicit[[r]] <- TRUE
    } else if (cb_explicit[[k]]) {
      # A silent gc() left a gap; gc(verbose = TRUE) printed the last report.
      if (free_slot) claim <- TRUE
      else if (length(new)) seen_explicit[[r]] <- TRUE
    } else if (length(new) == 0L && free_slot) {
      # Nothing printed since the last callback: a collection R did not report.
      claim <- TRUE
    }
    if (claim) {
      nclaim[[r]] <- nclaim[[r]] + 1L
      claim_gap[[k]] <- r
    }
    prev <- max(prev, r)
  }
  # The callbacks claiming slots of each gap, in order.
  claims <- split(seq_len(ncb)[claim_gap > 0L], factor(claim_gap[claim_gap > 0L], levels = seq_len(last)))

  # Rows: reports 2..last, then the gap slots.
  gaps <- which(gap[seq_len(K - 1L)] > 0L)
  g_gc <- g_group <- g_level <- g_explicit <- g_mono <- vector("list", length(gaps))
  for (x in seq_along(gaps)) {
    i <- gaps[[x]]
    g <- gap[[i]]
    cl <- if (i <= last) claims[[i]] else integer()
    nextgroup <- if (i + 1L <= last) rec_group[[i + 1L]] else NA_integer_
    grp <- c(cl, rep(nextgroup, g - length(cl)))
    expl <- c(cb_explicit[cl], rep(FALSE, g - length(cl)))
    # Levels: R's per-level totals say how many of each the gap holds; the
    # explicit gc() calls take the level-2 ones first (gc() is a full
    # collection), the rest go in order.
    d <- L[i + 1L, ] - L[i, ]
    d[lev[[i + 1L]] + 1L] <- d[lev[[i + 1L]] + 1L] - 1L
    lv <- rep(NA_integer_, g)
    # Unknown (NA) where the totals at the start are (gctrace_start_row()).
    if (isTRUE(all(d >= 0L) && sum(d) == g)) {
      k2 <- min(sum(expl), d[[3L]])
      lv[which(expl)[seq_len(k2)]] <- 2L
      d[[3L]] <- d[[3L]] - k2
      lv[is.na(lv)] <- rep(0:2, d)
    }
    mono <- ifelse(is.na(grp), recs$mono[[i + 1L]], cbs$mono[pmax(grp, 1L)])
    if (ncb == 0L) mono <- rep(recs$mono[[i + 1L]], g)
    g_gc[[x]] <- N[[i]] + seq_len(g)
    g_group[[x]] <- grp
    g_level[[x]] <- lv
    g_explicit[[x]] <- expl
    g_mono[[x]] <- mono
  }
  ng <- sum(gap[gaps])
  rows_gc <- c(N[seen_idx], unlist(g_gc, use.names = FALSE))
  rows_rec <- c(seen_idx, rep(NA_integer_, ng))
  rows_group <- c(rec_group[seen_idx], as.integer(unlist(g_group, use.names = FALSE)))
  rows_level <- c(lev[seen_idx], as.integer(unlist(g_level, use.names = FALSE)))
  rows_explicit <- c(seen_explicit[seen_idx], as.logical(unlist(g_explicit, use.names = FALSE)))
  rows_mono <- c(recs$mono[seen_idx], as.double(unlist(g_mono, use.names = FALSE)))
  rows_seen <- rep(c(TRUE, FALSE), c(length(seen_idx), ng))
  o <- order(rows_gc)
  rows_gc <- rows_gc[o]; rows_rec <- rows_rec[o]; rows_group <- rows_group[o]
  rows_level <- rows_level[o]; rows_explicit <- rows_explicit[o]
  rows_mono <- rows_mono[o]; rows_seen <- rows_seen[o]
  n <- length(rows_gc)

  # Stack samples: group sizes and durations.
  size <- tabulate(rows_group[!is.na(rows_group)], nbins = ncb)
  collapsed <- ifelse(is.na(rows_group), 1L, size[pmax(rows_group, 1L)])
  gct <- c(v$gctime, cbs$gctime)
  delta <- diff(gct)
  duration <- ifelse(!is.na(rows_group) & collapsed == 1L, delta[pmax(rows_group, 1L)], NA_real_)
  if (ncb == 0L) duration <- rep(NA_real_, n)

  stacks <- lapply(seq_len(n), function(j) {
    g <- rows_group[[j]]
    if (is.na(g) || ncb == 0L) return(list())
    s <- cbs$stack[[g]]
    if (is.null(s)) return(list())
    # Automatic collections sampled inside a later gc() call happened before
    # it: the gc() frame is not theirs.
    if (cb_explicit[[g]] && !rows_explicit[[j]]) s <- s[-length(s)]
    if (v$depth > 0L) s <- s[-seq_len(min(v$depth, length(s)))]
    s
  })
  call <- call_texts(lapply(stacks, function(s) if (length(s)) s[[length(s)]]))

  # Heap after each reported collection.
  nused <- recs$ncells_mb[rows_rec] * mega
  vused <- recs$vcells_mb[rows_rec] * mega
  trig <- gctrace_triggers(recs, rows_rec, v, end)

  # Built as a list: data.frame() and `$<-` cost more than the join itself.
  out <- list(
    gc = rows_gc,
    time = rows_mono - v$mono,
    mono = rows_mono,
    level = rows_level,
    ncells_used = new_mem_bytes(nused),
    vcells_used = new_mem_bytes(vused),
    ncells_trigger = new_mem_bytes(trig$ncells),
    vcells_trigger = new_mem_bytes(trig$vcells),
    trigger_estimated = trig$estimated,
    duration = duration,
    collapsed = as.integer(collapsed),
    explicit = rows_explicit,
    seen = rows_seen,
    call = call,
    stack = stacks
  )
  attr(out, "row.names") <- .set_row_names(n)
  new_gc_events(out)
}

new_gc_events <- function(df) {
  class(df) <- c("gc_events", "data.frame")
  df
}

# The innermost calls as text. Most collections of a trace happen in a few
# calls, and deparse() costs ten times an identical(): the last few distinct
# calls and their text are kept at hand.
call_texts <- function(calls) {
  out <- rep(NA_character_, length(calls))
  seen <- vector("list", 8L)
  seen_text <- character(8L)
  nseen <- 0L
  for (j in seq_along(calls)) {
    x <- calls[[j]]
    if (is.null(x)) next
    hit <- 0L
    for (k in seq_len(nseen)) {
      if (identical(seen[[k]], x)) { hit <- k; break }
    }
    if (hit == 0L) {
      # Newest first; the oldest falls out.
      hit <- 1L
      seen[2:8] <- seen[1:7]
      seen_text[2:8] <- seen_text[1:7]
      seen[1L] <- list(x)
      seen_text[[1L]] <- deparse_call(x)
      nseen <- min(nseen + 1L, 8L)
    }
    out[[j]] <- seen_text[[hit]]
  }
  out
}

deparse_call <- function(x) {
  # `backtick` given: its default costs as much as the deparsing.
  s <- deparse(x, width.cutoff = 60L, backtick = TRUE, nlines = 1L)
  if (length(s) == 0L) NA_character_ else s
}

# Triggers. R prints the heap in use rounded up to 0.1 MB and its share of
# the trigger rounded to a percent, so trigger ~ used / share. R moves the
# triggers only after level-2 collections (AdjustHeapSize()), so every
# report with as many level-2 collections behind it as the last time memkit
# read the triggers exactly (the end marker of an earlier trace, or of this
# one: v$known, end$trigger) shares those exact triggers. An exact value is
# used only where it agrees with the printed percentage.
trigger_agrees <- function(mb, pct, trig) {
  !is.na(trig) & !is.na(pct) &
    abs(100 * mb * mega / trig - pct) <= 1 + 100 * 0.1 * mega / trig
}

# The exact triggers after the collections whose level-2 totals are `l2`,
# where known (NA elsewhere): a matrix of two columns.
exact_triggers <- function(l2, v, end, recs) {
  out <- matrix(NA_real_, length(l2), 2L)
  known <- list(v$known)
  if (end$marked && !is.null(end$trigger)) {
    K <- length(recs$gc)
    known <- c(known, list(list(level2 = recs$level2[[K]], trigger = end$trigger)))
  }
  for (kn in known) {
    if (is.null(kn)) next
    sel <- !is.na(l2) & l2 == kn$level2
    out[sel, 1L] <- kn$trigger[["ncells"]]
    out[sel, 2L] <- kn$trigger[["vcells"]]
  }
  out
}

gctrace_triggers <- function(recs, rows_rec, v, end) {
  n <- length(rows_rec)
  est_n <- recs$ncells_mb * mega * 100 / recs$ncells_pct
  est_v <- recs$vcells_mb * mega * 100 / recs$vcells_pct
  est_n[!is.finite(est_n)] <- NA
  est_v[!is.finite(est_v)] <- NA
  exact <- exact_triggers(recs$level2, v, end, recs)
  ok <- trigger_agrees(recs$ncells_mb, recs$ncells_pct, exact[, 1L]) &
    trigger_agrees(recs$vcells_mb, recs$vcells_pct, exact[, 2L])
  tn <- ifelse(ok, exact[, 1L], est_n)
  tv <- ifelse(ok, exact[, 2L], est_v)
  list(
    ncells = if (n) tn[rows_rec] else double(),
    vcells = if (n) tv[rows_rec] else double(),
    estimated = if (n) ifelse(is.na(rows_rec), NA, !ok[rows_rec]) else logical()
  )
}

empty_events <- function() {
  # Built once per session, as a list like the events themselves
  # (data.frame() and `$<-` would cost more than the rest of an empty trace).
  if (!is.null(the_gc$empty_events)) return(the_gc$empty_events)
  out <- list(
    gc = integer(), time = double(), mono = double(), level = integer(),
    ncells_used = new_mem_bytes(), vcells_used = new_mem_bytes(),
    ncells_trigger = new_mem_bytes(), vcells_trigger = new_mem_bytes(),
    trigger_estimated = logical(), duration = double(), collapsed = integer(),
    explicit = logical(), seen = logical(), call = character(), stack = list()
  )
  attr(out, "row.names") <- integer()
  the_gc$empty_events <- new_gc_events(out)
  the_gc$empty_events
}

# R's collection count and per-level totals at both ends: at the start as
# gctrace_start_row() works them out; at the end, the last report, less the
# end marker itself if there is one. The exact triggers at both ends where
# known (exact_triggers()), NA otherwise.
# `recs` NULL: a trace with no collection (all NA).
new_gc_trace <- function(events, value, v, end, recs) {
  gc_start <- gc_end <- NA_integer_
  levels_start <- levels_end <- c(NA_integer_, NA_integer_, NA_integer_)
  trig <- matrix(NA_real_, 2L, 2L)
  if (!is.null(recs)) {
    K <- length(recs$gc)
    gc_start <- recs$gc[[1L]]
    gc_end <- recs$gc[[K]]
    levels_start <- c(recs$level0[[1L]], recs$level1[[1L]], recs$level2[[1L]])
    levels_end <- c(recs$level0[[K]], recs$level1[[K]], recs$level2[[K]])
    if (end$marked) {
      gc_end <- gc_end - 1L
      levels_end[[recs$level[[K]] + 1L]] <- levels_end[[recs$level[[K]] + 1L]] - 1L
    }
    trig <- exact_triggers(c(levels_start[[3L]], levels_end[[3L]]), v, end, recs)
  }
  out <- list(
    events = events,
    value = value,
    elapsed = end$mono_before - v$mono,
    gc_time = end$gctime_before - v$gctime,
    gc_start = gc_start,
    gc_end = gc_end,
    levels_start = levels_start,
    levels_end = levels_end,
    trigger_start = new_mem_bytes(c(ncells = trig[1L, 1L], vcells = trig[1L, 2L])),
    trigger_end = new_mem_bytes(c(ncells = trig[2L, 1L], vcells = trig[2L, 2L])),
    mono_start = v$mono
  )
  class(out) <- "gc_trace"
  out
}
