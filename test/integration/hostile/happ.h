/*
 * happ: a test application that speaks the control protocol and the
 * shared-memory ABI itself, as the shim does (shm/ library calls for the
 * fds and the header check), but writes its rings by hand, so that it can
 * also write them wrongly.  Used by hostile_app (abuse) and iso_probe
 * (isolation).  Not the shim: nothing here is linked into libisosock.
 *
 * Every ring word an application owns (cmd_prod, status_cons, rx_cons,
 * doorbell prod) is read back from the segment rather than kept
 * privately: this application is the only writer of those words, and a
 * word it scribbled on is meant to stay scribbled.
 */
#ifndef HAPP_H
#define HAPP_H

#include <stdbool.h>
#include <stdint.h>

#include "isostack/shm_abi.h"
#include "isoshm.h"

struct happ {
	int ctl;                 /* SEQPACKET control connection */
	int wake;                /* our wake eventfd (ATTACH) */
	int bell;                /* the doorbell fd the daemon gave us */
	int seg_fd;              /* the segment memfd (owned by shm) */
	struct isoshm_app *shm;
	const struct isostack_shm_header *h;
	uint8_t *base;
	uint32_t app_id;
	uint64_t cookie;
};

/* Connects to the control socket at path and attaches.  Returns 0 or
 * -errno (connect's, or the ATTACH reply's status). */
int happ_attach(struct happ *a, const char *path, const char *comm);
void happ_detach(struct happ *a);

struct isostack_shm_sock *happ_sock(struct happ *a, uint32_t id);
struct isostack_shm_doorbell *happ_db(struct happ *a, uint32_t db);

/* Puts cmd on id's command ring (cmd.sock left as the caller set it).
 * Returns 1, or 0 when the ring is full. */
int happ_cmd_push(struct happ *a, uint32_t id, const struct isostack_shm_cmd *cmd);
/* Appends id to doorbell db's ring, with no repeat suppression.  Returns
 * 1, or 0 when that doorbell ring is full. */
int happ_bell(struct happ *a, uint32_t db, uint32_t id);
/* Takes every status waiting on id; calls fn on each (NULL: none).
 * Returns how many. */
unsigned happ_status_drain(struct happ *a, uint32_t id,
			   void (*fn)(void *arg, const struct isostack_shm_status *st),
			   void *arg);
/* SOCKET(AF_INET, type) on id 0 and its reply, within timeout_ms.
 * Returns the new id or -errno (-ETIMEDOUT when no reply came). */
int happ_socket(struct happ *a, int type, int timeout_ms);
/* One command on id and its reply (statuses with other cookies are
 * dropped), within timeout_ms.  Returns the reply's result, or
 * -ETIMEDOUT. */
int64_t happ_call(struct happ *a, uint32_t id, struct isostack_shm_cmd *cmd, int timeout_ms);
/* CTL_EXTENT for extent id: the fd (the caller closes it), or -errno
 * (the reply's status, -ENOENT for an id that is not ours). */
int happ_extent(struct happ *a, uint32_t id, uint64_t *off, uint64_t *size);
/* The daemon hung up on us (it dropped the application).  Waits up to
 * timeout_ms. */
bool happ_hung_up(struct happ *a, int timeout_ms);
/* Monotonic milliseconds. */
int64_t happ_now_ms(void);

#endif /* HAPP_H */
