/*
 * The fuzz targets' back-end: see fuzz_be.h.  The loopback netif queues
 * what lwIP sends and feeds it back to ip4_input on the next pass, so a
 * socket that connects to 198.18.0.1 reaches a listener of the same
 * application and both directions of TCP run.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lwip/init.h"
#include "lwip/ip4.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/tcp.h"
#include "lwip/timeouts.h"
#include "lwip/priv/tcp_priv.h"

#include "fuzz_be.h"
#include "log.h"
#include "isotcp.h"
#include "isostack/ctl_proto.h"

#define LOOP_SLOTS 256

struct isod_backend *fz_be;
char fz_ctl_path[108];

static u32_t fake_now;
static struct netif lo;
static struct pbuf *loopq[LOOP_SLOTS];
static unsigned loop_head, loop_tail;

u32_t sys_now(void)
{
	return fake_now;
}

static err_t lo_output(struct netif *n, struct pbuf *p, const ip4_addr_t *dst)
{
	struct pbuf *c;

	(void)n;
	(void)dst;
	if (loop_tail - loop_head == LOOP_SLOTS)
		return ERR_OK;          /* lost: TCP recovers */
	c = pbuf_clone(PBUF_RAW, PBUF_RAM, p);
	if (c == NULL)
		return ERR_MEM;
	loopq[loop_tail++ % LOOP_SLOTS] = c;
	return ERR_OK;
}

static err_t lo_init(struct netif *n)
{
	n->name[0] = 'l';
	n->name[1] = 'o';
	n->output = lo_output;
	n->mtu = 1500;
	n->flags = NETIF_FLAG_LINK_UP;
	return ERR_OK;
}

void fz_passes(unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		unsigned k = loop_tail - loop_head;

		while (k-- > 0) {
			struct pbuf *p = loopq[loop_head++ % LOOP_SLOTS];

			if (lo.input(p, &lo) != ERR_OK)
				pbuf_free(p);
		}
		fake_now += 1;
		sys_check_timeouts();
		isotcp_timers_continue();
		isod_backend_poll(fz_be, 64);
	}
}

static void unlink_ctl(void)
{
	unlink(fz_ctl_path);
}

void fz_setup(void)
{
	struct isod_backend_conf conf;
	ip4_addr_t a, mask, gw;
	int rc;

	/* an application per input: its attach lines would drown the run */
	if (getenv("FUZZ_LOG") == NULL)
		isod_log_min = ISOD_LOG_ERR;
	isotcp_owner_claim();
	lwip_init();
	IP4_ADDR(&a, 198, 18, 0, 1);
	IP4_ADDR(&mask, 255, 255, 255, 0);
	IP4_ADDR(&gw, 198, 18, 0, 2);
	netif_add(&lo, &a, &mask, &gw, NULL, lo_init, ip4_input);
	netif_set_default(&lo);
	netif_set_up(&lo);
	snprintf(fz_ctl_path, sizeof(fz_ctl_path), "/tmp/isofuzz-%d.sock", (int)getpid());
	isod_backend_conf_default(&conf);
	conf.control_path = fz_ctl_path;
	conf.shm.max_sockets = FZ_MAX_SOCKETS;
	conf.shm.cmd_entries = FZ_CMD_ENTRIES;
	conf.shm.status_entries = FZ_CMD_ENTRIES;
	conf.shm.nr_doorbells = 1;
	conf.shm.arena_size = UINT64_C(16) << 20;
	conf.shm.hugetlb = false;
	conf.ctl_interval_ms = 0;
	conf.close_timeout_ms = 200;
	rc = isod_backend_init(&fz_be, &conf);
	if (rc < 0) {
		fprintf(stderr, "fuzz: back-end: %s\n", strerror(-rc));
		abort();
	}
	atexit(unlink_ctl);     /* libFuzzer and replay end with exit() */
}

static bool readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) > 0;
}

