/* GGUF files through the pager and the flexpage command: a GGUF paged
 * directly gives the file's bytes at every budget; images packed from a
 * GGUF (raw, zstd) and with --verbatim give the file back through
 * `flexpage cat`; inspect shows the metadata; broken GGUFs fail cleanly
 * in every command.  The reference is always the plain bytes of the file. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <flexpage/flexpage.h>

#include "gguf_util.h"
#include "testutil.h"

#define STORIES FLEXPAGE_SHARED_MODELS "/stories260K.gguf"
#define CHECKPOINT FLEXPAGE_SHARED_MODELS "/stories260K.bin"

static char *g_dir, *g_io;

static void setup(void)
{
	g_dir = tu_tmpdir();
	g_io = tu_tmpdir();
	cr_assert(g_dir && g_io, "cannot create a temporary directory");
}

static void teardown(void)
{
	tu_rmtree(g_dir);
	tu_rmtree(g_io);
	free(g_dir);
	free(g_io);
}

TestSuite(gguf_paging, .init = setup, .fini = teardown, .timeout = 300);

static char *path(const char *name)
{
	char *p = tu_join(g_dir, name);
	cr_assert(p);
	return p;
}

static uint8_t *read_or_skip(const char *file, size_t *n)
{
	uint8_t *b = tu_read_file(file, n);
	if (!b)
		cr_skip_test("%s is not there (../shared/models beside the project)", file);
	return b;
}

static struct tu_proc run_(const char *const *argv)
{
	struct tu_proc p;
	cr_assert(!tu_run(g_io, argv, 120, &p), "cannot run %s: %s", argv[0], strerror(errno));
	cr_assert(!p.timed_out, "flexpage %s: did not finish (hang?)\nstderr: %s", argv[1], p.err);
	cr_assert(p.exited, "flexpage %s: killed by signal %d\nstderr: %s", argv[1], p.sig, p.err);
	return p;
}
#define RUN(...) run_((const char *[]){FLEXPAGE_TOOL, __VA_ARGS__, NULL})

/* The region's bytes [0, len) against ref, copied out a piece at a time
 * (the region is read by this thread, never by the kernel for it). */
static void expect_region_is(fp_region *r, const uint8_t *ref, size_t len, const char *what)
{
	const uint8_t *base = fp_region_base(r);
	static uint8_t piece[65536];
	for (size_t at = 0; at < len; at += sizeof piece) {
		size_t n = len - at < sizeof piece ? len - at : sizeof piece;
		memcpy(piece, base + at, n);
		cr_assert(!memcmp(piece, ref + at, n), "%s: bytes differ from the file in [%zu, +%zu)",
		          what, at, n);
	}
	for (uint64_t at = len; at < fp_region_size(r); at++)
		cr_assert_eq(base[at], 0, "%s: byte %llu past the file is not zero", what,
		             (unsigned long long)at);
}

/* Open path directly at budgets of 100, 50 and 25 %: every byte is the
 * file's, every tensor where the GGUF says, residency within the budget. */
static void page_directly(const char *file, uint32_t chunk)
{
	size_t n;
	uint8_t *ref = read_or_skip(file, &n);
	fp_gguf *g = fp_gguf_open(file);
	cr_assert(g, "%s", fp_last_error());
	const int pct[3] = {100, 50, 25};
	for (int i = 0; i < 3; i++) {
		uint64_t logical = (n + chunk - 1) / chunk * chunk;
		struct fp_options o = {.budget = logical * (uint64_t)pct[i] / 100, .retries = -1,
		                       .readahead = -1, .chunk_size = chunk};
		fp_region *r = fp_open(file, &o);
		cr_assert(r, "budget %d%%: %s", pct[i], fp_last_error());
		const struct fp_image_info *info = fp_image_info(fp_region_image(r));
		cr_assert(info->kind == FP_IMAGE_DIRECT && info->chunk_size == chunk);
		cr_assert_eq(info->data_bytes, n);
		cr_assert(fp_image_gguf(fp_region_image(r)));
		char what[64];
		snprintf(what, sizeof what, "budget %d%%", pct[i]);
		expect_region_is(r, ref, n, what);
		for (uint64_t t = 0; t < fp_gguf_n_tensors(g); t++) {
			const struct fp_gguf_tensor *gt = fp_gguf_tensor(g, t);
			const struct fp_tensor_desc *d;
			const uint8_t *p = fp_tensor(r, gt->name, &d);
			cr_assert(p == (const uint8_t *)fp_region_base(r) + gt->offset && d->type == gt->type,
			          "%s: not at its file offset", gt->name);
		}
		struct fp_stats s;
		fp_get_stats(r, &s);
		cr_expect_leq(s.peak_resident_bytes, o.budget + 4ull * chunk, "budget %d%%: peak %llu",
		              pct[i], (unsigned long long)s.peak_resident_bytes);
		if (pct[i] < 100)
			cr_expect_gt(s.evictions, 0, "budget %d%%: nothing was evicted", pct[i]);
		fp_close(r);
	}
	fp_gguf_close(g);
	free(ref);
}

