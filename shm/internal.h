/*
 * isoshm internals: the private views both sides keep of a segment.
 * Nothing here is shared memory; the pointers point into the mapping.
 */
#ifndef ISOSHM_INTERNAL_H
#define ISOSHM_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "isoshm.h"
#include "isostack/tls.h"

#define ISOSHM_HUGE_PAGE  (UINT32_C(2) << 20)

/* One side's view of a socket id's four rings. */
struct isoshm_sock_view {
	struct isoshm_ring cmd;     /* app produces, stack consumes */
	struct isoshm_ring status;  /* stack produces, app consumes */
	struct isoshm_ring tx;      /* app produces, stack consumes (bytes) */
	struct isoshm_ring rx;      /* stack produces, app consumes (bytes) */
	uint64_t tx_off;            /* arena offset of the TX ring (private copy) */
	uint32_t tx_ext, rx_ext;    /* extents holding the rings */
	uint32_t wake_seq;          /* stack: private copy of sock.wake_seq */
	/* Ring moves (shm_abi.h, struct isostack_shm_sockdir).  tx_gen: the
	 * offer whose ring the view uses; rx_gen: the RX move it is bound to.
	 * Stack only: tx_offer (the newest offer: == tx_gen when none is
	 * open), its ring, and tx_hold (hold tx_cons back until empty). */
	uint32_t tx_gen, rx_gen;
	uint32_t tx_offer;
	uint64_t tx_offer_off;
	uint32_t tx_offer_bytes, tx_offer_ext;
	bool tx_hold;
	bool bound;                 /* command/status views bound (id used once) */
	bool open;                  /* TX/RX views bound to a socket's rings */
	bool broken;                /* stack: an index was corrupt; never used again */
};

/* An extent of the arena (stack side). */
struct isoshm_extent {
	int fd;
	uint64_t off, size;
	bool backed;                /* pages allocated (not punched out) */
	bool hugetlb;
};

struct isoshm_stack {
	int fd;
	uint8_t *base;
	uint64_t size;
	struct isostack_shm_header hdr;  /* private copy: the stack never reads the shared one */
	struct isostack_shm_wait *wait;
	struct isostack_shm_sock *socks;
	struct isostack_shm_sockdir *dir;
	struct isoshm_sock_view *views;  /* [max_sockets], pages touched on use */
	uint8_t *arena;                  /* hdr.arena_size bytes reserved */
	struct isoshm_extent *ext;       /* [next_ext] */
	uint32_t next_ext, cap_ext;
	uint64_t arena_next;             /* first offset no extent took yet */
	bool hugetlb;                    /* try hugepages for extents */
	bool hugetlb_warned;
	int numa_node;
	struct isoshm_ring *db;          /* [nr_doorbells], consumer views */
	uint32_t app_wake_seq;           /* private copy of wait.wake_seq */
	uint32_t notes_prod;             /* private copy of wait.notes_prod */
	uint32_t *notes;                 /* [hdr.note_entries] */
	bool db_broken;
	uint32_t db_next;                /* per-thread variants: first doorbell of the next scan */
	int guard_base, guard_arena;     /* fault guard slots (guard.c), -1: none */
	struct isoshm_stats stats;
};

/*
 * The application's view lives in memory shared by every process of the
 * application (a memfd mapped MAP_SHARED, see isoshm_app_attach): after
 * fork() the processes drive the same rings, so the producer/consumer
 * positions (struct isoshm_ring.mine) and the doorbell locks must be one
 * copy, not one per process.  The pointers in it point into the segment,
 * which fork maps at the same address (and exec re-adoption re-maps there,
 * see isoshm_app_adopt).
 */
