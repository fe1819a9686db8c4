/*
 * The per-socket state machines of the back-end (paper 4.4): the slots,
 * status posting, the event queue and the command dispatcher.
 *
 * Commands arrive from isod_sock_run_cmds() (a doorbell named the socket
 * and the command stage, cmdsched.c, gave it its turn);
 * each runs to completion if it can, or parks: ACCEPT without a pending
 * connection, CONNECT until established, CLOSE until every byte of the TX
 * ring has been acknowledged (lwIP's segments point into that ring, so the
 * slot's memory is referenced until then) or close_timeout_ms passed
 * (a peer that keeps its window shut: then RST), SEND while lwIP's send
 * buffer is full.  lwIP callbacks never run commands: they record what happened
 * (data held, bytes acked, pcb gone) and queue the socket with an event
 * bit; isod_sock_resume(), called by the dispatcher when it drains the
 * queue, does the work and posts replies and events.
 *
 * The work itself lives beside this file: sock_tcp.c (lwIP callbacks,
 * connect, listen, accept), sock_data.c (the TCP data path and receive
 * window), sock_udp.c, sock_opt.c (socket options) and sock_close.c
 * (CLOSE, linger, parked-close expiry, TIME_WAIT).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* glibc's <netinet/in.h> defines the byte-order macros; lwIP must not. */
#define LWIP_DONT_PROVIDE_BYTEORDER_FUNCTIONS 1
#include <netinet/in.h>

#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"
#include "lwip/udp.h"

#include "internal.h"

#define EVBIT(ev) (1u << ((ev) - ISOSTACK_SHM_EV_RX))

static void sk_flush(struct isod_sock *sk);

/* ---- Event queue --------------------------------------------------------- */

void isod_sock_queue(struct isod_sock *sk, uint32_t bits)
{
	struct isod_backend *be = sk->app->be;

	sk->ready |= bits;
	if (sk->queued)
		return;
	sk->queued = true;
	sk->ready_next = NULL;
	*be->ready_tail = sk;
	be->ready_tail = &sk->ready_next;
}

/* ---- Status posting with back-pressure ----------------------------------- */

/* Application-side waiters (hints only: a lie costs the app extra events),
 * after the fence W3 that orders the caller's tx_cons release before the
 * loads (isoshm_stack_waiters pairs it with the application's S1). */
bool isod_sk_app_waits(const struct isod_sock *sk)
{
	return isoshm_stack_waiters(sk->app->shm, sk->id);
}

/* Posts one status entry now, or keeps it for later (never dropped while
 * room is left in pend[]; the command reader keeps room). */
void isod_sk_post(struct isod_sock *sk, const struct isostack_shm_status *st)
{
	struct isod_backend *be = sk->app->be;
	int k = 0;

	if (sk->npend == 0 && sk->ev_pending == 0) {
		k = isoshm_stack_post_status(sk->app->shm, sk->id, st, 1);
		if (k == 1) {
			sk->st_posted++;
			isod_app_kick(sk->app, sk->id);
			return;
		}
		if (k < 0) {
			isod_sk_kill(sk, -EPROTO);
			return;
		}
	}
	if (sk->npend == ISOD_PEND_MAX) {
		/* the reader keeps room: only a stuck status ring gets here */
		be->st.status_deferred++;
		return;
	}
	if (sk->pend == NULL) {
		sk->pend = malloc(ISOD_PEND_MAX * sizeof(*sk->pend));
		if (sk->pend == NULL) {
			isod_sk_kill(sk, -ENOMEM);   /* posts EV_ERROR: no reply lost in silence */
			return;
		}
	}
	sk->pend[sk->npend++] = *st;
	be->st.status_deferred++;
	isod_sock_queue(sk, ISOD_R_FLUSH);
}

void isod_sk_reply(struct isod_sock *sk, const struct isostack_shm_cmd *c, int64_t result)
{
	struct isostack_shm_status st = {
		.opcode = c->opcode, .sock = sk->id, .cookie = c->cookie, .result = result,
	};

	isod_sk_post(sk, &st);
}

void isod_sk_event(struct isod_sock *sk, uint16_t ev)
{
	sk->ev_pending |= EVBIT(ev);
	sk_flush(sk);
}

/* The deferred replies' array goes once they are all posted. */
void isod_sk_pend_free(struct isod_sock *sk)
{
	if (sk->npend == 0 && sk->pend != NULL) {
		free(sk->pend);
		sk->pend = NULL;
	}
}

