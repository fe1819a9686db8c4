/*
 * Platform services lwIP asks of its port: diagnostics, assertion failure,
 * random numbers, and the owner check behind LWIP_ASSERT_CORE_LOCKED().
 *
 * lwIP state belongs to exactly one thread (the daemon's stack lcore, or a
 * test's thread). That thread calls isotcp_owner_claim() once; every lwIP
 * API entry then checks a thread-local flag, a single TLS load, so a call
 * from any other thread aborts at once instead of corrupting the stack.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>

#include "lwip/opt.h"
#include "lwip/memp.h"
#include "lwip/netif.h"
#include "lwip/prot/ip4.h"
#include "lwip/prot/tcp.h"
#include "lwip/tcp.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/stats.h"
#include "lwip/timeouts.h"
#include "isotcp.h"

static __thread bool isotcp_owner;
static __thread uint64_t isotcp_rand_state;

void isotcp_owner_claim(void)
{
	isotcp_owner = true;
}

void isotcp_owner_release(void)
{
	isotcp_owner = false;
}

bool isotcp_lock_variant;
struct isotcp_lock isotcp_pool_lock;
uint64_t isotcp_lock_takes;

void isotcp_lock_variant_set(bool on)
{
	isotcp_lock_variant = on;
}

void isotcp_assert_owner(void)
{
	if (__builtin_expect(!isotcp_owner, 0))
		isotcp_assert_fail("lwIP called off its owning thread",
				   __FILE__, __LINE__);
}

void isotcp_diag(const char *fmt, ...)
{
	va_list ap;

	fputs("isostack: lwip: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

void isotcp_assert_fail(const char *msg, const char *file, int line)
{
	fprintf(stderr, "isostack: lwip assertion failed: %s (%s:%d)\n",
		msg, file, line);
	abort();
}

/*
 * TSO, per netif (indexed by netif->num): the largest TCP payload lwIP may
 * merge into one segment for it, 0 for none. Set by the DPDK netif for a
 * port whose device segments TCP; read by lwIP's output through the hooks
 * in lwipopts.h. A connection whose MSS is below what the netif's MTU
 * allows (the peer asked for less) is not merged: the device cuts merged
 * segments by the netif's MTU, which would exceed the peer's MSS.
 */
static uint32_t isotcp_tso_payload[256];

void isotcp_tso_set(const struct netif *netif, uint32_t max_payload)
{
	isotcp_tso_payload[netif->num] = max_payload;
}

/*
 * A connection to one of our own addresses never reaches a device: its
 * segments are looped back whole (lwipopts.h, LWIP_NETIF_LOOPBACK), so
 * nothing cuts them and lwIP may merge up to what an IPv4 packet holds
 * (less the largest TCP options). One copy and one ip_input() per 64 KB
 * instead of per MSS, as Linux's 64 KB loopback MTU does.
 */
#define ISOTCP_LOOP_TSO_PAYLOAD (0xffffu - IP_HLEN - TCP_HLEN - 40u)

/* Per netif: does its output loop packets to its own address back? */
static bool isotcp_looped[256];

void isotcp_loop_set(const struct netif *netif, bool on)
{
	isotcp_looped[netif->num] = on;
}

static bool isotcp_pcb_is_looped(const struct tcp_pcb *pcb, const struct netif *netif)
{
	return isotcp_looped[netif->num] && IP_IS_V4(&pcb->remote_ip) &&
	       ip4_addr_cmp(ip_2_ip4(&pcb->remote_ip), netif_ip4_addr(netif));
}

int isotcp_ip4_tso(const struct netif *netif, const struct ip4_addr *dest)
{
	return isotcp_tso_payload[netif->num] != 0 ||
	       (isotcp_looped[netif->num] && ip4_addr_cmp(dest, netif_ip4_addr(netif)));
}

uint32_t isotcp_tso_max(const struct tcp_pcb *pcb, const struct netif *netif)
{
	uint32_t max = isotcp_tso_payload[netif->num];

	if (pcb != NULL && isotcp_pcb_is_looped(pcb, netif))
		return ISOTCP_LOOP_TSO_PAYLOAD;
	if (max == 0 || pcb == NULL)
		return max;
	/* IPv6 segments are not merged: tx_cksum_offload6 and the devices'
	 * TSO here are IPv4 only, and ip6_output would fragment them. */
	if (!IP_IS_V4(&pcb->remote_ip))
		return 0;
	if (netif->mtu <= IP_HLEN + TCP_HLEN ||
	    pcb->mss != LWIP_MIN(TCP_MSS, netif->mtu - IP_HLEN - TCP_HLEN))
		return 0;
	return max;
}

/*
 * xorshift64*: lwIP uses LWIP_RAND for ephemeral ports and ARP/IP ids, where
 * unpredictability matters little; seeded once per thread from getrandom().
 */
uint32_t isotcp_rand(void)
{
	uint64_t x = isotcp_rand_state;

	if (__builtin_expect(x == 0, 0)) {
		if (getrandom(&x, sizeof(x), 0) != sizeof(x) || x == 0)
			x = 0x9e3779b97f4a7c15ull;
	}
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	isotcp_rand_state = x;
	return (uint32_t)((x * 0x2545f4914f6cdd1dull) >> 32);
}

/*
 * lwip_init() registers the cyclic timers (ARP, IP reassembly) for the life
 * of the stack; each holds one SYS_TIMEOUT entry, so those are not in use
 * by anyone. The TCP timer is the exception: lwIP starts it with the first
 * pcb and stops it when the last one is gone, so a live one does count.
 */
uint32_t isotcp_memp_in_use(void)
{
	uint32_t used = 0;
	uint32_t permanent = lwip_num_cyclic_timers - (LWIP_TCP ? 1 : 0);

	for (int i = 0; i < MEMP_MAX; i++)
		used += memp_pools[i]->stats->used;
	return used - permanent;
}

bool isotcp_timers_pending(void)
{
	return tcp_tmr_pending();
}

bool isotcp_timers_continue(void)
{
	if (!tcp_tmr_pending())
		return false;
	tcp_tmr_continue();
	return true;
}

uint32_t isotcp_timers_late(void)
{
	return tcp_tmr_late;
}

uint32_t isotcp_heap_in_use(void)
{
	return (uint32_t)lwip_stats.mem.used;
}
