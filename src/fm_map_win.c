/*
 * fm_map_win.c: files and mappings of file-backed matrices on Windows (the
 * interface: fm_map.h).
 *
 * A file is opened with CreateFileW() and handed to the rest of memkit as a C
 * runtime descriptor over its HANDLE (_open_osfhandle(); _close() closes
 * both). Every file is opened with FILE_SHARE_READ | FILE_SHARE_WRITE |
 * FILE_SHARE_DELETE, as a POSIX descriptor would be: another process may open
 * it too, and R can rename the new file into place while it is mapped.
 *
 * A view is CreateFileMappingW() + MapViewOfFile() of the whole range; the
 * mapping object is closed at once (the view keeps it alive), so a view is
 * only its address. Mode "rw" maps with FILE_MAP_WRITE (writes reach the
 * file); modes "r" and copies with FILE_MAP_COPY: copy-on-write, the file
 * never changes. Windows charges a copy-on-write view's full size to the
 * commit limit when it is mapped (POSIX charges only pages written), so a
 * read-only matrix larger than RAM plus page file cannot be opened.
 *
 * What Windows does differently, and how it shows: a mapped file cannot be
 * truncated (so the SIGBUS guard of POSIX has nothing to do here), and
 * cannot be replaced or deleted while mapped (R/fm.R says so in its error).
 *
 * Paths come in R's native encoding: the ANSI code page, which is UTF-8 for R
 * >= 4.2 on Windows 10 (1903) and later. They are converted to UTF-16 with
 * that code page (CP_ACP), so names outside it work wherever R itself runs
 * in UTF-8.
 */
#if defined(_WIN32)

#ifndef WIN32_LEAN_AND_MEAN
# define WIN32_LEAN_AND_MEAN
#endif
/* QueryWorkingSetEx() and SetFileInformationByHandle() need Windows Vista
 * or later; R 4.2 needs Windows 7 or later. */
#if !defined(_WIN32_WINNT) || _WIN32_WINNT < 0x0601
# undef _WIN32_WINNT
# define _WIN32_WINNT 0x0601
#endif
#if !defined(PSAPI_VERSION)
/* PSAPI 2: the K32 functions of kernel32 (Windows 7+); -lpsapi still links
 * the older names. */
# define PSAPI_VERSION 2
#endif
#define _CRT_RAND_S
#include <windows.h>
#include <psapi.h>
#include <errno.h>
#include <fcntl.h>
#include <io.h>
#include <process.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fm_map.h"

/* ---- errors ------------------------------------------------------------------ */

/* The POSIX error nearest to a Windows one: fm.c's messages and classes
 * (memkit_error_disk for a full disk, ...) depend on it. */
static int win_errno(DWORD e) {
  switch (e) {
  case ERROR_FILE_NOT_FOUND:
  case ERROR_PATH_NOT_FOUND:
  case ERROR_INVALID_DRIVE:
  case ERROR_BAD_NETPATH:
  case ERROR_BAD_NET_NAME:
    return ENOENT;
  case ERROR_FILE_EXISTS:
  case ERROR_ALREADY_EXISTS:
    return EEXIST;
  case ERROR_ACCESS_DENIED:
  case ERROR_WRITE_PROTECT:
  case ERROR_PRIVILEGE_NOT_HELD:
    return EACCES;
  case ERROR_SHARING_VIOLATION:
  case ERROR_LOCK_VIOLATION:
  case ERROR_USER_MAPPED_FILE:
    return EBUSY;
  case ERROR_DISK_FULL:
  case ERROR_HANDLE_DISK_FULL:
    return ENOSPC;
  case ERROR_FILE_TOO_LARGE:
    return EFBIG;
  case ERROR_NOT_ENOUGH_MEMORY:
  case ERROR_OUTOFMEMORY:
  case ERROR_COMMITMENT_LIMIT:
    return ENOMEM;
  case ERROR_TOO_MANY_OPEN_FILES:
    return EMFILE;
  case ERROR_INVALID_HANDLE:
    return EBADF;
  case ERROR_FILENAME_EXCED_RANGE:
    return ENAMETOOLONG;
  case ERROR_DIRECTORY:
    return ENOTDIR;
  case ERROR_HANDLE_EOF:
    return 0;
  default:
    return EIO;
  }
}

