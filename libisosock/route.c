/*
 * The socket calls of the shim: which stack serves what, and the waiting.
 *
 * An AF_INET or AF_INET6 stream or datagram socket is created on both
 * stacks at once:
 * a kernel socket of the same type, whose fd number the application gets
 * (so SO_TYPE, fstat, F_GETFD/F_SETFD, dup and exec behave as the kernel
 * does), and an isostack socket the table maps that fd to.  The kernel
 * socket is the "shadow":
 *   - connect to 127.0.0.0/8 or 0.0.0.0: the isostack socket is closed and
 *     the fd simply becomes the kernel socket it always was (migration);
 *     setsockopt is mirrored onto the shadow, so nothing needs replaying;
 *   - bind to INADDR_ANY: the shadow binds the same port (best effort) and,
 *     on listen, listens too: loopback clients reach the kernel listener,
 *     isostack ones the stack, and accept() takes from both (the socket is
 *     DUAL; the shadow is then always O_NONBLOCK, the application's mode
 *     lives in the file object);
 *   - UDP sockets are DUAL from the start: datagrams to loopback go out of
 *     the shadow, replies come back on it;
 *   - an established isostack TCP connection needs none of that, and a
 *     kernel socket costs ~4.3 KB: an accepted connection's fd is an
 *     eventfd from the start, and a connect() that went to isostack (0 or
 *     EINPROGRESS) swaps the shadow for one (dup3, same number, FD_CLOEXEC
 *     kept).  Such a "light" shadow (ISOSOCK_F_LIGHT) gets from shadow.c
 *     what its kernel socket used to answer: options the stack does not
 *     model, socket ioctls, fstat/statx (interpose_file.c), and the key exec
 *     adoption needs (eventfd id with dev/ino).  /proc/PID/fd shows
 *     anon_inode:[eventfd] for these (known limit, docs/shim.md).
 *
 * Every stack call is made non-blocking; blocking, SO_RCVTIMEO/SNDTIMEO
 * and EINTR-versus-SA_RESTART are handled here (route_block), so a socket
 * served by both stacks waits on both.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shadow.h"
#include "shim.h"

struct isosock_libc isosock_libc;
const struct isosock_be *isosock_be;
struct isosock_config isosock_cfg = { .spin_ns = 50000 };

#define L isosock_libc

static int neg(int r)
{
	return r < 0 ? -errno : r;
}

static ssize_t negz(ssize_t r)
{
	return r < 0 ? -errno : r;
}

void isosock_log(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n = snprintf(buf, sizeof(buf), "isosock[%d]: ", (int)getpid());
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	/* write(2), not stdio: safe in any state the application is in. */
	ssize_t w = L.write ? L.write(2, buf, (size_t)n) : write(2, buf, (size_t)n);
	(void)w;
}

static bool env_flag(const char *name)
{
	const char *v = getenv(name);
	return v && *v && strcmp(v, "0") != 0;
}

void isosock_config_load(void)
{
	isosock_cfg.require = env_flag("ISOSTACK_REQUIRE");
	isosock_cfg.disabled = env_flag("ISOSTACK_DISABLE");
	const char *s = getenv("ISOSOCK_SPIN_NS");
	if (s && *s)
		isosock_cfg.spin_ns = strtoll(s, NULL, 10);
}

bool isosock_env_require(void)
{
	return isosock_cfg.require;
}

int64_t isosock_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- pure routing decisions ------------------------------------------- */

bool isosock_route_socket_wanted(int domain, int type, int protocol)
{
	if (domain != AF_INET && domain != AF_INET6)
		return false;
	int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (base == SOCK_STREAM)
		return protocol == 0 || protocol == IPPROTO_TCP;
	if (base == SOCK_DGRAM)
		return protocol == 0 || protocol == IPPROTO_UDP;
	return false;
}

/* The IPv4 address an IPv6 one stands for (::ffff:a.b.c.d), if it does. */
static bool v4_mapped(const struct sockaddr_in6 *s6, uint32_t *a)
{
	if (!IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
		return false;
	memcpy(a, &s6->sin6_addr.s6_addr[12], 4);
	*a = ntohl(*a);
	return true;
}

enum isosock_route isosock_route_addr(const struct sockaddr *sa, socklen_t len, bool for_bind)
{
	uint32_t a;

	if (sa && len >= sizeof(struct sockaddr_in6) - 4 && sa->sa_family == AF_INET6) {
		/* 24 bytes: SIN6_LEN_RFC2133, which Linux still takes */
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
			return ISOSOCK_ROUTE_KERNEL;
		if (IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr))
			return for_bind ? ISOSOCK_ROUTE_BOTH : ISOSOCK_ROUTE_KERNEL;
		if (!v4_mapped(s6, &a))
			return ISOSOCK_ROUTE_STACK;
	} else if (!sa || len < sizeof(sa_family_t) || sa->sa_family != AF_INET ||
		   len < sizeof(struct sockaddr_in)) {
		return ISOSOCK_ROUTE_KERNEL;
	} else {
		a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
	}
	if ((a >> 24) == 127)
		return ISOSOCK_ROUTE_KERNEL;
	if (a == INADDR_ANY)
		/* connect/sendto to 0.0.0.0 means this host: the kernel. */
		return for_bind ? ISOSOCK_ROUTE_BOTH : ISOSOCK_ROUTE_KERNEL;
	return ISOSOCK_ROUTE_STACK;
}

/* ---- blocking ----------------------------------------------------------- */

/* Would the kernel restart this call after a signal?  Only if it has no
 * timeout and the handler was installed with SA_RESTART.  We cannot tell
 * which signal interrupted us, so: restart when every caught signal's
 * handler has SA_RESTART (the usual case: all or none). */
static bool restart_after_signal(int64_t timeout_ns)
{
	if (timeout_ns >= 0)
		return false;
	for (int sig = 1; sig < NSIG; sig++) {
		struct sigaction sa;
		if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, NULL, &sa) != 0)
			continue;
		if (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN)
			continue;
		if (!(sa.sa_flags & SA_RESTART))
			return false;
	}
	return true;
}

uint32_t isosock_r_poll1(struct isosock_file *f, int fd, uint32_t *gen)
{
	uint32_t ev = 0;
	void *h = f->h;
	if (h && isosock_be)
		ev = isosock_be->poll(h, gen);
	if (atomic_load_explicit(&f->flags, memory_order_relaxed) & ISOSOCK_F_DUAL) {
		struct pollfd p = { .fd = fd, .events = POLLIN | POLLOUT | POLLRDHUP };
		if (L.poll(&p, 1, 0) == 1) {
			/* The shadow of a listener only contributes incoming
			 * connections; a UDP shadow only datagrams to read. */
			ev |= (uint32_t)p.revents & POLLIN;
		}
	}
	return ev;
}

