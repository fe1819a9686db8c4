/*
 * Proves the lwIP build: lwIP compiled from Debian's source with our
 * lwipopts.h (NO_SYS, no locks) carries a TCP stream correctly.
 *
 * Over the virtual link of vlink.c (two netifs in one lwIP instance, a fake
 * clock):
 * A client pcb connects to a listening pcb, sends 1 MB of pseudo-random
 * bytes; the server checks them by a running FNV-1a hash against the same
 * stream generated independently, both sides close, and after TIME_WAIT has
 * expired every lwIP pool and the heap must be back to zero in use. A second
 * case does the same over a link that drops 3% of the packets. A third
 * checks that pcbs leave the list of active pcbs without a walk of it
 * (patch 0005), by every path a connection ends on; a fourth that delayed
 * ACKs still leave on time when the fast timer visits only the pcbs that
 * asked (patch 0006); a fifth that idle pcbs leave the slow timer's walk
 * and come back when they have something to time (patch 0007).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lwip/init.h"
#include "lwip/ip4.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/stats.h"
#include "lwip/tcp.h"
#include "lwip/timeouts.h"
#include "lwip/priv/tcp_priv.h"

#include "isotcp.h"
#include "vlink.h"

#define TRANSFER_BYTES   (1024u * 1024u)


/* ---- Deterministic byte stream and its hash ------------------------- */

struct stream {
	uint64_t state;
};

static uint8_t stream_next(struct stream *s)
{
	s->state ^= s->state << 13;
	s->state ^= s->state >> 7;
	s->state ^= s->state << 17;
	return (uint8_t)s->state;
}

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

#define FNV_OFFSET 0xcbf29ce484222325ull
#define STREAM_SEED 0x1234abcd5678ef01ull


/* ---- The two applications ------------------------------------------- */

struct transfer {
	struct tcp_pcb *listener, *server, *client;
	struct stream tx_stream;
	uint32_t tx_bytes, rx_bytes;
	uint64_t tx_hash, rx_hash;
	bool client_closed, server_closed;
	err_t client_err;
	uint8_t chunk[8192];
};

static struct transfer xfer;

static void client_fill(struct tcp_pcb *pcb)
{
	while (xfer.tx_bytes < TRANSFER_BYTES) {
		uint32_t room = tcp_sndbuf(pcb);
		uint32_t n = TRANSFER_BYTES - xfer.tx_bytes;

		if (n > sizeof(xfer.chunk))
			n = sizeof(xfer.chunk);
		if (n > room)
			n = room;
		if (n == 0 || tcp_sndqueuelen(pcb) >= TCP_SND_QUEUELEN - 8)
			break;
		for (uint32_t i = 0; i < n; i++)
			xfer.chunk[i] = stream_next(&xfer.tx_stream);
		assert_int_equal(tcp_write(pcb, xfer.chunk, (u16_t)n,
					   TCP_WRITE_FLAG_COPY), ERR_OK);
		xfer.tx_hash = fnv1a(xfer.tx_hash, xfer.chunk, n);
		xfer.tx_bytes += n;
	}
	tcp_output(pcb);
	if (xfer.tx_bytes == TRANSFER_BYTES && !xfer.client_closed) {
		assert_int_equal(tcp_close(pcb), ERR_OK);
		xfer.client_closed = true;
		xfer.client = NULL;
	}
}

static err_t client_sent(void *arg, struct tcp_pcb *pcb, u16_t len)
{
	(void)arg;
	(void)len;
	client_fill(pcb);
	return ERR_OK;
}

static err_t client_connected(void *arg, struct tcp_pcb *pcb, err_t err)
{
	(void)arg;
	assert_int_equal(err, ERR_OK);
	tcp_sent(pcb, client_sent);
	client_fill(pcb);
	return ERR_OK;
}

static void client_error(void *arg, err_t err)
{
	(void)arg;
	xfer.client_err = err;
	xfer.client = NULL;
}

static err_t server_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p,
			 err_t err)
{
	(void)arg;
	assert_int_equal(err, ERR_OK);
	if (p == NULL) {                        /* peer's FIN: close our side */
		assert_int_equal(tcp_close(pcb), ERR_OK);
		xfer.server_closed = true;
		xfer.server = NULL;
		return ERR_OK;
	}
	for (struct pbuf *q = p; q != NULL; q = q->next)
		xfer.rx_hash = fnv1a(xfer.rx_hash, q->payload, q->len);
	xfer.rx_bytes += p->tot_len;
	tcp_recved(pcb, p->tot_len);
	pbuf_free(p);
	return ERR_OK;
}

