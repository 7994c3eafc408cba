/*
 * fm_import.c: the parser of fm_import() (R/fm-import.R).
 *
 * The bytes of the file sit in a reader (an external pointer) that owns
 * its buffer from call to call: a plain file is read here with pread(), a
 * compressed one is read by R through gzfile() (so gzip, bzip2 and xz need
 * nothing here) and handed over a block at a time. These functions split
 * lines and fields and turn fields into numbers; a chunk of numbers goes
 * straight into the new matrix's file with pwrite() (ffi_fm_import_parse's
 * `out`), or back to R when it has factor columns to code.
 *
 * Numbers are converted the way R's own reader converts them (read.csv(),
 * scan(), type.convert()), so the results are identical to theirs, bit for
 * bit: every digit accumulated in a long double, then one multiplication or
 * division by a power of ten that was itself built in long double by
 * repeated squaring, then rounded to double. (A correctly rounded strtod()
 * differs from R in the last bit for a few numbers in ten thousand.) Digits
 * go into a 64-bit integer while they fit, which gives the same long double
 * exactly and is several times faster.
 *
 * A field is: optional blanks, then either a quoted string ("..." with ""
 * for a quote inside) or bytes up to the separator, then optional blanks.
 * Quoted fields may not span lines. Errors are returned to R as a
 * description (line, field, reason, text), never signalled from here: R
 * raises the classed `parse` error with the file's name.
 */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#ifndef _WIN32
# include <pthread.h>
#endif
#include <stdlib.h>
#include <string.h>

#include "memkit.h"
#include "errors.h"
#include "fm.h"
#include "fm_map.h"

enum { KIND_SKIP = 0, KIND_NUMBER = 1, KIND_STRING = 2 };
enum { ERR_NONE = 0, ERR_FIELDS = 1, ERR_NUMBER = 2, ERR_QUOTE = 3, ERR_NUL = 4 };

/* ---- numbers ------------------------------------------------------------- */

#define POW_MAX 400
static long double pow10_tab[POW_MAX];
static int pow10_ready = 0;

/* 10^k as R builds it: by squaring, in long double. */
static long double pow10_sq(int k) {
  long double p10 = 10.0L, fac = 1.0L;
  for (int n = k; n; n >>= 1, p10 *= p10)
    if (n & 1) fac *= p10;
  return fac;
}

static void pow10_init(void) {
  if (pow10_ready) return;
  for (int k = 0; k < POW_MAX; k++) pow10_tab[k] = pow10_sq(k);
  pow10_ready = 1;
}

static int ci_prefix(const char *p, const char *end, const char *word) {
  size_t n = strlen(word);
  if ((size_t) (end - p) < n) return 0;
  for (size_t k = 0; k < n; k++)
    if (tolower((unsigned char) p[k]) != word[k]) return 0;
  return 1;
}

/* Hexadecimal (rare in text files): the C library's reader. */
static int parse_hex(const char *s, const char *end, double *out) {
  char buf[64];
  size_t n = (size_t) (end - s);
  if (n >= sizeof buf) return 0;
  memcpy(buf, s, n);
  buf[n] = '\0';
  char *e;
  double v = strtod(buf, &e);
  if (e != buf + n) return 0;
  *out = v;
  return 1;
}

/* The digits' value `ans` (ndigits of them) times 10^expn, with the sign,
 * as R computes it: one long double multiplication or division by a power
 * of ten, then rounded to double. */
static inline double scale(long double ans, int expn, int ndigits, int sign) {
  if (expn + ndigits < -300) {
    for (int n = 0; n < ndigits; n++) ans /= 10.0L;
    expn += ndigits;
  }
  if (expn < -307) {
    long double p10 = 10.0L, fac = 1.0L;
    for (int n = -expn; n; n >>= 1, p10 *= p10)
      if (n & 1) fac /= p10;
    ans *= fac;
  } else if (expn < 0) {
    ans /= pow10_tab[-expn];
  } else if (ans != 0.0L) {
    ans *= expn < POW_MAX ? pow10_tab[expn] : pow10_sq(expn);
  }
  if (ans > DBL_MAX) return sign > 0 ? R_PosInf : R_NegInf;
  return sign * (double) ans;
}

