/*
 * What TCP's (reuseport.c) and UDP's (reuseport_udp.c) SO_REUSEPORT
 * groups share: which bound addresses take the same port, a group's
 * member table and random seed, and the 4-tuple hash that picks a
 * member, as Linux's
 * reuseport_select_sock does (one flow lands on one member while the
 * group does not change).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>

#include "internal.h"

bool isod_rp_addr_overlap(const ip_addr_t *a, const ip_addr_t *b)
{
	/* a dual-stack [::] (IPADDR_TYPE_ANY) takes the port in both versions */
	if (IP_IS_ANY_TYPE_VAL(*a) || IP_IS_ANY_TYPE_VAL(*b))
		return true;
	return IP_IS_V6_VAL(*a) == IP_IS_V6_VAL(*b) &&
	       (ip_addr_isany(a) || ip_addr_isany(b) || ip_addr_cmp(a, b));
}

int isod_rp_room(struct isod_sock ***m, uint32_t n, uint32_t *cap)
{
	if (n == *cap) {
		uint32_t c = *cap ? 2 * *cap : 4;
		struct isod_sock **a = realloc(*m, c * sizeof(*a));

		if (a == NULL)
			return -ENOBUFS;
		*m = a;
		*cap = c;
	}
	return 0;
}

uint32_t isod_rp_seed(const void *salt)
{
	uint32_t seed;

	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed))
		seed = (uint32_t)time(NULL) ^ (uint32_t)(uintptr_t)salt;
	return seed;
}

/* murmur3's mixing step */
static uint32_t mix(uint32_t h, uint32_t k)
{
	k *= 0xcc9e2d51u;
	k = k << 15 | k >> 17;
	k *= 0x1b873593u;
	h ^= k;
	h = h << 13 | h >> 19;
	return h * 5 + 0xe6546b64u;
}

static uint32_t addr_hash(uint32_t h, const ip_addr_t *ip)
{
	if (IP_IS_V6(ip)) {
		for (int i = 0; i < 4; i++)
			h = mix(h, ip_2_ip6(ip)->addr[i]);
		return h;
	}
	return mix(h, ip4_addr_get_u32(ip_2_ip4(ip)));
}

static uint32_t tuple_hash(uint32_t seed, const ip_addr_t *lip, u16_t lport,
			   const ip_addr_t *rip, u16_t rport)
{
	uint32_t h = addr_hash(addr_hash(seed, rip), lip);

	h = mix(h, (uint32_t)rport << 16 | lport);
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	return h ^ h >> 16;
}

uint32_t isod_rp_slot(uint32_t seed, uint32_t n, const ip_addr_t *lip, u16_t lport,
		      const ip_addr_t *rip, u16_t rport)
{
	/* Linux's reciprocal_scale: the hash's high bits pick the member */
	return (uint32_t)(((uint64_t)tuple_hash(seed, lip, lport, rip, rport) * n) >> 32);
}
