/*
 * Diagnostic services on raw lwIP TCP callbacks: echo (port 7) returns
 * every byte it receives, in order; discard (port 9) consumes them.
 *
 * Echo is the model of a parked command (paper 4.4). The recv callback only
 * queues the pbuf and posts ISOD_EV_DATA; the connection's resume function,
 * run by the dispatcher, copies as much of the queue into the send buffer
 * as fits. When the send buffer is full it returns with the rest still
 * queued: the connection is parked, and tcp_sent (ACKs freed space) posts
 * ISOD_EV_SENT to resume it. The receive window is reopened (tcp_recved)
 * only for bytes moved into the send buffer, so a peer that sends faster
 * than it reads is slowed by TCP flow control, and the daemon holds at most
 * one receive window per connection.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lwip/ip_addr.h"
#include "lwip/pbuf.h"
#include "lwip/tcp.h"

#define ECHO_PORT               7
#define DISCARD_PORT            9

struct echo_conn {
	struct isod_park park;          /* first: resume gets &conn->park */
	struct isod_echo *svc;
	struct tcp_pcb *pcb;            /* NULL once lwIP has freed it */
	struct pbuf *rxq, *rxq_tail;    /* received, not yet echoed, as a list */
	u16_t rxq_off;                  /* bytes of rxq already echoed */
	bool peer_closed;
	struct echo_conn *prev, *next;  /* svc->conns, for shutdown */
};

struct isod_echo {
	struct isod_loop *loop;
	struct tcp_pcb *echo_listen, *discard_listen;
	struct tcp_pcb *echo6_listen, *discard6_listen;  /* NULL: no IPv6 address */
	struct echo_conn *conns;
	uint64_t accepted, closed, aborted;
};

static err_t echo_sent(void *arg, struct tcp_pcb *pcb, u16_t len);
static void echo_err(void *arg, err_t err);

static void conn_free(struct echo_conn *c)
{
	struct isod_echo *svc = c->svc;

	while (c->rxq != NULL) {
		struct pbuf *p = c->rxq;

		c->rxq = p->next;
		p->next = NULL;
		pbuf_free(p);
	}
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		svc->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	free(c);
}

static void conn_detach(struct tcp_pcb *pcb)
{
	tcp_arg(pcb, NULL);
	tcp_recv(pcb, NULL);
	tcp_sent(pcb, NULL);
	tcp_err(pcb, NULL);
}

/* Pop the head pbuf of the queue (each list node is freed on its own). */
static void rxq_pop(struct echo_conn *c)
{
	struct pbuf *p = c->rxq;

	c->rxq = p->next;
	if (c->rxq == NULL)
		c->rxq_tail = NULL;
	p->next = NULL;
	p->tot_len = p->len;
	pbuf_free(p);
	c->rxq_off = 0;
}

/* Move queued bytes into the send buffer; returns bytes moved or -1 if the
 * connection had to be aborted. */
static long echo_push(struct echo_conn *c)
{
	struct tcp_pcb *pcb = c->pcb;
	long moved = 0;

	while (c->rxq != NULL) {
		u16_t room = tcp_sndbuf(pcb);
		u16_t n = (u16_t)(c->rxq->len - c->rxq_off);
		err_t err;

		if (n == 0) {
			rxq_pop(c);
			continue;
		}
		if (room == 0 || tcp_sndqueuelen(pcb) >= TCP_SND_QUEUELEN - 2)
			break;                  /* parked until tcp_sent */
		if (n > room)
			n = room;
		err = tcp_write(pcb, (const char *)c->rxq->payload + c->rxq_off, n,
				TCP_WRITE_FLAG_COPY |
				(c->rxq->next != NULL || n < c->rxq->len - c->rxq_off
				 ? TCP_WRITE_FLAG_MORE : 0));
		if (err == ERR_MEM)
			break;                  /* no segment or heap: parked too */
		if (err != ERR_OK) {
			c->svc->aborted++;
			conn_detach(pcb);
			tcp_abort(pcb);
			c->pcb = NULL;
			return -1;
		}
		c->rxq_off = (u16_t)(c->rxq_off + n);
		moved += n;
		if (c->rxq_off == c->rxq->len)
			rxq_pop(c);
	}
	for (long left = moved; left > 0; left -= 0xffff)
		tcp_recved(pcb, (u16_t)(left > 0xffff ? 0xffff : left));
	if (moved > 0)
		tcp_output(pcb);
	return moved;
}

