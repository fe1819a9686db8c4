/*
 * isod_backend: the socket back-end of isostackd (paper 4.1-4.4).
 *
 * It serves applications attached through the control socket
 * (include/isostack/ctl_proto.h): for each one it creates a shared-memory
 * segment (shm/), scans its doorbells, runs the commands it finds as
 * per-socket state machines over lwIP's raw TCP API, parks what cannot
 * complete and resumes it from an internal event queue that lwIP callbacks
 * feed and isod_backend_poll() drains -- lwIP is never re-entered from its
 * own callbacks.  docs/sockets.md is the protocol it implements.
 *
 * DPDK-free: the daemon's dispatcher and the unit tests drive it alike.
 * Every function must be called on the lwIP owner thread.
 */
#ifndef ISOD_BACKEND_H
#define ISOD_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "isoshm.h"

struct isod_backend_conf {
	const char *control_path;   /* AF_UNIX SEQPACKET path; created, mode 0660
				     * with control_gid, else 0600 */
	int control_gid;            /* group that may attach besides root and our
				     * own user; -1: none (docs/daemon.md) */
	uint32_t max_apps_per_uid;  /* applications one uid other than root may
				     * hold at once; 0: no bound */
	struct isoshm_params shm;   /* per-application segment; shm.max_sockets - 1
				     * is the per-application socket limit (EMFILE) */
	uint32_t tx_ring, rx_ring;  /* largest TCP ring a socket grows to, and the
				     * UDP rings (powers of two, <= shm.max_ring_bytes) */
	uint32_t tx_start, rx_start; /* TCP rings a new socket starts with
				     * (powers of two, 4k .. tx_ring / rx_ring) */
	uint64_t mem_budget;        /* whole stack: bytes of ring memory backed;
				     * beyond it a new socket gets ENOBUFS; 0: none */
	uint64_t mem_limit;         /* per application: TX+RX ring bytes of open
				     * sockets; beyond it SOCKET gets -ENOBUFS; 0: none */
	/* Per application: its share of lwIP's global pools (appcap.c).
	 * TCP pcbs its sockets hold (listeners included: SOCKET, accept),
	 * TX queue entries (lwIP's snd_queuelen: segments and their pbufs)
	 * and received pbuf memory not yet in an RX ring.  Defaults: half
	 * of each pool (isod_backend_conf_default); 0: no cap. */
	uint32_t app_pcbs;
	uint32_t app_tx_segs;
	uint64_t app_rx_held;
	uint32_t max_apps;          /* attached applications at once; 0: 64 */
	uint32_t ctl_interval_ms;   /* control socket checked at most this often
				     * (hang-up detection latency); 0: every poll */
	bool tx_watch;              /* watch tx_prod after SENDs (txwatch.c);
				     * off by default: a 512 KiB memcached
				     * reply stalled with it (prog_memcached) */
	bool cut_through;           /* pair local connections on the stack core
				     * (cutthru.c); default true */
	uint32_t close_timeout_ms;  /* a CLOSE still waiting for the peer to take
				     * the TX ring after this long is aborted (RST),
				     * like the kernel's orphan retries; 0: never. */
	/* The back-end's clock, lwIP's sys_now() milliseconds (for
	 * ctl_interval_ms and close_timeout_ms).  Read on every poll, so the
	 * daemon passes a copy its loop refreshes once per millisecond
	 * instead of a clock call per pass.  NULL: sys_now() itself. */
	const uint32_t *clock_ms;
	/* The daemon's own STATS lines (ports, loop, lwIP), written before the
	 * back-end's; returns bytes written. NULL: back-end lines only. */
	size_t (*stats_extra)(void *arg, char *buf, size_t len);
	void *stats_arg;
	/* Zero-copy TX (daemon/txzc.c). seg_attach: an application's segment
	 * was created, before the application learns of it. seg_release:
	 * called instead of isoshm_stack_destroy() once the application's
	 * connections are aborted; it takes the segment over and destroys it
	 * when no mbuf references it any more. NULL: not used. */
	void (*seg_attach)(void *arg, struct isoshm_stack *shm);
	void (*seg_release)(void *arg, struct isoshm_stack *shm);
	/* A new extent of the segment's arena (off, size; on hugepages or
	 * not): DMA-map it, learn its IOVAs. */
	void (*ext_attach)(void *arg, struct isoshm_stack *shm, uint64_t off, uint64_t size,
			   bool hugetlb);
	void *seg_arg;
};

