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
#'   \item{`memkit.block_bytes`}{Default `64 * 2^20` (64 MiB) for writing
#'     ([as_fm()], [fm_append()], and [fm_create()] filling a new file) and
#'     `16 * 2^20` (16 MiB) for [fm_apply()], whose blocks' results are
#'     held too. Bytes read, written or copied per block (the functions'
#'     `block_bytes` argument); the progress bars advance per block.}
#'   \item{`memkit.copy_warn`}{Default `64 * 2^20` (64 MiB). A copy of a
#'     read-write file-backed matrix that R makes in memory (see
#'     [fm_create()], "Modes and copies") warns, with class
#'     `memkit_warning_memory`, when it is larger than this many bytes. `Inf`
#'     turns the warning off.}
#'   \item{`memkit.sysroot`}{Default `""` (the system's own files). A
#'     directory that stands for `/` when [mem_limits()], [mem_available()]
#'     and [mem_fits()] read `/proc` and `/sys/fs/cgroup`: for tests with
#'     fabricated cgroup trees.}
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
