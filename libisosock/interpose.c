/*
 * The libc symbols libisosock.so exports.  Each one: resolve libc (lazily:
 * another library's constructor may call socket() before ours runs), look
 * the fd up in the fd table, call the routing layer (route.c, poll.c,
 * epoll.c) for an isostack socket or libc untouched for anything else, and
 * turn a -errno result into errno.  No socket logic lives here.
 *
 * glibc's _FORTIFY_SOURCE variants (__read_chk, __recv_chk, __poll_chk...)
 * and the 64-bit aliases (fcntl64, sendfile64) are exported too: Debian
 * builds programs with fortification, so they call those names.
 */
/* Our symbol names must be the plain ones (fcntl, sendfile), not the
 * header's 64-bit redirections; on LP64 both take the same arguments. */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim.h"

#define EXPORT __attribute__((visibility("default")))
#define L isosock_libc

extern const struct isosock_be isosock_be_core;

static _Atomic int libc_ready;

/* Process calls only this file makes (not in isosock_libc: no other layer
 * needs them). */
typedef int spawn_fn(pid_t *, const char *, const posix_spawn_file_actions_t *,
		     const posix_spawnattr_t *, char *const[], char *const[]);
static spawn_fn *libc_posix_spawn, *libc_posix_spawnp;
static FILE *(*libc_popen)(const char *, const char *);
static int (*libc_pclose)(FILE *);

static void atfork_prepare(void)
{
	isosock_r_atfork_prepare();
}

static void atfork_parent(void)
{
	isosock_r_atfork_parent(false);
}

static void atfork_child(void)
{
	isosock_r_atfork_child();
}

/* pthread_atfork, not just our fork(): handlers also run for fork()
 * calls glibc makes itself, and after the application's own prepare
 * handlers (which may still use sockets). */
static void register_atfork(void)
{
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

static void resolve(void)
{
#define R(name) *(void **)&L.name = dlsym(RTLD_NEXT, #name)
	R(socket); R(bind); R(listen); R(accept); R(accept4); R(connect);
	R(send); R(recv); R(sendto); R(recvfrom); R(sendmsg); R(recvmsg);
	R(read); R(write); R(readv); R(writev); R(sendfile); R(close);
	R(shutdown); R(getsockname); R(getpeername); R(setsockopt);
	R(getsockopt); R(fcntl); R(ioctl); R(dup); R(dup2); R(dup3);
	R(poll); R(ppoll); R(select); R(pselect); R(epoll_create);
	R(epoll_create1); R(epoll_ctl); R(epoll_wait); R(epoll_pwait); R(fork);
	R(wait4); R(waitid); R(fdopen);
	R(sendmmsg); R(recvmmsg); R(epoll_pwait2); R(close_range);
	R(execve); R(execvpe); R(fexecve);
	R(splice); R(tee); R(vmsplice);
#undef R
	*(void **)&libc_posix_spawn = dlsym(RTLD_NEXT, "posix_spawn");
	*(void **)&libc_posix_spawnp = dlsym(RTLD_NEXT, "posix_spawnp");
	*(void **)&libc_popen = dlsym(RTLD_NEXT, "popen");
	*(void **)&libc_pclose = dlsym(RTLD_NEXT, "pclose");
	isosock_config_load();
	isosock_fd_init();
	isosock_be = &isosock_be_core;
	static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
	pthread_once(&atfork_once, register_atfork);
	/* A1: pairs with the acquire in ensure(): the table is complete. */
	atomic_store_explicit(&libc_ready, 1, memory_order_release);
}

static inline void ensure(void)
{
	if (__builtin_expect(!atomic_load_explicit(&libc_ready, memory_order_acquire), 0))
		resolve(); /* idempotent: racing threads store the same values */
}

__attribute__((constructor)) static void isosock_init(void)
{
	ensure();
	/* exec'd by a process of ours: take over the sockets it passed. */
	const char *inh = getenv("ISOSTACK_INHERIT");
	if (inh) {
		char *copy = strdup(inh);
		unsetenv("ISOSTACK_INHERIT");  /* not for our own children */
		if (copy)
			isosock_r_exec_adopt(copy);
		free(copy);
	}
	isosock_stdio_adopt();   /* sockets as stdin/stdout/stderr */
}

/* Process exit (exit(), return from main): buffered stdio first, then let
 * go of every socket, as the kernel closes a process's fds. */
__attribute__((destructor)) static void isosock_fini(void)
{
	if (!atomic_load_explicit(&libc_ready, memory_order_acquire))
		return;
	isosock_stdio_flush();
	if (isosock_be && isosock_be->exit)
		isosock_be->exit();
}

static inline int ret(int r)
{
	if (r < 0) {
		errno = -r;
		return -1;
	}
	return r;
}

static inline ssize_t retz(ssize_t r)
{
	if (r < 0) {
		errno = (int)-r;
		return -1;
	}
	return r;
}

/* Looks fd up; NULL means "not ours: call libc". */
static inline struct isosock_file *get(int fd)
{
	ensure();
	return isosock_fd_get(fd);
}

#define ROUTE(call_libc, call_stack)                  \
	do {                                          \
		struct isosock_file *f_ = get(fd);    \
		if (!f_)                              \
			return call_libc;             \
		__typeof__(call_stack) r_ = call_stack; \
		isosock_file_put(f_);                 \
		return retz(r_);                      \
	} while (0)

EXPORT int socket(int domain, int type, int protocol)
{
	ensure();
	return ret(isosock_r_socket(domain, type, protocol));
}

EXPORT int bind(int fd, const struct sockaddr *sa, socklen_t len)
{
	ROUTE(L.bind(fd, sa, len), isosock_r_bind(f_, fd, sa, len));
}

EXPORT int listen(int fd, int backlog)
{
	ROUTE(L.listen(fd, backlog), isosock_r_listen(f_, fd, backlog));
}

EXPORT int accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
	ROUTE(L.accept4(fd, sa, len, flags), isosock_r_accept(f_, fd, sa, len, flags));
}

