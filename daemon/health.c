/*
 * The daemon's slow path: what it tells its operator while it runs.
 *
 * A dispatcher source like the others, but one that does almost nothing:
 * on most passes it compares the loop's cached clock (loop->now_ms, no
 * clock call) with its next deadline and returns. Every HEALTH_TICK_MS it
 *   - sends WATCHDOG=1 when its interval is due: the ping comes from the
 *     loop itself, so a loop that hangs stops pinging and systemd, after
 *     WatchdogSec, kills and restarts it;
 *   - every LIMITS_MS, compares the counters of the limits a daemon can hit
 *     (socket ids, ring memory, accept backlog, applications, mbufs) with
 *     their last values, and logs a cause the first time it moves, then at
 *     most once per LIMITS_REPEAT_MS with how many more: never a line per
 *     packet or per pass;
 *   - every STATUS_MS, sends a STATUS= line to systemd if the number of
 *     applications or sockets changed.
 * It reports no work, so its passes count as idle ones.
 */
#include "backend.h"
#include "internal.h"
#include "notify.h"

#include <errno.h>
#include <stdlib.h>

#define HEALTH_TICK_MS     100
#define LIMITS_MS          1000
#define LIMITS_REPEAT_MS   60000
#define STATUS_MS          2000

/* The limits watched: what was hit, and where isostat counts it. */
enum {
	LIM_EMFILE, LIM_ENOBUFS, LIM_BACKLOG, LIM_ACCEPT_NOMEM, LIM_APPS,
	LIM_BROKEN_APP, LIM_BROKEN_SOCK, LIM_CLOSE_TIMEOUT, LIM_RX_NOMEM,
	LIM_TX_NOMEM, LIM_COUNT
};

static const char *const limit_what[LIM_COUNT] = {
	[LIM_EMFILE] = "a SOCKET refused with EMFILE: an application has app_sockets "
		"sockets (backend.emfile)",
	[LIM_ENOBUFS] = "a SOCKET refused with ENOBUFS: ring memory (stack_memory or "
		"app_memory) or lwIP's memory is used up (backend.enobufs, mem.*)",
	[LIM_BACKLOG] = "an incoming connection's handshake ACK dropped: a listener's "
		"accept backlog is full (backend.accept_deferred)",
	[LIM_ACCEPT_NOMEM] = "an incoming connection aborted: no memory for it "
		"(backend.accept_dropped)",
	[LIM_APPS] = "an application's ATTACH refused: too many applications, or "
		"another ABI version (backend.apps_rejected)",
	[LIM_BROKEN_APP] = "an application dropped: its doorbell held garbage "
		"(backend.broken_apps)",
	[LIM_BROKEN_SOCK] = "a socket killed: its ring indices held garbage "
		"(backend.broken_socks)",
	[LIM_CLOSE_TIMEOUT] = "a closed socket reset after close_timeout: its peer "
		"took no more data (backend.close_timeouts)",
	[LIM_RX_NOMEM] = "received frames dropped: no buffer to copy them into "
		"(mbufs; port.N.rx_drop_nomem)",
	[LIM_TX_NOMEM] = "frames not sent: no mbuf, or the device's TX queue stayed "
		"full (port.N.tx_drop_nomem)",
};

struct isod_health {
	struct isod_loop *loop;
	struct isod_backend *be;
	uint32_t next_ms;            /* next look */
	uint32_t wd_ms, wd_due;      /* watchdog: interval (0: off), next ping */
	uint32_t limits_due, status_due;
	uint64_t seen[LIM_COUNT];    /* counters at the last look */
	uint64_t logged[LIM_COUNT];  /* ... when last logged */
	uint32_t logged_ms[LIM_COUNT];
	unsigned last_apps, last_socks;
};

/* Signed difference of two wrapping millisecond clocks: a is past b. */
static bool ms_reached(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) >= 0;
}

