/* Helpers for the preload suites: the peers the set-up test prepared, and
 * running a program (an engine, the probe) with or without
 * libflexpage-preload.so, in a memory cgroup, its output captured. */
#ifndef FLEXPAGE_PRELOAD_UTIL_H
#define FLEXPAGE_PRELOAD_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* A path from the set-up's peers.env (LLAMA_DRIVER, RUN_C, ...); the test
 * fails if the set-up did not run. */
const char *pu_peer(const char *key);
/* The probe program (tests/preload/map_probe.c). */
const char *pu_probe(void);

#define PU_NO_LIMIT UINT64_MAX

struct pu_opts {
	const char *const *env;      /* "KEY=VALUE" added, NULL-terminated; may be NULL */
	int preload;                 /* run with LD_PRELOAD=libflexpage-preload.so */
	int cgroup;                  /* in a fresh memory cgroup (removed after) */
	uint64_t limit;              /* its limit; PU_NO_LIMIT: none (to measure) */
	int timeout_s;               /* then SIGKILL (0: 600) */
	/* Called as stdout grows, with all of it so far. */
	void (*on_out)(const char *out, size_t len, void *ctx);
	void *ctx;
};

struct pu_result {
	int status;                  /* as waitpid gives it */
	int timed_out;
	char *out, *err;             /* NUL-terminated */
	uint64_t cgroup_peak;        /* memory.max_usage_in_bytes; 0 without a cgroup */
	double seconds;
};

void pu_run(const char *const *argv, const struct pu_opts *o, struct pu_result *r);
void pu_result_free(struct pu_result *r);
/* The number after "KEY " in the library's last summary line for a file
 * whose path ends in name ("flexpage: PATH: unmapped: faults 12, ...");
 * -1 if there is none. */
long long pu_summary(const char *err, const char *name, const char *key);
/* Lines of text that contain what, counted. */
int pu_count(const char *text, const char *what);

#endif
