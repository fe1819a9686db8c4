/*
 * isosock: the socket front-end core (paper 4.1-4.3).
 *
 * This is the part of libisosock that speaks the socket protocol of
 * docs/sockets.md to isostackd through the application's shared-memory
 * segment.  It knows nothing about file descriptors, LD_PRELOAD or errno:
 * the interposition layer (interpose*.c) maps fds to socket ids, routes
 * calls here, and turns the negative return values into errno.
 *
 * What flows through it:
 *   - isosock_app_attach() connects to the daemon's control socket, sends
 *     ATTACH with the application wake fd, receives the segment fd and maps
 *     it (one attachment per process; a test may hold several);
 *   - a socket is a slot id (> 0) of that segment; every call below takes
 *     the attachment and the id;
 *   - send copies into the socket's TX ring and posts SEND only when the
 *     stack has consumed the previous one or 64 KiB piled up (front-end
 *     aggregation, paper 4.2); recv copies out of the RX ring with no
 *     interaction when data is there, and posts RECV to reopen the window
 *     after consuming half the ring (paper 4.3);
 *   - blocking calls spin ISOSOCK_SPIN_NS, then sleep on the socket's futex.
 *
 * Threading: every function is safe to call from several threads at once,
 * on the same socket too (a per-socket lock protects the rings; nobody
 * sleeps holding it).  Calls on different sockets never contend.
 *
 * Return values: >= 0 on success (0, a count, a socket id), -errno on
 * failure.  Nothing here sets errno.  Errors follow the kernel's choice for
 * the same call wherever the kernel defines one.  When the daemon is gone
 * (control socket hung up) every call on a socket fails: data calls with
 * -ECONNRESET (send: -EPIPE), others with -ENOTCONN; nothing hangs.
 */
#ifndef ISOSOCK_H
#define ISOSOCK_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifndef POLLRDHUP
#define POLLRDHUP 0x2000
#endif

/* Spin this long re-checking before sleeping on the futex. */
#define ISOSOCK_SPIN_NS        50000
/* Front-end aggregation threshold: post SEND anyway past this much. */
#define ISOSOCK_TX_AGG_MAX     (64u * 1024u)
/* Default control socket; $ISOSTACK_CONTROL overrides it. */
#define ISOSOCK_CONTROL_PATH   "/run/isostack/isostackd.sock"
/* The longest attach may take: connect, ATTACH out, the reply in. */
#define ISOSOCK_ATTACH_TIMEOUT_MS 5000

struct isosock_app;

/* ---- Attachment ------------------------------------------------------- */

/*
 * Connects to the daemon's control socket (`path`, or $ISOSTACK_CONTROL,
 * or ISOSOCK_CONTROL_PATH when NULL), sends ATTACH with a fresh
 * application wake fd, receives and maps the segment.  The control socket
 * stays open (O_CLOEXEC) for the life of the attachment: its hang-up tells
 * the daemon this process is gone.
 * Returns 0 and *out, or
 *   -ENOENT / -ECONNREFUSED: no daemon listening at that path,
 *   -EPROTO / -EPROTONOSUPPORT: the daemon speaks another protocol/ABI,
 *   -ECONNRESET: the daemon refused or hung up during attach,
 *   -ETIMEDOUT: no reply within ISOSOCK_ATTACH_TIMEOUT_MS (a daemon that
 *               accepts and never answers),
 *   -ENOMEM, or another -errno of socket/connect/mmap.
 * Nothing to free on failure.
 */
int isosock_app_attach(struct isosock_app **out, const char *path);

/*
 * Closes the control socket and unmaps the segment (the daemon then resets
 * every connection of this attachment).  No call may be in progress or
 * follow.  NULL is a no-op.
 */
void isosock_app_detach(struct isosock_app *app);

