/*
 * Receive coalescing before lwIP's input (gro.h says what merges and why).
 *
 * A held flow is its first frame, whole (Ethernet, IP and TCP headers and
 * payload), with the payloads of the next frames chained on it, their
 * headers taken off (pbuf_remove_header: for the netif's mbuf pbufs that
 * only moves the payload pointer). The first frame's IP total length grows
 * with each; its TCP header (sequence number, the common ACK, window and
 * timestamps) stands for all, with PSH if the last one had it. lwIP then
 * takes it as one segment: pbuf chains are how it holds data anyway, and
 * the loopback path hands it segments of up to 64 KB the same way.
 */
#include "gro.h"

#include <string.h>

#include "lwip/def.h"
#include "lwip/inet_chksum.h"
#include "lwip/ip4_addr.h"
#include "lwip/prot/ethernet.h"
#include "lwip/prot/ip.h"
#include "lwip/prot/ip4.h"
#include "lwip/prot/ip6.h"
#include "lwip/ip6_addr.h"
#include "lwip/prot/tcp.h"

#define ETH_HLEN      SIZEOF_ETH_HDR
#define TS_OPTLEN     12           /* NOP, NOP, kind 8, length 10, 2 x 4 */
#define GRO_IP_MAX    (0xffff - ETH_HLEN)  /* pbuf lengths are u16_t */

enum seg_kind { SEG_OTHER, SEG_TCP, SEG_DATA };

struct seg {
	uint8_t *ip;                 /* the IPv4 or IPv6 header */
	struct tcp_hdr *tcp;
	bool v6;
	uint16_t ip_hlen;            /* IP_HLEN or IP6_HLEN */
	uint16_t ip_len, hlen, plen; /* whole datagram, TCP header, payload */
};

/* The IP layer of frame p (after Ethernet): s->ip, s->v6, s->ip_hlen,
 * s->ip_len and s->tcp. false if it is not plain TCP over IPv4 or IPv6:
 * IPv4 options or fragments and IPv6 extension headers go to lwIP. */
static bool parse_ip(struct pbuf *p, const struct eth_hdr *eth, struct seg *s)
{
	s->ip = (uint8_t *)p->payload + ETH_HLEN;
	if (eth->type == PP_HTONS(ETHTYPE_IP)) {
		const struct ip_hdr *ip4 = (const struct ip_hdr *)s->ip;

		if (IPH_V(ip4) != 4 || IPH_PROTO(ip4) != IP_PROTO_TCP ||
		    IPH_HL_BYTES(ip4) != IP_HLEN ||
		    (IPH_OFFSET(ip4) & PP_HTONS(IP_MF | IP_OFFMASK)) != 0)
			return false;
		s->v6 = false;
		s->ip_hlen = IP_HLEN;
		s->ip_len = lwip_ntohs(IPH_LEN(ip4));
	} else if (eth->type == PP_HTONS(ETHTYPE_IPV6)) {
		const struct ip6_hdr *ip6 = (const struct ip6_hdr *)s->ip;

		if (p->len < ETH_HLEN + IP6_HLEN + TCP_HLEN || IP6H_V(ip6) != 6 ||
		    IP6H_NEXTH(ip6) != IP6_NEXTH_TCP)
			return false;
		s->v6 = true;
		s->ip_hlen = IP6_HLEN;
		s->ip_len = (uint16_t)(IP6_HLEN + IP6H_PLEN(ip6));
		if (IP6H_PLEN(ip6) > GRO_IP_MAX - IP6_HLEN)
			return false;
	} else {
		return false;
	}
	s->tcp = (struct tcp_hdr *)(s->ip + s->ip_hlen);
	return true;
}

/* What frame p is: not TCP over IPv4 or IPv6 (SEG_OTHER); TCP that cannot
 * merge (SEG_TCP: a SYN, FIN or RST, other options, no payload, ...); or
 * a plain data segment (SEG_DATA). */
static enum seg_kind parse(struct pbuf *p, struct seg *s)
{
	const struct eth_hdr *eth = p->payload;
	const uint8_t *o;
	uint8_t flags;

