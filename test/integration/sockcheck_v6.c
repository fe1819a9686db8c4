/*
 * The dual-stack checks of `sockcheck run6`: what an AF_INET6 TCP socket
 * says about itself and its peer when IPv4 is involved.  The peer
 * (`peer6`) listens on [::] with IPV6_V6ONLY 0, so it is reached at its
 * IPv6 address and at ::ffff:PEER4 alike, and its dialer (+14) connects
 * back over whichever family the request came in on.  Names are never
 * printed (they differ between the native pair and isostack): each is
 * compared with what it must be, the peer's own view of us (whoami, +13)
 * included, and printed as "ok" or the first field that differs, then its
 * kind (v6, mapped, any, inet).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "sockcheck.h"

#define FNV0 0xcbf29ce484222325ULL

static struct in_addr our_ip;           /* ours, as the peer sees us over IPv4 */
static union sk_addr our6;              /* ours over IPv6, port 0 */

/* ---- peer side -------------------------------------------------------- */

void serve_whoami(int c)
{
	union sk_addr a;
	socklen_t l = sizeof(a);
	memset(&a, 0, sizeof(a));
	if (getpeername(c, &a.sa, &l) == 0)
		write_full(c, &a, sizeof(a));
}

void serve_dial(int c)
{
	uint16_t port;
	union sk_addr a;
	socklen_t l = sizeof(a);
	int32_t err = 0;
	if (read_full(c, &port, sizeof(port)) < 0 || getpeername(c, &a.sa, &l) < 0)
		return;
	sk_set_port(&a, port);
	int o = socket(a.sa.sa_family, SOCK_STREAM, 0);
	if (connect(o, &a.sa, l) == 0)
		write_full(o, "hello", 5);
	else
		err = errno;
	close(o);
	write_full(c, &err, sizeof(err));
}

/* ---- addresses -------------------------------------------------------- */

static union sk_addr peer6_at(int off)
{
	return sk_peer(off);                  /* run6: the peer's IPv6 address */
}

static union sk_addr peer4_mapped(int off)
{
	return sk_mapped(peer_ip, base + off);
}

static union sk_addr any_of(int family, int port)
{
	union sk_addr a;
	memset(&a, 0, sizeof(a));
	a.sa.sa_family = (sa_family_t)family;
	if (family == AF_INET6)
		a.v6.sin6_addr = in6addr_any;
	sk_set_port(&a, htons((uint16_t)port));
	return a;
}

/* "ok", or the first field of `got` (length len) that is not `want`'s;
 * a port of 0 in `want` is not compared. */
static const char *name_diff(const union sk_addr *got, socklen_t len, const union sk_addr *want)
{
	if (got->sa.sa_family != want->sa.sa_family)
		return "family";
	if (len != sk_len(want))
		return "len";
	if (sk_port(want) != 0 && sk_port(got) != sk_port(want))
		return "port";
	if (want->sa.sa_family == AF_INET)
		return got->v4.sin_addr.s_addr == want->v4.sin_addr.s_addr ? "ok" : "addr";
	if (memcmp(&got->v6.sin6_addr, &want->v6.sin6_addr, sizeof(struct in6_addr)))
		return "addr";
	return got->v6.sin6_flowinfo || got->v6.sin6_scope_id ? "flow_scope" : "ok";
}

static const char *kind(const union sk_addr *a)
{
	if (a->sa.sa_family == AF_INET)
		return "inet";
	if (a->sa.sa_family != AF_INET6)
		return "family?";
	if (IN6_IS_ADDR_UNSPECIFIED(&a->v6.sin6_addr))
		return "any";
	if (IN6_IS_ADDR_V4MAPPED(&a->v6.sin6_addr))
		return "mapped";
	return IN6_IS_ADDR_LOOPBACK(&a->v6.sin6_addr) ? "loopback" : "v6";
}

static void report_name(const char *what, const char *which, const union sk_addr *got,
			socklen_t len, const union sk_addr *want)
{
	char name[64], res[48];
	snprintf(name, sizeof(name), "%s_%s", what, which);
	snprintf(res, sizeof(res), "%s %s", name_diff(got, len, want), kind(got));
	report(name, res);
}

