/*
 * iso_probe: what one application can reach of another's memory (issue
 * 14, point 3).  Run as a second user; it says what each attempt gave,
 * one line each, so the test can check every errno.
 *
 *   iso_probe CONTROL PID [PATH...]
 *
 *   attach             attaches through CONTROL (happ.c, like the shim),
 *                      opens a TCP socket; prints "segment INODE" and,
 *                      for every extent id 0..63 the daemon gives it
 *                      (CTL_EXTENT), "extent ID INODE": the test compares
 *                      them with the other application's memfds;
 *   open PATH          for each PATH (another process's /proc/PID/fd/N,
 *                      /proc/PID/map_files/..., hugetlbfs files): open
 *                      read-only, then mmap and read a byte if it opened:
 *                      "open PATH ERRNO" or "open PATH ok" + "mmap ...";
 *   /proc/PID/mem      open and pread at the first address of /proc/PID/maps
 *                      (read as this user: usually refused itself);
 *   process_vm_readv   one byte of PID;
 *   pidfd_getfd        PID's fds 0..63 through a pidfd.
 * Each result is "ok" or the errno's name.  Exit 0 once it printed them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "happ.h"

static const char *ename(int e)
{
	switch (e) {
	case 0: return "ok";
	case EACCES: return "EACCES";
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case ESRCH: return "ESRCH";
	case EBADF: return "EBADF";
	case EINVAL: return "EINVAL";
	case ENOSYS: return "ENOSYS";
	default: return strerror(e);
	}
}

static unsigned long inode(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? (unsigned long)st.st_ino : 0;
}

static void probe_attach(const char *ctl)
{
	struct happ a;
	int rc = happ_attach(&a, ctl, "iso_probe"), s;

	if (rc < 0) {
		printf("attach %s\n", ename(-rc));
		return;
	}
	s = happ_socket(&a, SOCK_STREAM, 5000);
	printf("attach ok app %u socket %d\n", a.app_id, s);
	printf("segment %lu\n", inode(a.seg_fd));
	for (uint32_t id = 0; id < 64; id++) {
		uint64_t off, size;
		int fd = happ_extent(&a, id, &off, &size);

		if (fd >= 0) {
			printf("extent %u %lu\n", id, inode(fd));
			close(fd);
		} else if (fd != -ENOENT) {
			printf("extent %u %s\n", id, ename(-fd));
		}
	}
	happ_detach(&a);
}

static void probe_open(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	void *p;

	if (fd < 0) {
		printf("open %s %s\n", path, ename(errno));
		return;
	}
	printf("open %s ok\n", path);
	p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		printf("mmap %s %s\n", path, ename(errno));
	} else {
		printf("mmap %s ok byte %u\n", path, *(volatile uint8_t *)p);
		munmap(p, 4096);
	}
	close(fd);
}

/* The first mapping's start in /proc/PID/maps, or 0 if unreadable. */
static unsigned long first_addr(int pid)
{
	char path[64];
	unsigned long a = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "re");
	if (f == NULL) {
		printf("maps %d %s\n", pid, ename(errno));
		return 0;
	}
	if (fscanf(f, "%lx", &a) != 1)
		a = 0;
	fclose(f);
	return a;
}

static void probe_process(int pid)
{
	char path[64], b;
	unsigned long addr = first_addr(pid);
	struct iovec l = { &b, 1 }, r = { (void *)(addr ? addr : 0x400000), 1 };
	int fd, pfd;

	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		printf("open %s %s\n", path, ename(errno));
	} else {
		ssize_t n = pread(fd, &b, 1, (off_t)r.iov_base);

		printf("open %s ok\n", path);
		printf("pread %s %s\n", path, n == 1 ? "ok" : ename(errno));
		close(fd);
	}
	printf("process_vm_readv %d %s\n", pid,
	       process_vm_readv(pid, &l, 1, &r, 1, 0) == 1 ? "ok" : ename(errno));
	pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd < 0) {
		printf("pidfd_open %d %s\n", pid, ename(errno));
		return;
	}
	for (int n = 0, shown = 0; n < 64; n++) {
		int got = (int)syscall(SYS_pidfd_getfd, pfd, n, 0);
		int e = errno;

		if (got >= 0) {
			printf("pidfd_getfd %d %d ok inode %lu\n", pid, n, inode(got));
			close(got);
		} else if (e != EBADF && !shown++) {
			printf("pidfd_getfd %d %s\n", pid, ename(e));
		}
	}
	close(pfd);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: iso_probe CONTROL PID [PATH...]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	probe_attach(argv[1]);
	for (int i = 3; i < argc; i++)
		probe_open(argv[i]);
	probe_process(atoi(argv[2]));
	return 0;
}
