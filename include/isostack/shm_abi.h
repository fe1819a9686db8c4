/*
 * isostack shared-memory ABI: the bytes an application and the stack core
 * exchange.  Per application (one attachment, shared by the processes its
 * fork() makes) there is
 *   - one base segment: a memfd the daemon creates at attach and passes
 *     over the AF_UNIX control socket with SCM_RIGHTS (ctl_proto.h).  It
 *     holds the per-socket control blocks, indexed by socket id, and is
 *     sized for `max_sockets` ids but sparse: a page is backed only once
 *     the socket ids it serves are used (docs/shm.md);
 *   - an arena: a range of address space both sides reserve, `arena_size`
 *     bytes, into which the daemon places extents (memfds of whole 2 MiB
 *     units, hugepages when there are any) as sockets need ring memory.
 *     The application maps an extent when a socket names it first; it asks
 *     for the fd with ISOSTACK_CTL_EXTENT.  Every ring reference is an
 *     offset in the arena, never a pointer.
 *
 * What flows:
 *   - per socket id, a command ring (application -> stack) and a status
 *     ring (stack -> application) of fixed 64-byte entries, in the base
 *     segment; a TX byte ring the application fills and the NIC reads (the
 *     stack only hands out offsets), and an RX byte ring the stack fills
 *     and the application drains, both in the arena, placed and sized per
 *     socket by the stack and published in the socket's directory entry
 *     (struct isostack_shm_sockdir).  All rings are cyclic and addressed
 *     by free-running 32-bit indices masked on access;
 *   - per CPU core, a doorbell ring carrying only socket ids, on which the
 *     application tells the stack "this socket has new commands" (the
 *     paper's per-CPU notification queues, Iso-Kernel variant).  The stack
 *     finds work by scanning doorbells, never by scanning sockets.  The
 *     evaluation variants Basic and Aggregate (header field `variant`)
 *     give each application thread a doorbell of its own instead, as the
 *     paper's Iso-Basic and Iso-Aggregated did;
 *   - futex words through which the stack wakes application threads that
 *     announced they sleep.
 *
 * Rules every field follows:
 *   - fixed-width integers only; no pointers, fds, bool or enum.  Every
 *     reference is a byte offset (base segment or arena);
 *   - every field has exactly one writer, named by the banner above it.
 *     The application maps everything read-write, so the stack never
 *     trusts a "stack-written" field either: it keeps its own copy in
 *     private memory and only publishes to the segment;
 *   - reserved words are written as zero and ignored, so they can become
 *     fields later without an ABI version bump (io_uring's way).
 *
 * Base segment layout (offsets recorded in the header; the library
 * computes them from the parameters and the application checks they
 * match):
 *
 *   0            struct isostack_shm_header        256 B, read-only after creation
 *   wait_off     struct isostack_shm_wait          app-wide futex wait point
 *   db_ctl_off   struct isostack_shm_doorbell[nr_doorbells]  2 lines each
 *   db_slots_off uint32_t[nr_doorbells][doorbell_entries]    socket ids
 *   notes_off    uint32_t[note_entries]   socket ids the stack posted to
 *   dir_off      struct isostack_shm_sockdir[max_sockets]     ring placement, 64 B
 *   socks_off    struct isostack_shm_sock[max_sockets]        2 lines each
 *   cmd_off      struct isostack_shm_cmd[max_sockets][cmd_entries]
 *   status_off   struct isostack_shm_status[max_sockets][status_entries]
 *   members_off  struct isostack_shm_member[ISOSTACK_SHM_MEMBERS]  processes
 *   holders_off  struct isostack_shm_holders[max_sockets]         who holds each id
 *   segment_size (multiple of page_size)
 *
 * Socket ids: 0 is the application's control channel; the stack hands out
 * the others (SOCKET, ACCEPT), freed ones first, and reuses an id only
 * after the application has consumed every status of the socket that had
 * it (the CLOSE reply included).  A closed socket's rings go back to the
 * stack when the close completes: the application never touches them
 * after its CLOSE.
 */
#ifndef ISOSTACK_SHM_ABI_H
#define ISOSTACK_SHM_ABI_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define ISOSTACK_SHM_MAGIC        UINT64_C(0x314d48534f534921) /* "!ISOSHM1" */
#define ISOSTACK_SHM_ABI_VERSION  6u
#define ISOSTACK_SHM_CACHE_LINE   64u
/* Extents are whole multiples of this, placed at multiples of it. */
#define ISOSTACK_SHM_EXTENT_UNIT  (UINT64_C(2) << 20)

