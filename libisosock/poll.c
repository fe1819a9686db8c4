/*
 * poll/ppoll/select/pselect over a mix of kernel fds and isostack sockets.
 *
 * Isostack readiness is a query on the shared-memory rings (no syscall);
 * kernel readiness comes from one real ppoll().  A call first checks both
 * without blocking; if nothing is ready it spins on the isostack side for
 * ISOSOCK_SPIN_NS, then announces a sleeper (the stack then writes the
 * application wake fd on its next event), checks once more, and sleeps in
 * the real ppoll() on the kernel fds plus the wake fd.  The signal mask of
 * ppoll/pselect applies to that sleep, so EINTR is the kernel's own.
 * poll() and select() are never restarted after a signal (as the kernel).
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "isostack/spin.h"
#include "isostack/tls.h"
#include "shim.h"

#define L isosock_libc

struct pent {
	struct isosock_file *f; /* NULL: kernel fd */
	int k;                  /* index in the kernel array, -1 none */
	int key;                /* be->sleep_mark key while asleep, or -1 */
};

/* One pass over the isostack entries: fills revents, returns the count. */
static int scan_stack(struct pollfd *fds, nfds_t n, const struct pent *pe)
{
	int cnt = 0;
	for (nfds_t i = 0; i < n; i++) {
		if (!pe[i].f)
			continue;
		uint32_t ev = 0;
		if (pe[i].f->h && isosock_be)
			ev = isosock_be->poll(pe[i].f->h, NULL);
		uint32_t want = (uint16_t)fds[i].events | POLLERR | POLLHUP | POLLNVAL;
		if (ev & POLLIN)
			ev |= POLLRDNORM;
		if (ev & POLLOUT)
			ev |= POLLWRNORM;
		fds[i].revents = (short)(ev & want);
		if (fds[i].revents)
			cnt++;
	}
	return cnt;
}

/* Merges kernel results into fds; returns the count of entries ready. */
static int merge(struct pollfd *fds, nfds_t n, const struct pent *pe, const struct pollfd *kp)
{
	int cnt = 0;
	for (nfds_t i = 0; i < n; i++) {
		if (pe[i].k >= 0) {
			short kr = kp[pe[i].k].revents;
			if (pe[i].f)
				kr &= POLLIN | POLLRDNORM; /* a shadow only adds accepts/datagrams */
			fds[i].revents |= kr;
		}
		if (fds[i].revents)
			cnt++;
	}
	return cnt;
}

/* Around a sleep on the wake fd: the stack is to write it for these
 * sockets (shim.h, sleep_mark). */
static void mark_stack(struct pent *pe, nfds_t n, bool on)
{
	if (!isosock_be || !isosock_be->sleep_mark)
		return;
	for (nfds_t i = 0; i < n; i++) {
		if (!pe[i].f)
			continue;
		if (on)
			pe[i].key = pe[i].f->h ? isosock_be->sleep_mark(pe[i].f->h, -1, true) : -1;
		else if (pe[i].key >= 0)
			isosock_be->sleep_mark(NULL, pe[i].key, false);
	}
}