static void set_errno_last(void) {
  int e = win_errno(GetLastError());
  errno = e != 0 ? e : EIO;
}

static HANDLE handle_of(int fd) {
  if (fd < 0) return INVALID_HANDLE_VALUE;
  return (HANDLE) _get_osfhandle(fd);
}

/* A newly malloc'd UTF-16 copy of a native path, or NULL (errno set). */
static wchar_t *wide_path(const char *path) {
  int n = MultiByteToWideChar(CP_ACP, 0, path, -1, NULL, 0);
  if (n <= 0) { errno = EINVAL; return NULL; }
  wchar_t *w = (wchar_t *) malloc((size_t) n * sizeof(wchar_t));
  if (w == NULL) { errno = ENOMEM; return NULL; }
  if (MultiByteToWideChar(CP_ACP, 0, path, -1, w, n) != n) {
    free(w);
    errno = EINVAL;
    return NULL;
  }
  return w;
}

/* The descriptor over h (which it then owns), or -1 with h closed. */
static int fd_of_handle(HANDLE h, int writable) {
  int fd = _open_osfhandle((intptr_t) h, (writable ? _O_RDWR : _O_RDONLY) | _O_BINARY);
  if (fd < 0) {
    CloseHandle(h);
    errno = EMFILE;
  }
  return fd;
}

/* ---- files ------------------------------------------------------------------ */

#define SHARE_ALL (FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE)

