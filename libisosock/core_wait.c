/*
 * Readiness and waiting: the poll mask of a socket, the multi-socket
 * wait (isosock_wait) and the per-process wake targeting that the shim's
 * poll/epoll use (sleep marks, wait_arm/disarm).
 */
#include <stdlib.h>
#include <unistd.h>

#include "core_internal.h"

/* ---- Readiness ------------------------------------------------------------------ */

/* Under f->lock. */
static int mask_of(struct isosock_app *app, int s, struct fsock *f)
{
	int m = 0;

	isosock__drain(app, s, f);
	switch (f->state) {
	case F_FREE:
	case F_CLOSING:
		return POLLNVAL;
	case F_LISTEN:
		if (f->nstash > 0 || f->incoming > 0)
			m |= POLLIN;
		/* The daemon is gone: accept fails at once (ECONNABORTED), so
		 * a caller blocked in accept, poll or epoll wakes to see it. */
		if (f->nstash == 0 && !isosock_app_alive(app))
			m |= POLLIN | POLLERR | POLLHUP;
		break;
	case F_CONNECTING:
		break;
	case F_OPEN:
		if (f->udp) {
			struct isostack_shm_dgram h;
			uint32_t big = ISOSTACK_SHM_DGRAM_REC_F(ISOSTACK_SHM_DGRAM_MAX,
					f->inet6 ? ISOSTACK_SHM_DGRAM_F_V6 : 0u);

			if (isosock__udp_next(app, s, f, &h) != 0 || f->shut_rd)
				m |= POLLIN;
			/* writable when a datagram of any size fits, or half the
			 * ring is free (the kernel's sndbuf/2 rule) */
			if (!f->shut_wr && isosock__tx_free(app, s, f) >=
			    (big < f->tx_bytes / 2 ? big : f->tx_bytes / 2))
				m |= POLLOUT;
			if (f->dead || !isosock_app_alive(app))
				m |= POLLERR;
			break;
		}
		m |= POLLOUT | POLLHUP;
		if (f->dead)
			m |= POLLERR;
		break;
	case F_CONNECTED: {
		/* Acquire: pairs with the stack's store-release of tx_cons
		 * (isoshm_stack_tx_release): the space it frees is ours. */
		uint32_t cons = atomic_load_explicit(&app->socks[s].tx_cons, memory_order_acquire);

		if (isosock__rx_avail(app, s, f) > 0 || f->hup || f->shut_rd)
			m |= POLLIN;
		if (f->hup)
			m |= POLLRDHUP;
		/* An idle socket's ring of none is writable: a send asks for
		 * a ring and waits for it (core_data.c, tx_ask). */
		if (!f->shut_wr && (f->tx_bytes == 0 || f->tx_bytes - (f->tx_prod - cons) > 0))
			m |= POLLOUT;
		if (f->hup && f->shut_wr)
			m |= POLLHUP;
		break;
	}
	}
	if (f->state == F_CONNECTED && (f->dead || !isosock_app_alive(app)))
		m |= POLLERR | POLLHUP | POLLIN | POLLOUT;
	return m;
}

int isosock_poll_gen(struct isosock_app *app, int s, short events, uint32_t *gen)
{
	struct fsock *f = fs_get(app, s);
	int m;

	if (f == NULL)
		return -EBADF;
	fs_lock(f);
	m = mask_of(app, s, f);
	/* Bytes (datagrams) the stack put in the RX ring, plus connections
	 * queued for accept: one moves at every arrival.  Read after
	 * mask_of drained the status ring, so it covers what m reports. */
	/* Acquire: pairs with the stack's store-release of rx_prod. */
	if (gen)
		*gen = atomic_load_explicit(&app->socks[s].rx_prod, memory_order_acquire) +
		       f->arrived;
	fs_unlock(f);
	return m & (events | POLLERR | POLLHUP | POLLNVAL);
}

