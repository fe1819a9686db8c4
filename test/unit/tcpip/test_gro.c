/*
 * Receive coalescing (tcpip/gro.c), frames in, what lwIP would be handed
 * out: a fake netif records every packet its input gets. Each case builds
 * Ethernet frames of TCP segments with correct checksums (or a wrong one),
 * feeds them as one receive burst and checks what was delivered: how many
 * packets, the IP length and TCP header of each, and that its payload is
 * the segments' payloads back to back, byte for byte. Over IPv4 and IPv6.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lwip/def.h"
#include "lwip/inet_chksum.h"
#include "lwip/init.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/prot/ethernet.h"
#include "lwip/prot/ip.h"
#include "lwip/prot/ip4.h"
#include "lwip/prot/ip6.h"
#include "lwip/ip6_addr.h"
#include "lwip/prot/tcp.h"

#include "gro.h"
#include "isotcp.h"

u32_t sys_now(void)
{
	return 0;
}

#define ETH_HLEN   SIZEOF_ETH_HDR
#define PAYLOAD    100
#define MAX_OUT    64

struct out {
	bool v6;
	uint16_t ip_len, segs_bytes;         /* ip_len: the whole datagram's */
	uint32_t seq;
	uint8_t flags;
	uint16_t sport;
	uint8_t data[65536];
	uint16_t data_len;
	uint16_t chk_at_input;         /* the netif's checking flags then */
};

static struct out outs[MAX_OUT];
static unsigned nout;
static struct netif nif;
static struct isotcp_gro gro;

static err_t rec_input(struct pbuf *p, struct netif *netif)
{
	struct out *o = &outs[nout++];
	uint8_t hdr[ETH_HLEN + IP6_HLEN + TCP_HLEN + 12];
	const struct eth_hdr *eth = (const struct eth_hdr *)hdr;
	const struct tcp_hdr *tcp;
	uint16_t iph, hl;

	assert_true(nout <= MAX_OUT);
	pbuf_copy_partial(p, hdr, sizeof(hdr), 0);
	o->v6 = eth->type == PP_HTONS(ETHTYPE_IPV6);
	if (o->v6) {
		const struct ip6_hdr *ip6 = (const struct ip6_hdr *)(hdr + ETH_HLEN);

		iph = IP6_HLEN;
		o->ip_len = (uint16_t)(IP6_HLEN + IP6H_PLEN(ip6));
	} else {
		const struct ip_hdr *ip = (const struct ip_hdr *)(hdr + ETH_HLEN);

		iph = IP_HLEN;
		o->ip_len = lwip_ntohs(IPH_LEN(ip));
	}
	tcp = (const struct tcp_hdr *)(hdr + ETH_HLEN + iph);
	o->seq = lwip_ntohl(tcp->seqno);
	o->flags = TCPH_FLAGS(tcp);
	o->sport = lwip_ntohs(tcp->src);
	hl = (uint16_t)(ETH_HLEN + iph + TCPH_HDRLEN_BYTES(tcp));
	assert_int_equal(p->tot_len, ETH_HLEN + o->ip_len);
	o->data_len = (uint16_t)(p->tot_len - hl);
	pbuf_copy_partial(p, o->data, o->data_len, hl);
	o->chk_at_input = netif->chksum_flags;
	pbuf_free(p);
	return ERR_OK;
}

static uint8_t pattern(uint32_t seq)
{
	return (uint8_t)(seq * 7 + 3);
}

struct segspec {
	uint16_t sport;
	uint32_t seq;
	uint16_t len;
	uint8_t flags;
	uint32_t tsval;                /* 0: no timestamp option */
	bool bad_cksum;
	bool v6;
	uint32_t flow_label;           /* IPv6 */
};

/* The IP header of frame b for a segment of tcp_len bytes; returns its
 * length. Fills in the TCP checksum's pseudo-header sum later. */
