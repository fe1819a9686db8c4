/*
 * Rings that size themselves (docs/shm.md, "Rings that size themselves";
 * the protocol both sides follow is in shm_abi.h, struct
 * isostack_shm_sockdir).
 *
 * A TCP socket opens on rings of conf.tx_start / conf.rx_start bytes and
 * moves to larger ones (x4, up to conf.tx_ring / conf.rx_ring) as its
 * traffic asks, as Linux's buffer autotuning does:
 *   RX grows when, at a moment the ring is empty, the ring was at least
 *      half full since the last move, or more than two rings' worth
 *      arrived within RX_RATE_MS (a window-limited stream whose reader
 *      keeps up never fills the ring, yet the window limits it);
 *   TX grows when the application filled the ring while the connection
 *      could carry at least half a ring more (cwnd and the peer's window).
 * A socket idle for an interval (IDLE_MS, 2 s: the idle list) holds no ring
 * at all (0 bytes, "none") either way, as Linux holds no buffer for an
 * idle socket.  Under memory pressure (more than half the stack's budget
 * backed, as the kernel's tcp_mem pressure mode) new sockets start on
 * RING_MIN, rings do not grow, and a socket idle at one poll lets go.
 * SO_RCVBUF / SO_SNDBUF pin a size: no growing or idle shrinking then.
 * Every move is optional: a ring that cannot be had now (budget, no spare
 * extent this pass) is tried again later.
 *
 * Back from none, rings start at RING_MIN (grown with traffic as any),
 * not rx_start/tx_start: 100,000 idle connections woken at once need a
 * quarter of the memory, from the extents they left (docs/shm.md):
 *   RX: the first bytes lwIP delivers get a ring (RING_MIN, the pin if
 *      pinned) moved in right before
 *      they are copied (isod_sk_rx_want, from the pump).  Until then they
 *      stay in lwIP's pbufs (rx_hold) and the pump tries again next pass:
 *      nothing is dropped.  An idle socket keeps announcing a window of
 *      RING_MIN, and keeps RING_MIN reserved for it (rx_resv: charged to
 *      the application's mem_limit and to the stack's budget as
 *      mem_reserved) so that what the peer may send always finds room.
 *   TX: offered when new bytes wake the reader (isod_sk_tx_prepare), or
 *      when the application that finds its ring none asks with a SEND (no
 *      new bytes): we offer RING_MIN (the pin if pinned) and post EV_TX
 *      (isod_sk_tx_want); no ring this pass: again at the next.
 *
 * The receive window follows the RX ring: a move to a larger ring opens
 * it by the difference (tcp_recved); a move to a smaller one (SO_RCVBUF,
 * or an idle connection's none, which backs RING_MIN) closes it to what
 * fits and announces that at once.  lwIP itself never moves an announced
 * right edge back; we do, which RFC 9293 allows (3.8.6: a receiver
 * should not shrink the window, but a sender must cope): only an idle
 * peer sees it, and a segment past the new edge is trimmed and sent
 * again.
 */
#include <errno.h>

#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"

#include "internal.h"

#define RING_MIN      ISOD_RING_MIN
#define RING_GROW     4u
#define RX_RATE_MS    200u
#define IDLE_MS       2000u

/*
 * The largest RX ring of a TCP socket: conf.rx_ring, but never more than
 * the largest window lwIP announces (TCP_WND, lwipopts.h). A ring larger
 * than the window never fills, and the reader reports what it consumed
 * only per half ring (libisosock): with a ring past 2 x TCP_WND it never
 * reported, and the window, credited only from those reports, stayed
 * shut (rx_ring = 1m stalled every bulk receive). UDP rings are apart.
 */
static uint32_t rx_ring_max(const struct isod_backend_conf *conf)
{
	return conf->rx_ring < TCP_WND ? conf->rx_ring : (uint32_t)TCP_WND;
}

