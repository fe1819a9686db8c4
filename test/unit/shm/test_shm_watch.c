/*
 * SENDs the stack does not need (shm_abi.h, sockdir.tx_watch) under
 * stress: no lost SEND.
 *
 * While the stack watches a socket's tx_prod, the application writes and
 * posts no SEND; the stack, to stop watching, stores tx_watch = 0
 * (isoshm_stack_tx_unwatch), issues membarrier(GLOBAL_EXPEDITED) and
 * fences (TW2), and looks at tx_prod once more (isoshm_stack_tx_unwatched).
 * The application stores tx_prod (release), and after a compiler barrier
 * (TW1: the process registered for membarrier at attach) loads tx_watch
 * (isoshm_app_tx_watched).  Without the membarrier a store-load
 * reordering on the application's CPU lets both miss each other: the application sees
 * the watch still on and posts nothing, the stack sees no new byte and
 * stops watching, and the byte waits for a SEND nobody posts.  Every
 * other round the application writes under a hold (MSG_MORE: sock.tx_hold
 * before the byte), then ends the hold and decides: a stack that stops
 * while the hold shows must leave the byte to the SEND the application
 * then posts.
 *
 * Two threads (application on CPU 0, stack on CPU 1) start each round
 * together; the stack delays its stop by a bias it moves after each round
 * towards the moment of the application's look (later when the look
 * found the watch off, earlier when on), plus a small random delay, so
 * the two overlap.  A lost SEND is detected exactly: at the
 * end of a round the application skipped its SEND and the stack's stop
 * found no byte; sequentially consistent orders cannot produce both.
 * ISOSHM_WATCH_UNFENCED=1 runs the stack's stop without the membarrier,
 * which this test should catch (probabilistic: both threads on different CPUs
 * within a few nanoseconds; it did on the 2-core test VM).  Needs 2 CPUs
 * (77 otherwise).
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
#define RUN_NS   (6LL * 1000000000)   /* under the meson timeout, ASan too */
#define SOCK     1
#define RING     4096u

static struct isoshm_stack *stk;
static struct isoshm_app *app;
static bool unfenced;                        /* ISOSHM_WATCH_UNFENCED=1 */

/* The rounds' handshake between the two test threads (not the segment). */
static _Atomic uint32_t go;          /* round the stack started (watching) */
static _Atomic uint32_t app_done;    /* round whose byte the app wrote and decided */
static _Atomic uint32_t app_skipped; /* round whose SEND the app skipped */
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

static void *app_main(void *arg)
{
	struct isostack_shm_cmd c = { .opcode = ISOSTACK_SHM_OP_SEND, .sock = SOCK };
	uint32_t x = 0x9e3779b9u;
	uint8_t b = 0;

	(void)arg;
	pin(0);
	for (uint32_t r = 1;; r++) {
		bool held = r & 1, watched;

		wait_for(&go, r);
		if (atomic_load(&stop))
			return NULL;
		delay(rnd(&x) % 64);
		if (held)
			isoshm_app_tx_hold(app, SOCK, true);
		if (isoshm_app_tx_write(app, SOCK, &b, 1) != 1) {
			atomic_store(&stop, true);
			return NULL;
		}
		b++;
		if (held) {
			delay(rnd(&x) % 16);
			isoshm_app_tx_hold(app, SOCK, false);
		}
		watched = isoshm_app_tx_watched(app, SOCK);
		if (watched)
			atomic_store_explicit(&app_skipped, r, memory_order_relaxed);
		else if (isoshm_app_submit_db(app, SOCK, 0, &c, 1) != 1) {
			atomic_store(&stop, true);
			return NULL;
		}
		atomic_store_explicit(&app_done, r, memory_order_release);
	}
}

/* ---- Stack thread (this one) ---------------------------------------------- */

