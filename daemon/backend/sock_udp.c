/*
 * SOCK_DGRAM sockets in the back-end: datagram records between the
 * application's rings and lwIP's UDP pcb, and the commands a UDP socket
 * accepts (bind, connect, options, names, close).
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

/* glibc's <netinet/in.h> defines the byte-order macros; lwIP must not. */
#define LWIP_DONT_PROVIDE_BYTEORDER_FUNCTIONS 1
#include <netinet/in.h>

#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/udp.h"

#include "internal.h"

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
		isod_sk_kill(sk, -EPROTO);
		return;
	}
	if ((uint32_t)total == sk->tx.bytes)
		sk->tx_was_full = true;
	while ((uint32_t)total - off >= DGRAM_HDR) {
		struct isostack_shm_dgram h;
		uint32_t rec;
		struct pbuf *p;
		err_t e = ERR_MEM;

		span_copy(sp, off, &h, DGRAM_HDR);
		if (h.len > ISOSTACK_SHM_DGRAM_MAX || h.flags != 0 || h.reserved != 0 ||
		    ISOSTACK_SHM_DGRAM_REC(h.len) > sk->tx.bytes) {
			isod_sk_kill(sk, -EPROTO);
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
		isod_sk_kill(sk, -EPROTO);
		return;
	}
	if (sk->tx_was_full || isod_sk_app_waits(sk)) {
		sk->tx_was_full = false;
		isod_sk_event(sk, ISOSTACK_SHM_EV_TX);
	}
}

/* lwIP delivered a datagram: one record into the RX ring, or dropped if
 * it does not fit.  Only shared memory is touched here; the event is
 * posted from the queue. */
void isod_sk_cb_udp_recv(void *arg, struct udp_pcb *pcb, struct pbuf *p,
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
	if ((uint32_t)space == sk->rx.bytes || isod_sk_app_waits(sk)) {
		sk->rx_ev_due = true;
		isod_sock_queue(sk, ISOD_R_RX);
	}
}

void isod_sk_udp_rx_resume(struct isod_sock *sk)
{
	if (sk->udp_broken) {
		sk->udp_broken = false;
		isod_sk_kill(sk, -EPROTO);
		if (!sk->err_posted) {
			sk->err_posted = true;
			isod_sk_event(sk, ISOSTACK_SHM_EV_ERROR);
		}
		return;
	}
	if (sk->rx_ev_due) {
		sk->rx_ev_due = false;
		isod_sk_event(sk, ISOSTACK_SHM_EV_RX);
	}
}

/* ---- Commands ------------------------------------------------------------------ */

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
void isod_sk_cmd_udp(struct isod_sock *sk, const struct isostack_shm_cmd *c)
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
		isod_sk_reply(sk, c, sk->err ? sk->err : -EBADF);
		return;
	}
	switch (c->opcode) {
	case ISOSTACK_SHM_OP_BIND:
		rc = isod_sk_addr_from_cmd(sk, c, &ip, &port);
		if (rc == 0 && upcb->local_port != 0)
			rc = -EINVAL;
		if (rc == 0 && !isod_sk_addr_is_local(&ip))
			rc = -EADDRNOTAVAIL;
		if (rc == 0)
			rc = isod_sk_lwip_bind_errno(udp_bind(upcb, &ip, port));
		isod_sk_reply(sk, c, rc);
		return;
	case ISOSTACK_SHM_OP_CONNECT: {
		struct sockaddr sa;

		memcpy(&sa, &c->arg[1], sizeof(sa.sa_family));
		if (sa.sa_family == AF_UNSPEC) {
			udp_disconnect(upcb);
			isod_sk_reply(sk, c, 0);
			return;
		}
		rc = isod_sk_addr_from_cmd(sk, c, &ip, &port);
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
			isod_sk_put_addr(sk, st.arg, &lip, upcb->local_port);
		}
		isod_sk_post(sk, &st);
		return;
	}
	case ISOSTACK_SHM_OP_SEND:
		sk->app->be->st.sends_seen++;
		udp_tx_push(sk);
		return;
	case ISOSTACK_SHM_OP_RECV:
		return;
	case ISOSTACK_SHM_OP_SHUTDOWN:
		isod_sk_reply(sk, c, (upcb->flags & UDP_FLAGS_CONNECTED) ? 0 : -ENOTCONN);
		return;
	case ISOSTACK_SHM_OP_CLOSE:
		udp_tx_push(sk);   /* what the application sent still goes out */
		sk->close_cookie = c->cookie;
		isod_sk_close_finish(sk);
		return;
	case ISOSTACK_SHM_OP_GETSOCKNAME:
		udp_local_addr(upcb, &ip);
		isod_sk_put_addr(sk, st.arg, &ip, upcb->local_port);
		isod_sk_post(sk, &st);
		return;
	case ISOSTACK_SHM_OP_GETPEERNAME:
		if (upcb->flags & UDP_FLAGS_CONNECTED)
			isod_sk_put_addr(sk, st.arg, &upcb->remote_ip, upcb->remote_port);
		else
			st.result = -ENOTCONN;
		isod_sk_post(sk, &st);
		return;
	case ISOSTACK_SHM_OP_SETSOCKOPT:
		rc = isod_sk_opt_int(c, &v);
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
		isod_sk_reply(sk, c, rc);
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
		isod_sk_post(sk, &st);
		return;
	case ISOSTACK_SHM_OP_LISTEN:
	case ISOSTACK_SHM_OP_ACCEPT:
		isod_sk_reply(sk, c, -EOPNOTSUPP);
		return;
	default:
		isod_sk_reply(sk, c, -EINVAL);
		return;
	}
}
