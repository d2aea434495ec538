/* flexpage trace FILE: summarise a recorded event trace; latency
 * histograms, Chrome trace-event JSON and gnuplot plots on request.
 *
 * This file parses the options and builds the model (trace_tool.h): which
 * faults waited and for how long, the tokens, resident bytes over time. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "trace_tool.h"
#include "util.h"

static void trace_usage(FILE *f)
{
	fprintf(f,
	        "usage: flexpage trace FILE [options]\n"
	        "  Summarises an event trace (recorded with fp_options.trace_path or\n"
	        "  'flexpage run --trace FILE'): events, loads, bytes, evictions, fault\n"
	        "  stalls, and where each token's time went.  docs/trace-tool.md defines\n"
	        "  every number.\n\n"
	        "  --hist             latency histograms: fault service, read, decompress,\n"
	        "                     install, queue wait (p50/p90/p99/max)\n"
	        "  --chrome OUT.json  write Chrome trace-event JSON (Perfetto, chrome://tracing)\n"
	        "  --plot PREFIX      write PREFIX-latency.png, PREFIX-resident.png and\n"
	        "                     PREFIX-inflight.png (reads in flight over time; gnuplot)\n"
	        "  --tokens N         per-token rows to print before mean and max (default 5)\n"
	        "  --image PATH       image to take chunk sizes from (default: the trace's)\n"
	        "  -q, --quiet        no summary on stdout\n"
	        "  -h, --help         this text\n\n"
	        "Exit status: 0 done, 1 unreadable trace or failed output, 2 bad usage.\n");
}

/* ---- building the model ------------------------------------------------ */

struct pending {
	struct tt_stall s;
	int64_t next;                /* next pending fault on the same chunk, -1 */
	int evict_seen;
};

struct activity {
	uint64_t tid, t;
};

static int cmp_activity(const void *a, const void *b)
{
	const struct activity *x = a, *y = b;
	if (x->tid != y->tid)
		return x->tid < y->tid ? -1 : 1;
	return x->t < y->t ? -1 : x->t > y->t;
}

static int cmp_stall(const void *a, const void *b)
{
	const struct tt_stall *x = a, *y = b;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return x->fault < y->fault ? -1 : x->fault > y->fault;
}

/* One past the highest chunk a record names (fp_trace_open checked each
 * against the header's count). */
static uint32_t chunks_named(const struct tt_model *m)
{
	uint32_t nc = 0;
	for (uint64_t i = 0; i < m->n; i++)
		if (m->ev[i].type != FP_EV_MARK && m->ev[i].type != FP_EV_SETTINGS &&
		    m->ev[i].chunk >= nc)
			nc = m->ev[i].chunk + 1;
	return nc;
}

/* The image, when it is there and matches the trace: NULL (and why in
 * m->image_note) when not. */
static fp_image *matching_image(struct tt_model *m, const char *path)
{
	const struct fp_trace_header *h = m->h;
	if (!path[0]) {
		snprintf(m->image_note, sizeof m->image_note, "the trace names no image");
		return NULL;
	}
	fp_image *img = fp_image_open(path);
	if (!img) {
		snprintf(m->image_note, sizeof m->image_note, "%s", fp_last_error());
		return NULL;
	}
	const struct fp_image_info *info = fp_image_info(img);
	if (info->n_chunks != h->n_chunks || info->chunk_size != h->chunk_size) {
		snprintf(m->image_note, sizeof m->image_note,
		         "%s has %u chunks of %u bytes, the trace %u of %u: not the traced image",
		         path, info->n_chunks, info->chunk_size, h->n_chunks, h->chunk_size);
		fp_image_close(img);
		return NULL;
	}
	return img;
}

/* The per-chunk tables: sizes from the image when it matches (then as
 * many chunks as it has), else every chunk a record names at chunk_size. */
