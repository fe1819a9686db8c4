/*
 * The socket-option checks of sockcheck (issue 15, point 4): the options
 * and calls servers and their tools use, set, read back, and their effect
 * where a user sees it, each printed only as far as it is deterministic:
 * SO_LINGER {1,0} (the peer's read ends in ECONNRESET), TCP_CORK and
 * MSG_MORE (the peer's TCP_INFO counts the data segments that carried 1000
 * bytes written ten at a time), SIOCINQ/SIOCOUTQ (byte counts after a
 * known exchange), SO_ERROR after a refused non-blocking connect,
 * TCP_INFO (state, and rtt/cwnd/bytes acked as relations), the keepalive
 * family, TCP_USER_TIMEOUT, TCP_DEFER_ACCEPT and IP_TOS (read back as
 * Linux rounds them, bad values refused as Linux refuses them).
 *
 * Peer services: +15 ender (reads the port it is sent, answers "r", then
 * reads until EOF or an error, connects back to the port and writes the errno, 0 at
 * EOF), +16 segments (reads until EOF, then writes back the byte count
 * and its TCP_INFO tcpi_data_segs_in), +17 still (never reads: waits for
 * the other end to go away), +18 tos (writes back the IP TOS byte its
 * connection's handshake came with: IP_RECVTOS on the listener, then
 * IP_PKTOPTIONS; -1 where there is none, as on an AF_INET6 peer).
 */
#include <errno.h>
#include <stdbool.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <linux/tcp.h>        /* its struct tcp_info: glibc's lacks the RFC 4898 counters */
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "sockcheck.h"

/* ---- peer side -------------------------------------------------------- */

/* A service never waits longer than this for the other end (a side under
 * test that never resets or closes must not leave the peer's child). */
static void bounded(int c)
{
	struct timeval tv = { 30, 0 };

	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

void serve_ender(int c)
{
	unsigned char buf[4096];
	uint16_t port;
	union sk_addr a;
	socklen_t l = sizeof(a);
	ssize_t n;
	int32_t err;

	bounded(c);
	/* its name first, then "r": after a reset there is none */
	if (getpeername(c, &a.sa, &l) < 0 || read_full(c, &port, sizeof(port)) < 0 ||
	    write_full(c, "r", 1) < 0)
		return;
	while ((n = read(c, buf, sizeof(buf))) > 0)
		;
	err = n == 0 ? 0 : errno;
	sk_set_port(&a, port);
	int o = socket(a.sa.sa_family, SOCK_STREAM, 0);
	if (connect(o, &a.sa, l) == 0)
		write_full(o, &err, sizeof(err));
	close(o);
}

void serve_segments(int c)
{
	unsigned char buf[4096];
	uint32_t out[2] = { 0, 0 };
	struct tcp_info ti;
	socklen_t l = sizeof(ti);
	ssize_t n;

	bounded(c);
	while ((n = read(c, buf, sizeof(buf))) > 0)
		out[0] += (uint32_t)n;
	memset(&ti, 0, sizeof(ti));
	if (getsockopt(c, IPPROTO_TCP, TCP_INFO, &ti, &l) == 0)
		out[1] = ti.tcpi_data_segs_in;
	write_full(c, out, sizeof(out));
}

void serve_still(int c)
{
	struct pollfd p = { c, POLLRDHUP, 0 };

	poll(&p, 1, 30000);
}

void serve_tos(int c)
{
	char cbuf[256];
	socklen_t l = sizeof(cbuf);
	int32_t tos = -1;
	struct msghdr m = { .msg_control = cbuf };

	if (getsockopt(c, IPPROTO_IP, IP_PKTOPTIONS, cbuf, &l) == 0) {
		m.msg_controllen = l;
		for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h != NULL; h = CMSG_NXTHDR(&m, h))
			if (h->cmsg_level == IPPROTO_IP && h->cmsg_type == IP_TOS)
				tos = *(unsigned char *)CMSG_DATA(h);
	}
	write_full(c, &tos, sizeof(tos));
}

/* ---- helpers ------------------------------------------------------------ */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int our_listener(uint16_t *port)
{
	int l = sk_socket(SOCK_STREAM);
	union sk_addr a = sk_any(0);
	socklen_t al = sizeof(a);

	if (bind(l, &a.sa, sk_len(&a)) < 0 || listen(l, 8) < 0 ||
	    getsockname(l, &a.sa, &al) < 0)
		die("listen");
	*port = sk_port(&a);
	return l;
}

/* "set=R get=V": setsockopt's verdict, then what getsockopt reads back. */
static void report_int_opt(const char *name, int fd, int level, int opt, int v)
{
	char res[96];
	int got = -1;
	socklen_t l = sizeof(got);
	int s = setsockopt(fd, level, opt, &v, sizeof(v));
	const char *se = s < 0 ? ename(errno) : "ok";
	int g = getsockopt(fd, level, opt, &got, &l);

	if (g < 0)
		snprintf(res, sizeof(res), "set=%s get=%s", se, ename(errno));
	else
		snprintf(res, sizeof(res), "set=%s get=%d", se, got);
	report(name, res);
}