int isosock_r_wait(struct isosock_file *f, int fd, uint32_t events, int64_t timeout_ns)
{
	bool dual = atomic_load_explicit(&f->flags, memory_order_relaxed) & ISOSOCK_F_DUAL;
	if (!dual && isosock_be && isosock_be->wait && f->h)
		return isosock_be->wait(f->h, events, timeout_ns);
	struct pollfd p = { .fd = fd, .events = (short)events };
	int r = isosock_p_ppoll(&p, 1, timeout_ns, NULL);
	if (r < 0)
		return r;
	return r == 0 ? -ETIMEDOUT : 0;
}

/* Edge-triggered epoll: the next arrival in these directions is a new
 * edge (the call met EAGAIN, or is about to wait). */
static void io_bump(struct isosock_file *f, uint32_t events)
{
	if (events & POLLIN)
		atomic_fetch_add_explicit(&f->io_rd, 1, memory_order_relaxed);
	if (events & POLLOUT)
		atomic_fetch_add_explicit(&f->io_wr, 1, memory_order_relaxed);
}

/*
 * After a call said -EAGAIN: returns 0 to retry, or the error to return.
 * *deadline carries the absolute deadline across retries.
 */
static int route_block(struct isosock_file *f, int fd, uint32_t events, int64_t timeo_ns,
		       int64_t *deadline)
{
	io_bump(f, events);
	int64_t left = -1;
	if (timeo_ns > 0) {
		if (*deadline == 0)
			*deadline = isosock_now_ns() + timeo_ns;
		left = *deadline - isosock_now_ns();
		if (left <= 0)
			return -EAGAIN; /* the kernel's choice for SO_*TIMEO */
	}
	for (;;) {
		int r = isosock_r_wait(f, fd, events | POLLERR | POLLHUP, left);
		if (r == -ETIMEDOUT)
			return -EAGAIN;
		if (r == -EINTR) {
			if (restart_after_signal(timeo_ns > 0 ? timeo_ns : -1))
				continue;
			return -EINTR;
		}
		return r;
	}
}

/* Edge-triggered epoll: a call that leaves the socket not readable (or
 * not writable) makes the next arrival an edge, even if no epoll_wait
 * scan saw the gap.  Only sockets in an ET set pay the extra query. */
static void et_note(struct isosock_file *f, uint32_t bit)
{
	if (!(atomic_load_explicit(&f->flags, memory_order_relaxed) & ISOSOCK_F_ET) || !f->h)
		return;
	if (!(isosock_be->poll(f->h, NULL) & bit))
		io_bump(f, bit);
}

static bool nonblocking(const struct isosock_file *f, int flags)
{
	return (flags & MSG_DONTWAIT) ||
	       (atomic_load_explicit(&f->flags, memory_order_relaxed) & ISOSOCK_F_NONBLOCK);
}

static void set_flag(struct isosock_file *f, uint32_t flag, bool on)
{
	if (on)
		atomic_fetch_or_explicit(&f->flags, flag, memory_order_relaxed);
	else
		atomic_fetch_and_explicit(&f->flags, ~flag, memory_order_relaxed);
}

static bool has_flag(const struct isosock_file *f, uint32_t flag)
{
	return atomic_load_explicit(&f->flags, memory_order_relaxed) & flag;
}

/* The kernel fd's O_NONBLOCK: forced on while DUAL, else the app's. */
static void sync_kernel_nonblock(struct isosock_file *f, int fd)
{
	int fl = L.fcntl(fd, F_GETFL);
	if (fl < 0)
		return;
	bool want = has_flag(f, ISOSOCK_F_DUAL) || has_flag(f, ISOSOCK_F_NONBLOCK);
	int nfl = want ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
	if (nfl != fl)
		L.fcntl(fd, F_SETFL, nfl);
}

/* The fd becomes the plain kernel socket it shadows.  The caller still
 * holds its reference to f, whose stack socket is closed here. */
static int migrate_to_kernel(struct isosock_file *f, int fd)
{
	int r = isosock_sh_unlighten(f, fd);
	if (r < 0)
		return r;
	isosock_fd_lock();
	void *h = f->h;
	f->h = NULL;
	set_flag(f, ISOSOCK_F_DUAL, false);
	set_flag(f, ISOSOCK_F_MIGRATED, true);
	isosock_fd_forget(f);
	isosock_fd_unlock();
	if (h && isosock_be)
		isosock_be->close(h);
	sync_kernel_nonblock(f, fd);
	return 0;
}

void isosock_r_release_file(struct isosock_file *f)
{
	void *h = f->h;
	f->h = NULL;
	isosock_sh_release(f);
	/* After fork the back-end decides whether the stack socket is closed
	 * (only when no other process holds it any more). */
	if (h && isosock_be)
		isosock_be->close(h);
}

/* ---- socket / bind / listen / accept / connect -------------------------- */

static int stack_ready(void)
{
	if (!isosock_be || isosock_cfg.disabled)
		return -ENETDOWN;
	isosock_file_release = isosock_r_release_file;
	return isosock_be->attach();
}

int isosock_r_stack_ready(void)
{
	return stack_ready();
}

int isosock_r_socket(int domain, int type, int protocol)
{
	if (!isosock_route_socket_wanted(domain, type, protocol) || isosock_cfg.disabled)
		return neg(L.socket(domain, type, protocol));
	int r = stack_ready();
	if (r == -EACCES) {
		/* The daemon is there and refuses this user: a clear error,
		 * not a quiet fall back to the kernel stack. */
		static _Atomic int denied;
		if (!atomic_exchange(&denied, 1))
			isosock_log("the isostack daemon refuses uid %u (not root, not in its "
				    "control_group; docs/daemon.md): inet sockets fail with "
				    "EACCES", (unsigned)getuid());
		return -EACCES;
	}
	if (r == -ETIMEDOUT) {
		/* be_attach says ETIMEDOUT to the try that found it so, which
		 * took the bound (ISOSOCK_ATTACH_TIMEOUT_MS, isosock.h). */
		static _Atomic int slow_logged;
		if (!atomic_exchange(&slow_logged, 1))
			isosock_log("the isostack daemon did not answer ATTACH within 5 s: %s",
				    isosock_cfg.require ? "inet sockets fail with ENETDOWN" :
				    "using the kernel stack");
		if (!isosock_cfg.require)
			return neg(L.socket(domain, type, protocol));
		return -ENETDOWN;
	}
	if (r < 0) {
		if (!isosock_cfg.require)
			return neg(L.socket(domain, type, protocol));
		static _Atomic int logged;
		if (!atomic_exchange(&logged, 1))
			isosock_log("ISOSTACK_REQUIRE=1 and no isostack daemon (%s): "
				    "inet sockets fail with ENETDOWN", strerror(-r));
		return -ENETDOWN;
	}
	int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
	int kfd = L.socket(domain, type, protocol);
	if (kfd < 0)
		return -errno;
	void *h = NULL;
	r = isosock_be->socket(domain, base, &h);
	if (r < 0)
		goto err_close;
	struct isosock_file *f = isosock_file_new(domain, base, h);
	if (!f) {
		isosock_be->close(h);
		r = -ENOMEM;
		goto err_close;
	}
	if (type & SOCK_NONBLOCK)
		set_flag(f, ISOSOCK_F_NONBLOCK, true);
	if (base == SOCK_DGRAM) {
		set_flag(f, ISOSOCK_F_DUAL, true);
		sync_kernel_nonblock(f, kfd);
	}
	r = isosock_fd_install(kfd, f);
	isosock_file_put(f); /* the table holds it now, or nobody */
	if (r < 0)
		goto err_close;
	return kfd;

err_close:
	L.close(kfd);
	return r;
}

