/*
 * futex(2) on words in a MAP_SHARED segment.  Shared futexes (no
 * FUTEX_PRIVATE_FLAG): the waiter and the waker are different processes,
 * and the kernel keys the wait queue by the file page, not the address.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

int isoshm__futex_wait(_Atomic uint32_t *word, uint32_t val, const struct timespec *rel)
{
	/* The kernel compares *word with val atomically with queuing us; a
	 * changed value (EAGAIN) means a wake already happened. */
	if (syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, val, rel, NULL, 0) == 0)
		return 0;
	if (errno == EAGAIN)
		return 0;
	return -errno;
}

int isoshm__futex_wake(_Atomic uint32_t *word)
{
	long n = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);

	return n < 0 ? -errno : (int)n;
}
