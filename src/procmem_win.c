/*
 * procmem_win.c: the process's memory on Windows (the interface:
 * procmem.h), from GetProcessMemoryInfo(): the working set is what Windows
 * calls resident memory, and PeakWorkingSetSize its peak since the process
 * started. Windows cannot reset that peak, so mem_peak() uses it only when
 * the expression raised it and otherwise samples (R/profile.R).
 */
#if defined(_WIN32)

#ifndef WIN32_LEAN_AND_MEAN
# define WIN32_LEAN_AND_MEAN
#endif
#if !defined(PSAPI_VERSION)
# define PSAPI_VERSION 2
#endif
#include <windows.h>
#include <psapi.h>
#include <malloc.h>

#include "procmem.h"

int mk_mem_open(void) {
  return -1;
}

void mk_mem_close(int h) {
  (void) h;
}

static int counters(PROCESS_MEMORY_COUNTERS *pmc) {
  return GetProcessMemoryInfo(GetCurrentProcess(), pmc, sizeof *pmc) != 0;
}

double mk_mem_resident(int h) {
  (void) h;
  PROCESS_MEMORY_COUNTERS pmc;
  if (!counters(&pmc)) return -1;
  return (double) pmc.WorkingSetSize;
}

double mk_mem_peak(const char **source) {
  PROCESS_MEMORY_COUNTERS pmc;
  if (!counters(&pmc)) {
    *source = NULL;
    return -1;
  }
  *source = "PeakWorkingSetSize";
  return (double) pmc.PeakWorkingSetSize;
}

int mk_mem_peak_reset(void) {
  return 0;
}

/* _heapmin() returns the C runtime heap's free blocks to the system; it
 * cannot say how much, so success counts as "some". */
int mk_mem_trim(void) {
  return _heapmin() == 0 ? 1 : 0;
}

#else
/* ISO C wants something in every file. */
typedef int procmem_win_elsewhere;
#endif /* _WIN32 */
