/*
 * libisosock's protocol core, private to its files (core*.c): the
 * per-socket state (struct fsock), the state the processes of one
 * attachment share (struct fshared), the per-process handle, and the
 * helpers the files share.  isosock.h is the core's API; nothing here
 * crosses a process boundary except through shared memory mapped by the
 * same library (struct fshared).
 */
#ifndef ISOSOCK_CORE_INTERNAL_H
#define ISOSOCK_CORE_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "isosock.h"
#include "isoshm.h"
#include "isostack/shm_abi.h"
#include "isostack/tls.h"

#define WAIT_SLICE_NS   (20 * 1000 * 1000)
#define NREP            4
#define NSTASH          8
#define SPIN_POLLS      2000
/* Longest wait of a non-blocking accept for its (due) reply. */
#define ACCEPT_NB_WAIT_NS (50 * 1000 * 1000)

enum fstate {
	F_FREE = 0, F_OPEN, F_LISTEN, F_CONNECTING, F_CONNECTED, F_CLOSING,
};

/* Processes that may share one attachment (fork children included): a
 * forking server has one per connection being served.  The member table
 * and each socket's holder set live in the base segment
 * (struct isostack_shm_member, struct isostack_shm_holders), where the
 * stack reads them when a member dies. */
#define MAX_MEMBERS     ((int)ISOSTACK_SHM_MEMBERS)
#define MSET_WORDS      (MAX_MEMBERS / 64)
/* Survivors look for dead members at most this often. */
#define SWEEP_NS        (100 * 1000 * 1000)

/* A set of member indices; a socket's holders are one in the segment
 * (the same layout as struct isostack_shm_holders), changed under the
 * socket's lock and read by the stack at any time. */
struct mset {
	uint64_t w[MSET_WORDS];
};

_Static_assert(sizeof(struct mset) == sizeof(struct isostack_shm_holders), "holder set");

static inline bool mset_has(const struct mset *s, int i)
{
	return (s->w[i / 64] >> (i % 64)) & 1;
}

/* Without the socket's lock: a hint, re-checked under it. */
static inline bool mset_has_relaxed(const struct mset *s, int i)
{
	return (__atomic_load_n(&s->w[i / 64], __ATOMIC_RELAXED) >> (i % 64)) & 1;
}

/* Whole-word stores: the stack reads the words without our lock (a
 * relaxed hint, see shm_abi.h), so it must never see a torn one. */
static inline void mset_add(struct mset *s, int i)
{
	__atomic_store_n(&s->w[i / 64], s->w[i / 64] | UINT64_C(1) << (i % 64),
			 __ATOMIC_RELAXED);
}

static inline void mset_del(struct mset *s, int i)
{
	__atomic_store_n(&s->w[i / 64], s->w[i / 64] & ~(UINT64_C(1) << (i % 64)),
			 __ATOMIC_RELAXED);
}

static inline bool mset_meets(const struct mset *a, const struct mset *b)
{
	for (int k = 0; k < MSET_WORDS; k++)
		if (a->w[k] & b->w[k])
			return true;
	return false;
}

struct rep {
	uint64_t cookie;
	bool used, done, abandoned;
	uint16_t owner;            /* member index of the waiter */
	struct isostack_shm_status st;
};

struct fsock {
	pthread_mutex_t lock;      /* process-shared, robust; first: fs_fresh keeps it */
	uint8_t state;             /* fs_fresh clears from here on */
	/* The stack closed it (EV_CLOSED: no living member held it); the
	 * last holder's release posts no CLOSE. */
	bool stack_closed;
	bool nonblock, shut_rd, shut_wr, hup, dead, linger0, cork;
	bool udp, udp_connected;   /* SOCK_DGRAM; default peer set */
	bool inet6;                /* AF_INET6 */
	bool v6only;               /* UDP: IPV6_V6ONLY set (sendto refuses IPv4) */
	bool err_reported;         /* the fatal error was returned once */
	int fatal;                 /* -errno from EV_ERROR */
	int so_error;              /* pending SO_ERROR (positive errno) */
	uint64_t connect_cookie;   /* reply updates the state, waiter or not */
	int64_t rcvtimeo_ns, sndtimeo_ns;
	struct linger linger;
	/* TX */
	uint32_t tx_prod;          /* bytes written (ours) */
	uint32_t send_idx;         /* cmd_prod after our last SEND */
	bool send_posted;
	uint32_t tx_since_send;
	bool tx_hold;              /* sock.tx_hold published as 1 (MSG_MORE, cork) */
	/* RX */
	uint32_t rx_cons;
	uint32_t rx_since_recv;
	/* listener */
	uint32_t incoming;         /* backlog length (EV_INCOMING less replies since) */
	uint32_t arrived;          /* connections that entered the backlog, ever */
	uint32_t accepting;        /* non-blocking ACCEPTs in flight for it */
	uint32_t stash[NSTASH];    /* accepted slots whose ACCEPT waiter gave up */
	uint32_t nstash;
	/* replies */
	struct rep rep[NREP];
	uint64_t seq;
	bool closed_reply;         /* CLOSING: the CLOSE reply came */
	uint32_t tx_bytes, rx_bytes;  /* ring sizes of the socket in this id (they
				       * change: refreshed by send and recv) */
	int sndbuf, rcvbuf;        /* SO_SNDBUF/SO_RCVBUF as Linux reports a set
				    * value (0: not set, the ring size is reported) */
};

