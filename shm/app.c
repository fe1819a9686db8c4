/*
 * The application's side of a segment: commands in, doorbells rung with
 * repeat suppression, status and RX bytes out, TX bytes in, and the
 * spin-then-sleep wait.  The application trusts the stack, but the ring
 * code still checks the stack's indices (it costs nothing on the fast
 * path) so a broken daemon yields -EPROTO rather than a wild copy.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <pthread.h>
#include <unistd.h>
#include <time.h>

#include "internal.h"

/* A ring of none (0 bytes) lies in no extent: nothing to map. */
static bool ring_mapped(struct isoshm_app *a, uint32_t ext, uint32_t bytes)
{
	return bytes == 0 || isoshm__app_extent_mapped(a, ext);
}

static int ring_ensure(struct isoshm_app *a, uint32_t ext, uint32_t bytes)
{
	return bytes == 0 ? 0 : isoshm__app_extent_ensure(a, ext);
}

/*
 * The view of an opened socket id, with its extents mapped in this
 * process: a fork child may touch (reap) a socket its parent opened after
 * the fork, in an extent the child never mapped.  The check is two bit
 * tests; the mapping happens once per extent and process.
 */
/* The socket's view, its rings mapped; NULL with *err -EBADF (no such
 * id) or the extent fetch's error (-ENOBUFS: the daemon did not answer). */
static struct isoshm_sock_view *app_view_err(struct isoshm_app *a, uint32_t sock, int *err)
{
	struct isoshm_sock_view *v;
	int rc;

	*err = -EBADF;
	if (sock >= a->hdr.max_sockets)
		return NULL;
	v = &a->views[sock];
	if (!v->bound)      /* commands before the id's first open: ours to bind */
		isoshm__ctl_views_bind(a->base, &a->hdr, false, sock, v);
	if (v->open && (!ring_mapped(a, v->tx_ext, v->tx.size) ||
			!ring_mapped(a, v->rx_ext, v->rx.size))) {
		rc = ring_ensure(a, v->tx_ext, v->tx.size);
		if (rc == 0)
			rc = ring_ensure(a, v->rx_ext, v->rx.size);
		if (rc < 0) {
			*err = rc;
			return NULL;
		}
	}
	return v;
}

static struct isoshm_sock_view *app_view(struct isoshm_app *a, uint32_t sock)
{
	int err;

	return app_view_err(a, sock, &err);
}

/* Data ring views need an open socket, not only a bound id. */
static struct isoshm_sock_view *data_view_err(struct isoshm_app *a, uint32_t sock, int *err)
{
	struct isoshm_sock_view *v = app_view_err(a, sock, err);

	if (v != NULL && !v->open) {
		*err = -EBADF;
		return NULL;
	}
	return v;
}

static struct isoshm_sock_view *data_view(struct isoshm_app *a, uint32_t sock)
{
	int err;

	return data_view_err(a, sock, &err);
}

/* The longest spin of isoshm_app_wait(), whatever the poll count (the
 * front-end's ISOSOCK_SPIN_NS). */
#define ISOSHM_SPIN_MAX_NS 50000

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* The doorbell lock's identity of this process (dblock.c) and its
 * membarrier registration are per process: a fork child redoes them. */
static pthread_once_t self_once = PTHREAD_ONCE_INIT;

static void self_reset(void)
{
	(void)isoshm_membarrier_register();     /* a fork child is a new process */
	isoshm__db_self_reset();
}

static void self_init(void)
{
	self_reset();
	pthread_atfork(NULL, NULL, self_reset);
}

void isoshm__app_process_init(void)
{
	pthread_once(&self_once, self_init);
}

/*
 * Rings doorbell db for sock unless the socket already has a ring the
 * stack has not drained.  Returns 0 or -EPROTO (doorbell full: only a
 * stack that breaks the protocol can cause it).
 */
