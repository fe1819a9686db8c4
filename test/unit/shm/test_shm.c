/*
 * isoshm unit tests: the SPSC ring on its own (wrap-around of the 32-bit
 * indices, full/empty, partial bursts, every corrupt-index case), then a
 * segment seen from both sides in one process (created by the "daemon",
 * passed over a socketpair with SCM_RIGHTS, attached by the "application"):
 * header validation, commands with doorbell repeat suppression, every
 * command validation path, corrupted indices in every ring the stack reads,
 * TX/RX byte streams across the wrap, and the futex sleep/wake protocol.
 *
 * Every test checks what a user would: counts, bytes by checksum, errno
 * values and the stack's error counters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <numa.h>

#include "isoshm.h"

/* ---- The bare ring ------------------------------------------------------ */

struct test_ring {
	_Atomic uint32_t prod;
	_Atomic uint32_t cons;
	uint64_t slots[8];
	struct isoshm_ring p, c;
};

static void test_ring_setup(struct test_ring *t, uint32_t start)
{
	memset(t, 0, sizeof(*t));
	atomic_store(&t->prod, start);
	atomic_store(&t->cons, start);
	assert_int_equal(isoshm_ring_init(&t->p, ISOSHM_RING_PRODUCER, &t->prod, &t->cons,
					  t->slots, 8, sizeof(uint64_t)), 0);
	assert_int_equal(isoshm_ring_init(&t->c, ISOSHM_RING_CONSUMER, &t->prod, &t->cons,
					  t->slots, 8, sizeof(uint64_t)), 0);
}

static void ring_init_rejects(void **state)
{
	struct test_ring t;
	struct isoshm_ring r;

	(void)state;
	test_ring_setup(&t, 0);
	assert_int_equal(isoshm_ring_init(&r, ISOSHM_RING_PRODUCER, &t.prod, &t.cons,
					  t.slots, 6, 8), -EINVAL);
	assert_int_equal(isoshm_ring_init(&r, ISOSHM_RING_PRODUCER, &t.prod, &t.cons,
					  t.slots, 0, 8), -EINVAL);
	atomic_store(&t.prod, 3);
	assert_int_equal(isoshm_ring_init(&r, ISOSHM_RING_CONSUMER, &t.prod, &t.cons,
					  t.slots, 8, 8), -EINVAL);
}

/* Bursts of varying size across the 2^32 wrap of the free-running indices. */
static void ring_wraparound_bursts(void **state)
{
	struct test_ring t;
	uint64_t next_in = 1, next_out = 1;

	(void)state;
	test_ring_setup(&t, UINT32_MAX - 20);
	for (unsigned int round = 0; round < 200; round++) {
		uint64_t in[8], out[8];
		uint32_t want = 1 + round % 8;
		int k;

		for (uint32_t i = 0; i < want; i++)
			in[i] = next_in + i;
		k = isoshm_ring_enqueue_burst(&t.p, in, want);
		assert_true(k >= 0 && (uint32_t)k <= want);
		next_in += (uint64_t)k;
		k = isoshm_ring_dequeue_burst(&t.c, out, 1 + (round * 5) % 8);
		assert_true(k >= 0);
		for (int i = 0; i < k; i++)
			assert_int_equal(out[i], next_out++);
	}
	/* drain: everything that went in comes out, in order */
	for (;;) {
		uint64_t out[8];
		int k = isoshm_ring_dequeue_burst(&t.c, out, 8);

		if (k == 0)
			break;
		for (int i = 0; i < k; i++)
			assert_int_equal(out[i], next_out++);
	}
	assert_int_equal(next_in, next_out);
	assert_true(atomic_load(&t.prod) < 1000); /* the index did wrap */
}

static void ring_full_empty(void **state)
{
	struct test_ring t;
	uint64_t v[16] = { 0 }, out[16];

	(void)state;
	test_ring_setup(&t, 5);
	assert_int_equal(isoshm_ring_dequeue_burst(&t.c, out, 4), 0);
	assert_int_equal(isoshm_ring_enqueue_burst(&t.p, v, 16), 8); /* partial: capacity */
	assert_int_equal(isoshm_ring_enqueue_burst(&t.p, v, 1), 0);  /* full */
	assert_int_equal(isoshm_ring_free(&t.p, 1), 0);
	assert_int_equal(isoshm_ring_avail(&t.c, 1), 8);
	assert_int_equal(isoshm_ring_dequeue_burst(&t.c, out, 3), 3);
	assert_int_equal(isoshm_ring_enqueue_burst(&t.p, v, 16), 3);
	assert_int_equal(isoshm_ring_dequeue_burst(&t.c, out, 16), 8);
	assert_int_equal(isoshm_ring_dequeue_burst(&t.c, out, 16), 0);
	/* peek does not release */
	assert_int_equal(isoshm_ring_enqueue_burst(&t.p, v, 2), 2);
	assert_int_equal(isoshm_ring_peek_burst(&t.c, out, 4), 2);
	assert_int_equal(isoshm_ring_peek_burst(&t.c, out, 4), 2);
	assert_int_equal(isoshm_ring_dequeue_burst(&t.c, out, 4), 2);
}

/* Every way a peer index can be corrupt is refused, and refusing changes
 * nothing: the next valid value works again. */
