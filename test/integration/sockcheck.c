/*
 * sockcheck: one socket-semantics test program, run once natively and once
 * under libisosock.so against the same Linux peer; the two logs must be
 * identical.  Each check prints one line, "name result", where result is
 * "ok", a count, or an errno name: never an address, port, time or pid.
 *
 *   sockcheck peer BASEPORT            the Linux side (peer namespace)
 *   sockcheck run PEERADDR BASEPORT    the side under test; prints the log
 *   sockcheck peer6 BASEPORT           the peer on dual-stack AF_INET6
 *   sockcheck run6 PEER6 PEER4 BASEPORT
 *                                      the checks on AF_INET6 sockets to
 *                                      PEER6, then the dual-stack ones
 *                                      (sockcheck_v6.c, sockcheck_udp6.c).
 *                                      PEER6 ::ffff:PEER4: the checks only,
 *                                      on IPv4 from AF_INET6 sockets
 *
 * Peer services, by port: +0 echo (TCP and UDP), +1 reset after one byte,
 * +2 silent, +3 sink (replies FNV-1a of all bytes, after EOF), +4 source
 * (sends the 8-byte count it is asked for), +5 connector (connects back to
 * the port it is sent and writes "hello"), +6 full (backlog 0, never
 * accepted by itself: one connection fills it, the next SYN is dropped, so
 * a connect blocks), +7 drain (accepts one connection waiting on +6,
 * closes it, writes "k"), +8 watcher (reads the port it is sent, then
 * counts bytes until EOF, then connects back to that port and writes the
 * count: how a check sees that the connection was closed by a process
 * that is gone), +9 nothing (refused), +10 eof probe (sends the port of a
 * UDP socket of its own; a datagram there asks whether the connection has
 * ended yet, and the answer comes back as a datagram: "eof", "open"),
 * +11 end timer (reads struct end_req, then, after the delay or the byte
 * it asks for, counts bytes until EOF or an error, notes the time
 * (CLOCK_MONOTONIC, one clock for the whole host), connects back to the
 * port and writes struct end_res, then sends SIGUSR1 to the pid if not 0),
 * +12 backlog (check_backlog), +13 whoami (writes back the address it
 * sees us at), +14 dialer (connects back to the port it is sent, writes
 * "hello" there, answers the connect's errno): both for sockcheck_v6.c;
 * +15 ender, +16 segments, +17 still, +18 tos: for sockcheck_opts.c;
 * +19 udp prober: for sockcheck_udp6.c.
 *
 *   sockcheck stdioexec                (internal) exec'd with a connection
 *                                      to the echo service as stdin/stdout:
 *                                      talks through stdio
 *   sockcheck execchild FD             (internal) the image exec'd by the
 *                                      exec checks: uses inherited FD
 *   sockcheck spawnwrite FD SYNC       (internal) waits for a byte on SYNC,
 *                                      then writes 100000 bytes to FD
 *   sockcheck stdiochild               (internal) echo test on fd 1
 *   sockcheck popenchild FD            (internal) echo test on FD, then
 *                                      prints what came back
 *
 * Signals are delivered by an interval timer while a call is blocked (the
 * signal is the event, not a sleep); where data must arrive after the
 * signal, the handler wakes a helper thread through a pipe and the helper
 * makes the peer act.  Edge-triggered epoll gets one edge per arrival
 * (check_et_arrivals): the arrival is ours to make, then awaited.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spawn.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <limits.h>
#include <unistd.h>

#include "sockcheck.h"

int base;
static int full_listener = -1; /* peer: the +6 listener, accepted by +7 */

void die(const char *what)
{
	fprintf(stderr, "sockcheck: %s: %s\n", what, strerror(errno));
	exit(2);
}

const char *ename(int e)
{
	switch (e) {
	case 0: return "ok";
	case EAGAIN: return "EAGAIN";
	case EINPROGRESS: return "EINPROGRESS";
	case ECONNREFUSED: return "ECONNREFUSED";
	case ECONNRESET: return "ECONNRESET";
	case EPIPE: return "EPIPE";
	case ENOTCONN: return "ENOTCONN";
	case EINTR: return "EINTR";
	case EISCONN: return "EISCONN";
	case EALREADY: return "EALREADY";
	case EBADF: return "EBADF";
	case EINVAL: return "EINVAL";
	case ETIMEDOUT: return "ETIMEDOUT";
	case ESPIPE: return "ESPIPE";
	case ENETUNREACH: return "ENETUNREACH";
	case EADDRINUSE: return "EADDRINUSE";
	case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
	case EAFNOSUPPORT: return "EAFNOSUPPORT";
	case ENOPROTOOPT: return "ENOPROTOOPT";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	default: {
		static char b[32];
		snprintf(b, sizeof(b), "errno%d", e);
		return b;
	}
	}
}

void report(const char *name, const char *result)
{
	printf("%-24s %s\n", name, result);
	fflush(stdout);
}

void report_rc(const char *name, long rc)
{
	report(name, rc < 0 ? ename(errno) : "ok");
}

uint64_t fnv(uint64_t h, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

unsigned char pattern(uint64_t i)
{
	return (unsigned char)((i * 7 + (i >> 11)) & 0xff);
}

static struct sockaddr_in addr(struct in_addr ip, int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr = ip };
	return a;
}

int tcp_to(int off)
{
	int fd = sk_socket(SOCK_STREAM);
	if (fd < 0)
		die("socket");
	union sk_addr a = sk_peer(off);
	if (connect(fd, &a.sa, sk_len(&a)) < 0)
		die("connect");
	return fd;
}

int read_full(int fd, void *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, (char *)buf + got, n - got);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

int write_full(int fd, const void *buf, size_t n)
{
	size_t put = 0;
	while (put < n) {
		ssize_t r = write(fd, (const char *)buf + put, n - put);
		if (r <= 0)
			return -1;
		put += (size_t)r;
	}
	return 0;
}

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* check_backlog (+12): connections at once to a listener of backlog 2. */
#define BACKLOG_CONNS 12

/* The end timer (+11): what a check asks, what it answers. */
enum { END_PLAIN, END_SLOW, END_UNREAD };
struct end_req {
	uint16_t port;      /* network order: where to connect back */
	uint16_t mode;      /* END_SLOW: read only after 300 ms; END_UNREAD:
			     * first send one byte the other side leaves unread */
	int32_t pid;        /* SIGUSR1 to it once answered, if not 0 */
};
struct end_res {
	uint64_t count;     /* bytes read */
	int32_t err;        /* 0: EOF, else the errno that ended it */
	uint32_t pad;
	int64_t at_ns;      /* CLOCK_MONOTONIC when it ended */
};

/* ---- peer ---------------------------------------------------------------- */

