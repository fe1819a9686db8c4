/*
 * Socket names and options: getsockname/getpeername, and the options
 * kept in the front-end (timeouts, SO_LINGER, TCP_CORK, SO_ERROR and the
 * other SOL_SOCKET queries; SO_LINGER also reaches the stack, which uses
 * it when it closes the socket of a dead process); TCP_INFO and SIOCOUTQ,
 * put together from the stack's pieces; the options refused as Linux
 * refuses one it lacks; the rest go to the stack.  The table of what each
 * option does is in docs/shim.md.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core_internal.h"

/* ---- Names and options ------------------------------------------------------- */

int isosock_getsockname(struct isosock_app *app, int s, struct sockaddr *addr, socklen_t *len)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_GETSOCKNAME };
	struct isostack_shm_status st;
	int rc;

	if (len == NULL || addr == NULL)
		return -EFAULT;
	rc = isosock__simple_call(app, s, &c, &st);
	if (rc == 0)
		isosock__addr_out(&st, addr, len);
	return rc;
}

int isosock_getpeername(struct isosock_app *app, int s, struct sockaddr *addr, socklen_t *len)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_GETPEERNAME };
	struct isostack_shm_status st;
	int rc;

	if (len == NULL || addr == NULL)
		return -EFAULT;
	rc = isosock__simple_call(app, s, &c, &st);
	if (rc == 0)
		isosock__addr_out(&st, addr, len);
	return rc;
}

/* /proc/sys/net/core/{r,w}mem_max, or Linux's default. */
static int core_mem_max(bool rx)
{
	static int cached[2];
	int v = __atomic_load_n(&cached[rx], __ATOMIC_RELAXED);

	if (v == 0) {
		int fd = (int)syscall(SYS_openat, AT_FDCWD,
				      rx ? "/proc/sys/net/core/rmem_max" : "/proc/sys/net/core/wmem_max",
				      O_RDONLY | O_CLOEXEC);
		char buf[32] = { 0 };

		v = 212992;
		if (fd >= 0) {
			if (syscall(SYS_read, fd, buf, sizeof(buf) - 1) > 0 && atoi(buf) > 0)
				v = atoi(buf);
			syscall(SYS_close, fd);
		}
		__atomic_store_n(&cached[rx], v, __ATOMIC_RELAXED);
	}
	return v;
}

/*
 * What Linux's getsockopt reports after setsockopt(SO_SNDBUF/SO_RCVBUF, v)
 * (net/core/sock.c): v taken as unsigned, capped at wmem_max/rmem_max,
 * doubled for the kernel's bookkeeping, at least the minimum buffer.
 */
static int linux_buf(int v, bool rx)
{
	uint32_t u = (uint32_t)v, max = (uint32_t)core_mem_max(rx);
	uint32_t min = rx ? 2304 : 4608;    /* SOCK_MIN_RCVBUF, SOCK_MIN_SNDBUF */

	if (u > max)
		u = max;
	u *= 2;
	return (int)(u < min ? min : u);
}

static int64_t tv_ns(const struct timeval *tv)
{
	return (int64_t)tv->tv_sec * 1000000000 + (int64_t)tv->tv_usec * 1000;
}

