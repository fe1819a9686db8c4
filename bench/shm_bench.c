/*
 * shm_bench: what one message costs between an application core and the
 * stack core, for isoshm and for the alternatives, side by side in one run.
 *
 * Throughput cases: a producer thread pinned to one core sends N messages
 * to a consumer thread pinned to the other, in bursts of --burst (default
 * 32) where the mechanism has bursts; the consumer's clock gives ns per
 * message and messages per second:
 *   isoshm ring 8B / 64B   the bare SPSC ring (isoshm_ring.h)
 *   isoshm ring+doorbell   the full command path: isoshm_app_submit_db() of
 *                          64-byte commands round-robin over 16 sockets,
 *                          isoshm_stack_poll() + validated
 *                          isoshm_stack_recv_cmds() on the other core
 *   rte_ring SP/SC, MP/SC  DPDK's ring, 8-byte pointers and 64-byte elements
 *   pipe, eventfd, AF_UNIX one syscall per message on the producer side
 * Wake round trips: the "stack" thread wakes a sleeping "application"
 * thread, which answers; the stack thread busy-waits for the answer.  It
 * waits until the application announced sleep and 20 us more, so every
 * sample is a real sleep -> wake:
 *   futex wake RTT         isoshm_stack_post_status() -> FUTEX_WAKE ->
 *                          isoshm_app_wait() returns -> isoshm_app_submit()
 *   futex wake RTT, busy   the same while a SCHED_IDLE thread spins on the
 *                          application's core: the core never idles, so
 *                          this is the scheduler wakeup without the cost of
 *                          waking an idle (halted) CPU
 *   futex spin RTT         the same with the application spinning (no sleep)
 *   pipe wake RTT          write() -> blocked read() returns -> write()
 *
 * Prints a table; --json FILE writes the figures.  The figures depend on
 * the machine and its load; nothing checks them.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "isoshm.h"

#define MAX_BURST 256

static uint32_t burst = 32;
static int cpu_prod = 0, cpu_cons = 1;
static uint64_t ring_msgs = 20000000, sys_msgs = 300000;
static unsigned int runs = 3, rtt_iters = 2000;

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void relax(void)
{
#if defined(__x86_64__)
	__builtin_ia32_pause();
#endif
}

static void die(const char *what, int err)
{
	fprintf(stderr, "shm_bench: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

/* ---- A generic two-thread run ----------------------------------------- */

struct pair {
	void (*produce)(struct pair *);
	void (*consume)(struct pair *);
	void *ctx;
	uint64_t n;
	_Atomic int ready;
	int64_t t0, t1;
};

static void *prod_main(void *arg)
{
	struct pair *p = arg;

	pin(cpu_prod);
	atomic_fetch_add(&p->ready, 1);
	while (atomic_load(&p->ready) < 2)
		relax();
	p->produce(p);
	return NULL;
}

static void *cons_main(void *arg)
{
	struct pair *p = arg;

	pin(cpu_cons);
	atomic_fetch_add(&p->ready, 1);
	while (atomic_load(&p->ready) < 2)
		relax();
	p->t0 = now_ns();
	p->consume(p);
	p->t1 = now_ns();
	return NULL;
}

/* Runs the pair `runs` times, returns the median ns per message. */
static double run_pair(void (*produce)(struct pair *), void (*consume)(struct pair *),
		       void *(*setup)(void), void (*teardown)(void *), uint64_t n)
{
	double ns[16];

	for (unsigned int r = 0; r < runs; r++) {
		struct pair p = { .produce = produce, .consume = consume, .n = n };
		pthread_t tp, tc;

		p.ctx = setup();
		pthread_create(&tc, NULL, cons_main, &p);
		pthread_create(&tp, NULL, prod_main, &p);
		pthread_join(tp, NULL);
		pthread_join(tc, NULL);
		teardown(p.ctx);
		ns[r] = (double)(p.t1 - p.t0) / (double)n;
	}
	for (unsigned int i = 1; i < runs; i++)
		for (unsigned int j = i; j > 0 && ns[j] < ns[j - 1]; j--) {
			double t = ns[j];

			ns[j] = ns[j - 1];
			ns[j - 1] = t;
		}
	return ns[runs / 2];
}

