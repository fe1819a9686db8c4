/*
 * isoshm ring moves (shm_abi.h, struct isostack_shm_sockdir): the stack
 * moves a socket's RX ring while it is empty, and offers TX rings that the
 * application takes at an empty ring, or that the stack takes for an idle
 * application.  One process plays both sides of a segment, step by step,
 * so each test can stop the protocol at the moment it cares about: RX
 * moves to larger and smaller rings (before and after the application
 * opened the socket), TX offers with and without hold, the stack's take
 * and its tx_busy handshake, an application that takes an offer it may
 * not, the errors of the move calls, and the generations across a
 * reopen.  Three tests run the sides on two threads: a stack that
 * re-offers while the application reads the directory, a reader polling
 * an empty RX ring the stack keeps moving, and a stress run of both
 * streams under constant moves.  Last, rings of none (an idle socket's):
 * RX to none and back when bytes arrive, TX none that the application
 * asks to leave, and an application that uses none anyway.
 *
 * Every test checks what a user would: bytes by checksum, indices, the
 * spans' place in the arena, return codes and the stack's counters.  A
 * ring the stack left is poisoned, so reading or writing it afterwards
 * shows up as wrong bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "isoshm.h"
#include "shm_fixture.h"

/* ---- Fixture: a segment seen from both sides (as in test_shm.c) -------- */

#define UNIT ISOSTACK_SHM_EXTENT_UNIT
#define RING 4096u              /* the rings every id opens on */
#define MAX_RING 65536u         /* largest ring the stack places here */
#define POISON 0xee

struct seg {
	struct isoshm_stack *s;
	struct isoshm_app *a;
	struct isoshm_attach_info info;
	struct isostack_shm_sock *socks;   /* the shared socket blocks */
	struct isostack_shm_sockdir *dir;  /* the shared directory */
	uint32_t ext;                      /* extent of every ring below */
	uint64_t ext_off;
	uint64_t next_off;                 /* bump allocator for moved rings */
	unsigned int fetches;              /* extent fds the application asked for */
};


/* The stack's idle take, as the daemon does it: after the asymmetric
 * barrier (shm/membarrier.c; this process registered at attach).  Where
 * membarrier is missing the application kept full fences. */
static int take_idle(struct isoshm_stack *s, uint32_t sock)
{
	(void)isoshm_membarrier_global();
	return isoshm_stack_tx_take(s, sock);
}

static void params(struct isoshm_params *p)
{
	isoshm_params_default(p);
	p->max_sockets = 8;
	p->nr_doorbells = 2;
	p->cmd_entries = 8;
	p->status_entries = 8;
	p->max_ring_bytes = MAX_RING;
	p->arena_size = 4 * UNIT;
	p->hugetlb = false;
}

/* The application's extent fetch: the stack's fd, dup'ed. */
static int fetch_cb(void *arg, uint32_t id, uint64_t *off, uint64_t *size)
{
	struct seg *g = arg;
	int fd = extent_fd_dup(g->s, id, off, size);

	if (fd >= 0)
		g->fetches++;
	return fd;
}

/* The initial rings of id: TX at ext_off + id * 8 KiB, RX after it. */
static struct isostack_shm_sockdir first_rings(const struct seg *g, uint32_t id)
{
	return place(g->ext, g->ext_off + id * 2 * RING, RING,
		     g->ext_off + id * 2 * RING + RING, RING);
}

/* Opens id on both sides, as a SOCKET reply makes the shim do. */
static void open_both(struct seg *g, uint32_t id, const struct isostack_shm_sockdir *d0)
{
	open_id(g->s, g->a, id, d0);
}

/* A fresh ring of `bytes` in the fixture's extent, past the initial ones,
 * aligned to its size and poisoned. */
static uint64_t ring_new(struct seg *g, uint32_t bytes)
{
	uint64_t off = (g->next_off + bytes - 1) & ~((uint64_t)bytes - 1);

	assert_true(off + bytes <= g->ext_off + UNIT);
	g->next_off = off + bytes;
	memset((uint8_t *)isoshm_stack_arena(g->s) + off, POISON, bytes);
	return off;
}

/* Creates a segment, attaches through SCM_RIGHTS, makes one extent and
 * opens ids 1..7 on 4 KiB rings (the first 64 KiB of the extent). */
static struct seg *seg_open(void)
{
	struct isoshm_params p;
	struct seg *g = calloc(1, sizeof(*g));
	int sv[2], fd = -1, efd;
	char c = 'S', got = 0;
	uint64_t size;

