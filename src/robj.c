/*
 * robj.c: R's objects through R's API, one branch per API generation
 * (see robj.h for what each generation uses and the bounds of R >= 4.6).
 */
#include <string.h>

#include <R_ext/Memory.h>

#include "robj.h"
#include "utils.h"

/* ---- attributes -------------------------------------------------------- */

#if MK_ROBJ_API_ONLY

int mk_robj_has_attrs(SEXP x) {
  return TYPEOF(x) != CHARSXP && mk_robj_has_attrs_t(x);
}

typedef struct { mk_attr_fn fn; void *data; int n; } attr_map;

static SEXP attr_map_one(SEXP tag, SEXP value, void *data) {
  attr_map *m = data;
  m->n++;
  if (m->fn) m->fn(tag, value, m->data);
  return NULL;
}

int mk_robj_attrs(SEXP x, mk_attr_fn fn, void *data) {
  if (!mk_robj_has_attrs(x)) return 0;
  attr_map m = {fn, data, 0};
  R_mapAttrib(x, attr_map_one, &m);
  return m.n;
}

typedef struct { SEXP sym, value; } attr_find;

static SEXP attr_find_one(SEXP tag, SEXP value, void *data) {
  attr_find *f = data;
  if (tag != f->sym) return NULL;
  f->value = value;
  return value;
}

SEXP mk_robj_attr(SEXP x, SEXP sym) {
  if (!mk_robj_has_attrs(x)) return R_NilValue;
  attr_find f = {sym, R_NilValue};
  R_mapAttrib(x, attr_find_one, &f);
  return f.value;
}

#else

int mk_robj_has_attrs(SEXP x) {
  return TYPEOF(x) != CHARSXP && mk_robj_has_attrs_t(x);
}

int mk_robj_attrs(SEXP x, mk_attr_fn fn, void *data) {
  if (TYPEOF(x) == CHARSXP) return 0;
  int n = 0;
  for (SEXP a = ATTRIB(x); a != R_NilValue; a = CDR(a)) {
    n++;
    if (fn) fn(TAG(a), CAR(a), data);
  }
  return n;
}

SEXP mk_robj_attr(SEXP x, SEXP sym) {
  if (TYPEOF(x) == CHARSXP) return R_NilValue;
  for (SEXP a = ATTRIB(x); a != R_NilValue; a = CDR(a)) {
    if (TAG(a) == sym) return CAR(a);
  }
  return R_NilValue;
}

#endif

/* ---- closures and parents ---------------------------------------------- */

#if R_VERSION >= R_Version(4, 5, 0)
SEXP mk_robj_closure_formals(SEXP x) { return R_ClosureFormals(x); }
SEXP mk_robj_closure_body(SEXP x) { return R_ClosureBody(x); }
SEXP mk_robj_closure_env(SEXP x) { return R_ClosureEnv(x); }
SEXP mk_robj_env_parent(SEXP x) { return R_ParentEnv(x); }
#else
SEXP mk_robj_closure_formals(SEXP x) { return FORMALS(x); }
SEXP mk_robj_closure_body(SEXP x) { return BODY(x); }
SEXP mk_robj_closure_env(SEXP x) { return CLOENV(x); }
SEXP mk_robj_env_parent(SEXP x) { return ENCLOS(x); }
#endif

/* ---- vectors ----------------------------------------------------------- */

R_xlen_t mk_robj_capacity(SEXP x) {
  return mk_robj_capacity_len(x, XLENGTH(x));
}

/* ---- bindings ---------------------------------------------------------- */

/* attach()ed object tables: only their own R code can list or read them. */
static int is_user_database(SEXP env) {
  return Rf_isObject(env) && Rf_inherits(env, "UserDefinedDatabase");
}

#if MK_ROBJ_API_ONLY

static int binding_kind_of(R_BindingType_t t) {
  switch (t) {
  case R_BindingTypeValue: return MK_BIND_VALUE;
  case R_BindingTypeMissing: return MK_BIND_MISSING;
  case R_BindingTypeDelayed: return MK_BIND_DELAYED;
  case R_BindingTypeForced: return MK_BIND_FORCED;
  case R_BindingTypeActive: return MK_BIND_ACTIVE;
  default: return -1;
  }
}