static int load_chunks(struct tt_model *m, const char *path)
{
	const struct fp_trace_header *h = m->h;
	fp_image *img = matching_image(m, path);
	m->nc = img ? h->n_chunks : chunks_named(m);
	/* Without the image, the tables follow the chunk numbers the records
	 * name; past TT_MAX_UNSEEN_CHUNKS (1 TiB of 64 KiB chunks) a damaged
	 * record is likelier than a real image, and the tables would need
	 * gigabytes: refused, with the image as the way round. */
	if (!img && m->nc > TT_MAX_UNSEEN_CHUNKS) {
		snprintf(m->error, sizeof m->error,
		         "a record names chunk %u: more than %u chunks need the traced image "
		         "(--image IMG)",
		         m->nc - 1, TT_MAX_UNSEEN_CHUNKS);
		return -1;
	}
	m->chunk_bytes = malloc((m->nc ? m->nc : 1) * sizeof *m->chunk_bytes);
	if (img) {
		m->stored_bytes = calloc(m->nc, sizeof *m->stored_bytes);
		m->data_bytes = calloc(m->nc, sizeof *m->data_bytes);
	}
	if (!m->chunk_bytes || (img && (!m->stored_bytes || !m->data_bytes))) {
		if (img)
			fp_image_close(img);
		return -1;
	}
	for (uint32_t c = 0; c < m->nc; c++) {
		const struct fp_chunk_desc *d = img ? fp_image_chunk(img, c) : NULL;
		m->chunk_bytes[c] = d ? (d->logical_len + 4095u) & ~4095u : h->chunk_size;
		if (d) {
			m->stored_bytes[c] = d->stored_len;
			m->data_bytes[c] = d->logical_len;
		}
	}
	if (img) {
		m->have_image = 1;
		fp_image_close(img);
	}
	return 0;
}

static int push_stall(struct tt_model *m, size_t *cap, const struct tt_stall *s)
{
	if (m->n_stalls == *cap) {
		size_t nc = *cap ? 2 * *cap : 256;
		struct tt_stall *p = realloc(m->stalls, nc * sizeof *p);
		if (!p)
			return -1;
		m->stalls = p;
		*cap = nc;
	}
	m->stalls[m->n_stalls++] = *s;
	return 0;
}

/* Match each fault that must wait with the record that ends the wait. */
static int match_faults(struct tt_model *m)
{
	const struct fp_trace_header *h = m->h;
	int64_t *head = malloc((m->nc ? m->nc : 1) * sizeof *head);
	struct pending *pool = malloc((m->count[FP_EV_FAULT] + 1) * sizeof *pool);
	size_t npool = 0, cap = 0;
	if (!head || !pool) {
		free(head);
		free(pool);
		return -1;
	}
	for (uint32_t c = 0; c < m->nc; c++)
		head[c] = -1;
	int rc = 0;
	for (uint64_t i = 0; i < m->n && !rc; i++) {
		const struct fp_trace_event *e = &m->ev[i];
		uint32_t c = e->chunk;
		switch (e->type) {
		case FP_EV_FAULT: {
			uint64_t in_chunk = e->b % h->chunk_size;
			if (m->have_image && in_chunk >= m->chunk_bytes[c]) {
				m->faults_padding++;
				break;
			}
			if (e->flags == FP_FAULT_POISONED) {
				m->faults_poisoned++;
				break;
			}
			if (e->flags != FP_FAULT_EMPTY && e->flags != FP_FAULT_LOADING &&
			    e->flags != FP_FAULT_EVICTING) {
				m->faults_resident++;
				break;
			}
			if (e->flags == FP_FAULT_EMPTY) {
				/* The chunk was empty, so no earlier fault on it is
				 * still waiting for a load: those were on padding
				 * (only possible when the image is unknown). */
				for (int64_t k = head[c]; k >= 0; k = pool[k].next)
					m->faults_padding++;
				head[c] = -1;
			}
			struct pending *p = &pool[npool];
			*p = (struct pending){
				.s = {.start = e->t_ns, .fault = i, .tid = e->a, .chunk = c,
				      .state = e->flags},
				.next = head[c],
			};
			head[c] = (int64_t)npool++;
			break;
		}
		case FP_EV_LOAD:
		case FP_EV_POISON:
			for (int64_t k = head[c]; k >= 0 && !rc; k = pool[k].next) {
				struct tt_stall s = pool[k].s;
				s.end = e->t_ns;
				s.load = i;
				s.service = e->t_ns - s.start;
				s.poisoned = e->type == FP_EV_POISON;
				if (s.poisoned)
					m->faults_poisoned++;
				else
					m->faults_waited++;
				rc = push_stall(m, &cap, &s);
			}
			head[c] = -1;
			break;
		case FP_EV_EVICT: {
			/* A fault that saw the chunk EVICTING waits through this
			 * eviction for the reload.  Any other waiting fault was
			 * recorded just after its load's record (the two threads'
			 * clocks raced): the chunk was resident already. */
			int64_t *link = &head[c];
			while (*link >= 0) {
				struct pending *p = &pool[*link];
				if (p->s.state == FP_FAULT_EVICTING && !p->evict_seen) {
					p->evict_seen = 1;
					link = &p->next;
				} else {
					m->faults_resident++;
					*link = p->next;
				}
			}
			break;
		}
		default:
			break;
		}
	}
	for (uint32_t c = 0; c < m->nc; c++)
		for (int64_t k = head[c]; k >= 0; k = pool[k].next)
			m->faults_unserved++;
	free(head);
	free(pool);
	return rc;
}

