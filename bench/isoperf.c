/*
 * isoperf: the paper's micro-benchmarks (section 5) as one plain BSD-socket
 * program, so the same binary runs on the kernel stack and, unmodified,
 * on isostack through the LD_PRELOAD shim.
 *
 *   isoperf server [-p PORT] [-B ADDR]
 *   isoperf client ADDR [-p PORT] [-m send|recv|rr] [-c CONNS] [-l BYTES]
 *                  [-d SECONDS] [--nodelay] [--verify] [--json PATH]
 *                  [--window-cmd PATH]
 *
 * ADDR is numeric, IPv4 or IPv6 (the server binds ADDR's family; IPv6
 * rows of `isostack bench` use it).
 *
 * One thread per connection on both sides, as the paper's "multi-threaded
 * TTCP-like application, where each thread sends or receives data over a
 * single socket". Each connection opens with a 16-byte hello naming the mode
 * and message size; then
 *   send: the client writes messages for the duration (server receives);
 *   recv: the server writes, the client receives (the client's receive path;
 *         its messages are the bytes received in whole messages: a recv()
 *         returns what is there, not one message);
 *   rr:   the client sends one message and waits for the server to echo it
 *         (request/response, section 5.4), timing each round trip.
 * The client ends the test by shutting down its write side; in send mode the
 * server answers with the byte count it received, so both ends agree. With
 * --verify the payload is a per-connection pseudo-random stream that the
 * receiver checks byte by byte.
 *
 * The measuring window: once every connection is up and its thread runs,
 * `PATH start` runs (--window-cmd, synchronously, without the shim in its
 * environment, so a caller can snapshot the daemon's counters), then the
 * window opens: CPU counters and every connection's message count are
 * sampled, the test sleeps its duration, and they are sampled again before
 * `PATH end` runs. Traffic flows throughout, so the hook's snapshots see
 * the same steady state. Everything reported is over that window: the
 * operations (messages, or round trips) counted in it, Gbit/s, latency
 * percentiles of the round trips that ended in it, the CPU use of this
 * process (getrusage) and of every core (/proc/stat; 100% = every core
 * busy, as in the paper), and this process's TSC cycles per operation
 * (isoperf_acct.c). A table on stdout, JSON with --json.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "isoperf_acct.h"

#define ISOPERF_MAGIC     0x69736f70u    /* "isop" */
#define ISOPERF_MAX_MSG   (1u << 20)
#define ISOPERF_MAX_CONNS 1024
#define LAT_SAMPLES_MAX   (1u << 22)     /* round trips timed, all connections */
/* Per-connection threads do little on their stacks: 1 MB keeps 1024 of
 * them (ISOPERF_MAX_CONNS) at 1 GB of address space, not 8 GB. */
#define ISOPERF_STACK     (1u << 20)

enum isoperf_mode { MODE_SEND = 1, MODE_RECV = 2, MODE_RR = 3 };

struct hello {                      /* client -> server, network order */
	uint32_t magic;
	uint32_t mode;
	uint32_t msg_len;
	uint32_t verify;
};

struct opts {
	const char *addr;
	const char *bind_addr;
	uint16_t port;
	enum isoperf_mode mode;
	unsigned int conns;
	uint32_t msg_len;
	double seconds;
	bool nodelay;
	bool verify;
	const char *json;
	const char *window_cmd;
};

static struct opts opt = {
	.port = 5201 + 100, .mode = MODE_SEND, .conns = 1, .msg_len = 64,
	.seconds = 5.0,
};

static void die(const char *what)
{
	fprintf(stderr, "isoperf: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* ---- The payload stream: xorshift bytes, checked with --verify -------- */

struct pattern {
	uint64_t state;
};

static void pattern_fill(struct pattern *pt, uint8_t *buf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		pt->state ^= pt->state << 13;
		pt->state ^= pt->state >> 7;
		pt->state ^= pt->state << 17;
		buf[i] = (uint8_t)pt->state;
	}
}

/* Returns the offset of the first wrong byte, or -1. */
static long pattern_check(struct pattern *pt, const uint8_t *buf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		pt->state ^= pt->state << 13;
		pt->state ^= pt->state >> 7;
		pt->state ^= pt->state << 17;
		if (buf[i] != (uint8_t)pt->state)
			return (long)i;
	}
	return -1;
}

/* ---- I/O helpers: whole messages, EINTR retried ----------------------- */

