/* flexpage trace, run as a program on a trace recorded through the library:
 * the summary agrees with fp_get_stats, --chrome is valid JSON with the
 * expected events, --plot writes PNGs, and bad traces and options fail
 * cleanly.  Self-contained: its own JSON parser and process runner. */
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

#include <flexpage/flexpage.h>

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
static const char *tmp(const char *name)
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

static char *slurp(const char *path, size_t *len)
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

struct run {
	int code;            /* exit status, or 128 + signal, or -1 timed out */
	char *out, *err;
};

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

/* Runs FLEXPAGE_TOOL trace ARGS... (NULL-terminated); path_env: PATH to
 * give it, NULL to keep ours. */
static struct run run_tool_env(const char *path_env, const char *const *args)
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

#define RUN(...) run_tool_env(NULL, (const char *const[]){__VA_ARGS__, NULL})

/* ---- recording a trace through the library ------------------------------ */

#define CHUNK (128u << 10)
#define NCHUNKS 24u
#define LEN ((size_t)NCHUNKS * CHUNK - 5000) /* a short last chunk */
#define TOKENS 4

struct recorded {
	char image[512], trace[512];
	struct fp_stats s;
};

static uint8_t *make_data(size_t len)
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

static void record(struct recorded *rec)
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
	struct fp_stats prev = {0};
	for (int stable = 0, i = 0; stable < 3 && i < 200; i++) {
		usleep(10000);
		fp_get_stats(r, &rec->s);
		stable = rec->s.demand_loads == prev.demand_loads &&
		                 rec->s.prefetch_loads == prev.prefetch_loads &&
		                 rec->s.evictions == prev.evictions && rec->s.faults == prev.faults
		             ? stable + 1
		             : 0;
		prev = rec->s;
	}
	fp_close(r);
	free(data);
	cr_assert_eq(rec->s.trace_dropped, 0);
	cr_assert_gt(rec->s.evictions, 0, "the budget should force evictions");
	cr_assert_gt(rec->s.demand_loads, 0);
}

/* ---- the summary ----------------------------------------------------------- */

/* The number after "key" at the start of a line of the summary. */
static unsigned long long field(const char *out, const char *line_start, const char *after)
{
	const char *p = strstr(out, line_start);
	cr_assert_not_null(p, "no '%s' in the summary:\n%s", line_start, out);
	p += strlen(line_start);
	if (after) {
		const char *eol = strchr(p, '\n');
		const char *q = strstr(p, after);
		cr_assert(q && (!eol || q < eol), "no '%s' on the '%s' line", after, line_start);
		/* The number just before "after". */
		while (q > p && q[-1] == ' ')
			q--;
		while (q > p && q[-1] >= '0' && q[-1] <= '9')
			q--;
		p = q;
	}
	char *end;
	unsigned long long v = strtoull(p, &end, 10);
	cr_assert(end != p, "no number for '%s'", line_start);
	return v;
}

