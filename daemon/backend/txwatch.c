/*
 * Watching tx_prod: SENDs the stack does not need (the paper's front-end
 * aggregation, section 4.2; docs/shm.md, "SENDs the stack does not need").
 *
 * After a SEND the stack keeps looking at the socket's tx_prod at every
 * pass, for ISOD_TX_WATCH_PASSES passes after the last time it moved, and
 * says so in the socket's directory entry (sockdir.tx_watch).  Meanwhile
 * the application's send() posts no SEND and rings no doorbell: a 64 B
 * send() of a streaming writer costs its core the copy and a fence, not a
 * command, a doorbell and the cross-core lines they move.  Stopping is the
 * one ordered step (isoshm_stack_tx_unwatch: fence W2 against the
 * application's W1), and bytes found then are taken as for a SEND, so no
 * byte waits for a SEND nobody posts.
 *
 * What a watch costs the stack core: one load of tx_prod per watched
 * socket and pass, at most ISOD_TX_WATCH_MAX sockets per application (a
 * socket past that is served by SENDs, as before).  Idle sockets cost
 * nothing: a watch ends ISOD_TX_WATCH_PASSES passes after the bytes
 * stopped, and every watch ends before the loop naps (the application
 * must then ring its doorbell, which wakes the loop).  An application can
 * keep a watch only by writing: the bytes go through the same validated
 * peek as a SEND's (a wild tx_prod breaks its socket, which ends the
 * watch).
 */
#include "internal.h"

/* A watched socket served by SENDs from now on. */
static void unwatch_at(struct isod_app *app, unsigned i)
{
	struct isod_sock *sk = &app->socks[app->tx_watch[i]];
	int moved;

	sk->tx_watched = false;
	app->tx_watch[i] = app->tx_watch[--app->ntx_watch];
	moved = isoshm_stack_tx_unwatch(app->shm, sk->id);
	/* Bytes whose writer may have seen the watch and posted no SEND:
	 * take them now (a socket no longer sending drops them as a SEND's
	 * push would). */
	if (moved > 0) {
		app->be->st.tx_watch_takes++;
		isod_sk_tx_push(sk);
	}
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

	if (sk->tx_watched) {
		sk->tx_watch_idle = 0;
		return;
	}
	if (app->ntx_watch == ISOD_TX_WATCH_MAX || !watchable(sk) ||
	    isoshm_stack_tx_watch(app->shm, sk->id) < 0)
		return;
	sk->tx_watched = true;
	sk->tx_watch_idle = 0;
	app->tx_watch[app->ntx_watch++] = sk->id;
	app->be->st.tx_watches++;
}

void isod_sk_tx_unwatch(struct isod_sock *sk)
{
	struct isod_app *app = sk->app;

	if (!sk->tx_watched)
		return;
	for (unsigned i = 0; i < app->ntx_watch; i++)
		if (app->tx_watch[i] == sk->id) {
			unwatch_at(app, i);
			return;
		}
}

unsigned isod_tx_watch_poll(struct isod_app *app)
{
	unsigned work = 0, i = 0;

	while (i < app->ntx_watch) {
		struct isod_sock *sk = &app->socks[app->tx_watch[i]];

		if (!watchable(sk) || ++sk->tx_watch_idle > ISOD_TX_WATCH_PASSES) {
			unwatch_at(app, i);     /* the last entry moved to i */
			continue;
		}
		if (isoshm_stack_tx_moved(app->shm, sk->id)) {
			sk->tx_watch_idle = 0;
			app->be->st.tx_watch_takes++;
			isod_sk_tx_push(sk);
			work++;
		}
		i++;
	}
	return work;
}

unsigned isod_tx_watch_end_all(struct isod_backend *be)
{
	unsigned moved = 0;

	for (struct isod_app *a = be->apps; a != NULL; a = a->next) {
		uint64_t takes = be->st.tx_watch_takes;

		while (a->ntx_watch > 0)
			unwatch_at(a, a->ntx_watch - 1);
		moved += be->st.tx_watch_takes != takes;
	}
	return moved;
}
