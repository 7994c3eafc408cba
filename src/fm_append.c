/*
 * fm_append.c: growing a memkit file by columns, in place.
 *
 * Column-major storage puts new columns after the last one, so appending
 * them extends the file and writes only the new data. The steps, in an order
 * that leaves a readable file at every point (a crash, a full disk, SIGKILL):
 *
 *   1. ffi_fm_grow_begin: open the file read-write, check its header against
 *      the matrix's checksum (it is the file the matrix maps), make sure the
 *      new dimnames fit in the header's room, extend the file to its new
 *      size with its blocks reserved. The header still gives the old dims,
 *      and fm.c accepts a file longer than its header says, so every reader
 *      sees the old matrix.
 *   2. ffi_fm_grow_write, once per block: the new columns' bytes, written at
 *      the old end of the data with pwrite(), never through a mapping.
 *   3. ffi_fm_grow_commit: fsync the data, then write the new header (ncol,
 *      dimnames, checksum) in one write and fsync it. Only now does a reader
 *      see the new dims.
 *
 * Another process with the file open keeps its mapping of the old size: the
 * file only grew, so every page it maps is still there; it sees the old
 * dims. One that opens the file while the header is written reads a header
 * whose checksum does not match (a classed `format` error) or one of the two
 * complete headers. Rows cannot be appended this way (every column would
 * move): fm_append() rewrites those into a new file (R/fm-append.R).
 *
 * The handle is an external pointer owning an fm_map (fm.c's finalizer
 * closes the descriptor), whose protected field holds the header fields as a
 * raw vector.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include "memkit.h"
#include "errors.h"
#include "fm.h"
#include "fm_map.h"


static const char *state_path(SEXP x) {
  return Rf_translateChar(STRING_ELT(VECTOR_ELT(fm_state_of(x), FM_ST_PATH), 0));
}

/* NULL, or list(NULL or nrow names, NULL or ncol names), possibly named: what
 * the header can hold and fm.c's reader will accept again. */
static int dimnames_ok(SEXP dn, double nrow, double ncol) {
  if (dn == R_NilValue) return 1;
  if (TYPEOF(dn) != VECSXP || XLENGTH(dn) != 2) return 0;
  double want[2] = {nrow, ncol};
  for (int k = 0; k < 2; k++) {
    SEXP v = VECTOR_ELT(dn, k);
    if (v != R_NilValue && (TYPEOF(v) != STRSXP || (double) XLENGTH(v) != want[k])) return 0;
  }
  SEXP nm = Rf_getAttrib(dn, R_NamesSymbol);
  return nm == R_NilValue || (TYPEOF(nm) == STRSXP && XLENGTH(nm) == 2);
}

/* What the handle remembers: the old header and the new column count. */
typedef struct {
  fm_grow_header h;
  double ncol_new;
} grow_state;

static grow_state *handle_state(SEXP handle) {
  if (TYPEOF(handle) != EXTPTRSXP) return NULL;
  fm_map *m = (fm_map *) R_ExternalPtrAddr(handle);
  SEXP raw = R_ExternalPtrProtected(handle);
  if (m == NULL || m->fd < 0 || TYPEOF(raw) != RAWSXP || XLENGTH(raw) != (R_xlen_t) sizeof(grow_state))
    return NULL;
  return (grow_state *) RAW(raw);
}

static fm_map *handle_map(SEXP handle, grow_state **g) {
  *g = handle_state(handle);
  if (*g == NULL) mk_error("state", "The file is no longer open for appending.");
  return (fm_map *) R_ExternalPtrAddr(handle);
}

/* Step 1. Returns the handle, or NULL when the new dimnames do not fit in the
 * header's room (the caller then rewrites the file). */