Test(trace_tool, summary_counts_match_the_library_stats, .timeout = 60)
{
	struct recorded rec;
	record(&rec);
	struct run r = RUN(rec.trace, "--tokens", "2");
	cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	const char *o = r.out;
	cr_expect_eq(field(o, "\n  faults", NULL), rec.s.faults, "%s", o);
	cr_expect_eq(field(o, "\n  loads", NULL), rec.s.demand_loads + rec.s.prefetch_loads);
	cr_expect_eq(field(o, "\n  loads", " demand"), rec.s.demand_loads);
	cr_expect_eq(field(o, "\n  loads", " read-ahead"), rec.s.prefetch_loads);
	cr_expect_eq(field(o, "\n  evictions", NULL), rec.s.evictions);
	cr_expect_eq(field(o, "\n  poisoned", NULL), rec.s.poisoned);
	cr_expect_eq(field(o, "\n  marks", NULL), TOKENS + 1);
	cr_expect_eq(field(o, "\n  settings", NULL), 1);
	/* Every fault is accounted for exactly once. */
	unsigned long long waited = field(o, "\n  faults", " waited"),
	                   resident = field(o, "\n  faults", " found the chunk resident"),
	                   padding = field(o, "\n  faults", " on padding"),
	                   poisoned = field(o, "\n  faults", " poisoned"),
	                   unserved = field(o, "\n  faults", " unserved");
	cr_expect_eq(waited + resident + padding + poisoned + unserved, rec.s.faults);
	cr_expect_gt(waited, 0);
	cr_expect_eq(unserved, 0);
	cr_expect_eq(field(o, "\ntokens:", NULL), TOKENS);
	cr_expect(strstr(o, "\n      mean ") && strstr(o, "\n       max "), "%s", o);
	cr_expect(strstr(o, "(2 more)"), "--tokens 2 shows two rows of four:\n%s", o);
	cr_expect(strstr(o, "policy fifo"), "%s", o);
	cr_expect(!strstr(o, "not opened"), "the image is there:\n%s", o);
	run_free(&r);

	/* The peak resident bytes the trace shows are those the library saw. */
	r = RUN(rec.trace, "--quiet", "--hist");
	cr_assert_eq(r.code, 0, "%s", r.err);
	cr_expect(!strstr(r.out, "\nevents"), "--quiet drops the summary");
	const char *hist[] = {"fault service", "read", "decompress", "install", "queue wait"};
	for (int i = 0; i < 5; i++) {
		const char *p = strstr(r.out, hist[i]);
		cr_expect_not_null(p, "no %s histogram:\n%s", hist[i], r.out);
		if (p)
			cr_expect(strstr(p, "p50 ") && strstr(p, "p99 ") && strstr(p, "max ") &&
			          strstr(p, "|#"),
			          "%s", p);
	}
	run_free(&r);

	/* Without the image, chunk sizes fall back to chunk_size, and say so. */
	r = RUN(rec.trace, "--image", "/nonexistent/model.img");
	cr_assert_eq(r.code, 0, "%s", r.err);
	cr_expect(strstr(r.out, "not opened"), "%s", r.out);
	cr_expect_eq(field(r.out, "\n  loads", NULL), rec.s.demand_loads + rec.s.prefetch_loads);
	run_free(&r);
}

/* ---- a small JSON parser --------------------------------------------------- */

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jval {
	enum jtype type;
	double num;
	char *str;               /* J_STR */
	struct jval **items;     /* J_ARR, J_OBJ values */
	char **keys;             /* J_OBJ */
	size_t n;
};

struct jparser {
	const char *start, *p, *end;
	char err[128];
};

