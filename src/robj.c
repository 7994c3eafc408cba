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

/* R code this layer has run (each Rf_eval() counts one), or that may have
 * run (an interrupt's handlers): R code could change an environment while
 * its bindings are read. */
static unsigned robj_evals = 0;

void mk_robj_check_interrupt(void) {
  robj_evals++;
  R_CheckUserInterrupt();
}

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
  robj_evals++;
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
 * variable unboxed). The lookup leaves the value in b->value, kind
 * MK_BIND_VALUE; binding_finish() then tells a promise or a missing
 * argument from a value by reading the value's node, which a large
 * environment's loop fetches ahead in between. */
static int binding_lookup(SEXP env, SEXP sym, mk_binding *b, int maybe_active) {
  memset(b, 0, sizeof *b);
  b->sym = sym;
  if (maybe_active && R_BindingIsActive(sym, env)) {
    b->kind = MK_BIND_ACTIVE;
    b->value = R_ActiveBindingFunction(sym, env);
    return 0;
  }
  SEXP v = Rf_findVarInFrame3(env, sym, FALSE);
  if (v == R_UnboundValue) return -1;
  b->kind = MK_BIND_VALUE;
  b->value = v;
  return 0;
}

static void binding_finish(mk_binding *b) {
  if (b->kind != MK_BIND_VALUE) return;
  SEXP v = b->value;
  if (v == R_MissingArg) {
    b->kind = MK_BIND_MISSING;
    b->value = NULL;
  } else if (TYPEOF(v) == PROMSXP) {
    b->promise = v;
    b->expr = PRCODE(v);
    if (PRVALUE(v) == R_UnboundValue) {
      b->kind = MK_BIND_DELAYED;
      b->env = PRENV(v);
      b->value = NULL;
    } else {
      b->kind = MK_BIND_FORCED;
      b->value = PRVALUE(v);
    }
  }
}

static int read_binding(SEXP env, SEXP sym, mk_binding *b) {
  if (binding_lookup(env, sym, b, 1) != 0) return -1;
  binding_finish(b);
  return 0;
}

#define SMALL_ENV 32

/* A growing array of bindings, from R_alloc(): R frees it when the .Call
 * returns, a long jump included. */
typedef struct { mk_binding *v; size_t n, cap; } bindbuf;

static mk_binding *bindbuf_next(bindbuf *b) {
  if (b->n == b->cap) {
    size_t cap = 2 * b->cap;
    mk_binding *v = (mk_binding *) R_alloc(cap, sizeof(mk_binding));
    if (b->n) memcpy(v, b->v, b->n * sizeof(mk_binding));
    b->v = v;
    b->cap = cap;
  }
  mk_binding *x = &b->v[b->n++];
  memset(x, 0, sizeof *x);
  return x;
}

/* Runs BODY with `cell` at the head of each chain of binding cells: the
 * frame, then each bucket of the hash table (its heads fetched ahead). */
#define FOR_EACH_CHAIN(env, cell, BODY) do {                          \
    SEXP cell = FRAME(env);                                           \
    BODY;                                                             \
    SEXP ht_ = HASHTAB(env);                                          \
    if (TYPEOF(ht_) == VECSXP) {                                      \
      R_xlen_t n_ = XLENGTH(ht_);                                     \
      const SEXP *p_ = (const SEXP *) DATAPTR_RO(ht_);                \
      for (R_xlen_t i_ = 0; i_ < n_; i_++) {                          \
        if (i_ + 16 < n_) MK_PREFETCH(p_[i_ + 16]);                   \
        cell = p_[i_];                                                \
        BODY;                                                         \
      }                                                               \
    }                                                                 \
  } while (0)

/* A large hashed environment's values are read from its cells by CAR(),
 * with no lookup. CAR() refuses (an R error) a value R keeps unboxed in its
 * cell, so the cells are first tried, inside R_tryCatchError(): if one is
 * refused, each binding is looked up instead (which boxes the value). The
 * values are then read outside it, with no R code run meanwhile (R code
 * runs on the way out of R_tryCatchError(), and could unbind a value that
 * a collection then frees). Active bindings are told apart first
 * (R_BindingIsActive(), only where R_HasFancyBindings() says there may be
 * one), so CAR() is never taken for an active binding's value. */
