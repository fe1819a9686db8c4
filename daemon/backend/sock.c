/*
 * The per-socket state machines of the back-end (paper 4.4).
 *
 * Commands arrive from isod_sock_run_cmds() (a doorbell named the socket);
 * each runs to completion if it can, or parks: ACCEPT without a pending
 * connection, CONNECT until established, CLOSE until every byte of the TX
 * ring has been acknowledged (lwIP's segments point into that ring, so the
 * slot's memory is referenced until then) or close_timeout_ms passed
 * (a peer that keeps its window shut: then RST), SEND while lwIP's send
 * buffer is full.  lwIP callbacks never run commands: they record what happened
 * (data held, bytes acked, pcb gone) and queue the socket with an event
 * bit; isod_sock_resume(), called by the dispatcher when it drains the
 * queue, does the work and posts replies and events.
 *
 * Data path: TX is zero-copy -- tcp_write() without TCP_WRITE_FLAG_COPY on
 * spans of the application's TX ring, released (tx_cons) as tcp_sent
 * reports acknowledgements.  RX is one copy, from lwIP's pbufs into the RX
 * ring; tcp_recved() credits exactly what the application consumed.  Every
 * connection starts with a receive window of min(TCP_WND, ring size), set
 * before the first segment that announces it (wnd_passive_open for
 * accepted connections, cb_connected for connect), so the window is never
 * larger than the ring's free space and what lwIP accepted always fits in
 * the ring: pbufs are held only until the next pass copies them.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* glibc's <netinet/in.h> defines the byte-order macros; lwIP must not. */
#define LWIP_DONT_PROVIDE_BYTEORDER_FUNCTIONS 1
#include <netinet/in.h>

#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"
#include "lwip/udp.h"

#include "internal.h"

/* <netinet/tcp.h> would clash with lwIP's TCP_MSS: Linux's values. */
#ifndef TCP_NODELAY
#define TCP_NODELAY   1
#define TCP_CORK      3
#define TCP_KEEPIDLE  4
#define TCP_KEEPINTVL 5
#define TCP_KEEPCNT   6
#endif

#define EVBIT(ev) (1u << ((ev) - ISOSTACK_SHM_EV_RX))

static void sk_flush(struct isod_sock *sk);
static void sk_detach_pcb(struct isod_sock *sk);

/* ---- Event queue --------------------------------------------------------- */

void isod_sock_queue(struct isod_sock *sk, uint32_t bits)
{
	struct isod_backend *be = sk->app->be;

	sk->ready |= bits;
	if (sk->queued)
		return;
	sk->queued = true;
	sk->ready_next = NULL;
	*be->ready_tail = sk;
	be->ready_tail = &sk->ready_next;
}

/* ---- Status posting with back-pressure ----------------------------------- */

/* Application-side waiters (hints only: a lie costs the app extra events). */
static bool app_waits(const struct isod_sock *sk)
{
	return atomic_load_explicit(&sk->app->shared_socks[sk->id].waiters, memory_order_relaxed) != 0 ||
	       atomic_load_explicit(&sk->app->shared_wait->waiters, memory_order_relaxed) != 0;
}

static void sk_kill(struct isod_sock *sk, int err);

/* Posts one status entry now, or keeps it for later (never dropped while
 * room is left in pend[]; the command reader keeps room). */
static void sk_post(struct isod_sock *sk, const struct isostack_shm_status *st)
{
	struct isod_backend *be = sk->app->be;
	int k = 0;

	if (sk->npend == 0 && sk->ev_pending == 0) {
		k = isoshm_stack_post_status(sk->app->shm, sk->id, st, 1);
		if (k == 1) {
			sk->st_posted++;
			isod_app_kick(sk->app, sk->id);
			return;
		}
		if (k < 0) {
			sk_kill(sk, -EPROTO);
			return;
		}
	}
	if (sk->npend == ISOD_PEND_MAX) {
		/* the reader keeps room: only a stuck status ring gets here */
		be->st.status_deferred++;
		return;
	}
	sk->pend[sk->npend++] = *st;
	be->st.status_deferred++;
	isod_sock_queue(sk, ISOD_R_FLUSH);
}

static void sk_reply(struct isod_sock *sk, const struct isostack_shm_cmd *c, int64_t result)
{
	struct isostack_shm_status st = {
		.opcode = c->opcode, .sock = sk->id, .cookie = c->cookie, .result = result,
	};

	sk_post(sk, &st);
}

static void sk_event(struct isod_sock *sk, uint16_t ev)
{
	sk->ev_pending |= EVBIT(ev);
	sk_flush(sk);
}

static void sk_flush(struct isod_sock *sk)
{
	struct isod_app *app = sk->app;

	while (sk->npend > 0) {
		int k = isoshm_stack_post_status(app->shm, sk->id, sk->pend, sk->npend);

		if (k < 0) {
			sk->npend = 0;
			sk_kill(sk, -EPROTO);
			return;
		}
		if (k == 0)
			goto later;
		sk->st_posted += (uint32_t)k;
		isod_app_kick(app, sk->id);
		memmove(sk->pend, sk->pend + k, (size_t)(sk->npend - k) * sizeof(sk->pend[0]));
		sk->npend = (uint8_t)(sk->npend - k);
	}
	while (sk->ev_pending != 0) {
		unsigned b = (unsigned)__builtin_ctz(sk->ev_pending);
		struct isostack_shm_status st = {
			.opcode = (uint16_t)(ISOSTACK_SHM_EV_RX + b), .sock = sk->id,
		};
		int k;

		if (st.opcode == ISOSTACK_SHM_EV_ERROR || st.opcode == ISOSTACK_SHM_EV_CONNECTED)
			st.result = sk->err;
		if (st.opcode == ISOSTACK_SHM_EV_INCOMING)
			st.arg[0] = sk->bl_count;
		k = isoshm_stack_post_status(app->shm, sk->id, &st, 1);
		if (k < 0) {
			sk->ev_pending = 0;
			sk_kill(sk, -EPROTO);
			return;
		}
		if (k == 0)
			goto later;
		sk->st_posted++;
		sk->ev_pending &= ~(1u << b);
		app->be->st.events++;
		isod_app_kick(app, sk->id);
	}
	return;
later:
	isod_sock_queue(sk, ISOD_R_FLUSH);
}

/* ---- Slots ------------------------------------------------------------------ */

static uint64_t ring_bytes(const struct isod_app *app)
{
	return (uint64_t)app->hdr.tx_ring_bytes + app->hdr.rx_ring_bytes;
}

/*
 * A free slot the application has finished with: it consumed every status
 * (including the CLOSE reply) and every RX byte, so both sides' views agree
 * without either resetting a ring the other may still use.  Returns NULL
 * (-EMFILE) or (-ENOBUFS) in *err.
 */
static struct isod_sock *sk_alloc(struct isod_app *app, int *err)
{
	uint32_t n = app->hdr.nr_sockets;
	uint64_t need = ring_bytes(app);

	if (app->be->conf.mem_limit != 0 && app->mem_used + need > app->be->conf.mem_limit) {
		*err = -ENOBUFS;
		return NULL;
	}
	for (uint32_t i = 1; i < n; i++) {
		struct isod_sock *sk = &app->socks[i];
		uint32_t cons;

		if (sk->state != ISOD_S_FREE || sk->npend != 0)
			continue;
		/* Relaxed, untrusted: a lying application only hurts itself
		 * (its view of the slot goes out of step). */
		cons = atomic_load_explicit(&app->shared_socks[i].status_cons, memory_order_relaxed);
		if (cons != sk->st_posted)
			continue;
		if (isoshm_stack_rx_space(app->shm, i) != (int)app->hdr.rx_ring_bytes)
			continue;
		if (isoshm_stack_sock_reset(app->shm, i) < 0)
			continue;
		uint32_t st_posted = sk->st_posted, rx_prod = sk->rx_prod;
		memset(sk, 0, sizeof(*sk));
		sk->app = app;
		sk->id = i;
		sk->st_posted = st_posted;
		sk->rx_prod = rx_prod;
		sk->rx_cons_seen = rx_prod;
		sk->mem = need;
		app->mem_used += need;
		return sk;
	}
	*err = -EMFILE;
	return NULL;
}

