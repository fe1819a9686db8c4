/*
 * The epoll family over a mix of kernel fds and isostack sockets.
 *
 * Every epoll fd is a real kernel epoll instance: kernel fds are
 * registered in it as usual.  Isostack sockets go on the shim's own
 * interest list for that epoll fd (the kernel cannot see the rings), and a
 * DUAL socket (INADDR_ANY listener, UDP) on both: the kernel reports its
 * shadow's accepts/datagrams under the same user data, and the two
 * results are merged.  epoll_wait() scans the interest list (a readiness
 * query per socket, no syscall), takes the kernel's ready list without
 * blocking, and when both are empty sleeps as poll.c does: in the kernel
 * on the epoll fd itself plus the application wake fd.
 *
 * Edge-triggered emulation: an entry reports when its ready set gained a
 * bit since the last scan, or when it is readable (writable) and since the
 * last report a call met EAGAIN or left the socket not readable (not
 * writable): struct isosock_file.io_rd/io_wr, one counter per direction,
 * so draining the input does not repeat POLLOUT, nor a full send buffer
 * POLLIN, nor accepting one of several pending connections the listener.
 * It never misses the edge after EAGAIN.  And as the kernel, whose
 * sk_data_ready requeues the item at every arrival, each new arrival on a
 * socket that stayed readable is an EPOLLIN edge: data or a datagram
 * reaching the RX ring, a connection the accept queue.  The backend's
 * poll() returns an arrival count for that (rx_prod plus connections
 * queued); it moved since the last report: an edge.  EPOLLOUT repeats
 * only after a send met a full buffer (io_wr), as the kernel's
 * SOCK_NOSPACE rule.
 *
 * Cost: an epoll_wait looks (fd table, readiness query) only at the
 * interests whose socket the stack named in its notification ring since
 * the set's last look (shm_abi.h, notes_prod), the ones it found ready
 * then (level-triggered ones stay reported, as the kernel's ready list
 * keeps them), and new or modified ones; the rest costs a flag test each.
 * Every interest is looked at when notes were lost (the set fell a ring
 * behind), for a new attachment, and at least every EP_FULL_NS (what the
 * application itself changes, shutdown() for one, is seen then at the
 * latest; a sleep is sliced that short anyway).  A set larger than
 * EP_MARK_MAX sleeps with the process's bit in wake_any instead of
 * marking each socket (O(1) instead of O(interests) per sleep).
 */
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "isostack/spin.h"
#include "isostack/tls.h"
#include "shim.h"

#define L isosock_libc
#define EP_MAX_FD (1 << 16)
#define EP_FULL_NS (50 * 1000 * 1000)
#define EP_MARK_MAX 64
#define EP_NKEY_BITS (1u << 20)   /* note keys of attachment 0 in the bitmap */

struct interest {
	int fd;
	struct isosock_file *f; /* weak: checked against the table by gen */
	uint32_t gen;
	uint32_t events;
	epoll_data_t data;
	uint32_t last_ready;
	uint32_t last_rd;       /* io_rd, io_wr at the last report */
	uint32_t last_wr;
	uint32_t last_gen;      /* the backend's arrival count at the last report */
	bool disabled;          /* EPOLLONESHOT fired */
	bool check;             /* look at it in the next scan (new, modified) */
	int key;                /* be->sleep_mark key while marks > 0 */
	int marks;              /* sleeping threads it is marked for */
	int pmarks;             /* those of them that marked it with the
				 * process's bit (the others: their own) */
	int nkey;               /* be->note_key of its socket, -1 unknown */
};

struct ep {
	pthread_mutex_t lock;
	struct interest *v;
	int n, cap;
	int *at;                /* fd -> its index in v + 1 (0: none) */
	int at_cap;
	int sleeping;           /* threads of ours asleep on the set */
	bool any;               /* asleep with be->sleep_any, not marks */
	/* Notes: cursors per attachment, and the sockets named since the
	 * last look: a bitmap of attachment 0's ids (others: look at all). */
	uint32_t cursor[64];
	uint64_t cursor_valid;
	uint64_t *chg;          /* EP_NKEY_BITS bits, NULL until needed */
	int *chg_list;          /* bits set, to clear them (chg_n <= CHG_LIST) */
	int chg_n;
	bool chg_all;           /* look at every interest in the next scan */
	int64_t last_full;
	/* The fd is the epoll set isosock_e_create() made, not closed since
	 * (isosock_e_closed): epoll_ctl need not ask the kernel whether it
	 * is a valid fd. */
	_Atomic bool valid;
};
#define CHG_LIST 1024

