/*
 * The processes of one attachment (members) and the sockets they hold.
 *
 * fork(): all of that state lives in memory the processes of the
 * application share (struct fshared, a memfd mapped MAP_SHARED at attach,
 * so fork children see the same pages and an exec'd image can map it
 * again), and the per-socket mutexes are process-shared and robust.  Every
 * process may then drive every socket it holds, as with the kernel.  A
 * socket is held by a set of member processes (its holder set, a bit
 * per entry of the member table, up to 1024; both in the base segment,
 * where the stack reads them when a member dies): fork adds the child to every socket the
 * parent holds, close() removes the caller, and the stack is told CLOSE
 * only when the last holder lets go.  A member that dies without closing
 * (exit runs isosock_app_exit; _exit and signals do not) is swept by the
 * survivors (isosock__sweep(), from their waits) as if it had closed
 * everything.
 *
 * Also here: exec (the description an exec'd or spawned image adopts),
 * fork and spawn bookkeeping, the sweep of dead members, and close()
 * (a socket closes when its last holder lets go).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core_internal.h"

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

static bool member_alive(const struct member *m)
{
	int32_t pid = atomic_load_explicit(&m->pid, memory_order_acquire);

	if (pid == 0)
		return false;
	if (pid < 0)
		return true;           /* a fork under way */
	return isoshm_proc_start(pid) == atomic_load_explicit(&m->start, memory_order_relaxed);
}

/* Under sh->mlock: entry i is process pid (start time `start`).  The
 * stack reads the pair when a process dies (shm_abi.h): the release
 * orders start before pid. */
static void member_set(struct isosock_app *app, int i, int32_t pid, uint64_t start)
{
	atomic_store_explicit(&app->members[i].start, start, memory_order_relaxed);
	atomic_store_explicit(&app->members[i].pid, pid, memory_order_release);
}

/* Under sh->mlock: a free member entry (dead ones are reused after
 * isosock__sweep() cleared their bits), or -1. */
static int member_claim(struct isosock_app *app, int32_t pid)
{
	for (int i = 0; i < MAX_MEMBERS; i++) {
		if (atomic_load_explicit(&app->members[i].pid, memory_order_relaxed) != 0)
			continue;
		member_set(app, i, pid, pid > 0 ? isoshm_proc_start(pid) : 0);
		atomic_fetch_add_explicit(&app->sh->nmembers, 1, memory_order_relaxed);
		return i;
	}
	return -1;
}

static void member_free(struct isosock_app *app, int i)
{
	atomic_store_explicit(&app->members[i].pid, 0, memory_order_release);
	atomic_fetch_sub_explicit(&app->sh->nmembers, 1, memory_order_relaxed);
}

static size_t fshared_size(uint32_t nsocks)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t n = sizeof(struct fshared) + (size_t)nsocks * sizeof(struct fsock) +
		   ((size_t)nsocks + 63) / 64 * sizeof(uint64_t);    /* closing[] */

	return (n + pg - 1) & ~(pg - 1);
}

/* The shared part of a new attachment, with this process as member 0. */
int isosock__fshared_create(struct isosock_app *app, uint32_t nsocks)
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
	/* At a placed address: an exec'd image maps it again there. */
	{
		void *at = isoshm_app_place(size);

		sh = mmap(at, size, PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_NORESERVE | MAP_FIXED_NOREPLACE, fd, 0);
		if (sh != MAP_FAILED && sh != at) {
			munmap(sh, size);
			sh = MAP_FAILED;
		}
		if (sh == MAP_FAILED)
			sh = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
				  fd, 0);
	}
	if (sh == MAP_FAILED) {
		close(fd);
		return -ENOMEM;
	}
	mutex_init_shared(&sh->mlock);
	mutex_init_shared(&sh->ctl_lock);
	sh->nsocks = nsocks;
	mutex_init_shared(&sh->fs[0].lock);
	atomic_store_explicit(&sh->hiwat, 1, memory_order_release);
	app->sh = sh;
	app->sh_fd = fd;
	app->sh_size = size;
	app->fs = sh->fs;
	app->me = member_claim(app, getpid());
	return 0;
}