static uint16_t ip_header(const struct segspec *sp, uint8_t *b, uint16_t tcp_len)
{
	struct eth_hdr *eth = (struct eth_hdr *)b;

	if (sp->v6) {
		struct ip6_hdr *ip6 = (struct ip6_hdr *)(b + ETH_HLEN);
		ip6_addr_t src, dst;

		eth->type = PP_HTONS(ETHTYPE_IPV6);
		IP6H_VTCFL_SET(ip6, 6, 0, sp->flow_label);
		IP6H_PLEN_SET(ip6, tcp_len);
		IP6H_NEXTH_SET(ip6, IP6_NEXTH_TCP);
		IP6H_HOPLIM_SET(ip6, 64);
		IP6_ADDR(&src, PP_HTONL(0x20010002), 0, 0, PP_HTONL(2));
		IP6_ADDR(&dst, PP_HTONL(0x20010002), 0, 0, PP_HTONL(1));
		ip6_addr_copy_to_packed(ip6->src, src);
		ip6_addr_copy_to_packed(ip6->dest, dst);
		return IP6_HLEN;
	} else {
		struct ip_hdr *ip = (struct ip_hdr *)(b + ETH_HLEN);
		ip4_addr_t src, dst;

		eth->type = PP_HTONS(ETHTYPE_IP);
		IPH_VHL_SET(ip, 4, IP_HLEN / 4);
		IPH_LEN_SET(ip, lwip_htons((u16_t)(IP_HLEN + tcp_len)));
		IPH_TTL_SET(ip, 64);
		IPH_PROTO_SET(ip, IP_PROTO_TCP);
		IP4_ADDR(&src, 198, 18, 0, 2);
		IP4_ADDR(&dst, 198, 18, 0, 1);
		ip4_addr_copy(ip->src, src);
		ip4_addr_copy(ip->dest, dst);
		IPH_CHKSUM_SET(ip, inet_chksum(ip, IP_HLEN));
		return IP_HLEN;
	}
}

/* The TCP checksum of the segment at tcp, over its IP header's pseudo
 * header. */
static u16_t tcp_cksum(const struct segspec *sp, const uint8_t *iph, void *tcp, uint16_t tcp_len)
{
	struct pbuf view;

	memset(&view, 0, sizeof(view));
	view.payload = tcp;
	view.len = view.tot_len = tcp_len;
	if (sp->v6) {
		const struct ip6_hdr *ip6 = (const struct ip6_hdr *)iph;
		ip6_addr_t src, dst;

		ip6_addr_copy_from_packed(src, ip6->src);
		ip6_addr_copy_from_packed(dst, ip6->dest);
		return ip6_chksum_pseudo(&view, IP6_NEXTH_TCP, tcp_len, &src, &dst);
	} else {
		const struct ip_hdr *ip = (const struct ip_hdr *)iph;
		ip4_addr_t src, dst;

		ip4_addr_copy(src, ip->src);
		ip4_addr_copy(dst, ip->dest);
		return inet_chksum_pseudo(&view, IP_PROTO_TCP, tcp_len, &src, &dst);
	}
}

/* An Ethernet frame of one TCP segment, checksums right (unless asked). */
static struct pbuf *frame(const struct segspec *sp)
{
	uint16_t opt = sp->tsval ? 12 : 0;
	uint16_t tcp_len = (uint16_t)(TCP_HLEN + opt + sp->len);
	uint16_t iph = sp->v6 ? IP6_HLEN : IP_HLEN;
	struct pbuf *p = pbuf_alloc(PBUF_RAW, (u16_t)(ETH_HLEN + iph + tcp_len), PBUF_RAM);
	uint8_t *b = p->payload;
	struct tcp_hdr *tcp = (struct tcp_hdr *)(b + ETH_HLEN + iph);
	uint8_t *o = (uint8_t *)tcp + TCP_HLEN;

	memset(b, 0, p->len);
	ip_header(sp, b, tcp_len);
	tcp->src = lwip_htons(sp->sport);
	tcp->dest = PP_HTONS(5001);
	tcp->seqno = lwip_htonl(sp->seq);
	tcp->ackno = PP_HTONL(77);
	TCPH_HDRLEN_FLAGS_SET(tcp, (TCP_HLEN + opt) / 4, sp->flags);
	tcp->wnd = PP_HTONS(4000);
	if (opt) {
		o[0] = 1; o[1] = 1; o[2] = 8; o[3] = 10;
		o[4] = (uint8_t)(sp->tsval >> 24); o[5] = (uint8_t)(sp->tsval >> 16);
		o[6] = (uint8_t)(sp->tsval >> 8); o[7] = (uint8_t)sp->tsval;
	}
	for (uint16_t i = 0; i < sp->len; i++)
		o[opt + i] = pattern(sp->seq + i);
	tcp->chksum = tcp_cksum(sp, b + ETH_HLEN, tcp, tcp_len);
	if (sp->bad_cksum)
		tcp->chksum ^= 0x0101;
	return p;
}