static void sk_flush(struct isod_sock *sk)
{
	struct isod_app *app = sk->app;

	while (sk->npend > 0) {
		int k = isoshm_stack_post_status(app->shm, sk->id, sk->pend, sk->npend);

		if (k < 0) {
			sk->npend = 0;
			isod_sk_pend_free(sk);
			isod_sk_kill(sk, -EPROTO);
			return;
		}
		if (k == 0)
			goto later;
		sk->st_posted += (uint32_t)k;
		isod_app_kick(app, sk->id);
		memmove(sk->pend, sk->pend + k, (size_t)(sk->npend - k) * sizeof(sk->pend[0]));
		sk->npend = (uint8_t)(sk->npend - k);
	}
	isod_sk_pend_free(sk);
	while (sk->ev_pending != 0) {
		unsigned b = (unsigned)__builtin_ctz(sk->ev_pending);
		struct isostack_shm_status st = {
			.opcode = (uint16_t)(ISOSTACK_SHM_EV_RX + b), .sock = sk->id,
		};
		int k;

		if (st.opcode == ISOSTACK_SHM_EV_ERROR || st.opcode == ISOSTACK_SHM_EV_CONNECTED)
			st.result = sk->err;
		if (st.opcode == ISOSTACK_SHM_EV_INCOMING)
			st.arg[0] = sk->bl_count;
		k = isoshm_stack_post_status(app->shm, sk->id, &st, 1);
		if (k < 0) {
			sk->ev_pending = 0;
			isod_sk_kill(sk, -EPROTO);
			return;
		}
		if (k == 0)
			goto later;
		sk->st_posted++;
		sk->ev_pending &= ~(1u << b);
		app->be->st.events++;
		isod_app_kick(app, sk->id);
	}
	return;
later:
	isod_sock_queue(sk, ISOD_R_FLUSH);
}

/* ---- Slots ------------------------------------------------------------------ */

/*
 * Socket ids.  A freed socket's rings go back to mem.c at once (after its
 * CLOSE the application never touches them), but its id stays in
 * quarantine until the application has consumed every status (the CLOSE
 * reply included): the status ring belongs to the id.  Then the id goes
 * to the free list, which is used before ids never used (their pages are
 * not faulted in yet).
 */
static bool sk_drained(struct isod_app *app, struct isod_sock *sk)
{
	struct isostack_shm_sock *ss = &app->shared_socks[sk->id];
	uint32_t cons;

	if (sk->npend != 0)
		return false;
	/* Untrusted: a lying application only hurts itself (its view of
	 * the id goes out of step).  Acquire: pairs with the application's
	 * store-release of status_cons (ring point C2), which comes after
	 * any command it posted before consuming our last status; so a
	 * CLOSE that crossed EV_CLOSED shows in cmd_prod below, and the id
	 * waits until we have read it (and answered -EBADF). */
	cons = atomic_load_explicit(&ss->status_cons, memory_order_acquire);
	if (cons != sk->st_posted)
		return false;
	/* cmd_cons is ours: relaxed reads our own last store. */
	return atomic_load_explicit(&ss->cmd_prod, memory_order_relaxed) ==
	       atomic_load_explicit(&ss->cmd_cons, memory_order_relaxed);
}

static void sk_release_id(struct isod_app *app, struct isod_sock *sk)
{
	sk->in_use = false;
	sk->quarantined = false;
	app->free_ids[app->nfree_ids++] = sk->id;
}

unsigned isod_sock_quarantine_poll(struct isod_app *app, unsigned max)
{
	unsigned done = 0;

	/* Round robin: a socket not drained yet goes to the back. */
	for (unsigned i = 0; i < max && app->q_head != UINT32_MAX; i++) {
		struct isod_sock *sk = &app->socks[app->q_head];

		app->q_head = sk->q_next;
		if (app->q_head == UINT32_MAX)
			app->q_tail = UINT32_MAX;
		sk->q_next = UINT32_MAX;
		if (sk_drained(app, sk)) {
			sk_release_id(app, sk);
			done++;
			continue;
		}
		if (app->q_tail != UINT32_MAX)
			app->socks[app->q_tail].q_next = sk->id;
		else
			app->q_head = sk->id;
		app->q_tail = sk->id;
		if (app->q_head == sk->id && sk->q_next == UINT32_MAX && i > 0)
			break;
	}
	return done;
}

/* An id for a new socket: a drained free one, else a never-used one. */
static int64_t id_get(struct isod_app *app)
{
	(void)isod_sock_quarantine_poll(app, 4);
	while (app->nfree_ids > 0) {
		uint32_t id = app->free_ids[--app->nfree_ids];

		if (!isoshm_stack_sock_broken(app->shm, id))
			return id;      /* a broken one is never used again */
	}
	if (app->hiwat < app->hdr.max_sockets)
		return app->hiwat++;
	return -EMFILE;
}

/*
 * A ring for a new socket.  TCP: at most the one extent a pass may make
 * (docs/shm.md); past that the socket opens with none that way, as an
 * idle one, and gets its ring when traffic comes (sock_ring.c).  UDP
 * rings are fixed: made now if need be.
 */
