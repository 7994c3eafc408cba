/*
 * gctrace_spool_win.c: the spool file of R's GC reports on Windows (the
 * interface and why: gctrace_spool.h).
 */
#if defined(_WIN32)

#ifndef WIN32_LEAN_AND_MEAN
# define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gctrace_spool.h"

struct gc_spool {
  HANDLE file;      /* read-only, sharing read, write and delete with R */
  HANDLE stop;      /* manual-reset event: the reader thread ends */
  uint64_t offset;  /* bytes read so far */
  wchar_t *path;
};

static int errno_of(DWORD e) {
  switch (e) {
  case ERROR_FILE_NOT_FOUND: case ERROR_PATH_NOT_FOUND: return ENOENT;
  case ERROR_ACCESS_DENIED: return EACCES;
  case ERROR_SHARING_VIOLATION: case ERROR_LOCK_VIOLATION: return EBUSY;
  case ERROR_DISK_FULL: return ENOSPC;
  case ERROR_NOT_ENOUGH_MEMORY: case ERROR_OUTOFMEMORY: return ENOMEM;
  case ERROR_TOO_MANY_OPEN_FILES: return EMFILE;
  default: return EIO;
  }
}

/* The path in UTF-16, from R's native encoding (the ANSI code page: UTF-8
 * in R >= 4.2 on Windows 10 and later). */
static wchar_t *wide_path(const char *path) {
  int n = MultiByteToWideChar(CP_ACP, 0, path, -1, NULL, 0);
  if (n <= 0) return NULL;
  wchar_t *w = (wchar_t *) malloc((size_t) n * sizeof(wchar_t));
  if (w != NULL && MultiByteToWideChar(CP_ACP, 0, path, -1, w, n) != n) {
    free(w);
    w = NULL;
  }
  return w;
}

gc_spool *gc_spool_open(const char *path) {
  gc_spool *s = (gc_spool *) calloc(1, sizeof *s);
  if (s == NULL) { errno = ENOMEM; return NULL; }
  s->path = wide_path(path);
  if (s->path == NULL) {
    free(s);
    errno = EINVAL;
    return NULL;
  }
  /* Created here, empty; R opens it for appending (fopen "ab": write access,
   * sharing read and write), which this handle's sharing allows. */
  s->file = CreateFileW(s->path, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                        NULL, CREATE_ALWAYS, FILE_ATTRIBUTE_TEMPORARY, NULL);
  if (s->file == INVALID_HANDLE_VALUE) {
    int e = errno_of(GetLastError());
    free(s->path);
    free(s);
    errno = e;
    return NULL;
  }
  s->stop = CreateEventW(NULL, TRUE, FALSE, NULL);
  if (s->stop == NULL) {
    int e = errno_of(GetLastError());
    CloseHandle(s->file);
    DeleteFileW(s->path);
    free(s->path);
    free(s);
    errno = e;
    return NULL;
  }
  return s;
}

long gc_spool_read(gc_spool *s, char *buf, size_t n) {
  if (n > (1u << 30)) n = 1u << 30;
  OVERLAPPED ov;
  memset(&ov, 0, sizeof ov);
  ov.Offset = (DWORD) (s->offset & 0xFFFFFFFFu);
  ov.OffsetHigh = (DWORD) (s->offset >> 32);
  DWORD got = 0;
  if (!ReadFile(s->file, buf, (DWORD) n, &got, &ov)) {
    DWORD e = GetLastError();
    if (e == ERROR_HANDLE_EOF) return 0;
    errno = errno_of(e);
    return -1;
  }
  s->offset += got;
  return (long) got;
}

int gc_spool_wait(gc_spool *s, unsigned ms) {
  return WaitForSingleObject(s->stop, ms) == WAIT_OBJECT_0;
}

void gc_spool_stop(gc_spool *s) {
  SetEvent(s->stop);
}

void gc_spool_close(gc_spool *s) {
  if (s == NULL) return;
  CloseHandle(s->file);
  CloseHandle(s->stop);
  DeleteFileW(s->path);
  free(s->path);
  free(s);
}

#else
/* ISO C wants something in every file. */
typedef int gctrace_spool_elsewhere;
#endif /* _WIN32 */
