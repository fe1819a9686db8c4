/*
 * isod_backend internals: the private state the stack core keeps per
 * application and per socket slot.  None of it is shared memory; the
 * segment is only touched through shm/ (isoshm_stack_*), which validates
 * what it reads.
 */
#ifndef ISOD_BACKEND_INTERNAL_H
#define ISOD_BACKEND_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lwip/tcp.h"
#include "lwip/udp.h"

#include "backend.h"
#include "isostack/ctl_proto.h"
#include "isostack/shm_abi.h"

#define ISOD_PEND_MAX     8    /* deferred replies per socket (status ring full) */
#define ISOD_ACCEPT_PARK  8    /* ACCEPTs parked at once on one listener */
/* Budgets of one isod_backend_poll() pass (cmdsched.c, backend.h): */
#define ISOD_CMD_BURST    32   /* commands one socket runs per turn */
#define ISOD_DB_TAKE      64   /* doorbell ids taken per application */
#define ISOD_TAKE_BATCH   256  /* idle TX takes per pass (one membarrier) */
/* The smallest TCP ring, and the receive window an idle socket (RX ring
 * none) keeps announcing (sock_ring.c). */
#define ISOD_RING_MIN     4096u

enum isod_sock_state {
	ISOD_S_FREE = 0,     /* no socket; reusable once the app drained it */
	ISOD_S_CTRL,         /* id 0 */
	ISOD_S_OPEN,         /* SOCKET done, pcb not connected */
	ISOD_S_LISTEN,
	ISOD_S_CONNECTING,
	ISOD_S_CONNECTED,    /* also after FIN either way */
	ISOD_S_CHILD,        /* accepted by lwIP, waiting in the backlog */
	ISOD_S_DEAD,         /* pcb gone (RST, error, broken ring): until CLOSE */
};

/* Internal events (the event queue), bits of isod_sock.ready. */
enum {
	ISOD_R_RX        = 1u << 0,  /* lwIP delivered data or FIN */
	ISOD_R_SENT      = 1u << 1,  /* peer acknowledged bytes */
	ISOD_R_CONNECTED = 1u << 2,
	ISOD_R_ERR       = 1u << 3,  /* lwIP freed the pcb */
	ISOD_R_ACCEPT    = 1u << 4,  /* a child joined the backlog */
	ISOD_R_FLUSH     = 1u << 5,  /* deferred statuses to post */
	ISOD_R_CMDS      = 1u << 6,  /* commands left unread (budget/room) */
	ISOD_R_IDLE      = 1u << 7,  /* idle check due: rings may shrink */
};

struct isod_app;

/* A ring's place: extent id and arena offset (mem.c). */
struct isod_ring {
	uint32_t ext;
	uint32_t bytes;              /* 0: none */
	uint64_t off;
};

struct isod_sock {
	struct isod_app *app;
	uint32_t id;
	uint8_t state;               /* enum isod_sock_state */
	bool udp;
	bool inet6;                  /* AF_INET6: addresses in and out are sockaddr_in6 */
	bool v6only;                 /* IPV6_V6ONLY: no IPv4 through this socket */
	bool reuseport;              /* SO_REUSEPORT (reuseport.c) */
	struct isod_rp_group *rp;    /* listening in this SO_REUSEPORT group */
	struct isod_rpu_group *rpu;  /* UDP: in this SO_REUSEPORT group */
	uint64_t rpu_dgrams;         /* UDP: datagrams the group gave it */
	bool fin_rcvd, hup_posted, err_posted;
	bool shut_wr, shut_wr_done;
	bool close_pending, linger0;
	bool tx_was_full;
	bool pcb_closed;             /* lwIP finished the connection cleanly
				      * (LAST_ACK done or TIME_WAIT): pcb NULL */
	bool closed_by_stack;        /* closed for a dead process: EV_CLOSED, and
				      * a CLOSE after it gets -EBADF */
	int err;                     /* -errno once the connection failed */
	struct tcp_pcb *pcb;
	struct udp_pcb *upcb;        /* SOCK_DGRAM (then pcb is NULL) */
	bool rx_ev_due;              /* UDP: EV_RX to post from the queue */
	bool udp_broken;             /* UDP: RX ring found corrupt in a callback */
	/* options a listener hands its children (sock_opt.c); 0: lwIP's
	 * defaults.  tos: IP_TOS of an AF_INET socket, IPV6_TCLASS of an
	 * AF_INET6 one; tos4: IP_TOS of an AF_INET6 one, for its IPv4
	 * connections (isod_sk_tos). */
	uint32_t keep_idle_ms, keep_intvl_ms, keep_cnt;
	uint8_t tos, tos4;
	/* TCP_INFO's tcpi_bytes_acked and tcpi_bytes_received */
	uint64_t info_acked, info_rcvd;
	ip_addr_t local_ip;          /* kept for GETSOCKNAME after the pcb is gone */
	u16_t local_port;

	/* TX: bytes of [tx_cons, tx_prod) already handed to lwIP */
	uint32_t tx_handed;
	uint32_t tx_named;           /* variant Basic: bytes SENDs named, not yet handed */
	uint32_t acked;              /* acknowledged, not yet released */
	/* RX */
	uint32_t rx_prod;            /* bytes written into the ring (private) */
	uint32_t rx_cons_seen;       /* application consumption credited so far */
	struct pbuf *rx_hold;        /* received, not yet in the ring */
	uint16_t rx_hold_off;        /* bytes of rx_hold's first pbuf already copied */
	uint32_t rx_held;            /* bytes of rx_hold not yet copied */

