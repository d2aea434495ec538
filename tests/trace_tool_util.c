/* What the flexpage trace suites share: a scratch directory, running the
 * tool, and a trace recorded through the library. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <flexpage/flexpage_experimental.h>

#include "json_util.h"
#include "trace_tool_util.h"

extern char **environ;

/* ---- scratch directory ---------------------------------------------- */

static char dir[256];

static void rm_dir(void)
{
	char cmd[400];
	if (dir[0] && !strncmp(dir, "/var/tmp/flexpage-tt-", 21)) {
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
		(void)!system(cmd);
	}
}

/* dir/name; the same name always gives the same (stable) string. */
const char *tmp(const char *name)
{
	static char paths[64][512];
	static int used;
	if (!dir[0]) {
		snprintf(dir, sizeof dir, "/var/tmp/flexpage-tt-%d", (int)getpid());
		mkdir(dir, 0755);
		atexit(rm_dir);
	}
	char want[512];
	snprintf(want, sizeof want, "%s/%s", dir, name);
	for (int i = 0; i < used; i++)
		if (!strcmp(paths[i], want))
			return paths[i];
	cr_assert_lt(used, 64, "too many temporary names");
	snprintf(paths[used], sizeof paths[used], "%s", want);
	return paths[used++];
}

char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	char *p = malloc(cap + 1);
	size_t got;
	while (p && (got = fread(p + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n == cap) {
			char *q = realloc(p, 2 * cap + 1);
			if (!q) {
				free(p);
				p = NULL;
				break;
			}
			p = q;
			cap *= 2;
		}
	}
	fclose(f);
	if (p)
		p[n] = 0;
	if (len)
		*len = n;
	return p;
}

/* ---- running the tool --------------------------------------------------- */


void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

/* Runs FLEXPAGE_TOOL trace ARGS... (NULL-terminated); path_env: PATH to
 * give it, NULL to keep ours. */
struct run run_tool_env(const char *path_env, const char *const *args)
{
	const char *argv[32];
	int n = 0;
	argv[n++] = FLEXPAGE_TOOL;
	argv[n++] = "trace";
	while (*args && n < 30)
		argv[n++] = *args++;
	argv[n] = NULL;
	const char *out = tmp("stdout"), *err = tmp("stderr");
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	char **envp = environ, *env1[3] = {NULL, NULL, NULL}, pathvar[600];
	if (path_env) {
		snprintf(pathvar, sizeof pathvar, "PATH=%s", path_env);
		env1[0] = pathvar;
		env1[1] = "LC_ALL=C";
		envp = env1;
	}
	pid_t pid;
	struct run r = {.code = -1};
	int rc = posix_spawn(&pid, FLEXPAGE_TOOL, &fa, NULL, (char *const *)argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	cr_assert_eq(rc, 0, "cannot run %s: %s", FLEXPAGE_TOOL, strerror(rc));
	int st = 0;
	for (int waited = 0;; waited++) {
		pid_t w = waitpid(pid, &st, WNOHANG);
		if (w == pid)
			break;
		if (waited > 60 * 100) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			r.out = slurp(out, NULL);
			r.err = slurp(err, NULL);
			return r;
		}
		usleep(10000);
	}
	r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	r.out = slurp(out, NULL);
	r.err = slurp(err, NULL);
	if (!r.out)
		r.out = strdup("");
	if (!r.err)
		r.err = strdup("");
	return r;
}


/* ---- recording a trace through the library ------------------------------ */



uint8_t *make_data(size_t len)
{
	uint8_t *p = malloc(len);
	uint64_t x = 0x9E3779B97F4A7C15ull;
	for (size_t i = 0; i < len; i++) {
		/* Half random, half runs: some chunks compress. */
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (i / CHUNK) % 2 ? (uint8_t)(i / 1000) : (uint8_t)x;
	}
	return p;
}

void record(struct recorded *rec)
{
	snprintf(rec->image, sizeof rec->image, "%s", tmp("model.img"));
	snprintf(rec->trace, sizeof rec->trace, "%s", tmp("model.trace"));
	uint8_t *data = make_data(LEN);
	struct fp_writer_options wo = {.chunk_size = CHUNK, .codec = FP_CODEC_ZSTD};
	fp_writer *w = fp_writer_create(rec->image, &wo);
	uint64_t shape[1] = {LEN};
	cr_assert(w && !fp_writer_begin_tensor(w, "data", FP_TYPE_U8, 1, shape) &&
	          !fp_writer_write(w, data, LEN) && !fp_writer_end_tensor(w) && !fp_writer_finish(w),
	          "%s", fp_last_error());

	struct fp_options o = {
		.budget = 8ull * CHUNK, .loaders = 2, .retries = -1, .readahead = 2,
		.trace_path = rec->trace,
	};
	fp_region *r = fp_open(rec->image, &o);
	cr_assert_not_null(r, "%s", fp_last_error());
	const uint8_t *p = fp_tensor(r, "data", NULL);
	cr_assert_not_null(p);
	for (int t = 0; t < TOKENS; t++) {
		fp_trace_mark(r, FP_MARK_TOKEN, (uint64_t)t);
		cr_assert_eq(memcmp(p, data, LEN), 0, "token %d read wrong bytes", t);
		if (t == 1) /* a smaller budget mid-run: a settings record, evictions */
			cr_assert_eq(fp_set_budget(r, 5ull * CHUNK), 0, "%s", fp_last_error());
	}
	fp_trace_mark(r, FP_MARK_TOKEN_END, TOKENS);
	/* Let read-ahead in flight settle so the stats and the trace agree. */
	fp_quiesce(r);
	fp_get_stats(r, &rec->s);
	fp_close(r);
	free(data);
	cr_assert_eq(rec->s.trace_dropped, 0);
	cr_assert_gt(rec->s.evictions, 0, "the budget should force evictions");
	cr_assert_gt(rec->s.demand_loads, 0);
}

struct jval *load_json(const char *path)
{
	size_t len;
	char *text = slurp(path, &len);
	cr_assert_not_null(text, "no %s", path);
	char err[128];
	struct jval *v = json_parse(text, len, err, sizeof err);
	cr_assert_not_null(v, "%s is not valid JSON: %s", path, err);
	free(text);
	return v;
}

struct fp_trace_header synthetic_header(uint32_t chunk, uint32_t n_chunks, uint64_t budget,
                                        uint32_t loaders, uint32_t readahead)
{
	struct fp_trace_header h = {
		.version = FP_TRACE_VERSION, .record_size = sizeof(struct fp_trace_event),
		.budget = budget, .logical_size = (uint64_t)n_chunks * chunk, .chunk_size = chunk,
		.n_chunks = n_chunks, .loaders = loaders, .readahead = readahead,
	};
	memcpy(h.magic, FP_TRACE_MAGIC, 8);
	strcpy(h.policy, "fifo");
	return h;
}

int have_gnuplot(void)
{
	return !system("command -v gnuplot >/dev/null 2>&1");
}