static void ring_corrupt_indices(void **state)
{
	struct test_ring t;
	uint64_t v[8] = { 0 }, out[8];

	(void)state;
	test_ring_setup(&t, 100);
	assert_int_equal(isoshm_ring_enqueue_burst(&t.p, v, 4), 4);
	assert_int_equal(isoshm_ring_dequeue_burst(&t.c, out, 1), 1);

	/* consumer view: producer index beyond one ring of us */
	atomic_store(&t.prod, 101 + 9);
	assert_int_equal(isoshm_ring_dequeue_burst(&t.c, out, 8), -EPROTO);
	/* ... behind us */
	atomic_store(&t.prod, 50);
	assert_int_equal(isoshm_ring_dequeue_burst(&t.c, out, 8), -EPROTO);
	/* ... moved backwards but still ahead of us (withdrawn entries) */
	atomic_store(&t.prod, 102);
	assert_int_equal(isoshm_ring_dequeue_burst(&t.c, out, 8), -EPROTO);
	assert_int_equal(t.c.mine, 101);
	atomic_store(&t.prod, 104); /* repaired */
	assert_int_equal(isoshm_ring_dequeue_burst(&t.c, out, 8), 3);

	/* producer view: consumer index past us */
	atomic_store(&t.cons, 105);
	assert_int_equal(isoshm_ring_enqueue_burst(&t.p, v, 8), -EPROTO);
	/* ... moved backwards */
	atomic_store(&t.cons, 99);
	assert_int_equal(isoshm_ring_enqueue_burst(&t.p, v, 8), -EPROTO);
	atomic_store(&t.cons, UINT32_MAX);
	assert_int_equal(isoshm_ring_enqueue_burst(&t.p, v, 8), -EPROTO);
	assert_int_equal(t.p.mine, 104);
	atomic_store(&t.cons, 104);
	assert_int_equal(isoshm_ring_enqueue_burst(&t.p, v, 8), 8);
}

/* ---- A segment seen from both sides ------------------------------------- */

struct seg {
	struct isoshm_stack *s;
	struct isoshm_app *a;
	struct isoshm_attach_info info;
	struct isostack_shm_sock *socks; /* the shared socket blocks, to corrupt */
};

static void small_params(struct isoshm_params *p, bool hugetlb)
{
	isoshm_params_default(p);
	p->nr_sockets = 8;
	p->nr_doorbells = 2;
	p->cmd_entries = 8;
	p->status_entries = 8;
	p->tx_ring_bytes = 4096;
	p->rx_ring_bytes = 4096;
	p->hugetlb = hugetlb;
}

static void quiet_log(int level, const char *msg)
{
	(void)level;
	(void)msg;
}

/* Creates a segment and attaches to it through an SCM_RIGHTS round trip. */
static struct seg *seg_open(const struct isoshm_params *p)
{
	struct seg *g = calloc(1, sizeof(*g));
	int sv[2], fd = -1;
	char c = 'S', got = 0;

	assert_non_null(g);
	assert_int_equal(isoshm_stack_create(&g->s, p), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(isoshm_send_fd(sv[0], isoshm_stack_fd(g->s), &c, 1), 0);
	assert_int_equal(isoshm_recv_fd(sv[1], &fd, &got, 1), 1);
	assert_int_equal(got, 'S');
	assert_true(fd >= 0);
	assert_int_not_equal(fd, isoshm_stack_fd(g->s));
	assert_int_equal(isoshm_app_attach(&g->a, fd, &g->info), 0);
	close(sv[0]);
	close(sv[1]);
	g->socks = (void *)((uint8_t *)isoshm_stack_base(g->s) +
			    isoshm_stack_header(g->s)->socks_off);
	return g;
}

static void seg_close(struct seg *g)
{
	isoshm_app_detach(g->a);
	isoshm_stack_destroy(g->s);
	free(g);
}

static int seg_setup(void **state)
{
	struct isoshm_params p;

	small_params(&p, false);
	*state = seg_open(&p);
	return 0;
}

static int seg_teardown(void **state)
{
	seg_close(*state);
	return 0;
}

static struct isostack_shm_cmd cmd(uint16_t op, uint32_t sock, uint64_t cookie)
{
	struct isostack_shm_cmd c;