/*
 * Feature bits in header.features: properties the application must
 * understand to use the segment.  Attach refuses a bit it does not know.
 */
#define ISOSTACK_SHM_FEAT_DOORBELL_SUPPRESS (UINT64_C(1) << 0) /* bell_seq/bell_drained */
#define ISOSTACK_SHM_FEAT_FUTEX_WAIT        (UINT64_C(1) << 1) /* wait points */
#define ISOSTACK_SHM_FEAT_EXTENTS           (UINT64_C(1) << 2) /* rings in arena extents */
#define ISOSTACK_SHM_FEAT_NOTES             (UINT64_C(1) << 3) /* notification ring */
/* Set only in the Basic and Aggregate variants: one doorbell per thread
 * (doorbell 0's `threads`), and in Basic a SEND per send() carrying its
 * length.  An application that does not know it must not attach. */
#define ISOSTACK_SHM_FEAT_THREAD_DOORBELLS  (UINT64_C(1) << 4)
#define ISOSTACK_SHM_FEATURES \
	(ISOSTACK_SHM_FEAT_DOORBELL_SUPPRESS | ISOSTACK_SHM_FEAT_FUTEX_WAIT | \
	 ISOSTACK_SHM_FEAT_EXTENTS | ISOSTACK_SHM_FEAT_NOTES)
#define ISOSTACK_SHM_FEATURES_KNOWN \
	(ISOSTACK_SHM_FEATURES | ISOSTACK_SHM_FEAT_THREAD_DOORBELLS)

/*
 * header.variant: the paper's IsoStack variants (section 5.2), for its
 * evaluation.  Core is the design (per-core doorbells, transmit
 * aggregation at both ends); the others exist to measure what that design
 * buys.  Basic: a doorbell per application thread, every send() posts a
 * SEND carrying its length (arg[0]) and the stack hands exactly those
 * bytes to TCP and transmits at once (no aggregation).  Aggregate: the
 * per-thread doorbells with Core's aggregation.  Lock: Core with an
 * uncontended lock (and its barrier) put back around the device handlers
 * and lwIP's pools, as Iso-Lock did; invisible to the application.
 */
#define ISOSTACK_SHM_VARIANT_CORE       0u
#define ISOSTACK_SHM_VARIANT_AGGREGATE  1u
#define ISOSTACK_SHM_VARIANT_BASIC      2u
#define ISOSTACK_SHM_VARIANT_LOCK       3u
#define ISOSTACK_SHM_VARIANT_MAX        ISOSTACK_SHM_VARIANT_LOCK

/* header.flags: informational, an application may ignore them. */
#define ISOSTACK_SHM_FLAG_HUGETLB  (1u << 0) /* extents on 2 MiB hugepages (the first one) */
#define ISOSTACK_SHM_FLAG_NUMA     (1u << 1) /* bound to header.numa_node */

/* Socket id 0 is the application's control channel: SOCKET commands go
 * there, and the reply carries the id the stack allocated. */
#define ISOSTACK_SHM_CTRL_SOCK     0u

/* ------------------------------------------------------------------------
 * Segment header, at offset 0.
 * ---- written by the stack, once, before the fd is passed; then read-only --
 */
struct isostack_shm_header {
	uint64_t magic;            /* ISOSTACK_SHM_MAGIC */
	uint32_t abi_version;      /* ISOSTACK_SHM_ABI_VERSION */
	uint32_t header_size;      /* sizeof(struct isostack_shm_header) */
	uint64_t features;         /* ISOSTACK_SHM_FEAT_* */
	uint64_t segment_size;     /* bytes of the base segment, multiple of page_size */

	uint32_t max_sockets;      /* socket ids, 0 = control */
	uint32_t nr_doorbells;     /* doorbell rings, one per CPU core */
	uint32_t cmd_entries;      /* per socket, power of two */
	uint32_t status_entries;   /* per socket, power of two */
	uint32_t doorbell_entries; /* per doorbell, power of two >= max_sockets */
	uint32_t max_ring_bytes;   /* largest TX or RX ring the stack places */
	uint64_t arena_size;       /* bytes of address space to reserve for extents */
	uint32_t page_size;        /* base segment page size */
	uint32_t variant;          /* ISOSTACK_SHM_VARIANT_*: how doorbells and SEND work */

