/*
 * The address family sockcheck's checks run in.  `run` makes every
 * check's socket AF_INET and its addresses sockaddr_in, as before;
 * `run6` makes them AF_INET6 and the peer's IPv6 address, so that the
 * same checks, unchanged, say what the shim does with AF_INET6 TCP and
 * UDP.  The peer's listeners and its UDP echo follow `peer6`: dual-stack
 * [::], reached over IPv4 (as ::ffff:a.b.c.d) and IPv6 alike.
 */
#include <arpa/inet.h>
#include <string.h>

#include "sockcheck.h"

int sk_family = AF_INET;
struct in_addr peer_ip;
struct in6_addr peer_ip6;

socklen_t sk_len(const union sk_addr *a)
{
	return a->sa.sa_family == AF_INET6 ? sizeof(a->v6) : sizeof(a->v4);
}

union sk_addr sk_peer(int off)
{
	union sk_addr a;
	memset(&a, 0, sizeof(a));
	if (sk_family == AF_INET6) {
		a.v6.sin6_family = AF_INET6;
		a.v6.sin6_addr = peer_ip6;
		a.v6.sin6_port = htons((uint16_t)(base + off));
	} else {
		a.v4.sin_family = AF_INET;
		a.v4.sin_addr = peer_ip;
		a.v4.sin_port = htons((uint16_t)(base + off));
	}
	return a;
}

union sk_addr sk_any(int port)
{
	union sk_addr a;
	memset(&a, 0, sizeof(a));
	if (sk_family == AF_INET6) {
		a.v6.sin6_family = AF_INET6;
		a.v6.sin6_addr = in6addr_any;
		a.v6.sin6_port = htons((uint16_t)port);
	} else {
		a.v4.sin_family = AF_INET;
		a.v4.sin_addr.s_addr = htonl(INADDR_ANY);
		a.v4.sin_port = htons((uint16_t)port);
	}
	return a;
}

union sk_addr sk_mapped(struct in_addr ip, int port)
{
	union sk_addr a;
	memset(&a, 0, sizeof(a));
	a.v6.sin6_family = AF_INET6;
	a.v6.sin6_addr.s6_addr[10] = 0xff;
	a.v6.sin6_addr.s6_addr[11] = 0xff;
	memcpy(&a.v6.sin6_addr.s6_addr[12], &ip, 4);
	a.v6.sin6_port = htons((uint16_t)port);
	return a;
}

uint16_t sk_port(const union sk_addr *a)
{
	return a->sa.sa_family == AF_INET6 ? a->v6.sin6_port : a->v4.sin_port;
}

void sk_set_port(union sk_addr *a, uint16_t nport)
{
	if (a->sa.sa_family == AF_INET6)
		a->v6.sin6_port = nport;
	else
		a->v4.sin_port = nport;
}

int sk_socket(int type)
{
	return socket(sk_family, type, 0);
}

int sk_peer_socket(int type)
{
	int fd = socket(sk_family, type, 0), off = 0;
	if (fd >= 0 && sk_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
	return fd;
}
