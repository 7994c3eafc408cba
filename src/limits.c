/*
 * limits.c: the readings behind mem_limits() and mem_available() that need
 * the C library or the system's own calls. Linux's /proc and cgroup files
 * are read in R (R/limits.R); here are getrlimit() and, on macOS and
 * Windows, the system's memory figures.
 */
#if !defined(_WIN32)
# define _POSIX_C_SOURCE 200809L
# if defined(__APPLE__)
#  define _DARWIN_C_SOURCE
# endif
#endif

#include "memkit.h"
#include "errors.h"

#if defined(_WIN32)
# include <windows.h>
# include <psapi.h>
#else
# include <sys/resource.h>
# if defined(__APPLE__)
#  include <mach/mach.h>
#  include <sys/sysctl.h>
#  include <sys/types.h>
# endif
#endif

static SEXP named_reals(const char **names, const double *values, int n) {
  SEXP out = PROTECT(Rf_allocVector(REALSXP, n));
  SEXP nms = PROTECT(Rf_allocVector(STRSXP, n));
  for (int i = 0; i < n; i++) {
    REAL(out)[i] = values[i];
    SET_STRING_ELT(nms, i, Rf_mkChar(names[i]));
  }
  Rf_setAttrib(out, R_NamesSymbol, nms);
  UNPROTECT(2);
  return out;
}

#if !defined(_WIN32)
/* The soft limit of a resource in bytes: Inf when unlimited, NA when it
 * cannot be read. */
static double soft_limit(int resource) {
  struct rlimit rl;
  if (getrlimit(resource, &rl) != 0) return NA_REAL;
  if (rl.rlim_cur == RLIM_INFINITY) return R_PosInf;
  return (double) rl.rlim_cur;
}
#endif

/* c(as = , data = ): RLIMIT_AS and RLIMIT_DATA (NA on Windows). */
SEXP ffi_limits_rlimit(void) {
  const char *names[] = {"as", "data"};
  double v[2] = {NA_REAL, NA_REAL};
#if !defined(_WIN32)
  v[0] = soft_limit(RLIMIT_AS);
# ifdef RLIMIT_DATA
  v[1] = soft_limit(RLIMIT_DATA);
# endif
#endif
  return named_reals(names, v, 2);
}

/* The system's memory where there is no /proc/meminfo: c(total, available,
 * swap_total, swap_free, job_limit, job_used), NA where unknown.
 * macOS: hw.memsize; available = free + inactive + purgeable pages, which
 * the system hands out without paging (what Activity Monitor's "memory
 * used" leaves); vm.swapusage. Windows: GlobalMemoryStatusEx() (the page
 * file for swap) and the limits of a job object the process runs in, with
 * the process's committed memory. */
SEXP ffi_limits_system(void) {
  const char *names[] = {"total", "available", "swap_total", "swap_free", "job_limit", "job_used"};
  double v[6] = {NA_REAL, NA_REAL, NA_REAL, NA_REAL, NA_REAL, NA_REAL};
#if defined(__APPLE__)
  uint64_t memsize = 0;
  size_t len = sizeof memsize;
  if (sysctlbyname("hw.memsize", &memsize, &len, NULL, 0) == 0) v[0] = (double) memsize;
  vm_statistics64_data_t vm;
  mach_msg_type_number_t count = HOST_VM_INFO64_COUNT;
  vm_size_t page = 0;
  if (host_page_size(mach_host_self(), &page) == KERN_SUCCESS &&
      host_statistics64(mach_host_self(), HOST_VM_INFO64, (host_info64_t) &vm, &count) == KERN_SUCCESS) {
    v[1] = ((double) vm.free_count + (double) vm.inactive_count + (double) vm.purgeable_count) *
      (double) page;
  }
  struct xsw_usage sw;
  len = sizeof sw;
  if (sysctlbyname("vm.swapusage", &sw, &len, NULL, 0) == 0) {
    v[2] = (double) sw.xsu_total;
    v[3] = (double) sw.xsu_avail;
  }
#elif defined(_WIN32)
  MEMORYSTATUSEX ms;
  ms.dwLength = sizeof ms;
  if (GlobalMemoryStatusEx(&ms)) {
    v[0] = (double) ms.ullTotalPhys;
    v[1] = (double) ms.ullAvailPhys;
    /* The page file's share of the commit limit. */
    if (ms.ullTotalPageFile >= ms.ullTotalPhys) {
      v[2] = (double) (ms.ullTotalPageFile - ms.ullTotalPhys);
      v[3] = (double) ms.ullAvailPageFile;
      if (v[3] > v[2]) v[3] = v[2];
    }
  }
  JOBOBJECT_EXTENDED_LIMIT_INFORMATION job;
  if (QueryInformationJobObject(NULL, JobObjectExtendedLimitInformation, &job, sizeof job, NULL)) {
    DWORD flags = job.BasicLimitInformation.LimitFlags;
    double lim = R_PosInf;
    if (flags & JOB_OBJECT_LIMIT_PROCESS_MEMORY) lim = (double) job.ProcessMemoryLimit;
    if ((flags & JOB_OBJECT_LIMIT_JOB_MEMORY) && (double) job.JobMemoryLimit < lim) {
      lim = (double) job.JobMemoryLimit;
    }
    if (R_FINITE(lim)) {
      v[4] = lim;
      PROCESS_MEMORY_COUNTERS_EX pmc;
      if (K32GetProcessMemoryInfo(GetCurrentProcess(), (PROCESS_MEMORY_COUNTERS *) &pmc, sizeof pmc)) {
        v[5] = (double) pmc.PrivateUsage;
      }
    }
  }
#endif
  return named_reals(names, v, 6);
}