static void report_get(const char *name, int fd, int level, int opt)
{
	char res[64];
	int got = -1;
	socklen_t l = sizeof(got);

	if (getsockopt(fd, level, opt, &got, &l) < 0)
		snprintf(res, sizeof(res), "%s", ename(errno));
	else
		snprintf(res, sizeof(res), "%d", got);
	report(name, res);
}

/* ---- checks ------------------------------------------------------------- */

static void check_linger0(void)
{
	uint16_t port;
	int l = our_listener(&port);
	int fd = tcp_to(15);
	struct linger lg = { 1, 0 }, back = { -1, -1 };
	socklen_t ll = sizeof(back);
	char res[64];
	int32_t err = -1;

	write_full(fd, &port, sizeof(port));
	read_full(fd, res, 1);      /* "r": the peer has our name */
	write_full(fd, "0123456789", 10);
	report_rc("linger0_set", setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
	getsockopt(fd, SOL_SOCKET, SO_LINGER, &back, &ll);
	snprintf(res, sizeof(res), "%d,%d", back.l_onoff, back.l_linger);
	report("linger0_get", res);
	close(fd);
	int c = accept(l, NULL, NULL);
	if (c < 0 || read_full(c, &err, sizeof(err)) < 0)
		report("linger0_peer_read", "no_answer");
	else
		report("linger0_peer_read", ename(err));
	if (c >= 0)
		close(c);
	close(l);
}

/* 1000 bytes ten at a time with TCP_NODELAY on, held back by TCP_CORK
 * (cork) or MSG_MORE on all but the last: how many data segments the
 * peer saw carry them. */
static void segments(const char *name, bool cork)
{
	int fd = tcp_to(16), on = 1, off = 0;
	uint32_t back[2] = { 0, 0 };
	char res[64];

	/* TCP_NODELAY on: without the hold each write would go at once */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	if (cork) {
		setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof(on));
		report_get("cork_get", fd, IPPROTO_TCP, TCP_CORK);
	}
	for (int i = 0; i < 100; i++) {
		int fl = MSG_NOSIGNAL | (!cork && i < 99 ? MSG_MORE : 0);
		if (send(fd, "abcdefghij", 10, fl) != 10)
			die("send");
	}
	if (cork)
		setsockopt(fd, IPPROTO_TCP, TCP_CORK, &off, sizeof(off));
	shutdown(fd, SHUT_WR);
	if (read_full(fd, back, sizeof(back)) < 0)
		snprintf(res, sizeof(res), "no_answer");
	else
		snprintf(res, sizeof(res), "bytes=%u segments=%u", back[0], back[1]);
	report(name, res);
	close(fd);
}

static void check_inq_outq(void)
{
	char buf[1000], res[64];
	int fd = tcp_to(0), n = -1;
	int64_t end;

	memset(buf, 'q', sizeof(buf));
	write_full(fd, buf, sizeof(buf));
	/* the echo comes back in pieces: poll the count up to 1000 */
	end = now_ms() + 10000;
	do {
		struct pollfd p = { fd, POLLIN, 0 };
		poll(&p, 1, 100);
		if (ioctl(fd, SIOCINQ, &n) < 0)
			n = -errno;
	} while (n >= 0 && n < 1000 && now_ms() < end);
	snprintf(res, sizeof(res), "%d", n);
	report("siocinq_echo", res);
	/* all of ours came back, so all of it was acked: nothing queued */
	if (ioctl(fd, SIOCOUTQ, &n) < 0)
		snprintf(res, sizeof(res), "%s", ename(errno));
	else
		snprintf(res, sizeof(res), "%d", n);
	report("siocoutq_acked", res);
	read_full(fd, buf, sizeof(buf));
	if (ioctl(fd, SIOCINQ, &n) < 0)
		snprintf(res, sizeof(res), "%s", ename(errno));
	else
		snprintf(res, sizeof(res), "%d", n);
	report("siocinq_read", res);
	close(fd);

	/* a peer that never reads: what we wrote until EAGAIN is partly
	 * still ours (unsent or unacked), never more than we wrote */
	fd = tcp_to(17);
	int fl = 1;
	ioctl(fd, FIONBIO, &fl);
	static char big[65536];
	long written = 0;
	ssize_t k;
	end = now_ms() + 20000;
	for (;;) {
		k = send(fd, big, sizeof(big), MSG_NOSIGNAL);
		if (k > 0) {
			written += k;
			continue;
		}
		if (k < 0 && errno != EAGAIN)
			break;
		/* full for now: a stable EAGAIN once POLLOUT stays off */
		struct pollfd p = { fd, POLLOUT, 0 };
		if (poll(&p, 1, 300) == 0 || now_ms() > end)
			break;
	}
	if (ioctl(fd, SIOCOUTQ, &n) < 0)
		snprintf(res, sizeof(res), "%s", ename(errno));
	else
		snprintf(res, sizeof(res), "%s", n > 0 && n <= written ? "pending" :
			 n == 0 ? "zero" : "more_than_written");
	report("siocoutq_full", res);
	close(fd);

	/* Linux: SIOCINQ/SIOCOUTQ on a listener is EINVAL */
	uint16_t port;
	int l = our_listener(&port);
	report_rc("siocinq_listen", ioctl(l, SIOCINQ, &n));
	report_rc("siocoutq_listen", ioctl(l, SIOCOUTQ, &n));
	close(l);
}

