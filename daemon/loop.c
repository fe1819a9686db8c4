/*
 * The dispatcher: a single-threaded, non-preemptive loop (paper 4.4).
 *
 * Each pass visits every source in a fixed round-robin order and lets it do
 * up to weight x burst units of work: RX queues (frames into lwIP), the
 * ready list of parked state machines (resumed by internal events), and
 * later the application doorbells of the shm transport. Because every
 * source's share per pass is bounded, a flood on one port cannot starve
 * the others, nor the applications, nor the timers. After the sources, the
 * lwIP timers run (at most once per millisecond, from the TSC clock) and
 * every port's TX queue is flushed with one rte_eth_tx_burst() per port:
 * all frames produced during the pass leave together. Each pass is timed
 * as busy (it did work) or idle; of the busy cycles, those inside the
 * ports' burst calls (the netif's dev_tsc) are device I/O, the rest stack
 * work (docs/daemon.md, the loop's cycles).
 *
 * Internal events: lwIP callbacks (data arrived, window opened, accepted,
 * error) never run application work themselves; they post an event to the
 * park that waits for it, and the event source resumes it on the next
 * pass. So lwIP is never re-entered from its own callbacks, and resumed
 * work takes its turn with everything else.
 *
 * Power saving (mode adaptive): after idle_us without work the loop arms
 * the ports' RX interrupts and sleeps in rte_epoll_wait() on the thread's
 * DPDK epoll instance, where the loop's eventfd (signals ring it) and the
 * back-end's set of application doorbell fds are registered too; the
 * next lwIP timer bounds the sleep. PMDs without RX interrupts (af_xdp,
 * af_packet in DPDK 22.11) get a timed sleep on those two fds instead,
 * backing off from 50 us to sleep_us.
 */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_epoll.h>
#include <rte_interrupts.h>

#include "isotcp.h"
#include "lwip/sys.h"
#include "lwip/timeouts.h"

#define SLEEP_MIN_US            50
/* Longest interrupt-mode sleep: a bound, in case a wakeup is ever lost. */
#define SLEEP_MAX_MS            100

static struct rte_epoll_event wake_ev, doorbell_ev;

void isod_park_init(struct isod_park *park, isod_resume_fn resume)
{
	memset(park, 0, sizeof(*park));
	park->resume = resume;
}

void isod_event_post(struct isod_loop *loop, struct isod_park *park, uint32_t events)
{
	park->events |= events;
	if (park->queued)
		return;
	park->queued = true;
	park->next = NULL;
	*loop->ready_tail = park;
	loop->ready_tail = &park->next;
}

void isod_loop_drop_ready(struct isod_loop *loop)
{
	while (loop->ready_head != NULL) {
		struct isod_park *p = loop->ready_head;

		loop->ready_head = p->next;
		p->queued = false;
	}
	loop->ready_tail = &loop->ready_head;
}

/*
 * The event source. Parks posted while this runs (including by a resume
 * function) go to the tail and wait for the next pass, so one busy
 * connection cannot keep the dispatcher here.
 */
static unsigned events_poll(void *arg, unsigned budget)
{
	struct isod_loop *loop = arg;
	struct isod_park *end;
	unsigned done = 0;

	if (loop->ready_head == NULL)
		return 0;
	/* This pass handles what is queued now (up to budget): the last one
	 * is the park whose next field the tail points at. */
	end = container_of(loop->ready_tail, struct isod_park, next);
	while (done < budget && loop->ready_head != NULL) {
		struct isod_park *p = loop->ready_head;
		uint32_t ev = p->events;
		bool last = p == end;

		loop->ready_head = p->next;
		if (loop->ready_head == NULL)
			loop->ready_tail = &loop->ready_head;
		p->queued = false;
		p->events = 0;
		p->resume(p, ev);       /* may free p, or post it again */
		done++;
		if (last)
			break;
	}
	loop->stats.events += done;
	return done;
}

