/*
 * isoshm: the shared-memory transport between applications (the shim) and
 * the stack core (the daemon).  The wire format is include/isostack/shm_abi.h;
 * this header is the project-internal API on top of it.
 *
 * Two views of one segment:
 *   struct isoshm_stack  the daemon's view.  Created with isoshm_stack_create()
 *                        (memfd, hugepages if possible, NUMA-bound, size-sealed),
 *                        its fd sent to the application with isoshm_send_fd().
 *                        Everything it reads from the segment is validated by
 *                        an isoshm_validate_*() function and counted when bad.
 *   struct isoshm_app    the application's view, from isoshm_app_attach() on
 *                        the received fd (header checked).
 *
 * Flow of one command: the application enqueues it on the socket's command
 * ring and rings the doorbell of the core it runs on, unless that socket
 * already has an undrained ring (isoshm_app_submit); the stack scans the
 * doorbells (isoshm_stack_poll, O(cores), independent of the number of
 * sockets), then reads the validated commands of each socket it found
 * (isoshm_stack_recv_cmds) and answers on the status ring
 * (isoshm_stack_post_status), which wakes a sleeping application thread
 * only when that thread announced it sleeps (isoshm_app_wait).
 *
 * Threading: each ring has one producer and one consumer.  On the stack side
 * that is the one dispatcher thread.  On the application side, callers
 * serialise per socket (the shim holds the socket's lock); doorbells are
 * shared by all threads on a core and isoshm_app_submit locks them itself.
 *
 * All functions return 0, a count, or -errno.
 */
#ifndef ISOSHM_H
#define ISOSHM_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "isostack/shm_abi.h"
#include "isoshm_ring.h"

/* ---- Parameters chosen by the daemon, recorded in the header ---------- */

struct isoshm_params {
	uint32_t max_sockets;     /* socket ids incl. control id 0: [2, 2^20] */
	uint32_t nr_doorbells;    /* usually the number of CPUs: [1, 1024] */
	uint32_t cmd_entries;     /* power of two [2, 65536] */
	uint32_t status_entries;  /* power of two [2, 65536] */
	uint32_t max_ring_bytes;  /* largest ring placed: power of two [4 KiB, 1 GiB] */
	uint64_t arena_size;      /* address space for extents, whole 2 MiB units */
	int numa_node;            /* bind here; -1: no binding */
	bool hugetlb;             /* try 2 MiB hugepages for extents first */
	uint32_t app_id;          /* recorded in the header, for logs */
	uint32_t variant;         /* ISOSTACK_SHM_VARIANT_*; Basic and Aggregate
				   * want nr_doorbells = threads to serve */
};

/* Basic and Aggregate: a doorbell per application thread. */
static inline bool isoshm_variant_per_thread(uint32_t variant)
{
	return variant == ISOSTACK_SHM_VARIANT_BASIC || variant == ISOSTACK_SHM_VARIANT_AGGREGATE;
}

/* Defaults: 65536 ids, one doorbell per online CPU, 4-entry command and
 * 8-entry status rings, rings up to 256 KiB, a 16 GiB arena, no NUMA
 * binding, hugepages on. */
void isoshm_params_default(struct isoshm_params *p);

/* Computed layout (the offsets of the header).  Returns 0 or -EINVAL for
 * out-of-range parameters (see struct isoshm_params), -EOVERFLOW if the
 * segment would exceed 64 GiB. */
int isoshm_layout(const struct isoshm_params *p, uint32_t page_size,
		  struct isostack_shm_header *out);

/* ---- Logging (warnings such as the hugepage fallback) ----------------- */

enum { ISOSHM_LOG_ERR = 3, ISOSHM_LOG_WARNING = 4, ISOSHM_LOG_INFO = 6 };
typedef void (*isoshm_log_fn)(int level, const char *msg);
/* Default writes "isoshm: <msg>" to stderr.  NULL restores the default. */
void isoshm_set_log(isoshm_log_fn fn);

/* ---- Counters of the stack's view ------------------------------------- */

