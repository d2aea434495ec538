/* flexpage inspect IMAGE|GGUF: tables, sizes, compression, a GGUF's
 * metadata, and a verdict. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmds.h"
#include "util.h"

static void inspect_usage(FILE *f)
{
	fprintf(f,
	        "usage: flexpage inspect IMAGE|GGUF [options]\n"
	        "  Prints the header, the tensor table with each tensor's compression ratio,\n"
	        "  and a verdict: every chunk is read, decoded and checked against its\n"
	        "  checksum.  Exit status 0 when the image is valid, 1 when it is not.\n"
	        "  A GGUF file (or an image packed from one) shows its metadata too; a GGUF\n"
	        "  holds no checksums, so its verdict covers the header and tensor infos.\n\n"
	        "  --quick     check the tables only, not the payloads\n"
	        "  --chunks    list the chunk table too\n");
}

static void shape_str(const struct fp_tensor_desc *t, char *buf, size_t n)
{
	buf[0] = 0;
	for (uint32_t d = 0; d < t->ndim; d++)
		snprintf(buf + strlen(buf), n - strlen(buf), "%s%llu", d ? "x" : "",
		         (unsigned long long)t->shape[d]);
}

static int verify_payloads(const fp_image *img, uint32_t *bad_chunk)
{
	const struct fp_image_info *info = fp_image_info(img);
	void *buf = aligned_alloc(4096, info->chunk_size);
	if (!buf)
		return -1;
	int tty = isatty(STDERR_FILENO);
	for (uint32_t c = 0; c < info->n_chunks; c++) {
		/* every stored form: a chunk's alternate holds the same bytes */
		if (fp_image_read_chunk(img, c, buf) ||
		    (fp_image_chunk_form(img, c, 1) && fp_image_read_chunk_form(img, c, 1, buf))) {
			*bad_chunk = c;
			free(buf);
			if (tty)
				fputc('\n', stderr);
			return -1;
		}
		if (tty && (c % 16 == 0 || c + 1 == info->n_chunks))
			fprintf(stderr, "\rverifying chunk %u/%u", c + 1, info->n_chunks);
	}
	if (tty)
		fputc('\n', stderr);
	free(buf);
	return 0;
}

/* A GGUF file itself: what its header says, and that it holds together. */
static void inspect_gguf(const fp_image *img)
{
	const struct fp_image_info *info = fp_image_info(img);
	const fp_gguf *g = fp_image_gguf(img);
	char a[32];
	printf("file       %s\n", info->path);
	printf("format     GGUF v%u, %s; paged directly: %u chunks of %u KiB, no checksums\n",
	       fp_gguf_version(g), fmt_bytes(info->file_size, a, sizeof a), info->n_chunks,
	       info->chunk_size >> 10);
	printf("data       from file offset %llu, general.alignment %llu\n",
	       (unsigned long long)fp_gguf_data_offset(g), (unsigned long long)fp_gguf_alignment(g));
	print_gguf_meta(stdout, g);
	print_gguf_tensors(stdout, g);
	printf("\nverdict: valid GGUF (header, %llu keys and %llu tensor infos checked; GGUF holds no "
	       "checksums, so the tensor bytes are not verified)\n",
	       (unsigned long long)fp_gguf_n_kv(g), (unsigned long long)fp_gguf_n_tensors(g));
}

uint64_t tensor_bytes_in_chunk(const struct fp_tensor_desc *t, uint64_t k, uint32_t chunk_size)
{
	uint64_t lo = k * chunk_size, hi = lo + chunk_size, end = t->offset + t->size;
	if (lo < t->offset)
		lo = t->offset;
	if (hi > end)
		hi = end;
	return hi > lo ? hi - lo : 0;
}

