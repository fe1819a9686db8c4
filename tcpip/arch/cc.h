/*
 * lwIP architecture port for isostack: Linux, gcc or clang, x86_64.
 *
 * Diagnostics and assertion failures go to tcpip/port.c, which prints them
 * on stderr with the isostack prefix; an lwIP assertion is fatal, since it
 * means the stack's state can no longer be trusted.
 */
#ifndef ISOSTACK_ARCH_CC_H
#define ISOSTACK_ARCH_CC_H

#include <endian.h>     /* BYTE_ORDER, LITTLE_ENDIAN */
#include <stdint.h>
#include <stdlib.h>

void isotcp_diag(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
void isotcp_assert_fail(const char *msg, const char *file, int line)
	__attribute__((noreturn));

#define LWIP_PLATFORM_DIAG(x)        do { isotcp_diag x; } while (0)
#define LWIP_PLATFORM_ASSERT(x)      isotcp_assert_fail((x), __FILE__, __LINE__)

/* lwIP's critical sections: empty unless the Iso-Lock variant runs. */
#include "isolock.h"

/* glibc's byte swapping compiles to bswap. */
#define lwip_htons(x)                __builtin_bswap16(x)
#define lwip_htonl(x)                __builtin_bswap32(x)

#endif /* ISOSTACK_ARCH_CC_H */
