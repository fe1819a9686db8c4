/*
 * hostile_app: an application that attaches to isostackd like the shim
 * does and then, for a while, does to its own segment and command rings
 * everything the protocol forbids (issue 14, point 2), so that a test can
 * watch the daemon shrug it off while another application's transfer runs.
 *
 *   hostile_app CONTROL SECONDS SEED [ID,ID,...]
 *
 * It runs in sessions: attach, open a few TCP sockets, then abuse for
 * a quarter of a second, picking kinds with a seeded generator:
 *   bad_len      commands whose lengths and values are out of range
 *                (address length 0/1/33/2^40, option length > 24,
 *                backlog 2^33, how 3.., nonzero flags and unused args)
 *   bad_slot     a command whose sock is not its ring's, SOCKET off slot 0,
 *                doorbell entries naming ids past max_sockets
 *   foreign      commands on socket ids of another application (small ids
 *                and the IDs given, e.g. read from isostat): in our segment
 *                they are ids of ours that we never opened
 *   opcode       unknown opcodes (14..65535, and event codes)
 *   extent       CTL_EXTENT for extents that are not ours
 *   idx_back     a fresh socket's cmd_prod moved backwards, doorbell rung
 *   idx_jump     ... moved far forwards
 *   status_jump  a fresh socket's status_cons past status_prod, then a NOP
 *   rx_jump      a fresh socket's rx_cons past rx_prod, then a RECV
 *   stack_words  random words over a fresh socket's directory entry (ring
 *                offsets, sizes, extent ids) and the stack's line of its
 *                socket block, then a NOP, a SEND and a RECV: the stack
 *                never reads them back (its own copies are private)
 *   bell_fd      the doorbell fd written 10,000 times in a row
 *   cmd_flood    every command ring kept full (NOP, SEND, GETSOCKNAME)
 *                for 20 ms, statuses drained
 *   db_flood     one doorbell ring filled with repeats of our ids, with no
 *                repeat suppression
 * and ends the session with one of
 *   db_back / db_jump  the doorbell's prod moved behind the stack's cons /
 *                two rings past it: the daemon must drop the application
 *   garbage      a control message with a bad magic: the same
 * after which it waits for the daemon's hang-up and attaches again.
 * HOSTILE_ONLY=KIND,KIND... picks only those kinds within a session, and
 * HOSTILE_SESSION_MS sets a session's length (250): to see what costs the
 * victim what.  SIGTERM (or the time) ends it; it prints what it did per kind and the
 * replies it got ("kind NAME N replies ok=.. EINVAL=.. ...").
 * Exit 0 if it could attach at all, 1 otherwise.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "happ.h"
#include "isostack/ctl_proto.h"

enum kind {
	K_BAD_LEN, K_BAD_SLOT, K_FOREIGN, K_OPCODE, K_EXTENT,
	K_IDX_BACK, K_IDX_JUMP, K_STATUS_JUMP, K_RX_JUMP, K_STACK_WORDS,
	K_BELL_FD, K_CMD_FLOOD, K_DB_FLOOD,
	K_DB_BACK, K_DB_JUMP, K_GARBAGE,
	K_COUNT
};
#define K_ABUSES K_DB_BACK          /* kinds picked within a session */

static const char *const kind_name[K_COUNT] = {
	"bad_len", "bad_slot", "foreign", "opcode", "extent",
	"idx_back", "idx_jump", "status_jump", "rx_jump", "stack_words",
	"bell_fd", "cmd_flood", "db_flood",
	"db_back", "db_jump", "garbage",
};

enum { RP_OK, RP_EINVAL, RP_EBADF, RP_ENOENT, RP_OTHER, RP_COUNT };
static const char *const reply_name[RP_COUNT] = { "ok", "EINVAL", "EBADF", "ENOENT", "other" };

#define MAX_OWN       8
#define MAX_FOREIGN   64
#define MAX_TOUCHED   256
#define SESSION_MS    250
#define FRESH_MAX     24        /* sockets a session breaks on purpose */

