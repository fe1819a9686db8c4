/*
 * The stack core's side of a segment: doorbell scan, validated command
 * reads, status posts, TX spans for the NIC, RX writes, and the wakeup of
 * sleeping application threads.
 *
 * Everything read from the segment was written by an untrusted application:
 * ring indices go through isoshm_ring_validate_index(), doorbell entries
 * through isoshm_validate_sock_id(), commands through isoshm_validate_cmd(),
 * each on a private copy.  A bad value is counted and returned as -errno;
 * a corrupt ring marks that socket (or, for doorbells, the application)
 * broken, so later calls fail fast instead of re-reading garbage.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "internal.h"

/* ---- Validation ----------------------------------------------------------- */

int isoshm_validate_sock_id(uint32_t max_sockets, uint32_t sock)
{
	return sock < max_sockets ? 0 : -EBADSLT;
}

/* Which arg[] words each opcode uses; every other word must be zero. */
static const uint8_t cmd_arg_mask[ISOSTACK_SHM_OP_MAX + 1] = {
	[ISOSTACK_SHM_OP_NOP] = 0,
	[ISOSTACK_SHM_OP_SOCKET] = 0x07,
	[ISOSTACK_SHM_OP_BIND] = 0x1f,
	[ISOSTACK_SHM_OP_LISTEN] = 0x01,
	[ISOSTACK_SHM_OP_ACCEPT] = 0,
	[ISOSTACK_SHM_OP_CONNECT] = 0x1f,
	[ISOSTACK_SHM_OP_SEND] = 1,     /* Basic: bytes of this send */
	[ISOSTACK_SHM_OP_RECV] = 0,
	[ISOSTACK_SHM_OP_SHUTDOWN] = 0x01,
	[ISOSTACK_SHM_OP_CLOSE] = 0,
	[ISOSTACK_SHM_OP_SETSOCKOPT] = 0x3f,
	[ISOSTACK_SHM_OP_GETSOCKOPT] = 0x07,
	[ISOSTACK_SHM_OP_GETSOCKNAME] = 0,
	[ISOSTACK_SHM_OP_GETPEERNAME] = 0,
};

/* Inline bytes past len in words arg[first..first+nwords) must be zero. */
static bool inline_tail_zero(const uint64_t *words, uint32_t nwords, uint64_t len)
{
	const uint8_t *b = (const uint8_t *)words;

	for (uint64_t i = len; i < (uint64_t)nwords * 8; i++)
		if (b[i] != 0)
			return false;
	return true;
}

int isoshm_validate_cmd(uint32_t max_sockets, uint32_t sock, const struct isostack_shm_cmd *c)
{
	const uint64_t *a = c->arg;

	if (c->opcode > ISOSTACK_SHM_OP_MAX)
		return -ENOTSUP;
	if (sock >= max_sockets || c->sock != sock)
		return -EBADSLT;
	/* SOCKET creates a slot, so it only makes sense on the control slot,
	 * and the control slot carries nothing else but NOPs. */
	if (c->opcode != ISOSTACK_SHM_OP_NOP &&
	    (c->opcode == ISOSTACK_SHM_OP_SOCKET) != (sock == ISOSTACK_SHM_CTRL_SOCK))
		return -EBADSLT;
	if (c->flags != 0)
		return -EINVAL;
	for (unsigned int i = 0; i < 6; i++)
		if ((cmd_arg_mask[c->opcode] & (1u << i)) == 0 && a[i] != 0)
			return -EINVAL;

	switch (c->opcode) {
	case ISOSTACK_SHM_OP_SOCKET:
		if (a[0] > INT32_MAX || a[1] > INT32_MAX || a[2] > INT32_MAX)
			return -EINVAL;
		break;
	case ISOSTACK_SHM_OP_BIND:
	case ISOSTACK_SHM_OP_CONNECT:
		/* at least sa_family */
		if (a[0] < 2 || a[0] > ISOSTACK_SHM_ADDR_MAX || !inline_tail_zero(&a[1], 4, a[0]))
			return -EINVAL;
		break;
	case ISOSTACK_SHM_OP_LISTEN:
		if (a[0] > INT32_MAX)
			return -EINVAL;
		break;
	case ISOSTACK_SHM_OP_SHUTDOWN:
		if (a[0] > 2) /* SHUT_RD, SHUT_WR, SHUT_RDWR */
			return -EINVAL;
		break;
	case ISOSTACK_SHM_OP_SETSOCKOPT:
		if (a[0] > INT32_MAX || a[1] > INT32_MAX || a[2] > ISOSTACK_SHM_OPT_MAX ||
		    !inline_tail_zero(&a[3], 3, a[2]))
			return -EINVAL;
		break;
	case ISOSTACK_SHM_OP_GETSOCKOPT:
		if (a[0] > INT32_MAX || a[1] > INT32_MAX || a[2] > ISOSTACK_SHM_OPT_MAX)
			return -EINVAL;
		break;
	default:
		break;
	}
	return 0;
}

