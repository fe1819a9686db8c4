/*
 * Thread wake fds: a wake fd of its own for every thread of a process but
 * its first one.
 *
 * A process sleeps in mixed waits (poll, epoll, select, an INADDR_ANY
 * accept) on its wake fd, which the stack writes when it posts to a
 * socket carrying the process's bit in its wake_mask.  With one fd per
 * process, every kick woke every sleeping thread of it, and since only
 * the last of them drains the fd (core_wait.c, isosock_wait_disarm) it
 * stayed readable while another thread slept: memcached's listener
 * thread went round its epoll_wait without sleeping, at a fifth of the
 * application core, while its worker served the requests.
 *
 * So a thread other than the process's first (whose tid is the pid) gets
 * an eventfd of its own the first time it sleeps that way, and a wake_mask
 * bit of its own from TWAKE_BIT_MIN..62, unique in the application (the
 * bitmap and its holders are in struct fshared, shared by the
 * application's processes).  It tells the daemon with CTL_WAKEFD (member
 * = bit | ISOSTACK_CTL_WAKEFD_THREAD), marks the sockets it sleeps for with
 * its bit, sleeps on its fd and alone drains it.  A bit whose thread is
 * gone is taken over by the next thread that needs one (the daemon
 * replaces the fd registered under the same pid and bit).  Only the
 * newest attachment a thread sleeps on gets one; with none free, or if
 * the registration cannot be sent, the thread shares the process's fd as
 * before.
 */
#include <errno.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core_internal.h"
#include "isostack/ctl_proto.h"

#define TWAKE_BIT_MIN 32
#define TWAKE_BIT_MAX 62        /* 63 stands for every process past the 63rd */

/* This thread's bit and the attachment it is for (none: serial 0). */
static __thread struct {
	uint64_t serial;
	int bit;                /* -1: this thread uses the process's fd */
} tw ISOSTACK_TLS;

static _Atomic uint64_t serials;

void isosock__twake_init(struct isosock_app *app)
{
	app->serial = atomic_fetch_add_explicit(&serials, 1, memory_order_relaxed) + 1;
	for (int i = 0; i < 64; i++)
		app->thread_fd[i] = -1;
}

static bool thread_gone(int32_t pid, int32_t tid)
{
	return pid <= 0 || tid <= 0 || (syscall(SYS_tgkill, pid, tid, 0) != 0 && errno == ESRCH);
}

/* A free bit, or one whose thread is gone; -1 if none. */
static int bit_take(struct isosock_app *app, int32_t pid, int32_t tid)
{
	struct fshared *sh = app->sh;

	for (int b = TWAKE_BIT_MIN; b <= TWAKE_BIT_MAX; b++) {
		uint64_t m = UINT64_C(1) << b;
		int32_t ht;

		if (!(atomic_fetch_or_explicit(&sh->thread_bits, m, memory_order_acq_rel) & m)) {
			atomic_store_explicit(&sh->thread_tid[b], tid, memory_order_relaxed);
		} else {
			/* Held: taken over if its thread is gone, with a CAS on
			 * the holder so that two threads that both found it
			 * gone do not both get it. */
			ht = atomic_load_explicit(&sh->thread_tid[b], memory_order_relaxed);
			if (!thread_gone(atomic_load_explicit(&sh->thread_pid[b],
							      memory_order_relaxed), ht) ||
			    !atomic_compare_exchange_strong(&sh->thread_tid[b], &ht, tid))
				continue;
		}
		atomic_store_explicit(&sh->thread_pid[b], pid, memory_order_relaxed);
		return b;
	}
	return -1;
}

static void bit_give(struct isosock_app *app, int b)
{
	atomic_store_explicit(&app->sh->thread_tid[b], 0, memory_order_relaxed);
	atomic_fetch_and_explicit(&app->sh->thread_bits, ~(UINT64_C(1) << b),
				  memory_order_release);
}

/* A bit and a registered eventfd for this thread, or -1. */
static int twake_new(struct isosock_app *app)
{
	int32_t pid = (int32_t)getpid(), tid = (int32_t)gettid();
	int b, fd;

	if (tid == pid)
		return -1;      /* the process's first thread: its fd */
	b = bit_take(app, pid, tid);
	if (b < 0)
		return -1;
	fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	struct isostack_ctl_wakefd w = {
		.hdr = { .magic = ISOSTACK_CTL_MAGIC, .version = ISOSTACK_CTL_VERSION,
			 .type = ISOSTACK_CTL_WAKEFD, .length = sizeof(w) },
		.pid = (uint32_t)pid,
		.member = (uint32_t)b | ISOSTACK_CTL_WAKEFD_THREAD,
	};
	if (fd < 0 || isoshm_send_fd(app->ctl_fd, fd, &w, sizeof(w)) != 0) {
		if (fd >= 0)
			close(fd);
		bit_give(app, b);
		return -1;
	}
	/* A thread of ours that had the bit and is gone left its fd. */
	if (app->thread_fd[b] >= 0)
		close(app->thread_fd[b]);
	app->thread_fd[b] = fd;
	return b;
}

int isosock__twake_bit(struct isosock_app *app)
{
	if (tw.serial == app->serial)
		return tw.bit;
	if (tw.serial > app->serial)
		return -1;      /* an older attachment: we sleep on a newer one */
	tw.serial = app->serial;
	tw.bit = twake_new(app);
	return tw.bit;
}

int isosock__twake_fd(const struct isosock_app *app)
{
	return tw.serial == app->serial && tw.bit >= 0 ? app->thread_fd[tw.bit] : -1;
}

int isosock_app_sleep_fd(struct isosock_app *app)
{
	int b = isosock__twake_bit(app);

	return b >= 0 ? app->thread_fd[b] : app->wake_fd;
}

bool isosock__twake_private(const struct isosock_app *app, int fd)
{
	for (int b = TWAKE_BIT_MIN; b <= TWAKE_BIT_MAX; b++)
		if (fd >= 0 && app->thread_fd[b] == fd)
			return true;
	return false;
}

void isosock__twake_moved(struct isosock_app *app, int fd, int nfd)
{
	for (int b = TWAKE_BIT_MIN; b <= TWAKE_BIT_MAX; b++)
		if (app->thread_fd[b] == fd)
			app->thread_fd[b] = nfd;
}

/* A fork child has one thread, its first: the parent's threads' fds and
 * bits are not its own. */
void isosock__twake_fork_child(struct isosock_app *app)
{
	for (int b = TWAKE_BIT_MIN; b <= TWAKE_BIT_MAX; b++) {
		if (app->thread_fd[b] >= 0)
			close(app->thread_fd[b]);
		app->thread_fd[b] = -1;
	}
	tw.serial = 0;
	tw.bit = -1;
}
