/*
 * The socket front-end core: the application's half of docs/sockets.md.
 * This file holds its protocol: the status ring, posting commands and
 * waiting for their replies; the calls built on it live beside it
 * (core_attach.c, core_members.c, core_conn.c, core_data.c, core_opt.c,
 * core_wait.c; private declarations in core_internal.h).
 *
 * Per socket slot we keep private state (struct fsock) behind a mutex:
 * what the status ring told us (EOF, error, incoming connections, replies
 * to commands other threads are waiting for) and the bookkeeping of the
 * two aggregation rules (SEND: post only if the previous one was consumed
 * or 64 KiB piled up; RECV: post after consuming half the RX ring).
 * Threads never sleep holding the mutex: they drain the status ring under
 * it, then wait on the slot's futex (isoshm_app_wait) in slices of
 * WAIT_SLICE_NS, checking between slices that the daemon is still there.
 *
 * A slot's life: SOCKET (or an ACCEPT reply) hands it to us; CLOSE returns
 * it at once to the caller, and the slot is reaped -- its status ring
 * drained up to the CLOSE reply, its RX ring up to the rx_prod that reply
 * carries -- before the stack may hand it out again (the stack waits for
 * exactly that), so neither side ever resets a ring the other still uses.
 */
#include <sched.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "core_internal.h"

/* ---- Status ring ------------------------------------------------------------- */

static void handle_status(struct isosock_app *app, struct fsock *f,
			  const struct isostack_shm_status *st)
{
	if (st->opcode >= ISOSTACK_SHM_EV_RX) {
		app->st.events++;
		switch (st->opcode) {
		case ISOSTACK_SHM_EV_HUP:
			f->hup = true;
			break;
		case ISOSTACK_SHM_EV_ERROR:
			f->dead = true;
			f->fatal = st->result < 0 ? (int)st->result : -ECONNRESET;
			f->so_error = -f->fatal;
			break;
		case ISOSTACK_SHM_EV_CLOSED:
			/* The socket's last status: the stack closed it, since
			 * no living member held it.  Whoever still has it (a
			 * member the stack took for dead) finds it reset; the
			 * last release reaps it without a CLOSE, and a CLOSE
			 * that crossed this event gets -EBADF. */
			f->stack_closed = true;
			if (!f->dead) {
				f->dead = true;
				f->fatal = -ECONNRESET;
			}
			break;
		case ISOSTACK_SHM_EV_INCOMING:
			/* Growth past what we knew is new connections (replies
			 * before this event in the ring are already counted):
			 * each one an edge for edge-triggered epoll. */
			if ((uint32_t)st->arg[0] > f->incoming)
				f->arrived += (uint32_t)st->arg[0] - f->incoming;
			f->incoming = (uint32_t)st->arg[0];
			break;
		default:
			break;
		}
		return;
	}
	if (st->opcode == ISOSTACK_SHM_OP_CONNECT && st->cookie == f->connect_cookie &&
	    f->state == F_CONNECTING) {
		if (st->result == 0) {
			f->state = F_CONNECTED;
		} else {
			f->state = F_OPEN;
			f->so_error = (int)-st->result;
			f->dead = true;
			f->fatal = (int)st->result;
			f->err_reported = true;   /* reported through connect/SO_ERROR */
		}
	}
	/*
	 * EV_INCOMING carries the backlog length when it was posted; each
	 * ACCEPT reply posted after it took one child out.  Counting the
	 * reply here, in ring order (and not when the caller returns, after
	 * a later EV_INCOMING may already have been applied), keeps
	 * `incoming` exact: a count one too low hides a waiting connection
	 * from poll/epoll until the next one arrives.
	 */
	if (st->opcode == ISOSTACK_SHM_OP_ACCEPT && st->result > 0 && f->incoming > 0)
		f->incoming--;
	if (st->opcode == ISOSTACK_SHM_OP_CLOSE && f->state == F_CLOSING) {
		/* After EV_CLOSED, this is the -EBADF of a CLOSE that
		 * crossed it. */
		f->closed_reply = true;
		return;
	}
	for (int i = 0; i < NREP; i++) {
		struct rep *r = &f->rep[i];

		if (!r->used || r->cookie != st->cookie)
			continue;
		if (r->abandoned) {
			/* an accept nobody waits for any more: keep the child */
			if (st->opcode == ISOSTACK_SHM_OP_ACCEPT && st->result > 0 &&
			    f->nstash < NSTASH)
				f->stash[f->nstash++] = (uint32_t)st->result;
			r->used = false;
			return;
		}
		r->st = *st;
		atomic_store_explicit((_Atomic bool *)&r->done, true, memory_order_release);
		return;
	}
}