static int write_all(int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;

	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads exactly n bytes; returns n, 0 at EOF before any byte, or -errno. */
static ssize_t read_all(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;
	size_t got = 0;

	while (got < n) {
		ssize_t r = recv(fd, p + got, n - got, 0);

		if (r == 0)
			return got == 0 ? 0 : -EPIPE;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)r;
	}
	return (ssize_t)got;
}

static void thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	int rc;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, ISOPERF_STACK);
	rc = pthread_create(t, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		errno = rc;
		die("pthread_create");
	}
}

/* ---- Server ----------------------------------------------------------- */

struct server_conn {
	int fd;
};

static void *server_conn_main(void *arg)
{
	struct server_conn *sc = arg;
	struct hello h;
	struct pattern pt = { .state = 0 };
	uint64_t bytes = 0;
	uint8_t *buf;
	uint32_t len;
	int fd = sc->fd;

	free(sc);
	if (read_all(fd, &h, sizeof(h)) != sizeof(h) ||
	    ntohl(h.magic) != ISOPERF_MAGIC) {
		fprintf(stderr, "isoperf: server: bad hello, closing\n");
		close(fd);
		return NULL;
	}
	len = ntohl(h.msg_len);
	if (len == 0 || len > ISOPERF_MAX_MSG) {
		close(fd);
		return NULL;
	}
	buf = malloc(len);
	if (buf == NULL)
		die("malloc");
	pt.state = 0x9e3779b97f4a7c15ull ^ len;

	switch (ntohl(h.mode)) {
	case MODE_SEND:             /* count (and check) until EOF, report */
		for (;;) {
			ssize_t r = recv(fd, buf, len, 0);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			if (h.verify && pattern_check(&pt, buf, (size_t)r) >= 0) {
				fprintf(stderr, "isoperf: server: payload mismatch after %llu bytes\n",
					(unsigned long long)bytes);
				bytes = UINT64_MAX;
				break;
			}
			bytes += (uint64_t)r;
		}
		bytes = htobe64(bytes);
		write_all(fd, &bytes, sizeof(bytes));
		break;
	case MODE_RECV:             /* write until the client shuts down */
		for (;;) {
			if (h.verify)
				pattern_fill(&pt, buf, len);
			if (write_all(fd, buf, len) < 0)
				break;
		}
		break;
	case MODE_RR:               /* echo each message */
		for (;;) {
			if (read_all(fd, buf, len) <= 0)
				break;
			if (write_all(fd, buf, len) < 0)
				break;
		}
		break;
	}
	free(buf);
	close(fd);
	return NULL;
}

/* An address of either family, as bind and connect take it. */
union net_addr {
	struct sockaddr sa;
	struct sockaddr_in v4;
	struct sockaddr_in6 v6;
};

/* text (IPv4 or IPv6, numeric) and port -> *a and its length; 0 or -1. */
static int parse_addr(const char *text, uint16_t port, union net_addr *a, socklen_t *len)
{
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, text, &a->v4.sin_addr) == 1) {
		a->v4.sin_family = AF_INET;
		a->v4.sin_port = htons(port);
		*len = sizeof(a->v4);
		return 0;
	}
	if (inet_pton(AF_INET6, text, &a->v6.sin6_addr) == 1) {
		a->v6.sin6_family = AF_INET6;
		a->v6.sin6_port = htons(port);
		*len = sizeof(a->v6);
		return 0;
	}
	fprintf(stderr, "isoperf: bad address '%s'\n", text);
	return -1;
}

static int run_server(void)
{
	union net_addr sa;
	socklen_t salen;
	int one = 1;
	int lfd;

	if (parse_addr(opt.bind_addr ? opt.bind_addr : "0.0.0.0", opt.port, &sa, &salen) < 0)
		return 2;
	lfd = socket(sa.sa.sa_family, SOCK_STREAM, 0);
	if (lfd < 0)
		die("socket");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, &sa.sa, salen) < 0)
		die("bind");
	if (listen(lfd, 1024) < 0)
		die("listen");
	fprintf(stderr, "isoperf: server listening on %s:%u\n",
		opt.bind_addr ? opt.bind_addr : "0.0.0.0", opt.port);
	for (;;) {
		struct server_conn *sc;
		pthread_t t;
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			die("accept");
		}
		if (opt.nodelay)
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		sc = malloc(sizeof(*sc));
		if (sc == NULL)
			die("malloc");
		sc->fd = fd;
		thread_start(&t, server_conn_main, sc);
		pthread_detach(t);
	}
}