int isosock_setsockopt(struct isosock_app *app, int s, int level, int name,
		       const void *val, socklen_t len)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_SETSOCKOPT };
	struct fsock *f = fs_get(app, s);
	int rc = 0;

	if (f == NULL)
		return -EBADF;
	if (val == NULL && len > 0)
		return -EFAULT;
	fs_lock(f);
	if (level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO)) {
		struct timeval tv;

		if (len < sizeof(tv)) {
			rc = -EINVAL;
		} else {
			memcpy(&tv, val, sizeof(tv));
			if (tv.tv_usec < 0 || tv.tv_usec >= 1000000)
				rc = -EDOM;
			else if (name == SO_RCVTIMEO)
				f->rcvtimeo_ns = tv_ns(&tv);
			else
				f->sndtimeo_ns = tv_ns(&tv);
		}
		fs_unlock(f);
		return rc;
	}
	if (level == SOL_SOCKET && (name == SO_RCVBUF || name == SO_SNDBUF)) {
		int v;

		if (len < sizeof(int)) {
			fs_unlock(f);
			return -EINVAL;
		}
		memcpy(&v, val, sizeof(v));
		if (name == SO_SNDBUF)
			f->sndbuf = linux_buf(v, false);
		else
			f->rcvbuf = linux_buf(v, true);
		if (!f->udp) {
			/* The stack pins the ring (fire and forget, as SO_LINGER) */
			struct isostack_shm_cmd b = { .opcode = ISOSTACK_SHM_OP_SETSOCKOPT };

			b.arg[0] = SOL_SOCKET;
			b.arg[1] = (uint64_t)name;
			b.arg[2] = sizeof(int);
			memcpy(&b.arg[3], &v, sizeof(v));
			(void)isosock__post(app, s, &b);
		}
		fs_unlock(f);
		return 0;
	}
	if (level == SOL_SOCKET && name == SO_LINGER) {
		if (len < sizeof(struct linger)) {
			fs_unlock(f);
			return -EINVAL;
		}
		memcpy(&f->linger, val, sizeof(f->linger));
		f->linger0 = f->linger.l_onoff && f->linger.l_linger == 0;
		if (!f->udp) {
			/* The stack learns it now too (fire and forget: the
			 * reply is drained like any other), so a process that
			 * dies without close() still resets, as on the kernel. */
			struct isostack_shm_cmd l = { .opcode = ISOSTACK_SHM_OP_SETSOCKOPT };

			l.arg[0] = SOL_SOCKET;
			l.arg[1] = SO_LINGER;
			l.arg[2] = sizeof(struct linger);
			memcpy(&l.arg[3], &f->linger, sizeof(f->linger));
			(void)isosock__post(app, s, &l);
		}
		fs_unlock(f);
		return 0;
	}
	if (level == IPPROTO_TCP && name == TCP_CORK) {
		int v;

		if (len < sizeof(int)) {
			fs_unlock(f);
			return -EINVAL;
		}
		memcpy(&v, val, sizeof(v));
		f->cork = v != 0;
		if (!f->cork && f->state == F_CONNECTED)
			(void)isosock__maybe_post_send(app, s, f, false);
		fs_unlock(f);
		return 0;
	}
	fs_unlock(f);
	if (len > ISOSTACK_SHM_OPT_MAX)
		len = ISOSTACK_SHM_OPT_MAX;
	c.arg[0] = (uint64_t)level;
	c.arg[1] = (uint64_t)name;
	c.arg[2] = len;
	if (len > 0)
		memcpy(&c.arg[3], val, len);
	rc = isosock__simple_call(app, s, &c, NULL);
	if (rc == 0 && level == IPPROTO_IPV6 && name == IPV6_V6ONLY && f->udp) {
		int v;

		/* sendto judges IPv4 destinations by it (core_data.c);
		 * the stack accepted it, so len holds an int */
		memcpy(&v, val, sizeof(v));
		fs_lock(f);
		f->v6only = v != 0;
		fs_unlock(f);
	}
	return rc;
}

/* TCP_INFO's pieces from the stack (daemon/backend/sock_opt.c,
 * isod_tcp_info): 6 32-bit words each, but for BYTES (two 64-bit).  The
 * piece rides in the option name's bits 16 and up (GETSOCKOPT's other
 * words must be zero: shm/stack.c). */
enum { INFO_PIECE_TIMES, INFO_PIECE_WINDOWS, INFO_PIECE_BYTES };

static int info_piece(struct isosock_app *app, int s, int piece, uint32_t w[6])
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_GETSOCKOPT };
	struct isostack_shm_status st;
	int rc;

	c.arg[0] = IPPROTO_TCP;
	c.arg[1] = TCP_INFO | (uint64_t)piece << 16;
	c.arg[2] = 6 * sizeof(uint32_t);
	rc = isosock__simple_call(app, s, &c, &st);
	if (rc < 0)
		return rc;
	if (st.result != 6 * sizeof(uint32_t))
		return -EPROTO;
	memcpy(w, &st.arg[2], 6 * sizeof(uint32_t));
	return 0;
}

/* Where Linux's struct tcp_info (<linux/tcp.h>) goes on past glibc's. */
#define INFO_BYTES_ACKED    120
#define INFO_BYTES_RECEIVED 128
#define INFO_LEN            232     /* through tcpi_snd_wnd (Linux 5.4) */

static int tcp_info(struct isosock_app *app, int s, void *val, socklen_t *len)
{
	unsigned char buf[INFO_LEN];
	struct tcp_info *ti = (struct tcp_info *)buf;
	uint32_t t[6], w[6], b[6];
	int rc;

	if (val == NULL || len == NULL)
		return -EFAULT;
	if ((rc = info_piece(app, s, INFO_PIECE_TIMES, t)) < 0 ||
	    (rc = info_piece(app, s, INFO_PIECE_WINDOWS, w)) < 0 ||
	    (rc = info_piece(app, s, INFO_PIECE_BYTES, b)) < 0)
		return rc;
	memset(buf, 0, sizeof(buf));
	ti->tcpi_state = (uint8_t)t[0];
	ti->tcpi_retransmits = (uint8_t)t[1];
	ti->tcpi_rto = t[2];
	ti->tcpi_snd_mss = t[3];
	ti->tcpi_rcv_mss = t[3];
	ti->tcpi_advmss = t[3];
	ti->tcpi_rtt = t[4];
	ti->tcpi_rttvar = t[5];
	ti->tcpi_snd_cwnd = w[0];
	ti->tcpi_snd_ssthresh = w[1];
	ti->tcpi_unacked = w[2];
	ti->tcpi_rcv_space = w[5];
	memcpy(buf + INFO_BYTES_ACKED, &b[0], sizeof(uint64_t));
	memcpy(buf + INFO_BYTES_RECEIVED, &b[2], sizeof(uint64_t));
	if (*len > sizeof(buf))
		*len = sizeof(buf);
	memcpy(val, buf, *len);
	return 0;
}

