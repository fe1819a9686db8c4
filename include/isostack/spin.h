/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef ISOSTACK_SPIN_H
#define ISOSTACK_SPIN_H
/*
 * How an application thread spins while it waits for the stack in the
 * shim's poll/epoll: yield between polls, and stop (and skip the next
 * spins) when the core turns out to be shared.
 */
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <time.h>

struct isostack_spin {
	int64_t end;   /* CLOCK_MONOTONIC ns */
	long csw;      /* this thread's context switches at the start */
};

static inline int64_t isostack_spin_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline long isostack_spin_csw(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_THREAD, &ru) != 0)
		return -1;
	return ru.ru_nvcsw + ru.ru_nivcsw;
}

/* Waits that skip their spin after one found the core shared. */
#define ISOSTACK_SPIN_BACKOFF 1024

/*
 * Starts a spin of ns, or says not to spin (false): ns <= 0, or a recent
 * spin of this caller found the core shared and *skip counts the waits
 * left that go straight to sleep (each caller keeps its own, per thread).
 */
static inline bool isostack_spin_start(struct isostack_spin *sp, int64_t ns, uint32_t *skip)
{
	if (ns <= 0)
		return false;
	if (*skip > 0) {
		(*skip)--;
		return false;
	}
	sp->end = isostack_spin_clock() + ns;
	sp->csw = isostack_spin_csw();
	return true;
}

/*
 * One step of a spin: yields the CPU, then says whether to go on: not
 * past the end, and not once this thread was switched out (by the yield,
 * or preempted).  Then the core is shared: whoever we wait for (a peer on
 * this machine, the process that feeds us requests) may need it, and
 * spinning only takes its time, so this wait sleeps and the next
 * ISOSTACK_SPIN_BACKOFF do not spin at all: a yield that hands the core
 * over is itself the cost.  nginx with 2 workers and wrk on one core (612 B
 * page, `isostack bench programs --only nginx --quick`, 3 runs each):
 * 34-39k req/s with the plain 50 us spin, 57-68k with this; 1 worker
 * unchanged (60-64k).  Alone on the core, a yield returns at once and the
 * spin goes on.
 *
 * Used by the shim's poll/epoll waits.  isoshm_app_wait (a blocking
 * recv/send/accept waiting on one socket) keeps its plain spin: with this
 * backoff a request/response client sharing its core with the peer slept
 * in every wait, and the futex sleep and wake-up made its p50 67 us
 * instead of 15 us.
 */
static inline bool isostack_spin_step(struct isostack_spin *sp, uint32_t *skip)
{
	sched_yield();
	if (isostack_spin_csw() != sp->csw) {
		*skip = ISOSTACK_SPIN_BACKOFF;
		return false;
	}
	return isostack_spin_clock() < sp->end;
}

#endif
