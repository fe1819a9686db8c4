/*
 * Creating and connecting sockets: socket(), O_NONBLOCK, bind, listen,
 * accept (with the children an abandoned ACCEPT left stashed) and
 * connect, TCP and UDP.
 */
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>

#include "core_internal.h"

/* ---- Sockets ------------------------------------------------------------------- */

int isosock_socket(struct isosock_app *app, int domain, int type, int protocol)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_SOCKET };
	struct fsock *ctl = &app->fs[0];
	struct isostack_shm_status st;
	int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
	int rc, s;

	if (domain != AF_INET && domain != AF_INET6)
		return -EAFNOSUPPORT;
	if (protocol < 0 || base < 0)
		return -EINVAL;
	if (!isosock_app_alive(app))
		return -ENETDOWN;
	isosock__reap_all(app);
	c.arg[0] = (uint64_t)domain;
	c.arg[1] = (uint64_t)base;
	c.arg[2] = (uint64_t)protocol;
	fs_lock(ctl);
	rc = isosock__call(app, 0, ctl, &c, &st, 0);
	fs_unlock(ctl);
	if (rc < 0)
		return rc == -ENETDOWN ? -ENETDOWN : rc;
	if (st.result < 0)
		return (int)st.result;
	s = (int)st.result;
	rc = isosock__fs_prepare(app, s);
	if (rc < 0)
		return rc == -EPROTO ? -EPROTO : -ENOBUFS;
	fs_lock(&app->fs[s]);
	isosock__fs_fresh(app, &app->fs[s], F_OPEN,
			  atomic_load_explicit(&app->socks[s].tx_prod, memory_order_relaxed),
			  atomic_load_explicit(&app->socks[s].rx_cons, memory_order_relaxed));
	app->fs[s].nonblock = (type & SOCK_NONBLOCK) != 0;
	app->fs[s].udp = base == SOCK_DGRAM;
	app->fs[s].inet6 = domain == AF_INET6;
	fs_unlock(&app->fs[s]);
	return s;
}

int isosock_set_nonblock(struct isosock_app *app, int s, bool on)
{
	struct fsock *f = fs_get(app, s);

	if (f == NULL)
		return -EBADF;
	fs_lock(f);
	f->nonblock = on;
	fs_unlock(f);
	return 0;
}

int isosock_get_nonblock(struct isosock_app *app, int s)
{
	struct fsock *f = fs_get(app, s);
	int v;

	if (f == NULL)
		return -EBADF;
	fs_lock(f);
	v = f->nonblock;
	fs_unlock(f);
	return v;
}

static int addr_to_cmd(struct isostack_shm_cmd *c, const struct sockaddr *addr, socklen_t len)
{
	if (addr == NULL)
		return -EFAULT;
	if (len < sizeof(sa_family_t))
		return -EINVAL;
	if (addr->sa_family == AF_INET6) {
		/* The stack checks the family against the socket's. 24 bytes
		 * (SIN6_LEN_RFC2133, no scope id) are enough, as for Linux. */
		if (len < sizeof(struct sockaddr_in6) - sizeof(uint32_t))
			return -EINVAL;
		len = len < sizeof(struct sockaddr_in6) ? len : sizeof(struct sockaddr_in6);
		c->arg[0] = len;
		memcpy(&c->arg[1], addr, len);
		return 0;
	}
	if (addr->sa_family != AF_INET)
		return -EAFNOSUPPORT;
	if (len < sizeof(struct sockaddr_in))
		return -EINVAL;
	len = sizeof(struct sockaddr_in);
	c->arg[0] = len;
	memcpy(&c->arg[1], addr, len);
	/* sin_zero must travel as zeros (the stack checks unused bytes) */
	memset((uint8_t *)&c->arg[1] + offsetof(struct sockaddr_in, sin_zero), 0,
	       sizeof(((struct sockaddr_in *)0)->sin_zero));
	return 0;
}

void isosock__addr_out(const struct isostack_shm_status *st, struct sockaddr *addr, socklen_t *len)
{
	socklen_t full = (socklen_t)st->arg[0];

	if (addr == NULL || len == NULL)
		return;
	if (full > ISOSTACK_SHM_ADDR_MAX)
		full = ISOSTACK_SHM_ADDR_MAX;
	memcpy(addr, &st->arg[1], *len < full ? *len : full);
	*len = full;
}

int isosock_bind(struct isosock_app *app, int s, const struct sockaddr *addr, socklen_t len)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_BIND };
	int rc = addr_to_cmd(&c, addr, len);

	return rc < 0 ? rc : isosock__simple_call(app, s, &c, NULL);
}

int isosock_listen(struct isosock_app *app, int s, int backlog)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_LISTEN };
	int rc;

	c.arg[0] = backlog < 0 ? 0 : (uint64_t)backlog;
	rc = isosock__simple_call(app, s, &c, NULL);
	if (rc == 0) {
		fs_lock(&app->fs[s]);
		app->fs[s].state = F_LISTEN;
		fs_unlock(&app->fs[s]);
	}
	return rc;
}

static int adopt_child(struct isosock_app *app, int s, int child, int flags)
{
	struct fsock *cf;

	int rc = isosock__fs_prepare(app, child);

	if (rc < 0)
		return rc == -EPROTO ? -EPROTO : -ENOBUFS;
	cf = &app->fs[child];
	fs_lock(cf);
	isosock__fs_fresh(app, cf, F_CONNECTED,
			  atomic_load_explicit(&app->socks[child].tx_prod, memory_order_relaxed),
			  atomic_load_explicit(&app->socks[child].rx_cons, memory_order_relaxed));
	cf->nonblock = (flags & SOCK_NONBLOCK) != 0;
	/* inherited from the listener, as the stack's ring pins are */
	cf->sndbuf = __atomic_load_n(&app->fs[s].sndbuf, __ATOMIC_RELAXED);
	cf->rcvbuf = __atomic_load_n(&app->fs[s].rcvbuf, __ATOMIC_RELAXED);
	cf->inet6 = app->fs[s].inet6;   /* fixed at socket(): no lock needed */
	fs_unlock(cf);
	return child;
}