struct isoshm_stats {
	uint64_t bad_index;      /* ring index moved backwards / jumped / overtook */
	uint64_t bad_sock;       /* socket id out of range or wrong ring */
	uint64_t bad_opcode;     /* unknown command opcode */
	uint64_t bad_cmd;        /* flags, nonzero unused args, lengths, values */
	uint64_t bad_arg;        /* caller passed a bad argument (daemon bug) */
	uint64_t doorbells;      /* doorbell entries drained */
	uint64_t cmds;           /* valid commands read */
	uint64_t wakes;          /* FUTEX_WAKE calls made */
	uint64_t tx_offers;      /* TX rings offered */
	uint64_t tx_switches;    /* TX offers taken (by the application or for it) */
	uint64_t rx_moves;       /* RX rings moved */
	uint64_t faults;         /* SIGBUS caught in the application's memory
				  * (a hole it punched, no page to refill it):
				  * the application is broken (guard.c) */
};

struct isoshm_span {
	uint64_t off;            /* byte offset in the segment */
	void *addr;              /* the same, in this process */
	uint32_t len;
};

/* ---- Stack (daemon) side ---------------------------------------------- */

struct isoshm_stack;

/*
 * Creates and maps a segment, binds it to p->numa_node, prefaults it,
 * writes the header and seals its size (an application can't shrink the
 * file under the daemon).  Tries MFD_HUGETLB first when p->hugetlb, falls
 * back to normal pages with a logged warning.
 * Returns 0 and *out, or -EINVAL (params), -EOVERFLOW, -ENOMEM, -ENODEV
 * (numa_node given but no such node / no NUMA support), or the errno of
 * memfd_create/ftruncate/mmap/fcntl/mbind.  Nothing to free on failure.
 */
int isoshm_stack_create(struct isoshm_stack **out, const struct isoshm_params *p);
/* Unmaps, closes the fd.  NULL is a no-op. */
void isoshm_stack_destroy(struct isoshm_stack *s);

int isoshm_stack_fd(const struct isoshm_stack *s);
const struct isostack_shm_header *isoshm_stack_header(const struct isoshm_stack *s);
void *isoshm_stack_base(const struct isoshm_stack *s);
/* Start of the arena in the daemon: span offsets are relative to it. */
void *isoshm_stack_arena(const struct isoshm_stack *s);
const struct isoshm_stats *isoshm_stack_stats(const struct isoshm_stack *s);

/*
 * Scans every doorbell ring once and returns up to n socket ids with new
 * commands (duplicates possible if the application misbehaves).  Marks
 * each returned socket drained, so the application rings it again for
 * commands enqueued after this call; the caller then reads each socket's
 * commands.  Cost O(nr_doorbells) when idle (one cache-local load each).
 * Ids out of range are dropped and counted (bad_sock).
 * Returns the count, or -EPROTO if a doorbell index is corrupt (the
 * application is broken: the daemon drops it; counted in bad_index).
 */
int isoshm_stack_poll(struct isoshm_stack *s, uint32_t *socks, uint32_t n);

/*
 * Reads up to n commands of socket `sock`, each validated by
 * isoshm_validate_cmd() after being copied to cmds[] (the application can't
 * change them afterwards).  Stops before the first invalid entry; if the
 * first one is invalid it is consumed, copied to cmds[0] (so the daemon can
 * answer its cookie) and its error returned.
 * Returns the count of valid commands, or
 *   -EINVAL/-ENOTSUP/-EBADSLT: cmds[0] was invalid (see isoshm_validate_cmd),
 *   -EPROTO: the command ring indices are corrupt (the socket is broken
 *            for good; every later call returns -EPROTO),
 *   -EBADF: sock out of range (daemon bug).
 */
int isoshm_stack_recv_cmds(struct isoshm_stack *s, uint32_t sock,
			   struct isostack_shm_cmd *cmds, uint32_t n);

/* Posts up to n status entries, then wakes the socket's sleepers (and the
 * app-wide ones) if any announced sleep.  Returns count or -EPROTO/-EBADF. */
