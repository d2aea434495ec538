/* The runtime over a flexpage region: the same model gives bit-identical
 * logits when its weights are paged in on demand, at budgets of 100, 50
 * and 25 per cent, with 64 KiB and 1 MiB chunks, raw and zstd, on 1 and 2
 * compute threads, as when they are resident, and as through a plain mmap
 * of a raw image. */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <flexkern/kernels.h>
#include <flexpage/flexpage_experimental.h>
#include <flexrt/runtime.h>

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <flexmodel/model.h>

#include "region_util.h"
#include "rt_util.h"

#define STORIES FLEXPAGE_SHARED_MODELS "/stories260K.bin"
#define MAX_STEPS 16

static char *dir;

static void setup(void)
{
	dir = rt_tmpdir();
	cr_assert(dir, "no temporary directory on a disk file system");
}

static void teardown(void)
{
	if (dir)
		rt_rmtree(dir);
	free(dir);
}

/* Logits of a greedy run from BOS; the tokens fed are the first run's, so
 * every later run sees the same inputs even if it went wrong. */
struct run {
	int steps, vocab;
	int tokens[MAX_STEPS];
	float *logits;               /* steps * vocab */
};

static void run_model(const struct model *m, int threads, struct run *r, int teacher)
{
	const struct frt_options o = {threads, r->steps};
	frt_model *rt = frt_model_create(&m->cfg, &m->weights, &o);
	cr_assert(rt, "%s", frt_last_error());
	r->vocab = m->cfg.vocab_size;
	if (!r->logits)
		r->logits = malloc(sizeof(float) * (size_t)r->steps * (size_t)r->vocab);
	int token = FRT_BOS;
	for (int pos = 0; pos < r->steps; pos++) {
		const float *lg = frt_forward(rt, token, pos);
		cr_assert(lg);
		memcpy(r->logits + (size_t)pos * r->vocab, lg, sizeof(float) * (size_t)r->vocab);
		if (!teacher)
			r->tokens[pos] = frt_argmax(lg, r->vocab);
		token = r->tokens[pos];
	}
	frt_model_destroy(rt);
}

static void open_or_die(struct model *m, const char *path, const struct model_options *o)
{
	cr_assert_eq(model_open(m, path, o), 0, "%s", model_last_error());
}

static void same_logits(const struct run *want, const struct run *got, const char *what)
{
	for (int pos = 0; pos < want->steps; pos++)
		cr_assert(!memcmp(want->logits + (size_t)pos * want->vocab,
		                  got->logits + (size_t)pos * want->vocab,
		                  sizeof(float) * (size_t)want->vocab),
		          "%s: logits at pos %d differ from the resident run", what, pos);
}

/* The smallest budget the pager accepts for this image. */
static uint64_t min_budget(const char *path)
{
	struct fp_options o = {0};
	o.retries = -1;
	o.readahead = -1;
	fp_region *r = fp_open(path, &o);
	cr_assert(r, "fp_open %s: %s", path, fp_last_error());
	const uint64_t b = fp_min_budget(r);
	fp_close(r);
	return b;
}

/* The pager's techniques, switched on and off: none of them may change a
 * byte the loop reads. */
enum technique {
	T_DEFAULT,       /* read-ahead staged and predicted */
	T_PRESERVE,      /* + balanced preservation, attention first, locked */
	T_PLAIN,         /* demand only: no read-ahead, staging, prediction; first layers kept */
	T_COUNT
};
static const char *const technique_names[T_COUNT] = {
	"staged predicted read-ahead", "balanced preservation", "demand only, first layers kept",
};