	uint64_t wait_off;         /* struct isostack_shm_wait */
	uint64_t db_ctl_off;       /* struct isostack_shm_doorbell[nr_doorbells] */
	uint64_t db_slots_off;     /* uint32_t[nr_doorbells][doorbell_entries] */
	uint64_t dir_off;          /* struct isostack_shm_sockdir[max_sockets] */
	uint64_t socks_off;        /* struct isostack_shm_sock[max_sockets] */
	uint64_t cmd_off;          /* struct isostack_shm_cmd[max_sockets][cmd_entries] */
	uint64_t status_off;       /* struct isostack_shm_status[max_sockets][status_entries] */

	int32_t  numa_node;        /* node the memory is bound to, -1 if none */
	uint32_t flags;            /* ISOSTACK_SHM_FLAG_* */
	uint32_t app_id;           /* daemon-assigned, for logs */
	uint32_t note_entries;     /* notification ring entries, power of two */
	uint64_t notes_off;        /* uint32_t[note_entries]: socket ids */
	uint64_t members_off;      /* struct isostack_shm_member[ISOSTACK_SHM_MEMBERS] */
	uint64_t holders_off;      /* struct isostack_shm_holders[max_sockets] */
	uint64_t reserved[11];
};

/* ------------------------------------------------------------------------
 * Where a socket's TX and RX rings are: offsets in the arena, each inside
 * one extent (the application maps the extent by its id first).  Written
 * by the stack before it publishes the status that names the socket id
 * (the SOCKET or ACCEPT reply), so the application's load-acquire of
 * status_prod orders it.  A ring of size 0 is absent (the control socket).
 *
 * Rings size themselves (docs/shm.md, "Rings that size themselves"): the
 * stack moves a socket to a larger or smaller ring while it is open.
 *   RX: the stack changes the ring only while it is empty (rx_cons ==
 *      rx_prod as it sees them).  It frees the old ring, writes the new
 *      one here with rx_start = the index where it starts (= rx_prod) and
 *      bumps rx_gen (odd while it writes, as for TX, for an application
 *      that opens the socket meanwhile), all before the store-release of
 *      rx_prod that
 *      publishes the first byte written to it.  So an application that
 *      finds bytes to read (load-acquire of rx_prod) and then sees an
 *      rx_gen it has not bound reads them from the new ring, from
 *      rx_start on (= its rx_cons: the old ring was drained).  While
 *      bytes are unread the stack cannot move the ring, so the entry is
 *      stable for as long as the application reads.
 *   TX: the stack never moves the ring under the writer; it *offers* one:
 *      a seqlock: tx_gen odd, then tx_off/tx_bytes/tx_extent, then tx_gen
 *      even (store-release).  A reader waits out an odd value (a few
 *      stores) and re-reads if tx_gen moved, never skipping an offer.  The application adopts an offer at a moment its
 *      TX ring is empty (tx_cons == tx_prod): it binds the new ring at its
 *      tx_prod and stores the offer's generation in sock.tx_gen before
 *      the store-release of tx_prod that publishes the first byte written
 *      to it.  The stack, after each load-acquire of tx_prod, compares
 *      sock.tx_gen with its offer and switches its view at its own
 *      consumer index (everything before it was released: the ring was
 *      empty).  An offer is never withdrawn or rewritten before it was
 *      taken.  An idle socket's offer can be taken by the stack itself:
 *      with the ring empty it bumps tx_gen, fences (seq_cst) and reads
 *      sock.tx_busy; if zero (and tx_prod unmoved) no write is under way
 *      and the next one will see the offer, because the application
 *      stores tx_busy = 1, fences (seq_cst) and only then reads tx_gen.
 *      An application registered for membarrier(GLOBAL_EXPEDITED) may
 *      use a compiler barrier instead of its fence: the stack then issues
 *      membarrier(GLOBAL_EXPEDITED) between its tx_gen and tx_busy
 *      accesses, which runs the fence on the application's threads.
 *   While an offer of a larger ring is open the stack may hold back
 *      tx_cons until the ring is empty, so that a writer that keeps it
 *      full gets an empty ring to switch at.
 * None (ABI 4): a ring of 0 bytes (offset 0, extent 0) is no ring, an
 *      idle socket's.  A view of none has no room and nothing to read;
 *      moving tx_prod or rx_cons on it breaks the socket.  RX moves to
 *      none and away like any empty ring (the stack publishes no byte in
 *      none, so a reader that finds bytes reads them from the ring that
 *      followed), and keeps announcing a window of 4 KiB meanwhile.  TX:
 *      the stack offers none to an idle socket (taken as any offer).  An
 *      application whose write finds none asks for a ring with a SEND that
 *      names no new byte; the stack answers with an offer and EV_TX (the
 *      application waits as for TX space), or retries at its next pass
 *      while no memory can be had.  A socket may open on none either way
 *      (accepted, and idle before the application opened it).
 * tx_start is where the TX ring started at open; the generations run on
 * from socket to socket of an id (0 only before the first open).
 * ---- written by the stack ----
 */
