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
#include "lwip/prot/tcp.h"

#define ETH_HLEN      SIZEOF_ETH_HDR
#define TS_OPTLEN     12           /* NOP, NOP, kind 8, length 10, 2 x 4 */
#define GRO_IP_MAX    (0xffff - ETH_HLEN)  /* pbuf lengths are u16_t */

enum seg_kind { SEG_OTHER, SEG_TCP, SEG_DATA };

struct seg {
	struct ip_hdr *ip;
	struct tcp_hdr *tcp;
	uint16_t ip_len, hlen, plen;
};

/* What frame p is: not IPv4 TCP (SEG_OTHER); TCP that cannot merge
 * (SEG_TCP: a SYN, FIN or RST, other options, no payload, ...); or a
 * plain data segment (SEG_DATA). */
static enum seg_kind parse(struct pbuf *p, struct seg *s)
{
	const struct eth_hdr *eth = p->payload;
	const uint8_t *o;
	uint8_t flags;

	if (p->len != p->tot_len || p->len < ETH_HLEN + IP_HLEN + TCP_HLEN ||
	    eth->type != PP_HTONS(ETHTYPE_IP))
		return SEG_OTHER;
	s->ip = (struct ip_hdr *)((uint8_t *)p->payload + ETH_HLEN);
	if (IPH_V(s->ip) != 4 || IPH_PROTO(s->ip) != IP_PROTO_TCP)
		return SEG_OTHER;
	if (IPH_HL_BYTES(s->ip) != IP_HLEN ||
	    (IPH_OFFSET(s->ip) & PP_HTONS(IP_MF | IP_OFFMASK)) != 0)
		return SEG_OTHER;   /* lwIP sorts these out (reassembly, options) */
	s->tcp = (struct tcp_hdr *)((uint8_t *)s->ip + IP_HLEN);
	s->ip_len = lwip_ntohs(IPH_LEN(s->ip));
	s->hlen = TCPH_HDRLEN_BYTES(s->tcp);
	/* A frame padded to the minimum, or cut short, goes to lwIP whole. */
	if (ETH_HLEN + s->ip_len != p->len || IP_HLEN + s->hlen >= s->ip_len)
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
	s->plen = (uint16_t)(s->ip_len - IP_HLEN - s->hlen);
	return SEG_DATA;
}

static bool cksum_good(const struct seg *s)
{
	struct pbuf view;
	ip4_addr_t src, dst;
	uint16_t tcp_len = (uint16_t)(s->ip_len - IP_HLEN);

	if (inet_chksum(s->ip, IP_HLEN) != 0)
		return false;
	memset(&view, 0, sizeof(view));
	view.payload = s->tcp;
	view.len = view.tot_len = tcp_len;
	ip4_addr_copy(src, s->ip->src);
	ip4_addr_copy(dst, s->ip->dest);
	return inet_chksum_pseudo(&view, IP_PROTO_TCP, tcp_len, &src, &dst) == 0;
}

static struct isotcp_gro_flow *find(struct isotcp_gro *g, const struct seg *s)
{
	for (unsigned i = 0; i < g->nflows; i++) {
		struct isotcp_gro_flow *f = &g->flow[i];

		if (f->src == s->ip->src.addr && f->dst == s->ip->dest.addr &&
		    f->sport == s->tcp->src && f->dport == s->tcp->dest)
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
	const struct seg head = {
		.ip = (struct ip_hdr *)((uint8_t *)f->head->payload + ETH_HLEN),
	};
	const struct tcp_hdr *ht = (const struct tcp_hdr *)((const uint8_t *)head.ip + IP_HLEN);
	uint16_t hlen = TCPH_HDRLEN_BYTES(ht);

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
	struct ip_hdr *hip = (struct ip_hdr *)((uint8_t *)f->head->payload + ETH_HLEN);
	struct tcp_hdr *ht = (struct tcp_hdr *)((uint8_t *)hip + IP_HLEN);

	pbuf_remove_header(p, (size_t)(ETH_HLEN + IP_HLEN + s->hlen));
	pbuf_cat(f->head, p);
	f->ip_len = (uint16_t)(f->ip_len + s->plen);
	IPH_LEN_SET(hip, lwip_htons(f->ip_len));
	if (TCPH_FLAGS(s->tcp) & TCP_PSH)
		TCPH_SET_FLAG(ht, TCP_PSH);
	f->next_seq += s->plen;
	f->segs++;
	g->merged++;
}

bool isotcp_gro_take(struct isotcp_gro *g, struct netif *netif, struct pbuf *p, bool cksum_ok)
{
	struct isotcp_gro_flow *f;
	struct seg s;
	enum seg_kind kind = parse(p, &s);

	if (kind == SEG_OTHER)
		return false;
	f = find(g, &s);
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
	f->src = s.ip->src.addr;
	f->dst = s.ip->dest.addr;
	f->sport = s.tcp->src;
	f->dport = s.tcp->dest;
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
