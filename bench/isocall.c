/*
 * isocall: what one send() or recv() costs on the application's core, in
 * ns per call, for a stream socket whose ring has room (send) or data
 * (recv).  Plain BSD sockets, so the same binary measures the kernel and,
 * under LD_PRELOAD, libisosock.  The peer is an `isoperf server` (its
 * hello protocol: bench/isoperf.c).
 *
 *   isocall ADDR [-p PORT] [-m send|recv] [-l BYTES] [-n CALLS] [-b BATCH]
 *                [--json PATH]
 *
 * Calls are timed in batches of BATCH with CLOCK_MONOTONIC around the
 * whole batch (a clock read per call would cost more than the call we
 * are after).  A batch counts as clean when every call in it did the
 * whole job at once without waiting:
 *   send: each send(MSG_DONTWAIT) took all BYTES; a batch in which one
 *         met a full buffer (EAGAIN or a short count) is counted apart
 *         and the rest of it is sent after poll(POLLOUT);
 *   recv: before the batch, FIONREAD (untimed) says how many messages
 *         are there (BATCH at most; after 200 us whatever is there: the
 *         batch is then that long); each recv(MSG_DONTWAIT) returns BYTES.
 * The figures are the clean batches' ns per call (min, p10, p50, p90,
 * mean); the overall rate includes the waits.  Bytes are checked: the
 * server's count of what it received (send), the isoperf payload stream
 * (recv).  Prints a line and, with --json, a record; asserts nothing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ISOPERF_MAGIC 0x69736f70u   /* bench/isoperf.c's hello */
#define MODE_SEND     1
#define MODE_RECV     2
#define WARMUP        16            /* batches run before timing */
#define FILL_WAIT_NS  (200LL * 1000)

struct hello {
	uint32_t magic, mode, msg_len, verify;
};

static struct {
	const char *addr, *json;
	uint16_t port;
	int mode;
	uint32_t len, batch;
	uint64_t calls;
} opt = { .port = 5301, .mode = MODE_SEND, .len = 64, .batch = 64, .calls = 2000000 };

struct result {
	double *ns;                 /* per clean batch, ns per call */
	uint64_t clean, dirty, calls, bytes, waits;
	int64_t t0;                 /* the first timed batch's start */
	double secs;
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "isocall: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* isoperf's payload stream (its pattern_check), as the server writes it. */
static long stream_check(uint64_t *state, const uint8_t *buf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		*state ^= *state << 13;
		*state ^= *state >> 7;
		*state ^= *state << 17;
		if (buf[i] != (uint8_t)*state)
			return (long)i;
	}
	return -1;
}

static void wait_for(int fd, short ev)
{
	struct pollfd p = { .fd = fd, .events = ev };

	while (poll(&p, 1, 1000) < 0)
		if (errno != EINTR)
			die("poll");
}

/* The rest of a message a short or refused send left, waiting as needed. */
static void send_rest(int fd, const uint8_t *p, size_t n, struct result *r)
{
	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (k > 0) {
			p += k;
			n -= (size_t)k;
			continue;
		}
		if (k < 0 && errno != EAGAIN && errno != EINTR)
			die("send");
		r->waits++;
		wait_for(fd, POLLOUT);
	}
}

static void run_send(int fd, struct result *r, uint64_t batches)
{
	uint8_t *buf = malloc(opt.len);

	if (buf == NULL)
		die("malloc");
	memset(buf, 0xa5, opt.len);
	for (uint64_t b = 0; b < batches + WARMUP; b++) {
		bool clean = true;
		int64_t t0 = now_ns(), t1;

		if (b == WARMUP)
			r->t0 = t0;
		for (uint32_t i = 0; i < opt.batch; i++) {
			ssize_t k = send(fd, buf, opt.len, MSG_DONTWAIT | MSG_NOSIGNAL);

			if (k == (ssize_t)opt.len)
				continue;
			if (k < 0 && errno != EAGAIN && errno != EINTR)
				die("send");
			clean = false;
			send_rest(fd, buf + (k > 0 ? k : 0), opt.len - (size_t)(k > 0 ? k : 0), r);
		}
		t1 = now_ns();
		if (b < WARMUP)
			continue;
		r->calls += opt.batch;
		r->bytes += (uint64_t)opt.batch * opt.len;
		if (clean)
			r->ns[r->clean++] = (double)(t1 - t0) / opt.batch;
		else
			r->dirty++;
	}
	free(buf);
}