static void no_lost_send(void **state)
{
	struct isostack_shm_cmd cmds[4];
	struct isoshm_span sp[2];
	uint32_t ids[4];
	pthread_t tid;
	uint32_t x = 0x2545f491u, r, bias = 0;
	uint64_t lost = 0, by_watch = 0, by_send = 0, skipped = 0;
	int64_t t0 = now_ns();

	(void)state;
	assert_int_equal(pthread_create(&tid, NULL, app_main, NULL), 0);
	pin(1);
	for (r = 1; r <= ROUNDS && now_ns() - t0 < RUN_NS; r++) {
		bool seen;
		int n;

		assert_int_equal(isoshm_stack_tx_watch(stk, SOCK), 0);
		atomic_store_explicit(&go, r, memory_order_release);
		delay(bias + rnd(&x) % 32);
		assert_int_equal(isoshm_stack_tx_unwatch(stk, SOCK), 0);
		if (!unfenced)
			assert_int_equal(isoshm_membarrier_global(), 0);
		seen = isoshm_stack_tx_unwatched(stk, SOCK) == 1;
		by_watch += seen;
		wait_for(&app_done, r);
		if (atomic_load(&stop))
			break;
		/* The doorbell and the command, if it posted one. */
		while (isoshm_stack_poll(stk, ids, 4) > 0)
			;
		n = isoshm_stack_recv_cmds(stk, SOCK, cmds, 4);
		assert_true(n >= 0);
		by_send += n > 0;
		/* Keep the stop where the application's look is: later when
		 * it saw the watch off, earlier when it saw it on. */
		if (atomic_load_explicit(&app_skipped, memory_order_relaxed) == r) {
			skipped++;
			bias -= bias > 0;
		} else if (bias < 4096) {
			bias++;
		}
		if (!seen && n == 0)
			lost++;     /* it skipped the SEND, we stopped without its byte */
		/* Clean ring for the next round. */
		assert_int_equal(isoshm_stack_tx_peek(stk, SOCK, sp), 1);
		assert_int_equal(isoshm_stack_tx_release(stk, SOCK, 1), 0);
	}
	atomic_store(&stop, true);
	pthread_join(tid, NULL);
	print_message("%u rounds in %.1f s (%s stop): %llu bytes seen by the stop, %llu by a "
		      "SEND, %llu SENDs skipped, %llu lost SENDs\n", r - 1,
		      (double)(now_ns() - t0) / 1e9, unfenced ? "no membarrier" : "membarrier",
		      (unsigned long long)by_watch, (unsigned long long)by_send,
		      (unsigned long long)skipped, (unsigned long long)lost);
	assert_true(r > 1);
	if (lost != 0)
		fail_msg("%llu lost SENDs: a byte was left for a SEND nobody posted",
			 (unsigned long long)lost);
}

/* A stop that finds a held byte leaves it (the SEND at the hold's end
 * takes it); one written after the hold ended is taken.  One thread. */
static void hold_respected(void **state)
{
	struct isoshm_span sp[2];
	uint8_t b = 7;

	(void)state;
	assert_int_equal(isoshm_stack_tx_watch(stk, SOCK), 0);
	assert_true(isoshm_app_tx_watched(app, SOCK));
	isoshm_app_tx_hold(app, SOCK, true);
	assert_int_equal(isoshm_app_tx_write(app, SOCK, &b, 1), 1);
	assert_false(isoshm_stack_tx_moved(stk, SOCK));
	assert_int_equal(isoshm_stack_tx_unwatch(stk, SOCK), 0);
	assert_int_equal(isoshm_stack_tx_unwatched(stk, SOCK), 0);
	isoshm_app_tx_hold(app, SOCK, false);
	assert_false(isoshm_app_tx_watched(app, SOCK));   /* so it posts a SEND */
	assert_int_equal(isoshm_stack_tx_peek(stk, SOCK, sp), 1);
	assert_int_equal(isoshm_stack_tx_release(stk, SOCK, 1), 0);

	assert_int_equal(isoshm_stack_tx_watch(stk, SOCK), 0);
	assert_int_equal(isoshm_app_tx_write(app, SOCK, &b, 1), 1);
	assert_true(isoshm_stack_tx_moved(stk, SOCK));
	assert_int_equal(isoshm_stack_tx_unwatch(stk, SOCK), 0);
	assert_int_equal(isoshm_stack_tx_unwatched(stk, SOCK), 1);
	assert_int_equal(isoshm_stack_tx_peek(stk, SOCK, sp), 1);
	assert_int_equal(isoshm_stack_tx_release(stk, SOCK, 1), 0);
	assert_false(isoshm_stack_tx_moved(stk, SOCK));
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
		cmocka_unit_test(hold_respected),
		cmocka_unit_test(no_lost_send),
	};
	const char *e = getenv("ISOSHM_WATCH_UNFENCED");

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
		printf("skipped: a store-load reordering needs two CPUs, this machine has one\n");
		return 77;
	}
	unfenced = e != NULL && strcmp(e, "1") == 0;
	return cmocka_run_group_tests_name("shm_watch", tests, group_setup, group_teardown);
}
