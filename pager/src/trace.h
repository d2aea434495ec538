/* The event trace: fixed 32-byte records written by each producing thread
 * into its own lock-free ring, drained to the file by a writer thread.
 * The file layout is in docs/trace.md and <flexpage/flexpage.h>. */
#ifndef FLEXPAGE_TRACE_H
#define FLEXPAGE_TRACE_H

#include <stdint.h>

#include <flexpage/flexpage_experimental.h>

struct pg_tracer;

struct pg_tracer *pg_tracer_start(const char *path, const struct fp_trace_header *h);
/* Flush everything and close the file; returns -1 if writing failed. */
int pg_tracer_stop(struct pg_tracer *t);
/* thread: 0 the handler, 1.. the loaders, FP_TRACE_OTHER_THREAD others. */
/* t_ns: CLOCK_MONOTONIC time of the event (0: now). */
void pg_tracer_emit(struct pg_tracer *t, uint64_t t_ns, uint32_t type, uint32_t flags,
                    uint32_t thread, uint32_t chunk, uint64_t a, uint64_t b);
uint64_t pg_tracer_dropped(const struct pg_tracer *t);
uint64_t pg_tracer_written(const struct pg_tracer *t);

#endif