/* A process of the application: pid 0 free, -1 reserved by a fork under
 * way, below -1 reserved for a spawned child (isosock_app_spawn_claim);
 * start is its /proc starttime, which tells a reused pid apart.  In the
 * base segment (app->members), changed under fshared.mlock. */
struct member {
	_Atomic int32_t pid;
	uint32_t reserved;
	_Atomic uint64_t start;
};

_Static_assert(sizeof(struct member) == sizeof(struct isostack_shm_member), "member entry");
_Static_assert(offsetof(struct member, start) == offsetof(struct isostack_shm_member, start),
	       "member.start");

/* The shared part of an attachment (see core_members.c). */
struct fshared {
	pthread_mutex_t mlock;     /* the member table; process-shared, robust */
	_Atomic uint32_t nmembers; /* entries in use, for the sweep's fast path */
	_Atomic uint32_t spawn_seq; /* makes the pid marks of spawn reservations */
	uint32_t nsocks;
	/* fs[] entries below it have their lock initialised (ids used once);
	 * the rest of the array is sparse: never touched. */
	_Atomic uint32_t hiwat;
	/* Requests with a reply on the shared control socket (EXTENT) take
	 * turns; ctl_seq, bumped when one goes out and when its reply was
	 * read (odd in between), tells the liveness check that a reply may
	 * be or have been waiting (readable is not hung up then). */
	pthread_mutex_t ctl_lock;
	_Atomic uint32_t ctl_seq;
	/* Replies of requests that gave up waiting (fetch_extent's bound):
	 * one may arrive with no request out, and is not a hang-up either;
	 * the next request skips it and counts it off. */
	_Atomic uint32_t ctl_owed;
	/* wake_mask bits of threads with a wake fd of their own
	 * (core_wait.c, thread wake fds) and the thread holding each. */
	_Atomic uint64_t thread_bits;
	_Atomic int32_t thread_pid[64], thread_tid[64];
	struct fsock fs[];
	/* then, after fs[nsocks]: _Atomic uint64_t closing[(nsocks + 63) / 64],
	 * a bit per id in F_CLOSING (isosock__closing), so that reaping looks
	 * at closing ids only, not at every id (an accept() per connection
	 * was O(connections) with a walk of fs[]). */
};

/* The F_CLOSING bit set of the attachment (after fs[]). */
static inline _Atomic uint64_t *isosock__closing(const struct isosock_app *app);

/* Per process: the fds and where this process is in the member table. */
struct isosock_app {
	struct isoshm_app *shm;
	struct fshared *sh;
	int sh_fd;
	size_t sh_size;
	int me;                    /* our index in sh->members */
	/* Threads of this process asleep on each socket's wake_mask bit
	 * (isosock_sleep_mark); NULL: bits are set and never cleared. */
	_Atomic uint16_t *marks;
	_Atomic int sleepers;      /* our threads between wait_arm and disarm */
	int64_t next_sweep;
	int ctl_fd, wake_fd, stack_wake_fd;
	/* CLOCK_MONOTONIC ns: an EXTENT request timed out; until then, fail
	 * the next ones at once (core_attach.c, fetch_extent) */
	_Atomic int64_t extent_stall_until;
	uint32_t id, nsocks;
	bool no_tx_agg;            /* variant Basic: a SEND per send(), with its length */
	uint8_t *base;
	struct isostack_shm_sock *socks;
	struct isostack_shm_wait *wait;
	struct member *members;    /* [MAX_MEMBERS], in the segment */
	struct mset *holders;      /* [nsocks], in the segment */
	struct fsock *fs;
	_Atomic bool dead;
	_Atomic int64_t alive_at;  /* when the control socket was last polled */
	uint64_t serial;           /* this process's attachments, in creation order */
	int thread_fd[64];         /* our threads' own wake fds by bit, -1 none */
	struct isosock_stats st;   /* approximate under concurrency */
};

static inline _Atomic uint64_t *isosock__closing(const struct isosock_app *app)
{
	return (_Atomic uint64_t *)(void *)&app->sh->fs[app->sh->nsocks];
}