static err_t server_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
	(void)arg;
	assert_int_equal(err, ERR_OK);
	assert_null(xfer.server);
	xfer.server = pcb;
	tcp_recv(pcb, server_recv);
	return ERR_OK;
}

static uint64_t expected_hash(uint32_t nbytes)
{
	struct stream s = { .state = STREAM_SEED };
	uint64_t h = FNV_OFFSET;

	for (uint32_t i = 0; i < nbytes; i++) {
		uint8_t b = stream_next(&s);

		h = fnv1a(h, &b, 1);
	}
	return h;
}

static void run_transfer(unsigned int loss_permille)
{
	ip_addr_t server_ip;
	struct tcp_pcb *pcb;
	long steps;

	memset(&xfer, 0, sizeof(xfer));
	xfer.tx_stream.state = STREAM_SEED;
	xfer.tx_hash = xfer.rx_hash = FNV_OFFSET;
	link_up(loss_permille);

	pcb = tcp_new();
	assert_non_null(pcb);
	assert_int_equal(tcp_bind(pcb, netif_ip_addr4(&vl.b.netif), SERVER_PORT), ERR_OK);
	xfer.listener = tcp_listen(pcb);
	assert_non_null(xfer.listener);
	tcp_accept(xfer.listener, server_accept);

	xfer.client = tcp_new();
	assert_non_null(xfer.client);
	tcp_err(xfer.client, client_error);
	assert_int_equal(tcp_bind(xfer.client, netif_ip_addr4(&vl.a.netif), 0), ERR_OK);
	ip_addr_copy(server_ip, *netif_ip_addr4(&vl.b.netif));
	assert_int_equal(tcp_connect(xfer.client, &server_ip, SERVER_PORT,
				     client_connected), ERR_OK);

	for (steps = 0; !xfer.server_closed && steps < MAX_STEPS; steps++)
		loop_step();
	assert_true(xfer.server_closed);
	assert_int_equal(xfer.client_err, ERR_OK);
	assert_int_equal(xfer.tx_bytes, TRANSFER_BYTES);
	assert_int_equal(xfer.rx_bytes, TRANSFER_BYTES);
	assert_true(xfer.rx_hash == xfer.tx_hash);
	assert_true(xfer.rx_hash == expected_hash(TRANSFER_BYTES));
	if (loss_permille > 0)
		assert_true(vl.dropped > 0);

	/* Let the last ACKs through and TIME_WAIT (2 * MSL) expire. */
	assert_int_equal(tcp_close(xfer.listener), ERR_OK);
	for (steps = 0; (tcp_active_pcbs || tcp_tw_pcbs) && steps < MAX_STEPS; steps++)
		loop_step();
	assert_null(tcp_active_pcbs);
	assert_null(tcp_tw_pcbs);
	link_down();

	print_message("transfer: %u bytes, %lu packets, %lu dropped, %u ms of fake time\n",
		      xfer.rx_bytes, vl.sent, vl.dropped, (unsigned int)fake_now_ms);
	assert_int_equal(isotcp_memp_in_use(), 0);
	assert_int_equal(isotcp_heap_in_use(), 0);
}

static void test_transfer_1mb(void **state)
{
	(void)state;
	run_transfer(0);
}

static void test_transfer_1mb_lossy(void **state)
{
	(void)state;
	run_transfer(30);
}

/* ---- Many connections: leaving the list of active pcbs ---------------- */

/*
 * With 100,000 connections, taking a pcb off tcp_active_pcbs by walking
 * that list from its head (lwIP's TCP_RMV) cost the stack core a
 * millisecond per closed connection: the peers' FINs were dropped at the
 * port while it walked, and peers gave up on them (docs/lwip.md, patch
 * 0005).  Every way a pcb leaves the list must unlink it without a walk:
 * here the list is cut after its head, so a walk cannot find the oldest
 * connections, which sit at its tail, while a close, an abort and a reset
 * take them off.
 */


