/*
 * ctl_probe: speaks the control protocol (include/isostack/ctl_proto.h)
 * the way the shim does, and says what the daemon answered, so the access
 * test can check each refusal's errno exactly.
 *
 *   ctl_probe PATH attach   ATTACH; prints "attach 0 <app id>" or
 *                           "attach <ERRNO>" (connect's, send's or the
 *                           reply's status), then, if attached or
 *                           "hold" follows, keeps the connection until
 *                           stdin reaches end of file
 *   ctl_probe PATH idle     connects, prints "connected" (or "connect
 *                           <ERRNO>") and sends nothing until stdin ends
 *
 * Exit status 0 when it printed an answer, 1 on a protocol error.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "isostack/ctl_proto.h"
#include "isostack/shm_abi.h"
#include "isoshm.h"

static const char *ename(int e)
{
	switch (e) {
	case EACCES: return "EACCES";
	case EAGAIN: return "EAGAIN";
	case EMFILE: return "EMFILE";
	case EUSERS: return "EUSERS";
	case EPIPE: return "EPIPE";
	case ECONNRESET: return "ECONNRESET";
	case ECONNREFUSED: return "ECONNREFUSED";
	case ENOENT: return "ENOENT";
	default: return strerror(e);
	}
}

static void wait_stdin(void)
{
	char c;

	while (read(0, &c, 1) > 0)
		;
}

int main(int argc, char **argv)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct isostack_ctl_attach req = {
		.hdr = { .magic = ISOSTACK_CTL_MAGIC, .version = ISOSTACK_CTL_VERSION,
			 .type = ISOSTACK_CTL_ATTACH, .length = sizeof(req) },
		.abi_version = ISOSTACK_SHM_ABI_VERSION,
		.features = ISOSTACK_SHM_FEATURES_KNOWN,
		.comm = "ctl_probe",
	};
	struct isostack_ctl_attach_reply rep;
	int fd, wfd, fds[2] = { -1, -1 }, sent;
	unsigned nfds = 0;
	ssize_t n;

	if (argc < 3 || strlen(argv[1]) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "usage: ctl_probe PATH attach [hold] | idle\n");
		return 2;
	}
	strcpy(sun.sun_path, argv[1]);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		printf("%s %s\n", strcmp(argv[2], "idle") == 0 ? "connect" : "attach",
		       ename(errno));
		return 0;
	}
	if (strcmp(argv[2], "idle") == 0) {
		printf("connected\n");
		fflush(stdout);
		wait_stdin();
		return 0;
	}
	req.pid = (uint32_t)getpid();
	wfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	sent = isoshm_send_fd(fd, wfd, &req, sizeof(req));
	/* A refusal at accept is a reply already queued, then a hang-up. */
	n = isoshm_recv_fds(fd, &rep, sizeof(rep), fds, 2, &nfds, 0);
	if (n == -ECONNRESET)   /* closed with our ATTACH unread: the reply is next */
		n = isoshm_recv_fds(fd, &rep, sizeof(rep), fds, 2, &nfds, 0);
	if (n <= 0) {
		printf("attach %s\n", ename(sent < 0 ? -sent : n == 0 ? ECONNRESET : (int)-n));
		return 0;
	}
	if (n != (ssize_t)sizeof(rep) || rep.hdr.type != ISOSTACK_CTL_ATTACH_REPLY) {
		fprintf(stderr, "ctl_probe: not an ATTACH_REPLY (%zd bytes)\n", n);
		return 1;
	}
	if (rep.status < 0)
		printf("attach %s\n", ename(-rep.status));
	else
		printf("attach 0 %u\n", rep.app_id);
	fflush(stdout);
	if (rep.status == 0 || (argc > 3 && strcmp(argv[3], "hold") == 0))
		wait_stdin();
	return 0;
}
