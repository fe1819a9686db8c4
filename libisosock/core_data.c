/*
 * The data path of the front-end: send and recv over the TX and RX rings
 * (TCP bytes, UDP datagram records), the two aggregation rules that
 * decide when SEND and RECV are posted, FIONREAD and shutdown.
 */
#include <netinet/in.h>
#include <string.h>

#include "core_internal.h"

/* ---- Data ---------------------------------------------------------------------- */

/* Under f->lock: the data-call error of a dead socket (or 0 if alive). */
static int dead_err(struct isosock_app *app, struct fsock *f, bool sending)
{
	if (!f->dead && isosock_app_alive(app))
		return 0;
	if (!f->dead) {
		f->dead = true;
		f->fatal = -ECONNRESET;
		f->so_error = ECONNRESET;
	}
	if (!f->err_reported) {
		f->err_reported = true;
		f->so_error = 0;
		return f->fatal;
	}
	return sending ? -EPIPE : 0;
}

/* Under f->lock: post SEND if the rule says so. */
int isosock__maybe_post_send(struct isosock_app *app, int s, struct fsock *f, bool more)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_SEND };
	uint32_t cons;
	int rc;

	if (f->tx_since_send == 0)
		return 0;
	if (app->no_tx_agg) {
		/* Basic variant: no front-end aggregation (MSG_MORE and
		 * TCP_CORK still hold bytes back: they are the caller's
		 * choice), and the stack hands TCP only the bytes a SEND
		 * names (no back-end aggregation). */
		if (more && f->tx_since_send <= ISOSOCK_TX_AGG_MAX)
			return 0;
		c.arg[0] = f->tx_since_send;
		goto post;
	}
	if (more && f->tx_since_send <= ISOSOCK_TX_AGG_MAX)
		return 0;   /* held back: tx_hold keeps a watching stack off them */
	if (f->tx_hold) {
		/* no longer: before TW1, so a stack that stops watching and
		 * reads a hold has us see its stop (shm_abi.h, sock.tx_hold) */
		isoshm_app_tx_hold(app->shm, (uint32_t)s, false);
		f->tx_hold = false;
	}
	if (isoshm_app_tx_watched(app->shm, (uint32_t)s)) {
		/* The stack looks at tx_prod at every pass until it stops,
		 * and stopping takes what it finds (TW1/TW2). */
		app->st.send_skips++;
		f->tx_since_send = 0;
		return 0;
	}
	/* Acquire: pairs with the stack's store-release of cmd_cons. */
	cons = atomic_load_explicit(&app->socks[s].cmd_cons, memory_order_acquire);
	if (f->send_posted && (int32_t)(cons - f->send_idx) < 0 &&
	    f->tx_since_send <= ISOSOCK_TX_AGG_MAX) {
		/*
		 * Skipping relies on the stack reading tx_prod after it took
		 * that SEND.  Store (tx_prod) then load (cmd_cons) here, store
		 * (cmd_cons) then load (tx_prod) there: without a full fence on
		 * both sides each may see the other's old value and the bytes
		 * wait for a SEND nobody posts.  The stack fences after taking
		 * commands (daemon/backend/sock.c, isod_sock_run_cmds); TW1
		 * above is only a compiler barrier where membarrier works.
		 */
		atomic_thread_fence(memory_order_seq_cst);
		cons = atomic_load_explicit(&app->socks[s].cmd_cons, memory_order_acquire);
		if ((int32_t)(cons - f->send_idx) < 0)
			return 0;   /* the stack has not read the last SEND: it will see tx_prod */
	}
post:
	rc = isosock__post(app, s, &c);
	if (rc < 0)
		return rc;
	app->st.send_posts++;
	f->send_posted = true;
	f->send_idx = atomic_load_explicit(&app->socks[s].cmd_prod, memory_order_relaxed);
	f->tx_since_send = 0;
	return 0;
}