struct tally {
	uint64_t done[K_COUNT];     /* abuses, or entries/writes for floods */
	uint64_t reply[K_COUNT][RP_COUNT];
	uint64_t sessions, dropped, not_dropped, attach_fail;
};

struct hostile {
	struct happ a;
	uint64_t rng;
	uint32_t own[MAX_OWN];
	unsigned nown;
	uint32_t foreign[MAX_FOREIGN];
	unsigned nforeign;
	uint32_t touched[MAX_TOUCHED];  /* ids whose statuses we drain */
	unsigned ntouched;
	uint32_t fresh_ids[FRESH_MAX];  /* sockets opened to be broken */
	unsigned fresh;
	bool only[K_ABUSES];            /* HOSTILE_ONLY: the kinds picked */
	int64_t session_ms;
	struct tally t;
};

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static uint64_t rnd(struct hostile *h)
{
	/* xorshift64*: seeded, so a run can be repeated */
	h->rng ^= h->rng >> 12;
	h->rng ^= h->rng << 25;
	h->rng ^= h->rng >> 27;
	return h->rng * UINT64_C(2685821657736338717);
}

static void touch(struct hostile *h, uint32_t id)
{
	for (unsigned i = 0; i < h->ntouched; i++)
		if (h->touched[i] == id)
			return;
	if (h->ntouched < MAX_TOUCHED)
		h->touched[h->ntouched++] = id;
}

/* The cookie of a command of kind k: its top byte says the kind (plus
 * one: happ_call's cookies, whose top byte is 0, are not tallied). */
static uint64_t cookie(struct hostile *h, enum kind k)
{
	return ((uint64_t)k + 1) << 56 | ++h->a.cookie;
}

static void on_status(void *arg, const struct isostack_shm_status *st)
{
	struct hostile *h = arg;
	unsigned k = (unsigned)(st->cookie >> 56) - 1;
	int r;

	if (k >= K_COUNT)
		return;             /* an event, or a late reply to happ_call */
	switch (st->result >= 0 ? 0 : (int)-st->result) {
	case 0: r = RP_OK; break;
	case EINVAL: r = RP_EINVAL; break;
	case EBADF: r = RP_EBADF; break;
	case ENOENT: r = RP_ENOENT; break;
	default: r = RP_OTHER; break;
	}
	h->t.reply[k][r]++;
}

static void drain(struct hostile *h)
{
	for (unsigned i = 0; i < h->ntouched; i++)
		happ_status_drain(&h->a, h->touched[i], on_status, h);
}

/* One command of kind k on ring `ring`, its doorbell rung. */
static void send_cmd(struct hostile *h, enum kind k, uint32_t ring, struct isostack_shm_cmd *c)
{
	c->cookie = cookie(h, k);
	touch(h, ring);
	if (happ_cmd_push(&h->a, ring, c) == 0) {
		drain(h);
		if (happ_cmd_push(&h->a, ring, c) == 0)
			return;     /* the stack is behind: try another time */
	}
	happ_bell(&h->a, 0, ring);
	h->t.done[k]++;
}

static uint32_t own_sock(struct hostile *h)
{
	return h->own[rnd(h) % h->nown];
}

static void do_bad_len(struct hostile *h)
{
	static const uint64_t addrlen[] = { 0, 1, 33, 1000, UINT64_C(1) << 40 };
	uint32_t s = own_sock(h);
	uint64_t r = rnd(h);
	struct isostack_shm_cmd c = { .sock = s };

	switch (r % 8) {
	case 0: c.opcode = ISOSTACK_SHM_OP_BIND; c.arg[0] = addrlen[(r >> 8) % 5]; break;
	case 1: /* a length in range, bytes past it */
		c.opcode = ISOSTACK_SHM_OP_CONNECT; c.arg[0] = 8; c.arg[4] = r | 1; break;
	case 2: c.opcode = ISOSTACK_SHM_OP_SETSOCKOPT; c.arg[0] = 1; c.arg[1] = 7;
		c.arg[2] = 25 + (r >> 8) % 4096; break;
	case 3: c.opcode = ISOSTACK_SHM_OP_LISTEN; c.arg[0] = UINT64_C(1) << 33; break;
	case 4: c.opcode = ISOSTACK_SHM_OP_SHUTDOWN; c.arg[0] = 3 + (r >> 8) % 1000; break;
	case 5: c.opcode = ISOSTACK_SHM_OP_SEND; c.arg[0] = UINT64_C(1) << 40; break;
	case 6: c.opcode = ISOSTACK_SHM_OP_NOP; c.flags = (uint16_t)(1 + (r >> 8) % 65535); break;
	default: c.opcode = ISOSTACK_SHM_OP_GETSOCKNAME; c.arg[5] = r | 1; break;
	}
	send_cmd(h, K_BAD_LEN, s, &c);
}

