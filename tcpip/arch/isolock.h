/*
 * The Iso-Lock variant (paper 5.5; daemon key variant=lock): locks the
 * design removed, put back for its evaluation only.  The stack is one
 * thread, so every lock here is uncontended; what it costs is the atomic
 * exchange (a full barrier on x86) on every acquisition, which is the
 * paper's point.  Where they sit, as in Iso-Lock: the device's receive
 * handler (one rte_eth_rx_burst), its transmit handler (one frame handed
 * to the netif) and lwIP's pool and pbuf reference operations (its
 * SYS_ARCH_PROTECT, compiled to nothing in the default variants but one
 * load and a not-taken branch).
 */
#ifndef ISOSTACK_ARCH_ISOLOCK_H
#define ISOSTACK_ARCH_ISOLOCK_H

#include <stdbool.h>
#include <stdint.h>

extern bool isotcp_lock_variant;    /* set once at start (isotcp_lock_variant_set) */

struct isotcp_lock {
	int held;
	unsigned depth;                 /* nesting on the one thread */
};

extern struct isotcp_lock isotcp_pool_lock;
extern uint64_t isotcp_lock_takes;  /* acquisitions, all locks (isostat loop.lock_takes) */

static inline void isotcp_lock_take(struct isotcp_lock *l)
{
	if (l->depth++ != 0)
		return;
	isotcp_lock_takes++;
	while (__atomic_exchange_n(&l->held, 1, __ATOMIC_ACQUIRE) != 0) {
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#endif
	}
}

static inline void isotcp_lock_drop(struct isotcp_lock *l)
{
	if (--l->depth != 0)
		return;
	__atomic_store_n(&l->held, 0, __ATOMIC_RELEASE);
}

/* lwIP's critical sections (memp.c, pbuf.c, mem.c, netif.c). */
static inline int isotcp_prot_enter(void)
{
	if (__builtin_expect(!isotcp_lock_variant, 1))
		return 0;
	isotcp_lock_take(&isotcp_pool_lock);
	return 1;
}

static inline void isotcp_prot_exit(int taken)
{
	if (__builtin_expect(taken, 0))
		isotcp_lock_drop(&isotcp_pool_lock);
}

#define SYS_ARCH_DECL_PROTECT(lev)  int lev
#define SYS_ARCH_PROTECT(lev)       ((lev) = isotcp_prot_enter())
#define SYS_ARCH_UNPROTECT(lev)     isotcp_prot_exit(lev)

#endif /* ISOSTACK_ARCH_ISOLOCK_H */