/* The number in [p, end) (no blanks), or 0 when it is not one. */
static int parse_number(const char *p, const char *end, double *out) {
  const char *s = p;
  int sign = 1;
  if (p < end && (*p == '-' || *p == '+')) { if (*p == '-') sign = -1; p++; }
  if (p == end) return 0;
  if (!((*p >= '0' && *p <= '9') || *p == '.')) {
    if (ci_prefix(p, end, "nan") && p + 3 == end) { *out = R_NaN; return 1; }
    if (ci_prefix(p, end, "infinity") && p + 8 == end) { *out = sign * R_PosInf; return 1; }
    if (ci_prefix(p, end, "inf") && p + 3 == end) { *out = sign * R_PosInf; return 1; }
    return 0;
  }
  if (end - p > 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) return parse_hex(s, end, out);
  uint64_t u = 0;
  long double ans = 0;
  int ndigits = 0, big = 0, expn = 0;
  for (; p < end && *p >= '0' && *p <= '9'; p++, ndigits++) {
    if (!big && u < UINT64_C(1000000000000000000)) u = u * 10 + (uint64_t) (*p - '0');
    else { if (!big) { ans = (long double) u; big = 1; } ans = 10 * ans + (*p - '0'); }
  }
  if (p < end && *p == '.') {
    for (p++; p < end && *p >= '0' && *p <= '9'; p++, ndigits++, expn--) {
      if (!big && u < UINT64_C(1000000000000000000)) u = u * 10 + (uint64_t) (*p - '0');
      else { if (!big) { ans = (long double) u; big = 1; } ans = 10 * ans + (*p - '0'); }
    }
  }
  if (ndigits == 0) return 0;
  if (!big) ans = (long double) u;
  if (p < end && (*p == 'e' || *p == 'E')) {
    int esign = 1, n = 0, nd = 0;
    p++;
    if (p < end && (*p == '-' || *p == '+')) { if (*p == '-') esign = -1; p++; }
    for (; p < end && *p >= '0' && *p <= '9'; p++, nd++) n = n < 9999 ? n * 10 + (*p - '0') : n;
    if (nd == 0) return 0;
    expn += esign * n;
  }
  if (p != end) return 0;
  *out = scale(ans, expn, ndigits, sign);
  return 1;
}

/* The number at p, for the common case only: [+-]digits[.digits][(e|E)[+-]digits]
 * with at most as many digits as parse_number() keeps in its 64-bit integer,
 * ending at the separator or at `end` (the line's content end). Returns 1
 * with the value and *after (the separator or `end`), or 0 when the field
 * is anything else (blanks, quotes, NA strings, hexadecimal, too many
 * digits, not a number): parse_number() and the general path decide then.
 * The arithmetic is parse_number()'s (scale()), so the bits are the same;
 * only the scanning is fused with the search for the separator. The caller
 * makes sure `sep` can't be part of a number. */
static inline int fast_number(const char *p, const char *end, char sep, double *out,
                              const char **after) {
  int sign = 1;
  if (p < end && (*p == '-' || *p == '+')) { if (*p == '-') sign = -1; p++; }
  uint64_t u = 0;
  int ndigits = 0, expn = 0;
  unsigned d;
  for (; p < end && (d = (unsigned) (unsigned char) *p - '0') <= 9; p++, ndigits++) {
    if (u >= UINT64_C(1000000000000000000)) return 0;
    u = u * 10 + d;
  }
  if (p < end && *p == '.') {
    for (p++; p < end && (d = (unsigned) (unsigned char) *p - '0') <= 9; p++, ndigits++, expn--) {
      if (u >= UINT64_C(1000000000000000000)) return 0;
      u = u * 10 + d;
    }
  }
  if (ndigits == 0) return 0;
  if (p < end && (*p == 'e' || *p == 'E')) {
    int esign = 1, n = 0, nd = 0;
    p++;
    if (p < end && (*p == '-' || *p == '+')) { if (*p == '-') esign = -1; p++; }
    for (; p < end && (d = (unsigned) (unsigned char) *p - '0') <= 9; p++, nd++)
      n = n < 9999 ? n * 10 + (int) d : n;
    if (nd == 0) return 0;
    expn += esign * n;
  }
  if (p < end && *p != sep) return 0;
  *out = scale((long double) u, expn, ndigits, sign);
  *after = p;
  return 1;
}

/* ---- lines and fields ----------------------------------------------------- */

typedef struct {
  char sep;
  int quote;            /* the quote character, or -1 */
} dialect;

/* One field starting at p in the line [p, end): its contents [*fs, *fe)
 * (quotes removed; a quoted field with "" inside is copied to `tmp` with
 * the doubling undone), whether it was quoted, and where the next field
 * starts (NULL after the last). Returns ERR_NONE or ERR_QUOTE. */
