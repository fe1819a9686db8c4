/*
 * isostat: print isostackd's statistics, once or every N seconds.
 *
 *   isostat [-c PATH] [-i SECONDS] [-n COUNT] [-r | -a | --prometheus]
 *
 * It sends STATS on the daemon's control socket (include/isostack/
 * ctl_proto.h) and formats the "name value" reply: per port packets,
 * bytes, drops and errors; the loop's busy share, split into device I/O
 * and stack work; lwIP's protocol counters; then everything else the
 * daemon reported (applications, sockets) grouped by name. With -i, port
 * and protocol figures are per second over the interval. -r prints the
 * reply as it came, -a one line per application (what `isostack status`
 * shows), --prometheus the Prometheus exposition (isostat_prom.c).
 */
#include <errno.h>
#include <arpa/inet.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "isostack/ctl_proto.h"
#include "isostat.h"

#define ISOSTAT_DEFAULT_PATH "/run/isostack/isostackd.sock"
#define ISOSTAT_REPLY_TIMEOUT_S 5   /* the loop answers within a pass */

static char reply[ISOSTACK_CTL_STATS_MAX + 1];

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int ctl_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval timeout = { .tv_sec = ISOSTAT_REPLY_TIMEOUT_S };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A stopped or wedged daemon still has its socket accept (the
	 * kernel queues the connection): bound the wait for the reply. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/* One STATS round trip; returns the body length or -errno (-ETIMEDOUT: no
 * reply within ISOSTAT_REPLY_TIMEOUT_S). */
static ssize_t ctl_stats(int fd)
{
	struct isostack_ctl_stats req = {
		.hdr = {
			.magic = ISOSTACK_CTL_MAGIC, .version = ISOSTACK_CTL_VERSION,
			.type = ISOSTACK_CTL_STATS, .length = sizeof(req),
		},
	};
	struct isostack_ctl_hdr *h = (struct isostack_ctl_hdr *)reply;
	ssize_t n;

	if (send(fd, &req, sizeof(req), MSG_NOSIGNAL) != sizeof(req))
		return -errno;
	n = recv(fd, reply, ISOSTACK_CTL_STATS_MAX, 0);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
	if (n == 0)
		return -ECONNRESET;
	if ((size_t)n < sizeof(*h) || h->magic != ISOSTACK_CTL_MAGIC ||
	    h->type != ISOSTACK_CTL_STATS_REPLY || h->length != (uint32_t)n)
		return -EPROTO;
	return n - (ssize_t)sizeof(*h);
}

/*
 * Only whole lines count: a reply that filled ISOSTACK_CTL_STATS_MAX ends
 * in a cut one, whose number may be cut short too.
 */
static void parse(struct isostat_snapshot *s, const char *body, size_t len)
{
	const char *p = body, *end = body + len;

	s->n = 0;
	s->when = now_s();
	while (p < end && s->n < ISOSTAT_MAX_KEYS) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *sp;
		size_t nlen;

		if (nl == NULL)
			break;
		sp = memchr(p, ' ', (size_t)(nl - p));
		if (sp != NULL && (nlen = (size_t)(sp - p)) < sizeof(s->kv[0].name)) {
			struct isostat_kv *kv = &s->kv[s->n++];

			memcpy(kv->name, p, nlen);
			kv->name[nlen] = '\0';
			kv->neg = sp[1] == '-';
			kv->value = kv->neg ? (uint64_t)strtoll(sp + 1, NULL, 10) :
				    strtoull(sp + 1, NULL, 10);
		}
		p = nl + 1;
	}
}

/* The value of `name`, or 0 when absent. O(n): a few hundred keys. */
static uint64_t get(const struct isostat_snapshot *s, const char *name)
{
	for (unsigned i = 0; i < s->n; i++)
		if (strcmp(s->kv[i].name, name) == 0)
			return s->kv[i].value;
	return 0;
}

static bool has(const struct isostat_snapshot *s, const char *name)
{
	for (unsigned i = 0; i < s->n; i++)
		if (strcmp(s->kv[i].name, name) == 0)
			return true;
	return false;
}

/* A counter: absolute, or per second since `prev`. */
static double rate(const struct isostat_snapshot *cur, const struct isostat_snapshot *prev,
		   const char *name)
{
	uint64_t v = get(cur, name);

	if (prev == NULL)
		return (double)v;
	return (double)(v - get(prev, name)) / (cur->when - prev->when);
}

