/*
 * isoperf: the paper's micro-benchmarks (section 5) as one plain BSD-socket
 * program, so the same binary runs on the kernel stack and, unmodified,
 * on isostack through the LD_PRELOAD shim.
 *
 *   isoperf server [-p PORT] [-B ADDR]
 *   isoperf client ADDR [-p PORT] [-m send|recv|rr] [-c CONNS] [-l BYTES]
 *                  [-d SECONDS] [--nodelay] [--verify] [--json PATH]
 *
 * One thread per connection on both sides, as the paper's "multi-threaded
 * TTCP-like application, where each thread sends or receives data over a
 * single socket". Each connection opens with a 16-byte hello naming the mode
 * and message size; then
 *   send: the client writes messages for the duration (server receives);
 *   recv: the server writes, the client receives (the client's receive path);
 *   rr:   the client sends one message and waits for the server to echo it
 *         (request/response, section 5.4), timing each round trip.
 * The client ends the test by shutting down its write side; in send mode the
 * server answers with the byte count it received, so both ends agree. With
 * --verify the payload is a per-connection pseudo-random stream that the
 * receiver checks byte by byte.
 *
 * Reported: messages/s, Gbit/s, round trips/s and latency percentiles, and
 * CPU use: this process (getrusage) and the whole machine (/proc/stat), in
 * the paper's terms (100% = every core busy). A table on stdout, JSON with
 * --json.
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ISOPERF_MAGIC     0x69736f70u    /* "isop" */
#define ISOPERF_MAX_MSG   (1u << 20)
#define ISOPERF_MAX_CONNS 1024
#define LAT_SAMPLES_MAX   (1u << 20)

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
};

static struct opts opt = {
	.port = 5201 + 100, .mode = MODE_SEND, .conns = 1, .msg_len = 64,
	.seconds = 5.0,
};

static atomic_bool stop_flag;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

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

/* ---- CPU accounting -------------------------------------------------- */

struct cpu_sample {
	double wall;
	double proc;                /* user + system seconds of this process */
	unsigned long long busy, total;  /* /proc/stat jiffies, all cores */
};

static void cpu_sample(struct cpu_sample *s)
{
	struct rusage ru;
	unsigned long long v[10] = { 0 };
	FILE *f;

	s->wall = now_s();
	getrusage(RUSAGE_SELF, &ru);
	s->proc = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
		  ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
	s->busy = s->total = 0;
	f = fopen("/proc/stat", "r");
	if (f != NULL) {
		if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
			   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
			   &v[7], &v[8], &v[9]) >= 8) {
			for (int i = 0; i < 8; i++)
				s->total += v[i];
			s->busy = s->total - v[3] - v[4];   /* less idle, iowait */
		}
		fclose(f);
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

static int run_server(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(opt.port) };
	int one = 1;
	int lfd;

	if (opt.bind_addr && inet_pton(AF_INET, opt.bind_addr, &sa.sin_addr) != 1) {
		fprintf(stderr, "isoperf: bad address '%s'\n", opt.bind_addr);
		return 2;
	}
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0)
		die("socket");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
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
		if (pthread_create(&t, NULL, server_conn_main, sc) != 0)
			die("pthread_create");
		pthread_detach(t);
	}
}

/* ---- Client ----------------------------------------------------------- */

struct client_conn {
	pthread_t thread;
	int fd;
	unsigned int id;
	uint64_t bytes;             /* payload moved by this connection */
	uint64_t msgs;
	uint64_t server_bytes;      /* send mode: what the server counted */
	uint32_t *lat_ns;           /* rr mode: round-trip samples */
	uint32_t nlat;
	const char *error;
};

static pthread_barrier_t start_barrier;

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

	switch (opt.mode) {
	case MODE_SEND:
		while (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
			if (opt.verify)
				pattern_fill(&pt, buf, opt.msg_len);
			if (write_all(c->fd, buf, opt.msg_len) < 0) {
				c->error = "send failed";
				break;
			}
			c->bytes += opt.msg_len;
			c->msgs++;
		}
		shutdown(c->fd, SHUT_WR);
		if (read_all(c->fd, &c->server_bytes, sizeof(c->server_bytes)) == sizeof(c->server_bytes))
			c->server_bytes = be64toh(c->server_bytes);
		else if (c->error == NULL)
			c->error = "no byte count from the server";
		break;
	case MODE_RECV:
		while (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
			ssize_t r = recv(c->fd, buf, opt.msg_len, 0);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				c->error = "server closed early";
				break;
			}
			if (opt.verify && pattern_check(&pt, buf, (size_t)r) >= 0) {
				c->error = "payload mismatch";
				break;
			}
			c->bytes += (uint64_t)r;
			c->msgs++;
		}
		break;
	case MODE_RR:
		while (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
			double t0 = now_s();

			if (opt.verify)
				pattern_fill(&pt, sent, opt.msg_len);
			if (write_all(c->fd, sent, opt.msg_len) < 0 ||
			    read_all(c->fd, buf, opt.msg_len) != (ssize_t)opt.msg_len) {
				c->error = "round trip failed";
				break;
			}
			if (opt.verify && memcmp(buf, sent, opt.msg_len) != 0) {
				c->error = "echo differs from the request";
				break;
			}
			if (c->nlat < LAT_SAMPLES_MAX / opt.conns)
				c->lat_ns[c->nlat++] = (uint32_t)((now_s() - t0) * 1e9);
			c->bytes += opt.msg_len;
			c->msgs++;
		}
		break;
	}
	free(sent);
	free(buf);
	return NULL;
}

