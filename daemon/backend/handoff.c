/*
 * Sockets passed between applications with SCM_RIGHTS (docs/sockets.md,
 * "Passing sockets (SCM_RIGHTS)").  An application's fd for an isostack
 * socket is a kernel object standing in for it (an eventfd, or a kernel
 * socket for a listener); the socket itself is a slot of the sender's
 * segment, which the receiver cannot reach.  So:
 *   - the sender's shim, before the fd travels, registers it (CTL_HANDOFF,
 *     with the fd itself: we keep it as the proof of identity);
 *   - the receiver's shim asks about every fd it receives (CTL_CLAIM with
 *     its pid and fd number); kcmp(KCMP_FILE) tells whether that fd is the
 *     very file we keep, which only a process the file was passed to can
 *     hold;
 *   - the socket then moves: a new slot in the claimer's segment, the lwIP
 *     pcb handed to it, the bytes received and not read copied across (as
 *     pbufs the RX pump writes into the new ring), a listener's backlog
 *     moved child by child.  The old slot is dead from then on.
 * A connection moves only once every byte its sender wrote is
 * acknowledged (TX is zero-copy out of the old segment): -EAGAIN until
 * then, and the shim asks again.
 *
 * While a socket is in flight its CLOSE (from the sender, or from the
 * stack when the sender died) waits for the claim, at most
 * ISOSTACK_CTL_HANDOFF_TTL_MS; then the close runs as it would have (the
 * peer sees a FIN or RST).  An application with sockets in flight stays
 * (draining) after it is gone, so the receiver can still take them.
 * Cost: a linear scan of at most ISOD_HANDOFF_MAX entries per CLOSE while
 * any is in flight, one kcmp per entry per claim.  The loop's pass costs
 * one comparison with the earliest deadline (`due`) until a held CLOSE is
 * due: a socket in flight stays up to 10 s, and walking the table at every
 * pass meanwhile was work for nothing.
 */
#include <assert.h>
#include <errno.h>
#include <linux/kcmp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lwip/pbuf.h"

#include "internal.h"
#include "log.h"

#define ISOD_HANDOFF_MAX 64
/* Received bytes copied across go in pbufs of at most this many bytes
 * (pbuf lengths are 16-bit). */
#define CHUNK 32768u

struct entry {
	struct isod_app *app;        /* NULL: free */
	uint32_t id;
	int fd;                      /* the sender's file, kept as the proof */
	bool held;                   /* its CLOSE waits in `close` */
	struct isostack_shm_cmd close;
	uint32_t deadline;           /* held: when the CLOSE runs anyway */
};

struct isod_handoff {
	struct entry e[ISOD_HANDOFF_MAX];
	unsigned n;                  /* entries in use */
	unsigned held;               /* of which hold a CLOSE */
	/* held > 0: the earliest deadline among them, or an earlier time (an
	 * entry claimed or dropped leaves it as it was: one walk for nothing,
	 * never a CLOSE run late) */
	uint32_t due;
};

static struct entry *find_sock(struct isod_backend *be, const struct isod_sock *sk)
{
	struct isod_handoff *h = be->handoff;

	for (unsigned i = 0; h != NULL && h->n > 0 && i < ISOD_HANDOFF_MAX; i++)
		if (h->e[i].app == sk->app && h->e[i].id == sk->id)
			return &h->e[i];
	return NULL;
}

static void entry_drop(struct isod_backend *be, struct entry *e)
{
	if (e->held)
		be->handoff->held--;
	close(e->fd);
	e->app = NULL;
	e->fd = -1;
	be->handoff->n--;
}

