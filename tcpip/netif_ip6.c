/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tcpip/: the DPDK netif's IP-version dispatch. lwIP's IPv6 headers
 * (lwip/ip6.h, lwip/prot/ip6.h) define struct ip6_hdr, as does the
 * <netinet/ip6.h> that DPDK's rte_ethdev.h pulls in, so netif_dpdk.c
 * cannot include them: what needs them lives here, on lwIP's headers
 * alone.
 */
#include "lwip/ethip6.h"
#include "lwip/ip.h"
#include "lwip/netif.h"

#include "netif_ip6.h"

err_t isotcp_netif_output6(struct netif *netif, struct pbuf *p, const ip6_addr_t *dst)
{
	/* Our own addresses loop back, as IPv4's do (netif_dpdk.c). */
	if (netif_get_ip6_addr_match(netif, dst) >= 0)
		return isotcp_netif_loop_output(netif, p);
	return ethip6_output(netif, p, dst);
}

err_t isotcp_netif_ip_input(struct pbuf *p, struct netif *netif)
{
	return ip_input(p, netif);
}
