/*
 * fm.c: files, header and mapping of file-backed matrices.
 *
 * The file: a header of HEADER_FIXED bytes, the dimnames (R's XDR
 * serialization, written by R/fm.R), zero padding up to the data offset (a
 * multiple of 4096), then the elements in column-major order, in the machine's
 * byte order. Header fields, all native-endian:
 *
 *    0  magic "MEMKITFM"          40  data offset (uint64)
 *    8  format version (uint32)   48  bytes of dimnames (uint64)
 *   12  byte-order probe          56  file id (16 random bytes)
 *   16  type code (uint32)        72  checksum: FNV-1a 64 of bytes 0-71 and
 *   20  element size (uint32)         the dimnames
 *   24  nrow (uint64)             80  reserved, zero, up to HEADER_FIXED
 *   32  ncol (uint64)
 *
 * Headerless files (a bigmemory backing file, a bigstatsr .bk, a numpy array)
 * are opened with the type, dims and offset given by the user; their checksum
 * is taken over those and the file's size.
 *
 * Each mapping is owned by an external pointer (fm_new_map_xptr) created
 * before any file is opened; its C finalizer unmaps and closes, so a longjmp
 * at any point leaks nothing. Errors close the descriptor themselves first, so
 * it does not linger until the next garbage collection.
 */
#if defined(__linux__)
# define _GNU_SOURCE
#endif
#if defined(__APPLE__)
# define _DARWIN_C_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef _WIN32
# include <fcntl.h>
# include <sys/mman.h>
# include <sys/stat.h>
# include <sys/types.h>
# include <unistd.h>
#endif

#include "memkit.h"
#include "errors.h"
#include "utils.h"
#include "fm.h"

#define HEADER_FIXED 128
#define HEADER_ALIGN 4096
#define FM_VERSION 1u
#define BYTE_ORDER_PROBE 0x01020304u

size_t fm_elt_size(int type) {
  switch (type) {
  case REALSXP: return sizeof(double);
  case INTSXP: case LGLSXP: return sizeof(int);
  case RAWSXP: return 1;
  default: return 0;
  }
}

#ifndef _WIN32

static const char magic[8] = {'M', 'E', 'M', 'K', 'I', 'T', 'F', 'M'};

static int type_code(int type) {
  switch (type) {
  case REALSXP: return 1;
  case INTSXP: return 2;
  case LGLSXP: return 3;
  case RAWSXP: return 4;
  default: return 0;
  }
}

static int type_from_name(const char *s) {
  if (strcmp(s, "double") == 0) return REALSXP;
  if (strcmp(s, "integer") == 0) return INTSXP;
  if (strcmp(s, "logical") == 0) return LGLSXP;
  if (strcmp(s, "raw") == 0) return RAWSXP;
  return NILSXP;
}

static const char *type_name(int type) {
  switch (type) {
  case REALSXP: return "double";
  case INTSXP: return "integer";
  case LGLSXP: return "logical";
  case RAWSXP: return "raw";
  default: return "unknown";
  }
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
  const unsigned char *s = (const unsigned char *) p;
  for (size_t i = 0; i < n; i++) {
    h ^= s[i];
    h *= 1099511628211ULL;
  }
  return h;
}
#define FNV_SEED 14695981039346656037ULL

static void checksum_string(uint64_t h, char out[17]) {
  snprintf(out, 17, "%016llx", (unsigned long long) h);
}

/* The checksum of a headerless file: over what the user said it holds and
 * the file's size, so a file that changes size is noticed. */
static uint64_t headerless_checksum(int type, double nrow, double ncol, double offset,
                                    double size) {
  double d[5] = {(double) type_code(type), nrow, ncol, offset, size};
  return fnv1a(FNV_SEED, d, sizeof d);
}

static SEXP state_list(const char *path, int type, double nrow, double ncol, int mode,
                       double offset, int header, const char *checksum) {
  int nprot = 0;
  SEXP st = PROTECT(Rf_allocVector(VECSXP, FM_ST_LEN)); nprot++;
  SET_VECTOR_ELT(st, FM_ST_PATH, Rf_mkString(path));
  SET_VECTOR_ELT(st, FM_ST_TYPE, Rf_mkString(type_name(type)));
  SET_VECTOR_ELT(st, FM_ST_NROW, Rf_ScalarReal(nrow));
  SET_VECTOR_ELT(st, FM_ST_NCOL, Rf_ScalarReal(ncol));
  SET_VECTOR_ELT(st, FM_ST_MODE, Rf_mkString(mode == FM_WRITE ? "rw" : mode == FM_READ ? "r" : "copy"));
  SET_VECTOR_ELT(st, FM_ST_OFFSET, Rf_ScalarReal(offset));
  SET_VECTOR_ELT(st, FM_ST_HEADER, Rf_ScalarLogical(header));
  SET_VECTOR_ELT(st, FM_ST_CHECKSUM, Rf_mkString(checksum));
  SEXP names = PROTECT(Rf_allocVector(STRSXP, FM_ST_LEN)); nprot++;
  const char *nm[FM_ST_LEN] = {"path", "type", "nrow", "ncol", "mode", "offset", "header", "checksum"};
  for (int i = 0; i < FM_ST_LEN; i++) SET_STRING_ELT(names, i, Rf_mkChar(nm[i]));
  Rf_setAttrib(st, R_NamesSymbol, names);
  UNPROTECT(nprot);
  return st;
}