static unsigned port_poll(void *arg, unsigned budget)
{
	return isotcp_dpdk_poll(arg, budget);
}

/* Packets to our own addresses: what was looped before this pass. */
static unsigned loopback_poll(void *arg, unsigned budget)
{
	struct isod_loop *loop = arg;

	(void)budget;
	return isotcp_dpdk_loop_poll(loop->ports, loop->nports);
}

int isod_loop_add_source(struct isod_loop *loop, const char *name,
			 unsigned weight, isod_poll_fn poll, void *arg)
{
	struct isod_source *s;

	if (loop->nsrc == ISOD_MAX_SOURCES)
		return -ENOSPC;
	s = &loop->src[loop->nsrc++];
	memset(s, 0, sizeof(*s));
	s->name = name;
	s->weight = weight;
	s->poll = poll;
	s->arg = arg;
	return 0;
}

int isod_loop_init(struct isod_loop *loop, const struct isod_config *cfg,
		   struct isotcp_dpdk_port *ports, unsigned nports)
{
	int ret;

	memset(loop, 0, sizeof(*loop));
	loop->ready_tail = &loop->ready_head;
	loop->ports = ports;
	loop->nports = nports;
	loop->burst = cfg->burst;
	loop->mode = cfg->mode;
	loop->idle_tsc = (uint64_t)cfg->idle_us * isotcp_clock_tsc_per_us();
	loop->tsc_100us = 100 * isotcp_clock_tsc_per_us();
	loop->sleep_us = cfg->sleep_us;
	loop->rx_intr = nports > 0;
	loop->doorbell_fd = -1;
	for (unsigned i = 0; i < nports; i++)
		loop->rx_intr = loop->rx_intr && ports[i].caps.rx_intr;

	loop->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (loop->wake_fd < 0)
		return -errno;
	/* On the same per-thread epoll instance as the RX queue interrupts. */
	memset(&wake_ev, 0, sizeof(wake_ev));
	wake_ev.epdata.event = EPOLLIN;
	wake_ev.epdata.data = loop;
	ret = rte_epoll_ctl(RTE_EPOLL_PER_THREAD, EPOLL_CTL_ADD, loop->wake_fd, &wake_ev);
	if (ret != 0) {
		ret = ret < 0 ? ret : -EIO;
		goto err_fd;
	}
	for (unsigned i = 0; i < nports; i++) {
		ret = isod_loop_add_source(loop, ports[i].name, cfg->weight_rx,
					   port_poll, &ports[i]);
		if (ret != 0)
			goto err_epoll;
	}
	ret = isod_loop_add_source(loop, "loopback", cfg->weight_rx, loopback_poll, loop);
	if (ret != 0)
		goto err_epoll;
	ret = isod_loop_add_source(loop, "events", cfg->weight_events, events_poll, loop);
	if (ret != 0)
		goto err_epoll;
	return 0;

err_epoll:
	rte_epoll_ctl(RTE_EPOLL_PER_THREAD, EPOLL_CTL_DEL, loop->wake_fd, &wake_ev);
err_fd:
	close(loop->wake_fd);
	loop->wake_fd = -1;
	return ret;
}

int isod_loop_set_wake_fd(struct isod_loop *loop, int fd)
{
	int ret;

	if (loop->doorbell_fd >= 0) {
		rte_epoll_ctl(RTE_EPOLL_PER_THREAD, EPOLL_CTL_DEL, loop->doorbell_fd,
			      &doorbell_ev);
		loop->doorbell_fd = -1;
	}
	if (fd < 0)
		return 0;
	memset(&doorbell_ev, 0, sizeof(doorbell_ev));
	doorbell_ev.epdata.event = EPOLLIN;
	doorbell_ev.epdata.data = loop;
	ret = rte_epoll_ctl(RTE_EPOLL_PER_THREAD, EPOLL_CTL_ADD, fd, &doorbell_ev);
	if (ret != 0)
		return ret < 0 ? ret : -EIO;
	loop->doorbell_fd = fd;
	return 0;
}

