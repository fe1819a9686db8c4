/*
 * The DPDK netif's TX queue against a device that stops taking frames.
 *
 * A net_ring port (rte_eth_from_rings) whose TX ring nobody drains plays a
 * device that is full, then refuses for ever. Frames lwIP hands to the
 * netif must stay queued in order while the device is merely full, and the
 * stall guard must drop the head frame (counting tx_drop_stuck) once
 * nothing has moved for a second, so one refused frame cannot block the
 * port. The device-cycle counter moves with the burst calls only. EAL runs
 * without hugepages on one lcore; exits 77 if it can't.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../eal_runtime.h"

/* lwIP first: its def.h and glibc must agree on htons (as netif_dpdk.c). */
#include "lwip/init.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"

#include "isotcp.h"
#include "netif_dpdk.h"

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_ring.h>

#define TX_RING_SLOTS 4     /* holds 3 frames: then the "device" is full */
#define FRAMES        10

static struct rte_ring *rx_ring, *tx_ring;
static uint16_t ring_port;

static void send_frame(struct isotcp_dpdk_port *port, uint8_t tag)
{
	struct pbuf *p = pbuf_alloc(PBUF_RAW, 60, PBUF_RAM);

	assert_non_null(p);
	memset(p->payload, tag, 60);
	memset(p->payload, 0xff, 6);                    /* broadcast */
	assert_int_equal(port->netif.linkoutput(&port->netif, p), ERR_OK);
	pbuf_free(p);
}

static void stuck_device_drops_head(void **state)
{
	struct isotcp_dpdk_port port;
	struct isotcp_dpdk_port_conf conf = {
		.port_id = ring_port,
		.mbufs = 511,
	};
	uint64_t deadline;
	struct rte_mbuf *m = NULL;

	(void)state;
	memset(&port, 0, sizeof(port));
	IP4_ADDR(&conf.ip, 198, 18, 9, 1);
	IP4_ADDR(&conf.netmask, 255, 255, 255, 0);
	assert_int_equal(isotcp_dpdk_port_open(&port, &conf, true), 0);
	/* Whatever lwIP sent on link up (a gratuitous ARP) is not ours. */
	isotcp_dpdk_flush(&port);
	while (rte_ring_dequeue(tx_ring, (void **)&m) == 0)
		rte_pktmbuf_free(m);

	for (int i = 0; i < FRAMES; i++)
		send_frame(&port, (uint8_t)i);
	isotcp_dpdk_flush(&port);
	/* Full, not stuck: three went out, the rest wait, in order. */
	assert_int_equal(rte_ring_count(tx_ring), TX_RING_SLOTS - 1);
	assert_int_equal(isotcp_dpdk_tx_pending(&port), FRAMES - (TX_RING_SLOTS - 1));
	assert_int_equal(port.stats.tx_drop_stuck, 0);

	/* Nothing drains the ring: within a few seconds the guard drops the
	 * head frame, one per second of no progress (bounded wait). */
	deadline = rte_get_tsc_cycles() + 5 * rte_get_tsc_hz();
	while (port.stats.tx_drop_stuck == 0 && rte_get_tsc_cycles() < deadline)
		isotcp_dpdk_flush(&port);
	assert_int_equal(port.stats.tx_drop_stuck, 1);
	assert_int_equal(isotcp_dpdk_tx_pending(&port), FRAMES - (TX_RING_SLOTS - 1) - 1);

	/* The device drains: the rest go out in order, frame 4 first (3 was
	 * the dropped head). */
	while (rte_ring_dequeue(tx_ring, (void **)&m) == 0)
		rte_pktmbuf_free(m);
	isotcp_dpdk_flush(&port);
	assert_int_equal(rte_ring_dequeue(tx_ring, (void **)&m), 0);
	assert_int_equal(rte_pktmbuf_mtod(m, uint8_t *)[59], 4);
	rte_pktmbuf_free(m);
	while (rte_ring_dequeue(tx_ring, (void **)&m) == 0)
		rte_pktmbuf_free(m);
	isotcp_dpdk_flush(&port);
	while (rte_ring_dequeue(tx_ring, (void **)&m) == 0)
		rte_pktmbuf_free(m);
	assert_int_equal(isotcp_dpdk_tx_pending(&port), 0);
	isotcp_dpdk_port_close(&port);
}

