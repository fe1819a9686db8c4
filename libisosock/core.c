/*
 * The socket front-end core: the application's half of docs/sockets.md.
 *
 * Per socket slot we keep private state (struct fsock) behind a mutex:
 * what the status ring told us (EOF, error, incoming connections, replies
 * to commands other threads are waiting for) and the bookkeeping of the
 * two aggregation rules (SEND: post only if the previous one was consumed
 * or 64 KiB piled up; RECV: post after consuming half the RX ring).
 * Threads never sleep holding the mutex: they drain the status ring under
 * it, then wait on the slot's futex (isoshm_app_wait) in slices of
 * WAIT_SLICE_NS, checking between slices that the daemon is still there.
 *
 * fork(): all of that state lives in memory the processes of the
 * application share (struct fshared, a memfd mapped MAP_SHARED at attach,
 * so fork children see the same pages and an exec'd image can map it
 * again), and the per-socket mutexes are process-shared and robust.  Every
 * process may then drive every socket it holds, as with the kernel.  A
 * socket is held by a set of member processes (fsock.holders, a bit per
 * entry of fshared.members, up to 1024): fork adds the child to every socket the
 * parent holds, close() removes the caller, and the stack is told CLOSE
 * only when the last holder lets go.  A member that dies without closing
 * (exit runs isosock_app_exit; _exit and signals do not) is swept by the
 * survivors (sweep(), from their waits) as if it had closed everything.
 *
 * A slot's life: SOCKET (or an ACCEPT reply) hands it to us; CLOSE returns
 * it at once to the caller, and the slot is reaped -- its status ring
 * drained up to the CLOSE reply, its RX ring up to the rx_prod that reply
 * carries -- before the stack may hand it out again (the stack waits for
 * exactly that), so neither side ever resets a ring the other still uses.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "isosock.h"
#include "isoshm.h"
#include "isostack/ctl_proto.h"
#include "isostack/shm_abi.h"

#define WAIT_SLICE_NS   (20 * 1000 * 1000)
#define NREP            8
#define NSTASH          8
#define SPIN_POLLS      2000
/* Longest wait of a non-blocking accept for its (due) reply. */
#define ACCEPT_NB_WAIT_NS (50 * 1000 * 1000)

enum fstate {
	F_FREE = 0, F_OPEN, F_LISTEN, F_CONNECTING, F_CONNECTED, F_CLOSING,
};

/* Processes that may share one attachment (fork children included): a
 * forking server has one per connection being served. */
#define MAX_MEMBERS     1024
#define MSET_WORDS      (MAX_MEMBERS / 64)
/* Survivors look for dead members at most this often. */
#define SWEEP_NS        (100 * 1000 * 1000)

/* A set of member indices. */
struct mset {
	uint64_t w[MSET_WORDS];
};

static bool mset_has(const struct mset *s, int i)
{
	return (s->w[i / 64] >> (i % 64)) & 1;
}

/* Without the socket's lock: a hint, re-checked under it. */
static bool mset_has_relaxed(const struct mset *s, int i)
{
	return (__atomic_load_n(&s->w[i / 64], __ATOMIC_RELAXED) >> (i % 64)) & 1;
}

static void mset_add(struct mset *s, int i)
{
	s->w[i / 64] |= UINT64_C(1) << (i % 64);
}

static void mset_del(struct mset *s, int i)
{
	s->w[i / 64] &= ~(UINT64_C(1) << (i % 64));
}

static bool mset_meets(const struct mset *a, const struct mset *b)
{
	for (int k = 0; k < MSET_WORDS; k++)
		if (a->w[k] & b->w[k])
			return true;
	return false;
}

struct rep {
	uint64_t cookie;
	bool used, done, abandoned;
	uint16_t owner;            /* member index of the waiter */
	struct isostack_shm_status st;
};

struct fsock {
	pthread_mutex_t lock;      /* process-shared, robust; first: fs_fresh keeps it */
	struct mset holders;       /* the member processes holding it */
	uint8_t state;
	bool nonblock, shut_rd, shut_wr, hup, dead, linger0, cork;
	bool udp, udp_connected;   /* SOCK_DGRAM; default peer set */
	bool err_reported;         /* the fatal error was returned once */
	int fatal;                 /* -errno from EV_ERROR */
	int so_error;              /* pending SO_ERROR (positive errno) */
	uint64_t connect_cookie;   /* reply updates the state, waiter or not */
	int64_t rcvtimeo_ns, sndtimeo_ns;
	struct linger linger;
	/* TX */
	uint32_t tx_prod;          /* bytes written (ours) */
	uint32_t send_idx;         /* cmd_prod after our last SEND */
	bool send_posted;
	uint32_t tx_since_send;
	/* RX */
	uint32_t rx_cons;
	uint32_t rx_since_recv;
	/* listener */
	uint32_t incoming;         /* backlog length (EV_INCOMING less replies since) */
	uint32_t arrived;          /* connections that entered the backlog, ever */
	uint32_t accepting;        /* non-blocking ACCEPTs in flight for it */
	uint32_t stash[NSTASH];    /* accepted slots whose ACCEPT waiter gave up */
	uint32_t nstash;
	/* replies */
	struct rep rep[NREP];
	uint64_t seq;
	bool closed_reply;         /* CLOSING: the CLOSE reply came */
	uint32_t close_rx_prod;
};

/* A process of the application: pid 0 free, -1 reserved by a fork under
 * way, below -1 reserved for a spawned child (isosock_app_spawn_claim). */
struct member {
	_Atomic int32_t pid;
	uint64_t start;            /* /proc starttime: tells a reused pid apart */
};

/* The shared part of an attachment (see the top of the file). */
struct fshared {
	pthread_mutex_t mlock;     /* members[]; process-shared, robust */
	struct member members[MAX_MEMBERS];
	_Atomic uint32_t nmembers; /* entries in use, for the sweep's fast path */
	_Atomic uint32_t spawn_seq; /* makes the pid marks of spawn reservations */
	uint32_t nsocks;
	struct fsock fs[];
};

/* Per process: the fds and where this process is in the member table. */
struct isosock_app {
	struct isoshm_app *shm;
	struct fshared *sh;
	int sh_fd;
	size_t sh_size;
	int me;                    /* our index in sh->members */
	/* Threads of this process asleep on each socket's wake_mask bit
	 * (isosock_sleep_mark); NULL: bits are set and never cleared. */
	_Atomic uint16_t *marks;
	_Atomic int sleepers;      /* our threads between wait_arm and disarm */
	int64_t next_sweep;
	int ctl_fd, wake_fd, stack_wake_fd;
	uint32_t id, nsocks, tx_bytes, rx_bytes;
	uint8_t *base;
	struct isostack_shm_sock *socks;
	struct isostack_shm_wait *wait;
	struct fsock *fs;
	_Atomic bool dead;
	_Atomic int64_t alive_at;  /* when the control socket was last polled */
	struct isosock_stats st;   /* approximate under concurrency */
};

/* ---- Time --------------------------------------------------------------- */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- Process-shared locks and members ------------------------------------ */

static void mutex_init_shared(pthread_mutex_t *m)
{
	pthread_mutexattr_t a;

	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(m, &a);
	pthread_mutexattr_destroy(&a);
}

/* A member died holding the lock: what it guarded may be half updated,
 * but every field stays valid on its own (indices are published last),
 * so carry on with it. */
static void robust_lock(pthread_mutex_t *m)
{
	if (pthread_mutex_lock(m) == EOWNERDEAD)
		pthread_mutex_consistent(m);
}

static void fs_lock(struct fsock *f)
{
	robust_lock(&f->lock);
}

static int fs_trylock(struct fsock *f)
{
	int r = pthread_mutex_trylock(&f->lock);

	if (r == EOWNERDEAD) {
		pthread_mutex_consistent(&f->lock);
		r = 0;
	}
	return r;
}

static void fs_unlock(struct fsock *f)
{
	pthread_mutex_unlock(&f->lock);
}

/*
 * Field 22 of /proc/PID/stat (start time in clock ticks), or 0 if the
 * process is gone or a zombie (state Z/X: it holds nothing any more).
 * open/read only: also called in a fork child.
 */
static uint64_t proc_start(pid_t pid)
{
	char path[48], buf[512];
	uint64_t v = 0;
	ssize_t n;
	int fd, field = 2;
	char *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')');        /* comm may hold spaces and parens */
	if (p == NULL || p[1] != ' ')
		return 0;
	p += 2;
	if (*p == 'Z' || *p == 'X')
		return 0;
	for (field = 3; *p != '\0' && field < 22; p++)
		if (*p == ' ')
			field++;
	while (*p >= '0' && *p <= '9')
		v = v * 10 + (uint64_t)(*p++ - '0');
	return v ? v : 1;
}

static bool member_alive(const struct member *m)
{
	int32_t pid = atomic_load_explicit(&m->pid, memory_order_acquire);

	if (pid == 0)
		return false;
	if (pid < 0)
		return true;           /* a fork under way */
	return proc_start(pid) == m->start;
}

/* Under sh->mlock: a free member entry (dead ones are reused after
 * sweep() cleared their bits), or -1. */
static int member_claim(struct fshared *sh, int32_t pid)
{
	for (int i = 0; i < MAX_MEMBERS; i++) {
		if (atomic_load_explicit(&sh->members[i].pid, memory_order_relaxed) != 0)
			continue;
		sh->members[i].start = pid > 0 ? proc_start(pid) : 0;
		atomic_store_explicit(&sh->members[i].pid, pid, memory_order_release);
		atomic_fetch_add_explicit(&sh->nmembers, 1, memory_order_relaxed);
		return i;
	}
	return -1;
}

static void member_free(struct fshared *sh, int i)
{
	atomic_store_explicit(&sh->members[i].pid, 0, memory_order_release);
	atomic_fetch_sub_explicit(&sh->nmembers, 1, memory_order_relaxed);
}

static size_t fshared_size(uint32_t nsocks)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t n = sizeof(struct fshared) + (size_t)nsocks * sizeof(struct fsock);

	return (n + pg - 1) & ~(pg - 1);
}

/* The shared part of a new attachment, with this process as member 0. */
static int fshared_create(struct isosock_app *app, uint32_t nsocks)
{
	size_t size = fshared_size(nsocks);
	int fd = memfd_create("isosock-fe", MFD_CLOEXEC);
	struct fshared *sh;

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) != 0) {
		close(fd);
		return -ENOMEM;
	}
	sh = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (sh == MAP_FAILED) {
		close(fd);
		return -ENOMEM;
	}
	mutex_init_shared(&sh->mlock);
	sh->nsocks = nsocks;
	for (uint32_t i = 0; i < nsocks; i++)
		mutex_init_shared(&sh->fs[i].lock);
	app->sh = sh;
	app->sh_fd = fd;
	app->sh_size = size;
	app->fs = sh->fs;
	app->me = member_claim(sh, getpid());
	return 0;
}

/* ---- Attach --------------------------------------------------------------- */

/* The per-process shortcuts into the mapped segment (attach, exec import). */
static void bind_shm(struct isosock_app *app)
{
	const struct isostack_shm_header *h = isoshm_app_header(app->shm);

	app->nsocks = h->nr_sockets;
	app->tx_bytes = h->tx_ring_bytes;
	app->rx_bytes = h->rx_ring_bytes;
	app->base = isoshm_app_base(app->shm);
	app->socks = (struct isostack_shm_sock *)(app->base + h->socks_off);
	app->wait = (struct isostack_shm_wait *)(app->base + h->wait_off);
	if (app->marks == NULL)
		app->marks = calloc(app->nsocks, sizeof(app->marks[0]));
}