/* Messages readable now, up to the batch: FIONREAD, looked at every
 * 20 us for up to 200 us until a whole batch is there (sleeping, so a
 * peer on this core gets to write; not longer, since a receiver that
 * reads nothing announces no window and the sender stops). */
static uint32_t ready_msgs(int fd)
{
	int64_t until = now_ns() + FILL_WAIT_NS;
	int n = 0;

	for (;;) {
		if (ioctl(fd, FIONREAD, &n) < 0)
			die("FIONREAD");
		if ((uint32_t)n >= opt.batch * opt.len || (n >= (int)opt.len && now_ns() > until))
			break;
		if (n < (int)opt.len)
			wait_for(fd, POLLIN);
		else
			nanosleep(&(struct timespec){ .tv_nsec = 20000 }, NULL);
	}
	n /= (int)opt.len;
	return (uint32_t)n < opt.batch ? (uint32_t)n : opt.batch;
}

static void run_recv(int fd, struct result *r, uint64_t batches)
{
	uint8_t *buf = malloc((size_t)opt.batch * opt.len);
	uint64_t state = 0x9e3779b97f4a7c15ull ^ opt.len;

	if (buf == NULL)
		die("malloc");
	for (uint64_t b = 0; b < batches + WARMUP; b++) {
		uint32_t m = ready_msgs(fd);
		size_t got = 0;
		bool clean = true;
		int64_t t0 = now_ns(), t1;

		if (b == WARMUP)
			r->t0 = t0;
		for (uint32_t i = 0; i < m; i++) {
			ssize_t k = recv(fd, buf + got, opt.len, MSG_DONTWAIT);

			if (k == 0) {
				fprintf(stderr, "isocall: the server closed early\n");
				exit(1);
			}
			if (k < 0) {
				if (errno != EAGAIN && errno != EINTR)
					die("recv");
				clean = false;
				break;
			}
			if ((size_t)k != opt.len)
				clean = false;
			got += (size_t)k;
		}
		t1 = now_ns();
		if (stream_check(&state, buf, got) >= 0) {
			fprintf(stderr, "isocall: payload mismatch after %llu bytes\n",
				(unsigned long long)(r->bytes + got));
			exit(1);
		}
		if (b < WARMUP)
			continue;
		r->calls += m;
		r->bytes += got;
		if (clean && m > 0)
			r->ns[r->clean++] = (double)(t1 - t0) / m;
		else
			r->dirty++;
	}
	free(buf);
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(const struct result *r, double p)
{
	return r->clean ? r->ns[(size_t)(p * (double)(r->clean - 1))] : 0;
}

static void report(const struct result *r, uint64_t server_bytes)
{
	double mean = 0;
	const char *name = opt.mode == MODE_SEND ? "send" : "recv";

	for (uint64_t i = 0; i < r->clean; i++)
		mean += r->ns[i];
	mean = r->clean ? mean / (double)r->clean : 0;
	printf("%-4s %6s %6s %10s %8s %8s %8s %8s %8s %8s %12s\n", "call", "bytes", "batch",
	       "calls", "clean%", "min", "p10", "p50", "p90", "mean", "overall ns");
	printf("%-4s %6u %6u %10llu %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f %12.1f\n", name, opt.len,
	       opt.batch, (unsigned long long)r->calls,
	       100.0 * (double)r->clean / (double)(r->clean + r->dirty), pct(r, 0), pct(r, 0.1),
	       pct(r, 0.5), pct(r, 0.9), mean, r->secs * 1e9 / (double)r->calls);
	if (opt.json == NULL)
		return;
	FILE *f = fopen(opt.json, "w");

	if (f == NULL)
		die(opt.json);
	fprintf(f, "{\"tool\": \"isocall\", \"call\": \"%s\", \"msg_bytes\": %u, \"batch\": %u, "
		"\"calls\": %llu, \"bytes\": %llu, \"server_bytes\": %llu, "
		"\"clean_batches\": %llu, \"other_batches\": %llu, \"waits\": %llu, "
		"\"ns_per_call\": {\"min\": %.1f, \"p10\": %.1f, \"p50\": %.1f, \"p90\": %.1f, "
		"\"mean\": %.1f}, \"overall_ns_per_call\": %.1f, \"seconds\": %.3f}\n",
		name, opt.len, opt.batch, (unsigned long long)r->calls,
		(unsigned long long)r->bytes, (unsigned long long)server_bytes,
		(unsigned long long)r->clean, (unsigned long long)r->dirty,
		(unsigned long long)r->waits, pct(r, 0), pct(r, 0.1), pct(r, 0.5), pct(r, 0.9),
		mean, r->secs * 1e9 / (double)r->calls, r->secs);
	fclose(f);
}

static int connect_to(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(opt.port) };
	int fd;

	if (inet_pton(AF_INET, opt.addr, &sa.sin_addr) != 1) {
		fprintf(stderr, "isocall: bad address '%s'\n", opt.addr);
		exit(2);
	}
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		die("socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("connect");
	return fd;
}

/* Send mode's end: our write side shut, the server's 8-byte count. */
static uint64_t server_count(int fd)
{
	uint64_t v = 0;
	size_t got = 0;

	if (shutdown(fd, SHUT_WR) < 0)
		die("shutdown");
	while (got < sizeof(v)) {
		ssize_t k = recv(fd, (uint8_t *)&v + got, sizeof(v) - got, 0);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			fprintf(stderr, "isocall: no byte count from the server\n");
			exit(1);
		}
		got += (size_t)k;
	}
	return be64toh(v);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: isocall ADDR [-p PORT] [-m send|recv] [-l BYTES] [-n CALLS] "
		   "[-b BATCH] [--json PATH]\n"
		   "ns per send()/recv() on this core, against an 'isoperf server' "
		   "(default port 5301,\n64 B, 2000000 calls in batches of 64)\n");
}