static int ring_doorbell(struct isoshm_app *a, uint32_t sock, uint32_t db)
{
	struct isostack_shm_sock *sk = &a->socks[sock];
	uint32_t seq, drained;
	int k;

	/* F1: orders the store-release of cmd_prod (P1) before the load of
	 * bell_drained; pairs with the stack's fence D1 in isoshm_stack_poll():
	 * either the stack, draining after D1, sees our command, or we see its
	 * drained mark below and ring again. */
	atomic_thread_fence(memory_order_seq_cst);
	/* Relaxed: bell_seq is ours; the CAS below settles races between our
	 * own threads.  bell_drained is ordered by F1. */
	seq = atomic_load_explicit(&sk->bell_seq, memory_order_relaxed);
	drained = atomic_load_explicit(&sk->bell_drained, memory_order_relaxed);
	if (seq != drained)
		return 0; /* a ring is pending; the stack drains after marking it */
	if (!atomic_compare_exchange_strong_explicit(&sk->bell_seq, &seq, seq + 1,
						     memory_order_relaxed, memory_order_relaxed))
		return 0; /* another thread of ours just rang it */

	isoshm__db_lock(&a->db_owner[db]);
	k = isoshm_ring_enqueue_burst(&a->db[db], &sock, 1);
	isoshm__db_unlock(&a->db_owner[db]);
	return k == 1 ? 0 : -EPROTO;
}

int isoshm_app_submit_db(struct isoshm_app *a, uint32_t sock, uint32_t db,
			 const struct isostack_shm_cmd *cmds, uint32_t n)
{
	int k, rc;
	struct isoshm_sock_view *v = app_view_err(a, sock, &rc);

	if (v == NULL)
		return rc;
	if (db >= a->hdr.nr_doorbells)
		return -EBADF;
	k = isoshm_ring_enqueue_burst(&v->cmd, cmds, n);
	if (k <= 0)
		return k;
	rc = ring_doorbell(a, sock, db);
	return rc < 0 ? rc : k;
}

/*
 * The Basic and Aggregate variants' doorbell for the calling thread: the
 * next one in doorbell 0's `threads` count the first time a thread rings
 * this application's doorbells.  The stack scans as many as were handed
 * out, so the scan grows with the threads, as the paper's per-thread
 * queues did.
 */
static uint32_t thread_doorbell(struct isoshm_app *a)
{
	static __thread const struct isoshm_app *tl_app ISOSTACK_TLS;
	static __thread uint32_t tl_db ISOSTACK_TLS;
	struct isostack_shm_doorbell *dbc;

	if (__builtin_expect(tl_app == a, 1))
		return tl_db;
	dbc = (struct isostack_shm_doorbell *)(a->base + a->hdr.db_ctl_off);
	/* Relaxed: a count; the ring's own indices order what is in it. */
	tl_db = atomic_fetch_add_explicit(&dbc[0].threads, 1, memory_order_relaxed) %
		a->hdr.nr_doorbells;
	tl_app = a;
	return tl_db;
}

int isoshm_app_submit(struct isoshm_app *a, uint32_t sock,
		      const struct isostack_shm_cmd *cmds, uint32_t n)
{
	uint32_t db;

	if (isoshm_variant_per_thread(a->hdr.variant)) {
		db = thread_doorbell(a);
	} else {
		int cpu = sched_getcpu();

		db = cpu < 0 ? 0 : (uint32_t)cpu % a->hdr.nr_doorbells;
	}
	return isoshm_app_submit_db(a, sock, db, cmds, n);
}

int isoshm_app_recv_status(struct isoshm_app *a, uint32_t sock,
			   struct isostack_shm_status *st, uint32_t n)
{
	int err;
	struct isoshm_sock_view *v = app_view_err(a, sock, &err);

	return v ? isoshm_ring_dequeue_burst(&v->status, st, n) : err;
}

/* The directory entry's ring lies in arena bytes, power-of-two sized and
 * aligned (the stack is trusted; this keeps a bug from mapping wild). */
static bool ring_sane(const struct isoshm_app *a, uint64_t off, uint32_t bytes)
{
	return bytes >= 4096 && (bytes & (bytes - 1)) == 0 && bytes <= a->hdr.max_ring_bytes &&
	       off % bytes == 0 && off < a->hdr.arena_size &&
	       bytes <= a->hdr.arena_size - off;
}