static void count_cmd_error(struct isoshm_stats *st, int rc)
{
	if (rc == -ENOTSUP)
		st->bad_opcode++;
	else if (rc == -EBADSLT)
		st->bad_sock++;
	else
		st->bad_cmd++;
}

/* Returns the view of sock, or NULL (counted) if out of range.  An id
 * never used yet gets its command and status views bound here (commands
 * on it are answered with an error): our indices start at 0. */
static struct isoshm_sock_view *stack_view(struct isoshm_stack *s, uint32_t sock)
{
	if (sock >= s->hdr.max_sockets) {
		s->stats.bad_arg++;
		return NULL;
	}
	if (!s->views[sock].bound)
		isoshm__ctl_views_bind(s->base, &s->hdr, true, sock, &s->views[sock]);
	return &s->views[sock];
}

/* A ring of sock returned -EPROTO: never touch its rings again. */
static int sock_broken(struct isoshm_stack *s, struct isoshm_sock_view *v)
{
	if (!v->broken) {
		v->broken = true;
		s->stats.bad_index++;
	}
	return -EPROTO;
}

/*
 * The view of a socket whose rings may be used: NULL with *err = -EBADF for
 * a slot number out of range, -EPROTO for a socket found broken earlier.
 */
static struct isoshm_sock_view *live_view(struct isoshm_stack *s, uint32_t sock, int *err)
{
	struct isoshm_sock_view *v = stack_view(s, sock);

	if (v == NULL) {
		*err = -EBADF;
		return NULL;
	}
	if (v->broken) {
		*err = -EPROTO;
		return NULL;
	}
	return v;
}

/* The view of an open socket (its TX/RX rings bound): as live_view, and
 * -EBADF for an id with no socket open on it. */
static struct isoshm_sock_view *open_view(struct isoshm_stack *s, uint32_t sock, int *err)
{
	struct isoshm_sock_view *v = live_view(s, sock, err);

	if (v != NULL && !v->open) {
		*err = -EBADF;      /* no rings bound: its ring views are all zeroes */
		return NULL;
	}
	return v;
}

/* Enqueue into one of sock's stack-produced rings, then wake the app if it
 * sleeps; a corrupt index breaks the socket. Returns what was enqueued. */
static int enqueue_notify(struct isoshm_stack *s, uint32_t sock,
			  struct isoshm_sock_view *v, struct isoshm_ring *r,
			  const void *src, uint32_t n)
{
	int k = isoshm_ring_enqueue_burst(r, src, n);

	if (k < 0)
		return sock_broken(s, v);
	if (k > 0)
		isoshm_stack_notify(s, sock);
	return k;
}

/* ---- Doorbells ------------------------------------------------------------- */

