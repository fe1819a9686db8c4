/*
 * Asymmetric fences (docs/shm.md, "Rings that size themselves"): the one
 * Dekker pair of the transport whose one side runs on every send (the
 * application's tx_busy / tx_gen check) and whose other side runs rarely
 * (the stack taking a TX offer for an idle application).  The frequent
 * side orders its store and load with a compiler barrier only; the rare
 * side makes every running thread of every registered application execute
 * a full barrier with membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED), which
 * gives the frequent side's fence for it (as liburcu and folly's
 * asymmetric barriers do).  An application that could not register keeps
 * the full fence; the stack takes no offer if it cannot issue the barrier.
 */
#include <errno.h>
#include <linux/membarrier.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

/* This process registered (per process: fork children register again). */
static _Atomic int registered;

static int membarrier(int cmd, unsigned int flags)
{
	return (int)syscall(__NR_membarrier, cmd, flags, 0);
}

int isoshm_membarrier_register(void)
{
	int q = membarrier(MEMBARRIER_CMD_QUERY, 0);

	if (q < 0 || !(q & MEMBARRIER_CMD_GLOBAL_EXPEDITED) ||
	    membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0) != 0) {
		atomic_store_explicit(&registered, 0, memory_order_relaxed);
		return -ENOSYS;
	}
	atomic_store_explicit(&registered, 1, memory_order_relaxed);
	return 0;
}

bool isoshm__membarrier_registered(void)
{
	return atomic_load_explicit(&registered, memory_order_relaxed) != 0;
}

int isoshm_membarrier_global(void)
{
	return membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0) == 0 ? 0 : -errno;
}