static int recv_reply(int fd, struct isostack_ctl_attach_reply *r, int fds[2])
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} u;
	struct iovec iov = { .iov_base = r, .iov_len = sizeof(*r) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	int got = 0;
	ssize_t n;

	fds[0] = fds[1] = -1;
	do
		n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (int i = 0; i < k; i++) {
			int f;

			memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (got < 2)
				fds[got++] = f;
			else
				close(f);
		}
	}
	if (n == 0)
		return -ECONNRESET;
	if ((size_t)n != sizeof(*r) || r->hdr.magic != ISOSTACK_CTL_MAGIC ||
	    r->hdr.version != ISOSTACK_CTL_VERSION || r->hdr.type != ISOSTACK_CTL_ATTACH_REPLY)
		return -EPROTO;
	return got;
}

int isosock_app_attach(struct isosock_app **out, const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct isostack_ctl_attach req = {
		.hdr = { .magic = ISOSTACK_CTL_MAGIC, .version = ISOSTACK_CTL_VERSION,
			 .type = ISOSTACK_CTL_ATTACH, .length = sizeof(req) },
		.pid = (uint32_t)getpid(), .abi_version = ISOSTACK_SHM_ABI_VERSION,
		.features = ISOSTACK_SHM_FEATURES,
	};
	struct isostack_ctl_attach_reply rep;
	struct isosock_app *app;
	int fds[2] = { -1, -1 };
	int ret;

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
	app->stack_wake_fd = -1;
	app->ctl_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (app->ctl_fd < 0) {
		ret = -errno;
		goto err_free;
	}
	if (connect(app->ctl_fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		ret = -errno;
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
	ret = isoshm_send_fd(app->ctl_fd, app->wake_fd, &req, sizeof(req));
	if (ret < 0)
		goto err_wake;
	ret = recv_reply(app->ctl_fd, &rep, fds);
	if (ret < 0)
		goto err_fds;
	if (rep.status < 0) {
		ret = rep.status;
		goto err_fds;
	}
	if (ret != 2) {
		ret = -EPROTO;
		goto err_fds;
	}
	ret = isoshm_app_attach(&app->shm, fds[0], NULL);
	if (ret < 0)
		goto err_fds;
	app->stack_wake_fd = fds[1];
	app->id = rep.app_id;
	bind_shm(app);
	ret = fshared_create(app, app->nsocks);
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
 * (7 per request).  A dead daemon is noticed that much later at most.
 */
#define ALIVE_CHECK_NS (1000 * 1000)

bool isosock_app_alive(struct isosock_app *app)
{
	struct pollfd p = { .fd = app->ctl_fd, .events = POLLIN };
	int64_t now;

	if (atomic_load_explicit(&app->dead, memory_order_relaxed))
		return false;
	now = now_ns();
	if (now - atomic_load_explicit(&app->alive_at, memory_order_relaxed) < ALIVE_CHECK_NS)
		return true;
	atomic_store_explicit(&app->alive_at, now, memory_order_relaxed);
	if (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR | POLLIN))) {
		/* the daemon never sends unasked: readable means hung up */
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
static void own_wake_fd(struct isosock_app *app, int member)
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
		if (dup3(wfd, old, O_CLOEXEC) == old) {
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

/* ---- exec ----------------------------------------------------------------------- */

static void release_mine(struct isosock_app *app, const bool *keep, bool wait);

static int set_cloexec(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFD);

	if (fl < 0)
		return -errno;
	fl = on ? fl | FD_CLOEXEC : fl & ~FD_CLOEXEC;
	return fcntl(fd, F_SETFD, fl) < 0 ? -errno : 0;
}

/* The fds an exec'd image needs to adopt the attachment. */
static void exec_fds(const struct isosock_app *app, int fds[6])
{
	isoshm_app_fds(app->shm, &fds[0], &fds[1]);
	fds[2] = app->sh_fd;
	fds[3] = app->ctl_fd;
	fds[4] = app->wake_fd;
	fds[5] = app->stack_wake_fd;
}

bool isosock_app_private_fd(const struct isosock_app *app, int fd)
{
	int fds[6];

	exec_fds(app, fds);
	for (int i = 0; i < 6; i++)
		if (fd >= 0 && fd == fds[i])
			return true;
	return false;
}

/* The description an exec'd image adopts (isosock_app_exec_import):
 * where the shared mappings are, the fds, the member entry the image
 * is (ours for exec, a reserved one for spawn) and whether it is a new
 * process that must take that entry over. */
static int export_desc(struct isosock_app *app, int member, bool spawn, char *buf, size_t n)
{
	int fds[6], len;

	exec_fds(app, fds);
	for (int i = 0; i < 6; i++)
		if (fds[i] >= 0 && set_cloexec(fds[i], false) < 0)
			return -EBADF;
	len = snprintf(buf, n, "%p,%p,%d,%d,%d,%d,%d,%d,%d,%u,%d",
		       (void *)app->shm, (void *)app->sh, fds[0], fds[1], fds[2], fds[3], fds[4],
		       fds[5], member, app->id, spawn ? 1 : 0);
	return len < 0 || (size_t)len >= n ? -ENAMETOOLONG : len;
}

int isosock_app_exec_export(struct isosock_app *app, char *buf, size_t n)
{
	return export_desc(app, app->me, false, buf, n);
}

void isosock_app_exec_failed(struct isosock_app *app)
{
	int fds[6];

	exec_fds(app, fds);
	for (int i = 0; i < 6; i++)
		if (fds[i] >= 0)
			(void)set_cloexec(fds[i], true);
}

int isosock_app_exec_import(struct isosock_app **out, const char *desc)
{
	void *view, *shp;
	int fds[6], me, spawn, rc;
	unsigned id;
	struct isosock_app *app;
	struct stat st;

	if (sscanf(desc, "%p,%p,%d,%d,%d,%d,%d,%d,%d,%u,%d", &view, &shp, &fds[0], &fds[1],
		   &fds[2], &fds[3], &fds[4], &fds[5], &me, &id, &spawn) != 11 ||
	    me < 0 || me >= MAX_MEMBERS)
		return -EINVAL;
	app = calloc(1, sizeof(*app));
	if (app == NULL)
		return -ENOMEM;
	rc = isoshm_app_adopt(&app->shm, view, fds[1], fds[0]);
	if (rc < 0)
		goto err_free;
	if (fstat(fds[2], &st) != 0 || st.st_size < (off_t)sizeof(struct fshared)) {
		rc = -EPROTO;
		goto err_shm;
	}
	app->sh_size = (size_t)st.st_size;
	app->sh = mmap(shp, app->sh_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE,
		       fds[2], 0);
	if (app->sh != shp) {
		if (app->sh != MAP_FAILED)
			munmap(app->sh, app->sh_size);
		rc = -EEXIST;
		goto err_shm;
	}
	app->sh_fd = fds[2];
	app->ctl_fd = fds[3];
	app->wake_fd = fds[4];
	app->stack_wake_fd = fds[5];
	app->me = me;
	app->id = id;
	bind_shm(app);
	app->fs = app->sh->fs;
	if (app->sh->nsocks != app->nsocks) {
		munmap(app->sh, app->sh_size);
		rc = -EPROTO;
		goto err_shm;
	}
	isosock_app_exec_failed(app);       /* close-on-exec again */
	if (spawn) {
		/* A new process (posix_spawn, system, popen): the entry the
		 * parent reserved is ours now, and so is a wake fd. */
		struct member *m = &app->sh->members[me];

		robust_lock(&app->sh->mlock);
		m->start = proc_start(getpid());
		atomic_store_explicit(&m->pid, (int32_t)getpid(), memory_order_release);
		pthread_mutex_unlock(&app->sh->mlock);
		own_wake_fd(app, me);
	}
	*out = app;
	return 0;

err_shm:
	isoshm_app_unmap(app->shm);   /* the fds stay for the caller */
err_free:
	free(app);
	return rc;
}

void isosock_app_exec_keep_only(struct isosock_app *app, const bool *keep)
{
	release_mine(app, keep, true);
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

/* ---- Status ring ------------------------------------------------------------- */

static struct fsock *fs_get(struct isosock_app *app, int s)
{
	if (s <= 0 || (uint32_t)s >= app->nsocks)
		return NULL;
	return &app->fs[s];
}

static void handle_status(struct isosock_app *app, struct fsock *f,
			  const struct isostack_shm_status *st)
{
	if (st->opcode >= ISOSTACK_SHM_EV_RX) {
		app->st.events++;
		switch (st->opcode) {
		case ISOSTACK_SHM_EV_HUP:
			f->hup = true;
			break;
		case ISOSTACK_SHM_EV_ERROR:
			f->dead = true;
			f->fatal = st->result < 0 ? (int)st->result : -ECONNRESET;
			f->so_error = -f->fatal;
			break;
		case ISOSTACK_SHM_EV_INCOMING:
			/* Growth past what we knew is new connections (replies
			 * before this event in the ring are already counted):
			 * each one an edge for edge-triggered epoll. */
			if ((uint32_t)st->arg[0] > f->incoming)
				f->arrived += (uint32_t)st->arg[0] - f->incoming;
			f->incoming = (uint32_t)st->arg[0];
			break;
		default:
			break;
		}
		return;
	}
	if (st->opcode == ISOSTACK_SHM_OP_CONNECT && st->cookie == f->connect_cookie &&
	    f->state == F_CONNECTING) {
		if (st->result == 0) {
			f->state = F_CONNECTED;
		} else {
			f->state = F_OPEN;
			f->so_error = (int)-st->result;
			f->dead = true;
			f->fatal = (int)st->result;
			f->err_reported = true;   /* reported through connect/SO_ERROR */
		}
	}
	/*
	 * EV_INCOMING carries the backlog length when it was posted; each
	 * ACCEPT reply posted after it took one child out.  Counting the
	 * reply here, in ring order (and not when the caller returns, after
	 * a later EV_INCOMING may already have been applied), keeps
	 * `incoming` exact: a count one too low hides a waiting connection
	 * from poll/epoll until the next one arrives.
	 */
	if (st->opcode == ISOSTACK_SHM_OP_ACCEPT && st->result > 0 && f->incoming > 0)
		f->incoming--;
	if (st->opcode == ISOSTACK_SHM_OP_CLOSE && f->state == F_CLOSING) {
		f->closed_reply = true;
		f->close_rx_prod = (uint32_t)st->arg[0];
		return;
	}
	for (int i = 0; i < NREP; i++) {
		struct rep *r = &f->rep[i];

		if (!r->used || r->cookie != st->cookie)
			continue;
		if (r->abandoned) {
			/* an accept nobody waits for any more: keep the child */
			if (st->opcode == ISOSTACK_SHM_OP_ACCEPT && st->result > 0 &&
			    f->nstash < NSTASH)
				f->stash[f->nstash++] = (uint32_t)st->result;
			r->used = false;
			return;
		}
		r->st = *st;
		atomic_store_explicit((_Atomic bool *)&r->done, true, memory_order_release);
		return;
	}
}

/* Under f->lock.  A closing slot is drained one entry at a time, so the
 * entries of the slot's next socket are never consumed here. */
static void drain(struct isosock_app *app, int s, struct fsock *f)
{
	struct isostack_shm_status st[16];
	int n;

	do {
		unsigned want = f->state == F_CLOSING ? 1 : 16;

		if (f->state == F_CLOSING && f->closed_reply)
			return;
		n = isoshm_app_recv_status(app->shm, (uint32_t)s, st, want);
		for (int i = 0; i < n; i++)
			handle_status(app, f, &st[i]);
	} while (n > 0);
}

/* Under f->lock: a slot handed to us anew, held by this process. */
static void fs_fresh(struct isosock_app *app, struct fsock *f, enum fstate state,
		     uint32_t tx_prod, uint32_t rx_cons)
{
	memset((uint8_t *)f + offsetof(struct fsock, holders), 0,
	       sizeof(*f) - offsetof(struct fsock, holders));
	mset_add(&f->holders, app->me);
	f->state = (uint8_t)state;
	f->tx_prod = tx_prod;
	f->rx_cons = rx_cons;
}

/* Under f->lock: a CLOSING slot whose CLOSE reply came gets its RX ring
 * drained up to the old socket's last byte, then is free. */
static void reap_one(struct isosock_app *app, int s, struct fsock *f)
{
	uint8_t scratch[4096];

	drain(app, s, f);
	if (f->state != F_CLOSING || !f->closed_reply)
		return;
	while (f->rx_cons != f->close_rx_prod) {
		uint32_t n = f->close_rx_prod - f->rx_cons;
		int k;

		if (n > sizeof(scratch))
			n = sizeof(scratch);
		k = isoshm_app_rx_read(app->shm, (uint32_t)s, scratch, n);
		if (k <= 0)
			break;
		f->rx_cons += (uint32_t)k;
	}
	f->state = F_FREE;
}

static void sweep(struct isosock_app *app);

static void reap_all(struct isosock_app *app)
{
	sweep(app);
	for (uint32_t i = 1; i < app->nsocks; i++) {
		struct fsock *f = &app->fs[i];

		/* Relaxed peek at the state: the locked re-check decides. */
		if (__atomic_load_n(&f->state, __ATOMIC_RELAXED) != F_CLOSING)
			continue;
		if (fs_trylock(f) != 0)
			continue;
		if (f->state == F_CLOSING)
			reap_one(app, (int)i, f);
		fs_unlock(f);
	}
}

/* ---- Commands and waiting ---------------------------------------------------- */

/*
 * After publishing a command: if the stack core sleeps (power-saving
 * mode), wake it through its eventfd.  The fence pairs with the one the
 * daemon makes between setting stack_napping and re-checking doorbells
 * (shm_abi.h, struct isostack_shm_wait).
 */
static void kick_stack(struct isosock_app *app)
{
	uint64_t one = 1;

	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&app->wait->stack_napping, memory_order_relaxed) == 0 ||
	    app->stack_wake_fd < 0)
		return;
	if (write(app->stack_wake_fd, &one, sizeof(one)) == sizeof(one))
		app->st.stack_kicks++;
}

/* Under f->lock.  Posts c (cookie filled in); returns 0 or -errno. */
static int post(struct isosock_app *app, int s, struct isostack_shm_cmd *c)
{
	int64_t deadline = 0;

	c->sock = (uint32_t)s;
	for (;;) {
		int k = isoshm_app_submit(app->shm, (uint32_t)s, c, 1);

		if (k == 1) {
			app->st.cmds++;
			kick_stack(app);
			return 0;
		}
		if (k < 0)
			return -EPIPE;
		/* command ring full: the stack is behind; it drains without us */
		if (!isosock_app_alive(app))
			return -ENETDOWN;
		if (deadline == 0)
			deadline = now_ns() + 5LL * 1000000000;
		else if (now_ns() > deadline)
			return -EAGAIN;
		sched_yield();
	}
}

/* Under f->lock: a reply slot for a new command. */
static struct rep *rep_new(struct isosock_app *app, struct fsock *f, int s, struct isostack_shm_cmd *c)
{
	for (int i = 0; i < NREP; i++) {
		struct rep *r = &f->rep[i];

		if (r->used)
			continue;
		memset(r, 0, sizeof(*r));
		r->used = true;
		r->owner = (uint16_t)app->me;
		r->cookie = ((uint64_t)(uint32_t)s << 32) | (++f->seq & 0xffffffffu);
		c->cookie = r->cookie;
		return r;
	}
	return NULL;
}

/*
 * What a blocked thread waits for, besides a reply or any status entry:
 * rx_need bytes readable past rx_cons, tx_need bytes free past tx_prod.
 * The thresholds are relative to the private indices the caller decided
 * on (under f->lock), never to a fresh snapshot of the shared ones, so a
 * move between the caller's check and the sleep is never missed.
 */
struct want {
	uint32_t rx_need, tx_need;
};

struct waitarg {
	struct isosock_app *app;
	int s;
	struct rep *r;
	uint32_t rx_cons, tx_prod;
	struct want want;
};

/* Runs lock-free on shared words; only decides whether to look again. */
static bool something_moved(void *p)
{
	struct waitarg *w = p;
	struct isostack_shm_sock *sk = &w->app->socks[w->s];

	if (w->r != NULL && atomic_load_explicit((_Atomic bool *)&w->r->done, memory_order_acquire))
		return true;
	if (atomic_load_explicit(&w->app->dead, memory_order_relaxed))
		return true;
	/* an undrained status entry: a reply or an event to handle */
	if (atomic_load_explicit(&sk->status_prod, memory_order_acquire) !=
	    atomic_load_explicit(&sk->status_cons, memory_order_relaxed))
		return true;
	if (w->want.rx_need != 0 &&
	    atomic_load_explicit(&sk->rx_prod, memory_order_acquire) - w->rx_cons >= w->want.rx_need)
		return true;
	if (w->want.tx_need != 0 &&
	    w->app->tx_bytes - (w->tx_prod - atomic_load_explicit(&sk->tx_cons, memory_order_acquire)) >=
	    w->want.tx_need)
		return true;
	return false;
}

/*
 * Called with f->lock held; releases it, waits until a reply, a status
 * entry or what `want` names is there (or timeout/signal), retakes it.
 * The futex protocol (announce, re-check, sleep) is isoshm_app_wait's; the
 * wait is cut in WAIT_SLICE_NS slices only to notice a dead daemon (its
 * hang-up wakes nobody).  Returns 0, -ETIMEDOUT (past deadline_ns, 0 =
 * none), -EINTR, -ENETDOWN (daemon gone).
 */
static int wait_moved(struct isosock_app *app, int s, struct fsock *f, struct rep *r,
		      int64_t deadline_ns, struct want want)
{
	struct waitarg w = {
		.app = app, .s = s, .r = r, .rx_cons = f->rx_cons, .tx_prod = f->tx_prod,
		.want = want,
	};
	int rc;

	fs_unlock(f);
	for (;;) {
		int64_t slice = WAIT_SLICE_NS;

		if (atomic_load_explicit(&app->dead, memory_order_relaxed)) {
			rc = -ENETDOWN;   /* nobody will answer: never spin on it */
			break;
		}
		if (deadline_ns != 0) {
			int64_t left = deadline_ns - now_ns();

			if (left <= 0) {
				rc = -ETIMEDOUT;
				break;
			}
			if (left < slice)
				slice = left;
		}
		rc = isoshm_app_wait(app->shm, (uint32_t)s, something_moved, &w, SPIN_POLLS, slice);
		if (rc == 0 && atomic_load_explicit(&app->dead, memory_order_relaxed) &&
		    !(r != NULL && atomic_load_explicit((_Atomic bool *)&r->done, memory_order_acquire)))
			rc = -ENETDOWN;
		if (rc == 0 || rc == -EINTR || rc == -ENETDOWN)
			break;
		if (!isosock_app_alive(app)) {
			rc = -ENETDOWN;
			break;
		}
		sweep(app);
	}
	fs_lock(f);
	return rc;
}

static const struct want WANT_REPLY = { 0, 0 };

static int64_t deadline_of(int64_t timeo_ns)
{
	return timeo_ns > 0 ? now_ns() + timeo_ns : 0;
}

/*
 * Posts c and waits for its reply (under f->lock; may drop it while
 * waiting).  nonblock_ns > 0: give up after that long (the reply is then
 * abandoned).  Returns 0 and *out, or -EINTR/-ETIMEDOUT/-ENETDOWN/-EAGAIN.
 */
static int call(struct isosock_app *app, int s, struct fsock *f, struct isostack_shm_cmd *c,
		struct isostack_shm_status *out, int64_t deadline)
{
	struct rep *r;
	int rc;

	while ((r = rep_new(app, f, s, c)) == NULL) {
		/* every reply slot is taken (abandoned commands not yet
		 * answered): the same -EAGAIN as a reply that comes too late */
		rc = wait_moved(app, s, f, NULL, deadline, WANT_REPLY);
		if (rc < 0)
			return rc == -ETIMEDOUT ? -EAGAIN : rc;
		drain(app, s, f);
	}
	rc = post(app, s, c);
	if (rc < 0) {
		r->used = false;
		return rc;
	}
	for (;;) {
		drain(app, s, f);
		if (r->done) {
			*out = r->st;
			r->used = false;
			return 0;
		}
		rc = wait_moved(app, s, f, r, deadline, WANT_REPLY);
		if (rc < 0 && !r->done) {
			r->abandoned = true;
			return rc == -ETIMEDOUT ? -EAGAIN : rc;
		}
	}
}

/* Simple synchronous command on a live socket. */
static int simple_call(struct isosock_app *app, int s, struct isostack_shm_cmd *c,
		       struct isostack_shm_status *out)
{
	struct fsock *f = fs_get(app, s);
	struct isostack_shm_status st;
	int rc;

	if (f == NULL)
		return -EBADF;
	fs_lock(f);
	if (f->state == F_FREE || f->state == F_CLOSING) {
		fs_unlock(f);
		return -EBADF;
	}
	rc = call(app, s, f, c, &st, 0);
	fs_unlock(f);
	if (rc < 0)
		return rc == -ENETDOWN ? -ENOTCONN : rc;
	if (out != NULL)
		*out = st;
	return st.result < 0 ? (int)st.result : 0;
}

/* ---- Sockets ------------------------------------------------------------------- */

int isosock_socket(struct isosock_app *app, int domain, int type, int protocol)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_SOCKET };
	struct fsock *ctl = &app->fs[0];
	struct isostack_shm_status st;
	int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
	int rc, s;

	if (domain != AF_INET)
		return -EAFNOSUPPORT;
	if (protocol < 0 || base < 0)
		return -EINVAL;
	if (!isosock_app_alive(app))
		return -ENETDOWN;
	reap_all(app);
	c.arg[0] = (uint64_t)domain;
	c.arg[1] = (uint64_t)base;
	c.arg[2] = (uint64_t)protocol;
	fs_lock(ctl);
	rc = call(app, 0, ctl, &c, &st, 0);
	fs_unlock(ctl);
	if (rc < 0)
		return rc == -ENETDOWN ? -ENETDOWN : rc;
	if (st.result < 0)
		return (int)st.result;
	s = (int)st.result;
	if (s <= 0 || (uint32_t)s >= app->nsocks)
		return -EPROTO;
	fs_lock(&app->fs[s]);
	fs_fresh(app, &app->fs[s], F_OPEN,
		 atomic_load_explicit(&app->socks[s].tx_prod, memory_order_relaxed),
		 atomic_load_explicit(&app->socks[s].rx_cons, memory_order_relaxed));
	app->fs[s].nonblock = (type & SOCK_NONBLOCK) != 0;
	app->fs[s].udp = base == SOCK_DGRAM;
	fs_unlock(&app->fs[s]);
	return s;
}