int isoshm_stack_poll(struct isoshm_stack *s, uint32_t *socks, uint32_t n)
{
	uint32_t got = 0, ndb = s->hdr.nr_doorbells, d = 0;

	if (s->db_broken)
		return -EPROTO;
	/* Memory the application took from under us (guard.c). */
	s->stats.faults = isoshm__guard_faults(s->guard_base) + isoshm__guard_faults(s->guard_arena);
	if (s->stats.faults != 0) {
		s->db_broken = true;
		return -EPROTO;
	}
	if (isoshm_variant_per_thread(s->hdr.variant)) {
		const struct isostack_shm_doorbell *dbc = (const void *)(s->base + s->hdr.db_ctl_off);
		/* Relaxed: a hint bounding the scan, clamped; a ring past it is
		 * looked at from the pass after its thread counted itself. */
		uint32_t t = atomic_load_explicit(&dbc[0].threads, memory_order_relaxed);

		ndb = t < ndb ? t : ndb;
		/* Many rings and a full `socks`: start where the last pass
		 * stopped, so no ring waits behind the others forever. */
		d = s->db_next < ndb ? s->db_next : 0;
	}
	for (uint32_t i = 0; i < ndb && got < n; i++, d = d + 1 == ndb ? 0 : d + 1) {
		uint32_t first = got;
		int k = isoshm_ring_dequeue_burst(&s->db[d], socks + first, n - first);

		if (k < 0) {
			s->db_broken = true;
			s->stats.bad_index++;
			return -EPROTO;
		}
		for (int i = 0; i < k; i++) {
			uint32_t id = socks[first + (uint32_t)i];
			uint32_t seq;

			if (isoshm_validate_sock_id(s->hdr.max_sockets, id) < 0) {
				s->stats.bad_sock++;
				continue;
			}
			/* Relaxed: bell_seq is only copied back, never trusted;
			 * the fence below orders the drained mark. */
			seq = atomic_load_explicit(&s->socks[id].bell_seq, memory_order_relaxed);
			atomic_store_explicit(&s->socks[id].bell_drained, seq, memory_order_relaxed);
			socks[got++] = id;
		}
		s->stats.doorbells += (uint64_t)k;
	}
	s->db_next = d;
	if (got != 0) {
		/* D1: orders the bell_drained stores above before the caller's
		 * loads of cmd_prod; pairs with the application's fence F1 in
		 * ring_doorbell(): either we see the command it enqueued, or it
		 * sees the drained mark and rings again. */
		atomic_thread_fence(memory_order_seq_cst);
	}
	return (int)got;
}

/* ---- Commands and status -------------------------------------------------- */

int isoshm_stack_recv_cmds(struct isoshm_stack *s, uint32_t sock,
			   struct isostack_shm_cmd *cmds, uint32_t n)
{
	struct isoshm_sock_view *v;
	int k;
	int err;

	v = live_view(s, sock, &err);
	if (v == NULL)
		return err;
	k = isoshm_ring_peek_burst(&v->cmd, cmds, n);
	if (k < 0)
		return sock_broken(s, v);
	for (int i = 0; i < k; i++) {
		int rc = isoshm_validate_cmd(s->hdr.max_sockets, sock, &cmds[i]);

		if (rc == 0)
			continue;
		if (i == 0) {
			/* consume the bad entry so it can't wedge the ring */
			isoshm_ring_consume(&v->cmd, 1);
			count_cmd_error(&s->stats, rc);
			return rc;
		}
		k = i;
		break;
	}
	if (k > 0)
		isoshm_ring_consume(&v->cmd, (uint32_t)k);
	s->stats.cmds += (uint64_t)k;
	return k;
}

/* Bumps a wake word (private copy first) and wakes its sleepers. */
static void wake_word(struct isoshm_stack *s, _Atomic uint32_t *word, uint32_t *priv)
{
	*priv += 1;
	/* W2: pairs with the sleeper's load-acquire of the word (S0): a thread
	 * that reads the new value also sees what was published before W1. */
	atomic_store_explicit(word, *priv, memory_order_release);
	isoshm__futex_wake(word);
	s->stats.wakes++;
}

/* Appends sock to the notification ring (shm_abi.h, struct
 * isostack_shm_wait), unless it is the last id there already. */