static void rx_hold_drop(struct isod_sock *sk);

static void closing_unlink(struct isod_sock *sk)
{
	struct isod_backend *be = sk->app->be;

	if (!sk->closing_linked)
		return;
	if (sk->closing_prev != NULL)
		sk->closing_prev->closing_next = sk->closing_next;
	else
		be->closing_head = sk->closing_next;
	if (sk->closing_next != NULL)
		sk->closing_next->closing_prev = sk->closing_prev;
	else
		be->closing_tail = sk->closing_prev;
	sk->closing_prev = sk->closing_next = NULL;
	sk->closing_linked = false;
}

/* A CLOSE parks: it gets its deadline (same timeout for all: the list
 * stays sorted by appending). */
static void closing_link(struct isod_sock *sk)
{
	struct isod_backend *be = sk->app->be;

	if (be->conf.close_timeout_ms == 0 || sk->closing_linked)
		return;
	sk->close_deadline = isod_backend_now(be) + be->conf.close_timeout_ms;
	sk->closing_prev = be->closing_tail;
	sk->closing_next = NULL;
	if (be->closing_tail != NULL)
		be->closing_tail->closing_next = sk;
	else
		be->closing_head = sk;
	be->closing_tail = sk;
	sk->closing_linked = true;
}

static void sk_free(struct isod_sock *sk)
{
	closing_unlink(sk);
	sk_detach_pcb(sk);
	rx_hold_drop(sk);
	sk->app->mem_used -= sk->mem;
	sk->mem = 0;
	sk->state = ISOD_S_FREE;
	sk->ev_pending = 0;
	sk->close_pending = false;
}

/* Frees what is still held of the received data (connection gone). */
static void rx_hold_drop(struct isod_sock *sk)
{
	if (sk->rx_hold != NULL) {
		pbuf_free(sk->rx_hold);
		sk->rx_hold = NULL;
	}
	sk->rx_hold_off = 0;
	sk->app->be->st.rx_held -= sk->rx_held;
	sk->rx_held = 0;
}

/* ---- Receive window ----------------------------------------------------------- */

/*
 * lwIP starts every pcb with TCP_WND (65535 until window scaling is agreed);
 * the RX ring may be smaller (docs/sockets.md).  Nothing has been received
 * when this runs, so from here on the window lwIP computes (ring size minus
 * what it accepted plus what the application consumed and rx_pump credited)
 * is never more than the ring's free space.
 */
static void wnd_clamp(struct tcp_pcb *pcb, uint32_t ring)
{
	if (pcb->rcv_wnd > ring)
		pcb->rcv_wnd = (tcpwnd_size_t)ring;
	if (pcb->rcv_ann_wnd > ring)
		pcb->rcv_ann_wnd = (tcpwnd_size_t)ring;
}

/*
 * Accepted connections: lwIP calls this after parsing the SYN (which sets
 * the scaled window) and before queueing the SYN-ACK that announces it.
 * It only adjusts the new pcb's window; npcb->callback_arg is still the
 * listener's socket.
 */
static err_t wnd_passive_open(u8_t id, struct tcp_pcb_listen *lpcb, struct tcp_pcb *npcb)
{
	struct isod_sock *lsk = lpcb->callback_arg;

	(void)id;
	if (lsk != NULL)
		wnd_clamp(npcb, lsk->app->hdr.rx_ring_bytes);
	return ERR_OK;
}

static const struct tcp_ext_arg_callbacks wnd_ext_cbs = {
	.passive_open = wnd_passive_open,
};

/* lwIP hands out extension slots once per process (lwipopts.h has one). */
static u8_t wnd_ext_id(void)
{
	static bool allocated;
	static u8_t id;

	if (!allocated) {
		id = tcp_ext_arg_alloc_id();
		allocated = true;
	}
	return id;
}

/*
 * lwIP sends a window update by itself once the window grew by
 * TCP_WND_UPDATE_THRESHOLD (4 MSS); with a ring below about 4 times that
 * a sender facing a full ring would wait for its persist timer.  Announce
 * once a quarter of the ring (at least one MSS) is free and unannounced.
 */
static void wnd_update(struct isod_sock *sk)
{
	struct tcp_pcb *pcb = sk->pcb;
	uint32_t step = sk->app->hdr.rx_ring_bytes / 4;
	int32_t unannounced = (int32_t)(pcb->rcv_nxt + pcb->rcv_wnd - pcb->rcv_ann_right_edge);

	if (step < TCP_MSS)
		step = TCP_MSS;
	if (unannounced >= (int32_t)step) {
		tcp_ack_now(pcb);
		tcp_output(pcb);
	}
}

/* ---- lwIP callbacks: record and queue, nothing else ------------------------ */

static int err_to_errno(err_t e, bool connecting)
{
	switch (e) {
	case ERR_RST:  return connecting ? -ECONNREFUSED : -ECONNRESET;
	case ERR_ABRT: return -ETIMEDOUT;   /* lwIP gave up retransmitting */
	case ERR_CLSD: return -ENOTCONN;
	case ERR_RTE:  return -ENETUNREACH;
	case ERR_MEM:  return -ENOMEM;
	default:       return -EIO;
	}
}

static err_t cb_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
	struct isod_sock *sk = arg;

	(void)err;
	if (sk == NULL) {
		if (p != NULL) {
			tcp_recved(pcb, p->tot_len);
			pbuf_free(p);
		}
		return ERR_OK;
	}
	if (p == NULL) {
		sk->fin_rcvd = true;
	} else {
		struct isod_backend_stats *st = &sk->app->be->st;

		if (sk->rx_hold == NULL)
			sk->rx_hold = p;
		else
			pbuf_cat(sk->rx_hold, p);
		sk->rx_held += p->tot_len;
		st->rx_held += p->tot_len;
		if (st->rx_held > st->rx_held_max)
			st->rx_held_max = st->rx_held;
	}
	isod_sock_queue(sk, ISOD_R_RX);
	return ERR_OK;
}

static err_t cb_sent(void *arg, struct tcp_pcb *pcb, u16_t len)
{
	struct isod_sock *sk = arg;

	(void)pcb;
	if (sk != NULL) {
		sk->acked += len;
		isod_sock_queue(sk, ISOD_R_SENT);
	}
	return ERR_OK;
}

static void cb_err(void *arg, err_t err)
{
	struct isod_sock *sk = arg;

	if (sk == NULL)
		return;
	sk->pcb = NULL;          /* lwIP freed it */
	if (err == ERR_CLSD) {
		/*
		 * Not an error: LAST_ACK completed (the peer's FIN came first,
		 * ours is acknowledged, so is every byte: tcp_sent ran just
		 * before).  The stream ends cleanly; what lwIP delivered is
		 * still held or in the ring.
		 */
		sk->fin_rcvd = true;
		sk->pcb_closed = true;
		isod_sock_queue(sk, ISOD_R_RX | ISOD_R_SENT);
		return;
	}
	if (sk->err == 0)
		sk->err = err_to_errno(err, sk->state == ISOD_S_CONNECTING);
	isod_sock_queue(sk, ISOD_R_ERR);
}

static err_t cb_connected(void *arg, struct tcp_pcb *pcb, err_t err)
{
	struct isod_sock *sk = arg;

	(void)err;   /* always ERR_OK in lwIP 2.1 */
	if (sk != NULL) {
		/* lwIP acknowledges the SYN-ACK right after this returns: that
		 * ACK is the first segment whose window the peer may use (our
		 * SYN's is never scaled, and no data can come before). */
		wnd_clamp(pcb, sk->app->hdr.rx_ring_bytes);
		isod_sock_queue(sk, ISOD_R_CONNECTED);
	}
	return ERR_OK;
}

