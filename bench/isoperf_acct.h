/*
 * isoperf's measuring-window accounting (isoperf_acct.c): CPU use of the
 * process and of every core, the TSC rate for cycles per operation, the
 * window hook, and the main thread's timely wake-up. Nothing here knows
 * about connections; isoperf.c samples its own counters in between.
 */
#ifndef ISOPERF_ACCT_H
#define ISOPERF_ACCT_H

#include <stdint.h>

#define ISOPERF_MAX_CORES 256

/* One sample; /proc/stat jiffies at index 0 for all cores, i + 1 core i. */
struct isoperf_cpu {
	double wall;                /* CLOCK_MONOTONIC seconds */
	double proc;                /* user + system seconds of this process */
	int ncores;                 /* cores listed (0: /proc/stat unreadable) */
	unsigned long long busy[ISOPERF_MAX_CORES + 1];
	unsigned long long total[ISOPERF_MAX_CORES + 1];
};

double isoperf_now(void);
void isoperf_cpu_sample(struct isoperf_cpu *s);
/* Busy share of slot i (0 all cores, i + 1 core i) between two samples, %. */
double isoperf_cpu_pct(const struct isoperf_cpu *a, const struct isoperf_cpu *b, int i);

/* TSC ticks per second: the kernel's figure, or 20 ms of calibration
 * against CLOCK_MONOTONIC (busy); 0 where there is no TSC. */
double isoperf_tsc_hz(void);

/*
 * Run `cmd what` and wait for it, without the shim's variables in its
 * environment. Returns 0 when cmd is NULL or it exited 0, else -1 after
 * printing why. Exits the process when it cannot fork at all.
 */
int isoperf_window_hook(const char *cmd, const char *what);

/* Give the calling (main) thread a real-time priority if permitted, so
 * the window's edges are on time among CONNS busy threads. */
void isoperf_window_clock(void);

#endif /* ISOPERF_ACCT_H */
