/*
 * Lock-free single-producer/single-consumer ring over shared memory, one
 * side's view.  Entries (64-byte commands, 4-byte socket ids, or bytes of a
 * TX/RX stream) live in a power-of-two array; the two indices run freely
 * over 2^32 and are masked on access, so "used = prod - cons" holds across
 * wrap-around.
 *
 * Each process keeps a struct isoshm_ring in PRIVATE memory: its own index
 * (`mine`, authoritative: never read back from the segment, which the peer
 * could overwrite) and a cached copy of the peer's index (`other`), so the
 * fast path touches the shared line of the peer only when the cached copy
 * says the ring looks full (producer) or empty (consumer).
 *
 * The peer may be an untrusted application: every index loaded from shared
 * memory goes through isoshm_ring_validate_index() before it is used, and a
 * bad one turns into -EPROTO without changing any state.  Entry contents are
 * copied out to private memory before the caller looks at them.
 *
 * Ordering points (C11 acquire/release, no fences needed on the fast path):
 *   P1  producer store-release of prod  <->  C1 consumer load-acquire of prod
 *       (the entries written before P1 are visible after C1)
 *   C2  consumer store-release of cons  <->  P0 producer load-acquire of cons
 *       (the consumer's reads of released entries are done before the
 *        producer overwrites them)
 */
#ifndef ISOSHM_RING_H
#define ISOSHM_RING_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum isoshm_ring_role {
	ISOSHM_RING_PRODUCER,
	ISOSHM_RING_CONSUMER,
};

struct isoshm_ring {
	_Atomic uint32_t *prod;  /* shared: written by the producer */
	_Atomic uint32_t *cons;  /* shared: written by the consumer */
	uint8_t *slots;          /* shared entry array */
	uint32_t size;           /* entries, power of two, <= 2^31 */
	uint32_t mask;
	uint32_t esize;          /* bytes per entry */
	uint32_t mine;           /* this side's index (private, authoritative) */
	uint32_t other;          /* cached copy of the peer's index (validated) */
	uint32_t role;           /* enum isoshm_ring_role */
};

/*
 * Binds a view to shared indices and slots.  Both indices must hold the
 * same value (a fresh or drained ring); the view starts from it.  Returns
 * 0, or -EINVAL if size is not a power of two in [1, 2^31] or the shared
 * indices disagree (a peer already moved, or memory is corrupt).
 */
static inline int isoshm_ring_init(struct isoshm_ring *r, enum isoshm_ring_role role,
				   _Atomic uint32_t *prod, _Atomic uint32_t *cons,
				   void *slots, uint32_t size, uint32_t esize)
{
	uint32_t p, c;

	if (size == 0 || (size & (size - 1)) != 0 || size > (UINT32_C(1) << 31) || esize == 0)
		return -EINVAL;
	/* Relaxed: at bind time nobody is producing yet; the values are
	 * validated against each other, not trusted. */
	p = atomic_load_explicit(prod, memory_order_relaxed);
	c = atomic_load_explicit(cons, memory_order_relaxed);
	if (p != c)
		return -EINVAL;
	r->prod = prod;
	r->cons = cons;
	r->slots = slots;
	r->size = size;
	r->mask = size - 1;
	r->esize = esize;
	r->mine = p;
	r->other = p;
	r->role = role;
	return 0;
}

/*
 * Binds (or re-binds) a view at index `start` for both sides, without
 * reading the shared words: the caller knows where the ring starts (its
 * own authoritative index, or the peer's index it adopts) and the peer's
 * index is validated against it at the first refresh.  Rebinding moves a
 * ring to new slots between two sockets of one id; the indices run on.
 */
static inline void isoshm_ring_bind(struct isoshm_ring *r, enum isoshm_ring_role role,
				    _Atomic uint32_t *prod, _Atomic uint32_t *cons,
				    void *slots, uint32_t size, uint32_t esize, uint32_t start)
{
	r->prod = prod;
	r->cons = cons;
	r->slots = slots;
	r->size = size;
	r->mask = size - 1;
	r->esize = esize;
	r->mine = start;
	r->other = start;
	r->role = role;
}

/*
 * The one check applied to a peer index read from shared memory.  The
 * peer's index may only move forward, and never past ours:
 *   consumer view (peer = producer): other - mine <= new - mine <= size
 *   producer view (peer = consumer): 0 <= mine - new <= mine - other
 * Returns 0 or -EPROTO (index moved backwards, jumped, or overtook us).
 */
static inline int isoshm_ring_validate_index(const struct isoshm_ring *r, uint32_t peer)
{
	if (r->role == ISOSHM_RING_CONSUMER) {
		uint32_t avail = peer - r->mine;
		return (avail >= r->other - r->mine && avail <= r->size) ? 0 : -EPROTO;
	}
	return (r->mine - peer <= r->mine - r->other) ? 0 : -EPROTO;
}

