/*
 * isostackd's log lines (log.h): a level, a prefix journald or a human
 * reads, the text, one write per line.
 *
 * A line is formatted into a stack buffer and written with one write(2),
 * so lines from the daemon and from DPDK's own log (also stderr) never
 * interleave within a line, and a crash loses no buffered half line.
 * Lines longer than the buffer are cut, with "..." at the end.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#define LOG_LINE_MAX 1024

int isod_log_min = ISOD_LOG_INFO;
static bool log_journal;

static const struct {
	const char *name;
	int level;
} log_names[] = {
	{ "err", ISOD_LOG_ERR }, { "error", ISOD_LOG_ERR },
	{ "warn", ISOD_LOG_WARN }, { "warning", ISOD_LOG_WARN },
	{ "info", ISOD_LOG_INFO }, { "debug", ISOD_LOG_DEBUG },
};

int isod_log_level_parse(const char *name, int *level)
{
	for (size_t i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++) {
		if (strcmp(name, log_names[i].name) == 0) {
			*level = log_names[i].level;
			return 0;
		}
	}
	return -EINVAL;
}

const char *isod_log_level_name(int level)
{
	for (size_t i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++)
		if (log_names[i].level == level)
			return log_names[i].name;
	return "?";
}

/* $JOURNAL_STREAM is inherited by children whose stderr went elsewhere
 * (a redirect in a script): it only counts if it names our stderr. */
void isod_log_init(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	log_journal = false;
	if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
		return;
	if (fstat(STDERR_FILENO, &st) != 0)
		return;
	log_journal = (unsigned long long)st.st_dev == dev &&
		      (unsigned long long)st.st_ino == ino;
}

bool isod_log_journal(void)
{
	return log_journal;
}

void isod_log(int level, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	va_list ap;
	size_t n;
	int k;

	if (log_journal)
		k = snprintf(line, sizeof(line), "<%d>", level);
	else
		k = snprintf(line, sizeof(line), "isostackd[%ld]: %s: ", (long)getpid(),
			     isod_log_level_name(level));
	n = k > 0 ? (size_t)k : 0;
	va_start(ap, fmt);
	k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (k < 0)
		k = 0;
	if ((size_t)k >= sizeof(line) - n - 1) {     /* cut: room for "...\n" */
		n = sizeof(line) - 5;
		memcpy(line + n, "...", 3);
		n += 3;
	} else {
		n += (size_t)k;
	}
	line[n++] = '\n';
	while (write(STDERR_FILENO, line, n) < 0 && errno == EINTR)
		;
}