struct isostack_shm_sockdir {
	uint64_t tx_off;           /* arena offset, aligned to tx_bytes */
	uint64_t rx_off;           /* arena offset, aligned to rx_bytes */
	uint32_t tx_bytes;         /* power of two, <= max_ring_bytes; 0: none */
	uint32_t rx_bytes;
	uint32_t tx_extent;        /* id for ISOSTACK_CTL_EXTENT */
	uint32_t rx_extent;
	/* Where both empty rings start when the socket opens: the indices of
	 * an id run on from socket to socket; the stack adopts the
	 * application's tx_prod and rx_cons as they were when it opened the
	 * id, and the application sets its words to these when it opens it
	 * (they agree unless it wrote them meanwhile: then it only confuses
	 * itself).  rx_start moves with each new RX ring. */
	uint32_t tx_start;
	uint32_t rx_start;
	_Atomic uint32_t tx_gen;   /* TX ring offered (bumped per offer) */
	_Atomic uint32_t rx_gen;   /* RX ring in use from rx_start (bumped per move) */
	/*
	 * Nonzero while the stack watches tx_prod (ABI 6; docs/shm.md, "SENDs
	 * the stack does not need"): it looks at tx_prod at every pass and
	 * needs no SEND for new bytes.  On this line because the application
	 * reads tx_gen here at every write: the look costs no other line.
	 *   Application, after the store-release of tx_prod: barrier TW1,
	 *      then load tx_watch; nonzero: no SEND (and no doorbell).  TW1
	 *      is a full fence, or a compiler barrier in a process
	 *      registered for membarrier(GLOBAL_EXPEDITED).
	 *   Stack, to stop watching: store 0, membarrier(GLOBAL_EXPEDITED)
	 *      (it runs TW1's fence on the application's threads) and a full
	 *      fence TW2, then load tx_prod; moved: it takes the bytes as for
	 *      a SEND.  Without a barrier that worked it watches on.
	 * Either the application sees 0 and posts a SEND, or the stack sees
	 * its bytes.  Starting needs no order: a 1 seen late only costs a
	 * SEND.  0 in variant Basic (a SEND per send() names its bytes).
	 */
	_Atomic uint32_t tx_watch;
	uint32_t reserved[3];
};

/* ------------------------------------------------------------------------
 * App-wide wait point: threads blocked in poll/epoll-like waits on any
 * socket of this application.  Same protocol as the per-socket one.
 */
struct isostack_shm_wait {
	/* ---- written by the application ---- */
	_Atomic uint32_t waiters;  /* threads announced asleep (counter) */
	uint32_t reserved_app0;
	/* Processes asleep on their wake fd for any socket (an epoll set too
	 * large to mark socket by socket): bit min(member, 63), as in a
	 * socket's wake_mask.  The stack writes their wake fds whenever it
	 * posted to any socket of the application. */
	_Atomic uint64_t wake_any;
	uint32_t reserved_app[12];
	/* ---- written by the stack ---- */
	_Atomic uint32_t wake_seq; /* futex word; bumped before each FUTEX_WAKE */
	/*
	 * Non-zero while the stack core's loop may sleep (power-saving mode)
	 * on its stack wake fd.  Protocol (a Dekker pair, seq_cst fences on
	 * both sides): the stack sets it, fences, then re-checks every
	 * doorbell and sleeps only if none moved; the application publishes
	 * its doorbell/command, fences, then reads this word and, if set,
	 * writes 1 to the stack wake fd.  Either the stack sees the doorbell
	 * or the application sees the flag.  A hint: an application that
	 * ignores it only waits longer for its own replies.
	 */
	_Atomic uint32_t stack_napping;
	/*
	 * Notification ring (ISOSTACK_SHM_FEAT_NOTES): the stack appends the
	 * id of every socket it posts a status or RX bytes to (a repeat of the
	 * last id is skipped, so a reader looks at the last id at every look,
	 * new or not) at notes_off[notes_prod & (note_entries - 1)],
	 * then publishes notes_prod (store-release).  Any number of readers
	 * follow it with cursors of their own, never consuming: a reader that
	 * finds notes_prod more than note_entries past its cursor (before or
	 * after copying the ids) lost some and must look at every socket.  An
	 * epoll set looks only at the sockets named since its last look (and
	 * those it found ready), not at every socket it watches.
	 */
	_Atomic uint32_t notes_prod;
	uint32_t reserved_stack[13];
};

