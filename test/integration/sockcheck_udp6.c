/*
 * The dual-stack datagram checks of `sockcheck run6`: an AF_INET6 UDP
 * socket on [::] serving the peer over IPv4 and over IPv6, IPV6_V6ONLY
 * and Linux's errnos for what it refuses, the names of a connected
 * socket, and sendmsg/recvmsg with sockaddr_in6.  The peer's prober
 * (+19) is asked over a TCP connection to send one datagram to our port
 * from an AF_INET6 socket connected to us, in the family the request came
 * in (IPv4 as ::ffff:a.b.c.d), then waits for its echo; it answers 0
 * (echoed byte for byte), -1 (wrong bytes) or its errno (ECONNREFUSED:
 * our stack answered "port unreachable", as for a v6only socket).
 * Addresses are compared with what they must be, never printed.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "sockcheck.h"

struct probe_req {
	uint16_t port;          /* ours, network order */
	uint16_t pad;
	uint32_t size;          /* payload bytes, pattern(0..size-1) */
};

#define PROBE_MAX 65000u

/* ---- peer side -------------------------------------------------------- */

void serve_udp_probe(int c)
{
	static unsigned char out[PROBE_MAX], in[PROBE_MAX + 1];
	struct probe_req q;
	union sk_addr a;
	socklen_t l = sizeof(a);
	struct timeval tv = { .tv_sec = 10 };   /* a lost echo is a failure */
	int32_t res;

	if (read_full(c, &q, sizeof(q)) < 0 || q.size > PROBE_MAX || getpeername(c, &a.sa, &l) < 0)
		return;
	sk_set_port(&a, q.port);
	for (uint32_t i = 0; i < q.size; i++)
		out[i] = pattern(i);
	int u = socket(a.sa.sa_family, SOCK_DGRAM, 0);
	setsockopt(u, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(u, &a.sa, l) < 0 || send(u, out, q.size, 0) != (ssize_t)q.size) {
		res = errno;
	} else {
		ssize_t r = recv(u, in, sizeof(in), 0);
		res = r < 0 ? errno : (size_t)r == q.size && !memcmp(in, out, q.size) ? 0 : -1;
	}
	close(u);
	write_full(c, &res, sizeof(res));
}

/* ---- helpers ------------------------------------------------------------ */

static union sk_addr any6(int port)
{
	union sk_addr a;
	memset(&a, 0, sizeof(a));
	a.v6.sin6_family = AF_INET6;
	a.v6.sin6_port = htons((uint16_t)port);
	return a;
}

/* "ok" if got (length len) is want's address (and port, unless want's is
 * 0), else the first thing that differs; then its kind. */
static void name_res(char *res, size_t n, const union sk_addr *got, socklen_t len,
		     const union sk_addr *want)
{
	const char *d = got->sa.sa_family != AF_INET6 ? "family" : len != sizeof(got->v6) ? "len" :
			sk_port(want) && sk_port(got) != sk_port(want) ? "port" :
			memcmp(&got->v6.sin6_addr, &want->v6.sin6_addr, 16) ? "addr" :
			got->v6.sin6_flowinfo || got->v6.sin6_scope_id ? "flow_scope" : "ok";
	const char *k = IN6_IS_ADDR_UNSPECIFIED(&got->v6.sin6_addr) ? "any" :
			IN6_IS_ADDR_V4MAPPED(&got->v6.sin6_addr) ? "mapped" : "v6";
	snprintf(res, n, "%s %s", d, got->sa.sa_family == AF_INET6 ? k : "inet");
}

static void report_name(const char *what, const union sk_addr *got, socklen_t len,
			const union sk_addr *want)
{
	char res[48];
	name_res(res, sizeof(res), got, len, want);
	report(what, res);
}

/* An AF_INET6 datagram socket, IPV6_V6ONLY as given (-1: untouched),
 * bound to [::] on a port of the stack's choice (*port, network order)
 * if port is not NULL. */