/* Never freed: a thread may still be inside epoll_wait when another
 * closes the fd; a reused epoll fd number reuses the (emptied) object. */
static _Atomic(struct ep *) eps[EP_MAX_FD];
static pthread_mutex_t eps_lock = PTHREAD_MUTEX_INITIALIZER;

static struct ep *ep_get(int epfd, bool create)
{
	if (epfd < 0 || epfd >= EP_MAX_FD)
		return NULL;
	struct ep *e = atomic_load_explicit(&eps[epfd], memory_order_acquire);
	if (e || !create)
		return e;
	pthread_mutex_lock(&eps_lock);
	e = atomic_load_explicit(&eps[epfd], memory_order_relaxed);
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (e) {
			pthread_mutex_init(&e->lock, NULL);
			atomic_store_explicit(&eps[epfd], e, memory_order_release);
		}
	}
	pthread_mutex_unlock(&eps_lock);
	return e;
}

bool isosock_e_is_emulated(int epfd)
{
	struct ep *e = ep_get(epfd, false);
	/* Relaxed read of n: a hint; the slow path locks. */
	return e && __atomic_load_n(&e->n, __ATOMIC_RELAXED) > 0;
}

static void drop(struct ep *e, struct interest *it);

void isosock_e_closed(int fd)
{
	struct ep *e = ep_get(fd, false);
	if (!e)
		return;
	atomic_store_explicit(&e->valid, false, memory_order_relaxed);
	pthread_mutex_lock(&e->lock);
	while (e->n > 0)
		drop(e, &e->v[e->n - 1]);
	pthread_mutex_unlock(&e->lock);
}

int isosock_e_create(int flags)
{
	int fd = L.epoll_create1(flags);
	if (fd < 0)
		return -errno;
	isosock_e_closed(fd); /* a stale list from a previous owner of the number */
	struct ep *e = ep_get(fd, true);
	if (e)
		atomic_store_explicit(&e->valid, true, memory_order_relaxed);
	return fd;
}

bool isosock_e_valid(int epfd)
{
	struct ep *e = ep_get(epfd, false);
	return e && atomic_load_explicit(&e->valid, memory_order_relaxed);
}

/* Under e->lock.  O(1): a server's set holds every connection it has,
 * and it adds and removes one per connection (16,667 each, walked
 * linearly, took a third of the core while 100,000 connections came). */
static struct interest *find(struct ep *e, int fd)
{
	if (fd < 0 || fd >= e->at_cap || e->at[fd] == 0)
		return NULL;
	return &e->v[e->at[fd] - 1];
}

/* Under e->lock: room in e->at for fd.  False if out of memory. */
static bool at_room(struct ep *e, int fd)
{
	int cap = e->at_cap ? e->at_cap : 64;
	int *at;

	if (fd < e->at_cap)
		return true;
	while (cap <= fd)
		cap *= 2;
	at = realloc(e->at, sizeof(*at) * (size_t)cap);
	if (at == NULL)
		return false;
	memset(at + e->at_cap, 0, sizeof(*at) * (size_t)(cap - e->at_cap));
	e->at = at;
	e->at_cap = cap;
	return true;
}

/* Under e->lock: one more (on) or one fewer (off) sleeping thread waits
 * for this interest's socket (shim.h, sleep_mark). */