/* ------------------------------------------------------------------------
 * Per socket id: the indices of its four rings, its doorbell
 * suppression pair and its wait point.  One cache line per writer, so the
 * producer and consumer index of every ring sit on different lines.
 */
struct isostack_shm_sock {
	/* ---- written by the application ---- */
	_Atomic uint32_t cmd_prod;     /* command entries produced */
	_Atomic uint32_t status_cons;  /* status entries consumed */
	_Atomic uint32_t tx_prod;      /* TX bytes written */
	_Atomic uint32_t rx_cons;      /* RX bytes read */
	_Atomic uint32_t bell_seq;     /* doorbells rung for this socket */
	_Atomic uint32_t waiters;      /* threads announced asleep on it */
	/* Processes with a thread asleep on their wake fd (mixed or epoll
	 * waits) that includes this socket: bit min(member, 63) of the
	 * process in the application (CTL_WAKEFD member; the attaching
	 * process is 0).  A hint for which wake fds the stack writes. */
	_Atomic uint64_t wake_mask;
	/* TX ring offers (struct isostack_shm_sockdir): the generation of the
	 * offer whose ring this socket writes, and nonzero while a write into
	 * the TX ring is under way. */
	_Atomic uint32_t tx_gen;
	_Atomic uint32_t tx_busy;
	/* Nonzero while the application holds its TX bytes back (MSG_MORE,
	 * TCP_CORK; ABI 6): a stack that watches tx_prod (sockdir.tx_watch)
	 * leaves the bytes in the ring, as it would without a SEND.  Stored
	 * before the store-release of tx_prod that publishes the bytes it
	 * covers; the application posts a SEND when it stops holding unless
	 * it sees the watch after its fence TW1, and the stack, stopping a
	 * watch, reads it after its fence TW2.  A hint: a lie only keeps the
	 * application's own bytes back. */
	_Atomic uint32_t tx_hold;
	uint32_t reserved_app[5];

	/* ---- written by the stack ---- */
	_Atomic uint32_t cmd_cons;     /* command entries consumed */
	_Atomic uint32_t status_prod;  /* status entries produced */
	_Atomic uint32_t tx_cons;      /* TX bytes released (acked by the peer) */
	_Atomic uint32_t rx_prod;      /* RX bytes written */
	_Atomic uint32_t bell_drained; /* bell_seq seen when the stack last drained */
	_Atomic uint32_t wake_seq;     /* futex word; bumped before each FUTEX_WAKE */
	uint32_t reserved_stack[10];
};

/* ------------------------------------------------------------------------
 * The processes of the application and the sockets each holds
 * (docs/sockets.md, "fork and exec").  The processes fork() and
 * posix_spawn() make share the attachment; each has an entry in the
 * member table, and each socket id a bit set of the entries that hold it
 * (bit i of word i / 64 is member i).  The application keeps both for its
 * own use: the last holder's close() sends CLOSE.  The stack reads them
 * only when a process of the application has died (it watches each pid
 * it was told of: ATTACH is member 0, CTL_WAKEFD names the others), to
 * close, as the kernel does at a process's death, the sockets no living
 * member holds any more (it posts ISOSTACK_SHM_EV_CLOSED on each).
 * Hints: the stack trusts nothing here; a wrong entry can only close or
 * keep open the application's own sockets.
 * ---- written by the application ----
 */
#define ISOSTACK_SHM_MEMBERS 1024u

struct isostack_shm_member {
	/* 0: free; -1: a fork under way; below -1: reserved for a spawned
	 * child (alive for both sides); else the process's pid.  Stored
	 * (release) after start. */
	_Atomic int32_t pid;
	uint32_t reserved;
	/* /proc/PID/stat start time (field 22), telling a reused pid apart;
	 * 0 if unknown. */
	_Atomic uint64_t start;
};

struct isostack_shm_holders {
	_Atomic uint64_t w[ISOSTACK_SHM_MEMBERS / 64];
};

/* ------------------------------------------------------------------------
 * Per-core doorbell ring indices; the entries (uint32_t socket ids) are in
 * the db_slots_off array.
 */
