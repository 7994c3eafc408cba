# mem_bytes in vctrs and pillar (tibbles): methods for their generics,
# registered when those packages load, so that neither is a dependency.
#
# vctrs: mem_bytes combines with itself and with plain numbers into a
# mem_bytes (`vctrs::vec_c(mem_bytes(1), 2)`), and casts to and from double.
# pillar: a tibble shows a mem_bytes column right-aligned with its units,
# under the type "bytes".

vec_ptype2_mem_bytes <- function(x, y, ...) new_mem_bytes()
vec_cast_mem_bytes <- function(x, to, ...) new_mem_bytes(unclass(x))
vec_cast_from_mem_bytes_double <- function(x, to, ...) as.double(unclass(x))
vec_cast_from_mem_bytes_integer <- function(x, to, ...) {
  v <- as.double(unclass(x))
  if (any(!is.na(v) & (v != trunc(v) | abs(v) > .Machine$integer.max))) {
    mk_abort("type", "Can't convert bytes that are not whole numbers in integer range to integer.")
  }
  as.integer(v)
}
vec_ptype_abbr_mem_bytes <- function(x, ...) "bytes"
type_sum_mem_bytes <- function(x) "bytes"
pillar_shaft_mem_bytes <- function(x, ...) {
  s <- format(x)
  s[is.na(unclass(x))] <- NA_character_
  pillar::new_pillar_shaft_simple(s, align = "right")
}

# One row per method: the package whose generic it is, the generic, the
# class (for vctrs' double dispatch, "<x class>.<y class>") and the method.
bytes_methods <- function() {
  m <- function(pkg, generic, class, fun) list(pkg = pkg, generic = generic, class = class, fun = fun)
  list(
    m("vctrs", "vec_ptype2", "mem_bytes.mem_bytes", vec_ptype2_mem_bytes),
    m("vctrs", "vec_ptype2", "mem_bytes.double", vec_ptype2_mem_bytes),
    m("vctrs", "vec_ptype2", "double.mem_bytes", vec_ptype2_mem_bytes),
    m("vctrs", "vec_ptype2", "mem_bytes.integer", vec_ptype2_mem_bytes),
    m("vctrs", "vec_ptype2", "integer.mem_bytes", vec_ptype2_mem_bytes),
    m("vctrs", "vec_cast", "mem_bytes.mem_bytes", function(x, to, ...) x),
    m("vctrs", "vec_cast", "mem_bytes.double", vec_cast_mem_bytes),
    m("vctrs", "vec_cast", "mem_bytes.integer", vec_cast_mem_bytes),
    m("vctrs", "vec_cast", "double.mem_bytes", vec_cast_from_mem_bytes_double),
    m("vctrs", "vec_cast", "integer.mem_bytes", vec_cast_from_mem_bytes_integer),
    m("vctrs", "vec_ptype_abbr", "mem_bytes", vec_ptype_abbr_mem_bytes),
    m("pillar", "type_sum", "mem_bytes", type_sum_mem_bytes),
    m("pillar", "pillar_shaft", "mem_bytes", pillar_shaft_mem_bytes)
  )
}

# Registers the methods of `pkg` in its namespace's S3 table.
register_bytes_methods_for <- function(pkg) {
  ns <- asNamespace(pkg)
  for (m in bytes_methods()) {
    if (m$pkg == pkg) registerS3method(m$generic, m$class, m$fun, envir = ns)
  }
  invisible(pkg)
}

# Called from .onLoad(): registers now for a package already loaded, and
# from then on whenever it is loaded (again). The hooks are kept to be taken
# out again by .onUnload().
bytes_hooks <- new.env(parent = emptyenv())

register_bytes_methods <- function() {
  for (pkg in c("vctrs", "pillar")) {
    if (isNamespaceLoaded(pkg)) register_bytes_methods_for(pkg)
    hook <- bytes_onload_hook(pkg)
    bytes_hooks[[pkg]] <- hook
    setHook(packageEvent(pkg, "onLoad"), hook)
  }
  invisible()
}

unregister_bytes_hooks <- function() {
  for (pkg in ls(bytes_hooks)) {
    event <- packageEvent(pkg, "onLoad")
    ours <- bytes_hooks[[pkg]]
    keep <- Filter(function(h) !identical(h, ours), getHook(event))
    setHook(event, NULL, "replace")
    for (h in keep) setHook(event, h)
    rm(list = pkg, envir = bytes_hooks)
  }
  invisible()
}

bytes_onload_hook <- function(pkg) {
  force(pkg)
  function(...) register_bytes_methods_for(pkg)
}
