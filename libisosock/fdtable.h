/*
 * fd -> isostack socket.  An isostack socket's fd number is a real kernel
 * fd the shim reserved (a kernel socket of the same type, or for an
 * established TCP connection an eventfd: shadow.c), so the table
 * only says which stack serves it; dup/dup2/dup3/F_DUPFD make more kernel
 * fds that share one struct isosock_file, counted.  Reads are lock-free
 * (two-level array of atomic pointers, chunks never freed); writers
 * serialise on one mutex, since they mirror a real dup2/close anyway.
 */
#ifndef ISOSOCK_FDTABLE_H
#define ISOSOCK_FDTABLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* ---- fd table ---------------------------------------------------------- */
/*
 * One isostack socket, shared by every fd that dup() made of it (a file
 * description, in kernel terms).  Objects are never returned to malloc:
 * a reader that lost a race with close() increments a dead object's
 * count, sees zero and retries (see isosock_fd_get).
 */
#define ISOSOCK_F_NONBLOCK  (1u << 0)
#define ISOSOCK_F_DUAL      (1u << 1) /* kernel fd carries traffic too */
#define ISOSOCK_F_LISTEN    (1u << 2)
#define ISOSOCK_F_CONNECTING (1u << 3)
#define ISOSOCK_F_SHUT_WR   (1u << 4)
#define ISOSOCK_F_MIGRATED  (1u << 5) /* now a plain kernel socket */
#define ISOSOCK_F_LIGHT     (1u << 6) /* shadow is an eventfd (shadow.c) */
#define ISOSOCK_F_ET        (1u << 7) /* in an edge-triggered epoll set */

struct isosock_file {
	_Atomic uint32_t refs;      /* fds + calls in flight; 0 = free */
	_Atomic uint32_t flags;     /* ISOSOCK_F_* */
	/* Edge-triggered epoll rearm, one per direction: bumped when a call
	 * met EAGAIN or left the socket not readable (io_rd) / not writable
	 * (io_wr), and both on shutdown.  See epoll.c. */
	_Atomic uint32_t io_rd;
	_Atomic uint32_t io_wr;
	uint32_t gen;               /* bumped per reuse: weak references */
	int type;                   /* SOCK_STREAM or SOCK_DGRAM */
	int domain;                 /* AF_INET or AF_INET6 */
	void *h;                    /* stack handle */
	int64_t rcvtimeo_ns;        /* -1: none */
	int64_t sndtimeo_ns;
	/* Light shadows (shadow.c): the st_ino fstat reports (0: not read
	 * yet) and the options only the kernel would have kept. */
	_Atomic uint64_t light_ino;
	void *opts;
	struct isosock_file *next_free;
};

int isosock_fd_init(void);
/* Counted reference to fd's socket, or NULL if fd is not an isostack
 * socket.  Lock-free; pair with isosock_file_put. */
struct isosock_file *isosock_fd_get(int fd);
/* Whether fd is mapped right now (no reference: a hint for the fast
 * "not ours" path; the answer may be stale by the time it is used). */
bool isosock_fd_get_peek(int fd);
void isosock_file_put(struct isosock_file *f);
/* New object with one reference (the caller's), or NULL (ENOMEM). */
struct isosock_file *isosock_file_new(int domain, int type, void *h);
/* fd now refers to f (takes a reference).  -EMFILE past the table. */
int isosock_fd_install(int fd, struct isosock_file *f);
/* fd no longer refers to its socket; returns the reference the table
 * held (caller puts it) or NULL. */
struct isosock_file *isosock_fd_remove(int fd);
/* Drops every fd that refers to f (loopback migration). */
void isosock_fd_forget(struct isosock_file *f);
/* Highest fd ever installed + 1 (bound for scans). */
int isosock_fd_limit(void);
/* Live objects (leak check in tests). */
uint32_t isosock_file_live(void);
/* Callback when the last reference goes: closes the stack socket. */
extern void (*isosock_file_release)(struct isosock_file *f);
/* Serialises table writers against the real dup2/close they mirror. */
void isosock_fd_lock(void);
void isosock_fd_unlock(void);
/* fork: 0 prepare (takes the table locks), 1 parent, 2 child. */
void isosock_fd_atfork(int phase);

#endif /* ISOSOCK_FDTABLE_H */
