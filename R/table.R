# Printed tables. Every table memkit prints pads and cuts its cells by their
# display width on the console (cli), not by bytes or characters: a binding
# named `öä` or `数据` keeps its row in line.

# Display width of each string (NA counts as the two letters it prints as).
text_width <- function(x) {
  x <- as.character(x)
  x[is.na(x)] <- "NA"
  if (length(x) == 0L) return(integer())
  as.integer(cli::utf8_nchar(x, type = "width"))
}

# Strings padded with spaces to `width` columns, on the left ("right") or the
# right ("left"). Wider strings are left as they are.
pad_text <- function(x, width = max(0L, text_width(x)), align = "left") {
  x <- as.character(x)
  x[is.na(x)] <- "NA"
  if (length(x) == 0L) return(character())
  as.character(cli::ansi_align(x, width = width, align = align))
}

# Strings cut to at most `width` columns; `ellipsis` marks a cut.
trim_text <- function(x, width, ellipsis = "") {
  x <- as.character(x)
  if (length(x) == 0L) return(character())
  na <- is.na(x)
  x[na] <- ""
  out <- as.character(cli::ansi_strtrim(x, width = max(0L, width), ellipsis = ellipsis))
  out[na] <- NA_character_
  out
}

# The lines of a table laid out as print.data.frame() lays it out: a header
# of column names (unless `header = FALSE`), each column as wide as its widest
# cell, columns one space apart and, with `row_names`, a first column of row
# labels (left-aligned) under an empty header. Columns that do not fit in
# `width` go to further blocks of lines, each with the row labels again.
# `cols` is a named list of character vectors of one length; `align` is
# "left" or "right", one for all columns or one per column.
table_lines <- function(cols, align = "left", header = TRUE, row_names = NULL,
                        width = getOption("width", 80L)) {
  align <- rep_len(align, length(cols))
  nms <- names(cols)
  if (is.null(nms)) nms <- rep("", length(cols))
  parts <- lapply(seq_along(cols), function(k) {
    cells <- as.character(cols[[k]])
    cells[is.na(cells)] <- "NA"
    if (header) cells <- c(nms[[k]], cells)
    pad_text(cells, align = align[[k]])
  })
  # print.data.frame() without row names still leaves their (empty) column.
  labels <- if (is.null(row_names)) character() else as.character(row_names)
  if (header) labels <- c("", labels)
  if (is.null(row_names)) labels <- rep("", length(parts[[1L]]))
  labels <- pad_text(labels, align = "left")
  # Blocks of columns that fit in `width` (at least one column each).
  used <- max(0L, text_width(labels))
  block <- integer(length(parts))
  b <- 1L
  room <- used
  for (k in seq_along(parts)) {
    w <- 1L + max(0L, text_width(parts[[k]]))
    if (room + w > width && room > used) {
      b <- b + 1L
      room <- used
    }
    block[[k]] <- b
    room <- room + w
  }
  unlist(lapply(seq_len(b), function(i) {
    do.call(paste, c(list(labels), parts[block == i], sep = " "))
  }))
}