static void note(struct isoshm_stack *s, uint32_t sock)
{
	uint32_t mask = s->hdr.note_entries - 1;

	if (s->notes_prod != 0 && s->notes[(s->notes_prod - 1) & mask] == sock)
		return;
	s->notes[s->notes_prod & mask] = sock;
	s->notes_prod++;
	/* Pairs with a reader's load-acquire of notes_prod: the id written
	 * above is visible with it.  Ordered before the caller's W1 fence, so
	 * a woken reader finds it. */
	atomic_store_explicit(&s->wait->notes_prod, s->notes_prod, memory_order_release);
}

int isoshm_stack_notify(struct isoshm_stack *s, uint32_t sock)
{
	struct isoshm_sock_view *v = stack_view(s, sock);
	struct isostack_shm_sock *sk;
	int woke = 0;

	if (v == NULL)
		return -EBADF;
	note(s, sock);
	sk = &s->socks[sock];
	/* W1: orders the ring publications before it (store-release of
	 * status_prod / rx_prod) before the loads of the waiter counts;
	 * pairs with the application's fence S1 in isoshm_app_wait(): either
	 * its re-check sees our data, or we see its announcement.  Relaxed
	 * loads below are ordered by this fence.  Any nonzero value means
	 * "wake": a lying application only buys itself extra wakeups. */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&sk->waiters, memory_order_relaxed) != 0) {
		wake_word(s, &sk->wake_seq, &v->wake_seq);
		woke = 1;
	}
	if (atomic_load_explicit(&s->wait->waiters, memory_order_relaxed) != 0) {
		wake_word(s, &s->wait->wake_seq, &s->app_wake_seq);
		woke = 1;
	}
	return woke;
}

bool isoshm_stack_waiters(struct isoshm_stack *s, uint32_t sock)
{
	if (stack_view(s, sock) == NULL)
		return false;
	/* W3: orders the caller's publications before it (the store-release
	 * of tx_cons in isoshm_stack_tx_release, of rx_prod) before the loads
	 * of the waiter counts; pairs with the application's fence S1 in
	 * isoshm_app_wait() and the one in isosock_wait_arm() after they
	 * announce a waiter: either its re-check sees what we published, or
	 * we see its announcement.  Without it the store may sit in our
	 * store buffer while the loads read 0 (store-load reordering, allowed
	 * even on x86): both sides miss each other and the waiter sleeps with
	 * the space there (test_shm_wake.c).  Relaxed loads below are ordered
	 * by this fence; any nonzero value means "tell it". */
	atomic_thread_fence(memory_order_seq_cst);
	return atomic_load_explicit(&s->socks[sock].waiters, memory_order_relaxed) != 0 ||
	       atomic_load_explicit(&s->wait->waiters, memory_order_relaxed) != 0;
}

uint64_t isoshm_stack_wake_mask(struct isoshm_stack *s, uint32_t sock)
{
	if (stack_view(s, sock) == NULL)
		return 0;
	return atomic_load_explicit(&s->socks[sock].wake_mask, memory_order_relaxed);
}

int isoshm_stack_post_status(struct isoshm_stack *s, uint32_t sock,
			     const struct isostack_shm_status *st, uint32_t n)
{
	struct isoshm_sock_view *v;
	int err;

	v = live_view(s, sock, &err);
	if (v == NULL)
		return err;
	return enqueue_notify(s, sock, v, &v->status, st, n);
}

/* ---- TX and RX bytes --------------------------------------------------------- */

/* TX: the view moves to the open offer's ring at its consumer index. */
static void tx_switch(struct isoshm_stack *s, uint32_t sock, struct isoshm_sock_view *v)
{
	struct isostack_shm_sock *sk = &s->socks[sock];

	isoshm_ring_bind(&v->tx, ISOSHM_RING_CONSUMER, &sk->tx_prod, &sk->tx_cons,
			 s->arena + v->tx_offer_off, v->tx_offer_bytes, 1, v->tx.mine);
	v->tx_off = v->tx_offer_off;
	v->tx_ext = v->tx_offer_ext;
	v->tx_gen = v->tx_offer;
	v->tx_hold = false;
	s->stats.tx_switches++;
}

