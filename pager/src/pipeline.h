/* pipeline.c: what streaming a token's chunks costs, and the choice of
 * stored forms that makes it least.  Each chunk costs the slower of its
 * two stages, its read and its decode, and a token the sum over its
 * chunks:
 *
 *     T = sum over chunks of max(stored / R, decoded / (D x C))
 *
 * R the read rate, D one core's decode rate, C the cores decoding gets
 * (pg_pipe_cpus).  The stream runs just ahead of the compute threads, so
 * a chunk is waited for until both its stages are done; decodes do not
 * average out against other chunks' reads (a mix of raw and compressed
 * chunks that balanced the summed reads against the summed decodes ran
 * 0.76x raw unthrottled, where this model keeps every chunk raw:
 * docs/compression.md).  The model is separable, so the least T takes
 * each chunk's cheaper form.  The writer's --codec auto, the reader's
 * choice between a chunk's forms and the preservation planner's weights
 * (pg_form_ns) all use this one model. */
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

/* Set pick[i] to the form of item i that makes T least (its own cheaper
 * form; on a tie the one that decodes less, then the one read faster) and
 * return that T. */
double pg_pipe_choose(const struct pg_pipe_item *it, uint32_t n, double cpus, uint8_t *pick);

#endif