/*
 * Under f->lock, the TX ring none (an idle socket's, shm_abi.h): asks the
 * stack for a ring with a SEND that carries no new bytes; it offers one
 * and posts EV_TX.  Then waits for that as for room in a full ring, a
 * nonblocking caller only briefly: the stack answers within a pass or
 * two unless memory is short or the core is swamped (then -EAGAIN, and
 * POLLOUT once the offer is there; the kernel would not refuse a few
 * bytes on an idle socket, so the bound is generous: a process preempted
 * for a few ms on a busy core must not find it passed for nothing, and
 * the caller writes once more after it).  Returns 0 or -errno.
 */
#define TX_ASK_NONBLOCK_NS 20000000

static int tx_ask(struct isosock_app *app, int s, struct fsock *f, bool nonblock,
		  int64_t deadline)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_SEND };
	int rc;

	if (!isoshm_app_tx_offered(app->shm, (uint32_t)s)) {
		rc = isosock__post(app, s, &c);
		if (rc < 0)
			return rc;
		app->st.send_posts++;
	}
	if (nonblock)
		deadline = isosock__deadline_of(TX_ASK_NONBLOCK_NS);
	rc = isosock__wait_moved(app, s, f, NULL, deadline, (struct want){ .tx_need = 1 });
	if (rc == -ETIMEDOUT)
		return -EAGAIN;
	return rc == -ENETDOWN ? 0 : rc;   /* the loop finds the socket dead */
}

static ssize_t udp_sendto(struct isosock_app *app, int s, struct fsock *f, const void *buf,
			  size_t len, int flags, const struct sockaddr *to, socklen_t tolen);

/*
 * A call that runs without f->lock (fs_alone) says on which socket, so
 * that a signal handler's call on that same socket, which would race it,
 * does not: send and recv answer -EAGAIN, the other calls wait in
 * fs_lock() (as every call did on the lock the interrupted one held).
 * One slot: the process has one thread; a handler's call on another
 * socket just takes that socket's lock.
 */
struct fsock *_Atomic isosock__alone;
__thread struct fsock *isosock__held[ISOSOCK_HELD_MAX] ISOSTACK_TLS;

/* 1: runs alone on f; 0: takes the lock; -EAGAIN: nested on f. */
static int alone_begin(struct isosock_app *app, int s, struct fsock *f)
{
	struct fsock *cur = atomic_load_explicit(&isosock__alone, memory_order_relaxed);

	if (cur == f)
		return -EAGAIN;
	if (cur != NULL || !fs_alone(app, s, f))
		return 0;
	atomic_store_explicit(&isosock__alone, f, memory_order_relaxed);
	/* a handler that runs from here on sees it */
	atomic_signal_fence(memory_order_seq_cst);
	return 1;
}

static void alone_end(void)
{
	atomic_signal_fence(memory_order_seq_cst);
	atomic_store_explicit(&isosock__alone, NULL, memory_order_relaxed);
}

/* Starts send/recv on f: alone (no lock) or with f->lock taken (*locked).
 * Returns alone_begin()'s answer. */
static int call_begin(struct isosock_app *app, int s, struct fsock *f, bool *locked)
{
	int alone = alone_begin(app, s, f);

	if (alone < 0)
		return alone;
	/* A handler's call on a socket whose lock its own thread holds (the
	 * interrupted call waits in it, e.g. a blocking recv): -EAGAIN, as
	 * the lone path says, rather than waiting for itself. */
	if (alone == 0 && __builtin_expect(fs_held_here(f), 0))
		return -EAGAIN;
	*locked = alone == 0;
	if (*locked)
		fs_lock(f);
	return alone;
}

/* Runs alone no more: takes the lock (before a wait). */
static void alone_lock(struct fsock *f)
{
	alone_end();
	fs_lock(f);
}

/* The call's deadline, read from the clock only when it first has to
 * wait: a call that finds room or data pays no clock_gettime(). */
#define DEADLINE_UNSET INT64_MIN

static int64_t deadline_at(int64_t *deadline, int64_t timeo_ns)
{
	if (*deadline == DEADLINE_UNSET)
		*deadline = isosock__deadline_of(timeo_ns);
	return *deadline;
}