int isoshm_stack_tx_peek(struct isoshm_stack *s, uint32_t sock, struct isoshm_span span[2])
{
	struct isoshm_sock_view *v;
	uint64_t base_off;
	uint32_t off, first, prod, avail;
	int err;

	v = open_view(s, sock, &err);
	if (v == NULL)
		return err;
	/* C1: pairs with the application's store-release of tx_prod: the
	 * bytes below it, and its sock.tx_gen, are visible. */
	prod = atomic_load_explicit(v->tx.prod, memory_order_acquire);
	if (v->tx_offer != v->tx_gen &&
	    atomic_load_explicit(&s->socks[sock].tx_gen, memory_order_relaxed) == v->tx_offer) {
		/* Taken: legal only at an empty ring, i.e. everything this
		 * view ever saw was released (nothing peeked is pending). */
		if (v->tx.other != v->tx.mine)
			return sock_broken(s, v);
		tx_switch(s, sock, v);
		return ISOSHM_TX_SWITCHED;
	}
	if (isoshm_ring_validate_index(&v->tx, prod) < 0)
		return sock_broken(s, v);
	v->tx.other = prod;
	avail = prod - v->tx.mine;
	if (v->tx.size == 0) {
		/* none: the check above let nothing past tx.mine */
		memset(span, 0, 2 * sizeof(*span));
		return 0;
	}
	base_off = v->tx_off;
	off = v->tx.mine & v->tx.mask;
	first = avail < v->tx.size - off ? avail : v->tx.size - off;
	span[0].off = base_off + off;
	span[0].addr = s->arena + span[0].off;
	span[0].len = first;
	span[1].off = base_off;
	span[1].addr = s->arena + base_off;
	span[1].len = avail - first;
	return (int)avail;
}

int isoshm_stack_tx_release(struct isoshm_stack *s, uint32_t sock, uint32_t n)
{
	struct isoshm_sock_view *v = stack_view(s, sock);

	if (v == NULL || !v->open)
		return -EBADF;
	/* only bytes a peek returned (v->tx.other is the validated tx_prod) */
	if (v->broken || n > v->tx.other - v->tx.mine) {
		s->stats.bad_arg++;
		return -EINVAL;
	}
	if (v->tx_hold && v->tx.mine + n != v->tx.other) {
		v->tx.mine += n;        /* held back: published once empty */
		return 1;
	}
	isoshm_ring_consume(&v->tx, n);
	return 0;
}

/* A ring of d lies inside extent id, aligned to its power-of-two size. */
static bool ring_placed(struct isoshm_stack *s, uint32_t ext, uint64_t off, uint32_t bytes);
/* ... or is none: 0 bytes, written as offset 0 in extent 0. */
static bool ring_placed_or_none(struct isoshm_stack *s, uint32_t *ext, uint64_t *off,
				uint32_t bytes);

int isoshm_stack_tx_offer(struct isoshm_stack *s, uint32_t sock, uint64_t off,
			  uint32_t bytes, uint32_t ext, bool hold)
{
	struct isostack_shm_sockdir *d;
	struct isoshm_sock_view *v;
	int err;

	v = open_view(s, sock, &err);
	if (v == NULL)
		return err;
	if (v->tx_offer != v->tx_gen)
		return -EBUSY;
	if (!ring_placed_or_none(s, &ext, &off, bytes))
		return -EINVAL;
	d = &s->dir[sock];
	/* A seqlock: odd while the fields change (the application retries),
	 * even once the offer stands. */
	atomic_store_explicit(&d->tx_gen, v->tx_offer + 1, memory_order_relaxed);
	/* Pairs with the application's acquire fence in its seqlock reads
	 * (tx_take_offer, isoshm_app_sock_open): the odd value is seen
	 * before any field written below. */
	atomic_thread_fence(memory_order_release);
	d->tx_off = off;
	d->tx_bytes = bytes;
	d->tx_extent = ext;
	v->tx_offer += 2;
	v->tx_offer_off = off;
	v->tx_offer_bytes = bytes;
	v->tx_offer_ext = ext;
	v->tx_hold = hold;
	/* Pairs with the application's load-acquire of tx_gen. */
	atomic_store_explicit(&d->tx_gen, v->tx_offer, memory_order_release);
	s->stats.tx_offers++;
	return 0;
}

