/* The preservation planner against brute force, its layer balance, and
 * preserved chunks in a live region: loaded at open, never evicted, locked. */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <flexpage/flexpage_experimental.h>

#include "region_util.h"

/* An image of named tensors; compressible ones zstd-shrink, random ones do not. */
static void write_model(const char *path, int n, const char *const *names, const size_t *sizes,
                        const int *compressible, uint32_t codec)
{
	struct fp_writer_options wo = {.chunk_size = 64u << 10, .codec = codec};
	fp_writer *w = fp_writer_create(path, &wo);
	cr_assert_not_null(w, "%s", fp_last_error());
	for (int i = 0; i < n; i++) {
		uint8_t *d = ru_data(sizes[i], 40 + (uint64_t)i);
		if (compressible[i])
			for (size_t k = 0; k < sizes[i]; k++)
				d[k] = (uint8_t)(k % 7 == 0 ? d[k] : 0);
		uint64_t shape[1] = {sizes[i]};
		cr_assert_eq(fp_writer_begin_tensor(w, names[i], FP_TYPE_U8, 1, shape), 0);
		cr_assert_eq(fp_writer_write(w, d, sizes[i]), 0);
		cr_assert_eq(fp_writer_end_tensor(w), 0);
		free(d);
	}
	cr_assert_eq(fp_writer_finish(w), 0, "%s", fp_last_error());
}

Test(plan, is_the_optimum_by_brute_force)
{
	const char *names[] = {"a", "b", "c", "d", "e", "f"};
	const size_t sizes[] = {64u << 10, 100000, 3 * (64u << 10), 5000, 128u << 10, 70000};
	const int comp[] = {1, 0, 1, 0, 0, 1};
	char path[512];
	snprintf(path, sizeof path, "%s/plan.img", ru_tmpdir());
	write_model(path, 6, names, sizes, comp, FP_CODEC_ZSTD);
	fp_image *img = fp_image_open(path);
	cr_assert_not_null(img);
	uint32_t n = fp_image_info(img)->n_chunks;
	cr_assert_leq(n, 16);
	const double read = 1e9, decode = 2e9;
	double benefit[16];
	uint64_t cost[16], all = 0;
	for (uint32_t c = 0; c < n; c++) {
		const struct fp_chunk_desc *d = fp_image_chunk(img, c);
		cost[c] = (d->logical_len + 4095ull) / 4096 * 4096;
		all += cost[c];
		/* a streamed chunk's own time: its read or, compressed, its
		 * decode on the one core one decoder gets, whichever is longer */
		benefit[c] = d->logical_len ? fmax((double)d->stored_len / read * 1e9,
		                                   d->codec ? (double)d->logical_len / decode * 1e9 : 0)
		                            : 0;
	}
	for (uint64_t budget = 3 * (64u << 10); budget <= all + (64u << 10); budget += 40960) {
		/* Streaming keeps two chunks whatever is asked, unless the budget
		 * holds every chunk: then it keeps them all. */
		uint64_t cap = budget >= all ? budget : budget - 2 * (64u << 10);
		double best = 0;
		for (uint32_t set = 0; set < (1u << n); set++) {
			uint64_t used = 0;
			double got = 0;
			for (uint32_t c = 0; c < n; c++)
				if (set & (1u << c)) {
					used += cost[c];
					got += benefit[c];
				}
			if (used <= cap && got > best)
				best = got;
		}
		struct fp_plan_options o = {.budget = budget, .read_bytes_per_s = read,
		                            .decode_bytes_per_s = decode, .balanced = 1, .decoders = 1};
		struct fp_plan p;
		cr_assert_eq(fp_plan_make(img, &o, &p), 0, "%s", fp_last_error());
		cr_expect_leq(p.preserved_bytes, cap);
		cr_expect(p.saved_ns > best - 1e-6 && p.saved_ns < best + 1e-6,
		          "budget %llu: plan saves %.1f ns, the optimum %.1f", (unsigned long long)budget,
		          p.saved_ns, best);
		if (budget >= all)
			cr_expect_eq(p.preserved_bytes, all, "a budget that holds it all keeps it all");
		fp_plan_free(&p);
	}
	fp_image_close(img);
	unlink(path);
}