/*
 * fork() and exit.  The state of an attachment is shared by the processes
 * fork() makes (see core.c), so parent and child both drive every socket
 * they inherited, as with the kernel; a socket reaches the stack's CLOSE
 * when its last holder closes it (or exits, or dies).
 *   k = isosock_app_fork_prepare(app);   before fork(), no call in flight
 *                                        in this process: the child
 *                                        becomes a holder of every socket
 *                                        we hold (k names it)
 *   isosock_app_fork_parent(app, k, failed);     after, in the parent
 *   isosock_app_fork_child(app, k);              after, in the child
 *                                                (async-signal-safe)
 *   isosock_app_exit(app);   at process exit: releases what we hold
 *                            (never blocks; no call may follow)
 */
/*
 * exec.  An image exec'd with LD_PRELOAD still set adopts the
 * attachment and the sockets it inherited:
 *   isosock_app_exec_export(app, buf, n)  before exec: clears FD_CLOEXEC
 *        on the attachment's fds and describes it in buf (for the
 *        environment); returns the length or -errno;
 *   isosock_app_exec_failed(app)          exec returned: CLOEXEC again;
 *   isosock_app_exec_import(&app, desc)   in the new image: maps the
 *        shared state at the addresses it had (the pointers in it stay
 *        valid) and sets CLOEXEC again; -EEXIST if an address is taken;
 *   isosock_app_exec_keep_only(app, keep) then releases every socket the
 *        process held whose slot is not marked in keep[nsocks] (those
 *        were close-on-exec).
 */
/*
 * spawn (posix_spawn, system, popen: a child our fork handlers do not see).
 *   k = isosock_app_spawn_claim(app, &mark)  reserves a member entry for
 *        the child (pid `mark` < -1 until someone fills it in), or -1;
 *   isosock_app_spawn_hold(app, k, s)       the child inherits socket s;
 *   isosock_app_spawn_export(app, k, buf, n) as exec_export, for an image
 *        that takes entry k over at import (pid, start time, wake fd);
 *   isosock_app_spawn_done(app, k, mark, pid)  after: pid > 0 fills the
 *        entry in unless the child did; otherwise (or the child is gone
 *        already) an entry nobody took is undone, its sockets released.
 */
int isosock_app_spawn_claim(struct isosock_app *app, int32_t *mark);
void isosock_app_spawn_hold(struct isosock_app *app, int k, int s);
int isosock_app_spawn_export(struct isosock_app *app, int k, char *buf, size_t n);
void isosock_app_spawn_done(struct isosock_app *app, int k, int32_t mark, pid_t pid);
int isosock_app_exec_export(struct isosock_app *app, char *buf, size_t n);
void isosock_app_exec_failed(struct isosock_app *app);
int isosock_app_exec_import(struct isosock_app **out, const char *desc);
void isosock_app_exec_keep_only(struct isosock_app *app, const bool *keep);
int isosock_app_fork_prepare(struct isosock_app *app);
void isosock_app_fork_parent(struct isosock_app *app, int child, bool failed);
void isosock_app_fork_child(struct isosock_app *app, int child);
void isosock_app_exit(struct isosock_app *app);
/* A child of ours was reaped (wait*): sweep dead members now. */
void isosock_app_child_reaped(struct isosock_app *app);
/* Before sleeping on the wake fd (on) and after (off): socket s of this
 * process is waited for, so the stack writes our wake fd for it. */
/* Returns 1 when it used this thread's own wake bit (core_twake.c), 0
 * when the process's. */
int isosock_sleep_mark(struct isosock_app *app, int s, bool on);
/* Withdraws one process-bit mark of socket s (another thread's). */
void isosock_sleep_unmark_process(struct isosock_app *app, int s);
/* The same for every socket of the application at once (large sets). */
void isosock_sleep_any(struct isosock_app *app, bool on);
/* The sockets the stack posted to since *cursor (isoshm_app_notes): fn
 * per id; 1 if some were lost (look at every socket), else 0.  _now: a
 * cursor from now on. */
int isosock_app_notes(struct isosock_app *app, uint32_t *cursor,
		      void (*fn)(void *arg, uint32_t sock), void *arg);
uint32_t isosock_app_notes_now(struct isosock_app *app);

/* false once the daemon's control socket has hung up (checked lazily). */
bool isosock_app_alive(struct isosock_app *app);