int isoshm_stack_tx_take(struct isoshm_stack *s, uint32_t sock)
{
	struct isostack_shm_sock *sk;
	struct isoshm_sock_view *v;
	int err;

	v = live_view(s, sock, &err);
	if (v == NULL)
		return err;
	if (!v->open || v->tx_offer == v->tx_gen)
		return 0;
	sk = &s->socks[sock];
	/* Acquire: pairs with the application's store-release of tx_prod. */
	if (atomic_load_explicit(&sk->tx_prod, memory_order_acquire) != v->tx.mine ||
	    v->tx.other != v->tx.mine)
		return 0;   /* bytes pending: the application will take it */
	/* T1: the offer (tx_gen, stored earlier) before the load of tx_busy;
	 * pairs with the application's barrier T2 after it stores tx_busy = 1
	 * (its fence, or the caller's isoshm_membarrier_global() since the
	 * offer, which runs one on its threads): either we see the write
	 * under way, or it sees the offer.  Acquire:
	 * a 0 we read may be the store-release that ends a write that began
	 * before the offer; it orders that write's tx_prod before our load
	 * of tx_prod below, which then shows its bytes. */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&sk->tx_busy, memory_order_acquire) != 0 ||
	    atomic_load_explicit(&sk->tx_prod, memory_order_relaxed) != v->tx.mine)
		return 0;
	if (v->tx.mine != atomic_load_explicit(&sk->tx_cons, memory_order_relaxed))
		isoshm_ring_consume(&v->tx, 0);  /* publish what a hold kept back */
	tx_switch(s, sock, v);
	return 1;
}

int isoshm_stack_tx_watch(struct isoshm_stack *s, uint32_t sock)
{
	int err;

	if (open_view(s, sock, &err) == NULL)
		return err;
	/* Relaxed: an application that sees 1 late posts a SEND it could
	 * have spared; none sees it early. */
	atomic_store_explicit(&s->dir[sock].tx_watch, 1, memory_order_relaxed);
	return 0;
}

/* Bytes past the last peek that the application does not hold back. */
static bool tx_new(struct isoshm_stack *s, uint32_t sock, const struct isoshm_sock_view *v)
{
	/* Any other value than the last peeked one says to peek, which
	 * validates it, a wild one included.  Acquire: pairs with the
	 * application's store-release of tx_prod; a tx_hold it stored before
	 * those bytes shows below.  A hold cleared later shows at a later
	 * look (v->tx.other stays behind until a peek). */
	return v->open && !v->broken &&
	       atomic_load_explicit(v->tx.prod, memory_order_acquire) != v->tx.other &&
	       atomic_load_explicit(&s->socks[sock].tx_hold, memory_order_relaxed) == 0;
}

bool isoshm_stack_tx_moved(struct isoshm_stack *s, uint32_t sock)
{
	struct isoshm_sock_view *v = stack_view(s, sock);

	return v != NULL && tx_new(s, sock, v);
}

int isoshm_stack_tx_unwatch(struct isoshm_stack *s, uint32_t sock)
{
	if (stack_view(s, sock) == NULL)
		return -EBADF;
	atomic_store_explicit(&s->dir[sock].tx_watch, 0, memory_order_relaxed);
	return 0;
}

int isoshm_stack_tx_unwatched(struct isoshm_stack *s, uint32_t sock)
{
	struct isoshm_sock_view *v = stack_view(s, sock);

	if (v == NULL)
		return -EBADF;
	/* TW2: the store of tx_watch (isoshm_stack_tx_unwatch) before the
	 * load of tx_prod; pairs with the application's barrier TW1 between
	 * its store-release of tx_prod and its load of tx_watch
	 * (isoshm_app_tx_watched), made a full one on its threads by the
	 * caller's membarrier since: either it sees 0 and posts a SEND, or
	 * we see its bytes here.  The same for its store of tx_hold = 0
	 * (then TW1): held bytes wait for that SEND. */
	atomic_thread_fence(memory_order_seq_cst);
	return tx_new(s, sock, v) ? 1 : 0;
}

