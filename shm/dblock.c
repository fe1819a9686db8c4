/*
 * The producer lock of a doorbell ring.  Every thread of every process of
 * the application (fork) enqueues on the same doorbells, so the lock is a
 * word in the view memfd those processes share, holding the owner's
 * identity: a process killed inside the few instructions of an enqueue
 * would otherwise leave it held forever.  (A thread cannot die alone
 * inside the enqueue, so the process is the owner.)
 *
 * The identity is the pid and the process's start time (/proc/PID/stat
 * field 22), so neither a reused pid nor a zombie (whose parent may be the
 * very process spinning here, so it is never reaped) passes for the owner:
 * kill(pid, 0), used before, said "alive" to both.  The word packs the
 * pid in ISOSHM_DB_PID_BITS (the kernel's PID_MAX_LIMIT is 2^22) and the
 * start time's low 42 bits above it (ticks: 44,000 years at 100 Hz).
 *
 * Without /proc (our own start time unreadable) the start is 0 and a
 * stuck owner is judged by kill(pid, 0) as before: a live owner must
 * never be taken for dead.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "internal.h"

#define DB_PID_MASK ((UINT64_C(1) << ISOSHM_DB_PID_BITS) - 1)
#define DB_START_MASK ((UINT64_C(1) << (64 - ISOSHM_DB_PID_BITS)) - 1)

/* Cached: getpid() and a /proc read per SEND would cost a system call
 * each; the fork child handler (app.c) refreshes it. */
static _Atomic uint64_t self_word;

uint64_t isoshm__db_word(int32_t pid, uint64_t start)
{
	return ((start & DB_START_MASK) << ISOSHM_DB_PID_BITS) | ((uint64_t)pid & DB_PID_MASK);
}

void isoshm__db_self_reset(void)
{
	int32_t pid = (int32_t)getpid();

	atomic_store_explicit(&self_word, isoshm__db_word(pid, isoshm_proc_start(pid)),
			      memory_order_relaxed);
}

uint64_t isoshm__db_self(void)
{
	return atomic_load_explicit(&self_word, memory_order_relaxed);
}

bool isoshm__db_owner_dead(uint64_t owner)
{
	int32_t pid = (int32_t)(owner & DB_PID_MASK);
	uint64_t start = owner >> ISOSHM_DB_PID_BITS;

	if (owner == 0)
		return false;
	if (start == 0)         /* no /proc when it locked: the old test */
		return kill(pid, 0) != 0 && errno == ESRCH;
	/* 0 for a process gone or a zombie; another start for a reused pid */
	return (isoshm_proc_start(pid) & DB_START_MASK) != start;
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

void isoshm__db_lock(_Atomic uint64_t *owner)
{
	uint64_t me = isoshm__db_self();

	if (__builtin_expect(me == 0, 0)) {
		isoshm__app_process_init();
		me = isoshm__db_self();
	}
	for (uint32_t spins = 0;; spins++) {
		uint64_t cur = 0;

		/* Acquire: pairs with the previous owner's store-release of 0
		 * in isoshm__db_unlock(): its doorbell entry is visible to us. */
		if (atomic_compare_exchange_weak_explicit(owner, &cur, me, memory_order_acquire,
							  memory_order_relaxed))
			return;
		/* After ~1M spins (tens of ms) the owner is looked up; the
		 * strong CAS takes over only the owner that was judged dead. */
		if (cur != 0 && (spins & 0xfffff) == 0xfffff && isoshm__db_owner_dead(cur))
			atomic_compare_exchange_strong_explicit(owner, &cur, 0, memory_order_relaxed,
								memory_order_relaxed);
		cpu_relax();
	}
}

void isoshm__db_unlock(_Atomic uint64_t *owner)
{
	/* Pairs with the next owner's acquire CAS in isoshm__db_lock(). */
	atomic_store_explicit(owner, 0, memory_order_release);
}