static void set_dim(SEXP x, double nrow, double ncol) {
  SEXP dim = PROTECT(Rf_allocVector(INTSXP, 2));
  INTEGER(dim)[0] = (int) nrow;
  INTEGER(dim)[1] = (int) ncol;
  Rf_setAttrib(x, R_DimSymbol, dim);
  UNPROTECT(1);
}

/* ---- the mapping's owner ---------------------------------------------------- */

/* Used by the finalizer and on error paths, where nothing can be signalled:
 * munmap fails only for an invalid range, and close() of a descriptor that
 * was only read from, or whose mapping was already synced by fm_flush(),
 * loses nothing. */
static void unmap(fm_map *m) {
  if (m->base != NULL) {
    munmap(m->base, m->map_len);
    m->base = NULL;
  }
  if (m->fd >= 0) {
    close(m->fd);
    m->fd = -1;
  }
}

static void map_finalizer(SEXP xp) {
  fm_map *m = (fm_map *) R_ExternalPtrAddr(xp);
  if (m == NULL) return;
  unmap(m);
  free(m);
  R_ClearExternalPtr(xp);
}

/* An external pointer that owns an empty fm_map: created (and its finalizer
 * registered) before anything is opened or mapped. */
SEXP fm_new_map_xptr(void) {
  SEXP xp = PROTECT(R_MakeExternalPtr(NULL, R_NilValue, R_NilValue));
  R_RegisterCFinalizerEx(xp, map_finalizer, TRUE);
  fm_map *m = (fm_map *) calloc(1, sizeof(fm_map));
  if (m == NULL) mk_error("size", "Can't allocate %zu bytes.", sizeof(fm_map));
  m->fd = -1;
  R_SetExternalPtrAddr(xp, m);
  UNPROTECT(1);
  return xp;
}

/* Close what is open, then signal: the descriptor must not wait for a GC. */
#define FAIL_SYS(m, errnum, path, ...) \
  do { int e_ = (errnum); unmap(m); mk_error_sys("file", e_, (path), __VA_ARGS__); } while (0)
#define FAIL(m, kind, ...) \
  do { unmap(m); mk_error((kind), __VA_ARGS__); } while (0)

static int read_full(int fd, void *buf, size_t n, off_t at) {
  char *p = (char *) buf;
  while (n > 0) {
    ssize_t k = pread(fd, p, n, at);
    if (k < 0) { if (errno == EINTR) continue; return -1; }
    if (k == 0) { errno = 0; return -1; }
    p += k; n -= (size_t) k; at += k;
  }
  return 0;
}

static int write_full(int fd, const void *buf, size_t n, off_t at) {
  const char *p = (const char *) buf;
  while (n > 0) {
    ssize_t k = pwrite(fd, p, n, at);
    if (k < 0) { if (errno == EINTR) continue; return -1; }
    p += k; n -= (size_t) k; at += k;
  }
  return 0;
}

/* Reserve the file's blocks now, so a full disk is an error here and never a
 * SIGBUS when a page is first written. Returns 0 or an errno value. */
static int preallocate(int fd, off_t size) {
#if defined(__APPLE__)
  fstore_t st = {F_ALLOCATEALL | F_ALLOCATECONTIG, F_PEOFPOSMODE, 0, size, 0};
  if (fcntl(fd, F_PREALLOCATE, &st) == -1) {
    st.fst_flags = F_ALLOCATEALL;
    if (fcntl(fd, F_PREALLOCATE, &st) == -1) return errno;
  }
  if (ftruncate(fd, size) != 0) return errno;
  return 0;
#else
  int rc;
  do { rc = posix_fallocate(fd, 0, size); } while (rc == EINTR);
  return rc;
#endif
}

static void *map_file(int fd, size_t len, int mode) {
  int prot = PROT_READ | PROT_WRITE;
  int flags = mode == FM_WRITE ? MAP_SHARED : MAP_PRIVATE;
#ifdef MAP_NORESERVE
  /* Private pages are only charged when written (copy-on-write). */
  if (mode != FM_WRITE) flags |= MAP_NORESERVE;
#endif
  return mmap(NULL, len, prot, flags, fd, 0);
}

typedef struct {
  uint32_t version, probe, type_code, elt_size;
  uint64_t nrow, ncol, offset, dn_len;
  uint64_t checksum;
} header_t;

static void header_pack(const header_t *h, const unsigned char id[16], unsigned char buf[HEADER_FIXED]) {
  memset(buf, 0, HEADER_FIXED);
  memcpy(buf, magic, 8);
  memcpy(buf + 8, &h->version, 4);
  memcpy(buf + 12, &h->probe, 4);
  memcpy(buf + 16, &h->type_code, 4);
  memcpy(buf + 20, &h->elt_size, 4);
  memcpy(buf + 24, &h->nrow, 8);
  memcpy(buf + 32, &h->ncol, 8);
  memcpy(buf + 40, &h->offset, 8);
  memcpy(buf + 48, &h->dn_len, 8);
  memcpy(buf + 56, id, 16);
  memcpy(buf + 72, &h->checksum, 8);
}