static int next_field(const char *p, const char *end, const dialect *d, const char **fs,
                      const char **fe, int *quoted, const char **next, char **tmp, size_t *tmp_cap) {
  while (p < end && (*p == ' ' || *p == '\t') && *p != d->sep) p++;
  *quoted = 0;
  if (d->quote >= 0 && p < end && *p == (char) d->quote) {
    const char *q = p + 1;
    int doubled = 0;
    for (;;) {
      const char *c = memchr(q, d->quote, (size_t) (end - q));
      if (c == NULL) return ERR_QUOTE;
      if (c + 1 < end && c[1] == (char) d->quote) { doubled = 1; q = c + 2; continue; }
      *fs = p + 1;
      *fe = c;
      q = c + 1;
      break;
    }
    *quoted = 1;
    if (doubled) {
      size_t n = (size_t) (*fe - *fs);
      if (n + 1 > *tmp_cap) {
        char *b = (char *) realloc(*tmp, n + 1);
        if (b == NULL) return ERR_QUOTE;
        *tmp = b;
        *tmp_cap = n + 1;
      }
      size_t k = 0;
      for (const char *c = *fs; c < *fe; c++) {
        (*tmp)[k++] = *c;
        if (*c == (char) d->quote) c++;
      }
      *fs = *tmp;
      *fe = *tmp + k;
    }
    while (q < end && (*q == ' ' || *q == '\t') && *q != d->sep) q++;
    if (q == end) { *next = NULL; return ERR_NONE; }
    if (*q != d->sep) return ERR_QUOTE;
    *next = q + 1;
    return ERR_NONE;
  }
  if (p >= end) { *fs = *fe = end; *next = NULL; return ERR_NONE; }
  const char *c = memchr(p, d->sep, (size_t) (end - p));
  const char *e = c == NULL ? end : c;
  *fs = p;
  while (e > p && (e[-1] == ' ' || e[-1] == '\t') && e[-1] != d->sep) e--;
  *fe = e;
  *next = c == NULL ? NULL : c + 1;
  return ERR_NONE;
}

/* The end of the line starting at p (the '\n', or `end` when there is none,
 * which counts as a line only at the end of the file), and its content end
 * without a '\r'. */
static const char *line_end(const char *p, const char *end, const char **content_end) {
  const char *nl = memchr(p, '\n', (size_t) (end - p));
  const char *e = nl == NULL ? end : nl;
  *content_end = (e > p && e[-1] == '\r') ? e - 1 : e;
  return nl;
}

static int is_blank(const char *p, const char *e) {
  for (; p < e; p++) if (*p != ' ' && *p != '\t') return 0;
  return 1;
}

/* The NA strings as C strings, read once on the main thread. */
typedef struct {
  int n;
  const char **s;
  size_t *len;
} na_set;

static int na_match(const char *s, size_t n, const na_set *na) {
  for (int i = 0; i < na->n; i++)
    if (na->len[i] == n && memcmp(na->s[i], s, n) == 0) return 1;
  return 0;
}

static double num_arg(SEXP x, const char *what) {
  if ((TYPEOF(x) != REALSXP && TYPEOF(x) != INTSXP) || XLENGTH(x) != 1)
    mk_error("argument", "`%s` must be a number.", what);
  double v = Rf_asReal(x);
  if (!R_FINITE(v) || v < 0) mk_error("argument", "`%s` must be a non-negative number.", what);
  return v;
}

static dialect dialect_arg(SEXP sep, SEXP quote) {
  dialect d;
  if (TYPEOF(sep) != STRSXP || XLENGTH(sep) != 1 || LENGTH(STRING_ELT(sep, 0)) != 1)
    mk_error("argument", "`sep` must be a single character.");
  d.sep = CHAR(STRING_ELT(sep, 0))[0];
  d.quote = -1;
  if (TYPEOF(quote) == STRSXP && XLENGTH(quote) == 1 && LENGTH(STRING_ELT(quote, 0)) == 1)
    d.quote = (unsigned char) CHAR(STRING_ELT(quote, 0))[0];
  if (d.sep == '\n' || d.sep == '\r' || d.sep == (char) d.quote)
    mk_error("argument", "`sep` can't be a line end or the quote character.");
  return d;
}

/* Whether fields can be scanned by fast_number(): neither the separator nor
 * the quote can be part of a number. */
static int number_safe(const dialect *d) {
  const char *num = "0123456789+-.eE";
  return d->sep != '\0' && strchr(num, d->sep) == NULL && (d->quote < 0 || strchr(num, d->quote) == NULL);
}

/* ---- rows ----------------------------------------------------------------- */

/* Rows [r0, r1) of the values matrix from the line at p. The only R API use
 * is for string fields (strings != NULL), which run on the main thread. */
typedef struct {
  dialect d;
  const int *kind;
  int nf;
  const na_set *na;
  double *v;
  int nrow;
  SEXP strings;
  const char *p, *end;
  int r0, r1;
  int fast;             /* whether fast_number() may be tried (number_safe()) */
  /* out */
  int r, err, err_field;
  double lines;
  const char *p_end, *err_s, *err_e, *err_line, *err_ce;
} job;