int isoshm_stack_rx_move(struct isoshm_stack *s, uint32_t sock, uint64_t off,
			 uint32_t bytes, uint32_t ext)
{
	struct isostack_shm_sock *sk;
	struct isostack_shm_sockdir *d;
	struct isoshm_sock_view *v;
	int64_t free_n;
	int err;

	v = open_view(s, sock, &err);
	if (v == NULL)
		return err;
	if (!ring_placed_or_none(s, &ext, &off, bytes))
		return -EINVAL;
	free_n = isoshm_ring_free(&v->rx, UINT32_MAX);
	if (free_n < 0)
		return sock_broken(s, v);
	if ((uint32_t)free_n != v->rx.size)
		return -EBUSY;
	sk = &s->socks[sock];
	d = &s->dir[sock];
	isoshm_ring_bind(&v->rx, ISOSHM_RING_PRODUCER, &sk->rx_prod, &sk->rx_cons,
			 s->arena + off, bytes, 1, v->rx.mine);
	v->rx_ext = ext;
	/* The next store-release of rx_prod publishes the entry to a reader
	 * that found bytes; the seqlock (odd while it changes) is for one
	 * that opens the socket meanwhile (isoshm_app_sock_open). */
	atomic_store_explicit(&d->rx_gen, v->rx_gen + 1, memory_order_relaxed);
	/* Pairs with the acquire fence of isoshm_app_sock_open's seqlock. */
	atomic_thread_fence(memory_order_release);
	d->rx_off = off;
	d->rx_bytes = bytes;
	d->rx_extent = ext;
	d->rx_start = v->rx.mine;
	v->rx_gen += 2;
	/* Pairs with the application's load-acquire of rx_gen
	 * (isoshm_app_sock_open). */
	atomic_store_explicit(&d->rx_gen, v->rx_gen, memory_order_release);
	s->stats.rx_moves++;
	return 0;
}

int isoshm_stack_rx_space(struct isoshm_stack *s, uint32_t sock)
{
	struct isoshm_sock_view *v;
	int64_t free_n;
	int err;

	v = open_view(s, sock, &err);
	if (v == NULL)
		return err;
	free_n = isoshm_ring_free(&v->rx, UINT32_MAX);
	if (free_n < 0)
		return sock_broken(s, v);
	return (int)free_n;
}

int isoshm_stack_rx_write(struct isoshm_stack *s, uint32_t sock, const void *buf, uint32_t len)
{
	struct isoshm_sock_view *v;
	int err;

	v = open_view(s, sock, &err);
	if (v == NULL)
		return err;
	return enqueue_notify(s, sock, v, &v->rx, buf, len);
}

/* A ring of d lies inside extent id, aligned to its power-of-two size. */
static bool ring_placed(struct isoshm_stack *s, uint32_t ext, uint64_t off, uint32_t bytes)
{
	uint64_t eoff, esize;
	int fd;

	if (bytes < 4096 || (bytes & (bytes - 1)) != 0 || bytes > s->hdr.max_ring_bytes ||
	    off % bytes != 0 || isoshm_stack_extent_get(s, ext, &fd, &eoff, &esize) < 0)
		return false;
	/* no off + bytes: it wraps for an offset near 2^64 */
	return off >= eoff && bytes <= esize && off - eoff <= esize - bytes;
}

/*
 * A ring of 0 bytes is none (an idle socket's): a view bound to it has
 * no room and holds nothing, so a peer index that moves past ours is
 * -EPROTO at its first check, and no slot is ever addressed.
 */
static bool ring_placed_or_none(struct isoshm_stack *s, uint32_t *ext, uint64_t *off,
				uint32_t bytes)
{
	if (bytes != 0)
		return ring_placed(s, *ext, *off, bytes);
	*ext = 0;
	*off = 0;
	return true;
}

/* Faults in the stack-written pages of a never-used id: its block's stack
 * line and its status ring (the application faults its own). */