/* ---- isoshm bare ring ----------------------------------------------------- */

struct bare {
	_Alignas(64) _Atomic uint32_t prod;
	_Alignas(64) _Atomic uint32_t cons;
	_Alignas(64) struct isoshm_ring p;
	_Alignas(64) struct isoshm_ring c;
	uint32_t esize;
	_Alignas(64) uint8_t slots[];
};

static uint32_t bare_esize;

static void *bare_setup(void)
{
	struct bare *b = aligned_alloc(64, sizeof(*b) + 1024 * (size_t)bare_esize);

	memset(b, 0, sizeof(*b));
	b->esize = bare_esize;
	isoshm_ring_init(&b->p, ISOSHM_RING_PRODUCER, &b->prod, &b->cons, b->slots, 1024, b->esize);
	isoshm_ring_init(&b->c, ISOSHM_RING_CONSUMER, &b->prod, &b->cons, b->slots, 1024, b->esize);
	return b;
}

static void bare_produce(struct pair *p)
{
	struct bare *b = p->ctx;
	uint64_t buf[MAX_BURST * 8];

	memset(buf, 0, sizeof(buf));
	for (uint64_t sent = 0; sent < p->n;) {
		uint32_t want = p->n - sent < burst ? (uint32_t)(p->n - sent) : burst;
		int k = isoshm_ring_enqueue_burst(&b->p, buf, want);

		if (k == 0)
			relax();
		sent += (uint64_t)k;
	}
}

static void bare_consume(struct pair *p)
{
	struct bare *b = p->ctx;
	uint64_t buf[MAX_BURST * 8];

	for (uint64_t got = 0; got < p->n;) {
		int k = isoshm_ring_dequeue_burst(&b->c, buf, burst);

		if (k == 0)
			relax();
		got += (uint64_t)k;
	}
}

/* ---- isoshm ring + doorbell: the full command path ---------------------- */

#define RD_SOCKS 16

struct seg_pair {
	struct isoshm_stack *s;
	struct isoshm_app *a;
};

/* The application's extent fetch, in-process: the stack's fd, dup'ed. */
static int seg_fetch(void *arg, uint32_t id, uint64_t *off, uint64_t *size)
{
	struct seg_pair *sp = arg;
	int fd, rc = isoshm_stack_extent_get(sp->s, id, &fd, off, size);

	if (rc < 0)
		return rc;
	fd = dup(fd);
	return fd < 0 ? -errno : fd;
}

/* A segment with ids 1..nsock-1 opened on 4 KiB TX and RX rings in one
 * extent (the benchmarks use only their commands and status). */
static void *seg_setup_n(uint32_t nsock)
{
	struct seg_pair *sp = calloc(1, sizeof(*sp));
	struct isoshm_params prm;
	uint64_t ext_off, ext_size;
	uint32_t ext;
	int fd, rc;

	isoshm_params_default(&prm);
	prm.max_sockets = nsock;
	prm.nr_doorbells = 2;
	prm.cmd_entries = 256;
	prm.max_ring_bytes = 4096;
	prm.arena_size = ISOSTACK_SHM_EXTENT_UNIT;
	prm.hugetlb = false;
	rc = isoshm_stack_create(&sp->s, &prm);
	if (rc < 0)
		die("isoshm_stack_create", rc);
	fd = dup(isoshm_stack_fd(sp->s));
	rc = isoshm_app_attach(&sp->a, fd, NULL);
	if (rc < 0)
		die("isoshm_app_attach", rc);
	isoshm_app_set_fetch(sp->a, seg_fetch, sp);
	rc = isoshm_stack_extent_new(sp->s, ISOSTACK_SHM_EXTENT_UNIT, &ext);
	if (rc < 0)
		die("isoshm_stack_extent_new", rc);
	rc = isoshm_stack_extent_get(sp->s, ext, &fd, &ext_off, &ext_size);
	if (rc < 0)
		die("isoshm_stack_extent_get", rc);
	for (uint32_t id = 1; id < nsock; id++) {
		struct isostack_shm_sockdir d = {
			.tx_off = ext_off + 2 * id * 4096, .rx_off = ext_off + (2 * id + 1) * 4096,
			.tx_bytes = 4096, .rx_bytes = 4096, .tx_extent = ext, .rx_extent = ext,
		};

		rc = isoshm_stack_sock_open(sp->s, id, &d);
		if (rc < 0)
			die("isoshm_stack_sock_open", rc);
		rc = isoshm_app_sock_open(sp->a, id);
		if (rc < 0)
			die("isoshm_app_sock_open", rc);
	}
	return sp;
}