static void serve(int off, int c)
{
	unsigned char buf[65536];
	ssize_t n;
	switch (off) {
	case 0:
		while ((n = read(c, buf, sizeof(buf))) > 0)
			if (write_full(c, buf, (size_t)n) < 0)
				break;
		break;
	case 1: {
		struct linger l = { 1, 0 };
		if (read(c, buf, 1) == 1)
			setsockopt(c, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
		break;
	}
	case 2:
		while (read(c, buf, sizeof(buf)) > 0)
			;
		break;
	case 3: {
		uint64_t h = 0xcbf29ce484222325ULL, cnt = 0;
		while ((n = read(c, buf, sizeof(buf))) > 0) {
			h = fnv(h, buf, (size_t)n);
			cnt += (uint64_t)n;
		}
		uint64_t out[2] = { h, cnt };
		write_full(c, out, sizeof(out));
		break;
	}
	case 4: {
		uint64_t want;
		if (read_full(c, &want, sizeof(want)) < 0)
			break;
		for (uint64_t i = 0; i < want;) {
			size_t k = 0;
			for (; k < sizeof(buf) && i < want; k++, i++)
				buf[k] = pattern(i);
			if (write_full(c, buf, k) < 0)
				break;
		}
		break;
	}
	case 5: {
		uint16_t port;
		union sk_addr a;
		socklen_t l = sizeof(a);
		if (read_full(c, &port, sizeof(port)) < 0 ||
		    getpeername(c, &a.sa, &l) < 0)
			break;
		sk_set_port(&a, port);
		int o = socket(a.sa.sa_family, SOCK_STREAM, 0);
		if (connect(o, &a.sa, l) == 0)
			write_full(o, "hello", 5);
		close(o);
		write_full(c, "k", 1);
		break;
	}
	case 12: {
		/* check_backlog: BACKLOG_CONNS connects at once to a listener
		 * of backlog 2 that accepts only once told; each sends its
		 * index.  Answers how many failed (and the first errno). */
		uint16_t port;
		union sk_addr a;
		socklen_t l = sizeof(a);
		int o[BACKLOG_CONNS], up = 0, failed = 0, err = 0;
		struct pollfd p[BACKLOG_CONNS];
		int64_t end;
		if (read_full(c, &port, sizeof(port)) < 0 ||
		    getpeername(c, &a.sa, &l) < 0)
			break;
		sk_set_port(&a, port);
		for (int i = 0; i < BACKLOG_CONNS; i++) {
			o[i] = socket(a.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
			connect(o[i], &a.sa, l);
			p[i] = (struct pollfd){ o[i], POLLOUT, 0 };
		}
		/* The listener's queue holds 3 (backlog + 1, on Linux): once
		 * that many handshakes are through, it may accept. */
		end = mono_ns() + 10 * 1000000000LL;
		while (up < 3 && mono_ns() < end) {
			poll(p, BACKLOG_CONNS, 100);
			up = 0;
			for (int i = 0; i < BACKLOG_CONNS; i++)
				up += (p[i].revents & (POLLOUT | POLLERR | POLLHUP)) != 0;
		}
		write_full(c, "g", 1);
		for (int i = 0; i < BACKLOG_CONNS; i++) {
			unsigned char idx = (unsigned char)i;
			struct pollfd q = { o[i], POLLOUT, 0 };
			int e = 0;
			socklen_t el = sizeof(e);
			poll(&q, 1, 20000);
			getsockopt(o[i], SOL_SOCKET, SO_ERROR, &e, &el);
			if (e == 0 && !(q.revents & POLLOUT))
				e = ETIMEDOUT;
			if (e == 0 && send(o[i], &idx, 1, MSG_NOSIGNAL) != 1)
				e = errno;
			if (e != 0 && failed++ == 0)
				err = e;
		}
		/* each kept open until the listener's side has read its byte */
		int32_t res[2] = { failed, err };
		char k;
		read_full(c, &k, 1);
		write_full(c, res, sizeof(res));
		for (int i = 0; i < BACKLOG_CONNS; i++)
			close(o[i]);
		break;
	}
	case 7: {
		int x = accept(full_listener, NULL, NULL);
		if (x >= 0)
			close(x);
		write_full(c, "k", 1);
		break;
	}
	case 10: {
		int u = socket(AF_INET, SOCK_DGRAM, 0);
		struct sockaddr_in a = addr((struct in_addr){ htonl(INADDR_ANY) }, 0), from;
		socklen_t al = sizeof(a), fl = sizeof(from);
		struct timeval tv = { .tv_sec = 20 };
		char q[16], x;
		setsockopt(u, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (bind(u, (struct sockaddr *)&a, sizeof(a)) < 0 ||
		    getsockname(u, (struct sockaddr *)&a, &al) < 0 ||
		    write_full(c, &a.sin_port, sizeof(a.sin_port)) < 0 ||
		    recvfrom(u, q, sizeof(q), 0, (struct sockaddr *)&from, &fl) < 0) {
			close(u);
			break;
		}
		/* The FIN, if sent before the question, was processed before
		 * it: both came in order over the one link. */
		n = recv(c, &x, 1, MSG_DONTWAIT);
		const char *ans = n == 0 ? "eof" : n > 0 ? "data" : errno == EAGAIN ? "open" : "error";
		sendto(u, ans, strlen(ans), 0, (struct sockaddr *)&from, fl);
		close(u);
		break;
	}
	case 11: {
		struct end_req q;
		struct end_res r = { 0 };
		union sk_addr a;
		socklen_t l = sizeof(a);
		if (read_full(c, &q, sizeof(q)) < 0 ||
		    getpeername(c, &a.sa, &l) < 0)
			break;
		if (q.mode == END_SLOW)
			usleep(300 * 1000);
		if (q.mode == END_UNREAD && write_full(c, "u", 1) < 0)
			break;
		while ((n = read(c, buf, sizeof(buf))) > 0)
			r.count += (uint64_t)n;
		r.err = n < 0 ? errno : 0;
		r.at_ns = mono_ns();
		sk_set_port(&a, q.port);
		int o = socket(a.sa.sa_family, SOCK_STREAM, 0);
		if (connect(o, &a.sa, l) == 0)
			write_full(o, &r, sizeof(r));
		close(o);
		if (q.pid != 0)
			kill(q.pid, SIGUSR1);
		break;
	}
	case 13:
		serve_whoami(c);
		break;
	case 14:
		serve_dial(c);
		break;
	case 15:
		serve_ender(c);
		break;
	case 16:
		serve_segments(c);
		break;
	case 17:
		serve_still(c);
		break;
	case 18:
		serve_tos(c);
		break;
	case 19:
		serve_udp_probe(c);
		break;
	case 8: {
		uint16_t port;
		uint64_t cnt = 0;
		union sk_addr a;
		socklen_t l = sizeof(a);
		if (read_full(c, &port, sizeof(port)) < 0 ||
		    getpeername(c, &a.sa, &l) < 0)
			break;
		while ((n = read(c, buf, sizeof(buf))) > 0)
			cnt += (uint64_t)n;
		sk_set_port(&a, port);
		int o = socket(a.sa.sa_family, SOCK_STREAM, 0);
		if (connect(o, &a.sa, l) == 0)
			write_full(o, &cnt, sizeof(cnt));
		close(o);
		break;
	}
	}
	close(c);
}

static int run_peer(void)
{
	signal(SIGPIPE, SIG_IGN);
	signal(SIGCHLD, SIG_IGN); /* children reaped by the kernel */
	static const int offs[] = { 0, 1, 2, 3, 4, 5, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18,
				    19 };
	struct pollfd p[20];
	int n = 0;
	for (unsigned i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		int fd = sk_peer_socket(SOCK_STREAM), one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (offs[i] == 18)      /* the TOS its children received */
			setsockopt(fd, IPPROTO_IP, IP_RECVTOS, &one, sizeof(one));
		union sk_addr a = sk_any(base + offs[i]);
		if (bind(fd, &a.sa, sk_len(&a)) < 0 || listen(fd, 64) < 0)
			die("peer listen");
		p[n++] = (struct pollfd){ .fd = fd, .events = POLLIN };
	}
	full_listener = sk_peer_socket(SOCK_STREAM);
	int one = 1;
	setsockopt(full_listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	union sk_addr fa = sk_any(base + 6);
	if (bind(full_listener, &fa.sa, sk_len(&fa)) < 0 || listen(full_listener, 0) < 0)
		die("peer listen full");
	int u = sk_peer_socket(SOCK_DGRAM);     /* peer6: dual-stack [::] */
	union sk_addr ua = sk_any(base);
	if (bind(u, &ua.sa, sk_len(&ua)) < 0)
		die("peer udp");
	p[n++] = (struct pollfd){ .fd = u, .events = POLLIN };
	printf("peer ready\n");
	fflush(stdout);
	for (;;) {
		if (poll(p, (nfds_t)n, -1) < 0)
			continue;
		for (int i = 0; i < n; i++) {
			if (!(p[i].revents & POLLIN))
				continue;
			if (p[i].fd == u) {
				char b[2048];
				union sk_addr from;
				socklen_t fl = sizeof(from);
				ssize_t r = recvfrom(u, b, sizeof(b), 0, &from.sa, &fl);
				if (r >= 0)
					sendto(u, b, (size_t)r, 0, &from.sa, fl);
				continue;
			}
			int c = accept(p[i].fd, NULL, NULL);
			if (c < 0)
				continue;
			if (fork() == 0) {
				serve(offs[i], c);
				_exit(0);
			}
			close(c);
		}
	}
}

/* ---- checks ------------------------------------------------------------ */

static void on_alarm(int sig)
{
	(void)sig;
}

static void check_connect(void)
{
	int fd = sk_socket(SOCK_STREAM);
	union sk_addr a = sk_peer(9);
	report_rc("connect_refused", connect(fd, &a.sa, sk_len(&a)));
	close(fd);

	fd = sk_socket(SOCK_STREAM | SOCK_NONBLOCK);
	a = sk_peer(0);
	report_rc("nb_connect", connect(fd, &a.sa, sk_len(&a)));
	struct pollfd p = { fd, POLLOUT, 0 };
	poll(&p, 1, 5000);
	report("nb_connect_pollout", (p.revents & POLLOUT) ? "ok" : "no");
	int err = -1;
	socklen_t l = sizeof(err);
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
	report("nb_connect_so_error", ename(err));
	report_rc("nb_connect_again", connect(fd, &a.sa, sk_len(&a)));
	close(fd);

	fd = sk_socket(SOCK_STREAM | SOCK_NONBLOCK);
	a = sk_peer(9);
	report_rc("nb_connect_refused", connect(fd, &a.sa, sk_len(&a)));
	p = (struct pollfd){ fd, POLLOUT, 0 };
	poll(&p, 1, 5000);
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
	report("nb_refused_so_error", ename(err));
	close(fd);

	fd = sk_socket(SOCK_STREAM);
	union sk_addr pa;
	l = sizeof(pa);
	report_rc("getpeername_unconn", getpeername(fd, &pa.sa, &l));
	char c;
	report_rc("recv_unconn", recv(fd, &c, 1, 0));
	report_rc("send_unconn", send(fd, "x", 1, MSG_NOSIGNAL));
	close(fd);
}

static void check_stream(void)
{
	int fd = tcp_to(0);
	char buf[4096];
	report_rc("send_small", send(fd, "ping", 4, 0));
	report("recv_small", read_full(fd, buf, 4) == 0 && !memcmp(buf, "ping", 4) ? "ok" : "bad");
	/* half-close: the peer echoes what is in flight, then EOF */
	memset(buf, 'h', 1000);
	write_full(fd, buf, 1000);
	report_rc("shutdown_wr", shutdown(fd, SHUT_WR));
	size_t got = 0;
	ssize_t r;
	while ((r = recv(fd, buf, sizeof(buf), 0)) > 0)
		got += (size_t)r;
	char res[32];
	snprintf(res, sizeof(res), "%zu %s", got, r == 0 ? "eof" : ename(errno));
	report("half_close", res);
	report_rc("send_after_shutdown", send(fd, "x", 1, MSG_NOSIGNAL));
	report("recv_after_eof", recv(fd, buf, 1, 0) == 0 ? "eof" : ename(errno));
	close(fd);

	fd = tcp_to(2);
	report_rc("recv_dontwait", recv(fd, buf, 1, MSG_DONTWAIT));
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	report("fcntl_nonblock", (fcntl(fd, F_GETFL) & O_NONBLOCK) ? "ok" : "no");
	report_rc("read_nonblock", read(fd, buf, 1));
	fcntl(fd, F_SETFL, fl);
	struct timeval tv = { 0, 100000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	report_rc("recv_rcvtimeo", recv(fd, buf, 1, 0));
	tv = (struct timeval){ 0, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	/* A signal without SA_RESTART interrupts a blocking recv. */
	struct sigaction sa = { .sa_handler = on_alarm };
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = { { 0, 0 }, { 0, 50000 } };
	setitimer(ITIMER_REAL, &it, NULL);
	report_rc("recv_eintr", recv(fd, buf, 1, 0));
	signal(SIGALRM, SIG_DFL);
	int one = 1, v = 0;
	socklen_t l = sizeof(v);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &l);
	report("tcp_nodelay", v ? "ok" : "no");
	getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &l);
	report("so_type", v == SOCK_STREAM ? "ok" : "no");
	int d = dup(fd);
	close(fd);
	report_rc("dup_send", send(d, "x", 1, 0));
	close(d);

	fd = tcp_to(1);
	send(fd, "x", 1, 0);
	report_rc("recv_rst", recv(fd, buf, 1, 0));
	report_rc("send_after_rst", send(fd, "x", 1, MSG_NOSIGNAL));
	close(fd);
}

static void check_bulk(void)
{
	const uint64_t total = 8u << 20;
	unsigned char buf[65536];
	int fd = tcp_to(3);
	uint64_t h = 0xcbf29ce484222325ULL;
	for (uint64_t i = 0; i < total;) {
		size_t k = 0;
		for (; k < 10007 && i < total; k++, i++) /* odd sizes on purpose */
			buf[k] = pattern(i);
		h = fnv(h, buf, k);
		if (write_full(fd, buf, k) < 0)
			break;
	}
	shutdown(fd, SHUT_WR);
	uint64_t out[2] = { 0, 0 };
	read_full(fd, out, sizeof(out));
	report("bulk_send_checksum", out[0] == h && out[1] == total ? "ok" : "bad");
	close(fd);

	fd = tcp_to(4);
	uint64_t want = total;
	write_full(fd, &want, sizeof(want));
	uint64_t got = 0, hh = 0xcbf29ce484222325ULL, he = 0xcbf29ce484222325ULL;
	ssize_t r;
	while ((r = read(fd, buf, sizeof(buf))) > 0) {
		hh = fnv(hh, buf, (size_t)r);
		for (ssize_t k = 0; k < r; k++) {
			unsigned char e = pattern(got + (uint64_t)k);
			he = fnv(he, &e, 1);
		}
		got += (uint64_t)r;
	}
	report("bulk_recv_checksum", got == total && hh == he ? "ok" : "bad");
	close(fd);
}

/*
 * Many threads on many sockets: 8 threads at once, each with connections
 * of its own, alternately sending 1 MiB to the sink (its checksum comes
 * back) and having 1 MiB sent by the source, four rounds each.
 */
struct thread_job {
	pthread_t t;
	int id;
	bool ok;
};

static void *thread_main(void *arg)
{
	struct thread_job *j = arg;
	const uint64_t total = 1u << 20;
	unsigned char buf[16384];
	j->ok = true;
	for (int round = 0; round < 4 && j->ok; round++) {
		int fd = tcp_to(3);
		uint64_t h = 0xcbf29ce484222325ULL, seed = (uint64_t)j->id * 7919 + (uint64_t)round;
		for (uint64_t i = 0; i < total;) {
			size_t k = 0;
			for (; k < sizeof(buf) - 1 && i < total; k++, i++)
				buf[k] = pattern(i + seed);
			h = fnv(h, buf, k);
			if (write_full(fd, buf, k) < 0)
				break;
		}
		shutdown(fd, SHUT_WR);
		uint64_t out[2] = { 0, 0 };
		j->ok &= read_full(fd, out, sizeof(out)) == 0 && out[0] == h && out[1] == total;
		close(fd);

		fd = tcp_to(4);
		uint64_t want = total, got = 0;
		ssize_t r;
		write_full(fd, &want, sizeof(want));
		while ((r = read(fd, buf, sizeof(buf))) > 0) {
			for (ssize_t k = 0; k < r; k++)
				j->ok &= buf[k] == pattern(got + (uint64_t)k);
			got += (uint64_t)r;
		}
		j->ok &= got == total;
		close(fd);
	}
	return NULL;
}

static void check_threads(void)
{
	struct thread_job jobs[8];
	int ok = 0;
	for (int i = 0; i < 8; i++) {
		jobs[i].id = i;
		if (pthread_create(&jobs[i].t, NULL, thread_main, &jobs[i]) != 0)
			die("pthread_create");
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(jobs[i].t, NULL);
		ok += jobs[i].ok;
	}
	char res[32];
	snprintf(res, sizeof(res), "%d/8_ok", ok);
	report("threads_8x_8MiB", res);
}

static void check_readiness(void)
{
	char buf[64];
	int fd = tcp_to(0);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = 7 }, out[4];
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	char res[32];
	snprintf(res, sizeof(res), "%d", epoll_wait(ep, out, 4, 0));
	report("epoll_lt_idle", res);
	send(fd, "ab", 2, 0);
	int n1 = epoll_wait(ep, out, 4, 5000), n2 = epoll_wait(ep, out, 4, 0);
	snprintf(res, sizeof(res), "%d %d", n1, n2);
	report("epoll_lt", res);
	read_full(fd, buf, 2);

	ev.events = EPOLLIN | EPOLLET;
	epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
	send(fd, "cd", 2, 0);
	n1 = epoll_wait(ep, out, 4, 5000);
	read_full(fd, buf, 1);
	n2 = epoll_wait(ep, out, 4, 50);
	read_full(fd, buf, 1);
	send(fd, "ef", 2, 0);
	int n3 = epoll_wait(ep, out, 4, 5000);
	read_full(fd, buf, 2);
	snprintf(res, sizeof(res), "%d %d %d", n1, n2, n3);
	report("epoll_et", res);

	ev.events = EPOLLIN | EPOLLONESHOT;
	epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
	send(fd, "g", 1, 0);
	n1 = epoll_wait(ep, out, 4, 5000);
	n2 = epoll_wait(ep, out, 4, 0);
	epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
	n3 = epoll_wait(ep, out, 4, 0);
	snprintf(res, sizeof(res), "%d %d %d %u", n1, n2, n3, out[0].data.u32);
	report("epoll_oneshot", res);

	/* One set mixing a pipe and the socket. */
	int p[2];
	if (pipe(p) < 0)
		die("pipe");
	ev = (struct epoll_event){ .events = EPOLLIN, .data.u32 = 9 };
	epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
	write(p[1], "z", 1);
	n1 = epoll_wait(ep, out, 4, 5000);
	snprintf(res, sizeof(res), "%d %u", n1, n1 == 1 ? out[0].data.u32 : 0);
	report("epoll_mixed", res);
	close(p[0]);
	close(p[1]);
	close(ep);

	/* poll / select: socket readable with the 'g' still unread. */
	struct pollfd pf = { fd, POLLIN | POLLOUT, 0 };
	n1 = poll(&pf, 1, 5000);
	snprintf(res, sizeof(res), "%d %s%s", n1, (pf.revents & POLLIN) ? "in" : "",
		 (pf.revents & POLLOUT) ? "out" : "");
	report("poll", res);
	fd_set r, w;
	FD_ZERO(&r);
	FD_ZERO(&w);
	FD_SET(fd, &r);
	FD_SET(fd, &w);
	struct timeval tv = { 5, 0 };
	n1 = select(fd + 1, &r, &w, NULL, &tv);
	snprintf(res, sizeof(res), "%d", n1);
	report("select", res);
	read_full(fd, buf, 1);
	pf.events = POLLIN;
	snprintf(res, sizeof(res), "%d", poll(&pf, 1, 20));
	report("poll_timeout", res);
	close(fd);
}

static void check_accept(void)
{
	for (int nb = 0; nb < 2; nb++) {
		int l = sk_socket(SOCK_STREAM | (nb ? SOCK_NONBLOCK : 0)), one = 1;
		setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		union sk_addr a = sk_any(0);
		socklen_t al = sizeof(a);
		bind(l, &a.sa, sk_len(&a));
		listen(l, 8);
		getsockname(l, &a.sa, &al);
		if (nb)
			report_rc("accept_nb_empty", accept(l, NULL, NULL));
		int ctl = tcp_to(5);
		uint16_t port = sk_port(&a);
		write_full(ctl, &port, sizeof(port));
		if (nb) {
			struct pollfd p = { l, POLLIN, 0 };
			poll(&p, 1, 5000);
		}
		int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		char buf[8] = { 0 };
		const char *res = c < 0 ? ename(errno) :
				  read_full(c, buf, 5) == 0 && !memcmp(buf, "hello", 5) ? "ok" : "bad";
		report(nb ? "accept_nb" : "accept_blocking", res);
		if (c >= 0)
			report("accepted_cloexec", (fcntl(c, F_GETFD) & FD_CLOEXEC) ? "ok" : "no");
		read_full(ctl, buf, 1);
		close(c);
		close(ctl);
		close(l);
	}
}

/*
 * More connections at once than the listen() backlog: the kernel keeps
 * those past it waiting (it drops their SYN or the ACK that ends the
 * handshake) until the application accepts, and every one gets through;
 * none is reset.
 */
static void check_backlog(void)
{
	int l = sk_socket(SOCK_STREAM), one = 1, got = 0, bad = 0;
	union sk_addr a = sk_any(0);
	socklen_t al = sizeof(a);
	bool seen[BACKLOG_CONNS] = { false };
	int32_t res[2] = { -1, 0 };
	char k;

	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	bind(l, &a.sa, sk_len(&a));
	listen(l, 2);
	getsockname(l, &a.sa, &al);
	int ctl = tcp_to(12);
	uint16_t lport = sk_port(&a);
	write_full(ctl, &lport, sizeof(lport));
	read_full(ctl, &k, 1);          /* the queue is full: accept now */
	struct timeval tv = { .tv_sec = 20 };
	setsockopt(l, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (int i = 0; i < BACKLOG_CONNS; i++) {
		int c = accept(l, NULL, NULL);
		unsigned char idx;
		if (c < 0)
			break;
		setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (read_full(c, &idx, 1) == 0 && idx < BACKLOG_CONNS && !seen[idx]) {
			seen[idx] = true;
			got++;
		} else {
			bad++;
		}
		close(c);
	}
	write_full(ctl, "k", 1);
	read_full(ctl, res, sizeof(res));
	char line[64];
	snprintf(line, sizeof(line), "accepted %d/%d bad %d peer_failed %d %s", got,
		 BACKLOG_CONNS, bad, res[0], res[0] > 0 ? ename(res[1]) : "-");
	report("backlog_overflow", line);
	close(ctl);
	close(l);
}

/* ---- what an established connection's fd is ------------------------------ */
/*
 * fstat, statx, seeking, options and ioctls on a connected and an accepted
 * socket (under the shim their fds are eventfds standing in for sockets:
 * libisosock/shadow.c): a socket of sockfs, an inode of its own that dup
 * keeps, the kernel's answers.  Printed as facts, never numbers that vary.
 */
static const char *is_socket_stat(const struct stat *st, const struct stat *ref)
{
	if (!S_ISSOCK(st->st_mode))
		return "not_sock";
	if ((st->st_mode & 07777) != 0777)
		return "mode";
	if (st->st_dev != ref->st_dev)
		return "dev";
	if (st->st_size != 0 || st->st_blksize != 4096 || st->st_nlink != 1)
		return "fields";
	return "ok";
}

static void identity_of(const char *what, int fd, const struct stat *ref)
{
	char name[64];
	struct stat st, st2;
#define R(n, v) (snprintf(name, sizeof(name), "%s_%s", what, n), report(name, v))
	R("fstat", fstat(fd, &st) ? ename(errno) : is_socket_stat(&st, ref));
	R("fstat_other_ino", st.st_ino != ref->st_ino ? "ok" : "same");
	R("fstatat_empty", fstatat(fd, "", &st2, AT_EMPTY_PATH) ? ename(errno) :
	  st2.st_ino == st.st_ino && st2.st_dev == st.st_dev && S_ISSOCK(st2.st_mode) ? "ok" : "bad");
	struct statx sx;
	R("statx", statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &sx) ? ename(errno) :
	  S_ISSOCK(sx.stx_mode) && sx.stx_ino == st.st_ino && sx.stx_blksize == 4096 &&
	  (dev_t)makedev(sx.stx_dev_major, sx.stx_dev_minor) == st.st_dev ? "ok" : "bad");
	int d = dup(fd);
	R("dup_same_ino", fstat(d, &st2) ? ename(errno) : st2.st_ino == st.st_ino ? "ok" : "bad");
	close(d);
	errno = 0;
	R("lseek", ename(lseek(fd, 0, SEEK_CUR) < 0 ? errno : 0));
	char c;
	R("pread", ename(pread(fd, &c, 1, 0) < 0 ? errno : 0));
	int fl = fcntl(fd, F_GETFL);
	R("getfl", fl < 0 ? ename(errno) : (fl & O_ACCMODE) == O_RDWR ? "ok" : "bad");
	int v = 0;
	socklen_t l = sizeof(v);
	R("so_type", getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &l) ? ename(errno) :
	  v == SOCK_STREAM ? "ok" : "bad");
	l = sizeof(v);
	R("so_domain", getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &l) ? ename(errno) :
	  v == sk_family ? "ok" : "bad");
	v = 0x10;
	R("ip_tos_set", ename(setsockopt(fd, IPPROTO_IP, IP_TOS, &v, sizeof(v)) ? errno : 0));
	v = 0;
	l = sizeof(v);
	R("ip_tos_get", getsockopt(fd, IPPROTO_IP, IP_TOS, &v, &l) ? ename(errno) :
	  v == 0x10 ? "ok" : "bad");
	struct timeval tv = { 0, 1 };
	R("rcvtimeo_set", ename(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ? errno : 0));
	l = sizeof(tv);
	/* The kernel rounds up to its tick: whatever it is, above 1 us. */
	R("rcvtimeo_get", getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &l) ? ename(errno) :
	  tv.tv_sec == 0 && tv.tv_usec > 1 ? "ok" : "bad");
	tv = (struct timeval){ 0, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	tv.tv_usec = 2000000;
	R("rcvtimeo_edom", ename(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ? errno : 0));
	struct ifreq ifr = { 0 };
	strcpy(ifr.ifr_name, "lo");
	R("siocgifindex", ioctl(fd, SIOCGIFINDEX, &ifr) ? ename(errno) :
	  ifr.ifr_ifindex == 1 ? "ok" : "bad");
	R("tcgets", ename(isatty(fd) ? 0 : errno));
#undef R
}

static int listener_any(uint16_t *port);

static void check_identity(void)
{
	struct stat ref;
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	if (u < 0 || fstat(u, &ref) < 0)
		die("identity setup");
	close(u);
	int fd = sk_socket(SOCK_STREAM | SOCK_CLOEXEC);
	union sk_addr a = sk_peer(0);
	if (fd < 0 || connect(fd, &a.sa, sk_len(&a)) < 0)
		die("identity connect");
	report("connected_cloexec", (fcntl(fd, F_GETFD) & FD_CLOEXEC) ? "ok" : "no");
	identity_of("connected", fd, &ref);
	char b[4];
	report("connected_after", send(fd, "abcd", 4, 0) == 4 && read_full(fd, b, 4) == 0 &&
				  !memcmp(b, "abcd", 4) ? "ok" : "bad");

	/* A dup made before connect: both fds stay one socket. */
	int g = sk_socket(SOCK_STREAM), g2 = dup(g);
	struct stat s1, s2;
	if (g < 0 || g2 < 0 || connect(g, &a.sa, sk_len(&a)) < 0)
		die("identity dup connect");
	report("dup_then_connect_ino", fstat(g, &s1) == 0 && fstat(g2, &s2) == 0 &&
				       s1.st_ino == s2.st_ino && S_ISSOCK(s2.st_mode) ? "ok" : "bad");
	report("dup_then_connect_io", send(g2, "efgh", 4, 0) == 4 && read_full(g, b, 4) == 0 &&
				      !memcmp(b, "efgh", 4) ? "ok" : "bad");
	close(g);
	close(g2);

	uint16_t port;
	int l = listener_any(&port);
	int ctl = tcp_to(5);
	write_full(ctl, &port, sizeof(port));
	int c = accept4(l, NULL, NULL, SOCK_NONBLOCK);
	if (c < 0)
		die("identity accept");
	struct stat cs;
	report("accepted_vs_connected_ino", fstat(c, &cs) == 0 && fstat(fd, &s1) == 0 &&
					    cs.st_ino != s1.st_ino ? "ok" : "same");
	identity_of("accepted", c, &ref);
	int fl = fcntl(c, F_GETFL);
	report("accepted_nonblock", fl >= 0 && (fl & O_NONBLOCK) ? "ok" : "no");
	fcntl(c, F_SETFL, fl & ~O_NONBLOCK);
	char h[5];
	report("accepted_after", read_full(c, h, 5) == 0 && !memcmp(h, "hello", 5) ? "ok" : "bad");
	read_full(ctl, h, 1);
	close(c);
	close(ctl);
	close(l);
	close(fd);
}

/* ---- signals ---------------------------------------------------------- */

static volatile sig_atomic_t sig_hits;
static int sig_wake = -1; /* write end of the helper's pipe, or -1 */

static void on_sig(int sig)
{
	(void)sig;
	sig_hits++;
	if (sig_wake >= 0) {
		char c = 's';
		ssize_t w = write(sig_wake, &c, 1);
		(void)w;
	}
}

/* SIGALRM every 100 ms until timer_stop(): the first one that finds the
 * call blocked interrupts it, whatever the scheduling. */
static void timer_start(bool restart)
{
	struct sigaction sa = { .sa_handler = on_sig, .sa_flags = restart ? SA_RESTART : 0 };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	sig_hits = 0;
	struct itimerval it = { { 0, 100000 }, { 0, 100000 } };
	setitimer(ITIMER_REAL, &it, NULL);
}

static void timer_stop(void)
{
	struct itimerval it = { { 0, 0 }, { 0, 0 } };
	setitimer(ITIMER_REAL, &it, NULL);
	signal(SIGALRM, SIG_IGN); /* one already pending is dropped */
}

/* A thread that runs fn once the first signal arrived; SIGALRM is blocked
 * in it, so the signal always lands in the main thread's blocked call. */
struct helper {
	pthread_t t;
	int pipe[2];
	void (*fn)(long);
	long arg;
};

static void *helper_main(void *arg)
{
	struct helper *h = arg;
	char c;
	while (read(h->pipe[0], &c, 1) < 0 && errno == EINTR)
		;
	h->fn(h->arg);
	return NULL;
}

static void helper_start(struct helper *h, void (*fn)(long), long arg)
{
	if (pipe2(h->pipe, O_CLOEXEC) < 0)
		die("pipe");
	h->fn = fn;
	h->arg = arg;
	sigset_t s, old;
	sigemptyset(&s);
	sigaddset(&s, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &s, &old);
	if (pthread_create(&h->t, NULL, helper_main, h) != 0)
		die("pthread_create");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	sig_wake = h->pipe[1];
}

static void helper_join(struct helper *h)
{
	pthread_join(h->t, NULL);
	sig_wake = -1;
	close(h->pipe[0]);
	close(h->pipe[1]);
}

static void send_late(long fd)
{
	send((int)fd, "late", 4, 0);
}

/* Asks the connector service to connect to our port `port`. */
static void connect_back(long port)
{
	int ctl = tcp_to(5);
	uint16_t p = (uint16_t)port;
	char k;
	write_full(ctl, &p, sizeof(p));
	read_full(ctl, &k, 1);
	close(ctl);
}

/* Makes room in the full listener (+6): one waiting connection goes. */
static void drain_full(long unused)
{
	(void)unused;
	int ctl = tcp_to(7);
	char k;
	read_full(ctl, &k, 1);
	close(ctl);
}

static int listener_any(uint16_t *port)
{
	int l = sk_socket(SOCK_STREAM), one = 1;
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	union sk_addr a = sk_any(0);
	socklen_t al = sizeof(a);
	if (bind(l, &a.sa, sk_len(&a)) < 0 || listen(l, 8) < 0 ||
	    getsockname(l, &a.sa, &al) < 0)
		die("listen");
	*port = sk_port(&a);
	return l;
}

static void check_signals(void)
{
	char buf[16];
	struct helper h;

	/* recv: EINTR without SA_RESTART; restarted with it, and returns the
	 * data sent after the signal. */
	int fd = tcp_to(2);
	timer_start(false);
	ssize_t r = recv(fd, buf, sizeof(buf), 0);
	timer_stop();
	report_rc("sig_recv_eintr", r);
	close(fd);

	fd = tcp_to(0);
	helper_start(&h, send_late, fd);
	timer_start(true);
	r = recv(fd, buf, 4, MSG_WAITALL);
	timer_stop();
	helper_join(&h);
	report("sig_recv_restart", r == 4 && !memcmp(buf, "late", 4) && sig_hits > 0 ? "ok" :
				   r < 0 ? ename(errno) : "bad");

	/* SO_RCVTIMEO set: EINTR even with SA_RESTART (the kernel restarts
	 * no call with a timeout), and expiry gives EAGAIN. */
	struct timeval tv = { 30, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	timer_start(true);
	r = recv(fd, buf, sizeof(buf), 0);
	timer_stop();
	report_rc("sig_recv_timeo_restart", r);
	close(fd);

	/* accept, the same two ways. */
	uint16_t port;
	int l = listener_any(&port);
	timer_start(false);
	int c = accept(l, NULL, NULL);
	timer_stop();
	report_rc("sig_accept_eintr", c);
	if (c >= 0)
		close(c);
	helper_start(&h, connect_back, port);
	timer_start(true);
	c = accept(l, NULL, NULL);
	timer_stop();
	helper_join(&h);
	memset(buf, 0, sizeof(buf));
	report("sig_accept_restart", c < 0 ? ename(errno) :
	       read_full(c, buf, 5) == 0 && !memcmp(buf, "hello", 5) && sig_hits > 0 ? "ok" : "bad");
	if (c >= 0)
		close(c);
	tv = (struct timeval){ 0, 100000 };
	setsockopt(l, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	report_rc("accept_rcvtimeo", accept(l, NULL, NULL));
	close(l);

	/* connect: a full listener drops our SYN, so connect blocks.  EINTR,
	 * and the connection completes later (the SYN is retransmitted once
	 * the drain made room); the next connect() says 0, then EISCONN. */
	int fill = tcp_to(6);
	fd = sk_socket(SOCK_STREAM);
	union sk_addr a = sk_peer(6);
	timer_start(false);
	int rc = connect(fd, &a.sa, sk_len(&a));
	timer_stop();
	report_rc("sig_connect_eintr", rc);
	drain_full(0);
	struct pollfd p = { fd, POLLOUT, 0 };
	poll(&p, 1, 20000);
	report("sig_connect_later", (p.revents & POLLOUT) ? "ok" : "no");
	int err = -1;
	socklen_t el = sizeof(err);
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
	report("sig_connect_so_error", ename(err));
	report_rc("sig_connect_again", connect(fd, &a.sa, sk_len(&a)));
	report_rc("sig_connect_again2", connect(fd, &a.sa, sk_len(&a)));
	/* With SA_RESTART the connect goes on after the signal and returns
	 * 0 once the helper made room. */
	int fd2 = sk_socket(SOCK_STREAM);
	helper_start(&h, drain_full, 0);
	timer_start(true);
	rc = connect(fd2, &a.sa, sk_len(&a));
	timer_stop();
	helper_join(&h);
	report("sig_connect_restart", rc == 0 && sig_hits > 0 ? "ok" : rc < 0 ? ename(errno) : "bad");
	drain_full(0);
	close(fd2);
	close(fd);
	close(fill);

	/* poll and epoll_wait: EINTR even with SA_RESTART. */
	fd = tcp_to(2);
	p = (struct pollfd){ fd, POLLIN, 0 };
	timer_start(true);
	rc = poll(&p, 1, -1);
	timer_stop();
	report_rc("sig_poll_eintr", rc);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = 1 }, out[2];
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	timer_start(true);
	rc = epoll_wait(ep, out, 2, -1);
	timer_stop();
	report_rc("sig_epoll_eintr", rc);
	close(ep);
	close(fd);
	signal(SIGALRM, SIG_DFL);
}

/* ---- splice, closefrom ------------------------------------------------- */

/* ---- edge-triggered epoll: one edge per arrival -------------------------- */

/* "n:in,out" for one epoll_wait of at most one event. */
static void et_step(char *res, size_t sz, int ep, int ms)
{
	struct epoll_event out[2] = { 0 };
	int n = epoll_wait(ep, out, 2, ms);
	uint32_t e = n > 0 ? out[0].events : 0;
	size_t k = strlen(res);
	snprintf(res + k, sz - k, "%s%d%s%s%s%s", k ? " " : "", n, n > 0 ? ":" : "",
		 (e & EPOLLIN) ? "in" : "", (e & EPOLLIN) && (e & EPOLLOUT) ? "," : "",
		 (e & EPOLLOUT) ? "out" : "");
}

/*
 * The kernel requeues an ET item at every arrival (sk_data_ready), so a
 * socket that stays readable reports EPOLLIN again for each new segment,
 * datagram or connection, and never without one.  Each arrival is made
 * by us (an echo, a connect-back) and awaited with a timeout; the
 * epoll_wait(0) after it must then find nothing.
 */
static void check_et_arrivals(void)
{
	char res[96] = "", buf[8] = { 0 };
	int fd = tcp_to(0);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET };
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	et_step(res, sizeof(res), ep, 5000);   /* writable: the ADD reports */
	send(fd, "a", 1, 0);
	et_step(res, sizeof(res), ep, 5000);   /* echo 1 */
	send(fd, "b", 1, 0);
	et_step(res, sizeof(res), ep, 5000);   /* echo 2, the first unread */
	et_step(res, sizeof(res), ep, 0);
	read_full(fd, buf, 1);
	et_step(res, sizeof(res), ep, 0);      /* a read is no arrival */
	read_full(fd, buf + 1, 1);
	snprintf(res + strlen(res), sizeof(res) - strlen(res), " %s", buf);
	report("epoll_et_each_segment", res);
	close(ep);
	close(fd);

	res[0] = 0;
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = addr(peer_ip, base);
	connect(u, (struct sockaddr *)&a, sizeof(a));
	ep = epoll_create1(EPOLL_CLOEXEC);
	ev = (struct epoll_event){ .events = EPOLLIN | EPOLLET };
	epoll_ctl(ep, EPOLL_CTL_ADD, u, &ev);
	et_step(res, sizeof(res), ep, 0);
	send(u, "1", 1, 0);
	et_step(res, sizeof(res), ep, 5000);
	send(u, "2", 1, 0);
	et_step(res, sizeof(res), ep, 5000);
	et_step(res, sizeof(res), ep, 0);
	memset(buf, 0, sizeof(buf));
	ssize_t r1 = recv(u, buf, 4, MSG_DONTWAIT), r2 = recv(u, buf + 1, 4, MSG_DONTWAIT);
	snprintf(res + strlen(res), sizeof(res) - strlen(res), " %zd %zd %s", r1, r2, buf);
	report("epoll_et_each_dgram", res);
	close(ep);
	close(u);

	res[0] = 0;
	uint16_t port;
	int l = listener_any(&port);
	fcntl(l, F_SETFL, fcntl(l, F_GETFL) | O_NONBLOCK);
	ep = epoll_create1(EPOLL_CLOEXEC);
	ev = (struct epoll_event){ .events = EPOLLIN | EPOLLET };
	epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
	et_step(res, sizeof(res), ep, 0);
	connect_back(port);
	et_step(res, sizeof(res), ep, 5000);   /* connection 1 queued */
	connect_back(port);
	et_step(res, sizeof(res), ep, 5000);   /* connection 2, 1 still queued */
	et_step(res, sizeof(res), ep, 0);
	int c[3], e[3];
	c[0] = accept(l, NULL, NULL);
	e[0] = errno;
	et_step(res, sizeof(res), ep, 0);      /* an accept is no arrival */
	for (int i = 1; i < 3; i++) {
		c[i] = accept(l, NULL, NULL);
		e[i] = errno;
	}
	for (int i = 0; i < 3; i++) {
		snprintf(res + strlen(res), sizeof(res) - strlen(res), " %s",
			 c[i] >= 0 ? "ok" : ename(e[i]));
	}
	report("epoll_et_each_conn", res);
	for (int i = 0; i < 3; i++)
		if (c[i] >= 0)
			close(c[i]);
	close(ep);
	close(l);
}

/*
 * Another thread adds a socket to an epoll set this thread is already
 * waiting on (the set held no socket yet), and data arrives on it: the
 * wait reports it, as the kernel wakes a waiter when an added fd becomes
 * ready.  The adding thread connects to the echo service, adds the
 * socket, then sends; the wait has 10 s, far more than the round trip.
 */
struct adder {
	pthread_t t;
	int ep, fd;
	int ready[2];             /* the waiter is about to wait */
};

static void *adder_main(void *arg)
{
	struct adder *a = arg;
	char c;
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 7 };
	if (read(a->ready[0], &c, 1) != 1)
		return NULL;
	a->fd = tcp_to(0);
	if (epoll_ctl(a->ep, EPOLL_CTL_ADD, a->fd, &ev) == 0)
		send(a->fd, "t", 1, 0);
	return NULL;
}

