/*
 * Attaching to the stack and the control socket: the ATTACH handshake
 * (our wake eventfd sent, the segment and our own doorbell eventfd
 * received, over SCM_RIGHTS: shm/fdpass.c), detach, the
 * throttled liveness check on the control socket, a wake fd of a
 * process's own (WAKEFD) and the accessors of the handle.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core_internal.h"
#include "isostack/ctl_proto.h"

/* ---- Attach --------------------------------------------------------------- */

/* Reads the EXTENT_REPLY for `id` (earlier replies a killed requester,
 * or a request that gave up, left behind are skipped), waiting at most
 * until `deadline` (CLOCK_MONOTONIC ns).  Returns the fd or -errno,
 * -ETIMEDOUT when no reply came in time. */
static int extent_reply(int fd, _Atomic uint32_t *owed, uint32_t id, uint64_t *off,
			uint64_t *size, int64_t deadline)
{
	for (;;) {
		struct isostack_ctl_extent_reply r;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left_ms = (deadline - now_ns() + 999999) / 1000000;
		int efd = -1;
		int n;

		if (left_ms <= 0)
			return -ETIMEDOUT;
		n = poll(&p, 1, (int)left_ms);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n <= 0)
			continue;
		n = isoshm_recv_fd(fd, &efd, &r, sizeof(r));

		if (n == 0)
			return -ECONNRESET;
		if (n < 0 && n != -EINTR)
			return n;
		if (n != (int)sizeof(r) || r.hdr.magic != ISOSTACK_CTL_MAGIC ||
		    r.hdr.type != ISOSTACK_CTL_EXTENT_REPLY || r.id != id) {
			if (efd >= 0)
				close(efd);
			if (n == (int)sizeof(r) && r.hdr.type == ISOSTACK_CTL_EXTENT_REPLY) {
				uint32_t o = atomic_load_explicit(owed, memory_order_relaxed);

				/* someone else's, orphaned */
				while (o > 0 && !atomic_compare_exchange_weak_explicit(
						owed, &o, o - 1, memory_order_relaxed,
						memory_order_relaxed))
					;
				continue;
			}
			return -EPROTO;
		}
		if (r.status < 0 || efd < 0) {
			if (efd >= 0)
				close(efd);
			return r.status < 0 ? r.status : -EPROTO;
		}
		*off = r.arena_off;
		*size = r.size;
		return efd;
	}
}

/* How long calls fail at once after an EXTENT request timed out. */
#define EXTENT_STALL_NS (1000LL * 1000 * 1000)

/*
 * isoshm's extent source: asks the daemon for extent `id` on the control
 * socket.  The processes of the application share that socket, so the
 * request and its reply are made under a process-shared lock.  Bounded
 * like attach (ISOSOCK_ATTACH_TIMEOUT_MS): a daemon that is stopped or
 * wedged makes the call that needed the ring fail with ENOBUFS (the
 * kernel's "no buffer space" for a socket call), not hang; the extent
 * stays unmapped, so a later call asks again.
 */
static int fetch_extent(void *arg, uint32_t id, uint64_t *off, uint64_t *size)
{
	struct isosock_app *app = arg;
	struct isostack_ctl_extent q = {
		.hdr = { .magic = ISOSTACK_CTL_MAGIC, .version = ISOSTACK_CTL_VERSION,
			 .type = ISOSTACK_CTL_EXTENT, .length = sizeof(q) },
		.id = id,
	};
	int rc;

	/* The daemon just let a request time out and has not answered it
	 * since: fail at once for a while rather than make every call that
	 * needs a ring wait again.  Its late reply (skipped below) ends it. */
	if (now_ns() < atomic_load_explicit(&app->extent_stall_until, memory_order_relaxed)) {
		struct pollfd p = { .fd = app->ctl_fd, .events = POLLIN };

		if (poll(&p, 1, 0) == 0)
			return -ENOBUFS;
		atomic_store_explicit(&app->extent_stall_until, 0, memory_order_relaxed);
	}
	robust_lock(&app->sh->ctl_lock);
	/* odd while the request is out: see isosock_app_alive */
	atomic_fetch_add_explicit(&app->sh->ctl_seq, 1, memory_order_seq_cst);
	/* MSG_DONTWAIT: a full socket buffer means a daemon that reads
	 * nothing; waiting on it would be unbounded */
	if (send(app->ctl_fd, &q, sizeof(q), MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)sizeof(q))
		rc = errno == EAGAIN ? -ETIMEDOUT : -errno;
	else
		rc = extent_reply(app->ctl_fd, &app->sh->ctl_owed, id, off, size,
				  now_ns() + ISOSOCK_ATTACH_TIMEOUT_MS * INT64_C(1000000));
	if (rc == -ETIMEDOUT)   /* before ctl_seq says no request is out */
		atomic_fetch_add_explicit(&app->sh->ctl_owed, 1, memory_order_seq_cst);
	atomic_fetch_add_explicit(&app->sh->ctl_seq, 1, memory_order_seq_cst);
	pthread_mutex_unlock(&app->sh->ctl_lock);
	if (rc == -ETIMEDOUT) {
		app->st.extent_timeouts++;
		atomic_store_explicit(&app->extent_stall_until, now_ns() + EXTENT_STALL_NS,
				      memory_order_relaxed);
		return -ENOBUFS;
	}
	if (rc >= 0)
		app->st.extents_mapped++;
	return rc;
}