	/* parked commands */
	uint64_t connect_cookie;
	bool connect_parked;
	uint64_t close_cookie;
	uint32_t close_deadline;     /* sys_now() when a parked CLOSE is aborted */
	bool closing_linked;         /* on be->closing */
	struct isod_sock *closing_prev, *closing_next;
	uint64_t accept_cookie[ISOD_ACCEPT_PARK];
	uint8_t accept_parked;
	/* listener backlog: children in accept order, linked by bl_next */
	uint32_t bl_head, bl_tail, bl_count, bl_max;
	uint32_t bl_next;
	uint32_t parent;             /* child: its listener */

	/* status ring back-pressure: replies kept while the status ring is
	 * full, in [ISOD_PEND_MAX] allocated only then (rare: 512 bytes per
	 * socket otherwise, for every idle connection) */
	struct isostack_shm_status *pend;
	uint8_t npend;
	uint32_t ev_pending;         /* EV_* bits (1 << (ev - 0x100)) not yet posted */
	uint32_t st_posted;          /* status entries posted over the slot's life */

	/* the application's command run queue (cmdsched.c): ids + 1, 0 ends */
	bool cmd_queued;
	uint32_t cmd_next;

	/* event queue */
	uint32_t ready;
	bool queued;
	struct isod_sock *ready_next;
	uint64_t mem;                /* bytes charged to the app's mem_limit */
	/* lwIP resources charged to the application (appcap.c) */
	bool pcb_charged;            /* a TCP pcb (listen included) or UDP pcb */
	bool listen_charged;         /* ... from the listen pool */
	uint32_t segs;               /* the pcb's snd_queuelen as last charged */
	uint64_t rx_true;            /* pbuf memory of rx_hold (truesize) */
	/* waiting for the application's segments to fall below its cap:
	 * ids + 1 linked by segw_next, 0 ends; survives the slot's reuse */
	bool seg_waiting;
	uint32_t segw_next;
	/* memory: the rings, kept until the application drained them */
	struct isod_ring tx, rx;
	/* rings that size themselves (sock_ring.c) */
	struct isod_ring tx_offer;   /* offered to the application, not taken yet */
	bool tx_offered;             /* tx_offer is open (it may be none: 0 bytes) */
	/* RX ring none (idle): ISOD_RING_MIN reserved for the window it still
	 * announces, charged to mem_used and be->mem_reserved; 0 otherwise */
	uint32_t rx_resv;
	uint32_t tx_pin, rx_pin;     /* SO_SNDBUF / SO_RCVBUF ring bytes; 0: auto */
	uint32_t rx_peak;            /* most bytes unread + held since the last move */
	uint32_t rx_rate_ms;         /* start of the current rate interval */
	uint64_t rx_rate_bytes;      /* bytes received in it */
	uint32_t activity, activity_seen;  /* bytes moved either way; at last poll */
	bool idle_armed;             /* on be's idle list (sock_ring.c) */
	uint32_t idle_due;           /* when the idle list looks at it next */
	struct isod_sock *idle_prev, *idle_next;
	uint32_t tx_max, rx_max;     /* largest ring sizes the socket had */
	bool take_queued;            /* on be->takes (sock_ring.c) */
	/* cut-through (cutthru.c): a local connection paired with another
	 * socket of this stack, with no pcb (pcb NULL) */
	bool cut;                    /* paired at CONNECT (the peer may be gone) */
	struct isod_sock *cut_peer;  /* the other end; NULL once it is gone */
	struct tcp_pcb *cut_port;    /* client: bound pcb holding local_port */
	ip_addr_t cut_rip;           /* the peer's address */
	u16_t cut_rport;
	uint8_t cut_opts;            /* SO_REUSEADDR, SO_KEEPALIVE, TCP_NODELAY set */
	/* the stack watches tx_prod (txwatch.c): on app->tx_watch */
	bool tx_watched;
	bool tx_watch_stopping;      /* tx_watch 0 published, barrier to come */
	uint32_t tx_send_ms;         /* its last SEND not watched (+1; 0: none) */
	uint32_t tx_watch_ms;        /* when tx_prod last moved */
	bool in_use;                 /* id taken (open, or freed but not drained) */
	bool quarantined;            /* freed; waits for the app to drain it */
	uint32_t q_next;             /* quarantine list (ids), UINT32_MAX ends */
};

/* ---- mem.c: ring memory over extents ---- */

#define ISOD_MEM_CLASSES      22     /* chunk sizes 2^12 .. 2^21 by log2 */
#define ISOD_MEM_SPARE        1024   /* empty unit extents kept backed at most */
#define ISOD_MEM_SPARE_AHEAD  1      /* of which made ahead of need */
#define ISOD_MEM_SPARE_KEEP_MS 10000 /* the others: kept until none emptied for this long */
#define ISOD_MEM_RELEASED_MAX 4096

struct isod_ext {
	uint64_t off, size;
	uint64_t freemap[8];         /* slab: free chunks (unit extents) */
	uint32_t used;               /* chunks taken */
	uint32_t next_partial;       /* partial list of its class */
	uint8_t cls;                 /* log2 of its chunk size */
	bool on_partial;
	bool backed;
	bool hugetlb;
};

struct isod_mem {
	struct isod_ext *ext;        /* [cap], by extent id */
	uint32_t cap;
	uint32_t partial[ISOD_MEM_CLASSES];   /* slabs with a free chunk */
	uint32_t spare[ISOD_MEM_SPARE];
	uint32_t nspare;
	uint32_t spare_kept_ms;       /* when a spare beyond the ahead one was kept */
	uint32_t released[ISOD_MEM_RELEASED_MAX];  /* punched, reusable */
	uint32_t nreleased;
	uint64_t backed;             /* bytes of backed extents */
};

