/*
 * The fd table: which kernel fds are isostack sockets.
 *
 * Every socket call of the application looks its fd up here first, so the
 * lookup is a couple of loads: fd >> 10 picks a chunk of 1024 atomic
 * pointers, allocated on first use and never freed, so a reader never sees
 * freed table memory.  A hit takes a counted reference on the object
 * (struct isosock_file); objects come from a never-freed pool, so the
 * increment is safe even when close() on another thread just released the
 * object: a count of zero means dead, and the reader retries.
 *
 * References: one per fd in the table plus one per call in flight.  The
 * last one closes the stack socket (isosock_file_release), so a socket
 * closed while another thread still blocks in recv() lives until that
 * recv() returns, as with the kernel.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "shim.h"

#define CHUNK_SHIFT 10
#define CHUNK_SIZE  (1u << CHUNK_SHIFT)
#define NR_CHUNKS   2048u /* fds up to 2^21: past any sane RLIMIT_NOFILE */

struct chunk {
	_Atomic(struct isosock_file *) e[CHUNK_SIZE];
};

static _Atomic(struct chunk *) chunks[NR_CHUNKS];
static pthread_mutex_t writer_lock = PTHREAD_MUTEX_INITIALIZER; /* table, free list */
static pthread_mutex_t op_lock = PTHREAD_MUTEX_INITIALIZER;     /* isosock_fd_lock */
static struct isosock_file *free_list; /* under writer_lock */
static _Atomic int fd_limit;
static _Atomic uint32_t live;

void (*isosock_file_release)(struct isosock_file *f);

void isosock_fd_lock(void)
{
	pthread_mutex_lock(&op_lock);
}

void isosock_fd_unlock(void)
{
	pthread_mutex_unlock(&op_lock);
}

int isosock_fd_init(void)
{
	return 0;
}

static _Atomic(struct isosock_file *) *slot(int fd, int create)
{
	if (fd < 0 || (unsigned)fd >= NR_CHUNKS * CHUNK_SIZE)
		return NULL;
	unsigned c = (unsigned)fd >> CHUNK_SHIFT;
	/* A1: pairs with the release CAS at A2: the chunk's zeroed pointers
	 * are visible before the chunk is. */
	struct chunk *ch = atomic_load_explicit(&chunks[c], memory_order_acquire);
	if (!ch) {
		if (!create)
			return NULL;
		struct chunk *n = calloc(1, sizeof(*n));
		if (!n)
			return NULL;
		struct chunk *expect = NULL;
		/* A2 */
		if (!atomic_compare_exchange_strong_explicit(&chunks[c], &expect, n,
							     memory_order_release,
							     memory_order_acquire)) {
			free(n);
			n = expect;
		}
		ch = n;
	}
	return &ch->e[(unsigned)fd & (CHUNK_SIZE - 1)];
}

static int ref_if_live(struct isosock_file *f)
{
	uint32_t r = atomic_load_explicit(&f->refs, memory_order_relaxed);
	while (r != 0) {
		if (atomic_compare_exchange_weak_explicit(&f->refs, &r, r + 1,
							  memory_order_acquire,
							  memory_order_relaxed))
			return 1;
	}
	return 0;
}

struct isosock_file *isosock_fd_get(int fd)
{
	_Atomic(struct isosock_file *) *s = slot(fd, 0);
	if (!s)
		return NULL;
	for (;;) {
		/* B1: pairs with the release store at B2: the object's fields
		 * are initialised before it is reachable. */
		struct isosock_file *f = atomic_load_explicit(s, memory_order_acquire);
		if (!f)
			return NULL;
		if (!ref_if_live(f))
			continue; /* freed under us: the slot has changed too */
		if (atomic_load_explicit(s, memory_order_acquire) == f)
			return f;
		isosock_file_put(f); /* reused for another fd: look again */
	}
}

bool isosock_fd_get_peek(int fd)
{
	_Atomic(struct isosock_file *) *s = slot(fd, 0);
	/* Relaxed: a hint only; callers that act on a hit take a reference. */
	return s && atomic_load_explicit(s, memory_order_relaxed) != NULL;
}