EXPORT int accept(int fd, struct sockaddr *sa, socklen_t *len)
{
	ROUTE(L.accept(fd, sa, len), isosock_r_accept(f_, fd, sa, len, 0));
}

EXPORT int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	ROUTE(L.connect(fd, sa, len), isosock_r_connect(f_, fd, sa, len));
}

static ssize_t send1(struct isosock_file *f, int fd, const void *buf, size_t len, int flags,
		     const struct sockaddr *to, socklen_t tolen)
{
	struct iovec v = { (void *)buf, len };
	struct msghdr m = { .msg_name = (void *)to, .msg_namelen = tolen,
			    .msg_iov = &v, .msg_iovlen = 1 };
	return isosock_r_sendmsg(f, fd, &m, flags);
}

static ssize_t recv1(struct isosock_file *f, int fd, void *buf, size_t len, int flags,
		     struct sockaddr *from, socklen_t *fromlen)
{
	struct iovec v = { buf, len };
	struct msghdr m = { .msg_name = from, .msg_namelen = fromlen ? *fromlen : 0,
			    .msg_iov = &v, .msg_iovlen = 1 };
	ssize_t r = isosock_r_recvmsg(f, fd, &m, flags);
	if (r >= 0 && fromlen && from)
		*fromlen = m.msg_namelen;
	return r;
}

EXPORT ssize_t send(int fd, const void *buf, size_t len, int flags)
{
	ROUTE(L.send(fd, buf, len, flags), send1(f_, fd, buf, len, flags, NULL, 0));
}

EXPORT ssize_t sendto(int fd, const void *buf, size_t len, int flags,
		      const struct sockaddr *to, socklen_t tolen)
{
	ROUTE(L.sendto(fd, buf, len, flags, to, tolen),
	      send1(f_, fd, buf, len, flags, to, tolen));
}

EXPORT ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
	if (!isosock_fd_get_peek(fd))
		isosock_r_fdpass_sending(m);
	ROUTE(L.sendmsg(fd, m, flags), isosock_r_sendmsg(f_, fd, m, flags));
}

EXPORT ssize_t recv(int fd, void *buf, size_t len, int flags)
{
	ROUTE(L.recv(fd, buf, len, flags), recv1(f_, fd, buf, len, flags, NULL, NULL));
}

EXPORT ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags)
{
	if (len > buflen)
		abort();
	return recv(fd, buf, len, flags);
}

EXPORT ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *from,
			socklen_t *fromlen)
{
	ROUTE(L.recvfrom(fd, buf, len, flags, from, fromlen),
	      recv1(f_, fd, buf, len, flags, from, fromlen));
}

EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags,
			      struct sockaddr *from, socklen_t *fromlen)
{
	if (len > buflen)
		abort();
	return recvfrom(fd, buf, len, flags, from, fromlen);
}