Test(gguf_paging, stories260K_paged_directly_is_the_file_at_every_budget)
{
	page_directly(STORIES, 64 << 10);
}

Test(gguf_paging, a_larger_gguf_paged_directly_in_2M_chunks_is_the_file)
{
	char *file = path("big.gguf");
	fp_gguf_writer *w = fp_gguf_writer_create(file);
	cr_assert(w);
	cr_assert(!fp_gguf_set_str(w, "general.architecture", "llama"));
	uint64_t ne[2] = {4096, 160}; /* q8_0: 696320 bytes, straddling 2 MiB chunks */
	char name[32];
	for (int t = 0; t < 24; t++) {
		snprintf(name, sizeof name, "blk.%d.ffn_up.weight", t);
		cr_assert(!fp_gguf_writer_add_tensor(w, name, FP_GGML_Q8_0, 2, ne, NULL));
	}
	uint8_t *data = malloc(696320);
	for (int t = 0; t < 24; t++) {
		tu_fill_random((uint64_t)t + 7, data, 696320);
		cr_assert(!fp_gguf_writer_write(w, data, 696320), "%s", fp_last_error());
	}
	cr_assert(!fp_gguf_writer_finish(w), "%s", fp_last_error());
	free(data);
	page_directly(file, 2u << 20);
	free(file);
}

/* A GGUF has no checksums: paged directly, a damaged tensor byte is served
 * as it is; an image packed from the file would have caught it. */
Test(gguf_paging, direct_mode_cannot_check_bytes_an_image_can)
{
	size_t n;
	uint8_t *ref = read_or_skip(STORIES, &n);
	char *file = path("m.gguf"), *img = path("m.img");
	cr_assert(!tu_write_file(file, ref, n));
	struct tu_proc p = RUN("pack", file, img, "--chunk", "64K", "-q");
	cr_assert_eq(p.code, 0, "%s", p.err);
	tu_proc_free(&p);
	const uint64_t at = n - 1000; /* in blk.4.ffn_up.weight */
	ref[at] ^= 0x40;
	cr_assert(!tu_write_file(file, ref, n));
	struct fp_options o = {.retries = -1, .readahead = -1, .chunk_size = 64 << 10};
	fp_region *r = fp_open(file, &o);
	cr_assert(r, "%s", fp_last_error());
	expect_region_is(r, ref, n, "a damaged GGUF");
	fp_close(r);
	/* the same byte in the raw image's payload: chunk at / 64K */
	tu_file f;
	cr_assert(!tu_load(img, &f));
	f.data[4096 + at] ^= 0x40;
	cr_assert(!tu_save(img, &f));
	tu_free(&f);
	fp_image *im = fp_image_open(img);
	cr_assert(im, "%s", fp_last_error());
	void *buf = aligned_alloc(4096, 64 << 10);
	cr_assert_neq(fp_image_read_chunk(im, (uint32_t)(at >> 16), buf), 0);
	cr_assert(strstr(fp_last_error(), "checksum"), "%s", fp_last_error());
	free(buf);
	fp_image_close(im);
	free(ref);
	free(file);
	free(img);
}

/* ------------------------------------------------------------------ */
/* Packed images and the command                                        */

static void expect_same_gguf(const fp_gguf *a, const fp_gguf *b)
{
	cr_assert(fp_gguf_n_kv(a) == fp_gguf_n_kv(b) && fp_gguf_n_tensors(a) == fp_gguf_n_tensors(b));
	cr_assert_eq(fp_gguf_data_offset(a), fp_gguf_data_offset(b));
	for (uint64_t i = 0; i < fp_gguf_n_kv(a); i++)
		cr_assert(!strcmp(fp_gguf_key(a, i), fp_gguf_key(b, i)) &&
		          fp_gguf_type(a, i) == fp_gguf_type(b, i));
	for (uint64_t i = 0; i < fp_gguf_n_tensors(a); i++)
		cr_assert(!memcmp(fp_gguf_tensor(a, i)->ne, fp_gguf_tensor(b, i)->ne, 32) &&
		          fp_gguf_tensor(a, i)->offset == fp_gguf_tensor(b, i)->offset);
}