Test(plan, balanced_spreads_over_layers_and_unbalanced_takes_the_first)
{
	const char *names[] = {"blk.0.attn_q.weight", "blk.0.ffn_up.weight",
	                       "blk.1.attn_q.weight", "blk.1.ffn_up.weight",
	                       "blk.2.attn_q.weight", "blk.2.ffn_up.weight",
	                       "blk.3.attn_q.weight", "blk.3.ffn_up.weight"};
	size_t sizes[8];
	int comp[8] = {0};
	for (int i = 0; i < 8; i++)
		sizes[i] = 4 * (64u << 10);
	char path[512];
	snprintf(path, sizeof path, "%s/layers.img", ru_tmpdir());
	write_model(path, 8, names, sizes, comp, FP_CODEC_RAW);
	fp_image *img = fp_image_open(path);
	cr_assert_not_null(img);
	uint64_t half = 16 * (64u << 10); /* half of the 32 chunks */
	for (int balanced = 0; balanced < 2; balanced++) {
		for (int attention = 0; attention < 2; attention++) {
			struct fp_plan_options o = {.budget = half + 2 * (64u << 10), .balanced = balanced,
			                            .order = attention ? FP_PLAN_ATTENTION_FIRST : FP_PLAN_BY_BENEFIT,
			                            .tensor_layer = ru_blk_layer};
			struct fp_plan p;
			cr_assert_eq(fp_plan_make(img, &o, &p), 0);
			cr_expect_eq(p.preserved_bytes, half);
			int per_layer[4] = {0}, attn = 0;
			for (uint32_t c = 0; c < p.n_chunks; c++)
				if (p.preserve[c]) {
					per_layer[c / 8]++;
					attn += (c % 8) < 4;
				}
			for (int l = 0; l < 4; l++)
				cr_expect_eq(per_layer[l], balanced ? 4 : (l < 2 ? 8 : 0),
				             "balanced %d: layer %d keeps %d chunks", balanced, l, per_layer[l]);
			if (attention && balanced)
				cr_expect_eq(attn, 16, "attention first: %d of 16 kept chunks are attention", attn);
			fp_plan_free(&p);
		}
	}
	fp_image_close(img);
	unlink(path);
}

/* An embedding looked up one row a token: a tenth of it read each token. */
static double embd_share(const struct fp_tensor_desc *t, void *ctx)
{
	(void)ctx;
	return strcmp(t->name, "token_embd.weight") ? 1.0 : 0.1;
}

Test(plan, looked_up_tensor_kept_last_and_a_whole_budget_keeps_all)
{
	/* 8 chunks of embedding, then two layers of 8 chunks each */
	const char *names[] = {"token_embd.weight", "blk.0.ffn_up.weight", "blk.1.ffn_up.weight"};
	const size_t sizes[] = {8 * (64u << 10), 8 * (64u << 10), 8 * (64u << 10)};
	const int comp[] = {0, 0, 0};
	char path[512];
	snprintf(path, sizeof path, "%s/embd.img", ru_tmpdir());
	write_model(path, 3, names, sizes, comp, FP_CODEC_RAW);
	fp_image *img = fp_image_open(path);
	cr_assert_not_null(img);
	const uint64_t chunk = 64u << 10;
	for (int balanced = 0; balanced < 2; balanced++) {
		/* Room for the layers and 3 embedding chunks, 2 streaming. */
		struct fp_plan_options o = {.budget = 21 * chunk, .stream_bytes = 2 * chunk,
		                            .balanced = balanced, .read_share = embd_share,
		                            .tensor_layer = ru_blk_layer};
		struct fp_plan p;
		cr_assert_eq(fp_plan_make(img, &o, &p), 0);
		int embd = 0, layers = 0;
		for (uint32_t c = 0; c < p.n_chunks; c++)
			if (p.preserve[c])
				*(c < 8 ? &embd : &layers) += 1;
		cr_expect_eq(layers, 16, "balanced %d: %d layer chunks kept of 16", balanced, layers);
		cr_expect_eq(embd, 3, "balanced %d: %d embedding chunks kept, room for 3", balanced, embd);
		cr_expect_eq(p.stream_bytes, 2 * chunk);
		fp_plan_free(&p);
		/* A budget that holds every chunk keeps them all, the embedding
		 * too, and leaves nothing to stream whatever was asked. */
		o.budget = 24 * chunk;
		o.stream_bytes = 16 * chunk;
		cr_assert_eq(fp_plan_make(img, &o, &p), 0);
		cr_expect_eq(p.n_preserved, 24, "balanced %d: %u of 24 chunks kept", balanced, p.n_preserved);
		cr_expect_eq(p.stream_bytes, 0);
		cr_expect_eq(p.streamed_stored, 0);
		fp_plan_free(&p);
	}
	fp_image_close(img);
	unlink(path);
}

