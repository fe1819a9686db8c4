/*
 * The daemon's half of the STATS reply (include/isostack/ctl_proto.h): per
 * port packet, byte, drop and error counters; the loop's iterations, its
 * busy versus idle cycles and the busy ones split into device I/O (the
 * burst calls) and stack work; lwIP's protocol counters. The back-end
 * appends its per-application and per-socket lines to the same body.
 *
 * Format: "name value\n", value a decimal integer; names are dotted paths
 * (port.0.rx_pkts), so isostat and scripts can group them.
 */
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mempool.h>

#include "lwip/memp.h"
#include "lwip/stats.h"

#include "backend.h"
#include "isotcp.h"
#include "internal.h"

/* Each source's share, and the stack's cycles per frame by path. */
static void put_paths(struct isod_strbuf *o, const struct isod_loop *loop)
{
	struct isod_loop_paths p;

	for (unsigned i = 0; i < loop->nsrc; i++) {
		const struct isod_source *s = &loop->src[i];

		isod_strbuf_put(o, "loop.src.%s.calls %" PRIu64 "\nloop.src.%s.work %" PRIu64 "\n"
		    "loop.src.%s.busy_cycles %" PRIu64 "\n",
		    s->name, s->calls, s->name, s->work, s->name, s->busy_tsc);
	}
	isod_loop_paths(loop, &p);
	isod_strbuf_put(o, "loop.timers_cycles %" PRIu64 "\n"
	    "loop.rx_path_cycles %" PRIu64 "\nloop.rx_path_cycles_per_frame %" PRIu64 "\n"
	    "loop.tx_path_cycles %" PRIu64 "\nloop.tx_path_cycles_per_frame %" PRIu64 "\n",
	    loop->stats.timers_tsc,
	    p.rx_tsc, p.rx_frames ? p.rx_tsc / p.rx_frames : 0,
	    p.tx_tsc, p.tx_frames ? p.tx_tsc / p.tx_frames : 0);
}

static void put_port(struct isod_strbuf *o, unsigned i, const struct isotcp_dpdk_port *p)
{
	const struct isotcp_dpdk_stats *s = &p->stats;
	struct rte_eth_stats hw;

	isod_strbuf_put(o, "port.%u.rx_pkts %" PRIu64 "\nport.%u.rx_bytes %" PRIu64 "\n",
	    i, s->rx_pkts, i, s->rx_bytes);
	isod_strbuf_put(o, "port.%u.tx_pkts %" PRIu64 "\nport.%u.tx_bytes %" PRIu64 "\n",
	    i, s->tx_pkts, i, s->tx_bytes);
	isod_strbuf_put(o, "port.%u.rx_drop_cksum %" PRIu64 "\nport.%u.rx_drop_bad %" PRIu64 "\n"
	    "port.%u.rx_drop_nomem %" PRIu64 "\nport.%u.rx_copied %" PRIu64 "\n",
	    i, s->rx_drop_cksum, i, s->rx_drop_bad, i, s->rx_drop_nomem, i, s->rx_copied);
	isod_strbuf_put(o, "port.%u.tx_drop_nomem %" PRIu64 "\nport.%u.tx_drop_toolong %" PRIu64 "\n"
	    "port.%u.tx_partial %" PRIu64 "\nport.%u.tx_drop_stuck %" PRIu64 "\n",
	    i, s->tx_drop_nomem, i, s->tx_drop_toolong, i, s->tx_partial,
	    i, s->tx_drop_stuck);
	isod_strbuf_put(o, "port.%u.tx_zc_frames %" PRIu64 "\nport.%u.tx_zc_bytes %" PRIu64 "\n"
	    "port.%u.tx_copied_frames %" PRIu64 "\n",
	    i, s->tx_zc_frames, i, s->tx_zc_bytes, i, s->tx_copied_frames);
	isod_strbuf_put(o, "port.%u.tx_tso_frames %" PRIu64 "\nport.%u.tx_tso_bytes %" PRIu64 "\n",
	    i, s->tx_tso_frames, i, s->tx_tso_bytes);
	isod_strbuf_put(o, "port.%u.dev_cycles %" PRIu64 "\nport.%u.dev_tx_cycles %" PRIu64 "\n",
	    i, s->dev_tsc, i, s->dev_tx_tsc);
	isod_strbuf_put(o, "port.%u.rx_gro_merged %" PRIu64 "\nport.%u.rx_gro_pkts %" PRIu64 "\n"
	    "port.%u.rx_gro_drop_cksum %" PRIu64 "\n",
	    i, p->gro.merged, i, p->gro.delivered, i, p->gro.bad_cksum);
	isod_strbuf_put(o, "port.%u.lo_pkts %" PRIu64 "\nport.%u.lo_bytes %" PRIu64 "\n"
	    "port.%u.lo_drop_nomem %" PRIu64 "\n",
	    i, s->lo_pkts, i, s->lo_bytes, i, s->lo_drop_nomem);
	if (rte_eth_stats_get(p->port_id, &hw) == 0)
		isod_strbuf_put(o, "port.%u.dev_imissed %" PRIu64 "\nport.%u.dev_ierrors %" PRIu64 "\n"
		    "port.%u.dev_oerrors %" PRIu64 "\nport.%u.dev_rx_nombuf %" PRIu64 "\n",
		    i, hw.imissed, i, hw.ierrors, i, hw.oerrors, i, hw.rx_nombuf);
}