static void *seg_setup(void)
{
	return seg_setup_n(RD_SOCKS + 1);
}

static void seg_teardown(void *ctx)
{
	struct seg_pair *sp = ctx;

	isoshm_app_detach(sp->a);
	isoshm_stack_destroy(sp->s);
	free(sp);
}

static void rd_produce(struct pair *p)
{
	struct seg_pair *sp = p->ctx;
	struct isostack_shm_cmd cmds[RD_SOCKS + 1][MAX_BURST];
	uint32_t sock = 1;

	memset(cmds, 0, sizeof(cmds));
	for (uint32_t s = 1; s <= RD_SOCKS; s++)
		for (uint32_t i = 0; i < MAX_BURST; i++) {
			cmds[s][i].opcode = ISOSTACK_SHM_OP_SEND;
			cmds[s][i].sock = s;
		}
	for (uint64_t sent = 0; sent < p->n;) {
		uint32_t want = p->n - sent < burst ? (uint32_t)(p->n - sent) : burst;
		int k = isoshm_app_submit_db(sp->a, sock, 0, cmds[sock], want);

		if (k < 0)
			die("isoshm_app_submit_db", k);
		if (k == 0)
			relax();
		sent += (uint64_t)k;
		sock = sock == RD_SOCKS ? 1 : sock + 1;
	}
}

static void rd_consume(struct pair *p)
{
	struct seg_pair *sp = p->ctx;
	struct isostack_shm_cmd cmds[MAX_BURST];
	uint32_t socks[64];

	for (uint64_t got = 0; got < p->n;) {
		int k = isoshm_stack_poll(sp->s, socks, 64);

		if (k < 0)
			die("isoshm_stack_poll", k);
		if (k == 0)
			relax();
		for (int i = 0; i < k; i++) {
			int r;

			do {
				r = isoshm_stack_recv_cmds(sp->s, socks[i], cmds, burst);
				if (r < 0)
					die("isoshm_stack_recv_cmds", r);
				got += (uint64_t)r;
			} while ((uint32_t)r == burst);
		}
	}
}

/* ---- DPDK rte_ring (no EAL needed: rte_ring_init on our own memory) ---- */

static unsigned int rte_flags;
static uint32_t rte_esize;

static void *rte_setup(void)
{
	ssize_t sz = rte_ring_get_memsize_elem(rte_esize, 1024);
	struct rte_ring *r = aligned_alloc(128, (size_t)sz);

	if (sz < 0 || r == NULL || rte_ring_init(r, "bench", 1024, rte_flags) != 0)
		die("rte_ring_init", EINVAL);
	return r;
}

static void rte_teardown(void *ctx)
{
	free(ctx);
}

static void rte_produce(struct pair *p)
{
	struct rte_ring *r = p->ctx;
	uint64_t buf[MAX_BURST * 8];

	memset(buf, 0, sizeof(buf));
	for (uint64_t sent = 0; sent < p->n;) {
		uint32_t want = p->n - sent < burst ? (uint32_t)(p->n - sent) : burst;
		unsigned int k = rte_ring_enqueue_burst_elem(r, buf, rte_esize, want, NULL);

		if (k == 0)
			relax();
		sent += k;
	}
}

