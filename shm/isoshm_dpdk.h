/*
 * DPDK side of a segment (daemon only; the shim never links DPDK): the TX
 * area of a segment registered as DPDK external memory, so the NIC reads
 * TX bytes in place, without a copy on the stack core.  The stack attaches
 * TX spans (isoshm_stack_tx_peek) to mbufs as external buffers.
 */
#ifndef ISOSHM_DPDK_H
#define ISOSHM_DPDK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rte_mbuf.h>

#include "isoshm.h"

#define ISOSHM_DPDK_MAX_PORTS 32
#define ISOSHM_DPDK_MAX_EXT_MAPS 4096

struct isoshm_dpdk_reg {
	uint8_t *addr;            /* start of the TX area in this process */
	uint64_t seg_off;         /* its offset in the arena (0) */
	size_t len;               /* whole pages */
	size_t page_sz;
	unsigned int n_pages;
	bool iova_is_va;          /* IOVA == VA: one contiguous range */
	rte_iova_t *iovas;        /* [n_pages] in PA mode, NULL in VA mode */
	uint16_t mapped[ISOSHM_DPDK_MAX_PORTS]; /* ports with an explicit DMA map */
	unsigned int n_mapped;
	uint64_t ext_off[ISOSHM_DPDK_MAX_EXT_MAPS]; /* extents DMA-mapped */
	uint64_t ext_len[ISOSHM_DPDK_MAX_EXT_MAPS];
	unsigned int n_mapped_ext;
};

/*
 * Registers the arena of s (where every TX ring lives, in extents) with
 * rte_extmem_register(), in extent units, before any extent exists.  Must
 * run after rte_eal_init() and after the ports are probed.  In IOVA-as-PA
 * mode the units' IOVAs start unknown (isoshm_dpdk_iova gives
 * RTE_BAD_IOVA: such bytes must be copied).  Returns 0, -ENOMEM or
 * -rte_errno.  On failure nothing stays registered.
 */
int isoshm_dpdk_register_tx(struct isoshm_stack *s, struct isoshm_dpdk_reg *reg);
/* A new extent (arena offset off, len bytes): in VA mode DMA-mapped for
 * every probed ethdev whose bus needs it (ENOTSUP from a driver means no
 * map needed); in PA mode its units' physical addresses are recorded when
 * it is on hugepages (normal pages are not pinned: they stay unknown).
 * Returns 0 or -rte_errno of a device that refused. */
int isoshm_dpdk_map_extent(struct isoshm_dpdk_reg *reg, uint64_t off, uint64_t len,
			   bool hugetlb);
/* Undoes register_tx.  Returns 0 or -rte_errno of rte_extmem_unregister. */
int isoshm_dpdk_unregister_tx(struct isoshm_dpdk_reg *reg);

/* IOVA of segment offset seg_off inside the TX area, RTE_BAD_IOVA if outside. */
rte_iova_t isoshm_dpdk_iova(const struct isoshm_dpdk_reg *reg, uint64_t seg_off);

/*
 * Attaches len bytes at segment offset seg_off (inside the TX area, not
 * crossing a page in PA mode) to m as an external buffer; shinfo's free
 * callback runs when the NIC is done (then the stack may release the bytes
 * once they are also acked).  Returns 0 or -EINVAL.
 */
int isoshm_dpdk_attach_extbuf(const struct isoshm_dpdk_reg *reg, struct rte_mbuf *m,
			      uint64_t seg_off, uint16_t len,
			      struct rte_mbuf_ext_shared_info *shinfo);

#endif /* ISOSHM_DPDK_H */
