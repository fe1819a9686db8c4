/*
 * SETSOCKOPT and GETSOCKOPT on TCP sockets: SO_LINGER (used by CLOSE),
 * SO_RCVBUF/SO_SNDBUF (ring sizes, sock_ring.c), SO_REUSEADDR,
 * SO_REUSEPORT (groups of listeners, reuseport.c),
 * keepalive and Nagle, applied to the lwIP pcb; IPV6_V6ONLY, kept on the
 * socket for BIND and LISTEN (sock.c, sock_tcp.c).  UDP
 * sockets take theirs in sock_udp.c.
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


/* <netinet/tcp.h> would clash with lwIP's TCP_MSS: Linux's values. */
#ifndef TCP_NODELAY
#define TCP_NODELAY   1
#define TCP_CORK      3
#define TCP_KEEPIDLE  4
#define TCP_KEEPINTVL 5
#define TCP_KEEPCNT   6
#endif

int isod_sk_opt_int(const struct isostack_shm_cmd *c, int *v)
{
	if (c->arg[2] < sizeof(int))
		return -EINVAL;
	memcpy(v, &c->arg[3], sizeof(int));
	return 0;
}

void isod_sk_cmd_setsockopt(struct isod_sock *sk, const struct isostack_shm_cmd *c)
{
	struct tcp_pcb *pcb = sk->pcb;
	int level = (int)c->arg[0], name = (int)c->arg[1], v = 0;
	int rc;

	if (level == SOL_SOCKET && name == SO_LINGER) {
		struct linger l;

		if (c->arg[2] < sizeof(l)) {
			isod_sk_reply(sk, c, -EINVAL);
			return;
		}
		memcpy(&l, &c->arg[3], sizeof(l));
		sk->linger0 = l.l_onoff != 0 && l.l_linger == 0;
		isod_sk_reply(sk, c, 0);
		return;
	}
	rc = isod_sk_opt_int(c, &v);
	if (rc == 0 && level == IPPROTO_IPV6 && name == IPV6_V6ONLY) {
		/* Linux: an IPv6 option on an IPv4 socket does not exist, and
		 * the choice is made before the socket has an address. */
		if (!sk->inet6)
			rc = -ENOPROTOOPT;
		else if (sk->state != ISOD_S_OPEN || sk->pcb == NULL || sk->pcb->local_port != 0)
			rc = -EINVAL;
		else
			sk->v6only = v != 0;
		isod_sk_reply(sk, c, rc);
		return;
	}
	if (rc == 0 && level == SOL_SOCKET && (name == SO_RCVBUF || name == SO_SNDBUF)) {
		/* pins the ring size (sock_ring.c); the application reports
		 * what Linux would */
		isod_sk_ring_pin(sk, name == SO_RCVBUF, v);
		isod_sk_reply(sk, c, 0);
		return;
	}
	if (rc == 0 && level == SOL_SOCKET && name == SO_REUSEPORT) {
		isod_rp_set(sk, v != 0);     /* groups of listeners: reuseport.c */
		isod_sk_reply(sk, c, 0);
		return;
	}
	if (rc == 0 && pcb == NULL)
		rc = -EINVAL;
	if (rc == 0) {
		if (level == SOL_SOCKET && name == SO_REUSEADDR) {
			if (v)
				ip_set_option(pcb, SOF_REUSEADDR);
			else
				ip_reset_option(pcb, SOF_REUSEADDR);
		} else if (level == SOL_SOCKET && name == SO_KEEPALIVE) {
			if (v)
				ip_set_option(pcb, SOF_KEEPALIVE);
			else
				ip_reset_option(pcb, SOF_KEEPALIVE);
			if (pcb->state != LISTEN)
				tcp_slow_wake(pcb);   /* its keepalive timer runs from now */
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
	isod_sk_reply(sk, c, rc);
}

void isod_sk_cmd_getsockopt(struct isod_sock *sk, const struct isostack_shm_cmd *c)
{
	struct isostack_shm_status st = {
		.opcode = c->opcode, .sock = sk->id, .cookie = c->cookie,
	};
	struct tcp_pcb *pcb = sk->pcb;
	int level = (int)c->arg[0], name = (int)c->arg[1];
	int v;

	if (level == IPPROTO_IPV6 && name == IPV6_V6ONLY) {
		v = sk->v6only ? 1 : 0;
		st.result = sk->inet6 ? (int64_t)sizeof(v) : -ENOPROTOOPT;
		memcpy(&st.arg[2], &v, sizeof(v));
	} else if (level == SOL_SOCKET && name == SO_REUSEPORT) {
		v = sk->reuseport ? 1 : 0;
		st.result = sizeof(v);
		memcpy(&st.arg[2], &v, sizeof(v));
	} else if (pcb == NULL) {
		st.result = -EINVAL;
	} else if (level == SOL_SOCKET && name == SO_REUSEADDR) {
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
	isod_sk_post(sk, &st);
}
