/*
 * fm_map_posix.c: files and mappings of file-backed matrices on Linux, macOS
 * and other Unix-alikes (the interface: fm_map.h).
 */
#if !defined(_WIN32)

#if defined(__linux__)
# define _GNU_SOURCE
#endif
#if defined(__APPLE__)
/* Not _POSIX_C_SOURCE: on macOS it hides what F_PREALLOCATE and mincore()
 * need (fstore_t, the BSD types). */
# define _DARWIN_C_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "fm_map.h"

/* ---- files ------------------------------------------------------------------ */

/* O_NONBLOCK makes open() of a FIFO return at once (it would wait for a
 * writer), and fstat() then refuses anything but a regular file. The flag is
 * cleared again (it means nothing for regular files, but says what the
 * descriptor is for). */
int fm_file_open(const char *path, int writable, int64_t *size, const char **kind) {
  *kind = NULL;
  int fd;
  do {
    fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return -1;
  struct stat st;
  int e = 0;
  if (fstat(fd, &st) != 0) {
    e = errno;
  } else if (S_ISDIR(st.st_mode)) {
    e = EISDIR;
  } else if (!S_ISREG(st.st_mode)) {
    e = EINVAL;
    *kind = S_ISFIFO(st.st_mode) ? "FIFO (named pipe)" : S_ISSOCK(st.st_mode) ? "socket" :
      S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "device" : "special file";
  } else {
    int fl = fcntl(fd, F_GETFL);
    if (fl == -1 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == -1) e = errno;
  }
  if (e != 0) {
    close(fd);
    errno = e;
    return -1;
  }
  *size = (int64_t) st.st_size;
  return fd;
}

int fm_file_create(const char *path) {
  int fd;
  do {
    fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

int fm_file_size(int fd, int64_t *size) {
  struct stat st;
  if (fd < 0) { errno = EBADF; return -1; }
  if (fstat(fd, &st) != 0) return -1;
  *size = (int64_t) st.st_size;
  return 0;
}

int fm_path_size(const char *path, int64_t *size) {
  struct stat st;
  if (stat(path, &st) != 0) return -1;
  *size = (int64_t) st.st_size;
  return 0;
}

int64_t fm_file_pread(int fd, void *buf, size_t n, int64_t at) {
  ssize_t k;
  do { k = pread(fd, buf, n, (off_t) at); } while (k < 0 && errno == EINTR);
  return (int64_t) k;
}

int64_t fm_file_pwrite(int fd, const void *buf, size_t n, int64_t at) {
  ssize_t k;
  do { k = pwrite(fd, buf, n, (off_t) at); } while (k < 0 && errno == EINTR);
  return (int64_t) k;
}

int fm_file_set_size(int fd, int64_t size) {
  return ftruncate(fd, (off_t) size) == 0 ? 0 : errno;
}

int fm_file_reserve(int fd, int64_t size) {
#if defined(__APPLE__)
  /* F_PREALLOCATE reserves fst_length bytes past the file's physical end
   * (F_PEOFPOSMODE): from the current size, so growing reserves only the
   * new part. Contiguous if possible, else anywhere. */
  struct stat sb;
  if (fstat(fd, &sb) != 0) return errno;
  if ((int64_t) sb.st_size >= size) return 0;
  fstore_t st = {F_ALLOCATEALL | F_ALLOCATECONTIG, F_PEOFPOSMODE, 0,
                 (off_t) (size - (int64_t) sb.st_size), 0};
  if (fcntl(fd, F_PREALLOCATE, &st) == -1) {
    st.fst_flags = F_ALLOCATEALL;
    if (fcntl(fd, F_PREALLOCATE, &st) == -1) return errno;
  }
  if (ftruncate(fd, (off_t) size) != 0) return errno;
  return 0;
#else
  int rc;
  do { rc = posix_fallocate(fd, 0, (off_t) size); } while (rc == EINTR);
  return rc;
#endif
}

int fm_file_dup(int fd) {
  return fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

void fm_file_close(int fd) {
  if (fd >= 0) close(fd);
}

int fm_file_remove(const char *path) {
  return unlink(path);
}

static int read_all(int fd, void *buf, size_t n) {
  char *p = (char *) buf;
  while (n > 0) {
    ssize_t k = read(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    p += k;
    n -= (size_t) k;
  }
  return 0;
}

void fm_random_id(unsigned char id[16]) {
  int ok = 0;
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ok = read_all(fd, id, 16) == 0;
    close(fd);
  }
  if (!ok) {
    struct timespec ts = {0, 0};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long pid = (long) getpid();
    memset(id, 0, 16);
    memcpy(id, &ts.tv_sec, sizeof ts.tv_sec < 6 ? sizeof ts.tv_sec : 6);
    memcpy(id + 6, &ts.tv_nsec, sizeof ts.tv_nsec < 4 ? sizeof ts.tv_nsec : 4);
    memcpy(id + 10, &pid, sizeof pid < 6 ? sizeof pid : 6);
  }
}

/* ---- views ------------------------------------------------------------------ */

void *fm_view_map(int fd, size_t len, int mode) {
  int prot = PROT_READ | PROT_WRITE;
  int flags = mode == FM_WRITE ? MAP_SHARED : MAP_PRIVATE;
#ifdef MAP_NORESERVE
  /* Private pages are only charged when written (copy-on-write). */
  if (mode != FM_WRITE) flags |= MAP_NORESERVE;
#endif
  void *p = mmap(NULL, len, prot, flags, fd, 0);
  return p == MAP_FAILED ? NULL : p;
}

/* munmap fails only for an invalid range. */
void fm_view_unmap(void *base, size_t len) {
  if (base != NULL) munmap(base, len);
}

/* A new view first, then the old one goes: a failure leaves the old view. (A
 * private view's copied pages are not carried over: growing applies to views
 * of the file, mode "rw".) */
void *fm_view_remap(int fd, void *base, size_t old_len, size_t new_len, int mode) {
  void *p = fm_view_map(fd, new_len, mode);
  if (p == NULL) return NULL;
  fm_view_unmap(base, old_len);
  return p;
}

/* msync(MS_SYNC), then fsync: every write is on disk when this returns. */
int fm_view_flush(int fd, void *base, size_t len) {
  if (base != NULL && msync(base, len, MS_SYNC) != 0) return -1;
  if (fd >= 0 && fsync(fd) != 0) return -1;
  return 0;
}

double fm_view_resident(const void *base, size_t len) {
  if (base == NULL || len == 0) return 0;
  long page = sysconf(_SC_PAGESIZE);
  if (page <= 0) return -1;
  size_t pages = (len + (size_t) page - 1) / (size_t) page;
  unsigned char *vec = (unsigned char *) malloc(pages);
  if (vec == NULL) return -1;
#if defined(__APPLE__)
  int rc = mincore((void *) base, len, (char *) vec);
#else
  int rc = mincore((void *) base, len, vec);
#endif
  double out = -1;
  if (rc == 0) {
    size_t n = 0;
    for (size_t k = 0; k < pages; k++) n += vec[k] & 1;
    out = (double) n * (double) page;
    if (out > (double) len) out = (double) len;
  }
  free(vec);
  return out;
}

/* ---- the SIGBUS guard (see fm_map.h and fm.h) ---------------------------------- */

FM_THREAD_LOCAL sigjmp_buf *volatile fm_bus_jmp = NULL;
FM_THREAD_LOCAL volatile int fm_elt_state = 0;
static struct sigaction bus_old;
static int bus_installed = 0;
static uintptr_t bus_page = 0;

static void bus_handler(int sig, siginfo_t *info, void *ctx) {
  sigjmp_buf *j = fm_bus_jmp;
  if (j != NULL) {
    fm_bus_jmp = NULL;
    /* SA_NODEFER left SIGBUS unblocked, so the mask needs no restoring. */
    siglongjmp(*j, 1);
  }
  if (fm_elt_state == 1 && info != NULL && bus_page != 0) {
    /* One element read (FM_ELT_BEGIN): zeros over the faulting page of the
     * mapping (a private, read-only page in its place), so that the read
     * completes when this returns; the reader sees the mark and raises the
     * error. */
    uintptr_t a = (uintptr_t) info->si_addr & ~(bus_page - 1);
    if (mmap((void *) a, (size_t) bus_page, PROT_READ, MAP_PRIVATE | MAP_ANON | MAP_FIXED, -1, 0) !=
        MAP_FAILED) {
      fm_elt_state = 2;
      return;
    }
  }
  /* Not memkit's read: whoever handled SIGBUS before (R prints its report). */
  if (bus_old.sa_flags & SA_SIGINFO) {
    if (bus_old.sa_sigaction != NULL) bus_old.sa_sigaction(sig, info, ctx);
    return;
  }
  if (bus_old.sa_handler != SIG_DFL && bus_old.sa_handler != SIG_IGN) {
    bus_old.sa_handler(sig);
    return;
  }
  /* Default action: restore it and return; the faulting access runs again and
   * the system ends the process as it would have without memkit. */
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(SIGBUS, &dfl, NULL);
}

/* Installed with the first mapping, not at load: a session that never maps a
 * file keeps R's handler alone. */
int fm_guard_install(void) {
  if (bus_installed) return 0;
  long page = sysconf(_SC_PAGESIZE);
  /* A power of two, or no element guard (the default SIGBUS action then). */
  if (page > 0 && (page & (page - 1)) == 0) bus_page = (uintptr_t) page;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = bus_handler;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGBUS, &sa, &bus_old) != 0) return -1;
  bus_installed = 1;
  return 0;
}

#else
/* ISO C wants something in every file. */
typedef int fm_map_posix_elsewhere;
#endif /* !_WIN32 */
