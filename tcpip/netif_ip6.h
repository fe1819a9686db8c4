/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tcpip/: the parts of the DPDK netif that need lwIP's IPv6 headers
 * (netif_ip6.c says why they are apart).
 */
#ifndef ISOTCP_NETIF_IP6_H
#define ISOTCP_NETIF_IP6_H

#include "lwip/ip6_addr.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"

/* netif->output_ip6: to the loopback queue for our own addresses, else
 * through neighbour discovery to the device. */
err_t isotcp_netif_output6(struct netif *netif, struct pbuf *p, const ip6_addr_t *dst);

/* ip_input(): IPv4 or IPv6 by the version nibble. */
err_t isotcp_netif_ip_input(struct pbuf *p, struct netif *netif);

/* Defined in netif_dpdk.c: queue p (an IP packet) for loopback input. */
err_t isotcp_netif_loop_output(struct netif *netif, struct pbuf *p);

#endif
