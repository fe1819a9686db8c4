/*
 * Internals of the interposition layer of libisosock (the LD_PRELOAD shim).
 *
 * Three layers, each testable on its own:
 *   interpose.c  the exported libc symbols: resolve libc with
 *                dlsym(RTLD_NEXT), look the fd up, call one isosock_r_*
 *                function or libc, turn -errno into errno.  Nothing else.
 *                interpose_file.c: the fstat family, statx, lseek and
 *                pread/pwrite, for light shadows.
 *   route.c      the socket calls proper (isosock_r_*): which stack serves
 *                a socket or an address, the reserved kernel fd, loopback
 *                migration, blocking/timeouts/EINTR.  Returns 0, a count or
 *                -errno; calls libc and the stack only through the two
 *                tables below, so unit tests substitute both.
 *   shadow.c     light shadows: an established TCP connection's fd is an
 *                eventfd, and what its kernel socket would have answered
 *                (options, ioctls, fstat, exec keys) comes from there.
 *   poll.c       poll/ppoll/select/pselect, epoll.c the epoll family, over
 *                a mix of kernel fds and isostack sockets.
 *   fdtable.c    fd -> struct isosock_file.
 *
 * The stack itself is reached through struct isosock_be: the adapter to
 * the front-end core (backend_core.c) in the library, a fake readiness
 * source in the unit tests.
 */
#ifndef ISOSOCK_SHIM_H
#define ISOSOCK_SHIM_H

#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>

