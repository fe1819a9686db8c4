/*
 * An application's share of lwIP's pools (daemon/backend/appcap.c): one
 * application at its cap fails or waits, another still opens sockets and
 * moves data, and the first recovers once it frees what it holds.
 *
 * One thread is the stack core and both applications, as in
 * test_budget.c: every pass (the virtual link, lwIP's timers, one
 * isod_backend_poll) is a call whose effect is checked next; no sleeps.
 * The peer is lwIP itself on the other end of an in-process link
 * (198.18.0.2, raw API): a "hold" listener that keeps what it receives
 * without opening its window again until told to, a "read" listener that
 * takes and hashes everything, and a "send" listener that sends RX_BYTES
 * of a known stream on each connection.
 *
 * The back-end's caps are small (CAP_PCBS, CAP_SEGS, an RX hold of one
 * byte: a second chain always waits).  APPCAP_OFF=1 in the environment
 * runs the same test with the caps off; it must then fail (the way to
 * check that the test tests the caps).
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* glibc's byte-order macros, not lwIP's */
#define LWIP_DONT_PROVIDE_BYTEORDER_FUNCTIONS 1
#include <netinet/in.h>

#include <cmocka.h>

#include "lwip/init.h"
#include "lwip/ip4.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/stats.h"
#include "lwip/tcp.h"
#include "lwip/timeouts.h"

#include "backend.h"
#include "isoshm.h"
#include "isotcp.h"
#include "isostack/ctl_proto.h"

#define CAP_PCBS     4
#define CAP_SEGS     64
#define MAX_SOCKS    16
#define RING         (256u << 10)
#define PORT_HOLD    7001
#define PORT_READ    7002
#define PORT_SEND    7003
#define B_BYTES      (1u << 20)       /* app B's transfer */
#define RX_BYTES     (96u << 10)      /* per connection from PORT_SEND */
#define PASSES       20000
#define INBOX_SLOTS  8192

u32_t sys_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (u32_t)(ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

static struct isod_backend *be;
static char ctl_path[108];
static bool caps_off;

/* ---- Virtual link -------------------------------------------------------- */

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
		return ERR_OK;
	copy = pbuf_clone(PBUF_RAW, PBUF_RAM, p);
	if (copy == NULL)
		return ERR_MEM;
	peer->inbox[peer->tail++ % INBOX_SLOTS] = copy;
	return ERR_OK;
}

static err_t vlink_init(struct netif *netif)
{
	netif->name[0] = 'v';
	netif->name[1] = 'l';
	netif->output = vlink_output;
	netif->mtu = 1500;
	netif->flags = NETIF_FLAG_LINK_UP;
	return ERR_OK;
}

static void pass(void)
{
	struct side *sides[2] = { &side_a, &side_b };

	for (int i = 0; i < 2; i++) {
		struct side *s = sides[i];

		while (s->head != s->tail) {
			struct pbuf *p = s->inbox[s->head++ % INBOX_SLOTS];

			if (s->netif.input(p, &s->netif) != ERR_OK)
				pbuf_free(p);
		}
	}
	sys_check_timeouts();
	isod_backend_poll(be, 64);
}

/* ---- The peer: lwIP's raw API ------------------------------------------- */

/* A byte stream both ends can check: byte i of stream `seed`. */
static uint8_t stream_byte(uint32_t seed, uint64_t i)
{
	uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull ^ seed;

	x ^= x >> 29;
	return (uint8_t)(x * 0xbf58476d1ce4e5b9ull >> 56);
}

struct peer_conn {
	struct tcp_pcb *pcb;
	uint16_t port;
	uint32_t seed;               /* the stream it expects (read, hold) */
	uint64_t got;                /* bytes received and checked */
	uint64_t bad;                /* bytes that did not match */
	struct pbuf *held;           /* hold: received, window not reopened */
	uint64_t sent;               /* send: bytes written */
};

static struct peer_conn conns[8];
static unsigned nconns;
static bool hold_release;       /* the hold listener reads from now on */

