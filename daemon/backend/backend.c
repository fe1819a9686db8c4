/*
 * The back-end's outer loop: the control socket (attach, hang-up, stats),
 * the event queue lwIP callbacks fill, and the doorbell scan of every
 * attached application (O(doorbells x applications) per pass when idle,
 * independent of the number of sockets).
 *
 * Who may connect, and how much one user may hold, is ctl_auth.c's:
 * checked at accept, before anything is read.
 *
 * Attach: a client connects to the SEQPACKET control socket and sends
 * ATTACH with its wake fd, which must be an eventfd (a pipe or socket
 * would block the stack core once full: refused, -EBADF); we create its
 * segment and its doorbell fd and answer with both.  The doorbell fd is
 * an eventfd of that application's own, in the epoll set the loop sleeps
 * on: one shared by all would let an application that reads it swallow
 * the others' wake-ups.  Every fd crosses through shm/fdpass.c.  The
 * connection then stays open; its
 * hang-up (POLLHUP / read of 0) makes us close every socket of that
 * application as the kernel closes a dead process's fds (FIN after the
 * unsent data), then, once those are through, drop its slots and unmap
 * its segment.  The application's processes themselves are watched with
 * pidfds (procs.c), polled here with the control sockets: a process that
 * dies while others live on has the sockets only it held closed the same
 * way.  Both within ctl_interval_ms.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lwip/sys.h"

#include "internal.h"
#include "log.h"

void isod_backend_conf_default(struct isod_backend_conf *c)
{
	memset(c, 0, sizeof(*c));
	isoshm_params_default(&c->shm);
	c->tx_ring = 256u << 10;
	c->rx_ring = 256u << 10;
	c->tx_start = 16u << 10;
	c->rx_start = 16u << 10;
	c->max_apps = 64;
	c->control_gid = -1;
	c->max_apps_per_uid = 32;
	c->ctl_interval_ms = 1;
	c->close_timeout_ms = 60000;
	c->cut_through = true;
	c->app_pcbs = MEMP_NUM_TCP_PCB / 2;
	c->app_tx_segs = (MEMP_NUM_TCP_SEG < MEMP_NUM_PBUF ? MEMP_NUM_TCP_SEG : MEMP_NUM_PBUF) / 2;
	c->app_rx_held = UINT64_C(16) << 20;
}

uint32_t isod_backend_now(const struct isod_backend *be)
{
	return be->conf.clock_ms != NULL ? *be->conf.clock_ms : sys_now();
}

int isod_backend_init(struct isod_backend **out, const struct isod_backend_conf *conf)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct isod_backend *be;
	int ret;

	/* The receive window is at most the RX ring (sock.c): less than one
	 * segment would stall every connection. */
	if (conf == NULL || conf->control_path == NULL || conf->shm.max_sockets < 2 ||
	    conf->rx_ring < ISOTCP_ETH_MSS || conf->rx_ring < 4096 || conf->tx_ring < 4096 ||
	    (conf->rx_ring & (conf->rx_ring - 1)) != 0 || (conf->tx_ring & (conf->tx_ring - 1)) != 0 ||
	    conf->rx_ring > conf->shm.max_ring_bytes || conf->tx_ring > conf->shm.max_ring_bytes ||
	    conf->tx_start < 4096 || conf->rx_start < 4096 ||
	    (conf->tx_start & (conf->tx_start - 1)) != 0 ||
	    (conf->rx_start & (conf->rx_start - 1)) != 0 ||
	    (conf->app_tx_segs != 0 && conf->app_tx_segs < ISOD_CAP_SEGS_MIN))
		return -EINVAL;
	if (strlen(conf->control_path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	be = calloc(1, sizeof(*be));
	if (be == NULL)
		return -ENOMEM;
	be->conf = *conf;
	if (be->conf.tx_start > be->conf.tx_ring)
		be->conf.tx_start = be->conf.tx_ring;
	if (be->conf.rx_start > be->conf.rx_ring)
		be->conf.rx_start = be->conf.rx_ring;
	if (be->conf.max_apps == 0)
		be->conf.max_apps = 64;
	snprintf(be->path, sizeof(be->path), "%s", conf->control_path);
	be->conf.control_path = be->path;
	be->ready_tail = &be->ready_head;
	be->next_app_id = 1;
	/* the first poll looks at the control socket */
	be->last_ctl_ms = isod_backend_now(be) - be->conf.ctl_interval_ms;
	be->proc_ep = epoll_create1(EPOLL_CLOEXEC);
	if (be->proc_ep < 0) {
		ret = -errno;
		goto err_free;
	}
	be->doorbell_ep = epoll_create1(EPOLL_CLOEXEC);
	if (be->doorbell_ep < 0) {
		ret = -errno;
		goto err_ep;
	}
	be->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (be->listen_fd < 0) {
		ret = -errno;
		goto err_doorbell;
	}
	strcpy(sun.sun_path, be->path);
	unlink(be->path);
	if (bind(be->listen_fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    listen(be->listen_fd, 64) < 0) {
		ret = -errno;
		goto err_sock;
	}
	ret = isod_ctl_set_perms(be->path, conf->control_gid);
	if (ret < 0)
		goto err_sock;
	*out = be;
	return 0;

err_sock:
	close(be->listen_fd);
err_doorbell:
	close(be->doorbell_ep);
err_ep:
	close(be->proc_ep);
err_free:
	free(be);
	return ret;
}

/* ---- Applications --------------------------------------------------------- */

/* The kernel's word on who is at the other end of a control connection
 * (the credentials of its connect(), kept after a hang-up). */
static struct ucred peer_cred(int fd)
{
	struct ucred cr = { .pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	socklen_t len = sizeof(cr);

	(void)getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len);
	return cr;
}

static void app_destroy(struct isod_backend *be, struct isod_app *app)
{
	struct isod_sock **pp;
	struct ucred cr = peer_cred(app->ctl_fd);

	ISOD_LOG(INFO, "app %u detached: pid %d uid %d (%s)", app->id, (int)cr.pid,
		 (int)cr.uid, app->comm);
	isod_handoff_app_gone(app);
	isod_sock_reset_all(app);
	isod_procs_fini(app);
	/* drop its sockets from the event queue */
	for (pp = &be->ready_head; *pp != NULL;) {
		if ((*pp)->app == app)
			*pp = (*pp)->ready_next;
		else
			pp = &(*pp)->ready_next;
	}
	be->ready_tail = &be->ready_head;
	while (*be->ready_tail != NULL)
		be->ready_tail = &(*be->ready_tail)->ready_next;
	isod_mem_fini(app);
	isod_shm_stats_retire(be, app);
	if (be->conf.seg_release != NULL)   /* zero-copy TX: may defer the unmap */
		be->conf.seg_release(be->conf.seg_arg, app->shm);
	else
		isoshm_stack_destroy(app->shm);
	close(app->ctl_fd);
	if (app->wake_fd >= 0)
		close(app->wake_fd);
	/* Out of the set first: the application's copy would keep it there. */
	(void)epoll_ctl(be->doorbell_ep, EPOLL_CTL_DEL, app->doorbell_fd, NULL);
	close(app->doorbell_fd);
	for (unsigned i = 0; i < app->nmore_wake; i++)
		close(app->more_wake_fd[i]);
	for (uint32_t i = 0; i < app->hiwat; i++)
		free(app->socks[i].pend);
	free(app->socks);
	free(app->free_ids);
	free(app->procs);
	free(app);
	be->napps--;
	be->st.apps_detached++;
}

static void reply_attach(int fd, int status, uint32_t app_id, uint64_t size,
			 const int *fds, unsigned nfds)
{
	struct isostack_ctl_attach_reply r = {
		.hdr = { .magic = ISOSTACK_CTL_MAGIC, .version = ISOSTACK_CTL_VERSION,
			 .type = ISOSTACK_CTL_ATTACH_REPLY, .length = sizeof(r) },
		.status = status, .app_id = app_id, .segment_size = size,
	};

	(void)isoshm_send_fds(fd, &r, sizeof(r), fds, nfds, MSG_DONTWAIT);
}

#define BASIC_CMD_ENTRIES 32

/*
 * Validates a wake fd an application handed over (ATTACH, WAKEFD): the
 * stack core writes it, so it must be an eventfd, whose write never
 * blocks once O_NONBLOCK is set (a full counter: EAGAIN, harmless: the
 * reader is due to wake anyway).  A pipe or a socket would block the
 * loop once full.  Sets O_NONBLOCK (on the open file, which the
 * application shares: the shim makes its eventfds non-blocking anyway).
 * Returns 0 or -EBADF.
 */
static int wake_fd_validate(int fd)
{
	static const char want[] = "anon_inode:[eventfd]";
	char path[32], link[sizeof(want) + 1];
	ssize_t n;
	int fl;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link));
	if (n != (ssize_t)sizeof(want) - 1 || memcmp(link, want, sizeof(want) - 1) != 0)
		return -EBADF;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || ((fl & O_NONBLOCK) == 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0))
		return -EBADF;
	return 0;
}

