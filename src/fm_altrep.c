/*
 * fm_altrep.c: the ALTREP classes of file-backed matrices.
 *
 * One class per storage type. The object is an ordinary vector to R (with
 * `dim` set at creation), whose data pointer is the mapped file, so base R
 * functions read the file directly. What each method is for:
 *
 *   Dataptr            the mapped data. R asks for a *writable* pointer even to
 *                      read (colSums, %*%, identical, serialize), so read-only
 *                      matrices are mapped MAP_PRIVATE with PROT_WRITE: a write
 *                      makes a private copy of that page and never the file.
 *   Elt, Get_region    direct reads, for code that walks elements.
 *   Extract_subset     x[i] / X[cbind(i, j)] without one dispatch per element.
 *   Duplicate          mode "r": a new private mapping (copy-on-write, only the
 *                      pages later written cost memory). Mode "rw" and private
 *                      copies: an in-memory copy, because a private mapping of a
 *                      file still sees later writes to pages it has not copied,
 *                      so it is not a snapshot.
 *   Serialized_state   the reference (path, type, dims, mode, checksum): a
 *                      few hundred bytes, never the data. Private copies are
 *                      serialized by value.
 *   Unserialize        reopens the file, or signals a classed error: never
 *                      R's fallback of a warning and a length-zero vector.
 */
#include <string.h>

#include "memkit.h"
#include "errors.h"
#include "fm.h"

static R_altrep_class_t fm_double_class;
static R_altrep_class_t fm_integer_class;
static R_altrep_class_t fm_logical_class;
static R_altrep_class_t fm_raw_class;

/* Used as the data pointer of a matrix with no elements, so Dataptr never
 * returns NULL. */
static double empty_data[1];

int fm_is_fm(SEXP x) {
  return R_altrep_inherits(x, fm_double_class) || R_altrep_inherits(x, fm_integer_class) ||
    R_altrep_inherits(x, fm_logical_class) || R_altrep_inherits(x, fm_raw_class);
}

SEXP fm_state_of(SEXP x) {
  return R_altrep_data2(x);
}

fm_map *fm_map_of(SEXP x) {
  fm_map *m = (fm_map *) R_ExternalPtrAddr(R_altrep_data1(x));
  if (m == NULL || (m->base == NULL && m->length > 0)) {
    mk_error("file", "The file-backed matrix is no longer mapped.");
  }
  return m;
}

/* The fast accessor for element methods: no error path beyond the check. */
static inline char *data_of(SEXP x) {
  fm_map *m = (fm_map *) R_ExternalPtrAddr(R_altrep_data1(x));
  if (m == NULL) mk_error("file", "The file-backed matrix is no longer mapped.");
  return m->length > 0 ? m->data : (char *) empty_data;
}

SEXP fm_new_altrep(SEXP xp, SEXP state) {
  fm_map *m = (fm_map *) R_ExternalPtrAddr(xp);
  if (m == NULL) MK_INTERNAL_ERROR("empty map");
  R_altrep_class_t cls;
  switch (m->type) {
  case REALSXP: cls = fm_double_class; break;
  case INTSXP: cls = fm_integer_class; break;
  case LGLSXP: cls = fm_logical_class; break;
  case RAWSXP: cls = fm_raw_class; break;
  default: MK_INTERNAL_ERROR("bad type");
  }
  SEXP x = R_new_altrep(cls, xp, state);
  /* A read-only matrix must never be modified in place: its serialized form is
   * the file, so a change R made to it would be lost silently. Marked not
   * mutable, R duplicates it before any change (a cheap private remap). */
  if (m->mode == FM_READ) MARK_NOT_MUTABLE(x);
  return x;
}

/* ---- altrep methods ------------------------------------------------------ */

static R_xlen_t fm_length(SEXP x) {
  fm_map *m = (fm_map *) R_ExternalPtrAddr(R_altrep_data1(x));
  return m == NULL ? 0 : m->length;
}

