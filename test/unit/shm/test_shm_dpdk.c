/*
 * isoshm_dpdk: a segment's arena (where every TX ring lives, in extents)
 * registered as DPDK external memory, and TX bytes an application wrote
 * sent by a port without a copy.
 *
 * EAL runs without hugepages (--no-huge --no-shconf, IOVA as VA, its own
 * --file-prefix) on one lcore with a net_null port.  The stack registers
 * the arena before any extent exists, then makes an extent, DMA-maps it
 * and opens a socket on rings in it; the application side writes a byte
 * stream into the socket's TX ring; the stack side peeks the spans,
 * attaches them to mbufs as external buffers and transmits them; the test
 * checks the mbufs point into the extent at the right IOVA, that the
 * driver released every buffer (the free callback), and that the bytes the
 * mbufs carried hash like the bytes written.  Exits 77 if EAL can't start.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "../eal_runtime.h"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_memory.h>

#include "isoshm.h"
#include "isoshm_dpdk.h"

static struct rte_mempool *pool;
static unsigned int freed;

static void ext_free(void *addr, void *opaque)
{
	(void)addr;
	(void)opaque;
	freed++;
}

static uint32_t fnv1a(uint32_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

/* The application's extent fetch, in-process: the stack's fd, dup'ed. */
static int fetch(void *arg, uint32_t id, uint64_t *off, uint64_t *size)
{
	int fd, rc = isoshm_stack_extent_get(arg, id, &fd, off, size);

	if (rc < 0)
		return rc;
	fd = dup(fd);
	return fd < 0 ? -errno : fd;
}

static void tx_area_zero_copy(void **state)
{
	struct isoshm_params prm;
	struct isoshm_stack *s;
	struct isoshm_app *a;
	struct isoshm_dpdk_reg reg;
	struct rte_mbuf_ext_shared_info shinfo[2];
	struct isoshm_span span[2];
	struct isostack_shm_sockdir d;
	const struct isostack_shm_header *h;
	const struct rte_memseg_list *msl;
	uint8_t *arena;
	uint8_t data[3000];
	uint64_t ext_off, ext_size;
	uint32_t ext, h_in = 2166136261u, h_out = 2166136261u;
	int n, fd;

	(void)state;
	isoshm_params_default(&prm);
	prm.max_sockets = 4;
	prm.nr_doorbells = 1;
	prm.max_ring_bytes = 4096;
	prm.arena_size = 4 * ISOSTACK_SHM_EXTENT_UNIT;
	prm.hugetlb = false;
	assert_int_equal(isoshm_stack_create(&s, &prm), 0);
	assert_int_equal(isoshm_app_attach(&a, dup(isoshm_stack_fd(s)), NULL), 0);
	isoshm_app_set_fetch(a, fetch, s);
	h = isoshm_stack_header(s);
	arena = isoshm_stack_arena(s);

	/* the whole arena, before any extent exists */
	assert_int_equal(isoshm_dpdk_register_tx(s, &reg), 0);
	assert_ptr_equal(reg.addr, arena);
	assert_int_equal(reg.seg_off, 0);
	assert_int_equal(reg.len, h->arena_size);
	assert_int_equal(reg.page_sz, ISOSTACK_SHM_EXTENT_UNIT);
	assert_int_equal(reg.n_pages, 4);
	assert_true(reg.iova_is_va);
	msl = rte_mem_virt2memseg_list(reg.addr);
	assert_non_null(msl);
	assert_true(msl->external);
	assert_ptr_equal(rte_mem_virt2memseg_list(arena + h->arena_size - 1), msl);
	/* the base segment (commands, status) is not registered */
	assert_null(rte_mem_virt2memseg_list((uint8_t *)isoshm_stack_base(s) + h->socks_off));
	assert_int_equal(isoshm_dpdk_iova(&reg, 100), (rte_iova_t)(uintptr_t)(arena + 100));
	assert_int_equal(isoshm_dpdk_iova(&reg, h->arena_size - 1),
			 (rte_iova_t)(uintptr_t)(arena + h->arena_size - 1));
	assert_int_equal(isoshm_dpdk_iova(&reg, h->arena_size), RTE_BAD_IOVA);
	assert_int_equal(isoshm_dpdk_iova(&reg, UINT64_MAX), RTE_BAD_IOVA);

	/* an extent (the second: not at offset 0), DMA-mapped (net_null is a
	 * vdev: nothing to map, not an error), a socket on rings in it */
	assert_int_equal(isoshm_stack_extent_new(s, ISOSTACK_SHM_EXTENT_UNIT, &ext), 0);
	assert_int_equal(isoshm_stack_extent_new(s, ISOSTACK_SHM_EXTENT_UNIT, &ext), 0);
	assert_int_equal(isoshm_stack_extent_get(s, ext, &fd, &ext_off, &ext_size), 0);
	assert_int_equal(ext_off, ISOSTACK_SHM_EXTENT_UNIT);
	assert_int_equal(isoshm_dpdk_map_extent(&reg, ext_off, ext_size, false), 0);
	assert_int_equal(reg.n_mapped_ext, 1);
	assert_int_equal(reg.ext_off[0], ext_off);
	assert_int_equal(reg.ext_len[0], ext_size);
	memset(&d, 0, sizeof(d));
	d.tx_off = ext_off + 65536;
	d.rx_off = ext_off + 65536 + 4096;
	d.tx_bytes = d.rx_bytes = 4096;
	d.tx_extent = d.rx_extent = ext;
	assert_int_equal(isoshm_stack_sock_open(s, 2, &d), 0);
	assert_int_equal(isoshm_app_sock_open(a, 2), 0);

	/* two rounds, the second wraps the ring: two spans, two mbufs */
	for (int round = 0; round < 2; round++) {
		struct rte_mbuf *m[2];
		unsigned int nm = 0;

		for (size_t i = 0; i < sizeof(data); i++)
			data[i] = (uint8_t)(i * 31 + (size_t)round);
		assert_int_equal(isoshm_app_tx_write(a, 2, data, sizeof(data)), (int)sizeof(data));
		h_in = fnv1a(h_in, data, sizeof(data));

		n = isoshm_stack_tx_peek(s, 2, span);
		assert_int_equal(n, (int)sizeof(data));
		freed = 0;
		for (int i = 0; i < 2; i++) {
			if (span[i].len == 0)
				continue;
			m[nm] = rte_pktmbuf_alloc(pool);
			assert_non_null(m[nm]);
			memset(&shinfo[nm], 0, sizeof(shinfo[nm]));
			shinfo[nm].free_cb = ext_free;
			rte_mbuf_ext_refcnt_set(&shinfo[nm], 1);
			assert_int_equal(isoshm_dpdk_attach_extbuf(&reg, m[nm], span[i].off,
								   (uint16_t)span[i].len,
								   &shinfo[nm]), 0);
			assert_true(span[i].off >= d.tx_off &&
				    span[i].off + span[i].len <= d.tx_off + d.tx_bytes);
			assert_ptr_equal(rte_pktmbuf_mtod(m[nm], void *), span[i].addr);
			assert_ptr_equal(span[i].addr, arena + span[i].off);
			assert_int_equal(rte_pktmbuf_iova(m[nm]),
					 isoshm_dpdk_iova(&reg, span[i].off));
			h_out = fnv1a(h_out, rte_pktmbuf_mtod(m[nm], uint8_t *), span[i].len);
			nm++;
		}
		assert_int_equal(nm, round == 0 ? 1 : 2);
		assert_int_equal(rte_eth_tx_burst(0, 0, m, (uint16_t)nm), nm);
		/* net_null frees what it "sent": the external buffers come back */
		assert_int_equal(freed, nm);
		assert_int_equal(isoshm_stack_tx_release(s, 2, (uint32_t)n), 0);
	}
	assert_int_equal(h_in, h_out);

	/* a span outside the arena, or empty, is refused */
	{
		struct rte_mbuf *m = rte_pktmbuf_alloc(pool);

		memset(&shinfo[0], 0, sizeof(shinfo[0]));
		shinfo[0].free_cb = ext_free;
		assert_int_equal(isoshm_dpdk_attach_extbuf(&reg, m, h->arena_size, 10, &shinfo[0]),
				 -EINVAL);
		assert_int_equal(isoshm_dpdk_attach_extbuf(&reg, m, h->arena_size - 5, 10,
							   &shinfo[0]), -EINVAL);
		assert_int_equal(isoshm_dpdk_attach_extbuf(&reg, m, d.tx_off, 0, &shinfo[0]),
				 -EINVAL);
		rte_pktmbuf_free(m);
	}

	assert_int_equal(isoshm_dpdk_unregister_tx(&reg), 0);
	assert_int_equal(reg.n_mapped_ext, 0);
	assert_null(rte_mem_virt2memseg_list(reg.addr));
	assert_int_equal(isoshm_dpdk_unregister_tx(&reg), -ENOENT);
	isoshm_app_detach(a);
	isoshm_stack_destroy(s);
}

