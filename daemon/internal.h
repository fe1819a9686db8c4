/*
 * isostackd internals: configuration, the dispatcher loop with its event
 * and park mechanism, and the diagnostic echo/discard service.
 *
 * Everything here runs on the stack lcore, except the signal handler,
 * which only sets a flag and rings the loop's eventfd.
 */
#ifndef ISOD_INTERNAL_H
#define ISOD_INTERNAL_H

/* Before any lwIP header: it settles DPDK's and lwIP's shared macros. */
#include "netif_dpdk.h"

#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "log.h"        /* ISOD_LOG(LEVEL, fmt, ...) */

/* ---- Configuration (config.c) ------------------------------------------ */

/* Set by daemon/meson.build from sysconfdir (/etc with prefix /usr). */
#ifndef ISOD_CONF_DEFAULT
#define ISOD_CONF_DEFAULT       "/etc/isostack/isostackd.conf"
#endif
#define ISOD_MAX_PORTS          8
#define ISOD_MAX_EAL_ARGS       64

enum isod_mode {
	ISOD_MODE_BUSY,            /* poll forever (default) */
	ISOD_MODE_ADAPTIVE,        /* sleep on RX interrupts/eventfd when idle */
};

struct isod_port_conf {
	char dev[256];             /* vdev devargs, or a PCI address */
	bool is_pci;
	uint32_t ip, netmask, gw;  /* network byte order; gw 0: none */
	uint8_t ip6[16];           /* a /64 on link; all zero: link-local only */
};

struct isod_config {
	char path[PATH_MAX];       /* the file read, "" if none */
	unsigned lcore;
	unsigned mbufs;            /* per port */
	unsigned mtu;              /* every port's MTU; 0: the device's own */
	enum isod_mode mode;
	unsigned idle_us;          /* idle time before sleeping (adaptive) */
	unsigned sleep_us;         /* longest timed sleep without RX interrupts */
	unsigned burst;            /* frames or events per unit of weight */
	unsigned weight_rx, weight_events;
	unsigned weight_apps;      /* application commands (socket back-end) */
	bool echo;
	uint32_t echo_addr;        /* network byte order */
	bool tso;                  /* use TSO on ports that offer it */
	bool gro;                  /* coalesce received segments (tcpip/gro.h) */
	bool cut_through;          /* pair local connections (backend/cutthru.c) */
	bool tx_watch;             /* watch tx_prod after SENDs (backend/txwatch.c) */
	char control[PATH_MAX];
	int control_gid;           /* group of the control socket; -1: none */
	unsigned max_apps_per_uid; /* applications per uid other than root; 0: no bound */
	unsigned close_timeout;    /* s: a CLOSE facing a zero window, then RST */
	unsigned app_sockets;      /* socket ids per application */
	uint64_t stack_memory;     /* ring memory of all applications; 0: auto */
	uint32_t tx_ring, rx_ring; /* most bytes a TCP socket's rings grow to (UDP: the
				    * rings), powers of two */
	uint32_t tx_ring_start, rx_ring_start; /* TCP rings of a new socket */
	uint64_t app_memory;       /* TX+RX ring bytes of an application's open
				    * sockets (ENOBUFS beyond); 0: no limit */
	/* An application's share of lwIP's pools (backend/appcap.c); 0: no cap */
	unsigned app_pcbs;         /* TCP pcbs its sockets hold */
	unsigned app_tx_segs;      /* TX queue entries (segments and their pbufs) */
	uint64_t app_rx_held_bytes; /* received pbuf memory not yet in its rings */
	uint32_t variant;          /* ISOSTACK_SHM_VARIANT_*: the paper's variants */
	unsigned variant_queues;   /* Basic/Aggregate: doorbells (threads) per app */
	int log_level;             /* ISOD_LOG_*: the least severe level logged */
	unsigned nports;
	struct isod_port_conf ports[ISOD_MAX_PORTS];
	int eal_argc;              /* extra EAL arguments: "eal" key, then after -- */
	char *eal_argv[ISOD_MAX_EAL_ARGS];
};

