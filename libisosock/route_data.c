/*
 * The shim's data calls on a socket it routes (route.c says how a socket
 * is served): sendmsg/recvmsg and what is built on them, sendfile,
 * splice/tee/vmsplice between a pipe and a socket, sendmmsg/recvmmsg.
 * Every stack call is non-blocking; waiting is route.c's
 * isosock__route_block.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "route_internal.h"
#include "shadow.h"
#include "shim.h"

#define L isosock_libc

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
		int w = isosock__route_block(f, fd, POLLOUT, f->sndtimeo_ns, &deadline);
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
				if (isosock__route_block(f, fd, POLLIN | POLLRDHUP, f->rcvtimeo_ns, &deadline) < 0)
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
		int w = isosock__route_block(f, fd, POLLIN | POLLRDHUP, f->rcvtimeo_ns, &deadline);
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
			if (errno == EINTR && isosock__restart_after_signal(-1))
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
