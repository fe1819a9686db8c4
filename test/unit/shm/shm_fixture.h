/*
 * What the shm unit tests share (test_shm.c, test_shm_moves.c,
 * test_shm_variants.c): a ring placement written by hand, opening an id on
 * both sides as a SOCKET reply makes the stack and the shim do, an extent
 * fd for the fetch callback, and ids opened in a new extent.  Include
 * after <cmocka.h>.
 */
#ifndef SHM_FIXTURE_H
#define SHM_FIXTURE_H

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "isoshm.h"

static inline struct isostack_shm_sockdir place(uint32_t ext, uint64_t tx_off, uint32_t tx_bytes,
						uint64_t rx_off, uint32_t rx_bytes)
{
	struct isostack_shm_sockdir d;

	memset(&d, 0, sizeof(d));
	d.tx_off = tx_off;
	d.rx_off = rx_off;
	d.tx_bytes = tx_bytes;
	d.rx_bytes = rx_bytes;
	d.tx_extent = ext;
	d.rx_extent = ext;
	/* as after the stack's open (0: no socket was ever opened on the id) */
	atomic_store_explicit(&d.tx_gen, 2, memory_order_relaxed);
	atomic_store_explicit(&d.rx_gen, 2, memory_order_relaxed);
	return d;
}

/* Opens id with the rings d0 places, on the stack's side then the
 * application's, and checks that the application sees those sizes. */
static inline void open_id(struct isoshm_stack *s, struct isoshm_app *a, uint32_t id,
			   const struct isostack_shm_sockdir *d0)
{
	struct isostack_shm_sockdir d = *d0;

	assert_int_equal(isoshm_stack_sock_open(s, id, &d), 0);
	assert_int_equal(isoshm_app_sock_open(a, id), 0);
	assert_int_equal(isoshm_app_tx_size(a, id), d.tx_bytes);
	assert_int_equal(isoshm_app_rx_size(a, id), d.rx_bytes);
}

/* An extent fd for the application's fetch callback, as the shim would
 * get it over the control socket but without it: the stack's own fd,
 * dup'ed (the callee closes it). */
static inline int extent_fd_dup(struct isoshm_stack *s, uint32_t id, uint64_t *off,
				uint64_t *size)
{
	int fd, rc = isoshm_stack_extent_get(s, id, &fd, off, size);

	if (rc < 0)
		return rc;
	fd = dup(fd);
	return fd < 0 ? -errno : fd;
}

/* Makes one extent and opens ids 1..n-1 on both sides, each on `ring`-byte
 * TX and RX rings in it (id i at extent offset i * 2 * ring).  Returns the
 * extent id; its offset in *ext_off. */
static inline uint32_t open_ids_in_new_extent(struct isoshm_stack *s, struct isoshm_app *a,
					      uint32_t n, uint32_t ring, uint64_t *ext_off)
{
	uint64_t size;
	uint32_t ext;
	int efd;

	assert_int_equal(isoshm_stack_extent_new(s, ISOSTACK_SHM_EXTENT_UNIT, &ext), 0);
	assert_true(isoshm_stack_extent_get(s, ext, &efd, ext_off, &size) >= 0);
	assert_int_equal(size, ISOSTACK_SHM_EXTENT_UNIT);
	for (uint32_t id = 1; id < n; id++) {
		struct isostack_shm_sockdir d = place(ext, *ext_off + id * 2 * ring, ring,
						      *ext_off + id * 2 * ring + ring, ring);

		open_id(s, a, id, &d);
	}
	return ext;
}

#endif /* SHM_FIXTURE_H */