static ssize_t kernel_recvmsg(int fd, struct msghdr *m, int flags)
{
	ssize_t r = L.recvmsg(fd, m, flags);
	int e = errno;
	isosock_r_fdpass_received(m, r);
	errno = e;
	return r;
}

EXPORT ssize_t recvmsg(int fd, struct msghdr *m, int flags)
{
	ROUTE(kernel_recvmsg(fd, m, flags), isosock_r_recvmsg(f_, fd, m, flags));
}

EXPORT int sendmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags)
{
	ROUTE(L.sendmmsg(fd, v, n, flags), isosock_r_sendmmsg(f_, fd, v, n, flags));
}

EXPORT int recvmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags, struct timespec *tmo)
{
	ROUTE(L.recvmmsg(fd, v, n, flags, tmo), isosock_r_recvmmsg(f_, fd, v, n, flags, tmo));
}

EXPORT ssize_t read(int fd, void *buf, size_t len)
{
	ROUTE(L.read(fd, buf, len), recv1(f_, fd, buf, len, 0, NULL, NULL));
}

EXPORT ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen)
{
	if (len > buflen)
		abort();
	return read(fd, buf, len);
}

EXPORT ssize_t write(int fd, const void *buf, size_t len)
{
	ROUTE(L.write(fd, buf, len), send1(f_, fd, buf, len, 0, NULL, 0));
}

static ssize_t vec_send(struct isosock_file *f, int fd, const struct iovec *iov, int cnt)
{
	if (cnt < 0)
		return -EINVAL;
	struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)cnt };
	return isosock_r_sendmsg(f, fd, &m, 0);
}

static ssize_t vec_recv(struct isosock_file *f, int fd, const struct iovec *iov, int cnt)
{
	if (cnt < 0)
		return -EINVAL;
	struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)cnt };
	return isosock_r_recvmsg(f, fd, &m, 0);
}

EXPORT ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
	ROUTE(L.readv(fd, iov, cnt), vec_recv(f_, fd, iov, cnt));
}

EXPORT ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	ROUTE(L.writev(fd, iov, cnt), vec_send(f_, fd, iov, cnt));
}

EXPORT ssize_t sendfile(int out_fd, int in_fd, off_t *off, size_t count)
{
	int fd = out_fd;
	ROUTE(L.sendfile(out_fd, in_fd, off, count),
	      isosock_r_sendfile(f_, out_fd, in_fd, off, count));
}

EXPORT ssize_t sendfile64(int out_fd, int in_fd, off_t *off, size_t count)
{
	return sendfile(out_fd, in_fd, off, count);
}

/* splice/tee/vmsplice: only calls with an isostack socket at one end are
 * ours (emulated, or the kernel's error for a socket). */
EXPORT ssize_t splice(int in, loff_t *off_in, int out, loff_t *off_out, size_t len,
		      unsigned int flags)
{
	ensure();
	struct isosock_file *fi = isosock_fd_get(in), *fo = isosock_fd_get(out);
	if (!fi && !fo)
		return L.splice(in, off_in, out, off_out, len, flags);
	ssize_t r = isosock_r_splice(fi, in, off_in, fo, out, off_out, len, flags);
	if (fi)
		isosock_file_put(fi);
	if (fo)
		isosock_file_put(fo);
	return retz(r);
}

EXPORT ssize_t tee(int in, int out, size_t len, unsigned int flags)
{
	ensure();
	if (!isosock_fd_get_peek(in) && !isosock_fd_get_peek(out))
		return L.tee(in, out, len, flags);
	return retz(isosock_r_tee(in, out, len, flags));
}

EXPORT ssize_t vmsplice(int fd, const struct iovec *iov, size_t nr, unsigned int flags)
{
	ensure();
	if (!isosock_fd_get_peek(fd))
		return L.vmsplice(fd, iov, nr, flags);
	return retz(isosock_r_vmsplice(iov, nr, flags));
}

EXPORT int close(int fd)
{
	ensure();
	/* Lock-free test first: close() of files must stay cheap. */
	struct isosock_file *f = isosock_fd_get(fd);
	if (!f && !isosock_e_is_emulated(fd)) {
		/* The shim's own control socket and wake fd are not the
		 * application's (a daemonising close-all loop): as if closed. */
		if (__builtin_expect(isosock_r_private_fd(fd), 0))
			return 0;
		return L.close(fd);
	}
	if (f)
		isosock_file_put(f);
	return ret(isosock_r_close(fd));
}

EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
	ensure();
	return ret(isosock_r_close_range(first, last, flags));
}

/* glibc's own closefrom() reaches the kernel's close_range without going
 * through our symbol, and would close the stack's private fds. */
EXPORT void closefrom(int lowfd)
{
	ensure();
	if (isosock_r_closefrom(lowfd) < 0)
		abort(); /* as glibc's closefrom, which cannot fail either */
}

EXPORT int shutdown(int fd, int how)
{
	ROUTE(L.shutdown(fd, how), isosock_r_shutdown(f_, fd, how));
}

EXPORT int getsockname(int fd, struct sockaddr *sa, socklen_t *len)
{
	ROUTE(L.getsockname(fd, sa, len), isosock_r_getsockname(f_, fd, sa, len));
}

EXPORT int getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
	ROUTE(L.getpeername(fd, sa, len), isosock_r_getpeername(f_, fd, sa, len));
}

EXPORT int setsockopt(int fd, int level, int name, const void *v, socklen_t len)
{
	ROUTE(L.setsockopt(fd, level, name, v, len),
	      isosock_r_setsockopt(f_, fd, level, name, v, len));
}

EXPORT int getsockopt(int fd, int level, int name, void *v, socklen_t *len)
{
	ROUTE(L.getsockopt(fd, level, name, v, len),
	      isosock_r_getsockopt(f_, fd, level, name, v, len));
}

static int do_fcntl(int fd, int cmd, long arg)
{
	ensure();
	struct isosock_file *f = isosock_fd_get(fd);
	if (!f) {
		if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) {
			if (!isosock_e_is_emulated(fd))
				return L.fcntl(fd, cmd, arg);
			return ret(isosock_r_dup(fd, (int)arg, 0, cmd == F_DUPFD ? 3 : 4));
		}
		return L.fcntl(fd, cmd, arg);
	}
	int r = isosock_r_fcntl(f, fd, cmd, arg);
	isosock_file_put(f);
	return ret(r);
}

EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	long arg = va_arg(ap, long); /* every fcntl argument fits a long here */
	va_end(ap);
	return do_fcntl(fd, cmd, arg);
}

EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	long arg = va_arg(ap, long);
	va_end(ap);
	return do_fcntl(fd, cmd, arg);
}

EXPORT int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	ROUTE(L.ioctl(fd, req, arg), isosock_r_ioctl(f_, fd, req, arg));
}

EXPORT int dup(int fd)
{
	ROUTE(L.dup(fd), isosock_r_dup(fd, -1, 0, 0));
}

/* dup2/dup3 onto one of the shim's private fds (control socket, wake
 * eventfds, memfds): the kernel would give the application that number,
 * so the private fd moves to another first (isosock_r_private_make_room);
 * if the dup then fails, the old number, a duplicate nobody else can
 * hold, is closed, and the errno kept. */
static int private_dup_done(int r, bool moved, int newfd)
{
	if (__builtin_expect(moved && r < 0, 0)) {
		int e = errno;
		isosock_r_private_room_undo(newfd);
		errno = e;
	}
	return r;
}

/* dup2/dup3 onto an isostack fd must drop the mapping even when oldfd is
 * a plain kernel fd, so they always take the routing path. */
EXPORT int dup2(int oldfd, int newfd)
{
	ensure();
	bool moved = false;
	if (__builtin_expect(oldfd != newfd && isosock_r_private_fd(newfd), 0)) {
		int m = isosock_r_private_make_room(newfd);
		if (m < 0)
			return ret(m);
		moved = true;
	}
	if (!isosock_fd_get_peek(oldfd) && !isosock_fd_get_peek(newfd) &&
	    !isosock_e_is_emulated(newfd))
		return private_dup_done(L.dup2(oldfd, newfd), moved, newfd);
	int r = private_dup_done(ret(isosock_r_dup(oldfd, newfd, 0, 1)), moved, newfd);
	if (r >= 0)
		isosock_stdio_sync(newfd);
	return r;
}