static void jfree(struct jval *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->n; i++) {
		jfree(v->items[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->str);
	free(v);
}

static void ws(struct jparser *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static int fail(struct jparser *j, const char *what)
{
	if (!j->err[0])
		snprintf(j->err, sizeof j->err, "%s at byte %td", what, j->p - j->start);
	return -1;
}

static int hex4(struct jparser *j, unsigned *out)
{
	*out = 0;
	for (int i = 0; i < 4; i++, j->p++) {
		char c = j->p < j->end ? *j->p : 0;
		unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
		           : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
		           : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 99;
		if (d == 99)
			return fail(j, "bad \\u escape");
		*out = *out * 16 + d;
	}
	return 0;
}

static char *jstring(struct jparser *j)
{
	if (j->p >= j->end || *j->p != '"') {
		fail(j, "expected a string");
		return NULL;
	}
	j->p++;
	size_t cap = 32, n = 0;
	char *s = malloc(cap);
	for (;;) {
		if (j->p >= j->end) {
			fail(j, "unterminated string");
			free(s);
			return NULL;
		}
		unsigned char c = (unsigned char)*j->p++;
		if (n + 5 >= cap)
			s = realloc(s, cap *= 2);
		if (c == '"')
			break;
		if (c < 0x20) {
			fail(j, "control character in a string");
			free(s);
			return NULL;
		}
		if (c != '\\') {
			s[n++] = (char)c;
			continue;
		}
		c = j->p < j->end ? (unsigned char)*j->p++ : 0;
		const char *simple = strchr("\"\\/bfnrt", c);
		if (c && simple) {
			s[n++] = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
			continue;
		}
		if (c != 'u') {
			fail(j, "bad escape");
			free(s);
			return NULL;
		}
		unsigned u;
		if (hex4(j, &u)) {
			free(s);
			return NULL;
		}
		if (u >= 0xd800 && u < 0xdc00) {
			unsigned lo;
			if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u') {
				fail(j, "lone surrogate");
				free(s);
				return NULL;
			}
			j->p += 2;
			if (hex4(j, &lo) || lo < 0xdc00 || lo > 0xdfff) {
				fail(j, "bad surrogate pair");
				free(s);
				return NULL;
			}
			u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
		} else if (u >= 0xdc00 && u < 0xe000) {
			fail(j, "lone surrogate");
			free(s);
			return NULL;
		}
		/* UTF-8 encode (the tests only compare ASCII). */
		if (u < 0x80) {
			s[n++] = (char)u;
		} else if (u < 0x800) {
			s[n++] = (char)(0xc0 | u >> 6);
			s[n++] = (char)(0x80 | (u & 0x3f));
		} else if (u < 0x10000) {
			s[n++] = (char)(0xe0 | u >> 12);
			s[n++] = (char)(0x80 | ((u >> 6) & 0x3f));
			s[n++] = (char)(0x80 | (u & 0x3f));
		} else {
			s[n++] = (char)(0xf0 | u >> 18);
			s[n++] = (char)(0x80 | ((u >> 12) & 0x3f));
			s[n++] = (char)(0x80 | ((u >> 6) & 0x3f));
			s[n++] = (char)(0x80 | (u & 0x3f));
		}
	}
	s[n] = 0;
	return s;
}

static int digits(struct jparser *j)
{
	const char *s = j->p;
	while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
		j->p++;
	return j->p > s ? 0 : fail(j, "expected digits");
}

static struct jval *jvalue(struct jparser *j, int depth);

static struct jval *jnew(enum jtype t)
{
	struct jval *v = calloc(1, sizeof *v);
	v->type = t;
	return v;
}

static int jpush(struct jval *v, char *key, struct jval *item, size_t *cap)
{
	if (v->n == *cap) {
		*cap = *cap ? 2 * *cap : 8;
		v->items = realloc(v->items, *cap * sizeof *v->items);
		if (v->type == J_OBJ)
			v->keys = realloc(v->keys, *cap * sizeof *v->keys);
	}
	v->items[v->n] = item;
	if (v->type == J_OBJ)
		v->keys[v->n] = key;
	v->n++;
	return 0;
}

static struct jval *jcontainer(struct jparser *j, int depth, int obj)
{
	struct jval *v = jnew(obj ? J_OBJ : J_ARR);
	size_t cap = 0;
	j->p++;
	ws(j);
	if (j->p < j->end && *j->p == (obj ? '}' : ']')) {
		j->p++;
		return v;
	}
	for (;;) {
		char *key = NULL;
		ws(j);
		if (obj) {
			if (!(key = jstring(j)))
				goto bad;
			ws(j);
			if (j->p >= j->end || *j->p != ':') {
				free(key);
				fail(j, "expected ':'");
				goto bad;
			}
			j->p++;
		}
		struct jval *item = jvalue(j, depth + 1);
		if (!item) {
			free(key);
			goto bad;
		}
		jpush(v, key, item, &cap);
		ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == (obj ? '}' : ']')) {
			j->p++;
			return v;
		}
		fail(j, obj ? "expected ',' or '}'" : "expected ',' or ']'");
		goto bad;
	}
bad:
	jfree(v);
	return NULL;
}