int isosock_set_nonblock(struct isosock_app *app, int s, bool on)
{
	struct fsock *f = fs_get(app, s);

	if (f == NULL)
		return -EBADF;
	fs_lock(f);
	f->nonblock = on;
	fs_unlock(f);
	return 0;
}

int isosock_get_nonblock(struct isosock_app *app, int s)
{
	struct fsock *f = fs_get(app, s);
	int v;

	if (f == NULL)
		return -EBADF;
	fs_lock(f);
	v = f->nonblock;
	fs_unlock(f);
	return v;
}

static int addr_to_cmd(struct isostack_shm_cmd *c, const struct sockaddr *addr, socklen_t len)
{
	if (addr == NULL)
		return -EFAULT;
	if (len < sizeof(sa_family_t))
		return -EINVAL;
	if (addr->sa_family != AF_INET)
		return -EAFNOSUPPORT;
	if (len < sizeof(struct sockaddr_in))
		return -EINVAL;
	len = sizeof(struct sockaddr_in);
	c->arg[0] = len;
	memcpy(&c->arg[1], addr, len);
	/* sin_zero must travel as zeros (the stack checks unused bytes) */
	memset((uint8_t *)&c->arg[1] + offsetof(struct sockaddr_in, sin_zero), 0,
	       sizeof(((struct sockaddr_in *)0)->sin_zero));
	return 0;
}