EXPORT int dup3(int oldfd, int newfd, int flags)
{
	ensure();
	bool moved = false;
	if (__builtin_expect(oldfd != newfd && isosock_r_private_fd(newfd), 0)) {
		int m = isosock_r_private_make_room(newfd);
		if (m < 0)
			return ret(m);
		moved = true;
	}
	if (!isosock_fd_get_peek(oldfd) && !isosock_fd_get_peek(newfd) &&
	    !isosock_e_is_emulated(newfd))
		return private_dup_done(L.dup3(oldfd, newfd, flags), moved, newfd);
	int r = private_dup_done(ret(isosock_r_dup(oldfd, newfd, flags, 2)), moved, newfd);
	if (r >= 0)
		isosock_stdio_sync(newfd);
	return r;
}

EXPORT FILE *fdopen(int fd, const char *mode)
{
	ensure();
	if (isosock_fd_get_peek(fd))
		return isosock_stdio_fdopen(fd, mode);
	return L.fdopen(fd, mode);
}

/* ---- readiness ----------------------------------------------------------- */

static bool poll_has_stack(const struct pollfd *fds, nfds_t n)
{
	for (nfds_t i = 0; i < n; i++)
		if (isosock_fd_get_peek(fds[i].fd))
			return true;
	return false;
}

EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	ensure();
	if (!poll_has_stack(fds, n))
		return L.poll(fds, n, timeout);
	return ret(isosock_p_ppoll(fds, n, isosock_ms_to_ns(timeout), NULL));
}

EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
	if (fdslen / sizeof(*fds) < n)
		abort();
	return poll(fds, n, timeout);
}

static int64_t ts_ns(const struct timespec *ts)
{
	if (!ts)
		return -1;
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask)
{
	ensure();
	if (!poll_has_stack(fds, n))
		return L.ppoll(fds, n, ts, mask);
	return ret(isosock_p_ppoll(fds, n, ts_ns(ts), mask));
}

EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *ts,
		       const sigset_t *mask, size_t fdslen)
{
	if (fdslen / sizeof(*fds) < n)
		abort();
	return ppoll(fds, n, ts, mask);
}

static bool select_has_stack(int nfds, fd_set *r, fd_set *w, fd_set *e)
{
	if (nfds > FD_SETSIZE)
		nfds = FD_SETSIZE;
	int lim = isosock_fd_limit();
	if (nfds > lim)
		nfds = lim;
	for (int fd = 0; fd < nfds; fd++)
		if (((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w)) || (e && FD_ISSET(fd, e))) &&
		    isosock_fd_get_peek(fd))
			return true;
	return false;
}

EXPORT int select(int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv)
{
	ensure();
	if (!select_has_stack(nfds, r, w, e))
		return L.select(nfds, r, w, e, tv);
	int64_t ns = tv ? (int64_t)tv->tv_sec * 1000000000 + (int64_t)tv->tv_usec * 1000 : -1;
	int64_t start = tv ? isosock_now_ns() : 0;
	int rc = isosock_p_pselect(nfds, r, w, e, ns, NULL);
	if (tv) {
		/* Linux select() updates the timeout with the time left. */
		int64_t left = ns - (isosock_now_ns() - start);
		if (left < 0 || rc == 0)
			left = 0;
		tv->tv_sec = left / 1000000000;
		tv->tv_usec = (left % 1000000000) / 1000;
	}
	return ret(rc);
}

EXPORT int pselect(int nfds, fd_set *r, fd_set *w, fd_set *e, const struct timespec *ts,
		   const sigset_t *mask)
{
	ensure();
	if (!select_has_stack(nfds, r, w, e))
		return L.pselect(nfds, r, w, e, ts, mask);
	return ret(isosock_p_pselect(nfds, r, w, e, ts_ns(ts), mask));
}

EXPORT int epoll_create(int size)
{
	ensure();
	if (size <= 0) {
		errno = EINVAL;
		return -1;
	}
	return ret(isosock_e_create(0));
}

EXPORT int epoll_create1(int flags)
{
	ensure();
	return ret(isosock_e_create(flags));
}

EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	ensure();
	if (!isosock_fd_get_peek(fd) && !isosock_e_is_emulated(epfd))
		return L.epoll_ctl(epfd, op, fd, ev);
	return ret(isosock_e_ctl(epfd, op, fd, ev));
}

EXPORT int epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout)
{
	ensure();
	if (!isosock_e_is_emulated(epfd) && (timeout == 0 || !isosock_e_attached()))
		return L.epoll_wait(epfd, evs, max, timeout);
	return ret(isosock_e_wait(epfd, evs, max, isosock_ms_to_ns(timeout), NULL));
}

