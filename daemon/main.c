/*
 * isostackd: the IsoStack daemon. One lcore initialises DPDK's EAL, takes
 * the configured ethdev ports, runs the whole lwIP stack on them, and never
 * shares any of that state with another thread (paper sections 3, 4.4-4.5).
 *
 * Start-up order: configuration, EAL (pins this thread to the configured
 * lcore), clock, lwIP ownership and init, ports, services, loop. Shutdown
 * (SIGTERM/SIGINT) runs the same list backwards. This is the only file that
 * calls rte_exit(): everything below returns errors up to here.
 *
 * Under systemd (Type=notify, docs/daemon.md) it says STATUS= at each
 * start-up step, READY=1 once the control socket listens (an application
 * started after us can attach from then on), STOPPING=1 on the signal.
 */
#include "backend.h"
#include "internal.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include <rte_eal.h>
#include <rte_pdump.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>

#include "lwip/init.h"
#include "lwip/stats.h"
#include "isotcp.h"
#include "notify.h"
#include "txzc.h"

static volatile sig_atomic_t isod_stop;
static struct isod_loop isod_loop;
static struct isotcp_dpdk_port isod_ports[ISOD_MAX_PORTS];
/* Zero-copy TX (txzc.c), started by services_start(). */
static struct isod_txzc *isod_txzc;

static void on_signal(int sig)
{
	isod_stop = sig;
	if (isod_loop.wake_fd > 0)
		isod_loop_wake(&isod_loop);     /* in case the loop sleeps */
}

static bool eal_has_arg(const struct isod_config *cfg, const char *prefix)
{
	for (int i = 0; i < cfg->eal_argc; i++)
		if (strncmp(cfg->eal_argv[i], prefix, strlen(prefix)) == 0)
			return true;
	return false;
}

/*
 * EAL arguments: our lcore, one --vdev or -a per port, --no-pci when no
 * port is a PCI device (the daemon then leaves every NIC alone), a default
 * --file-prefix, then the configuration's and command line's own.
 */
static int eal_build_argv(const struct isod_config *cfg, const char *prog,
			  char **argv, char *lcore_buf, size_t lcore_len)
{
	int n = 0;
	bool any_pci = false;

	argv[n++] = (char *)prog;
	snprintf(lcore_buf, lcore_len, "%u", cfg->lcore);
	argv[n++] = "-l";
	argv[n++] = lcore_buf;
	for (unsigned i = 0; i < cfg->nports; i++) {
		argv[n++] = cfg->ports[i].is_pci ? "-a" : "--vdev";
		argv[n++] = (char *)cfg->ports[i].dev;
		any_pci = any_pci || cfg->ports[i].is_pci;
	}
	if (!any_pci && !eal_has_arg(cfg, "-a") && !eal_has_arg(cfg, "--allow"))
		argv[n++] = "--no-pci";
	if (!eal_has_arg(cfg, "--file-prefix"))
		argv[n++] = "--file-prefix=isostackd";
	for (int i = 0; i < cfg->eal_argc; i++)
		argv[n++] = cfg->eal_argv[i];
	argv[n] = NULL;
	return n;
}

/* The ethdev name of a configured device: a vdev's name before its first
 * comma, or the PCI address as given (then in full form). */
static int port_lookup(const struct isod_port_conf *pc, uint16_t *port_id)
{
	char name[RTE_ETH_NAME_MAX_LEN];
	size_t len = strcspn(pc->dev, ",");

	if (len >= sizeof(name))
		return -ENAMETOOLONG;
	memcpy(name, pc->dev, len);
	name[len] = '\0';
	if (rte_eth_dev_get_port_by_name(name, port_id) == 0)
		return 0;
	if (pc->is_pci) {
		char full[RTE_ETH_NAME_MAX_LEN + 8];

		snprintf(full, sizeof(full), "0000:%s", name);
		if (rte_eth_dev_get_port_by_name(full, port_id) == 0)
			return 0;
	}
	return -ENODEV;
}

