/*
 * isostackd configuration: built-in defaults, then the configuration file,
 * then the command line, each overriding the one before.
 *
 * The file is lines of `key = value` under a `[daemon]` section, plus one
 * `[port]` section per ethdev port; `#` starts a comment. A `--port` on the
 * command line is one port section written on one line as space-separated
 * key=value words; if any is given, the file's ports are ignored. Both are
 * validated here, once, and trusted afterwards. docs/daemon.md lists keys.
 */
#include "internal.h"
#include "isostack/shm_abi.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A bad value, said where: "KEY-OR-OPTION: what is wrong". */
#define CONF_ERR(where, fmt, ...) ISOD_LOG(ERR, "%s: " fmt, (where), ##__VA_ARGS__)

const char *isod_mode_name(enum isod_mode mode)
{
	return mode == ISOD_MODE_ADAPTIVE ? "adaptive" : "busy";
}

static const char *const variant_names[] = {
	[ISOSTACK_SHM_VARIANT_CORE] = "core",
	[ISOSTACK_SHM_VARIANT_AGGREGATE] = "aggregate",
	[ISOSTACK_SHM_VARIANT_BASIC] = "basic",
	[ISOSTACK_SHM_VARIANT_LOCK] = "lock",
};

const char *isod_variant_name(uint32_t variant)
{
	return variant <= ISOSTACK_SHM_VARIANT_MAX ? variant_names[variant] : "?";
}

static void config_defaults(struct isod_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->lcore = 1;
	cfg->mbufs = 16383;
	cfg->mode = ISOD_MODE_BUSY;
	cfg->idle_us = 1000;
	cfg->sleep_us = 1000;
	cfg->burst = ISOTCP_DPDK_BURST;
	cfg->weight_rx = 2;
	cfg->weight_events = 1;
	cfg->weight_apps = 2;
	cfg->close_timeout = 60;
	cfg->app_sockets = 65535;
	/* Half of lwIP's pools (tcpip/lwipopts.h: 131,072 pcbs, 65,535
	 * segments) and of the default mbufs' 2 KiB buffers. */
	cfg->app_pcbs = 65536;
	cfg->app_tx_segs = 32767;
	cfg->app_rx_held_bytes = UINT64_C(16) << 20;
	cfg->tx_ring = 256u << 10;
	cfg->rx_ring = 256u << 10;
	cfg->tx_ring_start = 16u << 10;
	cfg->rx_ring_start = 16u << 10;
	cfg->stack_memory = 0;     /* 0: an eighth of the machine's memory (main.c) */
	cfg->variant = ISOSTACK_SHM_VARIANT_CORE;
	cfg->variant_queues = 256;
	cfg->tso = true;
	cfg->gro = true;
	cfg->cut_through = true;
	/* off: a 512 KiB memcached reply stalled with it (prog_memcached) */
	cfg->tx_watch = false;
	cfg->log_level = ISOD_LOG_INFO;
	cfg->max_apps_per_uid = 32;
	/* The control socket's group: "isostack" where the machine has one,
	 * else none (root only), as docker's socket defaults to "docker". */
	{
		struct group *g = getgrnam("isostack");

		cfg->control_gid = g != NULL ? (int)g->gr_gid : -1;
	}
	snprintf(cfg->control, sizeof(cfg->control), "/run/isostack/isostackd.sock");
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno != 0 || end == s || *trim(end) != '\0' || v < min || v > max)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

/* A byte count with an optional k, m or g suffix (binary units). */
static int parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno != 0 || end == s || *s == '-')
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	}
	if (*trim(end) != '\0' || v > (max >> shift) || (v << shift) < min)
		return -EINVAL;
	*out = v << shift;
	return 0;
}

static int parse_ip(const char *s, uint32_t *out)
{
	struct in_addr a;

	if (inet_pton(AF_INET, s, &a) != 1)
		return -EINVAL;
	*out = a.s_addr;
	return 0;
}

/* "A.B.C.D/N" into address and netmask. */
static int parse_cidr(const char *s, uint32_t *ip, uint32_t *mask)
{
	char buf[64];
	char *slash;
	unsigned len;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (slash == NULL)
		return -EINVAL;
	*slash = '\0';
	if (parse_ip(buf, ip) != 0 || parse_uint(slash + 1, 1, 32, &len) != 0)
		return -EINVAL;
	*mask = htonl(len == 32 ? 0xffffffffu : ~(0xffffffffu >> len));
	return 0;
}

