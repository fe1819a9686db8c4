/*
 * The evaluation variants' side of the segment (shm_abi.h, header.variant):
 * Basic and Aggregate give each application thread a doorbell of its own,
 * handed out in doorbell 0's `threads` count, and the stack scans only as
 * many doorbells as were handed out; SEND may carry a byte count.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "isoshm.h"
#include "shm_fixture.h"

#define UNIT ISOSTACK_SHM_EXTENT_UNIT
#define RING 4096u
#define NDB  4u

struct seg {
	struct isoshm_stack *s;
	struct isoshm_app *a;
};

static int fetch_cb(void *arg, uint32_t id, uint64_t *off, uint64_t *size)
{
	struct seg *g = arg;

	return extent_fd_dup(g->s, id, off, size);
}

/* A Basic segment with NDB doorbells and ids 1..15 open on 4 KiB rings. */
static int setup(void **state)
{
	struct seg *g = calloc(1, sizeof(*g));
	struct isoshm_params p;
	struct isoshm_attach_info info;
	uint64_t off;

	assert_non_null(g);
	isoshm_params_default(&p);
	p.max_sockets = 16;
	p.nr_doorbells = NDB;
	p.cmd_entries = 8;
	p.status_entries = 8;
	p.max_ring_bytes = 16384;
	p.arena_size = 4 * UNIT;
	p.hugetlb = false;
	p.variant = ISOSTACK_SHM_VARIANT_BASIC;
	assert_int_equal(isoshm_stack_create(&g->s, &p), 0);
	assert_int_equal(isoshm_app_attach(&g->a, dup(isoshm_stack_fd(g->s)), &info), 0);
	isoshm_app_set_fetch(g->a, fetch_cb, g);
	open_ids_in_new_extent(g->s, g->a, p.max_sockets, RING, &off);
	*state = g;
	return 0;
}

static int teardown(void **state)
{
	struct seg *g = *state;

	isoshm_app_detach(g->a);
	isoshm_stack_destroy(g->s);
	free(g);
	return 0;
}

static uint32_t threads_count(struct seg *g)
{
	const struct isostack_shm_header *h = isoshm_stack_header(g->s);
	const struct isostack_shm_doorbell *db = (const void *)
		((const uint8_t *)isoshm_stack_base(g->s) + h->db_ctl_off);

	return atomic_load(&db[0].threads);
}

static void nop(struct seg *g, uint32_t id)
{
	struct isostack_shm_cmd c;

	memset(&c, 0, sizeof(c));
	c.opcode = ISOSTACK_SHM_OP_NOP;
	c.sock = id;
	assert_int_equal(isoshm_app_submit(g->a, id, &c, 1), 1);
}

struct poster {
	struct seg *g;
	uint32_t id;
};

static void *post_thread(void *arg)
{
	struct poster *p = arg;

	nop(p->g, p->id);
	nop(p->g, p->id);        /* the same thread: the same doorbell, no new count */
	return NULL;
}

/* The header says what the application must know. */
static void header_announces_variant(void **state)
{
	struct seg *g = *state;
	const struct isostack_shm_header *h = isoshm_app_header(g->a);

	assert_int_equal(h->variant, ISOSTACK_SHM_VARIANT_BASIC);
	assert_true(h->features & ISOSTACK_SHM_FEAT_THREAD_DOORBELLS);
	assert_int_equal(h->nr_doorbells, NDB);
}

/* Three threads, three doorbells; the scan covers exactly those. */
static void doorbell_per_thread(void **state)
{
	struct seg *g = *state;
	struct poster p[3];
	pthread_t t[3];
	uint32_t socks[16], seen = 0;
	struct isostack_shm_cmd c;
	int n;

	assert_int_equal(threads_count(g), 0);
	for (uint32_t i = 0; i < 3; i++) {
		p[i] = (struct poster){ .g = g, .id = i + 1 };
		assert_int_equal(pthread_create(&t[i], NULL, post_thread, &p[i]), 0);
	}
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	assert_int_equal(threads_count(g), 3);
	n = isoshm_stack_poll(g->s, socks, 16);
	assert_int_equal(n, 3);
	for (int i = 0; i < n; i++)
		seen |= 1u << socks[i];
	assert_int_equal(seen, 0xe);    /* ids 1, 2, 3 */

	/* Doorbell 3 belongs to no thread yet: not scanned... */
	memset(&c, 0, sizeof(c));
	c.opcode = ISOSTACK_SHM_OP_NOP;
	c.sock = 5;
	assert_int_equal(isoshm_app_submit_db(g->a, 5, 3, &c, 1), 1);
	assert_int_equal(isoshm_stack_poll(g->s, socks, 16), 0);
	/* ...until a fourth thread (this one) is handed it. */
	nop(g, 6);
	assert_int_equal(threads_count(g), 4);
	n = isoshm_stack_poll(g->s, socks, 16);
	assert_int_equal(n, 2);
	assert_int_equal((1u << socks[0]) | (1u << socks[1]), (1u << 5) | (1u << 6));
}

/* A full scan stops early and the next one starts where it stopped: the
 * first doorbells, busy again, do not starve the last ones. */
static void scan_resumes(void **state)
{
	struct seg *g = *state;
	struct poster p[NDB + 2];
	pthread_t t;
	uint32_t socks[2];

	for (uint32_t i = 0; i < NDB + 2; i++) {
		/* threads 0..3 post ids 1..4 on doorbells 0..3; after the
		 * first scan, threads 4 and 5 (doorbells 0 and 1) post ids 1, 2 */
		p[i] = (struct poster){ .g = g, .id = i % NDB + 1 };
		assert_int_equal(pthread_create(&t, NULL, post_thread, &p[i]), 0);
		assert_int_equal(pthread_join(t, NULL), 0);
		if (i == NDB - 1) {
			assert_int_equal(isoshm_stack_poll(g->s, socks, 2), 2);
			assert_int_equal((1u << socks[0]) | (1u << socks[1]), 0x6);
		}
	}
	assert_int_equal(isoshm_stack_poll(g->s, socks, 2), 2);
	assert_int_equal((1u << socks[0]) | (1u << socks[1]), 0x18);   /* ids 3, 4 */
	assert_int_equal(isoshm_stack_poll(g->s, socks, 2), 2);
	assert_int_equal((1u << socks[0]) | (1u << socks[1]), 0x6);    /* ids 1, 2 */
}

/* SEND may carry a byte count (Basic); its other words stay zero. */
static void send_count_validated(void **state)
{
	struct isostack_shm_cmd c;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.opcode = ISOSTACK_SHM_OP_SEND;
	c.sock = 3;
	c.arg[0] = 1000;
	assert_int_equal(isoshm_validate_cmd(16, 3, &c), 0);
	c.arg[1] = 1;
	assert_int_equal(isoshm_validate_cmd(16, 3, &c), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(header_announces_variant, setup, teardown),
		cmocka_unit_test_setup_teardown(doorbell_per_thread, setup, teardown),
		cmocka_unit_test_setup_teardown(scan_resumes, setup, teardown),
		cmocka_unit_test(send_count_validated),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