int fm_file_open(const char *path, int writable, int64_t *size, const char **kind) {
  *kind = NULL;
  wchar_t *w = wide_path(path);
  if (w == NULL) return -1;
  DWORD attr = GetFileAttributesW(w);
  if (attr != INVALID_FILE_ATTRIBUTES && (attr & FILE_ATTRIBUTE_DIRECTORY)) {
    free(w);
    errno = EISDIR;
    return -1;
  }
  /* A named pipe or device opens without waiting (no overlapped wait is
   * asked for) and is then refused by its type. */
  HANDLE h = CreateFileW(w, writable ? (GENERIC_READ | GENERIC_WRITE) : GENERIC_READ, SHARE_ALL,
                         NULL, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
  free(w);
  if (h == INVALID_HANDLE_VALUE) { set_errno_last(); return -1; }
  DWORD type = GetFileType(h);
  if (type != FILE_TYPE_DISK) {
    *kind = type == FILE_TYPE_PIPE ? "FIFO (named pipe)" :
      type == FILE_TYPE_CHAR ? "device" : "special file";
    CloseHandle(h);
    errno = EINVAL;
    return -1;
  }
  LARGE_INTEGER sz;
  if (!GetFileSizeEx(h, &sz)) {
    set_errno_last();
    CloseHandle(h);
    return -1;
  }
  *size = (int64_t) sz.QuadPart;
  return fd_of_handle(h, writable);
}

int fm_file_create(const char *path) {
  wchar_t *w = wide_path(path);
  if (w == NULL) return -1;
  HANDLE h = CreateFileW(w, GENERIC_READ | GENERIC_WRITE, SHARE_ALL, NULL, CREATE_NEW,
                         FILE_ATTRIBUTE_NORMAL, NULL);
  free(w);
  if (h == INVALID_HANDLE_VALUE) { set_errno_last(); return -1; }
  return fd_of_handle(h, 1);
}

int fm_file_size(int fd, int64_t *size) {
  HANDLE h = handle_of(fd);
  LARGE_INTEGER sz;
  if (h == INVALID_HANDLE_VALUE) { errno = EBADF; return -1; }
  if (!GetFileSizeEx(h, &sz)) { set_errno_last(); return -1; }
  *size = (int64_t) sz.QuadPart;
  return 0;
}

int fm_path_size(const char *path, int64_t *size) {
  wchar_t *w = wide_path(path);
  if (w == NULL) return -1;
  WIN32_FILE_ATTRIBUTE_DATA d;
  BOOL ok = GetFileAttributesExW(w, GetFileExInfoStandard, &d);
  free(w);
  if (!ok) { set_errno_last(); return -1; }
  *size = ((int64_t) d.nFileSizeHigh << 32) | (int64_t) d.nFileSizeLow;
  return 0;
}

/* ReadFile()/WriteFile() at an offset (OVERLAPPED on a synchronous handle),
 * at most 1 GiB at a time (a DWORD count). */
#define IO_MAX ((size_t) 1 << 30)

int64_t fm_file_pread(int fd, void *buf, size_t n, int64_t at) {
  HANDLE h = handle_of(fd);
  if (h == INVALID_HANDLE_VALUE) { errno = EBADF; return -1; }
  OVERLAPPED ov;
  memset(&ov, 0, sizeof ov);
  ov.Offset = (DWORD) ((uint64_t) at & 0xFFFFFFFFu);
  ov.OffsetHigh = (DWORD) ((uint64_t) at >> 32);
  DWORD got = 0;
  if (!ReadFile(h, buf, (DWORD) (n > IO_MAX ? IO_MAX : n), &got, &ov)) {
    if (GetLastError() == ERROR_HANDLE_EOF) return 0;
    set_errno_last();
    return -1;
  }
  return (int64_t) got;
}

int64_t fm_file_pwrite(int fd, const void *buf, size_t n, int64_t at) {
  HANDLE h = handle_of(fd);
  if (h == INVALID_HANDLE_VALUE) { errno = EBADF; return -1; }
  OVERLAPPED ov;
  memset(&ov, 0, sizeof ov);
  ov.Offset = (DWORD) ((uint64_t) at & 0xFFFFFFFFu);
  ov.OffsetHigh = (DWORD) ((uint64_t) at >> 32);
  DWORD put = 0;
  if (!WriteFile(h, buf, (DWORD) (n > IO_MAX ? IO_MAX : n), &put, &ov)) {
    set_errno_last();
    return -1;
  }
  return (int64_t) put;
}

/* The allocation first (it fails on a full disk: the blocks are reserved),
 * then the end of file, then a check that the file is that long. Bytes
 * between the old and the new end read as zeros (Windows keeps them behind
 * the valid data length). */
int fm_file_set_size(int fd, int64_t size) {
  HANDLE h = handle_of(fd);
  if (h == INVALID_HANDLE_VALUE) return EBADF;
  LARGE_INTEGER at;
  at.QuadPart = size;
  if (!SetFilePointerEx(h, at, NULL, FILE_BEGIN) || !SetEndOfFile(h)) {
    set_errno_last();
    return errno;
  }
  return 0;
}

int fm_file_reserve(int fd, int64_t size) {
  HANDLE h = handle_of(fd);
  if (h == INVALID_HANDLE_VALUE) return EBADF;
  LARGE_INTEGER cur;
  if (!GetFileSizeEx(h, &cur)) return win_errno(GetLastError());
  if (cur.QuadPart >= size) return 0;
  FILE_ALLOCATION_INFO alloc;
  alloc.AllocationSize.QuadPart = size;
  if (!SetFileInformationByHandle(h, FileAllocationInfo, &alloc, sizeof alloc)) {
    DWORD e = GetLastError();
    /* A file system (or wine) without allocation sizes: extending the end
     * of file below still allocates a non-sparse file's clusters on NTFS
     * and FAT, and fails there on a full disk. */
    if (e != ERROR_CALL_NOT_IMPLEMENTED && e != ERROR_NOT_SUPPORTED &&
        e != ERROR_INVALID_FUNCTION && e != ERROR_INVALID_PARAMETER)
      return win_errno(e) != 0 ? win_errno(e) : EIO;
  }
  FILE_END_OF_FILE_INFO eof;
  eof.EndOfFile.QuadPart = size;
  if (!SetFileInformationByHandle(h, FileEndOfFileInfo, &eof, sizeof eof)) {
    DWORD e = GetLastError();
    return win_errno(e) != 0 ? win_errno(e) : EIO;
  }
  LARGE_INTEGER now;
  if (!GetFileSizeEx(h, &now)) return win_errno(GetLastError());
  return now.QuadPart == size ? 0 : ENOSPC;
}

int fm_file_dup(int fd) {
  HANDLE h = handle_of(fd), d;
  if (h == INVALID_HANDLE_VALUE) { errno = EBADF; return -1; }
  if (!DuplicateHandle(GetCurrentProcess(), h, GetCurrentProcess(), &d, 0, FALSE,
                       DUPLICATE_SAME_ACCESS)) {
    set_errno_last();
    return -1;
  }
  return fd_of_handle(d, 1);
}

void fm_file_close(int fd) {
  if (fd >= 0) _close(fd);
}

int fm_file_remove(const char *path) {
  wchar_t *w = wide_path(path);
  if (w == NULL) return -1;
  BOOL ok = DeleteFileW(w);
  free(w);
  if (!ok) { set_errno_last(); return -1; }
  return 0;
}

void fm_random_id(unsigned char id[16]) {
  for (int k = 0; k < 4; k++) {
    unsigned int v = 0;
    if (rand_s(&v) != 0) {
      LARGE_INTEGER t;
      QueryPerformanceCounter(&t);
      v = (unsigned int) t.QuadPart ^ ((unsigned int) GetCurrentProcessId() << (8 * k));
    }
    memcpy(id + 4 * k, &v, 4);
  }
}

/* ---- views ------------------------------------------------------------------ */

void *fm_view_map(int fd, size_t len, int mode) {
  HANDLE h = handle_of(fd);
  if (h == INVALID_HANDLE_VALUE) { errno = EBADF; return NULL; }
  if (len == 0) { errno = EINVAL; return NULL; }
  uint64_t n = (uint64_t) len;
  HANDLE fmap = CreateFileMappingW(h, NULL, mode == FM_WRITE ? PAGE_READWRITE : PAGE_WRITECOPY,
                                   (DWORD) (n >> 32), (DWORD) (n & 0xFFFFFFFFu), NULL);
  if (fmap == NULL) { set_errno_last(); return NULL; }
  void *p = MapViewOfFile(fmap, mode == FM_WRITE ? FILE_MAP_WRITE : FILE_MAP_COPY, 0, 0, len);
  DWORD e = GetLastError();
  /* The view holds the mapping object: it lives as long as the view. */
  CloseHandle(fmap);
  if (p == NULL) {
    SetLastError(e);
    set_errno_last();
  }
  return p;
}

void fm_view_unmap(void *base, size_t len) {
  (void) len;
  if (base != NULL) UnmapViewOfFile(base);
}

void *fm_view_remap(int fd, void *base, size_t old_len, size_t new_len, int mode) {
  void *p = fm_view_map(fd, new_len, mode);
  if (p == NULL) return NULL;
  fm_view_unmap(base, old_len);
  return p;
}

int fm_view_flush(int fd, void *base, size_t len) {
  if (base != NULL && !FlushViewOfFile(base, len)) { set_errno_last(); return -1; }
  HANDLE h = handle_of(fd);
  if (h != INVALID_HANDLE_VALUE && !FlushFileBuffers(h)) { set_errno_last(); return -1; }
  return 0;
}

/* QueryWorkingSetEx() over the view's pages, a block at a time: a page is
 * resident when it is in this process's working set (Valid). Pages in the
 * system's file cache but not in the working set are not counted (mincore()
 * counts them on POSIX). */
#define WS_BLOCK 4096

double fm_view_resident(const void *base, size_t len) {
  if (base == NULL || len == 0) return 0;
  SYSTEM_INFO si;
  GetSystemInfo(&si);
  size_t page = si.dwPageSize;
  if (page == 0) return -1;
  size_t pages = (len + page - 1) / page;
  PSAPI_WORKING_SET_EX_INFORMATION *ws =
    (PSAPI_WORKING_SET_EX_INFORMATION *) malloc(WS_BLOCK * sizeof *ws);
  if (ws == NULL) return -1;
  HANDLE self = GetCurrentProcess();
  double n = 0;
  for (size_t at = 0; at < pages; at += WS_BLOCK) {
    size_t k = pages - at < WS_BLOCK ? pages - at : WS_BLOCK;
    for (size_t q = 0; q < k; q++) ws[q].VirtualAddress = (char *) base + (at + q) * page;
    if (!QueryWorkingSetEx(self, ws, (DWORD) (k * sizeof *ws))) {
      free(ws);
      return -1;
    }
    for (size_t q = 0; q < k; q++) n += ws[q].VirtualAttributes.Valid ? 1 : 0;
  }
  free(ws);
  double out = n * (double) page;
  return out > (double) len ? (double) len : out;
}

/* ---- the guard --------------------------------------------------------------- */

/* Nothing to install: a mapped file cannot shrink on Windows (fm_map.h). */
int fm_guard_install(void) {
  return 0;
}

#else
/* ISO C wants something in every file. */
typedef int fm_map_win_elsewhere;
#endif /* _WIN32 */
