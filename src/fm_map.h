/*
 * fm_map.h: the platform layer of file-backed matrices. fm.c (files, header,
 * entry points) calls only these functions for files and mappings; one file
 * implements them per platform (and includes only this header, so it also
 * builds without R for tools/windows-test.sh):
 *
 *   fm_map_posix.c  Linux, macOS and other Unix-alikes: open(), pread(),
 *                   posix_fallocate() or F_PREALLOCATE, mmap(), msync(),
 *                   mincore(), and the SIGBUS guard below.
 *   fm_map_win.c    Windows: CreateFileW(), SetFileInformationByHandle(),
 *                   CreateFileMappingW() + MapViewOfFile(), FlushViewOfFile()
 *                   + FlushFileBuffers(), QueryWorkingSetEx().
 *
 * Files are named by ints everywhere: a POSIX descriptor, or on Windows a C
 * runtime descriptor over the file's HANDLE (_open_osfhandle), so fm_map and
 * fm.c need no platform types. Paths are in R's native encoding (what
 * Rf_translateChar() gives). Every function that can fail returns -1 (or
 * NULL) with errno set to a POSIX error number (Windows errors are mapped to
 * the nearest one: ERROR_DISK_FULL to ENOSPC, a sharing violation to EBUSY,
 * ...), so fm.c builds the same classed errors on every platform. None of
 * them calls R: they are safe to use while R objects are half made, and with
 * the guard (below) set.
 *
 * Growing a file (appending columns) is fm_file_reserve() to the new size and
 * then fm_view_remap(): the old view stays valid until the new one exists,
 * so a failure leaves the matrix as it was.
 */
#ifndef MEMKIT_FM_MAP_H
#define MEMKIT_FM_MAP_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

/* Modes. FM_COPY is a private copy-on-write view made by duplicating a
 * read-only matrix: it starts equal to the file, never writes it, and is
 * serialized by value. */
enum { FM_READ = 0, FM_WRITE = 1, FM_COPY = 2 };

/* ---- files ------------------------------------------------------------------ */

/* Open an existing regular file for reading, or reading and writing, without
 * ever blocking (a FIFO is refused, not waited on). Gives its size. For
 * something that is not a regular file: -1 with errno EISDIR (a directory) or
 * EINVAL and *kind set to what it is ("FIFO (named pipe)", "socket",
 * "device", "special file"); *kind is NULL otherwise. */
int fm_file_open(const char *path, int writable, int64_t *size, const char **kind);

/* Create a new file for reading and writing; an existing one is an error
 * (EEXIST). */
int fm_file_create(const char *path);

/* The open file's size now / a path's size (0 on success). */
int fm_file_size(int fd, int64_t *size);
int fm_path_size(const char *path, int64_t *size);

/* One positioned read or write, as pread()/pwrite(): bytes moved (a read of 0
 * is the end of the file), or -1. Loop for the rest. */
int64_t fm_file_pread(int fd, void *buf, size_t n, int64_t at);
int64_t fm_file_pwrite(int fd, const void *buf, size_t n, int64_t at);

/* Make the file `size` bytes long with its blocks reserved on disk now, so a
 * full disk is an error here and never a fault when a page of the mapping is
 * first written. Used to create (from 0) and to grow; never shrinks. Returns
 * 0 or an errno value (ENOSPC, EDQUOT or EFBIG for a full disk). */
int fm_file_reserve(int fd, int64_t size);

/* Make the file exactly `size` bytes long, shorter or longer (a longer
 * file's new bytes are not reserved: follow with fm_file_reserve()).
 * Returns 0 or an errno value. */
int fm_file_set_size(int fd, int64_t size);

/* A second descriptor of the same open file (not inherited by child
 * processes), or -1. */
int fm_file_dup(int fd);

/* Close; errors are not reported (see fm.c's unmap()). */
void fm_file_close(int fd);

/* Remove a file; 0 or -1. */
int fm_file_remove(const char *path);

/* 16 random bytes (the file id of a new header). Never fails: falls back on
 * the clock and the process id. */
void fm_random_id(unsigned char id[16]);

/* ---- views ------------------------------------------------------------------ */