/* Linux checks a bind or connect address's length (its family's
 * sockaddr; SIN6_LEN_RFC2133 for AF_INET6) before its family: a
 * sockaddr_in given to an AF_INET6 socket is EINVAL, a sockaddr_in6-sized
 * one saying AF_INET EAFNOSUPPORT (the stack would see the latter cut to
 * a sockaddr_in).  AF_UNSPEC is the callers' to judge. */
static int addr_len_family(const struct isosock_file *f, const struct sockaddr *sa, socklen_t len)
{
	socklen_t min = f->domain == AF_INET6 ? sizeof(struct sockaddr_in6) - sizeof(uint32_t) :
						sizeof(struct sockaddr_in);
	if (sa == NULL || len < sizeof(sa_family_t) || sa->sa_family == AF_UNSPEC)
		return 0;
	if (len < min)
		return -EINVAL;
	return sa->sa_family != f->domain ? -EAFNOSUPPORT : 0;
}

int isosock_r_bind(struct isosock_file *f, int fd, const struct sockaddr *sa, socklen_t len)
{
	enum isosock_route rt = isosock_route_addr(sa, len, true);
	int e = addr_len_family(f, sa, len);
	if (e < 0)
		return e;
	if (rt == ISOSOCK_ROUTE_KERNEL) {
		if (sa && len >= sizeof(sa_family_t) && sa->sa_family != f->domain)
			return -EAFNOSUPPORT; /* as the socket's family would say */
		int m = migrate_to_kernel(f, fd);
		return m < 0 ? m : neg(L.bind(fd, sa, len));
	}
	int r = isosock_be->bind(f->h, sa, len);
	if (r < 0 || rt != ISOSOCK_ROUTE_BOTH)
		return r;
	/* The shadow takes the same port, for local clients; best effort
	 * (another kernel socket may hold it: then only isostack serves). */
	struct sockaddr_storage me;
	socklen_t ml = sizeof(me);
	if (isosock_be->getsockname(f->h, (struct sockaddr *)&me, &ml) == 0 &&
	    L.bind(fd, (struct sockaddr *)&me, ml) != 0)
		isosock_log("port %u is taken on the kernel stack: local clients "
			    "will not reach this socket",
			    ntohs(((struct sockaddr_in *)&me)->sin_port));
	return 0;
}

static bool shadow_bound(int fd)
{
	struct sockaddr_storage me;   /* sin_port and sin6_port share their place */
	socklen_t ml = sizeof(me);
	return L.getsockname(fd, (struct sockaddr *)&me, &ml) == 0 &&
	       ((struct sockaddr_in *)&me)->sin_port != 0;
}

int isosock_r_listen(struct isosock_file *f, int fd, int backlog)
{
	int r = isosock_be->listen(f->h, backlog);
	if (r < 0)
		return r;
	set_flag(f, ISOSOCK_F_LISTEN, true);
	if (shadow_bound(fd) && L.listen(fd, backlog) == 0) {
		set_flag(f, ISOSOCK_F_DUAL, true);
		sync_kernel_nonblock(f, fd);
	}
	return 0;
}

int isosock_r_accept(struct isosock_file *f, int fd, struct sockaddr *sa, socklen_t *len,
		     int flags)
{
	if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC))
		return -EINVAL;
	int64_t deadline = 0;
	for (;;) {
		if (has_flag(f, ISOSOCK_F_DUAL)) {
			int k = L.accept4(fd, sa, len, flags);
			if (k >= 0)
				return k;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -errno;
		}
		void *nh = NULL;
		int r = isosock_be->accept(f->h, &nh, sa, len);
		if (r >= 0) {
			/* Its fd is an eventfd: a light shadow (shadow.c). */
			int kfd = isosock_sh_accept_fd(flags);
			if (kfd < 0) {
				isosock_be->close(nh);
				return kfd;
			}
			struct isosock_file *nf = isosock_file_new(f->domain, SOCK_STREAM, nh);
			if (!nf) {
				isosock_be->close(nh);
				L.close(kfd);
				return -ENOMEM;
			}
			set_flag(nf, ISOSOCK_F_LIGHT, true);
			if (flags & SOCK_NONBLOCK)
				set_flag(nf, ISOSOCK_F_NONBLOCK, true);
			r = isosock_fd_install(kfd, nf);
			isosock_file_put(nf);
			if (r < 0) {
				L.close(kfd);
				return r;
			}
			et_note(f, POLLIN); /* another pending connection is no new edge */
			return kfd;
		}
		/* The core gives up waiting for a late ACCEPT reply with
		 * ETIMEDOUT (it keeps the connection for the next call); the
		 * kernel never says that: try again. */
		if (r == -ETIMEDOUT)
			r = -EAGAIN;
		if (r != -EAGAIN)
			return r;
		if (nonblocking(f, 0)) {
			io_bump(f, POLLIN);
			return -EAGAIN;
		}
		r = route_block(f, fd, POLLIN, f->rcvtimeo_ns, &deadline);
		if (r < 0)
			return r;
	}
}