int isod_handoff_register(struct isod_app *app, uint32_t id, int fd)
{
	struct isod_backend *be = app->be;
	struct isod_sock *sk;
	struct entry *e;

	if (id == 0 || id >= app->hiwat || !app->socks[id].in_use || app->socks[id].quarantined) {
		close(fd);
		return -EINVAL;
	}
	sk = &app->socks[id];
	if (sk->udp || (sk->state != ISOD_S_LISTEN && sk->state != ISOD_S_CONNECTED &&
			sk->state != ISOD_S_DEAD) || sk->close_pending) {
		close(fd);
		return -EINVAL;
	}
	if (sk->rp != NULL || sk->reuseport) {
		close(fd);
		return -EOPNOTSUPP;
	}
	if (find_sock(be, sk) != NULL) {
		close(fd);     /* in flight already: the first file proves it */
		return 0;
	}
	if (be->handoff == NULL && (be->handoff = calloc(1, sizeof(*be->handoff))) == NULL) {
		close(fd);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < ISOD_HANDOFF_MAX; i++) {
		e = &be->handoff->e[i];
		if (e->app != NULL)
			continue;
		*e = (struct entry){ .app = app, .id = id, .fd = fd };
		be->handoff->n++;
		be->st.handoffs++;
		return 0;
	}
	close(fd);
	return -ENOSPC;
}

bool isod_handoff_hold_close(struct isod_sock *sk, const struct isostack_shm_cmd *c)
{
	struct isod_backend *be = sk->app->be;
	struct entry *e = find_sock(be, sk);

	if (e == NULL)
		return false;
	if (e->held)
		return true;  /* the stack's close after the sender's (it died) */
	e->held = true;
	e->close = *c;
	e->deadline = isod_backend_now(be) + ISOSTACK_CTL_HANDOFF_TTL_MS;
	if (be->handoff->held++ == 0 || (int32_t)(e->deadline - be->handoff->due) < 0)
		be->handoff->due = e->deadline;
	return true;
}

unsigned isod_handoff_pending(const struct isod_app *app)
{
	const struct isod_handoff *h = app->be->handoff;
	unsigned n = 0;

	for (unsigned i = 0; h != NULL && h->n > 0 && i < ISOD_HANDOFF_MAX; i++)
		n += h->e[i].app == app;
	return n;
}

/* The entry goes; a CLOSE it held runs now, as it would have. */
static void entry_release(struct isod_backend *be, struct entry *e)
{
	struct isod_sock *sk = &e->app->socks[e->id];
	struct isostack_shm_cmd c = e->close;
	bool held = e->held;

	entry_drop(be, e);
	if (held)
		isod_sk_cmd_close(sk, &c);
}

/* The earliest deadline of the held entries (h->held > 0). */
static uint32_t earliest_deadline(const struct isod_handoff *h)
{
	uint32_t due = 0;
	bool any = false;

	for (unsigned i = 0; i < ISOD_HANDOFF_MAX; i++) {
		const struct entry *e = &h->e[i];

		if (e->app == NULL || !e->held)
			continue;
		if (!any || (int32_t)(e->deadline - due) < 0)
			due = e->deadline;
		any = true;
	}
	assert(any);
	return due;
}

unsigned isod_handoff_poll(struct isod_backend *be)
{
	struct isod_handoff *h = be->handoff;
	uint32_t now = isod_backend_now(be);
	unsigned n = 0;

	if (h == NULL || h->held == 0 || (int32_t)(now - h->due) < 0)
		return 0;
	be->st.handoff_walks++;
	for (unsigned i = 0; h->held > 0 && i < ISOD_HANDOFF_MAX; i++) {
		struct entry *e = &h->e[i];

		if (e->app == NULL || !e->held || (int32_t)(now - e->deadline) < 0)
			continue;
		be->st.handoffs_expired++;
		entry_release(be, e);
		n++;
	}
	/* After the walk: a release runs a CLOSE, which might hold another. */
	if (h->held > 0)
		h->due = earliest_deadline(h);
	return n;
}

void isod_handoff_app_gone(struct isod_app *app)
{
	struct isod_handoff *h = app->be->handoff;

	for (unsigned i = 0; h != NULL && h->n > 0 && i < ISOD_HANDOFF_MAX; i++)
		if (h->e[i].app == app)
			entry_drop(app->be, &h->e[i]);
}