static void mark(struct interest *it, bool on)
{
	int key;

	if (!isosock_be || !isosock_be->sleep_mark)
		return;
	if (!on) {
		if (it->marks > 0 && (key = isosock_be->sleep_mark(NULL, it->key, false)) >= 0) {
			it->marks--;
			if (!(key & ISOSOCK_MARK_OWN) && it->pmarks > 0)
				it->pmarks--;
		}
		return;
	}
	if (it->marks == 0) {
		struct isosock_file *f = isosock_fd_get(it->fd);
		key = f == it->f && f && f->gen == it->gen && f->h ?
		      isosock_be->sleep_mark(f->h, -1, true) : -1;
		if (f)
			isosock_file_put(f);
		if (key < 0)
			return;
		it->key = key & ~ISOSOCK_MARK_OWN;
	} else if ((key = isosock_be->sleep_mark(NULL, it->key, true)) < 0) {
		return;
	}
	it->marks++;
	if (!(key & ISOSOCK_MARK_OWN))
		it->pmarks++;
}

/* Under e->lock: a thread of ours goes to sleep on the set (on), or
 * wakes from it. */
static void mark_all(struct ep *e, bool on)
{
	e->sleeping += on ? 1 : -1;
	if (on && e->sleeping == 1)
		e->any = e->n > EP_MARK_MAX && isosock_be && isosock_be->sleep_any;
	if (e->any) {
		isosock_be->sleep_any(on);
		return;
	}
	for (int i = 0; i < e->n; i++)
		mark(&e->v[i], on);
}

static void drop(struct ep *e, struct interest *it)
{
	/* Dropped while threads sleep on it: their process-bit marks are
	 * counted and withdrawn here; a bit of a thread's own stays set on
	 * the socket (at worst a wake-up for nothing later). */
	while (it->pmarks > 0 && isosock_be && isosock_be->sleep_unmark_process) {
		isosock_be->sleep_unmark_process(it->key);
		it->pmarks--;
	}
	it->marks = 0;
	e->at[it->fd] = 0;
	*it = e->v[--e->n];
	if (it != &e->v[e->n])      /* the last one moved into its place */
		e->at[it->fd] = (int)(it - e->v) + 1;
	__atomic_store_n(&e->n, e->n, __ATOMIC_RELAXED);
}

/* The kernel half of a DUAL socket: accepts/datagrams on the shadow. */
static void kernel_mirror(int epfd, int op, int fd, struct isosock_file *f,
			  const struct epoll_event *ev)
{
	if (!(atomic_load_explicit(&f->flags, memory_order_relaxed) & ISOSOCK_F_DUAL))
		return;
	struct epoll_event k = { 0 };
	if (ev) {
		k.events = (ev->events & (EPOLLIN | EPOLLET | EPOLLONESHOT)) | EPOLLIN;
		k.data = ev->data;
	}
	L.epoll_ctl(epfd, op, fd, &k);
}

/* epfd not known as a set of ours (not made through the shim, a dup of
 * one, or no longer open): the kernel's answer for it as an epoll fd,
 * 0, -EBADF or -EINVAL (another kind of file). */
static int epfd_check(int epfd)
{
	char path[40], link[32];
	ssize_t n;

	if (L.fcntl(epfd, F_GETFD) < 0)
		return -EBADF;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", epfd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return 0;       /* no /proc: trust it, as before */
	link[n] = '\0';
	return strcmp(link, "anon_inode:[eventpoll]") == 0 ? 0 : -EINVAL;
}