static void check_epoll_thread_add(void)
{
	struct adder a = { .ep = epoll_create1(0), .fd = -1 };
	struct epoll_event out[2];
	if (a.ep < 0 || pipe(a.ready) < 0)
		die("epoll_thread_add setup");
	/* A socket of ours exists (the process uses the stack) before the
	 * wait starts, as in a server that accepts in another thread. */
	int other = tcp_to(0);
	if (pthread_create(&a.t, NULL, adder_main, &a) != 0)
		die("pthread_create");
	/* The write races with the wait's start on purpose: either order
	 * must end with the event reported. */
	if (write(a.ready[1], "g", 1) != 1)
		die("epoll_thread_add write");
	int n = epoll_wait(a.ep, out, 2, 10000);
	pthread_join(a.t, NULL);
	char res[32];
	snprintf(res, sizeof(res), "%d:%s", n, n == 1 && out[0].data.u64 == 7 &&
		 (out[0].events & EPOLLIN) ? "in" : "-");
	report("epoll_thread_add", res);
	if (a.fd >= 0)
		close(a.fd);
	close(other);
	close(a.ep);
	close(a.ready[0]);
	close(a.ready[1]);
}

static void check_splice(void)
{
	int a = tcp_to(0), b = tcp_to(0), p[2];
	if (pipe(p) < 0)
		die("pipe");
	loff_t off = 0;
	report_rc("splice_sock_offset", splice(a, &off, p[1], NULL, 8, 0));
	report_rc("splice_pipe_offset", splice(a, NULL, p[1], &off, 8, 0));
	report_rc("splice_two_sockets", splice(a, NULL, b, NULL, 8, 0));
	report_rc("splice_pipe_wrong_end", splice(a, NULL, p[0], NULL, 8, 0));
	int fl = fcntl(a, F_GETFL);
	fcntl(a, F_SETFL, fl | O_NONBLOCK);
	report_rc("splice_nb_empty", splice(a, NULL, p[1], NULL, 8, SPLICE_F_NONBLOCK));
	fcntl(a, F_SETFL, fl);
	report_rc("splice_pipe_nb_empty", splice(p[0], NULL, b, NULL, 8, SPLICE_F_NONBLOCK));
	report_rc("tee_socket", tee(a, p[1], 8, 0));
	struct iovec v = { "x", 1 };
	report_rc("vmsplice_socket", vmsplice(a, &v, 1, 0));

	/* a -> echo -> a -> pipe -> b -> echo -> b, odd sizes, 1 MiB. */
	const uint64_t total = 1u << 20;
	unsigned char buf[10007], back[10007];
	uint64_t h1 = 0xcbf29ce484222325ULL, h2 = h1;
	bool ok = true;
	for (uint64_t i = 0; i < total && ok;) {
		size_t k = 0;
		for (; k < sizeof(buf) && i < total; k++, i++)
			buf[k] = pattern(i);
		h1 = fnv(h1, buf, k);
		if (write_full(a, buf, k) < 0)
			ok = false;
		for (size_t moved = 0; moved < k && ok;) {
			ssize_t n = splice(a, NULL, p[1], NULL, k - moved, 0);
			if (n <= 0) {
				ok = false;
				break;
			}
			for (ssize_t m = 0; m < n;) {
				ssize_t w = splice(p[0], NULL, b, NULL, (size_t)(n - m), 0);
				if (w <= 0) {
					ok = false;
					break;
				}
				m += w;
			}
			moved += (size_t)n;
		}
		if (ok && read_full(b, back, k) < 0)
			ok = false;
		h2 = fnv(h2, back, k);
	}
	report("splice_echo", ok && h1 == h2 ? "ok" : "bad");
	close(p[0]);
	close(p[1]);
	close(a);
	close(b);
}

