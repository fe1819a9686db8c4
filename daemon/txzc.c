/*
 * Zero-copy TX: application TX-ring bytes attached to mbufs as external
 * buffers (see txzc.h for the design, docs/daemon.md for the rules).
 *
 * Lifetime. An attachment (struct zc_ctx) exists from the moment a payload
 * span is attached to an mbuf until DPDK calls its free callback, which
 * happens exactly once, on the stack lcore, when the last user of the mbuf
 * lets go of it (the PMD after transmission, our TX queue on port close,
 * or the error path below). While it exists it holds:
 *   - one lwIP reference on the pbuf whose payload it points at, so the
 *     pbuf struct is valid when the callback frees it (lwIP may have freed
 *     the TCP segment long before: the ACK can come back before a lazy PMD
 *     reclaims its TX descriptors);
 *   - one count on its area (the application's segment), so the segment is
 *     neither unregistered nor unmapped while the NIC may still read it.
 * The payload pbuf is referenced, not the frame's header pbuf: lwIP refuses
 * to retransmit a segment whose header pbuf is still referenced
 * (tcp_output_segment_busy), and a PMD that reclaims descriptors only on its
 * next burst would then stall the connection's retransmissions.
 *
 * When the application goes away the back-end aborts its connections and
 * calls seg_release instead of destroying the segment. With no attachment
 * left it is destroyed at once; otherwise it waits on the dying list and
 * isod_txzc_poll() destroys it when the count reaches zero.
 */
#include "txzc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "lwip/pbuf.h"
#include "lwip/prot/ethernet.h"
#include "lwip/prot/ip.h"
#include "lwip/prot/ip4.h"

#include "internal.h"
#include "isoshm.h"
#include "isoshm_dpdk.h"

/* Payload spans shorter than this are copied into the chain instead: an
 * mbuf and an attachment cost more than copying a few bytes. */
#define ZC_MIN_SPAN     128
/* Segments per frame we build at most (lwIP frames have 2-4; a frame
 * merged for TSO has a payload pbuf per merged segment, up to 44). */
#define ZC_MAX_SEGS     8u
#define ZC_TSO_MAX_SEGS 64u

struct zc_area {
	struct isod_txzc *zc;
	struct isoshm_stack *shm;
	struct isoshm_dpdk_reg reg;
	uint64_t refs;              /* attachments alive */
	uint64_t dying_tsc;         /* when released (dying list only) */
	uint64_t next_nudge_tsc;    /* next tx_done_cleanup / warning */
	bool warned;
	struct zc_area *next;
};

struct zc_ctx {
	struct rte_mbuf_ext_shared_info shinfo;
	struct pbuf *p;
	struct zc_area *area;
	struct zc_ctx *next_free;
};

/* Test hook (ISOSTACK_TXZC_HOLD_MS): keeps an extra reference on every
 * zero-copy frame for that long after it is built, as a device that
 * completes TX lazily would, so the deferred unmap is exercised on vdevs
 * that copy and free at once. */
#define ZC_HOLD_MAX     4096

struct zc_hold {
	struct rte_mbuf *m;
	uint64_t due_tsc;
};

struct isod_txzc {
	struct isotcp_dpdk_port *ports;
	unsigned nports;
	bool enabled;
	struct zc_area *live;       /* registered, application attached */
	struct zc_area *dying;      /* application gone, references left */
	struct zc_area *last;       /* lookup cache (live only) */
	struct zc_ctx *ctx;         /* [nctx] */
	struct zc_ctx *free_ctx;
	uint32_t nctx;
	bool logged_reg_err;
	uint64_t hold_tsc;          /* test hook; 0: off */
	uint32_t hold_head, hold_len;
	struct zc_hold hold[ZC_HOLD_MAX];
	struct isod_txzc_stats st;
};

static void hold_release(struct isod_txzc *zc, bool all, uint64_t now)
{
	while (zc->hold_len > 0 &&
	       (all || zc->hold[zc->hold_head].due_tsc <= now)) {
		rte_pktmbuf_free(zc->hold[zc->hold_head].m);
		zc->hold_head = (zc->hold_head + 1) % ZC_HOLD_MAX;
		zc->hold_len--;
	}
}

