/*
 * fm.h: what src/fm.c (files, header, mapping) and src/fm_altrep.c (the ALTREP
 * classes) share. Internal to the file-backed matrix family.
 *
 * A file-backed matrix is an ALTREP vector of one of four classes (double,
 * integer, logical, raw):
 *   data1  an external pointer to an fm_map (below), which owns the mapping
 *          and the file descriptor; its C finalizer unmaps and closes;
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

/* Modes. FM_COPY is a private copy-on-write view made by duplicating a
 * read-only matrix: it starts equal to the file, never writes it, and is
 * serialized by value. */
enum { FM_READ = 0, FM_WRITE = 1, FM_COPY = 2 };

typedef struct {
  void *base;       /* address mmap() returned; NULL when not mapped */
  size_t map_len;   /* bytes mapped from file offset 0 */
  char *data;       /* first element: base + data offset */
  R_xlen_t length;  /* elements */
  int type;         /* SEXPTYPE: REALSXP, INTSXP, LGLSXP or RAWSXP */
  int mode;         /* FM_READ, FM_WRITE or FM_COPY */
  int fd;           /* open descriptor, -1 when none */
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
SEXP fm_attach(const char *path, int mode, int type, double nrow, double ncol,
               double offset, int header, const char *checksum);
SEXP fm_duplicate_private(SEXP x);         /* COW remap of a read-only matrix */
SEXP fm_new_map_xptr(void);                /* extptr owning an empty fm_map */

#endif
