/*
 * The lwIP netif over a DPDK ethdev port (see netif_dpdk.h for the flow).
 *
 * RX is zero-copy: each received mbuf carries, in its private area (the
 * mempool's priv_size), a struct rx_pbuf whose pbuf_custom describes the
 * frame in place. lwIP may keep that pbuf for as long as it likes (TCP's
 * out-of-order queue, an application's receive queue); the custom free
 * function returns the mbuf to the pool. Because held pbufs pin mbufs, a
 * port that has most of its pool held by lwIP copies new frames into lwIP's
 * heap instead and frees the mbuf at once, so the pool never runs dry and
 * ACKs keep arriving (the alternative is a deadlock: no RX mbuf for the ACK
 * that would let the stack release the held ones).
 *
 * Checksums: when the port checks IPv4/TCP/UDP checksums, the netif's
 * per-netif checksum flags are set per frame from the mbuf's ol_flags before
 * the frame enters lwIP (lwIP handles one frame at a time on this thread, so
 * the flags describe exactly the frame being processed). When the port fills
 * IPv4/TCP checksums on TX, lwIP skips them and linkoutput marks the mbuf.
 * UDP and ICMP checksums stay in software: lwIP fragments large UDP
 * datagrams, and a NIC cannot checksum a datagram it sees only in pieces.
 *
 * TSO: on a port whose device segments TCP (and fills checksums), lwIP
 * merges the segments one tcp_output() call sends back to back into one of
 * up to ISOTCP_DPDK_TSO_PAYLOAD bytes (our lwIP patch 0002, enabled per
 * netif through isotcp_tso_set()). linkoutput copies such a frame into one
 * large mbuf of the port's TSO pool (or the zero-copy hook chains it) and
 * marks it RTE_MBUF_F_TX_TCP_SEG with tso_segsz = the payload lwIP itself
 * would put in one segment (the MSS less this frame's TCP options), so the
 * wire carries the same MSS-sized segments as without TSO.
 */
#include "netif_dpdk.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_byteorder.h>
#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_epoll.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_interrupts.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "lwip/etharp.h"
#include "lwip/ip4.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/prot/ip.h"
#include "lwip/prot/ip4.h"
#include "lwip/prot/tcp.h"
#include "netif/ethernet.h"
#include "netif_ip6.h"

#define NB_DESC_DEFAULT         4096

/* Lives in the private area of every mbuf of our pools. */
struct rx_pbuf {
	struct pbuf_custom pc;     /* first: lwIP's pbuf points here */
	struct rte_mbuf *m;
	struct isotcp_dpdk_port *port;
	struct pbuf *lo_next;      /* loopback queue: the next packet's head */
};

/* RX mbufs currently held by lwIP, per port; the pressure test reads it. */
static uint32_t rx_held[RTE_MAX_ETHPORTS];

static void rx_pbuf_free(struct pbuf *p)
{
	struct rx_pbuf *rp = (struct rx_pbuf *)(void *)p;

	rx_held[rp->port->port_id]--;
	rte_pktmbuf_free(rp->m);
}

/* The first len bytes of m as a pbuf that gives m back when freed; held
 * (rx_held) until then.  Received frames and looped copies alike. */
static struct pbuf *mbuf_pbuf(struct isotcp_dpdk_port *port, struct rte_mbuf *m, u16_t len)
{
	struct rx_pbuf *rp = rte_mbuf_to_priv(m);

	rp->pc.custom_free_function = rx_pbuf_free;
	rp->m = m;
	rp->port = port;
	rp->lo_next = NULL;
	rx_held[port->port_id]++;
	return pbuf_alloced_custom(PBUF_RAW, len, PBUF_REF, &rp->pc,
				   rte_pktmbuf_mtod(m, void *), len);
}

/*
 * Per-frame checksum flags from the NIC's verdict. Returns false when the
 * NIC found a bad checksum (the frame is dropped and counted).
 */
static bool rx_cksum_flags(struct isotcp_dpdk_port *port, const struct rte_mbuf *m)
{
	uint64_t ip = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
	uint64_t l4 = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
	u16_t flags = port->netif.chksum_flags & 0x00ff;  /* keep the GEN_ bits */

	if (ip == RTE_MBUF_F_RX_IP_CKSUM_BAD || l4 == RTE_MBUF_F_RX_L4_CKSUM_BAD)
		return false;
	flags |= NETIF_CHECKSUM_CHECK_ICMP;
	if (ip != RTE_MBUF_F_RX_IP_CKSUM_GOOD && ip != RTE_MBUF_F_RX_IP_CKSUM_NONE)
		flags |= NETIF_CHECKSUM_CHECK_IP;
	if (l4 != RTE_MBUF_F_RX_L4_CKSUM_GOOD && l4 != RTE_MBUF_F_RX_L4_CKSUM_NONE)
		flags |= NETIF_CHECKSUM_CHECK_TCP | NETIF_CHECKSUM_CHECK_UDP;
	NETIF_SET_CHECKSUM_CTRL(&port->netif, flags);
	return true;
}

