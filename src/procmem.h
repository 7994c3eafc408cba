/*
 * procmem.h: the process's memory as the system reports it. One file per
 * platform implements it:
 *
 *   procmem_posix.c  Linux (/proc/self/statm, VmHWM in /proc/self/status,
 *                    /proc/self/clear_refs, glibc's malloc_trim()) and
 *                    macOS (Mach task_info(): MACH_TASK_BASIC_INFO's
 *                    resident_size, TASK_VM_INFO's resident_size_peak;
 *                    malloc_zone_pressure_relief()); getrusage() elsewhere.
 *   procmem_win.c    Windows (GetProcessMemoryInfo(): WorkingSetSize and
 *                    PeakWorkingSetSize; _heapmin()).
 *
 * No R here (the Windows file is also built without R by
 * tools/windows-test.sh): sizes in bytes, -1 when the system can't tell.
 * Every function is safe from any thread. utils.c and sampler.c turn -1 into
 * NA for R.
 */
#ifndef MEMKIT_PROCMEM_H
#define MEMKIT_PROCMEM_H

/* A handle to keep open for frequent readings (Linux: a descriptor of
 * /proc/self/statm), or -1 where none is needed or on failure (errno set). */
int mk_mem_open(void);
void mk_mem_close(int h);

/* Resident memory now: resident set (Linux, macOS), working set (Windows). */
double mk_mem_resident(int h);

/* The highest resident memory, and what it is (*source, a static string):
 * "VmHWM" since the last reset (Linux), "resident_size_peak" (macOS),
 * "PeakWorkingSetSize" (Windows) or "ru_maxrss" since the process started.
 * -1 with *source NULL when there is none. */
double mk_mem_peak(const char **source);

/* Reset the peak to the current resident memory: 1 if the system did (Linux
 * >= 4.0), 0 where it can't. */
int mk_mem_peak_reset(void);

/* Give the C allocator's free memory back to the system: 1 if some was, 0 if
 * none was, -1 where there is no way to. */
int mk_mem_trim(void);

#endif