static void print_ports(const struct isostat_snapshot *cur, const struct isostat_snapshot *prev)
{
	static const char *const drops[] = {
		"rx_drop_cksum", "rx_drop_bad", "rx_drop_nomem", "tx_drop_nomem",
		"tx_drop_toolong", "tx_drop_stuck", "dev_imissed", "dev_rx_nombuf",
	};
	static const char *const errs[] = { "dev_ierrors", "dev_oerrors" };
	char k[96];

	printf("%-6s %14s %14s %14s %14s %10s %10s%s\n", "port", "rx_pkts", "rx_bytes",
	       "tx_pkts", "tx_bytes", "drops", "errors", prev ? "   (per second)" : "");
	for (unsigned i = 0;; i++) {
		double d = 0, e = 0;

		snprintf(k, sizeof(k), "port.%u.rx_pkts", i);
		if (!has(cur, k))
			break;
		for (unsigned j = 0; j < sizeof(drops) / sizeof(drops[0]); j++) {
			snprintf(k, sizeof(k), "port.%u.%s", i, drops[j]);
			d += rate(cur, prev, k);
		}
		for (unsigned j = 0; j < sizeof(errs) / sizeof(errs[0]); j++) {
			snprintf(k, sizeof(k), "port.%u.%s", i, errs[j]);
			e += rate(cur, prev, k);
		}
		printf("%-6u", i);
		snprintf(k, sizeof(k), "port.%u.rx_pkts", i);
		printf(" %14.0f", rate(cur, prev, k));
		snprintf(k, sizeof(k), "port.%u.rx_bytes", i);
		printf(" %14.0f", rate(cur, prev, k));
		snprintf(k, sizeof(k), "port.%u.tx_pkts", i);
		printf(" %14.0f", rate(cur, prev, k));
		snprintf(k, sizeof(k), "port.%u.tx_bytes", i);
		printf(" %14.0f %10.0f %10.0f\n", rate(cur, prev, k), d, e);
	}
}

static void print_loop(const struct isostat_snapshot *cur, const struct isostat_snapshot *prev)
{
	double busy = rate(cur, prev, "loop.busy_cycles");
	double idle = rate(cur, prev, "loop.idle_cycles");
	double sleep = rate(cur, prev, "loop.sleep_cycles");
	double dev = rate(cur, prev, "loop.dev_cycles");
	double all = busy + idle + sleep;
	char split[64] = "";

	if (all <= 0)
		all = 1;
	/* A daemon without the split reports no loop.dev_cycles: leave it out. */
	if (has(cur, "loop.dev_cycles"))
		snprintf(split, sizeof(split), " (device I/O %.1f%%, stack %.1f%%)",
			 100 * dev / all, 100 * (busy - dev) / all);
	printf("\nloop: %.0f iterations%s, busy %.1f%%%s, idle polling %.1f%%, asleep %.1f%%\n",
	       rate(cur, prev, "loop.iterations"), prev ? "/s" : "",
	       100 * busy / all, split, 100 * idle / all, 100 * sleep / all);
	if (has(cur, "core.cpu")) {
		/* The stack core as the kernel accounts it: the loop thread's
		 * user and system time, and kernel work on the core that is
		 * not the thread's own (softirq, irq). */
		double u = rate(cur, prev, "core.user_ms"), s = rate(cur, prev, "core.system_ms");
		double si = rate(cur, prev, "core.softirq_ms"), irq = rate(cur, prev, "core.irq_ms");
		double id = rate(cur, prev, "core.idle_ms"), stl = rate(cur, prev, "core.steal_ms");
		double tot = u + s + si + irq + id + stl;

		if (tot <= 0)
			tot = 1;
		printf("core %.0f: user %.1f%%, system %.1f%% (the loop thread's %.1f%%), "
		       "softirq %.1f%%, irq %.1f%%, idle %.1f%%, steal %.1f%%\n",
		       (double)get(cur, "core.cpu"), 100 * u / tot, 100 * s / tot,
		       100 * rate(cur, prev, "core.thread_system_ms") / tot, 100 * si / tot,
		       100 * irq / tot, 100 * id / tot, 100 * stl / tot);
	}
}