int isoshm_stack_post_status(struct isoshm_stack *s, uint32_t sock,
			     const struct isostack_shm_status *st, uint32_t n);

/* TX: the validated bytes written by the application and not yet released,
 * as up to two spans (the second when the data wraps).  Returns the total
 * byte count, or -EPROTO/-EBADF. */
int isoshm_stack_tx_peek(struct isoshm_stack *s, uint32_t sock, struct isoshm_span span[2]);
/* Releases n TX bytes (acked by the peer); n <= the last peek's total.
 * While an offer holds tx_cons back (isoshm_stack_tx_offer) the release
 * is published only once the ring is empty.  Returns 0 (published), 1
 * (held back) or -EINVAL/-EBADF. */
int isoshm_stack_tx_release(struct isoshm_stack *s, uint32_t sock, uint32_t n);

/*
 * Ring moves (shm_abi.h, struct isostack_shm_sockdir).  The caller owns
 * the ring memory: it allocates the new ring and frees the old one when
 * a call says the socket left it.
 *
 * isoshm_stack_tx_peek() returns ISOSHM_TX_SWITCHED when the application
 * took the open offer: the view now uses the offered ring (everything of
 * the old one was released), the caller frees the old ring and peeks
 * again.  An application that took it while the old ring held bytes
 * breaks the socket (-EPROTO).
 */
#define ISOSHM_TX_SWITCHED (-EXDEV)
/* Offers the ring at arena offset off (bytes, in extent ext) for TX, or
 * none (bytes 0: off and ext are ignored; an idle socket's).
 * hold: publish tx_cons only when the ring is empty until it is taken (a
 * larger ring for a writer that keeps the old one full).  Returns 0,
 * -EBUSY (an offer is open), -EINVAL (ring outside its extent), -EBADF. */
int isoshm_stack_tx_offer(struct isoshm_stack *s, uint32_t sock, uint64_t off,
			  uint32_t bytes, uint32_t ext, bool hold);
/* Takes the open offer for an idle application: only if the TX ring is
 * empty and no write is under way (sock.tx_busy).  The caller must have
 * issued isoshm_membarrier_global() (successfully) after the offer was
 * made: applications order tx_busy and tx_gen with a compiler barrier
 * only.  Returns 1 (switched: free the old ring), 0 (not now, or no
 * offer) or -errno. */
int isoshm_stack_tx_take(struct isoshm_stack *s, uint32_t sock);
/*
 * Watching tx_prod (shm_abi.h, sockdir.tx_watch): while the stack watches
 * a socket the application posts no SEND for new bytes, so the stack must
 * look at tx_prod itself.  isoshm_stack_tx_watch() says it watches from
 * now on; isoshm_stack_tx_moved() is the look (a hint: peek to take the
 * bytes).  Stopping takes two steps around a barrier:
 * isoshm_stack_tx_unwatch() says it no longer watches; then the caller
 * issues isoshm_membarrier_global() (applications order their side with
 * a compiler barrier only, as for tx_busy), and only after it succeeded
 * isoshm_stack_tx_unwatched() looks once more: 1 if bytes came that the
 * stack has not peeked (the caller takes them as for a SEND: their writer
 * may have seen the watch and posted none), 0 if not, -EBADF.  Where the
 * barrier failed the caller must watch on (isoshm_stack_tx_watch again).
 * A socket whose bytes no longer matter (closed, dead) needs no barrier.
 */
int isoshm_stack_tx_watch(struct isoshm_stack *s, uint32_t sock);
bool isoshm_stack_tx_moved(struct isoshm_stack *s, uint32_t sock);
int isoshm_stack_tx_unwatch(struct isoshm_stack *s, uint32_t sock);
int isoshm_stack_tx_unwatched(struct isoshm_stack *s, uint32_t sock);
/* Asymmetric fences (membarrier.c).  The application side registers (at
 * attach, after fork and exec): 0, or -ENOSYS (it keeps full fences).
 * The stack side makes every running thread of every registered process
 * execute a full barrier: 0 or -errno (then it must take no offer). */
