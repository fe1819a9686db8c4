/*
 * The unit tests' lwIP test bed (test_tcpip.c, test_tcptmr.c, test_tcptw.c):
 * two netifs in one lwIP instance joined by an in-process virtual link,
 * lwIP's clock (sys_now) faked and moved by the test loop, and "many": a
 * listener and up to MANY_CONNS client connections to it, with callbacks
 * that keep mc's tables current.
 *
 * Each netif's output clones the IP packet onto the other side's inbox, and
 * the test loop delivers the inboxes, runs lwIP's NO_SYS timers (and goes on
 * with a walk a budgeted timer tick left unfinished, as the daemon's loop
 * does) and moves the fake clock forward, jumping straight to the next
 * timeout when the link is idle. The netifs are point-to-point (no broadcast
 * flag, the peer as gateway), so each one routes to the other.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lwip/init.h"
#include "lwip/ip4.h"
#include "lwip/timeouts.h"
#include "lwip/priv/tcp_priv.h"

#include "isotcp.h"
#include "vlink.h"

/* ---- Fake clock: lwIP's only time source under NO_SYS ---------------- */

u32_t fake_now_ms;

u32_t sys_now(void)
{
	return fake_now_ms;
}

/* ---- The virtual link ------------------------------------------------ */

struct link vl;

static bool link_drops(void)
{
	if (vl.loss_permille == 0)
		return false;
	vl.loss_state = vl.loss_state * 6364136223846793005ull + 1442695040888963407ull;
	return (vl.loss_state >> 33) % 1000 < vl.loss_permille;
}

static err_t vlink_output(struct netif *netif, struct pbuf *p,
			  const ip4_addr_t *dst)
{
	struct side *self = netif->state;
	struct side *peer = self->peer;
	struct pbuf *copy;

	(void)dst;
	vl.sent++;
	if (link_drops() || (vl.drop != NULL && vl.drop(p)) ||
	    peer->tail - peer->head == INBOX_SLOTS) {
		vl.dropped++;
		return ERR_OK;          /* lost on the wire: TCP recovers */
	}
	copy = pbuf_clone(PBUF_RAW, PBUF_RAM, p);
	if (copy == NULL)
		return ERR_MEM;
	peer->inbox[peer->tail++ % INBOX_SLOTS] = copy;
	return ERR_OK;
}

static err_t vlink_netif_init(struct netif *netif)
{
	netif->name[0] = 'v';
	netif->name[1] = 'l';
	netif->output = vlink_output;
	netif->mtu = 1500;
	netif->flags = NETIF_FLAG_LINK_UP;      /* point-to-point: no broadcast */
	return ERR_OK;
}

/* Deliver everything queued on both sides; returns the number delivered. */
unsigned int link_pump(void)
{
	unsigned int n = 0;
	struct side *sides[2] = { &vl.a, &vl.b };

	for (int i = 0; i < 2; i++) {
		struct side *s = sides[i];

		while (s->head != s->tail) {
			struct pbuf *p = s->inbox[s->head++ % INBOX_SLOTS];

			if (s->netif.input(p, &s->netif) != ERR_OK)
				pbuf_free(p);
			n++;
		}
	}
	return n;
}

void link_up(unsigned int loss_permille)
{
	ip4_addr_t a, b, mask;

	memset(&vl, 0, sizeof(vl));
	vl.loss_permille = loss_permille;
	vl.loss_state = 42;
	vl.a.peer = &vl.b;
	vl.b.peer = &vl.a;
	IP4_ADDR(&a, 198, 18, 0, 1);
	IP4_ADDR(&b, 198, 18, 0, 2);
	IP4_ADDR(&mask, 255, 255, 255, 255);
	assert_non_null(netif_add(&vl.a.netif, &a, &mask, &b, &vl.a,
				  vlink_netif_init, ip4_input));
	assert_non_null(netif_add(&vl.b.netif, &b, &mask, &a, &vl.b,
				  vlink_netif_init, ip4_input));
	netif_set_up(&vl.a.netif);
	netif_set_up(&vl.b.netif);
}

void link_down(void)
{
	link_pump();
	netif_remove(&vl.a.netif);
	netif_remove(&vl.b.netif);
}

/*
 * One step of the event loop: deliver frames, run due timers (or go on with
 * the walk of a tick that did not finish it); when the link
 * was idle, jump the clock to the next timeout (at least 1 ms).
 */