static void print_lwip(const struct isostat_snapshot *cur, const struct isostat_snapshot *prev)
{
	static const char *const protos[] = {
		"etharp", "ip", "icmp", "udp", "tcp", "ip6", "icmp6", "nd6", "ip6_frag",
	};
	static const char *const cols[] = {
		"recv", "xmit", "drop", "chkerr", "lenerr", "proterr", "memerr",
	};
	char k[96];

	printf("\n%-8s", "lwip");
	for (unsigned c = 0; c < sizeof(cols) / sizeof(cols[0]); c++)
		printf(" %12s", cols[c]);
	printf("\n");
	for (unsigned p = 0; p < sizeof(protos) / sizeof(protos[0]); p++) {
		printf("%-8s", protos[p]);
		for (unsigned c = 0; c < sizeof(cols) / sizeof(cols[0]); c++) {
			snprintf(k, sizeof(k), "lwip.%s.%s", protos[p], cols[c]);
			printf(" %12.0f", rate(cur, prev, k));
		}
		printf("\n");
	}
}

static const char *const tcp_states[] = {
	"CLOSED", "LISTEN", "SYN-SENT", "SYN-RECV", "ESTAB", "FIN-WAIT-1",
	"FIN-WAIT-2", "CLOSE-WAIT", "CLOSING", "LAST-ACK", "TIME-WAIT", "-",
};

static void ip_str(uint64_t v, char *out, size_t len)
{
	snprintf(out, len, "%u.%u.%u.%u", (unsigned)(v >> 24) & 255,
		 (unsigned)(v >> 16) & 255, (unsigned)(v >> 8) & 255, (unsigned)v & 255);
}

/* A socket end's address as ss prints it: a.b.c.d, or [v6] from the
 * _ip6_hi/_lo halves a socket with an IPv6 (or dual-stack) end has. */
static void end_str(const struct isostat_snapshot *cur, unsigned app, unsigned slot,
		    const char *which, char *out, size_t len)
{
	char k[96], a6[INET6_ADDRSTRLEN];
	uint8_t b[16];

	snprintf(k, sizeof(k), "sock.%u.%u.%s_ip6_hi", app, slot, which);
	if (!has(cur, k)) {
		snprintf(k, sizeof(k), "sock.%u.%u.%s_ip", app, slot, which);
		ip_str(get(cur, k), out, len);
		return;
	}
	uint64_t hi = get(cur, k);
	snprintf(k, sizeof(k), "sock.%u.%u.%s_ip6_lo", app, slot, which);
	uint64_t lo = get(cur, k);
	for (int i = 0; i < 8; i++) {
		b[i] = (uint8_t)(hi >> (56 - 8 * i));
		b[8 + i] = (uint8_t)(lo >> (56 - 8 * i));
	}
	inet_ntop(AF_INET6, b, a6, sizeof(a6));
	snprintf(out, len, "[%s]", a6);
}

