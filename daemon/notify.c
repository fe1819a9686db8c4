/*
 * sd_notify(3) without libsystemd: the address comes from the environment
 * once, each notification is one send() of a few text lines.
 *
 * systemd checks the sender's credentials itself (NotifyAccess=main: the
 * main pid), so nothing needs attaching; the datagram is the whole
 * message. The socket is connected once (so poll() sees the manager's
 * queue) and non-blocking, and only READY/STOPPING wait for room (a
 * bounded poll()): a manager that does not read must not stall the stack
 * core for a status line or a watchdog ping, while a lost READY=1 would
 * have systemd kill a healthy daemon.
 */
#include "notify.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* READY/STOPPING wait at most this long for room in the manager's queue. */
#define NOTIFY_WAIT_MS 5000

static int notify_fd = -1;
static uint32_t notify_wd_ms;

/* $WATCHDOG_USEC, if it is meant for us: a $WATCHDOG_PID names our pid
 * (systemd sets it when the variable may reach other processes). */
static uint32_t watchdog_from_env(void)
{
	const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	unsigned long long v;
	char *end;

	if (usec == NULL || *usec == '\0')
		return 0;
	if (pid != NULL && *pid != '\0' && strtol(pid, NULL, 10) != (long)getpid())
		return 0;
	errno = 0;
	v = strtoull(usec, &end, 10);
	if (errno != 0 || *end != '\0' || v == 0)
		return 0;
	v /= 2000;       /* half the timeout, in ms */
	if (v == 0)
		v = 1;
	return v > UINT32_MAX / 2 ? UINT32_MAX / 2 : (uint32_t)v;
}

int isod_notify_init(void)
{
	const char *e = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	socklen_t sun_len;
	size_t len;
	int ret;

	notify_wd_ms = 0;
	if (e == NULL || *e == '\0')
		return 0;
	if (e[0] != '/' && e[0] != '@')
		return -EAFNOSUPPORT;        /* vsock: and the like: not ours */
	len = strlen(e);
	if (len >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	memcpy(sun.sun_path, e, len);
	if (e[0] == '@')
		sun.sun_path[0] = '\0';   /* abstract: the length ends the name */
	sun_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
			      (e[0] == '@' ? 0 : 1));
	notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (notify_fd < 0)
		return -errno;
	if (connect(notify_fd, (const struct sockaddr *)&sun, sun_len) != 0) {
		ret = -errno;
		close(notify_fd);
		notify_fd = -1;
		return ret;
	}
	notify_wd_ms = watchdog_from_env();
	return 0;
}

void isod_notify_fini(void)
{
	if (notify_fd >= 0)
		close(notify_fd);
	notify_fd = -1;
	notify_wd_ms = 0;
}

bool isod_notify_enabled(void)
{
	return notify_fd >= 0;
}

uint32_t isod_notify_watchdog_ms(void)
{
	return notify_fd >= 0 ? notify_wd_ms : 0;
}

int isod_notify_send(const char *text, bool wait)
{
	struct pollfd p = { .events = POLLOUT };

	if (notify_fd < 0)
		return 0;
	p.fd = notify_fd;
	for (;;) {
		if (send(notify_fd, text, strlen(text), MSG_NOSIGNAL) >= 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN || !wait)
			return -errno;
		wait = false;                 /* one bounded wait, then one more try */
		if (poll(&p, 1, NOTIFY_WAIT_MS) < 0 && errno != EINTR)
			return -errno;
	}
}

int isod_notify_status(const char *fmt, ...)
{
	char text[512] = "STATUS=";
	va_list ap;

	if (notify_fd < 0)
		return 0;
	va_start(ap, fmt);
	vsnprintf(text + 7, sizeof(text) - 7, fmt, ap);
	va_end(ap);
	text[strcspn(text, "\n")] = '\0';    /* one line: a newline would start a key */
	return isod_notify_send(text, false);
}
