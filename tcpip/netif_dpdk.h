/*
 * tcpip/: an lwIP netif over one DPDK ethdev port (one RX and one TX queue),
 * and the TSC clock behind lwIP's sys_now(). Internal to the project: the
 * daemon includes it, nothing crosses a process boundary.
 *
 * Frames flow like this. RX: isotcp_dpdk_poll() takes a burst from the RX
 * queue and hands each mbuf to lwIP wrapped in a custom pbuf that lives in
 * the mbuf's private area, so the frame is never copied; when lwIP frees the
 * pbuf, the mbuf goes back to its mempool. TX: lwIP's linkoutput copies the
 * pbuf chain into one mbuf and queues it on the port; isotcp_dpdk_flush(),
 * called once per loop iteration, hands the queue to rte_eth_tx_burst() and
 * keeps whatever the device did not take, in order, for the next flush.
 *
 * Every function here runs on the stack lcore (the owner of lwIP state).
 */
#ifndef ISOTCP_NETIF_DPDK_H
#define ISOTCP_NETIF_DPDK_H

#include <stdbool.h>
#include <stdint.h>

/*
 * DPDK's rte_ethdev.h pulls in <netinet/ip.h> and <netinet/in.h>, whose
 * IP_RF/IP_DF/IP_MF/IP_OFFMASK and htons() family lwIP defines again (same
 * values). A file that uses both includes this header before any lwIP
 * header: the libc versions are included once here, their four flag macros
 * dropped for lwIP's, and lwIP told not to redefine the byte-order ones.
 */
#include <netinet/in.h>
#include <netinet/ip.h>
#undef IP_RF
#undef IP_DF
#undef IP_MF
#undef IP_OFFMASK
#ifndef LWIP_DONT_PROVIDE_BYTEORDER_FUNCTIONS
#define LWIP_DONT_PROVIDE_BYTEORDER_FUNCTIONS 1
#endif

#include "lwip/ip4_addr.h"
#include "lwip/ip6_addr.h"
#include "lwip/netif.h"

#include "gro.h"

struct rte_mempool;
struct rte_mbuf;
struct pbuf;

/* Frames queued for TX between flushes; linkoutput flushes early when full. */
#define ISOTCP_DPDK_TXQ_MAX     512
/* Frames per rte_eth_tx_burst() call and per RX burst. */
#define ISOTCP_DPDK_BURST       32

/* Counters of one port, written only by the stack lcore. */
struct isotcp_dpdk_stats {
	uint64_t rx_pkts;
	uint64_t rx_bytes;
	uint64_t rx_copied;        /* mempool low: frame copied, mbuf freed */
	uint64_t rx_drop_cksum;    /* the NIC reported a bad IP/L4 checksum */
	uint64_t rx_drop_nomem;    /* no pbuf for a copy under pool pressure */
	uint64_t rx_drop_bad;      /* multi-segment or oversized frame */
	uint64_t tx_pkts;
	uint64_t tx_bytes;
	uint64_t tx_drop_nomem;    /* no mbuf, or the TX queue stayed full */
	uint64_t tx_drop_toolong;  /* frame larger than one mbuf */
	uint64_t tx_partial;       /* flushes where the device took only part */
	uint64_t tx_drop_stuck;    /* head frame refused for 1 s: dropped */
	uint64_t tx_zc_frames;     /* frames built by the txattach hook (zero copy) */
	uint64_t tx_zc_bytes;      /* payload bytes attached as external buffers */
	uint64_t tx_copied_frames; /* frames copied into one mbuf */
	uint64_t tx_tso_frames;    /* frames the device segments (TSO) */
	uint64_t tx_tso_bytes;     /* TCP payload bytes in those frames */
	uint64_t lo_pkts;          /* packets to our own address, looped back */
	uint64_t lo_bytes;         /* their IP bytes */
	uint64_t lo_drop_nomem;    /* no heap for the copy (TCP retransmits) */
	uint64_t dev_tsc;          /* TSC cycles inside rte_eth_rx_burst and
				    * rte_eth_tx_burst (two rdtsc per call);
				    * the loop splits its busy cycles with it */
	uint64_t dev_tx_tsc;       /* of dev_tsc: inside rte_eth_tx_burst */
};

