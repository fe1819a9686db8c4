/*
 * Per-application and per-socket lines of the STATS reply, the `ss` view of
 * isostackd: for every attached application its pid and open sockets, for
 * every open socket its state, addresses and queued bytes.
 *
 *   app.<id>.pid, app.<id>.sockets, app.<id>.mem_bytes
 *   sock.<app>.<slot>.state       enum isod_sock_state
 *   sock.<app>.<slot>.tcp_state   lwIP's enum tcp_state; 11 when no pcb
 *   sock.<app>.<slot>.local_ip / local_port / remote_ip / remote_port
 *                                 (addresses as host-order integers)
 *   sock.<app>.<slot>.tx_inflight bytes handed to lwIP, not yet acknowledged
 *   sock.<app>.<slot>.rx_queued   bytes in the RX ring the app had not read
 *                                 when the stack last looked (a RECV or new data)
 *   sock.<app>.<slot>.tx_ring / rx_ring  ring sizes now (they size themselves)
 *   sock.<app>.<slot>.tx_ring_max / rx_ring_max  the largest they were
 *   sock.<app>.<slot>.rcv_nxt / rcv_wnd / rcv_ann_wnd / snd_nxt / lastack
 *                                 lwIP's sequence state (connections only)
 *   sock.<app>.<slot>.flags       1 FIN received, 2 HUP posted, 4 bytes held,
 *                                 8 lwIP's demux would not find the pcb
 *   sock.<app>.<slot>.reuseport   a listener in a SO_REUSEPORT group: how many
 *                                 listen in it (reuseport.c), or a UDP
 *                                 socket in one: its members
 *                                 (reuseport_udp.c); only then
 *   sock.<app>.<slot>.reuseport_dgrams  a UDP member: datagrams the group
 *                                 gave it since it joined
 *
 * O(applications x slots); isostat asks about once a second at most.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "lwip/priv/tcp_priv.h"

#include "internal.h"

#define TCP_STATE_NONE 11

void isod_strbuf_put(struct isod_strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (sb->used >= sb->len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(sb->buf + sb->used, sb->len - sb->used, fmt, ap);
	va_end(ap);
	if (n > 0)
		sb->used = (size_t)n < sb->len - sb->used ? sb->used + (size_t)n : sb->len;
}

/* An active pcb that a segment for its 4-tuple would not reach. */
static bool lost(const struct tcp_pcb *pcb)
{
	if (pcb == NULL || pcb->state == LISTEN || pcb->state == CLOSED ||
	    pcb->state == TIME_WAIT)
		return false;
	return tcp_pcb_hash_lookup(&pcb->local_ip, pcb->local_port, &pcb->remote_ip,
				   pcb->remote_port, pcb->netif_idx) != pcb;
}

/*
 * One end's address: IPv4 as sock.A.I.WHICH_ip (a host-order number);
 * IPv6, and "any" of both versions on a dual-stack listener, as
 * WHICH_ip6_hi/_lo, the address's two halves as big-endian numbers.
 */
static void put_ip(struct isod_strbuf *sb, unsigned app, uint32_t i, const char *which,
		   const ip_addr_t *ip)
{
	if (IP_IS_V4(ip)) {
		isod_strbuf_put(sb, "sock.%u.%u.%s_ip %u\n", app, i, which,
				lwip_ntohl(ip4_addr_get_u32(ip_2_ip4(ip))));
		return;
	}
	const uint32_t *w = ip_2_ip6(ip)->addr;
	uint64_t hi = (uint64_t)lwip_ntohl(w[0]) << 32 | lwip_ntohl(w[1]);
	uint64_t lo = (uint64_t)lwip_ntohl(w[2]) << 32 | lwip_ntohl(w[3]);

	if (IP_IS_ANY_TYPE_VAL(*ip))
		hi = lo = 0;
	isod_strbuf_put(sb, "sock.%u.%u.%s_ip6_hi %" PRIu64 "\nsock.%u.%u.%s_ip6_lo %" PRIu64 "\n",
			app, i, which, hi, app, i, which, lo);
}