/* "ADDR/64" (or "ADDR", read as /64): lwIP takes a static IPv6 address
 * as a /64 on link and knows no other prefix length. */
static int parse_ip6(const char *s, uint8_t out[16])
{
	char buf[64];
	char *slash;
	unsigned len = 64;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (slash != NULL) {
		*slash = '\0';
		if (parse_uint(slash + 1, 1, 128, &len) != 0 || len != 64)
			return -EINVAL;
	}
	if (inet_pton(AF_INET6, buf, out) != 1)
		return -EINVAL;
	/* Not ::, not multicast, not link-local (the port has its own). */
	if ((out[0] == 0xff) || (out[0] == 0xfe && (out[1] & 0xc0) == 0x80))
		return -EINVAL;
	for (int i = 0; i < 16; i++)
		if (out[i] != 0)
			return 0;
	return -EINVAL;
}

static int port_set(struct isod_port_conf *port, const char *key, const char *val,
		    const char *where)
{
	if (strcmp(key, "vdev") == 0 || strcmp(key, "pci") == 0) {
		if (*val == '\0' || strlen(val) >= sizeof(port->dev)) {
			CONF_ERR(where, "bad %s '%s'", key, val);
			return -EINVAL;
		}
		strcpy(port->dev, val);
		port->is_pci = key[0] == 'p';
	} else if (strcmp(key, "ip") == 0) {
		if (parse_cidr(val, &port->ip, &port->netmask) != 0) {
			CONF_ERR(where, "ip must be A.B.C.D/LEN, not '%s'", val);
			return -EINVAL;
		}
	} else if (strcmp(key, "gw") == 0) {
		if (parse_ip(val, &port->gw) != 0) {
			CONF_ERR(where, "gw must be A.B.C.D, not '%s'", val);
			return -EINVAL;
		}
	} else if (strcmp(key, "ip6") == 0) {
		if (parse_ip6(val, port->ip6) != 0) {
			CONF_ERR(where, "ip6 must be a unicast IPv6 address with /64 "
				 "(lwIP's only prefix length), not '%s'", val);
			return -EINVAL;
		}
	} else {
		CONF_ERR(where, "unknown port key '%s' (vdev, pci, ip, ip6, gw)", key);
		return -EINVAL;
	}
	return 0;
}

static int eal_args_add(struct isod_config *cfg, const char *arg)
{
	if (cfg->eal_argc >= ISOD_MAX_EAL_ARGS) {
		CONF_ERR("eal", "more than %d EAL arguments", ISOD_MAX_EAL_ARGS);
		return -EINVAL;
	}
	cfg->eal_argv[cfg->eal_argc] = strdup(arg);
	if (cfg->eal_argv[cfg->eal_argc] == NULL)
		return -ENOMEM;
	cfg->eal_argc++;
	return 0;
}

