/*
 * fm.h: what src/fm.c (files, header, mapping) and src/fm_altrep.c (the ALTREP
 * classes) share. Internal to the file-backed matrix family.
 *
 * A file-backed matrix is an ALTREP vector of one of four classes (double,
 * integer, logical, raw):
 *   data1  an external pointer to an fm_map (below), which owns the mapping,
 *          the file descriptor and any scratch buffer; its C finalizer
 *          releases all three, so a longjmp at any point leaks nothing;
 *   data2  the state: list(path, type, nrow, ncol, mode, offset, header,
 *          checksum), which is also what serialize() writes.
 */
#ifndef MEMKIT_FM_H
#define MEMKIT_FM_H

#define R_NO_REMAP
#include <R.h>
#include <Rinternals.h>
#include <R_ext/Altrep.h>
#include <R_ext/Rdynload.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"

#include "fm_map.h" /* the platform layer: files, views, the guard */

typedef struct {
  void *base;       /* address fm_view_map() returned; NULL when not mapped */
  size_t map_len;   /* bytes mapped from file offset 0; the file must keep them */
  char *data;       /* first element: base + data offset */
  R_xlen_t length;  /* elements */
  int type;         /* SEXPTYPE: REALSXP, INTSXP, LGLSXP or RAWSXP */
  int mode;         /* FM_READ, FM_WRITE or FM_COPY */
  int fd;           /* open descriptor (also of a copy: its size is checked), -1 when none */
  void *scratch;    /* a malloc'd buffer in use by the current call, or NULL */
  int broken;       /* a read faulted: part of the mapping is no longer the file */
} fm_map;

/* Positions in the state list (data2). */
enum {
  FM_ST_PATH = 0, FM_ST_TYPE, FM_ST_NROW, FM_ST_NCOL, FM_ST_MODE,
  FM_ST_OFFSET, FM_ST_HEADER, FM_ST_CHECKSUM, FM_ST_LEN
};

/* fm_altrep.c */
void fm_init_altrep(DllInfo *dll);
SEXP fm_new_altrep(SEXP xp, SEXP state);   /* the object for a mapping */
int fm_is_fm(SEXP x);                      /* one of our classes? */
fm_map *fm_map_of(SEXP x);                 /* its mapping; errors if gone */
SEXP fm_state_of(SEXP x);

/* fm.c */
size_t fm_elt_size(int type);
int fm_type_from_name(const char *s);      /* NILSXP if not one of the four */
SEXP fm_attach(const char *path, int mode, int type, double nrow, double ncol,
               double offset, int header, const char *checksum);
SEXP fm_duplicate_private(SEXP x);         /* COW remap of a read-only matrix */
SEXP fm_new_map_xptr(void);                /* extptr owning an empty fm_map */
SEXP fm_fresh_state(SEXP x);               /* the state to serialize (see fm.c) */

/* fm.c, for fm_append.c (POSIX only): growing a memkit file in place. */
typedef struct {
  int type;
  double nrow, ncol, offset, size;  /* size: the file's, when opened */
  unsigned char id[16];
  char checksum[17];
} fm_grow_header;
void fm_grow_open(fm_map *m, const char *path, fm_grow_header *f);
double fm_header_need(SEXP dimnames);
int fm_grow_commit(fm_map *m, const fm_grow_header *f, double ncol, SEXP dimnames, char sum[17]);
int fm_file_extend(int fd, double size);   /* the platform primitive */
int fm_pwrite_all(int fd, const void *buf, size_t n, double at);
int fm_is_full_disk(int e);

/* ---- a file that shrinks under its mapping ----------------------------------
 *
 * Reading a mapped page past the end of its file raises SIGBUS. memkit's own
 * reads and writes of a mapping (ALTREP Elt, Get_region, Extract_subset, the
 * copies of fm_read(), fm_write(), duplicate) run between FM_GUARD_BEGIN and
 * FM_GUARD_END: a SIGBUS there long-jumps back (fm.c's handler; any other
 * SIGBUS goes on to R's handler) and becomes a classed `format` error. Data
 * pointers handed to R (Dataptr) cannot be guarded: they are given only after
 * fm_size_ok() has checked the file's size, so a file truncated before the
 * call is an error; one truncated while R's own code reads through a pointer
 * it already holds still ends the process (documented in ?fm_open).
 *
 * Inside a guarded region: no R API call, nothing that allocates, and no
 * local changed there that is used after a fault (setjmp's rules). The macros
 * FM_GUARD_BEGIN/END are the platform layer's (fm_map.h). */
void fm_shrunk_error(SEXP x) MK_NORETURN;  /* the classed error */
void fm_elt_fault(SEXP x) MK_NORETURN;     /* after FM_ELT_END saw a fault */
void fm_elt_forget(void);                  /* empties Elt's one-entry cache */
void fm_guard_check(SEXP x);               /* the error now if x's mapping is broken */
int fm_size_ok(const fm_map *m);           /* the file still covers the mapping? */
void fm_copy_guarded(SEXP x, void *dst, const void *src, size_t n); /* memcpy, guarded */


#endif