static int sk_ring_get(struct isod_app *app, bool udp, uint32_t bytes, struct isod_ring *out)
{
	int rc;

	if (udp)
		return isod_mem_ring_get(app, bytes, out, true);
	rc = isod_mem_ring_get(app, bytes, out, false);
	if (rc == -EAGAIN) {
		*out = (struct isod_ring){ 0 };
		app->be->mem_st.opened_none++;
		return 0;
	}
	return rc;
}

/*
 * A new socket: an id, its rings, both opened in the segment.  TCP rings
 * start small and size themselves (sock_ring.c); an accepted child starts
 * with its listener's SO_SNDBUF/SO_RCVBUF (parent), and an RX ring of at
 * least rx_min (the window its SYN-ACK announced).  Returns NULL with
 * -EMFILE (ids), -ENOBUFS (the application's mem_limit or the stack's
 * budget) or -ENOMEM in *err.
 */
struct isod_sock *isod_sk_alloc(struct isod_app *app, bool udp, const struct isod_sock *parent,
				uint32_t rx_min, int *err)
{
	const struct isod_backend_conf *conf = &app->be->conf;
	/* Datagram sockets: fixed rings that hold a few of the largest
	 * datagrams, as the kernel's 208 KiB UDP buffers do. */
	uint32_t tx_bytes = udp ? ISOD_UDP_RING(conf, conf->tx_ring) : isod_sk_tx_start(app->be, parent);
	uint32_t rx_bytes = udp ? ISOD_UDP_RING(conf, conf->rx_ring) : isod_sk_rx_start(app->be, parent);
	uint64_t need;

	while (rx_bytes < rx_min && rx_bytes < conf->rx_ring)
		rx_bytes *= 2;
	need = (uint64_t)tx_bytes + rx_bytes;
	struct isostack_shm_sockdir d;
	struct isod_ring tx, rx;
	struct isod_sock *sk;
	int64_t id;
	int rc;

	if (conf->mem_limit != 0 && app->mem_used + need > conf->mem_limit) {
		*err = -ENOBUFS;
		return NULL;
	}
	rc = sk_ring_get(app, udp, tx_bytes, &tx);
	if (rc < 0) {
		*err = rc == -ENOMEM ? -ENOBUFS : rc;
		return NULL;
	}
	rc = sk_ring_get(app, udp, rx_bytes, &rx);
	if (rc < 0) {
		isod_mem_ring_put(app, &tx);
		*err = rc == -ENOMEM ? -ENOBUFS : rc;
		return NULL;
	}
	need = (uint64_t)tx.bytes + rx.bytes;
	id = id_get(app);
	if (id < 0) {
		isod_mem_ring_put(app, &tx);
		isod_mem_ring_put(app, &rx);
		*err = (int)id;
		return NULL;
	}
	d = (struct isostack_shm_sockdir){
		.tx_off = tx.off, .rx_off = rx.off, .tx_bytes = tx.bytes, .rx_bytes = rx.bytes,
		.tx_extent = tx.ext, .rx_extent = rx.ext,
	};
	rc = isoshm_stack_sock_open(app->shm, (uint32_t)id, &d);
	if (rc < 0) {
		isod_mem_ring_put(app, &tx);
		isod_mem_ring_put(app, &rx);
		*err = -ENOBUFS;
		return NULL;
	}
	sk = &app->socks[id];
	{
		uint32_t st_posted = sk->st_posted, cmd_next = sk->cmd_next;
		uint32_t segw_next = sk->segw_next;
		bool cmd_queued = sk->cmd_queued, seg_waiting = sk->seg_waiting;

		/* The id may still be on the run queue (cmdsched.c) or the
		 * segment wait list (appcap.c): its links survive, as the
		 * status count does. */
		memset(sk, 0, sizeof(*sk));
		sk->st_posted = st_posted;
		sk->cmd_next = cmd_next;
		sk->cmd_queued = cmd_queued;
		sk->segw_next = segw_next;
		sk->seg_waiting = seg_waiting;
		sk->rx_prod = d.rx_start;
		sk->rx_cons_seen = d.rx_start;
	}
	sk->app = app;
	sk->id = (uint32_t)id;
	sk->tx = tx;
	sk->rx = rx;
	sk->tx_max = tx.bytes;
	sk->rx_max = rx.bytes;
	if (parent != NULL) {
		isod_sk_ring_inherit(sk, parent);
		sk->inet6 = parent->inet6;   /* accept() gives the listener's family */
		sk->v6only = parent->v6only;
	}
	sk->in_use = true;
	sk->q_next = UINT32_MAX;
	sk->mem = need;
	app->mem_used += need;
	app->nopen++;
	if (rx.bytes == 0)
		isod_sk_rx_reserve(sk);
	return sk;
}

