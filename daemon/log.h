/*
 * isostackd's log: one line per event on stderr, with a level.
 *
 * Under systemd stderr is a journal stream ($JOURNAL_STREAM names it), and
 * each line starts with the sd-daemon priority prefix "<3>".."<7>" that
 * journald turns into the entry's priority; anywhere else (a terminal, the
 * log file `isostack up` writes) a line reads "isostackd[PID]: LEVEL: ...".
 * Lines below the minimum level (config key log_level, default info) cost
 * one compare and no formatting.
 *
 * DPDK-free, so the socket back-end and its unit tests log the same way.
 * Not async-signal-safe: never call it from a signal handler.
 */
#ifndef ISOD_LOG_H
#define ISOD_LOG_H

#include <stdbool.h>

/* The values are syslog's priorities: the journal prefix is "<level>". */
enum isod_log_level {
	ISOD_LOG_ERR   = 3,   /* the daemon or a service of it failed */
	ISOD_LOG_WARN  = 4,   /* a limit was hit, something was refused or dropped */
	ISOD_LOG_INFO  = 6,   /* start, stop, ports, applications coming and going */
	ISOD_LOG_DEBUG = 7,   /* detail for developers */
};

/* Lines of this level and more severe (numerically at most) are written. */
extern int isod_log_min;

/*
 * ISOD_LOG(INFO, "port %u up", id): a line at level ISOD_LOG_INFO (ERR,
 * WARN, INFO, DEBUG), as DPDK's RTE_LOG names its levels. No newline in
 * fmt: the line gets one.
 */
#define ISOD_LOG(level, fmt, ...) do { \
	if (ISOD_LOG_##level <= isod_log_min) \
		isod_log(ISOD_LOG_##level, fmt, ##__VA_ARGS__); \
} while (0)

void isod_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Chooses the line format: the journal's when stderr is the stream that
 * $JOURNAL_STREAM ("DEV:INODE") names, plain otherwise. Call once at
 * start; until then lines are plain.
 */
void isod_log_init(void);
/* Whether lines go to the journal with priority prefixes. */
bool isod_log_journal(void);

/* "err", "warn", "info" or "debug" (also "error", "warning") into *level.
 * Returns 0 or -EINVAL. */
int isod_log_level_parse(const char *name, int *level);
const char *isod_log_level_name(int level);

#endif /* ISOD_LOG_H */