Test(gguf_paging, images_packed_from_a_gguf_cat_back_to_the_file)
{
	size_t n;
	uint8_t *ref = read_or_skip(STORIES, &n);
	fp_gguf *g = fp_gguf_open(STORIES);
	cr_assert(g);
	const char *codecs[2] = {"raw", "zstd"};
	for (int c = 0; c < 2; c++) {
		char name[32];
		snprintf(name, sizeof name, "s.%s.img", codecs[c]);
		char *img = path(name);
		struct tu_proc p = RUN("pack", STORIES, img, "--codec", codecs[c], "--chunk", "64K");
		cr_assert_eq(p.code, 0, "pack --codec %s: %s", codecs[c], p.err);
		cr_assert(strstr(p.err, "48 tensors"), "%s", p.err);
		tu_proc_free(&p);
		p = RUN("cat", img, "--budget", "25%");
		cr_assert_eq(p.code, 0, "cat: %s", p.err);
		cr_assert(p.out_len == n && !memcmp(p.out, ref, n),
		          "%s: flexpage cat gives %zu bytes, not the GGUF's %zu", codecs[c], p.out_len, n);
		tu_proc_free(&p);
		fp_image *im = fp_image_open(img);
		cr_assert(im, "%s", fp_last_error());
		cr_assert_eq(fp_image_info(im)->kind, FP_IMAGE_VERBATIM);
		cr_assert(fp_image_gguf(im), "the image's GGUF header");
		expect_same_gguf(fp_image_gguf(im), g);
		const struct fp_tensor_desc *t = fp_image_find(im, "blk.3.attn_k.weight");
		const struct fp_gguf_tensor *gt = fp_gguf_find_tensor(g, "blk.3.attn_k.weight");
		cr_assert(t && t->offset == gt->offset && t->size == gt->size && t->type == gt->type);
		fp_image_close(im);
		p = RUN("inspect", img);
		cr_assert_eq(p.code, 0, "inspect: %s", p.err);
		cr_assert(strstr(p.out, "llama.block_count") && strstr(p.out, "verdict: valid"), "%s", p.out);
		tu_proc_free(&p);
		free(img);
	}
	/* the GGUF itself through cat, directly, under a budget */
	struct tu_proc p = RUN("cat", STORIES, "--chunk", "64K", "--budget", "25%");
	cr_assert(p.code == 0 && p.out_len == n && !memcmp(p.out, ref, n), "cat of the GGUF: %s", p.err);
	tu_proc_free(&p);
	fp_gguf_close(g);
	free(ref);
}

Test(gguf_paging, pack_verbatim_keeps_any_file_byte_for_byte)
{
	size_t n;
	uint8_t *ref = read_or_skip(CHECKPOINT, &n);
	char *img = path("c.img");
	struct tu_proc p = RUN("pack", "--verbatim", CHECKPOINT, img);
	cr_assert_eq(p.code, 0, "%s", p.err);
	tu_proc_free(&p);
	p = RUN("cat", img);
	cr_assert(p.code == 0 && p.out_len == n && !memcmp(p.out, ref, n), "cat: %s", p.err);
	tu_proc_free(&p);
	/* the checkpoint's tensors at their offsets: 28-byte header, the
	 * embedding [512][64], rms_att [5][64], then wq [5][64][64] */
	fp_image *im = fp_image_open(img);
	cr_assert(im, "%s", fp_last_error());
	cr_assert_eq(fp_image_info(im)->n_tensors, 47, "5 x 9 + embedding + final norm");
	const struct fp_tensor_desc *t = fp_image_find(im, "blk.1.attn_q.weight");
	cr_assert(t && t->type == FP_TYPE_F32 && t->shape[0] == 64 && t->shape[1] == 64);
	cr_assert_eq(t->offset, 28 + 4ull * 512 * 64 + 4ull * 5 * 64 + 4ull * 64 * 64);
	fp_image_close(im);
	free(ref);
	/* any other file: one opaque tensor, zstd */
	uint8_t *rnd = malloc(300001);
	tu_fill_compressible(5, rnd, 300001);
	char *file = path("any.bin"), *img2 = path("any.img");
	cr_assert(!tu_write_file(file, rnd, 300001));
	p = RUN("pack", "--verbatim", file, img2, "--codec", "zstd", "--chunk", "64K");
	cr_assert_eq(p.code, 0, "%s", p.err);
	tu_proc_free(&p);
	p = RUN("cat", img2, "--budget", "50%");
	cr_assert(p.code == 0 && p.out_len == 300001 && !memcmp(p.out, rnd, 300001), "%s", p.err);
	tu_proc_free(&p);
	im = fp_image_open(img2);
	cr_assert(im && fp_image_info(im)->n_tensors == 1 && fp_image_tensor(im, 0)->size == 300001);
	cr_assert(fp_image_info(im)->stored_bytes < 300001, "zstd shrank nothing");
	fp_image_close(im);
	/* --opaque packs a GGUF the old way, as one tensor on pages */
	p = RUN("pack", "--opaque", STORIES, img2, "--force", "-q");
	cr_assert_eq(p.code, 0, "%s", p.err);
	tu_proc_free(&p);
	im = fp_image_open(img2);
	cr_assert(im && fp_image_info(im)->kind == FP_IMAGE_PACKED && !fp_image_gguf(im));
	fp_image_close(im);
	free(rnd);
	free(file);
	free(img);
	free(img2);
}

