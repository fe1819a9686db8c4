/*
 * Local connections by cut-through: a CONNECT to one of the stack's own
 * addresses that a listener of this stack takes is paired with the
 * accepted socket on the stack core, with no lwIP pcb on the data path.
 *
 * Bytes flow from the writer's TX ring straight into the reader's RX
 * ring, one copy on the stack core (isod_cut_move): no segments, no
 * checksums, no ACKs, no timers.  Each ring stays in its own
 * application's segment -- an application never maps another's memory
 * (docs/shm.md) -- which is why there is still that one copy; a design
 * with no copy would need a ring both applications map (docs/sockets.md,
 * "Local connections: cut-through").
 *
 * The writer's TX ring is the send buffer and the reader's RX ring the
 * receive buffer: what does not fit stays in the TX ring, and the
 * writer blocks (or gets EAGAIN) once that is full, as with TCP's
 * window.  Moves run on the writer's SEND and on the reader's RECV (a
 * reader that consumed half its ring, or emptied a full one, posts one;
 * so a stalled writer always moves again once the reader drains).
 *
 * One side's state changes become the other's events: SHUT_WR is EOF
 * (EV_HUP) once its last byte is in the reader's ring; a CLOSE with
 * unread data, SO_LINGER 0, an abort or a dead application reset the
 * other side (ECONNRESET), as the kernel's loopback does; a clean CLOSE
 * waits until its TX ring has moved (bounded by close_timeout), then
 * leaves the other side with EOF.  A write to a side whose peer closed
 * resets it, as the RST of a closed kernel socket would.
 *
 * The client keeps a real local port: its bound lwIP pcb stays in
 * lwIP's bound list (state CLOSED, no callbacks) for the life of the
 * pair, so no other pcb can take that port meanwhile.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* glibc's <netinet/in.h> defines the byte-order macros; lwIP must not. */
#define LWIP_DONT_PROVIDE_BYTEORDER_FUNCTIONS 1
#include <netinet/in.h>

#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"

#include "internal.h"

/* <netinet/tcp.h>'s names clash with lwIP's (TCP_MSS): Linux's values. */
#define TCP_NODELAY 1
#define TCP_CORK    3

/* ---- Finding the listener ------------------------------------------------ */

/* Does lwIP listener lpcb take a connection to ip? (its own address,
 * any of its version, or any of both for a dual-stack listener) */
static bool listen_takes(const struct tcp_pcb_listen *lpcb, const ip_addr_t *ip)
{
	if (IP_IS_ANY_TYPE_VAL(lpcb->local_ip))
		return true;
	if (IP_GET_TYPE(&lpcb->local_ip) != IP_GET_TYPE(ip))
		return false;
	return ip_addr_isany(&lpcb->local_ip) || ip_addr_cmp(&lpcb->local_ip, ip);
}

/* The lwIP listener on ip:port, as lwIP would pick it for a SYN (an
 * exact address before a wildcard); NULL if none. */
static struct tcp_pcb_listen *listener_find(const ip_addr_t *ip, u16_t port)
{
	struct tcp_pcb_listen *any = NULL;

	for (struct tcp_pcb_listen *l = tcp_listen_pcbs.listen_pcbs; l != NULL; l = l->next) {
		if (l->local_port != port || !listen_takes(l, ip))
			continue;
		if (!ip_addr_isany(&l->local_ip) && !IP_IS_ANY_TYPE_VAL(l->local_ip))
			return l;
		any = l;
	}
	return any;
}

/* The socket of ours behind lwIP listener l, if it takes connections;
 * NULL for another listener (the daemon's echo service, a test's). */
static struct isod_sock *listener_sock(const struct isod_backend *be, struct tcp_pcb_listen *l)
{
	struct isod_sock *lsk;

	if (!isod_sk_is_listener(l))
		return NULL;
	lsk = l->callback_arg;
	if (lsk->app->be != be || lsk->state != ISOD_S_LISTEN || lsk->close_pending)
		return NULL;
	return lsk;
}

/* ---- Pairing --------------------------------------------------------------- */

/*
 * Gives sk (OPEN, its pcb maybe bound) a local address for a connection
 * to ip: its bound one, or ip itself with an ephemeral port that the pcb
 * keeps reserved (moved to sk->cut_port).  0 or -errno.
 */