static void parse_job(job *J) {
  const char *p = J->p, *end = J->end, *ce;
  char *tmp = NULL;
  size_t cap = 0;
  int r = J->r0, nf = J->nf;
  const int *kind = J->kind;
  double *v = J->v;
  size_t nr = (size_t) J->nrow;
  J->err = ERR_NONE;
  J->lines = 0;
  while (r < J->r1) {
    const char *nl = line_end(p, end, &ce);
    const char *lp = p;
    p = nl == NULL ? end : nl + 1;
    J->lines++;
    if (is_blank(lp, ce)) continue;
    const char *q = lp, *fs, *fe, *next = lp;
    int quoted, col = 0, str = 0, j = 0, err = ERR_NONE;
    for (j = 0; j < nf; j++) {
      if (next == NULL) { err = ERR_FIELDS; break; }
      const char *raw = next;
      if (kind[j] == KIND_NUMBER && J->fast) {
        const char *a;
        double x;
        if (fast_number(next, ce, J->d.sep, &x, &a) && !na_match(next, (size_t) (a - next), J->na)) {
          v[(size_t) col * nr + (size_t) r] = x;
          col++;
          next = a == ce ? NULL : a + 1;
          continue;
        }
      }
      if (next_field(next, ce, &J->d, &fs, &fe, &quoted, &q, &tmp, &cap) != ERR_NONE) {
        err = ERR_QUOTE; J->err_field = j + 1; J->err_s = next; J->err_e = ce; break;
      }
      next = q;
      if (kind[j] == KIND_SKIP) continue;
      size_t len = (size_t) (fe - fs);
      if (kind[j] == KIND_NUMBER) {
        double x;
        if (len == 0 || na_match(fs, len, J->na)) x = NA_REAL;
        else if (!parse_number(fs, fe, &x)) {
          err = ERR_NUMBER; J->err_field = j + 1;
          /* The text as it is in the line: an unquoted copy in tmp is
           * freed below. */
          J->err_s = quoted ? raw : fs;
          J->err_e = quoted ? (q == NULL ? ce : q - 1) : fe;
          break;
        }
        v[(size_t) col * nr + (size_t) r] = x;
      } else {
        if (memchr(fs, 0, len) != NULL) { err = ERR_NUL; J->err_field = j + 1; break; }
        v[(size_t) col * nr + (size_t) r] = NA_REAL;
        SEXP s = (!quoted && na_match(fs, len, J->na)) ? NA_STRING :
          Rf_mkCharLenCE(fs, (int) len, CE_NATIVE);
        SET_STRING_ELT(VECTOR_ELT(J->strings, str), r, s);
        str++;
      }
      col++;
    }
    if (err == ERR_NONE && next != NULL) err = ERR_FIELDS;
    if (err != ERR_NONE) { J->err = err; J->err_line = lp; J->err_ce = ce; break; }
    r++;
  }
  free(tmp);
  J->r = r;
  J->p_end = p;
}

#ifndef _WIN32
static void *parse_thread(void *arg) {
  parse_job((job *) arg);
  return NULL;
}
#endif

/* The second job (if any) on a thread of its own; the first here. */
static void run_jobs(job *jobs, int n) {
#ifndef _WIN32
  pthread_t t;
  if (n == 2 && pthread_create(&t, NULL, parse_thread, &jobs[1]) == 0) {
    parse_job(&jobs[0]);
    pthread_join(t, NULL);
    return;
  }
#endif
  for (int k = 0; k < n; k++) parse_job(&jobs[k]);
}

/* ---- the reader ------------------------------------------------------------ */

/* The bytes read and not parsed yet, [buf + pos, buf + len), owned by C and
 * kept from call to call (no R vector per block, so no garbage for R's
 * collector). A plain file is read here, with its descriptor; the bytes of a
 * compressed one are handed over by R, which reads them through gzfile(). */
typedef struct {
  int fd;              /* the plain file, or -1 */
  double offset;       /* its next byte to read */
  char *buf;
  size_t cap, pos, len;
  int eof;             /* no bytes after buf's */
  int has;             /* count_lines()'s state while counting */
  double *vals;        /* the numbers of a chunk written by C (parse_write) */
  size_t vals_cap;
} reader;

static void reader_free(reader *R) {
  if (R == NULL) return;
  if (R->fd >= 0) fm_file_close(R->fd);
  free(R->buf);
  free(R->vals);
  free(R);
}

static void reader_finalizer(SEXP xp) {
  reader_free((reader *) R_ExternalPtrAddr(xp));
  R_ClearExternalPtr(xp);
}