static const char *mode_name(int mode) {
  return mode == FM_WRITE ? "rw" : mode == FM_READ ? "r" : "copy";
}

static Rboolean fm_inspect(SEXP x, int pre, int deep, int pvec,
                           void (*inspect_subtree)(SEXP, int, int, int)) {
  (void) pre; (void) deep; (void) pvec; (void) inspect_subtree;
  fm_map *m = (fm_map *) R_ExternalPtrAddr(R_altrep_data1(x));
  SEXP state = R_altrep_data2(x);
  Rprintf(" memkit file-backed matrix (%s, mode %s) %s\n", Rf_type2char((SEXPTYPE) TYPEOF(x)),
          m ? mode_name(m->mode) : "closed",
          Rf_translateChar(STRING_ELT(VECTOR_ELT(state, FM_ST_PATH), 0)));
  return TRUE;
}

static SEXP fm_serialized_state(SEXP x) {
  fm_map *m = (fm_map *) R_ExternalPtrAddr(R_altrep_data1(x));
  /* A private copy may differ from the file: it is written by value. */
  if (m == NULL || m->mode == FM_COPY) return NULL;
  return R_altrep_data2(x);
}

static SEXP fm_unserialize(SEXP cls, SEXP state) {
  (void) cls;
  if (TYPEOF(state) != VECSXP || XLENGTH(state) != FM_ST_LEN ||
      TYPEOF(VECTOR_ELT(state, FM_ST_PATH)) != STRSXP ||
      TYPEOF(VECTOR_ELT(state, FM_ST_TYPE)) != STRSXP ||
      TYPEOF(VECTOR_ELT(state, FM_ST_NROW)) != REALSXP ||
      TYPEOF(VECTOR_ELT(state, FM_ST_NCOL)) != REALSXP ||
      TYPEOF(VECTOR_ELT(state, FM_ST_MODE)) != STRSXP ||
      TYPEOF(VECTOR_ELT(state, FM_ST_OFFSET)) != REALSXP ||
      TYPEOF(VECTOR_ELT(state, FM_ST_HEADER)) != LGLSXP ||
      TYPEOF(VECTOR_ELT(state, FM_ST_CHECKSUM)) != STRSXP) {
    mk_error("file", "Can't restore a file-backed matrix: its serialized reference is corrupt.");
  }
  const char *path = Rf_translateChar(STRING_ELT(VECTOR_ELT(state, FM_ST_PATH), 0));
  const char *type = CHAR(STRING_ELT(VECTOR_ELT(state, FM_ST_TYPE), 0));
  int t = strcmp(type, "double") == 0 ? REALSXP : strcmp(type, "integer") == 0 ? INTSXP :
    strcmp(type, "logical") == 0 ? LGLSXP : strcmp(type, "raw") == 0 ? RAWSXP : NILSXP;
  if (t == NILSXP) mk_error("file", "Can't restore a file-backed matrix of type \"%s\".", type);
  int mode = strcmp(CHAR(STRING_ELT(VECTOR_ELT(state, FM_ST_MODE), 0)), "rw") == 0 ? FM_WRITE : FM_READ;
  return fm_attach(path, mode, t, REAL(VECTOR_ELT(state, FM_ST_NROW))[0],
                   REAL(VECTOR_ELT(state, FM_ST_NCOL))[0],
                   REAL(VECTOR_ELT(state, FM_ST_OFFSET))[0],
                   LOGICAL(VECTOR_ELT(state, FM_ST_HEADER))[0],
                   CHAR(STRING_ELT(VECTOR_ELT(state, FM_ST_CHECKSUM), 0)));
}

/* An in-memory copy of the data: the value as it is now. */
static SEXP materialize(SEXP x) {
  fm_map *m = fm_map_of(x);
  SEXP out = PROTECT(Rf_allocVector((SEXPTYPE) m->type, m->length));
  /* Re-read after the allocation: a GC may have run (the map cannot move, but
   * reading the pointer once more costs nothing). */
  m = fm_map_of(x);
  if (m->length > 0) {
    void *dst = m->type == REALSXP ? (void *) REAL(out) :
      m->type == RAWSXP ? (void *) RAW(out) : (void *) INTEGER(out);
    memcpy(dst, m->data, (size_t) m->length * fm_elt_size(m->type));
  }
  UNPROTECT(1);
  return out;
}

