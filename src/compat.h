/*
 * compat.h: version guards, and the only place for access that R's API lacks.
 *
 * Every use of something outside R's documented API must live here, behind a
 * macro with a comment saying why no API exists. Nothing here today: memkit
 * reaches R only through API entry points (tools/symbols.sh checks the built
 * library against tools/nonapi.txt).
 */
#ifndef MEMKIT_COMPAT_H
#define MEMKIT_COMPAT_H

#include <Rversion.h>

#if defined(__GNUC__) || defined(__clang__)
# define MK_NORETURN __attribute__((noreturn))
# define MK_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
# define MK_NORETURN
# define MK_PRINTF(a, b)
#endif

#endif