/* The daemon-assigned application id (logs). */
uint32_t isosock_app_id(const struct isosock_app *app);

/* The number of socket slots of the segment (ids are 1 .. n-1). */
uint32_t isosock_app_max_sockets(const struct isosock_app *app);

/*
 * The control socket fd (the interposition layer must keep it away from
 * dup2/close of the application) and the application wake fd (an eventfd,
 * EFD_NONBLOCK; see isosock_wait_arm()).
 */
/* Whether fd is one of the attachment's own fds (control socket, wake
 * fds, segment and shared-state memfds): the application may not close
 * them (closefrom, close_range, dup2 over them). */
bool isosock_app_private_fd(const struct isosock_app *app, int fd);
/*
 * Moves our private fd `fd` (if it is one of app's) to another number, its
 * FD_CLOEXEC kept, so that an application's dup2/dup3 onto that number
 * (which the kernel would grant) does not replace our file.  The old
 * number stays open until the dup2 takes it.  Returns 0 (also when fd is
 * not ours) or -errno of fcntl (EMFILE).
 */
int isosock_app_private_move(struct isosock_app *app, int fd);
int isosock_app_ctl_fd(const struct isosock_app *app);
int isosock_app_wake_fd(const struct isosock_app *app);
/* The fd this thread sleeps on in mixed waits: its own (core_twake.c) or
 * the process's wake fd. */
int isosock_app_sleep_fd(struct isosock_app *app);

/* ---- Sockets ---------------------------------------------------------- */

/*
 * AF_INET with SOCK_STREAM (protocol 0 or IPPROTO_TCP) or SOCK_DGRAM
 * (0 or IPPROTO_UDP).  SOCK_NONBLOCK in type sets non-blocking mode;
 * SOCK_CLOEXEC is ignored (the fd layer's business).
 * Returns the socket id (> 0), or -EAFNOSUPPORT, -EPROTONOSUPPORT,
 * -EINVAL, -EMFILE (the application's socket limit), -ENOBUFS (its
 * buffer memory limit), -ENETDOWN (daemon gone).
 */
int isosock_socket(struct isosock_app *app, int domain, int type, int protocol);

/* Non-blocking mode of a socket (O_NONBLOCK / FIONBIO).  0 or -EBADF. */
int isosock_set_nonblock(struct isosock_app *app, int s, bool on);
int isosock_get_nonblock(struct isosock_app *app, int s);  /* 0/1 or -EBADF */

/* -EINVAL, -EADDRINUSE, -EADDRNOTAVAIL, -EAFNOSUPPORT, -EBADF. */
int isosock_bind(struct isosock_app *app, int s, const struct sockaddr *addr, socklen_t len);
/* -EINVAL (not bound/UDP), -EOPNOTSUPP, -EADDRINUSE.  Unbound: bind INADDR_ANY:0 first. */
int isosock_listen(struct isosock_app *app, int s, int backlog);

/*
 * Returns the new socket id, and its peer address in addr/len if given
 * (truncated as by the kernel, *len set to the full length).
 * flags: SOCK_NONBLOCK for the new socket, SOCK_CLOEXEC ignored.
 * Non-blocking listener with nothing pending: -EAGAIN.  Errors: -EINVAL
 * (not listening), -EMFILE, -ECONNABORTED, -EINTR, -ETIMEDOUT (SO_RCVTIMEO
 * passed: reported as -EAGAIN, as the kernel does).
 */
int isosock_accept(struct isosock_app *app, int s, struct sockaddr *addr,
		   socklen_t *len, int flags);

/*
 * Blocking: returns 0 when established, or -ECONNREFUSED, -ETIMEDOUT,
 * -ENETUNREACH, -EHOSTUNREACH, -EINTR (the connect goes on; later calls
 * see -EALREADY, then the result).  Non-blocking: -EINPROGRESS at once;
 * the socket becomes POLLOUT when done and SO_ERROR tells the result; a
 * second connect returns -EALREADY while pending, -EISCONN after.
 * UDP: sets the default peer (AF_UNSPEC clears it).
 */
