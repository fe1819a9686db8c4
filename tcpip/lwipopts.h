/*
 * lwIP configuration for isostack.
 *
 * lwIP runs inside one thread, the stack lcore of isostackd (or a test's
 * single thread), driven by a poll loop: NO_SYS with no lightweight
 * protection, no netconn/socket API, no mutex anywhere. Every allocation
 * comes from lwIP's own static pools and heap, which only that thread
 * touches, so none of them needs a lock (paper 4.5, "Lock Elimination").
 * Debian's liblwip is built with NO_SYS 0 and a mutex per allocation: that
 * is the overhead this file exists to remove, so it is never linked.
 *
 * Sizing targets: 10,000 concurrent TCP connections, and one connection
 * filling 10 Gb/s at 100 us RTT, a bandwidth-delay product of
 * 10e9 * 100e-6 / 8 = 125 KB; windows and send buffers are 256 KB, twice
 * that, so a lost segment does not stall the pipe.
 */
#ifndef ISOSTACK_LWIPOPTS_H
#define ISOSTACK_LWIPOPTS_H

/* ---- Threading: one owner, no locks ----------------------------------- */
#define NO_SYS                          1
#define SYS_LIGHTWEIGHT_PROT            0
#define LWIP_NETCONN                    0
#define LWIP_SOCKET                     0
#define LWIP_ALTCP                      0
#define LWIP_CALLBACK_API               1
#define LWIP_EVENT_API                  0
/* Any lwIP call made off the owning thread is a bug: catch it. */
#define LWIP_ASSERT_CORE_LOCKED()       isotcp_assert_owner()

/* ---- Memory ------------------------------------------------------------ */
#define MEM_ALIGNMENT                   8
/* Heap for PBUF_RAM (headers, copied data, ARP): glibc's malloc, not
 * lwIP's own heap. lwIP's is first fit from its lowest free block: every
 * zero-copy segment's header pbuf stays allocated until acknowledged, so
 * with many connections the walk passed thousands of held blocks and
 * mem_malloc took 43-92% of the stack core (perf, no-kernel receive at
 * 64 connections, docs/performance.md). glibc serves these small sizes
 * from per-thread caches; lwIP keeps its usage statistics (mem.used, the
 * tests' leak check) in a word before each block. MEM_SIZE no longer
 * bounds it: the connections' windows and send buffers do. */
#define MEM_SIZE                        (64 * 1024 * 1024)
#define MEM_LIBC_MALLOC                 1
#define MEMP_MEM_MALLOC                 0
#define MEM_USE_POOLS                   0
/* PBUF_REF/ROM headers: every zero-copy TX chunk needs one. */
#define MEMP_NUM_PBUF                   65535
#define PBUF_POOL_SIZE                  4096
#define PBUF_POOL_BUFSIZE               2048
/* RX pbufs that wrap a DPDK mbuf are custom pbufs (daemon netif). */
#define LWIP_SUPPORT_CUSTOM_PBUF        1

/* ---- Protocols --------------------------------------------------------- */
#define LWIP_IPV4                       1
/* IPv6 beside IPv4 (issue 15): ND and ICMPv6, no MLD (ip6_input then
 * takes all-nodes and our solicited-node multicast without joining
 * groups, which is all ND needs; the vdevs deliver every frame), no SLAAC
 * or router solicitation (addresses come from the configuration).  DAD is
 * off: the port is a point-to-point veth whose other end we configure,
 * and an address must be usable when READY=1 is sent. */
#define LWIP_IPV6                       1
#define LWIP_IPV6_MLD                   0
#define LWIP_IPV6_AUTOCONFIG            0
#define LWIP_IPV6_SEND_ROUTER_SOLICIT   0
#define LWIP_IPV6_DUP_DETECT_ATTEMPTS   0
#define LWIP_IPV6_NUM_ADDRESSES         3
#define LWIP_IPV6_FRAG                  1
#define LWIP_IPV6_REASS                 1
#define IPV6_FRAG_COPYHEADER            1     /* 64-bit pointers: ip6_frag.c asserts it */
/* nd6.c walks its tables with s8_t indices: at most 127 each (256 made
 * nd6_find_neighbor_cache_entry loop forever on the stack core). */
