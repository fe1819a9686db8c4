/*
 * Half-open connections of a listener (SYN flood): at most
 * isod_synq_cap() of them live at once.
 *
 * lwIP keeps every SYN it receives as a pcb in SYN_RCVD until the
 * handshake completes or TCP_SYN_RCVD_TIMEOUT (20 s) passes; its own
 * bound (TCP_LISTEN_BACKLOG, a u8) is off (lwipopts.h), so a flood of
 * spoofed SYNs held a pcb each until the pool (MEMP_NUM_TCP_PCB) ran
 * out, and then no SYN got a pcb: the listener stopped serving for the
 * 20 s it took to drain.  Linux bounds its SYN queue by the listen()
 * backlog and answers past it with SYN cookies, which cost no memory.
 * We have no cookies; instead, past the bound the oldest half-open
 * connection of the listener is dropped (no RST: its source may be
 * spoofed) to make room for the new one.  A real client's handshake
 * takes one round trip, so it completes unless the flood brings more
 * than the bound of SYNs within that round trip.
 *
 * The queue is a ring of the listener's last `cap` passive opens, kept
 * as the listener pcb's ext arg (freed with it).  Each half-open pcb
 * points back at its entry (its own ext arg, with a destroy callback): an
 * entry is cleared when its pcb is freed (reset, timed out, evicted) or
 * accepted (isod_synq_accepted), so a non-empty entry is always a live
 * half-open pcb of this listener.
 */
#include <stdlib.h>

#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"

#include "internal.h"

struct isod_synq {
	uint32_t cap, head, n;
	struct tcp_pcb *e[];      /* NULL: that connection moved on */
};

uint32_t isod_synq_cap(uint32_t backlog)
{
	return backlog + 1 > ISOD_SYNQ_MIN ? backlog + 1 : ISOD_SYNQ_MIN;
}

/* A half-open pcb was freed: its entry goes empty. */
static void synq_child_gone(u8_t id, void *data)
{
	struct tcp_pcb **e = data;

	(void)id;
	if (e != NULL)
		*e = NULL;
}

static const struct tcp_ext_arg_callbacks synq_child_cbs = {
	.destroy = synq_child_gone,
};

err_t isod_synq_admit(struct isod_backend *be, struct tcp_pcb_listen *lpcb, u8_t id,
		      struct tcp_pcb *npcb, uint32_t cap)
{
	struct isod_synq *q = tcp_ext_arg_get((const struct tcp_pcb *)lpcb, id);
	struct tcp_pcb **e;

	if (q == NULL) {
		q = calloc(1, sizeof(*q) + cap * sizeof(q->e[0]));
		if (q == NULL)
			return ERR_MEM;       /* the SYN is dropped, as with no pcb */
		q->cap = cap;
		tcp_ext_arg_set((struct tcp_pcb *)lpcb, id, q);
	}
	if (q->n == q->cap) {
		e = &q->e[q->head];
		if (*e != NULL) {
			tcp_abandon(*e, 0);   /* its destroy callback clears *e */
			be->st.syn_evicted++;
		}
		q->head = (q->head + 1) % q->cap;
		q->n--;
	}
	e = &q->e[(q->head + q->n) % q->cap];
	*e = npcb;
	q->n++;
	tcp_ext_arg_set_callbacks(npcb, id, &synq_child_cbs);
	tcp_ext_arg_set(npcb, id, e);
	return ERR_OK;
}

void isod_synq_accepted(struct tcp_pcb *pcb, u8_t id)
{
	struct tcp_pcb **e = tcp_ext_arg_get(pcb, id);

	if (e != NULL) {
		*e = NULL;
		tcp_ext_arg_set(pcb, id, NULL);
	}
}

void isod_synq_free(u8_t id, void *data)
{
	struct isod_synq *q = data;

	if (q == NULL)
		return;
	/* Half-open children outlive their listener (lwIP drops them
	 * later): they must not point into the freed ring. */
	for (uint32_t i = 0; i < q->cap; i++)
		if (q->e[i] != NULL)
			tcp_ext_arg_set(q->e[i], id, NULL);
	free(q);
}