ssize_t isosock_send(struct isosock_app *app, int s, const void *buf, size_t len, int flags)
{
	struct fsock *f = fs_get(app, s);
	const uint8_t *p = buf;
	size_t done = 0;
	int64_t deadline = DEADLINE_UNSET;
	bool asked_out = false;    /* a wait for a TX ring ran out */
	bool locked;               /* f->lock held (else fs_alone) */
	int alone;
	ssize_t ret;

	if (f == NULL)
		return -EBADF;
	if (__atomic_load_n(&f->udp, __ATOMIC_RELAXED))
		return udp_sendto(app, s, f, buf, len, flags, NULL, 0);
	alone = call_begin(app, s, f, &locked);
	if (alone < 0)
		return alone;
	for (;;) {
		int rc, k;

		isosock__drain(app, s, f);
		if (f->state == F_FREE || f->state == F_CLOSING) {
			ret = -EBADF;
			break;
		}
		if (f->state != F_CONNECTED) {
			ret = f->dead ? dead_err(app, f, true) : -ENOTCONN;
			if (ret == 0)
				ret = -EPIPE;
			break;
		}
		if (f->shut_wr) {
			ret = -EPIPE;
			break;
		}
		rc = dead_err(app, f, true);
		if (rc < 0) {
			ret = rc;
			break;
		}
		if (done == len) {
			ret = (ssize_t)done;
			break;
		}
		if (__builtin_expect(((flags & MSG_MORE) || f->cork) && !f->tx_hold, 0) &&
		    !app->no_tx_agg) {
			/* before the bytes: a watching stack leaves them */
			isoshm_app_tx_hold(app->shm, (uint32_t)s, true);
			f->tx_hold = true;
		}
		k = isoshm_app_tx_write(app->shm, (uint32_t)s, p + done,
					len - done > UINT32_MAX ? UINT32_MAX : (uint32_t)(len - done));
		if (k < 0) {
			/* ENOBUFS: the ring could not be mapped (the daemon did
			 * not answer); the socket itself is fine */
			ret = done > 0 ? (ssize_t)done : k == -ENOBUFS ? k : -EPIPE;
			break;
		}
		f->tx_bytes = isoshm_app_tx_size(app->shm, (uint32_t)s);   /* it may have moved */
		if (k > 0) {
			done += (size_t)k;
			f->tx_prod += (uint32_t)k;
			f->tx_since_send += (uint32_t)k;
			rc = isosock__maybe_post_send(app, s, f, (flags & MSG_MORE) || f->cork);
			if (rc < 0) {
				ret = rc;
				break;
			}
			if (done == len) {
				/* all of it: the checks above held when it was
				 * written; a status that came since is news for
				 * the next call (the kernel also returns the count) */
				ret = (ssize_t)done;
				break;
			}
			continue;
		}
		if (!locked) {
			/* waits drop and retake the lock: take it, look again */
			alone_lock(f);
			locked = true;
			continue;
		}
		if (f->tx_bytes == 0) {
			/* none (idle): ask for a ring, then write again (once
			 * more after a wait that ran out: the offer may have
			 * come meanwhile) */
			if (asked_out) {
				ret = done > 0 ? (ssize_t)done : -EAGAIN;
				break;
			}
			rc = tx_ask(app, s, f, f->nonblock || (flags & MSG_DONTWAIT),
				    deadline_at(&deadline, f->sndtimeo_ns));
			if (rc == -EAGAIN || rc == -ETIMEDOUT) {
				asked_out = true;
				continue;
			}
			if (rc < 0) {
				ret = done > 0 ? (ssize_t)done : rc;
				break;
			}
			continue;
		}
		/* ring full: make sure the stack knows, then wait for acks */
		rc = isosock__maybe_post_send(app, s, f, false);
		if (rc < 0) {
			ret = rc;
			break;
		}
		if (f->nonblock || (flags & MSG_DONTWAIT)) {
			ret = done > 0 ? (ssize_t)done : -EAGAIN;
			break;
		}
		rc = isosock__wait_moved(app, s, f, NULL, deadline_at(&deadline, f->sndtimeo_ns),
					 (struct want){ .tx_need = 1 });
		if (rc < 0 && rc != -ENETDOWN) {
			ret = done > 0 ? (ssize_t)done : rc == -ETIMEDOUT ? -EAGAIN : rc;
			break;
		}
	}
	if (ret > 0)
		app->st.send_calls++;
	if (locked)
		fs_unlock(f);
	else
		alone_end();
	return ret;
}