/* A thread cannot stall past the next thing it does: its next fault record
 * or its next mark.  (Its load's record can come a little after the thread
 * was woken, since the loader records after installing.) */
static int clip_stalls(struct tt_model *m)
{
	size_t na = 0;
	struct activity *act = malloc((m->count[FP_EV_FAULT] + m->count[FP_EV_MARK] + 1) * sizeof *act);
	if (!act)
		return -1;
	for (uint64_t i = 0; i < m->n; i++) {
		const struct fp_trace_event *e = &m->ev[i];
		if (e->type == FP_EV_FAULT)
			act[na++] = (struct activity){e->a, e->t_ns};
		else if (e->type == FP_EV_MARK)
			act[na++] = (struct activity){e->b, e->t_ns};
	}
	if (na)
		qsort(act, na, sizeof *act, cmp_activity);
	for (size_t i = 0; i < m->n_stalls; i++) {
		struct tt_stall *s = &m->stalls[i];
		size_t lo = 0, hi = na; /* first activity > (tid, start) */
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (act[mid].tid < s->tid || (act[mid].tid == s->tid && act[mid].t <= s->start))
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < na && act[lo].tid == s->tid && act[lo].t < s->end)
			s->end = act[lo].t;
	}
	/* The distinct application threads. */
	m->app_tids = malloc((na + 1) * sizeof *m->app_tids);
	if (!m->app_tids) {
		free(act);
		return -1;
	}
	for (size_t i = 0; i < na; i++)
		if (!m->n_app || m->app_tids[m->n_app - 1] != act[i].tid)
			m->app_tids[m->n_app++] = act[i].tid;
	free(act);
	return 0;
}

/* Tokens: from one FP_MARK_TOKEN to the next, an FP_MARK_TOKEN_END, or the
 * trace's last record. */
static int find_tokens(struct tt_model *m)
{
	size_t cap = 0;
	struct tt_token *open = NULL;
	for (uint64_t i = 0; i < m->n; i++) {
		const struct fp_trace_event *e = &m->ev[i];
		if (e->type != FP_EV_MARK)
			continue;
		if (e->flags != FP_MARK_TOKEN && e->flags != FP_MARK_TOKEN_END)
			continue;
		if (open) {
			open->end = e->t_ns;
			open = NULL;
		}
		if (e->flags != FP_MARK_TOKEN)
			continue;
		if (m->n_tokens == cap) {
			size_t nc = cap ? 2 * cap : 64;
			struct tt_token *p = realloc(m->tokens, nc * sizeof *p);
			if (!p)
				return -1;
			m->tokens = p;
			cap = nc;
		}
		open = &m->tokens[m->n_tokens++];
		*open = (struct tt_token){.value = e->a, .tid = e->b, .start = e->t_ns};
	}
	if (open)
		open->end = m->t_last;
	return 0;
}

/* The token whose [start, end) holds t, or NULL. */
static struct tt_token *token_at(struct tt_model *m, uint64_t t)
{
	size_t lo = 0, hi = m->n_tokens;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->tokens[mid].start <= t)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo)
		return NULL;
	struct tt_token *k = &m->tokens[lo - 1];
	return t < k->end || (t == k->end && k->end == m->t_last && lo == m->n_tokens) ? k : NULL;
}

/* Merge the stalls into disjoint intervals; total them and share them out
 * among the tokens. */
static int merge_stalls(struct tt_model *m)
{
	if (m->n_stalls)
		qsort(m->stalls, m->n_stalls, sizeof *m->stalls, cmp_stall);
	uint64_t *iv = m->merged = malloc((2 * m->n_stalls + 1) * sizeof *iv);
	size_t ni = 0;
	if (!iv)
		return -1;
	for (size_t i = 0; i < m->n_stalls; i++) {
		const struct tt_stall *s = &m->stalls[i];
		if (s->end <= s->start)
			continue;
		if (ni && s->start <= iv[ni - 1]) {
			if (s->end > iv[ni - 1])
				iv[ni - 1] = s->end;
		} else {
			iv[ni++] = s->start;
			iv[ni++] = s->end;
		}
	}
	m->stall_union = 0;
	for (size_t i = 0; i < ni; i += 2)
		m->stall_union += iv[i + 1] - iv[i];
	size_t j = 0;
	for (size_t k = 0; k < m->n_tokens; k++) {
		struct tt_token *tk = &m->tokens[k];
		while (j < ni && iv[j + 1] <= tk->start)
			j += 2;
		for (size_t i = j; i < ni && iv[i] < tk->end; i += 2) {
			uint64_t a = iv[i] > tk->start ? iv[i] : tk->start;
			uint64_t b = iv[i + 1] < tk->end ? iv[i + 1] : tk->end;
			if (b > a)
				tk->stall += b - a;
		}
	}
	m->n_merged = ni;
	return 0;
}