static void ip_str(uint32_t a, char *buf, size_t len)
{
	const uint8_t *b = (const uint8_t *)&a;

	snprintf(buf, len, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
}

static void port_log(const struct isotcp_dpdk_port *p, const struct isod_port_conf *pc,
		     unsigned mbufs)
{
	char ip[16], mask[16], gw[16];
	const uint8_t *m = p->netif.hwaddr;

	ip_str(pc->ip, ip, sizeof(ip));
	ip_str(pc->netmask, mask, sizeof(mask));
	ip_str(pc->gw, gw, sizeof(gw));
	ISOD_LOG(INFO, "port %u %s up: MAC %02x:%02x:%02x:%02x:%02x:%02x, %s netmask %s "
		 "gw %s, mtu %u", p->port_id, p->name, m[0], m[1], m[2], m[3], m[4], m[5],
		 ip, mask, pc->gw ? gw : "none", p->netif.mtu);
	for (int i = 0; i < LWIP_IPV6_NUM_ADDRESSES; i++) {
		char a6[INET6_ADDRSTRLEN];

		if (!ip6_addr_isvalid(netif_ip6_addr_state(&p->netif, i)))
			continue;
		inet_ntop(AF_INET6, netif_ip6_addr(&p->netif, i)->addr, a6, sizeof(a6));
		ISOD_LOG(INFO, "port %u: IPv6 %s/64", p->port_id, a6);
	}
	ISOD_LOG(INFO, "port %u: checksums rx %s, tx %s; TSO %s; RX interrupts %s; "
		 "%u mbufs, %u/%u descriptors", p->port_id,
		 p->caps.rx_cksum ? "offloaded" : "software",
		 p->caps.tx_cksum ? "offloaded" : "software",
		 p->tso_on ? "on (lwIP merges up to 44 segments, the device cuts them)" :
		 p->caps.tso && !p->caps.tx_cksum ? "offered, unused (no TX checksum offload)" :
		 p->caps.tso ? "offered, off (tso = off)" : "not offered",
		 p->caps.rx_intr ? "yes" : "no", mbufs, p->nb_rxd, p->nb_txd);
}

static void port_log_stats(const struct isotcp_dpdk_port *p)
{
	const struct isotcp_dpdk_stats *s = &p->stats;
	struct rte_eth_stats es;

	ISOD_LOG(INFO, "port %u: rx %" PRIu64 " pkts %" PRIu64 " bytes (%" PRIu64 " copied), "
		 "drops: %" PRIu64 " cksum %" PRIu64 " nomem %" PRIu64 " bad; tx %" PRIu64
		 " pkts %" PRIu64 " bytes, drops: %" PRIu64 " nomem %" PRIu64 " toolong, %"
		 PRIu64 " partial bursts", p->port_id, s->rx_pkts, s->rx_bytes, s->rx_copied,
		 s->rx_drop_cksum, s->rx_drop_nomem, s->rx_drop_bad, s->tx_pkts, s->tx_bytes,
		 s->tx_drop_nomem, s->tx_drop_toolong, s->tx_partial);
	if (rte_eth_stats_get(p->port_id, &es) == 0)
		ISOD_LOG(INFO, "port %u: ethdev ipackets %" PRIu64 " opackets %" PRIu64
			 " imissed %" PRIu64 " ierrors %" PRIu64 " oerrors %" PRIu64
			 " rx_nombuf %" PRIu64, p->port_id, es.ipackets, es.opackets,
			 es.imissed, es.ierrors, es.oerrors, es.rx_nombuf);
}

static void lwip_log_stats(void)
{
	ISOD_LOG(INFO, "lwip: ip recv %u drop %u chkerr %u lenerr %u proterr %u; "
		 "tcp recv %u xmit %u drop %u chkerr %u memerr %u; "
		 "icmp recv %u xmit %u; arp recv %u drop %u",
		 lwip_stats.ip.recv, lwip_stats.ip.drop, lwip_stats.ip.chkerr,
		 lwip_stats.ip.lenerr, lwip_stats.ip.proterr,
		 lwip_stats.tcp.recv, lwip_stats.tcp.xmit, lwip_stats.tcp.drop,
		 lwip_stats.tcp.chkerr, lwip_stats.tcp.memerr,
		 lwip_stats.icmp.recv, lwip_stats.icmp.xmit,
		 lwip_stats.etharp.recv, lwip_stats.etharp.drop);
}

/* The loop's nap guard: applications must ring the stack wake fd while the
 * loop sleeps, and a doorbell already rung cancels the sleep. */
static unsigned backend_nap(void *be, bool napping)
{
	return isod_backend_set_napping(be, napping);
}

/* STATS: the daemon's lines, ahead of the back-end's (stats_extra hook). */
static size_t stats_extra(void *arg, char *buf, size_t len)
{
	size_t n = isod_stats_format(arg, buf, len);
	struct isod_txzc_stats z;
	int k;

	/* zero-copy TX: segments and outstanding attachments */
	if (isod_txzc == NULL || n >= len)
		return n;
	isod_txzc_get_stats(isod_txzc, &z);
	k = snprintf(buf + n, len - n,
		     "txzc.segs_registered %" PRIu64 "\ntxzc.segs_unregistrable %" PRIu64 "\n"
		     "txzc.segs_deferred %" PRIu64 "\ntxzc.segs_destroyed %" PRIu64 "\n"
		     "txzc.segs_dying %" PRIu64 "\ntxzc.refs %" PRIu64 "\n"
		     "txzc.no_ctx %" PRIu64 "\ntxzc.no_mbuf %" PRIu64 "\n",
		     z.segs_registered, z.segs_unregistrable, z.segs_deferred,
		     z.segs_destroyed, z.segs_dying, z.refs, z.no_ctx, z.no_mbuf);
	if (k > 0)
		n = (size_t)k < len - n ? n + (size_t)k : len;
	return n;
}

/*
 * The socket back-end: applications attach on the control socket, and their
 * doorbells become one more dispatcher source. Returns 0 or -errno, logged.
 */
/* The stack's ring memory when stack_memory is not set: an eighth of the
 * machine's memory, as the kernel's tcp_mem sizes itself from RAM. */
static uint64_t default_stack_memory(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), pg = sysconf(_SC_PAGESIZE);
	uint64_t v = pages > 0 && pg > 0 ? (uint64_t)pages * (uint64_t)pg / 8 : UINT64_C(1) << 30;

	return v < (UINT64_C(64) << 20) ? UINT64_C(64) << 20 : v;
}