/* The per-process shortcuts into the mapped segment (attach, exec import). */
void isosock__bind_shm(struct isosock_app *app)
{
	const struct isostack_shm_header *h = isoshm_app_header(app->shm);

	app->nsocks = h->max_sockets;
	app->no_tx_agg = h->variant == ISOSTACK_SHM_VARIANT_BASIC;
	app->base = isoshm_app_base(app->shm);
	app->socks = (struct isostack_shm_sock *)(app->base + h->socks_off);
	app->wait = (struct isostack_shm_wait *)(app->base + h->wait_off);
	app->members = (struct member *)(app->base + h->members_off);
	app->holders = (struct mset *)(app->base + h->holders_off);
	if (app->marks == NULL)
		app->marks = calloc(app->nsocks, sizeof(app->marks[0]));
	isoshm_app_set_fetch(app->shm, fetch_extent, app);
}

/* The ATTACH_REPLY: on success its two fds (segment, our doorbell fd).
 * Returns the number of fds (the caller owns them) or -errno. */
static int recv_reply(int fd, struct isostack_ctl_attach_reply *r, int fds[2])
{
	unsigned nfds;
	ssize_t n = isoshm_recv_fds(fd, r, sizeof(*r), fds, 2, &nfds, 0);

	if (n == 0)
		return -ECONNRESET;
	if (n < 0)
		return (int)n;
	if ((size_t)n != sizeof(*r) || r->hdr.magic != ISOSTACK_CTL_MAGIC ||
	    r->hdr.version != ISOSTACK_CTL_VERSION || r->hdr.type != ISOSTACK_CTL_ATTACH_REPLY) {
		for (unsigned i = 0; i < nfds; i++)
			close(fds[i]);
		return -EPROTO;
	}
	return (int)nfds;
}

/*
 * Attach as a whole is bounded (ISOSOCK_ATTACH_TIMEOUT_MS): a daemon that
 * accepts and never answers (stopped, wedged, or something else bound at
 * the path) must not hang the application's first socket().  connect()
 * and the send block only on a full listener backlog or socket buffer,
 * bounded by SO_SNDTIMEO; each read waits in poll() for what is left.
 */
static int64_t attach_left_ms(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return ISOSOCK_ATTACH_TIMEOUT_MS - ((int64_t)(t.tv_sec - t0->tv_sec) * 1000 +
					    (t.tv_nsec - t0->tv_nsec) / 1000000);
}

static int attach_set_sndtimeo(int fd, int64_t ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	return setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0 ? 0 : -errno;
}

/* recv_reply once something is readable, within what is left of the
 * bound.  -ETIMEDOUT when nothing came. */
static int recv_reply_bounded(int fd, struct isostack_ctl_attach_reply *r, int fds[2],
			      const struct timespec *t0)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	for (;;) {
		int64_t left = attach_left_ms(t0);
		int n;

		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&p, 1, (int)left);
		if (n > 0)
			return recv_reply(fd, r, fds);
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