struct isod_mem_stats {
	uint64_t extents;            /* extents made */
	uint64_t refills, releases;  /* pages given back / taken again */
	uint64_t sync_extents;       /* made inside an allocation, not ahead */
	uint64_t opened_none;        /* TCP rings a new socket opened without */
	uint64_t enobufs;            /* refused: the budget */
	uint64_t ctl_extents;        /* extent fds handed to applications */
};

void isod_mem_init(struct isod_app *app);
void isod_mem_fini(struct isod_app *app);
/* A ring of `bytes` (power of two, >= 4 KiB).  0, -ENOBUFS or -ENOMEM;
 * -EAGAIN where it would have to make an extent and one was made this
 * pass already (at most one per pass: docs/shm.md), unless force. */
int isod_mem_ring_get(struct isod_app *app, uint32_t bytes, struct isod_ring *out, bool force);
/* The same, but -EAGAIN where it would have to make a unit extent now
 * (for optional moves: the spare comes by the next pass). */
int isod_mem_ring_try(struct isod_app *app, uint32_t bytes, struct isod_ring *out);
/* The end of a loop pass: the next may make an extent again. */
void isod_mem_pass_end(struct isod_backend *be);
/* Memory pressure (the kernel's tcp_mem "pressure" mode): more than half
 * the budget backed.  TCP rings then start and stay small (sock_ring.c). */
bool isod_mem_pressure(const struct isod_backend *be);
void isod_mem_ring_put(struct isod_app *app, const struct isod_ring *r);
/* Keeps a spare extent ready (at most one made per call); returns work. */
unsigned isod_mem_poll(struct isod_app *app);
/* sock.c: frees the rings and ids of up to `max` quarantined sockets the
 * application has drained; returns how many. */
unsigned isod_sock_quarantine_poll(struct isod_app *app, unsigned max);
/* Quarantined ids the loop looks at per application and millisecond
 * (backend.c): 64,000 ids a second each, past any close rate seen. */
#define ISOD_QUARANTINE_PER_MS 64

#define ISOD_MAX_WAKE_FDS 63
#define ISOD_WAKE_THREAD 0x80

/* ---- txwatch.c: tx_prod watched after a SEND, so writers post none ---- */

/* Sockets watched per application at most, and how long a watch lasts
 * after tx_prod last moved (ms, at least this and less than one more). */
#define ISOD_TX_WATCH_MAX    32
#define ISOD_TX_WATCH_MS     2
/* Watches stop (one membarrier for all, tens of us in a VM) at most
 * this often. */
#define ISOD_TX_WATCH_STOP_MS 10

/* After a SEND: watch sk's tx_prod (if it may send, and there is room), or
 * watch it on for ISOD_TX_WATCH_MS more. */
void isod_sk_tx_watch(struct isod_sock *sk);
/* Stops watching sk (freed, moved); bytes found are pushed as for a SEND. */
void isod_sk_tx_unwatch(struct isod_sock *sk);
/* One pass over app's watched sockets: pushes what came, counts the
 * watches that ran out (be->tx_watch_due).  Returns the sockets that had
 * bytes. */
unsigned isod_tx_watch_poll(struct isod_app *app);
/* After the polls: stops the watches that ran out, with one membarrier,
 * at most once per millisecond.  Returns the sockets that had bytes. */
unsigned isod_tx_watch_stops(struct isod_backend *be);
/* Before the loop naps: ends every watch (applications post SENDs and
 * ring doorbells again).  Returns the sockets that had bytes. */
unsigned isod_tx_watch_end_all(struct isod_backend *be);

/* ---- procs.c: the processes of an application, watched with pidfds ---- */

#define ISOD_MAX_PROCS  (2 * ISOSTACK_SHM_MEMBERS)
#define ISOD_MSET_WORDS (ISOSTACK_SHM_MEMBERS / 64)

struct isod_proc {
	struct isod_app *app;
	int pidfd;                   /* -1: dead (or a free entry if pid is 0) */
	int32_t pid;
	uint32_t member;             /* its entry in the member table */
	uint64_t start;              /* /proc start time, 0 if unknown */
};

/* Starts watching process pid, member `member` of app (ATTACH: member 0;
 * CTL_WAKEFD).  A process gone already counts as died at once.  No
 * errors: one not watched (pidfd_open failed, table full) is taken for
 * alive, so its sockets close only with the application. */
void isod_procs_watch(struct isod_app *app, int32_t pid, uint32_t member);
/* Takes the deaths the pidfds report (if `ready`: their epoll set polled
 * readable) and, for each application with a death since the last call,
 * closes the sockets no living member holds (reading its holder sets).
 * Returns the work done. */
unsigned isod_procs_poll(struct isod_backend *be, bool ready);
/* Stops watching app's processes. */
void isod_procs_fini(struct isod_app *app);