/* Under f->lock, with every change of f->state to or from F_CLOSING. */
static inline void isosock__closing_mark(struct isosock_app *app, int s, bool on)
{
	_Atomic uint64_t *w = &isosock__closing(app)[(uint32_t)s / 64];
	uint64_t bit = UINT64_C(1) << ((uint32_t)s % 64);

	if (on)
		atomic_fetch_or_explicit(w, bit, memory_order_relaxed);
	else
		atomic_fetch_and_explicit(w, ~bit, memory_order_relaxed);
}

/* ---- Time --------------------------------------------------------------- */

static inline int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The kernel's last tick (1-4 ms old): a load from the vDSO page, no TSC
 * read, for throttles on the data path that need no finer time. */
static inline int64_t now_coarse_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- Process-shared locks ------------------------------------------------- */

/* A member died holding the lock: what it guarded may be half updated,
 * but every field stays valid on its own (indices are published last),
 * so carry on with it. */
static inline void robust_lock(pthread_mutex_t *m)
{
	if (pthread_mutex_lock(m) == EOWNERDEAD)
		pthread_mutex_consistent(m);
}

/* The socket this process's one thread is using without its lock, if
 * any (core_data.c, alone_begin). */
extern struct fsock *_Atomic isosock__alone;

/*
 * The socket locks this thread holds or is about to take: a signal
 * handler's send or recv on one of them would wait for its own thread,
 * forever (core_data.c, call_begin, answers -EAGAIN instead).  Set before
 * the lock is taken and cleared after it is released, so a handler may
 * see a lock as ours a little early or late (a spurious EAGAIN), never
 * miss one it would deadlock on.  Nested handlers past ISOSOCK_HELD_MAX
 * locks go unrecorded.
 */
#define ISOSOCK_HELD_MAX 4
extern __thread struct fsock *isosock__held[ISOSOCK_HELD_MAX] ISOSTACK_TLS;

static inline bool fs_held_here(const struct fsock *f)
{
	for (int i = 0; i < ISOSOCK_HELD_MAX; i++)
		if (isosock__held[i] == f)
			return true;
	return false;
}

static inline int fs_held_add(struct fsock *f)
{
	for (int i = 0; i < ISOSOCK_HELD_MAX; i++)
		if (isosock__held[i] == NULL) {
			isosock__held[i] = f;
			atomic_signal_fence(memory_order_seq_cst);
			return i;
		}
	return -1;
}

static inline void fs_held_del(struct fsock *f)
{
	atomic_signal_fence(memory_order_seq_cst);
	for (int i = ISOSOCK_HELD_MAX - 1; i >= 0; i--)
		if (isosock__held[i] == f) {
			isosock__held[i] = NULL;
			return;
		}
}

static inline void fs_lock(struct fsock *f)
{
	/* A signal handler's call on that socket: the interrupted call holds
	 * no lock to wait for, and must not be raced.  It hangs, sleeping,
	 * as it hung on the lock before the lone path. */
	while (__builtin_expect(atomic_load_explicit(&isosock__alone,
						     memory_order_relaxed) == f, 0))
		pause();
	(void)fs_held_add(f);
	robust_lock(&f->lock);
}

static inline int fs_trylock(struct fsock *f)
{
	int r = pthread_mutex_trylock(&f->lock);

	if (r == EOWNERDEAD) {
		pthread_mutex_consistent(&f->lock);
		r = 0;
	}
	if (r == 0)
		(void)fs_held_add(f);
	return r;
}

static inline void fs_unlock(struct fsock *f)
{
	pthread_mutex_unlock(&f->lock);
	fs_held_del(f);
}

/* glibc >= 2.32: nonzero until the process makes its second thread. */
extern char __libc_single_threaded;

/* ---- Sockets ------------------------------------------------------------- */

/* The member processes holding socket s (the segment's copy: the only one). */
static inline struct mset *fs_holders(struct isosock_app *app, int s)
{
	return &app->holders[s];
}

static inline struct fsock *fs_get(struct isosock_app *app, int s)
{
	if (s <= 0 || (uint32_t)s >= app->nsocks)
		return NULL;
	return &app->fs[s];
}

/*
 * Whether a data call on s may run without f->lock until it has to wait
 * (then it takes the lock and looks again): this process has one thread
 * and holds s alone, and no process holds f->lock.  Nobody else then
 * touches f: other processes act under the lock, and only on sockets
 * they hold (sweeps of dead members only read the sockets those never
 * held); this process adds holders itself (fork, spawn) and not while in
 * a call.  A holder that just left the set may still hold the lock:
 * hence the lock word's check, whose acquire pairs with the release of
 * that holder's unlock.  A signal handler's call on s meanwhile: see
 * alone_begin() in core_data.c.  The robust lock/unlock pair was 5% of a
 * 64 B send().
 */