void isod_handoff_fini(struct isod_backend *be)
{
	struct isod_handoff *h = be->handoff;

	for (unsigned i = 0; h != NULL && h->n > 0 && i < ISOD_HANDOFF_MAX; i++)
		if (h->e[i].app != NULL)
			entry_drop(be, &h->e[i]);
	free(h);
	be->handoff = NULL;
}

/* ---- Moving a socket ------------------------------------------------------- */

/* Appends bytes to a chain of RAM pbufs under construction. */
static int chain_add(struct pbuf **head, struct pbuf **tail, const uint8_t *p, uint32_t n)
{
	while (n > 0) {
		uint32_t k = n < CHUNK ? n : CHUNK;
		struct pbuf *q = pbuf_alloc(PBUF_RAW, (u16_t)k, PBUF_RAM);

		if (q == NULL)
			return -ENOBUFS;
		memcpy(q->payload, p, k);
		if (*tail != NULL)
			(*tail)->next = q;
		else
			*head = q;
		*tail = q;
		p += k;
		n -= k;
	}
	return 0;
}

/*
 * What sk received and its application did not read -- the unread part
 * of its RX ring, then the pbufs held back -- as a fresh chain of RAM
 * pbufs for the new slot.  *bytes: their count.  0 or -ENOBUFS.
 */
static int rx_copy(struct isod_sock *sk, struct pbuf **out, uint32_t *bytes)
{
	struct isod_app *app = sk->app;
	struct pbuf *head = NULL, *tail = NULL;
	uint32_t used = 0;
	int rc = 0;

	if (sk->rx.bytes != 0) {
		int space = isoshm_stack_rx_space(app->shm, sk->id);

		if (space < 0)
			return space;
		used = sk->rx.bytes - (uint32_t)space;
	}
	/* The unread bytes are [rx_prod - used, rx_prod), free-running
	 * indices masked by the ring size. */
	for (uint32_t done = 0; rc == 0 && done < used;) {
		uint32_t at = (sk->rx_prod - used + done) & (sk->rx.bytes - 1);
		uint32_t k = sk->rx.bytes - at < used - done ? sk->rx.bytes - at : used - done;
		const uint8_t *base = (const uint8_t *)isoshm_stack_arena(app->shm) + sk->rx.off;

		rc = chain_add(&head, &tail, base + at, k);
		done += k;
	}
	for (struct pbuf *q = sk->rx_hold; rc == 0 && q != NULL; q = q->next) {
		uint32_t off = q == sk->rx_hold ? sk->rx_hold_off : 0;

		rc = chain_add(&head, &tail, (const uint8_t *)q->payload + off, q->len - off);
	}
	if (rc < 0) {
		if (head != NULL)
			pbuf_free(head);
		return rc;
	}
	*out = head;
	*bytes = used + sk->rx_held;
	return 0;
}

/* The chain becomes nsk's held data, charged to its application. */
static void rx_give(struct isod_sock *nsk, struct pbuf *chain, uint32_t bytes)
{
	nsk->rx_hold = chain;
	nsk->rx_hold_off = 0;
	nsk->rx_held = bytes;
	nsk->app->be->st.rx_held += bytes;
	for (struct pbuf *q = chain; q != NULL; q = q->next) {
		nsk->rx_true += isod_pbuf_true(q);
		nsk->app->rx_true += isod_pbuf_true(q);
	}
}

