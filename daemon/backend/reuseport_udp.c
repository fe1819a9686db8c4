/*
 * SO_REUSEPORT groups of UDP sockets: several sockets, of one
 * application or of several of the same user, bound with SO_REUSEPORT
 * to the same address and port share its incoming datagrams, as on Linux
 * (socket(7), udp_lib_get_port and reuseport_select_sock).
 *
 * Every member keeps its own bound lwIP pcb: it sends from it, and lwIP's
 * udp_input gives each datagram for the port to one of them, a connected
 * pcb whose peer sent it first, else the first unconnected one that
 * matches.  In that second case the datagram is ours to place: it goes
 * to the member hash(4-tuple) mod n of the n members (reuseport_hash.c),
 * so a flow stays on one member while the group does not change, and a
 * connected member is stepped over, as Linux's
 * reuseport_select_sock_by_hash does: it only gets its own peer's
 * datagrams.  A member that closes leaves the group; the others go on.
 *
 * Binding follows Linux's udp_lib_lport_inuse: a socket shares a port
 * with each socket whose address overlaps its own only if both have
 * SO_REUSEADDR, or both have SO_REUSEPORT and one user (the uid the
 * application attached with).  lwIP's udp_bind knows only the first, so
 * a SO_REUSEPORT bind is checked and registered here; any other bind
 * goes through udp_bind, whose check is then Linux's as it is.  Cost: a
 * walk of lwIP's UDP pcbs per SO_REUSEPORT bind, O(1) per datagram.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "lwip/ip.h"
#include "lwip/udp.h"

#include "internal.h"

struct isod_rpu_group {
	struct isod_rpu_group *next;
	ip_addr_t ip;                /* the members' address, its type included */
	u16_t port;
	uint32_t uid;
	uint32_t seed;               /* of the 4-tuple hash */
	struct isod_sock **m;
	uint32_t n, cap;
};

/* The socket of one of lwIP's UDP pcbs, NULL if it is not a socket's. */
static struct isod_sock *sock_of(const struct udp_pcb *p)
{
	return p->recv == isod_sk_cb_udp_recv ? p->recv_arg : NULL;
}

/* Linux's rule for sk bound to (ip, port): 0 or -EADDRINUSE. */
static int bind_conflict(const struct isod_sock *sk, const ip_addr_t *ip, u16_t port)
{
	bool reuseaddr = ip_get_option(sk->upcb, SOF_REUSEADDR) != 0;

	for (const struct udp_pcb *p = udp_pcbs; p != NULL; p = p->next) {
		const struct isod_sock *o;

		if (p == sk->upcb || p->local_port != port || !isod_rp_addr_overlap(&p->local_ip, ip))
			continue;
		if (reuseaddr && ip_get_option(p, SOF_REUSEADDR))
			continue;
		o = sock_of(p);
		if (o != NULL && o->reuseport && o->app->uid == sk->app->uid)
			continue;
		return -EADDRINUSE;
	}
	return 0;
}

/* What udp_bind does once its check passed: the address (zoned as
 * udp_bind zones it), the port, and the pcb on lwIP's list. */
static void bind_register(struct udp_pcb *upcb, const ip_addr_t *ip, u16_t port)
{
	const struct udp_pcb *p;

	ip_addr_set_ipaddr(&upcb->local_ip, ip);
	upcb->local_port = port;
	for (p = udp_pcbs; p != NULL && p != upcb; p = p->next)
		;
	if (p == NULL) {
		upcb->next = udp_pcbs;
		udp_pcbs = upcb;
	}
}

static void member_add(struct isod_rpu_group *g, struct isod_sock *sk)
{
	LWIP_ASSERT("room made for the member", g->n < g->cap);
	g->m[g->n++] = sk;
	sk->rpu = g;
	sk->rpu_dgrams = 0;
}

static void group_free(struct isod_backend *be, struct isod_rpu_group *g)
{
	for (struct isod_rpu_group **pp = &be->rpu_groups; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == g) {
			*pp = g->next;
			break;
		}
	}
	be->rpu_ngroups--;
	free(g->m);
	free(g);
}