struct isostack_shm_doorbell {
	/* ---- written by the application ---- */
	_Atomic uint32_t prod;
	/* Doorbell 0 only, per-thread variants: doorbells handed to threads
	 * so far (thread k rings doorbell k % nr_doorbells).  The stack scans
	 * min(threads, nr_doorbells) of them. */
	_Atomic uint32_t threads;
	uint32_t reserved_app[14];
	/* ---- written by the stack ---- */
	_Atomic uint32_t cons;
	uint32_t reserved_stack[15];
};

/* ------------------------------------------------------------------------
 * Command entry, application -> stack.  Unused args must be zero (the
 * stack rejects anything else, so they can gain a meaning later).
 * ---- written by the application ----
 */
struct isostack_shm_cmd {
	uint16_t opcode;  /* ISOSTACK_SHM_OP_* */
	uint16_t flags;   /* none defined yet: must be 0 */
	uint32_t sock;    /* socket id; must be the id whose ring holds it */
	uint64_t cookie;  /* opaque to the stack, echoed in the status */
	uint64_t arg[6];
};

/* Status entry, stack -> application: a reply (opcode of the command it
 * answers, same cookie) or an event (ISOSTACK_SHM_EV_*, cookie 0).
 * ---- written by the stack ----
 */
struct isostack_shm_status {
	uint16_t opcode;
	uint16_t flags;
	uint32_t sock;
	uint64_t cookie;
	int64_t  result;  /* >= 0 success value, < 0 -errno */
	uint64_t arg[5];
};

/* Socket addresses travel inline: arg[0] = length, arg[1..4] = bytes: a
 * struct sockaddr_in (16) or, on an AF_INET6 socket, a struct sockaddr_in6
 * (24 to 28 bytes in, 28 out; an IPv4 end as ::ffff:a.b.c.d). */
#define ISOSTACK_SHM_ADDR_MAX   32u
/* Socket option values travel inline: arg[2] = length, arg[3..5] = bytes. */
#define ISOSTACK_SHM_OPT_MAX    24u

/*
 * Command opcodes (the socket protocol the shim speaks).  "args" lists the
 * meaningful arg[] words; all others must be zero.
 */
#define ISOSTACK_SHM_OP_NOP         0  /* no args; replied with result 0 */
#define ISOSTACK_SHM_OP_SOCKET      1  /* on id 0: arg0 domain (AF_INET; AF_INET6 for
					* SOCK_STREAM), arg1 type, arg2 protocol;
					* result = new socket id, or -ENFILE (ids
					* exhausted), -ENOBUFS (memory budget),
					* -EAFNOSUPPORT... */
#define ISOSTACK_SHM_OP_BIND        2  /* arg0 addrlen, arg1..4 sockaddr */
#define ISOSTACK_SHM_OP_LISTEN      3  /* arg0 backlog (0..INT32_MAX) */
#define ISOSTACK_SHM_OP_ACCEPT      4  /* no args; result = new socket id,
					* status arg0 addrlen, arg1..4 peer sockaddr */
#define ISOSTACK_SHM_OP_CONNECT     5  /* arg0 addrlen, arg1..4 sockaddr */
#define ISOSTACK_SHM_OP_SEND        6  /* tx_prod advanced, read it; Basic: arg0 = bytes.
					* On a TX ring of none: asks for a ring
					* (offer + EV_TX, struct isostack_shm_sockdir) */
#define ISOSTACK_SHM_OP_RECV        7  /* no args: rx_cons advanced (window credit) */
#define ISOSTACK_SHM_OP_SHUTDOWN    8  /* arg0 how (SHUT_RD/WR/RDWR) */
#define ISOSTACK_SHM_OP_CLOSE       9  /* no args; the id is free after the reply
					* and the drain of its RX ring */
#define ISOSTACK_SHM_OP_SETSOCKOPT 10  /* arg0 level, arg1 optname, arg2 optlen,
					* arg3..5 value */
#define ISOSTACK_SHM_OP_GETSOCKOPT 11  /* arg0 level, arg1 optname, arg2 optlen max;
					* status result optlen, arg2..4 value */
#define ISOSTACK_SHM_OP_GETSOCKNAME 12 /* no args; status arg0 addrlen, arg1..4 */
#define ISOSTACK_SHM_OP_GETPEERNAME 13 /* no args; status arg0 addrlen, arg1..4 */
#define ISOSTACK_SHM_OP_MAX        13