struct isod_app {
	struct isod_backend *be;
	struct isod_app *next;
	int ctl_fd;
	int wake_fd;                 /* application wake fd: an eventfd, O_NONBLOCK
				      * (validated at attach: wake_fd_validate) */
	int doorbell_fd;             /* its own stack wake fd: an eventfd we made,
				      * in be->doorbell_ep; it writes it while we nap */
	bool no_tx_agg;              /* variant Basic (header.variant) */
	/* Wake fds of the processes fork() made (CTL_WAKEFD), with their
	 * pids: an entry whose process is gone is dropped to make room. */
	int more_wake_fd[ISOD_MAX_WAKE_FDS];
	uint32_t more_wake_pid[ISOD_MAX_WAKE_FDS];
	/* wake_mask bit (the first fd: 0), | ISOD_WAKE_THREAD for a thread's */
	uint8_t more_wake_bit[ISOD_MAX_WAKE_FDS];
	unsigned nmore_wake;
	uint32_t id;
	uint32_t pid;
	uint32_t uid;                /* of the attaching connection (SO_PEERCRED) */
	char comm[17];
	struct isoshm_stack *shm;
	struct isostack_shm_header hdr;  /* private copy */
	struct isostack_shm_sock *shared_socks; /* read-only use: hints */
	struct isostack_shm_wait *shared_wait;
	struct isod_sock *socks;     /* [hdr.max_sockets], pages touched on use */
	uint32_t hiwat;              /* ids below it were used at least once */
	uint32_t nopen;              /* ids taken (in_use) */
	uint32_t *free_ids;          /* drained ids, reused lowest-recent first */
	uint32_t nfree_ids;
	uint32_t q_head, q_tail;     /* quarantine: freed, not yet drained */
	uint32_t q_poll_ms;          /* when the loop last looked at it */
	/* Sockets with commands to run, in turn order (cmdsched.c): ids + 1
	 * linked by isod_sock.cmd_next; 0: empty. */
	uint32_t cmd_head, cmd_tail;
	/* Sockets whose tx_prod the stack watches (txwatch.c), unordered. */
	uint32_t tx_watch[ISOD_TX_WATCH_MAX];
	unsigned ntx_watch;
	struct isod_mem mem;
	uint64_t mem_used;
	/* lwIP resources the application holds (appcap.c), against
	 * be->conf.app_pcbs, app_tx_segs, app_rx_held */
	uint32_t npcbs, nlisten, nudp;
	uint32_t tx_segs;            /* pbufs queued for TX (snd_queuelen summed) */
	uint64_t rx_true;            /* received pbuf memory held (truesize) */
	uint32_t segw_head, segw_tail;  /* sockets waiting for tx_segs room */
	bool kick;                   /* something posted this pass: maybe write wake_fd */
	uint64_t kick_mask;          /* wake_mask of the sockets posted to this pass */
	bool dead;
	bool draining;               /* dead; closed sockets still sending */
	/* Processes (procs.c); the tables are calloc'd at the first watch. */
	struct isod_proc *procs;     /* [ISOD_MAX_PROCS], entries below nprocs used */
	uint32_t nprocs;
	uint64_t died[ISOD_MSET_WORDS];  /* members that died since the last look */
	bool deaths;
	const struct isostack_shm_member *shared_members;  /* hints */
	const struct isostack_shm_holders *shared_holders; /* hints, [max_sockets] */
};

/* ---- Half-open connections of a listener (synq.c) ------------------------ */

/* The least bound of a listener's half-open connections; a larger
 * backlog raises it (isod_synq_cap). */
#define ISOD_SYNQ_MIN 1024
uint32_t isod_synq_cap(uint32_t backlog);
/* A passive open of lpcb (lwIP's ext-arg hook, slot id): npcb joins the
 * listener's queue, the oldest half-open connection is dropped if it
 * holds cap already.  ERR_MEM (no memory for the queue: drop the SYN). */
err_t isod_synq_admit(struct isod_backend *be, struct tcp_pcb_listen *lpcb, u8_t id,
		      struct tcp_pcb *npcb, uint32_t cap);
/* pcb's handshake completed and it was accepted: out of the queue. */
void isod_synq_accepted(struct tcp_pcb *pcb, u8_t id);
/* The listener pcb's ext-arg destroy callback. */
void isod_synq_free(u8_t id, void *data);

/* An lwIP pcb extension slot of the caller's (*slot, -1 until the first
 * call): lwIP hands them out once per process, up to
 * LWIP_TCP_PCB_NUM_EXT_ARGS (lwipopts.h). */
static inline u8_t isod_ext_id(int16_t *slot)
{
	if (*slot < 0)
		*slot = tcp_ext_arg_alloc_id();
	return (u8_t)*slot;
}

#define ISOD_MAX_PENDING_CTL 16
#define ISOD_MAX_PENDING_PER_UID 4   /* root exempt (ctl_auth.c) */

/* ---- Control socket access (ctl_auth.c) --------------------------------- */

/* Owner group and mode of the socket file: gid >= 0: that group, 0660;
 * else 0600.  Returns 0 or -errno of chown/chmod. */
int isod_ctl_set_perms(const char *path, int gid);
/* A connection just accepted: 0 and *uid if its peer may use the socket
 * and its uid has a pending slot left; -EACCES (not root, not our user,
 * not in conf.control_gid) or -EAGAIN (ISOD_MAX_PENDING_PER_UID). */
int isod_ctl_admit(struct isod_backend *be, int fd, uint32_t *uid);
/* The uid of fd's peer: 0 or -errno. */
int isod_ctl_peer_uid(int fd, uint32_t *uid);
/* 0 if uid may attach one more application, -EMFILE at max_apps_per_uid. */
int isod_ctl_uid_room(const struct isod_backend *be, uint32_t uid);