static uint32_t grown(const struct isod_sock *sk, uint32_t bytes, uint32_t max)
{
	uint64_t n = (uint64_t)bytes * RING_GROW;

	if (isod_mem_pressure(sk->app->be))
		return bytes;
	return n > max ? max : (uint32_t)n;
}

/* A ring of bytes, charged to the socket (mem_limit); no extent made now.
 * 0 bytes: none, which costs nothing. */
static int ring_new(struct isod_sock *sk, uint32_t bytes, struct isod_ring *out)
{
	struct isod_app *app = sk->app;
	uint64_t limit = app->be->conf.mem_limit;
	int rc;

	if (bytes == 0) {
		*out = (struct isod_ring){ .bytes = 0 };
		return 0;
	}
	if (limit != 0 && app->mem_used + bytes > limit)
		return -ENOBUFS;
	rc = isod_mem_ring_try(app, bytes, out);
	if (rc < 0)
		return rc;
	app->mem_used += bytes;
	sk->mem += bytes;
	return 0;
}

void isod_sk_ring_free(struct isod_sock *sk, struct isod_ring *r)
{
	if (r->bytes == 0)
		return;
	sk->app->mem_used -= r->bytes;
	sk->mem -= r->bytes;
	isod_mem_ring_put(sk->app, r);
	r->bytes = 0;
}

/*
 * The idle list: the sockets that hold a ring idleness would take, each
 * looked at IDLE_MS after it joined (then it joins again if it still
 * holds one), oldest first.  A pass looks only at those due, so sockets
 * cost nothing while idle, and little while busy: lwIP's tcp_poll did
 * this before, but a pcb that polls is never quiet, and tcp_slowtmr
 * walked every connection with a ring every 20 ms (15% of the stack core
 * while 100,000 connections were set up).
 */
void isod_sk_idle_unlink(struct isod_sock *sk)
{
	struct isod_backend *be = sk->app->be;

	if (!sk->idle_armed)
		return;
	if (sk->idle_prev != NULL)
		sk->idle_prev->idle_next = sk->idle_next;
	else
		be->idle_head = sk->idle_next;
	if (sk->idle_next != NULL)
		sk->idle_next->idle_prev = sk->idle_prev;
	else
		be->idle_tail = sk->idle_prev;
	sk->idle_prev = sk->idle_next = NULL;
	sk->idle_armed = false;
}

static void idle_arm(struct isod_sock *sk)
{
	struct isod_backend *be = sk->app->be;
	bool want = sk->pcb != NULL && !sk->udp && sk->state != ISOD_S_LISTEN &&
		    ((sk->rx_pin == 0 && sk->rx.bytes != 0) ||
		     (sk->tx_pin == 0 && sk->tx.bytes != 0) || sk->tx_offered);

	if (want == sk->idle_armed)
		return;
	if (!want) {
		isod_sk_idle_unlink(sk);
		return;
	}
	sk->idle_due = isod_backend_now(be) + IDLE_MS;
	sk->idle_prev = be->idle_tail;
	sk->idle_next = NULL;
	if (be->idle_tail != NULL)
		be->idle_tail->idle_next = sk;
	else
		be->idle_head = sk;
	be->idle_tail = sk;
	sk->idle_armed = true;
}

unsigned isod_sk_idle_expire(struct isod_backend *be, unsigned max)
{
	uint32_t now = isod_backend_now(be);
	unsigned n = 0;

	while (n < max && be->idle_head != NULL && (int32_t)(now - be->idle_head->idle_due) >= 0) {
		struct isod_sock *sk = be->idle_head;

		isod_sk_idle_unlink(sk);
		isod_sock_queue(sk, ISOD_R_IDLE);  /* isod_sk_ring_idle: joins again */
		n++;
	}
	return n;
}

/* ---- RX ----------------------------------------------------------------------- */

/* RX ring none: RING_MIN stays reserved for the window it announces.
 * Never refused: the ring it replaces was at least as large (or, for a
 * socket that opens with none, the budget check of the rings it asked). */
