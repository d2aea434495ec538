/* The predictor: where the loop is, and what it touches next.
 *
 * A decode touches the same streamed chunks in the same order every token
 * (the cycle), though not in file order, and its threads split each batch
 * of tensors: one walks the front half while another starts in the middle
 * and, done early, steals from the back.  So the order is learned as a
 * whole sequence, not as pairs: the first cycle's faults, in the order they
 * arrive, become the sequence, and a chunk first seen later is inserted
 * after the one the loop was last at.  Every streamed chunk faults once a
 * cycle (staging sees to that, stage.c), so each fault says where the loop
 * is; the frontier is the furthest position reached this cycle, and a
 * fault on a chunk already used this cycle, just past the frontier's end,
 * starts the next cycle.
 *
 * On each fault the window around the frontier is loaded: starting `slack`
 * positions behind it (the chunks a lagging thread still needs; slack is
 * the furthest behind the frontier a fault has been seen), the first
 * `depth` chunks that are not resident, nearest first.
 * A chunk is loaded only if the loop will want it: used last cycle and not
 * yet this one, or, past the end of the sequence, used this cycle (the
 * next cycle wants it again).  That keeps chunks used only once, such as a
 * token's embedding row, from being read every cycle.  Staged chunks that
 * no window has wanted for a while are dropped (stage.c).
 *
 * Until a first cycle is complete, or with FP_OPEN_NO_PREDICT, read-ahead
 * follows the file's order from the faulting chunk.
 *
 * The depth follows the measured rates.  A chunk's load must start a load's
 * time before the loop reaches it, and the loop covers load time / (its
 * time per chunk) chunks meanwhile; one more per loader keeps every loader
 * busy.  The load time is the loaders' mean plus four mean deviations, as
 * TCP sizes its retransmit timer, so that a slow read now and then is
 * still covered.  The depth never exceeds the read-ahead setting (the
 * most), nor, when staging, the budget's room beside the chunks in use. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define NONE UINT32_MAX

int pg_predict_init(fp_region *r)
{
	size_t n = r->n_chunks;
	r->seq = malloc(sizeof *r->seq * n);
	r->pos_of = malloc(sizeof *r->pos_of * n);
	r->used_cycle = calloc(n, sizeof *r->used_cycle);
	r->window_mark = calloc(n, sizeof *r->window_mark);
	if (!r->seq || !r->pos_of || !r->used_cycle || !r->window_mark)
		return -1;
	memset(r->pos_of, 0xff, sizeof *r->pos_of * n);
	r->frontier = NONE;
	r->cycle = 1;
	return 0;
}

void pg_predict_free(fp_region *r)
{
	free(r->seq);
	free(r->pos_of);
	free(r->used_cycle);
	free(r->window_mark);
}

/* Insert chunk c into the sequence just after position at. */
static void insert_after(fp_region *r, uint32_t at, uint32_t c)
{
	uint32_t p = at == NONE ? r->seq_len : at + 1;
	memmove(&r->seq[p + 1], &r->seq[p], sizeof *r->seq * (r->seq_len - p));
	r->seq[p] = c;
	r->seq_len++;
	for (uint32_t i = p; i < r->seq_len; i++)
		r->pos_of[r->seq[i]] = i;
}

/* The loop moved `ahead` chunks on since the last move: its time per
 * chunk, a running mean.  Only a move from a fault that did not wait for a
 * read counts: the pace wanted is the loop's own, which read-ahead must
 * outrun, not the storage's, which holds the loop back when read-ahead is
 * short (and would keep it short).  A pause (the application between
 * tokens) counts for at most four times the mean. */
static void advanced(fp_region *r, uint32_t ahead, uint64_t now, int waits)
{
	if (r->advanced_ns && now > r->advanced_ns && !r->advanced_waits) {
		uint64_t per = (now - r->advanced_ns) / ahead;
		if (r->gap_ns && per > 4 * r->gap_ns)
			per = 4 * r->gap_ns;
		r->gap_ns = r->gap_ns ? r->gap_ns - r->gap_ns / 8 + per / 8 : per;
	}
	r->advanced_ns = now;
	r->advanced_waits = waits;
}

void pg_predict_load_time(fp_region *r, uint64_t ns)
{
	/* Loaders race here; a lost update of a running mean costs nothing. */
	uint64_t mean = atomic_load_explicit(&r->load_ns, memory_order_relaxed);
	uint64_t dev = atomic_load_explicit(&r->load_dev_ns, memory_order_relaxed);
	if (!mean) {
		mean = ns;
		dev = ns / 2;
	} else {
		uint64_t diff = ns > mean ? ns - mean : mean - ns;
		dev = dev - dev / 4 + diff / 4;
		mean = mean - mean / 8 + ns / 8;
	}
	atomic_store_explicit(&r->load_ns, mean, memory_order_relaxed);
	atomic_store_explicit(&r->load_dev_ns, dev, memory_order_relaxed);
}