int isosock_e_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	if (op != EPOLL_CTL_DEL && !ev)
		return -EFAULT;
	/* EBADF as the kernel's: asked of it only for fds the shim cannot
	 * vouch for (a set of ours, an isostack socket: two fcntl calls per
	 * epoll_ctl were 13% of redis-benchmark's core, which changes its
	 * interest at every request) */
	struct isosock_file *f = isosock_fd_get(fd);
	int bad = isosock_e_valid(epfd) ? 0 : epfd_check(epfd);
	if (bad == 0 && !f && L.fcntl(fd, F_GETFD) < 0)
		bad = -EBADF;
	if (bad < 0) {
		if (f)
			isosock_file_put(f);
		return bad;
	}
	if (fd == epfd) {
		if (f)
			isosock_file_put(f);
		return -EINVAL;
	}
	struct ep *e = ep_get(epfd, f != NULL);
	if (!e) {
		if (f) {
			isosock_file_put(f);
			return -ENOMEM;
		}
		return L.epoll_ctl(epfd, op, fd, ev) < 0 ? -errno : 0;
	}
	int r = 0;
	pthread_mutex_lock(&e->lock);
	struct interest *it = find(e, fd);
	if (!f) {
		/* A kernel fd, or a socket that migrated to the kernel after
		 * it was registered here: then its entry moves over. */
		if (it) {
			drop(e, it);
			if (op == EPOLL_CTL_MOD)
				op = EPOLL_CTL_ADD;
			if (op == EPOLL_CTL_DEL) {
				L.epoll_ctl(epfd, op, fd, ev);
				goto out;
			}
		}
		r = L.epoll_ctl(epfd, op, fd, ev) < 0 ? -errno : 0;
		goto out;
	}
	if (it && (it->f != f || it->gen != f->gen)) {
		/* The entry's socket was closed and the fd number reused
		 * before a scan noticed (nginx closes a connection and
		 * accepts the next one onto the same fd): the kernel dropped
		 * the old registration at close, so do we. */
		drop(e, it);
		it = NULL;
	}
	switch (op) {
	case EPOLL_CTL_ADD:
		if (it) {
			r = -EEXIST;
			break;
		}
		if (!at_room(e, fd)) {
			r = -ENOMEM;
			break;
		}
		if (e->n == e->cap) {
			int cap = e->cap ? e->cap * 2 : 16;
			struct interest *v = realloc(e->v, sizeof(*v) * (size_t)cap);
			if (!v) {
				r = -ENOMEM;
				break;
			}
			e->v = v;
			e->cap = cap;
		}
		it = &e->v[e->n];
		e->at[fd] = e->n + 1;
		*it = (struct interest){ .fd = fd, .f = f, .gen = f->gen, .events = ev->events,
					 .data = ev->data };
		/* last_ready 0: the first scan reports whatever is ready now,
		 * as the kernel does on ADD. */
		it->last_rd = atomic_load_explicit(&f->io_rd, memory_order_relaxed);
		it->last_wr = atomic_load_explicit(&f->io_wr, memory_order_relaxed);
		it->check = true;
		it->nkey = f->h && isosock_be && isosock_be->note_key ?
			   isosock_be->note_key(f->h) : -1;
		__atomic_store_n(&e->n, e->n + 1, __ATOMIC_RELAXED);
		if (ev->events & EPOLLET)
			atomic_fetch_or_explicit(&f->flags, ISOSOCK_F_ET, memory_order_relaxed);
		kernel_mirror(epfd, EPOLL_CTL_ADD, fd, f, ev);
		if (e->sleeping > 0) {
			/* Threads asleep on the set wait for it from now on, and
			 * look at once (it may be ready already), as the kernel
			 * wakes them when a ready fd is added. */
			for (int k = 0; k < e->sleeping && !e->any; k++)
				mark(it, true);
			uint64_t one = 1;
			int w = isosock_be && isosock_be->wake_fd ? isosock_be->wake_fd() : -1;
			if (w >= 0 && L.write(w, &one, sizeof(one)) < 0) {
				/* full: a wake-up is pending anyway */
			}
		}
		break;
	case EPOLL_CTL_MOD:
		if (!it) {
			r = -ENOENT;
			break;
		}
		it->events = ev->events;
		it->data = ev->data;
		it->disabled = false;
		it->check = true;
		it->last_ready = 0; /* report what is ready, as ADD */
		it->last_rd = atomic_load_explicit(&f->io_rd, memory_order_relaxed);
		it->last_wr = atomic_load_explicit(&f->io_wr, memory_order_relaxed);
		if (ev->events & EPOLLET)
			atomic_fetch_or_explicit(&f->flags, ISOSOCK_F_ET, memory_order_relaxed);
		kernel_mirror(epfd, EPOLL_CTL_MOD, fd, f, ev);
		break;
	case EPOLL_CTL_DEL:
		if (!it) {
			r = -ENOENT;
			break;
		}
		drop(e, it);
		kernel_mirror(epfd, EPOLL_CTL_DEL, fd, f, NULL);
		break;
	default:
		r = -EINVAL;
	}
out:
	pthread_mutex_unlock(&e->lock);
	if (f)
		isosock_file_put(f);
	return r;
}