int isoshm_membarrier_register(void);
int isoshm_membarrier_global(void);

/* Moves RX to the ring at off (bytes, extent ext), or to none (bytes 0:
 * an idle socket's; nothing can be written until the next move): only
 * while the RX ring is empty.  Returns 0 (moved: free the old ring),
 * -EBUSY (bytes unread), -EINVAL, -EBADF, -EPROTO. */
int isoshm_stack_rx_move(struct isoshm_stack *s, uint32_t sock, uint64_t off,
			 uint32_t bytes, uint32_t ext);

/* RX: free space, validated.  Returns bytes or -EPROTO/-EBADF. */
int isoshm_stack_rx_space(struct isoshm_stack *s, uint32_t sock);
/* Copies up to len bytes into the RX ring, publishes and wakes sleepers.
 * Returns bytes written or -EPROTO/-EBADF. */
int isoshm_stack_rx_write(struct isoshm_stack *s, uint32_t sock, const void *buf, uint32_t len);

/*
 * Opens socket id `sock` on the rings `d` places (the caller allocated
 * them in extents of this segment; each must lie inside one).  The first
 * time an id is used its command and status views are bound and their
 * pages faulted in.  Both rings start empty at the application's own
 * indices (tx_prod, rx_cons: unsent TX of an earlier socket of the id is
 * dropped), returned in d->tx_start and d->rx_start.  Then publishes d in
 * the directory; the caller posts the status that names the id afterwards.
 * A ring of 0 bytes is none (as an idle socket's).  Returns 0, -EBADF
 * (id out of range), -EINVAL (d outside its extent or not a power of
 * two), -EPROTO (the id's rings were found corrupt).
 */
int isoshm_stack_sock_open(struct isoshm_stack *s, uint32_t sock,
			   struct isostack_shm_sockdir *d);
/* True once an index of the id's rings was found corrupt (never reused). */
bool isoshm_stack_sock_broken(const struct isoshm_stack *s, uint32_t sock);

/* ---- Extents (stack side; see shm/extent.c) ---------------------------- */

/* Adds an extent of size bytes (whole 2 MiB units) to the arena, backed
 * and prefaulted.  Returns 0 and *id, -ENOSPC (arena full), -ENOMEM or
 * -errno of memfd/fallocate/mmap. */
int isoshm_stack_extent_new(struct isoshm_stack *s, uint64_t size, uint32_t *id);
/* Gives an unused extent's pages back (mappings stay).  0 or -errno. */
int isoshm_stack_extent_release(struct isoshm_stack *s, uint32_t id);
/* Allocates and prefaults a released extent again.  0 or -errno. */
int isoshm_stack_extent_refill(struct isoshm_stack *s, uint32_t id);
/* fd, arena offset and size of extent id.  Returns 1 (hugepages), 0
 * (normal pages) or -ENOENT. */
int isoshm_stack_extent_get(struct isoshm_stack *s, uint32_t id, int *fd,
			    uint64_t *off, uint64_t *size);

/* Wakes sleepers of `sock` (and app-wide ones) if they announced sleep.
 * Returns 1 if a FUTEX_WAKE was issued, else 0. */
int isoshm_stack_notify(struct isoshm_stack *s, uint32_t sock);
/* Whether an application thread announced a wait on `sock` or on the
 * app-wide point, read after a full fence that orders everything the
 * caller published before (tx_cons by isoshm_stack_tx_release): call it
 * after publishing, to decide whether to post an event.  false for an id
 * out of range.  A hint: a lying application only gets extra events. */
bool isoshm_stack_waiters(struct isoshm_stack *s, uint32_t sock);
/* The socket's wake_mask (application-written hint: which processes sleep
 * on it); 0 for a bad socket.  Read after a notify, whose fence orders it
 * after the publication. */
uint64_t isoshm_stack_wake_mask(struct isoshm_stack *s, uint32_t sock);

/* ---- Validation of what the stack reads from an application --------- */

