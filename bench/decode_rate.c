/* bench/decode_rate IMAGE...: how fast one core turns each image's stored
 * chunks back into their bytes (read from the page cache, decoded,
 * checksummed: fp_image_read_chunk), in GB/s of decoded bytes, and how
 * many chunks of each codec the image holds.  Prints one CSV line an image:
 * path,logical_bytes,stored_bytes,raw,zstd,zstd_split,decode_gbps.  Used by
 * bench/compress. */
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
		/* passes until a quarter second has gone, the best pass kept */
		double best = 1e30, t_all = 0;
		for (int pass = 0; pass < 3 || t_all < 0.25; pass++) {
			const double t0 = now();
			for (uint32_t i = 0; i < info->n_chunks; i++)
				if (fp_image_read_chunk(img, i, buf)) {
					fprintf(stderr, "decode_rate: %s\n", fp_last_error());
					return 1;
				}
			const double t = now() - t0;
			t_all += t;
			best = t < best ? t : best;
		}
		printf("%s,%llu,%llu,%u,%u,%u,%.3f\n", argv[a], (unsigned long long)info->data_bytes,
		       (unsigned long long)info->stored_bytes, count[0], count[1], count[2],
		       (double)info->data_bytes / best / 1e9);
		free(buf);
		fp_image_close(img);
	}
	return 0;
}