/* ---- libc, as resolved by interpose.c (or set by a test) ------------- */
struct isosock_libc {
	int (*socket)(int, int, int);
	int (*bind)(int, const struct sockaddr *, socklen_t);
	int (*listen)(int, int);
	int (*accept)(int, struct sockaddr *, socklen_t *);
	int (*accept4)(int, struct sockaddr *, socklen_t *, int);
	int (*connect)(int, const struct sockaddr *, socklen_t);
	ssize_t (*send)(int, const void *, size_t, int);
	ssize_t (*recv)(int, void *, size_t, int);
	ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
	ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
	ssize_t (*sendmsg)(int, const struct msghdr *, int);
	ssize_t (*recvmsg)(int, struct msghdr *, int);
	ssize_t (*read)(int, void *, size_t);
	ssize_t (*write)(int, const void *, size_t);
	ssize_t (*readv)(int, const struct iovec *, int);
	ssize_t (*writev)(int, const struct iovec *, int);
	ssize_t (*sendfile)(int, int, off_t *, size_t);
	int (*close)(int);
	int (*shutdown)(int, int);
	int (*getsockname)(int, struct sockaddr *, socklen_t *);
	int (*getpeername)(int, struct sockaddr *, socklen_t *);
	int (*setsockopt)(int, int, int, const void *, socklen_t);
	int (*getsockopt)(int, int, int, void *, socklen_t *);
	int (*fcntl)(int, int, ...);
	int (*ioctl)(int, unsigned long, ...);
	int (*dup)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	int (*poll)(struct pollfd *, nfds_t, int);
	int (*ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
	int (*select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
	int (*pselect)(int, fd_set *, fd_set *, fd_set *, const struct timespec *,
		       const sigset_t *);
	int (*epoll_create)(int);
	int (*epoll_create1)(int);
	int (*epoll_ctl)(int, int, int, struct epoll_event *);
	int (*epoll_wait)(int, struct epoll_event *, int, int);
	int (*epoll_pwait)(int, struct epoll_event *, int, int, const sigset_t *);
	pid_t (*fork)(void);
	pid_t (*wait4)(pid_t, int *, int, struct rusage *);
	int (*waitid)(idtype_t, id_t, siginfo_t *, int);
	FILE *(*fdopen)(int, const char *);
	/* May be NULL (older libc, or not set by a test): route.c and
	 * epoll.c fall back (raw syscall, then the nearest older call). */
	int (*sendmmsg)(int, struct mmsghdr *, unsigned int, int);
	int (*recvmmsg)(int, struct mmsghdr *, unsigned int, int, struct timespec *);
	int (*epoll_pwait2)(int, struct epoll_event *, int, const struct timespec *,
			    const sigset_t *);
	int (*close_range)(unsigned int, unsigned int, int);
	int (*execve)(const char *, char *const[], char *const[]);
	int (*execvpe)(const char *, char *const[], char *const[]);
	int (*fexecve)(int, char *const[], char *const[]);
	ssize_t (*splice)(int, loff_t *, int, loff_t *, size_t, unsigned int);
	ssize_t (*tee)(int, int, size_t, unsigned int);
	ssize_t (*vmsplice)(int, const struct iovec *, size_t, unsigned int);
};

/* Filled by isosock_libc_init() (interpose.c) or a test; read-only after. */
extern struct isosock_libc isosock_libc;

/* ---- the stack, as the routing layer needs it ------------------------- */
/*
 * Every call is non-blocking: the routing layer does all waiting itself
 * (so SO_RCVTIMEO, EINTR/SA_RESTART and sockets that are served by both
 * stacks at once are handled in one place).  Handles are opaque.
 * Returns 0, a count or -errno; -EAGAIN when the call would block.
 */
/* In a sleep_mark key: marked with the thread's own wake bit. */
#define ISOSOCK_MARK_OWN (1 << 30)

struct isosock_be {
	/* 0 when the stack is reachable (attaching on first use), else
	 * -ENETDOWN (no daemon) or another -errno. */
	int (*attach)(void);
	int (*socket)(int domain, int type, void **h);    /* AF_INET, AF_INET6 (TCP) */
	int (*bind)(void *h, const struct sockaddr *sa, socklen_t len);
	int (*listen)(void *h, int backlog);
	int (*accept)(void *h, void **nh, struct sockaddr *sa, socklen_t *len);
	/* Starts (or continues) a connect: 0 connected, -EINPROGRESS
	 * pending (then poll() reports POLLOUT when it finished and
	 * so_error() the result), -EALREADY, -EISCONN, -ECONNREFUSED... */
	int (*connect)(void *h, const struct sockaddr *sa, socklen_t len);
	int (*so_error)(void *h);                          /* takes it: 0 or -errno */
	ssize_t (*sendmsg)(void *h, const struct msghdr *m, int flags);
	ssize_t (*recvmsg)(void *h, struct msghdr *m, int flags);
	int (*shutdown)(void *h, int how);
	int (*close)(void *h);                             /* handle is gone after */
	/* SCM_RIGHTS (fdpass_sock.c): h is about to travel as file fd; and
	 * a file fd just received: a new handle if it is a socket in flight
	 * (isosock_handoff, isosock_claim).  May be NULL. */
	int (*handoff)(void *h, int fd);
	int (*claim)(int fd, void **nh, bool *listener, bool *inet6);
	int (*setsockopt)(void *h, int level, int name, const void *v, socklen_t len);
	int (*getsockopt)(void *h, int level, int name, void *v, socklen_t *len);
	int (*getsockname)(void *h, struct sockaddr *sa, socklen_t *len);
	int (*getpeername)(void *h, struct sockaddr *sa, socklen_t *len);
	int (*nread)(void *h);                             /* FIONREAD */
	int (*outq)(void *h);                              /* SIOCOUTQ (may be NULL) */
	/* Readiness now, as POLLIN/POLLOUT/POLLERR/POLLHUP/POLLRDHUP bits.
	 * *gen (may be NULL): an arrival count, moving whenever data or a
	 * connection arrived on the socket, readable before or not: what
	 * edge-triggered epoll reports as a new EPOLLIN edge. */
	uint32_t (*poll)(void *h, uint32_t *gen);
	/* Blocks until poll(h) & events, or timeout (-1: none).  Returns 0,
	 * -ETIMEDOUT, -EINTR.  NULL: the routing layer waits with
	 * wait_begin/wake_fd instead. */
	int (*wait)(void *h, uint32_t events, int64_t timeout_ns);
	/* Mixed waits: announce a sleeper on the app-wide wait point, so the
	 * stack writes wake_fd (an eventfd), then withdraw. */
	void (*wait_begin)(void);
	void (*wait_end)(void);
	/* Before sleeping on wake_fd(), for each socket waited for (on:
	 * returns a key, or -1), and after, with that key (off, h NULL), by
	 * the same thread: so the stack writes the fd this thread sleeps on
	 * for that socket.  A key with ISOSOCK_MARK_OWN was marked with the
	 * calling thread's own bit (core_twake.c), one without with the
	 * process's: sleep_unmark_process(key) withdraws one such mark of
	 * another thread's (an interest dropped while it sleeps). */
	int (*sleep_mark)(void *h, int key, bool on);
	void (*sleep_unmark_process)(int key);
	/* The same for every socket at once (large epoll sets). */
	void (*sleep_any)(bool on);
	int (*wake_fd)(void);                              /* -1 if none */
	/* Which sockets changed: note_key(h) names a socket (-1: none); notes
	 * calls fn(arg, key) for each socket the stack posted to since the
	 * caller's cursors (one per attachment, *valid a bit per cursor set;
	 * unset ones start now) and returns 1 when some were lost or a
	 * cursor was new: then every socket must be looked at. */
	int (*note_key)(void *h);
	int (*notes)(uint32_t *cursors, uint64_t *valid, void (*fn)(void *arg, int key),
		     void *arg);
	/* fork (pthread_atfork order): prepare returns with no stack call in
	 * flight in any thread; parent/child release or rebuild. */
	void (*atfork_prepare)(void);
	void (*atfork_parent)(void);
	void (*atfork_child)(void);
	/* After fork() returned in the parent (our wrapper only): pid < 0
	 * when it failed, so what prepare set up for the child is undone. */
	void (*fork_done)(pid_t pid);
	/* A wait* call of ours reaped a child (may have held sockets). */
	void (*child_reaped)(void);
	/* Process exit: let go of every socket (after stdio was flushed). */
	void (*exit)(void);
	/* exec (isosock_r_exec_*): describe the attachments for the new
	 * image (fds made inheritable) or undo that; the (attachment, slot)
	 * of a handle; in the new image, adopt the attachments, make handles
	 * for inherited sockets, then let go of the sockets not inherited. */
	int (*exec_export)(char *buf, size_t n);
	void (*exec_failed)(void);
	int (*handle_slot)(void *h, int *att, int *slot);
	int (*exec_import)(const char *desc);
	void *(*handle_adopt)(int att, int slot);
	void (*exec_done)(void);
	/* Whether fd is one of the stack's own private fds (control socket,
	 * wake fds): the application may not close them. */
	bool (*private_fd)(int fd);
	/* Moves such an fd to another number (dup2 onto it): 0 or -errno. */
	int (*private_move)(int fd);
	/* spawn (isosock_r_spawn_*): a child made without our fork handlers
	 * (posix_spawn, system, popen).  begin reserves its place (NULL:
	 * none); export describes the attachments as exec_export does, for
	 * an image that takes that place; hold: it inherits h's socket;
	 * started: the child has exec'd (or failed), our own fds are not
	 * for inheriting any more; end (started too, if not said): pid > 0
	 * the child's pid, < 0 the spawn failed, 0 the child is done with
	 * (waited for) and its pid unknown. */
	void *(*spawn_begin)(void);
	int (*spawn_export)(void *sp, char *buf, size_t n);
	void (*spawn_hold)(void *sp, void *h);
	void (*spawn_started)(void *sp);
	void (*spawn_end)(void *sp, pid_t pid);
};

extern const struct isosock_be *isosock_be;      /* NULL: kernel only */

#include "fdtable.h"

/* ---- routing (route.c) ------------------------------------------------- */
enum isosock_route {
	ISOSOCK_ROUTE_KERNEL,
	ISOSOCK_ROUTE_STACK,
	ISOSOCK_ROUTE_BOTH,      /* INADDR_ANY: the kernel shadow binds too */
};

/* Pure decisions, no side effects. */
bool isosock_route_socket_wanted(int domain, int type, int protocol);
enum isosock_route isosock_route_addr(const struct sockaddr *sa, socklen_t len, bool for_bind);
bool isosock_env_require(void);

struct isosock_config {
	bool require;       /* ISOSTACK_REQUIRE=1 */
	bool disabled;      /* ISOSTACK_DISABLE=1: everything to the kernel */
	int64_t spin_ns;    /* ISOSOCK_SPIN_NS */
};
extern struct isosock_config isosock_cfg;
void isosock_config_load(void);
void isosock_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- quiesce.c: no thread in the front-end core across fork ------------ */
/* Around every call into the core; returns whether leave must undo it. */
bool isosock_quiesce_enter(void);
void isosock_quiesce_leave(bool entered);
/* fork: prepare waits until no thread is in the core and keeps new ones
 * out until parent or child. */
void isosock_quiesce_fork_prepare(void);
void isosock_quiesce_fork_parent(void);
void isosock_quiesce_fork_child(void);

int isosock_r_socket(int domain, int type, int protocol);
int isosock_r_bind(struct isosock_file *f, int fd, const struct sockaddr *sa, socklen_t len);
int isosock_r_listen(struct isosock_file *f, int fd, int backlog);
int isosock_r_accept(struct isosock_file *f, int fd, struct sockaddr *sa, socklen_t *len,
		     int flags);
int isosock_r_connect(struct isosock_file *f, int fd, const struct sockaddr *sa,
		      socklen_t len);
ssize_t isosock_r_sendmsg(struct isosock_file *f, int fd, const struct msghdr *m, int flags);
ssize_t isosock_r_recvmsg(struct isosock_file *f, int fd, struct msghdr *m, int flags);
/* SCM_RIGHTS on a kernel (AF_UNIX) socket (fdpass_sock.c): before the
 * sendmsg, the isostack sockets among m's fds are registered in flight;
 * after a recvmsg that returned r, those received are claimed. */
void isosock_r_fdpass_sending(const struct msghdr *m);
/* 0 once the stack is reachable (attached on first use), else -errno. */
int isosock_r_stack_ready(void);
void isosock_r_fdpass_received(struct msghdr *m, ssize_t r);
ssize_t isosock_r_sendfile(struct isosock_file *f, int out_fd, int in_fd, off_t *off,
			   size_t count);
int isosock_r_close(int fd);
/* sendmmsg/recvmmsg: each message through isosock_r_sendmsg/recvmsg with
 * the kernel's rules (count done, or -errno if the first one failed;
 * recvmmsg: MSG_WAITFORONE, timeout checked after each datagram and
 * updated with the time left). */
int isosock_r_sendmmsg(struct isosock_file *f, int fd, struct mmsghdr *v, unsigned int n,
		       int flags);
int isosock_r_recvmmsg(struct isosock_file *f, int fd, struct mmsghdr *v, unsigned int n,
		       int flags, struct timespec *timeout);
/* close_range: isostack sockets and emulated epoll fds in the range are
 * closed through isosock_r_close, the rest by libc; the stack's private
 * fds are never closed.  CLOSE_RANGE_CLOEXEC only marks (kernel flag). */
int isosock_r_close_range(unsigned int first, unsigned int last, int flags);
/* closefrom(lowfd): close_range(max(lowfd, 0), ~0U, 0) as glibc does, and
 * on a kernel without close_range (-ENOSYS) each fd from lowfd up, the
 * private fds excepted.  Returns 0 (glibc aborts if closefrom fails). */
int isosock_r_closefrom(int lowfd);
/* splice with an isostack socket at one end (fin or fout non-NULL) and a
 * pipe at the other, emulated with the kernel's errors, order of checks
 * and blocking rules (see route.c).  Two sockets, or a socket and a file:
 * -EINVAL; an offset for the socket -EINVAL, for the pipe -ESPIPE. */
ssize_t isosock_r_splice(struct isosock_file *fin, int in, loff_t *off_in,
			 struct isosock_file *fout, int out, loff_t *off_out,
			 size_t len, unsigned int flags);
/* tee/vmsplice given an isostack socket: the kernel's answer for a socket
 * (tee -EINVAL, vmsplice -EBADF), after its argument checks. */
ssize_t isosock_r_tee(int in, int out, size_t len, unsigned int flags);
ssize_t isosock_r_vmsplice(const struct iovec *iov, unsigned long nr, unsigned int flags);
int isosock_r_shutdown(struct isosock_file *f, int fd, int how);
int isosock_r_getsockname(struct isosock_file *f, int fd, struct sockaddr *sa, socklen_t *len);
int isosock_r_getpeername(struct isosock_file *f, int fd, struct sockaddr *sa, socklen_t *len);
int isosock_r_setsockopt(struct isosock_file *f, int fd, int level, int name,
			 const void *v, socklen_t len);
int isosock_r_getsockopt(struct isosock_file *f, int fd, int level, int name,
			 void *v, socklen_t *len);
int isosock_r_fcntl(struct isosock_file *f, int fd, int cmd, long arg);
int isosock_r_ioctl(struct isosock_file *f, int fd, unsigned long req, void *arg);
int isosock_r_dup(int oldfd, int newfd, int flags, int how);
/* route.c: a file's last reference went: its stack socket is let go. */
void isosock_r_release_file(struct isosock_file *f);
/* route_fork.c */
void isosock_r_atfork_prepare(void);
void isosock_r_atfork_parent(bool failed);
void isosock_r_atfork_child(void);
void isosock_r_fork_done(pid_t pid);
void isosock_r_child_reaped(void);

/* stdio.c: FILEs on isostack sockets (fds 0-2, fdopen). */
FILE *isosock_stdio_fdopen(int fd, const char *mode);
void isosock_stdio_sync(int fd);
void isosock_stdio_adopt(void);
void isosock_stdio_flush(void);
/*
 * exec with inherited sockets.  prepare returns a malloc'd
 * "ISOSTACK_INHERIT=..." string describing the attachments and every
 * isostack socket fd without FD_CLOEXEC (NULL: nothing to pass, or no
 * memory); failed undoes it when exec returned.  adopt, in the new image
 * (the library constructor), maps it all back and fills the fd table.
 */
char *isosock_r_exec_prepare(void);
void isosock_r_exec_failed(void);
void isosock_r_exec_adopt(const char *desc);
/*
 * spawn: as exec_prepare, for a child made by posix_spawn, system or
 * popen: it becomes a process of the application holding the sockets it
 * inherits.  *sp is what started (the real call returned) and done
 * (pid as for isosock_be.spawn_end) need afterwards; NULL string:
 * nothing to pass.
 */
char *isosock_r_spawn_prepare(void **sp);
void isosock_r_spawn_started(void *sp);
void isosock_r_spawn_done(void *sp, pid_t pid);
/* fd is the stack's own (control socket, wake fd): not the application's. */
bool isosock_r_private_fd(int fd);
/* dup2/dup3 onto newfd: our private fd there moves out of the way first,
 * as the kernel gives the application any number it asks for.  0 or
 * -errno (EMFILE). */
int isosock_r_private_make_room(int newfd);
/* ... and after a failed dup2/dup3: the old number, still ours, closed. */
void isosock_r_private_room_undo(int newfd);

/* Readiness of one socket as poll() reports it (both stacks for DUAL). */
uint32_t isosock_r_poll1(struct isosock_file *f, int fd, uint32_t *gen);
/* Waits for events on f (timeout_ns -1 none).  0, -ETIMEDOUT, -EINTR. */
int isosock_r_wait(struct isosock_file *f, int fd, uint32_t events, int64_t timeout_ns);

/* ---- poll/select/epoll (poll.c, epoll.c) ------------------------------- */
int isosock_p_ppoll(struct pollfd *fds, nfds_t n, int64_t timeout_ns, const sigset_t *mask);
int isosock_p_pselect(int nfds, fd_set *r, fd_set *w, fd_set *e, int64_t timeout_ns,
		      const sigset_t *mask);
int isosock_e_create(int flags);
int isosock_e_ctl(int epfd, int op, int fd, struct epoll_event *ev);
/* The process has an isostack attachment (its kernel-only epoll sleeps are
 * sliced then: epoll.c, kernel_wait). */
bool isosock_e_attached(void);
int isosock_e_wait(int epfd, struct epoll_event *evs, int max, int64_t timeout_ns,
		   const sigset_t *mask);
/* close(epfd): forget the emulated interest list.  */
void isosock_e_closed(int fd);
/* epoll_pwait2: a timespec timeout (NULL: none); EINVAL for a bad one.
 * Kernel epoll fds go to libc's epoll_pwait2, else the raw syscall, else
 * epoll_pwait with the timeout rounded up to milliseconds. */
int isosock_e_pwait2(int epfd, struct epoll_event *evs, int max, const struct timespec *ts,
		     const sigset_t *mask);
void isosock_e_atfork_child(void);
bool isosock_e_is_emulated(int epfd);
/* epfd is a set isosock_e_create() made and not closed since (close,
 * dup2 over it, close_range): valid without asking the kernel. */
bool isosock_e_valid(int epfd);

/* poll/select/epoll sleep at most this long before re-checking the
 * rings (daemon death, sockets of an attachment kept after fork). */
#define ISOSOCK_SLEEP_SLICE_NS (100 * 1000 * 1000)

/* Nanosecond clock (CLOCK_MONOTONIC) and timeout helpers. */
int64_t isosock_now_ns(void);
static inline int64_t isosock_ms_to_ns(int ms)
{
	return ms < 0 ? -1 : (int64_t)ms * 1000000;
}

/*
 * TCP options isostack refuses as Linux refuses one it lacks
 * (ENOPROTOOPT), for set and get alike, instead of leaving them to the
 * shadow, which would accept them and change nothing (docs/shim.md):
 * TCP_USER_TIMEOUT (lwIP gives up after TCP_MAXRTX retransmissions, not
 * after a time), TCP_DEFER_ACCEPT (the stack announces a child at its
 * handshake).
 */
static inline bool isosock_opt_refused(int level, int name)
{
	return level == 6 /* IPPROTO_TCP */ && (name == 18 /* TCP_USER_TIMEOUT */ ||
					name == 9 /* TCP_DEFER_ACCEPT */);
}

#endif /* ISOSOCK_SHIM_H */