static void do_bad_slot(struct hostile *h)
{
	uint32_t s = own_sock(h);
	uint64_t r = rnd(h);
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_GETSOCKNAME, .sock = s };

	switch (r % 3) {
	case 0:  /* another id than the ring's */
		c.sock = (uint32_t)(s + 1 + (r >> 8) % 1000);
		send_cmd(h, K_BAD_SLOT, s, &c);
		break;
	case 1:  /* SOCKET on a socket's ring */
		c.opcode = ISOSTACK_SHM_OP_SOCKET;
		c.arg[0] = AF_INET;
		c.arg[1] = SOCK_STREAM;
		send_cmd(h, K_BAD_SLOT, s, &c);
		break;
	default: /* a doorbell naming an id past the segment */
		if (happ_bell(&h->a, 0, h->a.h->max_sockets + (uint32_t)((r >> 8) % 100000)))
			h->t.done[K_BAD_SLOT]++;
		break;
	}
}

static void do_foreign(struct hostile *h)
{
	static const uint16_t ops[] = {
		ISOSTACK_SHM_OP_CLOSE, ISOSTACK_SHM_OP_SEND, ISOSTACK_SHM_OP_RECV,
		ISOSTACK_SHM_OP_GETPEERNAME, ISOSTACK_SHM_OP_SHUTDOWN, ISOSTACK_SHM_OP_ACCEPT,
	};
	uint64_t r = rnd(h);
	uint32_t id = h->foreign[r % h->nforeign];
	struct isostack_shm_cmd c = { .opcode = ops[(r >> 16) % 6], .sock = id };
	struct isostack_shm_sockdir *dir;

	if (id == 0 || id >= h->a.h->max_sockets)
		return;
	for (unsigned i = 0; i < h->nown; i++)
		if (h->own[i] == id)
			return;     /* ours after all */
	for (unsigned i = 0; i < h->fresh; i++)
		if (h->fresh_ids[i] == id)
			return;
	/* An id the stack ever opened for us has its generations moved: a
	 * SOCKET whose reply came after happ_socket gave up is ours too. */
	dir = (struct isostack_shm_sockdir *)(h->a.base + h->a.h->dir_off) + id;
	if (atomic_load(&dir->tx_gen) != 0 || atomic_load(&dir->rx_gen) != 0)
		return;
	if (c.opcode == ISOSTACK_SHM_OP_SHUTDOWN)
		c.arg[0] = 2;
	send_cmd(h, K_FOREIGN, id, &c);
}

static void do_opcode(struct hostile *h)
{
	uint64_t r = rnd(h);
	uint32_t s = own_sock(h);
	struct isostack_shm_cmd c = { .sock = s };

	c.opcode = (r & 1) ? (uint16_t)(0x100 + (r >> 8) % 8)
			   : (uint16_t)(ISOSTACK_SHM_OP_MAX + 1 + (r >> 8) % (65535 - ISOSTACK_SHM_OP_MAX));
	send_cmd(h, K_OPCODE, s, &c);
}

static void do_extent(struct hostile *h)
{
	uint64_t r = rnd(h), off, size;
	uint32_t id = (r & 1) ? UINT32_MAX - (uint32_t)(r >> 40) : 1024 + (uint32_t)(r >> 48);
	int fd = happ_extent(&h->a, id, &off, &size);

	h->t.done[K_EXTENT]++;
	if (fd >= 0) {
		close(fd);
		h->t.reply[K_EXTENT][RP_OK]++;
	} else {
		h->t.reply[K_EXTENT][fd == -ENOENT ? RP_ENOENT : RP_OTHER]++;
	}
}