int mk_robj_binding_kind(SEXP env, SEXP sym) {
  if (!R_existsVarInFrame(env, sym)) return -1;
  return binding_kind_of(R_GetBindingType(sym, env));
}

/* Fill b for sym in env. R_getVar() is called only where it evaluates
 * nothing: a plain value, or a promise already forced (whose value eval()
 * returns as it is). */
static int read_binding(SEXP env, SEXP sym, mk_binding *b) {
  memset(b, 0, sizeof *b);
  b->sym = sym;
  b->kind = binding_kind_of(R_GetBindingType(sym, env));
  switch (b->kind) {
  case MK_BIND_VALUE:
    b->value = R_getVar(sym, env, FALSE);
    break;
  case MK_BIND_DELAYED:
    b->expr = R_DelayedBindingExpression(sym, env);
    b->env = R_DelayedBindingEnvironment(sym, env);
    break;
  case MK_BIND_FORCED:
    b->expr = R_ForcedBindingExpression(sym, env);
    b->value = R_getVar(sym, env, FALSE);
    break;
  case MK_BIND_ACTIVE:
    b->value = R_ActiveBindingFunction(sym, env);
    break;
  case MK_BIND_MISSING:
    break;
  default:
    return -1;
  }
  return 0;
}

R_xlen_t mk_robj_bindings(SEXP env, mk_binding_fn fn, void *data) {
  if (is_user_database(env)) return 0;
  SEXP names = PROTECT(R_lsInternal3(env, TRUE, FALSE));
  R_xlen_t n = XLENGTH(names), count = 0;
  for (R_xlen_t i = 0; i < n; i++) {
    SEXP sym = Rf_installTrChar(STRING_ELT(names, i));
    mk_binding b;
    if (read_binding(env, sym, &b) != 0) continue;
    count++;
    if (fn) fn(&b, data);
  }
  UNPROTECT(1);
  return count;
}

/* No API gives the hash table; env.profile() reports its size. */
R_xlen_t mk_robj_env_buckets(SEXP env) {
  if (env == R_BaseEnv || env == R_BaseNamespace || env == R_EmptyEnv ||
      is_user_database(env))
    return 0;
  SEXP call = PROTECT(Rf_lang2(Rf_install("env.profile"), env));
  SEXP prof = PROTECT(Rf_eval(call, R_BaseEnv));
  R_xlen_t n = 0;
  if (TYPEOF(prof) == VECSXP && XLENGTH(prof) >= 1) {
    SEXP size = VECTOR_ELT(prof, 0);
    if (TYPEOF(size) == INTSXP && XLENGTH(size) == 1 && INTEGER(size)[0] > 0)
      n = INTEGER(size)[0];
  }
  UNPROTECT(2);
  return n;
}

/* A promise met outside a binding is bound, for a moment, in a scratch
 * environment of memkit's own, so that the binding functions can read it. */
static SEXP scratch_env = NULL, scratch_sym = NULL;

void mk_robj_promise(SEXP p, SEXP *expr, SEXP *value, SEXP *env) {
  *expr = *value = *env = NULL;
  if (scratch_env == NULL) {
    SEXP e = R_NewEnv(R_EmptyEnv, FALSE, 0);
    R_PreserveObject(e);
    scratch_env = e;
    scratch_sym = Rf_install(".memkit_promise");
  }
  Rf_defineVar(scratch_sym, p, scratch_env);
  mk_binding b;
  if (read_binding(scratch_env, scratch_sym, &b) == 0) {
    *expr = b.expr;
    *value = b.value;
    *env = b.env;
  }
  Rf_defineVar(scratch_sym, R_NilValue, scratch_env);
}

#else /* R < 4.6 */