	assert_non_null(g);
	params(&p);
	assert_int_equal(isoshm_stack_create(&g->s, &p), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(isoshm_send_fd(sv[0], isoshm_stack_fd(g->s), &c, 1), 0);
	assert_int_equal(isoshm_recv_fd(sv[1], &fd, &got, 1), 1);
	assert_true(fd >= 0);
	assert_int_equal(isoshm_app_attach(&g->a, fd, &g->info), 0);
	isoshm_app_set_fetch(g->a, fetch_cb, g);
	close(sv[0]);
	close(sv[1]);
	g->socks = (void *)((uint8_t *)isoshm_stack_base(g->s) +
			    isoshm_stack_header(g->s)->socks_off);
	g->dir = (void *)((uint8_t *)isoshm_stack_base(g->s) +
			  isoshm_stack_header(g->s)->dir_off);
	assert_int_equal(isoshm_stack_extent_new(g->s, UNIT, &g->ext), 0);
	assert_true(isoshm_stack_extent_get(g->s, g->ext, &efd, &g->ext_off, &size) >= 0);
	assert_int_equal(size, UNIT);
	g->next_off = g->ext_off + 16 * RING;
	for (uint32_t id = 1; id < p.max_sockets; id++) {
		struct isostack_shm_sockdir d = first_rings(g, id);

		open_both(g, id, &d);
	}
	assert_int_equal(g->fetches, 1);
	return g;
}

static int seg_setup(void **state)
{
	*state = seg_open();
	return 0;
}

static int seg_teardown(void **state)
{
	struct seg *g = *state;

	isoshm_app_detach(g->a);
	isoshm_stack_destroy(g->s);
	free(g);
	return 0;
}

#define FNV_INIT 2166136261u

static uint32_t fnv1a(uint32_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

/* The byte at stream position pos of a stream seeded by seed. */
static uint8_t pat(uint32_t pos, uint8_t seed)
{
	return (uint8_t)((pos * 2654435761u) >> 24) ^ seed;
}

static void fill(uint8_t *buf, uint32_t pos, uint32_t n, uint8_t seed)
{
	for (uint32_t i = 0; i < n; i++)
		buf[i] = pat(pos + i, seed);
}

/* Stream bytes [pos, pos + n) of seed: are they exactly buf? */
static bool matches(const uint8_t *buf, uint32_t pos, uint32_t n, uint8_t seed)
{
	for (uint32_t i = 0; i < n; i++)
		if (buf[i] != pat(pos + i, seed))
			return false;
	return true;
}

/* Peeks sock's TX bytes: their count must be want (ISOSHM_TX_SWITCHED is
 * not accepted here), every span inside [ring_off, ring_off + bytes), and
 * the bytes those of stream seed from *pos on.  Releases all but `keep`
 * of them (expecting release_rc) and moves *pos on as far. */
static void tx_check(struct seg *g, uint32_t sock, uint64_t ring_off, uint32_t bytes,
		     int want, uint32_t *pos, uint8_t seed, uint32_t keep, int release_rc)
{
	struct isoshm_span span[2];
	uint32_t at = *pos, h_in, h_out = FNV_INIT;
	uint8_t *src = malloc((size_t)want + 1);
	int k = isoshm_stack_tx_peek(g->s, sock, span);

	assert_non_null(src);
	assert_int_equal(k, want);
	assert_int_equal(span[0].len + span[1].len, (uint32_t)k);
	for (int i = 0; i < 2; i++) {
		if (span[i].len == 0)
			continue;
		assert_true(span[i].off >= ring_off);
		assert_true(span[i].off + span[i].len <= ring_off + bytes);
		assert_ptr_equal(span[i].addr,
				 (uint8_t *)isoshm_stack_arena(g->s) + span[i].off);
		h_out = fnv1a(h_out, span[i].addr, span[i].len);
	}
	fill(src, at, (uint32_t)k, seed);
	h_in = fnv1a(FNV_INIT, src, (size_t)k);
	assert_int_equal(h_in, h_out);
	free(src);
	assert_true(keep <= (uint32_t)k);
	if ((uint32_t)k > keep)
		assert_int_equal(isoshm_stack_tx_release(g->s, sock, (uint32_t)k - keep),
				 release_rc);
	*pos = at + (uint32_t)k - keep;
}

/* The same, releasing everything. */
static void tx_expect(struct seg *g, uint32_t sock, uint64_t ring_off, uint32_t bytes,
		      int want, uint32_t *pos, uint8_t seed, int release_rc)
{
	tx_check(g, sock, ring_off, bytes, want, pos, seed, 0, release_rc);
}

/* The application writes n bytes of stream seed from *pos (all must fit). */
static void tx_put(struct seg *g, uint32_t sock, uint32_t n, uint32_t *pos, uint8_t seed)
{
	uint8_t *buf = malloc(n);

	assert_non_null(buf);
	fill(buf, *pos, n, seed);
	assert_int_equal(isoshm_app_tx_write(g->a, sock, buf, n), (int)n);
	*pos += n;
	free(buf);
}

/* The stack writes n RX bytes of stream seed from *pos (all must fit). */
static void rx_put(struct seg *g, uint32_t sock, uint32_t n, uint32_t *pos, uint8_t seed)
{
	uint8_t *buf = malloc(n);

	assert_non_null(buf);
	fill(buf, *pos, n, seed);
	assert_int_equal(isoshm_stack_rx_write(g->s, sock, buf, n), (int)n);
	*pos += n;
	free(buf);
}

/* The application reads exactly n RX bytes, which must be stream seed from
 * *pos, in reads of at most chunk. */
static void rx_get(struct seg *g, uint32_t sock, uint32_t n, uint32_t chunk, uint32_t *pos,
		   uint8_t seed)
{
	uint8_t *buf = malloc(chunk);
	uint32_t h_in = FNV_INIT, h_out = FNV_INIT, left = n;

	assert_non_null(buf);
	while (left > 0) {
		int k = isoshm_app_rx_read(g->a, sock, buf, left < chunk ? left : chunk);

		assert_true(k > 0);
		h_out = fnv1a(h_out, buf, (size_t)k);
		fill(buf, *pos, (uint32_t)k, seed);
		h_in = fnv1a(h_in, buf, (size_t)k);
		*pos += (uint32_t)k;
		left -= (uint32_t)k;
	}
	assert_int_equal(h_in, h_out);
	free(buf);
}

/* ---- RX ------------------------------------------------------------------ */

/*
 * RX moves while empty, to a larger ring, then a smaller one: the stack
 * writes into the new ring (the first byte where the ring is in the
 * arena), the application reads every byte and its size follows.  Before
 * the application looks, the stack writes more than the old ring holds:
 * rx_avail must follow the move before it checks rx_prod.
 */
static void rx_move_empty(void **state)
{
	struct seg *g = *state;
	const uint8_t *arena = isoshm_stack_arena(g->s);
	struct isostack_shm_sock *sk = &g->socks[1];
	uint32_t wpos = 0, rpos = 0, prod;
	uint64_t big, small;

	/* some traffic on the first ring, across its wrap */
	for (int i = 0; i < 3; i++) {
		rx_put(g, 1, 3000, &wpos, 1);
		rx_get(g, 1, 3000, 1024, &rpos, 1);
	}
	big = ring_new(g, 16384);
	assert_int_equal(isoshm_stack_rx_move(g->s, 1, big, 16384, g->ext), 0);
	assert_int_equal(isoshm_stack_stats(g->s)->rx_moves, 1);
	assert_int_equal(isoshm_stack_rx_space(g->s, 1), 16384);
	assert_int_equal(g->dir[1].rx_start, wpos);
	assert_int_equal(atomic_load(&g->dir[1].rx_gen) & 1u, 0);
	/* nothing to read yet: the application stays where it is */
	assert_int_equal(isoshm_app_rx_avail(g->a, 1), 0);
	/* 12000 bytes, three old rings' worth, before the application looks */
	prod = atomic_load(&sk->rx_prod);
	rx_put(g, 1, 12000, &wpos, 1);
	assert_int_equal(arena[big + (prod & (16384 - 1))], pat(prod, 1));
	assert_int_equal(isoshm_app_rx_avail(g->a, 1), 12000);
	assert_int_equal(isoshm_app_rx_size(g->a, 1), 16384);
	/* while bytes are unread the ring stays */
	assert_int_equal(isoshm_stack_rx_move(g->s, 1, ring_new(g, 4096), 4096, g->ext), -EBUSY);
	rx_get(g, 1, 5000, 777, &rpos, 1);
	assert_int_equal(isoshm_stack_rx_move(g->s, 1, ring_new(g, 4096), 4096, g->ext), -EBUSY);
	rx_get(g, 1, 7000, 4096, &rpos, 1);
	/* the new ring's wrap: 2 x 12000 bytes on 16 KiB */
	for (int i = 0; i < 2; i++) {
		rx_put(g, 1, 12000, &wpos, 1);
		rx_get(g, 1, 12000, 5000, &rpos, 1);
	}

	/* smaller: 4 KiB; the stack cannot write more than it holds */
	small = ring_new(g, 4096);
	assert_int_equal(isoshm_stack_rx_move(g->s, 1, small, 4096, g->ext), 0);
	memset((uint8_t *)isoshm_stack_arena(g->s) + big, POISON, 16384); /* freed */
	assert_int_equal(isoshm_stack_rx_space(g->s, 1), 4096);
	rx_put(g, 1, 4096, &wpos, 1);
	assert_int_equal(isoshm_stack_rx_space(g->s, 1), 0);
	assert_int_equal(isoshm_app_rx_avail(g->a, 1), 4096);
	assert_int_equal(isoshm_app_rx_size(g->a, 1), 4096);
	rx_get(g, 1, 4096, 4096, &rpos, 1);
	for (int i = 0; i < 5; i++) {
		rx_put(g, 1, 3000, &wpos, 1);
		rx_get(g, 1, 3000, 1000, &rpos, 1);
	}
	assert_int_equal(isoshm_app_rx_avail(g->a, 1), 0);
	assert_int_equal(rpos, wpos);
	assert_int_equal(atomic_load(&sk->rx_cons), wpos);
	assert_int_equal(isoshm_stack_stats(g->s)->rx_moves, 2);
	assert_int_equal(isoshm_stack_stats(g->s)->bad_index, 0);
}

/* Moves into an extent the application has not mapped yet: it fetches it
 * when it follows.  Two moves in a row before any byte: it binds the last. */
static void rx_move_new_extent(void **state)
{
	struct seg *g = *state;
	uint32_t ext, wpos = 0, rpos = 0;
	uint64_t eoff, esize;
	int efd;

	assert_int_equal(isoshm_stack_extent_new(g->s, UNIT, &ext), 0);
	assert_true(isoshm_stack_extent_get(g->s, ext, &efd, &eoff, &esize) >= 0);
	memset((uint8_t *)isoshm_stack_arena(g->s) + eoff, POISON, 2 * MAX_RING);
	assert_int_equal(isoshm_stack_rx_move(g->s, 2, ring_new(g, 8192), 8192, g->ext), 0);
	assert_int_equal(isoshm_stack_rx_move(g->s, 2, eoff + MAX_RING, MAX_RING, ext), 0);
	rx_put(g, 2, 40000, &wpos, 2);
	assert_int_equal(g->fetches, 1);
	assert_int_equal(isoshm_app_rx_avail(g->a, 2), 40000);
	assert_int_equal(g->fetches, 2);
	assert_int_equal(isoshm_app_rx_size(g->a, 2), MAX_RING);
	rx_get(g, 2, 40000, 9000, &rpos, 2);
	rx_put(g, 2, 60000, &wpos, 2);
	rx_get(g, 2, 60000, 60000, &rpos, 2);
	assert_int_equal(isoshm_stack_stats(g->s)->rx_moves, 2);
}

/*
 * An accepted child: the stack opens the id and moves its RX ring before
 * the application opened it (the directory entry changes under no
 * reader).  The application binds the moved ring and bytes flow; the
 * stack may even have written some before the application opens.
 */
static void rx_move_before_open(void **state)
{
	struct seg *g = *state;
	struct isostack_shm_sockdir d;
	uint32_t wpos, rpos;
	uint64_t big;

	/* id 3 closed and reopened by the stack alone, as for an ACCEPT */
	rx_put(g, 3, 1000, &(uint32_t){ 0 }, 3);
	rx_get(g, 3, 1000, 1000, &(uint32_t){ 0 }, 3);
	d = place(g->ext, ring_new(g, 4096), 4096, ring_new(g, 4096), 4096);
	assert_int_equal(isoshm_stack_sock_open(g->s, 3, &d), 0);
	assert_int_equal(d.rx_start, 1000);
	big = ring_new(g, 32768);
	assert_int_equal(isoshm_stack_rx_move(g->s, 3, big, 32768, g->ext), 0);
	assert_int_equal(g->dir[3].rx_off, big);
	assert_int_equal(g->dir[3].rx_start, 1000);
	wpos = rpos = 1000;
	rx_put(g, 3, 20000, &wpos, 3);

	assert_int_equal(isoshm_app_sock_open(g->a, 3), 0);
	assert_int_equal(isoshm_app_rx_size(g->a, 3), 32768);
	assert_int_equal(isoshm_app_tx_size(g->a, 3), 4096);
	assert_int_equal(isoshm_app_rx_avail(g->a, 3), 20000);
	rx_get(g, 3, 20000, 3000, &rpos, 3);
	rx_put(g, 3, 30000, &wpos, 3);
	rx_get(g, 3, 30000, 30000, &rpos, 3);
	/* the TX ring of the new socket works too */
	wpos = atomic_load(&g->socks[3].tx_prod);
	rpos = wpos;
	tx_put(g, 3, 4000, &wpos, 4);
	tx_expect(g, 3, d.tx_off, 4096, 4000, &rpos, 4, 0);
	assert_int_equal(isoshm_stack_stats(g->s)->bad_index, 0);
}

/* ---- TX ------------------------------------------------------------------ */

/*
 * An offer of a larger ring with hold, taken by the application: it keeps
 * the old ring full, the stack's releases are held back until the ring is
 * empty, the application's next write takes the offer, the stack switches
 * (ISOSHM_TX_SWITCHED) and then peeks from the new ring, which takes more
 * than the old one held.
 */
static void tx_offer_taken_by_app(void **state)
{
	struct seg *g = *state;
	struct isostack_shm_sock *sk = &g->socks[1];
	struct isostack_shm_sockdir d = first_rings(g, 1);
	struct isoshm_span span[2];
	uint32_t wpos = 0, rpos = 0, gen0 = atomic_load(&g->dir[1].tx_gen), cons;
	uint8_t buf[8192];
	uint64_t big;

	/* traffic before: the indices are past the ring's wrap */
	for (int i = 0; i < 3; i++) {
		tx_put(g, 1, 3000, &wpos, 5);
		tx_expect(g, 1, d.tx_off, RING, 3000, &rpos, 5, 0);
	}
	/* 1000 bytes in the ring (an offer at an empty ring is taken by the
	 * next write), then the offer */
	tx_put(g, 1, 1000, &wpos, 5);
	big = ring_new(g, 16384);
	assert_int_equal(isoshm_stack_tx_offer(g->s, 1, big, 16384, g->ext, true), 0);
	assert_int_equal(atomic_load(&g->dir[1].tx_gen), gen0 + 2);
	assert_int_equal(g->dir[1].tx_off, big);
	assert_int_equal(isoshm_stack_stats(g->s)->tx_offers, 1);
	/* the application fills the old ring */
	fill(buf, wpos, sizeof(buf), 5);
	assert_int_equal(isoshm_app_tx_write(g->a, 1, buf, sizeof(buf)), RING - 1000);
	wpos += RING - 1000;
	assert_int_equal(isoshm_app_tx_write(g->a, 1, buf, 1), 0);
	assert_int_equal(atomic_load(&sk->tx_gen), gen0);
	assert_int_equal(isoshm_app_tx_size(g->a, 1), RING);

	/* releases held back: tx_cons stays until the ring is empty */
	cons = atomic_load(&sk->tx_cons);
	assert_int_equal(cons, rpos);
	tx_check(g, 1, d.tx_off, RING, RING, &rpos, 5, RING - 1000, 1);
	assert_int_equal(atomic_load(&sk->tx_cons), cons);
	assert_int_equal(isoshm_app_tx_write(g->a, 1, buf, 1), 0); /* no room seen */
	tx_check(g, 1, d.tx_off, RING, RING - 1000, &rpos, 5, 1, 1);
	assert_int_equal(atomic_load(&sk->tx_cons), cons);
	assert_int_equal(isoshm_app_tx_write(g->a, 1, buf, 1), 0);
	tx_expect(g, 1, d.tx_off, RING, 1, &rpos, 5, 0);
	assert_int_equal(atomic_load(&sk->tx_cons), wpos);  /* empty: published */
	assert_int_equal(atomic_load(&g->dir[1].tx_gen), gen0 + 2); /* still open */
	assert_int_equal(isoshm_stack_stats(g->s)->tx_switches, 0);

	/* the next write takes the offer and lands in the new ring: more than
	 * the old ring held */
	tx_put(g, 1, 10000, &wpos, 5);
	assert_int_equal(atomic_load(&sk->tx_gen), gen0 + 2);
	assert_int_equal(isoshm_app_tx_size(g->a, 1), 16384);
	assert_int_equal(isoshm_stack_tx_peek(g->s, 1, span), ISOSHM_TX_SWITCHED);
	assert_int_equal(isoshm_stack_stats(g->s)->tx_switches, 1);
	memset((uint8_t *)isoshm_stack_arena(g->s) + d.tx_off, POISON, RING); /* freed */
	tx_expect(g, 1, big, 16384, 10000, &rpos, 5, 0);
	/* no hold any more: a partial release is published */
	tx_put(g, 1, 16000, &wpos, 5);
	tx_check(g, 1, big, 16384, 16000, &rpos, 5, 10000, 0);
	assert_int_equal(atomic_load(&sk->tx_cons), rpos);
	tx_expect(g, 1, big, 16384, 10000, &rpos, 5, 0);
	/* and across the new ring's wrap */
	for (int i = 0; i < 4; i++) {
		tx_put(g, 1, 15000, &wpos, 5);
		tx_expect(g, 1, big, 16384, 15000, &rpos, 5, 0);
	}
	/* a new offer may be made now */
	assert_int_equal(isoshm_stack_tx_offer(g->s, 1, ring_new(g, 4096), 4096, g->ext, false), 0);
	assert_int_equal(isoshm_stack_stats(g->s)->bad_index, 0);
}

/* An offer is open but the application's ring is not empty: it writes on
 * in the old ring and nothing switches; a smaller offer (no hold) is
 * taken at the first empty ring. */
static void tx_offer_ring_busy(void **state)
{
	struct seg *g = *state;
	struct isostack_shm_sock *sk = &g->socks[2];
	struct isostack_shm_sockdir d = first_rings(g, 2);
	struct isoshm_span span[2];
	uint32_t wpos = 0, rpos = 0, gen0 = atomic_load(&g->dir[2].tx_gen);
	uint64_t big = ring_new(g, 8192);

	tx_put(g, 2, 100, &wpos, 6);
	assert_int_equal(isoshm_stack_tx_offer(g->s, 2, big, 8192, g->ext, false), 0);
	for (int i = 0; i < 6; i++) {
		/* the stack releases all but one byte: never empty */
		tx_put(g, 2, 2000, &wpos, 6);
		tx_check(g, 2, d.tx_off, RING, (int)(wpos - rpos), &rpos, 6, 1, 0);
		assert_int_equal(atomic_load(&sk->tx_gen), gen0);
		assert_int_equal(isoshm_app_tx_size(g->a, 2), RING);
	}
	assert_int_equal(take_idle(g->s, 2), 0);
	assert_int_equal(isoshm_stack_stats(g->s)->tx_switches, 0);
	assert_int_equal(atomic_load(&g->dir[2].tx_gen), gen0 + 2);
	/* release the last byte: the next write takes the offer */
	tx_expect(g, 2, d.tx_off, RING, 1, &rpos, 6, 0);
	tx_put(g, 2, 5000, &wpos, 6);
	assert_int_equal(atomic_load(&sk->tx_gen), gen0 + 2);
	assert_int_equal(isoshm_stack_tx_peek(g->s, 2, span), ISOSHM_TX_SWITCHED);
	tx_expect(g, 2, big, 8192, 5000, &rpos, 6, 0);
	assert_int_equal(isoshm_stack_stats(g->s)->bad_index, 0);
}

/*
 * The stack takes the offer for an idle application (empty ring, tx_busy
 * 0); the application's next write takes the same offer, and the stack
 * peeks its bytes from the new ring with no ISOSHM_TX_SWITCHED.  Not
 * while a write is under way (tx_busy), nor with bytes written or peeked
 * and not released.
 */
static void tx_take_idle(void **state)
{
	struct seg *g = *state;
	struct isostack_shm_sock *sk = &g->socks[4];
	struct isostack_shm_sockdir d = first_rings(g, 4);
	struct isoshm_span span[2];
	uint32_t wpos = 0, rpos = 0, gen0 = atomic_load(&g->dir[4].tx_gen);
	uint64_t big = ring_new(g, 32768), small;

	assert_int_equal(take_idle(g->s, 4), 0);   /* no offer */
	tx_put(g, 4, 3000, &wpos, 7);
	tx_expect(g, 4, d.tx_off, RING, 3000, &rpos, 7, 0);
	/* 10 bytes written, then the offer: not taken while they are pending */
	tx_put(g, 4, 10, &wpos, 7);
	assert_int_equal(isoshm_stack_tx_offer(g->s, 4, big, 32768, g->ext, false), 0);
	assert_int_equal(take_idle(g->s, 4), 0);     /* not peeked */
	tx_check(g, 4, d.tx_off, RING, 10, &rpos, 7, 10, 0);
	assert_int_equal(take_idle(g->s, 4), 0);     /* peeked, not released */
	tx_check(g, 4, d.tx_off, RING, 10, &rpos, 7, 6, 0);
	assert_int_equal(take_idle(g->s, 4), 0);     /* partly released */
	tx_expect(g, 4, d.tx_off, RING, 6, &rpos, 7, 0);
	/* empty, but a write under way */
	atomic_store(&sk->tx_busy, 1);
	assert_int_equal(take_idle(g->s, 4), 0);
	atomic_store(&sk->tx_busy, 0);
	assert_int_equal(atomic_load(&sk->tx_gen), gen0);
	assert_int_equal(isoshm_stack_stats(g->s)->tx_switches, 0);

	/* idle: taken */
	assert_int_equal(take_idle(g->s, 4), 1);
	assert_int_equal(isoshm_stack_stats(g->s)->tx_switches, 1);
	assert_int_equal(take_idle(g->s, 4), 0);   /* none open now */
	memset((uint8_t *)isoshm_stack_arena(g->s) + d.tx_off, POISON, RING); /* freed */
	assert_int_equal(isoshm_stack_tx_peek(g->s, 4, span), 0);
	/* the application follows at its next write; no switch is reported */
	tx_put(g, 4, 20000, &wpos, 7);
	assert_int_equal(atomic_load(&sk->tx_gen), gen0 + 2);
	assert_int_equal(isoshm_app_tx_size(g->a, 4), 32768);
	tx_expect(g, 4, big, 32768, 20000, &rpos, 7, 0);
	for (int i = 0; i < 3; i++) {
		tx_put(g, 4, 30000, &wpos, 7);
		tx_expect(g, 4, big, 32768, 30000, &rpos, 7, 0);
	}
	assert_int_equal(isoshm_stack_stats(g->s)->tx_switches, 1);

	/* a take after a hold: releases were held, the last one published */
	small = ring_new(g, 4096);
	assert_int_equal(isoshm_stack_tx_offer(g->s, 4, small, 4096, g->ext, true), 0);
	{
		uint8_t buf[5000];

		/* the ring was empty: taken; 5000 bytes do not fit 4 KiB */
		fill(buf, wpos, sizeof(buf), 7);
		assert_int_equal(isoshm_app_tx_write(g->a, 4, buf, sizeof(buf)), 4096);
		wpos += 4096;
	}
	assert_int_equal(isoshm_stack_tx_peek(g->s, 4, span), ISOSHM_TX_SWITCHED);
	memset((uint8_t *)isoshm_stack_arena(g->s) + big, POISON, 32768);
	tx_expect(g, 4, small, 4096, 4096, &rpos, 7, 0);
	assert_int_equal(atomic_load(&sk->tx_cons), wpos);
	assert_int_equal(isoshm_stack_stats(g->s)->bad_index, 0);
}

/*
 * A hostile (or buggy) application claims the offer while its ring still
 * holds bytes the stack peeked and has not released: the stack's peek
 * fails with -EPROTO and the socket is broken for good.
 */
static void tx_take_not_empty_breaks(void **state)
{
	struct seg *g = *state;
	struct isostack_shm_sock *sk = &g->socks[5];
	struct isoshm_span span[2];
	uint32_t wpos = 0;
	uint64_t big = ring_new(g, 8192);
	uint64_t bad = isoshm_stack_stats(g->s)->bad_index;

	tx_put(g, 5, 2000, &wpos, 8);
	assert_int_equal(isoshm_stack_tx_peek(g->s, 5, span), 2000);
	assert_int_equal(isoshm_stack_tx_release(g->s, 5, 500), 0);
	assert_int_equal(isoshm_stack_tx_offer(g->s, 5, big, 8192, g->ext, false), 0);
	atomic_store(&sk->tx_gen, atomic_load(&g->dir[5].tx_gen));
	assert_false(isoshm_stack_sock_broken(g->s, 5));
	assert_int_equal(isoshm_stack_tx_peek(g->s, 5, span), -EPROTO);
	assert_true(isoshm_stack_sock_broken(g->s, 5));
	assert_int_equal(isoshm_stack_stats(g->s)->bad_index, bad + 1);
	assert_int_equal(isoshm_stack_stats(g->s)->tx_switches, 0);
	/* later calls fail fast */
	assert_int_equal(isoshm_stack_tx_peek(g->s, 5, span), -EPROTO);
	assert_int_equal(isoshm_stack_tx_release(g->s, 5, 1), -EINVAL);
	assert_int_equal(take_idle(g->s, 5), -EPROTO);
	assert_int_equal(isoshm_stack_rx_move(g->s, 5, ring_new(g, 4096), 4096, g->ext), -EPROTO);
	assert_int_equal(isoshm_stack_rx_write(g->s, 5, "x", 1), -EPROTO);
	/* the other sockets are not disturbed */
	assert_false(isoshm_stack_sock_broken(g->s, 6));
	tx_put(g, 6, 100, &(uint32_t){ 0 }, 9);
	tx_expect(g, 6, first_rings(g, 6).tx_off, RING, 100, &(uint32_t){ 0 }, 9, 0);
}

/* Errors of the move calls: a second offer while one is open, rings
 * outside their extent, not a power of two, misaligned, too large. */
static void move_errors(void **state)
{
	struct seg *g = *state;
	uint64_t end = g->ext_off + UNIT;
	uint64_t r = ring_new(g, 8192);
	struct isoshm_span span[2];

	assert_int_equal(isoshm_stack_tx_offer(g->s, 6, end, 4096, g->ext, false), -EINVAL);
	assert_int_equal(isoshm_stack_tx_offer(g->s, 6, end - 4096, 8192, g->ext, false),
			 -EINVAL);
	assert_int_equal(isoshm_stack_tx_offer(g->s, 6, g->ext_off - 4096, 4096, g->ext, false),
			 -EINVAL);
	assert_int_equal(isoshm_stack_tx_offer(g->s, 6, r, 6000, g->ext, false), -EINVAL);
	assert_int_equal(isoshm_stack_tx_offer(g->s, 6, r + 4096, 8192, g->ext, false), -EINVAL);
	assert_int_equal(isoshm_stack_tx_offer(g->s, 6, r, 2048, g->ext, false), -EINVAL);
	assert_int_equal(isoshm_stack_tx_offer(g->s, 6, g->ext_off, 2 * MAX_RING, g->ext, false),
			 -EINVAL);
	assert_int_equal(isoshm_stack_tx_offer(g->s, 6, r, 8192, g->ext + 1, false), -EINVAL);
	assert_int_equal(isoshm_stack_tx_offer(g->s, 0, r, 8192, g->ext, false), -EBADF);
	assert_int_equal(isoshm_stack_tx_offer(g->s, 99, r, 8192, g->ext, false), -EBADF);
	assert_int_equal(isoshm_stack_stats(g->s)->tx_offers, 0);
	assert_int_equal(isoshm_stack_rx_move(g->s, 6, end, 4096, g->ext), -EINVAL);
	assert_int_equal(isoshm_stack_rx_move(g->s, 6, r + 4096, 8192, g->ext), -EINVAL);
	assert_int_equal(isoshm_stack_rx_move(g->s, 6, r, 8192, g->ext + 1), -EINVAL);
	assert_int_equal(isoshm_stack_rx_move(g->s, 0, r, 8192, g->ext), -EBADF);
	assert_int_equal(isoshm_stack_stats(g->s)->rx_moves, 0);

	assert_int_equal(isoshm_stack_tx_offer(g->s, 6, r, 8192, g->ext, false), 0);
	assert_int_equal(isoshm_stack_tx_offer(g->s, 6, ring_new(g, 4096), 4096, g->ext, true),
			 -EBUSY);
	assert_int_equal(isoshm_stack_tx_offer(g->s, 6, r, 8192, g->ext, false), -EBUSY);
	/* the open offer is untouched by the refused ones */
	assert_int_equal(g->dir[6].tx_off, r);
	assert_int_equal(g->dir[6].tx_bytes, 8192);
	/* taken (by the stack: idle), a new offer is accepted */
	assert_int_equal(take_idle(g->s, 6), 1);
	assert_int_equal(isoshm_stack_tx_peek(g->s, 6, span), 0);
	assert_int_equal(isoshm_stack_tx_offer(g->s, 6, ring_new(g, 4096), 4096, g->ext, false), 0);
	assert_int_equal(isoshm_stack_stats(g->s)->tx_offers, 2);
	assert_int_equal(isoshm_stack_stats(g->s)->bad_arg >= 1, true);
	assert_int_equal(isoshm_stack_stats(g->s)->bad_index, 0);
}

/*
 * Generations: even after open, after every offer, take and move; across
 * a close and reopen of the id they run on (never back), and the
 * application's sock.tx_gen agrees with the directory.  A reopen with an
 * offer still open drops it: the new socket starts with none.
 */
static void generations_even(void **state)
{
	struct seg *g = *state;
	struct isostack_shm_sockdir *dd = &g->dir[7], d;
	struct isostack_shm_sock *sk = &g->socks[7];
	struct isoshm_span span[2];
	uint32_t tg, rg, wpos, rpos;

#define EVEN_AND_AGREED() do { \
		assert_int_equal(atomic_load(&dd->tx_gen) & 1u, 0); \
		assert_int_equal(atomic_load(&dd->rx_gen) & 1u, 0); \
	} while (0)
	EVEN_AND_AGREED();
	tg = atomic_load(&dd->tx_gen);
	rg = atomic_load(&dd->rx_gen);
	assert_true(tg >= 2 && rg >= 2);
	assert_int_equal(atomic_load(&sk->tx_gen), tg);

	assert_int_equal(isoshm_stack_rx_move(g->s, 7, ring_new(g, 8192), 8192, g->ext), 0);
	EVEN_AND_AGREED();
	assert_int_equal(atomic_load(&dd->rx_gen), rg + 2);
	assert_int_equal(isoshm_stack_tx_offer(g->s, 7, ring_new(g, 8192), 8192, g->ext, false), 0);
	EVEN_AND_AGREED();
	assert_int_equal(atomic_load(&dd->tx_gen), tg + 2);
	assert_int_equal(take_idle(g->s, 7), 1);
	EVEN_AND_AGREED();
	assert_int_equal(atomic_load(&dd->tx_gen), tg + 2);
	/* an offer open at the close */
	assert_int_equal(isoshm_stack_tx_offer(g->s, 7, ring_new(g, 4096), 4096, g->ext, false), 0);
	tg = atomic_load(&dd->tx_gen);
	rg = atomic_load(&dd->rx_gen);

	/* reopen the id on new rings (as test_shm.c's sock_reopen) */
	d = place(g->ext, ring_new(g, 8192), 8192, ring_new(g, 16384), 16384);
	assert_int_equal(isoshm_stack_sock_open(g->s, 7, &d), 0);
	EVEN_AND_AGREED();
	assert_true(atomic_load(&dd->tx_gen) - tg >= 2 && atomic_load(&dd->tx_gen) - tg < 8);
	assert_true(atomic_load(&dd->rx_gen) - rg >= 2 && atomic_load(&dd->rx_gen) - rg < 8);
	assert_int_equal(dd->tx_off, d.tx_off);
	assert_int_equal(dd->rx_off, d.rx_off);
	assert_int_equal(take_idle(g->s, 7), 0);    /* no offer carried over */
	assert_int_equal(isoshm_app_sock_open(g->a, 7), 0);
	assert_int_equal(atomic_load(&sk->tx_gen), atomic_load(&dd->tx_gen));
	assert_int_equal(isoshm_app_tx_size(g->a, 7), 8192);
	assert_int_equal(isoshm_app_rx_size(g->a, 7), 16384);
	/* both streams work, and a move after the reopen too */
	wpos = rpos = d.tx_start;
	tx_put(g, 7, 8000, &wpos, 10);
	assert_int_equal(isoshm_stack_tx_peek(g->s, 7, span), 8000); /* no stale switch */
	tx_expect(g, 7, d.tx_off, 8192, 8000, &rpos, 10, 0);
	wpos = rpos = d.rx_start;
	rx_put(g, 7, 16000, &wpos, 11);
	rx_get(g, 7, 16000, 4096, &rpos, 11);
	tg = atomic_load(&dd->tx_gen);
	assert_int_equal(isoshm_stack_tx_offer(g->s, 7, ring_new(g, 4096), 4096, g->ext, false), 0);
	EVEN_AND_AGREED();
	assert_int_equal(atomic_load(&dd->tx_gen), tg + 2);
	wpos = rpos = atomic_load(&sk->tx_prod);
	tx_put(g, 7, 100, &wpos, 12);
	assert_int_equal(atomic_load(&sk->tx_gen), tg + 2);
	assert_int_equal(isoshm_stack_tx_peek(g->s, 7, span), ISOSHM_TX_SWITCHED);
	tx_expect(g, 7, dd->tx_off, 4096, 100, &rpos, 12, 0);
	EVEN_AND_AGREED();
#undef EVEN_AND_AGREED
	assert_int_equal(isoshm_stack_stats(g->s)->bad_index, 0);
}

/* ---- Two threads ------------------------------------------------------- */

struct writer {
	struct seg *g;
	uint32_t sock;
	uint32_t pos;       /* stream position of the write */
	uint32_t n;
	_Atomic int rc;
	_Atomic bool done;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint8_t buf[1000];

