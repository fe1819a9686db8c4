/*
 * TCP connection setup in the back-end: the lwIP callbacks, connect,
 * listen and the accept backlog.
 *
 * lwIP callbacks only record what happened (data held, bytes acked, pcb
 * gone, a child accepted) and queue the socket with an event bit; the
 * work is done when isod_sock_resume() (sock.c) drains the queue.  Every
 * connection starts with a receive window of min(TCP_WND, ring size),
 * set here before the first segment that announces it (wnd_passive_open
 * for accepted connections, cb_connected for connect).  An accepted
 * child waits on its listener's backlog until an ACCEPT takes it
 * (isod_sk_accept_serve).
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

/* glibc's <netinet/in.h> defines the byte-order macros; lwIP must not. */
#define LWIP_DONT_PROVIDE_BYTEORDER_FUNCTIONS 1
#include <netinet/in.h>

#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"

#include "internal.h"

/* ---- Receive window ----------------------------------------------------------- */

/*
 * lwIP starts every pcb with TCP_WND (65535 until window scaling is agreed);
 * the RX ring may be smaller (docs/sockets.md).  Nothing has been received
 * when this runs, so from here on the window lwIP computes (ring size minus
 * what it accepted plus what the application consumed and isod_sk_rx_pump credited)
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
 * It adjusts the new pcb's window (npcb->callback_arg is still the
 * listener's socket) and bounds the listener's half-open connections
 * (synq.c; an error drops the SYN).
 */
static err_t wnd_passive_open(u8_t id, struct tcp_pcb_listen *lpcb, struct tcp_pcb *npcb)
{
	struct isod_sock *lsk = lpcb->callback_arg;

	if (lsk == NULL)
		return ERR_OK;
	wnd_clamp(npcb, isod_sk_rx_start(lsk->app->be, lsk));
	return isod_synq_admit(lsk->app->be, lpcb, id, npcb, isod_synq_cap(lsk->bl_max));
}

static const struct tcp_ext_arg_callbacks wnd_ext_cbs = {
	.passive_open = wnd_passive_open,
	.destroy = isod_synq_free,
};

static u8_t wnd_ext_id(void)
{
	static int16_t slot = -1;

	return isod_ext_id(&slot);
}

/* ---- lwIP callbacks: record and queue, nothing else ------------------------ */

int isod_sk_err_to_errno(err_t e, bool connecting)
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

		/* At its cap the application's data waits in lwIP (refused
		 * data, offered again by the fast timer: appcap.c). */
		if (!isod_cap_rx_take(sk, p))
			return ERR_MEM;
		sk->info_rcvd += p->tot_len;
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
		sk->info_acked += len;
		isod_cap_segs_sync(sk);    /* lwIP freed the acknowledged segments */
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
	isod_cap_segs_sync(sk);
	isod_cap_pcb_sync(sk);
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
		sk->err = isod_sk_err_to_errno(err, sk->state == ISOD_S_CONNECTING);
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
		wnd_clamp(pcb, sk->rx.bytes != 0 ? sk->rx.bytes : sk->rx_resv);  /* none: the reserve */
		isod_sock_queue(sk, ISOD_R_CONNECTED);
	}
	return ERR_OK;
}

/* lwIP's slow timer polls pcbs whose rings may shrink (sock_ring.c). */
void isod_sk_attach_pcb(struct isod_sock *sk, struct tcp_pcb *pcb)
{
	sk->pcb = pcb;
	isod_cap_pcb_sync(sk);
	tcp_arg(pcb, sk);
	tcp_recv(pcb, cb_recv);
	tcp_sent(pcb, cb_sent);
	tcp_err(pcb, cb_err);
	isod_sk_ring_armed(sk);
}

static err_t cb_accept(void *arg, struct tcp_pcb *npcb, err_t err)
{
	struct isod_sock *lsk = arg;
	struct isod_sock *child;
	int rc;

	if (lsk == NULL || err != ERR_OK || npcb == NULL)
		return ERR_VAL;
	/* The listener's socket now: npcb's arg is the one it had at the
	 * SYN (a SO_REUSEPORT group's listener may have changed hands), and
	 * in a group the connection goes to one of its members. */
	if (npcb->listener != NULL && npcb->listener->callback_arg != NULL)
		lsk = npcb->listener->callback_arg;
	lsk = isod_rp_pick(lsk, npcb);
	if (lsk->bl_count > lsk->bl_max) {
		/* Full (Linux's test: the queue may hold one more than the
		 * backlog): npcb waits half open, its ACK dropped (lwIP patch
		 * 0008); the next segment of the peer tries again. */
		lsk->app->be->st.accept_deferred++;
		return ERR_INPROGRESS;
	}
	/* The application holds its share of pcbs: the connection waits
	 * the same way until it closes one (appcap.c). */
	if (isod_cap_pcb_room(lsk->app, false, false) < 0)
		return ERR_INPROGRESS;
	/* The SYN-ACK announced the window clamped at the SYN (memory
	 * pressure may have come since): the ring must hold it. */
	child = isod_sk_alloc(lsk->app, false, lsk, npcb->rcv_wnd, &rc);
	if (child == NULL) {
		lsk->app->be->st.accept_dropped++;
		return ERR_MEM;
	}
	isod_synq_accepted(npcb, wnd_ext_id());
	child->state = ISOD_S_CHILD;
	child->parent = lsk->id;
	isod_sk_opt_inherit(lsk, child, npcb);
	isod_sk_attach_pcb(child, npcb);
	isod_sk_backlog_push(lsk, child);
	isod_sock_queue(lsk, ISOD_R_ACCEPT);
	return ERR_OK;
}

