/*
 * Light shadows (shadow.c): an established isostack TCP connection's fd is
 * an eventfd, and these answer for it what its kernel socket would have.
 * Returns 0, a count or -errno, as route.c's functions.
 */
#ifndef ISOSOCK_SHADOW_H
#define ISOSOCK_SHADOW_H

#include <sys/stat.h>

#include "shim.h"

bool isosock_sh_light(const struct isosock_file *f);
/* The fd for an accepted connection: an eventfd with accept4's
 * SOCK_CLOEXEC/SOCK_NONBLOCK.  -errno (EMFILE...) as socket() would. */
int isosock_sh_accept_fd(int flags);
/* After a connect() went to isostack (0 or EINPROGRESS): fd becomes an
 * eventfd at the same number, FD_CLOEXEC kept; f is marked light.  Best
 * effort: a socket that another fd (a dup) or thread holds stays as is. */
void isosock_sh_lighten(struct isosock_file *f, int fd);
/* Before a light socket migrates to the kernel: fd becomes a fresh kernel
 * TCP socket with the kept options.  0 (also when f is not light). */
int isosock_sh_unlighten(struct isosock_file *f, int fd);
/* The kernel's verdict on an option: 0 or its -errno. */
int isosock_sh_opt_verdict(int domain, int level, int name, const void *v, socklen_t len);
/* Keeps an option only the kernel socket would have kept (stream
 * sockets; values up to 64 bytes). */
void isosock_sh_opt_keep(struct isosock_file *f, int level, int name, const void *v,
			 socklen_t len);
/* getsockopt/ioctl answered as the socket's kernel socket would. */
int isosock_sh_getsockopt(struct isosock_file *f, int level, int name, void *v,
			  socklen_t *len);
int isosock_sh_ioctl(struct isosock_file *f, int fd, unsigned long req, void *arg);
/* The last reference went: frees the kept options. */
void isosock_sh_release(struct isosock_file *f);
/* fork: 0 prepare (takes the lock), else parent or child. */
void isosock_sh_atfork(int phase);
/* fstat/statx of a light fd: a socket's, with this socket's own inode. */
int isosock_sh_fstat(struct isosock_file *f, int fd, struct stat *st);
int isosock_sh_statx(struct isosock_file *f, int fd, struct statx *stx);
/* fd's eventfd id + 1 (/proc/self/fdinfo), 0 if none: exec only. */
uint64_t isosock_sh_eventfd_id(int fd);
/* An adopted light socket's inode, from that id. */
void isosock_sh_set_ino(struct isosock_file *f, uint64_t eventfd_id);

#endif /* ISOSOCK_SHADOW_H */
