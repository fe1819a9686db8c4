/*
 * Unit tests of the shim's interposition layer without LD_PRELOAD or a
 * daemon: the routing layer runs against the real libc (called directly)
 * and a fake stack whose readiness the test sets.  Covers the fd table
 * (reserved kernel fds, dup/close reference counts), routing decisions and
 * loopback migration, poll and epoll (LT, ET, ONESHOT, mixed with kernel
 * fds, wake-up through the wake fd), and option handling.
 */
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "shadow.h"
#include "shim.h"

/* ---- fake stack ----------------------------------------------------- */

struct fsock {
	int type;
	_Atomic uint32_t mask;   /* readiness the test sets */
	int closed;
	int so_error;
	int listening;
	size_t rx;               /* bytes readable */
	int pending;             /* connections a listener can accept */
	_Atomic uint32_t arrivals; /* the backend's arrival count (poll's *gen) */
	const unsigned char *rxdata; /* if set, the rx bytes (else 'x') */
	unsigned char *tx;       /* if set, sends land here ... */
	size_t txlen, txroom;    /* ... while there is room */
	int slot;                /* what handle_slot says (exec/spawn) */
};

static int fake_live;
static int wake_efd = -1;
static int waiters_armed;

static int f_attach(void) { return 0; }
static int next_slot = 1;
static int f_socket(int domain, int type, void **h)
{
	(void)domain;
	struct fsock *s = calloc(1, sizeof(*s));
	s->type = type;
	s->slot = next_slot++;
	atomic_store(&s->mask, POLLOUT);
	*h = s;
	fake_live++;
	return 0;
}
static int f_bind(void *h, const struct sockaddr *sa, socklen_t len)
{ (void)h; (void)sa; (void)len; return 0; }
static int f_listen(void *h, int b) { (void)b; ((struct fsock *)h)->listening = 1; return 0; }
static int f_socket(int domain, int type, void **h);
static int f_accept(void *h, void **nh, struct sockaddr *sa, socklen_t *len)
{
	(void)sa; (void)len;
	struct fsock *s = h;
	if (!s->pending)
		return -EAGAIN;
	if (--s->pending == 0)
		atomic_fetch_and(&s->mask, ~(uint32_t)POLLIN);
	return f_socket(AF_INET, SOCK_STREAM, nh);
}
static int f_connect(void *h, const struct sockaddr *sa, socklen_t len)
{ (void)h; (void)sa; (void)len; return -EINPROGRESS; }
static int f_so_error(void *h)
{
	struct fsock *s = h;
	int e = s->so_error;
	s->so_error = 0;
	return -e;
}
static ssize_t f_sendmsg(void *h, const struct msghdr *m, int fl)
{
	(void)fl;
	struct fsock *s = h;
	if (!(atomic_load(&s->mask) & POLLOUT))
		return -EAGAIN;
	size_t n = m->msg_iov[0].iov_len;
	if (!s->tx)
		return (ssize_t)n;
	if (n > s->txroom)
		n = s->txroom;
	memcpy(s->tx + s->txlen, m->msg_iov[0].iov_base, n);
	s->txlen += n;
	s->txroom -= n;
	if (!s->txroom)
		atomic_fetch_and(&s->mask, ~(uint32_t)POLLOUT);
	return (ssize_t)n;
}
static ssize_t f_recvmsg(void *h, struct msghdr *m, int fl)
{
	struct fsock *s = h;
	if (!s->rx)
		return -EAGAIN;
	size_t n = m->msg_iov[0].iov_len < s->rx ? m->msg_iov[0].iov_len : s->rx;
	if (s->rxdata)
		memcpy(m->msg_iov[0].iov_base, s->rxdata, n);
	else
		memset(m->msg_iov[0].iov_base, 'x', n);
	if (fl & MSG_PEEK)
		return (ssize_t)n;
	s->rx -= n;
	if (s->rxdata)
		s->rxdata += n;
	if (!s->rx)
		atomic_fetch_and(&s->mask, ~(uint32_t)POLLIN);
	return (ssize_t)n;
}
static int f_shutdown(void *h, int how) { (void)h; (void)how; return 0; }
static int f_close(void *h)
{
	free(h);
	fake_live--;
	return 0;
}
static int f_setsockopt(void *h, int l, int n, const void *v, socklen_t len)
{ (void)h; (void)l; (void)n; (void)v; (void)len; return -ENOPROTOOPT; }
static int f_getsockopt(void *h, int l, int n, void *v, socklen_t *len)
{ (void)h; (void)l; (void)n; (void)v; (void)len; return -ENOPROTOOPT; }
static int f_getsockname(void *h, struct sockaddr *sa, socklen_t *len)
{
	(void)h;
	struct sockaddr_in in = { .sin_family = AF_INET };
	memcpy(sa, &in, sizeof(in));
	*len = sizeof(in);
	return 0;
}
static int f_nread(void *h) { return (int)((struct fsock *)h)->rx; }
static uint32_t f_poll(void *h, uint32_t *gen)
{
	if (gen)
		*gen = atomic_load(&((struct fsock *)h)->arrivals);
	return atomic_load(&((struct fsock *)h)->mask);
}
static void f_wait_begin(void) { waiters_armed++; }
static void f_wait_end(void)
{
	uint64_t v;
	if (wake_efd >= 0 && read(wake_efd, &v, sizeof(v)) < 0)
		(void)0; /* EAGAIN: nothing to drain */
}
static int f_wake_fd(void) { return wake_efd; }
static bool f_private_fd(int fd) { return fd >= 0 && fd == wake_efd; }

/* exec/spawn: one attachment "fake"; what spawn did is recorded. */
static int spawn_tok, spawn_holds, spawn_ends, adopted, adopted_slot;
static pid_t spawn_end_pid;
static int f_exec_export(char *buf, size_t n) { return snprintf(buf, n, "fake"); }
static int f_handle_slot(void *h, int *att, int *slot)
{
	*att = 0;
	*slot = ((struct fsock *)h)->slot;
	return 0;
}
static int f_exec_import(const char *desc) { return strcmp(desc, "fake") ? -EINVAL : 1; }
static void *f_handle_adopt(int att, int slot)
{
	void *h;
	if (att != 0 || f_socket(AF_INET, SOCK_STREAM, &h) < 0)
		return NULL;
	((struct fsock *)h)->slot = slot;
	adopted++;
	adopted_slot = slot;
	return h;
}
static void *f_spawn_begin(void) { return &spawn_tok; }
static int f_spawn_export(void *sp, char *buf, size_t n)
{
	return sp == &spawn_tok ? f_exec_export(buf, n) : -EINVAL;
}
static void f_spawn_hold(void *sp, void *h) { (void)h; spawn_holds += sp == &spawn_tok; }
static void f_spawn_end(void *sp, pid_t pid)
{
	spawn_ends += sp == &spawn_tok;
	spawn_end_pid = pid;
}

static const struct isosock_be fake_be = {
	.attach = f_attach, .socket = f_socket, .bind = f_bind, .listen = f_listen,
	.accept = f_accept, .connect = f_connect, .so_error = f_so_error,
	.sendmsg = f_sendmsg, .recvmsg = f_recvmsg, .shutdown = f_shutdown,
	.close = f_close, .setsockopt = f_setsockopt, .getsockopt = f_getsockopt,
	.getsockname = f_getsockname, .getpeername = f_getsockname, .nread = f_nread,
	.poll = f_poll, .wait = NULL, .wait_begin = f_wait_begin, .wait_end = f_wait_end,
	.wake_fd = f_wake_fd, .private_fd = f_private_fd,
	.exec_export = f_exec_export, .handle_slot = f_handle_slot,
	.exec_import = f_exec_import, .handle_adopt = f_handle_adopt,
	.spawn_begin = f_spawn_begin, .spawn_export = f_spawn_export,
	.spawn_hold = f_spawn_hold, .spawn_end = f_spawn_end,
};

static int libc_fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	long a = va_arg(ap, long);
	va_end(ap);
	return fcntl(fd, cmd, a);
}

static int libc_ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	va_start(ap, req);
	void *a = va_arg(ap, void *);
	va_end(ap);
	return ioctl(fd, req, a);
}

static int setup(void **state)
{
	(void)state;
	struct isosock_libc *l = &isosock_libc;
	l->socket = socket; l->bind = bind; l->listen = listen; l->accept = accept;
	l->accept4 = accept4; l->connect = connect; l->send = send; l->recv = recv;
	l->sendto = sendto; l->recvfrom = recvfrom; l->sendmsg = sendmsg;
	l->recvmsg = recvmsg; l->read = read; l->write = write; l->readv = readv;
	l->writev = writev; l->sendfile = sendfile; l->close = close;
	l->shutdown = shutdown; l->getsockname = getsockname;
	l->getpeername = getpeername; l->setsockopt = setsockopt;
	l->getsockopt = getsockopt; l->fcntl = libc_fcntl; l->ioctl = libc_ioctl;
	l->dup = dup; l->dup2 = dup2; l->dup3 = dup3; l->poll = poll; l->ppoll = ppoll;
	l->select = select; l->pselect = pselect; l->epoll_create = epoll_create;
	l->epoll_create1 = epoll_create1; l->epoll_ctl = epoll_ctl;
	l->epoll_wait = epoll_wait; l->epoll_pwait = epoll_pwait; l->fork = fork;
	isosock_be = &fake_be;
	isosock_cfg.spin_ns = 1000;
	wake_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	return wake_efd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	/* Leak check: every object and fake socket is gone. */
	assert_int_equal(isosock_file_live(), 0);
	assert_int_equal(fake_live, 0);
	close(wake_efd);
	return 0;
}