void isod_sk_free(struct isod_sock *sk)
{
	struct isod_app *app = sk->app;

	isod_sk_tx_unwatch(sk);
	isod_rp_leave(sk);
	isod_cut_drop(sk);
	isod_sk_closing_unlink(sk);
	isod_sk_idle_unlink(sk);
	isod_sk_detach_pcb(sk);
	isod_sk_rx_hold_drop(sk);
	app->mem_used -= sk->mem;
	sk->mem = 0;
	sk->state = ISOD_S_FREE;
	sk->ev_pending = 0;
	sk->close_pending = false;
	isod_mem_ring_put(app, &sk->tx);
	isod_mem_ring_put(app, &sk->rx);
	isod_mem_ring_put(app, &sk->tx_offer);
	sk->tx.bytes = sk->rx.bytes = sk->tx_offer.bytes = 0;
	if (sk->in_use && !sk->quarantined) {
		app->nopen--;
		sk->quarantined = true;
		sk->q_next = UINT32_MAX;
		if (app->q_tail != UINT32_MAX)
			app->socks[app->q_tail].q_next = sk->id;
		else
			app->q_head = sk->id;
		app->q_tail = sk->id;
	}
}

/* Stops lwIP from calling us about sk's pcb; the pcb itself stays. */
void isod_sk_detach_pcb(struct isod_sock *sk)
{
	struct tcp_pcb *pcb = sk->pcb;

	if (sk->upcb != NULL) {
		/* a UDP pcb holds nothing in flight: remove it outright */
		udp_recv(sk->upcb, NULL, NULL);
		udp_remove(sk->upcb);
		sk->upcb = NULL;
		isod_cap_pcb_sync(sk);
	}
	if (pcb == NULL)
		return;
	tcp_arg(pcb, NULL);
	if (pcb->state != LISTEN) {
		tcp_recv(pcb, NULL);
		tcp_sent(pcb, NULL);
		tcp_err(pcb, NULL);
	} else {
		tcp_accept(pcb, NULL);
	}
	sk->pcb = NULL;
	/* What the pcb still queues (a FIN after a clean close) is lwIP's. */
	isod_cap_segs_sync(sk);
	isod_cap_pcb_sync(sk);
}

/* Resets the connection (RST) and forgets the pcb. */
void isod_sk_abort(struct isod_sock *sk)
{
	struct tcp_pcb *pcb;

	isod_rp_leave(sk);   /* a SO_REUSEPORT group keeps its listener */
	isod_cut_abort(sk);  /* the paired socket is reset */
	pcb = sk->pcb;
	if (pcb == NULL) {
		isod_sk_detach_pcb(sk);   /* UDP */
		return;
	}
	isod_sk_detach_pcb(sk);
	if (pcb->state == LISTEN)
		tcp_close(pcb);
	else
		tcp_abort(pcb);
}

/* The socket is unusable: RST, EV_ERROR (if its ring still works). */
void isod_sk_kill(struct isod_sock *sk, int err)
{
	/* A socket is counted once: not again when its corpse, or the slot
	 * once freed, fails another post (an application dropped with a
	 * broken socket ran into both). */
	if (err == -EPROTO && sk->state != ISOD_S_DEAD && sk->state != ISOD_S_FREE)
		sk->app->be->st.broken_socks++;
	isod_sk_abort(sk);
	isod_sk_rx_hold_drop(sk);
	if (sk->err == 0)
		sk->err = err;
	if (sk->state != ISOD_S_FREE)
		sk->state = ISOD_S_DEAD;
	sk->tx_handed = 0;
	sk->acked = 0;
	/* Tell the application (if its status ring still works: a failing
	 * post comes back here with err_posted already set). */
	if (sk->state == ISOD_S_DEAD && !sk->err_posted && !sk->close_pending) {
		sk->err_posted = true;
		isod_sk_event(sk, ISOSTACK_SHM_EV_ERROR);
	}
}

/* ---- Addresses --------------------------------------------------------------- */

/*
 * A socket's addresses as the application's family has them: an AF_INET6
 * socket sees an IPv4 end as ::ffff:a.b.c.d, as Linux's dual-stack
 * sockets do; the unspecified address of either version is ::.
 */
void isod_sk_put_addr(const struct isod_sock *sk, uint64_t *arg, const ip_addr_t *ip, u16_t port)
{
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };

	if (!sk->inet6) {
		sin.sin_addr.s_addr = IP_IS_V4(ip) ? ip_2_ip4(ip)->addr : 0;
		arg[0] = sizeof(sin);
		memcpy(&arg[1], &sin, sizeof(sin));
		return;
	}
	if (IP_IS_V6(ip)) {
		memcpy(&s6.sin6_addr, ip_2_ip6(ip)->addr, 16);
		if (ip6_addr_has_zone(ip_2_ip6(ip)))
			s6.sin6_scope_id = ip6_addr_zone(ip_2_ip6(ip));
	} else if (!ip_addr_isany(ip)) {
		s6.sin6_addr.s6_addr[10] = s6.sin6_addr.s6_addr[11] = 0xff;
		memcpy(&s6.sin6_addr.s6_addr[12], &ip_2_ip4(ip)->addr, 4);
	}
	arg[0] = sizeof(s6);
	memcpy(&arg[1], &s6, sizeof(s6));
}