static int daemon_set(struct isod_config *cfg, const char *key, const char *val,
		      const char *where)
{
	unsigned *num = NULL;
	unsigned min = 0, max = 0;

	if (strcmp(key, "lcore") == 0) {
		num = &cfg->lcore; max = RTE_MAX_LCORE - 1;
	} else if (strcmp(key, "mbufs") == 0) {
		num = &cfg->mbufs; min = 4096; max = 1u << 24;
	} else if (strcmp(key, "mtu") == 0) {
		/* 9000 (jumbo) and a little more; lwIP's MSS stops at 8960. */
		num = &cfg->mtu; min = 576; max = 9216;
	} else if (strcmp(key, "idle_us") == 0) {
		num = &cfg->idle_us; max = 10000000;
	} else if (strcmp(key, "sleep_us") == 0) {
		num = &cfg->sleep_us; min = 1; max = 1000000;
	} else if (strcmp(key, "burst") == 0) {
		num = &cfg->burst; min = 1; max = 512;
	} else if (strcmp(key, "weight_rx") == 0) {
		num = &cfg->weight_rx; min = 1; max = 64;
	} else if (strcmp(key, "weight_events") == 0) {
		num = &cfg->weight_events; min = 1; max = 64;
	} else if (strcmp(key, "weight_apps") == 0) {
		num = &cfg->weight_apps; min = 1; max = 64;
	} else if (strcmp(key, "close_timeout") == 0) {
		num = &cfg->close_timeout; max = 86400;   /* in ms it fits lwIP's u32 clock */
	} else if (strcmp(key, "app_sockets") == 0) {
		num = &cfg->app_sockets; min = 1; max = 1048575;  /* id 0 is the control channel */
	} else if (strcmp(key, "app_pcbs") == 0) {
		num = &cfg->app_pcbs; max = 131072;   /* lwIP's pool; 0: no cap */
	} else if (strcmp(key, "max_apps_per_uid") == 0) {
		num = &cfg->max_apps_per_uid; max = 1u << 20;   /* 0: no bound */
	} else if (strcmp(key, "variant_queues") == 0) {
		num = &cfg->variant_queues; min = 1; max = 1024;
	}
	if (num != NULL) {
		if (parse_uint(val, min, max, num) != 0) {
			CONF_ERR(where, "%s must be a number in %u..%u, not '%s'",
				 key, min, max, val);
			return -EINVAL;
		}
		return 0;
	}
	if (strcmp(key, "tx_ring") == 0 || strcmp(key, "rx_ring") == 0 ||
	    strcmp(key, "tx_ring_start") == 0 || strcmp(key, "rx_ring_start") == 0) {
		bool start = strchr(key + 3, '_') != NULL;
		uint64_t v;

		/* The shm rings index with a mask: a power of two. */
		if (parse_size(val, 4096, 64u << 20, &v) != 0 || (v & (v - 1)) != 0) {
			CONF_ERR(where, "%s must be a power of two from 4k to 64m, not '%s'",
				 key, val);
			return -EINVAL;
		}
		if (start)
			*(key[0] == 't' ? &cfg->tx_ring_start : &cfg->rx_ring_start) = (uint32_t)v;
		else
			*(key[0] == 't' ? &cfg->tx_ring : &cfg->rx_ring) = (uint32_t)v;
		return 0;
	}
	if (strcmp(key, "stack_memory") == 0) {
		if (parse_size(val, 0, UINT64_C(1) << 40, &cfg->stack_memory) != 0) {
			CONF_ERR(where, "stack_memory must be a size (e.g. 2g) or 0 (auto), not '%s'",
				 val);
			return -EINVAL;
		}
		return 0;
	}
	if (strcmp(key, "app_tx_segs") == 0) {
		/* 0 (no cap) or 16 (a quarter of it holds a write) .. the pool */
		if (parse_uint(val, 0, 65535, &cfg->app_tx_segs) != 0 ||
		    (cfg->app_tx_segs != 0 && cfg->app_tx_segs < 16)) {
			CONF_ERR(where, "app_tx_segs must be 0 or a number in 16..65535, not '%s'",
				 val);
			return -EINVAL;
		}
		return 0;
	}
	if (strcmp(key, "app_rx_held_bytes") == 0) {
		if (parse_size(val, 0, UINT64_C(1) << 40, &cfg->app_rx_held_bytes) != 0) {
			CONF_ERR(where, "app_rx_held_bytes must be a size (e.g. 16m) or 0, not '%s'",
				 val);
			return -EINVAL;
		}
		return 0;
	}
	if (strcmp(key, "app_memory") == 0) {
		if (parse_size(val, 0, UINT64_C(1) << 40, &cfg->app_memory) != 0) {
			CONF_ERR(where, "app_memory must be a size (e.g. 64m) or 0, not '%s'", val);
			return -EINVAL;
		}
		return 0;
	}
	if (strcmp(key, "variant") == 0) {
		for (uint32_t v = 0; v <= ISOSTACK_SHM_VARIANT_MAX; v++)
			if (strcmp(val, variant_names[v]) == 0) {
				cfg->variant = v;
				return 0;
			}
		CONF_ERR(where, "variant must be core, aggregate, basic or lock, not '%s'", val);
		return -EINVAL;
	}
	if (strcmp(key, "mode") == 0) {
		if (strcmp(val, "busy") == 0)
			cfg->mode = ISOD_MODE_BUSY;
		else if (strcmp(val, "adaptive") == 0)
			cfg->mode = ISOD_MODE_ADAPTIVE;
		else {
			CONF_ERR(where, "mode must be busy or adaptive, not '%s'", val);
			return -EINVAL;
		}
	} else if (strcmp(key, "tso") == 0 || strcmp(key, "gro") == 0 ||
		   strcmp(key, "cut_through") == 0 || strcmp(key, "tx_watch") == 0) {
		bool *on = strcmp(key, "tso") == 0 ? &cfg->tso : key[0] == 'g' ? &cfg->gro :
			   key[0] == 'c' ? &cfg->cut_through : &cfg->tx_watch;

		if (strcmp(val, "on") == 0 || strcmp(val, "off") == 0) {
			*on = val[1] == 'n';
		} else {
			CONF_ERR(where, "%s must be on or off, not '%s'", key, val);
			return -EINVAL;
		}
	} else if (strcmp(key, "log_level") == 0) {
		if (isod_log_level_parse(val, &cfg->log_level) != 0) {
			CONF_ERR(where, "log_level must be err, warn, info or debug, not '%s'", val);
			return -EINVAL;
		}
	} else if (strcmp(key, "echo") == 0) {
		cfg->echo = *val != '\0' && strcmp(val, "off") != 0;
		if (cfg->echo && parse_ip(val, &cfg->echo_addr) != 0) {
			CONF_ERR(where, "echo must be an address or off, not '%s'", val);
			return -EINVAL;
		}
	} else if (strcmp(key, "control") == 0) {
		if (strlen(val) >= sizeof(cfg->control)) {
			CONF_ERR(where, "control path too long");
			return -EINVAL;
		}
		strcpy(cfg->control, val);
	} else if (strcmp(key, "control_group") == 0) {
		/* A group name or number; "none": root and our own user only. */
		struct group *g = strcmp(val, "none") == 0 ? NULL : getgrnam(val);
		unsigned gid;

		if (strcmp(val, "none") == 0)
			cfg->control_gid = -1;
		else if (g != NULL)
			cfg->control_gid = (int)g->gr_gid;
		else if (parse_uint(val, 0, INT32_MAX, &gid) == 0)
			cfg->control_gid = (int)gid;
		else {
			CONF_ERR(where, "control_group: no group '%s' (a name, a number or none)",
				 val);
			return -EINVAL;
		}
	} else if (strcmp(key, "eal") == 0) {
		char buf[1024];
		char *save = NULL;

		if (strlen(val) >= sizeof(buf)) {
			CONF_ERR(where, "eal line too long");
			return -EINVAL;
		}
		strcpy(buf, val);
		for (char *t = strtok_r(buf, " \t", &save); t; t = strtok_r(NULL, " \t", &save))
			if (eal_args_add(cfg, t) != 0)
				return -EINVAL;
	} else {
		CONF_ERR(where, "unknown key '%s'", key);
		return -EINVAL;
	}
	return 0;
}

