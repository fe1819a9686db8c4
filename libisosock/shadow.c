/*
 * Light shadows: the fd of an established isostack TCP connection is an
 * eventfd, not a kernel socket (route.c's top comment says why the fd is
 * a kernel object at all).  A kernel socket costs ~4.3 KB of slab (TCP,
 * sock_inode_cache, dentry, filp); an eventfd a filp and a small context
 * on the shared anon inode.  An accepted connection gets one from the
 * start, a connecting socket swaps its kernel socket for one (dup3 onto
 * the same number) once its connect went to isostack.
 *
 * What the kernel socket used to answer for the application is answered
 * here, the kernel's way:
 *   - options the stack does not model (IP_TOS, TCP_INFO...), SO_TYPE and
 *     the timeouts: the kernel's verdict and value come from a throwaway
 *     kernel TCP socket, with the options this socket set (a small list
 *     kept per socket, "opts") set on it first; socket ioctls likewise;
 *   - fstat and statx: a real socket's answer (taken once), with an
 *     inode number of this socket's own (its eventfd's id, past 2^32:
 *     sockfs numbers are 32-bit, so none collides);
 *   - exec adoption keys on dev/ino, which every eventfd shares: the
 *     eventfd's id (/proc/self/fdinfo) goes with them, read at exec only.
 * Cost: a throwaway socket per fallback option call or ioctl (rare
 * calls); a /proc read per socket at its first fstat.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shadow.h"

#define L isosock_libc

/* Options kept per light socket: what setsockopt was given, replayed on
 * the throwaway socket (or on a kernel socket that takes the fd back). */
#define OPT_VAL_MAX 64

struct opt {
	int level, name;
	socklen_t len;
	unsigned char v[OPT_VAL_MAX];
};

struct opts {
	int n, cap;
	struct opt o[];
};

/* Serialises every opts list (rare calls: one lock is enough). */
static pthread_mutex_t opts_lock = PTHREAD_MUTEX_INITIALIZER;

bool isosock_sh_light(const struct isosock_file *f)
{
	return atomic_load_explicit(&f->flags, memory_order_relaxed) & ISOSOCK_F_LIGHT;
}

/* A TCP socket of the light socket's family, to ask the kernel with. */
static int scratch_socket(int domain)
{
	int s = L.socket(domain, SOCK_STREAM | SOCK_CLOEXEC, 0);
	return s < 0 ? -errno : s;
}

/* ---- shadows ------------------------------------------------------------- */

int isosock_sh_accept_fd(int flags)
{
	int e = eventfd(0, (flags & SOCK_CLOEXEC ? EFD_CLOEXEC : 0) |
			   (flags & SOCK_NONBLOCK ? EFD_NONBLOCK : 0));
	return e < 0 ? -errno : e;
}

void isosock_sh_lighten(struct isosock_file *f, int fd)
{
	if (f->type != SOCK_STREAM || isosock_sh_light(f))
		return;
	/* Only the caller's reference and one fd: another fd (a dup) would
	 * keep the kernel socket, another thread may be using this one. */
	if (atomic_load_explicit(&f->refs, memory_order_relaxed) != 2)
		return;
	int cl = L.fcntl(fd, F_GETFD);
	int e = eventfd(0, EFD_CLOEXEC);
	if (cl < 0 || e < 0)
		goto out;
	/* Again under the table lock: a close() in another thread removes
	 * the fd (and drops the count) under it, and the number must not be
	 * another file's by the time dup3 replaces what it holds. */
	isosock_fd_lock();
	if (atomic_load_explicit(&f->refs, memory_order_relaxed) >= 2 &&
	    L.dup3(e, fd, (cl & FD_CLOEXEC) ? O_CLOEXEC : 0) == fd)
		atomic_fetch_or_explicit(&f->flags, ISOSOCK_F_LIGHT, memory_order_relaxed);
	isosock_fd_unlock();
out:
	if (e >= 0)
		L.close(e);
}

static void opts_replay(struct isosock_file *f, int s)
{
	pthread_mutex_lock(&opts_lock);
	struct opts *o = f->opts;
	for (int i = 0; o && i < o->n; i++)
		L.setsockopt(s, o->o[i].level, o->o[i].name, o->o[i].v, o->o[i].len);
	pthread_mutex_unlock(&opts_lock);
}

int isosock_sh_unlighten(struct isosock_file *f, int fd)
{
	if (!isosock_sh_light(f))
		return 0;
	int cl = L.fcntl(fd, F_GETFD);
	if (cl < 0)
		return -errno;
	int s = scratch_socket(f->domain);
	if (s < 0)
		return s;
	opts_replay(f, s);
	isosock_fd_lock();
	int r = L.dup3(s, fd, (cl & FD_CLOEXEC) ? O_CLOEXEC : 0);
	r = r < 0 ? -errno : 0;
	if (r == 0)
		atomic_fetch_and_explicit(&f->flags, ~ISOSOCK_F_LIGHT, memory_order_relaxed);
	isosock_fd_unlock();
	L.close(s);
	return r;
}

/* ---- options ------------------------------------------------------------- */

int isosock_sh_opt_verdict(int domain, int level, int name, const void *v, socklen_t len)
{
	int s = scratch_socket(domain);
	if (s < 0)
		return 0; /* no fd to ask with (EMFILE): the kernel would accept */
	int r = L.setsockopt(s, level, name, v, len) < 0 ? -errno : 0;
	L.close(s);
	return r;
}

