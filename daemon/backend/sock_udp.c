/*
 * SOCK_DGRAM sockets in the back-end: datagram records between the
 * application's rings and lwIP's UDP pcb, and the commands a UDP socket
 * accepts (bind, connect, options, names, close).
 *
 * An AF_INET6 socket's pcb is dual-stack (IPADDR_TYPE_ANY) until
 * IPV6_V6ONLY makes it IPv6's only, as Linux's with bindv6only 0: IPv4
 * peers travel in records as plain IPv4 (the application shows them as
 * ::ffff:a.b.c.d), IPv6 ones with the record's address block.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

/* glibc's <netinet/in.h> defines the byte-order macros; lwIP must not. */
#define LWIP_DONT_PROVIDE_BYTEORDER_FUNCTIONS 1
#include <netinet/in.h>

#include "lwip/ip.h"
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

/* A TX record header as the application wrote it: within the limits, no
 * unknown flag, an IPv6 destination only from an AF_INET6 socket (its
 * IPv4 field then 0), and not larger than the ring. */
static bool udp_tx_header_valid(const struct isod_sock *sk, const struct isostack_shm_dgram *h)
{
	if (h->len > ISOSTACK_SHM_DGRAM_MAX || h->reserved != 0 ||
	    (h->flags & ~ISOSTACK_SHM_DGRAM_F_V6) != 0)
		return false;
	if ((h->flags & ISOSTACK_SHM_DGRAM_F_V6) && (!sk->inet6 || h->addr != 0))
		return false;
	return ISOSTACK_SHM_DGRAM_REC_F(h->len, h->flags) <= sk->tx.bytes;
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
		uint32_t rec, hdr;
		ip_addr_t ip;
		struct pbuf *p;
		err_t e = ERR_MEM;

		span_copy(sp, off, &h, DGRAM_HDR);
		if (!udp_tx_header_valid(sk, &h)) {
			isod_sk_kill(sk, -EPROTO);
			return;
		}
		rec = ISOSTACK_SHM_DGRAM_REC_F(h.len, h.flags);
		if ((uint32_t)total - off < rec)
			break;   /* the rest of it is not published yet */
		hdr = DGRAM_HDR;
		if (h.flags & ISOSTACK_SHM_DGRAM_F_V6) {
			ip = (ip_addr_t)IPADDR6_INIT(0, 0, 0, 0);
			span_copy(sp, off + DGRAM_HDR, ip_2_ip6(&ip)->addr, ISOSTACK_SHM_DGRAM_ADDR6);
			hdr += ISOSTACK_SHM_DGRAM_ADDR6;
		} else {
			ip_addr_set_ip4_u32_val(ip, h.addr);
		}
		p = pbuf_alloc(PBUF_TRANSPORT, (u16_t)h.len, PBUF_RAM);
		if (p != NULL) {
			span_copy(sp, off + hdr, p->payload, h.len);
			if (hdr == DGRAM_HDR && h.addr == 0 && h.port == 0)
				e = (sk->upcb->flags & UDP_FLAGS_CONNECTED) ?
				    udp_send(sk->upcb, p) : ERR_VAL;
			else
				e = udp_sendto(sk->upcb, p, &ip, ntohs(h.port));
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

	if (sk == NULL || p == NULL) {
		if (p != NULL)
			pbuf_free(p);
		return;
	}
	sk = isod_rpu_pick(sk, pcb, addr, port);   /* SO_REUSEPORT: reuseport_udp.c */
	app = sk->app;
	space = isoshm_stack_rx_space(app->shm, sk->id);
	if (space < 0) {
		pbuf_free(p);
		sk->udp_broken = true;
		isod_sock_queue(sk, ISOD_R_RX);
		return;
	}
	if (IP_IS_V6(addr))
		h.flags = ISOSTACK_SHM_DGRAM_F_V6;
	rec = ISOSTACK_SHM_DGRAM_REC_F(p->tot_len, h.flags);
	if (p->tot_len > ISOSTACK_SHM_DGRAM_MAX || rec > (uint32_t)space) {
		app->be->st.udp_rx_dropped++;
		pbuf_free(p);
		return;
	}
	h.len = p->tot_len;
	h.port = htons(port);
	if (!(h.flags & ISOSTACK_SHM_DGRAM_F_V6))
		h.addr = ip_2_ip4(addr)->addr;
	pad = rec - DGRAM_HDR - p->tot_len;
	/* The space was checked: every write below takes all it is given. */
	wrote += (uint32_t)isoshm_stack_rx_write(app->shm, sk->id, &h, DGRAM_HDR);
	if (h.flags & ISOSTACK_SHM_DGRAM_F_V6) {
		wrote += (uint32_t)isoshm_stack_rx_write(app->shm, sk->id, ip_2_ip6(addr)->addr,
							 ISOSTACK_SHM_DGRAM_ADDR6);
		pad -= ISOSTACK_SHM_DGRAM_ADDR6;
	}
	for (struct pbuf *q = p; q != NULL; q = q->next)
		if (q->len > 0)
			wrote += (uint32_t)isoshm_stack_rx_write(app->shm, sk->id, q->payload, q->len);
	if (pad > 0)
		wrote += (uint32_t)isoshm_stack_rx_write(app->shm, sk->id, zeros, pad);
	sk->rx_prod += wrote;
	app->be->st.rx_bytes += p->tot_len;
	app->be->st.udp_rx_dgrams++;
	sk->rpu_dgrams++;
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

/* The interface a datagram to ip leaves by, NULL if none. */
static struct netif *udp_route(const ip_addr_t *ip)
{
	if (IP_IS_V6(ip))
		return ip6_route(IP6_ADDR_ANY6, ip_2_ip6(ip));
	return ip4_route(ip_2_ip4(ip));
}

/* The local address a connected UDP socket sends from (lwIP leaves it
 * ANY and picks per datagram): the route's interface address of the
 * peer's version. */
static void udp_local_addr(const struct udp_pcb *upcb, ip_addr_t *ip)
{
	const ip_addr_t *src = NULL;
	struct netif *n;

	*ip = upcb->local_ip;
	if (!ip_addr_isany(ip) || !(upcb->flags & UDP_FLAGS_CONNECTED))
		return;
	n = udp_route(&upcb->remote_ip);
	if (n == NULL)
		return;
	if (IP_IS_V6(&upcb->remote_ip))
		src = ip6_select_source_address(n, ip_2_ip6(&upcb->remote_ip));
	else
		src = &n->ip_addr;
	if (src != NULL)
		ip_addr_copy(*ip, *src);
}

/* IPV6_V6ONLY, Linux's way: no such option on an AF_INET socket, and
 * only before the socket has a port.  The unbound pcb's wildcard follows
 * it, so that a send before bind binds it to the right one. */
static int udp_set_v6only(struct isod_sock *sk, bool on)
{
	struct udp_pcb *upcb = sk->upcb;

	if (!sk->inet6)
		return -ENOPROTOOPT;
	if (upcb->local_port != 0)
		return -EINVAL;
	sk->v6only = on;
	if (on)
		ip_addr_copy(upcb->local_ip, *IP6_ADDR_ANY);
	else
		ip_addr_copy(upcb->local_ip, *IP_ANY_TYPE);
	return 0;
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
		if (rc == ISOD_V6ONLY_MAPPED)
			rc = -EINVAL;
		if (rc == 0 && upcb->local_port != 0)
			rc = -EINVAL;
		if (rc == 0 && !isod_sk_addr_is_local(&ip))
			rc = -EADDRNOTAVAIL;
		if (rc == 0)
			rc = isod_rpu_bind(sk, &ip, port);   /* udp_bind, SO_REUSEPORT */
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
		if (rc == ISOD_V6ONLY_MAPPED)
			rc = -ENETUNREACH;
		if (rc == 0 && port == 0)
			rc = -EINVAL;
		if (rc == 0) {
			err_t e = udp_connect(upcb, &ip, port);

			rc = e == ERR_OK ? 0 : e == ERR_USE ? -EADDRINUSE : -ENETUNREACH;
		}
		if (rc == 0 && udp_route(&ip) == NULL) {
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
		if (rc == 0 && (int)c->arg[0] == IPPROTO_IPV6 && (int)c->arg[1] == IPV6_V6ONLY) {
			rc = udp_set_v6only(sk, v != 0);
		} else if (rc == 0 && (int)c->arg[0] == SOL_SOCKET && (int)c->arg[1] == SO_REUSEPORT) {
			isod_rp_set(sk, v != 0);   /* groups at bind: reuseport_udp.c */
		} else if (rc == 0 && (int)c->arg[0] == SOL_SOCKET &&
		    ((int)c->arg[1] == SO_REUSEADDR || (int)c->arg[1] == SO_BROADCAST)) {
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
		if ((int)c->arg[0] == IPPROTO_IPV6 && (int)c->arg[1] == IPV6_V6ONLY) {
			v = sk->v6only ? 1 : 0;
			st.result = sk->inet6 ? (int64_t)sizeof(v) : -ENOPROTOOPT;
			memcpy(&st.arg[2], &v, sizeof(v));
		} else if ((int)c->arg[0] == SOL_SOCKET &&
		    ((int)c->arg[1] == SO_REUSEADDR || (int)c->arg[1] == SO_REUSEPORT ||
		     (int)c->arg[1] == SO_BROADCAST)) {
			uint8_t opt = (int)c->arg[1] == SO_BROADCAST ? SOF_BROADCAST : SOF_REUSEADDR;

			v = (int)c->arg[1] == SO_REUSEPORT ? sk->reuseport : ip_get_option(upcb, opt) != 0;
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
