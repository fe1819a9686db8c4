/*
 * What route.c, route_data.c and route_close.c share: the small helpers
 * every routed call uses (inline: they sit on the data path) and the
 * blocking of a call that met EAGAIN (route.c).
 */
#ifndef ISOSOCK_ROUTE_INTERNAL_H
#define ISOSOCK_ROUTE_INTERNAL_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "shim.h"

/* A libc call's result as 0/count or -errno. */
static inline int neg(int r)
{
	return r < 0 ? -errno : r;
}

static inline ssize_t negz(ssize_t r)
{
	return r < 0 ? -errno : r;
}

static inline void set_flag(struct isosock_file *f, uint32_t flag, bool on)
{
	if (on)
		atomic_fetch_or_explicit(&f->flags, flag, memory_order_relaxed);
	else
		atomic_fetch_and_explicit(&f->flags, ~flag, memory_order_relaxed);
}

static inline bool has_flag(const struct isosock_file *f, uint32_t flag)
{
	return atomic_load_explicit(&f->flags, memory_order_relaxed) & flag;
}

static inline bool nonblocking(const struct isosock_file *f, int flags)
{
	return (flags & MSG_DONTWAIT) || has_flag(f, ISOSOCK_F_NONBLOCK);
}

/* Edge-triggered epoll: the next arrival in these directions is a new
 * edge (the call met EAGAIN, or is about to wait). */
static inline void io_bump(struct isosock_file *f, uint32_t events)
{
	if (events & POLLIN)
		atomic_fetch_add_explicit(&f->io_rd, 1, memory_order_relaxed);
	if (events & POLLOUT)
		atomic_fetch_add_explicit(&f->io_wr, 1, memory_order_relaxed);
}

/* Edge-triggered epoll: a call that leaves the socket not readable (or
 * not writable) makes the next arrival an edge, even if no epoll_wait
 * scan saw the gap.  Only sockets in an ET set pay the extra query. */
static inline void et_note(struct isosock_file *f, uint32_t bit)
{
	if (!has_flag(f, ISOSOCK_F_ET) || !f->h)
		return;
	if (!(isosock_be->poll(f->h, NULL) & bit))
		io_bump(f, bit);
}

/* Would the kernel restart a call after a signal? (no timeout, and
 * SA_RESTART on every caught signal's handler) */
bool isosock__restart_after_signal(int64_t timeout_ns);

/* After a call said -EAGAIN: 0 to retry, or the error to return;
 * *deadline carries the absolute deadline across retries. */
int isosock__route_block(struct isosock_file *f, int fd, uint32_t events, int64_t timeo_ns,
			 int64_t *deadline);

#endif /* ISOSOCK_ROUTE_INTERNAL_H */