struct isod_backend {
	struct isod_backend_conf conf;
	char path[108];
	int listen_fd;
	/* epoll over every application's doorbell_fd: the loop sleeps on it
	 * (isod_backend_wake_fd); drained before each nap. */
	int doorbell_ep;
	int pending_fd[ISOD_MAX_PENDING_CTL];   /* connected, no ATTACH yet */
	uint32_t pending_uid[ISOD_MAX_PENDING_CTL]; /* their peers' uids */
	unsigned npending;
	struct isod_app *apps;
	unsigned napps;
	uint32_t next_app_id;
	uint32_t last_ctl_ms;        /* on isod_backend_now()'s clock */
	struct isod_sock *ready_head, **ready_tail;
	/* Parked CLOSEs in deadline order (the timeout is the same for all:
	 * appending keeps the order), oldest first. */
	struct isod_sock *closing_head, *closing_tail;
	/* Sockets that hold a ring idleness would take, by when to look
	 * (the interval is the same for all: appending keeps the order). */
	struct isod_sock *idle_head, *idle_tail;
	bool napping;                /* stack_napping published in the segments */
	int proc_ep;                 /* epoll over every watched pidfd (procs.c) */
	unsigned nwatched;           /* pidfds in it */
	uint64_t mem_backed;         /* extent bytes backed, all applications */
	uint64_t mem_reserved;       /* idle sockets' RX reservations (rx_resv) */
	bool ext_made;               /* an extent was made or refilled this pass */
	uint32_t cmd_first;          /* app id whose turn comes first next pass */
	/* TX offers to take for idle applications after one asymmetric
	 * barrier per pass (sock_ring.c); membar: 1 works, -1 does not. */
	struct isod_sock *takes[ISOD_TAKE_BATCH];
	unsigned ntakes;
	int membar;
	/* watches of tx_prod that ran out this pass, and when the last
	 * barrier stopped some (txwatch.c) */
	unsigned tx_watch_due;
	uint32_t tx_watch_stop_ms;
	struct isod_mem_stats mem_st;
	struct isod_backend_stats st;
	/* shm/'s validation counters of the applications gone (shmstats.c) */
	struct isoshm_stats shm_gone;
	/* SO_REUSEPORT groups (reuseport.c); rp_used: a socket set it once */
	struct isod_rp_group *rp_groups;
	unsigned rp_ngroups;
	bool rp_used;
	/* UDP's SO_REUSEPORT groups (reuseport_udp.c) */
	struct isod_rpu_group *rpu_groups;
	unsigned rpu_ngroups;
	struct isod_handoff *handoff;  /* sockets in flight (handoff.c), or NULL */
};

/* The back-end's millisecond clock: conf.clock_ms, or sys_now(). */
uint32_t isod_backend_now(const struct isod_backend *be);

/* ---- appcap.c: the application's share of lwIP's pools ---- */

/* One received pbuf's memory, as the kernel's truesize: a pool buffer
 * or mbuf holds at least this much whatever its payload. */
#define ISOD_PBUF_TRUESIZE 2048u
/* A waiting socket is woken once the application is this far below its
 * cap (a quarter of it): room for more than one segment at a time. */
#define ISOD_SEGS_WAKE(cap) ((cap) - (cap) / 4)
/* The smallest app_tx_segs: a quarter of it still holds a write (4). */
#define ISOD_CAP_SEGS_MIN  16u

/* 0 if app may take one more pcb of that kind (tcp: a TCP pcb; listen:
 * a listening one; else UDP), else -ENOBUFS, counted. */
int isod_cap_pcb_room(struct isod_app *app, bool udp, bool listen);
/* sk now holds a pcb (charged once), or holds none (released), after
 * sk->pcb / sk->upcb changed; listen: the pcb is a listener. */
void isod_cap_pcb_sync(struct isod_sock *sk);
/* Charges the difference between the pcb's snd_queuelen and what was
 * charged; wakes the application's waiting sockets once below the mark. */
void isod_cap_segs_sync(struct isod_sock *sk);
/* Queue entries sk may add (tcp_write's pbufs) before the application
 * reaches app_tx_segs (UINT32_MAX: no cap); 0 if fewer than `need`:
 * then sk waits on the application's list (counted).  need <= 8. */
uint32_t isod_cap_segs_room(struct isod_sock *sk, uint32_t need);
/* Received pbufs p would join sk's hold: true if the application's cap
 * allows (charged), false if they must wait in lwIP (counted). */
bool isod_cap_rx_take(struct isod_sock *sk, const struct pbuf *p);
/* The truesize of one pbuf (not its chain). */
static inline uint32_t isod_pbuf_true(const struct pbuf *q)
{
	return q->len > ISOD_PBUF_TRUESIZE ? q->len : ISOD_PBUF_TRUESIZE;
}
/* bytes of truesize left sk's hold (pbufs freed or the hold dropped). */
void isod_cap_rx_put(struct isod_sock *sk, uint64_t bytes);
/* Its backend.app_cap_* lines of the STATS reply; bytes written. */
size_t isod_cap_format_stats(const struct isod_backend *be, char *buf, size_t len);

/* ---- reuseport.c: SO_REUSEPORT groups of listeners ---- */

struct isod_rp_group;
/* SETSOCKOPT SO_REUSEPORT. */
void isod_rp_set(struct isod_sock *sk, bool on);
/* BIND of a TCP socket (unbound, OPEN) to a local address: 0, or the
 * -errno (-EADDRINUSE: Linux's rule with SO_REUSEPORT and SO_REUSEADDR). */
int isod_rp_bind(struct isod_sock *sk, const ip_addr_t *ip, u16_t port);
/* LISTEN of a bound socket: 1 if it joined a SO_REUSEPORT group that
 * listens on its address and port already (then it needs no lwIP
 * listener), 0 if it must listen itself, or -EADDRINUSE (another user's
 * group) / -ENOBUFS. */
int isod_rp_join(struct isod_sock *sk);
/* sk listens with its own lwIP listener now: a SO_REUSEPORT socket
 * starts a group that later ones join. */