Test(gguf_paging, inspect_prints_metadata_tensors_and_a_verdict)
{
	if (access(STORIES, R_OK))
		cr_skip_test("%s is not there", STORIES);
	struct tu_proc p = RUN("inspect", STORIES);
	cr_assert_eq(p.code, 0, "%s", p.err);
	const char *want[] = {"GGUF v3", "no checksums", "llama.embedding_length", "u32",
	                      "tokenizer.ggml.tokens", "arr[str] 512: \"<unk>\", \"<s>\"",
	                      "layer_norm_rms_epsilon", "1e-05", "blk.4.ffn_norm.weight",
	                      "1185120", "verdict: valid GGUF"};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		cr_assert(strstr(p.out, want[i]), "inspect does not print '%s':\n%s", want[i], p.out);
	tu_proc_free(&p);
}

/* Broken GGUFs in every command: a clean failure naming the file. */
Test(gguf_paging, commands_refuse_broken_ggufs_cleanly)
{
	char *file = path("bad.gguf"), *img = path("bad.img");
	const struct {
		const char *what, *word;
		int field;
		uint64_t value;
	} cases[] = {
		{"version 1", "version 1", 0, 1}, {"tensor count", "tensor_count", 1, 1ull << 62},
		{"string length", "truncated", 2, 1ull << 40}, {"alignment", "power of two", 3, 48},
		{"outside", "outside the file", 4, 1ull << 40}, {"overlap", "overlap", 5, 96},
		{"unknown type", "type 99", 6, 99}, {"shape", "overflows", 7, 1ull << 62},
		{"truncated", "truncated", 8, 0}, {"duplicate tensor", "twice", 9, 'a'},
		{"misaligned", "general.alignment", 10, 100}, {"duplicate key", "twice", 11, 'g'},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct gb b;
		struct small_gguf_at at;
		small_gguf(&b, &at, NULL, 0);
		size_t len = b.len;
		switch (cases[i].field) {
		case 0: patch32(&b, at.version, (uint32_t)cases[i].value); break;
		case 1: patch64(&b, at.n_tensors, cases[i].value); break;
		case 2: patch64(&b, at.arch_len, cases[i].value); break;
		case 3: patch32(&b, at.align_value, (uint32_t)cases[i].value); break;
		case 4: patch64(&b, at.t_offset[2], cases[i].value); break;
		case 5: patch64(&b, at.t_offset[0], cases[i].value); break;
		case 6: patch32(&b, at.t_type[1], (uint32_t)cases[i].value); break;
		case 7: patch64(&b, at.t_ne1[0], cases[i].value); break;
		case 8: len = at.t_ne0[1]; break;
		case 9: b.p[at.t_name_last[1]] = (uint8_t)cases[i].value; break;
		case 10: patch64(&b, at.t_offset[1], cases[i].value); break;
		case 11: b.p[at.last_key_char] = (uint8_t)cases[i].value; break;
		}
		cr_assert(!tu_write_file(file, b.p, len));
		gb_free(&b);
		const char *cmds[3][6] = {
			{"inspect", file, NULL}, {"pack", file, img, NULL}, {"cat", file, NULL},
		};
		for (int c = 0; c < 3; c++) {
			struct tu_proc p = run_((const char *[]){FLEXPAGE_TOOL, cmds[c][0], cmds[c][1],
			                                         cmds[c][2], NULL});
			cr_assert_eq(p.code, 1, "%s: flexpage %s exits %d\n%s", cases[i].what, cmds[c][0],
			             p.code, p.err);
			cr_assert(strstr(p.err, file) && tu_contains_any(p.err, cases[i].word),
			          "%s: flexpage %s: the message names neither %s nor '%s': %s",
			          cases[i].what, cmds[c][0], file, cases[i].word, p.err);
			tu_proc_free(&p);
		}
		cr_assert(!tu_file_exists(img), "%s: pack left %s", cases[i].what, img);
	}
	free(file);
	free(img);
}

