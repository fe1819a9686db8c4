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
 *     (lwIP asserted the walk's first pcb was the active list's first);
 *   - TIME-WAIT pcbs (patch 0015): their list is walked only once the
 *     oldest one's 2 MSL are up, and each still goes at its own time.
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

static int tw_count(void)
{
	int n = 0;

	for (struct tcp_pcb *pcb = tcp_tw_pcbs; pcb != NULL; pcb = pcb->next)
		n++;
	return n;
}

/* Clients [from, to) close first: they end in TIME-WAIT (their servers
 * close when the FIN arrives). */
static void close_first(int from, int to, int tw_after)
{
	long steps;

	for (int i = from; i < to; i++) {
		assert_int_equal(tcp_close(mc.client[i]), ERR_OK);
		mc.client[i] = NULL;
	}
	for (steps = 0; tw_count() < tw_after && steps < MAX_STEPS; steps++)
		loop_step();
	assert_int_equal(tw_count(), tw_after);
}

/*
 * Patch 0015: the TIME-WAIT list is walked only when its oldest pcb's
 * 2 MSL are up, and each pcb still goes at its own time.  Half the
 * connections enter TIME-WAIT, the other half 20 ticks (10 s) later: no
 * walk in the 2 MSL after, the first half gone once theirs are up (the
 * second half kept), the second half 20 ticks later, a few walks in all.
 */
static void test_tw_walk_when_due(void **state)
{
	struct tcp_pcb *listener = all_up();
	const int msl2 = 2 * TCP_MSL / TCP_SLOW_INTERVAL;   /* ticks */
	u32_t walks0;

	(void)state;
	close_first(0, MANY_CONNS / 2, MANY_CONNS / 2);
	walks0 = tcp_tw_walks;
	slow_ticks(20);
	/* A pcb's 2 MSL count from the last segment it took before its
	 * close (lwIP moves tmr no more once the receive side is closed):
	 * the second half talks first, so theirs start 20 ticks later. */
	for (int i = MANY_CONNS / 2; i < MANY_CONNS; i++)
		client_send(i);
	slow_ticks(1);
	close_first(MANY_CONNS / 2, MANY_CONNS, MANY_CONNS);
	slow_ticks(msl2 - 21 - 4);
	assert_int_equal(tcp_tw_walks, walks0);          /* none was due */
	assert_int_equal(tw_count(), MANY_CONNS);
	slow_ticks(8);                                   /* the first half's time */
	assert_int_equal(tw_count(), MANY_CONNS / 2);
	assert_in_range(tcp_tw_walks - walks0, 1, 3);
	slow_ticks(20);
	assert_int_equal(tw_count(), 0);
	assert_in_range(tcp_tw_walks - walks0, 2, 6);
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
		cmocka_unit_test_teardown(test_tw_walk_when_due, budget_reset),
	};

	return cmocka_run_group_tests_name("tcptmr", tests, group_setup, NULL);
}
