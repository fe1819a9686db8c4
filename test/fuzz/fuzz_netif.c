/*
 * Fuzz target: frames from the wire into lwIP through an Ethernet netif
 * (ethernet_input: ARP, IPv4 with reassembly, ICMP, UDP, TCP with options),
 * directly or through receive coalescing (tcpip/gro.c).
 *
 * The netif is 198.18.0.1/24 (MAC 02:00:00:00:00:01) with a TCP listener
 * on port 5001, a UDP echo on port 7, and, set up afresh for every input by
 * handshakes the harness plays itself, two established connections with
 * the peer 198.18.0.2: one accepted (peer port 40000 -> 5001) and one
 * opened by lwIP (port 40001 -> peer port 80).  What lwIP sends is parsed
 * only to learn its sequence numbers, then dropped.
 *
 * Input: records of [flags u8][length u16 LE][frame bytes], at most
 * MAX_FRAMES.  Flags help the fuzzer past what it cannot guess:
 *   F_CKSUM  fix the IPv4 header checksum and the TCP/UDP/ICMP checksum;
 *   F_REL    a TCP frame to one of the connections (F_CONN2 picks the
 *            active one): addresses and ports are set to that flow's, and
 *            seqno/ackno are offsets from what lwIP expects and has sent;
 *   F_GRO    through isotcp_gro_take (held frames flushed at the next
 *            frame without it, and at the end).
 * After the input everything is torn down (aborts, reassembly and ARP
 * timers), and lwIP's pools must be back where they were: a leak aborts.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lwip/def.h"
#include "lwip/etharp.h"
#include "lwip/inet_chksum.h"
#include "lwip/init.h"
#include "lwip/ip4_frag.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/tcp.h"
#include "lwip/timeouts.h"
#include "lwip/udp.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/prot/ethernet.h"
#include "lwip/prot/ip.h"
#include "lwip/prot/ip4.h"
#include "lwip/prot/tcp.h"
#include "lwip/prot/udp.h"
#include "netif/ethernet.h"

#include "gro.h"
#include "isotcp.h"

#define F_CKSUM     0x01
#define F_REL       0x02
#define F_CONN2     0x04
#define F_GRO       0x08
#define MAX_FRAMES  64
#define MAX_FRAME   2048
#define LISTEN_PORT 5001
#define PASSIVE_PEER_PORT 40000
#define ACTIVE_LOCAL_PORT 40001
#define ACTIVE_PEER_PORT  80

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static u32_t fake_now;

u32_t sys_now(void)
{
	return fake_now;
}

static struct netif nif;
static struct isotcp_gro gro;
static ip4_addr_t addr_self, addr_peer;
static struct tcp_pcb *listener;
static struct udp_pcb *echo;
static uint32_t pools_base;
static uint32_t last_seq[2], last_ack[2];   /* of lwIP's last segment per flow */
static const uint8_t mac_self[6] = { 2, 0, 0, 0, 0, 1 };
static const uint8_t mac_peer[6] = { 2, 0, 0, 0, 0, 2 };

/* What lwIP sends over IP: note the sequence numbers of our two flows. */
static err_t nif_output(struct netif *n, struct pbuf *p, const ip4_addr_t *dst)
{
	uint8_t b[IP_HLEN + TCP_HLEN];
	const struct ip_hdr *ip = (const void *)b;
	const struct tcp_hdr *tcp;

	(void)n;
	(void)dst;
	if (pbuf_copy_partial(p, b, sizeof(b), 0) != sizeof(b) || IPH_PROTO(ip) != IP_PROTO_TCP ||
	    IPH_HL_BYTES(ip) != IP_HLEN)
		return ERR_OK;
	tcp = (const void *)(b + IP_HLEN);
	for (int k = 0; k < 2; k++) {
		uint16_t lport = k == 0 ? LISTEN_PORT : ACTIVE_LOCAL_PORT;

		if (lwip_ntohs(tcp->src) == lport) {
			last_seq[k] = lwip_ntohl(tcp->seqno);
			last_ack[k] = lwip_ntohl(tcp->ackno);
		}
	}
	return ERR_OK;
}

