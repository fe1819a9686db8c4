/*
 * daemon/notify.c against a datagram socket of the test's own, as systemd
 * would hold it: the address forms, what arrives, the watchdog variables,
 * and that a manager that stops reading never blocks a status line.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>

#include "notify.h"

static char sock_path[108];

/* A manager's socket at `name` (a path, or '@' for an abstract name). */
static int manager_open(const char *name)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t len = strlen(name);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	memcpy(sun.sun_path, name, len);
	if (name[0] == '@')
		sun.sun_path[0] = '\0';
	else
		unlink(name);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun,
			      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
					  (name[0] == '@' ? 0 : 1))), 0);
	return fd;
}

static void expect_msg(int fd, const char *want)
{
	char buf[1024];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	assert_true(n >= 0);
	buf[n] = '\0';
	assert_string_equal(buf, want);
}

static void env_clear(void)
{
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
}

static void test_unset(void **state)
{
	(void)state;
	env_clear();
	assert_int_equal(isod_notify_init(), 0);
	assert_false(isod_notify_enabled());
	assert_int_equal(isod_notify_send("READY=1", true), 0);
	assert_int_equal(isod_notify_watchdog_ms(), 0);
	isod_notify_fini();
}

static void test_path(void **state)
{
	int fd;

	(void)state;
	env_clear();
	snprintf(sock_path, sizeof(sock_path), "/tmp/isostack-notify-unit-%d", (int)getpid());
	fd = manager_open(sock_path);
	setenv("NOTIFY_SOCKET", sock_path, 1);
	assert_int_equal(isod_notify_init(), 0);
	assert_true(isod_notify_enabled());
	assert_int_equal(isod_notify_send("READY=1\nSTATUS=up", true), 0);
	expect_msg(fd, "READY=1\nSTATUS=up");
	/* one line: a newline in the text would start another key */
	assert_int_equal(isod_notify_status("serving: %u apps\nREADY=1", 2u), 0);
	expect_msg(fd, "STATUS=serving: 2 apps");
	isod_notify_fini();
	assert_false(isod_notify_enabled());
	close(fd);
	unlink(sock_path);
}

static void test_abstract(void **state)
{
	char name[64];
	int fd;

	(void)state;
	env_clear();
	snprintf(name, sizeof(name), "@isostack-notify-unit-%d", (int)getpid());
	fd = manager_open(name);
	setenv("NOTIFY_SOCKET", name, 1);
	assert_int_equal(isod_notify_init(), 0);
	assert_int_equal(isod_notify_send("STOPPING=1", true), 0);
	expect_msg(fd, "STOPPING=1");
	isod_notify_fini();
	close(fd);
}

static void test_bad_addresses(void **state)
{
	(void)state;
	env_clear();
	setenv("NOTIFY_SOCKET", "vsock:2:1234", 1);
	assert_int_equal(isod_notify_init(), -EAFNOSUPPORT);
	assert_false(isod_notify_enabled());
	setenv("NOTIFY_SOCKET", "/nonexistent/isostack/notify", 1);
	assert_int_equal(isod_notify_init(), -ENOENT);
	assert_false(isod_notify_enabled());
	assert_int_equal(isod_notify_send("READY=1", true), 0);   /* off: a no-op */
	env_clear();
}

static unsigned watchdog_with(const char *usec, const char *pid, int fd_unused)
{
	unsigned ms;

	(void)fd_unused;
	setenv("NOTIFY_SOCKET", sock_path, 1);
	if (usec)
		setenv("WATCHDOG_USEC", usec, 1);
	else
		unsetenv("WATCHDOG_USEC");
	if (pid)
		setenv("WATCHDOG_PID", pid, 1);
	else
		unsetenv("WATCHDOG_PID");
	assert_int_equal(isod_notify_init(), 0);
	ms = isod_notify_watchdog_ms();
	isod_notify_fini();
	return ms;
}

static void test_watchdog(void **state)
{
	char me[32], other[32];
	int fd;

	(void)state;
	env_clear();
	snprintf(sock_path, sizeof(sock_path), "/tmp/isostack-notify-unit-%d", (int)getpid());
	fd = manager_open(sock_path);
	snprintf(me, sizeof(me), "%d", (int)getpid());
	snprintf(other, sizeof(other), "%d", (int)getpid() + 1);
	assert_int_equal(watchdog_with(NULL, NULL, fd), 0);
	assert_int_equal(watchdog_with("10000000", NULL, fd), 5000);   /* half of 10 s */
	assert_int_equal(watchdog_with("3000000", me, fd), 1500);
	assert_int_equal(watchdog_with("3000000", other, fd), 0);      /* not for us */
	assert_int_equal(watchdog_with("1000", NULL, fd), 1);          /* at least 1 ms */
	assert_int_equal(watchdog_with("soon", NULL, fd), 0);
	assert_int_equal(watchdog_with("0", NULL, fd), 0);
	close(fd);
	unlink(sock_path);
	env_clear();
}

/* A manager that does not read: status lines fail with EAGAIN at once. */
static void test_full_queue(void **state)
{
	int fd, rc = 0;
	unsigned sent = 0;

	(void)state;
	env_clear();
	snprintf(sock_path, sizeof(sock_path), "/tmp/isostack-notify-unit-%d", (int)getpid());
	fd = manager_open(sock_path);
	setenv("NOTIFY_SOCKET", sock_path, 1);
	assert_int_equal(isod_notify_init(), 0);
	while (sent < 1000000 && (rc = isod_notify_status("n %u", sent)) == 0)
		sent++;
	assert_int_equal(rc, -EAGAIN);
	assert_true(sent > 0);
	expect_msg(fd, "STATUS=n 0");                                  /* in order */
	isod_notify_fini();
	close(fd);
	unlink(sock_path);
	env_clear();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unset),
		cmocka_unit_test(test_path),
		cmocka_unit_test(test_abstract),
		cmocka_unit_test(test_bad_addresses),
		cmocka_unit_test(test_watchdog),
		cmocka_unit_test(test_full_queue),
	};

	return cmocka_run_group_tests_name("daemon_notify", tests, NULL, NULL);
}