/* ... or none: an idle socket's ring of 0 bytes (no extent to map). */
static bool ring_sane_or_none(const struct isoshm_app *a, uint64_t off, uint32_t bytes)
{
	return bytes == 0 ? off == 0 : ring_sane(a, off, bytes);
}

/* Maps the extent of a ring, unless it is none. */
/*
 * TX, with the ring empty: takes the stack's open offer if there is one
 * (shm_abi.h, struct isostack_shm_sockdir): binds the offered ring at our
 * tx_prod and says so in sock.tx_gen (published by the next tx_prod).
 * gen: the directory's tx_gen, loaded after our tx_busy fence (T2).
 * Returns 0 or the extent fetch's error.
 */
static int tx_take_offer(struct isoshm_app *a, uint32_t sock, struct isoshm_sock_view *v,
			 uint32_t gen)
{
	const struct isostack_shm_sockdir *d = &a->dir[sock];
	struct isostack_shm_sock *sk = &a->socks[sock];
	uint64_t off;
	uint32_t bytes, ext;
	int rc;

	/*
	 * Seqlock read.  An odd generation, or one that moved while we read,
	 * means the stack is writing a newer offer.  We wait for it rather
	 * than write on in our ring: the stack makes a new offer only once
	 * the one before was taken, and since we did not take it, the stack
	 * did for us (isoshm_stack_tx_take, while we were idle), so it no
	 * longer reads our ring and may have freed it.  Its write is a few
	 * stores.
	 */
	for (;; cpu_relax()) {
		if ((gen & 1u) == 0) {
			off = d->tx_off;
			bytes = d->tx_bytes;
			ext = d->tx_extent;
			/* Seqlock read: pairs with the stack's release fence
			 * after it made tx_gen odd (isoshm_stack_tx_offer): a
			 * field written after that shows in tx_gen below. */
			atomic_thread_fence(memory_order_acquire);
			if (atomic_load_explicit(&d->tx_gen, memory_order_relaxed) == gen)
				break;
		}
		/* Pairs with the stack's store-release of tx_gen that ends
		 * isoshm_stack_tx_offer(): the fields above are its offer's. */
		gen = atomic_load_explicit(&d->tx_gen, memory_order_acquire);
	}
	if (!ring_sane_or_none(a, off, bytes))
		return -EPROTO;
	rc = ring_ensure(a, ext, bytes);
	if (rc < 0)
		return rc;
	/* A ring of none takes no byte: the caller's write returns 0 and it
	 * asks the stack for a ring (a SEND: shm_abi.h, struct
	 * isostack_shm_sockdir). */
	isoshm_ring_bind(&v->tx, ISOSHM_RING_PRODUCER, &sk->tx_prod, &sk->tx_cons,
			 a->arena + off, bytes, 1, v->tx.mine);
	v->tx_off = off;
	v->tx_ext = ext;
	v->tx_gen = gen;
	atomic_store_explicit(&sk->tx_gen, gen, memory_order_relaxed);
	return 0;
}