#define LWIP_ND6_NUM_NEIGHBORS          64
#define LWIP_ND6_NUM_DESTINATIONS       64
#define LWIP_ND6_QUEUEING               1
#define MEMP_NUM_ND6_QUEUE              1024
#define LWIP_ND6_ALLOW_RA_UPDATES       0
#define LWIP_ARP                        1
#define LWIP_ETHERNET                   1
#define ARP_TABLE_SIZE                  256
#define ARP_QUEUEING                    1
#define MEMP_NUM_ARP_QUEUE              1024
#define ETHARP_SUPPORT_STATIC_ENTRIES   0
#define LWIP_ICMP                       1
#define LWIP_RAW                        0
#define LWIP_UDP                        1
#define MEMP_NUM_UDP_PCB                1024
#define LWIP_DHCP                       0
#define LWIP_AUTOIP                     0
#define LWIP_IGMP                       0
#define LWIP_DNS                        0
#define IP_REASSEMBLY                   1
#define IP_FRAG                         1
#define MEMP_NUM_REASSDATA              64
#define IP_REASS_MAX_PBUFS              512
#define IP_DEFAULT_TTL                  64
#define LWIP_SINGLE_NETIF               0
#define LWIP_NETIF_HWADDRHINT           1
#define LWIP_NETIF_LINK_CALLBACK        0
#define LWIP_NETIF_STATUS_CALLBACK      0
#define SO_REUSE                        1
/*
 * No lwIP loopback (LWIP_NETIF_LOOPBACK): a packet to the daemon's own
 * address is looped by the DPDK netif's IP output instead (netif_dpdk.c,
 * "Loopback"), so no extra netif joins the list and netifs of other kinds
 * (the unit tests' links) keep sending through their linkoutput.
 */

/* ---- TCP --------------------------------------------------------------- */
#define LWIP_TCP                        1
/* Connections of all applications together, TIME_WAIT included (sockets
 * have no fixed table: docs/shm.md).  lwIP's pools are static (~200 B a
 * pcb, touched once at start); patch 0003 lets a pool pass 65535. */
#define MEMP_NUM_TCP_PCB                131072
#define MEMP_NUM_TCP_PCB_LISTEN         1024
/*
 * tcp_input() finds the active pcb of a segment through a hash table of this
 * many buckets keyed by the 4-tuple (our lwIP patch 0004) instead of walking
 * every active pcb, so a segment's cost does not grow with idle connections.
 * A power of two; 100,000 connections make chains of ~1.5 pcbs; 512 KB of
 * static buckets plus 16 B a pcb.
 */
#define TCP_PCB_HASH_SIZE               65536
/*
 * tcp_fasttmr() visits only the pcbs with a delayed ACK, a FIN to retry or
 * refused data (our lwIP patch 0006), not every active pcb every
 * TCP_TMR_INTERVAL: with 100,000 connections the walk was 17.7% of the
 * stack core during their setup.
 */
#define TCP_FASTTMR_LIST                1
/*
 * tcp_slowtmr() walks only the active pcbs that may have a timer running
 * (patch 0007), not the quiet ones: idle connections cost the slow timer
 * nothing.  It was 13.6% of the stack core while 100,000 connections were
 * set up.
 */
#define TCP_SLOWTMR_LIST                1
/*
 * A timer tick visits at most this many pcbs; the rest of its walk goes on
 * between the loop's polls of the device (our lwIP patch 0009,
 * isotcp_timers_continue).  While 100,000 connections were verified one
 * tick's walk took up to 10 ms, and af_xdp's 2,048 receive buffers ran out
 * meanwhile.  256 pcbs: ~50-250 us (a delayed ACK sent for each at most).
 */
#define TCP_TMR_BUDGET                  256
/*
 * The TIME-WAIT list is walked only when its oldest pcb's 2 MSL are up
 * (our lwIP patch 0015), not at every slow tick: 11,000 idle TIME-WAIT
 * pcbs (a server that closed first) cost 8% of the stack core before.
 */
#define TCP_TW_OLDEST                   1
/*
 * A segment that matches no active pcb (every new connection's SYN) finds
 * its TIME-WAIT pcb, if any, through a second hash table (our lwIP patch
 * 0016), not by walking all of them: a server that closes first holds
 * thousands, and each new connection walked them all.
 */
#define TCP_TW_HASH                     1
/*
 * No half-open limit in lwIP: its backlog is a u8 counting connections in
 * SYN_RCVD, so with it a burst of more than 255 SYNs on one listener lost
 * the rest until the peers retransmitted a second later (a burst of 3,000
 * nonblocking connects took 3.6 s: 837/s).  Half-open connections are
 * bounded by the pcb pool (MEMP_NUM_TCP_PCB), as the kernel's are by
 * memory with syncookies; the application's listen() backlog bounds the
 * established ones waiting for accept() (daemon/backend/sock_tcp.c).
 */
#define TCP_LISTEN_BACKLOG              0
/*
 * A connection that completes its handshake while the listener's queue
 * is full waits half open (our lwIP patch 0008: the accept callback
 * returns ERR_INPROGRESS, the ACK is dropped, the peer's next segment or
 * our SYN-ACK's retransmission tries again), as on Linux; without it lwIP
 * reset it.
 */