static int add_point(struct tt_model *m, size_t *cap, uint64_t t, int64_t resident, uint64_t budget)
{
	if (m->n_res == *cap) {
		size_t nc = *cap ? 2 * *cap : 256;
		struct tt_point *p = realloc(m->res, nc * sizeof *p);
		if (!p)
			return -1;
		m->res = p;
		*cap = nc;
	}
	m->res[m->n_res++] = (struct tt_point){t, resident, budget};
	return 0;
}

/* A chunk's bytes come (sign +1) or go (-1): a point of the resident curve. */
static int hold(struct tt_model *m, size_t *cap, const struct fp_trace_event *e,
                int64_t *resident, int sign, uint64_t budget)
{
	*resident += sign * (int64_t)m->chunk_bytes[e->chunk];
	if (*resident > m->peak_resident)
		m->peak_resident = *resident;
	return add_point(m, cap, e->t_ns, *resident, budget);
}

/* Counts, bytes, per-token sums and resident bytes over time. */
static int account(struct tt_model *m)
{
	size_t cap = 0;
	int64_t resident = 0;
	uint64_t budget = m->h->budget;
	if (add_point(m, &cap, 0, 0, budget))
		return -1;
	for (uint64_t i = 0; i < m->n; i++) {
		const struct fp_trace_event *e = &m->ev[i];
		struct tt_token *tk = token_at(m, e->t_ns);
		m->reads += tt_did_read(e);
		if (e->type != FP_EV_MARK && e->type != FP_EV_FAULT) {
			if (e->thread == TT_OTHER_THREAD)
				m->other_thread = 1;
			else if (e->thread > m->max_loader)
				m->max_loader = e->thread;
		}
		switch (e->type) {
		case FP_EV_FAULT:
			if (tk)
				tk->faults++;
			break;
		case FP_EV_LOAD: {
			int demand = !!(e->flags & FP_LOAD_DEMAND);
			if (demand)
				m->demand_loads++;
			else
				m->readahead_loads++;
			m->bytes_installed += m->chunk_bytes[e->chunk];
			if (m->stored_bytes)
				m->bytes_stored += m->stored_bytes[e->chunk];
			m->busy_read += tt_read_ns(e);
			m->busy_decomp += tt_decomp_ns(e);
			m->busy_install += tt_install_ns(e);
			m->busy_wait += tt_wait_ns(e);
			if (tk) {
				tk->read += tt_read_ns(e);
				tk->decomp += tt_decomp_ns(e);
				tk->install += tt_install_ns(e);
				tk->wait += tt_wait_ns(e);
				if (demand)
					tk->demand++;
				else
					tk->readahead++;
			}
			if (e->flags & FP_LOAD_FROM_STAGE)
				break; /* its bytes counted when it was staged */
			if (hold(m, &cap, e, &resident, +1, budget))
				return -1;
			break;
		}
		case FP_EV_STAGE:
			/* Read-ahead staged it: the read and decode happened here,
			 * and its bytes are held from now on. */
			m->busy_read += tt_read_ns(e);
			m->busy_decomp += tt_decomp_ns(e);
			m->busy_wait += tt_wait_ns(e);
			if (tk) {
				tk->read += tt_read_ns(e);
				tk->decomp += tt_decomp_ns(e);
				tk->wait += tt_wait_ns(e);
			}
			if (hold(m, &cap, e, &resident, +1, budget))
				return -1;
			break;
		case FP_EV_DROP:
			if (hold(m, &cap, e, &resident, -1, budget))
				return -1;
			break;
		case FP_EV_EVICT:
			if (tk)
				tk->evictions++;
			if (hold(m, &cap, e, &resident, -1, budget))
				return -1;
			break;
		case FP_EV_SETTINGS:
			budget = e->a;
			m->budget_changes++;
			if (add_point(m, &cap, e->t_ns, resident, budget))
				return -1;
			break;
		default:
			break;
		}
	}
	m->end_budget = budget;
	return add_point(m, &cap, m->t_last, resident, budget);
}