void isosock_file_put(struct isosock_file *f)
{
	if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (isosock_file_release)
		isosock_file_release(f);
	pthread_mutex_lock(&writer_lock);
	f->h = NULL;
	f->next_free = free_list;
	free_list = f;
	pthread_mutex_unlock(&writer_lock);
	atomic_fetch_sub_explicit(&live, 1, memory_order_relaxed);
}

struct isosock_file *isosock_file_new(int domain, int type, void *h)
{
	pthread_mutex_lock(&writer_lock);
	struct isosock_file *f = free_list;
	if (f)
		free_list = f->next_free;
	pthread_mutex_unlock(&writer_lock);
	if (!f) {
		f = calloc(1, sizeof(*f));
		if (!f)
			return NULL;
	}
	atomic_store_explicit(&f->flags, 0, memory_order_relaxed);
	atomic_store_explicit(&f->io_rd, 0, memory_order_relaxed);
	atomic_store_explicit(&f->io_wr, 0, memory_order_relaxed);
	f->type = type;
	f->domain = domain;
	f->h = h;
	f->gen++;
	f->rcvtimeo_ns = -1;
	f->sndtimeo_ns = -1;
	atomic_store_explicit(&f->light_ino, 0, memory_order_relaxed);
	f->opts = NULL; /* freed by isosock_file_release */
	f->next_free = NULL;
	atomic_store_explicit(&f->refs, 1, memory_order_release);
	atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
	return f;
}

int isosock_fd_install(int fd, struct isosock_file *f)
{
	pthread_mutex_lock(&writer_lock);
	_Atomic(struct isosock_file *) *s = slot(fd, 1);
	if (!s) {
		pthread_mutex_unlock(&writer_lock);
		return -EMFILE;
	}
	atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
	/* B2 */
	struct isosock_file *old = atomic_exchange_explicit(s, f, memory_order_acq_rel);
	if (fd >= atomic_load_explicit(&fd_limit, memory_order_relaxed))
		atomic_store_explicit(&fd_limit, fd + 1, memory_order_relaxed);
	pthread_mutex_unlock(&writer_lock);
	if (old)
		isosock_file_put(old); /* the kernel replaced the fd (dup2 over it) */
	return 0;
}

struct isosock_file *isosock_fd_remove(int fd)
{
	_Atomic(struct isosock_file *) *s = slot(fd, 0);
	if (!s)
		return NULL;
	return atomic_exchange_explicit(s, NULL, memory_order_acq_rel);
}

void isosock_fd_forget(struct isosock_file *f)
{
	int lim = atomic_load_explicit(&fd_limit, memory_order_relaxed);
	for (int fd = 0; fd < lim; fd++) {
		_Atomic(struct isosock_file *) *s = slot(fd, 0);
		if (!s) {
			fd |= CHUNK_SIZE - 1; /* skip the absent chunk */
			continue;
		}
		struct isosock_file *expect = f;
		if (atomic_compare_exchange_strong_explicit(s, &expect, NULL,
							    memory_order_acq_rel,
							    memory_order_relaxed))
			isosock_file_put(f);
	}
}

int isosock_fd_limit(void)
{
	return atomic_load_explicit(&fd_limit, memory_order_relaxed);
}

uint32_t isosock_file_live(void)
{
	return atomic_load_explicit(&live, memory_order_relaxed);
}

void isosock_fd_atfork(int phase)
{
	switch (phase) {
	case 0: /* prepare: no table writer is half-way through */
		pthread_mutex_lock(&op_lock);
		pthread_mutex_lock(&writer_lock);
		break;
	case 1: /* parent */
		pthread_mutex_unlock(&writer_lock);
		pthread_mutex_unlock(&op_lock);
		break;
	default: /* child: one thread, the one that forked */
		pthread_mutex_init(&writer_lock, NULL);
		pthread_mutex_init(&op_lock, NULL);
		break;
	}
}
