/*
 * isostat --prometheus: the STATS reply in the Prometheus text exposition
 * format 0.0.4, for a node_exporter textfile collector, a cron job or any
 * scraper that runs a command.
 *
 * Every "group.rest value" line of the reply becomes one sample of the
 * family isostack_<group>_<rest> (dots to underscores), plus "_total" for
 * a counter. Indices in the name become labels instead: port.0.rx_pkts is
 * isostack_port_rx_pkts_total{port="0"}; app.1.sockets is
 * isostack_app_sockets{app="1",pid="PID"}; sock.1.2.rx_queued carries app,
 * pid, slot, local and remote ("A.B.C.D:PORT"). The names are stable
 * because they are the daemon's own keys.
 *
 * Whether a line is a counter or a gauge: its group's default (groups[])
 * unless gauges[] names it. A group this table does not know (a newer
 * daemon) is "untyped", so nothing is ever claimed to be a counter
 * without a reason. Lines that are no quantity (the app's pid, socket
 * addresses, TCP sequence numbers) become labels or are left out
 * (skipped[]).
 *
 * Families are written whole, sorted by name (the format wants all the
 * samples of a family together, and port.0.x, port.0.y, port.1.x ... come
 * interleaved): O(n log n) in the reply's lines.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "isostat.h"

enum prom_type { PROM_UNTYPED, PROM_COUNTER, PROM_GAUGE };

static const char *const type_names[] = {
	[PROM_UNTYPED] = "untyped", [PROM_COUNTER] = "counter", [PROM_GAUGE] = "gauge",
};

/* Group: its default type, how many numeric indices follow its name, and
 * what it is (the HELP text's start). */
static const struct prom_group {
	const char *name;
	enum prom_type type;
	unsigned nidx;
	const char *help;
} groups[] = {
	{ "loop", PROM_COUNTER, 0, "Stack core's dispatcher loop (cycles are TSC cycles)" },
	{ "core", PROM_COUNTER, 0, "Stack core as the kernel accounts it, ms since boot" },
	{ "port", PROM_COUNTER, 1, "Per port" },
	{ "lwip", PROM_COUNTER, 0, "lwIP protocol counter (lwIP's own, may wrap)" },
	{ "backend", PROM_COUNTER, 0, "Socket back-end" },
	{ "mem", PROM_COUNTER, 0, "Ring memory of applications' sockets" },
	{ "txzc", PROM_COUNTER, 0, "Zero-copy transmit" },
	{ "memp", PROM_GAUGE, 0, "lwIP's memory pools (entries) and heap (bytes)" },
	{ "app", PROM_GAUGE, 1, "Per attached application" },
	{ "sock", PROM_GAUGE, 2, "Per open socket of an application" },
};

/* Lines of counter groups that are gauges: levels, settings, high-water
 * marks, identities. Names as in the reply, indices left out. */
static const char *const gauges[] = {
	"loop.tsc_hz", "loop.adaptive", "loop.max_pass_cycles", "loop.max_timers_cycles",
	"loop.rx_path_cycles_per_frame", "loop.tx_path_cycles_per_frame",
	"core.cpu", "port.mbufs_used",
	"backend.apps", "backend.open_sockets", "backend.rx_held", "backend.rx_held_max",
	"backend.variant", "backend.doorbells_per_app", "backend.reuseport_groups",
	"backend.cut_through", "backend.cut_open",
	"mem.budget", "mem.backed", "mem.pressure", "mem.membarrier",
	"txzc.segs_dying", "txzc.refs",
};

/* No quantity: labels of the others (pid, addresses) or sequence numbers. */
static const char *const skipped[] = {
	"app.pid", "sock.local_ip", "sock.local_port", "sock.remote_ip", "sock.remote_port",
	"sock.local_ip6_hi", "sock.local_ip6_lo", "sock.remote_ip6_hi", "sock.remote_ip6_lo",
	"sock.rcv_nxt", "sock.snd_nxt", "sock.lastack",
};