/* Events, stack -> application only (status opcode space). */
#define ISOSTACK_SHM_EV_RX        0x100 /* rx_prod advanced */
#define ISOSTACK_SHM_EV_TX        0x101 /* tx_cons advanced: TX space freed */
#define ISOSTACK_SHM_EV_CONNECTED 0x102 /* result 0 or -errno (async connect) */
#define ISOSTACK_SHM_EV_INCOMING  0x103 /* a connection waits in accept */
#define ISOSTACK_SHM_EV_HUP       0x104 /* peer closed (FIN) */
#define ISOSTACK_SHM_EV_ERROR     0x105 /* result -errno; the socket is dead */
/* The stack closed the socket itself, as the kernel closes the fds of a
 * process that died: no living member held it (struct
 * isostack_shm_holders), or the application is gone.  Like the CLOSE
 * reply, it is the socket's last status (arg0 = the final rx_prod), its
 * rings go back to the stack, and the id is reused only once the
 * application has consumed it.  The application must not send CLOSE for
 * it; one that crossed the event is answered -EBADF and changes nothing
 * (the id waits until that reply is consumed too). */
#define ISOSTACK_SHM_EV_CLOSED    0x106

/*
 * Datagram sockets (SOCK_DGRAM): the TX and RX byte rings carry records,
 * not a stream.  Each record is this 16-byte header, for an IPv6 address
 * a 16-byte address block (ISOSTACK_SHM_DGRAM_F_V6), then `len` payload
 * bytes and zero padding up to a multiple of ISOSTACK_SHM_DGRAM_ALIGN, so
 * neither the header nor the address block ever wraps around the ring end
 * (the payload may).  One record is one datagram: boundaries are kept.
 * A producer publishes a record's bytes in order; the consumer takes a
 * record only once all of it is below the producer index.
 *   TX (app writes): the destination: addr/port (IPv4), or with F_V6 the
 *      address block and port; addr and port 0 without F_V6 for the
 *      connected peer.  The stack sends it and releases the record at
 *      once (UDP has no acknowledgements); a record it cannot send (no
 *      route, no memory, an address the socket's family cannot reach) is
 *      dropped and counted, as the kernel may.
 *   RX (stack writes): the source, the same way: IPv4 in addr (the
 *      application shows it as ::ffff:a.b.c.d on an AF_INET6 socket), an
 *      IPv6 source with F_V6.  A datagram that does not fit in the ring's
 *      free space is dropped and counted.
 * A bad TX header (len > ISOSTACK_SHM_DGRAM_MAX, record larger than the
 * ring, an unknown flag, reserved nonzero, addr nonzero with F_V6, F_V6
 * on an AF_INET socket) kills the socket with EV_ERROR -EPROTO.
 */
struct isostack_shm_dgram {
	uint32_t len;       /* payload bytes, <= ISOSTACK_SHM_DGRAM_MAX */
	uint16_t port;      /* network byte order */
	uint16_t flags;     /* ISOSTACK_SHM_DGRAM_F_* */
	uint32_t addr;      /* IPv4, network byte order; 0 with F_V6 */
	uint32_t reserved;  /* 0 */
};
/* An IPv6 address (16 bytes, network order) follows the header. */
#define ISOSTACK_SHM_DGRAM_F_V6   0x0001u
#define ISOSTACK_SHM_DGRAM_ADDR6  16u      /* bytes of that address block */
#define ISOSTACK_SHM_DGRAM_ALIGN  16u
#define ISOSTACK_SHM_DGRAM_MAX    65507u   /* largest UDP payload over IPv4 */
/* Ring bytes one datagram of len payload bytes takes (IPv4 address). */
#define ISOSTACK_SHM_DGRAM_REC(len) \
	((uint32_t)sizeof(struct isostack_shm_dgram) + \
	 (((uint32_t)(len) + ISOSTACK_SHM_DGRAM_ALIGN - 1) & ~(ISOSTACK_SHM_DGRAM_ALIGN - 1)))
/* The same for a record with these flags (F_V6: the address block too). */
#define ISOSTACK_SHM_DGRAM_REC_F(len, flags) \
	(ISOSTACK_SHM_DGRAM_REC(len) + \
	 (((flags) & ISOSTACK_SHM_DGRAM_F_V6) ? ISOSTACK_SHM_DGRAM_ADDR6 : 0u))

/* ---- Layout contract: the other side relies on every one of these ---- */
_Static_assert(sizeof(struct isostack_shm_dgram) == ISOSTACK_SHM_DGRAM_ALIGN,
	       "datagram header: one alignment unit, so it never wraps");
