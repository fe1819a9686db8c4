/*
 * lwIP's clock, sys_now(), in milliseconds from the TSC.
 *
 * The dispatcher calls sys_check_timeouts() on every pass through its
 * loop, and lwIP reads sys_now() for every timer and TCP timestamp, so the
 * clock must be cheap: one rdtsc and one division, no system call. The TSC
 * is constant and non-stop on every CPU DPDK supports for this (DPDK's own
 * timers rely on it); rte_get_tsc_hz() gives its rate once EAL is up.
 */
#include "netif_dpdk.h"

#include <stdint.h>

#include <rte_cycles.h>

#include "lwip/arch.h"
#include "lwip/sys.h"

static uint64_t clock_tsc0;
static uint64_t clock_tsc_per_ms = 1;
static uint64_t clock_tsc_per_us = 1;

void isotcp_clock_init(void)
{
	uint64_t hz = rte_get_tsc_hz();

	clock_tsc0 = rte_get_tsc_cycles();
	clock_tsc_per_ms = hz / 1000 ? hz / 1000 : 1;
	clock_tsc_per_us = hz / 1000000 ? hz / 1000000 : 1;
}

uint64_t isotcp_clock_tsc_per_ms(void)
{
	return clock_tsc_per_ms;
}

uint64_t isotcp_clock_tsc_per_us(void)
{
	return clock_tsc_per_us;
}

/* Wraps after 49.7 days, which lwIP's timer arithmetic expects. */
u32_t sys_now(void)
{
	return (u32_t)((rte_get_tsc_cycles() - clock_tsc0) / clock_tsc_per_ms);
}