static struct jval *jvalue(struct jparser *j, int depth)
{
	ws(j);
	if (depth > 64) {
		fail(j, "nested too deep");
		return NULL;
	}
	if (j->p >= j->end) {
		fail(j, "unexpected end");
		return NULL;
	}
	char c = *j->p;
	if (c == '{' || c == '[')
		return jcontainer(j, depth, c == '{');
	if (c == '"') {
		char *s = jstring(j);
		if (!s)
			return NULL;
		struct jval *v = jnew(J_STR);
		v->str = s;
		return v;
	}
	static const struct {
		const char *word;
		enum jtype t;
		double num;
	} lit[] = {{"true", J_BOOL, 1}, {"false", J_BOOL, 0}, {"null", J_NULL, 0}};
	for (int i = 0; i < 3; i++) {
		size_t l = strlen(lit[i].word);
		if ((size_t)(j->end - j->p) >= l && !strncmp(j->p, lit[i].word, l)) {
			j->p += l;
			struct jval *v = jnew(lit[i].t);
			v->num = lit[i].num;
			return v;
		}
	}
	/* number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
	const char *start = j->p;
	if (*j->p == '-')
		j->p++;
	if (j->p < j->end && *j->p == '0')
		j->p++;
	else if (digits(j))
		return NULL;
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (digits(j))
			return NULL;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (digits(j))
			return NULL;
	}
	struct jval *v = jnew(J_NUM);
	v->num = strtod(start, NULL);
	return v;
}

static struct jval *json_parse(const char *text, size_t len, char *err, size_t errlen)
{
	struct jparser j = {.start = text, .p = text, .end = text + len};
	struct jval *v = jvalue(&j, 0);
	if (v) {
		ws(&j);
		if (j.p != j.end) {
			fail(&j, "trailing characters");
			jfree(v);
			v = NULL;
		}
	}
	if (!v)
		snprintf(err, errlen, "%s", j.err);
	return v;
}

static const struct jval *jget(const struct jval *o, const char *key)
{
	if (!o || o->type != J_OBJ)
		return NULL;
	for (size_t i = 0; i < o->n; i++)
		if (!strcmp(o->keys[i], key))
			return o->items[i];
	return NULL;
}

static const char *jstr(const struct jval *o, const char *key)
{
	const struct jval *v = jget(o, key);
	return v && v->type == J_STR ? v->str : "";
}

static double jnum(const struct jval *o, const char *key)
{
	const struct jval *v = jget(o, key);
	return v && v->type == J_NUM ? v->num : -1;
}

Test(json_parser, accepts_json_and_refuses_what_is_not, .timeout = 10)
{
	const char *good[] = {"{}", "[]", " [1, -2.5e3, \"a\\u00e9\\ud83d\\ude00\", true, null] ",
	                      "{\"a\":{\"b\":[0.5]}}", "0"};
	const char *bad[] = {"{", "[1,]", "{\"a\" 1}", "01", "\"\\x\"", "[1] 2", "\"a\nb\"",
	                     "{'a':1}", "[\"\\ud800\"]", "1.", "-", "tru"};
	char err[128];
	for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
		struct jval *v = json_parse(good[i], strlen(good[i]), err, sizeof err);
		cr_expect_not_null(v, "%s: %s", good[i], err);
		jfree(v);
	}
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct jval *v = json_parse(bad[i], strlen(bad[i]), err, sizeof err);
		cr_expect_null(v, "accepted %s", bad[i]);
		jfree(v);
	}
}

/* ---- a synthetic trace whose every number is known ----------------------- */

#define US 1000ull
#define SYN_CHUNK (64u << 10)

static struct fp_trace_event ev_fault(uint64_t us, uint32_t c, uint8_t state, uint64_t tid)
{
	return (struct fp_trace_event){us * US, FP_EV_FAULT, state, 0, c, tid, (uint64_t)c * SYN_CHUNK};
}

static struct fp_trace_event ev_load(uint64_t us, uint32_t c)
{
	/* read 5 us, decompress 2 us, install 1 us, queue wait 1 us */
	return (struct fp_trace_event){us * US, FP_EV_LOAD, 1, 1, c, 5 * US | (2 * US) << 32,
	                               1 * US | (1 * US) << 32};
}

static struct fp_trace_event ev(uint64_t us, uint8_t type, uint8_t flags, uint16_t thread,
                                uint32_t c, uint64_t a, uint64_t b)
{
	return (struct fp_trace_event){us * US, type, flags, thread, c, a, b};
}

/* Two threads (100, 101) stall on overlapping faults; thread 100 resumes
 * and marks token 1 before its last load is recorded; thread 102 faults
 * twice on a chunk that is never loaded; thread 103 waits for a poison. */
static const char *write_synthetic(void)
{
	struct fp_trace_event e[] = {
		ev(0, FP_EV_MARK, FP_MARK_TOKEN, 0xffff, 0, 0, 100),
		ev_fault(10, 0, 0, 100), ev_fault(12, 0, 1, 101), ev_load(20, 0),
		ev_fault(30, 1, 0, 100), ev_fault(35, 2, 0, 101), ev_load(40, 1), ev_load(50, 2),
		ev(60, FP_EV_EVICT, 0, 1, 0, 0, 0),
		ev_fault(90, 4, 0, 100),
		ev(100, FP_EV_MARK, FP_MARK_TOKEN, 0xffff, 0, 1, 100),
		ev_load(105, 4),
		ev_fault(110, 0, 2, 100), ev_fault(120, 3, 0, 100), ev_load(130, 3),
		ev_fault(137, 6, 0, 102), ev_fault(138, 6, 0, 102),
		ev(140, FP_EV_MARK, FP_MARK_TOKEN_END, 0xffff, 0, 2, 100),
		ev(150, FP_EV_SETTINGS, 0, 0xffff, 0, 2 * SYN_CHUNK, 0),
		ev(151, FP_EV_EVICT, 0, 0xffff, 1, 0, 0),
		ev_fault(200, 7, 0, 103), ev(210, FP_EV_POISON, 0, 1, 7, 0, 0),
	};
	struct fp_trace_header h = {
		.version = FP_TRACE_VERSION, .record_size = sizeof(struct fp_trace_event),
		.budget = 3 * SYN_CHUNK, .logical_size = 8 * SYN_CHUNK, .chunk_size = SYN_CHUNK,
		.n_chunks = 8, .loaders = 1, .readahead = 0,
	};
	memcpy(h.magic, FP_TRACE_MAGIC, 8);
	strcpy(h.policy, "fifo");
	const char *path = tmp("synthetic.trace");
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(&h, sizeof h, 1, f), 1);
	/* Out of order, as several threads' rings reach the file. */
	size_t n = sizeof e / sizeof e[0];
	for (size_t i = 0; i < n; i += 2)
		cr_assert_eq(fwrite(&e[i], sizeof e[i], 1, f), 1);
	for (size_t i = 1; i < n; i += 2)
		cr_assert_eq(fwrite(&e[i], sizeof e[i], 1, f), 1);
	cr_assert_eq(fclose(f), 0);
	return path;
}