static reader *reader_of(SEXP xp) {
  if (TYPEOF(xp) != EXTPTRSXP || R_ExternalPtrTag(xp) != Rf_install("memkit_import_reader") ||
      R_ExternalPtrAddr(xp) == NULL)
    mk_error("state", "The text reader is closed.");
  return (reader *) R_ExternalPtrAddr(xp);
}

/* A reader of `path`: a plain file (compressed FALSE) is opened here; for a
 * compressed one R feeds the bytes (ffi_fm_import_fill()). */
SEXP ffi_fm_import_open(SEXP path, SEXP compressed) {
  if (TYPEOF(path) != STRSXP || XLENGTH(path) != 1 || STRING_ELT(path, 0) == NA_STRING)
    mk_error("argument", "`path` must be a string.");
  SEXP xp = PROTECT(R_MakeExternalPtr(NULL, Rf_install("memkit_import_reader"), R_NilValue));
  R_RegisterCFinalizerEx(xp, reader_finalizer, TRUE);
  reader *R = (reader *) calloc(1, sizeof(reader));
  if (R == NULL) mk_error("memory", "Can't allocate the text reader.");
  R->fd = -1;
  R_SetExternalPtrAddr(xp, R);
  /* Never NULL, so the pointers into it are always valid. */
  R->buf = (char *) malloc(1);
  if (R->buf == NULL) mk_error("memory", "Can't allocate the text reader.");
  R->cap = 1;
  if (Rf_asLogical(compressed) != TRUE) {
    const char *p = Rf_translateChar(STRING_ELT(path, 0));
    int64_t size;
    const char *kind;
    int fd = fm_file_open(p, 0, &size, &kind);
    if (fd < 0) mk_error_sys("file", errno, p, "Can't open '%s'", p);
    R->fd = fd;
  }
  UNPROTECT(1);
  return xp;
}

/* Closes the file and frees the buffers now (the finalizer would later). */
SEXP ffi_fm_import_close(SEXP xp) {
  if (TYPEOF(xp) == EXTPTRSXP && R_ExternalPtrTag(xp) == Rf_install("memkit_import_reader"))
    reader_finalizer(xp);
  return R_NilValue;
}

/* Room for `more` bytes after the unparsed ones, which move to the start. */
static void reader_room(reader *R, size_t more) {
  size_t left = R->len - R->pos;
  if (R->pos > 0) {
    if (left > 0) memmove(R->buf, R->buf + R->pos, left);
    R->pos = 0;
    R->len = left;
  }
  if (left + more > R->cap) {
    size_t cap = left + more;
    char *b = (char *) realloc(R->buf, cap);
    if (b == NULL) mk_error("memory", "Can't allocate %.0f bytes to read the file.", (double) cap);
    R->buf = b;
    R->cap = cap;
  }
}

/* Up to n bytes of fd at `at` into buf: the bytes read (fewer only at the
 * end of the file), or -1 with errno. */
static int64_t read_full(int fd, char *buf, size_t n, double at) {
  size_t got = 0;
  while (got < n) {
    int64_t k = fm_file_pread(fd, buf + got, n - got, (int64_t) at + (int64_t) got);
    if (k < 0) return -1;
    if (k == 0) break;
    got += (size_t) k;
  }
  return (int64_t) got;
}

/* More bytes after the unparsed ones: of a plain file, up to `block` read
 * here; of a compressed one, `more` (raw), with `eof` saying whether they
 * are the last. Returns whether the file has ended (no bytes after these). */
SEXP ffi_fm_import_fill(SEXP xp, SEXP more, SEXP eof, SEXP block) {
  reader *R = reader_of(xp);
  if (R->eof) return Rf_ScalarLogical(TRUE);
  if (R->fd >= 0) {
    double bl = num_arg(block, "block");
    if (bl < 1 || bl > 1073741824.0) mk_error("argument", "`block` must be between 1 and 2^30.");
    size_t m = (size_t) bl;
    reader_room(R, m);
    int64_t got = read_full(R->fd, R->buf + R->len, m, R->offset);
    if (got < 0) mk_error_sys("file", errno, NULL, "Can't read the file");
    R->len += (size_t) got;
    R->offset += (double) got;
    if ((size_t) got < m) R->eof = 1;
  } else {
    if (TYPEOF(more) != RAWSXP) mk_error("argument", "`more` must be raw.");
    size_t m = (size_t) XLENGTH(more);
    reader_room(R, m);
    if (m > 0) memcpy(R->buf + R->len, RAW(more), m);
    R->len += m;
    R->eof = Rf_asLogical(eof) == TRUE;
  }
  return Rf_ScalarLogical(R->eof);
}

