/*
 * Watching tx_prod: SENDs the stack does not need (the paper's front-end
 * aggregation, section 4.2; docs/shm.md, "SENDs the stack does not need").
 *
 * After a SEND that follows another within ISOD_TX_WATCH_MS (a writer
 * that keeps writing, not one reply now and then) the stack keeps looking
 * at the socket's tx_prod at every pass, for ISOD_TX_WATCH_MS after the
 * last time it moved, and says so in the socket's directory entry
 * (sockdir.tx_watch).  Meanwhile
 * the application's send() posts no SEND and rings no doorbell: a 64 B
 * send() of a streaming writer costs its core the copy, not a command, a
 * doorbell and the cross-core lines they move.
 *
 * Stopping is the one ordered step, a Dekker pair whose frequent side (the
 * application's look after each write) has only a compiler barrier: the
 * stack stores tx_watch = 0, issues membarrier(GLOBAL_EXPEDITED), which
 * runs a full barrier on every thread of every registered application,
 * then looks at tx_prod once more and takes what it finds as for a SEND.
 * So no byte waits for a SEND nobody posts.  One membarrier serves every
 * watch that ran out, and runs at most once per ISOD_TX_WATCH_STOP_MS
 * (it interrupts the applications' running threads: 63 us on the stack
 * core with one spinning on the other core of the 2-core test VM, 1 us
 * with none): a watch that ran out waits for the next one, looked at
 * meanwhile as before.
 *
 * What a watch costs the stack core: one load of tx_prod per watched
 * socket and pass, at most ISOD_TX_WATCH_MAX sockets per application (a
 * socket past that is served by SENDs, as before).  Idle sockets cost
 * nothing: a watch ends ISOD_TX_WATCH_MS (and up to
 * ISOD_TX_WATCH_STOP_MS more) after the bytes stopped, and every watch ends before the
 * loop naps (the application must then ring its doorbell, which wakes
 * the loop).  An application keeps a watch only by writing: its bytes go
 * through the same validated peek as a SEND's (a wild tx_prod breaks its
 * socket, which ends the watch).  No watch begins where membarrier does
 * not work (isostat's mem.membarrier -1).
 */
#include "internal.h"

/* Takes entry i off app's list (the last entry moves to i). */
static void list_del(struct isod_app *app, unsigned i)
{
	app->socks[app->tx_watch[i]].tx_watched = false;
	app->tx_watch[i] = app->tx_watch[--app->ntx_watch];
}

/* Watchable: a TCP connection of lwIP's path that may send more and has a
 * ring to send from, of an application that is served. */
static bool watchable(const struct isod_sock *sk)
{
	const struct isod_app *app = sk->app;

	return sk->in_use && !sk->udp && !sk->cut && sk->pcb != NULL &&
	       sk->state == ISOD_S_CONNECTED && !sk->shut_wr &&
	       sk->tx.bytes != 0 && !app->no_tx_agg && !app->dead && !app->draining;
}

void isod_sk_tx_watch(struct isod_sock *sk)
{
	struct isod_app *app = sk->app;
	struct isod_backend *be = app->be;

	uint32_t now = isod_backend_now(be);

	if (!be->conf.tx_watch)
		return;
	if (sk->tx_watched) {
		sk->tx_watch_ms = now;
		return;
	}
	/* A writer that sends again soon: one SEND now and then (a reply to
	 * each request) costs less than a watch's stop. */
	if (sk->tx_send_ms == 0 || now - (sk->tx_send_ms - 1) > ISOD_TX_WATCH_MS) {
		sk->tx_send_ms = now + 1;
		return;
	}
	if (be->membar == 0)   /* not tried yet: stopping needs it */
		be->membar = isoshm_membarrier_global() == 0 ? 1 : -1;
	if (be->membar < 0 || app->ntx_watch == ISOD_TX_WATCH_MAX || !watchable(sk) ||
	    isoshm_stack_tx_watch(app->shm, sk->id) < 0)
		return;
	sk->tx_watched = true;
	sk->tx_send_ms = 0;
	sk->tx_watch_ms = now;
	app->tx_watch[app->ntx_watch++] = sk->id;
	be->st.tx_watches++;
}

