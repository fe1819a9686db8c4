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
 * and EINTR-versus-SA_RESTART are handled here (isosock__route_block), so
 * a socket served by both stacks waits on both.
 *
 * This file: configuration, the routing decisions, blocking, socket/bind/
 * listen/accept/connect and the option calls; the data calls are in
 * route_data.c, close and dup in route_close.c, fork and exec in
 * route_fork.c, their shared helpers in route_internal.h.
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

#include "route_internal.h"
#include "shadow.h"
#include "shim.h"

struct isosock_libc isosock_libc;
const struct isosock_be *isosock_be;
struct isosock_config isosock_cfg = { .spin_ns = 50000 };

#define L isosock_libc

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
bool isosock__restart_after_signal(int64_t timeout_ns)
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

/*
 * After a call said -EAGAIN: returns 0 to retry, or the error to return.
 * *deadline carries the absolute deadline across retries.
 */
int isosock__route_block(struct isosock_file *f, int fd, uint32_t events, int64_t timeo_ns,
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
			if (isosock__restart_after_signal(timeo_ns > 0 ? timeo_ns : -1))
				continue;
			return -EINTR;
		}
		return r;
	}
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
		r = isosock__route_block(f, fd, POLLIN, f->rcvtimeo_ns, &deadline);
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
		r = isosock__route_block(f, fd, POLLOUT, f->sndtimeo_ns, &deadline);
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