/* Command entry (a private copy) read from socket `sock`'s ring: opcode
 * known (-ENOTSUP), sock matches the ring and SOCKET only on slot 0
 * (-EBADSLT), flags zero, unused args zero, lengths and values in range
 * (-EINVAL).  Returns 0 or that error. */
int isoshm_validate_cmd(uint32_t max_sockets, uint32_t sock, const struct isostack_shm_cmd *c);
/* Socket id from a doorbell: 0 or -EBADSLT. */
int isoshm_validate_sock_id(uint32_t max_sockets, uint32_t sock);

/* ---- Application side --------------------------------------------------- */

struct isoshm_app;

struct isoshm_attach_info {
	uint64_t size;           /* bytes mapped */
	uint32_t page_size;
	bool hugetlb;
	int numa_node;           /* node the daemon bound it to, -1 none */
	int numa_node_actual;    /* node of the first page as reported by the
				  * kernel, -1 if unknown */
};

/*
 * Maps the segment received as fd and checks the header: magic, ABI
 * version, header size, feature bits, parameters and that every offset
 * matches the layout the parameters imply and fits the file.  Reserves
 * the arena (address space only).
 * Takes ownership of fd on success (closed by detach); on failure the
 * caller still owns it.  Returns 0 or -EPROTO (bad header), -EPROTONOSUPPORT
 * (version or unknown feature), -ENOMEM, or the errno of fstat/mmap.
 */
int isoshm_app_attach(struct isoshm_app **out, int fd, struct isoshm_attach_info *info);
/* An address range of size bytes for a mapping of the application's that
 * an exec'd image must map again at the same address (the shim's shared
 * state too): away from where the kernel places an image's libraries and
 * heap.  A hint for mmap(MAP_FIXED_NOREPLACE); never reused. */
void *isoshm_app_place(uint64_t size);
/* Unmaps and closes this process's mapping and fds.  Other processes of
 * the application (fork) keep theirs: the view is shared, not freed. */
void isoshm_app_detach(struct isoshm_app *a);

/*
 * exec() support.  The view (struct isoshm_app and its ring positions) is
 * shared by the processes fork() makes; an exec'd image that inherited the
 * two fds (seg_fd, view_fd, without FD_CLOEXEC) maps both again at the
 * addresses they had, so every pointer in the view stays valid, and gets
 * the same struct isoshm_app back.  The fd numbers must be the ones the
 * view records.  Returns 0, -EEXIST (an address is taken in the new
 * image), -EPROTO (not a view of that segment), or -errno of mmap/fstat.
 */
int isoshm_app_adopt(struct isoshm_app **out, void *view, int view_fd, int seg_fd);
void isoshm_app_fds(const struct isoshm_app *a, int *seg_fd, int *view_fd);
/* The segment or view fd now has number `to` (the shim moved it out of
 * the way of an application's dup2). */
void isoshm_app_fd_moved(struct isoshm_app *a, int from, int to);
/* Undoes isoshm_app_adopt's mappings; the fds stay open. */
void isoshm_app_unmap(struct isoshm_app *a);

/* The header check attach runs, on a private copy of the header, for a
 * file of file_size bytes.  Returns 0, -EPROTO or -EPROTONOSUPPORT. */
int isoshm_validate_header(const struct isostack_shm_header *h, uint64_t file_size);

const struct isostack_shm_header *isoshm_app_header(const struct isoshm_app *a);
/* Start of the mapping in this process: the header's offsets are relative
 * to it (the front-end reads ring indices and ring bytes in place). */
void *isoshm_app_base(const struct isoshm_app *a);
/* FUTEX_WAIT calls made by isoshm_app_wait() so far (all threads). */
uint64_t isoshm_app_sleeps(const struct isoshm_app *a);

/*
 * Enqueues up to n commands on `sock`'s command ring, then rings the
 * doorbell of the calling thread's core unless the socket's previous ring
 * has not been drained yet.  Returns the count enqueued (0: ring full),
 * -EBADF (sock out of range), -EPROTO (the stack's index is corrupt),
 * or the extent fetch's error when the socket's rings could not be mapped
 * (-ENOBUFS from the shim's: the daemon did not answer in time).
 */