/* ---- Client ----------------------------------------------------------- */

/* The run's phases; the main thread moves them forward, the connections'
 * threads read them (relaxed: a message more or less at an edge is fine,
 * the counts the main thread samples are what it reports). */
enum { PHASE_WARM, PHASE_WINDOW, PHASE_AFTER, PHASE_STOP };
static atomic_int phase;

struct client_conn {
	pthread_t thread;
	int fd;
	unsigned int id;
	/* Written by the connection's thread only, read by the main thread at
	 * the window's edges. */
	_Atomic uint64_t bytes;     /* payload moved by this connection */
	_Atomic uint64_t msgs;
	uint64_t bytes0, msgs0;     /* main thread: at the window's start */
	uint64_t server_bytes;      /* send mode: what the server counted */
	uint32_t *lat_ns;           /* rr mode: round trips ended in the window */
	uint32_t nlat, maxlat;
	const char *error;
	int err;                    /* errno of a failed call, 0 if none */
};

static pthread_barrier_t start_barrier;

static bool running(void)
{
	return atomic_load_explicit(&phase, memory_order_relaxed) != PHASE_STOP;
}

/* One message or round trip done: publish the counts (plain stores). */
static void conn_count(struct client_conn *c, uint64_t bytes)
{
	atomic_store_explicit(&c->bytes, atomic_load_explicit(&c->bytes,
			      memory_order_relaxed) + bytes, memory_order_relaxed);
	atomic_store_explicit(&c->msgs, atomic_load_explicit(&c->msgs,
			      memory_order_relaxed) + 1, memory_order_relaxed);
}

static void client_send(struct client_conn *c, struct pattern *pt, uint8_t *buf)
{
	while (running()) {
		if (opt.verify)
			pattern_fill(pt, buf, opt.msg_len);
		if (write_all(c->fd, buf, opt.msg_len) < 0) {
			c->error = "send failed";
			c->err = errno;
			break;
		}
		conn_count(c, opt.msg_len);
	}
	shutdown(c->fd, SHUT_WR);
	if (read_all(c->fd, &c->server_bytes, sizeof(c->server_bytes)) == sizeof(c->server_bytes))
		c->server_bytes = be64toh(c->server_bytes);
	else if (c->error == NULL)
		c->error = "no byte count from the server";
}

static void client_recv(struct client_conn *c, struct pattern *pt, uint8_t *buf)
{
	while (running()) {
		ssize_t r = recv(c->fd, buf, opt.msg_len, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			c->error = "server closed early";
			break;
		}
		if (opt.verify && pattern_check(pt, buf, (size_t)r) >= 0) {
			c->error = "payload mismatch";
			break;
		}
		conn_count(c, (uint64_t)r);
	}
}

static void client_rr(struct client_conn *c, struct pattern *pt, uint8_t *buf,
		      uint8_t *sent)
{
	while (running()) {
		double t0 = isoperf_now(), t1;

		if (opt.verify)
			pattern_fill(pt, sent, opt.msg_len);
		if (write_all(c->fd, sent, opt.msg_len) < 0 ||
		    read_all(c->fd, buf, opt.msg_len) != (ssize_t)opt.msg_len) {
			c->error = "round trip failed";
			break;
		}
		t1 = isoperf_now();
		if (opt.verify && memcmp(buf, sent, opt.msg_len) != 0) {
			c->error = "echo differs from the request";
			break;
		}
		if (atomic_load_explicit(&phase, memory_order_relaxed) == PHASE_WINDOW &&
		    c->nlat < c->maxlat)
			c->lat_ns[c->nlat++] = (uint32_t)((t1 - t0) * 1e9);
		conn_count(c, opt.msg_len);
	}
}

static void *client_conn_main(void *arg)
{
	struct client_conn *c = arg;
	struct pattern pt = { .state = 0x9e3779b97f4a7c15ull ^ opt.msg_len };
	uint8_t *buf = malloc(opt.msg_len);
	uint8_t *sent = malloc(opt.msg_len);

	if (buf == NULL || sent == NULL)
		die("malloc");
	memset(buf, 0xa5, opt.msg_len);
	memset(sent, 0x5a, opt.msg_len);
	pthread_barrier_wait(&start_barrier);
	if (opt.mode == MODE_SEND)
		client_send(c, &pt, buf);
	else if (opt.mode == MODE_RECV)
		client_recv(c, &pt, buf);
	else
		client_rr(c, &pt, buf, sent);
	free(sent);
	free(buf);
	return NULL;
}