/* A socket opened to be broken (never used again). */
static int fresh_sock(struct hostile *h)
{
	int s;

	if (h->fresh >= FRESH_MAX)
		return -1;
	s = happ_socket(&h->a, SOCK_STREAM, 2000);
	if (s <= 0)
		return -1;
	h->fresh_ids[h->fresh++] = (uint32_t)s;
	return s;
}

static void do_index(struct hostile *h, enum kind k)
{
	int s = fresh_sock(h);
	struct isostack_shm_sock *sk;
	struct isostack_shm_cmd c = { 0 };
	uint64_t r = rnd(h);

	if (s < 0)
		return;
	sk = happ_sock(&h->a, (uint32_t)s);
	c.sock = (uint32_t)s;
	switch (k) {
	case K_IDX_BACK:
		atomic_fetch_sub(&sk->cmd_prod, 1 + (uint32_t)(r % 1000));
		happ_bell(&h->a, 0, (uint32_t)s);
		break;
	case K_IDX_JUMP:
		atomic_fetch_add(&sk->cmd_prod, h->a.h->cmd_entries + 1 + (uint32_t)(r % 100000));
		happ_bell(&h->a, 0, (uint32_t)s);
		break;
	case K_STATUS_JUMP:
		atomic_fetch_add(&sk->status_cons, h->a.h->status_entries + 1 + (uint32_t)(r % 1000));
		c.opcode = ISOSTACK_SHM_OP_NOP;
		c.cookie = cookie(h, k);
		if (happ_cmd_push(&h->a, (uint32_t)s, &c))
			happ_bell(&h->a, 0, (uint32_t)s);
		break;
	default: /* K_RX_JUMP */
		atomic_fetch_add(&sk->rx_cons, (UINT32_C(1) << 20) + (uint32_t)(r % 4096));
		c.opcode = ISOSTACK_SHM_OP_RECV;
		if (happ_cmd_push(&h->a, (uint32_t)s, &c))
			happ_bell(&h->a, 0, (uint32_t)s);
		break;
	}
	h->t.done[k]++;
}

static void do_stack_words(struct hostile *h)
{
	int s = fresh_sock(h);
	uint32_t *dir, *line;
	static const uint16_t ops[] = {
		ISOSTACK_SHM_OP_NOP, ISOSTACK_SHM_OP_SEND, ISOSTACK_SHM_OP_RECV,
	};

	if (s < 0)
		return;
	dir = (uint32_t *)((struct isostack_shm_sockdir *)(h->a.base + h->a.h->dir_off) + s);
	line = (uint32_t *)&happ_sock(&h->a, (uint32_t)s)->cmd_cons;
	for (unsigned i = 0; i < 16; i++) {
		dir[i] = (uint32_t)rnd(h);
		line[i] = (uint32_t)rnd(h);
	}
	/* Our own pushes read cmd_cons back: put it where the ring is (the
	 * stack republishes its copy at its next read anyway). */
	atomic_store(&happ_sock(&h->a, (uint32_t)s)->cmd_cons,
		     atomic_load(&happ_sock(&h->a, (uint32_t)s)->cmd_prod));
	for (unsigned i = 0; i < 3; i++) {
		struct isostack_shm_cmd c = { .opcode = ops[i], .sock = (uint32_t)s };

		c.cookie = cookie(h, K_STACK_WORDS);
		if (happ_cmd_push(&h->a, (uint32_t)s, &c) == 0)
			break;
	}
	happ_bell(&h->a, 0, (uint32_t)s);
	h->t.done[K_STACK_WORDS]++;
}

static void do_bell_fd(struct hostile *h)
{
	uint64_t one = 1;

	for (int i = 0; i < 10000; i++)
		if (write(h->a.bell, &one, sizeof(one)) == sizeof(one))
			h->t.done[K_BELL_FD]++;
}

