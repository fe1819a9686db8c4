/*
 * SETSOCKOPT and GETSOCKOPT on TCP sockets: SO_LINGER (used by CLOSE),
 * SO_RCVBUF/SO_SNDBUF (ring sizes, sock_ring.c), SO_REUSEADDR,
 * SO_REUSEPORT (groups of listeners, reuseport.c),
 * keepalive, Nagle and IP_TOS/IPV6_TCLASS, applied to the lwIP pcb (a
 * listener keeps them for its children: isod_sk_opt_inherit);
 * IPV6_V6ONLY, kept on the socket for BIND and LISTEN (sock.c,
 * sock_tcp.c); TCP_INFO and SIOCOUTQ read in pieces (ISOSTACK_SHM_OPT_MAX
 * bytes a reply, isod_tcp_info).  UDP sockets take theirs in sock_udp.c.
 */
#include <errno.h>
#include <stdbool.h>
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
#define LINUX_TCP_INFO 11
/* Linux's bounds (include/net/tcp.h): MAX_TCP_KEEPIDLE, _KEEPINTVL, _KEEPCNT */
#define KEEP_SECS_MAX 32767
#define KEEP_CNT_MAX  127

/* TCP_INFO's pieces (the application puts them together: core_opt.c);
 * the piece is in the option name's bits 16 and up. */
enum { INFO_PIECE_TIMES, INFO_PIECE_WINDOWS, INFO_PIECE_BYTES };

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
	if (rc == 0 && level == IPPROTO_TCP &&
	    (name == TCP_KEEPIDLE || name == TCP_KEEPINTVL || name == TCP_KEEPCNT)) {
		/* Linux checks the value first, and a listener keeps it for
		 * its children (lwIP's listen pcb has no keepalive timer) */
		if (v < 1 || v > (name == TCP_KEEPCNT ? KEEP_CNT_MAX : KEEP_SECS_MAX)) {
			rc = -EINVAL;
		} else if (name == TCP_KEEPIDLE) {
			sk->keep_idle_ms = (uint32_t)v * 1000;
			if (pcb != NULL && pcb->state != LISTEN)
				pcb->keep_idle = sk->keep_idle_ms;
		} else if (name == TCP_KEEPINTVL) {
			sk->keep_intvl_ms = (uint32_t)v * 1000;
			if (pcb != NULL && pcb->state != LISTEN)
				pcb->keep_intvl = sk->keep_intvl_ms;
		} else {
			sk->keep_cnt = (uint32_t)v;
			if (pcb != NULL && pcb->state != LISTEN)
				pcb->keep_cnt = sk->keep_cnt;
		}
		isod_sk_reply(sk, c, rc);
		return;
	}
	if (rc == 0 && ((level == IPPROTO_IP && name == IP_TOS) ||
			(level == IPPROTO_IPV6 && name == IPV6_TCLASS && sk->inet6))) {
		/* Linux (ip_sockglue.c, ipv6_sockglue.c): on a stream socket
		 * the ECN bits stay TCP's; IPV6_TCLASS -1 is the default; an
		 * AF_INET6 socket's IP_TOS marks its IPv4 traffic only */
		uint8_t *dst = name == IP_TOS && sk->inet6 ? &sk->tos4 : &sk->tos;

		if (name == IPV6_TCLASS && (v < -1 || v > 0xff))
			rc = -EINVAL;
		else if (name == IPV6_TCLASS && v == -1)
			*dst = 0;
		else
			*dst = (uint8_t)(v & 0xfc);   /* IP_TOS: its low byte */
		if (rc == 0 && pcb != NULL)
			pcb->tos = isod_sk_tos(sk, &pcb->remote_ip);
		isod_sk_reply(sk, c, rc);
		return;
	}
	if (rc == 0 && sk->cut) {
		isod_sk_reply(sk, c, isod_cut_setopt(sk, level, name, v));
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
		} else if (level == IPPROTO_TCP && name == TCP_CORK) {
			rc = 0;   /* front-end business (it holds SEND) */
		} else {
			rc = -ENOPROTOOPT;
		}
	}
	isod_sk_reply(sk, c, rc);
}

/* Linux's TCP state numbers (include/net/tcp_states.h) for lwIP's; a
 * socket whose pcb is gone is TCP_CLOSE (7), as Linux's full socket is
 * once a time-wait socket took over. */
static uint32_t linux_state(const struct tcp_pcb *pcb)
{
	static const uint8_t map[] = {
		[CLOSED] = 7, [LISTEN] = 10, [SYN_SENT] = 2, [SYN_RCVD] = 3,
		[ESTABLISHED] = 1, [FIN_WAIT_1] = 4, [FIN_WAIT_2] = 5,
		[CLOSE_WAIT] = 8, [CLOSING] = 11, [LAST_ACK] = 9, [TIME_WAIT] = 7,
	};

	return pcb == NULL || pcb->state > TIME_WAIT ? 7 : map[pcb->state];
}

static uint32_t seg_count(const struct tcp_seg *s)
{
	uint32_t n = 0;

	for (; s != NULL; s = s->next)
		n++;
	return n;
}

/*
 * One piece of TCP_INFO into out (24 bytes); returns its length.  Times
 * in microseconds: lwIP measures RTT in slow-timer ticks
 * (TCP_SLOW_INTERVAL ms), so an RTT shorter than a tick reads as one tick
 * once a segment was acknowledged.  Windows in segments, as Linux's cwnd.
 * SIOCOUTQ comes from INFO_PIECE_WINDOWS: the bytes written and not yet
 * acknowledged (the TX ring holds them until then).
 */