int isosock_poll(struct isosock_app *app, int s, short events)
{
	return isosock_poll_gen(app, s, events, NULL);
}

struct setarg {
	struct isosock_app *app;
	struct isosock_pollfd *set;
	unsigned n;
	uint32_t *snap;   /* [3n]: status_prod, rx_prod, tx_cons */
};

static void snap_set(struct setarg *a)
{
	for (unsigned i = 0; i < a->n; i++) {
		struct isostack_shm_sock *sk;

		if (a->set[i].sock <= 0 || (uint32_t)a->set[i].sock >= a->app->nsocks)
			continue;
		sk = &a->app->socks[a->set[i].sock];
		/* Acquire: pair with the stack's store-releases of the three
		 * indices (status and RX enqueues, the TX release). */
		a->snap[3 * i] = atomic_load_explicit(&sk->status_prod, memory_order_acquire);
		a->snap[3 * i + 1] = atomic_load_explicit(&sk->rx_prod, memory_order_acquire);
		a->snap[3 * i + 2] = atomic_load_explicit(&sk->tx_cons, memory_order_acquire);
	}
}

static bool set_moved(void *p)
{
	struct setarg *a = p;

	if (atomic_load_explicit(&a->app->dead, memory_order_relaxed))
		return true;
	for (unsigned i = 0; i < a->n; i++) {
		struct isostack_shm_sock *sk;

		if (a->set[i].sock <= 0 || (uint32_t)a->set[i].sock >= a->app->nsocks)
			continue;
		sk = &a->app->socks[a->set[i].sock];
		/* The re-check of isoshm_app_wait, after its fence S1: these
		 * loads are what S1 orders after the announcement (pairs with
		 * the stack's W1 for status_prod/rx_prod, W3 for tx_cons);
		 * acquire pairs with the same store-releases as snap_set. */
		if (atomic_load_explicit(&sk->status_prod, memory_order_acquire) != a->snap[3 * i] ||
		    atomic_load_explicit(&sk->rx_prod, memory_order_acquire) != a->snap[3 * i + 1] ||
		    atomic_load_explicit(&sk->tx_cons, memory_order_acquire) != a->snap[3 * i + 2])
			return true;
	}
	return false;
}

int isosock_wait(struct isosock_app *app, struct isosock_pollfd *set, unsigned n,
		 int64_t timeout_ns)
{
	int64_t deadline = timeout_ns > 0 ? now_ns() + timeout_ns : 0;
	uint32_t *snap = calloc(n ? 3 * n : 1, sizeof(uint32_t));
	struct setarg a = { .app = app, .set = set, .n = n, .snap = snap };
	/*
	 * One socket (a blocking call of the shim): sleep on that socket's
	 * wait point, which the stack wakes for exactly its rings, rather
	 * than on the app-wide one, which every event of every socket wakes
	 * (with many threads each blocked on its own socket, each event woke
	 * them all).
	 */
	uint32_t point = n == 1 && set[0].sock > 0 && (uint32_t)set[0].sock < app->nsocks ?
			 (uint32_t)set[0].sock : ISOSHM_WAIT_ANY;
	int ready;

	if (snap == NULL)
		return -ENOMEM;
	for (;;) {
		snap_set(&a);
		ready = 0;
		for (unsigned i = 0; i < n; i++) {
			int m;

			set[i].revents = 0;
			if (set[i].sock < 0)
				continue;
			m = isosock_poll(app, set[i].sock, set[i].events);
			if (m < 0)
				m = POLLNVAL;
			set[i].revents = (short)m;
			ready += m != 0;
		}
		if (ready > 0 || timeout_ns == 0)
			break;
		int64_t slice = WAIT_SLICE_NS;

		if (deadline != 0) {
			int64_t left = deadline - now_ns();

			if (left <= 0)
				break;
			if (left < slice)
				slice = left;
		}
		int rc = isoshm_app_wait(app->shm, point, set_moved, &a, SPIN_POLLS, slice);

		if (rc == -EINTR) {
			ready = -EINTR;
			break;
		}
		if (rc == -ETIMEDOUT) {
			(void)isosock_app_alive(app);
			isosock__sweep(app);
		}
	}
	free(snap);
	return ready;
}

