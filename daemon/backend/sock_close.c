/*
 * Closing TCP sockets in the back-end: CLOSE (abortive with SO_LINGER 0),
 * parked until every byte of the TX ring is acknowledged, the deadline
 * list that bounds that wait (close_timeout_ms, then RST), and
 * forgetting pcbs lwIP keeps in TIME_WAIT.
 */
#include <string.h>

#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"

#include "internal.h"

void isod_sk_closing_unlink(struct isod_sock *sk)
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

void isod_sk_close_finish(struct isod_sock *sk)
{
	/* arg0: the final rx_prod, so the application drains exactly the old
	 * socket's bytes and never those of the slot's next socket. */
	struct isostack_shm_status st = {
		.opcode = sk->closed_by_stack ? ISOSTACK_SHM_EV_CLOSED : ISOSTACK_SHM_OP_CLOSE,
		.sock = sk->id, .cookie = sk->close_cookie, .arg = { sk->rx_prod },
	};

	isod_sk_free(sk);
	isod_sk_post(sk, &st);
}

/* CLOSE completes once lwIP no longer references the TX ring. */
void isod_sk_close_check(struct isod_sock *sk)
{
	struct tcp_pcb *pcb = sk->pcb;
	struct isoshm_span sp[2];
	int total;

	if (!sk->close_pending)
		return;
	if (sk->cut) {
		isod_cut_close_check(sk);
		return;
	}
	if (pcb == NULL) {
		isod_sk_close_finish(sk);
		return;
	}
	sk->shut_wr = true;
	isod_sk_tx_push(sk);
	if (sk->pcb == NULL) {   /* killed on the way */
		isod_sk_close_finish(sk);
		return;
	}
	total = isod_sk_tx_peek(sk, sp);
	if (total > 0 || sk->tx_handed > 0 || !sk->shut_wr_done)
		return;           /* parked until tcp_sent */
	/* Everything acknowledged.  Unread data still earns the peer a RST,
	 * as with the kernel; otherwise give lwIP back its full window so it
	 * closes with a FIN. */
	if (sk->rx_hold == NULL && isoshm_stack_rx_space(sk->app->shm, sk->id) ==
	    (int)sk->rx.bytes)
		pcb->rcv_wnd = TCP_WND_MAX(pcb);
	isod_sk_detach_pcb(sk);
	if (tcp_close(pcb) != ERR_OK)
		tcp_abort(pcb);
	isod_sk_close_finish(sk);
}

/*
 * Both FINs are through and ours is acknowledged (TIME_WAIT): lwIP frees
 * the pcb by itself after 2 MSL without telling us, so forget it now.
 * Every byte was acknowledged before (tcp_sent ran), and nothing more
 * can arrive.
 */
void isod_sk_forget_timewait(struct isod_sock *sk)
{
	if (sk->pcb == NULL || sk->pcb->state != TIME_WAIT)
		return;
	isod_sk_tx_acked(sk);
	isod_sk_detach_pcb(sk);
	sk->pcb_closed = true;
	sk->fin_rcvd = true;
}

void isod_sk_cmd_close(struct isod_sock *sk, const struct isostack_shm_cmd *c)
{
	struct isod_app *app = sk->app;

	if (isod_handoff_hold_close(sk, c))
		return;       /* in flight: the receiver may still take it */
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
			isod_sk_post(sk, &st);
		}
		while (sk->bl_count > 0) {
			struct isod_sock *child = &app->socks[sk->bl_head];

			sk->bl_head = child->bl_next;
			sk->bl_count--;
			isod_sk_abort(child);
			isod_sk_free(child);
		}
		isod_sk_abort(sk);
		isod_sk_close_finish(sk);
		return;
	case ISOD_S_CONNECTING:
		if (sk->connect_parked) {
			struct isostack_shm_status st = {
				.opcode = ISOSTACK_SHM_OP_CONNECT, .sock = sk->id,
				.cookie = sk->connect_cookie, .result = -ECONNABORTED,
			};
			sk->connect_parked = false;
			isod_sk_post(sk, &st);
		}
		isod_sk_abort(sk);
		isod_sk_close_finish(sk);
		return;
	case ISOD_S_OPEN:
		if (sk->pcb != NULL) {
			struct tcp_pcb *pcb = sk->pcb;

			isod_sk_detach_pcb(sk);
			tcp_close(pcb);   /* CLOSED pcb: freed at once */
		}
		isod_sk_close_finish(sk);
		return;
	case ISOD_S_CONNECTED:
		/* Received data nobody will read: the kernel resets at once,
		 * dropping what was not sent (RFC 2525, 2.17); so do we. */
		if (sk->linger0 || sk->rx_hold != NULL ||
		    isoshm_stack_rx_space(app->shm, sk->id) != (int)sk->rx.bytes) {
			isod_sk_abort(sk);
			isod_sk_close_finish(sk);
			return;
		}
		app->be->st.parked++;
		isod_sk_close_check(sk);
		if (sk->close_pending)   /* still parked: bound the wait */
			closing_link(sk);
		return;
	default:
		isod_sk_close_finish(sk);
		return;
	}
}

/*
 * No process holds the socket any more (a killed one held it last, or
 * the application is gone): close it as the kernel closes the fds of a
 * process that dies, through CLOSE's own path, so the unsent data goes
 * out before the FIN (bounded by close_timeout) and unread data or
 * SO_LINGER 0 make it a RST.  The id stays quarantined until the
 * application consumed EV_CLOSED.
 */
void isod_sk_close_by_stack(struct isod_sock *sk)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_CLOSE, .sock = sk->id };

	sk->closed_by_stack = true;
	sk->app->be->st.stack_closes++;
	if (sk->udp)
		isod_sk_cmd_udp(sk, &c);
	else
		isod_sk_cmd_close(sk, &c);
}

/*
 * The peer has not taken the rest of the TX ring within close_timeout_ms
 * (it keeps its window shut, or is gone without a RST and lwIP still
 * retransmits): reset the connection, which frees lwIP's segments and so
 * the ring, and complete the CLOSE.  The kernel does the same to an
 * orphaned socket after tcp_orphan_retries.
 */
unsigned isod_sock_expire_closes(struct isod_backend *be, uint32_t now, unsigned max)
{
	unsigned n = 0;

	while (n < max && be->closing_head != NULL &&
	       (int32_t)(now - be->closing_head->close_deadline) >= 0) {
		struct isod_sock *sk = be->closing_head;

		isod_sk_closing_unlink(sk);
		be->st.close_timeouts++;
		isod_sk_abort(sk);
		sk->tx_handed = 0;
		sk->acked = 0;
		isod_sk_close_finish(sk);
		n++;
	}
	return n;
}