static int connect1(struct isosock_file *f, int fd, const struct sockaddr *sa, socklen_t len)
{
	if (!sa || len < sizeof(sa_family_t))
		return -EINVAL;
	if (sa->sa_family == AF_UNSPEC && f->type == SOCK_DGRAM)
		return isosock_be->connect(f->h, sa, len);
	int e = addr_len_family(f, sa, len);
	if (e < 0)
		return e;
	if (isosock_route_addr(sa, len, false) == ISOSOCK_ROUTE_KERNEL) {
		if (sa->sa_family != f->domain)
			return -EAFNOSUPPORT;
		int m = migrate_to_kernel(f, fd);
		return m < 0 ? m : neg(L.connect(fd, sa, len));
	}
	int r = isosock_be->connect(f->h, sa, len);
	if (r == -EISCONN && has_flag(f, ISOSOCK_F_CONNECTING)) {
		/* The kernel's answer to the first connect() after a
		 * non-blocking one completed is 0, then EISCONN. */
		set_flag(f, ISOSOCK_F_CONNECTING, false);
		return 0;
	}
	if (f->type == SOCK_DGRAM) {
		if (r == 0)
			set_flag(f, ISOSOCK_F_DUAL, false);
		return r;
	}
	/* A blocking connect() on a connect in progress (one a signal
	 * interrupted) waits for it too, as the kernel's does. */
	bool again = r == -EALREADY;
	if (r != -EINPROGRESS && !(again && !nonblocking(f, 0)))
		return r;
	if (nonblocking(f, 0)) {
		set_flag(f, ISOSOCK_F_CONNECTING, true);
		return -EINPROGRESS;
	}
	/* Blocking connect: wait for the outcome.  SO_SNDTIMEO expiry
	 * returns EINPROGRESS (EALREADY for a second call), as the kernel
	 * does; the connect goes on. */
	int64_t deadline = 0;
	for (;;) {
		uint32_t ev = isosock_r_poll1(f, fd, NULL);
		if (ev & (POLLOUT | POLLERR | POLLHUP))
			break;
		r = route_block(f, fd, POLLOUT, f->sndtimeo_ns, &deadline);
		if (r < 0) {
			/* Interrupted or timed out, the connect goes on: the
			 * kernel's socket stays "connecting", so the next
			 * connect() after it completed says 0, then EISCONN. */
			set_flag(f, ISOSOCK_F_CONNECTING, true);
			if (r == -EAGAIN)
				return again ? -EALREADY : -EINPROGRESS;
			return r;
		}
	}
	set_flag(f, ISOSOCK_F_CONNECTING, false); /* the kernel's SS_CONNECTED */
	return isosock_be->so_error(f->h);
}

int isosock_r_connect(struct isosock_file *f, int fd, const struct sockaddr *sa, socklen_t len)
{
	int r = connect1(f, fd, sa, len);
	/* A stream that went to isostack needs its kernel socket no more:
	 * the fd becomes a light shadow (shadow.c). */
	if ((r == 0 || r == -EINPROGRESS) && f->type == SOCK_STREAM && f->h &&
	    !has_flag(f, ISOSOCK_F_MIGRATED))
		isosock_sh_lighten(f, fd);
	return r;
}

/* ---- data ---------------------------------------------------------------- */

/* Drops n bytes from the front of an iovec array copy. */
static void iov_advance(struct iovec *iov, int *cnt, size_t n)
{
	int i = 0;
	while (i < *cnt && n >= iov[i].iov_len) {
		n -= iov[i].iov_len;
		i++;
	}
	if (i < *cnt) {
		iov[i].iov_base = (char *)iov[i].iov_base + n;
		iov[i].iov_len -= n;
	}
	memmove(iov, iov + i, sizeof(*iov) * (size_t)(*cnt - i));
	*cnt -= i;
}

static size_t iov_total(const struct iovec *iov, size_t cnt)
{
	size_t t = 0;
	for (size_t i = 0; i < cnt; i++)
		t += iov[i].iov_len;
	return t;
}

static void raise_sigpipe(int flags)
{
	if (!(flags & MSG_NOSIGNAL))
		raise(SIGPIPE);
}

ssize_t isosock_r_sendmsg(struct isosock_file *f, int fd, const struct msghdr *m, int flags)
{
	if (m->msg_name && m->msg_namelen &&
	    isosock_route_addr(m->msg_name, m->msg_namelen, false) == ISOSOCK_ROUTE_KERNEL &&
	    f->type == SOCK_DGRAM) {
		/* A datagram to this host leaves through the shadow. */
		ssize_t r = L.sendmsg(fd, m, flags | MSG_DONTWAIT);
		return negz(r);
	}
	if (m->msg_iovlen > IOV_MAX)
		return -EMSGSIZE;
	struct iovec iov[m->msg_iovlen ? m->msg_iovlen : 1];
	int cnt = (int)m->msg_iovlen;
	memcpy(iov, m->msg_iov, sizeof(*iov) * (size_t)cnt);
	size_t total = iov_total(iov, (size_t)cnt), done = 0;
	int64_t deadline = 0;
	for (;;) {
		struct msghdr mm = *m;
		mm.msg_iov = iov;
		mm.msg_iovlen = (size_t)cnt;
		ssize_t r = isosock_be->sendmsg(f->h, &mm, flags | MSG_DONTWAIT);
		if (r > 0) {
			done += (size_t)r;
			et_note(f, POLLOUT);
			if (done >= total || f->type == SOCK_DGRAM)
				return (ssize_t)done;
			iov_advance(iov, &cnt, (size_t)r);
			if (nonblocking(f, flags))
				return (ssize_t)done;
			continue;
		}
		if (r == 0 && total == 0)
			return 0;
		/* The kernel's answer for a stream that is not connected
		 * (never was, or the connect failed) is EPIPE, with SIGPIPE. */
		if (r == -ENOTCONN && f->type == SOCK_STREAM)
			r = -EPIPE;
		if (r == -EPIPE)
			raise_sigpipe(flags);
		if (r != -EAGAIN && r != 0)
			return done ? (ssize_t)done : r;
		if (nonblocking(f, flags)) {
			io_bump(f, POLLOUT);
			return done ? (ssize_t)done : -EAGAIN;
		}
		int w = route_block(f, fd, POLLOUT, f->sndtimeo_ns, &deadline);
		if (w < 0)
			return done ? (ssize_t)done : w;
	}
}