/*
 * Per-process wake targeting.  A thread about to sleep on this process's
 * wake fd marks each isostack socket it waits for: the first such thread
 * sets our bit in the socket's wake_mask, the last one to wake clears it,
 * and the stack writes only the wake fds whose bit is set in the masks of
 * the sockets it posted to.  Marks come before isosock_wait_arm, whose
 * fence orders them before the re-check (the stack reads the mask after
 * its own fence, as it reads waiters).  A clear racing a new mark is
 * repaired by re-checking the count after clearing; bit 63 is shared by
 * all processes past the 63rd and is never cleared (extra wake-ups only).
 */
int isosock_sleep_mark(struct isosock_app *app, int s, bool on)
{
	int tbit = isosock__twake_bit(app);

	if (s <= 0 || (uint32_t)s >= app->nsocks)
		return 0;
	if (tbit >= 0) {
		/* A bit of this thread's own (core_twake.c): no count. */
		_Atomic uint64_t *mask = &app->socks[s].wake_mask;
		uint64_t b = UINT64_C(1) << tbit;

		if (on)
			atomic_fetch_or_explicit(mask, b, memory_order_relaxed);
		else
			atomic_fetch_and_explicit(mask, ~b, memory_order_relaxed);
		return 1;
	}
	if (!on) {
		isosock_sleep_unmark_process(app, s);
		return 0;
	}
	if (app->marks == NULL ||
	    atomic_fetch_add_explicit(&app->marks[s], 1, memory_order_relaxed) == 0)
		atomic_fetch_or_explicit(&app->socks[s].wake_mask,
					 UINT64_C(1) << (app->me < 63 ? app->me : 63),
					 memory_order_relaxed);
	return 0;
}

void isosock_sleep_unmark_process(struct isosock_app *app, int s)
{
	int bit = app->me < 63 ? app->me : 63;
	uint64_t b = UINT64_C(1) << bit;
	_Atomic uint64_t *mask;

	if (s <= 0 || (uint32_t)s >= app->nsocks || app->marks == NULL)
		return;
	mask = &app->socks[s].wake_mask;
	if (atomic_fetch_sub_explicit(&app->marks[s], 1, memory_order_relaxed) != 1 || bit == 63)
		return;
	atomic_fetch_and_explicit(mask, ~b, memory_order_relaxed);
	if (atomic_load_explicit(&app->marks[s], memory_order_relaxed) != 0) {
		/* Another thread of ours marked it meanwhile and may be asleep
		 * already: restore the bit, and wake it in case the stack
		 * looked while the bit was clear. */
		uint64_t one = 1;

		atomic_fetch_or_explicit(mask, b, memory_order_relaxed);
		if (write(app->wake_fd, &one, sizeof(one)) < 0) {
			/* full counter: a wake-up is pending anyway */
		}
	}
}

/*
 * The same for every socket at once (an epoll set too large to mark one
 * by one): our bit in the app-wide wake_any while a thread of ours sleeps
 * that way.  A count per process (in its own memory: the bit is per
 * process) decides who sets and clears it.
 */
static _Atomic int any_sleepers;

void isosock__sleep_any_reset(void)
{
	atomic_store_explicit(&any_sleepers, 0, memory_order_relaxed);
}

