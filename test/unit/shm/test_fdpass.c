/*
 * shm/fdpass.c, the one SCM_RIGHTS helper of the daemon and the shim,
 * against what a peer can send over the control socket: fds where none
 * are expected, more than expected, more than fit (MSG_CTRUNC), an
 * empty record with fds, a record longer than the buffer, credentials
 * beside the fds, and a recvmsg that fails.  Every case counts the
 * process's open fds (/proc/self/fd) before and after: whatever arrived
 * is either handed over or closed, never leaked.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "isoshm.h"

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Sends len bytes with nfds copies of a fresh pipe's ends by hand (no
 * limit on the count, unlike isoshm_send_fds), then closes our copies:
 * what stays open afterwards is what the receiver holds. */
static void send_raw(int sock, const void *buf, size_t len, unsigned nfds)
{
	union {
		char buf[CMSG_SPACE(16 * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	int fds[16], p[2];

	assert_true(nfds <= 16);
	assert_int_equal(pipe(p), 0);
	for (unsigned i = 0; i < nfds; i++)
		fds[i] = p[i % 2];
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
	assert_int_equal(sendmsg(sock, &msg, 0), (ssize_t)len);
	close(p[0]);
	close(p[1]);
}

static int seqpacket(int sv[2])
{
	return socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv);
}

/* Two fds and the bytes arrive; the fds work and are close-on-exec. */
static void round_trip(void **state)
{
	int sv[2], e[2], got[4];
	unsigned n = 99;
	char buf[8];
	uint64_t v = 5;

	(void)state;
	assert_int_equal(seqpacket(sv), 0);
	e[0] = eventfd(0, 0);
	e[1] = dup(e[0]);
	assert_int_equal(isoshm_send_fds(sv[0], "hello", 5, e, 2, 0), 0);
	assert_int_equal(isoshm_recv_fds(sv[1], buf, sizeof(buf), got, 2, &n, 0), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(n, 2);
	assert_true(fcntl(got[0], F_GETFD) & FD_CLOEXEC);
	assert_int_equal(write(got[0], &v, sizeof(v)), sizeof(v));
	v = 0;
	assert_int_equal(read(e[1], &v, sizeof(v)), sizeof(v));
	assert_int_equal(v, 5);
	for (int i = 0; i < 2; i++) {
		close(got[i]);
		close(e[i]);
	}
	close(sv[0]);
	close(sv[1]);
}

/* A message without fds: the bytes, no fd. */
static void zero_fds(void **state)
{
	int sv[2], got[2] = { -7, -7 }, before;
	unsigned n = 99;
	char buf[8];

	(void)state;
	assert_int_equal(seqpacket(sv), 0);
	before = open_fds();
	assert_int_equal(isoshm_send_fds(sv[0], "ab", 2, NULL, 0, 0), 0);
	assert_int_equal(isoshm_recv_fds(sv[1], buf, sizeof(buf), got, 2, &n, 0), 2);
	assert_int_equal(n, 0);
	assert_int_equal(got[0], -7);   /* untouched */
	assert_int_equal(open_fds(), before);
	/* the one-fd form says -1 */
	assert_int_equal(isoshm_send_fds(sv[0], "cd", 2, NULL, 0, 0), 0);
	assert_int_equal(isoshm_recv_fd(sv[1], &got[0], buf, sizeof(buf)), 2);
	assert_int_equal(got[0], -1);
	close(sv[0]);
	close(sv[1]);
}

/* More fds than the caller takes: the message fails, all of them closed. */
static void too_many_fds(void **state)
{
	int sv[2], got[4], before, fd = 5;
	unsigned n = 99;
	char buf[8];

	(void)state;
	assert_int_equal(seqpacket(sv), 0);
	before = open_fds();
	send_raw(sv[0], "x", 1, 3);
	assert_int_equal(isoshm_recv_fds(sv[1], buf, sizeof(buf), got, 2, &n, 0), -EPROTO);
	assert_int_equal(n, 0);
	assert_int_equal(open_fds(), before);
	/* the one-fd form (the shim's extent replies): two fds fail too */
	send_raw(sv[0], "x", 1, 2);
	assert_int_equal(isoshm_recv_fd(sv[1], &fd, buf, sizeof(buf)), -EPROTO);
	assert_int_equal(fd, -1);
	assert_int_equal(open_fds(), before);
	/* and the stream after them is intact */
	assert_int_equal(isoshm_send_fds(sv[0], "ok", 2, NULL, 0, 0), 0);
	assert_int_equal(isoshm_recv_fds(sv[1], buf, sizeof(buf), got, 2, &n, 0), 2);
	close(sv[0]);
	close(sv[1]);
}

/* More fds than the control buffer holds: the kernel truncates
 * (MSG_CTRUNC, dropping what did not fit); what did arrive is closed. */
static void truncated_control(void **state)
{
	int sv[2], got[ISOSHM_FDPASS_MAX], before;
	unsigned n = 99;
	char buf[8];

	(void)state;
	assert_int_equal(seqpacket(sv), 0);
	before = open_fds();
	send_raw(sv[0], "x", 1, 16);
	assert_int_equal(isoshm_recv_fds(sv[1], buf, sizeof(buf), got, ISOSHM_FDPASS_MAX, &n, 0),
			 -EPROTO);
	assert_int_equal(n, 0);
	assert_int_equal(open_fds(), before);
	close(sv[0]);
	close(sv[1]);
}

/* Credentials beside the fds (SO_PASSCRED): ignored, the fd arrives. */
static void credentials_beside(void **state)
{
	int sv[2], got[2], one = 1, e = eventfd(0, 0), before;
	unsigned n = 99;
	char buf[8];

	(void)state;
	assert_int_equal(seqpacket(sv), 0);
	assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)), 0);
	before = open_fds();
	assert_int_equal(isoshm_send_fds(sv[0], "c", 1, &e, 1, 0), 0);
	assert_int_equal(isoshm_recv_fds(sv[1], buf, sizeof(buf), got, 2, &n, 0), 1);
	assert_int_equal(n, 1);
	assert_int_equal(open_fds(), before + 1);
	close(got[0]);
	close(e);
	close(sv[0]);
	close(sv[1]);
}

