/*
 * Finding TIME-WAIT pcbs (our lwIP patch 0016): a segment that matches no
 * active pcb finds its TIME-WAIT pcb, if any, through a hash table instead
 * of a walk of every TIME-WAIT pcb.  Over the virtual link of vlink.c, a
 * server that closes first (as an HTTP/1.0 server does) leaves TW_CONNS
 * pcbs in TIME-WAIT; then
 *   - a new connection's SYN compares a few of them with its 4-tuple, not
 *     all (tcp_tw_visits counts the comparisons);
 *   - the client's FIN, retransmitted because the server's last ACK was
 *     lost, still finds the server's TIME-WAIT pcb and gets its ACK;
 *   - a SYN on a TIME-WAIT pcb's 4-tuple above its rcv_nxt replaces the pcb
 *     and reaches the listener, as patch 0013 made lwIP do;
 *   - pcbs leave by tcp_abort() and by expiry; tcp_free() asserts that a
 *     freed pcb is in no table, and the pools are empty after each test.
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

#define TW_CONNS   1024
#define TW_PORT    (SERVER_PORT + 2)
/* The comparisons one segment may make: its bucket's chain, which for
 * TW_CONNS pcbs in TCP_PCB_HASH_SIZE buckets is almost always empty. */
#define FEW_VISITS 3

static struct {
	struct tcp_pcb *server;         /* the last one accepted */
	int accepted;
	int client_errors;
} tw;

static err_t tw_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
	(void)arg;
	assert_int_equal(err, ERR_OK);
	tw.server = pcb;
	tw.accepted++;
	return ERR_OK;
}

/* The client closes its end when the server's FIN arrives. */
static err_t tw_client_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
	(void)arg;
	(void)err;
	if (p != NULL) {
		tcp_recved(pcb, p->tot_len);
		pbuf_free(p);
		return ERR_OK;
	}
	assert_int_equal(tcp_close(pcb), ERR_OK);
	return ERR_OK;
}

static void tw_client_err(void *arg, err_t err)
{
	(void)arg;
	(void)err;
	tw.client_errors++;
}

static int tw_count(void)
{
	int n = 0;

	for (struct tcp_pcb *pcb = tcp_tw_pcbs; pcb != NULL; pcb = pcb->next)
		n++;
	return n;
}

static int active_count(void)
{
	int n = 0;

	for (struct tcp_pcb *pcb = tcp_active_pcbs; pcb != NULL; pcb = pcb->next)
		n++;
	return n;
}

static struct tcp_pcb *tw_listen(void)
{
	struct tcp_pcb *listener;

	memset(&tw, 0, sizeof(tw));
	link_up(0);
	listener = tcp_new();
	assert_non_null(listener);
	assert_int_equal(tcp_bind(listener, netif_ip_addr4(&vl.b.netif), TW_PORT), ERR_OK);
	listener = tcp_listen(listener);
	assert_non_null(listener);
	tcp_accept(listener, tw_accept);
	return listener;
}

/* A client from local_port (0: any) up to the server's accept. */
static struct tcp_pcb *tw_connect(u16_t local_port)
{
	struct tcp_pcb *client = tcp_new();
	int accepted = tw.accepted;
	long steps;

	assert_non_null(client);
	tcp_recv(client, tw_client_recv);
	tcp_err(client, tw_client_err);
	assert_int_equal(tcp_bind(client, netif_ip_addr4(&vl.a.netif), local_port), ERR_OK);
	assert_int_equal(tcp_connect(client, netif_ip_addr4(&vl.b.netif), TW_PORT, NULL),
			 ERR_OK);
	for (steps = 0; tw.accepted == accepted && steps < MAX_STEPS; steps++)
		loop_step();
	assert_int_equal(tw.accepted, accepted + 1);
	return client;
}

/* The server closes first: its pcb ends in TIME-WAIT, the client's is
 * freed once its FIN is acknowledged. */
static void server_closes_first(void)
{
	int tws = tw_count();
	long steps;

	assert_int_equal(tcp_close(tw.server), ERR_OK);
	for (steps = 0; (tcp_active_pcbs != NULL || tw_count() == tws) && steps < MAX_STEPS;
	     steps++)
		loop_step();
	assert_null(tcp_active_pcbs);
	assert_int_equal(tw_count(), tws + 1);
}

/* A listener and n connections that the server closed, all in TIME-WAIT. */
static struct tcp_pcb *tw_many(int n)
{
	struct tcp_pcb *listener = tw_listen();

	for (int i = 0; i < n; i++) {
		tw_connect(0);
		server_closes_first();
	}
	assert_int_equal(tw.client_errors, 0);
	return listener;
}

static void test_syn_visits_few(void **state)
{
	struct tcp_pcb *listener = tw_many(TW_CONNS);
	u32_t visits0 = tcp_tw_visits;

	(void)state;
	/* Only the SYN matches no active pcb: the SYN-ACK and the ACK go to
	 * the pcbs the handshake made. */
	tw_connect(0);
	assert_in_range(tcp_tw_visits - visits0, 0, FEW_VISITS);
	server_closes_first();
	assert_int_equal(tw_count(), TW_CONNS + 1);
	many_finish(listener);
}