EXPORT int epoll_pwait(int epfd, struct epoll_event *evs, int max, int timeout,
		       const sigset_t *mask)
{
	ensure();
	if (!isosock_e_is_emulated(epfd) && (timeout == 0 || !isosock_e_attached()))
		return L.epoll_pwait(epfd, evs, max, timeout, mask);
	return ret(isosock_e_wait(epfd, evs, max, isosock_ms_to_ns(timeout), mask));
}

EXPORT int epoll_pwait2(int epfd, struct epoll_event *evs, int max, const struct timespec *ts,
			const sigset_t *mask)
{
	ensure();
	return ret(isosock_e_pwait2(epfd, evs, max, ts, mask));
}

/* ---- processes ------------------------------------------------------------- */

EXPORT pid_t fork(void)
{
	ensure(); /* registers the atfork handlers that do the work */
	pid_t pid = L.fork();
	if (pid != 0) {
		int e = errno;
		isosock_r_fork_done(pid);
		errno = e;
	}
	return pid;
}

/* vfork: a fork (POSIX allows it).  The child of a real vfork shares our
 * memory and skips the fork handlers, so an exec from it would hand the
 * new image our own member entry, whose close-on-exec sockets that image
 * then lets go in our name. */
EXPORT pid_t vfork(void)
{
	return fork();
}

/*
 * wait: a reaped child may have been the last holder of a socket (killed,
 * so it did not close): sweep then, not at our next socket call.  wait,
 * waitpid and wait3 are wait4 in glibc, but internal calls bypass our
 * symbols, so each public name is interposed.
 */
static pid_t reaped(pid_t pid)
{
	if (pid > 0) {
		int e = errno;
		isosock_r_child_reaped();
		errno = e;
	}
	return pid;
}

EXPORT pid_t wait4(pid_t pid, int *status, int options, struct rusage *ru)
{
	ensure();
	return reaped(L.wait4(pid, status, options, ru));
}

EXPORT pid_t wait3(int *status, int options, struct rusage *ru)
{
	ensure();
	return reaped(L.wait4(-1, status, options, ru));
}

EXPORT pid_t waitpid(pid_t pid, int *status, int options)
{
	ensure();
	return reaped(L.wait4(pid, status, options, NULL));
}

EXPORT pid_t wait(int *status)
{
	ensure();
	return reaped(L.wait4(-1, status, 0, NULL));
}

EXPORT int waitid(idtype_t idtype, id_t id, siginfo_t *info, int options)
{
	ensure();
	int r = L.waitid(idtype, id, info, options);
	/* WNOWAIT leaves the child a zombie: it holds nothing either. */
	if (r == 0 && info != NULL && info->si_pid > 0)
		(void)reaped(info->si_pid);
	return r;
}

/*
 * exec: every variant goes through one of the three libc entry points
 * with an environment that carries ISOSTACK_INHERIT (isosock_r_exec_*),
 * so an image that loads libisosock again keeps the isostack sockets it
 * inherited.  glibc's own exec calls (posix_spawn, system, popen) do not
 * pass through here: they are interposed below.
 */
extern char **environ;

/* envp without any ISOSTACK_INHERIT, plus var; NULL on ENOMEM. */
static char **env_with(char *const envp[], char *var)
{
	size_t n = 0;
	while (envp && envp[n])
		n++;
	char **e = malloc((n + 2) * sizeof(*e));
	if (!e)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(envp[i], "ISOSTACK_INHERIT=", 17) != 0)
			e[k++] = envp[i];
	e[k++] = var;
	e[k] = NULL;
	return e;
}

enum exec_kind { EXEC_PATH, EXEC_SEARCH, EXEC_FD };

static int exec_common(enum exec_kind kind, const char *path, int fd, char *const argv[],
		       char *const envp[])
{
	ensure();
	char *var = isosock_r_exec_prepare();
	char **env = var ? env_with(envp, var) : NULL;
	char *const *use = env ? env : envp;
	int r;
	switch (kind) {
	case EXEC_PATH:
		r = L.execve(path, argv, use);
		break;
	case EXEC_SEARCH:
		r = L.execvpe(path, argv, use);
		break;
	default:
		r = L.fexecve(fd, argv, use);
		break;
	}
	int e = errno;                 /* exec returned: it failed */
	if (var)
		isosock_r_exec_failed();
	free(env);
	free(var);
	errno = e;
	return r;
}

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	return exec_common(EXEC_PATH, path, -1, argv, envp);
}