/* The row of the token table labelled label: time, stall, stall%, compute. */
static void token_row(const char *out, const char *label, double v[4])
{
	char key[32];
	snprintf(key, sizeof key, "\n  %8s ", label);
	const char *p = strstr(out, key);
	cr_assert_not_null(p, "no token row %s in:\n%s", label, out);
	cr_assert_eq(sscanf(p + strlen(key), "%lf %lf %lf%% %lf", &v[0], &v[1], &v[2], &v[3]), 4,
	             "row %s", label);
}

Test(trace_tool, synthetic_trace_gives_the_defined_numbers, .timeout = 30)
{
	const char *path = write_synthetic();
	struct run r = RUN(path, "--hist");
	cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	const char *o = r.out;
	cr_expect_eq(field(o, "\n  faults", NULL), 10, "%s", o);
	cr_expect_eq(field(o, "\n  faults", " waited"), 6);
	cr_expect_eq(field(o, "\n  faults", " found the chunk resident"), 1);
	cr_expect_eq(field(o, "\n  faults", " on padding"), 1);
	cr_expect_eq(field(o, "\n  faults", " poisoned"), 1);
	cr_expect_eq(field(o, "\n  faults", " unserved"), 1);
	cr_expect_eq(field(o, "\n  loads", " demand"), 5);
	cr_expect_eq(field(o, "\n  evictions", NULL), 2);
	cr_expect_eq(field(o, "\n  poisoned", NULL), 1);
	/* Without the image every chunk counts chunk_size: 4 of 64 KiB at the
	 * peak, 5 loads - 2 evictions at the end. */
	cr_expect(strstr(o, "256.00 KiB  peak, 192.00 KiB at the end, budget 128.00 KiB"), "%s", o);
	/* Merged stalls: [10,20] [30,50] [90,100] (clipped at thread 100's mark)
	 * [120,130] [200,210] us. */
	cr_expect(strstr(o, "fault stall   60.0 us"), "%s", o);
	double t0[4], t1[4], mean[4];
	token_row(o, "0", t0);
	token_row(o, "1", t1);
	token_row(o, "mean", mean);
	cr_expect(t0[0] == 0.1 && t0[1] == 0.04 && t0[3] == 0.06, "token 0: %g %g %g", t0[0], t0[1], t0[3]);
	cr_expect(t1[0] == 0.04 && t1[1] == 0.01 && t1[3] == 0.03, "token 1: %g %g %g", t1[0], t1[1], t1[3]);
	cr_expect(mean[0] == 0.07 && mean[1] == 0.025, "mean: %g %g", mean[0], mean[1]);
	/* Service times 8, 10, 10, 10, 15, 15 us (the clipped one unclipped). */
	const char *svc = strstr(o, "fault service");
	cr_assert_not_null(svc);
	cr_expect(strstr(svc, "6 samples") && strstr(svc, "p50 10.0 us") && strstr(svc, "max 15.0 us"),
	          "%s", svc);
	run_free(&r);

	const char *json = tmp("synthetic.json");
	r = RUN(path, "-q", "--chrome", json);
	cr_assert_eq(r.code, 0, "%s", r.err);
	run_free(&r);
	size_t len;
	char *text = slurp(json, &len), err[128];
	struct jval *root = json_parse(text, len, err, sizeof err);
	cr_assert_not_null(root, "%s", err);
	const struct jval *evs = jget(root, "traceEvents");
	cr_assert_not_null(evs);
	int stalls = 0, tokens = 0, poison = 0;
	for (size_t i = 0; i < evs->n; i++) {
		const struct jval *e = evs->items[i];
		if (!strcmp(jstr(e, "cat"), "stall")) {
			stalls++;
			/* Thread 100's stall from 90 us ends at its mark, 100 us. */
			if (jnum(e, "ts") > 89 && jnum(e, "ts") < 91)
				cr_expect(jnum(e, "dur") < 10.0 && jnum(e, "dur") > 9.9, "%g", jnum(e, "dur"));
		}
		tokens += !strcmp(jstr(e, "cat"), "token");
		poison += !strcmp(jstr(e, "cat"), "poison");
	}
	cr_expect_eq(stalls, 7);
	cr_expect_eq(tokens, 2);
	cr_expect_eq(poison, 1);
	jfree(root);
	free(text);
}

