/*
 * SO_REUSEPORT groups: several TCP sockets, of one application or of
 * several, bound to the same address and port share its incoming
 * connections, as on Linux (socket(7)).
 *
 * lwIP has at most one listening pcb per address and port, so the group
 * is ours.  The first member to listen (the owner) holds the lwIP
 * listener; members that listen after it keep the pcb they bound (which
 * holds the port and answers getsockname) and join the group's table.
 * Each connection whose handshake completes goes to one listening
 * member, chosen by a hash of its 4-tuple modulo the members listening
 * now, as Linux chooses (a connection lands on the same member as long
 * as the group does not change), and waits in that member's backlog, in
 * its application's memory, for an ACCEPT (sock_tcp.c, cb_accept).  A
 * member that closes leaves the others serving: its connections not yet
 * accepted are reset with it, as the kernel does; when it held the lwIP
 * listener, the listener and its half-open connections pass to another
 * listening member.  A member that only bound is given nothing.
 *
 * Binding follows Linux's rule (inet_bind_conflict): a socket shares a
 * port with the other sockets whose address overlaps its own only if,
 * for each, both are SO_REUSEPORT sockets of the same user (the uid the
 * application attached with) or both have SO_REUSEADDR and the other is
 * not listening; a TIME_WAIT connection of a SO_REUSEPORT socket never
 * stands in the way of another.  To tell them apart, every pcb of a
 * SO_REUSEPORT socket, and every connection its listener takes in,
 * carries uid + 1 in an lwIP extension slot (the mark).  lwIP's own
 * check in tcp_bind knows only SO_REUSEADDR, so a SO_REUSEPORT bind is
 * checked and registered here; other binds still go through tcp_bind,
 * after the marked pcbs were checked.  Costs: a walk of lwIP's pcb
 * lists per bind once any socket used SO_REUSEPORT (tcp_bind walks them
 * too), the member lookup per accepted connection is O(1).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"

#include "internal.h"

struct isod_rp_group {
	struct isod_rp_group *next;
	ip_addr_t ip;                /* the listener's address, its type included */
	u16_t port;
	uint32_t uid;
	uint32_t seed;               /* of the 4-tuple hash */
	struct isod_sock *owner;     /* holds the lwIP listener (owner->pcb) */
	struct isod_sock **m;        /* the listening members, owner included */
	uint32_t n, cap;
};

/* ---- The mark: uid + 1 of a SO_REUSEPORT socket's pcbs ------------------ */

static err_t mark_passive_open(u8_t id, struct tcp_pcb_listen *lpcb, struct tcp_pcb *npcb)
{
	/* A connection of a marked listener is marked too (Linux's child
	 * inherits sk_reuseport and its owner). */
	tcp_ext_arg_set(npcb, id, tcp_ext_arg_get((const struct tcp_pcb *)lpcb, id));
	return ERR_OK;
}

static const struct tcp_ext_arg_callbacks mark_cbs = {
	.passive_open = mark_passive_open,
};

static u8_t mark_id(void)
{
	static int16_t slot = -1;

	return isod_ext_id(&slot);
}

static uintptr_t mark_of(const struct tcp_pcb *pcb)
{
	return (uintptr_t)tcp_ext_arg_get(pcb, mark_id());
}

static uintptr_t mark_for(const struct isod_sock *sk)
{
	return (uintptr_t)sk->app->uid + 1;
}

static void mark_set(struct tcp_pcb *pcb, uintptr_t mark)
{
	tcp_ext_arg_set_callbacks(pcb, mark_id(), mark != 0 ? &mark_cbs : NULL);
	tcp_ext_arg_set(pcb, mark_id(), (void *)mark);
}

void isod_rp_set(struct isod_sock *sk, bool on)
{
	sk->reuseport = on;
	if (on)
		sk->app->be->rp_used = true;
	/* Bound already: the pcb says so to later binds (Linux reads the
	 * flag at each conflict check).  A listener keeps what it had. */
	if (sk->pcb != NULL && sk->pcb->state == CLOSED && sk->pcb->local_port != 0 &&
	    sk->rp == NULL)
		mark_set(sk->pcb, on ? mark_for(sk) : 0);
}

/* ---- Bind ---------------------------------------------------------------- */