static int config_read_file(struct isod_config *cfg, const char *path)
{
	FILE *f = fopen(path, "r");
	char line[2048], where[PATH_MAX + 32];
	enum { SEC_NONE, SEC_DAEMON, SEC_PORT } sec = SEC_NONE;
	unsigned lineno = 0;
	int ret = 0;

	if (f == NULL) {
		CONF_ERR(path, "%s", strerror(errno));
		return -errno;
	}
	while (ret == 0 && fgets(line, sizeof(line), f) != NULL) {
		char *s, *eq, *hash;

		lineno++;
		snprintf(where, sizeof(where), "%s:%u", path, lineno);
		hash = strchr(line, '#');
		if (hash != NULL)
			*hash = '\0';
		s = trim(line);
		if (*s == '\0')
			continue;
		if (strcmp(s, "[daemon]") == 0) {
			sec = SEC_DAEMON;
		} else if (strcmp(s, "[port]") == 0) {
			if (cfg->nports == ISOD_MAX_PORTS) {
				CONF_ERR(where, "more than %d ports", ISOD_MAX_PORTS);
				ret = -EINVAL;
				break;
			}
			memset(&cfg->ports[cfg->nports++], 0, sizeof(cfg->ports[0]));
			sec = SEC_PORT;
		} else if ((eq = strchr(s, '=')) == NULL || sec == SEC_NONE) {
			CONF_ERR(where, "%s", sec == SEC_NONE ? "key outside [daemon] or [port]"
				 : "expected key = value");
			ret = -EINVAL;
		} else {
			*eq = '\0';
			if (sec == SEC_DAEMON)
				ret = daemon_set(cfg, trim(s), trim(eq + 1), where);
			else
				ret = port_set(&cfg->ports[cfg->nports - 1], trim(s),
					       trim(eq + 1), where);
		}
	}
	fclose(f);
	return ret;
}