/* closefrom(3): our sockets and pipe go, the shim keeps its own fds (the
 * sockets made after still work). */
static void check_closefrom(void)
{
	int s = tcp_to(0), p[2];
	if (pipe(p) < 0)
		die("pipe");
	closefrom(3);
	bool closed = fcntl(s, F_GETFD) < 0 && errno == EBADF && fcntl(p[0], F_GETFD) < 0 &&
		      fcntl(p[1], F_GETFD) < 0;
	report("closefrom_closed", closed ? "ok" : "no");
	int fd = sk_socket(SOCK_STREAM);
	union sk_addr a = sk_peer(0);
	char b[5] = { 0 };
	int ok = connect(fd, &a.sa, sk_len(&a)) == 0 && send(fd, "after", 5, 0) == 5 &&
		 read_full(fd, b, 5) == 0 && !memcmp(b, "after", 5);
	report("closefrom_after", ok ? "ok" : "bad");
	close(fd);
}

/* A listener of ours on an ephemeral port, for services that connect
 * back; its port in network order. */
static int listener(uint16_t *port)
{
	int l = sk_socket(SOCK_STREAM);
	union sk_addr a = sk_any(0);
	socklen_t al = sizeof(a);
	struct timeval tv = { .tv_sec = 20 };
	if (l < 0 || bind(l, &a.sa, sk_len(&a)) < 0 || listen(l, 4) < 0 ||
	    getsockname(l, &a.sa, &al) < 0)
		die("listener");
	setsockopt(l, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)); /* a hang is a failure */
	*port = sk_port(&a);
	return l;
}