/* Feeds frames as one burst (each either taken or delivered as the netif
 * would), then flushes. */
static void burst(const struct segspec *sp, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct pbuf *p = frame(&sp[i]);

		if (!isotcp_gro_take(&gro, &nif, p, false))
			rec_input(p, &nif);
	}
	isotcp_gro_flush(&gro, &nif);
	assert_int_equal(gro.nflows, 0);
}

/* Delivered packet o carries bytes [seq, seq + len) of the pattern. */
static void assert_carries(const struct out *o, uint32_t seq, uint16_t len)
{
	assert_int_equal(o->seq, seq);
	assert_int_equal(o->data_len, len);
	for (uint16_t i = 0; i < len; i++)
		assert_int_equal(o->data[i], pattern(seq + i));
}

static int reset(void **state)
{
	(void)state;
	memset(&gro, 0, sizeof(gro));
	nout = 0;
	NETIF_SET_CHECKSUM_CTRL(&nif, NETIF_CHECKSUM_ENABLE_ALL);
	return 0;
}

static void test_one_flow_merges(void **state)
{
	struct segspec s[4];

	(void)state;
	for (int i = 0; i < 4; i++)
		s[i] = (struct segspec){ 4000, 1000 + i * PAYLOAD, PAYLOAD, TCP_ACK, 5, false, false, 0 };
	burst(s, 4);
	assert_int_equal(nout, 1);
	assert_int_equal(outs[0].ip_len, IP_HLEN + TCP_HLEN + 12 + 4 * PAYLOAD);
	assert_carries(&outs[0], 1000, 4 * PAYLOAD);
	assert_int_equal(outs[0].flags, TCP_ACK);
	assert_int_equal(gro.merged, 3);
	assert_int_equal(gro.delivered, 1);
	/* lwIP does not check again what was checked here; the flags come back */
	assert_int_equal(outs[0].chk_at_input & NETIF_CHECKSUM_CHECK_TCP, 0);
	assert_int_equal(nif.chksum_flags, NETIF_CHECKSUM_ENABLE_ALL);
}

static void test_two_flows_interleaved(void **state)
{
	struct segspec s[6];

	(void)state;
	for (int i = 0; i < 6; i++)
		s[i] = (struct segspec){ (uint16_t)(4000 + i % 2), (uint32_t)(500 + (i / 2) * PAYLOAD),
					 PAYLOAD, TCP_ACK, 0, false, false, 0 };
	burst(s, 6);
	assert_int_equal(nout, 2);
	for (unsigned k = 0; k < 2; k++)
		assert_carries(&outs[k], 500, 3 * PAYLOAD);
	assert_true(outs[0].sport != outs[1].sport);
}

static void test_gap_keeps_order(void **state)
{
	struct segspec s[3] = {
		{ 4000, 0, PAYLOAD, TCP_ACK, 0, false, false, 0 },
		{ 4000, PAYLOAD, PAYLOAD, TCP_ACK, 0, false, false, 0 },
		{ 4000, 5 * PAYLOAD, PAYLOAD, TCP_ACK, 0, false, false, 0 },   /* a hole before it */
	};

	(void)state;
	burst(s, 3);
	assert_int_equal(nout, 2);
	assert_carries(&outs[0], 0, 2 * PAYLOAD);
	assert_carries(&outs[1], 5 * PAYLOAD, PAYLOAD);
}

