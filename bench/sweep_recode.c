/* sweep_recode IN OUT --read-rate R [--decode-rate D]: the same tensors as
 * the image IN, stored as `flexpage pack --codec auto --read-rate R`
 * stores them (the writer's FP_CODEC_AUTO: per chunk raw or the smaller of
 * zstd and zstd-split, so that streaming the image is quickest in the
 * pipeline model, reads overlapped with decodes on the cores decoding
 * gets; without D each candidate's decode is timed as it is packed),
 * without quantizing again.  With --both, as `pack --codec both` stores
 * them (each compressed chunk with its raw form beside it: the reader
 * chooses); --decoders N as pack's.
 * bench/sweep makes its speed-adaptive image with it at the read rate it
 * has just measured: re-running a compression-aware pack would repeat its
 * calibration (minutes on a 1B model) to get the same quantized values.
 * It checks that OUT holds IN's tensors at the same offsets and that every
 * chunk of OUT decodes to the checksum of IN's chunk; an existing OUT is
 * not replaced.  Prints one line:
 * "chunks raw zstd split stored_bytes". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <flexpage/flexpage.h>

static int fail(const char *what)
{
	fprintf(stderr, "sweep_recode: %s: %s\n", what, fp_last_error());
	return 1;
}

int main(int argc, char **argv)
{
	double read_rate = 0, decode_rate = 0;
	int both = 0, decoders = 0;
	const char *in = NULL, *out = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--read-rate") && i + 1 < argc)
			read_rate = strtod(argv[++i], NULL);
		else if (!strcmp(argv[i], "--decode-rate") && i + 1 < argc)
			decode_rate = strtod(argv[++i], NULL);
		else if (!strcmp(argv[i], "--decoders") && i + 1 < argc)
			decoders = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--both"))
			both = 1;
		else if (!in)
			in = argv[i];
		else if (!out)
			out = argv[i];
		else
			in = NULL, i = argc;
	}
	if (!in || !out || (read_rate <= 0 && !both)) {
		fprintf(stderr, "usage: sweep_recode IN OUT --read-rate BYTES_PER_S [--decode-rate "
		                "BYTES_PER_S] [--decoders N] | --both\n");
		return 2;
	}
	if (!access(out, F_OK)) {
		fprintf(stderr, "sweep_recode: %s exists; not replacing it\n", out);
		return 1;
	}
	fp_image *img = fp_image_open(in);
	if (!img)
		return fail(in);
	const struct fp_image_info *info = fp_image_info(img);
	if (info->kind != FP_IMAGE_PACKED) {
		fprintf(stderr, "sweep_recode: %s: not an image of packed tensors\n", in);
		return 1;
	}
	unsigned char *data = aligned_alloc(4096, info->logical_size);
	if (!data) {
		fprintf(stderr, "sweep_recode: %s: out of memory\n", in);
		return 1;
	}
	for (uint32_t i = 0; i < info->n_chunks; i++)
		if (fp_image_read_chunk(img, i, data + (uint64_t)i * info->chunk_size))
			return fail(in);
	struct fp_writer_options wo = {.chunk_size = info->chunk_size,
	                               .codec = both ? FP_CODEC_BOTH : FP_CODEC_AUTO,
	                               .read_rate = both ? 0 : read_rate,
	                               .decode_rate = both ? 0 : decode_rate, .decoders = decoders};
	fp_writer *w = fp_writer_create(out, &wo);
	if (!w || fp_writer_set_meta(w, info->meta))
		return fail(out);
	/* the tensors in the order of their offsets, as the writer placed them */
	uint32_t *order = malloc(sizeof *order * info->n_tensors);
	if (!order) {
		fprintf(stderr, "sweep_recode: %s: out of memory\n", in);
		return 1;
	}
	for (uint32_t i = 0; i < info->n_tensors; i++)
		order[i] = i;
	for (uint32_t i = 1; i < info->n_tensors; i++)
		for (uint32_t j = i; j > 0 && fp_image_tensor(img, order[j])->offset <
		                                  fp_image_tensor(img, order[j - 1])->offset; j--) {
			const uint32_t x = order[j];
			order[j] = order[j - 1];
			order[j - 1] = x;
		}
	for (uint32_t i = 0; i < info->n_tensors; i++) {
		const struct fp_tensor_desc *t = fp_image_tensor(img, order[i]);
		if (fp_writer_begin_tensor(w, t->name, t->type, t->ndim, t->shape) ||
		    fp_writer_write(w, data + t->offset, t->size) || fp_writer_end_tensor(w)) {
			fp_writer_abort(w);
			return fail(out);
		}
	}
	if (fp_writer_finish(w))
		return fail(out);
	fp_image *o = fp_image_open(out);
	if (!o)
		return fail(out);
	const struct fp_image_info *oi = fp_image_info(o);
	int bad = oi->n_chunks != info->n_chunks || oi->n_tensors != info->n_tensors;
	for (uint32_t i = 0; !bad && i < info->n_tensors; i++) {
		const struct fp_tensor_desc *t = fp_image_tensor(img, i), *u = fp_image_find(o, t->name);
		bad = !u || u->offset != t->offset || u->size != t->size;
	}
	unsigned count[3] = {0};
	for (uint32_t i = 0; !bad && i < info->n_chunks; i++) {
		const struct fp_chunk_desc *a = fp_image_chunk(img, i), *b = fp_image_chunk(o, i);
		bad = a->checksum != b->checksum || a->logical_len != b->logical_len ||
		      fp_image_read_chunk(o, i, data);
		count[b->codec < 3 ? b->codec : 0]++;
	}
	if (bad) {
		fprintf(stderr, "sweep_recode: %s: not the layout or the bytes of %s\n", out, in);
		remove(out);
		return 1;
	}
	printf("%u %u %u %u %llu\n", oi->n_chunks, count[0], count[1], count[2],
	       (unsigned long long)oi->stored_bytes);
	fp_image_close(o);
	fp_image_close(img);
	free(order);
	free(data);
	return 0;
}