/* What a socket's owner set, and what the connection is, carried over. */
static void fields_copy(struct isod_sock *nsk, const struct isod_sock *sk)
{
	nsk->inet6 = sk->inet6;
	nsk->v6only = sk->v6only;
	nsk->fin_rcvd = sk->fin_rcvd;
	nsk->shut_wr = sk->shut_wr;
	nsk->shut_wr_done = sk->shut_wr_done;
	nsk->linger0 = sk->linger0;
	nsk->pcb_closed = sk->pcb_closed;
	nsk->err = sk->err;
	nsk->keep_idle_ms = sk->keep_idle_ms;
	nsk->keep_intvl_ms = sk->keep_intvl_ms;
	nsk->keep_cnt = sk->keep_cnt;
	nsk->tos = sk->tos;
	nsk->tos4 = sk->tos4;
	nsk->info_acked = sk->info_acked;
	nsk->info_rcvd = sk->info_rcvd;
	nsk->local_ip = sk->local_ip;
	nsk->local_port = sk->local_port;
	nsk->tx_pin = sk->tx_pin;
	nsk->rx_pin = sk->rx_pin;
}

/* sk's CLOSE, held or not, ends its old slot: no pcb is left on it. */
static void old_slot_end(struct isod_sock *sk)
{
	isod_sk_rx_hold_drop(sk);
	sk->tx_handed = 0;
	sk->acked = 0;
	sk->state = ISOD_S_DEAD;
	if (sk->err == 0)
		sk->err = -ECONNRESET;
}

/*
 * Moves connection sk (CONNECTED, DEAD, or a CHILD in a backlog) to a new
 * slot of app `to`.  Returns it, or NULL with -EAGAIN (bytes it sent not
 * all acknowledged), -EMFILE, -ENOBUFS in *err; sk is unchanged then.
 */
static struct isod_sock *move_conn(struct isod_sock *sk, struct isod_app *to, int *err)
{
	struct isod_sock *nsk;
	struct isoshm_span sp[2];
	struct tcp_pcb *pcb = sk->pcb;
	struct pbuf *chain = NULL;
	uint32_t bytes = 0;
	int rc;

	if (isod_sk_tx_peek(sk, sp) > 0 || sk->tx_handed > 0 || sk->acked > 0 ||
	    (pcb != NULL && (pcb->unsent != NULL || pcb->unacked != NULL))) {
		*err = -EAGAIN;
		return NULL;
	}
	nsk = isod_sk_alloc(to, false, NULL, 0, err);
	if (nsk == NULL)
		return NULL;
	rc = rx_copy(sk, &chain, &bytes);
	if (rc < 0) {
		isod_sk_free(nsk);
		*err = rc;
		return NULL;
	}
	fields_copy(nsk, sk);
	nsk->state = sk->state;
	if (pcb != NULL) {
		isod_sk_detach_pcb(sk);
		isod_sk_attach_pcb(nsk, pcb);
	}
	old_slot_end(sk);
	if (chain != NULL)
		rx_give(nsk, chain, bytes);
	if (nsk->state == ISOD_S_CONNECTED)
		isod_sock_queue(nsk, ISOD_R_RX | ISOD_R_SENT);
	return nsk;
}

/* Moves listener sk and its backlog to a new slot of app `to`. */
static struct isod_sock *move_listener(struct isod_sock *sk, struct isod_app *to, int *err)
{
	struct isod_app *from = sk->app;
	struct tcp_pcb *lpcb = sk->pcb;
	struct isod_sock *nsk = isod_sk_alloc(to, false, sk, 0, err);