static void sk_attach_pcb(struct isod_sock *sk, struct tcp_pcb *pcb)
{
	sk->pcb = pcb;
	tcp_arg(pcb, sk);
	tcp_recv(pcb, cb_recv);
	tcp_sent(pcb, cb_sent);
	tcp_err(pcb, cb_err);
}

static err_t cb_accept(void *arg, struct tcp_pcb *npcb, err_t err)
{
	struct isod_sock *lsk = arg;
	struct isod_sock *child;
	int rc;

	if (lsk == NULL || err != ERR_OK || npcb == NULL)
		return ERR_VAL;
	if (lsk->bl_count >= lsk->bl_max) {
		lsk->app->be->st.accept_dropped++;
		return ERR_MEM;           /* lwIP aborts npcb */
	}
	child = sk_alloc(lsk->app, &rc);
	if (child == NULL) {
		lsk->app->be->st.accept_dropped++;
		return ERR_MEM;
	}
	child->state = ISOD_S_CHILD;
	child->parent = lsk->id;
	sk_attach_pcb(child, npcb);
	if (lsk->bl_count == 0)
		lsk->bl_head = child->id;
	else
		lsk->app->socks[lsk->bl_tail].bl_next = child->id;
	lsk->bl_tail = child->id;
	lsk->bl_count++;
	isod_sock_queue(lsk, ISOD_R_ACCEPT);
	return ERR_OK;
}

/* Stops lwIP from calling us about sk's pcb; the pcb itself stays. */
static void sk_detach_pcb(struct isod_sock *sk)
{
	struct tcp_pcb *pcb = sk->pcb;

	if (sk->upcb != NULL) {
		/* a UDP pcb holds nothing in flight: remove it outright */
		udp_recv(sk->upcb, NULL, NULL);
		udp_remove(sk->upcb);
		sk->upcb = NULL;
	}
	if (pcb == NULL)
		return;
	tcp_arg(pcb, NULL);
	if (pcb->state != LISTEN) {
		tcp_recv(pcb, NULL);
		tcp_sent(pcb, NULL);
		tcp_err(pcb, NULL);
	} else {
		tcp_accept(pcb, NULL);
	}
	sk->pcb = NULL;
}

/* Resets the connection (RST) and forgets the pcb. */
static void sk_abort(struct isod_sock *sk)
{
	struct tcp_pcb *pcb = sk->pcb;

	if (pcb == NULL) {
		sk_detach_pcb(sk);   /* UDP */
		return;
	}
	sk_detach_pcb(sk);
	if (pcb->state == LISTEN)
		tcp_close(pcb);
	else
		tcp_abort(pcb);
}

/* The socket is unusable: RST, EV_ERROR (if its ring still works). */
static void sk_kill(struct isod_sock *sk, int err)
{
	if (err == -EPROTO && sk->state != ISOD_S_DEAD)
		sk->app->be->st.broken_socks++;
	sk_abort(sk);
	rx_hold_drop(sk);
	if (sk->err == 0)
		sk->err = err;
	if (sk->state != ISOD_S_FREE)
		sk->state = ISOD_S_DEAD;
	sk->tx_handed = 0;
	sk->acked = 0;
	/* Tell the application (if its status ring still works: a failing
	 * post comes back here with err_posted already set). */
	if (sk->state == ISOD_S_DEAD && !sk->err_posted && !sk->close_pending) {
		sk->err_posted = true;
		sk_event(sk, ISOSTACK_SHM_EV_ERROR);
	}
}

/* ---- Data path --------------------------------------------------------------- */

/* Credits the window with what the application consumed since last time,
 * then moves held data into the ring.  Posts EV_RX when the ring was empty,
 * EV_HUP after the last byte of a FIN'd stream. */
static void rx_pump(struct isod_sock *sk)
{
	struct isod_app *app = sk->app;
	int space = isoshm_stack_rx_space(app->shm, sk->id);
	uint32_t used, cons, credit;
	bool was_empty;

	if (space < 0) {
		sk_kill(sk, -EPROTO);
		return;
	}
	used = app->hdr.rx_ring_bytes - (uint32_t)space;
	cons = sk->rx_prod - used;
	credit = cons - sk->rx_cons_seen;
	sk->rx_cons_seen = cons;
	if (sk->pcb != NULL && credit != 0) {
		while (credit > 0) {
			uint16_t n = credit > 0xffff ? 0xffff : (uint16_t)credit;

			tcp_recved(sk->pcb, n);
			credit -= n;
		}
		wnd_update(sk);
	}
	was_empty = used == 0;
	while (sk->rx_hold != NULL && space > 0) {
		struct pbuf *q = sk->rx_hold;
		uint32_t avail = q->len - sk->rx_hold_off;
		uint32_t n = avail < (uint32_t)space ? avail : (uint32_t)space;
		int k = 0;

		if (n > 0)
			k = isoshm_stack_rx_write(app->shm, sk->id,
						  (const uint8_t *)q->payload + sk->rx_hold_off, n);
		if (k < 0) {
			sk_kill(sk, -EPROTO);
			return;
		}
		sk->rx_prod += (uint32_t)k;
		sk->rx_hold_off = (uint16_t)(sk->rx_hold_off + k);
		sk->rx_held -= (uint32_t)k;
		app->be->st.rx_held -= (uint64_t)k;
		space -= k;
		app->be->st.rx_bytes += (uint64_t)k;
		if (sk->rx_hold_off == q->len) {
			struct pbuf *next = q->next;

			q->next = NULL;
			q->tot_len = q->len;
			pbuf_free(q);
			sk->rx_hold = next;
			sk->rx_hold_off = 0;
		} else if (k == 0) {
			break;
		}
	}
	if (was_empty && sk->rx_prod - cons != 0)
		sk_event(sk, ISOSTACK_SHM_EV_RX);
	if (sk->fin_rcvd && sk->rx_hold == NULL && !sk->hup_posted) {
		sk->hup_posted = true;
		sk_event(sk, ISOSTACK_SHM_EV_HUP);
	}
}

/* Hands new TX bytes to lwIP without copying, as far as it takes them. */
static void tx_push(struct isod_sock *sk)
{
	struct isod_app *app = sk->app;
	struct isoshm_span sp[2];
	struct tcp_pcb *pcb = sk->pcb;
	uint32_t off, written = 0;
	int total;

	if (pcb == NULL || sk->state != ISOD_S_CONNECTED || sk->shut_wr_done)
		return;
	total = isoshm_stack_tx_peek(app->shm, sk->id, sp);
	if (total < 0) {
		sk_kill(sk, -EPROTO);
		return;
	}
	if ((uint32_t)total == app->hdr.tx_ring_bytes)
		sk->tx_was_full = true;
	off = sk->tx_handed;
	while (off < (uint32_t)total) {
		uint32_t room = tcp_sndbuf(pcb);
		uint32_t in0 = sp[0].len;
		const uint8_t *p;
		uint32_t n;
		err_t e;

		if (off < in0) {
			p = (const uint8_t *)sp[0].addr + off;
			n = in0 - off;
		} else {
			p = (const uint8_t *)sp[1].addr + (off - in0);
			n = (uint32_t)total - off;
		}
		if (n > room)
			n = room;
		if (n > 0xffff)
			n = 0xffff - 0xffff % TCP_MSS;
		if (n == 0 || tcp_sndqueuelen(pcb) >= TCP_SND_QUEUELEN - 8)
			break;
		e = tcp_write(pcb, p, (u16_t)n,
			      off + n < (uint32_t)total ? TCP_WRITE_FLAG_MORE : 0);
		if (e == ERR_MEM)
			break;
		if (e != ERR_OK) {
			sk_kill(sk, err_to_errno(e, false));
			return;
		}
		app->be->st.tx_writes++;
		off += n;
		written += n;
	}
	sk->tx_handed = off;
	if (sk->shut_wr && off == (uint32_t)total) {
		tcp_shutdown(pcb, 0, 1);   /* FIN after the queued data */
		sk->shut_wr_done = true;
		written = 1;
	}
	if (written != 0)
		tcp_output(pcb);
}