void isod_rp_listened(struct isod_sock *sk);
/* The group member an established connection of lsk's lwIP listener
 * goes to (lsk itself outside a group). */
struct isod_sock *isod_rp_pick(struct isod_sock *lsk, struct tcp_pcb *npcb);
/* The same for a connection from rip:rport to lip:lport that has no pcb
 * (cut-through). */
struct isod_sock *isod_rp_pick_addr(struct isod_sock *lsk, const ip_addr_t *lip, u16_t lport,
				    const ip_addr_t *rip, u16_t rport);
/* sk leaves its group (closed, aborted, freed); the lwIP listener passes
 * to another listening member if sk held it.  Idempotent. */
void isod_rp_leave(struct isod_sock *sk);
/* Listening members of sk's group (0: none). */
uint32_t isod_rp_members(const struct isod_sock *sk);
/* Its backend.reuseport_* lines of the STATS reply; bytes written. */
size_t isod_rp_format_stats(const struct isod_backend *be, char *buf, size_t len);

/* ---- reuseport_hash.c: what TCP's and UDP's groups share ---- */

/* Whether two bound addresses take the same port (a dual-stack [::]
 * takes it in both versions). */
bool isod_rp_addr_overlap(const ip_addr_t *a, const ip_addr_t *b);
/* Room in a member table m of cap entries, n used, for one more:
 * 0, or -ENOBUFS (m unchanged). */
int isod_rp_room(struct isod_sock ***m, uint32_t n, uint32_t *cap);
/* A new group's random hash seed (salt: when no randomness is had). */
uint32_t isod_rp_seed(const void *salt);
/* The member, of n (> 0), that the flow rip:rport -> lip:lport goes to. */
uint32_t isod_rp_slot(uint32_t seed, uint32_t n, const ip_addr_t *lip, u16_t lport,
		      const ip_addr_t *rip, u16_t rport);

/* ---- reuseport_udp.c: SO_REUSEPORT groups of UDP sockets ---- */

struct isod_rpu_group;
/* BIND of a UDP socket (unbound) to a local address: 0 (a SO_REUSEPORT
 * socket then is in its address's group), or -EADDRINUSE (Linux's rule),
 * -ENOBUFS, or udp_bind's other -errno. */
int isod_rpu_bind(struct isod_sock *sk, const ip_addr_t *ip, u16_t port);
/* The member a datagram lwIP gave sk's pcb goes to (sk outside a group
 * or when pcb is connected); only from lwIP's recv callback, where the
 * destination address is lwIP's current one. */
struct isod_sock *isod_rpu_pick(struct isod_sock *sk, const struct udp_pcb *pcb,
				const ip_addr_t *src, u16_t sport);
/* sk leaves its group (closed, killed); the others go on.  Idempotent. */
void isod_rpu_leave(struct isod_sock *sk);
/* Members of sk's group (0: none). */
uint32_t isod_rpu_members(const struct isod_sock *sk);

/* ---- handoff.c: sockets passed between applications (SCM_RIGHTS) ---- */

struct isod_handoff;
/* CTL_HANDOFF: socket id of app is about to travel; fd (taken: kept or
 * closed) is its file.  0, -EINVAL (not a TCP connection or listener, or
 * closing), -EOPNOTSUPP (SO_REUSEPORT), -ENOSPC, -ENOMEM. */
int isod_handoff_register(struct isod_app *app, uint32_t id, int fd);
/* CTL_CLAIM from app (validated there: length and type): fills r. */
void isod_handoff_claim(struct isod_app *app, const struct isostack_ctl_claim *m,
			struct isostack_ctl_claim_reply *r);
/* isod_sk_cmd_close: true if sk is in flight and its CLOSE c waits for
 * the claim (or ISOSTACK_CTL_HANDOFF_TTL_MS). */
bool isod_handoff_hold_close(struct isod_sock *sk, const struct isostack_shm_cmd *c);
/* app's sockets in flight: a dead application stays while there are any. */
unsigned isod_handoff_pending(const struct isod_app *app);
/* Runs the CLOSEs whose wait expired; returns how many. */
unsigned isod_handoff_poll(struct isod_backend *be);
/* app is being destroyed: its entries go (its sockets with it). */
void isod_handoff_app_gone(struct isod_app *app);
void isod_handoff_fini(struct isod_backend *be);

/* ---- shmstats.c: what the shared-memory boundary refused ---- */

/* Adds a detaching application's shm/ validation counters to the total. */
void isod_shm_stats_retire(struct isod_backend *be, const struct isod_app *app);
/* Its backend.shm_* lines of the STATS reply; bytes written. */
size_t isod_shm_format_stats(const struct isod_backend *be, char *buf, size_t len);

/* ---- sockstats.c ---- */

/* app.* and sock.* lines of the STATS reply; returns bytes written. */
size_t isod_backend_format_sockets(const struct isod_backend *be, char *buf, size_t len);

/* Something was posted to socket `id` of `app`: at the end of the pass,
 * wake the processes asleep on it (kick_apps in backend.c). */
static inline void isod_app_kick(struct isod_app *app, uint32_t id)
{
	app->kick = true;
	app->kick_mask |= isoshm_stack_wake_mask(app->shm, id);
}

/* ---- sock*.c: the per-socket state machines (entry points) ---- */

/* Runs at most `max` (> 0) of the commands on `id`'s ring; returns the
 * number run.  *more: the ring may hold more (the caller queues it again);
 * false once it was found empty or the socket waits for status room
 * (then it is queued with ISOD_R_CMDS and comes back from the event
 * queue through isod_cmds_queue). */
