/* The predictor: the order in which the loop touches the streamed chunks.
 *
 * A decode touches the same streamed chunks in the same order every token
 * (the cycle), though not in file order, and its threads split each batch
 * of tensors: one walks the front half while another starts in the middle
 * and, done early, steals from the back.  So the order is learned as a
 * whole sequence, not as pairs: the first cycle's faults, in the order they
 * arrive, become the sequence, and a chunk first seen later is inserted
 * after the one the loop was last at.  Every streamed chunk faults once a
 * cycle (staging sees to that, readahead_stage.c), so each fault says where
 * the loop is; the frontier is the furthest position reached this cycle,
 * and a fault on a chunk already used this cycle, just past the frontier's
 * end, starts the next cycle.
 *
 * The window around the frontier starts `slack` positions behind it (the
 * chunks a lagging thread still needs; slack is the furthest behind the
 * frontier a fault has been seen).  A chunk is in it only if the loop will
 * want it: used last cycle and not yet this one, or, past the end of the
 * sequence, used this cycle (the next cycle wants it again).  That keeps
 * chunks used only once, such as a token's embedding row, from being read
 * every cycle. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define NONE UINT32_MAX

int pg_order_init(fp_region *r)
{
	struct pg_order *o = &r->order;
	size_t n = r->n_chunks;
	o->seq = malloc(sizeof *o->seq * n);
	o->pos_of = malloc(sizeof *o->pos_of * n);
	o->used_cycle = calloc(n, sizeof *o->used_cycle);
	if (!o->seq || !o->pos_of || !o->used_cycle)
		return -1;
	memset(o->pos_of, 0xff, sizeof *o->pos_of * n);
	o->frontier = NONE;
	o->cycle = 1;
	return 0;
}

void pg_order_free(fp_region *r)
{
	free(r->order.seq);
	free(r->order.pos_of);
	free(r->order.used_cycle);
}

/* Insert chunk c into the sequence just after position at. */
static void insert_after(struct pg_order *o, uint32_t at, uint32_t c)
{
	uint32_t p = at == NONE ? o->seq_len : at + 1;
	memmove(&o->seq[p + 1], &o->seq[p], sizeof *o->seq * (o->seq_len - p));
	o->seq[p] = c;
	o->seq_len++;
	for (uint32_t i = p; i < o->seq_len; i++)
		o->pos_of[o->seq[i]] = i;
}

uint32_t pg_order_learn(fp_region *r, uint32_t c)
{
	struct pg_order *o = &r->order;
	uint32_t f = o->frontier == NONE ? NONE : o->pos_of[o->frontier];
	uint32_t moved = 0;
	if (o->pos_of[c] == NONE) {
		insert_after(o, f, c);
		o->frontier = c;
		moved = 1;
	} else if (f != NONE && c != o->frontier) {
		uint32_t L = o->seq_len, p = o->pos_of[c];
		uint32_t ahead = (p + L - f) % L;
		if (ahead <= L / 2) {
			/* Forward; past the sequence's end onto a chunk used this
			 * cycle, it is the next cycle. */
			if (p < f && o->used_cycle[c] == o->cycle)
				o->cycle++;
			o->frontier = c;
			moved = ahead;
		} else if (L - ahead > o->slack) {
			o->slack = L - ahead; /* a thread this far behind */
		}
	}
	o->used_cycle[c] = o->cycle;
	return moved;
}

int pg_order_known(const fp_region *r)
{
	return r->order.cycle > 1;
}

void pg_order_window(fp_region *r, uint32_t depth,
                     int (*want)(fp_region *r, uint32_t c, void *ctx), void *ctx)
{
	const struct pg_order *o = &r->order;
	uint32_t L = o->seq_len, f = o->pos_of[o->frontier];
	uint32_t back = o->slack < L / 2 ? o->slack : L / 2;
	for (int64_t i = -(int64_t)back; i < (int64_t)(L - back) && depth; i++) {
		int64_t at = (int64_t)f + i;
		if (at < 0)
			continue; /* the previous cycle's tail */
		uint32_t d = o->seq[at % L];
		uint32_t used = o->used_cycle[d];
		int wanted = at >= L ? used == o->cycle : used + 1 == o->cycle;
		if (wanted && want(r, d, ctx))
			depth--;
	}
}