/* Applications and their sockets, like ss: state, addresses, queues. */
static void print_sockets(const struct isostat_snapshot *cur)
{
	bool header = false;

	for (unsigned i = 0; i < cur->n; i++) {
		unsigned app, slot;
		char k[96], lip[INET6_ADDRSTRLEN + 2], rip[INET6_ADDRSTRLEN + 2];
		int end = 0;

		if (sscanf(cur->kv[i].name, "app.%u.pid%n", &app, &end) == 1 &&
		    cur->kv[i].name[end] == '\0') {
			snprintf(k, sizeof(k), "app.%u.sockets", app);
			printf("\napp %u: pid %" PRIu64 ", %" PRIu64 " sockets\n", app,
			       cur->kv[i].value, get(cur, k));
			header = false;
			continue;
		}
		if (sscanf(cur->kv[i].name, "sock.%u.%u.state%n", &app, &slot, &end) != 2 ||
		    cur->kv[i].name[end] != '\0')
			continue;
		if (!header) {
			printf("  %-5s %-11s %21s %21s %10s %10s\n", "slot", "state",
			       "local", "remote", "tx_flight", "rx_queued");
			header = true;
		}
		snprintf(k, sizeof(k), "sock.%u.%u.tcp_state", app, slot);
		uint64_t st = get(cur, k);
		end_str(cur, app, slot, "local", lip, sizeof(lip));
		end_str(cur, app, slot, "remote", rip, sizeof(rip));
		char l[64], r[64];
		snprintf(k, sizeof(k), "sock.%u.%u.local_port", app, slot);
		snprintf(l, sizeof(l), "%s:%" PRIu64, lip, get(cur, k));
		snprintf(k, sizeof(k), "sock.%u.%u.remote_port", app, slot);
		snprintf(r, sizeof(r), "%s:%" PRIu64, rip, get(cur, k));
		printf("  %-5u %-11s %21s %21s", slot,
		       tcp_states[st < 12 ? st : 11], l, r);
		snprintf(k, sizeof(k), "sock.%u.%u.tx_inflight", app, slot);
		printf(" %10" PRIu64, get(cur, k));
		snprintf(k, sizeof(k), "sock.%u.%u.rx_queued", app, slot);
		printf(" %10" PRIu64, get(cur, k));
		/* a listener of a SO_REUSEPORT group: its listening members */
		snprintf(k, sizeof(k), "sock.%u.%u.reuseport", app, slot);
		if (has(cur, k))
			printf(" reuseport %" PRIu64, get(cur, k));
		/* a UDP member: the datagrams the group gave it */
		snprintf(k, sizeof(k), "sock.%u.%u.reuseport_dgrams", app, slot);
		if (has(cur, k))
			printf(" dgrams %" PRIu64, get(cur, k));
		/* paired on the stack core (1; 0: its peer is gone) */
		snprintf(k, sizeof(k), "sock.%u.%u.cut", app, slot);
		if (has(cur, k))
			printf(" cut-through%s", get(cur, k) ? "" : " (peer gone)");
		printf("\n");
	}
}

/* Everything not shown above, as reported, grouped by its first name part. */
static void print_rest(const struct isostat_snapshot *cur)
{
	char group[96] = "";

	for (unsigned i = 0; i < cur->n; i++) {
		const char *name = cur->kv[i].name;
		const char *dot = strchr(name, '.');
		size_t glen = dot ? (size_t)(dot - name) : strlen(name);

		if (strncmp(name, "port.", 5) == 0 || strncmp(name, "loop.", 5) == 0 ||
		    strncmp(name, "lwip.", 5) == 0 || strncmp(name, "app.", 4) == 0 ||
		    strncmp(name, "sock.", 5) == 0)
			continue;
		if (strlen(group) != glen || strncmp(group, name, glen) != 0) {
			snprintf(group, sizeof(group), "%.*s", (int)glen, name);
			printf("\n%s:\n", group);
		}
		if (cur->kv[i].neg)
			printf("  %-48s %" PRId64 "\n", name, (int64_t)cur->kv[i].value);
		else
			printf("  %-48s %" PRIu64 "\n", name, cur->kv[i].value);
	}
}

/* The command name of pid, from /proc (same pid namespace), or "?". */
static void comm_of(uint64_t pid, char *out, size_t len)
{
	char path[64];
	FILE *f;

	snprintf(out, len, "?");
	snprintf(path, sizeof(path), "/proc/%" PRIu64 "/comm", pid);
	f = fopen(path, "r");
	if (f == NULL)
		return;
	if (fgets(out, (int)len, f) == NULL)
		snprintf(out, len, "?");
	out[strcspn(out, "\n")] = '\0';
	fclose(f);
}

/*
 * -a: one line per attached application, for people and scripts
 * (isostack status): the command name last, as it may hold spaces.
 */
static void print_apps(const struct isostat_snapshot *cur)
{
	printf("%-5s %8s %8s %12s  %s\n", "app", "pid", "sockets", "mem_backed", "command");
	for (unsigned i = 0; i < cur->n; i++) {
		unsigned app;
		char k[96], comm[64];
		int end = 0;

		if (sscanf(cur->kv[i].name, "app.%u.pid%n", &app, &end) != 1 ||
		    cur->kv[i].name[end] != '\0')
			continue;
		comm_of(cur->kv[i].value, comm, sizeof(comm));
		printf("%-5u %8" PRIu64, app, cur->kv[i].value);
		snprintf(k, sizeof(k), "app.%u.sockets", app);
		printf(" %8" PRIu64, get(cur, k));
		snprintf(k, sizeof(k), "app.%u.mem_backed", app);
		printf(" %12" PRIu64 "  %s\n", get(cur, k), comm);
	}
}

