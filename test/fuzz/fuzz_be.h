/*
 * The fuzz targets' back-end (fuzz_backend.c, fuzz_ctl.c): the real socket
 * back-end on lwIP over a loopback netif (198.18.0.1, what it sends comes
 * back in), driven by hand from the fuzzer's thread, with lwIP's clock
 * faked so timeouts pass without waiting.  Applications are hand-made, as
 * in test/unit/backend/test_budget.c.
 */
#ifndef ISOSTACK_FUZZ_BE_H
#define ISOSTACK_FUZZ_BE_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "isoshm.h"

#define FZ_MAX_SOCKETS 8
#define FZ_CMD_ENTRIES 32

struct fz_app {
	int ctl, wake, doorbell;
	struct isoshm_app *shm;
};

extern struct isod_backend *fz_be;
extern char fz_ctl_path[108];

/* Once per process: lwIP, the netif and the back-end. */
void fz_setup(void);
/* n passes of the loop: loopback frames, timers, the back-end. */
void fz_passes(unsigned n);
/* Attach through the control socket; 0 or -1. */
int fz_attach(struct fz_app *a);
/* Hang up and serve until the back-end has no application left; a
 * back-end that keeps one (a leak, or a hang) aborts. */
void fz_detach(struct fz_app *a);
/* After an input: every application gone, timers run out; pools back. */
void fz_settle(void);

#endif