static void test_fin_delivers_held_first(void **state)
{
	struct segspec s[3] = {
		{ 4000, 0, PAYLOAD, TCP_ACK, 0, false, false, 0 },
		{ 4000, PAYLOAD, PAYLOAD, TCP_ACK, 0, false, false, 0 },
		{ 4000, 2 * PAYLOAD, PAYLOAD, TCP_ACK | TCP_FIN, 0, false, false, 0 },
	};

	(void)state;
	burst(s, 3);
	assert_int_equal(nout, 2);
	assert_carries(&outs[0], 0, 2 * PAYLOAD);
	assert_carries(&outs[1], 2 * PAYLOAD, PAYLOAD);
	assert_int_equal(outs[1].flags, TCP_ACK | TCP_FIN);
	/* the FIN went the netif's usual way: lwIP checks it */
	assert_int_equal(outs[1].chk_at_input, NETIF_CHECKSUM_ENABLE_ALL);
}

static void test_bad_checksum_dropped(void **state)
{
	struct segspec s[3] = {
		{ 4000, 0, PAYLOAD, TCP_ACK, 0, false, false, 0 },
		{ 4000, PAYLOAD, PAYLOAD, TCP_ACK, 0, true, false, 0 },
		{ 4000, 2 * PAYLOAD, PAYLOAD, TCP_ACK, 0, false, false, 0 },
	};

	(void)state;
	burst(s, 3);
	assert_int_equal(gro.bad_cksum, 1);
	/* the bad one is gone; what follows it is not contiguous any more */
	assert_int_equal(nout, 2);
	assert_carries(&outs[0], 0, PAYLOAD);
	assert_carries(&outs[1], 2 * PAYLOAD, PAYLOAD);
}

static void test_options_differ(void **state)
{
	struct segspec s[2] = {
		{ 4000, 0, PAYLOAD, TCP_ACK, 5, false, false, 0 },
		{ 4000, PAYLOAD, PAYLOAD, TCP_ACK, 6, false, false, 0 },   /* a later TSval */
	};

	(void)state;
	burst(s, 2);
	assert_int_equal(nout, 2);
}

static void test_psh_ends_segment(void **state)
{
	struct segspec s[3] = {
		{ 4000, 0, PAYLOAD, TCP_ACK, 0, false, false, 0 },
		{ 4000, PAYLOAD, PAYLOAD, TCP_ACK | TCP_PSH, 0, false, false, 0 },
		{ 4000, 2 * PAYLOAD, PAYLOAD, TCP_ACK, 0, false, false, 0 },
	};

	(void)state;
	burst(s, 3);
	assert_int_equal(nout, 2);
	assert_carries(&outs[0], 0, 2 * PAYLOAD);
	assert_int_equal(outs[0].flags, TCP_ACK | TCP_PSH);
	assert_carries(&outs[1], 2 * PAYLOAD, PAYLOAD);
}

static void test_max_segments(void **state)
{
	struct segspec s[ISOTCP_GRO_MAX_SEGS + 1];

	(void)state;
	for (unsigned i = 0; i <= ISOTCP_GRO_MAX_SEGS; i++)
		s[i] = (struct segspec){ 4000, i * 1000, 1000, TCP_ACK, 0, false, false, 0 };
	burst(s, ISOTCP_GRO_MAX_SEGS + 1);
	assert_int_equal(nout, 2);
	assert_carries(&outs[0], 0, ISOTCP_GRO_MAX_SEGS * 1000);
	assert_carries(&outs[1], ISOTCP_GRO_MAX_SEGS * 1000, 1000);
}

static void test_more_flows_than_table(void **state)
{
	struct segspec s[2 * (ISOTCP_GRO_FLOWS + 2)];
	unsigned n = 0, bytes = 0;

	(void)state;
	for (unsigned r = 0; r < 2; r++)
		for (unsigned f = 0; f < ISOTCP_GRO_FLOWS + 2; f++)
			s[n++] = (struct segspec){ (uint16_t)(4000 + f), r * PAYLOAD, PAYLOAD,
						   TCP_ACK, 0, false, false, 0 };
	burst(s, n);
	/* every byte delivered once, each flow's in order */
	for (unsigned k = 0; k < nout; k++) {
		bytes += outs[k].data_len;
		for (unsigned j = 0; j < k; j++)
			if (outs[j].sport == outs[k].sport)
				assert_true(outs[j].seq < outs[k].seq);
	}
	assert_int_equal(bytes, n * PAYLOAD);
	assert_true(isotcp_memp_in_use() == 0);
}

