/*
 * Ring memory: where sockets' TX and RX rings live (docs/shm.md, "Memory
 * on demand").
 *
 * Each application's rings come from extents of its arena (shm/extent.c).
 * A ring is a power-of-two chunk, aligned to its size.  Rings up to one
 * extent unit (2 MiB) come from unit extents, each dedicated to one chunk
 * size while it holds any chunk (a slab: a bitmap of free chunks); a
 * larger ring gets an extent of its own.  An extent whose chunks are all
 * free goes back to the application's spare list, and beyond
 * ISOD_MEM_SPARE spares its pages go back to the system (punched).
 * One spare is made ahead of need; extents that empty are kept as more
 * spares until none has emptied for ISOD_MEM_SPARE_KEEP_MS (or at once
 * under memory pressure), then go back one per pass.  Connections that
 * go idle (their rings go to none, sock_ring.c) and wake again take
 * their rings from the extents they left, instead of the stack core
 * refilling extents, one per pass, while they wait: 350 us for one
 * connection's next request (fallocate of a 2 MiB page and its
 * prefault), and with 100,000 idle connections woken at once,
 * non-blocking sends that waited too long for a ring (EAGAIN).
 *
 * The budget is the whole stack's: the bytes of backed extents of every
 * application together may not pass conf.mem_budget (a new socket then
 * gets ENOBUFS, counted in mem.enobufs).  Making or refilling an extent
 * costs the stack core a memfd, fallocate and a prefault, so
 * isod_mem_poll keeps one spare ready per application with a socket open,
 * made at most one per pass (and gives it back once none is open); an
 * allocation that finds none makes one itself if none was made this pass
 * (counted in mem.sync_extents; a TCP socket opens with no ring that way
 * otherwise, mem.opened_none, and gets it as an idle one does).  Only a
 * UDP socket's fixed rings may make a second extent in a pass (force).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define UNIT ISOSTACK_SHM_EXTENT_UNIT

/* log2 of a power of two */
static unsigned ilog2(uint64_t v)
{
	return 63u - (unsigned)__builtin_clzll(v);
}

static struct isod_ext *ext_rec(struct isod_mem *m, uint32_t id)
{
	if (id >= m->cap) {
		uint32_t cap = m->cap ? m->cap : 64;
		struct isod_ext *n;

		while (cap <= id)
			cap *= 2;
		n = realloc(m->ext, cap * sizeof(*n));
		if (n == NULL)
			return NULL;
		memset(n + m->cap, 0, (cap - m->cap) * sizeof(*n));
		m->ext = n;
		m->cap = cap;
	}
	return &m->ext[id];
}

static bool budget_allows(struct isod_app *app, uint64_t size)
{
	struct isod_backend *be = app->be;

	/* Idle sockets' RX reservations count: their window is a promise. */
	return be->conf.mem_budget == 0 ||
	       be->mem_backed + be->mem_reserved + size <= be->conf.mem_budget;
}

static void account(struct isod_app *app, int64_t delta)
{
	app->be->mem_backed = (uint64_t)((int64_t)app->be->mem_backed + delta);
	app->mem.backed = (uint64_t)((int64_t)app->mem.backed + delta);
}

/*
 * A backed extent of `size` bytes with no chunks: a spare (unit size), a
 * released one refilled, or a new one.  Returns its id or -ENOBUFS
 * (budget), -ENOMEM (no memory, arena full), -EAGAIN (one was made this
 * pass already, and not force).
 */
