/*
 * isostat's parsed STATS reply, shared by the text view (isostat.c) and the
 * Prometheus exposition (isostat_prom.c). One snapshot holds the reply's
 * "name value" lines in the daemon's order.
 */
#ifndef ISOSTAT_H
#define ISOSTAT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define ISOSTAT_MAX_KEYS 4096

struct isostat_kv {
	char name[96];
	uint64_t value;     /* as parsed; two's complement when neg */
	bool neg;           /* the reply had a minus sign (mem.membarrier -1) */
};

struct isostat_snapshot {
	struct isostat_kv kv[ISOSTAT_MAX_KEYS];
	unsigned n;
	double when;        /* CLOCK_MONOTONIC seconds */
};

/*
 * Writes every line of `s` to `f` in the Prometheus text exposition format
 * 0.0.4 (docs/daemon.md, "Metrics"). Returns 0, or -ENOMEM when the
 * family table cannot be allocated (nothing is written then).
 */
int isostat_prom_write(FILE *f, const struct isostat_snapshot *s);

#endif /* ISOSTAT_H */