static int client_port(struct isod_sock *sk, const ip_addr_t *ip)
{
	struct tcp_pcb *pcb = sk->pcb;
	err_t e;

	if (pcb->local_port == 0) {
		ip_addr_t any = pcb->local_ip;   /* any of the socket's family */

		e = tcp_bind(pcb, &any, 0);
		if (e != ERR_OK)
			return e == ERR_USE ? -EADDRNOTAVAIL : -ENOBUFS;
	}
	if (ip_addr_isany(&pcb->local_ip) || IP_IS_ANY_TYPE_VAL(pcb->local_ip))
		ip_addr_copy(sk->local_ip, *ip);
	else
		ip_addr_copy(sk->local_ip, pcb->local_ip);
	sk->local_port = pcb->local_port;
	isod_sk_detach_pcb(sk);     /* no callbacks: lwIP never uses it */
	sk->cut_port = pcb;
	return 0;
}

/* The pairing failed after client_port: sk goes through TCP, on the
 * port it reserved. */
static int fall_back(struct isod_sock *sk)
{
	struct tcp_pcb *pcb = sk->cut_port;

	sk->cut_port = NULL;
	isod_sk_attach_pcb(sk, pcb);
	sk->app->be->st.cut_fallbacks++;
	return 0;
}

int isod_cut_connect(struct isod_sock *sk, const struct isostack_shm_cmd *c,
		     const ip_addr_t *ip, u16_t port)
{
	struct isod_backend *be = sk->app->be;
	struct isostack_shm_status st = {
		.opcode = ISOSTACK_SHM_OP_CONNECT, .sock = sk->id, .cookie = c->cookie,
	};
	struct tcp_pcb_listen *l;
	struct isod_sock *lsk, *child;
	int rc;

	if (!be->conf.cut_through || ip_addr_isany(ip) || !isod_sk_addr_is_local(ip) ||
	    sk->pcb == NULL)
		return 0;
	l = listener_find(ip, port);
	if (l != NULL && (lsk = listener_sock(be, l)) == NULL)
		return 0;     /* not a socket of ours: TCP */
	if (l == NULL) {
		/* lwIP would answer our own SYN with a RST */
		be->st.cut_refused++;
		isod_sk_reply(sk, c, -ECONNREFUSED);
		return 1;
	}
	rc = client_port(sk, ip);
	if (rc < 0) {
		isod_sk_reply(sk, c, rc);
		return 1;
	}
	lsk = isod_rp_pick_addr(lsk, ip, port, &sk->local_ip, sk->local_port);
	/* A full backlog: lwIP's handshake waits for room, as Linux's does;
	 * that connection goes through TCP (counted). */
	if (lsk->bl_count > lsk->bl_max)
		return fall_back(sk);
	child = isod_sk_alloc(lsk->app, false, lsk, 0, &rc);
	if (child == NULL)
		return fall_back(sk);
	child->state = ISOD_S_CHILD;
	child->parent = lsk->id;
	child->cut = sk->cut = true;
	child->cut_peer = sk;
	sk->cut_peer = child;
	ip_addr_copy(child->local_ip, *ip);
	child->local_port = port;
	ip_addr_copy(child->cut_rip, sk->local_ip);
	child->cut_rport = sk->local_port;
	ip_addr_copy(sk->cut_rip, *ip);
	sk->cut_rport = port;
	child->keep_idle_ms = lsk->keep_idle_ms;
	child->keep_intvl_ms = lsk->keep_intvl_ms;
	child->keep_cnt = lsk->keep_cnt;
	child->tos = lsk->tos;
	child->tos4 = lsk->tos4;
	isod_sk_backlog_push(lsk, child);
	isod_sock_queue(lsk, ISOD_R_ACCEPT);

	be->st.cut_pairs++;
	be->st.cut_open += 2;
	sk->state = ISOD_S_CONNECTED;
	isod_sk_put_addr(sk, st.arg, &sk->local_ip, sk->local_port);
	isod_sk_post(sk, &st);
	return 1;
}

/* ---- Unpairing ------------------------------------------------------------- */

void isod_cut_drop(struct isod_sock *sk)
{
	if (!sk->cut)
		return;
	if (sk->cut_peer != NULL) {
		sk->cut_peer->cut_peer = NULL;
		sk->cut_peer = NULL;
	}
	if (sk->cut_port != NULL) {
		tcp_close(sk->cut_port);     /* CLOSED: freed at once */
		sk->cut_port = NULL;
	}
	sk->cut = false;
	sk->app->be->st.cut_open--;
}

void isod_cut_abort(struct isod_sock *sk)
{
	struct isod_sock *peer = sk->cut_peer;

	isod_cut_drop(sk);
	if (peer != NULL && peer->state != ISOD_S_FREE) {
		peer->app->be->st.cut_resets++;
		isod_sk_kill(peer, -ECONNRESET);
	}
}

/* ---- Data ------------------------------------------------------------------ */

/* Copies n bytes of the writer's TX spans, from their start, into r's RX
 * ring.  Returns n or -EPROTO. */