/* Releases acknowledged TX bytes; EV_TX if the application may be waiting. */
static void tx_acked(struct isod_sock *sk)
{
	uint32_t n = sk->acked < sk->tx_handed ? sk->acked : sk->tx_handed;

	sk->acked = 0;
	if (n == 0)
		return;
	if (isoshm_stack_tx_release(sk->app->shm, sk->id, n) < 0) {
		sk_kill(sk, -EPROTO);
		return;
	}
	sk->tx_handed -= n;
	sk->app->be->st.tx_bytes += n;
	if (sk->tx_was_full || app_waits(sk)) {
		sk->tx_was_full = false;
		sk_event(sk, ISOSTACK_SHM_EV_TX);
	}
}

/* ---- UDP data path ----------------------------------------------------------- */

#define DGRAM_HDR ((uint32_t)sizeof(struct isostack_shm_dgram))

/* Copies n bytes at logical offset off of a peeked TX region. */
static void span_copy(const struct isoshm_span sp[2], uint32_t off, void *dst, uint32_t n)
{
	uint8_t *d = dst;

	if (off < sp[0].len) {
		uint32_t k = sp[0].len - off < n ? sp[0].len - off : n;

		memcpy(d, (const uint8_t *)sp[0].addr + off, k);
		d += k;
		n -= k;
		off = 0;
	} else {
		off -= sp[0].len;
	}
	if (n > 0)
		memcpy(d, (const uint8_t *)sp[1].addr + off, n);
}

/*
 * Sends every complete datagram record of the TX ring and releases it.
 * One copy (ring -> pbuf): a datagram is done once handed to the stack,
 * so the ring space is reusable at once.
 */
static void udp_tx_push(struct isod_sock *sk)
{
	struct isod_app *app = sk->app;
	struct isod_backend *be = app->be;
	struct isoshm_span sp[2];
	uint32_t off = 0;
	int total;

	if (sk->upcb == NULL)
		return;
	total = isoshm_stack_tx_peek(app->shm, sk->id, sp);
	if (total < 0) {
		sk_kill(sk, -EPROTO);
		return;
	}
	if ((uint32_t)total == app->hdr.tx_ring_bytes)
		sk->tx_was_full = true;
	while ((uint32_t)total - off >= DGRAM_HDR) {
		struct isostack_shm_dgram h;
		uint32_t rec;
		struct pbuf *p;
		err_t e = ERR_MEM;

		span_copy(sp, off, &h, DGRAM_HDR);
		if (h.len > ISOSTACK_SHM_DGRAM_MAX || h.flags != 0 || h.reserved != 0 ||
		    ISOSTACK_SHM_DGRAM_REC(h.len) > app->hdr.tx_ring_bytes) {
			sk_kill(sk, -EPROTO);
			return;
		}
		rec = ISOSTACK_SHM_DGRAM_REC(h.len);
		if ((uint32_t)total - off < rec)
			break;   /* the rest of it is not published yet */
		p = pbuf_alloc(PBUF_TRANSPORT, (u16_t)h.len, PBUF_RAM);
		if (p != NULL) {
			span_copy(sp, off + DGRAM_HDR, p->payload, h.len);
			if (h.addr == 0 && h.port == 0) {
				e = (sk->upcb->flags & UDP_FLAGS_CONNECTED) ?
				    udp_send(sk->upcb, p) : ERR_VAL;
			} else {
				ip_addr_t ip;

				ip_addr_set_ip4_u32_val(ip, h.addr);
				e = udp_sendto(sk->upcb, p, &ip, ntohs(h.port));
			}
			pbuf_free(p);
		}
		if (e == ERR_OK) {
			be->st.udp_tx_dgrams++;
			be->st.tx_bytes += h.len;
		} else {
			be->st.udp_tx_dropped++;
		}
		off += rec;
	}
	if (off == 0)
		return;
	if (isoshm_stack_tx_release(app->shm, sk->id, off) < 0) {
		sk_kill(sk, -EPROTO);
		return;
	}
	if (sk->tx_was_full || app_waits(sk)) {
		sk->tx_was_full = false;
		sk_event(sk, ISOSTACK_SHM_EV_TX);
	}
}

/* lwIP delivered a datagram: one record into the RX ring, or dropped if
 * it does not fit.  Only shared memory is touched here; the event is
 * posted from the queue. */
static void cb_udp_recv(void *arg, struct udp_pcb *pcb, struct pbuf *p,
			const ip_addr_t *addr, u16_t port)
{
	static const uint8_t zeros[ISOSTACK_SHM_DGRAM_ALIGN];
	struct isod_sock *sk = arg;
	struct isod_app *app;
	struct isostack_shm_dgram h = { 0 };
	uint32_t rec, pad, wrote = 0;
	int space;

	(void)pcb;
	if (sk == NULL || p == NULL) {
		if (p != NULL)
			pbuf_free(p);
		return;
	}
	app = sk->app;
	space = isoshm_stack_rx_space(app->shm, sk->id);
	if (space < 0) {
		pbuf_free(p);
		sk->udp_broken = true;
		isod_sock_queue(sk, ISOD_R_RX);
		return;
	}
	rec = ISOSTACK_SHM_DGRAM_REC(p->tot_len);
	if (p->tot_len > ISOSTACK_SHM_DGRAM_MAX || rec > (uint32_t)space) {
		app->be->st.udp_rx_dropped++;
		pbuf_free(p);
		return;
	}
	h.len = p->tot_len;
	h.port = htons(port);
	h.addr = ip_2_ip4(addr)->addr;
	pad = rec - DGRAM_HDR - p->tot_len;
	/* The space was checked: every write below takes all it is given. */
	wrote += (uint32_t)isoshm_stack_rx_write(app->shm, sk->id, &h, DGRAM_HDR);
	for (struct pbuf *q = p; q != NULL; q = q->next)
		if (q->len > 0)
			wrote += (uint32_t)isoshm_stack_rx_write(app->shm, sk->id, q->payload, q->len);
	if (pad > 0)
		wrote += (uint32_t)isoshm_stack_rx_write(app->shm, sk->id, zeros, pad);
	sk->rx_prod += wrote;
	app->be->st.rx_bytes += p->tot_len;
	app->be->st.udp_rx_dgrams++;
	pbuf_free(p);
	if ((uint32_t)space == app->hdr.rx_ring_bytes || app_waits(sk)) {
		sk->rx_ev_due = true;
		isod_sock_queue(sk, ISOD_R_RX);
	}
}

static void udp_rx_resume(struct isod_sock *sk)
{
	if (sk->udp_broken) {
		sk->udp_broken = false;
		sk_kill(sk, -EPROTO);
		if (!sk->err_posted) {
			sk->err_posted = true;
			sk_event(sk, ISOSTACK_SHM_EV_ERROR);
		}
		return;
	}
	if (sk->rx_ev_due) {
		sk->rx_ev_due = false;
		sk_event(sk, ISOSTACK_SHM_EV_RX);
	}
}

/* ---- Parked commands --------------------------------------------------------- */

static void put_addr(uint64_t *arg, const ip_addr_t *ip, u16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };

	sin.sin_addr.s_addr = ip_2_ip4(ip)->addr;
	arg[0] = sizeof(sin);
	memcpy(&arg[1], &sin, sizeof(sin));
}

static void accept_serve(struct isod_sock *lsk)
{
	struct isod_app *app = lsk->app;

	while (lsk->accept_parked > 0 && lsk->bl_count > 0) {
		struct isod_sock *child = &app->socks[lsk->bl_head];
		struct isostack_shm_status st = {
			.opcode = ISOSTACK_SHM_OP_ACCEPT, .sock = lsk->id,
			.cookie = lsk->accept_cookie[0], .result = child->id,
		};

		lsk->bl_head = child->bl_next;
		lsk->bl_count--;
		lsk->accept_parked--;
		memmove(lsk->accept_cookie, lsk->accept_cookie + 1,
			lsk->accept_parked * sizeof(lsk->accept_cookie[0]));
		if (child->pcb != NULL)
			put_addr(st.arg, &child->pcb->remote_ip, child->pcb->remote_port);
		if (child->pcb != NULL) {
			child->local_ip = child->pcb->local_ip;
			child->local_port = child->pcb->local_port;
		}
		if (child->state == ISOD_S_CHILD)
			child->state = ISOD_S_CONNECTED;
		sk_post(lsk, &st);
		isod_sock_queue(child, ISOD_R_RX | ISOD_R_SENT);
	}
	if (lsk->bl_count > 0)
		sk_event(lsk, ISOSTACK_SHM_EV_INCOMING);
}