int isosock__fs_prepare(struct isosock_app *app, int s)
{
	struct fshared *sh = app->sh;

	if (s <= 0 || (uint32_t)s >= app->nsocks)
		return -EPROTO;
	if ((uint32_t)s >= isosock__hiwat(app)) {
		robust_lock(&sh->mlock);
		for (uint32_t i = atomic_load_explicit(&sh->hiwat, memory_order_relaxed);
		     i <= (uint32_t)s; i++)
			mutex_init_shared(&sh->fs[i].lock);
		if ((uint32_t)s >= atomic_load_explicit(&sh->hiwat, memory_order_relaxed))
			atomic_store_explicit(&sh->hiwat, (uint32_t)s + 1, memory_order_release);
		pthread_mutex_unlock(&sh->mlock);
	}
	return isoshm_app_sock_open(app->shm, (uint32_t)s);
}

/* ---- Holders and close ------------------------------------------------------ */

/* Under f->lock: the last holder let go; tell the stack. */
static void close_locked(struct isosock_app *app, int s, struct fsock *f)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_CLOSE };
	struct isostack_shm_cmd l = { .opcode = ISOSTACK_SHM_OP_SETSOCKOPT };

	isosock__drain(app, s, f);
	if (f->stack_closed) {
		/* The stack closed it already (EV_CLOSED, which carried the
		 * final rx_prod): the id may be another socket's soon, so no
		 * CLOSE; reaped as if its reply had come. */
		f->state = F_CLOSING;
		isosock__closing_mark(app, s, true);
		f->closed_reply = true;
		return;
	}
	if (f->state == F_CONNECTED && f->tx_since_send > 0) {
		f->cork = false;
		(void)isosock__maybe_post_send(app, s, f, false);
	}
	if (f->linger0) {
		/* fire and forget: its reply is drained with the slot */
		l.arg[0] = SOL_SOCKET;
		l.arg[1] = SO_LINGER;
		l.arg[2] = sizeof(struct linger);
		memcpy(&l.arg[3], &f->linger, sizeof(f->linger));
		(void)isosock__post(app, s, &l);
	}
	/* Replies to commands still in flight on this slot come before the
	 * CLOSE reply; reaping drains them. */
	f->state = F_CLOSING;
	isosock__closing_mark(app, s, true);
	f->closed_reply = false;
	c.cookie = UINT64_MAX;
	if (isosock__post(app, s, &c) < 0) {
		f->state = F_FREE;   /* no daemon: nothing to reclaim */
		isosock__closing_mark(app, s, false);
	}
}

/* Under f->lock: drops the members in `gone` from the socket's holders,
 * closing it if no live holder is left.  Dead holders met on the way go
 * too; the search stops at the first live one (the sweep clears the rest),
 * so a close among hundreds of forked holders reads one /proc entry. */
static void release_locked(struct isosock_app *app, int s, struct fsock *f,
			   const struct mset *gone)
{
	struct mset *h = fs_holders(app, s);

	if (f->state == F_FREE || f->state == F_CLOSING)
		return;
	for (int k = 0; k < MSET_WORDS; k++)
		if (h->w[k] & gone->w[k])
			__atomic_store_n(&h->w[k], h->w[k] & ~gone->w[k], __ATOMIC_RELAXED);
	for (int i = 0; i < MAX_MEMBERS; i++) {
		if (h->w[i / 64] == 0) {
			i |= 63;          /* the next word */
			continue;
		}
		if (!mset_has(h, i))
			continue;
		if (member_alive(&app->members[i]))
			return;
		mset_del(h, i);
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
	    !mset_has(fs_holders(app, s), app->me)) {
		fs_unlock(f);
		return -EBADF;
	}
	release_one(app, s, f, app->me);
	fs_unlock(f);
	return 0;
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
	return isosock__twake_private(app, fd);
}

