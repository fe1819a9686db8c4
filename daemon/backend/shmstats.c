/*
 * What the shared-memory boundary refused, over every application the
 * back-end served: shm/'s validation counters (struct isoshm_stats) live
 * in each application's isoshm_stack and went with it when it detached,
 * and the doorbell entries it drops (ids past the segment) and the
 * opcodes it rejects were counted nowhere else.  An application's counts
 * are added to a running total when it goes; the STATS reply gives that
 * total plus the applications attached now.
 *
 *   backend.shm_bad_index   ring or doorbell indices moved backwards/jumped
 *   backend.shm_bad_sock    doorbell entries or commands naming a bad id
 *   backend.shm_bad_opcode  unknown command opcodes
 *   backend.shm_bad_cmd     flags, unused args, lengths, values
 *   backend.shm_faults      SIGBUS caught in an application's memory
 */
#include <inttypes.h>

#include "internal.h"

static void add(struct isoshm_stats *sum, const struct isoshm_stats *s)
{
	sum->bad_index += s->bad_index;
	sum->bad_sock += s->bad_sock;
	sum->bad_opcode += s->bad_opcode;
	sum->bad_cmd += s->bad_cmd;
	sum->faults += s->faults;
}

void isod_shm_stats_retire(struct isod_backend *be, const struct isod_app *app)
{
	add(&be->shm_gone, isoshm_stack_stats(app->shm));
}

size_t isod_shm_format_stats(const struct isod_backend *be, char *buf, size_t len)
{
	struct isod_strbuf sb = { .buf = buf, .len = len };
	struct isoshm_stats sum = be->shm_gone;

	for (const struct isod_app *a = be->apps; a != NULL; a = a->next)
		add(&sum, isoshm_stack_stats(a->shm));
	isod_strbuf_put(&sb, "backend.shm_bad_index %" PRIu64 "\nbackend.shm_bad_sock %" PRIu64
			"\nbackend.shm_bad_opcode %" PRIu64 "\nbackend.shm_bad_cmd %" PRIu64
			"\nbackend.shm_faults %" PRIu64 "\n", sum.bad_index, sum.bad_sock,
			sum.bad_opcode, sum.bad_cmd, sum.faults);
	return sb.used;
}