#define LWIP_TCP_ACCEPT_DEFER           1
/*
 * The largest MSS we announce or accept: a 9000-byte MTU's. What a SYN
 * announces and what a connection uses is TCP_MSS capped by the route's
 * netif MTU less 40 (TCP_CALCULATE_EFF_SEND_MSS), so a 1500-byte port
 * still says 1460. Queue sizes are counted in segments of the smallest
 * usual MSS, ISOTCP_ETH_MSS, as before jumbo frames.
 */
#define TCP_MSS                         8960
#define ISOTCP_ETH_MSS                  1460
#define TCP_CALCULATE_EFF_SEND_MSS      1
#define LWIP_WND_SCALE                  1
#define TCP_RCV_SCALE                   3         /* 0xffff << 3 = 512 KB max */
#define TCP_WND                         (256 * 1024)
#define TCP_SND_BUF                     (256 * 1024)
/* lwIP insists on at least 2 * SND_BUF / MSS queued segments. */
#define TCP_SND_QUEUELEN                (4 * TCP_SND_BUF / ISOTCP_ETH_MSS)
/* Writable-space mark of lwIP's socket API (unused here); a u16 that lwIP
 * wants 4 MSS below 65535. */
#define TCP_SNDLOWAT                    (28 * 1024)
#define TCP_SNDQUEUELOWAT               (TCP_SND_QUEUELEN / 2)
/* Shared by all connections: segments in flight or queued, system-wide. */
#define MEMP_NUM_TCP_SEG                65535
#define TCP_QUEUE_OOSEQ                 1
#define LWIP_TCP_SACK_OUT               1
#define LWIP_TCP_MAX_SACK_NUM           4
#define LWIP_TCP_TIMESTAMPS             1
#define LWIP_TCP_KEEPALIVE              1
#define TCP_OVERSIZE                    TCP_MSS
/*
 * Two extension slots per pcb: the socket back-end's passive-open hook, the
 * only place where a connection's receive window can be set before its
 * SYN-ACK leaves (daemon/backend/sock_tcp.c, wnd_passive_open), and the
 * mark of a SO_REUSEPORT socket's pcbs, which its listener's connections
 * inherit at the SYN (daemon/backend/reuseport.c).
 */
#define LWIP_TCP_PCB_NUM_EXT_ARGS       2
#define TCP_TTL                         64
/*
 * lwIP's TCP timers: the fast one (delayed ACKs) every interval, the slow
 * one (retransmission, persist, keepalive) every two. The default 250 ms
 * puts the retransmission timeout's floor near 0.5-1 s, which stalls loss
 * recovery on a link whose RTT is 100 us; 10 ms brings it to 20-40 ms.
 * Cost: tcp_tmr() walks every active pcb 100 times a second.
 */
#define TCP_TMR_INTERVAL                10

/*
 * TSO (our lwIP patch 0002): tcp_output() merges the segments it is about
 * to send back to back into one of up to isotcp_tso_max() payload bytes
 * when the route's netif has a device that segments TCP; 0 (every netif
 * without TSO, or with it switched off) leaves lwIP exactly as it was.
 */
#define LWIP_TCP_TSO                    1
#define LWIP_HOOK_TCP_TSO_MAX(pcb, netif) isotcp_tso_max((pcb), (netif))
/* `dest` is ip4_output_if_opt_src()'s: a segment merged for one of our own
 * addresses is looped whole, never cut (tcpip/port.c). */
#define LWIP_HOOK_IP4_TSO(netif)        isotcp_ip4_tso((netif), dest)

/* ---- Checksums: per netif, so a port with offload turns software off --- */
#define LWIP_CHECKSUM_CTRL_PER_NETIF    1
#define LWIP_CHECKSUM_ON_COPY           0

/* ---- Statistics: plain counters, read by isostat and the tests --------- */
#define LWIP_STATS                      1
#define LWIP_STATS_DISPLAY              0
/* 32-bit counters: 16-bit ones wrap within a second at line rate. */
#define LWIP_STATS_LARGE                1
#define MEM_STATS                       1
#define MEMP_STATS                      1
#define SYS_STATS                       0

/* ---- Platform hooks (tcpip/port.c) ------------------------------------- */
#define LWIP_RAND()                     isotcp_rand()

#ifndef __ASSEMBLER__
#include <stdint.h>
uint32_t isotcp_rand(void);
void isotcp_assert_owner(void);
struct tcp_pcb;
struct netif;
uint32_t isotcp_tso_max(const struct tcp_pcb *pcb, const struct netif *netif);
void isotcp_tso_set(const struct netif *netif, uint32_t max_payload);
struct ip4_addr;
int isotcp_ip4_tso(const struct netif *netif, const struct ip4_addr *dest);
void isotcp_loop_set(const struct netif *netif, _Bool on);
#endif

#endif /* ISOSTACK_LWIPOPTS_H */