static uint8_t *plan_mask(const char *image, uint64_t budget, int balanced, uint64_t *kept)
{
	fp_image *img = fp_image_open(image);
	cr_assert(img, "%s", fp_last_error());
	struct fp_plan_options po = {
		.budget = budget,
		.stream_bytes = budget / 2,
		.balanced = balanced,
		.order = balanced ? FP_PLAN_ATTENTION_FIRST : FP_PLAN_BY_BENEFIT,
		.tensor_layer = ru_blk_layer,
	};
	struct fp_plan p;
	cr_assert_eq(fp_plan_make(img, &po, &p), 0, "%s", fp_last_error());
	fp_image_close(img);
	*kept = p.preserved_bytes;
	return p.preserve; /* the caller frees it */
}

/* Every budget, thread count and technique against want. */
static void paged_matches(const char *image, const struct run *want, const char *label)
{
	fp_image *img = fp_image_open(image);
	cr_assert(img, "%s", fp_last_error());
	const struct fp_image_info *info = fp_image_info(img);
	const uint64_t data = info->data_bytes, chunk = info->chunk_size;
	fp_image_close(img);
	const uint64_t floor = min_budget(image);
	const int pcts[] = {100, 50, 25};
	for (size_t b = 0; b < 3; b++) {
		uint64_t budget = data * (uint64_t)pcts[b] / 100;
		if (budget < floor)
			budget = floor;
		for (int tech = 0; tech < T_COUNT; tech++)
		for (int threads = 1; threads <= 2; threads++) {
			if (tech != T_DEFAULT && threads != (tech == T_PRESERVE ? 2 : 1))
				continue;
			struct model_options o = {0};
			o.load = MODEL_LOAD_FLEXPAGE;
			o.fp.budget = pcts[b] == 100 ? 0 : budget;
			o.fp.loaders = 2;
			o.fp.retries = -1;
			o.fp.readahead = tech == T_PLAIN ? 0 : -1;
			uint8_t *mask = NULL;
			uint64_t kept = 0;
			if (tech == T_PLAIN)
				o.fp.flags = FP_OPEN_NO_STAGE | FP_OPEN_NO_PREDICT;
			if (tech != T_DEFAULT && pcts[b] < 100)
				o.fp.preserve = mask = plan_mask(image, budget, tech == T_PRESERVE, &kept);
			struct model m;
			open_or_die(&m, image, &o);
			struct run got = *want;
			got.logits = NULL;
			run_model(&m, threads, &got, 1);
			char what[320];
			snprintf(what, sizeof what, "%s, budget %d%% (%llu bytes), %d thread%s, %s", label,
			         pcts[b], (unsigned long long)budget, threads, threads > 1 ? "s" : "",
			         technique_names[tech]);
			same_logits(want, &got, what);
			struct fp_stats st;
			fp_get_stats(m.region, &st);
			if (pcts[b] < 100 && budget + 2 * chunk < data)
				cr_assert(st.evictions > 0, "%s: nothing was evicted: the test pages nothing", what);
			if (pcts[b] < 100)
				cr_assert(st.peak_resident_bytes <= budget + (uint64_t)o.fp.loaders * chunk,
				          "%s: peak resident %llu bytes over the budget", what,
				          (unsigned long long)st.peak_resident_bytes);
			/* A preserved chunk counts once its loader marks it resident,
			 * which may be just after its install woke the loop. */
			fp_quiesce(m.region);
			fp_get_stats(m.region, &st);
			if (mask)
				cr_assert_eq(st.preserved_bytes, kept, "%s: %llu bytes preserved, the plan says %llu",
				             what, (unsigned long long)st.preserved_bytes, (unsigned long long)kept);
			cr_log_info("%s: %llu faults, %llu evictions, peak %llu bytes", what,
			            (unsigned long long)st.faults, (unsigned long long)st.evictions,
			            (unsigned long long)st.peak_resident_bytes);
			free(got.logits);
			model_close(&m);
			free(mask);
		}
	}
}

static void require_stories(void)
{
	if (access(STORIES, R_OK))
		cr_skip_test("%s is missing: the real-model paging tests need it", STORIES);
}