/*
 * Fill `cfg` from defaults, the configuration file (--config, or the
 * default path if it exists) and the command line, in that order. Returns
 * 0; 1 when --help was printed; or -EINVAL after printing why to stderr.
 */
int isod_config_load(struct isod_config *cfg, int argc, char **argv);
void isod_config_free(struct isod_config *cfg);
const char *isod_mode_name(enum isod_mode mode);
const char *isod_variant_name(uint32_t variant);

/* ---- Dispatcher loop (loop.c) ------------------------------------------ */

/* Internal events that resume parked work (paper 4.4). */
enum {
	ISOD_EV_DATA    = 1u << 0, /* data arrived */
	ISOD_EV_SENT    = 1u << 1, /* send window opened */
	ISOD_EV_ACCEPT  = 1u << 2, /* connection accepted */
	ISOD_EV_CLOSED  = 1u << 3, /* peer closed its side */
	ISOD_EV_ERR     = 1u << 4, /* connection gone (lwIP freed the pcb) */
};

/*
 * A parked state machine: a command that could not finish embeds one,
 * returns to the dispatcher, and is resumed with the accumulated event bits
 * once an event is posted for it. A park sits on the ready list at most
 * once; posting to a queued park only adds bits. The owner frees the
 * memory only from inside its resume function (the park is off the list
 * then), never from an lwIP callback.
 */
struct isod_park;
typedef void (*isod_resume_fn)(struct isod_park *park, uint32_t events);

struct isod_park {
	struct isod_park *next;
	isod_resume_fn resume;
	uint32_t events;
	bool queued;
};

/*
 * A source of work polled by the dispatcher. poll() does at most `budget`
 * units of work (frames, events, commands) and returns how many it did.
 * The shm issue's application-doorbell source plugs in here, through
 * isod_loop_add_source(), one source per application or one for all.
 */
typedef unsigned (*isod_poll_fn)(void *arg, unsigned budget);

struct isod_source {
	const char *name;
	isod_poll_fn poll;
	void *arg;
	unsigned weight;
	uint64_t calls, work;
	uint64_t busy_tsc;            /* TSC cycles of the calls that did work */
	uint64_t busy_dev_tsc;        /* of busy_tsc: inside the ports' bursts */
};

#define ISOD_MAX_SOURCES        32

/* isod_loop_paths(): busy stack cycles (device time apart) by path. */
struct isod_loop_paths {
	uint64_t rx_tsc, rx_frames;   /* receiving, frames received (looped too) */
	uint64_t tx_tsc, tx_frames;   /* commands + timers, frames sent */
};

struct isod_loop_stats {
	uint64_t iterations;
	uint64_t busy_tsc, idle_tsc;  /* loop passes that did work / did none */
	uint64_t dev_tsc;             /* of busy_tsc: inside the ports' RX/TX
				       * burst calls (the rest is stack work) */
	uint64_t sleeps, sleep_tsc;   /* power saving: times and time asleep */
	uint64_t wakeups_intr, wakeups_fd, wakeups_timeout;
	uint64_t events;              /* parked work resumed */
	/* Long passes: while one runs, nobody drains the device's RX ring
	 * (af_xdp: 2,048 fill buffers, a ms or two of frames). */
	uint64_t max_pass_tsc;
	uint64_t passes_100us, passes_1ms, passes_10ms;  /* at least this long */
	uint64_t max_timers_tsc;      /* lwIP's timers, the longest run */
	uint64_t timers_tsc;          /* lwIP's timers, all runs */
};

