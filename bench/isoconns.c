/*
 * isoconns: many concurrent TCP connections over plain BSD sockets, for
 * `isostack bench conns`; the same binary runs on the kernel stack and,
 * unmodified, on isostack through the LD_PRELOAD shim.
 *
 *   isoconns serve -p PORT[,PORT...] [-B ADDR]
 *   isoconns connect -n N -t ADDR:PORT[,ADDR:PORT...] [-s SRC[,SRC...]]
 *                    [-i INFLIGHT] [-T SECONDS]
 *
 * serve: one epoll loop over its listeners and every accepted connection;
 * accepts without blocking and echoes whatever arrives. It prints a line
 * when it listens, one on SIGUSR1 (how many connections it holds) and one
 * each time the last connection it held closes (drained).
 *
 * connect: N connections to the targets (round robin), each bound first to
 * the next source address when -s is given (IP_BIND_ADDRESS_NO_PORT, so the
 * kernel picks the port per 4-tuple at connect time and every source
 * address gives 28,000-odd ports per target), at most INFLIGHT connecting at
 * once (non-blocking connect + epoll). Then, stage by stage:
 *   established  time from the first connect() to the last completion;
 *   verified     8 bytes (magic + index) sent on each, the echo compared
 *                (when the echoes came: p50, p99, last);
 *   holding      the connections stay open, idle, until a line arrives on
 *                stdin (pipe or tty) or SIGUSR1, SIGTERM or SIGINT;
 *   held         each connection checked still open (a peek, no traffic);
 *   closed       all closed, the time the close() loop took.
 * A stage that makes no progress for -T seconds (default 30) gives up on
 * what is left and counts it failed; the later stages go on with the
 * connections that made it, so a run that fails says where and how many.
 *
 * Every report is one stdout line, "isoconns ROLE STAGE key=value ...",
 * times in CLOCK_MONOTONIC seconds (comparable across the processes of
 * one machine). connect exits 1 if any connection failed at any stage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ISOCONNS_MAGIC       0x69636f6eu     /* "icon" */
#define ISOCONNS_MAX_LIST    64              /* ports, targets, sources */
#define ISOCONNS_EVENTS      1024
#define ISOCONNS_MAX_ERRNO   256
#define ISOCONNS_LISTENER    (1ull << 63)    /* epoll tag of a listener */
#define ISOCONNS_SIGNAL      UINT32_MAX      /* epoll tag of the signalfd */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void fail(const char *what)
{
	fprintf(stderr, "isoconns: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: isoconns serve -p PORT[,PORT...] [-B ADDR]\n"
		"       isoconns connect -n N -t ADDR:PORT[,ADDR:PORT...] [-s SRC[,SRC...]]\n"
		"                        [-i INFLIGHT] [-T SECONDS]\n");
	exit(2);
}

/* The soft fd limit raised to the hard one; returns the new soft limit. */
static rlim_t raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		fail("getrlimit");
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		fail("setrlimit");
	return rl.rlim_cur;
}

/* Splits a comma-separated LIST in place into at most ISOCONNS_MAX_LIST
 * words; returns how many. */
static int split_list(char *list, char **words)
{
	int n = 0;

	for (char *save = NULL, *w = strtok_r(list, ",", &save); w != NULL;
	     w = strtok_r(NULL, ",", &save)) {
		if (n == ISOCONNS_MAX_LIST) {
			fprintf(stderr, "isoconns: more than %d items in a list\n",
				ISOCONNS_MAX_LIST);
			exit(2);
		}
		words[n++] = w;
	}
	return n;
}

static uint16_t parse_port(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v <= 0 || v > 65535) {
		fprintf(stderr, "isoconns: bad port '%s'\n", s);
		exit(2);
	}
	return (uint16_t)v;
}

static struct in_addr parse_addr(const char *s)
{
	struct in_addr a;

	if (inet_pton(AF_INET, s, &a) != 1) {
		fprintf(stderr, "isoconns: bad IPv4 address '%s'\n", s);
		exit(2);
	}
	return a;
}

/* SIGUSR1, SIGTERM, SIGINT and SIGHUP blocked and read from a signalfd,
 * which both roles watch in their epoll sets. */
