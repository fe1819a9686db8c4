/*
 * The socket data path end to end, in one process, without DPDK: the real
 * back-end (daemon/backend) and the real front-end core (libisosock/core.c).
 *
 * A stack thread owns lwIP: two netifs joined by an in-process virtual link
 * (each netif's output clones the packet into the other's inbox, as in
 * test/unit/tcpip), and the back-end serving its control socket.  Test
 * threads are the applications: each attaches through the control socket
 * like a real process would and calls the front-end core.  The client
 * application talks from 198.18.0.1 to a server application bound to
 * 198.18.0.2, so every byte crosses both rings of both applications, lwIP
 * twice and the link.
 *
 * A second back-end on the same lwIP, with small rings (SMALL_RING) and a
 * short close timeout, serves the tests that need them: applications that
 * attach to ctl_path_small get it.
 *
 * lwIP's clock (and so the back-ends' clock) is the real monotonic clock
 * plus a skew: tests add to it to expire timeouts without waiting, and the
 * stack thread adds at the end to expire TIME_WAIT for the leak check.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* glibc's byte-order macros, not lwIP's */
#define LWIP_DONT_PROVIDE_BYTEORDER_FUNCTIONS 1
#include <netinet/in.h>
#include <arpa/inet.h>

#include <cmocka.h>

#include "lwip/init.h"
#include "lwip/ip.h"
#include "lwip/ip4.h"
#include "lwip/ip6.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/stats.h"
#include "lwip/memp.h"
#include "lwip/priv/memp_priv.h"
#include "lwip/tcp.h"
#include "lwip/timeouts.h"
#include "lwip/priv/tcp_priv.h"

#include "backend.h"
#include "isosock.h"
#include "isoshm.h"
#include "isotcp.h"
#include "isostack/ctl_proto.h"

#define INBOX_SLOTS 8192
#define PORT_BASE   6000
#define SMALL_RING  16384     /* rings of the small back-end */
#define SMALL_CLOSE_MS 1000   /* its close timeout */

/* ---- lwIP clock ---------------------------------------------------------- */

static _Atomic uint32_t clock_skew_ms;

u32_t sys_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (u32_t)(ts.tv_sec * 1000 + ts.tv_nsec / 1000000) + atomic_load(&clock_skew_ms);
}

/* ---- Virtual link (stack thread only) ---------------------------------- */

struct side {
	struct netif netif;
	struct side *peer;
	struct pbuf *inbox[INBOX_SLOTS];
	unsigned head, tail;
};

static struct side side_a, side_b;

static err_t vlink_output(struct netif *netif, struct pbuf *p, const ip4_addr_t *dst)
{
	struct side *peer = ((struct side *)netif->state)->peer;
	struct pbuf *copy;

	(void)dst;
	if (peer->tail - peer->head == INBOX_SLOTS)
		return ERR_OK;   /* lost on the wire */
	copy = pbuf_clone(PBUF_RAW, PBUF_RAM, p);
	if (copy == NULL)
		return ERR_MEM;
	peer->inbox[peer->tail++ % INBOX_SLOTS] = copy;
	return ERR_OK;
}

/* IPv6 crosses the same link, with no neighbour discovery (no link
 * layer: the packet is the frame). */
static err_t vlink_output6(struct netif *netif, struct pbuf *p, const ip6_addr_t *dst)
{
	(void)dst;
	return vlink_output(netif, p, NULL);
}

static err_t vlink_init(struct netif *netif)
{
	netif->name[0] = 'v';
	netif->name[1] = 'l';
	netif->output = vlink_output;
	netif->output_ip6 = vlink_output6;
	netif->mtu = 1500;
	netif->flags = NETIF_FLAG_LINK_UP;
	return ERR_OK;
}

static unsigned link_pump(void)
{
	struct side *sides[2] = { &side_a, &side_b };
	unsigned n = 0;

	for (int i = 0; i < 2; i++) {
		struct side *s = sides[i];

		while (s->head != s->tail && n < 256) {
			struct pbuf *p = s->inbox[s->head++ % INBOX_SLOTS];

			if (s->netif.input(p, &s->netif) != ERR_OK)
				pbuf_free(p);
			n++;
		}
	}
	return n;
}

/* ---- The stack thread ---------------------------------------------------- */

static char ctl_path[108], ctl_path_small[108];
static pthread_t stack_tid;
static struct isod_backend_stats pub_stats_small;
static _Atomic unsigned pub_passes;                /* stack loop passes */
/* The connection to server port watch_port, seen from its client's pcb
 * after every pass: the most bytes in flight, and the peer's window. */
static _Atomic unsigned watch_port;
static _Atomic uint32_t watch_inflight_max, watch_snd_wnd = UINT32_MAX;
static _Atomic bool stack_stop, stack_ready;
static _Atomic unsigned pub_apps, pub_open, pub_lastack;
static struct isod_backend_stats pub_stats;
static pthread_mutex_t pub_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int stack_init_rc;
static _Atomic uint32_t leak_memp = 1, leak_heap = 1;
/* test controls, applied by the stack thread */
static _Atomic bool nap_mode, kill_backend;
static _Atomic int64_t want_mem_limit = -1;
static _Atomic unsigned pub_napping;               /* 1 while asleep on the wake fd */
static _Atomic unsigned nap_fd_wakes, nap_timeouts, nap_refused;

static void watch_pass(void)
{
	unsigned port = atomic_load(&watch_port);

	if (port == 0)
		return;
	for (struct tcp_pcb *p = tcp_active_pcbs; p != NULL; p = p->next) {
		uint32_t inflight;

		if (p->remote_port != port || p->state != ESTABLISHED)
			continue;
		inflight = p->snd_nxt - p->lastack;
		if (inflight > atomic_load(&watch_inflight_max))
			atomic_store(&watch_inflight_max, inflight);
		atomic_store(&watch_snd_wnd, p->snd_wnd);
	}
}

static void *stack_main(void *arg)
{
	struct isod_backend_conf conf;
	struct isod_backend *be, *be_small = NULL;
	ip4_addr_t a, b, mask;
	unsigned idle = 0;
	int rc;

	(void)arg;
	isotcp_owner_claim();
	lwip_init();
	side_a.peer = &side_b;
	side_b.peer = &side_a;
	IP4_ADDR(&a, 198, 18, 0, 1);
	IP4_ADDR(&b, 198, 18, 0, 2);
	IP4_ADDR(&mask, 255, 255, 255, 255);
	netif_add(&side_a.netif, &a, &mask, &b, &side_a, vlink_init, ip_input);
	netif_add(&side_b.netif, &b, &mask, &a, &side_b, vlink_init, ip_input);
	/* 2001:2:0:a::1 and 2001:2:0:b::1: prefixes of their own, so that
	 * ip6_route picks the side as ip4_route does with the /32s above */
	for (int i = 0; i < 2; i++) {
		struct netif *n = i == 0 ? &side_a.netif : &side_b.netif;
		ip6_addr_t a6;

		IP6_ADDR(&a6, PP_HTONL(0x20010002u), PP_HTONL(i == 0 ? 0xau : 0xbu), 0,
			 PP_HTONL(1u));
		netif_ip6_addr_set(n, 0, &a6);
		netif_ip6_addr_set_state(n, 0, IP6_ADDR_PREFERRED);
	}
	netif_set_up(&side_a.netif);
	netif_set_up(&side_b.netif);

	isod_backend_conf_default(&conf);
	conf.control_path = ctl_path;
	conf.shm.max_sockets = 16;      /* 15 sockets per application */
	conf.shm.arena_size = UINT64_C(64) << 20;
	conf.shm.nr_doorbells = 2;
	conf.shm.hugetlb = false;
	conf.ctl_interval_ms = 0;
	/* Both sides' addresses are this lwIP's own: with cut-through the
	 * connections would pair on the stack core and never cross lwIP,
	 * which is what these tests are about (test backend_cut runs them
	 * paired). */
	conf.cut_through = getenv("ISOD_TEST_CUT_THROUGH") != NULL &&
			   strcmp(getenv("ISOD_TEST_CUT_THROUGH"), "on") == 0;
	/* off by default in the daemon (backend.h); on here, so every test
	 * runs beside it and test_tx_watch sees it work */
	conf.tx_watch = true;
	rc = isod_backend_init(&be, &conf);
	if (rc == 0) {
		conf.control_path = ctl_path_small;
		conf.rx_ring = SMALL_RING;
		conf.tx_ring = SMALL_RING;
		conf.close_timeout_ms = SMALL_CLOSE_MS;
		/* its tests watch TCP's zero window between two of its
		 * applications: no pairing (cutthru.c) */
		conf.cut_through = false;
		rc = isod_backend_init(&be_small, &conf);
		if (rc < 0)
			isod_backend_fini(be);
	}
	atomic_store(&stack_init_rc, rc);
	atomic_store(&stack_ready, true);
	if (rc < 0)
		return NULL;

	while (!atomic_load(&stack_stop)) {
		unsigned work = link_pump();

		sys_check_timeouts();
		if (atomic_load(&kill_backend) && be != NULL) {
			/* the daemon dies: control sockets hang up, nobody serves */
			isod_backend_fini(be);
			isod_backend_fini(be_small);
			be = NULL;
			be_small = NULL;
		}
		if (be == NULL) {
			struct timespec ts = { 0, 100000 };

			atomic_store(&pub_apps, 0);
			atomic_store(&pub_open, 0);
			nanosleep(&ts, NULL);
			continue;
		}
		{
			int64_t ml = atomic_exchange(&want_mem_limit, -1);

			if (ml >= 0)
				isod_backend_set_mem_limit(be, (uint64_t)ml);
		}
		work += isod_backend_poll(be, 256);
		work += isod_backend_poll(be_small, 256);
		watch_pass();
		pthread_mutex_lock(&pub_lock);
		isod_backend_get_stats(be, &pub_stats);
		isod_backend_get_stats(be_small, &pub_stats_small);
		pthread_mutex_unlock(&pub_lock);
		atomic_store(&pub_apps, isod_backend_apps(be) + isod_backend_apps(be_small));
		atomic_store(&pub_open, isod_backend_open_sockets(be) +
			     isod_backend_open_sockets(be_small));
		atomic_fetch_add(&pub_passes, 1);
		{
			unsigned n = 0;

			for (struct tcp_pcb *p = tcp_active_pcbs; p != NULL; p = p->next)
				n += p->state == LAST_ACK;
			atomic_store(&pub_lastack, n);
		}
		/* power-saving mode as the daemon does it: publish "napping",
		 * re-check, sleep on the doorbell fds until an application
		 * rings its own.  The 10 s bound only keeps a broken kick from
		 * hanging the test; the napping test counts timeouts. */
		if (work == 0 && atomic_load(&nap_mode) && ++idle > 1000) {
			if (isod_backend_set_napping(be, true) == 0) {
				struct pollfd pfd = { .fd = isod_backend_wake_fd(be),
						      .events = POLLIN };
				int r;

				u32_t ms = sys_timeouts_sleeptime();

				/* as the daemon must: sleep no longer than lwIP's
				 * next timer (delayed ACKs, retransmissions) */
				atomic_store(&pub_napping, 1);
				r = poll(&pfd, 1, ms > 10000 ? 10000 : (int)ms);
				atomic_store(&pub_napping, 0);
				/* the next nap drains the application's fd */
				if (r > 0)
					atomic_fetch_add(&nap_fd_wakes, 1);
				else
					atomic_fetch_add(&nap_timeouts, 1);
			} else {
				atomic_fetch_add(&nap_refused, 1);
			}
			isod_backend_set_napping(be, false);
			idle = 0;
			continue;
		}
		/* pacing, not synchronisation: leave the CPU to the apps when idle */
		if (work == 0 && ++idle > 1000) {
			struct timespec ts = { 0, 20000 };

			nanosleep(&ts, NULL);
		} else if (work != 0) {
			idle = 0;
		}
	}
	isod_backend_fini(be);
	isod_backend_fini(be_small);
	/*
	 * TIME_WAIT and friends: move the clock on until lwIP holds nothing.
	 * lwIP's TCP timer re-arms relative to "now", so it fires once per
	 * sys_check_timeouts() however far the clock jumps: step by its
	 * interval.  2 MSL is 120 s (6000 slow ticks); 30000 steps is 300 s.
	 * The timer stops itself one tick after the last pcb is gone.
	 */
	for (int i = 0; i < 30000 && isotcp_memp_in_use() != 0; i++) {
		atomic_fetch_add(&clock_skew_ms, TCP_TMR_INTERVAL);
		link_pump();
		sys_check_timeouts();
	}
	link_pump();
	netif_remove(&side_a.netif);
	netif_remove(&side_b.netif);
	for (struct tcp_pcb *p = tcp_bound_pcbs; p; p = p->next)
		fprintf(stderr, "bound pcb state %d port %u\n", p->state, p->local_port);
	for (struct tcp_pcb *p = tcp_active_pcbs; p; p = p->next)
		fprintf(stderr, "active pcb state %d port %u\n", p->state, p->local_port);
	for (struct tcp_pcb *p = tcp_tw_pcbs; p; p = p->next)
		fprintf(stderr, "time-wait pcb port %u\n", p->local_port);
	if (getenv("ISOBE_DUMP")) {
		const struct memp_desc *d = memp_pools[MEMP_TCP_PCB];
		u8_t *m = (u8_t *)LWIP_MEM_ALIGN(d->base);
		for (u32_t i = 0; i < d->num; i++, m += MEMP_SIZE + d->size) {
			bool fr = false;
			for (struct memp *f = *d->tab; f; f = f->next)
				if ((u8_t *)f == m) { fr = true; break; }
			if (!fr) {
				struct tcp_pcb *p = (struct tcp_pcb *)(m + MEMP_SIZE);
				fprintf(stderr, "LEAK pcb state %d flags %x lport %u rport %u arg %p unacked %p unsent %p\n", p->state, p->flags, p->local_port, p->remote_port, p->callback_arg, (void*)p->unacked, (void*)p->unsent);
			}
		}
	}
	atomic_store(&leak_memp, isotcp_memp_in_use());
	for (int i = 0; i < MEMP_MAX; i++)
		if (lwip_stats.memp[i] && lwip_stats.memp[i]->used)
			fprintf(stderr, "pool %d: %u used\n", i,
				(unsigned)lwip_stats.memp[i]->used);
	atomic_store(&leak_heap, isotcp_heap_in_use());
	return NULL;
}

