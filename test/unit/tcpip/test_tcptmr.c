/*
 * lwIP's TCP timers a slice at a time (our lwIP patch 0009): a tick of the
 * fast or the slow timer visits at most tcp_tmr_budget pcbs, and
 * tcp_tmr_continue() goes on with the rest, as isostackd's loop does
 * between its polls of the device (a tick over 100,000 pcbs held it for
 * 10 ms).  Over the virtual link of vlink.c:
 *   - delayed ACKs: a tick sends at most the budget's worth, the rest go
 *     out as the walk goes on, and a tick that finds the walk unfinished
 *     lets it finish first (counted late);
 *   - the slow walk's cursor: the pcb it would visit next is freed in the
 *     middle of a walk; every other pcb is still visited exactly once;
 *   - a pcb that rejoins the slow walk at its head (it was quiet, then sent
 *     into a dead link) and is not the newest active pcb times out cleanly
 *     (lwIP asserted the walk's first pcb was the active list's first).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lwip/tcp.h"
#include "lwip/priv/tcp_priv.h"

#include "isotcp.h"
#include "vlink.h"

#define BUDGET 2

/* MANY_CONNS connections, up and then quiet (off the slow walk). */
static struct tcp_pcb *all_up(void)
{
	struct tcp_pcb *listener = many_listen();
	long steps;

	for (int i = 0; i < MANY_CONNS; i++)
		delayed_ack_pair(i);
	for (steps = 0; mc.connected < MANY_CONNS && steps < MAX_STEPS; steps++)
		loop_step();
	assert_int_equal(mc.connected, MANY_CONNS);
	slow_ticks(4);
	assert_false(tcp_tmr_pending());
	return listener;
}

static void all_close(struct tcp_pcb *listener)
{
	tcp_tmr_budget = TCP_TMR_BUDGET;
	vl.loss_permille = 0;
	for (int i = 0; i < MANY_CONNS; i++) {
		if (mc.client[i] != NULL) {
			assert_int_equal(tcp_close(mc.client[i]), ERR_OK);
			mc.client[i] = NULL;
		} else if (mc.server[i] != NULL) {
			tcp_abort(mc.server[i]);        /* its client is gone */
		}
	}
	many_finish(listener);
	assert_int_equal(isotcp_memp_in_use(), 0);
	assert_int_equal(isotcp_heap_in_use(), 0);
}

static void client_send(int i)
{
	assert_int_equal(tcp_write(mc.client[i], "ping", 4, TCP_WRITE_FLAG_COPY), ERR_OK);
	assert_int_equal(tcp_output(mc.client[i]), ERR_OK);
}

static int acks_delayed(void)
{
	int n = 0;

	for (int i = 0; i < MANY_CONNS; i++)
		n += (mc.server[i]->flags & TF_ACK_DELAY) != 0;
	return n;
}

static void test_fast_budget(void **state)
{
	struct tcp_pcb *listener = all_up();
	u32_t late;

	(void)state;
	tcp_tmr_budget = BUDGET;
	for (int i = 0; i < MANY_CONNS; i++)
		client_send(i);
	link_pump();                    /* one lone segment each: ACKs delayed */
	assert_int_equal(acks_delayed(), MANY_CONNS);

	tcp_fasttmr();
	assert_int_equal(acks_delayed(), MANY_CONNS - BUDGET);
	assert_true(tcp_tmr_pending());
	tcp_tmr_continue();
	assert_int_equal(acks_delayed(), MANY_CONNS - 2 * BUDGET);

	/* The next tick finds the walk unfinished: it goes on with it. */
	late = tcp_tmr_late;
	tcp_fasttmr();
	assert_int_equal(tcp_tmr_late, late + 1);
	assert_int_equal(acks_delayed(), MANY_CONNS - 3 * BUDGET);
	while (tcp_tmr_pending())
		tcp_tmr_continue();
	assert_int_equal(acks_delayed(), 0);

	/* The ACKs left: every client's data is acknowledged, none resent. */
	link_pump();
	for (int i = 0; i < MANY_CONNS; i++) {
		assert_null(mc.client[i]->unacked);
		assert_int_equal(mc.client[i]->nrtx, 0);
	}
	all_close(listener);
}

/* The slow walk counts rtime up once a visit (no retransmission here:
 * the clients' rto is raised first). */
static bool visited(const struct tcp_pcb *pcb)
{
	return pcb->rtime == 1;
}

static void test_slow_cursor(void **state)
{
	struct tcp_pcb *listener = all_up();
	struct tcp_pcb *cursor = NULL, *first = NULL;
	int freed = 0;

	(void)state;
	/* Every segment lost: all clients retransmit, all on the slow walk. */
	vl.loss_permille = 1000;
	for (int i = 0; i < MANY_CONNS; i++) {
		client_send(i);
		assert_non_null(mc.client[i]->slow_pprev);
		assert_int_equal(mc.client[i]->rtime, 0);
		mc.client[i]->rto = 1000;
	}
	tcp_tmr_budget = BUDGET;
	tcp_slowtmr();
	assert_true(tcp_tmr_pending());

	/* The walk's first BUDGET pcbs are visited; the next is its cursor. */
	for (int i = 0; i < MANY_CONNS; i++) {
		struct tcp_pcb *c = mc.client[i];

		if (!visited(c))
			continue;
		if (first == NULL)
			first = c;
		if (c->slow_next != NULL && !visited(c->slow_next))
			cursor = c->slow_next;
	}
	assert_non_null(first);
	assert_non_null(cursor);

	/* Free the cursor's pcb and a visited one; the walk goes on. */
	for (int i = 0; i < MANY_CONNS; i++) {
		if (mc.client[i] == cursor || mc.client[i] == first) {
			tcp_abort(mc.client[i]);
			freed++;
		}
	}
	assert_int_equal(freed, 2);
	while (tcp_tmr_pending())
		tcp_tmr_continue();
	for (int i = 0; i < MANY_CONNS; i++) {
		if (mc.client[i] == NULL)
			continue;
		assert_true(visited(mc.client[i]));      /* once, not twice */
		freed++;
	}
	assert_int_equal(freed, MANY_CONNS);
	all_close(listener);
}

static void test_slow_rejoined_times_out(void **state)
{
	struct tcp_pcb *listener = all_up();
	struct tcp_pcb *old = mc.client[0];
	long steps;

	(void)state;
	assert_null(old->slow_pprev);            /* quiet: off the walk */
	assert_true(tcp_active_pcbs != old);     /* newer connections came after */
	vl.loss_permille = 1000;
	client_send(0);                          /* back on the walk, at its head */
	for (steps = 0; mc.client[0] != NULL && steps < MAX_STEPS; steps++)
		loop_step();
	assert_null(mc.client[0]);               /* gave up retransmitting */
	assert_int_equal(mc.errors, 1);
	all_close(listener);
}

static int budget_reset(void **state)
{
	tcp_tmr_budget = TCP_TMR_BUDGET;
	return check_pools_empty(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_fast_budget, budget_reset),
		cmocka_unit_test_teardown(test_slow_cursor, budget_reset),
		cmocka_unit_test_teardown(test_slow_rejoined_times_out, budget_reset),
	};

	return cmocka_run_group_tests_name("tcptmr", tests, group_setup, NULL);
}
