/*
 * Many applications, one stack: NPROD producer processes, each with its own
 * segment received over AF_UNIX (SCM_RIGHTS) and the extent holding its
 * sockets' rings after it on the same channel (the producer's extent fetch
 * callback reads it there when it opens its first socket, as the shim
 * would ask the daemon over its control socket), send MSGS commands each over
 * NSOCK sockets in random bursts, plus a TX byte stream per socket, and now
 * and then block (futex) on a reply from the stack.  The parent is the
 * stack: it finds work only through the doorbells and proves, per producer
 * and socket, that no command is lost, duplicated, reordered or corrupted
 * (sequence numbers and a checksum in every entry), and that every TX byte
 * arrives as written.  A lost doorbell shows up as a stall, which fails the
 * test with the state of every ring.
 *
 * The stack busy-polls on core 1, the producers share core 0 (when the
 * machine has two cores).  ISOSHM_STRESS_MSGS overrides MSGS.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "isoshm.h"

#define NPROD        4
#define NSOCK        4          /* slots 1..NSOCK */
#define RING         4096u      /* TX and RX ring bytes of every socket */
#define SYNC_EVERY   100000     /* a blocking round trip every this many commands */
#define STALL_NS     (20LL * 1000000000)

static uint64_t msgs_per_producer = 1000000;

static uint64_t mix(uint64_t a, uint64_t b, uint64_t c)
{
	uint64_t h = a * 0x9e3779b97f4a7c15ull ^ (b + 0x632be59bd9b4e019ull);

	h ^= h >> 29;
	h = (h ^ c) * 0xbf58476d1ce4e5b9ull;
	return h ^ (h >> 32);
}

/* Byte pos of producer p's TX stream on sock. */
static uint8_t stream_byte(uint32_t p, uint32_t sock, uint64_t pos)
{
	return (uint8_t)(mix(p, sock, pos >> 3) >> ((pos & 7) * 8));
}