/* A TCP socket of `family` (IPV6_V6ONLY set to v6only unless it is -1)
 * connected to `to`; -1 and errno if any step failed. */
static int dial(int family, int v6only, const union sk_addr *to)
{
	int fd = socket(family, SOCK_STREAM, 0), e;
	if (fd < 0)
		return -1;
	if ((v6only < 0 || setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) == 0) &&
	    connect(fd, &to->sa, sk_len(to)) == 0)
		return fd;
	e = errno;
	close(fd);
	errno = e;
	return -1;
}

/* A listener of `family` on its wildcard (v6only as in dial), at `port`
 * (0: any), its port in network order in *got; -1 and errno. */
static int listen_on(int family, int v6only, int port, uint16_t *got)
{
	union sk_addr a = any_of(family, port);
	socklen_t al = sizeof(a);
	struct timeval tv = { .tv_sec = 20 };   /* a hang is a failure */
	int l = socket(family, SOCK_STREAM, 0), e;
	if (l < 0)
		return -1;
	if ((v6only < 0 || setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) == 0) &&
	    bind(l, &a.sa, sk_len(&a)) == 0 && listen(l, 8) == 0 &&
	    getsockname(l, &a.sa, &al) == 0) {
		setsockopt(l, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		*got = sk_port(&a);
		return l;
	}
	e = errno;
	close(l);
	errno = e;
	return -1;
}

/* Asks the dialer (+14), over a connection to `via`, to connect back to
 * `port` (network order) from its side of that connection: the errno of
 * its connect, or -1 if the request failed.  *ours: our end of the
 * request, the address the peer dialled. */
static int dial_back(const union sk_addr *via, uint16_t port, union sk_addr *ours)
{
	int ctl = dial(via->sa.sa_family, -1, via);
	int32_t err = -1;
	socklen_t l = sizeof(*ours);
	if (ctl < 0)
		return -1;
	if (ours)
		getsockname(ctl, &ours->sa, &l);
	if (write_full(ctl, &port, sizeof(port)) < 0 || read_full(ctl, &err, sizeof(err)) < 0)
		err = -1;
	close(ctl);
	return err;
}

/* The connection the dialer made to listener l: "ok" once its "hello"
 * came, or what failed. */
static const char *take_hello(int l)
{
	char b[5];
	int c = accept(l, NULL, NULL);
	if (c < 0)
		return ename(errno);
	const char *res = read_full(c, b, 5) == 0 && !memcmp(b, "hello", 5) ? "ok" : "bad";
	close(c);
	return res;
}

static const char *dial_result(int err, int l)
{
	return err < 0 ? "ctl_failed" : err ? ename(err) : take_hello(l);
}

/* ---- the checks --------------------------------------------------------- */

/* An AF_INET6 socket's SO_DOMAIN and IPV6_V6ONLY, whichever version it
 * speaks: "inet6 0". */
static void report_domain(const char *what, int fd)
{
	int d = -1, v = -1;
	socklen_t dl = sizeof(d), vl = sizeof(v);
	char name[64], res[48];
	int rd = getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &d, &dl);
	int rv = getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, &vl);
	snprintf(name, sizeof(name), "%s_domain", what);
	snprintf(res, sizeof(res), "%s %s", rd ? ename(errno) : d == AF_INET6 ? "inet6" : "other",
		 rv ? ename(errno) : v == 0 ? "0" : v == 1 ? "1" : "other");
	report(name, res);
}

/* getpeername is where we connected to; getsockname is where the peer
 * sees us (whoami); a short buffer is filled as far as it goes and the
 * full length returned, as the kernel does. */