static void header_unpack(const unsigned char buf[HEADER_FIXED], header_t *h) {
  memcpy(&h->version, buf + 8, 4);
  memcpy(&h->probe, buf + 12, 4);
  memcpy(&h->type_code, buf + 16, 4);
  memcpy(&h->elt_size, buf + 20, 4);
  memcpy(&h->nrow, buf + 24, 8);
  memcpy(&h->ncol, buf + 32, 8);
  memcpy(&h->offset, buf + 40, 8);
  memcpy(&h->dn_len, buf + 48, 8);
  memcpy(&h->checksum, buf + 72, 8);
}

static int code_to_type(uint32_t code) {
  switch (code) {
  case 1: return REALSXP;
  case 2: return INTSXP;
  case 3: return LGLSXP;
  case 4: return RAWSXP;
  default: return NILSXP;
  }
}

/* Read and check the header of an open file. On success fills *h and, when
 * dn is not NULL, mallocs the dimnames bytes into *dn (the caller frees). On
 * failure closes m and signals. */
static void read_header(fm_map *m, const char *path, off_t size, header_t *h,
                        unsigned char **dn) {
  unsigned char buf[HEADER_FIXED];
  if (size < HEADER_FIXED)
    FAIL(m, "file", "'%s' is too short to be a memkit matrix file (%lld bytes; the header alone is %d).",
         path, (long long) size, HEADER_FIXED);
  if (read_full(m->fd, buf, HEADER_FIXED, 0) != 0)
    FAIL_SYS(m, errno ? errno : EIO, path, "Can't read the header of '%s'", path);
  if (memcmp(buf, magic, 8) != 0)
    FAIL(m, "file", "'%s' is not a memkit matrix file (no memkit header); "
         "open a headerless file with `type`, `nrow` and `ncol`.", path);
  header_unpack(buf, h);
  if (h->probe != BYTE_ORDER_PROBE)
    FAIL(m, "file", "'%s' was written on a machine with the other byte order.", path);
  if (h->version != FM_VERSION)
    FAIL(m, "file", "'%s' has format version %u; this memkit reads version %u.", path,
         (unsigned) h->version, (unsigned) FM_VERSION);
  int type = code_to_type(h->type_code);
  if (type == NILSXP || h->elt_size != fm_elt_size(type) || h->nrow > INT_MAX ||
      h->ncol > INT_MAX || h->dn_len > (uint64_t) size || h->offset % HEADER_ALIGN != 0 ||
      h->offset < HEADER_FIXED + h->dn_len)
    FAIL(m, "file", "The header of '%s' is corrupt.", path);
  unsigned char *d = NULL;
  if (h->dn_len > 0) {
    d = (unsigned char *) malloc((size_t) h->dn_len);
    if (d == NULL) FAIL(m, "size", "Can't allocate %llu bytes.", (unsigned long long) h->dn_len);
    if (read_full(m->fd, d, (size_t) h->dn_len, HEADER_FIXED) != 0) {
      int e = errno ? errno : EIO;
      free(d);
      FAIL_SYS(m, e, path, "Can't read the header of '%s'", path);
    }
  }
  uint64_t sum = fnv1a(FNV_SEED, buf, 72);
  if (d != NULL) sum = fnv1a(sum, d, (size_t) h->dn_len);
  if (sum != h->checksum) {
    free(d);
    FAIL(m, "file", "The header of '%s' is corrupt (checksum mismatch).", path);
  }
  double need = (double) h->offset + (double) h->nrow * (double) h->ncol * (double) h->elt_size;
  if ((double) size != need) {
    free(d);
    FAIL(m, "file", "'%s' is %lld bytes but its header says it holds %.0f: "
         "the file was truncated or changed.", path, (long long) size, need);
  }
  if (dn != NULL) *dn = d; else free(d);
}