/* The device checked both checksums of m and found them good. */
static bool rx_cksum_good(const struct isotcp_dpdk_port *port, const struct rte_mbuf *m)
{
	return port->caps.rx_cksum &&
	       (m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) == RTE_MBUF_F_RX_IP_CKSUM_GOOD &&
	       (m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_GOOD;
}

static void rx_one(struct isotcp_dpdk_port *port, struct rte_mbuf *m, bool pressure)
{
	struct pbuf *p;
	uint32_t len = rte_pktmbuf_pkt_len(m);

	port->stats.rx_pkts++;
	port->stats.rx_bytes += len;
	if (m->nb_segs != 1 || len > 0xffff) {
		port->stats.rx_drop_bad++;
		rte_pktmbuf_free(m);
		return;
	}
	if (port->caps.rx_cksum && !rx_cksum_flags(port, m)) {
		port->stats.rx_drop_cksum++;
		rte_pktmbuf_free(m);
		return;
	}
	if (pressure) {
		p = pbuf_alloc(PBUF_RAW, (u16_t)len, PBUF_RAM);
		if (p != NULL)
			pbuf_take(p, rte_pktmbuf_mtod(m, void *), (u16_t)len);
		rte_pktmbuf_free(m);
		if (p == NULL) {
			port->stats.rx_drop_nomem++;
			return;
		}
		port->stats.rx_copied++;
	} else {
		p = mbuf_pbuf(port, m, (u16_t)len);
		if (port->gro_on && isotcp_gro_take(&port->gro, &port->netif, p, rx_cksum_good(port, m)))
			return;     /* held, merged or dropped (bad checksum) */
	}
	/* On error the input function leaves the pbuf to us. */
	if (port->netif.input(p, &port->netif) != ERR_OK)
		pbuf_free(p);
}

/* Iso-Lock (arch/isolock.h): the device handlers' locks. */
static struct isotcp_lock dev_rx_lock, dev_tx_lock;

unsigned isotcp_dpdk_poll(struct isotcp_dpdk_port *port, unsigned budget)
{
	struct rte_mbuf *pkts[ISOTCP_DPDK_BURST];
	unsigned total = 0;

	while (total < budget) {
		uint64_t t0;
		uint16_t n;
		bool pressure;

		if (__builtin_expect(isotcp_lock_variant, 0))
			isotcp_lock_take(&dev_rx_lock);     /* Iso-Lock: the RX handler's lock */
		t0 = rte_get_tsc_cycles();
		n = rte_eth_rx_burst(port->port_id, port->queue, pkts, ISOTCP_DPDK_BURST);
		port->stats.dev_tsc += rte_get_tsc_cycles() - t0;
		if (__builtin_expect(isotcp_lock_variant, 0))
			isotcp_lock_drop(&dev_rx_lock);
		pressure = rx_held[port->port_id] >= port->pressure_held;

		for (uint16_t i = 0; i < n; i++) {
			if (i + 1 < n)
				rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void *));
			rx_one(port, pkts[i], pressure);
		}
		if (port->gro.nflows > 0)
			isotcp_gro_flush(&port->gro, &port->netif);
		total += n;
		if (n < ISOTCP_DPDK_BURST)
			break;
	}
	return total;
}

/*
 * Loopback (see isotcp_dpdk_loop_poll in netif_dpdk.h). The netif's IP
 * output sends a packet for its own address (an application on isostack
 * connecting to another through the daemon's address) to a queue instead
 * of ARP and the device: copied, so a zero-copy TX pbuf pointing into an
 * application's ring is not referenced past the call. ip4_output has no
 * fragment for it: a TCP segment to ourselves is merged up to 64 KB and
 * not cut (LWIP_HOOK_IP4_TSO, tcpip/port.c).
 * The copy goes into mbufs of the port's own pool, wrapped as the RX path
 * wraps a received frame (a chain of one custom pbuf per mbuf), never into
 * lwIP's heap: the receiving sockets hold those copies until their
 * applications read, and with many connections the heap's first-fit walk
 * over the held blocks took 96% of the stack core (2,200 looped packets/s
 * at 128 connections). Held copies count as held RX mbufs, so RX pressure
 * sees them.
 * The copies were made in memory: their checksums are neither checked (as
 * Linux's loopback) nor, with TX offload, ever filled in; the netif's
 * checking flags, which rx_cksum_flags sets per wire frame, are switched
 * off for them and put back after. No bound on the queue: every
 * connection's window bounds what it has in flight.
 */
