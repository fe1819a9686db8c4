/*
 * The TX wake-up handshake under stress: no lost wake-up.
 *
 * An application thread that waits for TX space announces itself as a
 * waiter and re-checks tx_cons (isoshm_app_wait: waiters++, fence S1,
 * ready()); the stack publishes tx_cons (isoshm_stack_tx_release, a
 * store-release) and then checks for waiters (isoshm_stack_waiters, fence
 * W3) to decide whether to post EV_TX and wake it.  Without a full fence
 * on both sides, a store-load reordering lets both miss each other: the
 * re-check reads the old tx_cons and the check reads no waiter, and the
 * waiter sleeps with the space there (the wait slices of the shim, 20 ms,
 * hid it).
 *
 * Two threads (application on CPU 0, stack on CPU 1) run that handshake
 * round after round with the wait's timeout infinite, starting each round
 * together and with random small delays so their windows overlap.  A
 * lost wake-up is detected exactly, not by timing: the re-check returned
 * false (the application is about to sleep) and the stack's check said
 * nobody waits; sequentially consistent orders cannot produce both.  The
 * stack thread then wakes the sleeper itself so the run goes on, and the
 * test fails at the end with the count.
 *
 * Probabilistic: store-load reordering needs both threads on different
 * CPUs in the same few nanoseconds.  On the 2-core test VM the check
 * without the fence (ISOSHM_WAKE_UNFENCED=1 runs the handshake with the
 * stack's old relaxed loads, as the daemon read them) catches lost
 * wake-ups within the run in our tries; with the fence it must find none.
 * The run stops after ROUNDS rounds or RUN_NS, whichever comes first.
 * Needs 2 CPUs (77 otherwise).
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "isoshm.h"
#include "shm_fixture.h"

#define ROUNDS   3000000
#define RUN_NS   (8LL * 1000000000)   /* under the meson timeout, ASan too */
#define SOCK     1
#define RING     4096u

static struct isoshm_stack *stk;
static struct isoshm_app *app;
static struct isostack_shm_sock *shared;     /* SOCK's block (app's mapping) */
static bool unfenced;                        /* ISOSHM_WAKE_UNFENCED=1 */

/* The rounds' handshake between the two test threads (not the segment). */
static _Atomic uint32_t go;          /* round the stack started */
static _Atomic uint32_t app_ready;   /* round whose byte the app wrote */
static _Atomic uint32_t app_sleepy;  /* round whose re-check found nothing */
static _Atomic uint32_t app_done;    /* round whose wait returned */
static _Atomic bool stop;

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* Spins until *w reaches v (or stop), yielding now and then: the two
 * threads may share a CPU when something else holds the other one. */
static void wait_for(_Atomic uint32_t *w, uint32_t v)
{
	for (unsigned i = 0; atomic_load_explicit(w, memory_order_acquire) != v; i++) {
		if (atomic_load_explicit(&stop, memory_order_relaxed))
			return;
		if ((i & 1023) == 1023)
			sched_yield();
	}
}

static void delay(unsigned n)
{
	for (volatile unsigned i = 0; i < n; i++)
		;
}

