/*
 * The exported file calls that must see a light shadow (shadow.c: an
 * isostack connection whose fd is an eventfd) as the socket it stands for:
 * the fstat family and statx (S_IFSOCK, sockfs's st_dev, an inode of its
 * own: libuv's uv_guess_handle, Python's socket(fileno=) and systemd's
 * sd_is_socket look there) and lseek/pread/pwrite (ESPIPE, where an
 * eventfd would seek or read its counter).  Every other fd goes to libc
 * untouched, as in interpose.c.
 *
 * glibc 2.33+ exports fstat, fstat64, fstatat, fstatat64 and statx; the
 * older __fxstat family stays for binaries linked before, so it is here
 * too.  On LP64 the 64-bit names take the same structures.
 */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shadow.h"

#define EXPORT __attribute__((visibility("default")))

/* A light socket's file (a counted reference), or NULL: libc's business.
 * The table is readable before the library's constructor ran (static,
 * zeroed): then nothing is ours. */
static struct isosock_file *light_get(int fd)
{
	struct isosock_file *f = isosock_fd_get(fd);
	if (f && !isosock_sh_light(f)) {
		isosock_file_put(f);
		return NULL;
	}
	return f;
}

static int ret_put(struct isosock_file *f, int r)
{
	isosock_file_put(f);
	if (r < 0) {
		errno = -r;
		return -1;
	}
	return r;
}

/* libc's entry point, or NULL (then the raw system call serves). */
#define LIBC(name) ({                                                      \
	static __typeof__(&name) p_;                                         \
	if (!p_)                                                             \
		*(void **)&p_ = dlsym(RTLD_NEXT, #name);                     \
	p_; })

static bool empty_path(const char *path, int flags)
{
	return path && !path[0] && (flags & AT_EMPTY_PATH);
}

/* ---- fstat family -------------------------------------------------------- */

static int light_fstat(struct isosock_file *f, int fd, struct stat *st)
{
	if (!st)
		return ret_put(f, -EFAULT);
	return ret_put(f, isosock_sh_fstat(f, fd, st));
}

EXPORT int fstat(int fd, struct stat *st)
{
	struct isosock_file *f = light_get(fd);
	if (f)
		return light_fstat(f, fd, st);
	__typeof__(&fstat) real = LIBC(fstat);
	return real ? real(fd, st) : (int)syscall(SYS_fstat, fd, st);
}

/* struct stat64 is struct stat's layout on LP64. */
_Static_assert(sizeof(struct stat64) == sizeof(struct stat), "stat64 layout");

EXPORT int fstat64(int fd, struct stat64 *st)
{
	return fstat(fd, (struct stat *)st);
}

EXPORT int fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
	struct isosock_file *f = empty_path(path, flags) ? light_get(dirfd) : NULL;
	if (f && (flags & ~(AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_EMPTY_PATH)))
		return ret_put(f, -EINVAL);
	if (f)
		return light_fstat(f, dirfd, st);
	__typeof__(&fstatat) real = LIBC(fstatat);
	return real ? real(dirfd, path, st, flags) :
		      (int)syscall(SYS_newfstatat, dirfd, path, st, flags);
}

EXPORT int fstatat64(int dirfd, const char *path, struct stat64 *st, int flags)
{
	return fstatat(dirfd, path, (struct stat *)st, flags);
}

/* The pre-2.33 names (ver is _STAT_VER, one layout on x86-64). */
int __fxstat(int ver, int fd, struct stat *st);
int __fxstat64(int ver, int fd, struct stat *st);
int __fxstatat(int ver, int dirfd, const char *path, struct stat *st, int flags);
int __fxstatat64(int ver, int dirfd, const char *path, struct stat *st, int flags);

EXPORT int __fxstat(int ver, int fd, struct stat *st)
{
	struct isosock_file *f = light_get(fd);
	if (f)
		return light_fstat(f, fd, st);
	__typeof__(&__fxstat) real = LIBC(__fxstat);
	return real ? real(ver, fd, st) : (int)syscall(SYS_fstat, fd, st);
}

EXPORT int __fxstat64(int ver, int fd, struct stat *st)
{
	return __fxstat(ver, fd, st);
}

EXPORT int __fxstatat(int ver, int dirfd, const char *path, struct stat *st, int flags)
{
	struct isosock_file *f = empty_path(path, flags) ? light_get(dirfd) : NULL;
	if (f)
		return light_fstat(f, dirfd, st);
	__typeof__(&__fxstatat) real = LIBC(__fxstatat);
	return real ? real(ver, dirfd, path, st, flags) :
		      (int)syscall(SYS_newfstatat, dirfd, path, st, flags);
}

EXPORT int __fxstatat64(int ver, int dirfd, const char *path, struct stat *st, int flags)
{
	return __fxstatat(ver, dirfd, path, st, flags);
}

static int light_statx(struct isosock_file *f, int fd, struct statx *stx)
{
	if (!stx)
		return ret_put(f, -EFAULT);
	return ret_put(f, isosock_sh_statx(f, fd, stx));
}

EXPORT int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *stx)
{
	struct isosock_file *f = empty_path(path, flags) ? light_get(dirfd) : NULL;
	if (f) {
		/* The kernel checks the mask and flags before the file. */
		if ((mask & STATX__RESERVED) ||
		    (flags & ~(AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_EMPTY_PATH |
			       AT_STATX_SYNC_TYPE)) ||
		    (flags & AT_STATX_SYNC_TYPE) == AT_STATX_SYNC_TYPE)
			return ret_put(f, -EINVAL);
		return light_statx(f, dirfd, stx);
	}
	__typeof__(&statx) real = LIBC(statx);
	return real ? real(dirfd, path, flags, mask, stx) :
		      (int)syscall(SYS_statx, dirfd, path, flags, mask, stx);
}

/* ---- seeking and positioned I/O: a socket has no position ----------------- */

EXPORT off_t lseek(int fd, off_t off, int whence)
{
	struct isosock_file *f = light_get(fd);
	if (f)
		return ret_put(f, -ESPIPE);
	__typeof__(&lseek) real = LIBC(lseek);
	return real ? real(fd, off, whence) : (off_t)syscall(SYS_lseek, fd, off, whence);
}

EXPORT off_t lseek64(int fd, off_t off, int whence)
{
	return lseek(fd, off, whence);
}

EXPORT ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	struct isosock_file *f = light_get(fd);
	if (f)
		return ret_put(f, -ESPIPE);
	__typeof__(&pread) real = LIBC(pread);
	return real ? real(fd, buf, n, off) : syscall(SYS_pread64, fd, buf, n, off);
}

EXPORT ssize_t pread64(int fd, void *buf, size_t n, off_t off)
{
	return pread(fd, buf, n, off);
}

EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	struct isosock_file *f = light_get(fd);
	if (f)
		return ret_put(f, -ESPIPE);
	__typeof__(&pwrite) real = LIBC(pwrite);
	return real ? real(fd, buf, n, off) : syscall(SYS_pwrite64, fd, buf, n, off);
}

EXPORT ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	return pwrite(fd, buf, n, off);
}
