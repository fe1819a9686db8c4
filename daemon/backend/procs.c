/*
 * The processes of an application, and the sockets that close when one
 * dies.  An application's processes (fork and spawn children share its
 * attachment) each have an entry in its member table, and each socket a
 * set of the entries that hold it; both are in the base segment, written
 * by the application (shm_abi.h, struct isostack_shm_member and
 * isostack_shm_holders).  We learn each process's pid and entry from the
 * control socket (ATTACH: entry 0; CTL_WAKEFD: the others) and watch it
 * with a pidfd, all of them in one epoll set that the control-socket poll
 * includes (backend.c, ctl_poll): so a death is seen within
 * ctl_interval_ms, without a syscall per process per pass.
 *
 * On a death we do what the kernel does when a process dies: the
 * sockets it held that no living process holds any more are closed
 * (isod_sk_close_by_stack: FIN after the unsent data, or RST).  Before,
 * they waited for a surviving process to call into the shim, which a
 * parent idle in read() on a pipe never does.  Cost: O(ids used by that
 * application) per pass with deaths, nothing otherwise.
 *
 * Everything read from the segment is a hint: a lie can only close the
 * application's own sockets early or keep them open.  Who counts as
 * alive, for entry k with pid p in the table:
 *   - a watched, living process registered as k (a fork child past the
 *     1,024 entries shares its parent's): alive;
 *   - p < 0 (a fork or spawn under way): alive;
 *   - p == 0 (free: the holder exited and its bit is stale): dead;
 *   - p > 0: dead only if we saw that very process die (same pid, same
 *     start time: a reused pid is another process); a process we never
 *     heard of (a spawned child without the shim) is taken for alive.
 * And a socket is looked at only if a process that just died held it,
 * so a socket whose holder set the application has not written yet (a
 * SOCKET reply still in flight) is never closed by mistake.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

static int pidfd_open(int32_t pid)
{
	return (int)syscall(SYS_pidfd_open, (pid_t)pid, 0u);
}

static bool pidfd_exited(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) > 0;
}

/* A member died (or was found dead): remembered until the next look. */
static void proc_died(struct isod_proc *pr)
{
	struct isod_app *app = pr->app;

	if (pr->pidfd >= 0) {
		close(pr->pidfd);        /* also leaves the epoll set */
		pr->pidfd = -1;
		app->be->nwatched--;
	}
	app->died[pr->member / 64] |= UINT64_C(1) << (pr->member % 64);
	app->deaths = true;
	app->be->st.procs_died++;
}

/* Whether dead entry pr is the process the member table names now. */
static bool names(const struct isod_app *app, const struct isod_proc *pr)
{
	const struct isostack_shm_member *m = &app->shared_members[pr->member];
	/* Acquire: pairs with the application's store-release of pid,
	 * after start (libisosock/core_members.c, member_set). */
	int32_t pid = atomic_load_explicit(&m->pid, memory_order_acquire);
	uint64_t start = atomic_load_explicit(&m->start, memory_order_relaxed);

	return pid == pr->pid && (pr->start == 0 || start == 0 || start == pr->start);
}

/* Drops dead entries the member table no longer names (the application
 * swept them itself, or gave the entry to another process). */
static void procs_gc(struct isod_app *app)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < app->nprocs; i++) {
		struct isod_proc *pr = &app->procs[i];

		if (pr->pidfd < 0 && pr->pid != 0 && !names(app, pr))
			pr->pid = 0;
		if (pr->pid != 0)
			n = i + 1;
	}
	app->nprocs = n;
}

static struct isod_proc *proc_slot(struct isod_app *app)
{
	if (app->procs == NULL) {
		/* calloc'd: a large one is mapped zero pages, touched on use */
		app->procs = calloc(ISOD_MAX_PROCS, sizeof(*app->procs));
		if (app->procs == NULL)
			return NULL;
	}
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t i = 0; i < app->nprocs; i++)
			if (app->procs[i].pid == 0)
				return &app->procs[i];
		if (app->nprocs < ISOD_MAX_PROCS)
			return &app->procs[app->nprocs++];
		procs_gc(app);
	}
	return NULL;
}