ssize_t isosock_r_recvmsg(struct isosock_file *f, int fd, struct msghdr *m, int flags)
{
	int64_t deadline = 0;
	size_t total = iov_total(m->msg_iov, m->msg_iovlen);
	for (;;) {
		if (has_flag(f, ISOSOCK_F_DUAL) && f->type == SOCK_DGRAM) {
			ssize_t k = L.recvmsg(fd, m, flags | MSG_DONTWAIT);
			if (k >= 0)
				return k;
			if (errno != EAGAIN)
				return -errno;
		}
		ssize_t r = isosock_be->recvmsg(f->h, m, (flags | MSG_DONTWAIT) & ~MSG_WAITALL);
		if (r > 0 && (flags & MSG_WAITALL) && f->type == SOCK_STREAM &&
		    (size_t)r < total && !nonblocking(f, flags) && !(flags & MSG_PEEK)) {
			/* Keep filling, with the kernel's rules: return what
			 * we have on EOF, error, timeout or signal. */
			struct iovec iov[m->msg_iovlen];
			int cnt = (int)m->msg_iovlen;
			memcpy(iov, m->msg_iov, sizeof(iov));
			size_t done = (size_t)r;
			iov_advance(iov, &cnt, done);
			while (done < total) {
				struct msghdr mm = *m;
				mm.msg_iov = iov;
				mm.msg_iovlen = (size_t)cnt;
				ssize_t q = isosock_be->recvmsg(f->h, &mm,
								(flags | MSG_DONTWAIT) & ~MSG_WAITALL);
				if (q > 0) {
					done += (size_t)q;
					iov_advance(iov, &cnt, (size_t)q);
					continue;
				}
				if (q != -EAGAIN)
					break;
				if (route_block(f, fd, POLLIN | POLLRDHUP, f->rcvtimeo_ns, &deadline) < 0)
					break;
			}
			return (ssize_t)done;
		}
		if (r != -EAGAIN) {
			if (r > 0 && !(flags & MSG_PEEK))
				et_note(f, POLLIN);
			return r;
		}
		io_bump(f, POLLIN);
		if (nonblocking(f, flags))
			return -EAGAIN;
		int w = route_block(f, fd, POLLIN | POLLRDHUP, f->rcvtimeo_ns, &deadline);
		if (w < 0)
			return w;
	}
}

ssize_t isosock_r_sendfile(struct isosock_file *f, int out_fd, int in_fd, off_t *off,
			   size_t count)
{
	char buf[16384];
	size_t done = 0;
	off_t pos = off ? *off : 0;
	while (done < count) {
		size_t want = count - done < sizeof(buf) ? count - done : sizeof(buf);
		ssize_t n = off ? pread(in_fd, buf, want, pos) : L.read(in_fd, buf, want);
		if (n < 0) {
			if (done)
				break;
			return -errno;
		}
		if (n == 0)
			break;
		struct iovec v = { buf, (size_t)n };
		struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1 };
		ssize_t s = isosock_r_sendmsg(f, out_fd, &m, 0);
		if (s < 0) {
			if (!off)
				lseek(in_fd, -n, SEEK_CUR);
			if (done)
				break;
			return s;
		}
		if (s < n && !off)
			lseek(in_fd, -(n - s), SEEK_CUR);
		done += (size_t)s;
		pos += s;
		if (s < n)
			break;
	}
	if (off)
		*off = pos;
	return (ssize_t)done;
}

/* ---- splice, tee, vmsplice ------------------------------------------------ */
/*
 * splice() between an isostack socket and a pipe (the kernel wants one
 * pipe end).  The user's pipe is only ever touched by the kernel's own
 * splice and tee, through a private pipe of the call, so the pipe side
 * waits, says EAGAIN (SPLICE_F_NONBLOCK or the pipe's O_NONBLOCK), EPIPE
 * with SIGPIPE, or restarts after a signal exactly as for a kernel socket;
 * the socket side waits as recv/send do (its own O_NONBLOCK, SO_*TIMEO,
 * EINTR/SA_RESTART).  Nothing is taken that did not move: socket -> pipe
 * peeks, moves the peeked bytes on, then takes off the socket what the
 * pipe took; pipe -> socket tee()s, sends, then takes off the pipe what
 * was sent.  Cost: a private pipe and two copies per call.  (Another
 * reader of the same pipe or socket between the two steps would see bytes
 * twice; the kernel holds the pipe lock instead.)
 */
#define SPLICE_CHUNK 16384
#define SPLICE_FLAGS (SPLICE_F_MOVE | SPLICE_F_NONBLOCK | SPLICE_F_MORE | SPLICE_F_GIFT)

static ssize_t sys_splice(int in, int out, size_t len, unsigned int flags)
{
	if (L.splice)
		return negz(L.splice(in, NULL, out, NULL, len, flags));
	return negz(syscall(SYS_splice, in, NULL, out, NULL, len, flags));
}

static ssize_t sys_tee(int in, int out, size_t len, unsigned int flags)
{
	if (L.tee)
		return negz(L.tee(in, out, len, flags));
	return negz(syscall(SYS_tee, in, out, len, flags));
}

static bool is_pipe(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
}

/* Reads exactly n bytes that are known to be in the pipe. */
static void pipe_take(int fd, char *buf, size_t n)
{
	while (n > 0) {
		ssize_t r = L.read(fd, buf, n < SPLICE_CHUNK ? n : SPLICE_CHUNK);
		if (r <= 0 && !(r < 0 && errno == EINTR))
			return; /* another reader took them: nothing to do */
		if (r > 0)
			n -= (size_t)r;
	}
}

/* The kernel's first step for a pipe it writes to: EPIPE (and SIGPIPE)
 * with no reader, else wait for room unless non-blocking. */
static int pipe_wait_room(int pfd, bool nb)
{
	for (;;) {
		struct pollfd p = { .fd = pfd, .events = POLLOUT };
		int r = L.poll(&p, 1, nb ? 0 : -1);
		if (r < 0) {
			if (errno == EINTR && restart_after_signal(-1))
				continue;
			return -errno;
		}
		if (p.revents & POLLERR) {
			raise(SIGPIPE);
			return -EPIPE;
		}
		if (p.revents & POLLOUT)
			return 0;
		if (nb)
			return -EAGAIN;
	}
}