/* llama.cpp's names: the layer and attention of each name as llama.cpp
 * and GGUF give them, written out here; the embedding's share is one
 * chunk of it only when the model has a classifier of its own. */
Test(plan, llama_names_give_layers_attention_and_the_embedding_share)
{
	const char *names[] = {"token_embd.weight", "blk.0.attn_q.weight", "blk.0.ffn_up.weight",
	                       "blk.12.attn_norm.weight", "blk.7.ffn_attn_x", "blk.x.attn_k",
	                       "blk.3attn_v", "output_norm.weight", "output.weight"};
	const int layer[] = {-1, 0, 0, 12, 7, -1, -1, -1, -1};
	const int attention[] = {0, 1, 0, 1, 0, 0, 0, 0, 0};
	const size_t sizes[] = {8 * (64u << 10), 1000, 1000, 1000, 1000, 1000, 1000, 1000, 4096};
	const int comp[9] = {0};
	char path[512];
	for (int with_output = 1; with_output >= 0; with_output--) {
		snprintf(path, sizeof path, "%s/llama%d.img", ru_tmpdir(), with_output);
		write_model(path, with_output ? 9 : 8, names, sizes, comp, FP_CODEC_RAW);
		fp_image *img = fp_image_open(path);
		cr_assert_not_null(img, "%s", fp_last_error());
		for (int i = 0; i < (with_output ? 9 : 8); i++) {
			const struct fp_tensor_desc *t = fp_image_find(img, names[i]);
			cr_assert_not_null(t, "%s", names[i]);
			int att = 0;
			cr_expect_eq(fp_plan_llama_layer(t, &att, NULL), layer[i], "%s", names[i]);
			cr_expect_eq(att, attention[i], "%s: attention %d", names[i], att);
			double want = i == 0 && with_output ? 1.0 / 8 : 1.0;
			cr_expect_float_eq(fp_plan_llama_read_share(t, img), want, 1e-12, "%s, output.weight %s",
			                   names[i], with_output ? "there" : "absent");
		}
		fp_image_close(img);
		unlink(path);
	}
}