/* ---- --chrome ------------------------------------------------------------------ */

static struct jval *load_json(const char *path)
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

Test(trace_tool, chrome_json_is_valid_and_holds_the_events, .timeout = 60)
{
	struct recorded rec;
	record(&rec);
	const char *out = tmp("trace.json");
	struct run r = RUN(rec.trace, "--chrome", out);
	cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	run_free(&r);
	struct jval *root = load_json(out);
	const struct jval *ev = jget(root, "traceEvents");
	cr_assert(ev && ev->type == J_ARR, "no traceEvents array");
	uint64_t loads = 0, demand = 0, stages = 0, stalls = 0, evicts = 0, faults = 0, tokens = 0,
	         resident = 0, budget = 0, threads = 0;
	double last_resident = -1, max_resident = 0, stall_in_tokens = 0;
	for (size_t i = 0; i < ev->n; i++) {
		const struct jval *e = ev->items[i];
		cr_assert_eq(e->type, J_OBJ);
		const char *ph = jstr(e, "ph"), *cat = jstr(e, "cat"), *name = jstr(e, "name");
		cr_assert(jget(e, "pid") && jget(e, "tid"), "event %zu without pid/tid", i);
		if (strcmp(ph, "M"))
			cr_assert_geq(jnum(e, "ts"), 0, "event %zu (%s) without ts", i, name);
		if (!strcmp(ph, "X"))
			cr_assert_geq(jnum(e, "dur"), 0, "X event %zu without dur", i);
		if (!strcmp(ph, "X") && !strcmp(cat, "load")) {
			loads++;
			demand += !strcmp(name, "demand load");
			cr_expect_lt(jnum(jget(e, "args"), "chunk"), NCHUNKS);
		} else if (!strcmp(ph, "X") && !strcmp(cat, "stage")) {
			stages++;
		} else if (!strcmp(ph, "X") && !strcmp(cat, "stall")) {
			stalls++;
		} else if (!strcmp(ph, "X") && !strcmp(cat, "token")) {
			tokens++;
			stall_in_tokens += jnum(jget(e, "args"), "stall_us");
		} else if (!strcmp(ph, "i") && !strcmp(cat, "evict")) {
			evicts++;
		} else if (!strcmp(ph, "i") && !strcmp(cat, "fault")) {
			faults++;
		} else if (!strcmp(ph, "C") && !strcmp(name, "resident")) {
			resident++;
			last_resident = jnum(jget(e, "args"), "bytes");
			if (last_resident > max_resident)
				max_resident = last_resident;
		} else if (!strcmp(ph, "C") && !strcmp(name, "budget")) {
			budget++;
		} else if (!strcmp(ph, "M") && !strcmp(name, "thread_name")) {
			threads++;
		}
	}
	cr_expect_eq(loads, rec.s.demand_loads + rec.s.prefetch_loads);
	cr_expect_eq(demand, rec.s.demand_loads);
	cr_expect_leq(stages, 3 * loads);
	cr_expect_geq(stages, loads, "read/decompress/install slices nest in the loads");
	cr_expect_gt(stalls, 0, "demand faults stall the reading thread");
	cr_expect_leq(stalls, rec.s.faults);
	cr_expect_eq(evicts, rec.s.evictions);
	cr_expect_eq(faults, rec.s.faults);
	cr_expect_eq(tokens, TOKENS);
	cr_expect_gt(stall_in_tokens, 0);
	/* One resident sample at the start, one per load (a staged chunk's at
	 * its staging, not again at its install), drop, eviction and budget
	 * change, one at the end; it ends where the library's count ended. */
	fp_trace *tr = fp_trace_open(rec.trace);
	cr_assert_not_null(tr, "%s", fp_last_error());
	uint64_t staged = 0, dropped = 0, from_stage = 0;
	for (uint64_t i = 0; i < fp_trace_count(tr); i++) {
		const struct fp_trace_event *te = &fp_trace_events(tr)[i];
		staged += te->type == FP_EV_STAGE;
		dropped += te->type == FP_EV_DROP;
		from_stage += te->type == FP_EV_LOAD && (te->flags & FP_LOAD_FROM_STAGE);
	}
	fp_trace_close(tr);
	cr_expect_eq(resident, 3 + loads - from_stage + staged + dropped + rec.s.evictions,
	             "start, loads, stagings, drops, evictions, budget change, end");
	cr_expect_eq((uint64_t)last_resident, rec.s.resident_bytes);
	cr_expect_leq((uint64_t)max_resident, rec.s.peak_resident_bytes + 2ull * CHUNK);
	cr_expect_eq(budget, 2, "the budget at the start and after fp_set_budget");
	cr_expect_geq(threads, 4, "handler, two loaders and the reading thread");
	jfree(root);

	/* The image gone: chunk_size per chunk, still valid JSON. */
	r = RUN(rec.trace, "--chrome", out, "--image", "/nonexistent/x.img", "-q");
	cr_assert_eq(r.code, 0, "%s", r.err);
	run_free(&r);
	jfree(load_json(out));

	/* Names that need escaping: a trace whose header names a weird image. */
	size_t len;
	char *bytes = slurp(rec.trace, &len);
	cr_assert_not_null(bytes);
	struct fp_trace_header h;
	memcpy(&h, bytes, sizeof h);
	memset(h.image, 0, sizeof h.image);
	snprintf(h.image, sizeof h.image, "/tmp/we\"ird\\name\t\x01\xff\xc3(.img");
	memcpy(bytes, &h, sizeof h);
	const char *weird = tmp("weird.trace");
	FILE *f = fopen(weird, "wb");
	cr_assert(f && fwrite(bytes, 1, len, f) == len && !fclose(f));
	free(bytes);
	r = RUN(weird, "--chrome", out);
	cr_assert_eq(r.code, 0, "%s", r.err);
	cr_expect(strstr(r.out, "not opened"), "%s", r.out);
	run_free(&r);
	root = load_json(out);
	cr_expect(strstr(jstr(jget(root, "otherData"), "image"), "we\"ird\\name\t\x01"));
	jfree(root);
}