static int connect_one(const struct sockaddr_in *sa, unsigned int id)
{
	struct hello h = {
		.magic = htonl(ISOPERF_MAGIC), .mode = htonl(opt.mode),
		.msg_len = htonl(opt.msg_len), .verify = opt.verify,
	};
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		die("socket");
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0) {
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

static int run_client(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(opt.port) };
	struct client_conn *conns;
	struct cpu_sample c0, c1;
	uint64_t bytes = 0, msgs = 0;
	uint32_t *lat = NULL, nlat = 0;
	double secs, p50 = 0, p99 = 0, proc_pct, sys_pct;
	int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
	int failures = 0;

	if (inet_pton(AF_INET, opt.addr, &sa.sin_addr) != 1) {
		fprintf(stderr, "isoperf: bad address '%s'\n", opt.addr);
		return 2;
	}
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
		conns[i].fd = connect_one(&sa, i);
		conns[i].lat_ns = lat ? lat + (size_t)i * (LAT_SAMPLES_MAX / opt.conns) : NULL;
		if (pthread_create(&conns[i].thread, NULL, client_conn_main, &conns[i]) != 0)
			die("pthread_create");
	}
	cpu_sample(&c0);
	pthread_barrier_wait(&start_barrier);
	{
		struct timespec ts = {
			.tv_sec = (time_t)opt.seconds,
			.tv_nsec = (long)((opt.seconds - (time_t)opt.seconds) * 1e9),
		};

		/* The test's own clock: sleeping here is its duration, not a sync. */
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	atomic_store(&stop_flag, true);
	cpu_sample(&c1);
	for (unsigned int i = 0; i < opt.conns; i++) {
		if (opt.mode == MODE_RECV)
			shutdown(conns[i].fd, SHUT_RDWR);     /* unblock recv */
		pthread_join(conns[i].thread, NULL);
		close(conns[i].fd);
		bytes += conns[i].bytes;
		msgs += conns[i].msgs;
		if (conns[i].error && !(opt.mode == MODE_RECV)) {
			fprintf(stderr, "isoperf: connection %u: %s\n", i, conns[i].error);
			failures++;
		}
		if (opt.mode == MODE_SEND && conns[i].server_bytes != conns[i].bytes) {
			fprintf(stderr, "isoperf: connection %u: sent %llu bytes, server received %llu\n",
				i, (unsigned long long)conns[i].bytes,
				(unsigned long long)conns[i].server_bytes);
			failures++;
		}
	}
	secs = c1.wall - c0.wall;
	if (lat) {
		uint32_t *all = malloc(sizeof(uint32_t) * LAT_SAMPLES_MAX);

		for (unsigned int i = 0; i < opt.conns; i++) {
			memcpy(all + nlat, conns[i].lat_ns, conns[i].nlat * sizeof(uint32_t));
			nlat += conns[i].nlat;
		}
		if (nlat > 0) {
			qsort(all, nlat, sizeof(uint32_t), cmp_u32);
			p50 = all[nlat / 2] / 1000.0;
			p99 = all[(uint32_t)(nlat * 0.99)] / 1000.0;
		}
		free(all);
	}
	proc_pct = 100.0 * (c1.proc - c0.proc) / secs / ncpu;
	sys_pct = c1.total > c0.total ?
		100.0 * (double)(c1.busy - c0.busy) / (double)(c1.total - c0.total) : 0;

	printf("%-5s %6s %8s %12s %10s %9s %9s %8s %8s\n", "mode", "conns", "msg_B",
	       "msgs/s", "Gbit/s", "p50_us", "p99_us", "app_cpu%", "sys_cpu%");
	printf("%-5s %6u %8u %12.0f %10.3f %9.1f %9.1f %8.1f %8.1f\n",
	       mode_name(opt.mode), opt.conns, opt.msg_len, msgs / secs,
	       bytes * 8 / secs / 1e9, p50, p99, proc_pct, sys_pct);
	if (opt.json) {
		FILE *f = fopen(opt.json, "w");

		if (f == NULL)
			die(opt.json);
		fprintf(f, "{\"tool\": \"isoperf\", \"mode\": \"%s\", \"conns\": %u, "
			"\"msg_bytes\": %u, \"seconds\": %.3f, \"bytes\": %llu, "
			"\"msgs\": %llu, \"msgs_per_s\": %.1f, \"gbit_per_s\": %.4f, "
			"\"rtt_p50_us\": %.2f, \"rtt_p99_us\": %.2f, "
			"\"app_cpu_pct\": %.2f, \"sys_cpu_pct\": %.2f, \"cores\": %d, "
			"\"verified\": %s, \"failures\": %d}\n",
			mode_name(opt.mode), opt.conns, opt.msg_len, secs,
			(unsigned long long)bytes, (unsigned long long)msgs,
			msgs / secs, bytes * 8 / secs / 1e9, p50, p99, proc_pct,
			sys_pct, ncpu, opt.verify ? "true" : "false", failures);
		fclose(f);
	}
	free(lat);
	free(conns);
	return failures ? 1 : 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: isoperf server [-p PORT] [-B ADDR] [--nodelay]\n"
		"       isoperf client ADDR [-p PORT] [-m send|recv|rr] [-c CONNS]\n"
		"                      [-l BYTES] [-d SECONDS] [--nodelay] [--verify]\n"
		"                      [--json PATH]\n"
		"The paper's TTCP-like streaming (send, recv) and request/response (rr)\n"
		"tests over plain BSD sockets; one thread per connection.\n");
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