void isosock_sleep_any(struct isosock_app *app, bool on)
{
	int bit = app->me < 63 ? app->me : 63;
	int tbit = isosock__twake_bit(app);
	uint64_t b = UINT64_C(1) << bit;

	if (tbit >= 0) {
		b = UINT64_C(1) << tbit;
		if (on)
			atomic_fetch_or_explicit(&app->wait->wake_any, b, memory_order_relaxed);
		else
			atomic_fetch_and_explicit(&app->wait->wake_any, ~b, memory_order_relaxed);
		return;
	}
	if (on) {
		if (atomic_fetch_add_explicit(&any_sleepers, 1, memory_order_relaxed) == 0)
			atomic_fetch_or_explicit(&app->wait->wake_any, b, memory_order_relaxed);
		return;
	}
	if (atomic_fetch_sub_explicit(&any_sleepers, 1, memory_order_relaxed) != 1 || bit == 63)
		return;
	atomic_fetch_and_explicit(&app->wait->wake_any, ~b, memory_order_relaxed);
	if (atomic_load_explicit(&any_sleepers, memory_order_relaxed) != 0) {
		uint64_t one = 1;

		atomic_fetch_or_explicit(&app->wait->wake_any, b, memory_order_relaxed);
		if (write(app->wake_fd, &one, sizeof(one)) < 0) {
			/* full counter: a wake-up is pending anyway */
		}
	}
}

int isosock_app_notes(struct isosock_app *app, uint32_t *cursor,
		      void (*fn)(void *arg, uint32_t sock), void *arg)
{
	return isoshm_app_notes(app->shm, cursor, fn, arg);
}

uint32_t isosock_app_notes_now(struct isosock_app *app)
{
	return isoshm_app_notes_now(app->shm);
}

int isosock_wait_arm(struct isosock_app *app)
{
	isosock__sweep(app);     /* mixed waits re-arm every slice: the survivors' turn */
	if (isosock__twake_fd(app) < 0)  /* sleepers share the process's fd */
		atomic_fetch_add_explicit(&app->sleepers, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&app->wait->waiters, 1, memory_order_relaxed);
	/* Orders the announcement before the caller's readiness re-check;
	 * pairs with the stack's fences before it reads waiters: W1 in
	 * isoshm_stack_notify() (statuses, RX bytes) and W3 in
	 * isoshm_stack_waiters() (TX space), and the one in kick_apps'
	 * caller chain (daemon/backend/backend.c reads waiters after W1). */
	atomic_thread_fence(memory_order_seq_cst);
	return 0;
}

int isosock_wait_disarm(struct isosock_app *app)
{
	uint64_t v;
	int own = isosock__twake_fd(app);

	atomic_fetch_sub_explicit(&app->wait->waiters, 1, memory_order_relaxed);
	if (own >= 0) {
		/* Our own fd (core_twake.c): nobody else reads it. */
		while (read(own, &v, sizeof(v)) == sizeof(v))
			;
		return 0;
	}
	/*
	 * All our sleeping threads poll the one wake fd, and a write wakes
	 * them all; a thread that drained it while another was still on its
	 * way out of ppoll took that one's wake-up (the other re-checked the
	 * fd, found it empty and slept on: a thread blocked in accept() on an
	 * INADDR_ANY listener, which sleeps here too, made an epoll thread
	 * of the same process wait out its 100 ms slices).  So only the last
	 * of our sleepers drains it; if another armed meanwhile, the drain
	 * may have eaten a write meant for it, so it gets one back.
	 */
	/* acq_rel, with the acquire load below: the sleepers' count is our
	 * threads' alone; a thread arming after our drain re-checks after
	 * its own fence (isosock_wait_arm), the load below gives it back a
	 * write the drain may have eaten. */
	if (atomic_fetch_sub_explicit(&app->sleepers, 1, memory_order_acq_rel) != 1)
		return 0;
	while (read(app->wake_fd, &v, sizeof(v)) == sizeof(v))
		;
	if (atomic_load_explicit(&app->sleepers, memory_order_acquire) != 0) {
		v = 1;
		if (write(app->wake_fd, &v, sizeof(v)) < 0) {
			/* full counter: it is readable anyway */
		}
	}
	return 0;
}