static void hold_frame(struct isod_txzc *zc, struct rte_mbuf *head)
{
	uint64_t now = rte_get_tsc_cycles();

	if (zc->hold_len == ZC_HOLD_MAX) {
		rte_pktmbuf_free(zc->hold[zc->hold_head].m);
		zc->hold_head = (zc->hold_head + 1) % ZC_HOLD_MAX;
		zc->hold_len--;
	}
	for (struct rte_mbuf *s = head; s != NULL; s = s->next)
		rte_mbuf_refcnt_update(s, 1);
	zc->hold[(zc->hold_head + zc->hold_len) % ZC_HOLD_MAX] =
		(struct zc_hold){ .m = head, .due_tsc = now + zc->hold_tsc };
	zc->hold_len++;
}

static struct zc_ctx *ctx_get(struct isod_txzc *zc)
{
	struct zc_ctx *c = zc->free_ctx;

	if (c != NULL)
		zc->free_ctx = c->next_free;
	return c;
}

static void ctx_put(struct isod_txzc *zc, struct zc_ctx *c)
{
	c->p = NULL;
	c->area = NULL;
	c->next_free = zc->free_ctx;
	zc->free_ctx = c;
}

/* The extbuf free callback: the mbuf carrying this span is being freed. */
static void zc_free_cb(void *addr, void *opaque)
{
	struct zc_ctx *c = opaque;
	struct zc_area *a = c->area;
	struct isod_txzc *zc = a->zc;

	(void)addr;
	pbuf_free(c->p);
	a->refs--;
	zc->st.refs--;
	ctx_put(zc, c);
	/* A dying area with no reference left is destroyed by the poll, not
	 * here: we may be inside rte_eth_tx_burst or lwIP's output path. */
}

/* The live area that holds [ptr, ptr + len), or NULL. */
/* The area holding [ptr, ptr+len), if its IOVA is known (IOVA-as-PA:
 * only extents on hugepages); else NULL and the bytes are copied. */
static struct zc_area *area_find(struct isod_txzc *zc, const void *ptr, size_t len)
{
	const uint8_t *b = ptr;
	struct zc_area *a = zc->last;

	if (a == NULL || b < a->reg.addr || len > a->reg.len ||
	    (size_t)(b - a->reg.addr) > a->reg.len - len) {
		for (a = zc->live; a != NULL; a = a->next)
			if (b >= a->reg.addr && len <= a->reg.len &&
			    (size_t)(b - a->reg.addr) <= a->reg.len - len)
				break;
		if (a == NULL)
			return NULL;
		zc->last = a;
	}
	if (!a->reg.iova_is_va &&
	    (isoshm_dpdk_iova(&a->reg, (uint64_t)(b - a->reg.addr)) == RTE_BAD_IOVA ||
	     isoshm_dpdk_iova(&a->reg, (uint64_t)(b - a->reg.addr) + len - 1) == RTE_BAD_IOVA))
		return NULL;
	return a;
}

/* An IPv4 TCP frame whose headers are all in the first pbuf? Only TCP's
 * ring bytes stay put until acknowledged; UDP is copied by the back-end. */
static bool is_tcp4(const struct pbuf *p)
{
	const uint8_t *f = p->payload;

	return p->len >= SIZEOF_ETH_HDR + IP_HLEN && f[12] == 0x08 && f[13] == 0x00 &&
	       f[SIZEOF_ETH_HDR + 9] == IP_PROTO_TCP;
}

/* Appends len bytes to the chain, into its tail if that is a direct mbuf
 * with room, else into a new one. Returns false without mbuf or segment. */
static bool chain_copy(struct isotcp_dpdk_port *port, struct rte_mbuf *head,
		       struct rte_mbuf **tail, unsigned max_segs,
		       const void *data, uint16_t len)
{
	struct rte_mbuf *t = *tail;
	char *dst;

	if (RTE_MBUF_HAS_EXTBUF(t) || rte_pktmbuf_tailroom(t) < len) {
		if (head->nb_segs >= max_segs)
			return false;
		t = rte_pktmbuf_alloc(port->pool);
		if (t == NULL)
			return false;
		if (rte_pktmbuf_tailroom(t) < len) {
			rte_pktmbuf_free(t);
			return false;
		}
		(*tail)->next = t;
		*tail = t;
		head->nb_segs++;
	}
	dst = rte_pktmbuf_mtod_offset(t, char *, t->data_len);
	memcpy(dst, data, len);
	t->data_len = (uint16_t)(t->data_len + len);
	head->pkt_len += len;
	return true;
}