static void echo_resume(struct isod_park *park, uint32_t events)
{
	struct echo_conn *c = (struct echo_conn *)park;

	if ((events & ISOD_EV_ERR) != 0 || c->pcb == NULL) {
		c->svc->aborted += (events & ISOD_EV_ERR) != 0;
		conn_free(c);
		return;
	}
	if (echo_push(c) < 0) {
		conn_free(c);
		return;
	}
	if (c->rxq == NULL && c->peer_closed) {
		/* Everything echoed: close our side after the queued data. */
		conn_detach(c->pcb);
		if (tcp_close(c->pcb) != ERR_OK) {
			/* No memory for the FIN: the pcb is still ours; try
			 * again when the next ACK frees some. */
			tcp_arg(c->pcb, c);
			tcp_sent(c->pcb, echo_sent);
			tcp_err(c->pcb, echo_err);
			return;
		}
		c->svc->closed++;
		c->pcb = NULL;
		conn_free(c);
	}
}

static err_t echo_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
	struct echo_conn *c = arg;
	struct pbuf *last;

	(void)pcb;
	(void)err;
	if (c == NULL) {        /* after our close: nobody reads any more */
		if (p != NULL)
			pbuf_free(p);
		return ERR_OK;
	}
	if (p == NULL) {
		c->peer_closed = true;
		isod_event_post(c->svc->loop, &c->park, ISOD_EV_CLOSED);
		return ERR_OK;
	}
	for (last = p; last->next != NULL; last = last->next)
		;
	if (c->rxq_tail != NULL)
		c->rxq_tail->next = p;
	else
		c->rxq = p;
	c->rxq_tail = last;
	isod_event_post(c->svc->loop, &c->park, ISOD_EV_DATA);
	return ERR_OK;
}

static err_t echo_sent(void *arg, struct tcp_pcb *pcb, u16_t len)
{
	struct echo_conn *c = arg;

	(void)pcb;
	(void)len;
	if (c != NULL && (c->rxq != NULL || c->peer_closed))
		isod_event_post(c->svc->loop, &c->park, ISOD_EV_SENT);
	return ERR_OK;
}

static void echo_err(void *arg, err_t err)
{
	struct echo_conn *c = arg;

	(void)err;
	if (c == NULL)
		return;
	c->pcb = NULL;          /* lwIP has freed it */
	isod_event_post(c->svc->loop, &c->park, ISOD_EV_ERR);
}

static err_t echo_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
	struct isod_echo *svc = arg;
	struct echo_conn *c;

	if (err != ERR_OK || pcb == NULL)
		return ERR_VAL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return ERR_MEM;         /* lwIP aborts the new connection */
	isod_park_init(&c->park, echo_resume);
	c->svc = svc;
	c->pcb = pcb;
	c->next = svc->conns;
	if (svc->conns != NULL)
		svc->conns->prev = c;
	svc->conns = c;
	svc->accepted++;
	tcp_nagle_disable(pcb);
	tcp_arg(pcb, c);
	tcp_recv(pcb, echo_recv);
	tcp_sent(pcb, echo_sent);
	tcp_err(pcb, echo_err);
	return ERR_OK;
}

static err_t discard_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
	(void)arg;
	(void)err;
	if (p != NULL) {
		tcp_recved(pcb, p->tot_len);
		pbuf_free(p);
		return ERR_OK;
	}
	tcp_recv(pcb, NULL);
	if (tcp_close(pcb) != ERR_OK) {
		tcp_abort(pcb);
		return ERR_ABRT;
	}
	return ERR_OK;
}

