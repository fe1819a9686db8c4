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
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "isosock.h"
#include "isostack/tls.h"
#include "shim.h"

/*
 * fork.  The core keeps each attachment's state in memory shared across
 * fork (core.c), so parent and child both drive every socket they
 * inherited, and a new socket of either goes on the current attachment.
 * Around fork the core is told who the child is (isosock_app_fork_*):
 * it becomes a holder of every socket of ours, and a socket reaches the
 * stack's CLOSE only when its last holder closes it, exits or dies.
 *
 * Every call into the core is a reader of the quiesce (quiesce.c); fork's
 * prepare handler is its writer, so no thread is inside the core (holding
 * one of its locks) when the process is copied.  Waits are sliced so that
 * fork never waits for more than a slice.
 */
#define FORK_SLICE_NS (20 * 1000 * 1000)
#define MAX_ATT 64

struct att {
	struct isosock_app *app;
	int fork_child;             /* member index reserved for the child */
};

struct handle {
	struct att *att;
	struct isosock_app *app;
	int s;
};

static pthread_mutex_t attach_lock = PTHREAD_MUTEX_INITIALIZER;
static struct att atts[MAX_ATT];
static _Atomic int natt;
static struct att *_Atomic cur;   /* the attachment for new sockets */
static _Atomic int state; /* 0 untried, 1 attached, < 0 -errno of the try */

static inline bool q_enter(void)
{
	return isosock_quiesce_enter();
}

static inline void q_leave(bool entered)
{
	isosock_quiesce_leave(entered);
}

static struct att *att_for_new(void);

static int attach_new(void)
{
	if (atomic_load_explicit(&natt, memory_order_relaxed) >= MAX_ATT)
		return -EMFILE;
	struct isosock_app *ap = NULL;
	bool q_ = q_enter();
	int r = isosock_app_attach(&ap, NULL);
	q_leave(q_);
	if (r < 0)
		return r;
	int i = atomic_load_explicit(&natt, memory_order_relaxed);
	atts[i].app = ap;
	atomic_store_explicit(&natt, i + 1, memory_order_release);
	atomic_store_explicit(&cur, &atts[i], memory_order_release);
	return 0;
}

/*
 * Re-attach after the daemon died (its control socket hung up): new
 * sockets go on a new attachment once the daemon is back, while the old
 * attachment's sockets stay reset.  Tries are rate-limited to one per
 * REATTACH_NS for the whole process, so a program opening sockets while
 * the daemon is down costs one connect() per interval, not per socket();
 * the calls in between say ENETDOWN.  Each try is bounded by attach's
 * own 5 s.  MAX_ATT attachments (restarts, and fork children's) at most.
 */
#define REATTACH_NS (250 * 1000 * 1000)

static _Atomic int reattaching;    /* once attached: a lost daemon is retried */
static _Atomic int64_t reattach_at;

static int be_reattach(void)
{
	struct timespec ts;
	int r = -ENETDOWN;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	if (now < atomic_load_explicit(&reattach_at, memory_order_relaxed))
		return -ENETDOWN;
	pthread_mutex_lock(&attach_lock);
	struct att *a = atomic_load_explicit(&cur, memory_order_acquire);
	if (a != NULL && isosock_app_alive(a->app)) {
		r = 0;          /* another thread re-attached meanwhile */
	} else if (now >= atomic_load_explicit(&reattach_at, memory_order_relaxed)) {
		atomic_store_explicit(&reattach_at, now + REATTACH_NS, memory_order_relaxed);
		r = attach_new();
		atomic_store_explicit(&state, r == 0 ? 1 : r, memory_order_release);
	}
	pthread_mutex_unlock(&attach_lock);
	return r == 0 ? 0 : r == -EACCES ? r : -ENETDOWN;
}