/* Defaults: the shm defaults, no memory limit, 64 apps (32 per uid), no
 * control group (root and our own user only), 1 ms, close timeout 60 s;
 * per application half of lwIP's pcb and segment pools and 16 MiB of
 * received pbufs (half of the daemon's default 16,383 mbufs). */
void isod_backend_conf_default(struct isod_backend_conf *c);

struct isod_backend_stats {
	uint64_t apps_attached, apps_detached, apps_rejected;
	uint64_t cmds;              /* valid commands executed */
	uint64_t bad_cmds;          /* rejected by validation (-EINVAL/-ENOTSUP/-EBADSLT) */
	uint64_t bad_slot;          /* command on a slot that is not open (-EBADF) */
	uint64_t broken_socks;      /* ring index corrupt: socket killed (-EPROTO) */
	uint64_t broken_apps;       /* doorbell corrupt: application dropped */
	uint64_t emfile, enobufs;   /* SOCKET refused by the limits */
	uint64_t accept_dropped;    /* incoming connection aborted: no memory for it */
	uint64_t accept_deferred;   /* handshake ACK dropped: listen queue full */
	uint64_t syn_evicted;       /* half-open connections dropped for newer SYNs (synq.c) */
	uint64_t parked;            /* commands that had to wait */
	uint64_t resumed;           /* socket resumptions from the event queue */
	uint64_t status_deferred;   /* status ring full: posted later */
	uint64_t events;            /* EV_* posted */
	uint64_t tx_bytes, rx_bytes;
	uint64_t tx_writes;         /* tcp_write calls (zero-copy) */
	uint64_t sends_seen;        /* SEND commands */
	uint64_t tx_watches;        /* watches of tx_prod begun (txwatch.c) */
	uint64_t tx_watch_takes;    /* times a watch found new bytes without a SEND */
	uint64_t tx_watch_stops;    /* watches run out and stopped (membarrier) */
	uint64_t resets;            /* connections reset when freeing an application */
	uint64_t app_kicks;         /* application wake fd writes */
	uint64_t bad_wake_fds;      /* wake fds refused (ATTACH, WAKEFD): not an eventfd */
	uint64_t ctl_refused;       /* connections refused at accept: credentials
				     * (EACCES) or the per-uid pending bound */
	uint64_t udp_tx_dgrams, udp_rx_dgrams;
	uint64_t udp_tx_dropped;    /* no route / no memory / unconnected */
	uint64_t udp_rx_dropped;    /* RX ring full */
	/* Received TCP bytes held in lwIP pbufs, not yet in an RX ring: now
	 * (a gauge) and its high-water mark.  The window keeps a socket's
	 * share within its ring's free space. */
	uint64_t rx_held, rx_held_max;
	uint64_t close_timeouts;    /* CLOSEs aborted after close_timeout_ms */
	/* Processes of applications: watched (pidfd), seen to die, and the
	 * sockets closed because no living process held them (or the whole
	 * application was gone); CLOSEs that crossed such a close (-EBADF). */
	uint64_t procs_watched, procs_died;
	uint64_t stack_closes, stack_close_crossed;
	/* Sockets passed with SCM_RIGHTS (handoff.c): registered in flight,
	 * claimed by another application, refused (another user's), closed
	 * unclaimed after their sender's close. */
	uint64_t handoffs, claims, claims_refused, handoffs_expired;
	uint64_t handoff_walks;      /* passes that walked the table: a CLOSE was due */
	uint64_t rx_moves, tx_moves; /* TCP rings moved to another size (sock_ring.c) */
	uint64_t tx_asks;            /* a send found its TX ring none and asked */
	uint64_t tx_ask_waits;       /* ... and no ring was to be had that pass */
	uint64_t tx_readied;         /* TX ring offered as bytes woke the reader */
	uint64_t tx_unready;         /* ... none to be had that pass */
	uint64_t rx_waits;           /* bytes for a none RX ring with no ring that pass */
	/* Budgets of a pass (isod_backend_poll) that ran out with work left:
	 * a socket's turn (ISOD_CMD_BURST commands), the pass's commands,
	 * an application's doorbell ids (ISOD_DB_TAKE), the event queue. */
	uint64_t cmd_budget_hits, pass_budget_hits, db_budget_hits, event_budget_hits;
	/* An application at its cap (appcap.c): SOCKET/LISTEN refused with
	 * ENOBUFS or an accept deferred (pcbs), a send that waits (tx_segs),
	 * received data left in lwIP for later (rx_held). */
	uint64_t app_cap_pcbs, app_cap_tx_segs, app_cap_rx_held;
	/* A SO_REUSEPORT group's lwIP listener passed to another member as
	 * the member holding it closed (reuseport.c). */
	uint64_t reuseport_handovers;
	/* Local connections paired on the stack core (cutthru.c): pairs
	 * made, paired sockets open now (a gauge), bytes moved, CONNECTs
	 * refused (no listener), connections sent through lwIP instead
	 * (full backlog, no memory), sides reset by their peer. */
	uint64_t cut_pairs, cut_open, cut_bytes, cut_refused, cut_fallbacks, cut_resets;
};