static int copy_spans(struct isod_sock *r, const struct isoshm_span sp[2], uint32_t n)
{
	uint32_t first = n < sp[0].len ? n : sp[0].len;
	int k = isoshm_stack_rx_write(r->app->shm, r->id, sp[0].addr, first);

	if (k != (int)first)
		return -EPROTO;
	if (n > first) {
		k = isoshm_stack_rx_write(r->app->shm, r->id, sp[1].addr, n - first);
		if (k != (int)(n - first))
			return -EPROTO;
	}
	return (int)n;
}

/* Room in r's RX ring for new bytes (getting it a ring if it is none);
 * -EPROTO if its indices are corrupt.  *used: bytes unread before. */
static int reader_room(struct isod_sock *r, uint32_t *used)
{
	int space = isoshm_stack_rx_space(r->app->shm, r->id);

	if (space < 0)
		return space;
	*used = r->rx.bytes - (uint32_t)space;
	if (*used == 0) {
		/* an empty ring may grow (or follow SO_RCVBUF), none gets one */
		if (r->rx.bytes != 0)
			isod_sk_rx_resize(r, 0);
		else if (!isod_sk_rx_want(r))
			return 0;       /* none to be had: the next SEND or pass */
		space = isoshm_stack_rx_space(r->app->shm, r->id);
	}
	return space;
}

/* The writer side is done (CLOSE, SHUT_WR) and every byte moved: EOF. */
static void writer_fin(struct isod_sock *w, struct isod_sock *r)
{
	w->shut_wr_done = true;
	if (r == NULL || r->fin_rcvd)
		return;
	r->fin_rcvd = true;
	if (!r->hup_posted) {
		r->hup_posted = true;
		isod_sk_event(r, ISOSTACK_SHM_EV_HUP);
	}
}

void isod_cut_move(struct isod_sock *w)
{
	struct isod_sock *r = w->cut_peer;
	struct isoshm_span sp[2];
	uint32_t used = 0, n;
	int total, space, held;

	if (w->state != ISOD_S_CONNECTED || w->shut_wr_done)
		return;
	total = isod_sk_tx_peek(w, sp);
	if (total < 0) {
		isod_sk_kill(w, -EPROTO);
		return;
	}
	if (w->tx.bytes == 0 && !w->shut_wr)
		isod_sk_tx_want(w);      /* none (idle): a SEND asks for a ring */
	else if (w->tx.bytes != 0 && (uint32_t)total == w->tx.bytes) {
		w->tx_was_full = true;
		isod_sk_tx_full(w);
	}
	if (total > 0 && r == NULL) {
		/* the peer closed: its stack would answer with a RST */
		w->app->be->st.cut_resets++;
		isod_sk_kill(w, -ECONNRESET);
		return;
	}
	if (total == 0) {
		if (w->shut_wr)
			writer_fin(w, r);
		return;
	}
	space = reader_room(r, &used);
	if (space < 0) {
		isod_sk_kill(r, -EPROTO);    /* resets w too: isod_cut_abort */
		return;
	}
	n = (uint32_t)total < (uint32_t)space ? (uint32_t)total : (uint32_t)space;
	if (n == 0)
		return;   /* r's ring is full: its RECV moves the rest */
	if (copy_spans(r, sp, n) < 0) {
		isod_sk_kill(r, -EPROTO);
		return;
	}
	r->rx_cons_seen = r->rx_prod - used;   /* no window to credit */
	r->rx_prod += n;
	r->rx_rate_bytes += n;
	r->info_rcvd += n;
	r->activity += n;
	if (used + n > r->rx_peak)
		r->rx_peak = used + n;
	w->info_acked += n;
	w->activity += n;
	w->app->be->st.cut_bytes += n;
	if (used == 0) {
		isod_sk_tx_prepare(r);      /* before the reader wakes */
		isod_sk_event(r, ISOSTACK_SHM_EV_RX);
	}
	held = isoshm_stack_tx_release(w->app->shm, w->id, n);
	if (held < 0) {
		isod_sk_kill(w, -EPROTO);
		return;
	}
	if (held == 0 && (w->tx_was_full || isod_sk_app_waits(w))) {
		w->tx_was_full = false;
		isod_sk_event(w, ISOSTACK_SHM_EV_TX);
	}
	if (n == (uint32_t)total && w->shut_wr)
		writer_fin(w, r);
	/* A parked CLOSE completes once its ring moved (close_check runs
	 * from the event queue): only after progress, so a reader that
	 * stays full costs nothing until its RECV. */
	if (w->close_pending)
		isod_sock_queue(w, ISOD_R_SENT);
}

void isod_cut_pull(struct isod_sock *r)
{
	if (r->cut_peer != NULL)
		isod_cut_move(r->cut_peer);
}

