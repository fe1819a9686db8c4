/*
 * Receive coalescing (what GRO does for the kernel): consecutive in-order
 * TCP segments of one flow in one receive burst become one segment before
 * lwIP sees them, so a burst of 32 full-size segments costs lwIP's input,
 * demux, ACK processing and the back-end's delivery once, not 32 times.
 * Internal to tcpip/ (the DPDK netif and the unit tests).
 *
 * Only plain data segments merge: IPv4 without options or fragments or
 * IPv6 without extension headers (and the same traffic class, flow label
 * and hop limit), TCP
 * with ACK (and PSH, which ends the merged segment), no other flag, no
 * option or exactly the timestamp option, byte for byte the same as the
 * segment held (as Linux's GRO asks), the next sequence number, the same
 * ACK and window. Anything else of a held flow first delivers what is held,
 * so a flow's segments reach lwIP in the order they came.
 *
 * Checksums are checked here, per segment, unless the caller says the
 * device did (a merged segment has no checksum of its own); what is held
 * goes to lwIP with its checks off and is counted bad here instead.
 */
#ifndef ISOTCP_GRO_H
#define ISOTCP_GRO_H

#include <stdbool.h>
#include <stdint.h>

#include "lwip/netif.h"
#include "lwip/pbuf.h"

#define ISOTCP_GRO_FLOWS      8     /* flows held at once (one burst's worth) */
#define ISOTCP_GRO_MAX_SEGS   44    /* segments in one merged segment */

/* A flow: addresses and ports in network order, as in the headers; an
 * IPv4 address in word 0, words 1-3 zero. */
struct isotcp_gro_key {
	uint32_t src[4], dst[4];
	uint16_t sport, dport;
	uint32_t v6;
};

struct isotcp_gro_flow {
	struct pbuf *head;           /* the first frame, the others chained on */
	struct isotcp_gro_key key;
	uint32_t next_seq;           /* host order */
	uint16_t ip_len;             /* the merged IP datagram's length so far */
	uint16_t segs;
};

struct isotcp_gro {
	struct isotcp_gro_flow flow[ISOTCP_GRO_FLOWS];
	unsigned nflows;
	uint64_t merged;             /* segments merged into another */
	uint64_t delivered;          /* merged segments handed to lwIP */
	uint64_t bad_cksum;          /* dropped: bad IP or TCP checksum */
};

/*
 * Takes frame p (an Ethernet frame in one pbuf) off the caller's hands if
 * it can be held or merged; returns false if the caller must hand it to
 * netif->input itself (after this call, which has delivered any held
 * segment of the same flow first). cksum_ok: the device checked both
 * checksums of this frame and found them good.
 */
bool isotcp_gro_take(struct isotcp_gro *g, struct netif *netif, struct pbuf *p, bool cksum_ok);

/* Hands everything held to netif->input (end of a burst). */
void isotcp_gro_flush(struct isotcp_gro *g, struct netif *netif);

#endif /* ISOTCP_GRO_H */
