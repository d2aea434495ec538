/* A progress bar on stderr, drawn only when stderr is a terminal. */
#ifndef FLEXPAGE_PROGRESS_H
#define FLEXPAGE_PROGRESS_H

#include <stdint.h>

struct pg_progress {
	const char *label;
	uint64_t total, done;
	uint64_t start_ns, last_ns;
	int active;
};

void pg_progress_start(struct pg_progress *p, const char *label, uint64_t total, int enable);
void pg_progress_update(struct pg_progress *p, uint64_t done);
void pg_progress_end(struct pg_progress *p);

#endif