void isod_loop_fini(struct isod_loop *loop)
{
	isod_loop_drop_ready(loop);
	isod_loop_set_wake_fd(loop, -1);
	if (loop->wake_fd >= 0) {
		rte_epoll_ctl(RTE_EPOLL_PER_THREAD, EPOLL_CTL_DEL, loop->wake_fd, &wake_ev);
		close(loop->wake_fd);
		loop->wake_fd = -1;
	}
}

void isod_loop_wake(struct isod_loop *loop)
{
	uint64_t one = 1;
	ssize_t r = write(loop->wake_fd, &one, sizeof(one));

	(void)r;    /* EAGAIN: the counter is already non-zero, we are awake */
}

static void wake_fd_drain(struct isod_loop *loop)
{
	uint64_t v;
	ssize_t r = read(loop->wake_fd, &v, sizeof(v));

	(void)r;
}

/* Milliseconds until lwIP's next timer, capped. */
static uint32_t next_timer_ms(uint32_t cap)
{
	uint32_t ms = sys_timeouts_sleeptime();

	return ms < cap ? ms : cap;
}

/*
 * Interrupt mode: arm every port, look once more for frames that arrived
 * before the arming (their interrupt may already have passed), then sleep
 * until a frame, a doorbell, a signal or the next lwIP timer.
 */
static void sleep_intr(struct isod_loop *loop)
{
	struct rte_epoll_event ev[ISOD_MAX_PORTS + 1];
	unsigned late = 0;
	int n;

	for (unsigned i = 0; i < loop->nports; i++)
		isotcp_dpdk_rx_intr_arm(&loop->ports[i]);
	for (unsigned i = 0; i < loop->nports; i++)
		late += isotcp_dpdk_poll(&loop->ports[i], loop->burst);
	if (late == 0) {
		loop->sleeping = true;
		n = rte_epoll_wait(RTE_EPOLL_PER_THREAD, ev, RTE_DIM(ev),
				   (int)next_timer_ms(SLEEP_MAX_MS));
		loop->sleeping = false;
		if (n <= 0) {
			loop->stats.wakeups_timeout++;
		} else {
			for (int i = 0; i < n; i++) {
				if (ev[i].fd == loop->wake_fd || ev[i].fd == loop->doorbell_fd)
					loop->stats.wakeups_fd++;
				else
					loop->stats.wakeups_intr++;
			}
		}
	}
	for (unsigned i = 0; i < loop->nports; i++)
		isotcp_dpdk_rx_intr_disarm(&loop->ports[i]);
	wake_fd_drain(loop);
}

/* Timed mode: no RX interrupts, so sleep a little on the wake fds only
 * (a negative doorbell_fd is skipped by ppoll). */
static void sleep_timed(struct isod_loop *loop, unsigned us)
{
	struct pollfd pfd[2] = {
		{ .fd = loop->wake_fd, .events = POLLIN },
		{ .fd = loop->doorbell_fd, .events = POLLIN },
	};
	uint64_t timer_us = (uint64_t)next_timer_ms(1000) * 1000;
	struct timespec ts;
	int n;

	if (timer_us < us)
		us = timer_us > 0 ? (unsigned)timer_us : 1;
	ts.tv_sec = us / 1000000;
	ts.tv_nsec = (long)(us % 1000000) * 1000;
	loop->sleeping = true;
	n = ppoll(pfd, 2, &ts, NULL);
	loop->sleeping = false;
	if (n > 0) {
		loop->stats.wakeups_fd++;
		if (pfd[0].revents & POLLIN)
			wake_fd_drain(loop);
	} else {
		loop->stats.wakeups_timeout++;
	}
}