static int64_t ext_get(struct isod_app *app, uint64_t size, bool force)
{
	struct isod_mem *m = &app->mem;
	uint32_t id;
	int rc;

	if (size == UNIT && m->nspare > 0)
		return m->spare[--m->nspare];
	if (app->be->ext_made && !force)
		return -EAGAIN;
	if (!budget_allows(app, size)) {
		app->be->mem_st.enobufs++;
		return -ENOBUFS;
	}
	/* A released extent of the right size is cheaper than a new one
	 * (its arena range and fd exist). */
	for (uint32_t i = 0; i < m->nreleased; i++) {
		struct isod_ext *e = &m->ext[m->released[i]];

		if (e->size != size)
			continue;
		id = m->released[i];
		if (isoshm_stack_extent_refill(app->shm, id) < 0)
			break;
		m->released[i] = m->released[--m->nreleased];
		e->backed = true;
		account(app, (int64_t)size);
		app->be->mem_st.refills++;
		app->be->ext_made = true;
		return id;
	}
	rc = isoshm_stack_extent_new(app->shm, size, &id);
	if (rc < 0)
		return rc == -ENOSPC ? -ENOMEM : rc;
	app->be->ext_made = true;
	{
		struct isod_ext *e = ext_rec(m, id);
		uint64_t off;
		int fd;

		if (e == NULL)
			return -ENOMEM;
		memset(e, 0, sizeof(*e));
		e->size = size;
		e->backed = true;
		e->hugetlb = isoshm_stack_extent_get(app->shm, id, &fd, &off, &e->size) == 1;
		e->off = off;
	}
	account(app, (int64_t)size);
	app->be->mem_st.extents++;
	if (app->be->conf.ext_attach != NULL)   /* zero-copy TX: DMA map, IOVAs */
		app->be->conf.ext_attach(app->be->conf.seg_arg, app->shm, m->ext[id].off, size,
					 m->ext[id].hugetlb);
	return id;
}

/* Gives the pages of an empty extent back to the system (punched).
 * False if it stays backed. */
static bool ext_release(struct isod_app *app, uint32_t id)
{
	struct isod_mem *m = &app->mem;
	struct isod_ext *e = &m->ext[id];

	if (m->nreleased == ISOD_MEM_RELEASED_MAX ||
	    isoshm_stack_extent_release(app->shm, id) < 0)
		return false;
	e->backed = false;
	account(app, -(int64_t)e->size);
	m->released[m->nreleased++] = id;
	app->be->mem_st.releases++;
	return true;
}

/* An extent that holds nothing any more: a spare, or released. */
static void ext_put(struct isod_app *app, uint32_t id)
{
	struct isod_mem *m = &app->mem;
	struct isod_ext *e = &m->ext[id];

	e->cls = 0;
	if (e->size == UNIT && m->nspare < ISOD_MEM_SPARE) {
		m->spare[m->nspare++] = id;
		m->spare_kept_ms = isod_backend_now(app->be);
		return;
	}
	ext_release(app, id);   /* if not: stays backed and leaks into nothing */
}

/* A ring of `bytes`; wait: may make a unit extent on the spot if none
 * was made this pass, force: even then (else -EAGAIN when that would be
 * needed).  Rings above a unit always need an extent of their own. */
static int ring_get(struct isod_app *app, uint32_t bytes, struct isod_ring *out, bool wait,
		    bool force)
{
	struct isod_mem *m = &app->mem;
	unsigned cls = ilog2(bytes);
	struct isod_ext *e;
	int64_t id;

	if (bytes < 4096 || (bytes & (bytes - 1)) != 0)
		return -EINVAL;
	if (bytes > UNIT) {     /* its own extent (rings of tx_ring/rx_ring > 2m) */
		id = ext_get(app, bytes, force);
		if (id < 0)
			return (int)id;
		e = &m->ext[id];
		e->cls = (uint8_t)cls;
		e->used = 1;
		*out = (struct isod_ring){ .ext = (uint32_t)id, .off = e->off, .bytes = bytes };
		return 0;
	}
	/* A slab of this size with a free chunk, else a fresh one. */
	while (m->partial[cls] != UINT32_MAX) {
		e = &m->ext[m->partial[cls]];
		if (e->used < (uint32_t)(UNIT / bytes))
			break;
		m->partial[cls] = e->next_partial;      /* full: off the list */
		e->on_partial = false;
	}
	if (m->partial[cls] == UINT32_MAX) {
		if (m->nspare == 0 && !wait)
			return -EAGAIN;
		id = ext_get(app, UNIT, force);
		if (id < 0)
			return (int)id;
		if (m->nspare == 0)      /* made or refilled here, not ahead */
			app->be->mem_st.sync_extents++;
		e = &m->ext[id];
		memset(e->freemap, 0xff, sizeof(e->freemap));
		e->cls = (uint8_t)cls;
		e->used = 0;
		e->next_partial = m->partial[cls];
		e->on_partial = true;
		m->partial[cls] = (uint32_t)id;
	}
	id = m->partial[cls];
	e = &m->ext[id];
	for (unsigned w = 0; w < 8; w++) {
		uint64_t bits = e->freemap[w];
		unsigned n = (unsigned)(UNIT / bytes);

		if (w * 64 >= n)
			break;
		if (n < (w + 1) * 64)       /* chunks past n do not exist */
			bits &= (UINT64_C(1) << (n - w * 64)) - 1;
		if (bits == 0)
			continue;
		unsigned b = (unsigned)__builtin_ctzll(bits);

		e->freemap[w] &= ~(UINT64_C(1) << b);
		e->used++;
		*out = (struct isod_ring){ .ext = (uint32_t)id,
					   .off = e->off + (uint64_t)(w * 64 + b) * bytes,
					   .bytes = bytes };
		return 0;
	}
	return -EIO;   /* a partial slab without a free chunk: a bug */
}