int isoshm_app_tx_write(struct isoshm_app *a, uint32_t sock, const void *buf, uint32_t len)
{
	struct isostack_shm_sock *sk;
	uint32_t gen;
	int k;
	struct isoshm_sock_view *v = data_view_err(a, sock, &k);

	if (v == NULL)
		return k;
	sk = &a->socks[sock];
	atomic_store_explicit(&sk->tx_busy, 1, memory_order_relaxed);
	/* T2: tx_busy before the load of tx_gen; pairs with the stack's
	 * barrier T1 in isoshm_stack_tx_take(): either it sees us writing, or
	 * we see the offer it took for us.  Registered for membarrier, the
	 * stack's barrier runs one on this thread for us (membarrier.c):
	 * a send pays no fence. */
	if (__builtin_expect(isoshm__membarrier_registered(), 1))
		atomic_signal_fence(memory_order_seq_cst);
	else
		atomic_thread_fence(memory_order_seq_cst);
	gen = atomic_load_explicit(&a->dir[sock].tx_gen, memory_order_acquire);
	/* tx_cons: acquire, pairs with the stack's store-release of it
	 * (isoshm_ring_consume in isoshm_stack_tx_release/tx_take). */
	if (gen != v->tx_gen &&
	    atomic_load_explicit(&sk->tx_cons, memory_order_acquire) == v->tx.mine) {
		k = tx_take_offer(a, sock, v, gen);
		if (k < 0) {
			/* Pairs with the stack's load-acquire of tx_busy (T1). */
			atomic_store_explicit(&sk->tx_busy, 0, memory_order_release);
			return k;
		}
	}
	k = isoshm_ring_enqueue_burst(&v->tx, buf, len);
	atomic_store_explicit(&sk->tx_busy, 0, memory_order_release);
	return k;
}

bool isoshm_app_tx_watched(struct isoshm_app *a, uint32_t sock)
{
	/* TW1: our store-release of tx_prod (the write before) before the
	 * load of tx_watch; pairs with the stack's barrier TW2 after it
	 * stores 0 (isoshm_stack_tx_unwatched): either we see 0 here and
	 * post a SEND, or the stack sees our bytes.  Registered for
	 * membarrier, the stack's barrier runs the fence on this thread for
	 * us (membarrier.c): a full fence here would wait for the store of
	 * tx_prod to leave the store buffer, which is the cross-core line
	 * the stack is reading (a third of a send() when it was a fence). */
	if (__builtin_expect(isoshm__membarrier_registered(), 1))
		atomic_signal_fence(memory_order_seq_cst);
	else
		atomic_thread_fence(memory_order_seq_cst);
	/* Relaxed: TW1 orders it; the bytes need nothing from the stack. */
	return sock < a->hdr.max_sockets &&
	       atomic_load_explicit(&a->dir[sock].tx_watch, memory_order_relaxed) != 0;
}

void isoshm_app_tx_hold(struct isoshm_app *a, uint32_t sock, bool hold)
{
	/* Relaxed: a hold is published by the store-release of tx_prod
	 * that follows; its end is ordered by TW1 (isoshm_app_tx_watched). */
	if (sock < a->hdr.max_sockets)
		atomic_store_explicit(&a->socks[sock].tx_hold, hold ? 1u : 0u,
				      memory_order_relaxed);
}

/*
 * RX: follows the stack to a new ring once there are bytes to read (the
 * ring cannot move while there are).  Before any check of rx_prod against
 * the ring's size: the new ring may be larger.  Returns 1 (bytes to read,
 * in the ring the view is bound to), 0 (none), or -errno.  After 0 the
 * caller must not load rx_prod again through the view: the stack may
 * move the empty ring right after our load and publish bytes in the new
 * one, which a reload would take for bytes of the old ring.
 */
static int rx_follow(struct isoshm_app *a, uint32_t sock, struct isoshm_sock_view *v)
{
	const struct isostack_shm_sockdir *d = &a->dir[sock];
	struct isostack_shm_sock *sk = &a->socks[sock];
	uint32_t gen, prod;
	int rc;

	/* C1: pairs with the stack's store-release of rx_prod, which
	 * publishes the directory entry written before it. */
	prod = atomic_load_explicit(&sk->rx_prod, memory_order_acquire);
	if (prod == v->rx.mine)
		return 0;
	gen = atomic_load_explicit(&d->rx_gen, memory_order_relaxed);
	if (gen != v->rx_gen) {
		if (!ring_sane(a, d->rx_off, d->rx_bytes) || d->rx_start != v->rx.mine)
			return -EPROTO;
		rc = isoshm__app_extent_ensure(a, d->rx_extent);
		if (rc < 0)
			return rc;
		isoshm_ring_bind(&v->rx, ISOSHM_RING_CONSUMER, &sk->rx_prod, &sk->rx_cons,
				 a->arena + d->rx_off, d->rx_bytes, 1, v->rx.mine);
		v->rx_ext = d->rx_extent;
		v->rx_gen = gen;
	}
	/* The index just loaded is the view's cached one: the ring calls
	 * that follow reload it only if they need more. */
	if (isoshm_ring_validate_index(&v->rx, prod) < 0)
		return -EPROTO;
	v->rx.other = prod;
	return 1;
}