static struct pbuf *loop_copy(struct isotcp_dpdk_port *port, struct pbuf *p)
{
	struct pbuf *head = NULL, *tail = NULL;
	u16_t off = 0;

	while (off < p->tot_len) {
		struct rte_mbuf *m = rte_pktmbuf_alloc(port->pool);
		struct pbuf *q;
		u16_t n;

		if (m == NULL) {
			if (head != NULL)
				pbuf_free(head);
			return NULL;
		}
		n = (u16_t)RTE_MIN((uint32_t)(p->tot_len - off), (uint32_t)rte_pktmbuf_tailroom(m));
		pbuf_copy_partial(p, rte_pktmbuf_mtod(m, void *), n, off);
		q = mbuf_pbuf(port, m, n);
		/* Linked by hand, not pbuf_cat (a walk from the head each
		 * time): each piece's tot_len is what is left from it on. */
		q->tot_len = (u16_t)(p->tot_len - off);
		if (head == NULL)
			head = q;
		else
			tail->next = q;
		tail = q;
		off = (u16_t)(off + n);
	}
	return head;
}

static err_t loop_output(struct isotcp_dpdk_port *port, struct pbuf *p)
{
	struct pbuf *r = loop_copy(port, p);

	if (r == NULL) {
		port->stats.lo_drop_nomem++;
		return ERR_MEM;
	}
	/* Packets are chains: the queue links heads through their mbufs. */
	if (port->lo_last != NULL)
		((struct rx_pbuf *)(void *)port->lo_last)->lo_next = r;
	else
		port->lo_first = r;
	port->lo_last = r;
	return ERR_OK;
}

static err_t dpdk_output(struct netif *netif, struct pbuf *p, const ip4_addr_t *dst)
{
	if (ip4_addr_cmp(dst, netif_ip4_addr(netif)))
		return loop_output(netif->state, p);
	return etharp_output(netif, p, dst);
}

err_t isotcp_netif_loop_output(struct netif *netif, struct pbuf *p)
{
	return loop_output(netif->state, p);
}

static unsigned loop_drain(struct isotcp_dpdk_port *port)
{
	struct netif *netif = &port->netif;
	struct pbuf *p = port->lo_first, *next;
	u16_t chk = netif->chksum_flags;
	unsigned n = 0;

	if (p == NULL)
		return 0;
	port->lo_first = port->lo_last = NULL;
	NETIF_SET_CHECKSUM_CTRL(netif, chk & (u16_t)~(NETIF_CHECKSUM_CHECK_IP |
		NETIF_CHECKSUM_CHECK_TCP | NETIF_CHECKSUM_CHECK_UDP |
		NETIF_CHECKSUM_CHECK_ICMP));
	for (; p != NULL; p = next) {
		next = ((struct rx_pbuf *)(void *)p)->lo_next;
		p->if_idx = netif_get_index(netif);
		port->stats.lo_pkts++;
		port->stats.lo_bytes += p->tot_len;
		if (isotcp_netif_ip_input(p, netif) != ERR_OK)
			pbuf_free(p);
		n++;
	}
	NETIF_SET_CHECKSUM_CTRL(netif, chk);
	return n;
}

unsigned isotcp_dpdk_loop_poll(struct isotcp_dpdk_port *ports, unsigned nports)
{
	unsigned n = 0;

	for (unsigned i = 0; i < nports; i++)
		n += loop_drain(&ports[i]);
	return n;
}

bool isotcp_dpdk_loop_pending(const struct isotcp_dpdk_port *ports, unsigned nports)
{
	for (unsigned i = 0; i < nports; i++)
		if (ports[i].lo_first != NULL)
			return true;
	return false;
}

/*
 * Mark an IPv4 frame for checksum offload: the NIC fills the IPv4 header
 * checksum and, for an unfragmented TCP segment, the TCP checksum, which
 * must hold the pseudo-header sum on entry (the usual ethdev contract).
 * The headers are lwIP's own output, so they are well formed; DPDK's
 * rte_ip.h is not used because it drags in <netinet/ip.h>, whose macros
 * clash with lwIP's.
 */
/*
 * The IPv6 form: no header checksum; a TCP segment's checksum starts as
 * the pseudo-header sum (addresses, upper-layer length, next header).
 * lwIP's IPv6 segments are never merged for TSO (isotcp_tso_max) and
 * carry no extension header, so the TCP header follows at 40 bytes.
 */
#define V6_HLEN      40     /* lwIP's prot/ip6.h clashes with <netinet/ip6.h> */
#define V6_NEXTH_TCP 6

