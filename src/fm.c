/*
 * fm.c: files, header and mapping of file-backed matrices.
 *
 * The file (format version 2): a header of HEADER_FIXED bytes, the dimnames
 * (below), zero padding up to the data offset (a multiple of 4096), then the
 * elements in column-major order, in the machine's byte order. Header fields,
 * all native-endian:
 *
 *    0  magic "MEMKITFM"          40  data offset (uint64)
 *    8  format version (uint32)   48  bytes of dimnames (uint64)
 *   12  byte-order probe          56  file id (16 random bytes)
 *   16  type code (uint32)        72  checksum: FNV-1a 64 of every other
 *   20  element size (uint32)         header byte (0-71, 80-127), then the
 *   24  nrow (uint64)                 dimnames
 *   32  ncol (uint64)             80  reserved, zero, up to HEADER_FIXED
 *
 * The dimnames are three string vectors, names(dimnames), row names and
 * column names, each a uint32 count (DN_NONE for NULL) followed by its
 * strings, each a uint32 byte count (DN_NONE for NA) and that many bytes of
 * UTF-8 without NUL. They are parsed and checked here, never unserialize()d:
 * R's unserialize() of bytes from a file would run the Unserialize method of
 * any ALTREP class named there (memkit's own included) on crafted input.
 *
 * Version 1 files (memkit before the hardening of #13) checksummed bytes 0-71
 * only and stored dimnames as R's serialization. Those without dimnames are
 * still read; those with dimnames are refused with a `format` error saying how
 * to open them as headerless files.
 *
 * Headerless files (a bigmemory backing file, a bigstatsr .bk, a numpy array)
 * are opened with the type, dims and offset given by the user. Their checksum
 * covers those, the file's size and SAMPLE_BLOCKS blocks of SAMPLE_BYTES
 * spread evenly over the data (all of it when smaller), so a saved reference
 * notices a file rewritten with other data of the same size (unless every
 * change falls between the sampled blocks).
 *
 * Nothing read from a file or a saved reference is used before it is checked
 * against the file: types, ranges, element alignment, sizes without overflow.
 * Files and mappings go through the platform layer (fm_map.h): nothing here
 * knows the platform.
 *
 * Each mapping, its descriptor and any scratch buffer are owned by an
 * external pointer (fm_new_map_xptr) created before anything is opened; its C
 * finalizer releases them, so a longjmp at any point leaks nothing. Errors
 * release them first themselves, so a descriptor does not linger until the
 * next garbage collection.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memkit.h"
#include "errors.h"
#include "utils.h"
#include "fm.h"

#define HEADER_FIXED 128
#define HEADER_ALIGN 4096
#define FM_VERSION 2u
#define BYTE_ORDER_PROBE 0x01020304u
#define DN_NONE UINT32_MAX
#define SAMPLE_BLOCKS 16
#define SAMPLE_BYTES 4096
/* The largest file or matrix memkit maps: below 2^53, so every size is exact
 * as a double (R's numbers) and fits int64_t, size_t (64-bit) and R_xlen_t. */
#define MAX_BYTES 4503599627370496.0 /* 2^52 */

size_t fm_elt_size(int type) {
  switch (type) {
  case REALSXP: return sizeof(double);
  case INTSXP: case LGLSXP: return sizeof(int);
  case RAWSXP: return 1;
  default: return 0;
  }
}

int fm_type_from_name(const char *s) {
  if (strcmp(s, "double") == 0) return REALSXP;
  if (strcmp(s, "integer") == 0) return INTSXP;
  if (strcmp(s, "logical") == 0) return LGLSXP;
  if (strcmp(s, "raw") == 0) return RAWSXP;
  return NILSXP;
}

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