static int connect_one(const union net_addr *sa, socklen_t salen, unsigned int id)
{
	struct hello h = {
		.magic = htonl(ISOPERF_MAGIC), .mode = htonl(opt.mode),
		.msg_len = htonl(opt.msg_len), .verify = opt.verify,
	};
	int one = 1;
	int fd = socket(sa->sa.sa_family, SOCK_STREAM, 0);

	if (fd < 0)
		die("socket");
	if (connect(fd, &sa->sa, salen) < 0) {
		fprintf(stderr, "isoperf: connection %u: connect: %s\n", id, strerror(errno));
		exit(1);
	}
	if (opt.nodelay)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (write_all(fd, &h, sizeof(h)) < 0)
		die("hello");
	return fd;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static const char *mode_name(enum isoperf_mode m)
{
	return m == MODE_SEND ? "send" : m == MODE_RECV ? "recv" : "rr";
}

/* What the window measured. */
struct result {
	struct isoperf_cpu c0, c1;
	double secs;
	uint64_t bytes, ops;
	double p50, p99, p999;      /* us */
	double tsc_hz;
	int failures;
};

/* Nearest-rank percentile q of n sorted samples, in microseconds. */
static double percentile(const uint32_t *v, uint32_t n, double q)
{
	uint32_t k = (uint32_t)(q * n + 0.999999);

	if (n == 0)
		return 0;
	return v[k == 0 ? 0 : (k > n ? n : k) - 1] / 1000.0;
}

/* The round trips of every connection, in one sorted run, percentiles. */
static void latency_sum(struct result *r, struct client_conn *conns, uint32_t *lat)
{
	uint32_t n = 0;

	for (unsigned int i = 0; i < opt.conns; i++) {
		memmove(lat + n, conns[i].lat_ns, conns[i].nlat * sizeof(uint32_t));
		n += conns[i].nlat;
	}
	qsort(lat, n, sizeof(uint32_t), cmp_u32);
	r->p50 = percentile(lat, n, 0.50);
	r->p99 = percentile(lat, n, 0.99);
	r->p999 = percentile(lat, n, 0.999);
}

/*
 * The window: hook, samples, the duration, samples, hook (header comment).
 * The connections' threads are running when this is called.
 */
static void window_measure(struct result *r, struct client_conn *conns)
{
	struct timespec ts = {
		.tv_sec = (time_t)opt.seconds,
		.tv_nsec = (long)((opt.seconds - (time_t)opt.seconds) * 1e9),
	};

	if (isoperf_window_hook(opt.window_cmd, "start") != 0)
		r->failures++;
	isoperf_cpu_sample(&r->c0);
	for (unsigned int i = 0; i < opt.conns; i++) {
		conns[i].bytes0 = atomic_load_explicit(&conns[i].bytes, memory_order_relaxed);
		conns[i].msgs0 = atomic_load_explicit(&conns[i].msgs, memory_order_relaxed);
	}
	atomic_store(&phase, PHASE_WINDOW);
	/* The test's own clock: sleeping here is its duration, not a sync. */
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	atomic_store(&phase, PHASE_AFTER);
	isoperf_cpu_sample(&r->c1);
	for (unsigned int i = 0; i < opt.conns; i++) {
		r->bytes += atomic_load_explicit(&conns[i].bytes, memory_order_relaxed) -
			    conns[i].bytes0;
		r->ops += atomic_load_explicit(&conns[i].msgs, memory_order_relaxed) -
			  conns[i].msgs0;
	}
	/* A recv() returns what is there, not a message: the receiver's
	 * messages are its bytes in whole messages, as the sender counts. */
	if (opt.mode == MODE_RECV)
		r->ops = r->bytes / opt.msg_len;
	if (isoperf_window_hook(opt.window_cmd, "end") != 0)
		r->failures++;
	r->secs = r->c1.wall - r->c0.wall;
}

/* Stop and join every connection; count what went wrong. */
static void client_stop(struct result *r, struct client_conn *conns)
{
	atomic_store(&phase, PHASE_STOP);
	for (unsigned int i = 0; i < opt.conns; i++) {
		struct client_conn *c = &conns[i];

		if (opt.mode == MODE_RECV)
			shutdown(c->fd, SHUT_RDWR);     /* unblock recv */
		pthread_join(c->thread, NULL);
		close(c->fd);
		if (c->error && opt.mode != MODE_RECV) {
			fprintf(stderr, "isoperf: connection %u: %s%s%s\n", i, c->error,
				c->err ? ": " : "", c->err ? strerror(c->err) : "");
			r->failures++;
		}
		if (opt.mode == MODE_SEND && c->server_bytes != c->bytes) {
			fprintf(stderr, "isoperf: connection %u: sent %llu bytes, server received %llu\n",
				i, (unsigned long long)c->bytes,
				(unsigned long long)c->server_bytes);
			r->failures++;
		}
	}
}

static void report_json(const struct result *r, FILE *f)
{
	double app_s = r->c1.proc - r->c0.proc;
	int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);

	fprintf(f, "{\"tool\": \"isoperf\", \"mode\": \"%s\", \"conns\": %u, "
		"\"msg_bytes\": %u, \"seconds\": %.3f, \"window_s\": %.6f, "
		"\"bytes\": %llu, \"msgs\": %llu, \"ops\": %llu, "
		"\"msgs_per_s\": %.1f, \"gbit_per_s\": %.4f, ",
		mode_name(opt.mode), opt.conns, opt.msg_len, r->secs, r->secs,
		(unsigned long long)r->bytes, (unsigned long long)r->ops,
		(unsigned long long)r->ops, r->ops / r->secs,
		r->bytes * 8 / r->secs / 1e9);
	fprintf(f, "\"rtt_p50_us\": %.2f, \"rtt_p99_us\": %.2f, \"rtt_p999_us\": %.2f, ",
		r->p50, r->p99, r->p999);
	fprintf(f, "\"app_cpu_pct\": %.2f, \"sys_cpu_pct\": %.2f, "
		"\"cpu_total_pct\": %.2f, \"cpu_core_pct\": [",
		100.0 * app_s / r->secs / ncpu, isoperf_cpu_pct(&r->c0, &r->c1, 0),
		isoperf_cpu_pct(&r->c0, &r->c1, 0));
	for (int i = 0; i < r->c1.ncores; i++)
		fprintf(f, "%s%.2f", i ? ", " : "", isoperf_cpu_pct(&r->c0, &r->c1, i + 1));
	fprintf(f, "], \"app_cpu_s\": %.6f, \"tsc_hz\": %.0f, \"app_cycles_per_op\": ",
		app_s, r->tsc_hz);
	if (r->tsc_hz > 0 && r->ops > 0)
		fprintf(f, "%.1f", app_s * r->tsc_hz / (double)r->ops);
	else
		fprintf(f, "null");
	fprintf(f, ", \"cores\": %d, \"verified\": %s, \"failures\": %d}\n",
		ncpu, opt.verify ? "true" : "false", r->failures);
}

