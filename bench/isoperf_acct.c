/*
 * isoperf's window accounting: what the client samples at the edges of
 * its measuring window besides its own message counts. CPU time comes
 * from two places: getrusage for this process (user + system, all its
 * threads) and /proc/stat for every core (jiffies, 100 Hz: a 1 s window
 * has 1% resolution per core). The TSC rate turns this process's CPU
 * seconds into cycles per operation, comparable with the daemon's
 * loop.busy_cycles. The window hook lets a caller snapshot other counters
 * (isostat -r) at the same edges.
 */
#include "isoperf_acct.h"

#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

double isoperf_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- CPU accounting -------------------------------------------------- */

/* One "cpu" or "cpuN" line into slot i (busy = total less idle, iowait). */
static void cpu_line(struct isoperf_cpu *s, int i, const char *rest)
{
	unsigned long long v[8] = { 0 };

	if (sscanf(rest, "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
		   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) < 4)
		return;
	s->total[i] = 0;
	for (int k = 0; k < 8; k++)
		s->total[i] += v[k];
	s->busy[i] = s->total[i] - v[3] - v[4];
}

void isoperf_cpu_sample(struct isoperf_cpu *s)
{
	struct rusage ru;
	char line[512];
	FILE *f;

	s->wall = isoperf_now();
	getrusage(RUSAGE_SELF, &ru);
	s->proc = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
		  ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
	memset(s->busy, 0, sizeof(s->busy));
	memset(s->total, 0, sizeof(s->total));
	s->ncores = 0;
	f = fopen("/proc/stat", "r");
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL && strncmp(line, "cpu", 3) == 0) {
		char *end;
		long core;

		if (line[3] == ' ') {
			cpu_line(s, 0, line + 4);
			continue;
		}
		core = strtol(line + 3, &end, 10);
		if (end == line + 3 || core < 0 || core >= ISOPERF_MAX_CORES)
			continue;
		cpu_line(s, (int)core + 1, end);
		if (core + 1 > s->ncores)
			s->ncores = (int)core + 1;
	}
	fclose(f);
}

double isoperf_cpu_pct(const struct isoperf_cpu *a, const struct isoperf_cpu *b, int i)
{
	if (b->total[i] <= a->total[i])
		return 0;
	return 100.0 * (double)(b->busy[i] - a->busy[i]) /
	       (double)(b->total[i] - a->total[i]);
}

double isoperf_tsc_hz(void)
{
#if defined(__x86_64__) || defined(__i386__)
	FILE *f = fopen("/sys/devices/system/cpu/cpu0/tsc_freq_khz", "r");
	unsigned long long khz = 0, c0, c1;
	double t0, t1;

	if (f != NULL) {
		int n = fscanf(f, "%llu", &khz);

		fclose(f);
		if (n == 1 && khz > 0)
			return khz * 1e3;
	}
	t0 = isoperf_now();
	c0 = __rdtsc();
	do
		t1 = isoperf_now();
	while (t1 - t0 < 0.020);
	c1 = __rdtsc();
	return (double)(c1 - c0) / (t1 - t0);
#else
	return 0;
#endif
}

/* ---- The window hook (--window-cmd) ----------------------------------- */

/* The shim's own variables: the hook must not run under it. */
static bool shim_var(const char *e)
{
	static const char *const names[] = {
		"LD_PRELOAD=", "ISOSTACK_CONTROL=", "ISOSTACK_REQUIRE=",
		"ISOSTACK_DISABLE=", "ISOSTACK_INHERIT=", "ISOSOCK_",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strncmp(e, names[i], strlen(names[i])) == 0)
			return true;
	return false;
}

/* The environment is copied without the shim's variables before fork, so
 * the child only calls execve (async-signal-safe) in a multi-threaded
 * process. Under the shim, fork and execve are its own (the child is a
 * member of the attachment until the exec drops the library). */
int isoperf_window_hook(const char *cmd, const char *what)
{
	extern char **environ;
	char *argv[] = { (char *)cmd, (char *)what, NULL };
	size_t n = 0, k = 0;
	char **envp;
	int status;
	pid_t pid;

	if (cmd == NULL)
		return 0;
	while (environ[n] != NULL)
		n++;
	envp = calloc(n + 1, sizeof(*envp));
	if (envp == NULL) {
		perror("isoperf: window command");
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if (!shim_var(environ[i]))
			envp[k++] = environ[i];
	pid = fork();
	if (pid < 0) {
		perror("isoperf: window command: fork");
		free(envp);
		return -1;
	}
	if (pid == 0) {
		execve(cmd, argv, envp);
		_exit(127);
	}
	free(envp);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			perror("isoperf: window command: waitpid");
			return -1;
		}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	fprintf(stderr, "isoperf: window command '%s %s' failed (%s %d)\n",
		cmd, what, WIFEXITED(status) ? "exit" : "signal",
		WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	return -1;
}

/*
 * With a thread per connection, the main thread competes with CONNS busy
 * ones (and on one core with the server's too): a plain nanosleep then
 * wakes late by up to a second, which stretches the window. As root, the
 * main thread (only this thread: it sleeps nearly all the time) gets a
 * real-time priority so the window's edges are on time.  The hook it forks
 * inherits that priority: with the normal policy it got 1/CONNS of the
 * core and took seconds to start (python), so the daemon's counters it
 * snapshots lagged the window's edges by that much.  Not permitted: no
 * change, the window is still measured, only longer than asked.
 */
void isoperf_window_clock(void)
{
	struct sched_param sp = { .sched_priority = 1 };

	if (sched_setscheduler(0, SCHED_FIFO, &sp) != 0 &&
	    errno != EPERM)
		fprintf(stderr, "isoperf: sched_setscheduler: %s\n", strerror(errno));
}