static ssize_t splice_sock_to_pipe(struct isosock_file *f, int fd, int pfd, int pfl,
				   size_t len, unsigned int flags)
{
	int r = pipe_wait_room(pfd, (flags & SPLICE_F_NONBLOCK) || (pfl & O_NONBLOCK));
	if (r < 0)
		return r;
	int pp[2];
	if (pipe2(pp, O_CLOEXEC) < 0)
		return -errno;
	char buf[SPLICE_CHUNK];
	size_t done = 0;
	ssize_t err = 0;
	while (done < len) {
		size_t want = len - done < sizeof(buf) ? len - done : sizeof(buf);
		struct iovec v = { buf, want };
		struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1 };
		/* Only the first chunk may wait, as the kernel's loop. */
		unsigned int nb = done ? SPLICE_F_NONBLOCK : 0;
		ssize_t n = isosock_r_recvmsg(f, fd, &m, MSG_PEEK | (done ? MSG_DONTWAIT : 0));
		if (n <= 0) {
			err = n;
			break;
		}
		/* The private pipe is empty and holds 64 KiB: never blocks. */
		if (L.write(pp[1], buf, (size_t)n) != n) {
			err = -EIO;
			break;
		}
		ssize_t moved = sys_splice(pp[0], pfd, (size_t)n,
					   (flags & (SPLICE_F_NONBLOCK | SPLICE_F_MORE)) | nb);
		if (moved > 0) {
			v.iov_len = (size_t)moved;
			m = (struct msghdr){ .msg_iov = &v, .msg_iovlen = 1 };
			isosock_r_recvmsg(f, fd, &m, MSG_DONTWAIT); /* peeked: there */
			done += (size_t)moved;
		}
		if (moved != n) {
			if (moved < 0)
				err = moved;
			break;
		}
		if (f->type != SOCK_STREAM)
			break; /* one datagram per call */
	}
	L.close(pp[0]);
	L.close(pp[1]);
	return done ? (ssize_t)done : err;
}

static ssize_t splice_pipe_to_sock(int pfd, struct isosock_file *f, int fd, size_t len,
				   unsigned int flags)
{
	int pp[2];
	if (pipe2(pp, O_CLOEXEC) < 0)
		return -errno;
	char buf[SPLICE_CHUNK];
	size_t done = 0;
	ssize_t err = 0;
	while (done < len) {
		size_t want = len - done < sizeof(buf) ? len - done : sizeof(buf);
		/* tee waits for data, or says EAGAIN / 0 (no writer), as
		 * splice would; the user's pipe keeps the bytes. */
		ssize_t n = sys_tee(pfd, pp[1], want,
				    (flags & SPLICE_F_NONBLOCK) | (done ? SPLICE_F_NONBLOCK : 0));
		if (n <= 0) {
			err = n;
			break;
		}
		pipe_take(pp[0], buf, (size_t)n);
		struct iovec v = { buf, (size_t)n };
		struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1 };
		/* No MSG_NOSIGNAL: the kernel's splice raises SIGPIPE too. */
		ssize_t s = isosock_r_sendmsg(f, fd, &m, (flags & SPLICE_F_MORE) ? MSG_MORE : 0);
		if (s > 0) {
			pipe_take(pfd, buf, (size_t)s);
			done += (size_t)s;
		}
		if (s != n) {
			if (s < 0)
				err = s;
			break;
		}
		if (f->type != SOCK_STREAM)
			break;
	}
	L.close(pp[0]);
	L.close(pp[1]);
	return done ? (ssize_t)done : err;
}

ssize_t isosock_r_splice(struct isosock_file *fin, int in, loff_t *off_in,
			 struct isosock_file *fout, int out, loff_t *off_out,
			 size_t len, unsigned int flags)
{
	/* The kernel's checks, in its order. */
	if (len == 0)
		return 0;
	if (flags & ~SPLICE_FLAGS)
		return -EINVAL;
	int ifl = L.fcntl(in, F_GETFL), ofl = L.fcntl(out, F_GETFL);
	if (ifl < 0 || ofl < 0 || (ifl & O_PATH) || (ofl & O_PATH))
		return -EBADF;
	bool ipipe = !fin && is_pipe(in), opipe = !fout && is_pipe(out);
	if ((ipipe && off_in) || (opipe && off_out))
		return -ESPIPE;
	if ((ifl & O_ACCMODE) == O_WRONLY || (ofl & O_ACCMODE) == O_RDONLY)
		return -EBADF;
	/* No pipe end (two sockets, a socket and a file), or an offset for
	 * the socket (it has no pread/pwrite): the kernel says EINVAL. */
	if ((!ipipe && !opipe) || off_in || off_out)
		return -EINVAL;
	if (opipe)
		return splice_sock_to_pipe(fin, in, out, ofl, len, flags);
	return splice_pipe_to_sock(in, fout, out, len, flags);
}

/* tee() wants two pipes: a socket is EINVAL, after the kernel's checks. */
ssize_t isosock_r_tee(int in, int out, size_t len, unsigned int flags)
{
	if (flags & ~SPLICE_FLAGS)
		return -EINVAL;
	if (len == 0)
		return 0;
	if (L.fcntl(in, F_GETFL) < 0 || L.fcntl(out, F_GETFL) < 0)
		return -EBADF;
	return -EINVAL;
}

/* vmsplice() on a socket: the kernel finds no pipe and says EBADF (once
 * the flags and the iovec count passed, and if there is anything to do). */
ssize_t isosock_r_vmsplice(const struct iovec *iov, unsigned long nr, unsigned int flags)
{
	if (flags & ~SPLICE_FLAGS)
		return -EINVAL;
	if (nr > IOV_MAX)
		return -EINVAL;
	if (iov_total(iov, nr) == 0)
		return 0;
	return -EBADF;
}

/* ---- sendmmsg / recvmmsg ------------------------------------------------- */

int isosock_r_sendmmsg(struct isosock_file *f, int fd, struct mmsghdr *v, unsigned int n,
		       int flags)
{
	if (n > IOV_MAX)
		n = IOV_MAX; /* the kernel's UIO_MAXIOV cap */
	unsigned int i;
	for (i = 0; i < n; i++) {
		ssize_t r = isosock_r_sendmsg(f, fd, &v[i].msg_hdr, flags);
		if (r < 0)
			return i ? (int)i : (int)r;
		v[i].msg_len = (unsigned int)r;
	}
	return (int)i;
}

/* Linux do_recvmmsg: the timeout is checked only after each datagram
 * (recvmmsg(2), BUGS), MSG_WAITFORONE makes every call after the first
 * non-blocking, an error after the first datagram ends the batch. */
int isosock_r_recvmmsg(struct isosock_file *f, int fd, struct mmsghdr *v, unsigned int n,
		       int flags, struct timespec *timeout)
{
	int64_t end = 0;
	if (timeout) {
		if (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= 1000000000)
			return -EINVAL;
		int64_t ns = timeout->tv_sec > INT64_MAX / 1000000000 - 1
			? INT64_MAX / 2
			: (int64_t)timeout->tv_sec * 1000000000 + timeout->tv_nsec;
		end = isosock_now_ns() + ns;
	}
	if (n > IOV_MAX)
		n = IOV_MAX;
	int fl = flags & ~MSG_WAITFORONE;
	unsigned int i = 0;
	ssize_t err = 0;
	while (i < n) {
		v[i].msg_hdr.msg_flags = 0;
		err = isosock_r_recvmsg(f, fd, &v[i].msg_hdr, fl);
		if (err < 0)
			break;
		v[i].msg_len = (unsigned int)err;
		i++;
		if (flags & MSG_WAITFORONE)
			fl |= MSG_DONTWAIT;
		if (timeout) {
			int64_t left = end - isosock_now_ns();
			if (left < 0)
				left = 0;
			timeout->tv_sec = left / 1000000000;
			timeout->tv_nsec = left % 1000000000;
			if (left == 0)
				break;
		}
		if (v[i - 1].msg_hdr.msg_flags & MSG_OOB)
			break;
	}
	if (i == 0 && err < 0)
		return (int)err;
	return (int)i;
}