/* The RX view of an open socket, following a move; NULL if none (*err
 * -errno), else *err is rx_follow's 0 (empty: don't look) or 1. */
static struct isoshm_sock_view *rx_view(struct isoshm_app *a, uint32_t sock, int *err)
{
	struct isoshm_sock_view *v = data_view_err(a, sock, err);

	if (v == NULL)
		return NULL;
	*err = rx_follow(a, sock, v);
	return *err < 0 ? NULL : v;
}

int isoshm_app_rx_read(struct isoshm_app *a, uint32_t sock, void *buf, uint32_t len)
{
	int err;
	struct isoshm_sock_view *v = rx_view(a, sock, &err);

	if (v == NULL || err == 0)
		return err;
	return isoshm_ring_dequeue_burst(&v->rx, buf, len);
}

int isoshm_app_status_avail(struct isoshm_app *a, uint32_t sock)
{
	struct isoshm_sock_view *v = app_view(a, sock);

	return v ? (int)isoshm_ring_avail(&v->status, 1) : -EBADF;
}

int isoshm_app_rx_avail(struct isoshm_app *a, uint32_t sock)
{
	int err;
	struct isoshm_sock_view *v = rx_view(a, sock, &err);

	if (v == NULL || err == 0)
		return err;
	return (int)(v->rx.other - v->rx.mine);   /* rx_prod as rx_follow loaded it */
}

int isoshm_app_sock_open(struct isoshm_app *a, uint32_t sock)
{
	struct isostack_shm_sockdir d;
	struct isostack_shm_sock *sk;
	struct isoshm_sock_view *v;
	int rc;

	if (sock == ISOSTACK_SHM_CTRL_SOCK || sock >= a->hdr.max_sockets)
		return -EBADF;
	/* A private copy (checked = used), read as a seqlock: the stack may
	 * move an empty RX ring of a socket not opened yet (odd generation
	 * while it writes). */
	for (;;) {
		const struct isostack_shm_sockdir *sd = &a->dir[sock];
		/* Acquire: pair with the stack's store-releases of the even
		 * generations (isoshm_stack_tx_offer, isoshm_stack_rx_move;
		 * isoshm_stack_sock_open's are published by the SOCKET or
		 * ACCEPT reply's status_prod). */
		uint32_t tg = atomic_load_explicit(&sd->tx_gen, memory_order_acquire);
		uint32_t rg = atomic_load_explicit(&sd->rx_gen, memory_order_acquire);

		if (((tg | rg) & 1u) == 0) {
			memcpy(&d, sd, sizeof(d));
			/* Pairs with the stack's release fences after the odd
			 * generations (tx_offer, rx_move): a copy torn by one
			 * shows in the re-read below. */
			atomic_thread_fence(memory_order_acquire);
			if (atomic_load_explicit(&sd->tx_gen, memory_order_relaxed) == tg &&
			    atomic_load_explicit(&sd->rx_gen, memory_order_relaxed) == rg)
				break;
		}
		cpu_relax();
	}
	/* An accepted child may have gone idle before we open it: none.
	 * Generation 0: the stack never opened a socket on the id. */
	if (d.tx_gen == 0 || !ring_sane_or_none(a, d.tx_off, d.tx_bytes) ||
	    !ring_sane_or_none(a, d.rx_off, d.rx_bytes))
		return -EPROTO;
	rc = ring_ensure(a, d.tx_extent, d.tx_bytes);
	if (rc == 0)
		rc = ring_ensure(a, d.rx_extent, d.rx_bytes);
	if (rc < 0)
		return rc;
	v = &a->views[sock];
	sk = &a->socks[sock];
	if (!v->bound)
		isoshm__ctl_views_bind(a->base, &a->hdr, false, sock, v);
	/* Both rings start empty where the stack says: our tx_prod and rx_cons
	 * may lag (nothing reads a closed socket's rings); ours to set. */
	atomic_store_explicit(&sk->tx_prod, d.tx_start, memory_order_relaxed);
	atomic_store_explicit(&sk->tx_hold, 0, memory_order_relaxed);   /* the id's last socket's */
	atomic_store_explicit(&sk->rx_cons, d.rx_start, memory_order_relaxed);
	isoshm_ring_bind(&v->tx, ISOSHM_RING_PRODUCER, &sk->tx_prod, &sk->tx_cons,
			 a->arena + d.tx_off, d.tx_bytes, 1, d.tx_start);
	isoshm_ring_bind(&v->rx, ISOSHM_RING_CONSUMER, &sk->rx_prod, &sk->rx_cons,
			 a->arena + d.rx_off, d.rx_bytes, 1, d.rx_start);
	v->tx_off = d.tx_off;
	v->tx_ext = d.tx_extent;
	v->rx_ext = d.rx_extent;
	v->tx_gen = d.tx_gen;
	v->rx_gen = d.rx_gen;
	atomic_store_explicit(&sk->tx_gen, d.tx_gen, memory_order_relaxed);
	atomic_store_explicit(&sk->tx_busy, 0, memory_order_relaxed);
	v->open = true;
	return 0;
}

