/*
 * The unit tests' lwIP test bed (test_tcpip.c, test_tcptmr.c, test_tcptw.c):
 * two netifs in one lwIP instance joined by an in-process virtual link,
 * lwIP's clock (sys_now) faked and moved by the test loop, and "many": a
 * listener and up to MANY_CONNS client connections to it, with callbacks
 * that keep mc's tables current.
 *
 * Each netif's output clones the IP packet onto the other side's inbox, and
 * the test loop delivers the inboxes, runs lwIP's NO_SYS timers (and goes on
 * with a walk a budgeted timer tick left unfinished, as the daemon's loop
 * does) and moves the fake clock forward, jumping straight to the next
 * timeout when the link is idle. The netifs are point-to-point (no broadcast
 * flag, the peer as gateway), so each one routes to the other.
 */
#ifndef ISOSTACK_TEST_VLINK_H
#define ISOSTACK_TEST_VLINK_H

#include <stdbool.h>

#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/tcp.h"

#define SERVER_PORT      5001
#define INBOX_SLOTS      4096
#define MAX_STEPS        2000000

extern u32_t fake_now_ms;

struct side {
	struct netif netif;
	struct side *peer;
	struct pbuf *inbox[INBOX_SLOTS];
	unsigned int head, tail;        /* tail - head = frames waiting */
};

struct link {
	struct side a, b;
	unsigned int loss_permille;
	uint64_t loss_state;
	unsigned long sent, dropped;
	/* The test's own loss: true drops this IP packet (NULL: none). */
	bool (*drop)(struct pbuf *p);
};

extern struct link vl;

unsigned int link_pump(void);                  /* frames delivered */
void link_up(unsigned int loss_permille);
void link_down(void);
void loop_step(void);

#define MANY_CONNS 8
#define MANY_PORT  (SERVER_PORT + 1)

struct many {
	struct tcp_pcb *client[MANY_CONNS], *server[MANY_CONNS];
	u16_t client_port[MANY_CONNS];
	int accepted, connected, errors;
};

extern struct many mc;

/* The link up and a listener on MANY_PORT that accepts into mc. */
struct tcp_pcb *many_listen(void);
struct tcp_pcb *many_connect(int i);
/* Connection i, up to its accept. */
void delayed_ack_pair(int i);
/* Closes the listener once the test closed its clients, runs the loop
 * until every pcb is gone (TIME-WAIT too), takes the link down. */
void many_finish(struct tcp_pcb *listener);
/* The loop for n slow timer intervals of fake time. */
void slow_ticks(int n);

int check_pools_empty(void **state);
int group_setup(void **state);

#endif /* ISOSTACK_TEST_VLINK_H */