static void peer_check(struct peer_conn *pc, struct pbuf *p)
{
	for (struct pbuf *q = p; q != NULL; q = q->next)
		for (u16_t i = 0; i < q->len; i++)
			if (((uint8_t *)q->payload)[i] != stream_byte(pc->seed, pc->got++))
				pc->bad++;
}

static err_t peer_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
	struct peer_conn *pc = arg;

	(void)err;
	if (p == NULL)
		return ERR_OK;
	if (pc->port == PORT_HOLD && !hold_release) {
		if (pc->held == NULL)
			pc->held = p;
		else
			pbuf_cat(pc->held, p);
		return ERR_OK;
	}
	peer_check(pc, p);
	tcp_recved(pcb, p->tot_len);
	pbuf_free(p);
	return ERR_OK;
}

static void peer_send_more(struct peer_conn *pc)
{
	uint8_t buf[1024];

	while (pc->sent < RX_BYTES && tcp_sndbuf(pc->pcb) >= sizeof(buf) &&
	       tcp_sndqueuelen(pc->pcb) < TCP_SND_QUEUELEN / 2) {
		for (unsigned i = 0; i < sizeof(buf); i++)
			buf[i] = stream_byte(pc->seed, pc->sent + i);
		if (tcp_write(pc->pcb, buf, sizeof(buf), TCP_WRITE_FLAG_COPY) != ERR_OK)
			break;
		pc->sent += sizeof(buf);
	}
	tcp_output(pc->pcb);
}

static err_t peer_sent(void *arg, struct tcp_pcb *pcb, u16_t len)
{
	(void)pcb;
	(void)len;
	peer_send_more(arg);
	return ERR_OK;
}

static err_t peer_accept(void *arg, struct tcp_pcb *npcb, err_t err)
{
	struct peer_conn *pc;

	(void)err;
	if (nconns == 8)
		return ERR_MEM;
	pc = &conns[nconns++];
	memset(pc, 0, sizeof(*pc));
	pc->pcb = npcb;
	pc->port = (uint16_t)(uintptr_t)arg;
	/* the stream is named by the client's port: each end knows it */
	pc->seed = npcb->remote_port;
	tcp_arg(npcb, pc);
	tcp_recv(npcb, peer_recv);
	if (pc->port == PORT_SEND) {
		pc->seed = npcb->remote_port;
		tcp_sent(npcb, peer_sent);
		peer_send_more(pc);
	}
	return ERR_OK;
}

static void peer_listen(uint16_t port)
{
	ip_addr_t b;
	struct tcp_pcb *pcb = tcp_new();

	IP_ADDR4(&b, 198, 18, 0, 2);
	assert_non_null(pcb);
	assert_int_equal(tcp_bind(pcb, &b, port), ERR_OK);
	pcb = tcp_listen(pcb);
	assert_non_null(pcb);
	tcp_arg(pcb, (void *)(uintptr_t)port);
	tcp_accept(pcb, peer_accept);
}

static struct peer_conn *peer_find(uint16_t port, uint16_t client_port)
{
	for (unsigned i = 0; i < nconns; i++)
		if (conns[i].port == port && conns[i].pcb->remote_port == client_port)
			return &conns[i];
	return NULL;
}

/* ---- Applications: the control protocol and the rings by hand ---------- */

struct app {
	int ctl, wake, doorbell;
	struct isoshm_app *shm;
	uint64_t cookie;
};

static bool serve_until_readable(int fd)
{
	for (int i = 0; i < PASSES; i++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		pass();
		if (poll(&p, 1, 0) > 0)
			return true;
	}
	return false;
}

/* An extent's memfd from the back-end (the shim's fetch, one thread:
 * the stack is served while we wait). */