/* Map `len` bytes of the file from offset 0. FM_WRITE (fm.h): shared, writes
 * reach the file. FM_READ and FM_COPY: private copy-on-write, writable, and
 * writes never reach the file. NULL on failure. */
void *fm_view_map(int fd, size_t len, int mode);

/* Unmap a view fm_view_map() or fm_view_remap() gave (len as given then). */
void fm_view_unmap(void *base, size_t len);

/* The view of the same file grown (or shrunk) to new_len bytes, after
 * fm_file_reserve() made the file long enough. The returned view may be at
 * another address; `base` is unmapped only on success (NULL on failure, with
 * `base` still mapped). */
void *fm_view_remap(int fd, void *base, size_t old_len, size_t new_len, int mode);

/* Write a shared view's changed pages to the file, then the file to the
 * disk; 0 or -1. */
int fm_view_flush(int fd, void *base, size_t len);

/* Bytes of the view now in this process's memory, or -1 when the system
 * can't tell. */
double fm_view_resident(const void *base, size_t len);

/* ---- the guard against a file that shrinks under its mapping ----------------
 *
 * Reading a mapped page past the end of its file raises SIGBUS on POSIX
 * systems. memkit's own reads and writes of a mapping run between
 * FM_GUARD_BEGIN and FM_GUARD_END (see fm.h for the rules); a SIGBUS there
 * long-jumps back and becomes a classed error (fm_shrunk_error(), fm.c). On
 * Windows a mapped file cannot be truncated (SetEndOfFile() fails with
 * ERROR_USER_MAPPED_FILE), so there is nothing to guard and the macros are
 * empty.
 *
 * fm_guard_install() installs the handler (with the first mapping, not at
 * load); 0, or -1 with errno set. */
int fm_guard_install(void);

/* Element reads (ALTREP Elt, called once per element by R's own matrix
 * subsetting) take a lighter guard than sigsetjmp(), which would cost more
 * than the read: FM_ELT_BEGIN marks this thread as reading one element
 * (read through a volatile pointer, so that it stays between the marks);
 * a SIGBUS meanwhile makes the handler lay a page of zeros over the faulting
 * page of the mapping, so that the read completes, and note the fault;
 * FM_ELT_END then raises the classed error through fm_elt_fault(), which
 * first marks the mapping unusable (one of its pages is no longer the
 * file's). */
#ifdef _WIN32
# define FM_GUARD_BEGIN(x) {
# define FM_GUARD_END }
# define FM_ELT_BEGIN
# define FM_ELT_END(x)
#else
# if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#  define FM_TLS _Thread_local
# else
#  define FM_TLS __thread
# endif
/* The initial-exec model makes each access one load or store at a fixed
 * offset from the thread pointer instead of a call to __tls_get_addr(): the
 * guard runs once per element in Elt. It takes 8 bytes of the static TLS
 * space the C library keeps for libraries loaded later. */
# if defined(__GNUC__) || defined(__clang__)
#  define FM_THREAD_LOCAL FM_TLS __attribute__((tls_model("initial-exec")))
# else
#  define FM_THREAD_LOCAL FM_TLS
# endif
/* Per thread: a SIGBUS in another thread (a BLAS worker reading through a
 * data pointer) must never jump to this thread's stack. */
extern FM_THREAD_LOCAL sigjmp_buf *volatile fm_bus_jmp;
/* 0: no element read; 1: reading one; 2: the read faulted. */
extern FM_THREAD_LOCAL volatile int fm_elt_state;

#define FM_ELT_BEGIN fm_elt_state = 1;
#define FM_ELT_END(x)                                                         \
  if (fm_elt_state != 1) fm_elt_fault(x);                                     \
  fm_elt_state = 0;

#define FM_GUARD_BEGIN(x)                                                     \
  {                                                                           \
    fm_guard_check(x);                                                        \
    sigjmp_buf fm_jb_;                                                        \
    if (sigsetjmp(fm_jb_, 0) != 0) {                                          \
      fm_bus_jmp = NULL;                                                      \
      fm_shrunk_error(x);                                                     \
    }                                                                         \
    fm_bus_jmp = &fm_jb_;
#define FM_GUARD_END                                                          \
    fm_bus_jmp = NULL;                                                        \
  }
#endif /* _WIN32 */

#endif