/* Under f->lock: free TX ring bytes. */
uint32_t isosock__tx_free(struct isosock_app *app, int s, struct fsock *f)
{
	uint32_t cons = atomic_load_explicit(&app->socks[s].tx_cons, memory_order_acquire);
	uint32_t used = f->tx_prod - cons;

	return used <= f->tx_bytes ? f->tx_bytes - used : 0;
}

/*
 * The destination of a datagram as its record header (and, for IPv6, the
 * address block a6) says it, with Linux's errnos: an AF_INET6 socket
 * takes sockaddr_in6 and sockaddr_in alike, sends to ::ffff:a.b.c.d as
 * IPv4, refuses IPv4 if IPV6_V6ONLY (ENETUNREACH), and reads AF_UNSPEC
 * as no address (*to_none); an AF_INET socket takes sockaddr_in only.
 * IPv4 goes in the header's addr; IPv6 sets ISOSTACK_SHM_DGRAM_F_V6.
 */
static int udp_dest(const struct fsock *f, const struct sockaddr *to, socklen_t tolen,
		    struct isostack_shm_dgram *h, uint8_t a6[ISOSTACK_SHM_DGRAM_ADDR6],
		    bool *to_none)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 s6;

	*to_none = false;
	if (tolen < sizeof(sa_family_t))
		return -EINVAL;
	if (f->inet6 && to->sa_family == AF_UNSPEC) {
		*to_none = true;
		return 0;
	}
	if (f->inet6 && to->sa_family == AF_INET6) {
		if (tolen < sizeof(s6) - sizeof(uint32_t))   /* SIN6_LEN_RFC2133 */
			return -EINVAL;
		memset(&s6, 0, sizeof(s6));
		memcpy(&s6, to, tolen < sizeof(s6) ? tolen : sizeof(s6));
		if (IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr)) {
			if (f->v6only)
				return -ENETUNREACH;
			memcpy(&h->addr, &s6.sin6_addr.s6_addr[12], 4);
		} else {
			memcpy(a6, s6.sin6_addr.s6_addr, ISOSTACK_SHM_DGRAM_ADDR6);
			h->flags = ISOSTACK_SHM_DGRAM_F_V6;
		}
		if (s6.sin6_port == 0)
			return -EINVAL;
		h->port = s6.sin6_port;
		return 0;
	}
	if (to->sa_family != AF_INET)
		return f->inet6 ? -EINVAL : -EAFNOSUPPORT;
	if (tolen < sizeof(sin))
		return -EINVAL;
	if (f->v6only)
		return -ENETUNREACH;
	memcpy(&sin, to, sizeof(sin));
	if (sin.sin_port == 0)
		return -EINVAL;
	h->addr = sin.sin_addr.s_addr;
	h->port = sin.sin_port;
	return 0;
}

/*
 * One datagram: a record (struct isostack_shm_dgram, the IPv6 address
 * block if any, payload, padding) in the TX ring, published as a whole
 * before SEND is considered.
 */