static void check_so_error(void)
{
	int fd = sk_socket(SOCK_STREAM | SOCK_NONBLOCK), err = -1;
	union sk_addr a = sk_peer(9);
	socklen_t l = sizeof(err);

	connect(fd, &a.sa, sk_len(&a));
	struct pollfd p = { fd, POLLOUT, 0 };
	poll(&p, 1, 5000);
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
	report("so_error_refused", ename(err));
	err = -1;
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
	report("so_error_again", ename(err));
	close(fd);
}

static void tcp_info_of(const char *name, int fd, bool traffic)
{
	struct tcp_info ti;
	socklen_t l = sizeof(ti);
	char res[160];

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l) < 0) {
		report(name, ename(errno));
		return;
	}
	if (!traffic)
		snprintf(res, sizeof(res), "state=%u len=%s", ti.tcpi_state,
			 l == sizeof(ti) ? "full" : "short");
	else
		snprintf(res, sizeof(res), "state=%u rtt=%s cwnd=%s mss=%s acked=%s rcvd=%s retrans=%u",
			 ti.tcpi_state, ti.tcpi_rtt > 0 ? "set" : "0",
			 ti.tcpi_snd_cwnd > 0 ? "set" : "0",
			 ti.tcpi_snd_mss >= 536 ? "set" : "0",
			 ti.tcpi_bytes_acked >= 1000 && ti.tcpi_bytes_acked <= 1001 ? "1000" : "other",
			 ti.tcpi_bytes_received >= 1000 && ti.tcpi_bytes_received <= 1001 ? "1000" : "other",
			 ti.tcpi_total_retrans);
	report(name, res);
}

static void check_tcp_info(void)
{
	char buf[1000];
	uint16_t port;
	int fd = sk_socket(SOCK_STREAM);

	tcp_info_of("tcp_info_new", fd, false);
	close(fd);
	int l = our_listener(&port);
	tcp_info_of("tcp_info_listen", l, false);
	close(l);
	fd = tcp_to(0);
	memset(buf, 'i', sizeof(buf));
	write_full(fd, buf, sizeof(buf));
	read_full(fd, buf, sizeof(buf));
	tcp_info_of("tcp_info_echo", fd, true);
	shutdown(fd, SHUT_WR);
	read(fd, buf, 1);     /* the echo's EOF: it closed too */
	tcp_info_of("tcp_info_closed", fd, false);
	close(fd);
}

/* The keepalive family, TCP_USER_TIMEOUT, TCP_DEFER_ACCEPT and IP_TOS on
 * a socket of each kind: values read back as Linux rounds them. */
static void int_opts(const char *kind, int fd)
{
	char name[40];

#define OPT(what, level, opt, v) do { \
		snprintf(name, sizeof(name), "%s_%s", kind, what); \
		report_int_opt(name, fd, level, opt, v); \
	} while (0)