/* Attaches one pbuf's payload (inside area a), split at page boundaries
 * when IOVAs are per page. Returns false when out of segments, mbufs or
 * contexts; what was attached stays in the chain (freed by the caller). */
static bool chain_attach(struct isod_txzc *zc, struct isotcp_dpdk_port *port,
			 struct rte_mbuf *head, struct rte_mbuf **tail, unsigned max_segs,
			 struct zc_area *a, struct pbuf *q, uint64_t *attached)
{
	uint64_t off = a->reg.seg_off + (uint64_t)((const uint8_t *)q->payload - a->reg.addr);
	uint32_t left = q->len;

	while (left > 0) {
		uint32_t n = left;
		struct rte_mbuf *m;
		struct zc_ctx *c;

		if (!a->reg.iova_is_va) {
			uint64_t in_page = (off - a->reg.seg_off) % a->reg.page_sz;

			n = (uint32_t)RTE_MIN((uint64_t)n, a->reg.page_sz - in_page);
		}
		if (head->nb_segs >= max_segs)
			return false;
		m = rte_pktmbuf_alloc(port->pool);
		if (m == NULL) {
			zc->st.no_mbuf++;
			return false;
		}
		c = ctx_get(zc);
		if (c == NULL) {
			rte_pktmbuf_free(m);
			zc->st.no_ctx++;
			return false;
		}
		c->p = q;
		c->area = a;
		c->shinfo.free_cb = zc_free_cb;
		c->shinfo.fcb_opaque = c;
		rte_mbuf_ext_refcnt_set(&c->shinfo, 1);
		if (isoshm_dpdk_attach_extbuf(&a->reg, m, off, (uint16_t)n, &c->shinfo) != 0) {
			ctx_put(zc, c);
			rte_pktmbuf_free(m);
			return false;
		}
		/* From here the callback owns these two references. */
		pbuf_ref(q);
		a->refs++;
		zc->st.refs++;
		(*tail)->next = m;
		*tail = m;
		head->nb_segs++;
		head->pkt_len += n;
		*attached += n;
		off += n;
		left -= n;
	}
	return true;
}

/* The netif's txattach hook. */
static int txzc_attach(void *arg, struct isotcp_dpdk_port *port, struct pbuf *p,
		       struct rte_mbuf **out)
{
	struct isod_txzc *zc = arg;
	struct rte_mbuf *head, *tail;
	unsigned max_segs = RTE_MIN((unsigned)port->caps.tx_max_segs, ZC_MAX_SEGS);
	bool tso = port->tso_on && p->tot_len > (uint32_t)port->netif.mtu + SIZEOF_ETH_HDR;
	uint64_t attached = 0;
	bool any = false;

	if (zc->live == NULL || !port->caps.tx_multiseg || !is_tcp4(p))
		return -ENOENT;
	if (tso)
		max_segs = RTE_MIN((unsigned)port->caps.tso_max_segs, ZC_TSO_MAX_SEGS);
	for (struct pbuf *q = p->next; q != NULL && !any; q = q->next)
		any = q->len >= ZC_MIN_SPAN && area_find(zc, q->payload, q->len) != NULL;
	if (!any)
		return -ENOENT;

	head = rte_pktmbuf_alloc(port->pool);
	if (head == NULL) {
		zc->st.no_mbuf++;
		return -ENOMEM;
	}
	tail = head;
	for (struct pbuf *q = p; q != NULL; q = q->next) {
		struct zc_area *a = NULL;
		bool ok;

		if (q->len == 0)
			continue;
		if (q != p && q->len >= ZC_MIN_SPAN)
			a = area_find(zc, q->payload, q->len);
		if (a != NULL)
			ok = chain_attach(zc, port, head, &tail, max_segs, a, q, &attached);
		else
			ok = chain_copy(port, head, &tail, max_segs, q->payload, q->len);
		if (!ok) {
			/* Frees every segment; attachments made so far are
			 * released by their callbacks. The netif copies. */
			rte_pktmbuf_free(head);
			return -ENOMEM;
		}
	}
	port->stats.tx_zc_bytes += attached;
	if (zc->hold_tsc != 0)
		hold_frame(zc, head);
	*out = head;
	return 0;
}

