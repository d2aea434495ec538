/* flexpage trace --chrome: the Chrome trace-event format ("traceEvents"
 * array of JSON objects), which Perfetto and chrome://tracing open.
 *
 * Tracks (tid) in one process: the handler, each loader, the application
 * threads that faulted or marked (their kernel tid), and "other" for pager
 * work done on an application's call (fp_set_budget's evictions).  Times are
 * microseconds with nanosecond decimals.  Slices on one track are pulled a
 * few nanoseconds inside their parent and apart from their neighbours, so
 * that a viewer's rounding (microseconds as doubles) cannot make them
 * overlap. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "trace_tool.h"

#define PID 1
/* Above any kernel thread id (PID_MAX_LIMIT is 2^22). */
#define PAGER_TID(thread) (0x40000000ull + (thread))
#define UNKNOWN_TID PAGER_TID(0xfffeu)

static const char *const state_names[] = {
	[FP_FAULT_EMPTY] = "empty",       [FP_FAULT_LOADING] = "loading",
	[FP_FAULT_RESIDENT] = "resident", [FP_FAULT_EVICTING] = "evicting",
	[FP_FAULT_POISONED] = "poisoned", [FP_FAULT_STAGED] = "staged",
};

static const char *state_name(unsigned s)
{
	return s < sizeof state_names / sizeof state_names[0] ? state_names[s] : "unknown";
}

static uint64_t app_tid(uint64_t tid)
{
	return tid ? tid : UNKNOWN_TID;
}

struct out {
	FILE *f;
	int first;
};

/* A JSON string: quotes, backslashes and control characters escaped;
 * bytes that are not valid UTF-8 become U+FFFD. */
static void json_str(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	fputc('"', f);
	while (*p) {
		unsigned c = *p;
		if (c == '"' || c == '\\') {
			fputc('\\', f);
			fputc((int)c, f);
			p++;
		} else if (c < 0x20 || c == 0x7f) {
			fprintf(f, "\\u%04x", c);
			p++;
		} else if (c < 0x80) {
			fputc((int)c, f);
			p++;
		} else {
			int len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
			        : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
			int ok = len > 0;
			for (int i = 1; ok && i < len; i++)
				ok = (p[i] & 0xc0) == 0x80;
			/* No overlong forms, surrogates or code points past U+10FFFF. */
			if (ok && len == 3)
				ok = !(c == 0xe0 && p[1] < 0xa0) && !(c == 0xed && p[1] >= 0xa0);
			if (ok && len == 4)
				ok = !(c == 0xf0 && p[1] < 0x90) && !(c == 0xf4 && p[1] >= 0x90);
			if (ok) {
				fwrite(p, 1, (size_t)len, f);
				p += len;
			} else {
				fputs("\\ufffd", f);
				p++;
			}
		}
	}
	fputc('"', f);
}

static void us(FILE *f, uint64_t ns)
{
	fprintf(f, "%llu.%03llu", (unsigned long long)(ns / 1000), (unsigned long long)(ns % 1000));
}

/* Opens an event object with the common fields; the caller adds the rest
 * and closes it with end(). */
static void begin(struct out *o, const char *ph, const char *name, const char *cat, uint64_t tid,
                  uint64_t ts)
{
	FILE *f = o->f;
	fputs(o->first ? "\n" : ",\n", f);
	o->first = 0;
	fprintf(f, "{\"ph\":\"%s\",\"name\":", ph);
	json_str(f, name);
	if (cat) {
		fputs(",\"cat\":", f);
		json_str(f, cat);
	}
	fprintf(f, ",\"pid\":%d,\"tid\":%llu,\"ts\":", PID, (unsigned long long)tid);
	us(f, ts);
}

static void end(struct out *o)
{
	fputc('}', o->f);
}

static void complete(struct out *o, const char *name, const char *cat, uint64_t tid,
                     uint64_t start, uint64_t stop)
{
	begin(o, "X", name, cat, tid, start);
	fputs(",\"dur\":", o->f);
	us(o->f, stop - start);
}

static void meta(struct out *o, const char *what, uint64_t tid, const char *name, int sort)
{
	FILE *f = o->f;
	fputs(o->first ? "\n" : ",\n", f);
	o->first = 0;
	fprintf(f, "{\"ph\":\"M\",\"name\":\"%s\",\"pid\":%d,\"tid\":%llu,\"args\":{", what, PID,
	        (unsigned long long)tid);
	if (name) {
		fputs("\"name\":", f);
		json_str(f, name);
	} else {
		fprintf(f, "\"sort_index\":%d", sort);
	}
	fputs("}}", f);
}