static int fetch_cb(void *arg, uint32_t id, uint64_t *off, uint64_t *size)
{
	struct app *a = arg;
	struct isostack_ctl_extent q = {
		.hdr = { ISOSTACK_CTL_MAGIC, ISOSTACK_CTL_VERSION, ISOSTACK_CTL_EXTENT,
			 sizeof(q), 0 },
		.id = id,
	};
	struct isostack_ctl_extent_reply r;
	int fd = -1;
	unsigned n;

	if (send(a->ctl, &q, sizeof(q), MSG_NOSIGNAL) != (ssize_t)sizeof(q))
		return -errno;
	if (!serve_until_readable(a->ctl))
		return -ETIMEDOUT;
	if (isoshm_recv_fds(a->ctl, &r, sizeof(r), &fd, 1, &n, 0) != (ssize_t)sizeof(r))
		return -EPROTO;
	if (r.status != 0)
		return r.status;
	if (n != 1)
		return -EPROTO;
	*off = r.arena_off;
	*size = r.size;
	return fd;
}

static void attach(struct app *a)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct isostack_ctl_attach req = {
		.hdr = { ISOSTACK_CTL_MAGIC, ISOSTACK_CTL_VERSION, ISOSTACK_CTL_ATTACH,
			 sizeof(req), 0 },
		.pid = (uint32_t)getpid(), .abi_version = ISOSTACK_SHM_ABI_VERSION,
		.features = ISOSTACK_SHM_FEATURES,
	};
	struct isostack_ctl_attach_reply rep;
	int fds[2] = { -1, -1 };
	unsigned n;

	memset(a, 0, sizeof(*a));
	a->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(a->wake >= 0);
	strcpy(sun.sun_path, ctl_path);
	a->ctl = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	assert_true(a->ctl >= 0);
	assert_int_equal(connect(a->ctl, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(isoshm_send_fds(a->ctl, &req, sizeof(req), &a->wake, 1, 0), 0);
	assert_true(serve_until_readable(a->ctl));
	assert_int_equal(isoshm_recv_fds(a->ctl, &rep, sizeof(rep), fds, 2, &n, 0),
			 (ssize_t)sizeof(rep));
	assert_int_equal(rep.status, 0);
	assert_int_equal(n, 2);
	assert_int_equal(isoshm_app_attach(&a->shm, fds[0], NULL), 0);
	a->doorbell = fds[1];
	isoshm_app_set_fetch(a->shm, fetch_cb, a);
}

static void detach(struct app *a)
{
	isoshm_app_detach(a->shm);
	close(a->doorbell);
	close(a->ctl);
	close(a->wake);
	for (int i = 0; i < PASSES && isod_backend_apps(be) > 0; i++)
		pass();
}

/* Posts c on its socket and serves until its reply; events before it
 * (EV_TX, EV_RX) are skipped.  Returns the reply's result; *out the entry. */
static int64_t call(struct app *a, struct isostack_shm_cmd c, struct isostack_shm_status *out)
{
	struct isostack_shm_status st;

	c.cookie = ++a->cookie;
	assert_int_equal(isoshm_app_submit(a->shm, c.sock, &c, 1), 1);
	for (int i = 0; i < PASSES; i++) {
		pass();
		while (isoshm_app_recv_status(a->shm, c.sock, &st, 1) == 1) {
			if (st.opcode != c.opcode || st.cookie != c.cookie)
				continue;
			if (out != NULL)
				*out = st;
			return st.result;
		}
	}
	fail_msg("no reply to opcode %u on socket %u", c.opcode, c.sock);
	return 0;
}

static int64_t sock_open(struct app *a)
{
	struct isostack_shm_cmd c = {
		.opcode = ISOSTACK_SHM_OP_SOCKET, .sock = 0,
		.arg = { AF_INET, SOCK_STREAM, 0 },
	};
	int64_t r = call(a, c, NULL);

	if (r > 0)
		assert_int_equal(isoshm_app_sock_open(a->shm, (uint32_t)r), 0);
	return r;
}

static void sock_close(struct app *a, uint32_t s)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_CLOSE, .sock = s };

	assert_int_equal(call(a, c, NULL), 0);
}