static void check_conn_names(const char *what, const union sk_addr *to)
{
	union sk_addr seen, local, remote, part;
	socklen_t ll = sizeof(local), rl = sizeof(remote), pl = sizeof(struct sockaddr_in);
	int fd = dial(AF_INET6, -1, to);
	if (fd < 0 || read_full(fd, &seen, sizeof(seen)) < 0) {
		report(what, fd < 0 ? ename(errno) : "short");
		if (fd >= 0)
			close(fd);
		return;
	}
	if (getpeername(fd, &remote.sa, &rl) < 0 || getsockname(fd, &local.sa, &ll) < 0)
		die("conn names");
	report_name(what, "peername", &remote, rl, to);
	report_domain(what, fd);
	report_name(what, "sockname", &local, ll, &seen);
	memset(&part, 0, sizeof(part));
	char name[64], res[48];
	snprintf(name, sizeof(name), "%s_sockname_short", what);
	int rc = getsockname(fd, &part.sa, &pl);
	snprintf(res, sizeof(res), "%s len %u", rc < 0 ? ename(errno) :
		 !memcmp(&part, &local, sizeof(struct sockaddr_in)) ? "ok" : "bad", (unsigned)pl);
	report(name, res);
	close(fd);
}

/* 1 MiB over an AF_INET6 socket to ::ffff:PEER4 (the sink's checksum). */
static void check_mapped_bulk(void)
{
	const uint64_t total = 1u << 20;
	unsigned char buf[10007];
	union sk_addr to = peer4_mapped(3);
	uint64_t h = FNV0, out[2] = { 0, 0 };
	int fd = dial(AF_INET6, -1, &to);
	if (fd < 0) {
		report("mapped_bulk_checksum", ename(errno));
		return;
	}
	for (uint64_t i = 0; i < total;) {
		size_t k = 0;
		for (; k < sizeof(buf) && i < total; k++, i++)
			buf[k] = pattern(i);
		h = fnv(h, buf, k);
		if (write_full(fd, buf, k) < 0)
			break;
	}
	shutdown(fd, SHUT_WR);
	read_full(fd, out, sizeof(out));
	report("mapped_bulk_checksum", out[0] == h && out[1] == total ? "ok" : "bad");
	close(fd);
}

/* A dual-stack listener accepts the peer dialling over `via`'s family:
 * accept's address is the peer's (as the kernel names it), the accepted
 * socket's own is the one the peer dialled. */
static void check_accept_names(const char *what, const union sk_addr *via, const union sk_addr *want)
{
	uint16_t port;
	union sk_addr ours, got, local;
	socklen_t gl = sizeof(got), ll = sizeof(local);
	int l = listen_on(AF_INET6, -1, 0, &port);
	if (l < 0)
		die("accept names listen");
	int err = dial_back(via, port, &ours);
	int c = err == 0 ? accept(l, &got.sa, &gl) : -1;
	if (c < 0) {
		report(what, err != 0 ? dial_result(err, l) : ename(errno));
		close(l);
		return;
	}
	sk_set_port(&ours, port);
	report_name(what, "addr", &got, gl, want);
	report_domain(what, c);
	report_name(what, "local", &local, getsockname(c, &local.sa, &ll) < 0 ? 0 : ll, &ours);
	char b[5];
	report(what, read_full(c, b, 5) == 0 && !memcmp(b, "hello", 5) ? "ok" : "bad");
	close(c);

	/* accept with room for a sockaddr_in only: cut short, full length */
	err = dial_back(via, port, NULL);
	gl = sizeof(struct sockaddr_in);
	memset(&got, 0, sizeof(got));
	c = err == 0 ? accept(l, &got.sa, &gl) : -1;
	char name[64], res[48];
	snprintf(name, sizeof(name), "%s_short", what);
	snprintf(res, sizeof(res), "%s len %u family %s", c < 0 ? ename(errno) : "ok", (unsigned)gl,
		 got.sa.sa_family == AF_INET6 ? "inet6" : "other");
	report(name, res);
	if (c >= 0)
		close(c);
	close(l);
}

/* IPV6_V6ONLY: its default, when it may be set, and Linux's errnos for
 * IPv4-mapped addresses on a v6only socket. */