static void rte_consume(struct pair *p)
{
	struct rte_ring *r = p->ctx;
	uint64_t buf[MAX_BURST * 8];

	for (uint64_t got = 0; got < p->n;) {
		unsigned int k = rte_ring_dequeue_burst_elem(r, buf, rte_esize, burst, NULL);

		if (k == 0)
			relax();
		got += k;
	}
}

/* ---- Kernel IPC: pipe, eventfd, AF_UNIX -------------------------------- */

struct fds {
	int rd, wr;
	int kind; /* 0 pipe, 1 eventfd, 2 unix dgram */
};

static int fd_kind;

static void *fds_setup(void)
{
	struct fds *f = calloc(1, sizeof(*f));
	int v[2];

	f->kind = fd_kind;
	if (fd_kind == 0) {
		if (pipe(v) != 0)
			die("pipe", errno);
		f->rd = v[0];
		f->wr = v[1];
	} else if (fd_kind == 1) {
		f->rd = f->wr = eventfd(0, 0);
	} else {
		if (socketpair(AF_UNIX, SOCK_DGRAM, 0, v) != 0)
			die("socketpair", errno);
		f->rd = v[0];
		f->wr = v[1];
	}
	return f;
}

static void fds_teardown(void *ctx)
{
	struct fds *f = ctx;

	close(f->rd);
	if (f->wr != f->rd)
		close(f->wr);
	free(f);
}

static void fds_produce(struct pair *p)
{
	struct fds *f = p->ctx;
	uint8_t msg[64] = { 0 };
	uint64_t one = 1;

	for (uint64_t i = 0; i < p->n; i++) {
		ssize_t w = f->kind == 1 ? write(f->wr, &one, 8) : write(f->wr, msg, 64);

		if (w < 0)
			die("write", errno);
	}
}

static void fds_consume(struct pair *p)
{
	struct fds *f = p->ctx;
	uint8_t buf[64 * MAX_BURST];

	for (uint64_t got = 0; got < p->n;) {
		ssize_t r;

		if (f->kind == 1) {
			uint64_t v;

			r = read(f->rd, &v, 8);
			if (r == 8)
				got += v;
		} else if (f->kind == 0) {
			r = read(f->rd, buf, 64 * (size_t)burst); /* a stream: a burst per read */
			if (r > 0)
				got += (uint64_t)r / 64;
		} else {
			r = recv(f->rd, buf, 64, 0);
			if (r > 0)
				got++;
		}
		if (r < 0)
			die("read", errno);
	}
}

/* ---- Wake round trips ------------------------------------------------------ */

struct rtt {
	struct seg_pair *sp;
	uint32_t spin;
	unsigned int iters;
	int64_t *samples;
	_Atomic int ready;
	int pipe_ab[2], pipe_ba[2];
};

static bool rtt_status_ready(void *arg)
{
	struct rtt *t = arg;

	return isoshm_app_status_avail(t->sp->a, 1) > 0;
}

static void *rtt_app(void *arg)
{
	struct rtt *t = arg;
	struct isostack_shm_cmd c;

	pin(cpu_cons);
	memset(&c, 0, sizeof(c));
	c.opcode = ISOSTACK_SHM_OP_NOP;
	c.sock = 1;
	atomic_store(&t->ready, 1);
	for (unsigned int i = 0; i < t->iters; i++) {
		struct isostack_shm_status st;
		int rc = isoshm_app_wait(t->sp->a, 1, rtt_status_ready, t, t->spin, -1);

		if (rc != 0 || isoshm_app_recv_status(t->sp->a, 1, &st, 1) != 1)
			die("isoshm_app_wait", rc);
		c.cookie = st.cookie;
		while (isoshm_app_submit_db(t->sp->a, 1, 0, &c, 1) != 1)
			relax();
	}
	return NULL;
}

