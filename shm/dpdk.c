/*
 * Registration of a segment's TX area as DPDK external memory.  The NIC
 * DMA-reads TX bytes straight from the application's ring; the stack core
 * only turns ring offsets into IOVAs (paper, section 4.2: "the socket
 * back-end does not access the transmit buffers").
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_memory.h>

#include "isoshm_dpdk.h"

static void dma_unmap_all(struct isoshm_dpdk_reg *reg)
{
	for (unsigned int i = 0; i < reg->n_mapped; i++) {
		struct rte_eth_dev_info info;

		if (rte_eth_dev_info_get(reg->mapped[i], &info) != 0)
			continue;
		for (unsigned int e = 0; e < reg->n_mapped_ext; e++)
			rte_dev_dma_unmap(info.device, reg->addr + reg->ext_off[e],
					  (uint64_t)(uintptr_t)(reg->addr + reg->ext_off[e]),
					  reg->ext_len[e]);
	}
	reg->n_mapped = 0;
	reg->n_mapped_ext = 0;
}

int isoshm_dpdk_register_tx(struct isoshm_stack *s, struct isoshm_dpdk_reg *reg)
{
	const struct isostack_shm_header *h = isoshm_stack_header(s);

	memset(reg, 0, sizeof(*reg));
	/* The whole arena, once: extents come and go inside it, and DPDK has
	 * room for only a few external memory lists.  Its "pages" are extent
	 * units; nothing is touched here. */
	reg->addr = isoshm_stack_arena(s);
	reg->seg_off = 0;
	reg->len = h->arena_size;
	reg->page_sz = ISOSTACK_SHM_EXTENT_UNIT;
	reg->n_pages = (unsigned int)(reg->len / reg->page_sz);
	reg->iova_is_va = rte_eal_iova_mode() == RTE_IOVA_VA;
	if (!reg->iova_is_va) {
		/* IOVA-as-PA: every unit's physical address is learnt when an
		 * extent on hugepages arrives (isoshm_dpdk_map_extent); until
		 * then, and for normal pages (not pinned), it is unknown and
		 * such bytes are copied. */
		reg->iovas = malloc(reg->n_pages * sizeof(*reg->iovas));
		if (reg->iovas == NULL)
			return -ENOMEM;
		for (unsigned int p = 0; p < reg->n_pages; p++)
			reg->iovas[p] = RTE_BAD_IOVA;
	}
	if (rte_extmem_register(reg->addr, reg->len, reg->iovas, reg->iovas ? reg->n_pages : 0,
				reg->page_sz) != 0) {
		free(reg->iovas);
		reg->iovas = NULL;
		return -rte_errno;
	}
	return 0;
}

int isoshm_dpdk_map_extent(struct isoshm_dpdk_reg *reg, uint64_t off, uint64_t len,
			   bool hugetlb)
{
	uint16_t port;
	int rc = 0;

	if (!reg->iova_is_va) {
		/* Hugepages are pinned and physically contiguous per unit. */
		for (uint64_t o = off; hugetlb && o < off + len; o += reg->page_sz) {
			phys_addr_t pa = rte_mem_virt2phy(reg->addr + o);

			reg->iovas[o / reg->page_sz] = pa == RTE_BAD_PHYS_ADDR ? RTE_BAD_IOVA : pa;
		}
		return 0;   /* vdevs only in PA mode here: no DMA map */
	}

	RTE_ETH_FOREACH_DEV(port) {
		struct rte_eth_dev_info info;

		if (rte_eth_dev_info_get(port, &info) != 0 || info.device == NULL)
			continue;
		if (rte_dev_dma_map(info.device, reg->addr + off,
				    (uint64_t)(uintptr_t)(reg->addr + off), len) == 0) {
			bool known = false;

			for (unsigned int i = 0; i < reg->n_mapped; i++)
				known |= reg->mapped[i] == port;
			if (!known && reg->n_mapped < ISOSHM_DPDK_MAX_PORTS)
				reg->mapped[reg->n_mapped++] = port;
		} else if (rte_errno != ENOTSUP) {
			rc = -rte_errno;
		}
	}
	if (reg->n_mapped_ext < ISOSHM_DPDK_MAX_EXT_MAPS) {
		reg->ext_off[reg->n_mapped_ext] = off;
		reg->ext_len[reg->n_mapped_ext++] = len;
	}
	return rc;
}

int isoshm_dpdk_unregister_tx(struct isoshm_dpdk_reg *reg)
{
	int rc = 0;

	dma_unmap_all(reg);
	if (rte_extmem_unregister(reg->addr, reg->len) != 0)
		rc = -rte_errno;
	free(reg->iovas);
	reg->iovas = NULL;
	return rc;
}

rte_iova_t isoshm_dpdk_iova(const struct isoshm_dpdk_reg *reg, uint64_t seg_off)
{
	uint64_t off;

	if (seg_off < reg->seg_off || seg_off - reg->seg_off >= reg->len)
		return RTE_BAD_IOVA;
	off = seg_off - reg->seg_off;
	if (reg->iova_is_va)
		return (rte_iova_t)(uintptr_t)(reg->addr + off);
	if (reg->iovas[off / reg->page_sz] == RTE_BAD_IOVA)
		return RTE_BAD_IOVA;
	return reg->iovas[off / reg->page_sz] + off % reg->page_sz;
}

int isoshm_dpdk_attach_extbuf(const struct isoshm_dpdk_reg *reg, struct rte_mbuf *m,
			      uint64_t seg_off, uint16_t len,
			      struct rte_mbuf_ext_shared_info *shinfo)
{
	rte_iova_t iova = isoshm_dpdk_iova(reg, seg_off);
	uint64_t off = seg_off - reg->seg_off;

	if (iova == RTE_BAD_IOVA || len == 0 || off + len > reg->len)
		return -EINVAL;
	if (!reg->iova_is_va && off / reg->page_sz != (off + len - 1) / reg->page_sz)
		return -EINVAL;
	rte_pktmbuf_attach_extbuf(m, reg->addr + off, iova, len, shinfo);
	m->data_len = len;
	m->pkt_len = len;
	return 0;
}