int cmd_inspect(int argc, char **argv)
{
	static const struct option opts[] = {
		{"quick", no_argument, 0, 'q'}, {"chunks", no_argument, 0, 'c'},
		{"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
	};
	int quick = 0, chunks = 0, o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'q': quick = 1; break;
		case 'c': chunks = 1; break;
		case 'h': inspect_usage(stdout); return 0;
		default: inspect_usage(stderr); return 2;
		}
	}
	if (argc - optind != 1) {
		inspect_usage(stderr);
		return 2;
	}
	fp_image *img = fp_image_open(argv[optind]);
	if (!img) {
		printf("verdict: INVALID: %s\n", fp_last_error());
		fprintf(stderr, "flexpage inspect: %s\n", fp_last_error());
		return 1;
	}
	const struct fp_image_info *info = fp_image_info(img);
	if (info->kind == FP_IMAGE_DIRECT) {
		inspect_gguf(img);
		fp_image_close(img);
		return 0;
	}
	char a[32], b[32], c[32], sh[96];
	printf("image      %s\n", info->path);
	printf("format     flexpage v%u, %s file\n", info->version,
	       fmt_bytes(info->file_size, a, sizeof a));
	if (info->kind == FP_IMAGE_VERBATIM)
		printf("verbatim   logical bytes [0, %llu) are a whole file's, tensors at its offsets\n",
		       (unsigned long long)info->data_bytes);
	printf("layout     %u chunks of %u KiB, logical size %s%s\n", info->n_chunks,
	       info->chunk_size >> 10, fmt_bytes(info->logical_size, a, sizeof a),
	       info->raw_base ? " (raw: logical layout mappable at file offset 4096)" : "");
	printf("data       %s stored as %s, ratio %.3f\n", fmt_bytes(info->data_bytes, a, sizeof a),
	       fmt_bytes(info->stored_bytes, b, sizeof b),
	       info->stored_bytes ? (double)info->data_bytes / (double)info->stored_bytes : 0.0);
	if (info->n_alt_forms)
		printf("forms      %u chunks stored in two forms: the pager reads the cheaper at its "
		       "read and decode rates\n", info->n_alt_forms);
	if (info->meta[0]) {
		printf("meta      ");
		for (const char *p = info->meta; *p; p++)
			printf(*p == '\n' ? (p[1] ? " " : "") : "%c", *p);
		printf("\n");
	}
	if (fp_image_gguf(img))
		print_gguf_meta(stdout, fp_image_gguf(img));
	printf("\n%-32s %-5s %-16s %12s %10s %10s %6s\n", "tensor", "type", "shape", "offset", "size",
	       "stored", "ratio");
	for (uint32_t i = 0; i < info->n_tensors; i++) {
		const struct fp_tensor_desc *t = fp_image_tensor(img, i);
		/* A chunk shared with the next tensor counts in proportion to the
		 * bytes each holds in it. */
		uint64_t stored = 0;
		for (uint64_t k = t->offset / info->chunk_size; k * info->chunk_size < t->offset + t->size; k++) {
			const struct fp_chunk_desc *d = fp_image_chunk(img, (uint32_t)k);
			uint64_t mine = tensor_bytes_in_chunk(t, k, info->chunk_size);
			if (mine)
				stored += (uint64_t)((double)d->stored_len * (double)mine / d->logical_len);
		}
		shape_str(t, sh, sizeof sh);
		const char *tn = fp_type_name(t->type) ? fp_type_name(t->type) : fp_ggml_type_name(t->type);
		printf("%-32s %-5s %-16s %12llu %10s %10s %6.3f\n", t->name, tn ? tn : "?", sh,
		       (unsigned long long)t->offset, fmt_bytes(t->size, b, sizeof b),
		       fmt_bytes(stored, c, sizeof c), stored ? (double)t->size / (double)stored : 0.0);
	}
	if (chunks) {
		printf("\n%8s %12s %10s %10s %12s %-5s %10s\n", "chunk", "logical", "len", "stored",
		       "file offset", "codec", "crc32c");
		for (uint32_t k = 0; k < info->n_chunks; k++) {
			const struct fp_chunk_desc *d = fp_image_chunk(img, k);
			printf("%8u %12llu %10u %10u %12llu %-5s   %08x\n", k,
			       (unsigned long long)d->logical_offset, d->logical_len, d->stored_len,
			       (unsigned long long)d->file_offset, fp_codec_name(d->codec), d->checksum);
			const struct fp_chunk_desc *alt = fp_image_chunk_form(img, k, 1);
			if (alt)
				printf("%8s %12s %10s %10u %12llu %-5s   (alternate form)\n", "", "", "",
				       alt->stored_len, (unsigned long long)alt->file_offset,
				       fp_codec_name(alt->codec));
		}
	}
	int rc = 0;
	uint32_t bad;
	if (quick) {
		printf("\nverdict: tables valid (payloads not checked: --quick)\n");
	} else if (verify_payloads(img, &bad)) {
		printf("\nverdict: INVALID: %s\n", fp_last_error());
		fprintf(stderr, "flexpage inspect: %s\n", fp_last_error());
		rc = 1;
	} else {
		printf("\nverdict: valid (tables and all %u chunks checked)\n", info->n_chunks);
	}
	fp_image_close(img);
	return rc;
}