/* The application's own doorbell fd, in the set the loop sleeps on. */
static int doorbell_open(struct isod_backend *be, struct isod_app *app)
{
	struct epoll_event ev = { .events = EPOLLIN };

	app->doorbell_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (app->doorbell_fd < 0)
		return -errno;
	ev.data.fd = app->doorbell_fd;
	if (epoll_ctl(be->doorbell_ep, EPOLL_CTL_ADD, app->doorbell_fd, &ev) < 0) {
		int ret = -errno;

		close(app->doorbell_fd);
		app->doorbell_fd = -1;
		return ret;
	}
	return 0;
}

/* Validates an ATTACH and creates the application.  Takes ownership of
 * fd and wake_fd in every case. */
static void app_attach(struct isod_backend *be, int fd, const struct isostack_ctl_attach *m,
		       ssize_t len, int wake_fd)
{
	struct isod_app *app = NULL;
	struct isoshm_params p = be->conf.shm;
	uint32_t uid;
	int ret;

	if (len != (ssize_t)sizeof(*m) || m->hdr.length != sizeof(*m) || wake_fd < 0) {
		ret = -EPROTO;
		goto fail;
	}
	if (wake_fd_validate(wake_fd) < 0) {
		be->st.bad_wake_fds++;
		ret = -EBADF;
		goto fail;
	}
	if (m->abi_version != ISOSTACK_SHM_ABI_VERSION ||
	    (ISOSTACK_SHM_FEATURES & ~m->features) != 0 ||
	    (isoshm_variant_per_thread(p.variant) &&
	     (m->features & ISOSTACK_SHM_FEAT_THREAD_DOORBELLS) == 0)) {
		ret = -EPROTONOSUPPORT;
		goto fail;
	}
	if (be->napps >= be->conf.max_apps) {
		ret = -EUSERS;
		goto fail;
	}
	if (isod_ctl_peer_uid(fd, &uid) < 0) {
		ret = -EACCES;
		goto fail;
	}
	ret = isod_ctl_uid_room(be, uid);
	if (ret < 0)
		goto fail;
	/* Basic posts a SEND per send(): room for a burst of them. */
	if (p.variant == ISOSTACK_SHM_VARIANT_BASIC && p.cmd_entries < BASIC_CMD_ENTRIES)
		p.cmd_entries = BASIC_CMD_ENTRIES;
	app = calloc(1, sizeof(*app));
	if (app == NULL) {
		ret = -ENOMEM;
		goto fail;
	}
	app->id = be->next_app_id++;
	p.app_id = app->id;
	app->doorbell_fd = -1;
	ret = isoshm_stack_create(&app->shm, &p);
	if (ret < 0)
		goto fail;
	app->hdr = *isoshm_stack_header(app->shm);
	app->no_tx_agg = p.variant == ISOSTACK_SHM_VARIANT_BASIC;
	/* Per-id state, calloc'd: its pages are touched as ids get used. */
	app->socks = calloc(app->hdr.max_sockets, sizeof(*app->socks));
	app->free_ids = malloc(app->hdr.max_sockets * sizeof(*app->free_ids));
	if (app->socks == NULL || app->free_ids == NULL) {
		ret = -ENOMEM;
		goto fail_shm;
	}
	ret = doorbell_open(be, app);
	if (ret < 0)
		goto fail_shm;
	app->socks[0].app = app;
	app->socks[0].state = ISOD_S_CTRL;
	app->hiwat = 1;
	app->q_head = app->q_tail = UINT32_MAX;
	isod_mem_init(app);
	{
		uint8_t *base = isoshm_stack_base(app->shm);

		app->shared_socks = (struct isostack_shm_sock *)(base + app->hdr.socks_off);
		app->shared_wait = (struct isostack_shm_wait *)(base + app->hdr.wait_off);
		app->shared_members = (const struct isostack_shm_member *)
			(base + app->hdr.members_off);
		app->shared_holders = (const struct isostack_shm_holders *)
			(base + app->hdr.holders_off);
	}
	app->be = be;
	app->ctl_fd = fd;
	app->wake_fd = wake_fd;
	app->pid = m->pid;
	app->uid = uid;
	memcpy(app->comm, m->comm, sizeof(m->comm));
	app->comm[16] = '\0';
	if (be->conf.seg_attach != NULL)    /* zero-copy TX registration */
		be->conf.seg_attach(be->conf.seg_arg, app->shm);
	{
		int fds[2] = { isoshm_stack_fd(app->shm), app->doorbell_fd };

		reply_attach(fd, 0, app->id, app->hdr.segment_size, fds, 2);
	}
	atomic_store_explicit(&app->shared_wait->stack_napping, be->napping ? 1u : 0u,
			      memory_order_relaxed);
	app->next = be->apps;
	be->apps = app;
	be->napps++;
	be->st.apps_attached++;
	/* It waits for our reply: alive, and the pid is its own. */
	isod_procs_watch(app, (int32_t)m->pid, 0);
	{
		struct ucred cr = peer_cred(fd);

		ISOD_LOG(INFO, "app %u attached: pid %d uid %d (%s), %u attached now",
			 app->id, (int)cr.pid, (int)cr.uid, app->comm, be->napps);
	}
	return;

fail_shm:
	isoshm_stack_destroy(app->shm);
fail:
	if (app != NULL) {
		free(app->socks);
		free(app->free_ids);
	}
	free(app);
	be->st.apps_rejected++;
	/* Debug only: a client that retries would log a line per try; the
	 * daemon's health check logs the count (backend.apps_rejected). */
	{
		struct ucred cr = peer_cred(fd);

		ISOD_LOG(DEBUG, "attach refused: pid %d uid %d: %s", (int)cr.pid,
			 (int)cr.uid, strerror(-ret));
	}
	reply_attach(fd, ret, 0, 0, NULL, 0);
	close(fd);
	if (wake_fd >= 0)
		close(wake_fd);
}

