/*
 * The doorbell producer lock (shm/dblock.c) against owners that die
 * holding it: a process that exited and was reaped, a zombie (exited, its
 * parent, the one waiting for the lock, has not reaped it), and a pid
 * that now names another process (a reused pid, made here by recording a
 * live process's pid with a start time that is not its own).  A live
 * owner is never taken for dead.  Each lock attempt that should succeed
 * runs under alarm(): a hang is a SIGALRM failure, not a stuck test.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "isoshm.h"
#include "internal.h"

/* The takeover looks at the owner every ~1M spins (tens of ms): 10 s is
 * far past it, and short enough for the meson timeout. */
#define LOCK_BOUND_S 10

static _Atomic uint64_t *shared_word(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	*(_Atomic uint64_t *)p = 0;
	return p;
}

/* A child that takes the lock and exits holding it; returns its pid once
 * the lock is held (its exit status says so: waitid WNOWAIT leaves it a
 * zombie). */
static pid_t child_dies_holding(_Atomic uint64_t *w)
{
	siginfo_t si;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		isoshm__app_process_init();     /* as the fork handler would */
		isoshm__db_lock(w);
		_exit(atomic_load(w) == isoshm__db_self() ? 0 : 1);
	}
	assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
	assert_int_equal(si.si_code, CLD_EXITED);
	assert_int_equal(si.si_status, 0);
	assert_true(atomic_load(w) != 0);   /* still held by the dead child */
	return pid;
}

static void lock_bounded(_Atomic uint64_t *w)
{
	alarm(LOCK_BOUND_S);
	isoshm__db_lock(w);
	alarm(0);
	assert_int_equal(atomic_load(w), isoshm__db_self());
	isoshm__db_unlock(w);
	assert_int_equal(atomic_load(w), 0);
}

static void test_reaped_owner(void **state)
{
	_Atomic uint64_t *w = shared_word();
	pid_t pid = child_dies_holding(w);

	(void)state;
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	assert_true(isoshm__db_owner_dead(atomic_load(w)));
	lock_bounded(w);
	munmap((void *)w, 4096);
}

static void test_zombie_owner(void **state)
{
	_Atomic uint64_t *w = shared_word();
	pid_t pid = child_dies_holding(w);

	(void)state;
	/* not reaped: kill(pid, 0) succeeds on it */
	assert_int_equal(kill(pid, 0), 0);
	assert_true(isoshm__db_owner_dead(atomic_load(w)));
	lock_bounded(w);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	munmap((void *)w, 4096);
}

static void test_reused_pid(void **state)
{
	_Atomic uint64_t *w = shared_word();
	int p[2];
	pid_t pid;
	char c;

	(void)state;
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[1]);
		(void)read(p[0], &c, 1);       /* lives until the parent lets go */
		_exit(0);
	}
	close(p[0]);
	uint64_t real = isoshm_proc_start(pid);

	assert_true(real != 0);
	/* The child as owner: alive, never taken for dead. */
	assert_false(isoshm__db_owner_dead(isoshm__db_word(pid, real)));
	/* Its pid with another start time: the owner that held this pid
	 * before is gone. */
	atomic_store(w, isoshm__db_word(pid, real + 1));
	assert_true(isoshm__db_owner_dead(atomic_load(w)));
	lock_bounded(w);
	close(p[1]);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	munmap((void *)w, 4096);
}

static void test_self_and_free(void **state)
{
	(void)state;
	isoshm__app_process_init();
	assert_true(isoshm__db_self() != 0);
	assert_false(isoshm__db_owner_dead(isoshm__db_self()));
	assert_false(isoshm__db_owner_dead(0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_self_and_free),
		cmocka_unit_test(test_reaped_owner),
		cmocka_unit_test(test_zombie_owner),
		cmocka_unit_test(test_reused_pid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