static void tx_cksum_offload6(struct rte_mbuf *m)
{
	uint8_t *ip = rte_pktmbuf_mtod(m, uint8_t *) + RTE_ETHER_HDR_LEN;
	uint32_t plen, sum = 0;

	if (m->data_len < RTE_ETHER_HDR_LEN + V6_HLEN + TCP_HLEN || ip[6] != V6_NEXTH_TCP)
		return;
	plen = (uint32_t)(ip[4] << 8 | ip[5]);
	m->l2_len = RTE_ETHER_HDR_LEN;
	m->l3_len = V6_HLEN;
	m->l4_len = (uint32_t)(ip[V6_HLEN + 12] >> 4) * 4;
	m->ol_flags |= RTE_MBUF_F_TX_IPV6 | RTE_MBUF_F_TX_TCP_CKSUM;
	for (int i = 8; i < V6_HLEN; i += 2)
		sum += (uint32_t)(ip[i] << 8 | ip[i + 1]);
	sum += V6_NEXTH_TCP + plen;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	ip[V6_HLEN + 16] = (uint8_t)(sum >> 8);
	ip[V6_HLEN + 17] = (uint8_t)sum;
}

static void tx_cksum_offload(struct isotcp_dpdk_port *port, struct rte_mbuf *m)
{
	uint8_t *f = rte_pktmbuf_mtod(m, uint8_t *);
	uint8_t *ip = f + RTE_ETHER_HDR_LEN;
	uint32_t l3_len, l4_len, sum, payload, segsz;
	uint16_t frag;
	bool tso;

	if (m->data_len >= RTE_ETHER_HDR_LEN && f[12] == 0x86 && f[13] == 0xdd) {
		tx_cksum_offload6(m);
		return;
	}
	if (m->data_len < RTE_ETHER_HDR_LEN + IP_HLEN ||
	    f[12] != 0x08 || f[13] != 0x00)            /* not IPv4 */
		return;
	l3_len = (uint32_t)(ip[0] & 0x0f) * 4;
	m->l2_len = RTE_ETHER_HDR_LEN;
	m->l3_len = l3_len;
	m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
	ip[10] = ip[11] = 0;
	frag = (uint16_t)(ip[6] << 8 | ip[7]);
	if (ip[9] != IP_PROTO_TCP || (frag & (IP_MF | IP_OFFMASK)) != 0 ||
	    m->data_len < RTE_ETHER_HDR_LEN + l3_len + TCP_HLEN)
		return;
	m->l4_len = (uint32_t)(ip[l3_len + 12] >> 4) * 4;
	/* TSO when the payload exceeds what lwIP puts in one segment: the
	 * MSS for this netif's MTU, less this frame's TCP options. */
	payload = (uint32_t)(ip[2] << 8 | ip[3]) - l3_len - m->l4_len;
	segsz = RTE_MIN((uint32_t)TCP_MSS, (uint32_t)port->netif.mtu - IP_HLEN - TCP_HLEN) +
		TCP_HLEN - m->l4_len;
	if (port->caps.tso_l2_in_mtu)
		segsz = RTE_MIN(segsz, (uint32_t)port->netif.mtu - m->l2_len - l3_len - m->l4_len);
	tso = port->tso_on && payload > segsz;
	/* Pseudo-header: addresses, protocol, TCP length (not with TSO: the
	 * device adds each segment's); folded, not complemented. */
	l4_len = (uint32_t)(ip[2] << 8 | ip[3]) - l3_len;
	sum = 0;
	for (int i = 12; i < 20; i += 2)
		sum += (uint32_t)(ip[i] << 8 | ip[i + 1]);
	sum += IP_PROTO_TCP + (tso ? 0 : l4_len);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	ip[l3_len + 16] = (uint8_t)(sum >> 8);
	ip[l3_len + 17] = (uint8_t)sum;
	if (tso) {
		m->ol_flags |= RTE_MBUF_F_TX_TCP_SEG;
		m->tso_segsz = (uint16_t)segsz;
		port->stats.tx_tso_frames++;
		port->stats.tx_tso_bytes += payload;
	} else {
		m->ol_flags |= RTE_MBUF_F_TX_TCP_CKSUM;
	}
}

static err_t dpdk_linkoutput_one(struct netif *netif, struct pbuf *p);

/* lwIP's transmit handler: one frame. */
static err_t dpdk_linkoutput(struct netif *netif, struct pbuf *p)
{
	err_t e;

	if (__builtin_expect(!isotcp_lock_variant, 1))
		return dpdk_linkoutput_one(netif, p);
	isotcp_lock_take(&dev_tx_lock);         /* Iso-Lock: the TX handler's lock */
	e = dpdk_linkoutput_one(netif, p);
	isotcp_lock_drop(&dev_tx_lock);
	return e;
}