/* The application library's extent source: CTL_EXTENT on the control
 * socket, the back-end served in between (one thread plays both). */
static int fetch_extent(void *arg, uint32_t id, uint64_t *off, uint64_t *size)
{
	struct fz_app *a = arg;
	struct isostack_ctl_extent q = {
		.hdr = { ISOSTACK_CTL_MAGIC, ISOSTACK_CTL_VERSION, ISOSTACK_CTL_EXTENT,
			 sizeof(q), 0 },
		.id = id,
	};
	struct isostack_ctl_extent_reply r;
	int fd = -1;
	unsigned n = 0;
	ssize_t got;

	if (send(a->ctl, &q, sizeof(q), MSG_NOSIGNAL) != (ssize_t)sizeof(q))
		return -EPIPE;
	for (int i = 0; i < 100 && !readable(a->ctl); i++)
		fz_passes(1);
	got = isoshm_recv_fds(a->ctl, &r, sizeof(r), &fd, 1, &n, MSG_DONTWAIT);
	if (got != (ssize_t)sizeof(r) || r.status < 0 || n != 1) {
		if (n == 1)
			close(fd);
		return got < 0 ? (int)got : -EPROTO;
	}
	*off = r.arena_off;
	*size = r.size;
	return fd;
}

int fz_attach(struct fz_app *a)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct isostack_ctl_attach req = {
		.hdr = { ISOSTACK_CTL_MAGIC, ISOSTACK_CTL_VERSION, ISOSTACK_CTL_ATTACH,
			 sizeof(req), 0 },
		.pid = (uint32_t)getpid(), .abi_version = ISOSTACK_SHM_ABI_VERSION,
		.features = ISOSTACK_SHM_FEATURES,
	};
	struct isostack_ctl_attach_reply rep;
	int fds[2] = { -1, -1 };
	unsigned n = 0;
	int i;

	memset(a, 0, sizeof(*a));
	a->ctl = a->doorbell = -1;
	a->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	strcpy(sun.sun_path, fz_ctl_path);
	a->ctl = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (a->wake < 0 || a->ctl < 0 ||
	    connect(a->ctl, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
	    isoshm_send_fds(a->ctl, &req, sizeof(req), &a->wake, 1, 0) != 0)
		goto fail;
	for (i = 0; i < 100 && !readable(a->ctl); i++)
		fz_passes(1);
	if (isoshm_recv_fds(a->ctl, &rep, sizeof(rep), fds, 2, &n, MSG_DONTWAIT) !=
	    (ssize_t)sizeof(rep) || rep.status != 0 || n != 2)
		goto fail;
	if (isoshm_app_attach(&a->shm, fds[0], NULL) != 0)
		goto fail;
	a->doorbell = fds[1];
	isoshm_app_set_fetch(a->shm, fetch_extent, a);
	return 0;
fail:
	for (unsigned k = 0; k < n; k++)
		close(fds[k]);
	if (a->ctl >= 0)
		close(a->ctl);
	if (a->wake >= 0)
		close(a->wake);
	return -1;
}

void fz_detach(struct fz_app *a)
{
	isoshm_app_detach(a->shm);
	close(a->doorbell);
	close(a->ctl);
	close(a->wake);
	fz_settle();
}

void fz_settle(void)
{
	int i;

	for (i = 0; i < 2000 && isod_backend_apps(fz_be) > 0; i++) {
		fz_passes(1);
		fake_now += 10;
	}
	if (isod_backend_apps(fz_be) > 0) {
		fprintf(stderr, "fuzz: %u application(s) still held 20 s after hang-up\n",
			isod_backend_apps(fz_be));
		abort();
	}
	/* TIME-WAIT and the rest out, the loopback drained */
	fake_now += 5 * 60 * 1000;
	fz_passes(2);
	while (tcp_tw_pcbs != NULL)
		tcp_abort(tcp_tw_pcbs);
	fz_passes(1);
}
