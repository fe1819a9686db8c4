/*
 * The shim across fork, exec and posix_spawn: the fork handlers, what an
 * image hands the next one in ISOSTACK_INHERIT, and the adoption of those
 * sockets by the new image (docs/sockets.md, "fork and exec").  The
 * socket calls themselves are in route.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "shadow.h"
#include "shim.h"

#define L isosock_libc

/*
 * fork (pthread_atfork handlers, registered by interpose.c).  prepare
 * runs last of the application's prepare handlers: it takes the fd table
 * locks and quiesces the stack adapter (no call into the front-end core in
 * any thread, so the child inherits no core lock held by a thread it does
 * not have).  The back-end makes the child a holder of every stack
 * socket of the parent: both drive them, and a socket is closed in the
 * stack when its last holder closes it (see backend_core.c and core.c).
 */
void isosock_r_atfork_prepare(void)
{
	isosock_fd_atfork(0);
	isosock_sh_atfork(0);
	if (isosock_be && isosock_be->atfork_prepare)
		isosock_be->atfork_prepare();
}

void isosock_r_atfork_parent(bool failed)
{
	(void)failed;
	if (isosock_be && isosock_be->atfork_parent)
		isosock_be->atfork_parent();
	isosock_sh_atfork(1);
	isosock_fd_atfork(1);
}

void isosock_r_atfork_child(void)
{
	isosock_sh_atfork(2);
	isosock_fd_atfork(2);
	isosock_e_atfork_child();
	if (isosock_be && isosock_be->atfork_child)
		isosock_be->atfork_child();
}

void isosock_r_fork_done(pid_t pid)
{
	if (isosock_be && isosock_be->fork_done)
		isosock_be->fork_done(pid);
}

void isosock_r_child_reaped(void)
{
	if (isosock_be && isosock_be->child_reaped)
		isosock_be->child_reaped();
}

bool isosock_r_private_fd(int fd)
{
	return isosock_be && isosock_be->private_fd && isosock_be->private_fd(fd);
}

int isosock_r_private_make_room(int newfd)
{
	if (!isosock_r_private_fd(newfd))
		return 0;
	return isosock_be->private_move ? isosock_be->private_move(newfd) : -EBUSY;
}

void isosock_r_private_room_undo(int newfd)
{
	L.close(newfd);
}

/*
 * exec.  The new image gets ISOSTACK_INHERIT = the back-end's description
 * of the attachments, '#', then one "fd,type,domain,flags,rcvtimeo,sndtimeo,
 * att,slot,dev,ino,eid" entry per isostack socket fd without FD_CLOEXEC,
 * ';'-separated.  Its constructor (interpose.c) calls isosock_r_exec_adopt:
 * fds that were dup()s of one socket share one file again.  A socket whose
 * every fd was close-on-exec is released there, as the kernel closes it at
 * exec.
 *
 * dev/ino are the shadow's (the kernel's fstat): what the fd is, whatever
 * its number; a light shadow's eventfd shares them with every eventfd, so
 * its eventfd id (/proc/self/fdinfo) follows as a tenth field, 0 for a
 * kernel socket.  A spawned child (posix_spawn file actions) may have it at
 * another fd (dup2 to stdout), at several, or nowhere; the new image
 * adopts the fds that hold that kernel socket, not the numbers listed.
 */
#define INHERIT_VAR "ISOSTACK_INHERIT="
#define INHERIT_FLAGS (ISOSOCK_F_NONBLOCK | ISOSOCK_F_DUAL | ISOSOCK_F_LISTEN | \
		       ISOSOCK_F_CONNECTING | ISOSOCK_F_SHUT_WR | ISOSOCK_F_LIGHT)

/* The kernel's fstat of fd, not ours (a light shadow's is made up). */
static int raw_fstat(int fd, struct stat *st)
{
	return syscall(SYS_fstat, fd, st) == 0 ? 0 : -errno;
}