static int backend_start(const struct isod_config *cfg, struct isod_backend **out)
{
	struct isod_backend_conf bc;
	char dir[sizeof(cfg->control)];
	char *slash;
	int ret;

	snprintf(dir, sizeof(dir), "%s", cfg->control);
	slash = strrchr(dir, '/');
	if (slash != NULL && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) != 0 && errno != EEXIST)
			ISOD_LOG(WARN, "control: cannot create %s: %s", dir, strerror(errno));
	}
	isod_backend_conf_default(&bc);
	bc.control_path = cfg->control;
	bc.control_gid = cfg->control_gid;
	bc.max_apps_per_uid = cfg->max_apps_per_uid;
	bc.close_timeout_ms = cfg->close_timeout * 1000u;
	bc.cut_through = cfg->cut_through;
	bc.tx_watch = cfg->tx_watch;
	bc.shm.max_sockets = cfg->app_sockets + 1;
	bc.shm.max_ring_bytes = cfg->tx_ring > cfg->rx_ring ? cfg->tx_ring : cfg->rx_ring;
	if (bc.shm.max_ring_bytes < (256u << 10))
		bc.shm.max_ring_bytes = 256u << 10;
	bc.shm.variant = cfg->variant;
	if (isoshm_variant_per_thread(cfg->variant))
		bc.shm.nr_doorbells = cfg->variant_queues;
	bc.tx_ring = cfg->tx_ring;
	bc.rx_ring = cfg->rx_ring;
	bc.tx_start = cfg->tx_ring_start;
	bc.rx_start = cfg->rx_ring_start;
	bc.mem_limit = cfg->app_memory;
	bc.app_pcbs = cfg->app_pcbs;
	bc.app_tx_segs = cfg->app_tx_segs;
	bc.app_rx_held = cfg->app_rx_held_bytes;
	bc.mem_budget = cfg->stack_memory != 0 ? cfg->stack_memory : default_stack_memory();
	/* An application's arena: its memory limit, or all of the budget
	 * (address space only), in whole extent units. */
	{
		uint64_t arena = cfg->app_memory != 0 ? cfg->app_memory : bc.mem_budget;
		uint64_t unit = ISOSTACK_SHM_EXTENT_UNIT;

		arena = (arena + 2 * bc.shm.max_ring_bytes + unit - 1) / unit * unit;
		bc.shm.arena_size = arena < (UINT64_C(1) << 40) ? arena : UINT64_C(1) << 40;
	}
	bc.clock_ms = &isod_loop.now_ms;   /* no clock read per loop pass */
	bc.stats_extra = stats_extra;
	bc.stats_arg = &isod_loop;
	if (isod_txzc != NULL) {        /* zero-copy TX: segment (un)registration */
		bc.seg_attach = isod_txzc_seg_attach;
		bc.seg_release = isod_txzc_seg_release;
		bc.ext_attach = isod_txzc_ext_attach;
		bc.seg_arg = isod_txzc;
	}
	ret = isod_backend_init(out, &bc);
	if (ret != 0) {
		ISOD_LOG(ERR, "control socket %s: %s", cfg->control, strerror(-ret));
		return ret;
	}
	ret = isod_loop_add_source(&isod_loop, "apps", cfg->weight_apps,
				   isod_backend_poll_source, *out);
	if (ret != 0) {
		ISOD_LOG(ERR, "apps source: %s", strerror(-ret));
		isod_backend_fini(*out);
		*out = NULL;
		return ret;
	}
	/* Each application rings its own doorbell fd; the loop sleeps on
	 * the set of them beside its own wake fd. */
	ret = isod_loop_set_wake_fd(&isod_loop, isod_backend_wake_fd(*out));
	if (ret != 0) {
		ISOD_LOG(ERR, "apps doorbell fds: %s", strerror(-ret));
		isod_backend_fini(*out);
		*out = NULL;
		return ret;
	}
	isod_loop.nap = backend_nap;
	isod_loop.nap_arg = *out;
	ISOD_LOG(INFO, "control socket %s: serving applications (up to %u sockets each, TCP rings "
		 "from %u KiB growing to %u KiB TX and %u KiB RX per socket, ring memory "
		 "%llu MiB for the stack%s) and isostat",
		 cfg->control, bc.shm.max_sockets - 1,
		 (bc.tx_start < bc.rx_start ? bc.tx_start : bc.rx_start) >> 10,
		 bc.tx_ring >> 10, bc.rx_ring >> 10,
		 (unsigned long long)(bc.mem_budget >> 20),
		 cfg->app_memory ? ", a per-application limit" : "");
	return 0;
}