static void do_cmd_flood(struct hostile *h)
{
	int64_t end = happ_now_ms() + 20;

	while (happ_now_ms() < end && !stop) {
		for (unsigned i = 0; i <= h->nown; i++) {
			uint32_t s = i < h->nown ? h->own[i] : ISOSTACK_SHM_CTRL_SOCK;
			struct isostack_shm_cmd c = { .sock = s };
			unsigned n = 0;

			touch(h, s);
			do {
				uint64_t r = rnd(h);

				c.opcode = s == 0 ? ISOSTACK_SHM_OP_NOP
					 : (r & 1) ? ISOSTACK_SHM_OP_SEND : ISOSTACK_SHM_OP_GETSOCKNAME;
				c.cookie = cookie(h, K_CMD_FLOOD);
			} while (happ_cmd_push(&h->a, s, &c) == 1 && ++n < 64);
			if (n > 0)
				happ_bell(&h->a, 0, s);
			h->t.done[K_CMD_FLOOD] += n;
		}
		drain(h);
	}
}

static void do_db_flood(struct hostile *h)
{
	for (unsigned i = 0; i < 16384; i++) {
		uint32_t id = i % (h->nown + 1) == h->nown ? 0 : h->own[i % (h->nown + 1)];

		if (!happ_bell(&h->a, 0, id))
			break;
		h->t.done[K_DB_FLOOD]++;
	}
}

static void do_abuse(struct hostile *h, enum kind k)
{
	switch (k) {
	case K_BAD_LEN: do_bad_len(h); break;
	case K_BAD_SLOT: do_bad_slot(h); break;
	case K_FOREIGN: do_foreign(h); break;
	case K_OPCODE: do_opcode(h); break;
	case K_EXTENT: do_extent(h); break;
	case K_IDX_BACK:
	case K_IDX_JUMP:
	case K_STATUS_JUMP:
	case K_RX_JUMP: do_index(h, k); break;
	case K_STACK_WORDS: do_stack_words(h); break;
	case K_BELL_FD: do_bell_fd(h); break;
	case K_CMD_FLOOD: do_cmd_flood(h); break;
	case K_DB_FLOOD: do_db_flood(h); break;
	default: break;
	}
}

/* The last act of a session: something the daemon must drop us for. */
static void end_session(struct hostile *h, enum kind k)
{
	struct isostack_shm_doorbell *d = happ_db(&h->a, 0);
	uint32_t r = (uint32_t)rnd(h);
	bool dropped;

	/* Relative to what the stack consumed, not to our prod: moved back
	 * by less than the entries it has not read yet, prod would only look
	 * like fewer new entries (seen: a session not dropped).  The stack
	 * may consume up to a ring more after our load of cons (it reads
	 * what we published), so a jump goes two rings past it. */
	uint32_t cons = atomic_load_explicit(&d->cons, memory_order_acquire);

	switch (k) {
	case K_DB_BACK:
		atomic_store(&d->prod, cons - 1 - r % 100);
		break;
	case K_DB_JUMP:
		atomic_store(&d->prod, cons + 2 * h->a.h->doorbell_entries + 1 + r % 1000);
		break;
	default: {
		struct isostack_ctl_hdr g = { .magic = r | 1, .version = 7, .type = 99,
					      .length = sizeof(g) };

		(void)send(h->a.ctl, &g, sizeof(g), MSG_NOSIGNAL);
		break;
	}
	}
	h->t.done[k]++;
	dropped = happ_hung_up(&h->a, 5000);
	if (dropped)
		h->t.dropped++;
	else
		h->t.not_dropped++;
	printf("hostile: session %llu ended with %s: %s\n", (unsigned long long)h->t.sessions,
	       kind_name[k], dropped ? "dropped" : "NOT DROPPED");
	fflush(stdout);
}