Test(plan, a_whole_budget_keeps_the_bytes_of_no_tensor_too, .timeout = 60)
{
	/* A verbatim image of a file whose last 10000 bytes are no tensor's
	 * (a llama2.c checkpoint's RoPE tables): a budget of every page keeps
	 * every chunk, so that fp_open takes the plan. */
	const uint64_t chunk = 64u << 10, len = 3 * chunk + 10000;
	uint8_t *data = ru_data(len, 9);
	char path[512];
	snprintf(path, sizeof path, "%s/tail.img", ru_tmpdir());
	struct fp_writer_options wo = {.chunk_size = (uint32_t)chunk, .verbatim = 1};
	fp_writer *w = fp_writer_create(path, &wo);
	uint64_t shape[1] = {3 * chunk};
	cr_assert_not_null(w);
	cr_assert_eq(fp_writer_add_tensor_at(w, "blk.0.ffn_up.weight", FP_TYPE_U8, 1, shape, 0), 0);
	cr_assert_eq(fp_writer_write(w, data, len), 0);
	cr_assert_eq(fp_writer_finish(w), 0, "%s", fp_last_error());
	fp_image *img = fp_image_open(path);
	cr_assert_not_null(img, "%s", fp_last_error());
	cr_assert_eq(fp_image_info(img)->n_chunks, 4);
	uint64_t pages = (len + 4095) / 4096 * 4096;
	struct fp_plan_options o = {.budget = pages, .stream_bytes = 2 * chunk, .balanced = 1};
	struct fp_plan p;
	cr_assert_eq(fp_plan_make(img, &o, &p), 0);
	cr_expect_eq(p.n_preserved, 4, "%u of 4 chunks kept", p.n_preserved);
	cr_expect_eq(p.preserved_bytes, pages);
	cr_expect_eq(p.stream_bytes, 0);
	fp_image_close(img);
	struct fp_options ro = ru_options(pages);
	ro.preserve = p.preserve;
	fp_region *r = fp_open(path, &ro);
	cr_assert_not_null(r, "fp_open refused the plan: %s", fp_last_error());
	cr_expect_eq(memcmp(fp_region_base(r), data, len), 0);
	fp_close(r);
	fp_plan_free(&p);
	free(data);
	unlink(path);
}

Test(plan, preserved_chunks_load_at_open_stay_and_are_locked, .timeout = 60)
{
	const uint32_t chunk = 64u << 10;
	const size_t len = 32u * chunk;
	uint8_t *ref = ru_data(len, 50);
	char path[512];
	snprintf(path, sizeof path, "%s/preserve.img", ru_tmpdir());
	ru_write_image(path, ref, len, chunk, FP_CODEC_RAW);
	uint8_t preserve[32] = {0};
	for (int c = 0; c < 32; c += 4)
		preserve[c] = 1; /* 8 chunks */
	for (int quota = 0; quota < 2; quota++) {
		struct fp_options o = ru_options(12ull * chunk);
		o.preserve = preserve;
		o.lock_quota = quota ? 3ull * chunk : 0;
		fp_region *r = fp_open(path, &o);
		cr_assert_not_null(r, "%s", fp_last_error());
		struct fp_stats s;
		fp_quiesce(r); /* the loaders bring them in */
		fp_get_stats(r, &s);
		cr_expect_eq(s.preserved_bytes, 8ull * chunk);
		cr_expect_eq(s.faults, 0, "preserved chunks come without faults");
		for (int pass = 0; pass < 3; pass++)
			cr_expect_eq(memcmp(fp_tensor(r, "data", NULL), ref, len), 0);
		fp_get_stats(r, &s);
		cr_expect_gt(s.evictions, 0);
		/* Preserved chunks are still resident after three passes that
		 * cycled everything else through the budget. */
		const uint8_t *base = fp_region_base(r);
		for (int c = 0; c < 32; c += 4)
			cr_expect_eq(ru_resident_pages(base + (size_t)c * chunk, chunk), chunk / 4096,
			             "preserved chunk %d was evicted", c);
		if (geteuid() == 0 || quota)
			cr_expect_eq(s.locked_bytes, quota ? 3ull * chunk : 8ull * chunk);
		cr_expect_leq(s.peak_resident_bytes, o.budget + 4ull * chunk);
		fp_close(r);
	}
	/* Preserving so much that less than two chunks are left is refused. */
	struct fp_options o = ru_options(9ull * chunk);
	o.preserve = preserve;
	cr_expect_null(fp_open(path, &o));
	cr_expect_eq(errno, EINVAL);
	cr_expect(strstr(fp_last_error(), "minimum working set") != NULL, "%s", fp_last_error());
	unlink(path);
	free(ref);
}