int isod_tcp_info(struct isod_sock *sk, int piece, uint64_t out[3])
{
	const struct tcp_pcb *pcb = sk->pcb;
	bool live = pcb != NULL && pcb->state != LISTEN && pcb->state != CLOSED;
	uint32_t w[6] = { 0 };
	uint32_t tick_us = TCP_SLOW_INTERVAL * 1000;
	uint32_t mss = live && pcb->mss ? pcb->mss : 536;

	if (sk->cut && isod_cut_info(sk, w, piece) == 0) {
		memcpy(out, w, sizeof(w));
		return (int)sizeof(w);
	}
	switch (piece) {
	case INFO_PIECE_TIMES:
		w[0] = sk->pcb_closed ? 7 : linux_state(pcb);
		if (live) {
			uint32_t rtt = (uint32_t)(pcb->sa >> 3) * tick_us;

			if (rtt == 0 && sk->info_acked > 0)
				rtt = tick_us;
			w[1] = pcb->nrtx;
			w[2] = (uint32_t)pcb->rto * tick_us;
			w[3] = pcb->mss;
			w[4] = rtt;
			w[5] = (uint32_t)(pcb->sv >> 2) * tick_us;
		}
		break;
	case INFO_PIECE_WINDOWS:
		if (live) {
			struct isoshm_span sp[2];
			int total = isod_sk_tx_peek(sk, sp);

			w[0] = pcb->cwnd / mss;
			w[1] = pcb->ssthresh / mss;
			w[2] = seg_count(pcb->unacked);
			w[3] = total > (int)sk->acked ? (uint32_t)total - sk->acked : 0;
			w[4] = pcb->snd_wnd;
			w[5] = pcb->rcv_wnd;
		}
		break;
	case INFO_PIECE_BYTES:
		memcpy(&w[0], &sk->info_acked, sizeof(uint64_t));
		memcpy(&w[2], &sk->info_rcvd, sizeof(uint64_t));
		break;
	default:
		return -EINVAL;
	}
	memcpy(out, w, sizeof(w));
	return (int)sizeof(w);
}

/* The TOS byte of sk's packets to remote: an AF_INET6 socket marks IPv4
 * (::ffff:a.b.c.d) with its IP_TOS, IPv6 with its IPV6_TCLASS, as Linux. */
uint8_t isod_sk_tos(const struct isod_sock *sk, const ip_addr_t *remote)
{
	return sk->inet6 && IP_IS_V4(remote) ? sk->tos4 : sk->tos;
}

/* A child of lsk takes its keepalive settings and TOS (Linux copies the
 * listener's socket). */
void isod_sk_opt_inherit(const struct isod_sock *lsk, struct isod_sock *child,
			 struct tcp_pcb *npcb)
{
	child->tos = lsk->tos;
	child->tos4 = lsk->tos4;
	if (lsk->keep_idle_ms)
		npcb->keep_idle = lsk->keep_idle_ms;
	if (lsk->keep_intvl_ms)
		npcb->keep_intvl = lsk->keep_intvl_ms;
	if (lsk->keep_cnt)
		npcb->keep_cnt = lsk->keep_cnt;
	npcb->tos = isod_sk_tos(lsk, &npcb->remote_ip);
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
	} else if (level == IPPROTO_TCP && (name & 0xffff) == LINUX_TCP_INFO) {
		st.result = isod_tcp_info(sk, name >> 16, &st.arg[2]);
	} else if (sk->cut) {
		st.result = isod_cut_getopt(sk, level, name, &v);
		if (st.result == 0)
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
	} else if (level == IPPROTO_TCP &&
		   (name == TCP_KEEPIDLE || name == TCP_KEEPINTVL || name == TCP_KEEPCNT)) {
		bool live = pcb->state != LISTEN;
		uint32_t idle = live ? pcb->keep_idle :
				sk->keep_idle_ms ? sk->keep_idle_ms : TCP_KEEPIDLE_DEFAULT;
		uint32_t intvl = live ? pcb->keep_intvl :
				 sk->keep_intvl_ms ? sk->keep_intvl_ms : TCP_KEEPINTVL_DEFAULT;
		uint32_t cnt = live ? pcb->keep_cnt : sk->keep_cnt ? sk->keep_cnt : TCP_KEEPCNT_DEFAULT;

		v = name == TCP_KEEPIDLE ? (int)(idle / 1000) :
		    name == TCP_KEEPINTVL ? (int)(intvl / 1000) : (int)cnt;
		st.result = sizeof(v);
		memcpy(&st.arg[2], &v, sizeof(v));
	} else if (level == IPPROTO_IP && name == IP_TOS) {
		v = sk->inet6 ? sk->tos4 : sk->tos;
		st.result = sizeof(v);
		memcpy(&st.arg[2], &v, sizeof(v));
	} else if (level == IPPROTO_IPV6 && name == IPV6_TCLASS && sk->inet6) {
		v = sk->tos;
		st.result = sizeof(v);
		memcpy(&st.arg[2], &v, sizeof(v));
	} else {
		st.result = -ENOPROTOOPT;
	}
	isod_sk_post(sk, &st);
}