SEXP ffi_fm_grow_begin(SEXP x, SEXP ncol_new, SEXP dimnames) {
  int nprot = 0;
  if (!fm_is_fm(x)) mk_error("type", "`x` must be a file-backed matrix.");
  SEXP st = fm_state_of(x);
  if (!LOGICAL(VECTOR_ELT(st, FM_ST_HEADER))[0])
    mk_error("argument", "`x` is a headerless file; only memkit files grow in place.");
  SEXP s_path = PROTECT(Rf_mkString(state_path(x))); nprot++;
  const char *path = CHAR(STRING_ELT(s_path, 0));
  const char *sum = CHAR(STRING_ELT(VECTOR_ELT(st, FM_ST_CHECKSUM), 0));
  double nrow = REAL(VECTOR_ELT(st, FM_ST_NROW))[0], ncol = REAL(VECTOR_ELT(st, FM_ST_NCOL))[0];
  if (TYPEOF(ncol_new) != REALSXP || XLENGTH(ncol_new) != 1 || !(REAL(ncol_new)[0] >= ncol) ||
      REAL(ncol_new)[0] > INT_MAX || REAL(ncol_new)[0] != floor(REAL(ncol_new)[0]))
    mk_error("argument", "The new number of columns must be at least %.0f and at most %d.", ncol, INT_MAX);
  double nc = REAL(ncol_new)[0];
  if (!dimnames_ok(dimnames, nrow, nc))
    mk_error("argument", "`dimnames` must be NULL or a list of two: NULL or %.0f row names, "
             "NULL or %.0f column names.", nrow, nc);

  SEXP xp = PROTECT(fm_new_map_xptr()); nprot++;
  fm_map *m = (fm_map *) R_ExternalPtrAddr(xp);
  SEXP raw = PROTECT(Rf_allocVector(RAWSXP, sizeof(grow_state))); nprot++;
  R_SetExternalPtrProtected(xp, raw);
  grow_state *g = (grow_state *) RAW(raw);
  memset(g, 0, sizeof *g);
  g->ncol_new = nc;
  fm_grow_header *f = &g->h;
  fm_grow_open(m, path, f);
  if (strcmp(f->checksum, sum) != 0 || f->nrow != nrow || f->ncol != ncol) {
    fm_file_close(m->fd);
    m->fd = -1;
    mk_error("format", "'%s' has changed since the matrix was opened (it now holds %.0f x %.0f); "
             "open it again with fm_open().", path, f->nrow, f->ncol);
  }
  double need = fm_header_need(dimnames);
  if (need < 0 || need > f->offset) {
    fm_file_close(m->fd);
    m->fd = -1;
    UNPROTECT(nprot);
    return R_NilValue;
  }
  double elt = (double) fm_elt_size(f->type);
  double total = f->offset + nrow * nc * elt;
  if (total > 4503599627370496.0) { /* 2^52, fm.c's limit */
    fm_file_close(m->fd);
    m->fd = -1;
    mk_error("argument", "A %.0f x %.0f matrix is too large for memkit (at most 2^52 bytes).", nrow, nc);
  }
  int rc = fm_file_extend(m->fd, total);
  if (rc != 0) {
    /* Back to the size the header covers (a failed extension may have left
     * part of it); the old matrix is whole either way. */
    (void) fm_file_extend(m->fd, f->offset + nrow * ncol * elt);
    fm_file_close(m->fd);
    m->fd = -1;
    mk_error_sys(fm_is_full_disk(rc) ? "disk" : "file", rc, path,
                 "Can't grow '%s' to %.0f bytes", path, total);
  }
  UNPROTECT(nprot);
  return xp;
}

static const void *vec_bytes(SEXP v) {
  switch (TYPEOF(v)) {
  case REALSXP: return REAL_RO(v);
  case INTSXP: case LGLSXP: return INTEGER_RO(v);
  case RAWSXP: return RAW_RO(v);
  default: return NULL;
  }
}

/* Step 2: value[from, from + n) (the matrix's type; 0-based elements) at
 * element `at` of the grown matrix, which must be past the old data. */
SEXP ffi_fm_grow_write(SEXP handle, SEXP value, SEXP at, SEXP from, SEXP n) {
  grow_state *g;
  fm_map *m = handle_map(handle, &g);
  const fm_grow_header *f = &g->h;
  if (TYPEOF(value) != f->type) mk_error("type", "`value` must be of the matrix's type.");
  if (TYPEOF(at) != REALSXP || TYPEOF(from) != REALSXP || TYPEOF(n) != REALSXP ||
      XLENGTH(at) != 1 || XLENGTH(from) != 1 || XLENGTH(n) != 1)
    mk_error("argument", "`at`, `from` and `n` must be numbers.");
  double a = REAL(at)[0], fr = REAL(from)[0], k = REAL(n)[0];
  double nv = (double) XLENGTH(value), old = f->nrow * f->ncol, end = f->nrow * g->ncol_new;
  double elt = (double) fm_elt_size(f->type);
  if (!(a >= old) || !(fr >= 0) || !(k >= 0) || fr + k > nv || a + k > end)
    mk_error("argument", "The block is outside the new columns.");
  if (k == 0) return R_NilValue;
  const char *src = (const char *) vec_bytes(value);
  /* pwrite() reads the source itself: if it is a file-backed matrix whose
   * file shrank, that is EFAULT here, not a SIGBUS. */
  int rc = fm_pwrite_all(m->fd, src + (size_t) fr * (size_t) elt, (size_t) (k * elt),
                         f->offset + a * elt);
  if (rc != 0)
    mk_error_sys(fm_is_full_disk(rc) ? "disk" : "file", rc, NULL, "Can't write the new columns");
  return R_NilValue;
}