static void close_finish(struct isod_sock *sk)
{
	/* arg0: the final rx_prod, so the application drains exactly the old
	 * socket's bytes and never those of the slot's next socket. */
	struct isostack_shm_status st = {
		.opcode = ISOSTACK_SHM_OP_CLOSE, .sock = sk->id, .cookie = sk->close_cookie,
		.arg = { sk->rx_prod },
	};

	sk_free(sk);
	sk_post(sk, &st);
}

/* CLOSE completes once lwIP no longer references the TX ring. */
static void close_check(struct isod_sock *sk)
{
	struct tcp_pcb *pcb = sk->pcb;
	struct isoshm_span sp[2];
	int total;

	if (!sk->close_pending)
		return;
	if (pcb == NULL) {
		close_finish(sk);
		return;
	}
	sk->shut_wr = true;
	tx_push(sk);
	if (sk->pcb == NULL) {   /* killed on the way */
		close_finish(sk);
		return;
	}
	total = isoshm_stack_tx_peek(sk->app->shm, sk->id, sp);
	if (total > 0 || sk->tx_handed > 0 || !sk->shut_wr_done)
		return;           /* parked until tcp_sent */
	/* Everything acknowledged.  Unread data still earns the peer a RST,
	 * as with the kernel; otherwise give lwIP back its full window so it
	 * closes with a FIN. */
	if (sk->rx_hold == NULL && isoshm_stack_rx_space(sk->app->shm, sk->id) ==
	    (int)sk->app->hdr.rx_ring_bytes)
		pcb->rcv_wnd = TCP_WND_MAX(pcb);
	sk_detach_pcb(sk);
	if (tcp_close(pcb) != ERR_OK)
		tcp_abort(pcb);
	close_finish(sk);
}

/*
 * Both FINs are through and ours is acknowledged (TIME_WAIT): lwIP frees
 * the pcb by itself after 2 MSL without telling us, so forget it now.
 * Every byte was acknowledged before (tcp_sent ran), and nothing more
 * can arrive.
 */
static void sk_forget_timewait(struct isod_sock *sk)
{
	if (sk->pcb == NULL || sk->pcb->state != TIME_WAIT)
		return;
	tx_acked(sk);
	sk_detach_pcb(sk);
	sk->pcb_closed = true;
	sk->fin_rcvd = true;
}

void isod_sock_resume(struct isod_sock *sk, uint32_t bits)
{
	struct isod_backend *be = sk->app->be;

	be->st.resumed++;
	if (bits & ISOD_R_ERR) {
		bool connecting = sk->state == ISOD_S_CONNECTING;

		if (sk->state != ISOD_S_FREE && sk->state != ISOD_S_CHILD)
			sk->state = ISOD_S_DEAD;
		sk->tx_handed = 0;   /* lwIP freed its segments with the pcb */
		sk->acked = 0;
		if (connecting && sk->connect_parked) {
			struct isostack_shm_status st = {
				.opcode = ISOSTACK_SHM_OP_CONNECT, .sock = sk->id,
				.cookie = sk->connect_cookie, .result = sk->err,
			};

			sk->connect_parked = false;
			sk_post(sk, &st);
		} else if (sk->state == ISOD_S_DEAD && !sk->err_posted) {
			sk->err_posted = true;
			sk_event(sk, ISOSTACK_SHM_EV_ERROR);
		}
		if (sk->state == ISOD_S_CHILD)
			sk->state = ISOD_S_DEAD;
	}
	if ((bits & ISOD_R_CONNECTED) && sk->state == ISOD_S_CONNECTING) {
		sk->state = ISOD_S_CONNECTED;
		if (sk->pcb != NULL) {
			sk->local_ip = sk->pcb->local_ip;
			sk->local_port = sk->pcb->local_port;
		}
		if (sk->connect_parked) {
			struct isostack_shm_status st = {
				.opcode = ISOSTACK_SHM_OP_CONNECT, .sock = sk->id,
				.cookie = sk->connect_cookie, .result = 0,
			};

			sk->connect_parked = false;
			if (sk->pcb != NULL)
				put_addr(st.arg, &sk->pcb->local_ip, sk->pcb->local_port);
			sk_post(sk, &st);
		}
	}
	if (sk->udp) {
		if ((bits & ISOD_R_RX) && sk->state != ISOD_S_FREE)
			udp_rx_resume(sk);
		if (bits & ISOD_R_FLUSH)
			sk_flush(sk);
		if (bits & ISOD_R_CMDS)
			isod_sock_run_cmds(sk->app, sk->id);
		return;
	}
	if ((bits & ISOD_R_RX) && sk->state != ISOD_S_FREE)
		rx_pump(sk);
	if ((bits & ISOD_R_SENT) && sk->state != ISOD_S_FREE) {
		tx_acked(sk);
		tx_push(sk);
	}
	if (bits & ISOD_R_ACCEPT)
		accept_serve(sk);
	if (bits & ISOD_R_FLUSH)
		sk_flush(sk);
	if (sk->state == ISOD_S_CONNECTED)
		sk_forget_timewait(sk);
	close_check(sk);
	if (bits & ISOD_R_CMDS)
		isod_sock_run_cmds(sk->app, sk->id);
}

/* ---- Commands ------------------------------------------------------------------ */

static int addr_from_cmd(const struct isostack_shm_cmd *c, ip_addr_t *ip, u16_t *port)
{
	struct sockaddr_in sin;
	uint8_t raw[ISOSTACK_SHM_ADDR_MAX] = { 0 };

	memcpy(raw, &c->arg[1], c->arg[0]);   /* arg0 <= ADDR_MAX: validated */
	memcpy(&sin, raw, sizeof(sin));
	if (sin.sin_family != AF_INET)
		return -EAFNOSUPPORT;
	if (c->arg[0] < sizeof(sin))
		return -EINVAL;
	ip_addr_set_ip4_u32_val(*ip, sin.sin_addr.s_addr);
	*port = ntohs(sin.sin_port);
	return 0;
}

static bool addr_is_local(const ip_addr_t *ip)
{
	struct netif *n;

	if (ip_addr_isany(ip))
		return true;
	NETIF_FOREACH(n) {
		if (ip_addr_cmp(ip, &n->ip_addr))
			return true;
	}
	return false;
}

static int lwip_bind_errno(err_t e)
{
	return e == ERR_USE ? -EADDRINUSE : e == ERR_OK ? 0 : -EINVAL;
}

static void cmd_socket(struct isod_sock *ctl, const struct isostack_shm_cmd *c)
{
	struct isod_app *app = ctl->app;
	struct isod_sock *sk;
	struct tcp_pcb *pcb;
	int rc;

	if (c->arg[0] != AF_INET) {
		sk_reply(ctl, c, -EAFNOSUPPORT);
		return;
	}
	if (c->arg[1] != SOCK_STREAM && c->arg[1] != SOCK_DGRAM) {
		sk_reply(ctl, c, -ESOCKTNOSUPPORT);
		return;
	}
	if (c->arg[2] != 0 &&
	    c->arg[2] != (c->arg[1] == SOCK_DGRAM ? IPPROTO_UDP : IPPROTO_TCP)) {
		sk_reply(ctl, c, -EPROTONOSUPPORT);
		return;
	}
	sk = sk_alloc(app, &rc);
	if (sk == NULL) {
		if (rc == -EMFILE)
			app->be->st.emfile++;
		else
			app->be->st.enobufs++;
		sk_reply(ctl, c, rc);
		return;
	}
	if (c->arg[1] == SOCK_DGRAM) {
		struct udp_pcb *upcb = udp_new_ip_type(IPADDR_TYPE_V4);

		if (upcb == NULL) {
			sk_free(sk);
			app->be->st.enobufs++;
			sk_reply(ctl, c, -ENOBUFS);
			return;
		}
		sk->udp = true;
		sk->upcb = upcb;
		sk->state = ISOD_S_OPEN;
		udp_recv(upcb, cb_udp_recv, sk);
		sk_reply(ctl, c, sk->id);
		return;
	}
	pcb = tcp_new_ip_type(IPADDR_TYPE_V4);
	if (pcb == NULL) {
		sk_free(sk);
		app->be->st.enobufs++;
		sk_reply(ctl, c, -ENOBUFS);
		return;
	}
	sk->state = ISOD_S_OPEN;
	sk_attach_pcb(sk, pcb);
	sk_reply(ctl, c, sk->id);
}

