/*
 * daemon/log.c: which lines are written, and how they look on a plain
 * stderr and on a journal stream. stderr is a temporary file for each
 * test; $JOURNAL_STREAM names that file (journal) or another (plain).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "log.h"

static int saved_stderr = -1;
static FILE *capture;

/* stderr to a fresh temporary file; JOURNAL_STREAM naming it if `journal`. */
static void capture_start(bool journal)
{
	struct stat st;
	char js[64];

	capture = tmpfile();
	assert_non_null(capture);
	saved_stderr = dup(STDERR_FILENO);
	assert_true(saved_stderr >= 0);
	assert_int_equal(dup2(fileno(capture), STDERR_FILENO), STDERR_FILENO);
	assert_int_equal(fstat(STDERR_FILENO, &st), 0);
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino + (journal ? 0 : 1));
	assert_int_equal(setenv("JOURNAL_STREAM", js, 1), 0);
	isod_log_init();
}

/* Restores stderr; returns what was written (static buffer). */
static const char *capture_end(void)
{
	static char buf[8192];
	size_t n;

	assert_int_equal(dup2(saved_stderr, STDERR_FILENO), STDERR_FILENO);
	close(saved_stderr);
	rewind(capture);
	n = fread(buf, 1, sizeof(buf) - 1, capture);
	buf[n] = '\0';
	fclose(capture);
	unsetenv("JOURNAL_STREAM");
	isod_log_init();
	return buf;
}

static void test_plain(void **state)
{
	char want[128];
	const char *out;

	(void)state;
	isod_log_min = ISOD_LOG_INFO;
	capture_start(false);
	assert_false(isod_log_journal());
	ISOD_LOG(INFO, "port %u up", 3u);
	ISOD_LOG(WARN, "limit: %s", "x");
	ISOD_LOG(ERR, "failed");
	ISOD_LOG(DEBUG, "not written at info");
	out = capture_end();
	snprintf(want, sizeof(want), "isostackd[%ld]: info: port 3 up\n"
		 "isostackd[%ld]: warn: limit: x\nisostackd[%ld]: err: failed\n",
		 (long)getpid(), (long)getpid(), (long)getpid());
	assert_string_equal(out, want);
}

static void test_journal(void **state)
{
	const char *out;

	(void)state;
	isod_log_min = ISOD_LOG_DEBUG;
	capture_start(true);
	assert_true(isod_log_journal());
	ISOD_LOG(ERR, "e");
	ISOD_LOG(WARN, "w");
	ISOD_LOG(INFO, "i");
	ISOD_LOG(DEBUG, "d");
	out = capture_end();
	assert_string_equal(out, "<3>e\n<4>w\n<6>i\n<7>d\n");
	isod_log_min = ISOD_LOG_INFO;
}

static void test_min_level(void **state)
{
	const char *out;

	(void)state;
	isod_log_min = ISOD_LOG_ERR;
	capture_start(true);
	ISOD_LOG(WARN, "w");
	ISOD_LOG(INFO, "i");
	ISOD_LOG(ERR, "e");
	out = capture_end();
	assert_string_equal(out, "<3>e\n");
	isod_log_min = ISOD_LOG_INFO;
}

/* A line longer than the buffer is cut with "...", one line still. */
static void test_long_line(void **state)
{
	char big[3000];
	const char *out;
	size_t n;

	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	capture_start(true);
	ISOD_LOG(INFO, "%s", big);
	out = capture_end();
	n = strlen(out);
	assert_true(n > 1000 && n < 1100);
	assert_int_equal(out[n - 1], '\n');
	assert_memory_equal(out + n - 4, "...", 3);
	assert_null(memchr(out, '\n', n - 1));
}

static void test_level_names(void **state)
{
	int l = 0;

	(void)state;
	assert_int_equal(isod_log_level_parse("err", &l), 0);
	assert_int_equal(l, ISOD_LOG_ERR);
	assert_int_equal(isod_log_level_parse("warning", &l), 0);
	assert_int_equal(l, ISOD_LOG_WARN);
	assert_int_equal(isod_log_level_parse("debug", &l), 0);
	assert_int_equal(l, ISOD_LOG_DEBUG);
	assert_int_equal(isod_log_level_parse("verbose", &l), -EINVAL);
	assert_int_equal(isod_log_level_parse("", &l), -EINVAL);
	assert_string_equal(isod_log_level_name(ISOD_LOG_INFO), "info");
	assert_string_equal(isod_log_level_name(ISOD_LOG_WARN), "warn");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_journal),
		cmocka_unit_test(test_min_level),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_level_names),
	};

	return cmocka_run_group_tests_name("daemon_log", tests, NULL, NULL);
}