struct prom_sample {
	char family[160];
	char labels[192];
	const struct isostat_kv *kv;
	const struct prom_group *group;
	enum prom_type type;
	unsigned order;             /* position in the reply: a stable sort */
};

static bool in_list(const char *const *list, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], name) == 0)
			return true;
	return false;
}

#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))

static int cmp_kv(const void *a, const void *b)
{
	const struct isostat_kv *const *x = a, *const *y = b;

	return strcmp((*x)->name, (*y)->name);
}

/* The line `name` of the reply through the sorted index, or NULL. */
static const struct isostat_kv *lookup(const struct isostat_kv **index, unsigned n,
				       const char *name)
{
	struct isostat_kv key;
	const struct isostat_kv *kp = &key, **hit;

	snprintf(key.name, sizeof(key.name), "%s", name);
	hit = bsearch(&kp, index, n, sizeof(*index), cmp_kv);
	return hit ? *hit : NULL;
}

static uint64_t lookup_value(const struct isostat_kv **index, unsigned n, const char *name)
{
	const struct isostat_kv *kv = lookup(index, n, name);

	return kv ? kv->value : 0;
}

static void addr_label(char *out, size_t len, const struct isostat_kv **index, unsigned n,
		       unsigned app, unsigned slot, const char *end)
{
	char k[96];
	uint64_t ip, port;

	snprintf(k, sizeof(k), "sock.%u.%u.%s_ip", app, slot, end);
	ip = lookup_value(index, n, k);
	snprintf(k, sizeof(k), "sock.%u.%u.%s_port", app, slot, end);
	port = lookup_value(index, n, k);
	snprintf(out, len, "%u.%u.%u.%u:%" PRIu64, (unsigned)(ip >> 24) & 255,
		 (unsigned)(ip >> 16) & 255, (unsigned)(ip >> 8) & 255, (unsigned)ip & 255, port);
}

/* Metric names allow [a-zA-Z0-9_:]: anything else in a key becomes '_'. */
static void append_name(char *out, size_t len, const char *part)
{
	size_t used = strlen(out);

	for (; *part != '\0' && used + 1 < len; part++)
		out[used++] = (isalnum((unsigned char)*part) || *part == '_') ? *part : '_';
	out[used] = '\0';
}

/*
 * One reply line to one sample. Returns false for a line that is left
 * out (skipped[], or a known group's line without its indices).
 */
static bool to_sample(struct prom_sample *ps, const struct isostat_kv *kv,
		      const struct isostat_kv **index, unsigned n)
{
	const char *dot = strchr(kv->name, '.');
	const struct prom_group *g = NULL;
	unsigned idx[2] = { 0, 0 };
	char key[96], plain[96];
	const char *rest;
	int used = 0;

	if (dot == NULL)
		dot = kv->name + strlen(kv->name);
	for (size_t i = 0; i < NELEMS(groups); i++)
		if (strlen(groups[i].name) == (size_t)(dot - kv->name) &&
		    strncmp(groups[i].name, kv->name, (size_t)(dot - kv->name)) == 0)
			g = &groups[i];
	rest = *dot ? dot + 1 : dot;
	if (g != NULL && g->nidx == 1 && sscanf(rest, "%u.%n", &idx[0], &used) != 1)
		return false;
	if (g != NULL && g->nidx == 2 && sscanf(rest, "%u.%u.%n", &idx[0], &idx[1], &used) != 2)
		return false;
	if (g != NULL && g->nidx > 0 && used == 0)
		return false;
	rest += used;
	/* The name with its indices left out: how gauges[] and skipped[] know it. */
	snprintf(plain, sizeof(plain), "%.*s.%s", (int)(dot - kv->name), kv->name, rest);
	if (in_list(skipped, NELEMS(skipped), plain))
		return false;

	ps->kv = kv;
	ps->group = g;
	ps->type = g == NULL ? PROM_UNTYPED :
		   in_list(gauges, NELEMS(gauges), plain) ? PROM_GAUGE : g->type;
	snprintf(key, sizeof(key), "%s", g == NULL ? kv->name : plain);
	strcpy(ps->family, "isostack_");
	append_name(ps->family, sizeof(ps->family), key);
	if (ps->type == PROM_COUNTER)
		append_name(ps->family, sizeof(ps->family), "_total");

	ps->labels[0] = '\0';
	if (g != NULL && strcmp(g->name, "port") == 0) {
		snprintf(ps->labels, sizeof(ps->labels), "port=\"%u\"", idx[0]);
	} else if (g != NULL && (strcmp(g->name, "app") == 0 || strcmp(g->name, "sock") == 0)) {
		char k[96], local[32] = "", remote[32] = "";

		snprintf(k, sizeof(k), "app.%u.pid", idx[0]);
		if (g->nidx == 2) {
			addr_label(local, sizeof(local), index, n, idx[0], idx[1], "local");
			addr_label(remote, sizeof(remote), index, n, idx[0], idx[1], "remote");
			snprintf(ps->labels, sizeof(ps->labels),
				 "app=\"%u\",pid=\"%" PRIu64 "\",slot=\"%u\",local=\"%s\",remote=\"%s\"",
				 idx[0], lookup_value(index, n, k), idx[1], local, remote);
		} else {
			snprintf(ps->labels, sizeof(ps->labels), "app=\"%u\",pid=\"%" PRIu64 "\"",
				 idx[0], lookup_value(index, n, k));
		}
	}
	return true;
}

