/*
 * bench/common/sys.h — Linux helpers shared by the benchmarks and the demos:
 * finding a thread by name and pinning it to a CPU (engine workers are
 * named "emx:<device>", e.g. "emx:cpu0"), a process's resident set, the
 * load average, and whole reads and writes on pipes.
 */
#ifndef EMX_BENCH_COMMON_SYS_H
#define EMX_BENCH_COMMON_SYS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* bench_thread_named returns the id of a thread of process pid (0: this
 * process) whose name (/proc/.../comm, at most 15 characters) is `name`;
 * the first found when several share it, 0 when none does. */
pid_t bench_thread_named(pid_t pid, const char *name);

/* bench_pin sets the CPU affinity of thread tid (0: the calling thread) to
 * CPU `cpu` alone, or to every online CPU when cpu < 0. Threads created
 * afterwards by that thread inherit it, and so do forked children. 0, or -1
 * with errno set. */
int bench_pin(pid_t tid, int cpu);

/* bench_rss_kib returns the resident set size of process pid (0: this
 * process) in KiB, or -1. */
long bench_rss_kib(pid_t pid);

/* bench_loadavg returns the machine's 1-minute load average, -1 if
 * unknown: printed with each figure, as other work on the machine skews
 * it. */
double bench_loadavg(void);

/* bench_read_full reads exactly size bytes from fd, through signals. With
 * deadline_ns > 0 (an emx_now_ns() time) it gives up then; with 0 it
 * waits as long as it takes. 0, or -1 on an error, end of file or the
 * deadline. */
int bench_read_full(int fd, void *buf, size_t size, int64_t deadline_ns);

/* bench_write_full writes all size bytes to fd, through signals; 0 or -1. */
int bench_write_full(int fd, const void *buf, size_t size);

#endif