int isoshm_app_submit(struct isoshm_app *a, uint32_t sock,
		      const struct isostack_shm_cmd *cmds, uint32_t n);
/* The same, ringing doorbell `db` (tests and benchmarks pin it). */
int isoshm_app_submit_db(struct isoshm_app *a, uint32_t sock, uint32_t db,
			 const struct isostack_shm_cmd *cmds, uint32_t n);

/* Dequeues up to n status entries.  Returns count, -EBADF, -EPROTO, or
 * the extent fetch's error (as isoshm_app_submit). */
int isoshm_app_recv_status(struct isoshm_app *a, uint32_t sock,
			   struct isostack_shm_status *st, uint32_t n);
/* Copies up to len bytes into the TX ring and publishes them (the stack
 * sees them at the next OP_SEND or whenever it peeks).  Returns bytes
 * written (0: full), -EBADF, -EPROTO, or the extent fetch's error. */
int isoshm_app_tx_write(struct isoshm_app *a, uint32_t sock, const void *buf, uint32_t len);
/* Copies up to len received bytes out and releases them.  Returns bytes,
 * -EBADF, -EPROTO, or the extent fetch's error. */
int isoshm_app_rx_read(struct isoshm_app *a, uint32_t sock, void *buf, uint32_t len);
/* Status entries waiting (>= 0) or -EBADF/-EPROTO; for wait predicates. */
int isoshm_app_status_avail(struct isoshm_app *a, uint32_t sock);
int isoshm_app_rx_avail(struct isoshm_app *a, uint32_t sock);
/*
 * Extents: the fd of extent `id`, with its arena offset and size, from the
 * daemon (the shim asks over the control socket).  Returns the fd (the
 * callee closes it) or -errno.  Set once per attachment (and again after
 * exec adoption: the function's address may differ).
 */
typedef int (*isoshm_extent_fetch_fn)(void *arg, uint32_t id, uint64_t *off, uint64_t *size);
void isoshm_app_set_fetch(struct isoshm_app *a, isoshm_extent_fetch_fn fn, void *arg);

/*
 * Opens the application's view of socket id `sock` after the status that
 * named it (SOCKET or ACCEPT reply): reads and checks its directory entry,
 * maps the extents it names in this process (fetch), binds the rings:
 * TX at our tx_prod, RX at our rx_cons, commands and status where they
 * stood.  Returns 0, -EBADF (id out of range), -EPROTO (entry impossible)
 * or the fetch's error.
 */
int isoshm_app_sock_open(struct isoshm_app *a, uint32_t sock);
/* Ring sizes of an open socket (0 if not open, or the ring is none: an
 * idle socket's, shm_abi.h). */
uint32_t isoshm_app_tx_size(struct isoshm_app *a, uint32_t sock);
uint32_t isoshm_app_rx_size(struct isoshm_app *a, uint32_t sock);
/* True while the stack offers a TX ring this socket has not taken (its
 * next write takes it): a socket whose ring is none is writable then. */
bool isoshm_app_tx_offered(struct isoshm_app *a, uint32_t sock);
/* After a write (isoshm_app_tx_write published tx_prod): true while the
 * stack watches tx_prod, so the bytes need no SEND (shm_abi.h,
 * sockdir.tx_watch).  Its barrier TW1 is a compiler barrier where the
 * process registered for membarrier, else a full fence. */
bool isoshm_app_tx_watched(struct isoshm_app *a, uint32_t sock);
/* Says the application holds its TX bytes back (MSG_MORE, TCP_CORK) or no
 * longer does (shm_abi.h, sock.tx_hold): hold before the write of the
 * bytes it covers, stop before isoshm_app_tx_watched(). */
void isoshm_app_tx_hold(struct isoshm_app *a, uint32_t sock, bool hold);
/* Copies n RX bytes at free-running position pos without consuming them.
 * Returns 0 or -EBADF. */