static struct isod_backend_stats stats_now(void)
{
	struct isod_backend_stats s;

	pthread_mutex_lock(&pub_lock);
	s = pub_stats;
	pthread_mutex_unlock(&pub_lock);
	return s;
}

static struct isod_backend_stats stats_small(void)
{
	struct isod_backend_stats s;

	pthread_mutex_lock(&pub_lock);
	s = pub_stats_small;
	pthread_mutex_unlock(&pub_lock);
	return s;
}

/* Poll a condition the stack thread publishes, with a generous bound. */
static bool eventually(bool (*cond)(void *), void *arg, int seconds)
{
	for (long i = 0; i < seconds * 10000L; i++) {
		if (cond(arg))
			return true;
		usleep(100);
	}
	return cond(arg);
}

/* ---- Helpers ---------------------------------------------------------------- */

static struct sockaddr_in sin_of(int last, uint16_t port)
{
	struct sockaddr_in s = { .sin_family = AF_INET, .sin_port = htons(port) };

	s.sin_addr.s_addr = htonl((198u << 24) | (18u << 16) | (uint32_t)last);
	return s;
}

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

#define FNV0 0xcbf29ce484222325ull

static void fill(uint64_t *state, uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		*state ^= *state << 13;
		*state ^= *state >> 7;
		*state ^= *state << 17;
		p[i] = (uint8_t)*state;
	}
}