struct isoshm_app {
	int fd;                          /* segment memfd (per process: same number after fork) */
	int view_fd;                     /* memfd of this structure */
	uint64_t view_size;
	uint8_t *base;
	uint64_t size;
	struct isostack_shm_header hdr;  /* validated private copy */
	struct isostack_shm_wait *wait;
	struct isostack_shm_sock *socks;
	struct isostack_shm_sockdir *dir;
	const uint32_t *notes;           /* [hdr.note_entries] */
	uint8_t *arena;                  /* reserved at attach; same address in
					  * every process of the application */
	struct isoshm_sock_view *views;  /* [max_sockets] */
	struct isoshm_ring *db;          /* [nr_doorbells], producer views */
	_Atomic uint64_t *db_owner;      /* [nr_doorbells]: producer lock (dblock.c), 0 free */
	_Atomic uint64_t sleeps;         /* FUTEX_WAIT calls, any thread */
};

void isoshm__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define ISOSHM_MAX_SOCKETS (UINT32_C(1) << 20)
#define ISOSHM_NOTE_ENTRIES 16384u

/* Binds the doorbell views; `stack` picks roles.  Returns 0 or -EPROTO if
 * shared indices disagree (not a fresh segment). */
int isoshm__db_views_init(uint8_t *base, const struct isostack_shm_header *h, bool stack,
			  struct isoshm_ring *db);
/* Binds the command and status views of socket id `id` (its first use). */
void isoshm__ctl_views_bind(uint8_t *base, const struct isostack_shm_header *h, bool stack,
			    uint32_t id, struct isoshm_sock_view *v);
/* Reserves size bytes of address space (PROT_NONE), 2 MiB aligned, or at
 * exactly `at`.  Returns it or NULL (errno set). */
void *isoshm__arena_reserve(void *at, uint64_t size);

/* The fault guard (guard.c), stack side: [addr, addr + len) is a mapping
 * shared with an application; a SIGBUS in it replaces the faulting unit
 * (a power of two) of our mapping with anonymous memory and is counted.
 * Returns a slot (>= 0) or -ENOSPC / the -errno of sigaction. */
int isoshm__guard_add(const void *owner, const void *addr, uint64_t len, uint64_t unit);
void isoshm__guard_del(int slot);
/* Faults caught in the slot's range since it was added. */
uint64_t isoshm__guard_faults(int slot);
int isoshm__bind_numa(uint8_t *base, uint64_t size, int node);
/* Stack side: closes every extent's fd (the arena unmap drops the maps). */
void isoshm__extents_free(struct isoshm_stack *s);
/* Application side: this process's record of mapped extents.  ensure maps
 * extent `id` if this process has not yet (0 or -errno); forget drops the
 * record (detach, unmap). */
int isoshm__app_extent_ensure(struct isoshm_app *a, uint32_t id);
void isoshm__app_extents_forget(const struct isoshm_app *a);
bool isoshm__app_extent_mapped(const struct isoshm_app *a, uint32_t id);

/* Once per process, at attach or exec adoption, before any socket is
 * used: the cached pid and the membarrier registration, both renewed in
 * fork children (app.c). */
void isoshm__app_process_init(void);

/* The doorbell producer lock (dblock.c).  Its word is isoshm__db_word()
 * of the owner (pid, start time), 0 when free.  db_lock spins, and takes
 * over from an owner that isoshm__db_owner_dead() says is gone, a zombie,
 * or not the process its pid now names. */
#define ISOSHM_DB_PID_BITS 22
uint64_t isoshm__db_word(int32_t pid, uint64_t start);
uint64_t isoshm__db_self(void);
void isoshm__db_self_reset(void);
bool isoshm__db_owner_dead(uint64_t owner);
void isoshm__db_lock(_Atomic uint64_t *owner);
void isoshm__db_unlock(_Atomic uint64_t *owner);
/* This process registered for the stack's asymmetric barrier (membarrier.c). */
bool isoshm__membarrier_registered(void);

/* FUTEX_WAIT on a shared (not PRIVATE) word; rel may be NULL.
 * Returns 0 (woken or value changed), -ETIMEDOUT or -EINTR. */
int isoshm__futex_wait(_Atomic uint32_t *word, uint32_t val, const struct timespec *rel);
/* FUTEX_WAKE all waiters.  Returns the number woken or -errno. */
int isoshm__futex_wake(_Atomic uint32_t *word);

#endif /* ISOSHM_INTERNAL_H */