_Static_assert(ISOSTACK_SHM_DGRAM_ADDR6 == ISOSTACK_SHM_DGRAM_ALIGN,
	       "IPv6 address block: one alignment unit, so it never wraps");
_Static_assert(sizeof(_Atomic uint32_t) == 4 && _Alignof(_Atomic uint32_t) == 4,
	       "atomic index words must be plain 32-bit words");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");
_Static_assert(sizeof(struct isostack_shm_header) == 256, "header size");
_Static_assert(offsetof(struct isostack_shm_header, features) == 16, "header.features");
_Static_assert(offsetof(struct isostack_shm_header, max_sockets) == 32, "header.max_sockets");
_Static_assert(offsetof(struct isostack_shm_header, arena_size) == 56, "header.arena_size");
_Static_assert(offsetof(struct isostack_shm_header, wait_off) == 72, "header.wait_off");
_Static_assert(offsetof(struct isostack_shm_header, status_off) == 120, "header.status_off");
_Static_assert(offsetof(struct isostack_shm_header, numa_node) == 128, "header.numa_node");
_Static_assert(offsetof(struct isostack_shm_header, notes_off) == 144, "header.notes_off");
_Static_assert(offsetof(struct isostack_shm_header, members_off) == 152, "header.members_off");
_Static_assert(offsetof(struct isostack_shm_header, holders_off) == 160, "header.holders_off");
_Static_assert(offsetof(struct isostack_shm_header, reserved) == 168, "header.reserved");
_Static_assert(sizeof(struct isostack_shm_member) == 16, "member entry size");
_Static_assert(offsetof(struct isostack_shm_member, start) == 8, "member.start");
_Static_assert(sizeof(struct isostack_shm_holders) == 128, "holder set size");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");
_Static_assert(sizeof(struct isostack_shm_sockdir) == 64, "directory entry size");
_Static_assert(offsetof(struct isostack_shm_sockdir, tx_gen) == 40, "sockdir.tx_gen");
_Static_assert(offsetof(struct isostack_shm_sock, tx_gen) == 32, "sock.tx_gen");
_Static_assert(offsetof(struct isostack_shm_sock, tx_busy) == 36, "sock.tx_busy");
_Static_assert(offsetof(struct isostack_shm_sock, tx_hold) == 40, "sock.tx_hold");
_Static_assert(offsetof(struct isostack_shm_sockdir, tx_start) == 32, "sockdir.tx_start");
_Static_assert(offsetof(struct isostack_shm_sockdir, tx_bytes) == 16, "sockdir.tx_bytes");
_Static_assert(offsetof(struct isostack_shm_sockdir, tx_watch) == 48, "sockdir.tx_watch");
_Static_assert(sizeof(struct isostack_shm_wait) == 128, "wait point size");
_Static_assert(offsetof(struct isostack_shm_wait, wake_any) == 8, "wait.wake_any");
_Static_assert(offsetof(struct isostack_shm_wait, wake_seq) == 64, "wait.wake_seq line");
_Static_assert(offsetof(struct isostack_shm_wait, stack_napping) == 68, "wait.stack_napping");
_Static_assert(offsetof(struct isostack_shm_wait, notes_prod) == 72, "wait.notes_prod");
_Static_assert(sizeof(struct isostack_shm_sock) == 128, "socket block size");
_Static_assert(offsetof(struct isostack_shm_sock, cmd_cons) == 64, "stack line of socket block");
_Static_assert(offsetof(struct isostack_shm_sock, waiters) == 20, "sock.waiters");
_Static_assert(offsetof(struct isostack_shm_sock, wake_seq) == 84, "sock.wake_seq");
_Static_assert(offsetof(struct isostack_shm_sock, wake_mask) == 24, "sock.wake_mask");
_Static_assert(sizeof(struct isostack_shm_doorbell) == 128, "doorbell block size");
_Static_assert(offsetof(struct isostack_shm_doorbell, cons) == 64, "doorbell.cons line");
_Static_assert(sizeof(struct isostack_shm_cmd) == 64, "command entry size");
_Static_assert(offsetof(struct isostack_shm_cmd, arg) == 16, "cmd.arg");
_Static_assert(sizeof(struct isostack_shm_status) == 64, "status entry size");
_Static_assert(offsetof(struct isostack_shm_status, result) == 16, "status.result");
_Static_assert(offsetof(struct isostack_shm_status, arg) == 24, "status.arg");

#endif /* ISOSTACK_SHM_ABI_H */