void isosock_sh_opt_keep(struct isosock_file *f, int level, int name, const void *v,
			 socklen_t len)
{
	if (f->type != SOCK_STREAM || len > OPT_VAL_MAX || (len && !v))
		return;
	pthread_mutex_lock(&opts_lock);
	struct opts *o = f->opts;
	int i = 0;
	while (o && i < o->n && (o->o[i].level != level || o->o[i].name != name))
		i++;
	if (!o || (i == o->n && o->n == o->cap)) {
		int cap = o ? o->cap * 2 : 4;
		struct opts *no = realloc(o, sizeof(*o) + (size_t)cap * sizeof(o->o[0]));
		if (!no)
			goto out;
		if (!o)
			no->n = 0;
		no->cap = cap;
		f->opts = o = no;
	}
	if (i == o->n)
		o->n++;
	o->o[i] = (struct opt){ .level = level, .name = name, .len = len };
	if (len)
		memcpy(o->o[i].v, v, len);
out:
	pthread_mutex_unlock(&opts_lock);
}

int isosock_sh_getsockopt(struct isosock_file *f, int level, int name, void *v,
			  socklen_t *len)
{
	int s = scratch_socket(f->domain);
	if (s < 0)
		return s;
	opts_replay(f, s);
	int r = L.getsockopt(s, level, name, v, len) < 0 ? -errno : 0;
	L.close(s);
	return r;
}

int isosock_sh_ioctl(struct isosock_file *f, int fd, unsigned long req, void *arg)
{
	switch (req) {
	case FIOCLEX: case FIONCLEX: case FIOASYNC:
		/* The file's own flags: the kernel's generic ioctls. */
		return L.ioctl(fd, req, arg) < 0 ? -errno : 0;
	case FIOSETOWN: case SIOCSPGRP:
		if (!arg)
			return -EFAULT;
		return L.fcntl(fd, F_SETOWN, *(int *)arg) < 0 ? -errno : 0;
	case FIOGETOWN: case SIOCGPGRP: {
		if (!arg)
			return -EFAULT;
		int o = L.fcntl(fd, F_GETOWN);
		*(int *)arg = o;
		return 0;
	}
	default:
		break;
	}
	/* Everything else answers as an unconnected TCP socket did (queue
	 * sizes 0, SIOCGIF* interface queries work on any socket). */
	int s = scratch_socket(f->domain);
	if (s < 0)
		return s;
	opts_replay(f, s);
	int r = L.ioctl(s, req, arg);
	r = r < 0 ? -errno : r;
	L.close(s);
	return r;
}

void isosock_sh_release(struct isosock_file *f)
{
	pthread_mutex_lock(&opts_lock);
	free(f->opts);
	f->opts = NULL;
	pthread_mutex_unlock(&opts_lock);
}

void isosock_sh_atfork(int phase)
{
	if (phase == 0)
		pthread_mutex_lock(&opts_lock);
	else
		pthread_mutex_unlock(&opts_lock);
}

/* ---- identity: eventfd id, fstat, statx ----------------------------------- */

uint64_t isosock_sh_eventfd_id(int fd)
{
	char path[40], buf[512];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	int p = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
	if (p < 0)
		return 0;
	ssize_t n = syscall(SYS_read, p, buf, sizeof(buf) - 1);
	syscall(SYS_close, p);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* id + 1: 0 stays "none" (the kernel's ids start at 0). */
	const char *id = strstr(buf, "eventfd-id:");
	return id ? strtoull(id + strlen("eventfd-id:"), NULL, 10) + 1 : 0;
}

/* st_ino of a light socket: its eventfd's id past sockfs's 32-bit
 * numbers; without /proc, a number of this process's own. */
static uint64_t light_ino(struct isosock_file *f, int fd)
{
	uint64_t ino = atomic_load_explicit(&f->light_ino, memory_order_relaxed);
	if (ino)
		return ino;
	uint64_t id = isosock_sh_eventfd_id(fd);
	if (id) {
		ino = (1ull << 32) + id;
	} else {
		static _Atomic uint64_t next;
		ino = (2ull << 32) + atomic_fetch_add(&next, 1);
	}
	/* Racing readers agree, or one number wins for good. */
	uint64_t zero = 0;
	if (!atomic_compare_exchange_strong(&f->light_ino, &zero, ino))
		ino = zero;
	return ino;
}

void isosock_sh_set_ino(struct isosock_file *f, uint64_t eventfd_id)
{
	if (eventfd_id)
		atomic_store_explicit(&f->light_ino, (1ull << 32) + eventfd_id,
				      memory_order_relaxed);
}

/* A real socket's fstat and statx, taken once (sockfs dev, mode 0777,
 * owner, block size, times). */
static struct stat tmpl_st;
static struct statx tmpl_stx;
static int tmpl_err;
static pthread_once_t tmpl_once = PTHREAD_ONCE_INIT;

static void tmpl_take(void)
{
	int s = scratch_socket(AF_INET);
	if (s < 0) {
		tmpl_err = s;
		return;
	}
	if (syscall(SYS_fstat, s, &tmpl_st) != 0 ||
	    syscall(SYS_statx, s, "", AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_BTIME, &tmpl_stx) != 0)
		tmpl_err = -errno;
	L.close(s);
}

int isosock_sh_fstat(struct isosock_file *f, int fd, struct stat *st)
{
	pthread_once(&tmpl_once, tmpl_take);
	if (tmpl_err)
		return tmpl_err;
	*st = tmpl_st;
	st->st_ino = light_ino(f, fd);
	return 0;
}

int isosock_sh_statx(struct isosock_file *f, int fd, struct statx *stx)
{
	pthread_once(&tmpl_once, tmpl_take);
	if (tmpl_err)
		return tmpl_err;
	*stx = tmpl_stx;
	stx->stx_ino = light_ino(f, fd);
	return 0;
}
