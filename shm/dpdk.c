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
		if (reg->iova_is_va) {
			rte_dev_dma_unmap(info.device, reg->addr, (uint64_t)(uintptr_t)reg->addr,
					  reg->len);
		} else {
			for (unsigned int p = 0; p < reg->n_pages; p++)
				rte_dev_dma_unmap(info.device, reg->addr + p * reg->page_sz,
						  reg->iovas[p], reg->page_sz);
		}
	}
	reg->n_mapped = 0;
}

/* Maps the area for one device.  Returns 1 if mapped, 0 if the device
 * needs no map (ENOTSUP), -rte_errno otherwise. */
static int dma_map_dev(struct isoshm_dpdk_reg *reg, struct rte_device *dev)
{
	if (reg->iova_is_va) {
		if (rte_dev_dma_map(dev, reg->addr, (uint64_t)(uintptr_t)reg->addr, reg->len) == 0)
			return 1;
		return rte_errno == ENOTSUP ? 0 : -rte_errno;
	}
	for (unsigned int p = 0; p < reg->n_pages; p++) {
		if (rte_dev_dma_map(dev, reg->addr + p * reg->page_sz, reg->iovas[p],
				    reg->page_sz) != 0) {
			int err = rte_errno;

			while (p-- > 0)
				rte_dev_dma_unmap(dev, reg->addr + p * reg->page_sz,
						  reg->iovas[p], reg->page_sz);
			return err == ENOTSUP ? 0 : -err;
		}
	}
	return 1;
}

int isoshm_dpdk_register_tx(struct isoshm_stack *s, struct isoshm_dpdk_reg *reg)
{
	const struct isostack_shm_header *h = isoshm_stack_header(s);
	uint16_t port;
	int rc;

	memset(reg, 0, sizeof(*reg));
	reg->addr = (uint8_t *)isoshm_stack_base(s) + h->tx_off;
	reg->seg_off = h->tx_off;
	reg->len = h->rx_off - h->tx_off;
	reg->page_sz = h->page_size;
	reg->n_pages = (unsigned int)(reg->len / reg->page_sz);
	reg->iova_is_va = rte_eal_iova_mode() == RTE_IOVA_VA;

	if (!reg->iova_is_va) {
		if (!(h->flags & ISOSTACK_SHM_FLAG_HUGETLB))
			return -ENOTSUP;
		reg->iovas = calloc(reg->n_pages, sizeof(*reg->iovas));
		if (reg->iovas == NULL)
			return -ENOMEM;
		for (unsigned int p = 0; p < reg->n_pages; p++) {
			reg->iovas[p] = rte_mem_virt2phy(reg->addr + p * reg->page_sz);
			if (reg->iovas[p] == RTE_BAD_IOVA) {
				rc = -ENOTSUP;
				goto err_free;
			}
		}
	}
	if (rte_extmem_register(reg->addr, reg->len, reg->iovas, reg->iovas ? reg->n_pages : 0,
				reg->page_sz) != 0) {
		rc = -rte_errno;
		goto err_free;
	}
	RTE_ETH_FOREACH_DEV(port) {
		struct rte_eth_dev_info info;

		if (rte_eth_dev_info_get(port, &info) != 0 || info.device == NULL)
			continue;
		rc = dma_map_dev(reg, info.device);
		if (rc < 0)
			goto err_unmap;
		if (rc == 1 && reg->n_mapped < ISOSHM_DPDK_MAX_PORTS)
			reg->mapped[reg->n_mapped++] = port;
	}
	return 0;

err_unmap:
	dma_unmap_all(reg);
	rte_extmem_unregister(reg->addr, reg->len);
err_free:
	free(reg->iovas);
	reg->iovas = NULL;
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