static void spin_ns(int64_t ns)
{
	int64_t end = now_ns() + ns;

	while (now_ns() < end)
		relax();
}

/* The stack side, on cpu_prod: post, wait for the answer. */
static void rtt_futex(struct rtt *t, bool sleeping)
{
	struct isostack_shm_sock *sk = (void *)((uint8_t *)isoshm_stack_base(t->sp->s) +
						isoshm_stack_header(t->sp->s)->socks_off);
	pthread_t th;

	atomic_store(&t->ready, 0);
	pthread_create(&th, NULL, rtt_app, t);
	pin(cpu_prod);
	while (!atomic_load(&t->ready))
		relax();
	for (unsigned int i = 0; i < t->iters; i++) {
		struct isostack_shm_status st;
		struct isostack_shm_cmd c;
		uint32_t socks[8];
		int64_t t0;

		if (sleeping) {
			/* bench-only peek at the app's word: it announced sleep */
			while (atomic_load(&sk[1].waiters) == 0)
				relax();
			spin_ns(20000); /* and is inside FUTEX_WAIT by now */
		} else {
			spin_ns(2000);
		}
		memset(&st, 0, sizeof(st));
		st.cookie = i;
		t0 = now_ns();
		if (isoshm_stack_post_status(t->sp->s, 1, &st, 1) != 1)
			die("post_status", EIO);
		for (;;) {
			int k = isoshm_stack_poll(t->sp->s, socks, 8);

			if (k > 0 && isoshm_stack_recv_cmds(t->sp->s, 1, &c, 1) == 1)
				break;
			relax();
		}
		t->samples[i] = now_ns() - t0;
		if (c.cookie != i)
			die("round trip cookie", EPROTO);
	}
	pthread_join(th, NULL);
}

static void *rtt_pipe_peer(void *arg)
{
	struct rtt *t = arg;
	char b;

	pin(cpu_cons);
	atomic_store(&t->ready, 1);
	for (unsigned int i = 0; i < t->iters; i++) {
		if (read(t->pipe_ab[0], &b, 1) != 1 || write(t->pipe_ba[1], &b, 1) != 1)
			die("pipe peer", errno);
	}
	return NULL;
}

static void rtt_pipe(struct rtt *t)
{
	pthread_t th;
	char b = 'x';

	if (pipe(t->pipe_ab) != 0 || pipe2(t->pipe_ba, O_NONBLOCK) != 0)
		die("pipe", errno);
	atomic_store(&t->ready, 0);
	pthread_create(&th, NULL, rtt_pipe_peer, t);
	pin(cpu_prod);
	while (!atomic_load(&t->ready))
		relax();
	for (unsigned int i = 0; i < t->iters; i++) {
		int64_t t0;

		spin_ns(20000); /* the peer is asleep in read() by now */
		t0 = now_ns();
		if (write(t->pipe_ab[1], &b, 1) != 1)
			die("pipe write", errno);
		while (read(t->pipe_ba[0], &b, 1) != 1)
			relax();
		t->samples[i] = now_ns() - t0;
	}
	pthread_join(th, NULL);
	close(t->pipe_ab[0]);
	close(t->pipe_ab[1]);
	close(t->pipe_ba[0]);
	close(t->pipe_ba[1]);
}

static _Atomic int idle_spin_stop;