int isosock_app_attach(struct isosock_app **out, const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct isostack_ctl_attach req = {
		.hdr = { .magic = ISOSTACK_CTL_MAGIC, .version = ISOSTACK_CTL_VERSION,
			 .type = ISOSTACK_CTL_ATTACH, .length = sizeof(req) },
		.pid = (uint32_t)getpid(), .abi_version = ISOSTACK_SHM_ABI_VERSION,
		.features = ISOSTACK_SHM_FEATURES_KNOWN,
	};
	struct isostack_ctl_attach_reply rep;
	struct isosock_app *app;
	struct timespec t0;
	int fds[2] = { -1, -1 };
	int ret;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (path == NULL)
		path = getenv("ISOSTACK_CONTROL");
	if (path == NULL || *path == '\0')
		path = ISOSOCK_CONTROL_PATH;
	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	app = calloc(1, sizeof(*app));
	if (app == NULL)
		return -ENOMEM;
	isosock__twake_init(app);
	app->stack_wake_fd = -1;
	app->ctl_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (app->ctl_fd < 0) {
		ret = -errno;
		goto err_free;
	}
	ret = attach_set_sndtimeo(app->ctl_fd, ISOSOCK_ATTACH_TIMEOUT_MS);
	if (ret < 0)
		goto err_ctl;
	if (connect(app->ctl_fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		/* a full backlog for the whole bound: EAGAIN */
		ret = errno == EAGAIN || errno == EINPROGRESS ? -ETIMEDOUT : -errno;
		goto err_ctl;
	}
	app->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (app->wake_fd < 0) {
		ret = -errno;
		goto err_ctl;
	}
	{
		FILE *f = fopen("/proc/self/comm", "re");

		if (f != NULL) {
			if (fgets(req.comm, sizeof(req.comm), f) != NULL)
				req.comm[strcspn(req.comm, "\n")] = '\0';
			fclose(f);
		}
	}
	/* A daemon that refuses us at accept (credentials, ctl_auth.c)
	 * replies and hangs up at once: our send may then fail with EPIPE,
	 * and the first read with ECONNRESET (the daemon closed with our
	 * ATTACH unread), but its reply, which says why, is still queued:
	 * the second read returns it (or 0: nothing came). */
	ret = isoshm_send_fd(app->ctl_fd, app->wake_fd, &req, sizeof(req));
	if (ret == -EAGAIN)
		ret = -ETIMEDOUT;
	if (ret < 0 && ret != -EPIPE && ret != -ECONNRESET)
		goto err_wake;
	{
		int sent = ret;

		ret = recv_reply_bounded(app->ctl_fd, &rep, fds, &t0);
		if (ret == -ECONNRESET)
			ret = recv_reply_bounded(app->ctl_fd, &rep, fds, &t0);
		if (ret == -ECONNRESET && sent < 0)
			ret = sent;
	}
	if (ret < 0)
		goto err_fds;           /* fds still -1: nothing came */
	if (rep.status < 0 || ret != 2) {
		/* -EBADF: the daemon refused our wake fd (not an eventfd) */
		ret = rep.status < 0 ? rep.status : -EPROTO;
		goto err_fds;           /* what came is in fds[0..ret) */
	}
	/* Attached: EXTENT requests later block as before (the daemon
	 * answers those from its core loop). */
	(void)attach_set_sndtimeo(app->ctl_fd, 0);
	ret = isoshm_app_attach(&app->shm, fds[0], NULL);
	if (ret < 0)
		goto err_fds;
	app->stack_wake_fd = fds[1];
	app->id = rep.app_id;
	isosock__bind_shm(app);
	ret = isosock__fshared_create(app, app->nsocks);
	if (ret < 0) {
		isoshm_app_detach(app->shm);
		close(fds[1]);
		goto err_wake;
	}
	*out = app;
	return 0;

err_fds:
	if (fds[0] >= 0)
		close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
err_wake:
	close(app->wake_fd);
err_ctl:
	close(app->ctl_fd);
err_free:
	free(app);
	return ret;
}

void isosock_app_detach(struct isosock_app *app)
{
	if (app == NULL)
		return;
	close(app->ctl_fd);
	close(app->wake_fd);
	if (app->stack_wake_fd >= 0)
		close(app->stack_wake_fd);
	isoshm_app_detach(app->shm);
	/* Shared with other members, if any: unmapped here, not destroyed. */
	munmap(app->sh, app->sh_size);
	close(app->sh_fd);
	free((void *)app->marks);
	free(app);
}

/*
 * Whether the daemon still holds our control socket.  Asked per socket by
 * every readiness check, so the control socket is polled at most once per
 * ALIVE_CHECK_NS: unthrottled, that poll() was 63% of nginx's system calls
 * (7 per request).  The throttle reads the coarse clock (the kernel's
 * last tick): send() and recv() ask on every call, and a precise
 * clock_gettime() was a sixth of a 64 B send().  A dead daemon is noticed
 * ALIVE_CHECK_NS plus a tick (1-4 ms) later at most.
 */
#define ALIVE_CHECK_NS (1000 * 1000)

bool isosock_app_alive(struct isosock_app *app)
{
	struct pollfd p = { .fd = app->ctl_fd, .events = POLLIN };
	uint32_t seq;
	int64_t now;

	if (atomic_load_explicit(&app->dead, memory_order_relaxed))
		return false;
	now = now_coarse_ns();
	if (now - atomic_load_explicit(&app->alive_at, memory_order_relaxed) < ALIVE_CHECK_NS)
		return true;
	atomic_store_explicit(&app->alive_at, now, memory_order_relaxed);
	/* The daemon sends only replies to EXTENT requests: readable with
	 * none out, and no late reply owed (ctl_owed), means hung up.  "None out" is ctl_seq even and unchanged
	 * across the poll: a request that began or ended meanwhile (its
	 * reply read by another thread between our poll and our look at
	 * the counter) moved it.  A plain busy flag read after the poll
	 * took a reply for a hang-up, and every socket of the application
	 * reset at once (seen with 16 threads sending while rings moved). */
	seq = atomic_load_explicit(&app->sh->ctl_seq, memory_order_seq_cst);
	if (poll(&p, 1, 0) > 0 && ((p.revents & (POLLHUP | POLLERR)) ||
				   ((p.revents & POLLIN) && (seq & 1) == 0 &&
				    atomic_load_explicit(&app->sh->ctl_owed, memory_order_seq_cst) == 0 &&
				    atomic_load_explicit(&app->sh->ctl_seq, memory_order_seq_cst) == seq))) {
		atomic_store_explicit(&app->dead, true, memory_order_relaxed);
		return false;
	}
	return true;
}

/*
 * A wake fd of our own (ctl_proto.h, WAKEFD), for a process that starts
 * out with its parent's (fork child, spawned image): sharing it, either
 * process could drain the other's wake-up.  Kept on the parent's if this
 * fails: then only the 20/100 ms slices wake us.
 */
void isosock__own_wake_fd(struct isosock_app *app, int member)
{
	struct isostack_ctl_wakefd w = {
		.hdr = { .magic = ISOSTACK_CTL_MAGIC, .version = ISOSTACK_CTL_VERSION,
			 .type = ISOSTACK_CTL_WAKEFD, .length = sizeof(w) },
		.pid = (uint32_t)getpid(),
		.member = (uint32_t)member,
	};
	int wfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), old = app->wake_fd;

	if (wfd >= 0 && isoshm_send_fd(app->ctl_fd, wfd, &w, sizeof(w)) == 0) {
		/* At the old number: a spawned image must find the fds it did
		 * not inherit free, as with the kernel. */
		/* The system call itself: our own dup3() symbol would move
		 * the private fd at `old` out of the way (interpose.c). */
		if (syscall(SYS_dup3, wfd, old, O_CLOEXEC) == old) {
			close(wfd);
			return;
		}
		/* swapped first: the shim's close() refuses our private fds */
		app->wake_fd = wfd;
		close(old);
	} else if (wfd >= 0) {
		close(wfd);
	}
}

uint32_t isosock_app_id(const struct isosock_app *app) { return app->id; }
uint32_t isosock_app_max_sockets(const struct isosock_app *app) { return app->nsocks; }
int isosock_app_ctl_fd(const struct isosock_app *app) { return app->ctl_fd; }
int isosock_app_wake_fd(const struct isosock_app *app) { return app->wake_fd; }

void isosock_app_stats(struct isosock_app *app, struct isosock_stats *out)
{
	*out = app->st;
	out->sleeps = isoshm_app_sleeps(app->shm);
}
