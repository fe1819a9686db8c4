/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * stdio on isostack sockets.
 *
 * glibc's stdio reads and writes through its own internal calls, not the
 * interposed read/write, so a FILE on an isostack socket would reach the
 * reserved kernel socket behind the fd (ENOTCONN).  The cases that matter:
 *   - an image exec'd with a socket as stdin/stdout/stderr (inetd style,
 *     socat EXEC, a shell redirect): its constructor finds the sockets on
 *     fds 0-2 and points stdin/stdout/stderr at FILEs of ours;
 *   - dup2/dup3 of a socket onto 0-2 in a running program: the same, after
 *     flushing the FILE it replaces (and the original comes back when a
 *     non-socket is dup'd there again);
 *   - fdopen() of a socket.
 * Our FILEs are fopencookie streams whose functions call the interposed
 * read/write/close, so they take the isostack path.  Their fileno() is the
 * socket's fd (fstat, poll and friends keep working).  Exit flushes them
 * before the sockets are let go (glibc flushes stdio only after the
 * libraries' destructors).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "shim.h"

static ssize_t ck_read(void *c, char *buf, size_t n)
{
	return read((int)(intptr_t)c, buf, n);
}

/* All of it, or -1: stdio takes a short count as an error. */
static ssize_t ck_write(void *c, const char *buf, size_t n)
{
	size_t put = 0;

	while (put < n) {
		ssize_t r = write((int)(intptr_t)c, buf + put, n - put);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return put ? (ssize_t)put : -1;
		put += (size_t)r;
	}
	return (ssize_t)put;
}

static int ck_close(void *c)
{
	return close((int)(intptr_t)c);
}

static FILE *cookie_file(int fd, const char *mode)
{
	cookie_io_functions_t io = { .read = ck_read, .write = ck_write, .close = ck_close };
	FILE *f = fopencookie((void *)(intptr_t)fd, mode, io);

	if (f != NULL)
		f->_fileno = fd;   /* glibc marks cookie streams -2: fileno() works */
	return f;
}

FILE *isosock_stdio_fdopen(int fd, const char *mode)
{
	return cookie_file(fd, mode);
}

/* fds 0-2: glibc's FILE (saved at the first swap) and ours, if any. */
static FILE *orig[3], *mine[3];

static FILE **std_var(int fd)
{
	return fd == 0 ? &stdin : fd == 1 ? &stdout : &stderr;
}

void isosock_stdio_sync(int fd)
{
	static const char *const modes[3] = { "r", "w", "w" };
	FILE **var;
	bool sock;

	if (fd < 0 || fd > 2)
		return;
	var = std_var(fd);
	sock = isosock_fd_get_peek(fd);
	if (sock && mine[fd] == NULL) {
		FILE *f;

		if (fd != 0)
			fflush(*var);
		f = cookie_file(fd, modes[fd]);
		if (f == NULL)
			return;
		if (fd == 2)
			setvbuf(f, NULL, _IONBF, 0);   /* stderr stays unbuffered */
		orig[fd] = *var;
		mine[fd] = f;
		*var = f;
	} else if (!sock && mine[fd] != NULL && *var == mine[fd]) {
		/* A non-socket took the fd again: glibc's FILE on it is right.
		 * Ours is dropped without closing the fd it named. */
		fflush(mine[fd]);
		*var = orig[fd];
		mine[fd] = NULL;
	}
}

void isosock_stdio_adopt(void)
{
	for (int fd = 0; fd <= 2; fd++)
		isosock_stdio_sync(fd);
}

/* At exit, before the sockets go: what exit() would flush later (our
 * FILEs, fdopen's, the application's own). */
void isosock_stdio_flush(void)
{
	fflush(NULL);
}