void loop_step(void)
{
	unsigned int moved = link_pump();
	u32_t sleep;

	sys_check_timeouts();
	isotcp_timers_continue();
	if (moved == 0) {
		sleep = sys_timeouts_sleeptime();
		fake_now_ms += (sleep == SYS_TIMEOUTS_SLEEPTIME_INFINITE || sleep == 0) ? 1 : sleep;
	}
}

/* ---- Many connections to one listener --------------------------------- */

struct many mc;

static int many_index(u16_t client_port)
{
	for (int i = 0; i < MANY_CONNS; i++)
		if (mc.client_port[i] == client_port)
			return i;
	fail_msg("no client on port %u", client_port);
	return -1;
}

/* The server closes its end when the client's FIN arrives, as isoconns. */
static err_t many_server_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
	(void)err;
	if (p != NULL) {
		tcp_recved(pcb, p->tot_len);
		pbuf_free(p);
		return ERR_OK;
	}
	mc.server[(intptr_t)arg] = NULL;
	assert_int_equal(tcp_close(pcb), ERR_OK);
	return ERR_OK;
}

static void many_server_err(void *arg, err_t err)
{
	(void)err;
	mc.server[(intptr_t)arg] = NULL;
	mc.errors++;
}

static void many_client_err(void *arg, err_t err)
{
	(void)err;
	mc.client[(intptr_t)arg] = NULL;
	mc.errors++;
}

static err_t many_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
	int i = many_index(pcb->remote_port);

	(void)arg;
	assert_int_equal(err, ERR_OK);
	mc.server[i] = pcb;
	tcp_arg(pcb, (void *)(intptr_t)i);
	tcp_recv(pcb, many_server_recv);
	tcp_err(pcb, many_server_err);
	mc.accepted++;
	return ERR_OK;
}

static err_t many_connected(void *arg, struct tcp_pcb *pcb, err_t err)
{
	(void)arg;
	(void)pcb;
	assert_int_equal(err, ERR_OK);
	mc.connected++;
	return ERR_OK;
}

struct tcp_pcb *many_connect(int i)
{
	struct tcp_pcb *pcb = tcp_new();

	assert_non_null(pcb);
	tcp_arg(pcb, (void *)(intptr_t)i);
	tcp_err(pcb, many_client_err);
	assert_int_equal(tcp_bind(pcb, netif_ip_addr4(&vl.a.netif), 0), ERR_OK);
	assert_int_equal(tcp_connect(pcb, netif_ip_addr4(&vl.b.netif), MANY_PORT,
				     many_connected), ERR_OK);
	return pcb;
}

/* The link up and a listener on MANY_PORT that accepts into mc. */
struct tcp_pcb *many_listen(void)
{
	struct tcp_pcb *listener;

	memset(&mc, 0, sizeof(mc));
	link_up(0);
	listener = tcp_new();
	assert_non_null(listener);
	assert_int_equal(tcp_bind(listener, netif_ip_addr4(&vl.b.netif), MANY_PORT), ERR_OK);
	listener = tcp_listen(listener);
	assert_non_null(listener);
	tcp_accept(listener, many_accept);
	return listener;
}

/* Closes the listener once the test closed its clients, runs the loop
 * until every pcb is gone (TIME-WAIT too), takes the link down. */
void many_finish(struct tcp_pcb *listener)
{
	long steps;

	assert_int_equal(tcp_close(listener), ERR_OK);
	for (steps = 0; (tcp_active_pcbs || tcp_tw_pcbs) && steps < MAX_STEPS; steps++)
		loop_step();
	assert_null(tcp_active_pcbs);
	assert_null(tcp_tw_pcbs);
	link_down();
}

/* Connection i, up to its accept. */
void delayed_ack_pair(int i)
{
	long steps;

	mc.client[i] = many_connect(i);
	mc.client_port[i] = mc.client[i]->local_port;
	for (steps = 0; mc.server[i] == NULL && steps < MAX_STEPS; steps++)
		loop_step();
	assert_non_null(mc.server[i]);
}

/* The loop for n slow timer intervals of fake time. */
void slow_ticks(int n)
{
	u32_t until = fake_now_ms + (u32_t)n * TCP_SLOW_INTERVAL;

	for (long steps = 0; fake_now_ms < until && steps < MAX_STEPS; steps++)
		loop_step();
}

/* Nothing leaked by a test shows up in the next one's pool counts. */
int check_pools_empty(void **state)
{
	(void)state;
	return isotcp_memp_in_use() == 0 && isotcp_heap_in_use() == 0 ? 0 : -1;
}

int group_setup(void **state)
{
	(void)state;
	isotcp_owner_claim();
	lwip_init();
	return 0;
}