static uint32_t rnd(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

/* ---- Application thread ------------------------------------------------- */

struct waitctx {
	uint32_t round, cons, calls;
};

/* TX space came: tx_cons moved past what it was.  The first call is the
 * re-check after the announcement (spin 0): false there means the thread
 * goes to sleep, which it says. */
static bool space_came(void *arg)
{
	struct waitctx *w = arg;
	/* Pairs with the stack's store-release of tx_cons (ring consume). */
	bool moved = atomic_load_explicit(&shared->tx_cons, memory_order_acquire) != w->cons;

	if (w->calls++ == 0 && !moved)
		atomic_store_explicit(&app_sleepy, w->round, memory_order_release);
	return moved;
}

static void *app_main(void *arg)
{
	uint32_t x = 0x9e3779b9u;
	uint8_t b = 0;

	(void)arg;
	pin(0);
	for (uint32_t r = 1;; r++) {
		struct waitctx w = { .round = r };

		/* One byte pending, then the stack may start the round. */
		if (isoshm_app_tx_write(app, SOCK, &b, 1) != 1) {
			atomic_store(&stop, true);
			return NULL;
		}
		b++;
		w.cons = atomic_load_explicit(&shared->tx_cons, memory_order_relaxed);
		atomic_store_explicit(&app_ready, r, memory_order_release);
		wait_for(&go, r);
		if (atomic_load(&stop))
			return NULL;
		delay(rnd(&x) % 32);
		/* No spin, no timeout: only a wake-up (or the data seen at the
		 * re-check) gets it out. */
		if (isoshm_app_wait(app, SOCK, space_came, &w, 0, -1) != 0) {
			atomic_store(&stop, true);
			return NULL;
		}
		atomic_store_explicit(&app_done, r, memory_order_release);
	}
}

/* ---- Stack thread (this one) ---------------------------------------------- */

/* The check as the daemon did it before W3: relaxed loads right after the
 * store-release of tx_cons, no fence (ISOSHM_WAKE_UNFENCED=1). */
static bool waiters_unfenced(void)
{
	const struct isostack_shm_wait *wt = (const void *)((const uint8_t *)isoshm_stack_base(stk) +
							    isoshm_stack_header(stk)->wait_off);
	struct isostack_shm_sock *sk = (void *)((uint8_t *)isoshm_stack_base(stk) +
						isoshm_stack_header(stk)->socks_off);

	return atomic_load_explicit(&sk[SOCK].waiters, memory_order_relaxed) != 0 ||
	       atomic_load_explicit(&wt->waiters, memory_order_relaxed) != 0;
}

static void no_lost_tx_wakeup(void **state)
{
	struct isoshm_span sp[2];
	pthread_t tid;
	uint32_t x = 0x2545f491u, r;
	uint64_t lost = 0, woke = 0, rechecked = 0;
	int64_t t0 = now_ns();

	(void)state;
	assert_int_equal(pthread_create(&tid, NULL, app_main, NULL), 0);
	pin(1);
	for (r = 1; r <= ROUNDS && now_ns() - t0 < RUN_NS; r++) {
		bool waits;

		wait_for(&app_ready, r);
		if (atomic_load(&stop))
			break;
		assert_int_equal(isoshm_stack_tx_peek(stk, SOCK, sp), 1);
		atomic_store_explicit(&go, r, memory_order_release);
		delay(rnd(&x) % 32);
		/* Publish tx_cons (store-release), then look for a waiter. */
		assert_int_equal(isoshm_stack_tx_release(stk, SOCK, 1), 0);
		waits = unfenced ? waiters_unfenced() : isoshm_stack_waiters(stk, SOCK);
		if (waits) {
			isoshm_stack_notify(stk, SOCK);
			woke++;
		} else {
			/* Nobody announced, so the re-check must see the
			 * space: the wait returns without sleeping. */
			for (;;) {
				if (atomic_load_explicit(&app_done, memory_order_acquire) == r)
					break;
				if (atomic_load_explicit(&app_sleepy, memory_order_acquire) == r) {
					/* Both missed: a lost wake-up.  Its
					 * announcement is visible now (it came
					 * before app_sleepy): wake it. */
					lost++;
					isoshm_stack_notify(stk, SOCK);
					break;
				}
				if (atomic_load(&stop))
					break;
			}
		}
		wait_for(&app_done, r);
		rechecked += atomic_load(&app_sleepy) == r;
	}
	atomic_store(&stop, true);
	pthread_join(tid, NULL);
	print_message("%u rounds in %.1f s (%s check): %llu woken, %llu re-checks found "
		      "nothing, %llu lost wake-ups\n", r - 1, (double)(now_ns() - t0) / 1e9,
		      unfenced ? "unfenced" : "fenced", (unsigned long long)woke,
		      (unsigned long long)rechecked, (unsigned long long)lost);
	assert_true(r > 1);
	if (lost != 0)
		fail_msg("%llu lost TX wake-ups: a waiter slept with the space there",
			 (unsigned long long)lost);
}

/* ---- Group ------------------------------------------------------------------ */

static int fetch_cb(void *arg, uint32_t id, uint64_t *off, uint64_t *size)
{
	(void)arg;
	return extent_fd_dup(stk, id, off, size);
}

static int group_setup(void **state)
{
	struct isoshm_params p;
	uint64_t ext_off;
	int sv[2], fd = -1;
	char c = 'S', got = 0;

	(void)state;
	isoshm_params_default(&p);
	p.max_sockets = 4;
	p.nr_doorbells = 1;
	p.arena_size = UINT64_C(8) << 20;
	p.hugetlb = false;
	if (isoshm_stack_create(&stk, &p) < 0)
		return -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
	    isoshm_send_fd(sv[0], isoshm_stack_fd(stk), &c, 1) < 0 ||
	    isoshm_recv_fd(sv[1], &fd, &got, 1) != 1 || isoshm_app_attach(&app, fd, NULL) < 0)
		return -1;
	close(sv[0]);
	close(sv[1]);
	isoshm_app_set_fetch(app, fetch_cb, NULL);
	open_ids_in_new_extent(stk, app, 2, RING, &ext_off);
	shared = isoshm_app_sock(app, SOCK);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	isoshm_app_detach(app);
	isoshm_stack_destroy(stk);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(no_lost_tx_wakeup),
	};
	const char *e = getenv("ISOSHM_WAKE_UNFENCED");

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
		printf("skipped: a store-load reordering needs two CPUs, this machine has one\n");
		return 77;
	}
	unfenced = e != NULL && strcmp(e, "1") == 0;
	return cmocka_run_group_tests_name("shm_wake", tests, group_setup, group_teardown);
}
