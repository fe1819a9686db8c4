/*
 * Fuzz target: what an application controls in its memory and through its
 * commands, as the stack core sees it.  Each input is one application's
 * life: it attaches (a fresh segment), runs the input's operations against
 * the back-end and hangs up; the back-end must then let it go.
 *
 * Operations (first byte % OP_COUNT, then their bytes):
 *   OP_CMD      sock u8, then 56 bytes of a command (opcode, flags, sock,
 *               cookie, args: anything) submitted on ring sock % max
 *   OP_SOCKET   a well-formed SOCKET(AF_INET, type u8 & 1 ? STREAM : DGRAM)
 *   OP_WORD     offset u32, value u32: one aligned word of the base segment
 *               (ring indices, doorbells, directory, counters)
 *   OP_BYTES    offset u32, length u8, bytes: anywhere in the base segment
 *   OP_BELL     the doorbell fd rung (eventfd write)
 *   OP_POLL     n u8: n % 16 + 1 passes of the loop
 *   OP_TX       sock u8, length u8: bytes into that socket's TX ring (through
 *               the application library) and a SEND
 *   OP_RX       sock u8: drain the socket's statuses and RX ring, and a RECV
 * Well-formed helpers (OP_SOCKET, OP_TX: a connected pair needs a BIND,
 * LISTEN, CONNECT to 198.18.0.1 and ACCEPT, all reachable by OP_CMD) make
 * the state that the raw writes then break.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_be.h"
#include "isostack/shm_abi.h"

enum { OP_CMD, OP_SOCKET, OP_WORD, OP_BYTES, OP_BELL, OP_POLL, OP_TX, OP_RX, OP_COUNT };

#define MAX_OPS 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct cursor {
	const uint8_t *p;
	size_t n;
};

static uint32_t take(struct cursor *c, unsigned bytes)
{
	uint32_t v = 0;

	for (unsigned i = 0; i < bytes && c->n > 0; i++, c->n--)
		v |= (uint32_t)*c->p++ << (8 * i);
	return v;
}

static void op_cmd(struct fz_app *a, struct cursor *c)
{
	uint32_t sock = take(c, 1) % FZ_MAX_SOCKETS;
	struct isostack_shm_cmd cmd;
	size_t k = c->n < sizeof(cmd) - 8 ? c->n : sizeof(cmd) - 8;

	memset(&cmd, 0, sizeof(cmd));
	memcpy(&cmd, c->p, k);   /* opcode, flags, sock, cookie, arg[0..4] */
	c->p += k;
	c->n -= k;
	isoshm_app_submit(a->shm, sock, &cmd, 1);
}

static void op_socket(struct fz_app *a, struct cursor *c)
{
	struct isostack_shm_cmd cmd = {
		.opcode = ISOSTACK_SHM_OP_SOCKET, .cookie = 1,
		.arg = { AF_INET, (take(c, 1) & 1) ? SOCK_STREAM : SOCK_DGRAM, 0 },
	};

	isoshm_app_submit(a->shm, 0, &cmd, 1);
}

static void op_word(struct fz_app *a, struct cursor *c)
{
	uint64_t size = isoshm_app_header(a->shm)->segment_size;
	uint64_t off = (take(c, 4) % size) & ~UINT64_C(3);
	uint32_t v = take(c, 4);

	memcpy((uint8_t *)isoshm_app_base(a->shm) + off, &v, sizeof(v));
}

static void op_bytes(struct fz_app *a, struct cursor *c)
{
	uint64_t size = isoshm_app_header(a->shm)->segment_size;
	uint64_t off = take(c, 4) % size;
	size_t len = take(c, 1);

	if (len > c->n)
		len = c->n;
	if (len > size - off)
		len = (size_t)(size - off);
	memcpy((uint8_t *)isoshm_app_base(a->shm) + off, c->p, len);
	c->p += len;
	c->n -= len;
}

static void op_tx(struct fz_app *a, struct cursor *c)
{
	uint32_t sock = take(c, 1) % FZ_MAX_SOCKETS;
	uint32_t len = take(c, 1) * 64;
	static uint8_t buf[255 * 64];
	struct isostack_shm_cmd cmd = { .opcode = ISOSTACK_SHM_OP_SEND, .sock = sock };

	memset(buf, 'x', len);
	if (sock == 0 || isoshm_app_tx_write(a->shm, sock, buf, len) <= 0)
		return;
	isoshm_app_submit(a->shm, sock, &cmd, 1);
}

static void op_rx(struct fz_app *a, struct cursor *c)
{
	uint32_t sock = take(c, 1) % FZ_MAX_SOCKETS;
	struct isostack_shm_status st[8];
	static uint8_t buf[65536];
	struct isostack_shm_cmd cmd = { .opcode = ISOSTACK_SHM_OP_RECV, .sock = sock };

	while (isoshm_app_recv_status(a->shm, sock, st, 8) > 0)
		;
	if (sock != 0 && isoshm_app_rx_read(a->shm, sock, buf, sizeof(buf)) > 0)
		isoshm_app_submit(a->shm, sock, &cmd, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct cursor c = { data, size };
	struct fz_app a;
	uint64_t one = 1;
	unsigned ops = 0;

	if (!ready) {
		fz_setup();
		ready = 1;
	}
	if (fz_attach(&a) != 0)
		abort();        /* the previous input's application was let go */
	while (c.n > 0 && ops++ < MAX_OPS) {
		switch (take(&c, 1) % OP_COUNT) {
		case OP_CMD: op_cmd(&a, &c); break;
		case OP_SOCKET: op_socket(&a, &c); break;
		case OP_WORD: op_word(&a, &c); break;
		case OP_BYTES: op_bytes(&a, &c); break;
		case OP_BELL:
			if (write(a.doorbell, &one, sizeof(one)) < 0)
				abort();
			break;
		case OP_POLL: fz_passes(take(&c, 1) % 16 + 1); break;
		case OP_TX: op_tx(&a, &c); break;
		case OP_RX: op_rx(&a, &c); break;
		}
	}
	fz_passes(4);
	fz_detach(&a);
	return 0;
}
