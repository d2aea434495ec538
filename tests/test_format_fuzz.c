/* The image format: random corruption of a valid image is either refused
 * with a message naming the file or accepted only if every documented
 * invariant still holds. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <flexpage/flexpage.h>

#include "format_util.h"
#include "testutil.h"

/* ------------------------------------------------------------------ */
/* Random corruption                                                    */

/* The documented invariants of an accepted image; NULL or what is wrong. */
static const char *check_invariants(const fp_image *img, const tu_file *f, char *why, size_t n)
{
	const struct fp_image_info *in = fp_image_info(img);
	uint32_t cs = in->chunk_size;
	if (cs < 65536 || cs > (4u << 20) || (cs & (cs - 1)))
		return snprintf(why, n, "chunk_size %u", cs), why;
	if (in->n_tensors < 1 || in->n_chunks < 1)
		return snprintf(why, n, "empty tables"), why;
	if (in->logical_size != (uint64_t)in->n_chunks * cs)
		return snprintf(why, n, "logical_size"), why;
	if (in->file_size != f->len)
		return snprintf(why, n, "file_size"), why;
	uint64_t tables = tu_get64(f, TU_H_TT_OFFSET);
	if (tu_get64(f, TU_H_CT_OFFSET) < tables)
		tables = tu_get64(f, TU_H_CT_OFFSET);
	if (tu_get64(f, TU_H_META_OFFSET) < tables)
		tables = tu_get64(f, TU_H_META_OFFSET);
	uint64_t (*span)[2] = calloc(in->n_chunks, sizeof *span);
	uint32_t ns = 0;
	for (uint32_t i = 0; i < in->n_chunks; i++) {
		const struct fp_chunk_desc *c = fp_image_chunk(img, i);
		if (c->logical_offset != (uint64_t)i * cs || c->logical_len > cs ||
		    (c->codec != FP_CODEC_RAW && c->codec != FP_CODEC_ZSTD) ||
		    (c->codec == FP_CODEC_RAW && c->stored_len != c->logical_len)) {
			free(span);
			return snprintf(why, n, "chunk %u entry", i), why;
		}
		if (!c->stored_len)
			continue;
		if (c->file_offset % 4096 || c->file_offset < 4096 ||
		    c->file_offset + c->stored_len > tables || c->file_offset + c->stored_len < c->file_offset) {
			free(span);
			return snprintf(why, n, "chunk %u payload placement", i), why;
		}
		span[ns][0] = c->file_offset;
		span[ns++][1] = c->file_offset + c->stored_len;
		if (in->raw_base && (c->codec != FP_CODEC_RAW || c->file_offset != in->raw_base + c->logical_offset)) {
			free(span);
			return snprintf(why, n, "raw layout claim, chunk %u", i), why;
		}
	}
	for (uint32_t i = 0; i < ns; i++)
		for (uint32_t j = i + 1; j < ns; j++)
			if (span[i][0] < span[j][1] && span[j][0] < span[i][1]) {
				free(span);
				return snprintf(why, n, "payloads overlap"), why;
			}
	free(span);
	uint64_t prev_end = 0;
	for (uint32_t i = 0; i < in->n_tensors; i++) {
		const struct fp_tensor_desc *t = fp_image_tensor(img, i);
		if (!memchr(t->name, 0, 64) || !t->name[0])
			return snprintf(why, n, "tensor %u name", i), why;
		for (uint32_t j = 0; j < i; j++)
			if (!strcmp(fp_image_tensor(img, j)->name, t->name))
				return snprintf(why, n, "tensor %u duplicate name", i), why;
		if (ref_bytes(t->type, t->ndim, t->shape) != t->size || !t->size)
			return snprintf(why, n, "tensor %u size/type/shape", i), why;
		if (t->offset % 4096 || t->offset < prev_end || t->offset > in->logical_size ||
		    t->size > in->logical_size - t->offset)
			return snprintf(why, n, "tensor %u placement", i), why;
		prev_end = t->offset + t->size;
		for (uint64_t k = t->offset / cs; k * cs < prev_end; k++) {
			uint64_t need = prev_end - k * cs < cs ? prev_end - k * cs : cs;
			if (fp_image_chunk(img, (uint32_t)k)->logical_len < need)
				return snprintf(why, n, "tensor %u not covered by chunk data", i), why;
		}
	}
	/* Reading a chunk either fails or gives bytes that match its checksum
	 * and zeros after them. */
	uint8_t *dst = malloc(cs);
	for (uint32_t i = 0; i < in->n_chunks; i++) {
		const struct fp_chunk_desc *c = fp_image_chunk(img, i);
		memset(dst, 0xA5, cs);
		if (fp_image_read_chunk(img, i, dst))
			continue;
		if (tu_crc32c(0, dst, c->logical_len) != c->checksum) {
			free(dst);
			return snprintf(why, n, "chunk %u read back bytes that fail the checksum", i), why;
		}
		for (uint32_t k = c->logical_len; k < cs; k++)
			if (dst[k]) {
				free(dst);
				return snprintf(why, n, "padding: chunk %u byte %u past logical_len %u is not zero",
				                i, k, c->logical_len), why;
			}
	}
	free(dst);
	(void)fp_image_tensor_at(img, 0);
	(void)fp_image_tensor_at(img, in->logical_size - 1);
	char buf[32];
	(void)fp_image_meta(img, "arch", buf, sizeof buf);
	return NULL;
}