static void backend_log_stats(const struct isod_backend *be)
{
	struct isod_backend_stats st;

	isod_backend_get_stats(be, &st);
	ISOD_LOG(INFO, "apps: %" PRIu64 " attached, %" PRIu64 " detached, %" PRIu64 " commands, "
		 "%" PRIu64 " rejected, %" PRIu64 " connections reset on hang-up",
		 st.apps_attached, st.apps_detached, st.cmds,
		 st.bad_cmds + st.bad_slot, st.resets);
}

/* Open and start every configured port; *nports counts those started (to
 * close on failure too). Returns 0 or -errno, logged. */
static int ports_open(const struct isod_config *cfg, unsigned *nports)
{
	int ret;

	for (unsigned i = 0; i < cfg->nports; i++) {
		struct isotcp_dpdk_port_conf pc = {
			.mbufs = cfg->mbufs,
			.mtu = cfg->mtu,
			.want_rx_intr = cfg->mode == ISOD_MODE_ADAPTIVE,
			.want_tso = cfg->tso,
			.want_gro = cfg->gro,
		};

		ret = port_lookup(&cfg->ports[i], &pc.port_id);
		if (ret != 0) {
			ISOD_LOG(ERR, "port %s: no such ethdev (did EAL probe it?)",
				 cfg->ports[i].dev);
			return ret;
		}
		ip4_addr_set_u32(&pc.ip, cfg->ports[i].ip);
		ip4_addr_set_u32(&pc.netmask, cfg->ports[i].netmask);
		ip4_addr_set_u32(&pc.gw, cfg->ports[i].gw);
		memcpy(pc.ip6.addr, cfg->ports[i].ip6, sizeof(pc.ip6.addr));
		ip6_addr_clear_zone(&pc.ip6);
		ret = isotcp_dpdk_port_open(&isod_ports[i], &pc,
					    i == 0 || cfg->ports[i].gw != 0);
		if (ret != 0) {
			ISOD_LOG(ERR, "port %s: cannot start: %s", cfg->ports[i].dev,
				 strerror(-ret));
			return ret;
		}
		(*nports)++;
		port_log(&isod_ports[i], &cfg->ports[i], cfg->mbufs);
	}
	return 0;
}

/* The IPv6 address of the port the echo service's IPv4 address is on,
 * NULL if that port has none. */
static const uint8_t *echo_addr6(const struct isod_config *cfg)
{
	static const uint8_t none[16];

	for (unsigned i = 0; i < cfg->nports; i++)
		if (cfg->ports[i].ip == cfg->echo_addr &&
		    memcmp(cfg->ports[i].ip6, none, sizeof(none)) != 0)
			return cfg->ports[i].ip6;
	return NULL;
}