	if (p->len != p->tot_len || p->len < ETH_HLEN + IP_HLEN + TCP_HLEN ||
	    !parse_ip(p, eth, s))
		return SEG_OTHER;
	s->hlen = TCPH_HDRLEN_BYTES(s->tcp);
	/* A frame padded to the minimum, or cut short, goes to lwIP whole. */
	if (ETH_HLEN + s->ip_len != p->len || s->ip_hlen + s->hlen >= s->ip_len)
		return SEG_TCP;
	flags = TCPH_FLAGS(s->tcp);
	if ((flags & ~(TCP_ACK | TCP_PSH)) != 0 || (flags & TCP_ACK) == 0)
		return SEG_TCP;
	if (s->hlen == TCP_HLEN + TS_OPTLEN) {
		o = (const uint8_t *)s->tcp + TCP_HLEN;
		if (o[0] != 1 || o[1] != 1 || o[2] != 8 || o[3] != 10)
			return SEG_TCP;
	} else if (s->hlen != TCP_HLEN) {
		return SEG_TCP;
	}
	s->plen = (uint16_t)(s->ip_len - s->ip_hlen - s->hlen);
	return SEG_DATA;
}

static bool cksum_good(const struct seg *s)
{
	struct pbuf view;
	uint16_t tcp_len = (uint16_t)(s->ip_len - s->ip_hlen);

	memset(&view, 0, sizeof(view));
	view.payload = s->tcp;
	view.len = view.tot_len = tcp_len;
	if (s->v6) {
		const struct ip6_hdr *ip6 = (const struct ip6_hdr *)s->ip;
		ip6_addr_t src, dst;

		ip6_addr_copy_from_packed(src, ip6->src);
		ip6_addr_copy_from_packed(dst, ip6->dest);
		return ip6_chksum_pseudo(&view, IP6_NEXTH_TCP, tcp_len, &src, &dst) == 0;
	} else {
		const struct ip_hdr *ip4 = (const struct ip_hdr *)s->ip;
		ip4_addr_t src, dst;

		if (inet_chksum(s->ip, IP_HLEN) != 0)
			return false;
		ip4_addr_copy(src, ip4->src);
		ip4_addr_copy(dst, ip4->dest);
		return inet_chksum_pseudo(&view, IP_PROTO_TCP, tcp_len, &src, &dst) == 0;
	}
}

/* The flow's key from segment s: both addresses (an IPv4 one in the first
 * word, the rest zero) and both ports, in network order. */
static void key_of(const struct seg *s, struct isotcp_gro_key *k)
{
	memset(k, 0, sizeof(*k));
	k->v6 = s->v6;
	if (s->v6) {
		const struct ip6_hdr *ip6 = (const struct ip6_hdr *)s->ip;

		memcpy(k->src, &ip6->src, sizeof(k->src));
		memcpy(k->dst, &ip6->dest, sizeof(k->dst));
	} else {
		const struct ip_hdr *ip4 = (const struct ip_hdr *)s->ip;

		k->src[0] = ip4->src.addr;
		k->dst[0] = ip4->dest.addr;
	}
	k->sport = s->tcp->src;
	k->dport = s->tcp->dest;
}

static struct isotcp_gro_flow *find(struct isotcp_gro *g, const struct isotcp_gro_key *k)
{
	for (unsigned i = 0; i < g->nflows; i++) {
		struct isotcp_gro_flow *f = &g->flow[i];

		if (memcmp(&f->key, k, sizeof(*k)) == 0)
			return f;
	}
	return NULL;
}

/* Hands flow f to lwIP (its checksums were checked here) and drops it from
 * the table (the last one takes its place: the order across flows does
 * not matter, within a flow it is kept). */
static void deliver(struct isotcp_gro *g, struct netif *netif, struct isotcp_gro_flow *f)
{
	struct pbuf *p = f->head;
	u16_t chk = netif->chksum_flags;

	if (f->segs > 1)
		g->delivered++;
	NETIF_SET_CHECKSUM_CTRL(netif, chk & (u16_t)~(NETIF_CHECKSUM_CHECK_IP |
						     NETIF_CHECKSUM_CHECK_TCP));
	if (netif->input(p, netif) != ERR_OK)
		pbuf_free(p);
	NETIF_SET_CHECKSUM_CTRL(netif, chk);
	*f = g->flow[--g->nflows];
}