static err_t dpdk_linkoutput_one(struct netif *netif, struct pbuf *p)
{
	struct isotcp_dpdk_port *port = netif->state;
	struct rte_mbuf *m = NULL;
	uint16_t slot;

	if (port->txq_len == ISOTCP_DPDK_TXQ_MAX) {
		isotcp_dpdk_flush(port);
		if (port->txq_len == ISOTCP_DPDK_TXQ_MAX) {
			port->stats.tx_drop_nomem++;
			return ERR_MEM;
		}
	}
	/* Zero-copy hook: the shm transport attaches application TX-ring
	 * memory here; anything it declines is copied below. */
	if (port->txattach != NULL &&
	    port->txattach(port->txattach_arg, port, p, &m) == 0) {
		port->stats.tx_zc_frames++;
	} else {
		/* A frame merged for TSO takes one large mbuf. */
		bool big = port->tso_pool != NULL &&
			   p->tot_len > rte_pktmbuf_data_room_size(port->pool) -
					RTE_PKTMBUF_HEADROOM;

		m = rte_pktmbuf_alloc(big ? port->tso_pool : port->pool);
		if (m == NULL) {
			port->stats.tx_drop_nomem++;
			return ERR_MEM;
		}
		if (p->tot_len > rte_pktmbuf_tailroom(m)) {
			rte_pktmbuf_free(m);
			port->stats.tx_drop_toolong++;
			return ERR_BUF;
		}
		pbuf_copy_partial(p, rte_pktmbuf_append(m, p->tot_len), p->tot_len, 0);
		port->stats.tx_copied_frames++;
	}
	if (port->caps.tx_cksum)
		tx_cksum_offload(port, m);
	/* Only a TSO frame may exceed the MTU (lwIP fragments the rest). */
	if (rte_pktmbuf_pkt_len(m) > (uint32_t)netif->mtu + RTE_ETHER_HDR_LEN &&
	    (m->ol_flags & RTE_MBUF_F_TX_TCP_SEG) == 0) {
		rte_pktmbuf_free(m);
		port->stats.tx_drop_toolong++;
		return ERR_BUF;
	}
	slot = (uint16_t)((port->txq_head + port->txq_len) % ISOTCP_DPDK_TXQ_MAX);
	port->txq[slot] = m;
	port->txq_len++;
	return ERR_OK;
}

/*
 * The device took nothing: normal for a moment (its ring is full), fatal if
 * it refuses the head frame for ever (net_tap does with a TSO frame it
 * cannot cut): everything behind it would wait too. After a second without
 * progress the head frame is dropped and counted; TCP retransmits it.
 * Cold path: only reached when a flush sent nothing.
 */
static void tx_stall_check(struct isotcp_dpdk_port *port)
{
	uint64_t now = rte_get_tsc_cycles();

	if (port->tx_stall_since == 0) {
		port->tx_stall_since = now;
		return;
	}
	if (now - port->tx_stall_since < rte_get_tsc_hz())
		return;
	if (port->stats.tx_drop_stuck++ == 0)
		fprintf(stderr, "isostackd: port %s: the device has refused the same "
			"frame for 1 s; dropping it (counted as tx_drop_stuck)\n", port->name);
	rte_pktmbuf_free(port->txq[port->txq_head]);
	port->txq_head = (uint16_t)((port->txq_head + 1) % ISOTCP_DPDK_TXQ_MAX);
	port->txq_len--;
	port->tx_stall_since = now;
}

unsigned isotcp_dpdk_flush(struct isotcp_dpdk_port *port)
{
	unsigned sent = 0;

	while (port->txq_len > 0) {
		uint16_t chunk = RTE_MIN(port->txq_len,
					 (uint16_t)(ISOTCP_DPDK_TXQ_MAX - port->txq_head));
		struct rte_mbuf **pkts = &port->txq[port->txq_head];
		uint64_t bytes = 0, t0;
		uint16_t n;

		for (uint16_t i = 0; i < chunk; i++)
			bytes += rte_pktmbuf_pkt_len(pkts[i]);
		t0 = rte_get_tsc_cycles();
		n = rte_eth_tx_burst(port->port_id, port->queue, pkts, chunk);
		t0 = rte_get_tsc_cycles() - t0;
		port->stats.dev_tsc += t0;
		port->stats.dev_tx_tsc += t0;
		/* The first n now belong to the driver; the rest are still ours
		 * and stay at the head of the queue, in order. */
		for (uint16_t i = n; i < chunk; i++)
			bytes -= rte_pktmbuf_pkt_len(pkts[i]);
		port->stats.tx_pkts += n;
		port->stats.tx_bytes += bytes;
		port->txq_head = (uint16_t)((port->txq_head + n) % ISOTCP_DPDK_TXQ_MAX);
		port->txq_len = (uint16_t)(port->txq_len - n);
		sent += n;
		if (n < chunk) {
			port->stats.tx_partial++;
			break;
		}
	}
	if (sent > 0 || port->txq_len == 0)
		port->tx_stall_since = 0;
	else
		tx_stall_check(port);
	return sent;
}