/* lwIP's pool names, lower-cased when printed: memp.tcp_pcb.used. */
static const char *const pool_names[MEMP_MAX] = {
#define LWIP_MEMPOOL(name, num, size, desc) #name,
#include "lwip/priv/memp_std.h"
};

/*
 * lwIP's memory as levels, for leak hunting (isostack bench soak): every
 * memp pool's entries in use, their high-water mark, and allocations it
 * refused; memp.heap is lwIP's heap (PBUF_RAM, malloc'd: bytes); each
 * port's mbufs out of its mempool (RX frames lwIP holds, TX in flight).
 */
static void put_pools(struct isod_strbuf *o, const struct isod_loop *loop)
{
	char name[32];

	for (int i = 0; i < MEMP_MAX; i++) {
		const struct stats_mem *m = memp_pools[i]->stats;
		size_t n = 0;

		for (const char *c = pool_names[i]; *c != '\0' && n + 1 < sizeof(name); c++)
			name[n++] = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
		name[n] = '\0';
		isod_strbuf_put(o, "memp.%s.used %u\nmemp.%s.max %u\nmemp.%s.err %u\n",
		    name, (unsigned)m->used, name, (unsigned)m->max, name, (unsigned)m->err);
	}
	isod_strbuf_put(o, "memp.heap.used %u\nmemp.heap.max %u\nmemp.heap.err %u\n",
	    (unsigned)lwip_stats.mem.used, (unsigned)lwip_stats.mem.max,
	    (unsigned)lwip_stats.mem.err);
	for (unsigned i = 0; i < loop->nports; i++)
		isod_strbuf_put(o, "port.%u.mbufs_used %u\n", i,
		    rte_mempool_in_use_count(loop->ports[i].pool));
}

/* lwIP's counters of one protocol, under lwip.<proto>. */
static void put_proto(struct isod_strbuf *o, const char *name, const struct stats_proto *s)
{
	isod_strbuf_put(o, "lwip.%s.recv %u\nlwip.%s.xmit %u\nlwip.%s.drop %u\n"
	    "lwip.%s.chkerr %u\nlwip.%s.lenerr %u\nlwip.%s.proterr %u\n"
	    "lwip.%s.memerr %u\nlwip.%s.err %u\n",
	    name, (unsigned)s->recv, name, (unsigned)s->xmit, name, (unsigned)s->drop,
	    name, (unsigned)s->chkerr, name, (unsigned)s->lenerr,
	    name, (unsigned)s->proterr, name, (unsigned)s->memerr,
	    name, (unsigned)s->err);
}

/*
 * The kernel's account of the stack core (we run on it: stats are formatted
 * by the loop): the loop thread's own user and system time, and the whole
 * core's, softirq and irq apart.  The difference between the core's system
 * + softirq time and the thread's system time is kernel work that is not
 * the daemon's own (a peer's receive path run in softirq under our
 * transmit call, for instance): time taken from the stack.  Milliseconds.
 */