/* Skip `skip` lines, then split the next line into fields and move past it.
 * NULL when the buffer holds no complete line yet (and the file goes on):
 * R feeds more and calls again; FALSE when the file ended first. */
SEXP ffi_fm_import_line(SEXP xp, SEXP skip, SEXP sep, SEXP quote) {
  int nprot = 0;
  reader *R = reader_of(xp);
  dialect d = dialect_arg(sep, quote);
  double sk = num_arg(skip, "skip");
  const char *b = R->buf, *end = R->buf + R->len;
  const char *p = b + R->pos, *ce;
  for (double k = 0; k < sk; k++) {
    const char *nl = p < end ? line_end(p, end, &ce) : NULL;
    if (nl == NULL) {
      if (R->eof) { p = end; break; }
      return R_NilValue;
    }
    p = nl + 1;
  }
  if (p == end) {
    if (!R->eof) return R_NilValue;
    R->pos = R->len;
    return Rf_ScalarLogical(FALSE);
  }
  const char *nl = line_end(p, end, &ce);
  if (nl == NULL && !R->eof) return R_NilValue;
  /* Count, then collect. */
  int n = 0;
  const char *q = p, *fs, *fe, *next;
  int quoted;
  char *tmp = NULL;
  size_t cap = 0;
  for (;;) {
    if (next_field(q, ce, &d, &fs, &fe, &quoted, &next, &tmp, &cap) != ERR_NONE) {
      free(tmp);
      mk_error("parse", "The header line has an unterminated quote.");
    }
    n++;
    if (next == NULL) break;
    q = next;
  }
  SEXP fields = PROTECT(Rf_allocVector(STRSXP, n)); nprot++;
  q = p;
  for (int k = 0; k < n; k++) {
    next_field(q, ce, &d, &fs, &fe, &quoted, &next, &tmp, &cap);
    if (memchr(fs, 0, (size_t) (fe - fs)) != NULL) {
      free(tmp);
      mk_error("parse", "The header line has a NUL byte (is the file text?).");
    }
    SEXP s = Rf_mkCharLenCE(fs, (int) (fe - fs), CE_NATIVE);
    SET_STRING_ELT(fields, k, s);
    q = next;
  }
  free(tmp);
  R->pos = (size_t) ((nl == NULL ? end : nl + 1) - b);
  UNPROTECT(nprot);
  return fields;
}

/* Lines with content in [p, end) (blank lines do not count, as read.csv()
 * skips them), line ends found with memchr(). *has carries whether the line
 * that continues past `end` has content so far. */
static double count_lines(const char *p, const char *end, int *has) {
  double n = 0;
  int h = *has;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t) (end - p));
    const char *e = nl == NULL ? end : nl;
    if (!h) {
      const char *q = p;
      while (q < e && (*q == ' ' || *q == '\t' || *q == '\r')) q++;
      h = q < e;
    }
    if (nl == NULL) break;
    n += h;
    h = 0;
    p = nl + 1;
  }
  *has = h;
  return n;
}

/* Lines with content from here on: the buffer's, which are used up, then of
 * a plain file the rest of it (read into a scratch buffer, the reader's
 * left at the file's end); at the file's end an unterminated last line
 * counts. For a compressed file R feeds the next bytes and calls again until
 * the file ends. */
SEXP ffi_fm_import_count(SEXP xp) {
  reader *R = reader_of(xp);
  double n = count_lines(R->buf + R->pos, R->buf + R->len, &R->has);
  R->pos = R->len;
  if (R->fd >= 0 && !R->eof) {
    size_t block = (size_t) 8 << 20;
    char *buf = R_alloc(block, 1);
    for (;;) {
      int64_t got = read_full(R->fd, buf, block, R->offset);
      if (got < 0) mk_error_sys("file", errno, NULL, "Can't read the file");
      n += count_lines(buf, buf + got, &R->has);
      R->offset += (double) got;
      if ((size_t) got < block) break;
    }
    R->eof = 1;
  }
  if (R->eof) { n += R->has; R->has = 0; }
  return Rf_ScalarReal(n);
}

/* Parse up to `max_rows` data lines from the reader's buffer, moving past
 * them. `kinds` gives each field's kind (KIND_*); numbers go to a double
 * matrix of rows x (the number of KIND_NUMBER and KIND_STRING fields),
 * strings to one character vector per KIND_STRING field (their matrix
 * column is left NA for R to fill with codes). `na`: the strings that mean
 * NA (an empty field is NA too). When `out` is a file-backed matrix and
 * every kept field is a number, the rows go straight into its file at row
 * `at` (0-based) of each column, with pwrite() (not through the mapping,
 * so its pages do not count in this process's resident memory), and values
 * is NULL. Returns list(values, strings, rows, lines, error): lines is the
 * lines consumed (blank ones included), error NULL or list(line, field,
 * reason, text) with line counted from `first_line` (the number of the
 * first line parsed). Nothing is written when there is an error. */