static void usage(FILE *f)
{
	fprintf(f, "usage: isostat [-c PATH] [-i SECONDS] [-n COUNT] [-r | -a | --prometheus]\n"
		"Prints isostackd's statistics from its control socket\n"
		"(default %s, or $ISOSTACK_CONTROL): ports, the stack core's\n"
		"loop, lwIP, applications and sockets. -i repeats every SECONDS with\n"
		"per-second rates, -n stops after COUNT reports, -r prints the raw\n"
		"name/value lines, -a (--apps) one line per attached application\n"
		"(pid, sockets, memory, command), -p (--prometheus) every counter and\n"
		"gauge in the Prometheus text format 0.0.4 (once; not with -i).\n",
		ISOSTAT_DEFAULT_PATH);
}

int main(int argc, char **argv)
{
	static struct isostat_snapshot snaps[2];
	const char *path = getenv("ISOSTACK_CONTROL");
	static const struct option longopts[] = {
		{ "apps", no_argument, NULL, 'a' },
		{ "prometheus", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum { VIEW_TEXT, VIEW_RAW, VIEW_APPS, VIEW_PROM } view = VIEW_TEXT;
	double interval = 0;
	long count = 1;
	bool count_set = false;        /* -n wins over -i's "forever", in any order */
	int c, fd, views = 0;

	if (path == NULL)
		path = ISOSTAT_DEFAULT_PATH;
	while ((c = getopt_long(argc, argv, "c:i:n:raph", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'i': interval = atof(optarg); if (!count_set) count = -1; break;
		case 'n': count = atol(optarg); count_set = true; break;
		case 'r': view = VIEW_RAW; views++; break;
		case 'a': view = VIEW_APPS; views++; break;
		case 'p': view = VIEW_PROM; views++; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (views > 1 || (view == VIEW_PROM && (interval > 0 || count != 1))) {
		fprintf(stderr, "isostat: -r, -a and --prometheus exclude each other, and "
			"--prometheus prints one scrape (no -i or -n)\n");
		usage(stderr);
		return 2;
	}
	if (optind < argc ||
	    interval < 0 || (interval == 0 && count != 1 && count != -1)) {
		usage(stderr);
		return 2;
	}
	fd = ctl_connect(path);
	if (fd < 0) {
		fprintf(stderr, "isostat: cannot reach isostackd at %s: %s\n"
			"isostat: is the daemon running? (isostack up, or systemctl start isostackd)\n",
			path, strerror(-fd));
		return 1;
	}
	for (long i = 0; count < 0 || i < count; i++) {
		struct isostat_snapshot *cur = &snaps[i % 2], *prev = &snaps[(i + 1) % 2];
		ssize_t n = ctl_stats(fd);

		if (n < 0) {
			fprintf(stderr, "isostat: STATS from %s: %s\n", path, strerror((int)-n));
			return 1;
		}
		if (view == VIEW_RAW) {
			fwrite(reply + sizeof(struct isostack_ctl_hdr), 1, (size_t)n, stdout);
		} else if (view == VIEW_APPS) {
			parse(cur, reply + sizeof(struct isostack_ctl_hdr), (size_t)n);
			if (i > 0)
				printf("\n");
			print_apps(cur);
		} else if (view == VIEW_PROM) {
			parse(cur, reply + sizeof(struct isostack_ctl_hdr), (size_t)n);
			if (isostat_prom_write(stdout, cur) < 0) {
				fprintf(stderr, "isostat: out of memory\n");
				return 1;
			}
		} else {
			parse(cur, reply + sizeof(struct isostack_ctl_hdr), (size_t)n);
			if (i > 0)
				printf("\n");
			print_ports(cur, i > 0 ? prev : NULL);
			print_loop(cur, i > 0 ? prev : NULL);
			print_lwip(cur, i > 0 ? prev : NULL);
			print_rest(cur);
			print_sockets(cur);
		}
		fflush(stdout);
		if (interval > 0 && (count < 0 || i + 1 < count)) {
			struct timespec ts = {
				.tv_sec = (time_t)interval,
				.tv_nsec = (long)((interval - (time_t)interval) * 1e9),
			};

			nanosleep(&ts, NULL);   /* the reporting period itself */
		}
	}
	close(fd);
	return 0;
}