static void put_core_time(struct isod_strbuf *o)
{
	unsigned long long v[8] = { 0 }, ut = 0, st = 0;
	long hz = sysconf(_SC_CLK_TCK);
	int cpu = sched_getcpu();
	char line[512], want[16];
	FILE *f;

	if (hz <= 0 || cpu < 0)
		return;
	f = fopen("/proc/thread-self/stat", "r");
	if (f != NULL) {
		if (fgets(line, sizeof(line), f) != NULL) {
			const char *p = strrchr(line, ')');

			/* after "(comm) ": state is field 3, utime 14, stime 15 */
			if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
						&ut, &st) != 2)
				ut = st = 0;
		}
		fclose(f);
	}
	snprintf(want, sizeof(want), "cpu%d ", cpu);
	f = fopen("/proc/stat", "r");
	if (f != NULL) {
		while (fgets(line, sizeof(line), f) != NULL) {
			if (strncmp(line, want, strlen(want)) != 0)
				continue;
			/* user nice system idle iowait irq softirq steal */
			if (sscanf(line + strlen(want), "%llu %llu %llu %llu %llu %llu %llu %llu",
				   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) != 8)
				memset(v, 0, sizeof(v));
			break;
		}
		fclose(f);
	}
#define MS(t) ((t) * 1000ULL / (unsigned long long)hz)
	isod_strbuf_put(o, "core.cpu %d\ncore.thread_user_ms %llu\ncore.thread_system_ms %llu\n"
	    "core.user_ms %llu\ncore.system_ms %llu\ncore.irq_ms %llu\ncore.softirq_ms %llu\n"
	    "core.idle_ms %llu\ncore.steal_ms %llu\n",
	    cpu, MS(ut), MS(st), MS(v[0] + v[1]), MS(v[2]), MS(v[5]), MS(v[6]),
	    MS(v[3] + v[4]), MS(v[7]));
#undef MS
}

size_t isod_stats_format(const struct isod_loop *loop, char *buf, size_t len)
{
	const struct isod_loop_stats *ls = &loop->stats;
	struct isod_strbuf o = { .buf = buf, .len = len };

	isod_strbuf_put(&o, "loop.iterations %" PRIu64 "\nloop.busy_cycles %" PRIu64 "\n"
	    "loop.idle_cycles %" PRIu64 "\nloop.sleeps %" PRIu64 "\n"
	    "loop.sleep_cycles %" PRIu64 "\nloop.events %" PRIu64 "\n"
	    "loop.tsc_hz %" PRIu64 "\nloop.adaptive %u\n",
	    ls->iterations, ls->busy_tsc, ls->idle_tsc, ls->sleeps,
	    ls->sleep_tsc, ls->events, rte_get_tsc_hz(),
	    loop->mode == ISOD_MODE_ADAPTIVE ? 1u : 0u);
	/* dev <= busy: both are summed over the same busy passes. */
	isod_strbuf_put(&o, "loop.dev_cycles %" PRIu64 "\nloop.stack_cycles %" PRIu64 "\n",
	    ls->dev_tsc, ls->busy_tsc - ls->dev_tsc);
	isod_strbuf_put(&o, "loop.max_pass_cycles %" PRIu64 "\nloop.passes_100us %" PRIu64 "\n"
	    "loop.passes_1ms %" PRIu64 "\nloop.passes_10ms %" PRIu64 "\n"
	    "loop.max_timers_cycles %" PRIu64 "\nloop.timers_late %" PRIu32 "\n",
	    ls->max_pass_tsc, ls->passes_100us, ls->passes_1ms, ls->passes_10ms,
	    ls->max_timers_tsc, isotcp_timers_late());
	put_paths(&o, loop);
	/* Variant lock only: the locks it put back, taken (0 otherwise). */
	isod_strbuf_put(&o, "loop.lock_takes %" PRIu64 "\n", isotcp_lock_takes);
	put_core_time(&o);
	for (unsigned i = 0; i < loop->nports; i++)
		put_port(&o, i, &loop->ports[i]);
	put_proto(&o, "link", &lwip_stats.link);
	put_proto(&o, "etharp", &lwip_stats.etharp);
	put_proto(&o, "ip", &lwip_stats.ip);
	put_proto(&o, "icmp", &lwip_stats.icmp);
	put_proto(&o, "udp", &lwip_stats.udp);
	put_proto(&o, "tcp", &lwip_stats.tcp);
	put_pools(&o, loop);
	return o.used;
}
