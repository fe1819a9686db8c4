/*
 * Extents: the memory behind sockets' TX and RX rings, added to an
 * application's arena as its sockets need it (docs/shm.md, "Memory on
 * demand").
 *
 * Stack side: an extent is a memfd of whole ISOSTACK_SHM_EXTENT_UNITs
 * (hugepages when the machine has free ones, else normal pages, with one
 * logged warning), size-sealed, mapped at its offset in the daemon's
 * arena, its pages allocated with fallocate() (so a shortage is an error
 * here, never a SIGBUS later) and prefaulted.  An extent whose rings are
 * all free is released: fallocate(PUNCH_HOLE) gives its pages back while
 * every mapping stays; refilling allocates and prefaults them again.  The
 * arena offset an extent takes is never given to another one.
 *
 * Application side: a process maps an extent when a socket it opens (or
 * touches: a fork child may reap a socket its parent opened after the
 * fork) names it, at the same arena offset, with the fd the shim fetches
 * over the control socket.  Which extents this process has mapped is
 * process-private (fork copies it with the mappings; exec starts empty).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <linux/falloc.h>
#include <linux/memfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

/* ---- Stack side ------------------------------------------------------ */

/* Allocates and prefaults the pages of e (its daemon mapping). */
static int extent_fill(struct isoshm_stack *s, struct isoshm_extent *e)
{
	uint8_t *p = s->arena + e->off;
	uint64_t step = e->hugetlb ? ISOSTACK_SHM_EXTENT_UNIT : (uint64_t)sysconf(_SC_PAGESIZE);

	if (fallocate(e->fd, 0, 0, (off_t)e->size) != 0)
		return -errno;
	for (uint64_t off = 0; off < e->size; off += step)
		p[off] = 0;
	e->backed = true;
	return 0;
}

/* A sealed memfd of size bytes mapped at arena offset off.  Returns the
 * fd or -errno. */
static int extent_map(struct isoshm_stack *s, uint64_t off, uint64_t size, bool hugetlb)
{
	unsigned int flags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
	void *p;
	int fd, rc;

	if (hugetlb)
		flags |= MFD_HUGETLB | MFD_HUGE_2MB;
	fd = memfd_create("isostack-extent", flags);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) != 0)
		goto err;
	/* The application maps the same file: without the seals it could
	 * shrink it and turn the daemon's next access into a SIGBUS. */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
		goto err;
	p = mmap(s->arena + off, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
	if (p == MAP_FAILED)
		goto err;
	if (s->numa_node >= 0 && isoshm__bind_numa(p, size, s->numa_node) < 0)
		goto err_unmap;
	return fd;

err_unmap:
	rc = -errno;
	mmap(s->arena + off, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
	     MAP_FIXED, -1, 0);
	close(fd);
	return rc;
err:
	rc = -errno;
	close(fd);
	return rc;
}

/* Puts the reservation back over a failed extent's range. */
static void extent_unmap(struct isoshm_stack *s, uint64_t off, uint64_t size)
{
	mmap(s->arena + off, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
	     MAP_FIXED, -1, 0);
}

int isoshm_stack_extent_new(struct isoshm_stack *s, uint64_t size, uint32_t *id)
{
	struct isoshm_extent e = { .fd = -1 };
	int rc;

	if (size == 0 || size % ISOSTACK_SHM_EXTENT_UNIT != 0)
		return -EINVAL;
	if (s->arena_next + size > s->hdr.arena_size)
		return -ENOSPC;
	if (s->next_ext == s->cap_ext) {
		uint32_t cap = s->cap_ext ? s->cap_ext * 2 : 64;
		struct isoshm_extent *n = realloc(s->ext, cap * sizeof(*n));

		if (n == NULL)
			return -ENOMEM;
		s->ext = n;
		s->cap_ext = cap;
	}
	e.off = s->arena_next;
	e.size = size;
	for (int attempt = s->hugetlb ? 0 : 1; attempt < 2; attempt++) {
		e.hugetlb = attempt == 0;
		rc = extent_map(s, e.off, size, e.hugetlb);
		if (rc >= 0) {
			e.fd = rc;
			rc = extent_fill(s, &e);
			if (rc == 0)
				break;
			close(e.fd);
			e.fd = -1;
			extent_unmap(s, e.off, size);
		}
		if (e.hugetlb && !s->hugetlb_warned) {
			isoshm__log(ISOSHM_LOG_WARNING,
				    "no 2 MiB hugepages for a %llu-byte extent (%s): using normal pages",
				    (unsigned long long)size, strerror(-rc));
			s->hugetlb_warned = true;
		}
	}
	if (rc < 0)
		return rc;
	s->arena_next += size;
	s->ext[s->next_ext] = e;
	*id = s->next_ext++;
	return 0;
}

static struct isoshm_extent *stack_extent(struct isoshm_stack *s, uint32_t id)
{
	return id < s->next_ext ? &s->ext[id] : NULL;
}

int isoshm_stack_extent_release(struct isoshm_stack *s, uint32_t id)
{
	struct isoshm_extent *e = stack_extent(s, id);

	if (e == NULL)
		return -ENOENT;
	if (!e->backed)
		return 0;
	if (fallocate(e->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)e->size) != 0)
		return -errno;
	e->backed = false;
	return 0;
}