/* The image writer's verbatim mode, at library level. */
Test(gguf_paging, verbatim_writer_places_tensors_and_refuses_overlaps)
{
	char *img = path("v.img");
	uint8_t *data = malloc(200000);
	tu_fill_random(9, data, 200000);
	const uint64_t f32[1] = {10}, u8[1] = {50}, q8[1] = {64};
	struct fp_writer_options wo = {.chunk_size = 64 << 10, .verbatim = 1};
	fp_writer *w = fp_writer_create(img, &wo);
	cr_assert(w, "%s", fp_last_error());
	cr_assert_neq(fp_writer_begin_tensor(w, "x", FP_TYPE_U8, 1, u8), 0, "begin_tensor in verbatim");
	cr_assert(!fp_writer_add_tensor_at(w, "b", FP_TYPE_F32, 1, f32, 1000));
	cr_assert(!fp_writer_write(w, data, 70000));
	cr_assert(!fp_writer_add_tensor_at(w, "a", FP_TYPE_U8, 1, u8, 100));
	cr_assert(!fp_writer_add_tensor_at(w, "c", FP_GGML_Q8_0, 1, q8, 150001));
	cr_assert(!fp_writer_write(w, data + 70000, 130000));
	cr_assert(!fp_writer_finish(w), "%s", fp_last_error());
	fp_image *im = fp_image_open(img);
	cr_assert(im, "%s", fp_last_error());
	const struct fp_image_info *info = fp_image_info(im);
	cr_assert(info->kind == FP_IMAGE_VERBATIM && info->data_bytes == 200000 && info->n_chunks == 4);
	const uint64_t at[3] = {100, 1000, 150001}, size[3] = {50, 40, 68};
	for (uint32_t i = 0; i < 3; i++)
		cr_assert(fp_image_tensor(im, i)->offset == at[i] && fp_image_tensor(im, i)->size == size[i],
		          "tensor %u: in ascending offset", i);
	uint8_t *chunk = aligned_alloc(4096, 64 << 10);
	for (uint32_t c = 0; c < 4; c++) {
		cr_assert(!fp_image_read_chunk(im, c, chunk), "%s", fp_last_error());
		size_t n = c < 3 ? 65536 : 200000 - 3 * 65536;
		cr_assert(!memcmp(chunk, data + (size_t)c * 65536, n), "chunk %u", c);
	}
	fp_image_close(im);
	/* a chunk short of full before the last breaks a verbatim image */
	tu_file f;
	cr_assert(!tu_load(img, &f));
	tu_set32(&f, tu_chunk_at(&f, 1) + TU_C_LOGICAL_LEN, 1000);
	tu_set32(&f, tu_chunk_at(&f, 1) + TU_C_STORED_LEN, 1000);
	tu_fix_crcs(&f);
	cr_assert(!tu_save(img, &f));
	tu_free(&f);
	cr_assert_null(fp_image_open(img));
	cr_assert(strstr(fp_last_error(), "chunk 1") && strstr(fp_last_error(), "verbatim"), "%s",
	          fp_last_error());
	/* overlaps and tensors past the bytes fail at finish, leaving nothing */
	char *out = path("o.img");
	for (int k = 0; k < 2; k++) {
		w = fp_writer_create(out, &wo);
		cr_assert(!fp_writer_write(w, data, 5000));
		cr_assert(!fp_writer_add_tensor_at(w, "a", FP_TYPE_U8, 1, u8, k ? 4990 : 0));
		cr_assert(!fp_writer_add_tensor_at(w, "b", FP_TYPE_F32, 1, f32, k ? 0 : 30));
		cr_assert_neq(fp_writer_finish(w), 0);
		cr_assert(tu_contains_any(fp_last_error(), k ? "past the" : "overlap"), "%s",
		          fp_last_error());
		cr_assert(!tu_file_exists(out));
	}
	struct fp_writer_options packed = {.chunk_size = 64 << 10};
	w = fp_writer_create(out, &packed);
	cr_assert_neq(fp_writer_add_tensor_at(w, "a", FP_TYPE_U8, 1, u8, 0), 0, "add_tensor_at, packed");
	fp_writer_abort(w);
	free(chunk);
	free(data);
	free(out);
	free(img);
}