/* Freed or moved: its bytes no longer matter, no barrier needed. */
void isod_sk_tx_unwatch(struct isod_sock *sk)
{
	struct isod_app *app = sk->app;

	if (!sk->tx_watched)
		return;
	for (unsigned i = 0; i < app->ntx_watch; i++)
		if (app->tx_watch[i] == sk->id) {
			(void)isoshm_stack_tx_unwatch(app->shm, sk->id);
			list_del(app, i);
			return;
		}
}

/* Its watch ran out: no bytes for ISOD_TX_WATCH_MS. */
static bool ran_out(const struct isod_sock *sk, uint32_t now)
{
	return now - sk->tx_watch_ms > ISOD_TX_WATCH_MS;
}

unsigned isod_tx_watch_poll(struct isod_app *app)
{
	unsigned work = 0, i = 0;
	uint32_t now;

	if (app->ntx_watch == 0)
		return 0;
	now = isod_backend_now(app->be);

	while (i < app->ntx_watch) {
		struct isod_sock *sk = &app->socks[app->tx_watch[i]];

		if (!watchable(sk)) {
			/* closing, dead, shut: the command that made it so
			 * took the bytes, or they no longer matter */
			(void)isoshm_stack_tx_unwatch(app->shm, sk->id);
			list_del(app, i);
			continue;
		}
		if (isoshm_stack_tx_moved(app->shm, sk->id)) {
			sk->tx_watch_ms = now;
			app->be->st.tx_watch_takes++;
			isod_sk_tx_push(sk);
			work++;
		} else if (ran_out(sk, now)) {
			app->be->tx_watch_due++;
		}
		i++;
	}
	return work;
}

/* Stops the watches that ran out (all: every one), around one barrier.
 * Returns the sockets whose last bytes it took. */
static unsigned stop(struct isod_backend *be, bool all)
{
	uint32_t now = isod_backend_now(be);
	unsigned took = 0;
	bool barrier;

	for (struct isod_app *a = be->apps; a != NULL; a = a->next)
		for (unsigned i = 0; i < a->ntx_watch; i++) {
			struct isod_sock *sk = &a->socks[a->tx_watch[i]];

			sk->tx_watch_stopping = all || ran_out(sk, now);
			if (sk->tx_watch_stopping)
				(void)isoshm_stack_tx_unwatch(a->shm, sk->id);
		}
	barrier = isoshm_membarrier_global() == 0;
	if (!barrier)
		be->membar = -1;   /* no new watches; these go on */
	for (struct isod_app *a = be->apps; a != NULL; a = a->next) {
		unsigned i = 0;

		while (i < a->ntx_watch) {
			struct isod_sock *sk = &a->socks[a->tx_watch[i]];

			if (!sk->tx_watch_stopping) {
				i++;
				continue;
			}
			sk->tx_watch_stopping = false;
			if (!barrier) {
				/* an application may have seen the 0 and posted
				 * a SEND: harmless */
				(void)isoshm_stack_tx_watch(a->shm, sk->id);
				i++;
				continue;
			}
			list_del(a, i);
			be->st.tx_watch_stops++;
			if (isoshm_stack_tx_unwatched(a->shm, sk->id) > 0) {
				/* its writer may have seen the watch: no SEND */
				be->st.tx_watch_takes++;
				isod_sk_tx_push(sk);
				took++;
			}
		}
	}
	return took;
}

unsigned isod_tx_watch_stops(struct isod_backend *be)
{
	uint32_t now;

	if (be->tx_watch_due == 0)
		return 0;
	be->tx_watch_due = 0;
	now = isod_backend_now(be);
	if (now - be->tx_watch_stop_ms < ISOD_TX_WATCH_STOP_MS)
		return 0;       /* one barrier per ISOD_TX_WATCH_STOP_MS at most */
	be->tx_watch_stop_ms = now;
	return stop(be, false);
}

unsigned isod_tx_watch_end_all(struct isod_backend *be)
{
	bool any = false;

	for (struct isod_app *a = be->apps; a != NULL && !any; a = a->next)
		any = a->ntx_watch > 0;
	return any ? stop(be, true) : 0;
}
