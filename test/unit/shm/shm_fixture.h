/*
 * What the shm unit tests share (test_shm.c, test_shm_moves.c): a ring
 * placement written by hand, and opening an id on both sides as a SOCKET
 * reply makes the stack and the shim do.  Include after <cmocka.h>.
 */
#ifndef SHM_FIXTURE_H
#define SHM_FIXTURE_H

#include <string.h>

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

#endif /* SHM_FIXTURE_H */