/* CONNECT to the peer's port; returns our local port. */
static uint16_t sock_connect(struct app *a, uint32_t s, uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_CONNECT, .sock = s };
	struct isostack_shm_status st;

	sin.sin_addr.s_addr = htonl(0xc6120002);   /* 198.18.0.2 */
	c.arg[0] = sizeof(sin);
	memcpy(&c.arg[1], &sin, sizeof(sin));
	assert_int_equal(call(a, c, &st), 0);
	memcpy(&sin, &st.arg[1], sizeof(sin));
	return ntohs(sin.sin_port);
}

/* Writes as much of stream `seed` from *off as the TX ring takes, and a
 * SEND; returns bytes written. */
static uint32_t sock_send(struct app *a, uint32_t s, uint32_t seed, uint64_t *off, uint64_t end)
{
	uint8_t buf[4096];
	uint32_t total = 0;

	while (*off < end) {
		uint32_t n = end - *off < sizeof(buf) ? (uint32_t)(end - *off) : sizeof(buf);
		int k;

		for (uint32_t i = 0; i < n; i++)
			buf[i] = stream_byte(seed, *off + i);
		k = isoshm_app_tx_write(a->shm, s, buf, n);
		assert_true(k >= 0);
		if (k == 0)
			break;
		*off += (uint32_t)k;
		total += (uint32_t)k;
	}
	if (total > 0) {
		struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_SEND, .sock = s,
					      .arg = { total } };

		assert_int_equal(isoshm_app_submit(a->shm, s, &c, 1), 1);
	}
	return total;
}

/* Reads what socket s received, checks it against stream seed; RECV. */
static void sock_read(struct app *a, uint32_t s, uint32_t seed, uint64_t *got)
{
	uint8_t buf[4096];
	uint32_t total = 0;
	int k;

	while ((k = isoshm_app_rx_read(a->shm, s, buf, sizeof(buf))) > 0) {
		for (int i = 0; i < k; i++)
			assert_int_equal(buf[i], stream_byte(seed, *got + (uint64_t)i));
		*got += (uint64_t)k;
		total += (uint32_t)k;
	}
	if (k < 0)
		fail_msg("rx_read on %u: %s", s, strerror(-k));
	if (total > 0) {
		struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_RECV, .sock = s };

		assert_int_equal(isoshm_app_submit(a->shm, s, &c, 1), 1);
	}
}

static struct isod_backend_stats stats(void)
{
	struct isod_backend_stats s;

	isod_backend_get_stats(be, &s);
	return s;
}

/* The pcb of our end of the connection from local port lport to rport. */
static struct tcp_pcb *our_pcb(uint16_t lport, uint16_t rport)
{
	for (struct tcp_pcb *p = tcp_active_pcbs; p != NULL; p = p->next)
		if (p->local_port == lport && p->remote_port == rport)
			return p;
	return NULL;
}

/* ---- Tests ------------------------------------------------------------------ */

/*
 * pcbs: A opens sockets until SOCKET fails with ENOBUFS at CAP_PCBS; B
 * opens one still; A closes one and opens one again.
 */
static void test_pcbs(void **state)
{
	struct app a, b;
	int64_t ids[MAX_SOCKS];
	unsigned n = 0;
	struct isod_backend_stats s0 = stats();
	int64_t r;

	(void)state;
	attach(&a);
	attach(&b);
	while (n < MAX_SOCKS - 2 && (r = sock_open(&a)) > 0)
		ids[n++] = r;
	if (n != CAP_PCBS)
		fail_msg("A opened %u sockets (cap %d)", n, CAP_PCBS);
	assert_int_equal(r, -ENOBUFS);
	assert_true(stats().app_cap_pcbs > s0.app_cap_pcbs);

	r = sock_open(&b);
	assert_true(r > 0);
	sock_close(&b, (uint32_t)r);

	sock_close(&a, (uint32_t)ids[0]);
	r = sock_open(&a);
	assert_true(r > 0);
	ids[0] = r;
	assert_int_equal(sock_open(&a), -ENOBUFS);
	for (unsigned i = 0; i < n; i++)
		sock_close(&a, (uint32_t)ids[i]);
	detach(&a);
	detach(&b);
}