int mk_robj_binding_kind(SEXP env, SEXP sym) {
  if (!R_existsVarInFrame(env, sym)) return -1;
  if (R_BindingIsActive(sym, env)) return MK_BIND_ACTIVE;
  SEXP v = Rf_findVarInFrame3(env, sym, FALSE);
  if (v == R_UnboundValue) return -1;
  if (v == R_MissingArg) return MK_BIND_MISSING;
  if (TYPEOF(v) == PROMSXP) return PRVALUE(v) == R_UnboundValue ? MK_BIND_DELAYED : MK_BIND_FORCED;
  return MK_BIND_VALUE;
}

/* The active flag is checked first: Rf_findVarInFrame3() would call an
 * active binding. It also boxes an immediate value, which CAR() of the cell
 * would refuse ("bad binding access"; R keeps a byte-compiled loop's
 * variable unboxed). */
static int read_binding(SEXP env, SEXP sym, mk_binding *b) {
  memset(b, 0, sizeof *b);
  b->sym = sym;
  if (R_BindingIsActive(sym, env)) {
    b->kind = MK_BIND_ACTIVE;
    b->value = R_ActiveBindingFunction(sym, env);
    return 0;
  }
  SEXP v = Rf_findVarInFrame3(env, sym, FALSE);
  if (v == R_UnboundValue) return -1;
  if (v == R_MissingArg) {
    b->kind = MK_BIND_MISSING;
  } else if (TYPEOF(v) == PROMSXP) {
    b->promise = v;
    b->expr = PRCODE(v);
    if (PRVALUE(v) == R_UnboundValue) {
      b->kind = MK_BIND_DELAYED;
      b->env = PRENV(v);
    } else {
      b->kind = MK_BIND_FORCED;
      b->value = PRVALUE(v);
    }
  } else {
    b->kind = MK_BIND_VALUE;
    b->value = v;
  }
  return 0;
}

/* The bindings' cells, in frame then hash-table order: on the C stack for
 * a small environment, else in memory from R_alloc(), which R frees when
 * the .Call returns, a long jump included. */
#define SMALL_ENV 32
typedef struct { SEXP *v; size_t n, cap; } cellbuf;

static void cellbuf_chain(cellbuf *b, SEXP cell) {
  for (; cell != R_NilValue; cell = CDR(cell)) {
    if (b->n == b->cap) {
      size_t cap = 2 * b->cap;
      SEXP *v = (SEXP *) R_alloc(cap, sizeof(SEXP));
      if (b->n) memcpy(v, b->v, b->n * sizeof(SEXP));
      b->v = v;
      b->cap = cap;
    }
    b->v[b->n++] = cell;
  }
}

R_xlen_t mk_robj_bindings(SEXP env, mk_binding_fn fn, void *data) {
  if (is_user_database(env)) return 0;
  if (env == R_BaseEnv || env == R_BaseNamespace) {
    /* Base keeps its bindings in the symbols themselves. */
    SEXP names = PROTECT(R_lsInternal3(env, TRUE, FALSE));
    R_xlen_t n = XLENGTH(names), count = 0;
    for (R_xlen_t i = 0; i < n; i++) {
      mk_binding b;
      if (read_binding(env, Rf_installTrChar(STRING_ELT(names, i)), &b) != 0) continue;
      count++;
      if (fn) fn(&b, data);
    }
    UNPROTECT(1);
    return count;
  }
  /* First the cells (bucket heads fetched ahead), then a lookup for each:
   * a large environment's cells, symbols and names are scattered in memory,
   * and each lookup reads all three, so each is fetched ahead in turn (the
   * cell 24 bindings ahead, its symbol 16 ahead, the symbol's name 8). */
  const void *vmax = vmaxget();
  SEXP small_cells[SMALL_ENV];
  mk_binding small_bd[SMALL_ENV];
  cellbuf b = {small_cells, 0, SMALL_ENV};
  cellbuf_chain(&b, FRAME(env));
  SEXP ht = HASHTAB(env);
  if (TYPEOF(ht) == VECSXP) {
    R_xlen_t n = XLENGTH(ht);
    const SEXP *p = (const SEXP *) DATAPTR_RO(ht);
    for (R_xlen_t i = 0; i < n; i++) {
      if (i + 16 < n) MK_PREFETCH(p[i + 16]);
      if (p[i] != R_NilValue) cellbuf_chain(&b, p[i]);
    }
  }
  /* Each value is fetched as it is found and handed to fn LAG bindings
   * later, when it has arrived. */
  enum { LAG = 8 };
  mk_binding *bd = b.n <= SMALL_ENV ? small_bd : (mk_binding *) R_alloc(b.n, sizeof(mk_binding));
  size_t count = 0, done = 0;
  for (size_t i = 0; i < b.n; i++) {
    if (i + 24 < b.n) MK_PREFETCH(b.v[i + 24]);
    if (i + 16 < b.n) MK_PREFETCH(TAG(b.v[i + 16]));
    if (i + 8 < b.n) MK_PREFETCH(PRINTNAME(TAG(b.v[i + 8])));
    if (read_binding(env, TAG(b.v[i]), &bd[count]) != 0) continue;
    if (bd[count].value != NULL) MK_PREFETCH(bd[count].value);
    count++;
    if (fn && count > LAG) fn(&bd[done++], data);
  }
  if (fn) while (done < count) fn(&bd[done++], data);
  vmaxset(vmax);
  return (R_xlen_t) count;
}