/* Keeps cpu_cons busy at the lowest priority: any woken thread preempts it. */
static void *idle_spinner(void *arg)
{
	struct sched_param sp = { .sched_priority = 0 };

	(void)arg;
	pin(cpu_cons);
	pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
	while (!atomic_load_explicit(&idle_spin_stop, memory_order_relaxed))
		relax();
	return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* ---- Main --------------------------------------------------------------------- */

struct result {
	const char *name;
	const char *kind;  /* "throughput" or "rtt" */
	uint64_t msgs;
	double ns;         /* per message, or median round trip */
	double p99;        /* rtt only */
	uint64_t sleeps;   /* rtt only: FUTEX_WAITs made */
};

static void usage(void)
{
	fprintf(stderr,
		"usage: shm_bench [--json FILE] [--burst N] [--msgs N] [--sys-msgs N]\n"
		"                 [--runs N] [--rtt-iters N] [--cpus P,C] [--quick]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", required_argument, NULL, 'j' },
		{ "burst", required_argument, NULL, 'b' },
		{ "msgs", required_argument, NULL, 'm' },
		{ "sys-msgs", required_argument, NULL, 's' },
		{ "runs", required_argument, NULL, 'r' },
		{ "rtt-iters", required_argument, NULL, 'i' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "quick", no_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 },
	};
	struct result res[16];
	unsigned int nres = 0;
	const char *json = NULL;
	int o;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'j': json = optarg; break;
		case 'b': burst = (uint32_t)atoi(optarg); break;
		case 'm': ring_msgs = strtoull(optarg, NULL, 10); break;
		case 's': sys_msgs = strtoull(optarg, NULL, 10); break;
		case 'r': runs = (unsigned int)atoi(optarg); break;
		case 'i': rtt_iters = (unsigned int)atoi(optarg); break;
		case 'c':
			if (sscanf(optarg, "%d,%d", &cpu_prod, &cpu_cons) != 2)
				usage();
			break;
		case 'q':
			ring_msgs = 2000000;
			sys_msgs = 50000;
			runs = 1;
			rtt_iters = 300;
			break;
		default:
			usage();
		}
	}
	if (burst < 1 || burst > MAX_BURST || runs < 1 || runs > 15 || rtt_iters < 1 ||
	    ring_msgs < 1 || sys_msgs < 1)
		usage();
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2 || cpu_prod == cpu_cons) {
		fprintf(stderr, "shm_bench: needs two different CPUs (have %ld online)\n",
			sysconf(_SC_NPROCESSORS_ONLN));
		return 77;
	}
	isoshm_set_log(NULL);
	printf("shm_bench: producer cpu %d, consumer cpu %d, burst %u, median of %u run(s)\n",
	       cpu_prod, cpu_cons, burst, runs);