void isod_sk_rx_reserve(struct isod_sock *sk)
{
	sk->rx_resv = RING_MIN;
	sk->mem += RING_MIN;
	sk->app->mem_used += RING_MIN;
	sk->app->be->mem_reserved += RING_MIN;
}

void isod_sk_rx_unreserve(struct isod_sock *sk)
{
	if (sk->rx_resv == 0)
		return;
	sk->mem -= sk->rx_resv;
	sk->app->mem_used -= sk->rx_resv;
	sk->app->be->mem_reserved -= sk->rx_resv;
	sk->rx_resv = 0;
}

static void wnd_resize(struct isod_sock *sk, uint32_t old, uint32_t now)
{
	struct tcp_pcb *pcb = sk->pcb;

	if (pcb == NULL || sk->state != ISOD_S_CONNECTED)
		return;   /* connect and accept clamp to the ring they find */
	if (now > old) {
		for (uint32_t d = now - old; d > 0;) {
			uint16_t n = d > 0xffff ? 0xffff : (uint16_t)d;

			tcp_recved(pcb, n);
			d -= n;
		}
		isod_sk_wnd_update(sk);
	} else if (pcb->rcv_wnd > now - sk->rx_held) {
		pcb->rcv_wnd = (tcpwnd_size_t)(now - sk->rx_held);
		if (pcb->rcv_ann_wnd > pcb->rcv_wnd) {
			pcb->rcv_ann_wnd = pcb->rcv_wnd;   /* the next ACK moves the edge */
			tcp_ack_now(pcb);
			tcp_output(pcb);
		}
	}
}

/*
 * Moves an empty RX ring to `want` bytes (0: none, with nothing held).
 * Returns true if it moved; a ring that cannot be had now is left for a
 * later try.
 */
static bool rx_move(struct isod_sock *sk, uint32_t want)
{
	uint32_t old = sk->rx.bytes;
	bool reserved = sk->rx_resv != 0;
	struct isod_ring nr;
	int rc;

	if (want == old || (want == 0 && sk->rx_held != 0) ||
	    (want != 0 && want < old && sk->rx_held >= want))
		return false;
	isod_sk_rx_unreserve(sk);      /* makes room for the ring it becomes */
	if (ring_new(sk, want, &nr) < 0) {
		if (reserved)
			isod_sk_rx_reserve(sk);
		return false;
	}
	rc = isoshm_stack_rx_move(sk->app->shm, sk->id, nr.off, nr.bytes, nr.ext);
	if (rc < 0) {
		isod_sk_ring_free(sk, &nr);
		if (reserved)
			isod_sk_rx_reserve(sk);
		if (rc == -EPROTO)
			isod_sk_kill(sk, -EPROTO);
		return false;
	}
	isod_sk_ring_free(sk, &sk->rx);
	sk->rx = nr;
	if (want == 0)
		isod_sk_rx_reserve(sk);
	if (nr.bytes > sk->rx_max)
		sk->rx_max = nr.bytes;
	sk->rx_peak = 0;
	sk->rx_rate_bytes = 0;
	sk->app->be->st.rx_moves++;
	wnd_resize(sk, old != 0 ? old : RING_MIN, want != 0 ? want : RING_MIN);
	if (want == 0 && sk->pcb != NULL && sk->state == ISOD_S_CONNECTED) {
		/*
		 * Empty, nothing held: the window is all of what none backs.
		 * What the application read and has not reported yet (a RECV
		 * comes per half ring) is folded in here, so no late credit
		 * opens the window past RING_MIN.  Not credited with an ACK:
		 * Linux takes a smaller window from an ACK only if its
		 * sequence moved, so the shrink's ACK above must be the first.
		 */
		sk->rx_cons_seen = sk->rx_prod;
		sk->pcb->rcv_wnd = RING_MIN;
	}
	idle_arm(sk);
	return true;
}