static void check_v6only(void)
{
	int v = -1, one = 1, zero = 0;
	socklen_t vl = sizeof(v);
	char res[32];
	union sk_addr m = peer4_mapped(0), me = sk_mapped(our_ip, 0), p6 = peer6_at(0);
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	snprintf(res, sizeof(res), "%d", getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, &vl) ? -1 : v);
	report("v6only_default", res);
	report_rc("v6only_set", setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)));
	v = -1;
	snprintf(res, sizeof(res), "%d", getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, &vl) ? -1 : v);
	report("v6only_get", res);
	report_rc("v6only_connect_mapped", connect(fd, &m.sa, sk_len(&m)));
	close(fd);

	fd = socket(AF_INET6, SOCK_STREAM, 0);
	setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	report_rc("v6only_bind_mapped", bind(fd, &me.sa, sk_len(&me)));
	close(fd);

	fd = dial(AF_INET6, 1, &p6);
	char b[4];
	report("v6only_connect_v6", fd < 0 ? ename(errno) :
	       send(fd, "six!", 4, 0) == 4 && read_full(fd, b, 4) == 0 && !memcmp(b, "six!", 4) ?
	       "ok" : "bad");
	if (fd >= 0) {
		report_rc("v6only_after_connect",
			  setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)));
		close(fd);
	}

	fd = socket(AF_INET6, SOCK_STREAM, 0);
	union sk_addr any = any_of(AF_INET6, 0);
	if (bind(fd, &any.sa, sk_len(&any)) < 0)
		die("v6only bind");
	report_rc("v6only_after_bind", setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)));
	close(fd);

	fd = socket(AF_INET, SOCK_STREAM, 0);
	report_rc("v6only_on_inet_set", setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)));
	vl = sizeof(v);
	report_rc("v6only_on_inet_get", getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, &vl));
	close(fd);
}

/* Which families a listener serves: the dialer comes over IPv4, then
 * over IPv6. */
static void check_listener(const char *what, int family, int v6only)
{
	uint16_t port;
	union sk_addr via4 = peer4_mapped(14), via6 = peer6_at(14);
	char res[64];
	int l = listen_on(family, v6only, 0, &port);
	if (l < 0)
		die("listener families");
	const char *r4 = dial_result(dial_back(&via4, port, NULL), l);
	snprintf(res, sizeof(res), "v4 %s", r4);
	const char *r6 = dial_result(dial_back(&via6, port, NULL), l);
	snprintf(res + strlen(res), sizeof(res) - strlen(res), " v6 %s", r6);
	report(what, res);
	close(l);
}

/* Which of two listeners the dialer, over `via`, reached: "first",
 * "second", "none" or what failed. */
static const char *which_listener(const union sk_addr *via, uint16_t port, int l1, int l2)
{
	int err = dial_back(via, port, NULL);
	if (err != 0)
		return err < 0 ? "ctl_failed" : ename(err);
	struct pollfd p[2] = { { l1, POLLIN, 0 }, { l2, POLLIN, 0 } };
	if (poll(p, 2, 10000) <= 0)
		return "none";
	const char *r = take_hello(p[0].revents & POLLIN ? l1 : l2);
	return strcmp(r, "ok") ? r : p[0].revents & POLLIN ? "first" : "second";
}

/* A second wildcard listener on the port of a first, of the other family
 * (or the other IPV6_V6ONLY): EADDRINUSE where the two would overlap;
 * where both are allowed, which one each family reaches. */
static void check_same_port(const char *what, int fam1, int v6only1, int fam2, int v6only2)
{
	uint16_t port;
	char res[64];
	union sk_addr via4 = peer4_mapped(14), via6 = peer6_at(14);
	int l1 = listen_on(fam1, v6only1, 0, &port);
	if (l1 < 0)
		die("same port listen");
	int l2 = listen_on(fam2, v6only2, ntohs(port), &(uint16_t){ 0 });
	if (l2 < 0) {
		report(what, ename(errno));
		close(l1);
		return;
	}
	snprintf(res, sizeof(res), "ok v4 %s", which_listener(&via4, port, l1, l2));
	snprintf(res + strlen(res), sizeof(res) - strlen(res), " v6 %s",
		 which_listener(&via6, port, l1, l2));
	report(what, res);
	close(l2);
	close(l1);
}

/* An AF_INET6 socket bound to one of our addresses, `me`, on the port
 * of a wildcard listener of `family` (IPV6_V6ONLY as in dial). */