	fill(buf, w->pos, w->n, 13);
	atomic_store(&w->rc, isoshm_app_tx_write(w->g->a, w->sock, buf, w->n));
	atomic_store(&w->done, true);
	return NULL;
}

/*
 * The stack took an offer for the idle application, then writes its next
 * offer just as the application starts a write and reads the directory
 * (the daemon shrinks an idle socket's ring, then grows it on traffic).
 * The application's ring is then one the stack left: it must not write
 * there ("take it next time" would lose the bytes), but wait for the
 * offer and take it.
 *
 * The stack's offer is stopped half-way by hand (tx_gen odd in the
 * directory, as isoshm_stack_tx_offer leaves it between its stores) until
 * the writer has started; the writer either waits there, or (the bug)
 * writes its old ring at once.  Either way the offer then completes, and
 * the bytes must be where the stack looks.
 */
static void tx_reoffer_during_write(void **state)
{
	struct seg *g = *state;
	struct isostack_shm_sock *sk = &g->socks[1];
	struct isostack_shm_sockdir d = first_rings(g, 1);
	struct isoshm_span span[2];
	struct writer w = { .g = g, .sock = 1, .n = 1000 };
	uint64_t mid = ring_new(g, 8192), last = ring_new(g, 16384);
	uint32_t gen, rpos, seen_busy = 0;
	pthread_t t;

	w.pos = rpos = atomic_load(&sk->tx_prod);
	assert_int_equal(isoshm_stack_tx_offer(g->s, 1, mid, 8192, g->ext, false), 0);
	assert_int_equal(take_idle(g->s, 1), 1);
	memset((uint8_t *)isoshm_stack_arena(g->s) + d.tx_off, POISON, RING); /* freed */
	gen = atomic_load(&g->dir[1].tx_gen);
	atomic_store(&g->dir[1].tx_gen, gen + 1);      /* the next offer, half written */

	assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
	/* Until the writer is inside its write and has had time to read the
	 * directory, or is done.  The count bounds only how long a correct
	 * writer is given to go wrong; the outcome is checked either way. */
	while (!atomic_load(&w.done) && seen_busy < 2000000)
		if (atomic_load(&sk->tx_busy) != 0)
			seen_busy++;
	assert_int_equal(isoshm_stack_tx_offer(g->s, 1, last, 16384, g->ext, false), 0);
	assert_int_equal(atomic_load(&g->dir[1].tx_gen), gen + 2);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(atomic_load(&w.rc), 1000);

	/* the writer waited for the offer and took it: the stack switches
	 * and finds the bytes in the last ring (a writer that wrote on in the
	 * ring the stack left fails here: sock.tx_gen is still the old one) */
	assert_int_equal(atomic_load(&sk->tx_gen), gen + 2);
	assert_int_equal(isoshm_stack_tx_peek(g->s, 1, span), ISOSHM_TX_SWITCHED);
	tx_expect(g, 1, last, 16384, 1000, &rpos, 13, 0);
	assert_int_equal(isoshm_app_tx_size(g->a, 1), 16384);
	assert_int_equal(isoshm_stack_stats(g->s)->bad_index, 0);
}

struct reader {
	struct seg *g;
	uint32_t sock;
	uint32_t pos;              /* stream position of the next byte */
	uint32_t total;
	_Atomic uint32_t bad;      /* first wrong position + 1, or -errno */
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	uint8_t buf[256];
	uint32_t got = 0;

