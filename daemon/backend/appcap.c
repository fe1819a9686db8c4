/*
 * An application's share of lwIP's global pools.
 *
 * lwIP allocates from pools shared by every application: TCP pcbs
 * (MEMP_NUM_TCP_PCB), listening pcbs, UDP pcbs, TX segments and their
 * pbufs (MEMP_NUM_TCP_SEG, MEMP_NUM_PBUF), and the received pbufs (the
 * daemon's mbufs) a socket holds until its RX ring takes them.  Without
 * a cap one application could take all of a pool and every other one
 * would fail with it.  Each application is charged here for what its
 * sockets hold, and at its cap it fails or waits the way the kernel
 * makes a process fail or wait, never touching other applications:
 *
 *   pcbs     SOCKET and LISTEN fail with ENOBUFS (the kernel's answer
 *            when socket memory is short); a connection completing its
 *            handshake on a listener waits half open, as with a full
 *            accept queue (sock_tcp.c, cb_accept), until the application
 *            closes one.  Listening and UDP pcbs: half of their pools.
 *   tx_segs  what a socket hands to tcp_write stops; its bytes wait in
 *            its TX ring, so send() fills the ring and then says EAGAIN
 *            (or blocks).  The socket waits on its application's list
 *            and is resumed once acknowledgements bring the application
 *            a quarter below its cap.
 *   rx_held  the receive callback refuses the data: lwIP keeps it as the
 *            pcb's refused data, drops further segments of that
 *            connection (the peer retransmits) and offers it again every
 *            fast timer tick.  So the application holds at most its cap
 *            plus one refused chain per connection.
 *
 * A pcb is charged while a socket holds it; once detached (FIN_WAIT,
 * TIME_WAIT after a close) it is lwIP's, which reuses TIME_WAIT pcbs
 * first when its pool runs out.  TX entries are lwIP's own per-pcb count
 * (snd_queuelen: a zero-copy segment is a header pbuf and a reference
 * pbuf), synchronised whenever the socket writes or is acknowledged.
 */
#include <errno.h>
#include <stdio.h>

#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"

#include "internal.h"

/* Half of the listening and UDP pools: lwipopts.h's sizes. */
#define CAP_LISTEN (MEMP_NUM_TCP_PCB_LISTEN / 2)
#define CAP_UDP    (MEMP_NUM_UDP_PCB / 2)

int isod_cap_pcb_room(struct isod_app *app, bool udp, bool listen)
{
	struct isod_backend *be = app->be;
	bool full;

	if (udp)
		full = app->nudp >= CAP_UDP;
	else if (listen)
		full = app->nlisten >= CAP_LISTEN;
	else
		full = be->conf.app_pcbs != 0 && app->npcbs >= be->conf.app_pcbs;
	if (!full)
		return 0;
	be->st.app_cap_pcbs++;
	return -ENOBUFS;
}

void isod_cap_pcb_sync(struct isod_sock *sk)
{
	struct isod_app *app = sk->app;
	bool holds = sk->pcb != NULL || sk->upcb != NULL;
	bool listen = sk->pcb != NULL && sk->pcb->state == LISTEN;

	if (holds && !sk->pcb_charged) {
		if (sk->upcb != NULL)
			app->nudp++;
		else
			app->npcbs++;
	} else if (!holds && sk->pcb_charged) {
		if (sk->udp)
			app->nudp--;
		else
			app->npcbs--;
	}
	sk->pcb_charged = holds;
	if (listen != sk->listen_charged) {
		if (listen)
			app->nlisten++;
		else
			app->nlisten--;
		sk->listen_charged = listen;
	}
}

/* Resumes the application's waiting sockets (each tries tx_push again;
 * one that still finds no room waits again). */
static void segs_wake(struct isod_app *app)
{
	while (app->segw_head != 0) {
		struct isod_sock *sk = &app->socks[app->segw_head - 1];

		app->segw_head = sk->segw_next;
		sk->segw_next = 0;
		sk->seg_waiting = false;
		if (sk->state != ISOD_S_FREE && sk->pcb != NULL)
			isod_sock_queue(sk, ISOD_R_SENT);
	}
	app->segw_tail = 0;
}

void isod_cap_segs_sync(struct isod_sock *sk)
{
	struct isod_app *app = sk->app;
	uint32_t cap = app->be->conf.app_tx_segs;
	uint32_t now = sk->pcb != NULL && !sk->udp && sk->pcb->state != LISTEN ?
		       sk->pcb->snd_queuelen : 0;

	if (now == sk->segs)
		return;
	app->tx_segs = app->tx_segs - sk->segs + now;
	sk->segs = now;
	if (app->segw_head != 0 && app->tx_segs <= ISOD_SEGS_WAKE(cap))
		segs_wake(app);
}

static void segs_wait(struct isod_sock *sk)
{
	struct isod_app *app = sk->app;

	app->be->st.app_cap_tx_segs++;
	if (sk->seg_waiting)
		return;
	sk->seg_waiting = true;
	sk->segw_next = 0;
	if (app->segw_tail != 0)
		app->socks[app->segw_tail - 1].segw_next = sk->id + 1;
	else
		app->segw_head = sk->id + 1;
	app->segw_tail = sk->id + 1;
}

uint32_t isod_cap_segs_room(struct isod_sock *sk, uint32_t need)
{
	struct isod_app *app = sk->app;
	uint32_t cap = app->be->conf.app_tx_segs;
	/* what tcp_write added since the last sync counts already */
	uint32_t used = app->tx_segs - sk->segs + sk->pcb->snd_queuelen;

	if (cap == 0)
		return UINT32_MAX;
	if (used < cap && cap - used >= need)
		return cap - used;
	segs_wait(sk);
	return 0;
}

bool isod_cap_rx_take(struct isod_sock *sk, const struct pbuf *p)
{
	struct isod_app *app = sk->app;
	uint64_t cap = app->be->conf.app_rx_held;
	uint64_t t = 0;

	for (const struct pbuf *q = p; q != NULL; q = q->next)
		t += isod_pbuf_true(q);
	/* An application holding nothing always takes one chain: what one
	 * segment brings can never wait forever. */
	if (cap != 0 && app->rx_true != 0 && app->rx_true + t > cap) {
		app->be->st.app_cap_rx_held++;
		return false;
	}
	app->rx_true += t;
	sk->rx_true += t;
	return true;
}

void isod_cap_rx_put(struct isod_sock *sk, uint64_t bytes)
{
	sk->rx_true -= bytes;
	sk->app->rx_true -= bytes;
}

size_t isod_cap_format_stats(const struct isod_backend *be, char *buf, size_t len)
{
	int n = snprintf(buf, len,
		"backend.app_cap_pcbs %llu\nbackend.app_cap_tx_segs %llu\n"
		"backend.app_cap_rx_held %llu\n",
		(unsigned long long)be->st.app_cap_pcbs,
		(unsigned long long)be->st.app_cap_tx_segs,
		(unsigned long long)be->st.app_cap_rx_held);

	if (n < 0)
		return 0;
	return (size_t)n < len ? (size_t)n : len ? len - 1 : 0;
}