/* Under e->lock: a socket the stack named (notes callback). */
static void note_one(void *arg, int key)
{
	struct ep *e = arg;

	if (e->chg_all)
		return;
	if (key < 0 || (unsigned)key >= EP_NKEY_BITS || e->chg_n == CHG_LIST) {
		e->chg_all = true;      /* another attachment, or too many */
		return;
	}
	if (e->chg[key / 64] & (UINT64_C(1) << (key % 64)))
		return;
	e->chg[key / 64] |= UINT64_C(1) << (key % 64);
	e->chg_list[e->chg_n++] = key;
}

/* Under e->lock: which sockets to look at in this scan (e->chg, or
 * e->chg_all). */
static void collect_notes(struct ep *e)
{
	int64_t now = isosock_now_ns();

	if (e->chg == NULL) {
		e->chg = calloc(EP_NKEY_BITS / 64, sizeof(uint64_t));
		e->chg_list = malloc(CHG_LIST * sizeof(int));
		if (e->chg == NULL || e->chg_list == NULL) {
			free(e->chg);
			free(e->chg_list);
			e->chg = NULL;
			e->chg_list = NULL;
			e->chg_all = true;
			return;
		}
	}
	if (!isosock_be || !isosock_be->notes ||
	    isosock_be->notes(e->cursor, &e->cursor_valid, note_one, e) != 0)
		e->chg_all = true;
	if (now - e->last_full >= EP_FULL_NS)
		e->chg_all = true;
	if (e->chg_all)
		e->last_full = now;
}

static void clear_notes(struct ep *e)
{
	for (int k = 0; k < e->chg_n; k++)
		e->chg[e->chg_list[k] / 64] &= ~(UINT64_C(1) << (e->chg_list[k] % 64));
	e->chg_n = 0;
	e->chg_all = false;
}

/* Whether the scan looks at it: named since the last look, ready then,
 * new, or everything is looked at. */
static bool worth_a_look(const struct ep *e, const struct interest *it)
{
	if (e->chg_all || it->check || it->last_ready != 0 || it->nkey < 0 || e->chg == NULL)
		return true;
	return (unsigned)it->nkey < EP_NKEY_BITS &&
	       (e->chg[it->nkey / 64] & (UINT64_C(1) << (it->nkey % 64)));
}

/* One pass over the interest list; fills evs, returns the count. */
static int scan(int epfd, struct ep *e, struct epoll_event *evs, int max)
{
	int cnt = 0;
	pthread_mutex_lock(&e->lock);
	collect_notes(e);
	for (int i = 0; i < e->n; i++) {
		struct interest *it = &e->v[i];
		if (!worth_a_look(e, it))
			continue;
		if (cnt >= max) {
			it->check = true;    /* no room: look next time */
			continue;
		}
		it->check = false;
		struct isosock_file *f = isosock_fd_get(it->fd);
		if (f != it->f || (f && f->gen != it->gen)) {
			/* Closed, replaced, or migrated to the kernel. */
			uint32_t fl = atomic_load_explicit(&it->f->flags, memory_order_relaxed);
			if (!f && it->f->gen == it->gen && (fl & ISOSOCK_F_MIGRATED)) {
				struct epoll_event k = { .events = it->events, .data = it->data };
				L.epoll_ctl(epfd, EPOLL_CTL_ADD, it->fd, &k);
			}
			if (f)
				isosock_file_put(f);
			drop(e, it);
			i--;
			continue;
		}
		if (it->disabled) {
			isosock_file_put(f);
			continue;
		}
		/* Counters before readiness: a call that drains the socket
		 * right after this poll bumps them past what we record. */
		uint32_t rd = atomic_load_explicit(&f->io_rd, memory_order_relaxed);
		uint32_t wr = atomic_load_explicit(&f->io_wr, memory_order_relaxed);
		uint32_t gen = 0;
		uint32_t ev = f->h && isosock_be ? isosock_be->poll(f->h, &gen) : 0;
		uint32_t ready = ev & (it->events | EPOLLERR | EPOLLHUP);
		isosock_file_put(f);
		if (!ready) {
			it->last_ready = 0;
			continue;
		}
		if (it->events & EPOLLET) {
			bool edge = (ready & ~it->last_ready) ||
				    (rd != it->last_rd && (ready & (EPOLLIN | EPOLLRDHUP))) ||
				    (wr != it->last_wr && (ready & EPOLLOUT)) ||
				    (gen != it->last_gen && (ready & EPOLLIN));
			it->last_ready = ready;
			if (!edge)
				continue;
			it->last_rd = rd;
			it->last_wr = wr;
			it->last_gen = gen;
		}
		/* Level-triggered: looked at again next time while ready, as
		 * the kernel keeps it on its ready list. */
		it->last_ready = ready;
		if (it->events & EPOLLONESHOT)
			it->disabled = true;
		evs[cnt].events = ready;
		evs[cnt].data = it->data;
		cnt++;
	}
	clear_notes(e);
	pthread_mutex_unlock(&e->lock);
	return cnt;
}

