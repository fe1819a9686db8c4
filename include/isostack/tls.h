/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef ISOSTACK_TLS_H
#define ISOSTACK_TLS_H
/*
 * Thread-locals of libisosock.so and of the shm library linked into it:
 * the initial-exec model, a fixed offset from the thread pointer, instead
 * of the shared-object default (global-dynamic), a __tls_get_addr() call
 * per access: 2.8% of memcached's samples under the shim (perf, issue 13).
 * Safe because the shim is preloaded, never dlopen()ed, so its TLS is in
 * the initial block; in the daemon's executable it is the default anyway.
 */
#define ISOSTACK_TLS __attribute__((tls_model("initial-exec")))

#endif