static int be_attach(void)
{
	int st = atomic_load_explicit(&state, memory_order_acquire);
	if (st == 1) {
		/* Throttled (a poll() of the control socket per ms at most). */
		if (__builtin_expect(isosock_app_alive(att_for_new()->app), 1))
			return 0;
		return be_reattach();
	}
	if (st < 0 && atomic_load_explicit(&reattaching, memory_order_relaxed))
		return be_reattach();
	if (st < 0)
		return st == -EACCES ? st : -ENETDOWN;
	int first = 0;
	pthread_mutex_lock(&attach_lock);
	st = atomic_load_explicit(&state, memory_order_relaxed);
	if (st == 0) {
		int r = attach_new();
		st = r == 0 ? 1 : r;
		first = 1;
		if (r == 0)
			atomic_store_explicit(&reattaching, 1, memory_order_relaxed);
		/* Pairs with the acquire above: cur is set before state. */
		atomic_store_explicit(&state, st, memory_order_release);
	}
	pthread_mutex_unlock(&attach_lock);
	/* Refused by the daemon's permissions: said as such (route.c), as is
	 * a daemon that did not answer (the try that found it so). */
	if (st == -ETIMEDOUT && first)
		return st;
	return st == 1 ? 0 : st == -EACCES ? st : -ENETDOWN;
}

/* The attachment new sockets go to. */
static struct att *att_for_new(void)
{
	return atomic_load_explicit(&cur, memory_order_acquire);
}

#define H(h) ((struct handle *)(h))

/* A handle on the attachment new sockets go to, its socket not made yet:
 * NULL and *err (-ENOMEM, -ENETDOWN). */
static struct handle *handle_new(int *err)
{
	struct handle *h = malloc(sizeof(*h));
	if (!h) {
		*err = -ENOMEM;
		return NULL;
	}
	h->att = att_for_new();
	if (!h->att) {
		free(h);
		*err = -ENETDOWN;
		return NULL;
	}
	h->app = h->att->app;
	return h;
}

/* h gets socket s, or goes if s is -errno (returned). */
static int handle_finish(struct handle *h, int s, void **out)
{
	if (s < 0) {
		free(h);
		return s;
	}
	h->s = s;
	*out = h;
	return 0;
}

static int be_socket(int domain, int type, void **out)
{
	int err;
	struct handle *h = handle_new(&err);
	if (!h)
		return err;
	bool q_ = q_enter();
	int s = isosock_socket(h->app, domain, type | SOCK_NONBLOCK, 0);
	q_leave(q_);
	return handle_finish(h, s, out);
}

/* A call on h, in the core as a reader of the quiesce. */
#define CORE(h, expr)                                        \
	do {                                                 \
		bool q_ = q_enter();                         \
		__typeof__(expr) r_ = (expr);                \
		q_leave(q_);                                 \
		return r_;                                   \
	} while (0)

static int be_bind(void *h, const struct sockaddr *sa, socklen_t len)
{
	CORE(h, isosock_bind(H(h)->app, H(h)->s, sa, len));
}

static int be_listen(void *h, int backlog)
{
	CORE(h, isosock_listen(H(h)->app, H(h)->s, backlog));
}

static int be_accept(void *h, void **out_h, struct sockaddr *sa, socklen_t *len)
{
	struct handle *n = malloc(sizeof(*n));
	if (!n)
		return -ENOMEM;
	*n = *H(h);
	bool q_ = q_enter();
	n->s = isosock_accept(n->app, H(h)->s, sa, len, SOCK_NONBLOCK);
	q_leave(q_);
	if (n->s < 0) {
		int r = n->s;
		free(n);
		return r;
	}
	*out_h = n;
	return 0;
}

static int be_handoff(void *h, int fd)
{
	CORE(h, isosock_handoff(H(h)->app, H(h)->s, fd));
}

static int be_claim(int fd, void **out_h, bool *listener, bool *inet6)
{
	int err;
	struct handle *n = handle_new(&err);
	if (!n)
		return err;
	bool q_ = q_enter();
	int s = isosock_claim(n->app, fd, listener, inet6);
	q_leave(q_);
	return handle_finish(n, s, out_h);
}

static int be_connect(void *h, const struct sockaddr *sa, socklen_t len)
{
	CORE(h, isosock_connect(H(h)->app, H(h)->s, sa, len));
}

static int so_error(struct handle *x)
{
	int v = 0;
	socklen_t l = sizeof(v);
	int r = isosock_getsockopt(x->app, x->s, SOL_SOCKET, SO_ERROR, &v, &l);
	return r < 0 ? r : -v;
}

static int be_so_error(void *h)
{
	CORE(h, so_error(H(h)));
}