static void addr_out(const struct isostack_shm_status *st, struct sockaddr *addr, socklen_t *len)
{
	socklen_t full = (socklen_t)st->arg[0];

	if (addr == NULL || len == NULL)
		return;
	if (full > ISOSTACK_SHM_ADDR_MAX)
		full = ISOSTACK_SHM_ADDR_MAX;
	memcpy(addr, &st->arg[1], *len < full ? *len : full);
	*len = full;
}

int isosock_bind(struct isosock_app *app, int s, const struct sockaddr *addr, socklen_t len)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_BIND };
	int rc = addr_to_cmd(&c, addr, len);

	return rc < 0 ? rc : simple_call(app, s, &c, NULL);
}

int isosock_listen(struct isosock_app *app, int s, int backlog)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_LISTEN };
	int rc;

	c.arg[0] = backlog < 0 ? 0 : (uint64_t)backlog;
	rc = simple_call(app, s, &c, NULL);
	if (rc == 0) {
		fs_lock(&app->fs[s]);
		app->fs[s].state = F_LISTEN;
		fs_unlock(&app->fs[s]);
	}
	return rc;
}

static int adopt_child(struct isosock_app *app, int child, int flags)
{
	struct fsock *cf;

	if (child <= 0 || (uint32_t)child >= app->nsocks)
		return -EPROTO;
	cf = &app->fs[child];
	fs_lock(cf);
	fs_fresh(app, cf, F_CONNECTED,
		 atomic_load_explicit(&app->socks[child].tx_prod, memory_order_relaxed),
		 atomic_load_explicit(&app->socks[child].rx_cons, memory_order_relaxed));
	cf->nonblock = (flags & SOCK_NONBLOCK) != 0;
	fs_unlock(cf);
	return child;
}

int isosock_accept(struct isosock_app *app, int s, struct sockaddr *addr,
		   socklen_t *len, int flags)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_ACCEPT };
	struct fsock *f = fs_get(app, s);
	struct isostack_shm_status st;
	int rc;

	if (f == NULL)
		return -EBADF;
	reap_all(app);
	fs_lock(f);
	if (f->state != F_LISTEN) {
		fs_unlock(f);
		return f->state == F_FREE || f->state == F_CLOSING ? -EBADF : -EINVAL;
	}
	drain(app, s, f);
	if (f->nstash > 0) {
		int child = (int)f->stash[0];

		memmove(f->stash, f->stash + 1, --f->nstash * sizeof(f->stash[0]));
		fs_unlock(f);
		if (addr != NULL && len != NULL) {
			struct isostack_shm_cmd g = { .opcode = ISOSTACK_SHM_OP_GETPEERNAME };

			adopt_child(app, child, flags);
			if (simple_call(app, child, &g, &st) == 0)
				addr_out(&st, addr, len);
			return child;
		}
		return adopt_child(app, child, flags);
	}
	/*
	 * Non-blocking: ask only for a connection the backlog holds and no
	 * other thread's ACCEPT is already taking; the stack then answers at
	 * once.  The bound only guards against a reply that cannot come
	 * (a child taken by an ACCEPT abandoned on a signal); it is generous
	 * because a loaded machine may keep the stack core off the CPU for
	 * milliseconds, and giving up there turned POLLIN into EAGAIN.
	 */
	if (f->nonblock && f->incoming <= f->accepting) {
		fs_unlock(f);
		return isosock_app_alive(app) ? -EAGAIN : -ECONNABORTED;
	}
	if (f->nonblock)
		f->accepting++;
	rc = call(app, s, f, &c, &st,
		  f->nonblock ? now_ns() + ACCEPT_NB_WAIT_NS : deadline_of(f->rcvtimeo_ns));
	if (f->nonblock && f->accepting > 0)
		f->accepting--;
	fs_unlock(f);
	if (rc < 0)
		return rc == -ENETDOWN ? -ECONNABORTED : rc;
	if (st.result < 0)
		return (int)st.result;
	addr_out(&st, addr, len);
	return adopt_child(app, (int)st.result, flags);
}

/* UDP connect: sets (or with AF_UNSPEC clears) the default peer. */
static int udp_connect(struct isosock_app *app, int s, struct fsock *f,
		       const struct sockaddr *addr, socklen_t len)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_CONNECT };
	bool unspec = addr != NULL && len >= sizeof(sa_family_t) && addr->sa_family == AF_UNSPEC;
	int rc;

	if (unspec) {
		c.arg[0] = sizeof(sa_family_t);   /* family 0: the bytes are zero */
	} else {
		rc = addr_to_cmd(&c, addr, len);
		if (rc < 0)
			return rc;
	}
	rc = simple_call(app, s, &c, NULL);
	if (rc == 0) {
		fs_lock(f);
		f->udp_connected = !unspec;
		fs_unlock(f);
	}
	return rc;
}

int isosock_connect(struct isosock_app *app, int s, const struct sockaddr *addr, socklen_t len)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_CONNECT };
	struct fsock *f = fs_get(app, s);
	struct isostack_shm_status st;
	struct rep *r;
	int rc;

	if (f == NULL)
		return -EBADF;
	if (__atomic_load_n(&f->udp, __ATOMIC_RELAXED))
		return udp_connect(app, s, f, addr, len);
	rc = addr_to_cmd(&c, addr, len);
	if (rc < 0)
		return rc;
	fs_lock(f);
	drain(app, s, f);
	switch (f->state) {
	case F_FREE:
	case F_CLOSING:
		rc = -EBADF;
		goto out;
	case F_CONNECTING:
		rc = -EALREADY;
		goto out;
	case F_CONNECTED:
		rc = -EISCONN;
		goto out;
	case F_LISTEN:
		rc = -EISCONN;
		goto out;
	default:
		break;
	}
	if (f->dead) {
		rc = f->fatal ? f->fatal : -ECONNABORTED;
		goto out;
	}
	r = rep_new(app, f, s, &c);
	if (r == NULL) {
		rc = -EAGAIN;
		goto out;
	}
	f->connect_cookie = c.cookie;
	rc = post(app, s, &c);
	if (rc < 0) {
		r->used = false;
		goto out;
	}
	f->state = F_CONNECTING;
	if (f->nonblock) {
		r->abandoned = true;   /* the reply only updates the state */
		rc = -EINPROGRESS;
		goto out;
	}
	for (;;) {
		drain(app, s, f);
		if (r->done) {
			st = r->st;
			r->used = false;
			rc = st.result < 0 ? (int)st.result : 0;
			if (rc < 0)
				f->so_error = 0;   /* reported here, not again */
			break;
		}
		rc = wait_moved(app, s, f, r, 0, WANT_REPLY);
		if (rc < 0 && !r->done) {
			r->abandoned = true;
			if (rc == -ENETDOWN)
				rc = -ECONNREFUSED;
			break;
		}
	}
out:
	fs_unlock(f);
	return rc;
}

/* ---- Data ---------------------------------------------------------------------- */

/* Under f->lock: the data-call error of a dead socket (or 0 if alive). */
static int dead_err(struct isosock_app *app, struct fsock *f, bool sending)
{
	if (!f->dead && isosock_app_alive(app))
		return 0;
	if (!f->dead) {
		f->dead = true;
		f->fatal = -ECONNRESET;
		f->so_error = ECONNRESET;
	}
	if (!f->err_reported) {
		f->err_reported = true;
		f->so_error = 0;
		return f->fatal;
	}
	return sending ? -EPIPE : 0;
}

/* Under f->lock: post SEND if the rule says so. */
static int maybe_post_send(struct isosock_app *app, int s, struct fsock *f, bool more)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_SEND };
	uint32_t cons;
	int rc;

	if (f->tx_since_send == 0)
		return 0;
	/* Acquire: pairs with the stack's store-release of cmd_cons. */
	cons = atomic_load_explicit(&app->socks[s].cmd_cons, memory_order_acquire);
	if (f->send_posted && (int32_t)(cons - f->send_idx) < 0 &&
	    f->tx_since_send <= ISOSOCK_TX_AGG_MAX) {
		/*
		 * Skipping relies on the stack reading tx_prod after it took
		 * that SEND.  Store (tx_prod) then load (cmd_cons) here, store
		 * (cmd_cons) then load (tx_prod) there: without a full fence on
		 * both sides each may see the other's old value and the bytes
		 * wait for a SEND nobody posts.  The stack fences after taking
		 * commands (daemon/backend/sock.c, isod_sock_run_cmds).
		 */
		atomic_thread_fence(memory_order_seq_cst);
		cons = atomic_load_explicit(&app->socks[s].cmd_cons, memory_order_acquire);
		if ((int32_t)(cons - f->send_idx) < 0)
			return 0;   /* the stack has not read the last SEND: it will see tx_prod */
	}
	if (more && f->tx_since_send <= ISOSOCK_TX_AGG_MAX)
		return 0;
	rc = post(app, s, &c);
	if (rc < 0)
		return rc;
	app->st.send_posts++;
	f->send_posted = true;
	f->send_idx = atomic_load_explicit(&app->socks[s].cmd_prod, memory_order_relaxed);
	f->tx_since_send = 0;
	return 0;
}

static ssize_t udp_sendto(struct isosock_app *app, int s, struct fsock *f, const void *buf,
			  size_t len, int flags, const struct sockaddr *to, socklen_t tolen);