static bool on_active_list(const struct tcp_pcb *pcb)
{
	for (const struct tcp_pcb *p = tcp_active_pcbs; p != NULL; p = p->next)
		if (p == pcb)
			return true;
	return false;
}

static int active_count(void)
{
	int n = 0;

	for (const struct tcp_pcb *p = tcp_active_pcbs; p != NULL; p = p->next)
		n++;
	return n;
}

static void test_active_unlink(void **state)
{
	struct tcp_pcb *listener, *head, *rest, *closed[4];
	long steps;

	(void)state;
	listener = many_listen();
	for (int i = 0; i < MANY_CONNS; i++) {
		mc.client[i] = many_connect(i);
		mc.client_port[i] = mc.client[i]->local_port;
	}
	for (steps = 0; (mc.accepted < MANY_CONNS || mc.connected < MANY_CONNS) &&
	     steps < MAX_STEPS; steps++)
		loop_step();
	assert_int_equal(mc.accepted, MANY_CONNS);
	assert_int_equal(mc.connected, MANY_CONNS);
	assert_int_equal(active_count(), 2 * MANY_CONNS);

	/* Connections 0 and 1 are the oldest: at the tail, well past the
	 * head and its successor, whose link is cut (and put back below). */
	closed[0] = mc.client[0];
	closed[1] = mc.server[0];
	closed[2] = mc.client[1];
	closed[3] = mc.server[1];
	head = tcp_active_pcbs;
	rest = head->next;
	for (int k = 0; k < 4; k++)
		assert_true(closed[k] != head && closed[k] != rest);
	head->next = NULL;

	/* 0: the client closes, the server closes on its FIN: the client
	 * goes to TIME-WAIT (TCP_RMV_ACTIVE), the server leaves with the
	 * last ACK (tcp_pcb_remove from tcp_input).  1: the server aborts
	 * (tcp_abandon), the client takes the RST (tcp_pcb_remove). */
	assert_int_equal(tcp_close(mc.client[0]), ERR_OK);
	mc.client[0] = NULL;
	tcp_abort(mc.server[1]);
	while (link_pump() > 0)
		;
	head->next = rest;
	for (int k = 0; k < 4; k++)
		assert_false(on_active_list(closed[k]));
	assert_int_equal(active_count(), 2 * MANY_CONNS - 4);
	assert_null(mc.server[0]);
	assert_null(mc.client[1]);
	assert_int_equal(mc.errors, 2);

	/* tcp_slowtmr's own unlinking: two connects whose SYNs are all
	 * lost time out, the older one from behind the newer one. */
	vl.loss_permille = 1000;
	mc.client[0] = many_connect(0);
	for (steps = 0; steps < 8; steps++)
		loop_step();
	mc.client[1] = many_connect(1);
	for (steps = 0; (mc.client[0] != NULL || mc.client[1] != NULL) && steps < MAX_STEPS;
	     steps++)
		loop_step();
	assert_null(mc.client[0]);
	assert_null(mc.client[1]);
	assert_int_equal(mc.errors, 4);
	assert_int_equal(active_count(), 2 * MANY_CONNS - 4);
	vl.loss_permille = 0;

	/* The rest close as in the bench: clients first. */
	for (int i = 2; i < MANY_CONNS; i++) {
		assert_int_equal(tcp_close(mc.client[i]), ERR_OK);
		mc.client[i] = NULL;
	}
	many_finish(listener);
	assert_int_equal(mc.errors, 4);
	assert_int_equal(isotcp_memp_in_use(), 0);
	assert_int_equal(isotcp_heap_in_use(), 0);
}

/*
 * Patch 0006: tcp_fasttmr() visits only pcbs that asked for it.  A lone
 * segment gets a delayed ACK (lwIP acknowledges every second segment at
 * once): it must leave within a few fast timer ticks, not at the sender's
 * retransmission.  And a pcb freed while its delayed ACK waits must leave
 * the list (ASan sees a freed pcb visited; the pool count a leak).
 */