/* What the watcher (+6) reports once the connection it watches ended. */
static const char *watcher_count(int l, uint64_t want)
{
	int c = accept(l, NULL, NULL);
	uint64_t cnt = 0;
	const char *res = c < 0 ? ename(errno) :
			  read_full(c, &cnt, sizeof(cnt)) < 0 ? "short" :
			  cnt == want ? "ok" : "wrong_count";
	if (c >= 0)
		close(c);
	return res;
}

/*
 * The parent closes its copy at once; the child writes and then ends
 * without close(): by exit() (the fds close with the process), or killed.
 * The connection must then be closed (the peer sees EOF after every
 * byte), as the kernel does when the last holder goes.
 */
static void check_fork_release(bool killed)
{
	uint16_t port;
	int l = listener(&port), fd = tcp_to(8), sync[2];
	static unsigned char data[100000];
	if (pipe(sync) < 0 || write_full(fd, &port, sizeof(port)) < 0)
		die("fork_release setup");
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = pattern(i);
	pid_t pid = fork();
	if (pid == 0) {
		close(l);
		int ok = write_full(fd, data, sizeof(data)) == 0;
		if (write(sync[1], ok ? "y" : "n", 1) != 1 || !killed)
			exit(0);         /* no close(): exit() lets go of fd */
		for (;;)
			pause();         /* until the parent kills us */
	}
	close(fd);
	char c = 'n';
	if (read(sync[0], &c, 1) != 1)
		c = 'n';
	if (killed)
		kill(pid, SIGKILL);
	const char *res = c == 'y' ? watcher_count(l, sizeof(data)) : "send_failed";
	waitpid(pid, NULL, 0);
	report(killed ? "fork_kill_release" : "fork_exit_release", res);
	close(l);
	close(sync[0]);
	close(sync[1]);
}