static void name_thread(struct out *o, uint64_t tid, const char *name, int sort)
{
	meta(o, "thread_name", tid, name, 0);
	meta(o, "thread_sort_index", tid, NULL, sort);
}

static void metadata(struct out *o, const struct tt_model *m)
{
	char name[256];
	const char *base = strrchr(m->h->image, '/');
	snprintf(name, sizeof name, "flexpage %s", base ? base + 1 : m->h->image);
	meta(o, "process_name", PAGER_TID(0), name, 0);
	name_thread(o, PAGER_TID(0), "handler", 0);
	for (uint32_t k = 1; k <= m->max_loader && k < TT_OTHER_THREAD; k++) {
		snprintf(name, sizeof name, "loader %u", k);
		name_thread(o, PAGER_TID(k), name, (int)k);
	}
	if (m->other_thread)
		name_thread(o, PAGER_TID(TT_OTHER_THREAD), "pager work on other threads", 70000);
	for (size_t i = 0; i < m->n_app; i++) {
		if (m->app_tids[i])
			snprintf(name, sizeof name, "thread %llu", (unsigned long long)m->app_tids[i]);
		else
			snprintf(name, sizeof name, "unknown thread");
		name_thread(o, app_tid(m->app_tids[i]), name, 100000 + (int)(i < 100000 ? i : 100000));
	}
}

/* A load, or a staging (cat "staging": a read-ahead read and decoded
 * ahead, installed later by a load of its own). */
static void load_event(struct out *o, const struct tt_model *m, const struct fp_trace_event *e)
{
	FILE *f = o->f;
	uint64_t tid = PAGER_TID(e->thread);
	uint64_t s = tt_load_start(e), t = e->t_ns;
	uint64_t r = tt_read_ns(e), d = tt_decomp_ns(e), in = tt_install_ns(e);
	if (e->type == FP_EV_STAGE) {
		complete(o, "staging", "staging", tid, s, t);
		fprintf(f, ",\"args\":{\"chunk\":%u,\"bytes\":%u,\"wait_us\":", e->chunk,
		        m->chunk_bytes[e->chunk]);
	} else {
		complete(o, e->flags & FP_LOAD_DEMAND ? "demand load" : "read-ahead load", "load", tid, s, t);
		fprintf(f, ",\"args\":{\"chunk\":%u,\"bytes\":%u,\"demand\":%s,\"wait_us\":", e->chunk,
		        m->chunk_bytes[e->chunk], e->flags & FP_LOAD_DEMAND ? "true" : "false");
	}
	us(f, tt_wait_ns(e));
	fputs("}", f);
	end(o);
	/* The stages, each pulled 2 ns in at both ends: inside the load and
	 * apart from each other. */
	const struct {
		const char *name;
		uint64_t a, b;
	} stage[3] = {
		{"read", s, s + r},
		{"decompress", s + r, s + r + d},
		{"install", t - in, t},
	};
	for (int i = 0; i < 3; i++) {
		uint64_t a = stage[i].a < s ? s : stage[i].a, b = stage[i].b > t ? t : stage[i].b;
		if (b < a + 8)
			continue; /* too short to draw */
		complete(o, stage[i].name, "stage", tid, a + 2, b - 2);
		fprintf(f, ",\"args\":{\"chunk\":%u}", e->chunk);
		end(o);
	}
}

static void instant(struct out *o, const char *name, const char *cat, uint64_t tid, uint64_t ts)
{
	begin(o, "i", name, cat, tid, ts);
	fputs(",\"s\":\"t\"", o->f);
}

static void counter(struct out *o, const char *name, uint64_t ts, uint64_t v)
{
	begin(o, "C", name, NULL, PAGER_TID(0), ts);
	fprintf(o->f, ",\"args\":{\"bytes\":%llu}", (unsigned long long)v);
	end(o);
}