static int eal_up(void)
{
	char prefix[64];
	char *argv[] = {
		"test_shm_dpdk", "--no-huge", "--no-shconf", "-m", "64", "-l", "0", "--no-pci",
		"--iova-mode=va", "--vdev=net_null0", "--log-level=lib.*:error", prefix,
	};
	struct rte_eth_conf conf;

	snprintf(prefix, sizeof(prefix), "--file-prefix=isoshm-dpdk-%d", (int)getpid());
	if (rte_eal_init((int)(sizeof(argv) / sizeof(argv[0])), argv) < 0) {
		printf("EAL could not start here (%s): skipping\n", rte_strerror(rte_errno));
		return 77;
	}
	if (rte_eth_dev_count_avail() < 1) {
		printf("no net_null port: skipping\n");
		return 77;
	}
	pool = rte_pktmbuf_pool_create("isoshm_test", 255, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
				       SOCKET_ID_ANY);
	memset(&conf, 0, sizeof(conf));
	if (pool == NULL || rte_eth_dev_configure(0, 1, 1, &conf) != 0 ||
	    rte_eth_rx_queue_setup(0, 0, 64, SOCKET_ID_ANY, NULL, pool) != 0 ||
	    rte_eth_tx_queue_setup(0, 0, 64, SOCKET_ID_ANY, NULL) != 0 ||
	    rte_eth_dev_start(0) != 0) {
		printf("net_null port setup failed (%s)\n", rte_strerror(rte_errno));
		return 1;
	}
	return 0;
}

/* EAL leaves its runtime directory behind even with --no-shconf. */
int main(void)
{
	char runtime_dir[PATH_MAX];
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(tx_area_zero_copy),
	};
	int rc = eal_up();

	if (rc != 0)
		return rc;
	snprintf(runtime_dir, sizeof(runtime_dir), "%s", rte_eal_get_runtime_dir());
	rc = cmocka_run_group_tests_name("shm_dpdk", tests, NULL, NULL);
	rte_eth_dev_stop(0);
	rte_eth_dev_close(0);
	rte_eal_cleanup();
	test_remove_runtime_dir(runtime_dir);
	return rc;
}