#define GET(what, level, opt) do { \
		snprintf(name, sizeof(name), "%s_%s", kind, what); \
		report_get(name, fd, level, opt); \
	} while (0)
	GET("keepidle_dflt", IPPROTO_TCP, TCP_KEEPIDLE);
	GET("keepintvl_dflt", IPPROTO_TCP, TCP_KEEPINTVL);
	GET("keepcnt_dflt", IPPROTO_TCP, TCP_KEEPCNT);
	OPT("keepalive", SOL_SOCKET, SO_KEEPALIVE, 1);
	OPT("keepidle", IPPROTO_TCP, TCP_KEEPIDLE, 30);
	OPT("keepidle0", IPPROTO_TCP, TCP_KEEPIDLE, 0);
	OPT("keepidle_max", IPPROTO_TCP, TCP_KEEPIDLE, 32768);
	OPT("keepintvl", IPPROTO_TCP, TCP_KEEPINTVL, 7);
	OPT("keepintvl_max", IPPROTO_TCP, TCP_KEEPINTVL, 32768);
	OPT("keepcnt", IPPROTO_TCP, TCP_KEEPCNT, 4);
	OPT("keepcnt_max", IPPROTO_TCP, TCP_KEEPCNT, 128);
	GET("user_timeout_dflt", IPPROTO_TCP, TCP_USER_TIMEOUT);
	OPT("user_timeout", IPPROTO_TCP, TCP_USER_TIMEOUT, 5000);
	OPT("user_timeout_neg", IPPROTO_TCP, TCP_USER_TIMEOUT, -1);
	GET("defer_accept_dflt", IPPROTO_TCP, TCP_DEFER_ACCEPT);
	OPT("defer_accept", IPPROTO_TCP, TCP_DEFER_ACCEPT, 5);
	OPT("defer_accept_off", IPPROTO_TCP, TCP_DEFER_ACCEPT, 0);
	GET("tos_dflt", IPPROTO_IP, IP_TOS);
	OPT("tos", IPPROTO_IP, IP_TOS, 0x10);
	OPT("tos_ecn", IPPROTO_IP, IP_TOS, 0x13);
	if (sk_family == AF_INET6) {
		GET("tclass_dflt", IPPROTO_IPV6, IPV6_TCLASS);
		OPT("tclass", IPPROTO_IPV6, IPV6_TCLASS, 0x28);
		OPT("tclass_bad", IPPROTO_IPV6, IPV6_TCLASS, 256);
		OPT("tclass_dflt_again", IPPROTO_IPV6, IPV6_TCLASS, -1);
		OPT("tclass_set", IPPROTO_IPV6, IPV6_TCLASS, 0x28);
		GET("tos_after_tclass", IPPROTO_IP, IP_TOS);
	}
#undef OPT
#undef GET
}

/* IP_TOS where the peer sees it: the handshake of a connection made
 * after it was set carries it (ECN bits aside); and what a listener's
 * child inherits (Linux copies the listener's socket). */
static void check_tos_and_children(void)
{
	char res[96];
	int32_t tos = -2;
	int v = 0x10, on = 1;
	int fd;
	union sk_addr a = sk_peer(18);

	/* The peer reads an IPv4 TOS: on an AF_INET6 socket IPv4 (to
	 * ::ffff:a.b.c.d) carries IP_TOS, not IPV6_TCLASS; over IPv6 the
	 * peer reads none (-1 or 0, as Linux gives it) */
	{
		int tc = 0x28;
		fd = sk_socket(SOCK_STREAM);
		setsockopt(fd, IPPROTO_IP, IP_TOS, &v, sizeof(v));
		if (sk_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &tc, sizeof(tc));
		if (connect(fd, &a.sa, sk_len(&a)) < 0 || read_full(fd, &tos, sizeof(tos)) < 0) {
			report("tos_on_wire", ename(errno));
		} else {
			snprintf(res, sizeof(res), "%d", tos);
			report("tos_on_wire", res);
		}
		close(fd);
	}

	uint16_t port;
	int l = our_listener(&port);
	int idle = 30, cnt = 4;
	setsockopt(l, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
	setsockopt(l, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(l, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(l, IPPROTO_IP, IP_TOS, &v, sizeof(v));
	fd = tcp_to(5);                 /* the connector: connects back to port */
	write_full(fd, &port, sizeof(port));
	int c = accept(l, NULL, NULL);
	if (c < 0) {
		report("child_options", ename(errno));
	} else {
		int ka = -1, gi = -1, gc = -1, gt = -1;
		socklen_t sl = sizeof(int);
		getsockopt(c, SOL_SOCKET, SO_KEEPALIVE, &ka, &sl);
		getsockopt(c, IPPROTO_TCP, TCP_KEEPIDLE, &gi, &sl);
		getsockopt(c, IPPROTO_TCP, TCP_KEEPCNT, &gc, &sl);
		getsockopt(c, IPPROTO_IP, IP_TOS, &gt, &sl);
		snprintf(res, sizeof(res), "keepalive=%d idle=%d cnt=%d tos=%d", ka, gi, gc, gt);
		report("child_options", res);
		close(c);
	}
	read_full(fd, res, 1);           /* "k": the connector is done */
	close(fd);
	close(l);
}

static void check_int_opts(void)
{
	uint16_t port;
	int fd = sk_socket(SOCK_STREAM);

	int_opts("new", fd);
	close(fd);
	int l = our_listener(&port);
	int_opts("listen", l);
	close(l);
	fd = tcp_to(0);
	int_opts("conn", fd);
	close(fd);
}

void check_opts(void)
{
	check_linger0();
	segments("cork_segments", true);
	segments("msg_more_segments", false);
	check_inq_outq();
	check_so_error();
	check_tcp_info();
	check_int_opts();
	check_tos_and_children();
}
