/*
 * procmem_posix.c: the process's memory on Linux, macOS and other
 * Unix-alikes (the interface: procmem.h).
 */
#if !defined(_WIN32)

#if defined(__APPLE__)
/* _DARWIN_C_SOURCE, never _POSIX_C_SOURCE, before the Mach headers: strict
 * POSIX hides the BSD types (u_int, ...) that <mach/mach.h> and
 * <malloc/malloc.h> use. */
# define _DARWIN_C_SOURCE
#else
# define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>
#ifdef __GLIBC__
# include <malloc.h>
#endif
#ifdef __APPLE__
# include <mach/mach.h>
# include <malloc/malloc.h>
#endif

#include "procmem.h"

int mk_mem_open(void) {
#if defined(__linux__)
  return open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
#else
  return -1;
#endif
}

void mk_mem_close(int h) {
  if (h >= 0) close(h);
}

double mk_mem_resident(int h) {
#if defined(__linux__)
  /* statm: size resident shared text lib data dt, in pages. One pread() of a
   * small buffer at offset 0 re-reads the file without reopening it; cheaper
   * than parsing /proc/self/status. */
  if (h < 0) return -1;
  long page = sysconf(_SC_PAGESIZE);
  char buf[256];
  ssize_t n = pread(h, buf, sizeof buf - 1, 0);
  if (n <= 0) return -1;
  buf[n] = '\0';
  unsigned long size = 0, resident = 0;
  if (sscanf(buf, "%lu %lu", &size, &resident) != 2) return -1;
  return (double) resident * (double) page;
#elif defined(__APPLE__)
  (void) h;
  mach_task_basic_info_data_t info;
  mach_msg_type_number_t count = MACH_TASK_BASIC_INFO_COUNT;
  if (task_info(mach_task_self(), MACH_TASK_BASIC_INFO, (task_info_t) &info, &count) != KERN_SUCCESS)
    return -1;
  return (double) info.resident_size;
#else
  (void) h;
  return -1;
#endif
}

/* VmHWM from /proc/self/status in bytes, or -1. */
static double read_hwm(void) {
#if defined(__linux__)
  FILE *f = fopen("/proc/self/status", "re");
  if (f == NULL) return -1;
  char line[256];
  double out = -1;
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned long kb;
    if (sscanf(line, "VmHWM: %lu kB", &kb) == 1) {
      out = (double) kb * 1024.0;
      break;
    }
  }
  fclose(f);
  return out;
#else
  return -1;
#endif
}

double mk_mem_peak(const char **source) {
  double bytes = read_hwm();
  if (bytes >= 0) {
    *source = "VmHWM";
    return bytes;
  }
#if defined(__APPLE__)
  /* The peak of the resident size MACH_TASK_BASIC_INFO reports, the very
   * quantity the sampler reads (ru_maxrss is the same figure through BSD).
   * Any revision of task_vm_info has it: REV0 is enough. */
  task_vm_info_data_t vm;
  mach_msg_type_number_t count = TASK_VM_INFO_COUNT;
  if (task_info(mach_task_self(), TASK_VM_INFO, (task_info_t) &vm, &count) == KERN_SUCCESS &&
      count >= TASK_VM_INFO_REV0_COUNT) {
    *source = "resident_size_peak";
    return (double) vm.resident_size_peak;
  }
#endif
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) == 0) {
    *source = "ru_maxrss";
#if defined(__APPLE__)
    return (double) ru.ru_maxrss;          /* bytes on macOS */
#else
    return (double) ru.ru_maxrss * 1024.0; /* kilobytes elsewhere */
#endif
  }
  *source = NULL;
  return -1;
}

int mk_mem_peak_reset(void) {
#if defined(__linux__)
  int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = write(fd, "5", 1);
  close(fd);
  return n == 1;
#else
  return 0;
#endif
}

int mk_mem_trim(void) {
#if defined(__GLIBC__)
  return malloc_trim(0) ? 1 : 0;
#elif defined(__APPLE__)
  /* Every zone (NULL), as much as it can (goal 0): bytes released. */
  return malloc_zone_pressure_relief(NULL, 0) > 0 ? 1 : 0;
#else
  return -1;
#endif
}

#else
/* ISO C wants something in every file. */
typedef int procmem_posix_elsewhere;
#endif /* !_WIN32 */