static void cmd_listen(struct isod_sock *sk, const struct isostack_shm_cmd *c)
{
	struct tcp_pcb *lpcb;
	uint32_t max = sk->app->hdr.nr_sockets;
	err_t e;

	if (sk->state == ISOD_S_LISTEN) {
		sk->bl_max = c->arg[0] < 1 ? 1 : c->arg[0] > max ? max : (uint32_t)c->arg[0];
		sk_reply(sk, c, 0);
		return;
	}
	if (sk->state != ISOD_S_OPEN || sk->pcb == NULL) {
		sk_reply(sk, c, -EINVAL);
		return;
	}
	if (sk->pcb->local_port == 0) {
		e = tcp_bind(sk->pcb, IP4_ADDR_ANY, 0);
		if (e != ERR_OK) {
			sk_reply(sk, c, lwip_bind_errno(e));
			return;
		}
	}
	lpcb = tcp_listen_with_backlog_and_err(sk->pcb, 0xff, &e);
	if (lpcb == NULL) {
		sk_reply(sk, c, e == ERR_USE ? -EADDRINUSE : -ENOBUFS);
		return;
	}
	/* tcp_listen freed the old pcb: nothing to detach */
	sk->pcb = lpcb;
	tcp_arg(lpcb, sk);
	tcp_accept(lpcb, cb_accept);
	tcp_ext_arg_set_callbacks(lpcb, wnd_ext_id(), &wnd_ext_cbs);
	sk->state = ISOD_S_LISTEN;
	sk->bl_max = c->arg[0] < 1 ? 1 : c->arg[0] > max ? max : (uint32_t)c->arg[0];
	sk_reply(sk, c, 0);
}

static void cmd_connect(struct isod_sock *sk, const struct isostack_shm_cmd *c)
{
	ip_addr_t ip;
	u16_t port;
	err_t e;
	int rc;

	switch (sk->state) {
	case ISOD_S_CONNECTING: sk_reply(sk, c, -EALREADY); return;
	case ISOD_S_CONNECTED:  sk_reply(sk, c, -EISCONN); return;
	case ISOD_S_LISTEN:     sk_reply(sk, c, -EISCONN); return;
	case ISOD_S_DEAD:       sk_reply(sk, c, sk->err ? sk->err : -ECONNABORTED); return;
	default: break;
	}
	rc = addr_from_cmd(c, &ip, &port);
	if (rc == 0 && (port == 0 || ip_addr_isany(&ip)))
		rc = -ECONNREFUSED;
	if (rc < 0) {
		sk_reply(sk, c, rc);
		return;
	}
	e = tcp_connect(sk->pcb, &ip, port, cb_connected);
	if (e != ERR_OK) {
		sk_reply(sk, c, e == ERR_RTE ? -ENETUNREACH : e == ERR_USE ? -EADDRINUSE : -ENOBUFS);
		return;
	}
	sk->state = ISOD_S_CONNECTING;
	sk->connect_cookie = c->cookie;
	sk->connect_parked = true;
	sk->app->be->st.parked++;
}

static void cmd_close(struct isod_sock *sk, const struct isostack_shm_cmd *c)
{
	struct isod_app *app = sk->app;

	sk->close_cookie = c->cookie;
	sk->close_pending = true;
	switch (sk->state) {
	case ISOD_S_LISTEN:
		/* parked ACCEPTs fail; children nobody accepted are reset */
		while (sk->accept_parked > 0) {
			struct isostack_shm_status st = {
				.opcode = ISOSTACK_SHM_OP_ACCEPT, .sock = sk->id,
				.cookie = sk->accept_cookie[--sk->accept_parked], .result = -EBADF,
			};
			sk_post(sk, &st);
		}
		while (sk->bl_count > 0) {
			struct isod_sock *child = &app->socks[sk->bl_head];

			sk->bl_head = child->bl_next;
			sk->bl_count--;
			sk_abort(child);
			sk_free(child);
		}
		sk_abort(sk);
		close_finish(sk);
		return;
	case ISOD_S_CONNECTING:
		if (sk->connect_parked) {
			struct isostack_shm_status st = {
				.opcode = ISOSTACK_SHM_OP_CONNECT, .sock = sk->id,
				.cookie = sk->connect_cookie, .result = -ECONNABORTED,
			};
			sk->connect_parked = false;
			sk_post(sk, &st);
		}
		sk_abort(sk);
		close_finish(sk);
		return;
	case ISOD_S_OPEN:
		if (sk->pcb != NULL) {
			struct tcp_pcb *pcb = sk->pcb;

			sk_detach_pcb(sk);
			tcp_close(pcb);   /* CLOSED pcb: freed at once */
		}
		close_finish(sk);
		return;
	case ISOD_S_CONNECTED:
		if (sk->linger0) {
			sk_abort(sk);
			close_finish(sk);
			return;
		}
		app->be->st.parked++;
		close_check(sk);
		if (sk->close_pending)   /* still parked: bound the wait */
			closing_link(sk);
		return;
	default:
		close_finish(sk);
		return;
	}
}

/*
 * The peer has not taken the rest of the TX ring within close_timeout_ms
 * (it keeps its window shut, or is gone without a RST and lwIP still
 * retransmits): reset the connection, which frees lwIP's segments and so
 * the ring, and complete the CLOSE.  The kernel does the same to an
 * orphaned socket after tcp_orphan_retries.
 */
unsigned isod_sock_expire_closes(struct isod_backend *be, uint32_t now)
{
	unsigned n = 0;

	while (be->closing_head != NULL &&
	       (int32_t)(now - be->closing_head->close_deadline) >= 0) {
		struct isod_sock *sk = be->closing_head;

		closing_unlink(sk);
		be->st.close_timeouts++;
		sk_abort(sk);
		sk->tx_handed = 0;
		sk->acked = 0;
		close_finish(sk);
		n++;
	}
	return n;
}

static int opt_int(const struct isostack_shm_cmd *c, int *v)
{
	if (c->arg[2] < sizeof(int))
		return -EINVAL;
	memcpy(v, &c->arg[3], sizeof(int));
	return 0;
}