/*
 * TX segments: A streams into a peer that keeps its window shut; its
 * queue stops at CAP_SEGS entries (lwIP's pool stays for the others),
 * while B moves B_BYTES to the reading peer, checked byte by byte.  Then
 * the peer reads: every byte A wrote arrives, in order.
 */
static void test_tx_segs(void **state)
{
	struct app a, b;
	struct isod_backend_stats s0 = stats();
	uint64_t a_off = 0, a_end = 4 * RING, b_off = 0;
	struct peer_conn *pa, *pb;
	struct tcp_pcb *pcb_a;
	uint32_t sa, sb;
	uint16_t pa_port, pb_port;
	unsigned idle = 0;

	(void)state;
	hold_release = false;
	attach(&a);
	attach(&b);
	sa = (uint32_t)sock_open(&a);
	pa_port = sock_connect(&a, sa, PORT_HOLD);
	pa = peer_find(PORT_HOLD, pa_port);
	assert_non_null(pa);
	pcb_a = our_pcb(pa_port, PORT_HOLD);
	assert_non_null(pcb_a);

	/* A until nothing moves: the peer's window is full, A's queue full. */
	while (idle < 200 && a_off < a_end) {
		idle = sock_send(&a, sa, pa_port, &a_off, a_end) > 0 ? 0 : idle + 1;
		pass();
	}
	for (int i = 0; i < 200; i++)
		pass();
	print_message("A: %llu bytes written, peer holds %llu, A's queue %u entries, "
		      "lwIP's segments in use %u\n", (unsigned long long)a_off,
		      pa->held ? (unsigned long long)pa->held->tot_len : 0ull,
		      pcb_a->snd_queuelen, (unsigned)lwip_stats.memp[MEMP_TCP_SEG]->used);
	assert_true(a_off < a_end);                  /* A is held back */
	if (pcb_a->snd_queuelen > CAP_SEGS)
		fail_msg("A queues %u entries (cap %d)", pcb_a->snd_queuelen, CAP_SEGS);
	assert_true(lwip_stats.memp[MEMP_TCP_SEG]->used <= CAP_SEGS);
	assert_true(stats().app_cap_tx_segs > s0.app_cap_tx_segs);

	/* B moves its bytes meanwhile. */
	sb = (uint32_t)sock_open(&b);
	pb_port = sock_connect(&b, sb, PORT_READ);
	pb = peer_find(PORT_READ, pb_port);
	assert_non_null(pb);
	for (int i = 0; i < PASSES && pb->got < B_BYTES; i++) {
		sock_send(&b, sb, pb_port, &b_off, B_BYTES);
		pass();
	}
	assert_int_equal(pb->got, B_BYTES);
	assert_int_equal(pb->bad, 0);
	assert_true(pcb_a->snd_queuelen <= CAP_SEGS);

	/* A recovers: the peer reads what it held and opens its window. */
	hold_release = true;
	if (pa->held != NULL) {
		struct pbuf *p = pa->held;

		pa->held = NULL;
		peer_check(pa, p);
		tcp_recved(pa->pcb, p->tot_len);
		pbuf_free(p);
	}
	for (int i = 0; i < PASSES && pa->got < a_end; i++) {
		sock_send(&a, sa, pa_port, &a_off, a_end);
		pass();
	}
	assert_int_equal(a_off, a_end);
	assert_int_equal(pa->got, a_end);
	assert_int_equal(pa->bad, 0);
	print_message("after the peer read: A's %llu bytes all arrived; cap waits %llu\n",
		      (unsigned long long)pa->got,
		      (unsigned long long)(stats().app_cap_tx_segs - s0.app_cap_tx_segs));
	sock_close(&a, sa);
	sock_close(&b, sb);
	detach(&a);
	detach(&b);
}

/*
 * Received pbufs: the cap is one byte, so while A holds one chain its
 * other connections' data waits in lwIP; every byte still arrives, and B
 * receives alongside.
 */