struct isod_loop {
	struct isod_source src[ISOD_MAX_SOURCES];
	unsigned nsrc;
	struct isotcp_dpdk_port *ports;
	unsigned nports;
	unsigned burst;
	enum isod_mode mode;
	uint64_t idle_tsc;            /* adaptive: idle this long, then sleep */
	uint64_t tsc_100us;
	unsigned sleep_us;
	bool rx_intr;                 /* every port has RX interrupts */
	int wake_fd;                  /* eventfd: signals ring it */
	int doorbell_fd;              /* the applications' doorbell fds (an epoll
				       * set, isod_backend_wake_fd); -1: none */
	bool sleeping;                /* doorbells must ring their fds now */
	struct isod_park *ready_head, **ready_tail;
	uint64_t dev_seen;            /* sum of the ports' stats.dev_tsc at the
				       * end of the last pass (or sleep) */
	uint64_t timer_due;           /* next sys_check_timeouts(), TSC */
	uint32_t now_ms;              /* sys_now() read at the start of the
				       * pass in which timer_due last passed:
				       * lags it by under 1 ms (plus a pass) */
	/* Called with true before a sleep (non-zero: work is waiting, do not
	 * sleep) and with false after it; lets applications know they must
	 * ring wake_fd while the loop sleeps. NULL: no such source. */
	unsigned (*nap)(void *arg, bool napping);
	void *nap_arg;
	struct isod_loop_stats stats;
};

/*
 * Set up the loop for `nports` started ports: the eventfd, its place in the
 * thread's DPDK epoll instance, the RX sources, the event source. Returns 0
 * or -errno.
 */
int isod_loop_init(struct isod_loop *loop, const struct isod_config *cfg,
		   struct isotcp_dpdk_port *ports, unsigned nports);
void isod_loop_fini(struct isod_loop *loop);
int isod_loop_add_source(struct isod_loop *loop, const char *name,
			 unsigned weight, isod_poll_fn poll, void *arg);
/* The one more fd whose readability ends a sleep (the back-end's
 * doorbell set), never read by the loop; -1: none any more (before it is
 * closed).  Returns 0 or -errno. */
int isod_loop_set_wake_fd(struct isod_loop *loop, int fd);
/* Run until *stop becomes non-zero (set from a signal handler). */
void isod_loop_run(struct isod_loop *loop, volatile sig_atomic_t *stop);
/* Ring the loop awake from anywhere (async-signal-safe). */
void isod_loop_wake(struct isod_loop *loop);
void isod_loop_log_stats(const struct isod_loop *loop);
void isod_loop_paths(const struct isod_loop *loop, struct isod_loop_paths *p);

void isod_park_init(struct isod_park *park, isod_resume_fn resume);
/* Record `events` for `park` and queue it for resumption (once). */
void isod_event_post(struct isod_loop *loop, struct isod_park *park, uint32_t events);
/* Drop every queued park without resuming it (shutdown). */
void isod_loop_drop_ready(struct isod_loop *loop);

/* ---- Statistics (stats.c) --------------------------------------------- */

/*
 * The daemon's part of the STATS reply: "name value" lines for the loop,
 * every port and lwIP's protocol counters, written into buf (at most len
 * bytes, truncated there). Returns the bytes written. Stack lcore only.
 */
size_t isod_stats_format(const struct isod_loop *loop, char *buf, size_t len);

/* ---- Slow path: watchdog, limits hit, status (health.c) ---------------- */

struct isod_health;
struct isod_backend;

/*
 * Add the "health" source to the loop: WATCHDOG=1 pings when systemd asks
 * for them, a log line when a limit is first hit (then at most once a
 * minute per cause), STATUS= when applications or sockets change. Returns
 * 0 or -errno (-ENOMEM, -ENOSPC: no source slot); nothing to free then.
 */
int isod_health_start(struct isod_loop *loop, struct isod_backend *be,
		      struct isod_health **out);
/* After the loop stopped: the source is never polled again. NULL: no-op. */
void isod_health_stop(struct isod_health *h);

/* ---- Diagnostic echo (port 7) and discard (port 9) service (echo.c) ---- */

struct isod_echo;

/*
 * Listen on addr:7 and addr:9 (network byte order). Returns 0 or -errno
 * (-EADDRINUSE, -ENOMEM); on failure nothing stays open.
 */
/* TCP echo (port 7) and discard (9) on addr (IPv4, network order) and,
 * when addr6 is not NULL, on that IPv6 address too. */
int isod_echo_start(struct isod_loop *loop, uint32_t addr, const uint8_t *addr6,
		    struct isod_echo **out);
/* Close the listeners and abort every connection. */
void isod_echo_stop(struct isod_echo *echo);

#endif /* ISOD_INTERNAL_H */