static err_t dpdk_netif_init(struct netif *netif)
{
	struct isotcp_dpdk_port *port = netif->state;
	struct rte_ether_addr mac;
	uint16_t mtu = RTE_ETHER_MTU;
	u16_t chk = NETIF_CHECKSUM_ENABLE_ALL;

	if (rte_eth_macaddr_get(port->port_id, &mac) != 0)
		return ERR_IF;
	rte_eth_dev_get_mtu(port->port_id, &mtu);
	if (port->mtu != 0)
		mtu = port->mtu;
	netif->name[0] = 'd';
	netif->name[1] = 'p';
	netif->hwaddr_len = ETH_HWADDR_LEN;
	memcpy(netif->hwaddr, mac.addr_bytes, ETH_HWADDR_LEN);
	netif->mtu = mtu;
	netif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET;
	netif->output = dpdk_output;
	netif->output_ip6 = isotcp_netif_output6;
	netif->linkoutput = dpdk_linkoutput;
	if (port->caps.rx_cksum)
		chk &= (u16_t)~(NETIF_CHECKSUM_CHECK_IP | NETIF_CHECKSUM_CHECK_TCP |
				NETIF_CHECKSUM_CHECK_UDP);
	if (port->caps.tx_cksum)
		chk &= (u16_t)~(NETIF_CHECKSUM_GEN_IP | NETIF_CHECKSUM_GEN_TCP);
	NETIF_SET_CHECKSUM_CTRL(netif, chk);
	return ERR_OK;
}

/*
 * Largest payload lwIP merges for TSO on this netif: at most 44 full
 * segments (a device that segments in software, like net_tap through
 * DPDK's GSO library, takes 64 at most), within ISOTCP_DPDK_TSO_PAYLOAD.
 */
static uint32_t tso_payload(const struct netif *netif)
{
	uint32_t mss = RTE_MIN((uint32_t)TCP_MSS, (uint32_t)netif->mtu - IP_HLEN - TCP_HLEN);

	return RTE_MIN((uint32_t)ISOTCP_DPDK_TSO_PAYLOAD, 44 * mss);
}

/*
 * The netif's IPv6 addresses: link-local from the MAC (EUI-64), and the
 * configured one unless it is unspecified. Both usable at once (no DAD:
 * lwipopts.h). lwIP takes a static address as a /64 on link.
 */
static int add_ip6(struct netif *netif, const ip6_addr_t *ip6)
{
	s8_t idx;

	netif_create_ip6_linklocal_address(netif, 1);
	netif_ip6_addr_set_state(netif, 0, IP6_ADDR_PREFERRED);
	if (ip6_addr_isany(ip6))
		return 0;
	if (netif_add_ip6_address(netif, ip6, &idx) != ERR_OK)
		return -ENOSPC;
	netif_ip6_addr_set_state(netif, idx, IP6_ADDR_PREFERRED);
	return 0;
}

#define RX_CKSUM_OFFLOADS (RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | \
			   RTE_ETH_RX_OFFLOAD_TCP_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM)
#define TX_CKSUM_OFFLOADS (RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM)

/*
 * MTU: one frame per mbuf, always (rx_one drops chains), so a jumbo MTU
 * takes mbufs that hold a whole frame rather than RX scatter; 16383 of
 * them for 9000 bytes are ~150 MB of the daemon's memory.
 */
static uint16_t rx_buf_size(uint16_t mtu)
{
	uint32_t frame = (uint32_t)mtu + RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN + 8;

	if (mtu == 0 || frame <= RTE_MBUF_DEFAULT_DATAROOM)
		return RTE_MBUF_DEFAULT_BUF_SIZE;
	return (uint16_t)(RTE_PKTMBUF_HEADROOM + RTE_ALIGN_CEIL(frame, 1024));
}

static int port_configure(struct isotcp_dpdk_port *port, bool rx_intr)
{
	struct rte_eth_conf ec;

	memset(&ec, 0, sizeof(ec));
	if (port->caps.rx_cksum)
		ec.rxmode.offloads |= RX_CKSUM_OFFLOADS;
	if (port->caps.tx_cksum)
		ec.txmode.offloads |= TX_CKSUM_OFFLOADS;
	/* Chains: zero-copy TX attaches payload as extra segments. */
	if (port->caps.tx_multiseg)
		ec.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
	if (port->tso_on)
		ec.txmode.offloads |= RTE_ETH_TX_OFFLOAD_TCP_TSO;
	ec.intr_conf.rxq = rx_intr ? 1 : 0;
	return rte_eth_dev_configure(port->port_id, 1, 1, &ec);
}