#define TP(label, prod, cons, setup, teardown, n) do { \
		double ns_ = run_pair(prod, cons, setup, teardown, n); \
		res[nres++] = (struct result){ label, "throughput", n, ns_, 0, 0 }; \
		printf("  %-28s %8.1f ns/msg %10.2f Mmsg/s\n", label, ns_, 1e3 / ns_); \
		fflush(stdout); \
	} while (0)

	bare_esize = 8;
	TP("isoshm ring 8B", bare_produce, bare_consume, bare_setup, free, ring_msgs);
	bare_esize = 64;
	TP("isoshm ring 64B", bare_produce, bare_consume, bare_setup, free, ring_msgs);
	TP("isoshm ring+doorbell 64B", rd_produce, rd_consume, seg_setup, seg_teardown, ring_msgs);
	rte_esize = 8;
	rte_flags = RING_F_SP_ENQ | RING_F_SC_DEQ;
	TP("rte_ring SP/SC 8B", rte_produce, rte_consume, rte_setup, rte_teardown, ring_msgs);
	rte_flags = RING_F_SC_DEQ;
	TP("rte_ring MP/SC 8B", rte_produce, rte_consume, rte_setup, rte_teardown, ring_msgs);
	rte_esize = 64;
	rte_flags = RING_F_SP_ENQ | RING_F_SC_DEQ;
	TP("rte_ring SP/SC 64B", rte_produce, rte_consume, rte_setup, rte_teardown, ring_msgs);
	rte_flags = RING_F_SC_DEQ;
	TP("rte_ring MP/SC 64B", rte_produce, rte_consume, rte_setup, rte_teardown, ring_msgs);
	fd_kind = 0;
	TP("pipe 64B", fds_produce, fds_consume, fds_setup, fds_teardown, sys_msgs);
	fd_kind = 1;
	TP("eventfd", fds_produce, fds_consume, fds_setup, fds_teardown, sys_msgs);
	fd_kind = 2;
	TP("AF_UNIX dgram 64B", fds_produce, fds_consume, fds_setup, fds_teardown, sys_msgs);

	{
		struct rtt t = { .iters = rtt_iters };
		const char *names[4] = { "futex wake RTT", "futex wake RTT, busy core",
					 "futex spin RTT", "pipe wake RTT" };

		t.samples = calloc(rtt_iters, sizeof(*t.samples));
		for (int v = 0; v < 4; v++) {
			uint64_t sleeps = 0;

			if (v < 3) {
				pthread_t spinner;

				if (v == 1) {
					atomic_store(&idle_spin_stop, 0);
					pthread_create(&spinner, NULL, idle_spinner, NULL);
				}
				t.sp = seg_setup_n(4);
				t.spin = v < 2 ? 0 : UINT32_MAX;
				rtt_futex(&t, v < 2);
				sleeps = isoshm_app_sleeps(t.sp->a);
				seg_teardown(t.sp);
				if (v == 1) {
					atomic_store(&idle_spin_stop, 1);
					pthread_join(spinner, NULL);
				}
			} else {
				rtt_pipe(&t);
			}
			qsort(t.samples, rtt_iters, sizeof(*t.samples), cmp_i64);
			res[nres++] = (struct result){ names[v], "rtt", rtt_iters,
				(double)t.samples[rtt_iters / 2],
				(double)t.samples[(rtt_iters * 99) / 100], sleeps };
			printf("  %-28s %8.0f ns median %8.0f ns p99  (%u round trips, %llu sleeps)\n",
			       names[v], res[nres - 1].ns, res[nres - 1].p99, rtt_iters,
			       (unsigned long long)sleeps);
		}
		free(t.samples);
	}

	{
		double rd = res[2].ns, rte = res[5].ns, rte8 = res[3].ns;

		printf("targets: ring+doorbell %.1f ns/msg (<= 50: %s), vs rte_ring SP/SC 64B %.2fx, "
		       "vs 8B %.2fx (<= 1.5: %s)\n", rd, rd <= 50 ? "met" : "MISSED",
		       rd / rte, rd / rte8, rd <= 1.5 * rte ? "met" : "MISSED");
	}

	if (json != NULL) {
		FILE *f = fopen(json, "w");

		if (f == NULL)
			die(json, errno);
		fprintf(f, "{\n  \"benchmark\": \"shm_bench\",\n  \"cpus\": [%d, %d],\n"
			"  \"burst\": %u,\n  \"runs\": %u,\n  \"results\": [\n",
			cpu_prod, cpu_cons, burst, runs);
		for (unsigned int i = 0; i < nres; i++) {
			struct result *r = &res[i];

			if (strcmp(r->kind, "rtt") == 0)
				fprintf(f, "    {\"name\": \"%s\", \"kind\": \"rtt\", \"round_trips\": %llu, "
					"\"median_ns\": %.0f, \"p99_ns\": %.0f, \"sleeps\": %llu}",
					r->name, (unsigned long long)r->msgs, r->ns, r->p99,
					(unsigned long long)r->sleeps);
			else
				fprintf(f, "    {\"name\": \"%s\", \"kind\": \"throughput\", \"msgs\": %llu, "
					"\"ns_per_msg\": %.2f, \"msgs_per_s\": %.0f}",
					r->name, (unsigned long long)r->msgs, r->ns, 1e9 / r->ns);
			fprintf(f, "%s\n", i + 1 < nres ? "," : "");
		}
		fprintf(f, "  ]\n}\n");
		fclose(f);
		printf("wrote %s\n", json);
	}
	return 0;
}
