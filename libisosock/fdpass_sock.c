/*
 * isostack sockets in SCM_RIGHTS messages on AF_UNIX sockets (docs/
 * sockets.md, "Passing sockets (SCM_RIGHTS)").  The fd of an isostack
 * socket is a kernel object standing in for it (route.c's top comment):
 * an eventfd for a connection, a kernel socket for a listener.  The
 * kernel passes that object; the socket behind it is a slot of our
 * application's segment, which another application cannot reach.  So:
 *   - before a sendmsg whose SCM_RIGHTS carry isostack sockets, each is
 *     registered with the daemon as in flight (isosock_handoff);
 *   - after a recvmsg, every fd received that could be one (an eventfd,
 *     or a TCP kernel socket) is offered to the daemon (isosock_claim);
 *     one that was in flight moves into our application and the fd is
 *     mapped to it, as accept() maps a new connection.
 * What the sender's copy does afterwards, and what fails how, is in the
 * docs.  Cost: one control-socket round trip per isostack fd sent and per
 * candidate fd received; nothing for messages without SCM_RIGHTS.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

#define L isosock_libc

/* How long a claim waits for the bytes the sender wrote to be
 * acknowledged (the daemon's -EAGAIN): a peer that stopped reading. */
#define CLAIM_WAIT_NS (5LL * 1000 * 1000 * 1000)

static bool has_rights(const struct msghdr *m)
{
	if (m == NULL || m->msg_control == NULL || m->msg_controllen < sizeof(struct cmsghdr))
		return false;
	for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)m); c != NULL;
	     c = CMSG_NXTHDR((struct msghdr *)m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			return true;
	return false;
}

/* Calls fn for every fd of the SCM_RIGHTS messages of m. */
static void each_fd(const struct msghdr *m, void (*fn)(int fd))
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)m); c != NULL;
	     c = CMSG_NXTHDR((struct msghdr *)m, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			fn(fd);
		}
	}
}

static void send_one(int fd)
{
	struct isosock_file *f = isosock_fd_get(fd);
	if (f == NULL)
		return;
	if (isosock_be && isosock_be->handoff && f->type == SOCK_STREAM) {
		int r = isosock_be->handoff(f->h, fd);
		/* The fd travels anyway, as it always did: a receiver that
		 * claims it gets -ENOENT and keeps the plain file. */
		if (r < 0 && r != -EINVAL)
			isosock_log("fd %d sent with SCM_RIGHTS: the daemon will not hand "
				    "its socket over (%s)", fd, strerror(-r));
	}
	isosock_file_put(f);
}

void isosock_r_fdpass_sending(const struct msghdr *m)
{
	if (has_rights(m))
		each_fd(m, send_one);
}

/* An fd that may stand for an isostack socket: an eventfd, or a kernel
 * TCP socket of AF_INET or AF_INET6 (what route.c makes them). */
static bool candidate(int fd, int *domain)
{
	char path[32], link[32];
	int type = 0;
	socklen_t len = sizeof(*domain);

	if (L.getsockopt(fd, SOL_SOCKET, SO_DOMAIN, domain, &len) == 0) {
		len = sizeof(type);
		return (*domain == AF_INET || *domain == AF_INET6) &&
		       L.getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
		       type == SOCK_STREAM;
	}
	*domain = 0;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return false;
	link[n] = '\0';
	return strcmp(link, "anon_inode:[eventfd]") == 0;
}

static int claim(int fd, void **nh, bool *listener, bool *inet6)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long wait_us = 100;; wait_us = wait_us < 10000 ? wait_us * 2 : wait_us) {
		int r = isosock_be->claim(fd, nh, listener, inet6);
		if (r != -EAGAIN)
			return r;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000000000LL + (t.tv_nsec - t0.tv_nsec) > CLAIM_WAIT_NS)
			return r;
		/* Waiting for the peer's ACKs of what the sender wrote: the
		 * daemon tells nobody when, so ask again, backing off. */
		struct timespec d = { 0, wait_us * 1000 };
		nanosleep(&d, NULL);
	}
}

static void recv_one(int fd)
{
	int domain;
	bool listener = false, inet6 = false;
	void *nh = NULL;

	if (isosock_fd_get_peek(fd) || !candidate(fd, &domain))
		return;
	/* A process that made no isostack socket yet attaches now, as its
	 * first socket() would. */
	int r = isosock_r_stack_ready();
	if (r == 0)
		r = claim(fd, &nh, &listener, &inet6);
	if (r < 0) {
		if (r != -ENOENT && r != -ENETDOWN)
			isosock_log("fd %d received with SCM_RIGHTS is an isostack socket the "
				    "daemon would not hand over (%s): it stays a plain %s", fd,
				    strerror(-r), domain ? "kernel socket" : "eventfd");
		return;
	}
	struct isosock_file *f = isosock_file_new(inet6 ? AF_INET6 : AF_INET, SOCK_STREAM, nh);
	if (f == NULL) {
		isosock_be->close(nh);
		return;
	}
	uint32_t flags = listener ? ISOSOCK_F_LISTEN : ISOSOCK_F_LIGHT;
	int fl = L.fcntl(fd, F_GETFL);
	int on = 0;
	socklen_t len = sizeof(on);
	/* A listener whose kernel socket listens too (bound to INADDR_ANY)
	 * goes on taking loopback connections there, as the sender's did. */
	if (listener && domain != 0 &&
	    L.getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on)
		flags |= ISOSOCK_F_DUAL;
	else if (fl >= 0 && (fl & O_NONBLOCK))
		flags |= ISOSOCK_F_NONBLOCK;
	atomic_fetch_or_explicit(&f->flags, flags, memory_order_relaxed);
	if (isosock_fd_install(fd, f) < 0)
		isosock_log("fd %d received with SCM_RIGHTS: past the fd table", fd);
	isosock_file_put(f);
}

void isosock_r_fdpass_received(struct msghdr *m, ssize_t r)
{
	if (r >= 0 && isosock_be && isosock_be->claim && has_rights(m))
		each_fd(m, recv_one);
}