/* The diagnostic echo service, if configured, and zero-copy TX. Zero-copy
 * TX comes before the back-end, which registers segments with it; its
 * source unmaps segments of departed applications once the NIC let go of
 * them. ISOSTACK_TX_ZEROCOPY=off in the environment turns it off (copied
 * TX, for comparison). Returns 0 or -errno, logged; on failure the echo
 * service is left for the caller to stop (NULL if it never started). */
static int services_start(const struct isod_config *cfg, unsigned nports,
			  struct isod_echo **echo)
{
	const char *zc_env = getenv("ISOSTACK_TX_ZEROCOPY");
	bool zc_on = zc_env == NULL || strcmp(zc_env, "off") != 0;
	int ret;

	if (cfg->echo) {
		char a[16];

		const uint8_t *a6 = echo_addr6(cfg);
		char s6[INET6_ADDRSTRLEN] = "";

		ip_str(cfg->echo_addr, a, sizeof(a));
		ret = isod_echo_start(&isod_loop, cfg->echo_addr, a6, echo);
		if (ret != 0) {
			ISOD_LOG(ERR, "echo on %s: %s", a, strerror(-ret));
			return ret;
		}
		if (a6 != NULL)
			inet_ntop(AF_INET6, a6, s6, sizeof(s6));
		ISOD_LOG(INFO, "echo: TCP echo on %s:7, discard on %s:9%s%s%s", a, a,
			 a6 != NULL ? " (and on [" : "", s6, a6 != NULL ? "])" : "");
	}
	ret = isod_txzc_init(&isod_txzc, isod_ports, nports, zc_on);
	if (ret == 0)
		ret = isod_loop_add_source(&isod_loop, "txzc", 1, isod_txzc_poll, isod_txzc);
	if (ret != 0)
		ISOD_LOG(ERR, "zero-copy TX: %s", strerror(-ret));
	return ret;
}

/* Logging and systemd notification, before anything else can fail. */
static void notify_start(void)
{
	int ret;

	isod_log_init();
	ret = isod_notify_init();
	if (ret != 0)
		ISOD_LOG(WARN, "systemd notification: $NOTIFY_SOCKET unusable (%s); "
			 "not notifying", strerror(-ret));
	else if (isod_notify_enabled())
		isod_notify_status("starting");
}