/* IPv6: the same merging, the payload length field grown instead. */
static void test_v6_one_flow_merges(void **state)
{
	struct segspec s[4];

	(void)state;
	for (int i = 0; i < 4; i++)
		s[i] = (struct segspec){ 4000, 1000 + i * PAYLOAD, PAYLOAD, TCP_ACK, 5, false, true, 0 };
	burst(s, 4);
	assert_int_equal(nout, 1);
	assert_true(outs[0].v6);
	assert_int_equal(outs[0].ip_len, IP6_HLEN + TCP_HLEN + 12 + 4 * PAYLOAD);
	assert_carries(&outs[0], 1000, 4 * PAYLOAD);
	assert_int_equal(gro.merged, 3);
	assert_int_equal(outs[0].chk_at_input & NETIF_CHECKSUM_CHECK_TCP, 0);
}

static void test_v6_bad_checksum_dropped(void **state)
{
	struct segspec s[3] = {
		{ 4000, 0, PAYLOAD, TCP_ACK, 0, false, true, 0 },
		{ 4000, PAYLOAD, PAYLOAD, TCP_ACK, 0, true, true, 0 },
		{ 4000, 2 * PAYLOAD, PAYLOAD, TCP_ACK, 0, false, true, 0 },
	};

	(void)state;
	burst(s, 3);
	assert_int_equal(gro.bad_cksum, 1);
	assert_int_equal(nout, 2);
	assert_carries(&outs[0], 0, PAYLOAD);
	assert_carries(&outs[1], 2 * PAYLOAD, PAYLOAD);
}

/* A different flow label is another flow to Linux's GRO: not merged. */
static void test_v6_flow_label_differs(void **state)
{
	struct segspec s[2] = {
		{ 4000, 0, PAYLOAD, TCP_ACK, 0, false, true, 7 },
		{ 4000, PAYLOAD, PAYLOAD, TCP_ACK, 0, false, true, 8 },
	};

	(void)state;
	burst(s, 2);
	assert_int_equal(nout, 2);
	assert_carries(&outs[0], 0, PAYLOAD);
	assert_carries(&outs[1], PAYLOAD, PAYLOAD);
}

/* Same ports and sequence numbers over IPv4 and IPv6, interleaved: two
 * flows, each merged on its own. */
static void test_v4_v6_apart(void **state)
{
	struct segspec s[6];

	(void)state;
	for (int i = 0; i < 6; i++)
		s[i] = (struct segspec){ 4000, (uint32_t)(500 + (i / 2) * PAYLOAD), PAYLOAD, TCP_ACK,
					 0, false, i % 2 == 1, 0 };
	burst(s, 6);
	assert_int_equal(nout, 2);
	assert_true(outs[0].v6 != outs[1].v6);
	for (unsigned k = 0; k < 2; k++)
		assert_carries(&outs[k], 500, 3 * PAYLOAD);
}

static int group_setup(void **state)
{
	(void)state;
	isotcp_owner_claim();
	lwip_init();
	memset(&nif, 0, sizeof(nif));
	nif.input = rec_input;
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_one_flow_merges, reset),
		cmocka_unit_test_setup(test_two_flows_interleaved, reset),
		cmocka_unit_test_setup(test_gap_keeps_order, reset),
		cmocka_unit_test_setup(test_fin_delivers_held_first, reset),
		cmocka_unit_test_setup(test_bad_checksum_dropped, reset),
		cmocka_unit_test_setup(test_options_differ, reset),
		cmocka_unit_test_setup(test_psh_ends_segment, reset),
		cmocka_unit_test_setup(test_max_segments, reset),
		cmocka_unit_test_setup(test_more_flows_than_table, reset),
		cmocka_unit_test_setup(test_v6_one_flow_merges, reset),
		cmocka_unit_test_setup(test_v6_bad_checksum_dropped, reset),
		cmocka_unit_test_setup(test_v6_flow_label_differs, reset),
		cmocka_unit_test_setup(test_v4_v6_apart, reset),
	};

	return cmocka_run_group_tests_name("gro", tests, group_setup, NULL);
}