/* Kernel events for the same user data as a DUAL entry already reported
 * are folded into it (the shadow's half of one socket). */
static int fold(struct epoll_event *evs, int nstack, int total)
{
	for (int i = nstack; i < total; i++) {
		for (int j = 0; j < nstack; j++) {
			if (evs[j].data.u64 == evs[i].data.u64) {
				evs[j].events |= evs[i].events;
				evs[i--] = evs[--total];
				break;
			}
		}
	}
	return total;
}

bool isosock_e_attached(void)
{
	return isosock_be && isosock_be->wake_fd && isosock_be->wake_fd() >= 0;
}

/*
 * A set with kernel fds only (so far): the kernel's epoll_pwait.  A
 * thread asleep there would not notice an isostack socket another thread
 * adds meanwhile (its readiness is not the kernel's; the kernel wakes a
 * waiter when an added fd becomes ready), so while this process uses
 * isostack the sleep is cut in ISOSOCK_SLEEP_SLICE_NS slices that look
 * again, and go on in the emulation once the set has one.
 */
static int kernel_wait(int epfd, struct epoll_event *evs, int max, int64_t timeout_ns,
		       const sigset_t *mask)
{
	int64_t deadline = timeout_ns < 0 ? -1 : isosock_now_ns() + timeout_ns;
	for (;;) {
		int64_t left = deadline < 0 ? -1 : deadline - isosock_now_ns();
		if (deadline >= 0 && left < 0)
			left = 0;
		bool sliced = left != 0 && isosock_e_attached();
		if (sliced && (left < 0 || left > ISOSOCK_SLEEP_SLICE_NS))
			left = ISOSOCK_SLEEP_SLICE_NS;
		int ms = left < 0 ? -1 : (int)((left + 999999) / 1000000);
		int r = L.epoll_pwait(epfd, evs, max, ms, mask);
		if (r != 0 || !sliced)
			return r < 0 ? -errno : r;
		if (isosock_e_is_emulated(epfd)) {
			left = deadline < 0 ? -1 : deadline - isosock_now_ns();
			return isosock_e_wait(epfd, evs, max, deadline >= 0 && left < 0 ? 0 : left, mask);
		}
		if (deadline >= 0 && isosock_now_ns() >= deadline)
			return 0;
	}
}