static void reply_stats(struct isod_backend *be, int fd)
{
	struct {
		struct isostack_ctl_hdr hdr;
		char body[ISOSTACK_CTL_STATS_MAX - sizeof(struct isostack_ctl_hdr)];
	} *r = malloc(sizeof(*r));
	size_t n;

	if (r == NULL)
		return;
	n = 0;
	if (be->conf.stats_extra != NULL)
		n = be->conf.stats_extra(be->conf.stats_arg, r->body, sizeof(r->body));
	n += isod_backend_format_stats(be, r->body + n, sizeof(r->body) - n);
	n += isod_backend_format_sockets(be, r->body + n, sizeof(r->body) - n);
	r->hdr = (struct isostack_ctl_hdr){
		.magic = ISOSTACK_CTL_MAGIC, .version = ISOSTACK_CTL_VERSION,
		.type = ISOSTACK_CTL_STATS_REPLY, .length = (uint32_t)(sizeof(r->hdr) + n),
	};
	(void)send(fd, r, sizeof(r->hdr) + n, MSG_NOSIGNAL | MSG_DONTWAIT);
	free(r);
}

/* CTL_EXTENT: the fd of one of the application's extents. */
static void reply_extent(struct isod_app *app, uint32_t id)
{
	struct isostack_ctl_extent_reply r = {
		.hdr = { .magic = ISOSTACK_CTL_MAGIC, .version = ISOSTACK_CTL_VERSION,
			 .type = ISOSTACK_CTL_EXTENT_REPLY, .length = sizeof(r) },
		.id = id,
	};
	int fd = -1;

	if (isoshm_stack_extent_get(app->shm, id, &fd, &r.arena_off, &r.size) < 0) {
		r.status = -ENOENT;
		r.arena_off = r.size = 0;
		(void)isoshm_send_fds(app->ctl_fd, &r, sizeof(r), NULL, 0, MSG_DONTWAIT);
		return;
	}
	app->be->mem_st.ctl_extents++;
	(void)isoshm_send_fds(app->ctl_fd, &r, sizeof(r), &fd, 1, MSG_DONTWAIT);
}