static int udp6(int v6only, uint16_t *port)
{
	union sk_addr a = any6(0);
	socklen_t al = sizeof(a);
	struct timeval tv = { .tv_sec = 10 };
	int u = socket(AF_INET6, SOCK_DGRAM, 0);
	if (u < 0)
		die("udp6 socket");
	setsockopt(u, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (v6only >= 0 && setsockopt(u, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) < 0)
		die("udp6 v6only");
	if (port == NULL)
		return u;
	if (bind(u, &a.sa, sk_len(&a)) < 0 || getsockname(u, &a.sa, &al) < 0)
		die("udp6 bind");
	*port = a.v6.sin6_port;
	return u;
}

/* A TCP connection to the peer's `via` (an AF_INET6 address), or -1. */
static int tcp6_to(const union sk_addr *via)
{
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	if (fd >= 0 && connect(fd, &via->sa, sk_len(via)) == 0)
		return fd;
	if (fd >= 0)
		close(fd);
	return -1;
}

/* ---- the checks --------------------------------------------------------- */

/*
 * A [::] socket (v6only as in udp6) serving one probe of `size` bytes
 * that the prober, reached at `via`, sends from `src`: what arrived
 * (bytes, source), then what the peer saw of our echo.  A datagram the
 * socket refuses never arrives; the peer's answer says so first.
 */
static void check_serve(const char *what, int v6only, const union sk_addr *via,
			const union sk_addr *src, uint32_t size)
{
	static unsigned char buf[PROBE_MAX + 1];
	uint16_t port;
	int u = udp6(v6only, &port), ctl = tcp6_to(via);
	struct probe_req q = { .port = port, .size = size };
	int32_t peer = -2;
	char got[64] = "none", res[128];

	if (ctl < 0 || write_full(ctl, &q, sizeof(q)) < 0) {
		report(what, "ctl_failed");
		close(u);
		if (ctl >= 0)
			close(ctl);
		return;
	}
	struct pollfd p[2] = { { u, POLLIN, 0 }, { ctl, POLLIN, 0 } };
	if (poll(p, 2, 20000) > 0 && (p[0].revents & POLLIN)) {
		union sk_addr from;
		socklen_t fl = sizeof(from);
		ssize_t r = recvfrom(u, buf, sizeof(buf), 0, &from.sa, &fl);
		bool same = r == (ssize_t)size;
		for (uint32_t i = 0; same && i < size; i++)
			same = buf[i] == pattern(i);
		char name[48];
		name_res(name, sizeof(name), &from, fl, src);
		snprintf(got, sizeof(got), "%s from %s", r < 0 ? ename(errno) : same ? "bytes_ok" :
			 "bytes_bad", name);
		if (r >= 0)
			sendto(u, buf, (size_t)r, 0, &from.sa, fl);
	}
	if (read_full(ctl, &peer, sizeof(peer)) < 0)
		peer = -2;
	/* nothing else came: a refused datagram is not queued either */
	int left = (int)recv(u, buf, 1, MSG_DONTWAIT);
	snprintf(res, sizeof(res), "%s peer %s then %s", got,
		 peer == 0 ? "echo_ok" : peer == -1 ? "echo_bad" : peer == -2 ? "ctl_failed" :
		 ename(peer), left < 0 ? ename(errno) : "more");
	report(what, res);
	close(ctl);
	close(u);
}

/* One datagram to the peer's echo (+0) at `to` (either family's
 * sockaddr, as an AF_INET6 socket takes both), its echo's source. */
static void check_echo(const char *what, int u, const struct sockaddr *to, socklen_t tl,
		       const union sk_addr *want)
{
	union sk_addr from;
	socklen_t fl = sizeof(from);
	char b[16], name[64], res[64];
	snprintf(name, sizeof(name), "%s_send", what);
	report_rc(name, sendto(u, what, strlen(what), 0, to, tl));
	ssize_t r = recvfrom(u, b, sizeof(b), 0, &from.sa, &fl);
	name_res(res, sizeof(res), &from, fl, want);
	snprintf(name, sizeof(name), "%s_echo", what);
	report(name, r < 0 ? ename(errno) : r == (ssize_t)strlen(what) && !memcmp(b, what, (size_t)r) ?
	       res : "bad");
}

/* IPV6_V6ONLY on a datagram socket: default, when it may change, and the
 * errnos for IPv4 destinations and addresses once set. */
static void check_udp_v6only(const union sk_addr *me4)
{
	int u = udp6(-1, NULL), v = -1, one = 1;
	socklen_t vl = sizeof(v);
	union sk_addr m = sk_mapped(peer_ip, base);
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons((uint16_t)base),
				  .sin_addr = peer_ip };
	char res[32];
	snprintf(res, sizeof(res), "%d", getsockopt(u, IPPROTO_IPV6, IPV6_V6ONLY, &v, &vl) ? -1 : v);
	report("udp6_v6only_default", res);
	report_rc("udp6_v6only_set", setsockopt(u, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)));
	report_rc("udp6_v6only_sendto_mapped", sendto(u, "x", 1, 0, &m.sa, sk_len(&m)));
	report_rc("udp6_v6only_sendto_inet", sendto(u, "x", 1, 0, (struct sockaddr *)&in, sizeof(in)));
	report_rc("udp6_v6only_connect_mapped", connect(u, &m.sa, sk_len(&m)));
	close(u);

	u = udp6(1, NULL);
	report_rc("udp6_v6only_bind_mapped", bind(u, &me4->sa, sk_len(me4)));
	close(u);
	uint16_t port;
	u = udp6(-1, &port);
	report_rc("udp6_v6only_after_bind", setsockopt(u, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)));
	close(u);
	u = socket(AF_INET, SOCK_DGRAM, 0);
	report_rc("udp_v6only_on_inet", setsockopt(u, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)));
	close(u);
}