static ssize_t sendmsg_core(struct handle *x, const struct msghdr *m, int flags)
{
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

static ssize_t be_sendmsg(void *h, const struct msghdr *m, int flags)
{
	CORE(h, sendmsg_core(H(h), m, flags));
}

static ssize_t recvmsg_core(struct handle *x, struct msghdr *m, int flags)
{
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

static ssize_t be_recvmsg(void *h, struct msghdr *m, int flags)
{
	CORE(h, recvmsg_core(H(h), m, flags));
}

static int be_shutdown(void *h, int how)
{
	CORE(h, isosock_shutdown(H(h)->app, H(h)->s, how));
}

static int be_close(void *h)
{
	struct handle *x = H(h);
	/* After fork the core decides whether the stack hears of it: only
	 * the last process holding the socket closes it there. */
	bool q_ = q_enter();
	int r = isosock_close(x->app, x->s);
	q_leave(q_);
	free(h);
	return r;
}

static int be_setsockopt(void *h, int level, int name, const void *v, socklen_t len)
{
	CORE(h, isosock_setsockopt(H(h)->app, H(h)->s, level, name, v, len));
}

static int be_getsockopt(void *h, int level, int name, void *v, socklen_t *len)
{
	CORE(h, isosock_getsockopt(H(h)->app, H(h)->s, level, name, v, len));
}

static int be_getsockname(void *h, struct sockaddr *sa, socklen_t *len)
{
	CORE(h, isosock_getsockname(H(h)->app, H(h)->s, sa, len));
}

static int be_getpeername(void *h, struct sockaddr *sa, socklen_t *len)
{
	CORE(h, isosock_getpeername(H(h)->app, H(h)->s, sa, len));
}

static int be_nread(void *h)
{
	CORE(h, isosock_nread(H(h)->app, H(h)->s));
}

static int be_outq(void *h)
{
	CORE(h, isosock_outq(H(h)->app, H(h)->s));
}

static uint32_t poll_core(struct handle *x, uint32_t *gen)
{
	int r = isosock_poll_gen(x->app, x->s, POLLIN | POLLOUT | POLLRDHUP, gen);
	return r < 0 ? POLLNVAL : (uint32_t)r;
}

static uint32_t be_poll(void *h, uint32_t *gen)
{
	if (gen)
		*gen = 0; /* a closed socket: no further arrivals */
	CORE(h, poll_core(H(h), gen));
}

/* In slices, so that a fork in another thread waits at most one slice. */
static int be_wait(void *h, uint32_t events, int64_t timeout_ns)
{
	int64_t deadline = timeout_ns > 0 ? isosock_now_ns() + timeout_ns : 0;
	for (;;) {
		int64_t slice = FORK_SLICE_NS;
		if (timeout_ns == 0) {
			slice = 0;
		} else if (timeout_ns > 0) {
			int64_t left = deadline - isosock_now_ns();
			if (left <= 0)
				return -ETIMEDOUT;
			if (left < slice)
				slice = left;
		}
		struct isosock_pollfd p = { .sock = H(h)->s, .events = (short)events };
		bool q_ = q_enter();
		int r = isosock_wait(H(h)->app, &p, 1, slice);
		q_leave(q_);
		if (r < 0)
			return r;
		if (r > 0)
			return 0;
		if (timeout_ns == 0)
			return -ETIMEDOUT;
	}
}

/* The app-wide wait points of every attachment this process drives are
 * armed (a thread-local mask remembers which, for wait_end); the wake fd
 * is that of the newest one.  Sockets of another attachment are caught by
 * the callers' bounded sleep (ISOSOCK_SLEEP_SLICE_NS). */
static _Thread_local uint64_t armed ISOSTACK_TLS;

static void be_wait_begin(void)
{
	int n = atomic_load_explicit(&natt, memory_order_acquire);
	bool q_ = q_enter();
	for (int i = 0; i < n; i++) {
		if (armed & (UINT64_C(1) << i))
			continue;
		isosock_wait_arm(atts[i].app);
		armed |= UINT64_C(1) << i;
	}
	q_leave(q_);
}

static void be_wait_end(void)
{
	if (!armed)
		return;
	bool q_ = q_enter();
	for (int i = 0; i < MAX_ATT; i++)
		if (armed & (UINT64_C(1) << i))
			isosock_wait_disarm(atts[i].app);
	q_leave(q_);
	armed = 0;
}

static int be_sleep_mark(void *h, int key, bool on)
{
	if (on) {
		if (h == NULL)
			return -1;
		key = (int)(H(h)->att - atts) << 20 | H(h)->s;
	}
	key &= ~ISOSOCK_MARK_OWN;
	if (key < 0 || (key >> 20) >= atomic_load_explicit(&natt, memory_order_acquire))
		return -1;
	return isosock_sleep_mark(atts[key >> 20].app, key & 0xfffff, on) ?
	       key | ISOSOCK_MARK_OWN : key;
}

static void be_sleep_unmark_process(int key)
{
	key &= ~ISOSOCK_MARK_OWN;
	if (key >= 0 && (key >> 20) < atomic_load_explicit(&natt, memory_order_acquire))
		isosock_sleep_unmark_process(atts[key >> 20].app, key & 0xfffff);
}

static void be_sleep_any(bool on)
{
	int n = atomic_load_explicit(&natt, memory_order_acquire);

	for (int i = 0; i < n; i++)
		isosock_sleep_any(atts[i].app, on);
}

static int be_note_key(void *h)
{
	if (h == NULL)
		return -1;
	return (int)(H(h)->att - atts) << 20 | H(h)->s;
}

struct note_fwd {
	void (*fn)(void *arg, int key);
	void *arg;
	int att;
};

static void note_fwd(void *arg, uint32_t sock)
{
	struct note_fwd *f = arg;

	f->fn(f->arg, f->att << 20 | (int)sock);
}

static int be_notes(uint32_t *cursors, uint64_t *valid, void (*fn)(void *arg, int key), void *arg)
{
	int n = atomic_load_explicit(&natt, memory_order_acquire);
	int lost = 0;

	for (int i = 0; i < n; i++) {
		struct note_fwd f = { .fn = fn, .arg = arg, .att = i };

		if (!(*valid & (UINT64_C(1) << i))) {
			cursors[i] = isosock_app_notes_now(atts[i].app);
			*valid |= UINT64_C(1) << i;
			lost = 1;
			continue;
		}
		lost |= isosock_app_notes(atts[i].app, &cursors[i], note_fwd, &f);
	}
	return lost;
}

static int be_wake_fd(void)
{
	int n = atomic_load_explicit(&natt, memory_order_acquire);
	return n > 0 ? isosock_app_sleep_fd(atts[n - 1].app) : -1;
}

static void be_atfork_prepare(void)
{
	pthread_mutex_lock(&attach_lock);
	isosock_quiesce_fork_prepare();
	int n = atomic_load_explicit(&natt, memory_order_acquire);
	for (int i = 0; i < n; i++)
		atts[i].fork_child = isosock_app_fork_prepare(atts[i].app);
}

static void be_atfork_parent(void)
{
	isosock_quiesce_fork_parent();
	pthread_mutex_unlock(&attach_lock);
}

static void be_fork_done(pid_t pid)
{
	/* Only our fork() wrapper knows whether the fork failed. */
	int n = atomic_load_explicit(&natt, memory_order_acquire);
	for (int i = 0; i < n; i++)
		isosock_app_fork_parent(atts[i].app, atts[i].fork_child, pid < 0);
}

static void be_child_reaped(void)
{
	int n = atomic_load_explicit(&natt, memory_order_acquire);
	for (int i = 0; i < n; i++)
		isosock_app_child_reaped(atts[i].app);
}

static void be_atfork_child(void)
{
	/* One thread now; the locks may have been taken by threads the child
	 * does not have (prepare held them all, but start clean anyway). */
	isosock_quiesce_fork_child();
	pthread_mutex_init(&attach_lock, NULL);
	int n = atomic_load_explicit(&natt, memory_order_acquire);
	for (int i = 0; i < n; i++)
		isosock_app_fork_child(atts[i].app, atts[i].fork_child);
}

/* Process exit (exit(), return from main): let go of every socket, as the
 * kernel closes a process's fds; sockets still held by another process of
 * the application stay open. */
static void be_exit(void)
{
	int n = atomic_load_explicit(&natt, memory_order_acquire);
	for (int i = 0; i < n; i++)
		isosock_app_exit(atts[i].app);
}

/* ---- exec: see isosock_app_exec_export() ------------------------------- */

static bool *exec_keep[MAX_ATT];   /* new image: slots adopted, per attachment */

static int be_exec_export(char *buf, size_t n)
{
	int na = atomic_load_explicit(&natt, memory_order_acquire);
	size_t off = 0;
	for (int i = 0; i < na; i++) {
		if (off + 2 >= n)
			return -ENAMETOOLONG;
		if (i > 0)
			buf[off++] = '|';
		int r = isosock_app_exec_export(atts[i].app, buf + off, n - off);
		if (r < 0)
			return r;
		off += (size_t)r;
	}
	buf[off] = '\0';
	return (int)off;
}

static void be_exec_failed(void)
{
	int na = atomic_load_explicit(&natt, memory_order_acquire);
	for (int i = 0; i < na; i++)
		isosock_app_exec_failed(atts[i].app);
}

static int be_handle_slot(void *h, int *att, int *slot)
{
	*att = (int)(H(h)->att - atts);
	*slot = H(h)->s;
	return 0;
}

/* New image: adopts the attachments described by desc ('|'-separated),
 * in order.  Returns how many, or -errno (nothing adopted then is kept
 * mapped: the sockets of the ones that failed are simply not ours). */
static int be_exec_import(const char *desc)
{
	int n = 0;
	while (desc && *desc && n < MAX_ATT) {
		struct isosock_app *ap;
		int r = isosock_app_exec_import(&ap, desc);
		if (r < 0)
			return n > 0 ? n : r;
		exec_keep[n] = calloc(isosock_app_max_sockets(ap), sizeof(bool));
		atts[n].app = ap;
		n++;
		desc = strchr(desc, '|');
		if (desc)
			desc++;
	}
	if (n > 0) {
		atomic_store_explicit(&natt, n, memory_order_release);
		atomic_store_explicit(&cur, &atts[n - 1], memory_order_release);
		atomic_store_explicit(&state, 1, memory_order_release);
		atomic_store_explicit(&reattaching, 1, memory_order_relaxed);
	}
	return n;
}

static void *be_handle_adopt(int att, int slot)
{
	if (att < 0 || att >= atomic_load_explicit(&natt, memory_order_acquire) || slot <= 0 ||
	    (uint32_t)slot >= isosock_app_max_sockets(atts[att].app))
		return NULL;
	struct handle *h = malloc(sizeof(*h));
	if (!h)
		return NULL;
	h->att = &atts[att];
	h->app = atts[att].app;
	h->s = slot;
	if (exec_keep[att])
		exec_keep[att][slot] = true;
	return h;
}

/* New image: sockets held before exec but not inherited (close-on-exec)
 * are let go, as the kernel closes them at exec. */
static void be_exec_done(void)
{
	int na = atomic_load_explicit(&natt, memory_order_acquire);
	for (int i = 0; i < na; i++) {
		if (!exec_keep[i])
			continue;
		isosock_app_exec_keep_only(atts[i].app, exec_keep[i]);
		free(exec_keep[i]);
		exec_keep[i] = NULL;
	}
}

/*
 * spawn (posix_spawn, system, popen): a member entry per attachment for a
 * child our fork handlers do not see (isosock_app_spawn_*).  While any
 * spawn is in flight the attachments' own fds are inheritable (the child
 * needs them); the last one to end makes them close-on-exec again.
 */
struct spawn {
	int n;
	bool exported;
	int k[MAX_ATT];
	int32_t mark[MAX_ATT];
};

static pthread_mutex_t spawn_lock = PTHREAD_MUTEX_INITIALIZER;
static int spawn_busy;

static void spawn_undo(struct spawn *sp, pid_t pid)
{
	for (int i = 0; i < sp->n; i++)
		if (sp->k[i] >= 0)
			isosock_app_spawn_done(atts[i].app, sp->k[i], sp->mark[i], pid);
}

static void *be_spawn_begin(void)
{
	int na = atomic_load_explicit(&natt, memory_order_acquire);
	if (na == 0)
		return NULL;
	struct spawn *sp = calloc(1, sizeof(*sp));
	if (!sp)
		return NULL;
	bool q_ = q_enter();
	for (; sp->n < na; sp->n++) {
		int i = sp->n;
		sp->k[i] = isosock_app_spawn_claim(atts[i].app, &sp->mark[i]);
		if (sp->k[i] < 0)
			break;
	}
	if (sp->n < na) {
		/* No entry left (64 live processes): the child gets plain
		 * kernel sockets, as before spawn was covered. */
		spawn_undo(sp, -1);
		q_leave(q_);
		free(sp);
		isosock_log("spawn: no member entry left; the child does not inherit isostack "
			    "sockets");
		return NULL;
	}
	q_leave(q_);
	return sp;
}

static int be_spawn_export(void *p, char *buf, size_t n)
{
	struct spawn *sp = p;
	size_t off = 0;
	int r = 0;
	pthread_mutex_lock(&spawn_lock);
	spawn_busy++;
	sp->exported = true;
	for (int i = 0; i < sp->n && r >= 0; i++) {
		if (off + 2 >= n) {
			r = -ENAMETOOLONG;
			break;
		}
		if (i > 0)
			buf[off++] = '|';
		r = isosock_app_spawn_export(atts[i].app, sp->k[i], buf + off, n - off);
		if (r >= 0)
			off += (size_t)r;
	}
	pthread_mutex_unlock(&spawn_lock);
	if (r < 0)
		return r;
	buf[off] = '\0';
	return (int)off;
}

static void be_spawn_hold(void *p, void *h)
{
	struct spawn *sp = p;
	int a = (int)(H(h)->att - atts);
	if (a < 0 || a >= sp->n)
		return;
	bool q_ = q_enter();
	isosock_app_spawn_hold(atts[a].app, sp->k[a], H(h)->s);
	q_leave(q_);
}

static void be_spawn_started(void *p)
{
	struct spawn *sp = p;
	if (!sp || !sp->exported)
		return;
	sp->exported = false;
	pthread_mutex_lock(&spawn_lock);
	if (--spawn_busy == 0)
		be_exec_failed();
	pthread_mutex_unlock(&spawn_lock);
}

static void be_spawn_end(void *p, pid_t pid)
{
	struct spawn *sp = p;
	if (!sp)
		return;
	be_spawn_started(sp);
	bool q_ = q_enter();
	spawn_undo(sp, pid);
	q_leave(q_);
	free(sp);
}

static bool be_private_fd(int fd)
{
	int n = atomic_load_explicit(&natt, memory_order_acquire);
	for (int i = 0; i < n; i++)
		if (isosock_app_private_fd(atts[i].app, fd))
			return true;
	return false;
}

static int be_private_move(int fd)
{
	int n = atomic_load_explicit(&natt, memory_order_acquire);
	for (int i = 0; i < n; i++) {
		int r = isosock_app_private_move(atts[i].app, fd);
		if (r < 0)
			return r;
	}
	return 0;
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
	.handoff = be_handoff,
	.claim = be_claim,
	.setsockopt = be_setsockopt,
	.getsockopt = be_getsockopt,
	.getsockname = be_getsockname,
	.getpeername = be_getpeername,
	.nread = be_nread,
	.outq = be_outq,
	.poll = be_poll,
	.wait = be_wait,
	.wait_begin = be_wait_begin,
	.wait_end = be_wait_end,
	.sleep_mark = be_sleep_mark,
	.sleep_unmark_process = be_sleep_unmark_process,
	.sleep_any = be_sleep_any,
	.wake_fd = be_wake_fd,
	.note_key = be_note_key,
	.notes = be_notes,
	.atfork_prepare = be_atfork_prepare,
	.atfork_parent = be_atfork_parent,
	.atfork_child = be_atfork_child,
	.fork_done = be_fork_done,
	.child_reaped = be_child_reaped,
	.exit = be_exit,
	.exec_export = be_exec_export,
	.exec_failed = be_exec_failed,
	.handle_slot = be_handle_slot,
	.exec_import = be_exec_import,
	.handle_adopt = be_handle_adopt,
	.exec_done = be_exec_done,
	.private_fd = be_private_fd,
	.private_move = be_private_move,
	.spawn_begin = be_spawn_begin,
	.spawn_export = be_spawn_export,
	.spawn_hold = be_spawn_hold,
	.spawn_started = be_spawn_started,
	.spawn_end = be_spawn_end,
};