int main(int argc, char **argv)
{
	struct isod_config cfg;
	char *eal_argv[ISOD_MAX_EAL_ARGS + 2 * ISOD_MAX_PORTS + 8];
	char lcore_buf[16];
	struct isod_echo *echo = NULL;
	struct isod_backend *backend = NULL;
	struct isod_health *health = NULL;
	struct sigaction sa;
	unsigned nports = 0;
	int eal_argc, ret;

	notify_start();
	ret = isod_config_load(&cfg, argc, argv);
	if (ret != 0)
		return ret > 0 ? EXIT_SUCCESS : 2;
	isod_log_min = cfg.log_level;
	ISOD_LOG(INFO, "starting: config %s, lcore %u, mode %s%s, %u mbufs per port, "
		 "echo %s, control %s, log %s%s",
		 cfg.path[0] ? cfg.path : "(none: defaults and command line)",
		 cfg.lcore, isod_mode_name(cfg.mode),
		 cfg.mode == ISOD_MODE_ADAPTIVE ? "" : " (busy polling)",
		 cfg.mbufs, cfg.echo ? "on" : "off", cfg.control,
		 isod_log_level_name(cfg.log_level), isod_log_journal() ? " (journal)" : "");
	if (cfg.variant != ISOSTACK_SHM_VARIANT_CORE)
		ISOD_LOG(INFO, "variant %s (the paper's Iso-%s, for evaluation: docs/daemon.md)%s",
			 isod_variant_name(cfg.variant),
			 cfg.variant == ISOSTACK_SHM_VARIANT_BASIC ? "Basic" :
			 cfg.variant == ISOSTACK_SHM_VARIANT_AGGREGATE ? "Aggregated" : "Lock",
			 isoshm_variant_per_thread(cfg.variant) ? ", a doorbell per thread" : "");

	isod_notify_status("starting: DPDK EAL");
	eal_argc = eal_build_argv(&cfg, argv[0], eal_argv, lcore_buf, sizeof(lcore_buf));
	ret = rte_eal_init(eal_argc, eal_argv);
	if (ret < 0)
		rte_exit(EXIT_FAILURE, "EAL init failed: %s\n", rte_strerror(rte_errno));
	if (rte_lcore_id() != cfg.lcore)
		rte_exit(EXIT_FAILURE, "running on lcore %u, not %u\n", rte_lcore_id(), cfg.lcore);
	ISOD_LOG(INFO, "EAL up: lcore %u (main), memory %s, IOVA %s", rte_lcore_id(),
		 rte_eal_has_hugepages() ? "hugepages" : "anonymous (--no-huge)",
		 rte_eal_iova_mode() == RTE_IOVA_VA ? "VA" : "PA");
	/* Lets dpdk-dumpcap (a secondary process) capture our ports. It costs
	 * nothing until a capture starts; secondaries need hugepages. */
	if (rte_pdump_init() != 0)
		ISOD_LOG(INFO, "pdump: unavailable (%s): dpdk-dumpcap cannot attach",
			 rte_strerror(rte_errno));
	else
		ISOD_LOG(INFO, "pdump: enabled%s", rte_eal_has_hugepages() ? "" :
			 " (but --no-huge: dpdk-dumpcap needs hugepages to attach)");

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	/* From here on, lwIP belongs to this thread; a call from any other
	 * thread aborts (LWIP_ASSERT_CORE_LOCKED). */
	isotcp_clock_init();
	isotcp_owner_claim();
	/* lwIP's heap is glibc's (tcpip/lwipopts.h, MEM_LIBC_MALLOC): keep
	 * what it frees instead of trimming the top of the heap back to the
	 * kernel and growing it again, a system call each, on the stack core. */
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
	isotcp_lock_variant_set(cfg.variant == ISOSTACK_SHM_VARIANT_LOCK);
	lwip_init();

	isod_notify_status("starting: ports");
	ret = ports_open(&cfg, &nports);
	if (ret != 0)
		goto err_ports;
	ret = isod_loop_init(&isod_loop, &cfg, isod_ports, nports);
	if (ret != 0) {
		ISOD_LOG(ERR, "loop: %s", strerror(-ret));
		goto err_ports;
	}
	ret = services_start(&cfg, nports, &echo);
	if (ret != 0)
		goto err_echo;
	isod_notify_status("starting: control socket");
	ret = backend_start(&cfg, &backend);
	if (ret != 0)
		goto err_echo;
	ret = isod_health_start(&isod_loop, backend, &health);
	if (ret != 0) {
		ISOD_LOG(ERR, "health source: %s", strerror(-ret));
		goto err_backend;
	}
	/* The control socket listens: applications may attach from now on. */
	isod_notify_send("READY=1\nSTATUS=serving: 0 applications, 0 sockets", true);
	ISOD_LOG(INFO, "running");

	isod_loop_run(&isod_loop, &isod_stop);

	isod_notify_send("STOPPING=1\nSTATUS=stopping", true);
	ISOD_LOG(INFO, "stopping on %s", strsignal(isod_stop));
	backend_log_stats(backend);
	ret = 0;
err_backend:
	isod_health_stop(health);
	isod_loop_set_wake_fd(&isod_loop, -1);  /* the doorbells' set goes with the back-end */
	isod_backend_fini(backend);
err_echo:
	isod_echo_stop(echo);
	if (ret == 0) {
		isod_loop_log_stats(&isod_loop);
		lwip_log_stats();
	}
	isod_loop_fini(&isod_loop);
err_ports:
	isod_txzc_stop(isod_txzc);     /* zero-copy TX: its held mbufs, pools still there */
	while (nports > 0) {
		nports--;
		port_log_stats(&isod_ports[nports]);
		isotcp_dpdk_port_close(&isod_ports[nports]);
	}
	/* After the ports: closing them freed every mbuf that referenced an
	 * application segment, so the last deferred segments can go. */
	isod_txzc_fini(isod_txzc);
	isod_txzc = NULL;
	isotcp_owner_release();
	rte_pdump_uninit();
	rte_eal_cleanup();
	isod_config_free(&cfg);
	if (ret != 0) {
		ISOD_LOG(ERR, "start-up failed: %s", strerror(-ret));
		isod_notify_send("STATUS=start-up failed", false);
		isod_notify_fini();
		return EXIT_FAILURE;
	}
	ISOD_LOG(INFO, "stopped");
	isod_notify_fini();
	return EXIT_SUCCESS;
}