static struct fsock *fs_of(int fd)
{
	struct isosock_file *f = isosock_fd_get(fd);
	assert_non_null(f);
	struct fsock *s = f->h;
	isosock_file_put(f);
	return s;
}

/* ---- fd table ----------------------------------------------------------- */

static void test_reserved_fd(void **state)
{
	(void)state;
	int fd = isosock_r_socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_true(isosock_fd_get_peek(fd));
	/* The number is a real kernel socket of the same type. */
	int type = 0;
	socklen_t l = sizeof(type);
	assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l), 0);
	assert_int_equal(type, SOCK_STREAM);
	/* ... so a file opened now cannot collide with it. */
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_true(p[0] != fd && p[1] != fd);
	close(p[0]);
	close(p[1]);
	assert_int_equal(isosock_r_close(fd), 0);
	assert_false(isosock_fd_get_peek(fd));
	assert_int_equal(fcntl(fd, F_GETFD), -1); /* the kernel fd went too */
}

static void test_not_routed(void **state)
{
	(void)state;
	int fd = isosock_r_socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_false(isosock_fd_get_peek(fd));
	assert_int_equal(isosock_r_close(fd), 0);
	fd = isosock_r_socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	if (fd >= 0) {
		assert_false(isosock_fd_get_peek(fd));
		isosock_r_close(fd);
	}
}

static void test_dup_refcount(void **state)
{
	(void)state;
	int fd = isosock_r_socket(AF_INET, SOCK_STREAM, 0);
	int d1 = isosock_r_dup(fd, -1, 0, 0);
	int d2 = isosock_r_dup(fd, 0, 0, 4); /* F_DUPFD_CLOEXEC */
	int target = isosock_r_socket(AF_UNIX, SOCK_STREAM, 0);
	int d3 = isosock_r_dup(fd, target, 0, 1); /* dup2 over a kernel fd */
	assert_int_equal(d3, target);
	assert_true(d1 >= 0 && d2 >= 0);
	assert_int_equal(fcntl(d2, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	struct isosock_file *a = isosock_fd_get(fd), *b = isosock_fd_get(d3);
	assert_ptr_equal(a, b);
	isosock_file_put(a);
	isosock_file_put(b);
	assert_int_equal(isosock_file_live(), 1);
	isosock_r_close(fd);
	isosock_r_close(d1);
	isosock_r_close(d2);
	assert_int_equal(fake_live, 1); /* d3 still holds it */
	/* dup2 of a kernel fd over the last isostack fd closes the socket. */
	int u = isosock_r_socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(isosock_r_dup(u, d3, O_CLOEXEC, 2), d3);
	assert_false(isosock_fd_get_peek(d3));
	assert_int_equal(fake_live, 0);
	isosock_r_close(d3);
	isosock_r_close(u);
}

/* ---- routing -------------------------------------------------------------- */

static struct sockaddr_in sin4(const char *a, uint16_t port)
{
	struct sockaddr_in s = { .sin_family = AF_INET, .sin_port = htons(port) };
	inet_pton(AF_INET, a, &s.sin_addr);
	return s;
}

static void test_route_decisions(void **state)
{
	(void)state;
	assert_true(isosock_route_socket_wanted(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
	assert_true(isosock_route_socket_wanted(AF_INET, SOCK_DGRAM, IPPROTO_UDP));
	assert_false(isosock_route_socket_wanted(AF_INET, SOCK_STREAM, IPPROTO_SCTP));
	assert_true(isosock_route_socket_wanted(AF_INET6, SOCK_STREAM, 0));
	assert_true(isosock_route_socket_wanted(AF_INET6, SOCK_DGRAM, 0));
	assert_false(isosock_route_socket_wanted(AF_UNIX, SOCK_DGRAM, 0));
	assert_false(isosock_route_socket_wanted(AF_NETLINK, SOCK_RAW, 0));
	struct sockaddr_in lo = sin4("127.3.2.1", 80), any = sin4("0.0.0.0", 80),
			   net = sin4("198.18.0.2", 80);
	assert_int_equal(isosock_route_addr((struct sockaddr *)&lo, sizeof(lo), false),
			 ISOSOCK_ROUTE_KERNEL);
	assert_int_equal(isosock_route_addr((struct sockaddr *)&lo, sizeof(lo), true),
			 ISOSOCK_ROUTE_KERNEL);
	assert_int_equal(isosock_route_addr((struct sockaddr *)&any, sizeof(any), true),
			 ISOSOCK_ROUTE_BOTH);
	assert_int_equal(isosock_route_addr((struct sockaddr *)&any, sizeof(any), false),
			 ISOSOCK_ROUTE_KERNEL);
	assert_int_equal(isosock_route_addr((struct sockaddr *)&net, sizeof(net), false),
			 ISOSOCK_ROUTE_STACK);
	assert_int_equal(isosock_route_addr((struct sockaddr *)&net, 4, false),
			 ISOSOCK_ROUTE_KERNEL);
	/* IPv6: ::1 and ::ffff:127.x are the kernel's, :: binds both and
	 * connects to this host, ::ffff:198.18.0.2 and 2001:2::2 the stack's */
	static const struct { const char *a; int bind, conn; } v6[] = {
		{ "::1", ISOSOCK_ROUTE_KERNEL, ISOSOCK_ROUTE_KERNEL },
		{ "::ffff:127.0.0.1", ISOSOCK_ROUTE_KERNEL, ISOSOCK_ROUTE_KERNEL },
		{ "::", ISOSOCK_ROUTE_BOTH, ISOSOCK_ROUTE_KERNEL },
		{ "::ffff:0.0.0.0", ISOSOCK_ROUTE_BOTH, ISOSOCK_ROUTE_KERNEL },
		{ "::ffff:198.18.0.2", ISOSOCK_ROUTE_STACK, ISOSOCK_ROUTE_STACK },
		{ "2001:2::2", ISOSOCK_ROUTE_STACK, ISOSOCK_ROUTE_STACK },
	};
	for (size_t i = 0; i < sizeof(v6) / sizeof(v6[0]); i++) {
		struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = htons(80) };
		inet_pton(AF_INET6, v6[i].a, &s6.sin6_addr);
		assert_int_equal(isosock_route_addr((struct sockaddr *)&s6, sizeof(s6), true),
				 v6[i].bind);
		assert_int_equal(isosock_route_addr((struct sockaddr *)&s6, sizeof(s6), false),
				 v6[i].conn);
		assert_int_equal(isosock_route_addr((struct sockaddr *)&s6, 20, false),
				 ISOSOCK_ROUTE_KERNEL);   /* too short for a sockaddr_in6 */
	}
}

static void test_loopback_migrates(void **state)
{
	(void)state;
	int srv = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in lo = sin4("127.0.0.1", 0);
	socklen_t l = sizeof(lo);
	assert_int_equal(bind(srv, (struct sockaddr *)&lo, sizeof(lo)), 0);
	assert_int_equal(listen(srv, 4), 0);
	assert_int_equal(getsockname(srv, (struct sockaddr *)&lo, &l), 0);

	int fd = isosock_r_socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	struct isosock_file *f = isosock_fd_get(fd);
	assert_int_equal(isosock_r_setsockopt(f, fd, SOL_SOCKET, SO_KEEPALIVE, &one,
					      sizeof(one)), 0);
	int dupfd = isosock_r_dup(fd, -1, 0, 0);
	assert_int_equal(isosock_r_connect(f, fd, (struct sockaddr *)&lo, sizeof(lo)), 0);
	isosock_file_put(f);
	/* Both fds are plain kernel sockets now, the option survived. */
	assert_false(isosock_fd_get_peek(fd));
	assert_false(isosock_fd_get_peek(dupfd));
	assert_int_equal(fake_live, 0);
	int v = 0;
	l = sizeof(v);
	assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, &l), 0);
	assert_int_equal(v, 1);
	int c = accept(srv, NULL, NULL);
	assert_true(c >= 0);
	assert_int_equal(write(dupfd, "ab", 2), 2);
	char buf[2];
	assert_int_equal(read(c, buf, 2), 2);
	close(c);
	close(srv);
	isosock_r_close(fd);
	isosock_r_close(dupfd);
}

static void test_any_listener_dual(void **state)
{
	(void)state;
	int fd = isosock_r_socket(AF_INET, SOCK_STREAM, 0);
	struct isosock_file *f = isosock_fd_get(fd);
	int one = 1;
	isosock_r_setsockopt(f, fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in any = sin4("0.0.0.0", 0);
	/* The fake stack reports port 0; the shadow then binds an ephemeral
	 * port of its own, which is enough to see the kernel half work. */
	assert_int_equal(isosock_r_bind(f, fd, (struct sockaddr *)&any, sizeof(any)), 0);
	assert_int_equal(isosock_r_listen(f, fd, 8), 0);
	assert_true(atomic_load(&f->flags) & ISOSOCK_F_DUAL);
	/* The application still sees a blocking socket. */
	assert_int_equal(isosock_r_fcntl(f, fd, F_GETFL, 0) & O_NONBLOCK, 0);
	struct sockaddr_in k;
	socklen_t l = sizeof(k);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&k, &l), 0);
	int c = socket(AF_INET, SOCK_STREAM, 0);
	k.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(c, (struct sockaddr *)&k, sizeof(k)), 0);
	/* A local client reaches the kernel half: poll says readable and
	 * a blocking accept returns it. */
	struct pollfd p = { .fd = fd, .events = POLLIN };
	assert_int_equal(isosock_p_ppoll(&p, 1, -1, NULL), 1);
	assert_true(p.revents & POLLIN);
	int a = isosock_r_accept(f, fd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(a >= 0);
	assert_false(isosock_fd_get_peek(a));
	/* Nothing more: non-blocking accept says EAGAIN. */
	isosock_r_fcntl(f, fd, F_SETFL, O_NONBLOCK);
	assert_int_equal(isosock_r_accept(f, fd, NULL, NULL, 0), -EAGAIN);
	isosock_file_put(f);
	close(a);
	close(c);
	isosock_r_close(fd);
}