ssize_t isosock_send(struct isosock_app *app, int s, const void *buf, size_t len, int flags)
{
	struct fsock *f = fs_get(app, s);
	const uint8_t *p = buf;
	size_t done = 0;
	int64_t deadline;
	ssize_t ret;

	if (f == NULL)
		return -EBADF;
	if (__atomic_load_n(&f->udp, __ATOMIC_RELAXED))
		return udp_sendto(app, s, f, buf, len, flags, NULL, 0);
	fs_lock(f);
	deadline = deadline_of(f->sndtimeo_ns);
	for (;;) {
		int rc, k;

		drain(app, s, f);
		if (f->state == F_FREE || f->state == F_CLOSING) {
			ret = -EBADF;
			break;
		}
		if (f->state != F_CONNECTED) {
			ret = f->dead ? dead_err(app, f, true) : -ENOTCONN;
			if (ret == 0)
				ret = -EPIPE;
			break;
		}
		if (f->shut_wr) {
			ret = -EPIPE;
			break;
		}
		rc = dead_err(app, f, true);
		if (rc < 0) {
			ret = rc;
			break;
		}
		if (done == len) {
			ret = (ssize_t)done;
			break;
		}
		k = isoshm_app_tx_write(app->shm, (uint32_t)s, p + done,
					len - done > UINT32_MAX ? UINT32_MAX : (uint32_t)(len - done));
		if (k < 0) {
			ret = -EPIPE;
			break;
		}
		if (k > 0) {
			done += (size_t)k;
			f->tx_prod += (uint32_t)k;
			f->tx_since_send += (uint32_t)k;
			rc = maybe_post_send(app, s, f, (flags & MSG_MORE) || f->cork);
			if (rc < 0) {
				ret = rc;
				break;
			}
			continue;
		}
		/* ring full: make sure the stack knows, then wait for acks */
		rc = maybe_post_send(app, s, f, false);
		if (rc < 0) {
			ret = rc;
			break;
		}
		if (f->nonblock || (flags & MSG_DONTWAIT)) {
			ret = done > 0 ? (ssize_t)done : -EAGAIN;
			break;
		}
		rc = wait_moved(app, s, f, NULL, deadline, (struct want){ .tx_need = 1 });
		if (rc < 0 && rc != -ENETDOWN) {
			ret = done > 0 ? (ssize_t)done : rc == -ETIMEDOUT ? -EAGAIN : rc;
			break;
		}
	}
	if (ret > 0)
		app->st.send_calls++;
	fs_unlock(f);
	return ret;
}

/* Under f->lock: free TX ring bytes. */
static uint32_t tx_free(struct isosock_app *app, int s, struct fsock *f)
{
	uint32_t cons = atomic_load_explicit(&app->socks[s].tx_cons, memory_order_acquire);
	uint32_t used = f->tx_prod - cons;

	return used <= app->tx_bytes ? app->tx_bytes - used : 0;
}

/*
 * One datagram: a record (struct isostack_shm_dgram, payload, padding)
 * in the TX ring, published as a whole before SEND is considered.
 */
static ssize_t udp_sendto(struct isosock_app *app, int s, struct fsock *f, const void *buf,
			  size_t len, int flags, const struct sockaddr *to, socklen_t tolen)
{
	static const uint8_t zeros[ISOSTACK_SHM_DGRAM_ALIGN];
	struct isostack_shm_dgram h = { 0 };
	uint32_t rec;
	int64_t deadline;
	ssize_t ret;

	if (len > ISOSTACK_SHM_DGRAM_MAX)
		return -EMSGSIZE;
	rec = ISOSTACK_SHM_DGRAM_REC(len);
	if (rec > app->tx_bytes)
		return -EMSGSIZE;
	if (buf == NULL && len > 0)
		return -EFAULT;
	if (to != NULL) {
		struct sockaddr_in sin;

		if (tolen < sizeof(sa_family_t))
			return -EINVAL;
		if (to->sa_family != AF_INET)
			return -EAFNOSUPPORT;
		if (tolen < sizeof(sin))
			return -EINVAL;
		memcpy(&sin, to, sizeof(sin));
		if (sin.sin_port == 0)
			return -EINVAL;
		h.addr = sin.sin_addr.s_addr;
		h.port = sin.sin_port;
	}
	h.len = (uint32_t)len;
	fs_lock(f);
	deadline = deadline_of(f->sndtimeo_ns);
	for (;;) {
		int rc;

		drain(app, s, f);
		if (f->state == F_FREE || f->state == F_CLOSING) {
			ret = -EBADF;
			break;
		}
		if (to == NULL && !f->udp_connected) {
			ret = -EDESTADDRREQ;
			break;
		}
		if (f->shut_wr) {
			ret = -EPIPE;
			break;
		}
		if (f->dead || !isosock_app_alive(app)) {
			rc = dead_err(app, f, true);
			ret = rc < 0 ? rc : -EPIPE;
			break;
		}
		if (tx_free(app, s, f) >= rec) {
			uint32_t pad = rec - (uint32_t)sizeof(h) - (uint32_t)len;
			int k = isoshm_app_tx_write(app->shm, (uint32_t)s, &h, sizeof(h));

			if (k == (int)sizeof(h) && len > 0)
				k = isoshm_app_tx_write(app->shm, (uint32_t)s, buf, (uint32_t)len) ==
				    (int)len ? (int)sizeof(h) : -EPROTO;
			if (k == (int)sizeof(h) && pad > 0)
				k = isoshm_app_tx_write(app->shm, (uint32_t)s, zeros, pad) ==
				    (int)pad ? (int)sizeof(h) : -EPROTO;
			if (k != (int)sizeof(h)) {
				ret = -EPIPE;   /* the ring indices are corrupt */
				break;
			}
			f->tx_prod += rec;
			f->tx_since_send += rec;
			rc = maybe_post_send(app, s, f, false);
			ret = rc < 0 ? rc : (ssize_t)len;
			break;
		}
		rc = maybe_post_send(app, s, f, false);
		if (rc < 0) {
			ret = rc;
			break;
		}
		if (f->nonblock || (flags & MSG_DONTWAIT)) {
			ret = -EAGAIN;
			break;
		}
		rc = wait_moved(app, s, f, NULL, deadline, (struct want){ .tx_need = rec });
		if (rc < 0 && rc != -ENETDOWN) {
			ret = rc == -ETIMEDOUT ? -EAGAIN : rc;
			break;
		}
	}
	if (ret >= 0)
		app->st.send_calls++;
	fs_unlock(f);
	return ret;
}

ssize_t isosock_sendto(struct isosock_app *app, int s, const void *buf, size_t len, int flags,
		       const struct sockaddr *to, socklen_t tolen)
{
	struct fsock *f = fs_get(app, s);

	if (f != NULL && __atomic_load_n(&f->udp, __ATOMIC_RELAXED))
		return udp_sendto(app, s, f, buf, len, flags, to, tolen);
	/* TCP ignores the address, as the kernel does */
	return isosock_send(app, s, buf, len, flags);
}

/* Under f->lock: bytes readable now. */
static uint32_t rx_avail(struct isosock_app *app, int s, struct fsock *f)
{
	/* Acquire: pairs with the stack's store-release of rx_prod. */
	uint32_t prod = atomic_load_explicit(&app->socks[s].rx_prod, memory_order_acquire);
	uint32_t n = prod - f->rx_cons;

	return n <= app->rx_bytes ? n : 0;
}

static void rx_peek_at(struct isosock_app *app, int s, uint32_t pos, void *buf, uint32_t n)
{
	const struct isostack_shm_header *h = isoshm_app_header(app->shm);
	const uint8_t *ring = app->base + h->rx_off + (uint64_t)s * h->rx_ring_bytes;
	uint32_t off = pos & (h->rx_ring_bytes - 1);
	uint32_t first = h->rx_ring_bytes - off < n ? h->rx_ring_bytes - off : n;

	memcpy(buf, ring + off, first);
	memcpy((uint8_t *)buf + first, ring, n - first);
}

static void rx_peek(struct isosock_app *app, int s, struct fsock *f, void *buf, uint32_t n)
{
	rx_peek_at(app, s, f->rx_cons, buf, n);
}

/*
 * Under f->lock, UDP: the next complete record's header.  Returns its
 * ring size, 0 if no complete record is there yet, -EPROTO if the header
 * is impossible (the stack would never write it).
 */
static int udp_next(struct isosock_app *app, int s, struct fsock *f,
		    struct isostack_shm_dgram *h)
{
	uint32_t avail = rx_avail(app, s, f);
	uint32_t rec;

	if (avail < sizeof(*h))
		return 0;
	rx_peek(app, s, f, h, sizeof(*h));
	if (h->len > ISOSTACK_SHM_DGRAM_MAX)
		return -EPROTO;
	rec = ISOSTACK_SHM_DGRAM_REC(h->len);
	if (rec > app->rx_bytes)
		return -EPROTO;
	return avail >= rec ? (int)rec : 0;
}

/* Under f->lock, UDP: drops n ring bytes (a consumed record). */
static int rx_skip(struct isosock_app *app, int s, struct fsock *f, uint32_t n)
{
	uint8_t scratch[1024];

	while (n > 0) {
		uint32_t k = n < sizeof(scratch) ? n : (uint32_t)sizeof(scratch);
		int rc = isoshm_app_rx_read(app->shm, (uint32_t)s, scratch, k);

		if (rc <= 0)
			return rc < 0 ? rc : -EPROTO;
		f->rx_cons += (uint32_t)rc;
		n -= (uint32_t)rc;
	}
	return 0;
}

static ssize_t udp_recvfrom(struct isosock_app *app, int s, struct fsock *f, void *buf,
			    size_t len, int flags, struct sockaddr *from, socklen_t *fromlen)
{
	struct isostack_shm_dgram h;
	int64_t deadline;
	ssize_t ret;

	fs_lock(f);
	deadline = deadline_of(f->rcvtimeo_ns);
	for (;;) {
		int rec, rc;

		drain(app, s, f);
		if (f->state == F_FREE || f->state == F_CLOSING) {
			ret = -EBADF;
			break;
		}
		rec = udp_next(app, s, f, &h);
		if (rec < 0) {
			ret = -EIO;
			break;
		}
		if (rec > 0) {
			uint32_t n = len < h.len ? (uint32_t)len : h.len;

			if (n > 0)
				rx_peek_at(app, s, f->rx_cons + (uint32_t)sizeof(h), buf, n);
			if (from != NULL && fromlen != NULL) {
				struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = h.port };

				sin.sin_addr.s_addr = h.addr;
				memcpy(from, &sin, *fromlen < sizeof(sin) ? *fromlen : sizeof(sin));
				*fromlen = sizeof(sin);
			}
			if (!(flags & MSG_PEEK) && rx_skip(app, s, f, (uint32_t)rec) < 0) {
				ret = -EIO;
				break;
			}
			ret = (flags & MSG_TRUNC) ? (ssize_t)h.len : (ssize_t)n;
			break;
		}
		if (f->shut_rd) {
			ret = 0;
			break;
		}
		if (f->dead || !isosock_app_alive(app)) {
			rc = dead_err(app, f, false);
			ret = rc < 0 ? rc : -ECONNRESET;
			break;
		}
		if (f->nonblock || (flags & MSG_DONTWAIT)) {
			ret = -EAGAIN;
			break;
		}
		/* a record is at least its header: wake when one may be whole */
		rc = wait_moved(app, s, f, NULL, deadline,
				(struct want){ .rx_need = rx_avail(app, s, f) + 1 });
		if (rc < 0 && rc != -ENETDOWN) {
			ret = rc == -ETIMEDOUT ? -EAGAIN : rc;
			break;
		}
	}
	if (ret > 0)
		app->st.recv_calls++;
	fs_unlock(f);
	return ret;
}