/* stories260K, f32: reference from the checkpoint itself, read resident. */
static void stories_at(uint32_t chunk)
{
	require_stories();
	struct run want = {MAX_STEPS, 0, {0}, NULL};
	struct model m;
	struct model_options o = {0};
	o.load = MODEL_LOAD_RESIDENT;
	open_or_die(&m, STORIES, &o);
	run_model(&m, 1, &want, 0);
	model_close(&m);

	const uint32_t codecs[] = {FP_CODEC_RAW, FP_CODEC_ZSTD};
	for (int c = 0; c < 2; c++) {
		char err[512], label[128];
		const char *img = rt_path(dir, c ? "s.zst.img" : "s.raw.img");
		cr_assert_eq(rt_pack_llama2c(STORIES, img, NULL, chunk, codecs[c], err, sizeof err), 0,
		             "%s", err);
		snprintf(label, sizeof label, "stories260K, %u KiB chunks, %s", chunk >> 10,
		         fp_codec_name(codecs[c]));
		paged_matches(img, &want, label);
		if (codecs[c] == FP_CODEC_RAW) {
			/* and the same through a plain mapping and a resident read */
			const int loads[] = {MODEL_LOAD_MMAP, MODEL_LOAD_RESIDENT};
			for (int l = 0; l < 2; l++) {
				struct model mm;
				struct model_options mo = {0};
				mo.load = loads[l];
				mo.advice = MADV_SEQUENTIAL;
				open_or_die(&mm, img, &mo);
				struct run got = want;
				got.logits = NULL;
				run_model(&mm, 2, &got, 1);
				same_logits(&want, &got, model_load_name(loads[l]));
				free(got.logits);
				model_close(&mm);
			}
		}
	}
	free(want.logits);
}

Test(paged, stories260k_64k_chunks, .init = setup, .fini = teardown)
{
	stories_at(64u << 10);
}

Test(paged, stories260k_1m_chunks, .init = setup, .fini = teardown)
{
	stories_at(1u << 20);
}

/* A synthetic q8_0 model of 8.3 MB, big enough that 1 MiB chunks stream
 * at 25 and 50 per cent: dim 512, hidden 1376, 2 layers, 8 heads over 4
 * KV heads, vocabulary 2048, its own classifier. */
static void synth_at(uint32_t chunk)
{
	const struct frt_config cfg = {512, 1376, 2, 8, 4, 2048, 256, 10000.0f, 1e-5f};
	char err[512], label[128];
	const char *ref = rt_path(dir, "q8.ref.img");
	cr_assert_eq(rt_synth(ref, &cfg, 0, FK_Q8_0, 64u << 10, FP_CODEC_RAW, 7, 2, err, sizeof err), 0,
	             "%s", err);
	struct run want = {10, 0, {0}, NULL};
	struct model m;
	struct model_options o = {0};
	o.load = MODEL_LOAD_RESIDENT;
	open_or_die(&m, ref, &o);
	run_model(&m, 1, &want, 0);
	model_close(&m);

	const uint32_t codecs[] = {FP_CODEC_RAW, FP_CODEC_ZSTD};
	for (int c = 0; c < 2; c++) {
		const char *img = rt_path(dir, c ? "q8.zst.img" : "q8.raw.img");
		cr_assert_eq(rt_synth(img, &cfg, 0, FK_Q8_0, chunk, codecs[c], 7, 1, err, sizeof err), 0,
		             "%s", err);
		snprintf(label, sizeof label, "synthetic q8_0, %u KiB chunks, %s", chunk >> 10,
		         fp_codec_name(codecs[c]));
		paged_matches(img, &want, label);
	}
	free(want.logits);
}

Test(paged, synthetic_q8_0_64k_chunks, .init = setup, .fini = teardown)
{
	synth_at(64u << 10);
}

Test(paged, synthetic_q8_0_1m_chunks, .init = setup, .fini = teardown)
{
	synth_at(1u << 20);
}