/* The ports' device cycles so far; the loop keeps the busy passes' share. */
static uint64_t ports_dev_tsc(const struct isod_loop *loop)
{
	uint64_t dev = 0;

	for (unsigned i = 0; i < loop->nports; i++)
		dev += loop->ports[i].stats.dev_tsc;
	return dev;
}

static void pass_long(struct isod_loop_stats *s, uint64_t tsc, uint64_t tsc_100us)
{
	s->passes_100us++;
	s->passes_1ms += tsc >= 10 * tsc_100us;
	s->passes_10ms += tsc >= 100 * tsc_100us;
	if (tsc > s->max_pass_tsc)
		s->max_pass_tsc = tsc;
}

/* Called once per millisecond of TSC time (see isod_loop_run). */
static void timers_run(struct isod_loop *loop, uint64_t now)
{
	uint64_t took;

	sys_check_timeouts();
	took = rte_get_tsc_cycles() - now;
	loop->stats.timers_tsc += took;
	if (took > loop->stats.max_timers_tsc)
		loop->stats.max_timers_tsc = took;
	/* lwIP's timers have millisecond resolution: look again in 1 ms. */
	loop->timer_due = now + isotcp_clock_tsc_per_ms();
}

void isod_loop_run(struct isod_loop *loop, volatile sig_atomic_t *stop)
{
	uint64_t last_work = rte_get_tsc_cycles();
	unsigned backoff_us = SLEEP_MIN_US;

	ISOD_LOG(INFO, "loop: %u sources, burst %u, mode %s%s", loop->nsrc, loop->burst,
		 isod_mode_name(loop->mode),
		 loop->mode == ISOD_MODE_BUSY ? "" :
		 loop->rx_intr ? " (sleeps on RX interrupts + eventfd)" :
		 " (no RX interrupts on every port: timed sleeps on the eventfd)");
	while (!*stop) {
		uint64_t t0 = rte_get_tsc_cycles(), t = t0, t1, dev = 0, dev_pass;
		uint64_t d = ports_dev_tsc(loop);
		/* lwIP's timers have millisecond resolution: they run, and the
		 * cached clock is read, at most once per millisecond. */
		bool tick = t0 >= loop->timer_due;
		unsigned work = 0;

		if (tick)
			loop->now_ms = sys_now();

		for (unsigned i = 0; i < loop->nsrc; i++) {
			struct isod_source *s = &loop->src[i];
			unsigned n = s->poll(s->arg, s->weight * loop->burst);

			s->calls++;
			s->work += n;
			/* Timed only when it did work: an idle pass reads no
			 * clock here (the idle calls before a busy one count
			 * with it, a few dozen cycles each). */
			if (n > 0) {
				uint64_t t_next = rte_get_tsc_cycles();
				uint64_t d_next = ports_dev_tsc(loop);

				s->busy_tsc += t_next - t;
				s->busy_dev_tsc += d_next - d;
				t = t_next;
				d = d_next;
			}
			work += n;
		}
		if (tick) {
			timers_run(loop, rte_get_tsc_cycles());
		} else if (isotcp_timers_pending()) {
			uint64_t tt = rte_get_tsc_cycles();

			isotcp_timers_continue();
			loop->stats.timers_tsc += rte_get_tsc_cycles() - tt;
			work++;
		}
		for (unsigned i = 0; i < loop->nports; i++) {
			if (isotcp_dpdk_tx_pending(&loop->ports[i]) > 0) {
				isotcp_dpdk_flush(&loop->ports[i]);
				work++;
			}
			dev += loop->ports[i].stats.dev_tsc;
		}

		t1 = rte_get_tsc_cycles();
		loop->stats.iterations++;
		if (t1 - t0 >= loop->tsc_100us)
			pass_long(&loop->stats, t1 - t0, loop->tsc_100us);
		dev_pass = dev - loop->dev_seen;
		loop->dev_seen = dev;
		if (work > 0) {
			loop->stats.busy_tsc += t1 - t0;
			loop->stats.dev_tsc += dev_pass;
			last_work = t1;
			backoff_us = SLEEP_MIN_US;
			continue;
		}
		loop->stats.idle_tsc += t1 - t0;
		if (loop->mode != ISOD_MODE_ADAPTIVE || t1 - last_work < loop->idle_tsc ||
		    loop->ready_head != NULL || isotcp_dpdk_loop_pending(loop->ports, loop->nports))
			continue;
		/* Announce the nap first, then look once more: a doorbell rung
		 * before the announcement is seen here, one rung after it also
		 * writes wake_fd (docs/sockets.md, napping). */
		if (loop->nap != NULL && loop->nap(loop->nap_arg, true) != 0) {
			loop->nap(loop->nap_arg, false);
			continue;
		}
		loop->stats.sleeps++;
		if (loop->rx_intr) {
			sleep_intr(loop);
		} else {
			sleep_timed(loop, backoff_us);
			backoff_us = backoff_us * 2 < loop->sleep_us ? backoff_us * 2
								     : loop->sleep_us;
		}
		if (loop->nap != NULL)
			loop->nap(loop->nap_arg, false);
		loop->dev_seen = ports_dev_tsc(loop);   /* sleep_intr's polls */
		loop->stats.sleep_tsc += rte_get_tsc_cycles() - t1;
	}
}