/* Copies of a read-write matrix larger than this (option memkit.copy_warn,
 * in bytes; 64 MiB by default) are worth a warning: R made one because the
 * matrix was shared, and the user probably meant to write the file, which
 * needs fm_write(). */
static double copy_warn_bytes(void) {
  SEXP opt = Rf_GetOption1(Rf_install("memkit.copy_warn"));
  if ((TYPEOF(opt) == REALSXP || TYPEOF(opt) == INTSXP) && XLENGTH(opt) == 1) {
    double v = Rf_asReal(opt);
    if (!ISNAN(v)) return v;
  }
  return 64.0 * 1024 * 1024;
}

static SEXP fm_duplicate(SEXP x, Rboolean deep) {
  (void) deep; /* the data has no references to copy deeply */
  fm_map *m = fm_map_of(x);
  if (m->mode == FM_READ) return fm_duplicate_private(x);
  double bytes = (double) m->length * (double) fm_elt_size(m->type);
  if (m->mode == FM_WRITE && bytes > copy_warn_bytes()) {
    Rf_warningcall(R_NilValue,
                   "Copying the file-backed matrix in '%s' into memory (%.0f MB): R copies a "
                   "shared matrix before changing it, and a copy of a matrix open in mode "
                   "\"rw\" is an ordinary matrix. Use fm_write() to write the file.",
                   Rf_translateChar(STRING_ELT(VECTOR_ELT(R_altrep_data2(x), FM_ST_PATH), 0)),
                   bytes / 1e6);
  }
  return materialize(x);
}

static void *fm_dataptr(SEXP x, Rboolean writeable) {
  (void) writeable; /* read-only data is mapped MAP_PRIVATE: see the top */
  return data_of(x);
}

static const void *fm_dataptr_or_null(SEXP x) {
  fm_map *m = (fm_map *) R_ExternalPtrAddr(R_altrep_data1(x));
  if (m == NULL) return NULL;
  return m->length > 0 ? m->data : (char *) empty_data;
}

static double fm_real_elt(SEXP x, R_xlen_t i) {
  return ((const double *) data_of(x))[i];
}

static int fm_int_elt(SEXP x, R_xlen_t i) {
  return ((const int *) data_of(x))[i];
}

static Rbyte fm_raw_elt(SEXP x, R_xlen_t i) {
  return ((const Rbyte *) data_of(x))[i];
}

static R_xlen_t region(SEXP x, R_xlen_t i, R_xlen_t n, void *buf, size_t elt) {
  R_xlen_t len = fm_length(x);
  if (i < 0 || i >= len || n <= 0) return 0;
  if (n > len - i) n = len - i;
  memcpy(buf, data_of(x) + (size_t) i * elt, (size_t) n * elt);
  return n;
}

static R_xlen_t fm_real_region(SEXP x, R_xlen_t i, R_xlen_t n, double *buf) {
  return region(x, i, n, buf, sizeof(double));
}

static R_xlen_t fm_int_region(SEXP x, R_xlen_t i, R_xlen_t n, int *buf) {
  return region(x, i, n, buf, sizeof(int));
}

static R_xlen_t fm_raw_region(SEXP x, R_xlen_t i, R_xlen_t n, Rbyte *buf) {
  return region(x, i, n, buf, 1);
}

/* x[indx] for positive 1-based indices (R has already dropped zeros and turned
 * negative, logical and character subscripts into these). Out of range and NA
 * give NA, as in R's own ExtractSubset. */