bool isod_sk_rx_want(struct isod_sock *sk)
{
	uint32_t want = sk->rx_pin != 0 ? sk->rx_pin : RING_MIN;

	if (sk->rx.bytes != 0)
		return true;
	if (sk->rx_resv == 0)
		return false;      /* killed: nothing more is placed */
	return rx_move(sk, want) || (want > RING_MIN && rx_move(sk, RING_MIN));
}

static bool tcp_open(const struct isod_sock *sk)
{
	return !sk->udp && (sk->pcb != NULL || sk->cut) &&
	       (sk->state == ISOD_S_CONNECTED || sk->state == ISOD_S_CHILD ||
		sk->state == ISOD_S_OPEN);
}

void isod_sk_rx_resize(struct isod_sock *sk, uint32_t used)
{
	const struct isod_backend_conf *conf = &sk->app->be->conf;
	uint32_t now = isod_backend_now(sk->app->be);
	uint32_t size = sk->rx.bytes, want = size;

	if (used != 0 || size == 0 || !tcp_open(sk))
		return;         /* none: isod_sk_rx_want */
	if (sk->rx_pin != 0) {
		want = sk->rx_pin;
	} else if (size < rx_ring_max(conf)) {
		/* more than two rings per RX_RATE_MS since the interval began */
		uint64_t el = (uint32_t)(now - sk->rx_rate_ms);
		bool fast = sk->rx_rate_bytes * RX_RATE_MS >
			    2 * (uint64_t)size * (el > RX_RATE_MS ? el : RX_RATE_MS);

		if (el > RX_RATE_MS) {
			sk->rx_rate_ms = now;
			sk->rx_rate_bytes = 0;
		}
		if (sk->rx_peak >= size / 2 || fast)
			want = grown(sk, size, rx_ring_max(conf));
	}
	if (want != size)
		rx_move(sk, want);
}

/* ---- TX ----------------------------------------------------------------------- */

/* The application took the open offer: its old ring is free. */
static void tx_switched(struct isod_sock *sk)
{
	isod_sk_ring_free(sk, &sk->tx);
	sk->tx = sk->tx_offer;
	sk->tx_offer.bytes = 0;
	sk->tx_offered = false;
	if (sk->tx.bytes > sk->tx_max)
		sk->tx_max = sk->tx.bytes;
	sk->app->be->st.tx_moves++;
	idle_arm(sk);
}

int isod_sk_tx_peek(struct isod_sock *sk, struct isoshm_span sp[2])
{
	int total = isoshm_stack_tx_peek(sk->app->shm, sk->id, sp);

	if (total == ISOSHM_TX_SWITCHED) {
		tx_switched(sk);
		total = isoshm_stack_tx_peek(sk->app->shm, sk->id, sp);
	}
	return total;
}

/*
 * The stack takes an offer for an application that is not writing (an
 * idle socket, a pin set while no write is under way) at the end of the
 * pass, after one membarrier for all such takes: applications order their
 * side of the Dekker pair with a compiler barrier only (shm/membarrier.c).
 */
static void take_later(struct isod_sock *sk)
{
	struct isod_backend *be = sk->app->be;

	if (sk->take_queued || be->ntakes == ISOD_TAKE_BATCH || be->membar < 0)
		return;     /* a full batch: the next idle poll tries again */
	sk->take_queued = true;
	be->takes[be->ntakes++] = sk;
}

void isod_sk_ring_takes(struct isod_backend *be)
{
	if (be->ntakes == 0)
		return;
	/* Once it failed (isostat's mem.membarrier -1), idle TX rings are
	 * left to their applications to take at their next write. */
	be->membar = isoshm_membarrier_global() == 0 ? 1 : -1;
	for (unsigned i = 0; i < be->ntakes; i++) {
		struct isod_sock *sk = be->takes[i];

		sk->take_queued = false;
		if (be->membar < 0 || sk->state == ISOD_S_FREE || !sk->tx_offered)
			continue;
		if (isoshm_stack_tx_take(sk->app->shm, sk->id) == 1)
			tx_switched(sk);
	}
	be->ntakes = 0;
}

