/*
 * Who may use the control socket, and how much of the daemon one user may
 * hold (docs/daemon.md, "Who may attach").
 *
 * The socket file is the first gate, as docker's socket or VPP's api
 * segment: owned by the daemon's user and the control group, mode 0660
 * (0600, the daemon's user only, without a group).  The peer's
 * credentials are the second, checked at accept with SO_PEERCRED and
 * SO_PEERGROUPS (the credentials of the connect() call, as the kernel
 * recorded them: no /proc read that pid reuse could fool, no NSS lookup
 * on the stack core): root, the daemon's own user, or a member of the
 * control group.  So a socket file whose mode someone widened still
 * refuses the others.
 *
 * Then the bounds: an admitted user other than root holds at most
 * max_apps_per_uid applications and ISOD_MAX_PENDING_PER_UID connections
 * that have not attached (stats clients included), so one user cannot
 * take every application or pending slot; root is exempt, as the kernel
 * exempts it from RLIMIT_NPROC.  Each check is O(applications) or
 * O(pending), both small, at accept or attach only.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

int isod_ctl_set_perms(const char *path, int gid)
{
	if (gid >= 0 && chown(path, (uid_t)-1, (gid_t)gid) != 0)
		return -errno;
	if (chmod(path, gid >= 0 ? 0660 : 0600) != 0)
		return -errno;
	return 0;
}

/* Whether gid is among the groups the peer connected with. */
static bool peer_in_group(int fd, const struct ucred *cr, gid_t gid)
{
	gid_t small[64], *groups = small;
	socklen_t len = sizeof(small);
	bool found = cr->gid == gid;

	if (found)
		return true;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) != 0) {
		if (errno != ERANGE || (groups = malloc(len)) == NULL)
			return false;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) != 0) {
			free(groups);
			return false;
		}
	}
	for (size_t i = 0; i < len / sizeof(gid_t) && !found; i++)
		found = groups[i] == gid;
	if (groups != small)
		free(groups);
	return found;
}

int isod_ctl_peer_uid(int fd, uint32_t *uid)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0)
		return -errno;
	*uid = cr.uid;
	return 0;
}

int isod_ctl_admit(struct isod_backend *be, int fd, uint32_t *uid)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	unsigned pending = 0;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0)
		return -EACCES;
	*uid = cr.uid;
	if (cr.uid != 0 && cr.uid != geteuid() &&
	    (be->conf.control_gid < 0 || !peer_in_group(fd, &cr, (gid_t)be->conf.control_gid)))
		return -EACCES;
	if (cr.uid == 0)
		return 0;
	for (unsigned i = 0; i < be->npending; i++)
		pending += be->pending_uid[i] == cr.uid;
	return pending < ISOD_MAX_PENDING_PER_UID ? 0 : -EAGAIN;
}

int isod_ctl_uid_room(const struct isod_backend *be, uint32_t uid)
{
	unsigned held = 0;

	if (uid == 0 || be->conf.max_apps_per_uid == 0)
		return 0;
	for (const struct isod_app *a = be->apps; a != NULL; a = a->next)
		held += a->uid == uid;
	return held < be->conf.max_apps_per_uid ? 0 : -EMFILE;
}