/*
 * An address from BIND/CONNECT in the socket's family. For AF_INET6,
 * ::ffff:a.b.c.d is that IPv4 address and :: is "any" of both versions,
 * unless the socket is IPV6_V6ONLY: then :: is IPv6's any, and a mapped
 * address gives ISOD_V6ONLY_MAPPED, which BIND answers EINVAL and CONNECT
 * ENETUNREACH, as Linux does. A sockaddr of the other family is
 * EAFNOSUPPORT, one shorter than its family's EINVAL (Linux's errnos).
 */
int isod_sk_addr_from_cmd(const struct isod_sock *sk, const struct isostack_shm_cmd *c,
			  ip_addr_t *ip, u16_t *port)
{
	uint8_t raw[ISOSTACK_SHM_ADDR_MAX] = { 0 };
	struct sockaddr_in6 s6;
	struct sockaddr_in sin;
	static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };

	memcpy(raw, &c->arg[1], c->arg[0]);   /* arg0 <= ADDR_MAX: validated */
	if (!sk->inet6) {
		memcpy(&sin, raw, sizeof(sin));
		if (sin.sin_family != AF_INET)
			return -EAFNOSUPPORT;
		if (c->arg[0] < sizeof(sin))
			return -EINVAL;
		ip_addr_set_ip4_u32_val(*ip, sin.sin_addr.s_addr);
		*port = ntohs(sin.sin_port);
		return 0;
	}
	memcpy(&s6, raw, sizeof(s6));
	if (s6.sin6_family != AF_INET6)
		return -EAFNOSUPPORT;
	if (c->arg[0] < 24)                   /* SIN6_LEN_RFC2133 */
		return -EINVAL;
	*port = ntohs(s6.sin6_port);
	if (memcmp(s6.sin6_addr.s6_addr, mapped, sizeof(mapped)) == 0) {
		if (sk->v6only)
			return ISOD_V6ONLY_MAPPED;
		memcpy(&sin.sin_addr, &s6.sin6_addr.s6_addr[12], 4);
		ip_addr_set_ip4_u32_val(*ip, sin.sin_addr.s_addr);
		return 0;
	}
	if (IN6_IS_ADDR_UNSPECIFIED(&s6.sin6_addr)) {
		if (sk->v6only)
			ip_addr_copy(*ip, *IP6_ADDR_ANY);
		else
			ip_addr_copy(*ip, *IP_ANY_TYPE);
		return 0;
	}
	*ip = (ip_addr_t)IPADDR6_INIT(0, 0, 0, 0);
	memcpy(ip_2_ip6(ip)->addr, s6.sin6_addr.s6_addr, 16);
	if (IN6_IS_ADDR_LINKLOCAL(&s6.sin6_addr) && s6.sin6_scope_id != 0)
		ip6_addr_set_zone(ip_2_ip6(ip), (u8_t)s6.sin6_scope_id);
	return 0;
}

bool isod_sk_addr_is_local(const ip_addr_t *ip)
{
	struct netif *n;

	if (ip_addr_isany(ip))
		return true;
	NETIF_FOREACH(n) {
		if (IP_IS_V4(ip) && ip_addr_cmp(ip, &n->ip_addr))
			return true;
		if (IP_IS_V6(ip) && netif_get_ip6_addr_match(n, ip_2_ip6(ip)) >= 0)
			return true;
	}
	return false;
}

int isod_sk_lwip_bind_errno(err_t e)
{
	return e == ERR_USE ? -EADDRINUSE : e == ERR_OK ? 0 : -EINVAL;
}

/* ---- Resuming from the event queue -------------------------------------------- */