static err_t nif_linkoutput(struct netif *n, struct pbuf *p)
{
	(void)n;
	(void)p;
	return ERR_OK;
}

static err_t nif_init(struct netif *n)
{
	n->name[0] = 'f';
	n->name[1] = 'z';
	n->output = nif_output;
	n->linkoutput = nif_linkoutput;
	n->mtu = 1500;
	n->hwaddr_len = 6;
	memcpy(n->hwaddr, mac_self, 6);
	n->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET |
		   NETIF_FLAG_LINK_UP;
	return ERR_OK;
}

static err_t srv_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
	(void)arg;
	(void)err;
	if (p == NULL) {
		tcp_recv(pcb, NULL);
		if (tcp_close(pcb) != ERR_OK) {
			tcp_abort(pcb);
			return ERR_ABRT;
		}
		return ERR_OK;
	}
	tcp_recved(pcb, p->tot_len);
	/* some data back: the send path under the fuzzer's ACKs */
	tcp_write(pcb, "0123456789abcdef", 16, TCP_WRITE_FLAG_COPY);
	pbuf_free(p);
	return ERR_OK;
}

static err_t srv_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
	(void)arg;
	if (err != ERR_OK || pcb == NULL)
		return ERR_VAL;
	tcp_recv(pcb, srv_recv);
	return ERR_OK;
}

static void echo_recv(void *arg, struct udp_pcb *pcb, struct pbuf *p,
		      const ip_addr_t *addr, u16_t port)
{
	(void)arg;
	udp_sendto(pcb, p, addr, port);
	pbuf_free(p);
}

/* ---- Frames ------------------------------------------------------------ */

static void fix_checksums(uint8_t *b, size_t len)
{
	struct ip_hdr *ip = (void *)(b + SIZEOF_ETH_HDR);
	size_t hl, tot;
	struct pbuf view;
	ip4_addr_t src, dst;

	if (len < SIZEOF_ETH_HDR + IP_HLEN ||
	    ((struct eth_hdr *)b)->type != PP_HTONS(ETHTYPE_IP))
		return;
	hl = IPH_HL_BYTES(ip);
	tot = lwip_ntohs(IPH_LEN(ip));
	if (hl < IP_HLEN || SIZEOF_ETH_HDR + hl > len)
		return;
	IPH_CHKSUM_SET(ip, 0);
	IPH_CHKSUM_SET(ip, inet_chksum(ip, (u16_t)hl));
	if (tot > len - SIZEOF_ETH_HDR)
		tot = len - SIZEOF_ETH_HDR;
	if (tot <= hl || (IPH_OFFSET(ip) & PP_HTONS(IP_OFFMASK | IP_MF)) != 0)
		return;
	memset(&view, 0, sizeof(view));
	view.payload = (uint8_t *)ip + hl;
	view.len = view.tot_len = (u16_t)(tot - hl);
	ip4_addr_copy(src, ip->src);
	ip4_addr_copy(dst, ip->dest);
	switch (IPH_PROTO(ip)) {
	case IP_PROTO_TCP:
		if (view.len >= TCP_HLEN) {
			struct tcp_hdr *t = view.payload;

			t->chksum = 0;
			t->chksum = inet_chksum_pseudo(&view, IP_PROTO_TCP, view.len, &src, &dst);
		}
		break;
	case IP_PROTO_UDP:
		if (view.len >= UDP_HLEN) {
			struct udp_hdr *u = view.payload;

			u->chksum = 0;
			u->chksum = inet_chksum_pseudo(&view, IP_PROTO_UDP, view.len, &src, &dst);
		}
		break;
	case IP_PROTO_ICMP:
		if (view.len >= 4) {
			uint8_t *c = view.payload;

			c[2] = c[3] = 0;
			u16_t s = inet_chksum(c, view.len);
			memcpy(c + 2, &s, 2);
		}
		break;
	}
}