/* Under f->lock: RECV when half the ring was consumed since the last one,
 * or the ring had been full. */
static void maybe_post_recv(struct isosock_app *app, int s, struct fsock *f, bool was_full)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_RECV };

	if (f->rx_since_recv == 0 || (!was_full && f->rx_since_recv < app->rx_bytes / 2))
		return;
	if (post(app, s, &c) == 0) {
		app->st.recv_posts++;
		f->rx_since_recv = 0;
	}
}

ssize_t isosock_recv(struct isosock_app *app, int s, void *buf, size_t len, int flags)
{
	struct fsock *f = fs_get(app, s);
	uint8_t *p = buf;
	size_t done = 0;
	int64_t deadline;
	ssize_t ret;

	if (f == NULL)
		return -EBADF;
	if (__atomic_load_n(&f->udp, __ATOMIC_RELAXED))
		return udp_recvfrom(app, s, f, buf, len, flags, NULL, NULL);
	fs_lock(f);
	deadline = deadline_of(f->rcvtimeo_ns);
	for (;;) {
		uint32_t avail, n;
		int rc;

		drain(app, s, f);
		if (f->state == F_FREE || f->state == F_CLOSING) {
			ret = -EBADF;
			break;
		}
		if (f->state != F_CONNECTED && !(f->dead && f->state == F_OPEN)) {
			ret = -ENOTCONN;
			break;
		}
		if (len == 0 || f->shut_rd) {
			ret = (ssize_t)done;
			break;
		}
		avail = rx_avail(app, s, f);
		if (avail > 0) {
			bool was_full = avail == app->rx_bytes;

			n = len - done < avail ? (uint32_t)(len - done) : avail;
			if (flags & MSG_PEEK) {
				rx_peek(app, s, f, p + done, n);
				ret = (ssize_t)(done + n);
				break;
			}
			rc = isoshm_app_rx_read(app->shm, (uint32_t)s, p + done, n);
			if (rc < 0) {
				ret = -ECONNRESET;
				break;
			}
			done += (size_t)rc;
			f->rx_cons += (uint32_t)rc;
			f->rx_since_recv += (uint32_t)rc;
			maybe_post_recv(app, s, f, was_full);
			if (done == len || !(flags & MSG_WAITALL)) {
				ret = (ssize_t)done;
				break;
			}
			continue;
		}
		if (done > 0 && !(flags & MSG_WAITALL)) {
			ret = (ssize_t)done;
			break;
		}
		if (f->hup) {
			ret = (ssize_t)done;   /* EOF */
			break;
		}
		rc = dead_err(app, f, false);
		if (rc < 0 || f->dead) {
			ret = done > 0 ? (ssize_t)done : rc;
			break;
		}
		if (f->nonblock || (flags & MSG_DONTWAIT)) {
			ret = done > 0 ? (ssize_t)done : -EAGAIN;
			break;
		}
		rc = wait_moved(app, s, f, NULL, deadline, (struct want){ .rx_need = 1 });
		if (rc < 0 && rc != -ENETDOWN) {
			ret = done > 0 ? (ssize_t)done : rc == -ETIMEDOUT ? -EAGAIN : rc;
			break;
		}
	}
	if (ret > 0)
		app->st.recv_calls++;
	fs_unlock(f);
	return ret;
}

ssize_t isosock_recvfrom(struct isosock_app *app, int s, void *buf, size_t len, int flags,
			 struct sockaddr *from, socklen_t *fromlen)
{
	struct fsock *f = fs_get(app, s);
	ssize_t n;

	if (f != NULL && __atomic_load_n(&f->udp, __ATOMIC_RELAXED))
		return udp_recvfrom(app, s, f, buf, len, flags, from, fromlen);
	n = isosock_recv(app, s, buf, len, flags);

	if (n >= 0 && from != NULL && fromlen != NULL) {
		socklen_t l = *fromlen;

		if (isosock_getpeername(app, s, from, &l) == 0)
			*fromlen = l;
	}
	return n;
}

int isosock_nread(struct isosock_app *app, int s)
{
	struct fsock *f = fs_get(app, s);
	int n;

	if (f == NULL)
		return -EBADF;
	fs_lock(f);
	if (f->udp) {
		struct isostack_shm_dgram h;

		/* FIONREAD on a datagram socket: the next datagram's size */
		n = udp_next(app, s, f, &h) > 0 ? (int)h.len : 0;
	} else {
		n = f->state == F_CONNECTED ? (int)rx_avail(app, s, f) : 0;
	}
	fs_unlock(f);
	return n;
}

int isosock_shutdown(struct isosock_app *app, int s, int how)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_SHUTDOWN };
	struct fsock *f = fs_get(app, s);
	int rc;

	if (f == NULL)
		return -EBADF;
	if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR)
		return -EINVAL;
	fs_lock(f);
	drain(app, s, f);
	if (f->udp && f->state == F_OPEN) {
		/* datagram: purely local, as in the kernel */
		rc = f->udp_connected ? 0 : -ENOTCONN;
		if (rc == 0) {
			if (how != SHUT_WR)
				f->shut_rd = true;
			if (how != SHUT_RD)
				f->shut_wr = true;
		}
		fs_unlock(f);
		return rc;
	}
	if (f->state != F_CONNECTED) {
		rc = f->state == F_FREE || f->state == F_CLOSING ? -EBADF : -ENOTCONN;
		fs_unlock(f);
		return rc;
	}
	if (how != SHUT_RD) {
		/* the stack must see every byte before the FIN */
		f->cork = false;
		rc = maybe_post_send(app, s, f, false);
		(void)rc;
	}
	fs_unlock(f);
	c.arg[0] = (uint64_t)how;
	rc = simple_call(app, s, &c, NULL);
	if (rc == 0 || rc == -ENOTCONN) {
		fs_lock(f);
		if (how != SHUT_WR)
			f->shut_rd = true;
		if (how != SHUT_RD)
			f->shut_wr = true;
		fs_unlock(f);
	}
	return rc == -ENOTCONN && f->dead ? 0 : rc;
}

/* Under f->lock: the last holder let go; tell the stack. */
static void close_locked(struct isosock_app *app, int s, struct fsock *f)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_CLOSE };
	struct isostack_shm_cmd l = { .opcode = ISOSTACK_SHM_OP_SETSOCKOPT };

	drain(app, s, f);
	if (f->state == F_CONNECTED && f->tx_since_send > 0) {
		f->cork = false;
		(void)maybe_post_send(app, s, f, false);
	}
	if (f->linger0) {
		/* fire and forget: its reply is drained with the slot */
		l.arg[0] = SOL_SOCKET;
		l.arg[1] = SO_LINGER;
		l.arg[2] = sizeof(struct linger);
		memcpy(&l.arg[3], &f->linger, sizeof(f->linger));
		(void)post(app, s, &l);
	}
	/* Replies to commands still in flight on this slot come before the
	 * CLOSE reply; reaping drains them. */
	f->state = F_CLOSING;
	f->closed_reply = false;
	c.cookie = UINT64_MAX;
	if (post(app, s, &c) < 0)
		f->state = F_FREE;   /* no daemon: nothing to reclaim */
}

/* Under f->lock: drops the members in `gone` from the socket's holders,
 * closing it if no live holder is left.  Dead holders met on the way go
 * too; the search stops at the first live one (the sweep clears the rest),
 * so a close among hundreds of forked holders reads one /proc entry. */
static void release_locked(struct isosock_app *app, int s, struct fsock *f,
			   const struct mset *gone)
{
	if (f->state == F_FREE || f->state == F_CLOSING)
		return;
	for (int k = 0; k < MSET_WORDS; k++)
		f->holders.w[k] &= ~gone->w[k];
	for (int i = 0; i < MAX_MEMBERS; i++) {
		if (f->holders.w[i / 64] == 0) {
			i |= 63;          /* the next word */
			continue;
		}
		if (!mset_has(&f->holders, i))
			continue;
		if (member_alive(&app->sh->members[i]))
			return;
		mset_del(&f->holders, i);
	}
	close_locked(app, s, f);
}

/* Under f->lock: the one member `who` lets go. */
static void release_one(struct isosock_app *app, int s, struct fsock *f, int who)
{
	struct mset gone = { { 0 } };

	mset_add(&gone, who);
	release_locked(app, s, f, &gone);
}

int isosock_close(struct isosock_app *app, int s)
{
	struct fsock *f = fs_get(app, s);

	if (f == NULL)
		return -EBADF;
	fs_lock(f);
	if (f->state == F_FREE || f->state == F_CLOSING ||
	    !mset_has(&f->holders, app->me)) {
		fs_unlock(f);
		return -EBADF;
	}
	release_one(app, s, f, app->me);
	fs_unlock(f);
	return 0;
}

/* ---- fork and exit -------------------------------------------------------------- */

int isosock_app_fork_prepare(struct isosock_app *app)
{
	static atomic_bool said;
	int k;

	robust_lock(&app->sh->mlock);
	k = member_claim(app->sh, -1);
	pthread_mutex_unlock(&app->sh->mlock);
	if (k < 0) {
		/* MAX_MEMBERS live processes on one attachment: the child
		 * then shares our entry, so its close()s and exit count as
		 * ours.  Said once per process. */
		static const char msg[] = "libisosock: more than 1024 processes share one "
			"attachment; a fork child shares its parent's claim on sockets\n";

		if (!atomic_exchange(&said, true) && write(2, msg, sizeof(msg) - 1) < 0) {
			/* nothing better to do */
		}
		return app->me;
	}
	for (uint32_t i = 1; i < app->nsocks; i++) {
		struct fsock *f = &app->fs[i];

		if (!mset_has_relaxed(&f->holders, app->me))
			continue;
		fs_lock(f);
		if (mset_has(&f->holders, app->me))
			mset_add(&f->holders, k);
		fs_unlock(f);
	}
	return k;
}

void isosock_app_fork_parent(struct isosock_app *app, int child, bool failed)
{
	if (!failed || child == app->me)
		return;
	for (uint32_t i = 1; i < app->nsocks; i++) {
		struct fsock *f = &app->fs[i];

		if (!mset_has_relaxed(&f->holders, child))
			continue;
		fs_lock(f);
		mset_del(&f->holders, child);
		fs_unlock(f);
	}
	robust_lock(&app->sh->mlock);
	member_free(app->sh, child);
	pthread_mutex_unlock(&app->sh->mlock);
}

void isosock_app_fork_child(struct isosock_app *app, int child)
{
	struct member *m = &app->sh->members[child];

	own_wake_fd(app, child);
	if (app->marks != NULL)     /* the parent's sleepers are not ours */
		memset((void *)app->marks, 0, app->nsocks * sizeof(app->marks[0]));
	atomic_store_explicit(&app->sleepers, 0, memory_order_relaxed);
	if (child == app->me)
		return;
	app->me = child;
	app->next_sweep = 0;
	m->start = proc_start(getpid());
	atomic_store_explicit(&m->pid, (int32_t)getpid(), memory_order_release);
}