void isod_sock_resume(struct isod_sock *sk, uint32_t bits)
{
	struct isod_backend *be = sk->app->be;

	be->st.resumed++;
	if (bits & ISOD_R_ERR) {
		bool connecting = sk->state == ISOD_S_CONNECTING;

		if (sk->state != ISOD_S_FREE && sk->state != ISOD_S_CHILD)
			sk->state = ISOD_S_DEAD;
		sk->tx_handed = 0;   /* lwIP freed its segments with the pcb */
		sk->acked = 0;
		if (connecting && sk->connect_parked) {
			struct isostack_shm_status st = {
				.opcode = ISOSTACK_SHM_OP_CONNECT, .sock = sk->id,
				.cookie = sk->connect_cookie, .result = sk->err,
			};

			sk->connect_parked = false;
			isod_sk_post(sk, &st);
		} else if (sk->state == ISOD_S_DEAD && !sk->err_posted) {
			sk->err_posted = true;
			isod_sk_event(sk, ISOSTACK_SHM_EV_ERROR);
		}
		if (sk->state == ISOD_S_CHILD)
			sk->state = ISOD_S_DEAD;
	}
	if ((bits & ISOD_R_CONNECTED) && sk->state == ISOD_S_CONNECTING) {
		sk->state = ISOD_S_CONNECTED;
		if (sk->pcb != NULL) {
			sk->local_ip = sk->pcb->local_ip;
			sk->local_port = sk->pcb->local_port;
		}
		if (sk->connect_parked) {
			struct isostack_shm_status st = {
				.opcode = ISOSTACK_SHM_OP_CONNECT, .sock = sk->id,
				.cookie = sk->connect_cookie, .result = 0,
			};

			sk->connect_parked = false;
			if (sk->pcb != NULL)
				isod_sk_put_addr(sk, st.arg, &sk->pcb->local_ip, sk->pcb->local_port);
			isod_sk_post(sk, &st);
		}
	}
	if (sk->udp) {
		if ((bits & ISOD_R_RX) && sk->state != ISOD_S_FREE)
			isod_sk_udp_rx_resume(sk);
		if (bits & ISOD_R_FLUSH)
			sk_flush(sk);
		if (bits & ISOD_R_CMDS)
			isod_cmds_queue(sk->app, sk->id);
		return;
	}
	if ((bits & ISOD_R_RX) && sk->state != ISOD_S_FREE)
		isod_sk_rx_pump(sk);
	if ((bits & ISOD_R_SENT) && sk->state != ISOD_S_FREE) {
		isod_sk_tx_acked(sk);
		isod_sk_tx_push(sk);
	}
	if ((bits & ISOD_R_IDLE) && sk->state != ISOD_S_FREE)
		isod_sk_ring_idle(sk);
	if (bits & ISOD_R_ACCEPT)
		isod_sk_accept_serve(sk);
	if (bits & ISOD_R_FLUSH)
		sk_flush(sk);
	if (sk->state == ISOD_S_CONNECTED)
		isod_sk_forget_timewait(sk);
	isod_sk_close_check(sk);
	/* Commands run in the command stage, under its budget. */
	if (bits & ISOD_R_CMDS)
		isod_cmds_queue(sk->app, sk->id);
}

/* ---- Commands ------------------------------------------------------------------ */

static void cmd_socket(struct isod_sock *ctl, const struct isostack_shm_cmd *c)
{
	struct isod_app *app = ctl->app;
	struct isod_sock *sk;
	struct tcp_pcb *pcb;
	int rc;

	if (c->arg[0] != AF_INET && c->arg[0] != AF_INET6) {
		isod_sk_reply(ctl, c, -EAFNOSUPPORT);
		return;
	}
	if (c->arg[1] != SOCK_STREAM && c->arg[1] != SOCK_DGRAM) {
		isod_sk_reply(ctl, c, -ESOCKTNOSUPPORT);
		return;
	}
	if (c->arg[2] != 0 &&
	    c->arg[2] != (c->arg[1] == SOCK_DGRAM ? IPPROTO_UDP : IPPROTO_TCP)) {
		isod_sk_reply(ctl, c, -EPROTONOSUPPORT);
		return;
	}
	rc = isod_cap_pcb_room(app, c->arg[1] == SOCK_DGRAM, false);
	if (rc < 0) {
		isod_sk_reply(ctl, c, rc);
		return;
	}
	sk = isod_sk_alloc(app, c->arg[1] == SOCK_DGRAM, NULL, 0, &rc);
	if (sk == NULL) {
		if (rc == -EMFILE)
			app->be->st.emfile++;
		else
			app->be->st.enobufs++;
		isod_sk_reply(ctl, c, rc);
		return;
	}
	if (c->arg[1] == SOCK_DGRAM) {
		/* AF_INET6: dual-stack until IPV6_V6ONLY (sock_udp.c) */
		struct udp_pcb *upcb = udp_new_ip_type(c->arg[0] == AF_INET6 ?
						       IPADDR_TYPE_ANY : IPADDR_TYPE_V4);

		if (upcb == NULL) {
			isod_sk_free(sk);
			app->be->st.enobufs++;
			isod_sk_reply(ctl, c, -ENOBUFS);
			return;
		}
		sk->udp = true;
		sk->inet6 = c->arg[0] == AF_INET6;
		sk->upcb = upcb;
		isod_cap_pcb_sync(sk);
		sk->state = ISOD_S_OPEN;
		udp_recv(upcb, isod_sk_cb_udp_recv, sk);
		isod_sk_reply(ctl, c, sk->id);
		return;
	}
	/* An AF_INET6 pcb starts as IPv6's any; BIND or LISTEN make it
	 * dual-stack (IP_ANY_TYPE) unless IPV6_V6ONLY, CONNECT takes the
	 * peer's version (lwIP picks the local address by route). */
	sk->inet6 = c->arg[0] == AF_INET6;
	pcb = tcp_new_ip_type(sk->inet6 ? IPADDR_TYPE_V6 : IPADDR_TYPE_V4);
	if (pcb == NULL) {
		isod_sk_free(sk);
		app->be->st.enobufs++;
		isod_sk_reply(ctl, c, -ENOBUFS);
		return;
	}
	sk->state = ISOD_S_OPEN;
	isod_sk_attach_pcb(sk, pcb);
	isod_sk_reply(ctl, c, sk->id);
}