static void open_fd(fm_map *m, const char *path, int mode, off_t *size) {
  int fd;
  do {
    fd = open(path, (mode == FM_WRITE ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) FAIL_SYS(m, errno, path, "Can't open '%s'", path);
  m->fd = fd;
  struct stat st;
  if (fstat(fd, &st) != 0) FAIL_SYS(m, errno, path, "Can't stat '%s'", path);
  if (S_ISDIR(st.st_mode)) FAIL(m, "file", "'%s' is a directory, not a file.", path);
  if (!S_ISREG(st.st_mode)) FAIL(m, "file", "'%s' is not a regular file.", path);
  *size = st.st_size;
}

/* Open and map a file; the object it returns has `dim` set. A non-NULL
 * checksum must match the file's (a serialized reference being restored). */
SEXP fm_attach(const char *path, int mode, int type, double nrow, double ncol,
               double offset, int header, const char *checksum) {
  int nprot = 0;
  SEXP xp = PROTECT(fm_new_map_xptr()); nprot++;
  fm_map *m = (fm_map *) R_ExternalPtrAddr(xp);
  off_t size;
  open_fd(m, path, mode, &size);
  char sum[17];
  if (header) {
    header_t h;
    read_header(m, path, size, &h, NULL);
    if (code_to_type(h.type_code) != type || (double) h.nrow != nrow || (double) h.ncol != ncol)
      FAIL(m, "file", "'%s' has changed: it now holds a %.0f x %.0f %s matrix, not %.0f x %.0f %s.",
           path, (double) h.nrow, (double) h.ncol, type_name(code_to_type(h.type_code)),
           nrow, ncol, type_name(type));
    offset = (double) h.offset;
    checksum_string(h.checksum, sum);
  } else {
    double need = offset + nrow * ncol * (double) fm_elt_size(type);
    if ((double) size < need)
      FAIL(m, "file", "'%s' is %lld bytes, too short for a %.0f x %.0f %s matrix at offset %.0f "
           "(%.0f bytes).", path, (long long) size, nrow, ncol, type_name(type), offset, need);
    checksum_string(headerless_checksum(type, nrow, ncol, offset, (double) size), sum);
  }
  if (checksum != NULL && strcmp(checksum, sum) != 0)
    FAIL(m, "file", "'%s' has changed since the matrix was saved: it is not the same file "
         "(its header checksum differs).", path);
  m->type = type;
  m->mode = mode;
  m->length = (R_xlen_t) (nrow * ncol);
  if (m->length > 0) {
    size_t len = (size_t) (offset + (double) m->length * (double) fm_elt_size(type));
    void *p = map_file(m->fd, len, mode);
    if (p == MAP_FAILED) FAIL_SYS(m, errno, path, "Can't map '%s' (%.0f bytes)", path, (double) len);
    m->base = p;
    m->map_len = len;
    m->data = (char *) p + (size_t) offset;
  }
  SEXP st = PROTECT(state_list(path, type, nrow, ncol, mode, offset, header, sum)); nprot++;
  SEXP x = PROTECT(fm_new_altrep(xp, st)); nprot++;
  set_dim(x, nrow, ncol);
  UNPROTECT(nprot);
  return x;
}

/* Duplicate of a read-only matrix: a second private mapping of the same open
 * file (same inode, even if the path was replaced since). */
SEXP fm_duplicate_private(SEXP x) {
  int nprot = 0;
  fm_map *src = fm_map_of(x);
  SEXP state = fm_state_of(x);
  SEXP xp = PROTECT(fm_new_map_xptr()); nprot++;
  fm_map *m = (fm_map *) R_ExternalPtrAddr(xp);
  src = fm_map_of(x);
  m->type = src->type;
  m->mode = FM_COPY;
  m->length = src->length;
  const char *path = Rf_translateChar(STRING_ELT(VECTOR_ELT(state, FM_ST_PATH), 0));
  if (src->length > 0) {
    struct stat st;
    if (src->fd < 0 || fstat(src->fd, &st) != 0)
      FAIL_SYS(m, src->fd < 0 ? EBADF : errno, path, "Can't copy the matrix in '%s'", path);
    if ((size_t) st.st_size < src->map_len)
      FAIL(m, "file", "'%s' was truncated while mapped; the matrix can't be used.", path);
    void *p = map_file(src->fd, src->map_len, FM_COPY);
    if (p == MAP_FAILED) FAIL_SYS(m, errno, path, "Can't map '%s'", path);
    m->base = p;
    m->map_len = src->map_len;
    m->data = (char *) p + (src->data - (char *) src->base);
  }
  SEXP st2 = PROTECT(Rf_shallow_duplicate(state)); nprot++;
  SET_VECTOR_ELT(st2, FM_ST_MODE, Rf_mkString("copy"));
  SEXP out = fm_new_altrep(xp, st2);
  UNPROTECT(nprot);
  return out;
}

/* ---- entry points ------------------------------------------------------------- */

static const char *path_arg(SEXP path) {
  if (TYPEOF(path) != STRSXP || XLENGTH(path) != 1 || STRING_ELT(path, 0) == NA_STRING)
    mk_error("argument", "`path` must be a single string.");
  return R_ExpandFileName(Rf_translateChar(STRING_ELT(path, 0)));
}

static double dim_arg(SEXP x, const char *what) {
  if (TYPEOF(x) != REALSXP || XLENGTH(x) != 1 || !R_FINITE(REAL(x)[0]) || REAL(x)[0] < 0 ||
      REAL(x)[0] > INT_MAX || REAL(x)[0] != (double) (long long) REAL(x)[0])
    mk_error("argument", "`%s` must be a whole number between 0 and %d.", what, INT_MAX);
  return REAL(x)[0];
}

static int type_arg(SEXP type) {
  int t = NILSXP;
  if (TYPEOF(type) == STRSXP && XLENGTH(type) == 1 && STRING_ELT(type, 0) != NA_STRING)
    t = type_from_name(CHAR(STRING_ELT(type, 0)));
  if (t == NILSXP)
    mk_error("type", "`type` must be one of \"double\", \"integer\", \"logical\" or \"raw\".");
  return t;
}

static void random_id(unsigned char id[16]) {
  int ok = 0;
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ok = read_full(fd, id, 16, 0) == 0;
    close(fd);
  }
  if (!ok) {
    double t = mk_now();
    long pid = (long) getpid();
    uint64_t a = fnv1a(FNV_SEED, &t, sizeof t), b = fnv1a(a, &pid, sizeof pid);
    memcpy(id, &a, 8);
    memcpy(id + 8, &b, 8);
  }
}

/* Create `tmp` (which must not exist), preallocate it, write the header and
 * map it. The object records `path`: R renames tmp to path once filled, so a
 * failure never leaves a half-made file at `path`. */
SEXP ffi_fm_create(SEXP path, SEXP tmp, SEXP type, SEXP nrow, SEXP ncol, SEXP dn_blob,
                   SEXP dimnames) {
  int nprot = 0;
  const char *final = path_arg(path);
  /* R_ExpandFileName returns a static buffer: copy before the next call. */
  char *final_copy = NULL;
  int t = type_arg(type);
  double nr = dim_arg(nrow, "nrow"), nc = dim_arg(ncol, "ncol");
  if (TYPEOF(dn_blob) != RAWSXP) mk_error("argument", "`dimnames` must be serialized to raw.");
  size_t dn_len = (size_t) XLENGTH(dn_blob);
  double elt = (double) fm_elt_size(t);
  double data_bytes = nr * nc * elt;
  double offset = (double) (((HEADER_FIXED + dn_len) + HEADER_ALIGN - 1) / HEADER_ALIGN * HEADER_ALIGN);
  double total = offset + data_bytes;
  if (total > 9.0e15 || (double) (size_t) total != total || (double) (off_t) total != total)
    mk_error("size", "A %.0f x %.0f %s matrix (%.0f bytes) is too large for this platform.",
             nr, nc, type_name(t), total);

  SEXP xp = PROTECT(fm_new_map_xptr()); nprot++;
  fm_map *m = (fm_map *) R_ExternalPtrAddr(xp);
  SEXP s_final = PROTECT(Rf_mkString(final)); nprot++;
  final_copy = (char *) CHAR(STRING_ELT(s_final, 0));
  const char *tpath = path_arg(tmp);

  unsigned char *hbuf = (unsigned char *) calloc(1, (size_t) offset);
  if (hbuf == NULL) mk_error("size", "Can't allocate %.0f bytes.", offset);
  header_t h = {FM_VERSION, BYTE_ORDER_PROBE, (uint32_t) type_code(t), (uint32_t) elt,
                (uint64_t) nr, (uint64_t) nc, (uint64_t) offset, (uint64_t) dn_len, 0};
  unsigned char id[16];
  random_id(id);
  header_pack(&h, id, hbuf);
  if (dn_len > 0) memcpy(hbuf + HEADER_FIXED, RAW(dn_blob), dn_len);
  h.checksum = fnv1a(fnv1a(FNV_SEED, hbuf, 72), hbuf + HEADER_FIXED, dn_len);
  memcpy(hbuf + 72, &h.checksum, 8);

  int fd;
  do {
    fd = open(tpath, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    int e = errno;
    free(hbuf);
    mk_error_sys("file", e, final_copy, "Can't create '%s'", final_copy);
  }
  m->fd = fd;
  int rc = preallocate(fd, (off_t) total);
  if (rc == 0 && write_full(fd, hbuf, (size_t) offset, 0) != 0) rc = errno;
  free(hbuf);
  if (rc != 0) {
    unmap(m);
    unlink(tpath);
    if (rc == ENOSPC || rc == EDQUOT || rc == EFBIG)
      mk_error_sys("size", rc, final_copy, "Can't create '%s' (%.0f bytes)", final_copy, total);
    mk_error_sys("file", rc, final_copy, "Can't create '%s' (%.0f bytes)", final_copy, total);
  }
  m->type = t;
  m->mode = FM_WRITE;
  m->length = (R_xlen_t) (nr * nc);
  void *p = map_file(fd, (size_t) total, FM_WRITE);
  if (p == MAP_FAILED) {
    int e = errno;
    unmap(m);
    unlink(tpath);
    mk_error_sys("file", e, final_copy, "Can't map '%s' (%.0f bytes)", final_copy, total);
  }
  m->base = p;
  m->map_len = (size_t) total;
  m->data = (char *) p + (size_t) offset;
  char sum[17];
  checksum_string(h.checksum, sum);
  SEXP st = PROTECT(state_list(final_copy, t, nr, nc, FM_WRITE, offset, 1, sum)); nprot++;
  SEXP x = PROTECT(fm_new_altrep(xp, st)); nprot++;
  set_dim(x, nr, nc);
  if (dimnames != R_NilValue) Rf_setAttrib(x, R_DimNamesSymbol, dimnames);
  UNPROTECT(nprot);
  return x;
}

/* The header of a memkit file, for fm_open(): list(type, nrow, ncol, offset,
 * dimnames = raw bytes, checksum). */
SEXP ffi_fm_header(SEXP path) {
  int nprot = 0;
  SEXP s_path = PROTECT(Rf_mkString(path_arg(path))); nprot++;
  const char *p = CHAR(STRING_ELT(s_path, 0));
  SEXP xp = PROTECT(fm_new_map_xptr()); nprot++;
  fm_map *m = (fm_map *) R_ExternalPtrAddr(xp);
  off_t size;
  open_fd(m, p, FM_READ, &size);
  header_t h;
  read_header(m, p, size, &h, NULL);
  /* The descriptor stays owned by xp while R allocates (which may longjmp),
   * so nothing leaks; the dimnames are read straight into the R vector. */
  SEXP blob = PROTECT(Rf_allocVector(RAWSXP, (R_xlen_t) h.dn_len)); nprot++;
  if (h.dn_len > 0 && read_full(m->fd, RAW(blob), (size_t) h.dn_len, HEADER_FIXED) != 0)
    FAIL_SYS(m, errno ? errno : EIO, p, "Can't read the header of '%s'", p);
  unmap(m);
  char sum[17];
  checksum_string(h.checksum, sum);
  SEXP out = PROTECT(Rf_allocVector(VECSXP, 7)); nprot++;
  SET_VECTOR_ELT(out, 0, Rf_mkString(type_name(code_to_type(h.type_code))));
  SET_VECTOR_ELT(out, 1, Rf_ScalarReal((double) h.nrow));
  SET_VECTOR_ELT(out, 2, Rf_ScalarReal((double) h.ncol));
  SET_VECTOR_ELT(out, 3, Rf_ScalarReal((double) h.offset));
  SET_VECTOR_ELT(out, 4, blob);
  SET_VECTOR_ELT(out, 5, Rf_mkString(sum));
  SET_VECTOR_ELT(out, 6, Rf_ScalarReal((double) size));
  SEXP names = PROTECT(Rf_allocVector(STRSXP, 7)); nprot++;
  const char *nm[7] = {"type", "nrow", "ncol", "offset", "dimnames", "checksum", "size"};
  for (int i = 0; i < 7; i++) SET_STRING_ELT(names, i, Rf_mkChar(nm[i]));
  Rf_setAttrib(out, R_NamesSymbol, names);
  UNPROTECT(nprot);
  return out;
}

/* Map an existing file. `checksum` (a string or NULL) is the header's, read
 * by fm_open() just before: a file replaced in between is an error. */
SEXP ffi_fm_open(SEXP path, SEXP mode, SEXP type, SEXP nrow, SEXP ncol, SEXP offset,
                 SEXP header, SEXP checksum, SEXP dimnames) {
  int nprot = 0;
  SEXP s_path = PROTECT(Rf_mkString(path_arg(path))); nprot++;
  int t = type_arg(type);
  double nr = dim_arg(nrow, "nrow"), nc = dim_arg(ncol, "ncol");
  if (TYPEOF(mode) != STRSXP || XLENGTH(mode) != 1)
    mk_error("argument", "`mode` must be \"r\" or \"rw\".");
  int md = strcmp(CHAR(STRING_ELT(mode, 0)), "rw") == 0 ? FM_WRITE : FM_READ;
  if (TYPEOF(offset) != REALSXP || XLENGTH(offset) != 1 || !R_FINITE(REAL(offset)[0]) ||
      REAL(offset)[0] < 0)
    mk_error("argument", "`offset` must be a number of bytes of at least 0.");
  if (TYPEOF(header) != LGLSXP || XLENGTH(header) != 1 || LOGICAL(header)[0] == NA_LOGICAL)
    mk_error("argument", "`header` must be TRUE or FALSE.");
  const char *sum = NULL;
  if (TYPEOF(checksum) == STRSXP && XLENGTH(checksum) == 1) sum = CHAR(STRING_ELT(checksum, 0));
  SEXP x = PROTECT(fm_attach(CHAR(STRING_ELT(s_path, 0)), md, t, nr, nc, REAL(offset)[0],
                             LOGICAL(header)[0], sum)); nprot++;
  if (dimnames != R_NilValue) Rf_setAttrib(x, R_DimNamesSymbol, dimnames);
  UNPROTECT(nprot);
  return x;
}

static fm_map *writable_map(SEXP x) {
  if (!fm_is_fm(x)) mk_error("type", "`x` must be a file-backed matrix.");
  fm_map *m = fm_map_of(x);
  if (m->mode != FM_WRITE)
    mk_error("file", "The matrix in '%s' is %s; open it with `mode = \"rw\"` to write the file.",
             Rf_translateChar(STRING_ELT(VECTOR_ELT(fm_state_of(x), FM_ST_PATH), 0)),
             m->mode == FM_READ ? "open read-only" : "a private copy, not the file");
  return m;
}

static const void *vec_ro(SEXP v) {
  switch (TYPEOF(v)) {
  case REALSXP: return REAL_RO(v);
  case INTSXP: case LGLSXP: return INTEGER_RO(v);
  case RAWSXP: return RAW(v);
  default: return NULL;
  }
}

static int count_arg(SEXP x) {
  return TYPEOF(x) == REALSXP && XLENGTH(x) == 1 && R_FINITE(REAL(x)[0]) && REAL(x)[0] >= 0;
}

/* Copy value[from, from + n) (same type as x) into x's file at element `at`
 * (all 0-based); a value of length one is repeated n times. Used to fill a
 * new file block by block without copying the source in R. */
SEXP ffi_fm_fill(SEXP x, SEXP value, SEXP at, SEXP from, SEXP n) {
  fm_map *m = writable_map(x);
  if (TYPEOF(value) != m->type) mk_error("type", "`value` must be of the matrix's type.");
  if (!count_arg(at) || !count_arg(from) || !count_arg(n))
    mk_error("argument", "`at`, `from` and `n` must be non-negative numbers.");
  R_xlen_t a = (R_xlen_t) REAL(at)[0], f = (R_xlen_t) REAL(from)[0], k = (R_xlen_t) REAL(n)[0];
  R_xlen_t nv = XLENGTH(value);
  if (a > m->length || k > m->length - a)
    mk_error("argument", "Writing %.0f elements at %.0f goes past the end of the matrix (%.0f).",
             (double) k, (double) a, (double) m->length);
  if (nv != 1 && (f > nv || k > nv - f))
    mk_error("argument", "`value` has %.0f elements; can't copy %.0f from %.0f.",
             (double) nv, (double) k, (double) f);
  if (k == 0) return R_NilValue;
  size_t elt = fm_elt_size(m->type);
  const char *src = (const char *) vec_ro(value);
  m = fm_map_of(x);
  char *dst = m->data + (size_t) a * elt;
  if (nv != 1) {
    memcpy(dst, src + (size_t) f * elt, (size_t) k * elt);
  } else if (elt == 8) {
    double v; memcpy(&v, src, 8);
    for (R_xlen_t q = 0; q < k; q++) ((double *) dst)[q] = v;
  } else if (elt == 4) {
    int v; memcpy(&v, src, 4);
    for (R_xlen_t q = 0; q < k; q++) ((int *) dst)[q] = v;
  } else {
    memset(dst, src[0], (size_t) k);
  }
  return R_NilValue;
}

/* 1-based row or column indices (validated in R: in range, no NA) or NULL for
 * all. */
static R_xlen_t index_len(SEXP ix, R_xlen_t all) {
  return ix == R_NilValue ? all : XLENGTH(ix);
}

static R_xlen_t index_at(SEXP ix, R_xlen_t k) {
  if (ix == R_NilValue) return k;
  return TYPEOF(ix) == INTSXP ? (R_xlen_t) INTEGER_RO(ix)[k] - 1 : (R_xlen_t) REAL_RO(ix)[k] - 1;
}

static void check_index(SEXP ix, R_xlen_t max, const char *what) {
  if (ix == R_NilValue) return;
  if (TYPEOF(ix) != INTSXP && TYPEOF(ix) != REALSXP) mk_error("argument", "`%s` must be numeric.", what);
  R_xlen_t n = XLENGTH(ix);
  for (R_xlen_t k = 0; k < n; k++) {
    R_xlen_t v = index_at(ix, k);
    if (v < 0 || v >= max || (TYPEOF(ix) == REALSXP && ISNAN(REAL_RO(ix)[k])))
      mk_error("argument", "`%s` has an index out of range.", what);
  }
}

static void dims_of(SEXP x, R_xlen_t *nr, R_xlen_t *nc) {
  SEXP st = fm_state_of(x);
  *nr = (R_xlen_t) REAL(VECTOR_ELT(st, FM_ST_NROW))[0];
  *nc = (R_xlen_t) REAL(VECTOR_ELT(st, FM_ST_NCOL))[0];
}

/* X[i, j] <- value in the file, whatever R's reference counts say. */
SEXP ffi_fm_write(SEXP x, SEXP value, SEXP i, SEXP j) {
  fm_map *m = writable_map(x);
  if (TYPEOF(value) != m->type) mk_error("type", "`value` must be of the matrix's type.");
  R_xlen_t nr, nc;
  dims_of(x, &nr, &nc);
  check_index(i, nr, "i");
  check_index(j, nc, "j");
  R_xlen_t ni = index_len(i, nr), nj = index_len(j, nc), nv = XLENGTH(value);
  if (ni == 0 || nj == 0) return R_NilValue;
  if (nv == 0) mk_error("argument", "`value` is empty.");
  size_t elt = fm_elt_size(m->type);
  const char *v = (const char *) vec_ro(value);
  m = fm_map_of(x);
  R_xlen_t k = 0;
  for (R_xlen_t b = 0; b < nj; b++) {
    char *col = m->data + (size_t) index_at(j, b) * (size_t) nr * elt;
    if (i == R_NilValue && k + ni <= nv) {
      memcpy(col, v + (size_t) k * elt, (size_t) ni * elt);
      k += ni;
      if (k == nv) k = 0;
      continue;
    }
    for (R_xlen_t a = 0; a < ni; a++) {
      memcpy(col + (size_t) index_at(i, a) * elt, v + (size_t) k * elt, elt);
      if (++k == nv) k = 0;
    }
  }
  return R_NilValue;
}

/* X[i, j] as an ordinary matrix, one memcpy per column when i is NULL. */
SEXP ffi_fm_read(SEXP x, SEXP i, SEXP j) {
  if (!fm_is_fm(x)) mk_error("type", "`x` must be a file-backed matrix.");
  fm_map *m = fm_map_of(x);
  R_xlen_t nr, nc;
  dims_of(x, &nr, &nc);
  check_index(i, nr, "i");
  check_index(j, nc, "j");
  R_xlen_t ni = index_len(i, nr), nj = index_len(j, nc);
  SEXP out = PROTECT(Rf_allocMatrix((SEXPTYPE) m->type, (int) ni, (int) nj));
  m = fm_map_of(x);
  size_t elt = fm_elt_size(m->type);
  char *dst = m->type == REALSXP ? (char *) REAL(out) : m->type == RAWSXP ? (char *) RAW(out)
    : (char *) INTEGER(out);
  for (R_xlen_t b = 0; b < nj; b++) {
    const char *col = m->data + (size_t) index_at(j, b) * (size_t) nr * elt;
    char *d = dst + (size_t) b * (size_t) ni * elt;
    if (i == R_NilValue) {
      memcpy(d, col, (size_t) ni * elt);
    } else if (elt == 8) {
      for (R_xlen_t a = 0; a < ni; a++) ((double *) d)[a] = ((const double *) col)[index_at(i, a)];
    } else if (elt == 4) {
      for (R_xlen_t a = 0; a < ni; a++) ((int *) d)[a] = ((const int *) col)[index_at(i, a)];
    } else {
      for (R_xlen_t a = 0; a < ni; a++) d[a] = col[index_at(i, a)];
    }
  }
  UNPROTECT(1);
  return out;
}

/* msync(MS_SYNC), then fsync: every write is on disk when this returns. */
SEXP ffi_fm_flush(SEXP x) {
  if (!fm_is_fm(x)) mk_error("type", "`x` must be a file-backed matrix.");
  fm_map *m = fm_map_of(x);
  if (m->mode != FM_WRITE || m->base == NULL) return Rf_ScalarLogical(FALSE);
  const char *path = Rf_translateChar(STRING_ELT(VECTOR_ELT(fm_state_of(x), FM_ST_PATH), 0));
  if (msync(m->base, m->map_len, MS_SYNC) != 0)
    mk_error_sys("file", errno, path, "Can't write '%s' to disk", path);
  if (m->fd >= 0 && fsync(m->fd) != 0)
    mk_error_sys("file", errno, path, "Can't write '%s' to disk", path);
  return Rf_ScalarLogical(TRUE);
}

/* What fm_info() shows: the state, the file's size now, and how many bytes of
 * the mapping are resident in memory (mincore). */
SEXP ffi_fm_info(SEXP x) {
  int nprot = 0;
  if (!fm_is_fm(x)) mk_error("type", "`x` must be a file-backed matrix.");
  fm_map *m = fm_map_of(x);
  SEXP st = fm_state_of(x);
  const char *path = Rf_translateChar(STRING_ELT(VECTOR_ELT(st, FM_ST_PATH), 0));
  double size = NA_REAL, resident = NA_REAL;
  struct stat sb;
  if ((m->fd >= 0 && fstat(m->fd, &sb) == 0) || stat(path, &sb) == 0) size = (double) sb.st_size;
  if (m->base != NULL) {
    long page = sysconf(_SC_PAGESIZE);
    size_t pages = (m->map_len + (size_t) page - 1) / (size_t) page;
    unsigned char *vec = (unsigned char *) malloc(pages);
    if (vec != NULL) {
#if defined(__APPLE__)
      int rc = mincore(m->base, m->map_len, (char *) vec);
#else
      int rc = mincore(m->base, m->map_len, vec);
#endif
      if (rc == 0) {
        size_t n = 0;
        for (size_t k = 0; k < pages; k++) n += vec[k] & 1;
        resident = (double) n * (double) page;
        if (resident > (double) m->map_len) resident = (double) m->map_len;
      }
      free(vec);
    }
  } else {
    resident = 0;
  }
  SEXP out = PROTECT(Rf_allocVector(VECSXP, 3)); nprot++;
  SET_VECTOR_ELT(out, 0, st);
  SET_VECTOR_ELT(out, 1, Rf_ScalarReal(size));
  SET_VECTOR_ELT(out, 2, Rf_ScalarReal(resident));
  SEXP names = PROTECT(Rf_allocVector(STRSXP, 3)); nprot++;
  SET_STRING_ELT(names, 0, Rf_mkChar("state"));
  SET_STRING_ELT(names, 1, Rf_mkChar("file_size"));
  SET_STRING_ELT(names, 2, Rf_mkChar("resident"));
  Rf_setAttrib(out, R_NamesSymbol, names);
  UNPROTECT(nprot);
  return out;
}

#else /* _WIN32 */

/* Windows: the package installs, and every entry point says clearly that
 * file-backed matrices are not supported there yet. */
#define UNSUPPORTED() \
  mk_error("unsupported", "File-backed matrices are not supported on Windows yet.")

SEXP fm_new_map_xptr(void) { UNSUPPORTED(); }
SEXP fm_attach(const char *path, int mode, int type, double nrow, double ncol,
               double offset, int header, const char *checksum) { UNSUPPORTED(); }
SEXP fm_duplicate_private(SEXP x) { UNSUPPORTED(); }
SEXP ffi_fm_create(SEXP path, SEXP tmp, SEXP type, SEXP nrow, SEXP ncol, SEXP dn_blob,
                   SEXP dimnames) { UNSUPPORTED(); }
SEXP ffi_fm_header(SEXP path) { UNSUPPORTED(); }
SEXP ffi_fm_open(SEXP path, SEXP mode, SEXP type, SEXP nrow, SEXP ncol, SEXP offset,
                 SEXP header, SEXP checksum, SEXP dimnames) { UNSUPPORTED(); }
SEXP ffi_fm_fill(SEXP x, SEXP value, SEXP at, SEXP from, SEXP n) { UNSUPPORTED(); }
SEXP ffi_fm_write(SEXP x, SEXP value, SEXP i, SEXP j) { UNSUPPORTED(); }
SEXP ffi_fm_read(SEXP x, SEXP i, SEXP j) { UNSUPPORTED(); }
SEXP ffi_fm_flush(SEXP x) { UNSUPPORTED(); }
SEXP ffi_fm_info(SEXP x) { UNSUPPORTED(); }

#endif /* _WIN32 */

SEXP ffi_fm_is(SEXP x) {
  return Rf_ScalarLogical(fm_is_fm(x));
}