static void sock_prefault(struct isoshm_stack *s, uint32_t sock)
{
	uint64_t pg = s->hdr.page_size;
	uint64_t st = s->hdr.status_off + (uint64_t)sock * s->hdr.status_entries *
		      sizeof(struct isostack_shm_status);
	uint64_t end = st + (uint64_t)s->hdr.status_entries * sizeof(struct isostack_shm_status);
	struct isostack_shm_sock *sk = &s->socks[sock];

	atomic_store_explicit(&sk->cmd_cons, 0, memory_order_relaxed);
	for (uint64_t off = st; off < end; off = (off / pg + 1) * pg)
		s->base[off] = 0;
}

int isoshm_stack_sock_open(struct isoshm_stack *s, uint32_t sock,
			   struct isostack_shm_sockdir *d)
{
	struct isoshm_sock_view *v;
	struct isostack_shm_sock *sk;
	uint32_t tx_start, rx_start;

	if (sock == ISOSTACK_SHM_CTRL_SOCK || sock >= s->hdr.max_sockets)
		return -EBADF;
	/* A TCP socket may open with none either way (no memory this pass:
	 * it gets its rings as for an idle one). */
	if (!ring_placed_or_none(s, &d->tx_extent, &d->tx_off, d->tx_bytes) ||
	    !ring_placed_or_none(s, &d->rx_extent, &d->rx_off, d->rx_bytes))
		return -EINVAL;
	v = &s->views[sock];
	sk = &s->socks[sock];
	if (!v->bound) {
		sock_prefault(s, sock);
		isoshm__ctl_views_bind(s->base, &s->hdr, true, sock, v);
	}
	if (v->broken)
		return -EPROTO;
	/* Adopt the application's indices (whatever they are: only its own
	 * stream can suffer): TX starts at its tx_prod, published as
	 * consumed, RX at its rx_cons, published as produced, so both views
	 * start on empty rings that agree with its words even before it has
	 * opened the socket (an accepted child receives data at once).  The
	 * starts go in the directory entry and back to the caller. */
	tx_start = atomic_load_explicit(&sk->tx_prod, memory_order_relaxed);
	rx_start = atomic_load_explicit(&sk->rx_cons, memory_order_relaxed);
	isoshm_ring_bind(&v->tx, ISOSHM_RING_CONSUMER, &sk->tx_prod, &sk->tx_cons,
			 s->arena + d->tx_off, d->tx_bytes, 1, tx_start);
	isoshm_ring_bind(&v->rx, ISOSHM_RING_PRODUCER, &sk->rx_prod, &sk->rx_cons,
			 s->arena + d->rx_off, d->rx_bytes, 1, rx_start);
	atomic_store_explicit(&sk->tx_cons, tx_start, memory_order_relaxed);
	atomic_store_explicit(&sk->rx_prod, rx_start, memory_order_relaxed);
	v->tx_off = d->tx_off;
	v->tx_ext = d->tx_extent;
	v->rx_ext = d->rx_extent;
	v->tx_hold = false;
	/* Generations run on from socket to socket of the id; the ring this
	 * socket starts on is a taken offer.  An odd value would be an offer
	 * half written: the next even one. */
	v->tx_gen = v->tx_offer = (v->tx_offer + 2) & ~1u;
	v->rx_gen = (v->rx_gen + 2) & ~1u;
	v->open = true;
	/* Plain stores: the store-release of status_prod that announces the
	 * id (the SOCKET or ACCEPT reply) publishes them with the indices. */
	d->tx_start = tx_start;
	d->rx_start = rx_start;
	atomic_store_explicit(&d->tx_gen, v->tx_gen, memory_order_relaxed);
	atomic_store_explicit(&d->rx_gen, v->rx_gen, memory_order_relaxed);
	atomic_store_explicit(&d->tx_watch, 0, memory_order_relaxed);   /* not watched */
	memset(d->reserved, 0, sizeof(d->reserved));
	memcpy(&s->dir[sock], d, sizeof(*d));
	return 0;
}

bool isoshm_stack_sock_broken(const struct isoshm_stack *s, uint32_t sock)
{
	return sock < s->hdr.max_sockets && s->views[sock].broken;
}