int tt_build(struct tt_model *m, const fp_trace *t, const char *path, const char *image)
{
	*m = (struct tt_model){.path = path};
	m->h = fp_trace_header(t);
	m->ev = fp_trace_events(t);
	m->n = fp_trace_count(t);
	if (m->n) {
		m->t_first = m->ev[0].t_ns;
		m->t_last = m->ev[m->n - 1].t_ns;
	}
	m->max_loader = m->h->loaders;
	for (uint64_t i = 0; i < m->n; i++)
		m->count[m->ev[i].type]++;
	/* The header's image path is NUL-terminated: fp_trace_open checks. */
	if (load_chunks(m, image ? image : m->h->image) || match_faults(m) || clip_stalls(m) || find_tokens(m) || merge_stalls(m) || account(m) ||
	    tt_why_build(m))
		return -1;
	return 0;
}

void tt_free(struct tt_model *m)
{
	free(m->chunk_bytes);
	free(m->stored_bytes);
	free(m->data_bytes);
	free(m->stalls);
	free(m->tokens);
	free(m->res);
	free(m->app_tids);
	free(m->inflight);
	free(m->merged);
	*m = (struct tt_model){0};
}

/* ---- the command ----------------------------------------------------- */

int cmd_trace(int argc, char **argv)
{
	static const struct option opts[] = {
		{"hist", no_argument, 0, 'H'},       {"chrome", required_argument, 0, 'c'},
		{"plot", required_argument, 0, 'p'}, {"tokens", required_argument, 0, 't'},
		{"image", required_argument, 0, 'i'}, {"quiet", no_argument, 0, 'q'},
		{"help", no_argument, 0, 'h'},       {0, 0, 0, 0},
	};
	int hist = 0, quiet = 0, rows = 5, o;
	const char *chrome = NULL, *plot = NULL, *image = NULL;
	optind = 1;
	opterr = 1;
	while ((o = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
		switch (o) {
		case 'H': hist = 1; break;
		case 'c': chrome = optarg; break;
		case 'p': plot = optarg; break;
		case 'i': image = optarg; break;
		case 'q': quiet = 1; break;
		case 't': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (end == optarg || *end || v < 0 || v > 1000000) {
				fprintf(stderr, "flexpage trace: --tokens: '%s' is not a count\n", optarg);
				trace_usage(stderr);
				return 2;
			}
			rows = (int)v;
			break;
		}
		case 'h': trace_usage(stdout); return 0;
		default: trace_usage(stderr); return 2;
		}
	}
	if (argc - optind != 1 || (chrome && !chrome[0]) || (plot && !plot[0]) ||
	    (image && !image[0])) {
		if (argc - optind > 1)
			fprintf(stderr, "flexpage trace: one trace file, please\n");
		else if (argc - optind < 1)
			fprintf(stderr, "flexpage trace: which trace file?\n");
		else
			fprintf(stderr, "flexpage trace: an empty file name\n");
		trace_usage(stderr);
		return 2;
	}
	const char *path = argv[optind];
	fp_trace *t = fp_trace_open(path);
	if (!t) {
		fprintf(stderr, "flexpage trace: %s\n", fp_last_error());
		return 1;
	}
	/* fp_trace_open checks the framing, not that the header adds up; the
	 * per-chunk tables below are sized by it. */
	const struct fp_trace_header *h = fp_trace_header(t);
	if ((uint64_t)h->n_chunks * h->chunk_size != h->logical_size) {
		fprintf(stderr,
		        "flexpage trace: %s: corrupt trace header: %u chunks of %u bytes are not the "
		        "logical size %llu\n",
		        path, h->n_chunks, h->chunk_size, (unsigned long long)h->logical_size);
		fp_trace_close(t);
		return 1;
	}
	struct tt_model m;
	if (tt_build(&m, t, path, image)) {
		fprintf(stderr, "flexpage trace: %s: %s\n", path, m.error[0] ? m.error : "out of memory");
		tt_free(&m);
		fp_trace_close(t);
		return 1;
	}
	int rc = 0;
	int to_stdout = chrome && !strcmp(chrome, "-");
	if (!quiet && !to_stdout)
		tt_print_summary(stdout, &m, rows);
	if (hist && !to_stdout)
		tt_print_hist(stdout, &m);
	if (chrome && tt_write_chrome(&m, chrome))
		rc = 1;
	if (plot && tt_plot(&m, plot))
		rc = 1;
	if (fflush(stdout) || ferror(stdout)) {
		fprintf(stderr, "flexpage trace: writing to stdout failed\n");
		rc = 1;
	}
	tt_free(&m);
	fp_trace_close(t);
	return rc;
}