R_xlen_t mk_robj_env_buckets(SEXP env) {
  if (env == R_BaseEnv || env == R_BaseNamespace || env == R_EmptyEnv ||
      is_user_database(env))
    return 0;
  SEXP ht = HASHTAB(env);
  return TYPEOF(ht) == VECSXP ? XLENGTH(ht) : 0;
}

void mk_robj_promise(SEXP p, SEXP *expr, SEXP *value, SEXP *env) {
  *expr = PRCODE(p);
  SEXP v = PRVALUE(p);
  *value = v == R_UnboundValue ? NULL : v;
  *env = v == R_UnboundValue ? PRENV(p) : NULL;
}

#endif

/* ---- namespaces -------------------------------------------------------- */

/* Confirmed namespaces since the last reset: a walk meets the same few
 * namespaces over and over (every package function's environment). */
#define NS_CACHE 256
static SEXP ns_cache[NS_CACHE];
static int ns_n = 0;

void mk_robj_reset(void) { ns_n = 0; }

/* The value bound to sym in env if it is a plain value, else NULL: never a
 * promise forced or an active binding called. */
static SEXP plain_value(SEXP env, SEXP sym) {
  if (mk_robj_binding_kind(env, sym) != MK_BIND_VALUE) return NULL;
#if MK_ROBJ_API_ONLY
  return R_getVar(sym, env, FALSE);
#else
  return Rf_findVarInFrame3(env, sym, FALSE);
#endif
}

/* A namespace holds `.__NAMESPACE__.`, an environment whose `spec` names
 * it, and is the one R's registry holds under that name. R_IsNamespaceEnv()
 * would read `spec` even when it is an active binding, and believes a
 * look-alike. */
int mk_robj_is_namespace(SEXP env) {
  if (env == R_BaseNamespace) return 1;
  for (int i = 0; i < ns_n; i++) if (ns_cache[i] == env) return 1;
  if (is_user_database(env)) return 0;
  SEXP info = plain_value(env, R_NamespaceEnvSymbol);
  if (info == NULL || TYPEOF(info) != ENVSXP) return 0;
  SEXP spec = plain_value(info, Rf_install("spec"));
  if (spec == NULL || TYPEOF(spec) != STRSXP || XLENGTH(spec) < 1 ||
      STRING_ELT(spec, 0) == NA_STRING)
    return 0;
  /* .getNamespace() looks the name up in the registry; it loads nothing. */
  SEXP call = PROTECT(Rf_lang2(Rf_install(".getNamespace"),
                               PROTECT(Rf_ScalarString(STRING_ELT(spec, 0)))));
  SEXP reg = Rf_eval(call, R_BaseEnv);
  UNPROTECT(2);
  int is = reg == env;
  if (is && ns_n < NS_CACHE) ns_cache[ns_n++] = env;
  return is;
}