static void fuzz(uint64_t seed, int iterations)
{
	tu_file orig = load_base();
	uint64_t tables = tu_get64(&orig, TU_H_TT_OFFSET);
	cr_assert_lt(tables, orig.len);
	tu_file f = {malloc(orig.len), orig.len};
	cr_assert(f.data);
	int fd = open(g_img, O_WRONLY | O_CLOEXEC);
	cr_assert(fd >= 0);
	uint64_t rng = seed;
	int accepted = 0;
	char padding[160] = "";
	for (int it = 0; it < iterations; it++) {
		memcpy(f.data, orig.data, orig.len);
		int flips = 1 + (int)(tu_rand(&rng) % 4);
		for (int k = 0; k < flips; k++) {
			uint64_t r = tu_rand(&rng);
			uint64_t pos = (r & 1) ? (r >> 8) % 124 : tables + (r >> 8) % (orig.len - tables);
			uint8_t x = (uint8_t)(r >> 1);
			f.data[pos] ^= x ? x : 0x01;
		}
		int fixed = tu_rand(&rng) % 2;
		if (fixed)
			tu_fix_crcs(&f);
		cr_assert_eq(pwrite(fd, f.data, 4096, 0), 4096);
		cr_assert_eq(pwrite(fd, f.data + tables, orig.len - tables, (off_t)tables),
		             (ssize_t)(orig.len - tables));
		errno = 0;
		fp_image *img = fp_image_open(g_img);
		if (!img) {
			const char *e = fp_last_error();
			cr_assert(strstr(e, g_img), "iteration %d (seed %llu): error without the file name: %s",
			          it, (unsigned long long)seed, e);
			cr_assert(errno == EBADMSG || errno == ENOTSUP, "iteration %d (seed %llu): errno %d "
			          "for a corrupt image (%s)", it, (unsigned long long)seed, errno, e);
			continue;
		}
		accepted++;
		char why[128];
		const char *bad = check_invariants(img, &f, why, sizeof why);
		fp_image_close(img);
		if (bad && !strncmp(bad, "padding:", 8)) {
			/* Report it at the end; keep looking for worse. */
			if (!padding[0])
				snprintf(padding, sizeof padding, "iteration %d: %s", it, bad);
			continue;
		}
		cr_assert_null(bad, "iteration %d (seed %llu, checksums %s): accepted an image that breaks "
		               "the format's invariants: %s", it, (unsigned long long)seed,
		               fixed ? "recomputed" : "kept", bad);
	}
	close(fd);
	cr_expect_str_empty(padding, "fp_image_read_chunk returned a chunk whose bytes past logical_len "
	                    "are not zero (%s)", padding);
	cr_log_info("fuzz seed %llu: %d of %d corrupted images accepted (and consistent)",
	            (unsigned long long)seed, accepted, iterations);
	/* The untouched image still opens. */
	cr_assert(!tu_save(g_img, &orig));
	fp_image *img = fp_image_open(g_img);
	cr_assert(img, "%s", fp_last_error());
	fp_image_close(img);
	tu_free(&f);
	tu_free(&orig);
}

Test(format, fuzz_zstd_image, .init = base_zstd, .fini = base_fini, .timeout = 120)
{
	fuzz(20240601, 2000);
}

Test(format, fuzz_raw_image, .init = base_raw, .fini = base_fini, .timeout = 120)
{
	fuzz(77, 2000);
}