/* ---- close, dup ----------------------------------------------------------- */

int isosock_r_close(int fd)
{
	/* The table entry goes before the kernel fd does, so a thread that
	 * gets the fd number next from open() is never routed to isostack. */
	isosock_fd_lock();
	struct isosock_file *f = isosock_fd_remove(fd);
	isosock_e_closed(fd);
	int r = neg(L.close(fd));
	isosock_fd_unlock();
	if (f)
		isosock_file_put(f);
	return r;
}

/* ---- close_range ----------------------------------------------------------- */

static int libc_close_range(unsigned int first, unsigned int last, int flags)
{
	if (L.close_range)
		return neg(L.close_range(first, last, flags));
	return neg((int)syscall(SYS_close_range, first, last, (unsigned int)flags));
}

/* Highest fd number + 1 worth scanning for our own fds and epoll lists:
 * no fd can be opened at or above the soft RLIMIT_NOFILE, except one
 * opened before the limit was lowered (not covered). */
static unsigned int scan_bound(void)
{
	struct rlimit rl;
	unsigned int b = 1u << 20;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < b)
		b = (unsigned int)rl.rlim_cur;
	unsigned int lim = (unsigned int)isosock_fd_limit();
	return lim > b ? lim : b;
}

/* Whether another thread shares our fd table (so CLOSE_RANGE_UNSHARE
 * really unshares): /proc/self/task has 2 + threads links. */
static bool fd_table_shared(void)
{
	struct stat st;
	if (stat("/proc/self/task", &st) != 0)
		return true; /* unknown: assume shared, touch nothing */
	return st.st_nlink > 3;
}

int isosock_r_close_range(unsigned int first, unsigned int last, int flags)
{
	if (first > last || (flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC)))
		return -EINVAL;
	/* Marking close-on-exec: the kernel flag is the only state (our own
	 * fds are O_CLOEXEC already). */
	if (flags & CLOSE_RANGE_CLOEXEC)
		return libc_close_range(first, last, flags);
	unsigned int bound = scan_bound();
	unsigned int top = last < bound ? last : bound - 1;
	/* With CLOSE_RANGE_UNSHARE and other threads sharing the table, the
	 * range closes in the caller's private copy only: the sockets stay
	 * open (and mapped) for the others, so the shim closes nothing. */
	if (!(flags & CLOSE_RANGE_UNSHARE) || !fd_table_shared()) {
		for (unsigned int fd = first; fd <= top && first < bound; fd++) {
			if (isosock_fd_get_peek((int)fd) || isosock_e_is_emulated((int)fd) ||
			    isosock_e_valid((int)fd))
				isosock_r_close((int)fd);
		}
	}
	/* libc for the rest, in pieces around the stack's private fds. */
	unsigned int lo = first;
	for (;;) {
		unsigned int p = lo;
		while (p <= top && p >= first && !isosock_r_private_fd((int)p))
			p++;
		bool found = p <= top && p >= first;
		unsigned int hi = found ? p - 1 : last;
		if (!found || p > lo) {
			int r = libc_close_range(lo, hi, flags);
			if (r < 0)
				return r;
		}
		if (!found || p == last)
			return 0;
		lo = p + 1;
	}
}

/* glibc's closefrom() calls close_range internally, past our symbol, so it
 * has its own entry point with the same close path.  On a kernel without
 * close_range, glibc falls back to closing what /proc/self/fd lists; here
 * every number up to scan_bound() is closed instead (the same fds, without
 * opening a directory while closing). */
int isosock_r_closefrom(int lowfd)
{
	unsigned int first = lowfd < 0 ? 0 : (unsigned int)lowfd;
	int r = isosock_r_close_range(first, ~0u, 0);
	if (r != -ENOSYS)
		return r;
	/* close_range closed the isostack sockets and epoll fds before the
	 * kernel said ENOSYS: only kernel fds are left. */
	unsigned int bound = scan_bound();
	for (unsigned int fd = first; fd < bound; fd++)
		if (!isosock_r_private_fd((int)fd))
			L.close((int)fd);
	return 0;
}

int isosock_r_dup(int oldfd, int newfd, int flags, int how)
{
	isosock_fd_lock();
	int r;
	switch (how) {
	case 0: r = L.dup(oldfd); break;
	case 1: r = L.dup2(oldfd, newfd); break;
	case 2: r = L.dup3(oldfd, newfd, flags); break;
	case 3: r = L.fcntl(oldfd, F_DUPFD, newfd); break;
	default: r = L.fcntl(oldfd, F_DUPFD_CLOEXEC, newfd); break;
	}
	if (r < 0) {
		r = -errno;
		isosock_fd_unlock();
		return r;
	}
	struct isosock_file *old = NULL;
	if (r != oldfd) {
		old = isosock_fd_remove(r); /* dup2 closed what was there */
		isosock_e_closed(r);
		struct isosock_file *f = isosock_fd_get(oldfd);
		if (f) {
			isosock_fd_install(r, f);
			isosock_file_put(f);
		}
	}
	isosock_fd_unlock();
	if (old)
		isosock_file_put(old);
	return r;
}

/* ---- options, names, fcntl, ioctl --------------------------------------- */

int isosock_r_shutdown(struct isosock_file *f, int fd, int how)
{
	(void)fd;
	int r = isosock_be->shutdown(f->h, how);
	if (r == 0 && (how == SHUT_WR || how == SHUT_RDWR))
		set_flag(f, ISOSOCK_F_SHUT_WR, true);
	io_bump(f, POLLIN | POLLOUT); /* the kernel wakes every waiter */
	return r;
}

int isosock_r_getsockname(struct isosock_file *f, int fd, struct sockaddr *sa, socklen_t *len)
{
	(void)fd;
	return isosock_be->getsockname(f->h, sa, len);
}

int isosock_r_getpeername(struct isosock_file *f, int fd, struct sockaddr *sa, socklen_t *len)
{
	(void)fd;
	return isosock_be->getpeername(f->h, sa, len);
}

