/*
 * Fuzz target: the control protocol (include/isostack/ctl_proto.h) as the
 * back-end reads it (daemon/backend/backend.c, ctl_read and friends):
 * arbitrary messages, with or without fds of every kind, on one or more
 * connections to the control socket, attached or not.
 *
 * Input: records of [flags u8][length u8][bytes], at most MAX_MSGS:
 *   flags & 3      fds passed: 0 none, 1 an eventfd, 2 a pipe's read end,
 *                  3 a memfd
 *   F_TWO          that fd twice
 *   F_NEWCONN      a new connection first (at most MAX_CONNS)
 *   F_HDR          the first 16 bytes made a valid header (magic, version,
 *                  type = the record's first byte % 8, length = the record's)
 * After each message the back-end runs a few passes and every reply is read
 * (fds that come with it closed).  At the end every connection is closed
 * and the back-end must let every application go.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fuzz_be.h"
#include "isostack/ctl_proto.h"

#define F_TWO      0x04
#define F_NEWCONN  0x08
#define F_HDR      0x10
#define MAX_MSGS   32
#define MAX_CONNS  8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int connect_ctl(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	strcpy(sun.sun_path, fz_ctl_path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0)
		abort();
	return fd;
}

/* An fd of the kind asked for; *extra gets the pipe's other end. */
static int make_fd(unsigned kind, int *extra)
{
	int p[2];

	*extra = -1;
	switch (kind) {
	case 1:
		return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	case 2:
		if (pipe2(p, O_CLOEXEC) != 0)
			return -1;
		*extra = p[1];
		return p[0];
	default:
		return memfd_create("fuzz", MFD_CLOEXEC);
	}
}

/* Every reply waiting on fd read, fds that came along closed. */
static void drain(int fd)
{
	static uint8_t buf[ISOSTACK_CTL_STATS_MAX];
	int fds[4];
	unsigned n;

	while (isoshm_recv_fds(fd, buf, sizeof(buf), fds, 4, &n, MSG_DONTWAIT) > 0)
		for (unsigned i = 0; i < n; i++)
			close(fds[i]);
}

static void send_msg(int conn, uint8_t flags, uint8_t *msg, size_t len)
{
	int fds[2] = { -1, -1 }, extra = -1;
	unsigned nfds = 0;

	if (flags & F_HDR && len >= sizeof(struct isostack_ctl_hdr)) {
		struct isostack_ctl_hdr h = {
			ISOSTACK_CTL_MAGIC, ISOSTACK_CTL_VERSION, (uint16_t)(msg[0] % 8),
			(uint32_t)len, 0,
		};

		memcpy(msg, &h, sizeof(h));
	}
	if (flags & 3) {
		fds[0] = make_fd(flags & 3, &extra);
		if (fds[0] < 0)
			abort();
		fds[1] = fds[0];
		nfds = (flags & F_TWO) ? 2 : 1;
	}
	/* EPIPE, ECONNRESET: the back-end hung up on garbage, as it may */
	(void)isoshm_send_fds(conn, msg, len, fds, nfds, MSG_DONTWAIT);
	if (fds[0] >= 0)
		close(fds[0]);
	if (extra >= 0)
		close(extra);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	int conns[MAX_CONNS];
	unsigned nconns = 0, msgs = 0;
	uint8_t msg[256];

	if (!ready) {
		fz_setup();
		ready = 1;
	}
	conns[nconns++] = connect_ctl();
	while (size >= 2 && msgs++ < MAX_MSGS) {
		uint8_t flags = data[0];
		size_t len = data[1];

		data += 2;
		size -= 2;
		if (len > size)
			len = size;
		memcpy(msg, data, len);
		data += len;
		size -= len;
		if ((flags & F_NEWCONN) && nconns < MAX_CONNS)
			conns[nconns++] = connect_ctl();
		send_msg(conns[nconns - 1], flags, msg, len);
		fz_passes(3);
		for (unsigned i = 0; i < nconns; i++)
			drain(conns[i]);
	}
	for (unsigned i = 0; i < nconns; i++)
		close(conns[i]);
	fz_settle();
	return 0;
}