static void records(struct out *o, const struct tt_model *m)
{
	FILE *f = o->f;
	for (uint64_t i = 0; i < m->n; i++) {
		const struct fp_trace_event *e = &m->ev[i];
		switch (e->type) {
		case FP_EV_FAULT:
			instant(o, "fault", "fault", PAGER_TID(0), e->t_ns);
			fprintf(f, ",\"args\":{\"chunk\":%u,\"state\":\"%s\",\"tid\":%llu,\"offset\":%llu}",
			        e->chunk, state_name(e->flags), (unsigned long long)e->a,
			        (unsigned long long)e->b);
			end(o);
			break;
		case FP_EV_LOAD:
		case FP_EV_STAGE:
			load_event(o, m, e);
			break;
		case FP_EV_EVICT:
		case FP_EV_POISON:
			instant(o, e->type == FP_EV_EVICT ? "evict" : "poison",
			        e->type == FP_EV_EVICT ? "evict" : "poison", PAGER_TID(e->thread), e->t_ns);
			fprintf(f, ",\"args\":{\"chunk\":%u}", e->chunk);
			end(o);
			break;
		case FP_EV_SETTINGS:
			instant(o, "budget", "settings", PAGER_TID(e->thread), e->t_ns);
			fprintf(f, ",\"args\":{\"budget\":%llu}", (unsigned long long)e->a);
			end(o);
			break;
		case FP_EV_MARK:
			if (e->flags == FP_MARK_TOKEN || e->flags == FP_MARK_TOKEN_END)
				break; /* drawn as token slices */
			instant(o, "mark", "mark", app_tid(e->b), e->t_ns);
			fprintf(f, ",\"args\":{\"kind\":%u,\"value\":%llu}", e->flags,
			        (unsigned long long)e->a);
			end(o);
			break;
		default:
			break;
		}
	}
}

static void derived(struct out *o, const struct tt_model *m)
{
	FILE *f = o->f;
	for (size_t k = 0; k < m->n_tokens; k++) {
		const struct tt_token *t = &m->tokens[k];
		char name[48];
		snprintf(name, sizeof name, "token %llu", (unsigned long long)t->value);
		uint64_t stop = t->end - t->start > 4 ? t->end - 2 : t->end;
		complete(o, name, "token", app_tid(t->tid), t->start, stop);
		uint64_t time = t->end - t->start;
		fprintf(f, ",\"args\":{\"token\":%llu,\"stall_us\":", (unsigned long long)t->value);
		us(f, t->stall);
		fputs(",\"compute_us\":", f);
		us(f, time - (t->stall < time ? t->stall : time));
		fprintf(f, ",\"faults\":%llu,\"demand_loads\":%llu,\"readahead_loads\":%llu}",
		        (unsigned long long)t->faults, (unsigned long long)t->demand,
		        (unsigned long long)t->readahead);
		end(o);
	}
	for (size_t i = 0; i < m->n_stalls; i++) {
		const struct tt_stall *s = &m->stalls[i];
		if (s->end <= s->start + 8)
			continue; /* nothing to see, and no room inside its token */
		complete(o, s->poisoned ? "fault stall (poisoned)" : "fault stall", "stall",
		         app_tid(s->tid), s->start + 4, s->end - 4);
		fprintf(f, ",\"args\":{\"chunk\":%u,\"state\":\"%s\",\"service_us\":", s->chunk,
		        state_name(s->state));
		us(f, s->service);
		fputs("}", f);
		end(o);
	}
	uint64_t budget = ~0ull;
	for (size_t i = 0; i < m->n_res; i++) {
		const struct tt_point *p = &m->res[i];
		counter(o, "resident", p->t, p->resident > 0 ? (uint64_t)p->resident : 0);
		if (p->budget != budget)
			counter(o, "budget", p->t, p->budget);
		budget = p->budget;
	}
}

int tt_write_chrome(const struct tt_model *m, const char *path)
{
	int to_stdout = !strcmp(path, "-");
	FILE *f = to_stdout ? stdout : fopen(path, "w");
	if (!f) {
		fprintf(stderr, "flexpage trace: %s: %s\n", path, strerror(errno));
		return -1;
	}
	struct out o = {f, 1};
	const struct fp_trace_header *h = m->h;
	fputs("{\"displayTimeUnit\":\"ms\",\"otherData\":{\"trace\":", f);
	json_str(f, m->path);
	fputs(",\"image\":", f);
	json_str(f, h->image);
	fputs(",\"policy\":", f);
	json_str(f, h->policy);
	fprintf(f, ",\"budget\":%llu,\"chunk_size\":%u,\"chunks\":%u,\"loaders\":%u,"
	           "\"readahead\":%u},\n\"traceEvents\":[",
	        (unsigned long long)h->budget, h->chunk_size, h->n_chunks, h->loaders, h->readahead);
	metadata(&o, m);
	records(&o, m);
	derived(&o, m);
	fputs("\n]}\n", f);
	int bad = ferror(f);
	if (to_stdout)
		bad |= fflush(f);
	else
		bad |= fclose(f);
	if (bad) {
		fprintf(stderr, "flexpage trace: %s: writing the JSON failed\n", path);
		return -1;
	}
	return 0;
}