bool isod_mem_pressure(const struct isod_backend *be)
{
	return be->conf.mem_budget != 0 && be->mem_backed > be->conf.mem_budget / 2;
}

int isod_mem_ring_get(struct isod_app *app, uint32_t bytes, struct isod_ring *out, bool force)
{
	return ring_get(app, bytes, out, true, force);
}

int isod_mem_ring_try(struct isod_app *app, uint32_t bytes, struct isod_ring *out)
{
	return ring_get(app, bytes, out, false, false);
}

void isod_mem_ring_put(struct isod_app *app, const struct isod_ring *r)
{
	struct isod_mem *m = &app->mem;
	struct isod_ext *e;
	unsigned idx;

	if (r->bytes == 0 || r->ext >= m->cap)
		return;
	e = &m->ext[r->ext];
	if (r->bytes > UNIT) {
		e->used = 0;
		ext_put(app, r->ext);
		return;
	}
	idx = (unsigned)((r->off - e->off) / r->bytes);
	e->freemap[idx / 64] |= UINT64_C(1) << (idx % 64);
	e->used--;
	if (e->used == 0) {
		/* unlink from the partial list, then hand the extent back */
		unsigned cls = e->cls;

		for (uint32_t *pp = &m->partial[cls]; *pp != UINT32_MAX;
		     pp = &m->ext[*pp].next_partial) {
			if (*pp == r->ext) {
				*pp = e->next_partial;
				break;
			}
		}
		e->on_partial = false;
		ext_put(app, r->ext);
		return;
	}
	if (!e->on_partial) {
		e->next_partial = m->partial[e->cls];
		e->on_partial = true;
		m->partial[e->cls] = r->ext;
	}
}

void isod_mem_pass_end(struct isod_backend *be)
{
	be->ext_made = false;
}

void isod_mem_init(struct isod_app *app)
{
	struct isod_mem *m = &app->mem;

	memset(m, 0, sizeof(*m));
	for (unsigned c = 0; c < ISOD_MEM_CLASSES; c++)
		m->partial[c] = UINT32_MAX;
}

void isod_mem_fini(struct isod_app *app)
{
	/* The extents die with the segment; give the budget back. */
	account(app, -(int64_t)app->mem.backed);
	free(app->mem.ext);
	app->mem.ext = NULL;
}

unsigned isod_mem_poll(struct isod_app *app)
{
	struct isod_mem *m = &app->mem;
	int64_t id;

	if (app->dead)
		return 0;
	if (app->nopen == 0) {
		/* No socket open: the application keeps no memory at all. */
		if (m->nspare == 0)
			return 0;
		id = m->spare[--m->nspare];
		if (!ext_release(app, (uint32_t)id)) {
			m->spare[m->nspare++] = (uint32_t)id;
			return 0;
		}
		return 1;
	}
	if (m->nspare > ISOD_MEM_SPARE_AHEAD &&
	    (isod_mem_pressure(app->be) ||
	     (uint32_t)(isod_backend_now(app->be) - m->spare_kept_ms) >= ISOD_MEM_SPARE_KEEP_MS)) {
		/* kept spares nobody wanted: back to the system */
		id = m->spare[--m->nspare];
		if (!ext_release(app, (uint32_t)id))
			m->spare[m->nspare++] = (uint32_t)id;
		return 1;
	}
	if (m->nspare >= ISOD_MEM_SPARE_AHEAD)
		return 0;
	id = ext_get(app, UNIT, false);
	if (id < 0)
		return 0;
	m->spare[m->nspare++] = (uint32_t)id;
	return 1;
}