/* What the port offers, as found by isotcp_dpdk_port_open(). */
struct isotcp_dpdk_caps {
	bool rx_cksum;             /* IPv4 + TCP + UDP checksums checked by the NIC */
	bool tx_cksum;             /* IPv4 + TCP + UDP checksums filled by the NIC */
	bool tso;                  /* TCP segmentation offered (with tx_cksum) */
	bool rx_intr;              /* RX queue interrupts work (power saving) */
	bool tx_multiseg;          /* TX takes mbuf chains (MULTI_SEGS, enabled) */
	uint16_t tx_max_segs;      /* segments per TX frame the device takes */
	uint16_t tso_max_segs;     /* segments per TSO frame the device takes */
	uint16_t tso_l2_in_mtu;    /* the device counts the L2 header in the MTU
				    * its TSO segments must fit (net_tap) */
};

/*
 * TSO: the largest TCP payload lwIP merges into one segment on a port with
 * TSO switched on (lwIP patch 0002; a whole number of 1448-byte segments,
 * and the frame fits one mbuf of the port's TSO pool), and that pool's size.
 */
#define ISOTCP_DPDK_TSO_PAYLOAD 63712
#define ISOTCP_DPDK_TSO_MBUFS   511

/*
 * Hook for zero-copy TX (the shm transport fills it in). Given the frame
 * lwIP hands to linkoutput, build the mbuf chain in *out: headers copied
 * into a first segment, payload that lives in an application's registered
 * TX ring attached as external buffer memory (rte_pktmbuf_attach_extbuf),
 * holding a pbuf reference that the extbuf's free callback drops (it runs
 * on the stack lcore, from rte_eth_tx_burst or a later one). Returns 0, or
 * -ENOENT when the frame has no such payload (or the port cannot take
 * multi-segment frames) and the netif copies it as usual.
 */
struct isotcp_dpdk_port;
typedef int (*isotcp_dpdk_txattach_fn)(void *arg, struct isotcp_dpdk_port *port,
				       struct pbuf *p, struct rte_mbuf **out);

struct isotcp_dpdk_port {
	struct netif netif;        /* first: netif->state points back here */
	uint16_t port_id;
	uint16_t queue;            /* RX and TX queue id (0 for now) */
	char name[64];             /* ethdev name, for logs */
	struct rte_mempool *pool;
	struct isotcp_dpdk_caps caps;
	uint16_t nb_rxd, nb_txd;
	uint32_t pressure_held;    /* copy RX frames once lwIP holds this many */
	bool rx_intr_armed;
	bool tso_on;               /* TSO in use: caps.tso and conf.want_tso */
	bool gro_on;               /* receive coalescing (gro.h): conf.want_gro */
	struct isotcp_gro gro;     /* the flows held during a receive burst */
	uint16_t mtu;              /* conf.mtu, set on the device; 0: its own */
	struct rte_mempool *tso_pool; /* large mbufs for copied TSO frames */
	isotcp_dpdk_txattach_fn txattach;
	void *txattach_arg;
	uint16_t txq_head, txq_len; /* ring of frames waiting for the device */
	uint64_t tx_stall_since;   /* TSC of the first flush that sent nothing; 0 */
	struct rte_mbuf *txq[ISOTCP_DPDK_TXQ_MAX];
	struct pbuf *lo_first, *lo_last; /* looped packets (chains), linked by rx_pbuf.lo_next */
	struct isotcp_dpdk_stats stats;
};

