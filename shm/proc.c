/*
 * Process identity for the members of an application (shim and daemon
 * alike): a pid plus its start time tells a reused pid apart.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "isoshm.h"

uint64_t isoshm_proc_start(int32_t pid)
{
	char path[48], buf[512];
	uint64_t v = 0;
	ssize_t n;
	int fd, field;
	char *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')');        /* comm may hold spaces and parens */
	if (p == NULL || p[1] != ' ')
		return 0;
	p += 2;
	if (*p == 'Z' || *p == 'X')
		return 0;
	for (field = 3; *p != '\0' && field < 22; p++)
		if (*p == ' ')
			field++;
	while (*p >= '0' && *p <= '9')
		v = v * 10 + (uint64_t)(*p++ - '0');
	return v ? v : 1;
}
