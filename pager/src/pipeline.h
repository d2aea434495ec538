/* pipeline.c: what streaming a token's chunks costs, and the choice of
 * stored forms that makes it least.  The loaders read one chunk while
 * others decode theirs, on every core decoding may use, so a token's
 * streaming time is bounded by the busier of the two resources, not by the
 * sum per chunk:
 *
 *     T = max(sum of stored / R,  sum of decoded / (D x C))
 *
 * R the read rate, D one core's decode rate, C the cores decoding gets
 * (pg_pipe_cpus).  The compute threads' own time is a third term the form
 * chosen does not change; what decoding takes from them is in C.  The
 * writer's --codec auto, the reader's choice between a chunk's forms and
 * the preservation planner's weights all use this one model
 * (docs/compression.md). */
#ifndef PG_PIPELINE_H
#define PG_PIPELINE_H

#include <stdint.h>

/* One chunk's stored forms: seconds to read each at the read rate, and
 * CPU seconds to decode each on one core (0 for a raw form). */
struct pg_pipe_item {
	double read[2];
	double decode[2];
	int forms;               /* 1: only form 0; 2: a choice */
};

/* The cores decoding may use: one core is left to the compute threads
 * (whose products end in a barrier, so a compute thread preempted by a
 * decode holds up the other: bench/decode_contention), at least 1, and
 * no more than a decoder limit > 0 lets decode at once. */
double pg_pipe_cpus(int decoders);

/* T, in seconds, of streaming every item once in the forms pick names
 * (NULL: form 0 of each) with decoding spread over cpus cores. */
double pg_pipe_bound(const struct pg_pipe_item *it, uint32_t n, double cpus,
                     const uint8_t *pick);

/* Set pick[i] to the form of item i that makes T least, and return that T.
 * Exact (every assignment) when at most PG_PIPE_EXACT items trade reading
 * for decoding; otherwise greedy by read time saved per decode time added,
 * which is within one item's term of the least T. */
#define PG_PIPE_EXACT 20
double pg_pipe_choose(const struct pg_pipe_item *it, uint32_t n, double cpus, uint8_t *pick);

#endif