size_t isod_backend_format_sockets(const struct isod_backend *be, char *buf, size_t len)
{
	struct isod_strbuf sb = { .buf = buf, .len = len };

	for (const struct isod_app *app = be->apps; app != NULL; app = app->next) {
		isod_strbuf_put(&sb, "app.%u.pid %u\napp.%u.sockets %u\n"
			   "app.%u.mem_bytes %" PRIu64 "\napp.%u.mem_backed %" PRIu64 "\n",
			   app->id, app->pid, app->id, app->nopen, app->id, app->mem_used,
			   app->id, app->mem.backed);
		for (uint32_t i = 1; i < app->hiwat; i++) {
			const struct isod_sock *sk = &app->socks[i];
			const struct tcp_pcb *pcb = sk->udp ? NULL : sk->pcb;
			/* A SO_REUSEPORT member listens through its group's
			 * lwIP listener; its own pcb is only bound. */
			bool listen = pcb != NULL && (pcb->state == LISTEN || sk->state == ISOD_S_LISTEN);
			/* a paired socket (cutthru.c) has no pcb: its state as
			 * TCP would have it */
			unsigned tstate = listen ? (unsigned)LISTEN : pcb ? (unsigned)pcb->state :
					  sk->cut ? (unsigned)(sk->fin_rcvd ? CLOSE_WAIT : ESTABLISHED) :
					  TCP_STATE_NONE;

			if (sk->state == ISOD_S_FREE)
				continue;
			isod_strbuf_put(&sb, "sock.%u.%u.state %u\nsock.%u.%u.tcp_state %u\n"
				   "sock.%u.%u.tx_inflight %u\nsock.%u.%u.rx_queued %u\n",
				   app->id, i, sk->state, app->id, i, tstate,
				   app->id, i, sk->tx_handed,
				   app->id, i, sk->rx_prod - sk->rx_cons_seen);
			isod_strbuf_put(&sb, "sock.%u.%u.tx_ring %u\nsock.%u.%u.rx_ring %u\n"
					"sock.%u.%u.tx_ring_max %u\nsock.%u.%u.rx_ring_max %u\n",
					app->id, i, sk->tx.bytes, app->id, i, sk->rx.bytes,
					app->id, i, sk->tx_max, app->id, i, sk->rx_max);
			if (pcb != NULL) {
				/* A listener is a struct tcp_pcb_listen: no remote
				 * end, and no remote_port to read at all. */
				isod_strbuf_put(&sb, "sock.%u.%u.local_port %u\nsock.%u.%u.remote_port %u\n",
					   app->id, i, pcb->local_port,
					   app->id, i, listen ? 0u : pcb->remote_port);
				put_ip(&sb, app->id, i, "local", &pcb->local_ip);
				put_ip(&sb, app->id, i, "remote", listen ? IP4_ADDR_ANY : &pcb->remote_ip);
				if (!listen)
					isod_strbuf_put(&sb, "sock.%u.%u.rcv_nxt %u\nsock.%u.%u.rcv_wnd %u\n"
						"sock.%u.%u.rcv_ann_wnd %u\nsock.%u.%u.snd_nxt %u\n"
						"sock.%u.%u.lastack %u\n",
						app->id, i, pcb->rcv_nxt, app->id, i, (unsigned)pcb->rcv_wnd,
						app->id, i, (unsigned)pcb->rcv_ann_wnd, app->id, i, pcb->snd_nxt,
						app->id, i, pcb->lastack);
			}
			if (sk->cut) {
				isod_strbuf_put(&sb, "sock.%u.%u.local_port %u\nsock.%u.%u.remote_port %u\n"
						"sock.%u.%u.cut %u\n",
						app->id, i, sk->local_port, app->id, i, sk->cut_rport,
						app->id, i, sk->cut_peer != NULL ? 1u : 0u);
				put_ip(&sb, app->id, i, "local", &sk->local_ip);
				put_ip(&sb, app->id, i, "remote", &sk->cut_rip);
			}
			isod_strbuf_put(&sb, "sock.%u.%u.flags %u\n", app->id, i,
					(sk->fin_rcvd ? 1u : 0u) | (sk->hup_posted ? 2u : 0u) |
					(sk->rx_hold != NULL ? 4u : 0u) | (lost(pcb) ? 8u : 0u));
			if (isod_rp_members(sk) != 0)
				isod_strbuf_put(&sb, "sock.%u.%u.reuseport %u\n", app->id, i,
						isod_rp_members(sk));
			if (sk->rpu != NULL)
				isod_strbuf_put(&sb, "sock.%u.%u.reuseport_dgrams %" PRIu64 "\n",
						app->id, i, sk->rpu_dgrams);
		}
	}
	return sb.used;
}
