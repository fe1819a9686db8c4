/*
 * The adapter from the routing layer's struct isosock_be to the front-end
 * core (isosock.h).  Every core socket is put in non-blocking mode at
 * creation: the routing layer does all waiting, through isosock_wait()
 * for one socket and isosock_wait_arm()/the wake fd for mixed sets.
 *
 * A handle is {attachment, socket id}: after fork() the child attaches
 * anew for the sockets it creates, while those it inherited stay on the
 * parent's attachment (the mapping is shared).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "isosock.h"
#include "shim.h"

struct handle {
	struct isosock_app *app;
	int s;
};

static pthread_mutex_t attach_lock = PTHREAD_MUTEX_INITIALIZER;
static struct isosock_app *app;
static _Atomic int state; /* 0 untried, 1 attached, < 0 -errno of the try */

static int be_attach(void)
{
	int st = atomic_load_explicit(&state, memory_order_acquire);
	if (st == 1)
		return 0;
	if (st < 0)
		return -ENETDOWN;
	pthread_mutex_lock(&attach_lock);
	st = atomic_load_explicit(&state, memory_order_relaxed);
	if (st == 0) {
		struct isosock_app *a = NULL;
		int r = isosock_app_attach(&a, NULL);
		if (r == 0) {
			app = a;
			st = 1;
		} else {
			st = r;
		}
		/* Pairs with the acquire above: app is set before state. */
		atomic_store_explicit(&state, st, memory_order_release);
	}
	pthread_mutex_unlock(&attach_lock);
	return st == 1 ? 0 : -ENETDOWN;
}

#define H(h) ((struct handle *)(h))

