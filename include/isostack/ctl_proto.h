/*
 * isostack control-socket protocol: the messages an application (the shim)
 * and isostackd exchange over the daemon's AF_UNIX SOCK_SEQPACKET control
 * socket.  The data path never goes through it: it carries attach, the
 * statistics query of isostat, and -- by its hang-up -- the news that one
 * side is gone (docs/sockets.md, "Attach and detach").
 *
 * Every message starts with struct isostack_ctl_hdr; one message is one
 * SEQPACKET record, so lengths are exact.  File descriptors travel as
 * SCM_RIGHTS ancillary data of the record they belong to:
 *   ATTACH        app -> daemon   1 fd: the application wake fd (an eventfd;
 *                                 anything else is refused, -EBADF)
 *   ATTACH_REPLY  daemon -> app   2 fds on success: [0] the segment memfd,
 *                                 [1] the application's doorbell fd (an
 *                                 eventfd of its own it writes while the
 *                                 stack naps); none on failure (status < 0)
 *   WAKEFD        app -> daemon   1 fd: another application wake fd, of a
 *                                 process fork() made (no reply)
 *   EXTENT        app -> daemon   no fd: "give me extent N" (a socket's
 *                                 directory entry named it, shm_abi.h)
 *   EXTENT_REPLY  daemon -> app   1 fd on success: the extent's memfd
 *   HANDOFF       app -> daemon   1 fd: an isostack socket's own fd, about
 *                                 to travel in SCM_RIGHTS (docs/sockets.md,
 *                                 "Passing sockets")
 *   HANDOFF_REPLY daemon -> app   no fd
 *   CLAIM         app -> daemon   no fd: "fd F of process P, which it just
 *                                 received, is it a socket in flight?"
 *   CLAIM_REPLY   daemon -> app   no fd: the socket, now the claimer's
 *   STATS         client -> daemon  no fd
 *   STATS_REPLY   daemon -> client  no fd; a text body (key value lines)
 * A connection that sent ATTACH is an application for as long as it stays
 * open; one that sends STATS is a monitoring client and may send it again.
 *
 * Rules: fixed-width fields only, little-endian host order (both ends run
 * on one host), reserved words zero, sizes asserted below.
 */
#ifndef ISOSTACK_CTL_PROTO_H
#define ISOSTACK_CTL_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define ISOSTACK_CTL_MAGIC     0x4c544349u   /* "ICTL" */
#define ISOSTACK_CTL_VERSION   1u

#define ISOSTACK_CTL_ATTACH        1u
#define ISOSTACK_CTL_ATTACH_REPLY  2u
#define ISOSTACK_CTL_STATS         3u
#define ISOSTACK_CTL_STATS_REPLY   4u
#define ISOSTACK_CTL_WAKEFD        5u
#define ISOSTACK_CTL_EXTENT        6u
#define ISOSTACK_CTL_EXTENT_REPLY  7u
#define ISOSTACK_CTL_HANDOFF       8u
#define ISOSTACK_CTL_HANDOFF_REPLY 9u
#define ISOSTACK_CTL_CLAIM         10u
#define ISOSTACK_CTL_CLAIM_REPLY   11u

struct isostack_ctl_hdr {
	uint32_t magic;     /* ISOSTACK_CTL_MAGIC */
	uint16_t version;   /* ISOSTACK_CTL_VERSION */
	uint16_t type;      /* ISOSTACK_CTL_* */
	uint32_t length;    /* whole message, header included */
	uint32_t reserved;
};

/* app -> daemon.  Exactly one fd attached: the application wake fd. */
struct isostack_ctl_attach {
	struct isostack_ctl_hdr hdr;
	uint32_t pid;
	uint32_t abi_version;   /* ISOSTACK_SHM_ABI_VERSION the app speaks */
	uint64_t features;      /* ISOSTACK_SHM_FEAT_* the app understands */
	char     comm[16];      /* process name, NUL-padded, for logs */
	uint64_t reserved[4];
};

/* daemon -> app. */
struct isostack_ctl_attach_reply {
	struct isostack_ctl_hdr hdr;
	int32_t  status;        /* 0, or -errno: -EPROTONOSUPPORT (ABI),
				 * -EUSERS (too many applications), -ENOMEM,
				 * -EBADF (the wake fd is not an eventfd) */
	uint32_t app_id;
	uint64_t segment_size;  /* bytes of the segment fd */
	uint64_t reserved[4];
};

/*
 * app -> daemon, on an attached connection, one eventfd attached.  The
 * processes fork() makes share the attachment; each sleeps on its own
 * wake fd in mixed waits (one shared eventfd would let one process drain
 * the other's wake-up), so the daemon writes every registered one when
 * the attachment's wait point has sleepers.  No reply.
 */
struct isostack_ctl_wakefd {
	struct isostack_ctl_hdr hdr;
	uint32_t pid;           /* the process that will read it */
	uint32_t member;        /* its place in the application: its bit in
				 * the sockets' wake_mask is min(member, 63);
				 * or a thread's bit | ISOSTACK_CTL_WAKEFD_THREAD */
};