static int session(struct hostile *h, const char *ctl, bool first)
{
	int64_t end;
	int rc = happ_attach(&h->a, ctl, "hostile_app");

	if (rc < 0) {
		h->t.attach_fail++;
		if (first)
			fprintf(stderr, "hostile: attach: %s\n", strerror(-rc));
		return rc;
	}
	h->t.sessions++;
	h->nown = h->ntouched = h->fresh = 0;
	touch(h, ISOSTACK_SHM_CTRL_SOCK);
	while (h->nown < 3) {
		int s = happ_socket(&h->a, SOCK_STREAM, 2000);

		if (s <= 0)
			break;
		h->own[h->nown++] = (uint32_t)s;
		touch(h, (uint32_t)s);
	}
	if (first) {
		printf("hostile: attached as app %u, sockets", h->a.app_id);
		for (unsigned i = 0; i < h->nown; i++)
			printf(" %u", h->own[i]);
		printf("\n");
		fflush(stdout);
	}
	if (h->nown == 0) {
		happ_detach(&h->a);
		return -ENOBUFS;
	}
	end = happ_now_ms() + h->session_ms;
	while (!stop && happ_now_ms() < end) {
		enum kind k = (enum kind)(rnd(h) % K_ABUSES);

		if (h->only[k])
			do_abuse(h, k);
		drain(h);
	}
	end_session(h, (enum kind)(K_DB_BACK + h->t.sessions % 3));
	happ_detach(&h->a);
	return 0;
}

static void report(const struct hostile *h)
{
	printf("hostile: sessions %llu, dropped by the daemon %llu, not dropped %llu, "
	       "attach failures %llu\n", (unsigned long long)h->t.sessions,
	       (unsigned long long)h->t.dropped, (unsigned long long)h->t.not_dropped,
	       (unsigned long long)h->t.attach_fail);
	for (int k = 0; k < K_COUNT; k++) {
		printf("kind %s %llu replies", kind_name[k], (unsigned long long)h->t.done[k]);
		for (int r = 0; r < RP_COUNT; r++)
			printf(" %s=%llu", reply_name[r], (unsigned long long)h->t.reply[k][r]);
		printf("\n");
	}
	fflush(stdout);
}

/* HOSTILE_ONLY: a comma-separated list of kinds; NULL: all of them. */
static void pick_kinds(struct hostile *h, const char *only)
{
	for (int k = 0; k < K_ABUSES; k++) {
		size_t n = strlen(kind_name[k]);
		const char *q = only;

		h->only[k] = only == NULL;
		while (q != NULL && *q != '\0') {
			size_t len = strcspn(q, ",");

			if (len == n && strncmp(q, kind_name[k], n) == 0)
				h->only[k] = true;
			q += len + (q[len] == ',');
		}
	}
}

int main(int argc, char **argv)
{
	static struct hostile h;
	struct sigaction sa = { .sa_handler = on_term };
	int64_t end;
	char *p;

	if (argc < 4) {
		fprintf(stderr, "usage: hostile_app CONTROL SECONDS SEED [ID,ID,...]\n");
		return 2;
	}
	end = happ_now_ms() + (int64_t)(strtod(argv[2], NULL) * 1000);
	h.rng = strtoull(argv[3], NULL, 0) * 2 + 1;
	/* another application's ids: small ones, and the ones given */
	for (uint32_t id = 1; id <= 16; id++)
		h.foreign[h.nforeign++] = id;
	for (p = argc > 4 ? argv[4] : NULL; p != NULL && *p != '\0' && h.nforeign < MAX_FOREIGN;) {
		h.foreign[h.nforeign++] = (uint32_t)strtoul(p, &p, 10);
		if (*p == ',')
			p++;
		else
			break;
	}
	h.session_ms = getenv("HOSTILE_SESSION_MS") ? atoll(getenv("HOSTILE_SESSION_MS"))
						    : SESSION_MS;
	pick_kinds(&h, getenv("HOSTILE_ONLY"));
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	printf("hostile: seed %s, %s s, %u foreign ids\n", argv[3], argv[2], h.nforeign);
	fflush(stdout);
	if (session(&h, argv[1], true) < 0)
		return 1;
	while (!stop && happ_now_ms() < end) {
		if (session(&h, argv[1], false) < 0) {
			struct timespec ts = { 0, 10 * 1000 * 1000 };

			nanosleep(&ts, NULL);   /* attach refused: back off, not a sync */
		}
	}
	report(&h);
	return 0;
}