static void cmd_setsockopt(struct isod_sock *sk, const struct isostack_shm_cmd *c)
{
	struct tcp_pcb *pcb = sk->pcb;
	int level = (int)c->arg[0], name = (int)c->arg[1], v = 0;
	int rc;

	if (level == SOL_SOCKET && name == SO_LINGER) {
		struct linger l;

		if (c->arg[2] < sizeof(l)) {
			sk_reply(sk, c, -EINVAL);
			return;
		}
		memcpy(&l, &c->arg[3], sizeof(l));
		sk->linger0 = l.l_onoff != 0 && l.l_linger == 0;
		sk_reply(sk, c, 0);
		return;
	}
	rc = opt_int(c, &v);
	if (rc == 0 && pcb == NULL)
		rc = -EINVAL;
	if (rc == 0) {
		if (level == SOL_SOCKET && (name == SO_REUSEADDR || name == SO_REUSEPORT)) {
			if (v)
				ip_set_option(pcb, SOF_REUSEADDR);
			else
				ip_reset_option(pcb, SOF_REUSEADDR);
		} else if (level == SOL_SOCKET && name == SO_KEEPALIVE) {
			if (v)
				ip_set_option(pcb, SOF_KEEPALIVE);
			else
				ip_reset_option(pcb, SOF_KEEPALIVE);
		} else if (level == IPPROTO_TCP && name == TCP_NODELAY && pcb->state != LISTEN) {
			if (v)
				tcp_nagle_disable(pcb);
			else
				tcp_nagle_enable(pcb);
		} else if (level == IPPROTO_TCP && name == TCP_KEEPIDLE && pcb->state != LISTEN) {
			rc = v < 1 ? -EINVAL : 0;
			if (rc == 0)
				pcb->keep_idle = (u32_t)v * 1000;
		} else if (level == IPPROTO_TCP && name == TCP_KEEPINTVL && pcb->state != LISTEN) {
			rc = v < 1 ? -EINVAL : 0;
			if (rc == 0)
				pcb->keep_intvl = (u32_t)v * 1000;
		} else if (level == IPPROTO_TCP && name == TCP_KEEPCNT && pcb->state != LISTEN) {
			rc = v < 1 ? -EINVAL : 0;
			if (rc == 0)
				pcb->keep_cnt = (u32_t)v;
		} else if (level == IPPROTO_TCP && name == TCP_CORK) {
			rc = 0;   /* front-end business (it holds SEND) */
		} else {
			rc = -ENOPROTOOPT;
		}
	}
	sk_reply(sk, c, rc);
}

static void cmd_getsockopt(struct isod_sock *sk, const struct isostack_shm_cmd *c)
{
	struct isostack_shm_status st = {
		.opcode = c->opcode, .sock = sk->id, .cookie = c->cookie,
	};
	struct tcp_pcb *pcb = sk->pcb;
	int level = (int)c->arg[0], name = (int)c->arg[1];
	int v;

	if (pcb == NULL) {
		st.result = -EINVAL;
	} else if (level == SOL_SOCKET && (name == SO_REUSEADDR || name == SO_REUSEPORT)) {
		v = ip_get_option(pcb, SOF_REUSEADDR) ? 1 : 0;
		st.result = sizeof(v);
		memcpy(&st.arg[2], &v, sizeof(v));
	} else if (level == SOL_SOCKET && name == SO_KEEPALIVE) {
		v = ip_get_option(pcb, SOF_KEEPALIVE) ? 1 : 0;
		st.result = sizeof(v);
		memcpy(&st.arg[2], &v, sizeof(v));
	} else if (level == IPPROTO_TCP && name == TCP_NODELAY && pcb->state != LISTEN) {
		v = tcp_nagle_disabled(pcb) ? 1 : 0;
		st.result = sizeof(v);
		memcpy(&st.arg[2], &v, sizeof(v));
	} else if (level == IPPROTO_TCP && pcb->state != LISTEN &&
		   (name == TCP_KEEPIDLE || name == TCP_KEEPINTVL || name == TCP_KEEPCNT)) {
		v = name == TCP_KEEPIDLE ? (int)(pcb->keep_idle / 1000) :
		    name == TCP_KEEPINTVL ? (int)(pcb->keep_intvl / 1000) : (int)pcb->keep_cnt;
		st.result = sizeof(v);
		memcpy(&st.arg[2], &v, sizeof(v));
	} else {
		st.result = -ENOPROTOOPT;
	}
	sk_post(sk, &st);
}

/* The local address a connected UDP socket sends from (lwIP leaves it
 * ANY and picks per datagram): the route's interface address. */
static void udp_local_addr(const struct udp_pcb *upcb, ip_addr_t *ip)
{
	*ip = upcb->local_ip;
	if (ip_addr_isany(ip) && (upcb->flags & UDP_FLAGS_CONNECTED)) {
		struct netif *n = ip4_route(ip_2_ip4(&upcb->remote_ip));

		if (n != NULL)
			ip_addr_copy(*ip, n->ip_addr);
	}
}

/* Commands on a SOCK_DGRAM socket (always ISOD_S_OPEN, or DEAD). */
static void cmd_udp(struct isod_sock *sk, const struct isostack_shm_cmd *c)
{
	struct isostack_shm_status st = {
		.opcode = c->opcode, .sock = sk->id, .cookie = c->cookie,
	};
	struct udp_pcb *upcb = sk->upcb;
	ip_addr_t ip;
	u16_t port;
	int rc, v;

	if (upcb == NULL && c->opcode != ISOSTACK_SHM_OP_CLOSE &&
	    c->opcode != ISOSTACK_SHM_OP_SEND && c->opcode != ISOSTACK_SHM_OP_RECV) {
		sk_reply(sk, c, sk->err ? sk->err : -EBADF);
		return;
	}
	switch (c->opcode) {
	case ISOSTACK_SHM_OP_BIND:
		rc = addr_from_cmd(c, &ip, &port);
		if (rc == 0 && upcb->local_port != 0)
			rc = -EINVAL;
		if (rc == 0 && !addr_is_local(&ip))
			rc = -EADDRNOTAVAIL;
		if (rc == 0)
			rc = lwip_bind_errno(udp_bind(upcb, &ip, port));
		sk_reply(sk, c, rc);
		return;
	case ISOSTACK_SHM_OP_CONNECT: {
		struct sockaddr sa;

		memcpy(&sa, &c->arg[1], sizeof(sa.sa_family));
		if (sa.sa_family == AF_UNSPEC) {
			udp_disconnect(upcb);
			sk_reply(sk, c, 0);
			return;
		}
		rc = addr_from_cmd(c, &ip, &port);
		if (rc == 0 && port == 0)
			rc = -EINVAL;
		if (rc == 0) {
			err_t e = udp_connect(upcb, &ip, port);

			rc = e == ERR_OK ? 0 : e == ERR_USE ? -EADDRINUSE : -ENETUNREACH;
		}
		if (rc == 0 && ip4_route(ip_2_ip4(&ip)) == NULL) {
			udp_disconnect(upcb);
			rc = -ENETUNREACH;
		}
		st.result = rc;
		if (rc == 0) {
			ip_addr_t lip;

			udp_local_addr(upcb, &lip);
			put_addr(st.arg, &lip, upcb->local_port);
		}
		sk_post(sk, &st);
		return;
	}
	case ISOSTACK_SHM_OP_SEND:
		sk->app->be->st.sends_seen++;
		udp_tx_push(sk);
		return;
	case ISOSTACK_SHM_OP_RECV:
		return;
	case ISOSTACK_SHM_OP_SHUTDOWN:
		sk_reply(sk, c, (upcb->flags & UDP_FLAGS_CONNECTED) ? 0 : -ENOTCONN);
		return;
	case ISOSTACK_SHM_OP_CLOSE:
		udp_tx_push(sk);   /* what the application sent still goes out */
		sk->close_cookie = c->cookie;
		close_finish(sk);
		return;
	case ISOSTACK_SHM_OP_GETSOCKNAME:
		udp_local_addr(upcb, &ip);
		put_addr(st.arg, &ip, upcb->local_port);
		sk_post(sk, &st);
		return;
	case ISOSTACK_SHM_OP_GETPEERNAME:
		if (upcb->flags & UDP_FLAGS_CONNECTED)
			put_addr(st.arg, &upcb->remote_ip, upcb->remote_port);
		else
			st.result = -ENOTCONN;
		sk_post(sk, &st);
		return;
	case ISOSTACK_SHM_OP_SETSOCKOPT:
		rc = opt_int(c, &v);
		if (rc == 0 && (int)c->arg[0] == SOL_SOCKET &&
		    ((int)c->arg[1] == SO_REUSEADDR || (int)c->arg[1] == SO_REUSEPORT ||
		     (int)c->arg[1] == SO_BROADCAST)) {
			uint8_t opt = (int)c->arg[1] == SO_BROADCAST ? SOF_BROADCAST : SOF_REUSEADDR;

			if (v)
				ip_set_option(upcb, opt);
			else
				ip_reset_option(upcb, opt);
		} else if (rc == 0) {
			rc = -ENOPROTOOPT;
		}
		sk_reply(sk, c, rc);
		return;
	case ISOSTACK_SHM_OP_GETSOCKOPT:
		if ((int)c->arg[0] == SOL_SOCKET &&
		    ((int)c->arg[1] == SO_REUSEADDR || (int)c->arg[1] == SO_REUSEPORT ||
		     (int)c->arg[1] == SO_BROADCAST)) {
			uint8_t opt = (int)c->arg[1] == SO_BROADCAST ? SOF_BROADCAST : SOF_REUSEADDR;

			v = ip_get_option(upcb, opt) ? 1 : 0;
			st.result = sizeof(v);
			memcpy(&st.arg[2], &v, sizeof(v));
		} else {
			st.result = -ENOPROTOOPT;
		}
		sk_post(sk, &st);
		return;
	case ISOSTACK_SHM_OP_LISTEN:
	case ISOSTACK_SHM_OP_ACCEPT:
		sk_reply(sk, c, -EOPNOTSUPP);
		return;
	default:
		sk_reply(sk, c, -EINVAL);
		return;
	}
}