/* One --port: "vdev=net_x0,iface=y ip=A/N gw=G" (words split at spaces). */
static int config_port_arg(struct isod_config *cfg, const char *arg)
{
	char buf[1024];
	char *save = NULL;
	struct isod_port_conf *port;

	if (cfg->nports == ISOD_MAX_PORTS) {
		CONF_ERR("--port", "more than %d ports", ISOD_MAX_PORTS);
		return -EINVAL;
	}
	if (strlen(arg) >= sizeof(buf)) {
		CONF_ERR("--port", "too long");
		return -EINVAL;
	}
	strcpy(buf, arg);
	port = &cfg->ports[cfg->nports++];
	memset(port, 0, sizeof(*port));
	for (char *t = strtok_r(buf, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
		char *eq = strchr(t, '=');

		if (eq == NULL) {
			CONF_ERR("--port", "'%s' is not key=value", t);
			return -EINVAL;
		}
		*eq = '\0';
		if (port_set(port, t, eq + 1, "--port") != 0)
			return -EINVAL;
	}
	return 0;
}

/* One --set KEY=VALUE: a [daemon] key as the file spells it. */
static int config_set_arg(struct isod_config *cfg, const char *arg)
{
	char buf[1024];
	char *eq;

	if (strlen(arg) >= sizeof(buf) || (eq = strchr(arg, '=')) == NULL) {
		CONF_ERR("--set", "expected KEY=VALUE, not '%s'", arg);
		return -EINVAL;
	}
	strcpy(buf, arg);
	buf[eq - arg] = '\0';
	return daemon_set(cfg, trim(buf), trim(buf + (eq - arg) + 1), "--set");
}

static int config_validate(struct isod_config *cfg)
{
	bool echo_found = false;

	if (cfg->nports == 0) {
		CONF_ERR("config", "no port: add a [port] section or --port");
		return -EINVAL;
	}
	for (unsigned i = 0; i < cfg->nports; i++) {
		const struct isod_port_conf *p = &cfg->ports[i];

		if (p->dev[0] == '\0' || p->ip == 0) {
			CONF_ERR("config", "port %u needs vdev= or pci=, and ip=", i);
			return -EINVAL;
		}
		if (cfg->echo && p->ip == cfg->echo_addr)
			echo_found = true;
	}
	if (cfg->app_memory != 0 && cfg->app_memory < (uint64_t)cfg->tx_ring + cfg->rx_ring) {
		CONF_ERR("config", "app_memory %llu is less than one socket's rings (tx_ring + "
			 "rx_ring = %u)", (unsigned long long)cfg->app_memory,
			 cfg->tx_ring + cfg->rx_ring);
		return -EINVAL;
	}
	if (cfg->echo && !echo_found) {
		CONF_ERR("config", "echo address is not the ip of any port");
		return -EINVAL;
	}
	return 0;
}

static void usage(const char *prog)
{
	printf("usage: %s [OPTIONS] [-- EAL-ARGS...]\n"
	       "\n"
	       "The isostack daemon: one lcore owns the ports and runs the TCP/IP stack.\n"
	       "Options override the configuration file (default " ISOD_CONF_DEFAULT ").\n"
	       "\n"
	       "  --config FILE      configuration file\n"
	       "  --lcore N          the stack's lcore (default 1)\n"
	       "  --port 'SPEC'      a port, replacing the file's ports; repeatable.\n"
	       "                     SPEC: 'vdev=DEVARGS|pci=ADDR ip=A.B.C.D/LEN [ip6=ADDR/64] [gw=A.B.C.D]'\n"
	       "  --mbufs N          mbufs in each port's mempool (default 16383)\n"
	       "  --echo ADDR|off    echo (TCP 7) and discard (TCP 9) service on ADDR\n"
	       "  --mode busy|adaptive  busy polling, or sleep when idle\n"
	       "  --tso on|off       TCP segmentation offload where the port has it (default on)\n"
	       "  --idle-us N        adaptive: idle time before sleeping (default 1000)\n"
	       "  --sleep-us N       longest timed sleep without RX interrupts (default 1000)\n"
	       "  --control PATH     control socket path\n"
	       "  --log-level LEVEL  err, warn, info (default) or debug: the least\n"
	       "                     severe lines logged\n"
	       "  --set KEY=VALUE    any [daemon] key of the file (e.g. app_sockets=255,\n"
	       "                     rx_ring=1m); repeatable\n"
	       "  -h, --help         this text\n"
	       "\n"
	       "Arguments after -- go to DPDK's EAL (e.g. --file-prefix NAME --no-huge).\n",
	       prog);
}

enum {
	OPT_CONFIG = 256, OPT_LCORE, OPT_PORT, OPT_MBUFS, OPT_ECHO, OPT_MODE,
	OPT_IDLE_US, OPT_SLEEP_US, OPT_CONTROL, OPT_TSO, OPT_SET, OPT_LOG_LEVEL,
};

static const struct option long_opts[] = {
	{ "config",   required_argument, NULL, OPT_CONFIG },
	{ "lcore",    required_argument, NULL, OPT_LCORE },
	{ "port",     required_argument, NULL, OPT_PORT },
	{ "mbufs",    required_argument, NULL, OPT_MBUFS },
	{ "echo",     required_argument, NULL, OPT_ECHO },
	{ "mode",     required_argument, NULL, OPT_MODE },
	{ "idle-us",  required_argument, NULL, OPT_IDLE_US },
	{ "sleep-us", required_argument, NULL, OPT_SLEEP_US },
	{ "control",  required_argument, NULL, OPT_CONTROL },
	{ "tso",      required_argument, NULL, OPT_TSO },
	{ "set",      required_argument, NULL, OPT_SET },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "help",     no_argument,       NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

int isod_config_load(struct isod_config *cfg, int argc, char **argv)
{
	const char *file = NULL;
	bool cli_ports = false;
	int opt, ret;

	config_defaults(cfg);
	/* Pass 1: only find the file (and --help), so the file comes first. */
	opterr = 0;
	optind = 0;          /* 0: glibc re-initialises getopt fully */
	while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
		if (opt == OPT_CONFIG)
			file = optarg;
		if (opt == 'h') {
			usage(argv[0]);
			return 1;
		}
	}
	if (file == NULL && access(ISOD_CONF_DEFAULT, R_OK) == 0)
		file = ISOD_CONF_DEFAULT;
	if (file != NULL) {
		snprintf(cfg->path, sizeof(cfg->path), "%s", file);
		ret = config_read_file(cfg, file);
		if (ret != 0)
			return -EINVAL;
	}

	/* Pass 2: the overrides. */
	opterr = 1;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
		ret = 0;
		switch (opt) {
		case OPT_CONFIG:
			break;
		case OPT_LCORE:
			ret = daemon_set(cfg, "lcore", optarg, "--lcore");
			break;
		case OPT_PORT:
			if (!cli_ports) {       /* the command line's ports replace the file's */
				cli_ports = true;
				cfg->nports = 0;
			}
			ret = config_port_arg(cfg, optarg);
			break;
		case OPT_MBUFS:
			ret = daemon_set(cfg, "mbufs", optarg, "--mbufs");
			break;
		case OPT_ECHO:
			ret = daemon_set(cfg, "echo", optarg, "--echo");
			break;
		case OPT_MODE:
			ret = daemon_set(cfg, "mode", optarg, "--mode");
			break;
		case OPT_IDLE_US:
			ret = daemon_set(cfg, "idle_us", optarg, "--idle-us");
			break;
		case OPT_SLEEP_US:
			ret = daemon_set(cfg, "sleep_us", optarg, "--sleep-us");
			break;
		case OPT_CONTROL:
			ret = daemon_set(cfg, "control", optarg, "--control");
			break;
		case OPT_TSO:
			ret = daemon_set(cfg, "tso", optarg, "--tso");
			break;
		case OPT_SET:
			ret = config_set_arg(cfg, optarg);
			break;
		case OPT_LOG_LEVEL:
			ret = daemon_set(cfg, "log_level", optarg, "--log-level");
			break;
		default:
			usage(argv[0]);
			return -EINVAL;
		}
		if (ret != 0)
			return -EINVAL;
	}
	for (int i = optind; i < argc; i++)
		if (eal_args_add(cfg, argv[i]) != 0)
			return -EINVAL;
	return config_validate(cfg);
}

void isod_config_free(struct isod_config *cfg)
{
	for (int i = 0; i < cfg->eal_argc; i++)
		free(cfg->eal_argv[i]);
	cfg->eal_argc = 0;
}