/* Offers a TX ring of want bytes (0: none; hold: the writer keeps the old
 * one full); taken by the application at its next write at an empty ring,
 * or by us at the end of the pass if it is not writing.  Returns true if
 * the offer stands. */
static bool tx_offer(struct isod_sock *sk, uint32_t want, bool hold)
{
	struct isod_ring nr;
	int rc;

	if (sk->tx_offered || want == sk->tx.bytes)
		return false;
	if (ring_new(sk, want, &nr) < 0)
		return false;
	rc = isoshm_stack_tx_offer(sk->app->shm, sk->id, nr.off, nr.bytes, nr.ext, hold);
	if (rc < 0) {
		isod_sk_ring_free(sk, &nr);
		return false;
	}
	sk->tx_offer = nr;
	sk->tx_offered = true;
	idle_arm(sk);
	take_later(sk);
	return true;
}

void isod_sk_tx_full(struct isod_sock *sk)
{
	const struct isod_backend_conf *conf = &sk->app->be->conf;
	struct tcp_pcb *pcb = sk->pcb;
	uint32_t room;

	if (sk->tx_pin != 0 || sk->tx.bytes == 0 || sk->tx.bytes >= conf->tx_ring ||
	    sk->tx_offered || (pcb == NULL && !sk->cut))
		return;
	/* Only a ring the connection could fill: what it may have in flight
	 * (a paired socket: the room in the reader's ring, TCP's window). */
	if (sk->cut) {
		int space = sk->cut_peer == NULL ? 0 :
			    isoshm_stack_rx_space(sk->cut_peer->app->shm, sk->cut_peer->id);

		room = space > 0 ? (uint32_t)space : 0;
	} else
		room = pcb->cwnd < pcb->snd_wnd ? pcb->cwnd : pcb->snd_wnd;
	if (room < sk->tx.bytes / 2)
		return;
	if (grown(sk, sk->tx.bytes, conf->tx_ring) != sk->tx.bytes)
		tx_offer(sk, grown(sk, sk->tx.bytes, conf->tx_ring), true);
}

/* Offers the ring a TX side back from none starts on (the pin, else
 * RING_MIN; RING_MIN if the pin cannot be had).  True if one stands. */
static bool tx_back(struct isod_sock *sk)
{
	uint32_t want = sk->tx_pin != 0 ? sk->tx_pin : RING_MIN;

	return tx_offer(sk, want, false) || (want != RING_MIN && tx_offer(sk, RING_MIN, false));
}

/*
 * New bytes for the reader of a socket whose TX ring is none (idle, or
 * gone idle while the RX ring kept bytes): a TX ring offered before the
 * reader wakes, so that the answer finds it there.  Without it the
 * application's first send() would ask and wait for a pass of ours: a
 * non-blocking one may then return EAGAIN, which the kernel never does
 * for a few bytes on an idle socket (isoconns' echo server closed 1,185
 * of 100,000 connections on it).  Best effort: a send still asks.
 */
void isod_sk_tx_prepare(struct isod_sock *sk)
{
	if (sk->tx.bytes == 0 && !sk->tx_offered && !sk->shut_wr) {
		if (tx_back(sk))
			sk->app->be->st.tx_readied++;
		else
			sk->app->be->st.tx_unready++;
	}
}

void isod_sk_tx_want(struct isod_sock *sk)
{
	if (sk->tx.bytes != 0)
		return;
	/* An open offer is taken at the application's next write (one of
	 * none, the idle shrink's, leaves it asking again, and then we see
	 * the switch and offer a ring). */
	if (!sk->tx_offered && !tx_back(sk)) {
		sk->app->be->st.tx_ask_waits++;
		isod_sock_queue(sk, ISOD_R_SENT);   /* no ring this pass: the next */
		return;
	}
	isod_sk_event(sk, ISOSTACK_SHM_EV_TX);
}