/* sp NULL: exec of this process; else a spawn (isosock_r_spawn_prepare). */
static char *inherit_desc(void *sp)
{
	if (!isosock_be || !isosock_be->exec_export || isosock_file_release == NULL)
		return NULL;
	int lim = isosock_fd_limit();
	size_t cap = sizeof(INHERIT_VAR) + 4096 + (size_t)lim * 128, off;
	char *s = malloc(cap);
	if (!s)
		return NULL;
	off = strlen(strcpy(s, INHERIT_VAR));
	int r = sp ? isosock_be->spawn_export(sp, s + off, cap - off - 1) :
		     isosock_be->exec_export(s + off, cap - off - 1);
	if (r <= 0) {
		free(s);
		return NULL;
	}
	off += (size_t)r;
	s[off++] = '#';
	for (int fd = 0; fd < lim; fd++) {
		struct isosock_file *f = isosock_fd_get(fd);
		if (!f)
			continue;
		int att, slot, cl = L.fcntl(fd, F_GETFD);
		uint32_t fl = atomic_load(&f->flags);
		struct stat st;
		if (cl >= 0 && !(cl & FD_CLOEXEC) && f->h && !(fl & ISOSOCK_F_MIGRATED) &&
		    raw_fstat(fd, &st) == 0 && isosock_be->handle_slot(f->h, &att, &slot) == 0) {
			/* Every eventfd has one dev/ino: a light shadow is
			 * told apart by its eventfd id too. */
			unsigned long long eid = (fl & ISOSOCK_F_LIGHT) ? isosock_sh_eventfd_id(fd) : 0;
			off += (size_t)snprintf(s + off, cap - off,
						"%d,%d,%d,%u,%lld,%lld,%d,%d,%llu,%llu,%llu;",
						fd, f->type, f->domain, fl & INHERIT_FLAGS,
						(long long)f->rcvtimeo_ns, (long long)f->sndtimeo_ns,
						att, slot, (unsigned long long)st.st_dev,
						(unsigned long long)st.st_ino, eid);
			if (sp)
				isosock_be->spawn_hold(sp, f->h);
		}
		isosock_file_put(f);
		if (off + 128 >= cap)
			break;
	}
	s[off] = '\0';
	return s;
}

char *isosock_r_exec_prepare(void)
{
	return inherit_desc(NULL);
}

char *isosock_r_spawn_prepare(void **sp)
{
	*sp = NULL;
	if (!isosock_be || !isosock_be->spawn_begin || isosock_file_release == NULL)
		return NULL;
	*sp = isosock_be->spawn_begin();
	if (!*sp)
		return NULL;
	char *s = inherit_desc(*sp);
	if (!s) {
		isosock_be->spawn_end(*sp, -1);
		*sp = NULL;
	}
	return s;
}

void isosock_r_spawn_started(void *sp)
{
	if (sp && isosock_be && isosock_be->spawn_started)
		isosock_be->spawn_started(sp);
}

void isosock_r_spawn_done(void *sp, pid_t pid)
{
	if (sp && isosock_be && isosock_be->spawn_end)
		isosock_be->spawn_end(sp, pid);
}

void isosock_r_exec_failed(void)
{
	if (isosock_be && isosock_be->exec_failed)
		isosock_be->exec_failed();
}

struct inh {
	int fd, type, domain, att, slot;
	unsigned fl;
	long long rto, sto;
	unsigned long long dev, ino, eid;   /* eid: light shadows' eventfd id */
	struct isosock_file *f;   /* its file once an fd was found */
	bool made;                /* f was made for this entry: our reference */
};

/* The entry for the shadow fd holds (its dev/ino, and for an eventfd its
 * id, read only if some light entry has that dev/ino), with the file of
 * an earlier entry of the same stack socket (a dup) if one was made. */