static int code_to_type(uint32_t code) {
  switch (code) {
  case 1: return REALSXP;
  case 2: return INTSXP;
  case 3: return LGLSXP;
  case 4: return RAWSXP;
  default: return NILSXP;
  }
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


static void checksum_string(uint64_t h, char out[17]) {
  snprintf(out, 17, "%016llx", (unsigned long long) h);
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
 * unmapping fails only for an invalid range, and close() of a descriptor that
 * was only read from, or whose mapping was already synced by fm_flush(),
 * loses nothing. */
static void unmap(fm_map *m) {
  if (m->base != NULL) {
    fm_view_unmap(m->base, m->map_len);
    m->base = NULL;
  }
  if (m->fd >= 0) {
    fm_file_close(m->fd);
    m->fd = -1;
  }
  free(m->scratch);
  m->scratch = NULL;
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
  if (m == NULL) mk_error("memory", "Can't allocate %d bytes.", (int) sizeof(fm_map));
  m->fd = -1;
  R_SetExternalPtrAddr(xp, m);
  UNPROTECT(1);
  return xp;
}

/* Release what is open, then signal: the descriptor must not wait for a GC. */
#define FAIL_SYS(m, kind, errnum, path, ...) \
  do { int e_ = (errnum); unmap(m); mk_error_sys((kind), e_, (path), __VA_ARGS__); } while (0)
#define FAIL(m, kind, ...) \
  do { unmap(m); mk_error((kind), __VA_ARGS__); } while (0)

/* A buffer owned by m (freed by unmap() and the finalizer), so an R error
 * while it is in use leaks nothing. One at a time. */
static void *scratch_alloc(fm_map *m, size_t n) {
  free(m->scratch);
  m->scratch = malloc(n > 0 ? n : 1);
  if (m->scratch == NULL) FAIL(m, "memory", "Can't allocate %.0f bytes.", (double) n);
  return m->scratch;
}

static void scratch_free(fm_map *m) {
  free(m->scratch);
  m->scratch = NULL;
}

int fm_size_ok(const fm_map *m) {
  if (m->broken) return 0;
  if (m->base == NULL) return 1;
  int64_t size;
  if (m->fd < 0 || fm_file_size(m->fd, &size) != 0) return 0;
  return size >= 0 && (uint64_t) size >= (uint64_t) m->map_len;
}

void fm_shrunk_error(SEXP x) {
  fm_map *m = (fm_map *) R_ExternalPtrAddr(R_altrep_data1(x));
  const char *path = Rf_translateChar(STRING_ELT(VECTOR_ELT(fm_state_of(x), FM_ST_PATH), 0));
  int64_t size;
  double now = (m != NULL && m->fd >= 0 && fm_file_size(m->fd, &size) == 0) ? (double) size : NA_REAL;
  mk_error("format", "'%s' shrank to %.0f bytes while mapped (the matrix needs %.0f): another "
           "program truncated or rewrote it. Open it again with fm_open().", path, now,
           m != NULL ? (double) m->map_len : NA_REAL);
}

void fm_guard_check(SEXP x) {
  fm_map *m = (fm_map *) R_ExternalPtrAddr(R_altrep_data1(x));
  if (m != NULL && m->broken) fm_shrunk_error(x);
}

void fm_elt_fault(SEXP x) {
#ifndef _WIN32
  fm_elt_state = 0;
#endif
  fm_map *m = (fm_map *) R_ExternalPtrAddr(R_altrep_data1(x));
  if (m != NULL) m->broken = 1;
  fm_elt_forget();
  fm_shrunk_error(x);
}

/* memcpy to or from x's mapping under the guard. The arguments are read
 * through volatile copies: they live across sigsetjmp(), and setjmp's rules
 * leave registers unreliable after a jump (unused then, but the compiler
 * can't tell). */
void fm_copy_guarded(SEXP x, void *dst, const void *src, size_t n) {
  void *volatile d = dst;
  const void *volatile s = src;
  volatile size_t k = n;
  FM_GUARD_BEGIN(x)
  memcpy(d, s, k);
  FM_GUARD_END
}

/* ---- files ------------------------------------------------------------------- */

static int read_full(int fd, void *buf, size_t n, int64_t at) {
  char *p = (char *) buf;
  while (n > 0) {
    int64_t k = fm_file_pread(fd, p, n, at);
    if (k < 0) { if (errno == EINTR) continue; return -1; }
    if (k == 0) { errno = 0; return -1; }
    p += k; n -= (size_t) k; at += k;
  }
  return 0;
}

static int write_full(int fd, const void *buf, size_t n, int64_t at) {
  const char *p = (const char *) buf;
  while (n > 0) {
    int64_t k = fm_file_pwrite(fd, p, n, at);
    if (k < 0) { if (errno == EINTR) continue; return -1; }
    p += k; n -= (size_t) k; at += k;
  }
  return 0;
}

static int full_disk(int e) {
#ifdef EDQUOT
  if (e == EDQUOT) return 1;
#endif
  return e == ENOSPC || e == EFBIG;
}

/* Open a regular file (see fm_file_open(): never blocks, refuses a FIFO). */
static void open_fd(fm_map *m, const char *path, int mode, int64_t *size) {
  const char *kind;
  int fd = fm_file_open(path, mode == FM_WRITE, size, &kind);
  if (fd < 0 && kind != NULL)
    FAIL_SYS(m, "file", errno, path, "Can't open '%s': it is a %s, not a regular file", path, kind);
  if (fd < 0) FAIL_SYS(m, "file", errno, path, "Can't open '%s'", path);
  m->fd = fd;
}

/* ---- the header ----------------------------------------------------------------- */

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

/* Version 2: every header byte but the checksum itself, then the dimnames.
 * Version 1 covered bytes 0-71 only. */
static uint64_t header_sum(const unsigned char buf[HEADER_FIXED], uint32_t version,
                           const unsigned char *dn, size_t dn_len) {
  uint64_t h = mk_fnv1a(MK_FNV_SEED, buf, 72);
  if (version >= 2) h = mk_fnv1a(h, buf + 80, HEADER_FIXED - 80);
  return dn_len > 0 ? mk_fnv1a(h, dn, dn_len) : h;
}

/* Read and check the header of an open file of `size` bytes. On success fills
 * *h and leaves the dimnames bytes (checked against the checksum) in
 * m->scratch. On failure releases m and signals. */
static void read_header(fm_map *m, const char *path, int64_t size, header_t *h) {
  unsigned char buf[HEADER_FIXED];
  if (size < HEADER_FIXED)
    FAIL(m, "format", "'%s' is too short to be a memkit matrix file (%lld bytes; the header alone is %d).",
         path, (long long) size, HEADER_FIXED);
  if (read_full(m->fd, buf, HEADER_FIXED, 0) != 0)
    FAIL_SYS(m, "file", errno ? errno : EIO, path, "Can't read the header of '%s'", path);
  if (memcmp(buf, magic, 8) != 0)
    FAIL(m, "format", "'%s' is not a memkit matrix file (no memkit header); "
         "open a headerless file with `type`, `nrow` and `ncol`.", path);
  header_unpack(buf, h);
  if (h->probe != BYTE_ORDER_PROBE)
    FAIL(m, "format", "'%s' was written on a machine with the other byte order.", path);
  if (h->version != 1u && h->version != FM_VERSION)
    FAIL(m, "format", "'%s' has format version %u; this memkit reads versions 1 and %u.", path,
         (unsigned) h->version, (unsigned) FM_VERSION);
  int type = code_to_type(h->type_code);
  uint64_t usize = (uint64_t) size;
  int reserved_zero = 1;
  for (int k = 80; k < HEADER_FIXED; k++) reserved_zero &= buf[k] == 0;
  if (type == NILSXP || h->elt_size != fm_elt_size(type) || h->nrow > INT_MAX ||
      h->ncol > INT_MAX || h->dn_len > usize - HEADER_FIXED || h->offset % HEADER_ALIGN != 0 ||
      h->offset < HEADER_FIXED + h->dn_len || h->offset > usize ||
      (h->version >= 2 && !reserved_zero))
    FAIL(m, "format", "The header of '%s' is corrupt.", path);
  /* In doubles first: nrow * ncol * 8 can pass 2^64. Below MAX_BYTES the
   * integer product is exact. */
  if ((double) h->nrow * (double) h->ncol * (double) h->elt_size + (double) h->offset > MAX_BYTES)
    FAIL(m, "format", "The header of '%s' is corrupt.", path);
  uint64_t data = h->nrow * h->ncol * h->elt_size;
  unsigned char *d = (unsigned char *) scratch_alloc(m, (size_t) h->dn_len);
  if (h->dn_len > 0 && read_full(m->fd, d, (size_t) h->dn_len, HEADER_FIXED) != 0)
    FAIL_SYS(m, "file", errno ? errno : EIO, path, "Can't read the header of '%s'", path);
  if (header_sum(buf, h->version, d, (size_t) h->dn_len) != h->checksum)
    FAIL(m, "format", "The header of '%s' is corrupt (checksum mismatch).", path);
  /* Longer is fine: fm_append() extends the file before it writes the header
   * that counts the new columns, so a crash in between leaves a tail that the
   * old header does not cover (see fm_append.c). Shorter never is. */
  if (usize < h->offset + data)
    FAIL(m, "format", "'%s' is %lld bytes but its header says it holds %.0f: "
         "the file was truncated or changed.", path, (long long) size,
         (double) (h->offset + data));
  if (h->version == 1u && h->dn_len > 0)
    FAIL(m, "format", "'%s' was written by an older memkit (format 1) with dimnames stored as "
         "serialized R objects, which memkit no longer reads. Open it as a headerless file: "
         "fm_open(path, type = \"%s\", nrow = %.0f, ncol = %.0f, offset = %.0f).", path,
         type_name(type), (double) h->nrow, (double) h->ncol, (double) h->offset);
}

/* ---- dimnames: encoded and decoded here, never unserialize()d ------------------------ */

static int dn_vec_ok(SEXP v, double n) {
  return v == R_NilValue || (TYPEOF(v) == STRSXP && (double) XLENGTH(v) == n);
}

static int utf8_ok(const unsigned char *s, size_t n);

/* Bytes of one encoded vector; -1 if over MAX_BYTES, -2 if a name is not
 * valid text (the reader would refuse the file). */
static double dn_vec_bytes(SEXP v) {
  if (v == R_NilValue) return 4;
  double n = 4;
  R_xlen_t len = XLENGTH(v);
  for (R_xlen_t k = 0; k < len; k++) {
    SEXP s = STRING_ELT(v, k);
    if (s == NA_STRING) { n += 4; continue; }
    if (Rf_getCharCE(s) == CE_BYTES) return -2;
    const void *vmax = vmaxget();
    const char *c = Rf_translateCharUTF8(s);
    size_t len_c = strlen(c);
    int ok = utf8_ok((const unsigned char *) c, len_c);
    vmaxset(vmax);
    if (!ok) return -2;
    n += 4 + (double) len_c;
    if (n > MAX_BYTES) return -1;
  }
  return n;
}

static void put_u32(unsigned char **p, uint32_t v) {
  memcpy(*p, &v, 4);
  *p += 4;
}

static void dn_vec_put(unsigned char **p, SEXP v) {
  if (v == R_NilValue) { put_u32(p, DN_NONE); return; }
  R_xlen_t len = XLENGTH(v);
  put_u32(p, (uint32_t) len);
  for (R_xlen_t k = 0; k < len; k++) {
    SEXP s = STRING_ELT(v, k);
    if (s == NA_STRING) { put_u32(p, DN_NONE); continue; }
    const void *vmax = vmaxget();
    const char *c = Rf_translateCharUTF8(s);
    size_t n = strlen(c);
    put_u32(p, (uint32_t) n);
    memcpy(*p, c, n);
    *p += n;
    vmaxset(vmax);
  }
}

typedef struct {
  const unsigned char *p;
  size_t left;
} reader;

static int get_u32(reader *r, uint32_t *v) {
  if (r->left < 4) return 0;
  memcpy(v, r->p, 4);
  r->p += 4;
  r->left -= 4;
  return 1;
}

/* Well-formed UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF) without NUL: what mkCharLenCE() can take without an error. */
static int utf8_ok(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c == 0) return 0;
    if (c < 0x80) { i++; continue; }
    size_t k;
    unsigned cp, min;
    if ((c & 0xE0) == 0xC0) { k = 1; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { k = 2; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { k = 3; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (n - i <= k) return 0;
    for (size_t q = 1; q <= k; q++) {
      if ((s[i + q] & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (s[i + q] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    i += k + 1;
  }
  return 1;
}

/* One vector: NULL, or `want` strings. Returns NULL (C) when malformed. */
static SEXP dn_vec_get(reader *r, uint32_t want, int *bad) {
  uint32_t n;
  *bad = 1;
  if (!get_u32(r, &n)) return R_NilValue;
  if (n == DN_NONE) { *bad = 0; return R_NilValue; }
  /* Every string takes at least its 4-byte count: checked before allocating. */
  if (n != want || n > r->left / 4) return R_NilValue;
  SEXP v = PROTECT(Rf_allocVector(STRSXP, (R_xlen_t) n));
  for (uint32_t k = 0; k < n; k++) {
    uint32_t len;
    if (!get_u32(r, &len)) { UNPROTECT(1); return R_NilValue; }
    if (len == DN_NONE) { SET_STRING_ELT(v, k, NA_STRING); continue; }
    if (len > r->left || len > INT_MAX || !utf8_ok(r->p, len)) { UNPROTECT(1); return R_NilValue; }
    SET_STRING_ELT(v, k, Rf_mkCharLenCE((const char *) r->p, (int) len, CE_UTF8));
    r->p += len;
    r->left -= len;
  }
  *bad = 0;
  UNPROTECT(1);
  return v;
}

/* The dimnames list of an nrow x ncol matrix from its checked bytes, or a
 * `format` error. NULL when there are none. */
static SEXP dn_decode(const unsigned char *d, size_t len, uint64_t nrow, uint64_t ncol,
                      const char *path) {
  int nprot = 0, bad = 0;
  if (len == 0) return R_NilValue;
  reader r = {d, len};
  SEXP nm = PROTECT(dn_vec_get(&r, 2, &bad)); nprot++;
  SEXP rows = R_NilValue, cols = R_NilValue;
  if (!bad) { rows = PROTECT(dn_vec_get(&r, (uint32_t) nrow, &bad)); nprot++; }
  if (!bad) { cols = PROTECT(dn_vec_get(&r, (uint32_t) ncol, &bad)); nprot++; }
  if (bad || r.left != 0)
    mk_error("format", "The dimnames in the header of '%s' are corrupt.", path);
  if (nm == R_NilValue && rows == R_NilValue && cols == R_NilValue) {
    UNPROTECT(nprot);
    return R_NilValue;
  }
  SEXP dn = PROTECT(Rf_allocVector(VECSXP, 2)); nprot++;
  SET_VECTOR_ELT(dn, 0, rows);
  SET_VECTOR_ELT(dn, 1, cols);
  if (nm != R_NilValue) Rf_setAttrib(dn, R_NamesSymbol, nm);
  UNPROTECT(nprot);
  return dn;
}

/* ---- headerless files ---------------------------------------------------------- */

/* The checksum of a headerless file: what the user said it holds, its size
 * and sampled blocks of its data (see the top). Returns 0, an errno value, or
 * -1 when the file ended before the data did. */
static int headerless_sum(int fd, int type, double nrow, double ncol, double offset,
                          double size, uint64_t *out) {
  uint64_t f[5] = {(uint64_t) type_code(type), (uint64_t) nrow, (uint64_t) ncol,
                   (uint64_t) offset, (uint64_t) size};
  uint64_t h = mk_fnv1a(MK_FNV_SEED, f, sizeof f);
  uint64_t data = (uint64_t) (nrow * ncol) * fm_elt_size(type);
  unsigned char buf[SAMPLE_BYTES];
  if (data <= (uint64_t) SAMPLE_BLOCKS * SAMPLE_BYTES) {
    for (uint64_t at = 0; at < data; at += SAMPLE_BYTES) {
      size_t n = (size_t) (data - at < SAMPLE_BYTES ? data - at : SAMPLE_BYTES);
      if (read_full(fd, buf, n, (int64_t) (f[3] + at)) != 0) return errno ? errno : -1;
      h = mk_fnv1a(h, buf, n);
    }
  } else {
    for (uint64_t k = 0; k < SAMPLE_BLOCKS; k++) {
      uint64_t at = (data - SAMPLE_BYTES) * k / (SAMPLE_BLOCKS - 1);
      if (read_full(fd, buf, SAMPLE_BYTES, (int64_t) (f[3] + at)) != 0) return errno ? errno : -1;
      h = mk_fnv1a(h, buf, SAMPLE_BYTES);
    }
  }
  *out = h;
  return 0;
}

/* The state serialize() writes: the stored one, except that a headerless
 * file's checksum is taken again now, because writes in mode "rw" change the
 * sampled data; the reference then describes the file as it is when saved. */
SEXP fm_fresh_state(SEXP x) {
  SEXP st = fm_state_of(x);
  if (LOGICAL(VECTOR_ELT(st, FM_ST_HEADER))[0]) return st;
  fm_map *m = fm_map_of(x);
  const char *path = Rf_translateChar(STRING_ELT(VECTOR_ELT(st, FM_ST_PATH), 0));
  int64_t fsize;
  if (m->fd < 0 || fm_file_size(m->fd, &fsize) != 0)
    mk_error_sys("file", m->fd < 0 ? EBADF : errno, path, "Can't save a reference to '%s'", path);
  uint64_t h;
  int e = headerless_sum(m->fd, m->type, REAL(VECTOR_ELT(st, FM_ST_NROW))[0],
                         REAL(VECTOR_ELT(st, FM_ST_NCOL))[0], REAL(VECTOR_ELT(st, FM_ST_OFFSET))[0],
                         (double) fsize, &h);
  if (e == -1) fm_shrunk_error(x);
  if (e != 0) mk_error_sys("file", e, path, "Can't save a reference to '%s'", path);
  char sum[17];
  checksum_string(h, sum);
  SEXP out = PROTECT(Rf_shallow_duplicate(st));
  SET_VECTOR_ELT(out, FM_ST_CHECKSUM, Rf_mkString(sum));
  UNPROTECT(1);
  return out;
}

/* ---- opening ---------------------------------------------------------------------- */

/* Open and map a file; the object it returns has `dim` set. The arguments
 * have been checked for type and range (by R, or by the Unserialize method);
 * here they are checked against the file. A non-NULL checksum must match the
 * file's (a serialized reference being restored, or fm_open() making sure the
 * header it read is still the file's). */
SEXP fm_attach(const char *path, int mode, int type, double nrow, double ncol,
               double offset, int header, const char *checksum) {
  int nprot = 0;
  SEXP xp = PROTECT(fm_new_map_xptr()); nprot++;
  fm_map *m = (fm_map *) R_ExternalPtrAddr(xp);
  int64_t size;
  open_fd(m, path, mode, &size);
  char sum[17];
  size_t elt = fm_elt_size(type);
  if (header) {
    header_t h;
    read_header(m, path, size, &h);
    scratch_free(m);
    if (code_to_type(h.type_code) != type || (double) h.nrow != nrow || (double) h.ncol != ncol)
      FAIL(m, "format", "'%s' has changed: it now holds a %.0f x %.0f %s matrix, not %.0f x %.0f %s.",
           path, (double) h.nrow, (double) h.ncol, type_name(code_to_type(h.type_code)),
           nrow, ncol, type_name(type));
    if ((double) h.offset != offset)
      FAIL(m, "format", "'%s' has changed: its data now starts at byte %.0f, not %.0f.",
           path, (double) h.offset, offset);
    checksum_string(h.checksum, sum);
  } else {
    double need = offset + nrow * ncol * (double) elt;
    if (elt == 0 || fmod(offset, (double) elt) != 0)
      FAIL(m, "argument", "`offset` (%.0f) must be a multiple of the %d-byte element size of %s.",
           offset, (int) elt, type_name(type));
    if (need > MAX_BYTES || (double) size < need)
      FAIL(m, "format", "'%s' is %lld bytes, too short for a %.0f x %.0f %s matrix at offset %.0f "
           "(%.0f bytes).", path, (long long) size, nrow, ncol, type_name(type), offset, need);
    uint64_t h;
    int e = headerless_sum(m->fd, type, nrow, ncol, offset, (double) size, &h);
    if (e != 0) FAIL_SYS(m, "file", e == -1 ? EIO : e, path, "Can't read '%s'", path);
    checksum_string(h, sum);
  }
  if (checksum != NULL && strcmp(checksum, sum) != 0)
    FAIL(m, "format", "'%s' has changed since the matrix was saved: it is not the same file "
         "(its %s checksum differs).", path, header ? "header" : "size or data");
  m->type = type;
  m->mode = mode;
  m->length = (R_xlen_t) (nrow * ncol);
  if (m->length > 0) {
    if (fm_guard_install() != 0)
      FAIL_SYS(m, "system", errno, NULL, "Can't install memkit's SIGBUS handler");
    size_t len = (size_t) (offset + (double) m->length * (double) elt);
    void *p = fm_view_map(m->fd, len, mode);
    if (p == NULL)
      FAIL_SYS(m, "file", errno, path, "Can't map '%s' (%.0f bytes)", path, (double) len);
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
 * file (same inode, even if the path was replaced since), with a descriptor
 * of its own so its size can be checked like any other mapping's. */
SEXP fm_duplicate_private(SEXP x) {
  int nprot = 0;
  SEXP state = fm_state_of(x);
  SEXP xp = PROTECT(fm_new_map_xptr()); nprot++;
  fm_map *m = (fm_map *) R_ExternalPtrAddr(xp);
  fm_map *src = fm_map_of(x);
  m->type = src->type;
  m->mode = FM_COPY;
  m->length = src->length;
  const char *path = Rf_translateChar(STRING_ELT(VECTOR_ELT(state, FM_ST_PATH), 0));
  src = fm_map_of(x);
  if (src->length > 0) {
    if (src->fd < 0) FAIL_SYS(m, "file", EBADF, path, "Can't copy the matrix in '%s'", path);
    if (!fm_size_ok(src)) { unmap(m); fm_shrunk_error(x); }
    int fd = fm_file_dup(src->fd);
    if (fd < 0) FAIL_SYS(m, "file", errno, path, "Can't copy the matrix in '%s'", path);
    m->fd = fd;
    void *p = fm_view_map(fd, src->map_len, FM_COPY);
    if (p == NULL) FAIL_SYS(m, "file", errno, path, "Can't map '%s'", path);
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
      REAL(x)[0] > INT_MAX || REAL(x)[0] != floor(REAL(x)[0]))
    mk_error("argument", "`%s` must be a whole number between 0 and %d.", what, INT_MAX);
  return REAL(x)[0];
}

static int type_arg(SEXP type) {
  int t = NILSXP;
  if (TYPEOF(type) == STRSXP && XLENGTH(type) == 1 && STRING_ELT(type, 0) != NA_STRING)
    t = fm_type_from_name(CHAR(STRING_ELT(type, 0)));
  if (t == NILSXP)
    mk_error("type", "`type` must be one of \"double\", \"integer\", \"logical\" or \"raw\".");
  return t;
}

/* Create `tmp` (which must not exist), preallocate it, write the header and
 * the dimnames and map it. The object records `path`: R renames tmp to path
 * once filled, so a failure never leaves a half-made file at `path`. */
SEXP ffi_fm_create(SEXP path, SEXP tmp, SEXP type, SEXP nrow, SEXP ncol, SEXP dimnames) {
  int nprot = 0;
  /* R_ExpandFileName returns a static buffer: keep a copy in an R string. */
  SEXP s_final = PROTECT(Rf_mkString(path_arg(path))); nprot++;
  const char *final = CHAR(STRING_ELT(s_final, 0));
  int t = type_arg(type);
  double nr = dim_arg(nrow, "nrow"), nc = dim_arg(ncol, "ncol");
  SEXP nm = dimnames == R_NilValue ? R_NilValue : Rf_getAttrib(dimnames, R_NamesSymbol);
  if (dimnames != R_NilValue &&
      (TYPEOF(dimnames) != VECSXP || XLENGTH(dimnames) != 2 || !dn_vec_ok(nm, 2) ||
       !dn_vec_ok(VECTOR_ELT(dimnames, 0), nr) || !dn_vec_ok(VECTOR_ELT(dimnames, 1), nc)))
    mk_error("argument", "`dimnames` must be NULL or a list of two: NULL or %.0f row names, "
             "NULL or %.0f column names.", nr, nc);
  double dn_len = 0;
  if (dimnames != R_NilValue) {
    double a = dn_vec_bytes(nm), b = dn_vec_bytes(VECTOR_ELT(dimnames, 0)),
      c = dn_vec_bytes(VECTOR_ELT(dimnames, 1));
    if (a == -2 || b == -2 || c == -2)
      mk_error("argument", "`dimnames` must be valid text (UTF-8, or convertible to it).");
    dn_len = (a < 0 || b < 0 || c < 0) ? MAX_BYTES + 1 : a + b + c;
  }
  double elt = (double) fm_elt_size(t);
  double offset = ceil((HEADER_FIXED + dn_len) / HEADER_ALIGN) * HEADER_ALIGN;
  double total = offset + nr * nc * elt;
  if (total > MAX_BYTES)
    mk_error("argument", "A %.0f x %.0f %s matrix (%.0f bytes with its header) is too large for "
             "memkit (at most 2^52 bytes).", nr, nc, type_name(t), total);

  SEXP xp = PROTECT(fm_new_map_xptr()); nprot++;
  fm_map *m = (fm_map *) R_ExternalPtrAddr(xp);
  SEXP s_tmp = PROTECT(Rf_mkString(path_arg(tmp))); nprot++;
  const char *tpath = CHAR(STRING_ELT(s_tmp, 0));

  unsigned char *hbuf = (unsigned char *) scratch_alloc(m, (size_t) offset);
  memset(hbuf, 0, (size_t) offset);
  header_t h = {FM_VERSION, BYTE_ORDER_PROBE, (uint32_t) type_code(t), (uint32_t) elt,
                (uint64_t) nr, (uint64_t) nc, (uint64_t) offset, (uint64_t) dn_len, 0};
  unsigned char id[16];
  fm_random_id(id);
  header_pack(&h, id, hbuf);
  if (dimnames != R_NilValue) {
    unsigned char *p = hbuf + HEADER_FIXED;
    dn_vec_put(&p, nm);
    dn_vec_put(&p, VECTOR_ELT(dimnames, 0));
    dn_vec_put(&p, VECTOR_ELT(dimnames, 1));
    if (p != hbuf + HEADER_FIXED + (size_t) dn_len) FAIL(m, "internal", "dimnames size");
  }
  h.checksum = header_sum(hbuf, FM_VERSION, hbuf + HEADER_FIXED, (size_t) dn_len);
  memcpy(hbuf + 72, &h.checksum, 8);

  int fd = fm_file_create(tpath);
  if (fd < 0) FAIL_SYS(m, "file", errno, final, "Can't create '%s'", final);
  m->fd = fd;
  int rc = fm_file_reserve(fd, (int64_t) total);
  if (rc == 0 && write_full(fd, hbuf, (size_t) offset, 0) != 0) rc = errno;
  scratch_free(m);
  if (rc != 0) {
    unmap(m);
    fm_file_remove(tpath);
    mk_error_sys(full_disk(rc) ? "disk" : "file", rc, final, "Can't create '%s' (%.0f bytes)",
                 final, total);
  }
  m->type = t;
  m->mode = FM_WRITE;
  m->length = (R_xlen_t) (nr * nc);
  if (fm_guard_install() != 0) {
    int e = errno;
    unmap(m);
    fm_file_remove(tpath);
    mk_error_sys("system", e, NULL, "Can't install memkit's SIGBUS handler");
  }
  void *p = fm_view_map(fd, (size_t) total, FM_WRITE);
  if (p == NULL) {
    int e = errno;
    unmap(m);
    fm_file_remove(tpath);
    mk_error_sys("file", e, final, "Can't map '%s' (%.0f bytes)", final, total);
  }
  m->base = p;
  m->map_len = (size_t) total;
  m->data = (char *) p + (size_t) offset;
  char sum[17];
  checksum_string(h.checksum, sum);
  SEXP st = PROTECT(state_list(final, t, nr, nc, FM_WRITE, offset, 1, sum)); nprot++;
  SEXP x = PROTECT(fm_new_altrep(xp, st)); nprot++;
  set_dim(x, nr, nc);
  if (dimnames != R_NilValue) Rf_setAttrib(x, R_DimNamesSymbol, dimnames);
  UNPROTECT(nprot);
  return x;
}

/* The header of a memkit file, for fm_open(): list(type, nrow, ncol, offset,
 * dimnames, checksum, size), the dimnames decoded from the very bytes the
 * checksum was checked against. */
SEXP ffi_fm_header(SEXP path) {
  int nprot = 0;
  SEXP s_path = PROTECT(Rf_mkString(path_arg(path))); nprot++;
  const char *p = CHAR(STRING_ELT(s_path, 0));
  SEXP xp = PROTECT(fm_new_map_xptr()); nprot++;
  fm_map *m = (fm_map *) R_ExternalPtrAddr(xp);
  int64_t size;
  open_fd(m, p, FM_READ, &size);
  header_t h;
  read_header(m, p, size, &h);
  /* The bytes stay owned by xp while R allocates (which may longjmp); the
   * descriptor is no longer needed. */
  fm_file_close(m->fd);
  m->fd = -1;
  SEXP dn = PROTECT(dn_decode((const unsigned char *) m->scratch, (size_t) h.dn_len, h.nrow,
                              h.ncol, p)); nprot++;
  unmap(m);
  char sum[17];
  checksum_string(h.checksum, sum);
  SEXP out = PROTECT(Rf_allocVector(VECSXP, 7)); nprot++;
  SET_VECTOR_ELT(out, 0, Rf_mkString(type_name(code_to_type(h.type_code))));
  SET_VECTOR_ELT(out, 1, Rf_ScalarReal((double) h.nrow));
  SET_VECTOR_ELT(out, 2, Rf_ScalarReal((double) h.ncol));
  SET_VECTOR_ELT(out, 3, Rf_ScalarReal((double) h.offset));
  SET_VECTOR_ELT(out, 4, dn);
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
  if (TYPEOF(mode) != STRSXP || XLENGTH(mode) != 1 || STRING_ELT(mode, 0) == NA_STRING)
    mk_error("argument", "`mode` must be \"r\" or \"rw\".");
  int md = strcmp(CHAR(STRING_ELT(mode, 0)), "rw") == 0 ? FM_WRITE : FM_READ;
  if (TYPEOF(offset) != REALSXP || XLENGTH(offset) != 1 || !R_FINITE(REAL(offset)[0]) ||
      REAL(offset)[0] < 0 || REAL(offset)[0] > MAX_BYTES || REAL(offset)[0] != floor(REAL(offset)[0]))
    mk_error("argument", "`offset` must be a whole number of bytes of at least 0.");
  if (TYPEOF(header) != LGLSXP || XLENGTH(header) != 1 || LOGICAL(header)[0] == NA_LOGICAL)
    mk_error("argument", "`header` must be TRUE or FALSE.");
  const char *sum = NULL;
  if (TYPEOF(checksum) == STRSXP && XLENGTH(checksum) == 1 && STRING_ELT(checksum, 0) != NA_STRING)
    sum = CHAR(STRING_ELT(checksum, 0));
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
    mk_error("state", "The matrix in '%s' is %s; open it with `mode = \"rw\"` to write the file.",
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

static void *vec_rw(SEXP v) {
  switch (TYPEOF(v)) {
  case REALSXP: return REAL(v);
  case INTSXP: case LGLSXP: return INTEGER(v);
  case RAWSXP: return RAW(v);
  default: return NULL;
  }
}

static int count_arg(SEXP x) {
  return TYPEOF(x) == REALSXP && XLENGTH(x) == 1 && R_FINITE(REAL(x)[0]) && REAL(x)[0] >= 0 &&
    REAL(x)[0] <= MAX_BYTES;
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
  FM_GUARD_BEGIN(x)
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
  FM_GUARD_END
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
    if (TYPEOF(ix) == REALSXP && !(REAL_RO(ix)[k] >= 1 && REAL_RO(ix)[k] <= (double) max))
      mk_error("argument", "`%s` has an index out of range.", what);
    R_xlen_t v = index_at(ix, k);
    if (v < 0 || v >= max) mk_error("argument", "`%s` has an index out of range.", what);
  }
}

/* The dims R sees now, from the `dim` attribute: `dim(X) <- c(12, 1)` on a
 * 4 x 3 matrix makes it 12 x 1 for every base function, so for memkit's too.
 * The attribute is R's, so it is checked against the length. */
static void dims_of(SEXP x, R_xlen_t *nr, R_xlen_t *nc) {
  SEXP d = Rf_getAttrib(x, R_DimSymbol);
  if (TYPEOF(d) != INTSXP || XLENGTH(d) != 2 || INTEGER(d)[0] < 0 || INTEGER(d)[1] < 0 ||
      (double) INTEGER(d)[0] * (double) INTEGER(d)[1] != (double) XLENGTH(x))
    mk_error("type", "`x` must be a file-backed matrix with two dimensions.");
  *nr = INTEGER(d)[0];
  *nc = INTEGER(d)[1];
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
  FM_GUARD_BEGIN(x)
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
  FM_GUARD_END
  return R_NilValue;
}

/* An ni x nj matrix of `type`, with the counts checked first: matrix dims are
 * ints, and R's allocMatrix() takes ints, so larger counts must be an error
 * here, never a wrapped-around (int) cast. */
static SEXP alloc_block(int type, R_xlen_t ni, R_xlen_t nj) {
  if (ni > INT_MAX || nj > INT_MAX)
    mk_error("argument", "The result would have %.0f rows and %.0f columns; at most %d of each.",
             (double) ni, (double) nj, INT_MAX);
  if (nj > 0 && (double) ni * (double) nj > (double) R_XLEN_T_MAX)
    mk_error("argument", "The result would have %.0f elements, more than R allows.",
             (double) ni * (double) nj);
  SEXP out = PROTECT(Rf_allocVector((SEXPTYPE) type, ni * nj));
  set_dim(out, (double) ni, (double) nj);
  UNPROTECT(1);
  return out;
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
  SEXP out = PROTECT(alloc_block(m->type, ni, nj));
  m = fm_map_of(x);
  size_t elt = fm_elt_size(m->type);
  char *dst = (char *) vec_rw(out);
  FM_GUARD_BEGIN(x)
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
  FM_GUARD_END
  UNPROTECT(1);
  return out;
}

/* `count` whole columns (margin 2) or rows (margin 1) from 0-based `from`:
 * fm_apply()'s blocks, read without an index vector, so the cost is the
 * data's. Columns are one memcpy; rows one per column. */
SEXP ffi_fm_read_block(SEXP x, SEXP margin, SEXP from, SEXP count) {
  if (!fm_is_fm(x)) mk_error("type", "`x` must be a file-backed matrix.");
  fm_map *m = fm_map_of(x);
  R_xlen_t nr, nc;
  dims_of(x, &nr, &nc);
  int mg = Rf_asInteger(margin);
  if (mg != 1 && mg != 2) mk_error("argument", "`margin` must be 1 or 2.");
  if (!count_arg(from) || !count_arg(count)) mk_error("argument", "`from` and `count` must be counts.");
  R_xlen_t n = mg == 2 ? nc : nr;
  R_xlen_t f = (R_xlen_t) REAL(from)[0], k = (R_xlen_t) REAL(count)[0];
  if (f > n || k > n - f) mk_error("argument", "The block goes past the end of the matrix.");
  R_xlen_t ni = mg == 2 ? nr : k, nj = mg == 2 ? k : nc;
  SEXP out = PROTECT(alloc_block(m->type, ni, nj));
  m = fm_map_of(x);
  size_t elt = fm_elt_size(m->type);
  char *dst = (char *) vec_rw(out);
  FM_GUARD_BEGIN(x)
  if (mg == 2 || k == nr) {
    memcpy(dst, m->data + (size_t) (mg == 2 ? f * nr : 0) * elt, (size_t) ni * (size_t) nj * elt);
  } else {
    for (R_xlen_t b = 0; b < nc; b++)
      memcpy(dst + (size_t) b * (size_t) k * elt, m->data + ((size_t) b * (size_t) nr + (size_t) f) * elt,
             (size_t) k * elt);
  }
  FM_GUARD_END
  UNPROTECT(1);
  return out;
}

/* The mapping's pages, then the file: every write is on disk when this
 * returns. */
SEXP ffi_fm_flush(SEXP x) {
  if (!fm_is_fm(x)) mk_error("type", "`x` must be a file-backed matrix.");
  fm_map *m = fm_map_of(x);
  if (m->mode != FM_WRITE || m->base == NULL) return Rf_ScalarLogical(FALSE);
  const char *path = Rf_translateChar(STRING_ELT(VECTOR_ELT(fm_state_of(x), FM_ST_PATH), 0));
  if (fm_view_flush(m->fd, m->base, m->map_len) != 0)
    mk_error_sys(full_disk(errno) ? "disk" : "file", errno, path, "Can't write '%s' to disk", path);
  return Rf_ScalarLogical(TRUE);
}

/* What fm_info() shows: the state, the file's size now, and how many bytes of
 * the mapping are resident in memory (NA when the system can't tell). */
SEXP ffi_fm_info(SEXP x) {
  int nprot = 0;
  if (!fm_is_fm(x)) mk_error("type", "`x` must be a file-backed matrix.");
  fm_map *m = fm_map_of(x);
  SEXP st = fm_state_of(x);
  const char *path = Rf_translateChar(STRING_ELT(VECTOR_ELT(st, FM_ST_PATH), 0));
  double size = NA_REAL, resident = NA_REAL;
  int64_t fsize;
  if ((m->fd >= 0 && fm_file_size(m->fd, &fsize) == 0) || fm_path_size(path, &fsize) == 0)
    size = (double) fsize;
  double r = fm_view_resident(m->base, m->map_len);
  if (r >= 0) resident = r;
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


/* ---- growing a file in place (fm_append.c) ------------------------------------
 *
 * The primitives fm_append.c needs of the header and the file: it owns the
 * order of the steps (extend, write the new columns, sync, then the header). */

/* Open `path` read-write into m and check its header; fills *f (the file id
 * too, which the new header keeps). Signals (and releases m) on failure. */
void fm_grow_open(fm_map *m, const char *path, fm_grow_header *f) {
  int64_t size;
  open_fd(m, path, FM_WRITE, &size);
  header_t h;
  read_header(m, path, size, &h);
  scratch_free(m);
  if (h.version != FM_VERSION)
    FAIL(m, "format", "'%s' is a format %u file; grow it after rewriting it with as_fm().", path,
         (unsigned) h.version);
  if (read_full(m->fd, f->id, 16, 56) != 0)
    FAIL_SYS(m, "file", errno ? errno : EIO, path, "Can't read the header of '%s'", path);
  f->type = code_to_type(h.type_code);
  f->nrow = (double) h.nrow;
  f->ncol = (double) h.ncol;
  f->offset = (double) h.offset;
  f->size = (double) size;
  checksum_string(h.checksum, f->checksum);
}

/* Bytes of the header block (fixed part and dimnames) for `dimnames` on an
 * nrow x ncol matrix; -1 when a name is not valid text or it is too large. */
double fm_header_need(SEXP dimnames) {
  if (dimnames == R_NilValue) return HEADER_FIXED;
  SEXP nm = Rf_getAttrib(dimnames, R_NamesSymbol);
  double a = dn_vec_bytes(nm), b = dn_vec_bytes(VECTOR_ELT(dimnames, 0)),
    c = dn_vec_bytes(VECTOR_ELT(dimnames, 1));
  if (a < 0 || b < 0 || c < 0) return -1;
  return HEADER_FIXED + a + b + c;
}

/* Write the header of an f->nrow x `ncol` matrix with `dimnames` (which must
 * fit before f->offset: fm_header_need()) at the start of m's file and sync
 * it. The one write that makes a grown file's new size count. Returns 0 or
 * an errno value; the new checksum in `sum`. */
int fm_grow_commit(fm_map *m, const fm_grow_header *f, double ncol, SEXP dimnames, char sum[17]) {
  double need = fm_header_need(dimnames);
  if (need < 0 || need > f->offset) return EINVAL;
  size_t dn_len = (size_t) need - HEADER_FIXED;
  unsigned char *buf = (unsigned char *) scratch_alloc(m, (size_t) need);
  header_t h = {FM_VERSION, BYTE_ORDER_PROBE, (uint32_t) type_code(f->type),
                (uint32_t) fm_elt_size(f->type), (uint64_t) f->nrow, (uint64_t) ncol,
                (uint64_t) f->offset, (uint64_t) dn_len, 0};
  header_pack(&h, f->id, buf);
  if (dimnames != R_NilValue) {
    unsigned char *p = buf + HEADER_FIXED;
    dn_vec_put(&p, Rf_getAttrib(dimnames, R_NamesSymbol));
    dn_vec_put(&p, VECTOR_ELT(dimnames, 0));
    dn_vec_put(&p, VECTOR_ELT(dimnames, 1));
  }
  h.checksum = header_sum(buf, FM_VERSION, buf + HEADER_FIXED, dn_len);
  memcpy(buf + 72, &h.checksum, 8);
  int rc = write_full(m->fd, buf, (size_t) need, 0) == 0 ? 0 : errno;
  scratch_free(m);
  if (rc == 0 && fm_view_flush(m->fd, NULL, 0) != 0) rc = errno ? errno : EIO;
  checksum_string(h.checksum, sum);
  return rc;
}

/* The file of descriptor fd made exactly `size` bytes, its blocks reserved
 * (a full disk is an error here, never a SIGBUS later). Returns 0 or an
 * errno value. */
int fm_file_extend(int fd, double size) {
  /* Exactly: an append cut short may have left bytes past the old data. */
  int rc = fm_file_set_size(fd, (int64_t) size);
  return rc != 0 ? rc : fm_file_reserve(fd, (int64_t) size);
}

int fm_pwrite_all(int fd, const void *buf, size_t n, double at) {
  return write_full(fd, buf, n, (int64_t) at) == 0 ? 0 : (errno ? errno : EIO);
}

int fm_is_full_disk(int e) {
  return full_disk(e);
}


SEXP ffi_fm_is(SEXP x) {
  return Rf_ScalarLogical(fm_is_fm(x));
}