	if (nsk == NULL)
		return NULL;
	fields_copy(nsk, sk);
	nsk->state = ISOD_S_LISTEN;
	nsk->bl_max = sk->bl_max;
	/* The lwIP listener is the same: its callback (sock_tcp.c's) now
	 * gets the new slot, as do its half-open connections, which find
	 * their listener's socket through the pcb's arg. */
	sk->pcb = NULL;
	isod_cap_pcb_sync(sk);
	if (lpcb != NULL) {
		nsk->pcb = lpcb;
		isod_cap_pcb_sync(nsk);
		tcp_arg(lpcb, nsk);
	}
	/* Accepted by lwIP, not yet by the application: each moves too, in
	 * order; one that cannot is reset, as a full backlog would drop it. */
	while (sk->bl_count > 0) {
		struct isod_sock *child = &from->socks[sk->bl_head];
		struct isod_sock *nchild;
		int cerr;

		sk->bl_head = child->bl_next;
		sk->bl_count--;
		nchild = move_conn(child, to, &cerr);
		if (nchild == NULL) {
			isod_sk_abort(child);
			isod_sk_free(child);
			continue;
		}
		isod_sk_free(child);
		nchild->state = ISOD_S_CHILD;
		nchild->parent = nsk->id;
		isod_sk_backlog_push(nsk, nchild);
	}
	/* ACCEPTs the old copy had parked fail as on a listener shut down. */
	while (sk->accept_parked > 0) {
		struct isostack_shm_status st = {
			.opcode = ISOSTACK_SHM_OP_ACCEPT, .sock = sk->id,
			.cookie = sk->accept_cookie[--sk->accept_parked], .result = -EINVAL,
		};
		isod_sk_post(sk, &st);
	}
	sk->state = ISOD_S_DEAD;
	sk->err = -EINVAL;
	if (nsk->bl_count > 0)
		isod_sock_queue(nsk, ISOD_R_ACCEPT);
	return nsk;
}

/* Whether pid is a process of app (its first, or one it told us of). */
static bool app_has_pid(const struct isod_app *app, uint32_t pid)
{
	if (pid == app->pid)
		return true;
	for (uint32_t i = 0; i < app->nprocs; i++)
		if (app->procs[i].pid == (int32_t)pid && app->procs[i].pidfd >= 0)
			return true;
	return false;
}

static bool same_file(int mine, uint32_t pid, int32_t fd)
{
	return syscall(SYS_kcmp, getpid(), (pid_t)pid, KCMP_FILE, mine, fd) == 0;
}

void isod_handoff_claim(struct isod_app *app, const struct isostack_ctl_claim *m,
			struct isostack_ctl_claim_reply *r)
{
	struct isod_backend *be = app->be;
	struct isod_handoff *h = be->handoff;
	struct entry *e = NULL;
	struct isod_sock *sk, *nsk;
	int err = 0;

	r->status = -ENOENT;
	if (h == NULL || h->n == 0 || m->fd < 0)
		return;
	if (!app_has_pid(app, m->pid)) {
		r->status = -EPERM;
		return;
	}
	for (unsigned i = 0; i < ISOD_HANDOFF_MAX && e == NULL; i++)
		if (h->e[i].app != NULL && same_file(h->e[i].fd, m->pid, m->fd))
			e = &h->e[i];
	if (e == NULL)
		return;
	/* attach's rule: another user's socket only for root */
	if (app->uid != 0 && app->uid != e->app->uid) {
		r->status = -EPERM;
		be->st.claims_refused++;
		return;
	}
	sk = &e->app->socks[e->id];
	/* Every close of sk is held while the entry lives (so it is still
	 * the socket registered), but not a reset of the whole application. */
	assert(sk->in_use && !sk->quarantined && sk->state != ISOD_S_FREE);
	nsk = sk->state == ISOD_S_LISTEN ? move_listener(sk, app, &err) : move_conn(sk, app, &err);
	if (nsk == NULL) {
		r->status = err;
		return;
	}
	r->status = 0;
	r->sock = nsk->id;
	r->kind = nsk->state == ISOD_S_LISTEN ? ISOSTACK_CTL_CLAIM_LISTEN : ISOSTACK_CTL_CLAIM_CONN;
	r->inet6 = nsk->inet6;
	be->st.claims++;
	ISOD_LOG(INFO, "handoff: app %u socket %u (%s) claimed by app %u as socket %u",
		 e->app->id, e->id, e->held ? "closed by its sender" : "still held",
		 app->id, nsk->id);
	/* The old slot is dead: its copy reads the reset, or its held
	 * CLOSE completes now. */
	if (!e->held && sk->state == ISOD_S_DEAD && !sk->err_posted) {
		sk->err_posted = true;
		isod_sk_event(sk, ISOSTACK_SHM_EV_ERROR);
	}
	entry_release(be, e);
}