static void pin(int cpu)
{
	cpu_set_t set;

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

/* ---- Producer (application) ------------------------------------------ */

/* What the stack sends with an extent's fd. */
struct extent_msg {
	uint32_t id;
	uint32_t reserved;
	uint64_t off, size;
};

struct fetch_state {
	int ctl;
	unsigned int calls;
};

/* The extent's fd was sent after the segment's: read it now. */
static int fetch_extent(void *arg, uint32_t id, uint64_t *off, uint64_t *size)
{
	struct fetch_state *f = arg;
	struct extent_msg m;
	int fd = -1, n;

	f->calls++;
	n = isoshm_recv_fd(f->ctl, &fd, &m, sizeof(m));
	if (n != (int)sizeof(m) || fd < 0 || m.id != id) {
		if (fd >= 0)
			close(fd);
		return n < 0 ? n : -EPROTO;
	}
	*off = m.off;
	*size = m.size;
	return fd;
}

struct sync_wait {
	struct isoshm_app *a;
};

static bool sync_ready(void *arg)
{
	struct sync_wait *w = arg;

	return isoshm_app_status_avail(w->a, 1) > 0;
}

static int producer(uint32_t p, int ctl)
{
	struct fetch_state fetch = { .ctl = ctl };
	struct isoshm_app *a;
	struct isostack_shm_cmd burst[32];
	uint64_t seq[NSOCK + 1] = { 0 }, txpos[NSOCK + 1] = { 0 };
	uint64_t rng = 0x1234567ull + p, sent = 0, cookie = 0, next_sync = SYNC_EVERY;
	int fd = -1;
	char hello;

	pin(0);
	if (isoshm_recv_fd(ctl, &fd, &hello, 1) != 1 || fd < 0)
		return 10;
	if (isoshm_app_attach(&a, fd, NULL) != 0)
		return 11;
	isoshm_app_set_fetch(a, fetch_extent, &fetch);
	/* the stack opened the sockets before sending the segment */
	for (uint32_t s = 1; s <= NSOCK; s++)
		if (isoshm_app_sock_open(a, s) != 0 || isoshm_app_tx_size(a, s) != RING)
			return 17;
	if (fetch.calls != 1)
		return 18;      /* one extent holds every ring */

	while (sent < msgs_per_producer) {
		uint32_t sock = 1 + (uint32_t)(rng % NSOCK);
		uint32_t n, want;
		uint8_t bytes[256];
		int k;

		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		want = 1 + (uint32_t)(rng >> 40) % 32;
		if (want > msgs_per_producer - sent)
			want = (uint32_t)(msgs_per_producer - sent);
		for (n = 0; n < want; n++) {
			struct isostack_shm_cmd *c = &burst[n];

			memset(c, 0, sizeof(*c));
			c->opcode = ISOSTACK_SHM_OP_SETSOCKOPT;
			c->sock = sock;
			c->cookie = ++cookie;
			c->arg[0] = p;
			c->arg[1] = sock;
			c->arg[2] = ISOSTACK_SHM_OPT_MAX;
			c->arg[3] = seq[sock] + n;
			c->arg[4] = rng * (n + 1);
			c->arg[5] = mix(c->cookie, c->arg[3], c->arg[4]);
		}
		/* TX bytes first, so the stack finds them when it reads the burst */
		for (uint32_t i = 0; i < want * 8; i++)
			bytes[i] = stream_byte(p, sock, txpos[sock] + i);
		k = isoshm_app_tx_write(a, sock, bytes, want * 8);
		if (k < 0)
			return 12;
		txpos[sock] += (uint64_t)k;

		k = (rng & 1) ? isoshm_app_submit(a, sock, burst, want)
			      : isoshm_app_submit_db(a, sock, 1, burst, want);
		if (k < 0)
			return 13;
		if ((uint32_t)k < want)
			cookie -= want - (uint32_t)k; /* resent next time */
		seq[sock] += (uint64_t)k;
		sent += (uint64_t)k;
		if (k == 0)
			sched_yield(); /* ring full: let the stack run */

		if (sent >= next_sync || sent == msgs_per_producer) {
			struct isostack_shm_cmd nop;
			struct isostack_shm_status st;
			struct sync_wait w = { a };

			memset(&nop, 0, sizeof(nop));
			nop.opcode = ISOSTACK_SHM_OP_NOP;
			nop.sock = 1;
			nop.cookie = UINT64_MAX - sent;
			while ((k = isoshm_app_submit(a, 1, &nop, 1)) == 0)
				sched_yield();
			if (k < 0)
				return 14;
			if (isoshm_app_wait(a, 1, sync_ready, &w, 1000, 30LL * 1000000000) != 0)
				return 15;
			if (isoshm_app_recv_status(a, 1, &st, 1) != 1 || st.cookie != nop.cookie ||
			    st.result != 0)
				return 16;
			next_sync += SYNC_EVERY;
		}
	}
	isoshm_app_detach(a);
	return 0;
}

/* ---- Consumer (stack) ------------------------------------------------- */

struct app_state {
	struct isoshm_stack *s;
	pid_t pid;
	uint64_t seq[NSOCK + 1];
	uint64_t txpos[NSOCK + 1];
	uint64_t got;
	uint64_t syncs;
	uint64_t ext_off;       /* arena offset of the extent of the rings */
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void check_cmd(struct app_state *st, uint32_t p, uint32_t sock,
		      const struct isostack_shm_cmd *c)
{
	struct isostack_shm_status reply;

	if (c->opcode == ISOSTACK_SHM_OP_NOP) {
		memset(&reply, 0, sizeof(reply));
		reply.opcode = ISOSTACK_SHM_OP_NOP;
		reply.sock = sock;
		reply.cookie = c->cookie;
		assert_int_equal(isoshm_stack_post_status(st->s, sock, &reply, 1), 1);
		st->syncs++;
		return;
	}
	assert_int_equal(c->opcode, ISOSTACK_SHM_OP_SETSOCKOPT);
	assert_int_equal(c->arg[0], p);
	assert_int_equal(c->arg[1], sock);
	assert_int_equal(c->arg[3], st->seq[sock]); /* no loss, dup, reorder */
	assert_int_equal(c->arg[5], mix(c->cookie, c->arg[3], c->arg[4]));
	st->seq[sock]++;
	st->got++;
}

static void check_tx(struct app_state *st, uint32_t p, uint32_t sock)
{
	struct isoshm_span span[2];
	int n = isoshm_stack_tx_peek(st->s, sock, span);

	assert_true(n >= 0);
	for (int i = 0; i < 2; i++) {
		const uint8_t *b = span[i].addr;
		uint64_t ring = st->ext_off + 2 * sock * RING;

		if (span[i].len != 0 && (span[i].off < ring || span[i].off + span[i].len > ring + RING ||
					 b != (uint8_t *)isoshm_stack_arena(st->s) + span[i].off))
			fail_msg("producer %u sock %u: span outside its TX ring", p, sock);

		for (uint32_t j = 0; j < span[i].len; j++)
			if (b[j] != stream_byte(p, sock, st->txpos[sock] + j))
				fail_msg("producer %u sock %u: TX byte %llu differs", p, sock,
					 (unsigned long long)(st->txpos[sock] + j));
		st->txpos[sock] += span[i].len;
	}
	assert_int_equal(isoshm_stack_tx_release(st->s, sock, (uint32_t)n), 0);
}

static void stress_many_producers(void **state)
{
	struct app_state apps[NPROD];
	struct isoshm_params prm;
	uint64_t total = 0, want = NPROD * msgs_per_producer;
	int64_t last_progress, t0;
	int ctl[NPROD][2];

	(void)state;
	memset(apps, 0, sizeof(apps));
	isoshm_params_default(&prm);
	prm.max_sockets = 8;
	prm.nr_doorbells = 2;
	prm.cmd_entries = 64;
	prm.status_entries = 16;
	prm.max_ring_bytes = RING;
	prm.arena_size = ISOSTACK_SHM_EXTENT_UNIT;
	prm.hugetlb = false; /* four processes, keep the machine's hugepages for others */

	for (uint32_t p = 0; p < NPROD; p++) {
		struct extent_msg em;
		char hello = 'S';
		int efd;

		prm.app_id = p;
		assert_int_equal(isoshm_stack_create(&apps[p].s, &prm), 0);
		/* one extent for every socket's rings, opened before the
		 * application attaches (as SOCKET replies would precede its use) */
		memset(&em, 0, sizeof(em));
		assert_int_equal(isoshm_stack_extent_new(apps[p].s, ISOSTACK_SHM_EXTENT_UNIT, &em.id), 0);
		assert_true(isoshm_stack_extent_get(apps[p].s, em.id, &efd, &em.off, &em.size) >= 0);
		apps[p].ext_off = em.off;
		for (uint32_t s = 1; s <= NSOCK; s++) {
			struct isostack_shm_sockdir d = {
				.tx_off = em.off + 2 * s * RING, .rx_off = em.off + (2 * s + 1) * RING,
				.tx_bytes = RING, .rx_bytes = RING,
				.tx_extent = em.id, .rx_extent = em.id,
			};

			assert_int_equal(isoshm_stack_sock_open(apps[p].s, s, &d), 0);
		}
		assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl[p]), 0);
		apps[p].pid = fork();
		assert_true(apps[p].pid >= 0);
		if (apps[p].pid == 0) {
			/* never outlive a failed test as a spinning orphan */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() == 1)
				_exit(20);
			close(ctl[p][0]);
			_exit(producer(p, ctl[p][1]));
		}
		close(ctl[p][1]);
		assert_int_equal(isoshm_send_fd(ctl[p][0], isoshm_stack_fd(apps[p].s), &hello, 1), 0);
		assert_int_equal(isoshm_send_fd(ctl[p][0], efd, &em, sizeof(em)), 0);
	}
	pin(1);

	t0 = last_progress = now_ns();
	while (total < want) {
		bool progress = false;

		for (uint32_t p = 0; p < NPROD; p++) {
			struct app_state *st = &apps[p];
			uint32_t socks[64];
			int k = isoshm_stack_poll(st->s, socks, 64);

			assert_true(k >= 0);
			for (int i = 0; i < k; i++) {
				struct isostack_shm_cmd cmds[32];
				uint32_t sock = socks[i];
				int r;

				assert_true(sock >= 1 && sock <= NSOCK);
				do {
					uint64_t before = st->got;

					r = isoshm_stack_recv_cmds(st->s, sock, cmds, 32);
					assert_true(r >= 0);
					for (int j = 0; j < r; j++)
						check_cmd(st, p, sock, &cmds[j]);
					total += st->got - before;
				} while (r == 32);
				check_tx(st, p, sock);
				progress = true;
			}
		}
		if (progress) {
			last_progress = now_ns();
		} else if (now_ns() - last_progress > STALL_NS) {
			for (uint32_t p = 0; p < NPROD; p++)
				print_error("producer %u: %llu commands, socks seq %llu %llu %llu %llu\n",
					    p, (unsigned long long)apps[p].got,
					    (unsigned long long)apps[p].seq[1],
					    (unsigned long long)apps[p].seq[2],
					    (unsigned long long)apps[p].seq[3],
					    (unsigned long long)apps[p].seq[4]);
			fail_msg("no doorbell for %lld s with %llu of %llu commands received",
				 STALL_NS / 1000000000, (unsigned long long)total,
				 (unsigned long long)want);
		}
	}
	/* the producers' last sync round trips */
	for (uint32_t p = 0; p < NPROD; p++) {
		uint64_t want_syncs = (msgs_per_producer + SYNC_EVERY - 1) / SYNC_EVERY;

		while (apps[p].syncs < want_syncs) {
			uint32_t socks[64];
			struct isostack_shm_cmd cmds[32];
			int k = isoshm_stack_poll(apps[p].s, socks, 64);

			assert_true(k >= 0);
			for (int i = 0; i < k; i++) {
				int r = isoshm_stack_recv_cmds(apps[p].s, socks[i], cmds, 32);

				assert_true(r >= 0);
				for (int j = 0; j < r; j++)
					check_cmd(&apps[p], p, socks[i], &cmds[j]);
			}
			assert_true(now_ns() - last_progress < STALL_NS);
		}
	}
	for (uint32_t p = 0; p < NPROD; p++) {
		const struct isoshm_stats *sst = isoshm_stack_stats(apps[p].s);
		int status;

		assert_int_equal(waitpid(apps[p].pid, &status, 0), apps[p].pid);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
		assert_int_equal(apps[p].got, msgs_per_producer);
		for (uint32_t s = 1; s <= NSOCK; s++)
			check_tx(&apps[p], p, s);
		assert_int_equal(sst->bad_index + sst->bad_sock + sst->bad_opcode + sst->bad_cmd, 0);
		print_message("producer %u: %llu commands, %llu TX bytes, %llu doorbells, "
			      "%llu wakes\n", p, (unsigned long long)apps[p].got,
			      (unsigned long long)(apps[p].txpos[1] + apps[p].txpos[2] +
						   apps[p].txpos[3] + apps[p].txpos[4]),
			      (unsigned long long)sst->doorbells, (unsigned long long)sst->wakes);
		close(ctl[p][0]);
		isoshm_stack_destroy(apps[p].s);
	}
	print_message("%llu commands in %.2f s\n", (unsigned long long)total,
		      (double)(now_ns() - t0) / 1e9);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(stress_many_producers),
	};
	const char *env = getenv("ISOSHM_STRESS_MSGS");

	if (env != NULL && strtoull(env, NULL, 10) > 0)
		msgs_per_producer = strtoull(env, NULL, 10);
	return cmocka_run_group_tests_name("shm_stress", tests, NULL, NULL);
}
