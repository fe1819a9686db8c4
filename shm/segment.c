/*
 * Segments: the layout both sides compute from the daemon's parameters,
 * creation by the daemon (memfd, hugepages or a logged fallback, NUMA
 * binding, prefault, header, size seals) and attach by the application
 * (header validation against that same layout computation, so an offset
 * in the header can never point outside the file or overlap another area).
 */
#include <errno.h>
#include <fcntl.h>
#include <numa.h>
#include <numaif.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/memfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define ISOSHM_MAX_SEGMENT  (UINT64_C(64) << 30)
#define ISOSHM_MAX_ARENA    (UINT64_C(1) << 40)

/* ---- Logging ---------------------------------------------------------- */

static void isoshm_log_stderr(int level, const char *msg)
{
	(void)level;
	fprintf(stderr, "isoshm: %s\n", msg);
}

static isoshm_log_fn isoshm_logger = isoshm_log_stderr;

void isoshm_set_log(isoshm_log_fn fn)
{
	isoshm_logger = fn ? fn : isoshm_log_stderr;
}

void isoshm__log(int level, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	isoshm_logger(level, buf);
}

/* ---- Layout ------------------------------------------------------------- */

static bool is_pow2(uint64_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

void isoshm_params_default(struct isoshm_params *p)
{
	long ncpu = sysconf(_SC_NPROCESSORS_CONF);

	memset(p, 0, sizeof(*p));
	p->max_sockets = 65536;
	p->nr_doorbells = ncpu > 0 && ncpu <= 1024 ? (uint32_t)ncpu : 1;
	/* Per socket id: 256 B of commands and 512 B of statuses, part of
	 * every idle connection's memory.  A socket has few commands in
	 * flight (SEND and RECV are posted only when the last one was read;
	 * calls wait for their reply), and events coalesce (one pending bit
	 * per kind).  A full command ring makes the application wait for the
	 * stack (it drains without it); a full status ring makes the stack
	 * keep replies and events back (pend[], ev_pending in
	 * daemon/backend/sock.c), never drop them.  The Basic variant, a SEND
	 * per send(), gets deeper command rings (daemon/backend/backend.c). */
	p->cmd_entries = 4;
	p->status_entries = 8;
	p->max_ring_bytes = 256u << 10;
	p->arena_size = UINT64_C(16) << 30;
	p->numa_node = -1;
	p->hugetlb = true;
}

int isoshm_layout(const struct isoshm_params *p, uint32_t page_size,
		  struct isostack_shm_header *h)
{
	uint64_t off, db_entries;

	if (p->max_sockets < 2 || p->max_sockets > ISOSHM_MAX_SOCKETS ||
	    p->nr_doorbells < 1 || p->nr_doorbells > 1024 ||
	    !is_pow2(p->cmd_entries) || p->cmd_entries < 2 || p->cmd_entries > 65536 ||
	    !is_pow2(p->status_entries) || p->status_entries < 2 || p->status_entries > 65536 ||
	    !is_pow2(p->max_ring_bytes) || p->max_ring_bytes < 4096 ||
	    p->max_ring_bytes > (1u << 30) ||
	    p->arena_size < ISOSTACK_SHM_EXTENT_UNIT || p->arena_size > ISOSHM_MAX_ARENA ||
	    p->arena_size % ISOSTACK_SHM_EXTENT_UNIT != 0 ||
	    !is_pow2(page_size) || page_size < 4096 || page_size > (1u << 30) ||
	    p->variant > ISOSTACK_SHM_VARIANT_MAX)
		return -EINVAL;

	/* A socket is pending on at most one doorbell at a time (repeat
	 * suppression), so max_sockets entries per doorbell never overflow;
	 * 16 entries minimum keeps each doorbell's slots on whole lines. */
	db_entries = 16;
	while (db_entries < p->max_sockets)
		db_entries <<= 1;

	memset(h, 0, sizeof(*h));
	h->magic = ISOSTACK_SHM_MAGIC;
	h->abi_version = ISOSTACK_SHM_ABI_VERSION;
	h->header_size = sizeof(*h);
	h->features = ISOSTACK_SHM_FEATURES;
	if (isoshm_variant_per_thread(p->variant))
		h->features |= ISOSTACK_SHM_FEAT_THREAD_DOORBELLS;
	h->variant = p->variant;
	h->max_sockets = p->max_sockets;
	h->nr_doorbells = p->nr_doorbells;
	h->cmd_entries = p->cmd_entries;
	h->status_entries = p->status_entries;
	h->doorbell_entries = (uint32_t)db_entries;
	h->max_ring_bytes = p->max_ring_bytes;
	h->arena_size = p->arena_size;
	h->page_size = page_size;
	h->numa_node = -1;
	h->app_id = p->app_id;

	off = sizeof(*h);
	h->wait_off = off;
	off += sizeof(struct isostack_shm_wait);
	h->db_ctl_off = off;
	off += (uint64_t)p->nr_doorbells * sizeof(struct isostack_shm_doorbell);
	h->db_slots_off = off;
	off += (uint64_t)p->nr_doorbells * db_entries * sizeof(uint32_t);
	h->note_entries = ISOSHM_NOTE_ENTRIES;
	h->notes_off = off;
	off += (uint64_t)h->note_entries * sizeof(uint32_t);
	h->dir_off = off;
	off += (uint64_t)p->max_sockets * sizeof(struct isostack_shm_sockdir);
	h->socks_off = off;
	off += (uint64_t)p->max_sockets * sizeof(struct isostack_shm_sock);
	h->cmd_off = off;
	off += (uint64_t)p->max_sockets * p->cmd_entries * sizeof(struct isostack_shm_cmd);
	h->status_off = off;
	off += (uint64_t)p->max_sockets * p->status_entries * sizeof(struct isostack_shm_status);
	/* Added last, so the older areas keep their offsets. */
	h->members_off = off;
	off += (uint64_t)ISOSTACK_SHM_MEMBERS * sizeof(struct isostack_shm_member);
	h->holders_off = off;
	off += (uint64_t)p->max_sockets * sizeof(struct isostack_shm_holders);
	h->segment_size = align_up(off, page_size);
	if (h->segment_size > ISOSHM_MAX_SEGMENT)
		return -EOVERFLOW;
	return 0;
}

/* Bytes of the base segment that serve every socket: header, wait point,
 * doorbells, notification ring (prefaulted at create; the per-id part
 * stays sparse). */
static uint64_t fixed_part(const struct isostack_shm_header *h)
{
	return align_up(h->dir_off, h->page_size);
}

/* ---- Where the application maps (exec adoption) --------------------------- */

/*
 * An exec'd image maps the attachment again at the very addresses the
 * process had (isoshm_app_adopt), before ld.so and the image's own
 * allocations are done placing theirs.  Left to mmap(NULL), our mappings
 * (the 16 GiB arena above all) sat in the area where the kernel randomises
 * the new image's libraries and heap, and an exec now and then failed to
 * adopt its sockets ("File exists").  So the application side maps at
 * addresses of its own choosing, from 32 TiB up.  x86-64 Linux puts
 * libraries and anonymous mappings under the mmap base (within ~1 TiB
 * below 128 TiB), PIE images and their heap near 85 TiB (2/3 of the
 * address space, plus up to ~1 TiB at random), non-PIE images at 4 MiB:
 * nothing lands at 32 TiB unless asked.
 */
#define PLACE_BASE  (UINT64_C(0x2000) << 32)    /* 32 TiB */
#define PLACE_ALIGN (UINT64_C(1) << 30)

static _Atomic uint64_t place_next = PLACE_BASE;

void *isoshm_app_place(uint64_t size)
{
	uint64_t len = align_up(size, PLACE_ALIGN);

	return (void *)(uintptr_t)atomic_fetch_add_explicit(&place_next, len,
							    memory_order_relaxed);
}

/* mmap at a placed address, else anywhere (a clash or an old kernel). */
static void *map_placed(uint64_t size, int prot, int flags, int fd)
{
	void *at = isoshm_app_place(size);
	void *p = mmap(at, size, prot, flags | MAP_FIXED_NOREPLACE, fd, 0);

	if (p == at)
		return p;
	if (p != MAP_FAILED)
		munmap(p, size);
	return mmap(NULL, size, prot, flags, fd, 0);
}

/* ---- Arena reservation (both sides) -------------------------------------- */

void *isoshm__arena_reserve(void *at, uint64_t size)
{
	uint64_t unit = ISOSTACK_SHM_EXTENT_UNIT;
	uint8_t *p, *aligned;
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;

	if (at != NULL) {
		p = mmap(at, size, PROT_NONE, flags | MAP_FIXED_NOREPLACE, -1, 0);
		if (p == MAP_FAILED)
			return NULL;
		if (p != at) {
			munmap(p, size);
			errno = EEXIST;
			return NULL;
		}
		return p;
	}
	/* Over-reserve and trim: extents may be hugetlb, mapped at unit
	 * (2 MiB) alignment. */
	p = mmap(NULL, size + unit, PROT_NONE, flags, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	aligned = (uint8_t *)align_up((uint64_t)(uintptr_t)p, unit);
	if (aligned > p)
		munmap(p, (size_t)(aligned - p));
	munmap(aligned + size, (size_t)(p + size + unit - (aligned + size)));
	return aligned;
}

/* ---- Ring views (both sides) --------------------------------------------- */

int isoshm__db_views_init(uint8_t *base, const struct isostack_shm_header *h, bool stack,
			  struct isoshm_ring *db)
{
	struct isostack_shm_doorbell *dbc = (void *)(base + h->db_ctl_off);
	enum isoshm_ring_role role = stack ? ISOSHM_RING_CONSUMER : ISOSHM_RING_PRODUCER;

	for (uint32_t d = 0; d < h->nr_doorbells; d++) {
		if (isoshm_ring_init(&db[d], role, &dbc[d].prod, &dbc[d].cons,
				     base + h->db_slots_off + (uint64_t)d * h->doorbell_entries *
				     sizeof(uint32_t),
				     h->doorbell_entries, sizeof(uint32_t)) != 0)
			return -EPROTO;
	}
	return 0;
}

void isoshm__ctl_views_bind(uint8_t *base, const struct isostack_shm_header *h, bool stack,
			    uint32_t id, struct isoshm_sock_view *v)
{
	struct isostack_shm_sock *sk = (void *)(base + h->socks_off);
	enum isoshm_ring_role app_prod = stack ? ISOSHM_RING_CONSUMER : ISOSHM_RING_PRODUCER;
	enum isoshm_ring_role stack_prod = stack ? ISOSHM_RING_PRODUCER : ISOSHM_RING_CONSUMER;

	sk += id;
	/* Bound once per id, at its first socket; the indices then run on
	 * from socket to socket.  The stack starts a never-used id at 0 (it
	 * never trusts the shared words); the application from its own
	 * words, which only it writes. */
	isoshm_ring_bind(&v->cmd, app_prod, &sk->cmd_prod, &sk->cmd_cons,
			 base + h->cmd_off + (uint64_t)id * h->cmd_entries *
			 sizeof(struct isostack_shm_cmd),
			 h->cmd_entries, sizeof(struct isostack_shm_cmd),
			 stack ? 0 : atomic_load_explicit(&sk->cmd_prod, memory_order_relaxed));
	isoshm_ring_bind(&v->status, stack_prod, &sk->status_prod, &sk->status_cons,
			 base + h->status_off + (uint64_t)id * h->status_entries *
			 sizeof(struct isostack_shm_status),
			 h->status_entries, sizeof(struct isostack_shm_status),
			 stack ? 0 : atomic_load_explicit(&sk->status_cons, memory_order_relaxed));
	/* Relaxed: not yet shared with a peer that could race us. */
	v->wake_seq = atomic_load_explicit(&sk->wake_seq, memory_order_relaxed);
	v->bound = true;
}

/* ---- Stack side: create ------------------------------------------------ */

/*
 * The base segment: a normal-page memfd, sized, mapped and size-sealed.
 * Normal pages because it is sparse: the per-id part (directory, socket
 * blocks, command and status rings) is backed page by page as ids are
 * used.  Returns 0 with *fd and *base, or -errno with nothing left open.
 */
static int map_base(uint64_t size, int *fd_out, uint8_t **base_out)
{
	void *base;
	int fd, rc;

	fd = memfd_create("isostack-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) != 0) {
		rc = -errno;
		goto err_close;
	}
	base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
	if (base == MAP_FAILED) {
		rc = -errno;
		goto err_close;
	}
	/* The application maps the same file: without these seals it could
	 * shrink it and make the daemon's next access a SIGBUS. */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
		rc = -errno;
		goto err_unmap;
	}
	*fd_out = fd;
	*base_out = base;
	return 0;

err_unmap:
	munmap(base, size);
err_close:
	close(fd);
	return rc;
}

int isoshm__bind_numa(uint8_t *base, uint64_t size, int node)
{
	struct bitmask *nodes;
	long rc;

	if (numa_available() < 0 || node > numa_max_node())
		return -ENODEV;
	nodes = numa_allocate_nodemask();
	if (nodes == NULL)
		return -ENOMEM;
	numa_bitmask_setbit(nodes, (unsigned int)node);
	rc = mbind(base, size, MPOL_BIND, nodes->maskp, nodes->size + 1, 0);
	numa_free_nodemask(nodes);
	return rc == 0 ? 0 : -errno;
}

int isoshm_stack_create(struct isoshm_stack **out, const struct isoshm_params *p)
{
	struct isoshm_stack *s;
	long small_page = sysconf(_SC_PAGESIZE);
	uint64_t fixed;
	int rc;

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	s->fd = -1;
	s->guard_base = s->guard_arena = -1;
	rc = isoshm_layout(p, (uint32_t)small_page, &s->hdr);
	if (rc < 0)
		goto err_free;
	s->hugetlb = p->hugetlb;
	s->numa_node = p->numa_node;
	/* Private per-id state: calloc'd, so pages are touched only for the
	 * ids that get used. */
	s->views = calloc(p->max_sockets, sizeof(*s->views));
	s->db = calloc(p->nr_doorbells, sizeof(*s->db));
	if (s->views == NULL || s->db == NULL) {
		rc = -ENOMEM;
		goto err_free;
	}
	rc = map_base(s->hdr.segment_size, &s->fd, &s->base);
	if (rc < 0)
		goto err_free;
	s->size = s->hdr.segment_size;
	s->arena = isoshm__arena_reserve(NULL, s->hdr.arena_size);
	if (s->arena == NULL) {
		rc = -ENOMEM;
		goto err_unmap;
	}
	/* An application can punch holes in both (docs/shm.md): a SIGBUS
	 * there must not kill the stack. */
	s->guard_base = isoshm__guard_add(s, s->base, s->size, (uint64_t)small_page);
	s->guard_arena = isoshm__guard_add(s, s->arena, s->hdr.arena_size,
					   ISOSTACK_SHM_EXTENT_UNIT);
	if (s->guard_base < 0 || s->guard_arena < 0) {
		rc = s->guard_base < 0 ? s->guard_base : s->guard_arena;
		goto err_unmap;
	}
	if (p->numa_node >= 0) {
		rc = isoshm__bind_numa(s->base, s->size, p->numa_node);
		if (rc < 0) {
			isoshm__log(ISOSHM_LOG_ERR, "cannot bind segment to NUMA node %d: %s",
				    p->numa_node, strerror(-rc));
			goto err_unmap;
		}
		s->hdr.numa_node = p->numa_node;
		s->hdr.flags |= ISOSTACK_SHM_FLAG_NUMA;
	}
	if (p->hugetlb)
		s->hdr.flags |= ISOSTACK_SHM_FLAG_HUGETLB;
	/* Prefault what every socket uses (header, wait point, doorbells), so
	 * no page fault hits the stack core's doorbell scan.  The per-id part
	 * is faulted in by isoshm_stack_sock_open, once per id. */
	fixed = fixed_part(&s->hdr);
	for (uint64_t off = 0; off < fixed && off < s->size; off += s->hdr.page_size)
		s->base[off] = 0;

	memcpy(s->base, &s->hdr, sizeof(s->hdr));
	s->wait = (void *)(s->base + s->hdr.wait_off);
	s->socks = (void *)(s->base + s->hdr.socks_off);
	s->dir = (void *)(s->base + s->hdr.dir_off);
	s->notes = (void *)(s->base + s->hdr.notes_off);
	rc = isoshm__db_views_init(s->base, &s->hdr, true, s->db);
	if (rc < 0)
		goto err_unmap;
	isoshm__ctl_views_bind(s->base, &s->hdr, true, ISOSTACK_SHM_CTRL_SOCK,
			       &s->views[ISOSTACK_SHM_CTRL_SOCK]);
	*out = s;
	return 0;

err_unmap:
	isoshm__guard_del(s->guard_arena);
	isoshm__guard_del(s->guard_base);
	if (s->arena != NULL)
		munmap(s->arena, s->hdr.arena_size);
	munmap(s->base, s->size);
	close(s->fd);
err_free:
	free(s->db);
	free(s->views);
	free(s);
	return rc;
}

void isoshm_stack_destroy(struct isoshm_stack *s)
{
	if (s == NULL)
		return;
	isoshm__guard_del(s->guard_arena);
	isoshm__guard_del(s->guard_base);
	isoshm__extents_free(s);
	munmap(s->arena, s->hdr.arena_size);
	munmap(s->base, s->size);
	close(s->fd);
	free(s->db);
	free(s->views);
	free(s);
}

int isoshm_stack_fd(const struct isoshm_stack *s)
{
	return s->fd;
}

const struct isostack_shm_header *isoshm_stack_header(const struct isoshm_stack *s)
{
	return &s->hdr;
}

void *isoshm_stack_base(const struct isoshm_stack *s)
{
	return s->base;
}

void *isoshm_stack_arena(const struct isoshm_stack *s)
{
	return s->arena;
}

const struct isoshm_stats *isoshm_stack_stats(const struct isoshm_stack *s)
{
	return &s->stats;
}

/* ---- Application side: attach ---------------------------------------- */

int isoshm_validate_header(const struct isostack_shm_header *h, uint64_t file_size)
{
	struct isostack_shm_header want;
	struct isoshm_params p;

	if (h->magic != ISOSTACK_SHM_MAGIC)
		return -EPROTO;
	if (h->abi_version != ISOSTACK_SHM_ABI_VERSION)
		return -EPROTONOSUPPORT;
	if (h->header_size != sizeof(*h))
		return -EPROTO;
	if ((h->features & ~ISOSTACK_SHM_FEATURES_KNOWN) != 0)
		return -EPROTONOSUPPORT;

	memset(&p, 0, sizeof(p));
	p.max_sockets = h->max_sockets;
	p.nr_doorbells = h->nr_doorbells;
	p.variant = h->variant;
	p.cmd_entries = h->cmd_entries;
	p.status_entries = h->status_entries;
	p.max_ring_bytes = h->max_ring_bytes;
	p.arena_size = h->arena_size;
	if (isoshm_layout(&p, h->page_size, &want) < 0)
		return -EPROTO;
	/* Every offset must be exactly the one the parameters imply. */
	if (h->features != want.features ||
	    h->doorbell_entries != want.doorbell_entries ||
	    h->wait_off != want.wait_off || h->db_ctl_off != want.db_ctl_off ||
	    h->db_slots_off != want.db_slots_off || h->dir_off != want.dir_off ||
	    h->note_entries != want.note_entries || h->notes_off != want.notes_off ||
	    h->socks_off != want.socks_off ||
	    h->cmd_off != want.cmd_off || h->status_off != want.status_off ||
	    h->members_off != want.members_off || h->holders_off != want.holders_off ||
	    h->segment_size != want.segment_size || h->segment_size > file_size)
		return -EPROTO;
	return 0;
}

/* Node of the page at addr as the kernel reports it, or -1. */
static int page_node(void *addr)
{
	int node = -1;

	if (numa_available() < 0 ||
	    get_mempolicy(&node, NULL, 0, addr, MPOL_F_NODE | MPOL_F_ADDR) != 0)
		return -1;
	return node;
}

/* Offsets of the arrays that follow struct isoshm_app in its view memfd. */
struct view_layout {
	size_t views, db, db_owner, size;
};

static struct view_layout view_layout(const struct isostack_shm_header *h)
{
	struct view_layout l;
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	l.views = (sizeof(struct isoshm_app) + 63) & ~(size_t)63;
	l.db = l.views + (size_t)h->max_sockets * sizeof(struct isoshm_sock_view);
	l.db_owner = l.db + (size_t)h->nr_doorbells * sizeof(struct isoshm_ring);
	l.size = l.db_owner + (size_t)h->nr_doorbells * sizeof(_Atomic uint64_t);
	l.size = (l.size + pg - 1) & ~(pg - 1);
	return l;
}

int isoshm_app_attach(struct isoshm_app **out, int fd, struct isoshm_attach_info *info)
{
	struct isostack_shm_header hdr;
	struct view_layout l;
	struct isoshm_app *a;
	struct stat st;
	uint8_t *base, *arena;
	int rc, vfd;

	if (fstat(fd, &st) != 0)
		return -errno;
	if (st.st_size < (off_t)sizeof(struct isostack_shm_header))
		return -EPROTO;
	base = map_placed((uint64_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
			  fd);
	if (base == MAP_FAILED)
		return -errno;
	/* Validate a private copy, so what was checked is what is used. */
	memcpy(&hdr, base, sizeof(hdr));
	rc = isoshm_validate_header(&hdr, (uint64_t)st.st_size);
	if (rc < 0) {
		isoshm__log(ISOSHM_LOG_ERR, "segment header rejected (%s)", strerror(-rc));
		goto err_unmap;
	}
	arena = isoshm__arena_reserve(isoshm_app_place(hdr.arena_size), hdr.arena_size);
	if (arena == NULL)
		arena = isoshm__arena_reserve(NULL, hdr.arena_size);
	if (arena == NULL) {
		rc = -ENOMEM;
		goto err_unmap;
	}
	/* The view itself: shared by the processes fork() makes (see
	 * internal.h), in a memfd so an exec'd image can map it again.
	 * Sparse: a socket's view is touched when its id is first used. */
	l = view_layout(&hdr);
	vfd = memfd_create("isoshm-view", MFD_CLOEXEC);
	if (vfd < 0) {
		rc = -errno;
		goto err_arena;
	}
	if (ftruncate(vfd, (off_t)l.size) != 0) {
		rc = -errno;
		goto err_vfd;
	}
	a = map_placed(l.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, vfd);
	if (a == MAP_FAILED) {
		rc = -errno;
		goto err_vfd;
	}
	a->fd = fd;
	a->view_fd = vfd;
	a->view_size = l.size;
	a->base = base;
	a->size = (uint64_t)st.st_size;
	a->arena = arena;
	a->hdr = hdr;
	a->views = (void *)((uint8_t *)a + l.views);
	a->db = (void *)((uint8_t *)a + l.db);
	a->db_owner = (void *)((uint8_t *)a + l.db_owner);
	a->wait = (void *)(a->base + a->hdr.wait_off);
	a->socks = (void *)(a->base + a->hdr.socks_off);
	a->dir = (void *)(a->base + a->hdr.dir_off);
	a->notes = (const void *)(a->base + a->hdr.notes_off);
	rc = isoshm__db_views_init(a->base, &a->hdr, false, a->db);
	if (rc < 0)
		goto err_view;
	isoshm__ctl_views_bind(a->base, &a->hdr, false, ISOSTACK_SHM_CTRL_SOCK,
			       &a->views[ISOSTACK_SHM_CTRL_SOCK]);

	if (info != NULL) {
		info->size = a->hdr.segment_size;
		info->page_size = a->hdr.page_size;
		info->hugetlb = (a->hdr.flags & ISOSTACK_SHM_FLAG_HUGETLB) != 0;
		info->numa_node = a->hdr.numa_node;
		info->numa_node_actual = page_node(a->base + a->hdr.wait_off);
	}
	isoshm__app_process_init();
	*out = a;
	return 0;

err_view:
	munmap(a, l.size);
err_vfd:
	close(vfd);
err_arena:
	munmap(arena, hdr.arena_size);
err_unmap:
	munmap(base, (size_t)st.st_size);
	return rc;
}

int isoshm_app_adopt(struct isoshm_app **out, void *view, int view_fd, int fd)
{
	struct isoshm_app *a;
	struct stat st;
	void *p;

	if (fstat(view_fd, &st) != 0)
		return -errno;
	if (st.st_size < (off_t)sizeof(*a))
		return -EPROTO;
	p = mmap(view, (size_t)st.st_size, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_NORESERVE | MAP_FIXED_NOREPLACE, view_fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	if (p != view) {          /* a kernel without MAP_FIXED_NOREPLACE */
		munmap(p, (size_t)st.st_size);
		return -EEXIST;
	}
	a = view;
	if (a->view_fd != view_fd || a->fd != fd || a->view_size != (uint64_t)st.st_size ||
	    fstat(fd, &st) != 0 || (uint64_t)st.st_size != a->size) {
		munmap(view, (size_t)a->view_size);
		return -EPROTO;
	}
	p = mmap(a->base, a->size, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_NORESERVE | MAP_FIXED_NOREPLACE, fd, 0);
	if (p != a->base) {
		int rc = p == MAP_FAILED ? -errno : -EEXIST;

		if (p != MAP_FAILED)
			munmap(p, a->size);
		munmap(view, (size_t)a->view_size);
		return rc;
	}
	/* The arena at the same place, empty: extents are mapped again as
	 * the new image's sockets name them (isoshm_app_sock_map). */
	if (isoshm__arena_reserve(a->arena, a->hdr.arena_size) == NULL) {
		int rc = -errno;

		munmap(a->base, a->size);
		munmap(view, (size_t)a->view_size);
		return rc;
	}
	isoshm__app_process_init();
	*out = a;
	return 0;
}

void isoshm_app_fds(const struct isoshm_app *a, int *seg_fd, int *view_fd)
{
	*seg_fd = a->fd;
	*view_fd = a->view_fd;
}

void isoshm_app_fd_moved(struct isoshm_app *a, int from, int to)
{
	if (a->fd == from)
		a->fd = to;
	if (a->view_fd == from)
		a->view_fd = to;
}

void isoshm_app_unmap(struct isoshm_app *a)
{
	isoshm__app_extents_forget(a);
	munmap(a->arena, a->hdr.arena_size);
	munmap(a->base, a->size);
	munmap(a, a->view_size);
}

void isoshm_app_detach(struct isoshm_app *a)
{
	int vfd;

	if (a == NULL)
		return;
	isoshm__app_extents_forget(a);
	munmap(a->arena, a->hdr.arena_size);
	munmap(a->base, a->size);
	close(a->fd);
	vfd = a->view_fd;
	munmap(a, a->view_size);
	close(vfd);
}

const struct isostack_shm_header *isoshm_app_header(const struct isoshm_app *a)
{
	return &a->hdr;
}

uint64_t isoshm_app_sleeps(const struct isoshm_app *a)
{
	return atomic_load_explicit(&a->sleeps, memory_order_relaxed);
}