/*
 * spawn: posix_spawn, system and popen make a process without our fork
 * handlers; the parent reserves a member entry for it (pid `mark`, < 0:
 * alive for the sweep), makes it a holder of each socket it inherits, and
 * names it in the description (export_desc, spawn); the new image takes
 * the entry over at import.  spawn_done then fills in the pid, if known
 * and the child has not, or undoes it all if nobody took the entry.
 */
int isosock_app_spawn_claim(struct isosock_app *app, int32_t *mark)
{
	int k;

	/* Unique among the reservations of all members (a thread may have
	 * several popen children at once; an entry can be freed and claimed
	 * again), so spawn_done never undoes a reservation not its own. */
	*mark = -2 - (int32_t)(atomic_fetch_add_explicit(&app->sh->spawn_seq, 1,
							 memory_order_relaxed) & 0x3fffffff);
	for (int tries = 0; tries < 2; tries++) {
		robust_lock(&app->sh->mlock);
		k = member_claim(app->sh, *mark);
		pthread_mutex_unlock(&app->sh->mlock);
		if (k >= 0 || tries > 0)
			break;
		/* Full: children that never loaded us (and so never freed
		 * their entry at exit) may be gone; look now, not at the next
		 * rate-limited sweep. */
		app->next_sweep = 0;
		sweep(app);
	}
	return k;
}

int isosock_app_spawn_export(struct isosock_app *app, int k, char *buf, size_t n)
{
	return export_desc(app, k, true, buf, n);
}

void isosock_app_spawn_hold(struct isosock_app *app, int k, int s)
{
	struct fsock *f = fs_get(app, s);

	if (f == NULL)
		return;
	fs_lock(f);
	if (f->state != F_FREE && f->state != F_CLOSING &&
	    mset_has(&f->holders, app->me))
		mset_add(&f->holders, k);
	fs_unlock(f);
}

void isosock_app_spawn_done(struct isosock_app *app, int k, int32_t mark, pid_t pid)
{
	struct member *m = &app->sh->members[k];
	uint64_t start = pid > 0 ? proc_start(pid) : 0;
	bool drop;

	robust_lock(&app->sh->mlock);
	drop = atomic_load_explicit(&m->pid, memory_order_relaxed) == mark;
	if (drop && start != 0) {
		m->start = start;
		atomic_store_explicit(&m->pid, (int32_t)pid, memory_order_release);
		drop = false;
	}
	pthread_mutex_unlock(&app->sh->mlock);
	if (!drop)
		return;
	/* Nobody took it (spawn failed, the child is gone already, or it
	 * never loaded us): its sockets are let go as if it had closed them;
	 * the entry stays reserved until then, so no sweep or claim races. */
	for (uint32_t i = 1; i < app->nsocks; i++) {
		struct fsock *f = &app->fs[i];

		if (!mset_has_relaxed(&f->holders, k))
			continue;
		fs_lock(f);
		if (mset_has(&f->holders, k))
			release_one(app, (int)i, f, k);
		fs_unlock(f);
	}
	robust_lock(&app->sh->mlock);
	member_free(app->sh, k);
	pthread_mutex_unlock(&app->sh->mlock);
}

/*
 * Members that died without closing (killed, _exit) are dropped from
 * every socket they held; sockets nobody holds any more are closed, and
 * reply slots their threads waited on are given back.  Rate-limited; a
 * no-op while this process is the only member.
 */
static void sweep(struct isosock_app *app)
{
	struct mset gone = { { 0 } };
	bool any = false;
	int64_t now;

	if (atomic_load_explicit(&app->sh->nmembers, memory_order_relaxed) <= 1)
		return;
	now = now_ns();
	if (now < app->next_sweep)
		return;
	app->next_sweep = now + SWEEP_NS;
	robust_lock(&app->sh->mlock);
	for (int i = 0; i < MAX_MEMBERS; i++) {
		struct member *m = &app->sh->members[i];

		if (i == app->me || atomic_load_explicit(&m->pid, memory_order_relaxed) == 0 ||
		    member_alive(m))
			continue;
		mset_add(&gone, i);
		any = true;
		member_free(app->sh, i);
	}
	pthread_mutex_unlock(&app->sh->mlock);
	if (!any)
		return;
	for (uint32_t i = 1; i < app->nsocks; i++) {
		struct fsock *f = &app->fs[i];

		fs_lock(f);
		for (int k = 0; k < NREP; k++) {
			struct rep *r = &f->rep[k];

			if (r->used && mset_has(&gone, r->owner)) {
				if (r->done)
					r->used = false;
				else
					r->abandoned = true;
			}
		}
		if (mset_meets(&f->holders, &gone))
			release_locked(app, (int)i, f, &gone);
		fs_unlock(f);
	}
}

/*
 * A parent that waits for its children in the kernel (waitpid) makes no
 * other call into us, so the sockets only a killed child held would stay
 * open until the parent's next socket call: the wait* wrappers sweep as
 * soon as a child is reaped, as the kernel closes them when it dies.
 */
void isosock_app_child_reaped(struct isosock_app *app)
{
	app->next_sweep = 0;
	sweep(app);
}

/*
 * Lets go of every socket this process holds whose slot keep[] does not
 * mark (keep may be NULL).  `wait` false: a socket whose lock is taken is
 * skipped (at exit a thread of ours may sit in a call on it; the
 * survivors' sweep releases what we leave).
 */
static void release_mine(struct isosock_app *app, const bool *keep, bool wait)
{
	for (uint32_t i = 1; i < app->nsocks; i++) {
		struct fsock *f = &app->fs[i];

		if ((keep != NULL && keep[i]) || !mset_has_relaxed(&f->holders, app->me))
			continue;
		if (wait)
			fs_lock(f);
		else if (fs_trylock(f) != 0)
			continue;
		if (mset_has(&f->holders, app->me))
			release_one(app, (int)i, f, app->me);
		fs_unlock(f);
	}
}

void isosock_app_exit(struct isosock_app *app)
{
	release_mine(app, NULL, false);
	robust_lock(&app->sh->mlock);
	member_free(app->sh, app->me);
	pthread_mutex_unlock(&app->sh->mlock);
}

int isosock_getsockname(struct isosock_app *app, int s, struct sockaddr *addr, socklen_t *len)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_GETSOCKNAME };
	struct isostack_shm_status st;
	int rc;

	if (len == NULL || addr == NULL)
		return -EFAULT;
	rc = simple_call(app, s, &c, &st);
	if (rc == 0)
		addr_out(&st, addr, len);
	return rc;
}

int isosock_getpeername(struct isosock_app *app, int s, struct sockaddr *addr, socklen_t *len)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_GETPEERNAME };
	struct isostack_shm_status st;
	int rc;

	if (len == NULL || addr == NULL)
		return -EFAULT;
	rc = simple_call(app, s, &c, &st);
	if (rc == 0)
		addr_out(&st, addr, len);
	return rc;
}

static int64_t tv_ns(const struct timeval *tv)
{
	return (int64_t)tv->tv_sec * 1000000000 + (int64_t)tv->tv_usec * 1000;
}

int isosock_setsockopt(struct isosock_app *app, int s, int level, int name,
		       const void *val, socklen_t len)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_SETSOCKOPT };
	struct fsock *f = fs_get(app, s);
	int rc = 0;

	if (f == NULL)
		return -EBADF;
	if (val == NULL && len > 0)
		return -EFAULT;
	fs_lock(f);
	if (level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO)) {
		struct timeval tv;

		if (len < sizeof(tv)) {
			rc = -EINVAL;
		} else {
			memcpy(&tv, val, sizeof(tv));
			if (tv.tv_usec < 0 || tv.tv_usec >= 1000000)
				rc = -EDOM;
			else if (name == SO_RCVTIMEO)
				f->rcvtimeo_ns = tv_ns(&tv);
			else
				f->sndtimeo_ns = tv_ns(&tv);
		}
		fs_unlock(f);
		return rc;
	}
	if (level == SOL_SOCKET && (name == SO_RCVBUF || name == SO_SNDBUF)) {
		fs_unlock(f);
		return len < sizeof(int) ? -EINVAL : 0;   /* the rings are fixed */
	}
	if (level == SOL_SOCKET && name == SO_LINGER) {
		if (len < sizeof(struct linger)) {
			fs_unlock(f);
			return -EINVAL;
		}
		memcpy(&f->linger, val, sizeof(f->linger));
		f->linger0 = f->linger.l_onoff && f->linger.l_linger == 0;
		fs_unlock(f);
		return 0;
	}
	if (level == IPPROTO_TCP && name == TCP_CORK) {
		int v;

		if (len < sizeof(int)) {
			fs_unlock(f);
			return -EINVAL;
		}
		memcpy(&v, val, sizeof(v));
		f->cork = v != 0;
		if (!f->cork && f->state == F_CONNECTED)
			(void)maybe_post_send(app, s, f, false);
		fs_unlock(f);
		return 0;
	}
	fs_unlock(f);
	if (len > ISOSTACK_SHM_OPT_MAX)
		len = ISOSTACK_SHM_OPT_MAX;
	c.arg[0] = (uint64_t)level;
	c.arg[1] = (uint64_t)name;
	c.arg[2] = len;
	if (len > 0)
		memcpy(&c.arg[3], val, len);
	return simple_call(app, s, &c, NULL);
}

static int put_int(void *val, socklen_t *len, int v)
{
	if (val == NULL || len == NULL)
		return -EFAULT;
	if (*len < sizeof(int))
		return -EINVAL;
	memcpy(val, &v, sizeof(v));
	*len = sizeof(int);
	return 0;
}

int isosock_getsockopt(struct isosock_app *app, int s, int level, int name,
		       void *val, socklen_t *len)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_GETSOCKOPT };
	struct isostack_shm_status st;
	struct fsock *f = fs_get(app, s);
	int rc;

	if (f == NULL)
		return -EBADF;
	if (val == NULL || len == NULL)
		return -EFAULT;
	if (level == SOL_SOCKET) {
		fs_lock(f);
		drain(app, s, f);
		rc = 1;
		switch (name) {
		case SO_ERROR:
			rc = put_int(val, len, f->so_error);
			if (rc == 0) {
				f->so_error = 0;
				if (f->dead)
					f->err_reported = true;
			}
			break;
		case SO_TYPE:      rc = put_int(val, len, f->udp ? SOCK_DGRAM : SOCK_STREAM); break;
		case SO_DOMAIN:    rc = put_int(val, len, AF_INET); break;
		case SO_PROTOCOL:  rc = put_int(val, len, f->udp ? IPPROTO_UDP : IPPROTO_TCP); break;
		case SO_ACCEPTCONN: rc = put_int(val, len, f->state == F_LISTEN); break;
		case SO_RCVBUF:    rc = put_int(val, len, (int)app->rx_bytes); break;
		case SO_SNDBUF:    rc = put_int(val, len, (int)app->tx_bytes); break;
		case SO_LINGER:
			if (*len < sizeof(struct linger)) {
				rc = -EINVAL;
			} else {
				memcpy(val, &f->linger, sizeof(f->linger));
				*len = sizeof(struct linger);
				rc = 0;
			}
			break;
		case SO_RCVTIMEO:
		case SO_SNDTIMEO: {
			int64_t ns = name == SO_RCVTIMEO ? f->rcvtimeo_ns : f->sndtimeo_ns;
			struct timeval tv = { .tv_sec = ns / 1000000000,
					      .tv_usec = (ns % 1000000000) / 1000 };

			if (*len < sizeof(tv)) {
				rc = -EINVAL;
			} else {
				memcpy(val, &tv, sizeof(tv));
				*len = sizeof(tv);
				rc = 0;
			}
			break;
		}
		default:
			break;
		}
		fs_unlock(f);
		if (rc <= 0)
			return rc;
	}
	if (level == IPPROTO_TCP && name == TCP_CORK) {
		fs_lock(f);
		rc = put_int(val, len, f->cork);
		fs_unlock(f);
		return rc;
	}
	c.arg[0] = (uint64_t)level;
	c.arg[1] = (uint64_t)name;
	c.arg[2] = *len > ISOSTACK_SHM_OPT_MAX ? ISOSTACK_SHM_OPT_MAX : *len;
	rc = simple_call(app, s, &c, &st);
	if (rc < 0)
		return rc;
	if (st.result > ISOSTACK_SHM_OPT_MAX)
		return -EPROTO;
	if ((socklen_t)st.result < *len)
		*len = (socklen_t)st.result;
	memcpy(val, &st.arg[2], *len);
	return 0;
}