static void report(const struct result *r)
{
	double app_s = r->c1.proc - r->c0.proc;
	int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);

	printf("%-5s %6s %8s %12s %10s %9s %9s %8s %8s %9s %10s\n", "mode", "conns",
	       "msg_B", "msgs/s", "Gbit/s", "p50_us", "p99_us", "app_cpu%", "sys_cpu%",
	       "p99.9_us", "app_cyc/op");
	printf("%-5s %6u %8u %12.0f %10.3f %9.1f %9.1f %8.1f %8.1f %9.1f %10.0f\n",
	       mode_name(opt.mode), opt.conns, opt.msg_len, r->ops / r->secs,
	       r->bytes * 8 / r->secs / 1e9, r->p50, r->p99,
	       100.0 * app_s / r->secs / ncpu, isoperf_cpu_pct(&r->c0, &r->c1, 0), r->p999,
	       r->ops > 0 ? app_s * r->tsc_hz / (double)r->ops : 0);
	if (opt.json) {
		FILE *f = fopen(opt.json, "w");

		if (f == NULL)
			die(opt.json);
		report_json(r, f);
		if (fclose(f) != 0)
			die(opt.json);
	}
}

static int run_client(void)
{
	union net_addr sa;
	socklen_t salen;
	struct result r = { .tsc_hz = isoperf_tsc_hz() };
	struct client_conn *conns;
	uint32_t *lat = NULL;

	if (parse_addr(opt.addr, opt.port, &sa, &salen) < 0)
		return 2;
	conns = calloc(opt.conns, sizeof(*conns));
	if (conns == NULL)
		die("calloc");
	if (opt.mode == MODE_RR) {
		lat = calloc(LAT_SAMPLES_MAX, sizeof(*lat));
		if (lat == NULL)
			die("calloc");
	}
	pthread_barrier_init(&start_barrier, NULL, opt.conns + 1);
	for (unsigned int i = 0; i < opt.conns; i++) {
		conns[i].id = i;
		conns[i].fd = connect_one(&sa, salen, i);
		if (lat != NULL) {
			conns[i].maxlat = LAT_SAMPLES_MAX / opt.conns;
			conns[i].lat_ns = lat + (size_t)i * conns[i].maxlat;
		}
		thread_start(&conns[i].thread, client_conn_main, &conns[i]);
	}
	isoperf_window_clock();
	pthread_barrier_wait(&start_barrier);
	window_measure(&r, conns);
	client_stop(&r, conns);
	if (lat != NULL)
		latency_sum(&r, conns, lat);
	report(&r);
	free(lat);
	free(conns);
	return r.failures ? 1 : 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: isoperf server [-p PORT] [-B ADDR] [--nodelay]\n"
		"       isoperf client ADDR [-p PORT] [-m send|recv|rr] [-c CONNS]\n"
		"                      [-l BYTES] [-d SECONDS] [--nodelay] [--verify]\n"
		"                      [--json PATH] [--window-cmd PATH]\n"
		"The paper's TTCP-like streaming (send, recv) and request/response (rr)\n"
		"tests over plain BSD sockets; one thread per connection.\n"
		"--window-cmd PATH: run 'PATH start' just before the measuring window\n"
		"and 'PATH end' just after it (waited for; without LD_PRELOAD and the\n"
		"shim's ISOSTACK_CONTROL/REQUIRE/DISABLE/INHERIT, ISOSOCK_* variables).\n");
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "bind", required_argument, NULL, 'B' },
		{ "mode", required_argument, NULL, 'm' },
		{ "conns", required_argument, NULL, 'c' },
		{ "length", required_argument, NULL, 'l' },
		{ "duration", required_argument, NULL, 'd' },
		{ "nodelay", no_argument, NULL, 'N' },
		{ "verify", no_argument, NULL, 'V' },
		{ "json", required_argument, NULL, 'j' },
		{ "window-cmd", required_argument, NULL, 'W' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool server;
	int c;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	server = strcmp(argv[1], "server") == 0;
	if (!server && strcmp(argv[1], "client") != 0) {
		usage(stderr);
		return 2;
	}
	optind = 2;
	while ((c = getopt_long(argc, argv, "p:B:m:c:l:d:h", lopts, NULL)) != -1) {
		switch (c) {
		case 'p': opt.port = (uint16_t)atoi(optarg); break;
		case 'B': opt.bind_addr = optarg; break;
		case 'm':
			opt.mode = strcmp(optarg, "send") == 0 ? MODE_SEND :
				   strcmp(optarg, "recv") == 0 ? MODE_RECV :
				   strcmp(optarg, "rr") == 0 ? MODE_RR : 0;
			break;
		case 'c': opt.conns = (unsigned int)atoi(optarg); break;
		case 'l': opt.msg_len = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'd': opt.seconds = atof(optarg); break;
		case 'N': opt.nodelay = true; break;
		case 'V': opt.verify = true; break;
		case 'j': opt.json = optarg; break;
		case 'W': opt.window_cmd = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (opt.mode == 0 || opt.conns == 0 || opt.conns > ISOPERF_MAX_CONNS ||
	    opt.msg_len == 0 || opt.msg_len > ISOPERF_MAX_MSG || opt.seconds <= 0) {
		fprintf(stderr, "isoperf: bad option value (mode send|recv|rr, 1..%u conns, "
			"1..%u bytes, seconds > 0)\n", ISOPERF_MAX_CONNS, ISOPERF_MAX_MSG);
		return 2;
	}
	if (opt.window_cmd != NULL && access(opt.window_cmd, X_OK) != 0) {
		fprintf(stderr, "isoperf: --window-cmd %s: %s\n", opt.window_cmd,
			strerror(errno));
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (server)
		return run_server();
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	opt.addr = argv[optind];
	return run_client();
}