/* ---- --plot ----------------------------------------------------------------------- */

static int have_gnuplot(void)
{
	return !system("command -v gnuplot >/dev/null 2>&1");
}

static void expect_png(const char *path)
{
	size_t len;
	char *p = slurp(path, &len);
	cr_assert_not_null(p, "no %s", path);
	cr_expect_gt(len, 1000, "%s is %zu bytes", path, len);
	cr_expect_eq(memcmp(p, "\x89PNG\r\n\x1a\n", 8), 0, "%s is not a PNG", path);
	free(p);
}

Test(trace_tool, plot_writes_two_pngs, .timeout = 60)
{
	if (!have_gnuplot())
		cr_skip_test("gnuplot is not installed (apt-get install gnuplot-nox)");
	struct recorded rec;
	record(&rec);
	const char *prefix = tmp("plot 'it'");
	struct run r = RUN(rec.trace, "-q", "--plot", prefix);
	cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	run_free(&r);
	char png[600];
	snprintf(png, sizeof png, "%s-latency.png", prefix);
	expect_png(png);
	snprintf(png, sizeof png, "%s-resident.png", prefix);
	expect_png(png);
}

Test(trace_tool, plot_without_gnuplot_names_the_package, .timeout = 60)
{
	struct recorded rec;
	record(&rec);
	const char *empty = tmp("empty-bin");
	mkdir(empty, 0755);
	struct run r = run_tool_env(empty, (const char *const[]){rec.trace, "-q", "--plot",
	                                                         tmp("none"), NULL});
	cr_expect_eq(r.code, 1, "exit %d", r.code);
	cr_expect(strstr(r.err, "gnuplot-nox"), "%s", r.err);
	run_free(&r);
}