uint32_t isoshm_app_tx_size(struct isoshm_app *a, uint32_t sock)
{
	struct isoshm_sock_view *v = data_view(a, sock);

	return v ? v->tx.size : 0;
}

bool isoshm_app_tx_offered(struct isoshm_app *a, uint32_t sock)
{
	struct isoshm_sock_view *v = data_view(a, sock);

	/* Acquire: pairs with the stack's store-release of tx_gen that ends
	 * isoshm_stack_tx_offer(); a hint: the write that takes it re-reads. */
	return v != NULL && atomic_load_explicit(&a->dir[sock].tx_gen, memory_order_acquire) !=
				    v->tx_gen;
}

uint32_t isoshm_app_rx_size(struct isoshm_app *a, uint32_t sock)
{
	struct isoshm_sock_view *v = data_view(a, sock);

	return v ? v->rx.size : 0;
}

int isoshm_app_rx_peek(struct isoshm_app *a, uint32_t sock, uint32_t pos, void *buf, uint32_t n)
{
	int err;
	struct isoshm_sock_view *v = rx_view(a, sock, &err);

	if (v == NULL)
		return err;
	if (n > v->rx.size)
		return -EBADF;
	isoshm_ring__copy_out(&v->rx, pos, buf, n);
	return 0;
}

int isoshm_app_notes(struct isoshm_app *a, uint32_t *cursor,
		     void (*fn)(void *arg, uint32_t sock), void *arg)
{
	uint32_t mask = a->hdr.note_entries - 1;
	/* Acquire: pairs with the stack's store-release in note(). */
	uint32_t prod = atomic_load_explicit(&a->wait->notes_prod, memory_order_acquire);
	uint32_t from = *cursor;

	*cursor = prod;
	if (prod - from > a->hdr.note_entries)
		return 1;
	/* The stack skips a repeat of the last id (shm_abi.h): a socket
	 * posted to again since our last look is named only by the last
	 * note, which we had already passed on.  So the last note is
	 * passed on at every look.  Without it a lone busy socket (one
	 * client) was seen only by the 50 ms full scans: an epoll server's
	 * echo took 100 ms. */
	if (from == prod && prod != 0)
		from = prod - 1;
	for (uint32_t i = from; i != prod; i++) {
		uint32_t id = __atomic_load_n(&a->notes[i & mask], __ATOMIC_RELAXED);

		if (id < a->hdr.max_sockets)
			fn(arg, id);
	}
	/* Overwritten while we read?  Then what we passed on may be wrong
	 * ids (harmless: they are only looked at) and some were missed. */
	/* Acquire: pairs with note()'s store-release, as above. */
	if (atomic_load_explicit(&a->wait->notes_prod, memory_order_acquire) - from >
	    a->hdr.note_entries)
		return 1;
	return 0;
}