unsigned isod_sock_run_cmds(struct isod_app *app, uint32_t id, unsigned max, bool *more);

/* ---- cmdsched.c: which commands run in a pass (the budgets) ---- */

/* Puts `id` at the end of its application's run queue (once). */
void isod_cmds_queue(struct isod_app *app, uint32_t id);
/* The command stage of a pass: takes doorbell ids, then runs queued
 * sockets' commands round robin across applications, at most `budget`
 * commands in all.  Returns the work done. */
unsigned isod_cmds_poll(struct isod_backend *be, unsigned budget);
/* Its backend.*_budget_hits lines of the STATS reply; bytes written. */
size_t isod_cmds_format_stats(const struct isod_backend *be, char *buf, size_t len);
void isod_sk_pend_free(struct isod_sock *sk);
/* Resumes one socket from the event queue with its accumulated bits. */
void isod_sock_resume(struct isod_sock *sk, uint32_t bits);
/* Queues sk for resumption with `bits` (once; bits accumulate). */
void isod_sock_queue(struct isod_sock *sk, uint32_t bits);
/* Application freed: abort every pcb (RST), free held pbufs. */
void isod_sock_reset_all(struct isod_app *app);
/* Application gone (control socket hung up): every socket it still had
 * open is closed as the kernel closes the fds of a process that exits
 * (isod_sk_close_by_stack).  Returns how many closes are still parked,
 * sending: the application stays until isod_sock_closing says 0. */
unsigned isod_sock_close_all(struct isod_app *app);
unsigned isod_sock_closing(const struct isod_app *app);
/* Aborts at most `max` of the parked CLOSEs whose deadline is at or before
 * `now` (lwIP's sys_now()), oldest first; returns how many. */
unsigned isod_sock_expire_closes(struct isod_backend *be, uint32_t now, unsigned max);

/* ---- sock*.c: shared between the socket files, not the dispatcher ---- */

/* sock.c: slots, status posting, addresses */
bool isod_sk_app_waits(const struct isod_sock *sk);
void isod_sk_post(struct isod_sock *sk, const struct isostack_shm_status *st);
void isod_sk_reply(struct isod_sock *sk, const struct isostack_shm_cmd *c, int64_t result);
void isod_sk_event(struct isod_sock *sk, uint16_t ev);
struct isod_sock *isod_sk_alloc(struct isod_app *app, bool udp, const struct isod_sock *parent,
				uint32_t rx_min, int *err);
#define ISOD_UDP_RING(conf, r) \
	((r) >= (256u << 10) || (conf)->shm.max_ring_bytes < (256u << 10) ? (r) : (256u << 10))
void isod_sk_free(struct isod_sock *sk);
void isod_sk_detach_pcb(struct isod_sock *sk);
void isod_sk_abort(struct isod_sock *sk);
void isod_sk_kill(struct isod_sock *sk, int err);
#define ISOD_V6ONLY_MAPPED (-EADDRNOTAVAIL)  /* isod_sk_addr_from_cmd: see there */
void isod_sk_put_addr(const struct isod_sock *sk, uint64_t *arg, const ip_addr_t *ip, u16_t port);
int isod_sk_addr_from_cmd(const struct isod_sock *sk, const struct isostack_shm_cmd *c,
			  ip_addr_t *ip, u16_t *port);
bool isod_sk_addr_is_local(const ip_addr_t *ip);
int isod_sk_lwip_bind_errno(err_t e);

/* sock_tcp.c: lwIP callbacks, connect, listen, accept */
int isod_sk_err_to_errno(err_t e, bool connecting);
void isod_sk_attach_pcb(struct isod_sock *sk, struct tcp_pcb *pcb);
/* lpcb is the lwIP listener of one of our sockets (its callback_arg);
 * not the daemon's echo service's or a test's. */
bool isod_sk_is_listener(const struct tcp_pcb_listen *lpcb);
void isod_sk_cmd_listen(struct isod_sock *sk, const struct isostack_shm_cmd *c);
void isod_sk_cmd_connect(struct isod_sock *sk, const struct isostack_shm_cmd *c);
void isod_sk_accept_serve(struct isod_sock *lsk);
/* child (ISOD_S_CHILD of lsk) at the tail of lsk's backlog; the caller
 * queues lsk for ISOD_R_ACCEPT when it is done. */
void isod_sk_backlog_push(struct isod_sock *lsk, struct isod_sock *child);

/* sock_data.c: the TCP data path */
void isod_sk_rx_hold_drop(struct isod_sock *sk);
void isod_sk_rx_pump(struct isod_sock *sk);
void isod_sk_wnd_update(struct isod_sock *sk);

/* sock_ring.c: rings that size themselves */
void isod_sk_ring_free(struct isod_sock *sk, struct isod_ring *r);
/* RX: with `used` bytes unread (a move needs 0), grow or follow a pin. */
void isod_sk_rx_resize(struct isod_sock *sk, uint32_t used);
/* TX peek that follows the application onto an offered ring. */
int isod_sk_tx_peek(struct isod_sock *sk, struct isoshm_span sp[2]);
/* TX: the application filled the ring: offer a larger one if it helps. */
void isod_sk_tx_full(struct isod_sock *sk);
/* TX ring none and the application looked at it (a SEND): offer a ring. */
void isod_sk_tx_want(struct isod_sock *sk);
/* TX ring none and new bytes for the reader: offer one before it wakes. */
void isod_sk_tx_prepare(struct isod_sock *sk);
/* RX ring none and bytes held: get a ring for them.  False if none can
 * be had this pass (the bytes wait with lwIP's pbufs; retried). */
