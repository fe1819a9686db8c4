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
	p->nr_sockets = 64;
	p->nr_doorbells = ncpu > 0 && ncpu <= 1024 ? (uint32_t)ncpu : 1;
	p->cmd_entries = 256;
	p->status_entries = 256;
	p->tx_ring_bytes = 256u << 10;
	p->rx_ring_bytes = 256u << 10;
	p->numa_node = -1;
	p->hugetlb = true;
}

int isoshm_layout(const struct isoshm_params *p, uint32_t page_size,
		  struct isostack_shm_header *h)
{
	uint64_t off, db_entries;

	if (p->nr_sockets < 2 || p->nr_sockets > 65536 ||
	    p->nr_doorbells < 1 || p->nr_doorbells > 1024 ||
	    !is_pow2(p->cmd_entries) || p->cmd_entries < 2 || p->cmd_entries > 65536 ||
	    !is_pow2(p->status_entries) || p->status_entries < 2 || p->status_entries > 65536 ||
	    !is_pow2(p->tx_ring_bytes) || p->tx_ring_bytes < 4096 || p->tx_ring_bytes > (1u << 30) ||
	    !is_pow2(p->rx_ring_bytes) || p->rx_ring_bytes < 4096 || p->rx_ring_bytes > (1u << 30) ||
	    !is_pow2(page_size) || page_size < 4096 || page_size > (1u << 30))
		return -EINVAL;

	/* A socket is pending on at most one doorbell at a time (repeat
	 * suppression), so nr_sockets entries per doorbell never overflow;
	 * 16 entries minimum keeps each doorbell's slots on whole lines. */
	db_entries = 16;
	while (db_entries < p->nr_sockets)
		db_entries <<= 1;

	memset(h, 0, sizeof(*h));
	h->magic = ISOSTACK_SHM_MAGIC;
	h->abi_version = ISOSTACK_SHM_ABI_VERSION;
	h->header_size = sizeof(*h);
	h->features = ISOSTACK_SHM_FEATURES;
	h->nr_sockets = p->nr_sockets;
	h->nr_doorbells = p->nr_doorbells;
	h->cmd_entries = p->cmd_entries;
	h->status_entries = p->status_entries;
	h->doorbell_entries = (uint32_t)db_entries;
	h->tx_ring_bytes = p->tx_ring_bytes;
	h->rx_ring_bytes = p->rx_ring_bytes;
	h->page_size = page_size;
	h->numa_node = -1;
	h->app_id = p->app_id;

	off = sizeof(*h);
	h->wait_off = off;
	off += sizeof(struct isostack_shm_wait);
	h->socks_off = off;
	off += (uint64_t)p->nr_sockets * sizeof(struct isostack_shm_sock);
	h->db_ctl_off = off;
	off += (uint64_t)p->nr_doorbells * sizeof(struct isostack_shm_doorbell);
	h->db_slots_off = off;
	off += (uint64_t)p->nr_doorbells * db_entries * sizeof(uint32_t);
	h->cmd_off = off;
	off += (uint64_t)p->nr_sockets * p->cmd_entries * sizeof(struct isostack_shm_cmd);
	h->status_off = off;
	off += (uint64_t)p->nr_sockets * p->status_entries * sizeof(struct isostack_shm_status);
	/* Page aligned: the TX area is registered with DPDK as external memory
	 * in whole pages. */
	h->tx_off = align_up(off, page_size);
	off = h->tx_off + (uint64_t)p->nr_sockets * p->tx_ring_bytes;
	h->rx_off = align_up(off, page_size);
	off = h->rx_off + (uint64_t)p->nr_sockets * p->rx_ring_bytes;
	h->segment_size = align_up(off, page_size);
	if (h->segment_size > ISOSHM_MAX_SEGMENT)
		return -EOVERFLOW;
	return 0;
}

/* ---- Ring views (both sides) --------------------------------------------- */

int isoshm__views_init(uint8_t *base, const struct isostack_shm_header *h, bool stack,
		       struct isoshm_sock_view *views, struct isoshm_ring *db)
{
	struct isostack_shm_sock *socks = (void *)(base + h->socks_off);
	struct isostack_shm_doorbell *dbc = (void *)(base + h->db_ctl_off);
	enum isoshm_ring_role app_prod = stack ? ISOSHM_RING_CONSUMER : ISOSHM_RING_PRODUCER;
	enum isoshm_ring_role stack_prod = stack ? ISOSHM_RING_PRODUCER : ISOSHM_RING_CONSUMER;