#define CELLS_MIN_BUCKETS 256
typedef struct { SEXP env; int refused; } cells_ctx;

static SEXP cells_try(void *data) {
  SEXP env = ((cells_ctx *) data)->env;
  FOR_EACH_CHAIN(env, cell, {
    for (; cell != R_NilValue; cell = CDR(cell)) (void) CAR(cell);
  });
  return R_NilValue;
}

static SEXP cells_refused(SEXP cond, void *data) {
  (void) cond;
  ((cells_ctx *) data)->refused = 1;
  return R_NilValue;
}

static void cells_read(SEXP env, bindbuf *out) {
  int fancy = R_HasFancyBindings(env);
  FOR_EACH_CHAIN(env, cell, {
    for (; cell != R_NilValue; cell = CDR(cell)) {
      SEXP sym = TAG(cell);
      mk_binding *b = bindbuf_next(out);
      b->sym = sym;
      if (fancy && R_BindingIsActive(sym, env)) {
        b->kind = MK_BIND_ACTIVE;
        b->value = R_ActiveBindingFunction(sym, env);
      } else {
        b->kind = MK_BIND_VALUE;
        b->value = CAR(cell);
      }
    }
  });
}

/* Each binding's symbol (symbols are never freed, cells may be if R code
 * changes the frame), then a lookup for each: a large environment's
 * symbols and names are scattered in memory, and each lookup reads both,
 * so each is fetched ahead in turn (the symbol 16 bindings ahead, its name
 * 8). */
static void lookup_all(SEXP env, bindbuf *out) {
  bindbuf syms = *out;
  FOR_EACH_CHAIN(env, cell, {
    for (; cell != R_NilValue; cell = CDR(cell)) bindbuf_next(&syms)->sym = TAG(cell);
  });
  /* An environment none of whose bindings is active or locked (most of
   * them) needs no active-flag lookup per binding. No R code runs in this
   * loop (lookups of bindings that are not active run none), so the answer
   * holds for all of it. */
  int fancy = R_HasFancyBindings(env);
  mk_binding *v = syms.v;
  size_t n = syms.n, count = 0;
  for (size_t i = 0; i < n; i++) {
    if (i + 16 < n) MK_PREFETCH(v[i + 16].sym);
    if (i + 8 < n) MK_PREFETCH(PRINTNAME(v[i + 8].sym));
    /* v[count] is filled from v[i]'s symbol: count <= i. */
    if (binding_lookup(env, v[i].sym, &v[count], fancy) != 0) continue;
    count++;
  }
  out->v = syms.v;
  out->cap = syms.cap;
  out->n = count;
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
  const void *vmax = vmaxget();
  mk_binding small[SMALL_ENV];
  bindbuf b = {small, 0, SMALL_ENV};
  SEXP ht = HASHTAB(env);
  int read = 0;
  if (TYPEOF(ht) == VECSXP && XLENGTH(ht) >= CELLS_MIN_BUCKETS) {
    cells_ctx c = {env, 0};
    R_tryCatchError(cells_try, &c, cells_refused, &c);
    if (!c.refused) {
      cells_read(env, &b);
      read = 1;
    }
  }
  if (!read) lookup_all(env, &b);
  /* fn gets each binding once its value has arrived: fetched LAG ahead.
   * The values are held only by the frame: once fn has run R code, which
   * could have changed it (and let a value read above be freed), the rest
   * are read again by symbol. */
  enum { LAG = 8 };
  unsigned evals = robj_evals;
  size_t count = 0;
  for (size_t i = 0; i < b.n; i++) {
    if (evals == robj_evals) {
      if (i + LAG < b.n) MK_PREFETCH(b.v[i + LAG].value);
    } else if (!R_existsVarInFrame(env, b.v[i].sym) ||
               binding_lookup(env, b.v[i].sym, &b.v[i], 1) != 0) {
      continue;
    }
    binding_finish(&b.v[i]);
    count++;
    if (fn) fn(&b.v[i], data);
  }
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
  robj_evals++;
  SEXP reg = Rf_eval(call, R_BaseEnv);
  UNPROTECT(2);
  int is = reg == env;
  if (is && ns_n < NS_CACHE) ns_cache[ns_n++] = env;
  return is;
}