struct isod_backend;

/*
 * Binds and listens on conf->control_path (an existing socket file there is
 * replaced).  Returns 0 and *out, or -EINVAL (conf), -ENAMETOOLONG, -ENOMEM
 * or the -errno of socket/bind/listen.  Nothing to free on failure.
 */
int isod_backend_init(struct isod_backend **out, const struct isod_backend_conf *conf);

/*
 * One pass: control socket (attach, hang-up, stats; rate-limited by
 * ctl_interval_ms), the event queue, every application's doorbells and
 * commands.  Every stage is bounded, so that no application (and no flood
 * of events) holds the stack core; what is left waits, in order, for the
 * next pass (nothing is dropped):
 *   - parked-CLOSE expiry and idle ring checks: at most `budget` each;
 *   - the event queue: at most `budget` resumptions in each of its two
 *     drains (before and after the commands);
 *   - doorbells: at most ISOD_DB_TAKE socket ids per application (the
 *     rest stay in the doorbell ring);
 *   - commands: at most `budget` in all, ISOD_CMD_BURST per socket turn,
 *     one socket turn per application per round, the first application
 *     rotating from pass to pass (cmdsched.c);
 *   - quarantine and memory: ISOD_QUARANTINE_PER_MS ids per millisecond,
 *     one extent per pass.
 * The daemon passes weight_apps x burst (64).  A budget reached is counted
 * (stats *_budget_hits).  0 counts as 1.  Returns the work done (0: idle).
 */
unsigned isod_backend_poll(struct isod_backend *be, unsigned budget);

/* The same with the signature of the dispatcher's isod_poll_fn. */
unsigned isod_backend_poll_source(void *be, unsigned budget);

/*
 * Power-saving mode (docs/sockets.md, "Blocking and waking").  The
 * daemon's loop calls this with true right before it sleeps (on
 * isod_backend_wake_fd among others), and with false as soon as it is
 * awake again.  true drains the applications' doorbell fds, publishes
 * stack_napping in every application's segment, fences, then re-checks
 * the doorbells and the internal event queue: it returns non-zero if
 * work is already there, and then the caller must not sleep (clear with
 * false and poll).  Applications that ring a doorbell while the flag is
 * set write their own doorbell fd (each has one: an application that
 * reads its own swallows no other's wake-up).  false clears the flags
 * and returns 0.
 */
unsigned isod_backend_set_napping(struct isod_backend *be, bool napping);

/* An fd (epoll) that becomes readable when an application rings its
 * doorbell fd: the loop sleeps on it.  Never read it; the back-end
 * drains what is behind it in isod_backend_set_napping(true). */
int isod_backend_wake_fd(const struct isod_backend *be);

/* Changes conf.mem_limit (0: none) for later SOCKETs and accepts. */
void isod_backend_set_mem_limit(struct isod_backend *be, uint64_t bytes);

/* Resets every connection, detaches every application, closes and unlinks
 * the control socket.  NULL is a no-op. */
void isod_backend_fini(struct isod_backend *be);

void isod_backend_get_stats(const struct isod_backend *be, struct isod_backend_stats *out);
/*
 * The STATS reply's text: printf-formatted lines appended to buf[used..len),
 * silently truncated at len. Shared by the back-end's lines and the
 * daemon's (daemon/stats.c).
 */
struct isod_strbuf {
	char *buf;
	size_t len, used;
};
void isod_strbuf_put(struct isod_strbuf *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Number of attached applications. */
unsigned isod_backend_apps(const struct isod_backend *be);
/* Open (non-free) slots over all applications; tests check reclamation. */
unsigned isod_backend_open_sockets(const struct isod_backend *be);
/* "name value\n" lines (the STATS reply body).  Returns bytes written
 * (truncated to len) . */
size_t isod_backend_format_stats(const struct isod_backend *be, char *buf, size_t len);

#endif /* ISOD_BACKEND_H */