	while (got < r->total) {
		int k = isoshm_app_rx_read(r->g->a, r->sock, buf, sizeof(buf));

		if (k < 0 || !matches(buf, r->pos + got, (uint32_t)k, 31)) {
			atomic_store(&r->bad, k < 0 ? (uint32_t)k : got + 1);
			return NULL;
		}
		got += (uint32_t)k;
	}
	return NULL;
}

/*
 * The application polls an empty RX ring while the stack moves it and
 * writes a few bytes into the new one, over and over, between two rings
 * of different sizes (the larger one gets more than the smaller one
 * holds).  A reader that found the ring empty, did not follow, and then
 * counted the new bytes against its old ring reads poison, or gets
 * -EPROTO.
 */
static void rx_move_during_read(void **state)
{
	struct seg *g = *state;
	struct isostack_shm_sock *sk = &g->socks[2];
	uint64_t ring[2] = { ring_new(g, 4096), ring_new(g, MAX_RING) };
	uint32_t bytes[2] = { 4096, MAX_RING };
	struct reader r = { .g = g, .sock = 2, .total = 0 };
	uint32_t wpos, moves = 20000;
	uint8_t buf[8192];
	pthread_t t;

	wpos = r.pos = atomic_load(&sk->rx_prod);
	for (uint32_t i = 0; i < moves; i++)
		r.total += i % 2 == 0 ? 1 + i % 97 : 4097 + i % 4000;
	assert_int_equal(pthread_create(&t, NULL, reader_main, &r), 0);
	for (uint32_t i = 0; i < moves && atomic_load(&r.bad) == 0; i++) {
		uint32_t n = i % 2 == 0 ? 1 + i % 97 : 4097 + i % 4000;
		uint32_t old = (i + 1) % 2;

		/* the reader drained the last chunk: the ring is empty */
		while (atomic_load(&sk->rx_cons) != wpos && atomic_load(&r.bad) == 0)
			sched_yield();
		if (atomic_load(&r.bad) != 0)
			break;
		assert_int_equal(isoshm_stack_rx_move(g->s, 2, ring[i % 2], bytes[i % 2], g->ext),
				 0);
		memset((uint8_t *)isoshm_stack_arena(g->s) + ring[old], POISON, bytes[old]);
		fill(buf, wpos, n, 31);
		assert_int_equal(isoshm_stack_rx_write(g->s, 2, buf, n), (int)n);
		wpos += n;
	}
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(atomic_load(&r.bad), 0);
	assert_int_equal(atomic_load(&sk->rx_cons), wpos);
	assert_int_equal(isoshm_stack_stats(g->s)->rx_moves, moves);
}

/*
 * Stress: an application thread writes a TX stream and reads an RX
 * stream while the stack thread consumes and produces them and keeps
 * moving both rings: RX moves whenever it finds the ring empty, TX
 * offers of changing sizes (with and without hold) and takes for the
 * idle application.  Every ring the stack leaves is poisoned at once;
 * both streams are checked byte by byte.
 */
#define STRESS_BYTES (64u << 20)
#define POOL 8                         /* MAX_RING slots in the extent */

struct stress {
	struct seg *g;
	uint32_t sock;
	uint64_t pool_off;
	uint32_t used;                     /* bitmask of pool slots in use */
	uint32_t tx_slot, rx_slot;         /* the rings the stack uses */
	uint32_t offer_slot;               /* the open offer's, or UINT32_MAX */
	uint32_t tx_bytes, offer_bytes;
	uint32_t tx_start, rx_start;       /* stream position 0 */
	_Atomic uint32_t tx_bad, rx_bad;   /* first mismatching position + 1 */
	uint64_t tx_switches, rx_moves, takes, held;
};

/* Decisions of the stack thread: independent bits per round (murmur3's
 * finaliser). */
static uint32_t mix(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x85ebca6bu;
	x ^= x >> 13;
	x *= 0xc2b2ae35u;
	return x ^ (x >> 16);
}

static uint64_t slot_off(const struct stress *st, uint32_t slot)
{
	return st->pool_off + (uint64_t)slot * MAX_RING;
}

static uint32_t pool_get(struct stress *st)
{
	for (uint32_t i = 0; i < POOL; i++)
		if ((st->used & (1u << i)) == 0) {
			st->used |= 1u << i;
			return i;
		}
	fail_msg("ring pool empty");
	return UINT32_MAX;
}

/* A ring the stack left: poisoned at once. */
static void pool_put(struct stress *st, uint32_t slot)
{
	st->used &= ~(1u << slot);
	memset((uint8_t *)isoshm_stack_arena(st->g->s) + slot_off(st, slot), POISON, MAX_RING);
}

static void *stress_app(void *arg)
{
	struct stress *st = arg;
	struct isoshm_app *a = st->g->a;
	uint32_t wpos = 0, rpos = 0, round = 0;
	static uint8_t buf[20000];

	while ((wpos < STRESS_BYTES || rpos < STRESS_BYTES) &&
	       atomic_load(&st->tx_bad) == 0 && atomic_load(&st->rx_bad) == 0) {
		uint32_t n = 1 + (++round * 7919u) % sizeof(buf);
		int k;

		if (wpos < STRESS_BYTES) {
			if (n > STRESS_BYTES - wpos)
				n = STRESS_BYTES - wpos;
			fill(buf, st->tx_start + wpos, n, 21);
			k = isoshm_app_tx_write(a, st->sock, buf, n);
			if (k < 0) {
				atomic_store(&st->tx_bad, wpos + 1);
				break;
			}
			wpos += (uint32_t)k;
		}
		k = isoshm_app_rx_read(a, st->sock, buf, 1 + (round * 104729u) % sizeof(buf));
		if (k < 0 || !matches(buf, st->rx_start + rpos, (uint32_t)k, 22)) {
			atomic_store(&st->rx_bad, rpos + 1);
			break;
		}
		rpos += (uint32_t)k;
		if (k == 0)
			sched_yield();
	}
	return NULL;
}

/* The stack reopens the id on pool rings, before the application thread
 * starts. */
static void stress_open(struct stress *st)
{
	struct seg *g = st->g;
	struct isostack_shm_sockdir d;

	st->tx_slot = pool_get(st);
	st->rx_slot = pool_get(st);
	st->offer_slot = UINT32_MAX;
	st->tx_bytes = 4096;
	d = place(g->ext, slot_off(st, st->tx_slot), 4096, slot_off(st, st->rx_slot), 4096);
	assert_int_equal(isoshm_stack_sock_open(g->s, st->sock, &d), 0);
	assert_int_equal(isoshm_app_sock_open(g->a, st->sock), 0);
	st->tx_start = d.tx_start;
	st->rx_start = d.rx_start;
}

/* The stack's view left its TX ring for the offered one. */
static void stress_tx_moved(struct stress *st)
{
	pool_put(st, st->tx_slot);
	st->tx_slot = st->offer_slot;
	st->tx_bytes = st->offer_bytes;
	st->offer_slot = UINT32_MAX;
}

/* TX: peek, check every byte and span, release all or part. */
static void stress_tx(struct stress *st, uint32_t r, uint32_t *tpos)
{
	struct seg *g = st->g;
	struct isoshm_span span[2];
	uint32_t at = st->tx_start + *tpos, rel;
	int k, rc;

	k = isoshm_stack_tx_peek(g->s, st->sock, span);
	if (k == ISOSHM_TX_SWITCHED) {
		stress_tx_moved(st);
		st->tx_switches++;
		k = isoshm_stack_tx_peek(g->s, st->sock, span);
	}
	assert_true(k >= 0);
	if (k == 0)
		return;
	for (int i = 0; i < 2; i++) {
		uint64_t lo = slot_off(st, st->tx_slot);

		if (span[i].len == 0)
			continue;
		if (span[i].off < lo || span[i].off + span[i].len > lo + st->tx_bytes ||
		    !matches(span[i].addr, at, span[i].len, 21)) {
			atomic_store(&st->tx_bad, *tpos + 1);
			return;
		}
		at += span[i].len;
	}
	rel = (r >> 8) % 2 == 0 ? (uint32_t)k / 2 + 1 : (uint32_t)k;
	if (rel > (uint32_t)k)
		rel = (uint32_t)k;
	rc = isoshm_stack_tx_release(g->s, st->sock, rel);
	assert_true(rc == 0 || rc == 1);
	st->held += rc == 1;
	*tpos += rel;
}

/* TX moves: another size offered now and then (hold when larger); a take
 * for an idle application now and then. */
static void stress_tx_move(struct stress *st, uint32_t r)
{
	struct seg *g = st->g;
	int k;

	if (st->offer_slot == UINT32_MAX && (r >> 4) % 16 == 0) {
		uint32_t want = 4096u << ((r >> 12) % 5);

		if (want == st->tx_bytes)
			return;
		st->offer_slot = pool_get(st);
		st->offer_bytes = want;
		assert_int_equal(isoshm_stack_tx_offer(g->s, st->sock, slot_off(st, st->offer_slot),
						       want, g->ext, want > st->tx_bytes), 0);
	}
	if (st->offer_slot != UINT32_MAX && (r >> 20) % 4 == 0) {
		k = take_idle(g->s, st->sock);
		assert_true(k == 0 || k == 1);
		if (k == 1) {
			stress_tx_moved(st);
			st->takes++;
		}
	}
}

/* RX: a move now and then (refused while bytes are unread), then bytes. */
static void stress_rx(struct stress *st, uint32_t r, uint32_t *wpos)
{
	struct seg *g = st->g;
	static uint8_t buf[16384];
	uint32_t n;
	int k;

	if ((r >> 16) % 8 == 0) {
		uint32_t slot = pool_get(st);

		k = isoshm_stack_rx_move(g->s, st->sock, slot_off(st, slot),
					 4096u << ((r >> 24) % 5), g->ext);
		assert_true(k == 0 || k == -EBUSY);
		if (k == 0) {
			pool_put(st, st->rx_slot);
			st->rx_slot = slot;
			st->rx_moves++;
		} else {
			pool_put(st, slot);
		}
	}
	if (*wpos == STRESS_BYTES)
		return;
	n = 1 + (r >> 3) % sizeof(buf);
	if (n > STRESS_BYTES - *wpos)
		n = STRESS_BYTES - *wpos;
	fill(buf, st->rx_start + *wpos, n, 22);
	k = isoshm_stack_rx_write(g->s, st->sock, buf, n);
	assert_true(k >= 0);
	*wpos += (uint32_t)k;
}

static void stress_moves(void **state)
{
	struct seg *g = *state;
	struct stress st = { .g = g, .sock = 1 };
	uint64_t base = (g->next_off + MAX_RING - 1) & ~((uint64_t)MAX_RING - 1);
	uint32_t tpos = 0, wpos = 0, round = 0;
	pthread_t t;

	assert_true(base + POOL * MAX_RING <= g->ext_off + UNIT);
	st.pool_off = base;
	g->next_off = base + POOL * MAX_RING;
	memset((uint8_t *)isoshm_stack_arena(g->s) + base, POISON, POOL * MAX_RING);
	stress_open(&st);
	assert_int_equal(pthread_create(&t, NULL, stress_app, &st), 0);
	while ((tpos < STRESS_BYTES || wpos < STRESS_BYTES) &&
	       atomic_load(&st.tx_bad) == 0 && atomic_load(&st.rx_bad) == 0) {
		uint32_t r = mix(++round), before = tpos + wpos;

		stress_tx(&st, r, &tpos);
		stress_tx_move(&st, r);
		stress_rx(&st, r, &wpos);
		if (tpos + wpos == before)
			sched_yield();
	}
	assert_int_equal(pthread_join(t, NULL), 0);
	print_message("stress: %llu TX switches, %llu takes, %llu held releases, "
		      "%llu RX moves\n",
		      (unsigned long long)st.tx_switches, (unsigned long long)st.takes,
		      (unsigned long long)st.held, (unsigned long long)st.rx_moves);
	assert_int_equal(atomic_load(&st.tx_bad), 0);
	assert_int_equal(atomic_load(&st.rx_bad), 0);
	assert_int_equal(tpos, STRESS_BYTES);
	assert_true(st.tx_switches > 10 && st.takes > 10 && st.held > 0);
	assert_true(st.rx_moves > 10);
	assert_int_equal(isoshm_stack_stats(g->s)->bad_index, 0);
}

/* ---- None: an idle socket's rings of 0 bytes ------------------------------ */

/*
 * RX moves to none (idle) and back when bytes arrive: none holds nothing
 * and takes nothing, the directory says 0 bytes, the application (which
 * never sees bytes in none) binds the ring that follows and reads every
 * byte intact.  While bytes are unread the ring cannot go.
 */
static void rx_none_and_back(void **state)
{
	struct seg *g = *state;
	uint32_t wpos = 0, rpos = 0;
	uint64_t back;

	for (int i = 0; i < 3; i++) {
		rx_put(g, 1, 3000, &wpos, 11);
		rx_get(g, 1, 3000, 1000, &rpos, 11);
	}
	rx_put(g, 1, 10, &wpos, 11);
	assert_int_equal(isoshm_stack_rx_move(g->s, 1, 0, 0, 0), -EBUSY);
	rx_get(g, 1, 10, 10, &rpos, 11);
	/* off and ext of none are ignored: written as 0 */
	assert_int_equal(isoshm_stack_rx_move(g->s, 1, 12345, 0, 77), 0);
	memset((uint8_t *)isoshm_stack_arena(g->s) + first_rings(g, 1).rx_off, POISON, RING);
	assert_int_equal(g->dir[1].rx_bytes, 0);
	assert_int_equal(g->dir[1].rx_off, 0);
	assert_int_equal(g->dir[1].rx_start, wpos);
	assert_int_equal(isoshm_stack_rx_space(g->s, 1), 0);
	assert_int_equal(isoshm_stack_rx_write(g->s, 1, "abc", 3), 0);
	assert_int_equal(isoshm_app_rx_avail(g->a, 1), 0);
	assert_int_equal(isoshm_app_rx_read(g->a, 1, &(uint8_t){ 0 }, 1), 0);
	/* none to none: nothing to do, but legal */
	assert_int_equal(isoshm_stack_rx_move(g->s, 1, 0, 0, 0), 0);
	/* bytes arrive: a ring right before they are written */
	back = ring_new(g, 16384);
	assert_int_equal(isoshm_stack_rx_move(g->s, 1, back, 16384, g->ext), 0);
	assert_int_equal(isoshm_stack_rx_space(g->s, 1), 16384);
	rx_put(g, 1, 12000, &wpos, 11);
	assert_int_equal(isoshm_app_rx_avail(g->a, 1), 12000);
	assert_int_equal(isoshm_app_rx_size(g->a, 1), 16384);
	rx_get(g, 1, 12000, 4096, &rpos, 11);
	for (int i = 0; i < 3; i++) {
		rx_put(g, 1, 9000, &wpos, 11);
		rx_get(g, 1, 9000, 3000, &rpos, 11);
	}
	assert_int_equal(rpos, wpos);
	assert_int_equal(isoshm_stack_stats(g->s)->rx_moves, 3);
	assert_int_equal(isoshm_stack_stats(g->s)->bad_index, 0);
}

/*
 * TX none: offered (bytes 0) and taken, by the stack for an idle
 * application or by the application at its write.  A write on none takes
 * no byte; the application asks (a SEND with nothing new), the stack
 * offers a ring, the application sees the offer, takes it at its next
 * write, and the stack follows: every byte intact.
 */
static void tx_none_ask(void **state)
{
	struct seg *g = *state;
	struct isostack_shm_sock *sk = &g->socks[2];
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_SEND, .sock = 2 }, got;
	struct isoshm_span span[2];
	uint32_t wpos = 0, rpos = 0, gen;
	uint64_t r1, r2;