	for (uint32_t i = 0; i < h->nr_sockets; i++) {
		struct isostack_shm_sock *sk = &socks[i];
		struct isoshm_sock_view *v = &views[i];
		int rc = 0;

		memset(v, 0, sizeof(*v));
		rc |= isoshm_ring_init(&v->cmd, app_prod, &sk->cmd_prod, &sk->cmd_cons,
				       base + h->cmd_off + (uint64_t)i * h->cmd_entries *
				       sizeof(struct isostack_shm_cmd),
				       h->cmd_entries, sizeof(struct isostack_shm_cmd));
		rc |= isoshm_ring_init(&v->status, stack_prod, &sk->status_prod, &sk->status_cons,
				       base + h->status_off + (uint64_t)i * h->status_entries *
				       sizeof(struct isostack_shm_status),
				       h->status_entries, sizeof(struct isostack_shm_status));
		rc |= isoshm_ring_init(&v->tx, app_prod, &sk->tx_prod, &sk->tx_cons,
				       base + h->tx_off + (uint64_t)i * h->tx_ring_bytes,
				       h->tx_ring_bytes, 1);
		rc |= isoshm_ring_init(&v->rx, stack_prod, &sk->rx_prod, &sk->rx_cons,
				       base + h->rx_off + (uint64_t)i * h->rx_ring_bytes,
				       h->rx_ring_bytes, 1);
		if (rc != 0)
			return -EPROTO;
		/* Relaxed: not yet shared with a peer that could race us. */
		v->wake_seq = atomic_load_explicit(&sk->wake_seq, memory_order_relaxed);
	}
	for (uint32_t d = 0; d < h->nr_doorbells; d++) {
		if (isoshm_ring_init(&db[d], app_prod, &dbc[d].prod, &dbc[d].cons,
				     base + h->db_slots_off + (uint64_t)d * h->doorbell_entries *
				     sizeof(uint32_t),
				     h->doorbell_entries, sizeof(uint32_t)) != 0)
			return -EPROTO;
	}
	return 0;
}

/* ---- Stack side: create ------------------------------------------------ */

/*
 * Creates the memfd, sizes it, maps it and seals its size.  Returns 0 with
 * *fd and *base, or -errno with nothing left open.
 */
static int map_backing(uint64_t size, bool hugetlb, int *fd_out, uint8_t **base_out)
{
	unsigned int mfd_flags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
	void *base;
	int fd, rc;

	if (hugetlb)
		mfd_flags |= MFD_HUGETLB | MFD_HUGE_2MB;
	fd = memfd_create("isostack-shm", mfd_flags);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) != 0) {
		rc = -errno;
		goto err_close;
	}
	/* Hugepages are reserved here: no hugepages left means ENOMEM now,
	 * not SIGBUS later. */
	base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
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

/* Binds [base, base+size) to node before the first touch. */
static int bind_numa(uint8_t *base, uint64_t size, int node)
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
	bool hugetlb = p->hugetlb;
	int rc;

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	rc = isoshm_layout(p, hugetlb ? ISOSHM_HUGE_PAGE : (uint32_t)small_page, &s->hdr);
	if (rc < 0)
		goto err_free;
	s->views = calloc(p->nr_sockets, sizeof(*s->views));
	s->db = calloc(p->nr_doorbells, sizeof(*s->db));
	if (s->views == NULL || s->db == NULL) {
		rc = -ENOMEM;
		goto err_free;
	}

	rc = map_backing(s->hdr.segment_size, hugetlb, &s->fd, &s->base);
	if (rc < 0 && hugetlb) {
		isoshm__log(ISOSHM_LOG_WARNING,
			    "no 2 MiB hugepages for a %llu-byte segment (%s): using normal pages",
			    (unsigned long long)s->hdr.segment_size, strerror(-rc));
		hugetlb = false;
		rc = isoshm_layout(p, (uint32_t)small_page, &s->hdr);
		if (rc == 0)
			rc = map_backing(s->hdr.segment_size, false, &s->fd, &s->base);
	}
	if (rc < 0)
		goto err_free;
	s->size = s->hdr.segment_size;
	if (hugetlb)
		s->hdr.flags |= ISOSTACK_SHM_FLAG_HUGETLB;

	if (p->numa_node >= 0) {
		rc = bind_numa(s->base, s->size, p->numa_node);
		if (rc < 0) {
			isoshm__log(ISOSHM_LOG_ERR, "cannot bind segment to NUMA node %d: %s",
				    p->numa_node, strerror(-rc));
			goto err_unmap;
		}
		s->hdr.numa_node = p->numa_node;
		s->hdr.flags |= ISOSTACK_SHM_FLAG_NUMA;
	}
	/* Prefault now, under the binding, so no page fault (or hugepage
	 * shortage) ever hits the stack core's fast path. */
	for (uint64_t off = 0; off < s->size; off += s->hdr.page_size)
		s->base[off] = 0;

	memcpy(s->base, &s->hdr, sizeof(s->hdr));
	s->wait = (void *)(s->base + s->hdr.wait_off);
	s->socks = (void *)(s->base + s->hdr.socks_off);
	rc = isoshm__views_init(s->base, &s->hdr, true, s->views, s->db);
	if (rc < 0)
		goto err_unmap;
	*out = s;
	return 0;