int isoshm_stack_extent_refill(struct isoshm_stack *s, uint32_t id)
{
	struct isoshm_extent *e = stack_extent(s, id);

	if (e == NULL)
		return -ENOENT;
	return e->backed ? 0 : extent_fill(s, e);
}

int isoshm_stack_extent_get(struct isoshm_stack *s, uint32_t id, int *fd,
			    uint64_t *off, uint64_t *size)
{
	struct isoshm_extent *e = stack_extent(s, id);

	if (e == NULL)
		return -ENOENT;
	*fd = e->fd;
	*off = e->off;
	*size = e->size;
	return e->hugetlb ? 1 : 0;
}

void isoshm__extents_free(struct isoshm_stack *s)
{
	for (uint32_t i = 0; i < s->next_ext; i++)
		close(s->ext[i].fd);
	free(s->ext);
	s->ext = NULL;
	s->next_ext = s->cap_ext = 0;
}

/* ---- Application side ------------------------------------------------- */

/* This process's mapped extents of one attachment. */
struct app_map {
	const struct isoshm_app *a;
	uint64_t *bits;            /* one bit per possible extent id */
	uint32_t nbits;
	/* How this process gets an extent's fd.  Per process, not in the
	 * shared view: the argument is a pointer of this process (an exec'd
	 * image sets its own). */
	isoshm_extent_fetch_fn fetch;
	void *fetch_arg;
	struct app_map *next;
};

static struct app_map *maps;
static pthread_mutex_t maps_lock = PTHREAD_MUTEX_INITIALIZER;

static struct app_map *map_of(const struct isoshm_app *a, bool create)
{
	struct app_map *m;

	for (m = maps; m != NULL; m = m->next)
		if (m->a == a)
			return m;
	if (!create)
		return NULL;
	for (m = maps; m != NULL; m = m->next)      /* a forgotten one */
		if (m->a == NULL && m->nbits == a->hdr.arena_size / ISOSTACK_SHM_EXTENT_UNIT) {
			m->a = a;
			return m;
		}
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return NULL;
	m->nbits = (uint32_t)(a->hdr.arena_size / ISOSTACK_SHM_EXTENT_UNIT);
	m->bits = calloc((m->nbits + 63) / 64, sizeof(uint64_t));
	if (m->bits == NULL) {
		free(m);
		return NULL;
	}
	m->a = a;
	m->next = maps;
	maps = m;
	return m;
}

void isoshm_app_set_fetch(struct isoshm_app *a, isoshm_extent_fetch_fn fn, void *arg)
{
	struct app_map *m;

	pthread_mutex_lock(&maps_lock);
	m = map_of(a, true);
	if (m != NULL) {
		m->fetch = fn;
		m->fetch_arg = arg;
	}
	pthread_mutex_unlock(&maps_lock);
}

int isoshm__app_extent_ensure(struct isoshm_app *a, uint32_t id)
{
	uint64_t off = 0, size = 0;
	struct app_map *m;
	void *p;
	int fd, rc = 0;

	pthread_mutex_lock(&maps_lock);
	m = map_of(a, true);
	if (m == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if (id >= m->nbits) {
		rc = -EPROTO;
		goto out;
	}
	if (m->bits[id / 64] & (UINT64_C(1) << (id % 64)))
		goto out;
	if (m->fetch == NULL) {
		rc = -ENOENT;
		goto out;
	}
	fd = m->fetch(m->fetch_arg, id, &off, &size);
	if (fd < 0) {
		rc = fd;
		goto out;
	}
	/* The daemon is trusted, but a wild offset would map over our own
	 * memory: it must lie inside the arena, on unit boundaries. */
	if (off % ISOSTACK_SHM_EXTENT_UNIT != 0 || size == 0 ||
	    size % ISOSTACK_SHM_EXTENT_UNIT != 0 || off > a->hdr.arena_size ||
	    size > a->hdr.arena_size - off) {
		close(fd);
		rc = -EPROTO;
		goto out;
	}
	p = mmap(a->arena + off, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		rc = -errno;
		goto out;
	}
	__atomic_or_fetch(&m->bits[id / 64], UINT64_C(1) << (id % 64), __ATOMIC_RELEASE);
out:
	pthread_mutex_unlock(&maps_lock);
	return rc;
}

/* Lock-free fast path of the check: a bit once set stays set. */
bool isoshm__app_extent_mapped(const struct isoshm_app *a, uint32_t id)
{
	static __thread const struct app_map *last ISOSTACK_TLS;
	const struct app_map *m = last;

	if (m == NULL || m->a != a) {
		pthread_mutex_lock(&maps_lock);
		m = map_of(a, false);
		pthread_mutex_unlock(&maps_lock);
		if (m == NULL)
			return false;
		last = m;
	}
	return id < m->nbits &&
	       (__atomic_load_n(&m->bits[id / 64], __ATOMIC_ACQUIRE) & (UINT64_C(1) << (id % 64)));
}

/* Entries are never freed: a thread's cached pointer may still name one
 * (it then fails the m->a check and looks again). */
void isoshm__app_extents_forget(const struct isoshm_app *a)
{
	pthread_mutex_lock(&maps_lock);
	for (struct app_map *m = maps; m != NULL; m = m->next) {
		if (m->a == a) {
			memset(m->bits, 0, (m->nbits + 63) / 64 * sizeof(uint64_t));
			m->fetch = NULL;
			m->fetch_arg = NULL;
			m->a = NULL;
			break;
		}
	}
	pthread_mutex_unlock(&maps_lock);
}