/* F_REL: the frame becomes a segment of flow k, numbers as offsets. */
static void make_relative(uint8_t *b, size_t len, int k)
{
	struct eth_hdr *eth = (void *)b;
	struct ip_hdr *ip = (void *)(b + SIZEOF_ETH_HDR);
	struct tcp_hdr *t;
	size_t hl;

	if (len < SIZEOF_ETH_HDR + IP_HLEN)
		return;
	hl = IPH_HL_BYTES(ip);
	if (hl < IP_HLEN || SIZEOF_ETH_HDR + hl + TCP_HLEN > len)
		return;
	memcpy(&eth->dest, mac_self, 6);
	memcpy(&eth->src, mac_peer, 6);
	eth->type = PP_HTONS(ETHTYPE_IP);
	IPH_VHL_SET(ip, 4, hl / 4);
	IPH_PROTO_SET(ip, IP_PROTO_TCP);
	ip4_addr_copy(ip->src, addr_peer);
	ip4_addr_copy(ip->dest, addr_self);
	t = (void *)((uint8_t *)ip + hl);
	t->src = lwip_htons(k == 0 ? PASSIVE_PEER_PORT : ACTIVE_PEER_PORT);
	t->dest = lwip_htons(k == 0 ? LISTEN_PORT : ACTIVE_LOCAL_PORT);
	t->seqno = lwip_htonl(last_ack[k] + lwip_ntohl(t->seqno));
	t->ackno = lwip_htonl(last_seq[k] + lwip_ntohl(t->ackno));
}

static struct pbuf *frame(const uint8_t *b, size_t len)
{
	struct pbuf *p = pbuf_alloc(PBUF_RAW, (u16_t)len, PBUF_RAM);

	if (p != NULL)
		memcpy(p->payload, b, len);
	return p;
}

/* A TCP segment from the peer, checksums right. */
static void inject_tcp(uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
		       uint8_t flags)
{
	uint8_t b[SIZEOF_ETH_HDR + IP_HLEN + TCP_HLEN] = { 0 };
	struct ip_hdr *ip = (void *)(b + SIZEOF_ETH_HDR);
	struct tcp_hdr *t = (void *)(b + SIZEOF_ETH_HDR + IP_HLEN);
	struct pbuf *p;

	memcpy(b, mac_self, 6);
	memcpy(b + 6, mac_peer, 6);
	((struct eth_hdr *)b)->type = PP_HTONS(ETHTYPE_IP);
	IPH_VHL_SET(ip, 4, IP_HLEN / 4);
	IPH_LEN_SET(ip, PP_HTONS(IP_HLEN + TCP_HLEN));
	IPH_TTL_SET(ip, 64);
	IPH_PROTO_SET(ip, IP_PROTO_TCP);
	ip4_addr_copy(ip->src, addr_peer);
	ip4_addr_copy(ip->dest, addr_self);
	t->src = lwip_htons(sport);
	t->dest = lwip_htons(dport);
	t->seqno = lwip_htonl(seq);
	t->ackno = lwip_htonl(ack);
	TCPH_HDRLEN_FLAGS_SET(t, TCP_HLEN / 4, flags);
	t->wnd = PP_HTONS(65535);
	fix_checksums(b, sizeof(b));
	p = frame(b, sizeof(b));
	if (p != NULL && nif.input(p, &nif) != ERR_OK)
		pbuf_free(p);
}

static bool established(uint16_t local_port)
{
	for (struct tcp_pcb *p = tcp_active_pcbs; p != NULL; p = p->next)
		if (p->local_port == local_port && p->state == ESTABLISHED)
			return true;
	return false;
}