static int signals_fd(void)
{
	sigset_t set;
	int fd;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		fail("sigprocmask");
	fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		fail("signalfd");
	return fd;
}

/* The next pending signal, or 0. */
static int signal_next(int sfd)
{
	struct signalfd_siginfo si;

	if (read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
		return 0;
	return (int)si.ssi_signo;
}

/* ---- serve ------------------------------------------------------------ */

struct server {
	int ep;
	long open, accepted, peak;
	bool accept_failed;
	/* connections closed before their client's close: a recv or send
	 * error (the first errno seen of each), a short send */
	long recv_failed, send_failed, send_short;
	int recv_errno, send_errno;
};

static void server_status(const struct server *s, const char *stage)
{
	printf("isoconns serve %s open=%ld accepted=%ld peak=%ld t=%.6f",
	       stage, s->open, s->accepted, s->peak, now_s());
	if (s->recv_failed || s->send_failed || s->send_short)
		printf(" recv_failed=%ld(%s) send_failed=%ld(%s) send_short=%ld",
		       s->recv_failed, s->recv_errno ? strerrorname_np(s->recv_errno) : "-",
		       s->send_failed, s->send_errno ? strerrorname_np(s->send_errno) : "-",
		       s->send_short);
	printf("\n");
	fflush(stdout);
}

/* Accepts until the backlog is empty. A failure other than "nothing to
 * accept" is reported once and takes the listener out of the set (an
 * EMFILE would otherwise wake the loop forever); the connections already
 * held stay served. */
static void server_accept(struct server *s, int lfd)
{
	for (;;) {
		struct epoll_event ev = { .events = EPOLLIN };
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			printf("isoconns serve error op=accept errno=%s open=%ld accepted=%ld t=%.6f\n",
			       strerrorname_np(errno), s->open, s->accepted, now_s());
			fflush(stdout);
			epoll_ctl(s->ep, EPOLL_CTL_DEL, lfd, NULL);
			s->accept_failed = true;
			return;
		}
		ev.data.u64 = (uint64_t)fd;
		if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
			printf("isoconns serve error op=epoll_ctl errno=%s open=%ld t=%.6f\n",
			       strerrorname_np(errno), s->open, now_s());
			fflush(stdout);
			close(fd);
			continue;
		}
		s->accepted++;
		if (++s->open > s->peak)
			s->peak = s->open;
	}
}

/* Echoes what FD has; closes it at EOF or on an error. */
static void server_echo(struct server *s, int fd)
{
	char buf[512];
	ssize_t r = recv(fd, buf, sizeof(buf), 0);

	ssize_t w;

	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r < 0) {
		if (s->recv_failed++ == 0)
			s->recv_errno = errno;
	} else if (r > 0) {
		/* The payloads are a few bytes on an idle connection: a short
		 * send means something is wrong with it, and the client sees no
		 * echo (the kernel never refuses them). */
		w = send(fd, buf, (size_t)r, MSG_NOSIGNAL);
		if (w == r)
			return;
		if (w >= 0)
			s->send_short++;
		else if (s->send_failed++ == 0)
			s->send_errno = errno;
	}
	close(fd);              /* also leaves the epoll set */
	if (--s->open == 0)
		server_status(s, "drained");
}