err_unmap:
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
	if ((h->features & ~ISOSTACK_SHM_FEATURES) != 0)
		return -EPROTONOSUPPORT;

	memset(&p, 0, sizeof(p));
	p.nr_sockets = h->nr_sockets;
	p.nr_doorbells = h->nr_doorbells;
	p.cmd_entries = h->cmd_entries;
	p.status_entries = h->status_entries;
	p.tx_ring_bytes = h->tx_ring_bytes;
	p.rx_ring_bytes = h->rx_ring_bytes;
	if (isoshm_layout(&p, h->page_size, &want) < 0)
		return -EPROTO;
	/* Every offset must be exactly the one the parameters imply. */
	if (h->features != want.features ||
	    h->doorbell_entries != want.doorbell_entries ||
	    h->wait_off != want.wait_off || h->socks_off != want.socks_off ||
	    h->db_ctl_off != want.db_ctl_off || h->db_slots_off != want.db_slots_off ||
	    h->cmd_off != want.cmd_off || h->status_off != want.status_off ||
	    h->tx_off != want.tx_off || h->rx_off != want.rx_off ||
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
	l.db = l.views + (size_t)h->nr_sockets * sizeof(struct isoshm_sock_view);
	l.db_owner = l.db + (size_t)h->nr_doorbells * sizeof(struct isoshm_ring);
	l.size = l.db_owner + (size_t)h->nr_doorbells * sizeof(_Atomic int32_t);
	l.size = (l.size + pg - 1) & ~(pg - 1);
	return l;
}

int isoshm_app_attach(struct isoshm_app **out, int fd, struct isoshm_attach_info *info)
{
	struct isostack_shm_header hdr;
	struct view_layout l;
	struct isoshm_app *a;
	struct stat st;
	uint8_t *base;
	int rc, vfd;

	if (fstat(fd, &st) != 0)
		return -errno;
	if (st.st_size < (off_t)sizeof(struct isostack_shm_header))
		return -EPROTO;
	base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED)
		return -errno;
	/* Validate a private copy, so what was checked is what is used. */
	memcpy(&hdr, base, sizeof(hdr));
	rc = isoshm_validate_header(&hdr, (uint64_t)st.st_size);
	if (rc < 0) {
		isoshm__log(ISOSHM_LOG_ERR, "segment header rejected (%s)", strerror(-rc));
		goto err_unmap;
	}
	/* The view itself: shared by the processes fork() makes (see
	 * internal.h), in a memfd so an exec'd image can map it again. */
	l = view_layout(&hdr);
	vfd = memfd_create("isoshm-view", MFD_CLOEXEC);
	if (vfd < 0) {
		rc = -errno;
		goto err_unmap;
	}
	if (ftruncate(vfd, (off_t)l.size) != 0) {
		rc = -errno;
		goto err_vfd;
	}
	a = mmap(NULL, l.size, PROT_READ | PROT_WRITE, MAP_SHARED, vfd, 0);
	if (a == MAP_FAILED) {
		rc = -errno;
		goto err_vfd;
	}
	a->fd = fd;
	a->view_fd = vfd;
	a->view_size = l.size;
	a->base = base;
	a->size = (uint64_t)st.st_size;
	a->hdr = hdr;
	a->views = (void *)((uint8_t *)a + l.views);
	a->db = (void *)((uint8_t *)a + l.db);
	a->db_owner = (void *)((uint8_t *)a + l.db_owner);
	a->wait = (void *)(a->base + a->hdr.wait_off);
	a->socks = (void *)(a->base + a->hdr.socks_off);
	rc = isoshm__views_init(a->base, &a->hdr, false, a->views, a->db);
	if (rc < 0)
		goto err_view;

	if (info != NULL) {
		info->size = a->hdr.segment_size;
		info->page_size = a->hdr.page_size;
		info->hugetlb = (a->hdr.flags & ISOSTACK_SHM_FLAG_HUGETLB) != 0;
		info->numa_node = a->hdr.numa_node;
		info->numa_node_actual = page_node(a->base + a->hdr.tx_off);
	}
	*out = a;
	return 0;

err_view:
	munmap(a, l.size);
err_vfd:
	close(vfd);
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
		 MAP_SHARED | MAP_FIXED_NOREPLACE, view_fd, 0);
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
	p = mmap(a->base, a->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
	if (p != a->base) {
		int rc = p == MAP_FAILED ? -errno : -EEXIST;

		if (p != MAP_FAILED)
			munmap(p, a->size);
		munmap(view, (size_t)a->view_size);
		return rc;
	}
	*out = a;
	return 0;
}

void isoshm_app_fds(const struct isoshm_app *a, int *seg_fd, int *view_fd)
{
	*seg_fd = a->fd;
	*view_fd = a->view_fd;
}

void isoshm_app_unmap(struct isoshm_app *a)
{
	munmap(a->base, a->size);
	munmap(a, a->view_size);
}

void isoshm_app_detach(struct isoshm_app *a)
{
	int vfd;

	if (a == NULL)
		return;
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