	memset(&c, 0, sizeof(c));
	c.opcode = op;
	c.sock = sock;
	c.cookie = cookie;
	return c;
}

static void segment_create_attach(void **state)
{
	struct isoshm_params p;
	struct seg *g;
	const struct isostack_shm_header *h;

	(void)state;
	/* hugepages if the machine has any free, else the logged fallback */
	small_params(&p, true);
	isoshm_set_log(quiet_log);
	g = seg_open(&p);
	isoshm_set_log(NULL);
	h = isoshm_app_header(g->a);
	assert_int_equal(h->magic, ISOSTACK_SHM_MAGIC);
	assert_int_equal(h->nr_sockets, 8);
	assert_int_equal(h->doorbell_entries, 16);
	assert_int_equal(h->segment_size % h->page_size, 0);
	assert_int_equal(h->tx_off % h->page_size, 0);
	assert_int_equal(h->rx_off % h->page_size, 0);
	assert_int_equal(g->info.size, h->segment_size);
	assert_int_equal(g->info.hugetlb, (h->flags & ISOSTACK_SHM_FLAG_HUGETLB) != 0);
	assert_int_equal(g->info.page_size, g->info.hugetlb ? 2u << 20 : 4096u);
	assert_int_equal(g->info.numa_node, -1);
	assert_memory_equal(h, isoshm_stack_header(g->s), sizeof(*h));
	seg_close(g);

	/* NUMA: bind to node 0 (every NUMA-capable kernel has it); the attach
	 * reports the node the kernel placed the TX area on */
	if (numa_available() < 0) {
		print_message("no NUMA support here: binding not tested\n");
		return;
	}
	small_params(&p, false);
	p.numa_node = 0;
	g = seg_open(&p);
	assert_int_equal(g->info.numa_node, 0);
	assert_true(g->info.numa_node_actual == 0 || g->info.numa_node_actual == -1);
	assert_true(isoshm_app_header(g->a)->flags & ISOSTACK_SHM_FLAG_NUMA);
	seg_close(g);
}

static void params_rejected(void **state)
{
	struct isoshm_params p;
	struct isostack_shm_header h;
	struct isoshm_stack *s = NULL;

	(void)state;
	small_params(&p, false);
	p.cmd_entries = 12;
	assert_int_equal(isoshm_stack_create(&s, &p), -EINVAL);
	small_params(&p, false);
	p.nr_sockets = 1;
	assert_int_equal(isoshm_layout(&p, 4096, &h), -EINVAL);
	small_params(&p, false);
	p.tx_ring_bytes = 1u << 30;
	p.nr_sockets = 65536;
	assert_int_equal(isoshm_layout(&p, 4096, &h), -EOVERFLOW);
	small_params(&p, false);
	p.numa_node = 4000;
	isoshm_set_log(quiet_log);
	assert_int_equal(isoshm_stack_create(&s, &p), -ENODEV);
	isoshm_set_log(NULL);
	assert_null(s);
}

static void header_validation(void **state)
{
	struct seg *g = *state;
	const struct isostack_shm_header *orig = isoshm_stack_header(g->s);
	uint64_t size = orig->segment_size;
	struct isostack_shm_header h;

	h = *orig;
	assert_int_equal(isoshm_validate_header(&h, size), 0);
	h.magic ^= 1;
	assert_int_equal(isoshm_validate_header(&h, size), -EPROTO);
	h = *orig;
	h.abi_version = 2;
	assert_int_equal(isoshm_validate_header(&h, size), -EPROTONOSUPPORT);
	h = *orig;
	h.header_size = 128;
	assert_int_equal(isoshm_validate_header(&h, size), -EPROTO);
	h = *orig;
	h.features |= UINT64_C(1) << 40;
	assert_int_equal(isoshm_validate_header(&h, size), -EPROTONOSUPPORT);
	h = *orig;
	h.features &= ~ISOSTACK_SHM_FEAT_FUTEX_WAIT;
	assert_int_equal(isoshm_validate_header(&h, size), -EPROTO);
	h = *orig;
	h.nr_sockets = 0;
	assert_int_equal(isoshm_validate_header(&h, size), -EPROTO);
	h = *orig;
	h.cmd_entries = 7;
	assert_int_equal(isoshm_validate_header(&h, size), -EPROTO);
	h = *orig;
	h.tx_off += 4096; /* would overlap the RX rings */
	assert_int_equal(isoshm_validate_header(&h, size), -EPROTO);
	h = *orig;
	h.status_off = UINT64_MAX - 10;
	assert_int_equal(isoshm_validate_header(&h, size), -EPROTO);
	h = *orig;
	h.doorbell_entries = 4; /* fewer than sockets: could overflow */
	assert_int_equal(isoshm_validate_header(&h, size), -EPROTO);
	h = *orig;
	h.nr_sockets = 64; /* segment too small for that */
	assert_int_equal(isoshm_validate_header(&h, size), -EPROTO);
	h = *orig;
	assert_int_equal(isoshm_validate_header(&h, size - 4096), -EPROTO); /* file too short */

	/* attach refuses a corrupt header and leaves the fd to the caller */
	{
		struct isoshm_app *a = NULL;
		struct isostack_shm_header *live = isoshm_stack_base(g->s);
		int fd = dup(isoshm_stack_fd(g->s));

		live->magic = 0;
		isoshm_set_log(quiet_log);
		assert_int_equal(isoshm_app_attach(&a, fd, NULL), -EPROTO);
		isoshm_set_log(NULL);
		live->magic = ISOSTACK_SHM_MAGIC;
		assert_null(a);
		assert_int_equal(close(fd), 0);
	}
}

/* Commands in, doorbell scan, validated reads, status back. */
static void command_round_trip(void **state)
{
	struct seg *g = *state;
	struct isostack_shm_cmd c[4], got[8];
	struct isostack_shm_status st, rst;
	uint32_t socks[16];

	(void)state;
	assert_int_equal(isoshm_stack_poll(g->s, socks, 16), 0); /* idle */
	c[0] = cmd(ISOSTACK_SHM_OP_SOCKET, 0, 11);
	c[0].arg[0] = 2;
	c[0].arg[1] = 1;
	assert_int_equal(isoshm_app_submit(g->a, 0, c, 1), 1);
	for (int i = 0; i < 4; i++)
		c[i] = cmd(ISOSTACK_SHM_OP_NOP, 3, 100 + (uint64_t)i);
	assert_int_equal(isoshm_app_submit_db(g->a, 3, 1, c, 4), 4);

	assert_int_equal(isoshm_stack_poll(g->s, socks, 16), 2);
	assert_true((socks[0] == 0 && socks[1] == 3) || (socks[0] == 3 && socks[1] == 0));
	assert_int_equal(isoshm_stack_recv_cmds(g->s, 0, got, 8), 1);
	assert_int_equal(got[0].opcode, ISOSTACK_SHM_OP_SOCKET);
	assert_int_equal(got[0].cookie, 11);
	assert_int_equal(isoshm_stack_recv_cmds(g->s, 3, got, 8), 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(got[i].cookie, 100 + (uint64_t)i);
	assert_int_equal(isoshm_stack_recv_cmds(g->s, 3, got, 8), 0);
	assert_int_equal(isoshm_stack_stats(g->s)->cmds, 5);
	assert_int_equal(isoshm_stack_stats(g->s)->doorbells, 2);

	memset(&st, 0, sizeof(st));
	st.opcode = ISOSTACK_SHM_OP_SOCKET;
	st.cookie = 11;
	st.result = 5;
	assert_int_equal(isoshm_stack_post_status(g->s, 0, &st, 1), 1);
	assert_int_equal(isoshm_app_status_avail(g->a, 0), 1);
	assert_int_equal(isoshm_app_recv_status(g->a, 0, &rst, 1), 1);
	assert_memory_equal(&st, &rst, sizeof(st));
	assert_int_equal(isoshm_app_recv_status(g->a, 0, &rst, 1), 0);
	/* nobody slept: no FUTEX_WAKE */
	assert_int_equal(isoshm_stack_stats(g->s)->wakes, 0);

	/* full command ring: partial then 0, one doorbell regardless */
	for (int i = 0; i < 4; i++)
		c[i] = cmd(ISOSTACK_SHM_OP_NOP, 2, 0);
	assert_int_equal(isoshm_app_submit(g->a, 2, c, 4), 4);
	assert_int_equal(isoshm_app_submit(g->a, 2, c, 4), 4);
	assert_int_equal(isoshm_app_submit(g->a, 2, c, 4), 0);
	assert_int_equal(isoshm_stack_poll(g->s, socks, 16), 1);
	assert_int_equal(isoshm_stack_recv_cmds(g->s, 2, got, 8), 8);

	assert_int_equal(isoshm_app_submit(g->a, 8, c, 1), -EBADF);
	assert_int_equal(isoshm_app_submit_db(g->a, 2, 2, c, 1), -EBADF);
	assert_int_equal(isoshm_stack_recv_cmds(g->s, 8, got, 1), -EBADF);
}

/* A socket already rung and not yet drained is not rung again. */
static void doorbell_repeat_suppression(void **state)
{
	struct seg *g = *state;
	struct isostack_shm_cmd c = cmd(ISOSTACK_SHM_OP_NOP, 5, 0), got[8];
	uint32_t socks[16];

	for (int i = 0; i < 3; i++)
		assert_int_equal(isoshm_app_submit_db(g->a, 5, (uint32_t)i % 2, &c, 1), 1);
	assert_int_equal(isoshm_stack_poll(g->s, socks, 16), 1);
	assert_int_equal(socks[0], 5);
	assert_int_equal(isoshm_stack_poll(g->s, socks, 16), 0);

	/* drained mark set by the poll: the next command rings again even
	 * before the stack read the first three */
	assert_int_equal(isoshm_app_submit_db(g->a, 5, 0, &c, 1), 1);
	assert_int_equal(isoshm_app_submit_db(g->a, 5, 0, &c, 1), 1);
	assert_int_equal(isoshm_stack_poll(g->s, socks, 16), 1);
	assert_int_equal(isoshm_stack_recv_cmds(g->s, 5, got, 8), 5);
	assert_int_equal(isoshm_stack_stats(g->s)->doorbells, 2);

	/* many sockets, one ring each, across both doorbells */
	for (uint32_t s = 1; s < 8; s++) {
		c.sock = s;
		assert_int_equal(isoshm_app_submit_db(g->a, s, s % 2, &c, 1), 1);
		assert_int_equal(isoshm_app_submit_db(g->a, s, s % 2, &c, 1), 1);
	}
	assert_int_equal(isoshm_stack_poll(g->s, socks, 16), 7);
	/* a poll buffer smaller than the pending rings: the rest next time */
	for (uint32_t s = 1; s < 8; s++) {
		c.sock = s;
		assert_int_equal(isoshm_stack_recv_cmds(g->s, s, got, 8), 2);
		assert_int_equal(isoshm_app_submit_db(g->a, s, 0, &c, 1), 1);
	}
	assert_int_equal(isoshm_stack_poll(g->s, socks, 3), 3);
	assert_int_equal(isoshm_stack_poll(g->s, socks, 16), 4);
	assert_int_equal(isoshm_stack_poll(g->s, socks, 16), 0);
}

/* Each bad command is refused with its errno and counted in its class. */
static void command_validation(void **state)
{
	struct seg *g = *state;
	const struct isoshm_stats *st = isoshm_stack_stats(g->s);
	struct isostack_shm_cmd c, bad[32], got[8];
	uint32_t socks[16];
	int nbad = 0, expect[32];

	/* (command, expected errno) */
#define BAD(init, err) do { c = cmd(ISOSTACK_SHM_OP_NOP, 4, 0); init; \
		bad[nbad] = c; expect[nbad++] = (err); } while (0)
	BAD(c.opcode = ISOSTACK_SHM_OP_MAX + 1, -ENOTSUP);
	BAD(c.opcode = 0xffff, -ENOTSUP);
	BAD(c.sock = 5, -EBADSLT);                           /* wrong ring */
	BAD(c.sock = 0xffffffff, -EBADSLT);
	BAD(c.opcode = ISOSTACK_SHM_OP_SOCKET, -EBADSLT);    /* SOCKET off slot 0 */
	BAD(c.flags = 1, -EINVAL);
	BAD(c.arg[5] = 1, -EINVAL);                          /* unused arg */
	BAD((c.opcode = ISOSTACK_SHM_OP_CLOSE, c.arg[0] = 7), -EINVAL);
	BAD((c.opcode = ISOSTACK_SHM_OP_BIND, c.arg[0] = 1), -EINVAL);
	BAD((c.opcode = ISOSTACK_SHM_OP_BIND, c.arg[0] = 33), -EINVAL);
	BAD((c.opcode = ISOSTACK_SHM_OP_CONNECT, c.arg[0] = UINT64_MAX), -EINVAL);
	BAD((c.opcode = ISOSTACK_SHM_OP_CONNECT, c.arg[0] = 16, c.arg[3] = 1), -EINVAL);
	BAD((c.opcode = ISOSTACK_SHM_OP_LISTEN, c.arg[0] = (uint64_t)INT32_MAX + 1), -EINVAL);
	BAD((c.opcode = ISOSTACK_SHM_OP_SHUTDOWN, c.arg[0] = 3), -EINVAL);
	BAD((c.opcode = ISOSTACK_SHM_OP_SETSOCKOPT, c.arg[0] = 1, c.arg[2] = 25), -EINVAL);
	BAD((c.opcode = ISOSTACK_SHM_OP_SETSOCKOPT, c.arg[2] = 4, c.arg[3] = 1ull << 32),
	    -EINVAL);
	BAD((c.opcode = ISOSTACK_SHM_OP_SETSOCKOPT, c.arg[1] = UINT64_MAX), -EINVAL);
	BAD((c.opcode = ISOSTACK_SHM_OP_GETSOCKOPT, c.arg[2] = 100), -EINVAL);
	BAD((c.opcode = ISOSTACK_SHM_OP_GETSOCKOPT, c.arg[3] = 1), -EINVAL);
	BAD(c.opcode = ISOSTACK_SHM_OP_SEND, 0); /* valid controls in between */
	BAD((c.opcode = ISOSTACK_SHM_OP_CONNECT, c.arg[0] = 16, c.arg[1] = 0x0100007f50000002),
	    0);
	BAD((c.opcode = ISOSTACK_SHM_OP_SETSOCKOPT, c.arg[0] = 1, c.arg[1] = 2, c.arg[2] = 24,
	     c.arg[3] = c.arg[4] = c.arg[5] = UINT64_MAX), 0);
#undef BAD

	for (int i = 0; i < nbad; i++) {
		int want = expect[i];

		bad[i].cookie = 1000 + (uint64_t)i;
		assert_int_equal(isoshm_app_submit(g->a, 4, &bad[i], 1), 1);
		assert_true(isoshm_stack_poll(g->s, socks, 16) >= 0);
		assert_int_equal(isoshm_stack_recv_cmds(g->s, 4, got, 8), want == 0 ? 1 : want);
		/* the offending entry comes back so the daemon can answer it */
		assert_int_equal(got[0].cookie, 1000 + (uint64_t)i);
		assert_int_equal(isoshm_validate_cmd(8, 4, &bad[i]), want);
	}
	assert_int_equal(st->bad_opcode, 2);
	assert_int_equal(st->bad_sock, 3);
	assert_int_equal(st->bad_cmd, 14);
	assert_int_equal(st->cmds, 3);

	/* control slot: only SOCKET and NOP */
	c = cmd(ISOSTACK_SHM_OP_CLOSE, 0, 0);
	assert_int_equal(isoshm_validate_cmd(8, 0, &c), -EBADSLT);
	c = cmd(ISOSTACK_SHM_OP_SOCKET, 0, 0);
	c.arg[1] = (uint64_t)INT32_MAX + 1;
	assert_int_equal(isoshm_validate_cmd(8, 0, &c), -EINVAL);
	c = cmd(ISOSTACK_SHM_OP_NOP, 8, 0);
	assert_int_equal(isoshm_validate_cmd(8, 8, &c), -EBADSLT);

	/* a read stops before the first bad entry; the bad one comes next
	 * with its errno; the good ones after it follow */
	{
		struct isostack_shm_cmd three[3] = {
			cmd(ISOSTACK_SHM_OP_NOP, 4, 1), cmd(ISOSTACK_SHM_OP_NOP, 4, 2),
			cmd(ISOSTACK_SHM_OP_NOP, 4, 3),
		};

		three[1].flags = 9;
		assert_int_equal(isoshm_app_submit(g->a, 4, three, 3), 3);
		assert_int_equal(isoshm_stack_recv_cmds(g->s, 4, got, 8), 1);
		assert_int_equal(got[0].cookie, 1);
		assert_int_equal(isoshm_stack_recv_cmds(g->s, 4, got, 8), -EINVAL);
		assert_int_equal(got[0].cookie, 2);
		assert_int_equal(isoshm_stack_recv_cmds(g->s, 4, got, 8), 1);
		assert_int_equal(got[0].cookie, 3);
	}
	assert_int_equal(st->bad_index, 0);
}

/* Doorbell entries naming sockets that don't exist are dropped, counted. */
static void doorbell_bad_sock_ids(void **state)
{
	struct seg *g = *state;
	const struct isostack_shm_header *h = isoshm_stack_header(g->s);
	uint8_t *base = isoshm_stack_base(g->s);
	struct isostack_shm_doorbell *db = (void *)(base + h->db_ctl_off);
	uint32_t *slots = (void *)(base + h->db_slots_off);
	uint32_t socks[16];

	/* a hostile application writes the doorbell by hand */
	slots[0] = 8;
	slots[1] = 3;
	slots[2] = UINT32_MAX;
	atomic_store(&db[0].prod, 3);
	assert_int_equal(isoshm_stack_poll(g->s, socks, 16), 1);
	assert_int_equal(socks[0], 3);
	assert_int_equal(isoshm_stack_stats(g->s)->bad_sock, 2);

	/* a doorbell producer index that jumps: the application is broken */
	atomic_store(&db[1].prod, 1000);
	assert_int_equal(isoshm_stack_poll(g->s, socks, 16), -EPROTO);
	assert_int_equal(isoshm_stack_poll(g->s, socks, 16), -EPROTO);
	assert_int_equal(isoshm_stack_stats(g->s)->bad_index, 1);
}

/* Corrupt indices in each ring the stack reads: -EPROTO, counted once, the
 * socket stays broken, and other sockets keep working. */
static void corrupt_socket_indices(void **state)
{
	struct seg *g = *state;
	const struct isoshm_stats *st = isoshm_stack_stats(g->s);
	struct isostack_shm_cmd c = cmd(ISOSTACK_SHM_OP_NOP, 1, 0), got[8];
	struct isostack_shm_status s;
	struct isoshm_span span[2];
	uint8_t buf[64] = { 0 };

	memset(&s, 0, sizeof(s));
	/* command ring: cmd_prod beyond one ring */
	atomic_store(&g->socks[1].cmd_prod, 9);
	assert_int_equal(isoshm_stack_recv_cmds(g->s, 1, got, 8), -EPROTO);
	assert_int_equal(isoshm_stack_recv_cmds(g->s, 1, got, 8), -EPROTO);
	assert_int_equal(isoshm_stack_post_status(g->s, 1, &s, 1), -EPROTO);
	assert_int_equal(st->bad_index, 1);

	/* status ring: status_cons past status_prod */
	atomic_store(&g->socks[2].status_cons, 1);
	assert_int_equal(isoshm_stack_post_status(g->s, 2, &s, 1), 1); /* cached: fine */
	for (int i = 0; i < 7; i++)
		assert_int_equal(isoshm_stack_post_status(g->s, 2, &s, 1), 1);
	atomic_store(&g->socks[2].status_cons, 100);
	assert_int_equal(isoshm_stack_post_status(g->s, 2, &s, 1), -EPROTO);
	assert_int_equal(st->bad_index, 2);

	/* TX ring: tx_prod jumps, then (another socket) moves backwards */
	atomic_store(&g->socks[3].tx_prod, 4097);
	assert_int_equal(isoshm_stack_tx_peek(g->s, 3, span), -EPROTO);
	assert_int_equal(isoshm_app_tx_write(g->a, 4, buf, 64), 64);
	assert_int_equal(isoshm_stack_tx_peek(g->s, 4, span), 64);
	atomic_store(&g->socks[4].tx_prod, 10);
	assert_int_equal(isoshm_stack_tx_peek(g->s, 4, span), -EPROTO);
	assert_int_equal(isoshm_stack_tx_release(g->s, 4, 10), -EINVAL);
	assert_int_equal(st->bad_index, 4);

	/* RX ring: rx_cons past rx_prod */
	atomic_store(&g->socks[5].rx_cons, 5);
	assert_int_equal(isoshm_stack_rx_space(g->s, 5), -EPROTO);
	assert_int_equal(isoshm_stack_rx_write(g->s, 5, buf, 1), -EPROTO);
	assert_int_equal(st->bad_index, 5);

	/* ... and socket 6 is unaffected */
	c.sock = 6;
	assert_int_equal(isoshm_app_submit(g->a, 6, &c, 1), 1);
	assert_int_equal(isoshm_stack_recv_cmds(g->s, 6, got, 8), 1);
	assert_int_equal(isoshm_stack_rx_write(g->s, 6, buf, 64), 64);
	assert_int_equal(isoshm_app_rx_read(g->a, 6, buf, 64), 64);
	assert_int_equal(st->bad_index, 5);

	/* a stack that breaks the protocol shows up as -EPROTO on the app side */
	atomic_store(&g->socks[7].cmd_cons, 9); /* past cmd_prod once it is read */
	c.sock = 7;
	for (int i = 0; i < 8; i++)
		assert_int_equal(isoshm_app_submit(g->a, 7, &c, 1), 1);
	assert_int_equal(isoshm_app_submit(g->a, 7, &c, 1), -EPROTO);
}

static uint32_t fnv1a(uint32_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

/* Byte streams through the TX and RX rings, crossing the wrap. */
static void tx_rx_streams(void **state)
{
	struct seg *g = *state;
	const struct isostack_shm_header *h = isoshm_stack_header(g->s);
	uint8_t src[3000], dst[4096];
	uint32_t h_in = 2166136261u, h_out = 2166136261u;
	uint32_t pos = 0, total = 0;
	struct isoshm_span span[2];
	int spans2 = 0;

	for (unsigned int round = 0; round < 20; round++) {
		int n, k;

		for (size_t i = 0; i < sizeof(src); i++)
			src[i] = (uint8_t)(pos + i * 7 + round);
		n = isoshm_app_tx_write(g->a, 1, src, sizeof(src));
		assert_int_equal(n, (int)sizeof(src)); /* ring drained every round */
		h_in = fnv1a(h_in, src, (size_t)n);
		pos += (uint32_t)n;

		k = isoshm_stack_tx_peek(g->s, 1, span);
		assert_int_equal(k, n);
		assert_int_equal(span[0].len + span[1].len, (uint32_t)k);
		spans2 += span[1].len != 0;
		for (int i = 0; i < 2; i++) {
			assert_true(span[i].off >= h->tx_off + h->tx_ring_bytes);
			assert_true(span[i].off + span[i].len <= h->tx_off + 2 * h->tx_ring_bytes);
			h_out = fnv1a(h_out, span[i].addr, span[i].len);
		}
		assert_int_equal(isoshm_stack_tx_release(g->s, 1, (uint32_t)k + 1), -EINVAL);
		assert_int_equal(isoshm_stack_tx_release(g->s, 1, (uint32_t)k), 0);
		total += (uint32_t)k;
	}
	assert_int_equal(h_in, h_out);
	assert_true(spans2 > 0);
	/* full TX ring: a partial write, then 0 */
	assert_int_equal(isoshm_app_tx_write(g->a, 2, dst, 3000), 3000);
	assert_int_equal(isoshm_app_tx_write(g->a, 2, dst, 3000), 4096 - 3000);
	assert_int_equal(isoshm_app_tx_write(g->a, 2, dst, 1), 0);

	/* RX: the stack writes, the application reads in other sizes */
	h_in = h_out = 2166136261u;
	for (unsigned int round = 0; round < 30; round++) {
		int space = isoshm_stack_rx_space(g->s, 3);
		int n, k;

		assert_true(space >= 0 && space <= 4096);
		for (size_t i = 0; i < sizeof(src); i++)
			src[i] = (uint8_t)(i * 13 + round);
		n = isoshm_stack_rx_write(g->s, 3, src, 1000 + round * 67);
		assert_true(n > 0);
		h_in = fnv1a(h_in, src, (size_t)n);
		assert_int_equal(isoshm_app_rx_avail(g->a, 3), n);
		k = isoshm_app_rx_read(g->a, 3, dst, sizeof(dst));
		assert_int_equal(k, n);
		h_out = fnv1a(h_out, dst, (size_t)k);
	}
	assert_int_equal(h_in, h_out);
	(void)total;
}

/* ---- Futex sleep and wake ---------------------------------------------- */

struct sleeper {
	struct seg *g;
	uint32_t sock;
	int rc;
	struct isostack_shm_status st;
};

static bool status_ready(void *arg)
{
	struct sleeper *sl = arg;

	return isoshm_app_status_avail(sl->g->a, sl->sock) > 0;
}

static void *sleeper_main(void *arg)
{
	struct sleeper *sl = arg;

	sl->rc = isoshm_app_wait(sl->g->a, sl->sock, status_ready, sl, 0, 10LL * 1000000000);
	if (sl->rc == 0 && isoshm_app_recv_status(sl->g->a, sl->sock, &sl->st, 1) != 1)
		sl->rc = -ENOENT;
	return NULL;
}

/* Waits (yielding, not sleeping) until n threads announced sleep. */
static void wait_for_waiters(_Atomic uint32_t *waiters, uint32_t n)
{
	while (atomic_load(waiters) < n)
		sched_yield();
}

static void futex_sleep_wake(void **state)
{
	struct seg *g = *state;
	const struct isoshm_stats *st = isoshm_stack_stats(g->s);
	struct sleeper sl = { .g = g, .sock = 2, .rc = 1 };
	struct isostack_shm_status s;
	pthread_t t;

	memset(&s, 0, sizeof(s));
	/* no sleeper: posting makes no syscall */
	assert_int_equal(isoshm_stack_post_status(g->s, 1, &s, 1), 1);
	assert_int_equal(isoshm_stack_notify(g->s, 1), 0);
	assert_int_equal(st->wakes, 0);

	/* ready before sleeping: returns at once, no sleep */
	sl.sock = 1;
	sleeper_main(&sl);
	assert_int_equal(sl.rc, 0);
	assert_int_equal(isoshm_app_sleeps(g->a), 0);

	/* a thread sleeps on socket 2; the stack's post wakes it */
	sl.sock = 2;
	sl.rc = 1;
	assert_int_equal(pthread_create(&t, NULL, sleeper_main, &sl), 0);
	/*
	 * Post only once the sleeper has passed its re-check and counted the
	 * sleep it is about to take (the counter moves just before
	 * FUTEX_WAIT): posting as soon as it announces itself lets the
	 * re-check see the status and return without sleeping, which is
	 * correct but leaves the sleep path untested.
	 */
	wait_for_waiters(&g->socks[2].waiters, 1);
	while (isoshm_app_sleeps(g->a) < 1)
		sched_yield();
	s.cookie = 77;
	assert_int_equal(isoshm_stack_post_status(g->s, 2, &s, 1), 1);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(sl.rc, 0);
	assert_int_equal(sl.st.cookie, 77);
	assert_int_equal(st->wakes, 1);
	assert_int_equal(atomic_load(&g->socks[2].waiters), 0);
	assert_true(isoshm_app_sleeps(g->a) >= 1);

	/* nothing comes: the timeout fires */
	assert_int_equal(isoshm_app_wait(g->a, 3, status_ready, &(struct sleeper){ .g = g, .sock = 3 },
					 10, 2000000), -ETIMEDOUT);
	assert_int_equal(atomic_load(&g->socks[3].waiters), 0);
	assert_int_equal(isoshm_app_wait(g->a, 8, status_ready, &sl, 0, 0), -EBADF);
}

static bool any_status(void *arg)
{
	struct seg *g = arg;

	for (uint32_t s = 1; s < 8; s++)
		if (isoshm_app_status_avail(g->a, s) > 0)
			return true;
	return false;
}

static void *any_sleeper(void *arg)
{
	struct seg *g = arg;

	return (void *)(intptr_t)isoshm_app_wait(g->a, ISOSHM_WAIT_ANY, any_status, g, 100,
						 10LL * 1000000000);
}

/* The app-wide wait point (poll/epoll on many sockets). */
static void futex_wait_any(void **state)
{
	struct seg *g = *state;
	const struct isostack_shm_header *h = isoshm_stack_header(g->s);
	struct isostack_shm_wait *w = (void *)((uint8_t *)isoshm_stack_base(g->s) + h->wait_off);
	struct isostack_shm_status s;
	pthread_t t[2];
	void *rc;

	memset(&s, 0, sizeof(s));
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, any_sleeper, g), 0);
	wait_for_waiters(&w->waiters, 2);
	assert_int_equal(isoshm_stack_rx_write(g->s, 6, "x", 1), 1); /* RX alone: no status */
	assert_int_equal(isoshm_stack_post_status(g->s, 5, &s, 1), 1);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(t[i], &rc), 0);
		assert_int_equal((intptr_t)rc, 0);
	}
	assert_int_equal(atomic_load(&w->waiters), 0);
}