static void cmd_exec(struct isod_sock *sk, const struct isostack_shm_cmd *c)
{
	struct isostack_shm_status st;
	ip_addr_t ip;
	u16_t port;
	int rc;

	sk->app->be->st.cmds++;
	if (c->opcode == ISOSTACK_SHM_OP_NOP) {
		sk_reply(sk, c, 0);
		return;
	}
	if (sk->id == ISOSTACK_SHM_CTRL_SOCK) {
		cmd_socket(sk, c);   /* validation allows only SOCKET here */
		return;
	}
	if (sk->state == ISOD_S_FREE || sk->state == ISOD_S_CHILD || sk->close_pending) {
		sk->app->be->st.bad_slot++;
		sk_reply(sk, c, -EBADF);
		return;
	}
	if (sk->udp) {
		cmd_udp(sk, c);
		return;
	}
	switch (c->opcode) {
	case ISOSTACK_SHM_OP_BIND:
		rc = addr_from_cmd(c, &ip, &port);
		if (rc == 0 && (sk->state != ISOD_S_OPEN || sk->pcb->local_port != 0))
			rc = -EINVAL;
		if (rc == 0 && !addr_is_local(&ip))
			rc = -EADDRNOTAVAIL;
		if (rc == 0)
			rc = lwip_bind_errno(tcp_bind(sk->pcb, &ip, port));
		sk_reply(sk, c, rc);
		break;
	case ISOSTACK_SHM_OP_LISTEN:
		cmd_listen(sk, c);
		break;
	case ISOSTACK_SHM_OP_ACCEPT:
		if (sk->state != ISOD_S_LISTEN) {
			sk_reply(sk, c, -EINVAL);
		} else if (sk->accept_parked == ISOD_ACCEPT_PARK) {
			sk_reply(sk, c, -EAGAIN);
		} else {
			sk->accept_cookie[sk->accept_parked++] = c->cookie;
			if (sk->bl_count == 0)
				sk->app->be->st.parked++;
			accept_serve(sk);
		}
		break;
	case ISOSTACK_SHM_OP_CONNECT:
		cmd_connect(sk, c);
		break;
	case ISOSTACK_SHM_OP_SEND:
		sk->app->be->st.sends_seen++;
		tx_push(sk);
		break;
	case ISOSTACK_SHM_OP_RECV:
		rx_pump(sk);
		break;
	case ISOSTACK_SHM_OP_SHUTDOWN:
		if (sk->state != ISOD_S_CONNECTED) {
			sk_reply(sk, c, -ENOTCONN);
			break;
		}
		if (c->arg[0] != SHUT_RD) {
			sk->shut_wr = true;
			tx_push(sk);
		}
		sk_reply(sk, c, 0);
		break;
	case ISOSTACK_SHM_OP_CLOSE:
		cmd_close(sk, c);
		break;
	case ISOSTACK_SHM_OP_SETSOCKOPT:
		cmd_setsockopt(sk, c);
		break;
	case ISOSTACK_SHM_OP_GETSOCKOPT:
		cmd_getsockopt(sk, c);
		break;
	case ISOSTACK_SHM_OP_GETSOCKNAME:
	case ISOSTACK_SHM_OP_GETPEERNAME:
		memset(&st, 0, sizeof(st));
		st.opcode = c->opcode;
		st.sock = sk->id;
		st.cookie = c->cookie;
		if (sk->pcb == NULL && sk->pcb_closed) {
			/* finished cleanly: the addresses it had */
			if (c->opcode == ISOSTACK_SHM_OP_GETSOCKNAME)
				put_addr(st.arg, &sk->local_ip, sk->local_port);
			else
				st.result = -ENOTCONN;
		} else if (sk->pcb == NULL) {
			st.result = -EINVAL;
		} else if (c->opcode == ISOSTACK_SHM_OP_GETSOCKNAME) {
			put_addr(st.arg, &sk->pcb->local_ip, sk->pcb->local_port);
		} else if (sk->state != ISOD_S_CONNECTED) {
			st.result = -ENOTCONN;
		} else {
			put_addr(st.arg, &sk->pcb->remote_ip, sk->pcb->remote_port);
		}
		sk_post(sk, &st);
		break;
	default:
		sk_reply(sk, c, -EINVAL);
		break;
	}
}

unsigned isod_sock_run_cmds(struct isod_app *app, uint32_t id)
{
	struct isod_sock *sk = &app->socks[id];
	struct isostack_shm_cmd cmds[ISOD_PEND_MAX - 2];
	unsigned done = 0;

	for (;;) {
		int n;

		/* Keep room for one deferred reply per command read. */
		if (sk->npend != 0) {
			isod_sock_queue(sk, ISOD_R_CMDS);
			return done;
		}
		n = isoshm_stack_recv_cmds(app->shm, id, cmds, ISOD_PEND_MAX - 2);
		if (n == 0)
			return done;
		if (n == -EPROTO) {
			sk_kill(sk, -EPROTO);
			return done;
		}
		if (n < 0) {
			app->be->st.bad_cmds++;
			sk_reply(sk, &cmds[0], n == -EBADSLT ? -EBADF : -EINVAL);
			done++;
			continue;
		}
		/* cmd_cons is published: fence before reading tx_prod (SEND), so
		 * an application that saw our old cmd_cons and skipped posting
		 * a SEND has its bytes seen here (core.c, maybe_post_send). */
		atomic_thread_fence(memory_order_seq_cst);
		for (int i = 0; i < n; i++)
			cmd_exec(sk, &cmds[i]);
		done += (unsigned)n;
	}
}

/* Resets the application's sockets; with keep_closing, a TCP socket the
 * application closed (CLOSE parked until its data is acknowledged) is
 * left to finish.  Returns how many were left. */
static unsigned reset_sockets(struct isod_app *app, bool keep_closing)
{
	unsigned left = 0;

	for (uint32_t i = 1; i < app->hdr.nr_sockets; i++) {
		struct isod_sock *sk = &app->socks[i];

		if (keep_closing && sk->close_pending && sk->pcb != NULL) {
			left++;
			continue;
		}
		if (sk->pcb != NULL && sk->pcb->state != LISTEN)
			app->be->st.resets++;
		sk_abort(sk);
		/* sk_free also takes it off the back-end's list of parked
		 * CLOSEs: the slots are freed with the application, and a
		 * list entry left behind would point into freed memory. */
		sk_free(sk);
	}
	return left;
}

void isod_sock_reset_all(struct isod_app *app)
{
	(void)reset_sockets(app, false);
}

unsigned isod_sock_reset_open(struct isod_app *app)
{
	return reset_sockets(app, true);
}

unsigned isod_sock_closing(const struct isod_app *app)
{
	unsigned n = 0;

	for (uint32_t i = 1; i < app->hdr.nr_sockets; i++)
		n += app->socks[i].close_pending && app->socks[i].pcb != NULL;
	return n;
}
