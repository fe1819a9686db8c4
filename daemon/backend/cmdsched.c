/*
 * The command stage of a back-end pass: which applications' commands run,
 * and how many, so that no application holds the stack core.
 *
 * Doorbells name sockets with commands; each application keeps its named
 * sockets in a run queue (a FIFO of ids, each at most once).  A pass takes
 * at most ISOD_DB_TAKE doorbell ids per application (the rest stay in the
 * doorbell ring, not marked drained, for the next pass), then serves the
 * queues in rounds: one socket per application per round, at most
 * ISOD_CMD_BURST commands each, until the pass's budget is spent.  A
 * socket whose turn ends with commands left goes to the back of its
 * queue; the application that went first goes last next pass.  SEND and
 * RECV post no status, so nothing else would stop an application that
 * streams them (the status ring stops only commands that reply).
 *
 * Nothing is forgotten: an id leaves its queue only once its command ring
 * was found empty after the doorbell fence D1 of the pass that took it
 * (shm/stack.c), or to wait for status room (ISOD_R_CMDS, which queues it
 * again from the event queue).
 */
#include <stdio.h>

#include "internal.h"

void isod_cmds_queue(struct isod_app *app, uint32_t id)
{
	struct isod_sock *sk = &app->socks[id];

	if (sk->cmd_queued)
		return;
	sk->cmd_queued = true;
	sk->cmd_next = 0;
	if (app->cmd_tail != 0)
		app->socks[app->cmd_tail - 1].cmd_next = id + 1;
	else
		app->cmd_head = id + 1;
	app->cmd_tail = id + 1;
}

static uint32_t cmds_pop(struct isod_app *app)
{
	uint32_t id = app->cmd_head - 1;
	struct isod_sock *sk = &app->socks[id];

	app->cmd_head = sk->cmd_next;
	if (app->cmd_head == 0)
		app->cmd_tail = 0;
	sk->cmd_queued = false;
	sk->cmd_next = 0;
	return id;
}

/* An application whose commands the pass may run. */
static bool app_serves(const struct isod_app *a)
{
	return !a->dead && !a->draining;   /* commands of a dead process: ignored */
}

/* Takes up to ISOD_DB_TAKE ids from app's doorbells into its run queue. */
static unsigned doorbells_take(struct isod_backend *be, struct isod_app *app)
{
	uint32_t ids[ISOD_DB_TAKE];
	int n = isoshm_stack_poll(app->shm, ids, ISOD_DB_TAKE);

	if (n < 0) {
		be->st.broken_apps++;
		app->dead = true;
		return 0;
	}
	if (n == ISOD_DB_TAKE)
		be->st.db_budget_hits++;     /* maybe more: they wait in the ring */
	for (int i = 0; i < n; i++)
		isod_cmds_queue(app, ids[i]);
	return (unsigned)n;
}

/* One turn of app's first queued socket, at most `max` commands; returns
 * the budget it used (a turn costs at least 1). */
static unsigned app_turn(struct isod_backend *be, struct isod_app *app, unsigned max)
{
	uint32_t id = cmds_pop(app);
	bool more;
	unsigned n = isod_sock_run_cmds(app, id, max < ISOD_CMD_BURST ? max : ISOD_CMD_BURST,
					&more);

	if (more && app_serves(app)) {
		be->st.cmd_budget_hits++;
		isod_cmds_queue(app, id);
	}
	return n > 0 ? n : 1;
}

/* The application to start the next pass with: the one after `a`. */
static void rotate(struct isod_backend *be, const struct isod_app *a)
{
	be->cmd_first = a->next != NULL ? a->next->id : be->apps != NULL ? be->apps->id : 0;
}

unsigned isod_cmds_poll(struct isod_backend *be, unsigned budget)
{
	struct isod_app *first = be->apps;
	unsigned work = 0, left = budget > 0 ? budget : 1;
	bool turned = true;

	for (struct isod_app *a = be->apps; a != NULL; a = a->next) {
		if (a->id == be->cmd_first)
			first = a;
		if (app_serves(a))
			work += doorbells_take(be, a);
	}
	if (first == NULL)
		return work;
	/* Rounds: each application with queued sockets runs one, starting
	 * with `first` and wrapping around the list. */
	while (left > 0 && turned) {
		struct isod_app *a = first;

		turned = false;
		do {
			if (app_serves(a) && a->cmd_head != 0) {
				unsigned used = app_turn(be, a, left);

				work += used;
				left -= used < left ? used : left;
				turned = true;
			}
			a = a->next != NULL ? a->next : be->apps;
		} while (a != first && left > 0);
	}
	if (left == 0) {
		for (struct isod_app *a = be->apps; a != NULL; a = a->next)
			if (app_serves(a) && a->cmd_head != 0) {
				be->st.pass_budget_hits++;
				break;
			}
	}
	rotate(be, first);
	return work;
}

size_t isod_cmds_format_stats(const struct isod_backend *be, char *buf, size_t len)
{
	int n = snprintf(buf, len,
		"backend.cmd_budget_hits %llu\nbackend.pass_budget_hits %llu\n"
		"backend.db_budget_hits %llu\nbackend.event_budget_hits %llu\n",
		(unsigned long long)be->st.cmd_budget_hits,
		(unsigned long long)be->st.pass_budget_hits,
		(unsigned long long)be->st.db_budget_hits,
		(unsigned long long)be->st.event_budget_hits);

	if (n < 0)
		return 0;
	return (size_t)n < len ? (size_t)n : len ? len - 1 : 0;
}