EXPORT int execv(const char *path, char *const argv[])
{
	return exec_common(EXEC_PATH, path, -1, argv, environ);
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	return exec_common(EXEC_SEARCH, file, -1, argv, envp);
}

EXPORT int execvp(const char *file, char *const argv[])
{
	return exec_common(EXEC_SEARCH, file, -1, argv, environ);
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	return exec_common(EXEC_FD, NULL, fd, argv, envp);
}

/* execl, execlp, execle: the list into an argv on the stack. */
#define ARGV_FROM_LIST(arg0, ap, argv, envp_out)                             \
	size_t n_ = 1;                                                       \
	va_start(ap, arg0);                                                  \
	while (va_arg(ap, char *))                                           \
		n_++;                                                        \
	va_end(ap);                                                          \
	char *argv[n_ + 1];                                                  \
	va_start(ap, arg0);                                                  \
	argv[0] = (char *)arg0;                                              \
	for (size_t i_ = 1; i_ <= n_; i_++)                                  \
		argv[i_] = va_arg(ap, char *);                               \
	envp_out;                                                            \
	va_end(ap)

EXPORT int execl(const char *path, const char *arg, ...)
{
	va_list ap;
	ARGV_FROM_LIST(arg, ap, argv, (void)0);
	return exec_common(EXEC_PATH, path, -1, argv, environ);
}

EXPORT int execlp(const char *file, const char *arg, ...)
{
	va_list ap;
	ARGV_FROM_LIST(arg, ap, argv, (void)0);
	return exec_common(EXEC_SEARCH, file, -1, argv, environ);
}

EXPORT int execle(const char *path, const char *arg, ...)
{
	va_list ap;
	char *const *envp;
	ARGV_FROM_LIST(arg, ap, argv, envp = va_arg(ap, char *const *));
	return exec_common(EXEC_PATH, path, -1, argv, envp);
}

/*
 * posix_spawn, posix_spawnp: as fork + exec, the child is a process of the
 * application holding the sockets it inherits (isosock_r_spawn_*); it
 * learns which through ISOSTACK_INHERIT in the envp we hand on (the
 * caller's is not changed).
 */
static int spawn_common(spawn_fn *real, pid_t *pid, const char *path,
			const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *attr,
			char *const argv[], char *const envp[])
{
	void *sp = NULL;
	char *var = isosock_r_spawn_prepare(&sp);
	char **env = var ? env_with(envp, var) : NULL;
	pid_t child = -1;
	if (!real)
		return ENOSYS;
	if (var && !env) {
		isosock_r_spawn_done(sp, -1);
		sp = NULL;
	}
	int r = real(&child, path, fa, attr, argv, env ? env : envp);
	int e = errno;
	isosock_r_spawn_done(sp, r == 0 ? child : -1);
	if (r == 0 && pid)
		*pid = child;
	free(env);
	free(var);
	errno = e;
	return r;
}

EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
		       const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	ensure();
	return spawn_common(libc_posix_spawn, pid, path, fa, attr, argv, envp);
}

EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
			const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	ensure();
	return spawn_common(libc_posix_spawnp, pid, file, fa, attr, argv, envp);
}

/*
 * system(): glibc's own, rebuilt on our posix_spawn (glibc calls its
 * internal one, which we cannot reach): /bin/sh -c, SIGINT and SIGQUIT
 * ignored and SIGCHLD blocked in the caller while the command runs
 * (concurrent calls share the ignoring: the last one restores), the
 * child with the caller's mask and those two signals at default unless
 * they were ignored.  Not a cancellation point here (glibc's kills the
 * child on cancellation).
 */
static pthread_mutex_t system_lock = PTHREAD_MUTEX_INITIALIZER;
static int system_users;
static struct sigaction system_intr, system_quit;