static ssize_t udp_sendto(struct isosock_app *app, int s, struct fsock *f, const void *buf,
			  size_t len, int flags, const struct sockaddr *to, socklen_t tolen)
{
	static const uint8_t zeros[ISOSTACK_SHM_DGRAM_ALIGN];
	struct isostack_shm_dgram h = { 0 };
	uint8_t a6[ISOSTACK_SHM_DGRAM_ADDR6];
	uint32_t rec, hdr;
	int64_t deadline = DEADLINE_UNSET;
	ssize_t ret;

	if (len > ISOSTACK_SHM_DGRAM_MAX)
		return -EMSGSIZE;
	if (buf == NULL && len > 0)
		return -EFAULT;
	if (to != NULL) {
		bool none;
		int rc = udp_dest(f, to, tolen, &h, a6, &none);

		if (rc < 0)
			return rc;
		if (none)
			to = NULL;
	}
	hdr = (uint32_t)sizeof(h) + ((h.flags & ISOSTACK_SHM_DGRAM_F_V6) ? ISOSTACK_SHM_DGRAM_ADDR6 : 0);
	rec = ISOSTACK_SHM_DGRAM_REC_F(len, h.flags);
	if (rec > f->tx_bytes)
		return -EMSGSIZE;
	h.len = (uint32_t)len;
	fs_lock(f);
	for (;;) {
		int rc;

		isosock__drain(app, s, f);
		if (f->state == F_FREE || f->state == F_CLOSING) {
			ret = -EBADF;
			break;
		}
		if (to == NULL && !f->udp_connected) {
			ret = -EDESTADDRREQ;
			break;
		}
		if (f->shut_wr) {
			ret = -EPIPE;
			break;
		}
		if (f->dead || !isosock_app_alive(app)) {
			rc = dead_err(app, f, true);
			ret = rc < 0 ? rc : -EPIPE;
			break;
		}
		if (isosock__tx_free(app, s, f) >= rec) {
			uint32_t pad = rec - hdr - (uint32_t)len;
			int k = isoshm_app_tx_write(app->shm, (uint32_t)s, &h, sizeof(h));

			if (k == (int)sizeof(h) && hdr > sizeof(h))
				k = isoshm_app_tx_write(app->shm, (uint32_t)s, a6, sizeof(a6)) ==
				    (int)sizeof(a6) ? (int)sizeof(h) : -EPROTO;
			if (k == (int)sizeof(h) && len > 0)
				k = isoshm_app_tx_write(app->shm, (uint32_t)s, buf, (uint32_t)len) ==
				    (int)len ? (int)sizeof(h) : -EPROTO;
			if (k == (int)sizeof(h) && pad > 0)
				k = isoshm_app_tx_write(app->shm, (uint32_t)s, zeros, pad) ==
				    (int)pad ? (int)sizeof(h) : -EPROTO;
			if (k != (int)sizeof(h)) {
				ret = -EPIPE;   /* the ring indices are corrupt */
				break;
			}
			f->tx_prod += rec;
			f->tx_since_send += rec;
			rc = isosock__maybe_post_send(app, s, f, false);
			ret = rc < 0 ? rc : (ssize_t)len;
			break;
		}
		rc = isosock__maybe_post_send(app, s, f, false);
		if (rc < 0) {
			ret = rc;
			break;
		}
		if (f->nonblock || (flags & MSG_DONTWAIT)) {
			ret = -EAGAIN;
			break;
		}
		rc = isosock__wait_moved(app, s, f, NULL, deadline_at(&deadline, f->sndtimeo_ns),
					 (struct want){ .tx_need = rec });
		if (rc < 0 && rc != -ENETDOWN) {
			ret = rc == -ETIMEDOUT ? -EAGAIN : rc;
			break;
		}
	}
	if (ret >= 0)
		app->st.send_calls++;
	fs_unlock(f);
	return ret;
}

ssize_t isosock_sendto(struct isosock_app *app, int s, const void *buf, size_t len, int flags,
		       const struct sockaddr *to, socklen_t tolen)
{
	struct fsock *f = fs_get(app, s);

	if (f != NULL && __atomic_load_n(&f->udp, __ATOMIC_RELAXED))
		return udp_sendto(app, s, f, buf, len, flags, to, tolen);
	/* TCP ignores the address, as the kernel does */
	return isosock_send(app, s, buf, len, flags);
}

/* Under f->lock: bytes readable now (following the stack to a new RX
 * ring, whose size we keep). */
uint32_t isosock__rx_avail(struct isosock_app *app, int s, struct fsock *f)
{
	int n = isoshm_app_rx_avail(app->shm, (uint32_t)s);

	if (n <= 0)
		return 0;
	f->rx_bytes = isoshm_app_rx_size(app->shm, (uint32_t)s);
	return (uint32_t)n;
}

static void rx_peek_at(struct isosock_app *app, int s, uint32_t pos, void *buf, uint32_t n)
{
	(void)isoshm_app_rx_peek(app->shm, (uint32_t)s, pos, buf, n);
}