static int cmd_serve(int argc, char **argv)
{
	struct epoll_event evs[ISOCONNS_EVENTS];
	struct server s = { 0 };
	char *ports[ISOCONNS_MAX_LIST];
	const char *bind_addr = "0.0.0.0";
	char *port_list = NULL;
	int nports, sfd, c;
	rlim_t nofile;

	while ((c = getopt(argc, argv, "p:B:")) != -1) {
		switch (c) {
		case 'p': port_list = optarg; break;
		case 'B': bind_addr = optarg; break;
		default: usage();
		}
	}
	if (port_list == NULL)
		usage();
	nports = split_list(port_list, ports);
	nofile = raise_nofile();
	sfd = signals_fd();
	s.ep = epoll_create1(EPOLL_CLOEXEC);
	if (s.ep < 0)
		fail("epoll_create1");
	{
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = ISOCONNS_SIGNAL };

		if (epoll_ctl(s.ep, EPOLL_CTL_ADD, sfd, &ev) != 0)
			fail("epoll_ctl signalfd");
	}
	for (int i = 0; i < nports; i++) {
		struct sockaddr_in sa = {
			.sin_family = AF_INET,
			.sin_port = htons(parse_port(ports[i])),
			.sin_addr = parse_addr(bind_addr),
		};
		struct epoll_event ev = { .events = EPOLLIN };
		int one = 1;
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

		if (fd < 0)
			fail("socket");
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
			fail("bind");
		if (listen(fd, 65535) != 0)
			fail("listen");
		ev.data.u64 = ISOCONNS_LISTENER | (uint64_t)fd;
		if (epoll_ctl(s.ep, EPOLL_CTL_ADD, fd, &ev) != 0)
			fail("epoll_ctl listener");
	}
	printf("isoconns serve ready addr=%s ports=%d nofile=%lu pid=%d t=%.6f\n",
	       bind_addr, nports, (unsigned long)nofile, (int)getpid(), now_s());
	fflush(stdout);

	for (;;) {
		int n = epoll_wait(s.ep, evs, ISOCONNS_EVENTS, 1000);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			fail("epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			uint64_t tag = evs[i].data.u64;

			if (tag == ISOCONNS_SIGNAL) {
				int sig;

				while ((sig = signal_next(sfd)) != 0) {
					if (sig == SIGUSR1) {
						server_status(&s, "status");
						continue;
					}
					server_status(&s, "exit");
					return s.accept_failed ? 1 : 0;
				}
			} else if (tag & ISOCONNS_LISTENER) {
				server_accept(&s, (int)(tag & ~ISOCONNS_LISTENER));
			} else {
				server_echo(&s, (int)tag);
			}
		}
	}
}

/* ---- connect ---------------------------------------------------------- */

enum conn_state {
	CONN_IDLE, CONN_CONNECTING, CONN_UP, CONN_ECHOED, CONN_FAILED,
};

struct conn {
	int fd;
	uint8_t state;              /* enum conn_state */
	uint8_t got;                /* echo bytes received */
	uint8_t echo[8];
};

struct client {
	struct conn *conns;
	long n;
	int ep, sfd;
	struct sockaddr_in targets[ISOCONNS_MAX_LIST];
	struct in_addr sources[ISOCONNS_MAX_LIST];
	int ntargets, nsources;
	long inflight_max;
	double timeout;
	bool stop;                  /* SIGTERM/SIGINT/SIGHUP: give up, close */
	bool release;               /* SIGUSR1 while holding */
	long errs[ISOCONNS_MAX_ERRNO];
};

static void client_errno(struct client *c, int err)
{
	c->errs[err > 0 && err < ISOCONNS_MAX_ERRNO ? err : 0]++;
}

/* The errors counted since the last call, as "NAME:COUNT,...", then reset. */
static const char *client_errors(struct client *c)
{
	static char buf[1024];
	size_t off = 0;

	buf[0] = '\0';
	for (int e = 0; e < ISOCONNS_MAX_ERRNO; e++) {
		if (c->errs[e] == 0 || off >= sizeof(buf) - 64)
			continue;
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s:%ld",
					off ? "," : "", e ? strerrorname_np(e) : "other",
					c->errs[e]);
		c->errs[e] = 0;
	}
	return off ? buf : "none";
}

static void client_signals(struct client *c)
{
	int sig;

	while ((sig = signal_next(c->sfd)) != 0) {
		if (sig == SIGUSR1)
			c->release = true;
		else
			c->stop = true;
	}
}

static void conn_fail(struct client *c, struct conn *k, int err)
{
	client_errno(c, err);
	if (k->fd >= 0)
		close(k->fd);
	k->fd = -1;
	k->state = CONN_FAILED;
}

/* Starts connection I; 1 when it is in flight, 0 when it completed or
 * failed at once (state says which). */