int isosock_connect(struct isosock_app *app, int s, const struct sockaddr *addr, socklen_t len);

/*
 * Passing sockets with SCM_RIGHTS (core_handoff.c).  isosock_handoff:
 * socket s is about to travel as file fd (the daemon keeps a copy of it).
 * 0, -EINVAL (not a TCP connection or listener), -EOPNOTSUPP
 * (SO_REUSEPORT listener), -ENOSPC, -EBADF, -ENETDOWN.
 * isosock_claim: fd was just received; if it is a socket in flight it
 * becomes ours: returns its new id, *listener and *inet6 say what it is.
 * -ENOENT (not one), -EPERM (another user's), -EAGAIN (its sent bytes
 * are not acknowledged yet: ask again), -EMFILE, -ENOBUFS, -ENETDOWN.
 */
int isosock_handoff(struct isosock_app *app, int s, int fd);
int isosock_claim(struct isosock_app *app, int fd, bool *listener, bool *inet6);

/*
 * Stream send: copies into the TX ring, posting SEND per the aggregation
 * rule.  Blocks while the ring is full unless non-blocking or
 * MSG_DONTWAIT: then returns the bytes that fit, or -EAGAIN if none.
 * flags: MSG_DONTWAIT, MSG_NOSIGNAL (no effect here: the shim raises
 * SIGPIPE itself when asked), MSG_MORE (suppresses the SEND post while
 * the ring has room; the next send without it posts).
 * Errors: -EPIPE (shut down for writing, or peer reset after EOF),
 * -ECONNRESET, -ENOTCONN, -EINTR (nothing sent), -EAGAIN.
 * UDP: not implemented yet (-EOPNOTSUPP).
 */
ssize_t isosock_send(struct isosock_app *app, int s, const void *buf, size_t len, int flags);
ssize_t isosock_sendto(struct isosock_app *app, int s, const void *buf, size_t len, int flags,
		       const struct sockaddr *to, socklen_t tolen);

/*
 * Stream recv: copies out of the RX ring.  Returns bytes (> 0), 0 at EOF
 * (peer FIN and ring drained) or for len 0, or -EAGAIN (non-blocking /
 * MSG_DONTWAIT, nothing there; also SO_RCVTIMEO expiry), -ECONNRESET,
 * -ENOTCONN, -EINTR.  flags: MSG_DONTWAIT, MSG_PEEK (copy without
 * consuming), MSG_WAITALL (loop until len bytes, EOF, an error or a signal;
 * returns the bytes so far if any).
 */
ssize_t isosock_recv(struct isosock_app *app, int s, void *buf, size_t len, int flags);
ssize_t isosock_recvfrom(struct isosock_app *app, int s, void *buf, size_t len, int flags,
			 struct sockaddr *from, socklen_t *fromlen);

/* Bytes readable now (FIONREAD).  >= 0 or -EBADF. */
int isosock_nread(struct isosock_app *app, int s);

/* Bytes written and not yet acknowledged by the peer (SIOCOUTQ).  >= 0,
 * -EINVAL on a listener (as Linux), -EBADF. */
int isosock_outq(struct isosock_app *app, int s);

/* SHUT_RD, SHUT_WR, SHUT_RDWR.  0, -EINVAL, -ENOTCONN, -EBADF. */
int isosock_shutdown(struct isosock_app *app, int s, int how);

/*
 * Releases the socket id at once (it must not be used again).  The stack
 * sends what remains in the TX ring, then closes; the slot is recycled
 * when the stack has replied.  With SO_LINGER {1, 0}: the connection is
 * reset.  Always returns 0 (or -EBADF for a bad id): close does not block.
 */
int isosock_close(struct isosock_app *app, int s);

int isosock_getsockname(struct isosock_app *app, int s, struct sockaddr *addr, socklen_t *len);
int isosock_getpeername(struct isosock_app *app, int s, struct sockaddr *addr, socklen_t *len);