/* Can segment s (checked) go on the end of flow f? */
static bool fits(const struct isotcp_gro_flow *f, const struct seg *s)
{
	const uint8_t *hip = (const uint8_t *)f->head->payload + ETH_HLEN;
	const struct tcp_hdr *ht = (const struct tcp_hdr *)(hip + s->ip_hlen);
	uint16_t hlen = TCPH_HDRLEN_BYTES(ht);

	/* IPv6: the same traffic class, flow label and hop limit, as Linux's
	 * GRO asks (the first 4 bytes, and byte 7) */
	if (s->v6 && (memcmp(hip, s->ip, 4) != 0 || hip[7] != s->ip[7]))
		return false;
	return lwip_ntohl(s->tcp->seqno) == f->next_seq && s->tcp->ackno == ht->ackno &&
	       s->tcp->wnd == ht->wnd && s->hlen == hlen &&
	       memcmp((const uint8_t *)s->tcp + TCP_HLEN, (const uint8_t *)ht + TCP_HLEN,
		      hlen - TCP_HLEN) == 0 &&
	       (TCPH_FLAGS(ht) & TCP_PSH) == 0 && f->segs < ISOTCP_GRO_MAX_SEGS &&
	       (uint32_t)f->ip_len + s->plen <= GRO_IP_MAX;
}

static void append(struct isotcp_gro *g, struct isotcp_gro_flow *f, struct pbuf *p,
		   const struct seg *s)
{
	uint8_t *hip = (uint8_t *)f->head->payload + ETH_HLEN;
	struct tcp_hdr *ht = (struct tcp_hdr *)(hip + s->ip_hlen);

	pbuf_remove_header(p, (size_t)(ETH_HLEN + s->ip_hlen + s->hlen));
	pbuf_cat(f->head, p);
	f->ip_len = (uint16_t)(f->ip_len + s->plen);
	if (s->v6)
		IP6H_PLEN_SET((struct ip6_hdr *)hip, (u16_t)(f->ip_len - IP6_HLEN));
	else
		IPH_LEN_SET((struct ip_hdr *)hip, lwip_htons(f->ip_len));
	if (TCPH_FLAGS(s->tcp) & TCP_PSH)
		TCPH_SET_FLAG(ht, TCP_PSH);
	f->next_seq += s->plen;
	f->segs++;
	g->merged++;
}

bool isotcp_gro_take(struct isotcp_gro *g, struct netif *netif, struct pbuf *p, bool cksum_ok)
{
	struct isotcp_gro_flow *f;
	struct isotcp_gro_key k;
	struct seg s = { 0 };
	enum seg_kind kind = parse(p, &s);

	if (kind == SEG_OTHER)
		return false;
	key_of(&s, &k);
	f = find(g, &k);
	if (kind == SEG_TCP) {
		if (f != NULL)
			deliver(g, netif, f);   /* what came before it first */
		return false;
	}
	if (!cksum_ok && !cksum_good(&s)) {
		g->bad_cksum++;
		pbuf_free(p);
		return true;
	}
	if (f != NULL) {
		if (fits(f, &s)) {
			append(g, f, p, &s);
			return true;
		}
		deliver(g, netif, f);
	}
	if (g->nflows == ISOTCP_GRO_FLOWS)
		deliver(g, netif, &g->flow[0]);
	f = &g->flow[g->nflows++];
	f->head = p;
	f->key = k;
	f->next_seq = lwip_ntohl(s.tcp->seqno) + s.plen;
	f->ip_len = s.ip_len;
	f->segs = 1;
	return true;
}

void isotcp_gro_flush(struct isotcp_gro *g, struct netif *netif)
{
	while (g->nflows > 0)
		deliver(g, netif, &g->flow[g->nflows - 1]);
}