/* Chunks of read-ahead that cover a load at the loop's pace; max before
 * anything is measured. */
static uint32_t rate_depth(const fp_region *r, uint32_t max)
{
	uint64_t load = atomic_load_explicit(&r->load_ns, memory_order_relaxed);
	if (!load || !r->gap_ns)
		return max;
	load += 4 * atomic_load_explicit(&r->load_dev_ns, memory_order_relaxed);
	uint64_t need = (load + r->gap_ns - 1) / r->gap_ns + (uint64_t)r->opt.loaders;
	return need < max ? (uint32_t)need : max;
}

/* Learn from a fault on c: its place in the sequence and the frontier. */
static void learn(fp_region *r, uint32_t c, uint64_t now, int waits)
{
	uint32_t f = r->frontier == NONE ? NONE : r->pos_of[r->frontier];
	if (r->pos_of[c] == NONE) {
		insert_after(r, f, c);
		r->frontier = c;
		advanced(r, 1, now, waits);
	} else if (f != NONE && c != r->frontier) {
		uint32_t L = r->seq_len, p = r->pos_of[c];
		uint32_t ahead = (p + L - f) % L;
		if (ahead <= L / 2) {
			/* Forward; past the sequence's end onto a chunk used this
			 * cycle, it is the next cycle. */
			if (p < f && r->used_cycle[c] == r->cycle)
				r->cycle++;
			r->frontier = c;
			advanced(r, ahead, now, waits);
		} else if (L - ahead > r->slack) {
			r->slack = L - ahead; /* a thread this far behind */
		}
	}
	r->used_cycle[c] = r->cycle;
}

/* Keep chunk d in the window; load it if it is not (now: the fault's time). */
static void want(fp_region *r, uint32_t d, uint64_t now)
{
	r->window_mark[d] = r->fault_seq;
	if (pg_chunk_load_ahead(&r->state[d])) {
		atomic_store(&r->queued_ns[d], now);
		pg_queue_push(&r->queue, d, 0);
	}
}

/* The window of the learned sequence around the frontier: the first
 * `depth` chunks the loop will want that are not resident, nearest first,
 * so that read-ahead's room goes to what is needed soonest. */
static void walk_sequence(fp_region *r, uint32_t depth, uint64_t now)
{
	uint32_t L = r->seq_len, f = r->pos_of[r->frontier];
	uint32_t back = r->slack < L / 2 ? r->slack : L / 2;
	for (int64_t i = -(int64_t)back; i < (int64_t)(L - back) && depth; i++) {
		int64_t at = (int64_t)f + i;
		if (at < 0)
			continue; /* the previous cycle's tail */
		uint32_t d = r->seq[at % L];
		uint32_t used = r->used_cycle[d];
		int wanted = at >= L ? used == r->cycle : used + 1 == r->cycle;
		if (!wanted || (r->preserve && r->preserve[d]) || chunk_state(r, d) == CHUNK_RESIDENT)
			continue;
		want(r, d, now);
		depth--;
	}
}

/* Read-ahead in file order from c. */
static void walk_file(fp_region *r, uint32_t c, uint32_t depth, uint64_t now)
{
	uint32_t d = c;
	for (uint32_t k = 0, steps = 0; k < depth && steps < r->n_chunks; steps++) {
		d = d + 1 < r->n_chunks ? d + 1 : 0;
		if (d == c)
			break;
		if (!r->page_len[d] || (r->preserve && r->preserve[d]))
			continue;
		k++;
		want(r, d, now);
	}
}

void pg_predict(fp_region *r, uint32_t c, uint64_t now, int waits)
{
	if (++r->fault_seq == 0)
		r->fault_seq = 1;
	r->window_mark[c] = r->fault_seq;
	learn(r, c, now, waits);

	/* Depth: what covers a load at the loop's pace, at most the read-ahead
	 * setting, and never more than the budget left after preservation can
	 * hold beside the chunks in use. */
	struct pg_settings *s = rcu_dereference(r->settings);
	uint64_t fit = pg_ahead_room(r, s->budget) / r->chunk_size;
	uint32_t depth = rate_depth(r, (uint32_t)r->opt.readahead);
	if (atomic_load(&r->stage_ahead) && depth > fit)
		depth = (uint32_t)fit;
	atomic_store_explicit(&r->depth, depth, memory_order_relaxed);
	if (!depth)
		return;
	if (r->cycle > 1 && !(r->opt.flags & FP_OPEN_NO_PREDICT))
		walk_sequence(r, depth, now);
	else
		walk_file(r, c, depth, now);
	if (atomic_load(&r->stage_ahead))
		pg_stage_drop_stale(r);
}