/* A dual-stack socket connected to the echo over each family: its own
 * name is our address of that family, its peer's the echo. */
static void check_connected(const char *what, const union sk_addr *to, const union sk_addr *me)
{
	int u = udp6(-1, NULL);
	union sk_addr got;
	socklen_t gl = sizeof(got);
	char name[64], b[8];
	snprintf(name, sizeof(name), "%s_connect", what);
	report_rc(name, connect(u, &to->sa, sk_len(to)));
	snprintf(name, sizeof(name), "%s_sockname", what);
	getsockname(u, &got.sa, &gl);
	report_name(name, &got, gl, me);
	gl = sizeof(got);
	snprintf(name, sizeof(name), "%s_peername", what);
	getpeername(u, &got.sa, &gl);
	report_name(name, &got, gl, to);
	snprintf(name, sizeof(name), "%s_echo", what);
	ssize_t r = send(u, "conn", 4, 0) == 4 ? recv(u, b, sizeof(b), 0) : -1;
	report(name, r == 4 && !memcmp(b, "conn", 4) ? "ok" : r < 0 ? ename(errno) : "bad");
	close(u);
}

/* sendmsg to the echo over IPv6 with the address in msg_name, recvmsg
 * with room for a sockaddr_in only: the name is cut, its full length
 * reported, as the kernel does. */
static void check_msg(const union sk_addr *p6)
{
	int u = udp6(-1, NULL);
	union sk_addr from;
	char b[16];
	struct iovec v = { (void *)"msg6", 4 };
	struct msghdr m = { .msg_name = (void *)&p6->v6, .msg_namelen = sizeof(p6->v6),
			    .msg_iov = &v, .msg_iovlen = 1 };
	report_rc("udp6_sendmsg", sendmsg(u, &m, 0));
	memset(&from, 0, sizeof(from));
	v = (struct iovec){ b, sizeof(b) };
	m = (struct msghdr){ .msg_name = &from, .msg_namelen = sizeof(struct sockaddr_in),
			     .msg_iov = &v, .msg_iovlen = 1 };
	ssize_t r = recvmsg(u, &m, 0);
	char res[64];
	snprintf(res, sizeof(res), "%s len %u family %s", r == 4 && !memcmp(b, "msg6", 4) ? "ok" :
		 r < 0 ? ename(errno) : "bad", (unsigned)m.msg_namelen,
		 from.sa.sa_family == AF_INET6 ? "inet6" : "other");
	report("udp6_recvmsg_short", res);
	/* the socket was bound by its first send: to [::] */
	union sk_addr me;
	socklen_t ml = sizeof(me);
	union sk_addr any = any6(0);
	getsockname(u, &me.sa, &ml);
	report_name("udp6_implicit_bind", &me, ml, &any);
	close(u);
}

void check_udp_dualstack(struct in_addr ours4, const union sk_addr *ours6)
{
	union sk_addr via4 = sk_mapped(peer_ip, base + 19), via6 = sk_peer(19);
	union sk_addr src4 = sk_mapped(peer_ip, 0), src6 = sk_peer(0);
	union sk_addr echo4 = sk_mapped(peer_ip, base), echo6 = sk_peer(0);
	union sk_addr me4 = sk_mapped(ours4, 0), me6 = *ours6;
	struct sockaddr_in in4 = { .sin_family = AF_INET, .sin_port = htons((uint16_t)base),
				   .sin_addr = peer_ip };
	sk_set_port(&src6, 0);
	sk_set_port(&me6, 0);

	check_serve("udp6_serve_dual_v4", -1, &via4, &src4, 100);
	check_serve("udp6_serve_dual_v6", -1, &via6, &src6, 100);
	check_serve("udp6_serve_v6only_v4", 1, &via4, &src4, 100);
	check_serve("udp6_serve_v6only_v6", 1, &via6, &src6, 100);
	check_serve("udp6_serve_v6_1452", -1, &via6, &src6, 1452);   /* one frame */
	check_serve("udp6_serve_v6_1453", -1, &via6, &src6, 1453);   /* fragments */
	check_serve("udp6_serve_v6_30000", -1, &via6, &src6, 30000);
	check_serve("udp6_serve_v4_30000", -1, &via4, &src4, 30000);
	check_serve("udp6_serve_v6_0", -1, &via6, &src6, 0);

	int u = udp6(-1, NULL);
	check_echo("udp6_to_v6", u, &echo6.sa, sk_len(&echo6), &echo6);
	check_echo("udp6_to_mapped", u, &echo4.sa, sk_len(&echo4), &echo4);
	check_echo("udp6_to_inet", u, (struct sockaddr *)&in4, sizeof(in4), &echo4);
	close(u);
	check_udp_v6only(&me4);
	check_connected("udp6_conn_mapped", &echo4, &me4);
	check_connected("udp6_conn_v6", &echo6, &me6);
	check_msg(&echo6);
}