/* CTL_WAKEFD: one more wake fd for the application (a fork child's, or
 * one thread's: ctl_proto.h, ISOSTACK_CTL_WAKEFD_THREAD). */
static void add_wake_fd(struct isod_app *app, int fd, uint32_t pid, uint32_t member)
{
	uint8_t bit = (member & ISOSTACK_CTL_WAKEFD_THREAD) ?
		      (uint8_t)(ISOD_WAKE_THREAD | (member & 63)) :
		      (uint8_t)(member < 63 ? member : 63);

	/* A thread's bit taken over by another thread of the process:
	 * that one's fd replaces the gone one's. */
	for (unsigned i = 0; (bit & ISOD_WAKE_THREAD) && i < app->nmore_wake; i++) {
		if (app->more_wake_pid[i] == pid && app->more_wake_bit[i] == bit) {
			close(app->more_wake_fd[i]);
			app->more_wake_fd[i] = fd;
			return;
		}
	}
	/* Full: drop the entries of processes that are gone. */
	for (unsigned i = 0; app->nmore_wake == ISOD_MAX_WAKE_FDS && i < app->nmore_wake;) {
		if (kill((pid_t)app->more_wake_pid[i], 0) != 0 && errno == ESRCH) {
			close(app->more_wake_fd[i]);
			app->nmore_wake--;
			app->more_wake_fd[i] = app->more_wake_fd[app->nmore_wake];
			app->more_wake_pid[i] = app->more_wake_pid[app->nmore_wake];
			app->more_wake_bit[i] = app->more_wake_bit[app->nmore_wake];
		} else {
			i++;
		}
	}
	if (app->nmore_wake == ISOD_MAX_WAKE_FDS) {
		close(fd);      /* that process falls back on its 100 ms slices */
		return;
	}
	app->more_wake_fd[app->nmore_wake] = fd;
	app->more_wake_bit[app->nmore_wake] = bit;
	app->more_wake_pid[app->nmore_wake++] = pid;
}