static void fd_passing(void **state)
{
	int sv[2], fd = 7;
	char buf[4];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(isoshm_send_fd(sv[0], -1, "x", 1), -EINVAL);
	assert_int_equal(isoshm_send_fd(sv[0], 0, "x", 0), -EINVAL);
	assert_int_equal(write(sv[0], "ab", 2), 2); /* bytes without an fd */
	assert_int_equal(isoshm_recv_fd(sv[1], &fd, buf, sizeof(buf)), 2);
	assert_int_equal(fd, -1);
	close(sv[0]);
	assert_int_equal(isoshm_recv_fd(sv[1], &fd, buf, sizeof(buf)), 0); /* hang-up */
	assert_int_equal(isoshm_send_fd(sv[1], 0, "x", 1), -EPIPE);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ring_init_rejects),
		cmocka_unit_test(ring_wraparound_bursts),
		cmocka_unit_test(ring_full_empty),
		cmocka_unit_test(ring_corrupt_indices),
		cmocka_unit_test(segment_create_attach),
		cmocka_unit_test(params_rejected),
		cmocka_unit_test_setup_teardown(header_validation, seg_setup, seg_teardown),
		cmocka_unit_test_setup_teardown(command_round_trip, seg_setup, seg_teardown),
		cmocka_unit_test_setup_teardown(doorbell_repeat_suppression, seg_setup, seg_teardown),
		cmocka_unit_test_setup_teardown(command_validation, seg_setup, seg_teardown),
		cmocka_unit_test_setup_teardown(doorbell_bad_sock_ids, seg_setup, seg_teardown),
		cmocka_unit_test_setup_teardown(corrupt_socket_indices, seg_setup, seg_teardown),
		cmocka_unit_test_setup_teardown(tx_rx_streams, seg_setup, seg_teardown),
		cmocka_unit_test_setup_teardown(futex_sleep_wake, seg_setup, seg_teardown),
		cmocka_unit_test_setup_teardown(futex_wait_any, seg_setup, seg_teardown),
		cmocka_unit_test(fd_passing),
	};

	return cmocka_run_group_tests_name("shm", tests, NULL, NULL);
}