/* ---- poll / epoll ------------------------------------------------------------ */

static void test_poll_mixed(void **state)
{
	(void)state;
	int fd = isosock_r_socket(AF_INET, SOCK_STREAM, 0);
	struct fsock *s = fs_of(fd);
	int p[2];
	assert_int_equal(pipe(p), 0);
	struct pollfd pf[2] = { { .fd = fd, .events = POLLIN }, { .fd = p[0], .events = POLLIN } };
	assert_int_equal(isosock_p_ppoll(pf, 2, 0, NULL), 0);
	assert_int_equal(isosock_p_ppoll(pf, 2, 5 * 1000000, NULL), 0); /* times out */
	assert_int_equal(write(p[1], "x", 1), 1);
	atomic_store(&s->mask, POLLIN | POLLOUT);
	assert_int_equal(isosock_p_ppoll(pf, 2, -1, NULL), 2);
	assert_int_equal(pf[0].revents, POLLIN);
	assert_int_equal(pf[1].revents, POLLIN);
	/* select sees the same. */
	fd_set r;
	FD_ZERO(&r);
	FD_SET(fd, &r);
	FD_SET(p[0], &r);
	int nfds = (fd > p[0] ? fd : p[0]) + 1;
	assert_int_equal(isosock_p_pselect(nfds, &r, NULL, NULL, 0, NULL), 2);
	assert_true(FD_ISSET(fd, &r) && FD_ISSET(p[0], &r));
	close(p[0]);
	close(p[1]);
	isosock_r_close(fd);
}

static void test_epoll_lt_et_oneshot(void **state)
{
	(void)state;
	int lt = isosock_r_socket(AF_INET, SOCK_STREAM, 0);
	int et = isosock_r_socket(AF_INET, SOCK_STREAM, 0);
	int os = isosock_r_socket(AF_INET, SOCK_STREAM, 0);
	int ep = isosock_e_create(EPOLL_CLOEXEC);
	assert_true(ep >= 0);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 1 };
	assert_int_equal(isosock_e_ctl(ep, EPOLL_CTL_ADD, lt, &ev), 0);
	assert_int_equal(isosock_e_ctl(ep, EPOLL_CTL_ADD, lt, &ev), -EEXIST);
	ev = (struct epoll_event){ .events = EPOLLIN | EPOLLET, .data.u64 = 2 };
	assert_int_equal(isosock_e_ctl(ep, EPOLL_CTL_ADD, et, &ev), 0);
	ev = (struct epoll_event){ .events = EPOLLIN | EPOLLONESHOT, .data.u64 = 3 };
	assert_int_equal(isosock_e_ctl(ep, EPOLL_CTL_ADD, os, &ev), 0);
	assert_true(isosock_e_is_emulated(ep));

	struct epoll_event out[8];
	assert_int_equal(isosock_e_wait(ep, out, 8, 0, NULL), 0);
	atomic_store(&fs_of(lt)->mask, POLLIN | POLLOUT);
	atomic_store(&fs_of(et)->mask, POLLIN | POLLOUT);
	atomic_store(&fs_of(os)->mask, POLLIN | POLLOUT);
	assert_int_equal(isosock_e_wait(ep, out, 8, -1, NULL), 3);
	/* Second wait: LT again, ET not (no new edge), ONESHOT disabled. */
	assert_int_equal(isosock_e_wait(ep, out, 8, 0, NULL), 1);
	assert_int_equal(out[0].data.u64, 1);
	assert_int_equal(out[0].events, EPOLLIN);
	/* ET: an I/O call that met EAGAIN rearms the edge. */
	struct isosock_file *f = isosock_fd_get(et);
	fs_of(et)->rx = 0;
	char b[4];
	struct iovec v = { b, sizeof(b) };
	struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1 };
	isosock_r_fcntl(f, et, F_SETFL, O_NONBLOCK);
	assert_int_equal(isosock_r_recvmsg(f, et, &m, 0), -EAGAIN);
	isosock_file_put(f);
	assert_int_equal(isosock_e_wait(ep, out, 8, 0, NULL), 2);
	/* ET: readiness dropping and coming back is an edge. */
	atomic_store(&fs_of(et)->mask, POLLOUT);
	assert_int_equal(isosock_e_wait(ep, out, 8, 0, NULL), 1);
	atomic_store(&fs_of(et)->mask, POLLIN | POLLOUT);
	assert_int_equal(isosock_e_wait(ep, out, 8, 0, NULL), 2);
	/* ET: a read that drains the socket makes the next arrival an edge,
	 * even though no scan saw it empty. */
	f = isosock_fd_get(et);
	fs_of(et)->rx = 4;
	assert_int_equal(isosock_e_wait(ep, out, 8, 0, NULL), 1); /* lt only */
	assert_int_equal(isosock_r_recvmsg(f, et, &m, 0), 4);
	atomic_store(&fs_of(et)->mask, POLLIN | POLLOUT); /* more arrived */
	isosock_file_put(f);
	assert_int_equal(isosock_e_wait(ep, out, 8, 0, NULL), 2);
	/* ONESHOT: MOD rearms. */
	ev = (struct epoll_event){ .events = EPOLLIN | EPOLLONESHOT, .data.u64 = 3 };
	assert_int_equal(isosock_e_ctl(ep, EPOLL_CTL_MOD, os, &ev), 0);
	assert_int_equal(isosock_e_wait(ep, out, 8, 0, NULL), 2);
	/* DEL, and close removes the rest. */
	assert_int_equal(isosock_e_ctl(ep, EPOLL_CTL_DEL, lt, NULL), 0);
	assert_int_equal(isosock_e_ctl(ep, EPOLL_CTL_DEL, lt, NULL), -ENOENT);
	assert_int_equal(isosock_e_wait(ep, out, 8, 0, NULL), 0);
	isosock_r_close(et);
	isosock_r_close(os);
	assert_int_equal(isosock_e_wait(ep, out, 8, 0, NULL), 0);
	isosock_r_close(lt);
	isosock_r_close(ep);
	assert_false(isosock_e_is_emulated(ep));
}

/* ET reports an edge per new event, never a repeat with nothing new (the
 * kernel's ep_poll_callback runs once per wake-up of the socket). */