static struct inh *inh_find(struct inh *e, int n, int fd, const struct stat *st)
{
	unsigned long long eid = 0;
	bool eid_read = S_ISSOCK(st->st_mode);
	for (int i = 0; i < n; i++) {
		if (e[i].dev != st->st_dev || e[i].ino != st->st_ino)
			continue;
		if (!eid_read) {
			eid = isosock_sh_eventfd_id(fd);
			eid_read = true;
		}
		if (e[i].eid == eid)
			return &e[i];
	}
	return NULL;
}

static void inh_install(struct inh *e, int n, struct inh *x, int fd)
{
	if (!x->f) {
		for (int i = 0; i < n && !x->f; i++)
			if (e[i].f && e[i].att == x->att && e[i].slot == x->slot)
				x->f = e[i].f;
		if (!x->f) {
			void *h = isosock_be->handle_adopt(x->att, x->slot);
			if (!h || !(x->f = isosock_file_new(x->domain, x->type, h)))
				return;
			x->made = true;
			atomic_store(&x->f->flags, x->fl & INHERIT_FLAGS);
			x->f->rcvtimeo_ns = x->rto;
			x->f->sndtimeo_ns = x->sto;
			isosock_sh_set_ino(x->f, x->eid);
		}
	}
	(void)isosock_fd_install(fd, x->f);
}

void isosock_r_exec_adopt(const char *desc)
{
	const char *socks = strchr(desc, '#');
	if (!isosock_be || !isosock_be->exec_import || !socks)
		return;
	int cap = 0;
	for (const char *p = socks; *p; p++)
		cap += *p == ';';
	struct inh *e = calloc((size_t)cap + 1, sizeof(*e));
	char *atts = strndup(desc, (size_t)(socks - desc));
	int n = atts && e ? isosock_be->exec_import(atts) : -ENOMEM;
	free(atts);
	if (n <= 0) {
		isosock_log("cannot adopt the isostack sockets inherited through exec (%s); "
			    "they are closed", strerror(n < 0 ? -n : EINVAL));
		free(e);
		return;
	}
	isosock_file_release = isosock_r_release_file;
	int ne = 0;
	for (const char *p = socks + 1; *p && ne < cap;) {
		struct inh *x = &e[ne];
		if (sscanf(p, "%d,%d,%d,%u,%lld,%lld,%d,%d,%llu,%llu,%llu;", &x->fd, &x->type,
			   &x->domain, &x->fl, &x->rto, &x->sto, &x->att, &x->slot, &x->dev,
			   &x->ino, &x->eid) != 11)
			break;
		ne++;
		p = strchr(p, ';');
		p = p ? p + 1 : "";
	}
	/* Every fd that holds one of the listed kernel sockets, wherever the
	 * spawn's file actions put it; without /proc, the listed fds that
	 * still hold theirs. */
	struct stat st;
	DIR *d = opendir("/proc/self/fd");
	if (d) {
		int dfd = dirfd(d);
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			char *end;
			long fd = strtol(de->d_name, &end, 10);
			if (*end || end == de->d_name || fd == dfd || fd < 0 || fd > INT_MAX ||
			    raw_fstat((int)fd, &st) != 0)
				continue;
			struct inh *x = inh_find(e, ne, (int)fd, &st);
			if (x)
				inh_install(e, ne, x, (int)fd);
		}
		closedir(d);
	} else {
		for (int i = 0; i < ne; i++)
			if (raw_fstat(e[i].fd, &st) == 0 && st.st_dev == e[i].dev &&
			    st.st_ino == e[i].ino &&
			    e[i].eid == (S_ISSOCK(st.st_mode) ? 0 : isosock_sh_eventfd_id(e[i].fd)))
				inh_install(e, ne, &e[i], e[i].fd);
	}
	for (int i = 0; i < ne; i++)
		if (e[i].made)
			isosock_file_put(e[i].f);   /* the fds hold it now */
	free(e);
	/* Sockets no fd holds here any more are let go. */
	if (isosock_be->exec_done)
		isosock_be->exec_done();
}
