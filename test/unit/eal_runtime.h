/*
 * For unit tests that start DPDK's EAL: its runtime directory
 * (/var/run/dpdk/<file-prefix>) outlives rte_eal_cleanup(), so a test
 * removes it itself, leaving nothing behind. Call with the path saved from
 * rte_eal_get_runtime_dir() before the cleanup.
 */
#ifndef ISOSTACK_TEST_EAL_RUNTIME_H
#define ISOSTACK_TEST_EAL_RUNTIME_H

#include <dirent.h>
#include <string.h>
#include <unistd.h>

static inline void test_remove_runtime_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	rmdir(path);
}

#endif
