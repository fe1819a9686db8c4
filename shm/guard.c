/*
 * The fault guard: what keeps the stack's process alive when memory it
 * shares with an application disappears under it (docs/shm.md, "What an
 * application can do to its memory").
 *
 * The seals (segment.c, extent.c) stop an application from shrinking or
 * growing its files, so no access of ours lands past their end.  Nothing
 * stops it from punching a hole (fallocate(PUNCH_HOLE), madvise(MADV_REMOVE)):
 * only F_SEAL_WRITE and F_SEAL_FUTURE_WRITE refuse that, and both also
 * refuse the writable mappings the application needs.  A hole takes the
 * pages from every mapping, ours included.  On normal pages our next
 * access faults in a fresh zeroed page (as if the application had written
 * zeros, which it may); on a hugetlb extent it needs a free huge page, and
 * with the pool exhausted the kernel answers with SIGBUS.
 *
 * So every stack-side mapping (base segment, arena) is registered here,
 * and a SIGBUS handler catches a fault inside one: it maps private
 * anonymous memory over the faulting unit (the 2 MiB extent unit in the
 * arena, a page in the base segment) of our own mapping only, counts the
 * fault against the segment and returns, so the access runs again on that
 * memory and succeeds.  isoshm_stack_poll then reports the application
 * broken (-EPROTO), and the daemon drops it: its own streams were all it
 * could damage.  A fault anywhere else is not ours: the handler puts back
 * the previous action and returns, so the access faults again into it
 * (the default: the process dies, as without the guard).
 *
 * The handler is async-signal-safe: a fixed table read with atomics and
 * one mmap() system call.  Registration happens at create and destroy,
 * never on the data path.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define GUARD_SLOTS 1024

struct guard_slot {
	_Atomic(const void *) owner;     /* NULL: free */
	_Atomic uintptr_t lo, hi;        /* hi 0: not (yet / any more) a range */
	_Atomic uintptr_t unit;          /* replaced in units of this (power of 2) */
	_Atomic uint64_t faults;
};

static struct guard_slot slots[GUARD_SLOTS];
static struct sigaction old_action;
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;

static void guard_handler(int sig, siginfo_t *si, void *ctx)
{
	uintptr_t a = (uintptr_t)si->si_addr;

	(void)ctx;
	if (si->si_code == BUS_ADRERR) {
		for (unsigned i = 0; i < GUARD_SLOTS; i++) {
			/* Acquire: pairs with the release of hi in
			 * isoshm__guard_add, so lo and unit are the range's. */
			uintptr_t hi = atomic_load_explicit(&slots[i].hi, memory_order_acquire);
			uintptr_t lo = atomic_load_explicit(&slots[i].lo, memory_order_relaxed);
			uintptr_t unit = atomic_load_explicit(&slots[i].unit, memory_order_relaxed);
			uintptr_t at;

			if (hi == 0 || a < lo || a >= hi)
				continue;
			at = a & ~(unit - 1);
			if (at < lo)
				at = lo;
			if (mmap((void *)at, unit, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
				break;
			atomic_fetch_add_explicit(&slots[i].faults, 1, memory_order_relaxed);
			return;
		}
	}
	/* Not ours: the access faults again, into the previous action. */
	sigaction(sig, &old_action, NULL);
}

/* Installs the handler unless it is in place: code that set its own
 * since (a test harness, a library) is chained behind it again.  Returns
 * 0 or -errno. */
static int guard_install(void)
{
	struct sigaction sa, cur;
	int rc = 0;

	pthread_mutex_lock(&install_lock);
	if (sigaction(SIGBUS, NULL, &cur) != 0) {
		rc = -errno;
	} else if (!(cur.sa_flags & SA_SIGINFO) || cur.sa_sigaction != guard_handler) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = guard_handler;
		sa.sa_flags = SA_SIGINFO;
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGBUS, &sa, &old_action) != 0)
			rc = -errno;
	}
	pthread_mutex_unlock(&install_lock);
	return rc;
}

int isoshm__guard_add(const void *owner, const void *addr, uint64_t len, uint64_t unit)
{
	int rc = guard_install();

	if (rc < 0)
		return rc;
	for (unsigned i = 0; i < GUARD_SLOTS; i++) {
		const void *none = NULL;

		if (!atomic_compare_exchange_strong(&slots[i].owner, &none, owner))
			continue;
		atomic_store_explicit(&slots[i].faults, 0, memory_order_relaxed);
		atomic_store_explicit(&slots[i].unit, (uintptr_t)unit, memory_order_relaxed);
		atomic_store_explicit(&slots[i].lo, (uintptr_t)addr, memory_order_relaxed);
		/* Release: pairs with the handler's acquire of hi. */
		atomic_store_explicit(&slots[i].hi, (uintptr_t)addr + len, memory_order_release);
		return (int)i;
	}
	return -ENOSPC;
}

void isoshm__guard_del(int slot)
{
	if (slot < 0 || slot >= GUARD_SLOTS)
		return;
	atomic_store_explicit(&slots[slot].hi, 0, memory_order_release);
	atomic_store_explicit(&slots[slot].owner, NULL, memory_order_release);
}

uint64_t isoshm__guard_faults(int slot)
{
	if (slot < 0 || slot >= GUARD_SLOTS)
		return 0;
	/* Relaxed: a count the handler bumped on this thread or another;
	 * seen at the latest one pass later. */
	return atomic_load_explicit(&slots[slot].faults, memory_order_relaxed);
}
