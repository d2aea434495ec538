/* The options of the commands that run a model, and opening the model as
 * they say: one parser, so that `flexpage run` and `flexpage perplexity`
 * load, page and report alike. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <flexkern/kernels.h>

#include "run_options.h"
#include "util.h"

void run_options_init(struct run_options *o)
{
	memset(o, 0, sizeof *o);
	o->threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (o->threads < 1)
		o->threads = 1;
	o->mo.fp.retries = -1;
	o->mo.fp.readahead = -1;
}

void run_options_usage(FILE *f)
{
	fprintf(f,
	        "\n  --threads N         compute threads (default: the CPUs online)\n"
	        "  --kernels ISA       force scalar, avx2 or avx512 kernels (default: best)\n\n"
	        "  --load MODE         resident, mmap or flexpage (default: flexpage for\n"
	        "                      images and GGUF files, resident for checkpoints)\n"
	        "  --no-repack         for resident: compute on q4_0 matrices in the file's\n"
	        "                      layout (default: repack them in place into the\n"
	        "                      kernels' 8-row interleaved layout, which decodes\n"
	        "                      faster to the same results)\n"
	        "  --madvise ADVICE    for mmap: normal, sequential or random (default normal)\n"
	        "  --budget B          for flexpage: resident bytes, e.g. 600M, 1.5G, or 40%%\n"
	        "                      of the model's bytes (default: the whole image)\n"
	        "  --loaders N         for flexpage: loader threads (default 4)\n"
	        "  --policy NAME       for flexpage: eviction policy (default fifo)\n"
	        "  --readahead N       for flexpage: the most read-ahead, in chunks (default\n"
	        "                      32 MiB worth; 0: none); the depth used follows the\n"
	        "                      measured load time and the loop's pace\n"
	        "  --buffered          for flexpage: read through the page cache\n"
	        "  --no-huge           for flexpage: install 4 KiB pages only\n"
	        "  --chunk SIZE        for flexpage on a GGUF file: the chunk it is paged in\n"
	        "                      (64K..4M, default 2M; an image keeps its own)\n"
	        "  --preserve PLAN     for flexpage: balanced, first or none (default\n"
	        "                      balanced): keep chunks resident as flexpage plan\n"
	        "                      chooses them\n"
	        "  --attention-first   for --preserve: attention tensors first in a layer\n"
	        "  --stream SIZE       for --preserve: budget kept for streaming, e.g. 32M or\n"
	        "                      10%% (default 16 chunks; at least one; none when the\n"
	        "                      budget holds every chunk)\n"
	        "  --no-lock           for --preserve: do not mlock preserved chunks\n"
	        "  --no-stage          for flexpage: read-ahead installs at once (no position\n"
	        "                      signal from the loop's faults)\n"
	        "  --no-predict        for flexpage: read ahead in file order, not the learned one\n"
	        "  --read-rate RATE    for flexpage: the storage read rate, bytes/s (400M, 2G);\n"
	        "  --decode-rate RATE  and one core's zstd decode rate: by them the plan weighs\n"
	        "                      reads and decodes and each chunk's cheaper stored form\n"
	        "                      is read (default: measured at open, ~0.1 s, when the\n"
	        "                      image holds compressed chunks)\n"
	        "  --decoders N        for flexpage: the most loaders decoding at once (0: no\n"
	        "                      limit, the default)\n"
	        "  --trace FILE        for flexpage: record an event trace (flexpage trace, sim)\n"
	        "  --stats-interval T  for flexpage: a line of statistics every T (1s, 500ms)\n");
}

int run_options_parse(struct run_options *o, int code, const char *arg, char *err, size_t errlen)
{
	struct fp_options *fp = &o->mo.fp;
	switch (code) {
	case RUN_OPT_READ_RATE:
	case RUN_OPT_DECODE_RATE: {
		const char *name = code == RUN_OPT_READ_RATE ? "--read-rate" : "--decode-rate";
		uint64_t v;
		if (parse_size(arg, 0, &v, name, err, errlen))
			return -2;
		if (!v) {
			snprintf(err, errlen, "%s: %s is no rate (bytes/s, e.g. 400M)", name, arg);
			return -2;
		}
		*(code == RUN_OPT_READ_RATE ? &fp->read_rate : &fp->decode_rate) = (double)v;
		return 1;
	}
	case RUN_OPT_DECODERS:
		if (parse_int(arg, 0, 64, &fp->decoders)) {
			snprintf(err, errlen, "--decoders: '%s' is not a count from 0 to 64", arg);
			return -2;
		}
		return 1;
	case RUN_OPT_NO_REPACK: o->no_repack = 1; return 1;
	case RUN_OPT_CHUNK:
		return parse_chunk_size(arg, &fp->chunk_size, err, errlen) ? -2 : 1;
	case 't':
		if (parse_int(arg, 1, 256, &o->threads)) {
			snprintf(err, errlen, "--threads: '%s' is not a count from 1 to 256", arg);
			return -2;
		}
		return 1;
	case 'K': {
		const int isa = fk_isa_parse(arg);
		if (isa < 0) {
			snprintf(err, errlen, "--kernels: '%s' is not scalar, avx2 or avx512", arg);
			return -2;
		}
		if (fk_set_isa(isa)) {
			snprintf(err, errlen, "--kernels %s: this CPU does not have it", arg);
			return -1;
		}
		return 1;
	}
	case 'L':
		o->mo.load = model_load_parse(arg);
		if (o->mo.load < 0) {
			snprintf(err, errlen, "--load: '%s' is not resident, mmap or flexpage", arg);
			return -2;
		}
		return 1;
	case 'M':
		if (!strcmp(arg, "normal"))
			o->mo.advice = MADV_NORMAL;
		else if (!strcmp(arg, "sequential"))
			o->mo.advice = MADV_SEQUENTIAL;
		else if (!strcmp(arg, "random"))
			o->mo.advice = MADV_RANDOM;
		else {
			snprintf(err, errlen, "--madvise: '%s' is not normal, sequential or random", arg);
			return -2;
		}
		return 1;
	case 'b': o->budget_arg = arg; return 1;
	case 'l':
		if (parse_int(arg, 1, 64, &fp->loaders)) {
			snprintf(err, errlen, "--loaders: '%s' is not a count from 1 to 64", arg);
			return -2;
		}
		return 1;
	case 'y': fp->policy = arg; return 1;
	case 'r':
		if (parse_int(arg, 0, 1 << 16, &fp->readahead)) {
			snprintf(err, errlen, "--readahead: '%s' is not a count of chunks", arg);
			return -2;
		}
		return 1;
	case 'B': fp->flags |= FP_OPEN_BUFFERED; return 1;
	case 'H': fp->flags |= FP_OPEN_NO_HUGE; return 1;
	case 'R': o->paging.preserve = arg; return 1;
	case 'A': o->paging.attention_first = 1; return 1;
	case 'W': o->paging.stream = arg; return 1;
	case 'U': fp->flags |= FP_OPEN_NO_LOCK; return 1;
	case 'G': fp->flags |= FP_OPEN_NO_STAGE; return 1;
	case 'D': fp->flags |= FP_OPEN_NO_PREDICT; return 1;
	case 'X': fp->trace_path = arg; return 1;
	case 'i':
		if (parse_duration(arg, &o->paging.stats_interval_ns) || !o->paging.stats_interval_ns) {
			snprintf(err, errlen, "--stats-interval: '%s' is not a duration like 1s or 500ms",
			         arg);
			return -2;
		}
		return 1;
	}
	return 0;
}

int run_options_open(struct run_options *o, const char *path, struct model *m,
                     char *err, size_t errlen)
{
	/* what the file is decides the default load and what a budget means */
	const int format = model_detect(path);
	if (format < 0) {
		snprintf(err, errlen, "%s", model_last_error());
		return -1;
	}
	const int load = o->mo.load ? o->mo.load : model_default_load(format);
	if (o->budget_arg && load != MODEL_LOAD_FLEXPAGE) {
		snprintf(err, errlen, "--budget applies to --load flexpage, not %s", model_load_name(load));
		return -2;
	}
	if (o->budget_arg) {
		fp_image *img = fp_image_open_chunk(path, o->mo.fp.chunk_size);
		if (!img) {
			snprintf(err, errlen, "%s", fp_last_error());
			return -1;
		}
		/* a per cent is of the model's bytes, what a full load makes
		 * resident, not of the padded logical layout */
		const uint64_t whole = fp_image_info(img)->data_bytes;
		fp_image_close(img);
		if (parse_size(o->budget_arg, whole, &o->mo.fp.budget, "--budget", err, errlen))
			return -2;
		if (!o->mo.fp.budget) {
			snprintf(err, errlen, "--budget: %s is no memory at all", o->budget_arg);
			return -2;
		}
	}
	if (load != MODEL_LOAD_FLEXPAGE && (o->paging.preserve || o->mo.fp.trace_path ||
	                                    o->paging.stats_interval_ns)) {
		snprintf(err, errlen, "--preserve, --trace and --stats-interval apply to --load flexpage");
		return -2;
	}
	if (load == MODEL_LOAD_FLEXPAGE) {
		fp_install_fault_reporter();
		if (run_paging_plan(&o->paging, path, &o->mo.fp, err, errlen))
			return -1;
	}
	if (model_open(m, path, &o->mo)) {
		snprintf(err, errlen, "%s", model_last_error());
		return -1;
	}
	return 0;
}