static int listener(struct isosock_app *app, uint16_t port)
{
	struct sockaddr_in sa = sin_of(2, port);
	int s = isosock_socket(app, AF_INET, SOCK_STREAM, 0);

	assert_true(s > 0);
	assert_int_equal(isosock_bind(app, s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(isosock_listen(app, s, 8), 0);
	return s;
}

static int connector(struct isosock_app *app, uint16_t port)
{
	struct sockaddr_in sa = sin_of(2, port);
	int s = isosock_socket(app, AF_INET, SOCK_STREAM, 0);

	assert_true(s > 0);
	assert_int_equal(isosock_connect(app, s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return s;
}

struct stream_job {
	struct isosock_app *app;
	int s;
	size_t bytes;
	uint64_t seed, hash;
	size_t chunk;
	size_t done;
	int err;
	bool close_after;
};

static void *sender(void *p)
{
	struct stream_job *j = p;
	uint8_t buf[16384];

	j->hash = FNV0;
	while (j->done < j->bytes) {
		size_t n = j->bytes - j->done < j->chunk ? j->bytes - j->done : j->chunk;
		ssize_t k;

		fill(&j->seed, buf, n);
		j->hash = fnv(j->hash, buf, n);
		for (size_t off = 0; off < n; off += (size_t)k) {
			k = isosock_send(j->app, j->s, buf + off, n - off, 0);
			if (k <= 0) {
				j->err = (int)k;
				return NULL;
			}
		}
		j->done += n;
	}
	if (j->close_after)
		j->err = isosock_close(j->app, j->s);
	return NULL;
}

static void *receiver(void *p)
{
	struct stream_job *j = p;
	uint8_t buf[16384];

	j->hash = FNV0;
	for (;;) {
		size_t want = j->chunk < sizeof(buf) ? j->chunk : sizeof(buf);
		ssize_t k = isosock_recv(j->app, j->s, buf, want, 0);

		if (k < 0) {
			j->err = (int)k;
			return NULL;
		}
		if (k == 0)
			return NULL;
		j->hash = fnv(j->hash, buf, (size_t)k);
		j->done += (size_t)k;
		if (j->bytes != 0 && j->done == j->bytes)
			return NULL;
	}
}

static uint64_t expect_hash(uint64_t seed, size_t bytes)
{
	static uint8_t buf[65536];
	uint64_t h = FNV0;

	while (bytes > 0) {
		size_t n = bytes < sizeof(buf) ? bytes : sizeof(buf);

		fill(&seed, buf, n);
		h = fnv(h, buf, n);
		bytes -= n;
	}
	return h;
}

/* ---- Fixture: two applications ------------------------------------------- */

struct apps {
	struct isosock_app *cli, *srv;
};

static bool apps_are(void *arg);

static int apps_setup(void **state)
{
	static struct apps a;

	int rc;

	if ((rc = isosock_app_attach(&a.cli, ctl_path)) < 0 ||
	    (rc = isosock_app_attach(&a.srv, ctl_path)) < 0) {
		print_error("setup: attach: %s\n", strerror(-rc));
		return -1;
	}
	if (!eventually(apps_are, (void *)(uintptr_t)2, 5)) {
		print_error("setup: the stack counts %u applications, not 2\n",
			    atomic_load(&pub_apps));
		return -1;
	}
	*state = &a;
	return 0;
}

static bool no_open_sockets(void *arg)
{
	(void)arg;
	return atomic_load(&pub_open) == 0;
}

static bool apps_are(void *arg);

static int apps_teardown(void **state)
{
	struct apps *a = *state;

	isosock_app_detach(a->cli);
	isosock_app_detach(a->srv);
	return eventually(no_open_sockets, NULL, 5) &&
	       eventually(apps_are, (void *)(uintptr_t)0, 5) ? 0 : -1;
}

/* ---- Tests ------------------------------------------------------------------- */

static void test_connect_transfer_both_ways(void **state)
{
	struct apps *a = *state;
	const size_t bytes = 12u << 20;
	int l = listener(a->srv, PORT_BASE + 1);
	int c = connector(a->cli, PORT_BASE + 1);
	struct sockaddr_in peer;
	socklen_t plen = sizeof(peer);
	int s = isosock_accept(a->srv, l, (struct sockaddr *)&peer, &plen, 0);
	struct stream_job up_tx = { a->cli, c, bytes, 11, 0, 16384, 0, 0, false };
	struct stream_job up_rx = { a->srv, s, bytes, 0, 0, 16384, 0, 0, false };
	struct stream_job dn_tx = { a->srv, s, bytes, 22, 0, 9000, 0, 0, false };
	struct stream_job dn_rx = { a->cli, c, bytes, 0, 0, 7000, 0, 0, false };
	pthread_t t[4];

	assert_true(s > 0);
	assert_int_equal(plen, sizeof(peer));
	{
		struct sockaddr_in me;
		socklen_t mlen = sizeof(me);

		assert_int_equal(isosock_getsockname(a->cli, c, (struct sockaddr *)&me, &mlen), 0);
		assert_int_equal(me.sin_addr.s_addr, peer.sin_addr.s_addr);
		assert_int_equal(me.sin_port, peer.sin_port);
	}
	pthread_create(&t[0], NULL, sender, &up_tx);
	pthread_create(&t[1], NULL, receiver, &up_rx);
	pthread_create(&t[2], NULL, sender, &dn_tx);
	pthread_create(&t[3], NULL, receiver, &dn_rx);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(up_tx.err, 0);
	assert_int_equal(up_rx.err, 0);
	assert_int_equal(dn_tx.err, 0);
	assert_int_equal(dn_rx.err, 0);
	assert_int_equal(up_rx.done, bytes);
	assert_int_equal(dn_rx.done, bytes);
	assert_true(up_rx.hash == expect_hash(11, bytes));
	assert_true(dn_rx.hash == expect_hash(22, bytes));
	/* orderly close: EOF on the other side */
	assert_int_equal(isosock_shutdown(a->cli, c, SHUT_WR), 0);
	{
		uint8_t b;

		assert_int_equal(isosock_recv(a->srv, s, &b, 1, 0), 0);
	}
	assert_int_equal(isosock_close(a->cli, c), 0);
	assert_int_equal(isosock_close(a->srv, s), 0);
	assert_int_equal(isosock_close(a->srv, l), 0);
	print_message("transfer: %zu bytes each way\n", bytes);
}

static bool no_last_ack(void *arg)
{
	(void)arg;
	return atomic_load(&pub_lastack) == 0;
}

/* Both sides half-close in turn: each sees the other's data, then EOF;
 * the side whose FIN completes the connection (LAST_ACK) sees a clean
 * end, not an error. */
static void test_half_close_both_ways(void **state)
{
	struct apps *a = *state;
	int l = listener(a->srv, PORT_BASE + 7);
	int c = connector(a->cli, PORT_BASE + 7);
	int s = isosock_accept(a->srv, l, NULL, NULL, 0);
	char buf[16];
	int err = -1;
	socklen_t elen = sizeof(err);
	struct sockaddr_in me;
	socklen_t mlen = sizeof(me);

	assert_true(s > 0);
	assert_int_equal(isosock_send(a->cli, c, "hello", 5, 0), 5);
	assert_int_equal(isosock_shutdown(a->cli, c, SHUT_WR), 0);
	assert_int_equal(isosock_recv(a->srv, s, buf, sizeof(buf), MSG_WAITALL), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(isosock_recv(a->srv, s, buf, sizeof(buf), 0), 0);
	assert_int_equal(isosock_send(a->srv, s, "world!", 6, 0), 6);
	assert_int_equal(isosock_shutdown(a->srv, s, SHUT_WR), 0);
	assert_int_equal(isosock_recv(a->cli, c, buf, sizeof(buf), MSG_WAITALL), 6);
	assert_memory_equal(buf, "world!", 6);
	assert_int_equal(isosock_recv(a->cli, c, buf, sizeof(buf), 0), 0);
	/* the server's FIN is acknowledged: its pcb left LAST_ACK */
	assert_true(eventually(no_last_ack, NULL, 5));
	assert_int_equal(isosock_recv(a->srv, s, buf, sizeof(buf), 0), 0);
	assert_int_equal(isosock_getsockopt(a->srv, s, SOL_SOCKET, SO_ERROR, &err, &elen), 0);
	assert_int_equal(err, 0);
	assert_int_equal(isosock_poll(a->srv, s, POLLIN | POLLOUT) & POLLERR, 0);
	assert_int_equal(isosock_poll(a->cli, c, POLLIN | POLLOUT) & POLLERR, 0);
	assert_int_equal(isosock_send(a->srv, s, "x", 1, 0), -EPIPE);
	assert_int_equal(isosock_getsockname(a->srv, s, (struct sockaddr *)&me, &mlen), 0);
	assert_int_equal(ntohs(me.sin_port), PORT_BASE + 7);
	assert_int_equal(isosock_close(a->cli, c), 0);
	assert_int_equal(isosock_close(a->srv, s), 0);
	assert_int_equal(isosock_close(a->srv, l), 0);
}

static void test_aggregation(void **state)
{
	struct apps *a = *state;
	int l = listener(a->srv, PORT_BASE + 2);
	int c = connector(a->cli, PORT_BASE + 2);
	int s = isosock_accept(a->srv, l, NULL, NULL, 0);
	struct isosock_stats before, after;
	struct isod_backend_stats sb = stats_now(), sa;
	struct stream_job rx = { a->srv, s, 0, 0, 0, 16384, 0, 0, false };
	struct stream_job tx = { a->cli, c, 0, 33, 0, 64, 0, 0, false };
	const unsigned calls = 20000;
	pthread_t t;

	assert_true(s > 0);
	rx.bytes = (size_t)calls * 64;
	tx.bytes = (size_t)calls * 64;
	isosock_app_stats(a->cli, &before);
	pthread_create(&t, NULL, receiver, &rx);
	sender(&tx);
	pthread_join(t, NULL);
	isosock_app_stats(a->cli, &after);
	sa = stats_now();
	assert_int_equal(tx.err, 0);
	assert_int_equal(rx.err, 0);
	assert_int_equal(rx.done, tx.bytes);
	assert_true(rx.hash == expect_hash(33, tx.bytes));
	print_message("aggregation: %llu send calls, %llu SEND commands posted, %llu seen by the stack\n",
		      (unsigned long long)(after.send_calls - before.send_calls),
		      (unsigned long long)(after.send_posts - before.send_posts),
		      (unsigned long long)(sa.sends_seen - sb.sends_seen));
	assert_int_equal(after.send_calls - before.send_calls, calls);
	assert_true(after.send_posts - before.send_posts < calls);
	isosock_close(a->cli, c);
	isosock_close(a->srv, s);
	isosock_close(a->srv, l);
}

/* Every watch begun since *arg was taken has stopped. */
static bool watches_all_stopped(void *arg)
{
	const struct isod_backend_stats *s0 = arg;
	struct isod_backend_stats s = stats_now();

	return s.tx_watch_stops - s0->tx_watch_stops == s.tx_watches - s0->tx_watches;
}

/*
 * SENDs the stack does not need (txwatch.c): after a SEND the stack
 * watches tx_prod, and send() posts none while it does; every byte still
 * arrives, in order.  Once the bytes stop for longer than the watch
 * lasts, a send() posts a SEND again.  Not for cut-through pairs (their
 * bytes move by the cut path, which needs its SENDs).
 */
static void test_tx_watch(void **state)
{
	struct apps *a = *state;
	int l = listener(a->srv, PORT_BASE + 11);
	int c = connector(a->cli, PORT_BASE + 11);
	int s = isosock_accept(a->srv, l, NULL, NULL, 0);
	struct isod_backend_stats sb = stats_now(), sa;
	struct isosock_stats k0, k1, k2;
	struct stream_job rx = { a->srv, s, 0, 0, 0, 16384, 0, 0, false };
	struct stream_job tx = { a->cli, c, 0, 44, 0, 64, 0, 0, false };
	const unsigned calls = 20000;
	uint8_t b = 0x5a, got = 0;
	pthread_t t;

	assert_true(s > 0);
	if (getenv("ISOD_TEST_CUT_THROUGH") != NULL &&
	    strcmp(getenv("ISOD_TEST_CUT_THROUGH"), "on") == 0)
		skip();
	rx.bytes = (size_t)calls * 64;
	tx.bytes = (size_t)calls * 64;
	isosock_app_stats(a->cli, &k0);
	pthread_create(&t, NULL, receiver, &rx);
	sender(&tx);
	pthread_join(t, NULL);
	isosock_app_stats(a->cli, &k1);
	sa = stats_now();
	print_message("watch: %u send() calls, %llu SENDs posted, %llu skipped; the stack "
		      "began %llu watches and took bytes %llu times without a SEND\n", calls,
		      (unsigned long long)(k1.send_posts - k0.send_posts),
		      (unsigned long long)(k1.send_skips - k0.send_skips),
		      (unsigned long long)(sa.tx_watches - sb.tx_watches),
		      (unsigned long long)(sa.tx_watch_takes - sb.tx_watch_takes));
	assert_int_equal(tx.err, 0);
	assert_int_equal(rx.err, 0);
	assert_int_equal(rx.done, tx.bytes);
	assert_true(rx.hash == expect_hash(44, tx.bytes));
	assert_true(k1.send_skips > k0.send_skips);
	assert_true(sa.tx_watch_takes > sb.tx_watch_takes);
	/* Idle past the watch (txwatch.c): it stops, the next send() posts
	 * a SEND, and arrives. */
	assert_true(eventually(watches_all_stopped, &sb, 5));
	assert_int_equal(isosock_send(a->cli, c, &b, 1, 0), 1);
	isosock_app_stats(a->cli, &k2);
	assert_int_equal(k2.send_posts - k1.send_posts, 1);
	assert_int_equal(isosock_recv(a->srv, s, &got, 1, 0), 1);
	assert_int_equal(got, b);
	isosock_close(a->cli, c);
	isosock_close(a->srv, s);
	isosock_close(a->srv, l);
}

static void *slow_receiver(void *p)
{
	struct stream_job *j = p;
	uint8_t buf[4096];

	j->hash = FNV0;
	while (j->done < j->bytes) {
		ssize_t k = isosock_recv(j->app, j->s, buf, sizeof(buf), 0);

		if (k <= 0) {
			j->err = k < 0 ? (int)k : -EPIPE;
			return NULL;
		}
		j->hash = fnv(j->hash, buf, (size_t)k);
		j->done += (size_t)k;
		if ((j->done / 4096) % 64 == 0)
			usleep(2000);   /* a slow reader, not synchronisation */
	}
	return NULL;
}

static void test_slow_reader_and_close_in_flight(void **state)
{
	struct apps *a = *state;
	const size_t bytes = 3u << 20;
	int l = listener(a->srv, PORT_BASE + 3);
	int c = connector(a->cli, PORT_BASE + 3);
	int s = isosock_accept(a->srv, l, NULL, NULL, 0);
	struct stream_job tx = { a->cli, c, bytes, 44, 0, 16384, 0, 0, true };
	struct stream_job rx = { a->srv, s, bytes, 0, 0, 4096, 0, 0, false };
	pthread_t t;
	uint8_t b;

	assert_true(s > 0);
	pthread_create(&t, NULL, slow_receiver, &rx);
	sender(&tx);          /* sends everything and closes at once */
	pthread_join(t, NULL);
	assert_int_equal(tx.err, 0);
	assert_int_equal(rx.err, 0);
	assert_int_equal(rx.done, bytes);
	assert_true(rx.hash == expect_hash(44, bytes));
	assert_int_equal(isosock_recv(a->srv, s, &b, 1, 0), 0);   /* EOF after all */
	isosock_close(a->srv, s);
	isosock_close(a->srv, l);
}

static void test_nonblocking(void **state)
{
	struct apps *a = *state;
	int l = listener(a->srv, PORT_BASE + 4);
	struct sockaddr_in sa = sin_of(2, PORT_BASE + 4);
	int c = isosock_socket(a->cli, AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct isosock_pollfd pf;
	int s, err = -1;
	socklen_t elen = sizeof(err);
	uint8_t buf[65536];
	ssize_t k;
	size_t sent = 0;

	assert_true(c > 0);
	assert_int_equal(isosock_set_nonblock(a->srv, l, true), 0);
	assert_int_equal(isosock_accept(a->srv, l, NULL, NULL, 0), -EAGAIN);
	assert_int_equal(isosock_connect(a->cli, c, (struct sockaddr *)&sa, sizeof(sa)), -EINPROGRESS);
	pf = (struct isosock_pollfd){ .sock = c, .events = POLLOUT };
	assert_int_equal(isosock_wait(a->cli, &pf, 1, 5000000000LL), 1);
	assert_true(pf.revents & POLLOUT);
	assert_int_equal(isosock_getsockopt(a->cli, c, SOL_SOCKET, SO_ERROR, &err, &elen), 0);
	assert_int_equal(err, 0);
	assert_int_equal(isosock_connect(a->cli, c, (struct sockaddr *)&sa, sizeof(sa)), -EISCONN);
	pf = (struct isosock_pollfd){ .sock = l, .events = POLLIN };
	assert_int_equal(isosock_wait(a->srv, &pf, 1, 5000000000LL), 1);
	s = isosock_accept(a->srv, l, NULL, NULL, 0);
	assert_true(s > 0);
	/* nothing to read yet */
	assert_int_equal(isosock_recv(a->cli, c, buf, sizeof(buf), 0), -EAGAIN);
	assert_int_equal(isosock_recv(a->srv, s, buf, sizeof(buf), MSG_DONTWAIT), -EAGAIN);
	/* fill until EAGAIN: the server does not read */
	memset(buf, 0x5a, sizeof(buf));
	while ((k = isosock_send(a->cli, c, buf, sizeof(buf), 0)) > 0)
		sent += (size_t)k;
	assert_int_equal(k, -EAGAIN);
	assert_true(sent >= 16 * 1024);      /* at least the TX ring (16 KiB at the start) */
	/* MSG_PEEK then read it all back */
	pf = (struct isosock_pollfd){ .sock = s, .events = POLLIN };
	assert_int_equal(isosock_wait(a->srv, &pf, 1, 5000000000LL), 1);
	k = isosock_recv(a->srv, s, buf, 16, MSG_PEEK);
	assert_true(k > 0);
	assert_int_equal(buf[0], 0x5a);
	{
		size_t got = 0;

		while (got < sent) {
			k = isosock_recv(a->srv, s, buf, sizeof(buf), 0);
			assert_true(k > 0);
			got += (size_t)k;
		}
		assert_int_equal(got, sent);
	}
	isosock_close(a->cli, c);
	isosock_close(a->srv, s);
	isosock_close(a->srv, l);
}

static bool open_is(void *arg)
{
	return atomic_load(&pub_open) == (unsigned)(uintptr_t)arg;
}

/*
 * Connections wait in the backlog; a non-blocking listener must report
 * POLLIN and accept every one of them before EAGAIN.  EV_INCOMING's count
 * and the ACCEPT replies are applied in ring order: a reply counted after
 * a later EV_INCOMING had been applied hid a waiting connection from
 * poll/epoll until another arrived (redis and nginx stalled).
 */
#define BACKLOG_N 10

static void test_backlog_count(void **state)
{
	struct apps *a = *state;
	int l = listener(a->srv, PORT_BASE + 10);
	int c[BACKLOG_N], s[BACKLOG_N];

	assert_int_equal(isosock_listen(a->srv, l, BACKLOG_N), 0);
	for (int i = 0; i < BACKLOG_N; i++)
		c[i] = connector(a->cli, PORT_BASE + 10);
	/* the listener, the clients and their children in the backlog */
	assert_true(eventually(open_is, (void *)(uintptr_t)(1 + 2 * BACKLOG_N), 5));
	assert_int_equal(isosock_set_nonblock(a->srv, l, true), 0);
	for (int i = 0; i < BACKLOG_N; i++) {
		assert_true(isosock_poll(a->srv, l, POLLIN) & POLLIN);
		s[i] = isosock_accept(a->srv, l, NULL, NULL, 0);
		assert_true(s[i] > 0);
	}
	assert_int_equal(isosock_poll(a->srv, l, POLLIN), 0);
	assert_int_equal(isosock_accept(a->srv, l, NULL, NULL, 0), -EAGAIN);
	for (int i = 0; i < BACKLOG_N; i++) {
		isosock_close(a->cli, c[i]);
		isosock_close(a->srv, s[i]);
	}
	isosock_close(a->srv, l);
}

/*
 * SO_REUSEPORT (daemon/backend/reuseport.c): a listener in each of the two
 * applications on one port (same uid: both are this process) share its
 * connections; a socket without the option gets EADDRINUSE; when the one
 * holding the lwIP listener (the first to listen) closes, the other takes
 * every new connection, and the listener passed to it.
 */
#define RP_CONNS 32

static int rp_listener(struct isosock_app *app, uint16_t port, bool reuseport, int bind_rc)
{
	struct sockaddr_in sa = sin_of(2, port);
	int one = 1, v = 0, s = isosock_socket(app, AF_INET, SOCK_STREAM, 0);
	socklen_t vlen = sizeof(v);

	assert_true(s > 0);
	if (reuseport) {
		assert_int_equal(isosock_setsockopt(app, s, SOL_SOCKET, SO_REUSEPORT, &one,
						    sizeof(one)), 0);
		assert_int_equal(isosock_getsockopt(app, s, SOL_SOCKET, SO_REUSEPORT, &v, &vlen), 0);
		assert_int_equal(v, 1);
	}
	assert_int_equal(isosock_bind(app, s, (struct sockaddr *)&sa, sizeof(sa)), bind_rc);
	if (bind_rc != 0)
		return s;
	assert_int_equal(isosock_listen(app, s, 2 * RP_CONNS), 0);
	assert_int_equal(isosock_set_nonblock(app, s, true), 0);
	return s;
}

/* RP_CONNS connections from app2, one at a time (the applications hold
 * few sockets here), each accepted from l1 (app1; -1: closed) or l2
 * (app2) within 10 s and closed; n[0], n[1] count where they went. */
static void rp_connect(struct isosock_app *app1, int l1, struct isosock_app *app2, int l2,
		       uint16_t port, int n[2])
{
	for (int c = 0; c < RP_CONNS; c++) {
		int s = connector(app2, port), k = -EAGAIN;

		for (long i = 0; k < 0 && i < 100000; i++) {
			k = l1 >= 0 ? isosock_accept(app1, l1, NULL, NULL, 0) : -EAGAIN;
			if (k > 0) {
				n[0]++;
				isosock_close(app1, k);
				break;
			}
			k = isosock_accept(app2, l2, NULL, NULL, 0);
			if (k > 0) {
				n[1]++;
				isosock_close(app2, k);
				break;
			}
			usleep(100);
		}
		assert_true(k > 0);
		isosock_close(app2, s);
	}
}

static bool handovers_are(void *arg)
{
	return stats_now().reuseport_handovers == (uint64_t)(uintptr_t)arg;
}

static void test_reuseport(void **state)
{
	struct apps *a = *state;
	const uint16_t port = PORT_BASE + 12;
	uint64_t h0 = stats_now().reuseport_handovers;
	int l1 = rp_listener(a->srv, port, true, 0);
	int l2 = rp_listener(a->cli, port, true, 0);
	int plain = rp_listener(a->srv, port, false, -EADDRINUSE);
	int n[2] = { 0, 0 }, m[2] = { 0, 0 };

	isosock_close(a->srv, plain);
	rp_connect(a->srv, l1, a->cli, l2, port, n);
	print_message("reuseport: %d and %d of %d\n", n[0], n[1], RP_CONNS);
	assert_true(n[0] > 0 && n[1] > 0);
	isosock_close(a->srv, l1);
	assert_true(eventually(handovers_are, (void *)(uintptr_t)(h0 + 1), 5));
	rp_connect(a->srv, -1, a->cli, l2, port, m);
	assert_int_equal(m[1], RP_CONNS);
	isosock_close(a->cli, l2);
}

static void test_rst_refused_eof(void **state)
{
	struct apps *a = *state;
	struct sockaddr_in sa = sin_of(2, PORT_BASE + 99);
	int c = isosock_socket(a->cli, AF_INET, SOCK_STREAM, 0);
	struct linger lg = { 1, 0 };
	uint8_t b;
	int l, s;

	assert_int_equal(isosock_connect(a->cli, c, (struct sockaddr *)&sa, sizeof(sa)), -ECONNREFUSED);
	isosock_close(a->cli, c);

	l = listener(a->srv, PORT_BASE + 5);
	c = connector(a->cli, PORT_BASE + 5);
	s = isosock_accept(a->srv, l, NULL, NULL, 0);
	assert_true(s > 0);
	assert_int_equal(isosock_setsockopt(a->srv, s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
	assert_int_equal(isosock_close(a->srv, s), 0);   /* RST */
	assert_int_equal(isosock_recv(a->cli, c, &b, 1, 0), -ECONNRESET);
	assert_int_equal(isosock_send(a->cli, c, &b, 1, 0), -EPIPE);
	isosock_close(a->cli, c);
	isosock_close(a->srv, l);
}

static bool apps_are(void *arg)
{
	return atomic_load(&pub_apps) == (unsigned)(uintptr_t)arg;
}

/* What the peer reads until the end: 0 (EOF) or -errno; *got counts it. */
static ssize_t read_to_end(struct isosock_app *app, int s, size_t *got)
{
	uint8_t buf[4096];

	*got = 0;
	for (;;) {
		ssize_t k = isosock_recv(app, s, buf, sizeof(buf), 0);

		if (k <= 0)
			return k;
		*got += (size_t)k;
	}
}

/*
 * The application dies (its control socket hangs up) with a connection
 * open: the stack closes it as the kernel closes a dead process's fds.
 * With data still to send: every byte, then a FIN.  With data received
 * and not read: a RST.
 */
static void test_app_dies(void **state)
{
	struct apps *a = *state;
	struct isosock_app *victim;
	int l = listener(a->srv, PORT_BASE + 6);
	int c, s;
	uint8_t buf[4096] = { 0 };
	size_t got;
	unsigned apps0 = atomic_load(&pub_apps);
	struct isod_backend_stats s0 = stats_now();

	assert_int_equal(isosock_app_attach(&victim, ctl_path), 0);
	assert_true(eventually(apps_are, (void *)(uintptr_t)(apps0 + 1), 5));
	c = connector(victim, PORT_BASE + 6);
	s = isosock_accept(a->srv, l, NULL, NULL, 0);
	assert_true(s > 0);
	assert_int_equal(isosock_send(victim, c, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	isosock_app_detach(victim);     /* as if killed: the control socket hangs up */
	assert_true(eventually(apps_are, (void *)(uintptr_t)apps0, 2));
	assert_int_equal(read_to_end(a->srv, s, &got), 0);
	assert_int_equal(got, sizeof(buf));
	assert_true(stats_now().stack_closes > s0.stack_closes);
	isosock_close(a->srv, s);

	/* The same with a byte it never read. */
	assert_int_equal(isosock_app_attach(&victim, ctl_path), 0);
	c = connector(victim, PORT_BASE + 6);
	s = isosock_accept(a->srv, l, NULL, NULL, 0);
	assert_true(s > 0);
	assert_int_equal(isosock_send(a->srv, s, buf, 1, 0), 1);
	assert_int_equal(isosock_recv(victim, c, buf, 1, MSG_PEEK), 1);
	isosock_app_detach(victim);
	assert_int_equal(read_to_end(a->srv, s, &got), -ECONNRESET);
	assert_true(eventually(apps_are, (void *)(uintptr_t)apps0, 2));
	isosock_close(a->srv, s);
	isosock_close(a->srv, l);
}

static bool procs_watched_reach(void *arg)
{
	return stats_now().procs_watched >= (uint64_t)(uintptr_t)arg;
}

static bool stack_closes_above(void *arg)
{
	return stats_now().stack_closes > (uint64_t)(uintptr_t)arg;
}

/*
 * A process of the application dies holding the last claim on a
 * connection while the others live on and make no call: the stack sees
 * the death (pidfd) and closes it (every byte, then a FIN), and the
 * application later finds it closed without sending CLOSE.
 */
static void test_member_dies(void **state)
{
	struct apps *a = *state;
	struct isosock_app *app;
	int l = listener(a->srv, PORT_BASE + 7);
	int c, s, k, go[2];
	uint8_t buf[4096] = { 0 };
	size_t got;
	struct timespec t0, t1;
	struct isod_backend_stats s0 = stats_now();
	pid_t pid;

	assert_int_equal(isosock_app_attach(&app, ctl_path), 0);
	c = connector(app, PORT_BASE + 7);
	s = isosock_accept(a->srv, l, NULL, NULL, 0);
	assert_true(s > 0);
	assert_int_equal(pipe(go), 0);
	k = isosock_app_fork_prepare(app);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char b;

		close(go[1]);
		isosock_app_fork_child(app, k);   /* tells the stack its pid */
		_exit(read(go[0], &b, 1) == 1 ? 0 : 1);   /* no close(): as if killed */
	}
	isosock_app_fork_parent(app, k, false);
	assert_int_equal(isosock_send(app, c, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	assert_int_equal(isosock_close(app, c), 0);   /* the child holds it still */
	/* ATTACH and the child's CTL_WAKEFD */
	assert_true(eventually(procs_watched_reach, (void *)(uintptr_t)(s0.procs_watched + 2), 5));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(write(go[1], "x", 1), 1);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	/* The parent (this thread, on `app`) stays out of the shim. */
	assert_int_equal(read_to_end(a->srv, s, &got), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(got, sizeof(buf));
	/* the published stats may trail the FIN (paired: cut-through) */
	assert_true(eventually(stack_closes_above, (void *)(uintptr_t)s0.stack_closes, 5));
	print_message("member dies: FIN %.1f ms after the exit\n",
		      (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	/* The id is reused only once the application took EV_CLOSED: a new
	 * socket of the parent works. */
	c = connector(app, PORT_BASE + 7);
	assert_true(c > 0);
	assert_int_equal(isosock_close(app, c), 0);
	close(go[0]);
	close(go[1]);
	isosock_close(a->srv, s);
	s = isosock_accept(a->srv, l, NULL, NULL, 0);
	isosock_close(a->srv, s);
	isosock_close(a->srv, l);
	isosock_app_detach(app);
	/* The parent's own sweep (socket() above) may have posted a CLOSE
	 * before EV_CLOSED came (the FIN is out before the close completes):
	 * answered -EBADF, never counted as a command on a bad slot. */
	assert_true(stats_now().bad_slot == s0.bad_slot);
}

static void test_emfile(void **state)
{
	struct apps *a = *state;
	int s[32], n = 0, rc;

	while ((rc = isosock_socket(a->cli, AF_INET, SOCK_STREAM, 0)) > 0)
		s[n++] = rc;
	assert_int_equal(rc, -EMFILE);
	assert_int_equal(n, 15);
	assert_int_equal(isosock_socket(a->cli, AF_INET, SOCK_DGRAM, 0), -EMFILE);
	for (int i = 0; i < n; i++)
		assert_int_equal(isosock_close(a->cli, s[i]), 0);
	/* slots come back once reaped */
	for (int i = 0; i < 1000 && (rc = isosock_socket(a->cli, AF_INET, SOCK_STREAM, 0)) < 0; i++)
		usleep(1000);
	assert_true(rc > 0);
	isosock_close(a->cli, rc);
}

/* ---- UDP ------------------------------------------------------------------------ */

static size_t dgram_size(unsigned i)
{
	static const size_t big[] = { 0, 1, 1472, 1473, 8972, 9000, 30000, 65507 };

	return i < 8 ? big[i] : (i * 7919u) % 12000u;
}

/* Datagrams both ways with boundaries, sources and checksums checked;
 * bursts of 16 then an echo, so the RX ring never overflows. */
static void test_udp(void **state)
{
	struct apps *a = *state;
	struct sockaddr_in srv = sin_of(2, PORT_BASE + 20), from, me;
	socklen_t flen, mlen = sizeof(me);
	int u = isosock_socket(a->srv, AF_INET, SOCK_DGRAM, 0);
	int c = isosock_socket(a->cli, AF_INET, SOCK_DGRAM, IPPROTO_UDP);
	static uint8_t buf[70000], out[70000];
	struct isod_backend_stats s0 = stats_now();
	uint64_t seed = 77, total = 0;
	uint32_t src = 0;
	int v = 0;
	socklen_t vlen = sizeof(v);
	const unsigned n = 256;

	assert_true(u > 0 && c > 0);
	assert_int_equal(isosock_getsockopt(a->cli, c, SOL_SOCKET, SO_TYPE, &v, &vlen), 0);
	assert_int_equal(v, SOCK_DGRAM);
	assert_int_equal(isosock_bind(a->srv, u, (struct sockaddr *)&srv, sizeof(srv)), 0);
	assert_int_equal(isosock_listen(a->srv, u, 1), -EOPNOTSUPP);
	assert_int_equal(isosock_recv(a->srv, u, buf, 1, MSG_DONTWAIT), -EAGAIN);
	assert_int_equal(isosock_send(a->cli, c, buf, 1, 0), -EDESTADDRREQ);
	assert_int_equal(isosock_sendto(a->cli, c, buf, 65508, 0, (struct sockaddr *)&srv,
					sizeof(srv)), -EMSGSIZE);
	for (unsigned i = 0; i < n; i += 16) {
		uint64_t hs[16];
		size_t sz[16];

		for (unsigned j = 0; j < 16; j++) {
			sz[j] = dgram_size(i + j);
			fill(&seed, out, sz[j]);
			hs[j] = fnv(FNV0, out, sz[j]);
			assert_int_equal(isosock_sendto(a->cli, c, out, sz[j], 0,
							(struct sockaddr *)&srv, sizeof(srv)),
					 (ssize_t)sz[j]);
		}
		if (i == 0)
			assert_int_equal(isosock_getsockname(a->cli, c, (struct sockaddr *)&me, &mlen), 0);
		for (unsigned j = 0; j < 16; j++) {
			ssize_t k;

			flen = sizeof(from);
			k = isosock_recvfrom(a->srv, u, buf, sizeof(buf), 0,
					     (struct sockaddr *)&from, &flen);
			assert_int_equal(k, (ssize_t)sz[j]);
			assert_true(fnv(FNV0, buf, (size_t)k) == hs[j]);
			assert_int_equal(flen, sizeof(from));
			/* the source lwIP routed from: one of the link's two */
			if (i == 0 && j == 0)
				src = from.sin_addr.s_addr;
			assert_true(src == sin_of(1, 0).sin_addr.s_addr ||
				    src == sin_of(2, 0).sin_addr.s_addr);
			assert_int_equal(from.sin_addr.s_addr, src);
			assert_int_equal(from.sin_port, me.sin_port);
			total += (uint64_t)k;
			/* echo it back to the sender's address */
			assert_int_equal(isosock_sendto(a->srv, u, buf, (size_t)k, 0,
							(struct sockaddr *)&from, flen), k);
		}
		for (unsigned j = 0; j < 16; j++) {
			ssize_t k = isosock_recv(a->cli, c, buf, sizeof(buf), 0);

			assert_int_equal(k, (ssize_t)sz[j]);
			assert_true(fnv(FNV0, buf, (size_t)k) == hs[j]);
		}
	}
	/* truncation: the rest of the datagram is gone, MSG_TRUNC tells */
	fill(&seed, out, 3000);
	assert_int_equal(isosock_sendto(a->cli, c, out, 3000, 0, (struct sockaddr *)&srv,
					sizeof(srv)), 3000);
	assert_int_equal(isosock_sendto(a->cli, c, "tail", 4, 0, (struct sockaddr *)&srv,
					sizeof(srv)), 4);
	{
		struct isosock_pollfd pf = { .sock = u, .events = POLLIN };

		assert_int_equal(isosock_wait(a->srv, &pf, 1, 5000000000LL), 1);
		assert_true(pf.revents & POLLIN);
	}
	assert_int_equal(isosock_recv(a->srv, u, buf, 100, MSG_PEEK), 100);
	assert_memory_equal(buf, out, 100);
	assert_int_equal(isosock_nread(a->srv, u), 3000);
	assert_int_equal(isosock_recv(a->srv, u, buf, 100, MSG_TRUNC), 3000);
	assert_memory_equal(buf, out, 100);
	assert_int_equal(isosock_recv(a->srv, u, buf, sizeof(buf), 0), 4);
	assert_memory_equal(buf, "tail", 4);
	/* connected: send() without an address, getpeername, then disconnect */
	assert_int_equal(isosock_connect(a->cli, c, (struct sockaddr *)&srv, sizeof(srv)), 0);
	{
		struct sockaddr_in peer;
		socklen_t plen = sizeof(peer);
		struct sockaddr unspec = { .sa_family = AF_UNSPEC };

		assert_int_equal(isosock_getpeername(a->cli, c, (struct sockaddr *)&peer, &plen), 0);
		assert_int_equal(peer.sin_port, srv.sin_port);
		mlen = sizeof(me);
		assert_int_equal(isosock_getsockname(a->cli, c, (struct sockaddr *)&me, &mlen), 0);
		assert_int_equal(me.sin_addr.s_addr, src);
		assert_int_equal(isosock_send(a->cli, c, "hi", 2, 0), 2);
		assert_int_equal(isosock_recv(a->srv, u, buf, sizeof(buf), 0), 2);
		assert_int_equal(isosock_connect(a->cli, c, &unspec, sizeof(unspec)), 0);
		assert_int_equal(isosock_send(a->cli, c, "hi", 2, 0), -EDESTADDRREQ);
	}
	assert_int_equal(stats_now().udp_rx_dropped, s0.udp_rx_dropped);
	print_message("udp: %u datagrams (0..65507 bytes, %llu bytes) each way, echoed, checksums match\n",
		      n, (unsigned long long)total);
	assert_int_equal(isosock_close(a->cli, c), 0);
	assert_int_equal(isosock_close(a->srv, u), 0);
}

/* A side's IPv6 address (2001:2:0:a::1 or 2001:2:0:b::1, stack_main). */
static struct sockaddr_in6 sin6_of(char side, uint16_t port)
{
	struct sockaddr_in6 s = { .sin6_family = AF_INET6, .sin6_port = htons(port) };

	s.sin6_addr.s6_addr[0] = 0x20;
	s.sin6_addr.s6_addr[1] = 0x01;
	s.sin6_addr.s6_addr[3] = 0x02;
	s.sin6_addr.s6_addr[7] = side == 'a' ? 0x0a : 0x0b;
	s.sin6_addr.s6_addr[15] = 1;
	return s;
}

/* ::ffff:198.18.0.last */
static struct sockaddr_in6 mapped_of(int last, uint16_t port)
{
	struct sockaddr_in6 s = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	struct sockaddr_in v4 = sin_of(last, port);

	s.sin6_addr.s6_addr[10] = s.sin6_addr.s6_addr[11] = 0xff;
	memcpy(&s.sin6_addr.s6_addr[12], &v4.sin_addr, 4);
	return s;
}

static bool in6_is(const struct sockaddr_in6 *x, const struct sockaddr_in6 *y)
{
	return memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

/*
 * AF_INET6 datagrams: a [::] socket reached over IPv6, over IPv4 from an
 * AF_INET6 client (::ffff:198.18.0.2) and from an AF_INET one, each
 * datagram echoed to the source recvfrom named; the sources as Linux
 * names them (an IPv6 address of the link, or ::ffff: one of its IPv4
 * ones) at the sender's port; sizes up to 65507 bytes (IPv6 fragments);
 * the echo's source at the client is the address it sent to.
 */
static void test_udp6(void **state)
{
	struct apps *a = *state;
	const uint16_t port = PORT_BASE + 21;
	struct sockaddr_in6 any = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	struct sockaddr_in6 to6 = sin6_of('b', port), tom = mapped_of(2, port);
	struct sockaddr_in to4 = sin_of(2, port);
	int u = isosock_socket(a->srv, AF_INET6, SOCK_DGRAM, 0);
	int c6 = isosock_socket(a->cli, AF_INET6, SOCK_DGRAM, 0);
	int c4 = isosock_socket(a->cli, AF_INET, SOCK_DGRAM, 0);
	static uint8_t buf[70000], out[70000];
	struct isod_backend_stats s0 = stats_now();
	uint64_t seed = 99, total = 0;
	const unsigned n = 48;

	assert_true(u > 0 && c6 > 0 && c4 > 0);
	assert_int_equal(isosock_bind(a->srv, u, (struct sockaddr *)&any, sizeof(any)), 0);
	for (unsigned i = 0; i < n; i++) {
		unsigned kind = i % 3;     /* 0: IPv6, 1: mapped, 2: AF_INET client */
		int c = kind == 2 ? c4 : c6;
		const struct sockaddr *to = kind == 0 ? (struct sockaddr *)&to6 :
					    kind == 1 ? (struct sockaddr *)&tom : (struct sockaddr *)&to4;
		socklen_t tl = kind == 2 ? sizeof(to4) : sizeof(to6);
		size_t sz = dgram_size(i);
		struct sockaddr_in6 from, me6, back;
		struct sockaddr_in me4;
		socklen_t fl = sizeof(from), ml6 = sizeof(me6), ml4 = sizeof(me4), bl = sizeof(back);
		uint64_t h;
		ssize_t k;

		fill(&seed, out, sz);
		h = fnv(FNV0, out, sz);
		assert_int_equal(isosock_sendto(a->cli, c, out, sz, 0, to, tl), (ssize_t)sz);
		k = isosock_recvfrom(a->srv, u, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
		assert_int_equal(k, (ssize_t)sz);
		assert_true(fnv(FNV0, buf, (size_t)k) == h);
		assert_int_equal(fl, sizeof(from));
		assert_int_equal(from.sin6_family, AF_INET6);
		if (kind == 0) {
			struct sockaddr_in6 la = sin6_of('a', 0), lb = sin6_of('b', 0);

			assert_true(in6_is(&from, &la) || in6_is(&from, &lb));
		} else {
			struct sockaddr_in6 m1 = mapped_of(1, 0), m2 = mapped_of(2, 0);

			assert_true(in6_is(&from, &m1) || in6_is(&from, &m2));
		}
		if (kind == 2) {
			assert_int_equal(isosock_getsockname(a->cli, c, (struct sockaddr *)&me4, &ml4), 0);
			assert_int_equal(from.sin6_port, me4.sin_port);
		} else {
			assert_int_equal(isosock_getsockname(a->cli, c, (struct sockaddr *)&me6, &ml6), 0);
			assert_int_equal(ml6, sizeof(me6));
			assert_int_equal(from.sin6_port, me6.sin6_port);
		}
		assert_int_equal(isosock_sendto(a->srv, u, buf, (size_t)k, 0,
						(struct sockaddr *)&from, fl), k);
		k = isosock_recvfrom(a->cli, c, buf, sizeof(buf), 0, (struct sockaddr *)&back, &bl);
		assert_int_equal(k, (ssize_t)sz);
		assert_true(fnv(FNV0, buf, (size_t)k) == h);
		if (kind != 2) {
			assert_int_equal(bl, sizeof(back));
			assert_true(in6_is(&back, kind == 0 ? &to6 : &tom));
			assert_int_equal(back.sin6_port, htons(port));
		}
		total += (uint64_t)k;
	}
	assert_int_equal(stats_now().udp_rx_dropped, s0.udp_rx_dropped);
	/* an IPv6 destination is not an AF_INET socket's */
	assert_int_equal(isosock_sendto(a->cli, c4, out, 1, 0, (struct sockaddr *)&to6,
					sizeof(to6)), -EAFNOSUPPORT);
	print_message("udp6: %u datagrams (0..65507 bytes, %llu bytes) over IPv6, mapped IPv4 "
		      "and IPv4 to one [::] socket, echoed, checksums and sources match\n",
		      n, (unsigned long long)total);
	assert_int_equal(isosock_close(a->cli, c6), 0);
	assert_int_equal(isosock_close(a->cli, c4), 0);
	assert_int_equal(isosock_close(a->srv, u), 0);
}

/* A hand-made application that speaks the protocol badly. */
/* Attaches to the back-end by hand, as the shim would, without its core:
 * tests that post raw commands.  Returns the control socket; *shm the
 * segment. */
static int raw_attach(struct isoshm_app **shm)
{
	struct sockaddr_un { sa_family_t f; char p[108]; } un = { AF_UNIX, { 0 } };
	struct isostack_ctl_attach req = {
		.hdr = { ISOSTACK_CTL_MAGIC, ISOSTACK_CTL_VERSION, ISOSTACK_CTL_ATTACH, sizeof(req), 0 },
		.abi_version = ISOSTACK_SHM_ABI_VERSION, .features = ISOSTACK_SHM_FEATURES,
	};
	struct isostack_ctl_attach_reply rep;
	char cbuf[CMSG_SPACE(2 * sizeof(int))];
	struct iovec iov = { &rep, sizeof(rep) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			      .msg_controllen = sizeof(cbuf) };
	int fd, efd, fds[2];

	strcpy(un.p, ctl_path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&un, sizeof(un)), 0);
	efd = eventfd(0, EFD_NONBLOCK);   /* the only kind of wake fd accepted */
	assert_int_equal(isoshm_send_fd(fd, efd, &req, sizeof(req)), 0);
	close(efd);
	assert_int_equal(recvmsg(fd, &msg, 0), (ssize_t)sizeof(rep));
	assert_int_equal(rep.status, 0);
	memcpy(fds, CMSG_DATA(CMSG_FIRSTHDR(&msg)), sizeof(fds));
	assert_int_equal(isoshm_app_attach(shm, fds[0], NULL), 0);
	close(fds[1]);
	return fd;
}

/* The extent fetch of a hand-made application: over its control socket,
 * answered by the stack thread. */
static int raw_fetch(void *arg, uint32_t id, uint64_t *off, uint64_t *size)
{
	int ctl = (int)(intptr_t)arg, fd = -1;
	struct isostack_ctl_extent q = {
		.hdr = { ISOSTACK_CTL_MAGIC, ISOSTACK_CTL_VERSION, ISOSTACK_CTL_EXTENT, sizeof(q), 0 },
		.id = id,
	};
	struct isostack_ctl_extent_reply r;
	unsigned n;

	if (send(ctl, &q, sizeof(q), MSG_NOSIGNAL) != (ssize_t)sizeof(q))
		return -errno;
	if (isoshm_recv_fds(ctl, &r, sizeof(r), &fd, 1, &n, 0) != (ssize_t)sizeof(r))
		return -EPROTO;
	if (r.status != 0 || n != 1)
		return r.status != 0 ? r.status : -EPROTO;
	*off = r.arena_off;
	*size = r.size;
	return fd;
}

/* One datagram record, header h then len bytes (a6 first if given),
 * written by hand on a raw socket of family fam and sent: the status the
 * stack answers with (EV_ERROR's result, or 0 if the socket lives on
 * and the stack counted one more datagram sent or dropped). */
static int64_t raw_dgram(struct isoshm_app *shm, int fam, struct isostack_shm_dgram h,
			 const uint8_t *a6)
{
	static const uint8_t zeros[64];
	struct isostack_shm_cmd cmd = { .opcode = ISOSTACK_SHM_OP_SOCKET, .sock = 0, .cookie = 1,
					.arg = { (uint64_t)fam, SOCK_DGRAM } };
	struct isostack_shm_status st;
	struct isod_backend_stats s0 = stats_now();
	uint32_t rec = ISOSTACK_SHM_DGRAM_REC_F(h.len, h.flags), hdr = sizeof(h);
	int id;

	assert_int_equal(isoshm_app_submit(shm, 0, &cmd, 1), 1);
	while (isoshm_app_recv_status(shm, 0, &st, 1) == 0)
		usleep(100);
	id = (int)st.result;
	assert_true(id > 0);
	assert_int_equal(isoshm_app_sock_open(shm, (uint32_t)id), 0);
	assert_int_equal(isoshm_app_tx_write(shm, (uint32_t)id, &h, sizeof(h)), (int)sizeof(h));
	if (a6 != NULL) {
		assert_int_equal(isoshm_app_tx_write(shm, (uint32_t)id, a6, 16), 16);
		hdr += 16;
	}
	assert_true(rec - hdr <= sizeof(zeros));
	assert_int_equal(isoshm_app_tx_write(shm, (uint32_t)id, zeros, rec - hdr), (int)(rec - hdr));
	cmd = (struct isostack_shm_cmd){ .opcode = ISOSTACK_SHM_OP_SEND, .sock = (uint32_t)id };
	assert_int_equal(isoshm_app_submit(shm, (uint32_t)id, &cmd, 1), 1);
	for (int i = 0; i < 50000; i++) {
		struct isod_backend_stats now = stats_now();

		if (isoshm_app_recv_status(shm, (uint32_t)id, &st, 1) == 1 &&
		    st.opcode == ISOSTACK_SHM_EV_ERROR)
			return st.result;
		if (now.udp_tx_dgrams + now.udp_tx_dropped > s0.udp_tx_dgrams + s0.udp_tx_dropped)
			return 0;
		usleep(100);
	}
	fail_msg("the stack neither sent, dropped nor refused the record");
	return 1;
}

/* Datagram records the stack must refuse (-EPROTO, the socket dies) and
 * one it must take: the IPv6 address block (ABI 5) on the wrong family,
 * an unknown flag, an IPv4 address beside an IPv6 one. */
static void test_bad_dgram(void **state)
{
	struct isoshm_app *shm;
	struct sockaddr_in6 to = sin6_of('b', PORT_BASE + 22);
	const uint16_t port = htons(PORT_BASE + 22);
	const uint8_t *a6 = to.sin6_addr.s6_addr;
	struct isod_backend_stats s0 = stats_now();
	unsigned apps0 = atomic_load(&pub_apps);
	int fd;

	(void)state;
	fd = raw_attach(&shm);
	isoshm_app_set_fetch(shm, raw_fetch, (void *)(intptr_t)fd);
	/* the control: a good IPv6 record goes out */
	assert_int_equal(raw_dgram(shm, AF_INET6, (struct isostack_shm_dgram){
		.len = 3, .port = port, .flags = ISOSTACK_SHM_DGRAM_F_V6 }, a6), 0);
	assert_int_equal(stats_now().broken_socks, s0.broken_socks);
	/* an IPv6 address from an AF_INET socket */
	assert_int_equal(raw_dgram(shm, AF_INET, (struct isostack_shm_dgram){
		.len = 3, .port = port, .flags = ISOSTACK_SHM_DGRAM_F_V6 }, a6), -EPROTO);
	/* a flag no ABI defines */
	assert_int_equal(raw_dgram(shm, AF_INET6, (struct isostack_shm_dgram){
		.len = 3, .port = port, .flags = 0x2 }, NULL), -EPROTO);
	/* both an IPv4 and an IPv6 destination */
	assert_int_equal(raw_dgram(shm, AF_INET6, (struct isostack_shm_dgram){
		.len = 3, .port = port, .flags = ISOSTACK_SHM_DGRAM_F_V6, .addr = 1 }, a6), -EPROTO);
	assert_int_equal(stats_now().broken_socks, s0.broken_socks + 3);
	isoshm_app_detach(shm);
	close(fd);
	assert_true(eventually(apps_are, (void *)(uintptr_t)apps0, 2));
}

static void test_bad_commands(void **state)
{
	struct apps *a = *state;
	struct isoshm_app *shm;
	struct isostack_shm_cmd cmd;
	struct isostack_shm_status st;
	struct isod_backend_stats s0 = stats_now();
	unsigned apps0 = atomic_load(&pub_apps);
	int fd;

	(void)a;
	fd = raw_attach(&shm);

#define ROUNDTRIP(sock_) do { \
		assert_int_equal(isoshm_app_submit(shm, (sock_), &cmd, 1), 1); \
		while (isoshm_app_recv_status(shm, (sock_), &st, 1) == 0) \
			usleep(100); \
	} while (0)

	/* unknown opcode */
	cmd = (struct isostack_shm_cmd){ .opcode = 99, .sock = 3, .cookie = 7 };
	ROUNDTRIP(3);
	assert_int_equal(st.cookie, 7);
	assert_int_equal(st.result, -EINVAL);
	/* nonzero flags and unused args */
	cmd = (struct isostack_shm_cmd){ .opcode = ISOSTACK_SHM_OP_LISTEN, .flags = 1, .sock = 3, .cookie = 8 };
	ROUNDTRIP(3);
	assert_int_equal(st.result, -EINVAL);
	/* command naming another slot than its ring */
	cmd = (struct isostack_shm_cmd){ .opcode = ISOSTACK_SHM_OP_NOP, .sock = 4, .cookie = 9 };
	ROUNDTRIP(3);
	assert_int_equal(st.result, -EBADF);
	/* SOCKET off the control slot */
	cmd = (struct isostack_shm_cmd){ .opcode = ISOSTACK_SHM_OP_SOCKET, .sock = 3, .cookie = 10,
					 .arg = { AF_INET, SOCK_STREAM } };
	ROUNDTRIP(3);
	assert_int_equal(st.result, -EBADF);
	/* a valid command on a slot that holds no socket */
	cmd = (struct isostack_shm_cmd){ .opcode = ISOSTACK_SHM_OP_ACCEPT, .sock = 5, .cookie = 11 };
	ROUNDTRIP(5);
	assert_int_equal(st.result, -EBADF);
	/* NOP works */
	cmd = (struct isostack_shm_cmd){ .opcode = ISOSTACK_SHM_OP_NOP, .sock = 0, .cookie = 12 };
	ROUNDTRIP(0);
	assert_int_equal(st.result, 0);
	assert_true(stats_now().bad_cmds >= s0.bad_cmds + 3);
	assert_true(stats_now().bad_slot >= s0.bad_slot + 1);
	print_message("bad commands: %llu rejected by validation, %llu on empty slots\n",
		      (unsigned long long)(stats_now().bad_cmds - s0.bad_cmds),
		      (unsigned long long)(stats_now().bad_slot - s0.bad_slot));
	isoshm_app_detach(shm);
	close(fd);
	if (!eventually(apps_are, (void *)(uintptr_t)apps0, 2))
		print_message("apps now %u, expected %u\n", atomic_load(&pub_apps), apps0);
	assert_true(eventually(apps_are, (void *)(uintptr_t)apps0, 2));
}

/*
 * An application that does not read its statuses fills its status ring:
 * the stack keeps the replies back (a deferred-reply array it allocates
 * only then) and stops reading that socket's commands, and every reply
 * arrives, in order, once the application reads again.
 */
static bool deferred_past(void *arg)
{
	return stats_now().status_deferred > *(uint64_t *)arg;
}

static void test_status_ring_full(void **state)
{
	enum { NCMDS = 64 };
	struct isoshm_app *shm;
	struct isostack_shm_cmd cmd;
	struct isostack_shm_status st;
	uint64_t d0 = stats_now().status_deferred;
	unsigned apps0 = atomic_load(&pub_apps), posted = 0, got = 0;
	int fd;

	(void)state;
	fd = raw_attach(&shm);
	/* Post until the stack holds replies back: the status ring (8)
	 * filled, then the command ring (4) while the stack stopped reading. */
	while (posted < NCMDS) {
		cmd = (struct isostack_shm_cmd){ .opcode = ISOSTACK_SHM_OP_NOP, .sock = 0,
						 .cookie = 1000 + posted };
		if (isoshm_app_submit(shm, 0, &cmd, 1) == 1)
			posted++;
		else if (deferred_past(&d0))
			break;
		else
			usleep(100);
	}
	assert_true(eventually(deferred_past, &d0, 5));
	print_message("status ring full after %u commands; %llu replies held back\n", posted,
		      (unsigned long long)(stats_now().status_deferred - d0));
	/* Read everything, posting the rest as room appears. */
	for (long spins = 0; got < NCMDS && spins < 50000; spins++) {
		while (isoshm_app_recv_status(shm, 0, &st, 1) == 1) {
			assert_int_equal(st.opcode, ISOSTACK_SHM_OP_NOP);
			assert_int_equal(st.cookie, 1000 + got);
			assert_int_equal(st.result, 0);
			got++;
			spins = 0;
		}
		if (posted < NCMDS) {
			cmd = (struct isostack_shm_cmd){ .opcode = ISOSTACK_SHM_OP_NOP, .sock = 0,
							 .cookie = 1000 + posted };
			if (isoshm_app_submit(shm, 0, &cmd, 1) == 1)
				posted++;
		}
		usleep(100);
	}
	assert_int_equal(got, NCMDS);
	isoshm_app_detach(shm);
	close(fd);
	assert_true(eventually(apps_are, (void *)(uintptr_t)apps0, 2));
}

/* ---- Power saving: the stack sleeps, applications wake it -------------------------- */

static bool stack_naps(void *arg)
{
	(void)arg;
	return atomic_load(&pub_napping) == 1;
}

static void test_napping(void **state)
{
	struct apps *a = *state;
	int l = listener(a->srv, PORT_BASE + 8);
	int c = connector(a->cli, PORT_BASE + 8);
	int s = isosock_accept(a->srv, l, NULL, NULL, 0);
	unsigned w0 = atomic_load(&nap_fd_wakes), t0 = atomic_load(&nap_timeouts);
	struct isosock_stats k0, k1;
	const int rounds = 20;

	assert_true(s > 0);
	{
		int one = 1;   /* TCP_NODELAY: each byte goes out at once */

		assert_int_equal(isosock_setsockopt(a->cli, c, IPPROTO_TCP, 1, &one, sizeof(one)), 0);
		assert_int_equal(isosock_setsockopt(a->srv, s, IPPROTO_TCP, 1, &one, sizeof(one)), 0);
	}
	isosock_app_stats(a->cli, &k0);
	atomic_store(&nap_mode, true);
	for (int i = 0; i < rounds; i++) {
		int v = -1;
		socklen_t vlen = sizeof(v);
		uint8_t b = (uint8_t)i, r = 0;

		/* the stack is asleep on its wake fd: only our kick wakes it */
		assert_true(eventually(stack_naps, NULL, 5));
		assert_int_equal(isosock_getsockopt(a->cli, c, IPPROTO_TCP, 1 /* TCP_NODELAY */, &v, &vlen), 0);
		assert_true(eventually(stack_naps, NULL, 5));
		assert_int_equal(isosock_send(a->cli, c, &b, 1, 0), 1);
		assert_int_equal(isosock_recv(a->srv, s, &r, 1, 0), 1);
		assert_int_equal(r, b);
	}
	atomic_store(&nap_mode, false);
	isosock_app_stats(a->cli, &k1);
	print_message("napping: %u wake-fd wakes, %u timed-out naps, %llu kicks by the client\n",
		      atomic_load(&nap_fd_wakes) - w0, atomic_load(&nap_timeouts) - t0,
		      (unsigned long long)(k1.stack_kicks - k0.stack_kicks));
	/* timer wake-ups happen too (lwIP's TCP timer); every command we
	 * posted into a nap must have woken it through the fd */
	assert_true(atomic_load(&nap_fd_wakes) - w0 >= (unsigned)(2 * rounds));
	assert_true(k1.stack_kicks - k0.stack_kicks >= (uint64_t)(2 * rounds));
	isosock_close(a->cli, c);
	isosock_close(a->srv, s);
	isosock_close(a->srv, l);
}

/* ---- Limits and broken applications ------------------------------------------------- */

static bool mem_limit_applied(void *arg)
{
	(void)arg;
	return atomic_load(&want_mem_limit) == -1;
}

static void test_enobufs(void **state)
{
	struct apps *a = *state;
	int tx = 0, rx = 0, s[4], rc;
	socklen_t len = sizeof(int);
	int probe = isosock_socket(a->cli, AF_INET, SOCK_STREAM, 0);
	uint64_t per;
	struct isod_backend_stats s0 = stats_now();

	assert_true(probe > 0);
	assert_int_equal(isosock_getsockopt(a->cli, probe, SOL_SOCKET, SO_SNDBUF, &tx, &len), 0);
	len = sizeof(int);
	assert_int_equal(isosock_getsockopt(a->cli, probe, SOL_SOCKET, SO_RCVBUF, &rx, &len), 0);
	isosock_close(a->cli, probe);
	per = (uint64_t)tx + (uint64_t)rx;
	atomic_store(&want_mem_limit, (int64_t)(3 * per));
	assert_true(eventually(mem_limit_applied, NULL, 5));
	for (int i = 0; i < 3; i++) {
		s[i] = isosock_socket(a->cli, AF_INET, SOCK_STREAM, 0);
		assert_true(s[i] > 0);
	}
	assert_int_equal(isosock_socket(a->cli, AF_INET, SOCK_STREAM, 0), -ENOBUFS);
	assert_int_equal(isosock_socket(a->cli, AF_INET, SOCK_DGRAM, 0), -ENOBUFS);
	/* the other application has its own budget */
	rc = isosock_socket(a->srv, AF_INET, SOCK_STREAM, 0);
	assert_true(rc > 0);
	isosock_close(a->srv, rc);
	/* closing gives the memory back */
	isosock_close(a->cli, s[0]);
	for (int i = 0; i < 1000 && (s[3] = isosock_socket(a->cli, AF_INET, SOCK_STREAM, 0)) < 0; i++)
		usleep(1000);
	assert_true(s[3] > 0);
	assert_true(stats_now().enobufs >= s0.enobufs + 2);
	atomic_store(&want_mem_limit, 0);
	assert_true(eventually(mem_limit_applied, NULL, 5));
	for (int i = 1; i < 4; i++)
		isosock_close(a->cli, s[i]);
}

static bool broken_socks_are(void *arg)
{
	return stats_now().broken_socks == (uint64_t)(uintptr_t)arg;
}

/* An application that corrupts a ring index loses that socket, not the
 * daemon nor its other sockets. */
static void test_broken_ring(void **state)
{
	struct apps *a = *state;
	struct sockaddr_un { sa_family_t f; char p[108]; } un = { AF_UNIX, { 0 } };
	struct isostack_ctl_attach req = {
		.hdr = { ISOSTACK_CTL_MAGIC, ISOSTACK_CTL_VERSION, ISOSTACK_CTL_ATTACH, sizeof(req), 0 },
		.abi_version = ISOSTACK_SHM_ABI_VERSION, .features = ISOSTACK_SHM_FEATURES,
	};
	struct isostack_ctl_attach_reply rep;
	struct isoshm_app *shm;
	char cbuf[CMSG_SPACE(2 * sizeof(int))];
	struct iovec iov = { &rep, sizeof(rep) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			      .msg_controllen = sizeof(cbuf) };
	struct isostack_shm_cmd cmd;
	struct isostack_shm_status st;
	struct isod_backend_stats s0 = stats_now();
	const struct isostack_shm_header *h;
	struct isostack_shm_sock *socks;
	int fd, efd, fds[2], id, other;
	unsigned apps0 = atomic_load(&pub_apps);

	(void)a;
	strcpy(un.p, ctl_path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&un, sizeof(un)), 0);
	efd = eventfd(0, EFD_NONBLOCK);
	assert_int_equal(isoshm_send_fd(fd, efd, &req, sizeof(req)), 0);
	close(efd);
	assert_int_equal(recvmsg(fd, &msg, 0), (ssize_t)sizeof(rep));
	assert_int_equal(rep.status, 0);
	memcpy(fds, CMSG_DATA(CMSG_FIRSTHDR(&msg)), sizeof(fds));
	assert_int_equal(isoshm_app_attach(&shm, fds[0], NULL), 0);
	close(fds[1]);
	h = isoshm_app_header(shm);
	socks = (struct isostack_shm_sock *)((uint8_t *)isoshm_app_base(shm) + h->socks_off);

#define RT(sock_) do { \
		assert_int_equal(isoshm_app_submit(shm, (sock_), &cmd, 1), 1); \
		while (isoshm_app_recv_status(shm, (sock_), &st, 1) == 0) \
			usleep(100); \
	} while (0)

	cmd = (struct isostack_shm_cmd){ .opcode = ISOSTACK_SHM_OP_SOCKET, .sock = 0, .cookie = 1,
					 .arg = { AF_INET, SOCK_STREAM } };
	RT(0);
	id = (int)st.result;
	assert_true(id > 0);
	RT(0);
	other = (int)st.result;
	assert_true(other > 0 && other != id);
	/* rx_cons jumps past rx_prod: the application claims bytes it never got */
	atomic_store(&socks[id].rx_cons, atomic_load(&socks[id].rx_prod) + 4096);
	cmd = (struct isostack_shm_cmd){ .opcode = ISOSTACK_SHM_OP_RECV, .sock = (uint32_t)id };
	assert_int_equal(isoshm_app_submit(shm, (uint32_t)id, &cmd, 1), 1);
	/* The slot's rings are all untrusted from now on (shm/ marks the
	 * whole slot broken, status ring included): no EV_ERROR can reach
	 * this application; the stack kills the socket and counts it. */
	assert_true(eventually(broken_socks_are, (void *)(uintptr_t)(s0.broken_socks + 1), 5));
	/* the other socket of the same application still answers */
	cmd = (struct isostack_shm_cmd){ .opcode = ISOSTACK_SHM_OP_GETSOCKNAME,
					 .sock = (uint32_t)other, .cookie = 5 };
	RT((uint32_t)other);
	assert_int_equal(st.cookie, 5);
	assert_int_equal(st.result, 0);
	assert_int_equal(stats_now().broken_apps, s0.broken_apps);
	/* More commands on the broken socket, its other socket left open:
	 * the application goes, and every socket is freed.  broken_socks
	 * counts sockets, once each (hostile_app's 171 sockets once moved
	 * it by 560: every later kill of a dead or freed socket counted). */
	cmd = (struct isostack_shm_cmd){ .opcode = ISOSTACK_SHM_OP_RECV, .sock = (uint32_t)id };
	(void)isoshm_app_submit(shm, (uint32_t)id, &cmd, 1);
#undef RT
	isoshm_app_detach(shm);
	close(fd);
	assert_true(eventually(apps_are, (void *)(uintptr_t)apps0, 2));
	assert_int_equal(stats_now().broken_socks, s0.broken_socks + 1);
}

/* The STATS query of isostat over the control socket. */
static void test_stats(void **state)
{
	struct apps *a = *state;
	struct sockaddr_un { sa_family_t f; char p[108]; } un = { AF_UNIX, { 0 } };
	struct isostack_ctl_stats req = {
		.hdr = { ISOSTACK_CTL_MAGIC, ISOSTACK_CTL_VERSION, ISOSTACK_CTL_STATS, sizeof(req), 0 },
	};
	static char buf[ISOSTACK_CTL_STATS_MAX + 1];
	struct isostack_ctl_hdr *hdr = (struct isostack_ctl_hdr *)buf;
	int fd, sk = isosock_socket(a->cli, AF_INET, SOCK_STREAM, 0);
	ssize_t n;

	assert_true(sk > 0);
	strcpy(un.p, ctl_path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&un, sizeof(un)), 0);
	for (int round = 0; round < 2; round++) {   /* a client may ask again */
		assert_int_equal(send(fd, &req, sizeof(req), 0), (ssize_t)sizeof(req));
		n = recv(fd, buf, sizeof(buf) - 1, 0);
		assert_true(n > (ssize_t)sizeof(*hdr));
		assert_int_equal(hdr->type, ISOSTACK_CTL_STATS_REPLY);
		assert_int_equal(hdr->length, (uint32_t)n);
		buf[n] = '\0';
		assert_non_null(strstr(buf + sizeof(*hdr), "\nbackend.apps_attached "));
		assert_non_null(strstr(buf + sizeof(*hdr), "backend.apps 2\n"));
		assert_non_null(strstr(buf + sizeof(*hdr), "backend.udp_rx_dropped "));
		assert_non_null(strstr(buf + sizeof(*hdr), ".sockets 1\n"));
	}
	close(fd);
	isosock_close(a->cli, sk);
}

/* ---- Receive window and RX ring ---------------------------------------------------- */

static bool sender_sees_zero_window(void *arg)
{
	(void)arg;
	return atomic_load(&watch_snd_wnd) == 0;
}

static bool passes_after(void *arg)
{
	return atomic_load(&pub_passes) > (unsigned)(uintptr_t)arg;
}

/* Waits until the stack thread has finished a whole pass begun after now. */
static void stack_settles(void)
{
	assert_true(eventually(passes_after, (void *)(uintptr_t)(atomic_load(&pub_passes) + 1), 5));
}

/*
 * A fast sender, a receiver whose RX ring (SMALL_RING) is smaller than
 * lwIP's TCP_WND and which does not read: the window announced to the
 * sender is the ring's free space from the handshake on, so the sender
 * never has more than the ring in flight and the receiving stack holds no
 * data beyond the ring; then the receiver reads everything intact.  Once
 * with the receiver accepting, once with it connecting.
 */
static void window_case(struct isosock_app *big, struct isosock_app *small, bool small_accepts,
			uint16_t port, uint64_t seed)
{
	const size_t bytes = 1u << 20;
	struct isosock_app *lapp = small_accepts ? small : big;
	struct isosock_app *capp = small_accepts ? big : small;
	struct isod_backend_stats sb;
	struct stream_job tx, rx;
	pthread_t t;
	int l, c, s, snd, rcv;

	l = listener(lapp, port);
	atomic_store(&watch_inflight_max, 0);
	atomic_store(&watch_snd_wnd, UINT32_MAX);
	/* the watched pcb is the sender's: its remote port is the receiver's */
	atomic_store(&watch_port, small_accepts ? port : 0);
	c = connector(capp, port);
	s = isosock_accept(lapp, l, NULL, NULL, 0);
	assert_true(s > 0);
	snd = small_accepts ? c : s;
	rcv = small_accepts ? s : c;
	if (!small_accepts) {
		struct sockaddr_in me;
		socklen_t mlen = sizeof(me);

		assert_int_equal(isosock_getsockname(small, c, (struct sockaddr *)&me, &mlen), 0);
		atomic_store(&watch_port, ntohs(me.sin_port));
	}
	tx = (struct stream_job){ big, snd, bytes, seed, 0, 16384, 0, 0, false };
	pthread_create(&t, NULL, sender, &tx);
	/* nobody reads: the ring fills and the sender is shown a zero window */
	assert_true(eventually(sender_sees_zero_window, NULL, 10));
	stack_settles();
	sb = stats_small();
	print_message("window (receiver %s): ring %u bytes, sender had at most %u in flight; "
		      "receiving back-end held at most %llu bytes in pbufs, %llu now\n",
		      small_accepts ? "accepted" : "connected", SMALL_RING,
		      atomic_load(&watch_inflight_max),
		      (unsigned long long)sb.rx_held_max, (unsigned long long)sb.rx_held);
	/* +1: the sender's zero-window probe carries one byte past the window */
	assert_true(atomic_load(&watch_inflight_max) <= SMALL_RING + 1);
	assert_true(sb.rx_held_max <= SMALL_RING);
	assert_int_equal(sb.rx_held, 0);
	assert_true(tx.done < bytes);
	/* now read it all */
	rx = (struct stream_job){ small, rcv, bytes, 0, 0, 16384, 0, 0, false };
	receiver(&rx);
	pthread_join(t, NULL);
	atomic_store(&watch_port, 0);
	assert_int_equal(tx.err, 0);
	assert_int_equal(rx.err, 0);
	assert_int_equal(rx.done, bytes);
	assert_true(rx.hash == expect_hash(seed, bytes));
	assert_true(atomic_load(&watch_inflight_max) <= SMALL_RING + 1);
	assert_true(stats_small().rx_held_max <= SMALL_RING);
	assert_int_equal(isosock_close(capp, c), 0);
	assert_int_equal(isosock_close(lapp, s), 0);
	assert_int_equal(isosock_close(lapp, l), 0);
}

static void test_window_within_ring(void **state)
{
	struct apps *a = *state;
	struct isosock_app *small;

	assert_int_equal(isosock_app_attach(&small, ctl_path_small), 0);
	assert_true(eventually(apps_are, (void *)(uintptr_t)3, 5));
	window_case(a->cli, small, true, PORT_BASE + 30, 66);
	window_case(a->srv, small, false, PORT_BASE + 31, 77);
	isosock_app_detach(small);
}

/* ---- CLOSE against a zero window -------------------------------------------------- */

static bool close_timeouts_are(void *arg)
{
	return stats_small().close_timeouts == (uint64_t)(uintptr_t)arg;
}

static bool open_sockets_are(void *arg)
{
	return atomic_load(&pub_open) == (unsigned)(uintptr_t)arg;
}

/*
 * The writer closes with data its peer will never take (the reader stopped
 * reading, its window is zero): the CLOSE holds the slot until the close
 * timeout, on lwIP's clock, which the test moves on instead of waiting;
 * then the connection is reset, the slot freed and the abort counted.
 */
static void test_close_timeout(void **state)
{
	const uint16_t port = PORT_BASE + 32;
	static uint8_t buf[2 * SMALL_RING];
	struct isosock_app *w, *r;
	struct isod_backend_stats s0;
	uint64_t seed = 88, hash;
	unsigned open0;
	size_t got = 0;
	ssize_t k;
	int l, c, s;

	(void)state;
	assert_int_equal(isosock_app_attach(&w, ctl_path_small), 0);
	assert_int_equal(isosock_app_attach(&r, ctl_path_small), 0);
	assert_true(eventually(apps_are, (void *)(uintptr_t)4, 5));
	l = listener(r, port);
	atomic_store(&watch_snd_wnd, UINT32_MAX);
	atomic_store(&watch_port, port);
	c = connector(w, port);
	s = isosock_accept(r, l, NULL, NULL, 0);
	assert_true(s > 0);
	fill(&seed, buf, sizeof(buf));
	/* the reader's ring takes SMALL_RING bytes, the rest stays unacknowledged
	 * in the writer's TX ring */
	assert_int_equal(isosock_send(w, c, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	assert_true(eventually(sender_sees_zero_window, NULL, 10));
	atomic_store(&watch_port, 0);
	stack_settles();
	open0 = atomic_load(&pub_open);
	s0 = stats_small();
	assert_int_equal(isosock_close(w, c), 0);
	/* half the timeout later: still waiting for the peer, slot held */
	atomic_fetch_add(&clock_skew_ms, SMALL_CLOSE_MS / 2);
	stack_settles();
	stack_settles();
	assert_int_equal(atomic_load(&pub_open), open0);
	assert_int_equal(stats_small().close_timeouts, s0.close_timeouts);
	/* past it: reset, slot freed, counted */
	atomic_fetch_add(&clock_skew_ms, SMALL_CLOSE_MS);
	assert_true(eventually(close_timeouts_are, (void *)(uintptr_t)(s0.close_timeouts + 1), 5));
	assert_true(eventually(open_sockets_are, (void *)(uintptr_t)(open0 - 1), 5));
	/* the reader gets what its ring took, intact, then the reset */
	hash = FNV0;
	while ((k = isosock_recv(r, s, buf, sizeof(buf), 0)) > 0) {
		hash = fnv(hash, buf, (size_t)k);
		got += (size_t)k;
	}
	assert_int_equal(k, -ECONNRESET);
	seed = 88;
	assert_true(got <= SMALL_RING);
	assert_true(hash == expect_hash(seed, got));
	print_message("close timeout: slot freed after %u ms of lwIP's clock; reader got %zu bytes, then ECONNRESET\n",
		      SMALL_CLOSE_MS + SMALL_CLOSE_MS / 2, got);
	assert_int_equal(isosock_close(r, s), 0);
	assert_int_equal(isosock_close(r, l), 0);
	isosock_app_detach(w);
	isosock_app_detach(r);
}

/* ---- The daemon dies under the applications (must be the last test) --------------- */

struct blocked {
	struct isosock_app *app;
	int s;
	ssize_t rc;
};

static void *blocked_recv(void *p)
{
	struct blocked *b = p;
	uint8_t x;

	b->rc = isosock_recv(b->app, b->s, &x, 1, 0);
	return NULL;
}

static void *blocked_accept(void *p)
{
	struct blocked *b = p;

	b->rc = isosock_accept(b->app, b->s, NULL, NULL, 0);
	return NULL;
}

static void test_daemon_dies(void **state)
{
	struct apps *a = *state;
	int l = listener(a->srv, PORT_BASE + 9);
	int c = connector(a->cli, PORT_BASE + 9);
	int s = isosock_accept(a->srv, l, NULL, NULL, 0);
	struct blocked br = { a->cli, c, 1 }, ba = { a->srv, l, 1 };
	pthread_t t1, t2;
	uint8_t x = 1;
	struct sockaddr_in me;
	socklen_t mlen = sizeof(me);

	assert_true(s > 0);
	pthread_create(&t1, NULL, blocked_recv, &br);
	pthread_create(&t2, NULL, blocked_accept, &ba);
	atomic_store(&kill_backend, true);
	/* blocked calls come back (nothing hangs), with the kernel's errors */
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	assert_int_equal(br.rc, -ECONNRESET);
	assert_int_equal(ba.rc, -ECONNABORTED);
	assert_false(isosock_app_alive(a->cli));
	assert_int_equal(isosock_send(a->cli, c, &x, 1, 0), -EPIPE);
	assert_int_equal(isosock_recv(a->srv, s, &x, 1, 0), -ECONNRESET);
	assert_int_equal(isosock_send(a->srv, s, &x, 1, 0), -EPIPE);
	assert_int_equal(isosock_getsockname(a->cli, c, (struct sockaddr *)&me, &mlen), -ENOTCONN);
	assert_int_equal(isosock_socket(a->cli, AF_INET, SOCK_STREAM, 0), -ENETDOWN);
	assert_true(isosock_poll(a->cli, c, POLLIN) & POLLERR);
	assert_int_equal(isosock_close(a->cli, c), 0);
	assert_int_equal(isosock_close(a->srv, s), 0);
	assert_int_equal(isosock_close(a->srv, l), 0);
}

/* ---- Group ------------------------------------------------------------------------ */

static int group_setup(void **state)
{
	(void)state;
	snprintf(ctl_path, sizeof(ctl_path), "/tmp/isobe-test-%d.sock", (int)getpid());
	snprintf(ctl_path_small, sizeof(ctl_path_small), "/tmp/isobe-small-%d.sock", (int)getpid());
	pthread_create(&stack_tid, NULL, stack_main, NULL);
	while (!atomic_load(&stack_ready))
		usleep(100);
	return atomic_load(&stack_init_rc) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	atomic_store(&stack_stop, true);
	pthread_join(stack_tid, NULL);
	print_message("lwIP after teardown: %u pool entries, %u heap bytes in use\n",
		      atomic_load(&leak_memp), atomic_load(&leak_heap));
	return atomic_load(&leak_memp) == 0 && atomic_load(&leak_heap) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_connect_transfer_both_ways, apps_setup, apps_teardown),
		cmocka_unit_test_setup_teardown(test_half_close_both_ways, apps_setup, apps_teardown),
		cmocka_unit_test_setup_teardown(test_aggregation, apps_setup, apps_teardown),
		cmocka_unit_test_setup_teardown(test_tx_watch, apps_setup, apps_teardown),
		cmocka_unit_test_setup_teardown(test_slow_reader_and_close_in_flight, apps_setup, apps_teardown),
		cmocka_unit_test_setup_teardown(test_nonblocking, apps_setup, apps_teardown),
		cmocka_unit_test_setup_teardown(test_backlog_count, apps_setup, apps_teardown),
		cmocka_unit_test_setup_teardown(test_reuseport, apps_setup, apps_teardown),
		cmocka_unit_test_setup_teardown(test_rst_refused_eof, apps_setup, apps_teardown),
		cmocka_unit_test_setup_teardown(test_app_dies, apps_setup, apps_teardown),
		cmocka_unit_test_setup_teardown(test_member_dies, apps_setup, apps_teardown),
		cmocka_unit_test_setup_teardown(test_emfile, apps_setup, apps_teardown),
		cmocka_unit_test_setup_teardown(test_bad_commands, apps_setup, apps_teardown),
		cmocka_unit_test_setup_teardown(test_status_ring_full, apps_setup, apps_teardown),
		cmocka_unit_test_setup_teardown(test_udp, apps_setup, apps_teardown),
		cmocka_unit_test_setup_teardown(test_udp6, apps_setup, apps_teardown),
		cmocka_unit_test_setup_teardown(test_bad_dgram, apps_setup, apps_teardown),
		cmocka_unit_test_setup_teardown(test_napping, apps_setup, apps_teardown),
		cmocka_unit_test_setup_teardown(test_enobufs, apps_setup, apps_teardown),
		cmocka_unit_test_setup_teardown(test_broken_ring, apps_setup, apps_teardown),
		cmocka_unit_test_setup_teardown(test_stats, apps_setup, apps_teardown),
		cmocka_unit_test_setup_teardown(test_window_within_ring, apps_setup, apps_teardown),
		cmocka_unit_test_setup_teardown(test_close_timeout, apps_setup, apps_teardown),
		/* last: the back-end is gone afterwards */
		cmocka_unit_test_setup_teardown(test_daemon_dies, apps_setup, apps_teardown),
	};

	if (getenv("ISOBE_TEST") != NULL)
		cmocka_set_test_filter(getenv("ISOBE_TEST"));
	return cmocka_run_group_tests_name("backend", tests, group_setup, group_teardown);
}