void isod_procs_watch(struct isod_app *app, int32_t pid, uint32_t member)
{
	struct isod_backend *be = app->be;
	struct isod_proc *pr;
	struct epoll_event ev = { .events = EPOLLIN };

	if (pid <= 0 || member >= ISOSTACK_SHM_MEMBERS)
		return;
	for (uint32_t i = 0; i < app->nprocs; i++)
		if (app->procs[i].pid == pid && app->procs[i].member == member &&
		    app->procs[i].pidfd >= 0)
			return;              /* told twice */
	pr = proc_slot(app);
	if (pr == NULL)
		return;
	*pr = (struct isod_proc){ .app = app, .pidfd = pidfd_open(pid), .pid = pid,
				  .member = member };
	if (pr->pidfd < 0) {
		if (errno == ESRCH)
			proc_died(pr);   /* gone before we looked */
		else
			pr->pid = 0;     /* cannot watch: taken for alive */
		return;
	}
	pr->start = isoshm_proc_start(pid);
	be->nwatched++;
	be->st.procs_watched++;
	/* The pidfd is the process that had the pid when we opened it; if
	 * the one that wrote to us died and the pid was reused before, its
	 * start time (the application wrote it before CTL_WAKEFD) tells. */
	if (member != 0) {
		const struct isostack_shm_member *m = &app->shared_members[member];
		uint64_t start = atomic_load_explicit(&m->start, memory_order_relaxed);

		if (atomic_load_explicit(&m->pid, memory_order_acquire) == pid && start != 0 &&
		    pr->start != 0 && start != pr->start) {
			pr->start = start;
			proc_died(pr);
			return;
		}
	}
	ev.data.ptr = pr;
	if (pidfd_exited(pr->pidfd) || epoll_ctl(be->proc_ep, EPOLL_CTL_ADD, pr->pidfd, &ev) < 0)
		proc_died(pr);
}

void isod_procs_fini(struct isod_app *app)
{
	for (uint32_t i = 0; i < app->nprocs; i++) {
		if (app->procs[i].pidfd >= 0) {
			close(app->procs[i].pidfd);
			app->be->nwatched--;
		}
	}
	app->nprocs = 0;
}

/* Members that count as alive now (see the top of the file). */
static void alive_set(const struct isod_app *app, uint64_t alive[ISOD_MSET_WORDS])
{
	uint64_t live[ISOD_MSET_WORDS] = { 0 }, dead[ISOD_MSET_WORDS] = { 0 };

	for (uint32_t i = 0; i < app->nprocs; i++) {
		const struct isod_proc *pr = &app->procs[i];
		uint64_t bit = UINT64_C(1) << (pr->member % 64);

		if (pr->pidfd >= 0)
			live[pr->member / 64] |= bit;
		else if (pr->pid != 0 && names(app, pr))
			dead[pr->member / 64] |= bit;
	}
	for (uint32_t k = 0; k < ISOSTACK_SHM_MEMBERS; k++) {
		int32_t pid = atomic_load_explicit(&app->shared_members[k].pid,
						   memory_order_relaxed);
		uint64_t bit = UINT64_C(1) << (k % 64);
		bool ok = (live[k / 64] & bit) || pid < 0 || (pid > 0 && !(dead[k / 64] & bit));

		if (ok)
			alive[k / 64] |= bit;
	}
}

/* The sockets a process that just died held and no living one holds. */
static unsigned close_orphans(struct isod_app *app)
{
	uint64_t alive[ISOD_MSET_WORDS] = { 0 }, died[ISOD_MSET_WORDS];
	unsigned n = 0;

	memcpy(died, app->died, sizeof(died));
	memset(app->died, 0, sizeof(app->died));
	app->deaths = false;
	alive_set(app, alive);
	for (uint32_t id = 1; id < app->hiwat; id++) {
		struct isod_sock *sk = &app->socks[id];
		const struct isostack_shm_holders *h = &app->shared_holders[id];
		bool hit = false, held = false;

		if (!sk->in_use || sk->quarantined || sk->close_pending ||
		    sk->state == ISOD_S_CHILD || sk->state == ISOD_S_FREE)
			continue;
		for (unsigned k = 0; k < ISOD_MSET_WORDS && !held; k++) {
			/* Relaxed: a hint the application writes under its own
			 * lock; a torn view only errs on one socket of its own. */
			uint64_t w = atomic_load_explicit(&h->w[k], memory_order_relaxed);

			hit |= (w & died[k]) != 0;
			held |= (w & alive[k]) != 0;
		}
		if (hit && !held) {
			isod_sk_close_by_stack(sk);
			n++;
		}
	}
	procs_gc(app);
	return n;
}

unsigned isod_procs_poll(struct isod_backend *be, bool ready)
{
	struct epoll_event ev[64];
	unsigned work = 0;
	int n;

	while (ready && (n = epoll_wait(be->proc_ep, ev, 64, 0)) > 0) {
		for (int i = 0; i < n; i++)
			proc_died(ev[i].data.ptr);
		work += (unsigned)n;
		if (n < 64)
			break;
	}
	for (struct isod_app *a = be->apps; a != NULL; a = a->next)
		if (a->deaths && !a->dead)
			work += close_orphans(a);
	return work;
}