/*
 * The stack's busy cycles by path: receiving (the ports' and the loopback's
 * polls, less the device's time in RX bursts, and the events they resume:
 * lwIP's input, the ACKs it sends meanwhile, the applications' statuses)
 * and sending (the applications' commands and lwIP's timers: tcp_write,
 * tcp_output, retransmissions, delayed ACKs). Frames received and sent go
 * with them for the cycles per frame isostat prints.
 */
void isod_loop_paths(const struct isod_loop *loop, struct isod_loop_paths *p)
{
	memset(p, 0, sizeof(*p));
	for (unsigned i = 0; i < loop->nsrc; i++) {
		const struct isod_source *s = &loop->src[i];
		uint64_t stack = s->busy_tsc - s->busy_dev_tsc;

		if (s->poll == port_poll || s->poll == loopback_poll || s->poll == events_poll)
			p->rx_tsc += stack;
		else if (strcmp(s->name, "apps") == 0 || strcmp(s->name, "txzc") == 0)
			p->tx_tsc += stack;     /* (not the health source's checks) */
	}
	p->tx_tsc += loop->stats.timers_tsc;
	for (unsigned i = 0; i < loop->nports; i++) {
		const struct isotcp_dpdk_stats *ps = &loop->ports[i].stats;

		p->rx_frames += ps->rx_pkts + ps->lo_pkts;
		p->tx_frames += ps->tx_pkts;
	}
}

void isod_loop_log_stats(const struct isod_loop *loop)
{
	const struct isod_loop_stats *s = &loop->stats;
	uint64_t hz = rte_get_tsc_hz();

	ISOD_LOG(INFO, "loop: %" PRIu64 " iterations, busy %.3f s (device %.3f s), idle %.3f s, "
		 "asleep %.3f s in %" PRIu64 " sleeps (woken: %" PRIu64 " rx-intr, %"
		 PRIu64 " eventfd, %" PRIu64 " timeout), %" PRIu64 " events",
		 s->iterations, (double)s->busy_tsc / (double)hz,
		 (double)s->dev_tsc / (double)hz,
		 (double)s->idle_tsc / (double)hz, (double)s->sleep_tsc / (double)hz,
		 s->sleeps, s->wakeups_intr, s->wakeups_fd, s->wakeups_timeout, s->events);
	for (unsigned i = 0; i < loop->nsrc; i++)
		ISOD_LOG(INFO, "loop: source %-16s weight %u: %" PRIu64 " calls, %" PRIu64 " units",
			 loop->src[i].name, loop->src[i].weight, loop->src[i].calls,
			 loop->src[i].work);
}
