/*
 * The TCP data path of the back-end: the RX ring filled from lwIP's
 * pbufs, the TX ring handed to lwIP, acknowledgements releasing it, and
 * the receive window.
 *
 * TX is zero-copy -- tcp_write() without TCP_WRITE_FLAG_COPY on spans of
 * the application's TX ring, released (tx_cons) as tcp_sent reports
 * acknowledgements.  RX is one copy, from lwIP's pbufs into the RX ring;
 * tcp_recved() credits exactly what the application consumed.  Every
 * connection starts with a receive window of min(TCP_WND, ring size),
 * set before the first segment that announces it (sock_tcp.c), so the
 * window is never larger than the ring's free space and what lwIP
 * accepted always fits in the ring: pbufs are held only until the next
 * pass copies them.  An idle socket has no RX ring (none, sock_ring.c)
 * and a window of ISOD_RING_MIN: what arrives waits in the pbufs until a
 * ring is moved in for it, at the latest a few passes later.
 */
#include "lwip/pbuf.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"

#include "internal.h"

/* Frees what is still held of the received data (connection gone), and
 * the RX reservation of an idle socket: nothing more will be placed. */
void isod_sk_rx_hold_drop(struct isod_sock *sk)
{
	isod_sk_rx_unreserve(sk);
	if (sk->rx_hold != NULL) {
		pbuf_free(sk->rx_hold);
		sk->rx_hold = NULL;
	}
	sk->rx_hold_off = 0;
	isod_cap_rx_put(sk, sk->rx_true);
	sk->app->be->st.rx_held -= sk->rx_held;
	sk->rx_held = 0;
}

/* ---- Receive window ----------------------------------------------------------- */

/*
 * lwIP sends a window update by itself once the window grew by
 * TCP_WND_UPDATE_THRESHOLD (4 MSS); with a ring below about 4 times that
 * a sender facing a full ring would wait for its persist timer.  Announce
 * once a quarter of the ring (at least one MSS) is free and unannounced.
 */
void isod_sk_wnd_update(struct isod_sock *sk)
{
	struct tcp_pcb *pcb = sk->pcb;
	uint32_t wnd = isod_sk_rx_wnd(sk);
	uint32_t step = wnd / 4;
	int32_t unannounced = (int32_t)(pcb->rcv_nxt + pcb->rcv_wnd - pcb->rcv_ann_right_edge);

	/* At least a segment, but never more than half the ring: a jumbo
	 * MSS exceeds a shrunk (4 KiB) ring. */
	if (step < pcb->mss)
		step = pcb->mss;
	if (step > wnd / 2)
		step = wnd / 2;
	if (unannounced >= (int32_t)step) {
		tcp_ack_now(pcb);
		tcp_output(pcb);
	}
}

/* ---- Data path --------------------------------------------------------------- */

/* Credits the window with what the application consumed since last time,
 * then moves held data into the ring.  Posts EV_RX when the ring was empty,
 * EV_HUP after the last byte of a FIN'd stream. */
void isod_sk_rx_pump(struct isod_sock *sk)
{
	struct isod_app *app = sk->app;
	int space = isoshm_stack_rx_space(app->shm, sk->id);
	uint32_t used, cons, credit;
	bool was_empty;

	if (sk->cut) {
		isod_cut_pull(sk);
		return;
	}
	if (space < 0) {
		isod_sk_kill(sk, -EPROTO);
		return;
	}
	used = sk->rx.bytes - (uint32_t)space;
	cons = sk->rx_prod - used;
	credit = cons - sk->rx_cons_seen;
	sk->rx_cons_seen = cons;
	if (sk->pcb != NULL && credit != 0) {
		while (credit > 0) {
			uint16_t n = credit > 0xffff ? 0xffff : (uint16_t)credit;

			tcp_recved(sk->pcb, n);
			credit -= n;
		}
		isod_sk_wnd_update(sk);
	}
	if (used == 0 && sk->rx_hold != NULL) {
		/* An empty ring may move (grow, or follow SO_RCVBUF) before
		 * the new bytes go in; none (idle) gets a ring, or the bytes
		 * wait in their pbufs for the next pass. */
		if (sk->rx.bytes != 0)
			isod_sk_rx_resize(sk, used);
		else if (!isod_sk_rx_want(sk) && sk->rx_resv != 0) {
			app->be->st.rx_waits++;
			isod_sock_queue(sk, ISOD_R_RX);
		}
		space = isoshm_stack_rx_space(app->shm, sk->id);
		if (space < 0) {
			isod_sk_kill(sk, -EPROTO);
			return;
		}
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
			isod_sk_kill(sk, -EPROTO);
			return;
		}
		sk->rx_prod += (uint32_t)k;
		sk->rx_rate_bytes += (uint64_t)k;
		sk->activity += (uint32_t)k;
		sk->rx_hold_off = (uint16_t)(sk->rx_hold_off + k);
		sk->rx_held -= (uint32_t)k;
		app->be->st.rx_held -= (uint64_t)k;
		space -= k;
		app->be->st.rx_bytes += (uint64_t)k;
		if (sk->rx_hold_off == q->len) {
			struct pbuf *next = q->next;

			q->next = NULL;
			q->tot_len = q->len;
			isod_cap_rx_put(sk, isod_pbuf_true(q));
			pbuf_free(q);
			sk->rx_hold = next;
			sk->rx_hold_off = 0;
		} else if (k == 0) {
			break;
		}
	}
	if (sk->rx_prod - cons + sk->rx_held > sk->rx_peak)
		sk->rx_peak = sk->rx_prod - cons + sk->rx_held;
	if (was_empty && sk->rx_prod - cons != 0) {
		isod_sk_tx_prepare(sk);     /* before the reader wakes */
		isod_sk_event(sk, ISOSTACK_SHM_EV_RX);
	}
	if (sk->fin_rcvd && sk->rx_hold == NULL && !sk->hup_posted) {
		sk->hup_posted = true;
		isod_sk_event(sk, ISOSTACK_SHM_EV_HUP);
	}
}