static void rx_peek(struct isosock_app *app, int s, struct fsock *f, void *buf, uint32_t n)
{
	rx_peek_at(app, s, f->rx_cons, buf, n);
}

/*
 * Under f->lock, UDP: the next complete record's header.  Returns its
 * ring size, 0 if no complete record is there yet, -EPROTO if the header
 * is impossible (the stack would never write it: an unknown flag, an
 * IPv6 source on an AF_INET socket).
 */
int isosock__udp_next(struct isosock_app *app, int s, struct fsock *f,
		      struct isostack_shm_dgram *h)
{
	uint32_t avail = isosock__rx_avail(app, s, f);
	uint32_t rec;

	if (avail < sizeof(*h))
		return 0;
	rx_peek(app, s, f, h, sizeof(*h));
	if (h->len > ISOSTACK_SHM_DGRAM_MAX || (h->flags & ~ISOSTACK_SHM_DGRAM_F_V6) ||
	    ((h->flags & ISOSTACK_SHM_DGRAM_F_V6) && !f->inet6))
		return -EPROTO;
	rec = ISOSTACK_SHM_DGRAM_REC_F(h->len, h->flags);
	if (rec > f->rx_bytes)
		return -EPROTO;
	return avail >= rec ? (int)rec : 0;
}

/* Under f->lock, UDP: drops n ring bytes (a consumed record). */
static int rx_skip(struct isosock_app *app, int s, struct fsock *f, uint32_t n)
{
	uint8_t scratch[1024];

	while (n > 0) {
		uint32_t k = n < sizeof(scratch) ? n : (uint32_t)sizeof(scratch);
		int rc = isoshm_app_rx_read(app->shm, (uint32_t)s, scratch, k);

		if (rc <= 0)
			return rc < 0 ? rc : -EPROTO;
		f->rx_cons += (uint32_t)rc;
		n -= (uint32_t)rc;
	}
	return 0;
}

/* Under f->lock: the source of the record at rx_cons (header h) as the
 * socket's family names it: ::ffff:a.b.c.d for IPv4 on AF_INET6, as
 * Linux; cut to *fromlen, which becomes the full length. */
static void udp_source(struct isosock_app *app, int s, struct fsock *f,
		       const struct isostack_shm_dgram *h, struct sockaddr *from, socklen_t *fromlen)
{
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = h->port };
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = h->port };
	const void *src = &sin;
	socklen_t full = sizeof(sin);

	sin.sin_addr.s_addr = h->addr;
	if (f->inet6) {
		if (h->flags & ISOSTACK_SHM_DGRAM_F_V6) {
			rx_peek_at(app, s, f->rx_cons + (uint32_t)sizeof(*h), &s6.sin6_addr,
				   ISOSTACK_SHM_DGRAM_ADDR6);
		} else {
			s6.sin6_addr.s6_addr[10] = s6.sin6_addr.s6_addr[11] = 0xff;
			memcpy(&s6.sin6_addr.s6_addr[12], &h->addr, 4);
		}
		src = &s6;
		full = sizeof(s6);
	}
	memcpy(from, src, *fromlen < full ? *fromlen : full);
	*fromlen = full;
}

