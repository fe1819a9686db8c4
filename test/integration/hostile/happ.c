/*
 * happ: attach like the shim, then rings written by hand (happ.h).
 * Orders: each index store is a store-release after the entry it
 * publishes (the stack's load-acquire of the index is its partner,
 * shm/isoshm_ring.h P1/C1); each load of the stack's index is an
 * acquire (partner: the stack's store-release of cmd_cons/status_prod).
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "isostack/ctl_proto.h"
#include "happ.h"

int64_t happ_now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static bool readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, timeout_ms) > 0;
}

int happ_attach(struct happ *a, const char *path, const char *comm)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct isostack_ctl_attach req = {
		.hdr = { .magic = ISOSTACK_CTL_MAGIC, .version = ISOSTACK_CTL_VERSION,
			 .type = ISOSTACK_CTL_ATTACH, .length = sizeof(req) },
		.pid = (uint32_t)getpid(), .abi_version = ISOSTACK_SHM_ABI_VERSION,
		.features = ISOSTACK_SHM_FEATURES_KNOWN,
	};
	struct isostack_ctl_attach_reply rep;
	int fds[2] = { -1, -1 }, ret;
	unsigned nfds = 0;
	ssize_t n;

	memset(a, 0, sizeof(*a));
	a->ctl = a->wake = a->bell = a->seg_fd = -1;
	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	strncpy(req.comm, comm, sizeof(req.comm) - 1);
	a->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	a->ctl = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (a->wake < 0 || a->ctl < 0) {
		ret = -errno;
		goto fail;
	}
	if (connect(a->ctl, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		ret = -errno;
		goto fail;
	}
	ret = isoshm_send_fd(a->ctl, a->wake, &req, sizeof(req));
	if (ret < 0 && ret != -EPIPE)
		goto fail;
	if (!readable(a->ctl, 5000)) {
		ret = -ETIMEDOUT;
		goto fail;
	}
	n = isoshm_recv_fds(a->ctl, &rep, sizeof(rep), fds, 2, &nfds, 0);
	if (n == -ECONNRESET)   /* refused at accept: the reply is queued */
		n = isoshm_recv_fds(a->ctl, &rep, sizeof(rep), fds, 2, &nfds, 0);
	if (n != (ssize_t)sizeof(rep)) {
		ret = n < 0 ? (int)n : -ECONNRESET;
		goto fail;
	}
	if (rep.status < 0 || nfds != 2) {
		ret = rep.status < 0 ? rep.status : -EPROTO;
		goto fail;
	}
	ret = isoshm_app_attach(&a->shm, fds[0], NULL);
	if (ret < 0)
		goto fail;
	a->seg_fd = fds[0];
	a->bell = fds[1];
	a->h = isoshm_app_header(a->shm);
	a->base = isoshm_app_base(a->shm);
	a->app_id = rep.app_id;
	a->cookie = 1;
	return 0;

fail:
	for (unsigned i = 0; i < nfds; i++)
		close(fds[i]);
	if (a->ctl >= 0)
		close(a->ctl);
	if (a->wake >= 0)
		close(a->wake);
	a->ctl = a->wake = -1;
	return ret;
}

void happ_detach(struct happ *a)
{
	if (a->shm != NULL)
		isoshm_app_detach(a->shm);
	if (a->bell >= 0)
		close(a->bell);
	if (a->ctl >= 0)
		close(a->ctl);
	if (a->wake >= 0)
		close(a->wake);
	memset(a, 0, sizeof(*a));
	a->ctl = a->wake = a->bell = a->seg_fd = -1;
}

struct isostack_shm_sock *happ_sock(struct happ *a, uint32_t id)
{
	return (struct isostack_shm_sock *)(a->base + a->h->socks_off) + id;
}

struct isostack_shm_doorbell *happ_db(struct happ *a, uint32_t db)
{
	return (struct isostack_shm_doorbell *)(a->base + a->h->db_ctl_off) + db;
}

int happ_cmd_push(struct happ *a, uint32_t id, const struct isostack_shm_cmd *cmd)
{
	struct isostack_shm_sock *sk = happ_sock(a, id);
	uint32_t prod = atomic_load_explicit(&sk->cmd_prod, memory_order_relaxed);
	uint32_t cons = atomic_load_explicit(&sk->cmd_cons, memory_order_acquire);
	struct isostack_shm_cmd *slot = (struct isostack_shm_cmd *)(a->base + a->h->cmd_off) +
		(uint64_t)id * a->h->cmd_entries + (prod & (a->h->cmd_entries - 1));

	if (prod - cons >= a->h->cmd_entries)
		return 0;
	memcpy(slot, cmd, sizeof(*cmd));
	atomic_store_explicit(&sk->cmd_prod, prod + 1, memory_order_release);
	return 1;
}

