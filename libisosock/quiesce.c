/*
 * The fork quiesce (docs/shim.md, "fork"): every call into the front-end
 * core is a reader, fork's prepare handler the writer, which waits until
 * no thread is inside the core, so that no core lock is held when the
 * process is copied.
 *
 * A pthread rwlock's read side is two atomic read-modify-writes on a word
 * every thread shares (4% of a 64 B send()).  Here each thread has a slot
 * of its own, a depth count only it writes: entering is a store and a
 * load, no atomic RMW.  The reader stores its depth then loads `writer`;
 * the writer stores `writer` then loads every depth: a Dekker pair that
 * needs a full barrier on both sides.  The writer's side runs
 * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), a full barrier on every
 * running thread of the process, so the reader's is a compiler barrier;
 * without membarrier (old kernel, seccomp) readers fence.
 *
 * A reader that finds a fork under way steps back and waits for it (a
 * fork waits for readers, not the other way round, as the writer-first
 * rwlock did), unless it is nested in a call of its own thread (a signal
 * handler's call): the fork waits for the outer one anyway.  A process
 * with one thread skips all of it (isosock_quiesce_enter).
 */
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "isostack/tls.h"
#include "shim.h"

struct qslot {
	_Atomic unsigned depth;    /* written by its thread only */
	_Atomic bool free;         /* its thread exited: reusable */
	struct qslot *next;        /* list of every slot, never unlinked */
};

static struct qslot *_Atomic slots;
static __thread struct qslot *my_slot ISOSTACK_TLS;
static pthread_key_t slot_key;
static _Atomic int writer;        /* a fork is between prepare and parent/child */
static pthread_mutex_t writer_lock = PTHREAD_MUTEX_INITIALIZER;
static bool use_membarrier;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static int membarrier(int cmd)
{
	return (int)syscall(__NR_membarrier, cmd, 0, 0);
}

static void slot_free(void *p)
{
	struct qslot *s = p;

	atomic_store_explicit(&s->free, true, memory_order_release);
}

static void init(void)
{
	int q = membarrier(MEMBARRIER_CMD_QUERY);

	use_membarrier = q > 0 && (q & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
			 membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
	pthread_key_create(&slot_key, slot_free);
}

/* This thread's slot: a freed one, else a new one (NULL: out of memory). */
static struct qslot *slot_get(void)
{
	struct qslot *s;

	pthread_once(&once, init);
	for (s = atomic_load_explicit(&slots, memory_order_acquire); s != NULL; s = s->next) {
		bool f = true;

		if (atomic_load_explicit(&s->free, memory_order_relaxed) &&
		    atomic_compare_exchange_strong(&s->free, &f, false))
			break;
	}
	if (s == NULL) {
		s = calloc(1, sizeof(*s));
		if (s == NULL)
			return NULL;
		s->next = atomic_load_explicit(&slots, memory_order_relaxed);
		/* Release: the slot is initialised before the writer walks it. */
		while (!atomic_compare_exchange_weak_explicit(&slots, &s->next, s,
							      memory_order_release,
							      memory_order_relaxed))
			;
	}
	pthread_setspecific(slot_key, s);
	my_slot = s;
	return s;
}

static void barrier_reader(void)
{
	if (use_membarrier)
		atomic_signal_fence(memory_order_seq_cst);
	else
		atomic_thread_fence(memory_order_seq_cst);
}

/* glibc >= 2.32: nonzero until the process makes its second thread. */
extern char __libc_single_threaded;

bool isosock_quiesce_enter(void)
{
	struct qslot *s = my_slot;

	/* One thread: nothing can fork while it is in the core (a signal
	 * handler that forks there would have deadlocked with the rwlock). */
	if (__atomic_load_n(&__libc_single_threaded, __ATOMIC_RELAXED))
		return false;
	if (__builtin_expect(s == NULL, 0) && (s = slot_get()) == NULL) {
		/* no slot: wait out a fork, then go in unannounced; a fork
		 * now may copy a core lock held (as without the quiesce) */
		while (atomic_load_explicit(&writer, memory_order_acquire))
			sched_yield();
		return false;
	}
	for (;;) {
		unsigned d = atomic_load_explicit(&s->depth, memory_order_relaxed);

		atomic_store_explicit(&s->depth, d + 1, memory_order_relaxed);
		/* Q1: pairs with the writer's membarrier (or fence) at Q2. */
		barrier_reader();
		if (!atomic_load_explicit(&writer, memory_order_relaxed) || d > 0)
			return true;
		/* Release: the store is not ordered before anything of ours
		 * the writer might read; it only lets the fork go on. */
		atomic_store_explicit(&s->depth, d, memory_order_release);
		while (atomic_load_explicit(&writer, memory_order_acquire))
			sched_yield();
	}
}

void isosock_quiesce_leave(bool entered)
{
	struct qslot *s = my_slot;

	if (!entered)
		return;
	/* Q3: pairs with the writer's acquire load of depth: our calls into
	 * the core happen before the fork copies the process. */
	atomic_store_explicit(&s->depth, atomic_load_explicit(&s->depth, memory_order_relaxed) - 1,
			      memory_order_release);
}

void isosock_quiesce_fork_prepare(void)
{
	pthread_once(&once, init);
	pthread_mutex_lock(&writer_lock);
	atomic_store_explicit(&writer, 1, memory_order_relaxed);
	/* Q2: every thread's depth store before our loads below, or it sees
	 * writer set (Q1). */
	if (!use_membarrier || membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0)
		atomic_thread_fence(memory_order_seq_cst);
	for (struct qslot *s = atomic_load_explicit(&slots, memory_order_acquire); s != NULL;
	     s = s->next)
		while (atomic_load_explicit(&s->depth, memory_order_acquire) != 0)
			sched_yield();
}

void isosock_quiesce_fork_parent(void)
{
	atomic_store_explicit(&writer, 0, memory_order_release);
	pthread_mutex_unlock(&writer_lock);
}

void isosock_quiesce_fork_child(void)
{
	/* One thread now (the others' slots stay, at depth 0: prepare saw
	 * them so; reused as threads come).  A new mm: membarrier's
	 * registration is made again, for a child that makes threads. */
	atomic_store_explicit(&writer, 0, memory_order_relaxed);
	pthread_mutex_init(&writer_lock, NULL);
	if (use_membarrier)
		use_membarrier = membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}