static void check_same_port_addr(const char *what, int family, int v6only, const union sk_addr *me)
{
	uint16_t port;
	union sk_addr a = *me;
	int l = listen_on(family, v6only, 0, &port), fd = socket(AF_INET6, SOCK_STREAM, 0);
	if (l < 0 || fd < 0)
		die("same port addr");
	sk_set_port(&a, port);
	report_rc(what, bind(fd, &a.sa, sk_len(&a)));
	close(fd);
	close(l);
}

/* Addresses of the wrong family or length, binds to addresses that are
 * not ours, and binds to ours of each kind. */
static void check_bad_addresses(void)
{
	union sk_addr p6 = peer6_at(0), b = p6, any = any_of(AF_INET6, 0);
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons((uint16_t)base),
				  .sin_addr = peer_ip };
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	report_rc("v6_connect_short", connect(fd, (struct sockaddr *)&in, sizeof(in)));
	b.sa.sa_family = AF_INET;
	report_rc("v6_connect_family_inet", connect(fd, &b.sa, sizeof(b.v6)));
	in.sin_addr.s_addr = htonl(INADDR_ANY);
	report_rc("v6_bind_short", bind(fd, (struct sockaddr *)&in, sizeof(in)));
	b = any;
	b.sa.sa_family = AF_INET;
	report_rc("v6_bind_family_inet", bind(fd, &b.sa, sizeof(b.v6)));
	union sk_addr un;
	socklen_t ul = sizeof(un);
	char res[48];
	memset(&un, 0, sizeof(un));
	int rc = getsockname(fd, &un.sa, &ul);
	snprintf(res, sizeof(res), "%s %s port %u", rc ? ename(errno) : name_diff(&un, ul, &any),
		 kind(&un), (unsigned)ntohs(sk_port(&un)));
	report("v6_unbound_sockname", res);
	close(fd);

	fd = socket(AF_INET, SOCK_STREAM, 0);
	report_rc("inet_connect_v6", connect(fd, &p6.sa, sizeof(p6.v6)));
	report_rc("inet_bind_v6", bind(fd, &any.sa, sizeof(any.v6)));
	close(fd);

	/* not ours: another address on our IPv6 link, another IPv4 address */
	union sk_addr other6 = our6;
	other6.v6.sin6_addr.s6_addr[15] ^= 0x80;
	fd = socket(AF_INET6, SOCK_STREAM, 0);
	report_rc("v6_bind_not_ours", bind(fd, &other6.sa, sk_len(&other6)));
	close(fd);
	fd = socket(AF_INET6, SOCK_STREAM, 0);
	b = sk_mapped((struct in_addr){ htonl(0xc612fefe) }, 0);   /* 198.18.254.254 */
	report_rc("mapped_bind_not_ours", bind(fd, &b.sa, sk_len(&b)));
	close(fd);
}

/* A socket bound to our address of one kind first, then connected: its
 * name stays the bound one, the connection works. */
static void check_bound_connect(const char *what, const union sk_addr *me, const union sk_addr *to)
{
	union sk_addr got;
	socklen_t gl = sizeof(got);
	char b[5], name[64];
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	snprintf(name, sizeof(name), "%s_bind", what);
	report_rc(name, bind(fd, &me->sa, sk_len(me)));
	getsockname(fd, &got.sa, &gl);
	report_name(what, "bound_name", &got, gl, me);
	snprintf(name, sizeof(name), "%s_connect", what);
	int rc = connect(fd, &to->sa, sk_len(to));
	report(name, rc < 0 ? ename(errno) : send(fd, "bound", 5, 0) == 5 &&
	       read_full(fd, b, 5) == 0 && !memcmp(b, "bound", 5) ? "ok" : "bad");
	gl = sizeof(got);
	getsockname(fd, &got.sa, &gl);
	report_name(what, "conn_name", &got, gl, me);
	close(fd);
}

/* IPV6_TCLASS and IPV6_UNICAST_HOPS on a connected socket: set, read
 * back; an accepted socket's IPV6_V6ONLY is its v6only listener's. */