static void parse(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "json", required_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "p:m:l:n:b:h", lo, NULL)) != -1) {
		switch (c) {
		case 'p': opt.port = (uint16_t)atoi(optarg); break;
		case 'm': opt.mode = strcmp(optarg, "send") == 0 ? MODE_SEND :
				     strcmp(optarg, "recv") == 0 ? MODE_RECV : 0; break;
		case 'l': opt.len = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'n': opt.calls = strtoull(optarg, NULL, 0); break;
		case 'b': opt.batch = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'j': opt.json = optarg; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind != argc - 1 || opt.mode == 0 || opt.len == 0 || opt.len > 65536 ||
	    opt.batch == 0 || opt.batch > 4096 || opt.calls < opt.batch) {
		usage(stderr);
		exit(2);
	}
	opt.addr = argv[optind];
}

int main(int argc, char **argv)
{
	struct result r = { 0 };
	uint64_t batches, server_bytes = 0;
	int fd;

	parse(argc, argv);
	batches = opt.calls / opt.batch;
	r.ns = calloc(batches, sizeof(double));
	if (r.ns == NULL)
		die("calloc");
	fd = connect_to();
	struct hello h = { htonl(ISOPERF_MAGIC), htonl((uint32_t)opt.mode), htonl(opt.len),
			   htonl(opt.mode == MODE_RECV) };

	if (send(fd, &h, sizeof(h), MSG_NOSIGNAL) != (ssize_t)sizeof(h))
		die("hello");
	if (opt.mode == MODE_SEND)
		run_send(fd, &r, batches);
	else
		run_recv(fd, &r, batches);
	r.secs = (double)(now_ns() - r.t0) / 1e9;
	if (opt.mode == MODE_SEND) {
		server_bytes = server_count(fd);
		if (server_bytes != r.bytes + (uint64_t)WARMUP * opt.batch * opt.len) {
			fprintf(stderr, "isocall: the server received %llu bytes, we sent %llu\n",
				(unsigned long long)server_bytes,
				(unsigned long long)(r.bytes + (uint64_t)WARMUP * opt.batch * opt.len));
			return 1;
		}
	}
	close(fd);
	qsort(r.ns, r.clean, sizeof(double), cmp_dbl);
	report(&r, server_bytes);
	free(r.ns);
	return 0;
}