	tx_put(g, 2, 3000, &wpos, 12);
	tx_expect(g, 2, first_rings(g, 2).tx_off, RING, 3000, &rpos, 12, 0);
	/* idle: the stack offers none and takes it for the application */
	assert_int_equal(isoshm_stack_tx_offer(g->s, 2, 999, 0, 5, false), 0);
	assert_int_equal(g->dir[2].tx_bytes, 0);
	assert_int_equal(take_idle(g->s, 2), 1);
	memset((uint8_t *)isoshm_stack_arena(g->s) + first_rings(g, 2).tx_off, POISON, RING);
	assert_int_equal(isoshm_stack_tx_peek(g->s, 2, span), 0);
	assert_int_equal(span[0].len + span[1].len, 0);
	/* the application's write finds none: nothing taken */
	gen = atomic_load(&g->dir[2].tx_gen);
	assert_true(isoshm_app_tx_offered(g->a, 2));
	assert_int_equal(isoshm_app_tx_write(g->a, 2, "xyz", 3), 0);
	assert_int_equal(isoshm_app_tx_size(g->a, 2), 0);
	assert_int_equal(atomic_load(&sk->tx_gen), gen);
	assert_false(isoshm_app_tx_offered(g->a, 2));
	assert_int_equal(atomic_load(&sk->tx_prod), wpos);
	/* it asks: a SEND the stack reads like any other */
	assert_int_equal(isoshm_app_submit_db(g->a, 2, 0, &c, 1), 1);
	assert_int_equal(isoshm_stack_recv_cmds(g->s, 2, &got, 1), 1);
	assert_int_equal(got.opcode, ISOSTACK_SHM_OP_SEND);
	assert_int_equal(isoshm_stack_tx_peek(g->s, 2, span), 0);
	/* the stack offers a ring: the application takes it and writes */
	r1 = ring_new(g, 8192);
	assert_int_equal(isoshm_stack_tx_offer(g->s, 2, r1, 8192, g->ext, false), 0);
	assert_true(isoshm_app_tx_offered(g->a, 2));
	tx_put(g, 2, 6000, &wpos, 12);
	assert_int_equal(isoshm_app_tx_size(g->a, 2), 8192);
	assert_int_equal(isoshm_stack_tx_peek(g->s, 2, span), ISOSHM_TX_SWITCHED);
	tx_expect(g, 2, r1, 8192, 6000, &rpos, 12, 0);
	for (int i = 0; i < 3; i++) {
		tx_put(g, 2, 7000, &wpos, 12);
		tx_expect(g, 2, r1, 8192, 7000, &rpos, 12, 0);
	}