int isod_txzc_init(struct isod_txzc **out, struct isotcp_dpdk_port *ports,
		   unsigned nports, bool enable)
{
	struct isod_txzc *zc = calloc(1, sizeof(*zc));
	uint64_t n = 0;

	if (zc == NULL)
		return -ENOMEM;
	zc->ports = ports;
	zc->nports = nports;
	for (unsigned i = 0; i < nports; i++)
		if (ports[i].caps.tx_multiseg)
			n += ports[i].pool->size;
	zc->enabled = enable && n > 0;
	if (getenv("ISOSTACK_TXZC_HOLD_MS") != NULL) {
		uint64_t ms = strtoull(getenv("ISOSTACK_TXZC_HOLD_MS"), NULL, 10);

		zc->hold_tsc = rte_get_tsc_hz() / 1000 * ms;
		if (ms != 0)
			ISOD_LOG(WARN, "zero-copy TX: test hook: every zero-copy frame held %" PRIu64
				 " ms after transmission (ISOSTACK_TXZC_HOLD_MS)", ms);
	}
	if (zc->enabled) {
		/* One context per mbuf of the pools: every attachment is an mbuf. */
		zc->nctx = (uint32_t)RTE_MIN(n, (uint64_t)UINT32_MAX);
		zc->ctx = calloc(zc->nctx, sizeof(*zc->ctx));
		if (zc->ctx == NULL) {
			free(zc);
			return -ENOMEM;
		}
		for (uint32_t i = zc->nctx; i-- > 0;)
			ctx_put(zc, &zc->ctx[i]);
	}
	for (unsigned i = 0; i < nports; i++) {
		bool on = zc->enabled && ports[i].caps.tx_multiseg;

		if (on)
			isotcp_dpdk_set_txattach(&ports[i], txzc_attach, zc);
		ISOD_LOG(INFO, "port %u: zero-copy TX %s", ports[i].port_id,
			 on ? "on (payload in application TX rings attached as external buffers)" :
			 !ports[i].caps.tx_multiseg ?
			 "off: the device takes no multi-segment frames (copied TX)" :
			 "off (disabled by ISOSTACK_TX_ZEROCOPY=off)");
	}
	*out = zc;
	return 0;
}

static void area_destroy(struct isod_txzc *zc, struct zc_area *a)
{
	int rc = isoshm_dpdk_unregister_tx(&a->reg);

	if (rc != 0)
		ISOD_LOG(ERR, "zero-copy TX: unregistering a TX area: %s", rte_strerror(-rc));
	isoshm_stack_destroy(a->shm);
	zc->st.segs_destroyed++;
	free(a);
}

void isod_txzc_seg_attach(void *arg, struct isoshm_stack *shm)
{
	struct isod_txzc *zc = arg;
	struct zc_area *a;
	int rc;

	if (!zc->enabled)
		return;
	a = calloc(1, sizeof(*a));
	if (a == NULL) {
		zc->st.segs_unregistrable++;
		return;
	}
	rc = isoshm_dpdk_register_tx(shm, &a->reg);
	if (rc != 0) {
		zc->st.segs_unregistrable++;
		if (!zc->logged_reg_err)
			ISOD_LOG(WARN, "zero-copy TX: cannot register an application's TX area (%s%s); "
				 "its frames are copied (logged once)", rte_strerror(-rc),
				 "");
		zc->logged_reg_err = true;
		free(a);
		return;
	}
	a->zc = zc;
	a->shm = shm;
	a->next = zc->live;
	zc->live = a;
	zc->st.segs_registered++;
}