Test(plan, whole_model_budget_takes_no_faults_after_the_first_pass, .timeout = 60)
{
	const size_t len = 24u << 20;
	uint8_t *ref = ru_data(len, 51);
	char path[512];
	snprintf(path, sizeof path, "%s/resident.img", ru_tmpdir());
	ru_write_image(path, ref, len, 2u << 20, FP_CODEC_RAW);
	struct fp_options o = ru_options(0);
	fp_region *r = fp_open(path, &o);
	cr_assert_not_null(r, "%s", fp_last_error());
	cr_assert_eq(memcmp(fp_tensor(r, "data", NULL), ref, len), 0);
	struct fp_stats a, b;
	fp_get_stats(r, &a);
	for (int pass = 0; pass < 3; pass++)
		cr_assert_eq(memcmp(fp_tensor(r, "data", NULL), ref, len), 0);
	fp_get_stats(r, &b);
	cr_expect_eq(b.faults, a.faults, "%llu faults after the first pass",
	             (unsigned long long)(b.faults - a.faults));
	cr_expect_eq(b.evictions, 0);
	fp_close(r);
	unlink(path);
	free(ref);
}

/* A loop that reads the chunks in a fixed order that is not the file's,
 * every "token", under a budget a third of the model: after the first
 * token the predictor knows the order, and most chunks the loop reaches
 * are already staged (their fault only installs them).  The loop computes
 * 3 ms a chunk, as a real one does: a loop that only compares bytes runs
 * ahead of any disk, and on a slow one (0.4 GB/s reads 2 MiB in 5 ms) its
 * faults would find the predicted reads still in flight, not staged. */
Test(streaming, predictor_learns_a_permuted_order_and_stages_ahead, .timeout = 120)
{
	const uint32_t chunk = 2u << 20, n = 24;
	const size_t len = (size_t)n * chunk;
	uint8_t *ref = ru_data(len, 52);
	char path[512], tpath[512];
	snprintf(path, sizeof path, "%s/perm.img", ru_tmpdir());
	snprintf(tpath, sizeof tpath, "%s/perm.trace", ru_tmpdir());
	ru_write_image(path, ref, len, chunk, FP_CODEC_RAW);
	uint32_t order[24];
	for (uint32_t i = 0; i < n; i++)
		order[i] = (i * 7 + 3) % n; /* a permutation: 7 and 24 are coprime */
	struct fp_options o = ru_options(8ull * chunk);
	o.trace_path = tpath;
	fp_region *r = fp_open(path, &o);
	cr_assert_not_null(r, "%s", fp_last_error());
	const uint8_t *base = fp_tensor(r, "data", NULL);
	int bad = 0;
	for (int token = 0; token < 6; token++) {
		fp_trace_mark(r, FP_MARK_TOKEN, (uint64_t)token);
		for (uint32_t i = 0; i < n; i++) {
			size_t off = (size_t)order[i] * chunk;
			bad += memcmp(base + off, ref + off, chunk) != 0;
			nanosleep(&(struct timespec){.tv_nsec = 3000000}, NULL);
		}
	}
	struct fp_stats s;
	fp_get_stats(r, &s);
	fp_close(r);
	cr_expect_eq(bad, 0);
	cr_expect_gt(s.staged_installs, 0);

	/* From the third token on, count what the faults found. */
	fp_trace *t = fp_trace_open(tpath);
	cr_assert_not_null(t, "%s", fp_last_error());
	uint64_t marks = 0, staged = 0, other = 0;
	for (uint64_t i = 0; i < fp_trace_count(t); i++) {
		const struct fp_trace_event *e = &fp_trace_events(t)[i];
		if (e->type == FP_EV_MARK)
			marks++;
		else if (e->type == FP_EV_FAULT && marks >= 3 && e->flags != 8)
			*(e->flags == 5 ? &staged : &other) += 1;
	}
	fp_trace_close(t);
	/* Without the predictor this is about none (the order is not the
	 * file's); timing (a sanitizer's slower loop) moves it by a few. */
	cr_log_info("from token 3 on: %llu faults found the chunk staged, %llu did not",
	            (unsigned long long)staged, (unsigned long long)other);
	cr_expect_geq(staged, 3 * (staged + other) / 5,
	              "from token 3 on, %llu faults found the chunk staged, %llu did not",
	              (unsigned long long)staged, (unsigned long long)other);
	unlink(tpath);
	unlink(path);
	free(ref);
}

