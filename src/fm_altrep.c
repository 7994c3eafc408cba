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
 *   Unserialize        checks every field of the reference, then reopens the
 *                      file (which checks them against the file), or signals
 *                      a classed `format` or `file` error: never R's fallback
 *                      of a warning and a length-zero vector, and never a
 *                      mapping from a crafted offset or size.
 *
 * Every method that reads or writes the mapping itself runs under the SIGBUS
 * guard of fm.h; Dataptr checks the file's size before handing out a pointer.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
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
    mk_error("state", "The file-backed matrix is no longer mapped.");
  }
  return m;
}

/* The fast accessor for element methods: no error path beyond the check. */
static inline char *data_of(SEXP x) {
  fm_map *m = (fm_map *) R_ExternalPtrAddr(R_altrep_data1(x));
  if (m == NULL) mk_error("state", "The file-backed matrix is no longer mapped.");
  if (m->broken) fm_shrunk_error(x);
  return m->length > 0 ? m->data : (char *) empty_data;
}

/* The object Elt was last called on, and its map: R's subsetting calls Elt
 * on one object once per element, so the common case is one compare. The
 * cache is emptied whenever an object of these classes is made (here, the
 * only place), so an address that a collected object left and a new one
 * took is never taken for the old one's, and whenever a read breaks a
 * mapping (fm_elt_forget(), from fm_elt_fault()), so a broken mapping is
 * always looked at again: the classed error. R calls methods on its own
 * thread only. */
static SEXP elt_x = NULL;
static const char *elt_data = NULL;   /* its map's data: fixed once mapped */

void fm_elt_forget(void) {
  elt_x = NULL;
  elt_data = NULL;
}

#if defined(__GNUC__) || defined(__clang__)
# define FM_COLD __attribute__((noinline, cold))
# define FM_LIKELY(c) __builtin_expect(!!(c), 1)
#else
# define FM_COLD
# define FM_LIKELY(c) (c)
#endif

/* Out of line, so that Elt's common path saves no register. */
static FM_COLD const char *elt_data_slow(SEXP x) {
  const char *d = data_of(x);
  elt_x = x;
  elt_data = d;
  return d;
}

/* x's data, for Elt: i < length, so it is mapped. */
static inline const char *elt_data_of(SEXP x) {
  if (FM_LIKELY(x == elt_x)) return elt_data;
  return elt_data_slow(x);
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
  fm_elt_forget();
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
  return fm_fresh_state(x);
}

/* ---- the reference, checked field by field before any use ------------------

 * A reference is whatever bytes an .rds file or a socket held: memkit wrote
 * it, or someone crafted it (its checksum is no secret). Each field must have
 * the type, length and range memkit writes; fm_attach() then checks them
 * against the file itself. */

#define REF_BAD(...) mk_error("format", "Can't restore a file-backed matrix: its reference is corrupt (" __VA_ARGS__)

static const char *ref_string(SEXP state, int k, const char *name) {
  SEXP v = VECTOR_ELT(state, k);
  if (TYPEOF(v) != STRSXP || XLENGTH(v) != 1 || STRING_ELT(v, 0) == NA_STRING)
    REF_BAD("`%s` is not a single string).", name);
  return CHAR(STRING_ELT(v, 0));
}

static double ref_number(SEXP state, int k, const char *name, double max) {
  SEXP v = VECTOR_ELT(state, k);
  if (TYPEOF(v) != REALSXP || XLENGTH(v) != 1)
    REF_BAD("`%s` is not a single number).", name);
  double d = REAL(v)[0];
  if (!R_FINITE(d) || d < 0 || d > max || d != floor(d))
    REF_BAD("`%s` is %g, not a whole number between 0 and %.0f).", name, d, max);
  return d;
}