void isod_txzc_ext_attach(void *arg, struct isoshm_stack *shm, uint64_t off, uint64_t size,
			  bool hugetlb)
{
	struct isod_txzc *zc = arg;
	int rc;

	for (struct zc_area *a = zc->live; a != NULL; a = a->next) {
		if (a->shm != shm)
			continue;
		rc = isoshm_dpdk_map_extent(&a->reg, off, size, hugetlb);
		if (rc != 0 && !zc->logged_reg_err) {
			ISOD_LOG(WARN, "zero-copy TX: a device refused to map an extent (%s); "
				 "logged once", rte_strerror(-rc));
			zc->logged_reg_err = true;
		}
		return;
	}
}

void isod_txzc_seg_release(void *arg, struct isoshm_stack *shm)
{
	struct isod_txzc *zc = arg;
	struct zc_area **pp, *a = NULL;

	for (pp = &zc->live; *pp != NULL; pp = &(*pp)->next) {
		if ((*pp)->shm == shm) {
			a = *pp;
			*pp = a->next;
			break;
		}
	}
	if (zc->last == a)
		zc->last = NULL;
	if (a == NULL) {               /* never registered */
		isoshm_stack_destroy(shm);
		return;
	}
	if (a->refs == 0) {
		area_destroy(zc, a);
		return;
	}
	/* mbufs queued or in the device still point into it. */
	a->dying_tsc = rte_get_tsc_cycles();
	a->next_nudge_tsc = a->dying_tsc + rte_get_tsc_hz() / 1000 * ISOD_TXZC_DEFER_WARN_MS;
	a->next = zc->dying;
	zc->dying = a;
	zc->st.segs_deferred++;
	zc->st.segs_dying++;
}

unsigned isod_txzc_poll(void *arg, unsigned budget)
{
	struct isod_txzc *zc = arg;
	unsigned work = 0;
	uint64_t now;

	(void)budget;
	if (zc->dying == NULL && zc->hold_len == 0)
		return 0;
	now = rte_get_tsc_cycles();
	hold_release(zc, false, now);
	for (struct zc_area **pp = &zc->dying; *pp != NULL;) {
		struct zc_area *a = *pp;

		if (a->refs == 0) {
			*pp = a->next;
			zc->st.segs_dying--;
			area_destroy(zc, a);
			work++;
			continue;
		}
		if (now >= a->next_nudge_tsc) {
			/* A PMD that reclaims TX descriptors lazily may sit on
			 * finished mbufs; ask every port to let them go. The
			 * segment stays mapped whatever happens. */
			for (unsigned i = 0; i < zc->nports; i++)
				(void)rte_eth_tx_done_cleanup(zc->ports[i].port_id,
							      zc->ports[i].queue, 0);
			if (!a->warned)
				ISOD_LOG(WARN, "zero-copy TX: a departed application's segment is still "
					 "referenced by %" PRIu64 " mbufs after %u ms; it stays "
					 "mapped until the device frees them", a->refs,
					 ISOD_TXZC_DEFER_WARN_MS);
			a->warned = true;
			a->next_nudge_tsc = now + rte_get_tsc_hz();
		}
		pp = &a->next;
	}
	return work;
}

void isod_txzc_get_stats(const struct isod_txzc *zc, struct isod_txzc_stats *out)
{
	*out = zc->st;
}

void isod_txzc_stop(struct isod_txzc *zc)
{
	if (zc != NULL)
		hold_release(zc, true, 0);
}

void isod_txzc_fini(struct isod_txzc *zc)
{
	bool leak = false;

	if (zc == NULL)
		return;
	/* The back-end released every live segment already; be safe anyway. */
	while (zc->live != NULL) {
		struct zc_area *a = zc->live;

		zc->live = a->next;
		a->next = zc->dying;
		zc->dying = a;
	}
	while (zc->dying != NULL) {
		struct zc_area *a = zc->dying;

		zc->dying = a->next;
		if (a->refs == 0) {
			area_destroy(zc, a);
			continue;
		}
		ISOD_LOG(WARN, "zero-copy TX: %" PRIu64 " mbufs still reference a segment at exit; "
			 "leaving it mapped", a->refs);
		leak = true;
	}
	if (leak)
		return;    /* callbacks may still run: keep the contexts */
	free(zc->ctx);
	free(zc);
}