static void check_tclass(void)
{
	union sk_addr p6 = peer6_at(0);
	int fd = dial(AF_INET6, -1, &p6), v = 0x20;
	socklen_t vl = sizeof(v);
	if (fd < 0)
		die("tclass connect");
	report_rc("v6_tclass_set", setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &v, sizeof(v)));
	v = -1;
	char res[32];
	int rc = getsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &v, &vl);
	snprintf(res, sizeof(res), "%s %d", rc ? ename(errno) : "ok", v);
	report("v6_tclass_get", res);
	v = 7;
	report_rc("v6_hops_set", setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &v, sizeof(v)));
	v = -1;
	vl = sizeof(v);
	rc = getsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &v, &vl);
	snprintf(res, sizeof(res), "%s %d", rc ? ename(errno) : "ok", v);
	report("v6_hops_get", res);
	close(fd);

	uint16_t port;
	union sk_addr via6 = peer6_at(14);
	int l = listen_on(AF_INET6, 1, 0, &port);
	if (l < 0)
		die("v6only accepted listen");
	rc = dial_back(&via6, port, NULL);
	fd = rc == 0 ? accept(l, NULL, NULL) : -1;
	if (fd >= 0) {
		report_domain("v6only_accepted", fd);
		close(fd);
	} else {
		report("v6only_accepted", rc ? "dial_failed" : ename(errno));
	}
	close(l);
}

/* Our addresses, as the peer sees us over each family (whoami). */
static void learn_ours(void)
{
	union sk_addr to4 = peer4_mapped(13), to6 = peer6_at(13), seen;
	int fd = dial(AF_INET6, -1, &to4);
	if (fd < 0 || read_full(fd, &seen, sizeof(seen)) < 0 || !IN6_IS_ADDR_V4MAPPED(&seen.v6.sin6_addr))
		die("whoami over IPv4");
	memcpy(&our_ip, &seen.v6.sin6_addr.s6_addr[12], 4);
	close(fd);
	fd = dial(AF_INET6, -1, &to6);
	if (fd < 0 || read_full(fd, &our6, sizeof(our6)) < 0 || our6.sa.sa_family != AF_INET6)
		die("whoami over IPv6");
	our6.v6.sin6_port = 0;
	close(fd);
}

void check_dualstack(void)
{
	union sk_addr to6 = peer6_at(13), to4 = peer4_mapped(13);
	union sk_addr via6 = peer6_at(14), via4 = peer4_mapped(14);
	union sk_addr want6 = peer6_at(0), want4 = peer4_mapped(0);  /* any port */
	sk_set_port(&want6, 0);
	sk_set_port(&want4, 0);
	learn_ours();
	check_conn_names("v6_conn", &to6);
	check_conn_names("mapped_conn", &to4);
	check_mapped_bulk();
	check_accept_names("accept_v6", &via6, &want6);
	check_accept_names("accept_mapped", &via4, &want4);
	check_v6only();
	check_listener("listener_dual", AF_INET6, 0);
	check_listener("listener_v6only", AF_INET6, 1);
	check_listener("listener_inet", AF_INET, -1);
	check_same_port("same_port_dual_inet", AF_INET6, 0, AF_INET, -1);
	check_same_port("same_port_v6only_inet", AF_INET6, 1, AF_INET, -1);
	check_same_port("same_port_inet_dual", AF_INET, -1, AF_INET6, 0);
	check_same_port("same_port_inet_v6only", AF_INET, -1, AF_INET6, 1);
	check_same_port("same_port_dual_v6only", AF_INET6, 0, AF_INET6, 1);
	union sk_addr me4 = sk_mapped(our_ip, 0), p4 = peer4_mapped(0), p6 = peer6_at(0);
	check_same_port_addr("same_port_dual_v6addr", AF_INET6, 0, &our6);
	check_same_port_addr("same_port_v6only_v6addr", AF_INET6, 1, &our6);
	check_same_port_addr("same_port_v6only_mapped", AF_INET6, 1, &me4);
	check_same_port_addr("same_port_inet_mapped", AF_INET, -1, &me4);
	check_bad_addresses();
	check_bound_connect("bound_mapped", &me4, &p4);
	check_bound_connect("bound_v6", &our6, &p6);
	check_tclass();
	check_udp_dualstack(our_ip, &our6);
}