/* Hands new TX bytes to lwIP without copying, as far as it takes them. */
void isod_sk_tx_push(struct isod_sock *sk)
{
	struct isod_app *app = sk->app;
	struct isoshm_span sp[2];
	struct tcp_pcb *pcb = sk->pcb;
	uint32_t off, written = 0, segs;
	int total;

	if (sk->cut) {
		isod_cut_move(sk);
		return;
	}
	if (pcb == NULL || sk->state != ISOD_S_CONNECTED || sk->shut_wr_done)
		return;
	total = isod_sk_tx_peek(sk, sp);
	if (total < 0) {
		isod_sk_kill(sk, -EPROTO);
		return;
	}
	if (sk->tx.bytes == 0) {
		/* none (idle): a SEND on it asks for a ring */
		if (!sk->shut_wr)
			isod_sk_tx_want(sk);
	} else if ((uint32_t)total == sk->tx.bytes) {
		sk->tx_was_full = true;
		isod_sk_tx_full(sk);
	}
	off = sk->tx_handed;
	/* Variant Basic: no back-end aggregation either; each SEND's bytes
	 * go to TCP on their own, and out at once (tcp_output below).  The
	 * FIN's last push takes everything. */
	if (sk->app->no_tx_agg && !sk->shut_wr && (uint32_t)total - off > sk->tx_named)
		total = (int)(off + sk->tx_named);
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
		/* The application's share of the segment pools: a zero-copy
		 * write queues two pbufs a segment, and may chain one more
		 * onto the last unsent segment. */
		segs = isod_cap_segs_room(sk, 4);
		if (segs == 0)
			break;        /* it waits on its application's list */
		if (n > (uint64_t)(segs - 1) / 2 * pcb->mss)
			n = (segs - 1) / 2 * pcb->mss;
		e = tcp_write(pcb, p, (u16_t)n,
			      off + n < (uint32_t)total ? TCP_WRITE_FLAG_MORE : 0);
		if (e == ERR_MEM)
			break;
		if (e != ERR_OK) {
			isod_sk_kill(sk, isod_sk_err_to_errno(e, false));
			return;
		}
		app->be->st.tx_writes++;
		off += n;
		written += n;
	}
	sk->tx_named = written < sk->tx_named ? sk->tx_named - written : 0;
	sk->tx_handed = off;
	sk->activity += written;
	if (sk->shut_wr && off == (uint32_t)total) {
		tcp_shutdown(pcb, 0, 1);   /* FIN after the queued data */
		sk->shut_wr_done = true;
		written = 1;
	}
	if (written != 0)
		tcp_output(pcb);
	isod_cap_segs_sync(sk);
}

/* Releases acknowledged TX bytes; EV_TX if the application may be waiting. */
void isod_sk_tx_acked(struct isod_sock *sk)
{
	uint32_t n = sk->acked < sk->tx_handed ? sk->acked : sk->tx_handed;
	int held;

	sk->acked = 0;
	if (n == 0)
		return;
	held = isoshm_stack_tx_release(sk->app->shm, sk->id, n);
	if (held < 0) {
		isod_sk_kill(sk, -EPROTO);
		return;
	}
	sk->tx_handed -= n;
	sk->app->be->st.tx_bytes += n;
	/* Held back for an offered ring: the application sees the space (and
	 * hears of it) once the ring is empty. */
	if (held == 1)
		return;
	if (sk->tx_was_full || isod_sk_app_waits(sk)) {
		sk->tx_was_full = false;
		isod_sk_event(sk, ISOSTACK_SHM_EV_TX);
	}
}
