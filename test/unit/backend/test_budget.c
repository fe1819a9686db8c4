/*
 * The back-end's budgets (backend.h, isod_backend_poll): one application
 * that floods its command rings cannot hold the stack core, nor make
 * another application wait, and loses nothing.
 *
 * One thread is both the stack core (isod_backend_poll with BUDGET) and
 * two hand-made applications speaking the control protocol, as in
 * test_wakefd.c: no timing, every pass is a call whose effect is checked
 * next.  The flooder opens NSOCK TCP sockets (never connected: a SEND on
 * them is a no-op that posts no status, like a SEND whose bytes lwIP
 * cannot take yet) and fills each command ring with PER_SOCK commands:
 * SENDs with a NOP every MARK_EVERY as an in-order marker (its cookie
 * counts up).  The other application posts one NOP at a time on its
 * control slot, the next as soon as the last is answered.
 *
 * Checked at every pass: commands executed <= BUDGET; the other
 * application's NOP answered within OTHER_PASSES passes of its posting;
 * the flooder's markers arrive in order with every SEND before them
 * executed.  At the end: every SEND executed (none lost), every marker
 * seen, and the budget hits counted.
 */
#include <errno.h>
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

#define BUDGET        64      /* what the daemon's loop passes: weight 2 x burst 32 */
#define NSOCK         6
#define CMD_ENTRIES   1024    /* command ring entries: far more than BUDGET */
#define PER_SOCK      1000    /* commands posted on each flooder socket */
#define MARK_EVERY    50      /* a NOP marker every this many commands */
#define OTHER_PASSES  2       /* the other application is answered within */
#define PASSES        1000    /* set-up replies (attach, SOCKET) */

u32_t sys_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (u32_t)(ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

static struct isod_backend *be;
static char ctl_path[108];

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

/* SOCKET(AF_INET, SOCK_STREAM) on the control slot; returns the id. */
static uint32_t open_socket(struct app *a)
{
	struct isostack_shm_cmd c = {
		.opcode = ISOSTACK_SHM_OP_SOCKET, .sock = 0, .cookie = 1,
		.arg = { AF_INET, SOCK_STREAM, 0 },
	};
	struct isostack_shm_status st;

	assert_int_equal(isoshm_app_submit(a->shm, 0, &c, 1), 1);
	for (int i = 0; i < PASSES; i++) {
		isod_backend_poll(be, BUDGET);
		if (isoshm_app_recv_status(a->shm, 0, &st, 1) == 1) {
			assert_int_equal(st.opcode, ISOSTACK_SHM_OP_SOCKET);
			assert_true(st.result > 0);
			return (uint32_t)st.result;
		}
	}
	fail_msg("no SOCKET reply");
	return 0;
}

static void post_nop(struct app *a, uint32_t sock, uint64_t cookie)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_NOP, .sock = sock, .cookie = cookie };

	assert_int_equal(isoshm_app_submit(a->shm, sock, &c, 1), 1);
}

/* Command k of socket slot s's stream: a marker NOP every MARK_EVERY. */
static bool is_mark(unsigned k)
{
	return k % MARK_EVERY == MARK_EVERY - 1;
}