/* Above the numbers programs dup2 onto by hand (0-2, a few fixed ones). */
#define PRIVATE_FD_MIN 256

static int move_fd(int fd)
{
	int fl = fcntl(fd, F_GETFD);
	int cmd = fl >= 0 && (fl & FD_CLOEXEC) ? F_DUPFD_CLOEXEC : F_DUPFD;
	int nfd = fcntl(fd, cmd, PRIVATE_FD_MIN);

	if (nfd < 0 && errno == EINVAL)         /* RLIMIT_NOFILE below it */
		nfd = fcntl(fd, cmd, 0);
	return nfd < 0 ? -errno : nfd;
}

int isosock_app_private_move(struct isosock_app *app, int fd)
{
	int seg, view, nfd;

	if (!isosock_app_private_fd(app, fd))
		return 0;
	nfd = move_fd(fd);
	if (nfd < 0)
		return nfd;
	/* Plain stores: a thread of ours using the number right now may
	 * still reach the old one, which stays our file until the dup2. */
	if (app->ctl_fd == fd)
		app->ctl_fd = nfd;
	if (app->wake_fd == fd)
		app->wake_fd = nfd;
	if (app->stack_wake_fd == fd)
		app->stack_wake_fd = nfd;
	if (app->sh_fd == fd)
		app->sh_fd = nfd;
	isosock__twake_moved(app, fd, nfd);
	isoshm_app_fds(app->shm, &seg, &view);
	if (seg == fd || view == fd)
		isoshm_app_fd_moved(app->shm, fd, nfd);
	return 0;
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
	isosock__twake_init(app);
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
	isosock__bind_shm(app);
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
		robust_lock(&app->sh->mlock);
		member_set(app, me, (int32_t)getpid(), isoshm_proc_start(getpid()));
		pthread_mutex_unlock(&app->sh->mlock);
		isosock__own_wake_fd(app, me);
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

/* ---- fork and exit -------------------------------------------------------------- */

int isosock_app_fork_prepare(struct isosock_app *app)
{
	static atomic_bool said;
	int k;

	robust_lock(&app->sh->mlock);
	k = member_claim(app, -1);
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
	for (uint32_t i = 1, n = isosock__hiwat(app); i < n; i++) {
		struct fsock *f = &app->fs[i];

		struct mset *h = fs_holders(app, (int)i);

		if (!mset_has_relaxed(h, app->me))
			continue;
		fs_lock(f);
		if (mset_has(h, app->me))
			mset_add(h, k);
		fs_unlock(f);
	}
	return k;
}

void isosock_app_fork_parent(struct isosock_app *app, int child, bool failed)
{
	if (!failed || child == app->me)
		return;
	for (uint32_t i = 1, n = isosock__hiwat(app); i < n; i++) {
		struct fsock *f = &app->fs[i];

		struct mset *h = fs_holders(app, (int)i);

		if (!mset_has_relaxed(h, child))
			continue;
		fs_lock(f);
		mset_del(h, child);
		fs_unlock(f);
	}
	robust_lock(&app->sh->mlock);
	member_free(app, child);
	pthread_mutex_unlock(&app->sh->mlock);
}

void isosock_app_fork_child(struct isosock_app *app, int child)
{
	if (app->marks != NULL)     /* the parent's sleepers are not ours */
		memset((void *)app->marks, 0, isosock__hiwat(app) * sizeof(app->marks[0]));
	atomic_store_explicit(&app->sleepers, 0, memory_order_relaxed);
	isosock__sleep_any_reset();
	isosock__twake_fork_child(app);
	if (child != app->me) {
		app->me = child;
		app->next_sweep = 0;
		/* Before CTL_WAKEFD: the stack, told of our pid there,
		 * checks it against this entry. */
		member_set(app, child, (int32_t)getpid(), isoshm_proc_start(getpid()));
	}
	isosock__own_wake_fd(app, child);
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
		k = member_claim(app, *mark);
		pthread_mutex_unlock(&app->sh->mlock);
		if (k >= 0 || tries > 0)
			break;
		/* Full: children that never loaded us (and so never freed
		 * their entry at exit) may be gone; look now, not at the next
		 * rate-limited sweep. */
		app->next_sweep = 0;
		isosock__sweep(app);
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
	    mset_has(fs_holders(app, s), app->me))
		mset_add(fs_holders(app, s), k);
	fs_unlock(f);
}