	/* none again, taken by the application itself at its write */
	assert_int_equal(isoshm_stack_tx_offer(g->s, 2, 0, 0, 0, false), 0);
	assert_int_equal(isoshm_app_tx_write(g->a, 2, "xyz", 3), 0);
	assert_int_equal(isoshm_stack_tx_peek(g->s, 2, span), ISOSHM_TX_SWITCHED);
	assert_int_equal(isoshm_stack_tx_peek(g->s, 2, span), 0);
	memset((uint8_t *)isoshm_stack_arena(g->s) + r1, POISON, 8192);
	r2 = ring_new(g, 4096);
	assert_int_equal(isoshm_stack_tx_offer(g->s, 2, r2, 4096, g->ext, false), 0);
	tx_put(g, 2, 4000, &wpos, 12);
	assert_int_equal(isoshm_stack_tx_peek(g->s, 2, span), ISOSHM_TX_SWITCHED);
	tx_expect(g, 2, r2, 4096, 4000, &rpos, 12, 0);
	assert_int_equal(atomic_load(&sk->tx_cons), wpos);
	assert_int_equal(isoshm_stack_stats(g->s)->bad_index, 0);
}

/*
 * A hostile application writes into a TX ring of none (moves tx_prod on)
 * and reads from an RX ring of none (moves rx_cons on): the stack's next
 * look fails with -EPROTO and only that socket breaks.
 */