static inline void isoshm_ring__copy_in(struct isoshm_ring *r, uint32_t idx,
					const void *src, uint32_t n)
{
	uint32_t off = idx & r->mask;
	uint32_t first = r->size - off < n ? r->size - off : n;

	memcpy(r->slots + (size_t)off * r->esize, src, (size_t)first * r->esize);
	if (n > first)
		memcpy(r->slots, (const uint8_t *)src + (size_t)first * r->esize,
		       (size_t)(n - first) * r->esize);
}

static inline void isoshm_ring__copy_out(const struct isoshm_ring *r, uint32_t idx,
					 void *dst, uint32_t n)
{
	uint32_t off = idx & r->mask;
	uint32_t first = r->size - off < n ? r->size - off : n;

	memcpy(dst, r->slots + (size_t)off * r->esize, (size_t)first * r->esize);
	if (n > first)
		memcpy((uint8_t *)dst + (size_t)first * r->esize, r->slots,
		       (size_t)(n - first) * r->esize);
}

/*
 * Producer: free entries, refreshing the cached consumer index only when
 * fewer than `want` look free.  Returns the count or -EPROTO.
 */
static inline int64_t isoshm_ring_free(struct isoshm_ring *r, uint32_t want)
{
	uint32_t free_n = r->size - (r->mine - r->other);

	if (free_n < want) {
		/* P0: pairs with the consumer's store-release of cons (C2):
		 * its reads of the entries it released are complete. */
		uint32_t c = atomic_load_explicit(r->cons, memory_order_acquire);

		if (isoshm_ring_validate_index(r, c) < 0)
			return -EPROTO;
		r->other = c;
		free_n = r->size - (r->mine - c);
	}
	return free_n;
}

/* Producer: publish n entries already written at mine .. mine+n-1. */
static inline void isoshm_ring_publish(struct isoshm_ring *r, uint32_t n)
{
	r->mine += n;
	/* P1: makes the entries written above visible to the consumer's
	 * load-acquire of prod (C1). */
	atomic_store_explicit(r->prod, r->mine, memory_order_release);
}

/*
 * Producer: copies up to n entries from objs and publishes them.
 * Returns the number enqueued (0 when full), or -EPROTO if the consumer
 * index read from shared memory is invalid (nothing is written then).
 */
static inline int isoshm_ring_enqueue_burst(struct isoshm_ring *r, const void *objs, uint32_t n)
{
	int64_t free_n = isoshm_ring_free(r, n);

	if (free_n < 0)
		return (int)free_n;
	if (n > free_n)
		n = (uint32_t)free_n;
	if (n == 0)
		return 0;
	isoshm_ring__copy_in(r, r->mine, objs, n);
	isoshm_ring_publish(r, n);
	return (int)n;
}

/*
 * Consumer: entries available, refreshing the cached producer index only
 * when fewer than `want` look available.  Returns the count or -EPROTO.
 */
static inline int64_t isoshm_ring_avail(struct isoshm_ring *r, uint32_t want)
{
	uint32_t avail = r->other - r->mine;

	if (avail < want) {
		/* C1: pairs with the producer's store-release of prod (P1):
		 * the entries below the loaded index are fully written. */
		uint32_t p = atomic_load_explicit(r->prod, memory_order_acquire);

		if (isoshm_ring_validate_index(r, p) < 0)
			return -EPROTO;
		r->other = p;
		avail = p - r->mine;
	}
	return avail;
}

/* Consumer: release n entries (they may be overwritten from now on). */
static inline void isoshm_ring_consume(struct isoshm_ring *r, uint32_t n)
{
	r->mine += n;
	/* C2: our reads of the released entries happen before the producer's
	 * load-acquire of cons (P0) lets it overwrite them. */
	atomic_store_explicit(r->cons, r->mine, memory_order_release);
}

/*
 * Consumer: copies up to n entries to objs WITHOUT releasing them (call
 * isoshm_ring_consume() after checking them).  Returns the count copied or
 * -EPROTO.
 */
static inline int isoshm_ring_peek_burst(struct isoshm_ring *r, void *objs, uint32_t n)
{
	int64_t avail = isoshm_ring_avail(r, n);

	if (avail < 0)
		return (int)avail;
	if (n > avail)
		n = (uint32_t)avail;
	if (n != 0)
		isoshm_ring__copy_out(r, r->mine, objs, n);
	return (int)n;
}

/*
 * Consumer: copies up to n entries to objs and releases them.  Returns the
 * number dequeued (0 when empty) or -EPROTO (nothing consumed then).
 */
static inline int isoshm_ring_dequeue_burst(struct isoshm_ring *r, void *objs, uint32_t n)
{
	int k = isoshm_ring_peek_burst(r, objs, n);

	if (k > 0)
		isoshm_ring_consume(r, (uint32_t)k);
	return k;
}

#endif /* ISOSHM_RING_H */