static void test_rx_held(void **state)
{
	struct app a, b;
	struct isod_backend_stats s0 = stats();
	uint32_t s[3];
	uint16_t port[3];
	uint64_t got[3] = { 0 };
	struct app *owner[3] = { &a, &a, &b };
	bool done = false;

	(void)state;
	attach(&a);
	attach(&b);
	for (int i = 0; i < 3; i++) {
		s[i] = (uint32_t)sock_open(owner[i]);
		port[i] = sock_connect(owner[i], s[i], PORT_SEND);
	}
	/* Refused data comes back with lwIP's fast timer (10 ms): bounded
	 * by lwIP's clock, not by a number of passes. */
	for (uint32_t t0 = sys_now(); !done && sys_now() - t0 < 20000;) {
		pass();
		done = true;
		for (int i = 0; i < 3; i++) {
			sock_read(owner[i], s[i], port[i], &got[i]);
			done = done && got[i] == RX_BYTES;
		}
	}
	for (int i = 0; i < 3; i++)
		if (got[i] != RX_BYTES)
			fail_msg("connection %d: %llu of %u bytes", i, (unsigned long long)got[i],
				 RX_BYTES);
	print_message("received %u bytes on each of 3 connections; rx cap waits %llu\n",
		      RX_BYTES, (unsigned long long)(stats().app_cap_rx_held - s0.app_cap_rx_held));
	assert_true(stats().app_cap_rx_held > s0.app_cap_rx_held);
	for (int i = 0; i < 3; i++)
		sock_close(owner[i], s[i]);
	detach(&a);
	detach(&b);
}

static int group_setup(void **state)
{
	struct isod_backend_conf conf;
	ip4_addr_t ia, ib, mask;
	int rc;

	(void)state;
	caps_off = getenv("APPCAP_OFF") != NULL && strcmp(getenv("APPCAP_OFF"), "1") == 0;
	isotcp_owner_claim();
	lwip_init();
	side_a.peer = &side_b;
	side_b.peer = &side_a;
	IP4_ADDR(&ia, 198, 18, 0, 1);
	IP4_ADDR(&ib, 198, 18, 0, 2);
	IP4_ADDR(&mask, 255, 255, 255, 255);
	netif_add(&side_a.netif, &ia, &mask, &ib, &side_a, vlink_init, ip4_input);
	netif_add(&side_b.netif, &ib, &mask, &ia, &side_b, vlink_init, ip4_input);
	netif_set_up(&side_a.netif);
	netif_set_up(&side_b.netif);
	peer_listen(PORT_HOLD);
	peer_listen(PORT_READ);
	peer_listen(PORT_SEND);

	snprintf(ctl_path, sizeof(ctl_path), "/tmp/isobe-appcap-%d.sock", (int)getpid());
	isod_backend_conf_default(&conf);
	conf.control_path = ctl_path;
	conf.shm.max_sockets = MAX_SOCKS;
	conf.shm.arena_size = UINT64_C(32) << 20;
	conf.shm.hugetlb = false;
	conf.ctl_interval_ms = 0;
	conf.tx_ring = conf.tx_start = RING;      /* A's ring holds more than its cap */
	conf.app_pcbs = caps_off ? 0 : CAP_PCBS;
	conf.app_tx_segs = caps_off ? 0 : CAP_SEGS;
	conf.app_rx_held = caps_off ? 0 : 1;
	if (caps_off)
		print_message("APPCAP_OFF=1: the caps are off, the test must fail\n");
	rc = isod_backend_init(&be, &conf);
	if (rc < 0)
		print_error("back-end: %s\n", strerror(-rc));
	return rc;
}

static int group_teardown(void **state)
{
	(void)state;
	isod_backend_fini(be);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pcbs),
		cmocka_unit_test(test_tx_segs),
		cmocka_unit_test(test_rx_held),
	};

	return cmocka_run_group_tests_name("appcap", tests, group_setup, group_teardown);
}
