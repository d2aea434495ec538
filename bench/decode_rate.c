/* bench/decode_rate IMAGE...: how fast one core turns each image's stored
 * chunks back into their bytes (read from the page cache, decoded,
 * checksummed: fp_image_read_chunk), in GB/s of decoded bytes, and how
 * many chunks of each codec the image holds.  Prints one CSV line an image:
 * path,logical_bytes,stored_bytes,raw,zstd,zstd_split,decode_gbps,
 * compressed_gbps: the last over the compressed chunks alone (0 if none),
 * the rate a decode bound needs.  Used by bench/compress and bench/sweep. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <flexpage/flexpage.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: decode_rate IMAGE...\n");
		return 2;
	}
	for (int a = 1; a < argc; a++) {
		fp_image *img = fp_image_open(argv[a]);
		if (!img) {
			fprintf(stderr, "decode_rate: %s\n", fp_last_error());
			return 1;
		}
		const struct fp_image_info *info = fp_image_info(img);
		void *buf = aligned_alloc(4096, info->chunk_size);
		unsigned count[3] = {0};
		for (uint32_t i = 0; i < info->n_chunks; i++) {
			const uint32_t c = fp_image_chunk(img, i)->codec;
			count[c < 3 ? c : 0]++;
		}
		/* passes until a quarter second has gone, the best pass kept;
		 * the compressed chunks' time apart (the first pass also brings
		 * the file into the page cache, so it rarely is the best) */
		double best = 1e30, best_c = 1e30, t_all = 0;
		uint64_t bytes_c = 0;
		for (int pass = 0; pass < 3 || t_all < 0.25; pass++) {
			double t_c = 0;
			bytes_c = 0;
			const double t0 = now();
			for (uint32_t i = 0; i < info->n_chunks; i++) {
				const struct fp_chunk_desc *d = fp_image_chunk(img, i);
				const double tc0 = d->codec ? now() : 0;
				if (fp_image_read_chunk(img, i, buf)) {
					fprintf(stderr, "decode_rate: %s\n", fp_last_error());
					return 1;
				}
				if (d->codec) {
					t_c += now() - tc0;
					bytes_c += d->logical_len;
				}
			}
			const double t = now() - t0;
			t_all += t;
			best = t < best ? t : best;
			best_c = t_c < best_c ? t_c : best_c;
		}
		printf("%s,%llu,%llu,%u,%u,%u,%.3f,%.3f\n", argv[a], (unsigned long long)info->data_bytes,
		       (unsigned long long)info->stored_bytes, count[0], count[1], count[2],
		       (double)info->data_bytes / best / 1e9,
		       bytes_c && best_c > 0 ? (double)bytes_c / best_c / 1e9 : 0.0);
		free(buf);
		fp_image_close(img);
	}
	return 0;
}