/*
 * Linux's inet_bind_conflict for sk bound to (ip, port): 0, or
 * -EADDRINUSE if a pcb there stands in the way.  all: every pcb is
 * looked at (sk is SO_REUSEPORT: tcp_bind's check is not used); else
 * only marked ones (tcp_bind checks the others).
 */
static int bind_conflict(const struct isod_sock *sk, const ip_addr_t *ip, u16_t port, bool all)
{
	uintptr_t me = sk->reuseport ? mark_for(sk) : 0;
	bool reuseaddr = ip_get_option(sk->pcb, SOF_REUSEADDR) != 0;

	for (int i = 0; i < NUM_TCP_PCB_LISTS; i++) {
		/* Listeners are struct tcp_pcb_listen: only the common
		 * fields (TCP_PCB_COMMON) are read. */
		for (const struct tcp_pcb *p = *tcp_pcb_lists[i]; p != NULL; p = p->next) {
			uintptr_t mark;

			if (p->local_port != port || p == sk->pcb || !isod_rp_addr_overlap(&p->local_ip, ip))
				continue;
			mark = mark_of(p);
			if (!all && mark == 0)
				continue;
			if (reuseaddr && ip_get_option(p, SOF_REUSEADDR) && p->state != LISTEN)
				continue;
			if (me != 0 && mark != 0 && (p->state == TIME_WAIT || mark == me))
				continue;
			return -EADDRINUSE;
		}
	}
	return 0;
}

int isod_rp_bind(struct isod_sock *sk, const ip_addr_t *ip, u16_t port)
{
	struct tcp_pcb *pcb = sk->pcb;
	ip_addr_t a;
	int rc;

	if (port == 0 || !sk->app->be->rp_used) {
		/* an ephemeral port is nobody's: lwIP picks a free one */
		rc = isod_sk_lwip_bind_errno(tcp_bind(pcb, ip, port));
		if (rc == 0 && sk->reuseport)
			mark_set(pcb, mark_for(sk));
		return rc;
	}
	ip_addr_copy(a, *ip);
#if LWIP_IPV6 && LWIP_IPV6_SCOPES
	/* as tcp_bind: the zone first, then the check */
	if (IP_IS_V6(&a) && ip6_addr_lacks_zone(ip_2_ip6(&a), IP6_UNICAST))
		ip6_addr_select_zone(ip_2_ip6(&a), ip_2_ip6(&a));
#endif
	rc = bind_conflict(sk, &a, port, sk->reuseport);
	if (rc < 0)
		return rc;
	if (!sk->reuseport)
		return isod_sk_lwip_bind_errno(tcp_bind(pcb, ip, port));
	/* What tcp_bind does once its check passed. */
	if (!ip_addr_isany(&a) || IP_GET_TYPE(&a) != IP_GET_TYPE(&pcb->local_ip))
		ip_addr_set(&pcb->local_ip, &a);
	pcb->local_port = port;
	TCP_REG(&tcp_bound_pcbs, pcb);
	mark_set(pcb, mark_for(sk));
	return 0;
}

/* ---- Groups ------------------------------------------------------------------ */

static struct isod_rp_group *group_find(const struct isod_backend *be, const ip_addr_t *ip,
					u16_t port)
{
	for (struct isod_rp_group *g = be->rp_groups; g != NULL; g = g->next)
		if (g->port == port && ip_addr_cmp(&g->ip, ip))
			return g;
	return NULL;
}

static int member_add(struct isod_rp_group *g, struct isod_sock *sk)
{
	if (isod_rp_room(&g->m, g->n, &g->cap) < 0)
		return -ENOBUFS;
	g->m[g->n++] = sk;
	sk->rp = g;
	return 0;
}

int isod_rp_join(struct isod_sock *sk)
{
	struct isod_rp_group *g;
	int rc;

	if (!sk->reuseport || sk->pcb == NULL || sk->pcb->local_port == 0)
		return 0;
	g = group_find(sk->app->be, &sk->pcb->local_ip, sk->pcb->local_port);
	if (g == NULL)
		return 0;
	/* Binding let only the same user's SO_REUSEPORT sockets in, but
	 * SO_REUSEPORT may have been set after the bind. */
	if (g->uid != sk->app->uid)
		return -EADDRINUSE;
	rc = member_add(g, sk);
	return rc < 0 ? rc : 1;
}

