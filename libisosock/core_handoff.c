/*
 * The core's side of passing a socket to another process with SCM_RIGHTS
 * (docs/sockets.md, "Passing sockets (SCM_RIGHTS)"; the daemon's side is
 * daemon/backend/handoff.c): HANDOFF tells the daemon, before the fd
 * travels, which socket that file stands for; CLAIM asks it whether a
 * file we received is such a socket, and if so the socket becomes one of
 * ours, at a new id.  Both are a request and its reply on the control
 * socket, which the processes of the application share: made under its
 * process-shared lock, ctl_seq odd meanwhile (isosock_app_alive).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "core_internal.h"
#include "isostack/ctl_proto.h"

union reply {
	struct isostack_ctl_hdr hdr;
	struct isostack_ctl_handoff_reply handoff;
	struct isostack_ctl_claim_reply claim;
	uint8_t raw[64];
};

/* Reads the reply of `type` (EXTENT replies a killed requester left
 * behind are skipped).  0 or -errno. */
static int read_reply(int fd, uint16_t type, size_t size, union reply *r)
{
	for (;;) {
		int efd = -1;
		int n = isoshm_recv_fd(fd, &efd, r, sizeof(*r));

		if (efd >= 0)
			close(efd);
		if (n == 0)
			return -ECONNRESET;
		if (n == -EINTR)
			continue;
		if (n < 0)
			return n;
		if ((size_t)n < sizeof(r->hdr) || r->hdr.magic != ISOSTACK_CTL_MAGIC)
			return -EPROTO;
		if (r->hdr.type == ISOSTACK_CTL_EXTENT_REPLY)
			continue;       /* someone else's, orphaned */
		if (r->hdr.type != type || (size_t)n != size || r->hdr.length != size)
			return -EPROTO;
		return 0;
	}
}

/* One request (with fd attached if >= 0) and its reply. */
static int ctl_call(struct isosock_app *app, const void *q, size_t qlen, int fd,
		    uint16_t type, size_t size, union reply *r)
{
	int rc;

	robust_lock(&app->sh->ctl_lock);
	atomic_fetch_add_explicit(&app->sh->ctl_seq, 1, memory_order_seq_cst);
	rc = isoshm_send_fds(app->ctl_fd, q, qlen, &fd, fd >= 0 ? 1 : 0, 0);
	if (rc == 0)
		rc = read_reply(app->ctl_fd, type, size, r);
	atomic_fetch_add_explicit(&app->sh->ctl_seq, 1, memory_order_seq_cst);
	pthread_mutex_unlock(&app->sh->ctl_lock);
	return rc;
}

int isosock_handoff(struct isosock_app *app, int s, int fd)
{
	struct isostack_ctl_handoff q = {
		.hdr = { .magic = ISOSTACK_CTL_MAGIC, .version = ISOSTACK_CTL_VERSION,
			 .type = ISOSTACK_CTL_HANDOFF, .length = sizeof(q) },
		.sock = (uint32_t)s,
	};
	union reply r;
	int rc;

	if (fs_get(app, s) == NULL)
		return -EBADF;
	if (!isosock_app_alive(app))
		return -ENETDOWN;
	rc = ctl_call(app, &q, sizeof(q), fd, ISOSTACK_CTL_HANDOFF_REPLY,
		      sizeof(r.handoff), &r);
	return rc < 0 ? rc : r.handoff.status;
}

int isosock_claim(struct isosock_app *app, int fd, bool *listener, bool *inet6)
{
	struct isostack_ctl_claim q = {
		.hdr = { .magic = ISOSTACK_CTL_MAGIC, .version = ISOSTACK_CTL_VERSION,
			 .type = ISOSTACK_CTL_CLAIM, .length = sizeof(q) },
		.pid = (uint32_t)getpid(),
		.fd = fd,
	};
	union reply r;
	struct fsock *f;
	int rc, s;

	if (!isosock_app_alive(app))
		return -ENETDOWN;
	rc = ctl_call(app, &q, sizeof(q), -1, ISOSTACK_CTL_CLAIM_REPLY, sizeof(r.claim), &r);
	if (rc < 0)
		return rc;
	if (r.claim.status < 0)
		return r.claim.status;
	/* From here the id is ours: as an accepted child's (core_conn.c). */
	s = (int)r.claim.sock;
	if (s <= 0 || (uint32_t)s >= app->nsocks ||
	    (r.claim.kind != ISOSTACK_CTL_CLAIM_CONN && r.claim.kind != ISOSTACK_CTL_CLAIM_LISTEN))
		return -EPROTO;
	rc = isosock__fs_prepare(app, s);
	if (rc < 0)
		return rc == -EPROTO ? -EPROTO : -ENOBUFS;
	f = &app->fs[s];
	fs_lock(f);
	isosock__fs_fresh(app, f, r.claim.kind == ISOSTACK_CTL_CLAIM_LISTEN ? F_LISTEN : F_CONNECTED,
			  atomic_load_explicit(&app->socks[s].tx_prod, memory_order_relaxed),
			  atomic_load_explicit(&app->socks[s].rx_cons, memory_order_relaxed));
	f->nonblock = true;
	f->inet6 = r.claim.inet6 != 0;
	fs_unlock(f);
	*listener = r.claim.kind == ISOSTACK_CTL_CLAIM_LISTEN;
	*inet6 = f->inet6;
	return s;
}