/* ---- bad traces and options ------------------------------------------------------- */

static void copy_file(const char *from, const char *to, long cut)
{
	size_t len;
	char *p = slurp(from, &len);
	cr_assert_not_null(p);
	if (cut > 0)
		len -= (size_t)cut;
	FILE *f = fopen(to, "wb");
	cr_assert(f && fwrite(p, 1, len, f) == len && !fclose(f));
	free(p);
}

static void flip(const char *path, long off)
{
	FILE *f = fopen(path, "r+b");
	cr_assert_not_null(f);
	fseek(f, off, SEEK_SET);
	int c = fgetc(f);
	fseek(f, off, SEEK_SET);
	fputc(c ^ 0x5a, f);
	fclose(f);
}

static void expect_refused(const char *path, const char *why)
{
	struct run r = RUN(path);
	cr_expect_eq(r.code, 1, "%s: exit %d", why, r.code);
	cr_expect(strstr(r.err, why), "want '%s' in: %s", why, r.err);
	cr_expect(strstr(r.err, path), "the message names the file: %s", r.err);
	cr_expect_eq(r.out[0], 0, "nothing on stdout: %s", r.out);
	run_free(&r);
}

Test(trace_tool, bad_traces_exit_1_with_the_reason, .timeout = 60)
{
	struct recorded rec;
	record(&rec);
	const char *t = tmp("bad.trace");
	copy_file(rec.trace, t, 5);
	expect_refused(t, "truncated");
	copy_file(rec.trace, t, 0);
	flip(t, (long)sizeof(struct fp_trace_header) + 8); /* first record's type */
	expect_refused(t, "corrupt");
	copy_file(rec.trace, t, 0);
	flip(t, 0);
	expect_refused(t, "bad magic");
	copy_file(rec.trace, t, 0);
	cr_assert_eq(truncate(t, 100), 0);
	expect_refused(t, "too short");
	expect_refused(tmp("no-such.trace"), "cannot open");
	/* A header whose sizes do not add up (n_chunks is the first u32 after
	 * chunk_size). */
	copy_file(rec.trace, t, 0);
	flip(t, (long)offsetof(struct fp_trace_header, n_chunks) + 3);
	expect_refused(t, "corrupt trace header");
}

Test(trace_tool, a_trace_without_records_is_summarised, .timeout = 60)
{
	struct recorded rec;
	record(&rec);
	const char *t = tmp("empty.trace");
	size_t len;
	char *p = slurp(rec.trace, &len);
	cr_assert_not_null(p);
	FILE *f = fopen(t, "wb");
	cr_assert(f && fwrite(p, 1, sizeof(struct fp_trace_header), f) == sizeof(struct fp_trace_header) &&
	          !fclose(f));
	free(p);
	const char *json = tmp("empty.json");
	struct run r = have_gnuplot() ? RUN(t, "--hist", "--chrome", json, "--plot", tmp("empty"))
	                              : RUN(t, "--hist", "--chrome", json);
	cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
	cr_expect(strstr(r.out, ": 0 records"), "%s", r.out);
	cr_expect(strstr(r.out, "tokens: none"), "%s", r.out);
	cr_expect(strstr(r.out, "no samples"), "%s", r.out);
	run_free(&r);
	jfree(load_json(json));
}

Test(trace_tool, options, .timeout = 30)
{
	struct run r = RUN("--help");
	cr_expect_eq(r.code, 0);
	cr_expect(strstr(r.out, "usage: flexpage trace"), "%s", r.out);
	run_free(&r);
	const char *const bad[][4] = {
		{"--bogus", "x.trace", NULL}, {"--tokens", "many", "x.trace", NULL},
		{"a.trace", "b.trace", NULL}, {"--chrome", NULL}, {"--hist", NULL},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		r = run_tool_env(NULL, bad[i]);
		cr_expect_eq(r.code, 2, "%s: exit %d", bad[i][0], r.code);
		cr_expect(strstr(r.err, "usage: flexpage trace"), "%s: %s", bad[i][0], r.err);
		run_free(&r);
	}
}