int isosock_p_ppoll(struct pollfd *fds, nfds_t n, int64_t timeout_ns, const sigset_t *mask)
{
	struct pent pe_small[32];
	struct pollfd kp_small[33];
	struct pent *pe = pe_small;
	struct pollfd *kp = kp_small;
	if (n > 32) {
		pe = calloc(n, sizeof(*pe));
		kp = calloc(n + 1, sizeof(*kp));
		if (!pe || !kp) {
			free(pe);
			free(kp);
			return -ENOMEM;
		}
	}
	int nk = 0;
	bool have_stack = false;
	for (nfds_t i = 0; i < n; i++) {
		fds[i].revents = 0;
		pe[i].f = isosock_fd_get(fds[i].fd);
		pe[i].k = -1;
		if (pe[i].f) {
			have_stack = true;
			if (!(atomic_load_explicit(&pe[i].f->flags, memory_order_relaxed) &
			      ISOSOCK_F_DUAL))
				continue;
			kp[nk] = (struct pollfd){ .fd = fds[i].fd, .events = POLLIN };
		} else {
			kp[nk] = fds[i];
		}
		kp[nk].revents = 0;
		pe[i].k = nk++;
	}
	int wake = have_stack && isosock_be && isosock_be->wake_fd ? isosock_be->wake_fd() : -1;
	int64_t deadline = timeout_ns < 0 ? -1 : isosock_now_ns() + timeout_ns;
	int r;
	for (;;) {
		int cs = scan_stack(fds, n, pe);
		if (nk) {
			r = L.poll(kp, (nfds_t)nk, 0);
			if (r < 0) {
				r = -errno;
				break;
			}
		}
		r = nk ? merge(fds, n, pe, kp) : cs;
		if (r > 0 || timeout_ns == 0)
			break;
		int64_t now = isosock_now_ns();
		if (deadline >= 0 && now >= deadline) {
			r = 0;
			break;
		}
		/* Spin on the rings only (the kernel side is what we sleep
		 * on), yielding between scans, unless the core is shared
		 * (isostack/spin.h). */
		static __thread uint32_t spin_skip ISOSTACK_TLS;
		struct isostack_spin sp;
		if (have_stack && isostack_spin_start(&sp, isosock_cfg.spin_ns, &spin_skip))
			while ((cs = scan_stack(fds, n, pe)) == 0 && isostack_spin_step(&sp, &spin_skip))
				;
		if (cs > 0) {
			r = nk ? merge(fds, n, pe, kp) : cs;
			break;
		}
		if (have_stack)
			mark_stack(pe, n, true);
		if (have_stack && isosock_be && isosock_be->wait_begin)
			isosock_be->wait_begin();
		cs = have_stack ? scan_stack(fds, n, pe) : 0;
		if (cs == 0) {
			wake = have_stack && isosock_be && isosock_be->wake_fd ? isosock_be->wake_fd() : -1;
			if (wake >= 0)
				kp[nk] = (struct pollfd){ .fd = wake, .events = POLLIN };
			int64_t left = deadline < 0 ? -1 : deadline - isosock_now_ns();
			if (left < 0 && deadline >= 0)
				left = 0;
			/* Bounded: a daemon that died writes no wake fd. */
			if (have_stack && (left < 0 || left > ISOSOCK_SLEEP_SLICE_NS))
				left = ISOSOCK_SLEEP_SLICE_NS;
			struct timespec ts = { left / 1000000000, left % 1000000000 };
			r = L.ppoll(kp, (nfds_t)nk + (wake >= 0), left < 0 ? NULL : &ts, mask);
			if (r < 0)
				r = -errno;
		}
		if (have_stack && isosock_be && isosock_be->wait_end)
			isosock_be->wait_end();
		if (have_stack)
			mark_stack(pe, n, false);
		if (r < 0)
			break;
		if (cs > 0 || r > 0) {
			/* Re-collect both sides: the sleep's revents are stale
			 * for the stack entries and the wake fd is not theirs. */
			continue;
		}
	}
	for (nfds_t i = 0; i < n; i++)
		if (pe[i].f)
			isosock_file_put(pe[i].f);
	if (pe != pe_small) {
		free(pe);
		free(kp);
	}
	return r;
}

int isosock_p_pselect(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, int64_t timeout_ns,
		      const sigset_t *mask)
{
	if (nfds < 0 || nfds > FD_SETSIZE)
		return -EINVAL;
	struct pollfd *p = calloc((size_t)nfds + 1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	nfds_t n = 0;
	for (int fd = 0; fd < nfds; fd++) {
		short ev = 0;
		if (rd && FD_ISSET(fd, rd))
			ev |= POLLIN;
		if (wr && FD_ISSET(fd, wr))
			ev |= POLLOUT;
		if (ex && FD_ISSET(fd, ex))
			ev |= POLLPRI;
		if (ev)
			p[n++] = (struct pollfd){ .fd = fd, .events = ev };
	}
	int r = isosock_p_ppoll(p, n, timeout_ns, mask);
	if (r < 0) {
		free(p);
		return r;
	}
	for (nfds_t i = 0; i < n; i++)
		if (p[i].revents & POLLNVAL) {
			free(p);
			return -EBADF;
		}
	if (rd)
		FD_ZERO(rd);
	if (wr)
		FD_ZERO(wr);
	if (ex)
		FD_ZERO(ex);
	int cnt = 0;
	for (nfds_t i = 0; i < n; i++) {
		short re = p[i].revents;
		if (rd && (p[i].events & POLLIN) && (re & (POLLIN | POLLHUP | POLLERR))) {
			FD_SET(p[i].fd, rd);
			cnt++;
		}
		if (wr && (p[i].events & POLLOUT) && (re & (POLLOUT | POLLERR))) {
			FD_SET(p[i].fd, wr);
			cnt++;
		}
		if (ex && (p[i].events & POLLPRI) && (re & POLLPRI)) {
			FD_SET(p[i].fd, ex);
			cnt++;
		}
	}
	free(p);
	return cnt;
}