uint32_t isoshm_app_notes_now(struct isoshm_app *a)
{
	/* Pairs with note()'s store-release (shm/stack.c). */
	return atomic_load_explicit(&a->wait->notes_prod, memory_order_acquire);
}

struct isostack_shm_sock *isoshm_app_sock(struct isoshm_app *a, uint32_t sock)
{
	return sock < a->hdr.max_sockets ? &a->socks[sock] : NULL;
}

/* ---- Spin, then sleep -------------------------------------------------- */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int isoshm_app_wait(struct isoshm_app *a, uint32_t sock, bool (*ready)(void *arg),
		    void *arg, uint32_t spin, int64_t timeout_ns)
{
	_Atomic uint32_t *waiters, *word;
	int64_t deadline = timeout_ns >= 0 ? now_ns() + timeout_ns : -1;

	if (sock == ISOSHM_WAIT_ANY) {
		waiters = &a->wait->waiters;
		word = &a->wait->wake_seq;
	} else if (sock < a->hdr.max_sockets) {
		waiters = &a->socks[sock].waiters;
		word = &a->socks[sock].wake_seq;
	} else {
		return -EBADF;
	}

	/*
	 * Spin, yielding between polls: the thread that will make us ready
	 * (a peer process on this machine, the stack's other clients) may
	 * share our core, and a spin without a break starves it until we
	 * sleep (a request/response peer on the same core waited out our
	 * whole spin).  With nothing else runnable a yield returns at once
	 * (~0.3 us); the time bound keeps the spin as short as it was.
	 */
	int64_t spin_end = spin > 0 ? now_ns() + ISOSHM_SPIN_MAX_NS : 0;

	for (uint32_t i = 0; i < spin; i++) {
		if (ready(arg))
			return 0;
		sched_yield();
		if (now_ns() >= spin_end)
			break;
	}
	for (;;) {
		struct timespec rel, *relp = NULL;
		uint32_t seq;
		int rc;

		/* S0: pairs with the stack's store-release of the word (W2);
		 * read before announcing, so a wake after our re-check changes
		 * the value FUTEX_WAIT compares against. */
		seq = atomic_load_explicit(word, memory_order_acquire);
		atomic_fetch_add_explicit(waiters, 1, memory_order_relaxed);
		/* S1: orders the announcement before the re-check's loads of the
		 * ring indices; pairs with the stack's fences W1 in
		 * isoshm_stack_notify() (status_prod, rx_prod) and W3 in
		 * isoshm_stack_waiters() (tx_cons, after a TX release): either
		 * the re-check sees what the stack published, or the stack sees
		 * us here and wakes us.  A store-load pair: release/acquire
		 * cannot order it, only a full fence on both sides
		 * (test_shm_wake.c). */
		atomic_thread_fence(memory_order_seq_cst);
		if (ready(arg)) {
			atomic_fetch_sub_explicit(waiters, 1, memory_order_relaxed);
			return 0;
		}
		if (deadline >= 0) {
			int64_t left = deadline - now_ns();

			if (left <= 0) {
				atomic_fetch_sub_explicit(waiters, 1, memory_order_relaxed);
				return -ETIMEDOUT;
			}
			rel.tv_sec = left / 1000000000;
			rel.tv_nsec = left % 1000000000;
			relp = &rel;
		}
		atomic_fetch_add_explicit(&a->sleeps, 1, memory_order_relaxed);
		rc = isoshm__futex_wait(word, seq, relp);
		atomic_fetch_sub_explicit(waiters, 1, memory_order_relaxed);
		if (rc == -EINTR)
			return -EINTR;
		if (ready(arg))
			return 0;
	}
}

void *isoshm_app_base(const struct isoshm_app *a)
{
	return a->base;
}