int isotcp_dpdk_port_open(struct isotcp_dpdk_port *port,
			  const struct isotcp_dpdk_port_conf *conf,
			  bool make_default)
{
	struct rte_eth_dev_info info;
	char pool_name[RTE_MEMPOOL_NAMESIZE];
	int socket, ret;
	bool rx_intr = conf->want_rx_intr;
	uint16_t priv = RTE_ALIGN(sizeof(struct rx_pbuf), RTE_MBUF_PRIV_ALIGN);
	unsigned cache;
	uint32_t reserve;

	memset(port, 0, sizeof(*port));
	port->port_id = conf->port_id;
	if (!rte_eth_dev_is_valid_port(conf->port_id))
		return -ENODEV;
	rte_eth_dev_get_name_by_port(conf->port_id, port->name);
	ret = rte_eth_dev_info_get(conf->port_id, &info);
	if (ret != 0)
		return ret;
	port->caps.rx_cksum = (info.rx_offload_capa & RX_CKSUM_OFFLOADS) == RX_CKSUM_OFFLOADS;
	port->caps.tx_cksum = (info.tx_offload_capa & TX_CKSUM_OFFLOADS) == TX_CKSUM_OFFLOADS;
	port->caps.tso = (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_TCP_TSO) != 0;
	port->caps.tx_multiseg = (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS) != 0;
	port->caps.tx_max_segs = info.tx_desc_lim.nb_mtu_seg_max != 0 ?
				 info.tx_desc_lim.nb_mtu_seg_max : 1;
	port->caps.tso_max_segs = info.tx_desc_lim.nb_seg_max != 0 ?
				  info.tx_desc_lim.nb_seg_max : UINT16_MAX;
	/* DPDK 22.11's tap refuses (forever: the frame stays at the head of
	 * the TX queue) a TSO frame whose segments with their Ethernet header
	 * exceed the MTU; its segments are 14 bytes short of the MSS. */
	port->caps.tso_l2_in_mtu = info.driver_name != NULL &&
				   strcmp(info.driver_name, "net_tap") == 0;
	/* TSO needs the device to fill the checksums of every segment. */
	port->tso_on = conf->want_tso && port->caps.tso && port->caps.tx_cksum;
	port->gro_on = conf->want_gro;

	socket = rte_eth_dev_socket_id(conf->port_id);
	if (socket < 0)
		socket = (int)rte_socket_id();
	snprintf(pool_name, sizeof(pool_name), "isotcp_mp%u", conf->port_id);
	cache = RTE_MIN(256u, conf->mbufs / 8);
	port->pool = rte_pktmbuf_pool_create(pool_name, conf->mbufs, cache, priv,
					     rx_buf_size(conf->mtu), socket);
	if (port->pool == NULL)
		return -rte_errno ? -rte_errno : -ENOMEM;
	if (port->tso_on) {
		/* One mbuf per copied TSO frame: data room of 64 KB less the
		 * headroom (the mbuf's lengths are 16-bit). */
		snprintf(pool_name, sizeof(pool_name), "isotcp_tso%u", conf->port_id);
		port->tso_pool = rte_pktmbuf_pool_create(pool_name, ISOTCP_DPDK_TSO_MBUFS, 32,
							 0, UINT16_MAX, socket);
		if (port->tso_pool == NULL)
			port->tso_on = false;   /* the caller logs tso_on */
	}

	ret = port_configure(port, rx_intr);
	if (ret != 0 && rx_intr) {
		rx_intr = false;
		ret = port_configure(port, false);
	}
	if (ret != 0)
		goto err_pool;
	/* A device that cannot carry the MTU fails here (af_xdp's frames are
	 * 4 KB in DPDK 22.11): the caller says so, `isostack up` falls back.
	 * DPDK 22.11's af_packet reports 1518 bytes whatever its ring frames
	 * hold: its frames are sized by the vdev's framesz (up passes it), its
	 * RX queue setup checks they fit our mbufs, so its refusal is ignored. */
	if (conf->mtu != 0) {
		ret = rte_eth_dev_set_mtu(conf->port_id, conf->mtu);
		if (ret != 0 && (info.driver_name == NULL ||
				 strcmp(info.driver_name, "net_af_packet") != 0))
			goto err_close;
		port->mtu = conf->mtu;
	}
	port->nb_rxd = NB_DESC_DEFAULT;
	port->nb_txd = NB_DESC_DEFAULT;
	ret = rte_eth_dev_adjust_nb_rx_tx_desc(conf->port_id, &port->nb_rxd, &port->nb_txd);
	if (ret != 0)
		goto err_pool;
	ret = rte_eth_rx_queue_setup(conf->port_id, 0, port->nb_rxd, (unsigned)socket,
				     NULL, port->pool);
	if (ret != 0)
		goto err_close;
	ret = rte_eth_tx_queue_setup(conf->port_id, 0, port->nb_txd, (unsigned)socket, NULL);
	if (ret != 0)
		goto err_close;
	/* lwIP may hold what the RX ring, the TX ring and queue, and the
	 * per-lcore caches do not need; past that, RX frames are copied. */
	reserve = (uint32_t)port->nb_rxd + port->nb_txd + ISOTCP_DPDK_TXQ_MAX + 2 * cache;
	port->pressure_held = conf->mbufs > reserve ? conf->mbufs - reserve : 0;
	ret = rte_eth_dev_start(conf->port_id);
	if (ret != 0)
		goto err_close;
	if (rx_intr) {
		/* Registered on the calling (stack) thread's epoll instance;
		 * a PMD without RX interrupts says so here. */
		ret = rte_eth_dev_rx_intr_ctl_q(conf->port_id, 0, RTE_EPOLL_PER_THREAD,
						RTE_INTR_EVENT_ADD, port);
		port->caps.rx_intr = ret == 0;
		if (port->caps.rx_intr)
			rte_eth_dev_rx_intr_disable(conf->port_id, 0);
	}

	if (netif_add(&port->netif, &conf->ip, &conf->netmask, &conf->gw, port,
		      dpdk_netif_init, ethernet_input) == NULL) {
		ret = -EIO;
		goto err_stop;
	}
	ret = add_ip6(&port->netif, &conf->ip6);
	if (ret != 0) {
		netif_remove(&port->netif);
		goto err_stop;
	}
	isotcp_tso_set(&port->netif, port->tso_on ? tso_payload(&port->netif) : 0);
	isotcp_loop_set(&port->netif, true);
	if (make_default)
		netif_set_default(&port->netif);
	netif_set_up(&port->netif);
	netif_set_link_up(&port->netif);
	return 0;

err_stop:
	rte_eth_dev_stop(conf->port_id);
err_close:
	rte_eth_dev_close(conf->port_id);
err_pool:
	rte_mempool_free(port->pool);
	port->pool = NULL;
	rte_mempool_free(port->tso_pool);
	port->tso_pool = NULL;
	return ret < 0 ? ret : -EIO;
}