bool isod_sk_rx_want(struct isod_sock *sk);
/* The socket's RX reservation goes (it will receive nothing more). */
void isod_sk_rx_reserve(struct isod_sock *sk);
void isod_sk_rx_unreserve(struct isod_sock *sk);
/* The receive window the RX ring backs: its size, ISOD_RING_MIN if none. */
static inline uint32_t isod_sk_rx_wnd(const struct isod_sock *sk)
{
	return sk->rx.bytes != 0 ? sk->rx.bytes : ISOD_RING_MIN;
}
/* SO_RCVBUF (rx) or SO_SNDBUF of v bytes. */
void isod_sk_ring_pin(struct isod_sock *sk, bool rx, int v);
void isod_sk_ring_inherit(struct isod_sock *child, const struct isod_sock *parent);
uint32_t isod_sk_rx_start(const struct isod_backend *be, const struct isod_sock *parent);
uint32_t isod_sk_tx_start(const struct isod_backend *be, const struct isod_sock *parent);
/* A pcb was attached: poll it while its rings may shrink. */
void isod_sk_ring_armed(struct isod_sock *sk);
void isod_sk_ring_idle(struct isod_sock *sk);
/* Off the idle list (the socket is freed). */
void isod_sk_idle_unlink(struct isod_sock *sk);
/* Looks at (at most `max` of) the sockets whose idle check is due.
 * Returns how many. */
unsigned isod_sk_idle_expire(struct isod_backend *be, unsigned max);
/* End of a pass: the TX takes queued during it, behind one barrier. */
void isod_sk_ring_takes(struct isod_backend *be);
void isod_sk_tx_push(struct isod_sock *sk);
void isod_sk_tx_acked(struct isod_sock *sk);

/* cutthru.c: local connections paired on the stack core */
#define ISOD_CUT_MSS 65483u          /* TCP_INFO's: Linux's loopback (MTU 64 KiB) */
/* CONNECT to ip:port: 1 if it was paired with a listener's new child or
 * refused (replied), 0 if it goes through lwIP (cut_through off, not a
 * local address, a full backlog, no memory for the child). */
int isod_cut_connect(struct isod_sock *sk, const struct isostack_shm_cmd *c,
		     const ip_addr_t *ip, u16_t port);
/* Moves w's TX bytes into its peer's RX ring (SEND, SHUT_WR). */
void isod_cut_move(struct isod_sock *w);
/* r's reader made room (RECV): the peer's bytes move. */
void isod_cut_pull(struct isod_sock *r);
/* A parked CLOSE of a paired socket: completes once its TX ring moved. */
void isod_cut_close_check(struct isod_sock *sk);
/* sk leaves its pair (freed); the peer keeps its state.  Idempotent. */
void isod_cut_drop(struct isod_sock *sk);
/* sk leaves its pair with a reset: the peer gets ECONNRESET. */
void isod_cut_abort(struct isod_sock *sk);
void isod_cut_names(const struct isod_sock *sk, uint16_t opcode, struct isostack_shm_status *st);
void isod_cut_accepted(const struct isod_sock *lsk, const struct isod_sock *child, uint64_t *arg);
/* TCP_INFO piece 0 or 1 of a paired socket into w: 0, or 1 if not ours. */
int isod_cut_info(struct isod_sock *sk, uint32_t w[6], int piece);
/* SO_REUSEADDR, SO_KEEPALIVE, TCP_NODELAY of a paired socket (no pcb
 * holds them; they change nothing on the stack core): 0 or -ENOPROTOOPT. */
int isod_cut_setopt(struct isod_sock *sk, int level, int name, int v);
int isod_cut_getopt(const struct isod_sock *sk, int level, int name, int *v);
size_t isod_cut_format_stats(const struct isod_backend *be, char *buf, size_t len);

/* sock_udp.c */
void isod_sk_cb_udp_recv(void *arg, struct udp_pcb *pcb, struct pbuf *p,
			 const ip_addr_t *addr, u16_t port);
void isod_sk_udp_rx_resume(struct isod_sock *sk);
void isod_sk_cmd_udp(struct isod_sock *sk, const struct isostack_shm_cmd *c);

/* sock_opt.c */
int isod_sk_opt_int(const struct isostack_shm_cmd *c, int *v);
void isod_sk_cmd_setsockopt(struct isod_sock *sk, const struct isostack_shm_cmd *c);
void isod_sk_cmd_getsockopt(struct isod_sock *sk, const struct isostack_shm_cmd *c);
void isod_sk_opt_inherit(const struct isod_sock *lsk, struct isod_sock *child, struct tcp_pcb *npcb);
uint8_t isod_sk_tos(const struct isod_sock *sk, const ip_addr_t *remote);
int isod_tcp_info(struct isod_sock *sk, int piece, uint64_t out[3]);

/* sock_close.c */
void isod_sk_closing_unlink(struct isod_sock *sk);
void isod_sk_close_finish(struct isod_sock *sk);
void isod_sk_close_check(struct isod_sock *sk);
void isod_sk_forget_timewait(struct isod_sock *sk);
void isod_sk_cmd_close(struct isod_sock *sk, const struct isostack_shm_cmd *c);
/* The stack closes an open socket itself, as if its last holder had sent
 * CLOSE (FIN after the unsent data; RST with unread data or SO_LINGER 0);
 * it ends with EV_CLOSED instead of the CLOSE reply. */
void isod_sk_close_by_stack(struct isod_sock *sk);

#endif /* ISOD_BACKEND_INTERNAL_H */
