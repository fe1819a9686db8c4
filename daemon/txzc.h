/*
 * Zero-copy TX (docs/daemon.md, "Zero-copy TX"): TCP payload that lives in
 * an application's TX ring leaves through the NIC without a copy on the
 * stack core.
 *
 * The socket back-end hands ring bytes to lwIP by reference (tcp_write
 * without TCP_WRITE_FLAG_COPY), so a TCP frame reaches the netif as a
 * header pbuf followed by PBUF_ROM/REF pbufs that point into the
 * application's arena (where its extents hold the TX rings). This module
 * registers each arena with DPDK (external memory; each extent DMA-mapped
 * per port as it arrives), and, as the netif's
 * txattach hook, turns such a frame into an mbuf chain: headers copied into
 * the first mbuf, each payload span attached as an external buffer. Every
 * attachment holds one lwIP reference on its pbuf and one reference on the
 * segment; the extbuf free callback (stack lcore, from rte_eth_tx_burst or
 * a later call, or port close) drops both. A segment whose application is
 * gone is unregistered and unmapped only when its references reach zero.
 *
 * Everything here runs on the stack lcore.
 */
#ifndef ISOD_TXZC_H
#define ISOD_TXZC_H

#include <stdbool.h>
#include <stdint.h>

#include "netif_dpdk.h"

struct isoshm_stack;
struct isod_txzc;

/* A dying segment still referenced after this long is logged (once), and
 * the ports are asked to release finished TX mbufs; it stays mapped. */
#define ISOD_TXZC_DEFER_WARN_MS 5000

struct isod_txzc_stats {
	uint64_t segs_registered;   /* segments whose TX area is registered */
	uint64_t segs_unregistrable;/* registration failed: copied TX only */
	uint64_t segs_deferred;     /* released while mbufs still referenced them */
	uint64_t segs_destroyed;
	uint64_t segs_dying;        /* now: released, waiting for references */
	uint64_t refs;              /* now: extbuf attachments outstanding */
	uint64_t no_ctx;            /* fell back to copy: no attachment context */
	uint64_t no_mbuf;           /* fell back to copy: no mbuf */
};

/*
 * Sets up zero-copy TX for the open ports and installs the txattach hook on
 * every port that takes multi-segment frames (the others keep copying).
 * `enable` false: nothing is installed, segments are not registered.
 * Returns 0 or -ENOMEM.
 */
int isod_txzc_init(struct isod_txzc **out, struct isotcp_dpdk_port *ports,
		   unsigned nports, bool enable);

/* struct isod_backend_conf hooks (arg: the isod_txzc). */
void isod_txzc_seg_attach(void *zc, struct isoshm_stack *shm);
void isod_txzc_seg_release(void *zc, struct isoshm_stack *shm);
/* A new extent of a registered segment's arena: DMA-mapped for the ports
 * that need it. */
void isod_txzc_ext_attach(void *zc, struct isoshm_stack *shm, uint64_t off, uint64_t size,
			  bool hugetlb);

/* Dispatcher source: unmaps released segments whose references are gone,
 * warns about ones held too long. Returns the work done. */
unsigned isod_txzc_poll(void *zc, unsigned budget);

void isod_txzc_get_stats(const struct isod_txzc *zc, struct isod_txzc_stats *out);

/* Before the ports are closed: lets go of mbufs the test hook holds. */
void isod_txzc_stop(struct isod_txzc *zc);

/*
 * After the ports are closed (their mbufs freed): destroys every segment
 * left. One still referenced (a leak in a PMD) is left mapped and logged,
 * never unmapped under a live reference. NULL is a no-op.
 */
void isod_txzc_fini(struct isod_txzc *zc);

#endif /* ISOD_TXZC_H */