SEXP ffi_fm_import_parse(SEXP xp, SEXP kinds, SEXP sep, SEXP quote, SEXP na, SEXP max_rows,
                         SEXP first_line, SEXP out, SEXP at) {
  int nprot = 0;
  reader *RD = reader_of(xp);
  if (TYPEOF(kinds) != INTSXP || TYPEOF(na) != STRSXP)
    mk_error("argument", "`kinds` must be integer and `na` character.");
  pow10_init();
  dialect d = dialect_arg(sep, quote);
  const char *b = RD->buf, *end = RD->buf + RD->len;
  double mr = num_arg(max_rows, "max_rows"), line0 = num_arg(first_line, "first_line");
  int at_eof = RD->eof;
  int nf = (int) XLENGTH(kinds);
  const int *kind = INTEGER(kinds);
  int nout = 0, nstr = 0;
  for (int j = 0; j < nf; j++) {
    if (kind[j] != KIND_SKIP && kind[j] != KIND_NUMBER && kind[j] != KIND_STRING)
      mk_error("argument", "`kinds` must be 0, 1 or 2.");
    if (kind[j] != KIND_SKIP) nout++;
    if (kind[j] == KIND_STRING) nstr++;
  }
  if (nf == 0) mk_error("argument", "`kinds` is empty.");
  fm_map *m = NULL;
  double at_row = 0, out_nrow = 0, data_off = 0;
  if (out != R_NilValue) {
    if (!fm_is_fm(out)) mk_error("type", "`out` must be a file-backed matrix.");
    m = fm_map_of(out);
    if (m->mode != FM_WRITE || m->fd < 0 || m->type != REALSXP)
      mk_error("state", "`out` must be a double matrix open in mode \"rw\".");
    out_nrow = REAL(VECTOR_ELT(fm_state_of(out), FM_ST_NROW))[0];
    if (REAL(VECTOR_ELT(fm_state_of(out), FM_ST_NCOL))[0] != (double) nout)
      mk_error("argument", "`out` must have a column per kept field.");
    at_row = num_arg(at, "at");
    data_off = (double) (m->data - (char *) m->base);
    if (nstr > 0) m = NULL;   /* codes are R's work: values go back to R */
  }

  /* Pass 1: the rows this call takes, and where the second half starts. */
  const char *p0 = b + RD->pos, *p = p0, *ce;
  double rows = 0;
  while (rows < mr && p < end) {
    const char *nl = line_end(p, end, &ce);
    if (nl == NULL && !at_eof) break;
    if (!is_blank(p, ce)) rows++;
    p = nl == NULL ? end : nl + 1;
  }
  const char *mid = NULL;
  double mid_lines = 0;
  if (nstr == 0 && rows >= 20000) {
    double half = floor(rows / 2), seen = 0;
    const char *q = p0;
    while (q < end) {
      const char *nl = line_end(q, end, &ce);
      if (!is_blank(q, ce)) { if (seen == half) { mid = q; break; } seen++; }
      mid_lines++;
      q = nl == NULL ? end : nl + 1;
    }
  }
  if (rows > INT_MAX || rows * (double) nout > (double) R_XLEN_T_MAX ||
      rows * (double) nout * sizeof(double) > (double) SIZE_MAX)
    mk_error("argument", "`max_rows` is too large.");
  if (m != NULL && at_row + rows > out_nrow)
    mk_error("argument", "The rows go past the end of `out` (the file has more rows than counted).");
  int nr = (int) rows;
  SEXP values = R_NilValue;
  double *v;
  if (m != NULL) {
    size_t need = (size_t) nr * (size_t) nout;
    if (need > RD->vals_cap) {
      double *nv = (double *) realloc(RD->vals, (need > 0 ? need : 1) * sizeof(double));
      if (nv == NULL) mk_error("memory", "Can't allocate a chunk of %d rows.", nr);
      RD->vals = nv;
      RD->vals_cap = need;
    }
    v = RD->vals;
  } else {
    values = PROTECT(Rf_allocMatrix(REALSXP, nr, nout)); nprot++;
    v = REAL(values);
  }
  SEXP strings = PROTECT(Rf_allocVector(VECSXP, nstr)); nprot++;
  for (int k = 0; k < nstr; k++) SET_VECTOR_ELT(strings, k, Rf_allocVector(STRSXP, nr));

  /* Pass 2: the fields, in two threads when the rows are many and all the
   * kept fields are numbers (strings need R's allocator, main thread only). */
  na_set nas;
  nas.n = (int) XLENGTH(na);
  nas.s = (const char **) R_alloc((size_t) nas.n + 1, sizeof(char *));
  nas.len = (size_t *) R_alloc((size_t) nas.n + 1, sizeof(size_t));
  for (int i = 0; i < nas.n; i++) {
    nas.s[i] = CHAR(STRING_ELT(na, i));
    nas.len[i] = (size_t) LENGTH(STRING_ELT(na, i));
  }
  job jobs[2];
  int njobs = mid != NULL ? 2 : 1;
  for (int k = 0; k < 2; k++) {
    job *J = &jobs[k];
    memset(J, 0, sizeof *J);
    J->d = d; J->kind = kind; J->nf = nf; J->na = &nas; J->v = v; J->nrow = nr;
    J->fast = number_safe(&d);
    J->strings = nstr > 0 ? strings : NULL;
    J->end = end;
  }
  if (njobs == 2) {
    jobs[0].p = p0; jobs[0].r0 = 0; jobs[0].r1 = nr / 2;
    jobs[1].p = mid; jobs[1].r0 = nr / 2; jobs[1].r1 = nr;
  } else {
    jobs[0].p = p0; jobs[0].r0 = 0; jobs[0].r1 = nr;
  }
  run_jobs(jobs, njobs);
  /* The first error in file order; the lines consumed. */
  job *E = jobs[0].err != ERR_NONE ? &jobs[0] : (njobs == 2 && jobs[1].err != ERR_NONE ? &jobs[1] : NULL);
  double lines = njobs == 2 ? mid_lines + jobs[1].lines : jobs[0].lines;
  double err_line_no = E == NULL ? 0 : (E == &jobs[1] ? mid_lines : 0) + E->lines;
  int r = E == NULL ? nr : E->r;
  p = njobs == 2 ? jobs[1].p_end : jobs[0].p_end;
  if (E != NULL) { lines = err_line_no; p = E->p_end; }
  int err = E == NULL ? ERR_NONE : E->err, err_field = E == NULL ? 0 : E->err_field;
  const char *err_s = E == NULL ? NULL : E->err_s, *err_e = E == NULL ? NULL : E->err_e;
  const char *err_line = E == NULL ? NULL : E->err_line, *err_ce = E == NULL ? NULL : E->err_ce;

  SEXP error = R_NilValue;
  if (err != ERR_NONE) {
    /* For a ragged row: the fields it has. */
    int nfields = 0;
    if (err == ERR_FIELDS) {
      const char *q = err_line, *fs, *fe, *next;
      int quoted;
      char *t2 = NULL;
      size_t c2 = 0;
      for (;;) {
        if (next_field(q, err_ce, &d, &fs, &fe, &quoted, &next, &t2, &c2) != ERR_NONE) break;
        nfields++;
        if (next == NULL) break;
        q = next;
      }
      free(t2);
    }
    error = PROTECT(Rf_allocVector(VECSXP, 4)); nprot++;
    SET_VECTOR_ELT(error, 0, Rf_ScalarReal(line0 + err_line_no - 1));
    SET_VECTOR_ELT(error, 1, Rf_ScalarInteger(err == ERR_FIELDS ? nfields : err_field));
    SET_VECTOR_ELT(error, 2, Rf_ScalarInteger(err));
    size_t tl = err_s == NULL ? 0 : (size_t) (err_e - err_s);
    if (tl > 80) tl = 80;
    SET_VECTOR_ELT(error, 3, Rf_ScalarString(Rf_mkCharLenCE(err_s == NULL ? "" : err_s, (int) tl,
                                                           CE_NATIVE)));
  } else if (m != NULL && nr > 0) {
    for (int c = 0; c < nout; c++) {
      int rc = fm_pwrite_all(m->fd, v + (size_t) c * (size_t) nr, (size_t) nr * sizeof(double),
                             data_off + ((double) c * out_nrow + at_row) * (double) sizeof(double));
      if (rc != 0)
        mk_error_sys(fm_is_full_disk(rc) ? "disk" : "file", rc,
                     Rf_translateChar(STRING_ELT(VECTOR_ELT(fm_state_of(out), FM_ST_PATH), 0)),
                     "Can't write the matrix's file");
    }
  }
  RD->pos = (size_t) (p - b);
  SEXP res = PROTECT(Rf_allocVector(VECSXP, 5)); nprot++;
  SET_VECTOR_ELT(res, 0, values);
  SET_VECTOR_ELT(res, 1, strings);
  SET_VECTOR_ELT(res, 2, Rf_ScalarReal((double) r));
  SET_VECTOR_ELT(res, 3, Rf_ScalarReal(lines));
  SET_VECTOR_ELT(res, 4, error);
  UNPROTECT(nprot);
  return res;
}