/* Under f->lock.  A closing slot is drained one entry at a time, so the
 * entries of the slot's next socket are never consumed here. */
void isosock__drain(struct isosock_app *app, int s, struct fsock *f)
{
	struct isostack_shm_status st[16];
	int n;

	do {
		unsigned want = f->state == F_CLOSING ? 1 : 16;

		if (f->state == F_CLOSING && f->closed_reply)
			return;
		n = isoshm_app_recv_status(app->shm, (uint32_t)s, st, want);
		for (int i = 0; i < n; i++)
			handle_status(app, f, &st[i]);
	} while (n > 0);
}

/* Under f->lock: a slot handed to us anew, held by this process. */
void isosock__fs_fresh(struct isosock_app *app, struct fsock *f, enum fstate state,
		       uint32_t tx_prod, uint32_t rx_cons)
{
	struct mset *h = fs_holders(app, (int)(f - app->fs));

	memset((uint8_t *)f + offsetof(struct fsock, state), 0,
	       sizeof(*f) - offsetof(struct fsock, state));
	for (int k = 0; k < MSET_WORDS; k++)
		__atomic_store_n(&h->w[k], 0, __ATOMIC_RELAXED);
	mset_add(h, app->me);
	f->state = (uint8_t)state;
	isosock__closing_mark(app, (int)(f - app->fs), false);
	f->tx_prod = tx_prod;
	f->rx_cons = rx_cons;
	f->tx_bytes = isoshm_app_tx_size(app->shm, (uint32_t)(f - app->fs));
	f->rx_bytes = isoshm_app_rx_size(app->shm, (uint32_t)(f - app->fs));
}

/* Under f->lock: a CLOSING id whose CLOSE reply came is free. */
static void reap_one(struct isosock_app *app, int s, struct fsock *f)
{
	isosock__drain(app, s, f);
	if (f->state != F_CLOSING || !f->closed_reply)
		return;
	/* Its rings went back to the stack with the close: unread bytes are
	 * not drained (the next socket of this id starts where the stack's
	 * directory entry says). */
	f->state = F_FREE;
	isosock__closing_mark(app, s, false);
}

void isosock__reap_all(struct isosock_app *app)
{
	_Atomic uint64_t *closing = isosock__closing(app);
	uint32_t n = isosock__hiwat(app);

	isosock__sweep(app);
	/* Only the ids marked closing (a relaxed peek: the locked re-check
	 * decides). */
	for (uint32_t w = 0; w < (n + 63) / 64; w++) {
		uint64_t bits = atomic_load_explicit(&closing[w], memory_order_relaxed);

		while (bits != 0) {
			uint32_t i = w * 64 + (uint32_t)__builtin_ctzll(bits);
			struct fsock *f = &app->fs[i];

			bits &= bits - 1;
			if (i == 0 || i >= n || fs_trylock(f) != 0)
				continue;
			if (f->state == F_CLOSING)
				reap_one(app, (int)i, f);
			fs_unlock(f);
		}
	}
}

/* ---- Commands and waiting ---------------------------------------------------- */

