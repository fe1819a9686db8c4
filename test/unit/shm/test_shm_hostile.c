/*
 * Nothing an application does to its own memory makes the stack fault
 * (docs/shm.md, "What an application can do to its memory").  The stack
 * side runs here; the application is a forked child that maps the
 * segment and an extent from the same fds the daemon hands out and then,
 * case by case: truncates or grows them, adds seals, allocates past
 * their end, mprotects and unmaps its mappings, punches holes (fallocate
 * and MADV_REMOVE) in the base segment and in a normal-page extent, and
 * punches a hugetlb extent while the hugepage pool is empty.  After each,
 * the stack writes and reads every byte of its mappings: any fault kills
 * this process and fails the test.
 *
 * The empty-pool case takes /tmp/isostack-daemon.lock (the lock every
 * DPDK program here runs under) so no daemon starts while the pool is
 * empty, takes every free 2 MiB page for well under a second, and gives
 * them back.  It skips when there are no hugepages or the lock stays
 * taken for 30 s; ISOSTACK_DAEMON_LOCK_HELD=1 says the caller holds it
 * (flock -o /tmp/isostack-daemon.lock env ISOSTACK_DAEMON_LOCK_HELD=1 ...).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/falloc.h>
#include <linux/memfd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "isoshm.h"

#define UNIT ISOSTACK_SHM_EXTENT_UNIT
#define LOCK_PATH "/tmp/isostack-daemon.lock"

struct fixture {
	struct isoshm_stack *s;
	uint8_t *base, *ext;         /* the stack's mappings */
	uint64_t size, ext_size;
	int seg_fd, ext_fd;
	bool hugetlb;
};

static int fx_make(struct fixture *f, bool hugetlb)
{
	struct isoshm_params p;
	uint64_t off;
	uint32_t id;
	int rc;

	memset(f, 0, sizeof(*f));
	isoshm_params_default(&p);
	p.max_sockets = 64;
	p.arena_size = 4 * UNIT;
	p.hugetlb = hugetlb;
	rc = isoshm_stack_create(&f->s, &p);
	if (rc < 0)
		return rc;
	rc = isoshm_stack_extent_new(f->s, UNIT, &id);
	if (rc < 0)
		return rc;
	rc = isoshm_stack_extent_get(f->s, id, &f->ext_fd, &off, &f->ext_size);
	if (rc < 0)
		return rc;
	f->hugetlb = rc == 1;
	f->seg_fd = isoshm_stack_fd(f->s);
	f->base = isoshm_stack_base(f->s);
	f->size = isoshm_stack_header(f->s)->segment_size;
	f->ext = (uint8_t *)isoshm_stack_arena(f->s) + off;
	/* what the stack wrote before the application acts */
	memset(f->ext, 0xa5, f->ext_size);
	memset(f->base + isoshm_stack_header(f->s)->dir_off, 0x5a, 4096);
	return 0;
}

/* The stack touches every byte it shares with the application, the way
 * its RX copies and the NIC's TX reads would.  Returns how many extent
 * bytes still hold the pattern. */
static uint64_t stack_touch(struct fixture *f)
{
	uint64_t same = 0;

	for (uint64_t i = 0; i < f->ext_size; i++)
		same += f->ext[i] == 0xa5;
	for (uint64_t off = 0; off < f->size; off += 4096) {
		volatile uint8_t *p = f->base + off;   /* sparse: faults in the unused */

		*p = *p;
	}
	memset(f->ext, 0x3c, f->ext_size);
	return same;
}

/* What the application does in its own process, to its own mappings of
 * the stack's fds.  Exits 0 if each step gave the errno expected. */
typedef int (*app_fn)(struct fixture *f, uint8_t *base, uint8_t *ext);

