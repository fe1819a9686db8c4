/*
 * The wake-up fds between the back-end and its applications, from one
 * thread that is both the stack core (isod_backend_poll, set_napping)
 * and hand-made applications speaking the control protocol: no timing,
 * every step is a call whose effect is checked next.
 *
 *   - a wake fd that is not an eventfd (pipe, socket, file) is refused
 *     at ATTACH with -EBADF, and the back-end keeps serving others;
 *   - a full eventfd (counter at its maximum, blocking mode) cannot
 *     block the stack core when it wakes the application;
 *   - each application rings a doorbell fd of its own: one that reads
 *     (drains) the fd it was given does not swallow another's wake-up.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "lwip/init.h"

#include "backend.h"
#include "isoshm.h"
#include "isotcp.h"
#include "isostack/ctl_proto.h"

/* Passes of the back-end a reply may take: it answers within one or two. */
#define PASSES 1000

u32_t sys_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (u32_t)(ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

static struct isod_backend *be;
static char ctl_path[108];

struct app {
	int ctl;
	int wake;                /* ours, sent with ATTACH */
	int doorbell;            /* the stack's fd we write while it naps */
	struct isoshm_app *shm;
	struct isostack_shm_wait *wait;
};

/* Runs the back-end until fd is readable (or PASSES passes). */
static bool serve_until_readable(int fd)
{
	for (int i = 0; i < PASSES; i++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		isod_backend_poll(be, 64);
		if (poll(&p, 1, 0) > 0)
			return true;
	}
	return false;
}

/* Sends ATTACH with wake_fd; returns the reply's status (fds in *a). */
static int attach(struct app *a, int wake_fd)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct isostack_ctl_attach req = {
		.hdr = { ISOSTACK_CTL_MAGIC, ISOSTACK_CTL_VERSION, ISOSTACK_CTL_ATTACH,
			 sizeof(req), 0 },
		.pid = (uint32_t)getpid(), .abi_version = ISOSTACK_SHM_ABI_VERSION,
		.features = ISOSTACK_SHM_FEATURES,
	};
	struct isostack_ctl_attach_reply rep;
	int fds[2] = { -1, -1 };
	unsigned n;

	memset(a, 0, sizeof(*a));
	a->wake = wake_fd;
	a->doorbell = -1;
	strcpy(sun.sun_path, ctl_path);
	a->ctl = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	assert_true(a->ctl >= 0);
	assert_int_equal(connect(a->ctl, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(isoshm_send_fds(a->ctl, &req, sizeof(req), &wake_fd, 1, 0), 0);
	assert_true(serve_until_readable(a->ctl));
	assert_int_equal(isoshm_recv_fds(a->ctl, &rep, sizeof(rep), fds, 2, &n, 0),
			 (ssize_t)sizeof(rep));
	assert_int_equal(rep.hdr.type, ISOSTACK_CTL_ATTACH_REPLY);
	if (rep.status < 0) {
		assert_int_equal(n, 0);
		return rep.status;
	}
	assert_int_equal(n, 2);
	assert_int_equal(isoshm_app_attach(&a->shm, fds[0], NULL), 0);
	a->doorbell = fds[1];
	a->wait = (struct isostack_shm_wait *)((uint8_t *)isoshm_app_base(a->shm) +
					       isoshm_app_header(a->shm)->wait_off);
	return 0;
}

static void detach(struct app *a)
{
	if (a->shm != NULL)
		isoshm_app_detach(a->shm);
	if (a->doorbell >= 0)
		close(a->doorbell);
	close(a->ctl);
	close(a->wake);
	/* the back-end sees the hang-up and drops the application */
	for (int i = 0; i < PASSES && isod_backend_apps(be) > 0; i++)
		isod_backend_poll(be, 64);
}

/* A NOP on the control slot: posted now, its status read later. */
static void post_nop(struct app *a, uint64_t cookie)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_NOP, .sock = 0, .cookie = cookie };

	assert_int_equal(isoshm_app_submit(a->shm, 0, &c, 1), 1);
}

static bool nop_done(struct app *a, uint64_t cookie)
{
	struct isostack_shm_status st;

	if (isoshm_app_recv_status(a->shm, 0, &st, 1) != 1)
		return false;
	assert_int_equal(st.cookie, cookie);
	assert_int_equal(st.result, 0);
	return true;
}

/* Runs the back-end until the NOP's status is there. */
static bool serve_nop(struct app *a, uint64_t cookie)
{
	for (int i = 0; i < PASSES; i++) {
		isod_backend_poll(be, 64);
		if (nop_done(a, cookie))
			return true;
	}
	return false;
}

static struct isod_backend_stats stats(void)
{
	struct isod_backend_stats s;

	isod_backend_get_stats(be, &s);
	return s;
}

/* ---- Wake fds that are not eventfds ---------------------------------------- */