/*
 * A forking server holds each connection in many processes at once: here
 * 100 children inherit one connection, the parent closes its copy, 99
 * children exit, and the last child, which a shim with a small table of
 * processes could not tell apart from its parent, still uses it.
 */
static void check_fork_many(void)
{
	enum { N = 100 };
	int fd = tcp_to(0), quit[2], go[2];
	pid_t pids[N];
	if (pipe(quit) < 0 || pipe(go) < 0)
		die("fork_many setup");
	for (int i = 0; i < N; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			die("fork_many fork");
		if (pids[i] > 0)
			continue;
		char b[4];
		close(quit[1]);
		close(go[1]);
		if (i < N - 1)
			_exit(read(quit[0], b, 1) == 0 ? 0 : 1);  /* EOF: exit */
		if (read(go[0], b, 1) != 1)
			_exit(2);
		_exit(send(fd, "last", 4, 0) == 4 && read_full(fd, b, 4) == 0 &&
		      !memcmp(b, "last", 4) ? 0 : 3);
	}
	close(fd);
	close(quit[1]);           /* the first 99 exit */
	bool ok = true;
	for (int i = 0; i < N - 1; i++) {
		int st = -1;
		ok &= waitpid(pids[i], &st, 0) == pids[i] && WIFEXITED(st) && WEXITSTATUS(st) == 0;
	}
	int st = -1;
	ok &= write(go[1], "g", 1) == 1;
	waitpid(pids[N - 1], &st, 0);
	report("fork_many", !ok ? "children_failed" :
	       WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "ok" : "last_failed");
	close(quit[0]);
	close(go[0]);
	close(go[1]);
}

/*
 * As fork_kill_release, but the parent then only waits for the child
 * (waitpid) and asks the peer, in a datagram it sends right after,
 * whether the connection has ended: the kernel closed it when the child
 * died, so the FIN came first; the shim must not leave it open until the
 * parent's next call on some socket.
 */
static void check_fork_kill_waited(void)
{
	int fd = tcp_to(10), sync[2], u = socket(AF_INET, SOCK_DGRAM, 0);
	uint16_t uport;
	struct timeval tv = { .tv_sec = 20 };
	if (read_full(fd, &uport, sizeof(uport)) < 0 || pipe(sync) < 0 || u < 0)
		die("fork_kill_waited setup");
	setsockopt(u, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	pid_t pid = fork();
	if (pid == 0) {
		if (write(sync[1], "y", 1) != 1)
			_exit(1);
		for (;;)
			pause();         /* holds fd until killed */
	}
	close(fd);
	char c = 'n', ans[16] = "";
	if (read(sync[0], &c, 1) != 1)
		c = 'n';
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	struct sockaddr_in a = addr(peer_ip, 0);
	a.sin_port = uport;
	ssize_t r = sendto(u, "?", 1, 0, (struct sockaddr *)&a, sizeof(a));
	if (r == 1)
		r = recv(u, ans, sizeof(ans) - 1, 0);
	report("fork_kill_waited", c != 'y' ? "child_failed" : r > 0 ? ans : ename(errno));
	close(u);
	close(sync[0]);
	close(sync[1]);
}

/* What the end timer (+11) answered on listener l. */
static int end_result(int l, struct end_res *r)
{
	int c = accept(l, NULL, NULL);
	int rc = c < 0 || read_full(c, r, sizeof(*r)) < 0 ? -1 : 0;
	if (c >= 0)
		close(c);
	return rc;
}

static const char *end_verdict(const char *name, const struct end_res *r, uint64_t want,
			       int64_t killed_at, int64_t limit_ns)
{
	double ms = (double)(r->at_ns - killed_at) / 1e6;
	fprintf(stderr, "sockcheck: %s: %s %.1f ms after the kill (%llu of %llu bytes)\n",
		name, r->err ? ename(r->err) : "EOF", ms, (unsigned long long)r->count,
		(unsigned long long)want);
	if (r->err)
		return ename(r->err);
	if (r->count != want)
		return "wrong_count";
	return r->at_ns - killed_at < limit_ns ? "ok" : "too_slow";
}

static int wake_pipe[2] = { -1, -1 };

static void on_wake(int sig)
{
	char c = sig == SIGALRM ? 't' : 'w';
	if (write(wake_pipe[1], &c, 1) < 0) {
		/* the read below times out anyway */
	}
}

/*
 * As fork_kill_release, but the parent, after closing its copy, sits in
 * read() on a pipe (no call into the shim, so no sweep of dead members)
 * until the peer, having seen the end of the connection, signals it.  The
 * kernel closes the child's socket at its death: every byte, then EOF,
 * well within a second (fails beyond 2 s).
 */
static void check_fork_kill_idle(void)
{
	enum { N = 100000 };
	static unsigned char data[N];
	uint16_t port;
	int l = listener(&port), fd = tcp_to(11);
	struct end_req q = { .port = port, .mode = END_PLAIN, .pid = getpid() };
	int64_t *killed_at = mmap(NULL, sizeof(int64_t), PROT_READ | PROT_WRITE,
				  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct sigaction sa = { .sa_handler = on_wake }, old_usr, old_alrm;
	struct end_res r;
	char c = 0;
	if (killed_at == MAP_FAILED || pipe(wake_pipe) < 0 || write_full(fd, &q, sizeof(q)) < 0)
		die("fork_kill_idle setup");
	for (size_t i = 0; i < N; i++)
		data[i] = pattern(i);
	sigaction(SIGUSR1, &sa, &old_usr);
	sigaction(SIGALRM, &sa, &old_alrm);
	pid_t pid = fork();
	if (pid == 0) {
		if (write_full(fd, data, N) < 0)
			_exit(1);
		*killed_at = mono_ns();
		kill(getpid(), SIGKILL);  /* no close(), no exit() */
		_exit(1);
	}
	close(fd);
	alarm(5);
	while (read(wake_pipe[0], &c, 1) < 0 && errno == EINTR)
		;
	alarm(0);
	waitpid(pid, NULL, 0);
	const char *res = c != 'w' ? "timeout" : end_result(l, &r) < 0 ? "no_answer" :
			  end_verdict("fork_kill_idle", &r, N, *killed_at, 2000000000LL);
	report("fork_kill_idle", res);
	sigaction(SIGUSR1, &old_usr, NULL);
	sigaction(SIGALRM, &old_alrm, NULL);
	close(wake_pipe[0]);
	close(wake_pipe[1]);
	munmap(killed_at, sizeof(int64_t));
	close(l);
}

/*
 * A process alone (its own attachment under the shim) is killed with a
 * connection open.  It is forked at the start, before this program makes
 * any socket (so it shares nothing with us), and waits for its order on
 * a pipe.  END_SLOW: it fills its send buffer while the peer does not
 * read yet, then is killed: the peer reads every byte, then EOF (not a
 * RST).  END_UNREAD: it leaves a received byte unread: the peer gets a
 * RST, as from the kernel.
 */
struct lone {
	pid_t pid;
	int cmd, ans;          /* our ends of its pipes */
};
static struct lone lone[2];

static void lone_main(int cmd, int ans)
{
	struct end_req q;
	static unsigned char data[1 << 16];
	uint64_t n = 0;
	if (read_full(cmd, &q, sizeof(q)) < 0)
		_exit(0);              /* the checks never ran */
	int fd = tcp_to(11);
	if (write_full(fd, &q, sizeof(q)) < 0)
		_exit(1);
	if (q.mode == END_UNREAD) {
		char b;
		if (recv(fd, &b, 1, MSG_PEEK) != 1 || write_full(fd, "abc", 3) < 0)
			_exit(1);
		n = 3;
	} else {
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		for (ssize_t k; n < (64u << 20); n += (uint64_t)k) {
			for (size_t i = 0; i < sizeof(data); i++)
				data[i] = pattern(n + i);
			k = write(fd, data, sizeof(data));
			if (k <= 0)
				break;
		}
	}
	if (write_full(ans, &n, sizeof(n)) < 0)
		_exit(1);
	for (;;)
		pause();               /* until killed */
}

static void lone_start(void)
{
	for (int i = 0; i < 2; i++) {
		int cmd[2], ans[2];
		if (pipe(cmd) < 0 || pipe(ans) < 0)
			die("lone pipes");
		lone[i].pid = fork();
		if (lone[i].pid < 0)
			die("lone fork");
		if (lone[i].pid == 0) {
			close(cmd[1]);
			close(ans[0]);
			for (int j = 0; j < i; j++) {
				close(lone[j].cmd);
				close(lone[j].ans);
			}
			lone_main(cmd[0], ans[1]);
		}
		close(cmd[0]);
		close(ans[1]);
		lone[i].cmd = cmd[1];
		lone[i].ans = ans[0];
	}
}

static void check_kill_lone(void)
{
	static const char *const names[2] = { "kill_lone_unsent", "kill_lone_unread" };
	for (int i = 0; i < 2; i++) {
		uint16_t port;
		int l = listener(&port);
		struct end_req q = { .port = port, .mode = i == 0 ? END_SLOW : END_UNREAD };
		struct end_res r;
		uint64_t n = 0;
		const char *res;
		if (write_full(lone[i].cmd, &q, sizeof(q)) < 0 || read_full(lone[i].ans, &n, sizeof(n)) < 0) {
			res = "lone_failed";
		} else {
			int64_t at = mono_ns();
			kill(lone[i].pid, SIGKILL);
			if (end_result(l, &r) < 0)
				res = "no_answer";
			else if (i == 0)     /* the peer starts reading 300 ms in */
				res = end_verdict(names[i], &r, n, at, 2300000000LL);
			else
				res = r.err ? ename(r.err) : "EOF";
		}
		waitpid(lone[i].pid, NULL, 0);
		close(lone[i].cmd);
		close(lone[i].ans);
		report(names[i], res);
		close(l);
	}
}

/*
 * exec: a socket without FD_CLOEXEC still works in the new image (here
 * this program again, `execchild FD`), and the parent's copy keeps
 * working too; a SOCK_CLOEXEC one is gone in the new image (EBADF) and,
 * the parent having closed its copy, closed for the peer.
 */
static int exec_child(int fd)
{
	char b[4];
	int flags = fcntl(fd, F_GETFD);
	if (flags < 0)
		return errno == EBADF ? 3 : 2;
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
		return 1; /* still a socket in the new image */
	if (send(fd, "exec", 4, 0) != 4 || read_full(fd, b, 4) < 0 || memcmp(b, "exec", 4))
		return 1;
	return 0;
}

static const char *exec_run(int fd)
{
	pid_t pid = fork();
	if (pid == 0) {
		char arg[16];
		snprintf(arg, sizeof(arg), "%d", fd);
		execl("/proc/self/exe", "sockcheck", "execchild", arg, (char *)NULL);
		_exit(127);
	}
	int st = -1;
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st))
		return "killed";
	switch (WEXITSTATUS(st)) {
	case 0: return "ok";
	case 3: return "EBADF";
	case 127: return "no_exec";
	default: return "bad";
	}
}