/* The group of (ip, port) and sk's user: found, or made with the sockets
 * there that set SO_REUSEPORT only after they bound (Linux's
 * udp_reuseport_add_sock takes them in too).  NULL: no memory. */
static struct isod_rpu_group *group_for(const struct isod_sock *sk, const ip_addr_t *ip,
					u16_t port)
{
	struct isod_backend *be = sk->app->be;
	struct isod_rpu_group *g;

	for (g = be->rpu_groups; g != NULL; g = g->next)
		if (g->port == port && g->uid == sk->app->uid && ip_addr_cmp(&g->ip, ip))
			return g;
	g = calloc(1, sizeof(*g));
	if (g == NULL)
		return NULL;
	ip_addr_copy(g->ip, *ip);
	g->port = port;
	g->uid = sk->app->uid;
	g->seed = isod_rp_seed(g);
	g->next = be->rpu_groups;
	be->rpu_groups = g;
	be->rpu_ngroups++;
	for (const struct udp_pcb *p = udp_pcbs; p != NULL; p = p->next) {
		struct isod_sock *o = sock_of(p);

		if (o == NULL || o->rpu != NULL || !o->reuseport || o->app->uid != g->uid ||
		    p->local_port != port || !ip_addr_cmp(&p->local_ip, ip))
			continue;
		if (isod_rp_room(&g->m, g->n, &g->cap) < 0)
			break;   /* o goes on unshared, as a socket of its own */
		member_add(g, o);
	}
	return g;
}

int isod_rpu_bind(struct isod_sock *sk, const ip_addr_t *ip, u16_t port)
{
	struct isod_rpu_group *g;
	ip_addr_t a;
	int rc;

	if (!sk->reuseport || port == 0) {
		/* an ephemeral port is nobody's: lwIP picks a free one */
		return isod_sk_lwip_bind_errno(udp_bind(sk->upcb, ip, port));
	}
	ip_addr_copy(a, *ip);
#if LWIP_IPV6 && LWIP_IPV6_SCOPES
	/* as udp_bind: the zone first, then the check */
	if (IP_IS_V6(&a) && ip6_addr_lacks_zone(ip_2_ip6(&a), IP6_UNICAST))
		ip6_addr_select_zone(ip_2_ip6(&a), ip_2_ip6(&a));
#endif
	rc = bind_conflict(sk, &a, port);
	if (rc < 0)
		return rc;
	g = group_for(sk, &a, port);
	if (g == NULL || isod_rp_room(&g->m, g->n, &g->cap) < 0) {
		if (g != NULL && g->n == 0)
			group_free(sk->app->be, g);
		return -ENOBUFS;
	}
	bind_register(sk->upcb, &a, port);
	member_add(g, sk);
	return 0;
}

struct isod_sock *isod_rpu_pick(struct isod_sock *sk, const struct udp_pcb *pcb,
				const ip_addr_t *src, u16_t sport)
{
	struct isod_rpu_group *g = sk->rpu;
	uint32_t i, first;

	if (g == NULL || g->n < 2 || (pcb->flags & UDP_FLAGS_CONNECTED))
		return sk;
	i = first = isod_rp_slot(g->seed, g->n, ip_current_dest_addr(), pcb->local_port,
				 src, sport);
	while (g->m[i]->upcb != NULL && (g->m[i]->upcb->flags & UDP_FLAGS_CONNECTED)) {
		i = i + 1 < g->n ? i + 1 : 0;
		if (i == first)
			return sk;
	}
	return g->m[i];
}

void isod_rpu_leave(struct isod_sock *sk)
{
	struct isod_rpu_group *g = sk->rpu;
	uint32_t i;

	if (g == NULL)
		return;
	sk->rpu = NULL;
	for (i = 0; i < g->n && g->m[i] != sk; i++)
		;
	LWIP_ASSERT("reuseport member in its group", i < g->n);
	g->m[i] = g->m[--g->n];      /* Linux's detach: the last takes the hole */
	if (g->n == 0)
		group_free(sk->app->be, g);
}

uint32_t isod_rpu_members(const struct isod_sock *sk)
{
	return sk->rpu != NULL ? sk->rpu->n : 0;
}
