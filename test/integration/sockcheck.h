/*
 * sockcheck's parts: sockcheck.c (the peer, the checks, main),
 * sockcheck_addr.c (the address family the TCP checks run in: AF_INET,
 * or AF_INET6 with `run6`), sockcheck_v6.c (the dual-stack checks of
 * the AF_INET6 run), sockcheck_udp6.c (its datagram ones) and
 * sockcheck_opts.c (socket options).  A test program, not a library: what one file needs
 * of another is here.
 */
#ifndef SOCKCHECK_H
#define SOCKCHECK_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* One address of either family, as the socket calls take it. */
union sk_addr {
	struct sockaddr sa;
	struct sockaddr_in v4;
	struct sockaddr_in6 v6;
	struct sockaddr_storage ss;
};

extern int base;                /* the peer's first service port */
extern int sk_family;           /* AF_INET, or AF_INET6 (run6, peer6) */
extern struct in_addr peer_ip;  /* the peer's IPv4 address (both runs) */
extern struct in6_addr peer_ip6; /* its IPv6 address (run6) */

/* sockcheck_addr.c */
socklen_t sk_len(const union sk_addr *a);
union sk_addr sk_peer(int off);          /* the peer, port base + off */
union sk_addr sk_any(int port);          /* the wildcard, host-order port */
union sk_addr sk_mapped(struct in_addr ip, int port);  /* ::ffff:ip */
uint16_t sk_port(const union sk_addr *a);               /* network order */
void sk_set_port(union sk_addr *a, uint16_t nport);
int sk_socket(int type);                 /* socket(sk_family, type, 0) */
int sk_peer_socket(int type);            /* the peer's listeners: dual-stack in peer6 */

/* sockcheck.c */
void die(const char *what);
const char *ename(int e);
void report(const char *name, const char *result);
void report_rc(const char *name, long rc);
int read_full(int fd, void *buf, size_t n);
int write_full(int fd, const void *buf, size_t n);
int tcp_to(int off);
uint64_t fnv(uint64_t h, const unsigned char *p, size_t n);
unsigned char pattern(uint64_t i);

/* sockcheck_v6.c: names, IPV6_V6ONLY, IPv4-mapped addresses, port
 * sharing between the families; the peer's +13 (whoami) and +14 (dialer)
 * services. */
void check_dualstack(void);
void serve_whoami(int c);
void serve_dial(int c);

/* sockcheck_udp6.c: an AF_INET6 datagram socket on [::] serving the
 * peer over both families, IPV6_V6ONLY, names; the peer's +19 (udp
 * prober) service.  ours4/ours6: our addresses as the peer sees us. */
void check_udp_dualstack(struct in_addr ours4, const union sk_addr *ours6);
void serve_udp_probe(int c);

/* sockcheck_opts.c: the options servers use (issue 15, point 4); the
 * peer's +15 (ender), +16 (segments), +17 (still) and +18 (tos)
 * services. */
void check_opts(void);
void serve_ender(int c);
void serve_segments(int c);
void serve_still(int c);
void serve_tos(int c);

#endif