static void test_delayed_ack_list(void **state)
{
	struct tcp_pcb *listener;
	u32_t t0;
	long steps;

	(void)state;
	listener = many_listen();
	delayed_ack_pair(0);
	delayed_ack_pair(1);
	for (steps = 0; mc.connected < 2 && steps < MAX_STEPS; steps++)
		loop_step();

	/* One segment each way of pair 0: the server's ACK is delayed. */
	assert_int_equal(tcp_write(mc.client[0], "ping", 4, TCP_WRITE_FLAG_COPY), ERR_OK);
	assert_int_equal(tcp_output(mc.client[0]), ERR_OK);
	link_pump();
	assert_true(mc.server[0]->flags & TF_ACK_DELAY);
	assert_true(mc.server[0]->fast_queued);
	t0 = fake_now_ms;
	for (steps = 0; mc.client[0]->unacked != NULL && steps < MAX_STEPS; steps++)
		loop_step();
	assert_null(mc.client[0]->unacked);
	assert_int_equal(mc.client[0]->nrtx, 0);
	assert_true(fake_now_ms - t0 <= 3 * TCP_TMR_INTERVAL);
	assert_false(mc.server[0]->fast_queued);

	/* Pair 1: the server's pcb goes while its delayed ACK waits. */
	assert_int_equal(tcp_write(mc.client[1], "ping", 4, TCP_WRITE_FLAG_COPY), ERR_OK);
	assert_int_equal(tcp_output(mc.client[1]), ERR_OK);
	link_pump();
	assert_true(mc.server[1]->fast_queued);
	tcp_abort(mc.server[1]);
	mc.server[1] = NULL;
	for (steps = 0; mc.client[1] != NULL && steps < MAX_STEPS; steps++)
		loop_step();     /* the fast timer runs on; the client takes the RST */
	assert_null(mc.client[1]);

	assert_int_equal(tcp_close(mc.client[0]), ERR_OK);
	mc.client[0] = NULL;
	many_finish(listener);
	assert_int_equal(isotcp_memp_in_use(), 0);
	assert_int_equal(isotcp_heap_in_use(), 0);
}

/*
 * Patch 0007: tcp_slowtmr() walks only pcbs that are not quiet.  An idle
 * connection leaves its walk; data written on it brings it back, so that
 * a lost segment is still retransmitted by the timer; keepalive keeps a
 * pcb on it.
 */
static void test_slowtmr_quiet(void **state)
{
	struct tcp_pcb *listener, *c;
	long steps;

	(void)state;
	listener = many_listen();
	delayed_ack_pair(0);
	c = mc.client[0];
	slow_ticks(4);
	assert_null(c->slow_pprev);                 /* idle: off the walk */
	assert_null(mc.server[0]->slow_pprev);

	/* Every segment lost: only the slow timer can retransmit it. */
	vl.loss_permille = 1000;
	assert_int_equal(tcp_write(c, "data", 4, TCP_WRITE_FLAG_COPY), ERR_OK);
	assert_non_null(c->slow_pprev);
	assert_int_equal(tcp_output(c), ERR_OK);
	for (steps = 0; c->nrtx == 0 && steps < MAX_STEPS; steps++)
		loop_step();
	assert_true(c->nrtx > 0);
	vl.loss_permille = 0;
	for (steps = 0; c->unacked != NULL && steps < MAX_STEPS; steps++)
		loop_step();
	assert_null(c->unacked);
	slow_ticks(4);
	assert_null(c->slow_pprev);                 /* quiet again */

	/* Keepalive keeps it on the walk. */
	ip_set_option(c, SOF_KEEPALIVE);
	tcp_slow_wake(c);
	slow_ticks(4);
	assert_non_null(c->slow_pprev);
	ip_reset_option(c, SOF_KEEPALIVE);
	slow_ticks(4);
	assert_null(c->slow_pprev);

	assert_int_equal(tcp_close(c), ERR_OK);
	mc.client[0] = NULL;
	many_finish(listener);
	assert_int_equal(isotcp_memp_in_use(), 0);
	assert_int_equal(isotcp_heap_in_use(), 0);
}


int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_transfer_1mb, check_pools_empty),
		cmocka_unit_test_teardown(test_transfer_1mb_lossy, check_pools_empty),
		cmocka_unit_test_teardown(test_active_unlink, check_pools_empty),
		cmocka_unit_test_teardown(test_delayed_ack_list, check_pools_empty),
		cmocka_unit_test_teardown(test_slowtmr_quiet, check_pools_empty),
	};

	return cmocka_run_group_tests_name("tcpip", tests, group_setup, NULL);
}