static int conn_start(struct client *c, long i)
{
	struct conn *k = &c->conns[i];
	const struct sockaddr_in *dst = &c->targets[i % c->ntargets];
	struct epoll_event ev = { .events = EPOLLOUT, .data.u32 = (uint32_t)i };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	k->fd = fd;
	if (fd < 0) {
		conn_fail(c, k, errno);
		return 0;
	}
	if (c->nsources > 0) {
		struct sockaddr_in src = {
			.sin_family = AF_INET,
			.sin_addr = c->sources[(i / c->ntargets) % c->nsources],
		};
		int one = 1;

		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0) {
			conn_fail(c, k, errno);
			return 0;
		}
	}
	if (connect(fd, (const struct sockaddr *)dst, sizeof(*dst)) == 0) {
		k->state = CONN_UP;
		return 0;
	}
	if (errno != EINPROGRESS) {
		conn_fail(c, k, errno);
		return 0;
	}
	if (epoll_ctl(c->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
		conn_fail(c, k, errno);
		return 0;
	}
	k->state = CONN_CONNECTING;
	return 1;
}

/* Stage 1: every connection up or failed. Returns how many are up. */
static long client_establish(struct client *c)
{
	struct epoll_event evs[ISOCONNS_EVENTS];
	long next = 0, inflight = 0, up = 0, failed = 0;
	double t0 = now_s(), t1 = t0, progress = t0;

	while (up + failed < c->n && !c->stop) {
		while (inflight < c->inflight_max && next < c->n) {
			if (conn_start(c, next)) {
				inflight++;
			} else if (c->conns[next].state == CONN_UP) {
				up++;
				t1 = now_s();
			} else {
				failed++;
			}
			next++;
		}
		int n = epoll_wait(c->ep, evs, ISOCONNS_EVENTS, 100);

		if (n < 0 && errno != EINTR)
			fail("epoll_wait");
		for (int i = 0; i < n; i++) {
			struct conn *k;
			int err = 0;
			socklen_t len = sizeof(err);

			if (evs[i].data.u32 == ISOCONNS_SIGNAL) {
				client_signals(c);
				continue;
			}
			k = &c->conns[evs[i].data.u32];
			if (k->state != CONN_CONNECTING)
				continue;
			inflight--;
			progress = now_s();
			if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
				err = errno;
			if (err == 0 && (evs[i].events & EPOLLOUT)) {
				struct epoll_event ev = { .events = EPOLLIN,
							  .data.u32 = evs[i].data.u32 };

				epoll_ctl(c->ep, EPOLL_CTL_MOD, k->fd, &ev);
				k->state = CONN_UP;
				up++;
				t1 = progress;
			} else {
				conn_fail(c, k, err ? err : EPIPE);
				failed++;
			}
		}
		if (n <= 0 && now_s() - progress > c->timeout)
			break;
	}
	/* Gave up (timeout or signal): what is still connecting failed. */
	for (long i = 0; i < c->n; i++) {
		struct conn *k = &c->conns[i];

		if (k->state == CONN_CONNECTING || k->state == CONN_IDLE) {
			conn_fail(c, k, k->state == CONN_IDLE ? ECANCELED : ETIMEDOUT);
			failed++;
		}
	}
	printf("isoconns connect established n=%ld failed=%ld seconds=%.6f per_s=%.1f "
	       "t_start=%.6f t_end=%.6f errors=%s\n",
	       up, failed, t1 - t0, t1 > t0 ? up / (t1 - t0) : 0.0, t0, t1,
	       client_errors(c));
	fflush(stdout);
	return up;
}

/* Handles readable connection K during verification; 1 when its echo has
 * all come back right, -1 when it failed, 0 when more is to come. */