int isosock_accept(struct isosock_app *app, int s, struct sockaddr *addr,
		   socklen_t *len, int flags)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_ACCEPT };
	struct fsock *f = fs_get(app, s);
	struct isostack_shm_status st;
	int rc;

	if (f == NULL)
		return -EBADF;
	isosock__reap_all(app);
	fs_lock(f);
	if (f->state != F_LISTEN) {
		fs_unlock(f);
		return f->state == F_FREE || f->state == F_CLOSING ? -EBADF : -EINVAL;
	}
	isosock__drain(app, s, f);
	if (f->nstash > 0) {
		int child = (int)f->stash[0];

		memmove(f->stash, f->stash + 1, --f->nstash * sizeof(f->stash[0]));
		fs_unlock(f);
		if (addr != NULL && len != NULL) {
			struct isostack_shm_cmd g = { .opcode = ISOSTACK_SHM_OP_GETPEERNAME };

			adopt_child(app, s, child, flags);
			if (isosock__simple_call(app, child, &g, &st) == 0)
				isosock__addr_out(&st, addr, len);
			return child;
		}
		return adopt_child(app, s, child, flags);
	}
	/*
	 * Non-blocking: ask only for a connection the backlog holds and no
	 * other thread's ACCEPT is already taking; the stack then answers at
	 * once.  The bound only guards against a reply that cannot come
	 * (a child taken by an ACCEPT abandoned on a signal); it is generous
	 * because a loaded machine may keep the stack core off the CPU for
	 * milliseconds, and giving up there turned POLLIN into EAGAIN.
	 */
	if (f->nonblock && f->incoming <= f->accepting) {
		fs_unlock(f);
		return isosock_app_alive(app) ? -EAGAIN : -ECONNABORTED;
	}
	if (f->nonblock)
		f->accepting++;
	rc = isosock__call(app, s, f, &c, &st,
			   f->nonblock ? now_ns() + ACCEPT_NB_WAIT_NS :
			   isosock__deadline_of(f->rcvtimeo_ns));
	if (f->nonblock && f->accepting > 0)
		f->accepting--;
	fs_unlock(f);
	if (rc < 0)
		return rc == -ENETDOWN ? -ECONNABORTED : rc;
	if (st.result < 0)
		return (int)st.result;
	isosock__addr_out(&st, addr, len);
	return adopt_child(app, s, (int)st.result, flags);
}

/* UDP connect: sets (or with AF_UNSPEC clears) the default peer. */
static int udp_connect(struct isosock_app *app, int s, struct fsock *f,
		       const struct sockaddr *addr, socklen_t len)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_CONNECT };
	bool unspec = addr != NULL && len >= sizeof(sa_family_t) && addr->sa_family == AF_UNSPEC;
	int rc;

	if (unspec) {
		c.arg[0] = sizeof(sa_family_t);   /* family 0: the bytes are zero */
	} else {
		rc = addr_to_cmd(&c, addr, len);
		if (rc < 0)
			return rc;
	}
	rc = isosock__simple_call(app, s, &c, NULL);
	if (rc == 0) {
		fs_lock(f);
		f->udp_connected = !unspec;
		fs_unlock(f);
	}
	return rc;
}

int isosock_connect(struct isosock_app *app, int s, const struct sockaddr *addr, socklen_t len)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_CONNECT };
	struct fsock *f = fs_get(app, s);
	struct isostack_shm_status st;
	struct rep *r;
	int rc;

	if (f == NULL)
		return -EBADF;
	if (__atomic_load_n(&f->udp, __ATOMIC_RELAXED))
		return udp_connect(app, s, f, addr, len);
	rc = addr_to_cmd(&c, addr, len);
	if (rc < 0)
		return rc;
	fs_lock(f);
	isosock__drain(app, s, f);
	switch (f->state) {
	case F_FREE:
	case F_CLOSING:
		rc = -EBADF;
		goto out;
	case F_CONNECTING:
		rc = -EALREADY;
		goto out;
	case F_CONNECTED:
		rc = -EISCONN;
		goto out;
	case F_LISTEN:
		rc = -EISCONN;
		goto out;
	default:
		break;
	}
	if (f->dead) {
		rc = f->fatal ? f->fatal : -ECONNABORTED;
		goto out;
	}
	r = isosock__rep_new(app, f, s, &c);
	if (r == NULL) {
		rc = -EAGAIN;
		goto out;
	}
	f->connect_cookie = c.cookie;
	rc = isosock__post(app, s, &c);
	if (rc < 0) {
		r->used = false;
		goto out;
	}
	f->state = F_CONNECTING;
	if (f->nonblock) {
		r->abandoned = true;   /* the reply only updates the state */
		rc = -EINPROGRESS;
		goto out;
	}
	for (;;) {
		isosock__drain(app, s, f);
		if (r->done) {
			st = r->st;
			r->used = false;
			rc = st.result < 0 ? (int)st.result : 0;
			if (rc < 0)
				f->so_error = 0;   /* reported here, not again */
			break;
		}
		rc = isosock__wait_moved(app, s, f, r, 0, isosock__want_reply);
		if (rc < 0 && !r->done) {
			r->abandoned = true;
			if (rc == -ENETDOWN)
				rc = -ECONNREFUSED;
			break;
		}
	}
out:
	fs_unlock(f);
	return rc;
}