/*
 * After publishing a command: if the stack core sleeps (power-saving
 * mode), wake it through its eventfd.  The fence pairs with the one the
 * daemon makes between setting stack_napping and re-checking doorbells
 * (shm_abi.h, struct isostack_shm_wait).
 */
static void kick_stack(struct isosock_app *app)
{
	uint64_t one = 1;

	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&app->wait->stack_napping, memory_order_relaxed) == 0 ||
	    app->stack_wake_fd < 0)
		return;
	if (write(app->stack_wake_fd, &one, sizeof(one)) == sizeof(one))
		app->st.stack_kicks++;
}

/* Under f->lock.  Posts c (cookie filled in); returns 0 or -errno. */
int isosock__post(struct isosock_app *app, int s, struct isostack_shm_cmd *c)
{
	int64_t deadline = 0;

	c->sock = (uint32_t)s;
	for (;;) {
		int k = isoshm_app_submit(app->shm, (uint32_t)s, c, 1);

		if (k == 1) {
			app->st.cmds++;
			kick_stack(app);
			return 0;
		}
		if (k == -ENOBUFS)
			return k;       /* its rings could not be mapped: not broken */
		if (k < 0)
			return -EPIPE;
		/* command ring full: the stack is behind; it drains without us */
		if (!isosock_app_alive(app))
			return -ENETDOWN;
		if (deadline == 0)
			deadline = now_ns() + 5LL * 1000000000;
		else if (now_ns() > deadline)
			return -EAGAIN;
		sched_yield();
	}
}

/* Under f->lock: a reply slot for a new command. */
struct rep *isosock__rep_new(struct isosock_app *app, struct fsock *f, int s, struct isostack_shm_cmd *c)
{
	for (int i = 0; i < NREP; i++) {
		struct rep *r = &f->rep[i];

		if (r->used)
			continue;
		memset(r, 0, sizeof(*r));
		r->used = true;
		r->owner = (uint16_t)app->me;
		r->cookie = ((uint64_t)(uint32_t)s << 32) | (++f->seq & 0xffffffffu);
		c->cookie = r->cookie;
		return r;
	}
	return NULL;
}

struct waitarg {
	struct isosock_app *app;
	int s;
	struct rep *r;
	uint32_t rx_cons, tx_prod;
	struct want want;
};

/* Runs lock-free on shared words; only decides whether to look again. */
static bool something_moved(void *p)
{
	struct waitarg *w = p;
	struct isostack_shm_sock *sk = &w->app->socks[w->s];

	if (w->r != NULL && atomic_load_explicit((_Atomic bool *)&w->r->done, memory_order_acquire))
		return true;
	if (atomic_load_explicit(&w->app->dead, memory_order_relaxed))
		return true;
	/* an undrained status entry: a reply or an event to handle */
	if (atomic_load_explicit(&sk->status_prod, memory_order_acquire) !=
	    atomic_load_explicit(&sk->status_cons, memory_order_relaxed))
		return true;
	if (w->want.rx_need != 0 &&
	    atomic_load_explicit(&sk->rx_prod, memory_order_acquire) - w->rx_cons >= w->want.rx_need)
		return true;
	if (w->want.tx_need != 0 &&
	    w->app->fs[w->s].tx_bytes - (w->tx_prod - atomic_load_explicit(&sk->tx_cons, memory_order_acquire)) >=
	    w->want.tx_need)
		return true;
	return false;
}

/*
 * Called with f->lock held; releases it, waits until a reply, a status
 * entry or what `want` names is there (or timeout/signal), retakes it.
 * The futex protocol (announce, re-check, sleep) is isoshm_app_wait's; the
 * wait is cut in WAIT_SLICE_NS slices only to notice a dead daemon (its
 * hang-up wakes nobody).  Returns 0, -ETIMEDOUT (past deadline_ns, 0 =
 * none), -EINTR, -ENETDOWN (daemon gone).
 */