static void cmd_exec(struct isod_sock *sk, const struct isostack_shm_cmd *c)
{
	struct isostack_shm_status st;
	ip_addr_t ip;
	u16_t port;
	int rc;

	sk->app->be->st.cmds++;
	if (c->opcode == ISOSTACK_SHM_OP_NOP) {
		isod_sk_reply(sk, c, 0);
		return;
	}
	if (sk->id == ISOSTACK_SHM_CTRL_SOCK) {
		cmd_socket(sk, c);   /* validation allows only SOCKET here */
		return;
	}
	if (sk->closed_by_stack) {
		/* Posted before the application saw our EV_CLOSED (the last
		 * release's SEND and CLOSE): the id is quarantined until the
		 * reply is consumed too (sk_drained).  SEND and RECV are
		 * notifications: no reply. */
		if (c->opcode == ISOSTACK_SHM_OP_CLOSE)
			sk->app->be->st.stack_close_crossed++;
		if (c->opcode != ISOSTACK_SHM_OP_SEND && c->opcode != ISOSTACK_SHM_OP_RECV)
			isod_sk_reply(sk, c, -EBADF);
		return;
	}
	if (sk->state == ISOD_S_FREE || sk->state == ISOD_S_CHILD || sk->close_pending) {
		sk->app->be->st.bad_slot++;
		isod_sk_reply(sk, c, -EBADF);
		return;
	}
	if (sk->udp) {
		isod_sk_cmd_udp(sk, c);
		return;
	}
	switch (c->opcode) {
	case ISOSTACK_SHM_OP_BIND:
		rc = isod_sk_addr_from_cmd(sk, c, &ip, &port);
		if (rc == ISOD_V6ONLY_MAPPED)
			rc = -EINVAL;
		if (rc == 0 && (sk->state != ISOD_S_OPEN || sk->pcb->local_port != 0))
			rc = -EINVAL;
		if (rc == 0 && !isod_sk_addr_is_local(&ip))
			rc = -EADDRNOTAVAIL;
		if (rc == 0)
			rc = isod_rp_bind(sk, &ip, port);   /* tcp_bind, SO_REUSEPORT */
		isod_sk_reply(sk, c, rc);
		break;
	case ISOSTACK_SHM_OP_LISTEN:
		isod_sk_cmd_listen(sk, c);
		break;
	case ISOSTACK_SHM_OP_ACCEPT:
		if (sk->state != ISOD_S_LISTEN) {
			isod_sk_reply(sk, c, -EINVAL);
		} else if (sk->accept_parked == ISOD_ACCEPT_PARK) {
			isod_sk_reply(sk, c, -EAGAIN);
		} else {
			sk->accept_cookie[sk->accept_parked++] = c->cookie;
			if (sk->bl_count == 0)
				sk->app->be->st.parked++;
			isod_sk_accept_serve(sk);
		}
		break;
	case ISOSTACK_SHM_OP_CONNECT:
		isod_sk_cmd_connect(sk, c);
		break;
	case ISOSTACK_SHM_OP_SEND:
		sk->app->be->st.sends_seen++;
		/* Basic: only what the SENDs named (tx_push clamps it to the
		 * ring, so a lying count moves no byte that is not there). */
		if (c->arg[0] > UINT32_MAX - sk->tx_named)
			sk->tx_named = UINT32_MAX;
		else
			sk->tx_named += (uint32_t)c->arg[0];
		isod_sk_tx_push(sk);
		if (sk->tx.bytes == 0)      /* it had no ring: an ask */
			sk->app->be->st.tx_asks++;
		else
			isod_sk_tx_watch(sk);   /* its next bytes need no SEND */
		break;
	case ISOSTACK_SHM_OP_RECV:
		isod_sk_rx_pump(sk);
		break;
	case ISOSTACK_SHM_OP_SHUTDOWN:
		if (sk->state != ISOD_S_CONNECTED) {
			isod_sk_reply(sk, c, -ENOTCONN);
			break;
		}
		if (c->arg[0] != SHUT_RD) {
			sk->shut_wr = true;
			isod_sk_tx_push(sk);
		}
		isod_sk_reply(sk, c, 0);
		break;
	case ISOSTACK_SHM_OP_CLOSE:
		isod_sk_cmd_close(sk, c);
		break;
	case ISOSTACK_SHM_OP_SETSOCKOPT:
		isod_sk_cmd_setsockopt(sk, c);
		break;
	case ISOSTACK_SHM_OP_GETSOCKOPT:
		isod_sk_cmd_getsockopt(sk, c);
		break;
	case ISOSTACK_SHM_OP_GETSOCKNAME:
	case ISOSTACK_SHM_OP_GETPEERNAME:
		memset(&st, 0, sizeof(st));
		st.opcode = c->opcode;
		st.sock = sk->id;
		st.cookie = c->cookie;
		if (sk->cut) {
			isod_cut_names(sk, c->opcode, &st);
		} else if (sk->pcb == NULL && sk->pcb_closed) {
			/* finished cleanly: the addresses it had */
			if (c->opcode == ISOSTACK_SHM_OP_GETSOCKNAME)
				isod_sk_put_addr(sk, st.arg, &sk->local_ip, sk->local_port);
			else
				st.result = -ENOTCONN;
		} else if (sk->pcb == NULL) {
			st.result = -EINVAL;
		} else if (c->opcode == ISOSTACK_SHM_OP_GETSOCKNAME) {
			isod_sk_put_addr(sk, st.arg, &sk->pcb->local_ip, sk->pcb->local_port);
		} else if (sk->state != ISOD_S_CONNECTED) {
			st.result = -ENOTCONN;
		} else {
			isod_sk_put_addr(sk, st.arg, &sk->pcb->remote_ip, sk->pcb->remote_port);
		}
		isod_sk_post(sk, &st);
		break;
	default:
		isod_sk_reply(sk, c, -EINVAL);
		break;
	}
}