static int conn_echo(struct client *c, long i)
{
	struct conn *k = &c->conns[i];
	uint32_t want[2] = { htonl(ISOCONNS_MAGIC), htonl((uint32_t)i) };
	ssize_t r = recv(k->fd, k->echo + k->got, sizeof(k->echo) - k->got, 0);

	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (r <= 0) {
		conn_fail(c, k, r == 0 ? ECONNRESET : errno);
		return -1;
	}
	k->got = (uint8_t)(k->got + r);
	if (k->got < sizeof(k->echo))
		return 0;
	if (memcmp(k->echo, want, sizeof(want)) != 0) {
		conn_fail(c, k, EBADMSG);
		return -1;
	}
	k->state = CONN_ECHOED;
	return 1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The q-quantile of the n sorted times t (0 when there are none). */
static double quantile(const double *t, long n, double q)
{
	return n == 0 ? 0.0 : t[(long)(q * (double)(n - 1))];
}

/* Stage 2: 8 bytes out on each connection, the echo checked. Returns how
 * many echoed; reports when the echoes came (seconds from the first send:
 * p50, p99, last), which tells a slow tail from a slow whole. */
static long client_verify(struct client *c, long up)
{
	struct epoll_event evs[ISOCONNS_EVENTS];
	long ok = 0, failed = 0;
	double t0 = now_s(), progress = t0;
	double *when = malloc(sizeof(*when) * (size_t)(up > 0 ? up : 1));

	if (when == NULL)
		fail("malloc");

	for (long i = 0; i < c->n; i++) {
		struct conn *k = &c->conns[i];
		uint32_t msg[2] = { htonl(ISOCONNS_MAGIC), htonl((uint32_t)i) };

		if (k->state != CONN_UP)
			continue;
		if (send(k->fd, msg, sizeof(msg), MSG_NOSIGNAL) != (ssize_t)sizeof(msg)) {
			conn_fail(c, k, errno);
			failed++;
		}
	}
	while (ok + failed < up && !c->stop) {
		int n = epoll_wait(c->ep, evs, ISOCONNS_EVENTS, 100);

		if (n < 0 && errno != EINTR)
			fail("epoll_wait");
		for (int i = 0; i < n; i++) {
			long idx = evs[i].data.u32;
			int r;

			if (evs[i].data.u32 == ISOCONNS_SIGNAL) {
				client_signals(c);
				continue;
			}
			if (c->conns[idx].state != CONN_UP)
				continue;
			r = conn_echo(c, idx);
			if (r != 0) {
				progress = now_s();
				if (r > 0) {
					/* Idle from here on: no events. */
					struct epoll_event ev = { .events = 0, .data.u32 = (uint32_t)idx };

					epoll_ctl(c->ep, EPOLL_CTL_MOD, c->conns[idx].fd, &ev);
					when[ok++] = progress - t0;
				} else {
					failed++;
				}
			}
		}
		if (n <= 0 && now_s() - progress > c->timeout)
			break;
	}
	for (long i = 0; i < c->n; i++) {
		if (c->conns[i].state == CONN_UP) {
			conn_fail(c, &c->conns[i], ETIMEDOUT);
			failed++;
		}
	}
	qsort(when, (size_t)ok, sizeof(*when), cmp_double);
	printf("isoconns connect verified ok=%ld failed=%ld seconds=%.6f p50=%.6f p99=%.6f "
	       "last=%.6f errors=%s\n", ok, failed, now_s() - t0, quantile(when, ok, 0.5),
	       quantile(when, ok, 0.99), quantile(when, ok, 1.0), client_errors(c));
	fflush(stdout);
	free(when);
	return ok;
}

/* Stage 3: idle until told. stdin counts only when it is a pipe or a tty
 * (a line or EOF); /dev/null would end the hold at once. */
static void client_hold(struct client *c, long ok)
{
	struct stat st;
	struct pollfd p[2] = {
		{ .fd = c->sfd, .events = POLLIN },
		{ .fd = STDIN_FILENO, .events = POLLIN },
	};
	int np = 1;

	if (fstat(STDIN_FILENO, &st) == 0 && (S_ISFIFO(st.st_mode) || isatty(STDIN_FILENO)))
		np = 2;
	printf("isoconns connect holding n=%ld pid=%d t=%.6f\n", ok, (int)getpid(), now_s());
	fflush(stdout);
	while (!c->stop && !c->release) {
		if (poll(p, (nfds_t)np, -1) < 0 && errno != EINTR)
			fail("poll");
		if (p[0].revents)
			client_signals(c);
		if (np == 2 && p[1].revents)
			break;
	}
}

/* Stage 4: still open after the hold (a peek: EAGAIN is an idle, open
 * connection), then all closed. */
static long client_close(struct client *c)
{
	long alive = 0, lost = 0, closed = 0;
	double t0, t1;
	char b;

	for (long i = 0; i < c->n; i++) {
		struct conn *k = &c->conns[i];

		if (k->state != CONN_ECHOED)
			continue;
		if (recv(k->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) < 0 &&
		    (errno == EAGAIN || errno == EWOULDBLOCK)) {
			alive++;
		} else {
			client_errno(c, errno ? errno : ECONNRESET);
			lost++;
		}
	}
	printf("isoconns connect held alive=%ld lost=%ld errors=%s t=%.6f\n",
	       alive, lost, client_errors(c), now_s());
	fflush(stdout);
	t0 = now_s();
	for (long i = 0; i < c->n; i++) {
		if (c->conns[i].fd >= 0) {
			close(c->conns[i].fd);
			c->conns[i].fd = -1;
			closed++;
		}
	}
	t1 = now_s();
	printf("isoconns connect closed n=%ld seconds=%.6f t_start=%.6f t_end=%.6f\n",
	       closed, t1 - t0, t0, t1);
	fflush(stdout);
	return lost;
}

static int cmd_connect(int argc, char **argv)
{
	static struct client c = { .inflight_max = 128, .timeout = 30.0 };
	char *list[ISOCONNS_MAX_LIST];
	char *targets = NULL, *sources = NULL;
	long up, ok, lost;
	rlim_t nofile;
	int opt;

	while ((opt = getopt(argc, argv, "n:t:s:i:T:")) != -1) {
		switch (opt) {
		case 'n': c.n = atol(optarg); break;
		case 't': targets = optarg; break;
		case 's': sources = optarg; break;
		case 'i': c.inflight_max = atol(optarg); break;
		case 'T': c.timeout = atof(optarg); break;
		default: usage();
		}
	}
	if (targets == NULL || c.n <= 0 || c.n >= (long)UINT32_MAX ||
	    c.inflight_max <= 0 || c.timeout <= 0)
		usage();
	c.ntargets = split_list(targets, list);
	for (int i = 0; i < c.ntargets; i++) {
		char *colon = strrchr(list[i], ':');

		if (colon == NULL)
			usage();
		*colon = '\0';
		c.targets[i] = (struct sockaddr_in){
			.sin_family = AF_INET,
			.sin_port = htons(parse_port(colon + 1)),
			.sin_addr = parse_addr(list[i]),
		};
	}
	if (sources != NULL) {
		c.nsources = split_list(sources, list);
		for (int i = 0; i < c.nsources; i++)
			c.sources[i] = parse_addr(list[i]);
	}
	nofile = raise_nofile();
	if ((rlim_t)c.n + 16 > nofile) {
		fprintf(stderr, "isoconns: %ld connections need more fds than this process may "
			"open (RLIMIT_NOFILE %lu): spread them over more processes\n",
			c.n, (unsigned long)nofile);
		return 2;
	}
	c.conns = calloc((size_t)c.n, sizeof(*c.conns));
	if (c.conns == NULL)
		fail("calloc");
	for (long i = 0; i < c.n; i++)
		c.conns[i].fd = -1;
	c.sfd = signals_fd();
	c.ep = epoll_create1(EPOLL_CLOEXEC);
	if (c.ep < 0)
		fail("epoll_create1");
	{
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = ISOCONNS_SIGNAL };

		if (epoll_ctl(c.ep, EPOLL_CTL_ADD, c.sfd, &ev) != 0)
			fail("epoll_ctl signalfd");
	}

	up = client_establish(&c);
	ok = client_verify(&c, up);
	client_hold(&c, ok);
	lost = client_close(&c);
	free(c.conns);
	return up == c.n && ok == c.n && lost == 0 && !c.stop ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	if (strcmp(argv[1], "serve") == 0)
		return cmd_serve(argc - 1, argv + 1);
	if (strcmp(argv[1], "connect") == 0)
		return cmd_connect(argc - 1, argv + 1);
	usage();
}