static void limits_read(const struct isod_health *h, uint64_t v[LIM_COUNT])
{
	struct isod_backend_stats st;

	isod_backend_get_stats(h->be, &st);
	v[LIM_EMFILE] = st.emfile;
	v[LIM_ENOBUFS] = st.enobufs;
	v[LIM_BACKLOG] = st.accept_deferred;
	v[LIM_ACCEPT_NOMEM] = st.accept_dropped;
	v[LIM_APPS] = st.apps_rejected;
	v[LIM_BROKEN_APP] = st.broken_apps;
	v[LIM_BROKEN_SOCK] = st.broken_socks;
	v[LIM_CLOSE_TIMEOUT] = st.close_timeouts;
	v[LIM_RX_NOMEM] = v[LIM_TX_NOMEM] = 0;
	for (unsigned i = 0; i < h->loop->nports; i++) {
		v[LIM_RX_NOMEM] += h->loop->ports[i].stats.rx_drop_nomem;
		v[LIM_TX_NOMEM] += h->loop->ports[i].stats.tx_drop_nomem;
	}
}

static void limits_check(struct isod_health *h, uint32_t now)
{
	uint64_t v[LIM_COUNT];

	limits_read(h, v);
	for (unsigned i = 0; i < LIM_COUNT; i++) {
		if (v[i] == h->seen[i])
			continue;
		h->seen[i] = v[i];
		if (h->logged[i] == 0) {
			ISOD_LOG(WARN, "limit: %s: %" PRIu64 " so far; logged again at most "
				 "once a minute", limit_what[i], v[i]);
		} else if (ms_reached(now, h->logged_ms[i] + LIMITS_REPEAT_MS)) {
			ISOD_LOG(WARN, "limit: %s: %" PRIu64 " more in the last %u s (%" PRIu64
				 " in all)", limit_what[i], v[i] - h->logged[i],
				 (unsigned)((now - h->logged_ms[i]) / 1000), v[i]);
		} else {
			continue;
		}
		h->logged[i] = v[i];
		h->logged_ms[i] = now;
	}
}

static void status_check(struct isod_health *h)
{
	unsigned apps = isod_backend_apps(h->be), socks = isod_backend_open_sockets(h->be);

	if (apps == h->last_apps && socks == h->last_socks)
		return;
	h->last_apps = apps;
	h->last_socks = socks;
	isod_notify_status("serving: %u application%s, %u socket%s", apps,
			   apps == 1 ? "" : "s", socks, socks == 1 ? "" : "s");
}

static unsigned health_poll(void *arg, unsigned budget)
{
	struct isod_health *h = arg;
	uint32_t now = h->loop->now_ms;

	(void)budget;
	if (!ms_reached(now, h->next_ms))
		return 0;
	h->next_ms = now + HEALTH_TICK_MS;
	if (h->wd_ms != 0 && ms_reached(now, h->wd_due)) {
		isod_notify_send("WATCHDOG=1", false);
		h->wd_due = now + h->wd_ms;
	}
	if (ms_reached(now, h->limits_due)) {
		limits_check(h, now);
		h->limits_due = now + LIMITS_MS;
	}
	if (ms_reached(now, h->status_due)) {
		status_check(h);
		h->status_due = now + STATUS_MS;
	}
	return 0;
}

int isod_health_start(struct isod_loop *loop, struct isod_backend *be,
		      struct isod_health **out)
{
	struct isod_health *h = calloc(1, sizeof(*h));
	int ret;

	if (h == NULL)
		return -ENOMEM;
	h->loop = loop;
	h->be = be;
	h->next_ms = h->wd_due = h->limits_due = h->status_due = loop->now_ms;
	h->wd_ms = isod_notify_watchdog_ms();
	/* The limits hit before start (none: the back-end is new) are the
	 * baseline; a first look with counters at zero logs nothing. */
	limits_read(h, h->seen);
	ret = isod_loop_add_source(loop, "health", 1, health_poll, h);
	if (ret != 0) {
		free(h);
		return ret;
	}
	if (h->wd_ms != 0)
		ISOD_LOG(INFO, "watchdog: WATCHDOG=1 every %u ms from the loop", h->wd_ms);
	*out = h;
	return 0;
}

void isod_health_stop(struct isod_health *h)
{
	free(h);
}
