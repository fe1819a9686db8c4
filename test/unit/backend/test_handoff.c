/*
 * The hand-off table's timer (handoff.c): a socket passed with SCM_RIGHTS
 * whose sender closed it waits ISOSTACK_CTL_HANDOFF_TTL_MS for its claim,
 * then its CLOSE runs.  The back-end's pass looks at the table only when
 * the earliest of those deadlines is up, so the passes before it walk
 * nothing (backend.handoff_walks), and each CLOSE still runs at its own
 * deadline, not a millisecond before or after.
 *
 * One thread is the stack core (isod_backend_poll) and a hand-made
 * application speaking the control protocol, as in test_budget.c; the
 * back-end's clock is ours (conf.clock_ms), moved a millisecond a pass.
 * Three listeners are registered for hand-off (CTL_HANDOFF); one is kept
 * by its sender (no deadline), the other two are closed 3 s apart.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
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

#define BUDGET     64
#define PASSES     1000       /* set-up replies: within one or two passes */
#define PORT0      6100
#define SECOND_MS  3000u      /* the second CLOSE, after the first */

u32_t sys_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (u32_t)(ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

static struct isod_backend *be;
static char ctl_path[108];
static uint32_t clock_ms = 1000;   /* the back-end's clock */

struct app {
	int ctl, wake, doorbell;
	struct isoshm_app *shm;
};

static struct isod_backend_stats stats(void)
{
	struct isod_backend_stats s;

	isod_backend_get_stats(be, &s);
	return s;
}

static bool serve_until_readable(int fd)
{
	for (int i = 0; i < PASSES; i++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		isod_backend_poll(be, BUDGET);
		if (poll(&p, 1, 0) > 0)
			return true;
	}
	return false;
}

static void attach(struct app *a)
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
	a->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(a->wake >= 0);
	strcpy(sun.sun_path, ctl_path);
	a->ctl = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	assert_true(a->ctl >= 0);
	assert_int_equal(connect(a->ctl, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(isoshm_send_fds(a->ctl, &req, sizeof(req), &a->wake, 1, 0), 0);
	assert_true(serve_until_readable(a->ctl));
	assert_int_equal(isoshm_recv_fds(a->ctl, &rep, sizeof(rep), fds, 2, &n, 0),
			 (ssize_t)sizeof(rep));
	assert_int_equal(rep.status, 0);
	assert_int_equal(n, 2);
	assert_int_equal(isoshm_app_attach(&a->shm, fds[0], NULL), 0);
	a->doorbell = fds[1];
}

static void detach(struct app *a)
{
	isoshm_app_detach(a->shm);
	close(a->doorbell);
	close(a->ctl);
	close(a->wake);
	for (int i = 0; i < PASSES && isod_backend_apps(be) > 0; i++)
		isod_backend_poll(be, BUDGET);
}

/* Posts c on ring `ring` and returns its reply's result. */
static int64_t call(struct app *a, uint32_t ring, struct isostack_shm_cmd *c)
{
	struct isostack_shm_status st;

	assert_int_equal(isoshm_app_submit(a->shm, ring, c, 1), 1);
	for (int i = 0; i < PASSES; i++) {
		isod_backend_poll(be, BUDGET);
		while (isoshm_app_recv_status(a->shm, ring, &st, 1) == 1)
			if (st.opcode == c->opcode && st.cookie == c->cookie)
				return st.result;
	}
	fail_msg("no reply to opcode %u", c->opcode);
	return 0;
}

/* A TCP listener on 0.0.0.0:port; returns its id. */
static uint32_t listener(struct app *a, uint16_t port)
{
	struct isostack_shm_cmd c = {
		.opcode = ISOSTACK_SHM_OP_SOCKET, .cookie = 1, .arg = { AF_INET, SOCK_STREAM, 0 },
	};
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	int64_t id = call(a, 0, &c);

	assert_true(id > 0);
	c = (struct isostack_shm_cmd){ .opcode = ISOSTACK_SHM_OP_BIND, .sock = (uint32_t)id,
				       .cookie = 2, .arg = { sizeof(sin) } };
	memcpy(&c.arg[1], &sin, sizeof(sin));
	assert_int_equal(call(a, (uint32_t)id, &c), 0);
	c = (struct isostack_shm_cmd){ .opcode = ISOSTACK_SHM_OP_LISTEN, .sock = (uint32_t)id,
				       .cookie = 3, .arg = { 16 } };
	assert_int_equal(call(a, (uint32_t)id, &c), 0);
	return (uint32_t)id;
}

/* CTL_HANDOFF for socket id, with a file of ours as its proof. */
static void hand_off(struct app *a, uint32_t id)
{
	struct isostack_ctl_handoff q = {
		.hdr = { ISOSTACK_CTL_MAGIC, ISOSTACK_CTL_VERSION, ISOSTACK_CTL_HANDOFF,
			 sizeof(q), 0 },
		.sock = id,
	};
	struct isostack_ctl_handoff_reply r;
	int proof = eventfd(0, EFD_CLOEXEC);
	unsigned nfds;

	assert_true(proof >= 0);
	assert_int_equal(isoshm_send_fds(a->ctl, &q, sizeof(q), &proof, 1, 0), 0);
	close(proof);           /* the daemon holds its own copy */
	assert_true(serve_until_readable(a->ctl));
	assert_int_equal(isoshm_recv_fds(a->ctl, &r, sizeof(r), NULL, 0, &nfds, 0),
			 (ssize_t)sizeof(r));
	assert_int_equal(r.hdr.type, ISOSTACK_CTL_HANDOFF_REPLY);
	assert_int_equal(r.status, 0);
}

/* CLOSE on socket id: held while the socket is in flight (no reply yet). */
static void post_close(struct app *a, uint32_t id)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_CLOSE, .sock = id, .cookie = 9 };
	struct isostack_shm_status st;

	assert_int_equal(isoshm_app_submit(a->shm, id, &c, 1), 1);
	isod_backend_poll(be, BUDGET);
	assert_int_equal(isoshm_app_recv_status(a->shm, id, &st, 1), 0);
}