static int cmp_sample(const void *a, const void *b)
{
	const struct prom_sample *x = a, *y = b;
	int c = strcmp(x->family, y->family);

	if (c != 0)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

static void write_help(FILE *f, const struct prom_sample *ps)
{
	const struct prom_group *g = ps->group;
	const char *name = ps->kv->name;
	const char *rest = strchr(name, '.');

	/* The reply's name with its indices as N, APP, SLOT: where it comes from. */
	fprintf(f, "# HELP %s %s (isostackd STATS line ", ps->family,
		g ? g->help : "Reported by isostackd, not known to this isostat");
	if (g != NULL && g->nidx > 0 && rest != NULL) {
		rest = strchr(rest + 1, '.');
		if (g->nidx == 2 && rest != NULL)
			rest = strchr(rest + 1, '.');
		fprintf(f, "%s.%s%s)\n", g->name, g->nidx == 2 ? "APP.SLOT" :
			strcmp(g->name, "app") == 0 ? "APP" : "N", rest ? rest : "");
	} else {
		fprintf(f, "%s)\n", name);
	}
	fprintf(f, "# TYPE %s %s\n", ps->family, type_names[ps->type]);
}

int isostat_prom_write(FILE *f, const struct isostat_snapshot *s)
{
	const struct isostat_kv **index = malloc(sizeof(*index) * (s->n ? s->n : 1));
	struct prom_sample *ps = malloc(sizeof(*ps) * (s->n ? s->n : 1));
	unsigned m = 0;

	if (index == NULL || ps == NULL) {
		free(index);
		free(ps);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < s->n; i++)
		index[i] = &s->kv[i];
	qsort(index, s->n, sizeof(*index), cmp_kv);
	for (unsigned i = 0; i < s->n; i++) {
		if (to_sample(&ps[m], &s->kv[i], index, s->n)) {
			ps[m].order = i;
			m++;
		}
	}
	qsort(ps, m, sizeof(*ps), cmp_sample);
	for (unsigned i = 0; i < m; i++) {
		const struct isostat_kv *kv = ps[i].kv;

		if (i == 0 || strcmp(ps[i].family, ps[i - 1].family) != 0)
			write_help(f, &ps[i]);
		fprintf(f, "%s%s%s%s ", ps[i].family, ps[i].labels[0] ? "{" : "",
			ps[i].labels, ps[i].labels[0] ? "}" : "");
		if (kv->neg)
			fprintf(f, "%" PRId64 "\n", (int64_t)kv->value);
		else
			fprintf(f, "%" PRIu64 "\n", kv->value);
	}
	free(index);
	free(ps);
	return 0;
}