int isosock__wait_moved(struct isosock_app *app, int s, struct fsock *f, struct rep *r,
			int64_t deadline_ns, struct want want)
{
	struct waitarg w = {
		.app = app, .s = s, .r = r, .rx_cons = f->rx_cons, .tx_prod = f->tx_prod,
		.want = want,
	};
	int rc;

	fs_unlock(f);
	for (;;) {
		int64_t slice = WAIT_SLICE_NS;

		if (atomic_load_explicit(&app->dead, memory_order_relaxed)) {
			rc = -ENETDOWN;   /* nobody will answer: never spin on it */
			break;
		}
		if (deadline_ns != 0) {
			int64_t left = deadline_ns - now_ns();

			if (left <= 0) {
				rc = -ETIMEDOUT;
				break;
			}
			if (left < slice)
				slice = left;
		}
		rc = isoshm_app_wait(app->shm, (uint32_t)s, something_moved, &w, SPIN_POLLS, slice);
		if (rc == 0 && atomic_load_explicit(&app->dead, memory_order_relaxed) &&
		    !(r != NULL && atomic_load_explicit((_Atomic bool *)&r->done, memory_order_acquire)))
			rc = -ENETDOWN;
		if (rc == 0 || rc == -EINTR || rc == -ENETDOWN)
			break;
		if (!isosock_app_alive(app)) {
			rc = -ENETDOWN;
			break;
		}
		isosock__sweep(app);
	}
	fs_lock(f);
	return rc;
}

const struct want isosock__want_reply = { 0, 0 };

int64_t isosock__deadline_of(int64_t timeo_ns)
{
	return timeo_ns > 0 ? now_ns() + timeo_ns : 0;
}

/*
 * Posts c and waits for its reply (under f->lock; may drop it while
 * waiting).  nonblock_ns > 0: give up after that long (the reply is then
 * abandoned).  Returns 0 and *out, or -EINTR/-ETIMEDOUT/-ENETDOWN/-EAGAIN.
 */
int isosock__call(struct isosock_app *app, int s, struct fsock *f, struct isostack_shm_cmd *c,
		  struct isostack_shm_status *out, int64_t deadline)
{
	struct rep *r;
	int rc;

	while ((r = isosock__rep_new(app, f, s, c)) == NULL) {
		/* every reply slot is taken (abandoned commands not yet
		 * answered): the same -EAGAIN as a reply that comes too late */
		rc = isosock__wait_moved(app, s, f, NULL, deadline, isosock__want_reply);
		if (rc < 0)
			return rc == -ETIMEDOUT ? -EAGAIN : rc;
		isosock__drain(app, s, f);
	}
	rc = isosock__post(app, s, c);
	if (rc < 0) {
		r->used = false;
		return rc;
	}
	for (;;) {
		isosock__drain(app, s, f);
		if (r->done) {
			*out = r->st;
			r->used = false;
			return 0;
		}
		rc = isosock__wait_moved(app, s, f, r, deadline, isosock__want_reply);
		if (rc < 0 && !r->done) {
			r->abandoned = true;
			return rc == -ETIMEDOUT ? -EAGAIN : rc;
		}
	}
}

/* Simple synchronous command on a live socket. */
int isosock__simple_call(struct isosock_app *app, int s, struct isostack_shm_cmd *c,
			 struct isostack_shm_status *out)
{
	struct fsock *f = fs_get(app, s);
	struct isostack_shm_status st;
	int rc;

	if (f == NULL)
		return -EBADF;
	fs_lock(f);
	if (f->state == F_FREE || f->state == F_CLOSING) {
		fs_unlock(f);
		return -EBADF;
	}
	rc = isosock__call(app, s, f, c, &st, 0);
	fs_unlock(f);
	if (rc < 0)
		return rc == -ENETDOWN ? -ENOTCONN : rc;
	if (out != NULL)
		*out = st;
	return st.result < 0 ? (int)st.result : 0;
}