/* ---- Readiness ------------------------------------------------------------------ */

/* Under f->lock. */
static int mask_of(struct isosock_app *app, int s, struct fsock *f)
{
	int m = 0;

	drain(app, s, f);
	switch (f->state) {
	case F_FREE:
	case F_CLOSING:
		return POLLNVAL;
	case F_LISTEN:
		if (f->nstash > 0 || f->incoming > 0)
			m |= POLLIN;
		break;
	case F_CONNECTING:
		break;
	case F_OPEN:
		if (f->udp) {
			struct isostack_shm_dgram h;
			uint32_t big = ISOSTACK_SHM_DGRAM_REC(ISOSTACK_SHM_DGRAM_MAX);

			if (udp_next(app, s, f, &h) != 0 || f->shut_rd)
				m |= POLLIN;
			/* writable when a datagram of any size fits, or half the
			 * ring is free (the kernel's sndbuf/2 rule) */
			if (!f->shut_wr && tx_free(app, s, f) >= (big < app->tx_bytes / 2 ? big : app->tx_bytes / 2))
				m |= POLLOUT;
			if (f->dead || !isosock_app_alive(app))
				m |= POLLERR;
			break;
		}
		m |= POLLOUT | POLLHUP;
		if (f->dead)
			m |= POLLERR;
		break;
	case F_CONNECTED: {
		uint32_t cons = atomic_load_explicit(&app->socks[s].tx_cons, memory_order_acquire);

		if (rx_avail(app, s, f) > 0 || f->hup || f->shut_rd)
			m |= POLLIN;
		if (f->hup)
			m |= POLLRDHUP;
		if (!f->shut_wr && app->tx_bytes - (f->tx_prod - cons) > 0)
			m |= POLLOUT;
		if (f->hup && f->shut_wr)
			m |= POLLHUP;
		break;
	}
	}
	if (f->state == F_CONNECTED && (f->dead || !isosock_app_alive(app)))
		m |= POLLERR | POLLHUP | POLLIN | POLLOUT;
	return m;
}

int isosock_poll_gen(struct isosock_app *app, int s, short events, uint32_t *gen)
{
	struct fsock *f = fs_get(app, s);
	int m;

	if (f == NULL)
		return -EBADF;
	fs_lock(f);
	m = mask_of(app, s, f);
	/* Bytes (datagrams) the stack put in the RX ring, plus connections
	 * queued for accept: one moves at every arrival.  Read after
	 * mask_of drained the status ring, so it covers what m reports. */
	if (gen)
		*gen = atomic_load_explicit(&app->socks[s].rx_prod, memory_order_acquire) +
		       f->arrived;
	fs_unlock(f);
	return m & (events | POLLERR | POLLHUP | POLLNVAL);
}

int isosock_poll(struct isosock_app *app, int s, short events)
{
	return isosock_poll_gen(app, s, events, NULL);
}

struct setarg {
	struct isosock_app *app;
	struct isosock_pollfd *set;
	unsigned n;
	uint32_t *snap;   /* [3n]: status_prod, rx_prod, tx_cons */
};

static void snap_set(struct setarg *a)
{
	for (unsigned i = 0; i < a->n; i++) {
		struct isostack_shm_sock *sk;

		if (a->set[i].sock <= 0 || (uint32_t)a->set[i].sock >= a->app->nsocks)
			continue;
		sk = &a->app->socks[a->set[i].sock];
		a->snap[3 * i] = atomic_load_explicit(&sk->status_prod, memory_order_acquire);
		a->snap[3 * i + 1] = atomic_load_explicit(&sk->rx_prod, memory_order_acquire);
		a->snap[3 * i + 2] = atomic_load_explicit(&sk->tx_cons, memory_order_acquire);
	}
}

static bool set_moved(void *p)
{
	struct setarg *a = p;

	if (atomic_load_explicit(&a->app->dead, memory_order_relaxed))
		return true;
	for (unsigned i = 0; i < a->n; i++) {
		struct isostack_shm_sock *sk;

		if (a->set[i].sock <= 0 || (uint32_t)a->set[i].sock >= a->app->nsocks)
			continue;
		sk = &a->app->socks[a->set[i].sock];
		if (atomic_load_explicit(&sk->status_prod, memory_order_acquire) != a->snap[3 * i] ||
		    atomic_load_explicit(&sk->rx_prod, memory_order_acquire) != a->snap[3 * i + 1] ||
		    atomic_load_explicit(&sk->tx_cons, memory_order_acquire) != a->snap[3 * i + 2])
			return true;
	}
	return false;
}

int isosock_wait(struct isosock_app *app, struct isosock_pollfd *set, unsigned n,
		 int64_t timeout_ns)
{
	int64_t deadline = timeout_ns > 0 ? now_ns() + timeout_ns : 0;
	uint32_t *snap = calloc(n ? 3 * n : 1, sizeof(uint32_t));
	struct setarg a = { .app = app, .set = set, .n = n, .snap = snap };
	/*
	 * One socket (a blocking call of the shim): sleep on that socket's
	 * wait point, which the stack wakes for exactly its rings, rather
	 * than on the app-wide one, which every event of every socket wakes
	 * (with many threads each blocked on its own socket, each event woke
	 * them all).
	 */
	uint32_t point = n == 1 && set[0].sock > 0 && (uint32_t)set[0].sock < app->nsocks ?
			 (uint32_t)set[0].sock : ISOSHM_WAIT_ANY;
	int ready;

	if (snap == NULL)
		return -ENOMEM;
	for (;;) {
		snap_set(&a);
		ready = 0;
		for (unsigned i = 0; i < n; i++) {
			int m;

			set[i].revents = 0;
			if (set[i].sock < 0)
				continue;
			m = isosock_poll(app, set[i].sock, set[i].events);
			if (m < 0)
				m = POLLNVAL;
			set[i].revents = (short)m;
			ready += m != 0;
		}
		if (ready > 0 || timeout_ns == 0)
			break;
		int64_t slice = WAIT_SLICE_NS;

		if (deadline != 0) {
			int64_t left = deadline - now_ns();

			if (left <= 0)
				break;
			if (left < slice)
				slice = left;
		}
		int rc = isoshm_app_wait(app->shm, point, set_moved, &a, SPIN_POLLS, slice);

		if (rc == -EINTR) {
			ready = -EINTR;
			break;
		}
		if (rc == -ETIMEDOUT) {
			(void)isosock_app_alive(app);
			sweep(app);
		}
	}
	free(snap);
	return ready;
}

/*
 * Per-process wake targeting.  A thread about to sleep on this process's
 * wake fd marks each isostack socket it waits for: the first such thread
 * sets our bit in the socket's wake_mask, the last one to wake clears it,
 * and the stack writes only the wake fds whose bit is set in the masks of
 * the sockets it posted to.  Marks come before isosock_wait_arm, whose
 * fence orders them before the re-check (the stack reads the mask after
 * its own fence, as it reads waiters).  A clear racing a new mark is
 * repaired by re-checking the count after clearing; bit 63 is shared by
 * all processes past the 63rd and is never cleared (extra wake-ups only).
 */
void isosock_sleep_mark(struct isosock_app *app, int s, bool on)
{
	int bit = app->me < 63 ? app->me : 63;
	uint64_t b = UINT64_C(1) << bit;
	_Atomic uint64_t *mask;

	if (s <= 0 || (uint32_t)s >= app->nsocks)
		return;
	mask = &app->socks[s].wake_mask;
	if (app->marks == NULL) {
		if (on)
			atomic_fetch_or_explicit(mask, b, memory_order_relaxed);
		return;
	}
	if (on) {
		if (atomic_fetch_add_explicit(&app->marks[s], 1, memory_order_relaxed) == 0)
			atomic_fetch_or_explicit(mask, b, memory_order_relaxed);
		return;
	}
	if (atomic_fetch_sub_explicit(&app->marks[s], 1, memory_order_relaxed) != 1 || bit == 63)
		return;
	atomic_fetch_and_explicit(mask, ~b, memory_order_relaxed);
	if (atomic_load_explicit(&app->marks[s], memory_order_relaxed) != 0) {
		/* Another thread of ours marked it meanwhile and may be asleep
		 * already: restore the bit, and wake it in case the stack
		 * looked while the bit was clear. */
		uint64_t one = 1;

		atomic_fetch_or_explicit(mask, b, memory_order_relaxed);
		if (write(app->wake_fd, &one, sizeof(one)) < 0) {
			/* full counter: a wake-up is pending anyway */
		}
	}
}

int isosock_wait_arm(struct isosock_app *app)
{
	sweep(app);     /* mixed waits re-arm every slice: the survivors' turn */
	atomic_fetch_add_explicit(&app->sleepers, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&app->wait->waiters, 1, memory_order_relaxed);
	/* Orders the announcement before the caller's readiness re-check;
	 * pairs with the stack's fence before it reads waiters. */
	atomic_thread_fence(memory_order_seq_cst);
	return 0;
}

int isosock_wait_disarm(struct isosock_app *app)
{
	uint64_t v;

	atomic_fetch_sub_explicit(&app->wait->waiters, 1, memory_order_relaxed);
	/*
	 * All our sleeping threads poll the one wake fd, and a write wakes
	 * them all; a thread that drained it while another was still on its
	 * way out of ppoll took that one's wake-up (the other re-checked the
	 * fd, found it empty and slept on: a thread blocked in accept() on an
	 * INADDR_ANY listener, which sleeps here too, made an epoll thread
	 * of the same process wait out its 100 ms slices).  So only the last
	 * of our sleepers drains it; if another armed meanwhile, the drain
	 * may have eaten a write meant for it, so it gets one back.
	 */
	if (atomic_fetch_sub_explicit(&app->sleepers, 1, memory_order_acq_rel) != 1)
		return 0;
	while (read(app->wake_fd, &v, sizeof(v)) == sizeof(v))
		;
	if (atomic_load_explicit(&app->sleepers, memory_order_acquire) != 0) {
		v = 1;
		if (write(app->wake_fd, &v, sizeof(v)) < 0) {
			/* full counter: it is readable anyway */
		}
	}
	return 0;
}