static bool close_answered(struct app *a, uint32_t id)
{
	struct isostack_shm_status st;

	while (isoshm_app_recv_status(a->shm, id, &st, 1) == 1)
		if (st.opcode == ISOSTACK_SHM_OP_CLOSE)
			return true;
	return false;
}

/* One pass a millisecond until `until`: none of them expires or walks. */
static void quiet_until(struct app *a, uint32_t until, const uint32_t *ids, int nids)
{
	struct isod_backend_stats s0 = stats(), s;

	while ((int32_t)(until - clock_ms) > 0) {
		isod_backend_poll(be, BUDGET);
		clock_ms++;
	}
	s = stats();
	assert_int_equal(s.handoff_walks, s0.handoff_walks);
	assert_int_equal(s.handoffs_expired, s0.handoffs_expired);
	for (int i = 0; i < nids; i++)
		assert_false(close_answered(a, ids[i]));
}

/* The pass at `clock_ms` expires exactly `id`, in one walk. */
static void expires_now(struct app *a, uint32_t id)
{
	struct isod_backend_stats s0 = stats(), s;

	isod_backend_poll(be, BUDGET);
	s = stats();
	assert_int_equal(s.handoff_walks, s0.handoff_walks + 1);
	assert_int_equal(s.handoffs_expired, s0.handoffs_expired + 1);
	assert_true(close_answered(a, id));
}

static void test_expiry_at_deadline(void **state)
{
	struct app a;
	uint32_t kept, first, second, t0;
	struct isod_backend_stats s0;

	(void)state;
	attach(&a);
	kept = listener(&a, PORT0);
	first = listener(&a, PORT0 + 1);
	second = listener(&a, PORT0 + 2);
	s0 = stats();
	hand_off(&a, kept);
	hand_off(&a, first);
	hand_off(&a, second);
	assert_int_equal(stats().handoffs, s0.handoffs + 3);

	/* Only the kept socket in flight: no deadline, no walk, ever. */
	quiet_until(&a, clock_ms + 2 * ISOSTACK_CTL_HANDOFF_TTL_MS, NULL, 0);

	t0 = clock_ms;
	post_close(&a, first);
	quiet_until(&a, t0 + SECOND_MS, (uint32_t[]){ first }, 1);
	post_close(&a, second);             /* its deadline after first's */
	quiet_until(&a, t0 + ISOSTACK_CTL_HANDOFF_TTL_MS, (uint32_t[]){ first, second }, 2);
	expires_now(&a, first);
	/* The minimum is recomputed: quiet again until second's deadline. */
	clock_ms++;
	quiet_until(&a, t0 + SECOND_MS + ISOSTACK_CTL_HANDOFF_TTL_MS, (uint32_t[]){ second }, 1);
	expires_now(&a, second);
	clock_ms++;
	quiet_until(&a, clock_ms + ISOSTACK_CTL_HANDOFF_TTL_MS, NULL, 0);
	assert_int_equal(stats().handoffs_expired, s0.handoffs_expired + 2);
	assert_int_equal(stats().claims, s0.claims);
	detach(&a);                         /* drops the kept one */
}

static int group_setup(void **state)
{
	struct isod_backend_conf conf;
	int rc;

	(void)state;
	isotcp_owner_claim();
	lwip_init();
	snprintf(ctl_path, sizeof(ctl_path), "/tmp/isobe-handoff-%d.sock", (int)getpid());
	isod_backend_conf_default(&conf);
	conf.control_path = ctl_path;
	conf.shm.max_sockets = 16;
	conf.shm.cmd_entries = 64;
	conf.shm.status_entries = 64;
	conf.shm.arena_size = UINT64_C(16) << 20;
	conf.shm.hugetlb = false;
	conf.ctl_interval_ms = 0;
	conf.clock_ms = &clock_ms;
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
		cmocka_unit_test(test_expiry_at_deadline),
	};

	return cmocka_run_group_tests_name("handoff", tests, group_setup, group_teardown);
}