/* The two connections, by handshakes with lwIP's real numbers. */
static void connections_up(void)
{
	struct tcp_pcb *c;
	ip_addr_t peer;

	inject_tcp(PASSIVE_PEER_PORT, LISTEN_PORT, 1000, 0, TCP_SYN);
	inject_tcp(PASSIVE_PEER_PORT, LISTEN_PORT, 1001, last_seq[0] + 1, TCP_ACK);
	last_ack[0] = 1001;
	last_seq[0]++;

	c = tcp_new();
	if (c == NULL)
		abort();
	ip_addr_copy_from_ip4(peer, addr_peer);
	if (tcp_bind(c, IP4_ADDR_ANY, ACTIVE_LOCAL_PORT) != ERR_OK ||
	    tcp_connect(c, &peer, ACTIVE_PEER_PORT, NULL) != ERR_OK)
		abort();
	tcp_recv(c, srv_recv);
	inject_tcp(ACTIVE_PEER_PORT, ACTIVE_LOCAL_PORT, 5000, last_seq[1] + 1, TCP_SYN | TCP_ACK);
	last_ack[1] = 5001;
	last_seq[1]++;
	if (!established(LISTEN_PORT) || !established(ACTIVE_LOCAL_PORT)) {
		fprintf(stderr, "fuzz_netif: the harness's handshakes failed\n");
		abort();
	}
}

/* Every connection gone, reassembly and ARP emptied: pools as before. */
static void teardown(void)
{
	while (tcp_active_pcbs != NULL)
		tcp_abort(tcp_active_pcbs);
	while (tcp_tw_pcbs != NULL)
		tcp_abort(tcp_tw_pcbs);
	for (int i = 0; i <= IP_REASS_MAXAGE; i++)
		ip_reass_tmr();
	etharp_cleanup_netif(&nif);
	/* the TCP timer's next run sees no pcb and unregisters itself */
	fake_now += 1000;
	sys_check_timeouts();
	while (isotcp_timers_continue())
		;
	if (isotcp_memp_in_use() != pools_base) {
		fprintf(stderr, "fuzz_netif: lwIP pools hold %u entries after teardown, %u before\n",
			isotcp_memp_in_use(), pools_base);
		abort();
	}
}

static void setup_once(void)
{
	ip4_addr_t mask;

	isotcp_owner_claim();
	lwip_init();
	IP4_ADDR(&addr_self, 198, 18, 0, 1);
	IP4_ADDR(&addr_peer, 198, 18, 0, 2);
	IP4_ADDR(&mask, 255, 255, 255, 0);
	netif_add(&nif, &addr_self, &mask, IP4_ADDR_ANY4, NULL, nif_init, ethernet_input);
	netif_set_default(&nif);
	netif_set_up(&nif);
	NETIF_SET_CHECKSUM_CTRL(&nif, NETIF_CHECKSUM_ENABLE_ALL);
	listener = tcp_new();
	if (listener == NULL || tcp_bind(listener, IP4_ADDR_ANY, LISTEN_PORT) != ERR_OK)
		abort();
	listener = tcp_listen(listener);
	tcp_accept(listener, srv_accept);
	echo = udp_new();
	if (echo == NULL || udp_bind(echo, IP4_ADDR_ANY, 7) != ERR_OK)
		abort();
	udp_recv(echo, echo_recv, NULL);
	pools_base = isotcp_memp_in_use();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	uint8_t b[MAX_FRAME];
	unsigned frames = 0;

	if (!ready) {
		setup_once();
		ready = 1;
	}
	memset(&gro, 0, sizeof(gro));
	connections_up();
	while (size >= 3 && frames++ < MAX_FRAMES) {
		uint8_t flags = data[0];
		size_t len = (size_t)data[1] | (size_t)data[2] << 8;
		struct pbuf *p;

		data += 3;
		size -= 3;
		if (len > size)
			len = size;
		if (len > MAX_FRAME)
			len = MAX_FRAME;
		memcpy(b, data, len);
		data += len;
		size -= len;
		if (flags & F_REL)
			make_relative(b, len, (flags & F_CONN2) ? 1 : 0);
		if (flags & F_CKSUM)
			fix_checksums(b, len);
		if (!(flags & F_GRO))
			isotcp_gro_flush(&gro, &nif);
		p = frame(b, len);
		if (p == NULL)
			continue;
		if ((flags & F_GRO) && isotcp_gro_take(&gro, &nif, p, false))
			continue;
		if (nif.input(p, &nif) != ERR_OK)
			pbuf_free(p);
		fake_now += 7;
		sys_check_timeouts();
		isotcp_timers_continue();
	}
	isotcp_gro_flush(&gro, &nif);
	teardown();
	return 0;
}