static ssize_t udp_recvfrom(struct isosock_app *app, int s, struct fsock *f, void *buf,
			    size_t len, int flags, struct sockaddr *from, socklen_t *fromlen)
{
	struct isostack_shm_dgram h;
	int64_t deadline = DEADLINE_UNSET;
	ssize_t ret;

	fs_lock(f);
	for (;;) {
		int rec, rc;

		isosock__drain(app, s, f);
		if (f->state == F_FREE || f->state == F_CLOSING) {
			ret = -EBADF;
			break;
		}
		rec = isosock__udp_next(app, s, f, &h);
		if (rec < 0) {
			ret = -EIO;
			break;
		}
		if (rec > 0) {
			uint32_t n = len < h.len ? (uint32_t)len : h.len;
			uint32_t hdr = (uint32_t)sizeof(h);

			if (h.flags & ISOSTACK_SHM_DGRAM_F_V6)
				hdr += ISOSTACK_SHM_DGRAM_ADDR6;
			if (n > 0)
				rx_peek_at(app, s, f->rx_cons + hdr, buf, n);
			if (from != NULL && fromlen != NULL)
				udp_source(app, s, f, &h, from, fromlen);
			if (!(flags & MSG_PEEK) && rx_skip(app, s, f, (uint32_t)rec) < 0) {
				ret = -EIO;
				break;
			}
			ret = (flags & MSG_TRUNC) ? (ssize_t)h.len : (ssize_t)n;
			break;
		}
		if (f->shut_rd) {
			ret = 0;
			break;
		}
		if (f->dead || !isosock_app_alive(app)) {
			rc = dead_err(app, f, false);
			ret = rc < 0 ? rc : -ECONNRESET;
			break;
		}
		if (f->nonblock || (flags & MSG_DONTWAIT)) {
			ret = -EAGAIN;
			break;
		}
		/* a record is at least its header: wake when one may be whole */
		rc = isosock__wait_moved(app, s, f, NULL, deadline_at(&deadline, f->rcvtimeo_ns),
					 (struct want){ .rx_need = isosock__rx_avail(app, s, f) + 1 });
		if (rc < 0 && rc != -ENETDOWN) {
			ret = rc == -ETIMEDOUT ? -EAGAIN : rc;
			break;
		}
	}
	if (ret > 0)
		app->st.recv_calls++;
	fs_unlock(f);
	return ret;
}

/* Under f->lock: RECV when half the ring was consumed since the last one,
 * or the ring had been full. */
static void maybe_post_recv(struct isosock_app *app, int s, struct fsock *f, bool was_full)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_RECV };

	if (f->rx_since_recv == 0 || (!was_full && f->rx_since_recv < f->rx_bytes / 2))
		return;
	if (isosock__post(app, s, &c) == 0) {
		app->st.recv_posts++;
		f->rx_since_recv = 0;
	}
}

ssize_t isosock_recv(struct isosock_app *app, int s, void *buf, size_t len, int flags)
{
	struct fsock *f = fs_get(app, s);
	uint8_t *p = buf;
	size_t done = 0;
	int64_t deadline = DEADLINE_UNSET;
	bool locked;               /* f->lock held (else fs_alone) */
	int alone;
	ssize_t ret;

	if (f == NULL)
		return -EBADF;
	if (__atomic_load_n(&f->udp, __ATOMIC_RELAXED))
		return udp_recvfrom(app, s, f, buf, len, flags, NULL, NULL);
	alone = call_begin(app, s, f, &locked);
	if (alone < 0)
		return alone;
	for (;;) {
		uint32_t avail, n;
		int rc;

		isosock__drain(app, s, f);
		if (f->state == F_FREE || f->state == F_CLOSING) {
			ret = -EBADF;
			break;
		}
		if (f->state != F_CONNECTED && !(f->dead && f->state == F_OPEN)) {
			ret = -ENOTCONN;
			break;
		}
		if (len == 0 || f->shut_rd) {
			ret = (ssize_t)done;
			break;
		}
		avail = isosock__rx_avail(app, s, f);
		if (avail > 0) {
			bool was_full = avail == f->rx_bytes;

			n = len - done < avail ? (uint32_t)(len - done) : avail;
			if (flags & MSG_PEEK) {
				rx_peek(app, s, f, p + done, n);
				ret = (ssize_t)(done + n);
				break;
			}
			rc = isoshm_app_rx_read(app->shm, (uint32_t)s, p + done, n);
			if (rc < 0) {
				ret = done > 0 ? (ssize_t)done : rc == -ENOBUFS ? rc : -ECONNRESET;
				break;
			}
			done += (size_t)rc;
			f->rx_cons += (uint32_t)rc;
			f->rx_since_recv += (uint32_t)rc;
			maybe_post_recv(app, s, f, was_full);
			if (done == len || !(flags & MSG_WAITALL)) {
				ret = (ssize_t)done;
				break;
			}
			continue;
		}
		if (done > 0 && !(flags & MSG_WAITALL)) {
			ret = (ssize_t)done;
			break;
		}
		if (f->hup) {
			ret = (ssize_t)done;   /* EOF */
			break;
		}
		rc = dead_err(app, f, false);
		if (rc < 0 || f->dead) {
			ret = done > 0 ? (ssize_t)done : rc;
			break;
		}
		if (f->nonblock || (flags & MSG_DONTWAIT)) {
			ret = done > 0 ? (ssize_t)done : -EAGAIN;
			break;
		}
		if (!locked) {
			/* waits drop and retake the lock: take it, look again */
			alone_lock(f);
			locked = true;
			continue;
		}
		rc = isosock__wait_moved(app, s, f, NULL, deadline_at(&deadline, f->rcvtimeo_ns),
					 (struct want){ .rx_need = 1 });
		if (rc < 0 && rc != -ENETDOWN) {
			ret = done > 0 ? (ssize_t)done : rc == -ETIMEDOUT ? -EAGAIN : rc;
			break;
		}
	}
	if (ret > 0)
		app->st.recv_calls++;
	if (locked)
		fs_unlock(f);
	else
		alone_end();
	return ret;
}

