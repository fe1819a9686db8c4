/*
 * File descriptors over the AF_UNIX control socket (SCM_RIGHTS), both
 * ways: the daemon sends the segment, extent and doorbell fds and
 * receives the applications' wake fds; the shim the reverse.  One helper
 * for both, because the receiving side is where fds leak or go astray:
 * control data is only looked at after a recvmsg that succeeded, every
 * fd that arrived is either handed to the caller or closed here, and a
 * message whose fds did not all arrive (MSG_CTRUNC), that carries more
 * than the caller expects or whose data was cut (MSG_TRUNC) fails whole.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "isoshm.h"

int isoshm_send_fds(int sock, const void *buf, size_t len, const int *fds, unsigned nfds,
		    int flags)
{
	union {
		char buf[CMSG_SPACE(ISOSHM_FDPASS_MAX * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	/* a stream socket drops ancillary data without bytes */
	if (len == 0 || nfds > ISOSHM_FDPASS_MAX || (nfds > 0 && fds == NULL))
		return -EINVAL;
	for (unsigned i = 0; i < nfds; i++)
		if (fds[i] < 0)
			return -EINVAL;
	if (nfds > 0) {
		struct cmsghdr *cm;

		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	}
	do {
		/* The system call itself: in the shim, sendmsg() and recvmsg()
		 * are its own, which register the isostack sockets among
		 * SCM_RIGHTS fds with the daemon -- over this very socket. */
		n = syscall(SYS_sendmsg, sock, &msg, MSG_NOSIGNAL | (flags & MSG_DONTWAIT));
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EMSGSIZE;
}

/* The receive side's control buffer: the fds, and credentials too
 * (SO_PASSCRED on the socket: without room for them they would truncate
 * the fds, MSG_CTRUNC, of every message).  At most GOT_MAX fds fit. */
#define CTL_BYTES (CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(ISOSHM_FDPASS_MAX * sizeof(int)))
#define GOT_MAX   ((CTL_BYTES - CMSG_LEN(0)) / sizeof(int))

/* Every fd of every SCM_RIGHTS message in msg, in order, into got[].
 * Returns the count.  Other control messages carry no fds. */
static unsigned collect_fds(struct msghdr *msg, int got[GOT_MAX])
{
	unsigned n = 0;

	for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm != NULL; cm = CMSG_NXTHDR(msg, cm)) {
		size_t k;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
		    cm->cmsg_len < CMSG_LEN(0))
			continue;
		k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k && n < GOT_MAX; i++)
			memcpy(&got[n++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
	}
	return n;
}

ssize_t isoshm_recv_fds(int sock, void *buf, size_t len, int *fds, unsigned max_fds,
			unsigned *nfds, int flags)
{
	union {
		char buf[CTL_BYTES];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg;
	int got[GOT_MAX];
	unsigned ngot;
	ssize_t n;

	*nfds = 0;
	if (max_fds > ISOSHM_FDPASS_MAX)
		return -EINVAL;
	do {
		msg = (struct msghdr){ .msg_iov = &iov, .msg_iovlen = 1,
				       .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
		n = syscall(SYS_recvmsg, sock, &msg, MSG_CMSG_CLOEXEC | (flags & MSG_DONTWAIT));
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;  /* nothing was received: no control data to look at */
	ngot = collect_fds(&msg, got);
	if ((msg.msg_flags & MSG_CTRUNC) || ngot > max_fds)
		n = -EPROTO;
	else if (msg.msg_flags & MSG_TRUNC)
		n = -EMSGSIZE;
	/* n == 0: a hang-up, or an empty SEQPACKET record: no fds with it */
	if (n <= 0) {
		for (unsigned i = 0; i < ngot; i++)
			close(got[i]);
		return n;
	}
	if (ngot > 0)
		memcpy(fds, got, ngot * sizeof(int));
	*nfds = ngot;
	return n;
}

int isoshm_send_fd(int sock, int fd, const void *buf, size_t len)
{
	return isoshm_send_fds(sock, buf, len, &fd, 1, 0);
}

int isoshm_recv_fd(int sock, int *fd, void *buf, size_t len)
{
	unsigned nfds;
	ssize_t n = isoshm_recv_fds(sock, buf, len, fd, 1, &nfds, 0);

	if (n < 0 || nfds == 0)
		*fd = -1;
	return (int)n;
}