static inline bool fs_alone(struct isosock_app *app, int s, struct fsock *f)
{
	const struct mset *h = fs_holders(app, s);

	if (!__atomic_load_n(&__libc_single_threaded, __ATOMIC_RELAXED))
		return false;
	for (int k = 0; k < MSET_WORDS; k++) {
		uint64_t mine = k == app->me / 64 ? UINT64_C(1) << (app->me % 64) : 0;

		/* Relaxed: written only under the lock, whose word is read below. */
		if (__atomic_load_n(&h->w[k], __ATOMIC_RELAXED) != mine)
			return false;
	}
	return __atomic_load_n(&f->lock.__data.__lock, __ATOMIC_ACQUIRE) == 0;
}

/*
 * What a blocked thread waits for, besides a reply or any status entry:
 * rx_need bytes readable past rx_cons, tx_need bytes free past tx_prod.
 * The thresholds are relative to the private indices the caller decided
 * on (under f->lock), never to a fresh snapshot of the shared ones, so a
 * move between the caller's check and the sleep is never missed.
 */
struct want {
	uint32_t rx_need, tx_need;
};

/* ---- core.c: status ring, commands and waiting ---- */

/* Under f->lock: handles every status entry posted to slot s. */
void isosock__drain(struct isosock_app *app, int s, struct fsock *f);
/* Readies id s for a new socket: its lock (first use of the id) and the
 * application's view of its rings (extents mapped).  0 or -errno. */
int isosock__fs_prepare(struct isosock_app *app, int s);
/* A fork child: the parent's threads asleep with sleep_any are not ours. */
void isosock__sleep_any_reset(void);
/* Ids used so far: loops over sockets stop there. */
static inline uint32_t isosock__hiwat(const struct isosock_app *app)
{
	return atomic_load_explicit(&app->sh->hiwat, memory_order_acquire);
}
void isosock__fs_fresh(struct isosock_app *app, struct fsock *f, enum fstate state,
		       uint32_t tx_prod, uint32_t rx_cons);
/* Reaps the CLOSING slots whose CLOSE reply came (sweeps first). */
void isosock__reap_all(struct isosock_app *app);
int isosock__post(struct isosock_app *app, int s, struct isostack_shm_cmd *c);
struct rep *isosock__rep_new(struct isosock_app *app, struct fsock *f, int s,
			     struct isostack_shm_cmd *c);
int isosock__wait_moved(struct isosock_app *app, int s, struct fsock *f, struct rep *r,
			int64_t deadline_ns, struct want want);
/* Waits for nothing but a reply or a status entry. */
extern const struct want isosock__want_reply;
int64_t isosock__deadline_of(int64_t timeo_ns);
int isosock__call(struct isosock_app *app, int s, struct fsock *f, struct isostack_shm_cmd *c,
		  struct isostack_shm_status *out, int64_t deadline);
int isosock__simple_call(struct isosock_app *app, int s, struct isostack_shm_cmd *c,
			 struct isostack_shm_status *out);

/* ---- core_attach.c ---- */

void isosock__bind_shm(struct isosock_app *app);
void isosock__own_wake_fd(struct isosock_app *app, int member);

/* ---- core_twake.c ---- */

/* At the creation of an attachment (this process's view of it). */
void isosock__twake_init(struct isosock_app *app);
/* This thread's own wake_mask bit for app (registering it with its fd
 * the first time), or -1: it shares the process's bit and fd. */
int isosock__twake_bit(struct isosock_app *app);
/* This thread's own wake fd for app if it has one, else -1. */
int isosock__twake_fd(const struct isosock_app *app);
bool isosock__twake_private(const struct isosock_app *app, int fd);
void isosock__twake_moved(struct isosock_app *app, int fd, int nfd);
void isosock__twake_fork_child(struct isosock_app *app);

/* ---- core_members.c ---- */

int isosock__fshared_create(struct isosock_app *app, uint32_t nsocks);
void isosock__sweep(struct isosock_app *app);

/* ---- core_conn.c ---- */

void isosock__addr_out(const struct isostack_shm_status *st, struct sockaddr *addr,
		       socklen_t *len);

/* ---- core_data.c ---- */

int isosock__maybe_post_send(struct isosock_app *app, int s, struct fsock *f, bool more);
uint32_t isosock__tx_free(struct isosock_app *app, int s, struct fsock *f);
uint32_t isosock__rx_avail(struct isosock_app *app, int s, struct fsock *f);
int isosock__udp_next(struct isosock_app *app, int s, struct fsock *f,
		      struct isostack_shm_dgram *h);

#endif /* ISOSOCK_CORE_INTERNAL_H */