int run_options_prepare(const struct run_options *o, const struct model *m, frt_model *rt,
                        char *err, size_t errlen)
{
	if (m->load != MODEL_LOAD_RESIDENT || o->no_repack)
		return 0;
	/* the resident copy is this runtime's alone: repack over it */
	if (frt_model_repack_in_place(rt)) {
		snprintf(err, errlen, "%s: %s", m->path, frt_last_error());
		return -1;
	}
	return 0;
}

void run_options_describe(const struct run_options *o, const struct model *m, FILE *f)
{
	char a[32], types[64];
	model_types(m, types, sizeof types);
	const int repacked = m->load == MODEL_LOAD_RESIDENT && !o->no_repack && strstr(types, "q4_0");
	fprintf(f, "model: %s (%s, %s, %s), load %s%s, kernels %s, %d thread%s\n", m->path,
	        m->format == MODEL_FORMAT_IMAGE  ? "image"
	        : m->format == MODEL_FORMAT_GGUF ? "GGUF"
	                                         : "llama2.c",
	        types, fmt_bytes(m->size, a, sizeof a), model_load_name(m->load),
	        repacked ? " (q4_0 repacked)" : "", fk_isa_name(fk_get_isa()),
	        o->threads, o->threads > 1 ? "s" : "");
	if (!m->region)
		return;
	/* what is on, so that an ablation shows in the output it changed */
	const struct fp_options *fp = &o->mo.fp;
	const struct fp_plan *pl = &o->paging.plan;
	struct fp_stats st;
	fp_get_stats(m->region, &st);
	char b[32], p[32];
	fprintf(f, "paging: budget %s; ", fmt_bytes(st.budget, b, sizeof b));
	if (pl->preserve)
		fprintf(f, "preserve %s%s (%u chunks, %s%s); ",
		        o->paging.preserve ? o->paging.preserve : "balanced",
		        o->paging.attention_first ? ", attention first" : "", pl->n_preserved,
		        fmt_bytes(pl->preserved_bytes, p, sizeof p),
		        fp->flags & FP_OPEN_NO_LOCK ? ", not locked" : ", locked");
	else
		fprintf(f, "no preservation; ");
	if (fp->readahead)
		fprintf(f, "read-ahead in the %s order%s; ",
		        fp->flags & FP_OPEN_NO_PREDICT ? "file" : "learned",
		        fp->flags & FP_OPEN_NO_STAGE ? ", installed at once" : ", staged");
	else
		fprintf(f, "no read-ahead; ");
	fprintf(f, "policy %s\n", fp->policy ? fp->policy : "fifo");
	if (st.compressed_chunks || st.rates_measured || o->paging.rates.measured)
		fprintf(f, "rates: read %.0f MB/s, decode %.0f MB/s a core (%s); %u chunks read "
		        "compressed, %u in their alternate form%s\n", st.read_rate / 1e6,
		        st.decode_rate / 1e6,
		        o->paging.rates.measured ? "measured at open" : st.rates_measured ? "measured by the pager"
		        : fp->read_rate > 0 || fp->decode_rate > 0 ? "given" : "defaults",
		        st.compressed_chunks, st.alt_forms_chosen,
		        fp->decoders ? "; decoders limited" : "");
}

/* What this process read from storage and how often it waited on a page,
 * whatever the load: the same numbers for mmap, resident and flexpage. */
void run_options_report(const struct model *m, FILE *f)
{
	unsigned long long read_bytes = 0;
	char line[128];
	FILE *io = fopen("/proc/self/io", "r");
	while (io && fgets(line, sizeof line, io))
		if (sscanf(line, "read_bytes: %llu", &read_bytes) == 1)
			break;
	if (io)
		fclose(io);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	fprintf(f, "io: %.1f MiB read from storage, %ld major faults, peak RSS %.1f MiB\n",
	        (double)read_bytes / (1 << 20), ru.ru_majflt, (double)ru.ru_maxrss / 1024);
	if (m->region) {
		struct fp_stats ps;
		fp_get_stats(m->region, &ps);
		fp_print_stats(f, &ps);
	}
}

void run_options_free(struct run_options *o)
{
	fp_plan_free(&o->paging.plan);
}