/* The server's last ACK, once: a bare ACK from a pcb in TIME-WAIT. */
static struct tcp_pcb *last_ack_of;
static int last_acks_dropped;

static bool drop_last_ack(struct pbuf *p)
{
	u16_t ihl = (u16_t)((pbuf_get_at(p, 0) & 0x0f) * 4);
	u16_t sport = (u16_t)(pbuf_get_at(p, ihl) << 8 | pbuf_get_at(p, ihl + 1));
	u8_t flags = pbuf_get_at(p, ihl + 13);

	if (last_ack_of == NULL || last_ack_of->state != TIME_WAIT ||
	    sport != TW_PORT || flags != TCP_ACK || last_acks_dropped > 0)
		return false;
	last_acks_dropped++;
	return true;
}

static void test_fin_retransmit_acked(void **state)
{
	struct tcp_pcb *listener = tw_many(TW_CONNS);
	struct tcp_pcb *server;
	u32_t visits0;
	long steps;

	(void)state;
	tw_connect(0);
	server = tw.server;
	/* The server closes first; its last ACK (for the client's FIN) is
	 * lost, so the client, in LAST-ACK, sends its FIN again. */
	last_ack_of = server;
	last_acks_dropped = 0;
	vl.drop = drop_last_ack;
	assert_int_equal(tcp_close(server), ERR_OK);
	for (steps = 0; last_acks_dropped == 0 && steps < MAX_STEPS; steps++)
		loop_step();
	assert_int_equal(last_acks_dropped, 1);
	assert_int_equal(server->state, TIME_WAIT);
	assert_int_equal(active_count(), 1);
	assert_int_equal(tcp_active_pcbs->state, LAST_ACK);

	/* The TIME-WAIT pcb must answer the retransmitted FIN: not found, the
	 * FIN would get a RST from the listener's port, an error here. */
	visits0 = tcp_tw_visits;
	for (steps = 0; tcp_active_pcbs != NULL && steps < MAX_STEPS; steps++)
		loop_step();
	vl.drop = NULL;
	assert_null(tcp_active_pcbs);
	assert_int_equal(tw.client_errors, 0);
	assert_in_range(tcp_tw_visits - visits0, 1, FEW_VISITS);
	assert_int_equal(tw_count(), TW_CONNS + 1);
	assert_int_equal(server->state, TIME_WAIT);
	many_finish(listener);
}

static void test_syn_replaces_tw(void **state)
{
	struct tcp_pcb *listener = tw_many(TW_CONNS);
	struct tcp_pcb *old = tcp_tw_pcbs->next;  /* not the list's head */
	u16_t port = old->remote_port;
	u32_t old_rcv_nxt = old->rcv_nxt;        /* old is freed by the SYN */
	struct tcp_pcb *client;
	u32_t visits0 = tcp_tw_visits;

	(void)state;
	client = tw_connect(port);
	/* Patch 0013's case: the new SYN (its seqno one below the ackno the
	 * client now holds) is above all the old connection sent: lwIP's
	 * ISNs grow with time. */
	assert_true(TCP_SEQ_GT(client->lastack - 1, old_rcv_nxt));
	assert_int_equal(tw.server->remote_port, port);
	assert_int_equal(tw_count(), TW_CONNS - 1);
	for (struct tcp_pcb *pcb = tcp_tw_pcbs; pcb != NULL; pcb = pcb->next)
		assert_int_not_equal(pcb->remote_port, port);
	assert_in_range(tcp_tw_visits - visits0, 1, FEW_VISITS);

	server_closes_first();
	assert_int_equal(tw_count(), TW_CONNS);
	assert_int_equal(tw.client_errors, 0);
	many_finish(listener);
}

/* A TIME-WAIT pcb aborted leaves list and table: a SYN on its 4-tuple then
 * finds nothing, and goes to the listener as a new connection. */
static void test_abort_leaves_table(void **state)
{
	struct tcp_pcb *listener = tw_many(16);
	struct tcp_pcb *victim = tcp_tw_pcbs->next->next;
	u16_t port = victim->remote_port;
	u32_t visits0;

	(void)state;
	tcp_abort(victim);
	assert_int_equal(tw_count(), 15);
	visits0 = tcp_tw_visits;
	tw_connect(port);
	assert_in_range(tcp_tw_visits - visits0, 0, FEW_VISITS);
	assert_int_equal(tw.server->remote_port, port);
	server_closes_first();
	assert_int_equal(tw_count(), 16);
	many_finish(listener);                  /* the rest expire */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_syn_visits_few, check_pools_empty),
		cmocka_unit_test_teardown(test_fin_retransmit_acked, check_pools_empty),
		cmocka_unit_test_teardown(test_syn_replaces_tw, check_pools_empty),
		cmocka_unit_test_teardown(test_abort_leaves_table, check_pools_empty),
	};

	return cmocka_run_group_tests_name("tcptw", tests, group_setup, NULL);
}