static void check_exec(void)
{
	int fd = tcp_to(0);
	report("exec_inherit", exec_run(fd));
	char b[5];
	int ok = send(fd, "after", 5, 0) == 5 && read_full(fd, b, 5) == 0 && !memcmp(b, "after", 5);
	report("exec_parent_after", ok ? "ok" : "bad");
	close(fd);

	uint16_t port;
	int l = listener(&port);
	fd = tcp_to(8);
	if (write_full(fd, &port, sizeof(port)) < 0 || write_full(fd, "abc", 3) < 0)
		die("exec_cloexec setup");
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	report("exec_cloexec", exec_run(fd));
	close(fd);
	report("exec_cloexec_closed", watcher_count(l, 3));
	close(l);
}

/*
 * posix_spawn, system, popen: glibc makes these children itself; they
 * must inherit sockets as a fork + exec child does.
 */
#define SPAWN_BYTES 100000
extern char **environ;

static int spawnwrite_child(int fd, int sync)
{
	static unsigned char data[SPAWN_BYTES];
	char c;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = pattern(i);
	if (read(sync, &c, 1) != 1)
		return 2;
	return write_full(fd, data, sizeof(data)) == 0 ? 0 : 1;   /* exit, no close() */
}

/* The socket is stdin and stdout (file actions); the original fd is gone. */
static int stdio_child(int orig)
{
	char b[4];
	if (fcntl(orig, F_GETFD) >= 0 || errno != EBADF)
		return 4;
	if (write(1, "dup2", 4) != 4 || read_full(0, b, 4) < 0 || memcmp(b, "dup2", 4))
		return 1;
	return 0;
}

static int popen_child(int fd)
{
	char b[5];
	if (send(fd, "popen", 5, 0) != 5 || read_full(fd, b, 5) < 0)
		return 1;
	return write_full(1, b, 5) == 0 ? 0 : 1;
}

static const char *status_name(int r, int st)
{
	if (r != 0)
		return ename(r);
	if (!WIFEXITED(st))
		return "killed";
	switch (WEXITSTATUS(st)) {
	case 0: return "ok";
	case 3: return "EBADF";
	case 127: return "no_exec";
	default: return "bad";
	}
}

static const char *spawn_wait(const char *path, char *const argv[], char *const envp[])
{
	pid_t pid;
	int st = -1, r = posix_spawn(&pid, path, NULL, NULL, argv, envp);
	if (r == 0)
		waitpid(pid, &st, 0);
	return status_name(r, st);
}

static void check_spawn(void)
{
	char arg[16], arg2[16], self[PATH_MAX], cmd[PATH_MAX + 64];
	ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (sl <= 0)
		die("readlink");
	self[sl] = '\0';

	/* inherited echo connection, used by the child then by us */
	int fd = tcp_to(0);
	snprintf(arg, sizeof(arg), "%d", fd);
	report("spawn_inherit",
	       spawn_wait("/proc/self/exe", (char *const[]){ "sockcheck", "execchild", arg, NULL },
			  environ));
	char b[8];
	int ok = send(fd, "after", 5, 0) == 5 && read_full(fd, b, 5) == 0 && !memcmp(b, "after", 5);
	report("spawn_parent_after", ok ? "ok" : "bad");

	/* file actions: the socket becomes stdin and stdout, its fd closed */
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fd, 0);
	posix_spawn_file_actions_adddup2(&fa, fd, 1);
	posix_spawn_file_actions_addclose(&fa, fd);
	{
		pid_t pid;
		int st = -1, r = posix_spawn(&pid, "/proc/self/exe", &fa, NULL,
					     (char *const[]){ "sockcheck", "stdiochild", arg, NULL },
					     environ);
		if (r == 0)
			waitpid(pid, &st, 0);
		report("spawn_dup2", r == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 4 ?
			   "orig_open" : status_name(r, st));
	}
	posix_spawn_file_actions_destroy(&fa);
	ok = send(fd, "again", 5, 0) == 5 && read_full(fd, b, 5) == 0 && !memcmp(b, "again", 5);
	report("spawn_dup2_parent_after", ok ? "ok" : "bad");

	/* system(): through /bin/sh, which execs us */
	snprintf(cmd, sizeof(cmd), "exec '%s' execchild %d", self, fd);
	int st = system(cmd);
	report("system_inherit", status_name(0, st));
	ok = send(fd, "later", 5, 0) == 5 && read_full(fd, b, 5) == 0 && !memcmp(b, "later", 5);
	report("system_parent_after", ok ? "ok" : "bad");

	/* popen(): the child talks on the socket, prints the echo */
	snprintf(cmd, sizeof(cmd), "exec '%s' popenchild %d", self, fd);
	FILE *p = popen(cmd, "r");
	char pb[16] = { 0 };
	size_t pn = p ? fread(pb, 1, sizeof(pb) - 1, p) : 0;
	st = p ? pclose(p) : -1;
	report("popen_read", p && pn == 5 && !memcmp(pb, "popen", 5) && WIFEXITED(st) &&
				     WEXITSTATUS(st) == 0 ? "ok" : "bad");
	ok = send(fd, "final", 5, 0) == 5 && read_full(fd, b, 5) == 0 && !memcmp(b, "final", 5);
	report("popen_parent_after", ok ? "ok" : "bad");
	close(fd);

	/* the parent closes first; the child's bytes still all arrive, and
	 * its exit closes the connection */
	uint16_t port;
	int l = listener(&port), sync[2];
	fd = tcp_to(8);
	if (pipe(sync) < 0 || write_full(fd, &port, sizeof(port)) < 0)
		die("spawn_release setup");
	snprintf(arg, sizeof(arg), "%d", fd);
	snprintf(arg2, sizeof(arg2), "%d", sync[0]);
	pid_t pid;
	int r = posix_spawn(&pid, "/proc/self/exe", NULL, NULL,
			    (char *const[]){ "sockcheck", "spawnwrite", arg, arg2, NULL }, environ);
	close(fd);
	if (r == 0 && write(sync[1], "g", 1) != 1)
		die("spawn_release sync");
	const char *res = r == 0 ? watcher_count(l, SPAWN_BYTES) : ename(r);
	st = -1;
	if (r == 0)
		waitpid(pid, &st, 0);
	report("spawn_release", res);
	report("spawn_release_child", status_name(r, st));
	close(sync[0]);
	close(sync[1]);

	/* close-on-exec: gone in the child; our close then ends it */
	fd = tcp_to(8);
	if (write_full(fd, &port, sizeof(port)) < 0 || write_full(fd, "abc", 3) < 0)
		die("spawn_cloexec setup");
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	snprintf(arg, sizeof(arg), "%d", fd);
	report("spawn_cloexec",
	       spawn_wait("/proc/self/exe", (char *const[]){ "sockcheck", "execchild", arg, NULL },
			  environ));
	close(fd);
	report("spawn_cloexec_closed", watcher_count(l, 3));

	/* a child that never loads the shim (empty environment) holds the
	 * socket until it exits, then our close ends it */
	fd = tcp_to(8);
	if (write_full(fd, &port, sizeof(port)) < 0 || write_full(fd, "abcd", 4) < 0)
		die("spawn_plain setup");
	{
		int rr = posix_spawn(&pid, "/bin/true", NULL, NULL, (char *const[]){ "true", NULL },
				     (char *const[]){ NULL });
		st = -1;
		if (rr == 0)
			waitpid(pid, &st, 0);
		report("spawn_plain", status_name(rr, st));
	}
	close(fd);
	report("spawn_plain_closed", watcher_count(l, 4));
	close(l);

	/* More children than the table of 1024 processes could hold at once
	 * if their places were not given back (each waited for before the
	 * next); a spawn, system or popen child that uses the socket every
	 * 50th. */
	const char *many = "ok";
	fd = tcp_to(0);
	snprintf(arg, sizeof(arg), "%d", fd);
	for (int i = 0; i < 1100 && !strcmp(many, "ok"); i++) {
		many = spawn_wait("/bin/true", (char *const[]){ "true", NULL },
				  (char *const[]){ NULL });
		if (strcmp(many, "ok") || i % 50 != 0)
			continue;
		if (i % 150 == 0) {
			many = spawn_wait("/proc/self/exe",
					  (char *const[]){ "sockcheck", "execchild", arg, NULL },
					  environ);
		} else if (i % 150 == 50) {
			snprintf(cmd, sizeof(cmd), "exec '%s' execchild %d", self, fd);
			many = status_name(0, system(cmd));
		} else {
			snprintf(cmd, sizeof(cmd), "exec '%s' popenchild %d", self, fd);
			p = popen(cmd, "r");
			pn = p ? fread(pb, 1, sizeof(pb) - 1, p) : 0;
			many = p && pclose(p) == 0 && pn == 5 ? "ok" : "popen_bad";
		}
	}
	report("spawn_many", many);
	ok = send(fd, "many", 4, 0) == 4 && read_full(fd, b, 4) == 0 && !memcmp(b, "many", 4);
	report("spawn_many_parent_after", ok ? "ok" : "bad");
	close(fd);
}