/*
 * member of a WAKEFD that is one thread's fd (libisosock/core_twake.c):
 * bit (member & 63) of the wake_mask is that thread's, not a process of
 * the member table.  It replaces the fd registered before under the same
 * pid and bit (a thread that is gone).
 */
#define ISOSTACK_CTL_WAKEFD_THREAD 0x80000000u

/*
 * app -> daemon, on an attached connection: the fd of extent `id`.  The
 * processes of an application share the connection, so they take turns
 * (a process-shared lock) and match replies by id.
 */
struct isostack_ctl_extent {
	struct isostack_ctl_hdr hdr;
	uint32_t id;
	uint32_t reserved;
};

/* daemon -> app: one fd attached when status is 0. */
struct isostack_ctl_extent_reply {
	struct isostack_ctl_hdr hdr;
	int32_t  status;        /* 0, or -ENOENT (no such extent) */
	uint32_t id;
	uint64_t arena_off;     /* where it goes in the arena */
	uint64_t size;          /* bytes, a multiple of ISOSTACK_SHM_EXTENT_UNIT */
};

/*
 * app -> daemon, on an attached connection, with the socket's fd (the
 * eventfd or kernel socket that stands for it) attached: socket `sock`
 * of this application is about to be sent over an AF_UNIX socket.  The
 * daemon keeps that fd: a later CLAIM proves with it that the claimer
 * holds the very same file.  While the socket is in flight its CLOSE
 * waits (at most ISOSTACK_CTL_HANDOFF_TTL_MS) for a claim.
 */
struct isostack_ctl_handoff {
	struct isostack_ctl_hdr hdr;
	uint32_t sock;
	uint32_t reserved;
};

/* daemon -> app. */
struct isostack_ctl_handoff_reply {
	struct isostack_ctl_hdr hdr;
	int32_t  status;        /* 0, or -EINVAL (not a TCP connection or
				 * listener), -EOPNOTSUPP (a SO_REUSEPORT
				 * listener), -ENOSPC (too many in flight),
				 * -EBADF (no fd attached) */
	uint32_t sock;
};

/* How long a socket whose sender closed it waits for its claim. */
#define ISOSTACK_CTL_HANDOFF_TTL_MS 10000u

/* app -> daemon: the claimer's process and the fd it received. */
struct isostack_ctl_claim {
	struct isostack_ctl_hdr hdr;
	uint32_t pid;
	int32_t  fd;
};

#define ISOSTACK_CTL_CLAIM_CONN    1u   /* a TCP connection */
#define ISOSTACK_CTL_CLAIM_LISTEN  2u   /* a TCP listener */

/* daemon -> app. */
struct isostack_ctl_claim_reply {
	struct isostack_ctl_hdr hdr;
	int32_t  status;        /* 0, or -ENOENT (no socket in flight is that
				 * file), -EPERM (another user's socket, or pid
				 * not a process of the claimer), -EAGAIN (its
				 * sent bytes are not all acknowledged yet: ask
				 * again), -EMFILE, -ENOBUFS */
	uint32_t sock;          /* the claimer's id for it now */
	uint32_t kind;          /* ISOSTACK_CTL_CLAIM_* */
	uint32_t inet6;         /* 1: an AF_INET6 socket */
};

/* client -> daemon. */
struct isostack_ctl_stats {
	struct isostack_ctl_hdr hdr;
	uint32_t flags;         /* none defined: 0 */
	uint32_t reserved;
};

/*
 * daemon -> client: the header, then hdr.length - sizeof(hdr) bytes of
 * text, "name value\n" lines (value a decimal integer), not NUL-terminated.
 * At most ISOSTACK_CTL_STATS_MAX bytes in all.
 */
#define ISOSTACK_CTL_STATS_MAX  65536u

_Static_assert(sizeof(struct isostack_ctl_hdr) == 16, "ctl header size");
_Static_assert(sizeof(struct isostack_ctl_attach) == 80, "attach size");
_Static_assert(offsetof(struct isostack_ctl_attach, features) == 24, "attach.features");
_Static_assert(offsetof(struct isostack_ctl_attach, comm) == 32, "attach.comm");
_Static_assert(sizeof(struct isostack_ctl_attach_reply) == 64, "attach reply size");
_Static_assert(offsetof(struct isostack_ctl_attach_reply, segment_size) == 24,
	       "attach_reply.segment_size");
_Static_assert(sizeof(struct isostack_ctl_stats) == 24, "stats request size");
_Static_assert(sizeof(struct isostack_ctl_wakefd) == 24, "wakefd size");
_Static_assert(sizeof(struct isostack_ctl_extent) == 24, "extent request size");
_Static_assert(sizeof(struct isostack_ctl_extent_reply) == 40, "extent reply size");
_Static_assert(sizeof(struct isostack_ctl_handoff) == 24, "handoff size");
_Static_assert(sizeof(struct isostack_ctl_handoff_reply) == 24, "handoff reply size");
_Static_assert(sizeof(struct isostack_ctl_claim) == 24, "claim size");
_Static_assert(sizeof(struct isostack_ctl_claim_reply) == 32, "claim reply size");

#endif /* ISOSTACK_CTL_PROTO_H */