Test(streaming, whole_image_budget_stages_nothing, .timeout = 60)
{
	const uint32_t chunk = 2u << 20, n = 8;
	uint8_t *ref = ru_data((size_t)n * chunk, 53);
	char path[512];
	snprintf(path, sizeof path, "%s/nostage.img", ru_tmpdir());
	ru_write_image(path, ref, (size_t)n * chunk, chunk, FP_CODEC_RAW);
	struct fp_options o = ru_options(0);
	fp_region *r = fp_open(path, &o);
	cr_assert_not_null(r, "%s", fp_last_error());
	cr_assert_eq(memcmp(fp_tensor(r, "data", NULL), ref, (size_t)n * chunk), 0);
	struct fp_stats s;
	fp_get_stats(r, &s);
	cr_expect_eq(s.staged_installs, 0);
	cr_expect_eq(s.staged_dropped, 0);
	fp_close(r);
	unlink(path);
	free(ref);
}

/* The fault injection seam, used here as slow storage: 40 ms a read. */
static void slow_read(void *ctx, uint32_t chunk, void *buf, size_t len, long *result)
{
	(void)ctx, (void)chunk, (void)buf, (void)len, (void)result;
	usleep(40000);
}

/* The depth of read-ahead after a few passes at a steady pace. */
static uint32_t depth_at_pace(const char *path, const uint8_t *ref, uint32_t n, uint32_t chunk,
                              fp_read_hook hook)
{
	struct fp_options o = ru_options(24ull * chunk);
	o.loaders = 2;
	o.readahead = 16;
	o.flags |= FP_OPEN_BUFFERED;
	struct fp_hooks hooks = {.read = hook};
	o.hooks = &hooks;
	fp_region *r = fp_open(path, &o);
	cr_assert_not_null(r, "%s", fp_last_error());
	const uint8_t *base = fp_tensor(r, "data", NULL);
	int bad = 0;
	for (int pass = 0; pass < 3; pass++)
		for (uint32_t i = 0; i < n; i++) {
			bad += memcmp(base + (size_t)i * chunk, ref + (size_t)i * chunk, chunk) != 0;
			usleep(2000); /* the loop's compute on this chunk */
		}
	struct fp_stats s;
	fp_get_stats(r, &s);
	fp_close(r);
	cr_expect_eq(bad, 0);
	return s.readahead_depth;
}

Test(streaming, depth_follows_the_load_time, .timeout = 120)
{
	const uint32_t chunk = 64u << 10, n = 64;
	uint8_t *ref = ru_data((size_t)n * chunk, 54);
	char path[512];
	snprintf(path, sizeof path, "%s/depth.img", ru_tmpdir());
	ru_write_image(path, ref, (size_t)n * chunk, chunk, FP_CODEC_RAW);
	/* The loop spends ~2.1 ms a chunk (its 2 ms and a fault).  Reads of
	 * 64 KiB from the page cache (the image was just written; buffered
	 * reads, so that the disk's speed and other users of it do not
	 * count): a chunk or a few ahead per loader.  Loads of 40 ms: ~20
	 * chunks more, capped by the read-ahead setting and the budget's
	 * room. */
	uint32_t fast = depth_at_pace(path, ref, n, chunk, NULL);
	uint32_t slow = depth_at_pace(path, ref, n, chunk, slow_read);
	cr_log_info("read-ahead depth: %u chunks with fast loads, %u with 40 ms loads", fast, slow);
	cr_expect_leq(fast, 6, "fast loads: depth %u", fast);
	cr_expect_geq(slow, 12, "40 ms loads: depth %u", slow);
	unlink(path);
	free(ref);
}