static int system_run(const char *cmd)
{
	struct sigaction ign = { .sa_handler = SIG_IGN };
	sigset_t chld, omask, reset;
	posix_spawnattr_t attr;
	pid_t pid;
	int status = -1, r;

	sigemptyset(&ign.sa_mask);
	pthread_mutex_lock(&system_lock);
	if (system_users++ == 0) {
		sigaction(SIGINT, &ign, &system_intr);
		sigaction(SIGQUIT, &ign, &system_quit);
	}
	pthread_mutex_unlock(&system_lock);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	pthread_sigmask(SIG_BLOCK, &chld, &omask);

	sigemptyset(&reset);
	if (system_intr.sa_handler != SIG_IGN)
		sigaddset(&reset, SIGINT);
	if (system_quit.sa_handler != SIG_IGN)
		sigaddset(&reset, SIGQUIT);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setsigmask(&attr, &omask);
	posix_spawnattr_setsigdefault(&attr, &reset);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
	r = spawn_common(libc_posix_spawn, &pid, "/bin/sh", NULL, &attr,
			 (char *const[]){ "sh", "-c", "--", (char *)cmd, NULL }, environ);
	posix_spawnattr_destroy(&attr);
	if (r == 0) {
		while (waitpid(pid, &status, 0) < 0) {
			if (errno != EINTR) {
				status = -1;
				break;
			}
		}
	} else {
		/* POSIX: as if the shell had exited with 127 */
		status = W_EXITCODE(127, 0);
	}
	int e = errno;
	pthread_mutex_lock(&system_lock);
	if (--system_users == 0) {
		sigaction(SIGINT, &system_intr, NULL);
		sigaction(SIGQUIT, &system_quit, NULL);
	}
	pthread_mutex_unlock(&system_lock);
	pthread_sigmask(SIG_SETMASK, &omask, NULL);
	errno = e;
	return status;
}

EXPORT int system(const char *cmd)
{
	ensure();
	if (!cmd)
		return system_run("exit 0") == 0;   /* is there a shell? */
	return system_run(cmd);
}

/*
 * popen(): glibc's own (it keeps the other popen streams out of the
 * child), run with ISOSTACK_INHERIT in the environment it spawns with.
 * environ is process-wide, so it is swapped for the call only, under a
 * lock, for a copy with the variable added; the trade-off: a getenv in
 * another thread meanwhile sees the copy (the same variables plus ours;
 * the copy lives until the next popen), and a setenv/putenv meanwhile
 * keeps its change but loses nothing of ours to later children (the
 * variable is taken out again).  The child's pid is not known here: it
 * takes its place itself when it loads us; pclose undoes a place nobody
 * took.
 */
struct popen_ent {
	FILE *fp;
	void *sp;
	struct popen_ent *next;
};

static pthread_mutex_t popen_lock = PTHREAD_MUTEX_INITIALIZER;
static struct popen_ent *popen_list;
static char **popen_env, *popen_var;   /* last copy of environ, kept one call */

EXPORT FILE *popen(const char *cmd, const char *mode)
{
	ensure();
	if (!libc_popen) {
		errno = ENOSYS;
		return NULL;
	}
	void *sp = NULL;
	char *var = isosock_r_spawn_prepare(&sp);
	struct popen_ent *pe = var ? malloc(sizeof(*pe)) : NULL;
	char **env = pe ? env_with(environ, var) : NULL;
	if (!env) {
		isosock_r_spawn_done(sp, -1);
		free(pe);
		free(var);
		return libc_popen(cmd, mode);
	}
	pthread_mutex_lock(&popen_lock);
	char **saved = environ;
	environ = env;
	FILE *fp = libc_popen(cmd, mode);
	int e = errno;
	if (environ == env)
		environ = saved;
	else
		unsetenv("ISOSTACK_INHERIT");   /* replaced meanwhile: keep theirs */
	free(popen_env);
	free(popen_var);
	popen_env = env;
	popen_var = var;
	if (fp) {
		pe->fp = fp;
		pe->sp = sp;
		pe->next = popen_list;
		popen_list = pe;
	}
	pthread_mutex_unlock(&popen_lock);
	isosock_r_spawn_started(sp);
	if (!fp) {
		isosock_r_spawn_done(sp, -1);
		free(pe);
	}
	errno = e;
	return fp;
}

EXPORT int pclose(FILE *fp)
{
	ensure();
	struct popen_ent *pe = NULL;
	pthread_mutex_lock(&popen_lock);
	for (struct popen_ent **p = &popen_list; *p; p = &(*p)->next) {
		if ((*p)->fp == fp) {
			pe = *p;
			*p = pe->next;
			break;
		}
	}
	pthread_mutex_unlock(&popen_lock);
	if (!libc_pclose) {
		errno = ENOSYS;
		return -1;
	}
	int r = libc_pclose(fp);
	int e = errno;
	if (pe) {
		isosock_r_spawn_done(pe->sp, 0);   /* waited for: release if unclaimed */
		free(pe);
	}
	errno = e;
	return r;
}