static void none_hostile(void **state)
{
	struct seg *g = *state;
	struct isostack_shm_sock *sk = &g->socks[3];
	struct isoshm_span span[2];
	uint64_t bad = isoshm_stack_stats(g->s)->bad_index;

	assert_int_equal(isoshm_stack_tx_offer(g->s, 3, 0, 0, 0, false), 0);
	assert_int_equal(take_idle(g->s, 3), 1);
	atomic_fetch_add(&sk->tx_prod, 100);
	assert_int_equal(isoshm_stack_tx_peek(g->s, 3, span), -EPROTO);
	assert_true(isoshm_stack_sock_broken(g->s, 3));
	assert_int_equal(isoshm_stack_stats(g->s)->bad_index, bad + 1);

	assert_int_equal(isoshm_stack_rx_move(g->s, 4, 0, 0, 0), 0);
	atomic_fetch_add(&g->socks[4].rx_cons, 1);
	assert_int_equal(isoshm_stack_rx_space(g->s, 4), -EPROTO);
	assert_true(isoshm_stack_sock_broken(g->s, 4));
	assert_int_equal(isoshm_stack_stats(g->s)->bad_index, bad + 2);
	/* the others are not disturbed */
	assert_false(isoshm_stack_sock_broken(g->s, 5));
	tx_put(g, 5, 100, &(uint32_t){ 0 }, 13);
	tx_expect(g, 5, first_rings(g, 5).tx_off, RING, 100, &(uint32_t){ 0 }, 13, 0);
	rx_put(g, 5, 100, &(uint32_t){ 0 }, 13);
	rx_get(g, 5, 100, 100, &(uint32_t){ 0 }, 13);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(rx_move_empty, seg_setup, seg_teardown),
		cmocka_unit_test_setup_teardown(rx_move_new_extent, seg_setup, seg_teardown),
		cmocka_unit_test_setup_teardown(rx_move_before_open, seg_setup, seg_teardown),
		cmocka_unit_test_setup_teardown(tx_offer_taken_by_app, seg_setup, seg_teardown),
		cmocka_unit_test_setup_teardown(tx_offer_ring_busy, seg_setup, seg_teardown),
		cmocka_unit_test_setup_teardown(tx_take_idle, seg_setup, seg_teardown),
		cmocka_unit_test_setup_teardown(tx_take_not_empty_breaks, seg_setup, seg_teardown),
		cmocka_unit_test_setup_teardown(move_errors, seg_setup, seg_teardown),
		cmocka_unit_test_setup_teardown(generations_even, seg_setup, seg_teardown),
		cmocka_unit_test_setup_teardown(tx_reoffer_during_write, seg_setup, seg_teardown),
		cmocka_unit_test_setup_teardown(rx_move_during_read, seg_setup, seg_teardown),
		cmocka_unit_test_setup_teardown(stress_moves, seg_setup, seg_teardown),
		cmocka_unit_test_setup_teardown(rx_none_and_back, seg_setup, seg_teardown),
		cmocka_unit_test_setup_teardown(tx_none_ask, seg_setup, seg_teardown),
		cmocka_unit_test_setup_teardown(none_hostile, seg_setup, seg_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