/* Step 3: data on disk, then the header. Returns the new checksum. */
SEXP ffi_fm_grow_commit(SEXP handle, SEXP dimnames) {
  grow_state *g;
  fm_map *m = handle_map(handle, &g);
  const fm_grow_header *f = &g->h;
  double nc = g->ncol_new;
  if (!dimnames_ok(dimnames, f->nrow, nc)) mk_error("argument", "`dimnames` do not fit the matrix.");
  if (fm_view_flush(m->fd, NULL, 0) != 0) {
    int e = errno;
    mk_error_sys(fm_is_full_disk(e) ? "disk" : "file", e, NULL, "Can't write the new columns to disk");
  }
  char sum[17];
  int rc = fm_grow_commit(m, f, nc, dimnames, sum);
  fm_file_close(m->fd);
  m->fd = -1;
  if (rc != 0)
    mk_error_sys(fm_is_full_disk(rc) ? "disk" : "file", rc, NULL, "Can't write the new header");
  return Rf_mkString(sum);
}

/* Undo step 1 after a failure in step 2: the file back to the size its
 * (old) header covers. Best effort; the old matrix is readable either way. */
SEXP ffi_fm_grow_abort(SEXP handle) {
  if (TYPEOF(handle) != EXTPTRSXP) return R_NilValue;
  grow_state *g = handle_state(handle);
  if (g == NULL) return R_NilValue;
  fm_map *m = (fm_map *) R_ExternalPtrAddr(handle);
  const fm_grow_header *f = &g->h;
  (void) fm_file_extend(m->fd, f->offset + f->nrow * f->ncol * (double) fm_elt_size(f->type));
  fm_file_close(m->fd);
  m->fd = -1;
  return R_NilValue;
}

/* value[from, from + n) written at element `at` of x's file with pwrite()
 * on its descriptor, not through the mapping: the pages written are in the
 * page cache (and the mapping sees them), but not in this process's resident
 * set. fm_import() fills its new matrix this way. */
SEXP ffi_fm_pwrite(SEXP x, SEXP value, SEXP at, SEXP from, SEXP n) {
  if (!fm_is_fm(x)) mk_error("type", "`x` must be a file-backed matrix.");
  fm_map *m = fm_map_of(x);
  if (m->mode != FM_WRITE || m->fd < 0) mk_error("state", "`x` must be open in mode \"rw\".");
  if (TYPEOF(value) != m->type) mk_error("type", "`value` must be of the matrix's type.");
  if (TYPEOF(at) != REALSXP || TYPEOF(from) != REALSXP || TYPEOF(n) != REALSXP ||
      XLENGTH(at) != 1 || XLENGTH(from) != 1 || XLENGTH(n) != 1)
    mk_error("argument", "`at`, `from` and `n` must be numbers.");
  double a = REAL(at)[0], fr = REAL(from)[0], k = REAL(n)[0];
  if (!(a >= 0) || !(fr >= 0) || !(k >= 0) || a + k > (double) m->length ||
      fr + k > (double) XLENGTH(value))
    mk_error("argument", "Writing %.0f elements at %.0f goes past the end of the matrix or `value`.", k, a);
  if (k == 0) return R_NilValue;
  double elt = (double) fm_elt_size(m->type);
  double offset = (double) (m->data - (char *) m->base);
  const char *src = (const char *) vec_bytes(value);
  int rc = fm_pwrite_all(m->fd, src + (size_t) (fr * elt), (size_t) (k * elt), offset + a * elt);
  if (rc != 0)
    mk_error_sys(fm_is_full_disk(rc) ? "disk" : "file", rc,
                 Rf_translateChar(STRING_ELT(VECTOR_ELT(fm_state_of(x), FM_ST_PATH), 0)),
                 "Can't write the matrix's file");
  return R_NilValue;
}

