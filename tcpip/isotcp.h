/*
 * tcpip/: isostack's adaptation of the lwIP core. This header is internal to
 * the project (the daemon and the tests include it); it is not an ABI.
 */
#ifndef ISOTCP_H
#define ISOTCP_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Make the calling thread the owner of all lwIP state. Call once, before
 * lwip_init(), on the thread that will run the stack; any lwIP API call from
 * another thread then aborts (LWIP_ASSERT_CORE_LOCKED).
 */
void isotcp_owner_claim(void);
void isotcp_owner_release(void);

/*
 * Entries of lwIP's memp pools in use (less the cyclic timers lwip_init()
 * registers for good), summed over every pool,
 * plus bytes in use on lwIP's heap. Zero once every pcb is closed and every
 * pbuf freed: the tests' leak check.
 */
uint32_t isotcp_memp_in_use(void);
uint32_t isotcp_heap_in_use(void);

/*
 * The Iso-Lock evaluation variant (arch/isolock.h): from now on take the
 * locks the design removed.  Call before the first packet.
 */
void isotcp_lock_variant_set(bool on);

/*
 * lwIP's TCP timers a slice at a time (our lwIP patch 0009, TCP_TMR_BUDGET
 * in lwipopts.h): a timer tick visits at most that many pcbs; the main loop
 * calls this on every pass to go on with a walk a tick left unfinished.
 * Returns true if there was one; isotcp_timers_pending() says whether there
 * is one. isotcp_timers_late() counts the ticks that found the last one's
 * walk still unfinished.
 */
bool isotcp_timers_pending(void);
bool isotcp_timers_continue(void);
uint32_t isotcp_timers_late(void);

#endif /* ISOTCP_H */