void isosock_app_spawn_done(struct isosock_app *app, int k, int32_t mark, pid_t pid)
{
	struct member *m = &app->members[k];
	uint64_t start = pid > 0 ? isoshm_proc_start(pid) : 0;
	bool drop;

	robust_lock(&app->sh->mlock);
	drop = atomic_load_explicit(&m->pid, memory_order_relaxed) == mark;
	if (drop && start != 0) {
		member_set(app, k, (int32_t)pid, start);
		drop = false;
	}
	pthread_mutex_unlock(&app->sh->mlock);
	if (!drop)
		return;
	/* Nobody took it (spawn failed, the child is gone already, or it
	 * never loaded us): its sockets are let go as if it had closed them;
	 * the entry stays reserved until then, so no sweep or claim races. */
	for (uint32_t i = 1, n = isosock__hiwat(app); i < n; i++) {
		struct fsock *f = &app->fs[i];

		if (!mset_has_relaxed(fs_holders(app, (int)i), k))
			continue;
		fs_lock(f);
		if (mset_has(fs_holders(app, (int)i), k))
			release_one(app, (int)i, f, k);
		fs_unlock(f);
	}
	robust_lock(&app->sh->mlock);
	member_free(app, k);
	pthread_mutex_unlock(&app->sh->mlock);
}

/*
 * Members that died without closing (killed, _exit) are dropped from
 * every socket they held; sockets nobody holds any more are closed, and
 * reply slots their threads waited on are given back.  Rate-limited; a
 * no-op while this process is the only member.
 */
void isosock__sweep(struct isosock_app *app)
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
		struct member *m = &app->members[i];

		if (i == app->me || atomic_load_explicit(&m->pid, memory_order_relaxed) == 0 ||
		    member_alive(m))
			continue;
		mset_add(&gone, i);
		any = true;
		member_free(app, i);
	}
	pthread_mutex_unlock(&app->sh->mlock);
	if (!any)
		return;
	for (uint32_t i = 1, n = isosock__hiwat(app); i < n; i++) {
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
		if (mset_meets(fs_holders(app, (int)i), &gone))
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
	isosock__sweep(app);
}

/*
 * Lets go of every socket this process holds whose slot keep[] does not
 * mark (keep may be NULL).  `wait` false: a socket whose lock is taken is
 * skipped (at exit a thread of ours may sit in a call on it; the
 * survivors' sweep releases what we leave).
 */
static void release_mine(struct isosock_app *app, const bool *keep, bool wait)
{
	for (uint32_t i = 1, n = isosock__hiwat(app); i < n; i++) {
		struct fsock *f = &app->fs[i];

		if ((keep != NULL && keep[i]) || !mset_has_relaxed(fs_holders(app, (int)i), app->me))
			continue;
		if (wait)
			fs_lock(f);
		else if (fs_trylock(f) != 0)
			continue;
		if (mset_has(fs_holders(app, (int)i), app->me))
			release_one(app, (int)i, f, app->me);
		fs_unlock(f);
	}
}

void isosock_app_exit(struct isosock_app *app)
{
	release_mine(app, NULL, false);
	robust_lock(&app->sh->mlock);
	member_free(app, app->me);
	pthread_mutex_unlock(&app->sh->mlock);
}