static int64_t tv_to_ns(const void *v, socklen_t len)
{
	if (len < sizeof(struct timeval))
		return -2;
	const struct timeval *tv = v;
	if (tv->tv_usec < 0 || tv->tv_usec >= 1000000)
		return -2;
	if (tv->tv_sec < 0 || (tv->tv_sec == 0 && tv->tv_usec == 0))
		return -1;
	return (int64_t)tv->tv_sec * 1000000000 + (int64_t)tv->tv_usec * 1000;
}

int isosock_r_setsockopt(struct isosock_file *f, int fd, int level, int name,
			 const void *v, socklen_t len)
{
	/* Mirrored onto the shadow first: it must carry SO_REUSEADDR before
	 * it binds, and keeps every option across a loopback migration.  A
	 * light shadow has no kernel socket: the kernel's verdict comes from
	 * shadow.c, where needed (the timeouts, options the stack lacks). */
	bool light = isosock_sh_light(f);
	bool timeo = level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO);
	int k = 0;
	if (f->type == SOCK_STREAM && isosock_opt_refused(level, name))
		return -ENOPROTOOPT;      /* not the shadow's verdict: not honoured */
	if (!light)
		k = neg(L.setsockopt(fd, level, name, v, len));
	else if (timeo)
		k = isosock_sh_opt_verdict(f->domain, level, name, v, len);
	if (timeo) {
		if (k < 0)
			return k;
		/* Kept for a light shadow, now or after a connect. */
		isosock_sh_opt_keep(f, level, name, v, len);
		int64_t ns = tv_to_ns(v, len);
		if (ns == -2)
			return -EINVAL;
		if (name == SO_RCVTIMEO)
			f->rcvtimeo_ns = ns;
		else
			f->sndtimeo_ns = ns;
	}
	int r = isosock_be->setsockopt(f->h, level, name, v, len);
	/* Options the stack does not model (IP_TOS, SO_PRIORITY...) keep
	 * the kernel's verdict on the shadow. */
	if (r == -ENOPROTOOPT) {
		if (light)
			k = isosock_sh_opt_verdict(f->domain, level, name, v, len);
		if (k == 0 && !has_flag(f, ISOSOCK_F_LISTEN))
			isosock_sh_opt_keep(f, level, name, v, len);
		if (k == 0)
			return 0;
	}
	return r;
}

int isosock_r_getsockopt(struct isosock_file *f, int fd, int level, int name,
			 void *v, socklen_t *len)
{
	if (f->type == SOCK_STREAM && isosock_opt_refused(level, name))
		return -ENOPROTOOPT;
	if (level == SOL_SOCKET) {
		switch (name) {
		case SO_TYPE: case SO_DOMAIN: case SO_PROTOCOL:
		case SO_RCVTIMEO: case SO_SNDTIMEO:
			if (isosock_sh_light(f))
				return isosock_sh_getsockopt(f, level, name, v, len);
			return neg(L.getsockopt(fd, level, name, v, len));
		case SO_ERROR:
			if (!v || !len || *len < sizeof(int))
				return -EINVAL;
			/* Reading SO_ERROR does not end the connect for the
			 * kernel: the next connect() still returns 0 once. */
			*(int *)v = -isosock_be->so_error(f->h);
			*len = sizeof(int);
			return 0;
		default:
			break;
		}
	}
	socklen_t want = len ? *len : 0;
	int r = isosock_be->getsockopt(f->h, level, name, v, len);
	if (r == 0 && level == IPPROTO_TCP && name == TCP_INFO && !isosock_sh_light(f) &&
	    f->type == SOCK_STREAM) {
		/* As long as the kernel's struct: what it adds past the
		 * stack's fields reads as zero (docs/shim.md) */
		unsigned char k[512];
		socklen_t kl = want < sizeof(k) ? want : sizeof(k);
		if (L.getsockopt(fd, level, name, k, &kl) == 0 && kl > *len) {
			memset((char *)v + *len, 0, kl - *len);
			*len = kl;
		}
	}
	if (r == -ENOPROTOOPT && isosock_sh_light(f))
		return isosock_sh_getsockopt(f, level, name, v, len);
	if (r == -ENOPROTOOPT)
		return neg(L.getsockopt(fd, level, name, v, len));
	return r;
}

int isosock_r_fcntl(struct isosock_file *f, int fd, int cmd, long arg)
{
	switch (cmd) {
	case F_GETFL: {
		int fl = L.fcntl(fd, F_GETFL);
		if (fl < 0)
			return -errno;
		fl &= ~O_NONBLOCK;
		return has_flag(f, ISOSOCK_F_NONBLOCK) ? fl | O_NONBLOCK : fl;
	}
	case F_SETFL:
		set_flag(f, ISOSOCK_F_NONBLOCK, arg & O_NONBLOCK);
		if (has_flag(f, ISOSOCK_F_DUAL))
			arg |= O_NONBLOCK;
		return neg(L.fcntl(fd, F_SETFL, arg));
	case F_DUPFD:
		return isosock_r_dup(fd, (int)arg, 0, 3);
	case F_DUPFD_CLOEXEC:
		return isosock_r_dup(fd, (int)arg, 0, 4);
	default:
		return neg(L.fcntl(fd, cmd, arg));
	}
}

int isosock_r_ioctl(struct isosock_file *f, int fd, unsigned long req, void *arg)
{
	switch (req) {
	case FIONBIO: {
		if (!arg)
			return -EFAULT;
		bool on = *(int *)arg != 0;
		long fl = L.fcntl(fd, F_GETFL);
		if (fl < 0)
			return -errno;
		return isosock_r_fcntl(f, fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
	}
	case FIONREAD: {
		if (!arg)
			return -EFAULT;
		int n = isosock_be->nread(f->h);
		if (n < 0)
			return n;
		int k = 0;
		if (has_flag(f, ISOSOCK_F_DUAL) && f->type == SOCK_DGRAM &&
		    L.ioctl(fd, FIONREAD, &k) == 0 && k > n)
			n = k;
		*(int *)arg = n;
		return 0;
	}
	case TIOCOUTQ: {            /* SIOCOUTQ */
		if (!arg)
			return -EFAULT;
		if (f->type != SOCK_STREAM || !isosock_be->outq)
			break;
		int n = isosock_be->outq(f->h);
		if (n < 0)
			return n;
		*(int *)arg = n;
		return 0;
	}
	default:
		break;
	}
	if (isosock_sh_light(f))
		return isosock_sh_ioctl(f, fd, req, arg);
	return neg(L.ioctl(fd, req, arg));
}
