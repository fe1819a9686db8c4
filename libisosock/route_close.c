/*
 * Closing and duplicating routed fds: close, close_range, closefrom and
 * dup/dup2/dup3, keeping the fd table and the kernel's fds in step (the
 * table entry goes first, so a number the kernel hands out again is never
 * taken for an isostack socket).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "route_internal.h"
#include "shadow.h"
#include "shim.h"

#define L isosock_libc

/* ---- close, dup ----------------------------------------------------------- */

int isosock_r_close(int fd)
{
	/* The table entry goes before the kernel fd does, so a thread that
	 * gets the fd number next from open() is never routed to isostack. */
	isosock_fd_lock();
	struct isosock_file *f = isosock_fd_remove(fd);
	isosock_e_closed(fd);
	int r = neg(L.close(fd));
	isosock_fd_unlock();
	if (f)
		isosock_file_put(f);
	return r;
}

/* ---- close_range ----------------------------------------------------------- */

static int libc_close_range(unsigned int first, unsigned int last, int flags)
{
	if (L.close_range)
		return neg(L.close_range(first, last, flags));
	return neg((int)syscall(SYS_close_range, first, last, (unsigned int)flags));
}

/* Highest fd number + 1 worth scanning for our own fds and epoll lists:
 * no fd can be opened at or above the soft RLIMIT_NOFILE, except one
 * opened before the limit was lowered (not covered). */
static unsigned int scan_bound(void)
{
	struct rlimit rl;
	unsigned int b = 1u << 20;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < b)
		b = (unsigned int)rl.rlim_cur;
	unsigned int lim = (unsigned int)isosock_fd_limit();
	return lim > b ? lim : b;
}

/* Whether another thread shares our fd table (so CLOSE_RANGE_UNSHARE
 * really unshares): /proc/self/task has 2 + threads links. */
static bool fd_table_shared(void)
{
	struct stat st;
	if (stat("/proc/self/task", &st) != 0)
		return true; /* unknown: assume shared, touch nothing */
	return st.st_nlink > 3;
}

int isosock_r_close_range(unsigned int first, unsigned int last, int flags)
{
	if (first > last || (flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC)))
		return -EINVAL;
	/* Marking close-on-exec: the kernel flag is the only state (our own
	 * fds are O_CLOEXEC already). */
	if (flags & CLOSE_RANGE_CLOEXEC)
		return libc_close_range(first, last, flags);
	unsigned int bound = scan_bound();
	unsigned int top = last < bound ? last : bound - 1;
	/* With CLOSE_RANGE_UNSHARE and other threads sharing the table, the
	 * range closes in the caller's private copy only: the sockets stay
	 * open (and mapped) for the others, so the shim closes nothing. */
	if (!(flags & CLOSE_RANGE_UNSHARE) || !fd_table_shared()) {
		for (unsigned int fd = first; fd <= top && first < bound; fd++) {
			if (isosock_fd_get_peek((int)fd) || isosock_e_is_emulated((int)fd) ||
			    isosock_e_valid((int)fd))
				isosock_r_close((int)fd);
		}
	}
	/* libc for the rest, in pieces around the stack's private fds. */
	unsigned int lo = first;
	for (;;) {
		unsigned int p = lo;
		while (p <= top && p >= first && !isosock_r_private_fd((int)p))
			p++;
		bool found = p <= top && p >= first;
		unsigned int hi = found ? p - 1 : last;
		if (!found || p > lo) {
			int r = libc_close_range(lo, hi, flags);
			if (r < 0)
				return r;
		}
		if (!found || p == last)
			return 0;
		lo = p + 1;
	}
}

/* glibc's closefrom() calls close_range internally, past our symbol, so it
 * has its own entry point with the same close path.  On a kernel without
 * close_range, glibc falls back to closing what /proc/self/fd lists; here
 * every number up to scan_bound() is closed instead (the same fds, without
 * opening a directory while closing). */
int isosock_r_closefrom(int lowfd)
{
	unsigned int first = lowfd < 0 ? 0 : (unsigned int)lowfd;
	int r = isosock_r_close_range(first, ~0u, 0);
	if (r != -ENOSYS)
		return r;
	/* close_range closed the isostack sockets and epoll fds before the
	 * kernel said ENOSYS: only kernel fds are left. */
	unsigned int bound = scan_bound();
	for (unsigned int fd = first; fd < bound; fd++)
		if (!isosock_r_private_fd((int)fd))
			L.close((int)fd);
	return 0;
}

int isosock_r_dup(int oldfd, int newfd, int flags, int how)
{
	isosock_fd_lock();
	int r;
	switch (how) {
	case 0: r = L.dup(oldfd); break;
	case 1: r = L.dup2(oldfd, newfd); break;
	case 2: r = L.dup3(oldfd, newfd, flags); break;
	case 3: r = L.fcntl(oldfd, F_DUPFD, newfd); break;
	default: r = L.fcntl(oldfd, F_DUPFD_CLOEXEC, newfd); break;
	}
	if (r < 0) {
		r = -errno;
		isosock_fd_unlock();
		return r;
	}
	struct isosock_file *old = NULL;
	if (r != oldfd) {
		old = isosock_fd_remove(r); /* dup2 closed what was there */
		isosock_e_closed(r);
		struct isosock_file *f = isosock_fd_get(oldfd);
		if (f) {
			isosock_fd_install(r, f);
			isosock_file_put(f);
		}
	}
	isosock_fd_unlock();
	if (old)
		isosock_file_put(old);
	return r;
}