/* CTL_HANDOFF: socket `sock` travels in SCM_RIGHTS; fd (taken) is its file. */
static void reply_handoff(struct isod_app *app, uint32_t sock, int fd)
{
	struct isostack_ctl_handoff_reply r = {
		.hdr = { .magic = ISOSTACK_CTL_MAGIC, .version = ISOSTACK_CTL_VERSION,
			 .type = ISOSTACK_CTL_HANDOFF_REPLY, .length = sizeof(r) },
		.status = fd < 0 ? -EBADF : isod_handoff_register(app, sock, fd),
		.sock = sock,
	};

	(void)send(app->ctl_fd, &r, sizeof(r), MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* CTL_CLAIM: is the fd the claimer received a socket in flight? */
static void reply_claim(struct isod_app *app, const struct isostack_ctl_claim *m)
{
	struct isostack_ctl_claim_reply r = {
		.hdr = { .magic = ISOSTACK_CTL_MAGIC, .version = ISOSTACK_CTL_VERSION,
			 .type = ISOSTACK_CTL_CLAIM_REPLY, .length = sizeof(r) },
	};

	isod_handoff_claim(app, m, &r);
	(void)send(app->ctl_fd, &r, sizeof(r), MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void close_fds(const int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		close(fds[i]);
}

/*
 * Reads one message from a control connection.  Returns 1 if the
 * connection became an application or stays a stats client, 0 if it was
 * closed (hang-up or garbage), -EAGAIN if nothing was there.  Every fd
 * that came with the message is closed here unless taken over: a
 * message with more than one, or fds where none belong, is garbage.
 */
static int ctl_read(struct isod_backend *be, int fd, struct isod_app *attached)
{
	union {
		struct isostack_ctl_hdr hdr;
		struct isostack_ctl_attach att;
		struct isostack_ctl_stats stats;
		struct isostack_ctl_wakefd wake;
		struct isostack_ctl_extent ext;
		struct isostack_ctl_handoff handoff;
		struct isostack_ctl_claim claim;
		uint8_t raw[256];
	} m;
	int fds[1];
	unsigned nfds;
	ssize_t n;

	n = isoshm_recv_fds(fd, &m, sizeof(m), fds, 1, &nfds, MSG_DONTWAIT);
	if (n == -EAGAIN)
		return -EAGAIN;
	if (n < (ssize_t)sizeof(m.hdr) || m.hdr.magic != ISOSTACK_CTL_MAGIC ||
	    m.hdr.version != ISOSTACK_CTL_VERSION) {
		close_fds(fds, nfds);    /* none if n <= 0 */
		return 0;
	}
	if (m.hdr.type == ISOSTACK_CTL_STATS && nfds == 0) {
		reply_stats(be, fd);
		return 1;
	}
	if (m.hdr.type == ISOSTACK_CTL_WAKEFD && attached != NULL && nfds == 1 &&
	    n == (ssize_t)sizeof(m.wake) && m.hdr.length == sizeof(m.wake)) {
		if (wake_fd_validate(fds[0]) < 0) {
			/* that process falls back on its wait slices */
			attached->be->st.bad_wake_fds++;
			close(fds[0]);
			return 1;
		}
		add_wake_fd(attached, fds[0], m.wake.pid, m.wake.member);
		if (!(m.wake.member & ISOSTACK_CTL_WAKEFD_THREAD))
			isod_procs_watch(attached, (int32_t)m.wake.pid, m.wake.member);
		return 1;
	}
	if (m.hdr.type == ISOSTACK_CTL_EXTENT && attached != NULL && nfds == 0 &&
	    n == (ssize_t)sizeof(m.ext) && m.hdr.length == sizeof(m.ext) && m.ext.reserved == 0) {
		reply_extent(attached, m.ext.id);
		return 1;
	}
	if (m.hdr.type == ISOSTACK_CTL_HANDOFF && attached != NULL &&
	    n == (ssize_t)sizeof(m.handoff) && m.hdr.length == sizeof(m.handoff) &&
	    m.handoff.reserved == 0) {
		reply_handoff(attached, m.handoff.sock, nfds == 1 ? fds[0] : -1);
		return 1;
	}
	if (m.hdr.type == ISOSTACK_CTL_CLAIM && attached != NULL && nfds == 0 &&
	    n == (ssize_t)sizeof(m.claim) && m.hdr.length == sizeof(m.claim)) {
		reply_claim(attached, &m.claim);
		return 1;
	}
	if (m.hdr.type == ISOSTACK_CTL_ATTACH && attached == NULL) {
		/* takes fd and the wake fd; replies -EPROTO without one */
		app_attach(be, fd, &m.att, n, nfds == 1 ? fds[0] : -1);
		return 2;   /* fd now owned by the app (or closed) */
	}
	close_fds(fds, nfds);
	return 0;       /* garbage (from an application: as a hang-up) */
}

static unsigned ctl_poll(struct isod_backend *be)
{
	unsigned work = 0;
	int fd;

	while (be->npending < ISOD_MAX_PENDING_CTL &&
	       (fd = accept4(be->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		uint32_t uid;
		int r = isod_ctl_admit(be, fd, &uid);

		work++;
		if (r < 0) {
			/* The shim reads it after its ATTACH, sent or not. */
			be->st.ctl_refused++;
			reply_attach(fd, r, 0, 0, NULL, 0);
			close(fd);
			continue;
		}
		be->pending_uid[be->npending] = uid;
		be->pending_fd[be->npending++] = fd;
	}
	for (unsigned i = 0; i < be->npending;) {
		int r = ctl_read(be, be->pending_fd[i], NULL);

		if (r == -EAGAIN || r == 1) {
			i++;
			continue;
		}
		if (r == 0)
			close(be->pending_fd[i]);
		be->pending_uid[i] = be->pending_uid[be->npending - 1];
		be->pending_fd[i] = be->pending_fd[--be->npending];
		work++;
	}
	/* Hang-up of attached applications and deaths of their processes:
	 * one poll() over their sockets and the epoll of the pidfds. */
	if (be->napps > 0) {
		struct pollfd pfd[be->napps + 1];
		struct isod_app *apps[be->napps];
		unsigned n = 0;

		for (struct isod_app *a = be->apps; a != NULL; a = a->next) {
			pfd[n] = (struct pollfd){ .fd = a->ctl_fd, .events = POLLIN };
			apps[n++] = a;
		}
		pfd[n] = (struct pollfd){ .fd = be->nwatched > 0 ? be->proc_ep : -1,
					  .events = POLLIN };
		if (poll(pfd, n + 1, 0) <= 0)
			pfd[n].revents = 0;
		/* Messages first: a CTL_WAKEFD read here names a process
		 * before a death is weighed against the member table. */
		for (unsigned i = 0; i < n; i++) {
			bool gone = (pfd[i].revents & (POLLHUP | POLLERR | POLLNVAL)) != 0;

			if (!gone && (pfd[i].revents & POLLIN))
				gone = ctl_read(be, apps[i]->ctl_fd, apps[i]) == 0;
			if (gone)
				apps[i]->dead = true;
		}
		work += isod_procs_poll(be, (pfd[n].revents & POLLIN) != 0);
	}
	return work;
}

static void reap_dead(struct isod_backend *be)
{
	for (struct isod_app **pp = &be->apps; *pp != NULL;) {
		struct isod_app *a = *pp;

		/*
		 * A dead application's sockets are closed as the kernel closes
		 * the fds of an exiting process; the application keeps its
		 * segment until every parked close is through (its data
		 * acknowledged, bounded by close_timeout), as the kernel
		 * delivers what a process wrote before it exited.
		 */
		if (a->dead && !a->draining &&
		    (isod_sock_close_all(a) > 0 || isod_handoff_pending(a) > 0))
			a->draining = true;
		/* Sockets in flight keep it too: their receiver may claim
		 * them (handoff.c). */
		if (a->dead && (!a->draining ||
				(isod_sock_closing(a) == 0 && isod_handoff_pending(a) == 0))) {
			*pp = a->next;
			app_destroy(be, a);
		} else {
			pp = &a->next;
		}
	}
}

/* ---- The pass ------------------------------------------------------------------ */

static unsigned drain_events(struct isod_backend *be, unsigned budget)
{
	struct isod_sock *list = be->ready_head;
	unsigned done = 0;
	bool hit = false;

	/* Take the whole queue: what resumed work queues runs next pass. */
	be->ready_head = NULL;
	be->ready_tail = &be->ready_head;
	while (list != NULL) {
		struct isod_sock *sk = list;
		uint32_t bits;

		list = sk->ready_next;
		if (done >= budget) {
			/* put the rest back, in order, ahead of new work */
			hit = true;
			sk->queued = false;
			bits = sk->ready;
			sk->ready = 0;
			isod_sock_queue(sk, bits);
			continue;
		}
		bits = sk->ready;
		sk->ready = 0;
		sk->queued = false;
		isod_sock_resume(sk, bits);
		done++;
	}
	be->st.event_budget_hits += hit;
	return done;
}

/* Writes the application wake fd once per pass when it posted something
 * and a thread of it sleeps in a mixed wait. */
static void kick_apps(struct isod_backend *be)
{
	for (struct isod_app *a = be->apps; a != NULL; a = a->next) {
		uint64_t mask = a->kick_mask;

		if (!a->kick)
			continue;
		/* Relaxed, a hint: processes asleep for any socket (big epoll
		 * sets) want every kick. */
		mask |= atomic_load_explicit(&a->shared_wait->wake_any, memory_order_relaxed);
		a->kick = false;
		a->kick_mask = 0;
		/* Relaxed: a hint; isoshm_stack_notify's fence ordered the
		 * status publication before this load.  Only the processes
		 * asleep on a socket that got something (its wake_mask, read
		 * after the same fence) are woken: with every wake fd written,
		 * each event woke every sleeping worker of a multi-process
		 * server, all but one for nothing.  Bit 63 stands for every
		 * process past the 63rd. */
		if (atomic_load_explicit(&a->shared_wait->waiters, memory_order_relaxed) != 0 &&
		    a->wake_fd >= 0 && mask != 0) {
			uint64_t one = 1;

			if ((mask & 1) && write(a->wake_fd, &one, sizeof(one)) == sizeof(one))
				be->st.app_kicks++;
			for (unsigned i = 0; i < a->nmore_wake; i++)
				if (((mask >> (a->more_wake_bit[i] & 63)) & 1) &&
				    write(a->more_wake_fd[i], &one, sizeof(one)) == sizeof(one))
					be->st.app_kicks++;
		}
	}
}

/*
 * Quarantined ids wait for the application to consume their last status;
 * each look at one costs cache misses on lines the application writes,
 * and most looks find it not done yet.  At every pass that was half of
 * the stack core while 100,000 connections closed, and the port dropped
 * what it had no time for.  Ids are only needed again for new sockets
 * (id_get() looks too), so the loop looks once a millisecond, at more.
 */
static unsigned quarantine_poll(struct isod_backend *be, struct isod_app *a)
{
	uint32_t now = isod_backend_now(be);

	if (a->q_head == UINT32_MAX || now == a->q_poll_ms)
		return 0;
	a->q_poll_ms = now;
	return isod_sock_quarantine_poll(a, ISOD_QUARANTINE_PER_MS);
}

/*
 * Every stage is bounded (backend.h): the control socket by its interval,
 * expiries and each of the two event drains by `budget`, commands by
 * `budget` in all, shared round robin (cmdsched.c), quarantine and memory
 * per application.
 */
unsigned isod_backend_poll(struct isod_backend *be, unsigned budget)
{
	unsigned work = 0;
	uint32_t t = 0;

	if (budget == 0)
		budget = 1;
	if (be->conf.ctl_interval_ms == 0 ||
	    (uint32_t)((t = isod_backend_now(be)) - be->last_ctl_ms) >= be->conf.ctl_interval_ms) {
		be->last_ctl_ms = be->conf.ctl_interval_ms == 0 ? 0 : t;
		work += ctl_poll(be);
		reap_dead(be);
	}
	if (be->closing_head != NULL)
		work += isod_sock_expire_closes(be, isod_backend_now(be), budget);
	if (be->handoff != NULL)
		work += isod_handoff_poll(be);
	if (be->idle_head != NULL)
		work += isod_sk_idle_expire(be, budget);
	work += drain_events(be, budget);
	work += isod_cmds_poll(be, budget);
	for (struct isod_app *a = be->apps; a != NULL; a = a->next) {
		if (!a->draining) {
			work += quarantine_poll(be, a);
			work += isod_mem_poll(a);
			work += isod_tx_watch_poll(a);
		}
	}
	work += isod_tx_watch_stops(be);
	/* Before reap_dead: the queued takes point into applications. */
	isod_sk_ring_takes(be);
	reap_dead(be);
	/* What the commands queued: replies to flush, resumptions. */
	work += drain_events(be, budget);
	isod_sk_ring_takes(be);
	kick_apps(be);
	/* One extent per loop pass (docs/shm.md): lwIP's input, which opens
	 * accepted sockets, runs between two calls of ours. */
	isod_mem_pass_end(be);
	return work;
}

/* Doorbells of `app` with entries the stack has not taken.  A hint read
 * from the segment: a lying application only keeps the daemon awake. */
static bool doorbells_rung(const struct isod_app *app)
{
	const struct isostack_shm_doorbell *db = (const struct isostack_shm_doorbell *)
		((const uint8_t *)isoshm_stack_base(app->shm) + app->hdr.db_ctl_off);

	for (uint32_t i = 0; i < app->hdr.nr_doorbells; i++)
		if (atomic_load_explicit(&db[i].prod, memory_order_relaxed) !=
		    atomic_load_explicit(&db[i].cons, memory_order_relaxed))
			return true;
	return false;
}

/*
 * Empties the doorbell fds that applications wrote since the last nap:
 * readable ones would end the coming sleep at once.  Before the napping
 * flag is published, so a write after it is never drained unseen.  A
 * few rounds at most: one that keeps writing only ends our sleeps early.
 */
static void doorbells_drain(struct isod_backend *be)
{
	struct epoll_event ev[64];
	int n;

	for (unsigned round = 0; round < 4; round++) {
		n = epoll_wait(be->doorbell_ep, ev, 64, 0);
		for (int i = 0; i < n; i++) {
			uint64_t v;
			ssize_t r = read(ev[i].data.fd, &v, sizeof(v));

			(void)r;    /* EAGAIN: its application read it first */
		}
		if (n < 64)
			break;
	}
}

int isod_backend_wake_fd(const struct isod_backend *be)
{
	return be->doorbell_ep;
}

unsigned isod_backend_set_napping(struct isod_backend *be, bool napping)
{
	unsigned busy = 0;

	if (napping) {
		doorbells_drain(be);
		/* Watched writers post no SEND: not while we sleep. */
		busy += isod_tx_watch_end_all(be);
	}
	be->napping = napping;
	for (struct isod_app *a = be->apps; a != NULL; a = a->next)
		atomic_store_explicit(&a->shared_wait->stack_napping, napping ? 1u : 0u,
				      memory_order_relaxed);
	if (!napping)
		return 0;
	/* Pairs with the application's fence between publishing a doorbell
	 * and reading stack_napping: one of the two sees the other. */
	atomic_thread_fence(memory_order_seq_cst);
	for (struct isod_app *a = be->apps; a != NULL; a = a->next)
		busy += !a->draining && doorbells_rung(a);
	if (be->ready_head != NULL)
		busy++;
	return busy;
}

void isod_backend_set_mem_limit(struct isod_backend *be, uint64_t bytes)
{
	be->conf.mem_limit = bytes;
}

unsigned isod_backend_poll_source(void *be, unsigned budget)
{
	return isod_backend_poll(be, budget);
}

void isod_backend_fini(struct isod_backend *be)
{
	if (be == NULL)
		return;
	while (be->apps != NULL) {
		struct isod_app *a = be->apps;

		be->apps = a->next;
		app_destroy(be, a);
	}
	for (unsigned i = 0; i < be->npending; i++)
		close(be->pending_fd[i]);
	close(be->listen_fd);
	unlink(be->path);
	close(be->doorbell_ep);
	close(be->proc_ep);
	isod_handoff_fini(be);
	free(be);
}

void isod_backend_get_stats(const struct isod_backend *be, struct isod_backend_stats *out)
{
	*out = be->st;
}

unsigned isod_backend_apps(const struct isod_backend *be)
{
	return be->napps;
}

unsigned isod_backend_open_sockets(const struct isod_backend *be)
{
	unsigned n = 0;

	for (const struct isod_app *a = be->apps; a != NULL; a = a->next)
		n += a->nopen;
	return n;
}

size_t isod_backend_format_stats(const struct isod_backend *be, char *buf, size_t len)
{
	const struct isod_backend_stats *s = &be->st;
	int n = snprintf(buf, len,
		"backend.apps %u\nbackend.apps_attached %llu\nbackend.apps_detached %llu\n"
		"backend.apps_rejected %llu\nbackend.open_sockets %u\nbackend.cmds %llu\n"
		"backend.bad_cmds %llu\nbackend.bad_slot %llu\nbackend.broken_socks %llu\n"
		"backend.broken_apps %llu\nbackend.emfile %llu\nbackend.enobufs %llu\n"
		"backend.accept_dropped %llu\nbackend.accept_deferred %llu\nbackend.syn_evicted %llu\n"
		"backend.parked %llu\nbackend.resumed %llu\n"
		"backend.status_deferred %llu\nbackend.events %llu\nbackend.tx_bytes %llu\n"
		"backend.rx_bytes %llu\nbackend.tx_writes %llu\nbackend.sends_seen %llu\n"
		"backend.resets %llu\nbackend.app_kicks %llu\nbackend.bad_wake_fds %llu\n"
		"backend.ctl_refused %llu\n"
		"backend.udp_tx_dgrams %llu\nbackend.udp_rx_dgrams %llu\n"
		"backend.udp_tx_dropped %llu\nbackend.udp_rx_dropped %llu\n"
		"backend.rx_held %llu\nbackend.rx_held_max %llu\n"
		"backend.close_timeouts %llu\n"
		"backend.procs_watched %llu\nbackend.procs_died %llu\n"
		"backend.stack_closes %llu\nbackend.stack_close_crossed %llu\n"
		"backend.handoffs %llu\nbackend.claims %llu\nbackend.claims_refused %llu\n"
		"backend.handoffs_expired %llu\n"
		"backend.rx_moves %llu\nbackend.tx_moves %llu\nbackend.tx_asks %llu\n"
		"backend.tx_ask_waits %llu\nbackend.tx_readied %llu\nbackend.tx_unready %llu\n"
		"backend.rx_waits %llu\nbackend.tx_watches %llu\nbackend.tx_watch_takes %llu\n"
		"backend.tx_watch_stops %llu\n"
		"backend.variant %u\nbackend.doorbells_per_app %u\n"
		"mem.budget %llu\nmem.backed %llu\nmem.extents %llu\nmem.refills %llu\n"
		"mem.releases %llu\nmem.sync_extents %llu\nmem.opened_none %llu\nmem.enobufs %llu\n"
		"mem.ctl_extents %llu\nmem.pressure %d\nmem.membarrier %d\n",
		be->napps, (unsigned long long)s->apps_attached,
		(unsigned long long)s->apps_detached, (unsigned long long)s->apps_rejected,
		isod_backend_open_sockets(be), (unsigned long long)s->cmds,
		(unsigned long long)s->bad_cmds, (unsigned long long)s->bad_slot,
		(unsigned long long)s->broken_socks, (unsigned long long)s->broken_apps,
		(unsigned long long)s->emfile, (unsigned long long)s->enobufs,
		(unsigned long long)s->accept_dropped, (unsigned long long)s->accept_deferred,
		(unsigned long long)s->syn_evicted,
		(unsigned long long)s->parked,
		(unsigned long long)s->resumed, (unsigned long long)s->status_deferred,
		(unsigned long long)s->events, (unsigned long long)s->tx_bytes,
		(unsigned long long)s->rx_bytes, (unsigned long long)s->tx_writes,
		(unsigned long long)s->sends_seen, (unsigned long long)s->resets,
		(unsigned long long)s->app_kicks, (unsigned long long)s->bad_wake_fds,
		(unsigned long long)s->ctl_refused,
		(unsigned long long)s->udp_tx_dgrams, (unsigned long long)s->udp_rx_dgrams,
		(unsigned long long)s->udp_tx_dropped, (unsigned long long)s->udp_rx_dropped,
		(unsigned long long)s->rx_held, (unsigned long long)s->rx_held_max,
		(unsigned long long)s->close_timeouts,
		(unsigned long long)s->procs_watched, (unsigned long long)s->procs_died,
		(unsigned long long)s->stack_closes, (unsigned long long)s->stack_close_crossed,
		(unsigned long long)s->handoffs, (unsigned long long)s->claims,
		(unsigned long long)s->claims_refused, (unsigned long long)s->handoffs_expired,
		(unsigned long long)s->rx_moves, (unsigned long long)s->tx_moves,
		(unsigned long long)s->tx_asks, (unsigned long long)s->tx_ask_waits,
		(unsigned long long)s->tx_readied, (unsigned long long)s->tx_unready,
		(unsigned long long)s->rx_waits, (unsigned long long)s->tx_watches,
		(unsigned long long)s->tx_watch_takes, (unsigned long long)s->tx_watch_stops,
		be->conf.shm.variant, be->conf.shm.nr_doorbells,
		(unsigned long long)be->conf.mem_budget, (unsigned long long)be->mem_backed,
		(unsigned long long)be->mem_st.extents, (unsigned long long)be->mem_st.refills,
		(unsigned long long)be->mem_st.releases,
		(unsigned long long)be->mem_st.sync_extents,
		(unsigned long long)be->mem_st.opened_none,
		(unsigned long long)be->mem_st.enobufs,
		(unsigned long long)be->mem_st.ctl_extents, isod_mem_pressure(be) ? 1 : 0, be->membar);

	if (n < 0)
		return 0;
	if ((size_t)n >= len)
		return len ? len - 1 : 0;
	n += (int)isod_cmds_format_stats(be, buf + n, len - (size_t)n);
	n += (int)isod_shm_format_stats(be, buf + n, len - (size_t)n);
	n += (int)isod_rp_format_stats(be, buf + n, len - (size_t)n);
	n += (int)isod_cut_format_stats(be, buf + n, len - (size_t)n);
	return (size_t)n + isod_cap_format_stats(be, buf + n, len - (size_t)n);
}