ssize_t isosock_recvfrom(struct isosock_app *app, int s, void *buf, size_t len, int flags,
			 struct sockaddr *from, socklen_t *fromlen)
{
	struct fsock *f = fs_get(app, s);
	ssize_t n;

	if (f != NULL && __atomic_load_n(&f->udp, __ATOMIC_RELAXED))
		return udp_recvfrom(app, s, f, buf, len, flags, from, fromlen);
	n = isosock_recv(app, s, buf, len, flags);

	if (n >= 0 && from != NULL && fromlen != NULL) {
		socklen_t l = *fromlen;

		if (isosock_getpeername(app, s, from, &l) == 0)
			*fromlen = l;
	}
	return n;
}

int isosock_nread(struct isosock_app *app, int s)
{
	struct fsock *f = fs_get(app, s);
	int n;

	if (f == NULL)
		return -EBADF;
	fs_lock(f);
	if (f->udp) {
		struct isostack_shm_dgram h;

		/* FIONREAD on a datagram socket: the next datagram's size */
		n = isosock__udp_next(app, s, f, &h) > 0 ? (int)h.len : 0;
	} else if (f->state == F_LISTEN) {
		n = -EINVAL;             /* Linux: SIOCINQ on a listener */
	} else {
		n = f->state == F_CONNECTED ? (int)isosock__rx_avail(app, s, f) : 0;
	}
	fs_unlock(f);
	return n;
}

int isosock_shutdown(struct isosock_app *app, int s, int how)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_SHUTDOWN };
	struct fsock *f = fs_get(app, s);
	int rc;

	if (f == NULL)
		return -EBADF;
	if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR)
		return -EINVAL;
	fs_lock(f);
	isosock__drain(app, s, f);
	if (f->udp && f->state == F_OPEN) {
		/* datagram: purely local, as in the kernel */
		rc = f->udp_connected ? 0 : -ENOTCONN;
		if (rc == 0) {
			if (how != SHUT_WR)
				f->shut_rd = true;
			if (how != SHUT_RD)
				f->shut_wr = true;
		}
		fs_unlock(f);
		return rc;
	}
	if (f->state != F_CONNECTED) {
		rc = f->state == F_FREE || f->state == F_CLOSING ? -EBADF : -ENOTCONN;
		fs_unlock(f);
		return rc;
	}
	if (how != SHUT_RD) {
		/* the stack must see every byte before the FIN */
		f->cork = false;
		rc = isosock__maybe_post_send(app, s, f, false);
		(void)rc;
	}
	fs_unlock(f);
	c.arg[0] = (uint64_t)how;
	rc = isosock__simple_call(app, s, &c, NULL);
	if (rc == 0 || rc == -ENOTCONN) {
		fs_lock(f);
		if (how != SHUT_WR)
			f->shut_rd = true;
		if (how != SHUT_RD)
			f->shut_wr = true;
		fs_unlock(f);
	}
	return rc == -ENOTCONN && f->dead ? 0 : rc;
}