struct isotcp_dpdk_port_conf {
	uint16_t port_id;
	uint32_t mbufs;            /* mempool size (mbufs) for this port */
	uint16_t mtu;              /* set the device's MTU (mbufs sized for it); 0: keep */
	bool want_rx_intr;         /* configure RX interrupts if the PMD has them */
	bool want_tso;             /* use TSO if the port offers it */
	bool want_gro;             /* coalesce received segments (gro.h) */
	ip4_addr_t ip, netmask, gw;
	/* IPv6: a link-local address from the MAC always; ip6 (a /64, on
	 * link) too when it is not the unspecified address. */
	ip6_addr_t ip6;
};

/*
 * Configure and start an ethdev port, create its mempool and add its lwIP
 * netif (up, link up; the default netif if `make_default`). lwip_init() must
 * have run. Returns 0, or -errno with nothing left allocated or started:
 * -ENODEV (no such port), -ENOMEM (mempool), or the ethdev error.
 */
int isotcp_dpdk_port_open(struct isotcp_dpdk_port *port,
			  const struct isotcp_dpdk_port_conf *conf,
			  bool make_default);

/* Remove the netif, free queued TX frames, stop and close the port, free
 * the mempool. lwIP must no longer hold RX pbufs of this port. */
void isotcp_dpdk_port_close(struct isotcp_dpdk_port *port);

/*
 * Receive at most `budget` frames (rounded up to a burst) and feed them to
 * lwIP. Returns the number of frames received.
 */
unsigned isotcp_dpdk_poll(struct isotcp_dpdk_port *port, unsigned budget);

/*
 * Hand the queued TX frames to the device. Frames the device refuses stay
 * queued, in order, for the next call. Returns the number sent.
 */
unsigned isotcp_dpdk_flush(struct isotcp_dpdk_port *port);

/* RX mbufs of this port that lwIP holds as pbufs right now. */
uint32_t isotcp_dpdk_rx_held(const struct isotcp_dpdk_port *port);

/* Frames still waiting in the TX queue. */
/*
 * Loopback: hand every packet that the ports' netifs queued for their own
 * addresses since the last call to ip4_input() (netif_dpdk.c). Packets looped
 * while this runs (the ACK of a looped segment) wait for the next call, so
 * one connection cannot keep the dispatcher here. Returns the number of
 * packets handled; the port's lo_pkts/lo_bytes count them.
 */
unsigned isotcp_dpdk_loop_poll(struct isotcp_dpdk_port *ports, unsigned nports);
/* Is a looped packet waiting (power saving must not sleep on it)? */
bool isotcp_dpdk_loop_pending(const struct isotcp_dpdk_port *ports, unsigned nports);

static inline unsigned isotcp_dpdk_tx_pending(const struct isotcp_dpdk_port *port)
{
	return port->txq_len;
}

/*
 * RX interrupt control for the power-saving mode: arm enables the queue's
 * interrupt (registered on the calling thread's DPDK epoll instance at
 * open); disarm turns it off again. Both return 0 or -errno (-ENOTSUP when
 * the port has no RX interrupt).
 */
int isotcp_dpdk_rx_intr_arm(struct isotcp_dpdk_port *port);
int isotcp_dpdk_rx_intr_disarm(struct isotcp_dpdk_port *port);

/* Install the zero-copy TX hook (NULL: always copy). */
void isotcp_dpdk_set_txattach(struct isotcp_dpdk_port *port,
			      isotcp_dpdk_txattach_fn fn, void *arg);

/* ---- TSC clock (clock.c) ---------------------------------------------- */

/* Calibrate sys_now() against the TSC; call once, after rte_eal_init(). */
void isotcp_clock_init(void);
/* TSC ticks per millisecond and per microsecond, for the loop's idle timing. */
uint64_t isotcp_clock_tsc_per_ms(void);
uint64_t isotcp_clock_tsc_per_us(void);

#endif /* ISOTCP_NETIF_DPDK_H */