void isotcp_dpdk_port_close(struct isotcp_dpdk_port *port)
{
	if (port->pool == NULL)
		return;
	isotcp_tso_set(&port->netif, 0);
	isotcp_loop_set(&port->netif, false);
	netif_remove(&port->netif);
	while (port->lo_first != NULL) {
		struct pbuf *p = port->lo_first;

		port->lo_first = ((struct rx_pbuf *)(void *)p)->lo_next;
		pbuf_free(p);
	}
	port->lo_last = NULL;
	while (port->txq_len > 0) {
		rte_pktmbuf_free(port->txq[port->txq_head]);
		port->txq_head = (uint16_t)((port->txq_head + 1) % ISOTCP_DPDK_TXQ_MAX);
		port->txq_len--;
	}
	rte_eth_dev_stop(port->port_id);
	rte_eth_dev_close(port->port_id);
	/* A pbuf lwIP still holds would free into a freed pool: keep it. */
	if (rx_held[port->port_id] == 0)
		rte_mempool_free(port->pool);
	port->pool = NULL;
	rte_mempool_free(port->tso_pool);   /* TX only: the device let go */
	port->tso_pool = NULL;
}

uint32_t isotcp_dpdk_rx_held(const struct isotcp_dpdk_port *port)
{
	return rx_held[port->port_id];
}

int isotcp_dpdk_rx_intr_arm(struct isotcp_dpdk_port *port)
{
	int ret;

	if (!port->caps.rx_intr)
		return -ENOTSUP;
	ret = rte_eth_dev_rx_intr_enable(port->port_id, port->queue);
	port->rx_intr_armed = ret == 0;
	return ret;
}

int isotcp_dpdk_rx_intr_disarm(struct isotcp_dpdk_port *port)
{
	if (!port->rx_intr_armed)
		return 0;
	port->rx_intr_armed = false;
	return rte_eth_dev_rx_intr_disable(port->port_id, port->queue);
}

void isotcp_dpdk_set_txattach(struct isotcp_dpdk_port *port,
			      isotcp_dpdk_txattach_fn fn, void *arg)
{
	port->txattach = fn;
	port->txattach_arg = arg;
}