void isod_rp_listened(struct isod_sock *sk)
{
	struct isod_backend *be = sk->app->be;
	struct isod_rp_group *g;

	if (!sk->reuseport)
		return;
	g = calloc(1, sizeof(*g));
	if (g == NULL)
		return;           /* a listener of its own: nobody can join it */
	if (member_add(g, sk) < 0) {
		free(g);
		return;
	}
	ip_addr_copy(g->ip, sk->pcb->local_ip);
	g->port = sk->pcb->local_port;
	g->uid = sk->app->uid;
	g->seed = isod_rp_seed(g);
	g->owner = sk;
	mark_set(sk->pcb, mark_for(sk));   /* an implicit bind at listen */
	g->next = be->rp_groups;
	be->rp_groups = g;
	be->rp_ngroups++;
}

struct isod_sock *isod_rp_pick(struct isod_sock *lsk, struct tcp_pcb *npcb)
{
	struct isod_rp_group *g = lsk->rp;
	struct isod_sock *m;

	if (g == NULL || g->n < 2)
		return lsk;
	m = g->m[isod_rp_slot(g->seed, g->n, &npcb->local_ip, npcb->local_port,
			      &npcb->remote_ip, npcb->remote_port)];
	/* The connection inherits its own listener's options (lwIP gave it
	 * the lwIP listener's, the owner's). */
	if (m->pcb != NULL)
		npcb->so_options = (u8_t)((npcb->so_options & ~SOF_INHERITED) |
					  (m->pcb->so_options & SOF_INHERITED));
	return m;
}

struct isod_sock *isod_rp_pick_addr(struct isod_sock *lsk, const ip_addr_t *lip, u16_t lport,
				    const ip_addr_t *rip, u16_t rport)
{
	struct isod_rp_group *g = lsk->rp;

	if (g == NULL || g->n < 2)
		return lsk;
	return g->m[isod_rp_slot(g->seed, g->n, lip, lport, rip, rport)];
}

/* The owner goes: the lwIP listener passes to member n, whose bound pcb
 * it replaces (same address and port). */
static void handover(struct isod_rp_group *g, struct isod_sock *old, struct isod_sock *n)
{
	struct tcp_pcb *lpcb = old->pcb, *bound = n->pcb;

	if (bound != NULL) {
		isod_sk_detach_pcb(n);
		tcp_close(bound);    /* CLOSED: freed at once */
	}
	old->pcb = NULL;         /* not closed: it is n's now */
	isod_cap_pcb_sync(old);
	tcp_arg(lpcb, n);
	n->pcb = lpcb;
	isod_cap_pcb_sync(n);
	g->owner = n;
	old->app->be->st.reuseport_handovers++;
}

void isod_rp_leave(struct isod_sock *sk)
{
	struct isod_rp_group *g = sk->rp;
	struct isod_backend *be;
	uint32_t i;

	isod_rpu_leave(sk);   /* a UDP socket's group (reuseport_udp.c) */
	if (g == NULL)
		return;
	be = sk->app->be;
	sk->rp = NULL;
	for (i = 0; i < g->n && g->m[i] != sk; i++)
		;
	LWIP_ASSERT("reuseport member in its group", i < g->n);
	g->m[i] = g->m[--g->n];      /* Linux's detach: the last takes the hole */
	if (g->owner != sk)
		return;
	if (g->n > 0 && sk->pcb != NULL && sk->pcb->state == LISTEN) {
		handover(g, sk, g->m[0]);
		return;
	}
	/* The last listening member: the listener closes with it. */
	for (struct isod_rp_group **pp = &be->rp_groups; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == g) {
			*pp = g->next;
			break;
		}
	}
	for (i = 0; i < g->n; i++)
		g->m[i]->rp = NULL;  /* (none: a listener is never lost) */
	be->rp_ngroups--;
	free(g->m);
	free(g);
}

uint32_t isod_rp_members(const struct isod_sock *sk)
{
	if (sk->udp)
		return isod_rpu_members(sk);
	return sk->rp != NULL ? sk->rp->n : 0;
}

size_t isod_rp_format_stats(const struct isod_backend *be, char *buf, size_t len)
{
	int n = snprintf(buf, len, "backend.reuseport_groups %u\nbackend.reuseport_handovers %llu\n"
			 "backend.reuseport_udp_groups %u\n",
			 be->rp_ngroups, (unsigned long long)be->st.reuseport_handovers,
			 be->rpu_ngroups);

	if (n < 0)
		return 0;
	return (size_t)n < len ? (size_t)n : (len ? len - 1 : 0);
}