unsigned isod_sock_run_cmds(struct isod_app *app, uint32_t id, unsigned max, bool *more)
{
	struct isod_sock *sk = &app->socks[id];
	struct isostack_shm_cmd cmds[ISOD_PEND_MAX - 2];
	unsigned done = 0;

	if (sk->app == NULL) {         /* an id never used: errors only */
		sk->app = app;
		sk->id = id;
		sk->q_next = UINT32_MAX;
	}
	*more = false;
	while (done < max) {
		uint32_t want = max - done < ISOD_PEND_MAX - 2 ? max - done : ISOD_PEND_MAX - 2;
		int n;

		/* Keep room for one deferred reply per command read. */
		if (sk->npend != 0) {
			isod_sock_queue(sk, ISOD_R_CMDS);
			return done;
		}
		n = isoshm_stack_recv_cmds(app->shm, id, cmds, want);
		if (n == 0)
			return done;
		if (n == -EPROTO) {
			isod_sk_kill(sk, -EPROTO);
			return done;
		}
		if (n < 0) {
			app->be->st.bad_cmds++;
			isod_sk_reply(sk, &cmds[0], n == -EBADSLT ? -EBADF : -EINVAL);
			done++;
			continue;
		}
		/* cmd_cons is published: fence before reading tx_prod (SEND), so
		 * an application that saw our old cmd_cons and skipped posting
		 * a SEND has its bytes seen here (libisosock/core_data.c,
		 * isosock__maybe_post_send). */
		atomic_thread_fence(memory_order_seq_cst);
		for (int i = 0; i < n; i++)
			cmd_exec(sk, &cmds[i]);
		done += (unsigned)n;
	}
	/* The turn is over, not necessarily the ring: the next turn looks. */
	*more = true;
	return done;
}

void isod_sock_reset_all(struct isod_app *app)
{
	for (uint32_t i = 1; i < app->hiwat; i++) {
		struct isod_sock *sk = &app->socks[i];

		if (!sk->in_use || sk->quarantined)
			continue;
		if (sk->pcb != NULL && sk->pcb->state != LISTEN)
			app->be->st.resets++;
		isod_sk_abort(sk);
		/* isod_sk_free also takes it off the back-end's list of parked
		 * CLOSEs: the slots are freed with the application, and a
		 * list entry left behind would point into freed memory. */
		isod_sk_free(sk);
	}
}

unsigned isod_sock_close_all(struct isod_app *app)
{
	for (uint32_t i = 1; i < app->hiwat; i++) {
		struct isod_sock *sk = &app->socks[i];

		/* Children in a backlog go with their listener's close. */
		if (!sk->in_use || sk->quarantined || sk->close_pending ||
		    sk->state == ISOD_S_CHILD || sk->state == ISOD_S_FREE)
			continue;
		isod_sk_close_by_stack(sk);
	}
	return isod_sock_closing(app);
}

unsigned isod_sock_closing(const struct isod_app *app)
{
	unsigned n = 0;

	for (uint32_t i = 1; i < app->hiwat; i++)
		n += app->socks[i].close_pending &&
		     (app->socks[i].pcb != NULL || app->socks[i].cut_peer != NULL);
	return n;
}