int isosock_outq(struct isosock_app *app, int s)
{
	struct fsock *f = fs_get(app, s);
	uint32_t w[6];
	int rc;

	if (f == NULL)
		return -EBADF;
	if (__atomic_load_n(&f->state, __ATOMIC_RELAXED) == F_LISTEN)
		return -EINVAL;
	rc = info_piece(app, s, INFO_PIECE_WINDOWS, w);
	return rc < 0 ? rc : (int)w[3];
}

static int put_int(void *val, socklen_t *len, int v)
{
	if (val == NULL || len == NULL)
		return -EFAULT;
	if (*len < sizeof(int))
		return -EINVAL;
	memcpy(val, &v, sizeof(v));
	*len = sizeof(int);
	return 0;
}

/* SO_SNDBUF/SO_RCVBUF of a socket without a pin: its ring's size; an idle
 * socket has no ring (docs/shm.md) but keeps announcing RING_IDLE_WINDOW
 * bytes of window, and reports that, never 0 (a program may divide by it). */
#define RING_IDLE_WINDOW 4096
static int ring_report(uint32_t bytes)
{
	return bytes != 0 ? (int)bytes : RING_IDLE_WINDOW;
}

int isosock_getsockopt(struct isosock_app *app, int s, int level, int name,
		       void *val, socklen_t *len)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_GETSOCKOPT };
	struct isostack_shm_status st;
	struct fsock *f = fs_get(app, s);
	int rc;

	if (f == NULL)
		return -EBADF;
	if (val == NULL || len == NULL)
		return -EFAULT;
	if (level == SOL_SOCKET) {
		fs_lock(f);
		isosock__drain(app, s, f);
		rc = 1;
		switch (name) {
		case SO_ERROR:
			rc = put_int(val, len, f->so_error);
			if (rc == 0) {
				f->so_error = 0;
				if (f->dead)
					f->err_reported = true;
			}
			break;
		case SO_TYPE:      rc = put_int(val, len, f->udp ? SOCK_DGRAM : SOCK_STREAM); break;
		case SO_DOMAIN:    rc = put_int(val, len, f->inet6 ? AF_INET6 : AF_INET); break;
		case SO_PROTOCOL:  rc = put_int(val, len, f->udp ? IPPROTO_UDP : IPPROTO_TCP); break;
		case SO_ACCEPTCONN: rc = put_int(val, len, f->state == F_LISTEN); break;
		case SO_RCVBUF:
			rc = put_int(val, len, f->rcvbuf ? f->rcvbuf : ring_report(f->rx_bytes));
			break;
		case SO_SNDBUF:
			rc = put_int(val, len, f->sndbuf ? f->sndbuf : ring_report(f->tx_bytes));
			break;
		case SO_LINGER:
			if (*len < sizeof(struct linger)) {
				rc = -EINVAL;
			} else {
				memcpy(val, &f->linger, sizeof(f->linger));
				*len = sizeof(struct linger);
				rc = 0;
			}
			break;
		case SO_RCVTIMEO:
		case SO_SNDTIMEO: {
			int64_t ns = name == SO_RCVTIMEO ? f->rcvtimeo_ns : f->sndtimeo_ns;
			struct timeval tv = { .tv_sec = ns / 1000000000,
					      .tv_usec = (ns % 1000000000) / 1000 };

			if (*len < sizeof(tv)) {
				rc = -EINVAL;
			} else {
				memcpy(val, &tv, sizeof(tv));
				*len = sizeof(tv);
				rc = 0;
			}
			break;
		}
		default:
			break;
		}
		fs_unlock(f);
		if (rc <= 0)
			return rc;
	}
	if (level == IPPROTO_TCP && name == TCP_INFO && !f->udp)
		return tcp_info(app, s, val, len);
	if (level == IPPROTO_TCP && name == TCP_CORK) {
		fs_lock(f);
		rc = put_int(val, len, f->cork);
		fs_unlock(f);
		return rc;
	}
	c.arg[0] = (uint64_t)level;
	c.arg[1] = (uint64_t)name;
	c.arg[2] = *len > ISOSTACK_SHM_OPT_MAX ? ISOSTACK_SHM_OPT_MAX : *len;
	rc = isosock__simple_call(app, s, &c, &st);
	if (rc < 0)
		return rc;
	if (st.result > ISOSTACK_SHM_OPT_MAX)
		return -EPROTO;
	if ((socklen_t)st.result < *len)
		*len = (socklen_t)st.result;
	memcpy(val, &st.arg[2], *len);
	return 0;
}
