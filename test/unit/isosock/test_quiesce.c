/*
 * The fork quiesce (libisosock/quiesce.c) alone: threads that enter and
 * leave as calls into the front-end core do, and a writer standing for
 * fork's prepare handler, which must find no thread inside and keep new
 * ones out until it lets go; a call nested in a call of the same thread
 * (a signal handler's) is let in even while a writer waits.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "shim.h"

#define READERS 3
#define ROUNDS  500

static _Atomic int inside;        /* readers between enter and leave */
static _Atomic bool stop;
static _Atomic unsigned long calls;
static _Atomic int bad;           /* checks failed off the main thread */

static void *reader(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		bool e = isosock_quiesce_enter();

		if (!e)   /* the process has threads: the real path */
			atomic_fetch_add(&bad, 1);
		atomic_fetch_add(&inside, 1);
		for (volatile int i = 0; i < 2000; i++)
			;
		atomic_fetch_sub(&inside, 1);
		isosock_quiesce_leave(e);
		atomic_fetch_add(&calls, 1);
	}
	return NULL;
}

static void test_writer_excludes_readers(void **state)
{
	pthread_t t[READERS];
	int seen_inside = 0;

	(void)state;
	for (int i = 0; i < READERS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, reader, NULL), 0);
	for (int r = 0; r < ROUNDS; r++) {
		unsigned long c = atomic_load(&calls);

		/* readers made calls since the last round: they are running */
		while (atomic_load(&calls) < c + READERS)
			sched_yield();
		isosock_quiesce_fork_prepare();
		seen_inside += atomic_load(&inside) != 0;
		sched_yield();    /* readers run now and must stay out */
		seen_inside += atomic_load(&inside) != 0;
		isosock_quiesce_fork_parent();
	}
	atomic_store(&stop, true);
	for (int i = 0; i < READERS; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(seen_inside, 0);
	assert_int_equal(atomic_load(&bad), 0);
}

struct nest {
	_Atomic int phase;   /* 1: outer in; 2: writer waiting; 3: nested done */
};

static void *writer(void *arg)
{
	struct nest *n = arg;

	while (atomic_load(&n->phase) < 1)
		sched_yield();
	atomic_store(&n->phase, 2);
	isosock_quiesce_fork_prepare();   /* waits for the outer call */
	if (atomic_load(&n->phase) != 3)
		atomic_fetch_add(&bad, 1);
	isosock_quiesce_fork_parent();
	return NULL;
}

static void test_nested_enters_past_writer(void **state)
{
	struct nest n = { 0 };
	pthread_t w;
	bool outer, inner;

	(void)state;
	assert_int_equal(pthread_create(&w, NULL, writer, &n), 0);
	outer = isosock_quiesce_enter();
	assert_true(outer);
	atomic_store(&n.phase, 1);
	while (atomic_load(&n.phase) < 2)
		sched_yield();
	/* Time for the writer to get into prepare: if it has not, the
	 * nested enter below is let in trivially (a weaker check, never a
	 * wrong one); nothing is ordered by this sleep. */
	usleep(1000);
	inner = isosock_quiesce_enter();   /* as a signal handler's call would */
	assert_true(inner);
	isosock_quiesce_leave(inner);
	atomic_store(&n.phase, 3);
	isosock_quiesce_leave(outer);
	pthread_join(w, NULL);
	assert_int_equal(atomic_load(&bad), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_writer_excludes_readers),
		cmocka_unit_test(test_nested_enters_past_writer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