static SEXP fm_unserialize(SEXP cls, SEXP state) {
  (void) cls;
  if (TYPEOF(state) != VECSXP || XLENGTH(state) != FM_ST_LEN)
    REF_BAD("not a list of %d fields).", FM_ST_LEN);
  SEXP s_path = VECTOR_ELT(state, FM_ST_PATH);
  ref_string(state, FM_ST_PATH, "path");
  const char *path = Rf_translateChar(STRING_ELT(s_path, 0));
  if (path[0] != '/' || strlen(path) >= 4096)
    REF_BAD("`path` is not an absolute path).");
  int t = fm_type_from_name(ref_string(state, FM_ST_TYPE, "type"));
  if (t == NILSXP) REF_BAD("`type` is not \"double\", \"integer\", \"logical\" or \"raw\").");
  double nrow = ref_number(state, FM_ST_NROW, "nrow", INT_MAX);
  double ncol = ref_number(state, FM_ST_NCOL, "ncol", INT_MAX);
  /* Private copies are serialized by value, so "copy" is never in a reference. */
  const char *md = ref_string(state, FM_ST_MODE, "mode");
  int mode = strcmp(md, "rw") == 0 ? FM_WRITE : strcmp(md, "r") == 0 ? FM_READ : -1;
  if (mode < 0) REF_BAD("`mode` is not \"r\" or \"rw\").");
  /* 2^52: every size below it is exact in a double and fits every type. */
  double offset = ref_number(state, FM_ST_OFFSET, "offset", 4503599627370496.0);
  SEXP hd = VECTOR_ELT(state, FM_ST_HEADER);
  if (TYPEOF(hd) != LGLSXP || XLENGTH(hd) != 1 || LOGICAL(hd)[0] == NA_LOGICAL)
    REF_BAD("`header` is not TRUE or FALSE).");
  int header = LOGICAL(hd)[0];
  const char *sum = ref_string(state, FM_ST_CHECKSUM, "checksum");
  int hex = strlen(sum) == 16;
  for (int k = 0; hex && k < 16; k++) hex = (sum[k] >= '0' && sum[k] <= '9') || (sum[k] >= 'a' && sum[k] <= 'f');
  if (!hex) REF_BAD("`checksum` is not 16 hexadecimal digits).");
  double elt = (double) fm_elt_size(t);
  if (fmod(offset, header ? 4096.0 : elt) != 0)
    REF_BAD("`offset` %.0f is not a multiple of %.0f).", offset, header ? 4096.0 : elt);
  if (offset + nrow * ncol * elt > 4503599627370496.0)
    REF_BAD("a %.0f x %.0f %s matrix at offset %.0f is larger than 2^52 bytes).", nrow, ncol,
            Rf_type2char((SEXPTYPE) t), offset);
  return fm_attach(path, mode, t, nrow, ncol, offset, header, sum);
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
    fm_copy_guarded(x, dst, m->data, (size_t) m->length * fm_elt_size(m->type));
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

/* A classed warning (see ?memkit_errors) through memkit:::mk_warn(), the
 * way errors.c raises errors through mk_c_error(): the classes are built in
 * one place, R/errors.R. */
static void warn_classed(const char *kind, const char *msg) {
  SEXP ns = PROTECT(R_FindNamespace(PROTECT(Rf_mkString("memkit"))));
  SEXP call = PROTECT(Rf_lang4(Rf_install("mk_warn"), PROTECT(Rf_mkString(kind)),
                               PROTECT(Rf_mkString(msg)), R_NilValue));
  SET_TAG(CDR(CDDR(call)), Rf_install("call"));
  Rf_eval(call, ns);
  UNPROTECT(5);
}

static SEXP fm_duplicate(SEXP x, Rboolean deep) {
  (void) deep; /* the data has no references to copy deeply */
  fm_map *m = fm_map_of(x);
  if (m->mode == FM_READ) return fm_duplicate_private(x);
  double bytes = (double) m->length * (double) fm_elt_size(m->type);
  if (m->mode == FM_WRITE && bytes > copy_warn_bytes()) {
    char msg[4096 + 256];
    snprintf(msg, sizeof msg,
             "Copying the file-backed matrix in '%s' into memory (%.0f MB): R copies a "
             "shared matrix before changing it, and a copy of a matrix open in mode "
             "\"rw\" is an ordinary matrix. Use fm_write() to write the file.",
             Rf_translateChar(STRING_ELT(VECTOR_ELT(R_altrep_data2(x), FM_ST_PATH), 0)),
             bytes / 1e6);
    warn_classed("memory", msg);
  }
  return materialize(x);
}

/* The pointer leaves memkit's control here (R's own loops read through it),
 * so the file's size is checked first: one fstat() per call. */
static void *fm_dataptr(SEXP x, Rboolean writeable) {
  (void) writeable; /* read-only data is mapped MAP_PRIVATE: see the top */
  char *p = data_of(x);
  if (!fm_size_ok(fm_map_of(x))) fm_shrunk_error(x);
  return p;
}

/* NULL, not an error, for a shrunk file: R then reads by Get_region, which
 * signals the error under the guard. */
static const void *fm_dataptr_or_null(SEXP x) {
  fm_map *m = (fm_map *) R_ExternalPtrAddr(R_altrep_data1(x));
  if (m == NULL || !fm_size_ok(m)) return NULL;
  return m->length > 0 ? m->data : (char *) empty_data;
}

/* Elt is called once per element by R's matrix subsetting: the element
 * guard (a per-thread mark either side of the read, fm_map.h) is its only
 * added cost. One definition per element type; i < length, so the data is
 * mapped. */
#define FM_ELT_METHOD(name, ctype)                                            \
  static ctype name(SEXP x, R_xlen_t i) {                                     \
    const volatile ctype *p = (const volatile ctype *) elt_data_of(x);        \
    FM_ELT_BEGIN                                                              \
    ctype v = p[i];                                                           \
    FM_ELT_END(x)                                                             \
    return v;                                                                 \
  }
FM_ELT_METHOD(fm_real_elt, double)
FM_ELT_METHOD(fm_int_elt, int)
FM_ELT_METHOD(fm_raw_elt, Rbyte)

static R_xlen_t region(SEXP x, R_xlen_t i, R_xlen_t n, void *buf, size_t elt) {
  R_xlen_t len = fm_length(x);
  if (i < 0 || i >= len || n <= 0) return 0;
  if (n > len - i) n = len - i;
  fm_copy_guarded(x, buf, data_of(x) + (size_t) i * elt, (size_t) n * elt);
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
    /* volatile: it lives across the guard's sigsetjmp() (see fm.c) */        \
    const CTYPE *volatile src0 = (const CTYPE *) data_of(x);                   \
    CTYPE *dst = (CTYPE *) out_ptr;                                            \
    FM_GUARD_BEGIN(x)                                                          \
    const CTYPE *src = src0;                                                   \
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
    FM_GUARD_END                                                               \
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