static void flooder_and_other(void **state)
{
	struct app flood, other;
	uint32_t ids[NSOCK];
	unsigned marks_seen[NSOCK] = { 0 };
	uint64_t sends_total = 0, sends_before_mark[NSOCK] = { 0 };
	uint64_t other_cookie = 1000, other_posted_pass = 0, other_served = 0;
	struct isod_backend_stats s0, s;
	unsigned pass = 0, all_marks = 0, worst_other = 0;

	(void)state;
	attach(&flood);
	attach(&other);
	for (unsigned i = 0; i < NSOCK; i++)
		ids[i] = open_socket(&flood);

	/* The flood: PER_SOCK commands on each socket, all queued at once. */
	for (unsigned i = 0; i < NSOCK; i++) {
		for (unsigned k = 0; k < PER_SOCK; k++) {
			struct isostack_shm_cmd c = { .sock = ids[i] };

			if (is_mark(k)) {
				c.opcode = ISOSTACK_SHM_OP_NOP;
				c.cookie = ((uint64_t)ids[i] << 32) | (k / MARK_EVERY);
			} else {
				c.opcode = ISOSTACK_SHM_OP_SEND;
				c.arg[0] = 1;
				sends_total++;
			}
			assert_int_equal(isoshm_app_submit(flood.shm, ids[i], &c, 1), 1);
		}
	}
	s0 = stats();
	post_nop(&other, 0, other_cookie);

	while (all_marks < NSOCK * (PER_SOCK / MARK_EVERY)) {
		struct isostack_shm_status st;
		uint64_t cmds_before = stats().cmds;

		assert_true(pass < 10 * NSOCK * PER_SOCK / BUDGET);
		isod_backend_poll(be, BUDGET);
		pass++;
		s = stats();
		/* The stack core came back after at most its budget. */
		if (s.cmds - cmds_before > BUDGET)
			fail_msg("pass %u ran %llu commands (budget %d)", pass,
				 (unsigned long long)(s.cmds - cmds_before), BUDGET);

		/* The other application: served within OTHER_PASSES passes,
		 * and again at once. */
		if (isoshm_app_recv_status(other.shm, 0, &st, 1) == 1) {
			assert_int_equal(st.cookie, other_cookie);
			assert_int_equal(st.result, 0);
			if (pass - other_posted_pass > worst_other)
				worst_other = (unsigned)(pass - other_posted_pass);
			other_served++;
			post_nop(&other, 0, ++other_cookie);
			other_posted_pass = pass;
		} else if (pass - other_posted_pass >= OTHER_PASSES) {
			fail_msg("the other application waited %llu passes behind the flood",
				 (unsigned long long)(pass - other_posted_pass));
		}

		/* The flooder's markers: in order, every SEND before each done. */
		for (unsigned i = 0; i < NSOCK; i++) {
			while (isoshm_app_recv_status(flood.shm, ids[i], &st, 1) == 1) {
				uint64_t want = ((uint64_t)ids[i] << 32) | marks_seen[i];

				assert_int_equal(st.opcode, ISOSTACK_SHM_OP_NOP);
				assert_int_equal(st.cookie, want);
				marks_seen[i]++;
				all_marks++;
				sends_before_mark[i] = (uint64_t)marks_seen[i] * (MARK_EVERY - 1);
			}
		}
		{
			uint64_t need = 0;

			for (unsigned i = 0; i < NSOCK; i++)
				need += sends_before_mark[i];
			assert_true(s.sends_seen - s0.sends_seen >= need);
		}
	}
	/* Nothing lost: every SEND executed, once. */
	for (int i = 0; i < 4; i++)
		isod_backend_poll(be, BUDGET);
	s = stats();
	assert_int_equal(s.sends_seen - s0.sends_seen, sends_total);
	assert_int_equal(s.bad_cmds, s0.bad_cmds);
	assert_true(s.cmd_budget_hits > s0.cmd_budget_hits);
	assert_true(s.pass_budget_hits > s0.pass_budget_hits);
	assert_true(other_served >= pass / OTHER_PASSES);
	print_message("%u passes for %u flooded commands, the other application answered "
		      "%llu times, at worst %u pass(es) after posting; budget hits: "
		      "socket %llu, pass %llu\n",
		      pass, NSOCK * PER_SOCK, (unsigned long long)other_served, worst_other,
		      (unsigned long long)(s.cmd_budget_hits - s0.cmd_budget_hits),
		      (unsigned long long)(s.pass_budget_hits - s0.pass_budget_hits));
	detach(&flood);
	detach(&other);
}

static int group_setup(void **state)
{
	struct isod_backend_conf conf;
	int rc;

	(void)state;
	isotcp_owner_claim();
	lwip_init();
	snprintf(ctl_path, sizeof(ctl_path), "/tmp/isobe-budget-%d.sock", (int)getpid());
	isod_backend_conf_default(&conf);
	conf.control_path = ctl_path;
	conf.shm.max_sockets = 16;
	conf.shm.cmd_entries = CMD_ENTRIES;
	conf.shm.status_entries = 64;
	conf.shm.arena_size = UINT64_C(16) << 20;
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
		cmocka_unit_test(flooder_and_other),
	};

	return cmocka_run_group_tests_name("budget", tests, group_setup, group_teardown);
}