/* vfork + exec: the inherited socket works in the new image, and a
 * close-on-exec one the image did not get stays the parent's. */
static void check_vfork(void)
{
	int fd = tcp_to(0), cl = sk_socket(SOCK_STREAM | SOCK_CLOEXEC);
	union sk_addr a = sk_peer(0);
	char arg[16], b[5];
	if (cl < 0 || connect(cl, &a.sa, sk_len(&a)) < 0)
		die("vfork setup");
	snprintf(arg, sizeof(arg), "%d", fd);
	pid_t pid = vfork();
	if (pid == 0) {
		execl("/proc/self/exe", "sockcheck", "execchild", arg, (char *)NULL);
		_exit(127);
	}
	int st = -1;
	if (pid > 0)
		waitpid(pid, &st, 0);
	report("vfork_exec_inherit", pid < 0 ? ename(errno) : status_name(0, st));
	int ok = send(cl, "vfork", 5, 0) == 5 && read_full(cl, b, 5) == 0 && !memcmp(b, "vfork", 5);
	report("vfork_parent_cloexec", ok ? "ok" : "bad");
	ok = send(fd, "vfork", 5, 0) == 5 && read_full(fd, b, 5) == 0 && !memcmp(b, "vfork", 5);
	report("vfork_parent_after", ok ? "ok" : "bad");
	close(cl);
	close(fd);
}

static void check_fork(void)
{
	int fd = tcp_to(0);
	pid_t pid = fork();
	if (pid == 0) {
		char b[5];
		int ok = send(fd, "child", 5, 0) == 5 && read_full(fd, b, 5) == 0 &&
			 !memcmp(b, "child", 5);
		close(fd);
		_exit(ok ? 0 : 1);
	}
	int st = -1;
	waitpid(pid, &st, 0);
	report("fork_child", WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "ok" : "bad");
	char b[6];
	int ok = send(fd, "parent", 6, 0) == 6 && read_full(fd, b, 6) == 0 &&
		 !memcmp(b, "parent", 6);
	report("fork_parent", ok ? "ok" : "bad");
	close(fd);

	check_fork_release(false);
	check_fork_release(true);
	check_fork_kill_waited();
	check_fork_kill_idle();
	check_fork_many();
	check_exec();
	check_spawn();
	check_vfork();
}

/* The echo's source is the peer's address as the socket's family names
 * it (run6 "mapped": ::ffff:PEER4), at the echo's port. */
static bool udp_from_peer(const union sk_addr *from, socklen_t fl, const union sk_addr *peer)
{
	if (fl != sk_len(peer) || from->sa.sa_family != peer->sa.sa_family ||
	    sk_port(from) != sk_port(peer))
		return false;
	if (peer->sa.sa_family == AF_INET)
		return from->v4.sin_addr.s_addr == peer->v4.sin_addr.s_addr;
	return !memcmp(&from->v6.sin6_addr, &peer->v6.sin6_addr, sizeof(struct in6_addr));
}

static void check_udp(void)
{
	int u = sk_socket(SOCK_DGRAM);
	union sk_addr a = sk_peer(0), from;
	socklen_t fl = sizeof(from);
	char b[64];
	struct timeval tv = { 5, 0 };
	setsockopt(u, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	report_rc("udp_recv_dontwait", recv(u, b, sizeof(b), MSG_DONTWAIT));
	report_rc("udp_sendto", sendto(u, "dgram", 5, 0, &a.sa, sk_len(&a)));
	ssize_t r = recvfrom(u, b, sizeof(b), 0, &from.sa, &fl);
	report("udp_echo", r == 5 && !memcmp(b, "dgram", 5) && udp_from_peer(&from, fl, &a) ?
	       "ok" : "bad");
	report_rc("udp_connect", connect(u, &a.sa, sk_len(&a)));
	send(u, "two", 3, 0);
	r = recv(u, b, sizeof(b), 0);
	report("udp_connected_echo", r == 3 ? "ok" : "bad");
	fl = sizeof(from);
	report("udp_peername", getpeername(u, &from.sa, &fl) < 0 ? ename(errno) :
	       udp_from_peer(&from, fl, &a) ? "ok" : "bad");
	close(u);
}

/*
 * stdio on a socket: an image exec'd with the connection as stdin and
 * stdout (inetd style) writes a line, reads its echo back with fgets, and
 * leaves a last line in stdout's buffer for exit to flush; a process that
 * dup2s the connection onto stdout writes with printf; fdopen gives a
 * FILE on it.  The parent reads what the echo service sent back.
 */
static int stdio_exec_child(void)
{
	char line[64];
	printf("stdio-out\n");
	if (fflush(stdout) != 0 || fgets(line, sizeof(line), stdin) == NULL ||
	    strcmp(line, "stdio-out\n"))
		return 1;
	printf("bye %s", line);  /* flushed by exit */
	return 0;
}

static void check_stdio(void)
{
	int fd = tcp_to(0), st = -1;
	char b[32] = "";
	pid_t pid = fork();
	if (pid == 0) {
		if (dup2(fd, 0) < 0 || dup2(fd, 1) < 0)
			_exit(2);
		close(fd);
		execl("/proc/self/exe", "sockcheck", "stdioexec", (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	/* The echo of both lines: "stdio-out\n" went to the child's fgets. */
	report("stdio_exec", !WIFEXITED(st) || WEXITSTATUS(st) != 0 ? "child_failed" :
	       read_full(fd, b, 14) < 0 ? "short" : !memcmp(b, "bye stdio-out\n", 14) ? "ok" : "bad");

	pid = fork();
	if (pid == 0) {
		if (dup2(fd, 1) < 0)
			_exit(2);
		printf("inproc\n");
		_exit(fflush(stdout) == 0 ? 0 : 1);
	}
	waitpid(pid, &st, 0);
	memset(b, 0, sizeof(b));
	report("stdio_dup2", !WIFEXITED(st) || WEXITSTATUS(st) != 0 ? "child_failed" :
	       read_full(fd, b, 7) < 0 ? "short" : !memcmp(b, "inproc\n", 7) ? "ok" : "bad");

	FILE *f = fdopen(dup(fd), "r+");
	char line[32] = "";
	int ok = f && fprintf(f, "fdopen\n") == 7 && fflush(f) == 0 &&
		 fgets(line, sizeof(line), f) && !strcmp(line, "fdopen\n");
	report("stdio_fdopen", ok ? "ok" : f ? "bad" : ename(errno));
	if (f)
		fclose(f);
	close(fd);
}

int main(int argc, char **argv)
{
	if (argc == 3 && (!strcmp(argv[1], "peer") || !strcmp(argv[1], "peer6"))) {
		base = atoi(argv[2]);
		sk_family = argv[1][4] == '6' ? AF_INET6 : AF_INET;
		return run_peer();
	}
	if (argc == 2 && !strcmp(argv[1], "stdioexec"))
		return stdio_exec_child();
	if (argc == 3 && !strcmp(argv[1], "execchild"))
		return exec_child(atoi(argv[2]));
	if (argc == 4 && !strcmp(argv[1], "spawnwrite"))
		return spawnwrite_child(atoi(argv[2]), atoi(argv[3]));
	if (argc == 3 && !strcmp(argv[1], "stdiochild"))
		return stdio_child(atoi(argv[2]));
	if (argc == 3 && !strcmp(argv[1], "popenchild"))
		return popen_child(atoi(argv[2]));
	bool v6 = argc == 5 && !strcmp(argv[1], "run6");
	if (v6 ? inet_pton(AF_INET6, argv[2], &peer_ip6) != 1 ||
		 inet_pton(AF_INET, argv[3], &peer_ip) != 1 :
		 argc != 4 || strcmp(argv[1], "run") || inet_pton(AF_INET, argv[2], &peer_ip) != 1) {
		fprintf(stderr, "usage: sockcheck peer|peer6 BASEPORT | run PEERADDR BASEPORT |\n"
				"       run6 PEERADDR6 PEERADDR BASEPORT\n");
		return 2;
	}
	base = atoi(argv[argc - 1]);
	sk_family = v6 ? AF_INET6 : AF_INET;
	signal(SIGPIPE, SIG_IGN);
	/* SOCKCHECK_ONLY=opts: only the option checks (while working on them) */
	const char *only = getenv("SOCKCHECK_ONLY");
	if (only && !strcmp(only, "opts")) {
		check_opts();
		return 0;
	}
	lone_start();              /* before any socket: processes of their own */
	check_connect();
	check_kill_lone();         /* before closefrom() takes their pipes */
	check_stream();
	check_bulk();
	check_threads();
	check_readiness();
	check_epoll_thread_add();
	check_accept();
	check_backlog();
	check_identity();
	check_et_arrivals();
	check_signals();
	check_splice();
	check_closefrom();
	check_fork();
	check_stdio();
	check_udp();
	check_opts();
	if (v6 && !IN6_IS_ADDR_V4MAPPED(&peer_ip6))
		check_dualstack();
	return 0;
}
