/* The paging side of `flexpage run`: preservation plans, the event trace's
 * token marks and the live statistics line (run_paging.c). */
#ifndef FLEXPAGE_TOOL_RUN_PAGING_H
#define FLEXPAGE_TOOL_RUN_PAGING_H

#include <pthread.h>
#include <stdint.h>

#include <flexpage/flexpage_experimental.h>

struct run_paging {
	/* options */
	const char *preserve;        /* "balanced", "first", "none" (NULL: none) */
	int attention_first;
	const char *stream;          /* the budget's share kept for streaming */
	uint64_t stats_interval_ns;  /* 0: no live statistics */
	/* state */
	struct fp_rates rates;       /* measured before the plan (rates.measured: which) */
	struct fp_plan plan;
	fp_region *region;
	pthread_t ticker;
	int ticking, stop;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t tokens;
};

/* Make the preservation plan for image path under budget into o->preserve. */
int run_paging_plan(struct run_paging *p, const char *path, struct fp_options *o,
                    char *err, size_t errlen);
/* With the region open: start the live statistics. */
void run_paging_start(struct run_paging *p, fp_region *r);
/* A token is done (pos); marks the trace. */
void run_paging_token(struct run_paging *p, int pos);
/* The live statistics end; the plan stays for the report until
 * run_options_free. */
void run_paging_stop(struct run_paging *p);

#endif