/*
 * The device-cycle counter (the loop's device versus stack split) grows
 * with every burst call, RX and TX, and with nothing else.
 */
static void dev_cycles_count_burst_calls(void **state)
{
	struct isotcp_dpdk_port port;
	struct isotcp_dpdk_port_conf conf = { .mbufs = 511 };
	struct rte_mbuf *m = NULL;
	uint64_t d0;
	int id;

	(void)state;
	/* A port of its own (closing a port closes its ethdev), on the same
	 * rings, which the other test leaves empty. */
	id = rte_eth_from_rings("net_ring_dev", &rx_ring, 1, &tx_ring, 1, SOCKET_ID_ANY);
	assert_true(id >= 0);
	conf.port_id = (uint16_t)id;
	memset(&port, 0, sizeof(port));
	IP4_ADDR(&conf.ip, 198, 18, 9, 1);
	IP4_ADDR(&conf.netmask, 255, 255, 255, 0);
	assert_int_equal(isotcp_dpdk_port_open(&port, &conf, true), 0);
	isotcp_dpdk_flush(&port);
	while (rte_ring_dequeue(tx_ring, (void **)&m) == 0)
		rte_pktmbuf_free(m);

	/* Queueing a frame calls no device function. */
	d0 = port.stats.dev_tsc;
	send_frame(&port, 1);
	assert_int_equal(port.stats.dev_tsc, d0);
	/* The flush's tx_burst does. */
	assert_int_equal(isotcp_dpdk_flush(&port), 1);
	assert_true(port.stats.dev_tsc > d0);
	assert_int_equal(rte_ring_dequeue(tx_ring, (void **)&m), 0);

	/* Feed that frame back as received: the poll's rx_burst counts too. */
	d0 = port.stats.dev_tsc;
	assert_int_equal(rte_ring_enqueue(rx_ring, m), 0);
	assert_int_equal(isotcp_dpdk_poll(&port, ISOTCP_DPDK_BURST), 1);
	assert_true(port.stats.dev_tsc > d0);
	assert_int_equal(port.stats.rx_pkts, 1);
	isotcp_dpdk_port_close(&port);
}

int main(void)
{
	char runtime_dir[PATH_MAX];
	char prefix[64];
	char *argv[] = {
		"test_netif_dpdk", "--no-huge", "--no-shconf", "-m", "64", "-l", "0",
		"--no-pci", "--iova-mode=va", "--log-level=lib.*:error", prefix,
	};
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(stuck_device_drops_head),
		cmocka_unit_test(dev_cycles_count_burst_calls),
	};
	int rc;

	snprintf(prefix, sizeof(prefix), "--file-prefix=isotcp-netif-%d", (int)getpid());
	if (rte_eal_init((int)(sizeof(argv) / sizeof(argv[0])), argv) < 0) {
		printf("EAL could not start here (%s): skipping\n", rte_strerror(rte_errno));
		return 77;
	}
	rx_ring = rte_ring_create("netif_rx", TX_RING_SLOTS, SOCKET_ID_ANY,
				  RING_F_SP_ENQ | RING_F_SC_DEQ);
	tx_ring = rte_ring_create("netif_tx", TX_RING_SLOTS, SOCKET_ID_ANY,
				  RING_F_SP_ENQ | RING_F_SC_DEQ);
	if (rx_ring == NULL || tx_ring == NULL) {
		printf("no rings (%s): skipping\n", rte_strerror(rte_errno));
		return 77;
	}
	rc = rte_eth_from_rings("net_ring_test", &rx_ring, 1, &tx_ring, 1, SOCKET_ID_ANY);
	if (rc < 0) {
		printf("no net_ring port (%s): skipping\n", rte_strerror(rte_errno));
		return 77;
	}
	ring_port = (uint16_t)rc;
	isotcp_clock_init();
	isotcp_owner_claim();
	lwip_init();
	snprintf(runtime_dir, sizeof(runtime_dir), "%s", rte_eal_get_runtime_dir());
	rc = cmocka_run_group_tests_name("netif_dpdk", tests, NULL, NULL);
	rte_eal_cleanup();
	test_remove_runtime_dir(runtime_dir);
	return rc;
}