int isoshm_app_rx_peek(struct isoshm_app *a, uint32_t sock, uint32_t pos, void *buf, uint32_t n);
/*
 * The notification ring: calls fn(arg, id) for each socket id the stack
 * named since *cursor, and moves *cursor on.  Returns 0, or 1 if some were
 * lost (the reader fell more than a ring behind): then look at every
 * socket.  isoshm_app_notes_now gives a cursor that starts from now.
 */
int isoshm_app_notes(struct isoshm_app *a, uint32_t *cursor,
		     void (*fn)(void *arg, uint32_t sock), void *arg);
uint32_t isoshm_app_notes_now(struct isoshm_app *a);
/* The socket's shared block (its index words), NULL if out of range. */
struct isostack_shm_sock *isoshm_app_sock(struct isoshm_app *a, uint32_t sock);

/*
 * Spin-then-sleep until ready(arg) returns true.  Polls ready() up to
 * `spin` times (for at most 50 us, yielding the CPU between polls: the
 * thread that makes us ready may share our core), then announces sleep on
 * the wait point of `sock` (or the
 * app-wide one for ISOSHM_WAIT_ANY), re-checks ready() and FUTEX_WAITs on
 * the stack-written wake word.  timeout_ns < 0 waits forever.
 * Returns 0 (ready), -ETIMEDOUT, -EINTR (signal), -EBADF.
 */
#define ISOSHM_WAIT_ANY UINT32_MAX
int isoshm_app_wait(struct isoshm_app *a, uint32_t sock, bool (*ready)(void *arg),
		    void *arg, uint32_t spin, int64_t timeout_ns);

/* ---- Processes ---------------------------------------------------------- */

/* Field 22 of /proc/PID/stat (start time in clock ticks, never 0 for a
 * live process), or 0 if the process is gone or a zombie (state Z/X: it
 * holds nothing any more).  open/read only: safe in a fork child. */
uint64_t isoshm_proc_start(int32_t pid);

/* ---- Descriptor passing over the AF_UNIX control socket ------------- */

/* Most fds one control message carries (ctl_proto.h: 2 at most today). */
#define ISOSHM_FDPASS_MAX 4

/*
 * Sends one message of len bytes (>= 1) with nfds fds (0..ISOSHM_FDPASS_MAX)
 * attached (SCM_RIGHTS).  flags: 0 or MSG_DONTWAIT; never SIGPIPE.
 * Returns 0, -EINVAL (len 0, too many fds, a negative fd), -EMSGSIZE (sent
 * in part: a stream socket), or -errno of sendmsg (-EPIPE: peer gone).
 * The caller keeps its fds.
 */
int isoshm_send_fds(int sock, const void *buf, size_t len, const int *fds, unsigned nfds,
		    int flags);
/*
 * Receives one message: up to len bytes into buf and up to max_fds
 * (<= ISOSHM_FDPASS_MAX) fds into fds[], O_CLOEXEC, *nfds of them.  flags:
 * 0 or MSG_DONTWAIT.  Returns the bytes (> 0; the caller owns the fds),
 *   0       peer hung up (or an empty record): no fds (any that came are closed),
 *   -EPROTO control data truncated (MSG_CTRUNC) or more than max_fds fds,
 *   -EMSGSIZE the message was longer than len (MSG_TRUNC),
 *   -EINVAL max_fds too large, or -errno of recvmsg (-EAGAIN ...).
 * On every failure *nfds is 0 and every fd that arrived is closed.
 * Control messages other than SCM_RIGHTS (credentials) are ignored.
 */
ssize_t isoshm_recv_fds(int sock, void *buf, size_t len, int *fds, unsigned max_fds,
			unsigned *nfds, int flags);
/* One fd, blocking: isoshm_send_fds(sock, buf, len, &fd, 1, 0). */
int isoshm_send_fd(int sock, int fd, const void *buf, size_t len);
/* isoshm_recv_fds(sock, buf, len, fd, 1, ..., 0); *fd = -1 if none came
 * (a message with two fds fails, -EPROTO, both closed). */
int isoshm_recv_fd(int sock, int *fd, void *buf, size_t len);

#endif /* ISOSHM_H */