int happ_bell(struct happ *a, uint32_t db, uint32_t id)
{
	struct isostack_shm_doorbell *d = happ_db(a, db);
	uint32_t prod = atomic_load_explicit(&d->prod, memory_order_relaxed);
	uint32_t cons = atomic_load_explicit(&d->cons, memory_order_acquire);
	uint32_t *slots = (uint32_t *)(a->base + a->h->db_slots_off) +
		(uint64_t)db * a->h->doorbell_entries;

	if (prod - cons >= a->h->doorbell_entries)
		return 0;
	slots[prod & (a->h->doorbell_entries - 1)] = id;
	atomic_store_explicit(&d->prod, prod + 1, memory_order_release);
	/* The stack may nap (adaptive mode): the same Dekker pair as the
	 * shim's (shm_abi.h, stack_napping). */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&((struct isostack_shm_wait *)(a->base + a->h->wait_off))
				 ->stack_napping, memory_order_relaxed)) {
		uint64_t one = 1;

		(void)!write(a->bell, &one, sizeof(one));
	}
	return 1;
}

unsigned happ_status_drain(struct happ *a, uint32_t id,
			   void (*fn)(void *arg, const struct isostack_shm_status *st),
			   void *arg)
{
	struct isostack_shm_sock *sk = happ_sock(a, id);
	uint32_t prod = atomic_load_explicit(&sk->status_prod, memory_order_acquire);
	uint32_t cons = atomic_load_explicit(&sk->status_cons, memory_order_relaxed);
	const struct isostack_shm_status *ring = (const struct isostack_shm_status *)
		(a->base + a->h->status_off) + (uint64_t)id * a->h->status_entries;
	unsigned n = 0;

	/* A status_cons we scribbled on: take nothing, leave it broken. */
	if (prod - cons > a->h->status_entries)
		return 0;
	for (; cons != prod; cons++, n++) {
		struct isostack_shm_status st = ring[cons & (a->h->status_entries - 1)];

		if (fn != NULL)
			fn(arg, &st);
	}
	atomic_store_explicit(&sk->status_cons, cons, memory_order_release);
	return n;
}

struct call_wait {
	uint64_t cookie;
	bool done;
	struct isostack_shm_status st;
};

static void call_match(void *arg, const struct isostack_shm_status *st)
{
	struct call_wait *w = arg;

	if (st->cookie == w->cookie && !w->done) {
		w->done = true;
		w->st = *st;
	}
}

int64_t happ_call(struct happ *a, uint32_t id, struct isostack_shm_cmd *cmd, int timeout_ms)
{
	struct call_wait w = { .cookie = ++a->cookie };
	int64_t end = happ_now_ms() + timeout_ms;

	cmd->cookie = w.cookie;
	while (happ_cmd_push(a, id, cmd) == 0) {
		happ_status_drain(a, id, NULL, NULL);
		if (happ_now_ms() > end)
			return -ETIMEDOUT;
	}
	happ_bell(a, 0, id);
	while (!w.done) {
		happ_status_drain(a, id, call_match, &w);
		if (w.done)
			break;
		if (happ_now_ms() > end)
			return -ETIMEDOUT;
		sched_yield();
	}
	return w.st.result;
}

int happ_socket(struct happ *a, int type, int timeout_ms)
{
	struct isostack_shm_cmd c = {
		.opcode = ISOSTACK_SHM_OP_SOCKET, .sock = ISOSTACK_SHM_CTRL_SOCK,
		.arg = { AF_INET, (uint64_t)type, 0 },
	};
	int64_t r = happ_call(a, ISOSTACK_SHM_CTRL_SOCK, &c, timeout_ms);

	return (int)r;
}

int happ_extent(struct happ *a, uint32_t id, uint64_t *off, uint64_t *size)
{
	struct isostack_ctl_extent q = {
		.hdr = { ISOSTACK_CTL_MAGIC, ISOSTACK_CTL_VERSION, ISOSTACK_CTL_EXTENT,
			 sizeof(q), 0 },
		.id = id,
	};
	struct isostack_ctl_extent_reply r;
	int fd = -1;
	unsigned n = 0;
	ssize_t got;

	if (send(a->ctl, &q, sizeof(q), MSG_NOSIGNAL) != (ssize_t)sizeof(q))
		return -errno;
	if (!readable(a->ctl, 5000))
		return -ETIMEDOUT;
	got = isoshm_recv_fds(a->ctl, &r, sizeof(r), &fd, 1, &n, 0);
	if (got == 0)
		return -ECONNRESET;
	if (got < 0)
		return (int)got;
	if (got != (ssize_t)sizeof(r) || r.hdr.type != ISOSTACK_CTL_EXTENT_REPLY) {
		if (n == 1)
			close(fd);
		return -EPROTO;
	}
	if (r.status < 0) {
		if (n == 1)
			close(fd);
		return r.status;
	}
	if (n != 1)
		return -EPROTO;
	*off = r.arena_off;
	*size = r.size;
	return fd;
}

bool happ_hung_up(struct happ *a, int timeout_ms)
{
	int64_t end = happ_now_ms() + timeout_ms;

	for (;;) {
		struct pollfd p = { .fd = a->ctl, .events = POLLIN };
		int left = (int)(end - happ_now_ms());
		char buf[256];

		if (left < 0)
			return false;
		if (poll(&p, 1, left) <= 0)
			continue;
		if (p.revents & (POLLHUP | POLLERR))
			return true;
		/* a late extent reply: read it, keep waiting */
		if (recv(a->ctl, buf, sizeof(buf), MSG_DONTWAIT) == 0)
			return true;
	}
}