/*
 * Options.  Handled here: SO_ERROR (read and clear), SO_TYPE, SO_DOMAIN,
 * SO_ACCEPTCONN, SO_RCVTIMEO, SO_SNDTIMEO, SO_RCVBUF/SO_SNDBUF (a set
 * value is reported as Linux reports it and, on TCP, pins the ring size
 * in the stack; unset, the ring size now), SO_LINGER.  Passed to the
 * stack: SO_REUSEADDR, SO_REUSEPORT, SO_KEEPALIVE, TCP_NODELAY,
 * TCP_KEEPIDLE/INTVL/CNT; TCP_CORK is accepted (front-end: like MSG_MORE).
 * Returns 0 or -ENOPROTOOPT, -EINVAL, -EFAULT, -EBADF.
 */
int isosock_setsockopt(struct isosock_app *app, int s, int level, int name,
		       const void *val, socklen_t len);
int isosock_getsockopt(struct isosock_app *app, int s, int level, int name,
		       void *val, socklen_t *len);

/* ---- Readiness and waiting ------------------------------------------- */

/*
 * Non-blocking readiness query: a mask of POLLIN, POLLOUT, POLLHUP,
 * POLLERR, POLLRDHUP, as poll(2) would report for a kernel socket
 * (POLLERR/POLLHUP reported whatever `events` says).  Drains pending
 * events of the socket first.  Returns the mask (>= 0) or -EBADF.
 */
int isosock_poll(struct isosock_app *app, int s, short events);

/*
 * isosock_poll, plus in *gen an arrival count of the socket: it moves
 * whenever data (a datagram) reached the RX ring or a connection the
 * accept queue, whether or not the socket was readable before.  What
 * edge-triggered epoll reports as a new EPOLLIN edge.
 */
int isosock_poll_gen(struct isosock_app *app, int s, short events, uint32_t *gen);

struct isosock_pollfd {
	int sock;       /* socket id; < 0: ignored (revents 0) */
	short events;   /* POLLIN, POLLOUT, POLLRDHUP */
	short revents;  /* out */
};

/*
 * Blocking wait on a set of sockets of one attachment: returns the number
 * of entries with revents != 0 (> 0), 0 on timeout, or -EINTR.
 * timeout_ns < 0: forever; 0: just query.  Spins ISOSOCK_SPIN_NS, then
 * sleeps on the segment's app-wide futex.
 */
int isosock_wait(struct isosock_app *app, struct isosock_pollfd *set, unsigned n,
		 int64_t timeout_ns);

/*
 * Waits that mix isostack sockets with kernel fds (poll/epoll in the shim):
 *   isosock_wait_arm(app);                // announce a sleeper
 *   if (isosock_poll(...) says nothing ready)
 *       epoll_wait(kernel fds + isosock_app_wake_fd(app), ...);
 *   isosock_wait_disarm(app);             // withdraw, drain the eventfd
 * While armed, the stack writes the wake fd when any socket of the
 * attachment gets an event (at most once per stack poll round).
 * Arms nest (a counter).  Both return 0.
 */
int isosock_wait_arm(struct isosock_app *app);
int isosock_wait_disarm(struct isosock_app *app);

/* ---- Counters (tests, isostat) ---------------------------------------- */

struct isosock_stats {
	uint64_t send_calls;      /* isosock_send calls that copied >= 1 byte */
	uint64_t send_posts;      /* SEND commands posted */
	uint64_t send_skips;      /* ... not posted: the stack watched tx_prod */
	uint64_t recv_calls;      /* isosock_recv calls that copied >= 1 byte */
	uint64_t recv_posts;      /* RECV commands posted (window credit) */
	uint64_t cmds;            /* commands posted, all opcodes */
	uint64_t sleeps;          /* futex sleeps */
	uint64_t events;          /* EV_* entries consumed */
	uint64_t stack_kicks;     /* stack wake fd writes (the daemon napped) */
	uint64_t extents_mapped;  /* extent fds fetched from the daemon */
	uint64_t extent_timeouts; /* EXTENT requests the daemon did not answer in time */
};
void isosock_app_stats(struct isosock_app *app, struct isosock_stats *out);

#endif /* ISOSOCK_H */