/* A record longer than the buffer (MSG_TRUNC), and an empty record
 * (read as 0, a hang-up): both fail with their fds closed. */
static void truncated_data_and_empty_record(void **state)
{
	int sv[2], got[2], before;
	unsigned n = 99;
	char buf[4];

	(void)state;
	assert_int_equal(seqpacket(sv), 0);
	before = open_fds();
	send_raw(sv[0], "0123456789", 10, 1);
	assert_int_equal(isoshm_recv_fds(sv[1], buf, sizeof(buf), got, 2, &n, 0), -EMSGSIZE);
	assert_int_equal(n, 0);
	assert_int_equal(open_fds(), before);
	send_raw(sv[0], "", 0, 1);
	assert_int_equal(isoshm_recv_fds(sv[1], buf, sizeof(buf), got, 2, &n, 0), 0);
	assert_int_equal(n, 0);
	assert_int_equal(open_fds(), before);
	close(sv[0]);
	close(sv[1]);
}

/* recvmsg fails: -errno, no fd, nothing closed (the old daemon walked
 * control data it had not received and could close stale fds). */
static void recvmsg_error(void **state)
{
	int sv[2], p[2], got[2] = { -7, -7 }, before;
	unsigned n = 99;
	char buf[8];

	(void)state;
	assert_int_equal(seqpacket(sv), 0);
	assert_int_equal(pipe(p), 0);
	before = open_fds();
	assert_int_equal(isoshm_recv_fds(sv[1], buf, sizeof(buf), got, 2, &n, MSG_DONTWAIT),
			 -EAGAIN);
	assert_int_equal(n, 0);
	assert_int_equal(isoshm_recv_fds(p[0], buf, sizeof(buf), got, 2, &n, 0), -ENOTSOCK);
	assert_int_equal(n, 0);
	assert_int_equal(isoshm_recv_fds(-1, buf, sizeof(buf), got, 2, &n, 0), -EBADF);
	assert_int_equal(got[0], -7);
	assert_int_equal(open_fds(), before);
	assert_int_equal(fcntl(p[0], F_GETFD), 0);   /* still open */
	assert_int_equal(fcntl(p[1], F_GETFD), 0);
	/* hang-up */
	close(sv[0]);
	assert_int_equal(isoshm_recv_fds(sv[1], buf, sizeof(buf), got, 2, &n, 0), 0);
	close(sv[1]);
	close(p[0]);
	close(p[1]);
}

static void send_errors(void **state)
{
	int sv[2], fds[ISOSHM_FDPASS_MAX + 1] = { 0 };
	unsigned n;
	char buf[4];

	(void)state;
	assert_int_equal(seqpacket(sv), 0);
	assert_int_equal(isoshm_send_fds(sv[0], "x", 0, fds, 1, 0), -EINVAL);
	assert_int_equal(isoshm_send_fds(sv[0], "x", 1, fds, ISOSHM_FDPASS_MAX + 1, 0), -EINVAL);
	fds[0] = -1;
	assert_int_equal(isoshm_send_fds(sv[0], "x", 1, fds, 1, 0), -EINVAL);
	assert_int_equal(isoshm_recv_fds(sv[1], buf, sizeof(buf), fds, ISOSHM_FDPASS_MAX + 1, &n,
					 MSG_DONTWAIT), -EINVAL);
	close(sv[1]);
	assert_int_equal(isoshm_send_fds(sv[0], "x", 1, NULL, 0, MSG_DONTWAIT), -EPIPE);
	close(sv[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip),
		cmocka_unit_test(zero_fds),
		cmocka_unit_test(too_many_fds),
		cmocka_unit_test(truncated_control),
		cmocka_unit_test(credentials_beside),
		cmocka_unit_test(truncated_data_and_empty_record),
		cmocka_unit_test(recvmsg_error),
		cmocka_unit_test(send_errors),
	};

	return cmocka_run_group_tests_name("fdpass", tests, NULL, NULL);
}