static err_t discard_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
	(void)arg;
	if (err != ERR_OK || pcb == NULL)
		return ERR_VAL;
	tcp_recv(pcb, discard_recv);
	return ERR_OK;
}

static struct tcp_pcb *listen_on(const ip_addr_t *addr, u16_t port,
				 tcp_accept_fn accept, void *arg, int *ret)
{
	struct tcp_pcb *pcb = tcp_new(), *lpcb;
	err_t err;

	if (pcb == NULL) {
		*ret = -ENOMEM;
		return NULL;
	}
	ip_set_option(pcb, SOF_REUSEADDR);
	err = tcp_bind(pcb, addr, port);
	if (err != ERR_OK) {
		tcp_close(pcb);
		*ret = err == ERR_USE ? -EADDRINUSE : -EINVAL;
		return NULL;
	}
	lpcb = tcp_listen_with_backlog(pcb, TCP_DEFAULT_LISTEN_BACKLOG);
	if (lpcb == NULL) {
		tcp_close(pcb);
		*ret = -ENOMEM;
		return NULL;
	}
	tcp_arg(lpcb, arg);
	tcp_accept(lpcb, accept);
	return lpcb;
}

/* Echo and discard on one address: both listeners, or neither. */
static int listen_pair(struct isod_echo *svc, const ip_addr_t *ip,
		       struct tcp_pcb **echo, struct tcp_pcb **discard)
{
	int ret = 0;

	*echo = listen_on(ip, ECHO_PORT, echo_accept, svc, &ret);
	if (*echo == NULL)
		return ret;
	*discard = listen_on(ip, DISCARD_PORT, discard_accept, svc, &ret);
	if (*discard == NULL) {
		tcp_close(*echo);
		*echo = NULL;
		return ret;
	}
	return 0;
}

int isod_echo_start(struct isod_loop *loop, uint32_t addr, const uint8_t *addr6,
		    struct isod_echo **out)
{
	struct isod_echo *svc = calloc(1, sizeof(*svc));
	ip_addr_t ip;
	int ret = 0;

	if (svc == NULL)
		return -ENOMEM;
	svc->loop = loop;
	ip_addr_set_ip4_u32_val(ip, addr);
	ret = listen_pair(svc, &ip, &svc->echo_listen, &svc->discard_listen);
	if (ret != 0)
		goto err_free;
	if (addr6 != NULL) {
		ip_addr_t ip6 = IPADDR6_INIT(0, 0, 0, 0);

		memcpy(ip_2_ip6(&ip6)->addr, addr6, 16);
		ret = listen_pair(svc, &ip6, &svc->echo6_listen, &svc->discard6_listen);
		if (ret != 0)
			goto err_echo;
	}
	*out = svc;
	return 0;

err_echo:
	tcp_close(svc->echo_listen);
	tcp_close(svc->discard_listen);
err_free:
	free(svc);
	return ret;
}

void isod_echo_stop(struct isod_echo *svc)
{
	if (svc == NULL)
		return;
	tcp_close(svc->echo_listen);
	tcp_close(svc->discard_listen);
	if (svc->echo6_listen != NULL) {
		tcp_close(svc->echo6_listen);
		tcp_close(svc->discard6_listen);
	}
	/* The loop has stopped: nothing will resume a parked connection. */
	isod_loop_drop_ready(svc->loop);
	while (svc->conns != NULL) {
		struct echo_conn *c = svc->conns;

		if (c->pcb != NULL) {
			conn_detach(c->pcb);
			tcp_abort(c->pcb);
			c->pcb = NULL;
		}
		conn_free(c);
	}
	ISOD_LOG(INFO, "echo: %" PRIu64 " connections accepted, %" PRIu64 " closed, %"
		 PRIu64 " aborted", svc->accepted, svc->closed, svc->aborted);
	free(svc);
}