#define EXTRACT_LOOP(CTYPE, NAVAL)                                             \
  {                                                                            \
    const CTYPE *src = (const CTYPE *) data_of(x);                             \
    CTYPE *dst = (CTYPE *) out_ptr;                                            \
    if (TYPEOF(indx) == INTSXP) {                                              \
      const int *ix = INTEGER_RO(indx);                                        \
      for (R_xlen_t k = 0; k < n; k++) {                                       \
        int ii = ix[k];                                                        \
        dst[k] = (ii == NA_INTEGER || ii < 1 || ii > len) ? NAVAL : src[ii - 1]; \
      }                                                                        \
    } else {                                                                   \
      const double *ix = REAL_RO(indx);                                        \
      for (R_xlen_t k = 0; k < n; k++) {                                       \
        double di = ix[k];                                                     \
        dst[k] = (ISNAN(di) || di < 1 || di > (double) len) ? NAVAL            \
                                                            : src[(R_xlen_t) di - 1]; \
      }                                                                        \
    }                                                                          \
  }

static SEXP fm_extract_subset(SEXP x, SEXP indx, SEXP call) {
  (void) call;
  if (TYPEOF(indx) != INTSXP && TYPEOF(indx) != REALSXP) return NULL;
  R_xlen_t n = XLENGTH(indx), len = fm_length(x);
  SEXPTYPE t = (SEXPTYPE) TYPEOF(x);
  SEXP out = PROTECT(Rf_allocVector(t, n));
  void *out_ptr = t == REALSXP ? (void *) REAL(out) : t == RAWSXP ? (void *) RAW(out)
    : (void *) INTEGER(out);
  switch (t) {
  case REALSXP: EXTRACT_LOOP(double, NA_REAL); break;
  case INTSXP: EXTRACT_LOOP(int, NA_INTEGER); break;
  case LGLSXP: EXTRACT_LOOP(int, NA_LOGICAL); break;
  case RAWSXP: EXTRACT_LOOP(Rbyte, (Rbyte) 0); break;
  default: break;
  }
  UNPROTECT(1);
  return out;
}

/* ---- registration --------------------------------------------------------- */

static void set_common(R_altrep_class_t cls) {
  R_set_altrep_Length_method(cls, fm_length);
  R_set_altrep_Inspect_method(cls, fm_inspect);
  R_set_altrep_Serialized_state_method(cls, fm_serialized_state);
  R_set_altrep_Unserialize_method(cls, fm_unserialize);
  R_set_altrep_Duplicate_method(cls, fm_duplicate);
  R_set_altvec_Dataptr_method(cls, fm_dataptr);
  R_set_altvec_Dataptr_or_null_method(cls, fm_dataptr_or_null);
  R_set_altvec_Extract_subset_method(cls, fm_extract_subset);
}

/* Called from R_init_memkit, so the classes exist whenever the package is
 * loaded: a session or worker that unserializes a matrix loads memkit and
 * finds them. */
void fm_init_altrep(DllInfo *dll) {
  fm_double_class = R_make_altreal_class("memkit_fm_double", "memkit", dll);
  set_common(fm_double_class);
  R_set_altreal_Elt_method(fm_double_class, fm_real_elt);
  R_set_altreal_Get_region_method(fm_double_class, fm_real_region);

  fm_integer_class = R_make_altinteger_class("memkit_fm_integer", "memkit", dll);
  set_common(fm_integer_class);
  R_set_altinteger_Elt_method(fm_integer_class, fm_int_elt);
  R_set_altinteger_Get_region_method(fm_integer_class, fm_int_region);

  fm_logical_class = R_make_altlogical_class("memkit_fm_logical", "memkit", dll);
  set_common(fm_logical_class);
  R_set_altlogical_Elt_method(fm_logical_class, fm_int_elt);
  R_set_altlogical_Get_region_method(fm_logical_class, fm_int_region);

  fm_raw_class = R_make_altraw_class("memkit_fm_raw", "memkit", dll);
  set_common(fm_raw_class);
  R_set_altraw_Elt_method(fm_raw_class, fm_raw_elt);
  R_set_altraw_Get_region_method(fm_raw_class, fm_raw_region);
}