static int be_socket(int type, void **out)
{
	struct handle *h = malloc(sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->app = app;
	h->s = isosock_socket(app, AF_INET, type | SOCK_NONBLOCK, 0);
	if (h->s < 0) {
		int r = h->s;
		free(h);
		return r;
	}
	*out = h;
	return 0;
}

static int be_bind(void *h, const struct sockaddr *sa, socklen_t len)
{
	return isosock_bind(H(h)->app, H(h)->s, sa, len);
}

static int be_listen(void *h, int backlog)
{
	return isosock_listen(H(h)->app, H(h)->s, backlog);
}

static int be_accept(void *h, void **out, struct sockaddr *sa, socklen_t *len)
{
	struct handle *n = malloc(sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->app = H(h)->app;
	n->s = isosock_accept(n->app, H(h)->s, sa, len, SOCK_NONBLOCK);
	if (n->s < 0) {
		int r = n->s;
		free(n);
		return r;
	}
	*out = n;
	return 0;
}

static int be_connect(void *h, const struct sockaddr *sa, socklen_t len)
{
	return isosock_connect(H(h)->app, H(h)->s, sa, len);
}

static int be_so_error(void *h)
{
	int v = 0;
	socklen_t l = sizeof(v);
	int r = isosock_getsockopt(H(h)->app, H(h)->s, SOL_SOCKET, SO_ERROR, &v, &l);
	return r < 0 ? r : -v;
}

static ssize_t be_sendmsg(void *h, const struct msghdr *m, int flags)
{
	struct handle *x = H(h);
	flags |= MSG_DONTWAIT;
	if (m->msg_name && m->msg_namelen) {
		/* Datagram: one iovec in practice; gather otherwise. */
		if (m->msg_iovlen == 1)
			return isosock_sendto(x->app, x->s, m->msg_iov[0].iov_base,
					      m->msg_iov[0].iov_len, flags, m->msg_name,
					      m->msg_namelen);
	}
	ssize_t done = 0;
	for (size_t i = 0; i < m->msg_iovlen; i++) {
		const struct iovec *v = &m->msg_iov[i];
		if (v->iov_len == 0 && i + 1 < m->msg_iovlen)
			continue;
		/* Intermediate pieces with MSG_MORE: one SEND post for the
		 * whole vector (the core posts anyway when the ring fills). */
		int fl = flags | (i + 1 < m->msg_iovlen ? MSG_MORE : 0);
		ssize_t r = isosock_send(x->app, x->s, v->iov_base, v->iov_len, fl);
		if (r < 0)
			return done ? done : r;
		done += r;
		if ((size_t)r < v->iov_len)
			break;
	}
	return done;
}

static ssize_t be_recvmsg(void *h, struct msghdr *m, int flags)
{
	struct handle *x = H(h);
	flags |= MSG_DONTWAIT;
	m->msg_flags = 0;
	if (m->msg_iovlen == 1 || (m->msg_name && m->msg_namelen)) {
		void *b = m->msg_iovlen ? m->msg_iov[0].iov_base : NULL;
		size_t l = m->msg_iovlen ? m->msg_iov[0].iov_len : 0;
		if (m->msg_name) {
			socklen_t nl = m->msg_namelen;
			ssize_t r = isosock_recvfrom(x->app, x->s, b, l, flags, m->msg_name, &nl);
			if (r >= 0)
				m->msg_namelen = nl;
			return r;
		}
		m->msg_namelen = 0;
		return isosock_recv(x->app, x->s, b, l, flags);
	}
	m->msg_namelen = 0;
	if (flags & MSG_PEEK) {
		size_t total = 0;
		for (size_t i = 0; i < m->msg_iovlen; i++)
			total += m->msg_iov[i].iov_len;
		char *tmp = malloc(total ? total : 1);
		if (!tmp)
			return -ENOMEM;
		ssize_t r = isosock_recv(x->app, x->s, tmp, total, flags);
		size_t off = 0;
		for (size_t i = 0; r > 0 && i < m->msg_iovlen && off < (size_t)r; i++) {
			size_t c = m->msg_iov[i].iov_len;
			if (c > (size_t)r - off)
				c = (size_t)r - off;
			memcpy(m->msg_iov[i].iov_base, tmp + off, c);
			off += c;
		}
		free(tmp);
		return r;
	}
	ssize_t done = 0;
	for (size_t i = 0; i < m->msg_iovlen; i++) {
		const struct iovec *v = &m->msg_iov[i];
		if (v->iov_len == 0)
			continue;
		ssize_t r = isosock_recv(x->app, x->s, v->iov_base, v->iov_len, flags);
		if (r < 0)
			return done ? done : r;
		done += r;
		if ((size_t)r < v->iov_len)
			break;
	}
	return done;
}

static int be_shutdown(void *h, int how)
{
	return isosock_shutdown(H(h)->app, H(h)->s, how);
}

static int be_close(void *h)
{
	int r = isosock_close(H(h)->app, H(h)->s);
	free(h);
	return r;
}

static int be_setsockopt(void *h, int level, int name, const void *v, socklen_t len)
{
	return isosock_setsockopt(H(h)->app, H(h)->s, level, name, v, len);
}

static int be_getsockopt(void *h, int level, int name, void *v, socklen_t *len)
{
	return isosock_getsockopt(H(h)->app, H(h)->s, level, name, v, len);
}

static int be_getsockname(void *h, struct sockaddr *sa, socklen_t *len)
{
	return isosock_getsockname(H(h)->app, H(h)->s, sa, len);
}

static int be_getpeername(void *h, struct sockaddr *sa, socklen_t *len)
{
	return isosock_getpeername(H(h)->app, H(h)->s, sa, len);
}

static int be_nread(void *h)
{
	return isosock_nread(H(h)->app, H(h)->s);
}

static uint32_t be_poll(void *h, uint32_t *gen)
{
	if (gen)
		*gen = 0; /* the core has no event counter yet */
	int r = isosock_poll(H(h)->app, H(h)->s, POLLIN | POLLOUT | POLLRDHUP);
	return r < 0 ? POLLNVAL : (uint32_t)r;
}

static int be_wait(void *h, uint32_t events, int64_t timeout_ns)
{
	struct isosock_pollfd p = { .sock = H(h)->s, .events = (short)events };
	int r = isosock_wait(H(h)->app, &p, 1, timeout_ns);
	if (r < 0)
		return r;
	return r == 0 ? -ETIMEDOUT : 0;
}

static void be_wait_begin(void)
{
	if (atomic_load_explicit(&state, memory_order_acquire) == 1)
		isosock_wait_arm(app);
}

static void be_wait_end(void)
{
	if (atomic_load_explicit(&state, memory_order_acquire) == 1)
		isosock_wait_disarm(app);
}

static int be_wake_fd(void)
{
	if (atomic_load_explicit(&state, memory_order_acquire) != 1)
		return -1;
	return isosock_app_wake_fd(app);
}

static void be_atfork_child(void)
{
	/* Inherited handles keep the parent's attachment (shared mapping);
	 * this process attaches anew for its own sockets. */
	app = NULL;
	atomic_store_explicit(&state, 0, memory_order_relaxed);
	pthread_mutex_init(&attach_lock, NULL);
}

const struct isosock_be isosock_be_core = {
	.attach = be_attach,
	.socket = be_socket,
	.bind = be_bind,
	.listen = be_listen,
	.accept = be_accept,
	.connect = be_connect,
	.so_error = be_so_error,
	.sendmsg = be_sendmsg,
	.recvmsg = be_recvmsg,
	.shutdown = be_shutdown,
	.close = be_close,
	.setsockopt = be_setsockopt,
	.getsockopt = be_getsockopt,
	.getsockname = be_getsockname,
	.getpeername = be_getpeername,
	.nread = be_nread,
	.poll = be_poll,
	.wait = be_wait,
	.wait_begin = be_wait_begin,
	.wait_end = be_wait_end,
	.wake_fd = be_wake_fd,
	.atfork_child = be_atfork_child,
};
