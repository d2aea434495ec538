/* A progress bar on stderr, drawn only when stderr is a terminal. */
#ifndef FLEXPAGE_PROGRESS_H
#define FLEXPAGE_PROGRESS_H

#include <stdint.h>

struct fp_progress {
	const char *label;
	uint64_t total, done;
	uint64_t start_ns, last_ns;
	int active;
};

void fp_progress_start(struct fp_progress *p, const char *label, uint64_t total, int enable);
void fp_progress_update(struct fp_progress *p, uint64_t done);
void fp_progress_end(struct fp_progress *p);

#endif