static void test_epoll_et_no_repeat(void **state)
{
	(void)state;
	int fd = isosock_r_socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int l = isosock_r_socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int ep = isosock_e_create(0);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.u64 = 1 }, out[4];
	assert_int_equal(isosock_e_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
	struct fsock *s = fs_of(fd);
	struct isosock_file *f = isosock_fd_get(fd);
	char b[4];
	struct iovec v = { b, sizeof(b) };
	struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1 };

	/* 8 bytes arrive: one edge. */
	s->rx = 8;
	atomic_store(&s->mask, POLLIN | POLLOUT);
	assert_int_equal(isosock_e_wait(ep, out, 4, 0, NULL), 1);
	/* A read that leaves data: no edge. */
	assert_int_equal(isosock_r_recvmsg(f, fd, &m, 0), 4);
	assert_int_equal(isosock_e_wait(ep, out, 4, 0, NULL), 0);
	/* A send that meets a full socket says nothing about reading. */
	atomic_store(&s->mask, POLLIN);
	assert_int_equal(isosock_r_sendmsg(f, fd, &m, 0), -EAGAIN);
	assert_int_equal(isosock_e_wait(ep, out, 4, 0, NULL), 0);
	/* Drained, then new data without a wait in between: an edge. */
	assert_int_equal(isosock_r_recvmsg(f, fd, &m, 0), 4);
	s->rx = 4;
	atomic_store(&s->mask, POLLIN | POLLOUT);
	assert_int_equal(isosock_e_wait(ep, out, 4, 0, NULL), 1);
	assert_int_equal(isosock_e_wait(ep, out, 4, 0, NULL), 0);

	/* In and out: draining the input does not repeat POLLOUT. */
	ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
	assert_int_equal(isosock_e_ctl(ep, EPOLL_CTL_MOD, fd, &ev), 0);
	assert_int_equal(isosock_e_wait(ep, out, 4, 0, NULL), 1);
	assert_int_equal(out[0].events, EPOLLIN | EPOLLOUT);
	assert_int_equal(isosock_r_recvmsg(f, fd, &m, 0), 4);
	assert_int_equal(isosock_r_recvmsg(f, fd, &m, 0), -EAGAIN);
	assert_int_equal(isosock_e_wait(ep, out, 4, 0, NULL), 0);
	/* New data: an edge, reporting all that is ready (as the kernel). */
	s->rx = 4;
	atomic_store(&s->mask, POLLIN | POLLOUT);
	assert_int_equal(isosock_e_wait(ep, out, 4, 0, NULL), 1);
	assert_int_equal(out[0].events, EPOLLIN | EPOLLOUT);
	isosock_file_put(f);

	/* A listener with two connections: accepting one is no new edge;
	 * accepting the last, then a new arrival, is. */
	struct sockaddr_in a = sin4("198.18.0.1", 80);
	struct isosock_file *lf = isosock_fd_get(l);
	assert_int_equal(isosock_r_bind(lf, l, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(isosock_r_listen(lf, l, 8), 0);
	ev = (struct epoll_event){ .events = EPOLLIN | EPOLLET, .data.u64 = 2 };
	assert_int_equal(isosock_e_ctl(ep, EPOLL_CTL_ADD, l, &ev), 0);
	struct fsock *ls = fs_of(l);
	ls->pending = 2;
	atomic_store(&ls->mask, POLLIN);
	assert_int_equal(isosock_e_wait(ep, out, 4, 0, NULL), 1);
	int c1 = isosock_r_accept(lf, l, NULL, NULL, 0);
	assert_true(c1 >= 0);
	assert_int_equal(isosock_e_wait(ep, out, 4, 0, NULL), 0);
	int c2 = isosock_r_accept(lf, l, NULL, NULL, 0);
	assert_true(c2 >= 0);
	ls->pending = 1;
	atomic_store(&ls->mask, POLLIN);
	assert_int_equal(isosock_e_wait(ep, out, 4, 0, NULL), 1);
	assert_int_equal(out[0].data.u64, 2);
	isosock_file_put(lf);
	isosock_r_close(c1);
	isosock_r_close(c2);
	isosock_r_close(l);
	isosock_r_close(fd);
	isosock_r_close(ep);
}

/* ET and a socket that stays readable: every arrival is an edge (the
 * kernel's sk_data_ready requeues the item each time), none without one. */
static void test_epoll_et_each_arrival(void **state)
{
	(void)state;
	int fd = isosock_r_socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int l = isosock_r_socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int ep = isosock_e_create(0);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.u64 = 1 }, out[4];
	assert_int_equal(isosock_e_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
	struct fsock *s = fs_of(fd);
	struct isosock_file *f = isosock_fd_get(fd);
	char b[4];
	struct iovec v = { b, sizeof(b) };
	struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1 };

	/* Segment 1, then segment 2 without reading: two edges. */
	s->rx = 4;
	atomic_store(&s->arrivals, 4);
	atomic_store(&s->mask, POLLIN | POLLOUT);
	assert_int_equal(isosock_e_wait(ep, out, 4, 0, NULL), 1);
	assert_int_equal(out[0].events, EPOLLIN);
	assert_int_equal(isosock_e_wait(ep, out, 4, 0, NULL), 0);
	s->rx = 8;
	atomic_fetch_add(&s->arrivals, 4);
	assert_int_equal(isosock_e_wait(ep, out, 4, 0, NULL), 1);
	assert_int_equal(out[0].events, EPOLLIN);
	/* A read that leaves data is no arrival. */
	assert_int_equal(isosock_r_recvmsg(f, fd, &m, 0), 4);
	assert_int_equal(isosock_e_wait(ep, out, 4, 0, NULL), 0);
	/* Two arrivals between waits: one edge. */
	s->rx = 12;
	atomic_fetch_add(&s->arrivals, 4);
	atomic_fetch_add(&s->arrivals, 4);
	assert_int_equal(isosock_e_wait(ep, out, 4, 0, NULL), 1);
	assert_int_equal(isosock_e_wait(ep, out, 4, 0, NULL), 0);

	/* In and out: an arrival reports all that is ready, as the kernel;
	 * an out-only interest is not woken by arrivals. */
	ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
	assert_int_equal(isosock_e_ctl(ep, EPOLL_CTL_MOD, fd, &ev), 0);
	assert_int_equal(isosock_e_wait(ep, out, 4, 0, NULL), 1);
	assert_int_equal(isosock_e_wait(ep, out, 4, 0, NULL), 0);
	atomic_fetch_add(&s->arrivals, 1);
	assert_int_equal(isosock_e_wait(ep, out, 4, 0, NULL), 1);
	assert_int_equal(out[0].events, EPOLLIN | EPOLLOUT);
	ev.events = EPOLLOUT | EPOLLET;
	assert_int_equal(isosock_e_ctl(ep, EPOLL_CTL_MOD, fd, &ev), 0);
	assert_int_equal(isosock_e_wait(ep, out, 4, 0, NULL), 1);
	atomic_fetch_add(&s->arrivals, 1);
	assert_int_equal(isosock_e_wait(ep, out, 4, 0, NULL), 0);
	/* ONESHOT: the arrival after the shot stays silent until MOD. */
	ev.events = EPOLLIN | EPOLLET | EPOLLONESHOT;
	assert_int_equal(isosock_e_ctl(ep, EPOLL_CTL_MOD, fd, &ev), 0);
	assert_int_equal(isosock_e_wait(ep, out, 4, 0, NULL), 1);
	atomic_fetch_add(&s->arrivals, 1);
	assert_int_equal(isosock_e_wait(ep, out, 4, 0, NULL), 0);
	assert_int_equal(isosock_e_ctl(ep, EPOLL_CTL_DEL, fd, NULL), 0);
	isosock_file_put(f);

	/* A listener: each queued connection is an edge, an accept is not. */
	struct sockaddr_in a = sin4("198.18.0.1", 80);
	struct isosock_file *lf = isosock_fd_get(l);
	assert_int_equal(isosock_r_bind(lf, l, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(isosock_r_listen(lf, l, 8), 0);
	ev = (struct epoll_event){ .events = EPOLLIN | EPOLLET, .data.u64 = 2 };
	assert_int_equal(isosock_e_ctl(ep, EPOLL_CTL_ADD, l, &ev), 0);
	struct fsock *ls = fs_of(l);
	ls->pending = 1;
	atomic_store(&ls->arrivals, 1);
	atomic_store(&ls->mask, POLLIN);
	assert_int_equal(isosock_e_wait(ep, out, 4, 0, NULL), 1);
	assert_int_equal(isosock_e_wait(ep, out, 4, 0, NULL), 0);
	ls->pending = 2;
	atomic_store(&ls->arrivals, 2);
	assert_int_equal(isosock_e_wait(ep, out, 4, 0, NULL), 1);
	assert_int_equal(out[0].data.u64, 2);
	int c1 = isosock_r_accept(lf, l, NULL, NULL, 0);
	assert_true(c1 >= 0);
	assert_int_equal(isosock_e_wait(ep, out, 4, 0, NULL), 0);
	isosock_file_put(lf);
	isosock_r_close(c1);
	isosock_r_close(l);
	isosock_r_close(fd);
	isosock_r_close(ep);
}

struct waker {
	struct fsock *s;
};

static void *wake_later(void *arg)
{
	struct waker *w = arg;
	atomic_fetch_or(&w->s->mask, POLLIN);
	uint64_t one = 1;
	if (write(wake_efd, &one, sizeof(one)) != sizeof(one))
		abort();
	return NULL;
}

static void test_epoll_mixed_wakeup(void **state)
{
	(void)state;
	int fd = isosock_r_socket(AF_INET, SOCK_STREAM, 0);
	int p[2];
	assert_int_equal(pipe(p), 0);
	int ep = isosock_e_create(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
	assert_int_equal(isosock_e_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
	ev = (struct epoll_event){ .events = EPOLLIN, .data.fd = p[0] };
	assert_int_equal(isosock_e_ctl(ep, EPOLL_CTL_ADD, p[0], &ev), 0);
	/* Kernel side alone. */
	assert_int_equal(write(p[1], "x", 1), 1);
	struct epoll_event out[4];
	assert_int_equal(isosock_e_wait(ep, out, 4, -1, NULL), 1);
	assert_int_equal(out[0].data.fd, p[0]);
	char c;
	assert_int_equal(read(p[0], &c, 1), 1);
	/* Stack side, woken from another thread through the wake fd
	 * (whether the waiter was already asleep or not). */
	struct waker w = { fs_of(fd) };
	pthread_t t;
	pthread_create(&t, NULL, wake_later, &w);
	assert_int_equal(isosock_e_wait(ep, out, 4, -1, NULL), 1);
	assert_int_equal(out[0].data.fd, fd);
	pthread_join(t, NULL);
	close(p[0]);
	close(p[1]);
	isosock_r_close(fd);
	isosock_r_close(ep);
}

/* ---- options ------------------------------------------------------------------- */

/* close() drops a socket from every epoll set, as the kernel does; a new
 * socket that gets the same fd number before any wait is a new entry
 * (nginx: close a connection, accept the next onto that fd, ADD it). */
/* epoll_ctl's EBADF/EINVAL for the epoll fd, as the kernel's: the shim
 * skips asking the kernel only for a set it made and saw no close of. */
static void test_epoll_ctl_epfd(void **state)
{
	(void)state;
	int s = isosock_r_socket(AF_INET, SOCK_STREAM, 0);
	int ep = isosock_e_create(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 1 };
	int p[2];

	assert_true(s >= 0 && ep >= 0);
	assert_int_equal(isosock_e_ctl(ep, EPOLL_CTL_ADD, s, &ev), 0);
	int d = dup(ep);                        /* a set the shim did not make */
	assert_true(d >= 0);
	assert_int_equal(isosock_e_ctl(d, EPOLL_CTL_ADD, s, &ev), 0);
	assert_int_equal(isosock_r_close(d), 0);
	assert_int_equal(isosock_r_close(ep), 0);
	assert_int_equal(isosock_e_ctl(ep, EPOLL_CTL_ADD, s, &ev), -EBADF);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(p[0], ep);             /* the lowest free number again */
	assert_int_equal(isosock_e_ctl(p[0], EPOLL_CTL_ADD, s, &ev), -EINVAL);
	assert_int_equal(isosock_e_ctl(p[0], EPOLL_CTL_ADD, p[1], &ev), -EINVAL);
	assert_int_equal(isosock_e_ctl(s, EPOLL_CTL_ADD, p[1], &ev), -EINVAL);
	close(p[0]);
	close(p[1]);
	isosock_r_close(s);
}

static void test_epoll_fd_reuse(void **state)
{
	(void)state;
	int ep = isosock_e_create(EPOLL_CLOEXEC);
	int a = isosock_r_socket(AF_INET, SOCK_STREAM, 0);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 1 }, out[4];
	assert_true(ep >= 0 && a >= 0);
	assert_int_equal(isosock_e_ctl(ep, EPOLL_CTL_ADD, a, &ev), 0);
	assert_int_equal(isosock_r_close(a), 0);
	int b = isosock_r_socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(b, a);                 /* the lowest free number again */
	ev.data.u64 = 2;
	assert_int_equal(isosock_e_ctl(ep, EPOLL_CTL_ADD, b, &ev), 0);
	assert_int_equal(isosock_e_ctl(ep, EPOLL_CTL_ADD, b, &ev), -EEXIST);
	atomic_store(&fs_of(b)->mask, POLLIN);
	assert_int_equal(isosock_e_wait(ep, out, 4, 0, NULL), 1);
	assert_int_equal(out[0].data.u64, 2);   /* the new socket's data */
	/* MOD and DEL of a reused number see only the new registration. */
	assert_int_equal(isosock_r_close(b), 0);
	int c = isosock_r_socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(c, a);
	assert_int_equal(isosock_e_ctl(ep, EPOLL_CTL_MOD, c, &ev), -ENOENT);
	assert_int_equal(isosock_e_ctl(ep, EPOLL_CTL_DEL, c, NULL), -ENOENT);
	isosock_r_close(c);
	isosock_r_close(ep);
}

static void test_options(void **state)
{
	(void)state;
	int fd = isosock_r_socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct isosock_file *f = isosock_fd_get(fd);
	assert_int_equal(isosock_r_fcntl(f, fd, F_GETFL, 0) & O_NONBLOCK, O_NONBLOCK);
	int zero = 0;
	assert_int_equal(isosock_r_ioctl(f, fd, FIONBIO, &zero), 0);
	assert_int_equal(isosock_r_fcntl(f, fd, F_GETFL, 0) & O_NONBLOCK, 0);
	assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0); /* mirrored */
	/* Options the fake stack does not model keep the kernel's verdict. */
	int one = 1, v = 0;
	socklen_t l = sizeof(v);
	assert_int_equal(isosock_r_setsockopt(f, fd, SOL_SOCKET, SO_REUSEADDR, &one,
					      sizeof(one)), 0);
	assert_int_equal(isosock_r_getsockopt(f, fd, SOL_SOCKET, SO_REUSEADDR, &v, &l), 0);
	assert_int_equal(v, 1);
	assert_int_equal(isosock_r_getsockopt(f, fd, SOL_SOCKET, SO_TYPE, &v, &l), 0);
	assert_int_equal(v, SOCK_STREAM);
	assert_int_equal(isosock_r_setsockopt(f, fd, SOL_SOCKET, 9999, &one, sizeof(one)),
			 -ENOPROTOOPT);
	/* SO_ERROR is the stack's, read and cleared. */
	((struct fsock *)f->h)->so_error = ECONNREFUSED;
	assert_int_equal(isosock_r_getsockopt(f, fd, SOL_SOCKET, SO_ERROR, &v, &l), 0);
	assert_int_equal(v, ECONNREFUSED);
	assert_int_equal(isosock_r_getsockopt(f, fd, SOL_SOCKET, SO_ERROR, &v, &l), 0);
	assert_int_equal(v, 0);
	/* SO_RCVTIMEO: a blocking recv with nothing there gives EAGAIN. */
	struct timeval tv = { 0, 20000 };
	assert_int_equal(isosock_r_setsockopt(f, fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
					      sizeof(tv)), 0);
	char b[8];
	struct iovec iv = { b, sizeof(b) };
	struct msghdr m = { .msg_iov = &iv, .msg_iovlen = 1 };
	assert_int_equal(isosock_r_recvmsg(f, fd, &m, 0), -EAGAIN);
	/* FIONREAD is the stack's count. */
	((struct fsock *)f->h)->rx = 5;
	int n = 0;
	assert_int_equal(isosock_r_ioctl(f, fd, FIONREAD, &n), 0);
	assert_int_equal(n, 5);
	assert_int_equal(isosock_r_recvmsg(f, fd, &m, 0), 5);
	/* Non-blocking connect says EINPROGRESS. */
	struct sockaddr_in dst = sin4("198.18.0.2", 80);
	isosock_r_fcntl(f, fd, F_SETFL, O_NONBLOCK);
	assert_int_equal(isosock_r_connect(f, fd, (struct sockaddr *)&dst, sizeof(dst)),
			 -EINPROGRESS);
	isosock_file_put(f);
	isosock_r_close(fd);
}

/* ---- sendmmsg / recvmmsg / epoll_pwait2 / close_range ------------------- */

static void test_sendmmsg(void **state)
{
	(void)state;
	int fd = isosock_r_socket(AF_INET, SOCK_STREAM, 0);
	struct isosock_file *f = isosock_fd_get(fd);
	char b[3][8];
	struct iovec iv[3];
	struct mmsghdr mv[3];
	memset(mv, 0, sizeof(mv));
	for (int i = 0; i < 3; i++) {
		iv[i] = (struct iovec){ b[i], (size_t)(5 + i) };
		mv[i].msg_hdr.msg_iov = &iv[i];
		mv[i].msg_hdr.msg_iovlen = 1;
	}
	assert_int_equal(isosock_r_sendmmsg(f, fd, mv, 3, 0), 3);
	assert_int_equal(mv[0].msg_len, 5);
	assert_int_equal(mv[1].msg_len, 6);
	assert_int_equal(mv[2].msg_len, 7);
	assert_int_equal(isosock_r_sendmmsg(f, fd, mv, 0, 0), 0);
	/* Not writable: the first message fails, so the call does. */
	atomic_store(&fs_of(fd)->mask, 0);
	assert_int_equal(isosock_r_sendmmsg(f, fd, mv, 3, MSG_DONTWAIT), -EAGAIN);
	isosock_file_put(f);
	assert_int_equal(isosock_r_close(fd), 0);
}

static void mm_setup(struct mmsghdr *mv, struct iovec *iv, char (*b)[4], int n)
{
	memset(mv, 0, sizeof(*mv) * (size_t)n);
	for (int i = 0; i < n; i++) {
		iv[i] = (struct iovec){ b[i], 4 };
		mv[i].msg_hdr.msg_iov = &iv[i];
		mv[i].msg_hdr.msg_iovlen = 1;
	}
}

static void test_recvmmsg(void **state)
{
	(void)state;
	int fd = isosock_r_socket(AF_INET, SOCK_STREAM, 0);
	struct isosock_file *f = isosock_fd_get(fd);
	struct fsock *s = fs_of(fd);
	char b[4][4];
	struct iovec iv[4];
	struct mmsghdr mv[4];

	/* MSG_DONTWAIT: as many as there are, then the count. */
	mm_setup(mv, iv, b, 4);
	s->rx = 10;
	atomic_fetch_or(&s->mask, POLLIN);
	assert_int_equal(isosock_r_recvmmsg(f, fd, mv, 4, MSG_DONTWAIT, NULL), 3);
	assert_int_equal(mv[0].msg_len, 4);
	assert_int_equal(mv[1].msg_len, 4);
	assert_int_equal(mv[2].msg_len, 2);
	assert_memory_equal(b[2], "xx", 2);
	/* Nothing at all: the error of the first message. */
	assert_int_equal(isosock_r_recvmmsg(f, fd, mv, 4, MSG_DONTWAIT, NULL), -EAGAIN);

	/* MSG_WAITFORONE on a blocking socket: the first one is there, the
	 * rest would block: returns 1 instead of waiting. */
	s->rx = 4;
	atomic_fetch_or(&s->mask, POLLIN);
	assert_int_equal(isosock_r_recvmmsg(f, fd, mv, 4, MSG_WAITFORONE, NULL), 1);
	assert_int_equal(mv[0].msg_len, 4);

	/* A zero timeout is checked after the first datagram: one, and the
	 * time left written back. */
	struct timespec ts = { 0, 0 };
	s->rx = 8;
	atomic_fetch_or(&s->mask, POLLIN);
	assert_int_equal(isosock_r_recvmmsg(f, fd, mv, 4, 0, &ts), 1);
	assert_int_equal(ts.tv_sec, 0);
	assert_int_equal(ts.tv_nsec, 0);
	/* A long one leaves the batch to fill; time left is below it. */
	ts = (struct timespec){ 100, 0 };
	assert_int_equal(isosock_r_recvmmsg(f, fd, mv, 4, MSG_WAITFORONE, &ts), 1);
	assert_true(ts.tv_sec <= 100 && ts.tv_sec >= 99);
	ts = (struct timespec){ 0, 1000000000 };
	assert_int_equal(isosock_r_recvmmsg(f, fd, mv, 4, 0, &ts), -EINVAL);
	s->rx = 0;
	isosock_file_put(f);
	assert_int_equal(isosock_r_close(fd), 0);
}

static void test_epoll_pwait2(void **state)
{
	(void)state;
	int fd = isosock_r_socket(AF_INET, SOCK_STREAM, 0);
	int ep = isosock_e_create(EPOLL_CLOEXEC);
	assert_true(ep >= 0);
	struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = 42 }, out[4];
	assert_int_equal(isosock_e_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
	struct timespec zero = { 0, 0 }, bad = { 0, -1 }, us = { 0, 200000 };
	assert_int_equal(isosock_e_pwait2(ep, out, 4, &zero, NULL), 1);
	assert_int_equal(out[0].data.u64, 42);
	assert_int_equal(isosock_e_pwait2(ep, out, 4, &bad, NULL), -EINVAL);
	/* Not ready: a sub-millisecond timeout expires with 0. */
	atomic_store(&fs_of(fd)->mask, 0);
	assert_int_equal(isosock_e_pwait2(ep, out, 4, &us, NULL), 0);
	assert_int_equal(isosock_e_ctl(ep, EPOLL_CTL_DEL, fd, NULL), 0);

	/* A kernel-only epoll: libc's call, the raw syscall, and epoll_pwait. */
	int p[2];
	assert_int_equal(pipe(p), 0);
	ev = (struct epoll_event){ .events = EPOLLIN, .data.u64 = 7 };
	assert_int_equal(isosock_e_ctl(ep, EPOLL_CTL_ADD, p[0], &ev), 0);
	for (int way = 0; way < 2; way++) {
		isosock_libc.epoll_pwait2 = way ? epoll_pwait2 : NULL;
		assert_int_equal(isosock_e_pwait2(ep, out, 4, &us, NULL), 0);
		assert_int_equal(write(p[1], "a", 1), 1);
		assert_int_equal(isosock_e_pwait2(ep, out, 4, NULL, NULL), 1);
		assert_int_equal(out[0].data.u64, 7);
		char c;
		assert_int_equal(read(p[0], &c, 1), 1);
	}
	isosock_libc.epoll_pwait2 = NULL;
	close(p[0]);
	close(p[1]);
	assert_int_equal(isosock_r_close(ep), 0);
	assert_int_equal(isosock_r_close(fd), 0);
}

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static void test_close_range(void **state)
{
	(void)state;
	isosock_libc.close_range = close_range;
	int a = isosock_r_socket(AF_INET, SOCK_STREAM, 0);
	int b = isosock_r_socket(AF_INET, SOCK_DGRAM, 0);
	int p[2];
	assert_int_equal(pipe(p), 0);
	int top = p[1];
	assert_true(a > wake_efd && b > a && top > b);
	assert_int_equal(isosock_r_close_range(5, 4, 0), -EINVAL);
	assert_int_equal(isosock_r_close_range(a, top, 8), -EINVAL);

	/* CLOEXEC marks, closes nothing, the sockets stay mapped. */
	assert_int_equal(isosock_r_close_range(a, top, CLOSE_RANGE_CLOEXEC), 0);
	assert_true(isosock_fd_get_peek(a) && isosock_fd_get_peek(b));
	assert_int_equal(fcntl(a, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	assert_int_equal(fcntl(p[0], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	assert_int_equal(fake_live, 2);

	/* Close, over the stack's private wake fd: it stays open. */
	assert_int_equal(isosock_r_close_range(wake_efd, top, 0), 0);
	assert_true(fd_open(wake_efd));
	for (int fd = a; fd <= top; fd++) {
		assert_false(fd_open(fd));
		assert_false(isosock_fd_get_peek(fd));
	}
	assert_int_equal(fake_live, 0); /* the stack learnt of both */

	/* UNSHARE in a single-threaded process closes the same way. */
	a = isosock_r_socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(isosock_r_close_range(a, a, CLOSE_RANGE_UNSHARE), 0);
	assert_false(fd_open(a));
	assert_false(isosock_fd_get_peek(a));
	/* A range holding only the private fd closes nothing. */
	assert_int_equal(isosock_r_close_range(wake_efd, wake_efd, 0), 0);
	assert_true(fd_open(wake_efd));
	isosock_libc.close_range = NULL;
}

/* ---- splice, tee, vmsplice ------------------------------------------------ */

/* A connected kernel TCP pair over loopback: the reference for errno. */
static void kernel_pair(int *a, int *b)
{
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in in = sin4("127.0.0.1", 0);
	socklen_t len = sizeof(in);
	assert_int_equal(bind(l, (struct sockaddr *)&in, sizeof(in)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&in, &len), 0);
	*a = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(*a, (struct sockaddr *)&in, sizeof(in)), 0);
	*b = accept(l, NULL, NULL);
	assert_true(*b >= 0);
	close(l);
}

static ssize_t ksplice(int in, loff_t *oi, int out, loff_t *oo, size_t len, unsigned fl)
{
	ssize_t r = splice(in, oi, out, oo, len, fl);
	return r < 0 ? -errno : r;
}

static ssize_t ssplice(int in, loff_t *oi, int out, loff_t *oo, size_t len, unsigned fl)
{
	struct isosock_file *fi = isosock_fd_get(in), *fo = isosock_fd_get(out);
	ssize_t r = isosock_r_splice(fi, in, oi, fo, out, oo, len, fl);
	if (fi)
		isosock_file_put(fi);
	if (fo)
		isosock_file_put(fo);
	return r;
}

static unsigned char splice_pat(size_t i)
{
	return (unsigned char)(i * 31 + (i >> 8));
}

/* Argument checks and the non-blocking answers: the same call on a kernel
 * TCP socket and on an isostack socket gives the same result. */
static void test_splice_errors(void **state)
{
	(void)state;
	void (*old_pipe)(int) = signal(SIGPIPE, SIG_IGN);
	int k, kpeer;
	kernel_pair(&k, &kpeer);
	int s = isosock_r_socket(AF_INET, SOCK_STREAM, 0);
	int s2 = isosock_r_socket(AF_INET, SOCK_STREAM, 0);
	int p[2];
	assert_int_equal(pipe(p), 0);
	loff_t off = 0;
	struct {
		const char *what;
		int in_is_sock, out_is_sock; /* 1: the socket under test, 2: a second one */
		int pin, pout;               /* pipe end index otherwise */
		bool off_in, off_out;
		size_t len;
		unsigned flags;
		ssize_t want;
	} c[] = {
		{ "len 0", 1, 0, 0, 1, false, false, 0, 0, 0 },
		{ "bad flags", 1, 0, 0, 1, false, false, 8, 0x100, -EINVAL },
		{ "socket offset in", 1, 0, 0, 1, true, false, 8, 0, -EINVAL },
		{ "socket offset out", 0, 1, 0, 0, false, true, 8, 0, -EINVAL },
		{ "pipe offset out", 1, 0, 0, 1, false, true, 8, 0, -ESPIPE },
		{ "pipe offset in", 0, 1, 0, 0, true, false, 8, 0, -ESPIPE },
		{ "both offsets", 1, 0, 0, 1, true, true, 8, 0, -ESPIPE },
		{ "pipe read end as out", 1, 0, 0, 0, false, false, 8, 0, -EBADF },
		{ "pipe write end as in", 0, 1, 1, 0, false, false, 8, 0, -EBADF },
		{ "socket to socket", 1, 2, 0, 0, false, false, 8, 0, -EINVAL },
		{ "nb: empty pipe", 0, 1, 0, 0, false, false, 8, SPLICE_F_NONBLOCK, -EAGAIN },
	};
	for (unsigned i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		ssize_t got[2];
		for (int stack = 0; stack < 2; stack++) {
			int sock = stack ? s : k, other = stack ? s2 : kpeer;
			int in = c[i].in_is_sock == 1 ? sock : c[i].in_is_sock == 2 ? other : p[c[i].pin];
			int out = c[i].out_is_sock == 1 ? sock : c[i].out_is_sock == 2 ? other
							    : p[c[i].pout];
			got[stack] = (stack ? ssplice : ksplice)(in, c[i].off_in ? &off : NULL, out,
								 c[i].off_out ? &off : NULL, c[i].len,
								 c[i].flags);
		}
		if (got[0] != c[i].want || got[1] != c[i].want)
			fail_msg("%s: kernel %zd, isostack %zd, want %zd", c[i].what, got[0], got[1],
				 c[i].want);
	}
	/* Non-blocking socket, nothing to read: EAGAIN; the same for a
	 * full pipe with SPLICE_F_NONBLOCK even when there is data. */
	fcntl(k, F_SETFL, O_NONBLOCK);
	struct isosock_file *f = isosock_fd_get(s);
	isosock_r_fcntl(f, s, F_SETFL, O_NONBLOCK);
	isosock_file_put(f);
	assert_int_equal(ksplice(k, NULL, p[1], NULL, 8, 0), -EAGAIN);
	assert_int_equal(ssplice(s, NULL, p[1], NULL, 8, 0), -EAGAIN);
	fcntl(p[1], F_SETFL, O_NONBLOCK);
	char page[4096] = { 0 };
	while (write(p[1], page, sizeof(page)) > 0)
		;
	fcntl(p[1], F_SETFL, 0);
	assert_int_equal(write(kpeer, "abc", 3), 3);
	struct pollfd pk = { k, POLLIN, 0 };
	assert_int_equal(poll(&pk, 1, 5000), 1);
	fs_of(s)->rx = 3;
	atomic_fetch_or(&fs_of(s)->mask, POLLIN);
	assert_int_equal(ksplice(k, NULL, p[1], NULL, 8, SPLICE_F_NONBLOCK), -EAGAIN);
	assert_int_equal(ssplice(s, NULL, p[1], NULL, 8, SPLICE_F_NONBLOCK), -EAGAIN);
	assert_int_equal(fs_of(s)->rx, 3); /* nothing taken */
	/* No reader: EPIPE (SIGPIPE ignored here). */
	close(p[0]);
	assert_int_equal(ksplice(k, NULL, p[1], NULL, 8, SPLICE_F_NONBLOCK), -EPIPE);
	assert_int_equal(ssplice(s, NULL, p[1], NULL, 8, SPLICE_F_NONBLOCK), -EPIPE);
	close(p[1]);
	/* No writer, empty: 0 (end of file) both ways. */
	assert_int_equal(pipe(p), 0);
	close(p[1]);
	assert_int_equal(ksplice(p[0], NULL, k, NULL, 8, 0), 0);
	assert_int_equal(ssplice(p[0], NULL, s, NULL, 8, 0), 0);
	close(p[0]);

	/* tee and vmsplice with a socket: the kernel's errors. */
	assert_int_equal(pipe(p), 0);
	char b[4];
	struct iovec v = { b, sizeof(b) };
	assert_int_equal(tee(k, p[1], 8, 0), -1);
	assert_int_equal(isosock_r_tee(s, p[1], 8, 0), -errno);
	assert_int_equal(tee(p[0], k, 8, 0x100), -1);
	assert_int_equal(isosock_r_tee(p[0], s, 8, 0x100), -errno);
	assert_int_equal(tee(k, p[1], 0, 0), 0);
	assert_int_equal(isosock_r_tee(s, p[1], 0, 0), 0);
	assert_int_equal(vmsplice(k, &v, 1, 0), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(isosock_r_vmsplice(&v, 1, 0), -EBADF);
	assert_int_equal(vmsplice(k, &v, 0, 0), 0);
	assert_int_equal(isosock_r_vmsplice(&v, 0, 0), 0);
	assert_int_equal(vmsplice(k, &v, 1, 0x100), -1);
	assert_int_equal(isosock_r_vmsplice(&v, 1, 0x100), -errno);
	close(p[0]);
	close(p[1]);
	close(k);
	close(kpeer);
	isosock_r_close(s);
	isosock_r_close(s2);
	signal(SIGPIPE, old_pipe);
}

/* Bytes through: what moved is exact and nothing else is taken from
 * either side. */
static void test_splice_data(void **state)
{
	(void)state;
	enum { N = 100000 };
	static unsigned char src[N], got[N], tx[N];
	for (size_t i = 0; i < N; i++)
		src[i] = splice_pat(i);
	int s = isosock_r_socket(AF_INET, SOCK_STREAM, 0);
	struct fsock *fs = fs_of(s);
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(fcntl(p[1], F_GETPIPE_SZ), 65536);

	/* Socket -> pipe: all that is there, in one call. */
	fs->rxdata = src;
	fs->rx = 40000;
	atomic_fetch_or(&fs->mask, POLLIN);
	assert_int_equal(ssplice(s, NULL, p[1], NULL, N, 0), 40000);
	assert_int_equal(fs->rx, 0);
	assert_int_equal(read(p[0], got, N), 40000);
	assert_memory_equal(got, src, 40000);
	/* More than the pipe holds: it fills, the rest stays in the socket;
	 * the next call with SPLICE_F_NONBLOCK says EAGAIN and takes nothing. */
	fs->rxdata = src;
	fs->rx = N;
	atomic_fetch_or(&fs->mask, POLLIN);
	assert_int_equal(ssplice(s, NULL, p[1], NULL, N, 0), 65536);
	assert_int_equal(fs->rx, N - 65536);
	assert_int_equal(ssplice(s, NULL, p[1], NULL, N, SPLICE_F_NONBLOCK), -EAGAIN);
	assert_int_equal(fs->rx, N - 65536);
	size_t have = 0;
	while (have < 65536) {
		ssize_t r = read(p[0], got + have, N - have);
		assert_true(r > 0);
		have += (size_t)r;
	}
	assert_memory_equal(got, src, 65536);
	assert_int_equal(ssplice(s, NULL, p[1], NULL, N, 0), N - 65536);
	assert_int_equal(read(p[0], got, N), N - 65536);
	assert_memory_equal(got, src + 65536, N - 65536);

	/* Pipe -> socket: what the socket takes, the pipe keeps the rest. */
	fs->tx = tx;
	fs->txroom = N;
	assert_int_equal(write(p[1], src, 30000), 30000);
	assert_int_equal(ssplice(p[0], NULL, s, NULL, N, SPLICE_F_NONBLOCK), 30000);
	assert_int_equal(fs->txlen, 30000);
	assert_memory_equal(tx, src, 30000);
	struct isosock_file *f = isosock_fd_get(s);
	isosock_r_fcntl(f, s, F_SETFL, O_NONBLOCK);
	isosock_file_put(f);
	fs->txlen = 0;
	fs->txroom = 1000;
	assert_int_equal(write(p[1], src, 5000), 5000);
	assert_int_equal(ssplice(p[0], NULL, s, NULL, N, 0), 1000);
	assert_memory_equal(tx, src, 1000);
	int inpipe = 0;
	assert_int_equal(ioctl(p[0], FIONREAD, &inpipe), 0);
	assert_int_equal(inpipe, 4000);
	/* Socket full: EAGAIN, the pipe keeps everything. */
	assert_int_equal(ssplice(p[0], NULL, s, NULL, N, 0), -EAGAIN);
	assert_int_equal(ioctl(p[0], FIONREAD, &inpipe), 0);
	assert_int_equal(inpipe, 4000);
	assert_int_equal(read(p[0], got, N), 4000);
	assert_memory_equal(got, src + 1000, 4000);
	/* Empty pipe, SPLICE_F_NONBLOCK: EAGAIN. */
	fs->txroom = 1000;
	atomic_fetch_or(&fs->mask, POLLOUT);
	assert_int_equal(ssplice(p[0], NULL, s, NULL, N, SPLICE_F_NONBLOCK), -EAGAIN);
	fs->tx = NULL;
	fs->rxdata = NULL;
	close(p[0]);
	close(p[1]);
	isosock_r_close(s);
}

static int enosys_close_range(unsigned int first, unsigned int last, int flags)
{
	(void)first; (void)last; (void)flags;
	errno = ENOSYS;
	return -1;
}

/* In a child (closefrom takes everything from lowfd up, cmocka's state
 * included): 0, or the number of the first check that failed. */
static int closefrom_child(int a, int b, int ep, const int *p)
{
	if (isosock_r_closefrom(wake_efd) != 0)
		return 1;
	if (!fd_open(0) || !fd_open(1) || !fd_open(2) || !fd_open(wake_efd))
		return 2;
	int fds[] = { a, b, ep, p[0], p[1] };
	for (unsigned i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fd_open(fds[i]) || isosock_fd_get_peek(fds[i]))
			return 3;
	if (isosock_e_is_emulated(ep))
		return 4;
	if (fake_live != 0 || isosock_file_live() != 0) /* the stack learnt of both */
		return 5;
	return 0;
}

static void test_closefrom(void **state)
{
	(void)state;
	int a = isosock_r_socket(AF_INET, SOCK_STREAM, 0);
	int b = isosock_r_socket(AF_INET, SOCK_DGRAM, 0);
	int ep = isosock_e_create(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 1 };
	assert_int_equal(isosock_e_ctl(ep, EPOLL_CTL_ADD, a, &ev), 0);
	assert_true(isosock_e_is_emulated(ep));
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_true(a > wake_efd && b > a && p[1] > b);
	/* glibc's path (close_range), then a kernel without close_range. */
	int (*impl[])(unsigned int, unsigned int, int) = { close_range, enosys_close_range };
	for (int i = 0; i < 2; i++) {
		isosock_libc.close_range = impl[i];
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			_exit(closefrom_child(a, b, ep, p));
		int st = -1;
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	isosock_libc.close_range = close_range;
	/* From above every open fd: nothing to close, no error. */
	assert_int_equal(isosock_r_closefrom(p[1] + 1), 0);
	assert_true(fd_open(p[1]) && fd_open(wake_efd));
	isosock_libc.close_range = NULL;
	isosock_r_close(ep);
	isosock_r_close(a);
	isosock_r_close(b);
	close(p[0]);
	close(p[1]);
}

/*
 * spawn: the description lists the inheritable sockets (the child holds
 * them), and the image adopts fds by kernel socket: file actions moved the
 * socket to stdout and closed its fd; its dup stays; a close-on-exec
 * socket is not adopted.  Child exit codes: which check failed.
 */
static int spawn_child(const char *desc, int a, int b, int c, int slot)
{
	if (dup2(a, 1) != 1 || close(a) != 0)    /* what the file actions do */
		return 10;
	for (int fd = 0; fd < isosock_fd_limit(); fd++)
		(void)isosock_fd_remove(fd);        /* a new image: empty table */
	adopted = 0;
	isosock_r_exec_adopt(desc);
	struct isosock_file *f1 = isosock_fd_get(1), *fc = isosock_fd_get(c);
	struct isosock_file *fa = isosock_fd_get(a), *fb = isosock_fd_get(b);
	if (!f1 || !fc)
		return 1;
	if (f1 != fc)
		return 2;               /* one socket, one file */
	if (fa || fb)
		return 3;
	if (adopted != 1 || adopted_slot != slot)
		return 4;
	return 0;
}

static void test_spawn_adopt(void **state)
{
	(void)state;
	int a = isosock_r_socket(AF_INET, SOCK_STREAM, 0);
	int b = isosock_r_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int c = isosock_r_dup(a, -1, 0, 0);
	assert_true(a >= 0 && b >= 0 && c >= 0);
	struct isosock_file *f = isosock_fd_get(a);
	int att, slot;
	assert_non_null(f);
	assert_int_equal(f_handle_slot(f->h, &att, &slot), 0);
	isosock_file_put(f);
	void *sp = NULL;
	spawn_holds = spawn_ends = 0;
	char *var = isosock_r_spawn_prepare(&sp);
	assert_non_null(var);
	assert_ptr_equal(sp, &spawn_tok);
	assert_int_equal(spawn_holds, 2);        /* a and its dup c, not b */
	assert_int_equal(strncmp(var, "ISOSTACK_INHERIT=fake#", 22), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(spawn_child(var + 17, a, b, c, slot));
	int st = -1;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	isosock_r_spawn_done(sp, pid);
	assert_int_equal(spawn_ends, 1);
	assert_int_equal(spawn_end_pid, pid);
	free(var);
	isosock_r_close(a);
	isosock_r_close(b);
	isosock_r_close(c);
}

/* ---- light shadows ---------------------------------------------------------- */

/* In a forked child standing for the new image: the light fd is adopted
 * by its eventfd id, light again, with its inode. */
static int light_child(const char *desc, int fd, uint64_t ino)
{
	for (int i = 0; i < isosock_fd_limit(); i++)
		(void)isosock_fd_remove(i);
	isosock_r_exec_adopt(desc);
	/* Every eventfd has the same dev/ino: the id tells them apart (the
	 * wake fd is one too). */
	if (isosock_fd_get(wake_efd))
		return 4;
	struct isosock_file *f = isosock_fd_get(fd);
	if (!f)
		return 1;
	struct stat st;
	int r = !isosock_sh_light(f) ? 2 :
		isosock_sh_fstat(f, fd, &st) != 0 || st.st_ino != ino ? 3 : 0;
	isosock_file_put(f);
	return r;
}

static void test_light_shadow(void **state)
{
	(void)state;
	/* A blocking connect (the fake stack connects at once): the kernel
	 * socket becomes an eventfd at the same number,
	 * FD_CLOEXEC kept, options set before connect still answered. */
	int fd = isosock_r_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct isosock_file *f = isosock_fd_get(fd);
	int tos = 0x10, v = 0;
	socklen_t l = sizeof(v);
	assert_int_equal(isosock_r_setsockopt(f, fd, IPPROTO_IP, IP_TOS, &tos, sizeof(tos)), 0);
	struct sockaddr_in dst = sin4("198.18.0.2", 80);
	assert_int_equal(isosock_r_connect(f, fd, (struct sockaddr *)&dst, sizeof(dst)), 0);
	assert_true(isosock_sh_light(f));
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_false(S_ISSOCK(st.st_mode));        /* the kernel's view: an eventfd */
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(isosock_r_getsockopt(f, fd, IPPROTO_IP, IP_TOS, &v, &l), 0);
	assert_int_equal(v, 0x10);
	assert_int_equal(isosock_r_getsockopt(f, fd, SOL_SOCKET, SO_TYPE, &v, &l), 0);
	assert_int_equal(v, SOCK_STREAM);
	assert_int_equal(isosock_r_setsockopt(f, fd, SOL_SOCKET, 9999, &v, sizeof(v)),
			 -ENOPROTOOPT);
	struct timeval tv = { 0, 2000000 };
	assert_int_equal(isosock_r_setsockopt(f, fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)),
			 -EDOM);
	int q = -1;
	assert_int_equal(isosock_r_ioctl(f, fd, TIOCOUTQ, &q), 0);
	assert_int_equal(q, 0);
	/* What fstat reports: a socket with an inode of its own. */
	struct stat ss;
	assert_int_equal(isosock_sh_fstat(f, fd, &ss), 0);
	assert_true(S_ISSOCK(ss.st_mode));
	assert_true(ss.st_ino > 0xffffffffull);
	assert_int_equal(ss.st_blksize, 4096);
	isosock_file_put(f);

	/* accept: an eventfd from the start, with accept4's flags. */
	int lfd = isosock_r_socket(AF_INET, SOCK_STREAM, 0);
	struct isosock_file *lf = isosock_fd_get(lfd);
	assert_int_equal(isosock_r_listen(lf, lfd, 4), 0);
	((struct fsock *)lf->h)->pending = 1;
	int a = isosock_r_accept(lf, lfd, NULL, NULL, SOCK_NONBLOCK);
	assert_true(a >= 0);
	struct isosock_file *af = isosock_fd_get(a);
	assert_true(isosock_sh_light(af));
	assert_false(fcntl(a, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(isosock_r_fcntl(af, a, F_GETFL, 0) & O_NONBLOCK, O_NONBLOCK);
	struct stat as;
	assert_int_equal(isosock_sh_fstat(af, a, &as), 0);
	assert_true(as.st_ino != ss.st_ino && as.st_dev == ss.st_dev);
	isosock_file_put(af);
	isosock_file_put(lf);

	/* A dup made before connect: the kernel socket stays. */
	int g = isosock_r_socket(AF_INET, SOCK_STREAM, 0);
	int g2 = isosock_r_dup(g, -1, 0, 0);
	struct isosock_file *gf = isosock_fd_get(g);
	assert_int_equal(isosock_r_connect(gf, g, (struct sockaddr *)&dst, sizeof(dst)), 0);
	assert_false(isosock_sh_light(gf));
	isosock_file_put(gf);

	/* exec: the accepted fd (no FD_CLOEXEC) goes with its eventfd id. */
	char *var = isosock_r_exec_prepare();
	assert_non_null(var);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(light_child(var + 17, a, as.st_ino));
	int wst = -1;
	assert_int_equal(waitpid(pid, &wst, 0), pid);
	assert_true(WIFEXITED(wst));
	assert_int_equal(WEXITSTATUS(wst), 0);
	isosock_r_exec_failed();
	free(var);
	isosock_r_close(a);
	isosock_r_close(lfd);
	isosock_r_close(g);
	isosock_r_close(g2);
	isosock_r_close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reserved_fd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_routed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dup_refcount, setup, teardown),
		cmocka_unit_test_setup_teardown(test_route_decisions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loopback_migrates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_any_listener_dual, setup, teardown),
		cmocka_unit_test_setup_teardown(test_poll_mixed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_epoll_lt_et_oneshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_epoll_et_no_repeat, setup, teardown),
		cmocka_unit_test_setup_teardown(test_epoll_et_each_arrival, setup, teardown),
		cmocka_unit_test_setup_teardown(test_epoll_mixed_wakeup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_epoll_ctl_epfd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_epoll_fd_reuse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_options, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sendmmsg, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recvmmsg, setup, teardown),
		cmocka_unit_test_setup_teardown(test_epoll_pwait2, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_closefrom, setup, teardown),
		cmocka_unit_test_setup_teardown(test_splice_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_splice_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spawn_adopt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_light_shadow, setup, teardown),
	};
	return cmocka_run_group_tests_name("isosock", tests, NULL, NULL);
}