static void run_app(struct fixture *f, app_fn fn)
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (pid == 0) {
		uint8_t *b = mmap(NULL, f->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
				  f->seg_fd, 0);
		uint8_t *e = mmap(NULL, f->ext_size, PROT_READ | PROT_WRITE, MAP_SHARED,
				  f->ext_fd, 0);

		if (b == MAP_FAILED || e == MAP_FAILED)
			_exit(90);
		_exit(fn(f, b, e));
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

#define EXPECT(call, err) do { if ((call) == 0 || errno != (err)) return __LINE__; } while (0)

static int app_resize(struct fixture *f, uint8_t *b, uint8_t *e)
{
	(void)b; (void)e;
	EXPECT(ftruncate(f->seg_fd, 0), EPERM);
	EXPECT(ftruncate(f->seg_fd, (off_t)f->size / 2), EPERM);
	EXPECT(ftruncate(f->seg_fd, (off_t)f->size * 2), EPERM);
	EXPECT(ftruncate(f->ext_fd, 0), EPERM);
	EXPECT(ftruncate(f->ext_fd, (off_t)f->ext_size * 2), EPERM);
	EXPECT(fallocate(f->seg_fd, 0, (off_t)f->size, 4096), EPERM);
	EXPECT(fallocate(f->ext_fd, FALLOC_FL_KEEP_SIZE, (off_t)f->ext_size, UNIT), EPERM);
	/* F_SEAL_SEAL: it cannot add F_SEAL_WRITE to stop the stack's writes */
	EXPECT(fcntl(f->seg_fd, F_ADD_SEALS, F_SEAL_WRITE), EPERM);
	EXPECT(fcntl(f->ext_fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE), EPERM);
	return 0;
}

static int app_unmap(struct fixture *f, uint8_t *b, uint8_t *e)
{
	if (mprotect(b, f->size, PROT_NONE) != 0 || mprotect(e, f->ext_size, PROT_READ) != 0 ||
	    munmap(e, f->ext_size) != 0 || munmap(b, f->size) != 0 ||
	    madvise(b, f->size, MADV_DONTNEED) == 0)
		return __LINE__;
	return 0;
}

static int app_punch(struct fixture *f, uint8_t *b, uint8_t *e)
{
	if (fallocate(f->seg_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
		      (off_t)f->size) != 0)
		return __LINE__;
	if (f->hugetlb)
		return fallocate(f->ext_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
				 (off_t)f->ext_size) == 0 ? 0 : __LINE__;
	/* the same through its mapping */
	(void)b;
	return madvise(e, f->ext_size, MADV_REMOVE) == 0 ? 0 : __LINE__;
}

/* Seals refuse every size change; the stack's mappings are untouched. */
static void test_resize_refused(void **state)
{
	struct fixture f;
	uint32_t socks[4];

	(void)state;
	assert_int_equal(fx_make(&f, false), 0);
	run_app(&f, app_resize);
	assert_int_equal(stack_touch(&f), f.ext_size);
	assert_int_equal(isoshm_stack_poll(f.s, socks, 4), 0);
	isoshm_stack_destroy(f.s);
}

/* Its own mappings are its own: ours keep their pages and bytes. */
static void test_unmap_own(void **state)
{
	struct fixture f;

	(void)state;
	assert_int_equal(fx_make(&f, true), 0);
	run_app(&f, app_unmap);
	assert_int_equal(stack_touch(&f), f.ext_size);
	isoshm_stack_destroy(f.s);
}

/* A hole in normal pages: our next access gets a zeroed page, as if the
 * application had written zeros; nothing faults, nothing is counted. */
static void test_punch_normal(void **state)
{
	struct fixture f;
	uint32_t socks[4];

	(void)state;
	assert_int_equal(fx_make(&f, false), 0);
	assert_false(f.hugetlb);
	run_app(&f, app_punch);
	assert_int_equal(stack_touch(&f), 0);
	assert_int_equal(isoshm_stack_poll(f.s, socks, 4), 0);
	assert_int_equal(isoshm_stack_stats(f.s)->faults, 0);
	isoshm_stack_destroy(f.s);
}

static long free_hugepages(void)
{
	FILE *fp = fopen("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "r");
	long n = -1;

	if (fp != NULL) {
		if (fscanf(fp, "%ld", &n) != 1)
			n = -1;
		fclose(fp);
	}
	return n;
}

static void on_alarm(int sig) { (void)sig; }

/* The lock DPDK programs run under, waited for at most 30 s: -1 if not. */
static int take_daemon_lock(void)
{
	struct sigaction sa = { .sa_handler = on_alarm }, old;
	const char *held = getenv("ISOSTACK_DAEMON_LOCK_HELD");
	int fd;

	if (held != NULL && strcmp(held, "1") == 0)
		return open("/dev/null", O_RDONLY | O_CLOEXEC);
	fd = open(LOCK_PATH, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (fd < 0)
		return -1;
	sigaction(SIGALRM, &sa, &old);
	alarm(30);
	if (flock(fd, LOCK_EX) != 0) {
		close(fd);
		fd = -1;
	}
	alarm(0);
	sigaction(SIGALRM, &old, NULL);
	return fd;
}

/* A hole in a hugetlb extent with no free huge page to refill it: the
 * kernel's answer to our access is SIGBUS.  The guard maps anonymous
 * memory there instead, counts it, and the application is reported broken. */
static void test_punch_hugetlb_empty_pool(void **state)
{
	struct fixture f;
	uint32_t socks[4];
	long free_pages;
	int lock, hog;

	(void)state;
	if (free_hugepages() < 2) {
		printf("skipped: fewer than 2 free 2 MiB hugepages\n");
		skip();
	}
	lock = take_daemon_lock();
	if (lock < 0) {
		printf("skipped: %s stayed locked for 30 s (a DPDK program runs)\n", LOCK_PATH);
		skip();
	}
	assert_int_equal(fx_make(&f, true), 0);
	if (!f.hugetlb) {
		isoshm_stack_destroy(f.s);
		close(lock);
		printf("skipped: the extent did not get hugepages\n");
		skip();
	}
	run_app(&f, app_punch);
	/* Empty the pool (the punched page went back to it). */
	hog = memfd_create("hog", MFD_CLOEXEC | MFD_HUGETLB | MFD_HUGE_2MB);
	assert_true(hog >= 0);
	free_pages = free_hugepages();
	assert_true(free_pages >= 1);
	assert_int_equal(ftruncate(hog, free_pages * (long)UNIT), 0);
	(void)fallocate(hog, 0, 0, free_pages * (long)UNIT);   /* ENOSPC if some were taken */
	if (free_hugepages() != 0) {
		close(hog);
		isoshm_stack_destroy(f.s);
		close(lock);
		printf("skipped: the hugepage pool did not stay empty\n");
		skip();
	}
	/* Without the guard this access is a SIGBUS. */
	stack_touch(&f);
	close(hog);
	close(lock);
	assert_int_equal(isoshm_stack_poll(f.s, socks, 4), -EPROTO);
	assert_int_equal(isoshm_stack_stats(f.s)->faults, 1);
	isoshm_stack_destroy(f.s);
}

/* A SIGBUS outside every application's memory is not swallowed. */
static void test_foreign_sigbus_kills(void **state)
{
	struct fixture f;
	pid_t pid;
	int st;

	(void)state;
	assert_int_equal(fx_make(&f, false), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct fixture g;
		int fd = memfd_create("short", MFD_CLOEXEC);
		volatile uint8_t *p;

		/* the guard in front of the default action, not cmocka's */
		signal(SIGBUS, SIG_DFL);
		if (fx_make(&g, false) != 0)
			_exit(89);
		if (fd < 0 || ftruncate(fd, 4096) != 0)
			_exit(90);
		p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED)
			_exit(91);
		p[4096] = 1;    /* past the end of the file: SIGBUS */
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGBUS);
	isoshm_stack_destroy(f.s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resize_refused),
		cmocka_unit_test(test_unmap_own),
		cmocka_unit_test(test_punch_normal),
		cmocka_unit_test(test_foreign_sigbus_kills),
		cmocka_unit_test(test_punch_hugetlb_empty_pool),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