/* ---- Closing --------------------------------------------------------------- */

void isod_cut_close_check(struct isod_sock *sk)
{
	struct isoshm_span sp[2];
	int total;

	sk->shut_wr = true;
	isod_cut_move(sk);
	if (sk->state == ISOD_S_CONNECTED && sk->cut_peer != NULL) {
		total = isod_sk_tx_peek(sk, sp);
		if (total > 0)
			return;     /* parked until the reader makes room */
	}
	if (sk->cut_peer != NULL)
		writer_fin(sk, sk->cut_peer);
	isod_cut_drop(sk);
	isod_sk_close_finish(sk);
}

/* ---- Addresses, TCP_INFO, statistics --------------------------------------- */

void isod_cut_names(const struct isod_sock *sk, uint16_t opcode, struct isostack_shm_status *st)
{
	if (opcode == ISOSTACK_SHM_OP_GETSOCKNAME)
		isod_sk_put_addr(sk, st->arg, &sk->local_ip, sk->local_port);
	else if (sk->state != ISOD_S_CONNECTED)
		st->result = -ENOTCONN;
	else
		isod_sk_put_addr(sk, st->arg, &sk->cut_rip, sk->cut_rport);
}

void isod_cut_accepted(const struct isod_sock *lsk, const struct isod_sock *child, uint64_t *arg)
{
	isod_sk_put_addr(lsk, arg, &child->cut_rip, child->cut_rport);
}

/*
 * TCP_INFO of a paired socket: ESTABLISHED (1) or CLOSE_WAIT (8) once
 * the peer's EOF came, no retransmissions, an RTT of 0, the loopback
 * MSS; unacknowledged bytes (SIOCOUTQ) are those still in the TX ring.
 */
int isod_cut_info(struct isod_sock *sk, uint32_t w[6], int piece)
{
	struct isoshm_span sp[2];
	int total;

	switch (piece) {
	case 0:     /* INFO_PIECE_TIMES */
		w[0] = sk->state != ISOD_S_CONNECTED ? 7 : sk->fin_rcvd ? 8 : 1;
		w[3] = ISOD_CUT_MSS;
		return 0;
	case 1:     /* INFO_PIECE_WINDOWS */
		total = isod_sk_tx_peek(sk, sp);
		w[0] = 10;                  /* Linux's initial cwnd */
		w[1] = 0x7fffffff;          /* no slow start threshold yet */
		w[3] = total > 0 ? (uint32_t)total : 0;
		w[4] = sk->cut_peer != NULL ? sk->cut_peer->rx.bytes : 0;
		w[5] = sk->rx.bytes;
		return 0;
	default:
		return 1;   /* not ours */
	}
}

static int opt_bit(int level, int name)
{
	if (level == SOL_SOCKET && name == SO_REUSEADDR)
		return 1;
	if (level == SOL_SOCKET && name == SO_KEEPALIVE)
		return 2;
	if (level == IPPROTO_TCP && name == TCP_NODELAY)
		return 4;
	if (level == IPPROTO_TCP && name == TCP_CORK)
		return 0;      /* the front end's business (it holds SEND) */
	return -ENOPROTOOPT;
}

int isod_cut_setopt(struct isod_sock *sk, int level, int name, int v)
{
	int b = opt_bit(level, name);

	if (b <= 0)
		return b;
	if (v)
		sk->cut_opts |= (uint8_t)b;
	else
		sk->cut_opts &= (uint8_t)~b;
	return 0;
}

int isod_cut_getopt(const struct isod_sock *sk, int level, int name, int *v)
{
	int b = opt_bit(level, name);

	*v = 0;
	if (b < 0 || (b == 0 && level == IPPROTO_TCP))
		return -ENOPROTOOPT;
	*v = (sk->cut_opts & b) != 0;
	return 0;
}

size_t isod_cut_format_stats(const struct isod_backend *be, char *buf, size_t len)
{
	int n = snprintf(buf, len,
		"backend.cut_through %d\nbackend.cut_pairs %llu\nbackend.cut_open %llu\n"
		"backend.cut_bytes %llu\nbackend.cut_refused %llu\nbackend.cut_fallbacks %llu\n"
		"backend.cut_resets %llu\n",
		be->conf.cut_through ? 1 : 0, (unsigned long long)be->st.cut_pairs,
		(unsigned long long)be->st.cut_open, (unsigned long long)be->st.cut_bytes,
		(unsigned long long)be->st.cut_refused, (unsigned long long)be->st.cut_fallbacks,
		(unsigned long long)be->st.cut_resets);

	if (n < 0)
		return 0;
	return (size_t)n >= len ? (len ? len - 1 : 0) : (size_t)n;
}
