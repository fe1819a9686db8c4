/*
 * The systemd notification protocol (sd_notify(3)), in our own few lines:
 * one datagram of "KEY=VALUE" lines to the AF_UNIX socket $NOTIFY_SOCKET
 * names, a path or (leading '@') an abstract name. Without $NOTIFY_SOCKET
 * every call is a no-op that succeeds, so the daemon calls them
 * unconditionally.
 *
 * What isostackd sends (docs/daemon.md, "systemd"): STATUS= at each
 * start-up step; READY=1 once the control socket accepts applications;
 * a STATUS= line when the number of applications or sockets changes;
 * WATCHDOG=1 from the loop's slow path while $WATCHDOG_USEC asks for it;
 * STOPPING=1 when a signal stops it.
 *
 * Stack lcore only (one socket, no lock); never from a signal handler.
 */
#ifndef ISOD_NOTIFY_H
#define ISOD_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID and opens the
 * datagram socket. Returns 0 (also when there is nothing to notify), or
 * -EAFNOSUPPORT (an address that is neither a path nor '@'), -ENAMETOOLONG,
 * or the -errno of socket() or connect() (-ENOENT, -ECONNREFUSED: nobody
 * listens there); then notifications are off.
 */
int isod_notify_init(void);
/* Closes the socket. */
void isod_notify_fini(void);
/* Whether a manager listens ($NOTIFY_SOCKET was usable). */
bool isod_notify_enabled(void);

/*
 * Sends `text` ("READY=1", "STATUS=...\nREADY=1", ...) as one datagram.
 * wait: block if the manager's queue is full (READY, STOPPING: they must
 * not be lost); otherwise give up at once (periodic lines, on the stack
 * core). Returns 0, or the -errno of send() (-EAGAIN: queue full).
 */
int isod_notify_send(const char *text, bool wait);
/* "STATUS=" + the formatted text, without waiting. */
int isod_notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Milliseconds between WATCHDOG=1 pings: half of $WATCHDOG_USEC (at least
 * 1); 0 when no watchdog is asked for, or it is for another pid. */
uint32_t isod_notify_watchdog_ms(void);

#endif /* ISOD_NOTIFY_H */