static void not_an_eventfd_refused(void **state)
{
	struct app a, ok;
	int p[2], sv[2], file;
	uint64_t bad0 = stats().bad_wake_fds, rej0 = stats().apps_rejected;
	char c;

	(void)state;
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(attach(&a, p[1]), -EBADF);
	/* the daemon closed the connection after its reply */
	assert_true(serve_until_readable(a.ctl));
	assert_int_equal(recv(a.ctl, &c, 1, MSG_DONTWAIT), 0);
	detach(&a);
	close(p[0]);

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(attach(&a, sv[0]), -EBADF);
	detach(&a);
	close(sv[1]);
	file = memfd_create("not-an-eventfd", MFD_CLOEXEC);
	assert_true(file >= 0);
	assert_int_equal(attach(&a, file), -EBADF);
	detach(&a);
	assert_int_equal(isod_backend_apps(be), 0);
	assert_int_equal(stats().bad_wake_fds, bad0 + 3);
	assert_int_equal(stats().apps_rejected, rej0 + 3);

	/* and it serves the next application as before */
	assert_int_equal(attach(&ok, eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)), 0);
	assert_int_equal(isod_backend_apps(be), 1);
	post_nop(&ok, 42);
	assert_true(serve_nop(&ok, 42));
	detach(&ok);
	assert_int_equal(isod_backend_apps(be), 0);
}

/* ---- A full eventfd ------------------------------------------------------------ */

static volatile sig_atomic_t alarm_fired;

static void on_alarm(int sig)
{
	(void)sig;
	alarm_fired = 1;
}

static void full_eventfd_does_not_block(void **state)
{
	struct sigaction sa = { .sa_handler = on_alarm }, old;   /* no SA_RESTART */
	struct app a;
	uint64_t full = UINT64_MAX - 1, kicks0;
	bool done;

	(void)state;
	/* blocking mode, as a careless or hostile application may pass it */
	assert_int_equal(attach(&a, eventfd(0, EFD_CLOEXEC)), 0);
	assert_int_equal(write(a.wake, &full, sizeof(full)), sizeof(full));
	/* a thread of ours sleeps in a mixed wait, for any socket */
	atomic_store(&a.wait->waiters, 1);
	atomic_store(&a.wait->wake_any, 1);
	kicks0 = stats().app_kicks;
	post_nop(&a, 7);
	/* If the back-end's write blocks, only this alarm gets it out
	 * (EINTR): the test then fails instead of hanging. */
	alarm_fired = 0;
	assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
	alarm(3);
	done = serve_nop(&a, 7);
	alarm(0);
	sigaction(SIGALRM, &old, NULL);
	if (alarm_fired)
		fail_msg("the stack core blocked in write() on a full wake fd");
	assert_true(done);
	/* the write found the counter full (EAGAIN): not counted */
	assert_int_equal(stats().app_kicks, kicks0);
	atomic_store(&a.wait->waiters, 0);
	detach(&a);
}

/* ---- One doorbell fd per application ------------------------------------------ */

static bool readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) > 0;
}

static void drainer_swallows_nothing(void **state)
{
	struct app drainer, other;
	uint64_t one = 1, v;

	(void)state;
	assert_int_equal(attach(&drainer, eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)), 0);
	assert_int_equal(attach(&other, eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)), 0);
	/* The stack core goes to sleep: nothing is waiting. */
	assert_int_equal(isod_backend_set_napping(be, true), 0);
	assert_false(readable(isod_backend_wake_fd(be)));
	assert_int_equal(atomic_load(&other.wait->stack_napping), 1);
	/* The other application posts a command and, seeing the stack
	 * napping, rings its doorbell fd (as the shim's kick_stack does). */
	post_nop(&other, 9);
	assert_int_equal(write(other.doorbell, &one, sizeof(one)), sizeof(one));
	/* The drainer reads the fd it was given, as often as it likes. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(read(drainer.doorbell, &v, sizeof(v)), -1);
	assert_int_equal(errno, EAGAIN);
	/* What the stack core sleeps on still says "wake up". */
	assert_true(readable(isod_backend_wake_fd(be)));
	isod_backend_set_napping(be, false);
	assert_true(serve_nop(&other, 9));
	/* The next nap starts with the doorbells drained. */
	assert_int_equal(isod_backend_set_napping(be, true), 0);
	assert_false(readable(isod_backend_wake_fd(be)));
	isod_backend_set_napping(be, false);
	detach(&drainer);
	detach(&other);
}

/* ---- Group ------------------------------------------------------------------- */

static int group_setup(void **state)
{
	struct isod_backend_conf conf;
	int rc;

	(void)state;
	isotcp_owner_claim();
	lwip_init();
	snprintf(ctl_path, sizeof(ctl_path), "/tmp/isobe-wakefd-%d.sock", (int)getpid());
	isod_backend_conf_default(&conf);
	conf.control_path = ctl_path;
	conf.shm.max_sockets = 4;
	conf.shm.arena_size = UINT64_C(8) << 20;
	conf.shm.hugetlb = false;
	conf.ctl_interval_ms = 0;
	rc = isod_backend_init(&be, &conf);
	if (rc < 0)
		print_error("back-end: %s\n", strerror(-rc));
	return rc;
}

static int group_teardown(void **state)
{
	(void)state;
	isod_backend_fini(be);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(not_an_eventfd_refused),
		cmocka_unit_test(full_eventfd_does_not_block),
		cmocka_unit_test(drainer_swallows_nothing),
	};

	return cmocka_run_group_tests_name("wakefd", tests, group_setup, group_teardown);
}