int isosock_e_wait(int epfd, struct epoll_event *evs, int max, int64_t timeout_ns,
		   const sigset_t *mask)
{
	if (max <= 0)
		return -EINVAL;
	struct ep *e = ep_get(epfd, false);
	if (!e || !isosock_e_is_emulated(epfd))
		return kernel_wait(epfd, evs, max, timeout_ns, mask);
	int wake = isosock_be && isosock_be->wake_fd ? isosock_be->wake_fd() : -1;
	int64_t deadline = timeout_ns < 0 ? -1 : isosock_now_ns() + timeout_ns;
	for (;;) {
		int n = scan(epfd, e, evs, max);
		if (n < max) {
			int k = L.epoll_wait(epfd, evs + n, max - n, 0);
			if (k < 0)
				return n ? n : -errno;
			n = fold(evs, n, n + k);
		}
		if (n > 0 || timeout_ns == 0)
			return n;
		int64_t now = isosock_now_ns();
		if (deadline >= 0 && now >= deadline)
			return 0;
		/* Spin, yielding between scans, unless the core is shared
		 * (isostack/spin.h). */
		static __thread uint32_t spin_skip ISOSTACK_TLS;
		struct isostack_spin sp;
		if (isostack_spin_start(&sp, isosock_cfg.spin_ns, &spin_skip)) {
			while ((n = scan(epfd, e, evs, max)) == 0 &&
			       isostack_spin_step(&sp, &spin_skip))
				;
			if (n > 0)
				return n;
		}
		pthread_mutex_lock(&e->lock);
		mark_all(e, true);
		pthread_mutex_unlock(&e->lock);
		if (isosock_be && isosock_be->wait_begin)
			isosock_be->wait_begin();
		n = scan(epfd, e, evs, max);
		int r = 0;
		if (n == 0) {
			wake = isosock_be && isosock_be->wake_fd ? isosock_be->wake_fd() : -1;
			struct pollfd p[2] = { { .fd = epfd, .events = POLLIN },
					       { .fd = wake, .events = POLLIN } };
			int64_t left = deadline < 0 ? -1 : deadline - isosock_now_ns();
			if (deadline >= 0 && left < 0)
				left = 0;
			/* Bounded: a daemon that died writes no wake fd. */
			if (left < 0 || left > ISOSOCK_SLEEP_SLICE_NS)
				left = ISOSOCK_SLEEP_SLICE_NS;
			struct timespec ts = { left / 1000000000, left % 1000000000 };
			r = L.ppoll(p, wake >= 0 ? 2 : 1, left < 0 ? NULL : &ts, mask);
			if (r < 0)
				r = -errno;
		}
		if (isosock_be && isosock_be->wait_end)
			isosock_be->wait_end();
		pthread_mutex_lock(&e->lock);
		mark_all(e, false);
		pthread_mutex_unlock(&e->lock);
		if (n > 0)
			return n;
		if (r < 0)
			return r; /* EINTR: epoll_wait is never restarted */
	}
}

void isosock_e_atfork_child(void)
{
	/* A thread of the parent may have held a set's lock at fork (scan()
	 * calls the stack under it); the child has only the forking thread. */
	pthread_mutex_init(&eps_lock, NULL);
	for (int fd = 0; fd < EP_MAX_FD; fd++) {
		struct ep *e = atomic_load_explicit(&eps[fd], memory_order_relaxed);
		if (e) {
			pthread_mutex_init(&e->lock, NULL);
			/* The core forgot the parent's marks (fork_child). */
			e->sleeping = 0;
			for (int i = 0; i < e->n; i++)
				e->v[i].marks = e->v[i].pmarks = 0;
		}
	}
}

int isosock_e_pwait2(int epfd, struct epoll_event *evs, int max, const struct timespec *ts,
		     const sigset_t *mask)
{
	int64_t ns = -1;
	if (ts) {
		if (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000)
			return -EINVAL;
		ns = ts->tv_sec > INT64_MAX / 1000000000 - 1
			? INT64_MAX / 2 /* "forever", without overflow */
			: (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
	}
	if (isosock_e_is_emulated(epfd) || (ns != 0 && isosock_e_attached()))
		return isosock_e_wait(epfd, evs, max, ns, mask);
	int r;
	if (L.epoll_pwait2) {
		r = L.epoll_pwait2(epfd, evs, max, ts, mask);
		return r < 0 ? -errno : r;
	}
#ifdef SYS_epoll_pwait2
	r = (int)syscall(SYS_epoll_pwait2, epfd, evs, max, ts, mask, (size_t)(_NSIG / 8));
	if (r >= 0)
		return r;
	if (errno != ENOSYS)
		return -errno;
#endif
	/* No epoll_pwait2 anywhere: milliseconds, rounded up so the call
	 * never returns before the timeout. */
	int ms = -1;
	if (ns >= 0) {
		int64_t m = (ns + 999999) / 1000000;
		ms = m > INT32_MAX ? INT32_MAX : (int)m;
	}
	r = L.epoll_pwait(epfd, evs, max, ms, mask);
	return r < 0 ? -errno : r;
}