void isod_sk_backlog_push(struct isod_sock *lsk, struct isod_sock *child)
{
	if (lsk->bl_count == 0)
		lsk->bl_head = child->id;
	else
		lsk->app->socks[lsk->bl_tail].bl_next = child->id;
	lsk->bl_tail = child->id;
	lsk->bl_count++;
}

bool isod_sk_is_listener(const struct tcp_pcb_listen *lpcb)
{
	return lpcb->accept == cb_accept && lpcb->callback_arg != NULL;
}

/* ---- Listen, connect, accept ----------------------------------------------------- */

void isod_sk_cmd_listen(struct isod_sock *sk, const struct isostack_shm_cmd *c)
{
	struct tcp_pcb *lpcb;
	uint32_t max = sk->app->hdr.max_sockets;
	err_t e;
	int rc;

	if (sk->state == ISOD_S_LISTEN) {
		sk->bl_max = c->arg[0] < 1 ? 1 : c->arg[0] > max ? max : (uint32_t)c->arg[0];
		isod_sk_reply(sk, c, 0);
		return;
	}
	if (sk->state != ISOD_S_OPEN || sk->pcb == NULL) {
		isod_sk_reply(sk, c, -EINVAL);
		return;
	}
	if (sk->pcb->local_port == 0) {
		e = tcp_bind(sk->pcb, !sk->inet6 ? IP4_ADDR_ANY :
				 sk->v6only ? IP6_ADDR_ANY : IP_ANY_TYPE, 0);
		if (e != ERR_OK) {
			isod_sk_reply(sk, c, isod_sk_lwip_bind_errno(e));
			return;
		}
	}
	/* A SO_REUSEPORT group on its address and port: it joins, keeping
	 * its bound pcb (reuseport.c); else it gets an lwIP listener. */
	rc = isod_rp_join(sk);
	if (rc < 0) {
		isod_sk_reply(sk, c, rc);
		return;
	}
	if (rc == 0 && isod_cap_pcb_room(sk->app, false, true) < 0) {
		isod_sk_reply(sk, c, -ENOBUFS);
		return;
	}
	if (rc == 0) {
		lpcb = tcp_listen_with_backlog_and_err(sk->pcb, 0xff, &e);
		if (lpcb == NULL) {
			isod_sk_reply(sk, c, e == ERR_USE ? -EADDRINUSE : -ENOBUFS);
			return;
		}
		/* tcp_listen freed the old pcb: nothing to detach */
		sk->pcb = lpcb;
		isod_cap_pcb_sync(sk);       /* now a listener */
		tcp_arg(lpcb, sk);
		tcp_accept(lpcb, cb_accept);
		tcp_ext_arg_set_callbacks(lpcb, wnd_ext_id(), &wnd_ext_cbs);
		isod_rp_listened(sk);
	}
	sk->state = ISOD_S_LISTEN;
	sk->bl_max = c->arg[0] < 1 ? 1 : c->arg[0] > max ? max : (uint32_t)c->arg[0];
	isod_sk_reply(sk, c, 0);
}

void isod_sk_cmd_connect(struct isod_sock *sk, const struct isostack_shm_cmd *c)
{
	ip_addr_t ip;
	u16_t port;
	err_t e;
	int rc;

	switch (sk->state) {
	case ISOD_S_CONNECTING: isod_sk_reply(sk, c, -EALREADY); return;
	case ISOD_S_CONNECTED:  isod_sk_reply(sk, c, -EISCONN); return;
	case ISOD_S_LISTEN:     isod_sk_reply(sk, c, -EISCONN); return;
	case ISOD_S_DEAD:       isod_sk_reply(sk, c, sk->err ? sk->err : -ECONNABORTED); return;
	default: break;
	}
	rc = isod_sk_addr_from_cmd(sk, c, &ip, &port);
	if (rc == ISOD_V6ONLY_MAPPED)
		rc = -ENETUNREACH;
	if (rc == 0 && (port == 0 || ip_addr_isany(&ip)))
		rc = -ECONNREFUSED;
	if (rc < 0) {
		isod_sk_reply(sk, c, rc);
		return;
	}
	if (isod_cut_connect(sk, c, &ip, port))
		return;                        /* paired on the stack core */
	sk->pcb->tos = isod_sk_tos(sk, &ip);   /* the SYN carries it */
	e = tcp_connect(sk->pcb, &ip, port, cb_connected);
	if (e != ERR_OK) {
		isod_sk_reply(sk, c, e == ERR_RTE ? -ENETUNREACH : e == ERR_USE ? -EADDRINUSE : -ENOBUFS);
		return;
	}
	sk->state = ISOD_S_CONNECTING;
	sk->connect_cookie = c->cookie;
	sk->connect_parked = true;
	sk->app->be->st.parked++;
}

void isod_sk_accept_serve(struct isod_sock *lsk)
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
		if (child->cut)
			isod_cut_accepted(lsk, child, st.arg);
		else if (child->pcb != NULL)
			isod_sk_put_addr(lsk, st.arg, &child->pcb->remote_ip, child->pcb->remote_port);
		if (child->pcb != NULL) {
			child->local_ip = child->pcb->local_ip;
			child->local_port = child->pcb->local_port;
		}
		if (child->state == ISOD_S_CHILD)
			child->state = ISOD_S_CONNECTED;
		isod_sk_post(lsk, &st);
		isod_sock_queue(child, ISOD_R_RX | ISOD_R_SENT);
	}
	if (lsk->bl_count > 0)
		isod_sk_event(lsk, ISOSTACK_SHM_EV_INCOMING);
}
