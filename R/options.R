#' Options that change what memkit does
#'
#' Every option memkit reads, with its default. Set them with [options()],
#' for example `options(memkit.units = "SI", memkit.progress = FALSE)`.
#'
#' \describe{
#'   \item{`memkit.units`}{Default `"IEC"`. The units [mem_bytes] print in
#'     (`format.mem_bytes()`'s `standard`): `"IEC"` for `B`, `KiB`, `MiB`,
#'     ... (powers of 1024) or `"SI"` for `B`, `kB`, `MB`, ... (powers of
#'     1000).}
#'   \item{`memkit.progress`}{Default [interactive()]. Whether long work
#'     shows a progress bar (cli): filling and writing file-backed matrices
#'     ([fm_create()], [as_fm()]), [fm_apply()] and leak checks
#'     ([mem_leaks()]). `FALSE` turns the bars off.}
#'   \item{`memkit.block_bytes`}{Default `64 * 2^20` (64 MiB). Bytes read,
#'     written or copied per block by [as_fm()] and [fm_apply()] (their
#'     `block_bytes` argument) and when [fm_create()] fills a new file; the
#'     progress bars advance per block.}
#'   \item{`memkit.copy_warn`}{Default `64 * 2^20` (64 MiB). A copy of a
#'     read-write file-backed matrix that R makes in memory (see
#'     [fm_create()], "Modes and copies") warns, with class
#'     `memkit_warning_memory`, when it is larger than this many bytes. `Inf`
#'     turns the warning off.}
#' }
#'
#' @name memkit_options
#' @examples
#' x <- mem_bytes(1e6)
#' x
#' old <- options(memkit.units = "SI")
#' x
#' options(old)
NULL