/* ---- Pins and idle ------------------------------------------------------------ */

/* SO_RCVBUF / SO_SNDBUF of v bytes: the ring that holds v, within bounds. */
static uint32_t pin_bytes(int v, uint32_t max)
{
	uint64_t want = v <= (int)RING_MIN ? RING_MIN : (uint64_t)v;
	uint32_t b = RING_MIN;

	while (b < want && b < max)
		b *= 2;
	return b > max ? max : b;
}

void isod_sk_ring_pin(struct isod_sock *sk, bool rx, int v)
{
	const struct isod_backend_conf *conf = &sk->app->be->conf;

	if (sk->udp)
		return;
	if (rx) {
		sk->rx_pin = pin_bytes(v, rx_ring_max(conf));
		if (sk->rx.bytes != sk->rx_pin &&
		    isoshm_stack_rx_space(sk->app->shm, sk->id) == (int)sk->rx.bytes)
			rx_move(sk, sk->rx_pin);
	} else {
		sk->tx_pin = pin_bytes(v, conf->tx_ring);
		/* none stays none (the next write asks, and gets the pin) */
		if (sk->tx.bytes != 0)
			tx_offer(sk, sk->tx_pin, sk->tx_pin > sk->tx.bytes);
	}
	idle_arm(sk);
}

void isod_sk_ring_inherit(struct isod_sock *child, const struct isod_sock *parent)
{
	child->rx_pin = parent->rx_pin;
	child->tx_pin = parent->tx_pin;
}

uint32_t isod_sk_rx_start(const struct isod_backend *be, const struct isod_sock *parent)
{
	uint32_t max = rx_ring_max(&be->conf);

	if (parent != NULL && parent->rx_pin != 0)
		return parent->rx_pin;
	if (isod_mem_pressure(be))
		return RING_MIN;
	return be->conf.rx_start < max ? be->conf.rx_start : max;
}

uint32_t isod_sk_tx_start(const struct isod_backend *be, const struct isod_sock *parent)
{
	if (parent != NULL && parent->tx_pin != 0)
		return parent->tx_pin;
	return isod_mem_pressure(be) ? RING_MIN : be->conf.tx_start;
}

void isod_sk_ring_armed(struct isod_sock *sk)
{
	isod_sk_idle_unlink(sk);
	idle_arm(sk);
}

/* Its idle check came due (the idle list): idle since the last one? */
void isod_sk_ring_idle(struct isod_sock *sk)
{
	int space;

	if (sk->activity != sk->activity_seen && !isod_mem_pressure(sk->app->be)) {
		sk->activity_seen = sk->activity;
		idle_arm(sk);
		return;
	}
	sk->activity_seen = sk->activity;
	if (!tcp_open(sk))
		return;
	space = isoshm_stack_rx_space(sk->app->shm, sk->id);
	if (sk->rx_held != 0 || (sk->rx.bytes != 0 && space != (int)sk->rx.bytes)) {
		/* Bytes the application has not read yet: it is behind, not
		 * idle (a server working through many requests), and its
		 * answer should find the TX ring where it is. */
		idle_arm(sk);
		return;
	}
	if (sk->rx_pin == 0 && sk->rx.bytes != 0)
		rx_move(sk, 0);
	if (sk->tx_offered) {
		take_later(sk);
	} else if (sk->tx_pin == 0 && sk->tx.bytes != 0 && sk->tx_handed == 0 &&
		   sk->app->be->ntakes < ISOD_TAKE_BATCH) {
		/* Only an offer of none we take this pass: one left open (the
		 * batch full) would be what the application's next write takes
		 * when the connection wakes, and it would then ask for a ring
		 * (a round trip) instead of finding the one offered with the
		 * reader's new bytes (isod_sk_tx_prepare).  A full batch: the
		 * next idle poll. */
		tx_offer(sk, 0, false);
	}
	idle_arm(sk);
}
